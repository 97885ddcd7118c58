/* test_transfer.c: the transfer engine over simulated transports.
 *
 * Two engines (src/transfer.c), each with its own store and folder, wired
 * to two transports of the simulator exactly as the node wires them: chat
 * envelopes in, control messages and bulk streams out, sessions up and
 * down.  The links lose a tenth of everything both ways; a 200 MiB file
 * must arrive intact, and a restart of the receiver (transport and engine)
 * three quarters of the way must not make it start over.  Deterministic
 * (seeded). */
#define _GNU_SOURCE /* nftw */
#include <ftw.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "crypto.h"
#include "sim.h"
#include "store.h"
#include "transfer.h"
#include "wire.h"

#define MS UINT64_C(1000)
#define SEC UINT64_C(1000000)

typedef struct {
  sim *s;
  int idx;
  lc__store *store;
  lc__xfer *x;
  char dir[64];
  int state; /* of the last event */
  int events;
  uint64_t bytes;
} side;

static side g_side[2];
static sim *g_sim;

static side *side_of(void *user) {
  return user;
}

static sim_node *tp_of(side *d) {
  return sim_node_get(d->s, d->idx);
}

static int op_send(void *user, const uint8_t *peer, const uint8_t *tid,
                   const uint8_t *env, size_t len) {
  side *d = side_of(user);
  int rc = lc__tp_send_msg(tp_of(d)->tp, peer, tid, env, len, sim_now(d->s));
  sim_touch(d->s, d->idx);
  return rc;
}

static int op_open(void *user, const uint8_t *peer, uint32_t *stream) {
  side *d = side_of(user);
  return lc__tp_bulk_open(tp_of(d)->tp, peer, stream);
}

static int op_write(void *user, const uint8_t *peer, uint32_t stream,
                    const uint8_t *data, size_t len, int fin) {
  side *d = side_of(user);
  int rc = lc__tp_bulk_write(tp_of(d)->tp, peer, stream, data, len, fin,
                             sim_now(d->s));
  sim_touch(d->s, d->idx);
  return rc;
}

static void op_connect(void *user, const uint8_t *peer) {
  side *d = side_of(user);
  lc__tp_connect(tp_of(d)->tp, peer, sim_now(d->s));
  sim_touch(d->s, d->idx);
}

static void op_event(void *user, int ev, const lc__xfer_row *r, uint64_t bytes,
                     uint64_t rate, int detail) {
  (void)ev, (void)rate, (void)detail;
  side *d = side_of(user);
  d->state = r->state;
  d->bytes = bytes;
  d->events++;
}

static void op_random(void *user, void *buf, size_t len) {
  side *d = side_of(user);
  sim_rng_fill(sim_rng_of(d->s), buf, len);
}

static const uint8_t *pk_of(sim *s, int i) {
  return sim_node_get(s, i)->id.pk;
}

/* A chat envelope for node `node` from `peer`: what the node does. */
static void on_msg(void *ctx, sim *s, int node, int peer,
                   const uint8_t msg_id[LC_MSG_ID_BYTES], const uint8_t *data,
                   size_t len) {
  (void)ctx;
  static lc__chat c;
  assert_int_equal(lc__chat_decode(&c, data, len) >= 0, 1);
  side *d = &g_side[node];
  if (c.kind == LC_CHAT_FILE) {
    int64_t id;
    char *summary;
    assert_int_equal(lc__xfer_recv_offer(d->x, pk_of(s, peer), msg_id, &c,
                                         sim_now(s) / 1000, 1, &id, &summary),
                     0);
    free(summary);
  } else {
    assert_int_equal(c.kind, LC_CHAT_FILE_CTRL);
    lc__xfer_recv_ctrl(d->x, pk_of(s, peer), &c);
  }
}

static void on_bulk(void *ctx, sim *s, int node, int peer, uint32_t stream,
                    uint64_t offset, const uint8_t *data, size_t len) {
  (void)ctx;
  lc__xfer_bulk(g_side[node].x, pk_of(s, peer), stream, offset, data, len);
}

static void on_event(void *ctx, sim *s, int node, int kind, int peer,
                     const uint8_t *msg_id, const uint8_t *data, size_t len,
                     int64_t arg) {
  (void)ctx, (void)data, (void)len;
  lc__xfer *x = g_side[node].x;
  const uint8_t *pk = pk_of(s, peer);
  switch (kind) {
  case SIM_E_UP:
    lc__xfer_session_up(x, pk);
    break;
  case SIM_E_DOWN:
    lc__xfer_session_down(x, pk);
    break;
  case SIM_E_ACKED:
    lc__xfer_msg_acked(x, pk, msg_id);
    break;
  case SIM_E_FAILED:
    lc__xfer_msg_failed(x, pk, msg_id);
    break;
  case SIM_E_BULK_ACKED:
    lc__xfer_bulk_acked(x, pk, (uint32_t)arg);
    break;
  }
}

/* The node's loop: the engines pump every millisecond. */
static void pump(void *ctx, sim *s) {
  (void)ctx;
  for (int i = 0; i < 2; i++) {
    lc__xfer_pump(g_side[i].x, sim_now(s));
    sim_touch(s, i);
  }
  sim_at(s, sim_now(s) + 1 * MS, pump, NULL);
}

static int rm_one(const char *p, const struct stat *sb, int flag,
                  struct FTW *f) {
  (void)sb, (void)f;
  return flag == FTW_DP ? rmdir(p) : unlink(p);
}

static void side_open(side *d, sim *s, int idx) {
  memset(d, 0, sizeof *d);
  d->s = s;
  d->idx = idx;
  snprintf(d->dir, sizeof d->dir, "/tmp/lc-sim-xfer-XXXXXX");
  assert_non_null(mkdtemp(d->dir));
  char path[128];
  snprintf(path, sizeof path, "%s/history.db", d->dir);
  char *err = NULL;
  assert_int_equal(lc__store_open(&d->store, path, &err), 0);
  lc__xfer_ops ops;
  memset(&ops, 0, sizeof ops);
  ops.send_msg = op_send;
  ops.bulk_open = op_open;
  ops.bulk_write = op_write;
  ops.connect = op_connect;
  ops.event = op_event;
  ops.random = op_random;
  ops.user = d;
  snprintf(path, sizeof path, "%s/downloads", d->dir);
  assert_int_equal(lc__xfer_new(&d->x, d->store, path, &ops), 0);
  assert_int_equal(lc__xfer_load(d->x, sim_now(s)), 0);
}

static void side_close(side *d) {
  lc__xfer_free(d->x);
  lc__store_close(d->store);
  nftw(d->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void write_pattern(const char *path, uint64_t size, uint64_t seed) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  static uint64_t buf[131072];
  uint64_t st = seed;
  for (uint64_t done = 0; done < size;) {
    for (size_t i = 0; i < sizeof buf / 8; i++)
      buf[i] = sim_splitmix64(&st);
    size_t n = size - done < sizeof buf ? (size_t)(size - done) : sizeof buf;
    assert_int_equal(fwrite(buf, 1, n, f), n);
    done += n;
  }
  assert_int_equal(fclose(f), 0);
}

static void file_hash(const char *path, uint8_t out[32]) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  static uint8_t buf[1 << 20];
  lc__hash_state *h = aligned_alloc(64, sizeof *h);
  assert_non_null(h);
  lc__hash_init(h);
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0)
    lc__hash_update(h, buf, n);
  lc__hash_final(h, out);
  free(h);
  fclose(f);
}

static int pred_not_done(void *ctx, sim *s) {
  (void)ctx, (void)s;
  return !(g_side[0].state == LC_TRANSFER_DONE &&
           g_side[1].state == LC_TRANSFER_DONE);
}

static uint64_t g_until;
static int pred_below(void *ctx, sim *s) {
  (void)ctx, (void)s;
  return g_side[1].bytes < g_until;
}

/* size bytes from 0 to 1 over links that lose `loss` of everything;
 * restart: the receiver's transport restarts at half way. */
static void run(uint64_t seed, uint64_t size, double loss, uint64_t bps,
                int restart) {
  sim *s = g_sim = sim_new(seed);
  assert_non_null(s);
  lc__tp_config cfg;
  sim_default_config(&cfg);
  cfg.max_datagram = 8972; /* a jumbo frame: fewer events, same logic */
  cfg.loss_tolerant = 1;
  int a = sim_add_node(s, &cfg), b = sim_add_node(s, &cfg);
  sim_link_params lp = {.loss = loss,
                        .delay_us = 500,
                        .jitter_us = 100,
                        .bandwidth_bps = bps,
                        .queue_bytes = 4 * 1024 * 1024};
  sim_link_set_both(s, a, b, &lp);
  side_open(&g_side[0], s, a);
  side_open(&g_side[1], s, b);
  for (int i = 0; i < 2; i++) {
    sim_node_get(s, i)->on_msg = on_msg;
    sim_node_get(s, i)->on_bulk = on_bulk;
  }
  sim_set_event_hook(s, on_event, NULL);

  char src[128];
  snprintf(src, sizeof src, "%s/big.bin", g_side[0].dir);
  write_pattern(src, size, seed);
  const char *paths[] = {src};
  uint8_t id[LC_MSGID_BYTES];
  sim_rng_fill(sim_rng_of(s), id, sizeof id);
  assert_int_equal(lc__xfer_offer(g_side[0].x, pk_of(s, b), paths, 1, 0, 0,
                                  sim_now(s) / 1000, id),
                   0);
  uint8_t *env;
  size_t len;
  assert_int_equal(
      lc__xfer_offer_envelope(g_side[0].x, id, sim_now(s) / 1000, &env, &len),
      0);
  assert_int_equal(lc__tp_send_msg(sim_node_get(s, a)->tp, pk_of(s, b), id, env,
                                   len, sim_now(s)),
                   0);
  free(env);
  sim_touch(s, a);
  sim_at(s, sim_now(s), pump, NULL);

  uint64_t t0 = sim_now(s);
  if (restart) {
    /* three quarters, over more than a second: progress was saved */
    g_until = size / 4 * 3;
    SIM_CHECK(s, sim_run_while(s, pred_below, NULL, t0 + 600 * SEC) == 0,
              "3/4 did not arrive: %" PRIu64, g_side[1].bytes);
    /* the receiver's process restarts: a new transport, the engine taken
     * up again from its store */
    lc__xfer_free(g_side[1].x);
    g_side[1].x = NULL;
    assert_int_equal(sim_node_restart(s, b), 0);
    lc__xfer_ops ops;
    memset(&ops, 0, sizeof ops);
    ops.send_msg = op_send;
    ops.bulk_open = op_open;
    ops.bulk_write = op_write;
    ops.connect = op_connect;
    ops.event = op_event;
    ops.random = op_random;
    ops.user = &g_side[1];
    char dl[128];
    snprintf(dl, sizeof dl, "%s/downloads", g_side[1].dir);
    assert_int_equal(lc__xfer_new(&g_side[1].x, g_side[1].store, dl, &ops), 0);
    assert_int_equal(lc__xfer_load(g_side[1].x, sim_now(s)), 0);
    lc__xfer_peer_up(g_side[1].x, pk_of(s, a)); /* discovery sees alice */
  }
  int r = sim_run_while(s, pred_not_done, NULL, t0 + 600 * SEC);
  SIM_CHECK(s, r == 0, "not done: sender %d, receiver %d at %" PRIu64,
            g_side[0].state, g_side[1].state, g_side[1].bytes);
  SIM_CHECK(s, sim_failed(s) == NULL, "simulator: %s",
            sim_failed(s) ? sim_failed(s) : "");
  char dst[128];
  snprintf(dst, sizeof dst, "%s/downloads/big.bin", g_side[1].dir);
  uint8_t h1[32], h2[32];
  file_hash(src, h1);
  file_hash(dst, h2);
  SIM_CHECK(s, memcmp(h1, h2, 32) == 0, "the file arrived different");
  lc__xfer_stats st;
  lc__xfer_stats_get(g_side[1].x, &st);
  SIM_CHECK(s, st.hash_fails == 0 && st.bad_data == 0,
            "hash fails %" PRIu64 ", bad data %" PRIu64, st.hash_fails,
            st.bad_data);
  if (restart) /* resumed: far less than the whole file again */
    SIM_CHECK(s, st.bytes_recv < size - size / 4,
              "after the restart %" PRIu64 " of %" PRIu64 " bytes came again",
              st.bytes_recv, size);
  else
    SIM_CHECK(s, st.bytes_recv == size, "received %" PRIu64, st.bytes_recv);
  const sim_link_stats *ls = sim_link_stats_of(s, a, b);
  fprintf(stderr,
          "  %" PRIu64 " MiB at %.0f%% loss%s: %.2f s virtual, %" PRIu64
          " datagrams, %" PRIu64 " lost\n",
          size >> 20, loss * 100, restart ? " (receiver restarted)" : "",
          (double)(sim_now(s) - t0) / 1e6, ls->sent, ls->lost);
  side_close(&g_side[0]);
  side_close(&g_side[1]);
  sim_free(s);
  g_sim = NULL;
}

static void test_200mib_at_10pct_loss(void **state) {
  (void)state;
  run(sim_seed(900, 0), 200ull << 20, 0.10, 2000000000, 0);
}

static void test_resume_after_receiver_restart(void **state) {
  (void)state;
  run(sim_seed(910, 0), 24ull << 20, 0.02, 50000000, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_200mib_at_10pct_loss),
      cmocka_unit_test(test_resume_after_receiver_restart),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
