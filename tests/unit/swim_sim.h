/*  swim_sim.h - a simulated network and clock for swim_t tests

    N nodes, each a swim_t with address "10.0.0.<i>:7946" and node id
    {i + 1, generation, 0...}. Packets sent go into a queue of in-flight
    packets with a delivery time (1..5 ms later); per-link blocks and a
    loss rate drop some, using one seeded PRNG. The clock jumps from one
    event (delivery or the earliest swim_next_deadline) to the next, so a
    simulated minute takes milliseconds and every run is the same.

    Every packet a node sends is checked: it fits max_packet and decodes.
    Every delivered packet must be accepted by swim_recv, and after each
    swim_tick the node's next deadline must lie in the future. A test that
    calls into a node itself (join, leave, set) calls sim_touch after.

    Include after cmocka.h, in one test file.
*/

#ifndef SWIM_SIM_H_INCLUDED
#define SWIM_SIM_H_INCLUDED

#include "swim.h"
#include "swim_codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIM_MAX 32 // nodes

//  Set to true to print every membership change as it happens.
static bool sim_verbose = false;

typedef struct sim_s sim_t;

typedef struct {
    sim_t *sim;
    int index;
    swim_t *swim;      // NULL while stopped
    bool up;           // ticks and receives
    uint64_t deadline; // swim_next_deadline, kept by sim_touch
    char addr[32];     // gossip address
    uint8_t gen;       // id generation, bumped by a restart with new id
    uint64_t rng;      // this node's random stream
    //  What this node saw, by subject index: transitions into each state.
    unsigned seen[SIM_MAX][SWIM_LEFT + 1];
    unsigned changes; // every changed callback
} sim_node_t;

typedef struct {
    uint64_t at;     // delivery time
    uint64_t serial; // ties broken in send order
    int from;
    int to;
    size_t len;
    uint8_t *buf;
} sim_packet_t;

struct sim_s {
    uint64_t now;
    uint64_t rng;
    int count;
    swim_config_t cfg;
    sim_node_t nodes[SIM_MAX];
    sim_packet_t *heap; // min-heap by (at, serial)
    size_t heap_size;
    size_t heap_cap;
    uint64_t serial;
    bool block[SIM_MAX][SIM_MAX]; // [from][to] dropped
    unsigned loss_pct;            // random loss on every link
    uint64_t sent;
    uint64_t lost;
    uint32_t max_part; // highest push-pull part seen
};

static uint64_t sim_split(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void sim_id(int index, uint8_t gen, uint8_t *id)
{
    memset(id, 0, SWIM_ID_SIZE);
    id[0] = (uint8_t)(index + 1);
    id[1] = gen;
}

//  Index of the node a record is about (by id), or -1.
static int sim_subject(const uint8_t *id)
{
    return id[0] >= 1 && id[0] <= SIM_MAX ? id[0] - 1 : -1;
}

static bool sim_packet_before(const sim_packet_t *a, const sim_packet_t *b)
{
    return a->at < b->at || (a->at == b->at && a->serial < b->serial);
}

static void sim_heap_push(sim_t *sim, sim_packet_t packet)
{
    if (sim->heap_size == sim->heap_cap) {
        sim->heap_cap = sim->heap_cap ? sim->heap_cap * 2 : 64;
        sim->heap = (sim_packet_t *)realloc(
            sim->heap, sim->heap_cap * sizeof(sim_packet_t));
        assert_non_null(sim->heap);
    }
    size_t i = sim->heap_size++;
    while (i > 0 && sim_packet_before(&packet, &sim->heap[(i - 1) / 2])) {
        sim->heap[i] = sim->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    sim->heap[i] = packet;
}

static sim_packet_t sim_heap_pop(sim_t *sim)
{
    sim_packet_t top = sim->heap[0];
    sim_packet_t last = sim->heap[--sim->heap_size];
    size_t i = 0;
    while (true) {
        size_t child = 2 * i + 1;
        if (child >= sim->heap_size) {
            break;
        }
        if (child + 1 < sim->heap_size &&
            sim_packet_before(&sim->heap[child + 1], &sim->heap[child])) {
            child++;
        }
        if (!sim_packet_before(&sim->heap[child], &last)) {
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

static int sim_find(sim_t *sim, const char *addr)
{
    for (int i = 0; i < sim->count; i++) {
        if (strcmp(sim->nodes[i].addr, addr) == 0) {
            return i;
        }
    }
    return -1;
}

static void sim_send(void *arg, const char *addr, const uint8_t *buf,
                     size_t len)
{
    sim_node_t *node = (sim_node_t *)arg;
    sim_t *sim = node->sim;
    assert_true(len <= sim->cfg.max_packet);
    swim_msg_t msg;
    assert_int_equal(swim_codec_decode(buf, len, &msg), 0);
    if ((msg.type == SWIM_MSG_PP_REQ || msg.type == SWIM_MSG_PP_RESP) &&
        msg.part > sim->max_part) {
        sim->max_part = msg.part;
    }
    swim_codec_clear(&msg);
    sim->sent++;
    int to = sim_find(sim, addr);
    if (to < 0 || sim->block[node->index][to] ||
        (sim->loss_pct && sim_split(&sim->rng) % 100 < sim->loss_pct)) {
        sim->lost++;
        return;
    }
    sim_packet_t packet = {.at = sim->now + 1 + sim_split(&sim->rng) % 5,
                           .serial = ++sim->serial,
                           .from = node->index,
                           .to = to,
                           .len = len,
                           .buf = (uint8_t *)malloc(len)};
    assert_non_null(packet.buf);
    memcpy(packet.buf, buf, len);
    sim_heap_push(sim, packet);
}

static void sim_changed(void *arg, const swim_member_t *m, int old_state)
{
    sim_node_t *node = (sim_node_t *)arg;
    int subject = sim_subject(m->id);
    assert_true(subject >= 0 && subject < SIM_MAX);
    assert_true(m->state >= SWIM_NONE && m->state <= SWIM_LEFT);
    node->seen[subject][m->state]++;
    node->changes++;
    if (sim_verbose) {
        printf("%8lu  node %d sees %d/%d %s -> %s, incarnation %lu\n",
               (unsigned long)node->sim->now, node->index, subject, m->id[1],
               swim_state_name(old_state), swim_state_name(m->state),
               (unsigned long)m->incarnation);
    }
}

static uint64_t sim_random(void *arg)
{
    return sim_split(&((sim_node_t *)arg)->rng);
}

static void sim_init(sim_t *sim, int count, const swim_config_t *cfg,
                     uint64_t seed)
{
    memset(sim, 0, sizeof *sim);
    assert_true(count <= SIM_MAX);
    sim->count = count;
    sim->rng = seed;
    if (cfg) {
        sim->cfg = *cfg;
    } else {
        swim_config_defaults(&sim->cfg);
    }
    for (int i = 0; i < count; i++) {
        sim_node_t *node = &sim->nodes[i];
        node->sim = sim;
        node->index = i;
        node->rng = seed * 1000 + (uint64_t)i;
        snprintf(node->addr, sizeof node->addr, "10.0.0.%d:7946", i + 1);
    }
}

//  Call after anything that may move node i's timers.
static void sim_touch(sim_t *sim, int i)
{
    sim_node_t *node = &sim->nodes[i];
    node->deadline = node->up ? swim_next_deadline(node->swim) : UINT64_MAX;
}

//  Start (or restart) node i with this incarnation and id generation.
static void sim_start(sim_t *sim, int i, uint64_t incarnation, uint8_t gen)
{
    sim_node_t *node = &sim->nodes[i];
    swim_destroy(&node->swim);
    swim_member_t rec;
    memset(&rec, 0, sizeof rec);
    sim_id(i, gen, rec.id);
    snprintf(rec.name, sizeof rec.name, "node-%d", i);
    snprintf(rec.endpoint, sizeof rec.endpoint, "tcp://10.0.0.%d:7440", i + 1);
    snprintf(rec.gossip_addr, sizeof rec.gossip_addr, "%s", node->addr);
    memset(rec.pubkey, i + 1, sizeof rec.pubkey);
    snprintf(rec.zone, sizeof rec.zone, "zone-%c", 'a' + i % 3);
    rec.start_ms = sim->now;
    rec.incarnation = incarnation;
    swim_io_t io = {.arg = node,
                    .send = sim_send,
                    .changed = sim_changed,
                    .random = sim_random};
    node->gen = gen;
    node->swim = swim_new(&sim->cfg, &rec, &io, sim->now);
    assert_non_null(node->swim);
    node->up = true;
    sim_touch(sim, i);
}

//  Stop node i dead: it neither ticks nor receives (a crash).
static void sim_stop(sim_t *sim, int i)
{
    swim_destroy(&sim->nodes[i].swim);
    sim->nodes[i].up = false;
    sim_touch(sim, i);
}

static void sim_destroy(sim_t *sim)
{
    for (int i = 0; i < sim->count; i++) {
        swim_destroy(&sim->nodes[i].swim);
    }
    while (sim->heap_size > 0) {
        free(sim_heap_pop(sim).buf);
    }
    free(sim->heap);
    sim->heap = NULL;
}

//  Block (or unblock) every link between the two groups [a0, a1) and
//  [b0, b1), both ways.
static void sim_partition(sim_t *sim, int a0, int a1, int b0, int b1,
                          bool blocked)
{
    for (int i = a0; i < a1; i++) {
        for (int j = b0; j < b1; j++) {
            sim->block[i][j] = blocked;
            sim->block[j][i] = blocked;
        }
    }
}

static uint64_t sim_next_event(sim_t *sim)
{
    uint64_t next = sim->heap_size ? sim->heap[0].at : UINT64_MAX;
    for (int i = 0; i < sim->count; i++) {
        if (sim->nodes[i].deadline < next) {
            next = sim->nodes[i].deadline;
        }
    }
    return next;
}

//  Process the next moment with events, if it is not after until.
static bool sim_step(sim_t *sim, uint64_t until)
{
    uint64_t next = sim_next_event(sim);
    if (next > until) {
        sim->now = until;
        return false;
    }
    if (next > sim->now) {
        sim->now = next;
    }
    while (sim->heap_size > 0 && sim->heap[0].at <= sim->now) {
        sim_packet_t packet = sim_heap_pop(sim);
        sim_node_t *node = &sim->nodes[packet.to];
        if (node->up) {
            int rc = swim_recv(node->swim, sim->nodes[packet.from].addr,
                               packet.buf, packet.len, sim->now);
            assert_int_equal(rc, 0);
            sim_touch(sim, packet.to);
        }
        free(packet.buf);
    }
    for (int i = 0; i < sim->count; i++) {
        sim_node_t *node = &sim->nodes[i];
        if (node->up && node->deadline <= sim->now) {
            swim_tick(node->swim, sim->now);
            sim_touch(sim, i);
            assert_true(node->deadline > sim->now);
        }
    }
    return true;
}

static void sim_run(sim_t *sim, uint64_t ms)
{
    uint64_t until = sim->now + ms;
    while (sim_step(sim, until)) {
    }
}

typedef bool(sim_cond_fn)(sim_t *sim, int arg);

//  Run until cond holds, for at most ms. Returns the time it took, or
//  UINT64_MAX if it never held.
static uint64_t sim_run_until(sim_t *sim, uint64_t ms, sim_cond_fn *cond,
                              int arg)
{
    uint64_t start = sim->now;
    uint64_t until = sim->now + ms;
    while (!cond(sim, arg)) {
        if (!sim_step(sim, until)) {
            return cond(sim, arg) ? sim->now - start : UINT64_MAX;
        }
    }
    return sim->now - start;
}

//  State of subject as node observer sees it (SWIM_NONE if unknown).
static int sim_state(sim_t *sim, int observer, int subject)
{
    uint8_t id[SWIM_ID_SIZE];
    sim_id(subject, sim->nodes[subject].gen, id);
    const swim_member_t *m = swim_lookup(sim->nodes[observer].swim, id);
    return m ? m->state : SWIM_NONE;
}

//  Every up node sees exactly the up nodes, all alive.
static bool sim_converged(sim_t *sim, int unused)
{
    (void)unused;
    size_t up = 0;
    for (int i = 0; i < sim->count; i++) {
        up += sim->nodes[i].up;
    }
    for (int i = 0; i < sim->count; i++) {
        if (!sim->nodes[i].up) {
            continue;
        }
        if (swim_count(sim->nodes[i].swim, SWIM_ALIVE) != up ||
            swim_count(sim->nodes[i].swim, SWIM_SUSPECT) != 0) {
            return false;
        }
        for (int j = 0; j < sim->count; j++) {
            if (sim->nodes[j].up && sim_state(sim, i, j) != SWIM_ALIVE) {
                return false;
            }
        }
    }
    return true;
}

//  Every other up node sees subject in state (arg = subject * 8 + state).
static bool sim_all_see(sim_t *sim, int arg)
{
    int subject = arg / 8, state = arg % 8;
    for (int i = 0; i < sim->count; i++) {
        if (i != subject && sim->nodes[i].up &&
            sim_state(sim, i, subject) != state) {
            return false;
        }
    }
    return true;
}

//  Some up node sees subject in state (arg = subject * 8 + state).
static bool sim_any_sees(sim_t *sim, int arg)
{
    int subject = arg / 8, state = arg % 8;
    for (int i = 0; i < sim->count; i++) {
        if (i != subject && sim->nodes[i].up &&
            sim_state(sim, i, subject) == state) {
            return true;
        }
    }
    return false;
}

//  How many times any node saw subject enter state.
static unsigned sim_seen(sim_t *sim, int subject, int state)
{
    unsigned total = 0;
    for (int i = 0; i < sim->count; i++) {
        total += sim->nodes[i].seen[subject][state];
    }
    return total;
}

//  Node i joins node seed now.
static void sim_join(sim_t *sim, int i, int seed)
{
    assert_int_equal(
        swim_join(sim->nodes[i].swim, sim->nodes[seed].addr, sim->now), 0);
    sim_touch(sim, i);
}

//  Start nodes 0..count-1; every node but 0 joins node 0.
static void sim_boot(sim_t *sim)
{
    for (int i = 0; i < sim->count; i++) {
        sim_start(sim, i, 1, 0);
    }
    for (int i = 1; i < sim->count; i++) {
        sim_join(sim, i, 0);
    }
}

#endif
