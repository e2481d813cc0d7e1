/*  ids: node and instance ids (16 random bytes) as the 32 hex digits that
    logs, metrics, roomcastctl and the library show. One helper, so every
    place prints an id the same way.

    THREAD SAFETY: pure functions.
*/
#ifndef RC_IDS_H
#define RC_IDS_H

#include <sodium.h>
#include <stdint.h>

#define IDS_SIZE     16 // bytes of a node or instance id
#define IDS_HEX_SIZE 33 // hex digits and the NUL

//  Write id as lowercase hex into out. Returns out.
static inline char *ids_hex(const uint8_t id[IDS_SIZE], char out[IDS_HEX_SIZE])
{
    return sodium_bin2hex(out, IDS_HEX_SIZE, id, IDS_SIZE);
}

#endif
