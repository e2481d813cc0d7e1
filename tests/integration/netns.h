/*  netns.h - network namespaces for the integration tests

    One namespace per simulated host, named "PREFIX-PID-a", "-b", ...; the
    test builds its own links inside them (bridges, veths) through a
    callback. Each sidecar runs as `ip netns exec NS roomcastd ...`: a
    wrapper script per namespace is given to the harness as $ROOMCASTD,
    so the harness starts, tracks and kills it, while the test process
    stays in the root namespace and reaches each sidecar through its Unix
    socket, which network namespaces do not scope.

    Namespaces (with their links and qdiscs), the key and the wrappers are
    removed by netns_cleanup, at exit, on SIGTERM, SIGINT and SIGHUP, and
    when the harness deadline (SIGALRM) fires; on a signal the sidecars
    given to netns_prepare are killed and their files removed first.
    Everything that cleanup needs is set up by netns_prepare, before
    anything exists, so the signal path uses async-signal-safe calls only.
*/
#ifndef NETNS_H_INCLUDED
#define NETNS_H_INCLUDED

#include "harness.h"

#include <stdbool.h>
#include <stddef.h>

#define NETNS_MAX 8 // hosts

//  Names, paths and handlers for hosts namespaces "PREFIX-PID-<letter>";
//  sidecars (hosts of them, zeroed or in use) are killed on a signal.
//  Call once, first thing in main, after harness_deadline.
void netns_prepare(const char *prefix, int hosts, rcd_t *sidecars);

//  The name of namespace i.
const char *netns_name(int i);

//  The path of the ip binary (after netns_skip_if_unavailable).
const char *netns_ip_path(void);

//  Find NAME in the sbin and bin directories: out gets its path. Returns
//  false (out empty) when it is nowhere.
bool netns_find(char *out, size_t size, const char *name);

//  Run bin with argv, bounded (10 s). When quiet, only async-signal-safe
//  calls (cleanup path) and stderr goes nowhere; else stderr is kept in
//  err (may be NULL) and shown when the command fails. Returns the exit
//  status, or -1.
int netns_run(const char *bin, char *const *argv, bool quiet, char *err,
              size_t errlen);

//  ip ARGS... (NULL-terminated). Returns ip's exit status.
int netns_ip(const char *first, ...) __attribute__((sentinel));

//  Needs root and ip: create the namespaces, then make_links () builds
//  the links in them (returning false, ip having said why, to skip). When
//  anything fails, prints "skipped: needs root and ip netns (why)",
//  removes what was made and skips the cmocka test.
void netns_skip_if_unavailable(bool (*make_links)(void));

//  Make a temp dir DIR_PREFIX-XXXXXX with a cluster key and a wrapper per
//  namespace that runs $ROOMCASTD (or build/release/roomcastd) inside it.
//  Returns the key's path.
const char *netns_make_files(const char *dir_prefix);

//  The temp dir of netns_make_files (empty before and after cleanup).
const char *netns_dir(void);

//  Start sidecar d in namespace i (rcd_start through the wrapper).
//  Returns what rcd_start returns.
int netns_start(rcd_t *d, int i, const char *channel, const char *const *args);

//  Remove the namespaces and the files. Safe to call again.
void netns_cleanup(void);

#endif
