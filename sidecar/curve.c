/*  curve: see curve.h. zauth must live in the same ZeroMQ context as the
    sockets it authenticates (ZAP is an inproc endpoint of the context), so
    every socket of the mesh is made in czmq's context (zsys_init). */
#include "curve.h"
#include "log.h"

#include <czmq.h>
#include <sodium.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#define ZMQ_ZAP_ENFORCE_DOMAIN 93 // draft in zmq.h 4.3; Debian's lib has it
#endif

#define GRACE_MS 3000 // a refused key admitted meanwhile: a join race
//  A refused link is redialled after 100 ms, then twice as long each time,
//  up to 1 s: the peer refused us because gossip had not brought it our
//  key yet (a join, the heal of a partition), and nothing tells us when it
//  has, so the wait after it has is at most a second. A handshake attempt
//  a second to a peer that keeps refusing costs next to nothing.
#define REDIAL_MIN_MS 100
#define REDIAL_MAX_MS 1000
#define PENDING_MAX   256 // refusals waiting out their grace

//  A refusal not reported yet: the key may be a member's that gossip has
//  not brought us yet.
typedef struct {
    char z85[CURVE_Z85_SIZE];
    char address[64];
    uint64_t since; // ms, loop_clock_ms
} pending_t;

struct curve_t {
    zcert_t *cert;
    zactor_t *auth;
    zsock_t *log;          // zauth's verbose log, to learn who it refused
    zhashx_t *reported;    // keys already reported
    char last_address[64]; // of the ZAP request being decided
    char dir[512];         // admitted public certificates
    int lock;              // flock held on dir + ".lock" while we run
    char z85[CURVE_Z85_SIZE];
    bool ephemeral; // key pair made at start
    bool dirty;     // the directory changed since zauth read it
    pending_t pending[PENDING_MAX];
    size_t npending;
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

//  dir + ".lock", locked for as long as we run, so a later start can tell
//  a directory left by a sidecar killed with SIGKILL (or the OOM killer)
//  from one a running sidecar uses. Made under a temporary name and
//  renamed once locked: nobody can take the lock between. Returns the
//  descriptor, or -1 (then the directory is only removed at a clean stop).
static int s_lock_dir(const char *dir)
{
    char tmp[600], path[600];
    snprintf(tmp, sizeof tmp, "%s.lock-new", dir);
    snprintf(path, sizeof path, "%s.lock", dir);
    int fd = open(tmp, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0 && (flock(fd, LOCK_EX | LOCK_NB) || rename(tmp, path))) {
        close(fd);
        unlink(tmp);
        fd = -1;
    }
    return fd;
}

//  Remove the certificate directories in runtime_dir whose lock nobody
//  holds: their sidecars are gone (a socket directory on a host would
//  otherwise gain one per crash). Returns how many.
static int s_remove_stale(const char *runtime_dir)
{
    DIR *d = opendir(runtime_dir);
    struct dirent *e;
    int removed = 0;
    while (d && (e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, "curve-", 6) != 0 || len < 5 ||
            strcmp(e->d_name + len - 5, ".lock") != 0) {
            continue;
        }
        char path[600];
        snprintf(path, sizeof path, "%s/%s", runtime_dir, e->d_name);
        int fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0) {
            path[strlen(path) - 5] = 0;
            s_remove_dir(path);
            snprintf(path, sizeof path, "%s/%s", runtime_dir, e->d_name);
            unlink(path);
            removed++;
        }
        if (fd >= 0) {
            close(fd);
        }
    }
    if (d) {
        closedir(d);
    }
    return removed;
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

//  Our key pair: made now (cert_path NULL or ""), or the secret
//  certificate at cert_path. Returns NULL with err filled.
static zcert_t *s_load_cert(const char *cert_path, char *err, size_t errlen)
{
    if (!cert_path || !*cert_path) {
        zcert_t *cert = zcert_new(); // libsodium's crypto_box_keypair
        if (!cert) {
            snprintf(err, errlen, "cannot make a CurveZMQ key pair");
        }
        return cert;
    }
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
    zcert_t *cert = zcert_load(cert_path);
    static const uint8_t zero[CURVE_KEY_SIZE];
    if (!cert || memcmp(zcert_secret_key(cert), zero, CURVE_KEY_SIZE) == 0) {
        snprintf(err, errlen,
                 "--curve-cert %s is not a secret certificate "
                 "(roomcastctl keygen --curve FILE writes FILE_secret)",
                 cert_path);
        zcert_destroy(&cert);
    }
    return cert;
}

curve_t *curve_new(const char *cert_path, const char *allow_dir,
                   const char *runtime_dir, char *err, size_t errlen)
{
    zcert_t *cert = s_load_cert(cert_path, err, errlen);
    if (!cert) {
        return NULL;
    }
    curve_t *self = calloc(1, sizeof *self);
    if (!self) {
        zcert_destroy(&cert);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->cert = cert;
    self->ephemeral = !cert_path || !*cert_path;
    snprintf(self->z85, sizeof self->z85, "%s", zcert_public_txt(self->cert));
    self->lock = -1;
    snprintf(self->dir, sizeof self->dir, "%s/curve-XXXXXX", runtime_dir);
    if (!mkdtemp(self->dir)) {
        snprintf(err, errlen, "cannot create a directory in %s: %s",
                 runtime_dir, strerror(errno));
        self->dir[0] = 0;
        curve_destroy(&self);
        return NULL;
    }
    self->lock = s_lock_dir(self->dir);
    int stale = s_remove_stale(runtime_dir);
    if (stale) {
        log_info("curve_stale_removed",
                 "dir=%s count=%d note=\"certificate directories left by "
                 "sidecars that did not stop cleanly\"",
                 runtime_dir, stale);
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
    self->dirty = false; // zauth has just read the directory
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
    if (self->lock >= 0) {
        char path[600];
        snprintf(path, sizeof path, "%s.lock", self->dir);
        unlink(path);
        close(self->lock);
    }
    free(self);
    *self_p = NULL;
}

bool curve_ephemeral(const curve_t *self)
{
    return self->ephemeral;
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
    self->dirty = true;
    return rc;
}

int curve_forget(curve_t *self, const uint8_t key[CURVE_KEY_SIZE])
{
    char path[1024];
    s_path_of(self, key, path, sizeof path);
    self->dirty = true;
    return unlink(path);
}

//  zauth re-reads the directory: a new zcertstore, whatever the mtimes.
void curve_sync(curve_t *self)
{
    if (self->dirty && self->auth) {
        self->dirty = false;
        if (zstr_sendx(self->auth, "CURVE", self->dir, NULL) == 0) {
            zsock_wait(self->auth);
        }
    }
}

static bool s_admitted(curve_t *self, const char *z85)
{
    uint8_t key[CURVE_KEY_SIZE];
    char path[1024];
    if (!zmq_z85_decode(key, z85)) {
        return false;
    }
    s_path_of(self, key, path, sizeof path);
    return access(path, F_OK) == 0;
}

//  A refusal of key z85: reported after the grace unless it is admitted
//  meanwhile; each key once.
static void s_refused(curve_t *self, const char *z85)
{
    if (zhashx_lookup(self->reported, z85)) {
        return;
    }
    for (size_t i = 0; i < self->npending; i++) {
        if (strcmp(self->pending[i].z85, z85) == 0) {
            return;
        }
    }
    if (self->npending < PENDING_MAX) {
        pending_t *p = &self->pending[self->npending++];
        snprintf(p->z85, sizeof p->z85, "%s", z85);
        snprintf(p->address, sizeof p->address, "%s", self->last_address);
        p->since = loop_clock_ms();
    }
}

static void s_report(curve_t *self, curve_refusal_fn *fn, void *arg)
{
    uint64_t now = loop_clock_ms();
    size_t kept = 0;
    for (size_t i = 0; i < self->npending; i++) {
        pending_t *p = &self->pending[i];
        if (s_admitted(self, p->z85)) {
            continue; // a member after all: gossip was slower than it
        }
        if (now - p->since < GRACE_MS) {
            self->pending[kept++] = *p;
            continue;
        }
        if (zhashx_size(self->reported) < 4096) {
            zhashx_insert(self->reported, p->z85, (void *)1);
        }
        fn(arg, p->z85, p->address);
    }
    self->npending = kept;
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
            z85[strcspn(z85, " \n")] = 0;
            refused++;
            s_refused(self, z85);
        }
        zstr_free(&line);
    }
    s_report(self, fn, arg);
    return refused;
}

// --- refusal monitor ---------------------------------------------------------

//  An endpoint our socket connects to whose server refused us.
typedef struct {
    char endpoint[256];
    uint64_t due;     // redial at (loop ms); 0: none planned
    uint32_t backoff; // next wait, ms
} redial_t;

#define REDIALS_MAX 1024

struct curve_monitor_t {
    curve_t *curve;
    loop_t *loop;
    void *sock;      // monitored
    void *pair;      // libzmq's monitor events arrive here
    int fd;          // the pair's ZMQ_FD, watched in loop, or -1
    uint64_t *count; // refused handshakes
    curve_redial_fn *redial;
    void *arg;
    redial_t *redials;
    size_t nredials;
    int timer; // armed for the earliest due redial, or -1
};

static void s_log_refusal(void *arg, const char *key_z85, const char *address)
{
    (void)arg;
    log_warn("curve_refused",
             "address=%s key=%s reason=\"not a member's "
             "key nor in --curve-allow\" note=\"logged once per key\"",
             address, key_z85);
}

static redial_t *s_redial_of(curve_monitor_t *self, const char *endpoint)
{
    for (size_t i = 0; i < self->nredials; i++) {
        if (strcmp(self->redials[i].endpoint, endpoint) == 0) {
            return &self->redials[i];
        }
    }
    return NULL;
}

static void s_on_redial(loop_t *loop, int timer_id, void *arg);

static void s_arm(curve_monitor_t *self)
{
    uint64_t first = 0;
    for (size_t i = 0; i < self->nredials; i++) {
        uint64_t due = self->redials[i].due;
        if (due && (!first || due < first)) {
            first = due;
        }
    }
    if (self->timer >= 0) {
        loop_cancel_timer(self->loop, self->timer);
        self->timer = -1;
    }
    if (first) {
        uint64_t now = loop_clock_ms();
        self->timer = loop_add_timer(self->loop, first > now ? first - now : 1,
                                     false, s_on_redial, self);
    }
}

static void s_on_redial(loop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    curve_monitor_t *self = arg;
    self->timer = -1;
    uint64_t now = loop_clock_ms();
    for (size_t i = 0; i < self->nredials;) {
        redial_t *r = &self->redials[i];
        if (r->due && r->due <= now) {
            r->due = 0;
            if (!self->redial(self->arg, r->endpoint)) {
                *r = self->redials[--self->nredials]; // no longer a link
                continue;
            }
        }
        i++;
    }
    s_arm(self);
}

//  The server at endpoint refused us: redial it after the backoff.
static void s_plan_redial(curve_monitor_t *self, const char *endpoint)
{
    redial_t *r = s_redial_of(self, endpoint);
    if (!r && self->nredials < REDIALS_MAX) {
        redial_t *more =
            realloc(self->redials, (self->nredials + 1) * sizeof *more);
        if (!more) {
            return;
        }
        self->redials = more;
        r = &self->redials[self->nredials++];
        snprintf(r->endpoint, sizeof r->endpoint, "%s", endpoint);
        r->due = 0;
        r->backoff = REDIAL_MIN_MS;
    }
    if (!r || r->due) {
        return;
    }
    r->due = loop_clock_ms() + r->backoff;
    r->backoff =
        r->backoff * 2 > REDIAL_MAX_MS ? REDIAL_MAX_MS : r->backoff * 2;
    s_arm(self);
}

//  A handshake with endpoint succeeded: its backoff starts over.
static void s_forget_redial(curve_monitor_t *self, const char *endpoint)
{
    redial_t *r = s_redial_of(self, endpoint);
    if (r) {
        *r = self->redials[--self->nredials];
    }
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
        uint16_t event = 0;
        if (zmq_msg_size(&ev) >= 2) {
            memcpy(&event, zmq_msg_data(&ev), 2); // host order, as sent
        }
        char endpoint[256];
        snprintf(endpoint, sizeof endpoint, "%.*s", (int)zmq_msg_size(&addr),
                 (const char *)zmq_msg_data(&addr));
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            s_forget_redial(self, endpoint);
        } else {
            (*self->count)++;
            if (self->redial && *endpoint) {
                s_plan_redial(self, endpoint);
            }
        }
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
                                   loop_t *loop, uint64_t *refused,
                                   curve_redial_fn *redial, void *arg,
                                   char *err, size_t errlen)
{
    curve_monitor_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    *self = (curve_monitor_t){.curve = curve,
                              .loop = loop,
                              .sock = sock,
                              .fd = -1,
                              .count = refused,
                              .redial = redial,
                              .arg = arg,
                              .timer = -1};
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "inproc://roomcast-monitor-%p",
             (void *)self);
    int fd;
    size_t fdlen = sizeof fd;
    //  A plaintext client may notice the mechanism mismatch first and
    //  hang up: the server then sees a handshake that failed without
    //  detail, and counts it too (the client never retries).
    int events = ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                 ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                 (redial ? ZMQ_EVENT_HANDSHAKE_SUCCEEDED
                         : ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL);
    if (zmq_socket_monitor(sock, endpoint, events) ||
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
    curve_sync(self->curve);
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
    if (self->timer >= 0) {
        loop_cancel_timer(self->loop, self->timer);
    }
    zmq_socket_monitor(self->sock, NULL, 0);
    if (self->pair) {
        zmq_close(self->pair);
    }
    free(self->redials);
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
