/* bench_discovery.c: lanchat-bench-discovery, the discovery and memory
 * figures of the README, measured on loopback only (unicast 127.0.0.1,
 * broadcast 127.255.255.255, a discovery port picked free for the run).
 *
 * Discovery (the default): N processes (default 51), one node each, are
 * released at the same instant; the parent measures how long until every
 * node sees every other, how a long idle node's memory and CPU look with
 * N-1 known peers (--idle-s; 0 skips it), how fast a clean stop is seen,
 * and how fast a killed peer expires.  References measured in the same
 * run: the loopback UDP round trip, and the memory and CPU of an idle
 * process with the same libraries but no node.
 *
 * Memory (--lanchatd PATH --lanchat PATH): a real daemon, lanchatd, on
 * the same loopback LAN (its own data folder, --bind 127.0.0.1,
 * --interfaces lo, --broadcast 127.255.255.255, the run's discovery port,
 * the default announcement interval): its resident memory idle with no
 * peer, then with the N node processes (--peers, default 50) all seen,
 * each after --idle-s seconds (default 5) of idling; the reference is the
 * same idle loop-only process.
 *
 *   lanchat-bench-discovery [--peers N] [--interval-ms MS] [--idle-s S]
 *                           [--lanchatd PATH --lanchat PATH]
 *
 * Output: key=value lines on stdout, disc.nN.* (N nodes) or mem.*, one
 * run; exit status 0 when every figure was measured (tools/bench judges
 * the goals).  SIGINT or SIGTERM kill every process it started. */
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
#include "node_options.h"

enum { R_READY = 1, R_ALL = 2, R_STOPPING = 3, R_GOODBYE = 4, R_EXPIRED = 5 };

typedef struct {
  int child;
  int kind;
  uint64_t t_ns;
  int about; /* the child a LEFT is about */
} report;

static int g_peers = 51;
static int g_expect; /* the peers each node waits for */
static uint32_t g_interval_ms = 5000;
static uint16_t g_dport;
static char g_root[200];

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
    if (c->seen == g_expect && !c->all_sent) {
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

/* A forked child drops the parent's handlers (which kill everything). */
static void child_signals(void) {
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  signal(SIGHUP, SIG_DFL);
}

static int child_main(int id, int go_fd, int out) {
  static child_state c;
  child_signals();
  c.id = id;
  c.out = out;
  char dir[256], nick[16];
  snprintf(dir, sizeof dir, "%s/n%d", g_root, id);
  snprintf(nick, sizeof nick, "n%d", id);
  lc_node_options o;
  test_node_options(&o, dir, nick, g_dport, g_interval_ms, NULL, NULL, NULL);
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
  child_signals();
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
static pid_t g_ref, g_daemon;

/* Kills every process started, waits for them, removes the folder; from
 * atexit and from a signal (only async-signal-safe calls). */
static void kill_all(void) {
  for (int i = 0; g_pids && i < g_peers; i++)
    if (g_pids[i] > 0)
      kill(g_pids[i], SIGKILL);
  if (g_ref > 0)
    kill(g_ref, SIGKILL);
  if (g_daemon > 0)
    kill(g_daemon, SIGKILL);
  while (wait(NULL) > 0 || errno == EINTR)
    ;
  if (g_root[0]) {
    pid_t p = fork();
    if (p == 0) {
      execlp("rm", "rm", "-rf", g_root, (char *)NULL);
      _exit(127);
    }
    if (p > 0)
      waitpid(p, NULL, 0);
  }
}

static void cleanup(void) {
  kill_all();
}

static void on_signal(int sig) {
  kill_all();
  _exit(128 + sig);
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

/* ---- the memory benchmark: a real lanchatd ------------------------------- */

/* Runs argv to its end, its stdout into out (up to size - 1 bytes, NUL
 * terminated; NULL: discarded); its exit status, or -1. */
static int run_cmd(char *const argv[], char *out, size_t size) {
  int fds[2];
  if (pipe(fds) < 0)
    return -1;
  pid_t p = fork();
  if (p < 0)
    return -1;
  if (p == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    execv(argv[0], argv);
    _exit(127);
  }
  close(fds[1]);
  size_t n = 0;
  char buf[4096];
  ssize_t k;
  while ((k = read(fds[0], buf, sizeof buf)) > 0 || (k < 0 && errno == EINTR))
    for (ssize_t j = 0; j < k; j++)
      if (out && n + 1 < size)
        out[n++] = buf[j];
  if (out)
    out[n] = 0;
  close(fds[0]);
  int st;
  if (waitpid(p, &st, 0) != p)
    return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* How many peers the daemon lists as online (`lanchat --json peers`). */
static int daemon_online(const char *lanchat, const char *dir) {
  static char out[1 << 20];
  char *argv[] = {(char *)lanchat, "--data-dir", (char *)dir,
                  "--json",        "peers",      NULL};
  if (run_cmd(argv, out, sizeof out) != 0)
    return -1;
  int n = 0;
  for (char *q = out; (q = strstr(q, "\"online\":true")); q++)
    n++;
  return n;
}

static int file_exists(const char *path) {
  return access(path, F_OK) == 0;
}

static int memory_main(const char *lanchatd, const char *lanchat, int idle_s) {
  char ddir[300], sock[320], port[16];
  snprintf(ddir, sizeof ddir, "%s/daemon", g_root);
  snprintf(sock, sizeof sock, "%s/control.sock", ddir);
  snprintf(port, sizeof port, "%u", (unsigned)g_dport);
  char *init[] = {(char *)lanchat, "--data-dir", ddir, "init",
                  "--nick",        "d",          NULL};
  if (run_cmd(init, NULL, 0) != 0) {
    fprintf(stderr, "memory: lanchat init failed\n");
    return 1;
  }
  g_daemon = fork();
  if (g_daemon == 0) {
    execl(lanchatd, lanchatd, "--data-dir", ddir, "--bind", "127.0.0.1",
          "--interfaces", "lo", "--broadcast", "127.255.255.255",
          "--discovery-port", port, "--foreground", (char *)NULL);
    _exit(127);
  }
  uint64_t until = now_ns() + 10000000000ull;
  while (!file_exists(sock) && now_ns() < until)
    usleep(10000);
  if (!file_exists(sock)) {
    fprintf(stderr, "memory: lanchatd did not start\n");
    return 1;
  }

  int go[2], rep[2];
  if (pipe(go) < 0 || pipe(rep) < 0)
    return 1;
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
    fprintf(stderr, "memory: not every node got ready\n");
    return 1;
  }
  /* the daemon alone, idle */
  double cpu0 = proc_cpu_s(g_daemon);
  sleep((unsigned)idle_s);
  long rss0 = proc_rss_kib(g_daemon);
  double idle_cpu = (proc_cpu_s(g_daemon) - cpu0) / idle_s * 100.0;
  int seen0 = daemon_online(lanchat, ddir);

  /* the N nodes at once; each waits for the N-1 others and the daemon */
  close(go[1]);
  int got = collect(rep[0], R_ALL, g_peers, t, now_ns() + long_wait, -1);
  if (got != g_peers) {
    fprintf(stderr, "memory: only %d of %d nodes saw everyone\n", got, g_peers);
    return 1;
  }
  cpu0 = proc_cpu_s(g_daemon);
  double rcpu0 = proc_cpu_s(g_ref);
  sleep((unsigned)idle_s);
  long rss = proc_rss_kib(g_daemon), rrss = proc_rss_kib(g_ref);
  long node_rss = proc_rss_kib(g_pids[0]);
  double cpu = (proc_cpu_s(g_daemon) - cpu0) / idle_s * 100.0;
  double rcpu = (proc_cpu_s(g_ref) - rcpu0) / idle_s * 100.0;
  int seen = daemon_online(lanchat, ddir);
  if (rss0 < 0 || rss < 0 || rrss < 0) {
    fprintf(stderr, "memory: could not read /proc\n");
    return 1;
  }
  printf("mem.peers_n=%d\nmem.daemon_seen_at_start_n=%d\n", g_peers, seen0);
  printf("mem.daemon_seen_n=%d\n", seen);
  printf("mem.daemon_idle_kib=%ld\nmem.daemon_peers_kib=%ld\n", rss0, rss);
  printf("mem.per_peer_kib=%.1f\n", (double)(rss - rss0) / g_peers);
  printf("mem.loop_kib=%ld\nmem.node_peers_kib=%ld\n", rrss, node_rss);
  printf("mem.daemon_idle_cpu_pct=%.3f\nmem.daemon_peers_cpu_pct=%.3f\n",
         idle_cpu, cpu);
  printf("mem.loop_cpu_pct=%.3f\n", rcpu);
  fprintf(stderr,
          "memory: lanchatd %ld KiB alone, %ld KiB with %d peers (%d seen); "
          "loop only %ld KiB\n",
          rss0, rss, g_peers, seen, rrss);
  kill(g_daemon, SIGTERM);
  waitpid(g_daemon, NULL, 0);
  g_daemon = 0;
  for (int i = 0; i < g_peers; i++)
    kill(g_pids[i], SIGTERM);
  return 0;
}

/* ---- the discovery benchmark --------------------------------------------- */

static int discovery_main(int idle_s) {
  int go[2], rep[2];
  if (pipe(go) < 0 || pipe(rep) < 0)
    return 2;
  double rtt = loopback_rtt_us();

  for (int i = 0; i < g_peers; i++) {
    pid_t p = fork();
    if (p == 0) {
      close(go[1]);
      close(rep[0]);
      _exit(child_main(i, go[0], rep[1]));
    }
    if (p < 0) {
      fprintf(stderr, "fork: %s\n", strerror(errno));
      return 1;
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
  int n = g_peers;
  printf("disc.n%d.all_ms=%.2f\ndisc.n%d.median_node_ms=%.2f\n", n, disc_max_ms,
         n, disc_med_ms);
  printf("disc.n%d.udp_rtt_us=%.1f\n", n, rtt);
  fflush(stdout);

  /* phase 2: idle, every node knowing N-1 peers */
  if (idle_s > 0) {
    pid_t idle = g_pids[2];
    double cpu0 = proc_cpu_s(idle), rcpu0 = proc_cpu_s(g_ref);
    sleep((unsigned)idle_s);
    double cpu1 = proc_cpu_s(idle), rcpu1 = proc_cpu_s(g_ref);
    long rss = proc_rss_kib(idle), rrss = proc_rss_kib(g_ref);
    double cpu_pct = (cpu1 - cpu0) / idle_s * 100.0;
    double rcpu_pct = (rcpu1 - rcpu0) / idle_s * 100.0;
    printf("disc.n%d.node_rss_kib=%ld\ndisc.n%d.loop_rss_kib=%ld\n", n, rss, n,
           rrss);
    printf("disc.n%d.node_cpu_pct=%.3f\ndisc.n%d.loop_cpu_pct=%.3f\n", n,
           cpu_pct, n, rcpu_pct);
    fflush(stdout);
  }

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
  printf("disc.n%d.stop_ms=%.2f\n", n, stop_ms);
  fflush(stdout);

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
  printf("disc.n%d.kill_ms=%.1f\ndisc.n%d.kill_intervals=%.3f\n", n,
         kill_s * 1000.0, n, kill_s * 1000.0 / g_interval_ms);
  printf("disc.n%d.interval_ms=%u\n", n, g_interval_ms);

  /* stop the others cleanly */
  for (int i = 2; i < g_peers; i++)
    kill(g_pids[i], SIGTERM);
  fprintf(stderr,
          "discovery: %d nodes: all see all after %.1f ms, clean stop seen "
          "after %.2f ms, kill after %.2f s\n",
          n, disc_max_ms, stop_ms, kill_s);
  return 0;
}

int main(int argc, char **argv) {
  static const struct option opts[] = {
      {"peers", 1, 0, 'n'},   {"interval-ms", 1, 0, 'i'},
      {"idle-s", 1, 0, 's'},  {"lanchatd", 1, 0, 'd'},
      {"lanchat", 1, 0, 'c'}, {0, 0, 0, 0}};
  int idle_s = -1, c, peers = -1;
  const char *lanchatd = NULL, *lanchat = NULL;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    if (c == 'n')
      peers = atoi(optarg);
    else if (c == 'i')
      g_interval_ms = (uint32_t)atoi(optarg);
    else if (c == 's')
      idle_s = atoi(optarg);
    else if (c == 'd')
      lanchatd = optarg;
    else if (c == 'c')
      lanchat = optarg;
    else
      return 2;
  }
  int memory = lanchatd != NULL;
  if (peers < 0)
    peers = memory ? 50 : 51;
  if (idle_s < 0)
    idle_s = memory ? 5 : 10;
  g_peers = peers;
  g_expect = memory ? g_peers : g_peers - 1;
  if (g_peers < 4 || g_peers > 500 || idle_s < 0 || (memory && idle_s < 1) ||
      (memory != (lanchat != NULL)) || g_interval_ms < 100) {
    fprintf(stderr, "usage: lanchat-bench-discovery [--peers 4..500] "
                    "[--interval-ms MS] [--idle-s S]\n"
                    "                               [--lanchatd PATH "
                    "--lanchat PATH]\n");
    return 2;
  }
  if (bench_mkdtemp(g_root, sizeof g_root, "disc") < 0) {
    fprintf(stderr, "cannot make a temporary folder\n");
    return 2;
  }
  g_dport = free_port();
  g_pids = calloc((size_t)g_peers, sizeof *g_pids);
  atexit(cleanup);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  return memory ? memory_main(lanchatd, lanchat, idle_s)
                : discovery_main(idle_s);
}
