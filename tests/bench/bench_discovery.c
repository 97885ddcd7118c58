/* bench_discovery.c: lanchat-bench-discovery, the discovery figures of
 * the README, measured on loopback only (unicast 127.0.0.1, broadcast
 * 127.255.255.255, a discovery port picked free for the run).
 *
 * N processes (default 51), one node each, are released at the same
 * instant; the parent measures how long until every node sees every other,
 * how a long idle node's memory and CPU look with N-1 known peers, how fast
 * a clean stop is seen, and how fast a killed peer expires.  References
 * measured in the same run: the loopback UDP round trip, and the memory
 * and CPU of an idle process with the same libraries but no node. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <uv.h>

#include "bench_util.h"
#include "lanchat.h"

enum { R_READY = 1, R_ALL = 2, R_STOPPING = 3, R_GOODBYE = 4, R_EXPIRED = 5 };

typedef struct {
  int child;
  int kind;
  uint64_t t_ns;
  int about; /* the child a LEFT is about */
} report;

static int g_peers = 51;
static uint32_t g_interval_ms = 5000;
static uint16_t g_dport;
static char g_root[64];

/* ---- a child: one node --------------------------------------------------- */

typedef struct {
  uv_loop_t loop;
  uv_signal_t stop_sig, term_sig;
  lc_node *node;
  int id, out, seen, all_sent, stopping;
} child_state;

static void child_report(child_state *c, int kind, int about) {
  report r = {c->id, kind, now_ns(), about};
  if (write(c->out, &r, sizeof r) != (ssize_t)sizeof r)
    _exit(3);
}

static void child_on_peer(lc_node *node, lc_peer_event ev,
                          const lc_peer_info *p, int detail, void *user) {
  (void)node;
  child_state *c = user;
  if (ev == LC_PEER_APPEARED) {
    c->seen++;
    if (c->seen == g_peers - 1 && !c->all_sent) {
      c->all_sent = 1;
      child_report(c, R_ALL, 0);
    }
  } else if (ev == LC_PEER_LEFT) {
    c->seen--;
    child_report(c, detail == LC_LEFT_GOODBYE ? R_GOODBYE : R_EXPIRED,
                 atoi(p->nickname + 1));
  }
}

static void child_stopped(lc_node *node, void *user) {
  (void)node;
  child_state *c = user;
  uv_close((uv_handle_t *)&c->stop_sig, NULL);
  uv_close((uv_handle_t *)&c->term_sig, NULL);
}

static void child_stop(uv_signal_t *s, int signum) {
  (void)signum;
  child_state *c = s->data;
  if (c->stopping)
    return;
  c->stopping = 1;
  if (s == &c->stop_sig)
    child_report(c, R_STOPPING, 0);
  if (lc_node_stop(c->node, child_stopped) < 0)
    child_stopped(c->node, c);
}

static int child_main(int id, int go_fd, int out) {
  static child_state c;
  c.id = id;
  c.out = out;
  char dir[128], nick[16];
  snprintf(dir, sizeof dir, "%s/n%d", g_root, id);
  snprintf(nick, sizeof nick, "n%d", id);
  lc_node_options o;
  lc_node_options_init(&o);
  o.data_dir = dir;
  o.nickname = nick;
  o.discovery_port = g_dport;
  o.bind_v4 = "127.0.0.1";
  o.bind_v6 = "";
  o.interfaces = "lo";
  o.broadcast = "127.255.255.255";
  o.announce_interval_ms = g_interval_ms;
  o.on_peer = child_on_peer;
  o.user_data = &c;
  uv_loop_init(&c.loop);
  if (lc_node_new(&c.node, &c.loop, &o) < 0)
    return 2;
  uv_signal_init(&c.loop, &c.stop_sig);
  uv_signal_init(&c.loop, &c.term_sig);
  c.stop_sig.data = c.term_sig.data = &c;
  uv_signal_start(&c.stop_sig, child_stop, SIGUSR1);
  uv_signal_start(&c.term_sig, child_stop, SIGTERM);
  child_report(&c, R_READY, 0);
  char b;
  if (read(go_fd, &b, 1) < 0) /* returns 0 for everyone at once */
    return 2;
  int rc = lc_node_start(c.node);
  if (rc < 0) {
    fprintf(stderr, "n%d: %s\n", id, lc_strerror(rc));
    return 2;
  }
  uv_run(&c.loop, UV_RUN_DEFAULT);
  lc_node_free(c.node);
  uv_loop_close(&c.loop);
  return 0;
}

/* The reference: same binary and libraries, a libuv loop, no node. */
static int reference_main(int go_fd) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  char b;
  while (read(go_fd, &b, 1) < 0 && errno == EINTR)
    ;
  pause();
  uv_loop_close(&loop);
  return 0;
}

/* ---- the parent ---------------------------------------------------------- */

static long proc_rss_kib(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  long kib = -1;
  if (!f)
    return -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld", &kib) == 1)
      break;
  fclose(f);
  return kib;
}

/* CPU time used by a process, in seconds, to the nanosecond: the first
 * field of /proc/PID/schedstat (utime and stime count 10 ms ticks, too
 * coarse for an idle process). */
static double proc_cpu_s(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/schedstat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  unsigned long long ns = 0;
  int ok = fscanf(f, "%llu", &ns) == 1;
  fclose(f);
  return ok ? (double)ns / 1e9 : -1;
}

/* Median loopback UDP round trip, in microseconds. */
static double loopback_rtt_us(void) {
  int a = socket(AF_INET, SOCK_DGRAM, 0), b = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in sa, sb;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sb = sa;
  bind(a, (struct sockaddr *)&sa, sizeof sa);
  bind(b, (struct sockaddr *)&sb, sizeof sb);
  socklen_t l = sizeof sa;
  getsockname(a, (struct sockaddr *)&sa, &l);
  l = sizeof sb;
  getsockname(b, (struct sockaddr *)&sb, &l);
  enum { ROUNDS = 1000 };
  static double rtt[ROUNDS];
  char buf[200] = {0};
  for (int i = 0; i < ROUNDS; i++) {
    uint64_t t0 = now_ns();
    sendto(a, buf, 150, 0, (struct sockaddr *)&sb, sizeof sb);
    recv(b, buf, sizeof buf, 0);
    sendto(b, buf, 150, 0, (struct sockaddr *)&sa, sizeof sa);
    recv(a, buf, sizeof buf, 0);
    rtt[i] = (double)(now_ns() - t0) / 1000.0;
  }
  close(a);
  close(b);
  for (int i = 1; i < ROUNDS; i++) /* insertion sort: 1000 values */
    for (int k = i; k > 0 && rtt[k] < rtt[k - 1]; k--) {
      double t = rtt[k];
      rtt[k] = rtt[k - 1];
      rtt[k - 1] = t;
    }
  return rtt[ROUNDS / 2];
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static pid_t *g_pids;
static pid_t g_ref;

static void cleanup(void) {
  for (int i = 0; g_pids && i < g_peers; i++)
    if (g_pids[i] > 0)
      kill(g_pids[i], SIGKILL);
  if (g_ref > 0)
    kill(g_ref, SIGKILL);
  while (wait(NULL) > 0)
    ;
  char cmd[128];
  if (g_root[0]) {
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_root);
    if (system(cmd) != 0)
      fprintf(stderr, "could not remove %s\n", g_root);
  }
}

/* Reads reports until `want` of kind arrived (or the deadline passed);
 * stores their times in t[] (indexed by child). */
static int collect(int in, int kind, int want, uint64_t *t,
                   uint64_t deadline_ns, int about) {
  int got = 0;
  while (got < want) {
    if (now_ns() > deadline_ns)
      return got;
    fd_set fs;
    FD_ZERO(&fs);
    FD_SET(in, &fs);
    struct timeval tv = {0, 100000};
    if (select(in + 1, &fs, NULL, NULL, &tv) <= 0)
      continue;
    report r;
    if (read(in, &r, sizeof r) != (ssize_t)sizeof r)
      return got;
    if (r.kind == kind && (about < 0 || r.about == about)) {
      t[r.child] = r.t_ns;
      got++;
    }
  }
  return got;
}

int main(int argc, char **argv) {
  static const struct option opts[] = {{"peers", 1, 0, 'n'},
                                       {"interval-ms", 1, 0, 'i'},
                                       {"idle-s", 1, 0, 's'},
                                       {0, 0, 0, 0}};
  int idle_s = 10, c;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    if (c == 'n')
      g_peers = atoi(optarg);
    else if (c == 'i')
      g_interval_ms = (uint32_t)atoi(optarg);
    else if (c == 's')
      idle_s = atoi(optarg);
    else
      return 2;
  }
  if (g_peers < 4 || g_peers > 200 || idle_s < 1) {
    fprintf(stderr, "usage: lanchat-bench-discovery [--peers 4..200] "
                    "[--interval-ms MS] [--idle-s S]\n");
    return 2;
  }
  snprintf(g_root, sizeof g_root, "/tmp/lc-bench-XXXXXX");
  if (!mkdtemp(g_root))
    return 2;
  g_dport = free_port();
  int go[2], rep[2];
  if (pipe(go) < 0 || pipe(rep) < 0)
    return 2;
  g_pids = calloc((size_t)g_peers, sizeof *g_pids);
  atexit(cleanup);
  double rtt = loopback_rtt_us();

  for (int i = 0; i < g_peers; i++) {
    pid_t p = fork();
    if (p == 0) {
      close(go[1]);
      close(rep[0]);
      _exit(child_main(i, go[0], rep[1]));
    }
    g_pids[i] = p;
  }
  g_ref = fork();
  if (g_ref == 0) {
    close(go[1]);
    _exit(reference_main(go[0]));
  }
  close(go[0]);
  close(rep[1]);
  uint64_t *t = calloc((size_t)g_peers, sizeof *t);
  uint64_t long_wait = 30ull * 1000000000ull;
  if (collect(rep[0], R_READY, g_peers, t, now_ns() + long_wait, -1) !=
      g_peers) {
    fprintf(stderr, "not every node got ready\n");
    return 1;
  }
  /* phase 1: everyone at once */
  uint64_t t0 = now_ns();
  close(go[1]);
  int got = collect(rep[0], R_ALL, g_peers, t, now_ns() + long_wait, -1);
  if (got != g_peers) {
    fprintf(stderr, "only %d of %d nodes saw everyone\n", got, g_peers);
    return 1;
  }
  for (int i = 0; i < g_peers; i++)
    t[i] -= t0;
  qsort(t, (size_t)g_peers, sizeof *t, cmp_u64);
  double disc_max_ms = (double)t[g_peers - 1] / 1e6;
  double disc_med_ms = (double)t[g_peers / 2] / 1e6;

  /* phase 2: idle, every node knowing N-1 peers */
  pid_t idle = g_pids[2];
  double cpu0 = proc_cpu_s(idle), rcpu0 = proc_cpu_s(g_ref);
  sleep((unsigned)idle_s);
  double cpu1 = proc_cpu_s(idle), rcpu1 = proc_cpu_s(g_ref);
  long rss = proc_rss_kib(idle), rrss = proc_rss_kib(g_ref);
  double cpu_pct = (cpu1 - cpu0) / idle_s * 100.0;
  double rcpu_pct = (rcpu1 - rcpu0) / idle_s * 100.0;

  /* phase 3: a clean stop of node 0 */
  kill(g_pids[0], SIGUSR1);
  uint64_t ts[1] = {0};
  uint64_t *tl = calloc((size_t)g_peers, sizeof *tl);
  report r;
  for (;;) { /* its own "stopping" timestamp */
    if (read(rep[0], &r, sizeof r) != (ssize_t)sizeof r)
      return 1;
    if (r.kind == R_STOPPING && r.child == 0) {
      ts[0] = r.t_ns;
      break;
    }
  }
  got = collect(rep[0], R_GOODBYE, g_peers - 1, tl, now_ns() + long_wait, 0);
  if (got != g_peers - 1) {
    fprintf(stderr, "only %d of %d saw the goodbye\n", got, g_peers - 1);
    return 1;
  }
  uint64_t worst = 0;
  for (int i = 1; i < g_peers; i++)
    if (tl[i] - ts[0] > worst)
      worst = tl[i] - ts[0];
  double stop_ms = (double)worst / 1e6;

  /* phase 4: node 1 killed */
  uint64_t tk = now_ns();
  kill(g_pids[1], SIGKILL);
  memset(tl, 0, (size_t)g_peers * sizeof *tl);
  uint64_t limit = tk + 6ull * g_interval_ms * 1000000ull;
  got = collect(rep[0], R_EXPIRED, g_peers - 2, tl, limit, 1);
  if (got != g_peers - 2) {
    fprintf(stderr, "only %d of %d saw the killed peer expire\n", got,
            g_peers - 2);
    return 1;
  }
  worst = 0;
  for (int i = 2; i < g_peers; i++)
    if (tl[i] - tk > worst)
      worst = tl[i] - tk;
  double kill_s = (double)worst / 1e9;

  /* stop the others cleanly */
  for (int i = 2; i < g_peers; i++)
    kill(g_pids[i], SIGTERM);

  printf("| figure | target | measured | reference (same run) |\n");
  printf("| --- | --- | --- | --- |\n");
  printf("| %d peers started at once: all see all | < 1 s | %.1f ms (median "
         "node %.1f ms) | loopback UDP round trip %.0f us |\n",
         g_peers, disc_max_ms, disc_med_ms, rtt);
  printf("| clean stop seen by all %d others | < 100 ms | %.2f ms | - |\n",
         g_peers - 1, stop_ms);
  printf("| killed peer expired at all %d others | < 3 intervals | %.2f s = "
         "%.2f intervals of %u ms | - |\n",
         g_peers - 2, kill_s, kill_s * 1000.0 / g_interval_ms, g_interval_ms);
  printf("| idle node with %d known peers: resident memory | < 8 MiB | %.1f "
         "MiB | same binary, loop only: %.1f MiB |\n",
         g_peers - 1, rss / 1024.0, rrss / 1024.0);
  printf("| idle node with %d known peers: CPU over %d s | not measurable | "
         "%.3f%% of a core | loop only: %.3f%% |\n",
         g_peers - 1, idle_s, cpu_pct, rcpu_pct);
  printf("bench discovery_all_ms=%.1f stop_ms=%.2f kill_intervals=%.2f "
         "idle_rss_kib=%ld ref_rss_kib=%ld idle_cpu_pct=%.3f rtt_us=%.0f\n",
         disc_max_ms, stop_ms, kill_s * 1000.0 / g_interval_ms, rss, rrss,
         cpu_pct, rtt);
  int ok = disc_max_ms < 1000 && stop_ms < 100 &&
           kill_s * 1000.0 <= 3.0 * g_interval_ms + 100 && rss < 8 * 1024;
  return ok ? 0 : 1;
}
