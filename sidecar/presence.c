/*  presence: see presence.h. One table of every entry known, local and
    remote, keyed by (node, ns, topic, key); small per-node records of the
    last version applied (and of a snapshot coming in chunks); per-app
    usage for the budgets. Listing a topic walks the table: presence lists
    are occasional, deliveries never touch it. */
#include "presence.h"
#include "ids.h"

#include <czmq.h>
#include <errno.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t node[16];
    char *ns, *topic, *key; // NUL-terminated copies
    uint8_t *meta;
    size_t meta_len;
    const void *owner; // local app that set it, NULL for remote entries
} entry_t;

typedef struct {
    uint8_t node[16];  // the sidecar it is about
    uint64_t version;  // last applied from that node
    uint64_t asked;    // the version we last asked a snapshot of
    uint64_t asked_at; // the tick we asked at
    uint64_t incoming; // version of the snapshot coming in chunks (0: none)
    uint64_t next;     // the chunk expected next
    zhashx_t *keep;    // keys the incoming snapshot holds so far
    bool returning;    // went down holding entries: ask when heard again
} origin_t;

typedef struct {
    size_t entries;
    size_t bytes;
} usage_t;

struct presence_t {
    presence_io_t io;
    presence_limits_t limits;
    uint8_t node[16];
    char channel[256];
    zhashx_t *entries;        // key string -> entry_t
    zhashx_t *origins;        // node hex -> origin_t
    zhashx_t *owners;         // owner pointer as text -> usage_t
    usage_t local;            // all our apps
    uint64_t version;         // ours
    bool snapshot_due;        // a peer asked since the last tick
    uint64_t ticks;           // presence_tick calls
    bool summarized;          // a summary went out (summary_version is valid)
    uint64_t summary_version; // ours in our last summary
    uint64_t summary_tick;    // the tick it went out at
    msgpack_sbuffer sbuf;
};

static void s_entry_free(void **item)
{
    entry_t *e = *item;
    if (e) {
        free(e->ns);
        free(e->topic);
        free(e->key);
        free(e->meta);
        free(e);
        *item = NULL;
    }
}

static void s_free(void **item)
{
    free(*item);
    *item = NULL;
}

static void s_origin_free(void **item)
{
    origin_t *o = *item;
    if (o) {
        zhashx_destroy(&o->keep);
        free(o);
        *item = NULL;
    }
}

//  What an entry counts against the budgets.
static size_t s_size(const entry_t *e)
{
    return strlen(e->ns) + strlen(e->topic) + strlen(e->key) + e->meta_len +
           sizeof *e;
}

static usage_t *s_usage(presence_t *self, const void *owner, bool create)
{
    char name[32];
    snprintf(name, sizeof name, "%p", owner);
    usage_t *u = zhashx_lookup(self->owners, name);
    if (!u && create && (u = calloc(1, sizeof *u))) {
        zhashx_insert(self->owners, name, u);
    }
    return u;
}

//  A local entry comes (sign 1) or goes (-1): the budgets follow.
static void s_account(presence_t *self, const entry_t *e, int sign)
{
    if (!e->owner) {
        return; // remote entries are their sidecar's budget
    }
    usage_t *u = s_usage(self, e->owner, sign > 0);
    size_t size = s_size(e);
    if (sign > 0) {
        self->local.entries++;
        self->local.bytes += size;
        if (u) {
            u->entries++;
            u->bytes += size;
        }
        return;
    }
    self->local.entries--;
    self->local.bytes -= size;
    if (u && --u->entries == 0) {
        char name[32];
        snprintf(name, sizeof name, "%p", e->owner);
        zhashx_delete(self->owners, name);
    } else if (u) {
        u->bytes -= size;
    }
}

presence_t *presence_new(const presence_io_t *io, const uint8_t node_id[16],
                         const char *channel, const presence_limits_t *limits)
{
    presence_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->io = *io;
    presence_limits_t none = {0};
    self->limits = limits ? *limits : none;
#define DEFAULT(field, value)                                                  \
    if (!self->limits.field) {                                                 \
        self->limits.field = value;                                            \
    }
    DEFAULT(app_entries, 10000);
    DEFAULT(app_bytes, 8u << 20);
    DEFAULT(entries, 200000);
    DEFAULT(bytes, 64u << 20);
#undef DEFAULT
    memcpy(self->node, node_id, 16);
    snprintf(self->channel, sizeof self->channel, "%s", channel);
    self->entries = zhashx_new();
    self->origins = zhashx_new();
    self->owners = zhashx_new();
    if (!self->entries || !self->origins || !self->owners) {
        presence_destroy(&self);
        return NULL;
    }
    zhashx_set_destructor(self->entries, s_entry_free);
    zhashx_set_destructor(self->origins, s_origin_free);
    zhashx_set_destructor(self->owners, s_free);
    msgpack_sbuffer_init(&self->sbuf);
    return self;
}

void presence_destroy(presence_t **self_p)
{
    if (self_p && *self_p) {
        presence_t *self = *self_p;
        zhashx_destroy(&self->entries);
        zhashx_destroy(&self->origins);
        zhashx_destroy(&self->owners);
        msgpack_sbuffer_destroy(&self->sbuf);
        free(self);
        *self_p = NULL;
    }
}

// --- keys and events
// ----------------------------------------------------------

static bool s_in_topic(const entry_t *e, wire_str_t ns, wire_str_t topic);

//  nodehex, wire_topic_key (ns, topic), "\x01", key: names hold no
//  control characters.
static char *s_key(const uint8_t node[16], const char *ns, size_t ns_len,
                   const char *topic, size_t topic_len, const char *key,
                   size_t key_len)
{
    char *k = malloc(IDS_HEX_SIZE + WIRE_TOPIC_KEY_MAX + 1 + key_len);
    if (k) {
        ids_hex(node, k);
        size_t n = IDS_HEX_SIZE - 1;
        n += wire_topic_key(k + n, ns, ns_len, topic, topic_len);
        k[n++] = '\x01';
        memcpy(k + n, key, key_len);
        k[n + key_len] = 0;
    }
    return k;
}

static presence_entry_t s_view(const entry_t *e)
{
    presence_entry_t v = {.ns = e->ns,
                          .topic = e->topic,
                          .key = e->key,
                          .meta = e->meta,
                          .meta_len = e->meta_len};
    memcpy(v.node, e->node, 16);
    return v;
}

//  Tell the local watchers of e's topic that e is there or gone.
static void s_event(presence_t *self, const entry_t *e, bool present)
{
    if (self->io.event) {
        presence_entry_t v = s_view(e);
        self->io.event(self->io.arg, &v, present);
    }
}

//  Insert or replace an entry; events when it is new or its meta changed.
static int s_put(presence_t *self, const uint8_t node[16], wire_str_t ns,
                 wire_str_t topic, wire_str_t key, wire_str_t meta,
                 const void *owner)
{
    char *k =
        s_key(node, ns.ptr, ns.len, topic.ptr, topic.len, key.ptr, key.len);
    entry_t *e = calloc(1, sizeof *e);
    if (!k || !e) {
        free(k);
        free(e);
        errno = ENOMEM;
        return -1;
    }
    memcpy(e->node, node, 16);
    e->ns = strndup(ns.ptr, ns.len);
    e->topic = strndup(topic.ptr, topic.len);
    e->key = strndup(key.ptr, key.len);
    e->meta = meta.len ? malloc(meta.len) : NULL;
    e->meta_len = meta.len;
    e->owner = owner;
    if (!e->ns || !e->topic || !e->key || (meta.len && !e->meta)) {
        void *item = e;
        s_entry_free(&item);
        free(k);
        errno = ENOMEM;
        return -1;
    }
    if (meta.len) {
        memcpy(e->meta, meta.ptr, meta.len);
    }
    entry_t *old = zhashx_lookup(self->entries, k);
    bool same =
        old && old->meta_len == e->meta_len &&
        (e->meta_len == 0 || memcmp(old->meta, e->meta, e->meta_len) == 0);
    if (old) {
        s_account(self, old, -1);
    }
    s_account(self, e, 1);
    zhashx_update(self->entries, k, e); // frees the old one
    free(k);
    if (!same) {
        s_event(self, e, true);
    }
    return 0;
}

static void s_remove(presence_t *self, const char *k)
{
    entry_t *e = zhashx_lookup(self->entries, k);
    if (e) {
        s_event(self, e, false);
        s_account(self, e, -1);
        zhashx_delete(self->entries, k);
    }
}

// --- sending
// ------------------------------------------------------------------

static void s_pack_head(presence_t *self, msgpack_packer *pk, size_t fields,
                        const char *kind)
{
    msgpack_sbuffer_clear(&self->sbuf);
    msgpack_packer_init(pk, &self->sbuf, msgpack_sbuffer_write);
    msgpack_pack_array(pk, fields);
    msgpack_pack_str_with_body(pk, self->channel, strlen(self->channel));
    msgpack_pack_bin_with_body(pk, self->node, 16);
    msgpack_pack_str_with_body(pk, kind, 1);
    msgpack_pack_uint64(pk, self->version);
}

static void s_pack_str(msgpack_packer *pk, const char *s, size_t len)
{
    msgpack_pack_str_with_body(pk, s, len);
}

static void s_send_delta(presence_t *self, bool set, wire_str_t ns,
                         wire_str_t topic, wire_str_t key, wire_str_t meta)
{
    self->version++;
    if (!self->io.send) {
        return;
    }
    msgpack_packer pk;
    s_pack_head(self, &pk, 9, "d");
    msgpack_pack_uint8(&pk, set ? 1 : 0);
    s_pack_str(&pk, ns.ptr, ns.len);
    s_pack_str(&pk, topic.ptr, topic.len);
    s_pack_str(&pk, key.ptr, key.len);
    msgpack_pack_bin_with_body(&pk, meta.ptr, meta.len);
    self->io.send(self->io.arg, (const uint8_t *)self->sbuf.data,
                  self->sbuf.size);
}

//  Pack and send the entries [from, to) of list as chunk n of a snapshot.
static void s_send_chunk(presence_t *self, entry_t **list, size_t from,
                         size_t to, uint64_t n, bool last)
{
    msgpack_packer pk;
    s_pack_head(self, &pk, 7, "s");
    msgpack_pack_uint64(&pk, n);
    if (last) {
        msgpack_pack_true(&pk);
    } else {
        msgpack_pack_false(&pk);
    }
    msgpack_pack_array(&pk, (uint32_t)(to - from));
    for (size_t i = from; i < to; i++) {
        entry_t *e = list[i];
        msgpack_pack_array(&pk, 4);
        s_pack_str(&pk, e->ns, strlen(e->ns));
        s_pack_str(&pk, e->topic, strlen(e->topic));
        s_pack_str(&pk, e->key, strlen(e->key));
        msgpack_pack_bin_with_body(&pk, e->meta, e->meta_len);
    }
    self->io.send(self->io.arg, (const uint8_t *)self->sbuf.data,
                  self->sbuf.size);
}

void presence_snapshot(presence_t *self)
{
    self->snapshot_due = false;
    if (!self->io.send) {
        return;
    }
    entry_t **list = malloc((self->local.entries + 1) * sizeof *list);
    if (!list) {
        self->snapshot_due = true; // next tick, with memory
        return;
    }
    size_t n = 0;
    for (entry_t *e = zhashx_first(self->entries); e;
         e = zhashx_next(self->entries)) {
        if (e->owner && n < self->local.entries) {
            list[n++] = e;
        }
    }
    //  cut where a chunk's entries pass PRESENCE_CHUNK_BYTES (an entry at
    //  least per chunk; an empty table is one empty chunk)
    size_t from = 0, bytes = 0;
    uint64_t chunk = 0;
    for (size_t i = 0; i < n; i++) {
        size_t size = s_size(list[i]);
        if (i > from && bytes + size > PRESENCE_CHUNK_BYTES) {
            s_send_chunk(self, list, from, i, chunk++, false);
            from = i;
            bytes = 0;
        }
        bytes += size;
    }
    s_send_chunk(self, list, from, n, chunk, true);
    free(list);
}

static void s_ask(presence_t *self, const uint8_t *node, origin_t *origin,
                  uint64_t version, bool force);

void presence_tick(presence_t *self, size_t peers)
{
    if (!self->io.send) {
        return;
    }
    uint64_t tick = self->ticks++;
    if (self->snapshot_due) {
        presence_snapshot(self);
    }
    //  a snapshot we asked for that did not come whole (the request or a
    //  chunk was lost): ask again, without waiting for a summary
    for (origin_t *o = zhashx_first(self->origins); o;
         o = zhashx_next(self->origins)) {
        if (o->asked > o->version &&
            self->ticks - o->asked_at >= PRESENCE_ASK_TICKS) {
            s_ask(self, o->node, o, o->asked, true);
        }
    }
    //  a summary after a change (a lost last delta is found), else a
    //  refresh whose period grows with the peers: each sidecar receives
    //  about PRESENCE_FAN_IN of them per PRESENCE_REFRESH_TICKS ticks
    size_t scale = (peers + PRESENCE_FAN_IN - 1) / PRESENCE_FAN_IN;
    uint64_t since = tick - self->summary_tick;
    bool changed = self->version != self->summary_version;
    if (self->summarized && !(changed && since >= PRESENCE_SUMMARY_TICKS) &&
        since < (uint64_t)PRESENCE_REFRESH_TICKS * (scale ? scale : 1)) {
        return;
    }
    self->summarized = true;
    self->summary_version = self->version;
    self->summary_tick = tick;
    msgpack_packer pk;
    s_pack_head(self, &pk, 4, "v");
    self->io.send(self->io.arg, (const uint8_t *)self->sbuf.data,
                  self->sbuf.size);
}

void presence_usage(const presence_t *self, size_t *entries, size_t *bytes)
{
    *entries = self->local.entries;
    *bytes = self->local.bytes;
}

// --- local changes
// ------------------------------------------------------------

int presence_set(presence_t *self, const void *owner, wire_str_t ns,
                 wire_str_t topic, wire_str_t key, wire_str_t meta)
{
    char *k = s_key(self->node, ns.ptr, ns.len, topic.ptr, topic.len, key.ptr,
                    key.len);
    entry_t *old = k ? zhashx_lookup(self->entries, k) : NULL;
    free(k);
    if (old && old->owner != owner) {
        errno = EEXIST; // another app of ours holds that key
        return -1;
    }
    entry_t probe = {.ns = (char *)"",
                     .topic = (char *)"",
                     .key = (char *)"",
                     .meta_len = ns.len + topic.len + key.len + meta.len};
    size_t size = s_size(&probe), old_size = old ? s_size(old) : 0;
    usage_t *u = s_usage(self, owner, false);
    usage_t app = u ? *u : (usage_t){0, 0};
    if ((!old && (app.entries + 1 > self->limits.app_entries ||
                  self->local.entries + 1 > self->limits.entries)) ||
        app.bytes - old_size + size > self->limits.app_bytes ||
        self->local.bytes - old_size + size > self->limits.bytes) {
        errno = ENOSPC;
        return -1;
    }
    if (s_put(self, self->node, ns, topic, key, meta, owner)) {
        return -1;
    }
    s_send_delta(self, true, ns, topic, key, meta);
    return 0;
}

int presence_clear(presence_t *self, const void *owner, wire_str_t ns,
                   wire_str_t topic, wire_str_t key)
{
    char *k = s_key(self->node, ns.ptr, ns.len, topic.ptr, topic.len, key.ptr,
                    key.len);
    entry_t *e = k ? zhashx_lookup(self->entries, k) : NULL;
    if (!e || e->owner != owner) {
        free(k);
        errno = ENOENT;
        return -1;
    }
    s_remove(self, k);
    free(k);
    s_send_delta(self, false, ns, topic, key, (wire_str_t){"", 0});
    return 0;
}

void presence_owner_gone(presence_t *self, const void *owner)
{
    zlistx_t *gone = zlistx_new();
    for (entry_t *e = zhashx_first(self->entries); e;
         e = zhashx_next(self->entries)) {
        if (e->owner == owner) {
            zlistx_add_end(gone, (void *)zhashx_cursor(self->entries));
        }
    }
    for (const char *k = zlistx_first(gone); k; k = zlistx_next(gone)) {
        entry_t *e = zhashx_lookup(self->entries, k);
        char *ns = strdup(e->ns), *topic = strdup(e->topic);
        char *key = strdup(e->key);
        s_remove(self, k); // frees e and k
        if (ns && topic && key) {
            s_send_delta(self, false, wire_str(ns), wire_str(topic),
                         wire_str(key), (wire_str_t){"", 0});
        }
        free(ns);
        free(topic);
        free(key);
    }
    zlistx_destroy(&gone);
}

static bool s_in_topic(const entry_t *e, wire_str_t ns, wire_str_t topic)
{
    return strlen(e->ns) == ns.len && memcmp(e->ns, ns.ptr, ns.len) == 0 &&
           strlen(e->topic) == topic.len &&
           memcmp(e->topic, topic.ptr, topic.len) == 0;
}

void presence_list(presence_t *self, wire_str_t ns, wire_str_t topic,
                   presence_entry_fn *fn, void *arg)
{
    for (entry_t *e = zhashx_first(self->entries); e;
         e = zhashx_next(self->entries)) {
        if (s_in_topic(e, ns, topic)) {
            presence_entry_t v = s_view(e);
            fn(arg, &v);
        }
    }
}

// --- remote changes
// -----------------------------------------------------------

//  Remove every entry of node (all of them, or only those not in keep).
static void s_drop_node(presence_t *self, const uint8_t node[16],
                        zhashx_t *keep)
{
    zlistx_t *gone = zlistx_new();
    for (entry_t *e = zhashx_first(self->entries); e;
         e = zhashx_next(self->entries)) {
        const char *k = zhashx_cursor(self->entries);
        if (memcmp(e->node, node, 16) == 0 &&
            !(keep && zhashx_lookup(keep, k))) {
            zlistx_add_end(gone, (void *)k);
        }
    }
    for (const char *k = zlistx_first(gone); k; k = zlistx_next(gone)) {
        s_remove(self, k);
    }
    zlistx_destroy(&gone);
}

void presence_node_gone(presence_t *self, const uint8_t node[16])
{
    char hex[IDS_HEX_SIZE];
    ids_hex(node, hex);
    s_drop_node(self, node, NULL);
    zhashx_delete(self->origins, hex);
}

static bool s_str(const msgpack_object *o, wire_str_t *out)
{
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0 ||
        o->via.str.size > WIRE_MAX_NAME) {
        return false;
    }
    for (uint32_t i = 0; i < o->via.str.size; i++) {
        if ((unsigned char)o->via.str.ptr[i] < 0x20) {
            return false; // names never hold control characters
        }
    }
    *out = (wire_str_t){o->via.str.ptr, o->via.str.size};
    return true;
}

static bool s_bin(const msgpack_object *o, wire_str_t *out)
{
    if (o->type != MSGPACK_OBJECT_BIN) {
        return false;
    }
    *out = (wire_str_t){o->via.bin.ptr, o->via.bin.size};
    return true;
}

//  One chunk of a snapshot from node: its entries go in at once; the last
//  chunk of a version that came whole and in order removes what the
//  snapshot no longer holds. A chunk out of order drops the snapshot (the
//  next summary asks again). Returns 0, or -1 when it does not parse.
static int s_apply_chunk(presence_t *self, const uint8_t *node,
                         origin_t *origin, uint64_t version, uint64_t chunk,
                         bool last, const msgpack_object *list)
{
    if (version <= origin->version && origin->version) {
        return 0; // we hold this version (or newer) already
    }
    if (chunk == 0) {
        zhashx_destroy(&origin->keep);
        origin->keep = zhashx_new();
        origin->incoming = version;
        origin->next = 0;
    }
    if (!origin->keep || origin->incoming != version || origin->next != chunk) {
        zhashx_destroy(&origin->keep); // a chunk went missing: drop it
        origin->incoming = 0;
        return 0;
    }
    for (uint32_t i = 0; i < list->via.array.size; i++) {
        const msgpack_object *item = &list->via.array.ptr[i];
        wire_str_t ns, topic, key, meta;
        if (item->type != MSGPACK_OBJECT_ARRAY || item->via.array.size != 4 ||
            !s_str(&item->via.array.ptr[0], &ns) ||
            !s_str(&item->via.array.ptr[1], &topic) ||
            !s_str(&item->via.array.ptr[2], &key) ||
            !s_bin(&item->via.array.ptr[3], &meta)) {
            zhashx_destroy(&origin->keep);
            origin->incoming = 0;
            return -1;
        }
        char *k =
            s_key(node, ns.ptr, ns.len, topic.ptr, topic.len, key.ptr, key.len);
        if (k) {
            zhashx_insert(origin->keep, k, (void *)1);
            free(k);
        }
        s_put(self, node, ns, topic, key, meta, NULL);
    }
    origin->next++;
    if (last) {
        s_drop_node(self, node, origin->keep); // what it no longer has
        zhashx_destroy(&origin->keep);
        origin->incoming = 0;
        origin->version = version;
    }
    return 0;
}

//  Ask node for a snapshot when our copy of its entries is behind version
//  (always when force): once per version, again after PRESENCE_ASK_TICKS
//  if no snapshot came (the request or a chunk was lost).
static void s_ask(presence_t *self, const uint8_t *node, origin_t *origin,
                  uint64_t version, bool force)
{
    if (!self->io.send ||
        (!force && (version <= origin->version ||
                    (version <= origin->asked &&
                     self->ticks - origin->asked_at < PRESENCE_ASK_TICKS)))) {
        return;
    }
    origin->asked = version;
    origin->asked_at = self->ticks;
    msgpack_packer pk;
    s_pack_head(self, &pk, 5, "r");
    msgpack_pack_bin_with_body(&pk, node, 16);
    self->io.send(self->io.arg, (const uint8_t *)self->sbuf.data,
                  self->sbuf.size);
}

//  The record of what we hold of node, made on first use (NULL: no
//  memory).
static origin_t *s_origin(presence_t *self, const uint8_t *node)
{
    char hex[IDS_HEX_SIZE];
    ids_hex(node, hex);
    origin_t *origin = zhashx_lookup(self->origins, hex);
    if (!origin && (origin = calloc(1, sizeof *origin))) {
        memcpy(origin->node, node, 16);
        zhashx_insert(self->origins, hex, origin);
    }
    return origin;
}

void presence_peer_up(presence_t *self, const uint8_t node[16])
{
    if (self->version) {
        self->snapshot_due = true; // it learns ours at the next tick
    }
    char hex[IDS_HEX_SIZE];
    ids_hex(node, hex);
    origin_t *origin = zhashx_lookup(self->origins, hex);
    if (origin && origin->returning && memcmp(node, self->node, 16) != 0) {
        origin->returning = false;
        s_ask(self, node, origin, 0, true); // what we dropped when it went
    }
}

void presence_peer_down(presence_t *self, const uint8_t node[16])
{
    char hex[IDS_HEX_SIZE];
    ids_hex(node, hex);
    origin_t *origin = zhashx_lookup(self->origins, hex);
    bool held = origin && (origin->version || origin->returning);
    presence_node_gone(self, node);
    if (held && (origin = s_origin(self, node))) {
        origin->returning = true;
    }
}

int presence_on_remote(presence_t *self, const uint8_t *body, size_t len)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    int rc = -1;
    if (!wire_msgpack_bounded(body, len) ||
        msgpack_unpack_next(&up, (const char *)body, len, NULL) !=
            MSGPACK_UNPACK_SUCCESS) {
        goto done;
    }
    const msgpack_object *o = &up.data;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 4) {
        goto done;
    }
    const msgpack_object *a = o->via.array.ptr;
    size_t clen = strlen(self->channel);
    if (a[0].type != MSGPACK_OBJECT_STR || a[0].via.str.size != clen ||
        memcmp(a[0].via.str.ptr, self->channel, clen) != 0 ||
        a[1].type != MSGPACK_OBJECT_BIN || a[1].via.bin.size != 16 ||
        a[2].type != MSGPACK_OBJECT_STR || a[2].via.str.size != 1 ||
        a[3].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        goto done;
    }
    const uint8_t *node = (const uint8_t *)a[1].via.bin.ptr;
    if (memcmp(node, self->node, 16) == 0) {
        rc = 0; // our own, back through a proxy
        goto done;
    }
    origin_t *origin = s_origin(self, node);
    if (!origin) {
        goto done;
    }
    uint64_t version = a[3].via.u64;
    char kind = a[2].via.str.ptr[0];
    uint32_t n = o->via.array.size;
    if (kind == 's' && n == 7 && a[4].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
        a[5].type == MSGPACK_OBJECT_BOOLEAN &&
        a[6].type == MSGPACK_OBJECT_ARRAY) {
        rc = s_apply_chunk(self, node, origin, version, a[4].via.u64,
                           a[5].via.boolean, &a[6]);
    } else if (kind == 'v' && n == 4) {
        s_ask(self, node, origin, version, false);
        rc = 0;
    } else if (kind == 'r' && n == 5 && a[4].type == MSGPACK_OBJECT_BIN &&
               a[4].via.bin.size == 16) {
        //  coalesced: one snapshot at the next tick, however many ask
        self->snapshot_due |= memcmp(a[4].via.bin.ptr, self->node, 16) == 0;
        rc = 0;
    } else if (kind == 'd' && o->via.array.size == 9 &&
               a[4].type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        wire_str_t ns, topic, key, meta;
        if (!s_str(&a[5], &ns) || !s_str(&a[6], &topic) ||
            !s_str(&a[7], &key) || !s_bin(&a[8], &meta)) {
            goto done;
        }
        rc = 0;
        if (version != origin->version + 1) {
            //  missed one (or joined late): a snapshot settles it
            s_ask(self, node, origin, version, false);
            goto done;
        }
        origin->version = version;
        if (a[4].via.u64 == 1) {
            s_put(self, node, ns, topic, key, meta, NULL);
        } else {
            char *k = s_key(node, ns.ptr, ns.len, topic.ptr, topic.len, key.ptr,
                            key.len);
            if (k) {
                s_remove(self, k);
                free(k);
            }
        }
    }
done:
    msgpack_unpacked_destroy(&up);
    if (rc) {
        errno = EPROTO;
    }
    return rc;
}
