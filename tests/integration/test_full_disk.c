/* test_full_disk.c: a full disk loses nothing and doubles nothing.  Two
 * nodes on 127.0.0.1 in one loop; the receiver's data folder is on a small
 * file system of its own (full_disk.sh mounts a 4 MiB tmpfs in a private
 * mount namespace and passes its path).  Once they chat, the test fills
 * that file system to the last byte; then:
 *   - the receiver cannot send (lc_send_text says LC_ESTORE, once
 *     SQLite's log must grow), and its history stays readable;
 *   - the sender's texts are not acknowledged (they stay SENT), the
 *     receiver counts the commits that failed (store_failures), and its
 *     application hears of none of them;
 * and once space returns, every text arrives exactly once, in order, each
 * reported DELIVERED to the sender, with nothing from before lost.
 *
 *   test_full_disk DIR   (DIR: an empty folder on a small file system) */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <uv.h>

#include "lanchat.h"
#include "node_options.h"

#define BEFORE 20 /* texts while there is space */
#define DURING 40 /* texts while the disk is full */

static uv_loop_t loop;
static lc_node *node[2];
static uint8_t key[2][LC_KEY_BYTES];
static int peers[2], stopped;
static int got; /* texts the receiver's application heard of */
static char texts[BEFORE + DURING][16];
static int delivered; /* DELIVERED reports at the sender */
static int order_ok = 1;

static void die(const char *what) {
  fprintf(stderr, "test_full_disk: %s\n", what);
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

static void on_peer(lc_node *n, lc_peer_event ev, const lc_peer_info *p,
                    int detail, void *u) {
  (void)p;
  (void)detail;
  (void)u;
  if (ev == LC_PEER_APPEARED)
    peers[n == node[1]]++;
}

static void on_message(lc_node *n, const lc_message *m, void *u) {
  (void)u;
  if (n != node[1])
    return;
  char want[16];
  snprintf(want, sizeof want, "t%03d", got);
  if (m->text_len != strlen(want) || memcmp(m->text, want, m->text_len) != 0)
    order_ok = 0; /* out of order, or twice */
  got++;
}

static void on_delivery(lc_node *n, const uint8_t *peer, const uint8_t *id,
                        lc_msg_state st, int err, void *u) {
  (void)peer;
  (void)id;
  (void)err;
  (void)u;
  if (n == node[0] && st == LC_MSG_DELIVERED)
    delivered++;
}

static void on_stop(lc_node *n, void *u) {
  (void)n;
  (void)u;
  stopped++;
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int w_peers(void) {
  return peers[0] >= 1 && peers[1] >= 1;
}
static int w_before(void) {
  return got >= BEFORE && delivered >= BEFORE;
}
static int w_all(void) {
  return got >= BEFORE + DURING && delivered >= BEFORE + DURING;
}
static int w_stopped(void) {
  return stopped >= 2;
}

static void run_until(int (*pred)(void), int ms, const char *what) {
  uint64_t end = now_ms() + (uint64_t)ms;
  while (!pred()) {
    if (now_ms() > end) {
      fprintf(stderr, "test_full_disk: timed out: %s (got %d, delivered %d)\n",
              what, got, delivered);
      exit(1);
    }
    uv_run(&loop, UV_RUN_NOWAIT);
    usleep(500);
  }
}

/* Runs the loop for ms. */
static void run_for(int ms) {
  uint64_t end = now_ms() + (uint64_t)ms;
  while (now_ms() < end) {
    uv_run(&loop, UV_RUN_NOWAIT);
    usleep(500);
  }
}

static lc_node *make(const char *dir, const char *nick, uint16_t dport) {
  lc_node_options o;
  test_node_options(&o, dir, nick, dport, 1000, NULL, NULL, NULL);
  o.no_read_receipts = 1;
  o.on_peer = on_peer;
  o.on_message = on_message;
  o.on_delivery = on_delivery;
  lc_node *n;
  int rc = lc_node_new(&n, &loop, &o);
  if (rc == 0)
    rc = lc_node_start(n);
  if (rc != 0) {
    fprintf(stderr, "test_full_disk: node %s: %s\n", nick, lc_strerror(rc));
    exit(1);
  }
  return n;
}

static int incoming(const lc_msg_info *m, size_t n) {
  int k = 0;
  for (size_t i = 0; i < n; i++)
    k += !m[i].outgoing;
  return k;
}

static void send_range(int from, int to) {
  for (int i = from; i < to; i++) {
    snprintf(texts[i], sizeof texts[i], "t%03d", i);
    if (lc_send_text(node[0], key[1], texts[i], strlen(texts[i]), NULL) != 0)
      die("the sender (with space) could not send");
  }
}

/* Writes zeros to path until the file system is full. */
static void fill(const char *path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    die("cannot create the filler");
  static char zero[65536];
  for (;;) {
    ssize_t w = write(fd, zero, sizeof zero);
    if (w < 0 && errno == ENOSPC)
      break;
    if (w < 0)
      die("cannot write the filler");
    if (w < (ssize_t)sizeof zero) {
      /* a short write: the last bytes, then ENOSPC */
      continue;
    }
  }
  for (;;) { /* and the last partial block */
    if (write(fd, zero, 1) < 0)
      break;
  }
  close(fd);
}

int main(int argc, char **argv) {
  if (argc != 2)
    die("usage: test_full_disk DIR");
  char dir_a[] = "/tmp/lc-full-disk-a-XXXXXX";
  if (!mkdtemp(dir_a))
    die("mkdtemp");
  char dir_b[512], filler[560];
  snprintf(dir_b, sizeof dir_b, "%s/bob", argv[1]);
  snprintf(filler, sizeof filler, "%s/filler", argv[1]);
  uv_loop_init(&loop);
  uint16_t dport = free_port();
  node[0] = make(dir_a, "alice", dport);
  node[1] = make(dir_b, "bob", dport);
  lc_node_key(node[0], key[0]);
  lc_node_key(node[1], key[1]);
  run_until(w_peers, 20000, "the two nodes meet");

  send_range(0, BEFORE);
  run_until(w_before, 20000, "the first texts arrive");

  /* the disk is full: bob cannot store, and says so */
  fill(filler);
  /* SQLite writes over what its log already holds; once the log must
   * grow, a commit fails */
  int sent_full = 0, rc = 0;
  while (sent_full < 5000 &&
         (rc = lc_send_text(node[1], key[0], "no room", 7, NULL)) == 0)
    sent_full++;
  if (rc != LC_ESTORE)
    die("sending on a full disk did not fail with LC_ESTORE");
  printf("full: bob's send failed with LC_ESTORE after %d\n", sent_full);
  send_range(BEFORE, BEFORE + DURING);
  run_for(1500);
  lc_node_stats st;
  lc_node_stats_get(node[1], &st);
  printf("full: %d heard, %d delivered, %llu failed commits\n", got, delivered,
         (unsigned long long)st.store_failures);
  if (st.store_failures == 0)
    die("no commit failed on a full disk (is DIR on a small file system?)");
  if (got != BEFORE || delivered != BEFORE)
    die("texts were heard of or acknowledged while they could not be stored");
  lc_msg_info *m;
  size_t n;
  if (lc_history_page(node[1], key[0], 0, 1000, &m, &n) != 0 ||
      incoming(m, n) != BEFORE || n != (size_t)(BEFORE + sent_full))
    die("the history before the disk filled is not intact");
  lc_msgs_free(m, n);

  /* space returns: everything arrives, once, in order */
  if (unlink(filler) != 0)
    die("cannot remove the filler");
  run_until(w_all, 30000, "the texts arrive once there is space");
  run_for(500); /* anything doubled would show now */
  if (!order_ok || got != BEFORE + DURING)
    die("a text arrived twice or out of order");
  if (lc_history_page(node[1], key[0], 0, 1000, &m, &n) != 0 ||
      incoming(m, n) != BEFORE + DURING)
    die("the receiver's history does not hold every text once");
  int k = BEFORE + DURING;
  for (size_t i = 0; i < n; i++) /* newest first */
    if (!m[i].outgoing && strcmp(m[i].text, texts[--k]) != 0)
      die("the receiver's history is out of order");
  lc_msgs_free(m, n);
  printf("space back: %d heard, %d delivered, all once, in order\n", got,
         delivered);

  lc_node_stop(node[0], on_stop);
  lc_node_stop(node[1], on_stop);
  run_until(w_stopped, 10000, "the nodes stop");
  lc_node_free(node[0]);
  lc_node_free(node[1]);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", dir_a, dir_b);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove the data folders\n");
  return 0;
}
