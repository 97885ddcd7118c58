/* test_loopback.c: two transports on real UDP sockets on 127.0.0.1, in one
 * libuv loop, driven by net_uv.  Only loopback addresses are used: nothing
 * leaves the machine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <uv.h>

#include "net_uv.h"
#include "transport.h"

#define NMSG 2000

typedef struct {
  lc__identity id;
  lc__tp *tp;
  lc__net_uv *net;
  uint64_t received, acked, ups, closed;
  uint64_t bulk_bytes, bulk_done, bulk_acked;
  uint64_t next_expected;
  uint64_t refusals, refused; /* refused: 1 + the index refused last */
  int order_ok;
  struct peer_pair *pair;
} lb_node;

typedef struct peer_pair {
  lb_node a, b;
  uv_loop_t loop;
  uv_timer_t deadline;
  int timed_out;
  uint32_t stream;
} lb_pair;

/* Message i carries its index and bytes derived from it. */
static size_t lb_msg_len(uint64_t i) {
  return (i % 97 == 0) ? 20000 + (size_t)i : 16 + (size_t)(i * 7919 % 1200);
}

static void lb_fill(uint8_t *buf, size_t len, uint64_t i) {
  for (size_t k = 0; k < len; k++)
    buf[k] = (uint8_t)(i * 31 + k * 7);
  memcpy(buf, &i, sizeof i);
}

static int lb_on_message(void *user, const uint8_t peer[LC_PK_BYTES],
                         const uint8_t msg_id[LC_MSG_ID_BYTES],
                         const uint8_t *data, size_t len) {
  (void)peer;
  lb_node *n = user;
  uint64_t i;
  if (len < sizeof i) {
    n->order_ok = 0;
    return 0;
  }
  memcpy(&i, data, sizeof i);
  /* every 500th message is refused once, as by an application whose
   * store failed: it must come again, once, and only then count as
   * delivered to the sender */
  if (i % 500 == 250 && n->refused != i + 1) {
    n->refused = i + 1;
    n->refusals++;
    return -1;
  }
  uint8_t *want = malloc(lb_msg_len(i));
  lb_fill(want, lb_msg_len(i), i);
  if (i != n->next_expected || len != lb_msg_len(i) ||
      memcmp(want, data, len) != 0 || memcmp(msg_id, &i, sizeof i) != 0)
    n->order_ok = 0;
  free(want);
  n->next_expected++;
  n->received++;
  return 0;
}

static void lb_on_acked(void *user, const uint8_t peer[LC_PK_BYTES],
                        const uint8_t msg_id[LC_MSG_ID_BYTES]) {
  (void)peer;
  (void)msg_id;
  lb_node *n = user;
  n->acked++;
  /* never acknowledged before the receiving application took it */
  if (n->pair && n == &n->pair->a && n->acked > n->pair->b.received)
    n->order_ok = 0;
}

static void lb_on_up(void *user, const uint8_t peer[LC_PK_BYTES]) {
  (void)peer;
  ((lb_node *)user)->ups++;
}

static void lb_on_bulk(void *user, const uint8_t peer[LC_PK_BYTES],
                       uint32_t stream_id, uint64_t offset, const uint8_t *data,
                       size_t len) {
  (void)peer;
  (void)stream_id;
  lb_node *n = user;
  for (size_t k = 0; k < len; k++)
    if (data[k] != (uint8_t)((offset + k) * 13))
      n->order_ok = 0;
  n->bulk_bytes += len;
}

static void lb_on_bulk_done(void *user, const uint8_t peer[LC_PK_BYTES],
                            uint32_t stream_id, uint64_t final_size) {
  (void)peer;
  (void)stream_id;
  (void)final_size;
  ((lb_node *)user)->bulk_done++;
}

static void lb_on_bulk_acked(void *user, const uint8_t peer[LC_PK_BYTES],
                             uint32_t stream_id) {
  (void)peer;
  (void)stream_id;
  ((lb_node *)user)->bulk_acked++;
}

static void lb_node_init(lb_pair *pr, lb_node *n, uint8_t seed_byte) {
  memset(n, 0, sizeof *n);
  n->pair = pr;
  n->order_ok = 1;
  uint8_t seed[32];
  memset(seed, seed_byte, sizeof seed);
  assert_int_equal(lc__identity_generate(&n->id, seed), 0);
  lc__tp_config cfg;
  lc__tp_config_default(&cfg);
  cfg.cb.message = lb_on_message;
  cfg.cb.message_acked = lb_on_acked;
  cfg.cb.session_up = lb_on_up;
  cfg.cb.bulk = lb_on_bulk;
  cfg.cb.bulk_done = lb_on_bulk_done;
  cfg.cb.bulk_acked = lb_on_bulk_acked;
  cfg.user = n;
  assert_int_equal(lc__tp_new(&n->tp, &n->id, &cfg), 0);
  lc__net_uv_options o;
  memset(&o, 0, sizeof o);
  struct sockaddr_in *sin = (struct sockaddr_in *)&o.bind.ss;
  sin->sin_family = AF_INET;
  sin->sin_port = 0;
  sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  o.bind.len = sizeof *sin;
  assert_int_equal(lc__net_uv_start(&n->net, &pr->loop, n->tp, &o), 0);
}

static void lb_closed(lc__net_uv *net, void *arg) {
  (void)net;
  ((lb_node *)arg)->closed++;
}

static void lb_deadline(uv_timer_t *t) {
  lb_pair *pr = t->data;
  pr->timed_out = 1;
  uv_stop(&pr->loop);
}

static void lb_check_idle(uv_idle_t *h) {
  lb_pair *pr = h->data;
  if (pr->b.received >= NMSG && pr->a.acked >= NMSG && pr->b.bulk_done == 1 &&
      pr->a.bulk_acked == 1)
    uv_stop(&pr->loop);
}

static void test_loopback_exchange(void **state) {
  (void)state;
  lb_pair *pr = calloc(1, sizeof *pr);
  assert_int_equal(uv_loop_init(&pr->loop), 0);
  lb_node_init(pr, &pr->a, 1);
  lb_node_init(pr, &pr->b, 2);
  lc__addr baddr;
  assert_int_equal(lc__net_uv_local_addr(pr->b.net, &baddr), 0);
  assert_int_equal(lc__tp_set_peer_addr(pr->a.tp, pr->b.id.pk, &baddr), 0);

  uint64_t now = lc__net_uv_now(pr->a.net);
  for (uint64_t i = 0; i < NMSG; i++) {
    size_t len = lb_msg_len(i);
    uint8_t *buf = malloc(len);
    lb_fill(buf, len, i);
    uint8_t id[LC_MSG_ID_BYTES] = {0};
    memcpy(id, &i, sizeof i);
    assert_int_equal(lc__tp_send_msg(pr->a.tp, pr->b.id.pk, id, buf, len, now),
                     0);
    free(buf);
  }
  /* 3 MB of bulk data alongside */
  assert_int_equal(lc__tp_bulk_open(pr->a.tp, pr->b.id.pk, &pr->stream), 0);
  size_t total = 3 << 20;
  uint8_t *bulk = malloc(total);
  for (size_t k = 0; k < total; k++)
    bulk[k] = (uint8_t)(k * 13);
  int w =
      lc__tp_bulk_write(pr->a.tp, pr->b.id.pk, pr->stream, bulk, total, 1, now);
  assert_int_equal(w, (int)total);
  free(bulk);
  lc__net_uv_flush(pr->a.net);

  uv_timer_init(&pr->loop, &pr->deadline);
  pr->deadline.data = pr;
  uv_timer_start(&pr->deadline, lb_deadline, 60000, 0);
  uv_idle_t idle;
  uv_idle_init(&pr->loop, &idle);
  idle.data = pr;
  uv_idle_start(&idle, lb_check_idle);
  uv_run(&pr->loop, UV_RUN_DEFAULT);

  assert_false(pr->timed_out);
  assert_int_equal(pr->b.received, NMSG);
  assert_int_equal(pr->a.acked, NMSG);
  assert_true(pr->b.order_ok);
  assert_true(pr->a.order_ok);
  assert_int_equal(pr->b.refusals, (NMSG + 249) / 500);
  assert_int_equal(pr->b.bulk_bytes, total);
  assert_int_equal(pr->b.bulk_done, 1);
  assert_int_equal(pr->a.bulk_acked, 1);
  assert_int_equal(pr->a.ups, 1);
  assert_int_equal(pr->b.ups, 1);

  lc__net_uv_stats ns;
  lc__net_uv_stats_get(pr->b.net, &ns);
  assert_true(ns.datagrams_in > NMSG / 10);
  assert_true(ns.rcvbuf > 0);

  uv_idle_stop(&idle);
  uv_close((uv_handle_t *)&idle, NULL);
  uv_close((uv_handle_t *)&pr->deadline, NULL);
  lc__net_uv_close(pr->a.net, lb_closed, &pr->a);
  lc__net_uv_close(pr->b.net, lb_closed, &pr->b);
  uv_run(&pr->loop, UV_RUN_DEFAULT);
  assert_int_equal(pr->a.closed, 1);
  assert_int_equal(pr->b.closed, 1);
  assert_int_equal(uv_loop_close(&pr->loop), 0);
  lc__tp_free(pr->a.tp);
  lc__tp_free(pr->b.tp);
  free(pr);
}

static void test_port_in_use(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  lc__identity id;
  assert_int_equal(lc__identity_generate(&id, NULL), 0);
  lc__tp_config cfg;
  lc__tp_config_default(&cfg);
  lc__tp *tp;
  assert_int_equal(lc__tp_new(&tp, &id, &cfg), 0);
  lc__net_uv_options o;
  memset(&o, 0, sizeof o);
  struct sockaddr_in *sin = (struct sockaddr_in *)&o.bind.ss;
  sin->sin_family = AF_INET;
  sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  o.bind.len = sizeof *sin;
  lc__net_uv *n1 = NULL, *n2 = NULL;
  assert_int_equal(lc__net_uv_start(&n1, &loop, tp, &o), 0);
  assert_int_equal(lc__net_uv_local_addr(n1, &o.bind), 0);
  /* the same port again, without SO_REUSEADDR: a clear error, no crash */
  int rc = lc__net_uv_start(&n2, &loop, tp, &o);
  assert_int_equal(rc, UV_EADDRINUSE);
  assert_null(n2);
  lc__net_uv_close(n1, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  lc__tp_free(tp);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_loopback_exchange),
      cmocka_unit_test(test_port_in_use),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
