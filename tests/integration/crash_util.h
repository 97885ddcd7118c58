/* crash_util.h: what the kill tests (test_crash_files.c, test_crash_group.c)
 * share: N peer processes on 127.0.0.1 only (broadcast 127.255.255.255,
 * interface "lo", a discovery port picked free for the run), each one
 * lc_node in a forked child that SIGTERM stops cleanly, SIGKILLed and
 * restarted by the parent at moments drawn from a seeded generator.
 * Header-only: every function is static. */
#ifndef LC_TEST_CRASH_UTIL_H
#define LC_TEST_CRASH_UTIL_H

#define _GNU_SOURCE /* nftw */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <uv.h>

#include "lanchat.h"
#include "node_options.h"

#define CRASH_MAX 4 /* processes */

typedef struct {
  const char *name; /* the test's, for messages */
  int n;            /* processes */
  char dir[CRASH_MAX][64];
  uint8_t key[CRASH_MAX][LC_KEY_BYTES];
  uint16_t port;
  unsigned seed;
  int (*child_main)(int who);   /* runs in the forked child */
  void (*before_kill)(int who); /* may be NULL: notes what a kill cuts */
  int (*busy)(void); /* may be NULL: every other kill waits for it (1.5 s
                        at most), to land in the middle of something */
  pid_t pid[CRASH_MAX];
  int kills[CRASH_MAX];      /* by the parent */
  int self_kills[CRASH_MAX]; /* by the child itself (crash_self_kill) */
  int failed;                /* a child exited on its own */
} crash_run;

static crash_run g_run;

static inline void crash_die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: ", g_run.name);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, " (seed %u)\n", g_run.seed);
  va_end(ap);
  exit(1);
}

static inline uint16_t crash_free_port(void) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0)
    crash_die("bind");
  socklen_t len = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &len);
  close(fd);
  return ntohs(a.sin_port);
}

static inline void crash_sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
    ;
}

/* Loopback only: never the machine's real interfaces. */
static inline void crash_options(lc_node_options *o, int who, const char *nick,
                                 void *user) {
  test_node_options(o, g_run.dir[who], nick, g_run.port, 1000, NULL, NULL,
                    NULL);
  o->user_data = user;
}

static inline void crash_path(char *out, size_t cap, int who,
                              const char *name) {
  snprintf(out, cap, "%s/%s", g_run.dir[who], name);
}

static inline int crash_exists(int who, const char *name) {
  char p[192];
  crash_path(p, sizeof p, who, name);
  return access(p, F_OK) == 0;
}

static inline void crash_touch(int who, const char *name) {
  char p[192];
  crash_path(p, sizeof p, who, name);
  int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd >= 0)
    close(fd);
}

/* Appends one line to a child's log with a single write(): a SIGKILL
 * loses no more than the line being written (the page cache outlives
 * the process). */
static inline void crash_log_line(int who, const char *name, const char *line) {
  char p[192];
  crash_path(p, sizeof p, who, name);
  int fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0)
    return;
  char buf[256];
  int len = snprintf(buf, sizeof buf, "%s\n", line);
  if (len > 0 && write(fd, buf, (size_t)len) < 0)
    perror("write");
  close(fd);
}

/* ---- a child: one node on its loop until SIGTERM -------------------------
 */

typedef struct crash_child {
  uv_loop_t loop;
  uv_timer_t tick;
  uv_signal_t term;
  lc_node *node;
  int who;
  void (*on_tick)(struct crash_child *c);
} crash_child;

static inline void crash_child_tick(uv_timer_t *t) {
  crash_child *c = t->data;
  c->on_tick(c);
}

static inline void crash_child_stopped(lc_node *node, void *user) {
  (void)node;
  crash_child *c = user;
  uv_close((uv_handle_t *)&c->tick, NULL);
  uv_close((uv_handle_t *)&c->term, NULL);
}

static inline void crash_child_term(uv_signal_t *s, int signum) {
  (void)signum;
  crash_child *c = s->data;
  uv_signal_stop(s);
  uv_timer_stop(&c->tick);
  if (lc_node_stop(c->node, crash_child_stopped) < 0)
    crash_child_stopped(c->node, c);
}

/* Starts c->node (made with user_data c), ticks every tick_ms until
 * SIGTERM, then stops and frees it: the child's exit status. */
static inline int crash_child_run(crash_child *c, uint64_t tick_ms) {
  if (lc_node_start(c->node) < 0)
    return 2;
  uv_timer_init(&c->loop, &c->tick);
  c->tick.data = c;
  uv_timer_start(&c->tick, crash_child_tick, tick_ms, tick_ms);
  uv_signal_init(&c->loop, &c->term);
  c->term.data = c;
  uv_signal_start(&c->term, crash_child_term, SIGTERM);
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  sigprocmask(SIG_UNBLOCK, &term, NULL);
  uv_run(&c->loop, UV_RUN_DEFAULT);
  lc_node_free(c->node);
  return uv_loop_close(&c->loop) == 0 ? 0 : 3;
}

/* ---- the parent ------------------------------------------------------------
 */

static inline void crash_spawn(int who) {
  fflush(stdout);
  fflush(stderr);
  /* the child starts with SIGTERM blocked: one that comes before its loop
   * listens waits for it */
  sigset_t term, old;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  sigprocmask(SIG_BLOCK, &term, &old);
  pid_t p = fork();
  if (p == 0)
    exit(g_run.child_main(who)); /* exit: the leak check runs */
  sigprocmask(SIG_SETMASK, &old, NULL);
  if (p < 0)
    crash_die("fork");
  g_run.pid[who] = p;
}

/* Starts again every child that died by itself: SIGKILLed at a moment it
 * chose (crash_self_kill); any other end is a failure. */
static inline void crash_reap(void) {
  int st;
  pid_t p;
  while ((p = waitpid(-1, &st, WNOHANG)) > 0)
    for (int i = 0; i < g_run.n; i++) {
      if (g_run.pid[i] != p)
        continue;
      if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) {
        g_run.self_kills[i]++;
      } else {
        fprintf(stderr, "%s: child %d ended (status %d)\n", g_run.name, i, st);
        g_run.failed = 1;
      }
      crash_spawn(i);
    }
}

/* Sleeps ms, reaping meanwhile. */
static inline void crash_idle_ms(long ms) {
  for (long t = 0; t < ms; t += 10) {
    crash_reap();
    crash_sleep_ms(ms - t < 10 ? ms - t : 10);
  }
  crash_reap();
}

/* In a child: dies at once, as a power cut would, if one draw out of
 * `one_in` says so (the draw: the seed, the child and n, so that a run
 * replays).  For the worst moments, right after an lc_ call returned and
 * before the loop ran again (what the call queued has not left). */
static inline void crash_self_kill(int who, unsigned n, unsigned one_in) {
  uint64_t x = ((uint64_t)g_run.seed << 32 ^ (uint64_t)who << 24 ^ n) *
               0x9e3779b97f4a7c15ull;
  x ^= x >> 29;
  if ((x >> 7) % one_in == 0)
    raise(SIGKILL);
}

/* Picks the seed (LC_CRASH_SEED replays one), makes the data folders and
 * the identities, and reads the keys. */
static inline void crash_init(const char *name, int n, int (*child_main)(int)) {
  g_run.name = name;
  g_run.n = n;
  g_run.child_main = child_main;
  const char *s = getenv("LC_CRASH_SEED");
  g_run.seed = s ? (unsigned)strtoul(s, NULL, 10)
                 : (unsigned)time(NULL) ^ (unsigned)getpid();
  printf("%s: seed %u (LC_CRASH_SEED to replay the moments)\n", name,
         g_run.seed);
  srand(g_run.seed);
  for (int i = 0; i < n; i++) {
    snprintf(g_run.dir[i], sizeof g_run.dir[i], "/tmp/lc-%s-XXXXXX", name);
    if (!mkdtemp(g_run.dir[i]))
      crash_die("mkdtemp");
    if (lc_identity_create(g_run.dir[i], NULL, g_run.key[i]) < 0)
      crash_die("lc_identity_create");
  }
  g_run.port = crash_free_port();
}

/* kills SIGKILLs, each after 60..459 ms, of a process drawn at random
 * (weights[i] out of the weights' sum; NULL: all alike), down for 0..249
 * ms while the others go on, then started again. */
static inline void crash_kill_loop(int kills, const int *weights) {
  int sum = 0;
  for (int i = 0; i < g_run.n; i++)
    sum += weights ? weights[i] : 1;
  for (int k = 0; k < kills; k++) {
    crash_idle_ms(60 + rand() % 400);
    for (int t = 0; g_run.busy && k % 2 && t < 300 && !g_run.busy(); t++)
      crash_idle_ms(5);
    int r = rand() % sum, who = 0;
    while (r >= (weights ? weights[who] : 1)) {
      r -= weights ? weights[who] : 1;
      who++;
    }
    if (g_run.before_kill)
      g_run.before_kill(who);
    kill(g_run.pid[who], SIGKILL);
    waitpid(g_run.pid[who], NULL, 0);
    g_run.kills[who]++;
    crash_idle_ms(rand() % 250);
    crash_spawn(who);
  }
}

/* Waits until done(), at most timeout_ms: 1 if it held. */
static inline int crash_wait(int (*done)(void), long timeout_ms) {
  for (long t = 0; t < timeout_ms; t += 100) {
    if (done())
      return 1;
    crash_idle_ms(100);
  }
  return done();
}

/* SIGTERM to every child: 0 if all stopped cleanly. */
static inline int crash_stop_all(void) {
  crash_reap();
  int bad = g_run.failed;
  for (int i = 0; i < g_run.n; i++) {
    kill(g_run.pid[i], SIGTERM);
    int st;
    waitpid(g_run.pid[i], &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      fprintf(stderr, "%s: child %d did not stop cleanly (status %d)\n",
              g_run.name, i, st);
      bad = 1;
    }
  }
  return bad;
}

/* A node on a loop of its own, for the parent's checks once the children
 * are gone. */
typedef struct {
  uv_loop_t loop;
  lc_node *node;
} crash_reader;

static inline void crash_open(crash_reader *r, int who) {
  uv_loop_init(&r->loop);
  lc_node_options o;
  crash_options(&o, who, "reader", NULL);
  if (lc_node_new(&r->node, &r->loop, &o) < 0)
    crash_die("lc_node_new (check %d)", who);
}

static inline void crash_close(crash_reader *r) {
  lc_node_free(r->node);
  uv_loop_close(&r->loop);
}

static inline int crash_rm_one(const char *p, const struct stat *sb, int flag,
                               struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  remove(p);
  return 0;
}

static inline void crash_rm_tree(const char *dir) {
  nftw(dir, crash_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

#endif /* LC_TEST_CRASH_UTIL_H */
