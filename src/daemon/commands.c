/* commands.c: lanchatd's node and its control commands: the node's events
 * as JSON events for subscribers, and one function per command of the
 * control API (docs/CONTROL.md), found in a table. */
#include "daemon.h"
#include "paths.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define HISTORY_DEFAULT 20
#define HISTORY_MAX 1000
#define SEARCH_DEFAULT 50
#define CANDIDATES_MAX 20

/* ---- JSON forms ----------------------------------------------------------
 */

static void hex(char *out, const uint8_t *b, size_t n) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[b[i] >> 4];
    out[2 * i + 1] = digits[b[i] & 15];
  }
  out[2 * n] = '\0';
}

static lcj *key_json(const uint8_t key[LC_KEY_BYTES]) {
  char h[LC_KEY_HEX_LEN + 1];
  lc_key_to_hex(h, key);
  return lcj_str(h);
}

static lcj *msgid_json(const uint8_t id[LC_MSGID_BYTES]) {
  char h[2 * LC_MSGID_BYTES + 1];
  hex(h, id, LC_MSGID_BYTES);
  return lcj_str(h);
}

/* RFC 3339 in UTC with milliseconds: "2026-12-02T10:15:03.123Z". */
static lcj *time_json(uint64_t ms) {
  if (!ms)
    return lcj_null();
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  char buf[40];
  if (!gmtime_r(&t, &tm))
    return lcj_null();
  size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, sizeof buf - n, ".%03uZ", (unsigned)(ms % 1000));
  return lcj_str(buf);
}

static uint64_t now_ms(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static const char *state_name(lc_msg_state s) {
  const char *name = lc_msg_state_name((int)s);
  return name ? name : "unknown";
}

static lcj *peer_json(const lc_peer_info *p, int online) {
  lcj *o = lcj_obj();
  lcj_set(o, "id", key_json(p->key));
  lcj_set_str(o, "nick", p->nickname);
  lcj_set_str(o, "address", p->address);
  lcj_set_str(o, "presence",
              online ? lc_presence_name(p->presence) : "offline");
  lcj_set_str(o, "status", p->status);
  lcj_set(o, "last_seen", time_json(p->last_seen_ms));
  lcj_set_bool(o, "online", online);
  lcj_set_bool(o, "remote", p->remote);
  char fp[LC_FINGERPRINT_LEN + 1];
  lc_fingerprint(fp, p->key);
  lcj_set_str(o, "fingerprint", fp);
  return o;
}

static lcj *dir_peer_json(lcd_daemon *d, const uint8_t key[LC_KEY_BYTES]) {
  lcd_peer *p = lcd_dir_find(&d->dir, key);
  if (p)
    return peer_json(&p->info, p->online);
  lc_peer_info info;
  memset(&info, 0, sizeof info);
  memcpy(info.key, key, LC_KEY_BYTES);
  return peer_json(&info, 0);
}

static const char *nick_of(lcd_daemon *d, const uint8_t key[LC_KEY_BYTES]) {
  lcd_peer *p = lcd_dir_find(&d->dir, key);
  return p ? p->info.nickname : "";
}

static void group_name_of(lcd_daemon *d, const uint8_t *id, char *out,
                          size_t cap);

static lcj *attachment_json(lcd_daemon *d, const uint8_t id[LC_MSGID_BYTES]);

static lcj *msg_json(lcd_daemon *d, const lc_msg_info *m) {
  lcj *o = lcj_obj();
  lcj_set(o, "id", msgid_json(m->msg_id));
  lcj_set_int(o, "seq", m->id);
  if (m->is_group) {
    /* from its author to the group */
    const uint8_t *from = m->outgoing ? d->self : m->sender;
    char name[LC_GROUP_NAME_MAX + 1];
    group_name_of(d, m->peer, name, sizeof name);
    lcj_set(o, "from", key_json(from));
    lcj_set(o, "to", key_json(m->peer));
    lcj_set(o, "group", key_json(m->peer));
    lcj_set_str(o, "group_name", name);
    lcj_set_str(o, "from_nick", m->outgoing ? "" : nick_of(d, from));
    lcj_set_str(o, "peer_nick", name);
  } else {
    const uint8_t *from = m->outgoing ? d->self : m->peer;
    const uint8_t *to = m->outgoing ? m->peer : d->self;
    lcj_set(o, "from", key_json(from));
    lcj_set(o, "to", key_json(to));
    lcj_set_str(o, "peer_nick", nick_of(d, m->peer));
  }
  lcj_set_bool(o, "outgoing", m->outgoing);
  lcj_set(o, "sent_at", time_json(m->sent_ms));
  lcj_set(o, "received_at", time_json(m->received_ms));
  int file = m->kind == LC_KIND_FILE;
  lcj_set_str(o, "kind", file ? "file" : "text");
  lcj *text = lcj_strn(m->text ? m->text : "", m->text ? m->text_len : 0);
  lcj_set(o, "text", text ? text : lcj_str(""));
  if (file) {
    /* an attachment: the transfer's id is the message's */
    lcj_set(o, "transfer", msgid_json(m->msg_id));
    lcj_set(o, "attachment", attachment_json(d, m->msg_id));
  }
  lcj_set_str(o, "state", state_name(m->state));
  if (m->edited_ms)
    lcj_set(o, "edited_at", time_json(m->edited_ms));
  lcj_set_bool(o, "retracted", m->retracted);
  return o;
}

static lcj *msgs_json(lcd_daemon *d, const lc_msg_info *m, size_t n,
                      int oldest_first) {
  lcj *a = lcj_arr();
  for (size_t i = 0; i < n; i++)
    lcj_push(a, msg_json(d, &m[oldest_first ? n - 1 - i : i]));
  return a;
}

static lcj *event(const char *name) {
  lcj *e = lcj_obj();
  lcj_set_str(e, "event", name);
  return e;
}

/* ---- transfers ---- */

/* A string member that may not be UTF-8 (a path on the sender's disk):
 * "" then, rather than no member at all. */
static void set_str_or_empty(lcj *o, const char *key, const char *s) {
  lcj *v = s ? lcj_str(s) : lcj_null();
  lcj_set(o, key, v ? v : lcj_str(""));
}

static lcj *u64_json(uint64_t v) {
  return lcj_int(v > INT64_MAX ? INT64_MAX : (int64_t)v);
}

static lcj *xfer_file_json(const lc_transfer_file *f, size_t index) {
  lcj *o = lcj_obj();
  lcj_set_int(o, "index", (int64_t)index);
  set_str_or_empty(o, "path", f->path);
  lcj_set(o, "size", u64_json(f->size));
  lcj_set_bool(o, "verified", f->verified);
  if (f->local)
    set_str_or_empty(o, "local", f->local);
  else
    lcj_set(o, "local", lcj_null());
  return o;
}

/* A transfer; its files only with with_files (a folder may hold 10,000:
 * events that come often, and lists, leave them out; nfiles says how
 * many). */
static lcj *transfer_json(lcd_daemon *d, const lc_transfer_info *t,
                          int with_files) {
  lcj *o = lcj_obj();
  const char *kind = lc_transfer_kind_name((int)t->kind);
  const char *state = lc_transfer_state_name((int)t->state);
  lcj_set(o, "id", msgid_json(t->id));
  lcj_set(o, "peer", key_json(t->peer));
  lcj_set_str(o, "peer_nick", nick_of(d, t->peer));
  lcj_set_bool(o, "outgoing", t->outgoing);
  lcj_set_str(o, "kind", kind ? kind : "unknown");
  lcj_set_str(o, "state", state ? state : "unknown");
  if (t->error) {
    lcj *e = lcj_obj();
    lcj_set_str(e, "name", lc_err_name(t->error));
    lcj_set_str(e, "message", lc_strerror(t->error));
    lcj_set(o, "error", e);
  } else {
    lcj_set(o, "error", lcj_null());
  }
  lcj_set_bool(o, "by_peer", t->by_peer);
  lcj_set(o, "total", u64_json(t->total));
  lcj_set(o, "bytes", u64_json(t->bytes));
  lcj_set(o, "rate", u64_json(t->rate));
  lcj_set(o, "eta_ms", u64_json(t->eta_ms));
  lcj_set(o, "duration_ms", u64_json(t->duration_ms));
  lcj_set(o, "created_at", time_json(t->created_ms));
  set_str_or_empty(o, "name", t->name ? t->name : "");
  lcj_set_int(o, "nfiles", (int64_t)t->nfiles);
  if (with_files) {
    lcj *files = lcj_arr();
    for (size_t i = 0; i < t->nfiles; i++)
      lcj_push(files, xfer_file_json(&t->files[i], i));
    lcj_set(o, "files", files);
  }
  return o;
}

/* What a message of kind file shows of its transfer (null if the node
 * has no such transfer). */
static lcj *attachment_json(lcd_daemon *d, const uint8_t id[LC_MSGID_BYTES]) {
  lc_transfer_info *t;
  if (lc_transfer_get(d->node, id, &t) != 0)
    return lcj_null();
  lcj *o = lcj_obj();
  const char *kind = lc_transfer_kind_name((int)t->kind);
  const char *state = lc_transfer_state_name((int)t->state);
  lcj_set_str(o, "kind", kind ? kind : "unknown");
  lcj_set_str(o, "state", state ? state : "unknown");
  set_str_or_empty(o, "name", t->name ? t->name : "");
  lcj_set_bool(o, "by_peer", t->by_peer);
  lcj_set_int(o, "nfiles", (int64_t)t->nfiles);
  lcj_set(o, "total", u64_json(t->total));
  lcj_set(o, "bytes", u64_json(t->bytes));
  lcj_set(o, "duration_ms", u64_json(t->duration_ms));
  lc_transfers_free(t, 1);
  return o;
}

/* ---- node callbacks ------------------------------------------------------
 */

static void on_peer(lc_node *node, lc_peer_event ev, const lc_peer_info *p,
                    int detail, void *user) {
  lcd_daemon *d = user;
  (void)node;
  int online = ev != LC_PEER_LEFT;
  lcd_dir_update(&d->dir, p, online);
  lcj *e = event("peer");
  lcj_set_str(e, "change",
              ev == LC_PEER_APPEARED  ? "appeared"
              : ev == LC_PEER_CHANGED ? "changed"
                                      : "left");
  if (ev == LC_PEER_LEFT)
    lcj_set_str(e, "reason", detail == LC_LEFT_GOODBYE ? "goodbye" : "expired");
  lcj_set(e, "peer", peer_json(p, online));
  lcd_log(3, "peer %s: %s", p->nickname,
          ev == LC_PEER_APPEARED  ? "appeared"
          : ev == LC_PEER_CHANGED ? "changed"
                                  : "left");
  lcd_server_broadcast(d, LCD_EV_PEER, e);
}

static void on_message(lc_node *node, const lc_message *m, void *user) {
  lcd_daemon *d = user;
  (void)node;
  lcd_dir_touch(&d->dir, m->from);
  lc_msg_info info;
  memset(&info, 0, sizeof info);
  info.id = m->id;
  memcpy(info.msg_id, m->msg_id, LC_MSGID_BYTES);
  memcpy(info.peer, m->from, LC_KEY_BYTES);
  info.sent_ms = m->sent_ms;
  info.received_ms = m->received_ms;
  info.state = LC_MSG_DELIVERED;
  info.text = (char *)m->text;
  info.text_len = m->text_len;
  info.kind = m->kind;
  if (m->group) {
    info.is_group = 1;
    memcpy(info.peer, m->group, LC_GROUP_ID_BYTES);
    memcpy(info.sender, m->from, LC_KEY_BYTES);
  }
  lcj *e = event("message");
  lcj_set(e, "message", msg_json(d, &info));
  lcd_server_broadcast(d, LCD_EV_MESSAGE, e);
}

static void on_delivery(lc_node *node, const uint8_t peer[LC_KEY_BYTES],
                        const uint8_t msg_id[LC_MSGID_BYTES],
                        lc_msg_state state, int err, void *user) {
  lcd_daemon *d = user;
  (void)node;
  (void)err;
  lcj *e = event("delivery");
  lcj_set(e, "id", msgid_json(msg_id));
  lcj_set(e, "peer", key_json(peer));
  lcj_set_str(e, "state", state_name(state));
  lcd_server_broadcast(d, LCD_EV_DELIVERY, e);
}

static const char *typing_name(lc_typing t) {
  return t == LC_TYPING_COMPOSING ? "composing"
         : t == LC_TYPING_PAUSED  ? "paused"
                                  : "idle";
}

static void on_typing(lc_node *node, const uint8_t peer[LC_KEY_BYTES],
                      lc_typing state, void *user) {
  lcd_daemon *d = user;
  (void)node;
  lcj *e = event("typing");
  lcj_set(e, "peer", key_json(peer));
  lcj_set_str(e, "nick", nick_of(d, peer));
  lcj_set_str(e, "state", typing_name(state));
  lcd_server_broadcast(d, LCD_EV_TYPING, e);
}

static void on_changed(lc_node *node, const lc_msg_info *m, void *user) {
  lcd_daemon *d = user;
  (void)node;
  lcj *e = event("changed");
  lcj_set(e, "message", msg_json(d, m));
  lcd_server_broadcast(d, LCD_EV_CHANGED, e);
}

static void on_network(lc_node *node, lc_network_event ev, void *user) {
  lcd_daemon *d = user;
  (void)node;
  (void)ev;
  lcj *e = event("network");
  lcj_set_str(e, "change", "changed");
  lcd_log(2, "network changed: announced again");
  lcd_server_broadcast(d, LCD_EV_NETWORK, e);
}

static const char *contact_state_name(lc_contact_state s) {
  switch (s) {
  case LC_CONTACT_ASKED:
    return "asked";
  case LC_CONTACT_ASKING:
    return "asking";
  case LC_CONTACT_FRIEND:
    return "friend";
  case LC_CONTACT_NONE:
    break;
  }
  return "none";
}

static lcj *dir_peer_json(lcd_daemon *d, const uint8_t key[LC_KEY_BYTES]);

static lcj *contact_json(lcd_daemon *d, const lc_contact_info *c) {
  lcj *o = lcj_obj();
  lcj *p = dir_peer_json(d, c->key);
  if (!*lcj_get_str(p, "nick") && c->nickname[0])
    lcj_set_str(p, "nick", c->nickname);
  lcj_set(o, "peer", p);
  lcj_set_str(o, "state", contact_state_name(c->state));
  lcj_set_bool(o, "blocked", c->blocked);
  lcj_set_bool(o, "held", c->held);
  lcj_set_bool(o, "trusted", c->trusted);
  lcj_set_str(o, "note", c->note);
  lcj_set(o, "changed_at", time_json(c->changed_ms));
  return o;
}

static void on_contact(lc_node *node, lc_contact_event ev,
                       const lc_contact_info *c, const uint8_t *other,
                       void *user) {
  lcd_daemon *d = user;
  (void)node;
  static const char *const names[] = {"",         "requested", "accepted",
                                      "rejected", "removed",   "key_changed",
                                      "updated"};
  lcj *e = event("contact");
  lcj_set_str(e, "change", ev >= 1 && ev <= 6 ? names[ev] : "updated");
  lcj_set(e, "contact", contact_json(d, c));
  if (other)
    lcj_set(e, "previous_key", key_json(other));
  if (ev == LC_CONTACT_KEY_CHANGED)
    lcd_log(1,
            "%s now comes with another key: held until accepted "
            "(lanchat trust)",
            c->nickname);
  lcd_server_broadcast(d, LCD_EV_CONTACT, e);
}

/* ---- groups ---- */

static void group_name_of(lcd_daemon *d, const uint8_t *id, char *out,
                          size_t cap) {
  lc_group_info *g;
  size_t n;
  out[0] = '\0';
  if (lc_groups(d->node, &g, &n) != 0)
    return;
  for (size_t i = 0; i < n; i++)
    if (memcmp(g[i].id, id, LC_GROUP_ID_BYTES) == 0)
      snprintf(out, cap, "%s", g[i].name);
  lc_groups_free(g, n);
}

static lcj *group_json(lcd_daemon *d, const lc_group_info *g) {
  lcj *o = lcj_obj();
  lcj_set(o, "id", key_json(g->id));
  lcj_set_str(o, "name", g->name);
  lcj_set_bool(o, "member", g->member);
  lcj *arr = lcj_arr();
  for (size_t i = 0; i < g->nmembers; i++) {
    lcj *m;
    if (memcmp(g->members[i].key, d->self, LC_KEY_BYTES) == 0) {
      m = lcj_obj();
      lcj_set(m, "id", key_json(d->self));
      lcj_set_str(m, "nick", d->cfg.nick ? d->cfg.nick : "");
      lcj_set_bool(m, "online", 1);
      lcj_set_bool(m, "me", 1);
    } else {
      m = dir_peer_json(d, g->members[i].key);
    }
    lcj_set_bool(m, "owner", g->members[i].owner);
    lcj_push(arr, m);
  }
  lcj_set(o, "members", arr);
  return o;
}

static void on_group(lc_node *node, const lc_group_info *g, void *user) {
  lcd_daemon *d = user;
  (void)node;
  lcj *e = event("group");
  lcj_set(e, "group", group_json(d, g));
  lcd_server_broadcast(d, LCD_EV_GROUP, e);
}

static void on_transfer(lc_node *node, lc_transfer_event ev,
                        const lc_transfer_info *t, int detail, void *user) {
  lcd_daemon *d = user;
  (void)node;
  const char *name = ev == LC_TRANSFER_OFFER     ? "transfer_offer"
                     : ev == LC_TRANSFER_CHANGED ? "transfer_changed"
                     : ev == LC_TRANSFER_FILE    ? "transfer_file"
                                                 : "transfer_progress";
  /* the files only where they change what a client shows: an offer and a
   * new state (progress comes every 250 ms; a file event names its file) */
  int with_files = ev == LC_TRANSFER_OFFER || ev == LC_TRANSFER_CHANGED;
  lcj *e = event(name);
  lcj_set(e, "transfer", transfer_json(d, t, with_files));
  if (ev == LC_TRANSFER_FILE && detail >= 0 && (size_t)detail < t->nfiles)
    lcj_set(e, "file", xfer_file_json(&t->files[detail], (size_t)detail));
  if (ev == LC_TRANSFER_OFFER || ev == LC_TRANSFER_CHANGED) {
    const char *st = lc_transfer_state_name((int)t->state);
    lcd_log(2, "transfer %s %s: %s", t->outgoing ? "to" : "from",
            nick_of(d, t->peer), st ? st : "?");
  }
  lcd_server_broadcast(d, LCD_EV_TRANSFER, e);
}

static void on_log(lc_node *node, int level, const char *msg, void *user) {
  (void)node;
  (void)user;
  lcd_log(level, "node: %s", msg);
}

/* ---- the node ------------------------------------------------------------
 */

static char *join_list(char *const *v, size_t n) {
  size_t len = 1;
  for (size_t i = 0; i < n; i++)
    len += strlen(v[i]) + 1;
  char *s = malloc(len);
  if (!s)
    return NULL;
  s[0] = '\0';
  for (size_t i = 0; i < n; i++) {
    if (i)
      strcat(s, ",");
    strcat(s, v[i]);
  }
  return s;
}

int lcd_node_open(lcd_daemon *d, struct uv_loop_s *loop, char *err,
                  size_t errlen) {
  int mk = lc_paths_mkdirs(d->downloads);
  if (mk < 0) {
    snprintf(err, errlen, "cannot create the downloads folder %s: %s",
             d->downloads, strerror(-mk));
    return mk;
  }
  lc_node_options o;
  lc_node_options_init(&o);
  o.data_dir = d->data_dir;
  o.nickname = d->cfg.nick;
  o.presence = (lc_presence)d->presence;
  o.status = d->status;
  o.port = d->cfg.port;
  o.discovery_port = d->cfg.discovery_port;
  o.bind_v4 = d->cfg.bind_v4;
  o.bind_v6 = d->cfg.bind_v6;
  o.interfaces = d->cfg.interfaces;
  o.announce_interval_ms = d->cfg.announce_interval_ms;
  o.no_read_receipts = d->cfg.no_read_receipts;
  o.passphrase = d->passphrase;
  o.no_create_identity = 1;
  char *bc = d->cfg.n_broadcast
                 ? join_list(d->cfg.broadcast, d->cfg.n_broadcast)
                 : NULL;
  char *peers = d->cfg.n_peer ? join_list(d->cfg.peer, d->cfg.n_peer) : NULL;
  o.broadcast = bc;
  o.static_peers = peers;
  o.on_peer = on_peer;
  o.on_message = on_message;
  o.on_delivery = on_delivery;
  o.on_typing = on_typing;
  o.on_changed = on_changed;
  o.on_network = on_network;
  o.on_log = on_log;
  o.on_contact = on_contact;
  o.on_group = on_group;
  o.contacts_only = d->contacts_only;
  o.downloads_dir = d->downloads;
  o.auto_accept_bytes = d->cfg.auto_accept_bytes;
  o.on_transfer = on_transfer;
  o.user_data = d;
  int rc = lc_node_new(&d->node, loop, &o);
  free(bc);
  free(peers);
  if (d->passphrase) {
    memset(d->passphrase, 0, strlen(d->passphrase));
    free(d->passphrase);
    d->passphrase = NULL;
  }
  if (rc == -ENOENT) {
    snprintf(err, errlen,
             "no identity in %s yet: create one with\n  lanchat --data-dir "
             "%s init --nick NAME",
             d->data_dir, d->data_dir);
    return rc;
  }
  if (rc == LC_EPASSPHRASE) {
    snprintf(err, errlen,
             "the identity in %s is protected by a passphrase: give it in "
             "LANCHAT_PASSPHRASE or with --passphrase-file FILE (%s)",
             d->data_dir, lc_strerror(rc));
    return rc;
  }
  if (rc < 0) {
    snprintf(err, errlen, "cannot open the node in %s: %s", d->data_dir,
             lc_strerror(rc));
    return rc;
  }
  lc_node_key(d->node, d->self);
  d->started_ms = now_ms();
  /* conversation partners resolve by id prefix even before they appear */
  lc_conversation_info *cv;
  size_t n;
  if (lc_conversations(d->node, &cv, &n) == 0) {
    for (size_t i = 0; i < n; i++)
      lcd_dir_touch(&d->dir, cv[i].peer);
    lc_conversations_free(cv, n);
  }
  return 0;
}

/* ---- state kept across restarts ------------------------------------------
 */

void lcd_profile_load(lcd_daemon *d) {
  d->presence = LC_PRESENCE_ONLINE;
  FILE *f = fopen(d->profile_path, "re");
  if (!f)
    return;
  char buf[4096];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  char err[200];
  lcj *p = lcj_parse(buf, n, err, sizeof err);
  if (!lcj_is_obj(p)) {
    lcd_log(1, "%s: ignored (%s)", d->profile_path, p ? "not an object" : err);
    lcj_free(p);
    return;
  }
  const char *nick = lcj_get_str(p, "nick");
  const char *status = lcj_get_str(p, "status");
  const char *pres = lcj_get_str(p, "presence");
  if (nick && *nick && strlen(nick) <= LC_NICK_MAX && !d->cfg.nick)
    d->cfg.nick = strdup(nick);
  if (status && strlen(status) <= LC_STATUS_MAX)
    snprintf(d->status, sizeof d->status, "%s", status);
  const char *policy = lcj_get_str(p, "policy");
  d->contacts_only = policy && !strcmp(policy, "contacts");
  if (pres && (!strcmp(pres, "away") || !strcmp(pres, "busy")))
    d->presence = !strcmp(pres, "away") ? LC_PRESENCE_AWAY : LC_PRESENCE_BUSY;
  lcj_free(p);
}

static int profile_save(lcd_daemon *d) {
  lcj *p = lcj_obj();
  lcj_set_str(p, "nick", d->cfg.nick ? d->cfg.nick : "");
  lcj_set_str(p, "presence", lc_presence_name(d->presence));
  lcj_set_str(p, "status", d->status);
  lcj_set_str(p, "policy", d->contacts_only ? "contacts" : "anyone");
  char *text = lcj_dump(p);
  lcj_free(p);
  if (!text)
    return -ENOMEM;
  char tmp[PATH_MAX + 8];
  snprintf(tmp, sizeof tmp, "%s.tmp", d->profile_path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (fd >= 0 && !f)
    close(fd);
  int rc = 0;
  if (!f)
    rc = -errno;
  else {
    if (fprintf(f, "%s\n", text) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0)
      rc = -EIO;
    if (fclose(f) != 0 && rc == 0)
      rc = -errno;
    if (rc == 0 && rename(tmp, d->profile_path) != 0)
      rc = -errno;
    if (rc != 0)
      unlink(tmp);
  }
  free(text);
  return rc;
}

void lcd_save_state(lcd_daemon *d) {
  if (d->dir.dirty) {
    int rc = lcd_dir_save(&d->dir, d->peers_path);
    if (rc < 0)
      lcd_log(1, "could not save %s: %s", d->peers_path, strerror(-rc));
  }
  if (d->profile_dirty) {
    int rc = profile_save(d);
    if (rc < 0)
      lcd_log(1, "could not save %s: %s", d->profile_path, strerror(-rc));
    else
      d->profile_dirty = 0;
  }
}

/* ---- requests ------------------------------------------------------------
 */

typedef struct {
  lcd_daemon *d;
  lcj *req;
  lcd_effect *eff;
  const char *code; /* an error: its code, message and details */
  char msg[600];
  lcj *details;
} ctx;

static lcj *fail(ctx *c, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static lcj *fail(ctx *c, const char *code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->msg, sizeof c->msg, fmt, ap);
  va_end(ap);
  c->code = code;
  return NULL;
}

static lcj *fail_lc(ctx *c, int rc, const char *what) {
  const char *code = rc == LC_EINVAL    ? "bad_argument"
                     : rc == LC_ETOOBIG ? "too_large"
                     : rc == LC_ESTATE  ? "stopping"
                     : rc == -ENOENT    ? "not_found"
                     : rc == LC_ENOPEER ? "peer_absent"
                     : rc == LC_ESTORE  ? "store_failed"
                     : rc == LC_ENOMEM  ? "out_of_memory"
                                        : "failed";
  return fail(c, code, "%s: %s", what, lc_strerror(rc));
}

/* Arguments: 1 present and right, 0 absent (and optional), -1 an error. */
static int arg_str(ctx *c, const char *name, int required, const char **out) {
  lcj *v = lcj_get(c->req, name);
  if (!v || lcj_is_null(v)) {
    if (required)
      fail(c, "bad_argument", "missing argument '%s' (a string)", name);
    return required ? -1 : 0;
  }
  if (!lcj_is_str(v)) {
    fail(c, "bad_argument", "argument '%s' must be a string, not %s", name,
         lcj_type_name(v));
    return -1;
  }
  *out = lcj_sval(v);
  return 1;
}

static int arg_int(ctx *c, const char *name, int64_t min, int64_t max,
                   int64_t *out) {
  lcj *v = lcj_get(c->req, name);
  if (!v || lcj_is_null(v))
    return 0;
  if (!lcj_is_int(v)) {
    fail(c, "bad_argument", "argument '%s' must be an integer, not %s", name,
         lcj_type_name(v));
    return -1;
  }
  int64_t x = lcj_ival(v);
  if (x < min || x > max) {
    fail(c, "bad_argument",
         "argument '%s' must be between %lld and %lld, not %lld", name,
         (long long)min, (long long)max, (long long)x);
    return -1;
  }
  *out = x;
  return 1;
}

static int arg_bool(ctx *c, const char *name, int *out) {
  lcj *v = lcj_get(c->req, name);
  if (!v || lcj_is_null(v))
    return 0;
  if (!lcj_is_bool(v)) {
    fail(c, "bad_argument", "argument '%s' must be true or false, not %s", name,
         lcj_type_name(v));
    return -1;
  }
  *out = lcj_bval(v);
  return 1;
}

static int hex_digit(char ch) {
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  if (ch >= 'a' && ch <= 'f')
    return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F')
    return ch - 'A' + 10;
  return -1;
}

/* Exactly 2 * LC_MSGID_BYTES hex digits into id: 0, or -1. */
static int msgid_from_hex(uint8_t id[LC_MSGID_BYTES], const char *s) {
  if (strlen(s) != 2 * LC_MSGID_BYTES)
    return -1;
  for (size_t i = 0; i < LC_MSGID_BYTES; i++) {
    int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return -1;
    id[i] = (uint8_t)(hi << 4 | lo);
  }
  return 0;
}

static int arg_msgid(ctx *c, const char *name, int required,
                     uint8_t id[LC_MSGID_BYTES]) {
  const char *s = NULL;
  int r = arg_str(c, name, required, &s);
  if (r <= 0)
    return r;
  if (msgid_from_hex(id, s) != 0) {
    fail(c, "bad_argument",
         "argument '%s' must be a message id (%d hex digits)", name,
         2 * LC_MSGID_BYTES);
    return -1;
  }
  return 1;
}

/* A transfer's id: its offer's message id, 32 hex digits. */
static int arg_xfer(ctx *c, const char *name, uint8_t id[LC_MSGID_BYTES]) {
  const char *s = NULL;
  if (arg_str(c, name, 1, &s) < 0)
    return -1;
  if (msgid_from_hex(id, s) != 0) {
    fail(c, "bad_argument",
         "argument '%s' must be a transfer id (%d hex digits), not '%.40s'",
         name, 2 * LC_MSGID_BYTES, s);
    return -1;
  }
  return 1;
}

/* A peer by nickname or id (prefix); errors list the candidates. */
static int arg_peer(ctx *c, const char *name, int required,
                    uint8_t key[LC_KEY_BYTES]) {
  const char *s = NULL;
  int r = arg_str(c, name, required, &s);
  if (r <= 0)
    return r;
  size_t idx[CANDIDATES_MAX];
  int found = lcd_dir_resolve(&c->d->dir, s, key, idx, CANDIDATES_MAX);
  if (found == 1)
    return 1;
  lcj *cands = lcj_arr();
  if (found < 0) {
    size_t n =
        (size_t)-found < CANDIDATES_MAX ? (size_t)-found : CANDIDATES_MAX;
    for (size_t i = 0; i < n; i++)
      lcj_push(cands, peer_json(&c->d->dir.v[idx[i]].info,
                                c->d->dir.v[idx[i]].online));
    fail(c, "ambiguous_peer",
         "'%s' matches %d peers: give more of the id (at least 8 hex "
         "digits)",
         s, -found);
  } else {
    /* nothing matched: every known peer is a candidate */
    for (size_t i = 0; i < c->d->dir.n && i < CANDIDATES_MAX; i++)
      lcj_push(cands, peer_json(&c->d->dir.v[i].info, c->d->dir.v[i].online));
    fail(c, "unknown_peer",
         "no peer called '%s' (a nickname, or at least 8 hex digits of an "
         "id)",
         s);
  }
  c->details = lcj_obj();
  lcj_set(c->details, "candidates", cands);
  return -1;
}

/* A group by id (64 hex digits, or at least 8 of them) or name (exact,
 * then ignoring case): 1 with its id, 0 if none, -n if n match. */
static int find_group(lcd_daemon *d, const char *s, uint8_t id[32],
                      lcj *cands) {
  lc_group_info *g;
  size_t n;
  if (lc_groups(d->node, &g, &n) != 0)
    return 0;
  size_t len = strlen(s);
  int found = 0;
  int hex = len >= 8 && len <= LC_KEY_HEX_LEN &&
            strspn(s, "0123456789abcdefABCDEF") == len;
  for (int pass = 0; pass < 3 && !found; pass++) {
    for (size_t i = 0; i < n; i++) {
      char h[LC_KEY_HEX_LEN + 1];
      lc_key_to_hex(h, g[i].id);
      int match = pass == 0   ? hex && strncasecmp(h, s, len) == 0
                  : pass == 1 ? strcmp(g[i].name, s) == 0
                              : strcasecmp(g[i].name, s) == 0;
      if (!match)
        continue;
      found++;
      memcpy(id, g[i].id, LC_GROUP_ID_BYTES);
      if (cands)
        lcj_push(cands, group_json(d, &g[i]));
    }
  }
  lc_groups_free(g, n);
  return found <= 1 ? found : -found;
}

/* A peer or a group (send, history, read, search): 1 with is_group set,
 * 0 absent and optional, -1 an error listing the candidates. */
static int arg_target(ctx *c, const char *name, int required,
                      uint8_t key[LC_KEY_BYTES], int *is_group) {
  const char *s = NULL;
  int r = arg_str(c, name, required, &s);
  if (r <= 0)
    return r;
  *is_group = 0;
  lcj *gc = lcj_arr();
  int g = find_group(c->d, s, key, gc);
  if (g == 1 && strlen(s) == LC_KEY_HEX_LEN) {
    lcj_free(gc);
    *is_group = 1;
    return 1;
  }
  size_t idx[CANDIDATES_MAX];
  uint8_t pk[LC_KEY_BYTES];
  int p = lcd_dir_resolve(&c->d->dir, s, pk, idx, CANDIDATES_MAX);
  if (p == 1 && g == 0) {
    memcpy(key, pk, LC_KEY_BYTES);
    lcj_free(gc);
    return 1;
  }
  if (g == 1 && p == 0) {
    lcj_free(gc);
    *is_group = 1;
    return 1;
  }
  if (p == 0 && g == 0) {
    lcj_free(gc);
    return arg_peer(c, name, required, key); /* the unknown_peer error */
  }
  /* several: peers and groups alike */
  for (int i = 0; p < 0 && i < -p && i < CANDIDATES_MAX; i++)
    lcj_push(gc,
             peer_json(&c->d->dir.v[idx[i]].info, c->d->dir.v[idx[i]].online));
  if (p == 1)
    lcj_push(gc, dir_peer_json(c->d, pk));
  fail(c, "ambiguous_peer",
       "'%s' names more than one peer or group: give more of the id", s);
  c->details = lcj_obj();
  lcj_set(c->details, "candidates", gc);
  return -1;
}

/* A group argument (the group commands). */
static int arg_group(ctx *c, const char *name, uint8_t id[32]) {
  const char *s = NULL;
  if (arg_str(c, name, 1, &s) < 0)
    return -1;
  lcj *cands = lcj_arr();
  int g = find_group(c->d, s, id, cands);
  if (g == 1) {
    lcj_free(cands);
    return 1;
  }
  if (g == 0) {
    lcj_free(cands);
    cands = lcj_arr();
    lc_group_info *v;
    size_t n;
    if (lc_groups(c->d->node, &v, &n) == 0) {
      for (size_t i = 0; i < n && i < CANDIDATES_MAX; i++)
        lcj_push(cands, group_json(c->d, &v[i]));
      lc_groups_free(v, n);
    }
    fail(c, "unknown_group",
         "no group called '%s' (a name, or at least 8 hex digits of an id)", s);
  } else {
    fail(c, "ambiguous_group", "'%s' matches %d groups: give more of the id", s,
         -g);
  }
  c->details = lcj_obj();
  lcj_set(c->details, "candidates", cands);
  return -1;
}

static lcj *result(void) {
  return lcj_obj();
}

/* Fresh figures (last seen, address) of the peers present, for whatever a
 * command shows of them. */
static void refresh_peers(lcd_daemon *d) {
  lc_peer_info *now;
  size_t n;
  if (d->stopping || lc_node_peers(d->node, &now, &n) != 0)
    return;
  for (size_t i = 0; i < n; i++) {
    lcd_peer *p = lcd_dir_find(&d->dir, now[i].key);
    if (p && p->online) {
      p->info = now[i]; /* not dirty: peers.json keeps what events bring */
      continue;
    }
    lcd_dir_update(&d->dir, &now[i], 1);
  }
  lc_peers_free(now);
}

static int by_last_seen(const void *a, const void *b) {
  const lcd_peer *x = *(lcd_peer *const *)a, *y = *(lcd_peer *const *)b;
  if (x->online != y->online)
    return y->online - x->online;
  return x->info.last_seen_ms < y->info.last_seen_ms   ? 1
         : x->info.last_seen_ms > y->info.last_seen_ms ? -1
                                                       : 0;
}

/* ---- commands --------------------------------------------------------- */

static lcj *cmd_help(ctx *c);

static lcj *cmd_whoami(ctx *c) {
  lcd_daemon *d = c->d;
  lcj *r = result();
  lc_peer_info me;
  memset(&me, 0, sizeof me);
  memcpy(me.key, d->self, LC_KEY_BYTES);
  snprintf(me.nickname, sizeof me.nickname, "%s", d->cfg.nick);
  lcj *pj = peer_json(&me, 1);
  lcj_set_str(pj, "presence", lc_presence_name(d->presence));
  lcj_set_str(pj, "status", d->status);
  lcj_set(pj, "last_seen", time_json(now_ms()));
  lcj_set_str(pj, "address", ""); /* ours: one per interface; see port */
  lcj_set(r, "peer", pj);
  lcj_set_int(r, "port", lc_node_port(d->node));
  lcj_set_str(r, "data_dir", d->data_dir);
  lcj_set_str(r, "version", lc_version_string());
  lcj_set_int(r, "pid", (int64_t)getpid());
  lcj_set(r, "started_at", time_json(d->started_ms));
  lcj_set_str(r, "downloads", d->downloads);
  lcj_set(r, "auto_accept", u64_json(d->cfg.auto_accept_bytes));
  return r;
}

static lcj *cmd_peers(ctx *c) {
  int all = 0;
  if (arg_bool(c, "all", &all) < 0)
    return NULL;
  /* online peers first, the rest from the most recently seen */
  lcd_directory *dir = &c->d->dir;
  /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
  lcd_peer **v = malloc((dir->n ? dir->n : 1) * sizeof *v);
  if (!v)
    return fail(c, "out_of_memory", "peers: out of memory");
  size_t k = 0;
  for (size_t i = 0; i < dir->n; i++) {
    if (!all && !dir->v[i].online)
      continue;
    if (memcmp(dir->v[i].info.key, c->d->self, LC_KEY_BYTES) == 0)
      continue;
    v[k++] = &dir->v[i];
  }
  qsort(v, k, sizeof *v, by_last_seen); /* NOLINT(bugprone-sizeof-expression) */
  lcj *arr = lcj_arr();
  for (size_t i = 0; i < k; i++)
    lcj_push(arr, peer_json(&v[i]->info, v[i]->online));
  free(v);
  lcj *r = result();
  lcj_set(r, "peers", arr);
  return r;
}

static lcj *cmd_nick(ctx *c) {
  const char *nick;
  if (arg_str(c, "nick", 1, &nick) < 0)
    return NULL;
  int rc = lc_node_set_nickname(c->d->node, nick);
  if (rc < 0)
    return fail(c, rc == LC_EINVAL ? "bad_argument" : "failed",
                "cannot set the nickname: %s (1 to %d bytes of UTF-8)",
                lc_strerror(rc), LC_NICK_MAX);
  char *dup = strdup(nick);
  if (dup) {
    free(c->d->cfg.nick);
    c->d->cfg.nick = dup;
  }
  c->d->profile_dirty = 1;
  lcj *r = result();
  lcj_set_str(r, "nick", nick);
  return r;
}

static lcj *cmd_status(ctx *c) {
  const char *pres, *text = NULL;
  if (arg_str(c, "presence", 1, &pres) < 0 || arg_str(c, "text", 0, &text) < 0)
    return NULL;
  int p = lc_presence_from_name(pres);
  if (p < 0)
    return fail(c, "bad_argument",
                "presence must be online, away or busy, not '%s'", pres);
  int rc = lc_node_set_presence(c->d->node, (lc_presence)p, text);
  if (rc < 0)
    return fail(c, rc == LC_EINVAL ? "bad_argument" : "failed",
                "cannot set the status: %s (text: at most %d bytes of UTF-8)",
                lc_strerror(rc), LC_STATUS_MAX);
  c->d->presence = p;
  if (text)
    snprintf(c->d->status, sizeof c->d->status, "%s", text);
  c->d->profile_dirty = 1;
  lcj *r = result();
  lcj_set_str(r, "presence", pres);
  lcj_set_str(r, "status", c->d->status);
  return r;
}

static lcj *one_message(ctx *c, const uint8_t id[LC_MSGID_BYTES]) {
  lc_msg_info *m;
  int rc = lc_history_get(c->d->node, id, &m);
  if (rc < 0)
    return rc == -ENOENT ? fail(c, "not_found", "no such message")
                         : fail_lc(c, rc, "reading the message");
  lcj *j = msg_json(c->d, m);
  lc_msgs_free(m, 1);
  return j;
}

/* {"message": ...} for a message of the history. */
static lcj *message_reply(ctx *c, const uint8_t id[LC_MSGID_BYTES]) {
  lcj *m = one_message(c, id);
  if (!m)
    return NULL;
  lcj *r = result();
  lcj_set(r, "message", m);
  return r;
}

/* A group's JSON by id (null if unknown). */
static lcj *group_by_id(lcd_daemon *d, const uint8_t *id) {
  lc_group_info *g;
  size_t n;
  lcj *r = NULL;
  if (lc_groups(d->node, &g, &n) == 0) {
    for (size_t i = 0; i < n && !r; i++)
      if (memcmp(g[i].id, id, LC_GROUP_ID_BYTES) == 0)
        r = group_json(d, &g[i]);
    lc_groups_free(g, n);
  }
  return r ? r : lcj_null();
}

/* A conversation's other side: "peer", or "group" for a group's. */
static void conv_who(lcd_daemon *d, lcj *o, const lc_conversation_info *cv) {
  if (cv->has_last && cv->last.is_group)
    lcj_set(o, "group", group_by_id(d, cv->peer));
  else
    lcj_set(o, "peer", dir_peer_json(d, cv->peer));
}

static lcj *cmd_send(ctx *c) {
  uint8_t to[LC_KEY_BYTES], id[LC_MSGID_BYTES];
  const char *text;
  int group = 0;
  if (arg_target(c, "to", 1, to, &group) < 0 ||
      arg_str(c, "text", 1, &text) < 0)
    return NULL;
  size_t len = lcj_slen(lcj_get(c->req, "text"));
  if (len == 0)
    return fail(c, "bad_argument", "an empty message");
  if (len > LC_TEXT_MAX)
    return fail(c, "too_large", "a message is at most %d bytes, not %zu",
                LC_TEXT_MAX, len);
  if (!group && memcmp(to, c->d->self, LC_KEY_BYTES) == 0)
    return fail(c, "bad_argument", "that is us: messages go to other peers");
  int rc = group ? lc_group_send(c->d->node, to, text, len, id)
                 : lc_send_text(c->d->node, to, text, len, id);
  if (rc == LC_ESTATE && group)
    return fail(c, "wrong_state", "send: we are not a member of that group");
  if (rc < 0)
    return fail_lc(c, rc, "send");
  if (!group)
    lcd_dir_touch(&c->d->dir, to);
  lcj *m = one_message(c, id);
  if (!m)
    return NULL;
  /* other clients (a chat window, lanchat watch) see what was sent */
  lcj *e = event("message");
  lcj_set(e, "message", lcj_ref(m));
  lcd_server_broadcast(c->d, LCD_EV_MESSAGE, e);
  lcj *r = result();
  lcj_set(r, "message", m);
  return r;
}

static lcj *cmd_typing(ctx *c) {
  uint8_t to[LC_KEY_BYTES];
  const char *st = "composing";
  if (arg_peer(c, "to", 1, to) < 0 || arg_str(c, "state", 0, &st) < 0)
    return NULL;
  lc_typing t;
  if (!strcmp(st, "composing"))
    t = LC_TYPING_COMPOSING;
  else if (!strcmp(st, "paused"))
    t = LC_TYPING_PAUSED;
  else if (!strcmp(st, "idle"))
    t = LC_TYPING_IDLE;
  else
    return fail(c, "bad_argument",
                "state must be composing, paused or idle, not '%s'", st);
  int rc = lc_send_typing(c->d->node, to, t);
  lcj *r = result();
  /* a notice to a peer that is away is not an error: nothing to tell */
  lcj_set_bool(r, "sent", rc == 0);
  return r;
}

static lcj *cmd_history(ctx *c) {
  uint8_t with[LC_KEY_BYTES], before[LC_MSGID_BYTES];
  int64_t limit = HISTORY_DEFAULT, before_seq = 0;
  int hb, group = 0;
  if (arg_target(c, "with", 1, with, &group) < 0 ||
      arg_int(c, "limit", 1, HISTORY_MAX, &limit) < 0 ||
      (hb = arg_msgid(c, "before", 0, before)) < 0 ||
      arg_int(c, "before_seq", 1, INT64_MAX, &before_seq) < 0)
    return NULL;
  if (hb == 1) {
    lc_msg_info *m;
    int rc = lc_history_get(c->d->node, before, &m);
    if (rc < 0)
      return rc == -ENOENT ? fail(c, "not_found", "before: no such message")
                           : fail_lc(c, rc, "history");
    before_seq = m->id;
    lc_msgs_free(m, 1);
  }
  lc_msg_info *m;
  size_t n;
  /* one more than asked, to tell whether older messages remain */
  int rc =
      lc_history_page(c->d->node, with, before_seq, (size_t)limit + 1, &m, &n);
  if (rc < 0)
    return fail_lc(c, rc, "history");
  size_t shown = n > (size_t)limit ? (size_t)limit : n;
  lcj *r = result();
  if (group)
    lcj_set(r, "group", group_by_id(c->d, with));
  else
    lcj_set(r, "peer", dir_peer_json(c->d, with));
  /* newest first: an extra one is the oldest, left out */
  lcj_set(r, "messages", msgs_json(c->d, m, shown, 1));
  lcj_set_bool(r, "more", n > shown);
  lc_msgs_free(m, n);
  return r;
}

static lcj *cmd_get(ctx *c) {
  uint8_t id[LC_MSGID_BYTES];
  if (arg_msgid(c, "msg", 1, id) < 0)
    return NULL;
  return message_reply(c, id);
}

static lcj *cmd_conversations(ctx *c) {
  lc_conversation_info *cv;
  size_t n;
  int rc = lc_conversations(c->d->node, &cv, &n);
  if (rc < 0)
    return fail_lc(c, rc, "conversations");
  lcj *arr = lcj_arr();
  for (size_t i = 0; i < n; i++) {
    lcj *o = lcj_obj();
    conv_who(c->d, o, &cv[i]);
    lcj_set_int(o, "unread", cv[i].unread);
    lcj_set(o, "last",
            cv[i].has_last ? msg_json(c->d, &cv[i].last) : lcj_null());
    lcj_push(arr, o);
  }
  lc_conversations_free(cv, n);
  lcj *r = result();
  lcj_set(r, "conversations", arr);
  return r;
}

static lcj *cmd_unread(ctx *c) {
  lc_conversation_info *cv;
  size_t n;
  int64_t total = lc_unread_total(c->d->node);
  if (total < 0)
    return fail_lc(c, (int)total, "unread");
  int rc = lc_conversations(c->d->node, &cv, &n);
  if (rc < 0)
    return fail_lc(c, rc, "unread");
  lcj *arr = lcj_arr();
  for (size_t i = 0; i < n; i++) {
    if (cv[i].unread <= 0)
      continue;
    lcj *o = lcj_obj();
    conv_who(c->d, o, &cv[i]);
    lcj_set_int(o, "unread", cv[i].unread);
    lcj_push(arr, o);
  }
  lc_conversations_free(cv, n);
  lcj *r = result();
  lcj_set_int(r, "total", total);
  lcj_set(r, "conversations", arr);
  return r;
}

static lcj *cmd_read(ctx *c) {
  int tg_unused = 0;
  uint8_t with[LC_KEY_BYTES], upto[LC_MSGID_BYTES];
  int hu;
  if (arg_target(c, "with", 1, with, &tg_unused) < 0 ||
      (hu = arg_msgid(c, "up_to", 0, upto)) < 0)
    return NULL;
  int64_t seq = 0;
  if (hu == 1) {
    lc_msg_info *m;
    int rc = lc_history_get(c->d->node, upto, &m);
    if (rc < 0)
      return rc == -ENOENT ? fail(c, "not_found", "up_to: no such message")
                           : fail_lc(c, rc, "read");
    seq = m->id;
    lc_msgs_free(m, 1);
  }
  int rc = lc_mark_read(c->d->node, with, seq);
  if (rc < 0)
    return fail_lc(c, rc, "read");
  lcj *r = result();
  lcj_set_int(r, "marked", rc);
  return r;
}

static lcj *cmd_search(ctx *c) {
  int tg_search = 0;
  const char *q;
  uint8_t with[LC_KEY_BYTES];
  int64_t limit = SEARCH_DEFAULT;
  int hw;
  if (arg_str(c, "query", 1, &q) < 0 ||
      (hw = arg_target(c, "with", 0, with, &tg_search)) < 0 ||
      arg_int(c, "limit", 1, HISTORY_MAX, &limit) < 0)
    return NULL;
  lc_msg_info *m;
  size_t n;
  int rc = lc_history_search(c->d->node, hw == 1 ? with : NULL, q,
                             (size_t)limit, &m, &n);
  if (rc == LC_EINVAL)
    return fail(c, "bad_argument",
                "cannot read the query '%s' (words, \"a phrase\", prefix*, "
                "AND, OR, NOT)",
                q);
  if (rc < 0)
    return fail_lc(c, rc, "search");
  lcj *r = result();
  lcj_set(r, "messages", msgs_json(c->d, m, n, 0));
  lc_msgs_free(m, n);
  return r;
}

static lcj *cmd_export(ctx *c) {
  uint8_t with[LC_KEY_BYTES];
  const char *path, *format = "json";
  int tg_export = 0;
  if (arg_target(c, "with", 1, with, &tg_export) < 0 ||
      arg_str(c, "path", 1, &path) < 0 || arg_str(c, "format", 0, &format) < 0)
    return NULL;
  lc_export_format f;
  if (!strcmp(format, "json"))
    f = LC_EXPORT_JSONL;
  else if (!strcmp(format, "text"))
    f = LC_EXPORT_TEXT;
  else
    return fail(c, "bad_argument", "format must be json or text, not '%s'",
                format);
  if (path[0] != '/')
    return fail(c, "bad_argument",
                "path must be absolute (the daemon's folder is not yours)");
  int rc = lc_export_conversation(c->d->node, with, f, path);
  if (rc < 0)
    return fail_lc(c, rc, "export");
  lcj *r = result();
  lcj_set_int(r, "count", rc);
  lcj_set_str(r, "path", path);
  return r;
}

/* Edits (text not NULL) or retracts a message we sent; the reply is the
 * message as it is now. */
static lcj *change_message(ctx *c, const uint8_t id[LC_MSGID_BYTES],
                           const char *text, size_t len) {
  lcj *known = one_message(c, id); /* not_found for an unknown id */
  if (!known)
    return NULL;
  lcj_free(known);
  int rc = text ? lc_edit_message(c->d->node, id, text, len)
                : lc_retract_message(c->d->node, id);
  if (rc < 0)
    return fail_lc(c, rc,
                   text ? "edit (only messages we sent, not retracted)"
                        : "retract (only messages we sent)");
  return message_reply(c, id);
}

static lcj *cmd_edit(ctx *c) {
  uint8_t id[LC_MSGID_BYTES];
  const char *text;
  if (arg_msgid(c, "msg", 1, id) < 0 || arg_str(c, "text", 1, &text) < 0)
    return NULL;
  size_t len = lcj_slen(lcj_get(c->req, "text"));
  if (len == 0)
    return fail(c, "bad_argument",
                "an empty text: to take a message back, use retract");
  if (len > LC_TEXT_MAX)
    return fail(c, "too_large", "a message is at most %d bytes, not %zu",
                LC_TEXT_MAX, len);
  return change_message(c, id, text, len);
}

static lcj *cmd_retract(ctx *c) {
  uint8_t id[LC_MSGID_BYTES];
  if (arg_msgid(c, "msg", 1, id) < 0)
    return NULL;
  return change_message(c, id, NULL, 0);
}

static lcj *cmd_delete(ctx *c) {
  uint8_t id[LC_MSGID_BYTES];
  if (arg_msgid(c, "msg", 1, id) < 0)
    return NULL;
  lc_msg_info *m;
  int rc = lc_history_get(c->d->node, id, &m);
  if (rc < 0)
    return rc == -ENOENT ? fail(c, "not_found", "no such message")
                         : fail_lc(c, rc, "delete");
  rc = lc_delete_message(c->d->node, m->id);
  lc_msgs_free(m, 1);
  if (rc < 0)
    return fail_lc(c, rc, "delete");
  lcj *r = result();
  lcj_set_bool(r, "deleted", rc == 1);
  return r;
}

/* ---- contacts ---- */

static lcj *contact_reply(ctx *c, const uint8_t key[LC_KEY_BYTES]) {
  lc_contact_info ci;
  int rc = lc_contact_get(c->d->node, key, &ci);
  if (rc < 0)
    return fail_lc(c, rc, "contact");
  lcj *r = result();
  lcj_set(r, "contact", contact_json(c->d, &ci));
  return r;
}

static lcj *contact_fail(ctx *c, int rc, const char *what) {
  if (rc == LC_EEXIST)
    return fail(c, "exists", "%s: friends already", what);
  if (rc == LC_ESTATE && !c->d->stopping)
    return fail(c, "wrong_state", "%s: %s", what,
                !strcmp(what, "friend_add")
                    ? "that peer is blocked (unblock it first)"
                : !strcmp(what, "friend_remove")
                    ? "not a friend, and no request of ours is pending"
                    : "no request from that peer");
  return fail_lc(c, rc, what);
}

static lcj *cmd_friend_add(ctx *c) {
  uint8_t key[LC_KEY_BYTES];
  const char *note = NULL;
  if (arg_peer(c, "peer", 1, key) < 0 || arg_str(c, "note", 0, &note) < 0)
    return NULL;
  if (note && strlen(note) > LC_NOTE_MAX)
    return fail(c, "too_large", "a note is at most %d bytes", LC_NOTE_MAX);
  int rc = lc_contact_request(c->d->node, key, note);
  if (rc < 0)
    return contact_fail(c, rc, "friend_add");
  lcd_dir_touch(&c->d->dir, key);
  return contact_reply(c, key);
}

static lcj *contact_op(ctx *c, int (*fn)(lc_node *, const uint8_t *),
                       const char *what) {
  uint8_t key[LC_KEY_BYTES];
  if (arg_peer(c, "peer", 1, key) < 0)
    return NULL;
  int rc = fn(c->d->node, key);
  if (rc < 0)
    return contact_fail(c, rc, what);
  return contact_reply(c, key);
}

static lcj *cmd_friend_accept(ctx *c) {
  return contact_op(c, lc_contact_accept, "friend_accept");
}
static lcj *cmd_friend_reject(ctx *c) {
  return contact_op(c, lc_contact_reject, "friend_reject");
}
static lcj *cmd_friend_remove(ctx *c) {
  return contact_op(c, lc_contact_remove, "friend_remove");
}
static lcj *cmd_trust(ctx *c) {
  return contact_op(c, lc_trust_key, "trust");
}

static lcj *block_op(ctx *c, int on) {
  uint8_t key[LC_KEY_BYTES];
  if (arg_peer(c, "peer", 1, key) < 0)
    return NULL;
  int rc = lc_block(c->d->node, key, on);
  if (rc < 0)
    return fail_lc(c, rc, on ? "block" : "unblock");
  return contact_reply(c, key);
}

static lcj *cmd_block(ctx *c) {
  return block_op(c, 1);
}
static lcj *cmd_unblock(ctx *c) {
  return block_op(c, 0);
}

static lcj *cmd_friends(ctx *c) {
  lc_contact_info *v;
  size_t n;
  int rc = lc_contacts(c->d->node, &v, &n);
  if (rc < 0)
    return fail_lc(c, rc, "friends");
  lcj *arr = lcj_arr();
  for (size_t i = 0; i < n; i++)
    lcj_push(arr, contact_json(c->d, &v[i]));
  lc_contacts_free(v);
  lcj *r = result();
  lcj_set(r, "contacts", arr);
  return r;
}

static lcj *cmd_policy(ctx *c) {
  const char *who = NULL;
  if (arg_str(c, "accept", 0, &who) < 0)
    return NULL;
  if (who) {
    if (strcmp(who, "anyone") && strcmp(who, "contacts"))
      return fail(c, "bad_argument",
                  "accept must be anyone or contacts, not '%s'", who);
    c->d->contacts_only = !strcmp(who, "contacts");
    lc_node_set_policy(c->d->node, c->d->contacts_only);
    c->d->profile_dirty = 1;
  }
  lcj *r = result();
  lcj_set_str(r, "accept", c->d->contacts_only ? "contacts" : "anyone");
  return r;
}

/* ---- groups ---- */

static lcj *group_fail(ctx *c, int rc, const char *what) {
  if (rc == LC_ESTATE)
    return fail(c, "wrong_state",
                "%s: not possible now (we are not a member; the peer is a "
                "member already, or is not one; only owners remove others)",
                what);
  if (rc == LC_ENOPEER)
    return fail(c, "unknown_group", "%s: no such group", what);
  return fail_lc(c, rc, what);
}

static lcj *group_reply(ctx *c, const uint8_t *id) {
  lcj *r = result();
  lcj_set(r, "group", group_by_id(c->d, id));
  return r;
}

static lcj *cmd_group_create(ctx *c) {
  const char *name;
  if (arg_str(c, "name", 1, &name) < 0)
    return NULL;
  lcj *mv = lcj_get(c->req, "members");
  if (mv && !lcj_is_null(mv) && !lcj_is_arr(mv))
    return fail(c, "bad_argument",
                "argument 'members' must be an array of peers, not %s",
                lcj_type_name(mv));
  size_t n = lcj_len(mv);
  if (n >= LC_GROUP_MEMBERS_MAX)
    return fail(c, "too_large", "a group has at most %d members",
                LC_GROUP_MEMBERS_MAX);
  uint8_t(*keys)[LC_KEY_BYTES] = calloc(n ? n : 1, LC_KEY_BYTES);
  if (!keys)
    return fail(c, "out_of_memory", "group_create");
  for (size_t i = 0; i < n; i++) {
    lcj *one = lcj_obj();
    lcj_set(one, "peer", lcj_ref(lcj_at(mv, i)));
    lcj *saved = c->req;
    c->req = one;
    int r = arg_peer(c, "peer", 1, keys[i]);
    c->req = saved;
    lcj_free(one);
    if (r < 0) {
      free(keys);
      return NULL;
    }
  }
  uint8_t id[LC_GROUP_ID_BYTES];
  int rc = lc_group_create(c->d->node, name, (const uint8_t(*)[32])keys, n, id);
  free(keys);
  if (rc < 0)
    return group_fail(c, rc, "group_create");
  return group_reply(c, id);
}

static lcj *group_member_op(ctx *c, int invite) {
  uint8_t id[LC_GROUP_ID_BYTES], key[LC_KEY_BYTES];
  if (arg_group(c, "group", id) < 0 || arg_peer(c, "peer", 1, key) < 0)
    return NULL;
  int rc = invite ? lc_group_invite(c->d->node, id, key)
                  : lc_group_remove(c->d->node, id, key);
  if (rc < 0)
    return group_fail(c, rc, invite ? "group_invite" : "group_remove");
  return group_reply(c, id);
}

static lcj *cmd_group_invite(ctx *c) {
  return group_member_op(c, 1);
}
static lcj *cmd_group_remove(ctx *c) {
  return group_member_op(c, 0);
}

static lcj *cmd_group_leave(ctx *c) {
  uint8_t id[LC_GROUP_ID_BYTES];
  if (arg_group(c, "group", id) < 0)
    return NULL;
  int rc = lc_group_leave(c->d->node, id);
  if (rc < 0)
    return group_fail(c, rc, "group_leave");
  return group_reply(c, id);
}

static lcj *cmd_group_rename(ctx *c) {
  uint8_t id[LC_GROUP_ID_BYTES];
  const char *name;
  if (arg_group(c, "group", id) < 0 || arg_str(c, "name", 1, &name) < 0)
    return NULL;
  int rc = lc_group_rename(c->d->node, id, name);
  if (rc < 0)
    return group_fail(c, rc, "group_rename");
  return group_reply(c, id);
}

static lcj *cmd_groups(ctx *c) {
  lc_group_info *g;
  size_t n;
  int rc = lc_groups(c->d->node, &g, &n);
  if (rc < 0)
    return fail_lc(c, rc, "groups");
  lcj *arr = lcj_arr();
  for (size_t i = 0; i < n; i++)
    lcj_push(arr, group_json(c->d, &g[i]));
  lc_groups_free(g, n);
  lcj *r = result();
  lcj_set(r, "groups", arr);
  return r;
}

static lcj *cmd_group_members(ctx *c) {
  uint8_t id[LC_GROUP_ID_BYTES];
  if (arg_group(c, "group", id) < 0)
    return NULL;
  return group_reply(c, id);
}

/* ---- transfers ---- */

static lcj *xfer_fail(ctx *c, int rc, const char *what) {
  if (rc == LC_ESTATE && !c->d->stopping) {
    if (!strcmp(what, "cancel"))
      return fail(c, "wrong_state", "cancel: that transfer is over already");
    if (!strcmp(what, "accept") || !strcmp(what, "decline"))
      return fail(c, "wrong_state",
                  "%s: not an offer to us waiting for an answer", what);
  }
  if (rc == -ENOENT && (!strcmp(what, "accept") || !strcmp(what, "decline") ||
                        !strcmp(what, "cancel") || !strcmp(what, "transfer")))
    return fail(c, "not_found", "%s: no such transfer", what);
  if (rc == -ENOSPC)
    return fail(c, "failed",
                "%s: the downloads folder (%s) has less room than the offer",
                what, c->d->downloads);
  if (rc == LC_ELIMIT)
    return fail(c, "too_large", "%s: over %d files, or a path over %d bytes",
                what, LC_TRANSFER_FILES_MAX, LC_TRANSFER_PATH_MAX);
  if (rc == LC_ETOOBIG)
    return fail(c, "too_large", "%s: the list of files does not fit one offer",
                what);
  if (rc == LC_EINVAL)
    return fail(c, "bad_argument",
                "%s: %s (a name that is not UTF-8, or a key that is not a "
                "usable identity)",
                what, lc_strerror(rc));
  if (rc < 0 && rc > -4096 && rc != -ENOENT)
    return fail(c, "failed", "%s: %s", what, lc_strerror(rc));
  return fail_lc(c, rc, what);
}

/* {"transfer": ...} as it is now. */
static lcj *transfer_reply(ctx *c, const uint8_t id[LC_MSGID_BYTES],
                           const char *what) {
  lc_transfer_info *t;
  int rc = lc_transfer_get(c->d->node, id, &t);
  if (rc < 0)
    return xfer_fail(c, rc, what);
  lcj *r = result();
  lcj_set(r, "transfer", transfer_json(c->d, t, 1));
  lc_transfers_free(t, 1);
  return r;
}

/* Whom files go to: one peer, or every member of a group but us (one
 * transfer each).  *out: malloc'd; 0, or -1 with the error set. */
static int xfer_targets(ctx *c, const char *what, uint8_t (**out)[32],
                        size_t *n) {
  uint8_t key[LC_KEY_BYTES];
  int group = 0;
  *out = NULL;
  *n = 0;
  if (arg_target(c, "to", 1, key, &group) < 0)
    return -1;
  if (!group) {
    if (memcmp(key, c->d->self, LC_KEY_BYTES) == 0) {
      fail(c, "bad_argument", "that is us: files go to other peers");
      return -1;
    }
    *out = malloc(LC_KEY_BYTES);
    if (!*out) {
      fail(c, "out_of_memory", "%s: out of memory", what);
      return -1;
    }
    memcpy((*out)[0], key, LC_KEY_BYTES);
    *n = 1;
    return 0;
  }
  lc_group_info *g;
  size_t ng;
  int rc = lc_groups(c->d->node, &g, &ng);
  if (rc < 0) {
    fail_lc(c, rc, what);
    return -1;
  }
  const lc_group_info *one = NULL;
  for (size_t i = 0; i < ng && !one; i++)
    if (memcmp(g[i].id, key, LC_GROUP_ID_BYTES) == 0)
      one = &g[i];
  if (!one || !one->member) {
    lc_groups_free(g, ng);
    fail(c, "wrong_state", "%s: we are not a member of that group", what);
    return -1;
  }
  *out = calloc(one->nmembers ? one->nmembers : 1, LC_KEY_BYTES);
  if (!*out) {
    lc_groups_free(g, ng);
    fail(c, "out_of_memory", "%s: out of memory", what);
    return -1;
  }
  for (size_t i = 0; i < one->nmembers; i++)
    if (memcmp(one->members[i].key, c->d->self, LC_KEY_BYTES) != 0)
      memcpy((*out)[(*n)++], one->members[i].key, LC_KEY_BYTES);
  lc_groups_free(g, ng);
  if (*n == 0) {
    free(*out);
    *out = NULL;
    fail(c, "bad_argument", "%s: that group has no other member", what);
    return -1;
  }
  return 0;
}

/* A path the daemon reads for a client: absolute (the daemon's folder is
 * not the client's), and there.  dir_ok: a folder will do. */
static int check_path(ctx *c, const char *what, const char *label,
                      const char *path, int dir_ok) {
  struct stat st;
  if (!*path || path[0] != '/') {
    fail(c, "bad_argument",
         "%s must be an absolute path, not '%s' (the daemon's folder is not "
         "yours)",
         label, path);
    return -1;
  }
  if (stat(path, &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      fail(c, "not_found", "%s: no such file%s: %s", what,
           dir_ok ? " or folder" : "", path);
    else
      fail(c, "failed", "%s: %s: %s", what, path, strerror(errno));
    return -1;
  }
  if (!S_ISREG(st.st_mode) && !(dir_ok && S_ISDIR(st.st_mode))) {
    fail(c, "bad_argument", "%s: %s is not a %s", what, path,
         dir_ok ? "file or a folder" : "file");
    return -1;
  }
  return 0;
}

/* After offers went out: the same offers as messages for the other
 * clients (like send), and the reply with every transfer. */
static lcj *offers_reply(ctx *c, const uint8_t (*ids)[LC_MSGID_BYTES],
                         size_t n) {
  lcj *r = result(), *arr = lcj_arr(), *idv = lcj_arr();
  for (size_t i = 0; i < n; i++) {
    lc_msg_info *m;
    if (lc_history_get(c->d->node, ids[i], &m) == 0) {
      lcj *e = event("message");
      lcj_set(e, "message", msg_json(c->d, m));
      lcd_server_broadcast(c->d, LCD_EV_MESSAGE, e);
      lcd_dir_touch(&c->d->dir, m->peer);
      lc_msgs_free(m, 1);
    }
    lc_transfer_info *t;
    if (lc_transfer_get(c->d->node, ids[i], &t) == 0) {
      lcj_push(arr, transfer_json(c->d, t, 1));
      lc_transfers_free(t, 1);
    }
    lcj_push(idv, msgid_json(ids[i]));
  }
  lcj_set(r, "ids", idv);
  lcj_set(r, "transfers", arr);
  return r;
}

/* An offer failed part way through a group: the error, and the offers
 * made already (they stand; cancel them if need be). */
static lcj *offers_fail(ctx *c, int rc, const char *what,
                        const uint8_t (*ids)[LC_MSGID_BYTES], size_t done) {
  xfer_fail(c, rc, what);
  if (done) {
    lcj *idv = lcj_arr();
    for (size_t i = 0; i < done; i++)
      lcj_push(idv, msgid_json(ids[i]));
    c->details = lcj_obj();
    lcj_set(c->details, "ids", idv);
  }
  return NULL;
}

static lcj *cmd_send_files(ctx *c) {
  uint8_t(*to)[32];
  size_t nto;
  if (xfer_targets(c, "send_files", &to, &nto) < 0)
    return NULL;
  lcj *pv = lcj_get(c->req, "paths");
  lcj *r = NULL;
  const char **paths = NULL;
  uint8_t(*ids)[LC_MSGID_BYTES] = NULL;
  size_t np = lcj_len(pv);
  if (!pv || lcj_is_null(pv)) {
    fail(c, "bad_argument",
         "missing argument 'paths' (an array of absolute paths of files "
         "and folders)");
    goto out;
  }
  if (!lcj_is_arr(pv)) {
    fail(c, "bad_argument",
         "argument 'paths' must be an array of paths, not %s",
         lcj_type_name(pv));
    goto out;
  }
  if (np == 0) {
    fail(c, "bad_argument",
         "argument 'paths' is empty: name a file or a folder");
    goto out;
  }
  if (np > LC_TRANSFER_FILES_MAX) {
    fail(c, "too_large", "send_files: at most %d paths, not %zu",
         LC_TRANSFER_FILES_MAX, np);
    goto out;
  }
  paths = calloc(np, sizeof *paths);
  ids = calloc(nto, sizeof *ids);
  if (!paths || !ids) {
    fail(c, "out_of_memory", "send_files: out of memory");
    goto out;
  }
  for (size_t i = 0; i < np; i++) {
    lcj *one = lcj_at(pv, i);
    char label[32];
    snprintf(label, sizeof label, "paths[%zu]", i);
    if (!lcj_is_str(one)) {
      fail(c, "bad_argument", "%s must be a string, not %s", label,
           lcj_type_name(one));
      goto out;
    }
    paths[i] = lcj_sval(one);
    if (check_path(c, "send_files", label, paths[i], 1) < 0)
      goto out;
  }
  for (size_t k = 0; k < nto; k++) {
    int rc = lc_send_files(c->d->node, to[k], paths, np, ids[k]);
    if (rc < 0) {
      offers_fail(c, rc, "send_files", (const uint8_t(*)[16])ids, k);
      goto out;
    }
  }
  r = offers_reply(c, (const uint8_t(*)[16])ids, nto);
out:
  free(paths);
  free(ids);
  free(to);
  return r;
}

static lcj *cmd_send_voice(ctx *c) {
  uint8_t(*to)[32];
  size_t nto;
  const char *path;
  int64_t dur = 0;
  if (xfer_targets(c, "send_voice", &to, &nto) < 0)
    return NULL;
  lcj *r = NULL;
  uint8_t(*ids)[LC_MSGID_BYTES] = NULL;
  if (arg_str(c, "path", 1, &path) < 0 ||
      arg_int(c, "duration_ms", 0, INT64_C(24) * 3600 * 1000, &dur) < 0 ||
      check_path(c, "send_voice", "path", path, 0) < 0)
    goto out;
  if (dur == 0) {
    /* read here, to say why when it cannot be */
    uint64_t ms;
    int rc = lc_audio_duration(path, &ms);
    if (rc == LC_EINVAL) {
      fail(c, "bad_argument",
           "send_voice: cannot read the duration of %s: not a WAV or Ogg "
           "(Opus, Vorbis) file it understands; give duration_ms",
           path);
      goto out;
    }
    if (rc < 0) {
      fail(c, "failed", "send_voice: %s: %s", path, lc_strerror(rc));
      goto out;
    }
    dur = ms > INT64_MAX ? INT64_MAX : (int64_t)ms;
  }
  ids = calloc(nto, sizeof *ids);
  if (!ids) {
    fail(c, "out_of_memory", "send_voice: out of memory");
    goto out;
  }
  for (size_t k = 0; k < nto; k++) {
    int rc = lc_send_voice(c->d->node, to[k], path, (uint64_t)dur, ids[k]);
    if (rc < 0) {
      offers_fail(c, rc, "send_voice", (const uint8_t(*)[16])ids, k);
      goto out;
    }
  }
  r = offers_reply(c, (const uint8_t(*)[16])ids, nto);
out:
  free(ids);
  free(to);
  return r;
}

static lcj *cmd_transfers(ctx *c) {
  int active = 0;
  if (arg_bool(c, "active", &active) < 0)
    return NULL;
  lc_transfer_info *t;
  size_t n;
  int rc = lc_transfers(c->d->node, active, &t, &n);
  if (rc < 0)
    return fail_lc(c, rc, "transfers");
  lcj *arr = lcj_arr();
  for (size_t i = 0; i < n; i++)
    lcj_push(arr, transfer_json(c->d, &t[i], 0));
  lc_transfers_free(t, n);
  lcj *r = result();
  lcj_set(r, "transfers", arr);
  return r;
}

static lcj *cmd_transfer(ctx *c) {
  uint8_t id[LC_MSGID_BYTES];
  if (arg_xfer(c, "transfer", id) < 0)
    return NULL;
  return transfer_reply(c, id, "transfer");
}

static lcj *xfer_op(ctx *c, int (*fn)(lc_node *, const uint8_t *),
                    const char *what) {
  uint8_t id[LC_MSGID_BYTES];
  if (arg_xfer(c, "transfer", id) < 0)
    return NULL;
  int rc = fn(c->d->node, id);
  if (rc < 0)
    return xfer_fail(c, rc, what);
  return transfer_reply(c, id, what);
}

static lcj *cmd_accept(ctx *c) {
  return xfer_op(c, lc_transfer_accept, "accept");
}
static lcj *cmd_decline(ctx *c) {
  return xfer_op(c, lc_transfer_decline, "decline");
}
static lcj *cmd_cancel(ctx *c) {
  return xfer_op(c, lc_transfer_cancel, "cancel");
}

static const struct {
  const char *name;
  unsigned bit;
} event_classes[] = {
    {"message", LCD_EV_MESSAGE}, {"delivery", LCD_EV_DELIVERY},
    {"peer", LCD_EV_PEER},       {"typing", LCD_EV_TYPING},
    {"changed", LCD_EV_CHANGED}, {"network", LCD_EV_NETWORK},
    {"daemon", LCD_EV_DAEMON},   {"contact", LCD_EV_CONTACT},
    {"group", LCD_EV_GROUP},     {"transfer", LCD_EV_TRANSFER},
};

static lcj *cmd_subscribe(ctx *c) {
  lcj *ev = lcj_get(c->req, "events");
  unsigned mask = LCD_EV_ALL;
  if (ev && !lcj_is_null(ev)) {
    if (!lcj_is_arr(ev))
      return fail(c, "bad_argument",
                  "argument 'events' must be an array of names, not %s",
                  lcj_type_name(ev));
    mask = LCD_EV_DAEMON; /* always told when the daemon stops */
    for (size_t i = 0; i < lcj_len(ev); i++) {
      const char *name = lcj_sval(lcj_at(ev, i));
      size_t k = 0, nk = sizeof event_classes / sizeof event_classes[0];
      while (k < nk && (!name || strcmp(name, event_classes[k].name)))
        k++;
      if (k == nk)
        return fail(c, "bad_argument",
                    "unknown event class '%s' (message, delivery, peer, "
                    "typing, changed, network, daemon, contact, group, "
                    "transfer)",
                    name ? name : lcj_type_name(lcj_at(ev, i)));
      mask |= event_classes[k].bit;
    }
  }
  c->eff->subscribe = 1;
  c->eff->mask = mask;
  lcj *r = result();
  lcj *names = lcj_arr();
  for (size_t k = 0; k < sizeof event_classes / sizeof event_classes[0]; k++)
    if (mask & event_classes[k].bit)
      lcj_push(names, lcj_str(event_classes[k].name));
  lcj_set(r, "events", names);
  return r;
}

static lcj *cmd_unsubscribe(ctx *c) {
  c->eff->unsubscribe = 1;
  return result();
}

static lcj *cmd_stats(ctx *c) {
  lcd_daemon *d = c->d;
  lc_node_stats st;
  lc_node_stats_get(d->node, &st);
  lcj *node = lcj_obj();
  lcj_set_int(node, "datagrams_in", (int64_t)st.datagrams_in);
  lcj_set_int(node, "datagrams_out", (int64_t)st.datagrams_out);
  lcj_set_int(node, "send_errors", (int64_t)st.send_errors);
  lcj_set_int(node, "announces_in", (int64_t)st.announces_in);
  lcj_set_int(node, "announces_out", (int64_t)st.announces_out);
  lcj_set_int(node, "bad_datagrams", (int64_t)st.bad_datagrams);
  lcj_set_int(node, "bad_announces", (int64_t)st.bad_announces);
  lcj_set_int(node, "peers_present", (int64_t)st.peers_present);
  lcj_set_int(node, "interface_changes", (int64_t)st.interface_changes);
  lcj_set_int(node, "blocked_dropped", (int64_t)st.blocked_dropped);
  lcj_set_int(node, "policy_dropped", (int64_t)st.policy_dropped);
  lcj_set_int(node, "keys_held", (int64_t)st.keys_held);
  lcj_set_int(node, "relays_handed", (int64_t)st.relays_handed);
  lcj_set_int(node, "relays_carried", (int64_t)st.relays_carried);
  lcj_set_int(node, "relays_refused", (int64_t)st.relays_refused);
  lcj_set_int(node, "relays_forwarded", (int64_t)st.relays_forwarded);
  lcj_set_int(node, "relays_delivered", (int64_t)st.relays_delivered);
  lcj_set_int(node, "relayed_in", (int64_t)st.relayed_in);
  lcj_set_int(node, "transfers_refused", (int64_t)st.transfers_refused);
  lcj_set_int(node, "transfer_bad_data", (int64_t)st.transfer_bad_data);
  lcj_set_int(node, "transfer_hash_fails", (int64_t)st.transfer_hash_fails);
  lcj_set_int(node, "bytes_sent_files", (int64_t)st.bytes_sent_files);
  lcj_set_int(node, "bytes_received_files", (int64_t)st.bytes_received_files);
  lcj_set_int(node, "store_failures", (int64_t)st.store_failures);
  lcj_set_int(node, "handshakes_limited", (int64_t)st.handshakes_limited);
  lcj *ctl = lcj_obj();
  size_t clients, subs;
  lcd_server_clients(d, &clients, &subs);
  lcj_set_int(ctl, "requests", (int64_t)d->count.requests);
  lcj_set_int(ctl, "bad_requests", (int64_t)d->count.bad_requests);
  lcj_set_int(ctl, "oversized_lines", (int64_t)d->count.oversized_lines);
  lcj_set_int(ctl, "events", (int64_t)d->count.events);
  lcj_set_int(ctl, "connections", (int64_t)d->count.clients);
  lcj_set_int(ctl, "clients", (int64_t)clients);
  lcj_set_int(ctl, "subscribers", (int64_t)subs);
  lcj_set_int(ctl, "clients_dropped", (int64_t)d->count.clients_dropped);
  lcj_set_int(ctl, "clients_refused", (int64_t)d->count.clients_refused);
  lcj_set_int(ctl, "clients_evicted", (int64_t)d->count.clients_evicted);
  lcj_set_int(ctl, "clients_timed_out", (int64_t)d->count.clients_timed_out);
  lcj *r = result();
  lcj_set(r, "node", node);
  lcj_set(r, "control", ctl);
  lcj_set_int(r, "known_peers", (int64_t)d->dir.n);
  int64_t unread = lc_unread_total(d->node);
  lcj_set_int(r, "unread", unread < 0 ? 0 : unread);
  return r;
}

static lcj *cmd_stop(ctx *c) {
  c->eff->stop = 1;
  return result();
}

typedef lcj *cmd_fn(ctx *c);
static const struct {
  const char *name;
  cmd_fn *fn;
  const char *args;
} commands[] = {
    {"help", cmd_help, ""},
    {"whoami", cmd_whoami, ""},
    {"peers", cmd_peers, "[all]"},
    {"nick", cmd_nick, "nick"},
    {"status", cmd_status, "presence [text]"},
    {"send", cmd_send, "to text"},
    {"typing", cmd_typing, "to [state]"},
    {"history", cmd_history, "with [limit] [before] [before_seq]"},
    {"get", cmd_get, "msg"},
    {"conversations", cmd_conversations, ""},
    {"unread", cmd_unread, ""},
    {"read", cmd_read, "with [up_to]"},
    {"search", cmd_search, "query [with] [limit]"},
    {"export", cmd_export, "with path [format]"},
    {"edit", cmd_edit, "msg text"},
    {"retract", cmd_retract, "msg"},
    {"delete", cmd_delete, "msg"},
    {"subscribe", cmd_subscribe, "[events]"},
    {"unsubscribe", cmd_unsubscribe, ""},
    {"friend_add", cmd_friend_add, "peer [note]"},
    {"friend_accept", cmd_friend_accept, "peer"},
    {"friend_reject", cmd_friend_reject, "peer"},
    {"friend_remove", cmd_friend_remove, "peer"},
    {"friends", cmd_friends, ""},
    {"block", cmd_block, "peer"},
    {"unblock", cmd_unblock, "peer"},
    {"trust", cmd_trust, "peer"},
    {"policy", cmd_policy, "[accept]"},
    {"group_create", cmd_group_create, "name [members]"},
    {"group_invite", cmd_group_invite, "group peer"},
    {"group_remove", cmd_group_remove, "group peer"},
    {"group_leave", cmd_group_leave, "group"},
    {"group_rename", cmd_group_rename, "group name"},
    {"groups", cmd_groups, ""},
    {"group_members", cmd_group_members, "group"},
    {"send_files", cmd_send_files, "to paths"},
    {"send_voice", cmd_send_voice, "to path [duration_ms]"},
    {"transfers", cmd_transfers, "[active]"},
    {"transfer", cmd_transfer, "transfer"},
    {"accept", cmd_accept, "transfer"},
    {"decline", cmd_decline, "transfer"},
    {"cancel", cmd_cancel, "transfer"},
    {"stats", cmd_stats, ""},
    {"stop", cmd_stop, ""},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static lcj *cmd_help(ctx *c) {
  (void)c;
  lcj *arr = lcj_arr();
  for (size_t i = 0; i < N_COMMANDS; i++) {
    lcj *o = lcj_obj();
    lcj_set_str(o, "cmd", commands[i].name);
    lcj_set_str(o, "args", commands[i].args);
    lcj_push(arr, o);
  }
  lcj *r = result();
  lcj_set(r, "commands", arr);
  return r;
}

lcj *lcd_error_reply(lcj *id, const char *code, const char *fmt, ...) {
  char msg[700];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  lcj *r = lcj_obj(), *e = lcj_obj();
  lcj_set(r, "id", id ? lcj_ref(id) : lcj_null());
  lcj_set_bool(r, "ok", 0);
  lcj_set_str(e, "code", code);
  lcj_set_str(e, "message", msg);
  lcj_set(r, "error", e);
  return r;
}

lcj *lcd_command(lcd_daemon *d, const char *line, size_t len, lcd_effect *eff) {
  char perr[300];
  d->count.requests++;
  lcj *req = lcj_parse(line, len, perr, sizeof perr);
  if (!req) {
    d->count.bad_requests++;
    return lcd_error_reply(NULL, "parse_error", "not JSON: %s", perr);
  }
  if (!lcj_is_obj(req)) {
    d->count.bad_requests++;
    lcj *r = lcd_error_reply(NULL, "invalid_request",
                             "a request is a JSON object, not %s",
                             lcj_type_name(req));
    lcj_free(req);
    return r;
  }
  lcj *id = lcj_get(req, "id");
  lcj *cmdv = lcj_get(req, "cmd");
  if (lcj_is_null(id))
    id = NULL;
  if (id && !lcj_is_str(id) && !lcj_is_int(id)) {
    d->count.bad_requests++;
    lcj *r = lcd_error_reply(NULL, "invalid_request",
                             "'id' must be a string or an integer, not %s",
                             lcj_type_name(id));
    lcj_free(req);
    return r;
  }
  if (!lcj_is_str(cmdv)) {
    d->count.bad_requests++;
    lcj *r = lcd_error_reply(id, "invalid_request",
                             "'cmd' must be a string (a command name), %s",
                             cmdv ? lcj_type_name(cmdv) : "and it is missing");
    lcj_free(req);
    return r;
  }
  const char *name = lcj_sval(cmdv);
  size_t i = 0;
  while (i < N_COMMANDS && strcmp(commands[i].name, name) != 0)
    i++;
  if (i == N_COMMANDS) {
    d->count.bad_requests++;
    lcj *r =
        lcd_error_reply(id, "unknown_command",
                        "no command '%s' (the command help lists them)", name);
    lcj_free(req);
    return r;
  }
  ctx c = {.d = d, .req = req, .eff = eff};
  refresh_peers(d);
  lcj *res = NULL;
  if (d->stopping && commands[i].fn != cmd_help)
    fail(&c, "stopping", "the daemon is stopping");
  else
    res = commands[i].fn(&c);
  lcj *r;
  if (res) {
    r = lcj_obj();
    lcj_set(r, "id", id ? lcj_ref(id) : lcj_null());
    lcj_set_bool(r, "ok", 1);
    lcj_set(r, "result", res);
  } else {
    d->count.bad_requests++;
    r = lcd_error_reply(id, c.code ? c.code : "failed", "%s",
                        c.code ? c.msg : "failed");
    if (c.details) {
      lcj *e = lcj_get(r, "error");
      for (void *it = lcj_iter(c.details); it; it = lcj_next(c.details, it))
        lcj_set(e, lcj_iter_key(it), lcj_ref(lcj_iter_value(it)));
      lcj_free(c.details);
    }
  }
  lcj_free(req);
  return r;
}
