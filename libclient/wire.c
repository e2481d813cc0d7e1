/*  wire: the app <-> sidecar frame codec.

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
                        reason U (wire_gap_reason_t)
      14 SUBACK   S->C  req U, namespace S, topic S, everywhere b
      15 PSET     C->S  req U, namespace S, topic S, key S, meta B
      16 PCLEAR   C->S  req U, namespace S, topic S, key S
      17 PLIST    C->S  req U, namespace S, topic S
      18 PEVENT   S->C  namespace S, topic S, key S, meta B, node I,
                        present b
      19 MEMBER   S->C  node I, name S, state U, endpoint S

    req 0 means "no answer wanted". A decoder accepts exactly these shapes:
    the wrong count or kind of field is EPROTO, an unknown type EBADMSG.
    PROTOCOL.md carries the same table with the semantics.
*/
#include "wire.h"

#include <errno.h>
#include <limits.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

typedef enum { F_U, F_S, F_B, F_I, F_BOOL, F_ROWS } field_kind_t;

typedef struct {
    field_kind_t kind;
    size_t offset; // into wire_frame_t
    const char *name;
} field_t;

#define MAX_FIELDS 7
typedef struct {
    const char *name;
    size_t nfields;
    field_t fields[MAX_FIELDS];
} schema_t;

#define U(f)                                                                   \
    {                                                                          \
        F_U, offsetof(wire_frame_t, f), #f                                     \
    }
#define S(f)                                                                   \
    {                                                                          \
        F_S, offsetof(wire_frame_t, f), #f                                     \
    }
#define B(f)                                                                   \
    {                                                                          \
        F_B, offsetof(wire_frame_t, f), #f                                     \
    }
#define I(f)                                                                   \
    {                                                                          \
        F_I, offsetof(wire_frame_t, f), #f                                     \
    }
#define BOOL(f)                                                                \
    {                                                                          \
        F_BOOL, offsetof(wire_frame_t, f), #f                                  \
    }
#define ROWS(f)                                                                \
    {                                                                          \
        F_ROWS, offsetof(wire_frame_t, f), #f                                  \
    }

static const schema_t s_schema[WIRE_TYPE_MAX] = {
    [WIRE_HELLO] = {"HELLO", 4, {U(version), I(id), S(name), U(flags)}},
    [WIRE_WELCOME] = {"WELCOME",
                      5,
                      {U(version), I(node), S(channel), U(max_payload),
                       S(name)}},
    [WIRE_SUB] = {"SUB", 3, {U(req), S(ns), S(topic)}},
    [WIRE_UNSUB] = {"UNSUB", 3, {U(req), S(ns), S(topic)}},
    [WIRE_PUB] = {"PUB",
                  6,
                  {U(req), S(ns), S(topic), U(flags), U(seq), B(payload)}},
    [WIRE_MSG] = {"MSG",
                  7,
                  {S(ns), S(topic), U(flags), I(id), U(seq), B(payload),
                   I(node)}},
    [WIRE_ERR] = {"ERR", 3, {U(req), U(code), S(text)}},
    [WIRE_PING] = {"PING", 1, {U(token)}},
    [WIRE_PONG] = {"PONG", 1, {U(token)}},
    [WIRE_QUERY] = {"QUERY", 3, {U(req), S(text), S(arg)}},
    [WIRE_REPLY] = {"REPLY", 2, {U(req), ROWS(rows)}},
    [WIRE_STATUS] = {"STATUS",
                     4,
                     {BOOL(readable), BOOL(writable), U(count), S(text)}},
    [WIRE_GAP] = {"GAP", 5, {S(ns), S(topic), I(id), U(count), U(code)}},
    [WIRE_SUBACK] = {"SUBACK", 4, {U(req), S(ns), S(topic), BOOL(everywhere)}},
    [WIRE_PSET] = {"PSET", 5, {U(req), S(ns), S(topic), S(arg), B(meta)}},
    [WIRE_PCLEAR] = {"PCLEAR", 4, {U(req), S(ns), S(topic), S(arg)}},
    [WIRE_PLIST] = {"PLIST", 3, {U(req), S(ns), S(topic)}},
    [WIRE_PEVENT] = {"PEVENT",
                     6,
                     {S(ns), S(topic), S(arg), B(meta), I(node),
                      BOOL(present)}},
    [WIRE_MEMBER] = {"MEMBER", 4, {I(node), S(name), U(count), S(text)}},
};

static const schema_t *s_schema_of(int type)
{
    if (type <= 0 || type >= WIRE_TYPE_MAX || !s_schema[type].name) {
        return NULL;
    }
    return &s_schema[type];
}

const char *wire_type_name(int type)
{
    const schema_t *schema = s_schema_of(type);
    return schema ? schema->name : "?";
}

wire_str_t wire_str(const char *s)
{
    wire_str_t str = {s ? s : "", s ? (uint32_t)strlen(s) : 0};
    return str;
}

// --- buffer ----------------------------------------------------------------

int wire_buf_reserve(wire_buf_t *self, size_t n)
{
    if (self->cap - self->len >= n) {
        return 0;
    }
    size_t cap = self->cap ? self->cap : 256;
    while (cap - self->len < n) {
        cap *= 2;
    }
    uint8_t *data = realloc(self->data, cap);
    if (!data) {
        errno = ENOMEM;
        return -1;
    }
    self->data = data;
    self->cap = cap;
    return 0;
}

void wire_buf_consume(wire_buf_t *self, size_t n)
{
    if (n >= self->len) {
        self->len = 0;
        return;
    }
    if (n == 0) {
        return; // a frame's head alone: nothing to move
    }
    memmove(self->data, self->data + n, self->len - n);
    self->len -= n;
}

void wire_buf_free(wire_buf_t *self)
{
    free(self->data);
    self->data = NULL;
    self->len = self->cap = 0;
}

// --- encoder ---------------------------------------------------------------

static int s_buf_write(void *data, const char *bytes, size_t len)
{
    wire_buf_t *buf = data;
    if (len == 0) {
        return 0; // an empty str or bin: bytes may be NULL
    }
    if (wire_buf_reserve(buf, len)) {
        return -1;
    }
    memcpy(buf->data + buf->len, bytes, len);
    buf->len += len;
    return 0;
}

static int s_pack_field(msgpack_packer *pk, const wire_frame_t *frame,
                        const field_t *field)
{
    const char *at = (const char *)frame + field->offset;
    switch (field->kind) {
        case F_U:
            return msgpack_pack_uint64(pk, *(const uint64_t *)at);
        case F_BOOL:
            return *(const bool *)at ? msgpack_pack_true(pk)
                                     : msgpack_pack_false(pk);
        case F_S: {
            const wire_str_t *str = (const wire_str_t *)at;
            return msgpack_pack_str_with_body(pk, str->ptr, str->len);
        }
        case F_B:
        case F_I: {
            const wire_str_t *str = (const wire_str_t *)at;
            return msgpack_pack_bin_with_body(pk, str->ptr, str->len);
        }
        case F_ROWS: {
            if (msgpack_pack_array(pk, frame->nrows)) {
                return -1;
            }
            for (size_t i = 0; i < 2 * frame->nrows; i += 2) {
                const wire_str_t *k = &frame->rows[i], *v = &frame->rows[i + 1];
                if (msgpack_pack_array(pk, 2) ||
                    msgpack_pack_str_with_body(pk, k->ptr, k->len) ||
                    msgpack_pack_str_with_body(pk, v->ptr, v->len)) {
                    return -1;
                }
            }
            return 0;
        }
    }
    return -1;
}

size_t wire_frame_bound(const wire_frame_t *frame)
{
    const schema_t *schema = s_schema_of(frame->type);
    size_t bound = WIRE_PREFIX + 5 + 9; // array header, type
    for (size_t i = 0; schema && i < schema->nfields; i++) {
        const field_t *field = &schema->fields[i];
        const char *at = (const char *)frame + field->offset;
        switch (field->kind) {
            case F_S:
            case F_B:
            case F_I:
                bound += 5 + ((const wire_str_t *)at)->len;
                break;
            default:
                bound += 9;
                break;
        }
    }
    return bound;
}

int wire_encode(wire_buf_t *buf, const wire_frame_t *frame)
{
    const schema_t *schema = s_schema_of(frame->type);
    if (!schema) {
        errno = EINVAL;
        return -1;
    }
    //  reserved at once: a 1 KiB payload no longer grows the buffer three
    //  times on its way in
    if (wire_buf_reserve(buf, wire_frame_bound(frame))) {
        return -1;
    }
    size_t start = buf->len;
    uint8_t prefix[WIRE_PREFIX] = {0};
    if (s_buf_write(buf, (const char *)prefix, sizeof prefix)) {
        return -1;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, buf, s_buf_write);
    int rc = msgpack_pack_array(&pk, 1 + schema->nfields) ||
             msgpack_pack_uint8(&pk, (uint8_t)frame->type);
    for (size_t i = 0; rc == 0 && i < schema->nfields; i++) {
        rc = s_pack_field(&pk, frame, &schema->fields[i]);
    }
    if (rc) {
        buf->len = start;
        errno = ENOMEM;
        return -1;
    }
    size_t body = buf->len - start - WIRE_PREFIX;
    uint8_t *p = buf->data + start;
    p[0] = (uint8_t)(body >> 24);
    p[1] = (uint8_t)(body >> 16);
    p[2] = (uint8_t)(body >> 8);
    p[3] = (uint8_t)body;
    return 0;
}

// --- decoder ---------------------------------------------------------------

int wire_peek(const uint8_t *data, size_t len, size_t max_body,
              size_t *body_len)
{
    if (len < WIRE_PREFIX) {
        return 0;
    }
    size_t body = (size_t)data[0] << 24 | (size_t)data[1] << 16 |
                  (size_t)data[2] << 8 | (size_t)data[3];
    if (body == 0) {
        errno = EPROTO;
        return -1;
    }
    if (body > max_body) {
        errno = EMSGSIZE;
        return -1;
    }
    *body_len = body;
    return len - WIRE_PREFIX >= body ? 1 : 0;
}

struct wire_decoder_t {
    msgpack_zone zone;
    char error[96];
};

wire_decoder_t *wire_decoder_new(void)
{
    wire_decoder_t *self = calloc(1, sizeof *self);
    if (self && !msgpack_zone_init(&self->zone, 2048)) {
        free(self);
        return NULL;
    }
    return self;
}

void wire_decoder_destroy(wire_decoder_t **self_p)
{
    if (self_p && *self_p) {
        msgpack_zone_destroy(&(*self_p)->zone);
        free(*self_p);
        *self_p = NULL;
    }
}

const char *wire_decoder_error(const wire_decoder_t *self)
{
    return self->error;
}

static int s_fail(wire_decoder_t *self, int err, const char *what,
                  const char *name)
{
    snprintf(self->error, sizeof self->error, "%s%s%s", what, name ? ": " : "",
             name ? name : "");
    errno = err;
    return -1;
}

static int s_str_of(const msgpack_object *o, msgpack_object_type want,
                    wire_str_t *out)
{
    if (o->type != want) {
        return -1;
    }
    out->ptr = want == MSGPACK_OBJECT_STR ? o->via.str.ptr : o->via.bin.ptr;
    out->len = want == MSGPACK_OBJECT_STR ? o->via.str.size : o->via.bin.size;
    return 0;
}

static int s_rows_of(wire_decoder_t *self, const msgpack_object *o,
                     wire_frame_t *frame)
{
    if (o->type != MSGPACK_OBJECT_ARRAY) {
        return -1;
    }
    size_t n = o->via.array.size;
    wire_str_t *rows =
        n ? msgpack_zone_malloc(&self->zone, 2 * n * sizeof *rows) : NULL;
    if (n && !rows) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const msgpack_object *row = &o->via.array.ptr[i];
        if (row->type != MSGPACK_OBJECT_ARRAY || row->via.array.size != 2 ||
            s_str_of(&row->via.array.ptr[0], MSGPACK_OBJECT_STR,
                     &rows[2 * i]) ||
            s_str_of(&row->via.array.ptr[1], MSGPACK_OBJECT_STR,
                     &rows[2 * i + 1])) {
            return -1;
        }
    }
    frame->rows = rows;
    frame->nrows = n;
    return 0;
}

static int s_field_of(wire_decoder_t *self, const msgpack_object *o,
                      const field_t *field, wire_frame_t *frame)
{
    char *at = (char *)frame + field->offset;
    switch (field->kind) {
        case F_U:
            if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
                return -1;
            }
            *(uint64_t *)at = o->via.u64;
            return 0;
        case F_BOOL:
            if (o->type != MSGPACK_OBJECT_BOOLEAN) {
                return -1;
            }
            *(bool *)at = o->via.boolean;
            return 0;
        case F_S:
            return s_str_of(o, MSGPACK_OBJECT_STR, (wire_str_t *)at);
        case F_B:
            return s_str_of(o, MSGPACK_OBJECT_BIN, (wire_str_t *)at);
        case F_I:
            if (s_str_of(o, MSGPACK_OBJECT_BIN, (wire_str_t *)at)) {
                return -1;
            }
            return ((wire_str_t *)at)->len == WIRE_ID_SIZE ? 0 : -1;
        case F_ROWS:
            return s_rows_of(self, o, frame);
    }
    return -1;
}

/*  msgpack-c allocates an array's or map's element table as soon as it reads
    the header, before it sees the elements, so a 6-byte body can announce
    four billion elements. This walk checks, before unpacking, that no
    container announces more elements than bytes are left (each element
    takes at least one), which bounds the unpacker's memory by the frame
    size. It only reads headers; msgpack-c still does the parsing. */
bool wire_msgpack_bounded(const uint8_t *p, size_t len)
{
    size_t pos = 0, pending = 1;
    while (pending > 0) {
        if (pos >= len) {
            return false;
        }
        uint8_t b = p[pos++];
        size_t skip = 0, items = 0, nbytes = 0;
        if (b <= 0x7f || b >= 0xe0 || (b >= 0xc0 && b <= 0xc3)) {
            skip = 0; // fixint, nil, bool
        } else if (b >= 0x80 && b <= 0x8f) {
            items = 2 * (size_t)(b & 0x0f); // fixmap
        } else if (b >= 0x90 && b <= 0x9f) {
            items = b & 0x0f; // fixarray
        } else if (b >= 0xa0 && b <= 0xbf) {
            skip = b & 0x1f; // fixstr
        } else {
            switch (b) {
                case 0xc4:
                case 0xd9:
                    nbytes = 1;
                    break; // bin8, str8
                case 0xc5:
                case 0xda:
                    nbytes = 2;
                    break;
                case 0xc6:
                case 0xdb:
                    nbytes = 4;
                    break;
                case 0xcc:
                case 0xd0:
                    skip = 1;
                    break;
                case 0xcd:
                case 0xd1:
                    skip = 2;
                    break;
                case 0xca:
                case 0xce:
                case 0xd2:
                    skip = 4;
                    break;
                case 0xcb:
                case 0xcf:
                case 0xd3:
                    skip = 8;
                    break;
                case 0xd4:
                    skip = 2;
                    break; // fixext
                case 0xd5:
                    skip = 3;
                    break;
                case 0xd6:
                    skip = 5;
                    break;
                case 0xd7:
                    skip = 9;
                    break;
                case 0xd8:
                    skip = 17;
                    break;
                case 0xc7:
                    nbytes = 1;
                    skip = 1;
                    break; // ext: + type
                case 0xc8:
                    nbytes = 2;
                    skip = 1;
                    break;
                case 0xc9:
                    nbytes = 4;
                    skip = 1;
                    break;
                case 0xdc:
                    nbytes = 2;
                    items = 1;
                    break; // array16/32
                case 0xdd:
                    nbytes = 4;
                    items = 1;
                    break;
                case 0xde:
                    nbytes = 2;
                    items = 2;
                    break; // map16/32
                case 0xdf:
                    nbytes = 4;
                    items = 2;
                    break;
                default:
                    return false; // unreachable
            }
        }
        if (nbytes) {
            if (len - pos < nbytes) {
                return false;
            }
            size_t n = 0;
            for (size_t i = 0; i < nbytes; i++) {
                n = n << 8 | p[pos++];
            }
            if (items) {
                items *= n; // array or map: count announced
            } else {
                skip += n; // str, bin, ext: bytes that follow
            }
        }
        if (skip > len - pos || items > len - pos) {
            return false;
        }
        pos += skip;
        pending = pending - 1 + items;
        if (pending > len - pos) {
            return false;
        }
    }
    return true;
}

int wire_decode(wire_decoder_t *self, const uint8_t *body, size_t len,
                wire_frame_t *frame)
{
    memset(frame, 0, sizeof *frame);
    self->error[0] = 0;
    msgpack_zone_clear(&self->zone);
    if (!wire_msgpack_bounded(body, len)) {
        return s_fail(self, EPROTO, "body is not one msgpack value", NULL);
    }
    msgpack_object top;
    size_t off = 0;
    msgpack_unpack_return ret =
        msgpack_unpack((const char *)body, len, &off, &self->zone, &top);
    if (ret != MSGPACK_UNPACK_SUCCESS) {
        return s_fail(self, EPROTO, "body is not one msgpack value", NULL);
    }
    if (top.type != MSGPACK_OBJECT_ARRAY || top.via.array.size == 0 ||
        top.via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        return s_fail(self, EPROTO, "body is not an array [type, ...]", NULL);
    }
    uint64_t type = top.via.array.ptr[0].via.u64;
    const schema_t *schema = s_schema_of(type < WIRE_TYPE_MAX ? (int)type : 0);
    if (!schema) {
        frame->type = type <= INT_MAX ? (int)type : INT_MAX;
        return s_fail(self, EBADMSG, "unknown frame type", NULL);
    }
    frame->type = (int)type;
    if (top.via.array.size != 1 + schema->nfields) {
        return s_fail(self, EPROTO, "wrong number of fields for", schema->name);
    }
    for (size_t i = 0; i < schema->nfields; i++) {
        const field_t *field = &schema->fields[i];
        if (s_field_of(self, &top.via.array.ptr[1 + i], field, frame)) {
            char name[48];
            snprintf(name, sizeof name, "%s.%s", schema->name, field->name);
            return s_fail(self, EPROTO, "bad field", name);
        }
    }
    return 0;
}

size_t wire_topic_key(char out[WIRE_TOPIC_KEY_MAX], const char *ns,
                      size_t ns_len, const char *topic, size_t topic_len)
{
    static const char hex[] = "0123456789abcdef";
    if (ns_len > WIRE_MAX_NAME || topic_len > WIRE_MAX_NAME) {
        return 0;
    }
    out[0] = hex[ns_len >> 4];
    out[1] = hex[ns_len & 15];
    if (ns_len) { // memcpy from NULL is undefined even for 0 bytes
        memcpy(out + 2, ns, ns_len);
    }
    if (topic_len) {
        memcpy(out + 2 + ns_len, topic, topic_len);
    }
    out[2 + ns_len + topic_len] = 0;
    return 2 + ns_len + topic_len;
}
