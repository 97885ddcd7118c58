/* bench_transfer.c: lanchat-bench-transfer, one node of the bulk-transfer
 * benchmark (tools/bench transfer runs a sender and a receiver, on two
 * netlab hosts or on loopback, and iperf3 on the same link as reference).
 *
 * The sender waits for the first peer it discovers, warms the session up
 * with one chat text, exchanges chat texts with it for --idle seconds (the
 * idle reference), then offers one file; the receiver accepts the offer
 * when it arrives.  All along, the sender sends a 100-byte text --chat-hz
 * times a second ("ping"), which the receiver answers at once ("pong",
 * with the moment it got the ping): both processes read the same
 * CLOCK_MONOTONIC (network namespaces share it), so the sender knows each
 * text's one-way delay in each direction, with the bulk data (ping) and
 * against it (pong), until it is shown to the peer's application.
 *
 * Goodput: the file's bytes over the receiver's time from lc_transfer_accept
 * until the transfer is DONE (every byte written and its hash verified).
 * CPU: getrusage (user + system) over the same span on the receiver, and
 * from just before lc_send_files until DONE on the sender (so hashing the
 * file counts wherever the library does it).
 *
 *   lanchat-bench-transfer --role send|recv --bind ADDR --bcast ADDR
 *       [--iface NAME] [--dport PORT] [--dir DATA] [--file PATH]
 *       [--timeout S] [--chat-hz N] [--idle S]
 *
 * Never start it with a real interface's address in the root namespace:
 * it announces on --bcast.  Output: key=value lines on stdout
 * (send.* and chat.* from the sender, recv.* from the receiver; also
 * recv.path=PATH, the received file, which is not a number), which
 * tools/bench turns into transfer.CASE.* figures; exit status 0 when the
 * transfer completed. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "bench_util.h"
#include "lanchat.h"
#include "node_options.h"

#define TEXT_LEN 100
#define GIB (1024.0 * 1024.0 * 1024.0)

enum { PH_WARM = 0, PH_IDLE = 1, PH_SETUP = 2, PH_BULK = 3, PH_AFTER = 4 };

typedef struct {
  uint64_t sent, at_peer, back; /* now_ns(); 0: not yet */
  int phase;
} ping;

static uv_loop_t loop;
static uv_timer_t tick;
static lc_node *node;
static int sender, stopped, verbose;
static double timeout_s = 120, idle_s = 2;
static unsigned chat_hz = 20;
static const char *file_path;

static uint8_t peer_key[LC_KEY_BYTES];
static int have_peer, peer_left;
static uint8_t xfer_id[LC_MSGID_BYTES];
static int offered, accepted, done, failed;
static uint64_t t_offer, t_start, t_done, t_deadline, t_idle_end, t_linger;
static uint64_t bytes_now, total;
static double cpu_start, cpu_done;
static char local_path[4096];

static ping *pings;
static size_t npings, maxpings;
static uint64_t pongs;
static int phase = PH_WARM;

static double cpu_now(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void vlog(const char *what) {
  if (verbose)
    fprintf(stderr, "[%s %.3f] %s\n", sender ? "send" : "recv",
            (double)now_ns() / 1e9, what);
}

/* ---- callbacks ------------------------------------------------------------
 */

static void on_peer(lc_node *n, lc_peer_event ev, const lc_peer_info *p,
                    int detail, void *u) {
  (void)n;
  (void)detail;
  (void)u;
  if (ev == LC_PEER_APPEARED && !have_peer) {
    memcpy(peer_key, p->key, LC_KEY_BYTES);
    have_peer = 1;
    vlog("peer appeared");
  } else if (ev == LC_PEER_LEFT && have_peer &&
             memcmp(p->key, peer_key, LC_KEY_BYTES) == 0) {
    peer_left = 1;
    vlog("peer left");
  }
}

static void send_padded(const char *head) {
  char text[TEXT_LEN + 1];
  size_t h = strlen(head);
  memcpy(text, head, h);
  memset(text + h, 'x', TEXT_LEN - h);
  text[TEXT_LEN] = 0;
  int rc = lc_send_text(node, peer_key, text, TEXT_LEN, NULL);
  if (rc < 0 && verbose)
    fprintf(stderr, "lc_send_text: %s\n", lc_strerror(rc));
}

static void on_message(lc_node *n, const lc_message *m, void *u) {
  (void)n;
  (void)u;
  if (m->kind != LC_KIND_TEXT || m->text_len < 6)
    return;
  uint64_t t = now_ns();
  unsigned seq;
  unsigned long long sent, at_peer;
  if (!sender && sscanf(m->text, "ping %u %llu", &seq, &sent) == 2) {
    if (!have_peer) { /* a ping before its announcement: answer anyway */
      memcpy(peer_key, m->from, LC_KEY_BYTES);
      have_peer = 1;
    }
    char head[64];
    snprintf(head, sizeof head, "pong %u %llu %llu ", seq, sent,
             (unsigned long long)t);
    send_padded(head);
  } else if (sender &&
             sscanf(m->text, "pong %u %llu %llu", &seq, &sent, &at_peer) == 3 &&
             seq < npings && pings[seq].back == 0) {
    pings[seq].at_peer = at_peer;
    pings[seq].back = t;
    pongs++;
    if (phase == PH_WARM) {
      phase = PH_IDLE;
      t_idle_end = t + (uint64_t)(idle_s * 1e9);
      vlog("session warm: idle chat");
    }
  }
}

static void on_transfer(lc_node *n, lc_transfer_event ev,
                        const lc_transfer_info *t, int detail, void *u) {
  (void)u;
  (void)detail;
  if (offered && memcmp(t->id, xfer_id, LC_MSGID_BYTES) != 0)
    return;
  uint64_t now = now_ns();
  if (ev == LC_TRANSFER_OFFER && !sender && !offered) {
    memcpy(xfer_id, t->id, LC_MSGID_BYTES);
    offered = 1;
    total = t->total;
    t_start = now_ns();
    cpu_start = cpu_now();
    int rc = lc_transfer_accept(n, t->id);
    if (rc < 0) {
      fprintf(stderr, "lc_transfer_accept: %s\n", lc_strerror(rc));
      failed = 1;
      return;
    }
    accepted = 1;
    t_deadline = t_start + (uint64_t)((timeout_s + 10) * 1e9);
    vlog("offer accepted");
    return;
  }
  if (!offered)
    return;
  total = t->total;
  if (t->bytes > bytes_now)
    bytes_now = t->bytes;
  if (ev == LC_TRANSFER_FILE && t->files && (size_t)detail < t->nfiles &&
      t->files[detail].local)
    snprintf(local_path, sizeof local_path, "%s", t->files[detail].local);
  if (sender && !accepted &&
      (t->state == LC_TRANSFER_ACCEPTED || ev == LC_TRANSFER_PROGRESS)) {
    accepted = 1;
    t_start = now;
    phase = PH_BULK;
    vlog("accepted by the peer");
  }
  if (ev == LC_TRANSFER_PROGRESS && verbose) {
    char line[96];
    snprintf(line, sizeof line, "%llu of %llu bytes, %.1f Mbit/s",
             (unsigned long long)t->bytes, (unsigned long long)t->total,
             (double)t->rate * 8 / 1e6);
    vlog(line);
  }
  if (ev != LC_TRANSFER_CHANGED || done || failed)
    return;
  if (t->state == LC_TRANSFER_DONE) {
    done = 1;
    t_done = now;
    cpu_done = cpu_now();
    bytes_now = t->total;
    phase = PH_AFTER;
    t_linger = now + 10000000000ull;
    if (t->files && t->nfiles > 0 && t->files[0].local && !local_path[0] &&
        !sender)
      snprintf(local_path, sizeof local_path, "%s", t->files[0].local);
    vlog("done");
  } else if (t->state == LC_TRANSFER_DECLINED ||
             t->state == LC_TRANSFER_CANCELLED ||
             t->state == LC_TRANSFER_FAILED) {
    fprintf(
        stderr, "transfer %s: %s (by %s)\n", lc_transfer_state_name(t->state),
        t->error ? lc_strerror(t->error) : "-", t->by_peer ? "the peer" : "us");
    failed = 1;
  }
}

static void on_stop(lc_node *n, void *u) {
  (void)n;
  (void)u;
  stopped = 1;
}

static void on_log(lc_node *n, int level, const char *msg, void *u) {
  (void)n;
  (void)u;
  if (level <= 1 || verbose > 1)
    fprintf(stderr, "[%s log %d] %s\n", sender ? "send" : "recv", level, msg);
}

/* ---- the sender's clock: pings, the offer ----------------------------------
 */

static void send_ping(void) {
  if (npings >= maxpings)
    return;
  char head[64];
  uint64_t t = now_ns();
  snprintf(head, sizeof head, "ping %zu %llu ", npings, (unsigned long long)t);
  pings[npings].sent = t;
  pings[npings].phase = phase;
  npings++;
  send_padded(head);
}

static void offer(void) {
  t_offer = now_ns();
  cpu_start = cpu_now();
  const char *paths[1] = {file_path};
  int rc = lc_send_files(node, peer_key, paths, 1, xfer_id);
  if (rc < 0) {
    fprintf(stderr, "lc_send_files: %s\n", lc_strerror(rc));
    failed = 1;
    return;
  }
  offered = 1;
  phase = PH_SETUP;
  t_deadline = now_ns() + (uint64_t)(timeout_s * 1e9);
  vlog("offered");
}

static void on_tick(uv_timer_t *h) {
  (void)h;
  if (!sender || !have_peer || failed)
    return;
  uint64_t t = now_ns();
  if (phase == PH_WARM) {
    if (npings == 0 || t - pings[npings - 1].sent > 1000000000ull)
      send_ping(); /* again each second until the session is up */
    return;
  }
  if (phase == PH_IDLE && t >= t_idle_end) {
    offer();
    if (failed)
      return;
  }
  if (phase != PH_AFTER)
    send_ping();
}

/* ---- loop helpers -----------------------------------------------------------
 */

static int pred_stopped(void) {
  return stopped;
}

static void run_until(int (*pred)(void), uint64_t deadline) {
  while (!pred() && now_ns() < deadline)
    uv_run(&loop, UV_RUN_ONCE);
}

static int send_finished(void) {
  if (failed)
    return 1;
  if (done)
    return 1;
  return t_deadline && now_ns() >= t_deadline;
}

/* The receiver stops once the sender has left (it stops after DONE or at
 * its own deadline), or 10 s after DONE, or at its deadline. */
static int recv_finished(void) {
  if (failed || peer_left)
    return 1;
  if (done)
    return now_ns() >= t_linger;
  return now_ns() >= t_deadline;
}

static int all_answered(void) {
  for (size_t i = 0; i < npings; i++)
    if (!pings[i].back)
      return 0;
  return 1;
}

/* ---- reports
 * ------------------------------------------------------------------ */

static int cmp_u64(const void *x, const void *y) {
  uint64_t p = *(const uint64_t *)x, q = *(const uint64_t *)y;
  return p < q ? -1 : p > q;
}

/* p50, p99 and max (ms) of a sorted array of nanoseconds */
static void print_dist(const char *name, uint64_t *v, size_t n) {
  if (n == 0) {
    printf("%s.n=0\n", name);
    return;
  }
  qsort(v, n, sizeof *v, cmp_u64);
  printf("%s.n=%zu\n%s.p50_ms=%.3f\n%s.p99_ms=%.3f\n%s.max_ms=%.3f\n", name, n,
         name, (double)v[(size_t)(0.50 * (double)(n - 1) + 0.5)] / 1e6, name,
         (double)v[(size_t)(0.99 * (double)(n - 1) + 0.5)] / 1e6, name,
         (double)v[n - 1] / 1e6);
}

static void report_chat(const char *name, int ph) {
  uint64_t *fwd = calloc(npings + 1, sizeof *fwd);
  uint64_t *back = calloc(npings + 1, sizeof *back);
  uint64_t *rtt = calloc(npings + 1, sizeof *rtt);
  size_t n = 0, lost = 0;
  for (size_t i = 0; i < npings; i++) {
    if (pings[i].phase != ph)
      continue;
    if (!pings[i].back) {
      lost++;
      continue;
    }
    fwd[n] = pings[i].at_peer - pings[i].sent;
    back[n] = pings[i].back - pings[i].at_peer;
    rtt[n] = pings[i].back - pings[i].sent;
    n++;
  }
  char key[64];
  printf("chat.%s.unanswered=%zu\n", name, lost);
  snprintf(key, sizeof key, "chat.%s.fwd", name);
  print_dist(key, fwd, n);
  snprintf(key, sizeof key, "chat.%s.back", name);
  print_dist(key, back, n);
  snprintf(key, sizeof key, "chat.%s.rtt", name);
  print_dist(key, rtt, n);
  free(fwd);
  free(back);
  free(rtt);
}

static void report(void) {
  const char *r = sender ? "send" : "recv";
  uint64_t end = done ? t_done : now_ns();
  double secs = t_start ? (double)(end - t_start) / 1e9 : 0;
  double cpu = (done ? cpu_done : cpu_now()) - cpu_start;
  lc_node_stats st;
  lc_node_stats_get(node, &st);
  printf("%s.done=%d\n%s.total=%llu\n%s.bytes=%llu\n", r, done, r,
         (unsigned long long)total, r, (unsigned long long)bytes_now);
  printf("%s.seconds=%.3f\n", r, secs);
  if (secs > 0)
    printf("%s.mbit_s=%.1f\n", r, (double)bytes_now * 8 / secs / 1e6);
  printf("%s.cpu_s=%.3f\n", r, cpu);
  if (bytes_now > 0)
    printf("%s.cpu_s_per_gib=%.3f\n", r, cpu / ((double)bytes_now / GIB));
  printf("%s.datagrams_in=%llu\n%s.datagrams_out=%llu\n", r,
         (unsigned long long)st.datagrams_in, r,
         (unsigned long long)st.datagrams_out);
  printf("%s.send_errors=%llu\n%s.hash_fails=%llu\n%s.bad_data=%llu\n", r,
         (unsigned long long)st.send_errors, r,
         (unsigned long long)st.transfer_hash_fails, r,
         (unsigned long long)st.transfer_bad_data);
  if (sender && verbose) /* each text: when sent (s from the offer), delays */
    for (size_t i = 0; i < npings; i++)
      fprintf(stderr,
              "text %zu phase %d at %.3f s: with %.3f ms, against %.3f "
              "ms\n",
              i, pings[i].phase,
              ((double)pings[i].sent - (double)t_offer) / 1e9,
              pings[i].back ? (double)(pings[i].at_peer - pings[i].sent) / 1e6
                            : -1.0,
              pings[i].back ? (double)(pings[i].back - pings[i].at_peer) / 1e6
                            : -1.0);
  if (sender) {
    printf("send.offer_to_done_s=%.3f\n",
           done ? (double)(t_done - t_offer) / 1e9 : 0.0);
    report_chat("idle", PH_IDLE);
    report_chat("bulk", PH_BULK);
  } else if (local_path[0]) {
    printf("recv.path=%s\n", local_path);
  }
  fflush(stdout);
}

/* ---- main
 * ------------------------------------------------------------------------ */

static void usage(void) {
  fprintf(stderr,
          "usage: lanchat-bench-transfer --role send|recv --bind ADDR "
          "--bcast ADDR [--iface NAME]\n"
          "         [--dport PORT] [--dir DATA] [--file PATH] [--timeout S] "
          "[--chat-hz N] [--idle S]\n");
}

int main(int argc, char **argv) {
  const char *role = NULL, *bind4 = NULL, *bcast = NULL, *iface = NULL;
  const char *dir = NULL;
  unsigned dport = LC_DISCOVERY_PORT;
  static const struct option lo[] = {{"role", required_argument, NULL, 'r'},
                                     {"bind", required_argument, NULL, 'b'},
                                     {"bcast", required_argument, NULL, 'B'},
                                     {"iface", required_argument, NULL, 'i'},
                                     {"dport", required_argument, NULL, 'p'},
                                     {"dir", required_argument, NULL, 'd'},
                                     {"file", required_argument, NULL, 'f'},
                                     {"timeout", required_argument, NULL, 't'},
                                     {"chat-hz", required_argument, NULL, 'c'},
                                     {"idle", required_argument, NULL, 'I'},
                                     {NULL, 0, NULL, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    switch (ch) {
    case 'r':
      role = optarg;
      break;
    case 'b':
      bind4 = optarg;
      break;
    case 'B':
      bcast = optarg;
      break;
    case 'i':
      iface = optarg;
      break;
    case 'p':
      dport = (unsigned)atoi(optarg);
      break;
    case 'd':
      dir = optarg;
      break;
    case 'f':
      file_path = optarg;
      break;
    case 't':
      timeout_s = atof(optarg);
      break;
    case 'c':
      chat_hz = (unsigned)atoi(optarg);
      break;
    case 'I':
      idle_s = atof(optarg);
      break;
    default:
      usage();
      return 2;
    }
  }
  if (!role || !bind4 || !bcast || dport == 0 || dport > 65535 ||
      chat_hz == 0 || chat_hz > 1000 || timeout_s <= 0) {
    usage();
    return 2;
  }
  sender = strcmp(role, "send") == 0;
  if (!sender && strcmp(role, "recv") != 0) {
    usage();
    return 2;
  }
  if (sender && !file_path) {
    fprintf(stderr, "--role send needs --file\n");
    return 2;
  }
  if (!iface) /* loopback runs must not announce on any other interface */
    iface = strncmp(bind4, "127.", 4) == 0 ? "lo" : "eth0";
  const char *v = getenv("BENCH_VERBOSE");
  verbose = v ? atoi(v) : 0;

  char tmpdir[256] = "";
  if (!dir) {
    if (bench_mkdtemp(tmpdir, sizeof tmpdir, "xfer") < 0) {
      perror("mkdtemp");
      return 1;
    }
    dir = tmpdir;
  }
  maxpings = (size_t)((idle_s + timeout_s + 60) * chat_hz) + 64;
  pings = calloc(maxpings, sizeof *pings);

  uv_loop_init(&loop);
  lc_node_options o;
  test_node_options(&o, dir, sender ? "bench-send" : "bench-recv", dport, 1000,
                    bind4, bcast, iface);
  o.on_peer = on_peer;
  o.on_message = on_message;
  o.on_transfer = on_transfer;
  o.on_log = on_log;
  int rc = lc_node_new(&node, &loop, &o);
  if (rc == 0)
    rc = lc_node_start(node);
  if (rc < 0) {
    fprintf(stderr, "node: %s\n", lc_strerror(rc));
    return 1;
  }
  uv_timer_init(&loop, &tick);
  uint64_t period = 1000 / chat_hz;
  uv_timer_start(&tick, on_tick, period ? period : 1, period ? period : 1);

  /* The receiver waits up to timeout for the offer too; the sender's
   * deadline starts at its offer (set in offer()). */
  uint64_t t0 = now_ns();
  uint64_t meet_deadline = t0 + 30000000000ull;
  if (sender) {
    while (!failed && !offered && now_ns() < meet_deadline)
      uv_run(&loop, UV_RUN_ONCE);
    if (!offered && !failed) {
      fprintf(stderr, "send: no peer (or no answer to a chat text) in 30 s\n");
      failed = 1;
    }
    if (!failed)
      run_until(send_finished, UINT64_MAX);
    /* the texts still on their way */
    phase = PH_AFTER;
    uint64_t wait_end = now_ns() + 2000000000ull;
    while (!all_answered() && now_ns() < wait_end)
      uv_run(&loop, UV_RUN_ONCE);
  } else {
    t_deadline = t0 + 60000000000ull; /* for the offer; then see above */
    run_until(recv_finished, UINT64_MAX);
  }
  report();

  uv_timer_stop(&tick);
  uv_close((uv_handle_t *)&tick, NULL);
  lc_node_stop(node, on_stop);
  run_until(pred_stopped, now_ns() + 10000000000ull);
  lc_node_free(node);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  if (tmpdir[0]) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
      fprintf(stderr, "could not remove %s\n", tmpdir);
  }
  free(pings);
  return done && !failed ? 0 : 1;
}
