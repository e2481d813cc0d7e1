/*  roomcast/socket.io: roomcast as a socket.io adapter.

    Built on socket.io-adapter's ClusterAdapterWithHeartbeat (>= 2.5.4,
    written against 2.5.9), the base class of the official Redis streams and
    Postgres adapters: it turns every cross-server operation (broadcast,
    except, local, socketsJoin/Leave, disconnectSockets, fetchSockets,
    serverSideEmit with acks, emitWithAck, the server count by heartbeat)
    into messages, and this file only carries them: doPublish sends a
    message to the other servers, doPublishResponse answers one server, and
    what arrives goes to onMessage / onResponse.

    One roomcast client per createAdapter() call, shared by the adapters of
    every socket.io namespace of that server. Topics, in the roomcast
    namespace `namespace` (default "socket.io"), for socket.io namespace N:

      N#            every server of N: heartbeats, requests, broadcasts to
                    everyone, broadcasts with acks
      N#@UID        responses to the adapter UID (one per server and N)
      N#r#ROOM      broadcasts to ROOM, subscribed while a local socket is
                    in ROOM (lazily: a server receives only the rooms its
                    sockets joined)

    A broadcast to rooms R0..Rn-1 goes once to each room's topic, copy k
    carrying k; the receiver delivers copy k to its sockets in Rk that are
    in none of R0..Rk-1, so a socket in several of the rooms gets the
    message once. Private rooms (socket ids: 20 characters, as socket.io
    makes them), rooms that are not a valid topic name, and more than
    MAX_SPLIT rooms go to N# with the full options instead, as do
    broadcasts with acks (every server must answer with its client count).

    A message is a msgpack array [1, message, k] (k = -1 when not split);
    binary attachments are msgpack bin, given back as Buffers.
*/
import { debuglog } from "node:util";
import { Decoder, Encoder } from "@msgpack/msgpack";
import { ClusterAdapterWithHeartbeat } from "socket.io-adapter";
import { Client, RoomcastError } from "./index.js";

const ENVELOPE_VERSION = 1;
const MAX_SPLIT = 16; // rooms of one broadcast sent to their own topics
const BROADCAST = 3;  // socket.io-adapter MessageType.BROADCAST
const debug = debuglog("roomcast:socket.io");
const encoder = new Encoder({ ignoreUndefined: true });
const decoder = new Decoder();

//  True when bytes may hold a msgpack bin (0xc4..0xc6); false is certain.
function mayHoldBin(bytes) {
  return bytes.includes(0xc4) || bytes.includes(0xc5) || bytes.includes(0xc6);
}

//  socket.io's own socket ids (base64id): 20 characters.
function looksLikeSocketId(room) {
  return typeof room === "string" && room.length === 20;
}

function topicOk(topic) {
  return Buffer.byteLength(topic) <= 255 && !/[\x00-\x1f\x7f]/.test(topic);
}

//  msgpack gives bin back as Uint8Array views; socket.io apps (and the
//  Redis adapter, whose notepack decodes to Buffer) expect Buffers.
function buffers(v, depth = 0) {
  if (v instanceof Uint8Array) {
    return Buffer.isBuffer(v) ? v
      : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  }
  if (depth > 32 || v === null || typeof v !== "object" ||
      v instanceof Date) {
    return v;
  }
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      v[i] = buffers(v[i], depth + 1);
    }
  } else {
    for (const key of Object.keys(v)) {
      v[key] = buffers(v[key], depth + 1);
    }
  }
  return v;
}

//  v with every ArrayBuffer as a Uint8Array (msgpack would write an
//  ArrayBuffer as an empty map); copies only what it changes, so the packet
//  socket.io delivers locally is left as it was.
function encodable(v, depth = 0) {
  if (v instanceof ArrayBuffer) {
    return new Uint8Array(v);
  }
  if (depth > 32 || v === null || typeof v !== "object" ||
      ArrayBuffer.isView(v) || v instanceof Date) {
    return v;
  }
  let out = v;
  const entries = Array.isArray(v) ? v.entries() : Object.entries(v);
  for (const [key, item] of entries) {
    const e = encodable(item, depth + 1);
    if (e !== item) {
      if (out === v) {
        out = Array.isArray(v) ? [...v] : { ...v };
      }
      out[key] = e;
    }
  }
  return out;
}

//  What one createAdapter() call shares between its namespaces' adapters.
class Shared {
  constructor(options) {
    const { client, namespace = "socket.io", ...clientOptions } = options;
    this.namespace = namespace;
    this.ownClient = !client;
    this.client = client || new Client({ name: "socket.io", ...clientOptions });
    this.adapters = new Map(); // socket.io namespace name -> adapter
    this.lost = false; // the link to the sidecar broke since it was up
    this.client.on("message", (m) => this.#onMessage(m));
    this.client.on("error", (err) => {
      for (const a of this.adapters.values()) {
        a.report(err);
      }
    });
    this.client.on("status", (s) => {
      if (s.state === "disconnected") {
        this.lost = true;
      } else if (s.state === "connected" && this.lost) {
        this.lost = false;
        for (const a of this.adapters.values()) {
          a.announce(); // after a sidecar restart: say we are back
        }
      }
    });
  }

  #onMessage(m) {
    if (m.namespace !== this.namespace) {
      return;
    }
    let v;
    try {
      v = m.binary ? decoder.decode(m.data) : null;
    } catch {
      v = null;
    }
    if (!Array.isArray(v) || v.length !== 3 || v[0] !== ENVELOPE_VERSION ||
        v[1] === null || typeof v[1] !== "object" ||
        typeof v[1].nsp !== "string" || !Number.isInteger(v[2])) {
      const err = new RoomcastError("EPROTO",
        `message on ${m.namespace}/${m.topic} is not a socket.io ` +
        `adapter envelope (origin ${m.origin}): dropped`,
        { stage: "delivery" });
      for (const a of this.adapters.values()) {
        a.report(err);
      }
      return;
    }
    const message = mayHoldBin(m.data) ? buffers(v[1]) : v[1];
    this.adapters.get(v[1].nsp)?.receive(message, v[2]);
  }
}

export class RoomcastAdapter extends ClusterAdapterWithHeartbeat {
  #shared;
  #client;
  #ns;
  #all;        // N#
  #self;       // N#@UID
  #pending = new Set(); // subscriptions not confirmed everywhere yet
  #subscribeTimeoutMs;
  #offset = 0;
  #closed = false;

  constructor(nsp, shared, options) {
    //  the base class takes an undefined option over its default
    const heartbeat = {};
    for (const key of ["heartbeatInterval", "heartbeatTimeout"]) {
      if (options[key] !== undefined) {
        heartbeat[key] = options[key];
      }
    }
    super(nsp, heartbeat);
    this.#shared = shared;
    this.#client = shared.client;
    this.#ns = shared.namespace;
    this.#subscribeTimeoutMs = options.subscribeTimeoutMs ?? 5000;
    this.#all = `${nsp.name}#`;
    this.#self = `${nsp.name}#@${this.uid}`;
    shared.adapters.set(nsp.name, this);
    this.on("create-room", (room) => {
      const topic = this.#roomTopic(room);
      if (topic && !this.#closed) {
        this.#subscribe(topic);
      }
    });
    this.on("delete-room", (room) => {
      const topic = this.#roomTopic(room);
      if (topic && !this.#closed) {
        this.#client.unsubscribe(this.#ns, topic);
      }
    });
  }

  get client() { return this.#client; }

  //  The topic of a public room, or null when the room travels on N#.
  #roomTopic(room) {
    if (typeof room !== "string" || looksLikeSocketId(room)) {
      return null;
    }
    const topic = `${this.nsp.name}#r#${room}`;
    return topicOk(topic) ? topic : null;
  }

  #subscribe(topic) {
    const p = this.#client.subscribe(this.#ns, topic);
    this.#pending.add(p);
    p.then(() => this.#pending.delete(p), (err) => {
      this.#pending.delete(p);
      if (err.code !== "ECANCELED") {
        this.report(err);
      }
    });
    return p;
  }

  //  Failures no socket.io call is waiting for go to the adapter's
  //  "error" event (io.of(N).adapter.on("error", ...)), or to
  //  NODE_DEBUG=roomcast:socket.io when nobody listens.
  report(err) {
    if (this.listenerCount("error") > 0) {
      this.emit("error", err);
    } else {
      debug("%s error (no listener): %s", err.stage, err.message);
    }
  }

  init() {
    this.#subscribe(this.#all);
    this.#subscribe(this.#self);
    this.announce();
  }

  //  Tell the other servers we are here (they answer with a heartbeat),
  //  once they can reach us.
  announce() {
    Promise.all([this.#client.subscribe(this.#ns, this.#all),
                 this.#client.subscribe(this.#ns, this.#self)]).then(() => {
      if (!this.#closed) {
        super.init();
      }
    }, (err) => {
      if (err.code !== "ECANCELED") {
        this.report(err);
      }
    });
  }

  //  Resolves when every topic of this adapter is subscribed on its
  //  sidecar and on every live peer; rejects after timeoutMs.
  ready(timeoutMs = this.#subscribeTimeoutMs) {
    //  a room left before its subscription was confirmed is no failure
    const all = Promise.all([this.#client.subscribe(this.#ns, this.#all),
                             this.#client.subscribe(this.#ns, this.#self),
                             ...[...this.#pending].map((p) => p.catch(() => {}))]);
    all.catch(() => {}); // when it is too late, nobody waits for it
    let timer;
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new RoomcastError("ETIMEDOUT",
        `socket.io adapter ${this.nsp.name}: subscriptions not ` +
        `confirmed everywhere within ${timeoutMs} ms`,
        { stage: "subscribe" })), timeoutMs);
    });
    return Promise.race([all, late]).finally(() => clearTimeout(timer));
  }

  receive(message, k) {
    if (k >= 0) {
      const opts = message.data?.opts;
      if (message.type !== BROADCAST || !opts ||
          !Array.isArray(opts.rooms) || k >= opts.rooms.length) {
        return;
      }
      //  copy k: the sockets of room k not reached by copies 0..k-1
      opts.except = [...opts.except, ...opts.rooms.slice(0, k)];
      opts.rooms = [opts.rooms[k]];
    }
    this.onMessage(message);
  }

  #send(topic, message, k) {
    //  a view of the encoder's buffer: tryPublish copies it into the frame
    const err = this.#client.tryPublish(this.#ns, topic,
      encoder.encodeSharedRef([ENVELOPE_VERSION, encodable(message), k]));
    if (err) {
      this.report(err);
      throw err;
    }
  }

  doPublish(message) {
    try {
      const rooms = message.data?.opts?.rooms;
      const split = message.type === BROADCAST &&
        message.data.requestId === undefined && rooms?.length > 0 &&
        rooms.length <= MAX_SPLIT;
      const topics = split ? rooms.map((r) => this.#roomTopic(r)) : [];
      if (topics.length > 0 && topics.every((t) => t !== null)) {
        topics.forEach((t, k) => this.#send(t, message, k));
      } else {
        this.#send(this.#all, message, -1);
      }
    } catch (err) {
      return Promise.reject(err);
    }
    return Promise.resolve(`${this.uid}-${++this.#offset}`);
  }

  doPublishResponse(requesterUid, response) {
    try {
      this.#send(`${this.nsp.name}#@${requesterUid}`, response, -1);
    } catch (err) {
      return Promise.reject(err);
    }
    return Promise.resolve();
  }

  //  Says goodbye to the other servers; the last adapter of a client
  //  this module made closes it (the goodbye is written first).
  async close() {
    if (this.#closed) {
      return;
    }
    super.close();
    this.#closed = true;
    const shared = this.#shared;
    shared.adapters.delete(this.nsp.name);
    for (const topic of [this.#all, this.#self]) {
      this.#client.unsubscribe(this.#ns, topic);
    }
    for (const room of this.rooms.keys()) {
      const topic = this.#roomTopic(room);
      if (topic) {
        this.#client.unsubscribe(this.#ns, topic);
      }
    }
    if (shared.adapters.size === 0 && shared.ownClient) {
      await this.#client.close();
    }
  }
}

//  The adapter factory: new Server({ adapter: createAdapter(options) }) or
//  io.adapter(createAdapter(options)). Options: those of the roomcast
//  Client (socket, name, ...) or client (one already made, left open at
//  close), namespace (roomcast namespace, default "socket.io"),
//  heartbeatInterval (5000 ms), heartbeatTimeout (10000 ms),
//  subscribeTimeoutMs (5000 ms, what ready() waits by default).
export function createAdapter(options = {}) {
  const {
    heartbeatInterval, heartbeatTimeout, subscribeTimeoutMs,
    ...sharedOptions
  } = options;
  let shared = null;
  return function roomcastAdapter(nsp) {
    if (!shared || (shared.ownClient && shared.client.state === "closed")) {
      shared = new Shared(sharedOptions); // a server closed and reopened
    }
    return new RoomcastAdapter(nsp, shared, {
      heartbeatInterval, heartbeatTimeout, subscribeTimeoutMs,
    });
  };
}

export default createAdapter;
