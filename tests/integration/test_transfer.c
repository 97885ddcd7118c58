/* test_transfer.c: files and folders between two lc_nodes in one process
 * and one libuv loop, on loopback only (127.0.0.1, broadcast
 * 127.255.255.255, a discovery port picked free for this run): a folder
 * with nested paths, a name taken already, cancel and decline from each
 * side, resume after the receiver stops mid-transfer, and a partial file
 * corrupted on disk while the receiver was down. */
#define _GNU_SOURCE /* nftw */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <uv.h>

#include "lanchat.h"

typedef struct tx_node {
  struct tx_net *net;
  lc_node *node;
  char dir[64];
  uint8_t key[LC_KEY_BYTES];
  int peers, stopped;
  int offers, changes, progress, files_ok;
  uint8_t last_id[LC_MSGID_BYTES];
  int last_state, last_by_peer, last_error;
  uint64_t last_bytes, max_rate;
  int auto_accept; /* accept every offer when it comes */
  int messages, file_messages;
  char last_text[128];
} tx_node;

typedef struct tx_net {
  uv_loop_t loop;
  uv_timer_t guard;
  int timed_out;
  uint16_t dport;
  tx_node n[2];
} tx_net;

static uint16_t tx_free_port(void) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t len = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &len);
  close(fd);
  return ntohs(a.sin_port);
}

static tx_node *tx_self(tx_net *net, lc_node *node) {
  for (int i = 0; i < 2; i++)
    if (net->n[i].node == node)
      return &net->n[i];
  fail_msg("event for an unknown node");
  return NULL;
}

static void tx_on_peer(lc_node *node, lc_peer_event ev, const lc_peer_info *p,
                       int detail, void *user) {
  (void)p, (void)detail;
  tx_node *t = tx_self(user, node);
  if (ev == LC_PEER_APPEARED)
    t->peers++;
  else if (ev == LC_PEER_LEFT)
    t->peers--;
}

static void tx_on_message(lc_node *node, const lc_message *m, void *user) {
  tx_node *t = tx_self(user, node);
  t->messages++;
  if (m->kind == LC_KIND_FILE)
    t->file_messages++;
  snprintf(t->last_text, sizeof t->last_text, "%s", m->text);
}

static void tx_on_transfer(lc_node *node, lc_transfer_event ev,
                           const lc_transfer_info *x, int detail, void *user) {
  tx_node *t = tx_self(user, node);
  memcpy(t->last_id, x->id, LC_MSGID_BYTES);
  t->last_state = x->state;
  t->last_by_peer = x->by_peer;
  t->last_error = x->error;
  t->last_bytes = x->bytes;
  assert_true(x->bytes <= x->total);
  if (x->rate > t->max_rate)
    t->max_rate = x->rate;
  switch (ev) {
  case LC_TRANSFER_OFFER:
    t->offers++;
    assert_int_equal(x->state, LC_TRANSFER_OFFERED);
    assert_int_equal(x->outgoing, 0);
    if (t->auto_accept)
      assert_int_equal(lc_transfer_accept(node, x->id), 0);
    break;
  case LC_TRANSFER_CHANGED:
    t->changes++;
    break;
  case LC_TRANSFER_PROGRESS:
    t->progress++;
    break;
  case LC_TRANSFER_FILE:
    assert_true(detail >= 0 && (size_t)detail < x->nfiles);
    assert_true(x->files[detail].verified);
    assert_non_null(x->files[detail].local);
    t->files_ok++;
    break;
  default:
    fail_msg("unknown transfer event %d", ev);
  }
}

static void tx_on_stop(lc_node *node, void *user) {
  tx_self(user, node)->stopped = 1;
}

static void tx_guard_cb(uv_timer_t *t) {
  ((tx_net *)t->data)->timed_out = 1;
}

/* Runs the loop until pred holds; fails after 60 s of real time (the
 * sanitizer build moves data several times slower). */
static void tx_run_until(tx_net *net, int (*pred)(tx_net *), const char *what) {
  net->timed_out = 0;
  uv_timer_start(&net->guard, tx_guard_cb, 60000, 0);
  while (!pred(net) && !net->timed_out)
    uv_run(&net->loop, UV_RUN_ONCE);
  uv_timer_stop(&net->guard);
  if (!pred(net))
    fail_msg("timed out waiting for: %s", what);
}

/* Runs the loop for ms of real time. */
static void tx_run_for(tx_net *net, uint64_t ms) {
  net->timed_out = 0;
  uv_timer_start(&net->guard, tx_guard_cb, ms, 0);
  while (!net->timed_out)
    uv_run(&net->loop, UV_RUN_ONCE);
}

/* bob's auto_accept_bytes for the next tx_init */
static uint64_t g_bob_auto_bytes;

/* Creates and starts node i; keep: its data folder again (a restart). */
static void tx_start(tx_net *net, int i, int keep) {
  tx_node *t = &net->n[i];
  char dir[64];
  snprintf(dir, sizeof dir, "%s", t->dir);
  memset(t, 0, sizeof *t);
  t->net = net;
  if (keep) {
    snprintf(t->dir, sizeof t->dir, "%s", dir);
  } else {
    snprintf(t->dir, sizeof t->dir, "/tmp/lc-test-xfer-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
  }
  lc_node_options o;
  lc_node_options_init(&o);
  o.data_dir = t->dir;
  o.nickname = i == 0 ? "alice" : "bob";
  o.discovery_port = net->dport;
  o.bind_v4 = "127.0.0.1";
  o.bind_v6 = "";
  o.interfaces = "lo";
  o.broadcast = "127.255.255.255";
  o.announce_interval_ms = 1000;
  o.on_peer = tx_on_peer;
  o.on_message = tx_on_message;
  o.on_transfer = tx_on_transfer;
  o.user_data = net;
  if (i == 1)
    o.auto_accept_bytes = g_bob_auto_bytes;
  assert_int_equal(lc_node_new(&t->node, &net->loop, &o), 0);
  lc_node_key(t->node, t->key);
  assert_int_equal(lc_node_start(t->node), 0);
}

static int tx_see(tx_net *net) {
  return net->n[0].peers >= 1 && net->n[1].peers >= 1;
}

static void tx_init(tx_net *net) {
  memset(net, 0, sizeof *net);
  assert_int_equal(uv_loop_init(&net->loop), 0);
  uv_timer_init(&net->loop, &net->guard);
  net->guard.data = net;
  net->dport = tx_free_port();
  tx_start(net, 0, 0);
  tx_start(net, 1, 0);
  tx_run_until(net, tx_see, "alice and bob see each other");
}

static int g_stopping;

static int tx_stopped(tx_net *net) {
  return net->n[g_stopping].stopped;
}

static void tx_stop(tx_net *net, int i) {
  g_stopping = i;
  assert_int_equal(lc_node_stop(net->n[i].node, tx_on_stop), 0);
  tx_run_until(net, tx_stopped, "the node stopped");
  lc_node_free(net->n[i].node);
  net->n[i].node = NULL;
}

static int tx_rm(const char *p, const struct stat *sb, int flag,
                 struct FTW *f) {
  (void)sb, (void)f;
  return flag == FTW_DP ? rmdir(p) : unlink(p);
}

static void tx_rm_tree(const char *dir) {
  nftw(dir, tx_rm, 16, FTW_DEPTH | FTW_PHYS);
}

static void tx_done(tx_net *net) {
  for (int i = 0; i < 2; i++)
    if (net->n[i].node)
      tx_stop(net, i);
  for (int i = 0; i < 2; i++)
    tx_rm_tree(net->n[i].dir);
  uv_close((uv_handle_t *)&net->guard, NULL);
  uv_run(&net->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&net->loop), 0);
}

/* ---- files -------------------------------------------------------------- */

/* Writes size bytes of a pattern seeded by seed. */
static void tx_write_file(const char *path, size_t size, unsigned seed) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  uint8_t buf[65536];
  uint32_t s = seed * 2654435761u + 1;
  for (size_t done = 0; done < size;) {
    size_t n = size - done < sizeof buf ? size - done : sizeof buf;
    for (size_t i = 0; i < n; i++) {
      s ^= s << 13;
      s ^= s >> 17;
      s ^= s << 5;
      buf[i] = (uint8_t)s;
    }
    assert_int_equal(fwrite(buf, 1, n, f), n);
    done += n;
  }
  assert_int_equal(fclose(f), 0);
}

/* 1 if both files exist with the same bytes. */
static int tx_same(const char *a, const char *b) {
  FILE *f = fopen(a, "rb"), *g = fopen(b, "rb");
  int same = f && g;
  uint8_t x[65536], y[65536];
  while (same) {
    size_t n = fread(x, 1, sizeof x, f), m = fread(y, 1, sizeof y, g);
    if (n != m || memcmp(x, y, n) != 0)
      same = 0;
    if (n == 0)
      break;
  }
  if (f)
    fclose(f);
  if (g)
    fclose(g);
  return same;
}

static void tx_path(char *out, size_t cap, const char *a, const char *b) {
  assert_true((size_t)snprintf(out, cap, "%s/%s", a, b) < cap);
}

/* How many entries of dir start with prefix. */
static int tx_count_entries(const char *dir, const char *prefix) {
  DIR *d = opendir(dir);
  if (!d)
    return 0;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
      n++;
  closedir(d);
  return n;
}

static int tx_state(tx_node *t, const uint8_t *id) {
  lc_transfer_info *x;
  if (lc_transfer_get(t->node, id, &x) != 0)
    return 0;
  int s = x->state;
  lc_transfers_free(x, 1);
  return s;
}

static uint8_t g_id[LC_MSGID_BYTES];
static int g_want;

static int tx_both_in_state(tx_net *net) {
  return tx_state(&net->n[0], g_id) == g_want &&
         tx_state(&net->n[1], g_id) == g_want;
}

static int tx_bob_offered(tx_net *net) {
  return net->n[1].offers > 0;
}

static int tx_bob_has_bytes(tx_net *net) {
  lc_transfer_info *x;
  if (lc_transfer_get(net->n[1].node, g_id, &x) != 0)
    return 0;
  int ok = x->bytes >= (uint64_t)g_want;
  lc_transfers_free(x, 1);
  return ok;
}

static void tx_wait_state(tx_net *net, int state, const char *what) {
  g_want = state;
  tx_run_until(net, tx_both_in_state, what);
}

/* ---- tests -------------------------------------------------------------- */

static void test_folder(void **state) {
  (void)state;
  tx_net net;
  tx_init(&net);
  tx_node *a = &net.n[0], *b = &net.n[1];
  b->auto_accept = 1;
  /* alice's folder: nested paths, an empty file, one of 3 MB */
  char src[128], p[256], q[256];
  snprintf(src, sizeof src, "%s/outbox", a->dir);
  assert_int_equal(mkdir(src, 0700), 0);
  tx_path(p, sizeof p, src, "proj");
  assert_int_equal(mkdir(p, 0700), 0);
  tx_path(p, sizeof p, src, "proj/src");
  assert_int_equal(mkdir(p, 0700), 0);
  tx_path(p, sizeof p, src, "proj/src/deep");
  assert_int_equal(mkdir(p, 0700), 0);
  tx_path(p, sizeof p, src, "proj/empty");
  assert_int_equal(mkdir(p, 0700), 0); /* an empty folder: not sent */
  const char *names[] = {"proj/README", "proj/src/main.c",
                         "proj/src/deep/data.bin", "proj/zero"};
  size_t sizes[] = {1200, 70000, 3 * 1024 * 1024 + 17, 0};
  for (int i = 0; i < 4; i++) {
    tx_path(p, sizeof p, src, names[i]);
    tx_write_file(p, sizes[i], (unsigned)i + 1);
  }
  tx_path(p, sizeof p, src, "proj/link");
  assert_int_equal(symlink("/etc/passwd", p), 0); /* never followed */
  /* and a loose file whose name bob has taken already */
  tx_path(p, sizeof p, src, "notes.txt");
  tx_write_file(p, 5000, 9);
  char dl[128];
  tx_path(dl, sizeof dl, b->dir, "downloads");
  assert_int_equal(mkdir(dl, 0700), 0);
  tx_path(q, sizeof q, dl, "notes.txt");
  tx_write_file(q, 10, 10);

  char proj[256], notes[256];
  tx_path(proj, sizeof proj, src, "proj");
  tx_path(notes, sizeof notes, src, "notes.txt");
  const char *paths[] = {proj, notes};
  assert_int_equal(lc_send_files(a->node, b->key, paths, 2, g_id), 0);
  lc_transfer_info *x;
  assert_int_equal(lc_transfer_get(a->node, g_id, &x), 0);
  assert_int_equal(x->kind, LC_TRANSFER_KIND_FOLDER);
  assert_int_equal(x->state, LC_TRANSFER_OFFERED);
  assert_int_equal(x->nfiles, 5);
  assert_int_equal(x->total, 1200 + 70000 + 3 * 1024 * 1024 + 17 + 5000);
  assert_string_equal(x->files[0].path, "proj/README");
  assert_string_equal(x->files[2].path, "proj/src/main.c");
  assert_string_equal(x->files[4].path, "notes.txt");
  lc_transfers_free(x, 1);

  tx_wait_state(&net, LC_TRANSFER_DONE, "the folder arrived");
  assert_int_equal(b->offers, 1);
  assert_int_equal(b->file_messages, 1);
  assert_string_equal(b->last_text, "5 files (3.2 MB)");
  assert_int_equal(b->files_ok, 2); /* the folder, then the loose file */
  for (int i = 0; i < 4; i++) {
    tx_path(p, sizeof p, src, names[i]);
    tx_path(q, sizeof q, dl, names[i]);
    assert_true(tx_same(p, q));
  }
  tx_path(q, sizeof q, dl, "notes (1).txt");
  assert_true(tx_same(notes, q));
  tx_path(q, sizeof q, dl, "notes.txt");
  struct stat st;
  assert_int_equal(stat(q, &st), 0);
  assert_int_equal(st.st_size, 10); /* never overwritten */
  tx_path(q, sizeof q, dl, "proj/link");
  assert_int_equal(lstat(q, &st), -1);
  assert_int_equal(tx_count_entries(dl, ".lanchat-"), 0); /* nothing left */
  /* what both sides report */
  assert_int_equal(lc_transfer_get(b->node, g_id, &x), 0);
  assert_int_equal(x->outgoing, 0);
  assert_int_equal(x->bytes, x->total);
  tx_path(q, sizeof q, dl, "proj/src/main.c");
  assert_string_equal(x->files[2].local, q);
  lc_transfers_free(x, 1);
  size_t count;
  assert_int_equal(lc_transfers(a->node, 1, &x, &count), 0);
  assert_int_equal(count, 0); /* none active */
  lc_transfers_free(x, count);
  assert_int_equal(lc_transfers(a->node, 0, &x, &count), 0);
  assert_int_equal(count, 1);
  assert_int_equal(x[0].state, LC_TRANSFER_DONE);
  lc_transfers_free(x, count);
  /* the offer is a message of both histories */
  lc_msg_info *m;
  size_t got;
  assert_int_equal(lc_history_page(b->node, a->key, 0, 10, &m, &got), 0);
  assert_int_equal(got, 1);
  assert_int_equal(m[0].kind, LC_KIND_FILE);
  assert_memory_equal(m[0].msg_id, g_id, LC_MSGID_BYTES);
  lc_msgs_free(m, got);
  assert_int_equal(lc_history_page(a->node, b->key, 0, 10, &m, &got), 0);
  assert_int_equal(got, 1);
  assert_int_equal(m[0].kind, LC_KIND_FILE);
  assert_int_equal(m[0].state, LC_MSG_DELIVERED);
  lc_msgs_free(m, got);
  lc_node_stats s;
  lc_node_stats_get(b->node, &s);
  assert_int_equal(s.bytes_received_files,
                   1200 + 70000 + 3 * 1024 * 1024 + 17 + 5000);
  assert_int_equal(s.transfer_hash_fails, 0);
  /* answers that make no sense now */
  assert_int_equal(lc_transfer_cancel(a->node, g_id), LC_ESTATE);
  assert_int_equal(lc_transfer_accept(b->node, g_id), LC_ESTATE);
  uint8_t none[LC_MSGID_BYTES] = {1};
  assert_int_equal(lc_transfer_accept(b->node, none), -ENOENT);
  assert_int_equal(lc_transfer_get(b->node, none, &x), -ENOENT);
  tx_done(&net);
}

static void test_cancel_decline(void **state) {
  (void)state;
  tx_net net;
  tx_init(&net);
  tx_node *a = &net.n[0], *b = &net.n[1];
  char big[256];
  tx_path(big, sizeof big, a->dir, "big.bin");
  tx_write_file(big, 48 * 1024 * 1024, 3);
  const char *paths[] = {big};
  char dl[128];
  tx_path(dl, sizeof dl, b->dir, "downloads");

  /* bob declines */
  assert_int_equal(lc_send_files(a->node, b->key, paths, 1, g_id), 0);
  tx_run_until(&net, tx_bob_offered, "bob has the offer");
  assert_int_equal(lc_transfer_decline(b->node, g_id), 0);
  tx_wait_state(&net, LC_TRANSFER_DECLINED, "declined on both sides");
  lc_transfer_info *x;
  assert_int_equal(lc_transfer_get(a->node, g_id, &x), 0);
  assert_int_equal(x->by_peer, 1);
  lc_transfers_free(x, 1);

  /* alice cancels while it flows */
  b->offers = 0;
  assert_int_equal(lc_send_files(a->node, b->key, paths, 1, g_id), 0);
  tx_run_until(&net, tx_bob_offered, "bob has the second offer");
  assert_int_equal(lc_transfer_accept(b->node, g_id), 0);
  g_want = 1;
  tx_run_until(&net, tx_bob_has_bytes, "data flows");
  assert_int_equal(lc_transfer_cancel(a->node, g_id), 0);
  tx_wait_state(&net, LC_TRANSFER_CANCELLED, "cancelled by alice");
  assert_int_equal(lc_transfer_get(b->node, g_id, &x), 0);
  assert_int_equal(x->by_peer, 1);
  assert_int_equal(x->error, 0);
  lc_transfers_free(x, 1);
  assert_int_equal(tx_count_entries(dl, ""), 2); /* . and ..: no trace */

  /* bob cancels while it flows */
  b->offers = 0;
  assert_int_equal(lc_send_files(a->node, b->key, paths, 1, g_id), 0);
  tx_run_until(&net, tx_bob_offered, "bob has the third offer");
  assert_int_equal(lc_transfer_accept(b->node, g_id), 0);
  g_want = 1;
  tx_run_until(&net, tx_bob_has_bytes, "data flows again");
  assert_int_equal(lc_transfer_cancel(b->node, g_id), 0);
  tx_wait_state(&net, LC_TRANSFER_CANCELLED, "cancelled by bob");
  assert_int_equal(lc_transfer_get(a->node, g_id, &x), 0);
  assert_int_equal(x->by_peer, 1);
  lc_transfers_free(x, 1);
  assert_int_equal(tx_count_entries(dl, ""), 2);
  assert_int_equal(lc_transfer_cancel(b->node, g_id), LC_ESTATE);
  tx_done(&net);
}

/* Flips one byte of the partial file, as a disk or a crash might. */
static void tx_corrupt_partial(const char *dl, long at) {
  DIR *d = opendir(dl);
  assert_non_null(d);
  struct dirent *e;
  char part[512] = "";
  while ((e = readdir(d)) != NULL)
    if (strncmp(e->d_name, ".lanchat-", 9) == 0)
      snprintf(part, sizeof part, "%s/%s/big.bin", dl, e->d_name);
  closedir(d);
  assert_true(part[0]);
  int fd = open(part, O_RDWR);
  assert_true(fd >= 0);
  uint8_t c;
  assert_int_equal(pread(fd, &c, 1, at), 1);
  c ^= 0x5a;
  assert_int_equal(pwrite(fd, &c, 1, at), 1);
  close(fd);
}

/* The receiver stops mid-transfer and comes back: it resumes from what it
 * had (corrupt: after a byte of its partial file was changed, which its
 * hash catches, and the file is fetched again). */
static void tx_resume(int corrupt) {
  tx_net net;
  tx_init(&net);
  tx_node *a = &net.n[0], *b = &net.n[1];
  b->auto_accept = 1;
  char big[256];
  tx_path(big, sizeof big, a->dir, "big.bin");
  const size_t size = 40 * 1024 * 1024;
  tx_write_file(big, size, 4);
  const char *paths[] = {big};
  assert_int_equal(lc_send_files(a->node, b->key, paths, 1, g_id), 0);
  g_want = 8 * 1024 * 1024;
  tx_run_until(&net, tx_bob_has_bytes, "8 MiB arrived");
  tx_stop(&net, 1);
  char dl[128];
  tx_path(dl, sizeof dl, b->dir, "downloads");
  if (corrupt)
    tx_corrupt_partial(dl, 4096);
  tx_start(&net, 1, 1);
  lc_transfer_info *x;
  assert_int_equal(lc_transfer_get(b->node, g_id, &x), 0);
  assert_int_equal(x->state, LC_TRANSFER_ACCEPTED);
  uint64_t had = x->bytes;
  assert_true(had >= 1024 * 1024); /* saved when the session ended */
  lc_transfers_free(x, 1);
  tx_wait_state(&net, LC_TRANSFER_DONE, "the file arrived after a restart");
  char q[256];
  tx_path(q, sizeof q, dl, "big.bin");
  assert_true(tx_same(big, q));
  lc_node_stats s;
  lc_node_stats_get(b->node, &s);
  if (corrupt) {
    assert_int_equal(s.transfer_hash_fails, 1);
    /* the rest, then the whole file again */
    assert_int_equal(s.bytes_received_files, 2 * size - had);
  } else {
    assert_int_equal(s.transfer_hash_fails, 0);
    assert_int_equal(s.bytes_received_files, size - had); /* only the rest */
  }
  assert_int_equal(tx_count_entries(dl, ".lanchat-"), 0);
  tx_done(&net);
}

static void test_resume_receiver_restart(void **state) {
  (void)state;
  tx_resume(0);
}

static void test_corrupt_partial_detected(void **state) {
  (void)state;
  tx_resume(1);
}

static int tx_friends(tx_net *net) {
  lc_contact_info c;
  return lc_contact_get(net->n[0].node, net->n[1].key, &c) == 1 &&
         c.state == LC_CONTACT_FRIEND &&
         lc_contact_get(net->n[1].node, net->n[0].key, &c) == 1 &&
         c.state == LC_CONTACT_FRIEND;
}

static int tx_bob_asked(tx_net *net) {
  lc_contact_info c;
  return lc_contact_get(net->n[1].node, net->n[0].key, &c) == 1 &&
         c.state == LC_CONTACT_ASKING;
}

/* Offers one file of size bytes (a voice message when voice) from alice
 * and waits until bob has it; returns bob's state for it a second later. */
static int tx_offer_state(tx_net *net, const char *name, size_t size,
                          int voice) {
  char path[256];
  tx_path(path, sizeof path, net->n[0].dir, name);
  tx_write_file(path, size, (unsigned)size);
  const char *paths[] = {path};
  net->n[1].offers = 0;
  if (voice)
    assert_int_equal(
        lc_send_voice(net->n[0].node, net->n[1].key, path, 1500, g_id), 0);
  else
    assert_int_equal(
        lc_send_files(net->n[0].node, net->n[1].key, paths, 1, g_id), 0);
  tx_run_until(net, tx_bob_offered, "bob has the offer");
  tx_run_for(net, 1000);
  return tx_state(&net->n[1], g_id);
}

/* The limits the user set: bob accepts without asking only offers from a
 * friend up to auto_accept_bytes in all, and voice messages up to
 * LC_VOICE_AUTO_MAX from anyone; every other offer waits for him, and
 * nothing of it is written. */
static void test_accept_limits(void **state) {
  (void)state;
  tx_net net;
  g_bob_auto_bytes = 100000;
  tx_init(&net);
  g_bob_auto_bytes = 0;
  tx_node *a = &net.n[0], *b = &net.n[1];
  char dl[128], q[256];
  tx_path(dl, sizeof dl, b->dir, "downloads");

  /* not friends: a small file waits; a small voice message does not */
  assert_int_equal(tx_offer_state(&net, "small.bin", 50000, 0),
                   LC_TRANSFER_OFFERED);
  tx_path(q, sizeof q, dl, "small.bin");
  assert_int_equal(access(q, F_OK), -1);
  assert_int_not_equal(tx_offer_state(&net, "hi.ogg", 30000, 1),
                       LC_TRANSFER_OFFERED);
  tx_wait_state(&net, LC_TRANSFER_DONE, "the voice message");

  /* friends: under the limit it comes at once, over it waits */
  assert_int_equal(lc_contact_request(a->node, b->key, "hi"), 0);
  tx_run_until(&net, tx_bob_asked, "bob has alice's request");
  assert_int_equal(lc_contact_accept(b->node, a->key), 0);
  tx_run_until(&net, tx_friends, "alice and bob are friends");
  assert_int_not_equal(tx_offer_state(&net, "fits.bin", 100000, 0),
                       LC_TRANSFER_OFFERED);
  tx_wait_state(&net, LC_TRANSFER_DONE, "the file under the limit");
  tx_path(q, sizeof q, dl, "fits.bin");
  char p[256];
  tx_path(p, sizeof p, a->dir, "fits.bin");
  assert_true(tx_same(p, q));
  assert_int_equal(tx_offer_state(&net, "over.bin", 100001, 0),
                   LC_TRANSFER_OFFERED);
  tx_path(q, sizeof q, dl, "over.bin");
  assert_int_equal(access(q, F_OK), -1);
  /* a voice message over LC_VOICE_AUTO_MAX waits, even from a friend */
  assert_int_equal(tx_offer_state(&net, "long.ogg", LC_VOICE_AUTO_MAX + 1, 1),
                   LC_TRANSFER_OFFERED);
  tx_path(q, sizeof q, dl, "long.ogg");
  assert_int_equal(access(q, F_OK), -1);
  /* what waits is bob's to take */
  assert_int_equal(lc_transfer_accept(b->node, g_id), 0);
  tx_wait_state(&net, LC_TRANSFER_DONE, "the long voice message, accepted");
  tx_path(p, sizeof p, a->dir, "long.ogg");
  assert_true(tx_same(p, q));
  assert_int_equal(tx_count_entries(dl, ".lanchat-"), 0);
  tx_done(&net);
}

static void test_bad_arguments(void **state) {
  (void)state;
  tx_net net;
  tx_init(&net);
  tx_node *a = &net.n[0], *b = &net.n[1];
  const char *none[] = {"/nonexistent/file"};
  assert_int_equal(lc_send_files(a->node, b->key, none, 1, NULL), -ENOENT);
  assert_int_equal(lc_send_files(a->node, b->key, none, 0, NULL), LC_EINVAL);
  assert_int_equal(lc_send_files(a->node, a->key, none, 1, NULL), LC_EINVAL);
  char empty[256];
  tx_path(empty, sizeof empty, a->dir, "emptydir");
  assert_int_equal(mkdir(empty, 0700), 0);
  const char *e[] = {empty};
  assert_int_equal(lc_send_files(a->node, b->key, e, 1, NULL), LC_EINVAL);
  char f[256];
  tx_path(f, sizeof f, a->dir, "x.txt");
  tx_write_file(f, 10, 1);
  const char *twice[] = {f, f};
  assert_int_equal(lc_send_files(a->node, b->key, twice, 2, NULL), LC_EINVAL);
  /* not audio */
  assert_int_equal(lc_send_voice(a->node, b->key, f, 0, NULL), LC_EINVAL);
  assert_string_equal(lc_transfer_state_name(LC_TRANSFER_DONE), "done");
  assert_null(lc_transfer_state_name(0));
  assert_string_equal(lc_transfer_kind_name(LC_TRANSFER_KIND_VOICE), "voice");
  assert_null(lc_transfer_kind_name(9));
  tx_done(&net);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_folder),
      cmocka_unit_test(test_cancel_decline),
      cmocka_unit_test(test_resume_receiver_restart),
      cmocka_unit_test(test_corrupt_partial_detected),
      cmocka_unit_test(test_accept_limits),
      cmocka_unit_test(test_bad_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
