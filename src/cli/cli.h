/* cli.h: what the parts of lanchat, the command line, share: the
 * connection to lanchatd's control socket (client.c), how results are
 * printed (output.c) and the interactive chat (chat.c); main.c holds the
 * table of subcommands. */
#ifndef LCC_CLI_H
#define LCC_CLI_H

#include "json.h"

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

/* Exit statuses (documented in the README). */
enum {
  LCC_EXIT_OK = 0,
  LCC_EXIT_FAIL = 1,     /* the daemon refused or failed a request */
  LCC_EXIT_USAGE = 2,    /* bad command line */
  LCC_EXIT_NODAEMON = 3, /* lanchatd is not running */
  LCC_EXIT_NOID = 4,     /* no identity in the data folder yet */
  LCC_EXIT_NOPEER = 5    /* unknown or ambiguous peer */
};

/* ---- client.c: one connection to the control socket ---- */
typedef struct {
  int fd;
  char *buf;
  size_t len, cap;
  int64_t next_id;
  lcj *pending; /* events read while waiting for a reply */
} lcc_conn;

/* Connects.  0, or a negative errno (-ENOENT, -ECONNREFUSED: no daemon). */
int lcc_connect(lcc_conn *c, const char *sock_path);
void lcc_close(lcc_conn *c);
/* Sends {"id": n, "cmd": cmd, ...args} (args is stolen, may be NULL) and
 * returns the reply with that id (events read meanwhile are kept for
 * lcc_next), or NULL if the connection broke. */
lcj *lcc_call(lcc_conn *c, const char *cmd, lcj *args);
/* Sends a request without waiting (typing notices).  0 or -1. */
int lcc_send(lcc_conn *c, const char *cmd, lcj *args);
/* The next line from the daemon (a kept event first): 1 with *out, 0 when
 * nothing came within timeout_ms (-1: wait), -1 when the connection is
 * closed. */
int lcc_next(lcc_conn *c, int timeout_ms, lcj **out);
/* 1 if a whole line (or a kept event) is waiting already. */
int lcc_ready(const lcc_conn *c);

/* ---- output.c ---- */
extern int lcc_color; /* 1 on a terminal without NO_COLOR */
void lcc_output_init(void);
const char *lcc_c(const char *code); /* an SGR sequence, or "" */
/* "2026-12-02T10:15:03.123Z" in local time: "2026-12-02 11:15" (or only
 * "11:15:03" when short and today). */
void lcc_local_time(const char *rfc3339, int short_form, char *out,
                    size_t outlen);
void lcc_print_json(const lcj *v); /* one line */
void lcc_print_peer_table(const lcj *peers);
/* "[11:15] bob: hello (delivered)" */
void lcc_print_message(const lcj *m, const char *self_id, int short_time);
const char *lcc_short_id(const char *id, char *buf); /* 16 hex digits */
/* "512 B", "1.2 KiB", "3.4 MiB", ... */
void lcc_size(uint64_t bytes, char *out, size_t outlen);
/* "0:07", "12:34", "1:02:03" */
void lcc_duration(uint64_t ms, char *out, size_t outlen);
/* What a transfer (or a message's attachment) is, for people: "voice
 * message, 0:07", "report.pdf, 1.2 MiB", "photos (folder, 12 files,
 * 30 MiB)". */
void lcc_transfer_summary(const lcj *t, char *out, size_t outlen);
/* "[done]", "[accepted, 45%]", ... for a message's attachment or a
 * transfer; "" for a voice message that is done. */
void lcc_transfer_state(const lcj *t, char *out, size_t outlen);
/* One line about a transfer event (offer, new state, file arrived), or
 * nothing for progress; self-explanatory for people. */
void lcc_print_transfer_event(const lcj *ev);

/* ---- chat.c ---- */
/* The interactive chat with a peer; returns an exit status. */
int lcc_chat(lcc_conn *c, const char *peer, const char *self_id);

#endif
