// Type-checked in CI (tsc -p clients/js): the .d.ts matches how a game
// uses the client. Never run.
import { PartySocket, CLOSE_CODES, type PartySocketOptions } from "../party-sockets.js";

const opts: PartySocketOptions = { maxClients: 8, persist: true, recover: true, connectTimeout: 5000 };

export async function game(): Promise<void> {
  const host: PartySocket = await PartySocket.create("https://relay.example", opts);
  const room: string | null = host.room;
  host.addEventListener("message", (e) => {
    const from: number = e.detail.from;
    const data: unknown = e.detail.data;
    host.sendTo(from, { echo: data });
  });
  host.addEventListener("recovery_failed", (e) => {
    const latest: number = e.detail.latest;
    host.setState({ resyncFrom: latest });
  });
  host.addEventListener("closed", (e) => {
    const final: boolean = e.detail.final || CLOSE_CODES[e.detail.code]?.final === true;
    console.log(room, final);
  });
  const player = await PartySocket.join("https://relay.example", room ?? "", { persist: true });
  const seq: number | null = player.seq;
  const sent: boolean = player.send(seq);
  const saved = PartySocket.saved("https://relay.example");
  console.log(sent, saved?.clientId, await PartySocket.resume("https://relay.example"));
}
