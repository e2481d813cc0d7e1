/*  wire: the app <-> sidecar frame codec (PROTOCOL.md, libclient/wire.c).

    Frame = u32 big-endian body length || body; body = msgpack array
    [type, fields...]. Fields by type (U uint, S str, B bin, I bin of 16
    bytes, b bool, R array of [str, str] rows):

      1  HELLO    C->S  version U, instance I, name S, flags U
      2  WELCOME  S->C  version U, node I, channel S, max_payload U,
                        server_version S
      3  SUB      C->S  req U, namespace S, topic S
      4  UNSUB    C->S  req U, namespace S, topic S
      5  PUB      C->S  req U, namespace S, topic S, flags U, seq U, payload B
      6  MSG      S->C  namespace S, topic S, flags U, origin_instance I,
                        seq U, payload B, origin_node I
      7  ERR      S->C  req U, code U, text S
      8  PING     both  token U
      9  PONG     both  token U
      10 QUERY    C->S  req U, what S, arg S
      11 REPLY    S->C  req U, rows R
      12 STATUS   S->C  readable b, writable b, live_peers U, detail S
      13 GAP      S->C  namespace S, topic S, origin_instance I, missed U,
                        reason U (GAP_REASONS)
      14 SUBACK   S->C  req U, namespace S, topic S, everywhere b
      15 PSET     C->S  req U, namespace S, topic S, key S, meta B
      16 PCLEAR   C->S  req U, namespace S, topic S, key S
      17 PLIST    C->S  req U, namespace S, topic S
      18 PEVENT   S->C  namespace S, topic S, key S, meta B, node I,
                        present b
      19 MEMBER   S->C  node I, name S, state U, endpoint S

    The decoder accepts exactly the shapes of the frames a sidecar sends;
    anything else is a protocol error for that frame.
*/
import { Decoder, Encoder } from "@msgpack/msgpack";

export const VERSION = 1;
export const PREFIX = 4;
export const ID_SIZE = 16;
export const MAX_NAME = 255;
export const FRAME_SLACK = 4096; // frame bytes beyond the payload limit
export const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

export const T = Object.freeze({
  HELLO: 1, WELCOME: 2, SUB: 3, UNSUB: 4, PUB: 5, MSG: 6, ERR: 7, PING: 8,
  PONG: 9, QUERY: 10, REPLY: 11, STATUS: 12, GAP: 13, SUBACK: 14,
  PSET: 15, PCLEAR: 16, PLIST: 17, PEVENT: 18, MEMBER: 19,
});

export const F_BINARY = 0x01; // PUB/MSG: payload is binary (else text)
export const F_ECHO = 0x02;   // PUB: deliver to the publisher too; MSG: own copy
export const HF_GAPS = 0x01;  // HELLO: send GAP notices
// GAP reason codes, by number (wire.h wire_gap_reason_t)
export const GAP_REASONS = ["mesh", "slow", "reconnect", "origin_gone"];
export const HF_PRESENCE = 0x02; // HELLO: send PEVENTs of the subscribed topics
export const HF_MEMBERS = 0x04;  // HELLO: send MEMBER events
//  ERR codes (PROTOCOL.md, wire_err_t in libclient/wire.h).
export const E = Object.freeze({
  PROTO: 1, TOOBIG: 2, BADTYPE: 3, ORDER: 4, BADNAME: 5, VERSION: 6,
  SLOW: 7, SHUTDOWN: 8, BADQUERY: 9, LIMIT: 10, DENIED: 11,
});
export const E_BADTYPE = E.BADTYPE; // ERR: unknown frame type
export const MAX_META = 65536;   // PSET meta

//  Frames a sidecar sends: field names and kinds, in wire order.
const SCHEMA = {
  [T.WELCOME]: [["version", "U"], ["node", "I"], ["channel", "S"],
                ["maxPayload", "U"], ["serverVersion", "S"]],
  [T.MSG]: [["namespace", "S"], ["topic", "S"], ["flags", "U"],
            ["origin", "I"], ["seq", "U"], ["payload", "B"],
            ["originNode", "I"]],
  [T.ERR]: [["req", "U"], ["code", "U"], ["text", "S"]],
  [T.PING]: [["token", "U"]],
  [T.PONG]: [["token", "U"]],
  [T.REPLY]: [["req", "U"], ["rows", "R"]],
  [T.STATUS]: [["readable", "b"], ["writable", "b"], ["livePeers", "U"],
               ["detail", "S"]],
  [T.GAP]: [["namespace", "S"], ["topic", "S"], ["origin", "I"],
            ["missed", "U"], ["reason", "U"]],
  [T.SUBACK]: [["req", "U"], ["namespace", "S"], ["topic", "S"],
               ["everywhere", "b"]],
  [T.PEVENT]: [["namespace", "S"], ["topic", "S"], ["key", "S"], ["meta", "B"],
               ["node", "I"], ["present", "b"]],
  [T.MEMBER]: [["node", "I"], ["name", "S"], ["state", "U"], ["endpoint", "S"]],
};

const CHECK = {
  U: (v) => (Number.isInteger(v) && v >= 0) || (typeof v === "bigint" && v >= 0n),
  S: (v) => typeof v === "string",
  B: (v) => v instanceof Uint8Array,
  I: (v) => v instanceof Uint8Array && v.length === ID_SIZE,
  b: (v) => typeof v === "boolean",
  R: (v) => Array.isArray(v) && v.every((row) => Array.isArray(row) &&
    row.length === 2 && typeof row[0] === "string" && typeof row[1] === "string"),
};

const encoder = new Encoder();
const decoder = new Decoder();

//  One frame, prefix included, ready to write. fields: [type, ...].
export function encode(fields) {
  const body = encoder.encodeSharedRef(fields);
  const out = Buffer.allocUnsafe(PREFIX + body.length);
  out.writeUInt32BE(body.length, 0);
  out.set(body, PREFIX);
  return out;
}

//  A frame body as an object {type, ...fields}, or a string saying why it is
//  not a frame this client understands. Unknown types give {type} alone (a
//  newer sidecar may send more types than this client knows).
export function decode(body) {
  let arr;
  try {
    arr = decoder.decode(body);
  } catch (err) {
    return `not msgpack: ${err.message}`;
  }
  if (!Array.isArray(arr) || !Number.isInteger(arr[0])) {
    return "frame is not an array starting with a type";
  }
  const type = arr[0];
  const schema = SCHEMA[type];
  if (!schema) {
    return { type, unknown: true };
  }
  if (arr.length !== schema.length + 1) {
    return `frame type ${type}: ${arr.length - 1} fields, ${schema.length} expected`;
  }
  const frame = { type };
  for (let i = 0; i < schema.length; i++) {
    const [name, kind] = schema[i];
    const v = arr[i + 1];
    if (!CHECK[kind](v)) {
      return `frame type ${type}: field ${name} is not ${kind}`;
    }
    frame[name] = typeof v === "bigint" ? Number(v) : v;
  }
  return frame;
}

//  Reassembles frame bodies from socket chunks.
export class FrameReader {
  #chunks = [];
  #have = 0;

  push(chunk) {
    this.#chunks.push(chunk);
    this.#have += chunk.length;
  }

  //  The next whole body, null when more bytes are needed; throws when the
  //  length prefix is 0 or over maxBody (the stream cannot be resynced).
  next(maxBody) {
    if (this.#have < PREFIX) {
      return null;
    }
    const head = this.#contiguous(PREFIX);
    const len = head.readUInt32BE(0);
    if (len === 0 || len > maxBody) {
      throw new Error(`frame length ${len} outside 1..${maxBody}`);
    }
    if (this.#have < PREFIX + len) {
      return null;
    }
    const all = this.#contiguous(PREFIX + len);
    const body = all.subarray(PREFIX, PREFIX + len);
    this.#consume(PREFIX + len);
    return body;
  }

  //  The first n bytes as one buffer (joins chunks only when needed).
  #contiguous(n) {
    if (this.#chunks[0].length < n) {
      const joined = Buffer.concat(this.#chunks);
      this.#chunks = [joined];
    }
    return this.#chunks[0];
  }

  #consume(n) {
    while (n > 0) {
      const first = this.#chunks[0];
      if (first.length <= n) {
        this.#chunks.shift();
        n -= first.length;
        this.#have -= first.length;
      } else {
        this.#chunks[0] = first.subarray(n);
        this.#have -= n;
        n = 0;
      }
    }
  }

  clear() {
    this.#chunks = [];
    this.#have = 0;
  }
}
