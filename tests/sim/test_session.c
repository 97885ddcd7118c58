/* test_session.c: session life-cycle scenarios in the simulator: rekeying
 * by packets and by time, crossed handshakes, idle timeout and keepalive,
 * close, unreliable datagrams, chat credit, session limits and the errors
 * the API promises.  Every failure prints its seed (LC_SIM_SEED replays). */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sim.h"

#define MS UINT64_C(1000)
#define SEC UINT64_C(1000000)

static sim *g_sim;

static sim *new_sim(uint64_t base) {
  sim_free(g_sim);
  g_sim = sim_new(sim_seed(base, 0));
  assert_non_null(g_sim);
  return g_sim;
}

static int teardown(void **state) {
  (void)state;
  sim_free(g_sim);
  g_sim = NULL;
  return 0;
}

static void clean(sim *s) {
  SIM_CHECK(s, sim_failed(s) == NULL, "simulator: %s",
            sim_failed(s) ? sim_failed(s) : "");
  SIM_CHECK(s, sim_invariant_violations(s) == 0, "cwnd invariant violated");
}

static lc__tp_session_stats stats(sim *s, int node, int peer) {
  lc__tp_session_stats st;
  assert_int_equal(lc__tp_session_stats_get(sim_node_get(s, node)->tp,
                                            sim_node_get(s, peer)->id.pk, &st),
                   0);
  return st;
}

/* Rekeying by packet count: 3,000 messages over a lossy, reordering link
 * with new keys every 200 packets; nothing lost, nothing doubled. */
static void test_rekey_packets(void **state) {
  (void)state;
  sim *s = new_sim(1000);
  lc__tp_config cfg;
  sim_default_config(&cfg);
  cfg.rekey_after_packets = 200;
  int a = sim_add_node(s, &cfg), b = sim_add_node(s, &cfg);
  sim_link_params lp = {.loss = 0.05,
                        .delay_us = 2 * MS,
                        .jitter_us = 1 * MS,
                        .reorder = 0.05,
                        .reorder_max_us = 3 * MS,
                        .dup = 0.01};
  sim_link_set_both(s, a, b, &lp);
  for (int i = 0; i < 3000; i++) {
    assert_int_equal(sim_send_msg(s, a, b, 100 + (size_t)(i % 7) * 300), 0);
    if (i % 3 == 0)
      assert_int_equal(sim_send_msg(s, b, a, 200), 0);
  }
  SIM_CHECK(
      s, sim_run_while(s, sim_pred_pending, NULL, sim_now(s) + 120 * SEC) == 0,
      "not all delivered");
  clean(s);
  SIM_CHECK(s, sim_check_delivery(s, a, b, 1) == 0, "a -> b");
  SIM_CHECK(s, sim_check_delivery(s, b, a, 1) == 0, "b -> a");
  lc__tp_session_stats sa = stats(s, a, b), sb = stats(s, b, a);
  /* thousands of packets at 200 per keypair: many rekeys on each side */
  SIM_CHECK(s, sa.keypairs_installed >= 8, "a installed %" PRIu64 " keypairs",
            sa.keypairs_installed);
  SIM_CHECK(s, sb.keypairs_installed >= 8, "b installed %" PRIu64 " keypairs",
            sb.keypairs_installed);
  /* a rekey never looks like a restart */
  SIM_CHECK(s, sim_node_get(s, a)->downs == 0 && sim_node_get(s, b)->downs == 0,
            "a session went down during rekeying");
  lc__tp_stats ts;
  lc__tp_stats_get(sim_node_get(s, b)->tp, &ts);
  SIM_CHECK(s, ts.drop_auth == 0, "%" PRIu64 " datagrams failed authentication",
            ts.drop_auth);
}

/* Rekeying by time, with sparse traffic for a minute of virtual time. */
static void test_rekey_time(void **state) {
  (void)state;
  sim *s = new_sim(1100);
  lc__tp_config cfg;
  sim_default_config(&cfg);
  cfg.rekey_after_us = 2 * SEC;
  int a = sim_add_node(s, &cfg), b = sim_add_node(s, &cfg);
  sim_link_params lp = {.delay_us = 1 * MS};
  sim_link_set_both(s, a, b, &lp);
  for (int sec = 0; sec < 60; sec++) {
    assert_int_equal(sim_send_msg(s, a, b, 64), 0);
    assert_int_equal(sim_send_msg(s, b, a, 64), 0);
    assert_int_equal(sim_run_until(s, sim_now(s) + SEC), 0);
  }
  SIM_CHECK(
      s, sim_run_while(s, sim_pred_pending, NULL, sim_now(s) + 10 * SEC) == 0,
      "not all delivered");
  clean(s);
  SIM_CHECK(s, sim_check_delivery(s, a, b, 1) == 0, "a -> b");
  SIM_CHECK(s, sim_check_delivery(s, b, a, 1) == 0, "b -> a");
  lc__tp_session_stats sa = stats(s, a, b);
  /* about one new keypair every 2 s over 60 s */
  SIM_CHECK(s, sa.keypairs_installed >= 20 && sa.keypairs_installed <= 80,
            "%" PRIu64 " keypairs in 60 s at one per 2 s",
            sa.keypairs_installed);
}

/* Both ends start a handshake at the same instant: one session each way,
 * both up exactly once, messages flow. */
static void test_crossed_handshake(void **state) {
  (void)state;
  sim *s = new_sim(1200);
  int a = sim_add_node(s, NULL), b = sim_add_node(s, NULL);
  sim_link_params lp = {.delay_us = 3 * MS};
  sim_link_set_both(s, a, b, &lp);
  assert_int_equal(sim_send_msg(s, a, b, 10), 0);
  assert_int_equal(sim_send_msg(s, b, a, 10), 0);
  SIM_CHECK(s,
            sim_run_while(s, sim_pred_pending, NULL, sim_now(s) + 5 * SEC) == 0,
            "not delivered");
  assert_int_equal(sim_run_until(s, sim_now(s) + 2 * SEC), 0);
  clean(s);
  SIM_CHECK(s, sim_node_get(s, a)->ups == 1 && sim_node_get(s, b)->ups == 1,
            "ups a=%" PRIu64 " b=%" PRIu64, sim_node_get(s, a)->ups,
            sim_node_get(s, b)->ups);
  SIM_CHECK(s, sim_check_delivery(s, a, b, 1) == 0, "a -> b");
  SIM_CHECK(s, sim_check_delivery(s, b, a, 1) == 0, "b -> a");
  /* two handshakes crossed: each side holds both keypairs */
  SIM_CHECK(s, stats(s, a, b).keypairs_installed == 2, "a keypairs");
  for (int i = 0; i < 50; i++)
    assert_int_equal(sim_send_msg(s, a, b, 500), 0);
  SIM_CHECK(s,
            sim_run_while(s, sim_pred_pending, NULL, sim_now(s) + 5 * SEC) == 0,
            "not delivered after the crossing");
}

/* Idle timeout: a long partition ends the session on both sides; the
 * messages caught in it are reported failed (never silently dropped), and
 * after the partition heals new messages go through on a new session. */
static void test_idle_timeout(void **state) {
  (void)state;
  sim *s = new_sim(1300);
  lc__tp_config cfg;
  sim_default_config(&cfg);
  cfg.idle_timeout_us = 3 * SEC;
  int a = sim_add_node(s, &cfg), b = sim_add_node(s, &cfg);
  sim_link_params lp = {.delay_us = 1 * MS};
  sim_link_set_both(s, a, b, &lp);
  assert_int_equal(sim_send_msg(s, a, b, 10), 0);
  SIM_CHECK(s,
            sim_run_while(s, sim_pred_pending, NULL, sim_now(s) + 2 * SEC) == 0,
            "first message");
  sim_partition(s, a, b, 1);
  for (int i = 0; i < 5; i++)
    assert_int_equal(sim_send_msg(s, a, b, 100), 0);
  assert_int_equal(sim_run_until(s, sim_now(s) + 6 * SEC), 0);
  sim_node *na = sim_node_get(s, a), *nb = sim_node_get(s, b);
  SIM_CHECK(s, na->downs == 1 && na->last_down_reason == LC_DOWN_IDLE,
            "a: downs %" PRIu64 " reason %d", na->downs, na->last_down_reason);
  SIM_CHECK(s, nb->downs == 1 && nb->last_down_reason == LC_DOWN_IDLE,
            "b: downs %" PRIu64 " reason %d", nb->downs, nb->last_down_reason);
  SIM_CHECK(s, na->nfailed == 5, "%zu of 5 messages reported failed",
            na->nfailed);
  for (size_t i = 0; i < na->nfailed; i++)
    SIM_CHECK(s, na->failed[i].err == LC_ETIMEDOUT, "failure %zu: %s", i,
              lc_err_name(na->failed[i].err));
  SIM_CHECK(s, nb->nmsgs == 1, "b got %zu messages", nb->nmsgs);
  sim_partition(s, a, b, 0);
  size_t before = nb->nmsgs;
  for (int i = 0; i < 5; i++)
    assert_int_equal(sim_send_msg(s, a, b, 100), 0);
  assert_int_equal(sim_run_until(s, sim_now(s) + 3 * SEC), 0);
  clean(s);
  SIM_CHECK(s, nb->nmsgs == before + 5, "after the heal b got %zu new",
            nb->nmsgs - before);
  SIM_CHECK(s, na->ups == 2 && nb->ups == 2, "a new session each side");
}

/* Keepalive keeps a quiet session from its idle timeout. */
static void test_keepalive(void **state) {
  (void)state;
  sim *s = new_sim(1400);
  lc__tp_config cfg;
  sim_default_config(&cfg);
  cfg.idle_timeout_us = 3 * SEC;
  cfg.keepalive_us = 1 * SEC;
  int a = sim_add_node(s, &cfg), b = sim_add_node(s, &cfg);
  sim_link_params lp = {.delay_us = 1 * MS, .loss = 0.1};
  sim_link_set_both(s, a, b, &lp);
  assert_int_equal(sim_send_msg(s, a, b, 10), 0);
  assert_int_equal(sim_run_until(s, sim_now(s) + 30 * SEC), 0);
  clean(s);
  SIM_CHECK(s, sim_node_get(s, a)->downs == 0 && sim_node_get(s, b)->downs == 0,
            "a quiet session with keepalives expired");
  const sim_link_stats *ls = sim_link_stats_of(s, a, b);
  /* about one keepalive a second, not a flood */
  SIM_CHECK(s, ls->sent >= 15 && ls->sent <= 200,
            "%" PRIu64 " datagrams in 30 s", ls->sent);
}

/* Close: the peer learns at once; pending messages fail with LC_ECLOSED on
 * the closing side; sending again opens a new session. */
static void test_close(void **state) {
  (void)state;
  sim *s = new_sim(1500);
  int a = sim_add_node(s, NULL), b = sim_add_node(s, NULL);
  sim_link_params lp = {.delay_us = 1 * MS};
  sim_link_set_both(s, a, b, &lp);
  assert_int_equal(sim_send_msg(s, a, b, 10), 0);
  SIM_CHECK(s,
            sim_run_while(s, sim_pred_pending, NULL, sim_now(s) + 2 * SEC) == 0,
            "first message");
  sim_node *na = sim_node_get(s, a), *nb = sim_node_get(s, b);
  assert_int_equal(lc__tp_close(na->tp, nb->id.pk, sim_now(s)), 0);
  sim_touch(s, a);
  assert_int_equal(sim_run_until(s, sim_now(s) + 100 * MS), 0);
  SIM_CHECK(s, na->downs == 1 && na->last_down_reason == LC_DOWN_CLOSED,
            "a: downs %" PRIu64 " reason %d", na->downs, na->last_down_reason);
  SIM_CHECK(s, nb->downs == 1 && nb->last_down_reason == LC_DOWN_PEER,
            "b: downs %" PRIu64 " reason %d", nb->downs, nb->last_down_reason);
  assert_int_equal(lc__tp_close(na->tp, nb->id.pk, sim_now(s)), LC_ENOSESSION);
  assert_int_equal(sim_send_msg(s, b, a, 42), 0);
  SIM_CHECK(s,
            sim_run_while(s, sim_pred_pending, NULL, sim_now(s) + 2 * SEC) == 0,
            "after close");
  clean(s);
  SIM_CHECK(s, sim_check_delivery(s, b, a, 1) == 0, "b -> a");
  SIM_CHECK(s, na->ups == 2 && nb->ups == 2, "a second session");
}

static int pred_unrel(void *ctx, sim *s) {
  return sim_node_get(s, 1)->unrel_count < *(uint64_t *)ctx;
}

/* Unreliable datagrams: all arrive on a clean link, at most once each on a
 * lossy one with duplication, and they are never retransmitted. */
static void test_unreliable(void **state) {
  (void)state;
  sim *s = new_sim(1600);
  int a = sim_add_node(s, NULL), b = sim_add_node(s, NULL);
  sim_link_params lp = {.delay_us = 1 * MS};
  sim_link_set_both(s, a, b, &lp);
  assert_int_equal(sim_send_msg(s, a, b, 1), 0); /* brings the session up */
  SIM_CHECK(s,
            sim_run_while(s, sim_pred_pending, NULL, sim_now(s) + 2 * SEC) == 0,
            "session");
  uint8_t buf[300];
  memset(buf, 0x5a, sizeof buf);
  for (int i = 0; i < 20; i++) {
    assert_int_equal(sim_send_unreliable(s, a, b, buf, sizeof buf), 0);
    assert_int_equal(sim_run_until(s, sim_now(s) + 10 * MS), 0);
  }
  uint64_t want = 20;
  SIM_CHECK(s, sim_run_while(s, pred_unrel, &want, sim_now(s) + SEC) == 0,
            "clean link: %" PRIu64 " of 20", sim_node_get(s, b)->unrel_count);
  lp.loss = 0.3;
  lp.dup = 0.2;
  sim_link_set_both(s, a, b, &lp);
  for (int i = 0; i < 200; i++) {
    assert_int_equal(sim_send_unreliable(s, a, b, buf, 100), 0);
    assert_int_equal(sim_run_until(s, sim_now(s) + 10 * MS), 0);
  }
  assert_int_equal(sim_run_until(s, sim_now(s) + 2 * SEC), 0);
  clean(s);
  uint64_t got = sim_node_get(s, b)->unrel_count - 20;
  SIM_CHECK(s, got < 200 && got > 100, "lossy link: %" PRIu64 " of 200", got);
  /* too big for one packet: refused, not fragmented */
  static uint8_t big[2000];
  assert_int_equal(sim_send_unreliable(s, a, b, big, sizeof big), LC_ETOOBIG);
  /* no session: refused */
  int c = sim_add_node(s, NULL);
  assert_int_equal(sim_send_unreliable(s, a, c, buf, 10), LC_ENOSESSION);
}

/* Chat credit: a receiver with a small window still gets 5,000 messages
 * queued at once, in order, because credit keeps being extended. */
static void test_credit(void **state) {
  (void)state;
  sim *s = new_sim(1700);
  lc__tp_config cfg;
  sim_default_config(&cfg);
  cfg.msg_window = 256;
  int a = sim_add_node(s, &cfg), b = sim_add_node(s, &cfg);
  sim_link_params lp = {.delay_us = 2 * MS, .loss = 0.05};
  sim_link_set_both(s, a, b, &lp);
  for (int i = 0; i < 5000; i++)
    assert_int_equal(sim_send_msg(s, a, b, 50), 0);
  SIM_CHECK(
      s, sim_run_while(s, sim_pred_pending, NULL, sim_now(s) + 60 * SEC) == 0,
      "not delivered");
  clean(s);
  SIM_CHECK(s, sim_check_delivery(s, a, b, 1) == 0, "a -> b");
  lc__tp_stats ts;
  lc__tp_stats_get(sim_node_get(s, b)->tp, &ts);
  SIM_CHECK(s, ts.drop_limit == 0,
            "the sender overran the credit %" PRIu64 " times", ts.drop_limit);
}

/* A node that allows two sessions refuses a third peer's HELLO, counts it,
 * and keeps serving the first two. */
static void test_session_limit(void **state) {
  (void)state;
  sim *s = new_sim(1800);
  lc__tp_config small;
  sim_default_config(&small);
  small.max_sessions = 2;
  int hub = sim_add_node(s, &small);
  int p1 = sim_add_node(s, NULL), p2 = sim_add_node(s, NULL);
  int p3 = sim_add_node(s, NULL);
  (void)p3;
  /* the hub already knows p1, p2 and p3 as peers (addresses), which uses
   * its two slots: it refuses p3 as an address, then as a HELLO */
  assert_int_equal(sim_send_msg(s, p1, hub, 10), 0);
  assert_int_equal(sim_send_msg(s, p2, hub, 10), 0);
  assert_int_equal(sim_run_until(s, sim_now(s) + 2 * SEC), 0);
  SIM_CHECK(
      s, sim_all_delivered(s, p1, hub, 1) && sim_all_delivered(s, p2, hub, 1),
      "the first two peers");
  lc__tp_stats before, after;
  lc__tp_stats_get(sim_node_get(s, hub)->tp, &before);
  /* p3 knows the hub's address, the hub has no room for p3 */
  assert_int_equal(sim_send_msg(s, p3, hub, 10), 0);
  assert_int_equal(sim_run_until(s, sim_now(s) + 2 * SEC), 0);
  lc__tp_stats_get(sim_node_get(s, hub)->tp, &after);
  SIM_CHECK(s, !sim_all_delivered(s, p3, hub, 0), "a third session was made");
  SIM_CHECK(s, after.drop_limit > before.drop_limit, "refusals not counted");
  assert_int_equal(sim_send_msg(s, p1, hub, 10), 0);
  assert_int_equal(sim_run_until(s, sim_now(s) + 2 * SEC), 0);
  clean(s);
  SIM_CHECK(s, sim_all_delivered(s, p1, hub, 1), "the hub stopped serving p1");
}

/* The errors the API promises. */
static void test_api_errors(void **state) {
  (void)state;
  sim *s = new_sim(1900);
  lc__tp_config cfg;
  sim_default_config(&cfg);
  cfg.max_msg_bytes = 1000;
  cfg.max_reassembly_bytes = 4000;
  cfg.max_send_bytes = 3000;
  int a = sim_add_node(s, &cfg), b = sim_add_node(s, &cfg);
  sim_node *na = sim_node_get(s, a), *nb = sim_node_get(s, b);
  uint8_t id[LC_MSG_ID_BYTES] = {1};
  static uint8_t buf[2000];
  uint8_t stranger[LC_PK_BYTES];
  memset(stranger, 7, sizeof stranger);
  uint64_t now = sim_now(s);
  assert_int_equal(lc__tp_send_msg(na->tp, nb->id.pk, id, buf, 1001, now),
                   LC_ETOOBIG);
  assert_int_equal(lc__tp_send_msg(na->tp, stranger, id, buf, 10, now),
                   LC_ENOPEER);
  assert_int_equal(lc__tp_connect(na->tp, stranger, now), LC_ENOPEER);
  assert_int_equal(lc__tp_send_msg(na->tp, nb->id.pk, id, buf, 1000, now), 0);
  assert_int_equal(lc__tp_send_msg(na->tp, nb->id.pk, id, buf, 1000, now), 0);
  assert_int_equal(lc__tp_send_msg(na->tp, nb->id.pk, id, buf, 1000, now), 0);
  /* the send queue holds 3,000 unacknowledged bytes at most */
  assert_int_equal(lc__tp_send_msg(na->tp, nb->id.pk, id, buf, 1, now),
                   LC_ELIMIT);
  assert_int_equal(lc__tp_set_peer_addr(na->tp, na->id.pk, &nb->addr),
                   LC_EINVAL);
  /* the identity point converts to no X25519 key: refused up front */
  uint8_t small_order[LC_PK_BYTES] = {1};
  assert_int_equal(lc__tp_set_peer_addr(na->tp, small_order, &nb->addr),
                   LC_EINVAL);
  uint32_t stream;
  assert_int_equal(lc__tp_bulk_open(na->tp, nb->id.pk, &stream), 0);
  assert_int_equal(
      lc__tp_bulk_write(na->tp, nb->id.pk, stream, buf, 10, 1, now), 10);
  assert_int_equal(
      lc__tp_bulk_write(na->tp, nb->id.pk, stream, buf, 10, 0, now), LC_ESTATE);
  assert_int_equal(
      lc__tp_bulk_write(na->tp, nb->id.pk, stream + 1, buf, 10, 0, now),
      LC_ENOSESSION);
  /* the transport refuses a configuration it cannot honour */
  lc__tp *bad = NULL;
  lc__tp_config c2;
  sim_default_config(&c2);
  c2.max_datagram = 100;
  assert_int_equal(lc__tp_new(&bad, &na->id, &c2), LC_EINVAL);
  sim_default_config(&c2);
  c2.max_datagram = LC_DATAGRAM_MAX;
  assert_int_equal(lc__tp_new(&bad, &na->id, &c2), LC_EINVAL);
  assert_null(bad);
  sim_touch(s, a);
  assert_int_equal(sim_run_until(s, sim_now(s) + 2 * SEC), 0);
  clean(s);
  SIM_CHECK(s, nb->nmsgs == 3, "b got %zu of 3", nb->nmsgs);
  SIM_CHECK(s, nb->nbulk_done == 1, "the bulk stream");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_rekey_packets, teardown),
      cmocka_unit_test_teardown(test_rekey_time, teardown),
      cmocka_unit_test_teardown(test_crossed_handshake, teardown),
      cmocka_unit_test_teardown(test_idle_timeout, teardown),
      cmocka_unit_test_teardown(test_keepalive, teardown),
      cmocka_unit_test_teardown(test_close, teardown),
      cmocka_unit_test_teardown(test_unreliable, teardown),
      cmocka_unit_test_teardown(test_credit, teardown),
      cmocka_unit_test_teardown(test_session_limit, teardown),
      cmocka_unit_test_teardown(test_api_errors, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
