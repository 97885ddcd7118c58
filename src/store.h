/* store.h: the local history in SQLite: conversations, messages and their
 * states, the outbox of messages not yet delivered, full-text search.
 * store.c is the only file that includes sqlite3.h and the only place
 * that speaks SQL (prepared statements only, nothing pasted into SQL).
 *
 * One database file per node, in WAL mode, versioned with PRAGMA
 * user_version and migrated forward on open.  Calls are synchronous: a
 * commit in WAL mode with synchronous=NORMAL writes to the OS without
 * waiting for the disk, so it survives a crash of the process (not a power
 * cut, which may lose the last commits but never corrupts the file).
 */
#ifndef LC_STORE_H
#define LC_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "lanchat.h"

#define LC_STORE_SCHEMA 6 /* the schema version this code writes */

typedef struct lc__store lc__store;

/* A message as stored.  Strings are owned by whatever returned it. */
typedef struct {
  int64_t id; /* local order: larger is later */
  uint8_t msg_id[LC_MSGID_BYTES];
  uint8_t peer[LC_KEY_BYTES]; /* the conversation's peer */
  int outgoing;
  int kind;             /* LC_CHAT_TEXT */
  uint64_t sent_ms;     /* sender's clock */
  uint64_t received_ms; /* ours: when stored */
  int state;            /* lc_msg_state */
  uint64_t edited_ms;   /* 0 if never edited */
  int retracted;
  char *text; /* NUL-terminated */
  size_t text_len;
  /* group conversations: peer is the group's id, sender the author */
  int is_group;
  uint8_t sender[LC_KEY_BYTES];
  uint64_t lamport;
} lc__stored_msg;

typedef struct {
  uint8_t peer[LC_KEY_BYTES];
  int64_t unread;
  int has_last;
  lc__stored_msg last; /* the newest message, if has_last */
} lc__conversation;

/* path as one shell word, for the commands that error messages suggest:
 * path itself when it needs no quoting, else quoted in buf (cap bytes). */
const char *lc__store_shq(const char *path, char *buf, size_t cap);

/* Opens (creating if needed) the store at path and migrates it to
 * LC_STORE_SCHEMA.  A file that is not a lanchat history, damaged, or
 * written by a newer version is refused and left as it is.  Errors:
 * LC_ESTORE (the message, with what the user can do, in *errmsg if given,
 * freed with free()), LC_ENOMEM. */
int lc__store_open(lc__store **out, const char *path, char **errmsg);
void lc__store_close(lc__store *s);

/* Saves a message we send, in the outbox (state QUEUED), in one
 * transaction.  *id receives its local id.  Errors: LC_ESTORE, LC_EEXIST
 * (msg_id already stored). */
int lc__store_add_outgoing(lc__store *s, const uint8_t peer[LC_KEY_BYTES],
                           const uint8_t msg_id[LC_MSGID_BYTES],
                           uint64_t sent_ms, uint64_t now_ms, const char *text,
                           size_t len, int64_t *id);

/* Saves a message received (state DELIVERED, unread).  Returns 1 if it is
 * new (its local id in *id, if id is not NULL), 0 if that msg_id was
 * stored already (a retransmission: nothing changes), or LC_ESTORE. */
int lc__store_add_incoming(lc__store *s, const uint8_t peer[LC_KEY_BYTES],
                           const uint8_t msg_id[LC_MSGID_BYTES],
                           uint64_t sent_ms, uint64_t now_ms, const char *text,
                           size_t len, int64_t *id);

/* Moves a message forward: QUEUED < SENT < DELIVERED < READ (FAILED only
 * from QUEUED or SENT; QUEUED again from FAILED).  Reaching DELIVERED
 * takes it out of the outbox.  Returns 1 if it changed, 0 if not (already
 * there or further, or unknown), LC_ESTORE. */
/* Every QUEUED message in the peer's outbox with a local id in
 * (after_id, upto_id] becomes SENT, in one statement (a node hands its
 * outbox to the transport in runs). */
int lc__store_mark_sent(lc__store *s, const uint8_t peer[LC_KEY_BYTES],
                        int64_t after_id, int64_t upto_id);
int lc__store_set_state(lc__store *s, const uint8_t msg_id[LC_MSGID_BYTES],
                        int state);

/* The outbox for one peer (or every peer if peer is NULL), oldest first.
 * *out is an array of *count messages; free with lc__store_msgs_free. */
int lc__store_outbox(lc__store *s, const uint8_t *peer, lc__stored_msg **out,
                     size_t *count);

/* The same for one peer, only messages with a local id above after_id
 * (the ones not handed to the transport yet). */
int lc__store_outbox_after(lc__store *s, const uint8_t peer[LC_KEY_BYTES],
                           int64_t after_id, lc__stored_msg **out,
                           size_t *count);

/* Up to n messages of the conversation with peer older than before_id
 * (0: from the newest), newest first. */
int lc__store_page(lc__store *s, const uint8_t peer[LC_KEY_BYTES],
                   int64_t before_id, size_t n, lc__stored_msg **out,
                   size_t *count);
/* Up to n messages newer than after_id, oldest first (exports). */
int lc__store_page_after(lc__store *s, const uint8_t peer[LC_KEY_BYTES],
                         int64_t after_id, size_t n, lc__stored_msg **out,
                         size_t *count);
/* The same, stored before a time by our clock (received_ms < before_ms,
 * found by bisecting ids: exact while our clock only moved forward). */
int lc__store_page_before_time(lc__store *s, const uint8_t peer[LC_KEY_BYTES],
                               uint64_t before_ms, size_t n,
                               lc__stored_msg **out, size_t *count);

/* One message by msg_id.  Returns 1 and fills *out (free its text with
 * lc__store_msg_clear), 0 if unknown, or LC_ESTORE. */
int lc__store_get(lc__store *s, const uint8_t msg_id[LC_MSGID_BYTES],
                  lc__stored_msg *out);

/* Every conversation, the most recent first, with its newest message and
 * unread count. */
int lc__store_conversations(lc__store *s, lc__conversation **out,
                            size_t *count);
void lc__store_conversations_free(lc__conversation *c, size_t count);
int64_t lc__store_unread_total(lc__store *s);

/* Marks received messages of a conversation read: all of them
 * (up_to_id 0) or those with id <= up_to_id.  The msg_ids newly read go
 * to *ids (count *n; free with free()) so that receipts can be sent.
 * Returns the number marked, or LC_ESTORE. */
int lc__store_mark_read(lc__store *s, const uint8_t peer[LC_KEY_BYTES],
                        int64_t up_to_id, uint8_t (**ids)[LC_MSGID_BYTES],
                        size_t *n);

/* Full-text search (FTS5 syntax: words, "phrases", prefix*, AND/OR/NOT)
 * over message texts, in one conversation (peer) or all (NULL), newest
 * first, at most n.  Errors: LC_EINVAL (a query FTS5 cannot parse),
 * LC_ESTORE. */
int lc__store_search(lc__store *s, const uint8_t *peer, const char *query,
                     size_t n, lc__stored_msg **out, size_t *count);

/* Deletes one message (by local id) or a whole conversation, locally.
 * Returns 1 if something was deleted, 0 if not, LC_ESTORE. */
int lc__store_delete_message(lc__store *s, int64_t id);
int lc__store_delete_conversation(lc__store *s,
                                  const uint8_t peer[LC_KEY_BYTES]);

/* ---- edits and retractions ----
 * An edit replaces a message's text (edited_ms records when); a
 * retraction empties it and marks it retracted, for good. */

/* Changes one of our own messages (kind LC_CHAT_EDIT with text, or
 * LC_CHAT_RETRACT) and records the action, under its own transport id,
 * for the peer (*peer).  Returns 1, 0 if the message is unknown, not ours
 * or retracted already, or LC_ESTORE. */
int lc__store_change_own(lc__store *s, int kind,
                         const uint8_t target[LC_MSGID_BYTES],
                         const uint8_t action_id[LC_MSGID_BYTES],
                         uint64_t now_ms, const char *text, size_t len,
                         uint8_t peer[LC_KEY_BYTES]);

/* Applies a peer's change to a message it sent us.  Returns 1 if the
 * message changed, 0 if not (unknown, not from that peer, retracted, or
 * an older change than the last one applied), or LC_ESTORE. */
int lc__store_apply_change(lc__store *s, const uint8_t peer[LC_KEY_BYTES],
                           int kind, const uint8_t target[LC_MSGID_BYTES],
                           uint64_t sent_ms, const char *text, size_t len);

typedef struct {
  uint8_t peer[LC_KEY_BYTES];
  uint8_t action_id[LC_MSGID_BYTES];
  int kind;
  uint8_t target[LC_MSGID_BYTES];
  uint64_t sent_ms;
  char *text; /* EDIT: the new text */
  size_t text_len;
} lc__store_action;

/* The changes waiting for peer, oldest first. */
int lc__store_actions(lc__store *s, const uint8_t peer[LC_KEY_BYTES],
                      lc__store_action **out, size_t *count);
void lc__store_actions_free(lc__store_action *a, size_t count);
/* The peer has it: forget it.  Returns 1, 0 (unknown), LC_ESTORE. */
int lc__store_action_done(lc__store *s,
                          const uint8_t action_id[LC_MSGID_BYTES]);

/* ---- read receipts owed to peers (kept until confirmed) ---- */
int lc__store_receipts_add(lc__store *s, const uint8_t peer[LC_KEY_BYTES],
                           uint8_t (*ids)[LC_MSGID_BYTES], size_t n);
/* Up to max of the ids owed to peer, oldest first, into ids; returns how
 * many. */
int lc__store_receipts(lc__store *s, const uint8_t peer[LC_KEY_BYTES],
                       uint8_t (*ids)[LC_MSGID_BYTES], size_t max);
int lc__store_receipts_done(lc__store *s, uint8_t (*ids)[LC_MSGID_BYTES],
                            size_t n);

/* ---- contacts, trust and nickname pins ---- */

/* What we know of a peer as a contact.  state: 0 none, 1 we asked (a
 * request of ours waits for an answer), 2 it asked us, 3 friends.  trust:
 * 0 nothing said, 1 held (its nickname belonged to another key we know:
 * nothing goes to it until accepted), 2 accepted by the user. */
typedef struct {
  uint8_t peer[LC_KEY_BYTES];
  int state;
  int blocked;
  int trust;
  char nick[LC_NICK_MAX + 1];
  char note[1024 + 1]; /* a request's note (LC_CHAT_NOTE_MAX) */
  uint64_t changed_ms;
} lc__contact;

/* Returns 1 and fills *c, or 0 (c zeroed, its peer set) if unknown, or
 * LC_ESTORE. */
int lc__store_contact_get(lc__store *s, const uint8_t peer[LC_KEY_BYTES],
                          lc__contact *c);
/* Writes a contact (a row with nothing left in it is deleted). */
int lc__store_contact_put(lc__store *s, const lc__contact *c);
/* Every contact row, the most recently changed first. */
int lc__store_contacts(lc__store *s, lc__contact **out, size_t *count);
/* 1 if we have something to do with peer: a conversation, a contact state
 * or an accepted key; 0 if not; LC_ESTORE. */
int lc__store_related(lc__store *s, const uint8_t peer[LC_KEY_BYTES]);
/* The key a nickname was first seen with (among related peers): 1 with
 * *peer, 0 if none, LC_ESTORE. */
int lc__store_pin_get(lc__store *s, const char *nick,
                      uint8_t peer[LC_KEY_BYTES]);
int lc__store_pin_set(lc__store *s, const char *nick,
                      const uint8_t peer[LC_KEY_BYTES], uint64_t now_ms);
/* Writes a contact and, if action_id is not NULL, queues the CONTACT
 * action op (with note) for it, in one transaction. */
int lc__store_contact_change(lc__store *s, const lc__contact *c,
                             const uint8_t *action_id, int op, const char *note,
                             uint64_t now_ms);
/* Queues an action for peer (kind LC_CHAT_CONTACT: target[0] is the op,
 * text the note), sent after its messages until its node has it. */
int lc__store_action_add(lc__store *s, const uint8_t peer[LC_KEY_BYTES],
                         const uint8_t action_id[LC_MSGID_BYTES], int kind,
                         const uint8_t target[LC_MSGID_BYTES], uint64_t sent_ms,
                         const char *text, size_t len);

/* ---- groups ---- */

/* Keeps one of a group's operations. */
int lc__store_group_op_add(lc__store *s, const uint8_t group[LC_KEY_BYTES],
                           const uint8_t *op, size_t len);
/* Calls each() with every operation kept, oldest first. */
int lc__store_group_ops(lc__store *s,
                        void (*each)(void *ctx, const uint8_t *op, size_t len),
                        void *ctx);
/* Stores a group message (its signed envelope too, to pass it on): in the
 * group's conversation (created if new), sender author, outgoing if it is
 * ours.  Returns 1 new, 0 held already (by group, author, seq), LC_ESTORE.
 * *id receives its local id when new. */
int lc__store_group_msg_add(lc__store *s, const uint8_t group[LC_KEY_BYTES],
                            const uint8_t msg_id[LC_MSGID_BYTES],
                            const uint8_t author[LC_KEY_BYTES], int outgoing,
                            uint64_t seq, uint64_t lamport, uint64_t sent_ms,
                            uint64_t now_ms, const char *text, size_t len,
                            const uint8_t *env, size_t env_len, int64_t *id);
/* The envelopes of author in group with seq above after, by seq, at most
 * max. */
int lc__store_group_msgs_after(
    lc__store *s, const uint8_t group[LC_KEY_BYTES],
    const uint8_t author[LC_KEY_BYTES], uint64_t after, size_t max,
    void (*each)(void *ctx, const uint8_t *env, size_t len), void *ctx);
/* Calls each() with (group, author, seq, lamport) of every group message
 * held (to rebuild the counters at start). */
int lc__store_group_seqs(lc__store *s,
                         void (*each)(void *ctx, const uint8_t *group,
                                      const uint8_t *author, uint64_t seq,
                                      uint64_t lamport),
                         void *ctx);

/* ---- messages carried for others (relays) ---- */

/* Keeps a sealed box for recipient (from: who handed it to us).  Returns 1
 * new, 0 held already (by msg_id), LC_ESTORE. */
int lc__store_relay_add(lc__store *s, const uint8_t recipient[LC_KEY_BYTES],
                        const uint8_t msg_id[LC_MSGID_BYTES],
                        const uint8_t from[LC_KEY_BYTES], uint64_t expires_ms,
                        const uint8_t *box, size_t len);
/* Calls each() with the boxes held for recipient. */
int lc__store_relays_for(lc__store *s, const uint8_t recipient[LC_KEY_BYTES],
                         void (*each)(void *ctx, const uint8_t *msg_id,
                                      uint64_t expires_ms, const uint8_t *box,
                                      size_t len),
                         void *ctx);
/* The recipient has it: forget it.  1, 0 (unknown), LC_ESTORE. */
int lc__store_relay_done(lc__store *s, const uint8_t msg_id[LC_MSGID_BYTES]);
/* Drops the boxes expired at now_ms; returns how many, or LC_ESTORE. */
int lc__store_relay_purge(lc__store *s, uint64_t now_ms);
/* How many boxes are held (>= 0), or LC_ESTORE. */
int64_t lc__store_relay_count(lc__store *s);

/* ---- file transfers ----
 * A transfer's row and one row per file; its offer is a message (kind
 * LC_CHAT_FILE) of the conversation, its text a summary. */
typedef struct {
  char *path; /* relative, as offered (NUL-terminated) */
  size_t path_len;
  uint64_t size;
  char *local; /* sender: the source; receiver: the final path (or NULL) */
  int has_hash;
  uint8_t hash[32]; /* the sender's hash of the file */
  int has_mine;
  uint8_t mine[32]; /* receiver: the hash of what arrived */
  int verified;
} lc__xfer_file;

typedef struct {
  int64_t rowid;
  uint8_t id[LC_MSGID_BYTES]; /* the offer's msg_id */
  uint8_t peer[LC_KEY_BYTES];
  int outgoing, kind, state, err, by_peer;
  int told; /* 0: our last word (decline, cancel, done) waits for the
               peer's node to confirm it */
  uint64_t total, pos, duration_ms, created_ms;
  char *name; /* what to show */
  char *dir;  /* receiver: the hidden folder the files are written in */
  size_t nfiles;
  lc__xfer_file *files;
} lc__xfer_row;

/* Stores a transfer and its offer (text: the summary) in one
 * transaction: ours in the outbox (QUEUED), or one received (DELIVERED,
 * unread).  Returns 1 if new (*local_id: the message's local id), 0 for an
 * offer received again, LC_EEXIST (ours: the id is taken), LC_EINVAL,
 * LC_ESTORE. */
int lc__store_xfer_add(lc__store *s, const lc__xfer_row *x, uint64_t sent_ms,
                       const char *summary, size_t len, int64_t *local_id);
/* Writes state, err, by_peer, told, pos and dir. */
int lc__store_xfer_update(lc__store *s, const lc__xfer_row *x);
/* Writes a file's local, hash, mine and verified. */
int lc__store_xfer_file_update(lc__store *s, const uint8_t id[LC_MSGID_BYTES],
                               size_t idx, const lc__xfer_file *f);
/* 1 and *out (free with lc__store_xfer_clear), 0 if unknown, or an
 * error. */
int lc__store_xfer_get(lc__store *s, const uint8_t id[LC_MSGID_BYTES],
                       lc__xfer_row *out);
/* which: 0 all, 1 offered or accepted, 2 those and the ones whose last
 * word is not confirmed yet; newest first. */
int lc__store_xfers(lc__store *s, int which, lc__xfer_row **out, size_t *count);
void lc__store_xfer_clear(lc__xfer_row *x);
void lc__store_xfers_free(lc__xfer_row *x, size_t count);

/* Checks the whole file and the full-text index against the messages.
 * 0 if sound, LC_ESTORE if not. */
int lc__store_check(lc__store *s);

void lc__store_msg_clear(lc__stored_msg *m);
void lc__store_msgs_free(lc__stored_msg *m, size_t count);

/* Checkpoints elsewhere: the store no longer copies its log into the file
 * (and flushes it) inside a commit; instead, after a commit that leaves
 * the log at `pages` pages or more, due(ctx, pages) runs, and the caller
 * runs lc__store_checkpoint on another thread (or lc__store_checkpoint_now
 * here, when that falls behind). */
void lc__store_external_checkpoints(lc__store *s, int pages,
                                    void (*due)(void *ctx, int pages),
                                    void *ctx);
/* Thread-safe and blocking: copies what it can of the log of the store
 * file at path into the file, on a connection of its own, and flushes it;
 * never waits for the store's writer.  Returns 0 or LC_ESTORE. */
int lc__store_checkpoint(const char *path);
int lc__store_checkpoint_now(lc__store *s);

/* Runs several calls as one transaction (one commit, for batches).
 * Batches nest: the outermost commit commits.  Inside a batch a call that
 * fails on what it is given (a message id taken) leaves nothing of itself;
 * one that fails on the disk leaves the batch to fail; a commit that fails
 * rolls the whole batch back (LC_ESTORE). */
int lc__store_begin(lc__store *s);
int lc__store_commit(lc__store *s);
int lc__store_in_batch(const lc__store *s);

#endif /* LC_STORE_H */
