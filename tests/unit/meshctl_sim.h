/*  meshctl_sim.h - a simulated ZeroMQ mesh and clock for meshctl_t tests

    N nodes, each a meshctl_t; node i's id is {0x6d, i >> 8, i, gen >> 8,
    gen, 0...}. The network is what meshctl sees of ZeroMQ: conn[a][b]
    says b's SUB is connected to a's XPUB, so a's control messages reach b
    (beats: every connected b; acks: the one addressed) and b's marker
    subscriptions reach a's XPUB (meshctl_on_marker_seen at a). When a
    link ends (b crashed or restarted), a's XPUB sees b's marker withdrawn,
    as libzmq reports it. Links come up when both ends are up, in the
    chosen topology (full mesh, or a star around node 0), unless refused.

    Control messages take min_delay..max_delay ms (one random delay per
    message, so with a wide range they overtake each other), may be lost
    (loss_pct, per recipient) or dropped on one connected link (drop[a][b]:
    the link stays up, nothing a sends arrives at b). Subscriptions take a
    fixed delay and never overtake each other, as on a TCP link. The clock
    jumps from one event (a delivery or the earliest deadline) to the next.

    Every send is counted per node: messages (one per send; a beat to all
    is one), wire bytes (body length times the links it goes out on), and
    received messages and bytes.

    Include after cmocka.h, in one test file.
*/
#ifndef MESHCTL_SIM_H_INCLUDED
#define MESHCTL_SIM_H_INCLUDED

#include "meshctl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct msim_s msim_t;

typedef struct {
    msim_t *sim;
    int index;
    meshctl_t *ctl; // NULL while stopped
    bool up;
    bool gossip_alive; // told alive to the others (msim_member_all)
    uint16_t gen;      // id generation: a restart makes a new id
    uint8_t id[MESHCTL_ID_SIZE];
    uint64_t marker; // the marker its SUB holds, 0: none
    bool no_ack;     // its acks never leave (a peer that never acks)
    bool touched;    // got input this step: flush
    uint64_t deadline;
    meshctl_health_t health; // last reported
    unsigned health_changes;
    unsigned ups, downs, gones; // peer events seen
    uint64_t ok_upto;           // highest confirmed(upto, true)
    uint64_t fail_upto;         // highest confirmed(upto, false)
    uint64_t sends, wire_bytes; // sent: messages, bytes times links
    uint64_t recvs, recv_bytes; // received
} msim_node_t;

enum { MSIM_CTL, MSIM_SUB, MSIM_UNSUB };

typedef struct {
    uint64_t at;
    uint64_t serial; // ties broken in send order
    int type;
    int from;
    int to; // -1: every connected link of from
    int kind;
    uint16_t from_gen;
    uint64_t marker;
    uint8_t *buf;
    size_t len;
} msim_ev_t;

struct msim_s {
    uint64_t now;
    uint64_t rng;
    int count;
    bool star; // links only between node 0 and the others
    meshctl_config_t cfg;
    msim_node_t *nodes;
    uint8_t *conn;   // [a * count + b]: b's SUB connected to a's XPUB
    uint8_t *refuse; // [a * count + b]: that link can never come up
    uint8_t *drop;   // [a * count + b]: a's messages to b are lost
    msim_ev_t *heap;
    size_t heap_size;
    size_t heap_cap;
    uint64_t serial;
    unsigned loss_pct;
    uint32_t min_delay;
    uint32_t max_delay;
    uint32_t sub_delay;
    uint64_t lost;
};

static uint64_t msim_rand(msim_t *sim)
{
    uint64_t z = (sim->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void msim_id(int index, uint16_t gen, uint8_t *id)
{
    memset(id, 0, MESHCTL_ID_SIZE);
    id[0] = 0x6d;
    id[1] = (uint8_t)(index >> 8);
    id[2] = (uint8_t)index;
    id[3] = (uint8_t)(gen >> 8);
    id[4] = (uint8_t)gen;
}

//  The node an id belongs to, if it is that node's current id; else -1.
static int msim_who(msim_t *sim, const uint8_t *id)
{
    int i = id[1] << 8 | id[2];
    if (id[0] != 0x6d || i >= sim->count ||
        memcmp(sim->nodes[i].id, id, MESHCTL_ID_SIZE) != 0) {
        return -1;
    }
    return i;
}

static uint8_t *msim_at(msim_t *sim, uint8_t *m, int a, int b)
{
    return &m[(size_t)a * (size_t)sim->count + (size_t)b];
}

static bool msim_before(const msim_ev_t *a, const msim_ev_t *b)
{
    return a->at < b->at || (a->at == b->at && a->serial < b->serial);
}

static void msim_push(msim_t *sim, msim_ev_t ev)
{
    if (sim->heap_size == sim->heap_cap) {
        sim->heap_cap = sim->heap_cap ? sim->heap_cap * 2 : 256;
        sim->heap =
            (msim_ev_t *)realloc(sim->heap, sim->heap_cap * sizeof(msim_ev_t));
        assert_non_null(sim->heap);
    }
    ev.serial = ++sim->serial;
    size_t i = sim->heap_size++;
    while (i > 0 && msim_before(&ev, &sim->heap[(i - 1) / 2])) {
        sim->heap[i] = sim->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    sim->heap[i] = ev;
}

static msim_ev_t msim_pop(msim_t *sim)
{
    msim_ev_t top = sim->heap[0];
    msim_ev_t last = sim->heap[--sim->heap_size];
    size_t i = 0;
    while (true) {
        size_t child = 2 * i + 1;
        if (child >= sim->heap_size) {
            break;
        }
        if (child + 1 < sim->heap_size &&
            msim_before(&sim->heap[child + 1], &sim->heap[child])) {
            child++;
        }
        if (!msim_before(&sim->heap[child], &last)) {
            break;
        }
        sim->heap[i] = sim->heap[child];
        i = child;
    }
    if (sim->heap_size > 0) {
        sim->heap[i] = last;
    }
    return top;
}

//  A subscription change of node b reaches the XPUB of every a it is
//  connected to.
static void msim_sub(msim_t *sim, int b, int type, uint64_t marker)
{
    for (int a = 0; a < sim->count; a++) {
        if (*msim_at(sim, sim->conn, a, b)) {
            msim_push(sim, (msim_ev_t){.at = sim->now + sim->sub_delay,
                                       .type = type,
                                       .from = b,
                                       .to = a,
                                       .from_gen = sim->nodes[b].gen,
                                       .marker = marker});
        }
    }
}

// --- io callbacks ------------------------------------------------------------

static void msim_send(void *arg, int kind, const uint8_t *to,
                      const uint8_t *body, size_t len)
{
    msim_node_t *node = (msim_node_t *)arg;
    msim_t *sim = node->sim;
    assert_true(len > 0 && len <= MESHCTL_BODY_MAX);
    int dest = -1;
    size_t links = 0;
    if (to) {
        assert_int_equal(kind, MESHCTL_ACK);
        dest = msim_who(sim, to);
        links = dest >= 0 && *msim_at(sim, sim->conn, node->index, dest);
    } else {
        assert_int_equal(kind, MESHCTL_BEAT);
        for (int b = 0; b < sim->count; b++) {
            links += *msim_at(sim, sim->conn, node->index, b);
        }
    }
    node->sends++;
    node->wire_bytes += len * links;
    if (!links || (kind == MESHCTL_ACK && node->no_ack)) {
        return;
    }
    uint32_t span = sim->max_delay - sim->min_delay + 1;
    msim_ev_t ev = {.at = sim->now + sim->min_delay + msim_rand(sim) % span,
                    .type = MSIM_CTL,
                    .from = node->index,
                    .to = dest,
                    .kind = kind,
                    .from_gen = node->gen,
                    .buf = (uint8_t *)malloc(len),
                    .len = len};
    assert_non_null(ev.buf);
    memcpy(ev.buf, body, len);
    msim_push(sim, ev);
}

static void msim_marker(void *arg, uint64_t n, bool on)
{
    msim_node_t *node = (msim_node_t *)arg;
    if (on) {
        assert_true(n > node->marker);
        node->marker = n;
    }
    msim_sub(node->sim, node->index, on ? MSIM_SUB : MSIM_UNSUB, n);
}

static void msim_peer(void *arg, const uint8_t *id, const char *name,
                      const char *endpoint, int event)
{
    msim_node_t *node = (msim_node_t *)arg;
    (void)id;
    (void)name;
    (void)endpoint;
    node->ups += event == MESHCTL_UP;
    node->downs += event == MESHCTL_DOWN;
    node->gones += event == MESHCTL_GONE;
}

static void msim_health(void *arg, const meshctl_health_t *h)
{
    msim_node_t *node = (msim_node_t *)arg;
    node->health = *h;
    node->health_changes++;
}

static void msim_confirmed(void *arg, uint64_t upto, bool ok)
{
    msim_node_t *node = (msim_node_t *)arg;
    uint64_t *last = ok ? &node->ok_upto : &node->fail_upto;
    assert_true(upto > node->ok_upto && upto > node->fail_upto);
    *last = upto;
}

// --- the network -------------------------------------------------------------

static void msim_touch(msim_t *sim, int i)
{
    msim_node_t *node = &sim->nodes[i];
    node->deadline = node->up ? meshctl_next_deadline(node->ctl) : UINT64_MAX;
}

static bool msim_may_link(msim_t *sim, int a, int b)
{
    return a != b && sim->nodes[a].up && sim->nodes[b].up &&
           (!sim->star || a == 0 || b == 0) &&
           !*msim_at(sim, sim->refuse, a, b);
}

//  Bring up the link from a's XPUB to b's SUB if it may be up and is not:
//  a's XPUB then gets b's marker.
static void msim_link(msim_t *sim, int a, int b)
{
    uint8_t *c = msim_at(sim, sim->conn, a, b);
    if (!*c && msim_may_link(sim, a, b)) {
        *c = 1;
        if (sim->nodes[b].marker) {
            msim_push(sim, (msim_ev_t){.at = sim->now + sim->sub_delay,
                                       .type = MSIM_SUB,
                                       .from = b,
                                       .to = a,
                                       .from_gen = sim->nodes[b].gen,
                                       .marker = sim->nodes[b].marker});
        }
    }
}

static void msim_link_all(msim_t *sim)
{
    for (int a = 0; a < sim->count; a++) {
        for (int b = 0; b < sim->count; b++) {
            msim_link(sim, a, b);
        }
    }
}

//  End the link from a's XPUB to b's SUB: a sees b's marker withdrawn.
static void msim_unlink(msim_t *sim, int a, int b)
{
    uint8_t *c = msim_at(sim, sim->conn, a, b);
    if (*c) {
        *c = 0;
        if (sim->nodes[b].marker && sim->nodes[a].up) {
            msim_push(sim, (msim_ev_t){.at = sim->now + sim->sub_delay,
                                       .type = MSIM_UNSUB,
                                       .from = b,
                                       .to = a,
                                       .from_gen = sim->nodes[b].gen,
                                       .marker = sim->nodes[b].marker});
        }
    }
}

static void msim_init(msim_t *sim, int count, bool star,
                      const meshctl_config_t *cfg, uint64_t seed)
{
    memset(sim, 0, sizeof *sim);
    sim->count = count;
    sim->star = star;
    sim->rng = seed;
    sim->min_delay = 1;
    sim->max_delay = 5;
    sim->sub_delay = 3;
    if (cfg) {
        sim->cfg = *cfg;
    } else {
        meshctl_config_defaults(&sim->cfg);
        sim->cfg.expect_peers = true;
    }
    size_t cells = (size_t)count * (size_t)count;
    sim->nodes = (msim_node_t *)calloc((size_t)count, sizeof(msim_node_t));
    sim->conn = (uint8_t *)calloc(cells, 1);
    sim->refuse = (uint8_t *)calloc(cells, 1);
    sim->drop = (uint8_t *)calloc(cells, 1);
    assert_true(sim->nodes && sim->conn && sim->refuse && sim->drop);
    for (int i = 0; i < count; i++) {
        sim->nodes[i].sim = sim;
        sim->nodes[i].index = i;
        sim->nodes[i].deadline = UINT64_MAX;
    }
}

//  Start (or restart) node i with id generation gen, then link.
static void msim_start(msim_t *sim, int i, uint16_t gen)
{
    msim_node_t *node = &sim->nodes[i];
    assert_false(node->up);
    node->gen = gen;
    msim_id(i, gen, node->id);
    node->marker = 0;
    memset(&node->health, 0, sizeof node->health);
    node->ok_upto = node->fail_upto = 0;
    char name[32], endpoint[64];
    snprintf(name, sizeof name, "node-%d", i);
    snprintf(endpoint, sizeof endpoint, "tcp://10.%d.%d.1:7440", i >> 8,
             i & 0xff);
    meshctl_io_t io = {.arg = node,
                       .send = msim_send,
                       .marker = msim_marker,
                       .peer = msim_peer,
                       .health = msim_health,
                       .confirmed = msim_confirmed};
    node->up = true;
    node->ctl = meshctl_new(&sim->cfg, node->id, name, endpoint, &io, sim->now);
    assert_non_null(node->ctl);
    node->touched = true;
    msim_touch(sim, i);
    for (int a = 0; a < sim->count; a++) {
        msim_link(sim, a, i);
        msim_link(sim, i, a);
    }
}

//  Stop node i dead (kill -9): its links end.
static void msim_stop(msim_t *sim, int i)
{
    for (int a = 0; a < sim->count; a++) {
        msim_unlink(sim, a, i);
        *msim_at(sim, sim->conn, i, a) = 0;
    }
    meshctl_destroy(&sim->nodes[i].ctl);
    sim->nodes[i].up = false;
    sim->nodes[i].marker = 0;
    msim_touch(sim, i);
}

static void msim_destroy(msim_t *sim)
{
    for (int i = 0; i < sim->count; i++) {
        meshctl_destroy(&sim->nodes[i].ctl);
    }
    while (sim->heap_size > 0) {
        free(msim_pop(sim).buf);
    }
    free(sim->heap);
    free(sim->nodes);
    free(sim->conn);
    free(sim->refuse);
    free(sim->drop);
    memset(sim, 0, sizeof *sim);
}

static void msim_deliver_ctl(msim_t *sim, const msim_ev_t *ev, int b)
{
    msim_node_t *node = &sim->nodes[b];
    if (!node->up || !*msim_at(sim, sim->conn, ev->from, b) ||
        *msim_at(sim, sim->drop, ev->from, b) ||
        (sim->loss_pct && msim_rand(sim) % 100 < sim->loss_pct)) {
        sim->lost++;
        return;
    }
    node->recvs++;
    node->recv_bytes += ev->len;
    int rc =
        meshctl_on_control(node->ctl, sim->now, ev->kind, ev->buf, ev->len);
    assert_true(rc == 0 || errno == EALREADY);
    node->touched = true;
}

static void msim_deliver(msim_t *sim, msim_ev_t *ev)
{
    if (ev->type == MSIM_CTL) {
        if (sim->nodes[ev->from].gen != ev->from_gen) {
            return; // its sender crashed meanwhile: the links are gone
        }
        if (ev->to >= 0) {
            msim_deliver_ctl(sim, ev, ev->to);
        } else {
            for (int b = 0; b < sim->count; b++) {
                msim_deliver_ctl(sim, ev, b);
            }
        }
        return;
    }
    msim_node_t *node = &sim->nodes[ev->to];
    if (!node->up) {
        return;
    }
    uint8_t id[MESHCTL_ID_SIZE];
    msim_id(ev->from, ev->from_gen, id);
    if (ev->type == MSIM_SUB) {
        if (sim->nodes[ev->from].gen != ev->from_gen ||
            !*msim_at(sim, sim->conn, ev->to, ev->from)) {
            return;
        }
        meshctl_on_marker_seen(node->ctl, sim->now, id, ev->marker);
    } else {
        meshctl_on_marker_gone(node->ctl, sim->now, id, ev->marker);
    }
    node->touched = true;
}

static uint64_t msim_next_event(msim_t *sim)
{
    uint64_t next = sim->heap_size ? sim->heap[0].at : UINT64_MAX;
    for (int i = 0; i < sim->count; i++) {
        if (sim->nodes[i].deadline < next) {
            next = sim->nodes[i].deadline;
        }
    }
    return next;
}

//  Process the next moment with events, if it is not after until; then
//  every node that got input ends its loop turn (meshctl_flush).
static bool msim_step(msim_t *sim, uint64_t until)
{
    uint64_t next = msim_next_event(sim);
    if (next > until) {
        sim->now = until;
        return false;
    }
    if (next > sim->now) {
        sim->now = next;
    }
    while (sim->heap_size > 0 && sim->heap[0].at <= sim->now) {
        msim_ev_t ev = msim_pop(sim);
        msim_deliver(sim, &ev);
        free(ev.buf);
    }
    for (int i = 0; i < sim->count; i++) {
        msim_node_t *node = &sim->nodes[i];
        if (node->up && node->deadline <= sim->now) {
            meshctl_tick(node->ctl, sim->now);
            node->touched = false;
            msim_touch(sim, i);
            assert_true(node->deadline > sim->now);
        }
        if (node->up && node->touched) {
            meshctl_flush(node->ctl, sim->now);
            node->touched = false;
        }
    }
    return true;
}

static void msim_run(msim_t *sim, uint64_t ms)
{
    uint64_t until = sim->now + ms;
    while (msim_step(sim, until)) {
    }
}

typedef bool(msim_cond_fn)(msim_t *sim, int arg);

//  Run until cond holds, for at most ms. Returns the time it took, or
//  UINT64_MAX if it never held.
static uint64_t msim_run_until(msim_t *sim, uint64_t ms, msim_cond_fn *cond,
                               int arg)
{
    uint64_t start = sim->now, until = sim->now + ms;
    while (!cond(sim, arg)) {
        if (!msim_step(sim, until)) {
            return cond(sim, arg) ? sim->now - start : UINT64_MAX;
        }
    }
    return sim->now - start;
}

//  Tell every up node but subject (and subject's id as it is now) that
//  SWIM says state; in a star, only the nodes it links with.
static void msim_member_all(msim_t *sim, int subject, int state)
{
    char name[32];
    snprintf(name, sizeof name, "node-%d", subject);
    for (int i = 0; i < sim->count; i++) {
        msim_node_t *node = &sim->nodes[i];
        if (i != subject && node->up &&
            (!sim->star || i == 0 || subject == 0)) {
            meshctl_member(node->ctl, sim->now, sim->nodes[subject].id, state,
                           name, "");
            node->touched = true;
        }
    }
}

//  node a's counts.
static unsigned msim_live(msim_t *sim, int a)
{
    unsigned live, down;
    meshctl_counts(sim->nodes[a].ctl, &live, &down);
    return live;
}

static unsigned msim_down(msim_t *sim, int a)
{
    unsigned live, down;
    meshctl_counts(sim->nodes[a].ctl, &live, &down);
    return down;
}

//  Every up node hears every node it is linked to both ways, and every
//  one is readable and writable.
static bool msim_converged(msim_t *sim, int unused)
{
    (void)unused;
    for (int a = 0; a < sim->count; a++) {
        if (!sim->nodes[a].up) {
            continue;
        }
        unsigned want = 0;
        for (int b = 0; b < (sim->star && a ? 1 : sim->count); b++) {
            want += msim_may_link(sim, a, b) && msim_may_link(sim, b, a);
        }
        meshctl_health_t h;
        meshctl_health(sim->nodes[a].ctl, &h);
        if (msim_live(sim, a) != want || !h.readable || !h.writable) {
            return false;
        }
    }
    return true;
}

#endif
