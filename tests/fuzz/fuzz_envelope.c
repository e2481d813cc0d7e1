/*  fuzz_envelope - envelope_open must survive any bytes.

    Input: routing key (the first 16 bytes, when there are that many), then
    the rest. Each input is tried two ways, under a fixed test key:

      1. as received frames: envelope_open (frame 1 = routing key, frame 2 =
         the rest). Covers framing and decryption; the seed corpus holds
         real sealed envelopes so the whole path is reached.
      2. as a body: the rest is sealed under the test key with the routing
         key as associated data, then opened. A fuzzer cannot forge a
         Poly1305 tag, so this is how its bytes reach the msgpack parser and
         the routing key check.

    Seeds: tests/fuzz/corpus/envelope (channel "fuzz", key s_key below).
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
static void s_check(const envelope_opened_t *opened)
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

    if (rkey_len == KEYRING_RKEY_SIZE) {
        size_t cap = 1 + KEYRING_SEAL_OVERHEAD + rest_len;
        uint8_t *sealed = malloc(cap);
        size_t sealed_len = 0;
        if (sealed == NULL) {
            abort();
        }
        sealed[0] = ENVELOPE_FORMAT;
        if (keyring_seal(s_ring(), rkey, rkey_len, rest, rest_len, sealed + 1,
                         cap - 1, &sealed_len) != 0) {
            abort();
        }
        s_try(rkey, rkey_len, sealed, 1 + sealed_len);
        free(sealed);
    }
    free(rkey);
    return 0;
}
