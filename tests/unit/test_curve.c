/*  curve: key pairs, endpoint@key parsing, and sockets that fail closed. */
#include "curve.h"

#include <czmq.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

typedef struct {
    char dir[64];
    char server[128], client[128], stranger[128];
} fx_t;

static int s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/roomcast-curve-test-XXXXXX");
    if (!mkdtemp(fx->dir)) {
        return -1;
    }
    snprintf(fx->server, sizeof fx->server, "%s/server", fx->dir);
    snprintf(fx->client, sizeof fx->client, "%s/client", fx->dir);
    snprintf(fx->stranger, sizeof fx->stranger, "%s/stranger", fx->dir);
    char err[256];
    if (curve_generate(fx->server, err, sizeof err) ||
        curve_generate(fx->client, err, sizeof err) ||
        curve_generate(fx->stranger, err, sizeof err)) {
        return -1;
    }
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    fx_t *fx = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", fx->dir);
    int rc = system(cmd);
    free(fx);
    return rc == 0 ? 0 : -1;
}

static char *s_secret(const char *path, char *out, size_t size)
{
    snprintf(out, size, "%s_secret", path);
    return out;
}

static void test_generate_writes_a_pair_and_never_overwrites(void **state)
{
    fx_t *fx = *state;
    char secret[160], err[256];
    struct stat st;
    assert_int_equal(stat(s_secret(fx->server, secret, sizeof secret), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(fx->server, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    assert_int_equal(curve_generate(fx->server, err, sizeof err), -1);
    assert_non_null(strstr(err, "refusing to overwrite"));
}

static void test_secret_open_to_others_is_refused(void **state)
{
    fx_t *fx = *state;
    char secret[160], err[256];
    s_secret(fx->stranger, secret, sizeof secret);
    chmod(secret, 0644);
    assert_null(curve_new(secret, NULL, fx->dir, err, sizeof err));
    assert_non_null(strstr(err, "chmod 600"));
    chmod(secret, 0600);
    //  the public half is not a secret certificate
    assert_null(curve_new(fx->stranger, NULL, fx->dir, err, sizeof err));
}

static void test_split_endpoint_and_key(void **state)
{
    (void)state;
    char ep[128];
    uint8_t key[CURVE_KEY_SIZE];
    assert_int_equal(curve_split("tcp://h:1", ep, sizeof ep, key), 0);
    assert_string_equal(ep, "tcp://h:1");
    zcert_t *c = zcert_new();
    char spec[200];
    snprintf(spec, sizeof spec, "tcp://h:1@%s", zcert_public_txt(c));
    assert_int_equal(curve_split(spec, ep, sizeof ep, key), 1);
    assert_string_equal(ep, "tcp://h:1");
    assert_memory_equal(key, zcert_public_key(c), CURVE_KEY_SIZE);
    zcert_destroy(&c);
    assert_int_equal(curve_split("tcp://h:1@short", ep, sizeof ep, key), -1);
}

//  A server admits a client whose key it was told, refuses a stranger,
//  and, with no ZAP handler in its context at all, refuses everyone.
//  (One ZAP handler per context: the clients here are bare certificates.)
static bool s_receives(void *ctx, const char *endpoint, zcert_t *client,
                       const uint8_t *server_key, void *xpub)
{
    void *sub = zmq_socket(ctx, ZMQ_SUB);
    int linger = 0;
    zmq_setsockopt(sub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0);
    zcert_apply(client, sub);
    zmq_setsockopt(sub, ZMQ_CURVE_SERVERKEY, server_key, CURVE_KEY_SIZE);
    assert_int_equal(zmq_connect(sub, endpoint), 0);
    bool got = false;
    for (int i = 0; i < 100 && !got; i++) { // up to 1 s
        zmq_send(xpub, "x", 1, ZMQ_DONTWAIT);
        char buf[8];
        zmq_pollitem_t item = {sub, 0, ZMQ_POLLIN, 0};
        zmq_poll(&item, 1, 10);
        got = zmq_recv(sub, buf, sizeof buf, ZMQ_DONTWAIT) > 0;
        uint8_t tmp[64];
        (void)zmq_recv(xpub, tmp, sizeof tmp, ZMQ_DONTWAIT); // subscriptions
    }
    zmq_close(sub);
    return got;
}

static void
test_only_admitted_keys_connect_and_no_handler_fails_closed(void **state)
{
    fx_t *fx = *state;
    char err[256], secret[160];
    curve_t *server = curve_new(s_secret(fx->server, secret, sizeof secret),
                                NULL, fx->dir, err, sizeof err);
    zcert_t *client = zcert_load(s_secret(fx->client, secret, sizeof secret));
    zcert_t *stranger =
        zcert_load(s_secret(fx->stranger, secret, sizeof secret));
    assert_non_null(server);
    assert_non_null(client);
    assert_non_null(stranger);
    assert_int_equal(curve_admit(server, zcert_public_key(client), "client"),
                     0);

    void *ctx = zsys_init(); // where the server's zauth lives
    void *xpub = zmq_socket(ctx, ZMQ_XPUB);
    int linger = 0;
    zmq_setsockopt(xpub, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(curve_server(server, xpub), 0);
    assert_int_equal(zmq_bind(xpub, "tcp://127.0.0.1:*"), 0);
    char endpoint[64];
    size_t len = sizeof endpoint;
    zmq_getsockopt(xpub, ZMQ_LAST_ENDPOINT, endpoint, &len);
    assert_true(s_receives(ctx, endpoint, client, curve_public(server), xpub));
    assert_false(
        s_receives(ctx, endpoint, stranger, curve_public(server), xpub));
    zmq_close(xpub);

    //  the same server settings in a context with no ZAP handler
    void *bare = zmq_ctx_new();
    xpub = zmq_socket(bare, ZMQ_XPUB);
    zmq_setsockopt(xpub, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(curve_server(server, xpub), 0);
    assert_int_equal(zmq_bind(xpub, "tcp://127.0.0.1:*"), 0);
    len = sizeof endpoint;
    zmq_getsockopt(xpub, ZMQ_LAST_ENDPOINT, endpoint, &len);
    assert_false(
        s_receives(bare, endpoint, client, curve_public(server), xpub));
    zmq_close(xpub);
    zmq_ctx_term(bare);

    curve_destroy(&server);
    curve_destroy(&server); // twice is safe
    zcert_destroy(&client);
    zcert_destroy(&stranger);
}

//  A key pair made at start: no file, a new pair each time.
static void test_key_pair_made_at_start(void **state)
{
    fx_t *fx = *state;
    char err[256];
    uint8_t first[CURVE_KEY_SIZE];
    //  one at a time: one ZAP handler per context
    curve_t *c = curve_new(NULL, NULL, fx->dir, err, sizeof err);
    assert_non_null(c);
    assert_true(curve_ephemeral(c));
    assert_int_equal(strlen(curve_public_z85(c)), 40);
    memcpy(first, curve_public(c), CURVE_KEY_SIZE);
    curve_destroy(&c);
    c = curve_new("", NULL, fx->dir, err, sizeof err);
    assert_non_null(c);
    assert_memory_not_equal(first, curve_public(c), CURVE_KEY_SIZE);
    curve_destroy(&c);
}

//  zcertstore notices a change by the directory's newest mtime (seconds),
//  file count and total size: one key forgotten and another admitted in
//  the same second look like no change. After curve_sync, zauth admits
//  exactly the new set.
static void test_sync_sees_a_swap_in_the_same_second(void **state)
{
    fx_t *fx = *state;
    char err[256], secret[160];
    curve_t *server = curve_new(NULL, NULL, fx->dir, err, sizeof err);
    zcert_t *client = zcert_load(s_secret(fx->client, secret, sizeof secret));
    zcert_t *stranger =
        zcert_load(s_secret(fx->stranger, secret, sizeof secret));
    assert_non_null(server);
    void *ctx = zsys_init();
    void *xpub = zmq_socket(ctx, ZMQ_XPUB);
    int linger = 0;
    zmq_setsockopt(xpub, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(curve_server(server, xpub), 0);
    assert_int_equal(zmq_bind(xpub, "tcp://127.0.0.1:*"), 0);
    char endpoint[64];
    size_t len = sizeof endpoint;
    zmq_getsockopt(xpub, ZMQ_LAST_ENDPOINT, endpoint, &len);
    assert_int_equal(curve_admit(server, zcert_public_key(client), "m1"), 0);
    curve_sync(server);
    assert_true(s_receives(ctx, endpoint, client, curve_public(server), xpub));
    //  the member restarts with a new key: old forgotten, new admitted
    assert_int_equal(curve_forget(server, zcert_public_key(client)), 0);
    assert_int_equal(curve_admit(server, zcert_public_key(stranger), "m2"), 0);
    curve_sync(server);
    assert_false(s_receives(ctx, endpoint, client, curve_public(server), xpub));
    assert_true(
        s_receives(ctx, endpoint, stranger, curve_public(server), xpub));
    zmq_close(xpub);
    curve_destroy(&server);
    zcert_destroy(&client);
    zcert_destroy(&stranger);
}

int main(void)
{
    zsys_handler_set(NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_writes_a_pair_and_never_overwrites),
        cmocka_unit_test(test_secret_open_to_others_is_refused),
        cmocka_unit_test(test_split_endpoint_and_key),
        cmocka_unit_test(
            test_only_admitted_keys_connect_and_no_handler_fails_closed),
        cmocka_unit_test(test_key_pair_made_at_start),
        cmocka_unit_test(test_sync_sees_a_swap_in_the_same_second),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
