/*  swim_codec.h - the gossip packet codec (msgpack)

    WIRE FORMAT, version 1. One UDP datagram holds one plaintext packet
    (sealed by the daemon with the cluster key), which is exactly one
    msgpack array; nothing may follow it.

      packet   = [version, type, sender, body, updates, ...]
      version  = uint, 1
      type     = uint: 1 ping, 2 ack, 3 ping-req, 4 push-pull request,
                 5 push-pull response, 6 leave
      sender   = bin, 16 bytes: the sender's node id, not all zero
      body     = array, by type:
        ping      [seq, target]          please ack seq; target is the id
                                         we think we ping (all zero: any);
                                         a node with another id ignores it
        ack       [seq]                  answers a ping (or, forwarded by
                                         a ping-req helper, our ping-req);
                                         seq 0, which no ping uses, is a
                                         gossip packet: updates only
        ping-req  [seq, target, addr]    ping target at addr for me and
                                         forward its ack to me as ack(seq)
        pp-req    [part, members]        part of our whole table; part 0
                                         asks for the receiver's table
        pp-resp   [part, members]        part of the answer
        leave     [member]               the sender's own left record
      seq      = uint, 32 bits
      target   = bin, 16 bytes
      addr     = str, 1..64 bytes
      part     = uint, 32 bits: fragment index, 0 first
      members  = [member, ...]
      updates  = [member, ...]: piggybacked news, the sender's own record
                 first when it fits (empty on push-pull)
      member   = [id, name, incarnation, state, endpoint, gossip, pubkey,
                  zone, start_ms, ...]
        id          bin 16, not all zero
        name        str 0..64
        incarnation uint 64
        state       uint: 1 alive, 2 suspect, 3 dead, 4 left
        endpoint    str 0..255
        gossip      str 1..64
        pubkey      bin 32 (all zero when not configured)
        zone        str 0..64
        start_ms    uint 64
      Strings never contain NUL. Unsigned fields are msgpack non-negative
      integers of any width.

    Forward compatibility: every array (packet, body, member) may carry more
    elements than listed; version 1 skips them. That is where presence will
    hang its per-member data. Anything else off the grammar, a wrong type,
    a string too long, a bad length, trailing bytes, is rejected.

    Size bound: an encoded member record is at most SWIM_CODEC_RECORD_MAX
    bytes and at least SWIM_CODEC_RECORD_MIN. Even with the largest record,
    a push-pull part or a leave with one record, and a ping or an ack with
    one update, fit in SWIM_PACKET_MIN. Senders never exceed their
    max_packet; a push-pull table larger than one packet is sent as several
    parts of at most max_packet each, merged independently by the receiver
    (a table of n members takes about n * 110 bytes with typical strings,
    n * SWIM_CODEC_RECORD_MAX at worst).
*/

#ifndef SWIM_CODEC_H_INCLUDED
#define SWIM_CODEC_H_INCLUDED

#include "swim.h"

#define SWIM_CODEC_VERSION    1
#define SWIM_CODEC_RECORD_MIN 61  // smallest encoded member record
#define SWIM_CODEC_RECORD_MAX 527 // largest encoded member record

typedef enum {
    SWIM_MSG_PING = 1,
    SWIM_MSG_ACK = 2,
    SWIM_MSG_PING_REQ = 3,
    SWIM_MSG_PP_REQ = 4,
    SWIM_MSG_PP_RESP = 5,
    SWIM_MSG_LEAVE = 6,
    SWIM_MSG_TYPES = 7 // one past the last type
} swim_msg_type_t;

//  One packet, decoded or to encode. Fields a type does not use are zero.
typedef struct {
    int type;                            // swim_msg_type_t
    uint8_t sender[SWIM_ID_SIZE];        // sender's node id
    uint32_t seq;                        // ping, ack, ping-req
    uint8_t target[SWIM_ID_SIZE];        // ping, ping-req
    char target_addr[SWIM_ADDR_MAX + 1]; // ping-req
    uint32_t part;                       // push-pull fragment index
    swim_member_t *members;              // push-pull table; leave: 1 record
    size_t member_count;
    swim_member_t *updates; // piggybacked updates
    size_t update_count;
} swim_msg_t;

//  Encode msg into buf (cap bytes) and store its size in *len. The members
//  and updates arrays are read, not owned. Returns 0, or -1 with EMSGSIZE
//  when it does not fit, EINVAL when a field is out of range (our bug).
int swim_codec_encode(const swim_msg_t *msg, uint8_t *buf, size_t cap,
                      size_t *len) __attribute__((nonnull));

//  Exact encoded size of msg, in bytes.
size_t swim_codec_size(const swim_msg_t *msg) __attribute__((nonnull));

//  Exact encoded size of one member record, in bytes.
size_t swim_codec_record_size(const swim_member_t *m) __attribute__((nonnull));

//  Decode len bytes into msg (overwritten). On success msg->members and
//  msg->updates are allocated: release them with swim_codec_clear. Returns
//  0, or -1 with EPROTO on any malformed input (msg is then clear) or
//  ENOMEM. Reads nothing outside buf, whatever the bytes.
int swim_codec_decode(const uint8_t *buf, size_t len, swim_msg_t *msg)
    __attribute__((nonnull(3)));

//  Free what swim_codec_decode allocated and zero msg. Safe twice.
void swim_codec_clear(swim_msg_t *msg) __attribute__((nonnull));

//  True if the record is well-formed: id not zero, state ALIVE..LEFT,
//  strings terminated within their bound, gossip address not empty.
bool swim_codec_record_valid(const swim_member_t *m) __attribute__((nonnull));

#endif
