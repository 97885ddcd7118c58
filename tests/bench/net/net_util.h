/* net_util.h: what the two netlab benchmark programs (bench_chat.c,
 * bench_flood.c; run by tools/bench-net) share: the monotonic clock that
 * every network namespace of one machine reads alike, percentiles, files
 * used as flags between hosts, the resident memory, the kernel's UDP
 * counters of the calling process's network namespace, a fast random
 * generator, and starting and ending a node on a loop of its own.  Header
 * only.
 *
 * Results are `key=value` lines on stdout (key in [a-z0-9_.], the unit at
 * its end); anything for people goes to stderr. */
#ifndef LC_BENCH_NET_UTIL_H
#define LC_BENCH_NET_UTIL_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <uv.h>

#include "lanchat.h"

static inline uint64_t nu_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline int nu_cmp_u64(const void *x, const void *y) {
  uint64_t p = *(const uint64_t *)x, q = *(const uint64_t *)y;
  return p < q ? -1 : p > q;
}

/* The q-quantile of n sorted values: the value at 0-based index
 * floor(q * n) (clamped to n - 1), so that q * n of the values lie below
 * it.  p99.9 of 2000 values is index 1998, the 2nd-largest; of 500, the
 * largest. */
static inline uint64_t nu_quantile(const uint64_t *sorted, size_t n, double q) {
  if (n == 0)
    return 0;
  size_t i = (size_t)(q * (double)n);
  return sorted[i < n ? i : n - 1];
}

/* Sorts v and prints PREFIX.n, .p50, .p99, .p999 (with p999) and .max in
 * the unit given (divisor from nanoseconds: 1e6 for ms, 1e3 for us). */
static inline void nu_print_dist(const char *prefix, uint64_t *v, size_t n,
                                 int with_p999, const char *unit, double div) {
  printf("%s.n=%zu\n", prefix, n);
  if (n == 0)
    return;
  qsort(v, n, sizeof *v, nu_cmp_u64);
  printf("%s.p50_%s=%.3f\n", prefix, unit,
         (double)nu_quantile(v, n, 0.50) / div);
  printf("%s.p99_%s=%.3f\n", prefix, unit,
         (double)nu_quantile(v, n, 0.99) / div);
  if (with_p999)
    printf("%s.p999_%s=%.3f\n", prefix, unit,
           (double)nu_quantile(v, n, 0.999) / div);
  printf("%s.max_%s=%.3f\n", prefix, unit, (double)v[n - 1] / div);
}

static inline int nu_exists(const char *dir, const char *name) {
  char p[4096];
  struct stat st;
  snprintf(p, sizeof p, "%s/%s", dir, name);
  return stat(p, &st) == 0;
}

static inline void nu_touch(const char *dir, const char *name) {
  char p[4096];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "w");
  if (f)
    fclose(f);
  else
    perror(p);
}

/* VmRSS of this process in KiB, 0 if unknown. */
static inline unsigned long nu_rss_kib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  unsigned long kib = 0;
  if (!f)
    return 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %lu kB", &kib) == 1)
      break;
  fclose(f);
  return kib;
}

/* The kernel's UDP counters of this network namespace (/proc/net/snmp):
 * datagrams received, and those dropped because a socket's receive buffer
 * was full.  0 and 0 when unreadable. */
static inline void nu_udp_counters(unsigned long long *in,
                                   unsigned long long *rcvbuf_errors) {
  FILE *f = fopen("/proc/net/snmp", "r");
  char head[512], vals[512];
  *in = *rcvbuf_errors = 0;
  if (!f)
    return;
  while (fgets(head, sizeof head, f)) {
    if (strncmp(head, "Udp: ", 5) != 0 || !fgets(vals, sizeof vals, f))
      continue;
    /* Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors ... */
    unsigned long long a, b, c, d, e;
    if (sscanf(vals, "Udp: %llu %llu %llu %llu %llu", &a, &b, &c, &d, &e) ==
        5) {
      *in = a;
      *rcvbuf_errors = e;
    }
    break;
  }
  fclose(f);
}

/* xorshift64*: fast, good enough for garbage. */
static inline uint64_t nu_rand(uint64_t *s) {
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1Dull;
}

/* Starts a node with o on loop, and SIGINT and SIGTERM calling on_signal
 * (which sets the program's stop flag).  0, or 1 with why on stderr. */
static inline int nu_node_start(uv_loop_t *loop, lc_node **node,
                                const lc_node_options *o, const char *who,
                                uv_signal_t *sigint_h, uv_signal_t *sigterm_h,
                                uv_signal_cb on_signal) {
  int rc = lc_node_new(node, loop, o);
  if (rc == 0)
    rc = lc_node_start(*node);
  if (rc < 0) {
    fprintf(stderr, "[%s] node: %s\n", who, lc_strerror(rc));
    return 1;
  }
  uv_signal_init(loop, sigint_h);
  uv_signal_init(loop, sigterm_h);
  uv_signal_start(sigint_h, on_signal, SIGINT);
  uv_signal_start(sigterm_h, on_signal, SIGTERM);
  return 0;
}

static int nu_stopped;

static inline void nu_on_stop(lc_node *n, void *u) {
  (void)n;
  (void)u;
  nu_stopped = 1;
}

/* The end of a run: closes the timer and the signal handles, stops the
 * node (waiting up to 5 s) and frees it.  1 if it stopped. */
static inline int nu_node_end(uv_loop_t *loop, lc_node *node, uv_timer_t *timer,
                              uv_signal_t *sigint_h, uv_signal_t *sigterm_h) {
  uv_timer_stop(timer);
  uv_close((uv_handle_t *)timer, NULL);
  uv_close((uv_handle_t *)sigint_h, NULL);
  uv_close((uv_handle_t *)sigterm_h, NULL);
  if (lc_node_stop(node, nu_on_stop) == 0) {
    uint64_t end = nu_now_ns() + 5000000000ull;
    while (!nu_stopped && nu_now_ns() < end)
      uv_run(loop, UV_RUN_ONCE);
  }
  if (nu_stopped)
    lc_node_free(node);
  uv_run(loop, UV_RUN_NOWAIT);
  return nu_stopped;
}

#endif
