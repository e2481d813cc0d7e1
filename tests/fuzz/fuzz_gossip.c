/*  Fuzz target: gossip packets, as the daemon hands them to swim_t once
    they opened under the cluster key (so from a member, or garbage).

    The input is one plaintext packet. It goes to the decoder; a packet
    that decodes is encoded again and must decode again to the same size.
    Then it goes, twice with timers run in between, to a small swim_t that
    already knows three members, one of them suspect, and has a probe in
    flight: every handler and the update rules see it. Every packet swim_t
    sends in answer must fit max_packet and decode. Nothing may crash, leak
    or read out of bounds. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "swim.h"
#include "swim_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_PACKET 1400

static void s_check(int ok)
{
    if (!ok) {
        __builtin_trap();
    }
}

static void s_send(void *arg, const char *addr, const uint8_t *buf, size_t len)
{
    (void)arg;
    s_check(addr[0] != 0 && len <= MAX_PACKET);
    swim_msg_t msg;
    s_check(swim_codec_decode(buf, len, &msg) == 0);
    swim_codec_clear(&msg);
}

static void s_changed(void *arg, const swim_member_t *m, int old_state)
{
    (void)arg;
    s_check(swim_codec_record_valid(m) || m->state == SWIM_NONE);
    s_check(old_state >= SWIM_NONE && old_state <= SWIM_LEFT);
}

static uint64_t s_random(void *arg)
{
    uint64_t *state = (uint64_t *)arg;
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    return *state >> 11;
}

static swim_member_t s_member(uint8_t n, int state, uint64_t incarnation)
{
    swim_member_t m;
    memset(&m, 0, sizeof m);
    m.id[0] = n;
    m.state = state;
    m.incarnation = incarnation;
    m.name[0] = (char)('a' + n);
    m.gossip_addr[0] = (char)('0' + n);
    m.endpoint[0] = 'e';
    return m;
}

//  Give the node members by a push-pull response, as if it had joined.
static void s_preload(swim_t *swim)
{
    swim_member_t table[3] = {s_member(2, SWIM_ALIVE, 5),
                              s_member(3, SWIM_SUSPECT, 1),
                              s_member(4, SWIM_ALIVE, 0)};
    swim_msg_t msg;
    memset(&msg, 0, sizeof msg);
    msg.type = SWIM_MSG_PP_RESP;
    msg.sender[0] = 2;
    msg.members = table;
    msg.member_count = 3;
    uint8_t buf[MAX_PACKET];
    size_t len;
    s_check(swim_codec_encode(&msg, buf, sizeof buf, &len) == 0);
    s_check(swim_recv(swim, "2", buf, len, 0) == 0);
}

static void s_fuzz_codec(const uint8_t *data, size_t size)
{
    swim_msg_t msg;
    if (swim_codec_decode(data, size, &msg) != 0) {
        return;
    }
    //  Re-encoding drops unknown extra elements and uses the shortest
    //  integers, so it is never longer than the input.
    uint8_t *again = (uint8_t *)malloc(size);
    s_check(again != NULL);
    size_t len = 0;
    s_check(swim_codec_encode(&msg, again, size, &len) == 0);
    s_check(len == swim_codec_size(&msg));
    swim_msg_t back;
    s_check(swim_codec_decode(again, len, &back) == 0);
    s_check(back.type == msg.type && back.member_count == msg.member_count &&
            back.update_count == msg.update_count);
    swim_codec_clear(&back);
    swim_codec_clear(&msg);
    free(again);
}

static void s_fuzz_swim(const uint8_t *data, size_t size)
{
    uint64_t rng = size;
    swim_config_t cfg;
    swim_config_defaults(&cfg);
    cfg.max_packet = MAX_PACKET;
    swim_member_t me = s_member(1, SWIM_ALIVE, 3);
    swim_io_t io = {
        .arg = &rng, .send = s_send, .changed = s_changed, .random = s_random};
    swim_t *swim = swim_new(&cfg, &me, &io, 0);
    s_check(swim != NULL);
    s_preload(swim);
    s_check(swim_join(swim, "seed:1", 0) == 0);
    //  Run to the first probe, so that an ack can match it.
    uint64_t now = swim_next_deadline(swim);
    swim_tick(swim, now);
    int rc = swim_recv(swim, "9", data, size, now + 1);
    s_check(rc == 0 || rc == -1);
    for (int i = 0; i < 3; i++) {
        now = swim_next_deadline(swim);
        s_check(now != UINT64_MAX);
        swim_tick(swim, now);
        s_check(swim_next_deadline(swim) > now);
    }
    (void)swim_recv(swim, "9", data, size, now + 1);
    s_check(swim_leave(swim, now + 2) == 0);
    (void)swim_recv(swim, "9", data, size, now + 3);
    size_t count = 0;
    for (const swim_member_t *m = swim_first(swim); m; m = swim_next(swim)) {
        s_check(swim_codec_record_valid(m));
        count++;
    }
    s_check(count == swim_size(swim));
    swim_destroy(&swim);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_fuzz_codec(data, size);
    s_fuzz_swim(data, size);
    return 0;
}
