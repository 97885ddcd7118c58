/* server.c: lanchatd's event loop: the control socket (JSON lines over a
 * Unix socket, mode 0600, owner only), its clients and their subscriptions,
 * the signals that stop the daemon, and the shutdown.  The only daemon file
 * that includes <uv.h>. */
#define _GNU_SOURCE /* struct ucred, strptime, timegm */
#include "daemon.h"
#include "paths.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

/* A request line may carry a 1 MiB text, escaped (\uXXXX is 6 bytes for
 * 1): 8 MiB is the longest line read; a longer one gets an error and is
 * skipped up to its newline. */
#define LINE_MAX_BYTES (8u << 20)
/* Replies and events waiting for a client that does not read: beyond this
 * the client is dropped rather than let the daemon grow. */
#define OUT_MAX_BYTES (16u << 20)
#define CLIENTS_MAX 256
#define SAVE_EVERY_MS 2000

typedef struct client {
  uv_pipe_t pipe;
  struct client *prev, *next;
  lcd_daemon *d;
  char *buf;
  size_t len, cap;
  int skipping; /* discarding the rest of an oversized line */
  int subscribed;
  unsigned mask;
  int closing;
} client;

typedef struct {
  uv_loop_t loop;
  uv_pipe_t listener;
  uv_signal_t sig_term, sig_int, sig_hup;
  uv_timer_t save_timer;
  int listening;
  client *clients;
  size_t n_clients, n_subscribers;
  int shutting_down;
} server;

typedef struct {
  uv_write_t req;
  char *data;
} write_req;

static server *srv_of(lcd_daemon *d) {
  return d->server;
}

/* ---- clients -------------------------------------------------------------
 */

static void client_closed(uv_handle_t *h) {
  client *c = h->data;
  free(c->buf);
  free(c);
}

static void client_close(client *c) {
  if (c->closing)
    return;
  server *s = srv_of(c->d);
  c->closing = 1;
  if (c->subscribed)
    s->n_subscribers--;
  c->subscribed = 0;
  if (c->prev)
    c->prev->next = c->next;
  else
    s->clients = c->next;
  if (c->next)
    c->next->prev = c->prev;
  s->n_clients--;
  uv_close((uv_handle_t *)&c->pipe, client_closed);
}

static void write_done(uv_write_t *req, int status) {
  write_req *w = (write_req *)req;
  free(w->data);
  free(w);
  (void)status; /* a failed write closes the client when its read fails */
}

/* Queues one JSON line (steals v). */
static void client_send(client *c, lcj *v) {
  if (!v)
    return;
  char *text = c->closing ? NULL : lcj_dump(v);
  lcj_free(v);
  if (!text)
    return;
  if (uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe) > OUT_MAX_BYTES) {
    free(text);
    c->d->count.clients_dropped++;
    lcd_log(1,
            "control: dropping a client that does not read (over %u MiB "
            "waiting)",
            OUT_MAX_BYTES >> 20);
    client_close(c);
    return;
  }
  size_t n = strlen(text);
  text[n] = '\n'; /* replaces the NUL: the buffer is n + 1 bytes */
  write_req *w = malloc(sizeof *w);
  if (!w) {
    free(text);
    return;
  }
  w->data = text;
  uv_buf_t b = uv_buf_init(text, (unsigned)(n + 1));
  if (uv_write(&w->req, (uv_stream_t *)&c->pipe, &b, 1, write_done) != 0) {
    free(text);
    free(w);
    client_close(c);
  }
}

static void client_line(client *c, const char *line, size_t len) {
  lcd_daemon *d = c->d;
  server *s = srv_of(d);
  /* blank lines (a person pressing Enter in socat) are not requests */
  size_t i = 0;
  while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
    i++;
  if (i == len)
    return;
  lcd_effect eff = {0};
  lcj *reply = lcd_command(d, line, len, &eff);
  if (eff.subscribe) {
    if (!c->subscribed)
      s->n_subscribers++;
    c->subscribed = 1;
    c->mask = eff.mask;
  }
  if (eff.unsubscribe && c->subscribed) {
    c->subscribed = 0;
    s->n_subscribers--;
  }
  client_send(c, reply);
  if (eff.stop)
    lcd_server_shutdown(d);
}

static void client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  client *c = h->data;
  if (c->cap - c->len < 65536) {
    size_t cap = c->cap ? c->cap * 2 : 65536;
    while (cap - c->len < 65536)
      cap *= 2;
    char *nb = realloc(c->buf, cap);
    if (!nb) {
      *b = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
      return;
    }
    c->buf = nb;
    c->cap = cap;
  }
  *b = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void client_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b) {
  client *c = st->data;
  (void)b;
  if (nread < 0) {
    client_close(c);
    return;
  }
  c->len += (size_t)nread;
  size_t start = 0;
  for (;;) {
    char *nl = memchr(c->buf + start, '\n', c->len - start);
    if (!nl)
      break;
    size_t n = (size_t)(nl - (c->buf + start));
    if (c->skipping) {
      c->skipping = 0; /* the end of the oversized line */
    } else if (n > LINE_MAX_BYTES) {
      c->d->count.bad_requests++;
      c->d->count.oversized_lines++;
      client_send(c, lcd_error_reply(NULL, "too_large",
                                     "request longer than %u MiB: skipped",
                                     LINE_MAX_BYTES >> 20));
    } else {
      client_line(c, c->buf + start, n);
    }
    if (c->closing)
      return;
    start += n + 1;
  }
  memmove(c->buf, c->buf + start, c->len - start);
  c->len -= start;
  if (c->len > LINE_MAX_BYTES || (c->skipping && c->len > 0)) {
    if (!c->skipping) {
      c->d->count.bad_requests++;
      c->d->count.oversized_lines++;
      client_send(c, lcd_error_reply(NULL, "too_large",
                                     "request longer than %u MiB: skipped "
                                     "up to its end of line",
                                     LINE_MAX_BYTES >> 20));
    }
    c->skipping = 1;
    c->len = 0;
  }
  /* give memory back after a large request */
  if (c->len == 0 && c->cap > (1u << 20)) {
    free(c->buf);
    c->buf = NULL;
    c->cap = 0;
  }
}

/* Only the daemon's own user may talk to it (the socket's mode says the
 * same; this holds even if someone loosens it). */
static int peer_is_owner(uv_pipe_t *p) {
  uv_os_fd_t fd;
  if (uv_fileno((uv_handle_t *)p, &fd) != 0)
    return 0;
  struct ucred cr;
  socklen_t len = sizeof cr;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0)
    return 0;
  return cr.uid == geteuid();
}

static void on_connection(uv_stream_t *listener, int status) {
  lcd_daemon *d = listener->data;
  server *s = srv_of(d);
  if (status < 0)
    return;
  client *c = calloc(1, sizeof *c);
  if (!c)
    return;
  c->d = d;
  uv_pipe_init(&s->loop, &c->pipe, 0);
  c->pipe.data = c;
  if (uv_accept(listener, (uv_stream_t *)&c->pipe) != 0) {
    uv_close((uv_handle_t *)&c->pipe, client_closed);
    return;
  }
  if (s->shutting_down || s->n_clients >= CLIENTS_MAX ||
      !peer_is_owner(&c->pipe)) {
    d->count.clients_refused++;
    lcd_log(1, "control: refused a connection (%s)",
            s->shutting_down              ? "stopping"
            : s->n_clients >= CLIENTS_MAX ? "too many clients"
                                          : "not our user");
    uv_close((uv_handle_t *)&c->pipe, client_closed);
    return;
  }
  c->next = s->clients;
  if (s->clients)
    s->clients->prev = c;
  s->clients = c;
  s->n_clients++;
  d->count.clients++;
  uv_read_start((uv_stream_t *)&c->pipe, client_alloc, client_read);
}

void lcd_server_broadcast(lcd_daemon *d, unsigned cls, lcj *ev) {
  server *s = srv_of(d);
  if (!ev)
    return;
  if (s && s->n_subscribers) {
    d->count.events++;
    for (client *c = s->clients, *next; c; c = next) {
      next = c->next;
      if (c->subscribed && (c->mask & cls))
        client_send(c, lcj_ref(ev));
    }
  }
  lcj_free(ev);
}

void lcd_server_clients(lcd_daemon *d, size_t *clients, size_t *subscribers) {
  server *s = srv_of(d);
  *clients = s ? s->n_clients : 0;
  *subscribers = s ? s->n_subscribers : 0;
}

/* ---- shutdown ------------------------------------------------------------
 */

static void on_save_timer(uv_timer_t *t) {
  lcd_save_state(t->data);
}

static void client_shutdown_done(uv_shutdown_t *req, int status) {
  client *c = req->handle->data;
  free(req);
  (void)status;
  client_close(c);
}

static void close_everything(lcd_daemon *d) {
  server *s = srv_of(d);
  lcd_save_state(d);
  /* let each client receive what is queued for it, then close */
  for (client *c = s->clients, *next; c; c = next) {
    next = c->next;
    uv_shutdown_t *req = malloc(sizeof *req);
    if (!req ||
        uv_shutdown(req, (uv_stream_t *)&c->pipe, client_shutdown_done) != 0) {
      free(req);
      client_close(c);
    }
  }
  if (s->listening) {
    uv_close((uv_handle_t *)&s->listener, NULL);
    s->listening = 0;
  }
  uv_close((uv_handle_t *)&s->sig_term, NULL);
  uv_close((uv_handle_t *)&s->sig_int, NULL);
  uv_close((uv_handle_t *)&s->sig_hup, NULL);
  uv_close((uv_handle_t *)&s->save_timer, NULL);
}

static void on_node_stopped(lc_node *node, void *user) {
  lcd_daemon *d = user;
  (void)node;
  lcd_log(2, "stopped: said goodbye to the LAN");
  close_everything(d);
}

void lcd_server_shutdown(lcd_daemon *d) {
  server *s = srv_of(d);
  if (s->shutting_down)
    return;
  s->shutting_down = 1;
  d->stopping = 1;
  lcd_log(2, "stopping");
  lcj *ev = lcj_obj();
  lcj_set_str(ev, "event", "daemon");
  lcj_set_str(ev, "change", "stopping");
  lcd_server_broadcast(d, LCD_EV_DAEMON, ev);
  /* no new connections from now on */
  if (s->listening) {
    uv_close((uv_handle_t *)&s->listener, NULL);
    s->listening = 0;
    unlink(d->sock_path);
  }
  if (lc_node_stop(d->node, on_node_stopped) != 0)
    close_everything(d);
}

static void on_signal(uv_signal_t *h, int signum) {
  lcd_daemon *d = h->data;
  lcd_log(2, "%s received", signum == SIGTERM ? "SIGTERM" : "SIGINT");
  lcd_server_shutdown(d);
}

static void on_sighup(uv_signal_t *h, int signum) {
  (void)h;
  (void)signum;
  lcd_log(2, "SIGHUP ignored (stop with SIGTERM or lanchat stop)");
}

/* ---- running -------------------------------------------------------------
 */

static int listen_control(lcd_daemon *d, char *err, size_t errlen) {
  server *s = srv_of(d);
  if (strlen(d->sock_path) >= lc_paths_socket_max()) {
    snprintf(err, errlen,
             "the control socket's path %s is longer than %zu bytes; use a "
             "shorter --data-dir",
             d->sock_path, lc_paths_socket_max() - 1);
    return -1;
  }
  /* we hold the data folder's lock: a socket file left there is stale */
  unlink(d->sock_path);
  uv_pipe_init(&s->loop, &s->listener, 0);
  s->listener.data = d;
  s->listening = 1;
  mode_t old = umask(0077);
  int rc = uv_pipe_bind(&s->listener, d->sock_path);
  umask(old);
  if (rc == 0 && chmod(d->sock_path, 0600) != 0)
    rc = -errno;
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&s->listener, 128, on_connection);
  if (rc != 0) {
    snprintf(err, errlen, "control socket %s: %s", d->sock_path,
             uv_strerror(rc));
    return -1;
  }
  return 0;
}

static void walk_close(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

int lcd_server_run(lcd_daemon *d,
                   void (*ready)(lcd_daemon *d, int rc, const char *msg)) {
  server *s = calloc(1, sizeof *s);
  char err[1024];
  int code = 1;
  if (!s || uv_loop_init(&s->loop) != 0) {
    free(s);
    ready(d, -ENOMEM, "cannot create the event loop");
    return 1;
  }
  d->server = s;
  int rc = lcd_node_open(d, &s->loop, err, sizeof err);
  if (rc < 0) {
    ready(d, rc, err);
    goto out;
  }
  if (listen_control(d, err, sizeof err) != 0) {
    ready(d, -1, err);
    goto out;
  }
  rc = lc_node_start(d->node);
  if (rc < 0) {
    unsigned dport =
        d->cfg.discovery_port ? d->cfg.discovery_port : LC_DISCOVERY_PORT;
    snprintf(err, sizeof err,
             "cannot start the node: %s (is another program using port "
             "%u or %u? try --port)",
             lc_strerror(rc), (unsigned)dport,
             (unsigned)(d->cfg.port ? d->cfg.port : dport + 1));
    unlink(d->sock_path);
    ready(d, rc, err);
    goto out;
  }
  uv_signal_init(&s->loop, &s->sig_term);
  uv_signal_init(&s->loop, &s->sig_int);
  uv_signal_init(&s->loop, &s->sig_hup);
  s->sig_term.data = s->sig_int.data = s->sig_hup.data = d;
  uv_signal_start(&s->sig_term, on_signal, SIGTERM);
  uv_signal_start(&s->sig_int, on_signal, SIGINT);
  uv_signal_start(&s->sig_hup, on_sighup, SIGHUP);
  uv_timer_init(&s->loop, &s->save_timer);
  s->save_timer.data = d;
  uv_timer_start(&s->save_timer, on_save_timer, SAVE_EVERY_MS, SAVE_EVERY_MS);
  lcd_log(2, "serving %s on port %d, control socket %s", d->data_dir,
          lc_node_port(d->node), d->sock_path);
  ready(d, 0, NULL);
  uv_run(&s->loop, UV_RUN_DEFAULT);
  code = 0;
out:
  /* after a failure: close whatever was opened, then let the loop finish */
  uv_walk(&s->loop, walk_close, NULL);
  uv_run(&s->loop, UV_RUN_DEFAULT);
  lc_node_free(d->node);
  d->node = NULL;
  if (uv_loop_close(&s->loop) != 0)
    lcd_log(1, "event loop closed with handles still open");
  if (code == 0)
    unlink(d->sock_path);
  d->server = NULL;
  free(s);
  return code;
}
