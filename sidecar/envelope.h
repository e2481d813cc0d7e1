/*  envelope - the sealed message sidecars relay to each other.

    A mesh message is two ZeroMQ frames: the 16-byte routing key, then the
    sealed body. envelope_seal builds frame 2 from an envelope_t and a routing
    key; envelope_open checks and decodes it. The byte layout is documented
    at the top of envelope.c (and in PROTOCOL.md).

    envelope_open accepts a message only when all of these hold:
      - frame 1 is 16 bytes and frame 2 starts with the format byte 0x01;
      - a key of the ring opens frame 2 with frame 1 as associated data;
      - the body is exactly the version-1 msgpack array, with the limits
        below (names of at most 255 bytes without NUL, topic not empty,
        kind 0 or 1, ids of 16 bytes, payload within the caller's limit);
      - frame 1 is the routing key of (channel, namespace, topic) under the
        very key that opened it, so a body cannot be replayed under another
        topic, namespace or channel.

    THREAD SAFETY: no state of its own; see keyring.h for the keyring and
    rkeys.h for the routing-key cache envelope_open uses.
*/

#ifndef RC_ENVELOPE_H_INCLUDED
#define RC_ENVELOPE_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#include "keyring.h"
#include "rkeys.h"

#define ENVELOPE_FORMAT   0x01 // first byte of frame 2
#define ENVELOPE_VERSION  1    // first element of the body
#define ENVELOPE_ID_SIZE  16   // origin node and origin instance ids
#define ENVELOPE_NAME_MAX 255  // bytes in a namespace or a topic

#define ENVELOPE_KIND_TEXT   0
#define ENVELOPE_KIND_BINARY 1

//  Largest body envelope_open accepts besides the payload: every element at
//  its widest msgpack encoding, names at 255 bytes.
#define ENVELOPE_BODY_MAX_FIXED                                                \
    (1 + 9 + 2 * (5 + ENVELOPE_ID_SIZE) + 2 * 9 +                              \
     2 * (5 + ENVELOPE_NAME_MAX) + 9 + 5 + 9)

//  Frame 2 of a message with a payload of at most max_payload bytes is never
//  longer than ENVELOPE_MAX_SEALED (max_payload): the bound for
//  ZMQ_MAXMSGSIZE, and what envelope_open checks before decrypting.
#define ENVELOPE_MAX_OVERHEAD                                                  \
    (1 + KEYRING_SEAL_OVERHEAD + ENVELOPE_BODY_MAX_FIXED)
#define ENVELOPE_MAX_SEALED(max_payload) ((max_payload) + ENVELOPE_MAX_OVERHEAD)

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

//  An opened envelope. It owns one heap block that env's pointers refer
//  to; a shallow copy moves that ownership (release exactly one copy).
typedef struct {
    envelope_t env;   // the message
    size_t key_index; // key that opened it: 0 current, 1 extra
    uint8_t *block_;  // owned; private to envelope.c
} envelope_opened_t;

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

//  Check and decode a received message: rkey is frame 1, sealed frame 2,
//  rkeys this sidecar's ring and cluster channel (and its cache of routing
//  keys), max_payload the largest payload accepted. On success fills *out
//  (release it with envelope_opened_release) and returns 0. On failure
//  returns -1 with errno, and *out is empty (releasing it is harmless):
//    EBADMSG   does not open: frame 1 not 16 bytes, frame 2 too short or
//              without the format byte, wrong key, tampered, or frame 1 is
//              not the routing key it was sealed with;
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

//  Free what an opened envelope owns and empty it. Safe to call twice, and
//  on a zeroed or failed envelope_opened_t.
void envelope_opened_release(envelope_opened_t *self);

#endif
