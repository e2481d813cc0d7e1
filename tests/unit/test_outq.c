/*  Unit tests: outq (shared frames, per-connection write queue, budget). */

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "outq.h"

#define KIB 1024

static uint64_t s_seed;

static uint64_t s_rand(void)
{
    uint64_t z = (s_seed += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

//  An outbuf of len bytes; byte i is (seed + i) so order mistakes show.
static outbuf_t *s_outbuf(size_t len, uint8_t seed)
{
    wire_buf_t buf = {0};
    assert_int_equal(wire_buf_reserve(&buf, len), 0);
    for (size_t i = 0; i < len; i++) {
        buf.data[i] = (uint8_t)(seed + i * 7);
    }
    buf.len = len;
    outbuf_t *out = outbuf_adopt(&buf);
    assert_non_null(out);
    return out;
}

//  Everything pushed, in order: what the reader must receive.
typedef struct {
    uint8_t *data;
    size_t len;
    size_t cap;
} bytes_t;

static void s_bytes_add(bytes_t *b, const uint8_t *data, size_t len)
{
    if (b->len + len > b->cap) {
        b->cap = 2 * (b->len + len);
        b->data = realloc(b->data, b->cap);
        assert_non_null(b->data);
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

//  Push buf on q and remember its bytes in sent.
static void s_push(outq_t *q, outbuf_t *buf, bytes_t *sent)
{
    assert_int_equal(outq_push(q, buf), 0);
    if (sent) {
        s_bytes_add(sent, buf->data, buf->len);
    }
}

//  The queue's own accounting: bytes is the sum of what is queued minus
//  what of the head is already written.
static void s_check_bytes(const outq_t *q)
{
    size_t sum = 0;
    for (size_t i = 0; i < q->count; i++) {
        sum += q->ring[(q->head + i) % q->cap]->len;
    }
    assert_true(q->count == 0 ? q->offset == 0 : q->offset < sum);
    assert_int_equal(q->bytes, sum - q->offset);
}

//  A connected pair: fds[0] writes (small send buffer, so it fills up
//  fast), fds[1] reads without blocking.
static void s_socketpair(int fds[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    int small = 4 * KIB;
    assert_int_equal(
        setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    assert_int_equal(fcntl(fds[1], F_SETFL, O_NONBLOCK), 0);
}

//  Reads what is there, at most max bytes, into got. Returns the count.
static size_t s_drain(int fd, bytes_t *got, size_t max)
{
    uint8_t chunk[16 * KIB];
    size_t total = 0;
    while (total < max) {
        size_t want = max - total < sizeof chunk ? max - total : sizeof chunk;
        ssize_t n = read(fd, chunk, want);
        if (n < 0) {
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
            break;
        }
        assert_true(n > 0);
        s_bytes_add(got, chunk, (size_t)n);
        total += (size_t)n;
    }
    return total;
}

//  Write and read alternately (the reader taking at most read_max each
//  time) until the queue is empty; every step keeps bytes exact.
static void s_pump(outq_t *q, int fds[2], bytes_t *got, size_t read_max)
{
    int idle = 0;
    while (q->count > 0) {
        size_t before = q->bytes;
        ssize_t w = outq_write(q, fds[0]);
        assert_true(w >= 0);
        assert_int_equal(q->bytes, before - (size_t)w);
        s_check_bytes(q);
        size_t r = s_drain(fds[1], got, read_max);
        idle = w == 0 && r == 0 ? idle + 1 : 0;
        assert_true(idle < 3); // no progress at all: stuck
    }
    s_drain(fds[1], got, SIZE_MAX);
}

static void s_assert_bytes_equal(const bytes_t *want, const bytes_t *got)
{
    assert_int_equal(got->len, want->len);
    if (want->len) {
        assert_memory_equal(got->data, want->data, want->len);
    }
}

//  A case's end: both ends of its socket pair, its queue, what it wrote
//  and what it read.
static void s_end(int fds[2], outq_t *q, bytes_t *sent, bytes_t *got)
{
    close(fds[0]);
    close(fds[1]);
    outq_clear(q);
    free(sent->data);
    free(got->data);
}

static int s_setup(void **state)
{
    (void)state;
    s_seed = 0x0a7a0001;
    return 0;
}

// --- outbuf ------------------------------------------------------------------

static void test_outbuf_adopt_takes_the_bytes(void **state)
{
    (void)state;
    wire_buf_t buf = {0};
    assert_int_equal(wire_buf_reserve(&buf, 5), 0);
    memcpy(buf.data, "hello", 5);
    buf.len = 5;
    uint8_t *data = buf.data;
    outbuf_t *out = outbuf_adopt(&buf);
    assert_non_null(out);
    assert_int_equal(out->refs, 1);
    assert_int_equal(out->len, 5);
    assert_ptr_equal(out->data, data); // taken, not copied
    assert_null(buf.data);
    assert_int_equal(buf.len, 0);
    assert_int_equal(buf.cap, 0);
    outbuf_unref(&out);
    assert_null(out);
    outbuf_unref(&out); // NULL is fine
    outbuf_unref(NULL);
}

static void test_outbuf_refcount(void **state)
{
    (void)state;
    outbuf_t *a = s_outbuf(100, 1);
    outbuf_t *b = outbuf_ref(a);
    assert_ptr_equal(a, b);
    assert_int_equal(a->refs, 2);
    outbuf_t *c = outbuf_ref(a);
    assert_int_equal(a->refs, 3);
    outbuf_unref(&b);
    assert_null(b);
    assert_int_equal(a->refs, 2);
    outbuf_unref(&c);
    assert_int_equal(a->refs, 1);
    assert_int_equal(a->data[0], 1); // still alive (ASan would say)
    outbuf_unref(&a);
    assert_null(a);
}

static void test_outbuf_encode_matches_wire_encode(void **state)
{
    (void)state;
    wire_frame_t ping = {.type = WIRE_PING, .token = 99};
    outbuf_t *out = outbuf_encode(&ping);
    assert_non_null(out);
    wire_buf_t buf = {0};
    assert_int_equal(wire_encode(&buf, &ping), 0);
    assert_int_equal(out->len, buf.len);
    assert_memory_equal(out->data, buf.data, buf.len);
    wire_buf_free(&buf);
    outbuf_unref(&out);

    wire_frame_t bad = {.type = 0};
    errno = 0;
    assert_null(outbuf_encode(&bad));
    assert_int_equal(errno, EINVAL);
}

// --- queue and write ---------------------------------------------------------

static void test_push_takes_a_reference(void **state)
{
    (void)state;
    outq_t q = {0};
    outbuf_t *buf = s_outbuf(10, 0);
    assert_int_equal(outq_push(&q, buf), 0);
    assert_int_equal(outq_push(&q, buf), 0);
    assert_int_equal(buf->refs, 3);
    assert_int_equal(q.count, 2);
    assert_int_equal(q.bytes, 20);
    outbuf_unref(&buf); // the queue still holds it
    outq_clear(&q);
    assert_int_equal(q.count, 0);
    assert_int_equal(q.bytes, 0);
    assert_null(q.ring);
    outq_clear(&q); // twice is fine
}

static void test_write_an_empty_queue(void **state)
{
    (void)state;
    int fds[2];
    s_socketpair(fds);
    outq_t q = {0};
    assert_int_equal(outq_write(&q, fds[0]), 0);
    close(fds[0]);
    close(fds[1]);
}

//  The reader does not read: writes stop at EAGAIN, the queue keeps the
//  rest with exact bytes; then the reader drains and the writer goes on.
static void test_write_until_full_then_drain(void **state)
{
    (void)state;
    int fds[2];
    s_socketpair(fds);
    outq_t q = {0};
    bytes_t sent = {0}, got = {0};
    for (int i = 0; i < 64; i++) {
        outbuf_t *buf = s_outbuf(8 * KIB + (size_t)i, (uint8_t)i);
        s_push(&q, buf, &sent);
        outbuf_unref(&buf);
    }
    size_t total = q.bytes;
    assert_int_equal(total, sent.len);

    ssize_t w = outq_write(&q, fds[0]);
    assert_true(w > 0);
    assert_true((size_t)w < total); // the socket is full
    assert_int_equal(q.bytes, total - (size_t)w);
    s_check_bytes(&q);
    //  still full: nothing more, nothing lost
    size_t before = q.bytes, count = q.count, offset = q.offset;
    assert_int_equal(outq_write(&q, fds[0]), 0);
    assert_int_equal(q.bytes, before);
    assert_int_equal(q.count, count);
    assert_int_equal(q.offset, offset);

    s_pump(&q, fds, &got, SIZE_MAX);
    assert_int_equal(q.bytes, 0);
    assert_int_equal(q.count, 0);
    s_assert_bytes_equal(&sent, &got);
    s_end(fds, &q, &sent, &got);
}

//  More small frames than one sendmsg takes (1024 iovecs), and room for
//  them all: one outq_write writes every one of them, in order (a batch
//  written whole is followed by the next; only a short write stops).
static void test_one_write_goes_past_the_iovec_batch(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    int big = 1024 * KIB;
    assert_int_equal(
        setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big), 0);
    assert_int_equal(fcntl(fds[1], F_SETFL, O_NONBLOCK), 0);
    outq_t q = {0};
    bytes_t sent = {0}, got = {0};
    for (int i = 0; i < 3000; i++) {
        outbuf_t *buf = s_outbuf(20 + (size_t)i % 7, (uint8_t)i);
        s_push(&q, buf, &sent);
        outbuf_unref(&buf);
    }
    assert_int_equal(outq_write(&q, fds[0]), (ssize_t)sent.len);
    assert_int_equal(q.count, 0);
    assert_int_equal(q.bytes, 0);
    s_drain(fds[1], &got, SIZE_MAX);
    s_assert_bytes_equal(&sent, &got);
    s_end(fds, &q, &sent, &got);
}

//  A reader taking a few hundred bytes at a time: writes end in the middle
//  of frames, over and over; the stream stays whole.
static void test_partial_writes_across_frame_boundaries(void **state)
{
    (void)state;
    int fds[2];
    s_socketpair(fds);
    outq_t q = {0};
    bytes_t sent = {0}, got = {0};
    size_t mid_frame = 0;
    for (int i = 0; i < 300; i++) {
        outbuf_t *buf = s_outbuf(1 + s_rand() % 3000, (uint8_t)i);
        s_push(&q, buf, &sent);
        outbuf_unref(&buf);
    }
    while (q.count > 0) {
        size_t before = q.bytes;
        ssize_t w = outq_write(&q, fds[0]);
        assert_true(w >= 0);
        assert_int_equal(q.bytes, before - (size_t)w);
        s_check_bytes(&q);
        mid_frame += q.offset > 0;
        s_drain(fds[1], &got, 1 + s_rand() % 700);
    }
    s_drain(fds[1], &got, SIZE_MAX);
    assert_true(mid_frame > 10);
    s_assert_bytes_equal(&sent, &got);
    s_end(fds, &q, &sent, &got);
}

//  Pushes while a write is half done, the ring wrapping and growing, more
//  frames than one writev takes, the same outbuf on two queues.
static void test_random_pushes_writes_and_reads(void **state)
{
    (void)state;
    int fds[2], fds2[2];
    s_socketpair(fds);
    s_socketpair(fds2);
    outq_t q = {0}, q2 = {0};
    bytes_t sent = {0}, got = {0}, sent2 = {0}, got2 = {0};
    for (int step = 0; step < 3000; step++) {
        unsigned op = (unsigned)(s_rand() % 10);
        if (op < 5) {
            size_t len = s_rand() % 4 ? 1 + s_rand() % 200 : s_rand() % 9000;
            outbuf_t *buf = s_outbuf(len ? len : 1, (uint8_t)step);
            int n = 1 + (int)(s_rand() % 3);
            for (int k = 0; k < n; k++) {
                s_push(&q, buf, &sent);
            }
            if (s_rand() % 2) {
                s_push(&q2, buf, &sent2); // shared with another reader
            }
            outbuf_unref(&buf);
        } else if (op < 8) {
            size_t before = q.bytes;
            ssize_t w = outq_write(&q, fds[0]);
            assert_true(w >= 0);
            assert_int_equal(q.bytes, before - (size_t)w);
        } else {
            s_drain(fds[1], &got, 1 + s_rand() % 20000);
        }
        s_check_bytes(&q);
    }
    s_pump(&q, fds, &got, 5000);
    s_pump(&q2, fds2, &got2, SIZE_MAX);
    s_assert_bytes_equal(&sent, &got);
    s_assert_bytes_equal(&sent2, &got2);
    assert_int_equal(q.count, 0);
    assert_int_equal(q.bytes, 0);
    close(fds[0]);
    close(fds[1]);
    close(fds2[0]);
    close(fds2[1]);
    outq_clear(&q);
    outq_clear(&q2);
    free(sent.data);
    free(got.data);
    free(sent2.data);
    free(got2.data);
}

static void test_burst_then_idle_frees_the_ring(void **state)
{
    (void)state;
    int fds[2];
    s_socketpair(fds);
    outq_t q = {0};
    bytes_t sent = {0}, got = {0};
    outbuf_t *buf = s_outbuf(50, 3);
    for (int i = 0; i < 200; i++) {
        s_push(&q, buf, &sent);
    }
    outbuf_unref(&buf);
    assert_true(q.cap >= 200);
    s_pump(&q, fds, &got, SIZE_MAX);
    assert_null(q.ring);
    assert_int_equal(q.cap, 0);
    s_assert_bytes_equal(&sent, &got);
    //  and it works again afterwards
    buf = s_outbuf(10, 4);
    s_push(&q, buf, &sent);
    outbuf_unref(&buf);
    s_pump(&q, fds, &got, SIZE_MAX);
    s_assert_bytes_equal(&sent, &got);
    s_end(fds, &q, &sent, &got);
}

static void test_write_to_a_closed_peer_fails(void **state)
{
    (void)state;
    int fds[2];
    s_socketpair(fds);
    close(fds[1]);
    outq_t q = {0};
    outbuf_t *buf = s_outbuf(100, 0);
    s_push(&q, buf, NULL);
    outbuf_unref(&buf);
    errno = 0;
    assert_int_equal(outq_write(&q, fds[0]), -1); // no SIGPIPE either
    assert_int_equal(errno, EPIPE);
    assert_int_equal(q.bytes, 100);
    close(fds[0]);
    outq_clear(&q);
}

//  A zero-length outbuf (outbuf_adopt of an empty buffer) is nothing to
//  write: outq_write must not spin on it. Run in a child with an alarm, so
//  a hang fails the test instead of the suite.
static void test_write_skips_empty_outbufs(void **state)
{
    (void)state;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(1);
        int fds[2];
        s_socketpair(fds);
        outq_t q = {0};
        wire_buf_t empty = {0};
        outbuf_t *none = outbuf_adopt(&empty);
        outbuf_t *some = s_outbuf(10, 0);
        //  the empty one is last: nothing of the write is left to pop it
        if (!none || outq_push(&q, some) || outq_push(&q, none)) {
            _exit(3);
        }
        ssize_t w = outq_write(&q, fds[0]);
        _exit(w == 10 && q.count == 0 && q.bytes == 0 ? 0 : 4);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status)) {
        fail_msg("outq_write did not return (signal %d)", WTERMSIG(status));
    }
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

// --- trim and clear ----------------------------------------------------------

static void test_trim_keeps_only_a_half_written_head(void **state)
{
    (void)state;
    int fds[2];
    s_socketpair(fds);
    outq_t q = {0};
    bytes_t got = {0};
    outbuf_t *big = s_outbuf(256 * KIB, 9);
    outbuf_t *small = s_outbuf(100, 1);
    assert_int_equal(outq_push(&q, big), 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(outq_push(&q, small), 0);
    }
    ssize_t w = outq_write(&q, fds[0]);
    assert_true(w > 0 && (size_t)w < big->len); // half written
    assert_int_equal(q.offset, (size_t)w);

    outq_trim(&q);
    assert_int_equal(q.count, 1);
    assert_int_equal(q.bytes, big->len - (size_t)w);
    assert_int_equal(small->refs, 1); // the queue let go of the rest
    s_check_bytes(&q);
    //  the reader gets exactly the big frame, whole
    s_pump(&q, fds, &got, SIZE_MAX);
    assert_int_equal(got.len, big->len);
    assert_memory_equal(got.data, big->data, big->len);

    //  nothing written yet: trim leaves nothing
    for (int i = 0; i < 3; i++) {
        assert_int_equal(outq_push(&q, small), 0);
    }
    outq_trim(&q);
    assert_int_equal(q.count, 0);
    assert_int_equal(q.bytes, 0);
    assert_int_equal(small->refs, 1);
    outq_trim(&q); // and on an empty queue: nothing
    assert_int_equal(q.count, 0);

    close(fds[0]);
    close(fds[1]);
    outq_clear(&q);
    outbuf_unref(&big);
    outbuf_unref(&small);
    free(got.data);
}

//  outq_shed's predicate for the test: drops the outbufs whose first byte
//  is odd (as the server drops MSG frames and keeps answers).
static bool s_odd(void *arg, const outbuf_t *buf)
{
    (*(size_t *)arg)++;
    return buf->data[0] & 1;
}

static void test_shed_drops_what_the_predicate_says_in_order(void **state)
{
    (void)state;
    int fds[2];
    s_socketpair(fds);
    outq_t q = {0};
    bytes_t got = {0}, want = {0};
    outbuf_t *big = s_outbuf(256 * KIB, 9); // odd, but half written: kept
    outbuf_t *keep[3], *drop[3];
    for (int i = 0; i < 3; i++) {
        keep[i] = s_outbuf(100 + (size_t)i, (uint8_t)(2 * i + 2));
        drop[i] = s_outbuf(300, (uint8_t)(2 * i + 1));
    }
    assert_int_equal(outq_push(&q, big), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(outq_push(&q, drop[i]), 0);
        assert_int_equal(outq_push(&q, keep[i]), 0);
    }
    ssize_t w = outq_write(&q, fds[0]);
    assert_true(w > 0 && (size_t)w < big->len);
    s_bytes_add(&want, big->data, big->len);
    for (int i = 0; i < 3; i++) {
        s_bytes_add(&want, keep[i]->data, keep[i]->len);
    }
    size_t asked = 0;
    size_t dropped = outq_shed(&q, s_odd, &asked);
    assert_int_equal(asked, 6); // the half-written head is never asked
    assert_int_equal(dropped, 900);
    assert_int_equal(q.count, 4);
    s_check_bytes(&q);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(drop[i]->refs, 1); // let go of
        assert_int_equal(keep[i]->refs, 2);
    }
    //  the reader gets the big frame whole, then the kept ones in order
    s_pump(&q, fds, &got, SIZE_MAX);
    s_assert_bytes_equal(&want, &got);
    //  an empty queue sheds nothing
    assert_int_equal(outq_shed(&q, s_odd, &asked), 0);
    close(fds[0]);
    close(fds[1]);
    outq_clear(&q);
    outbuf_unref(&big);
    for (int i = 0; i < 3; i++) {
        outbuf_unref(&keep[i]);
        outbuf_unref(&drop[i]);
    }
    free(got.data);
    free(want.data);
}

static void test_trim_after_the_head_was_written_whole(void **state)
{
    (void)state;
    int fds[2];
    s_socketpair(fds);
    outq_t q = {0};
    bytes_t got = {0};
    //  a small head that goes out whole, then a big one cut in the middle
    outbuf_t *small = s_outbuf(100, 1);
    outbuf_t *big = s_outbuf(256 * KIB, 9);
    assert_int_equal(outq_push(&q, small), 0);
    assert_int_equal(outq_push(&q, big), 0);
    assert_int_equal(outq_push(&q, small), 0);
    ssize_t w = outq_write(&q, fds[0]);
    assert_true(w > 100 && (size_t)w < 100 + big->len);
    assert_int_equal(q.count, 2);
    outq_trim(&q);
    assert_int_equal(q.count, 1);
    assert_ptr_equal(q.ring[q.head], big);
    assert_int_equal(q.bytes, 100 + big->len - (size_t)w);
    s_pump(&q, fds, &got, SIZE_MAX);
    assert_int_equal(got.len, 100 + big->len);
    assert_memory_equal(got.data + 100, big->data, big->len);
    close(fds[0]);
    close(fds[1]);
    outq_clear(&q);
    outbuf_unref(&big);
    outbuf_unref(&small);
    free(got.data);
}

static void test_clear_drops_everything(void **state)
{
    (void)state;
    int fds[2];
    s_socketpair(fds);
    outq_t q = {0};
    outbuf_t *big = s_outbuf(256 * KIB, 9);
    assert_int_equal(outq_push(&q, big), 0);
    assert_int_equal(outq_push(&q, big), 0);
    assert_true(outq_write(&q, fds[0]) > 0);
    assert_true(q.offset > 0);
    outq_clear(&q);
    assert_int_equal(q.count, 0);
    assert_int_equal(q.bytes, 0);
    assert_int_equal(q.offset, 0);
    assert_null(q.ring);
    assert_int_equal(big->refs, 1);
    outbuf_unref(&big);
    close(fds[0]);
    close(fds[1]);
}

// --- the budget policy -------------------------------------------------------

#define BUDGET 1000
#define GRACE  5000

//  A queue holding n bytes, unwritten.
static void s_fill(outq_t *q, size_t n)
{
    outq_clear(q);
    if (n) {
        outbuf_t *buf = s_outbuf(n, 0);
        assert_int_equal(outq_push(q, buf), 0);
        outbuf_unref(&buf);
    }
    assert_int_equal(q->bytes, n);
}

static void test_admit_within_budget_queues(void **state)
{
    (void)state;
    outq_t q = {0};
    uint64_t slow = 0;
    assert_int_equal(outq_admit(&q, 100, BUDGET, &slow, 10000, GRACE),
                     OUTQ_QUEUE);
    assert_int_equal(slow, 0);
    s_fill(&q, 900);
    assert_int_equal(outq_admit(&q, 100, BUDGET, &slow, 10000, GRACE),
                     OUTQ_QUEUE); // exactly at the budget
    assert_int_equal(slow, 0);
    s_fill(&q, BUDGET);
    assert_int_equal(outq_admit(&q, 0, BUDGET, &slow, 10000, GRACE),
                     OUTQ_QUEUE);
    outq_clear(&q);
}

static void test_admit_over_budget_drops_then_closes(void **state)
{
    (void)state;
    outq_t q = {0};
    uint64_t slow = 0, t0 = 100000;
    s_fill(&q, 900);
    //  the first frame over: dropped, and the slow period starts
    assert_int_equal(outq_admit(&q, 101, BUDGET, &slow, t0, GRACE), OUTQ_DROP);
    assert_int_equal(slow, t0);
    //  still over, within the grace: dropped, the start is kept
    assert_int_equal(outq_admit(&q, 101, BUDGET, &slow, t0 + 1, GRACE),
                     OUTQ_DROP);
    assert_int_equal(outq_admit(&q, 500, BUDGET, &slow, t0 + GRACE - 1, GRACE),
                     OUTQ_DROP);
    assert_int_equal(slow, t0);
    //  a small frame that fits is still queued while slow
    assert_int_equal(outq_admit(&q, 100, BUDGET, &slow, t0 + GRACE - 1, GRACE),
                     OUTQ_QUEUE);
    assert_int_equal(slow, t0);
    //  at and after the grace: closed
    assert_int_equal(outq_admit(&q, 101, BUDGET, &slow, t0 + GRACE, GRACE),
                     OUTQ_CLOSE);
    assert_int_equal(outq_admit(&q, 101, BUDGET, &slow, t0 + 10 * GRACE, GRACE),
                     OUTQ_CLOSE);
    //  the server's timer asks with nothing to add and no budget
    assert_int_equal(outq_admit(&q, 0, 0, &slow, t0 + GRACE, GRACE),
                     OUTQ_CLOSE);
    assert_int_equal(outq_admit(&q, 0, 0, &slow, t0 + GRACE - 1, GRACE),
                     OUTQ_DROP);
    outq_clear(&q);
}

static void test_admit_at_time_zero_still_marks_slow(void **state)
{
    (void)state;
    outq_t q = {0};
    uint64_t slow = 0;
    s_fill(&q, BUDGET);
    assert_int_equal(outq_admit(&q, 1, BUDGET, &slow, 0, GRACE), OUTQ_DROP);
    assert_true(slow != 0);
    assert_int_equal(outq_admit(&q, 1, BUDGET, &slow, 1, GRACE), OUTQ_DROP);
    assert_int_equal(outq_admit(&q, 1, BUDGET, &slow, GRACE + 1, GRACE),
                     OUTQ_CLOSE);
    outq_clear(&q);
}

static void test_caught_up_below_half_the_budget(void **state)
{
    (void)state;
    outq_t q = {0};
    uint64_t slow = 0, t0 = 100000;
    s_fill(&q, BUDGET);
    assert_int_equal(outq_admit(&q, 1, BUDGET, &slow, t0, GRACE), OUTQ_DROP);
    //  written down, but not below half: still slow
    s_fill(&q, BUDGET - 1);
    outq_caught_up(&q, BUDGET, &slow);
    assert_int_equal(slow, t0);
    s_fill(&q, BUDGET / 2);
    outq_caught_up(&q, BUDGET, &slow);
    assert_int_equal(slow, t0);
    //  below half: no longer slow
    s_fill(&q, BUDGET / 2 - 1);
    outq_caught_up(&q, BUDGET, &slow);
    assert_int_equal(slow, 0);
    //  a new overflow later starts a new grace period
    s_fill(&q, BUDGET);
    assert_int_equal(outq_admit(&q, 1, BUDGET, &slow, t0 + GRACE + 10, GRACE),
                     OUTQ_DROP);
    assert_int_equal(slow, t0 + GRACE + 10);
    //  caught up on a client that is not slow: nothing changes
    uint64_t fine = 0;
    s_fill(&q, 0);
    outq_caught_up(&q, BUDGET, &fine);
    assert_int_equal(fine, 0);
    outq_clear(&q);
}

int main(void)
{
    //  a test that breaks the pipe must fail, not kill the runner
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outbuf_adopt_takes_the_bytes),
        cmocka_unit_test(test_outbuf_refcount),
        cmocka_unit_test(test_outbuf_encode_matches_wire_encode),
        cmocka_unit_test(test_push_takes_a_reference),
        cmocka_unit_test(test_write_an_empty_queue),
        cmocka_unit_test(test_write_until_full_then_drain),
        cmocka_unit_test(test_one_write_goes_past_the_iovec_batch),
        cmocka_unit_test(test_partial_writes_across_frame_boundaries),
        cmocka_unit_test(test_random_pushes_writes_and_reads),
        cmocka_unit_test(test_burst_then_idle_frees_the_ring),
        cmocka_unit_test(test_write_to_a_closed_peer_fails),
        cmocka_unit_test(test_write_skips_empty_outbufs),
        cmocka_unit_test(test_trim_keeps_only_a_half_written_head),
        cmocka_unit_test(test_trim_after_the_head_was_written_whole),
        cmocka_unit_test(test_shed_drops_what_the_predicate_says_in_order),
        cmocka_unit_test(test_clear_drops_everything),
        cmocka_unit_test(test_admit_within_budget_queues),
        cmocka_unit_test(test_admit_over_budget_drops_then_closes),
        cmocka_unit_test(test_admit_at_time_zero_still_marks_slow),
        cmocka_unit_test(test_caught_up_below_half_the_budget),
    };
    return cmocka_run_group_tests_name("outq", tests, s_setup, NULL);
}
