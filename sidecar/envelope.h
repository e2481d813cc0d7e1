/*  envelope - the sealed message sidecars relay to each other.

    A mesh message is two ZeroMQ frames: the 16-byte routing key, then the
    sealed body. Two formats, told apart by the first byte of frame 2:

      format 1  one message (envelope_seal; what roomcast 0.1 sends)
      format 2  a batch: one or more messages of ONE routing key (namespace
                and topic) from one origin node, sealed once
                (envelope_batch_*; what roomcastd sends)

    envelope_open accepts both; any other format byte is refused (ENOPROTOOPT)
    so the caller can count and name it. The byte layout is documented at
    the top of envelope.c (and in PROTOCOL.md).

    envelope_open accepts an envelope only when all of these hold:
      - frame 1 is 16 bytes and frame 2 starts with format byte 1 or 2;
      - a key of the ring opens frame 2 with frame 1 as associated data;
      - the body is exactly the msgpack array of its format, with the limits
        below (names of at most 255 bytes without NUL, topic not empty,
        kind 0 or 1, ids of 16 bytes, every payload within the caller's
        limit, at least one message in a batch, event ids not wrapping);
      - frame 1 is the routing key of (channel, namespace, topic) under the
        very key that opened it, so a body cannot be replayed under another
        topic, namespace or channel.
    A batch is accepted or refused as a whole: no message of a batch with
    one bad message is delivered.

    THREAD SAFETY: no state of its own; see keyring.h for the keyring and
    rkeys.h for the routing-key cache envelope_open uses.
*/

#ifndef RC_ENVELOPE_H_INCLUDED
#define RC_ENVELOPE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keyring.h"
#include "rkeys.h"

#define ENVELOPE_FORMAT   0x01 // first byte of frame 2: one message
#define ENVELOPE_FORMAT2  0x02 // first byte of frame 2: a batch
#define ENVELOPE_VERSION  1    // first element of a format-1 body
#define ENVELOPE_VERSION2 2    // first element of a format-2 body
#define ENVELOPE_ID_SIZE  16   // origin node and origin instance ids
#define ENVELOPE_NAME_MAX 255  // bytes in a namespace or a topic

#define ENVELOPE_KIND_TEXT   0
#define ENVELOPE_KIND_BINARY 1

//  Largest body envelope_open accepts besides the payload: every element at
//  its widest msgpack encoding, names at 255 bytes.
#define ENVELOPE_BODY_MAX_FIXED                                                \
    (1 + 9 + 2 * (5 + ENVELOPE_ID_SIZE) + 2 * 9 +                              \
     2 * (5 + ENVELOPE_NAME_MAX) + 9 + 5 + 9)

//  A batch grows past ENVELOPE_BATCH_BYTES of body only when it holds one
//  message (a large payload goes alone), and past ENVELOPE_BATCH_MAX
//  messages never: what a receiver must take whatever its own payload
//  limit, and what keeps a batch inside the duplicate filter's window.
#define ENVELOPE_BATCH_BYTES 65536
#define ENVELOPE_BATCH_MAX   1024

//  Frame 2 with payloads of at most max_payload bytes is never longer than
//  ENVELOPE_MAX_SEALED (max_payload): the bound for ZMQ_MAXMSGSIZE, and
//  what envelope_open checks before decrypting. A one-message batch fits
//  the format-1 bound (envelope.c asserts it).
#define ENVELOPE_MAX_OVERHEAD                                                  \
    (1 + KEYRING_SEAL_OVERHEAD + ENVELOPE_BODY_MAX_FIXED)
#define ENVELOPE_MAX_SEALED(max_payload)                                       \
    ((max_payload) + ENVELOPE_MAX_OVERHEAD > ENVELOPE_BATCH_SEALED_MAX         \
         ? (max_payload) + ENVELOPE_MAX_OVERHEAD                               \
         : ENVELOPE_BATCH_SEALED_MAX)
#define ENVELOPE_BATCH_SEALED_MAX                                              \
    (1 + KEYRING_SEAL_OVERHEAD + ENVELOPE_BATCH_BYTES)

#if defined(__GNUC__)
#define ENVELOPE_WUR __attribute__((warn_unused_result))
#else
#define ENVELOPE_WUR
#endif

//  One message. For envelope_seal the pointers are the caller's and need
//  not be NUL terminated; in an opened envelope they point into memory the
//  envelope_opened_t owns, and ns and topic are NUL terminated.
typedef struct {
    uint8_t origin_node[ENVELOPE_ID_SIZE];     // publishing sidecar
    uint8_t origin_instance[ENVELOPE_ID_SIZE]; // publishing app instance
    uint64_t sequence;                         // per (instance, ns, topic)
    uint64_t event_id;                         // per origin node, for dedup
    const char *ns;                            // namespace, may be empty
    size_t ns_len;                             // 0..255
    const char *topic;                         // topic, never empty
    size_t topic_len;                          // 1..255
    uint8_t kind;                              // ENVELOPE_KIND_*
    const uint8_t *payload;                    // any bytes
    size_t payload_len;                        // bytes of payload
    uint64_t timestamp_ms;                     // sender clock, ms since epoch
} envelope_t;

//  An opened envelope: env is its first message after envelope_open, the
//  next one after each envelope_opened_next. It owns one heap block that
//  env's pointers refer to; a shallow copy moves that ownership (release
//  exactly one copy).
typedef struct {
    envelope_t env;   // the current message
    size_t count;     // messages in the envelope (1 in format 1)
    size_t index;     // env is message index (0 first)
    size_t key_index; // key that opened it: 0 current, 1 extra
    uint8_t format;   // ENVELOPE_FORMAT or ENVELOPE_FORMAT2
    uint8_t *block_;  // owned; private to envelope.c
    size_t len_;      // private: body bytes in block_
    size_t off_;      // private: where message index + 1 starts
} envelope_opened_t;

//  A format-2 batch being built: messages of one (namespace, topic) from
//  one origin node, appended in order, then sealed at once. Zero it (or
//  let envelope_batch_release do it) before the first envelope_batch_start.
//  Its buffer is kept from batch to batch (released when it grew past 16
//  KiB), so a steady flow of small batches appends without allocating.
typedef struct {
    size_t count;  // messages added since envelope_batch_start
    uint8_t *buf_; // private: the body being written
    size_t cap_;   // private
    size_t len_;   // private: body bytes written
    size_t stamp_; // private: offset of timestamp_ms in the body
    uint8_t last_[ENVELOPE_ID_SIZE]; // private: instance of the last message
} envelope_batch_t;

//  Serialize env and seal it under ring's current key with rkey (the
//  message's routing key, frame 1) as associated data. Serializes and
//  encrypts in place in one allocation. On success *out_p is frame 2,
//  *out_len bytes, and the caller owns it (free()). Returns 0, or -1 with
//  errno EINVAL (empty topic, name over 255 bytes or holding a NUL, kind
//  not 0 or 1), EMSGSIZE (payload over 4 GiB), ENOKEY (empty ring) or
//  ENOMEM. rkey must be what keyring_routing_keys gives at index 0 for
//  (channel, env->ns, env->topic), or receivers will drop the message.
int envelope_seal(const keyring_t *ring, const envelope_t *env,
                  const uint8_t rkey[KEYRING_RKEY_SIZE], uint8_t **out_p,
                  size_t *out_len) ENVELOPE_WUR;

//  Start a batch for (ns, topic) from origin_node (copied; names need not
//  be NUL terminated). Returns 0, or -1 with errno EINVAL (empty topic, a
//  name over 255 bytes or holding a NUL) or ENOMEM.
int envelope_batch_start(envelope_batch_t *self,
                         const uint8_t origin_node[ENVELOPE_ID_SIZE],
                         const char *ns, size_t ns_len, const char *topic,
                         size_t topic_len) ENVELOPE_WUR;

//  Whether a message with payload_len bytes may join the batch: it is
//  empty, or it stays within ENVELOPE_BATCH_BYTES and ENVELOPE_BATCH_MAX.
bool envelope_batch_fits(const envelope_batch_t *self, size_t payload_len);

//  Append one message (payload copied) to a started batch. The caller
//  checked envelope_batch_fits. Returns 0, or -1 with errno EINVAL (kind not 0
//  or 1), EMSGSIZE (payload over 4 GiB) or ENOMEM (the batch is unchanged).
int envelope_batch_add(envelope_batch_t *self,
                       const uint8_t origin_instance[ENVELOPE_ID_SIZE],
                       uint64_t sequence, uint8_t kind, const uint8_t *payload,
                       size_t payload_len) ENVELOPE_WUR;

//  Seal the batch (at least one message) under ring's current key with
//  rkey as associated data: message i gets event id first_event_id + i.
//  On success *out_p is frame 2, *out_len bytes, the caller owns it
//  (free()), and the batch is empty (count 0) until the next start.
//  Returns 0, or -1 with errno ENOKEY (empty ring), EOVERFLOW (event ids
//  would wrap) or ENOMEM; the batch is unchanged then. rkey must be what
//  keyring_routing_keys gives at index 0 for (channel, ns, topic).
int envelope_batch_seal(envelope_batch_t *self, const keyring_t *ring,
                        const uint8_t rkey[KEYRING_RKEY_SIZE],
                        uint64_t first_event_id, uint64_t timestamp_ms,
                        uint8_t **out_p, size_t *out_len) ENVELOPE_WUR;

//  Whether envelope_batch_start succeeded since the last seal or clear.
bool envelope_batch_started(const envelope_batch_t *self);

//  Drop what the batch holds (it is not started any more); the buffer is
//  kept.
void envelope_batch_clear(envelope_batch_t *self);

//  Free the batch's buffer and zero it. Safe to call twice.
void envelope_batch_release(envelope_batch_t *self);

//  Check and decode a received envelope: rkey is frame 1, sealed frame 2,
//  rkeys this sidecar's ring and cluster channel (and its cache of routing
//  keys), max_payload the largest payload accepted. On success fills *out
//  (its first message in out->env; release it with envelope_opened_release)
//  and returns 0. On failure returns -1 with errno, and *out is empty
//  (releasing it is harmless):
//    ENOPROTOOPT  frame 2 starts with a format byte other than 1 and 2
//              (out->format holds it: a newer sidecar, or not ours);
//    EBADMSG   does not open: frame 1 not 16 bytes, frame 2 too short,
//              wrong key, tampered, or frame 1 is not the routing key it
//              was sealed with;
//    EPROTO    opens but is not a valid body (see the list above), or its
//              (channel, ns, topic) does not hash to frame 1;
//    EMSGSIZE  payload over max_payload (frame 2 over
//              ENVELOPE_MAX_SEALED(max_payload) is refused before
//              decrypting);
//    ENOMEM.
//  Never aborts and never reads outside the given buffers, whatever the
//  bytes.
int envelope_open(rkeys_t *rkeys, const uint8_t *rkey, size_t rkey_len,
                  const uint8_t *sealed, size_t sealed_len, size_t max_payload,
                  envelope_opened_t *out) ENVELOPE_WUR;

//  Move out->env to the next message of the envelope, in the order sent.
//  Returns false (env unchanged) after the last one.
bool envelope_opened_next(envelope_opened_t *self);

//  Free what an opened envelope owns and empty it. Safe to call twice, and
//  on a zeroed or failed envelope_opened_t.
void envelope_opened_release(envelope_opened_t *self);

#endif
