/*  wire: the app <-> sidecar frame codec, used by libroomcast and roomcastd.

    A frame is a 4-byte big-endian body length followed by a body that is one
    msgpack array [type, field, ...]. The field list of every type is one
    table in wire.c (the format is written down there and in PROTOCOL.md);
    the same table drives the encoder and the decoder.

    THREAD SAFETY: a wire_decoder_t belongs to one thread at a time; the
    encoder functions touch only the buffer they are given.
*/
#ifndef RC_WIRE_H
#define RC_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WIRE_VERSION           1
#define WIRE_PREFIX            4  // bytes of length prefix
#define WIRE_ID_SIZE           16 // instance ids and node ids
#define WIRE_MAX_NAME          255
#define WIRE_MAX_FRAME_DEFAULT (1024 * 1024 + 4096) // payload limit + headers

//  Frame types. The numbers are the protocol; never reuse one.
typedef enum {
    WIRE_HELLO = 1,   // C->S  first frame of a connection
    WIRE_WELCOME = 2, // S->C  answer to HELLO
    WIRE_SUB = 3,     // C->S  join a topic
    WIRE_UNSUB = 4,   // C->S  leave a topic
    WIRE_PUB = 5,     // C->S  publish
    WIRE_MSG = 6,     // S->C  a delivered message
    WIRE_ERR = 7,     // S->C  a request failed or the connection closes
    WIRE_PING = 8,    // both  liveness
    WIRE_PONG = 9,    // both  answer to PING
    WIRE_QUERY = 10,  // C->S  ask for status, topics, numsub ...
    WIRE_REPLY = 11,  // S->C  rows answering a QUERY
    WIRE_STATUS = 12, // S->C  health of the sidecar (readable, writable)
    WIRE_GAP = 13,    // S->C  messages of a stream were missed
    WIRE_SUBACK = 14, // S->C  a SUB took effect
    WIRE_PSET = 15,   // C->S  set our presence in a topic
    WIRE_PCLEAR = 16, // C->S  clear it
    WIRE_PLIST = 17,  // C->S  list a topic's presence (PEVENTs, then REPLY)
    WIRE_PEVENT = 18, // S->C  a presence entry is there / is gone
    WIRE_MEMBER = 19, // S->C  a cluster member changed state
    WIRE_TYPE_MAX = 20
} wire_type_t;

//  PUB and MSG flags.
#define WIRE_F_BINARY 0x01 // payload is binary (else text)
#define WIRE_F_ECHO   0x02 // PUB: deliver to the publisher too

//  HELLO flags.
#define WIRE_HF_GAPS     0x01 // send GAP notices to this connection
#define WIRE_HF_PRESENCE 0x02 // send PEVENTs of the topics it subscribed
#define WIRE_HF_MEMBERS  0x04 // send MEMBER events

//  ERR codes. The numbers are the protocol.
//  Why a GAP notice says messages were lost (GAP's code field).
typedef enum {
    WIRE_GAP_MESH = 0,       // lost between sidecars, not repaired
    WIRE_GAP_SLOW = 1,       // dropped at this app's queue budget
    WIRE_GAP_RECONNECT = 2,  // the app lost its sidecar (library-made)
    WIRE_GAP_ORIGIN_GONE = 3 // the origin died before it could re-send
} wire_gap_reason_t;

typedef enum {
    WIRE_E_PROTO = 1,    // not the protocol; the connection is closed
    WIRE_E_TOOBIG = 2,   // frame or payload over the limit
    WIRE_E_BADTYPE = 3,  // unknown frame type
    WIRE_E_ORDER = 4,    // frame not valid in this state (e.g. before HELLO)
    WIRE_E_BADNAME = 5,  // namespace or topic empty, too long or invalid
    WIRE_E_VERSION = 6,  // protocol version not supported
    WIRE_E_SLOW = 7,     // slow consumer: the connection is closed
    WIRE_E_SHUTDOWN = 8, // sidecar is shutting down
    WIRE_E_BADQUERY = 9, // unknown QUERY
    WIRE_E_LIMIT = 10,   // a limit of the sidecar was reached
    WIRE_E_DENIED = 11   // not allowed
} wire_err_t;

//  A borrowed byte string (msgpack str or bin); not NUL-terminated.
typedef struct {
    const char *ptr;
    uint32_t len;
} wire_str_t;

//  Every field any frame type carries. A type uses the subset its table row
//  names; the rest are left zero by the decoder and ignored by the encoder.
typedef struct {
    int type;
    uint64_t req;           // request id, echoed in ERR/REPLY/SUBACK
    uint64_t version;       // HELLO, WELCOME
    uint64_t flags;         // HELLO, PUB, MSG
    uint64_t seq;           // PUB, MSG: per (publisher, topic) sequence
    uint64_t code;          // ERR: wire_err_t; GAP: wire_gap_reason_t
    uint64_t count;         // GAP: missed; STATUS: live peers; MEMBER: state
    uint64_t max_payload;   // WELCOME
    uint64_t token;         // PING, PONG
    bool readable;          // STATUS
    bool writable;          // STATUS
    bool everywhere;        // SUBACK
    bool present;           // PEVENT: true there, false gone
    wire_str_t id;          // HELLO: instance id; MSG, GAP: origin instance
    wire_str_t node;        // WELCOME: sidecar node id; MSG: origin node
    wire_str_t name;        // HELLO: app name; WELCOME: sidecar version
    wire_str_t channel;     // WELCOME
    wire_str_t ns;          // namespace
    wire_str_t topic;       //
    wire_str_t payload;     // PUB, MSG
    wire_str_t text;        // ERR: reason; STATUS: detail; QUERY: what
    wire_str_t arg;         // QUERY argument; PSET, PCLEAR, PEVENT: key
    wire_str_t meta;        // PSET, PEVENT: the entry's data
    const wire_str_t *rows; // REPLY: 2*nrows strings, key then value
    size_t nrows;           // REPLY
} wire_frame_t;

//  A growable byte buffer. Encoders append whole frames to it.
typedef struct {
    uint8_t *data;
    size_t len;
    size_t cap;
} wire_buf_t;

//  Make room for n more bytes. Returns 0, or -1 with ENOMEM.
int wire_buf_reserve(wire_buf_t *self, size_t n)
    __attribute__((warn_unused_result));
//  Drop the first n bytes.
void wire_buf_consume(wire_buf_t *self, size_t n);
//  Release the memory; the buffer is empty and reusable afterwards.
void wire_buf_free(wire_buf_t *self);

//  At least the bytes wire_encode appends for frame, unless it has rows
//  (REPLY), which grow the buffer as they go.
size_t wire_frame_bound(const wire_frame_t *frame) __attribute__((nonnull));

//  Append one frame (prefix and body) to buf. Returns 0, or -1 with EINVAL
//  for an unknown type or ENOMEM.
int wire_encode(wire_buf_t *buf, const wire_frame_t *frame)
    __attribute__((warn_unused_result, nonnull));

//  Look at the front of data: returns 1 when a whole frame is there (its
//  body length in *body_len; the frame takes WIRE_PREFIX + *body_len bytes),
//  0 when more bytes are needed, -1 with EMSGSIZE when the announced length
//  is over max_body, or with EPROTO when it is zero.
int wire_peek(const uint8_t *data, size_t len, size_t max_body,
              size_t *body_len) __attribute__((nonnull));

typedef struct wire_decoder_t wire_decoder_t;

//  Create a decoder. Returns NULL on ENOMEM.
wire_decoder_t *wire_decoder_new(void);
void wire_decoder_destroy(wire_decoder_t **self_p);

//  Decode one frame body into *frame. Strings in *frame borrow from body
//  and from the decoder: both must outlive the frame's use, until the next
//  decode. Returns 0, or -1 with errno EPROTO (not msgpack, not an array,
//  a field of the wrong kind or count, trailing bytes) or EBADMSG (an
//  unknown type; frame->type is set). wire_decoder_error says why.
int wire_decode(wire_decoder_t *self, const uint8_t *body, size_t len,
                wire_frame_t *frame) __attribute__((warn_unused_result));

//  The reason of the last failed decode, for ERR texts and logs. Borrowed.
const char *wire_decoder_error(const wire_decoder_t *self);

//  True when the msgpack value(s) in p[0..len) announce no array, map, str
//  or bin larger than the bytes that are left. msgpack-c allocates an
//  array's table from its header alone, so every decoder of untrusted
//  msgpack (frames, envelopes, gossip) calls this before msgpack_unpack.
bool wire_msgpack_bounded(const uint8_t *p, size_t len);

//  The one key of a (namespace, topic) pair, on both sides (library
//  subscriptions and sequences, registry, routing-key cache, presence):
//  the namespace's length as two hex digits, the namespace, the topic, a
//  NUL. The length makes ("a", "bc") and ("ab", "c") different keys
//  whatever bytes the names hold, and the key is a C string (hash tables
//  keyed by strings). Returns the key's length (the NUL excluded), or 0
//  when a name is over WIRE_MAX_NAME bytes.
#define WIRE_TOPIC_KEY_MAX (2 + 2 * WIRE_MAX_NAME + 1)
size_t wire_topic_key(char out[WIRE_TOPIC_KEY_MAX], const char *ns,
                      size_t ns_len, const char *topic, size_t topic_len);

//  Name of a frame type ("PUB"), or "?" for an unknown one.
const char *wire_type_name(int type);

//  Build a wire_str_t from a NUL-terminated string (NULL gives empty).
wire_str_t wire_str(const char *s);

#endif
