/*  fuzz_envelope - envelope_open must survive any bytes.

    Input: routing key (the first 16 bytes, when there are that many), then
    the rest. Each input is tried two ways, under a fixed test key:

      1. as received frames: envelope_open (frame 1 = routing key, frame 2 =
         the rest). Covers framing and decryption; the seed corpus holds
         real sealed envelopes so the whole path is reached.
      2. as a body: the rest is sealed under the test key as format 1
         (associated data: the routing key) and as format 2 (a batch:
         routing key || 0x02), then opened. A fuzzer cannot forge a
         Poly1305 tag, so this is how its bytes reach both parsers and the
         routing key check.

    Every message of an accepted envelope is walked (envelope_opened_next)
    and checked. Seeds: tests/fuzz/corpus/envelope (channel "fuzz", key
    s_key below): sealed-* and body-* are format 1, batch-* format 2 (made
    with envelope_batch_* under s_key, channel "fuzz", topic chat/room1).
*/

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "keyring.h"

#define S_CHANNEL     "fuzz"
#define S_MAX_PAYLOAD 4096

//  A test key, not a secret: the seed corpus is sealed under it.
static const uint8_t s_key[KEYRING_KEY_SIZE] =
    "roomcast fuzz key, not a secret";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static keyring_t *s_ring(void)
{
    static keyring_t *ring = NULL;
    if (ring == NULL) {
        ring = keyring_new();
        if (ring == NULL || keyring_add(ring, s_key) != 0) {
            abort();
        }
    }
    return ring;
}

//  Checks what envelope_open promises about an accepted message.
static void s_check_one(const envelope_opened_t *opened)
{
    const envelope_t *env = &opened->env;
    if (env->topic_len == 0 || env->topic_len > ENVELOPE_NAME_MAX ||
        env->ns_len > ENVELOPE_NAME_MAX || env->topic[env->topic_len] != 0 ||
        env->ns[env->ns_len] != 0 || strlen(env->topic) != env->topic_len ||
        strlen(env->ns) != env->ns_len || env->kind > ENVELOPE_KIND_BINARY ||
        env->payload_len > S_MAX_PAYLOAD) {
        abort();
    }
    //  Touch every payload byte, so ASan checks the whole range.
    volatile uint8_t sum = 0;
    for (size_t i = 0; i < env->payload_len; i++) {
        sum ^= env->payload[i];
    }
    (void)sum;
}

//  ... about every message of it, in order.
static void s_check(envelope_opened_t *opened)
{
    size_t n = 0;
    uint64_t first = opened->env.event_id;
    do {
        s_check_one(opened);
        if (opened->index != n || opened->env.event_id != first + n) {
            abort();
        }
        n++;
    } while (envelope_opened_next(opened));
    if (n != opened->count || n == 0 ||
        (opened->format == ENVELOPE_FORMAT && n != 1)) {
        abort();
    }
}

static void s_try(const uint8_t *rkey, size_t rkey_len, const uint8_t *frame,
                  size_t frame_len)
{
    //  one cache for the whole run, as in a sidecar: hits and misses
    static rkeys_t *rkeys = NULL;
    if (rkeys == NULL && (rkeys = rkeys_new(s_ring(), S_CHANNEL)) == NULL) {
        abort();
    }
    envelope_opened_t opened;
    if (envelope_open(rkeys, rkey, rkey_len, frame, frame_len, S_MAX_PAYLOAD,
                      &opened) == 0) {
        s_check(&opened);
    }
    envelope_opened_release(&opened);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t rkey_len = size < KEYRING_RKEY_SIZE ? size : KEYRING_RKEY_SIZE;
    const uint8_t *rest = data + rkey_len;
    size_t rest_len = size - rkey_len;

    //  Exact-size copies, so ASan sees any read past the end.
    uint8_t *rkey = malloc(rkey_len ? rkey_len : 1);
    uint8_t *frame = malloc(rest_len ? rest_len : 1);
    if (rkey == NULL || frame == NULL) {
        abort();
    }
    memcpy(rkey, data, rkey_len);
    if (rest_len > 0) {
        memcpy(frame, rest, rest_len);
    }
    s_try(rkey, rkey_len, frame, rest_len);
    free(frame);

    for (int format = ENVELOPE_FORMAT;
         rkey_len == KEYRING_RKEY_SIZE && format <= ENVELOPE_FORMAT2;
         format++) {
        size_t cap = 1 + KEYRING_SEAL_OVERHEAD + rest_len;
        uint8_t *sealed = malloc(cap);
        size_t sealed_len = 0;
        uint8_t ad[KEYRING_RKEY_SIZE + 1];
        if (sealed == NULL) {
            abort();
        }
        memcpy(ad, rkey, KEYRING_RKEY_SIZE);
        ad[KEYRING_RKEY_SIZE] = ENVELOPE_FORMAT2;
        sealed[0] = (uint8_t)format;
        if (keyring_seal(s_ring(), ad,
                         KEYRING_RKEY_SIZE + (format == ENVELOPE_FORMAT2), rest,
                         rest_len, sealed + 1, cap - 1, &sealed_len) != 0) {
            abort();
        }
        s_try(rkey, rkey_len, sealed, 1 + sealed_len);
        free(sealed);
    }
    free(rkey);
    return 0;
}
