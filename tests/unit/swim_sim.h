/*  swim_sim.h - a simulated network and clock for swim_t tests

    N nodes (up to SIM_MAX), each a swim_t with address
    "10.0.<i / 250>.<i % 250 + 1>:7946" and node id {i / 256 + 1,
    generation, i % 256, 0...}. Packets sent go into a queue of in-flight
    packets with a delivery time (1..5 ms later); per-link blocks and a
    loss rate drop some, using one seeded PRNG. The clock jumps from one
    event (delivery or the earliest swim_next_deadline, kept in a heap of
    nodes) to the next, so a simulated minute of ten nodes takes
    milliseconds, of a thousand a second or so, and every run is the same.

    A node can be made slow (sim_slow): a CPU-starved process that, each
    time it has run, gets the CPU back only after a random pause of up to
    slow_ms. Packets for it wait until then, and so do its timers.

    Every packet a node sends is checked (unless check_packets is cleared,
    for speed in big runs): it fits max_packet and decodes. Every delivered
    packet must be accepted by swim_recv, and after each swim_tick the
    node's next deadline must lie in the future. A test that calls into a
    node itself (join, leave, set) calls sim_touch after.

    Include after cmocka.h, in one test file.
*/

#ifndef SWIM_SIM_H_INCLUDED
#define SWIM_SIM_H_INCLUDED

#include "swim.h"
#include "swim_codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIM_MAX 2048 // nodes

//  Every helper is static; a test file uses only some of them.
#define SIM_FN __attribute__((unused)) static

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
    unsigned (*seen)[SWIM_LEFT + 1];
    unsigned changes;    // every changed callback
    uint32_t slow_ms;    // CPU-starved: longest pause between runs, or 0
    uint64_t resume_at;  // slow: runs again no earlier than this
    size_t heap_pos;     // place in the node heap
    uint64_t first_seen; // when some node first heard of it (sim_boot_at)
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
    sim_node_t *nodes;
    sim_packet_t *heap; // min-heap by (at, serial)
    size_t heap_size;
    size_t heap_cap;
    uint64_t serial;
    bool *block;       // [from * count + to] dropped
    unsigned loss_pct; // random loss on every link
    uint64_t sent;
    uint64_t sent_bytes; // of the packets sent
    uint64_t lost;
    uint32_t max_part;  // highest push-pull part seen
    bool check_packets; // decode every packet sent (default true)
    int *node_heap;     // node indices, min-heap by deadline
};

SIM_FN uint64_t sim_split(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

SIM_FN void sim_id(int index, uint8_t gen, uint8_t *id)
{
    memset(id, 0, SWIM_ID_SIZE);
    id[0] = (uint8_t)(index / 256 + 1);
    id[1] = gen;
    id[2] = (uint8_t)(index % 256);
}

//  Index of the node a record is about (by id), or -1.
SIM_FN int sim_subject(const uint8_t *id)
{
    int index = (id[0] - 1) * 256 + id[2];
    return id[0] >= 1 && index < SIM_MAX ? index : -1;
}

//  The node heap: every node by its next event (deadline, or resume_at
//  for a slow node with work waiting), earliest on top.
SIM_FN uint64_t sim_node_key(sim_t *sim, int i)
{
    sim_node_t *node = &sim->nodes[i];
    uint64_t key = node->deadline;
    if (key != UINT64_MAX && node->resume_at > key) {
        key = node->resume_at;
    }
    return key;
}

SIM_FN void sim_node_heap_set(sim_t *sim, size_t pos, int i)
{
    sim->node_heap[pos] = i;
    sim->nodes[i].heap_pos = pos;
}

SIM_FN void sim_node_heap_fix(sim_t *sim, int i)
{
    size_t pos = sim->nodes[i].heap_pos;
    uint64_t key = sim_node_key(sim, i);
    while (pos > 0) {
        int parent = sim->node_heap[(pos - 1) / 2];
        if (sim_node_key(sim, parent) <= key) {
            break;
        }
        sim_node_heap_set(sim, pos, parent);
        pos = (pos - 1) / 2;
    }
    size_t n = (size_t)sim->count;
    while (true) {
        size_t child = 2 * pos + 1;
        if (child >= n) {
            break;
        }
        if (child + 1 < n && sim_node_key(sim, sim->node_heap[child + 1]) <
                                 sim_node_key(sim, sim->node_heap[child])) {
            child++;
        }
        if (sim_node_key(sim, sim->node_heap[child]) >= key) {
            break;
        }
        sim_node_heap_set(sim, pos, sim->node_heap[child]);
        pos = child;
    }
    sim_node_heap_set(sim, pos, i);
}

SIM_FN bool sim_packet_before(const sim_packet_t *a, const sim_packet_t *b)
{
    return a->at < b->at || (a->at == b->at && a->serial < b->serial);
}

SIM_FN void sim_heap_push(sim_t *sim, sim_packet_t packet)
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

SIM_FN sim_packet_t sim_heap_pop(sim_t *sim)
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

SIM_FN int sim_find(sim_t *sim, const char *addr)
{
    int a, b;
    if (sscanf(addr, "10.0.%d.%d:7946", &a, &b) != 2) {
        return -1;
    }
    int i = a * 250 + b - 1;
    if (i < 0 || i >= sim->count || strcmp(sim->nodes[i].addr, addr) != 0) {
        return -1;
    }
    return i;
}

SIM_FN void sim_send(void *arg, const char *addr, const uint8_t *buf,
                     size_t len)
{
    sim_node_t *node = (sim_node_t *)arg;
    sim_t *sim = node->sim;
    assert_true(len <= sim->cfg.max_packet);
    if (sim->check_packets) {
        swim_msg_t msg;
        assert_int_equal(swim_codec_decode(buf, len, &msg), 0);
        if ((msg.type == SWIM_MSG_PP_REQ || msg.type == SWIM_MSG_PP_RESP) &&
            msg.part > sim->max_part) {
            sim->max_part = msg.part;
        }
        swim_codec_clear(&msg);
    }
    sim->sent++;
    sim->sent_bytes += len;
    int to = sim_find(sim, addr);
    if (to < 0 || sim->block[node->index * sim->count + to] ||
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

SIM_FN void sim_changed(void *arg, const swim_member_t *m, int old_state)
{
    sim_node_t *node = (sim_node_t *)arg;
    int subject = sim_subject(m->id);
    assert_true(subject >= 0 && subject < node->sim->count);
    if (node->sim->nodes[subject].first_seen == 0) {
        node->sim->nodes[subject].first_seen = node->sim->now;
    }
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

SIM_FN uint64_t sim_random(void *arg)
{
    return sim_split(&((sim_node_t *)arg)->rng);
}

SIM_FN void sim_init(sim_t *sim, int count, const swim_config_t *cfg,
                     uint64_t seed)
{
    memset(sim, 0, sizeof *sim);
    assert_true(count <= SIM_MAX);
    sim->count = count;
    sim->rng = seed;
    sim->check_packets = true;
    sim->nodes = (sim_node_t *)calloc((size_t)count, sizeof(sim_node_t));
    sim->block = (bool *)calloc((size_t)count * (size_t)count, sizeof(bool));
    sim->node_heap = (int *)calloc((size_t)count, sizeof(int));
    assert_non_null(sim->nodes);
    assert_non_null(sim->block);
    assert_non_null(sim->node_heap);
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
        snprintf(node->addr, sizeof node->addr, "10.0.%d.%d:7946", i / 250,
                 i % 250 + 1);
        node->seen = (unsigned(*)[SWIM_LEFT + 1])
            calloc((size_t)count, sizeof(unsigned[SWIM_LEFT + 1]));
        assert_non_null(node->seen);
        node->deadline = UINT64_MAX;
        sim_node_heap_set(sim, (size_t)i, i);
    }
}

//  Call after anything that may move node i's timers.
SIM_FN void sim_touch(sim_t *sim, int i)
{
    sim_node_t *node = &sim->nodes[i];
    node->deadline = node->up ? swim_next_deadline(node->swim) : UINT64_MAX;
    sim_node_heap_fix(sim, i);
}

//  Make node i CPU-starved (slow_ms > 0) or well again (0).
SIM_FN void sim_slow(sim_t *sim, int i, uint32_t slow_ms)
{
    sim->nodes[i].slow_ms = slow_ms;
    sim->nodes[i].resume_at = 0;
    sim_touch(sim, i);
}

//  A slow node has just run: it pauses.
SIM_FN void sim_ran(sim_t *sim, int i)
{
    sim_node_t *node = &sim->nodes[i];
    if (node->slow_ms) {
        node->resume_at = sim->now + 1 + sim_split(&sim->rng) % node->slow_ms;
    }
}

//  Start (or restart) node i with this incarnation and id generation.
SIM_FN void sim_start(sim_t *sim, int i, uint64_t incarnation, uint8_t gen)
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
SIM_FN void sim_stop(sim_t *sim, int i)
{
    swim_destroy(&sim->nodes[i].swim);
    sim->nodes[i].up = false;
    sim_touch(sim, i);
}

SIM_FN void sim_destroy(sim_t *sim)
{
    for (int i = 0; i < sim->count; i++) {
        swim_destroy(&sim->nodes[i].swim);
        free(sim->nodes[i].seen);
    }
    while (sim->heap_size > 0) {
        free(sim_heap_pop(sim).buf);
    }
    free(sim->heap);
    free(sim->nodes);
    free(sim->block);
    free(sim->node_heap);
    sim->heap = NULL;
    sim->nodes = NULL;
    sim->block = NULL;
    sim->node_heap = NULL;
}

//  Block (or unblock) every link between the two groups [a0, a1) and
//  [b0, b1), both ways.
SIM_FN void sim_partition(sim_t *sim, int a0, int a1, int b0, int b1,
                          bool blocked)
{
    for (int i = a0; i < a1; i++) {
        for (int j = b0; j < b1; j++) {
            sim->block[i * sim->count + j] = blocked;
            sim->block[j * sim->count + i] = blocked;
        }
    }
}

SIM_FN uint64_t sim_next_event(sim_t *sim)
{
    uint64_t next = sim->heap_size ? sim->heap[0].at : UINT64_MAX;
    uint64_t node_next = sim_node_key(sim, sim->node_heap[0]);
    return node_next < next ? node_next : next;
}

//  Process the next moment with events, if it is not after until.
SIM_FN bool sim_step(sim_t *sim, uint64_t until)
{
    uint64_t next = sim_next_event(sim);
    if (next > until) {
        sim->now = until;
        return false;
    }
    if (next > sim->now) {
        sim->now = next;
    }
    //  Slow nodes that run at this moment pause after it.
    int ran[256];
    int ran_count = 0;
    while (sim->heap_size > 0 && sim->heap[0].at <= sim->now) {
        sim_packet_t packet = sim_heap_pop(sim);
        sim_node_t *node = &sim->nodes[packet.to];
        if (node->up && node->resume_at > sim->now) {
            //  Starved: the packet waits in the socket buffer.
            packet.at = node->resume_at;
            packet.serial = ++sim->serial;
            sim_heap_push(sim, packet);
            continue;
        }
        if (node->up) {
            int rc = swim_recv(node->swim, sim->nodes[packet.from].addr,
                               packet.buf, packet.len, sim->now);
            assert_int_equal(rc, 0);
            sim_touch(sim, packet.to);
            if (node->slow_ms && ran_count < 256) {
                ran[ran_count++] = packet.to;
            }
        }
        free(packet.buf);
    }
    while (sim_node_key(sim, sim->node_heap[0]) <= sim->now) {
        int i = sim->node_heap[0];
        sim_node_t *node = &sim->nodes[i];
        assert_true(node->up);
        swim_tick(node->swim, sim->now);
        sim_touch(sim, i);
        assert_true(node->deadline > sim->now);
        if (node->slow_ms && ran_count < 256) {
            ran[ran_count++] = i;
        }
    }
    for (int r = 0; r < ran_count; r++) {
        sim_ran(sim, ran[r]);
        sim_touch(sim, ran[r]);
    }
    return true;
}

SIM_FN void sim_run(sim_t *sim, uint64_t ms)
{
    uint64_t until = sim->now + ms;
    while (sim_step(sim, until)) {
    }
}

typedef bool(sim_cond_fn)(sim_t *sim, int arg);

//  Run until cond holds, for at most ms. Returns the time it took, or
//  UINT64_MAX if it never held.
SIM_FN uint64_t sim_run_until(sim_t *sim, uint64_t ms, sim_cond_fn *cond,
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
SIM_FN int sim_state(sim_t *sim, int observer, int subject)
{
    uint8_t id[SWIM_ID_SIZE];
    sim_id(subject, sim->nodes[subject].gen, id);
    const swim_member_t *m = swim_lookup(sim->nodes[observer].swim, id);
    return m ? m->state : SWIM_NONE;
}

//  Every up node sees exactly the up nodes, all alive.
SIM_FN bool sim_converged(sim_t *sim, int unused)
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
SIM_FN bool sim_all_see(sim_t *sim, int arg)
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
SIM_FN bool sim_any_sees(sim_t *sim, int arg)
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
SIM_FN unsigned sim_seen(sim_t *sim, int subject, int state)
{
    unsigned total = 0;
    for (int i = 0; i < sim->count; i++) {
        total += sim->nodes[i].seen[subject][state];
    }
    return total;
}

//  Node i joins node seed now.
SIM_FN void sim_join(sim_t *sim, int i, int seed)
{
    assert_int_equal(
        swim_join(sim->nodes[i].swim, sim->nodes[seed].addr, sim->now), 0);
    sim_touch(sim, i);
}

//  Start nodes 0..count-1; every node but 0 joins node 0.
SIM_FN void sim_boot(sim_t *sim)
{
    for (int i = 0; i < sim->count; i++) {
        sim_start(sim, i, 1, 0);
    }
    for (int i = 1; i < sim->count; i++) {
        sim_join(sim, i, 0);
    }
}

#endif
