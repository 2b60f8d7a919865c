// Types for party-sockets.js.

/**
 * What the client needs of a WebSocket: the browser's, Node's own (22 and later) and the "ws" package's all
 * have it.
 */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number): void;
}

export interface PartySocketOptions {
  /** Room cap for create (live members). Default 8. */
  maxClients?: number;
  /** Controller url template for create ({room}, {instance}). */
  url?: string;
  /** The slot's secret; random (or the saved one) when absent. */
  clientId?: string;
  /**
   * Save { clientId, room, instance, seq }, the last state and the room's ticket in localStorage, so a reload
   * rejoins the same slot, recovers, and can restore the room if its machine died.
   */
  persist?: boolean;
  storageKey?: string;
  /** Reconnect backoff in ms (defaults 250 and 10000) and attempts in a row (20; negative: forever). */
  minBackoff?: number;
  maxBackoff?: number;
  maxAttempts?: number;
  /** A connect that neither opens nor answers fails (and is retried) after this many ms. Default 10000. */
  connectTimeout?: number;
  /**
   * While rejoining, "Room not found" is retried (by code, without the pin) for this many ms: a stopping
   * machine hands its room to a sibling. Default 10000.
   */
  roomWait?: number;
  /**
   * Heartbeat in ms (default 3000; 0 turns it off): while nothing comes from the server for this long the client
   * sends {"type":"ping"}, and when a ping has had no answer (nor any other frame) for this long it drops the socket
   * and reconnects (a black-holed network ends no socket by itself).
   */
  heartbeat?: number;
  /** Message recovery (default true): missed frames are sent again after a reconnect. */
  recover?: boolean;
  /**
   * Crash-proof rooms (default true): keep the room's sealed ticket (with persist, saved as the clientId is) and,
   * when the room's machine died (the rejoin gets "Room not found"), restore the room from it and the last state
   * seen or set. false: ask for no ticket, as before.
   */
  tickets?: boolean;
  /**
   * The WebSocket class to dial with; default globalThis.WebSocket. Node 20 has none without
   * --experimental-websocket: pass the "ws" package's (import { WebSocket } from "ws").
   */
  WebSocket?: new (url: string) => WebSocketLike;
}

export interface Saved {
  clientId: string;
  room: string | null;
  instance: string | null;
  /** The last frame number seen, for recovery after a reload. */
  seq?: number | null;
}

export interface PartySocketEventMap {
  created: CustomEvent<{ room: string; instance: string; region: string; index: 0; url?: string }>;
  joined: CustomEvent<{ room: string; index: number; peers: number[]; url?: string }>;
  peer_joined: CustomEvent<{ index: number }>;
  peer_left: CustomEvent<{ index: number }>;
  /** data is absent when the sender sent none. */
  message: CustomEvent<{ from: number; data?: unknown }>;
  state: CustomEvent<{ data: unknown }>;
  error: CustomEvent<{ message: string }>;
  reconnecting: CustomEvent<{ attempt: number; delay: number; code: number }>;
  /**
   * The room was lost with its machine and is back, same code, this client in its own slot, after a joined event.
   * rebuilt: this client restored it; false: it joined the room another member restored. Messages in flight at
   * the crash are lost (a recovery_failed event came with the joined).
   */
  restored: CustomEvent<{ room: string; index: number; rebuilt: boolean }>;
  /**
   * A restore was refused: message is the server's answer, one of RESTORE_FAILED, or "Try again" when roomWait
   * ran out. The client keeps rejoining by code for roomWait (another member may restore the room), then closes;
   * "Room ended" closes it at once (reason "room ended").
   */
  restore_failed: CustomEvent<{ message: string }>;
  /** After a reconnect the server no longer held every frame missed; a state event follows: resync from it. */
  recovery_failed: CustomEvent<{ since: number | null; latest: number }>;
  /** The last event. final: the server ended this client for good (4000, 4001) or the room is gone (or ended). */
  closed: CustomEvent<{ code: number; reason: string; final: boolean }>;
}

/** The close codes the server sends; final codes stop the client, the others make it reconnect. */
export declare const CLOSE_CODES: Readonly<Record<number, { reason: string; final: boolean }>>;

/** The server's answers to a rejoin on which resume returns null: the saved room is gone for this client. */
export declare const ROOM_GONE: readonly string[];

/** The server's answers to a restore that no retry changes (the ticket is dropped); resume returns null on them. */
export declare const RESTORE_FAILED: readonly string[];

export declare class PartySocket extends EventTarget {
  /** A client comes from create, join or resume, which resolve once it is in its room. */
  private constructor();
  static create(url: string, opts?: PartySocketOptions): Promise<PartySocket>;
  static join(url: string, code: string, opts?: PartySocketOptions): Promise<PartySocket>;
  /**
   * Rejoin the saved room; null when none is saved or the server says it is gone (ROOM_GONE: it is then forgotten).
   * When the room's machine died, it restores the room from the saved ticket first (RESTORE_FAILED: null too).
   * Rejects on anything else, such as no network.
   */
  static resume(url: string, opts?: PartySocketOptions): Promise<PartySocket | null>;
  /** Forget the saved room, clientId and state for this relay. */
  static forget(url: string, opts?: PartySocketOptions): void;
  static saved(url: string, opts?: PartySocketOptions): Saved | null;

  readonly clientId: string;
  /** The room's code: set before create, join or resume resolve, and kept. */
  readonly room: string;
  /** This client's slot: 0 for the host that created the room. */
  readonly index: number;
  /** The machine that holds the room, once known (null until then). */
  readonly instance: string | null;
  /** The last frame number of this slot seen (recovery), null before joining. */
  readonly seq: number | null;
  /** The last retained state received, or set by this client (a restore presents it). */
  readonly state: unknown;
  /** The room's freshest ticket (opaque), null when none is held: tickets off, or none given yet. */
  readonly ticket: string | null;
  readonly status: "idle" | "connecting" | "open" | "reconnecting" | "closed";

  /** Each returns false when not connected (the message was not sent). */
  send(data?: unknown): boolean;
  sendTo(slot: number, data: unknown): boolean;
  setState(data: unknown): boolean;
  closeRoom(): boolean;
  close(): void;

  addEventListener<K extends keyof PartySocketEventMap>(
    type: K, listener: (ev: PartySocketEventMap[K]) => void, options?: boolean | AddEventListenerOptions): void;
  addEventListener(
    type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof PartySocketEventMap>(
    type: K, listener: (ev: PartySocketEventMap[K]) => void, options?: boolean | EventListenerOptions): void;
  removeEventListener(
    type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;
}
