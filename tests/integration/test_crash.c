/* test_crash.c: exactly once, in order, whatever dies.  A sender process
 * and a receiver process, each one node on 127.0.0.1, are killed with
 * SIGKILL at random moments (at least 20 times in all) and restarted; the
 * sender keeps writing numbered messages.  At the end every message sent
 * is in both histories exactly once, in order.  Nothing leaves the
 * machine.  LC_CRASH_SEED=<n> replays a run's choice of moments. */
#include <errno.h>
#include <signal.h>
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

#define TOTAL 300   /* messages the sender writes */
#define KILLS 24    /* at least 20 */
#define EVERY_MS 25 /* the sender writes one message this often */

static char g_dir[2][96];
static uint16_t g_port;
static uint8_t g_key[2][LC_KEY_BYTES];

static void die(const char *what) {
  fprintf(stderr, "test_crash: %s\n", what);
  exit(1);
}

static uint16_t free_port(void) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0)
    die("bind");
  socklen_t len = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &len);
  close(fd);
  return ntohs(a.sin_port);
}

static void options(lc_node_options *o, int who, void *user) {
  lc_node_options_init(o);
  o->data_dir = g_dir[who];
  o->nickname = who == 0 ? "sender" : "receiver";
  o->discovery_port = g_port;
  o->bind_v4 = "127.0.0.1";
  o->bind_v6 = "";
  o->interfaces = "lo";
  o->broadcast = "127.255.255.255";
  o->announce_interval_ms = 1000;
  o->user_data = user;
}

/* ---- the children ----------------------------------------------------------
 */

typedef struct {
  uv_loop_t loop;
  uv_timer_t tick;
  uv_signal_t term;
  lc_node *node;
  int who, next, done;
} child;

/* How many messages the sender wrote before (its history says), and how
 * many of them the receiver has. */
static void sender_count(child *c, int *written, int *delivered) {
  lc_msg_info *m;
  size_t n;
  *written = *delivered = 0;
  if (lc_history_page(c->node, g_key[1], 0, TOTAL + 10, &m, &n) < 0)
    return;
  for (size_t i = 0; i < n; i++) {
    (*written)++;
    if (m[i].state == LC_MSG_DELIVERED || m[i].state == LC_MSG_READ)
      (*delivered)++;
  }
  lc_msgs_free(m, n);
}

static void child_tick(uv_timer_t *t) {
  child *c = t->data;
  if (c->who != 0 || c->done)
    return;
  if (c->next <= TOTAL) {
    char text[32];
    snprintf(text, sizeof text, "msg-%05d", c->next);
    if (lc_send_text(c->node, g_key[1], text, strlen(text), NULL) == 0)
      c->next++;
    return;
  }
  int written, delivered;
  sender_count(c, &written, &delivered);
  if (delivered == TOTAL) {
    char path[128];
    snprintf(path, sizeof path, "%s/done", g_dir[0]);
    FILE *f = fopen(path, "w");
    if (f)
      fclose(f);
    c->done = 1;
  }
}

static void child_stopped(lc_node *node, void *user) {
  (void)node;
  child *c = user;
  uv_close((uv_handle_t *)&c->tick, NULL);
  uv_close((uv_handle_t *)&c->term, NULL);
}

static void child_term(uv_signal_t *s, int signum) {
  (void)signum;
  child *c = s->data;
  uv_signal_stop(s);
  if (lc_node_stop(c->node, child_stopped) < 0)
    child_stopped(c->node, c);
}

static int child_main(int who) {
  static child c;
  c.who = who;
  uv_loop_init(&c.loop);
  lc_node_options o;
  options(&o, who, &c);
  if (lc_node_new(&c.node, &c.loop, &o) < 0)
    return 2;
  if (who == 0) {
    int written, delivered;
    sender_count(&c, &written, &delivered);
    c.next = written + 1; /* what is in the history was written */
  }
  if (lc_node_start(c.node) < 0)
    return 2;
  uv_timer_init(&c.loop, &c.tick);
  c.tick.data = &c;
  uv_timer_start(&c.tick, child_tick, EVERY_MS, who == 0 ? EVERY_MS : 1000);
  uv_signal_init(&c.loop, &c.term);
  c.term.data = &c;
  uv_signal_start(&c.term, child_term, SIGTERM);
  uv_run(&c.loop, UV_RUN_DEFAULT);
  lc_node_free(c.node);
  return uv_loop_close(&c.loop) == 0 ? 0 : 3;
}

static pid_t spawn(int who) {
  fflush(stdout);
  pid_t p = fork();
  if (p < 0)
    die("fork");
  if (p == 0)
    _exit(child_main(who));
  return p;
}

/* ---- the parent
 * -------------------------------------------------------------- */

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
    ;
}

/* Creates the node's data folder and identity, and reads its key. */
static void prepare(int who) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  lc_node_options o;
  options(&o, who, NULL);
  lc_node *n;
  if (lc_node_new(&n, &loop, &o) < 0)
    die("lc_node_new");
  lc_node_key(n, g_key[who]);
  lc_node_free(n);
  uv_loop_close(&loop);
}

/* The texts of a history, oldest first, with the direction expected. */
static int check_history(int who) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  lc_node_options o;
  options(&o, who, NULL);
  lc_node *n;
  if (lc_node_new(&n, &loop, &o) < 0)
    die("lc_node_new (check)");
  lc_msg_info *m;
  size_t count;
  if (lc_history_page(n, g_key[1 - who], 0, 10 * TOTAL, &m, &count) < 0)
    die("lc_history_page");
  int bad = 0;
  if (count != TOTAL) {
    fprintf(stderr, "%s: %zu messages in the history, expected %d\n",
            who ? "receiver" : "sender", count, TOTAL);
    bad = 1;
  }
  for (size_t i = 0; i < count && !bad; i++) {
    char want[32];
    /* pages are newest first */
    snprintf(want, sizeof want, "msg-%05d", (int)(count - i));
    if (strcmp(m[i].text, want) != 0 || m[i].outgoing != (who == 0)) {
      fprintf(stderr, "%s: position %zu holds \"%s\", expected \"%s\"\n",
              who ? "receiver" : "sender", count - i, m[i].text, want);
      bad = 1;
    }
  }
  lc_msgs_free(m, count);
  lc_node_free(n);
  uv_loop_close(&loop);
  return bad;
}

static void rm_tree(const char *dir) {
  const char *files[] = {"identity.key", "history.db", "history.db-wal",
                         "history.db-shm", "done"};
  char path[160];
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, files[i]);
    unlink(path);
  }
  rmdir(dir);
}

int main(void) {
  const char *seed_s = getenv("LC_CRASH_SEED");
  unsigned seed = seed_s ? (unsigned)strtoul(seed_s, NULL, 10)
                         : (unsigned)time(NULL) ^ (unsigned)getpid();
  printf("test_crash: seed %u (LC_CRASH_SEED to replay the moments)\n", seed);
  srand(seed);
  for (int i = 0; i < 2; i++) {
    snprintf(g_dir[i], sizeof g_dir[i], "/tmp/lc-test-crash-XXXXXX");
    if (!mkdtemp(g_dir[i]))
      die("mkdtemp");
  }
  g_port = free_port();
  prepare(0);
  prepare(1);

  pid_t pid[2] = {spawn(0), spawn(1)};
  int kills[2] = {0, 0};
  for (int k = 0; k < KILLS; k++) {
    sleep_ms(60 + rand() % 400);
    int who = rand() % 2;
    kill(pid[who], SIGKILL);
    waitpid(pid[who], NULL, 0);
    kills[who]++;
    sleep_ms(rand() % 250); /* down for a while: the other keeps going */
    pid[who] = spawn(who);
  }
  printf("test_crash: killed the sender %d times, the receiver %d times\n",
         kills[0], kills[1]);

  /* now let them finish: the sender marks its folder when the receiver has
   * confirmed every message */
  char done[160];
  snprintf(done, sizeof done, "%s/done", g_dir[0]);
  int finished = 0;
  for (int i = 0; i < 600 && !finished; i++) { /* 60 s at most */
    sleep_ms(100);
    finished = access(done, F_OK) == 0;
  }
  for (int i = 0; i < 2; i++) {
    kill(pid[i], SIGTERM);
    int st;
    waitpid(pid[i], &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      fprintf(stderr, "child %d did not stop cleanly (status %d)\n", i, st);
      finished = 0;
    }
  }
  if (!finished)
    fprintf(stderr, "the sender never saw all %d messages delivered\n", TOTAL);
  int bad = check_history(0) | check_history(1);
  rm_tree(g_dir[0]);
  rm_tree(g_dir[1]);
  if (!finished || bad) {
    printf("test_crash: FAILED (seed %u)\n", seed);
    return 1;
  }
  printf("test_crash: %d messages in both histories exactly once, in order\n",
         TOTAL);
  return 0;
}
