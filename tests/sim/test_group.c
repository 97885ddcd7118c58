/* test_group.c: group chats in the simulator.  Twenty peers, each a
 * transport with a group engine (src/group.c) and a store in memory, on
 * links with 5% loss: members go offline and come back, join, leave and
 * are removed, the group is renamed twice at once, while messages flow.
 * At the end every peer that knows the group holds the same operations and
 * the same members, and every current member holds every message sent,
 * once.  Each seed replays with LC_SIM_SEED. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "group.h"
#include "sim.h"

#define MS UINT64_C(1000)
#define SEC UINT64_C(1000000)
#define NPEERS 20

/* ---- one peer: its engine and its store in memory ---- */

typedef struct {
  uint8_t id[LC_MSGID_BYTES];
  uint8_t author[LC_KEY_BYTES];
  uint64_t seq, lamport;
  uint8_t *blob;
  size_t len;
} tg_msg;

typedef struct {
  sim *s;
  int index;
  lc__grp *grp;
  int online;
  tg_msg *msgs;
  size_t nmsgs, cap;
  uint64_t puts_new, puts_dup;
  int changes;
} tg_peer;

static tg_peer peers[NPEERS];
static sim *g_sim;
static uint8_t group_id[LC_GROUP_ID_BYTES];
static uint64_t sent_total; /* messages sent by anyone */

static void tg_send(void *user, const uint8_t *peer, const uint8_t *env,
                    size_t len) {
  tg_peer *p = user;
  int to = sim_node_by_pk(p->s, peer);
  if (to < 0 || !p->online || !peers[to].online)
    return; /* away: discovery would not show it; SYNC repairs */
  sim_send_msg_data(p->s, p->index, to, env, len);
}

static int tg_op_put(void *user, const uint8_t *group, const uint8_t *op,
                     size_t len) {
  (void)user;
  (void)group;
  (void)op;
  (void)len;
  return 0; /* the engine keeps the operations in memory */
}

static int tg_msg_put(void *user, const lc__gmsg_wire *m, const uint8_t *id,
                      const uint8_t *blob, size_t len) {
  tg_peer *p = user;
  for (size_t i = 0; i < p->nmsgs; i++) {
    if (memcmp(p->msgs[i].id, id, LC_MSGID_BYTES) == 0) {
      p->puts_dup++;
      return 0;
    }
  }
  if (p->nmsgs == p->cap) {
    p->cap = p->cap ? p->cap * 2 : 64;
    p->msgs = realloc(p->msgs, p->cap * sizeof *p->msgs);
    assert_non_null(p->msgs);
  }
  tg_msg *x = &p->msgs[p->nmsgs++];
  memcpy(x->id, id, LC_MSGID_BYTES);
  memcpy(x->author, m->author, LC_KEY_BYTES);
  x->seq = m->seq;
  x->lamport = m->lamport;
  x->blob = malloc(len);
  assert_non_null(x->blob);
  memcpy(x->blob, blob, len);
  x->len = len;
  p->puts_new++;
  return 1;
}

static int tg_seq_cmp(const void *a, const void *b) {
  const tg_msg *x = *(tg_msg *const *)a, *y = *(tg_msg *const *)b;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int tg_msgs_after(void *user, const uint8_t *group,
                         const uint8_t *author, uint64_t after, size_t max,
                         void (*each)(void *, const uint8_t *, size_t),
                         void *ctx) {
  tg_peer *p = user;
  (void)group;
  tg_msg **v = calloc(p->nmsgs + 1, sizeof *v);
  assert_non_null(v);
  size_t n = 0;
  for (size_t i = 0; i < p->nmsgs; i++)
    if (memcmp(p->msgs[i].author, author, LC_KEY_BYTES) == 0 &&
        p->msgs[i].seq > after)
      v[n++] = &p->msgs[i];
  qsort(v, n, sizeof *v, tg_seq_cmp);
  if (n > max)
    n = max;
  for (size_t i = 0; i < n; i++)
    each(ctx, v[i]->blob, v[i]->len);
  free(v);
  return (int)n;
}

static void tg_changed(void *user, const lc__group *g) {
  (void)g;
  ((tg_peer *)user)->changes++;
}

static void tg_random(void *user, void *buf, size_t len) {
  tg_peer *p = user;
  sim_rng_fill(sim_rng_of(p->s), buf, len);
}

static void tg_on_msg(void *ctx, sim *s, int node, int peer,
                      const uint8_t *msg_id, const uint8_t *data, size_t len) {
  (void)ctx;
  (void)msg_id;
  static lc__chat c;
  tg_peer *p = &peers[node];
  if (peer < 0 || lc__chat_decode(&c, data, len) < 0)
    return;
  int rc = lc__grp_recv(p->grp, sim_node_get(s, peer)->id.pk, &c);
  assert_int_equal(rc, 0); /* the store in memory never refuses */
}

static const uint8_t *pk(int i) {
  return sim_node_get(g_sim, i)->id.pk;
}

static void tg_setup(uint64_t seed) {
  g_sim = sim_new(seed);
  assert_non_null(g_sim);
  memset(peers, 0, sizeof peers);
  sent_total = 0;
  /* groups use chat messages only: few bulk streams keep the transport's
   * per-poll scans short (64 streams x 19 sessions x 20 peers dominated a
   * profile of this test) */
  lc__tp_config cfg;
  sim_default_config(&cfg);
  cfg.max_bulk_streams = 2;
  for (int i = 0; i < NPEERS; i++)
    assert_int_equal(sim_add_node(g_sim, &cfg), i);
  sim_link_params lp = {.loss = 0.05, .delay_us = 1 * MS, .jitter_us = 300};
  for (int i = 0; i < NPEERS; i++)
    for (int j = i + 1; j < NPEERS; j++)
      sim_link_set_both(g_sim, i, j, &lp);
  for (int i = 0; i < NPEERS; i++) {
    tg_peer *p = &peers[i];
    p->s = g_sim;
    p->index = i;
    p->online = 1;
    lc__grp_io io = {.user = p,
                     .send = tg_send,
                     .op_put = tg_op_put,
                     .msg_put = tg_msg_put,
                     .msgs_after = tg_msgs_after,
                     .changed = tg_changed,
                     .random = tg_random};
    p->grp = lc__grp_new(&sim_node_get(g_sim, i)->id, &io);
    assert_non_null(p->grp);
    sim_node *n = sim_node_get(g_sim, i);
    n->on_msg = tg_on_msg;
    n->on_msg_ctx = NULL;
  }
}

static void tg_teardown(void) {
  for (int i = 0; i < NPEERS; i++) {
    lc__grp_free(peers[i].grp);
    for (size_t k = 0; k < peers[i].nmsgs; k++)
      free(peers[i].msgs[k].blob);
    free(peers[i].msgs);
  }
  sim_free(g_sim);
  g_sim = NULL;
}

/* ---- the scenario ---- */

static void go_offline(int i) {
  peers[i].online = 0;
  for (int j = 0; j < NPEERS; j++)
    if (j != i)
      sim_partition(g_sim, i, j, 1);
}

/* Back: discovery shows it to the others and the others to it. */
static void come_back(int i) {
  peers[i].online = 1;
  for (int j = 0; j < NPEERS; j++) {
    if (j == i || !peers[j].online)
      continue;
    sim_partition(g_sim, i, j, 0);
    lc__grp_peer_up(peers[i].grp, pk(j), sim_now(g_sim) / 1000);
    lc__grp_peer_up(peers[j].grp, pk(i), sim_now(g_sim) / 1000);
    sim_touch(g_sim, i);
    sim_touch(g_sim, j);
  }
}

static int member(int i) {
  const lc__group *g = lc__grp_find(peers[i].grp, group_id);
  return g && lc__group_is_member(g, pk(i));
}

static void say(int i) {
  if (!peers[i].online || !member(i))
    return;
  char text[64];
  snprintf(text, sizeof text, "from %d at %" PRIu64 " ms", i,
           sim_now(g_sim) / 1000);
  assert_int_equal(lc__grp_send(peers[i].grp, group_id, text, strlen(text),
                                sim_now(g_sim) / 1000, NULL),
                   0);
  sent_total++;
  sim_touch(g_sim, i);
}

/* Every 100 ms a random peer that is online and a member writes; every
 * 5 s every pair of peers online exchanges a SYNC (what the node does on
 * discovery and then every minute). */
static uint64_t chatter_until;
static void chatter(void *ctx, sim *s) {
  (void)ctx;
  say((int)sim_rng_below(sim_rng_of(s), NPEERS));
  if (sim_now(s) + 100 * MS <= chatter_until)
    sim_at(s, sim_now(s) + 100 * MS, chatter, NULL);
}

static void sync_round(void *ctx, sim *s) {
  (void)ctx;
  for (int i = 0; i < NPEERS; i++) {
    if (!peers[i].online)
      continue;
    for (int j = 0; j < NPEERS; j++)
      if (j != i && peers[j].online)
        lc__grp_peer_up(peers[i].grp, pk(j), sim_now(s) / 1000);
    sim_touch(s, i);
  }
  sim_at(s, sim_now(s) + 5 * SEC, sync_round, NULL);
}

static void run_to(uint64_t t) {
  assert_int_equal(sim_run_until(g_sim, t), 0);
}

static void op(int rc) {
  assert_int_equal(rc, 0);
}

static int msg_cmp(const void *a, const void *b) {
  const tg_msg *x = a, *y = b;
  if (x->lamport != y->lamport)
    return x->lamport < y->lamport ? -1 : 1;
  int c = memcmp(x->author, y->author, LC_KEY_BYTES);
  if (c)
    return c;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void check_converged(uint64_t seed) {
  const lc__group *ref = NULL;
  int ref_i = -1;
  uint8_t h1[16], h2[16];
  /* the same operations, members, owners and name at every peer that is
   * or was a member; one whose addition lost a race (its adder was removed
   * first) knows at least that it is not a member */
  ref = lc__grp_find(peers[0].grp, group_id);
  ref_i = 0;
  assert_non_null(ref);
  for (int i = 1; i < NPEERS; i++) {
    const lc__group *g = lc__grp_find(peers[i].grp, group_id);
    if (!lc__group_was_member(ref, pk(i))) {
      if (g && lc__group_is_member(g, pk(i)))
        fail_msg("seed %" PRIu64 ": peer %d believes it is a member", seed, i);
      continue;
    }
    if (!g)
      fail_msg("seed %" PRIu64 ": peer %d does not know the group", seed, i);
    lc__group_ops_hash(ref, h1);
    lc__group_ops_hash(g, h2);
    if (lc__group_nops(g) != lc__group_nops(ref) || memcmp(h1, h2, 16))
      fail_msg("seed %" PRIu64 ": peer %d holds %zu operations, peer %d %zu",
               seed, i, lc__group_nops(g), ref_i, lc__group_nops(ref));
    const lc__gmember *a, *b;
    size_t na = lc__group_members(ref, &a), nb = lc__group_members(g, &b);
    if (na != nb || memcmp(a, b, na * sizeof *a) != 0)
      fail_msg("seed %" PRIu64 ": peers %d and %d see other members", seed,
               ref_i, i);
    assert_string_equal(lc__group_name(ref), lc__group_name(g));
  }
  assert_non_null(ref);
  /* every current member holds every message, once, and they order them
   * alike */
  const lc__gmember *m;
  size_t nm = lc__group_members(ref, &m);
  assert_true(nm >= 10);
  tg_msg *first = NULL;
  size_t nfirst = 0;
  for (size_t k = 0; k < nm; k++) {
    int i = sim_node_by_pk(g_sim, m[k].key);
    tg_peer *p = &peers[i];
    if (p->nmsgs != sent_total)
      fail_msg("seed %" PRIu64 ": member %d holds %zu of %" PRIu64 " messages",
               seed, i, p->nmsgs, sent_total);
    qsort(p->msgs, p->nmsgs, sizeof *p->msgs, msg_cmp);
    for (size_t j = 1; j < p->nmsgs; j++)
      assert_memory_not_equal(p->msgs[j - 1].id, p->msgs[j].id, LC_MSGID_BYTES);
    if (!first) {
      first = p->msgs;
      nfirst = p->nmsgs;
      continue;
    }
    for (size_t j = 0; j < nfirst; j++)
      if (memcmp(first[j].id, p->msgs[j].id, LC_MSGID_BYTES) != 0)
        fail_msg("seed %" PRIu64 ": member %d orders message %zu otherwise",
                 seed, i, j);
  }
}

static void run_scenario(uint64_t seed) {
  tg_setup(seed);
  uint64_t t0 = sim_now(g_sim);
  uint64_t ms = t0 / 1000;
  /* peer 17 is away from the start; 0 creates the group with 1..13 */
  go_offline(17);
  uint8_t first[13][LC_KEY_BYTES];
  for (int i = 0; i < 13; i++)
    memcpy(first[i], pk(i + 1), LC_KEY_BYTES);
  op(lc__grp_create(peers[0].grp, "team", (const uint8_t(*)[32])first, 13, ms,
                    group_id));
  sim_touch(g_sim, 0);
  chatter_until = t0 + 60 * SEC;
  sim_at(g_sim, t0 + 100 * MS, chatter, NULL);
  sim_at(g_sim, t0 + 5 * SEC, sync_round, NULL);

  run_to(t0 + 5 * SEC);
  go_offline(5);
  go_offline(6);
  run_to(t0 + 8 * SEC);
  /* two members add two others at the same moment */
  op(lc__grp_add(peers[0].grp, group_id, pk(14), sim_now(g_sim) / 1000));
  op(lc__grp_add(peers[2].grp, group_id, pk(15), sim_now(g_sim) / 1000));
  sim_touch(g_sim, 0);
  sim_touch(g_sim, 2);
  run_to(t0 + 12 * SEC);
  op(lc__grp_remove(peers[3].grp, group_id, pk(3), sim_now(g_sim) / 1000));
  sim_touch(g_sim, 3);
  run_to(t0 + 15 * SEC);
  /* the owner removes 4 while 4 adds 16: crossing changes */
  op(lc__grp_remove(peers[0].grp, group_id, pk(4), sim_now(g_sim) / 1000));
  op(lc__grp_add(peers[4].grp, group_id, pk(16), sim_now(g_sim) / 1000));
  sim_touch(g_sim, 0);
  sim_touch(g_sim, 4);
  run_to(t0 + 18 * SEC);
  /* renamed twice at once: every member settles on the same name */
  op(lc__grp_rename(peers[7].grp, group_id, "team-a", sim_now(g_sim) / 1000));
  op(lc__grp_rename(peers[8].grp, group_id, "team-b", sim_now(g_sim) / 1000));
  sim_touch(g_sim, 7);
  sim_touch(g_sim, 8);
  run_to(t0 + 20 * SEC);
  /* 17 is added while it is away */
  op(lc__grp_add(peers[1].grp, group_id, pk(17), sim_now(g_sim) / 1000));
  sim_touch(g_sim, 1);
  run_to(t0 + 25 * SEC);
  come_back(5);
  come_back(6);
  run_to(t0 + 30 * SEC);
  op(lc__grp_add(peers[9].grp, group_id, pk(18), sim_now(g_sim) / 1000));
  op(lc__grp_add(peers[10].grp, group_id, pk(19), sim_now(g_sim) / 1000));
  sim_touch(g_sim, 9);
  sim_touch(g_sim, 10);
  run_to(t0 + 35 * SEC);
  go_offline(11);
  run_to(t0 + 40 * SEC);
  come_back(17);
  run_to(t0 + 50 * SEC);
  come_back(11);
  /* the talk stops at 60 s; by 120 s everything has settled */
  run_to(t0 + 120 * SEC);
  assert_null(sim_failed(g_sim));
  assert_true(sent_total > 300);
  check_converged(seed);
  /* 17 joined while away and caught up; 3 left and 4 was removed */
  assert_true(member(17));
  assert_false(member(3));
  assert_false(member(4));
  tg_teardown();
}

static void test_group_converges(void **state) {
  (void)state;
  int n = sim_seed_from_env() ? 1 : 3;
  for (int k = 0; k < n; k++)
    run_scenario(sim_seed(0x67726f7570ULL, (uint64_t)k));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_group_converges),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
