/*  envelope - the sealed mesh message. The contract is in envelope.h.

    Wire format (copied to PROTOCOL.md: change both together)
    ---------------------------------------------------------
    A mesh message is two ZeroMQ frames.

      frame 1   routing key, 16 bytes: keyring_routing_keys (channel, ns,
                topic) under the sender's current cluster key, i.e. keyed
                BLAKE2b-128 of "roomcast/rkey/v1" || u32be len || channel ||
                u32be len || ns || u32be len || topic. XPUB/SUB filter on
                it; a proxy sees nothing else.

      frame 2   sealed body:

                +--------+----------+--------------------------+----------+
                | 0x01   | nonce    | body, encrypted          | tag      |
                | format | 24 bytes | (as long as the body)    | 16 bytes |
                +--------+----------+--------------------------+----------+

                XChaCha20-Poly1305 IETF under the cluster key's sealing
                subkey (see keyring.h), random nonce, associated data =
                frame 1. The format byte is outside the seal; only 0x01 is
                accepted, and changes to the body go through its version.

    The body is one msgpack array of exactly ten scalars; the array header
    is the one-byte fixarray 0x9a (what every msgpack encoder writes):

      #  field            msgpack   value
      0  version          uint      1
      1  origin_node      bin       16 bytes: the sidecar that published
      2  origin_instance  bin       16 bytes: the app instance that published
      3  sequence         uint      per (origin_instance, namespace, topic),
                                    1, 2, 3, ...
      4  event_id         uint      per origin_node, increasing (dedup key)
      5  namespace        str       0..255 bytes, no NUL
      6  topic            str       1..255 bytes, no NUL
      7  kind             uint      0 text, 1 binary
      8  payload          bin       0..max_payload bytes, any value
      9  timestamp_ms     uint      sender's clock, ms since the Unix epoch

    Integers may use any msgpack width but must not be negative; str and
    bin any header size. Nothing may follow the array. After opening with
    key k, the receiver recomputes routing key k from its own channel and
    the body's namespace and topic; it must equal frame 1.
*/

#include "envelope.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>
#include <sodium.h>

#define S_FIELDS     10
#define S_ARRAY_HEAD 0x9a // fixarray of S_FIELDS
#define S_NAME_SLOT  (ENVELOPE_NAME_MAX + 1)

_Static_assert(S_ARRAY_HEAD == (0x90 | S_FIELDS), "fixarray header");

//  --- sealing ------------------------------------------------------------

typedef struct {
    uint8_t *data; // where the body goes
    size_t cap;    // bytes reserved by s_body_bound
    size_t len;    // bytes written
} s_writer_t;

static int s_write(void *data, const char *buf, size_t len)
{
    s_writer_t *writer = data;
    if (len == 0) {
        return 0; // empty names and payloads may come with a NULL pointer
    }
    //  The buffer was sized by s_body_bound: running out is our bug.
    assert(len <= writer->cap - writer->len);
    memcpy(writer->data + writer->len, buf, len);
    writer->len += len;
    return 0;
}

//  An upper bound of what msgpack-c writes for env (it always picks the
//  narrowest encoding): the seal buffer is allocated once, at this size.
static size_t s_body_bound(const envelope_t *env)
{
    return 1                            // fixarray header
           + 9                          // version
           + 2 * (2 + ENVELOPE_ID_SIZE) // two bin8 ids
           + 2 * 9                      // sequence, event_id
           + 5 + env->ns_len            // namespace
           + 5 + env->topic_len         // topic
           + 9                          // kind
           + 5 + env->payload_len       // payload
           + 9;                         // timestamp_ms
}

static bool s_name_ok(const char *name, size_t len, size_t min)
{
    return len >= min && len <= ENVELOPE_NAME_MAX &&
           (len == 0 || memchr(name, '\0', len) == NULL);
}

int envelope_seal(const keyring_t *ring, const envelope_t *env,
                  const uint8_t rkey[KEYRING_RKEY_SIZE], uint8_t **out_p,
                  size_t *out_len)
{
    assert(ring);
    assert(env);
    assert(rkey);
    assert(out_p);
    assert(out_len);
    assert(env->ns || env->ns_len == 0);
    assert(env->topic || env->topic_len == 0);
    assert(env->payload || env->payload_len == 0);
    *out_p = NULL;
    *out_len = 0;
    if (!s_name_ok(env->ns, env->ns_len, 0) ||
        !s_name_ok(env->topic, env->topic_len, 1) ||
        (env->kind != ENVELOPE_KIND_TEXT &&
         env->kind != ENVELOPE_KIND_BINARY)) {
        errno = EINVAL;
        return -1;
    }
    if (env->payload_len > UINT32_MAX) { // msgpack bin32 is the widest
        errno = EMSGSIZE;
        return -1;
    }
    if (keyring_size(ring) == 0) {
        errno = ENOKEY;
        return -1;
    }

    //  format || nonce || body || tag, the body sealed where it was written.
    size_t body_cap = s_body_bound(env);
    size_t head = 1 + KEYRING_NONCE_SIZE;
    size_t cap = head + body_cap + KEYRING_TAG_SIZE;
    uint8_t *buf = malloc(cap);
    if (buf == NULL) {
        errno = ENOMEM;
        return -1;
    }
    s_writer_t writer = {buf + head, body_cap, 0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &writer, s_write);
    int rc = msgpack_pack_array(&pk, S_FIELDS);
    rc |= msgpack_pack_uint8(&pk, ENVELOPE_VERSION);
    rc |= msgpack_pack_bin_with_body(&pk, env->origin_node, ENVELOPE_ID_SIZE);
    rc |=
        msgpack_pack_bin_with_body(&pk, env->origin_instance, ENVELOPE_ID_SIZE);
    rc |= msgpack_pack_uint64(&pk, env->sequence);
    rc |= msgpack_pack_uint64(&pk, env->event_id);
    rc |= msgpack_pack_str_with_body(&pk, env->ns, env->ns_len);
    rc |= msgpack_pack_str_with_body(&pk, env->topic, env->topic_len);
    rc |= msgpack_pack_uint8(&pk, env->kind);
    rc |= msgpack_pack_bin_with_body(&pk, env->payload, env->payload_len);
    rc |= msgpack_pack_uint64(&pk, env->timestamp_ms);
    assert(rc == 0); // s_write cannot fail
    assert(buf[head] == S_ARRAY_HEAD);

    buf[0] = ENVELOPE_FORMAT;
    size_t sealed_len = 0;
    if (keyring_seal(ring, rkey, KEYRING_RKEY_SIZE, buf + head, writer.len,
                     buf + 1, cap - 1, &sealed_len) != 0) {
        int saved = errno;
        free(buf);
        errno = saved;
        return -1;
    }
    *out_p = buf;
    *out_len = 1 + sealed_len;
    return 0;
}

//  --- opening ------------------------------------------------------------

typedef struct {
    const uint8_t *data; // the decrypted body
    size_t len;          // its length
    size_t off;          // next element
    msgpack_object obj;  // the element just read
    msgpack_zone zone;   // never used: the body holds scalars only
} s_reader_t;

//  Reads the next element, which must be a scalar of the given type.
//  msgpack-c allocates count * 24 bytes the moment it meets an array or map
//  header, before it knows whether the data is there; our body holds no
//  containers, so they are refused by their first byte, unparsed.
static bool s_next(s_reader_t *reader, msgpack_object_type type)
{
    if (reader->off >= reader->len) {
        return false;
    }
    uint8_t first = reader->data[reader->off];
    bool container = (first >= 0x80 && first <= 0x9f) || // fixmap, fixarray
                     (first >= 0xdc && first <= 0xdf);   // array/map 16/32
    if (container) {
        return false;
    }
    //  msgpack_unpack with one zone for the whole body: msgpack_unpack_next
    //  makes a zone per call (10 per envelope, a fifth of the receive cost)
    msgpack_unpack_return rc =
        msgpack_unpack((const char *)reader->data, reader->len, &reader->off,
                       &reader->zone, &reader->obj);
    if (rc != MSGPACK_UNPACK_SUCCESS && rc != MSGPACK_UNPACK_EXTRA_BYTES) {
        return false;
    }
    return reader->obj.type == type;
}

static bool s_next_uint(s_reader_t *reader, uint64_t *value)
{
    if (!s_next(reader, MSGPACK_OBJECT_POSITIVE_INTEGER)) {
        return false;
    }
    *value = reader->obj.via.u64;
    return true;
}

static bool s_next_id(s_reader_t *reader, uint8_t id[ENVELOPE_ID_SIZE])
{
    if (!s_next(reader, MSGPACK_OBJECT_BIN) ||
        reader->obj.via.bin.size != ENVELOPE_ID_SIZE) {
        return false;
    }
    memcpy(id, reader->obj.via.bin.ptr, ENVELOPE_ID_SIZE);
    return true;
}

//  Copies the name into slot, NUL terminated, and points *name at it.
static bool s_next_name(s_reader_t *reader, size_t min, char *slot,
                        const char **name, size_t *len)
{
    if (!s_next(reader, MSGPACK_OBJECT_STR)) {
        return false;
    }
    const msgpack_object_str *str = &reader->obj.via.str;
    if (!s_name_ok(str->ptr, str->size, min)) {
        return false;
    }
    if (str->size > 0) {
        memcpy(slot, str->ptr, str->size);
    }
    slot[str->size] = '\0';
    *name = slot;
    *len = str->size;
    return true;
}

//  Decodes the body into env; names are copied to the two slots after the
//  body in the same block. Returns 0 or an errno value.
static int s_parse(s_reader_t *reader, size_t max_payload, char *slots,
                   envelope_t *env)
{
    uint64_t version = 0;
    uint64_t kind = 0;
    if (reader->len == 0 || reader->data[0] != S_ARRAY_HEAD) {
        return EPROTO;
    }
    reader->off = 1;
    if (!s_next_uint(reader, &version) || version != ENVELOPE_VERSION ||
        !s_next_id(reader, env->origin_node) ||
        !s_next_id(reader, env->origin_instance) ||
        !s_next_uint(reader, &env->sequence) ||
        !s_next_uint(reader, &env->event_id) ||
        !s_next_name(reader, 0, slots, &env->ns, &env->ns_len) ||
        !s_next_name(reader, 1, slots + S_NAME_SLOT, &env->topic,
                     &env->topic_len) ||
        !s_next_uint(reader, &kind) || kind > ENVELOPE_KIND_BINARY ||
        !s_next(reader, MSGPACK_OBJECT_BIN)) {
        return EPROTO;
    }
    env->kind = (uint8_t)kind;
    const msgpack_object_bin *bin = &reader->obj.via.bin;
    if (bin->size > max_payload) {
        return EMSGSIZE;
    }
    //  A bin points into the body, which the block owns: no copy.
    env->payload = (const uint8_t *)bin->ptr;
    env->payload_len = bin->size;
    if (!s_next_uint(reader, &env->timestamp_ms) ||
        reader->off != reader->len) {
        return EPROTO;
    }
    return 0;
}

//  The body must hash back to frame 1 under the key that opened it.
static int s_check_rkey(rkeys_t *rkeys, const envelope_t *env, size_t key_index,
                        const uint8_t *rkey)
{
    uint8_t expect[KEYRING_MAX_KEYS][KEYRING_RKEY_SIZE];
    int keys = rkeys_get(rkeys, env->ns, env->ns_len, env->topic,
                         env->topic_len, expect);
    if (keys < 0 && errno == ENOMEM) {
        return ENOMEM;
    }
    if (keys < 0 || key_index >= (size_t)keys ||
        sodium_memcmp(expect[key_index], rkey, KEYRING_RKEY_SIZE) != 0) {
        return EPROTO;
    }
    return 0;
}

int envelope_open(rkeys_t *rkeys, const uint8_t *rkey, size_t rkey_len,
                  const uint8_t *sealed, size_t sealed_len, size_t max_payload,
                  envelope_opened_t *out)
{
    assert(rkeys);
    const keyring_t *ring = rkeys_ring(rkeys);
    assert(out);
    assert(rkey || rkey_len == 0);
    assert(sealed || sealed_len == 0);
    memset(out, 0, sizeof *out);
    if (rkey_len != KEYRING_RKEY_SIZE ||
        sealed_len < 1 + KEYRING_SEAL_OVERHEAD ||
        sealed[0] != ENVELOPE_FORMAT) {
        errno = EBADMSG;
        return -1;
    }
    size_t body_cap = sealed_len - 1 - KEYRING_SEAL_OVERHEAD;
    if (body_cap > ENVELOPE_BODY_MAX_FIXED &&
        body_cap - ENVELOPE_BODY_MAX_FIXED > max_payload) {
        errno = EMSGSIZE;
        return -1;
    }
    //  One block: the body, then a NUL-terminated copy of each name.
    uint8_t *block = malloc(body_cap + 2 * S_NAME_SLOT);
    if (block == NULL) {
        errno = ENOMEM;
        return -1;
    }
    s_reader_t reader = {.data = block};
    if (!msgpack_zone_init(&reader.zone, 64)) {
        free(block);
        errno = ENOMEM;
        return -1;
    }
    size_t key_index = 0;
    int err = 0;
    if (keyring_open(ring, rkey, rkey_len, sealed + 1, sealed_len - 1, block,
                     body_cap, &reader.len, &key_index) != 0) {
        err = EBADMSG;
    }
    if (err == 0) {
        err =
            s_parse(&reader, max_payload, (char *)block + body_cap, &out->env);
    }
    msgpack_zone_destroy(&reader.zone);
    if (err == 0) {
        err = s_check_rkey(rkeys, &out->env, key_index, rkey);
    }
    if (err != 0) {
        free(block);
        memset(out, 0, sizeof *out);
        errno = err;
        return -1;
    }
    out->key_index = key_index;
    out->block_ = block;
    return 0;
}

void envelope_opened_release(envelope_opened_t *self)
{
    assert(self);
    free(self->block_);
    memset(self, 0, sizeof *self);
}
