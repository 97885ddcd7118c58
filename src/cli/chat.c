/* chat.c: `lanchat chat PEER`, the interactive chat: recent history, then
 * live messages, delivery and read marks and typing notices, around a line
 * editor (libedit, the only includer of <editline/readline.h>) that
 * incoming lines do not disturb: the line being typed is cleared, the
 * event printed, and the line drawn again as it was. */
#include "cli.h"

#include <editline/readline.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TYPING_EVERY_S 3
#define RECENT_MAX 64

static struct {
  lcc_conn *c;
  char peer[65]; /* the peer's id */
  char nick[80];
  const char *self;
  int tty;
  int quit;
  time_t last_typing;
  struct {
    char id[33];
    char text[40];
  } recent[RECENT_MAX]; /* messages we sent here, for delivery marks */
  size_t n_recent;
} S;

/* Prints above the line being edited, without disturbing it. */
static void above(void (*print)(const lcj *), const lcj *v) {
  if (S.tty) {
    fputs("\r\033[K", stdout);
  }
  print(v);
  fflush(stdout);
  if (S.tty)
    rl_forced_update_display();
}

static void print_msg(const lcj *m) {
  lcc_print_message(m, S.self, 1);
}

static void print_note(const lcj *v) {
  printf("%s%s%s\n", lcc_c("\033[90m"), lcj_sval(v), lcc_c("\033[0m"));
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  lcj *s = lcj_str(buf);
  above(print_note, s);
  lcj_free(s);
}

static void remember(const lcj *m) {
  size_t i = S.n_recent++ % RECENT_MAX;
  snprintf(S.recent[i].id, sizeof S.recent[i].id, "%s", lcj_get_str(m, "id"));
  snprintf(S.recent[i].text, sizeof S.recent[i].text, "%s",
           lcj_get_str(m, "text"));
}

static const char *recent_text(const char *id) {
  for (size_t i = 0; i < RECENT_MAX && i < S.n_recent; i++)
    if (!strcmp(S.recent[i].id, id))
      return S.recent[i].text;
  return NULL;
}

static int about_peer(const lcj *m) {
  const char *from = lcj_get_str(m, "from"), *to = lcj_get_str(m, "to");
  return (from && !strcmp(from, S.peer)) || (to && !strcmp(to, S.peer));
}

static void on_event(lcj *ev) {
  const char *name = lcj_get_str(ev, "event");
  if (!name)
    return;
  if (!strcmp(name, "message") || !strcmp(name, "changed")) {
    lcj *m = lcj_get(ev, "message");
    if (!about_peer(m))
      return;
    int incoming = !lcj_bval(lcj_get(m, "outgoing"));
    if (!strcmp(name, "message") && !incoming)
      remember(m);
    above(print_msg, m);
    /* what arrives while the chat is open is read */
    if (incoming) {
      lcj *a = lcj_obj();
      lcj_set_str(a, "with", S.peer);
      lcc_send(S.c, "read", a);
    }
  } else if (!strcmp(name, "delivery")) {
    const char *peer = lcj_get_str(ev, "peer");
    const char *text = recent_text(lcj_get_str(ev, "id"));
    const char *st = lcj_get_str(ev, "state");
    if (peer && !strcmp(peer, S.peer) && text && st && strcmp(st, "sent"))
      note("  %s: \"%s\"", st, text);
  } else if (!strcmp(name, "typing")) {
    const char *peer = lcj_get_str(ev, "peer");
    const char *st = lcj_get_str(ev, "state");
    if (peer && !strcmp(peer, S.peer) && st && !strcmp(st, "composing"))
      note("%s is typing...", S.nick);
  } else if (!strcmp(name, "peer")) {
    lcj *p = lcj_get(ev, "peer");
    const char *id = lcj_get_str(p, "id");
    if (id && !strcmp(id, S.peer))
      note("%s %s%s%s", S.nick, lcj_get_str(ev, "change"),
           strcmp(lcj_get_str(ev, "change"), "left") ? ": " : "",
           strcmp(lcj_get_str(ev, "change"), "left")
               ? lcj_get_str(p, "presence")
               : "");
  } else if (!strcmp(name, "daemon")) {
    note("lanchatd is stopping; leaving the chat");
    S.quit = 1;
  }
}

static void send_line(const char *line) {
  if (!line[0])
    return;
  if (!strcmp(line, "/quit") || !strcmp(line, "/q")) {
    S.quit = 1;
    return;
  }
  if (!strcmp(line, "/help")) {
    note("type a message and Enter to send; /quit or Ctrl-D to leave");
    return;
  }
  lcj *a = lcj_obj();
  lcj *t = lcj_str(line);
  if (!t) {
    lcj_free(a);
    note("not sent: not valid UTF-8");
    return;
  }
  lcj_set_str(a, "to", S.peer);
  lcj_set(a, "text", t);
  lcj *r = lcc_call(S.c, "send", a);
  if (!r) {
    S.quit = 1;
    return;
  }
  if (!lcj_bval(lcj_get(r, "ok")))
    note("not sent: %s", lcj_get_str(lcj_get(r, "error"), "message"));
  lcj_free(r);
  S.last_typing = 0;
}

static void on_line(char *line) {
  if (!line) {
    S.quit = 1; /* Ctrl-D */
    return;
  }
  if (S.tty) {
    /* the typed line stays on screen only as the sent message */
    fputs("\033[A\r\033[K", stdout);
    if (*line)
      add_history(line);
  }
  send_line(line);
  free(line);
}

static void maybe_typing(void) {
  time_t now = time(NULL);
  if (!rl_line_buffer || !rl_line_buffer[0] ||
      now - S.last_typing < TYPING_EVERY_S)
    return;
  S.last_typing = now;
  lcj *a = lcj_obj();
  lcj_set_str(a, "to", S.peer);
  lcj_set_str(a, "state", "composing");
  lcc_send(S.c, "typing", a);
}

/* Without a terminal: lines from stdin are sent as they come. */
static int read_plain_line(void) {
  static char *buf;
  static size_t len, cap;
  if (cap - len < 4096) {
    cap = cap ? cap * 2 : 8192;
    char *nb = realloc(buf, cap);
    if (!nb)
      return -1;
    buf = nb;
  }
  ssize_t n = read(STDIN_FILENO, buf + len, cap - len - 1);
  if (n <= 0) {
    free(buf);
    buf = NULL;
    len = cap = 0;
    return -1;
  }
  len += (size_t)n;
  char *nl;
  while ((nl = memchr(buf, '\n', len))) {
    *nl = '\0';
    send_line(buf);
    size_t used = (size_t)(nl - buf) + 1;
    memmove(buf, nl + 1, len - used);
    len -= used;
  }
  return 0;
}

int lcc_chat(lcc_conn *c, const char *peer, const char *self) {
  memset(&S, 0, sizeof S);
  S.c = c;
  S.self = self;
  S.tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
  lcj *sub = lcc_call(c, "subscribe", NULL);
  lcj_free(sub);
  lcj *a = lcj_obj();
  lcj_set_str(a, "with", peer);
  lcj_set_int(a, "limit", 20);
  lcj *r = lcc_call(c, "history", a);
  if (!r)
    return LCC_EXIT_NODAEMON;
  if (!lcj_bval(lcj_get(r, "ok"))) {
    lcj *e = lcj_get(r, "error");
    fprintf(stderr, "lanchat: %s\n", lcj_get_str(e, "message"));
    lcj *cands = lcj_get(e, "candidates");
    for (size_t i = 0; i < lcj_len(cands); i++)
      fprintf(stderr, "  %-20s %s\n", lcj_get_str(lcj_at(cands, i), "nick"),
              lcj_get_str(lcj_at(cands, i), "id"));
    const char *code = lcj_get_str(e, "code");
    int st = code && strstr(code, "peer") ? LCC_EXIT_NOPEER : LCC_EXIT_FAIL;
    lcj_free(r);
    return st;
  }
  lcj *res = lcj_get(r, "result"), *p = lcj_get(res, "peer");
  snprintf(S.peer, sizeof S.peer, "%s", lcj_get_str(p, "id"));
  const char *nick = lcj_get_str(p, "nick");
  snprintf(S.nick, sizeof S.nick, "%s", nick && *nick ? nick : peer);
  printf("%schat with %s (%s, %s); /quit or Ctrl-D to leave%s\n",
         lcc_c("\033[1m"), S.nick, lcj_get_str(p, "presence"), S.peer,
         lcc_c("\033[0m"));
  lcj *msgs = lcj_get(res, "messages");
  for (size_t i = 0; i < lcj_len(msgs); i++) {
    lcj *m = lcj_at(msgs, i);
    if (lcj_bval(lcj_get(m, "outgoing")))
      remember(m);
    lcc_print_message(m, self, 0);
  }
  lcj_free(r);
  fflush(stdout);
  /* what is on screen now is read */
  a = lcj_obj();
  lcj_set_str(a, "with", S.peer);
  lcc_send(c, "read", a);

  char prompt[128];
  snprintf(prompt, sizeof prompt, "%s> ", S.nick);
  if (S.tty)
    rl_callback_handler_install(prompt, on_line);
  while (!S.quit) {
    lcj *ev;
    while (!S.quit && lcc_ready(c) && lcc_next(c, 0, &ev) == 1) {
      on_event(ev);
      lcj_free(ev);
    }
    if (S.quit)
      break;
    struct pollfd pf[2] = {{.fd = STDIN_FILENO, .events = POLLIN},
                           {.fd = c->fd, .events = POLLIN}};
    int n = poll(pf, 2, -1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      break;
    if (pf[1].revents) {
      int r2 = lcc_next(c, 0, &ev);
      if (r2 < 0) {
        note("the daemon closed the connection");
        break;
      }
      if (r2 == 1) {
        on_event(ev);
        lcj_free(ev);
      }
    }
    if (pf[0].revents) {
      if (S.tty) {
        rl_callback_read_char();
        maybe_typing();
      } else if (read_plain_line() < 0) {
        break;
      }
    }
  }
  if (S.tty) {
    rl_callback_handler_remove();
    fputs("\n", stdout);
  }
  return LCC_EXIT_OK;
}
