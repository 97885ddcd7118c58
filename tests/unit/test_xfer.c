/* test_transfer.c: offers and control messages on the wire, and the
 * transfer engine's judgement of the names a peer offers (no absolute
 * path, no "..", no two files where one would overwrite the other). */
#define _GNU_SOURCE /* nftw */
#include <errno.h>
#include <ftw.h>
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

#include "store.h"
#include "transfer.h"
#include "wire.h"

static void test_path_safe(void **state) {
  (void)state;
  const char *good[] = {"a",       "a.txt", "dir/file", "a/b/c/d.bin",
                        ".hidden", "..a",   "a..",      "name with spaces",
                        "é/ü.txt", "x/.y/z"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    assert_int_equal(lc__xfer_path_safe(good[i], strlen(good[i])), 1);
  const char *bad[] = {"",     "/etc/passwd", "..",   "../x",  "a/../b",
                       "a/..", ".",           "./a",  "a//b",  "a/",
                       "a\nb", "a\\b",        "\x7f", "a/\x01"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(lc__xfer_path_safe(bad[i], strlen(bad[i])), 0);
  assert_int_equal(lc__xfer_path_safe("\xff\xfe", 2), 0); /* not UTF-8 */
  assert_int_equal(lc__xfer_path_safe("a\0b", 3), 0);
  char longc[300];
  memset(longc, 'x', sizeof longc);
  assert_int_equal(lc__xfer_path_safe(longc, 255), 1);
  assert_int_equal(lc__xfer_path_safe(longc, 256), 0);
  char longp[LC_TRANSFER_PATH_MAX + 2];
  for (size_t i = 0; i < sizeof longp; i++)
    longp[i] = i % 100 == 99 ? '/' : 'y';
  assert_int_equal(lc__xfer_path_safe(longp, LC_TRANSFER_PATH_MAX), 1);
  assert_int_equal(lc__xfer_path_safe(longp, LC_TRANSFER_PATH_MAX + 1), 0);
}

static void test_wire(void **state) {
  (void)state;
  lc__wire_file f[2] = {{"a.txt", 5, 3}, {"d/e.bin", 7, 1ull << 40}};
  lc__chat c, d;
  memset(&c, 0, sizeof c);
  c.kind = LC_CHAT_FILE;
  c.sent_ms = 77;
  c.xkind = LC_TRANSFER_KIND_FOLDER;
  c.duration_ms = 9;
  c.nfiles = 2;
  c.files = f;
  uint8_t buf[512];
  int n = lc__chat_encode(&c, buf, sizeof buf);
  assert_true(n > 0);
  assert_int_equal(lc__chat_decode(&d, buf, (size_t)n), 0);
  assert_int_equal(d.kind, LC_CHAT_FILE);
  assert_int_equal(d.xkind, LC_TRANSFER_KIND_FOLDER);
  assert_int_equal(d.duration_ms, 9);
  assert_int_equal(d.nfiles, 2);
  lc__wire_file g[2];
  assert_int_equal(lc__wire_files_decode(d.blob, d.blob_len, g, 2), 2);
  assert_int_equal(g[1].path_len, 7);
  assert_memory_equal(g[1].path, "d/e.bin", 7);
  assert_int_equal(g[1].size, 1ull << 40);
  /* what the encoder refuses */
  c.xkind = 4;
  assert_int_equal(lc__chat_encode(&c, buf, sizeof buf), LC_EINVAL);
  c.xkind = 1;
  c.nfiles = 0;
  assert_int_equal(lc__chat_encode(&c, buf, sizeof buf), LC_EINVAL);
  lc__wire_file bad = {"\xff", 1, 1};
  c.nfiles = 1;
  c.files = &bad;
  assert_int_equal(lc__chat_encode(&c, buf, sizeof buf), LC_EINVAL);

  memset(&c, 0, sizeof c);
  c.kind = LC_CHAT_FILE_CTRL;
  memset(c.target, 0x42, sizeof c.target);
  c.op = LC_XFER_OP_HASH;
  c.pos = 123456789012ull;
  c.stream = 7;
  c.file = 3;
  c.has_hash = 1;
  memset(c.hash, 0xab, sizeof c.hash);
  c.err = LC_EINTEGRITY;
  n = lc__chat_encode(&c, buf, sizeof buf);
  assert_true(n > 0);
  assert_int_equal(lc__chat_decode(&d, buf, (size_t)n), 0);
  assert_int_equal(d.op, LC_XFER_OP_HASH);
  assert_int_equal(d.pos, 123456789012ull);
  assert_int_equal(d.stream, 7);
  assert_int_equal(d.file, 3);
  assert_int_equal(d.has_hash, 1);
  assert_memory_equal(d.hash, c.hash, sizeof c.hash);
  assert_int_equal(d.err, LC_EINTEGRITY);
  assert_memory_equal(d.target, c.target, sizeof c.target);
  c.op = 0;
  assert_int_equal(lc__chat_encode(&c, buf, sizeof buf), LC_EINVAL);
  c.op = 7;
  assert_int_equal(lc__chat_encode(&c, buf, sizeof buf), LC_EINVAL);
  /* the example of docs/PROTOCOL.md 11.11, both ways */
  static const uint8_t ex[28] = {0x99, 0x0c, 0x05, 0xc4, 0x10, 0x11, 0x11,
                                 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
                                 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
                                 0x01, 0x07, 0x00, 0x01, 0xc4, 0x00, 0x00};
  assert_int_equal(lc__chat_decode(&d, ex, sizeof ex), 0);
  assert_int_equal(d.kind, LC_CHAT_FILE_CTRL);
  assert_int_equal(d.op, LC_XFER_OP_ACCEPT);
  assert_int_equal(d.pos, 7);
  assert_int_equal(d.file, 1);
  assert_int_equal(d.has_hash, 0);
  assert_int_equal(lc__chat_encode(&d, buf, sizeof buf), sizeof ex);
  assert_memory_equal(buf, ex, sizeof ex);
  /* an op of 9 */
  uint8_t badop[sizeof ex];
  memcpy(badop, ex, sizeof ex);
  badop[21] = 9;
  assert_int_equal(lc__chat_decode(&d, badop, sizeof badop), LC_ERANGE);
}

/* ---- the engine, with ops that only record ------------------------------ */

typedef struct {
  int sent, cancels, last_err, events;
} rec;

static int r_send(void *user, const uint8_t *peer, const uint8_t *tid,
                  const uint8_t *env, size_t len) {
  (void)peer, (void)tid;
  rec *r = user;
  lc__chat c;
  assert_int_equal(lc__chat_decode(&c, env, len), 0);
  assert_int_equal(c.kind, LC_CHAT_FILE_CTRL);
  r->sent++;
  if (c.op == LC_XFER_OP_CANCEL) {
    r->cancels++;
    r->last_err = (int)c.err;
  }
  return 0;
}

static int r_open(void *user, const uint8_t *peer, uint32_t *stream) {
  (void)user, (void)peer;
  *stream = 1;
  return 0;
}

static int r_write(void *user, const uint8_t *peer, uint32_t stream,
                   const uint8_t *data, size_t len, int fin) {
  (void)user, (void)peer, (void)stream, (void)data, (void)fin;
  return (int)len;
}

static void r_event(void *user, int ev, const lc__xfer_row *row, uint64_t bytes,
                    uint64_t rate, int detail) {
  (void)ev, (void)row, (void)bytes, (void)rate, (void)detail;
  ((rec *)user)->events++;
}

static void r_random(void *user, void *buf, size_t len) {
  (void)user;
  static uint8_t k;
  memset(buf, ++k, len);
}

typedef struct {
  char dir[64];
  lc__store *store;
  lc__xfer *x;
  rec r;
} fx;

static int fx_setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  assert_non_null(f);
  snprintf(f->dir, sizeof f->dir, "/tmp/lc-unit-xfer-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  char p[128];
  snprintf(p, sizeof p, "%s/h.db", f->dir);
  char *err = NULL;
  assert_int_equal(lc__store_open(&f->store, p, &err), 0);
  lc__xfer_ops ops;
  memset(&ops, 0, sizeof ops);
  ops.send_msg = r_send;
  ops.bulk_open = r_open;
  ops.bulk_write = r_write;
  ops.event = r_event;
  ops.random = r_random;
  ops.user = &f->r;
  snprintf(p, sizeof p, "%s/dl", f->dir);
  assert_int_equal(lc__xfer_new(&f->x, f->store, p, &ops), 0);
  *state = f;
  return 0;
}

static int fx_rm(const char *p, const struct stat *sb, int flag,
                 struct FTW *w) {
  (void)sb, (void)w;
  return flag == FTW_DP ? rmdir(p) : unlink(p);
}

static int fx_teardown(void **state) {
  fx *f = *state;
  lc__xfer_free(f->x);
  lc__store_close(f->store);
  nftw(f->dir, fx_rm, 8, FTW_DEPTH | FTW_PHYS);
  free(f);
  return 0;
}

static int g_stored; /* the last offer is in the store */

/* Offers the list (NULL-terminated paths, sizes 10 each) as kind from a
 * fixed peer; returns the message's local id (0: not stored). */
static int64_t fx_offer(fx *f, int kind, const char *const *paths,
                        uint8_t id0) {
  lc__wire_file w[16];
  size_t n = 0;
  for (; paths[n]; n++) {
    w[n].path = paths[n];
    w[n].path_len = strlen(paths[n]);
    w[n].size = 10;
  }
  lc__chat c;
  memset(&c, 0, sizeof c);
  c.kind = LC_CHAT_FILE;
  c.sent_ms = 5;
  c.xkind = kind;
  c.nfiles = n;
  c.files = w;
  uint8_t buf[4096];
  int len = lc__chat_encode(&c, buf, sizeof buf);
  assert_true(len > 0);
  lc__chat d;
  assert_int_equal(lc__chat_decode(&d, buf, (size_t)len), 0);
  uint8_t peer[LC_KEY_BYTES], id[LC_MSGID_BYTES];
  memset(peer, 0x33, sizeof peer);
  memset(id, id0, sizeof id);
  int64_t local = -1;
  char *summary = NULL;
  assert_int_equal(
      lc__xfer_recv_offer(f->x, peer, id, &d, 1000, 0, &local, &summary), 0);
  if (local > 0) {
    assert_non_null(summary);
  } else {
    assert_null(summary);
  }
  free(summary);
  lc__xfer_row row;
  int got = lc__store_xfer_get(f->store, id, &row);
  if (got == 1)
    lc__store_xfer_clear(&row);
  g_stored = got;
  if (local > 0)
    assert_int_equal(got, 1);
  return local;
}

static void test_hostile_offers(void **state) {
  fx *f = *state;
  const char *const lists[][4] = {
      {"/etc/passwd", NULL},
      {"../../.bashrc", NULL},
      {"ok/../../x", NULL},
      {"a//b", NULL},
      {"a/./b", NULL},
      {"tab\there", NULL},
      {"win\\path", NULL},
      {"same", "same", NULL},     /* one would overwrite the other */
      {"d", "d/inner", NULL},     /* a file and a folder, one name */
      {"d/1", "e", "d/2", NULL},  /* a folder's files apart */
      {"v1.wav", "v2.wav", NULL}, /* voice: one file */
  };
  size_t nl = sizeof lists / sizeof lists[0];
  lc__xfer_stats st;
  for (size_t i = 0; i < nl; i++) {
    int kind = i == nl - 1 ? LC_TRANSFER_KIND_VOICE : LC_TRANSFER_KIND_FILES;
    assert_int_equal(fx_offer(f, kind, lists[i], (uint8_t)(i + 1)), 0);
    assert_int_equal(g_stored, 0); /* nothing of it kept */
    lc__xfer_stats_get(f->x, &st);
    assert_int_equal(st.refused, i + 1);
    assert_int_equal(f->r.cancels, (int)i + 1); /* the sender is told */
    assert_int_equal(f->r.last_err, LC_EUNSAFE);
  }
  assert_int_equal(f->r.events, 0);
  /* a sound offer is stored, once */
  const char *const good[] = {"proj/a", "proj/sub/b", "c.txt", NULL};
  assert_true(fx_offer(f, LC_TRANSFER_KIND_FOLDER, good, 0x70) > 0);
  assert_int_equal(fx_offer(f, LC_TRANSFER_KIND_FOLDER, good, 0x70), 0);
  assert_int_equal(g_stored, 1);
  assert_int_equal(f->r.events, 1); /* the offer */
  lc__xfer_stats_get(f->x, &st);
  assert_int_equal(st.refused, nl);
  /* a control message for nobody's transfer is counted, not obeyed */
  lc__chat c;
  memset(&c, 0, sizeof c);
  c.kind = LC_CHAT_FILE_CTRL;
  c.op = LC_XFER_OP_DONE;
  memset(c.target, 0x99, sizeof c.target);
  uint8_t peer[LC_KEY_BYTES];
  memset(peer, 0x33, sizeof peer);
  lc__xfer_recv_ctrl(f->x, peer, &c);
  /* nor from somebody who is not its peer */
  memset(c.target, 0x70, sizeof c.target);
  c.op = LC_XFER_OP_CANCEL;
  memset(peer, 0x44, sizeof peer);
  lc__xfer_recv_ctrl(f->x, peer, &c);
  lc__xfer_stats_get(f->x, &st);
  assert_int_equal(st.bad_control, 2);
  lc__xfer_row row;
  assert_int_equal(lc__store_xfer_get(f->store, c.target, &row), 1);
  assert_int_equal(row.state, LC_TRANSFER_OFFERED);
  lc__store_xfer_clear(&row);
  /* bulk data of no transfer */
  lc__xfer_bulk(f->x, peer, 5, 0, (const uint8_t *)"x", 1);
  lc__xfer_stats_get(f->x, &st);
  assert_int_equal(st.bad_data, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_path_safe),
      cmocka_unit_test(test_wire),
      cmocka_unit_test_setup_teardown(test_hostile_offers, fx_setup,
                                      fx_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
