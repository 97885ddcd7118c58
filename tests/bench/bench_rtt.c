/* bench_rtt.c: lanchat-bench-rtt, message round trip and small-message
 * throughput between two nodes on loopback (unicast 127.0.0.1, broadcast
 * 127.255.255.255, a discovery port picked free), in one process and one
 * libuv loop.
 *
 * Round trip: a 100-byte text is sent and timed until the sender's node
 * reports it DELIVERED (stored by the peer's node, its acknowledgement
 * back), one at a time.  Reference in the same run and the same loop: two
 * libuv UDP sockets on 127.0.0.1 bouncing 100 bytes back and forth.
 * Throughput: N texts of 100 bytes sent at once (each committed to the
 * sender's history before lc_send_text returns), timed until the receiver
 * has stored them all.
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
#include "lanchat.h"

static uv_loop_t loop;
static lc_node *a, *b;
static uint8_t ka[LC_KEY_BYTES], kb[LC_KEY_BYTES];
static int a_peers, b_peers, stopped;
static uint64_t delivered, received;
static char dir_a[64], dir_b[64];

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
  snprintf(dir, 64, "/tmp/lc-bench-rtt-XXXXXX");
  if (!mkdtemp(dir))
    return NULL;
  lc_node_options o;
  lc_node_options_init(&o);
  o.data_dir = dir;
  o.nickname = nick;
  o.discovery_port = dport;
  o.bind_v4 = "127.0.0.1";
  o.bind_v6 = "";
  o.interfaces = "lo";
  o.broadcast = "127.255.255.255";
  o.announce_interval_ms = 2000;
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

  /* throughput: a burst, stored on both sides */
  received = 0;
  want = burst;
  uint64_t t0 = now_ns();
  for (size_t i = 0; i < burst; i++)
    lc_send_text(a, kb, text, 100, NULL);
  uint64_t t_sent = now_ns();
  int ok = run_until(received_enough, 120) == 0;
  uint64_t t_all = now_ns();

  printf("| figure | goal | lanchat | reference (same run) | ratio |\n");
  printf("|---|---|---|---|---|\n");
  printf("| round trip p50 (us), %zu messages of 100 bytes | <= 2x UDP | "
         "%.1f | UDP ping-pong %.1f | %.1fx |\n",
         count, l50, r50, l50 / r50);
  printf("| round trip p99 (us) | - | %.1f | %.1f | %.1fx |\n", l99, r99,
         l99 / r99);
  if (ok)
    printf("| %zu texts of 100 bytes, sent at once, stored on both sides "
           "(msg/s) | >= 100,000 | %.0f | sending alone (store + "
           "transport): %.0f | - |\n",
           burst, (double)burst / ((double)(t_all - t0) / 1e9),
           (double)burst / ((double)(t_sent - t0) / 1e9));
  else
    printf("| burst of %zu | - | only %llu stored in 120 s | - | - |\n", burst,
           (unsigned long long)received);

  lc_node_stop(a, on_stop);
  lc_node_stop(b, on_stop);
  run_until(both_stopped, 30);
  lc_node_free(a);
  lc_node_free(b);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  char cmd[200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", dir_a, dir_b);
  if (!getenv("BENCH_KEEP") && system(cmd) != 0)
    fprintf(stderr, "could not remove the data folders\n");
  free(ref);
  free(rtt);
  return ok ? 0 : 1;
}
