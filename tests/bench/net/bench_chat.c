/* bench_chat.c: lanchat-bench-chat, one side of the chat-latency-under-loss
 * benchmark (tools/bench-net chat runs a sender on one netlab host and a
 * receiver on the other, over a veth pair with random loss).
 *
 * The sender sends a --size-byte text every --interval-ms (a fixed
 * schedule: it never waits for an answer), --count of them, each carrying
 * its sequence number and the moment it was handed to lc_send_text (or to
 * write(2)); the receiver's application answers nothing and records, for
 * each, the moment it was shown to it (on_message, or the record complete
 * in its read buffer).  Both read the same CLOCK_MONOTONIC (network
 * namespaces share the kernel's clock), so the difference is the one-way
 * delay.
 *
 *   --proto lanchat: two lanchat nodes (public API only).  The sender waits
 *   for the receiver's announcement, warms the session up (texts until one
 *   is DELIVERED), then runs the schedule and waits until every text is
 *   DELIVERED.  The receiver stops once it has every text and the sender
 *   has said goodbye (or 3 s after it has every text).
 *   --proto tcp: the same texts over one TCP connection with TCP_NODELAY,
 *   the reference.
 *
 *   lanchat-bench-chat --proto lanchat|tcp --role send|recv --bind ADDR
 *       [--peer ADDR] [--bcast ADDR] [--iface NAME] [--dport PORT]
 *       [--port PORT] [--dir DATA] [--count N] [--interval-ms MS]
 *       [--size BYTES] [--prefix KEY] [--timeout S]
 *
 * Output (stdout): the receiver prints PREFIX.n (texts received),
 * PREFIX.lost (never received), PREFIX.p50_ms, .p99_ms, .p999_ms, .max_ms
 * (p999: the value at index floor(0.999 n) of the sorted delays, the
 * 2nd-largest of 2000) and .mean_ms; the sender PREFIX.sent and
 * PREFIX.send_slip_max_ms (how late its schedule ran at worst), with
 * lanchat PREFIX.send_call_max_ms (the longest lc_send_text call) and a few
 * node counters.  BENCH_VERBOSE=1 shows every text later than 5 ms, every
 * slip of the schedule and every lc_send_text over 2 ms, with the time.  SIGINT
 * or SIGTERM: the results so far, then exit.  Never give it a real interface's
 * address in the root namespace: a lanchat node announces on --bcast. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "lanchat.h"
#include "net_util.h"
#include "node_options.h"

#define SIZE_MAX_TEXT 4096

static int sender, verbose;
static const char *prefix = "chat";
static unsigned count = 2000, interval_ms = 10;
static size_t size = 100;
static double timeout_s = 120;

/* the receiver's view: per sequence number, the delay (0: not yet) */
static uint64_t *delay_ns;
static uint8_t *got;
static size_t ngot, ndup;
/* the sender's */
static size_t nsent;
static uint64_t slip_max, call_max; /* schedule slip; longest lc_send_text */

static volatile sig_atomic_t sig_stop;

/* BENCH_VERBOSE=1: what happens when, on stderr */
static void vlog(const char *what, const char *arg) {
  if (verbose)
    fprintf(stderr, "[%s %s %.3f] %s%s\n", prefix, sender ? "send" : "recv",
            (double)nu_now_ns() / 1e9, what, arg ? arg : "");
}

/* A text of `size` bytes: "m SEQ T_NS " then 'x'. */
static size_t make_text(char *buf, unsigned seq, uint64_t t) {
  int h =
      snprintf(buf, SIZE_MAX_TEXT, "m %u %llu ", seq, (unsigned long long)t);
  if (h < 0)
    h = 0;
  if ((size_t)h < size)
    memset(buf + h, 'x', size - (size_t)h);
  buf[size] = 0;
  return size;
}

/* The receiver got text seq, sent at t_sent, now. */
static void record(unsigned seq, uint64_t t_sent, uint64_t now) {
  if (seq >= count)
    return;
  if (got[seq]) {
    ndup++;
    return;
  }
  got[seq] = 1;
  ngot++;
  delay_ns[seq] = now > t_sent ? now - t_sent : 0;
  if (verbose && delay_ns[seq] > 5000000ull)
    fprintf(stderr, "[%s recv %.3f] text %u sent at %.3f: %.3f ms\n", prefix,
            (double)now / 1e9, seq, (double)t_sent / 1e9,
            (double)delay_ns[seq] / 1e6);
}

static void report_recv(void) {
  uint64_t *v = malloc((ngot + 1) * sizeof *v);
  size_t n = 0;
  double sum = 0;
  for (unsigned i = 0; i < count; i++)
    if (got[i]) {
      v[n++] = delay_ns[i];
      sum += (double)delay_ns[i];
    }
  printf("%s.lost=%zu\n", prefix, (size_t)count - n);
  nu_print_dist(prefix, v, n, 1, "ms", 1e6);
  if (n)
    printf("%s.mean_ms=%.3f\n", prefix, sum / (double)n / 1e6);
  if (ndup)
    printf("%s.duplicates=%zu\n", prefix, ndup);
  free(v);
}

static void report_send(void) {
  printf("%s.sent=%zu\n", prefix, nsent);
  printf("%s.send_slip_max_ms=%.3f\n", prefix, (double)slip_max / 1e6);
  if (call_max)
    printf("%s.send_call_max_ms=%.3f\n", prefix, (double)call_max / 1e6);
}

/* ---- lanchat ------------------------------------------------------------ */

enum { L_MEET, L_WARM, L_RUN, L_DRAIN, L_DONE };

static uv_loop_t loop;
static uv_timer_t timer;
static uv_signal_t sigint_h, sigterm_h;
static lc_node *node;
static int lstate = L_MEET, have_peer, peer_left;
static uint8_t peer_key[LC_KEY_BYTES];
static uint8_t (*msg_ids)[LC_MSGID_BYTES];
static uint8_t *delivered;
static size_t ndelivered, deliv_scan;
static uint64_t t_first, t_warm_sent, t_all, t_deadline;

static void on_peer(lc_node *n, lc_peer_event ev, const lc_peer_info *p,
                    int detail, void *u) {
  (void)n;
  (void)detail;
  (void)u;
  if (ev == LC_PEER_APPEARED && !have_peer) {
    memcpy(peer_key, p->key, LC_KEY_BYTES);
    have_peer = 1;
    vlog("peer appeared at ", p->address);
  } else if (ev == LC_PEER_LEFT && have_peer &&
             memcmp(p->key, peer_key, LC_KEY_BYTES) == 0) {
    peer_left = 1;
    vlog("peer left", NULL);
  }
}

static void on_message(lc_node *n, const lc_message *m, void *u) {
  (void)n;
  (void)u;
  uint64_t now = nu_now_ns();
  unsigned seq;
  unsigned long long t;
  if (sender || m->kind != LC_KIND_TEXT)
    return;
  if (sscanf(m->text, "m %u %llu", &seq, &t) == 2) {
    if (!t_first)
      t_first = now;
    record(seq, t, now);
    if (ngot == count && !t_all) {
      t_all = now;
      vlog("every text received", NULL);
    }
  }
}

static void on_delivery(lc_node *n, const uint8_t peer[LC_KEY_BYTES],
                        const uint8_t msg_id[LC_MSGID_BYTES],
                        lc_msg_state state, int err, void *u) {
  (void)n;
  (void)peer;
  (void)err;
  (void)u;
  if (state != LC_MSG_DELIVERED)
    return;
  if (lstate == L_WARM) {
    lstate = L_RUN; /* the session carries texts both ways: go */
    vlog("session warm", NULL);
    return;
  }
  /* deliveries come mostly in order: scan from the oldest pending one */
  for (size_t i = deliv_scan; i < nsent; i++)
    if (!delivered[i] && memcmp(msg_ids[i], msg_id, LC_MSGID_BYTES) == 0) {
      delivered[i] = 1;
      ndelivered++;
      break;
    }
  while (deliv_scan < nsent && delivered[deliv_scan])
    deliv_scan++;
}

static void on_log(lc_node *n, int level, const char *msg, void *u) {
  (void)n;
  (void)u;
  if (level <= 1 || verbose > 1)
    fprintf(stderr, "[%s %s log %d] %s\n", prefix, sender ? "send" : "recv",
            level, msg);
}

static void on_signal(uv_signal_t *h, int signum) {
  (void)h;
  (void)signum;
  sig_stop = 1;
}

static uint64_t t_run0; /* the schedule's origin */

static void on_timer(uv_timer_t *h);

static void arm(uint64_t at) {
  uint64_t now = nu_now_ns();
  uint64_t ms = at > now ? (at - now + 999999) / 1000000 : 0;
  uv_timer_start(&timer, on_timer, ms, 0);
}

static void on_timer(uv_timer_t *h) {
  (void)h;
  uint64_t now = nu_now_ns();
  char text[SIZE_MAX_TEXT + 1];
  if (!sender) {
    arm(now + 100000000ull); /* the receiver only looks at the clock */
    return;
  }
  if (lstate == L_MEET) {
    if (have_peer)
      lstate = L_WARM;
    else {
      arm(now + 20000000ull);
      return;
    }
  }
  if (lstate == L_WARM) {
    if (!t_warm_sent || now - t_warm_sent > 250000000ull) {
      size_t len = make_text(text, 999999999u, now);
      int rc = lc_send_text(node, peer_key, text, len, NULL);
      if (rc < 0)
        fprintf(stderr, "lc_send_text: %s\n", lc_strerror(rc));
      t_warm_sent = now;
    }
    arm(now + 20000000ull);
    return;
  }
  if (lstate == L_RUN) {
    if (!t_run0)
      t_run0 = now;
    /* every text whose time has come (normally one) */
    while (nsent < count &&
           now >= t_run0 + (uint64_t)nsent * interval_ms * 1000000ull) {
      uint64_t due = t_run0 + (uint64_t)nsent * interval_ms * 1000000ull;
      if (now - due > slip_max)
        slip_max = now - due;
      if (verbose && now - due > 2000000ull)
        fprintf(stderr, "[%s send %.3f] text %zu went %.3f ms late\n", prefix,
                (double)now / 1e9, nsent, (double)(now - due) / 1e6);
      size_t len = make_text(text, (unsigned)nsent, now);
      int rc = lc_send_text(node, peer_key, text, len, msg_ids[nsent]);
      uint64_t took = nu_now_ns() - now;
      if (took > call_max)
        call_max = took;
      if (verbose && took > 2000000ull)
        fprintf(stderr, "[%s send %.3f] lc_send_text took %.3f ms\n", prefix,
                (double)now / 1e9, (double)took / 1e6);
      if (rc < 0) {
        fprintf(stderr, "lc_send_text: %s\n", lc_strerror(rc));
        sig_stop = 1;
        return;
      }
      nsent++;
      now = nu_now_ns();
    }
    if (nsent == count) {
      lstate = L_DRAIN;
      t_deadline = now + 20000000000ull; /* retransmissions */
      vlog("every text sent", NULL);
      arm(now + 100000000ull);
      return;
    }
    arm(t_run0 + (uint64_t)nsent * interval_ms * 1000000ull);
    return;
  }
  arm(now + 100000000ull);
}

static int lanchat_done(void) {
  uint64_t now = nu_now_ns();
  if (sig_stop)
    return 1;
  if (now >= t_deadline)
    return 1;
  if (sender)
    return lstate == L_DRAIN && ndelivered == nsent;
  if (t_all)
    return peer_left || now - t_all > 3000000000ull;
  return 0;
}

static int run_lanchat(const char *bind4, const char *bcast, const char *iface,
                       unsigned dport, unsigned port, const char *dir) {
  uv_loop_init(&loop);
  lc_node_options o;
  test_node_options(&o, dir, sender ? "chat-send" : "chat-recv", dport, 1000,
                    bind4, bcast, iface);
  o.port = (uint16_t)port;
  o.no_read_receipts = 1;
  o.on_peer = on_peer;
  o.on_message = on_message;
  o.on_delivery = on_delivery;
  o.on_log = on_log;
  if (nu_node_start(&loop, &node, &o, prefix, &sigint_h, &sigterm_h,
                    on_signal) != 0)
    return 1;
  uv_timer_init(&loop, &timer);
  uv_timer_start(&timer, on_timer, 0, 0);

  /* the whole run: meeting and warming up within 30 s, the schedule, then
   * 20 s for the last retransmissions (the sender's deadline moves to then
   * once all is sent) */
  uint64_t t0 = nu_now_ns();
  t_deadline = t0 + (uint64_t)(timeout_s * 1e9);
  uint64_t meet_deadline = t0 + 30000000000ull;
  while (!lanchat_done()) {
    uv_run(&loop, UV_RUN_ONCE);
    if (sender && lstate < L_RUN && nu_now_ns() > meet_deadline) {
      fprintf(stderr, "%s: no peer, or no warm-up text delivered, in 30 s\n",
              prefix);
      break;
    }
  }
  if (sender) {
    if (ndelivered < nsent)
      fprintf(stderr, "%s: %zu of %zu texts not DELIVERED at the end\n", prefix,
              nsent - ndelivered, nsent);
    report_send();
    printf("%s.delivered=%zu\n", prefix, ndelivered);
  } else {
    report_recv();
  }
  lc_node_stats st;
  lc_node_stats_get(node, &st);
  const char *r = sender ? "sender" : "receiver";
  printf("%s.%s_datagrams_in=%llu\n%s.%s_datagrams_out=%llu\n", prefix, r,
         (unsigned long long)st.datagrams_in, prefix, r,
         (unsigned long long)st.datagrams_out);
  printf("%s.%s_bad_datagrams=%llu\n", prefix, r,
         (unsigned long long)st.bad_datagrams);
  fflush(stdout);

  nu_node_end(&loop, node, &timer, &sigint_h, &sigterm_h);
  return 0;
}

/* ---- TCP ----------------------------------------------------------------- */

static void on_sig(int s) {
  (void)s;
  sig_stop = 1;
}

static int sockaddr_of(struct sockaddr_in *a, const char *ip, unsigned port) {
  memset(a, 0, sizeof *a);
  a->sin_family = AF_INET;
  a->sin_port = htons((uint16_t)port);
  return inet_pton(AF_INET, ip, &a->sin_addr) == 1 ? 0 : -1;
}

static void nodelay(int fd) {
  int one = 1;
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
    perror("TCP_NODELAY");
}

static int tcp_recv(const char *bind4, unsigned port) {
  struct sockaddr_in a;
  if (sockaddr_of(&a, bind4, port) < 0) {
    fprintf(stderr, "%s: bad address %s\n", prefix, bind4);
    return 2;
  }
  int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 1) < 0) {
    perror("tcp bind/listen");
    return 1;
  }
  uint64_t t0 = nu_now_ns(), deadline = t0 + (uint64_t)(timeout_s * 1e9);
  int fd = -1;
  while (!sig_stop && nu_now_ns() < deadline) {
    struct pollfd p = {.fd = ls, .events = POLLIN};
    if (poll(&p, 1, 100) > 0) {
      fd = accept(ls, NULL, NULL);
      break;
    }
  }
  close(ls);
  if (fd >= 0) {
    nodelay(fd);
    char buf[SIZE_MAX_TEXT * 4];
    size_t have = 0;
    while (!sig_stop && nu_now_ns() < deadline) {
      struct pollfd p = {.fd = fd, .events = POLLIN};
      if (poll(&p, 1, 100) <= 0)
        continue;
      ssize_t r = read(fd, buf + have, sizeof buf - have);
      if (r <= 0)
        break; /* the sender closed: all is here */
      uint64_t now = nu_now_ns();
      have += (size_t)r;
      size_t off = 0;
      while (have - off >= size) {
        unsigned seq;
        unsigned long long t;
        char rec[SIZE_MAX_TEXT + 1];
        memcpy(rec, buf + off, size);
        rec[size] = 0;
        if (sscanf(rec, "m %u %llu", &seq, &t) == 2)
          record(seq, t, now);
        off += size;
      }
      memmove(buf, buf + off, have - off);
      have -= off;
    }
    close(fd);
  } else {
    fprintf(stderr, "%s: no connection\n", prefix);
  }
  report_recv();
  fflush(stdout);
  return 0;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static void sleep_until(uint64_t t) {
  struct timespec ts = {(time_t)(t / 1000000000ull), (long)(t % 1000000000ull)};
  while (!sig_stop &&
         clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
    ;
}

static int tcp_send(const char *peer, unsigned port) {
  struct sockaddr_in a;
  if (sockaddr_of(&a, peer, port) < 0) {
    fprintf(stderr, "%s: bad address %s\n", prefix, peer);
    return 2;
  }
  /* the receiver may not listen yet: try for 10 s */
  int fd = -1;
  uint64_t until = nu_now_ns() + 10000000000ull;
  while (!sig_stop && nu_now_ns() < until) {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
      break;
    close(fd);
    fd = -1;
    usleep(20000);
  }
  if (fd < 0) {
    fprintf(stderr, "%s: cannot connect to %s:%u\n", prefix, peer, port);
    report_send();
    return 1;
  }
  nodelay(fd);
  char text[SIZE_MAX_TEXT + 1];
  uint64_t t0 = nu_now_ns() + 20000000ull;
  for (unsigned i = 0; i < count && !sig_stop; i++) {
    uint64_t due = t0 + (uint64_t)i * interval_ms * 1000000ull;
    sleep_until(due);
    uint64_t now = nu_now_ns();
    if (now - due > slip_max)
      slip_max = now - due;
    size_t len = make_text(text, i, now);
    if (write_all(fd, text, len) < 0) {
      perror("tcp write");
      break;
    }
    nsent++;
  }
  /* wait for the receiver to close: everything was read */
  shutdown(fd, SHUT_WR);
  uint64_t end = nu_now_ns() + 20000000000ull;
  char b[256];
  while (!sig_stop && nu_now_ns() < end) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 100) > 0 && read(fd, b, sizeof b) <= 0)
      break;
  }
  close(fd);
  report_send();
  fflush(stdout);
  return 0;
}

/* ---- main ---------------------------------------------------------------- */

static void usage(void) {
  fprintf(stderr,
          "usage: lanchat-bench-chat --proto lanchat|tcp --role send|recv "
          "--bind ADDR [--peer ADDR]\n"
          "         [--bcast ADDR] [--iface NAME] [--dport PORT] [--port "
          "PORT] [--dir DATA]\n"
          "         [--count N] [--interval-ms MS] [--size BYTES] [--prefix "
          "KEY] [--timeout S]\n");
}

int main(int argc, char **argv) {
  const char *proto = NULL, *role = NULL, *bind4 = NULL, *peer = NULL;
  const char *bcast = NULL, *iface = "eth0", *dir = NULL;
  unsigned dport = LC_DISCOVERY_PORT, port = 0;
  static const struct option lo[] = {
      {"proto", required_argument, NULL, 'P'},
      {"role", required_argument, NULL, 'r'},
      {"bind", required_argument, NULL, 'b'},
      {"peer", required_argument, NULL, 'a'},
      {"bcast", required_argument, NULL, 'B'},
      {"iface", required_argument, NULL, 'i'},
      {"dport", required_argument, NULL, 'D'},
      {"port", required_argument, NULL, 'p'},
      {"dir", required_argument, NULL, 'd'},
      {"count", required_argument, NULL, 'n'},
      {"interval-ms", required_argument, NULL, 'I'},
      {"size", required_argument, NULL, 's'},
      {"prefix", required_argument, NULL, 'k'},
      {"timeout", required_argument, NULL, 't'},
      {NULL, 0, NULL, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    switch (ch) {
    case 'P':
      proto = optarg;
      break;
    case 'r':
      role = optarg;
      break;
    case 'b':
      bind4 = optarg;
      break;
    case 'a':
      peer = optarg;
      break;
    case 'B':
      bcast = optarg;
      break;
    case 'i':
      iface = optarg;
      break;
    case 'D':
      dport = (unsigned)atoi(optarg);
      break;
    case 'p':
      port = (unsigned)atoi(optarg);
      break;
    case 'd':
      dir = optarg;
      break;
    case 'n':
      count = (unsigned)atoi(optarg);
      break;
    case 'I':
      interval_ms = (unsigned)atoi(optarg);
      break;
    case 's':
      size = (size_t)atoi(optarg);
      break;
    case 'k':
      prefix = optarg;
      break;
    case 't':
      timeout_s = atof(optarg);
      break;
    default:
      usage();
      return 2;
    }
  }
  if (!proto || !role || !bind4 || count == 0 || count > 10000000 ||
      interval_ms == 0 || size < 32 || size > SIZE_MAX_TEXT || timeout_s <= 0 ||
      dport == 0 || dport > 65535 || port > 65535) {
    usage();
    return 2;
  }
  sender = strcmp(role, "send") == 0;
  if (!sender && strcmp(role, "recv") != 0) {
    usage();
    return 2;
  }
  const char *v = getenv("BENCH_VERBOSE");
  verbose = v ? atoi(v) : 0;
  delay_ns = calloc(count, sizeof *delay_ns);
  got = calloc(count, 1);
  msg_ids = calloc(count, sizeof *msg_ids);
  delivered = calloc(count, 1);
  if (!delay_ns || !got || !msg_ids || !delivered) {
    fprintf(stderr, "out of memory\n");
    return 1;
  }
  int rc;
  if (strcmp(proto, "lanchat") == 0) {
    if (!bcast || !dir) {
      fprintf(stderr, "--proto lanchat needs --bcast and --dir\n");
      return 2;
    }
    rc = run_lanchat(bind4, bcast, iface, dport, port ? port : dport + 1, dir);
  } else if (strcmp(proto, "tcp") == 0) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sig; /* no SA_RESTART: blocking calls return */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (!port)
      port = 5301;
    if (sender && !peer) {
      fprintf(stderr, "--proto tcp --role send needs --peer\n");
      return 2;
    }
    rc = sender ? tcp_send(peer, port) : tcp_recv(bind4, port);
  } else {
    usage();
    return 2;
  }
  free(delay_ns);
  free(got);
  free(msg_ids);
  free(delivered);
  return rc;
}
