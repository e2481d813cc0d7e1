/*  keyring - the cluster keys. The contract is in keyring.h.

    Each cluster key is expanded once into independent subkeys, so the AEAD
    key and the routing-hash key are never the same bytes, and the raw key
    does not outlive keyring_add.
*/

#include "keyring.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

_Static_assert(KEYRING_KEY_SIZE == crypto_aead_xchacha20poly1305_ietf_KEYBYTES,
               "cluster key is an XChaCha20-Poly1305 key");
_Static_assert(KEYRING_NONCE_SIZE ==
                   crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
               "nonce size");
_Static_assert(KEYRING_TAG_SIZE == crypto_aead_xchacha20poly1305_ietf_ABYTES,
               "tag size");
_Static_assert(KEYRING_RKEY_SIZE >= crypto_generichash_BYTES_MIN,
               "routing key is a BLAKE2b output");
_Static_assert(KEYRING_KEY_SIZE == crypto_kdf_KEYBYTES, "kdf master key");

#define S_KDF_CONTEXT "roomcast" // crypto_kdf contexts are 8 bytes
#define S_ID_SEAL     1
#define S_ID_ROUTE    2
#define S_ID_PRINT    3
#define S_PRINT_SIZE  16 // crypto_kdf_BYTES_MIN; we show the first half
#define S_RKEY_LABEL  "roomcast/rkey/v1"
#define S_HEX_KEY_LEN (2 * KEYRING_KEY_SIZE)
#define S_FILE_MAX    (S_HEX_KEY_LEN + 2) // hex + "\r\n"

typedef struct {
    uint8_t seal[KEYRING_KEY_SIZE];  // XChaCha20-Poly1305 key
    uint8_t route[KEYRING_KEY_SIZE]; // BLAKE2b key for routing keys
    uint8_t print[S_PRINT_SIZE];     // public fingerprint
    uint8_t ours[KEYRING_KEY_SIZE];  // HChaCha20 (seal, our nonce prefix)
} s_subkeys_t;

#define S_NONCE_PREFIX (KEYRING_NONCE_SIZE - 8) // random; then a counter
#define S_IETF_NONCE   crypto_aead_chacha20poly1305_ietf_NPUBBYTES

_Static_assert(S_NONCE_PREFIX == crypto_core_hchacha20_INPUTBYTES,
               "the prefix is HChaCha20's input");
_Static_assert(S_IETF_NONCE == 4 + 8, "IETF nonce: 4 zero bytes, counter");

struct _keyring_t {
    s_subkeys_t *keys; // sodium_malloc: KEYRING_MAX_KEYS slots + 1 scratch
    size_t count;      // keys in use
    uint8_t nonce_prefix[S_NONCE_PREFIX]; // drawn once, in keyring_new
    uint64_t nonces;                      // seals so far (atomic)
    uint64_t generation;                  // new whenever the keys change
};

//  Ring generations: a cache entry made under one never serves another.
static uint64_t s_generations;

static uint64_t s_next_generation(void)
{
    return __atomic_add_fetch(&s_generations, 1, __ATOMIC_RELAXED);
}

static void s_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void s_set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0) {
        return;
    }
    int saved = errno;
    va_list args;
    va_start(args, fmt);
    vsnprintf(err, errlen, fmt, args);
    va_end(args);
    errno = saved;
}

keyring_t *keyring_new(void)
{
    if (sodium_init() < 0) {
        errno = ENOSYS;
        return NULL;
    }
    keyring_t *self = calloc(1, sizeof(keyring_t));
    if (self == NULL) {
        return NULL;
    }
    self->keys = sodium_malloc((KEYRING_MAX_KEYS + 1) * sizeof(s_subkeys_t));
    if (self->keys == NULL) {
        free(self);
        errno = ENOMEM;
        return NULL;
    }
    sodium_memzero(self->keys, (KEYRING_MAX_KEYS + 1) * sizeof(s_subkeys_t));
    randombytes_buf(self->nonce_prefix, sizeof self->nonce_prefix);
    self->generation = s_next_generation();
    return self;
}

void keyring_destroy(keyring_t **self_p)
{
    assert(self_p);
    keyring_t *self = *self_p;
    if (self == NULL) {
        return;
    }
    sodium_free(self->keys); // wipes before unmapping
    free(self);
    *self_p = NULL;
}

int keyring_add(keyring_t *self, const uint8_t key[KEYRING_KEY_SIZE])
{
    assert(self);
    assert(key);
    s_subkeys_t *scratch = &self->keys[KEYRING_MAX_KEYS];
    crypto_kdf_derive_from_key(scratch->seal, sizeof scratch->seal, S_ID_SEAL,
                               S_KDF_CONTEXT, key);
    crypto_kdf_derive_from_key(scratch->route, sizeof scratch->route,
                               S_ID_ROUTE, S_KDF_CONTEXT, key);
    crypto_kdf_derive_from_key(scratch->print, sizeof scratch->print,
                               S_ID_PRINT, S_KDF_CONTEXT, key);
    crypto_core_hchacha20(scratch->ours, self->nonce_prefix, scratch->seal,
                          NULL);

    int rc = 0;
    bool known = false;
    for (size_t i = 0; i < self->count; i++) {
        if (sodium_memcmp(self->keys[i].seal, scratch->seal,
                          sizeof scratch->seal) == 0) {
            known = true;
        }
    }
    if (!known) {
        if (self->count < KEYRING_MAX_KEYS) {
            memcpy(&self->keys[self->count++], scratch, sizeof *scratch);
            self->generation = s_next_generation();
        } else {
            errno = ENOSPC;
            rc = -1;
        }
    }
    sodium_memzero(scratch, sizeof *scratch);
    return rc;
}

size_t keyring_size(const keyring_t *self)
{
    assert(self);
    return self->count;
}

//  Read at most cap bytes; *len_p is what the file holds, up to cap.
static int s_read_all(int fd, uint8_t *buf, size_t cap, size_t *len_p)
{
    size_t len = 0;
    while (len < cap) {
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -1;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
    }
    *len_p = len;
    return 0;
}

static bool s_looks_like_text(const uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (!isxdigit(buf[i]) && buf[i] != '\n' && buf[i] != '\r') {
            return false;
        }
    }
    return true;
}

//  Turns the file's bytes into a key. Never quotes the bytes in err.
static int s_parse_key(const char *path, uint8_t *buf, size_t len,
                       uint8_t key[KEYRING_KEY_SIZE], char *err, size_t errlen)
{
    if (len == KEYRING_KEY_SIZE) {
        //  32 random bytes are all hex digits with odds near 1e-34: such a
        //  file is a truncated or half-written hex key, not a raw key.
        if (s_looks_like_text(buf, len)) {
            s_set_err(err, errlen,
                      "key file %s holds 32 hex characters; a cluster key is "
                      "64 hex characters (roomcastctl keygen)",
                      path);
            errno = EINVAL;
            return -1;
        }
        memcpy(key, buf, KEYRING_KEY_SIZE);
        return 0;
    }
    if (len > 0 && buf[len - 1] == '\n') {
        len--;
        if (len > 0 && buf[len - 1] == '\r') {
            len--;
        }
    }
    if (len != S_HEX_KEY_LEN) {
        s_set_err(err, errlen,
                  "key file %s is not a cluster key: expected 64 hex "
                  "characters (roomcastctl keygen) or 32 raw bytes",
                  path);
        errno = EINVAL;
        return -1;
    }
    size_t bin_len = 0;
    const char *end = NULL;
    if (sodium_hex2bin(key, KEYRING_KEY_SIZE, (const char *)buf, len, NULL,
                       &bin_len, &end) != 0 ||
        bin_len != KEYRING_KEY_SIZE || end != (const char *)buf + len) {
        s_set_err(err, errlen,
                  "key file %s is not a cluster key: it holds a character "
                  "that is not a hex digit",
                  path);
        errno = EINVAL;
        return -1;
    }
    return 0;
}

static int s_check_mode(const char *path, int fd, char *err, size_t errlen)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        s_set_err(err, errlen, "cannot stat key file %s: %s", path,
                  strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        s_set_err(err, errlen, "key file %s is not a regular file", path);
        errno = EINVAL;
        return -1;
    }
    //  Others get nothing and the group may at most read: a Kubernetes
    //  Secret mounted for a non-root user with fsGroup is 0440 (or 0640),
    //  and read is the one group permission a key file may have.
    unsigned mode = (unsigned)st.st_mode & 07777;
    if (mode & 037) {
        const char *what = (mode & 007)   ? "open to others"
                           : (mode & 020) ? "writable by its group"
                                          : "executable by its group";
        s_set_err(err, errlen,
                  "key file %s is %s (mode %04o): only its owner may write "
                  "it, only its owner and group read it; run: chmod 600 %s",
                  path, what, mode, path);
        errno = EACCES;
        return -1;
    }
    return 0;
}

int keyring_load_file(keyring_t *self, const char *path, char *err,
                      size_t errlen)
{
    assert(self);
    assert(path);
    //  No O_NOFOLLOW: Kubernetes mounts Secret files as symlinks. The mode
    //  check is on the file the link resolves to.
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        s_set_err(err, errlen, "cannot open key file %s: %s", path,
                  strerror(errno));
        return -1;
    }
    uint8_t buf[S_FILE_MAX + 1]; // one more, to see an over-long file
    uint8_t key[KEYRING_KEY_SIZE];
    size_t len = 0;
    int rc = s_check_mode(path, fd, err, errlen);
    if (rc == 0) {
        rc = s_read_all(fd, buf, sizeof buf, &len);
        if (rc != 0) {
            s_set_err(err, errlen, "cannot read key file %s: %s", path,
                      strerror(errno));
        }
    }
    if (rc == 0) {
        rc = s_parse_key(path, buf, len, key, err, errlen);
    }
    if (rc == 0) {
        rc = keyring_add(self, key);
        if (rc != 0) {
            s_set_err(err, errlen,
                      "key file %s not loaded: the keyring already holds %d "
                      "keys",
                      path, KEYRING_MAX_KEYS);
        }
    }
    int saved = errno;
    sodium_memzero(buf, sizeof buf);
    sodium_memzero(key, sizeof key);
    close(fd);
    errno = saved;
    return rc;
}

static int s_write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int keyring_generate_file(const char *path, char *err, size_t errlen)
{
    assert(path);
    if (sodium_init() < 0) {
        s_set_err(err, errlen, "libsodium failed to initialise");
        errno = ENOSYS;
        return -1;
    }
    int fd =
        open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        s_set_err(err, errlen, "cannot create key file %s: %s", path,
                  strerror(errno));
        return -1;
    }
    uint8_t key[KEYRING_KEY_SIZE];
    char hex[S_HEX_KEY_LEN + 1];
    randombytes_buf(key, sizeof key);
    sodium_bin2hex(hex, sizeof hex, key, sizeof key);
    hex[S_HEX_KEY_LEN] = '\n'; // replaces the NUL: we write 65 bytes

    int rc = 0;
    const char *what = "set the mode of";
    if (fchmod(fd, 0600) == 0) { // whatever the umask did, exactly 0600
        what = "write";
        if (s_write_all(fd, hex, sizeof hex) == 0) {
            what = "sync";
            rc = fsync(fd);
        } else {
            rc = -1;
        }
    } else {
        rc = -1;
    }
    int saved = errno;
    sodium_memzero(key, sizeof key);
    sodium_memzero(hex, sizeof hex);
    if (close(fd) != 0 && rc == 0) {
        saved = errno;
        what = "close";
        rc = -1;
    }
    if (rc != 0) {
        s_set_err(err, errlen, "cannot %s key file %s: %s", what, path,
                  strerror(saved));
        unlink(path);
    }
    errno = saved;
    return rc;
}

int keyring_seal(const keyring_t *self, const uint8_t *ad, size_t ad_len,
                 const uint8_t *plain, size_t plain_len, uint8_t *out,
                 size_t out_cap, size_t *out_len)
{
    assert(self);
    assert(out);
    assert(out_len);
    assert(plain || plain_len == 0);
    assert(ad || ad_len == 0);
    if (self->count == 0) {
        errno = ENOKEY;
        return -1;
    }
    if (out_cap < KEYRING_SEAL_OVERHEAD ||
        plain_len > out_cap - KEYRING_SEAL_OVERHEAD ||
        plain_len > crypto_aead_chacha20poly1305_ietf_MESSAGEBYTES_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    //  128 random bits per ring, then a 64-bit counter: unique without
    //  state that survives restarts, and no getrandom(2) per message (a
    //  system call per seal was a tenth of a relaying sidecar's time).
    uint64_t n =
        __atomic_fetch_add(&((keyring_t *)self)->nonces, 1, __ATOMIC_RELAXED);
    uint8_t ietf[S_IETF_NONCE] = {0};
    memcpy(out, self->nonce_prefix, S_NONCE_PREFIX);
    for (size_t i = 0; i < 8; i++) {
        out[S_NONCE_PREFIX + i] = ietf[4 + i] = (uint8_t)(n >> (8 * i));
    }
    //  XChaCha20-Poly1305 with the HChaCha20 step done once in keyring_add
    //  (see keyring.h): the same bytes, a ChaCha20 block less per seal.
    unsigned long long clen = 0;
    crypto_aead_chacha20poly1305_ietf_encrypt(out + KEYRING_NONCE_SIZE, &clen,
                                              plain, plain_len, ad, ad_len,
                                              NULL, ietf, self->keys[0].ours);
    *out_len = KEYRING_NONCE_SIZE + (size_t)clen;
    return 0;
}

//  --- opening, and the cache of senders' subkeys ---------------------------

#define S_CACHE_SLOTS 64 // direct-mapped by the prefix's first byte

typedef struct {
    uint64_t generation; // of the ring it was made under; 0: empty
    size_t key_index;    // which key of that ring
    uint8_t prefix[S_NONCE_PREFIX];
    uint8_t subkey[KEYRING_KEY_SIZE];
} s_cached_t;

struct _keyring_cache_t {
    s_cached_t *slots; // sodium_malloc, S_CACHE_SLOTS
};

keyring_cache_t *keyring_cache_new(void)
{
    if (sodium_init() < 0) {
        errno = ENOSYS;
        return NULL;
    }
    keyring_cache_t *self = calloc(1, sizeof *self);
    if (self) {
        self->slots = sodium_malloc(S_CACHE_SLOTS * sizeof(s_cached_t));
    }
    if (!self || !self->slots) {
        free(self);
        errno = ENOMEM;
        return NULL;
    }
    sodium_memzero(self->slots, S_CACHE_SLOTS * sizeof(s_cached_t));
    return self;
}

void keyring_cache_destroy(keyring_cache_t **self_p)
{
    assert(self_p);
    if (*self_p) {
        sodium_free((*self_p)->slots);
        free(*self_p);
        *self_p = NULL;
    }
}

//  HChaCha20 of key i under the sender's prefix, from the cache when it can.
static const uint8_t *s_subkey(const keyring_t *self, keyring_cache_t *cache,
                               size_t i, const uint8_t *prefix,
                               uint8_t scratch[KEYRING_KEY_SIZE])
{
    if (cache == NULL) {
        crypto_core_hchacha20(scratch, prefix, self->keys[i].seal, NULL);
        return scratch;
    }
    s_cached_t *slot = &cache->slots[(prefix[0] + i) % S_CACHE_SLOTS];
    if (slot->generation != self->generation || slot->key_index != i ||
        memcmp(slot->prefix, prefix, S_NONCE_PREFIX) != 0) {
        crypto_core_hchacha20(slot->subkey, prefix, self->keys[i].seal, NULL);
        memcpy(slot->prefix, prefix, S_NONCE_PREFIX);
        slot->generation = self->generation;
        slot->key_index = i;
    }
    return slot->subkey;
}

int keyring_open_cached(const keyring_t *self, keyring_cache_t *cache,
                        const uint8_t *ad, size_t ad_len, const uint8_t *sealed,
                        size_t sealed_len, uint8_t *out, size_t out_cap,
                        size_t *out_len, size_t *key_index)
{
    assert(self);
    assert(out_len);
    assert(sealed || sealed_len == 0);
    assert(ad || ad_len == 0);
    if (sealed_len < KEYRING_SEAL_OVERHEAD) {
        errno = EBADMSG;
        return -1;
    }
    size_t plain_len = sealed_len - KEYRING_SEAL_OVERHEAD;
    if (plain_len > out_cap) {
        errno = EMSGSIZE;
        return -1;
    }
    assert(out || plain_len == 0);
    uint8_t ietf[S_IETF_NONCE] = {0};
    memcpy(ietf + 4, sealed + S_NONCE_PREFIX, 8);
    for (size_t i = 0; i < self->count; i++) {
        uint8_t scratch[KEYRING_KEY_SIZE];
        const uint8_t *key = s_subkey(self, cache, i, sealed, scratch);
        unsigned long long mlen = 0;
        int rc = crypto_aead_chacha20poly1305_ietf_decrypt(
            out, &mlen, NULL, sealed + KEYRING_NONCE_SIZE,
            sealed_len - KEYRING_NONCE_SIZE, ad, ad_len, ietf, key);
        sodium_memzero(scratch, sizeof scratch);
        if (rc == 0) {
            *out_len = (size_t)mlen;
            if (key_index) {
                *key_index = i;
            }
            return 0;
        }
    }
    errno = EBADMSG;
    return -1;
}

int keyring_open(const keyring_t *self, const uint8_t *ad, size_t ad_len,
                 const uint8_t *sealed, size_t sealed_len, uint8_t *out,
                 size_t out_cap, size_t *out_len, size_t *key_index)
{
    return keyring_open_cached(self, NULL, ad, ad_len, sealed, sealed_len, out,
                               out_cap, out_len, key_index);
}

static void s_hash_field(crypto_generichash_state *state, const char *field,
                         size_t len)
{
    uint8_t prefix[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16),
                         (uint8_t)(len >> 8), (uint8_t)len};
    crypto_generichash_update(state, prefix, sizeof prefix);
    crypto_generichash_update(state, (const uint8_t *)field, len);
}

int keyring_routing_keys(const keyring_t *self, const char *channel,
                         const char *ns, const char *topic,
                         uint8_t out[KEYRING_MAX_KEYS][KEYRING_RKEY_SIZE])
{
    assert(self);
    assert(channel);
    assert(ns);
    assert(topic);
    assert(out);
    if (self->count == 0) {
        errno = ENOKEY;
        return -1;
    }
    size_t channel_len = strlen(channel);
    size_t ns_len = strlen(ns);
    size_t topic_len = strlen(topic);
    //  Names come from our own config and from envelopes capped at 255
    //  bytes; anything near 4 GiB is a bug upstream.
    assert(channel_len <= UINT32_MAX && ns_len <= UINT32_MAX &&
           topic_len <= UINT32_MAX);

    for (size_t i = 0; i < self->count; i++) {
        crypto_generichash_state state;
        crypto_generichash_init(&state, self->keys[i].route,
                                sizeof self->keys[i].route, KEYRING_RKEY_SIZE);
        crypto_generichash_update(&state, (const uint8_t *)S_RKEY_LABEL,
                                  strlen(S_RKEY_LABEL));
        s_hash_field(&state, channel, channel_len);
        s_hash_field(&state, ns, ns_len);
        s_hash_field(&state, topic, topic_len);
        crypto_generichash_final(&state, out[i], KEYRING_RKEY_SIZE);
        sodium_memzero(&state, sizeof state);
    }
    return (int)self->count;
}

int keyring_fingerprint(const keyring_t *self, size_t index,
                        char out[KEYRING_FINGERPRINT_LEN + 1])
{
    assert(self);
    assert(out);
    if (index >= self->count) {
        errno = ENOENT;
        return -1;
    }
    sodium_bin2hex(out, KEYRING_FINGERPRINT_LEN + 1, self->keys[index].print,
                   KEYRING_FINGERPRINT_LEN / 2);
    return 0;
}

void keyring_swap(keyring_t *self, keyring_t *other)
{
    keyring_t tmp = *self;
    *self = *other;
    *other = tmp;
}
