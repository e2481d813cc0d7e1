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
                subkey (see keyring.h; nonce: a per-process prefix and a
                counter), associated data = frame 1. The format byte is
                outside the seal: 0x01 (this layout) and 0x02 (a batch,
                below) are accepted, and changes to a body go through its
                version.

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

    Format 2: a batch
    -----------------
    frame 2 is the same as format 1 but for the format byte, 0x02, and the
    associated data, frame 1 || 0x02 (17 bytes: the format byte is bound
    to the seal, and no format-2 body opens as format 1). The body
    holds the messages of one routing key from one origin node, in the
    order they were published: one seal, one routing-key check, one ZeroMQ
    message for all of them. It is one msgpack array of 6 + 4n elements
    (n >= 1 messages), any array header width:

      #       field            msgpack   value
      0       version          uint      2
      1       origin_node      bin       16 bytes
      2       namespace        str       0..255 bytes, no NUL
      3       topic            str       1..255 bytes, no NUL
      4       timestamp_ms     uint      sender's clock when it sealed
      5       first_event_id   uint      message i has event id
                                         first_event_id + i (the dedup key;
                                         must not pass 2^64 - 1)
      then, for each message i = 0 .. n-1, four elements:
      6+4i    origin_instance  bin|nil   16 bytes; nil: the same as message
                                         i-1 (never nil for message 0)
      7+4i    sequence         uint      as in format 1
      8+4i    kind             uint      0 text, 1 binary
      9+4i    payload          bin       0..max_payload bytes

    roomcastd writes the array header as array 32 and timestamp_ms and
    first_event_id as uint 64 (fixed places, filled in at sealing); readers
    take any width. A sender keeps a batch within ENVELOPE_BATCH_BYTES of
    body and ENVELOPE_BATCH_MAX messages unless it holds one message.
    Nothing may follow the array; one bad message refuses the batch.

    Rolling upgrades: a receiver takes both formats; roomcastd sends only
    format 2, which a sidecar that knows format 1 only drops (it counts
    env_undecryptable). Any other format byte is refused and counted
    (env_refused_format), the caller logs it.
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

//  --- sealing a batch (format 2) ---------------------------------------

//  Format-2 header as roomcastd writes it: array 32, version, node, the two
//  names, then timestamp_ms and first_event_id as uint 64 at stamp_.
#define S2_FIXED_HEAD (5 + 1 + 2 + ENVELOPE_ID_SIZE + 2 * 9)
//  A message at its widest as roomcastd writes it, besides the payload.
#define S2_MSG_MAX (2 + ENVELOPE_ID_SIZE + 9 + 1 + 5)
//  A batch's buffer is kept from one batch to the next up to this size.
#define S_KEEP_BYTES 16384

_Static_assert(S2_FIXED_HEAD + 2 * (5 + ENVELOPE_NAME_MAX) + S2_MSG_MAX <=
                   ENVELOPE_BODY_MAX_FIXED,
               "a one-message batch fits the format-1 bound");

//  Room for want more bytes of body. Returns 0 or -1 (ENOMEM).
static int s_reserve(envelope_batch_t *self, size_t want)
{
    if (want <= self->cap_ - self->len_) {
        return 0;
    }
    size_t cap = self->cap_ ? self->cap_ : 1024;
    while (cap - self->len_ < want) {
        cap *= 2;
    }
    uint8_t *buf = realloc(self->buf_, cap);
    if (buf == NULL) {
        errno = ENOMEM;
        return -1;
    }
    self->buf_ = buf;
    self->cap_ = cap;
    return 0;
}

static void s_put(envelope_batch_t *self, const void *data, size_t len)
{
    assert(len <= self->cap_ - self->len_);
    if (len > 0) {
        memcpy(self->buf_ + self->len_, data, len);
        self->len_ += len;
    }
}

static void s_put_be(envelope_batch_t *self, uint8_t head, uint64_t value,
                     size_t bytes)
{
    uint8_t out[9] = {head};
    for (size_t i = 0; i < bytes; i++) {
        out[1 + i] = (uint8_t)(value >> (8 * (bytes - 1 - i)));
    }
    s_put(self, out, 1 + bytes);
}

//  A msgpack uint, narrowest encoding.
static void s_put_uint(envelope_batch_t *self, uint64_t value)
{
    if (value < 0x80) {
        uint8_t b = (uint8_t)value;
        s_put(self, &b, 1);
    } else if (value <= UINT8_MAX) {
        s_put_be(self, 0xcc, value, 1);
    } else if (value <= UINT16_MAX) {
        s_put_be(self, 0xcd, value, 2);
    } else if (value <= UINT32_MAX) {
        s_put_be(self, 0xce, value, 4);
    } else {
        s_put_be(self, 0xcf, value, 8);
    }
}

//  A msgpack str or bin header for len bytes, narrowest encoding.
static void s_put_raw_head(envelope_batch_t *self, bool str, size_t len)
{
    if (str && len < 32) {
        uint8_t b = (uint8_t)(0xa0 | len);
        s_put(self, &b, 1);
    } else if (len <= UINT8_MAX) {
        s_put_be(self, str ? 0xd9 : 0xc4, len, 1);
    } else if (len <= UINT16_MAX) {
        s_put_be(self, str ? 0xda : 0xc5, len, 2);
    } else {
        s_put_be(self, str ? 0xdb : 0xc6, len, 4);
    }
}

int envelope_batch_start(envelope_batch_t *self,
                         const uint8_t origin_node[ENVELOPE_ID_SIZE],
                         const char *ns, size_t ns_len, const char *topic,
                         size_t topic_len)
{
    assert(self);
    assert(origin_node);
    assert(ns || ns_len == 0);
    assert(topic || topic_len == 0);
    self->count = 0;
    self->len_ = 0;
    if (!s_name_ok(ns, ns_len, 0) || !s_name_ok(topic, topic_len, 1)) {
        errno = EINVAL;
        return -1;
    }
    if (s_reserve(self, S2_FIXED_HEAD + 10 + ns_len + topic_len)) {
        return -1;
    }
    s_put_be(self, 0xdd, 0, 4); // element count, filled in at sealing
    s_put_uint(self, ENVELOPE_VERSION2);
    s_put_raw_head(self, false, ENVELOPE_ID_SIZE);
    s_put(self, origin_node, ENVELOPE_ID_SIZE);
    s_put_raw_head(self, true, ns_len);
    s_put(self, ns, ns_len);
    s_put_raw_head(self, true, topic_len);
    s_put(self, topic, topic_len);
    self->stamp_ = self->len_;
    s_put_be(self, 0xcf, 0, 8); // timestamp_ms, at sealing
    s_put_be(self, 0xcf, 0, 8); // first_event_id, at sealing
    return 0;
}

bool envelope_batch_fits(const envelope_batch_t *self, size_t payload_len)
{
    assert(self);
    return self->count == 0 ||
           (self->count < ENVELOPE_BATCH_MAX &&
            payload_len <= ENVELOPE_BATCH_BYTES &&
            self->len_ + S2_MSG_MAX + payload_len <= ENVELOPE_BATCH_BYTES);
}

int envelope_batch_add(envelope_batch_t *self,
                       const uint8_t origin_instance[ENVELOPE_ID_SIZE],
                       uint64_t sequence, uint8_t kind, const uint8_t *payload,
                       size_t payload_len)
{
    assert(self);
    assert(self->len_ > 0); // started
    assert(origin_instance);
    assert(payload || payload_len == 0);
    if (kind != ENVELOPE_KIND_TEXT && kind != ENVELOPE_KIND_BINARY) {
        errno = EINVAL;
        return -1;
    }
    if (payload_len > UINT32_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    if (s_reserve(self, S2_MSG_MAX + payload_len)) {
        return -1;
    }
    //  Most batches hold one app's run of messages: its id once.
    if (self->count > 0 &&
        memcmp(self->last_, origin_instance, ENVELOPE_ID_SIZE) == 0) {
        uint8_t nil = 0xc0;
        s_put(self, &nil, 1);
    } else {
        s_put_raw_head(self, false, ENVELOPE_ID_SIZE);
        s_put(self, origin_instance, ENVELOPE_ID_SIZE);
        memcpy(self->last_, origin_instance, ENVELOPE_ID_SIZE);
    }
    s_put_uint(self, sequence);
    s_put_uint(self, kind);
    s_put_raw_head(self, false, payload_len);
    s_put(self, payload, payload_len);
    self->count++;
    return 0;
}

//  Format 2's associated data: frame 1, then the format byte, so that the
//  byte outside the seal is bound to it too.
static void s_ad2(uint8_t ad[KEYRING_RKEY_SIZE + 1], const uint8_t *rkey)
{
    memcpy(ad, rkey, KEYRING_RKEY_SIZE);
    ad[KEYRING_RKEY_SIZE] = ENVELOPE_FORMAT2;
}

static void s_patch_be(uint8_t *at, uint64_t value, size_t bytes)
{
    for (size_t i = 0; i < bytes; i++) {
        at[i] = (uint8_t)(value >> (8 * (bytes - 1 - i)));
    }
}

int envelope_batch_seal(envelope_batch_t *self, const keyring_t *ring,
                        const uint8_t rkey[KEYRING_RKEY_SIZE],
                        uint64_t first_event_id, uint64_t timestamp_ms,
                        uint8_t **out_p, size_t *out_len)
{
    assert(self);
    assert(self->count > 0);
    assert(ring);
    assert(rkey);
    assert(out_p);
    assert(out_len);
    *out_p = NULL;
    *out_len = 0;
    if (keyring_size(ring) == 0) {
        errno = ENOKEY;
        return -1;
    }
    if (first_event_id > UINT64_MAX - (self->count - 1)) {
        errno = EOVERFLOW;
        return -1;
    }
    s_patch_be(self->buf_ + 1, 6 + 4 * (uint64_t)self->count, 4);
    s_patch_be(self->buf_ + self->stamp_ + 1, timestamp_ms, 8);
    s_patch_be(self->buf_ + self->stamp_ + 10, first_event_id, 8);
    //  Sealed out of place, from the kept buffer into the one ZeroMQ takes.
    size_t cap = 1 + KEYRING_SEAL_OVERHEAD + self->len_;
    uint8_t *out = malloc(cap);
    if (out == NULL) {
        errno = ENOMEM;
        return -1;
    }
    out[0] = ENVELOPE_FORMAT2;
    size_t sealed_len = 0;
    uint8_t ad[KEYRING_RKEY_SIZE + 1];
    s_ad2(ad, rkey);
    if (keyring_seal(ring, ad, sizeof ad, self->buf_, self->len_, out + 1,
                     cap - 1, &sealed_len) != 0) {
        int saved = errno;
        free(out);
        errno = saved;
        return -1;
    }
    *out_p = out;
    *out_len = 1 + sealed_len;
    self->count = 0;
    self->len_ = 0;
    //  A sidecar keeps a batch per routing key in use: what a burst grew
    //  goes back, so many topics do not pin many large buffers.
    if (self->cap_ > S_KEEP_BYTES) {
        free(self->buf_);
        self->buf_ = NULL;
        self->cap_ = 0;
    }
    return 0;
}

bool envelope_batch_started(const envelope_batch_t *self)
{
    assert(self);
    return self->len_ > 0;
}

void envelope_batch_clear(envelope_batch_t *self)
{
    assert(self);
    self->count = 0;
    self->len_ = 0;
}

void envelope_batch_release(envelope_batch_t *self)
{
    assert(self);
    free(self->buf_);
    memset(self, 0, sizeof *self);
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

//  --- reading format 2 ----------------------------------------------------

//  A hand-written msgpack reader for the few types a batch holds: no
//  allocation, every length checked against what is left.
typedef struct {
    const uint8_t *p; // the decrypted body
    size_t len;       // its length
    size_t off;       // next byte
} s_rd_t;

static bool s_rd_be(s_rd_t *r, size_t bytes, uint64_t *value)
{
    if (r->len - r->off < bytes) {
        return false;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < bytes; i++) {
        v = v << 8 | r->p[r->off + i];
    }
    r->off += bytes;
    *value = v;
    return true;
}

static bool s_rd_uint(s_rd_t *r, uint64_t *value)
{
    if (r->off >= r->len) {
        return false;
    }
    uint8_t b = r->p[r->off++];
    if (b < 0x80) {
        *value = b;
        return true;
    }
    if (b < 0xcc || b > 0xcf) {
        return false;
    }
    return s_rd_be(r, (size_t)1 << (b - 0xcc), value);
}

//  A str (str true) or bin of any header width; *ptr points into the body.
static bool s_rd_raw(s_rd_t *r, bool str, const uint8_t **ptr, size_t *len)
{
    if (r->off >= r->len) {
        return false;
    }
    uint8_t b = r->p[r->off++];
    uint64_t n = 0;
    if (str && b >= 0xa0 && b <= 0xbf) {
        n = b & 0x1f;
    } else if (b >= (str ? 0xd9 : 0xc4) && b <= (str ? 0xdb : 0xc6)) {
        if (!s_rd_be(r, (size_t)1 << (b - (str ? 0xd9 : 0xc4)), &n)) {
            return false;
        }
    } else {
        return false;
    }
    if (n > r->len - r->off) {
        return false;
    }
    *ptr = r->p + r->off;
    *len = (size_t)n;
    r->off += (size_t)n;
    return true;
}

static bool s_rd_array(s_rd_t *r, uint64_t *count)
{
    if (r->off >= r->len) {
        return false;
    }
    uint8_t b = r->p[r->off++];
    if (b >= 0x90 && b <= 0x9f) {
        *count = b & 0x0f;
        return true;
    }
    if (b == 0xdc || b == 0xdd) {
        return s_rd_be(r, b == 0xdc ? 2 : 4, count);
    }
    return false;
}

static bool s_rd_name(s_rd_t *r, size_t min, char *slot, const char **name,
                      size_t *len)
{
    const uint8_t *ptr = NULL;
    size_t n = 0;
    if (!s_rd_raw(r, true, &ptr, &n) || !s_name_ok((const char *)ptr, n, min)) {
        return false;
    }
    if (n > 0) {
        memcpy(slot, ptr, n);
    }
    slot[n] = '\0';
    *name = slot;
    *len = n;
    return true;
}

//  Reads the message at r->off into env (the instance stays when it is
//  nil; first: nil refused). Returns 0 or an errno value.
static int s_rd_message(s_rd_t *r, size_t max_payload, bool first,
                        envelope_t *env)
{
    const uint8_t *ptr = NULL;
    size_t n = 0;
    uint64_t kind = 0;
    if (r->off < r->len && r->p[r->off] == 0xc0 && !first) {
        r->off++; // the previous message's instance
    } else if (!s_rd_raw(r, false, &ptr, &n) || n != ENVELOPE_ID_SIZE) {
        return EPROTO;
    } else {
        memcpy(env->origin_instance, ptr, ENVELOPE_ID_SIZE);
    }
    if (!s_rd_uint(r, &env->sequence) || !s_rd_uint(r, &kind) ||
        kind > ENVELOPE_KIND_BINARY || !s_rd_raw(r, false, &ptr, &n)) {
        return EPROTO;
    }
    if (n > max_payload) {
        return EMSGSIZE;
    }
    env->kind = (uint8_t)kind;
    env->payload = ptr;
    env->payload_len = n;
    return 0;
}

//  Checks the whole batch and leaves out->env at its first message. Names
//  are copied to the two slots after the body. Returns 0 or an errno value.
static int s_parse2(const uint8_t *body, size_t len, size_t max_payload,
                    char *slots, envelope_opened_t *out)
{
    s_rd_t r = {body, len, 0};
    envelope_t *env = &out->env;
    uint64_t elements = 0, version = 0, first_event = 0;
    const uint8_t *ptr = NULL;
    size_t n = 0;
    if (!s_rd_array(&r, &elements) || elements < 10 || (elements - 6) % 4 ||
        !s_rd_uint(&r, &version) || version != ENVELOPE_VERSION2 ||
        !s_rd_raw(&r, false, &ptr, &n) || n != ENVELOPE_ID_SIZE) {
        return EPROTO;
    }
    memcpy(env->origin_node, ptr, ENVELOPE_ID_SIZE);
    uint64_t count = (elements - 6) / 4;
    if (!s_rd_name(&r, 0, slots, &env->ns, &env->ns_len) ||
        !s_rd_name(&r, 1, slots + S_NAME_SLOT, &env->topic, &env->topic_len) ||
        !s_rd_uint(&r, &env->timestamp_ms) || !s_rd_uint(&r, &first_event) ||
        first_event > UINT64_MAX - (count - 1)) {
        return EPROTO;
    }
    //  Every message is checked before any is delivered.
    size_t start = r.off;
    envelope_t scratch = *env;
    for (uint64_t i = 0; i < count; i++) {
        int err = s_rd_message(&r, max_payload, i == 0, &scratch);
        if (err != 0) {
            return err;
        }
    }
    if (r.off != r.len) {
        return EPROTO;
    }
    r.off = start;
    int err = s_rd_message(&r, max_payload, true, env);
    assert(err == 0);
    (void)err;
    env->event_id = first_event;
    out->count = (size_t)count;
    out->index = 0;
    out->len_ = len;
    out->off_ = r.off;
    return 0;
}

bool envelope_opened_next(envelope_opened_t *self)
{
    assert(self);
    if (self->index + 1 >= self->count) {
        return false;
    }
    //  Checked by s_parse2 already: a reading that fails is our bug.
    s_rd_t r = {self->block_, self->len_, self->off_};
    int err = s_rd_message(&r, SIZE_MAX, false, &self->env);
    assert(err == 0);
    (void)err;
    self->off_ = r.off;
    self->index++;
    self->env.event_id++;
    return true;
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
    if (sealed_len >= 1 && sealed[0] != ENVELOPE_FORMAT &&
        sealed[0] != ENVELOPE_FORMAT2) {
        out->format = sealed[0];
        errno = ENOPROTOOPT;
        return -1;
    }
    if (rkey_len != KEYRING_RKEY_SIZE ||
        sealed_len < 1 + KEYRING_SEAL_OVERHEAD) {
        errno = EBADMSG;
        return -1;
    }
    uint8_t format = sealed[0];
    size_t body_cap = sealed_len - 1 - KEYRING_SEAL_OVERHEAD;
    bool too_big = format == ENVELOPE_FORMAT
                       ? body_cap > ENVELOPE_BODY_MAX_FIXED &&
                             body_cap - ENVELOPE_BODY_MAX_FIXED > max_payload
                       : sealed_len > ENVELOPE_MAX_SEALED(max_payload);
    if (too_big) {
        errno = EMSGSIZE;
        return -1;
    }
    //  One block: the body, then a NUL-terminated copy of each name.
    uint8_t *block = malloc(body_cap + 2 * S_NAME_SLOT);
    if (block == NULL) {
        errno = ENOMEM;
        return -1;
    }
    size_t key_index = 0;
    size_t len = 0;
    int err = 0;
    char *slots = (char *)block + body_cap;
    uint8_t ad[KEYRING_RKEY_SIZE + 1];
    size_t ad_len = KEYRING_RKEY_SIZE;
    memcpy(ad, rkey, KEYRING_RKEY_SIZE);
    if (format == ENVELOPE_FORMAT2) {
        s_ad2(ad, rkey);
        ad_len++;
    }
    if (keyring_open_cached(ring, rkeys_open_cache(rkeys), ad, ad_len,
                            sealed + 1, sealed_len - 1, block, body_cap, &len,
                            &key_index) != 0) {
        err = EBADMSG;
    } else if (format == ENVELOPE_FORMAT2) {
        err = s_parse2(block, len, max_payload, slots, out);
    } else {
        s_reader_t reader = {.data = block, .len = len};
        if (!msgpack_zone_init(&reader.zone, 64)) {
            err = ENOMEM;
        } else {
            err = s_parse(&reader, max_payload, slots, &out->env);
            msgpack_zone_destroy(&reader.zone);
        }
        out->count = 1;
    }
    if (err == 0) {
        err = s_check_rkey(rkeys, &out->env, key_index, rkey);
    }
    if (err != 0) {
        free(block);
        memset(out, 0, sizeof *out);
        errno = err;
        return -1;
    }
    out->format = format;
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
