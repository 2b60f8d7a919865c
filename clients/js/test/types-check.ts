// Type-checked in CI (tsc -p clients/js): the .d.ts matches how a game
// uses the client, in a browser and on Node 20 with the "ws" package.
// Never run.
import { WebSocket as NodeWebSocket } from "ws";
import { PartySocket, CLOSE_CODES, ROOM_GONE, RESTORE_FAILED, type PartySocketOptions } from "../party-sockets.js";

const opts: PartySocketOptions = { maxClients: 8, persist: true, recover: true, connectTimeout: 5000, heartbeat: 5000, tickets: true };

export async function game(): Promise<void> {
  const host: PartySocket = await PartySocket.create("https://relay.example", opts);
  // Issue 25, item 5: strict TypeScript rejected host.room as possibly
  // null after a successful create.
  const room: string = host.room;
  const slot: number = host.index;
  host.addEventListener("message", (e) => {
    const from: number = e.detail.from;
    const data: unknown = e.detail.data;
    host.sendTo(from, { echo: data, to: slot });
  });
  host.addEventListener("recovery_failed", (e) => {
    const latest: number = e.detail.latest;
    host.setState({ resyncFrom: latest });
  });
  // Issue 23, item 7: crash-proof rooms, on by default.
  host.addEventListener("restored", (e) => {
    const rebuilt: boolean = e.detail.rebuilt;
    console.log(e.detail.room, e.detail.index, rebuilt);
  });
  host.addEventListener("restore_failed", (e) => {
    const why: string = e.detail.message;
    console.log(RESTORE_FAILED.includes(why));
  });
  const ticket: string | null = host.ticket;
  console.log(ticket);
  host.addEventListener("closed", (e) => {
    const final: boolean = e.detail.final || CLOSE_CODES[e.detail.code]?.final === true;
    console.log(room, final);
  });
  const player = await PartySocket.join("https://relay.example", room, { persist: true });
  const seq: number | null = player.seq;
  const sent: boolean = player.send(seq);
  const saved = PartySocket.saved("https://relay.example");
  const again: PartySocket | null = await PartySocket.resume("https://relay.example");
  console.log(sent, saved?.clientId, again?.room.length);
  // Issue 25, item 1: the saved room, or a new one, as the example does it.
  const tv: PartySocket = (await PartySocket.resume("https://relay.example", opts)) ||
    (await PartySocket.create("https://relay.example", opts));
  const gone: boolean = ROOM_GONE.includes("Room not found");
  PartySocket.forget("https://relay.example");
  console.log(tv.room, gone);
}

// On Node 20: the "ws" package's class, and the runtime's own, are both
// what the WebSocket option takes.
export async function onNode(): Promise<string> {
  const fromWs = await PartySocket.create("http://127.0.0.1:8080", { WebSocket: NodeWebSocket });
  const builtIn = await PartySocket.join("http://127.0.0.1:8080", fromWs.room, { WebSocket: globalThis.WebSocket });
  return builtIn.room;
}

// A client comes from create, join or resume, never from new.
// @ts-expect-error the constructor is private
export const unjoined = new PartySocket();
// @ts-expect-error the WebSocket option is a class, not the module
export const wrong: PartySocketOptions = { WebSocket: { WebSocket: NodeWebSocket } };
