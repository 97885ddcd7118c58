/* bench_flood.c: lanchat-bench-flood, the three programs of the "under
 * attack" benchmark (tools/bench-net flood runs them on three netlab hosts
 * on one bridge).
 *
 *   --role client (host 1): a lanchat node that measures, first calm, then
 *   under the flood: the round trip of a --size-byte text (lc_send_text
 *   until the sender's on_delivery reports DELIVERED), --rtt-count texts
 *   one at a time; then a burst of --burst texts sent at once, timed from
 *   the first lc_send_text until the last one is DELIVERED (msg/s).
 *   --role server (host 2): a lanchat node that answers nothing (its node
 *   stores and acknowledges what comes); on SIGTERM or SIGINT it prints its
 *   node's counters, its resident memory and its namespace's UDP counters,
 *   then stops.
 *   --role flood (host 3): sends garbage (see flood_fill: random bytes,
 *   truncated msgpack, well-formed arrays with wrong types, oversized and
 *   absurd lengths, and datagrams shaped like HELLO, DATA, ANNOUNCE and
 *   PEERS that fail only in their cryptography) at both nodes' unicast
 *   ports and at their discovery port, --rate datagrams a second in all,
 *   paced every millisecond.
 *
 * The three meet through files in --sync DIR (every namespace sees the
 * same file system): the client writes calm.done after its calm phase; the
 * flooder then starts and writes flood.on once it has flooded for --soak
 * seconds (so that the nodes are measured in a steady state); the client
 * measures again and writes measure.done; the flooder stops.  Every wait has a
 * deadline, and a phase that does not complete in --phase-timeout seconds is
 * reported as such instead of hanging.
 *
 *   lanchat-bench-flood --role client|server --bind ADDR --bcast ADDR
 *       [--iface NAME] [--dport PORT] [--port PORT] --dir DATA --sync DIR
 *       [--rtt-count N] [--burst N] [--size BYTES] [--phase-timeout S]
 *       [--timeout S]
 *   lanchat-bench-flood --role flood --targets IP,IP [--dport PORT]
 *       [--port PORT] --sync DIR [--rate N] [--soak S] [--kinds K,K]
 *       [--timeout S]
 * (--kinds: only these kinds of garbage, by the names of kind_names.)
 *
 * Output: key=value lines on stdout: calm.* and flood.rtt.*, flood.burst.*
 * from the client, flood.node2.* from the server (flood.node_bad_datagrams:
 * its bad_datagrams; flood.rss_kib: its VmRSS), flood.sent* from the
 * flooder.  Never run it in the root namespace: the nodes announce on
 * --bcast and the flooder sends where it is told. */
#define _GNU_SOURCE /* sendmmsg */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "lanchat.h"
#include "net_util.h"
#include "node_options.h"

#define TEXT_MAX 4096

static int verbose;
static const char *role_name = "?";
static const char *sync_dir;
static unsigned rtt_count = 1000, burst_n = 2000;
static size_t text_size = 100;
static double phase_timeout_s = 60, timeout_s = 300, soak_s = 1;
static volatile sig_atomic_t sig_stop;

static void vlog(const char *what) {
  if (verbose)
    fprintf(stderr, "[%s %.3f] %s\n", role_name, (double)nu_now_ns() / 1e9,
            what);
}

/* ==== the nodes ============================================================
 */

enum {
  C_MEET,      /* waiting for the server's announcement */
  C_WARM,      /* a text until one is DELIVERED */
  C_RTT,       /* one at a time */
  C_BURST,     /* all at once, until all are DELIVERED */
  C_WAIT_FLOOD /* calm done, waiting for flood.on */
};

static uv_loop_t loop;
static uv_timer_t timer;
static uv_signal_t sigint_h, sigterm_h;
static lc_node *node;
static int is_client, have_peer, finished;
static uint8_t peer_key[LC_KEY_BYTES];
static int cstate = C_MEET;
static int phase; /* 0 calm, 1 flood */
static const char *phase_names[2] = {"calm", "flood"};
static uint8_t cur_id[LC_MSGID_BYTES];
static uint64_t t_cur, t_warm, t_phase_deadline, t_wait_deadline;
static uint64_t *rtts;
static size_t nrtt;
static uint8_t (*burst_ids)[LC_MSGID_BYTES];
static uint8_t *burst_done;
static size_t nburst_sent, nburst_done, burst_scan;
static uint64_t t_burst0, t_burst_end;
static unsigned long long msgs_received; /* server */

static void on_peer(lc_node *n, lc_peer_event ev, const lc_peer_info *p,
                    int detail, void *u) {
  (void)n;
  (void)detail;
  (void)u;
  if (ev == LC_PEER_APPEARED && !have_peer) {
    memcpy(peer_key, p->key, LC_KEY_BYTES);
    have_peer = 1;
    vlog("peer appeared");
  } else if (ev == LC_PEER_APPEARED && verbose) {
    fprintf(stderr, "[%s] another peer appeared: %s at %s\n", role_name,
            p->nickname, p->address);
  }
}

static void on_message(lc_node *n, const lc_message *m, void *u) {
  (void)n;
  (void)m;
  (void)u;
  msgs_received++;
}

static size_t make_text(char *buf, const char *tag, unsigned seq) {
  int h = snprintf(buf, TEXT_MAX, "%s %u ", tag, seq);
  if (h < 0)
    h = 0;
  if ((size_t)h < text_size)
    memset(buf + h, 'x', text_size - (size_t)h);
  buf[text_size] = 0;
  return text_size;
}

static void send_rtt(void) {
  char text[TEXT_MAX + 1];
  size_t len = make_text(text, "rtt", (unsigned)nrtt);
  t_cur = nu_now_ns();
  int rc = lc_send_text(node, peer_key, text, len, cur_id);
  if (rc < 0) {
    fprintf(stderr, "[%s] lc_send_text: %s\n", role_name, lc_strerror(rc));
    finished = 1;
  }
}

static void report_phase(void);

/* CPU seconds (user + system) of this process */
static double cpu_now(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* when the flooder was let go (calm.done): CPU and refused datagrams */
static int flood_mark;
static double cpu_at_mark;
static uint64_t bad_at_mark;

static void mark_flood_start(void) {
  lc_node_stats st;
  lc_node_stats_get(node, &st);
  flood_mark = 1;
  cpu_at_mark = cpu_now();
  bad_at_mark = st.bad_datagrams;
}

static void start_burst(void) {
  char text[TEXT_MAX + 1];
  cstate = C_BURST;
  nburst_sent = nburst_done = burst_scan = 0;
  memset(burst_done, 0, burst_n);
  t_burst_end = 0;
  t_burst0 = nu_now_ns();
  t_phase_deadline = t_burst0 + (uint64_t)(phase_timeout_s * 1e9);
  for (unsigned i = 0; i < burst_n; i++) {
    size_t len = make_text(text, "burst", i);
    int rc = lc_send_text(node, peer_key, text, len, burst_ids[i]);
    if (rc < 0) {
      fprintf(stderr, "[%s] lc_send_text (burst %u): %s\n", role_name, i,
              lc_strerror(rc));
      break;
    }
    nburst_sent++;
  }
  char line[96];
  snprintf(line, sizeof line, "%s: %zu texts queued in %.3f s",
           phase_names[phase], nburst_sent,
           (double)(nu_now_ns() - t_burst0) / 1e9);
  vlog(line);
}

static void start_rtt(void) {
  cstate = C_RTT;
  nrtt = 0;
  t_phase_deadline = nu_now_ns() + (uint64_t)(phase_timeout_s * 1e9);
  send_rtt();
}

/* The calm phase is over: let the flooder go. */
static void end_phase(void) {
  report_phase();
  if (phase == 0) {
    mark_flood_start();
    nu_touch(sync_dir, "calm.done");
    cstate = C_WAIT_FLOOD;
    t_wait_deadline = nu_now_ns() + 30000000000ull;
    vlog("calm done: waiting for the flood");
  } else {
    nu_touch(sync_dir, "measure.done");
    finished = 1;
  }
}

static void on_delivery(lc_node *n, const uint8_t peer[LC_KEY_BYTES],
                        const uint8_t msg_id[LC_MSGID_BYTES],
                        lc_msg_state state, int err, void *u) {
  (void)n;
  (void)peer;
  (void)err;
  (void)u;
  if (!is_client || state != LC_MSG_DELIVERED)
    return;
  uint64_t now = nu_now_ns();
  if (cstate == C_WARM) {
    vlog("session warm");
    start_rtt();
  } else if (cstate == C_RTT && memcmp(msg_id, cur_id, LC_MSGID_BYTES) == 0) {
    rtts[nrtt++] = now - t_cur;
    if (nrtt >= rtt_count)
      start_burst();
    else
      send_rtt();
  } else if (cstate == C_BURST) {
    for (size_t i = burst_scan; i < nburst_sent; i++)
      if (!burst_done[i] && memcmp(burst_ids[i], msg_id, LC_MSGID_BYTES) == 0) {
        burst_done[i] = 1;
        nburst_done++;
        break;
      }
    while (burst_scan < nburst_sent && burst_done[burst_scan])
      burst_scan++;
    if (nburst_done == nburst_sent) {
      t_burst_end = now;
      end_phase();
    }
  }
}

static void on_log(lc_node *n, int level, const char *msg, void *u) {
  (void)n;
  (void)u;
  if (level <= 1 || verbose > 1)
    fprintf(stderr, "[%s log %d] %s\n", role_name, level, msg);
}

static void on_signal(uv_signal_t *h, int signum) {
  (void)h;
  (void)signum;
  sig_stop = 1;
}

static void report_phase(void) {
  const char *p = phase_names[phase];
  char key[64];
  snprintf(key, sizeof key, "%s.rtt", p);
  if (nrtt < rtt_count)
    fprintf(stderr,
            "[client] %s: only %zu of %u round trips completed in %.0f s\n", p,
            nrtt, rtt_count, phase_timeout_s);
  /* nanoseconds to microseconds */
  nu_print_dist(key, rtts, nrtt, 0, "us", 1e3);
  if (t_burst_end && nburst_sent == burst_n) {
    double s = (double)(t_burst_end - t_burst0) / 1e9;
    printf("%s.burst.msg_s=%.1f\n%s.burst.seconds=%.3f\n", p,
           (double)burst_n / s, p, s);
  } else {
    fprintf(stderr,
            "[client] %s: the burst did not complete in %.0f s: %zu of %u "
            "texts DELIVERED (%zu queued)\n",
            p, phase_timeout_s, nburst_done, burst_n, nburst_sent);
    printf("%s.burst.msg_s=0\n%s.burst.delivered=%zu\n", p, p, nburst_done);
  }
  fflush(stdout);
}

static void on_timer(uv_timer_t *h) {
  (void)h;
  if (!is_client) {
    if (!flood_mark && nu_exists(sync_dir, "calm.done"))
      mark_flood_start();
    return;
  }
  uint64_t now = nu_now_ns();
  switch (cstate) {
  case C_MEET:
    if (have_peer) {
      cstate = C_WARM;
      t_warm = 0;
    } else {
      break;
    }
    /* fall through */
  case C_WARM:
    if (!t_warm || now - t_warm > 250000000ull) {
      char text[TEXT_MAX + 1];
      size_t len = make_text(text, "warm", 0);
      int rc = lc_send_text(node, peer_key, text, len, NULL);
      if (rc < 0)
        fprintf(stderr, "[client] lc_send_text: %s\n", lc_strerror(rc));
      t_warm = now;
    }
    break;
  case C_RTT:
  case C_BURST:
    if (now >= t_phase_deadline) {
      if (cstate == C_RTT) { /* go on with the burst all the same */
        fprintf(stderr, "[client] %s: round trips stalled\n",
                phase_names[phase]);
        start_burst();
      } else {
        end_phase();
      }
    }
    break;
  case C_WAIT_FLOOD:
    if (nu_exists(sync_dir, "flood.on")) {
      phase = 1;
      printf("flood.started=1\n");
      vlog("the flood is on: measuring again");
      start_rtt();
    } else if (now >= t_wait_deadline) {
      fprintf(stderr, "[client] the flooder did not start in 30 s\n");
      printf("flood.started=0\n");
      nu_touch(sync_dir, "measure.done");
      finished = 1;
    }
    break;
  }
}

static void print_stats(const char *prefix) {
  lc_node_stats st;
  lc_node_stats_get(node, &st);
  printf("%s.datagrams_in=%llu\n%s.datagrams_out=%llu\n", prefix,
         (unsigned long long)st.datagrams_in, prefix,
         (unsigned long long)st.datagrams_out);
  printf("%s.bad_datagrams=%llu\n%s.bad_announces=%llu\n", prefix,
         (unsigned long long)st.bad_datagrams, prefix,
         (unsigned long long)st.bad_announces);
  printf("%s.peers_present=%llu\n%s.send_errors=%llu\n", prefix,
         (unsigned long long)st.peers_present, prefix,
         (unsigned long long)st.send_errors);
  unsigned long rss = nu_rss_kib();
  printf("%s.rss_kib=%lu\n", prefix, rss);
  double cpu = cpu_now();
  printf("%s.cpu_s=%.3f\n", prefix, cpu);
  if (flood_mark) { /* from the flood's start to now */
    uint64_t bad = st.bad_datagrams - bad_at_mark;
    printf("%s.flood_cpu_s=%.3f\n%s.flood_bad_datagrams=%llu\n", prefix,
           cpu - cpu_at_mark, prefix, (unsigned long long)bad);
    if (bad)
      printf("%s.cpu_us_per_bad_datagram=%.2f\n", prefix,
             (cpu - cpu_at_mark) * 1e6 / (double)bad);
  }
  unsigned long long in, drops;
  nu_udp_counters(&in, &drops);
  printf("%s.udp_in=%llu\n%s.udp_rcvbuf_errors=%llu\n", prefix, in, prefix,
         drops);
  if (!is_client) {
    printf("%s.messages_received=%llu\n", prefix, msgs_received);
    /* the figures the benchmark names */
    printf("flood.node_bad_datagrams=%llu\n",
           (unsigned long long)st.bad_datagrams);
    printf("flood.rss_kib=%lu\n", rss);
  }
  fflush(stdout);
}

static int run_node(const char *bind4, const char *bcast, const char *iface,
                    unsigned dport, unsigned port, const char *dir) {
  uv_loop_init(&loop);
  lc_node_options o;
  test_node_options(&o, dir, is_client ? "flood-client" : "flood-server", dport,
                    1000, bind4, bcast, iface);
  o.port = (uint16_t)port;
  o.no_read_receipts = 1;
  o.on_peer = on_peer;
  o.on_message = on_message;
  o.on_delivery = on_delivery;
  o.on_log = on_log;
  if (nu_node_start(&loop, &node, &o, role_name, &sigint_h, &sigterm_h,
                    on_signal) != 0)
    return 1;
  uv_timer_init(&loop, &timer);
  uv_timer_start(&timer, on_timer, 0, 20);

  uint64_t t0 = nu_now_ns();
  uint64_t deadline = t0 + (uint64_t)(timeout_s * 1e9);
  uint64_t meet_deadline = t0 + 30000000000ull;
  int rcode = 0;
  while (!sig_stop && !finished && nu_now_ns() < deadline) {
    uv_run(&loop, UV_RUN_ONCE);
    if (is_client && cstate <= C_WARM && nu_now_ns() > meet_deadline) {
      fprintf(stderr, "[client] no peer, or no warm-up text delivered, in "
                      "30 s\n");
      nu_touch(sync_dir, "measure.done");
      rcode = 1;
      break;
    }
  }
  if (is_client && !finished && rcode == 0) {
    fprintf(stderr, "[client] stopped before the end (%s)\n",
            sig_stop ? "signal" : "timeout");
    if (cstate == C_RTT || cstate == C_BURST)
      report_phase();
    nu_touch(sync_dir, "measure.done");
    rcode = 1;
  }
  print_stats(is_client ? "flood.node1" : "flood.node2");

  if (!nu_node_end(&loop, node, &timer, &sigint_h, &sigterm_h))
    fprintf(stderr, "[%s] the node did not stop in 5 s\n", role_name);
  return rcode;
}

/* ==== the flooder ==========================================================
 */

#define DG_MAX 1472
#define BATCH 64

enum {
  G_RANDOM,        /* random bytes, any length (also 0) */
  G_ARRAYISH,      /* a fixarray header and version 1, then noise */
  G_TRUNC_HELLO,   /* a well-formed HELLO cut short */
  G_HELLO,         /* a well-formed HELLO of random keys: costs an X25519 */
  G_HELLO_TRAIL,   /* the same with a byte more */
  G_WELCOME,       /* a well-formed WELCOME to no handshake */
  G_DATA,          /* a well-formed DATA to a random index */
  G_ANNOUNCE_SIG,  /* a well-formed ANNOUNCE, random key, bad signature */
  G_ANNOUNCE_BIG,  /* an ANNOUNCE with oversized nickname and status */
  G_ANNOUNCE_TYPE, /* an ANNOUNCE's shape with wrong types */
  G_PEERS,         /* a PEERS of an unknown key, 24 or 25 entries */
  G_VERSION_TYPE,  /* wrong version, unknown or zero type */
  G_HUGE_LEN,      /* bin32/str32/array32 lengths of about 4 GiB */
  G_NESTED,        /* arrays nested as deep as the datagram allows */
  G_KINDS
};
static const char *kind_names[G_KINDS] = {
    "random",       "arrayish",      "trunc_hello", "hello",
    "hello_trail",  "welcome",       "data",        "announce_badsig",
    "announce_big", "announce_type", "peers",       "version_type",
    "huge_len",     "nested"};

static uint64_t rng = 0x9e3779b97f4a7c15ull;
/* the kinds to send (--kinds: names, comma-separated; default all) */
static int kinds[G_KINDS], nkinds;

static int parse_kinds(const char *list) {
  char buf[512];
  snprintf(buf, sizeof buf, "%s", list);
  nkinds = 0;
  for (char *save = NULL, *t = strtok_r(buf, ",", &save); t;
       t = strtok_r(NULL, ",", &save)) {
    int k = 0;
    while (k < G_KINDS && strcmp(kind_names[k], t) != 0)
      k++;
    if (k == G_KINDS) {
      fprintf(stderr, "[flood] unknown kind %s\n", t);
      return -1;
    }
    kinds[nkinds++] = k;
  }
  return nkinds ? 0 : -1;
}

static void rbytes(uint8_t *p, size_t n) {
  while (n >= 8) {
    uint64_t r = nu_rand(&rng);
    memcpy(p, &r, 8);
    p += 8;
    n -= 8;
  }
  if (n) {
    uint64_t r = nu_rand(&rng);
    memcpy(p, &r, n);
  }
}

static size_t put_u32(uint8_t *p, uint32_t v) {
  p[0] = 0xce;
  p[1] = (uint8_t)(v >> 24);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 8);
  p[4] = (uint8_t)v;
  return 5;
}

static size_t put_u64(uint8_t *p, uint64_t v) {
  p[0] = 0xcf;
  for (int i = 0; i < 8; i++)
    p[1 + i] = (uint8_t)(v >> (56 - 8 * i));
  return 9;
}

/* bin8 of n random bytes */
static size_t put_bin(uint8_t *p, size_t n) {
  p[0] = 0xc4;
  p[1] = (uint8_t)n;
  rbytes(p + 2, n);
  return 2 + n;
}

static size_t put_str(uint8_t *p, size_t n, char c) {
  size_t h;
  if (n < 32) {
    p[0] = (uint8_t)(0xa0 | n);
    h = 1;
  } else if (n < 256) {
    p[0] = 0xd9;
    p[1] = (uint8_t)n;
    h = 2;
  } else {
    p[0] = 0xda;
    p[1] = (uint8_t)(n >> 8);
    p[2] = (uint8_t)n;
    h = 3;
  }
  memset(p + h, c, n);
  return h + n;
}

static size_t hello(uint8_t *p) {
  size_t o = 0;
  p[o++] = 0x96;
  p[o++] = 1;
  p[o++] = 2;
  o += put_u32(p + o, (uint32_t)nu_rand(&rng));
  o += put_bin(p + o, 32);
  o += put_bin(p + o, 48);
  o += put_bin(p + o, 32);
  return o;
}

/* ANNOUNCE fields 0..10 (nickname and status of the given lengths) */
static size_t announce_body(uint8_t *p, size_t nick, size_t status) {
  size_t o = 0;
  p[o++] = 0x9c;
  p[o++] = 1;
  p[o++] = 1;
  p[o++] = (uint8_t)(nu_rand(&rng) % 8); /* flags, SOLICIT too */
  o += put_bin(p + o, 32);
  o += put_u64(p + o, 1700000000000000ull + (nu_rand(&rng) >> 20));
  p[o++] = 0xcd; /* port 7781 */
  p[o++] = 0x1e;
  p[o++] = 0x65;
  p[o++] = 0xcd; /* interval 5000 */
  p[o++] = 0x13;
  p[o++] = 0x88;
  p[o++] = 1; /* online */
  p[o++] = 1; /* caps */
  o += put_str(p + o, nick, 'n');
  o += put_str(p + o, status, 's');
  return o;
}

/* Writes one garbage datagram of the given kind into p; its length. */
static size_t flood_fill(uint8_t *p, int kind) {
  size_t o = 0, n;
  uint64_t r = nu_rand(&rng);
  switch (kind) {
  case G_RANDOM:
    n = (size_t)(r % (DG_MAX + 1));
    rbytes(p, n);
    return n;
  case G_ARRAYISH:
    n = 3 + (size_t)(r % 300);
    rbytes(p, n);
    p[0] = (uint8_t)(0x90 | (r >> 32) % 16);
    p[1] = 1;
    p[2] = (uint8_t)((r >> 40) % 8);
    return n;
  case G_TRUNC_HELLO:
    n = hello(p);
    return (size_t)(r % n);
  case G_HELLO:
    return hello(p);
  case G_HELLO_TRAIL:
    n = hello(p);
    p[n] = (uint8_t)r;
    return n + 1;
  case G_WELCOME:
    p[o++] = 0x96;
    p[o++] = 1;
    p[o++] = 3;
    o += put_u32(p + o, (uint32_t)r);
    o += put_u32(p + o, (uint32_t)(r >> 32));
    o += put_bin(p + o, 32);
    o += put_bin(p + o, 24);
    return o;
  case G_DATA:
    p[o++] = 0x95;
    p[o++] = 1;
    p[o++] = 4;
    /* small indices too: an index a node might really use */
    o += put_u32(p + o, (r & 1) ? (uint32_t)(r >> 32) : (uint32_t)(r >> 60));
    o += put_u64(p + o, (r >> 8) & 0xffffff);
    n = 16 + (size_t)((r >> 16) % 1400);
    if (n > 255) { /* bin16 */
      p[o++] = 0xc5;
      p[o++] = (uint8_t)(n >> 8);
      p[o++] = (uint8_t)n;
      rbytes(p + o, n);
      return o + n;
    }
    return o + put_bin(p + o, n);
  case G_ANNOUNCE_SIG:
    o = announce_body(p, 1 + (size_t)(r % 20), (size_t)((r >> 8) % 40));
    return o + put_bin(p + o, 64);
  case G_ANNOUNCE_BIG:
    /* nickname over 64 bytes, or status over 128, or both */
    o = announce_body(p, (r & 1) ? 65 + (size_t)((r >> 8) % 300) : 8,
                      (r & 2) ? 129 + (size_t)((r >> 16) % 700) : 0);
    return o + put_bin(p + o, 64);
  case G_ANNOUNCE_TYPE:
    o = announce_body(p, 4, 4);
    o += put_bin(p + o, 64);
    /* break one field: the key as a str, the timestamp as nil, the port
     * as a float, the nickname as a bin, or the reserved byte */
    switch ((r >> 8) % 5) {
    case 0:
      p[4] = 0xd9; /* str8 of 32, where bin8 of 32 was */
      break;
    case 1:
      p[4 + 34] = 0xc0; /* nil for timestamp's uint64 marker */
      break;
    case 2:
      p[4 + 34 + 9] = 0xca; /* float32 */
      break;
    case 3:
      p[4 + 34 + 9 + 3 + 3 + 1 + 1] = 0xc4; /* bin8 for the nickname */
      break;
    default:
      p[3] = 0xc1;
      break;
    }
    return o;
  case G_PEERS: {
    size_t entries = 24 + (size_t)(r & 1);
    p[o++] = 0x96;
    p[o++] = 1;
    p[o++] = 5;
    o += put_bin(p + o, 32);
    o += put_u64(p + o, 1700000000000000ull + (r >> 20));
    p[o++] = 0xdc;
    p[o++] = 0;
    p[o++] = (uint8_t)entries;
    for (size_t i = 0; i < entries; i++) {
      p[o++] = 0x93;
      o += put_bin(p + o, 32);
      o += put_bin(p + o, 4);
      p[o++] = 0xcd;
      p[o++] = 0x1e;
      p[o++] = 0x65;
    }
    return o + put_bin(p + o, 64);
  }
  case G_VERSION_TYPE:
    n = hello(p);
    switch ((r >> 8) % 4) {
    case 0:
      p[1] = 2; /* version 2 */
      break;
    case 1:
      p[2] = 9; /* unknown type */
      break;
    case 2:
      p[2] = 0; /* type 0 */
      break;
    default:
      p[1] = 0xff; /* version -1 */
      break;
    }
    return n;
  case G_HUGE_LEN:
    p[o++] = 0x95;
    p[o++] = 1;
    p[o++] = 4;
    o += put_u32(p + o, (uint32_t)r);
    o += put_u64(p + o, 1);
    switch ((r >> 32) % 3) {
    case 0:
      p[o++] = 0xc6; /* bin32 */
      break;
    case 1:
      p[o++] = 0xdb; /* str32 */
      break;
    default:
      p[o++] = 0xdd; /* array32 */
      break;
    }
    p[o++] = 0xff;
    p[o++] = 0xff;
    p[o++] = 0xff;
    p[o++] = (uint8_t)(0xf0 | (r & 0xf));
    n = (size_t)((r >> 40) % 64);
    rbytes(p + o, n);
    if ((r >> 48) & 1) { /* or the datagram itself as array32 */
      p[0] = 0xdd;
      p[1] = p[2] = p[3] = p[4] = 0xff;
      return 5 + n;
    }
    return o + n;
  case G_NESTED:
  default:
    n = 64 + (size_t)(r % (DG_MAX - 64));
    for (size_t i = 0; i < n; i++)
      p[i] = ((r >> 20) & 1) ? 0x91 : 0xdc; /* fixarray(1) or array16 */
    if (!((r >> 20) & 1)) {                 /* array16 of 0x dcdc elements */
      return n;
    }
    p[1] = 1; /* [version 1, [[[[...]]]]] */
    p[0] = 0x92;
    return n;
  }
}

static void on_sig(int s) {
  (void)s;
  sig_stop = 1;
}

static int run_flood(const char *targets, unsigned dport, unsigned port,
                     double rate) {
  struct sockaddr_in dst[8];
  size_t ndst = 0;
  char list[256];
  snprintf(list, sizeof list, "%s", targets);
  for (char *save = NULL, *t = strtok_r(list, ",", &save); t && ndst < 8;
       t = strtok_r(NULL, ",", &save)) {
    struct in_addr a;
    if (inet_pton(AF_INET, t, &a) != 1) {
      fprintf(stderr, "[flood] bad address %s\n", t);
      return 2;
    }
    for (int k = 0; k < 2; k++) { /* unicast port, then discovery port */
      memset(&dst[ndst], 0, sizeof dst[ndst]);
      dst[ndst].sin_family = AF_INET;
      dst[ndst].sin_addr = a;
      dst[ndst].sin_port = htons((uint16_t)(k == 0 ? port : dport));
      ndst++;
    }
  }
  if (ndst == 0) {
    fprintf(stderr, "[flood] no --targets\n");
    return 2;
  }
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  int sz = 8 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  rng ^= nu_now_ns() ^ (uint64_t)getpid() << 32;

  /* wait for the client's calm phase to end */
  uint64_t t0 = nu_now_ns(), deadline = t0 + (uint64_t)(timeout_s * 1e9);
  while (!sig_stop && !nu_exists(sync_dir, "calm.done") &&
         !nu_exists(sync_dir, "measure.done") && nu_now_ns() < deadline)
    usleep(5000);
  if (sig_stop || !nu_exists(sync_dir, "calm.done") ||
      nu_exists(sync_dir, "measure.done")) {
    fprintf(stderr, "[flood] never started (no calm.done)\n");
    printf("flood.sent=0\nflood.sent_per_s=0\n");
    return 1;
  }
  vlog("flooding");

  static uint8_t bufs[BATCH][DG_MAX + 8];
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  /* sched: datagrams whose time has come (sent, refused or given up);
   * ok: those the kernel took */
  unsigned long long sched = 0, ok = 0, errors = 0, skipped = 0;
  unsigned long long by_kind[G_KINDS] = {0}, ok_at_on = 0;
  size_t next_dst = 0;
  int on = 0;
  uint64_t start = nu_now_ns(), t_on = 0, end = start, tick = start;
  uint64_t max_lag = (uint64_t)(rate / 10); /* never catch up more than 0.1 s */
  for (uint64_t iter = 0; !sig_stop; iter++) {
    tick += 1000000ull; /* every millisecond */
    struct timespec ts = {(time_t)(tick / 1000000000ull),
                          (long)(tick % 1000000000ull)};
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    uint64_t now = nu_now_ns();
    if (now > tick + 100000000ull)
      tick = now; /* asleep for long (stopped?): no burst to catch up */
    uint64_t due = (uint64_t)((double)(now - start) * rate / 1e9);
    if (due > sched + max_lag) {
      skipped += due - max_lag - sched;
      sched = due - max_lag;
    }
    while (sched < due && !sig_stop) {
      unsigned nb = (unsigned)(due - sched < BATCH ? due - sched : BATCH);
      for (unsigned i = 0; i < nb; i++) {
        int kind = kinds[nu_rand(&rng) % (unsigned)nkinds];
        iov[i].iov_base = bufs[i];
        iov[i].iov_len = flood_fill(bufs[i], kind);
        by_kind[kind]++;
        memset(&msgs[i], 0, sizeof msgs[i]);
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &dst[next_dst];
        msgs[i].msg_hdr.msg_namelen = sizeof dst[next_dst];
        next_dst = (next_dst + 1) % ndst;
      }
      int r = sendmmsg(fd, msgs, nb, 0);
      if (r < 0) {
        if (errno == EINTR)
          continue;
        errors++;
        r = 1; /* skip the one that was refused */
      } else {
        ok += (unsigned)r;
      }
      sched += (unsigned)r;
    }
    if (!on && now - start >= (uint64_t)(soak_s * 1e9)) {
      nu_touch(sync_dir, "flood.on");
      on = 1;
      t_on = now;
      ok_at_on = ok;
    }
    end = now;
    if (iter % 10 == 0 &&
        (nu_exists(sync_dir, "measure.done") || now >= deadline))
      break;
  }
  close(fd);
  double secs = (double)(end - start) / 1e9;
  printf("flood.sent=%llu\nflood.send_errors=%llu\nflood.skipped=%llu\n", ok,
         errors, skipped);
  printf("flood.seconds=%.3f\nflood.sent_per_s=%.0f\n", secs,
         secs > 0 ? (double)ok / secs : 0.0);
  if (on && end > t_on) /* while the client measured */
    printf("flood.sent_per_s_measured=%.0f\n",
           (double)(ok - ok_at_on) / ((double)(end - t_on) / 1e9));
  if (verbose)
    for (int k = 0; k < G_KINDS; k++)
      fprintf(stderr, "[flood] %-16s %llu\n", kind_names[k], by_kind[k]);
  fflush(stdout);
  return 0;
}

/* ==== main ================================================================
 */

static void usage(void) {
  fprintf(stderr,
          "usage: lanchat-bench-flood --role client|server --bind ADDR "
          "--bcast ADDR --dir DATA --sync DIR\n"
          "         [--iface NAME] [--dport PORT] [--port PORT] [--rtt-count "
          "N] [--burst N]\n"
          "         [--size BYTES] [--phase-timeout S] [--timeout S]\n"
          "       lanchat-bench-flood --role flood --targets IP,IP --sync DIR "
          "[--dport PORT]\n"
          "         [--port PORT] [--rate N] [--soak S] [--kinds K,K] "
          "[--timeout S]\n");
}

int main(int argc, char **argv) {
  const char *role = NULL, *bind4 = NULL, *bcast = NULL, *iface = "eth0";
  const char *dir = NULL, *targets = NULL;
  unsigned dport = LC_DISCOVERY_PORT, port = 0;
  double rate = 50000;
  static const struct option lo[] = {
      {"role", required_argument, NULL, 'r'},
      {"bind", required_argument, NULL, 'b'},
      {"bcast", required_argument, NULL, 'B'},
      {"iface", required_argument, NULL, 'i'},
      {"dport", required_argument, NULL, 'D'},
      {"port", required_argument, NULL, 'p'},
      {"dir", required_argument, NULL, 'd'},
      {"sync", required_argument, NULL, 'S'},
      {"targets", required_argument, NULL, 'T'},
      {"rate", required_argument, NULL, 'R'},
      {"rtt-count", required_argument, NULL, 'n'},
      {"burst", required_argument, NULL, 'N'},
      {"size", required_argument, NULL, 's'},
      {"phase-timeout", required_argument, NULL, 'P'},
      {"timeout", required_argument, NULL, 't'},
      {"soak", required_argument, NULL, 'k'},
      {"kinds", required_argument, NULL, 'K'},
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
    case 'D':
      dport = (unsigned)atoi(optarg);
      break;
    case 'p':
      port = (unsigned)atoi(optarg);
      break;
    case 'd':
      dir = optarg;
      break;
    case 'S':
      sync_dir = optarg;
      break;
    case 'T':
      targets = optarg;
      break;
    case 'R':
      rate = atof(optarg);
      break;
    case 'n':
      rtt_count = (unsigned)atoi(optarg);
      break;
    case 'N':
      burst_n = (unsigned)atoi(optarg);
      break;
    case 's':
      text_size = (size_t)atoi(optarg);
      break;
    case 'P':
      phase_timeout_s = atof(optarg);
      break;
    case 't':
      timeout_s = atof(optarg);
      break;
    case 'k':
      soak_s = atof(optarg);
      break;
    case 'K':
      if (parse_kinds(optarg) < 0)
        return 2;
      break;
    default:
      usage();
      return 2;
    }
  }
  if (!role || !sync_dir || dport == 0 || dport > 65535 || port > 65535 ||
      timeout_s <= 0 || phase_timeout_s <= 0) {
    usage();
    return 2;
  }
  if (!port)
    port = dport + 1;
  const char *v = getenv("BENCH_VERBOSE");
  verbose = v ? atoi(v) : 0;
  role_name = role;
  if (nkinds == 0)
    for (int k = 0; k < G_KINDS; k++)
      kinds[nkinds++] = k;
  if (strcmp(role, "flood") == 0) {
    if (!targets || rate <= 0 || rate > 10e6) {
      usage();
      return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sig;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    return run_flood(targets, dport, port, rate);
  }
  is_client = strcmp(role, "client") == 0;
  if ((!is_client && strcmp(role, "server") != 0) || !bind4 || !bcast || !dir ||
      rtt_count == 0 || burst_n == 0 || text_size < 16 ||
      text_size > TEXT_MAX) {
    usage();
    return 2;
  }
  rtts = calloc(rtt_count, sizeof *rtts);
  burst_ids = calloc(burst_n, sizeof *burst_ids);
  burst_done = calloc(burst_n, 1);
  if (!rtts || !burst_ids || !burst_done) {
    fprintf(stderr, "out of memory\n");
    return 1;
  }
  int rc = run_node(bind4, bcast, iface, dport, port, dir);
  free(rtts);
  free(burst_ids);
  free(burst_done);
  return rc;
}
