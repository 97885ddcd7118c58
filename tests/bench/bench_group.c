/* bench_group.c: lanchat-bench-group, the group fan-out figures of the
 * README, on loopback only (unicast 127.0.0.1, broadcast 127.255.255.255,
 * a discovery port picked free for the run).
 *
 * N nodes (10 and 50 by default) in one process and one libuv loop find
 * each other; one creates a group of all of them; then members in turn
 * send a message and the time until every other member's node has it
 * stored (on_message) is measured.  Reference in the same run: the same
 * nodes sending the same text directly to one peer (a direct message's
 * time to the other side), so the ratio says what fan-out costs.
 *
 *   lanchat-bench-group [--sizes 10,50] [--messages 30]
 *
 * Output: key=value lines on stdout, group.mN.* for N members (one run);
 * exit status 0 when every size was measured.
 * BENCH_VERBOSE=1 prints each message's time and the nodes' datagram
 * counters (sent, send errors, refused) on stderr. */
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
#include "node_options.h"

#define MAXN 64

typedef struct {
  lc_node *node;
  char dir[256];
  uint8_t key[LC_KEY_BYTES];
  int got;      /* messages received for the round in progress */
  int in_group; /* on_group seen with us a member */
  int peers;    /* present peers */
  int stopped;
} bn;

static bn nodes[MAXN];
static int nn;
static uv_loop_t loop;
static int g_round_want;

static bn *self_of(lc_node *n) {
  for (int i = 0; i < nn; i++)
    if (nodes[i].node == n)
      return &nodes[i];
  return NULL;
}

static void on_peer(lc_node *n, lc_peer_event ev, const lc_peer_info *p,
                    int detail, void *u) {
  (void)p;
  (void)detail;
  (void)u;
  bn *b = self_of(n);
  if (ev == LC_PEER_APPEARED)
    b->peers++;
  else if (ev == LC_PEER_LEFT)
    b->peers--;
}

static void on_message(lc_node *n, const lc_message *m, void *u) {
  (void)m;
  (void)u;
  self_of(n)->got++;
}

static void on_group(lc_node *n, const lc_group_info *g, void *u) {
  (void)u;
  bn *b = self_of(n);
  b->in_group = g->member && (int)g->nmembers == nn;
}

static void on_stop(lc_node *n, void *u) {
  (void)u;
  self_of(n)->stopped = 1;
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

static int all_see_all(void) {
  for (int i = 0; i < nn; i++)
    if (nodes[i].peers < nn - 1)
      return 0;
  return 1;
}

static int all_in_group(void) {
  for (int i = 0; i < nn; i++)
    if (!nodes[i].in_group)
      return 0;
  return 1;
}

static int round_done(void) {
  int have = 0;
  for (int i = 0; i < nn; i++)
    have += nodes[i].got;
  return have >= g_round_want;
}

static int all_stopped(void) {
  for (int i = 0; i < nn; i++)
    if (!nodes[i].stopped)
      return 0;
  return 1;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static double pct(uint64_t *v, int n, double p) {
  qsort(v, (size_t)n, sizeof *v, cmp_u64);
  int i = (int)(p * (n - 1) + 0.5);
  return (double)v[i] / 1e6;
}

static void rm_dir(const char *dir) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", dir);
}

static int bench_size(int n, int messages) {
  nn = n;
  memset(nodes, 0, sizeof nodes);
  uint16_t dport = free_port();
  for (int i = 0; i < n; i++) {
    bn *b = &nodes[i];
    if (bench_mkdtemp(b->dir, sizeof b->dir, "group") < 0)
      return -1;
    char nick[16];
    snprintf(nick, sizeof nick, "m%02d", i);
    lc_node_options o;
    test_node_options(&o, b->dir, nick, dport, 2000, NULL, NULL, NULL);
    o.on_peer = on_peer;
    o.on_message = on_message;
    o.on_group = on_group;
    if (lc_node_new(&b->node, &loop, &o) != 0 || lc_node_start(b->node) != 0)
      return -1;
    lc_node_key(b->node, b->key);
  }
  int rc = 0;
  if (run_until(all_see_all, 60) < 0) {
    fprintf(stderr, "group bench: the %d nodes did not all see each other\n",
            n);
    rc = -1;
    goto out;
  }
  uint8_t(*members)[LC_KEY_BYTES] = calloc((size_t)n, LC_KEY_BYTES);
  for (int i = 1; i < n; i++)
    memcpy(members[i - 1], nodes[i].key, LC_KEY_BYTES);
  uint8_t gid[LC_GROUP_ID_BYTES];
  uint64_t t0 = now_ns();
  int cr = lc_group_create(nodes[0].node, "bench",
                           (const uint8_t(*)[LC_KEY_BYTES])members,
                           (size_t)n - 1, gid);
  free(members);
  if (cr != 0 || run_until(all_in_group, 60) < 0) {
    fprintf(stderr, "group bench: the group did not reach every node\n");
    rc = -1;
    goto out;
  }
  double create_ms = (double)(now_ns() - t0) / 1e6;
  uint64_t *fan = calloc((size_t)messages, sizeof *fan);
  uint64_t *direct = calloc((size_t)messages, sizeof *direct);
  const char *text = "a message of about the size people write, 60 bytes..";
  for (int k = 0; k < messages; k++) {
    int from = k % n;
    for (int i = 0; i < n; i++)
      nodes[i].got = 0;
    g_round_want = n - 1;
    t0 = now_ns();
    lc_group_send(nodes[from].node, gid, text, strlen(text), NULL);
    if (run_until(round_done, 30) < 0) {
      fprintf(stderr, "group bench: message %d did not reach everyone\n", k);
      rc = -1;
      break;
    }
    fan[k] = now_ns() - t0;
    if (getenv("BENCH_VERBOSE"))
      fprintf(stderr, "message %d from %d: %.2f ms\n", k, from,
              (double)fan[k] / 1e6);
    /* the reference: the same text, directly to one peer */
    for (int i = 0; i < n; i++)
      nodes[i].got = 0;
    g_round_want = 1;
    t0 = now_ns();
    lc_send_text(nodes[from].node, nodes[(from + 1) % n].key, text,
                 strlen(text), NULL);
    if (run_until(round_done, 30) < 0) {
      rc = -1;
      break;
    }
    direct[k] = now_ns() - t0;
  }
  if (rc == 0) {
    double f50 = pct(fan, messages, 0.5), f99 = pct(fan, messages, 0.99);
    double d50 = pct(direct, messages, 0.5), d99 = pct(direct, messages, 0.99);
    printf("group.m%d.create_ms=%.2f\n", n, create_ms);
    printf("group.m%d.fanout_p50_ms=%.3f\ngroup.m%d.fanout_p99_ms=%.3f\n", n,
           f50, n, f99);
    printf("group.m%d.direct_p50_ms=%.3f\ngroup.m%d.direct_p99_ms=%.3f\n", n,
           d50, n, d99);
    printf("group.m%d.messages_n=%d\n", n, messages);
    fflush(stdout);
  }
  free(fan);
  free(direct);
  if (getenv("BENCH_VERBOSE")) {
    uint64_t errs = 0, bad = 0, out = 0;
    for (int i = 0; i < n; i++) {
      lc_node_stats st;
      lc_node_stats_get(nodes[i].node, &st);
      errs += st.send_errors;
      bad += st.bad_datagrams;
      out += st.datagrams_out;
    }
    fprintf(stderr,
            "%d nodes: %llu datagrams out, %llu send errors, %llu bad in\n", n,
            (unsigned long long)out, (unsigned long long)errs,
            (unsigned long long)bad);
  }
out:
  for (int i = 0; i < n; i++)
    if (nodes[i].node && lc_node_stop(nodes[i].node, on_stop) != 0)
      nodes[i].stopped = 1;
  run_until(all_stopped, 30);
  for (int i = 0; i < n; i++) {
    lc_node_free(nodes[i].node);
    rm_dir(nodes[i].dir);
  }
  return rc;
}

int main(int argc, char **argv) {
  char sizes[64] = "10,50";
  int messages = 30;
  static const struct option lo[] = {{"sizes", required_argument, NULL, 's'},
                                     {"messages", required_argument, NULL, 'm'},
                                     {NULL, 0, NULL, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    if (ch == 's')
      snprintf(sizes, sizeof sizes, "%s", optarg);
    else if (ch == 'm')
      messages = atoi(optarg);
    else
      return 2;
  }
  if (messages < 1)
    messages = 1;
  uv_loop_init(&loop);
  int rc = 0;
  for (char *tok = strtok(sizes, ","); tok; tok = strtok(NULL, ",")) {
    int n = atoi(tok);
    if (n < 2 || n > MAXN) {
      fprintf(stderr, "sizes: 2..%d\n", MAXN);
      return 2;
    }
    if (bench_size(n, messages) != 0)
      rc = 1;
  }
  uv_loop_close(&loop);
  return rc;
}
