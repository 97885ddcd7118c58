/* test_relay.c: a message carried by a relay, in the simulator, on links
 * with 5% loss.  The sender seals a message to a recipient who is away and
 * hands it to a relay, then goes away itself; the relay meets the
 * recipient later and passes it on.  The recipient gets it once (also when
 * a second relay and, later, the sender deliver it again), the relay never
 * held the text in the clear and cannot open the box, and a box that was
 * changed or forged by the relay is refused. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "relay.h"
#include "sim.h"

#define MS UINT64_C(1000)
#define SEC UINT64_C(1000000)

enum { S = 0, T = 1, U = 2, R = 3, N = 4 };

static const char secret[] = "the meeting moved to room 4, tell nobody";

typedef struct {
  /* what the relays hold: the envelope as it came */
  uint8_t *held[N];
  size_t held_len[N];
  /* what the recipient took, by message id */
  uint8_t got_ids[8][LC_MSGID_BYTES];
  int ngot;
  int refused;
  char text[128];
  uint8_t from[LC_KEY_BYTES];
} world;

static world W;

static void on_msg(void *ctx, sim *s, int node, int peer, const uint8_t *msg_id,
                   const uint8_t *data, size_t len) {
  (void)ctx;
  (void)peer;
  (void)msg_id;
  static lc__chat c;
  if (lc__chat_decode(&c, data, len) < 0 || c.kind != LC_CHAT_RELAY)
    return;
  if (node != R) { /* a relay: keep the envelope as it is */
    free(W.held[node]);
    W.held[node] = malloc(len);
    assert_non_null(W.held[node]);
    memcpy(W.held[node], data, len);
    W.held_len[node] = len;
    return;
  }
  lc__relay_inner in;
  uint8_t *plain = NULL;
  if (lc__relay_open(&sim_node_get(s, R)->id, c.blob, c.blob_len, &in,
                     &plain) != 0) {
    W.refused++;
    return;
  }
  for (int i = 0; i < W.ngot; i++) {
    if (memcmp(W.got_ids[i], in.msg_id, LC_MSGID_BYTES) == 0) {
      free(plain);
      return; /* had it: once only */
    }
  }
  memcpy(W.got_ids[W.ngot++], in.msg_id, LC_MSGID_BYTES);
  snprintf(W.text, sizeof W.text, "%.*s", (int)in.text_len, in.text);
  memcpy(W.from, in.sender, LC_KEY_BYTES);
  free(plain);
}

static int has_subsequence(const uint8_t *hay, size_t n, const char *needle) {
  size_t k = strlen(needle);
  for (size_t i = 0; i + k <= n; i++)
    if (memcmp(hay + i, needle, k) == 0)
      return 1;
  return 0;
}

static void send_relay(sim *s, int from, int to, const uint8_t *env,
                       size_t len) {
  assert_int_equal(sim_send_msg_data(s, from, to, env, len), 0);
  sim_touch(s, from);
}

static void isolate(sim *s, int i, int on) {
  for (int j = 0; j < N; j++)
    if (j != i)
      sim_partition(s, i, j, on);
}

static void run_one(uint64_t seed) {
  memset(&W, 0, sizeof W);
  sim *s = sim_new(seed);
  assert_non_null(s);
  for (int i = 0; i < N; i++) {
    assert_int_equal(sim_add_node(s, NULL), i);
    sim_node_get(s, i)->on_msg = on_msg;
  }
  sim_link_params lp = {.loss = 0.05, .delay_us = 1 * MS, .jitter_us = 200};
  for (int i = 0; i < N; i++)
    for (int j = i + 1; j < N; j++)
      sim_link_set_both(s, i, j, &lp);
  uint64_t t0 = sim_now(s);

  /* the recipient is away; the sender seals and hands the box to two
   * relays, then leaves */
  isolate(s, R, 1);
  uint8_t id[LC_MSGID_BYTES];
  sim_rng_fill(sim_rng_of(s), id, sizeof id);
  uint8_t *box;
  size_t box_len;
  assert_int_equal(lc__relay_seal(&sim_node_get(s, S)->id,
                                  sim_node_get(s, R)->id.pk, id, 1234, secret,
                                  strlen(secret), &box, &box_len),
                   0);
  static lc__chat c;
  memset(&c, 0, sizeof c);
  c.kind = LC_CHAT_RELAY;
  c.sent_ms = 1234;
  memcpy(c.recipient, sim_node_get(s, R)->id.pk, LC_KEY_BYTES);
  c.expires_ms = 1234 + LC_RELAY_TTL_MS;
  c.blob = box;
  c.blob_len = box_len;
  uint8_t env[1024];
  int env_len = lc__chat_encode(&c, env, sizeof env);
  assert_true(env_len > 0);
  send_relay(s, S, T, env, (size_t)env_len);
  send_relay(s, S, U, env, (size_t)env_len);
  assert_int_equal(sim_run_until(s, t0 + 5 * SEC), 0);
  assert_non_null(W.held[T]);
  assert_non_null(W.held[U]);
  isolate(s, S, 1);

  /* the relays never held the text, and cannot open the box */
  for (int r = T; r <= U; r++) {
    assert_false(has_subsequence(W.held[r], W.held_len[r], secret));
    assert_false(has_subsequence(W.held[r], W.held_len[r], "room 4"));
    static lc__chat h;
    assert_int_equal(lc__chat_decode(&h, W.held[r], W.held_len[r]), 0);
    lc__relay_inner in;
    uint8_t *plain = NULL;
    assert_int_equal(lc__relay_open(&sim_node_get(s, r)->id, h.blob, h.blob_len,
                                    &in, &plain),
                     LC_EAUTH);
  }

  /* a relay that changes a byte, or seals a message of its own in the
   * sender's name, is refused */
  uint8_t bad[1024];
  memcpy(bad, W.held[T], W.held_len[T]);
  bad[W.held_len[T] - 10] ^= 0x40;
  isolate(s, R, 0);
  isolate(s, S, 1);
  send_relay(s, T, R, bad, W.held_len[T]);
  /* the same message id, "from" the sender, signed by the relay */
  lc__relay_inner fi;
  memset(&fi, 0, sizeof fi);
  memcpy(fi.sender, sim_node_get(s, S)->id.pk, LC_KEY_BYTES);
  memcpy(fi.recipient, sim_node_get(s, R)->id.pk, LC_KEY_BYTES);
  memcpy(fi.msg_id, id, LC_MSGID_BYTES);
  fi.sent_ms = 1234;
  fi.text = "forged";
  fi.text_len = 6;
  uint8_t plain[512], fbox[600];
  size_t signed_len;
  int pn = lc__relay_inner_encode(&fi, plain, sizeof plain, &signed_len);
  assert_true(pn > 0);
  lc__sign(&sim_node_get(s, T)->id, plain, signed_len, plain + pn - 64);
  assert_int_equal(
      lc__seal_to(sim_node_get(s, R)->id.pk, plain, (size_t)pn, fbox), 0);
  c.blob = fbox;
  c.blob_len = (size_t)pn + LC_SEAL_OVERHEAD;
  uint8_t fenv[1024];
  int fl = lc__chat_encode(&c, fenv, sizeof fenv);
  assert_true(fl > 0);
  send_relay(s, T, R, fenv, (size_t)fl);
  assert_int_equal(sim_run_until(s, t0 + 8 * SEC), 0);
  assert_int_equal(W.refused, 2);
  assert_int_equal(W.ngot, 0);

  /* the recipient is back: both relays pass the box on; it is taken once */
  send_relay(s, T, R, W.held[T], W.held_len[T]);
  send_relay(s, U, R, W.held[U], W.held_len[U]);
  assert_int_equal(sim_run_until(s, t0 + 15 * SEC), 0);
  assert_int_equal(W.ngot, 1);
  assert_string_equal(W.text, secret);
  assert_memory_equal(W.from, sim_node_get(s, S)->id.pk, LC_KEY_BYTES);
  assert_memory_equal(W.got_ids[0], id, LC_MSGID_BYTES);

  /* the sender comes back and delivers it itself: still once */
  isolate(s, S, 0);
  send_relay(s, S, R, env, (size_t)env_len);
  assert_int_equal(sim_run_until(s, t0 + 20 * SEC), 0);
  assert_int_equal(W.ngot, 1);
  assert_null(sim_failed(s));

  free(box);
  for (int i = 0; i < N; i++)
    free(W.held[i]);
  sim_free(s);
}

static void test_relay(void **state) {
  (void)state;
  int n = sim_seed_from_env() ? 1 : 20;
  for (int k = 0; k < n; k++)
    run_one(sim_seed(0x72656c6179ULL, (uint64_t)k));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_relay),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
