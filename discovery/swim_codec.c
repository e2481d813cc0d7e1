/*  swim_codec.c - the gossip packet codec (msgpack)

    The wire format is written down in swim_codec.h. Encoding packs straight
    into the caller's buffer; decoding checks the raw bytes first (s_skim),
    lets msgpack-c build the object tree, then copies the fields it knows
    into plain structs, checking every type and bound.
*/

#include "swim_codec.h"

#include <assert.h>
#include <errno.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#define SKIM_DEPTH 16 // deepest nesting accepted; v1 uses 4

//  --------------------------------------------------------------------------
//  Encoding

//  A packer sink: writes into a fixed buffer, or only counts when buf is
//  NULL.
typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t len;
} s_sink_t;

static int s_sink_write(void *data, const char *bytes, size_t len)
{
    s_sink_t *sink = (s_sink_t *)data;
    if (sink->buf == NULL) {
        sink->len += len;
        return 0;
    }
    if (len > sink->cap - sink->len) {
        return -1;
    }
    memcpy(sink->buf + sink->len, bytes, len);
    sink->len += len;
    return 0;
}

static int s_pack_bin(msgpack_packer *pk, const uint8_t *bytes, size_t len)
{
    return msgpack_pack_bin(pk, len) || msgpack_pack_bin_body(pk, bytes, len);
}

static int s_pack_str(msgpack_packer *pk, const char *str)
{
    size_t len = strlen(str);
    return msgpack_pack_str(pk, len) || msgpack_pack_str_body(pk, str, len);
}

static int s_pack_member(msgpack_packer *pk, const swim_member_t *m)
{
    return msgpack_pack_array(pk, 9) || s_pack_bin(pk, m->id, SWIM_ID_SIZE) ||
           s_pack_str(pk, m->name) || msgpack_pack_uint64(pk, m->incarnation) ||
           msgpack_pack_uint64(pk, (uint64_t)m->state) ||
           s_pack_str(pk, m->endpoint) || s_pack_str(pk, m->gossip_addr) ||
           s_pack_bin(pk, m->pubkey, SWIM_KEY_SIZE) ||
           s_pack_str(pk, m->zone) || msgpack_pack_uint64(pk, m->start_ms);
}

static int s_pack_members(msgpack_packer *pk, const swim_member_t *list,
                          size_t count)
{
    if (msgpack_pack_array(pk, count)) {
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        if (s_pack_member(pk, &list[i])) {
            return -1;
        }
    }
    return 0;
}

static int s_pack_body(msgpack_packer *pk, const swim_msg_t *msg)
{
    switch (msg->type) {
        case SWIM_MSG_PING:
            return msgpack_pack_array(pk, 2) ||
                   msgpack_pack_uint32(pk, msg->seq) ||
                   s_pack_bin(pk, msg->target, SWIM_ID_SIZE);
        case SWIM_MSG_ACK:
            return msgpack_pack_array(pk, 1) ||
                   msgpack_pack_uint32(pk, msg->seq);
        case SWIM_MSG_PING_REQ:
            return msgpack_pack_array(pk, 3) ||
                   msgpack_pack_uint32(pk, msg->seq) ||
                   s_pack_bin(pk, msg->target, SWIM_ID_SIZE) ||
                   s_pack_str(pk, msg->target_addr);
        case SWIM_MSG_PP_REQ:
        case SWIM_MSG_PP_RESP:
            return msgpack_pack_array(pk, 2) ||
                   msgpack_pack_uint32(pk, msg->part) ||
                   s_pack_members(pk, msg->members, msg->member_count);
        default: // SWIM_MSG_LEAVE, checked by s_msg_valid
            return msgpack_pack_array(pk, 1) ||
                   s_pack_member(pk, &msg->members[0]);
    }
}

static bool s_msg_valid(const swim_msg_t *msg)
{
    if (msg->type < SWIM_MSG_PING || msg->type >= SWIM_MSG_TYPES) {
        return false;
    }
    if (msg->type == SWIM_MSG_LEAVE && msg->member_count != 1) {
        return false;
    }
    static const uint8_t zero[SWIM_ID_SIZE];
    if (msg->type == SWIM_MSG_PING_REQ &&
        (memcmp(msg->target, zero, SWIM_ID_SIZE) == 0 ||
         msg->target_addr[0] == 0 ||
         strnlen(msg->target_addr, sizeof msg->target_addr) > SWIM_ADDR_MAX)) {
        return false;
    }
    for (size_t i = 0; i < msg->member_count; i++) {
        if (!swim_codec_record_valid(&msg->members[i])) {
            return false;
        }
    }
    for (size_t i = 0; i < msg->update_count; i++) {
        if (!swim_codec_record_valid(&msg->updates[i])) {
            return false;
        }
    }
    return true;
}

static int s_pack_msg(msgpack_packer *pk, const swim_msg_t *msg)
{
    return msgpack_pack_array(pk, 5) ||
           msgpack_pack_uint32(pk, SWIM_CODEC_VERSION) ||
           msgpack_pack_uint32(pk, (uint32_t)msg->type) ||
           s_pack_bin(pk, msg->sender, SWIM_ID_SIZE) || s_pack_body(pk, msg) ||
           s_pack_members(pk, msg->updates, msg->update_count);
}

int swim_codec_encode(const swim_msg_t *msg, uint8_t *buf, size_t cap,
                      size_t *len)
{
    if (!s_msg_valid(msg)) {
        errno = EINVAL;
        return -1;
    }
    s_sink_t sink = {buf, cap, 0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sink, s_sink_write);
    if (s_pack_msg(&pk, msg)) {
        errno = EMSGSIZE;
        return -1;
    }
    *len = sink.len;
    return 0;
}

size_t swim_codec_size(const swim_msg_t *msg)
{
    s_sink_t sink = {NULL, 0, 0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sink, s_sink_write);
    int rc = s_pack_msg(&pk, msg);
    assert(rc == 0); // a counting sink never fails
    (void)rc;
    return sink.len;
}

size_t swim_codec_record_size(const swim_member_t *m)
{
    s_sink_t sink = {NULL, 0, 0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sink, s_sink_write);
    int rc = s_pack_member(&pk, m);
    assert(rc == 0);
    (void)rc;
    return sink.len;
}

//  --------------------------------------------------------------------------
//  Decoding

static uint64_t s_be(const uint8_t *p, size_t width)
{
    uint64_t value = 0;
    for (size_t i = 0; i < width; i++) {
        value = (value << 8) | p[i];
    }
    return value;
}

//  msgpack-c's unpacker allocates the element table of an array or map as
//  soon as it reads the header, before any element arrives: five bytes can
//  ask for 128 GiB. This walk decodes nothing; it only checks that buf
//  holds exactly one object, nested at most SKIM_DEPTH deep, whose headers
//  never announce more elements than there are bytes left. Only then does
//  msgpack-c see the bytes.
static int s_skim(const uint8_t *buf, size_t len)
{
    uint64_t left[SKIM_DEPTH]; // elements still to read, per level
    int depth = 0;
    size_t pos = 0;
    left[0] = 1;
    while (depth >= 0) {
        if (left[depth] == 0) {
            depth--;
            continue;
        }
        left[depth]--;
        if (pos >= len) {
            return -1;
        }
        uint8_t b = buf[pos++];
        uint64_t items = 0; // elements a container announces
        uint64_t skip = 0;  // payload bytes after the header
        size_t width = 0;   // bytes of the length field, if any
        int kind = 0;       // 0 scalar, 1 array, 2 map
        if (b <= 0x7f || b >= 0xe0) {
            // positive or negative fixint
        } else if (b <= 0x8f) {
            items = b & 0x0f;
            kind = 2;
        } else if (b <= 0x9f) {
            items = b & 0x0f;
            kind = 1;
        } else if (b <= 0xbf) {
            skip = b & 0x1f;
        } else {
            switch (b) {
                case 0xc0: // nil
                case 0xc2: // false
                case 0xc3: // true
                    break;
                case 0xc4: // bin 8
                case 0xd9: // str 8
                    width = 1;
                    break;
                case 0xc5: // bin 16
                case 0xda: // str 16
                    width = 2;
                    break;
                case 0xc6: // bin 32
                case 0xdb: // str 32
                    width = 4;
                    break;
                case 0xc7: // ext 8, 16, 32: length, type byte, data
                case 0xc8:
                case 0xc9:
                    width = (size_t)1 << (b - 0xc7);
                    skip = 1;
                    break;
                case 0xca: // float 32
                    skip = 4;
                    break;
                case 0xcb: // float 64
                    skip = 8;
                    break;
                case 0xcc: // uint 8, 16, 32, 64
                case 0xcd:
                case 0xce:
                case 0xcf:
                    skip = (uint64_t)1 << (b - 0xcc);
                    break;
                case 0xd0: // int 8, 16, 32, 64
                case 0xd1:
                case 0xd2:
                case 0xd3:
                    skip = (uint64_t)1 << (b - 0xd0);
                    break;
                case 0xd4: // fixext 1, 2, 4, 8, 16: type byte, data
                case 0xd5:
                case 0xd6:
                case 0xd7:
                case 0xd8:
                    skip = 1 + ((uint64_t)1 << (b - 0xd4));
                    break;
                case 0xdc: // array 16, 32
                case 0xdd:
                    width = b == 0xdc ? 2 : 4;
                    kind = 1;
                    break;
                case 0xde: // map 16, 32
                case 0xdf:
                    width = b == 0xde ? 2 : 4;
                    kind = 2;
                    break;
                default: // 0xc1, never used
                    return -1;
            }
        }
        if (width > 0) {
            if (len - pos < width) {
                return -1;
            }
            uint64_t n = s_be(buf + pos, width);
            pos += width;
            if (kind == 0) {
                skip += n;
            } else {
                items = n;
            }
        }
        if (kind == 2) {
            items *= 2; // keys and values; n < 2^32, cannot overflow
        }
        if (skip > len - pos) {
            return -1;
        }
        pos += (size_t)skip;
        if (items > 0) {
            if (items > len - pos || depth + 1 >= SKIM_DEPTH) {
                return -1;
            }
            left[++depth] = items;
        }
    }
    return pos == len ? 0 : -1;
}

static bool s_get_uint(const msgpack_object *o, uint64_t max, uint64_t *out)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > max) {
        return false;
    }
    *out = o->via.u64;
    return true;
}

static bool s_get_u32(const msgpack_object *o, uint32_t *out)
{
    uint64_t value;
    if (!s_get_uint(o, UINT32_MAX, &value)) {
        return false;
    }
    *out = (uint32_t)value;
    return true;
}

static bool s_get_bin(const msgpack_object *o, uint8_t *out, size_t size)
{
    if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size != size) {
        return false;
    }
    memcpy(out, o->via.bin.ptr, size);
    return true;
}

static bool s_get_id(const msgpack_object *o, uint8_t *out)
{
    static const uint8_t zero[SWIM_ID_SIZE];
    return s_get_bin(o, out, SWIM_ID_SIZE) &&
           memcmp(out, zero, SWIM_ID_SIZE) != 0;
}

//  A string of min..max bytes without NUL, copied NUL-terminated into out
//  (max + 1 bytes).
static bool s_get_str(const msgpack_object *o, char *out, size_t min,
                      size_t max)
{
    if (o->type != MSGPACK_OBJECT_STR) {
        return false;
    }
    size_t size = o->via.str.size;
    if (size < min || size > max ||
        (size > 0 && memchr(o->via.str.ptr, 0, size) != NULL)) {
        return false;
    }
    if (size > 0) {
        memcpy(out, o->via.str.ptr, size);
    }
    out[size] = 0;
    return true;
}

//  An array of at least min elements; extra ones are for later versions.
static const msgpack_object *s_get_array(const msgpack_object *o, size_t min)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < min) {
        return NULL;
    }
    return o->via.array.ptr;
}

static bool s_get_member(const msgpack_object *o, swim_member_t *m)
{
    const msgpack_object *f = s_get_array(o, 9);
    uint64_t state;
    memset(m, 0, sizeof *m);
    if (f == NULL || !s_get_id(&f[0], m->id) ||
        !s_get_str(&f[1], m->name, 0, SWIM_NAME_MAX) ||
        !s_get_uint(&f[2], UINT64_MAX, &m->incarnation) ||
        !s_get_uint(&f[3], SWIM_LEFT, &state) || state < SWIM_ALIVE ||
        !s_get_str(&f[4], m->endpoint, 0, SWIM_ENDPOINT_MAX) ||
        !s_get_str(&f[5], m->gossip_addr, 1, SWIM_ADDR_MAX) ||
        !s_get_bin(&f[6], m->pubkey, SWIM_KEY_SIZE) ||
        !s_get_str(&f[7], m->zone, 0, SWIM_ZONE_MAX) ||
        !s_get_uint(&f[8], UINT64_MAX, &m->start_ms)) {
        return false;
    }
    m->state = (int)state;
    return true;
}

//  Decode a list of records into a new array. Returns 0 or -1 with errno.
static int s_get_members(const msgpack_object *o, size_t len,
                         swim_member_t **list, size_t *count)
{
    if (o->type != MSGPACK_OBJECT_ARRAY) {
        errno = EPROTO;
        return -1;
    }
    size_t n = o->via.array.size;
    //  Each record takes RECORD_MIN bytes at least: more cannot be honest,
    //  and this bounds what we allocate to a few times the packet size.
    if (n > len / SWIM_CODEC_RECORD_MIN) {
        errno = EPROTO;
        return -1;
    }
    if (n == 0) {
        return 0;
    }
    *list = (swim_member_t *)calloc(n, sizeof(swim_member_t));
    if (*list == NULL) {
        errno = ENOMEM;
        return -1;
    }
    *count = n;
    for (size_t i = 0; i < n; i++) {
        if (!s_get_member(&o->via.array.ptr[i], &(*list)[i])) {
            errno = EPROTO;
            return -1;
        }
    }
    return 0;
}

static int s_get_body(const msgpack_object *o, size_t len, swim_msg_t *msg)
{
    const msgpack_object *f = NULL;
    bool ok = false;
    switch (msg->type) {
        case SWIM_MSG_PING:
            ok = (f = s_get_array(o, 2)) != NULL &&
                 s_get_u32(&f[0], &msg->seq) &&
                 s_get_bin(&f[1], msg->target, SWIM_ID_SIZE);
            break;
        case SWIM_MSG_ACK:
            ok = (f = s_get_array(o, 1)) != NULL && s_get_u32(&f[0], &msg->seq);
            break;
        case SWIM_MSG_PING_REQ:
            ok = (f = s_get_array(o, 3)) != NULL &&
                 s_get_u32(&f[0], &msg->seq) && s_get_id(&f[1], msg->target) &&
                 s_get_str(&f[2], msg->target_addr, 1, SWIM_ADDR_MAX);
            break;
        case SWIM_MSG_PP_REQ:
        case SWIM_MSG_PP_RESP:
            if ((f = s_get_array(o, 2)) == NULL ||
                !s_get_u32(&f[0], &msg->part)) {
                break;
            }
            return s_get_members(&f[1], len, &msg->members, &msg->member_count);
        case SWIM_MSG_LEAVE:
            if ((f = s_get_array(o, 1)) == NULL) {
                break;
            }
            msg->members = (swim_member_t *)calloc(1, sizeof(swim_member_t));
            if (msg->members == NULL) {
                errno = ENOMEM;
                return -1;
            }
            msg->member_count = 1;
            ok = s_get_member(&f[0], &msg->members[0]);
            break;
        default:
            break;
    }
    if (!ok) {
        errno = EPROTO;
        return -1;
    }
    return 0;
}

static int s_get_packet(const msgpack_object *o, size_t len, swim_msg_t *msg)
{
    const msgpack_object *f = s_get_array(o, 5);
    uint64_t version, type;
    if (f == NULL || !s_get_uint(&f[0], UINT64_MAX, &version) ||
        version != SWIM_CODEC_VERSION ||
        !s_get_uint(&f[1], SWIM_MSG_TYPES - 1, &type) || type < SWIM_MSG_PING ||
        !s_get_id(&f[2], msg->sender)) {
        errno = EPROTO;
        return -1;
    }
    msg->type = (int)type;
    if (s_get_body(&f[3], len, msg)) {
        return -1;
    }
    return s_get_members(&f[4], len, &msg->updates, &msg->update_count);
}

int swim_codec_decode(const uint8_t *buf, size_t len, swim_msg_t *msg)
{
    memset(msg, 0, sizeof *msg);
    if (buf == NULL || len == 0 || s_skim(buf, len)) {
        errno = EPROTO;
        return -1;
    }
    msgpack_unpacked unpacked;
    msgpack_unpacked_init(&unpacked);
    size_t off = 0;
    int rc = -1;
    msgpack_unpack_return ret =
        msgpack_unpack_next(&unpacked, (const char *)buf, len, &off);
    if (ret == MSGPACK_UNPACK_NOMEM_ERROR) {
        errno = ENOMEM;
    } else if (ret != MSGPACK_UNPACK_SUCCESS || off != len) {
        errno = EPROTO;
    } else {
        rc = s_get_packet(&unpacked.data, len, msg);
    }
    msgpack_unpacked_destroy(&unpacked);
    if (rc) {
        int saved = errno;
        swim_codec_clear(msg);
        errno = saved;
    }
    return rc;
}

void swim_codec_clear(swim_msg_t *msg)
{
    free(msg->members);
    free(msg->updates);
    memset(msg, 0, sizeof *msg);
}

static bool s_str_ok(const char *str, size_t max, size_t min)
{
    size_t len = strnlen(str, max + 1);
    return len <= max && len >= min;
}

bool swim_codec_record_valid(const swim_member_t *m)
{
    static const uint8_t zero[SWIM_ID_SIZE];
    return memcmp(m->id, zero, SWIM_ID_SIZE) != 0 && m->state >= SWIM_ALIVE &&
           m->state <= SWIM_LEFT && s_str_ok(m->name, SWIM_NAME_MAX, 0) &&
           s_str_ok(m->endpoint, SWIM_ENDPOINT_MAX, 0) &&
           s_str_ok(m->gossip_addr, SWIM_ADDR_MAX, 1) &&
           s_str_ok(m->zone, SWIM_ZONE_MAX, 0);
}
