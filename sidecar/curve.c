/*  curve: see curve.h. zauth must live in the same ZeroMQ context as the
    sockets it authenticates (ZAP is an inproc endpoint of the context), so
    every socket of the mesh is made in czmq's context (zsys_init). */
#include "curve.h"
#include "log.h"

#include <czmq.h>
#include <sodium.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#define ZMQ_ZAP_ENFORCE_DOMAIN 93 // draft in zmq.h 4.3; Debian's lib has it
#endif

struct curve_t {
    zcert_t *cert;
    zactor_t *auth;
    zsock_t *log;          // zauth's verbose log, to learn who it refused
    zhashx_t *reported;    // keys already reported
    char last_address[64]; // of the ZAP request being decided
    char dir[512];         // admitted public certificates
    char z85[CURVE_Z85_SIZE];
};

static void s_remove_dir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] != '.') {
            char file[1024];
            snprintf(file, sizeof file, "%s/%s", path, e->d_name);
            unlink(file);
        }
    }
    if (d) {
        closedir(d);
    }
    rmdir(path);
}

//  Copy the public part of every certificate in from into self->dir.
static int s_copy_allowed(curve_t *self, const char *from, char *err,
                          size_t errlen)
{
    DIR *d = opendir(from);
    if (!d) {
        snprintf(err, errlen, "--curve-allow %s: %s", from, strerror(errno));
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' ||
            (len > 7 && strcmp(e->d_name + len - 7, "_secret") == 0)) {
            continue; // never copy a secret
        }
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", from, e->d_name);
        zcert_t *cert = zcert_load(path);
        if (!cert) {
            continue; // not a certificate: ignore (README, ...)
        }
        const char *name = zcert_meta(cert, "name");
        (void)curve_admit(self, zcert_public_key(cert), name ? name : "");
        zcert_destroy(&cert);
    }
    closedir(d);
    return 0;
}

curve_t *curve_new(const char *cert_path, const char *allow_dir,
                   const char *runtime_dir, char *err, size_t errlen)
{
    struct stat st;
    if (stat(cert_path, &st)) {
        snprintf(err, errlen, "--curve-cert %s: %s", cert_path,
                 strerror(errno));
        return NULL;
    }
    if (st.st_mode & 037) {
        snprintf(err, errlen,
                 "--curve-cert %s is open to others or "
                 "writable by its group (mode %04o); run: chmod 600 %s",
                 cert_path, (unsigned)st.st_mode & 07777, cert_path);
        return NULL;
    }
    curve_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->cert = zcert_load(cert_path);
    static const uint8_t zero[CURVE_KEY_SIZE];
    if (!self->cert ||
        memcmp(zcert_secret_key(self->cert), zero, CURVE_KEY_SIZE) == 0) {
        snprintf(err, errlen,
                 "--curve-cert %s is not a secret certificate "
                 "(roomcastctl keygen --curve FILE writes FILE_secret)",
                 cert_path);
        curve_destroy(&self);
        return NULL;
    }
    snprintf(self->z85, sizeof self->z85, "%s", zcert_public_txt(self->cert));
    snprintf(self->dir, sizeof self->dir, "%s/curve-XXXXXX", runtime_dir);
    if (!mkdtemp(self->dir)) {
        snprintf(err, errlen, "cannot create a directory in %s: %s",
                 runtime_dir, strerror(errno));
        self->dir[0] = 0;
        curve_destroy(&self);
        return NULL;
    }
    if (allow_dir && *allow_dir &&
        s_copy_allowed(self, allow_dir, err, errlen)) {
        curve_destroy(&self);
        return NULL;
    }
    //  zauth says whom it refuses only in its verbose log: send czmq's log
    //  to an inproc socket of ours instead of a stream, and read it
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "inproc://roomcast-zauth-%p",
             (void *)self);
    zsys_init();
    zsys_set_logstream(NULL);
    zsys_set_logsystem(false);
    zsys_set_logsender(endpoint);
    self->log = zsock_new_sub(endpoint, "");
    self->reported = zhashx_new();
    self->auth = zactor_new(zauth, NULL);
    if (!self->log || !self->reported || !self->auth ||
        zstr_sendx(self->auth, "VERBOSE", NULL) || zsock_wait(self->auth) ||
        zstr_sendx(self->auth, "CURVE", self->dir, NULL) ||
        zsock_wait(self->auth)) {
        snprintf(err, errlen, "cannot start the ZAP handler (zauth)");
        curve_destroy(&self);
        return NULL;
    }
    return self;
}

void curve_destroy(curve_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    curve_t *self = *self_p;
    zactor_destroy(&self->auth);
    //  czmq's log sender socket, left open, makes czmq's exit handler skip
    //  ending the context: its I/O threads would outlive main
    zsys_set_logsender(NULL);
    zsock_destroy(&self->log);
    zhashx_destroy(&self->reported);
    zcert_destroy(&self->cert);
    if (*self->dir) {
        s_remove_dir(self->dir);
    }
    free(self);
    *self_p = NULL;
}

const uint8_t *curve_public(const curve_t *self)
{
    return zcert_public_key(self->cert);
}

const char *curve_public_z85(const curve_t *self)
{
    return self->z85;
}

int curve_server(curve_t *self, void *sock)
{
    int one = 1;
    const char *domain = CURVE_DOMAIN;
    if (zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, domain, strlen(domain)) ||
        zmq_setsockopt(sock, ZMQ_ZAP_ENFORCE_DOMAIN, &one, sizeof one) ||
        zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, zcert_secret_key(self->cert),
                       CURVE_KEY_SIZE)) {
        return -1;
    }
    return 0;
}

int curve_client(curve_t *self, void *sock,
                 const uint8_t server_key[CURVE_KEY_SIZE])
{
    if (zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, zcert_public_key(self->cert),
                       CURVE_KEY_SIZE) ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, zcert_secret_key(self->cert),
                       CURVE_KEY_SIZE) ||
        zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server_key, CURVE_KEY_SIZE)) {
        return -1;
    }
    return 0;
}

static void s_path_of(curve_t *self, const uint8_t key[CURVE_KEY_SIZE],
                      char *path, size_t size)
{
    char hex[2 * CURVE_KEY_SIZE + 1];
    sodium_bin2hex(hex, sizeof hex, key, CURVE_KEY_SIZE);
    snprintf(path, size, "%s/%s", self->dir, hex);
}

int curve_admit(curve_t *self, const uint8_t key[CURVE_KEY_SIZE],
                const char *name)
{
    static const uint8_t zero[CURVE_KEY_SIZE];
    zcert_t *cert = zcert_new_from(key, zero);
    if (!cert) {
        errno = ENOMEM;
        return -1;
    }
    if (name && *name) {
        zcert_set_meta(cert, "name", "%s", name);
    }
    char path[1024];
    s_path_of(self, key, path, sizeof path);
    int rc = zcert_save_public(cert, path);
    zcert_destroy(&cert);
    return rc;
}

int curve_forget(curve_t *self, const uint8_t key[CURVE_KEY_SIZE])
{
    char path[1024];
    s_path_of(self, key, path, sizeof path);
    return unlink(path);
}

size_t curve_refusals(curve_t *self, curve_refusal_fn *fn, void *arg)
{
    size_t refused = 0;
    char *line;
    while (self->log && (zsock_events(self->log) & ZMQ_POLLIN) &&
           (line = zstr_recv(self->log))) {
        const char *ip = strstr(line, "ZAP request mechanism=CURVE ipaddress=");
        const char *key = strstr(line, "denied (CURVE) client_key=");
        if (ip) {
            snprintf(self->last_address, sizeof self->last_address, "%.*s",
                     (int)strcspn(ip + 38, " \n"), ip + 38);
        } else if (key) {
            char z85[CURVE_Z85_SIZE];
            snprintf(z85, sizeof z85, "%s", key + 26);
            refused++;
            if (!zhashx_lookup(self->reported, z85) &&
                zhashx_size(self->reported) < 4096) {
                zhashx_insert(self->reported, z85, (void *)1);
                fn(arg, z85, self->last_address);
            }
        }
        zstr_free(&line);
    }
    return refused;
}

// --- refusal monitor ---------------------------------------------------------

struct curve_monitor_t {
    curve_t *curve;
    loop_t *loop;
    void *sock;      // monitored
    void *pair;      // libzmq's monitor events arrive here
    int fd;          // the pair's ZMQ_FD, watched in loop, or -1
    uint64_t *count; // refused handshakes
};

static void s_log_refusal(void *arg, const char *key_z85, const char *address)
{
    (void)arg;
    log_warn("curve_refused",
             "address=%s key=%s reason=\"not a member's "
             "key nor in --curve-allow\" note=\"logged once per key\"",
             address, key_z85);
}

static void s_drain_monitor(curve_monitor_t *self)
{
    for (int n = 0; n < 256; n++) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, self->pair, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            break;
        }
        zmq_msg_init(&addr);
        if (zmq_msg_more(&ev)) {
            (void)zmq_msg_recv(&addr, self->pair, ZMQ_DONTWAIT);
        }
        (*self->count)++;
        zmq_msg_close(&ev);
        zmq_msg_close(&addr);
    }
}

static void s_on_monitor(loop_t *loop, int fd, uint32_t events, void *arg)
{
    (void)loop;
    (void)fd;
    (void)events;
    s_drain_monitor(arg);
}

curve_monitor_t *curve_monitor_new(curve_t *curve, void *zctx, void *sock,
                                   loop_t *loop, uint64_t *refused, char *err,
                                   size_t errlen)
{
    curve_monitor_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    *self = (curve_monitor_t){curve, loop, sock, NULL, -1, refused};
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "inproc://roomcast-monitor-%p",
             (void *)self);
    int fd;
    size_t fdlen = sizeof fd;
    if (zmq_socket_monitor(sock, endpoint,
                           ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) ||
        !(self->pair = zmq_socket(zctx, ZMQ_PAIR)) ||
        zmq_connect(self->pair, endpoint) ||
        zmq_getsockopt(self->pair, ZMQ_FD, &fd, &fdlen) ||
        loop_add_fd(loop, fd, EPOLLIN, s_on_monitor, self)) {
        snprintf(err, errlen, "cannot monitor the data socket");
        curve_monitor_destroy(&self);
        return NULL;
    }
    self->fd = fd;
    //  Its ZMQ_FD signals new events only once a receive has found the
    //  socket empty: s_on_monitor drains to EAGAIN, and so does this.
    s_drain_monitor(self);
    return self;
}

void curve_monitor_turn(curve_monitor_t *self)
{
    (void)curve_refusals(self->curve, s_log_refusal, self);
}

void curve_monitor_destroy(curve_monitor_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    curve_monitor_t *self = *self_p;
    if (self->fd >= 0) {
        loop_del_fd(self->loop, self->fd);
    }
    zmq_socket_monitor(self->sock, NULL, 0);
    if (self->pair) {
        zmq_close(self->pair);
    }
    free(self);
    *self_p = NULL;
}

int curve_split(const char *spec, char *endpoint, size_t size,
                uint8_t key[CURVE_KEY_SIZE])
{
    //  Z85 has '@' in its alphabet: the key is the last 40 characters
    size_t len = strlen(spec);
    const char *at =
        len > 41 && spec[len - 41] == '@' ? spec + len - 41 : strchr(spec, '@');
    if (!at) {
        snprintf(endpoint, size, "%s", spec);
        return 0;
    }
    snprintf(endpoint, size, "%.*s", (int)(at - spec), spec);
    if (strlen(at + 1) != 40 || !zmq_z85_decode(key, at + 1)) {
        return -1;
    }
    return 1;
}

int curve_generate(const char *path, char *err, size_t errlen)
{
    char secret[1024];
    snprintf(secret, sizeof secret, "%s_secret", path);
    if (access(path, F_OK) == 0 || access(secret, F_OK) == 0) {
        snprintf(err, errlen, "%s or %s exists: refusing to overwrite", path,
                 secret);
        errno = EEXIST;
        return -1;
    }
    zcert_t *cert = zcert_new();
    if (!cert) {
        snprintf(err, errlen, "cannot make a key pair");
        return -1;
    }
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    zcert_set_meta(cert, "name", "%s", host);
    mode_t old = umask(077); // the secret is born 0600
    int rc = zcert_save(cert, path);
    umask(old);
    if (rc == 0) {
        chmod(path, 0644); // the public half is meant to be shared
    } else {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    }
    zcert_destroy(&cert);
    return rc;
}
