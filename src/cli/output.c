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
  printf("%s[%s]%s %s%s%s: %s%s%s", lcc_c("\033[90m"), when, lcc_c("\033[0m"),
         outgoing ? lcc_c("\033[36m") : lcc_c("\033[35m"),
         outgoing ? "me" : nick, lcc_c("\033[0m"),
         retracted ? lcc_c("\033[90m") : "",
         retracted ? "(retracted)" : lcj_get_str(m, "text"),
         retracted ? lcc_c("\033[0m") : "");
  if (lcj_get(m, "edited_at") && !retracted)
    printf(" %s(edited)%s", lcc_c("\033[90m"), lcc_c("\033[0m"));
  if (outgoing && state)
    printf(" %s(%s)%s", lcc_c("\033[90m"), state, lcc_c("\033[0m"));
  printf("\n");
}
