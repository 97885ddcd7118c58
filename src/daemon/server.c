/* server.c: lanchatd's event loop: the control socket (JSON lines over a
 * Unix socket, mode 0600, owner only), its clients and their subscriptions,
 * the signals that stop the daemon, and the shutdown.  The only daemon file
 * that includes <uv.h>. */
#define _GNU_SOURCE /* struct ucred, strptime, timegm */
#include "daemon.h"
#include "paths.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

/* A request line may carry a 1 MiB text, escaped (\uXXXX is 6 bytes for
 * 1): 8 MiB is the longest line read; a longer one gets an error and is
 * skipped up to its newline. */
#define LINE_MAX_BYTES (8u << 20)
/* Every client may buffer a line of up to 256 KiB (all commands but a long
 * send or edit fit).  Longer lines share 64 MiB: a client whose line needs
 * more while the others hold that much gets too_large for it, so that
 * clients writing long lines at once cannot make the daemon grow. */
#define IN_SHARE_BYTES (256u << 10)
#define IN_TOTAL_BYTES (64u << 20)
/* A line must arrive within 10 s of its first byte (a whole 8 MiB line
 * takes milliseconds on a Unix socket): a client that stalls in the middle
 * of one is dropped, with what it holds. */
#define LINE_TIMEOUT_MS 10000
/* Replies and events waiting for a client that does not read: beyond 16 MiB
 * the client is dropped rather than let the daemon grow; beyond 1 MiB too,
 * when the clients' queues hold 64 MiB together. */
#define OUT_MAX_BYTES (16u << 20)
#define OUT_SHARE_BYTES (1u << 20)
#define OUT_TOTAL_BYTES (64u << 20)
/* Connections open at once (fewer if the descriptors are short: half of
 * those free at startup).  When all are taken, a new connection closes the
 * one idle the longest that has not subscribed, so that the user's own
 * command still gets in while something holds hundreds open. */
#define CLIENTS_MAX 256
#define CLIENTS_MIN 8
/* Requests read at once from one client are executed 32 at a time (or for
 * 5 ms, or one if it takes longer), the other clients' in between: a
 * client that pipelines thousands of requests does not keep the others
 * waiting. */
#define TURN_LINES 32
#define TURN_NS 5000000u
#define SAVE_EVERY_MS 2000
/* At shutdown, the clients still open this long after the last replies
 * were queued (one that does not read) are closed, so that the daemon
 * exits. */
#define SHUTDOWN_GRACE_MS 3000

typedef struct client {
  uv_pipe_t pipe;
  struct client *prev, *next;
  lcd_daemon *d;
  char *buf;
  size_t len, cap;
  uint64_t active;     /* when it connected or last sent a request (seq) */
  uint64_t line_since; /* loop ms when the unfinished line began, or 0 */
  int skipping;        /* discarding the rest of an oversized line */
  int starved;         /* a long line was refused for want of room */
  int backlog;         /* complete lines wait: reading is stopped */
  uint64_t turned;     /* when its backlog last had a turn (s->turns) */
  int subscribed;
  unsigned mask;
  int finishing; /* shut down once its queue is written: sends no more */
  int closing;
} client;

/* The kinds of trouble logged at most once a second each. */
enum {
  NOTE_USER,
  NOTE_FULL,
  NOTE_EVICT,
  NOTE_DROP,
  NOTE_STALL,
  NOTE_ACCEPT,
  NOTE_KINDS
};

typedef struct {
  uv_loop_t loop;
  uv_pipe_t listener;
  uv_signal_t sig_term, sig_int, sig_hup;
  uv_timer_t save_timer;
  uv_timer_t stall_timer; /* runs while a client has an unfinished line */
  uv_timer_t relisten_timer;
  uv_idle_t turn_idle;       /* runs while a client has a backlog */
  uv_timer_t shutdown_timer; /* the grace left to clients at shutdown */
  int listening, listener_closed;
  client *clients;
  size_t n_clients, n_subscribers, clients_max;
  size_t in_bytes; /* the line buffers' capacity beyond IN_SHARE_BYTES */
  uint64_t seq, turns;
  uint64_t note_ms[NOTE_KINDS], note_quiet[NOTE_KINDS];
  int shutting_down;
} server;

typedef struct {
  uv_write_t req;
  char *data;
} write_req;

static server *srv_of(lcd_daemon *d) {
  return d->server;
}

/* Logs what (a warning) unless the same kind was logged less than a second
 * ago: a storm of connections must not fill lanchatd.log. */
static void server_note(server *s, int kind, const char *what) {
  uint64_t now = uv_now(&s->loop);
  if (s->note_ms[kind] && now - s->note_ms[kind] < 1000) {
    s->note_quiet[kind]++;
    return;
  }
  if (s->note_quiet[kind])
    lcd_log(1, "control: %s (and %" PRIu64 " more like it since the last)",
            what, s->note_quiet[kind]);
  else
    lcd_log(1, "control: %s", what);
  s->note_ms[kind] = now;
  s->note_quiet[kind] = 0;
}

/* ---- clients -------------------------------------------------------------
 */

/* The part of a line buffer of cap bytes that counts against
 * IN_TOTAL_BYTES. */
static size_t in_beyond_share(size_t cap) {
  return cap > IN_SHARE_BYTES ? cap - IN_SHARE_BYTES : 0;
}

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
  s->in_bytes -= in_beyond_share(c->cap);
  if (c->prev)
    c->prev->next = c->next;
  else
    s->clients = c->next;
  if (c->next)
    c->next->prev = c->prev;
  s->n_clients--;
  uv_close((uv_handle_t *)&c->pipe, client_closed);
}

/* The client idle the longest that may be closed to make room: not a
 * subscriber (a chat window, a front end). */
static client *client_oldest_idle(server *s) {
  client *best = NULL;
  for (client *c = s->clients; c; c = c->next)
    if (!c->subscribed && (!best || c->active < best->active))
      best = c;
  return best;
}

static void write_done(uv_write_t *req, int status) {
  write_req *w = (write_req *)req;
  free(w->data);
  free(w);
  (void)status; /* a failed write closes the client when its read fails */
}

static size_t out_total(server *s) {
  size_t n = 0;
  for (client *c = s->clients; c; c = c->next)
    n += uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe);
  return n;
}

/* Queues one JSON line (steals v). */
static void client_send(client *c, lcj *v) {
  if (!v)
    return;
  /* after uv_shutdown a write fails, and the replies queued would be lost
   * with the client: a finishing client gets nothing more */
  char *text = c->closing || c->finishing ? NULL : lcj_dump(v);
  lcj_free(v);
  if (!text)
    return;
  server *s = srv_of(c->d);
  size_t queued = uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe);
  if (queued > OUT_MAX_BYTES ||
      (queued > OUT_SHARE_BYTES && out_total(s) > OUT_TOTAL_BYTES)) {
    free(text);
    c->d->count.clients_dropped++;
    server_note(s, NOTE_DROP, "dropping a client that does not read");
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
  c->active = ++s->seq;
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

static void client_too_large(client *c, const char *why) {
  c->d->count.bad_requests++;
  c->d->count.oversized_lines++;
  client_send(c, lcd_error_reply(NULL, "too_large", "%s", why));
}

static void on_stall_timer(uv_timer_t *t);

/* Executes the complete lines in c's buffer, at most one turn's worth;
 * returns 1 if complete lines remain for the next turn. */
static int client_process(client *c) {
  server *s = srv_of(c->d);
  uint64_t t0 = uv_hrtime();
  size_t start = 0;
  int done = 0, more = 0;
  for (;;) {
    char *nl = memchr(c->buf + start, '\n', c->len - start);
    if (!nl)
      break;
    if (done >= TURN_LINES || uv_hrtime() - t0 > TURN_NS) {
      more = 1;
      break;
    }
    size_t n = (size_t)(nl - (c->buf + start));
    if (c->skipping) {
      c->skipping = 0; /* the end of the oversized line */
    } else if (n > LINE_MAX_BYTES) {
      client_too_large(c, "request longer than 8 MiB: skipped");
    } else {
      client_line(c, c->buf + start, n);
      done++;
    }
    if (c->closing)
      return 0;
    start += n + 1;
  }
  memmove(c->buf, c->buf + start, c->len - start);
  c->len -= start;
  if (!more && (c->len > LINE_MAX_BYTES || (c->skipping && c->len > 0))) {
    if (!c->skipping)
      client_too_large(c, "request longer than 8 MiB: skipped up to its end "
                          "of line");
    if (c->closing)
      return 0;
    c->skipping = 1;
    c->len = 0;
  }
  /* the stall clock runs from the first byte of an unfinished line (not
   * while the lines waiting are ours to execute) */
  if (more || (c->len == 0 && !c->skipping))
    c->line_since = 0;
  else if (start > 0 || !c->line_since)
    c->line_since = uv_now(&s->loop) + 1; /* never 0 */
  if (c->line_since && !uv_is_active((uv_handle_t *)&s->stall_timer))
    uv_timer_start(&s->stall_timer, on_stall_timer, 1000, 1000);
  /* give memory back after a long request */
  if (c->len == 0 && c->cap > IN_SHARE_BYTES) {
    free(c->buf);
    s->in_bytes -= in_beyond_share(c->cap);
    c->buf = NULL;
    c->cap = 0;
  }
  return more;
}

/* Drops the clients whose unfinished line began too long ago; stops once
 * no client has one. */
static void on_stall_timer(uv_timer_t *t) {
  lcd_daemon *d = t->data;
  server *s = srv_of(d);
  uint64_t now = uv_now(&s->loop);
  size_t dropped = 0;
  int waiting = 0;
  for (client *c = s->clients, *next; c; c = next) {
    next = c->next;
    if (!c->line_since)
      continue;
    if (now + 1 - c->line_since < LINE_TIMEOUT_MS) {
      waiting = 1;
      continue;
    }
    d->count.clients_timed_out++;
    dropped++;
    client_close(c);
  }
  if (dropped) {
    char what[128];
    snprintf(what, sizeof what,
             "dropped %zu client%s whose request did not arrive whole "
             "within 10 s",
             dropped, dropped == 1 ? "" : "s");
    server_note(s, NOTE_STALL, what);
  }
  if (!waiting)
    uv_timer_stop(t);
}

static void on_turn(uv_idle_t *h);

static void client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  client *c = h->data;
  server *s = srv_of(c->d);
  (void)suggested;
  /* reads of 64 KiB at least; but a buffer of IN_SHARE_BYTES grows only
   * once an unfinished line fills it, so that a line that fits takes
   * nothing from IN_TOTAL_BYTES */
  size_t room = c->cap == IN_SHARE_BYTES && c->len < c->cap ? 1 : 65536;
  if (c->cap - c->len < room) {
    size_t cap = c->cap ? c->cap * 2 : 65536;
    while (cap - c->len < 65536)
      cap *= 2;
    size_t more = in_beyond_share(cap) - in_beyond_share(c->cap);
    if (more > 0 && s->in_bytes + more > IN_TOTAL_BYTES) {
      /* no room for another long line now: skip this one (the buffer holds
       * only its beginning: lines before it were executed) */
      c->len = 0;
      c->skipping = 1;
      c->starved = 1;
      *b = uv_buf_init(c->buf, (unsigned)c->cap);
      return;
    }
    char *nb = realloc(c->buf, cap);
    if (!nb) {
      *b = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
      return;
    }
    s->in_bytes += more;
    c->buf = nb;
    c->cap = cap;
  }
  *b = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void client_shutdown_done(uv_shutdown_t *req, int status) {
  client *c = req->handle->data;
  free(req);
  (void)status;
  client_close(c);
}

/* Closes c once the lines queued for it are written; c gets no events
 * meanwhile. */
static void client_finish(client *c) {
  if (c->finishing || c->closing)
    return;
  c->finishing = 1;
  if (c->subscribed)
    srv_of(c->d)->n_subscribers--;
  c->subscribed = 0;
  uv_shutdown_t *req = malloc(sizeof *req);
  if (!req ||
      uv_shutdown(req, (uv_stream_t *)&c->pipe, client_shutdown_done) != 0) {
    free(req);
    client_close(c);
  }
}

static void client_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b) {
  client *c = st->data;
  server *s = srv_of(c->d);
  (void)b;
  if (nread < 0) {
    /* the end of its requests (or an error): the replies still go out */
    c->line_since = 0; /* an unfinished line is dropped */
    if (nread == UV_EOF && !c->closing)
      client_finish(c);
    else
      client_close(c);
    return;
  }
  c->len += (size_t)nread;
  if (c->starved) {
    c->starved = 0;
    client_too_large(c, "the daemon holds too many long requests at the "
                        "moment: skipped up to its end of line; try again");
    if (c->closing)
      return;
  }
  if (client_process(c) && !c->closing) {
    c->backlog = 1;
    uv_read_stop(st);
    if (!uv_is_active((uv_handle_t *)&s->turn_idle))
      uv_idle_start(&s->turn_idle, on_turn);
  }
}

/* One turn for the client with a backlog that waited the longest, one per
 * loop iteration: between two, the other clients are read and answered.
 * Reading resumes once a client has no backlog. */
static void on_turn(uv_idle_t *h) {
  lcd_daemon *d = h->data;
  server *s = srv_of(d);
  client *next = NULL;
  size_t waiting = 0;
  for (client *c = s->clients; c; c = c->next)
    if (c->backlog) {
      waiting++;
      if (!next || c->turned < next->turned)
        next = c;
    }
  if (next) {
    next->turned = ++s->turns;
    if (!client_process(next)) {
      waiting--;
      if (!next->closing) {
        next->backlog = 0;
        uv_read_start((uv_stream_t *)&next->pipe, client_alloc, client_read);
      }
    }
  }
  if (!waiting)
    uv_idle_stop(h);
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

static int listen_control(lcd_daemon *d, char *err, size_t errlen);

static void on_listener_closed(uv_handle_t *h) {
  lcd_daemon *d = h->data;
  srv_of(d)->listener_closed = 1;
}

static void on_relisten(uv_timer_t *t);

/* Stops listening for a second rather than spin (or leave a connection
 * pending that libuv would wait for us to accept). */
static void listener_pause(server *s) {
  if (!s->listening)
    return;
  s->listening = 0;
  s->listener_closed = 0;
  uv_close((uv_handle_t *)&s->listener, on_listener_closed);
  uv_timer_start(&s->relisten_timer, on_relisten, 1000, 0);
}

static void on_relisten(uv_timer_t *t) {
  lcd_daemon *d = t->data;
  server *s = srv_of(d);
  char err[1024];
  if (s->shutting_down || s->listening)
    return;
  if (!s->listener_closed) {
    uv_timer_start(t, on_relisten, 1000, 0);
    return;
  }
  if (listen_control(d, err, sizeof err) != 0) {
    /* still short of descriptors, most likely: close the listener that
     * failed to bind, and try again in a second */
    listener_pause(s);
    return;
  }
  lcd_log(1, "control: accepting connections again");
}

/* accept() failed.  Out of descriptors, libuv closes the pending
 * connections itself with a descriptor it keeps in reserve and does not
 * call us; we are called when that failed too, and then at once again
 * until a descriptor is free: close the oldest idle client, or if there is
 * none stop listening for a second rather than spin. */
static void accept_failed(lcd_daemon *d, int status) {
  server *s = srv_of(d);
  char what[160];
  d->count.clients_refused++;
  snprintf(what, sizeof what, "cannot accept a connection: %s",
           uv_strerror(status));
  server_note(s, NOTE_ACCEPT, what);
  client *old = client_oldest_idle(s);
  if (old) {
    d->count.clients_evicted++;
    client_close(old); /* its descriptor is closed now */
    return;
  }
  listener_pause(s);
}

static void on_connection(uv_stream_t *listener, int status) {
  lcd_daemon *d = listener->data;
  server *s = srv_of(d);
  if (status < 0) {
    accept_failed(d, status);
    return;
  }
  client *c = calloc(1, sizeof *c);
  if (!c) {
    /* closing the listener closes the connection libuv accepted for us:
     * without uv_accept it would stop listening for good */
    d->count.clients_refused++;
    server_note(s, NOTE_ACCEPT, "out of memory: refused a connection");
    listener_pause(s);
    return;
  }
  c->d = d;
  uv_pipe_init(&s->loop, &c->pipe, 0);
  c->pipe.data = c;
  if (uv_accept(listener, (uv_stream_t *)&c->pipe) != 0) {
    uv_close((uv_handle_t *)&c->pipe, client_closed);
    return;
  }
  int why = -1;
  if (s->shutting_down) {
    why = NOTE_FULL; /* counted with the others, not worth a line */
  } else if (!peer_is_owner(&c->pipe)) {
    why = NOTE_USER;
  } else if (s->n_clients >= s->clients_max) {
    client *old = client_oldest_idle(s);
    if (old) {
      d->count.clients_evicted++;
      server_note(s, NOTE_EVICT,
                  "too many clients: closed the one idle the longest");
      client_close(old);
    } else {
      why = NOTE_FULL;
    }
  }
  if (why >= 0) {
    d->count.clients_refused++;
    if (!s->shutting_down)
      server_note(s, why,
                  why == NOTE_USER ? "refused a connection (not our user)"
                                   : "refused a connection (too many "
                                     "clients, all subscribed)");
    uv_close((uv_handle_t *)&c->pipe, client_closed);
    return;
  }
  c->active = ++s->seq;
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

/* The grace is over: closes the clients that still have not read what
 * was queued for them. */
static void on_shutdown_timer(uv_timer_t *t) {
  server *s = srv_of(t->data);
  if (s->clients)
    lcd_log(1,
            "control: closed %zu client%s that did not read the replies "
            "queued for %d s",
            s->n_clients, s->n_clients == 1 ? "" : "s",
            SHUTDOWN_GRACE_MS / 1000);
  while (s->clients)
    client_close(s->clients);
}

static void close_everything(lcd_daemon *d) {
  server *s = srv_of(d);
  lcd_save_state(d);
  /* no more requests; those waiting for their turn are answered
   * (`stopping`); then each client receives what is queued for it and is
   * closed */
  for (client *c = s->clients; c; c = c->next)
    uv_read_stop((uv_stream_t *)&c->pipe);
  for (client *c = s->clients, *next; c; c = next) {
    next = c->next;
    while (c->backlog && !c->closing)
      c->backlog = client_process(c);
    client_finish(c);
  }
  /* unreferenced: it does not keep the loop running once every client
   * is closed (the walk in lcd_server_run closes it) */
  uv_timer_start(&s->shutdown_timer, on_shutdown_timer, SHUTDOWN_GRACE_MS, 0);
  uv_unref((uv_handle_t *)&s->shutdown_timer);
  if (s->listening) {
    uv_close((uv_handle_t *)&s->listener, NULL);
    s->listening = 0;
  }
  uv_close((uv_handle_t *)&s->sig_term, NULL);
  uv_close((uv_handle_t *)&s->sig_int, NULL);
  uv_close((uv_handle_t *)&s->sig_hup, NULL);
  uv_close((uv_handle_t *)&s->save_timer, NULL);
  uv_close((uv_handle_t *)&s->stall_timer, NULL);
  uv_close((uv_handle_t *)&s->relisten_timer, NULL);
  uv_close((uv_handle_t *)&s->turn_idle, NULL);
}

static void on_stop_failed(uv_timer_t *t) {
  close_everything(t->data);
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
  }
  unlink(d->sock_path);
  /* (not at once: we may be inside a client's request, and
   * close_everything executes the clients' backlogs) */
  if (lc_node_stop(d->node, on_node_stopped) != 0)
    uv_timer_start(&s->shutdown_timer, on_stop_failed, 0, 0);
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

/* Descriptors open now (Linux), or a guess. */
static size_t fds_in_use(void) {
  DIR *dir = opendir("/proc/self/fd");
  if (!dir)
    return 64;
  size_t n = 0;
  for (struct dirent *e; (e = readdir(dir));)
    n += e->d_name[0] != '.';
  closedir(dir);
  return n;
}

/* Raises the soft limit on descriptors to the hard one (up to 65536: lanchatd
 * uses no select(), a higher limit costs nothing), then sets the number of
 * control clients: half of the descriptors still free, at most
 * CLIENTS_MAX, so that the clients never take the descriptors the node and
 * its transfers need. */
static void clients_max_set(server *s) {
  struct rlimit rl;
  s->clients_max = CLIENTS_MAX;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return;
  rlim_t want = rl.rlim_max;
  if (want == RLIM_INFINITY || want > 65536)
    want = 65536;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
    rlim_t was = rl.rlim_cur;
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
      rl.rlim_cur = was;
  }
  if (rl.rlim_cur == RLIM_INFINITY)
    return;
  size_t used = fds_in_use();
  size_t spare = rl.rlim_cur > used ? (size_t)rl.rlim_cur - used : 0;
  if (spare / 2 < s->clients_max)
    s->clients_max = spare / 2 < CLIENTS_MIN ? CLIENTS_MIN : spare / 2;
  if (s->clients_max < CLIENTS_MAX)
    lcd_log(1,
            "control: at most %zu clients at once (only %zu file "
            "descriptors free; raise the limit, ulimit -n)",
            s->clients_max, spare);
}

static void walk_close(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

/* 1 if a UDP socket of family on addr (NULL: any) and port cannot be bound
 * because the address is in use; reuse as lanchat's own discovery socket
 * does (SO_REUSEADDR, which every lanchat peer sets to share the port). */
static int port_taken(int family, const char *addr, uint16_t port, int reuse) {
  struct sockaddr_storage ss;
  socklen_t len;
  memset(&ss, 0, sizeof ss);
  if (family == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    if (addr && inet_pton(AF_INET, addr, &a->sin_addr) != 1)
      return 0;
    len = sizeof *a;
  } else {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    if (addr && inet_pton(AF_INET6, addr, &a->sin6_addr) != 1)
      return 0;
    len = sizeof *a;
  }
  int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return 0;
  int one = 1;
  if (reuse)
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (family == AF_INET6)
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  int taken = bind(fd, (struct sockaddr *)&ss, len) != 0 && errno == EADDRINUSE;
  close(fd);
  return taken;
}

/* The node could not bind (EADDRINUSE), and has closed its sockets: finds
 * which of its ports is taken and says what to do.  0 with the message in
 * msg, or -1 if neither is (taken meanwhile, or freed). */
static int explain_port_in_use(const lcd_daemon *d, char *msg, size_t len) {
  const char *v4 = d->cfg.bind_v4, *v6 = d->cfg.bind_v6;
  int use4 = !(v4 && !*v4), use6 = !(v6 && !*v6);
  unsigned dport =
      d->cfg.discovery_port ? d->cfg.discovery_port : LC_DISCOVERY_PORT;
  /* the unicast port given is fatal when taken; the default one (the
   * discovery port + 1) falls back to any free port */
  unsigned uport = d->cfg.port;
  if (uport && ((use4 && port_taken(AF_INET, v4, (uint16_t)uport, 0)) ||
                (use6 && port_taken(AF_INET6, v6, (uint16_t)uport, 0)))) {
    snprintf(msg, len,
             "UDP port %u, lanchatd's unicast port (--port, or 'port' in "
             "lanchatd.conf), is in use by another program (ss -ulpn 'sport "
             "= :%u' shows which); choose another with --port N, or leave the "
             "setting out and lanchatd takes a free one",
             uport, uport);
    return 0;
  }
  if ((use4 && port_taken(AF_INET, NULL, (uint16_t)dport, 1)) ||
      (use6 && port_taken(AF_INET6, NULL, (uint16_t)dport, 1))) {
    snprintf(msg, len,
             "UDP port %u, the discovery port (--discovery-port), is held by "
             "another program that does not share it (lanchat peers on one "
             "machine share it); stop that program (ss -ulpn 'sport = :%u' "
             "shows which), or move the whole LAN to another port: every "
             "peer needs the same --discovery-port",
             dport, dport);
    return 0;
  }
  return -1;
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
  uv_timer_init(&s->loop, &s->stall_timer);
  uv_timer_init(&s->loop, &s->relisten_timer);
  uv_idle_init(&s->loop, &s->turn_idle);
  uv_timer_init(&s->loop, &s->shutdown_timer);
  s->stall_timer.data = s->relisten_timer.data = s->turn_idle.data = d;
  s->shutdown_timer.data = d;
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
    /* a port in use: which one, and what to do */
    if (rc != -EADDRINUSE || explain_port_in_use(d, err, sizeof err) != 0)
      snprintf(err, sizeof err, "cannot start the node: %s", lc_strerror(rc));
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
  clients_max_set(s);
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
