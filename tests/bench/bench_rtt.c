/* bench_rtt.c: lanchat-bench-rtt, message round trip and small-message
 * throughput between two nodes on loopback (unicast 127.0.0.1, broadcast
 * 127.255.255.255, a discovery port picked free), in one process and one
 * libuv loop.
 *
 * Round trip: a 100-byte text is sent and timed until the sender's node
 * reports it DELIVERED (stored by the peer's node, its acknowledgement
 * back), one at a time.  Reference in the same run and the same loop: two
 * libuv UDP sockets on 127.0.0.1 bouncing 100 bytes back and forth.
 * Throughput: N texts of 100 bytes sent at once, pipelined in batches of
 * 256 (lc_batch_begin/end: one commit each), timed until the receiver has
 * stored them all; then the same one commit per text (plain lc_send_text).
 * The cost split of a message: the two stores' work alone (the same
 * inserts and state changes, in the same batches), two transports passing
 * datagrams in memory (sessions, framing, acknowledgements, crypto; no
 * sockets), and the AEAD alone for the datagrams they exchanged; the rest
 * is the node, the sockets and the loop.
 *
 * Prints key=value lines (tools/bench aggregates runs):
 *   udp.p50_us udp.p99_us rtt.p50_us rtt.p99_us burst.msg_s
 *   burst.send_msg_s single.msg_s cost.total_us cost.store_us
 *   cost.transport_us cost.crypto_us cost.node_net_us
 *
 *   lanchat-bench-rtt [--count 10000] [--burst 20000] */
#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "bench_util.h"
#include "crypto.h"
#include "lanchat.h"
#include "node_options.h"
#include "store.h"
#include "transport.h"
#include "wire.h"

static uv_loop_t loop;
static lc_node *a, *b;
static uint8_t ka[LC_KEY_BYTES], kb[LC_KEY_BYTES];
static int a_peers, b_peers, stopped;
static uint64_t delivered, received;
static char dir_a[256], dir_b[256];

static void on_peer(lc_node *n, lc_peer_event ev, const lc_peer_info *p,
                    int detail, void *u) {
  (void)p;
  (void)detail;
  (void)u;
  int *c = n == a ? &a_peers : &b_peers;
  if (ev == LC_PEER_APPEARED)
    (*c)++;
}

static void on_delivery(lc_node *n, const uint8_t *peer, const uint8_t *id,
                        lc_msg_state st, int err, void *u) {
  (void)n;
  (void)peer;
  (void)id;
  (void)err;
  (void)u;
  if (st == LC_MSG_DELIVERED)
    delivered++;
}

static void on_message(lc_node *n, const lc_message *m, void *u) {
  (void)n;
  (void)m;
  (void)u;
  received++;
}

static void on_stop(lc_node *n, void *u) {
  (void)n;
  (void)u;
  stopped++;
}

#define BATCH 256

static uint64_t want;
static int seen_both(void) {
  return a_peers >= 1 && b_peers >= 1;
}
static int delivered_enough(void) {
  return delivered >= want;
}
static int received_enough(void) {
  return received >= want;
}
static int both_stopped(void) {
  return stopped >= 2;
}

static int run_until(int (*pred)(void), double timeout_s) {
  uint64_t end = now_ns() + (uint64_t)(timeout_s * 1e9);
  while (!pred()) {
    if (now_ns() > end)
      return -1;
    uv_run(&loop, UV_RUN_ONCE);
  }
  return 0;
}

static lc_node *make(char *dir, const char *nick, uint16_t dport) {
  if (bench_mkdtemp(dir, 256, "rtt") < 0)
    return NULL;
  lc_node_options o;
  test_node_options(&o, dir, nick, dport, 2000, NULL, NULL, NULL);
  o.on_peer = on_peer;
  o.on_delivery = on_delivery;
  o.on_message = on_message;
  lc_node *n;
  if (lc_node_new(&n, &loop, &o) != 0 || lc_node_start(n) != 0)
    return NULL;
  return n;
}

/* ---- the reference: UDP ping-pong between two libuv sockets ---- */

static uv_udp_t ua, ub;
static struct sockaddr_in addr_a, addr_b;
static char pong_buf[256];
static int pongs;

static void udp_alloc(uv_handle_t *h, size_t s, uv_buf_t *buf) {
  (void)h;
  (void)s;
  *buf = uv_buf_init(pong_buf, sizeof pong_buf);
}

static void udp_sent(uv_udp_send_t *req, int status) {
  (void)status;
  free(req);
}

static void udp_send(uv_udp_t *from, const struct sockaddr_in *to,
                     const char *data, size_t len) {
  uv_udp_send_t *req = malloc(sizeof *req);
  uv_buf_t b1 = uv_buf_init((char *)data, (unsigned)len);
  uv_udp_send(req, from, &b1, 1, (const struct sockaddr *)to, udp_sent);
}

static void udp_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                     const struct sockaddr *from, unsigned flags) {
  (void)flags;
  (void)from;
  if (nread <= 0)
    return;
  if (h == &ub) /* echo */
    udp_send(&ub, &addr_a, buf->base, (size_t)nread);
  else
    pongs++;
}

static int pong_back(void) {
  return pongs > 0;
}

static int cmp_u64(const void *x, const void *y) {
  uint64_t p = *(const uint64_t *)x, q = *(const uint64_t *)y;
  return p < q ? -1 : p > q;
}

static double pct(uint64_t *v, size_t n, double p) {
  qsort(v, n, sizeof *v, cmp_u64);
  return (double)v[(size_t)(p * (double)(n - 1) + 0.5)] / 1000.0;
}

/* ---- the cost split ---- */

/* The stores' work of n messages: the sender's insert and its SENT and
 * DELIVERED states, the receiver's insert, in batches of BATCH.  us per
 * message. */
static double cost_store(size_t n, const char *text) {
  char dir[256], pa[300], pb[300];
  if (bench_mkdtemp(dir, sizeof dir, "cost") < 0)
    return -1;
  snprintf(pa, sizeof pa, "%s/a.db", dir);
  snprintf(pb, sizeof pb, "%s/b.db", dir);
  lc__store *sa, *sb;
  char *err = NULL;
  if (lc__store_open(&sa, pa, &err) < 0 || lc__store_open(&sb, pb, &err) < 0) {
    fprintf(stderr, "rtt bench: store: %s\n", err ? err : "?");
    return -1;
  }
  uint8_t peer_a[LC_KEY_BYTES], peer_b[LC_KEY_BYTES], id[LC_MSGID_BYTES];
  memset(peer_a, 1, sizeof peer_a);
  memset(peer_b, 2, sizeof peer_b);
  uint64_t t0 = now_ns();
  for (size_t i = 0; i < n; i += BATCH) {
    size_t end = i + BATCH < n ? i + BATCH : n;
    lc__store_begin(sa);
    for (size_t k = i; k < end; k++) {
      memset(id, 0, sizeof id);
      memcpy(id, &k, sizeof k);
      lc__store_add_outgoing(sa, peer_b, id, k, k, text, 100, NULL);
    }
    lc__store_commit(sa);
    lc__store_begin(sa);
    lc__store_begin(sb);
    for (size_t k = i; k < end; k++) {
      memset(id, 0, sizeof id);
      memcpy(id, &k, sizeof k);
      lc__store_set_state(sa, id, LC_MSG_SENT);
      lc__store_add_incoming(sb, peer_a, id, k, k, text, 100, NULL);
    }
    lc__store_commit(sb);
    for (size_t k = i; k < end; k++) {
      memset(id, 0, sizeof id);
      memcpy(id, &k, sizeof k);
      lc__store_set_state(sa, id, LC_MSG_DELIVERED);
    }
    lc__store_commit(sa);
  }
  double us = (double)(now_ns() - t0) / 1e3 / (double)n;
  lc__store_close(sa);
  lc__store_close(sb);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", dir);
  return us;
}

/* Two transports wired in memory. */
static lc__tp *tp_a, *tp_b;
static uint64_t tp_acked;
static lc__addr addr_of_a, addr_of_b;

static int mem_message(void *u, const uint8_t *peer, const uint8_t *id,
                       const uint8_t *data, size_t len) {
  (void)u;
  (void)peer;
  (void)id;
  (void)data;
  (void)len;
  return 0;
}

static void mem_acked(void *u, const uint8_t *peer, const uint8_t *id) {
  (void)u;
  (void)peer;
  (void)id;
  tp_acked++;
}

static lc__tp *mem_tp(lc__identity *id) {
  lc__tp_config c;
  lc__tp_config_default(&c);
  c.max_datagram = 16384; /* as a node bound to 127.x */
  c.loss_tolerant = 1;
  c.cb.message = mem_message;
  c.cb.message_acked = mem_acked;
  lc__tp *t;
  return lc__tp_new(&t, id, &c) == 0 ? t : NULL;
}

/* Moves every datagram due between the two; returns how many. */
static uint64_t mem_pump(uint64_t now, uint64_t *bytes) {
  static uint8_t buf[LC_DATAGRAM_MAX];
  uint64_t moved = 0;
  for (int any = 1; any;) {
    any = 0;
    lc__addr to;
    int len;
    while ((len = lc__tp_poll(tp_a, now, &to, buf, sizeof buf)) > 0) {
      lc__tp_recv(tp_b, &addr_of_a, buf, (size_t)len, now);
      moved++;
      *bytes += (uint64_t)len;
      any = 1;
    }
    while ((len = lc__tp_poll(tp_b, now, &to, buf, sizeof buf)) > 0) {
      lc__tp_recv(tp_a, &addr_of_b, buf, (size_t)len, now);
      moved++;
      *bytes += (uint64_t)len;
      any = 1;
    }
  }
  return moved;
}

static void mem_addr(lc__addr *ad, int port) {
  memset(ad, 0, sizeof *ad);
  struct sockaddr_in *in = (struct sockaddr_in *)&ad->ss;
  in->sin_family = AF_INET;
  in->sin_port = htons((uint16_t)port);
  in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ad->len = sizeof *in;
}

/* us per message through two transports in memory, and the datagrams
 * (count, bytes) they exchanged for n messages. */
static double cost_transport(size_t n, const char *text, uint64_t *dgrams,
                             uint64_t *bytes) {
  lc__identity ia, ib;
  lc__identity_generate(&ia, NULL);
  lc__identity_generate(&ib, NULL);
  tp_a = mem_tp(&ia);
  tp_b = mem_tp(&ib);
  if (!tp_a || !tp_b)
    return -1;
  mem_addr(&addr_of_a, 1);
  mem_addr(&addr_of_b, 2);
  lc__tp_set_peer_addr(tp_a, ib.pk, &addr_of_b);
  lc__tp_set_peer_addr(tp_b, ia.pk, &addr_of_a);
  uint8_t env[256], id[LC_MSG_ID_BYTES];
  lc__chat c;
  memset(&c, 0, sizeof c);
  c.kind = LC_CHAT_TEXT;
  c.sent_ms = 1;
  c.text = text;
  c.text_len = 100;
  int elen = lc__chat_encode(&c, env, sizeof env);
  uint64_t now = 1000000, hs_bytes = 0;
  memset(id, 0, sizeof id);
  lc__tp_send_msg(tp_a, ib.pk, id, env, (size_t)elen, now);
  mem_pump(now, &hs_bytes); /* the handshake */
  tp_acked = 0;
  *dgrams = 0;
  *bytes = 0;
  uint64_t t0 = now_ns();
  for (size_t i = 0; i < n; i += BATCH) {
    for (size_t k = i; k < i + BATCH && k < n; k++) {
      uint64_t v = k + 1;
      memcpy(id, &v, sizeof v);
      lc__tp_send_msg(tp_a, ib.pk, id, env, (size_t)elen, now);
    }
    now += 100; /* as the loop's clock would move */
    *dgrams += mem_pump(now, bytes);
  }
  for (int i = 0; i < 1000 && tp_acked < n; i++) {
    now += 2000; /* delayed ACKs */
    *dgrams += mem_pump(now, bytes);
  }
  double us = (double)(now_ns() - t0) / 1e3 / (double)n;
  if (tp_acked < n)
    fprintf(stderr, "rtt bench: in memory, only %llu of %zu acked\n",
            (unsigned long long)tp_acked, n);
  lc__tp_free(tp_a);
  lc__tp_free(tp_b);
  lc__identity_wipe(&ia);
  lc__identity_wipe(&ib);
  return us;
}

/* us for sealing and opening `count` datagrams of `size` bytes. */
static double cost_crypto(uint64_t count, size_t size) {
  lc__session_keys k;
  lc__crypto_random(&k, sizeof k);
  lc__keypair s, r;
  lc__keypair_init(&s, &k, 1, 2);
  lc__session_keys k2;
  memcpy(k2.send_key, k.recv_key, 32);
  memcpy(k2.recv_key, k.send_key, 32);
  lc__keypair_init(&r, &k2, 2, 1);
  static uint8_t pt[LC_DATAGRAM_MAX], ct[LC_DATAGRAM_MAX + 16];
  memset(pt, 7, sizeof pt);
  if (size > LC_DATAGRAM_MAX - 16)
    size = LC_DATAGRAM_MAX - 16;
  uint64_t t0 = now_ns();
  for (uint64_t i = 0; i < count; i++) {
    int len = lc__seal(&s, i, pt, size, ct);
    if (len < 0 || lc__open(&r, i, ct, (size_t)len, pt) < 0) {
      fprintf(stderr, "rtt bench: crypto failed\n");
      break;
    }
  }
  return (double)(now_ns() - t0) / 1e3;
}

static void cost_split(size_t n, double total_us) {
  char text[101];
  memset(text, 'x', 100);
  text[100] = 0;
  double st = cost_store(n, text);
  uint64_t dg = 0, bytes = 0;
  double tp = cost_transport(n, text, &dg, &bytes);
  double cr = dg ? cost_crypto(dg, (size_t)(bytes / dg)) / (double)n : 0;
  printf("cost.total_us=%.2f\n", total_us);
  printf("cost.store_us=%.2f\n", st);
  printf("cost.transport_us=%.2f\n", tp - cr); /* without its crypto */
  printf("cost.crypto_us=%.2f\n", cr);
  printf("cost.node_net_us=%.2f\n", total_us - st - tp);
  fprintf(stderr,
          "cost of a message: %.2f us = store %.2f + transport %.2f + "
          "crypto %.2f + node, sockets, loop %.2f (%llu datagrams of %llu "
          "bytes in memory for %zu messages)\n",
          total_us, st, tp - cr, cr, total_us - st - tp, (unsigned long long)dg,
          (unsigned long long)(dg ? bytes / dg : 0), n);
}

int main(int argc, char **argv) {
  size_t count = 10000, burst = 20000;
  static const struct option lo[] = {{"count", required_argument, NULL, 'c'},
                                     {"burst", required_argument, NULL, 'b'},
                                     {NULL, 0, NULL, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    if (ch == 'c')
      count = (size_t)atol(optarg);
    else if (ch == 'b')
      burst = (size_t)atol(optarg);
    else
      return 2;
  }
  if (count < 10)
    count = 10;
  uv_loop_init(&loop);
  char text[101];
  memset(text, 'x', 100);
  text[100] = 0;
  uint64_t *ref = calloc(count, sizeof *ref), *rtt = calloc(count, sizeof *rtt);

  /* the reference first */
  uv_udp_init(&loop, &ua);
  uv_udp_init(&loop, &ub);
  uv_ip4_addr("127.0.0.1", 0, &addr_a);
  uv_ip4_addr("127.0.0.1", 0, &addr_b);
  uv_udp_bind(&ua, (const struct sockaddr *)&addr_a, 0);
  uv_udp_bind(&ub, (const struct sockaddr *)&addr_b, 0);
  int len = sizeof addr_a;
  uv_udp_getsockname(&ua, (struct sockaddr *)&addr_a, &len);
  len = sizeof addr_b;
  uv_udp_getsockname(&ub, (struct sockaddr *)&addr_b, &len);
  uv_udp_recv_start(&ua, udp_alloc, udp_recv);
  uv_udp_recv_start(&ub, udp_alloc, udp_recv);
  for (size_t i = 0; i < count; i++) {
    pongs = 0;
    uint64_t t0 = now_ns();
    udp_send(&ua, &addr_b, text, 100);
    if (run_until(pong_back, 5) < 0) {
      fprintf(stderr, "rtt bench: the UDP reference lost a packet\n");
      return 1;
    }
    ref[i] = now_ns() - t0;
  }
  uv_close((uv_handle_t *)&ua, NULL);
  uv_close((uv_handle_t *)&ub, NULL);

  uint16_t dport = free_port();
  a = make(dir_a, "a", dport);
  b = make(dir_b, "b", dport);
  if (!a || !b || run_until(seen_both, 30) < 0) {
    fprintf(stderr, "rtt bench: the two nodes did not meet\n");
    return 1;
  }
  lc_node_key(a, ka);
  lc_node_key(b, kb);
  /* warm up: the session, the caches */
  for (int i = 0; i < 100; i++) {
    want = delivered + 1;
    lc_send_text(a, kb, text, 100, NULL);
    run_until(delivered_enough, 5);
  }
  for (size_t i = 0; i < count; i++) {
    want = delivered + 1;
    uint64_t t0 = now_ns();
    lc_send_text(a, kb, text, 100, NULL);
    if (run_until(delivered_enough, 10) < 0) {
      fprintf(stderr, "rtt bench: message %zu not delivered\n", i);
      return 1;
    }
    rtt[i] = now_ns() - t0;
  }
  double r50 = pct(ref, count, 0.5), r99 = pct(ref, count, 0.99);
  double l50 = pct(rtt, count, 0.5), l99 = pct(rtt, count, 0.99);

  /* throughput: a burst, stored on both sides, pipelined in batches */
  received = 0;
  want = burst;
  uint64_t t0 = now_ns();
  for (size_t i = 0; i < burst; i += BATCH) {
    lc_batch_begin(a);
    for (size_t k = i; k < burst && k < i + BATCH; k++)
      lc_send_text(a, kb, text, 100, NULL);
    if (lc_batch_end(a) != 0) {
      fprintf(stderr, "rtt bench: a batch did not commit\n");
      return 1;
    }
  }
  uint64_t t_sent = now_ns();
  int ok = run_until(received_enough, 120) == 0;
  uint64_t t_all = now_ns();
  double burst_s = (double)(t_all - t0) / 1e9;
  /* the same, one commit per text */
  size_t single = burst / 4;
  received = 0;
  want = single;
  uint64_t t1 = now_ns();
  for (size_t i = 0; i < single; i++)
    lc_send_text(a, kb, text, 100, NULL);
  int ok1 = run_until(received_enough, 120) == 0;
  uint64_t t_single = now_ns();

  printf("udp.p50_us=%.1f\nudp.p99_us=%.1f\n", r50, r99);
  printf("rtt.p50_us=%.1f\nrtt.p99_us=%.1f\n", l50, l99);
  if (ok) {
    printf("burst.msg_s=%.0f\n", (double)burst / burst_s);
    printf("burst.send_msg_s=%.0f\n",
           (double)burst / ((double)(t_sent - t0) / 1e9));
    cost_split(burst, 1e6 * burst_s / (double)burst);
  } else {
    fprintf(stderr, "rtt bench: only %llu of the burst stored in 120 s\n",
            (unsigned long long)received);
  }
  if (ok1)
    printf("single.msg_s=%.0f\n",
           (double)single / ((double)(t_single - t1) / 1e9));
  fprintf(stderr,
          "rtt: round trip p50 %.1f us (UDP %.1f), p99 %.1f us (UDP %.1f); "
          "burst %.0f msg/s\n",
          l50, r50, l99, r99, ok ? (double)burst / burst_s : 0.0);

  lc_node_stop(a, on_stop);
  lc_node_stop(b, on_stop);
  run_until(both_stopped, 30);
  lc_node_free(a);
  lc_node_free(b);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", dir_a, dir_b);
  if (!getenv("BENCH_KEEP") && system(cmd) != 0)
    fprintf(stderr, "could not remove the data folders\n");
  free(ref);
  free(rtt);
  return ok && ok1 ? 0 : 1;
}
