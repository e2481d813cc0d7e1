/*  curve: CurveZMQ on the sidecar's TCP links, with czmq's zcert and zauth.

    Each sidecar (and proxy) has a key pair: by default (--curve=auto with
    gossip) one made at start with zcert_new, held in memory only and
    announced in its sealed gossip record, so holding the cluster key is
    what admits a member; or a long-term one in a czmq certificate
    (`roomcastctl keygen --curve FILE` writes FILE, the public certificate,
    and FILE_secret, which --curve-cert takes; FILE_secret must not be open
    to others). Its bound sockets are CURVE servers whose ZAP handler is
    czmq's zauth, reading a private directory of admitted public
    certificates: those of the current members, as authenticated gossip
    announces them (curve_admit / curve_forget), plus the certificates in an
    optional allowlist directory (--curve-allow: proxies, static setups).

    The sockets fail closed: with CURVE, libzmq admits any client when no
    ZAP handler answers unless ZMQ_ZAP_DOMAIN is set and
    ZMQ_ZAP_ENFORCE_DOMAIN is on; curve_server sets both.

    zauth reads the directory through zcertstore, which notices a change
    only by the directory's newest mtime (seconds), file count and total
    size: a key admitted and another forgotten in the same second can go
    unseen. So every change is followed by zauth re-reading the directory
    (once per loop turn, curve_monitor_turn).

    libzmq never retries a connection whose handshake the server refused
    (a ZAP refusal is a protocol error: the session ends). Members learn
    of each other by gossip in no fixed order, so our SUB may reach a
    member before gossip has told it our key: the SUB's monitor redials
    a refused endpoint (io redial) after 100 ms, doubling to 1 s, and a
    refusal we make is logged only when the key has not become a member's
    within 3 s (a join race is not an intruder).

    THREAD SAFETY: one thread; zauth runs as a czmq actor.
*/
#ifndef RCD_CURVE_H
#define RCD_CURVE_H

#include "loop.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CURVE_KEY_SIZE 32
#define CURVE_Z85_SIZE 41 // 40 characters and the NUL
#define CURVE_DOMAIN   "roomcast"

typedef struct curve_t curve_t;

//  Load the secret certificate at cert_path (NULL or "": make a key pair
//  now, kept in memory only), start zauth on a fresh directory under
//  runtime_dir, copy allow_dir's certificates into it (allow_dir may be
//  NULL or ""). Returns NULL with err filled.
curve_t *curve_new(const char *cert_path, const char *allow_dir,
                   const char *runtime_dir, char *err, size_t errlen);
//  Stop zauth and remove the directory.
void curve_destroy(curve_t **self_p);

//  Whether our key pair was made at start (no certificate file).
bool curve_ephemeral(const curve_t *self);

//  Our public key (32 bytes), and as Z85.
const uint8_t *curve_public(const curve_t *self);
const char *curve_public_z85(const curve_t *self);

//  Make sock a CURVE server that only admits what zauth admits (ZAP domain
//  set and enforced: fails closed). Returns 0 or -1 with errno.
int curve_server(curve_t *self, void *sock);
//  Make sock a CURVE client of the server whose public key is server_key,
//  for the connections made after this call. Returns 0 or -1 with errno.
int curve_client(curve_t *self, void *sock,
                 const uint8_t server_key[CURVE_KEY_SIZE]);

//  Admit a member's public key (name is informative); forget it. Return
//  0 or -1 with errno.
int curve_admit(curve_t *self, const uint8_t key[CURVE_KEY_SIZE],
                const char *name);
int curve_forget(curve_t *self, const uint8_t key[CURVE_KEY_SIZE]);
//  zauth re-reads the admitted keys if they changed since it last did
//  (curve_monitor_turn calls it on every loop turn). Until then a change
//  may be unseen.
void curve_sync(curve_t *self);

//  Refusals zauth reported since the last call: fn gets the client's key
//  (Z85) and address, once per key over the curve_t's life (a peer that
//  keeps retrying is reported once), 3 s after the refusal and only if
//  the key has not been admitted meanwhile (a member whose handshake came
//  before its gossip record is not reported). Returns how many refusals
//  were seen (reported or not). Never blocks.
typedef void(curve_refusal_fn)(void *arg, const char *key_z85,
                               const char *address);
size_t curve_refusals(curve_t *self, curve_refusal_fn *fn, void *arg);

//  Refused handshakes on a CURVE socket (sock, made in czmq's context
//  zctx): libzmq's monitor events (authentication or protocol failed;
//  without redial, also a handshake the client hung up on, as a plaintext
//  client does) are counted into *refused as they come (the monitor's fd
//  is watched in loop), and curve_monitor_turn logs the keys zauth
//  refused (curve_refused, once per key). With redial set (a socket that
//  connects), an endpoint whose server refused the handshake is given to
//  redial after a backoff (100 ms doubling to 1 s, reset by a handshake
//  that succeeds): the callee reconnects it if it is still a link, and
//  returns false when it is not (the endpoint is then forgotten).
//  Returns NULL with err filled.
typedef struct curve_monitor_t curve_monitor_t;
typedef bool(curve_redial_fn)(void *arg, const char *endpoint);
curve_monitor_t *curve_monitor_new(curve_t *curve, void *zctx, void *sock,
                                   loop_t *loop, uint64_t *refused,
                                   curve_redial_fn *redial, void *arg,
                                   char *err, size_t errlen);
//  Log what zauth refused since the last call. Call it on every loop turn:
//  zauth's word on a refusal may come after the monitor's event.
void curve_monitor_turn(curve_monitor_t *self);
//  Stop monitoring (before sock is closed); safe on NULL and twice.
void curve_monitor_destroy(curve_monitor_t **self_p);

//  "tcp://host:port@Z85KEY" -> endpoint and key. Returns 1 when spec has a
//  key, 0 when it has none (endpoint copied whole), -1 on a bad key.
int curve_split(const char *spec, char *endpoint, size_t size,
                uint8_t key[CURVE_KEY_SIZE]);

//  Write a new key pair: path (public) and path_secret (mode 0600), never
//  overwriting. Returns 0, or -1 with err filled.
int curve_generate(const char *path, char *err, size_t errlen);

#endif
