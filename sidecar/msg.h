/*  msg: one room message on its way through the sidecar, as the publish
    path and the receive path both carry it (a data type, not a
    component). Every field is borrowed from the frame or envelope it was
    read from, for the duration of the call it is passed to.
*/
#ifndef RCD_MSG_H
#define RCD_MSG_H

#include "wire.h"

#include <stdint.h>

typedef struct {
    wire_str_t ns;           //
    wire_str_t topic;        //
    uint64_t flags;          // WIRE_F_BINARY, WIRE_F_ECHO (publisher asks)
    const uint8_t *instance; // origin instance id, WIRE_ID_SIZE bytes
    const uint8_t *node;     // origin node id, WIRE_ID_SIZE bytes
    uint64_t seq;            // publisher's sequence on the topic
    wire_str_t payload;      //
} msg_t;

#endif
