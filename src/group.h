/* group.h: group chats with no server, sans-I/O.
 *
 * Membership is a set of signed operations (create, add, remove, rename),
 * each naming the group, its author and a Lamport time.  Every member keeps
 * every operation it hears of and folds them in one order, (lamport, op
 * id): the same set gives the same members, owners and name everywhere,
 * whatever order the operations arrived in, whoever was offline.
 *
 * Messages are signed by their author and numbered per author (seq 1, 2,
 * ...); their id is derived from (group, author, seq), so a copy from any
 * member is recognised.  Each carries a Lamport time: every member shows
 * the group's history in (lamport, author, seq) order, which is the same
 * for all.  The author sends a message to every member present; when two
 * members meet they exchange a SYNC (how many operations, their hash, and
 * for each author the highest seq held without gaps) and each sends the
 * other what it lacks: an offline member catches up from the author or
 * from any member that holds the messages.
 *
 * The engine keeps the operations and the per-author counters in memory;
 * messages live in the caller's store (msg_put, msgs_after). */
#ifndef LC_GROUP_H
#define LC_GROUP_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "wire.h"

#define LC_GROUP_OPS_MAX 4096 /* operations kept per group */
#define LC_GROUPS_MAX 1024    /* groups known */

typedef struct {
  uint8_t key[LC_KEY_BYTES];
  int owner;
} lc__gmember;

typedef struct lc__group lc__group;

typedef struct {
  void *user;
  /* Sends a chat envelope to peer, reliably if it can (a peer that is
   * away may miss it: SYNC repairs that). */
  void (*send)(void *user, const uint8_t *peer, const uint8_t *env, size_t len);
  /* Keeps a new operation (returns 0, or < 0 to refuse it for now). */
  int (*op_put)(void *user, const uint8_t *group, const uint8_t *op,
                size_t len);
  /* Stores a message: 1 new, 0 had it already, < 0 cannot (refused; the
   * transport offers it again). */
  int (*msg_put)(void *user, const lc__gmsg_wire *m,
                 const uint8_t msg_id[LC_MSGID_BYTES], const uint8_t *blob,
                 size_t len);
  /* Calls each() with the stored messages of author in group whose seq is
   * above `after`, in seq order, at most max; returns how many. */
  int (*msgs_after)(void *user, const uint8_t *group, const uint8_t *author,
                    uint64_t after, size_t max,
                    void (*each)(void *ctx, const uint8_t *blob, size_t len),
                    void *ctx);
  /* The group's members or name changed, or it became known. */
  void (*changed)(void *user, const lc__group *g);
  /* Random bytes (NULL: the system's); the simulator passes its own. */
  void (*random)(void *user, void *buf, size_t len);
} lc__grp_io;

typedef struct lc__grp lc__grp;

lc__grp *lc__grp_new(const lc__identity *self, const lc__grp_io *io);
void lc__grp_free(lc__grp *e);

/* The groups known (whose CREATE we hold), by index. */
size_t lc__grp_count(const lc__grp *e);
const lc__group *lc__grp_at(const lc__grp *e, size_t i);
const lc__group *lc__grp_find(const lc__grp *e, const uint8_t *id);

/* What the fold says of a group. */
void lc__group_id(const lc__group *g, uint8_t id[LC_GROUP_ID_BYTES]);
const char *lc__group_name(const lc__group *g);
size_t lc__group_members(const lc__group *g, const lc__gmember **out);
int lc__group_is_member(const lc__group *g, const uint8_t *key);
/* 1 if key is or ever was a member (by the fold of the operations). */
int lc__group_was_member(const lc__group *g, const uint8_t *key);
size_t lc__group_nops(const lc__group *g);
void lc__group_ops_hash(const lc__group *g, uint8_t out[16]);
/* The highest seq of author held without gaps. */
uint64_t lc__group_have(const lc__group *g, const uint8_t *author);

/* A message's id: BLAKE2b-128 of (group, author, seq). */
void lc__grp_msg_id(const uint8_t *group, const uint8_t *author, uint64_t seq,
                    uint8_t out[LC_MSGID_BYTES]);

/* Loading what the store kept, at start (nothing is sent or reported). */
int lc__grp_load_op(lc__grp *e, const uint8_t *op, size_t len);
void lc__grp_load_msg(lc__grp *e, const uint8_t *group, const uint8_t *author,
                      uint64_t seq, uint64_t lamport);

/* Our actions.  Errors: LC_EINVAL (bad name, too many members, our own
 * key as a member), LC_ENOPEER (no such group), LC_ESTATE (we are not a
 * member; the member is one already or is not one), LC_ELIMIT, LC_ENOMEM,
 * or what op_put / msg_put returned. */
int lc__grp_create(lc__grp *e, const char *name,
                   const uint8_t (*members)[LC_KEY_BYTES], size_t n,
                   uint64_t now_ms, uint8_t id[LC_GROUP_ID_BYTES]);
int lc__grp_add(lc__grp *e, const uint8_t *group, const uint8_t *member,
                uint64_t now_ms);
/* Removes a member (owners only), or leaves when member is us. */
int lc__grp_remove(lc__grp *e, const uint8_t *group, const uint8_t *member,
                   uint64_t now_ms);
int lc__grp_rename(lc__grp *e, const uint8_t *group, const char *name,
                   uint64_t now_ms);
/* Stores and sends a message; msg_id (may be NULL) receives its id. */
int lc__grp_send(lc__grp *e, const uint8_t *group, const char *text, size_t len,
                 uint64_t now_ms, uint8_t msg_id[LC_MSGID_BYTES]);

/* The network: an envelope of kind GROUP_OP, GROUP_MSG or GROUP_SYNC from
 * peer.  Returns 0 (taken, or dropped and counted) or < 0 (msg_put could
 * not store it: refuse it so that it comes again). */
int lc__grp_recv(lc__grp *e, const uint8_t *peer, const lc__chat *c);
/* A peer is reachable (again): sends it a SYNC for each group we share. */
void lc__grp_peer_up(lc__grp *e, const uint8_t *peer, uint64_t now_ms);

typedef struct {
  uint64_t ops_in, ops_bad, msgs_in, msgs_bad, msgs_dup, syncs_in, ops_sent,
      msgs_sent;
} lc__grp_stats;
void lc__grp_stats_get(const lc__grp *e, lc__grp_stats *st);

#endif /* LC_GROUP_H */
