/* test_review.c: adversarial review of src/transport.c.
 *
 * Two kinds of scenario.  "Raw peer" tests drive one transport by hand with
 * a virtual clock and play its peer with the crypto and wire APIs directly
 * (a real HELLO, then sealed payloads of any frames we like), so a hostile
 * or buggy peer can be modelled exactly.  Simulator tests use tests/sim for
 * whole-network behaviour (re-entrant callbacks, restarts, extreme RTTs) and
 * are stricter than the simulator's own livelock check: a wakeup time for
 * which lc__tp_poll does nothing is a failure even once.
 *
 * Everything is deterministic (fixed seeds, virtual clocks). */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <malloc.h>

#include <cmocka.h>

#include "crypto.h"
#include "sim.h"
#include "wire.h"

#define MS UINT64_C(1000)
#define SEC UINT64_C(1000000)

/* ---- the raw peer -------------------------------------------------------- */

#define RP_CLOCK_OFFSET UINT64_C(1700000000000000)

typedef struct {
  lc__tp *tp;
  lc__tp_config cfg;
  lc__identity tp_id;
  lc__addr tp_addr;
  uint64_t now;
  uint64_t rng;
  uint64_t stalls; /* next_wakeup <= now, yet poll sent nothing */
  uint64_t dgrams; /* datagrams the transport sent */
  /* the peer we play */
  lc__identity id;
  lc__addr addr;
  lc__keypair kp;
  int have_keys;
  uint64_t pn;
  uint64_t hs_ts;
  /* what the transport's application saw */
  uint64_t ups, downs, msgs, acked, failed, bulk_calls, bulk_bytes, bulk_done;
  uint8_t out[LC_DATAGRAM_MAX], ct[LC_DATAGRAM_MAX], pt[LC_DATAGRAM_MAX];
} rp;

static void rp_random(void *ctx, void *buf, size_t len) {
  uint64_t *s = ctx;
  uint8_t *p = buf;
  for (size_t i = 0; i < len; i++) {
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    p[i] = (uint8_t)(z ^ (z >> 31));
  }
}

static rp *rp_of(void *u) {
  return u;
}
static void rp_cb_up(void *u, const uint8_t peer[LC_PK_BYTES]) {
  (void)peer;
  rp_of(u)->ups++;
}
static void rp_cb_down(void *u, const uint8_t peer[LC_PK_BYTES], int reason) {
  (void)peer;
  (void)reason;
  rp_of(u)->downs++;
}
static int rp_cb_msg(void *u, const uint8_t peer[LC_PK_BYTES],
                     const uint8_t msg_id[LC_MSG_ID_BYTES], const uint8_t *data,
                     size_t len) {
  (void)peer;
  (void)msg_id;
  (void)data;
  (void)len;
  rp_of(u)->msgs++;
  return 0;
}
static void rp_cb_acked(void *u, const uint8_t peer[LC_PK_BYTES],
                        const uint8_t msg_id[LC_MSG_ID_BYTES]) {
  (void)peer;
  (void)msg_id;
  rp_of(u)->acked++;
}
static void rp_cb_failed(void *u, const uint8_t peer[LC_PK_BYTES],
                         const uint8_t msg_id[LC_MSG_ID_BYTES], int err) {
  (void)peer;
  (void)msg_id;
  (void)err;
  rp_of(u)->failed++;
}
static void rp_cb_bulk(void *u, const uint8_t peer[LC_PK_BYTES],
                       uint32_t stream_id, uint64_t offset, const uint8_t *data,
                       size_t len) {
  (void)peer;
  (void)stream_id;
  (void)offset;
  (void)data;
  rp_of(u)->bulk_calls++;
  rp_of(u)->bulk_bytes += len;
}
static void rp_cb_bulk_done(void *u, const uint8_t peer[LC_PK_BYTES],
                            uint32_t stream_id, uint64_t final_size) {
  (void)peer;
  (void)stream_id;
  (void)final_size;
  rp_of(u)->bulk_done++;
}

static void rp_addr(lc__addr *a, uint8_t last) {
  memset(a, 0, sizeof *a);
  struct sockaddr_in *in = (struct sockaddr_in *)&a->ss;
  in->sin_family = AF_INET;
  in->sin_port = htons(7000);
  in->sin_addr.s_addr = htonl(0x0a000000u | last);
  a->len = sizeof *in;
}

static void rp_identity(lc__identity *id, uint8_t fill) {
  uint8_t seed[32];
  memset(seed, fill, sizeof seed);
  assert_int_equal(lc__identity_generate(id, seed), 0);
}

/* cfg may be NULL (defaults).  random, callbacks and user are ours. */
static void rp_init(rp *r, const lc__tp_config *cfg) {
  memset(r, 0, sizeof *r);
  assert_int_equal(lc__crypto_init(), 0);
  if (cfg)
    r->cfg = *cfg;
  else
    lc__tp_config_default(&r->cfg);
  r->rng = 42;
  r->cfg.random = rp_random;
  r->cfg.random_ctx = &r->rng;
  r->cfg.clock_offset_us = RP_CLOCK_OFFSET;
  r->cfg.user = r;
  r->cfg.cb.session_up = rp_cb_up;
  r->cfg.cb.session_down = rp_cb_down;
  r->cfg.cb.message = rp_cb_msg;
  r->cfg.cb.message_acked = rp_cb_acked;
  r->cfg.cb.message_failed = rp_cb_failed;
  r->cfg.cb.bulk = rp_cb_bulk;
  r->cfg.cb.bulk_done = rp_cb_bulk_done;
  rp_identity(&r->tp_id, 0x11);
  rp_identity(&r->id, 0x22);
  rp_addr(&r->tp_addr, 1);
  rp_addr(&r->addr, 2);
  r->now = 10 * SEC;
  assert_int_equal(lc__tp_new(&r->tp, &r->tp_id, &r->cfg), 0);
}

static void rp_free(rp *r) {
  lc__tp_free(r->tp);
  r->tp = NULL;
}

/* Polls until the transport has nothing due now. */
static void rp_drain(rp *r) {
  for (int i = 0; i < 4096; i++) {
    lc__addr to;
    int n = lc__tp_poll(r->tp, r->now, &to, r->out, sizeof r->out);
    assert_true(n >= 0);
    if (n == 0) {
      if (lc__tp_next_wakeup(r->tp) <= r->now)
        r->stalls++;
      return;
    }
    r->dgrams++;
  }
  fail_msg("the transport kept sending at one instant");
}

/* Runs the transport's timers up to now + us, the way a driver would. */
static void rp_advance(rp *r, uint64_t us) {
  uint64_t until = r->now + us;
  for (int i = 0; i < 100000; i++) {
    uint64_t w = lc__tp_next_wakeup(r->tp);
    if (w > until)
      break;
    if (w > r->now)
      r->now = w;
    rp_drain(r);
  }
  r->now = until;
  rp_drain(r);
}

/* Sends a valid HELLO from identity `id` with our index `index`; returns
 * lc__tp_recv's result.  The handshake state is left in *hs. */
static int rp_hello(rp *r, const lc__identity *id, const lc__addr *from,
                    uint32_t index, uint64_t incarnation, lc__hs *hs) {
  lc__hello hello;
  uint8_t eph[32];
  rp_random(&r->rng, eph, sizeof eph);
  r->hs_ts = r->hs_ts ? r->hs_ts + 1 : RP_CLOCK_OFFSET + r->now;
  assert_int_equal(lc__hs_initiate(hs, id, r->tp_id.pk, index, r->hs_ts,
                                   incarnation, eph, &hello),
                   0);
  lc__datagram dg;
  memset(&dg, 0, sizeof dg);
  dg.type = LC_DG_HELLO;
  dg.u.hello = hello;
  int n = lc__wire_encode(&dg, r->out, sizeof r->out);
  assert_true(n > 0);
  return lc__tp_recv(r->tp, from, r->out, (size_t)n, r->now);
}

/* The full handshake as the initiator, as identity r->id. */
static void rp_handshake(rp *r) {
  lc__hs hs;
  assert_int_equal(rp_hello(r, &r->id, &r->addr, 0x0badf00d, 0x1234, &hs), 0);
  for (int i = 0; i < 8; i++) {
    lc__addr to;
    int n = lc__tp_poll(r->tp, r->now, &to, r->out, sizeof r->out);
    assert_true(n > 0);
    lc__datagram w;
    assert_int_equal(lc__wire_decode(&w, r->out, (size_t)n), 0);
    if (w.type != LC_DG_WELCOME)
      continue;
    lc__session_keys keys;
    uint64_t inc = 0;
    assert_int_equal(lc__hs_read_welcome(&hs, &w.u.welcome, &keys, &inc), 0);
    lc__keypair_init(&r->kp, &keys, 0x0badf00d, w.u.welcome.sender_index);
    r->have_keys = 1;
    lc__hs_wipe(&hs);
    return;
  }
  fail_msg("no WELCOME");
}

/* Seals frames f[0..n) under the next packet number and delivers them. */
static int rp_send(rp *r, const lc__frame *f, size_t n) {
  lc__payload_writer w;
  lc__payload_init(&w, r->pt, 1200);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(lc__payload_add(&w, &f[i]), 0);
  size_t len = lc__payload_finish(&w);
  int c = lc__seal(&r->kp, r->pn, r->pt, len, r->ct);
  assert_true(c > 0);
  lc__datagram dg;
  memset(&dg, 0, sizeof dg);
  dg.type = LC_DG_DATA;
  dg.u.data.receiver_index = r->kp.remote_index;
  dg.u.data.packet_number = r->pn++;
  dg.u.data.ciphertext = r->ct;
  dg.u.data.ciphertext_len = (size_t)c;
  int m = lc__wire_encode(&dg, r->out, sizeof r->out);
  assert_true(m > 0);
  int rc = lc__tp_recv(r->tp, &r->addr, r->out, (size_t)m, r->now);
  rp_drain(r);
  return rc;
}

static int rp_ping(rp *r) {
  lc__frame f;
  memset(&f, 0, sizeof f);
  f.type = LC_FR_PING;
  return rp_send(r, &f, 1);
}

static int rp_bulk(rp *r, uint32_t id, uint64_t off, const uint8_t *d,
                   size_t len, int fin) {
  lc__frame f;
  memset(&f, 0, sizeof f);
  f.type = LC_FR_BULK;
  f.u.bulk.stream_id = id;
  f.u.bulk.offset = off;
  f.u.bulk.data = d;
  f.u.bulk.len = len;
  f.u.bulk.fin = fin;
  return rp_send(r, &f, 1);
}

static size_t heap_in_use(void) {
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

/* ---- raw peer: regression tests (pass today) ----------------------------- */

/* A zero-length bulk stream (one frame: no data, fin) completes at once,
 * exactly once, and a repeat of it in a new packet changes nothing. */
static void test_raw_bulk_empty_stream(void **state) {
  (void)state;
  rp r;
  rp_init(&r, NULL);
  rp_handshake(&r);
  assert_int_equal(rp_ping(&r), 0);
  assert_int_equal(r.ups, 1);
  uint8_t dummy = 0;
  assert_int_equal(rp_bulk(&r, 7, 0, &dummy, 0, 1), 0);
  assert_int_equal(r.bulk_done, 1);
  assert_int_equal(r.bulk_bytes, 0);
  assert_int_equal(rp_bulk(&r, 7, 0, &dummy, 0, 1), 0);
  assert_int_equal(r.bulk_done, 1);
  /* data after fin-only-at-0 for a finished stream is ignored, not
   * delivered */
  uint8_t x[4] = {1, 2, 3, 4};
  assert_int_equal(rp_bulk(&r, 7, 0, x, 4, 0), 0);
  assert_int_equal(r.bulk_bytes, 0);
  assert_int_equal(r.stalls, 0);
  rp_free(&r);
}

/* A fin that claims less than what was already received is refused; the
 * stream then still completes at the true size. */
static void test_raw_bulk_fin_below_data(void **state) {
  (void)state;
  rp r;
  rp_init(&r, NULL);
  rp_handshake(&r);
  assert_int_equal(rp_ping(&r), 0);
  uint8_t d[100];
  memset(d, 5, sizeof d);
  assert_int_equal(rp_bulk(&r, 1, 50, d, 50, 0), 0);
  assert_int_equal(r.bulk_bytes, 50);
  (void)rp_bulk(&r, 1, 0, d, 10, 1); /* fin at 10 < 100 already seen */
  assert_int_equal(r.bulk_done, 0);
  assert_int_equal(rp_bulk(&r, 1, 0, d, 50, 0), 0);
  assert_int_equal(r.bulk_done, 0);
  assert_int_equal(rp_bulk(&r, 1, 50, d, 50, 1), 0);
  assert_int_equal(r.bulk_done, 1);
  assert_int_equal(r.bulk_bytes, 100);
  rp_free(&r);
}

/* ACK frames from the network with extreme values: never-sent packet
 * numbers are refused, huge ack delays change nothing harmful. */
static void test_raw_ack_extremes(void **state) {
  (void)state;
  rp r;
  rp_init(&r, NULL);
  rp_handshake(&r);
  assert_int_equal(rp_ping(&r), 0);
  lc__frame f;
  memset(&f, 0, sizeof f);
  f.type = LC_FR_ACK;
  f.u.ack.largest = UINT64_MAX - 1;
  f.u.ack.first_range = 0;
  assert_int_equal(rp_send(&r, &f, 1), LC_EPROTO);
  rp_advance(&r, 10 * MS); /* the transport acknowledges: its packet 0 */
  memset(&f, 0, sizeof f);
  f.type = LC_FR_ACK;
  f.u.ack.largest = 0;
  f.u.ack.ack_delay_us = UINT64_MAX;
  assert_int_equal(rp_send(&r, &f, 1), 0);
  lc__tp_session_stats st;
  assert_int_equal(lc__tp_session_stats_get(r.tp, r.id.pk, &st), 0);
  assert_true(st.smoothed_rtt_us < 10 * SEC);
  /* DELIVERED beyond anything queued is a violation */
  memset(&f, 0, sizeof f);
  f.type = LC_FR_DELIVERED;
  f.u.delivered.seq = 1;
  assert_int_equal(rp_send(&r, &f, 1), LC_EPROTO);
  assert_int_equal(r.acked, 0);
  rp_advance(&r, 5 * SEC);
  assert_int_equal(r.stalls, 0);
  rp_free(&r);
}

/* ---- raw peer: cases the review found (fixed since) ---------------------- */

/* F1: a peer that never acknowledges, but keeps sending ack-eliciting
 * packets, makes the transport's sent ring grow without bound: every
 * ACK-only packet it sends is recorded, and the ring can only be trimmed
 * from its oldest entry, which stays outstanding (never acked, never
 * declared lost without an ACK).  LC_SENT_MAX caps only ack-eliciting
 * sends. */
static void test_raw_sent_ring_unbounded(void **state) {
  (void)state;
  rp r;
  rp_init(&r, NULL);
  rp_handshake(&r);
  assert_int_equal(rp_ping(&r), 0);
  uint8_t id[LC_MSG_ID_BYTES] = {9};
  assert_int_equal(lc__tp_send_msg(r.tp, r.id.pk, id, id, 16, r.now), 0);
  rp_drain(&r);
  size_t before = heap_in_use();
  lc__tp_stats ts0, ts1;
  lc__tp_stats_get(r.tp, &ts0);
  for (int i = 0; i < 150000; i++) {
    r.now += 5;
    assert_int_equal(rp_ping(&r), 0);
  }
  lc__tp_stats_get(r.tp, &ts1);
  size_t after = heap_in_use();
  size_t grown = after > before ? after - before : 0;
  fprintf(stderr, "sent %" PRIu64 " datagrams, heap grew by %zu bytes\n",
          ts1.sent - ts0.sent, grown);
  /* 16,384 tracked packets (LC_SENT_MAX) is the bound, about 7 MB of
   * tp_sent records; allow 12 MB */
  assert_true(grown < (size_t)12 << 20);
  rp_free(&r);
}

/* F2: the set of finished incoming bulk stream ids holds at most 64 ranges
 * (transport.c, tp_session_reset_receive: lc__rs_init(&p->bin_done, 64)),
 * whatever max_bulk_streams is, and tp_on_bulk_frame ignores the
 * LC_ELIMIT from lc__rs_add.  A sender allowed more than 64 open streams
 * can finish streams around 64+ open ones; a finished id that did not fit
 * is then forgotten, and a retransmission of its data (an ACK was lost)
 * opens the stream again: its bytes are handed to the application twice and
 * bulk_done fires twice. */
static void test_raw_bulk_done_set_overflow(void **state) {
  (void)state;
  lc__tp_config cfg;
  lc__tp_config_default(&cfg);
  cfg.max_bulk_streams = 128;
  rp r;
  rp_init(&r, &cfg);
  rp_handshake(&r);
  assert_int_equal(rp_ping(&r), 0);
  uint8_t d[1] = {0x5a};
  /* 66 streams left open (odd ids), 67 finished around them (even ids) */
  for (uint32_t k = 0; k < 66; k++)
    assert_int_equal(rp_bulk(&r, 2 * k + 1, 0, d, 1, 0), 0);
  for (uint32_t k = 0; k < 67; k++)
    assert_int_equal(rp_bulk(&r, 2 * k, 0, d, 1, 1), 0);
  assert_int_equal(r.bulk_done, 67);
  uint64_t bytes = r.bulk_bytes, calls = r.bulk_calls;
  /* the last finished stream's frame again, in a new packet (what a
   * retransmission after a lost ACK looks like) */
  assert_int_equal(rp_bulk(&r, 2 * 66, 0, d, 1, 1), 0);
  fprintf(stderr,
          "bulk_done %" PRIu64 " (want 67), bytes %" PRIu64 " (want %" PRIu64
          ")\n",
          r.bulk_done, r.bulk_bytes, bytes);
  assert_int_equal(r.bulk_calls, calls);
  assert_int_equal(r.bulk_bytes, bytes);
  assert_int_equal(r.bulk_done, 67);
  rp_free(&r);
}

/* F3: half-open handshakes never expire.  Every valid HELLO from a new
 * identity creates a peer entry with an unconfirmed responder keypair; the
 * entry is never reclaimed (there is no expiry for a session that was never
 * established, and no eviction of peers without a session), so
 * max_sessions HELLOs from throw-away identities (free to make; only our
 * public key is needed) lock every new peer out for good. */
static void test_raw_half_open_fill_table(void **state) {
  (void)state;
  lc__tp_config cfg;
  lc__tp_config_default(&cfg);
  cfg.max_sessions = 4;
  cfg.idle_timeout_us = 30 * SEC;
  rp r;
  rp_init(&r, &cfg);
  for (int i = 0; i < 4; i++) {
    lc__identity junk;
    rp_identity(&junk, (uint8_t)(0x30 + i));
    lc__addr a;
    rp_addr(&a, (uint8_t)(10 + i));
    lc__hs hs;
    assert_int_equal(rp_hello(&r, &junk, &a, 100 + (uint32_t)i, 1, &hs), 0);
    lc__hs_wipe(&hs);
    rp_drain(&r);
  }
  /* an hour later, a real peer */
  rp_advance(&r, 3600 * SEC);
  lc__hs hs;
  int rc = rp_hello(&r, &r.id, &r.addr, 0x0badf00d, 0x1234, &hs);
  lc__hs_wipe(&hs);
  fprintf(stderr, "HELLO after an hour: %s\n", lc_err_name(rc));
  assert_int_equal(rc, 0);
  rp_free(&r);
}

/* ---- simulator scenarios ------------------------------------------------- */

static sim *g_sim;

static sim *new_sim(uint64_t seed) {
  sim_free(g_sim);
  g_sim = sim_new(seed);
  assert_non_null(g_sim);
  return g_sim;
}

static int teardown(void **state) {
  (void)state;
  sim_free(g_sim);
  g_sim = NULL;
  return 0;
}

/* The simulator's own check tolerates a few stalls (it nudges the clock);
 * here a single one is a failure: next_wakeup must name a time at which
 * poll really has something to do. */
static void clean_strict(sim *s) {
  SIM_CHECK(s, sim_failed(s) == NULL, "simulator: %s",
            sim_failed(s) ? sim_failed(s) : "");
  SIM_CHECK(s, sim_invariant_violations(s) == 0, "cwnd invariant violated");
  SIM_CHECK(s, sim_stalls(s) == 0,
            "%" PRIu64 " wakeups at which poll did nothing", sim_stalls(s));
}

/* A bulk writer: writes what the transport accepts, every millisecond,
 * fin with the last byte. */
typedef struct {
  int from, to;
  uint32_t stream;
  uint64_t total, written;
  int err;
} bw_ctx;

static void bw_tick(void *ctx, sim *s) {
  bw_ctx *c = ctx;
  static uint8_t buf[32768];
  sim_node *nf = sim_node_get(s, c->from), *nt = sim_node_get(s, c->to);
  while (c->written < c->total && !c->err) {
    size_t n = sizeof buf;
    if (n > c->total - c->written)
      n = (size_t)(c->total - c->written);
    for (size_t i = 0; i < n; i++)
      buf[i] = (uint8_t)((c->written + i) * 7);
    int rc = lc__tp_bulk_write(nf->tp, nt->id.pk, c->stream, buf, n,
                               c->written + n == c->total, sim_now(s));
    if (rc == LC_EAGAIN)
      break;
    if (rc < 0) {
      c->err = rc;
      break;
    }
    c->written += (uint64_t)rc;
    if ((size_t)rc < n)
      break;
  }
  sim_touch(s, c->from);
  if (c->written < c->total && !c->err)
    sim_at(s, sim_now(s) + MS, bw_tick, c);
}

typedef struct {
  int a, b;
} pair_ctx;

static int pred_work(void *ctx, sim *s) {
  pair_ctx *pc = ctx;
  sim_node *na = sim_node_get(s, pc->a), *nb = sim_node_get(s, pc->b);
  return sim_pred_pending(NULL, s) || nb->nbulk_done < 1 || na->nbulk_acked < 1;
}

/* Chat both ways and a bulk stream a -> b over the given link, strictly
 * without stalls; every message once, in order, acknowledged; every bulk
 * byte once. */
static void run_mixed(uint64_t seed, const sim_link_params *lp, uint64_t bulk,
                      int nmsgs, uint64_t deadline_us) {
  sim *s = new_sim(seed);
  int a = sim_add_node(s, NULL), b = sim_add_node(s, NULL);
  sim_link_set_both(s, a, b, lp);
  sim_node *na = sim_node_get(s, a), *nb = sim_node_get(s, b);
  sim_rng *rng = sim_rng_of(s);
  for (int i = 0; i < nmsgs; i++) {
    assert_int_equal(sim_send_msg(s, a, b, (size_t)sim_rng_range(rng, 0, 5000)),
                     0);
    if (i % 2)
      assert_int_equal(
          sim_send_msg(s, b, a, (size_t)sim_rng_range(rng, 0, 3000)), 0);
  }
  bw_ctx c = {.from = a, .to = b, .total = bulk};
  assert_int_equal(lc__tp_bulk_open(na->tp, nb->id.pk, &c.stream), 0);
  sim_at(s, sim_now(s), bw_tick, &c);
  pair_ctx pc = {a, b};
  int r = sim_run_while(s, pred_work, &pc, sim_now(s) + deadline_us);
  SIM_CHECK(s, c.err == 0, "bulk write: %s", lc_err_name(c.err));
  SIM_CHECK(s, r == 0,
            "not done: bulk %" PRIu64 "/%" PRIu64 " done %zu acked %zu",
            nb->bulk_bytes, bulk, nb->nbulk_done, na->nbulk_acked);
  clean_strict(s);
  SIM_CHECK(s, sim_check_delivery(s, a, b, 1) == 0, "a -> b");
  SIM_CHECK(s, sim_check_delivery(s, b, a, 1) == 0, "b -> a");
  SIM_CHECK(s, nb->bulk_bytes == bulk, "bulk bytes %" PRIu64 " of %" PRIu64,
            nb->bulk_bytes, bulk);
}

/* Zero RTT: no delay, no serialisation (every RTT sample is 0 -> 1 us). */
static void test_rtt_zero(void **state) {
  (void)state;
  sim_link_params lp = {0};
  run_mixed(sim_seed(50100, 0), &lp, 3 << 20, 300, 60 * SEC);
}

/* Zero delay but a lossy, duplicating link. */
static void test_rtt_zero_lossy(void **state) {
  (void)state;
  sim_link_params lp = {.loss = 0.1, .dup = 0.05};
  run_mixed(sim_seed(50200, 0), &lp, 1 << 20, 200, 120 * SEC);
}

/* A long path: 400 ms each way (RTT 0.8 s, under pto_max_us), some
 * loss. */
static void test_rtt_long(void **state) {
  (void)state;
  sim_link_params lp = {
      .delay_us = 400 * MS, .jitter_us = 10 * MS, .loss = 0.02};
  run_mixed(sim_seed(50300, 0), &lp, 1 << 20, 100, 600 * SEC);
}

/* A thin pipe with a small queue: 2 Mbit/s, 16 kB of queue, 5 ms. */
static void test_thin_pipe(void **state) {
  (void)state;
  sim_link_params lp = {
      .delay_us = 5 * MS, .bandwidth_bps = 2000000, .queue_bytes = 16 * 1024};
  run_mixed(sim_seed(50400, 0), &lp, 1 << 20, 200, 300 * SEC);
}

/* Random links over several seeds. */
static void test_random_strict(void **state) {
  (void)state;
  for (uint64_t i = 0; i < 6; i++) {
    uint64_t seed = sim_seed(50500, i);
    sim_rng r;
    sim_rng_seed(&r, seed ^ 0x5eed);
    sim_link_params lp = {.loss = sim_rng_double(&r) * 0.15,
                          .dup = sim_rng_double(&r) * 0.05,
                          .reorder = sim_rng_double(&r) * 0.1,
                          .reorder_max_us = sim_rng_range(&r, 0, 20 * MS),
                          .delay_us = sim_rng_range(&r, 0, 50 * MS),
                          .jitter_us = sim_rng_range(&r, 0, 2 * MS),
                          .bandwidth_bps = sim_rng_below(&r, 2) ? 0 : 20000000,
                          .queue_bytes = 64 * 1024};
    if (lp.jitter_us > lp.delay_us)
      lp.jitter_us = lp.delay_us;
    run_mixed(seed, &lp, 512 * 1024, 150, 300 * SEC);
    if (sim_seed_from_env())
      break;
  }
}

/* How many times node `node` saw msg_id in list v (msgs, acked or
 * failed). */
static size_t count_msg(const sim_msg *v, size_t n, const uint8_t *id) {
  size_t c = 0;
  for (size_t i = 0; i < n; i++)
    c += memcmp(v[i].msg_id, id, LC_MSG_ID_BYTES) == 0;
  return c;
}
static size_t count_ack(const sim_ack *v, size_t n, const uint8_t *id) {
  size_t c = 0;
  for (size_t i = 0; i < n; i++)
    c += memcmp(v[i].msg_id, id, LC_MSG_ID_BYTES) == 0;
  return c;
}

/* Re-entrant message callback: b echoes every message back from inside
 * the callback, writes to a bulk stream from inside it, and closes the
 * session from inside the 100th.  Every message a sent is then either
 * delivered (and acknowledged at most once) or failed, never both, and
 * delivered once per session: a message b took just before it closed,
 * whose DELIVERED never reached a, comes again in the next session under
 * the same id (PROTOCOL.md 9.1), for the application to recognise (the
 * node's store does, 11.7); never twice in one session. */
typedef struct {
  int a, b;
  uint64_t seen;
  uint32_t stream;
  int stream_open;
  int close_rc;
  struct {
    uint8_t id[LC_MSG_ID_BYTES];
    uint64_t session; /* b's sessions up then */
  } log[1024];
  size_t nlog;
} echo_ctx;

static void echo_on_msg(void *ctx, sim *s, int node, int peer,
                        const uint8_t msg_id[LC_MSG_ID_BYTES],
                        const uint8_t *data, size_t len) {
  echo_ctx *e = ctx;
  sim_node *nb = sim_node_get(s, node), *na = sim_node_get(s, peer);
  e->seen++;
  if (e->nlog < sizeof e->log / sizeof e->log[0]) {
    memcpy(e->log[e->nlog].id, msg_id, LC_MSG_ID_BYTES);
    e->log[e->nlog++].session = nb->ups;
  }
  if (e->seen <= 100)
    (void)sim_send_msg(s, node, peer, len);
  if (e->stream_open && e->seen <= 100)
    (void)lc__tp_bulk_write(nb->tp, na->id.pk, e->stream, data, len,
                            e->seen == 100, sim_now(s));
  if (e->seen == 100)
    e->close_rc = lc__tp_close(nb->tp, na->id.pk, sim_now(s));
}

static void test_reentrant_echo_close(void **state) {
  (void)state;
  sim *s = new_sim(sim_seed(51000, 0));
  int a = sim_add_node(s, NULL), b = sim_add_node(s, NULL);
  sim_link_params lp = {.delay_us = 2 * MS, .loss = 0.03};
  sim_link_set_both(s, a, b, &lp);
  sim_node *na = sim_node_get(s, a), *nb = sim_node_get(s, b);
  echo_ctx e = {.a = a, .b = b};
  assert_int_equal(lc__tp_bulk_open(nb->tp, na->id.pk, &e.stream), 0);
  e.stream_open = 1;
  nb->on_msg = echo_on_msg;
  nb->on_msg_ctx = &e;
  for (int i = 0; i < 300; i++)
    assert_int_equal(sim_send_msg(s, a, b, 50 + (size_t)i * 13), 0);
  assert_int_equal(sim_run_until(s, sim_now(s) + 30 * SEC), 0);
  clean_strict(s);
  SIM_CHECK(s, e.close_rc == 0, "close from the callback: %s",
            lc_err_name(e.close_rc));
  SIM_CHECK(s, na->downs >= 1 && nb->downs >= 1,
            "downs a=%" PRIu64 " b=%" PRIu64, na->downs, nb->downs);
  for (size_t i = 0; i < na->nsent; i++) {
    const uint8_t *id = na->sent[i].msg_id;
    size_t d = count_msg(nb->msgs, nb->nmsgs, id);
    size_t k = count_ack(na->acked, na->nacked, id);
    size_t f = count_ack(na->failed, na->nfailed, id);
    /* never twice in one session of b's */
    for (size_t m = 0; m < e.nlog; m++)
      for (size_t q = m + 1; q < e.nlog; q++)
        SIM_CHECK(s,
                  memcmp(e.log[m].id, id, LC_MSG_ID_BYTES) != 0 ||
                      memcmp(e.log[q].id, id, LC_MSG_ID_BYTES) != 0 ||
                      e.log[m].session != e.log[q].session,
                  "a's message %zu delivered twice in b's session %" PRIu64, i,
                  e.log[m].session);
    SIM_CHECK(s, k <= 1 && k <= d, "a's message %zu acked %zu times", i, k);
    SIM_CHECK(s, (d > 0) + f == 1, "a's message %zu: delivered %zu failed %zu",
              i, d, f);
  }
  /* the echoes b queued from inside the callback.  b closed with some in
   * flight: those may have reached a and still be reported failed to b (b
   * cannot know), so only "at most once, and accounted for" holds. */
  SIM_CHECK(s, nb->nsent == 100, "b queued %zu echoes", nb->nsent);
  for (size_t i = 0; i < nb->nsent; i++) {
    const uint8_t *id = nb->sent[i].msg_id;
    size_t d = count_msg(na->msgs, na->nmsgs, id);
    size_t f = count_ack(nb->failed, nb->nfailed, id);
    SIM_CHECK(s, d <= 1 && f <= 1 && d + f >= 1,
              "b's echo %zu: delivered %zu failed %zu", i, d, f);
  }
}

/* message_failed re-sends: a queues messages while b is unreachable,
 * closes, and re-queues every failed message from inside message_failed.
 * Once the partition heals, every message id reaches b exactly once. */
typedef struct {
  int a, b;
  int resent, rc_bad;
} refail_ctx;

static void refail_event(void *ctx, sim *s, int node, int kind, int peer,
                         const uint8_t *msg_id, const uint8_t *data, size_t len,
                         int64_t arg) {
  (void)data;
  (void)len;
  (void)arg;
  refail_ctx *c = ctx;
  if (kind != SIM_E_FAILED || node != c->a)
    return;
  sim_node *na = sim_node_get(s, node), *nb = sim_node_get(s, peer);
  for (size_t i = 0; i < na->nsent; i++) {
    if (memcmp(na->sent[i].msg_id, msg_id, LC_MSG_ID_BYTES) != 0)
      continue;
    uint8_t buf[4096];
    size_t n = na->sent[i].len;
    sim_msg_fill(node, na->sent[i].counter, buf, n);
    int rc = lc__tp_send_msg(na->tp, nb->id.pk, msg_id, buf, n, sim_now(s));
    c->resent++;
    if (rc != 0)
      c->rc_bad++;
    return;
  }
}

static void close_a(void *ctx, sim *s) {
  refail_ctx *c = ctx;
  sim_node *na = sim_node_get(s, c->a), *nb = sim_node_get(s, c->b);
  assert_int_equal(lc__tp_close(na->tp, nb->id.pk, sim_now(s)), 0);
  sim_touch(s, c->a);
}

static void test_failed_callback_resends(void **state) {
  (void)state;
  sim *s = new_sim(sim_seed(51100, 0));
  int a = sim_add_node(s, NULL), b = sim_add_node(s, NULL);
  sim_link_params lp = {.delay_us = 1 * MS};
  sim_link_set_both(s, a, b, &lp);
  sim_node *na = sim_node_get(s, a), *nb = sim_node_get(s, b);
  refail_ctx c = {.a = a, .b = b};
  sim_set_event_hook(s, refail_event, &c);
  assert_int_equal(sim_send_msg(s, a, b, 10), 0);
  SIM_CHECK(s,
            sim_run_while(s, sim_pred_pending, NULL, sim_now(s) + 5 * SEC) == 0,
            "first message");
  sim_partition(s, a, b, 1);
  for (int i = 0; i < 20; i++)
    assert_int_equal(sim_send_msg(s, a, b, 100 + (size_t)i * 97), 0);
  assert_int_equal(sim_run_until(s, sim_now(s) + 500 * MS), 0);
  sim_at(s, sim_now(s), close_a, &c);
  assert_int_equal(sim_run_until(s, sim_now(s) + 2 * SEC), 0);
  sim_partition(s, a, b, 0);
  assert_int_equal(sim_run_until(s, sim_now(s) + 20 * SEC), 0);
  clean_strict(s);
  SIM_CHECK(s, c.resent == 20 && c.rc_bad == 0, "resent %d, refused %d",
            c.resent, c.rc_bad);
  for (size_t i = 0; i < na->nsent; i++) {
    const uint8_t *id = na->sent[i].msg_id;
    size_t d = count_msg(nb->msgs, nb->nmsgs, id);
    SIM_CHECK(s, d == 1, "a's message %zu delivered %zu times", i, d);
    SIM_CHECK(s, count_ack(na->acked, na->nacked, id) == 1,
              "a's message %zu not acknowledged once", i);
  }
}

/* ---- simulator: cases the review found (fixed since) ----------------------
 */

/* F5: a restart that crosses a handshake.  a's rekey HELLO and the
 * restarted b's HELLO are in flight at once.  a answers b's HELLO (responder
 * keypair R), then a's own WELCOME arrives with b's new incarnation:
 * tp_confirm calls tp_session_end, which wipes every keypair slot but the
 * one being confirmed, R included.  b, meanwhile, seals with its newest
 * keypair, the initiator one that pairs with R, so everything b sends is
 * dropped by a as LC_ENOSESSION until a's probes time out three times and
 * a new handshake runs: about 190 ms on a 5 ms link, scaling with the
 * PTO. */
typedef struct {
  int a, b;
  uint64_t up_time;
  uint64_t restart_time;
} xr_ctx;

static void xr_event(void *ctx, sim *s, int node, int kind, int peer,
                     const uint8_t *msg_id, const uint8_t *data, size_t len,
                     int64_t arg) {
  (void)peer;
  (void)msg_id;
  (void)data;
  (void)len;
  (void)arg;
  xr_ctx *c = ctx;
  if (kind == SIM_E_UP && node == c->a && c->up_time == 0)
    c->up_time = sim_now(s);
}

static void xr_restart(void *ctx, sim *s) {
  xr_ctx *c = ctx;
  c->restart_time = sim_now(s);
  assert_int_equal(sim_node_restart(s, c->b), 0);
  assert_int_equal(sim_send_msg(s, c->b, c->a, 100), 0);
  assert_int_equal(sim_send_msg(s, c->a, c->b, 100), 0);
}

static void xr_second(void *ctx, sim *s) {
  xr_ctx *c = ctx;
  c->restart_time = sim_now(s); /* measure from here */
  assert_int_equal(sim_send_msg(s, c->b, c->a, 100), 0);
}

static void test_restart_crossing_rekey(void **state) {
  (void)state;
  sim *s = new_sim(sim_seed(52000, 0));
  lc__tp_config cfg;
  sim_default_config(&cfg);
  cfg.rekey_after_us = 2 * SEC;
  int a = sim_add_node(s, &cfg), b = sim_add_node(s, NULL);
  sim_link_params lp = {.delay_us = 5 * MS};
  sim_link_set_both(s, a, b, &lp);
  xr_ctx c = {.a = a, .b = b};
  sim_set_event_hook(s, xr_event, &c);
  assert_int_equal(sim_send_msg(s, a, b, 10), 0);
  SIM_CHECK(s,
            sim_run_while(s, sim_pred_pending, NULL, sim_now(s) + 5 * SEC) == 0,
            "first message");
  SIM_CHECK(s, c.up_time != 0, "no session_up");
  sim_at(s, c.up_time + 2 * SEC, xr_restart, &c);
  sim_at(s, c.up_time + 2 * SEC + 50 * MS, xr_second, &c);
  assert_int_equal(sim_run_until(s, c.up_time + 2 * SEC), 0);
  int r = sim_run_while(s, sim_pred_pending, NULL, sim_now(s) + 30 * SEC);
  sim_node *na = sim_node_get(s, a);
  uint64_t took = 0;
  for (size_t i = 0; i < na->nmsgs; i++)
    if (na->msgs[i].peer == b)
      took = na->msgs[i].time - c.restart_time;
  fprintf(stderr, "b's second message reached a after %" PRIu64 " us\n", took);
  SIM_CHECK(s, r == 0, "not delivered");
  SIM_CHECK(s, took < 50 * MS, "took %" PRIu64 " us on a 5 ms link", took);
}

/* F4: no session can ever be set up over a path whose RTT exceeds
 * pto_max_us (1 s by default).  Before any RTT sample, tp_hs_timeout
 * retries the HELLO after 200 ms, 400, 800, then every
 * max(pto_max_us, base) = 1 s, each time with a fresh ephemeral key and a
 * fresh index (tp_hs_start wipes the previous handshake), so every WELCOME
 * arrives for a handshake that no longer exists and is dropped as
 * LC_ENOSESSION, forever. */
static void test_rtt_huge(void **state) {
  (void)state;
  sim_link_params lp = {
      .delay_us = 1500 * MS, .jitter_us = 10 * MS, .loss = 0.02};
  run_mixed(sim_seed(50300, 0), &lp, 1 << 20, 100, 600 * SEC);
}

/* ---- main ---------------------------------------------------------------- */

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_raw_bulk_empty_stream),
      cmocka_unit_test(test_raw_bulk_fin_below_data),
      cmocka_unit_test(test_raw_ack_extremes),
      cmocka_unit_test_teardown(test_rtt_zero, teardown),
      cmocka_unit_test_teardown(test_rtt_zero_lossy, teardown),
      cmocka_unit_test_teardown(test_rtt_long, teardown),
      cmocka_unit_test_teardown(test_thin_pipe, teardown),
      cmocka_unit_test_teardown(test_random_strict, teardown),
      cmocka_unit_test_teardown(test_reentrant_echo_close, teardown),
      cmocka_unit_test_teardown(test_failed_callback_resends, teardown),
      cmocka_unit_test(test_raw_sent_ring_unbounded),
      cmocka_unit_test(test_raw_bulk_done_set_overflow),
      cmocka_unit_test(test_raw_half_open_fill_table),
      cmocka_unit_test_teardown(test_rtt_huge, teardown),
      cmocka_unit_test_teardown(test_restart_crossing_rekey, teardown),
  };
  if (getenv("LC_SIM_TEST"))
    cmocka_set_test_filter(getenv("LC_SIM_TEST"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
