/* output.c: how lanchat prints for people: tables of peers, message lines,
 * local times, and colour only on a terminal without NO_COLOR. */
#define _GNU_SOURCE /* struct ucred, strptime, timegm */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int lcc_color = 0;

void lcc_output_init(void) {
  const char *nc = getenv("NO_COLOR");
  const char *term = getenv("TERM");
  lcc_color = isatty(STDOUT_FILENO) && !(nc && *nc) &&
              !(term && strcmp(term, "dumb") == 0);
}

const char *lcc_c(const char *code) {
  return lcc_color ? code : "";
}

void lcc_local_time(const char *s, int short_form, char *out, size_t outlen) {
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) {
    snprintf(out, outlen, "%s", s ? s : "-");
    return;
  }
  time_t t = timegm(&tm);
  struct tm lt, now_tm;
  time_t now = time(NULL);
  localtime_r(&t, &lt);
  localtime_r(&now, &now_tm);
  int today = lt.tm_year == now_tm.tm_year && lt.tm_yday == now_tm.tm_yday;
  strftime(out, outlen, short_form && today ? "%H:%M:%S" : "%Y-%m-%d %H:%M:%S",
           &lt);
}

void lcc_print_json(const lcj *v) {
  char *s = lcj_dump(v);
  if (s) {
    fputs(s, stdout);
    fputc('\n', stdout);
    free(s);
  }
}

const char *lcc_short_id(const char *id, char *buf) {
  snprintf(buf, 17, "%s", id ? id : "");
  return buf;
}

static const char *presence_color(const char *p) {
  if (!p)
    return "";
  if (!strcmp(p, "online"))
    return lcc_c("\033[32m");
  if (!strcmp(p, "away"))
    return lcc_c("\033[33m");
  if (!strcmp(p, "busy"))
    return lcc_c("\033[31m");
  return lcc_c("\033[90m");
}

void lcc_print_peer_table(const lcj *peers) {
  size_t n = lcj_len(peers);
  if (n == 0) {
    printf("no peers seen yet\n");
    return;
  }
  printf("%s%-20s %-8s %-16s %-35s %-22s %s%s\n", lcc_c("\033[1m"), "NICK",
         "PRESENCE", "ID", "FINGERPRINT", "ADDRESS", "STATUS / LAST SEEN",
         lcc_c("\033[0m"));
  for (size_t i = 0; i < n; i++) {
    lcj *p = lcj_at(peers, i);
    char sid[17], when[40];
    const char *pres = lcj_get_str(p, "presence");
    const char *status = lcj_get_str(p, "status");
    int online = lcj_bval(lcj_get(p, "online"));
    lcc_local_time(lcj_get_str(p, "last_seen"), 0, when, sizeof when);
    printf("%-20s %s%-8s%s %-16s %-35s %-22s %s%s%s\n", lcj_get_str(p, "nick"),
           presence_color(pres), pres ? pres : "?", lcc_c("\033[0m"),
           lcc_short_id(lcj_get_str(p, "id"), sid),
           lcj_get_str(p, "fingerprint") ? lcj_get_str(p, "fingerprint") : "",
           lcj_get_str(p, "address") ? lcj_get_str(p, "address") : "",
           online ? (status ? status : "") : "last seen ",
           online ? "" : (lcj_get_str(p, "last_seen") ? when : "never"), "");
  }
}

/* Decimal units with one decimal, as the library writes an offer's text. */
void lcc_size(uint64_t b, char *out, size_t outlen) {
  if (b < 1000)
    snprintf(out, outlen, "%llu B", (unsigned long long)b);
  else if (b < 1000000)
    snprintf(out, outlen, "%.1f kB", (double)b / 1e3);
  else if (b < 1000000000)
    snprintf(out, outlen, "%.1f MB", (double)b / 1e6);
  else
    snprintf(out, outlen, "%.1f GB", (double)b / 1e9);
}

void lcc_duration(uint64_t ms, char *out, size_t outlen) {
  uint64_t s = (ms + 500) / 1000;
  if (s >= 3600)
    snprintf(out, outlen, "%llu:%02u:%02u", (unsigned long long)(s / 3600),
             (unsigned)(s / 60 % 60), (unsigned)(s % 60));
  else
    snprintf(out, outlen, "%u:%02u", (unsigned)(s / 60), (unsigned)(s % 60));
}

static uint64_t u64_of(const lcj *o, const char *key) {
  int64_t v = lcj_ival(lcj_get(o, key));
  return v < 0 ? 0 : (uint64_t)v;
}

/* The same words as the offer's text: "voice message, 0:07",
 * "report.pdf (52.0 kB)", "photos/ (12 files, 3.1 MB)", "3 files (2.1
 * MB)". */
void lcc_transfer_summary(const lcj *t, char *out, size_t outlen) {
  const char *kind = lcj_get_str(t, "kind");
  const char *name = lcj_get_str(t, "name");
  char size[32], dur[32], count[40];
  uint64_t n = u64_of(t, "nfiles");
  lcc_size(u64_of(t, "total"), size, sizeof size);
  snprintf(count, sizeof count, "%llu files", (unsigned long long)n);
  if (!name)
    name = "?";
  if (kind && !strcmp(kind, "voice")) {
    lcc_duration(u64_of(t, "duration_ms"), dur, sizeof dur);
    snprintf(out, outlen, "voice message, %s", dur);
  } else if (kind && !strcmp(kind, "folder") && strcmp(name, count)) {
    /* one folder: its name, and how many files are under it */
    snprintf(out, outlen, "%s/ (%llu file%s, %s)", name, (unsigned long long)n,
             n == 1 ? "" : "s", size);
  } else {
    snprintf(out, outlen, "%s (%s)", name, size);
  }
}

void lcc_transfer_state(const lcj *t, char *out, size_t outlen) {
  const char *state = lcj_get_str(t, "state");
  const char *kind = lcj_get_str(t, "kind");
  out[0] = '\0';
  if (!state || (kind && !strcmp(kind, "voice") && !strcmp(state, "done")))
    return;
  uint64_t total = u64_of(t, "total"), bytes = u64_of(t, "bytes");
  if (!strcmp(state, "accepted") && total)
    snprintf(out, outlen, "[accepted, %u%%]",
             (unsigned)(bytes >= total ? 100 : bytes * 100 / total));
  else if ((!strcmp(state, "cancelled") || !strcmp(state, "declined") ||
            !strcmp(state, "failed")) &&
           lcj_bval(lcj_get(t, "by_peer")))
    snprintf(out, outlen, "[%s by the peer]", state);
  else
    snprintf(out, outlen, "[%s]", state);
}

void lcc_print_transfer_event(const lcj *ev) {
  const char *name = lcj_get_str(ev, "event");
  lcj *t = lcj_get(ev, "transfer");
  char what[600], sid[17], st[64];
  const char *nick = lcj_get_str(t, "peer_nick");
  if (!nick || !*nick)
    nick = lcc_short_id(lcj_get_str(t, "peer"), sid);
  int out = lcj_bval(lcj_get(t, "outgoing"));
  lcc_transfer_summary(t, what, sizeof what);
  if (!name || !strcmp(name, "transfer_progress"))
    return;
  if (!strcmp(name, "transfer_offer")) {
    const char *state = lcj_get_str(t, "state");
    if (state && !strcmp(state, "offered"))
      printf("%s%s offers %s%s\n  lanchat accept %s   (or decline)\n",
             lcc_c("\033[33m"), nick, what, lcc_c("\033[0m"),
             lcj_get_str(t, "id"));
    else
      printf("%s%s sends %s (%s)%s\n", lcc_c("\033[33m"), nick, what,
             state ? state : "?", lcc_c("\033[0m"));
  } else if (!strcmp(name, "transfer_file")) {
    lcj *f = lcj_get(ev, "file");
    const char *local = lcj_get_str(f, "local");
    const char *path = lcj_get_str(f, "path");
    printf("%sreceived %s%s%s%s\n", lcc_c("\033[90m"), path ? path : "?",
           local ? " -> " : "", local ? local : "", lcc_c("\033[0m"));
  } else {
    const char *state = lcj_get_str(t, "state");
    const char *why = lcj_get_str(lcj_get(t, "error"), "message");
    lcc_transfer_state(t, st, sizeof st);
    printf("%s%s %s %s: %s%s%s%s%s\n", lcc_c("\033[90m"), what,
           out ? "to" : "from", nick,
           st[0]   ? st
           : state ? state
                   : "?",
           why ? " (" : "", why ? why : "", why ? ")" : "", lcc_c("\033[0m"));
  }
}

void lcc_print_message(const lcj *m, const char *self_id, int short_time) {
  char when[40];
  const char *from = lcj_get_str(m, "from");
  int outgoing = self_id && from ? strcmp(from, self_id) == 0
                                 : lcj_bval(lcj_get(m, "outgoing"));
  const char *nick = lcj_get_str(m, "peer_nick");
  char sid[17];
  if (lcj_get(m, "group")) /* in a group: its author */
    nick = lcj_get_str(m, "from_nick");
  if (!nick || !*nick)
    nick = lcc_short_id(outgoing ? lcj_get_str(m, "to") : from, sid);
  lcc_local_time(lcj_get_str(m, "sent_at"), short_time, when, sizeof when);
  const char *state = lcj_get_str(m, "state");
  int retracted = lcj_bval(lcj_get(m, "retracted"));
  const char *text = lcj_get_str(m, "text");
  char att[700];
  lcj *a = lcj_get(m, "attachment");
  const char *kind = lcj_get_str(m, "kind");
  if (kind && !strcmp(kind, "file") && lcj_is_obj(a)) {
    /* an attachment: what it is and how far it got */
    char summary[600], st[64];
    lcc_transfer_summary(a, summary, sizeof summary);
    lcc_transfer_state(a, st, sizeof st);
    snprintf(att, sizeof att, "%s%s%s", summary, st[0] ? " " : "", st);
    text = att;
  }
  printf("%s[%s]%s %s%s%s: %s%s%s", lcc_c("\033[90m"), when, lcc_c("\033[0m"),
         outgoing ? lcc_c("\033[36m") : lcc_c("\033[35m"),
         outgoing ? "me" : nick, lcc_c("\033[0m"),
         retracted ? lcc_c("\033[90m") : "",
         retracted ? "(retracted)"
         : text    ? text
                   : "",
         retracted ? lcc_c("\033[0m") : "");
  if (lcj_get(m, "edited_at") && !retracted)
    printf(" %s(edited)%s", lcc_c("\033[90m"), lcc_c("\033[0m"));
  if (outgoing && state)
    printf(" %s(%s)%s", lcc_c("\033[90m"), state, lcc_c("\033[0m"));
  printf("\n");
}
