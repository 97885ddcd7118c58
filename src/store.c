/* store.c: the local history on SQLite (see store.h).  The only file that
 * includes sqlite3.h.  Every statement is prepared once at open and reused;
 * values are bound, never pasted into SQL. */
#include "store.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

/* ---- schema -------------------------------------------------------------
 * Migrations run in order from the file's user_version; each is one
 * transaction.  A later release appends to this list, never edits it. */
static const char *const store_migrations[] = {
    /* 1: conversations, messages, outbox, full-text index.  Message ids
     * are never reused (AUTOINCREMENT): the full-text index is built in
     * bulk at each commit for the ids above meta.fts_indexed, which is
     * many times faster than a trigger per row. */
    "CREATE TABLE conversations ("
    "  id INTEGER PRIMARY KEY,"
    "  peer BLOB NOT NULL UNIQUE,"
    "  last_msg INTEGER,"
    "  unread INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE messages ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  msg_id BLOB NOT NULL UNIQUE,"
    "  conv INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,"
    "  outgoing INTEGER NOT NULL,"
    "  kind INTEGER NOT NULL,"
    "  sent_ms INTEGER NOT NULL,"
    "  received_ms INTEGER NOT NULL,"
    "  state INTEGER NOT NULL,"
    "  edited_ms INTEGER NOT NULL DEFAULT 0,"
    "  retracted INTEGER NOT NULL DEFAULT 0,"
    "  body TEXT NOT NULL);"
    "CREATE INDEX messages_by_conv ON messages(conv, id);"

    "CREATE TABLE outbox ("
    "  msg INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,"
    "  peer BLOB NOT NULL);"
    "CREATE INDEX outbox_by_peer ON outbox(peer, msg);"
    /* edits and retractions of our messages, until the peer has them */
    "CREATE TABLE actions ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  peer BLOB NOT NULL,"
    "  action_id BLOB NOT NULL UNIQUE,"
    "  kind INTEGER NOT NULL,"
    "  target BLOB NOT NULL,"
    "  sent_ms INTEGER NOT NULL,"
    "  body TEXT NOT NULL);"
    "CREATE INDEX actions_by_peer ON actions(peer, id);"
    /* read receipts owed to peers, until their transport confirms */
    "CREATE TABLE receipts ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  peer BLOB NOT NULL,"
    "  msg_id BLOB NOT NULL UNIQUE);"
    "CREATE INDEX receipts_by_peer ON receipts(peer, id);"
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "INSERT INTO meta VALUES ('fts_indexed', 0);"
    "CREATE VIRTUAL TABLE messages_fts USING fts5("
    "  body, content='messages', content_rowid='id');"
    /* merge index segments less eagerly than the default 4 (storing in
     * batches is a few percent faster; a search reads a few more) */
    "INSERT INTO messages_fts(messages_fts, rank) VALUES ('automerge', 8);"
    /* the unread count and the newest message follow the messages */

    "CREATE TRIGGER messages_del AFTER DELETE ON messages BEGIN"
    "  UPDATE conversations SET"
    "    unread = unread - (old.outgoing = 0 AND old.state < 4 AND old.id <="
    "      (SELECT value FROM meta WHERE key = 'fts_indexed')),"
    "    last_msg = (SELECT max(id) FROM messages WHERE conv = old.conv)"
    "    WHERE id = old.conv;"
    "END;"
    /* only a row already indexed has index entries to remove */
    "CREATE TRIGGER messages_del_fts AFTER DELETE ON messages"
    "  WHEN old.id <= (SELECT value FROM meta WHERE key = 'fts_indexed')"
    "  BEGIN"
    "  INSERT INTO messages_fts(messages_fts, rowid, body)"
    "    VALUES ('delete', old.id, old.body);"
    "END;"
    "CREATE TRIGGER messages_read AFTER UPDATE OF state ON messages"
    "  WHEN new.outgoing = 0 AND old.state < 4 AND new.state >= 4"
    "  AND new.id <= (SELECT value FROM meta WHERE key = 'fts_indexed')"
    "  BEGIN"
    "  UPDATE conversations SET unread = unread - 1 WHERE id = new.conv;"
    "END;"
    "CREATE TRIGGER messages_body AFTER UPDATE OF body ON messages"
    "  WHEN old.id <= (SELECT value FROM meta WHERE key = 'fts_indexed')"
    "  BEGIN"
    "  INSERT INTO messages_fts(messages_fts, rowid, body)"
    "    VALUES ('delete', old.id, old.body);"
    "  INSERT INTO messages_fts(rowid, body) VALUES (new.id, new.body);"
    "END;",

    /* 2: contacts (friend requests, friends, blocked peers, held keys) and
     * the key each nickname was first seen with */
    "CREATE TABLE contacts ("
    "  peer BLOB PRIMARY KEY,"
    "  state INTEGER NOT NULL DEFAULT 0,"
    "  blocked INTEGER NOT NULL DEFAULT 0,"
    "  trust INTEGER NOT NULL DEFAULT 0,"
    "  nick TEXT NOT NULL DEFAULT '',"
    "  note TEXT NOT NULL DEFAULT '',"
    "  changed_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE pins ("
    "  nick TEXT PRIMARY KEY,"
    "  peer BLOB NOT NULL,"
    "  since_ms INTEGER NOT NULL);",

    /* 3: group chats.  A group's conversation is keyed by the group's id;
     * its messages name their sender and carry the group's Lamport time,
     * by which every member orders them alike.  group_msgs keeps each
     * message's signed envelope (to pass it on to members that lack it),
     * even after the message itself is deleted here. */
    "ALTER TABLE conversations ADD COLUMN is_group INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE messages ADD COLUMN sender BLOB;"
    "ALTER TABLE messages ADD COLUMN lamport INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX messages_by_lamport ON messages(conv, lamport, sender)"
    "  WHERE sender IS NOT NULL;"
    "CREATE TABLE group_ops ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  grp BLOB NOT NULL,"
    "  body BLOB NOT NULL);"
    "CREATE TABLE group_msgs ("
    "  grp BLOB NOT NULL,"
    "  author BLOB NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  lamport INTEGER NOT NULL,"
    "  envelope BLOB NOT NULL,"
    "  PRIMARY KEY (grp, author, seq));",

    /* 4: messages we carry for a recipient who is away, sealed to it */
    "CREATE TABLE relays ("
    "  msg_id BLOB PRIMARY KEY,"
    "  recipient BLOB NOT NULL,"
    "  from_peer BLOB NOT NULL,"
    "  expires_ms INTEGER NOT NULL,"
    "  box BLOB NOT NULL);"
    "CREATE INDEX relays_by_recipient ON relays(recipient);",

    /* 5: file transfers; the offer is a message (kind FILE) too */
    "CREATE TABLE transfers ("
    "  id INTEGER PRIMARY KEY,"
    "  msg_id BLOB NOT NULL UNIQUE,"
    "  peer BLOB NOT NULL,"
    "  outgoing INTEGER NOT NULL,"
    "  kind INTEGER NOT NULL,"
    "  state INTEGER NOT NULL,"
    "  err INTEGER NOT NULL DEFAULT 0,"
    "  by_peer INTEGER NOT NULL DEFAULT 0,"
    "  told INTEGER NOT NULL DEFAULT 1,"
    "  total INTEGER NOT NULL,"
    "  pos INTEGER NOT NULL DEFAULT 0,"
    "  duration_ms INTEGER NOT NULL DEFAULT 0,"
    "  created_ms INTEGER NOT NULL,"
    "  name TEXT NOT NULL,"
    "  dir TEXT);"
    "CREATE TABLE transfer_files ("
    "  xfer INTEGER NOT NULL REFERENCES transfers(id) ON DELETE CASCADE,"
    "  idx INTEGER NOT NULL,"
    "  path TEXT NOT NULL,"
    "  size INTEGER NOT NULL,"
    "  local TEXT,"
    "  hash BLOB,"
    "  mine BLOB,"
    "  verified INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (xfer, idx)) WITHOUT ROWID;",

    /* 6: the full-text index follows the messages in batches of
     * STORE_FTS_BATCH (and before every search), no longer at every commit
     * (a third of a single message's commit); meta.summed marks what the
     * conversations' unread counts include, meta.fts_indexed what the
     * index holds. */
    "INSERT INTO meta VALUES ('summed',"
    "  (SELECT value FROM meta WHERE key = 'fts_indexed'));"
    "DROP TRIGGER messages_del;"
    "CREATE TRIGGER messages_del AFTER DELETE ON messages BEGIN"
    "  UPDATE conversations SET"
    "    unread = unread - (old.outgoing = 0 AND old.state < 4 AND old.id <="
    "      (SELECT value FROM meta WHERE key = 'summed')),"
    "    last_msg = (SELECT max(id) FROM messages WHERE conv = old.conv)"
    "    WHERE id = old.conv;"
    "END;"
    "DROP TRIGGER messages_read;"
    "CREATE TRIGGER messages_read AFTER UPDATE OF state ON messages"
    "  WHEN new.outgoing = 0 AND old.state < 4 AND new.state >= 4"
    "  AND new.id <= (SELECT value FROM meta WHERE key = 'summed')"
    "  BEGIN"
    "  UPDATE conversations SET unread = unread - 1 WHERE id = new.conv;"
    "END;",
};

#define STORE_NMIGRATIONS                                                      \
  ((int)(sizeof store_migrations / sizeof store_migrations[0]))

_Static_assert(STORE_NMIGRATIONS == LC_STORE_SCHEMA,
               "one migration per schema version");

#define MSG_COLS                                                               \
  "m.id, m.msg_id, c.peer, m.outgoing, m.kind, m.sent_ms, m.received_ms, "     \
  "m.state, m.edited_ms, m.retracted, m.body, c.is_group, m.sender, "          \
  "m.lamport"

#define XFER_COLS                                                              \
  "id, msg_id, peer, outgoing, kind, state, err, by_peer, told, total, pos, "  \
  "duration_ms, created_ms, name, dir"

enum {
  Q_CONV_GET,
  Q_CONV_ADD,
  Q_MSG_ADD,
  Q_OUTBOX_ADD,
  Q_OUTBOX_DEL,
  Q_STATE_GET,
  Q_STATE_SET,
  Q_OUTBOX_ALL,
  Q_OUTBOX_PEER,
  Q_PAGE,
  Q_PAGE_TIME,
  Q_PAGE_AFTER,
  Q_GET,
  Q_CONVS,
  Q_UNREAD,
  Q_READ_LIST,
  Q_READ_SET,
  Q_SEARCH_ALL,
  Q_SEARCH_CONV,
  Q_DEL_MSG,
  Q_DEL_CONV,
  Q_MSG_ROW,
  Q_EDIT,
  Q_RETRACT,
  Q_ACTION_ADD,
  Q_ACTION_DEL,
  Q_ACTIONS,
  Q_RCPT_ADD,
  Q_RCPT_LIST,
  Q_RCPT_DEL,
  Q_RELAY_ADD,
  Q_RELAYS_FOR,
  Q_RELAY_DEL,
  Q_RELAY_PURGE,
  Q_RELAY_COUNT,
  Q_CONV_GROUP,
  Q_IS_GROUP,
  Q_PAGE_GROUP,
  Q_GOP_ADD,
  Q_GOPS,
  Q_GMSG_ADD,
  Q_GMSG_MSG,
  Q_GMSGS_AFTER,
  Q_GSEQS,
  Q_CONTACT_GET,
  Q_CONTACT_PUT,
  Q_CONTACT_DEL,
  Q_CONTACTS,
  Q_RELATED,
  Q_PIN_GET,
  Q_PIN_SET,
  Q_CONV_SUM,
  Q_FTS_INDEX,
  Q_FTS_MARK,
  Q_XFER_ADD,
  Q_XFER_FILE_ADD,
  Q_XFER_SET,
  Q_XFER_FILE_SET,
  Q_XFER_GET,
  Q_XFER_LIST,
  Q_XFER_FILES,
  Q_BEGIN,
  Q_COMMIT,
  Q_ROLLBACK,
  Q_SUM_MARK,
  Q_MARK_SENT,
  Q_COUNT
};

static const char *const store_sql[Q_COUNT] = {
    [Q_CONV_GET] = "SELECT id FROM conversations WHERE peer = ?1",
    [Q_CONV_ADD] = "INSERT INTO conversations(peer) VALUES (?1)",
    [Q_MSG_ADD] = "INSERT INTO messages(msg_id, conv, outgoing, kind, sent_ms,"
                  " received_ms, state, body) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
    [Q_OUTBOX_ADD] = "INSERT INTO outbox(msg, peer) VALUES (?1, ?2)",
    [Q_OUTBOX_DEL] = "DELETE FROM outbox WHERE msg = ?1",
    [Q_STATE_GET] = "SELECT id, state FROM messages WHERE msg_id = ?1",
    [Q_STATE_SET] = "UPDATE messages SET state = ?2 WHERE id = ?1",
    [Q_MARK_SENT] = "UPDATE messages SET state = 2 WHERE state = 1 AND id IN"
                    " (SELECT msg FROM outbox WHERE peer = ?1 AND msg > ?2"
                    " AND msg <= ?3)",
    [Q_OUTBOX_ALL] = "SELECT " MSG_COLS " FROM outbox o"
                     " JOIN messages m ON m.id = o.msg"
                     " JOIN conversations c ON c.id = m.conv ORDER BY o.msg",
    [Q_OUTBOX_PEER] = "SELECT " MSG_COLS " FROM outbox o"
                      " JOIN messages m ON m.id = o.msg"
                      " JOIN conversations c ON c.id = m.conv"
                      " WHERE o.peer = ?1 AND o.msg > ?2 ORDER BY o.msg",
    [Q_PAGE] = "SELECT " MSG_COLS " FROM messages m"
               " JOIN conversations c ON c.id = m.conv"
               " WHERE c.peer = ?1 AND m.id < ?2 ORDER BY m.id DESC LIMIT ?3",
    [Q_PAGE_TIME] = "SELECT id, received_ms FROM messages WHERE id >= ?1"
                    " ORDER BY id LIMIT 1",
    [Q_PAGE_AFTER] = "SELECT " MSG_COLS " FROM messages m"
                     " JOIN conversations c ON c.id = m.conv"
                     " WHERE c.peer = ?1 AND m.id > ?2 ORDER BY m.id LIMIT ?3",
    [Q_GET] = "SELECT " MSG_COLS " FROM messages m"
              " JOIN conversations c ON c.id = m.conv WHERE m.msg_id = ?1",
    [Q_CONVS] = "SELECT c.peer, c.unread, " MSG_COLS " FROM conversations c"
                " LEFT JOIN messages m ON m.id = c.last_msg"
                " ORDER BY c.last_msg IS NULL, c.last_msg DESC",
    [Q_UNREAD] = "SELECT coalesce(sum(unread), 0) FROM conversations",
    [Q_READ_LIST] = "SELECT m.id, m.msg_id FROM messages m"
                    " JOIN conversations c ON c.id = m.conv"
                    " WHERE c.peer = ?1 AND m.outgoing = 0 AND m.state < 4"
                    " AND (?2 = 0 OR m.id <= ?2) ORDER BY m.id",
    [Q_READ_SET] = "UPDATE messages SET state = 4 WHERE id = ?1 AND state < 4",
    [Q_SEARCH_ALL] = "SELECT " MSG_COLS " FROM messages_fts f"
                     " JOIN messages m ON m.id = f.rowid"
                     " JOIN conversations c ON c.id = m.conv"
                     " WHERE messages_fts MATCH ?1 AND m.retracted = 0"
                     " ORDER BY f.rowid DESC LIMIT ?2",
    [Q_SEARCH_CONV] = "SELECT " MSG_COLS " FROM messages_fts f"
                      " JOIN messages m ON m.id = f.rowid"
                      " JOIN conversations c ON c.id = m.conv"
                      " WHERE messages_fts MATCH ?1 AND c.peer = ?3"
                      " AND m.retracted = 0 ORDER BY f.rowid DESC LIMIT ?2",
    [Q_DEL_MSG] = "DELETE FROM messages WHERE id = ?1",
    [Q_DEL_CONV] = "DELETE FROM conversations WHERE peer = ?1",
    [Q_MSG_ROW] = "SELECT m.id, m.outgoing, m.retracted, m.edited_ms, c.peer"
                  " FROM messages m JOIN conversations c ON c.id = m.conv"
                  " WHERE m.msg_id = ?1",
    [Q_EDIT] = "UPDATE messages SET body = ?2, edited_ms = ?3 WHERE id = ?1",
    [Q_RETRACT] = "UPDATE messages SET body = '', retracted = 1,"
                  " edited_ms = ?2 WHERE id = ?1",
    [Q_ACTION_ADD] = "INSERT INTO actions(peer, action_id, kind, target,"
                     " sent_ms, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [Q_ACTION_DEL] = "DELETE FROM actions WHERE action_id = ?1",
    [Q_ACTIONS] = "SELECT action_id, kind, target, sent_ms, body FROM actions"
                  " WHERE peer = ?1 ORDER BY id",
    [Q_RCPT_ADD] = "INSERT OR IGNORE INTO receipts(peer, msg_id)"
                   " VALUES (?1, ?2)",
    [Q_RCPT_LIST] = "SELECT msg_id FROM receipts WHERE peer = ?1"
                    " ORDER BY id LIMIT ?2",
    [Q_RCPT_DEL] = "DELETE FROM receipts WHERE msg_id = ?1",
    [Q_RELAY_ADD] = "INSERT OR IGNORE INTO relays(msg_id, recipient, from_peer,"
                    " expires_ms, box) VALUES (?1, ?2, ?3, ?4, ?5)",
    [Q_RELAYS_FOR] = "SELECT msg_id, expires_ms, box FROM relays"
                     " WHERE recipient = ?1",
    [Q_RELAY_DEL] = "DELETE FROM relays WHERE msg_id = ?1",
    [Q_RELAY_PURGE] = "DELETE FROM relays WHERE expires_ms <= ?1",
    [Q_RELAY_COUNT] = "SELECT count(*) FROM relays",
    [Q_CONV_GROUP] = "UPDATE conversations SET is_group = 1 WHERE id = ?1",
    [Q_IS_GROUP] = "SELECT is_group FROM conversations WHERE peer = ?1",
    /* a group's history in the order every member agrees on */
    [Q_PAGE_GROUP] = "SELECT " MSG_COLS " FROM messages m"
                     " JOIN conversations c ON c.id = m.conv"
                     " WHERE c.peer = ?1 AND (?2 = 0 OR (m.lamport, m.sender)"
                     " < (SELECT lamport, sender FROM messages WHERE id = ?2))"
                     " ORDER BY m.lamport DESC, m.sender DESC LIMIT ?3",
    [Q_GOP_ADD] = "INSERT INTO group_ops(grp, body) VALUES (?1, ?2)",
    [Q_GOPS] = "SELECT body FROM group_ops ORDER BY id",
    [Q_GMSG_ADD] = "INSERT OR IGNORE INTO group_msgs(grp, author, seq, lamport,"
                   " envelope) VALUES (?1, ?2, ?3, ?4, ?5)",
    [Q_GMSG_MSG] =
        "UPDATE messages SET sender = ?2, lamport = ?3 WHERE id = ?1",
    [Q_GMSGS_AFTER] = "SELECT envelope FROM group_msgs WHERE grp = ?1 AND"
                      " author = ?2 AND seq > ?3 ORDER BY seq LIMIT ?4",
    [Q_GSEQS] = "SELECT grp, author, seq, lamport FROM group_msgs",
    [Q_CONTACT_GET] = "SELECT peer, state, blocked, trust, nick, note,"
                      " changed_ms FROM contacts WHERE peer = ?1",
    [Q_CONTACT_PUT] = "INSERT OR REPLACE INTO contacts(peer, state, blocked,"
                      " trust, nick, note, changed_ms)"
                      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [Q_CONTACT_DEL] = "DELETE FROM contacts WHERE peer = ?1",
    [Q_CONTACTS] = "SELECT peer, state, blocked, trust, nick, note, changed_ms"
                   " FROM contacts ORDER BY changed_ms DESC",
    [Q_RELATED] = "SELECT EXISTS (SELECT 1 FROM conversations WHERE peer = ?1)"
                  " OR EXISTS (SELECT 1 FROM contacts WHERE peer = ?1"
                  " AND (state > 0 OR trust = 2))",
    [Q_PIN_GET] = "SELECT peer FROM pins WHERE nick = ?1",
    [Q_PIN_SET] = "INSERT OR REPLACE INTO pins(nick, peer, since_ms)"
                  " VALUES (?1, ?2, ?3)",
    /* the messages this transaction added, summed into their
     * conversations at once (a trigger per row costs twice as much) */
    [Q_CONV_SUM] = "UPDATE conversations SET"
                   " unread = unread + (SELECT count(*) FROM messages m"
                   "   WHERE m.conv = conversations.id AND m.id >"
                   "   (SELECT value FROM meta WHERE key = 'summed')"
                   "   AND m.outgoing = 0 AND m.state < 4),"
                   " last_msg = (SELECT max(id) FROM messages m"
                   "   WHERE m.conv = conversations.id)"
                   /* no DISTINCT: it made SQLite scan a whole index */
                   " WHERE id IN (SELECT conv FROM messages WHERE id >"
                   " (SELECT value FROM meta WHERE key = 'summed'))",
    [Q_SUM_MARK] = "UPDATE meta SET value ="
                   " max(value, (SELECT coalesce(max(id), 0) FROM messages))"
                   " WHERE key = 'summed'",
    [Q_XFER_ADD] = "INSERT INTO transfers(msg_id, peer, outgoing, kind, state,"
                   " total, duration_ms, created_ms, name, dir)"
                   " VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
    [Q_XFER_FILE_ADD] = "INSERT INTO transfer_files(xfer, idx, path, size,"
                        " local) VALUES (?1,?2,?3,?4,?5)",
    [Q_XFER_SET] = "UPDATE transfers SET state = ?2, err = ?3, by_peer = ?4,"
                   " told = ?5, pos = ?6, dir = ?7 WHERE msg_id = ?1",
    [Q_XFER_FILE_SET] = "UPDATE transfer_files SET local = ?3, hash = ?4,"
                        " mine = ?5, verified = ?6 WHERE idx = ?2 AND xfer ="
                        " (SELECT id FROM transfers WHERE msg_id = ?1)",
    [Q_XFER_GET] = "SELECT " XFER_COLS " FROM transfers WHERE msg_id = ?1",
    [Q_XFER_LIST] = "SELECT " XFER_COLS " FROM transfers WHERE ?1 = 0"
                    " OR (?1 = 1 AND state <= 2)"
                    " OR (?1 = 2 AND (state <= 2 OR told = 0))"
                    " ORDER BY id DESC",
    [Q_XFER_FILES] = "SELECT idx, path, size, local, hash, mine, verified"
                     " FROM transfer_files WHERE xfer = ?1 ORDER BY idx",
    [Q_FTS_INDEX] = "INSERT INTO messages_fts(rowid, body) SELECT id, body"
                    " FROM messages WHERE id >"
                    " (SELECT value FROM meta WHERE key = 'fts_indexed')",
    /* only forward: ids are never reused, even after a delete */
    [Q_FTS_MARK] = "UPDATE meta SET value ="
                   " max(value, (SELECT coalesce(max(id), 0) FROM messages))"
                   " WHERE key = 'fts_indexed'",
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
};

#define STORE_CONV_CACHE 256

struct lc__store {
  sqlite3 *db;
  sqlite3_stmt *q[Q_COUNT];
  int in_batch;   /* lc__store_begin calls not yet committed (nested) */
  int batch_lost; /* SQLite rolled the batch back itself (a full disk) */
  int unindexed;  /* messages added in this transaction: summed at commit */
  int64_t conv_created; /* store_conv: the conversation it created last */
  int fts_pending;      /* messages committed but not in the full-text index */
  /* lc__store_external_checkpoints: the log's size that calls due() */
  int ckpt_pages;
  void (*ckpt_due)(void *ctx, int pages);
  void *ckpt_ctx;
  /* conversation ids by peer, direct-mapped (keys are uniformly random
   * bytes): a conversation is looked up for every message stored */
  struct {
    uint8_t peer[LC_KEY_BYTES];
    int64_t conv; /* 0: empty */
  } convs[STORE_CONV_CACHE];
};

/* ---- helpers ------------------------------------------------------------ */

static void store_forget_convs(lc__store *s) {
  memset(s->convs, 0, sizeof s->convs);
}

static sqlite3_stmt *store_q(lc__store *s, int which) {
  sqlite3_stmt *st = s->q[which];
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return st;
}

static int store_done(sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : LC_ESTORE;
}

static int store_exec(lc__store *s, int which) {
  return store_done(store_q(s, which));
}

/* Messages stored before the full-text index takes them in, at once. */
#define STORE_FTS_BATCH 128

/* Takes what is not yet in the full-text index into it (in the current
 * transaction). */
static int store_fts_catch_up(lc__store *s) {
  int rc = store_exec(s, Q_FTS_INDEX);
  if (rc == 0)
    rc = store_exec(s, Q_FTS_MARK);
  return rc;
}

/* Commits, summing first the messages this transaction added into their
 * conversations, and indexing them once enough wait. */
static int store_commit_now(lc__store *s) {
  int rc = 0, indexed = 0;
  if (s->unindexed) {
    rc = store_exec(s, Q_CONV_SUM);
    if (rc == 0)
      rc = store_exec(s, Q_SUM_MARK);
  }
  if (rc == 0 && s->fts_pending + s->unindexed >= STORE_FTS_BATCH) {
    rc = store_fts_catch_up(s);
    indexed = 1;
  }
  if (rc == 0)
    rc = store_exec(s, Q_COMMIT);
  if (rc == 0)
    s->fts_pending = indexed ? 0 : s->fts_pending + s->unindexed;
  s->unindexed = 0;
  if (rc < 0) {
    store_exec(s, Q_ROLLBACK);
    store_forget_convs(s); /* one created meanwhile is gone */
  }
  return rc;
}

/* A transaction unless the caller already runs one (lc__store_begin). */
static int store_tx_begin(lc__store *s) {
  /* in a batch, a call that fails must leave nothing half done of itself
   * (no savepoint per call: it halved the rate of stored messages) */
  if (s->in_batch)
    return s->batch_lost ? LC_ESTORE : 0;
  return store_exec(s, Q_BEGIN);
}

static int store_tx_end(lc__store *s, int rc) {
  if (s->in_batch) {
    /* SQLite rolls a transaction back itself on some errors (a full disk,
     * I/O): then nothing more of the batch may be written, or it would
     * be committed call by call */
    if (rc < 0 && sqlite3_get_autocommit(s->db))
      s->batch_lost = 1;
    return rc;
  }
  if (rc < 0) {
    store_exec(s, Q_ROLLBACK);
    s->unindexed = 0;
    store_forget_convs(s); /* one created meanwhile is gone */
    return rc;
  }
  return store_commit_now(s) < 0 ? LC_ESTORE : rc;
}

/* The same, in a transaction of its own (or the caller's batch). */
static int store_fts_sync(lc__store *s) {
  int rc = store_tx_begin(s);
  if (rc == 0)
    rc = store_fts_catch_up(s);
  rc = store_tx_end(s, rc);
  if (rc == 0 && !s->in_batch)
    s->fts_pending = 0;
  return rc;
}

static char *store_text(sqlite3_stmt *st, int col, size_t *len);
static void store_blob(sqlite3_stmt *st, int col, uint8_t *out, size_t n);

static void store_read_msg(sqlite3_stmt *st, int col, lc__stored_msg *m) {
  memset(m, 0, sizeof *m);
  m->id = sqlite3_column_int64(st, col);
  store_blob(st, col + 1, m->msg_id, LC_MSGID_BYTES);
  store_blob(st, col + 2, m->peer, LC_KEY_BYTES);
  m->outgoing = sqlite3_column_int(st, col + 3);
  m->kind = sqlite3_column_int(st, col + 4);
  m->sent_ms = (uint64_t)sqlite3_column_int64(st, col + 5);
  m->received_ms = (uint64_t)sqlite3_column_int64(st, col + 6);
  m->state = sqlite3_column_int(st, col + 7);
  m->edited_ms = (uint64_t)sqlite3_column_int64(st, col + 8);
  m->retracted = sqlite3_column_int(st, col + 9);
  m->text = store_text(st, col + 10, &m->text_len);
  m->is_group = sqlite3_column_int(st, col + 11);
  store_blob(st, col + 12, m->sender, LC_KEY_BYTES);
  m->lamport = (uint64_t)sqlite3_column_int64(st, col + 13);
}

/* Copies a blob column of exactly n bytes (zeros otherwise). */
static void store_blob(sqlite3_stmt *st, int col, uint8_t *out, size_t n) {
  const void *b = sqlite3_column_blob(st, col);
  if (b && (size_t)sqlite3_column_bytes(st, col) == n)
    memcpy(out, b, n);
  else
    memset(out, 0, n);
}

/* A text column as a malloc'd NUL-terminated copy (NULL: no memory). */
static char *store_text(sqlite3_stmt *st, int col, size_t *len) {
  const unsigned char *t = sqlite3_column_text(st, col);
  size_t n = (size_t)sqlite3_column_bytes(st, col);
  char *c = malloc(n + 1);
  if (c) {
    if (n)
      memcpy(c, t, n);
    c[n] = 0;
    *len = n;
  }
  return c;
}

/* Reads the current row into elem: 0, or LC_ENOMEM. */
typedef int store_read_fn(sqlite3_stmt *st, void *elem);
/* Frees an array of n elements (and what they own). */
typedef void store_free_fn(void *array, size_t n);

/* Steps st to the end and collects every row, elements of `size` bytes,
 * into a malloc'd array. */
static int store_rows(sqlite3_stmt *st, size_t size, store_read_fn *read,
                      store_free_fn *release, void **out, size_t *count) {
  size_t cap = 16, n = 0;
  char *v = malloc(cap * size);
  int rc = v ? 0 : LC_ENOMEM, step = SQLITE_DONE;
  while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
    if (n == cap) {
      char *nv = realloc(v, 2 * cap * size);
      if (!nv) {
        rc = LC_ENOMEM;
        break;
      }
      v = nv;
      cap *= 2;
    }
    memset(v + n * size, 0, size);
    rc = read(st, v + n * size);
    if (rc == 0)
      n++;
  }
  sqlite3_reset(st);
  if (rc == 0 && step != SQLITE_DONE)
    rc = LC_ESTORE;
  if (rc < 0) {
    if (v)
      release(v, n);
    return rc;
  }
  *out = v;
  *count = n;
  return 0;
}

static int store_read_msg_row(sqlite3_stmt *st, void *elem) {
  lc__stored_msg *m = elem;
  store_read_msg(st, 0, m);
  return m->text ? 0 : LC_ENOMEM;
}

static void store_free_msgs(void *a, size_t n) {
  lc__store_msgs_free(a, n);
}

static int store_collect(sqlite3_stmt *st, lc__stored_msg **out,
                         size_t *count) {
  return store_rows(st, sizeof **out, store_read_msg_row, store_free_msgs,
                    (void **)out, count);
}

/* The conversation id for peer, created if create is set (0 if none). */
static int64_t store_conv(lc__store *s, const uint8_t *peer, int create) {
  size_t slot = (size_t)(peer[0] ^ peer[1] << 1 ^ peer[31]) % STORE_CONV_CACHE;
  if (s->convs[slot].conv &&
      memcmp(s->convs[slot].peer, peer, LC_KEY_BYTES) == 0)
    return s->convs[slot].conv;
  int64_t id = 0;
  sqlite3_stmt *st = store_q(s, Q_CONV_GET);
  sqlite3_bind_blob(st, 1, peer, LC_KEY_BYTES, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW)
    id = sqlite3_column_int64(st, 0);
  sqlite3_reset(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    return LC_ESTORE;
  if (!id && create) {
    st = store_q(s, Q_CONV_ADD);
    sqlite3_bind_blob(st, 1, peer, LC_KEY_BYTES, SQLITE_STATIC);
    if (store_done(st) < 0)
      return LC_ESTORE;
    id = sqlite3_last_insert_rowid(s->db);
    s->conv_created = id;
  }
  if (id) {
    memcpy(s->convs[slot].peer, peer, LC_KEY_BYTES);
    s->convs[slot].conv = id;
  }
  return id;
}

/* ---- open, migrate, close ------------------------------------------------
 * A file is recognised before anything is written to it.  lanchat's own
 * histories carry STORE_APP_ID in their header (PRAGMA application_id);
 * those made before it was set are known by their tables and version.
 * Anything else (another program's database, a damaged file, a history
 * from a newer release) is refused and left exactly as it is, with a
 * message that says what the user can do: a history is never "repaired"
 * or replaced behind its owner's back. */

#define STORE_APP_ID 0x4c414e43 /* "LANC" */

/* The tables every lanchat history has had since version 1. */
#define STORE_OUR_TABLES                                                       \
  "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "       \
  "('conversations', 'messages', 'outbox', 'meta')"
#define STORE_OUR_TABLES_N 4

static void store_say(char **errmsg, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void store_say(char **errmsg, const char *fmt, ...) {
  if (!errmsg)
    return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  *errmsg = n >= 0 ? malloc((size_t)n + 1) : NULL;
  if (!*errmsg)
    return;
  va_start(ap, fmt);
  vsnprintf(*errmsg, (size_t)n + 1, fmt, ap);
  va_end(ap);
}

const char *lc__store_shq(const char *path, char *buf, size_t cap) {
  if (strspn(path, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                   "0123456789/._-+,:@%=") == strlen(path))
    return path;
  size_t k = 0;
  buf[k++] = '\'';
  for (const char *p = path; *p && k + 5 < cap; p++) {
    if (*p == '\'') {
      memcpy(buf + k, "'\\''", 4);
      k += 4;
    } else {
      buf[k++] = *p;
    }
  }
  buf[k++] = '\'';
  buf[k] = '\0';
  return buf;
}

/* How to start a new, empty history without losing the file: the same
 * words and command in every message.  A log (-wal) beside the file may
 * hold its latest transactions, so it moves with it (and is not taken up
 * by the new history). */
#define STORE_ASIDE                                                            \
  "move it aside and a new, empty history starts: mv %s %s.%s (a -wal or "     \
  "-shm file beside it goes with it: the same new name, then -wal or -shm)"
#define STORE_KEPT "lanchat leaves it as it is. "

/* Says why the file at path cannot be used, from SQLite's last error, and
 * closes s.  Returns LC_ESTORE (LC_ENOMEM when out of memory). */
static int store_fail(lc__store *s, char **errmsg, const char *path,
                      const char *what) {
  int code = s && s->db ? sqlite3_errcode(s->db) & 0xff : SQLITE_NOMEM;
  const char *m = s && s->db ? sqlite3_errmsg(s->db) : "out of memory";
  int sys = s && s->db ? sqlite3_system_errno(s->db) : 0;
  char q[4200];
  const char *qp = lc__store_shq(path, q, sizeof q);
  switch (code) {
  case SQLITE_NOTADB:
    store_say(
        errmsg,
        "not an SQLite database (damaged, or not a history at all). " STORE_KEPT
        "Restore it from a backup, or " STORE_ASIDE,
        qp, qp, "bad");
    break;
  case SQLITE_CORRUPT:
    store_say(errmsg,
              "the file is damaged (%s). " STORE_KEPT
              "Restore it from a backup, or " STORE_ASIDE,
              m, qp, qp, "bad");
    break;
  case SQLITE_CANTOPEN:
  case SQLITE_PERM:
  case SQLITE_READONLY:
  case SQLITE_AUTH:
    store_say(errmsg,
              "%s: %s%s%s; the file and its folder must be readable and "
              "writable by this user (chmod u+rw %s)",
              what, m, sys ? ": " : "", sys ? strerror(sys) : "", qp);
    break;
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
    store_say(errmsg,
              "%s: another program holds it locked (%s); stop that program "
              "and try again",
              what, m);
    break;
  case SQLITE_FULL:
    store_say(errmsg, "%s: the disk is full; make room and try again", what);
    break;
  default:
    store_say(errmsg, "%s: %s%s%s", what, m, sys ? ": " : "",
              sys ? strerror(sys) : "");
  }
  lc__store_close(s);
  return code == SQLITE_NOMEM ? LC_ENOMEM : LC_ESTORE;
}

/* One integer from a PRAGMA or a count: SQLITE_OK with *v, or SQLite's
 * error (also in sqlite3_errcode). */
static int store_int(sqlite3 *db, const char *sql, int *v) {
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK)
    return rc;
  rc = sqlite3_step(st);
  *v = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
  if (rc == SQLITE_ROW || rc == SQLITE_DONE)
    rc = SQLITE_OK;
  sqlite3_finalize(st);
  return rc;
}

/* Reads what the file is, writing nothing: 0 with its schema version in
 * *version (0 for a new, empty file) and whether it has our application_id
 * in *marked, or an error (s closed). */
static int store_identify(lc__store *s, const char *path, int *version,
                          int *marked, char **errmsg) {
  int v, app, objects, ours;
  if (store_int(s->db, "PRAGMA user_version", &v) != SQLITE_OK ||
      store_int(s->db, "PRAGMA application_id", &app) != SQLITE_OK ||
      store_int(s->db, "SELECT count(*) FROM sqlite_master", &objects) !=
          SQLITE_OK ||
      store_int(s->db, STORE_OUR_TABLES, &ours) != SQLITE_OK)
    return store_fail(s, errmsg, path, "cannot read it");
  int empty = app == 0 && v == 0 && objects == 0;
  int lanchat = (app == STORE_APP_ID && v >= 0) ||
                (app == 0 && v >= 1 && ours == STORE_OUR_TABLES_N);
  char q[4200];
  const char *qp = lc__store_shq(path, q, sizeof q);
  if (!empty && !lanchat) {
    char what[64] = "its tables are not lanchat's";
    if (app != 0)
      snprintf(what, sizeof what, "application_id 0x%08x", (unsigned)app);
    store_say(errmsg,
              "not a lanchat history but another program's database "
              "(%s). " STORE_KEPT
              "If it was put there by mistake, " STORE_ASIDE,
              what, qp, qp, "other");
    lc__store_close(s);
    return LC_ESTORE;
  }
  if (v > LC_STORE_SCHEMA) {
    char suffix[32];
    snprintf(suffix, sizeof suffix, "v%d", v);
    store_say(errmsg,
              "made by a newer lanchat (history version %d; this lanchat "
              "reads up to version %d). " STORE_KEPT "Run the newer lanchat "
              "again; to use this one instead, " STORE_ASIDE,
              v, LC_STORE_SCHEMA, qp, qp, suffix);
    lc__store_close(s);
    return LC_ESTORE;
  }
  if (sqlite3_db_readonly(s->db, "main") == 1) {
    store_say(errmsg,
              "this user cannot write it (it is read-only, or belongs to "
              "another user); make it yours and writable: chmod u+rw %s (if "
              "another user owns it: chown \"$(id -un)\" %s)",
              qp, qp);
    lc__store_close(s);
    return LC_ESTORE;
  }
  *version = v;
  *marked = app == STORE_APP_ID;
  return 0;
}

/* Migrates a file of version v to LC_STORE_SCHEMA, one transaction per
 * step, each also setting the application_id (marked: it is set already;
 * a history made before it existed gets it even with nothing to
 * migrate). */
static int store_migrate(lc__store *s, const char *path, int v, int marked,
                         char **errmsg) {
  char pragma[96];
  if (v == LC_STORE_SCHEMA && !marked) {
    snprintf(pragma, sizeof pragma, "PRAGMA application_id = %d", STORE_APP_ID);
    if (sqlite3_exec(s->db, pragma, NULL, NULL, NULL) != SQLITE_OK)
      return store_fail(s, errmsg, path, "cannot mark it as lanchat's");
    return 0;
  }
  for (; v < LC_STORE_SCHEMA; v++) {
    /* the numbers come from this code, not from any input */
    snprintf(pragma, sizeof pragma,
             "PRAGMA user_version = %d; PRAGMA application_id = %d", v + 1,
             STORE_APP_ID);
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
      return store_fail(s, errmsg, path, "cannot begin a migration");
    if (sqlite3_exec(s->db, store_migrations[v], NULL, NULL, NULL) !=
            SQLITE_OK ||
        sqlite3_exec(s->db, pragma, NULL, NULL, NULL) != SQLITE_OK)
      return store_fail(s, errmsg, path, "migration failed"); /* rolled back */
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
      return store_fail(s, errmsg, path, "cannot commit a migration");
  }
  return 0;
}

int lc__store_open(lc__store **out, const char *path, char **errmsg) {
  *out = NULL;
  if (errmsg)
    *errmsg = NULL;
  lc__store *s = calloc(1, sizeof *s);
  if (!s)
    return LC_ENOMEM;
  if (sqlite3_open_v2(path, &s->db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                          SQLITE_OPEN_NOMUTEX,
                      NULL) != SQLITE_OK)
    return store_fail(s, errmsg, path, "cannot open it");
  sqlite3_busy_timeout(s->db, 2000);
  /* Until the file is known to be ours, closing must not checkpoint a
   * log left beside it into it: a refused file stays byte for byte. */
  sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
  int version = 0, marked = 0;
  int rc = store_identify(s, path, &version, &marked, errmsg);
  if (rc < 0)
    return rc;
  sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, NULL);
  /* A 32 MiB page cache; checkpoints every 32 MiB of log (fewer, larger
   * copies into the file: storing in batches is 10% faster than with the
   * default 4 MiB), the log cut back to 32 MiB after each. */
  if (sqlite3_exec(s->db,
                   "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                   "PRAGMA foreign_keys = ON; PRAGMA cache_size = -32768;"
                   "PRAGMA wal_autocheckpoint = 8192;"
                   "PRAGMA journal_size_limit = 33554432;",
                   NULL, NULL, NULL) != SQLITE_OK)
    return store_fail(s, errmsg, path, "cannot configure it");
  rc = store_migrate(s, path, version, marked, errmsg);
  if (rc < 0)
    return rc;
  for (int i = 0; i < Q_COUNT; i++)
    if (sqlite3_prepare_v3(s->db, store_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                           &s->q[i], NULL) != SQLITE_OK)
      return store_fail(s, errmsg, path, "cannot prepare a statement");
  /* what a previous run left out of the index goes in at the first
   * commit or search */
  s->fts_pending = STORE_FTS_BATCH;
  /* A new file's first page, which says it is in WAL mode, is still in
   * the log: copied into the file now, so that lc__store_checkpoint's
   * connection of its own sees the mode (else it checkpoints nothing). */
  sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
  *out = s;
  return 0;
}

static int store_wal_hook(void *ctx, sqlite3 *db, const char *name, int pages) {
  (void)db;
  (void)name;
  lc__store *s = ctx;
  if (pages >= s->ckpt_pages)
    s->ckpt_due(s->ckpt_ctx, pages);
  return SQLITE_OK;
}

void lc__store_external_checkpoints(lc__store *s, int pages,
                                    void (*due)(void *ctx, int pages),
                                    void *ctx) {
  s->ckpt_pages = pages;
  s->ckpt_due = due;
  s->ckpt_ctx = ctx;
  /* replaces the automatic checkpoint, which is itself a WAL hook */
  sqlite3_wal_hook(s->db, store_wal_hook, s);
}

int lc__store_checkpoint(const char *path) {
  sqlite3 *db;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
    sqlite3_close(db);
    return LC_ESTORE;
  }
  sqlite3_busy_timeout(db, 2000);
  int log = -1;
  int rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log,
                                     NULL);
  sqlite3_close(db);
  return rc == SQLITE_OK && log >= 0 ? 0 : LC_ESTORE; /* -1: not WAL */
}

int lc__store_checkpoint_now(lc__store *s) {
  int rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE,
                                     NULL, NULL);
  return rc == SQLITE_OK ? 0 : LC_ESTORE;
}

void lc__store_close(lc__store *s) {
  if (!s)
    return;
  for (int i = 0; i < Q_COUNT; i++)
    sqlite3_finalize(s->q[i]);
  sqlite3_close(s->db);
  free(s);
}

/* ---- writing ------------------------------------------------------------ */

static int store_insert_kind(lc__store *s, const uint8_t *peer,
                             const uint8_t *id, int kind, int outgoing,
                             int state, uint64_t sent_ms, uint64_t now_ms,
                             const char *text, size_t len, int64_t *rowid) {
  s->conv_created = 0;
  int64_t conv = store_conv(s, peer, 1);
  if (conv < 0)
    return (int)conv;
  sqlite3_stmt *st = store_q(s, Q_MSG_ADD);
  sqlite3_bind_blob(st, 1, id, LC_MSGID_BYTES, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, conv);
  sqlite3_bind_int(st, 3, outgoing);
  sqlite3_bind_int(st, 4, kind);
  sqlite3_bind_int64(st, 5, (sqlite3_int64)sent_ms);
  sqlite3_bind_int64(st, 6, (sqlite3_int64)now_ms);
  sqlite3_bind_int(st, 7, state);
  sqlite3_bind_text(st, 8, text ? text : "", (int)len, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE && s->conv_created == conv) {
    /* not stored: nor the conversation made for it (in a batch nothing
     * else would take it back) */
    store_forget_convs(s);
    st = store_q(s, Q_DEL_CONV);
    sqlite3_bind_blob(st, 1, peer, LC_KEY_BYTES, SQLITE_STATIC);
    store_done(st);
  }
  if (rc == SQLITE_CONSTRAINT)
    return LC_EEXIST;
  if (rc != SQLITE_DONE)
    return LC_ESTORE;
  *rowid = sqlite3_last_insert_rowid(s->db);
  s->unindexed++;
  return 0;
}

static int store_insert(lc__store *s, const uint8_t *peer, const uint8_t *id,
                        int outgoing, int state, uint64_t sent_ms,
                        uint64_t now_ms, const char *text, size_t len,
                        int64_t *rowid) {
  return store_insert_kind(s, peer, id, LC_CHAT_TEXT, outgoing, state, sent_ms,
                           now_ms, text, len, rowid);
}

int lc__store_add_outgoing(lc__store *s, const uint8_t peer[LC_KEY_BYTES],
                           const uint8_t msg_id[LC_MSGID_BYTES],
                           uint64_t sent_ms, uint64_t now_ms, const char *text,
                           size_t len, int64_t *id) {
  if (len > INT32_MAX)
    return LC_ETOOBIG;
  int rc = store_tx_begin(s);
  if (rc < 0)
    return rc;
  int64_t rowid = 0;
  rc = store_insert(s, peer, msg_id, 1, LC_MSG_QUEUED, sent_ms, now_ms, text,
                    len, &rowid);
  if (rc == 0) {
    sqlite3_stmt *st = store_q(s, Q_OUTBOX_ADD);
    sqlite3_bind_int64(st, 1, rowid);
    sqlite3_bind_blob(st, 2, peer, LC_KEY_BYTES, SQLITE_STATIC);
    rc = store_done(st);
  }
  rc = store_tx_end(s, rc);
  if (rc == 0 && id)
    *id = rowid;
  return rc;
}

int lc__store_add_incoming(lc__store *s, const uint8_t peer[LC_KEY_BYTES],
                           const uint8_t msg_id[LC_MSGID_BYTES],
                           uint64_t sent_ms, uint64_t now_ms, const char *text,
                           size_t len, int64_t *id) {
  if (len > INT32_MAX)
    return LC_ETOOBIG;
  int rc = store_tx_begin(s);
  if (rc < 0)
    return rc;
  int64_t rowid = 0;
  rc = store_insert(s, peer, msg_id, 0, LC_MSG_DELIVERED, sent_ms, now_ms, text,
                    len, &rowid);
  int fresh = rc == 0;
  if (rc == LC_EEXIST)
    rc = 0; /* a retransmission: already stored, nothing to do */
  rc = store_tx_end(s, rc);
  if (rc == 0 && fresh && id)
    *id = rowid;
  return rc < 0 ? rc : fresh;
}

static int store_allowed(int from, int to) {
  if (to == LC_MSG_QUEUED)
    return from == LC_MSG_FAILED;
  if (to == LC_MSG_FAILED)
    return from == LC_MSG_QUEUED || from == LC_MSG_SENT;
  return from != LC_MSG_FAILED ? to > from : to >= LC_MSG_DELIVERED;
}

int lc__store_mark_sent(lc__store *s, const uint8_t peer[LC_KEY_BYTES],
                        int64_t after_id, int64_t upto_id) {
  int rc = store_tx_begin(s);
  if (rc < 0)
    return rc;
  sqlite3_stmt *st = store_q(s, Q_MARK_SENT);
  sqlite3_bind_blob(st, 1, peer, LC_KEY_BYTES, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, after_id);
  sqlite3_bind_int64(st, 3, upto_id);
  rc = store_done(st);
  return store_tx_end(s, rc);
}

int lc__store_set_state(lc__store *s, const uint8_t msg_id[LC_MSGID_BYTES],
                        int state) {
  if (state < LC_MSG_QUEUED || state > LC_MSG_FAILED)
    return LC_EINVAL;
  int rc = store_tx_begin(s);
  if (rc < 0)
    return rc;
  sqlite3_stmt *st = store_q(s, Q_STATE_GET);
  sqlite3_bind_blob(st, 1, msg_id, LC_MSGID_BYTES, SQLITE_STATIC);
  int step = sqlite3_step(st);
  int64_t id = 0;
  int old = 0;
  if (step == SQLITE_ROW) {
    id = sqlite3_column_int64(st, 0);
    old = sqlite3_column_int(st, 1);
  }
  sqlite3_reset(st);
  int changed = 0;
  if (step != SQLITE_ROW && step != SQLITE_DONE) {
    rc = LC_ESTORE;
  } else if (id && store_allowed(old, state)) {
    st = store_q(s, Q_STATE_SET);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int(st, 2, state);
    rc = store_done(st);
    if (rc == 0 && state >= LC_MSG_DELIVERED && state != LC_MSG_FAILED) {
      st = store_q(s, Q_OUTBOX_DEL);
      sqlite3_bind_int64(st, 1, id);
      rc = store_done(st);
    }
    changed = rc == 0;
  }
  rc = store_tx_end(s, rc);
  return rc < 0 ? rc : changed;
}

int lc__store_mark_read(lc__store *s, const uint8_t peer[LC_KEY_BYTES],
                        int64_t up_to_id, uint8_t (**ids)[LC_MSGID_BYTES],
                        size_t *n) {
  *ids = NULL;
  *n = 0;
  int rc = store_tx_begin(s);
  if (rc < 0)
    return rc;
  sqlite3_stmt *st = store_q(s, Q_READ_LIST);
  sqlite3_bind_blob(st, 1, peer, LC_KEY_BYTES, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, up_to_id);
  size_t cap = 0, k = 0;
  uint8_t(*v)[LC_MSGID_BYTES] = NULL;
  int64_t *rows = NULL;
  int step;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    if (k == cap) {
      cap = cap ? cap * 2 : 16;
      uint8_t(*nv)[LC_MSGID_BYTES] = realloc(v, cap * sizeof *v);
      int64_t *nr = realloc(rows, cap * sizeof *rows);
      if (nv)
        v = nv;
      if (nr)
        rows = nr;
      if (!nv || !nr) {
        rc = LC_ENOMEM;
        break;
      }
    }
    rows[k] = sqlite3_column_int64(st, 0);
    store_blob(st, 1, v[k], LC_MSGID_BYTES);
    k++;
  }
  sqlite3_reset(st);
  if (rc == 0 && step != SQLITE_DONE)
    rc = LC_ESTORE;
  for (size_t i = 0; rc == 0 && i < k; i++) {
    st = store_q(s, Q_READ_SET);
    sqlite3_bind_int64(st, 1, rows[i]);
    rc = store_done(st);
  }
  free(rows);
  rc = store_tx_end(s, rc);
  if (rc < 0) {
    free(v);
    return rc;
  }
  *ids = v;
  *n = k;
  return (int)k;
}

int lc__store_delete_message(lc__store *s, int64_t id) {
  sqlite3_stmt *st = store_q(s, Q_DEL_MSG);
  sqlite3_bind_int64(st, 1, id);
  if (store_done(st) < 0)
    return LC_ESTORE;
  return sqlite3_changes(s->db) > 0;
}

int lc__store_delete_conversation(lc__store *s,
                                  const uint8_t peer[LC_KEY_BYTES]) {
  int rc = store_tx_begin(s);
  if (rc < 0)
    return rc;
  /* messages go through their trigger (full-text index), then the row */
  int64_t conv = store_conv(s, peer, 0);
  int changed = 0;
  if (conv < 0) {
    rc = LC_ESTORE;
  } else if (conv > 0) {
    store_forget_convs(s); /* its cached id is about to go */
    sqlite3_stmt *st = store_q(s, Q_DEL_CONV);
    sqlite3_bind_blob(st, 1, peer, LC_KEY_BYTES, SQLITE_STATIC);
    rc = store_done(st);
    changed = rc == 0;
  }
  rc = store_tx_end(s, rc);
  return rc < 0 ? rc : changed;
}

int lc__store_begin(lc__store *s) {
  if (s->in_batch) {
    s->in_batch++;
    return 0;
  }
  int rc = store_exec(s, Q_BEGIN);
  if (rc == 0)
    s->in_batch = 1;
  return rc;
}

int lc__store_commit(lc__store *s) {
  if (!s->in_batch)
    return LC_ESTATE;
  if (--s->in_batch > 0)
    return 0;          /* the outermost batch commits */
  if (s->batch_lost) { /* already rolled back */
    s->batch_lost = 0;
    s->unindexed = 0;
    store_forget_convs(s);
    return LC_ESTORE;
  }
  return store_commit_now(s);
}

int lc__store_in_batch(const lc__store *s) {
  return s->in_batch > 0;
}

/* ---- edits and retractions ------------------------------------------------
 */

typedef struct {
  int64_t id;
  int outgoing, retracted;
  uint64_t edited_ms;
  uint8_t peer[LC_KEY_BYTES];
} store_row;

/* 1 and *r if the message exists, 0 if not, LC_ESTORE. */
static int store_row_get(lc__store *s, const uint8_t *msg_id, store_row *r) {
  sqlite3_stmt *st = store_q(s, Q_MSG_ROW);
  sqlite3_bind_blob(st, 1, msg_id, LC_MSGID_BYTES, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    r->id = sqlite3_column_int64(st, 0);
    r->outgoing = sqlite3_column_int(st, 1);
    r->retracted = sqlite3_column_int(st, 2);
    r->edited_ms = (uint64_t)sqlite3_column_int64(st, 3);
    store_blob(st, 4, r->peer, LC_KEY_BYTES);
  }
  sqlite3_reset(st);
  if (rc == SQLITE_ROW)
    return 1;
  return rc == SQLITE_DONE ? 0 : LC_ESTORE;
}

static int store_change(lc__store *s, const store_row *r, int kind, uint64_t ms,
                        const char *text, size_t len) {
  sqlite3_stmt *st = store_q(s, kind == LC_CHAT_EDIT ? Q_EDIT : Q_RETRACT);
  sqlite3_bind_int64(st, 1, r->id);
  if (kind == LC_CHAT_EDIT) {
    sqlite3_bind_text(st, 2, text ? text : "", (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)ms);
  } else {
    sqlite3_bind_int64(st, 2, (sqlite3_int64)ms);
  }
  return store_done(st);
}

int lc__store_change_own(lc__store *s, int kind,
                         const uint8_t target[LC_MSGID_BYTES],
                         const uint8_t action_id[LC_MSGID_BYTES],
                         uint64_t now_ms, const char *text, size_t len,
                         uint8_t peer[LC_KEY_BYTES]) {
  if ((kind != LC_CHAT_EDIT && kind != LC_CHAT_RETRACT) || len > INT32_MAX)
    return LC_EINVAL;
  int rc = store_tx_begin(s);
  if (rc < 0)
    return rc;
  store_row r;
  int found = store_row_get(s, target, &r);
  int changed = 0;
  if (found < 0) {
    rc = found;
  } else if (found && r.outgoing && !r.retracted) {
    /* never earlier than the last change: clocks may step back */
    uint64_t ms = now_ms > r.edited_ms ? now_ms : r.edited_ms + 1;
    rc = store_change(s, &r, kind, ms, text, len);
    if (rc == 0) {
      sqlite3_stmt *st = store_q(s, Q_ACTION_ADD);
      sqlite3_bind_blob(st, 1, r.peer, LC_KEY_BYTES, SQLITE_STATIC);
      sqlite3_bind_blob(st, 2, action_id, LC_MSGID_BYTES, SQLITE_STATIC);
      sqlite3_bind_int(st, 3, kind);
      sqlite3_bind_blob(st, 4, target, LC_MSGID_BYTES, SQLITE_STATIC);
      sqlite3_bind_int64(st, 5, (sqlite3_int64)ms);
      sqlite3_bind_text(st, 6, kind == LC_CHAT_EDIT && text ? text : "",
                        kind == LC_CHAT_EDIT ? (int)len : 0, SQLITE_STATIC);
      rc = store_done(st);
    }
    changed = rc == 0;
    if (changed)
      memcpy(peer, r.peer, LC_KEY_BYTES);
  }
  rc = store_tx_end(s, rc);
  return rc < 0 ? rc : changed;
}

int lc__store_apply_change(lc__store *s, const uint8_t peer[LC_KEY_BYTES],
                           int kind, const uint8_t target[LC_MSGID_BYTES],
                           uint64_t sent_ms, const char *text, size_t len) {
  if ((kind != LC_CHAT_EDIT && kind != LC_CHAT_RETRACT) || len > INT32_MAX)
    return LC_EINVAL;
  int rc = store_tx_begin(s);
  if (rc < 0)
    return rc;
  store_row r;
  int found = store_row_get(s, target, &r);
  int changed = 0;
  if (found < 0)
    rc = found;
  /* only the author changes a message, only forward in its time, and a
   * retracted message stays retracted */
  else if (found && !r.outgoing && !r.retracted &&
           memcmp(r.peer, peer, LC_KEY_BYTES) == 0 && sent_ms > r.edited_ms) {
    rc = store_change(s, &r, kind, sent_ms, text, len);
    changed = rc == 0;
  }
  rc = store_tx_end(s, rc);
  return rc < 0 ? rc : changed;
}

static int store_read_action(sqlite3_stmt *st, void *elem) {
  lc__store_action *a = elem;
  store_blob(st, 0, a->action_id, LC_MSGID_BYTES);
  a->kind = sqlite3_column_int(st, 1);
  store_blob(st, 2, a->target, LC_MSGID_BYTES);
  a->sent_ms = (uint64_t)sqlite3_column_int64(st, 3);
  a->text = store_text(st, 4, &a->text_len);
  return a->text ? 0 : LC_ENOMEM;
}

static void store_free_actions(void *a, size_t n) {
  lc__store_actions_free(a, n);
}

int lc__store_actions(lc__store *s, const uint8_t peer[LC_KEY_BYTES],
                      lc__store_action **out, size_t *count) {
  *out = NULL;
  *count = 0;
  sqlite3_stmt *st = store_q(s, Q_ACTIONS);
  sqlite3_bind_blob(st, 1, peer, LC_KEY_BYTES, SQLITE_STATIC);
  int rc = store_rows(st, sizeof **out, store_read_action, store_free_actions,
                      (void **)out, count);
  for (size_t i = 0; rc == 0 && i < *count; i++)
    memcpy((*out)[i].peer, peer, LC_KEY_BYTES);
  return rc;
}

void lc__store_actions_free(lc__store_action *a, size_t count) {
  for (size_t i = 0; a && i < count; i++)
    free(a[i].text);
  free(a);
}

int lc__store_action_add(lc__store *s, const uint8_t peer[LC_KEY_BYTES],
                         const uint8_t action_id[LC_MSGID_BYTES], int kind,
                         const uint8_t target[LC_MSGID_BYTES], uint64_t sent_ms,
                         const char *text, size_t len) {
  if (len > INT32_MAX)
    return LC_EINVAL;
  sqlite3_stmt *st = store_q(s, Q_ACTION_ADD);
  sqlite3_bind_blob(st, 1, peer, LC_KEY_BYTES, SQLITE_STATIC);
  sqlite3_bind_blob(st, 2, action_id, LC_MSGID_BYTES, SQLITE_STATIC);
  sqlite3_bind_int(st, 3, kind);
  sqlite3_bind_blob(st, 4, target, LC_MSGID_BYTES, SQLITE_STATIC);
  sqlite3_bind_int64(st, 5, (sqlite3_int64)sent_ms);
  sqlite3_bind_text(st, 6, text ? text : "", text ? (int)len : 0,
                    SQLITE_STATIC);
  return store_done(st);
}

/* ---- contacts and pins ------------------------------------------------- */

static void store_copy_text(sqlite3_stmt *st, int col, char *out, size_t cap) {
  const unsigned char *t = sqlite3_column_text(st, col);
  int n = sqlite3_column_bytes(st, col);
  size_t k = t && n > 0 ? (size_t)n : 0;
  if (k >= cap)
    k = 0; /* longer than we ever write: treat as empty */
  if (k)
    memcpy(out, t, k);
  out[k] = '\0';
}

static int store_read_contact(sqlite3_stmt *st, void *elem) {
  lc__contact *c = elem;
  memset(c, 0, sizeof *c);
  store_blob(st, 0, c->peer, LC_KEY_BYTES);
  c->state = sqlite3_column_int(st, 1);
  c->blocked = sqlite3_column_int(st, 2);
  c->trust = sqlite3_column_int(st, 3);
  store_copy_text(st, 4, c->nick, sizeof c->nick);
  store_copy_text(st, 5, c->note, sizeof c->note);
  c->changed_ms = (uint64_t)sqlite3_column_int64(st, 6);
  return 0;
}

int lc__store_contact_get(lc__store *s, const uint8_t peer[LC_KEY_BYTES],
                          lc__contact *c) {
  sqlite3_stmt *st = store_q(s, Q_CONTACT_GET);
  sqlite3_bind_blob(st, 1, peer, LC_KEY_BYTES, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    store_read_contact(st, c);
    sqlite3_reset(st);
    return 1;
  }
  sqlite3_reset(st);
  memset(c, 0, sizeof *c);
  memcpy(c->peer, peer, LC_KEY_BYTES);
  return rc == SQLITE_DONE ? 0 : LC_ESTORE;
}

int lc__store_contact_put(lc__store *s, const lc__contact *c) {
  sqlite3_stmt *st;
  if (!c->state && !c->blocked && !c->trust) {
    st = store_q(s, Q_CONTACT_DEL);
    sqlite3_bind_blob(st, 1, c->peer, LC_KEY_BYTES, SQLITE_STATIC);
    return store_done(st);
  }
  st = store_q(s, Q_CONTACT_PUT);
  sqlite3_bind_blob(st, 1, c->peer, LC_KEY_BYTES, SQLITE_STATIC);
  sqlite3_bind_int(st, 2, c->state);
  sqlite3_bind_int(st, 3, c->blocked);
  sqlite3_bind_int(st, 4, c->trust);
  sqlite3_bind_text(st, 5, c->nick, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 6, c->note, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 7, (sqlite3_int64)c->changed_ms);
  return store_done(st);
}

int lc__store_contact_change(lc__store *s, const lc__contact *c,
                             const uint8_t *action_id, int op, const char *note,
                             uint64_t now_ms) {
  int rc = store_tx_begin(s);
  if (rc < 0)
    return rc;
  rc = lc__store_contact_put(s, c);
  if (rc == 0 && action_id) {
    uint8_t target[LC_MSGID_BYTES] = {(uint8_t)op};
    rc = lc__store_action_add(s, c->peer, action_id, LC_CHAT_CONTACT, target,
                              now_ms, note, note ? strlen(note) : 0);
  }
  return store_tx_end(s, rc);
}

static void store_free_contacts(void *a, size_t n) {
  (void)n;
  free(a);
}

int lc__store_contacts(lc__store *s, lc__contact **out, size_t *count) {
  return store_rows(store_q(s, Q_CONTACTS), sizeof **out, store_read_contact,
                    store_free_contacts, (void **)out, count);
}

int lc__store_related(lc__store *s, const uint8_t peer[LC_KEY_BYTES]) {
  sqlite3_stmt *st = store_q(s, Q_RELATED);
  sqlite3_bind_blob(st, 1, peer, LC_KEY_BYTES, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  int v = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
  sqlite3_reset(st);
  return v < 0 ? LC_ESTORE : v != 0;
}

int lc__store_pin_get(lc__store *s, const char *nick,
                      uint8_t peer[LC_KEY_BYTES]) {
  sqlite3_stmt *st = store_q(s, Q_PIN_GET);
  sqlite3_bind_text(st, 1, nick, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW)
    store_blob(st, 0, peer, LC_KEY_BYTES);
  sqlite3_reset(st);
  return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : LC_ESTORE;
}

int lc__store_pin_set(lc__store *s, const char *nick,
                      const uint8_t peer[LC_KEY_BYTES], uint64_t now_ms) {
  sqlite3_stmt *st = store_q(s, Q_PIN_SET);
  sqlite3_bind_text(st, 1, nick, -1, SQLITE_STATIC);
  sqlite3_bind_blob(st, 2, peer, LC_KEY_BYTES, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, (sqlite3_int64)now_ms);
  return store_done(st);
}

/* ---- groups ------------------------------------------------------------ */

static int64_t store_limit(size_t n);

static int store_is_group(lc__store *s, const uint8_t *peer) {
  sqlite3_stmt *st = store_q(s, Q_IS_GROUP);
  sqlite3_bind_blob(st, 1, peer, LC_KEY_BYTES, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  int v = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
  sqlite3_reset(st);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? v : LC_ESTORE;
}

int lc__store_group_op_add(lc__store *s, const uint8_t group[LC_KEY_BYTES],
                           const uint8_t *op, size_t len) {
  if (len > INT32_MAX)
    return LC_ETOOBIG;
  sqlite3_stmt *st = store_q(s, Q_GOP_ADD);
  sqlite3_bind_blob(st, 1, group, LC_KEY_BYTES, SQLITE_STATIC);
  sqlite3_bind_blob(st, 2, op, (int)len, SQLITE_STATIC);
  return store_done(st);
}

int lc__store_group_ops(lc__store *s,
                        void (*each)(void *ctx, const uint8_t *op, size_t len),
                        void *ctx) {
  sqlite3_stmt *st = store_q(s, Q_GOPS);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW)
    each(ctx, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : LC_ESTORE;
}

int lc__store_group_msg_add(lc__store *s, const uint8_t group[LC_KEY_BYTES],
                            const uint8_t msg_id[LC_MSGID_BYTES],
                            const uint8_t author[LC_KEY_BYTES], int outgoing,
                            uint64_t seq, uint64_t lamport, uint64_t sent_ms,
                            uint64_t now_ms, const char *text, size_t len,
                            const uint8_t *env, size_t env_len, int64_t *id) {
  if (len > INT32_MAX || env_len > INT32_MAX || seq > INT64_MAX ||
      lamport > INT64_MAX)
    return LC_ETOOBIG;
  int rc = store_tx_begin(s);
  if (rc < 0)
    return rc;
  sqlite3_stmt *st = store_q(s, Q_GMSG_ADD);
  sqlite3_bind_blob(st, 1, group, LC_KEY_BYTES, SQLITE_STATIC);
  sqlite3_bind_blob(st, 2, author, LC_KEY_BYTES, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, (sqlite3_int64)seq);
  sqlite3_bind_int64(st, 4, (sqlite3_int64)lamport);
  sqlite3_bind_blob(st, 5, env, (int)env_len, SQLITE_STATIC);
  rc = store_done(st);
  int fresh = rc == 0 && sqlite3_changes(s->db) > 0;
  int64_t rowid = 0;
  if (fresh) {
    rc = store_insert(s, group, msg_id, outgoing,
                      outgoing ? LC_MSG_SENT : LC_MSG_DELIVERED, sent_ms,
                      now_ms, text, len, &rowid);
    if (rc == LC_EEXIST)
      rc = 0; /* the message is here already (a delete is not undone) */
    if (rc == 0 && rowid) {
      st = store_q(s, Q_GMSG_MSG);
      sqlite3_bind_int64(st, 1, rowid);
      sqlite3_bind_blob(st, 2, author, LC_KEY_BYTES, SQLITE_STATIC);
      sqlite3_bind_int64(st, 3, (sqlite3_int64)lamport);
      rc = store_done(st);
    }
    if (rc == 0) {
      st = store_q(s, Q_CONV_GROUP);
      sqlite3_bind_int64(st, 1, store_conv(s, group, 0));
      rc = store_done(st);
    }
  }
  rc = store_tx_end(s, rc);
  if (rc == 0 && fresh && id)
    *id = rowid;
  return rc < 0 ? rc : fresh;
}

int lc__store_group_msgs_after(
    lc__store *s, const uint8_t group[LC_KEY_BYTES],
    const uint8_t author[LC_KEY_BYTES], uint64_t after, size_t max,
    void (*each)(void *ctx, const uint8_t *env, size_t len), void *ctx) {
  sqlite3_stmt *st = store_q(s, Q_GMSGS_AFTER);
  sqlite3_bind_blob(st, 1, group, LC_KEY_BYTES, SQLITE_STATIC);
  sqlite3_bind_blob(st, 2, author, LC_KEY_BYTES, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, after > INT64_MAX ? INT64_MAX : (int64_t)after);
  sqlite3_bind_int64(st, 4, store_limit(max));
  int rc, n = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    each(ctx, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
    n++;
  }
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? n : LC_ESTORE;
}

int lc__store_group_seqs(lc__store *s,
                         void (*each)(void *ctx, const uint8_t *group,
                                      const uint8_t *author, uint64_t seq,
                                      uint64_t lamport),
                         void *ctx) {
  sqlite3_stmt *st = store_q(s, Q_GSEQS);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    uint8_t g[LC_KEY_BYTES], a[LC_KEY_BYTES];
    store_blob(st, 0, g, LC_KEY_BYTES);
    store_blob(st, 1, a, LC_KEY_BYTES);
    each(ctx, g, a, (uint64_t)sqlite3_column_int64(st, 2),
         (uint64_t)sqlite3_column_int64(st, 3));
  }
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : LC_ESTORE;
}

/* ---- relays ------------------------------------------------------------ */

int lc__store_relay_add(lc__store *s, const uint8_t recipient[LC_KEY_BYTES],
                        const uint8_t msg_id[LC_MSGID_BYTES],
                        const uint8_t from[LC_KEY_BYTES], uint64_t expires_ms,
                        const uint8_t *box, size_t len) {
  if (len > INT32_MAX || expires_ms > INT64_MAX)
    return LC_ETOOBIG;
  sqlite3_stmt *st = store_q(s, Q_RELAY_ADD);
  sqlite3_bind_blob(st, 1, msg_id, LC_MSGID_BYTES, SQLITE_STATIC);
  sqlite3_bind_blob(st, 2, recipient, LC_KEY_BYTES, SQLITE_STATIC);
  sqlite3_bind_blob(st, 3, from, LC_KEY_BYTES, SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, (sqlite3_int64)expires_ms);
  sqlite3_bind_blob(st, 5, box, (int)len, SQLITE_STATIC);
  if (store_done(st) < 0)
    return LC_ESTORE;
  return sqlite3_changes(s->db) > 0;
}

int lc__store_relays_for(lc__store *s, const uint8_t recipient[LC_KEY_BYTES],
                         void (*each)(void *ctx, const uint8_t *msg_id,
                                      uint64_t expires_ms, const uint8_t *box,
                                      size_t len),
                         void *ctx) {
  sqlite3_stmt *st = store_q(s, Q_RELAYS_FOR);
  sqlite3_bind_blob(st, 1, recipient, LC_KEY_BYTES, SQLITE_STATIC);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    uint8_t id[LC_MSGID_BYTES];
    store_blob(st, 0, id, LC_MSGID_BYTES);
    each(ctx, id, (uint64_t)sqlite3_column_int64(st, 1),
         sqlite3_column_blob(st, 2), (size_t)sqlite3_column_bytes(st, 2));
  }
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : LC_ESTORE;
}

int lc__store_relay_done(lc__store *s, const uint8_t msg_id[LC_MSGID_BYTES]) {
  sqlite3_stmt *st = store_q(s, Q_RELAY_DEL);
  sqlite3_bind_blob(st, 1, msg_id, LC_MSGID_BYTES, SQLITE_STATIC);
  if (store_done(st) < 0)
    return LC_ESTORE;
  return sqlite3_changes(s->db) > 0;
}

int lc__store_relay_purge(lc__store *s, uint64_t now_ms) {
  sqlite3_stmt *st = store_q(s, Q_RELAY_PURGE);
  sqlite3_bind_int64(st, 1, now_ms > INT64_MAX ? INT64_MAX : (int64_t)now_ms);
  if (store_done(st) < 0)
    return LC_ESTORE;
  return sqlite3_changes(s->db);
}

int64_t lc__store_relay_count(lc__store *s) {
  sqlite3_stmt *st = store_q(s, Q_RELAY_COUNT);
  int rc = sqlite3_step(st);
  int64_t n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : LC_ESTORE;
  sqlite3_reset(st);
  return n;
}

int lc__store_action_done(lc__store *s,
                          const uint8_t action_id[LC_MSGID_BYTES]) {
  sqlite3_stmt *st = store_q(s, Q_ACTION_DEL);
  sqlite3_bind_blob(st, 1, action_id, LC_MSGID_BYTES, SQLITE_STATIC);
  if (store_done(st) < 0)
    return LC_ESTORE;
  return sqlite3_changes(s->db) > 0;
}

static int64_t store_limit(size_t n) {
  return n > INT32_MAX ? INT32_MAX : (int64_t)n;
}

/* ---- read receipts owed ------------------------------------------------- */

int lc__store_receipts_add(lc__store *s, const uint8_t peer[LC_KEY_BYTES],
                           uint8_t (*ids)[LC_MSGID_BYTES], size_t n) {
  int rc = store_tx_begin(s);
  for (size_t i = 0; rc == 0 && i < n; i++) {
    sqlite3_stmt *st = store_q(s, Q_RCPT_ADD);
    sqlite3_bind_blob(st, 1, peer, LC_KEY_BYTES, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, ids[i], LC_MSGID_BYTES, SQLITE_STATIC);
    rc = store_done(st);
  }
  return store_tx_end(s, rc);
}

int lc__store_receipts(lc__store *s, const uint8_t peer[LC_KEY_BYTES],
                       uint8_t (*ids)[LC_MSGID_BYTES], size_t max) {
  sqlite3_stmt *st = store_q(s, Q_RCPT_LIST);
  sqlite3_bind_blob(st, 1, peer, LC_KEY_BYTES, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, store_limit(max));
  size_t n = 0;
  while (n < max && sqlite3_step(st) == SQLITE_ROW)
    store_blob(st, 0, ids[n++], LC_MSGID_BYTES);
  sqlite3_reset(st);
  return (int)n;
}

int lc__store_receipts_done(lc__store *s, uint8_t (*ids)[LC_MSGID_BYTES],
                            size_t n) {
  int rc = store_tx_begin(s);
  for (size_t i = 0; rc == 0 && i < n; i++) {
    sqlite3_stmt *st = store_q(s, Q_RCPT_DEL);
    sqlite3_bind_blob(st, 1, ids[i], LC_MSGID_BYTES, SQLITE_STATIC);
    rc = store_done(st);
  }
  return store_tx_end(s, rc);
}

/* ---- reading ------------------------------------------------------------ */

int lc__store_outbox(lc__store *s, const uint8_t *peer, lc__stored_msg **out,
                     size_t *count) {
  if (peer)
    return lc__store_outbox_after(s, peer, 0, out, count);
  return store_collect(store_q(s, Q_OUTBOX_ALL), out, count);
}

int lc__store_outbox_after(lc__store *s, const uint8_t peer[LC_KEY_BYTES],
                           int64_t after_id, lc__stored_msg **out,
                           size_t *count) {
  sqlite3_stmt *st = store_q(s, Q_OUTBOX_PEER);
  sqlite3_bind_blob(st, 1, peer, LC_KEY_BYTES, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, after_id);
  return store_collect(st, out, count);
}

static int store_is_group(lc__store *s, const uint8_t *peer);

int lc__store_page(lc__store *s, const uint8_t peer[LC_KEY_BYTES],
                   int64_t before_id, size_t n, lc__stored_msg **out,
                   size_t *count) {
  if (store_is_group(s, peer) == 1) {
    sqlite3_stmt *g = store_q(s, Q_PAGE_GROUP);
    sqlite3_bind_blob(g, 1, peer, LC_KEY_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64(g, 2, before_id > 0 ? before_id : 0);
    sqlite3_bind_int64(g, 3, store_limit(n));
    return store_collect(g, out, count);
  }
  sqlite3_stmt *st = store_q(s, Q_PAGE);
  sqlite3_bind_blob(st, 1, peer, LC_KEY_BYTES, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, before_id > 0 ? before_id : INT64_MAX);
  sqlite3_bind_int64(st, 3, store_limit(n));
  return store_collect(st, out, count);
}

int lc__store_page_after(lc__store *s, const uint8_t peer[LC_KEY_BYTES],
                         int64_t after_id, size_t n, lc__stored_msg **out,
                         size_t *count) {
  sqlite3_stmt *st = store_q(s, Q_PAGE_AFTER);
  sqlite3_bind_blob(st, 1, peer, LC_KEY_BYTES, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, after_id);
  sqlite3_bind_int64(st, 3, store_limit(n));
  return store_collect(st, out, count);
}

/* Messages are stored in the order of our clock (ids only grow, and
 * received_ms is our clock then), so the first message stored at or after
 * a time is found by bisecting the ids: no index of its own to keep up at
 * every insert.  A clock that stepped back makes the answer approximate,
 * never wrong in kind: still a page of that conversation, in order. */
int lc__store_page_before_time(lc__store *s, const uint8_t peer[LC_KEY_BYTES],
                               uint64_t before_ms, size_t n,
                               lc__stored_msg **out, size_t *count) {
  int64_t lo = 1, hi = INT64_MAX;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    sqlite3_stmt *st = store_q(s, Q_PAGE_TIME);
    sqlite3_bind_int64(st, 1, mid);
    int rc = sqlite3_step(st);
    int64_t id = 0;
    uint64_t ms = 0;
    if (rc == SQLITE_ROW) {
      id = sqlite3_column_int64(st, 0);
      ms = (uint64_t)sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
      return LC_ESTORE;
    if (rc == SQLITE_DONE || ms >= before_ms)
      hi = mid; /* the first at or after the time is below mid */
    else
      lo = id + 1; /* everything up to id is older */
  }
  /* lo: the first id at or after the time (or past the end) */
  return lc__store_page(s, peer, lo, n, out, count);
}

int lc__store_get(lc__store *s, const uint8_t msg_id[LC_MSGID_BYTES],
                  lc__stored_msg *out) {
  sqlite3_stmt *st = store_q(s, Q_GET);
  sqlite3_bind_blob(st, 1, msg_id, LC_MSGID_BYTES, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    store_read_msg(st, 0, out);
    sqlite3_reset(st);
    return out->text ? 1 : LC_ENOMEM;
  }
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : LC_ESTORE;
}

static int store_read_conv(sqlite3_stmt *st, void *elem) {
  lc__conversation *c = elem;
  store_blob(st, 0, c->peer, LC_KEY_BYTES);
  c->unread = sqlite3_column_int64(st, 1);
  if (sqlite3_column_type(st, 2) == SQLITE_NULL)
    return 0;
  store_read_msg(st, 2, &c->last);
  c->has_last = c->last.text != NULL;
  return c->has_last ? 0 : LC_ENOMEM;
}

static void store_free_convs(void *a, size_t n) {
  lc__store_conversations_free(a, n);
}

int lc__store_conversations(lc__store *s, lc__conversation **out,
                            size_t *count) {
  *out = NULL;
  *count = 0;
  return store_rows(store_q(s, Q_CONVS), sizeof **out, store_read_conv,
                    store_free_convs, (void **)out, count);
}

void lc__store_conversations_free(lc__conversation *c, size_t count) {
  for (size_t i = 0; c && i < count; i++)
    free(c[i].last.text);
  free(c);
}

int64_t lc__store_unread_total(lc__store *s) {
  sqlite3_stmt *st = store_q(s, Q_UNREAD);
  int64_t n = LC_ESTORE;
  if (sqlite3_step(st) == SQLITE_ROW)
    n = sqlite3_column_int64(st, 0);
  sqlite3_reset(st);
  return n;
}

int lc__store_search(lc__store *s, const uint8_t *peer, const char *query,
                     size_t n, lc__stored_msg **out, size_t *count) {
  *out = NULL;
  *count = 0;
  if (!query || !*query)
    return LC_EINVAL;
  if ((s->fts_pending || s->unindexed) && store_fts_sync(s) < 0)
    return LC_ESTORE; /* the index catches up first */
  sqlite3_stmt *st = store_q(s, peer ? Q_SEARCH_CONV : Q_SEARCH_ALL);
  sqlite3_bind_text(st, 1, query, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, store_limit(n));
  if (peer)
    sqlite3_bind_blob(st, 3, peer, LC_KEY_BYTES, SQLITE_STATIC);
  int rc = store_collect(st, out, count);
  /* FTS5 reports a query it cannot parse as an error of the step */
  if (rc == LC_ESTORE && sqlite3_errcode(s->db) == SQLITE_ERROR)
    return LC_EINVAL;
  return rc;
}

int lc__store_check(lc__store *s) {
  /* the index is compared with the messages: what waits for it first */
  if (store_fts_sync(s) < 0)
    return LC_ESTORE;
  /* this SQL is fixed text: nothing from outside goes into it */
  sqlite3_stmt *st;
  int ok = 0;
  if (sqlite3_prepare_v2(s->db, "PRAGMA integrity_check", -1, &st, NULL) !=
      SQLITE_OK)
    return LC_ESTORE;
  if (sqlite3_step(st) == SQLITE_ROW) {
    const unsigned char *t = sqlite3_column_text(st, 0);
    ok = t && strcmp((const char *)t, "ok") == 0;
  }
  sqlite3_finalize(st);
  if (!ok)
    return LC_ESTORE;
  if (sqlite3_exec(s->db,
                   "INSERT INTO messages_fts(messages_fts, rank)"
                   " VALUES ('integrity-check', 1)",
                   NULL, NULL, NULL) != SQLITE_OK)
    return LC_ESTORE;
  return 0;
}

/* ---- transfers ---------------------------------------------------------- */

static void store_bind_opt_text(sqlite3_stmt *st, int col, const char *t) {
  if (t)
    sqlite3_bind_text(st, col, t, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(st, col);
}

int lc__store_xfer_add(lc__store *s, const lc__xfer_row *x, uint64_t sent_ms,
                       const char *summary, size_t len, int64_t *local_id) {
  if (len > INT32_MAX || x->nfiles == 0)
    return LC_EINVAL;
  int rc = store_tx_begin(s);
  if (rc < 0)
    return rc;
  int64_t rowid = 0;
  rc = store_insert_kind(s, x->peer, x->id, LC_CHAT_FILE, x->outgoing,
                         x->outgoing ? LC_MSG_QUEUED : LC_MSG_DELIVERED,
                         sent_ms, x->created_ms, summary, len, &rowid);
  int fresh = rc == 0;
  if (rc == 0 && x->outgoing) {
    sqlite3_stmt *st = store_q(s, Q_OUTBOX_ADD);
    sqlite3_bind_int64(st, 1, rowid);
    sqlite3_bind_blob(st, 2, x->peer, LC_KEY_BYTES, SQLITE_STATIC);
    rc = store_done(st);
  }
  int64_t xid = 0;
  if (rc == 0) {
    sqlite3_stmt *st = store_q(s, Q_XFER_ADD);
    sqlite3_bind_blob(st, 1, x->id, LC_MSGID_BYTES, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, x->peer, LC_KEY_BYTES, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, x->outgoing);
    sqlite3_bind_int(st, 4, x->kind);
    sqlite3_bind_int(st, 5, x->state);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)x->total);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)x->duration_ms);
    sqlite3_bind_int64(st, 8, (sqlite3_int64)x->created_ms);
    sqlite3_bind_text(st, 9, x->name ? x->name : "", -1, SQLITE_STATIC);
    store_bind_opt_text(st, 10, x->dir);
    rc = store_done(st);
    xid = sqlite3_last_insert_rowid(s->db);
  }
  for (size_t i = 0; rc == 0 && i < x->nfiles; i++) {
    sqlite3_stmt *st = store_q(s, Q_XFER_FILE_ADD);
    sqlite3_bind_int64(st, 1, xid);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)i);
    sqlite3_bind_text(st, 3, x->files[i].path, (int)x->files[i].path_len,
                      SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)x->files[i].size);
    store_bind_opt_text(st, 5, x->files[i].local);
    rc = store_done(st);
  }
  if (rc == LC_EEXIST && !x->outgoing)
    rc = 0; /* a retransmission of an offer we have */
  rc = store_tx_end(s, rc);
  if (rc == 0 && fresh && local_id)
    *local_id = rowid;
  return rc < 0 ? rc : fresh;
}

int lc__store_xfer_update(lc__store *s, const lc__xfer_row *x) {
  sqlite3_stmt *st = store_q(s, Q_XFER_SET);
  sqlite3_bind_blob(st, 1, x->id, LC_MSGID_BYTES, SQLITE_STATIC);
  sqlite3_bind_int(st, 2, x->state);
  sqlite3_bind_int(st, 3, x->err);
  sqlite3_bind_int(st, 4, x->by_peer);
  sqlite3_bind_int(st, 5, x->told);
  sqlite3_bind_int64(st, 6, (sqlite3_int64)x->pos);
  store_bind_opt_text(st, 7, x->dir);
  int rc = store_tx_begin(s);
  if (rc == 0)
    rc = store_done(st);
  return store_tx_end(s, rc);
}

int lc__store_xfer_file_update(lc__store *s, const uint8_t id[LC_MSGID_BYTES],
                               size_t idx, const lc__xfer_file *f) {
  sqlite3_stmt *st = store_q(s, Q_XFER_FILE_SET);
  sqlite3_bind_blob(st, 1, id, LC_MSGID_BYTES, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, (sqlite3_int64)idx);
  store_bind_opt_text(st, 3, f->local);
  if (f->has_hash)
    sqlite3_bind_blob(st, 4, f->hash, LC_XFER_HASH_BYTES, SQLITE_STATIC);
  if (f->has_mine)
    sqlite3_bind_blob(st, 5, f->mine, LC_XFER_HASH_BYTES, SQLITE_STATIC);
  sqlite3_bind_int(st, 6, f->verified);
  int rc = store_tx_begin(s);
  if (rc == 0)
    rc = store_done(st);
  return store_tx_end(s, rc);
}

static int store_read_xfer_file(sqlite3_stmt *st, void *elem) {
  lc__xfer_file *f = elem;
  memset(f, 0, sizeof *f);
  f->path = store_text(st, 1, &f->path_len);
  f->size = (uint64_t)sqlite3_column_int64(st, 2);
  if (sqlite3_column_type(st, 3) != SQLITE_NULL) {
    size_t n;
    f->local = store_text(st, 3, &n);
    if (!f->local) {
      free(f->path);
      return LC_ENOMEM;
    }
  }
  if (sqlite3_column_bytes(st, 4) == LC_XFER_HASH_BYTES) {
    f->has_hash = 1;
    store_blob(st, 4, f->hash, LC_XFER_HASH_BYTES);
  }
  if (sqlite3_column_bytes(st, 5) == LC_XFER_HASH_BYTES) {
    f->has_mine = 1;
    store_blob(st, 5, f->mine, LC_XFER_HASH_BYTES);
  }
  f->verified = sqlite3_column_int(st, 6);
  if (!f->path) {
    free(f->local);
    return LC_ENOMEM;
  }
  return 0;
}

static void store_free_xfer_files(void *array, size_t n) {
  lc__xfer_file *f = array;
  for (size_t i = 0; f && i < n; i++) {
    free(f[i].path);
    free(f[i].local);
  }
  free(f);
}

static int store_read_xfer(sqlite3_stmt *st, void *elem) {
  lc__xfer_row *x = elem;
  memset(x, 0, sizeof *x);
  x->rowid = sqlite3_column_int64(st, 0);
  store_blob(st, 1, x->id, LC_MSGID_BYTES);
  store_blob(st, 2, x->peer, LC_KEY_BYTES);
  x->outgoing = sqlite3_column_int(st, 3);
  x->kind = sqlite3_column_int(st, 4);
  x->state = sqlite3_column_int(st, 5);
  x->err = sqlite3_column_int(st, 6);
  x->by_peer = sqlite3_column_int(st, 7);
  x->told = sqlite3_column_int(st, 8);
  x->total = (uint64_t)sqlite3_column_int64(st, 9);
  x->pos = (uint64_t)sqlite3_column_int64(st, 10);
  x->duration_ms = (uint64_t)sqlite3_column_int64(st, 11);
  x->created_ms = (uint64_t)sqlite3_column_int64(st, 12);
  size_t n;
  x->name = store_text(st, 13, &n);
  if (sqlite3_column_type(st, 14) != SQLITE_NULL)
    x->dir = store_text(st, 14, &n);
  if (!x->name || (sqlite3_column_type(st, 14) != SQLITE_NULL && !x->dir)) {
    free(x->name);
    free(x->dir);
    return LC_ENOMEM;
  }
  return 0;
}

static void store_free_xfers(void *array, size_t n) {
  lc__store_xfers_free(array, n);
}

/* The files of each transfer read (a second statement: not while the
 * first one steps). */
static int store_xfer_files(lc__store *s, lc__xfer_row *x) {
  sqlite3_stmt *st = store_q(s, Q_XFER_FILES);
  sqlite3_bind_int64(st, 1, x->rowid);
  void *v = NULL;
  int rc = store_rows(st, sizeof(lc__xfer_file), store_read_xfer_file,
                      store_free_xfer_files, &v, &x->nfiles);
  x->files = v;
  return rc;
}

int lc__store_xfer_get(lc__store *s, const uint8_t id[LC_MSGID_BYTES],
                       lc__xfer_row *out) {
  memset(out, 0, sizeof *out);
  sqlite3_stmt *st = store_q(s, Q_XFER_GET);
  sqlite3_bind_blob(st, 1, id, LC_MSGID_BYTES, SQLITE_STATIC);
  void *v = NULL;
  size_t n = 0;
  int rc = store_rows(st, sizeof(lc__xfer_row), store_read_xfer,
                      store_free_xfers, &v, &n);
  if (rc < 0)
    return rc;
  if (n == 0) {
    free(v);
    return 0;
  }
  *out = *(lc__xfer_row *)v;
  free(v);
  rc = store_xfer_files(s, out);
  if (rc < 0) {
    lc__store_xfer_clear(out);
    return rc;
  }
  return 1;
}

int lc__store_xfers(lc__store *s, int which, lc__xfer_row **out,
                    size_t *count) {
  sqlite3_stmt *st = store_q(s, Q_XFER_LIST);
  sqlite3_bind_int(st, 1, which);
  void *v = NULL;
  int rc = store_rows(st, sizeof(lc__xfer_row), store_read_xfer,
                      store_free_xfers, &v, count);
  if (rc < 0)
    return rc;
  lc__xfer_row *x = v;
  for (size_t i = 0; i < *count; i++) {
    rc = store_xfer_files(s, &x[i]);
    if (rc < 0) {
      lc__store_xfers_free(x, *count);
      *count = 0;
      return rc;
    }
  }
  *out = x;
  return 0;
}

void lc__store_xfer_clear(lc__xfer_row *x) {
  if (!x)
    return;
  free(x->name);
  free(x->dir);
  store_free_xfer_files(x->files, x->nfiles);
  x->name = x->dir = NULL;
  x->files = NULL;
  x->nfiles = 0;
}

void lc__store_xfers_free(lc__xfer_row *x, size_t count) {
  for (size_t i = 0; x && i < count; i++)
    lc__store_xfer_clear(&x[i]);
  free(x);
}

void lc__store_msg_clear(lc__stored_msg *m) {
  if (m) {
    free(m->text);
    m->text = NULL;
  }
}

void lc__store_msgs_free(lc__stored_msg *m, size_t count) {
  for (size_t i = 0; m && i < count; i++)
    free(m[i].text);
  free(m);
}
