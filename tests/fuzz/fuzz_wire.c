/*  Fuzz target: the frame codec as the server and the client use it.

    The input is a byte stream from a peer: frames are cut with wire_peek
    and decoded with wire_decode, one after the other, until the stream
    needs more bytes or is refused. A frame that decodes is encoded again
    and must decode to the same frame. Nothing may crash, leak or read out
    of bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static wire_decoder_t *s_decoder;
static wire_decoder_t *s_again;

static int s_str_equal(wire_str_t a, wire_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static int s_frame_equal(const wire_frame_t *a, const wire_frame_t *b)
{
    if (a->type != b->type || a->req != b->req || a->version != b->version ||
        a->flags != b->flags || a->seq != b->seq || a->code != b->code ||
        a->count != b->count || a->max_payload != b->max_payload ||
        a->token != b->token || a->readable != b->readable ||
        a->writable != b->writable || a->everywhere != b->everywhere ||
        a->nrows != b->nrows) {
        return 0;
    }
    const wire_str_t *sa[] = {&a->id,      &a->node, &a->name,
                              &a->channel, &a->ns,   &a->topic,
                              &a->payload, &a->text, &a->arg};
    const wire_str_t *sb[] = {&b->id,      &b->node, &b->name,
                              &b->channel, &b->ns,   &b->topic,
                              &b->payload, &b->text, &b->arg};
    for (size_t i = 0; i < sizeof sa / sizeof sa[0]; i++) {
        if (!s_str_equal(*sa[i], *sb[i])) {
            return 0;
        }
    }
    for (size_t i = 0; i < 2 * a->nrows; i++) {
        if (!s_str_equal(a->rows[i], b->rows[i])) {
            return 0;
        }
    }
    return 1;
}

//  Encode what was decoded and decode it again: the same frame.
static void s_check_round_trip(const wire_frame_t *frame)
{
    wire_buf_t buf = {0};
    if (wire_encode(&buf, frame)) {
        __builtin_trap(); // every decoded frame can be encoded
    }
    size_t body;
    if (wire_peek(buf.data, buf.len, SIZE_MAX, &body) != 1 ||
        WIRE_PREFIX + body != buf.len ||
        !wire_msgpack_bounded(buf.data + WIRE_PREFIX, body)) {
        __builtin_trap();
    }
    wire_frame_t again;
    if (wire_decode(s_again, buf.data + WIRE_PREFIX, body, &again) ||
        !s_frame_equal(frame, &again)) {
        __builtin_trap();
    }
    wire_buf_free(&buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!s_decoder) {
        s_decoder = wire_decoder_new();
        s_again = wire_decoder_new();
        if (!s_decoder || !s_again) {
            abort();
        }
    }
    (void)wire_msgpack_bounded(data, size);
    size_t off = 0, body;
    size_t max = WIRE_MAX_FRAME_DEFAULT;
    while (wire_peek(data + off, size - off, max, &body) == 1) {
        const uint8_t *p = data + off + WIRE_PREFIX;
        off += WIRE_PREFIX + body;
        wire_frame_t frame;
        if (wire_decode(s_decoder, p, body, &frame) == 0) {
            if (frame.type <= 0 || frame.type >= WIRE_TYPE_MAX) {
                __builtin_trap();
            }
            s_check_round_trip(&frame);
        } else if (wire_decoder_error(s_decoder)[0] == 0) {
            __builtin_trap(); // a refusal always says why
        }
    }
    return 0;
}
