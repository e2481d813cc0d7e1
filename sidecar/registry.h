/*  registry: which local clients are in which topic, both ways.

    A topic is (namespace, topic). It exists while it has at least one
    member: the first join creates it and calls on_first, the last leave
    calls on_last and frees it (the mesh hangs its interest on these). Join
    and leave are idempotent. A member is any owner pointer (a connection);
    its registry_client_t, embedded in the owner, lists its memberships so
    closing a connection leaves every topic it held.

    Every operation is O(1) but leave_all, which is O(memberships of that
    client). Members of a topic are a dense array, so a fanout walks it
    without chasing pointers; a leave moves the last member into the place
    of the one that left (so a walk from the end survives a member leaving
    during its own turn).

    THREAD SAFETY: one thread.
*/
#ifndef RCD_REGISTRY_H
#define RCD_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct registry_t registry_t;
typedef struct registry_sub_t registry_sub_t;

typedef struct {
    char *key;                // wire_topic_key (ns, topic): unique
    const char *ns;           // borrowed from key storage
    const char *topic;        //
    size_t ns_len;            //
    size_t topic_len;         //
    registry_sub_t **members; // dense, count used
    size_t count;             //
    size_t cap;               //
    void *user;               // free for the mesh (interest state)
} registry_topic_t;

//  Embedded in each member (zeroed before the first join).
typedef struct {
    registry_sub_t *first; // memberships of this client
    size_t count;          //
    void *owner;           // what fanout delivers to
} registry_client_t;

typedef void(registry_hook_fn)(registry_topic_t *topic, void *arg);

registry_t *registry_new(void);
void registry_destroy(registry_t **self_p);

//  Hooks: on_first after a topic's first member joined, on_last before a
//  topic with no member left is freed.
void registry_set_hooks(registry_t *self, registry_hook_fn *on_first,
                        registry_hook_fn *on_last, void *arg);

//  Add client to (ns, topic). Returns 1 if it joined, 0 if it was already
//  a member, -1 with ENOMEM.
int registry_join(registry_t *self, registry_client_t *client, const char *ns,
                  size_t ns_len, const char *topic, size_t topic_len);
//  Remove client from (ns, topic). Returns 1 if it left, 0 if it was not
//  a member.
int registry_leave(registry_t *self, registry_client_t *client, const char *ns,
                   size_t ns_len, const char *topic, size_t topic_len);
//  Remove client from every topic.
void registry_leave_all(registry_t *self, registry_client_t *client);

//  The topic, or NULL when it has no member. Borrowed.
registry_topic_t *registry_lookup(registry_t *self, const char *ns,
                                  size_t ns_len, const char *topic,
                                  size_t topic_len);
//  Owner of the i-th member of topic.
void *registry_member(const registry_topic_t *topic, size_t i);

//  Number of topics and of memberships.
size_t registry_topics(const registry_t *self);
size_t registry_memberships(const registry_t *self);

//  Iterate the topics (no join or leave in between). NULL at the end.
registry_topic_t *registry_first(registry_t *self);
registry_topic_t *registry_next(registry_t *self);

#endif
