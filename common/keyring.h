/*  keyring - the cluster keys: seal/open mesh payloads, derive routing keys.

    A cluster key is 32 random bytes shared by every sidecar of a cluster. A
    keyring holds one or two of them, in this order:

      index 0  the CURRENT key. Everything is sealed with it, and routing key
               0 (the one a publisher stamps on frame 1) is derived from it.
      index 1  the EXTRA key (optional). Accepted when opening, and routing
               key 1 is derived from it so a receiver can subscribe to both.

    keyring_open tries the current key first, then the extra key.

    Rotation from key OLD to key NEW, one rolling restart per step:

      step 0   every node runs [OLD]
      step 1   every node runs [OLD, NEW]   seals with OLD, accepts NEW too
      step 2   every node runs [NEW, OLD]   seals with NEW, accepts OLD too
      step 3   every node runs [NEW]

    During each rolling restart two adjacent steps coexist, and in each pair
    every node accepts the key the other seals with, so no message is lost.

    The raw cluster key is never used directly: keyring_add derives two
    subkeys with crypto_kdf (BLAKE2b, context "roomcast"): id 1 seals
    (XChaCha20-Poly1305 IETF), id 2 keys the routing hash (BLAKE2b), id 3
    gives a public fingerprint.

    XChaCha20-Poly1305 is HChaCha20 (key, first 16 nonce bytes) giving a
    one-time subkey, then ChaCha20-Poly1305 IETF under it with a 12-byte
    nonce of 4 zero bytes and the last 8 nonce bytes. Our nonces are a
    fixed 16-byte prefix per ring and a counter, so that subkey is the same
    for every seal of a ring: keyring_add computes it once and keyring_seal
    runs only the IETF step (libsodium's own functions, byte for byte what
    crypto_aead_xchacha20poly1305_ietf_encrypt gives). A receiver does the
    same per sender with a keyring_cache_t. The raw key is wiped as soon as the
   subkeys exist. Subkeys live in sodium_malloc memory (guard pages, mlock'ed
   where the system allows) and are wiped by keyring_destroy.

    Key file format (what keyring_generate_file and `roomcastctl keygen`
    write): 64 hex characters (lowercase written, either case read),
    optionally followed by "\n" or "\r\n". A file of exactly 32 raw bytes is
    also accepted. The file must be a regular file that others cannot touch
    and its group can at most read (mode & 037 == 0): 0600, 0400, 0640 or
    0440 (a Kubernetes Secret mounted for a non-root user with fsGroup).

    Nothing in this module prints, logs or returns key bytes; error messages
    never quote the file's contents.

    THREAD SAFETY: add/load/destroy must not run concurrently with anything
    else on the same keyring. Once the keys are in, seal, open, routing_keys
    and fingerprint may run from several threads: they only read the keys
    (seal advances its nonce counter atomically).
*/

#ifndef RC_KEYRING_H_INCLUDED
#define RC_KEYRING_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#define KEYRING_KEY_SIZE        32 // a cluster key
#define KEYRING_MAX_KEYS        2  // current + extra
#define KEYRING_NONCE_SIZE      24 // XChaCha20 nonce, first bytes of a seal
#define KEYRING_TAG_SIZE        16 // Poly1305 tag, last bytes of a seal
#define KEYRING_SEAL_OVERHEAD   (KEYRING_NONCE_SIZE + KEYRING_TAG_SIZE)
#define KEYRING_RKEY_SIZE       16 // routing key (ZeroMQ frame 1)
#define KEYRING_FINGERPRINT_LEN 16 // hex characters, without the NUL

#if defined(__GNUC__)
#define KEYRING_WUR __attribute__((warn_unused_result))
#else
#define KEYRING_WUR
#endif

typedef struct _keyring_t keyring_t;

//  Create an empty keyring. Returns NULL on failure (ENOMEM, or libsodium
//  could not initialise).
keyring_t *keyring_new(void);

//  Wipe the subkeys and free the keyring. Nulls *self_p; safe to call twice.
void keyring_destroy(keyring_t **self_p);

//  Add a cluster key: the first key added becomes the current key (index 0),
//  the second the extra key (index 1). Adding a key that is already in the
//  ring succeeds and changes nothing. The caller keeps (and should wipe) its
//  copy of key. Returns 0, or -1 with errno ENOSPC (two keys already).
int keyring_add(keyring_t *self,
                const uint8_t key[KEYRING_KEY_SIZE]) KEYRING_WUR;

//  Read a key file (format above) and keyring_add its key. On failure
//  returns -1 with errno set (ENOENT, EACCES: group/other mode bits, EINVAL:
//  not a regular file, bad size or bad hex, ENOSPC, ...) and, when err is
//  not NULL, a one-line message for the operator in err (errlen bytes, NUL
//  terminated), e.g. "key file /k is open to others (mode 0644): only its
//  owner may write it, only its owner and group read it; run: chmod 600
//  /k".
int keyring_load_file(keyring_t *self, const char *path, char *err,
                      size_t errlen) KEYRING_WUR;

//  Create a new key file at path holding a fresh random key: O_EXCL (never
//  overwrites; errno EEXIST), mode 0600, 64 lowercase hex characters and a
//  newline, fsync'ed. On failure nothing is left at path and err (if not
//  NULL) says why. Returns 0 or -1 with errno.
int keyring_generate_file(const char *path, char *err,
                          size_t errlen) KEYRING_WUR;

//  Number of keys in the ring: 0, 1 or 2.
size_t keyring_size(const keyring_t *self);

//  Exchange the keys (and nonce state) of two rings, so that every holder
//  of self sees other's keys from now on (SIGHUP's key rotation).
void keyring_swap(keyring_t *self, keyring_t *other);

//  Seal plain under the current key with ad as associated data (ad may be
//  NULL when ad_len is 0). Writes nonce(24) || ciphertext || tag(16) to out,
//  plain_len + KEYRING_SEAL_OVERHEAD bytes, and sets *out_len. Nonces never
//  repeat: 16 random bytes drawn by keyring_new, then a 64-bit little-endian
//  count of this ring's seals (so no system call per seal, and nothing to
//  keep across restarts: a restarted process draws a new prefix; a forked
//  child must not seal with its parent's ring). plain may be exactly out +
//  KEYRING_NONCE_SIZE (sealing in place); no other overlap is allowed.
//  Returns 0, or -1 with errno ENOKEY (empty ring) or EMSGSIZE (out_cap too
//  small).
int keyring_seal(const keyring_t *self, const uint8_t *ad, size_t ad_len,
                 const uint8_t *plain, size_t plain_len, uint8_t *out,
                 size_t out_cap, size_t *out_len) KEYRING_WUR;

//  Open what keyring_seal produced, trying the current key then the extra
//  key. Writes sealed_len - KEYRING_SEAL_OVERHEAD bytes to out (which must
//  not overlap sealed) and sets *out_len; if key_index is not NULL it gets
//  the index of the key that opened it (0 current, 1 extra). Returns 0, or
//  -1 with errno EBADMSG (too short, no key opens it: wrong key, wrong ad,
//  tampered) or EMSGSIZE (out_cap too small). On failure out holds no
//  plaintext.
int keyring_open(const keyring_t *self, const uint8_t *ad, size_t ad_len,
                 const uint8_t *sealed, size_t sealed_len, uint8_t *out,
                 size_t out_cap, size_t *out_len,
                 size_t *key_index) KEYRING_WUR;

//  Subkeys of senders' nonce prefixes, so that opening many seals of the
//  same sender costs no HChaCha20 each (a sender's prefix lasts as long as
//  its process). A fixed number of slots (direct-mapped; a miss costs what
//  keyring_open costs), in sodium_malloc memory, wiped when destroyed.
//  Entries belong to the ring (and keys) they were made under: a ring whose
//  keys change (keyring_add, keyring_swap) never hits older entries.
//  THREAD SAFETY: a cache belongs to one thread.
typedef struct _keyring_cache_t keyring_cache_t;

//  Returns NULL with errno ENOMEM (or ENOSYS: libsodium).
keyring_cache_t *keyring_cache_new(void);

//  Wipe and free. Nulls *self_p; safe to call twice.
void keyring_cache_destroy(keyring_cache_t **self_p);

//  keyring_open, with cache (NULL: none) remembering the subkey of each
//  sender's nonce prefix. Same arguments, results and errors.
int keyring_open_cached(const keyring_t *self, keyring_cache_t *cache,
                        const uint8_t *ad, size_t ad_len, const uint8_t *sealed,
                        size_t sealed_len, uint8_t *out, size_t out_cap,
                        size_t *out_len, size_t *key_index) KEYRING_WUR;

//  Routing keys of (channel, namespace, topic), one per key in the ring:
//  out[0] under the current key, out[1] under the extra key. Each is the
//  16-byte keyed BLAKE2b, under the key's routing subkey, of
//      "roomcast/rkey/v1" || u32be(len) channel || u32be(len) ns
//                         || u32be(len) topic
//  so ("a", "bc") and ("ab", "c") never collide. All three strings are NUL
//  terminated; ns may be empty. Returns the number of keys written (1 or
//  2), or -1 with errno ENOKEY (empty ring).
int keyring_routing_keys(const keyring_t *self, const char *channel,
                         const char *ns, const char *topic,
                         uint8_t out[KEYRING_MAX_KEYS][KEYRING_RKEY_SIZE])
    KEYRING_WUR;

//  A public, one-way fingerprint of key number index (0 current, 1 extra)
//  for logs and status output, so operators can compare key sets across
//  nodes during a rotation: 16 lowercase hex characters and a NUL written to
//  out. Reveals nothing about the key. Returns 0, or -1 with errno ENOENT
//  (no such key).
int keyring_fingerprint(const keyring_t *self, size_t index,
                        char out[KEYRING_FINGERPRINT_LEN + 1]) KEYRING_WUR;

#endif
