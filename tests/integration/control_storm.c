/* control_storm.c: a client of lanchatd's control socket that misbehaves
 * on purpose, for tests/integration/daemon_storm.sh: huge lines, lines sent
 * a byte at a time, clients that never read, a thousand connections held
 * open, unfinished lines; and a well-behaved one that times the daemon's
 * answers.  Plain POSIX sockets; one mode per run, one summary line on
 * standard output; exit 0 when the mode's expectations hold, 1 otherwise,
 * 2 on bad usage.
 *
 *   ping SOCK COUNT INTERVAL_MS       COUNT connections, one whoami each
 *   big SOCK BYTES newline|close|slow a line of BYTES (see big())
 *   noread SOCK SUBSCRIBE REQUESTS LINE WAIT_S
 *                                      never reads; must be dropped
 *   hold SOCK N SECONDS PARTIAL READY  N connections, PARTIAL bytes of an
 *                                      unfinished line on each; counts
 *                                      those the daemon closes
 *   fill SOCK PEER COUNT BYTES         COUNT sends of BYTES to PEER
 *   who SOCK                           served, refused or denied?
 *   halfclose SOCK SUBSCRIBE N WAIT_MS TRIGGER
 *                                      N requests, then end of its
 *                                      requests; all N answered?
 *   stopflood SOCK N                   stop and N requests in one write:
 *                                      all answered before end of file? */
#define _GNU_SOURCE /* POLLRDHUP */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

/* A connected socket, or -1 with errno set. */
static int dial(const char *path) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(sa.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

/* Writes all of buf (blocking); 0, or -1 with errno. */
static int put(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static int put_str(int fd, const char *s) {
  return put(fd, s, strlen(s));
}

/* Reads until `lines` newlines arrived (stored in out, NUL-terminated,
 * truncated to cap), end of file, or timeout_ms.  Returns the number of
 * lines read, or -1 on end of file / error before any. */
static int get_lines(int fd, int lines, char *out, size_t cap, int timeout_ms) {
  size_t len = 0;
  int got = 0;
  double end = now_ms() + timeout_ms;
  out[0] = '\0';
  while (got < lines) {
    int left = (int)(end - now_ms());
    if (left <= 0)
      break;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, left);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    char buf[65536];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0)
      return got ? got : -1;
    for (ssize_t i = 0; i < n; i++) {
      if (len + 1 < cap)
        out[len++] = buf[i];
      if (buf[i] == '\n')
        got++;
    }
    out[len] = '\0';
  }
  return got;
}

/* ---- ping: the owner's ordinary request, timed ---- */
static int mode_ping(const char *sock, int count, int interval) {
  double worst = 0, sum = 0;
  for (int i = 0; i < count; i++) {
    double t0 = now_ms();
    int fd = dial(sock);
    if (fd < 0) {
      printf("ping %d: connect: %s\n", i, strerror(errno));
      return 1;
    }
    char reply[4096];
    if (put_str(fd, "{\"id\":\"ping\",\"cmd\":\"whoami\"}\n") != 0 ||
        get_lines(fd, 1, reply, sizeof reply, 15000) != 1 ||
        !strstr(reply, "\"id\":\"ping\",\"ok\":true")) {
      printf("ping %d: no answer after %.0f ms: %.200s\n", i, now_ms() - t0,
             reply);
      close(fd);
      return 1;
    }
    close(fd);
    double dt = now_ms() - t0;
    sum += dt;
    if (dt > worst)
      worst = dt;
    if (interval > 0)
      sleep_ms(interval);
  }
  printf("ping n=%d max_ms=%.1f avg_ms=%.1f\n", count, worst,
         count ? sum / count : 0);
  return 0;
}

/* A request line of exactly bytes bytes, newline included if nl: a whoami
 * padded with an ignored member. */
static char *padded(const char *id, size_t bytes, int nl) {
  char head[128];
  snprintf(head, sizeof head, "{\"id\":\"%s\",\"cmd\":\"whoami\",\"pad\":\"",
           id);
  const char *tail = nl ? "\"}\n" : "\"}";
  size_t h = strlen(head), t = strlen(tail);
  if (bytes < h + t)
    bytes = h + t;
  char *line = malloc(bytes + 1);
  if (!line)
    return NULL;
  memset(line, 'a', bytes);
  snprintf(line, h + 1, "%s", head);
  line[h] = 'a'; /* over snprintf's NUL */
  snprintf(line + bytes - t, t + 1, "%s", tail);
  return line;
}

/* ---- big: newline: a line of BYTES, then a whoami on the same
 * connection (too_large, then an answer); close: BYTES without a newline,
 * then close; slow: a valid request of BYTES written a byte a millisecond
 * (answered) ---- */
static int mode_big(const char *sock, size_t bytes, const char *how) {
  int fd = dial(sock);
  if (fd < 0) {
    printf("big: connect: %s\n", strerror(errno));
    return 1;
  }
  char reply[8192];
  int ok = 0;
  double t0 = now_ms();
  if (!strcmp(how, "newline")) {
    char *line = padded("big", bytes, 1);
    ok = line && put(fd, line, bytes) == 0 &&
         put_str(fd, "{\"id\":\"after\",\"cmd\":\"whoami\"}\n") == 0 &&
         get_lines(fd, 2, reply, sizeof reply, 20000) == 2 &&
         strstr(reply, "\"code\":\"too_large\"") &&
         strstr(reply, "\"id\":\"after\",\"ok\":true");
    free(line);
  } else if (!strcmp(how, "close")) {
    char *line = padded("cut", bytes, 0);
    ok = line && put(fd, line, bytes) == 0;
    free(line);
    reply[0] = '\0';
  } else if (!strcmp(how, "slow")) {
    char *line = padded("slow", bytes, 1);
    ok = line != NULL;
    for (size_t i = 0; ok && i < bytes; i++) {
      ok = put(fd, line + i, 1) == 0;
      sleep_ms(1);
    }
    ok = ok && get_lines(fd, 1, reply, sizeof reply, 15000) == 1 &&
         strstr(reply, "\"id\":\"slow\",\"ok\":true");
    free(line);
  } else {
    close(fd);
    return 2;
  }
  close(fd);
  printf("big %s bytes=%zu ok=%d ms=%.0f%s%.200s\n", how, bytes, ok,
         now_ms() - t0, ok ? "" : " reply=", ok ? "" : reply);
  return ok ? 0 : 1;
}

/* ---- noread: (subscribes,) writes REQUESTS copies of LINE, never reads;
 * the daemon must close it within WAIT_S seconds ---- */
static int mode_noread(const char *sock, int subscribe, int requests,
                       const char *line, int wait_s) {
  int fd = dial(sock);
  if (fd < 0) {
    printf("noread: connect: %s\n", strerror(errno));
    return 1;
  }
  double t0 = now_ms();
  if (subscribe)
    put_str(fd, "{\"id\":\"sub\",\"cmd\":\"subscribe\"}\n");
  for (int i = 0; i < requests; i++)
    if (put_str(fd, line) != 0 || put_str(fd, "\n") != 0)
      break; /* dropped already */
  struct pollfd p = {.fd = fd, .events = POLLRDHUP};
  int r;
  do
    r = poll(&p, 1, wait_s * 1000);
  while (r < 0 && errno == EINTR);
  close(fd);
  if (r == 1) {
    printf("noread dropped_after_ms=%.0f\n", now_ms() - t0);
    return 0;
  }
  printf("noread: not dropped after %d s\n", wait_s);
  return 1;
}

/* ---- hold: N connections, PARTIAL bytes of a line on each, kept open for
 * SECONDS or until the daemon closed them all; READY (a file) is created
 * once all are open ---- */
static int mode_hold(const char *sock, int n, int seconds, size_t partial,
                     const char *ready) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  struct pollfd *p = calloc((size_t)n, sizeof *p);
  char *answered = calloc((size_t)n, 1);
  char *line = partial ? padded("held", partial, 0) : NULL;
  if (!p || !answered || (partial && !line)) {
    free(p);
    free(answered);
    free(line);
    return 1;
  }
  int connected = 0, failed = 0, closed = 0, replies = 0;
  double t0 = now_ms(), first = -1, last = -1;
  for (int i = 0; i < n; i++) {
    p[i].fd = dial(sock);
    p[i].events = POLLIN;
    if (p[i].fd < 0) {
      failed++;
      continue;
    }
    connected++;
    if (line && put(p[i].fd, line, partial) != 0) {
      close(p[i].fd); /* closed by the daemon while we wrote */
      p[i].fd = -1;
      closed++;
    }
  }
  double sent = now_ms();
  if (ready) {
    FILE *f = fopen(ready, "w");
    if (f)
      fclose(f);
  }
  double end = sent + seconds * 1000.0;
  while (closed < connected) {
    int left = (int)(end - now_ms());
    if (left <= 0)
      break;
    int r = poll(p, (nfds_t)n, left);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    for (int i = 0; i < n; i++) {
      if (p[i].fd < 0 || !p[i].revents)
        continue;
      char buf[4096];
      ssize_t got = recv(p[i].fd, buf, sizeof buf, MSG_DONTWAIT);
      if (got > 0) {
        replies += !answered[i];
        answered[i] = 1;
        continue;
      }
      if (got < 0 && (errno == EAGAIN || errno == EINTR))
        continue;
      double t = now_ms() - sent;
      if (first < 0)
        first = t;
      last = t;
      close(p[i].fd);
      p[i].fd = -1;
      closed++;
    }
  }
  for (int i = 0; i < n; i++)
    if (p[i].fd >= 0)
      close(p[i].fd);
  printf("hold n=%d connected=%d failed=%d closed=%d answered=%d "
         "first_close_ms=%.0f last_close_ms=%.0f connect_ms=%.0f\n",
         n, connected, failed, closed, replies, first, last, sent - t0);
  free(p);
  free(answered);
  free(line);
  return 0;
}

/* ---- fill: COUNT messages of BYTES to PEER, replies read ---- */
static int mode_fill(const char *sock, const char *peer, int count,
                     size_t bytes) {
  int fd = dial(sock);
  if (fd < 0) {
    printf("fill: connect: %s\n", strerror(errno));
    return 1;
  }
  size_t cap = bytes + 256;
  char *req = malloc(cap);
  if (!req)
    return 1;
  int ok = 0;
  for (int i = 0; i < count; i++) {
    int h = snprintf(req, cap,
                     "{\"id\":%d,\"cmd\":\"send\",\"to\":\"%s\",\"text\":\"", i,
                     peer);
    memset(req + h, 'a' + i % 26, bytes);
    memcpy(req + h + bytes, "\"}\n", 4);
    char reply[65536];
    if (put_str(fd, req) != 0 ||
        get_lines(fd, 1, reply, sizeof reply, 15000) != 1)
      break;
    if (!strstr(reply, "\"ok\":true")) {
      printf("fill: %.300s\n", reply);
      break;
    }
    ok++;
  }
  free(req);
  close(fd);
  printf("fill sent=%d of %d\n", ok, count);
  return ok == count ? 0 : 1;
}

/* ---- who: is this process let in? ---- */
static int mode_who(const char *sock) {
  int fd = dial(sock);
  if (fd < 0) {
    printf("denied (%s)\n", strerror(errno));
    return 0;
  }
  char reply[4096];
  put_str(fd, "{\"id\":\"who\",\"cmd\":\"whoami\"}\n");
  int n = get_lines(fd, 1, reply, sizeof reply, 5000);
  close(fd);
  if (n == 1)
    printf("served\n");
  else if (n < 0)
    printf("refused\n");
  else
    printf("no answer\n");
  return 0;
}

/* Reads until end of file: what arrived (NUL-terminated, free it), or
 * NULL if no end of file within timeout_ms or on an error. */
static char *get_all(int fd, size_t *len, int timeout_ms) {
  size_t cap = 1 << 20;
  char *all = malloc(cap);
  double end = now_ms() + timeout_ms;
  *len = 0;
  while (all) {
    int left = (int)(end - now_ms());
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = left > 0 ? poll(&p, 1, left) : 0;
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    if (cap - *len < 65536) {
      char *more = realloc(all, cap * 2);
      if (!more)
        break;
      all = more;
      cap *= 2;
    }
    ssize_t n = recv(fd, all + *len, cap - *len - 1, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      if (n < 0)
        break;
      all[*len] = '\0';
      return all;
    }
    *len += (size_t)n;
  }
  free(all);
  return NULL;
}

/* The number of lines in text[0..len) that contain mark. */
static int count_lines(const char *text, size_t len, const char *mark) {
  int n = 0;
  for (const char *p = text, *end = text + len; p < end;) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl)
      break;
    n += memmem(p, (size_t)(nl - p), mark, strlen(mark)) != NULL;
    p = nl + 1;
  }
  return n;
}

/* N help requests, "h0".."h<N-1>", as one buffer. */
static char *help_lines(int n, size_t *len) {
  char *all = malloc((size_t)n * 64 + 1);
  *len = 0;
  for (int i = 0; all && i < n; i++)
    *len +=
        (size_t)sprintf(all + *len, "{\"id\":\"h%d\",\"cmd\":\"help\"}\n", i);
  return all;
}

/* ---- halfclose: (subscribes,) writes N help requests and shuts down its
 * writing side; WAIT_MS / 2 later sends TRIGGER (if not empty) on another
 * connection; WAIT_MS later reads: every reply must arrive, then end of
 * file (CONTROL.md section 8: the replies to the last requests are written
 * before the daemon closes; also when an event comes meanwhile, or the
 * daemon stops) ---- */
static int mode_halfclose(const char *sock, int subscribe, int n, int wait_ms,
                          const char *trigger) {
  int fd = dial(sock);
  if (fd < 0) {
    printf("halfclose: connect: %s\n", strerror(errno));
    return 1;
  }
  char reply[4096];
  if (subscribe &&
      (put_str(fd, "{\"id\":\"sub\",\"cmd\":\"subscribe\"}\n") != 0 ||
       get_lines(fd, 1, reply, sizeof reply, 5000) != 1)) {
    printf("halfclose: no answer to subscribe\n");
    close(fd);
    return 1;
  }
  size_t len;
  char *reqs = help_lines(n, &len);
  if (!reqs || put(fd, reqs, len) != 0 || shutdown(fd, SHUT_WR) != 0) {
    printf("halfclose: cannot write: %s\n", strerror(errno));
    free(reqs);
    close(fd);
    return 1;
  }
  free(reqs);
  double t0 = now_ms();
  int triggered = 0;
  if (trigger[0]) {
    sleep_ms(wait_ms / 2);
    int fd2 = dial(sock);
    triggered = fd2 >= 0 && put_str(fd2, trigger) == 0 &&
                put_str(fd2, "\n") == 0 &&
                get_lines(fd2, 1, reply, sizeof reply, 5000) == 1 &&
                strstr(reply, "\"ok\":true");
    if (fd2 >= 0)
      close(fd2);
  }
  double left = wait_ms - (now_ms() - t0);
  if (left > 0)
    sleep_ms((long)left);
  char *all = get_all(fd, &len, 10000);
  close(fd);
  int replies = all ? count_lines(all, len, "\"id\":\"h") : 0;
  int events = all ? count_lines(all, len, "{\"event\":") : 0;
  printf("halfclose n=%d replies=%d events=%d eof=%d triggered=%d\n", n,
         replies, events, all != NULL, triggered);
  free(all);
  return all && replies == n && (triggered || !trigger[0]) ? 0 : 1;
}

/* ---- stopflood: stop and N whoami in one write: the reply to stop, N
 * replies (`stopping`), then end of file ---- */
static int mode_stopflood(const char *sock, int n) {
  int fd = dial(sock);
  if (fd < 0) {
    printf("stopflood: connect: %s\n", strerror(errno));
    return 1;
  }
  char *reqs = malloc((size_t)n * 64 + 64);
  size_t len = 0;
  if (reqs) {
    len = (size_t)sprintf(reqs, "{\"id\":\"bye\",\"cmd\":\"stop\"}\n");
    for (int i = 0; i < n; i++)
      len += (size_t)sprintf(reqs + len,
                             "{\"id\":\"w%d\",\"cmd\":\"whoami\"}\n", i);
  }
  if (!reqs || put(fd, reqs, len) != 0) {
    printf("stopflood: cannot write: %s\n", strerror(errno));
    free(reqs);
    close(fd);
    return 1;
  }
  free(reqs);
  double t0 = now_ms();
  char *all = get_all(fd, &len, 10000);
  close(fd);
  int stopped = all ? count_lines(all, len, "\"id\":\"bye\",\"ok\":true") : 0;
  int lines = all ? count_lines(all, len, "") : 0;
  int stopping = all ? count_lines(all, len, "\"code\":\"stopping\"") : 0;
  printf("stopflood n=%d lines=%d stop_ok=%d stopping=%d eof=%d ms=%.0f\n", n,
         lines, stopped, stopping, all != NULL, now_ms() - t0);
  free(all);
  return all && stopped == 1 && stopping == n && lines == n + 1 ? 0 : 1;
}

/* A non-negative number, or exit 2. */
static long num(const char *s) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 0);
  if (errno || end == s || *end || v < 0) {
    fprintf(stderr, "control_storm: '%s' is not a number\n", s);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, NULL, _IOLBF, 0);
  const char *mode = argc > 2 ? argv[1] : "";
  if (!strcmp(mode, "ping") && argc == 5)
    return mode_ping(argv[2], (int)num(argv[3]), (int)num(argv[4]));
  if (!strcmp(mode, "big") && argc == 5)
    return mode_big(argv[2], (size_t)num(argv[3]), argv[4]);
  if (!strcmp(mode, "noread") && argc == 7)
    return mode_noread(argv[2], (int)num(argv[3]), (int)num(argv[4]), argv[5],
                       (int)num(argv[6]));
  if (!strcmp(mode, "hold") && argc == 7)
    return mode_hold(argv[2], (int)num(argv[3]), (int)num(argv[4]),
                     (size_t)num(argv[5]), argv[6][0] ? argv[6] : NULL);
  if (!strcmp(mode, "fill") && argc == 6)
    return mode_fill(argv[2], argv[3], (int)num(argv[4]), (size_t)num(argv[5]));
  if (!strcmp(mode, "who") && argc == 3)
    return mode_who(argv[2]);
  if (!strcmp(mode, "halfclose") && argc == 7)
    return mode_halfclose(argv[2], (int)num(argv[3]), (int)num(argv[4]),
                          (int)num(argv[5]), argv[6]);
  if (!strcmp(mode, "stopflood") && argc == 4)
    return mode_stopflood(argv[2], (int)num(argv[3]));
  fprintf(stderr, "usage: see the comment at the top of control_storm.c\n");
  return 2;
}
