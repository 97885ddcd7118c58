/* bench_util.h: what the benchmark programs share: a monotonic clock in
 * nanoseconds, a free UDP port on 127.0.0.1 (for the discovery port of
 * a run), a temporary folder under $TMPDIR (tools/bench points it at its
 * own work folder, which it removes even after a signal) and the result
 * lines.  Header only; each benchmark is one program.
 *
 * Results: each program prints one line `key=value` on stdout per figure
 * (key in [a-z0-9_.], its unit at its end: _ms, _us, _kib, _msg_s...; the
 * value a number); tools/bench runs it several times and aggregates.
 * Anything for people goes to stderr. */
#ifndef LC_BENCH_UTIL_H
#define LC_BENCH_UTIL_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint16_t free_port(void) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, (struct sockaddr *)&a, sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &len);
  close(fd);
  return ntohs(a.sin_port);
}

/* Makes a new folder $TMPDIR/lc-bench-TAG-XXXXXX (/tmp without TMPDIR)
 * and writes its path into buf; 0, or -1 when it cannot. */
static inline int bench_mkdtemp(char *buf, size_t size, const char *tag) {
  const char *tmp = getenv("TMPDIR");
  if (!tmp || !*tmp)
    tmp = "/tmp";
  int n = snprintf(buf, size, "%s/lc-bench-%s-XXXXXX", tmp, tag);
  if (n < 0 || (size_t)n >= size)
    return -1;
  return mkdtemp(buf) ? 0 : -1;
}

#endif
