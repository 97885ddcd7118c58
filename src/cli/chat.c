/* chat.c: `lanchat chat PEER`, the interactive chat: recent history, then
 * live messages, delivery and read marks and typing notices, around a line
 * editor (libedit, the only includer of <histedit.h>) that incoming lines
 * do not disturb: libedit reads characters through our function, which
 * waits on the terminal and the daemon at once; an event clears the line
 * being typed, prints itself, and has libedit draw the line again as it
 * was. */
#include "cli.h"

#include <histedit.h>
#include <locale.h>
#include <wchar.h>
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
  char prompt[128];
  const char *self;
  int tty;
  int quit;
  int is_group;
  EditLine *el;
  History *hist;
  mbstate_t mb;
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
  if (S.tty && S.el)
    el_set(S.el, EL_REFRESH); /* the prompt and the line, as they were */
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
  const char *group = lcj_get_str(m, "group");
  if (S.is_group || group)
    return group && !strcmp(group, S.peer);
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
    lcj *att = lcj_get(m, "attachment");
    const char *st = lcj_get_str(att, "state");
    if (incoming && st && !strcmp(st, "offered"))
      note("  lanchat accept %s   (or decline)", lcj_get_str(m, "transfer"));
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
  } else if (!strcmp(name, "transfer_changed")) {
    /* how an attachment of this conversation went */
    lcj *t = lcj_get(ev, "transfer");
    const char *peer = lcj_get_str(t, "peer");
    const char *st = lcj_get_str(t, "state");
    if (S.is_group || !peer || strcmp(peer, S.peer) || !st)
      return;
    char what[600], mark[64];
    lcc_transfer_summary(t, what, sizeof what);
    lcc_transfer_state(t, mark, sizeof mark);
    const char *kind = lcj_get_str(t, "kind");
    int voice = kind && !strcmp(kind, "voice");
    if (!strcmp(st, "done") && voice)
      note("  %s %s: lanchat play %s", what,
           lcj_bval(lcj_get(t, "outgoing")) ? "delivered" : "arrived",
           lcj_get_str(t, "id"));
    else
      note("  %s %s", what, mark);
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

static void maybe_typing(void) {
  if (S.is_group)
    return; /* typing notices are for two */
  const LineInfo *li = el_line(S.el);
  time_t now = time(NULL);
  if (!li || li->lastchar == li->buffer || now - S.last_typing < TYPING_EVERY_S)
    return;
  S.last_typing = now;
  lcj *a = lcj_obj();
  lcj_set_str(a, "to", S.peer);
  lcj_set_str(a, "state", "composing");
  lcc_send(S.c, "typing", a);
}

static void drain_events(void) {
  lcj *ev;
  while (!S.quit && lcc_ready(S.c) && lcc_next(S.c, 0, &ev) == 1) {
    on_event(ev);
    lcj_free(ev);
  }
}

/* libedit's source of characters: waits for the terminal and the daemon
 * together, printing events as they come.  1 with a character, 0 at the
 * end of input, -1 to make el_wgets give up (leaving the chat). */
static int chat_getc(EditLine *e, wchar_t *wc) {
  (void)e;
  for (;;) {
    drain_events();
    if (S.quit)
      return -1;
    struct pollfd pf[2] = {{.fd = STDIN_FILENO, .events = POLLIN},
                           {.fd = S.c->fd, .events = POLLIN}};
    int n = poll(pf, 2, -1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -1;
    if (pf[1].revents) {
      lcj *ev;
      int r = lcc_next(S.c, 0, &ev);
      if (r < 0) {
        note("the daemon closed the connection");
        S.quit = 1;
        return -1;
      }
      if (r == 1) {
        on_event(ev);
        lcj_free(ev);
      }
    }
    if (pf[0].revents) {
      char ch;
      ssize_t r = read(STDIN_FILENO, &ch, 1);
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        return 0;
      size_t k = mbrtowc(wc, &ch, 1, &S.mb);
      if (k == (size_t)-2)
        continue; /* the middle of a multi-byte character */
      if (k == (size_t)-1) {
        memset(&S.mb, 0, sizeof S.mb);
        continue; /* not valid in this locale: dropped */
      }
      if (k == 0)
        *wc = L'\0';
      maybe_typing();
      return 1;
    }
  }
}

static const char *chat_prompt(EditLine *e) {
  (void)e;
  return S.prompt;
}

static void chat_tty(void) {
  setlocale(LC_CTYPE, "");
  S.el = el_init("lanchat", stdin, stdout, stderr);
  S.hist = history_init();
  if (!S.el || !S.hist) {
    fprintf(stderr, "lanchat: cannot start the line editor\n");
    return;
  }
  HistEvent hev;
  history(S.hist, &hev, H_SETSIZE, 500);
  el_set(S.el, EL_EDITOR, "emacs");
  el_set(S.el, EL_SIGNAL, 1);
  el_set(S.el, EL_PROMPT, chat_prompt);
  el_set(S.el, EL_HIST, history, S.hist);
  el_set(S.el, EL_GETCFN, chat_getc);
  while (!S.quit) {
    int count = 0;
    const char *line = el_gets(S.el, &count);
    if (!line || count <= 0)
      break; /* Ctrl-D, or leaving */
    char *copy = strdup(line);
    if (!copy)
      break;
    copy[strcspn(copy, "\r\n")] = '\0';
    if (copy[0])
      history(S.hist, &hev, H_ENTER, copy);
    /* the typed line stays on screen only as the sent message */
    fputs("\033[A\r\033[K", stdout);
    fflush(stdout);
    send_line(copy);
    free(copy);
  }
  history_end(S.hist);
  el_end(S.el);
  S.el = NULL;
  fputs("\n", stdout);
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
  lcj *grp = lcj_get(res, "group");
  if (lcj_is_obj(grp)) {
    S.is_group = 1;
    snprintf(S.peer, sizeof S.peer, "%s", lcj_get_str(grp, "id"));
    snprintf(S.nick, sizeof S.nick, "#%s", lcj_get_str(grp, "name"));
    printf("%schat in %s (%zu members, %s); /quit or Ctrl-D to leave%s\n",
           lcc_c("\033[1m"), S.nick, lcj_len(lcj_get(grp, "members")), S.peer,
           lcc_c("\033[0m"));
  } else {
    snprintf(S.peer, sizeof S.peer, "%s", lcj_get_str(p, "id"));
    const char *nick = lcj_get_str(p, "nick");
    snprintf(S.nick, sizeof S.nick, "%s", nick && *nick ? nick : peer);
    printf("%schat with %s (%s, %s); /quit or Ctrl-D to leave%s\n",
           lcc_c("\033[1m"), S.nick, lcj_get_str(p, "presence"), S.peer,
           lcc_c("\033[0m"));
  }
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

  snprintf(S.prompt, sizeof S.prompt, "%s> ", S.nick);
  if (S.tty) {
    chat_tty();
    return LCC_EXIT_OK;
  }
  while (!S.quit) {
    drain_events();
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
      lcj *ev;
      int r2 = lcc_next(c, 0, &ev);
      if (r2 < 0)
        break;
      if (r2 == 1) {
        on_event(ev);
        lcj_free(ev);
      }
    }
    if (pf[0].revents && read_plain_line() < 0)
      break;
  }
  return LCC_EXIT_OK;
}
