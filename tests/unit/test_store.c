/* test_store.c: the SQLite store (src/store.h): the outbox and message
 * states, duplicates, unread counts, paging, mark read, search, deletion,
 * batches, and opening stores of other schema versions.  The test itself
 * includes sqlite3.h only to fabricate files of other versions. */
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
#include <sqlite3.h>

#include "export.h"
#include "store.h"
#include "wire.h"

typedef struct {
  char dir[64];
  char path[96];
  lc__store *s;
} ts_fixture;

static int ts_setup(void **state) {
  ts_fixture *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/lc-test-store-XXXXXX");
  if (!mkdtemp(f->dir))
    return -1;
  snprintf(f->path, sizeof f->path, "%s/history.db", f->dir);
  if (lc__store_open(&f->s, f->path, NULL) != 0)
    return -1;
  *state = f;
  return 0;
}

static int ts_teardown(void **state) {
  ts_fixture *f = *state;
  /* whatever a test did, the file and its full-text index are sound */
  assert_int_equal(lc__store_check(f->s), 0);
  lc__store_close(f->s);
  char p[128];
  const char *suffix[] = {"", "-wal", "-shm"};
  for (int i = 0; i < 3; i++) {
    snprintf(p, sizeof p, "%s%s", f->path, suffix[i]);
    unlink(p);
  }
  rmdir(f->dir);
  free(f);
  return 0;
}

static void ts_key(uint8_t k[LC_KEY_BYTES], int who) {
  memset(k, 0, LC_KEY_BYTES);
  k[0] = (uint8_t)who;
}

static void ts_id(uint8_t id[LC_MSGID_BYTES], int n) {
  memset(id, 0, LC_MSGID_BYTES);
  memcpy(id, &n, sizeof n);
  id[15] = 0x5a;
}

static void test_outbox_and_states(void **state) {
  ts_fixture *f = *state;
  uint8_t bob[LC_KEY_BYTES], id[LC_MSGID_BYTES];
  ts_key(bob, 2);
  for (int i = 0; i < 3; i++) {
    char t[16];
    snprintf(t, sizeof t, "m%d", i);
    ts_id(id, i);
    int64_t rowid = 0;
    assert_int_equal(lc__store_add_outgoing(f->s, bob, id, 1000 + i, 2000 + i,
                                            t, strlen(t), &rowid),
                     0);
    assert_true(rowid > 0);
  }
  /* the same id again is refused */
  ts_id(id, 1);
  assert_int_equal(lc__store_add_outgoing(f->s, bob, id, 1, 1, "x", 1, NULL),
                   LC_EEXIST);
  lc__stored_msg *m;
  size_t n;
  assert_int_equal(lc__store_outbox(f->s, bob, &m, &n), 0);
  assert_int_equal(n, 3);
  for (size_t i = 0; i < n; i++) {
    char t[32];
    snprintf(t, sizeof t, "m%zu", i);
    assert_string_equal(m[i].text, t);
    assert_int_equal(m[i].state, LC_MSG_QUEUED);
    assert_int_equal(m[i].outgoing, 1);
    assert_memory_equal(m[i].peer, bob, LC_KEY_BYTES);
  }
  lc__store_msgs_free(m, n);

  ts_id(id, 0);
  assert_int_equal(lc__store_set_state(f->s, id, LC_MSG_SENT), 1);
  assert_int_equal(lc__store_set_state(f->s, id, LC_MSG_SENT), 0);
  assert_int_equal(lc__store_set_state(f->s, id, LC_MSG_QUEUED), 0);
  assert_int_equal(lc__store_set_state(f->s, id, LC_MSG_DELIVERED), 1);
  assert_int_equal(lc__store_set_state(f->s, id, LC_MSG_FAILED), 0);
  assert_int_equal(lc__store_set_state(f->s, id, LC_MSG_SENT), 0);
  assert_int_equal(lc__store_set_state(f->s, id, LC_MSG_READ), 1);
  ts_id(id, 1);
  assert_int_equal(lc__store_set_state(f->s, id, LC_MSG_FAILED), 1);
  assert_int_equal(lc__store_set_state(f->s, id, LC_MSG_QUEUED), 1);
  assert_int_equal(lc__store_set_state(f->s, id, 9), LC_EINVAL);
  ts_id(id, 99);
  assert_int_equal(lc__store_set_state(f->s, id, LC_MSG_DELIVERED), 0);

  /* delivered left the outbox; the others are still there, in order */
  assert_int_equal(lc__store_outbox(f->s, NULL, &m, &n), 0);
  assert_int_equal(n, 2);
  assert_string_equal(m[0].text, "m1");
  assert_string_equal(m[1].text, "m2");
  lc__store_msgs_free(m, n);
  lc__stored_msg one;
  ts_id(id, 0);
  assert_int_equal(lc__store_get(f->s, id, &one), 1);
  assert_int_equal(one.state, LC_MSG_READ);
  assert_true(one.sent_ms == 1000 && one.received_ms == 2000);
  lc__store_msg_clear(&one);
  /* outgoing messages are never unread */
  assert_int_equal(lc__store_unread_total(f->s), 0);
}

static void test_incoming_unread_conversations(void **state) {
  ts_fixture *f = *state;
  uint8_t bob[LC_KEY_BYTES], carol[LC_KEY_BYTES], id[LC_MSGID_BYTES];
  ts_key(bob, 2);
  ts_key(carol, 3);
  for (int i = 0; i < 5; i++) {
    ts_id(id, 100 + i);
    assert_int_equal(
        lc__store_add_incoming(f->s, bob, id, 10 + i, 20 + i, "hi", 2, NULL),
        1);
    /* a retransmission changes nothing */
    assert_int_equal(
        lc__store_add_incoming(f->s, bob, id, 10 + i, 99, "other", 5, NULL), 0);
  }
  ts_id(id, 200);
  assert_int_equal(
      lc__store_add_incoming(f->s, carol, id, 30, 40, "from carol", 10, NULL),
      1);
  ts_id(id, 201);
  assert_int_equal(
      lc__store_add_outgoing(f->s, bob, id, 50, 60, "to bob", 6, NULL), 0);
  assert_int_equal(lc__store_unread_total(f->s), 6);

  lc__conversation *c;
  size_t n;
  assert_int_equal(lc__store_conversations(f->s, &c, &n), 0);
  assert_int_equal(n, 2);
  /* the most recent first: bob (our reply), then carol */
  assert_memory_equal(c[0].peer, bob, LC_KEY_BYTES);
  assert_int_equal(c[0].unread, 5);
  assert_true(c[0].has_last);
  assert_string_equal(c[0].last.text, "to bob");
  assert_memory_equal(c[1].peer, carol, LC_KEY_BYTES);
  assert_int_equal(c[1].unread, 1);
  assert_string_equal(c[1].last.text, "from carol");
  lc__store_conversations_free(c, n);

  /* mark read up to the third of bob's, then all */
  lc__stored_msg *m;
  size_t k;
  assert_int_equal(lc__store_page(f->s, bob, 0, 100, &m, &k), 0);
  assert_int_equal(k, 6);
  int64_t third = m[3].id; /* newest first: [5] is the oldest */
  lc__store_msgs_free(m, k);
  uint8_t(*ids)[LC_MSGID_BYTES];
  size_t nid;
  assert_int_equal(lc__store_mark_read(f->s, bob, third, &ids, &nid), 3);
  assert_int_equal(nid, 3);
  ts_id(id, 100);
  assert_memory_equal(ids[0], id, LC_MSGID_BYTES);
  free(ids);
  assert_int_equal(lc__store_unread_total(f->s), 3);
  assert_int_equal(lc__store_mark_read(f->s, bob, 0, &ids, &nid), 2);
  free(ids);
  assert_int_equal(lc__store_mark_read(f->s, bob, 0, &ids, &nid), 0);
  free(ids);
  assert_int_equal(lc__store_unread_total(f->s), 1);
  ts_id(id, 104);
  lc__stored_msg one;
  assert_int_equal(lc__store_get(f->s, id, &one), 1);
  assert_int_equal(one.state, LC_MSG_READ);
  assert_string_equal(one.text, "hi");
  lc__store_msg_clear(&one);
}

static void test_paging(void **state) {
  ts_fixture *f = *state;
  uint8_t bob[LC_KEY_BYTES], carol[LC_KEY_BYTES], id[LC_MSGID_BYTES];
  ts_key(bob, 2);
  ts_key(carol, 3);
  assert_int_equal(lc__store_begin(f->s), 0);
  assert_int_equal(lc__store_begin(f->s), 0); /* nested: one commit */
  assert_int_equal(lc__store_in_batch(f->s), 1);
  for (int i = 0; i < 120; i++) {
    char t[16];
    snprintf(t, sizeof t, "n%03d", i);
    ts_id(id, i);
    /* interleave another conversation: pages must not mix them (stored
     * one a millisecond, as our clock would) */
    assert_int_equal(lc__store_add_incoming(f->s, bob, id, (uint64_t)i,
                                            2000 + 2 * (uint64_t)i, t,
                                            strlen(t), NULL),
                     1);
    ts_id(id, 1000 + i);
    assert_int_equal(lc__store_add_incoming(f->s, carol, id, 0,
                                            2001 + 2 * (uint64_t)i, "c", 1,
                                            NULL),
                     1);
  }
  assert_int_equal(lc__store_commit(f->s), 0);
  assert_int_equal(lc__store_in_batch(f->s), 1); /* the outer one is open */
  assert_int_equal(lc__store_commit(f->s), 0);
  assert_int_equal(lc__store_in_batch(f->s), 0);
  assert_int_equal(lc__store_commit(f->s), LC_ESTATE);
  lc__stored_msg *m;
  size_t n;
  int expect = 119;
  int64_t before = 0;
  int pages = 0;
  for (;;) {
    assert_int_equal(lc__store_page(f->s, bob, before, 50, &m, &n), 0);
    if (n == 0) {
      lc__store_msgs_free(m, n);
      break;
    }
    pages++;
    for (size_t i = 0; i < n; i++) {
      char t[16];
      snprintf(t, sizeof t, "n%03d", expect--);
      assert_string_equal(m[i].text, t);
      assert_memory_equal(m[i].peer, bob, LC_KEY_BYTES);
    }
    before = m[n - 1].id;
    lc__store_msgs_free(m, n);
  }
  assert_int_equal(pages, 3);
  assert_int_equal(expect, -1);
  /* by time: the 10 stored before 2100 are n049..n040; edges too */
  assert_int_equal(lc__store_page_before_time(f->s, bob, 2100, 10, &m, &n), 0);
  assert_int_equal(n, 10);
  assert_string_equal(m[0].text, "n049");
  assert_string_equal(m[9].text, "n040");
  lc__store_msgs_free(m, n);
  assert_int_equal(lc__store_page_before_time(f->s, bob, 2099, 1, &m, &n), 0);
  assert_string_equal(m[0].text, "n049"); /* 2098 < 2099 */
  lc__store_msgs_free(m, n);
  assert_int_equal(lc__store_page_before_time(f->s, bob, 2000, 5, &m, &n), 0);
  assert_int_equal(n, 0); /* nothing before the first */
  lc__store_msgs_free(m, n);
  assert_int_equal(lc__store_page_before_time(f->s, bob, UINT64_MAX, 1, &m, &n),
                   0);
  assert_string_equal(m[0].text, "n119"); /* the newest */
  lc__store_msgs_free(m, n);
  /* an unknown conversation has no history */
  uint8_t nobody[LC_KEY_BYTES];
  ts_key(nobody, 9);
  assert_int_equal(lc__store_page(f->s, nobody, 0, 10, &m, &n), 0);
  assert_int_equal(n, 0);
  lc__store_msgs_free(m, n);
}

static void test_search_and_delete(void **state) {
  ts_fixture *f = *state;
  uint8_t bob[LC_KEY_BYTES], carol[LC_KEY_BYTES], id[LC_MSGID_BYTES];
  ts_key(bob, 2);
  ts_key(carol, 3);
  const char *texts[] = {"lunch at noon?", "the quarterly report is late",
                         "Lunch tomorrow instead", "réunion à midi",
                         "report sent"};
  for (int i = 0; i < 5; i++) {
    ts_id(id, i);
    assert_int_equal(lc__store_add_incoming(f->s, i % 2 ? carol : bob, id, 1,
                                            (uint64_t)i, texts[i],
                                            strlen(texts[i]), NULL),
                     1);
  }
  lc__stored_msg *m;
  size_t n;
  assert_int_equal(lc__store_search(f->s, NULL, "lunch", 10, &m, &n), 0);
  assert_int_equal(n, 2); /* case-insensitive, newest first */
  assert_string_equal(m[0].text, "Lunch tomorrow instead");
  lc__store_msgs_free(m, n);
  assert_int_equal(lc__store_search(f->s, carol, "report", 10, &m, &n), 0);
  assert_int_equal(n, 1);
  assert_string_equal(m[0].text, "the quarterly report is late");
  lc__store_msgs_free(m, n);
  assert_int_equal(lc__store_search(f->s, NULL, "rep*", 10, &m, &n), 0);
  assert_int_equal(n, 2);
  lc__store_msgs_free(m, n);
  assert_int_equal(lc__store_search(f->s, NULL, "\"report is\"", 10, &m, &n),
                   0);
  assert_int_equal(n, 1);
  lc__store_msgs_free(m, n);
  assert_int_equal(lc__store_search(f->s, NULL, "réunion", 10, &m, &n), 0);
  assert_int_equal(n, 1);
  lc__store_msgs_free(m, n);
  assert_int_equal(lc__store_search(f->s, NULL, "\"unbalanced", 10, &m, &n),
                   LC_EINVAL);
  assert_int_equal(lc__store_search(f->s, NULL, "", 10, &m, &n), LC_EINVAL);

  /* delete one message: gone from search, unread and last message follow */
  assert_int_equal(lc__store_search(f->s, NULL, "sent", 10, &m, &n), 0);
  assert_int_equal(n, 1);
  int64_t victim = m[0].id;
  lc__store_msgs_free(m, n);
  assert_int_equal(lc__store_unread_total(f->s), 5);
  assert_int_equal(lc__store_delete_message(f->s, victim), 1);
  assert_int_equal(lc__store_delete_message(f->s, victim), 0);
  assert_int_equal(lc__store_unread_total(f->s), 4);
  assert_int_equal(lc__store_search(f->s, NULL, "sent", 10, &m, &n), 0);
  assert_int_equal(n, 0);
  lc__store_msgs_free(m, n);
  lc__conversation *c;
  size_t nc;
  assert_int_equal(lc__store_conversations(f->s, &c, &nc), 0);
  assert_int_equal(nc, 2);
  for (size_t i = 0; i < nc; i++)
    if (!memcmp(c[i].peer, bob, LC_KEY_BYTES))
      assert_string_equal(c[i].last.text, "Lunch tomorrow instead");
  lc__store_conversations_free(c, nc);
  /* delete a conversation: its messages, index entries and unread go */
  assert_int_equal(lc__store_delete_conversation(f->s, carol), 1);
  assert_int_equal(lc__store_delete_conversation(f->s, carol), 0);
  assert_int_equal(lc__store_unread_total(f->s), 2); /* bob's two left */
  assert_int_equal(lc__store_search(f->s, NULL, "report", 10, &m, &n), 0);
  assert_int_equal(n, 0);
  lc__store_msgs_free(m, n);
  ts_id(id, 1);
  lc__stored_msg one;
  assert_int_equal(lc__store_get(f->s, id, &one), 0);
}

static void test_edit_retract(void **state) {
  ts_fixture *f = *state;
  uint8_t bob[LC_KEY_BYTES], carol[LC_KEY_BYTES];
  uint8_t mine[LC_MSGID_BYTES], theirs[LC_MSGID_BYTES], act[LC_MSGID_BYTES];
  uint8_t peer[LC_KEY_BYTES];
  ts_key(bob, 2);
  ts_key(carol, 3);
  ts_id(mine, 1);
  ts_id(theirs, 2);
  assert_int_equal(
      lc__store_add_outgoing(f->s, bob, mine, 100, 100, "helo wrld", 9, NULL),
      0);
  assert_int_equal(
      lc__store_add_incoming(f->s, bob, theirs, 100, 101, "original", 8, NULL),
      1);
  /* our own message: edited, the action recorded for bob */
  ts_id(act, 10);
  assert_int_equal(lc__store_change_own(f->s, LC_CHAT_EDIT, mine, act, 200,
                                        "hello world", 11, peer),
                   1);
  assert_memory_equal(peer, bob, LC_KEY_BYTES);
  lc__stored_msg m;
  assert_int_equal(lc__store_get(f->s, mine, &m), 1);
  assert_string_equal(m.text, "hello world");
  assert_true(m.edited_ms == 200);
  lc__store_msg_clear(&m);
  /* the index follows the edit */
  lc__stored_msg *v;
  size_t n;
  assert_int_equal(lc__store_search(f->s, NULL, "wrld", 10, &v, &n), 0);
  assert_int_equal(n, 0);
  lc__store_msgs_free(v, n);
  assert_int_equal(lc__store_search(f->s, NULL, "world", 10, &v, &n), 0);
  assert_int_equal(n, 1);
  lc__store_msgs_free(v, n);
  /* not ours: refused */
  ts_id(act, 11);
  assert_int_equal(lc__store_change_own(f->s, LC_CHAT_EDIT, theirs, act, 200,
                                        "forged", 6, peer),
                   0);
  /* retract: empty, marked, and no edit after it */
  ts_id(act, 12);
  assert_int_equal(lc__store_change_own(f->s, LC_CHAT_RETRACT, mine, act, 150,
                                        NULL, 0, peer),
                   1);
  assert_int_equal(lc__store_get(f->s, mine, &m), 1);
  assert_string_equal(m.text, "");
  assert_int_equal(m.retracted, 1);
  assert_true(m.edited_ms == 201); /* never before the last change */
  lc__store_msg_clear(&m);
  ts_id(act, 13);
  assert_int_equal(lc__store_change_own(f->s, LC_CHAT_EDIT, mine, act, 300,
                                        "again", 5, peer),
                   0);
  lc__store_action *a;
  assert_int_equal(lc__store_actions(f->s, bob, &a, &n), 0);
  assert_int_equal(n, 2);
  assert_int_equal(a[0].kind, LC_CHAT_EDIT);
  assert_string_equal(a[0].text, "hello world");
  assert_memory_equal(a[0].target, mine, LC_MSGID_BYTES);
  assert_int_equal(a[1].kind, LC_CHAT_RETRACT);
  ts_id(act, 10);
  assert_memory_equal(a[0].action_id, act, LC_MSGID_BYTES);
  lc__store_actions_free(a, n);
  assert_int_equal(lc__store_action_done(f->s, act), 1);
  assert_int_equal(lc__store_action_done(f->s, act), 0);
  assert_int_equal(lc__store_actions(f->s, bob, &a, &n), 0);
  assert_int_equal(n, 1);
  lc__store_actions_free(a, n);

  /* the peer's changes: only from the author, only newer */
  assert_int_equal(lc__store_apply_change(f->s, carol, LC_CHAT_EDIT, theirs,
                                          500, "forged", 6),
                   0);
  assert_int_equal(
      lc__store_apply_change(f->s, bob, LC_CHAT_EDIT, theirs, 500, "edited", 6),
      1);
  assert_int_equal(
      lc__store_apply_change(f->s, bob, LC_CHAT_EDIT, theirs, 400, "older", 5),
      0);
  assert_int_equal(lc__store_apply_change(f->s, bob, LC_CHAT_EDIT, mine, 900,
                                          "not yours", 9),
                   0);
  assert_int_equal(lc__store_get(f->s, theirs, &m), 1);
  assert_string_equal(m.text, "edited");
  lc__store_msg_clear(&m);
  assert_int_equal(
      lc__store_apply_change(f->s, bob, LC_CHAT_RETRACT, theirs, 600, NULL, 0),
      1);
  assert_int_equal(
      lc__store_apply_change(f->s, bob, LC_CHAT_EDIT, theirs, 700, "back", 4),
      0);
  assert_int_equal(lc__store_search(f->s, NULL, "edited", 10, &v, &n), 0);
  assert_int_equal(n, 0);
  lc__store_msgs_free(v, n);
  /* deleting an edited message keeps the index consistent */
  assert_int_equal(lc__store_get(f->s, theirs, &m), 1);
  assert_int_equal(lc__store_delete_message(f->s, m.id), 1);
  lc__store_msg_clear(&m);
  assert_int_equal(lc__store_search(f->s, NULL, "hello", 10, &v, &n), 0);
  assert_int_equal(n, 0); /* retracted: not searchable */
  lc__store_msgs_free(v, n);
}

static void test_export_escaping(void **state) {
  (void)state;
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  const char s[] = "a\"b\\c\nd\te\x01"
                   "f\x7f é €";
  assert_int_equal(lc__export_json_string(f, s, sizeof s - 1), 0);
  fclose(f);
  assert_string_equal(buf, "\"a\\\"b\\\\c\\nd\\te\\u0001f\\u007f é €\"");
  free(buf);
  lc__stored_msg m;
  memset(&m, 0, sizeof m);
  m.id = 7;
  m.outgoing = 0;
  m.state = LC_MSG_READ;
  m.sent_ms = 1000;
  m.text = (char *)"two\nlines";
  m.text_len = 9;
  m.edited_ms = 5;
  f = open_memstream(&buf, &len);
  assert_int_equal(lc__export_jsonl(f, &m), 0);
  assert_int_equal(lc__export_text(f, &m, "bob"), 0);
  fclose(f);
  assert_non_null(strstr(buf, "\"state\":\"read\""));
  assert_non_null(strstr(buf, "\"text\":\"two\\nlines\"}\n"));
  assert_non_null(strstr(buf, "] bob: two\n    lines (edited)\n"));
  free(buf);
}

/* In one batch: messages added, some read, one deleted, before the commit
 * sums them into their conversations and the index: the counts agree. */
static void test_batch_consistency(void **state) {
  ts_fixture *f = *state;
  uint8_t bob[LC_KEY_BYTES], carol[LC_KEY_BYTES], id[LC_MSGID_BYTES];
  ts_key(bob, 2);
  ts_key(carol, 3);
  ts_id(id, 500);
  assert_int_equal(
      lc__store_add_incoming(f->s, bob, id, 1, 1, "before batch", 12, NULL), 1);
  assert_int_equal(lc__store_begin(f->s), 0);
  int64_t last_bob = 0, victim = 0;
  for (int i = 0; i < 10; i++) {
    ts_id(id, 600 + i);
    int64_t rowid;
    assert_int_equal(lc__store_add_incoming(f->s, i % 2 ? carol : bob, id, 2, 2,
                                            "in batch", 8, &rowid),
                     1);
    if (i % 2 == 0)
      last_bob = rowid;
    if (i == 3)
      victim = rowid;
  }
  /* read bob's up to the third of the batch, delete one of carol's */
  uint8_t(*ids)[LC_MSGID_BYTES];
  size_t n;
  ts_id(id, 604);
  lc__stored_msg m;
  assert_int_equal(lc__store_get(f->s, id, &m), 1);
  int64_t upto = m.id;
  lc__store_msg_clear(&m);
  assert_int_equal(lc__store_mark_read(f->s, bob, upto, &ids, &n), 4);
  free(ids);
  assert_int_equal(lc__store_delete_message(f->s, victim), 1);
  assert_int_equal(lc__store_commit(f->s), 0);
  /* bob: 1 + 5 received, 4 read -> 2 unread; carol: 5 - 1 deleted */
  lc__conversation *c;
  size_t nc;
  assert_int_equal(lc__store_conversations(f->s, &c, &nc), 0);
  assert_int_equal(nc, 2);
  for (size_t i = 0; i < nc; i++) {
    if (!memcmp(c[i].peer, bob, LC_KEY_BYTES)) {
      assert_int_equal(c[i].unread, 2);
      assert_true(c[i].last.id == last_bob);
    } else {
      assert_int_equal(c[i].unread, 4);
    }
  }
  lc__store_conversations_free(c, nc);
  assert_int_equal(lc__store_unread_total(f->s), 6);
  lc__stored_msg *v;
  assert_int_equal(lc__store_search(f->s, NULL, "batch", 20, &v, &n), 0);
  assert_int_equal(n, 10); /* 9 in the batch + "before batch" */
  lc__store_msgs_free(v, n);

  /* a call that fails inside a batch leaves nothing of itself: an
   * outgoing message to a new peer whose id is taken leaves no
   * conversation (created before the insert failed), no outbox entry, and
   * the rest of the batch commits */
  uint8_t dave[LC_KEY_BYTES];
  ts_key(dave, 4);
  assert_int_equal(lc__store_begin(f->s), 0);
  ts_id(id, 700);
  assert_int_equal(
      lc__store_add_incoming(f->s, carol, id, 3, 3, "kept", 4, NULL), 1);
  assert_true(lc__store_add_outgoing(f->s, dave, id, 3, 3, "dup", 3, NULL) < 0);
  assert_int_equal(lc__store_commit(f->s), 0);
  assert_int_equal(lc__store_conversations(f->s, &c, &nc), 0);
  assert_int_equal(nc, 2); /* bob and carol */
  lc__store_conversations_free(c, nc);
  assert_int_equal(lc__store_get(f->s, id, &m), 1);
  assert_int_equal(m.outgoing, 0);
  assert_string_equal(m.text, "kept");
  lc__store_msg_clear(&m);
  assert_int_equal(lc__store_outbox_after(f->s, dave, 0, &v, &n), 0);
  assert_int_equal(n, 0);
  lc__store_msgs_free(v, n);
}

/* A run of the outbox handed over becomes SENT in one statement: only
 * that peer's, only in the range, only what was QUEUED. */
static void test_mark_sent(void **state) {
  ts_fixture *f = *state;
  uint8_t bob[LC_KEY_BYTES], carol[LC_KEY_BYTES], id[LC_MSGID_BYTES];
  ts_key(bob, 2);
  ts_key(carol, 3);
  int64_t rows[4];
  for (int i = 0; i < 4; i++) {
    ts_id(id, 900 + i);
    assert_int_equal(lc__store_add_outgoing(f->s, i == 1 ? carol : bob, id, 1,
                                            1, "x", 1, &rows[i]),
                     0);
  }
  ts_id(id, 900); /* already DELIVERED: stays so */
  assert_int_equal(lc__store_set_state(f->s, id, LC_MSG_DELIVERED), 1);
  /* bob's 900 (delivered), 902 (in range), 903 (past it); carol's 901 */
  assert_int_equal(lc__store_mark_sent(f->s, bob, 0, rows[2]), 0);
  int want[4] = {LC_MSG_DELIVERED, LC_MSG_QUEUED, LC_MSG_SENT, LC_MSG_QUEUED};
  for (int i = 0; i < 4; i++) {
    lc__stored_msg m;
    ts_id(id, 900 + i);
    assert_int_equal(lc__store_get(f->s, id, &m), 1);
    assert_int_equal(m.state, want[i]);
    lc__store_msg_clear(&m);
  }
}

/* The full-text index takes messages in batches, not at every commit:
 * what waits for it is still found by a search, an edit before it is
 * indexed is found by its new words only, and a message deleted before
 * it is indexed is never found (the teardown's integrity check compares
 * the index with the messages). */
static void test_index_lag(void **state) {
  ts_fixture *f = *state;
  uint8_t bob[LC_KEY_BYTES], id[LC_MSGID_BYTES];
  ts_key(bob, 2);
  for (int i = 0; i < 5; i++) { /* one commit each, far under a batch */
    char t[32];
    snprintf(t, sizeof t, "walrus%d tusk", i);
    ts_id(id, 800 + i);
    assert_int_equal(
        lc__store_add_incoming(f->s, bob, id, 1, 1, t, strlen(t), NULL), 1);
  }
  lc__stored_msg *v;
  size_t n;
  assert_int_equal(lc__store_search(f->s, NULL, "tusk", 20, &v, &n), 0);
  assert_int_equal(n, 5);
  lc__store_msgs_free(v, n);
  /* two more after that search: one edited, one deleted, unindexed */
  ts_id(id, 810);
  assert_int_equal(
      lc__store_add_incoming(f->s, bob, id, 2, 2, "narwhal horn", 12, NULL), 1);
  assert_int_equal(
      lc__store_apply_change(f->s, bob, LC_CHAT_EDIT, id, 3, "narwhal fin", 11),
      1);
  ts_id(id, 811);
  int64_t victim = 0;
  assert_int_equal(
      lc__store_add_incoming(f->s, bob, id, 2, 2, "narwhal gone", 12, &victim),
      1);
  assert_int_equal(lc__store_delete_message(f->s, victim), 1);
  assert_int_equal(lc__store_search(f->s, NULL, "narwhal", 20, &v, &n), 0);
  assert_int_equal(n, 1);
  assert_string_equal(v[0].text, "narwhal fin");
  lc__store_msgs_free(v, n);
  assert_int_equal(lc__store_search(f->s, NULL, "horn", 20, &v, &n), 0);
  assert_int_equal(n, 0);
  lc__store_msgs_free(v, n);
  /* unread counts do not wait for the index: 6 received, 1 deleted */
  assert_int_equal(lc__store_unread_total(f->s), 6);
}

/* ---- schema versions ----------------------------------------------------- */

static void ts_make_db(const char *path, const char *sql) {
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
}

static int ts_pragma(const char *path, const char *pragma) {
  sqlite3 *db;
  sqlite3_stmt *st;
  int v = -1;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db, pragma, -1, &st, NULL), SQLITE_OK);
  if (sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

static int ts_user_version(const char *path) {
  return ts_pragma(path, "PRAGMA user_version");
}

/* The whole file, to check that a refused one is left byte for byte. */
static char *ts_slurp(const char *path, size_t *len) {
  FILE *fp = fopen(path, "rb");
  assert_non_null(fp);
  char *buf = NULL;
  size_t cap = 0, n = 0, r;
  do {
    if (cap - n < 4096) {
      cap = cap ? cap * 2 : 65536;
      buf = realloc(buf, cap);
      assert_non_null(buf);
    }
    r = fread(buf + n, 1, cap - n, fp);
    n += r;
  } while (r > 0);
  fclose(fp);
  *len = n;
  return buf;
}

/* A history of the current version with one message, closed. */
static void ts_make_history(const char *path) {
  lc__store *s;
  uint8_t bob[LC_KEY_BYTES], id[LC_MSGID_BYTES];
  ts_key(bob, 2);
  assert_int_equal(lc__store_open(&s, path, NULL), 0);
  for (int i = 0; i < 50; i++) {
    ts_id(id, 900 + i);
    assert_int_equal(lc__store_add_incoming(
                         s, bob, id, 1, 1, "a message worth keeping", 23, NULL),
                     1);
  }
  lc__store_close(s);
}

/* Opening path is refused with a message holding each of the phrases, and
 * the file is left byte for byte as it was. */
static void ts_refused(const char *path, const char *const *phrases) {
  size_t before_len, after_len;
  char *before = ts_slurp(path, &before_len);
  lc__store *s = (lc__store *)1;
  char *err = NULL;
  assert_int_equal(lc__store_open(&s, path, &err), LC_ESTORE);
  assert_null(s);
  assert_non_null(err);
  for (; *phrases; phrases++)
    if (!strstr(err, *phrases))
      fail_msg("'%s' not in the message: %s", *phrases, err);
  free(err);
  char *after = ts_slurp(path, &after_len);
  assert_int_equal(before_len, after_len);
  assert_memory_equal(before, after, before_len);
  free(before);
  free(after);
}

static void ts_unlink_db(const char *path) {
  char p[160];
  const char *suffix[] = {"", "-wal", "-shm", "-journal"};
  for (int i = 0; i < 4; i++) {
    snprintf(p, sizeof p, "%s%s", path, suffix[i]);
    unlink(p);
  }
}

static void test_versions(void **state) {
  ts_fixture *f = *state;
  char path[128];
  lc__store *s;
  char *err;
  uint8_t bob[LC_KEY_BYTES], id[LC_MSGID_BYTES];
  ts_key(bob, 2);
  ts_id(id, 1);

  /* a new history is marked as lanchat's */
  assert_int_equal(ts_pragma(f->path, "PRAGMA application_id"), 0x4c414e43);

  /* a history made before the mark existed (our tables, a version of
   * ours, no application_id): accepted, its messages kept, then marked */
  snprintf(path, sizeof path, "%s/old.db", f->dir);
  ts_make_history(path);
  ts_make_db(path, "PRAGMA application_id = 0;");
  assert_int_equal(ts_pragma(path, "PRAGMA application_id"), 0);
  assert_int_equal(lc__store_open(&s, path, &err), 0);
  assert_int_equal(lc__store_add_incoming(s, bob, id, 1, 1, "after", 5, NULL),
                   1);
  lc__store_close(s);
  assert_int_equal(ts_user_version(path), LC_STORE_SCHEMA);
  assert_int_equal(ts_pragma(path, "PRAGMA application_id"), 0x4c414e43);
  /* reopened: the messages are there, nothing migrates twice */
  assert_int_equal(lc__store_open(&s, path, &err), 0);
  lc__stored_msg one;
  assert_int_equal(lc__store_get(s, id, &one), 1);
  assert_string_equal(one.text, "after");
  lc__store_msg_clear(&one);
  lc__store_close(s);
  ts_unlink_db(path);

  /* an empty file (a crash before the first migration, or `touch`) is a
   * new history */
  snprintf(path, sizeof path, "%s/empty.db", f->dir);
  FILE *fp = fopen(path, "w");
  assert_non_null(fp);
  fclose(fp);
  assert_int_equal(lc__store_open(&s, path, &err), 0);
  lc__store_close(s);
  assert_int_equal(ts_user_version(path), LC_STORE_SCHEMA);
  ts_unlink_db(path);

  /* another program's database, version 0 with a table of its own:
   * refused, never migrated into */
  snprintf(path, sizeof path, "%s/foreign.db", f->dir);
  ts_make_db(path, "CREATE TABLE keep(x); INSERT INTO keep VALUES (42);");
  ts_refused(path, (const char *const[]){"another program", "mv ",
                                         "foreign.db.other", NULL});
  assert_int_equal(ts_user_version(path), 0);
  ts_unlink_db(path);
  /* ... even one whose tables have our names, or that uses versions */
  ts_make_db(path, "CREATE TABLE conversations(x); CREATE TABLE messages(x);"
                   "CREATE TABLE outbox(x); CREATE TABLE meta(x);");
  ts_refused(path, (const char *const[]){"another program", NULL});
  ts_unlink_db(path);
  ts_make_db(path, "CREATE TABLE t(x); PRAGMA user_version = 3;");
  ts_refused(path, (const char *const[]){"another program", NULL});
  ts_unlink_db(path);
  ts_make_db(path, "CREATE TABLE t(x); PRAGMA user_version = -1;");
  ts_refused(path, (const char *const[]){"another program", NULL});
  ts_unlink_db(path);
  /* ... or that is empty but claimed by another application */
  ts_make_db(path, "PRAGMA application_id = 1234;");
  ts_refused(path, (const char *const[]){"another program",
                                         "application_id 0x000004d2", NULL});
  ts_unlink_db(path);

  /* a history of a newer version than this code knows: refused */
  snprintf(path, sizeof path, "%s/v99.db", f->dir);
  ts_make_history(path);
  ts_make_db(path, "PRAGMA user_version = 99;");
  ts_refused(path, (const char *const[]){"made by a newer lanchat",
                                         "version 99", "v99.db.v99", NULL});
  assert_int_equal(ts_user_version(path), 99);
  ts_unlink_db(path);

  /* not a database at all */
  snprintf(path, sizeof path, "%s/junk.db", f->dir);
  fp = fopen(path, "w");
  assert_non_null(fp);
  for (int i = 0; i < 200; i++)
    fputs("this is not an SQLite file ", fp);
  fclose(fp);
  ts_refused(path, (const char *const[]){"not an SQLite database",
                                         "junk.db.bad", NULL});
  ts_unlink_db(path);

  /* a history cut short (a bad copy, a failing disk) */
  snprintf(path, sizeof path, "%s/cut.db", f->dir);
  ts_make_history(path);
  assert_int_equal(truncate(path, 3000), 0);
  ts_refused(path, (const char *const[]){"damaged", "cut.db.bad", NULL});
  ts_unlink_db(path);

  /* a path that needs quoting gets it in the suggested command */
  snprintf(path, sizeof path, "%s/it's junk.db", f->dir);
  fp = fopen(path, "w");
  assert_non_null(fp);
  fputs("junk, junk, junk, junk, junk, junk, junk, junk, junk, junk, junk, "
        "junk, junk, junk, junk, junk, junk, junk, junk, junk, junk, junk, ",
        fp);
  fclose(fp);
  ts_refused(path, (const char *const[]){"it'\\''s junk.db' '", NULL});
  ts_unlink_db(path);

  /* a file this user cannot write (root writes anything: not tested) */
  if (geteuid() != 0) {
    snprintf(path, sizeof path, "%s/ro.db", f->dir);
    ts_make_history(path);
    assert_int_equal(chmod(path, 0400), 0);
    ts_refused(path, (const char *const[]){"chmod u+rw", NULL});
    ts_unlink_db(path);
  }

  /* a folder that does not exist */
  err = NULL;
  assert_int_equal(lc__store_open(&s, "/nonexistent/dir/x.db", &err),
                   LC_ESTORE);
  assert_non_null(err);
  free(err);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_outbox_and_states, ts_setup,
                                      ts_teardown),
      cmocka_unit_test_setup_teardown(test_incoming_unread_conversations,
                                      ts_setup, ts_teardown),
      cmocka_unit_test_setup_teardown(test_paging, ts_setup, ts_teardown),
      cmocka_unit_test_setup_teardown(test_search_and_delete, ts_setup,
                                      ts_teardown),
      cmocka_unit_test_setup_teardown(test_edit_retract, ts_setup, ts_teardown),
      cmocka_unit_test_setup_teardown(test_versions, ts_setup, ts_teardown),
      cmocka_unit_test(test_export_escaping),
      cmocka_unit_test_setup_teardown(test_index_lag, ts_setup, ts_teardown),
      cmocka_unit_test_setup_teardown(test_mark_sent, ts_setup, ts_teardown),
      cmocka_unit_test_setup_teardown(test_batch_consistency, ts_setup,
                                      ts_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
