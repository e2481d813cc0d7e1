/*  roomcast: the Node.js client of the roomcast sidecar.

    The same protocol and behaviour as libroomcast (libclient/roomcast.h):
    a random 16-byte instance id stamped on every publish, echo suppression,
    text and binary payloads kept apart, per-topic publish sequences from 1,
    reconnect with backoff that restores every subscription, and failures
    reported with a stage (connect, subscribe, publish, delivery), never
    thrown at the publisher. The contracts are written once, in index.d.ts.
*/
import { EventEmitter } from "node:events";
import net from "node:net";
import { randomBytes } from "node:crypto";
import { debuglog } from "node:util";
import * as wire from "./lib/wire.js";

const T = wire.T;
const debug = debuglog("roomcast");

export const DEFAULT_SOCKET = "/run/roomcast/roomcast.sock";
export const STAGES = Object.freeze(["connect", "subscribe", "publish", "delivery"]);
const STAGE = { connect: 0, subscribe: 1, publish: 2, delivery: 3 };
const MEMBER_STATES = { 1: "alive", 2: "suspect", 3: "dead", 4: "left" };

//  ERR codes (PROTOCOL.md) as the errno names libroomcast gives them.
const ERR_CODE = {
  [wire.E.TOOBIG]: "EMSGSIZE", [wire.E.BADTYPE]: "EBADMSG",
  [wire.E.BADNAME]: "EINVAL", [wire.E.VERSION]: "EPROTONOSUPPORT",
  [wire.E.SLOW]: "ENOBUFS", [wire.E.SHUTDOWN]: "ESHUTDOWN",
  [wire.E.BADQUERY]: "EINVAL", [wire.E.LIMIT]: "ENOSPC",
  [wire.E.DENIED]: "EACCES",
};

const MESSAGES = {
  ENOTCONN: "not connected to the sidecar (reconnecting)",
  EAGAIN: "send buffer full: the sidecar is not keeping up",
  EMSGSIZE: "payload over the sidecar's size limit",
  EINVAL: "invalid argument: a name empty, over 255 bytes or with a control character, a bad flag or payload, or an unknown query",
  ETIMEDOUT: "timed out",
  ENOBUFS: "closed by the sidecar as a slow consumer",
  ESHUTDOWN: "the sidecar is shutting down",
  EPROTO: "protocol error (not a roomcast sidecar?)",
  ENOENT: "no sidecar socket at that path",
  ECONNREFUSED: "no sidecar listening on that socket",
  EACCES: "permission denied by the sidecar",
  ENOSPC: "a sidecar limit was reached",
  ENOTSUP: "not supported by this sidecar",
  ECANCELED: "canceled",
};

export class RoomcastError extends Error {
  constructor(code, message, { stage = "connect", sidecarCode, cause } = {}) {
    super(message || MESSAGES[code] || code, cause ? { cause } : undefined);
    this.name = "RoomcastError";
    this.code = code;
    this.stage = stage;
    if (sidecarCode !== undefined) {
      this.sidecarCode = sidecarCode;
    }
  }
}

//  Readable text for an error code, as rc_strerror.
export function strerror(code) {
  return MESSAGES[code] || code;
}

function hex(id) {
  return Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString("hex");
}

//  1 to 255 bytes, no control character (the sidecar's rule, ERR 5).
function nameOk(name) {
  return typeof name === "string" && name.length > 0 &&
    Buffer.byteLength(name) <= wire.MAX_NAME && !/[\x00-\x1f\x7f]/.test(name);
}

function subKey(ns, topic) {
  return `${ns.length}:${ns}${topic}`;
}

//  Payload bytes and kind of what publish() was given, or null.
function payloadOf(data, binary) {
  let bytes;
  let isBinary;
  if (typeof data === "string") {
    bytes = Buffer.from(data, "utf8");
    isBinary = false;
  } else if (data instanceof Uint8Array) {
    bytes = data;
    isBinary = true;
  } else if (data instanceof ArrayBuffer) {
    bytes = new Uint8Array(data);
    isBinary = true;
  } else if (ArrayBuffer.isView(data)) {
    bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    isBinary = true;
  } else {
    return null;
  }
  return { bytes, binary: binary === undefined ? isBinary : !!binary };
}

export class Client extends EventEmitter {
  #opts;
  #socketPath;
  #sock = null;          // to the sidecar; null while disconnected
  #reader = new wire.FrameReader();
  #state = "connecting";
  #lastEmitted = null;   // state of the last status event
  #backoff;
  #reconnectTimer = null;
  #handshakeTimer = null;
  #instance = randomBytes(wire.ID_SIZE);
  #instanceHex;
  #nodeHex = "";
  #channel = "";
  #serverVersion = "";
  #maxPayload = wire.DEFAULT_MAX_PAYLOAD;
  #status = { readable: false, writable: false, livePeers: 0, detail: "" };
  #subs = new Map();     // key -> {namespace, topic, req, everywhere, waiters}
  #welcomed = false;     // a WELCOME came before: the next is a return
  #pubseq = new Map();   // key -> last sequence published
  #presence = new Map(); // ns/topic/key -> our entry {namespace, topic, key, meta}
  #noPresence = false;   // this sidecar answered a presence frame with ERR 3
  #presenceSent = false; // a presence frame went out on this connection
  #queries = new Map();  // req -> {resolve, reject, timer, list?}
  #nextReq = 0;
  #lastError = null;     // why the last attempt failed
  #connectErr = null;    // an ERR received before WELCOME
  #droppedEcho = 0;

  //  Starts connecting at once and keeps reconnecting until close().
  constructor(options = {}) {
    super();
    this.#opts = {
      name: "",
      connectTimeoutMs: 5000,
      reconnectMinMs: 50,
      reconnectMaxMs: 2000,
      sendBudget: 8 * 1024 * 1024,
      gaps: false,
      presence: false,
      members: false,
      ...options,
    };
    const o = this.#opts;
    if (!(o.reconnectMinMs > 0)) {
      o.reconnectMinMs = 50;
    }
    if (!(o.reconnectMaxMs >= o.reconnectMinMs)) {
      o.reconnectMaxMs = o.reconnectMinMs;
    }
    this.#socketPath = o.socket || process.env.ROOMCAST_SOCKET || DEFAULT_SOCKET;
    this.#backoff = o.reconnectMinMs;
    this.#instanceHex = this.#instance.toString("hex");
    this.#open();
  }

  get instanceId() { return this.#instanceHex; }
  get nodeId() { return this.#nodeHex; }
  get channel() { return this.#channel; }
  get serverVersion() { return this.#serverVersion; }
  get maxPayload() { return this.#maxPayload; }
  get socketPath() { return this.#socketPath; }
  get state() { return this.#state; }
  get status() { return { state: this.#state, ...this.#status }; }
  get droppedEcho() { return this.#droppedEcho; }

  // --- reporting ----------------------------------------------------------

  #report(err) {
    if (this.listenerCount("error") > 0) {
      this.emit("error", err);
    } else {
      debug("%s error (no listener): %s", err.stage, err.message);
    }
  }

  #emitStatus() {
    if (this.#state === this.#lastEmitted && this.#state !== "connected") {
      return;
    }
    this.#lastEmitted = this.#state;
    this.emit("status", this.status);
  }

  // --- connection ---------------------------------------------------------

  #req(stage) {
    this.#nextReq += 4;
    return this.#nextReq | STAGE[stage];
  }

  #write(fields) {
    this.#sock.write(wire.encode(fields));
  }

  #sendPset(p) {
    this.#presenceSent = true;
    this.#write([T.PSET, this.#req("publish"), p.namespace, p.topic, p.key, p.meta]);
  }

  #sendSub(sub) {
    sub.req = this.#req("subscribe");
    sub.everywhere = false;
    this.#write([T.SUB, sub.req, sub.namespace, sub.topic]);
  }

  //  Open the socket and queue HELLO and every subscription: the socket
  //  buffers them until it connects, and the sidecar reads them in order.
  #open() {
    this.#state = "connecting";
    this.#reader.clear();
    const sock = net.createConnection({ path: this.#socketPath });
    this.#sock = sock;
    let failure = null;
    sock.on("error", (err) => { failure = err; });
    sock.on("data", (chunk) => this.#onData(sock, chunk));
    sock.on("close", () => {
      if (this.#sock !== sock) {
        return;
      }
      const why = this.#state === "connected" ? "connection to sidecar lost"
                                               : `cannot reach ${this.#socketPath}`;
      const unsent = sock.writableLength;
      if (this.#state === "connecting" && !this.#connectErr &&
          (failure?.code === "EPIPE" || failure?.code === "ECONNRESET")) {
        //  A sidecar that refuses us sends an ERR at accept and closes;
        //  Node drops what was unread when our HELLO meets the closed
        //  socket (EPIPE). Ask once more, without writing, to learn why.
        this.#probeRefusal().then((err) => {
          if (this.#sock === sock) {
            if (err) {
              this.#connectErr = err;
              this.#report(err);
            }
            this.#disconnect(failure, why, unsent);
          }
        });
        return;
      }
      this.#disconnect(failure, why, unsent);
    });
    const o = this.#opts;
    this.#write([T.HELLO, wire.VERSION, this.#instance, o.name || "",
                 (o.gaps ? wire.HF_GAPS : 0) | (o.presence ? wire.HF_PRESENCE : 0) |
                 (o.members ? wire.HF_MEMBERS : 0)]);
    for (const sub of this.#subs.values()) {
      this.#sendSub(sub);
    }
    this.#noPresence = false; // the sidecar may have been upgraded
    this.#presenceSent = false;
    for (const p of this.#presence.values()) {
      this.#sendPset(p);
    }
    this.#handshakeTimer = setTimeout(() => {
      this.#handshakeTimer = null;
      if (this.#sock === sock && this.#state === "connecting") {
        this.#drop(new RoomcastError("ETIMEDOUT", "no WELCOME from the sidecar"),
                   "handshake timed out");
      }
    }, this.#opts.connectTimeoutMs);
  }

  //  Connect without writing and wait briefly for an ERR. Resolves with
  //  the error it says, or null.
  #probeRefusal(ms = 300) {
    return new Promise((resolve) => {
      const probe = net.createConnection({ path: this.#socketPath });
      const reader = new wire.FrameReader();
      let done = false;
      const finish = (err) => {
        if (!done) {
          done = true;
          clearTimeout(timer);
          probe.destroy();
          resolve(err);
        }
      };
      const timer = setTimeout(() => finish(null), ms);
      probe.on("data", (chunk) => {
        reader.push(chunk);
        try {
          const body = reader.next(wire.FRAME_SLACK);
          const f = body && wire.decode(body);
          if (f) {
            finish(f.type === T.ERR ? this.#errOf(f, "connect") : null);
          }
        } catch {
          finish(null);
        }
      });
      probe.on("error", () => finish(null));
      probe.on("close", () => finish(null));
    });
  }

  #errOf(f, stage) {
    const code = ERR_CODE[f.code] || "EPROTO";
    return new RoomcastError(code, f.text || MESSAGES[code], { stage, sidecarCode: f.code });
  }

  //  Close the current socket on our side and go through #disconnect.
  #drop(err, why) {
    const sock = this.#sock;
    if (!sock) {
      return;
    }
    const unsent = sock.writableLength;
    sock.destroy();
    this.#disconnect(err, why, unsent);
  }

  #disconnect(err, why, unsent) {
    const wasUp = this.#state === "connected";
    this.#sock?.destroy();
    this.#sock = null;
    clearTimeout(this.#handshakeTimer);
    this.#handshakeTimer = null;
    this.#reader.clear();
    if (this.#state === "closed") {
      return;
    }
    this.#state = "disconnected";
    this.#lastError = this.#connectErr || err;
    this.#connectErr = null;
    for (const sub of this.#subs.values()) {
      sub.everywhere = false; // until the new SUB is confirmed
    }
    this.#status = {
      readable: false, writable: false, livePeers: 0,
      detail: this.#lastError ? `${why}: ${this.#lastError.message || this.#lastError.code}` : why,
    };
    if (wasUp && unsent > 0) {
      this.#report(new RoomcastError("ENOTCONN",
        `${unsent} bytes unsent at disconnect dropped`, { stage: "publish" }));
    }
    for (const [req, q] of this.#queries) {
      this.#queries.delete(req);
      clearTimeout(q.timer);
      q.reject(new RoomcastError("ENOTCONN", `${why} before the reply`));
    }
    this.#emitStatus();
    this.#armReconnect();
  }

  #armReconnect() {
    let delay = this.#backoff;
    //  +-20% jitter so restarted sidecars do not see every app at once
    delay = Math.floor(delay * 0.8 + Math.random() * (delay * 0.4 + 1));
    this.#backoff = Math.min(this.#backoff * 2, this.#opts.reconnectMaxMs);
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null;
      if (this.#state === "disconnected") {
        this.#open();
      }
    }, delay);
  }

  // --- input --------------------------------------------------------------

  #onData(sock, chunk) {
    this.#reader.push(chunk);
    const maxBody = this.#maxPayload + wire.FRAME_SLACK;
    while (this.#sock === sock) {
      let body;
      try {
        body = this.#reader.next(maxBody);
      } catch (err) {
        this.#report(new RoomcastError("EPROTO", `bad frame from sidecar: ${err.message}`,
                                       { stage: "delivery" }));
        this.#drop(err, "bad frame from sidecar");
        return;
      }
      if (!body) {
        return;
      }
      const frame = wire.decode(body);
      if (typeof frame === "string") {
        this.#report(new RoomcastError("EPROTO", frame, { stage: "delivery" }));
      } else if (!frame.unknown) {
        this.#handlers[frame.type]?.call(this, frame);
      }
    }
  }

  #handlers = {
    [T.WELCOME]: this.#onWelcome,
    [T.MSG]: this.#onMsg,
    [T.ERR]: this.#onErr,
    [T.PING]: this.#onPing,
    [T.REPLY]: this.#onReply,
    [T.STATUS]: this.#onStatus,
    [T.GAP]: this.#onGap,
    [T.SUBACK]: this.#onSuback,
    [T.PEVENT]: this.#onPevent,
    [T.MEMBER]: this.#onMember,
  };

  #onWelcome(f) {
    clearTimeout(this.#handshakeTimer);
    this.#handshakeTimer = null;
    this.#nodeHex = hex(f.node);
    this.#channel = f.channel;
    this.#maxPayload = f.maxPayload;
    this.#serverVersion = f.serverVersion;
    this.#state = "connected";
    this.#backoff = this.#opts.reconnectMinMs;
    this.#lastError = null;
    this.#status.detail = "connected";
    this.#emitStatus();
    if (this.#welcomed && this.#opts.gaps) {
      // back after losing the sidecar: every topic may have missed
      // messages meanwhile, how many nobody can say
      for (const sub of this.#subs.values()) {
        this.emit("gap", {
          namespace: sub.namespace, topic: sub.topic, origin: "",
          missed: 0, reason: "reconnect",
        });
      }
    }
    this.#welcomed = true;
  }

  #onMsg(f) {
    if (!(f.flags & wire.F_ECHO) && this.#instance.equals(f.origin)) {
      this.#droppedEcho++; // our own publish, not asked for
      return;
    }
    const p = f.payload;
    const bytes = Buffer.from(p.buffer, p.byteOffset, p.byteLength);
    const binary = (f.flags & wire.F_BINARY) !== 0;
    this.emit("message", {
      namespace: f.namespace,
      topic: f.topic,
      data: binary ? bytes : bytes.toString("utf8"),
      binary,
      echo: (f.flags & wire.F_ECHO) !== 0,
      seq: f.seq,
      origin: hex(f.origin),
      originNode: hex(f.originNode),
    });
  }

  #onErr(f) {
    let stage = f.req ? STAGES[f.req & 3] : "delivery";
    if (this.#state === "connecting") {
      stage = "connect"; // refused at the door (allowlist, limits): say why
    }
    if (f.code === wire.E_BADTYPE && this.#presenceSent && !this.#noPresence) {
      //  Every frame this client sends is in protocol version 1 since the
      //  start except the presence frames: a sidecar that does not know a
      //  type we sent has no presence.
      this.#noPresence = true;
      for (const [req, q] of this.#queries) {
        if (q.list) {
          this.#queries.delete(req);
          clearTimeout(q.timer);
          q.reject(this.#presenceUnsupported());
        }
      }
      this.#report(this.#presenceUnsupported());
      return;
    }
    const err = this.#errOf(f, stage);
    if (stage === "connect" && this.#state === "connecting") {
      this.#connectErr = err; // what connect() rejects with
    }
    if (stage === "subscribe") {
      //  a refused subscription would be refused again at every reconnect:
      //  forget it, and tell whoever waits for it
      for (const [key, sub] of this.#subs) {
        if (sub.req === f.req) {
          this.#subs.delete(key);
          if (sub.waiters.size) {
            this.#settle(sub, err);
            return;
          }
          break;
        }
      }
    }
    const q = this.#queries.get(f.req);
    if (q) {
      this.#queries.delete(f.req);
      clearTimeout(q.timer);
      q.reject(err);
      return;
    }
    this.#report(err);
  }

  #onPing(f) {
    this.#write([T.PONG, f.token]);
  }

  #onReply(f) {
    const q = this.#queries.get(f.req);
    if (q) {
      this.#queries.delete(f.req);
      clearTimeout(q.timer);
      //  a presence list: the PEVENTs before the REPLY were the entries
      q.resolve(q.list ? [...q.list.entries.values()].filter((e) => e.present)
                       : f.rows);
    }
  }

  #onPevent(f) {
    const entry = {
      namespace: f.namespace, topic: f.topic, key: f.key,
      meta: Buffer.from(f.meta.buffer, f.meta.byteOffset, f.meta.byteLength),
      node: hex(f.node), present: f.present,
    };
    //  The sidecar sends a list as PEVENTs then the REPLY; a PEVENT has no
    //  request id, so one that comes while a list is pending may be a change
    //  as well: it goes to the list (last one wins) and to the event, never
    //  lost (a listed entry is also an event with present: true).
    for (const q of this.#queries.values()) {
      if (q.list && q.list.namespace === f.namespace && q.list.topic === f.topic) {
        q.list.entries.set(`${entry.node}/${f.key}`, entry);
      }
    }
    this.emit("presence", entry);
  }

  #onMember(f) {
    this.emit("member", {
      node: hex(f.node), name: f.name,
      state: MEMBER_STATES[f.state] || String(f.state), endpoint: f.endpoint,
    });
  }

  #onStatus(f) {
    this.#status = {
      readable: f.readable, writable: f.writable, livePeers: f.livePeers,
      detail: f.detail,
    };
    this.emit("status", this.status);
  }

  #onGap(f) {
    this.emit("gap", {
      namespace: f.namespace, topic: f.topic, origin: hex(f.origin),
      missed: Number(f.missed), reason: wire.GAP_REASONS[f.reason] ?? "mesh",
    });
  }

  #onSuback(f) {
    const sub = this.#subs.get(subKey(f.namespace, f.topic));
    if (sub && sub.req === f.req && f.everywhere) {
      sub.everywhere = true;
      this.#settle(sub, null);
    }
  }

  //  Resolve (err null) or reject every waiter of a subscription.
  #settle(sub, err) {
    for (const w of sub.waiters) {
      clearTimeout(w.timer);
      if (err) {
        w.reject(err);
      } else {
        w.resolve();
      }
    }
    sub.waiters.clear();
  }

  // --- public API ---------------------------------------------------------

  subscribe(namespace, topic, { timeoutMs } = {}) {
    if (this.#state === "closed") {
      return Promise.reject(new RoomcastError("ECANCELED", "client closed",
                                              { stage: "subscribe" }));
    }
    if (!nameOk(namespace) || !nameOk(topic)) {
      return Promise.reject(new RoomcastError("EINVAL", undefined, { stage: "subscribe" }));
    }
    const key = subKey(namespace, topic);
    let sub = this.#subs.get(key);
    if (!sub) {
      sub = { namespace, topic, req: 0, everywhere: false, waiters: new Set() };
      this.#subs.set(key, sub);
      if (this.#sock) {
        this.#sendSub(sub); // a broken link resends at the reconnect
      }
    }
    if (sub.everywhere) {
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const w = { resolve, reject, timer: null };
      if (timeoutMs !== undefined && timeoutMs >= 0) {
        w.timer = setTimeout(() => {
          sub.waiters.delete(w);
          reject(new RoomcastError("ETIMEDOUT",
            `subscription to ${namespace}/${topic} not confirmed everywhere ` +
            `within ${timeoutMs} ms (${this.#status.detail || this.#state}); ` +
            "it stays in effect and is retried", { stage: "subscribe" }));
        }, timeoutMs);
      }
      sub.waiters.add(w);
    });
  }

  unsubscribe(namespace, topic) {
    if (!nameOk(namespace) || !nameOk(topic)) {
      this.#report(new RoomcastError("EINVAL", undefined, { stage: "subscribe" }));
      return false;
    }
    const key = subKey(namespace, topic);
    const sub = this.#subs.get(key);
    if (!sub) {
      return true;
    }
    this.#subs.delete(key);
    this.#settle(sub, new RoomcastError("ECANCELED",
      `unsubscribed from ${namespace}/${topic}`, { stage: "subscribe" }));
    if (this.#sock) {
      this.#write([T.UNSUB, this.#req("subscribe"), namespace, topic]);
    }
    return true;
  }

  subscriptions() {
    return [...this.#subs.values()].map((s) => ({
      namespace: s.namespace, topic: s.topic, everywhere: s.everywhere,
    }));
  }

  //  publish without the error event: returns null, or the error.
  tryPublish(namespace, topic, data, { echo = false, binary } = {}) {
    const payload = payloadOf(data, binary);
    if (!payload || !nameOk(namespace) || !nameOk(topic)) {
      return new RoomcastError("EINVAL", payload ? undefined
        : "payload must be a string, a Uint8Array/Buffer, an ArrayBuffer or a view",
        { stage: "publish" });
    }
    if (this.#state !== "connected" || this.#sock.destroyed) {
      return new RoomcastError("ENOTCONN", undefined, { stage: "publish" });
    }
    if (payload.bytes.length > this.#maxPayload) {
      return new RoomcastError("EMSGSIZE",
        `payload of ${payload.bytes.length} bytes over the sidecar's limit ` +
        `of ${this.#maxPayload}`, { stage: "publish" });
    }
    if (this.#sock.writableLength > this.#opts.sendBudget) {
      return new RoomcastError("EAGAIN", undefined, { stage: "publish" });
    }
    const key = subKey(namespace, topic);
    const seq = (this.#pubseq.get(key) || 0) + 1;
    this.#pubseq.set(key, seq);
    const flags = (payload.binary ? wire.F_BINARY : 0) | (echo ? wire.F_ECHO : 0);
    this.#write([T.PUB, this.#req("publish"), namespace, topic, flags, seq,
                 payload.bytes]);
    return null;
  }

  publish(namespace, topic, data, options) {
    const err = this.tryPublish(namespace, topic, data, options);
    if (err) {
      this.#report(err);
      return false;
    }
    return true;
  }

  flush({ timeoutMs = 5000 } = {}) {
    const sock = this.#sock;
    if (!sock || this.#state !== "connected") {
      return Promise.reject(new RoomcastError("ENOTCONN", undefined, { stage: "publish" }));
    }
    if (sock.writableLength === 0) {
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const done = (err) => {
        clearTimeout(timer);
        sock.off("drain", onDrain);
        sock.off("close", onClose);
        if (err) {
          reject(err);
        } else {
          resolve();
        }
      };
      const onDrain = () => done(null);
      const onClose = () => done(new RoomcastError("ENOTCONN", undefined, { stage: "publish" }));
      const timer = setTimeout(() => done(new RoomcastError("ETIMEDOUT", undefined,
                                                            { stage: "publish" })), timeoutMs);
      sock.on("drain", onDrain);
      sock.on("close", onClose);
    });
  }

  query(what, arg = "", { timeoutMs = 5000 } = {}) {
    if (this.#state !== "connected") {
      return Promise.reject(new RoomcastError("ENOTCONN"));
    }
    if (typeof what !== "string" || typeof arg !== "string") {
      return Promise.reject(new RoomcastError("EINVAL"));
    }
    const req = this.#req("connect");
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#queries.delete(req);
        reject(new RoomcastError("ETIMEDOUT", `no reply to query ${what}`));
      }, timeoutMs);
      this.#queries.set(req, { resolve, reject, timer });
      this.#write([T.QUERY, req, what, arg]);
    });
  }

  // --- presence -----------------------------------------------------------

  #presenceUnsupported(stage = "publish") {
    return new RoomcastError("ENOTSUP", "presence is not supported by this " +
      "sidecar (it answered a presence frame with 'unknown frame type')", { stage });
  }

  #presenceKey(namespace, topic, key) {
    return `${namespace.length}:${topic.length}:${namespace}${topic}${key}`;
  }

  setPresence(namespace, topic, key, meta = "") {
    const bytes = typeof meta === "string" ? Buffer.from(meta, "utf8")
      : meta instanceof Uint8Array ? Buffer.from(meta) : null;
    let err = null;
    if (!bytes || bytes.length > wire.MAX_META || !nameOk(namespace) ||
        !nameOk(topic) || !nameOk(key)) {
      err = new RoomcastError("EINVAL", "bad name, or meta not a string or " +
        `bytes of at most ${wire.MAX_META}`, { stage: "publish" });
    } else if (this.#noPresence) {
      err = this.#presenceUnsupported();
    } else if (this.#state === "closed") {
      err = new RoomcastError("ECANCELED", "client closed", { stage: "publish" });
    }
    if (err) {
      this.#report(err);
      return false;
    }
    const p = { namespace, topic, key, meta: bytes };
    this.#presence.set(this.#presenceKey(namespace, topic, key), p);
    if (this.#sock) {
      this.#sendPset(p); // a broken link sets it again at the reconnect
    }
    return true;
  }

  clearPresence(namespace, topic, key) {
    if (!nameOk(namespace) || !nameOk(topic) || !nameOk(key)) {
      this.#report(new RoomcastError("EINVAL", undefined, { stage: "publish" }));
      return false;
    }
    this.#presence.delete(this.#presenceKey(namespace, topic, key));
    if (this.#sock && !this.#noPresence) {
      this.#presenceSent = true;
      this.#write([T.PCLEAR, this.#req("publish"), namespace, topic, key]);
    }
    return true;
  }

  listPresence(namespace, topic, { timeoutMs = 5000 } = {}) {
    if (!nameOk(namespace) || !nameOk(topic)) {
      return Promise.reject(new RoomcastError("EINVAL"));
    }
    if (this.#noPresence) {
      return Promise.reject(this.#presenceUnsupported("connect"));
    }
    if (this.#state !== "connected") {
      return Promise.reject(new RoomcastError("ENOTCONN"));
    }
    const req = this.#req("connect");
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#queries.delete(req);
        reject(new RoomcastError("ETIMEDOUT", `no presence list for ${namespace}/${topic}`));
      }, timeoutMs);
      const list = { namespace, topic, entries: new Map() };
      this.#queries.set(req, { resolve, reject, timer, list });
      this.#presenceSent = true;
      this.#write([T.PLIST, req, namespace, topic]);
    });
  }

  //  Used by connect(): settles when connected, or when the first attempt
  //  failed (err) or timed out.
  _firstAttempt(timeoutMs) {
    return new Promise((resolve) => {
      if (this.#state === "connected") {
        resolve(null);
        return;
      }
      const onStatus = (s) => {
        if (s.state !== "connecting") {
          done(s.state === "connected" ? null : (this.#lastError || new RoomcastError("EPROTO")));
        }
      };
      const done = (err) => {
        clearTimeout(timer);
        this.off("status", onStatus);
        resolve(err);
      };
      const timer = setTimeout(() => done(new RoomcastError("ETIMEDOUT",
        `no handshake with ${this.#socketPath} within ${timeoutMs} ms`)), timeoutMs);
      this.on("status", onStatus);
    });
  }

  //  Stop for good. Buffered frames are still written (socket end), within
  //  timeoutMs; waiting calls are rejected with ECANCELED.
  close({ timeoutMs = 1000 } = {}) {
    if (this.#state === "closed") {
      return Promise.resolve();
    }
    this.#state = "closed";
    clearTimeout(this.#reconnectTimer);
    clearTimeout(this.#handshakeTimer);
    const canceled = new RoomcastError("ECANCELED", "client closed");
    for (const [req, q] of this.#queries) {
      this.#queries.delete(req);
      clearTimeout(q.timer);
      q.reject(canceled);
    }
    for (const sub of this.#subs.values()) {
      this.#settle(sub, new RoomcastError("ECANCELED", "client closed",
                                          { stage: "subscribe" }));
    }
    const sock = this.#sock;
    this.#sock = null;
    if (!sock || sock.destroyed) {
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => sock.destroy(), timeoutMs);
      sock.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
      sock.end();
    });
  }
}

//  Connect and complete the handshake. Resolves with a connected client;
//  with retry, resolves with a client that keeps trying even when the
//  first attempt failed. Without retry, rejects with ENOENT, ECONNREFUSED,
//  ETIMEDOUT or EPROTO.
export async function connect(options = {}) {
  const client = new Client(options);
  const err = await client._firstAttempt(options.connectTimeoutMs ?? 5000);
  if (err && !options.retry) {
    await client.close();
    const code = err.code && MESSAGES[err.code] ? err.code : "EPROTO";
    throw new RoomcastError(code, `cannot connect to ${client.socketPath}: ` +
                            (err.message || code), { stage: "connect", cause: err });
  }
  return client;
}

export default { Client, connect, RoomcastError, strerror, STAGES, DEFAULT_SOCKET };
