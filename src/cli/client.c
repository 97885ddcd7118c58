/* client.c: lanchat's connection to lanchatd: JSON lines over the control
 * socket, a request and its reply matched by id, events kept in order. */
#include "cli.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int lcc_connect(lcc_conn *c, const char *sock_path) {
  memset(c, 0, sizeof *c);
  c->fd = -1;
  c->next_id = 1;
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  if (strlen(sock_path) >= sizeof sa.sun_path)
    return -ENAMETOOLONG;
  strcpy(sa.sun_path, sock_path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  c->fd = fd;
  c->pending = lcj_arr();
  return 0;
}

void lcc_close(lcc_conn *c) {
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
  free(c->buf);
  c->buf = NULL;
  c->len = c->cap = 0;
  lcj_free(c->pending);
  c->pending = NULL;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0)
      return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int send_req(lcc_conn *c, int64_t id, const char *cmd, lcj *args) {
  lcj *req = args ? args : lcj_obj();
  lcj_set_int(req, "id", id);
  lcj_set_str(req, "cmd", cmd);
  char *text = lcj_dump(req);
  lcj_free(req);
  if (!text)
    return -1;
  size_t n = strlen(text);
  int rc = write_all(c->fd, text, n);
  if (rc == 0)
    rc = write_all(c->fd, "\n", 1);
  free(text);
  return rc;
}

int lcc_send(lcc_conn *c, const char *cmd, lcj *args) {
  return send_req(c, c->next_id++, cmd, args);
}

/* A whole line from the buffer, parsed; NULL if none is complete.  A line
 * that is not JSON (it never should be) is skipped. */
static lcj *take_line(lcc_conn *c) {
  for (;;) {
    char *nl = c->buf ? memchr(c->buf, '\n', c->len) : NULL;
    if (!nl)
      return NULL;
    size_t n = (size_t)(nl - c->buf);
    char err[200];
    lcj *v = lcj_parse(c->buf, n, err, sizeof err);
    memmove(c->buf, nl + 1, c->len - n - 1);
    c->len -= n + 1;
    if (v)
      return v;
    fprintf(stderr, "lanchat: ignored a line from the daemon: %s\n", err);
  }
}

int lcc_ready(const lcc_conn *c) {
  return lcj_len(c->pending) > 0 ||
         (c->buf && memchr(c->buf, '\n', c->len) != NULL);
}

/* Reads more bytes: 1 read, 0 timeout, -1 closed. */
static int fill(lcc_conn *c, int timeout_ms) {
  struct pollfd p = {.fd = c->fd, .events = POLLIN};
  int r;
  do
    r = poll(&p, 1, timeout_ms);
  while (r < 0 && errno == EINTR);
  if (r == 0)
    return 0;
  if (r < 0)
    return -1;
  if (c->cap - c->len < 65536) {
    size_t cap = c->cap ? c->cap * 2 : 65536;
    char *nb = realloc(c->buf, cap);
    if (!nb)
      return -1;
    c->buf = nb;
    c->cap = cap;
  }
  ssize_t n;
  do
    n = read(c->fd, c->buf + c->len, c->cap - c->len);
  while (n < 0 && errno == EINTR);
  if (n <= 0)
    return -1;
  c->len += (size_t)n;
  return 1;
}

int lcc_next(lcc_conn *c, int timeout_ms, lcj **out) {
  if (lcj_len(c->pending) > 0) {
    *out = lcj_ref(lcj_at(c->pending, 0));
    /* drop the first element: rebuild (events are few) */
    lcj *rest = lcj_arr();
    for (size_t i = 1; i < lcj_len(c->pending); i++)
      lcj_push(rest, lcj_ref(lcj_at(c->pending, i)));
    lcj_free(c->pending);
    c->pending = rest;
    return 1;
  }
  for (;;) {
    lcj *v = take_line(c);
    if (v) {
      *out = v;
      return 1;
    }
    int r = fill(c, timeout_ms);
    if (r <= 0)
      return r;
  }
}

lcj *lcc_call(lcc_conn *c, const char *cmd, lcj *args) {
  int64_t id = c->next_id++;
  if (send_req(c, id, cmd, args) != 0)
    return NULL;
  for (;;) {
    lcj *v = take_line(c);
    if (!v) {
      if (fill(c, -1) <= 0)
        return NULL;
      continue;
    }
    lcj *rid = lcj_get(v, "id");
    if (lcj_get(v, "event")) {
      lcj_push(c->pending, v);
      continue;
    }
    if (lcj_is_int(rid) && lcj_ival(rid) == id)
      return v;
    /* a reply to a request sent without waiting (lcc_send), or one the
     * daemon could not attribute (id null): only errors matter */
    lcj_free(v);
  }
}
