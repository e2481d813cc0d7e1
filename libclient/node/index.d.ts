/*  roomcast: the Node.js client of the roomcast sidecar (roomcastd).

    An application connects to the sidecar of its host over a Unix socket,
    subscribes to (namespace, topic) pairs and publishes to them. Every
    other application subscribed to a topic, on this host or (through the
    mesh) on any host of the cluster, receives each message once. The
    publisher does not get its own messages back unless it asks (echo).
    Behaviour and wire protocol are libroomcast's (libclient/roomcast.h,
    PROTOCOL.md).

    Failures of the sidecar or the mesh never throw at the application:
    publish() returns false and emits "error"; an error carries a stage
    ("connect", "subscribe", "publish", "delivery"). Every failure is told
    once: through the promise of the call it answers when there is one,
    else through the "error" event. Without an "error" listener, errors are
    dropped (NODE_DEBUG=roomcast prints them); the client never makes the
    EventEmitter throw.

    Reconnect: when the sidecar goes away, the client reconnects with
    exponential backoff (reconnectMinMs doubling to reconnectMaxMs, +-20%
    jitter) and restores every subscription; the application sees "status"
    events. Messages published while disconnected are not queued: publish
    fails with ENOTCONN (delivery is at-most-once).
*/
import { EventEmitter } from "node:events";

export declare const DEFAULT_SOCKET: "/run/roomcast/roomcast.sock";

export type Stage = "connect" | "subscribe" | "publish" | "delivery";
export declare const STAGES: readonly Stage[];

export type State = "connecting" | "connected" | "disconnected" | "closed";

/** Error codes are errno names, as libroomcast uses them. */
export type ErrorCode =
  | "ENOTCONN"        // not connected (reconnecting): the message is dropped
  | "EAGAIN"          // send buffer over sendBudget: the message is dropped
  | "EMSGSIZE"        // payload over the sidecar's limit
  | "EINVAL"          // bad name (1..255 bytes, no control character), payload or query
  | "ETIMEDOUT"
  | "ENOBUFS"         // closed by the sidecar as a slow consumer
  | "ESHUTDOWN"       // the sidecar is shutting down
  | "EPROTO"          // protocol error (not a roomcast sidecar?)
  | "EPROTONOSUPPORT" // protocol version refused by the sidecar
  | "ENOENT"          // no socket at that path
  | "ECONNREFUSED"    // nobody listening on that socket
  | "EACCES"          // refused by the sidecar
  | "ENOSPC"          // a sidecar limit was reached
  | "EBADMSG"         // the sidecar did not know a frame type
  | "ENOTSUP"         // the sidecar does not have this feature (presence)
  | "ECANCELED";      // the client was closed or the topic unsubscribed

export interface RoomcastErrorOptions {
  /** Where it happened (default "connect"). */
  stage?: Stage;
  /** The sidecar's ERR code (PROTOCOL.md), when the sidecar sent one. */
  sidecarCode?: number;
  /** The underlying error, kept as Error.cause. */
  cause?: unknown;
}

export declare class RoomcastError extends Error {
  /** code: an errno name; message: defaults to strerror(code). */
  constructor(code: ErrorCode, message?: string, options?: RoomcastErrorOptions);
  name: "RoomcastError";
  code: ErrorCode;
  /** Where it happened (as crossws's onError stages, plus connect). */
  stage: Stage;
  /** The sidecar's ERR code (PROTOCOL.md) when the sidecar sent one. */
  sidecarCode?: number;
}

/** Readable text for an error code (rc_strerror). */
export declare function strerror(code: string): string;

export interface ClientOptions {
  /** Sidecar socket; default $ROOMCAST_SOCKET, else /run/roomcast/roomcast.sock. */
  socket?: string;
  /** App name shown by roomcastctl clients. */
  name?: string;
  /** Handshake deadline of each attempt, and of connect() (default 5000). */
  connectTimeoutMs?: number;
  /** connect() only: resolve with a client that keeps trying when the
   *  sidecar is not there yet (default false: connect() rejects). */
  retry?: boolean;
  /** First reconnect delay (default 50). */
  reconnectMinMs?: number;
  /** Backoff cap (default 2000). */
  reconnectMaxMs?: number;
  /** Bytes buffered toward the sidecar before publish fails with EAGAIN
   *  (default 8 MiB). */
  sendBudget?: number;
  /** Ask for "gap" events (messages of a stream were missed). */
  gaps?: boolean;
  /** Ask for "presence" events of the topics this client subscribed to. */
  presence?: boolean;
  /** Ask for "member" events (sidecars of the cluster up and down). */
  members?: boolean;
}

export interface Message {
  namespace: string;
  topic: string;
  /** A string for a text payload (decoded UTF-8), a Buffer for binary. */
  data: string | Buffer;
  binary: boolean;
  /** This is our own publish, sent back because we published with echo. */
  echo: boolean;
  /** The publisher's sequence on this topic: 1, 2, 3 ... */
  seq: number;
  /** Instance id (32 hex digits) of the publishing client. */
  origin: string;
  /** Node id (hex) of the publisher's sidecar. */
  originNode: string;
}

export interface Status {
  state: State;
  /** The sidecar receives from the mesh. */
  readable: boolean;
  /** The sidecar can publish to the mesh. */
  writable: boolean;
  /** Peers the sidecar hears from. */
  livePeers: number;
  /** The sidecar's words, or why the link is down. */
  detail: string;
}

/** Why messages were lost: between sidecars and not repaired ("mesh"),
 *  dropped at this client's queue budget because it read too slowly
 *  ("slow"), published while this client had lost its sidecar
 *  ("reconnect"), or the publisher's sidecar died first ("origin_gone"). */
export type GapReason = "mesh" | "slow" | "reconnect" | "origin_gone";

/** Messages of a topic this client was owed and will not get. */
export interface Gap {
  namespace: string;
  topic: string;
  /** The publishing instance (hex), or "" when not one publisher's. */
  origin: string;
  /** How many, or 0 when it cannot be known ("reconnect"). */
  missed: number;
  reason: GapReason;
}

/** A presence entry: someone (key, with meta) is, or no longer is, in a
 *  topic, held by the sidecar node. */
export interface PresenceEntry {
  namespace: string;
  topic: string;
  key: string;
  meta: Buffer;
  /** Hex id of the sidecar that holds the entry. */
  node: string;
  /** false: the entry is gone. */
  present: boolean;
}

export interface Member {
  node: string;
  name: string;
  state: "alive" | "suspect" | "dead" | "left";
  /** Its mesh data endpoint. */
  endpoint: string;
}

export interface PublishOptions {
  /** Deliver this message to the publisher too (flag bit 1). */
  echo?: boolean;
  /** Override the kind: by default a string is text and bytes are binary;
   *  binary: false sends bytes (UTF-8) as text, true sends a string as binary. */
  binary?: boolean;
}

export type Payload = string | Uint8Array | ArrayBuffer | ArrayBufferView;

/** A query's answer: [key, value] rows (Object.fromEntries for "status"). */
export type Rows = Array<[string, string]>;

export declare class Client extends EventEmitter {
  /** Starts connecting at once and keeps reconnecting until close(). */
  constructor(options?: ClientOptions);

  /** This client's random 16-byte instance id, hex; stamped on every publish. */
  readonly instanceId: string;
  /** The sidecar's node id (hex) and channel, from its last WELCOME ("" before). */
  readonly nodeId: string;
  readonly channel: string;
  readonly serverVersion: string;
  /** Largest payload the sidecar accepts (from WELCOME). */
  readonly maxPayload: number;
  readonly socketPath: string;
  readonly state: State;
  readonly status: Status;
  /** Own publishes dropped on receipt (echo suppression). */
  readonly droppedEcho: number;

  /** Subscribe to (namespace, topic). Idempotent; kept across reconnects
   *  until unsubscribe. Resolves when the sidecar confirms the subscription
   *  is in effect on it and on every live peer of the mesh (the SUBACK with
   *  everywhere=true), so anything published after that, on any host,
   *  reaches this client. Rejects with EINVAL, with the sidecar's refusal
   *  (the subscription is then forgotten), with ETIMEDOUT after timeoutMs
   *  (default: no deadline; the subscription stays and is retried), or
   *  with ECANCELED on unsubscribe or close. Works while disconnected: the
   *  SUB is sent when the link is up. */
  subscribe(namespace: string, topic: string, options?: { timeoutMs?: number }): Promise<void>;

  /** Leave (namespace, topic). Idempotent. false (and an "error" event)
   *  for a bad name. */
  unsubscribe(namespace: string, topic: string): boolean;

  /** Current subscriptions, and whether each is confirmed everywhere. */
  subscriptions(): Array<{ namespace: string; topic: string; everywhere: boolean }>;

  /** Publish; never throws, never blocks. A string is text, bytes are
   *  binary. Returns true when the message is written or buffered toward
   *  the sidecar; false when it is dropped, with an "error" event (stage
   *  "publish"): EINVAL, EMSGSIZE, ENOTCONN, EAGAIN. Each (namespace,
   *  topic) has its own sequence, starting at 1. The data is copied. */
  publish(namespace: string, topic: string, data: Payload, options?: PublishOptions): boolean;

  /** publish() that hands the error back (null when sent) instead of
   *  emitting it. */
  tryPublish(namespace: string, topic: string, data: Payload, options?: PublishOptions): RoomcastError | null;

  /** Resolves when every buffered byte is written to the sidecar. */
  flush(options?: { timeoutMs?: number }): Promise<void>;

  /** Ask the sidecar: "status", "topics" (arg: glob or ""), "numsub"
   *  (arg: "namespace\ttopic"), "clients" (what roomcastctl shows).
   *  Rejects with ENOTCONN, ETIMEDOUT (default 5000 ms), EINVAL (unknown). */
  query(what: string, arg?: string, options?: { timeoutMs?: number }): Promise<Rows>;

  /** Be present in (namespace, topic) under key, with meta (a string or
   *  bytes, up to 64 KiB, copied). Every sidecar of the cluster lists it
   *  until clearPresence, until this client closes or its sidecar dies; it
   *  is set again after a reconnect; setting a key again replaces meta.
   *  Returns true when sent (or kept for the reconnect); false with an
   *  "error" event (stage "publish") for EINVAL. A refusal by the sidecar
   *  comes as an "error" event too (EACCES: another app holds that key).
   *  A sidecar without presence (it answers the presence frames with
   *  "unknown frame type"): ENOTSUP, "presence is not supported by this
   *  sidecar", as an "error" event and on every later presence call. */
  setPresence(namespace: string, topic: string, key: string, meta?: string | Uint8Array): boolean;

  /** Stop being present under key. Idempotent. false only for bad names. */
  clearPresence(namespace: string, topic: string, key: string): boolean;

  /** The entries of (namespace, topic) across the cluster, as the sidecar
   *  knows them now. Rejects with ENOTCONN, ETIMEDOUT (default 5000 ms),
   *  EINVAL, ENOTSUP (a sidecar without presence). The entries also come
   *  as "presence" events (present: true) to a client with presence: true
   *  that subscribed to the topic. */
  listPresence(namespace: string, topic: string, options?: { timeoutMs?: number }): Promise<PresenceEntry[]>;

  /** Stop for good: buffered frames are still written (within timeoutMs,
   *  default 1000), pending calls reject with ECANCELED. Safe to call twice. */
  close(options?: { timeoutMs?: number }): Promise<void>;

  on(event: "message", listener: (msg: Message) => void): this;
  on(event: "error", listener: (err: RoomcastError) => void): this;
  on(event: "status", listener: (status: Status) => void): this;
  on(event: "gap", listener: (gap: Gap) => void): this;
  on(event: "presence", listener: (entry: PresenceEntry) => void): this;
  on(event: "member", listener: (member: Member) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
  once(event: "message", listener: (msg: Message) => void): this;
  once(event: "error", listener: (err: RoomcastError) => void): this;
  once(event: "status", listener: (status: Status) => void): this;
  once(event: "gap", listener: (gap: Gap) => void): this;
  once(event: "presence", listener: (entry: PresenceEntry) => void): this;
  once(event: "member", listener: (member: Member) => void): this;
  once(event: string | symbol, listener: (...args: any[]) => void): this;
}

/** Connect and complete the handshake. Resolves with a connected client;
 *  with retry, with a client that keeps trying even if the first attempt
 *  failed. Without retry, rejects with ENOENT, ECONNREFUSED, ETIMEDOUT,
 *  EPROTO (stage "connect"). */
export declare function connect(options?: ClientOptions): Promise<Client>;

declare const _default: {
  Client: typeof Client;
  connect: typeof connect;
  RoomcastError: typeof RoomcastError;
  strerror: typeof strerror;
  STAGES: typeof STAGES;
  DEFAULT_SOCKET: typeof DEFAULT_SOCKET;
};
export default _default;
