/*  forge: a hostile mesh peer, for tests/integration/test_mesh_hostile.c.

    forge --bind ENDPOINT [--capture ENDPOINT [--replay-heartbeat] |
          --key-file FILE | --oversize BYTES] [--channel NAME] [--ns NS]
          [--topic TOPIC] [--count N] [--timeout MS] [--wait-go]

    It binds an XPUB at --bind, as a sidecar's data socket, and waits until
    a victim sidecar (told "peer-add ENDPOINT") connects its SUB and
    subscribes a 16-byte routing key and its ack prefix (AK || node, which
    tells us the victim's node id). The XPUB is in manual mode and
    subscribes that pipe to everything, so forge can send frames the victim
    never asked for; the victim's own SUB still filters them, which is why
    some kinds below are "filtered" (the daemon never sees them).

    Tampering mode (default). With --capture, a SUB connects to a genuine
    sidecar's data endpoint, subscribes the same routing key and the
    heartbeat prefix, waits for one heartbeat (then every subscription sent
    before it is in effect there: "capture_ready=1") and for one genuine
    envelope ("captured=LEN"). With --wait-go it then waits for a line on
    stdin, so the caller can let the victim receive the genuine copy first.
    Then it sends, each kind a few times:

      kind               frames                          victim counts it as
      replay             [rkey][genuine]                 env_duplicates
      bitflip            [rkey][genuine, 1 bit flipped]  env_undecryptable
      format             [rkey][genuine, format 0 or 3]  env_refused_format
      truncated          [rkey][genuine cut short]       env_undecryptable
      random_body        [rkey][format 1|2, random]      env_undecryptable
      empty_body         [rkey][]                        env_undecryptable
      hb_as_env          [rkey][2, genuine heartbeat seal] env_undecryptable
      single_frame       [rkey] [rkey||genuine] [HB..]   env_malformed
      three_frame        [rkey][genuine][x] ...          env_malformed
      many_frame         five frames                     env_malformed
      hb_garbage         [HB][random]                    control_bad
      hb_long_prefix     [HB || junk][random]            control_bad
      ack_garbage        [AK || victim][random]          control_bad
      empty_control      [HB][] [AK || victim][]         control_bad
      env_as_hb          [HB][genuine envelope seal]     control_bad
      random_rkey        [random 16][random]             filtered
      rkey_flip          [rkey, 1 bit flipped][genuine]  filtered
      empty_key          [][...]                         filtered

    Without --capture, a random stand-in takes the genuine envelope's
    place, and replay and hb_as_env are not sent.

    Heartbeat replay (--capture ENDPOINT --replay-heartbeat): captures one
    heartbeat of the genuine sidecar (no envelope needed) and, after
    --wait-go's line if given, replays it as is --count times, 50 ms apart
    (hb_replay). It opens (the genuine sidecar sealed it), so a victim
    without a freshness check takes it as a sign of life.

    Oversize mode (--oversize BYTES): one [rkey][0x01, BYTES - 1 bytes]
    and nothing else (kind oversize). A sidecar should refuse a frame over
    ENVELOPE_MAX_SEALED (max_payload) before buffering it (ZMQ_MAXMSGSIZE
    on its SUB, which drops that link); one that buffers it counts
    env_undecryptable (EMSGSIZE) after holding all of it in memory.

    Wrong-key mode (--key-file FILE, a key that is not the cluster's): seals
    --count validly formed envelopes for (--ns, --topic) under that key,
    with the victim's routing key as frame 1 (wrongkey_envelope:
    env_undecryptable), and heartbeats and an ack for --channel under it
    (wrongkey_heartbeat, wrongkey_ack: control_bad).

    Output, on stdout, one key=value per line: progress (bound=,
    victim_rkey=, victim_node=, capture_ready=, captured=), then every
    kind's count, then the totals by what the victim should count:
    to_duplicates=, to_undecryptable=, to_refused_format=, to_malformed=,
    to_control_bad=,
    to_filtered=, to_control_received=, and sent=. Exit 0 when everything
    was handed to ZeroMQ and flushed; 1 on a timeout (every wait ends at
    --timeout ms after the start, default 10000) or an error, with a
    message on stderr; 2 on bad usage.
*/
#include "envelope.h"
#include "keyring.h"

#include <errno.h>
#include <msgpack.h>
#include <poll.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define PREFIX_LEN 8
#define RKEY_LEN   KEYRING_RKEY_SIZE
#define CTL_TAG    "roomcast/ctl/v1" // mesh.c: control associated data

static const uint8_t HB[PREFIX_LEN] = {0xff, 0xfd, 'R', 'C', 'h', 'b', 0, 1};
static const uint8_t AK[PREFIX_LEN] = {0xff, 0xfe, 'R', 'C', 'a', 'k', 0, 1};

typedef enum {
    G_DUPLICATES,
    G_UNDECRYPTABLE,
    G_REFUSED_FORMAT,
    G_MALFORMED,
    G_CONTROL_BAD,
    G_FILTERED,
    G_CONTROL_RECEIVED,
    G_COUNT
} group_t;

static const char *const s_group_names[G_COUNT] = {
    "to_duplicates",  "to_undecryptable", "to_refused_format",  "to_malformed",
    "to_control_bad", "to_filtered",      "to_control_received"};

typedef struct {
    const char *name;
    group_t group;
    unsigned sent;
} kind_t;

enum {
    K_REPLAY,
    K_BITFLIP,
    K_FORMAT,
    K_TRUNCATED,
    K_RANDOM_BODY,
    K_OVERSIZE,
    K_EMPTY_BODY,
    K_HB_AS_ENV,
    K_SINGLE_FRAME,
    K_THREE_FRAME,
    K_MANY_FRAME,
    K_HB_GARBAGE,
    K_HB_LONG_PREFIX,
    K_ACK_GARBAGE,
    K_EMPTY_CONTROL,
    K_ENV_AS_HB,
    K_RANDOM_RKEY,
    K_RKEY_FLIP,
    K_EMPTY_KEY,
    K_HB_REPLAY,
    K_WRONGKEY_ENVELOPE,
    K_WRONGKEY_HEARTBEAT,
    K_WRONGKEY_ACK,
    K_COUNT
};

static kind_t s_kinds[K_COUNT] = {
    [K_REPLAY] = {"replay", G_DUPLICATES, 0},
    [K_BITFLIP] = {"bitflip", G_UNDECRYPTABLE, 0},
    [K_FORMAT] = {"format", G_REFUSED_FORMAT, 0},
    [K_TRUNCATED] = {"truncated", G_UNDECRYPTABLE, 0},
    [K_RANDOM_BODY] = {"random_body", G_UNDECRYPTABLE, 0},
    [K_OVERSIZE] = {"oversize", G_UNDECRYPTABLE, 0},
    [K_EMPTY_BODY] = {"empty_body", G_UNDECRYPTABLE, 0},
    [K_HB_AS_ENV] = {"hb_as_env", G_UNDECRYPTABLE, 0},
    [K_SINGLE_FRAME] = {"single_frame", G_MALFORMED, 0},
    [K_THREE_FRAME] = {"three_frame", G_MALFORMED, 0},
    [K_MANY_FRAME] = {"many_frame", G_MALFORMED, 0},
    [K_HB_GARBAGE] = {"hb_garbage", G_CONTROL_BAD, 0},
    [K_HB_LONG_PREFIX] = {"hb_long_prefix", G_CONTROL_BAD, 0},
    [K_ACK_GARBAGE] = {"ack_garbage", G_CONTROL_BAD, 0},
    [K_EMPTY_CONTROL] = {"empty_control", G_CONTROL_BAD, 0},
    [K_ENV_AS_HB] = {"env_as_hb", G_CONTROL_BAD, 0},
    [K_RANDOM_RKEY] = {"random_rkey", G_FILTERED, 0},
    [K_RKEY_FLIP] = {"rkey_flip", G_FILTERED, 0},
    [K_EMPTY_KEY] = {"empty_key", G_FILTERED, 0},
    [K_HB_REPLAY] = {"hb_replay", G_CONTROL_RECEIVED, 0},
    [K_WRONGKEY_ENVELOPE] = {"wrongkey_envelope", G_UNDECRYPTABLE, 0},
    [K_WRONGKEY_HEARTBEAT] = {"wrongkey_heartbeat", G_CONTROL_BAD, 0},
    [K_WRONGKEY_ACK] = {"wrongkey_ack", G_CONTROL_BAD, 0},
};

typedef struct {
    const char *bind;
    const char *capture;
    const char *key_file;
    const char *channel;
    const char *ns;
    const char *topic;
    size_t oversize;
    int count;
    int timeout_ms;
    bool wait_go;
    bool replay_hb;
} opts_t;

typedef struct {
    const opts_t *opts;
    void *ctx;
    void *xpub;         // the victim connects here
    void *cap;          // SUB to the genuine sidecar, or NULL
    long long deadline; // ms, monotonic
    uint8_t rkey[RKEY_LEN];
    uint8_t victim[16]; // the victim's node id
    uint8_t *genuine;   // a genuine envelope (frame 2), or a stand-in
    size_t genuine_len;
    bool captured;      // genuine is real
    uint8_t *heartbeat; // a genuine heartbeat (frame 2), or NULL
    size_t heartbeat_len;
} forge_t;

// --- helpers -----------------------------------------------------------------

static long long s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int s_left(const forge_t *self)
{
    long long left = self->deadline - s_now();
    return left > 0 ? (int)left : 0;
}

static void s_hex(const uint8_t *data, size_t len, char *out)
{
    sodium_bin2hex(out, 2 * len + 1, data, len);
}

static void s_say(const char *key, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void s_say(const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s=", key);
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
}

static int s_timeout(const char *what)
{
    fprintf(stderr, "forge: timed out waiting for %s\n", what);
    return -1;
}

//  Send nframes frames to the victim as one message, counted under kind.
//  Blocking (XPUB_NODROP, no high-water mark), bounded by the deadline.
static int s_sendv(forge_t *self, int kind, int nframes,
                   const uint8_t *const *data, const size_t *len)
{
    int left = s_left(self);
    zmq_setsockopt(self->xpub, ZMQ_SNDTIMEO, &left, sizeof left);
    for (int i = 0; i < nframes; i++) {
        int flags = i + 1 < nframes ? ZMQ_SNDMORE : 0;
        if (zmq_send(self->xpub, data[i], len[i], flags) < 0) {
            fprintf(stderr, "forge: send %s: %s\n", s_kinds[kind].name,
                    zmq_strerror(errno));
            return -1;
        }
    }
    s_kinds[kind].sent++;
    return 0;
}

static int s_send2(forge_t *self, int kind, const uint8_t *f1, size_t l1,
                   const uint8_t *f2, size_t l2)
{
    const uint8_t *data[2] = {f1, f2};
    size_t len[2] = {l1, l2};
    return s_sendv(self, kind, 2, data, len);
}

static uint8_t *s_random(size_t len)
{
    uint8_t *p = malloc(len ? len : 1);
    if (p) {
        randombytes_buf(p, len);
    }
    return p;
}

// --- waiting -----------------------------------------------------------------

//  Read subscriptions from the victim until we hold a routing key (16
//  bytes) and its ack prefix (AK || node). The first subscription of a
//  pipe subscribes that pipe to everything (manual mode).
static int s_wait_victim(forge_t *self)
{
    bool have_rkey = false, have_node = false, all = false;
    while (!have_rkey || !have_node) {
        zmq_pollitem_t item = {self->xpub, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, s_left(self)) <= 0) {
            return s_timeout("the victim to subscribe a routing key "
                             "(peer-add this forge to a sidecar whose app "
                             "subscribed a topic)");
        }
        uint8_t buf[256];
        int n = zmq_recv(self->xpub, buf, sizeof buf, ZMQ_DONTWAIT);
        if (n < 1 || buf[0] != 1) {
            continue; // an unsubscription, or nothing
        }
        if (!all) {
            zmq_setsockopt(self->xpub, ZMQ_SUBSCRIBE, "", 0);
            all = true;
        }
        if (n == 1 + RKEY_LEN && !have_rkey) {
            memcpy(self->rkey, buf + 1, RKEY_LEN);
            have_rkey = true;
        } else if (n == 1 + PREFIX_LEN + 16 &&
                   memcmp(buf + 1, AK, PREFIX_LEN) == 0) {
            memcpy(self->victim, buf + 1 + PREFIX_LEN, 16);
            have_node = true;
        }
    }
    char hex[33];
    s_hex(self->rkey, RKEY_LEN, hex);
    s_say("victim_rkey", "%s", hex);
    s_hex(self->victim, 16, hex);
    s_say("victim_node", "%s", hex);
    return 0;
}

//  Receive one whole message from the capture SUB into f1/f2 (at most two
//  frames kept). Returns the number of frames, or -1 on timeout.
static int s_recv_capture(forge_t *self, zmq_msg_t *f1, zmq_msg_t *f2)
{
    zmq_pollitem_t item = {self->cap, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, s_left(self)) <= 0) {
        return -1;
    }
    int frames = 0;
    bool more = true;
    while (more) {
        zmq_msg_t *m = frames == 0 ? f1 : f2, extra;
        if (frames >= 2) {
            zmq_msg_init(&extra);
            m = &extra;
        }
        if (zmq_msg_recv(m, self->cap, 0) < 0) {
            return -1;
        }
        more = zmq_msg_more(m);
        if (m == &extra) {
            zmq_msg_close(&extra);
        }
        frames++;
    }
    return frames;
}

static int s_capture(forge_t *self)
{
    int zero = 0;
    self->cap = zmq_socket(self->ctx, ZMQ_SUB);
    if (!self->cap ||
        zmq_setsockopt(self->cap, ZMQ_LINGER, &zero, sizeof zero) ||
        zmq_setsockopt(self->cap, ZMQ_SUBSCRIBE, self->rkey, RKEY_LEN) ||
        zmq_setsockopt(self->cap, ZMQ_SUBSCRIBE, HB, PREFIX_LEN) ||
        zmq_connect(self->cap, self->opts->capture)) {
        fprintf(stderr, "forge: cannot connect to %s: %s\n",
                self->opts->capture, zmq_strerror(errno));
        return -1;
    }
    //  Subscriptions travel in order on the link: once the genuine
    //  sidecar's heartbeat comes back, it holds our routing key too.
    bool ready = false;
    while (!self->captured && !(self->opts->replay_hb && self->heartbeat)) {
        zmq_msg_t f1, f2;
        zmq_msg_init(&f1);
        zmq_msg_init(&f2);
        int frames = s_recv_capture(self, &f1, &f2);
        if (frames < 0) {
            zmq_msg_close(&f1);
            zmq_msg_close(&f2);
            return s_timeout(ready ? "a genuine envelope on the routing key"
                                   : "a heartbeat from --capture");
        }
        const uint8_t *p1 = zmq_msg_data(&f1);
        size_t l1 = zmq_msg_size(&f1), l2 = zmq_msg_size(&f2);
        uint8_t **dst = NULL;
        size_t *dst_len = NULL;
        if (frames == 2 && l1 == PREFIX_LEN &&
            memcmp(p1, HB, PREFIX_LEN) == 0) {
            if (!ready) {
                s_say("capture_ready", "1");
                ready = true;
            }
            if (!self->heartbeat) {
                dst = &self->heartbeat, dst_len = &self->heartbeat_len;
            }
        } else if (frames == 2 && l1 == RKEY_LEN &&
                   memcmp(p1, self->rkey, RKEY_LEN) == 0) {
            dst = &self->genuine, dst_len = &self->genuine_len;
            self->captured = true;
        }
        if (dst && (*dst = malloc(l2 ? l2 : 1))) {
            memcpy(*dst, zmq_msg_data(&f2), l2);
            *dst_len = l2;
        } else if (dst) {
            zmq_msg_close(&f1);
            zmq_msg_close(&f2);
            fprintf(stderr, "forge: out of memory\n");
            return -1;
        }
        zmq_msg_close(&f1);
        zmq_msg_close(&f2);
    }
    if (self->captured) {
        s_say("captured", "%zu", self->genuine_len);
    }
    return 0;
}

static int s_wait_go(forge_t *self)
{
    struct pollfd p = {0, POLLIN, 0};
    if (poll(&p, 1, s_left(self)) <= 0) {
        return s_timeout("a line on stdin (--wait-go)");
    }
    char line[64];
    if (!fgets(line, sizeof line, stdin)) {
        fprintf(stderr, "forge: stdin closed before go\n");
        return -1;
    }
    return 0;
}

// --- tampering ---------------------------------------------------------------

static int s_tamper_envelopes(forge_t *self)
{
    const uint8_t *g = self->genuine;
    size_t glen = self->genuine_len;
    int rc = 0;
    if (self->captured) {
        rc |= s_send2(self, K_REPLAY, self->rkey, RKEY_LEN, g, glen);
    }
    //  one bit at the nonce, the ciphertext and the tag (a flip of the
    //  format byte makes another format: "format" below)
    size_t at[] = {1, 24, 25, glen / 2, glen - 17, glen - 16, glen - 1};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        uint8_t *copy = malloc(glen);
        if (!copy) {
            return -1;
        }
        memcpy(copy, g, glen);
        copy[at[i]] ^= (uint8_t)(1u << (i % 8));
        rc |= s_send2(self, K_BITFLIP, self->rkey, RKEY_LEN, copy, glen);
        free(copy);
    }
    const uint8_t formats[] = {0x00, 0x03, 0x03};
    for (size_t i = 0; i < sizeof formats; i++) {
        uint8_t *copy = malloc(glen);
        if (!copy) {
            return -1;
        }
        memcpy(copy, g, glen);
        copy[0] = formats[i];
        rc |= s_send2(self, K_FORMAT, self->rkey, RKEY_LEN, copy, glen);
        free(copy);
    }
    size_t cut[] = {1, 24, 40, 41, glen / 2, glen - 1};
    for (size_t i = 0; i < sizeof cut / sizeof cut[0]; i++) {
        rc |= s_send2(self, K_TRUNCATED, self->rkey, RKEY_LEN, g, cut[i]);
    }
    size_t sizes[] = {1, 40, 41, 100, 1000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint8_t *r = s_random(sizes[i]);
        if (!r) {
            return -1;
        }
        //  gets past the format check
        r[0] = i % 2 ? ENVELOPE_FORMAT : ENVELOPE_FORMAT2;
        rc |= s_send2(self, K_RANDOM_BODY, self->rkey, RKEY_LEN, r, sizes[i]);
        free(r);
    }
    rc |= s_send2(self, K_EMPTY_BODY, self->rkey, RKEY_LEN, NULL, 0);
    if (self->heartbeat) {
        uint8_t *hb = malloc(1 + self->heartbeat_len);
        if (!hb) {
            return -1;
        }
        hb[0] = ENVELOPE_FORMAT2;
        memcpy(hb + 1, self->heartbeat, self->heartbeat_len);
        rc |= s_send2(self, K_HB_AS_ENV, self->rkey, RKEY_LEN, hb,
                      1 + self->heartbeat_len);
        free(hb);
    }
    return rc;
}

static int s_tamper_framing(forge_t *self)
{
    const uint8_t *g = self->genuine;
    size_t glen = self->genuine_len;
    int rc = 0;
    uint8_t *joined = malloc(RKEY_LEN + glen);
    if (!joined) {
        return -1;
    }
    memcpy(joined, self->rkey, RKEY_LEN);
    memcpy(joined + RKEY_LEN, g, glen);
    uint8_t hb_junk[PREFIX_LEN + 4];
    memcpy(hb_junk, HB, PREFIX_LEN);
    randombytes_buf(hb_junk + PREFIX_LEN, 4);
    uint8_t ak[PREFIX_LEN + 16];
    memcpy(ak, AK, PREFIX_LEN);
    memcpy(ak + PREFIX_LEN, self->victim, 16);

    //  one frame: each matches a subscription of the victim
    const uint8_t *one[] = {self->rkey, joined, hb_junk, ak};
    size_t one_len[] = {RKEY_LEN, RKEY_LEN + glen, sizeof hb_junk, sizeof ak};
    for (size_t i = 0; i < 4; i++) {
        rc |= s_sendv(self, K_SINGLE_FRAME, 1, &one[i], &one_len[i]);
    }
    //  three frames: a genuine envelope with a tail, empty tails, control
    const uint8_t *t1[] = {self->rkey, g, (const uint8_t *)"x"};
    size_t t1_len[] = {RKEY_LEN, glen, 1};
    const uint8_t *t2[] = {self->rkey, NULL, NULL};
    size_t t2_len[] = {RKEY_LEN, 0, 0};
    const uint8_t *t3[] = {HB, hb_junk, hb_junk};
    size_t t3_len[] = {PREFIX_LEN, sizeof hb_junk, sizeof hb_junk};
    rc |= s_sendv(self, K_THREE_FRAME, 3, t1, t1_len);
    rc |= s_sendv(self, K_THREE_FRAME, 3, t2, t2_len);
    rc |= s_sendv(self, K_THREE_FRAME, 3, t3, t3_len);
    const uint8_t *five[] = {self->rkey, g, g, NULL, g};
    size_t five_len[] = {RKEY_LEN, glen, glen, 0, glen};
    rc |= s_sendv(self, K_MANY_FRAME, 5, five, five_len);

    //  frame 1 no subscription of the victim matches: its SUB drops them
    for (int i = 0; i < 3; i++) {
        uint8_t key[RKEY_LEN], body[64];
        randombytes_buf(key, sizeof key);
        key[0] &= 0x7f; // never a control prefix
        randombytes_buf(body, sizeof body);
        rc |= s_send2(self, K_RANDOM_RKEY, key, sizeof key, body, sizeof body);
    }
    for (int i = 0; i < 2; i++) {
        uint8_t key[RKEY_LEN];
        memcpy(key, self->rkey, RKEY_LEN);
        key[i * 15] ^= 0x10;
        rc |= s_send2(self, K_RKEY_FLIP, key, sizeof key, g, glen);
    }
    rc |= s_send2(self, K_EMPTY_KEY, NULL, 0, g, glen);
    rc |= s_send2(self, K_EMPTY_KEY, NULL, 0, NULL, 0);
    free(joined);
    return rc;
}

static int s_tamper_control(forge_t *self)
{
    int rc = 0;
    uint8_t ak[PREFIX_LEN + 16 + 4];
    memcpy(ak, AK, PREFIX_LEN);
    memcpy(ak + PREFIX_LEN, self->victim, 16);
    randombytes_buf(ak + PREFIX_LEN + 16, 4);
    size_t sizes[] = {1, 40, 41, 100, 1000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint8_t *r = s_random(sizes[i]);
        if (!r) {
            return -1;
        }
        rc |= s_send2(self, K_HB_GARBAGE, HB, PREFIX_LEN, r, sizes[i]);
        if (i < 3) {
            rc |=
                s_send2(self, K_ACK_GARBAGE, ak, PREFIX_LEN + 16, r, sizes[i]);
        }
        free(r);
    }
    //  the victim's SUB matches the prefix; the rest of frame 1 is junk,
    //  within (24) and past (41, 200) the longest control frame 1
    rc |= s_send2(self, K_ACK_GARBAGE, ak, sizeof ak, (const uint8_t *)"?", 1);
    size_t longs[] = {9, 24, 41, 200};
    for (size_t i = 0; i < sizeof longs / sizeof longs[0]; i++) {
        uint8_t *f1 = s_random(longs[i]), body[48];
        if (!f1) {
            return -1;
        }
        memcpy(f1, HB, PREFIX_LEN);
        randombytes_buf(body, sizeof body);
        rc |= s_send2(self, K_HB_LONG_PREFIX, f1, longs[i], body, sizeof body);
        free(f1);
    }
    rc |= s_send2(self, K_EMPTY_CONTROL, HB, PREFIX_LEN, NULL, 0);
    rc |= s_send2(self, K_EMPTY_CONTROL, ak, PREFIX_LEN + 16, NULL, 0);
    if (self->captured) {
        rc |= s_send2(self, K_ENV_AS_HB, HB, PREFIX_LEN, self->genuine,
                      self->genuine_len);
    }
    return rc;
}

// --- oversize ----------------------------------------------------------------

static int s_oversize(forge_t *self)
{
    size_t len = self->opts->oversize;
    uint8_t *big = malloc(len);
    if (!big) {
        fprintf(stderr, "forge: out of memory for --oversize\n");
        return -1;
    }
    memset(big, 0xa5, len);
    big[0] = ENVELOPE_FORMAT;
    int rc = s_send2(self, K_OVERSIZE, self->rkey, RKEY_LEN, big, len);
    free(big);
    return rc;
}

// --- heartbeat replay --------------------------------------------------------

//  The captured heartbeat, as is, --count times, 50 ms apart.
static int s_replay_heartbeat(forge_t *self)
{
    for (int i = 0; i < self->opts->count; i++) {
        if (s_send2(self, K_HB_REPLAY, HB, PREFIX_LEN, self->heartbeat,
                    self->heartbeat_len)) {
            return -1;
        }
        if (s_left(self) < 50) {
            return s_timeout("the end of the replays (raise --timeout)");
        }
        poll(NULL, 0, 50);
    }
    return 0;
}

// --- wrong key ---------------------------------------------------------------

//  Seal a control body as mesh.c does (AD: tag || frame 1 || channel), but
//  under ring, and send it.
static int s_send_control(forge_t *self, int kind, keyring_t *ring,
                          const uint8_t *f1, size_t f1_len,
                          const msgpack_sbuffer *body)
{
    const char *ch = self->opts->channel;
    size_t tlen = sizeof CTL_TAG - 1, clen = strlen(ch);
    uint8_t ad[64 + 256];
    if (f1_len > 40 || clen > 255) {
        return -1;
    }
    memcpy(ad, CTL_TAG, tlen);
    memcpy(ad + tlen, f1, f1_len);
    memcpy(ad + tlen + f1_len, ch, clen);
    size_t cap = body->size + KEYRING_SEAL_OVERHEAD, len;
    uint8_t *sealed = malloc(cap);
    int rc = -1;
    if (sealed && keyring_seal(ring, ad, tlen + f1_len + clen,
                               (const uint8_t *)body->data, body->size, sealed,
                               cap, &len) == 0) {
        rc = s_send2(self, kind, f1, f1_len, sealed, len);
    }
    free(sealed);
    return rc;
}

static int s_wrong_key(forge_t *self)
{
    const opts_t *o = self->opts;
    char err[256];
    keyring_t *ring = keyring_new();
    if (!ring || keyring_load_file(ring, o->key_file, err, sizeof err)) {
        fprintf(stderr, "forge: %s\n", ring ? err : "out of memory");
        keyring_destroy(&ring);
        return -1;
    }
    int rc = 0;
    uint8_t node[16], instance[16];
    randombytes_buf(node, sizeof node);
    randombytes_buf(instance, sizeof instance);
    for (int i = 0; i < o->count; i++) {
        char text[64];
        int n = snprintf(text, sizeof text, "forged %d", i + 1);
        envelope_t env = {.sequence = (uint64_t)i + 1,
                          .event_id = (uint64_t)i + 1,
                          .ns = o->ns,
                          .ns_len = strlen(o->ns),
                          .topic = o->topic,
                          .topic_len = strlen(o->topic),
                          .kind = ENVELOPE_KIND_TEXT,
                          .payload = (const uint8_t *)text,
                          .payload_len = (size_t)n,
                          .timestamp_ms = (uint64_t)time(NULL) * 1000};
        memcpy(env.origin_node, node, 16);
        memcpy(env.origin_instance, instance, 16);
        uint8_t *sealed;
        size_t len;
        if (envelope_seal(ring, &env, self->rkey, &sealed, &len)) {
            fprintf(stderr, "forge: envelope_seal: %s\n", strerror(errno));
            rc = -1;
            break;
        }
        rc |= s_send2(self, K_WRONGKEY_ENVELOPE, self->rkey, RKEY_LEN, sealed,
                      len);
        free(sealed);
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    for (int i = 0; i < 2; i++) {
        msgpack_sbuffer_clear(&sb);
        msgpack_pack_array(&pk, 5);
        msgpack_pack_str_with_body(&pk, o->channel, strlen(o->channel));
        msgpack_pack_bin_with_body(&pk, node, 16);
        msgpack_pack_str_with_body(&pk, "forge", 5);
        msgpack_pack_str_with_body(&pk, o->bind, strlen(o->bind));
        msgpack_pack_array(&pk, 1);
        msgpack_pack_bin_with_body(&pk, self->victim, 16);
        rc |= s_send_control(self, K_WRONGKEY_HEARTBEAT, ring, HB, PREFIX_LEN,
                             &sb);
    }
    uint8_t ak[PREFIX_LEN + 16];
    memcpy(ak, AK, PREFIX_LEN);
    memcpy(ak + PREFIX_LEN, self->victim, 16);
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_str_with_body(&pk, o->channel, strlen(o->channel));
    msgpack_pack_bin_with_body(&pk, node, 16);
    msgpack_pack_uint64(&pk, 1);
    rc |= s_send_control(self, K_WRONGKEY_ACK, ring, ak, sizeof ak, &sb);
    msgpack_sbuffer_destroy(&sb);
    keyring_destroy(&ring);
    return rc;
}

// --- main --------------------------------------------------------------------

static void s_report(void)
{
    unsigned totals[G_COUNT] = {0}, sent = 0;
    for (int k = 0; k < K_COUNT; k++) {
        if (s_kinds[k].sent) {
            s_say(s_kinds[k].name, "%u", s_kinds[k].sent);
        }
        totals[s_kinds[k].group] += s_kinds[k].sent;
        sent += s_kinds[k].sent;
    }
    for (int g = 0; g < G_COUNT; g++) {
        s_say(s_group_names[g], "%u", totals[g]);
    }
    s_say("sent", "%u", sent);
}

static int s_usage(void)
{
    fprintf(stderr, "usage: forge --bind ENDPOINT [--capture ENDPOINT "
                    "[--replay-heartbeat] |\n"
                    "             --key-file FILE | --oversize BYTES] "
                    "[--channel NAME] [--ns NS]\n"
                    "             [--topic TOPIC] [--count N] [--timeout MS] "
                    "[--wait-go]\n");
    return 2;
}

static int s_parse(int argc, char **argv, opts_t *o)
{
    *o = (opts_t){.channel = "forge",
                  .ns = "forge",
                  .topic = "forge",
                  .count = 5,
                  .timeout_ms = 10000};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--wait-go") == 0) {
            o->wait_go = true;
            continue;
        }
        if (strcmp(a, "--replay-heartbeat") == 0) {
            o->replay_hb = true;
            continue;
        }
        if (!v) {
            return -1;
        }
        i++;
        if (strcmp(a, "--bind") == 0) {
            o->bind = v;
        } else if (strcmp(a, "--capture") == 0) {
            o->capture = v;
        } else if (strcmp(a, "--key-file") == 0) {
            o->key_file = v;
        } else if (strcmp(a, "--channel") == 0) {
            o->channel = v;
        } else if (strcmp(a, "--ns") == 0) {
            o->ns = v;
        } else if (strcmp(a, "--topic") == 0) {
            o->topic = v;
        } else if (strcmp(a, "--oversize") == 0) {
            o->oversize = strtoul(v, NULL, 10);
        } else if (strcmp(a, "--count") == 0) {
            o->count = atoi(v);
        } else if (strcmp(a, "--timeout") == 0) {
            o->timeout_ms = atoi(v);
        } else {
            return -1;
        }
    }
    if (!o->bind || o->timeout_ms <= 0 || o->count < 0 || o->count > 100000 ||
        !*o->topic || (!!o->key_file + !!o->capture + !!o->oversize) > 1 ||
        (o->oversize && o->oversize < 2) || (o->replay_hb && !o->capture)) {
        return -1;
    }
    return 0;
}

//  A stand-in for the genuine envelope when there is no --capture: the
//  format byte, then random bytes as long as a small sealed message.
static int s_stand_in(forge_t *self)
{
    self->genuine_len = 1 + KEYRING_SEAL_OVERHEAD + 64;
    self->genuine = s_random(self->genuine_len);
    if (!self->genuine) {
        return -1;
    }
    self->genuine[0] = ENVELOPE_FORMAT;
    return 0;
}

static int s_run(forge_t *self)
{
    const opts_t *o = self->opts;
    int zero = 0, one = 1;
    self->xpub = zmq_socket(self->ctx, ZMQ_XPUB);
    if (!self->xpub ||
        zmq_setsockopt(self->xpub, ZMQ_XPUB_MANUAL, &one, sizeof one) ||
        zmq_setsockopt(self->xpub, ZMQ_XPUB_NODROP, &one, sizeof one) ||
        zmq_setsockopt(self->xpub, ZMQ_SNDHWM, &zero, sizeof zero) ||
        zmq_bind(self->xpub, o->bind)) {
        fprintf(stderr, "forge: cannot bind %s: %s\n", o->bind,
                zmq_strerror(errno));
        return -1;
    }
    s_say("bound", "%s", o->bind);
    if (s_wait_victim(self)) {
        return -1;
    }
    if (o->capture ? s_capture(self) : s_stand_in(self)) {
        return -1;
    }
    if (o->wait_go && s_wait_go(self)) {
        return -1;
    }
    int rc = o->key_file   ? s_wrong_key(self)
             : o->oversize ? s_oversize(self)
             : o->replay_hb
                 ? s_replay_heartbeat(self)
                 : s_tamper_envelopes(self) | s_tamper_framing(self) |
                       s_tamper_control(self);
    if (rc) {
        return -1;
    }
    s_report();
    return 0;
}

int main(int argc, char **argv)
{
    opts_t opts;
    if (s_parse(argc, argv, &opts)) {
        return s_usage();
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "forge: libsodium did not initialise\n");
        return 1;
    }
    forge_t self = {.opts = &opts, .deadline = s_now() + opts.timeout_ms};
    self.ctx = zmq_ctx_new();
    int rc = self.ctx ? s_run(&self) : -1;
    //  flush what was sent, within what is left of the deadline
    int linger = rc == 0 ? s_left(&self) : 0;
    if (self.xpub) {
        zmq_setsockopt(self.xpub, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(self.xpub);
    }
    if (self.cap) {
        zmq_close(self.cap);
    }
    if (self.ctx) {
        zmq_ctx_term(self.ctx);
    }
    free(self.genuine);
    free(self.heartbeat);
    return rc == 0 ? 0 : 1;
}
