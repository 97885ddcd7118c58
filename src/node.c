/* node.c: the public facade.  Checks arguments, then dispatches to the
 * transport (sessions, messages), discovery (peers, presence) and net_uv
 * (sockets, timer, interfaces).  Owns the event queue: every callback to
 * the application is queued and fired from inside a loop callback, never
 * from inside the lc_ call that caused it. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "discovery.h"
#include "group.h"
#include "relay.h"
#include "export.h"
#include "lanchat.h"
#include "net_uv.h"
#include "store.h"
#include "transfer.h"
#include "transport.h"
#include "wire.h"

#define NODE_RETRY_MAX 256       /* peers with an outbox waiting to retry */
#define NODE_RETRY_US 1000000ull /* after a session ended under a message */
#define NODE_RECEIPT_IDS LC_CHAT_IDS_MAX
#define NODE_LOOPBACK_DATAGRAM 16384 /* UDP payload when bound to 127.x */

typedef struct {
  uint8_t id[LC_MSGID_BYTES];
  uint8_t used; /* 0 free, 1 a text or change, 2 an offer of files */
} node_inflight;
#define NODE_MAX_TEXT LC_TEXT_MAX

enum { NODE_NEW, NODE_RUNNING, NODE_STOPPING, NODE_CLOSING, NODE_STOPPED };

#define NODE_STOP_WAIT_US 20000      /* a CLOSE paced this soon is awaited */
#define NODE_STOP_DEADLINE_US 200000 /* but a stop never takes longer */

enum {
  EV_PEER,
  EV_MESSAGE,
  EV_DELIVERY,
  EV_NETWORK,
  EV_LOG,
  EV_TYPING,
  EV_CHANGED,
  EV_CONTACT,
  EV_GROUP,
  EV_TRANSFER
};

typedef struct node_event {
  struct node_event *next;
  int type;
  int a, b; /* peer: event, detail; delivery: state, err; log: level */
  lc_peer_info peer;
  uint8_t key[LC_KEY_BYTES];
  uint8_t msg_id[LC_MSGID_BYTES];
  uint64_t sent_ms, received_ms;
  int64_t id;      /* message: its local id */
  lc_msg_info msg; /* changed: the message (its text is `text`) */
  size_t len;
  char *text;               /* message text or log line, NUL-terminated */
  lc_contact_info *contact; /* contact: the contact; key: the other key */
  int has_other;
  lc_group_info *group; /* group: the group; message: group_id */
  int in_group;
  uint8_t group_id[LC_GROUP_ID_BYTES];
  int kind;               /* message: LC_KIND_* */
  lc_transfer_info *xfer; /* transfer: the transfer (a = event, b =
                             detail) */
} node_event;

struct lc_node {
  struct uv_loop_s *loop;
  lc_node_options o; /* string fields point at the copies below */
  char *s_data_dir, *s_nick, *s_status, *s_bind_v4, *s_bind_v6, *s_ifaces,
      *s_skip, *s_bcast, *s_statics, *s_downloads;
  lc__identity id;
  lc__tp *tp;
  lc__disc *disc;
  lc__net_uv *net;
  int state;
  uint64_t clock_offset_us;
  uint16_t port;

  lc__addr *bcast; /* parsed explicit broadcast list */
  size_t nbcast;
  lc__addr *statics;
  size_t nstatics;
  int v4, v6;

  uint64_t next_iface_check;
  int ifaces_known;

  node_event *ev_head, *ev_tail;
  int draining;
  /* a batch of store writes, committed before anything leaves or the
   * application hears of it (node_commit) */
  int batch;
  node_event *batch_mark;  /* the last event queued before it began */
  uint64_t refused_log_at; /* node_log_refused: this second's budget */
  unsigned refused_logs;

  lc__store *store;
  /* per peer: the outbox up to this local id is with the transport, so a
   * burst of sends reads only what is new */
  struct node_mark {
    uint8_t peer[LC_KEY_BYTES];
    int64_t id;
  } * marks;
  size_t nmarks, marks_cap;
  /* read receipts with the transport: at most one envelope per peer */
  struct node_rcpt {
    uint8_t peer[LC_KEY_BYTES];
    uint8_t tid[LC_MSGID_BYTES]; /* the envelope's transport id */
    size_t n;
    uint8_t ids[NODE_RECEIPT_IDS][LC_MSGID_BYTES];
  } * rcpts;
  size_t nrcpts;
  node_inflight *inflight; /* messages the transport holds */
  size_t ninflight, inflight_cap;
  struct {
    uint8_t peer[LC_KEY_BYTES];
    uint64_t at;
  } retry[NODE_RETRY_MAX]; /* outboxes to try again */
  size_t nretry;

  /* contacts: the keys blocked and the keys held (a key change), kept
   * here as well as in the store, for the paths of every message */
  uint8_t (*blocked)[LC_KEY_BYTES];
  size_t nblocked;
  uint8_t (*held)[LC_KEY_BYTES];
  size_t nheld;

  lc__grp *grp;                      /* group chats */
  lc__xfer *xfer;                    /* file transfers */
  struct node_sync *syncs;           /* files being flushed to disk */
  struct node_ckpt *ckpt;            /* the history's checkpoint running */
  uint8_t (*handed)[LC_MSGID_BYTES]; /* our messages handed to relays */
  size_t nhanded;
  uint64_t next_group_sync; /* a SYNC with every peer present, each minute */

  lc_stop_cb *stop_cb;
  uint64_t stop_deadline;
  lc_node_stats st;
};

/* ---- small helpers ------------------------------------------------------ */

static uint64_t node_now(void) {
  return lc__net_uv_now(NULL);
}

static uint64_t node_wall_ms(lc_node *n) {
  if (!n->clock_offset_us) { /* before start */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
  }
  return (node_now() + n->clock_offset_us) / 1000;
}

/* A new message id: our clock in milliseconds (6 bytes, big-endian), then
 * 10 random bytes.  Unique all the same (80 random bits a millisecond),
 * and ids made later sort later, so the history's id index grows at its
 * end instead of everywhere at random. */
static void node_new_msg_id(lc_node *n, uint8_t id[LC_MSGID_BYTES]) {
  uint64_t ms = node_wall_ms(n);
  for (int k = 0; k < 6; k++)
    id[k] = (uint8_t)(ms >> (40 - 8 * k));
  lc__crypto_random(id + 6, LC_MSGID_BYTES - 6);
}

static char *node_strdup(const char *s) {
  if (!s)
    return NULL;
  size_t l = strlen(s);
  char *d = malloc(l + 1);
  if (d)
    memcpy(d, s, l + 1);
  return d;
}

static void node_enqueue(lc_node *n, node_event *e) {
  e->next = NULL;
  if (n->ev_tail)
    n->ev_tail->next = e;
  else
    n->ev_head = e;
  n->ev_tail = e;
}

static node_event *node_event_new(int type) {
  node_event *e = calloc(1, sizeof *e);
  if (e)
    e->type = type;
  return e;
}

static void node_log(lc_node *n, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void node_log(lc_node *n, int level, const char *fmt, ...) {
  if (!n->o.on_log)
    return;
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  node_event *e = node_event_new(EV_LOG);
  if (!e)
    return;
  e->type = EV_LOG;
  e->a = level;
  e->text = node_strdup(buf);
  if (!e->text) {
    free(e);
    return;
  }
  node_enqueue(n, e);
}

static void node_group_info_free(lc_group_info *g) {
  if (g)
    free(g->members);
  free(g);
}

static void node_event_free(node_event *e) {
  lc_transfers_free(e->xfer, e->xfer ? 1 : 0);
  free(e->text);
  free(e->contact);
  node_group_info_free(e->group);
  free(e);
}

/* Fires queued events.  Called only from loop callbacks (net_uv's recv,
 * timer and close paths), so the application never sees a callback inside
 * its own lc_ call. */
/* ---- batches: many store writes, one commit ------------------------------
 * What the node stores while it handles the datagrams of one receive
 * batch (messages, their states) is one transaction, committed before any
 * datagram leaves (node_poll) and before the application hears of it
 * (node_drain); the transport claims a message DELIVERED only after that
 * commit (hold_delivered).  A commit that fails rolls the batch back: the
 * transport offers its messages again, and their events are dropped. */
static void node_batch(lc_node *n) {
  if (n->batch || lc__store_begin(n->store) < 0)
    return; /* not begun: each write commits itself */
  n->batch = 1;
  n->batch_mark = n->ev_tail;
}

static int node_committed(lc_node *n, int rc, int received);

/* Returns 1 if the transport has acknowledgements to send now. */
static int node_commit(lc_node *n) {
  int rc = 0;
  if (n->batch) {
    n->batch = 0;
    rc = lc__store_commit(n->store);
  }
  return node_committed(n, rc, 1);
}

/* The store committed (rc 0) or rolled back (rc < 0) what was written
 * since the last commit; nothing yet while the application's batch
 * (lc_batch_begin) is open around it.  received: the node's own batch,
 * whose events since batch_mark are for what it received. */
static int node_committed(lc_node *n, int rc, int received) {
  if (rc == 0 && lc__store_in_batch(n->store))
    return 0;
  int acks = n->tp ? lc__tp_commit(n->tp, rc == 0, node_now()) : 0;
  if (rc == 0)
    return acks;
  n->st.store_failures++;
  if (!received)
    return 0;
  /* the messages of the batch are offered again: not reported twice */
  node_event **pp = n->batch_mark ? &n->batch_mark->next : &n->ev_head;
  n->ev_tail = n->batch_mark;
  while (*pp) {
    node_event *e = *pp;
    if (e->type == EV_MESSAGE) {
      *pp = e->next;
      node_event_free(e);
    } else {
      n->ev_tail = e;
      pp = &e->next;
    }
  }
  node_log(n, 0, "cannot store what was received (it is offered again): %s",
           lc_strerror(rc));
  return 0;
}

static void node_drain(lc_node *n) {
  node_commit(n); /* the application hears only of what is stored */
  if (n->draining)
    return;
  n->draining = 1;
  node_event *e;
  while ((e = n->ev_head) != NULL) {
    n->ev_head = e->next;
    if (!n->ev_head)
      n->ev_tail = NULL;
    void *u = n->o.user_data;
    switch (e->type) {
    case EV_PEER:
      if (n->o.on_peer)
        n->o.on_peer(n, (lc_peer_event)e->a, &e->peer, e->b, u);
      break;
    case EV_MESSAGE:
      if (n->o.on_message) {
        lc_message m;
        m.id = e->id;
        m.from = e->key;
        m.msg_id = e->msg_id;
        m.text = e->text;
        m.text_len = e->len;
        m.sent_ms = e->sent_ms;
        m.received_ms = e->received_ms;
        m.group = e->in_group ? e->group_id : NULL;
        m.kind = e->kind;
        n->o.on_message(n, &m, u);
      }
      break;
    case EV_DELIVERY:
      if (n->o.on_delivery)
        n->o.on_delivery(n, e->key, e->msg_id, (lc_msg_state)e->a, e->b, u);
      break;
    case EV_NETWORK:
      if (n->o.on_network)
        n->o.on_network(n, (lc_network_event)e->a, u);
      break;
    case EV_LOG:
      if (n->o.on_log)
        n->o.on_log(n, e->a, e->text, u);
      break;
    case EV_TYPING:
      if (n->o.on_typing)
        n->o.on_typing(n, e->key, (lc_typing)e->a, u);
      break;
    case EV_CHANGED:
      if (n->o.on_changed)
        n->o.on_changed(n, &e->msg, u);
      break;
    case EV_GROUP:
      if (n->o.on_group)
        n->o.on_group(n, e->group, u);
      break;
    case EV_TRANSFER:
      if (n->o.on_transfer)
        n->o.on_transfer(n, (lc_transfer_event)e->a, e->xfer, e->b, u);
      break;
    case EV_CONTACT:
      if (n->o.on_contact)
        n->o.on_contact(n, (lc_contact_event)e->a, e->contact,
                        e->has_other ? e->key : NULL, u);
      break;
    }
    node_event_free(e);
  }
  n->draining = 0;
}

static void node_peer_info(const lc__disc_peer *p, lc_peer_info *out) {
  memset(out, 0, sizeof *out);
  memcpy(out->key, p->key, LC_KEY_BYTES);
  snprintf(out->nickname, sizeof out->nickname, "%s", p->nick);
  snprintf(out->status, sizeof out->status, "%s", p->status);
  out->presence = (lc_presence)p->presence;
  lc__net_format_addr(&p->addr, out->address, sizeof out->address);
  out->caps = p->caps;
  out->remote = p->remote;
  out->last_seen_ms = p->last_seen_ms;
}

/* ---- transport events ---------------------------------------------------- */

/* ---- the message lifecycle ------------------------------------------------
 * Save, then send: lc_send_text commits a message to the store (QUEUED,
 * in the outbox) and the outbox goes to the transport whenever the peer is
 * present, oldest first.  `inflight` remembers what the transport holds so
 * that nothing is queued twice; a session that ends hands its messages
 * back (message_failed) and they go again, in order, once the peer can be
 * reached.  The receiver commits before the transport acknowledges (the
 * message callback is synchronous), and drops a msg_id it already has. */

/* `inflight` is a set of message ids, open addressing with linear probing
 * (ids end in random bytes: their last 8 make the hash). */
static size_t node_inflight_hash(const uint8_t *id) {
  uint64_t h;
  memcpy(&h, id + (LC_MSGID_BYTES - 8), 8);
  return (size_t)(h ^ h >> 29);
}

static int node_inflight_find(const lc_node *n, const uint8_t *id) {
  if (!n->inflight_cap)
    return -1;
  size_t mask = n->inflight_cap - 1;
  for (size_t i = node_inflight_hash(id) & mask; n->inflight[i].used;
       i = (i + 1) & mask)
    if (memcmp(n->inflight[i].id, id, LC_MSGID_BYTES) == 0)
      return (int)i;
  return -1;
}

static void node_inflight_put(node_inflight *t, size_t cap, const uint8_t *id,
                              uint8_t used) {
  size_t i = node_inflight_hash(id) & (cap - 1);
  while (t[i].used)
    i = (i + 1) & (cap - 1);
  memcpy(t[i].id, id, LC_MSGID_BYTES);
  t[i].used = used;
}

static int node_inflight_add(lc_node *n, const uint8_t *peer, const uint8_t *id,
                             int offer) {
  (void)peer;
  if (node_inflight_find(n, id) >= 0)
    return 0;
  if (2 * (n->ninflight + 1) > n->inflight_cap) { /* at most half full */
    size_t cap = n->inflight_cap ? 2 * n->inflight_cap : 64;
    node_inflight *t = calloc(cap, sizeof *t);
    if (!t)
      return LC_ENOMEM;
    for (size_t i = 0; i < n->inflight_cap; i++)
      if (n->inflight[i].used)
        node_inflight_put(t, cap, n->inflight[i].id, n->inflight[i].used);
    free(n->inflight);
    n->inflight = t;
    n->inflight_cap = cap;
  }
  node_inflight_put(n->inflight, n->inflight_cap, id, offer ? 2 : 1);
  n->ninflight++;
  return 0;
}

/* Returns what the entry held (0: there was none). */
static int node_inflight_del(lc_node *n, const uint8_t *id) {
  int found = node_inflight_find(n, id);
  if (found < 0)
    return 0;
  int used = n->inflight[found].used;
  size_t mask = n->inflight_cap - 1, i = (size_t)found, j = i;
  /* shift back the entries of the probe run that follows the hole */
  for (;;) {
    j = (j + 1) & mask;
    if (!n->inflight[j].used)
      break;
    size_t k = node_inflight_hash(n->inflight[j].id) & mask;
    int movable = i <= j ? (k <= i || k > j) : (k <= i && k > j);
    if (movable) {
      n->inflight[i] = n->inflight[j];
      i = j;
    }
  }
  n->inflight[i].used = 0;
  n->ninflight--;
  return used;
}

static void node_delivery(lc_node *n, const uint8_t *peer, const uint8_t *id,
                          int state, int err) {
  node_event *e = node_event_new(EV_DELIVERY);
  if (!e)
    return;
  memcpy(e->key, peer, LC_KEY_BYTES);
  memcpy(e->msg_id, id, LC_MSGID_BYTES);
  e->a = state;
  e->b = err;
  node_enqueue(n, e);
}

/* Retry a peer's outbox at `at` (the earliest wins).  0 if the list is
 * full (the next appearance of the peer flushes it anyway). */
static int node_retry_later(lc_node *n, const uint8_t *peer, uint64_t at) {
  for (size_t i = 0; i < n->nretry; i++)
    if (memcmp(n->retry[i].peer, peer, LC_KEY_BYTES) == 0) {
      if (at < n->retry[i].at)
        n->retry[i].at = at;
      return 1;
    }
  if (n->nretry == NODE_RETRY_MAX)
    return 0;
  memcpy(n->retry[n->nretry].peer, peer, LC_KEY_BYTES);
  n->retry[n->nretry].at = at;
  n->nretry++;
  return 1;
}

static void node_flush_actions(lc_node *n, const uint8_t *peer, uint64_t now);
static void node_flush_receipts(lc_node *n, const uint8_t *peer, uint64_t now);

/* The peer's mark (created at 0); NULL if out of memory. */
static int64_t *node_mark(lc_node *n, const uint8_t *peer) {
  for (size_t i = 0; i < n->nmarks; i++)
    if (memcmp(n->marks[i].peer, peer, LC_KEY_BYTES) == 0)
      return &n->marks[i].id;
  if (n->nmarks == n->marks_cap) {
    size_t cap = n->marks_cap ? 2 * n->marks_cap : 16;
    struct node_mark *v = realloc(n->marks, cap * sizeof *v);
    if (!v)
      return NULL;
    n->marks = v;
    n->marks_cap = cap;
  }
  memcpy(n->marks[n->nmarks].peer, peer, LC_KEY_BYTES);
  n->marks[n->nmarks].id = 0;
  return &n->marks[n->nmarks++].id;
}

/* ---- contacts and trust: keys blocked and held ------------------------- */

static int node_keyset_has(uint8_t (*set)[LC_KEY_BYTES], size_t n,
                           const uint8_t *key) {
  for (size_t i = 0; i < n; i++)
    if (memcmp(set[i], key, LC_KEY_BYTES) == 0)
      return 1;
  return 0;
}

/* Adds (on) or removes a key; 0 or LC_ENOMEM. */
static int node_keyset_set(uint8_t (**set)[LC_KEY_BYTES], size_t *n,
                           const uint8_t *key, int on) {
  for (size_t i = 0; i < *n; i++) {
    if (memcmp((*set)[i], key, LC_KEY_BYTES) == 0) {
      if (!on)
        memcpy((*set)[i], (*set)[--*n], LC_KEY_BYTES);
      return 0;
    }
  }
  if (!on)
    return 0;
  uint8_t(*v)[LC_KEY_BYTES] = realloc(*set, (*n + 1) * sizeof *v);
  if (!v)
    return LC_ENOMEM;
  memcpy(v[*n], key, LC_KEY_BYTES);
  *set = v;
  (*n)++;
  return 0;
}

static int node_is_blocked(const lc_node *n, const uint8_t *key) {
  return node_keyset_has(n->blocked, n->nblocked, key);
}

static int node_is_held(const lc_node *n, const uint8_t *key) {
  return node_keyset_has(n->held, n->nheld, key);
}

/* Mirrors a contact row into the sets. */
static void node_contact_sets(lc_node *n, const lc__contact *k) {
  node_keyset_set(&n->blocked, &n->nblocked, k->peer, k->blocked);
  node_keyset_set(&n->held, &n->nheld, k->peer, k->trust == 1);
}

static void node_contact_info(const lc__contact *k, lc_contact_info *out) {
  memset(out, 0, sizeof *out);
  memcpy(out->key, k->peer, LC_KEY_BYTES);
  out->state = (lc_contact_state)k->state;
  out->blocked = k->blocked;
  out->held = k->trust == 1;
  out->trusted = k->trust == 2;
  snprintf(out->nickname, sizeof out->nickname, "%s", k->nick);
  snprintf(out->note, sizeof out->note, "%s", k->note);
  out->changed_ms = k->changed_ms;
}

static void node_contact_event(lc_node *n, lc_contact_event ev,
                               const lc__contact *k, const uint8_t *other) {
  if (!n->o.on_contact)
    return;
  node_event *e = node_event_new(EV_CONTACT);
  lc_contact_info *c = malloc(sizeof *c);
  if (!e || !c) {
    free(e);
    free(c);
    return;
  }
  node_contact_info(k, c);
  e->a = ev;
  e->contact = c;
  if (other) {
    memcpy(e->key, other, LC_KEY_BYTES);
    e->has_other = 1;
  }
  node_enqueue(n, e);
}

/* The nickname a peer announces now, into the contact (kept if absent). */
static void node_contact_nick(lc_node *n, lc__contact *k) {
  const lc__disc_peer *p =
      n->disc ? lc__disc_peer_find(n->disc, k->peer) : NULL;
  if (p && p->nick[0])
    snprintf(k->nick, sizeof k->nick, "%s", p->nick);
}

static void node_flush_peer(lc_node *n, const uint8_t *peer);
static int node_recv_relay(lc_node *n, const uint8_t *from, const lc__chat *c);
static void node_relay_forward(lc_node *n, const uint8_t *peer);

/* Stores a contact's new state and, with op, the CONTACT action for the
 * peer; then sends what can go. */
static int node_contact_commit(lc_node *n, lc__contact *k, int op,
                               const char *note) {
  uint8_t action_id[LC_MSGID_BYTES];
  uint64_t now_ms = node_wall_ms(n);
  k->changed_ms = now_ms;
  if (op)
    node_new_msg_id(n, action_id);
  int rc = lc__store_contact_change(n->store, k, op ? action_id : NULL, op,
                                    note, now_ms);
  if (rc < 0)
    return rc;
  node_contact_sets(n, k);
  if (op && n->state == NODE_RUNNING) {
    node_flush_peer(n, k->peer);
    lc__net_uv_kick(n->net);
  }
  return 0;
}

/* A CONTACT envelope from peer. */
static int node_recv_contact(lc_node *n, const uint8_t *peer,
                             const lc__chat *c) {
  lc__contact k;
  int rc = lc__store_contact_get(n->store, peer, &k);
  if (rc < 0)
    return rc; /* the transport offers it again */
  node_contact_nick(n, &k);
  int ev = 0, reply = 0, was = k.state;
  switch (c->op) {
  case LC_CONTACT_OP_REQUEST:
    if (was == LC_CONTACT_FRIEND) {
      reply = LC_CONTACT_OP_ACCEPT; /* it forgot: remind it */
    } else if (was == LC_CONTACT_ASKED) {
      k.state = LC_CONTACT_FRIEND; /* we both asked */
      ev = LC_CONTACT_ACCEPTED;
    } else {
      k.state = LC_CONTACT_ASKING;
      snprintf(k.note, sizeof k.note, "%.*s", (int)c->text_len, c->text);
      ev = LC_CONTACT_REQUESTED;
    }
    break;
  case LC_CONTACT_OP_ACCEPT:
    if (was == LC_CONTACT_ASKED) {
      k.state = LC_CONTACT_FRIEND;
      ev = LC_CONTACT_ACCEPTED;
    }
    break;
  case LC_CONTACT_OP_REJECT:
    if (was == LC_CONTACT_ASKED) {
      k.state = LC_CONTACT_NONE;
      ev = LC_CONTACT_REJECTED;
    }
    break;
  case LC_CONTACT_OP_REMOVE:
    if (was != LC_CONTACT_NONE) {
      k.state = LC_CONTACT_NONE;
      k.note[0] = '\0';
      ev = LC_CONTACT_REMOVED;
    }
    break;
  }
  if (!ev && !reply)
    return 0; /* nothing changes (a repeat, or an answer to nothing) */
  rc = node_contact_commit(n, &k, reply, NULL);
  if (rc < 0)
    return rc;
  if (ev)
    node_contact_event(n, (lc_contact_event)ev, &k, NULL);
  return 0;
}

/* A peer appeared or changed: a nickname we know, announced with another
 * key, holds that key until the user accepts it.  A nickname is "known"
 * when the key it was first seen with is one we have to do with (a
 * conversation, a contact, a key accepted); strangers sharing a name are
 * not warned about. */
static void node_check_nick(lc_node *n, const uint8_t *key, const char *nick) {
  if (!nick[0] || node_is_held(n, key))
    return;
  uint8_t pinned[LC_KEY_BYTES];
  int rc = lc__store_pin_get(n->store, nick, pinned);
  if (rc < 0 || (rc == 1 && memcmp(pinned, key, LC_KEY_BYTES) == 0))
    return;
  if (rc == 1 && lc__store_related(n->store, pinned) == 1) {
    lc__contact k;
    if (lc__store_contact_get(n->store, key, &k) < 0 || k.trust == 2)
      return; /* accepted before: both keys are known to the user */
    k.trust = 1;
    snprintf(k.nick, sizeof k.nick, "%s", nick);
    if (node_contact_commit(n, &k, 0, NULL) == 0) {
      n->st.keys_held++;
      char hex[LC_KEY_HEX_LEN + 1];
      lc_key_to_hex(hex, key);
      node_log(n, 1,
               "%s now comes with another key (%.16s...): held until "
               "accepted",
               nick, hex);
      node_contact_event(n, LC_CONTACT_KEY_CHANGED, &k, pinned);
    }
    return;
  }
  lc__store_pin_set(n->store, nick, key, node_wall_ms(n));
}

/* Hands the peer's outbox to the transport, oldest first, skipping what
 * it already holds.  Only for a peer discovery knows is there. */
static void node_flush_peer(lc_node *n, const uint8_t *peer) {
  if (n->state != NODE_RUNNING || !lc__disc_peer_find(n->disc, peer))
    return;
  /* nothing goes to a blocked peer, nor to a key held after a change */
  if (node_is_blocked(n, peer) || node_is_held(n, peer))
    return;
  int64_t *mark = node_mark(n, peer);
  if (!mark)
    return;
  lc__stored_msg *m;
  size_t count;
  int rc = lc__store_outbox_after(n->store, peer, *mark, &m, &count);
  if (rc < 0) {
    node_log(n, 0, "cannot read the outbox: %s", lc_strerror(rc));
    return;
  }
  uint64_t now = node_now();
  int64_t first = *mark;
  int any_sent = 0;
  for (size_t i = 0; i < count; i++) {
    if (node_inflight_find(n, m[i].msg_id) >= 0) {
      *mark = m[i].id;
      continue;
    }
    uint8_t *buf;
    if (m[i].kind == LC_CHAT_FILE) { /* an offer: its list of files */
      size_t elen = 0;
      buf = NULL;
      rc = lc__xfer_offer_envelope(n->xfer, m[i].msg_id, m[i].sent_ms, &buf,
                                   &elen);
      if (rc == 0)
        rc = (int)elen;
      else if (rc != LC_ENOMEM)
        node_log(n, 0, "cannot send an offer of files: %s", lc_strerror(rc));
    } else {
      lc__chat c;
      c.kind = LC_CHAT_TEXT;
      c.sent_ms = m[i].sent_ms;
      c.text = m[i].text;
      c.text_len = m[i].text_len;
      c.nids = 0;
      size_t cap = m[i].text_len + 32;
      buf = malloc(cap);
      rc = buf ? lc__chat_encode(&c, buf, cap) : LC_ENOMEM;
    }
    if (rc == LC_ENOMEM)
      break;
    if (rc >= 0)
      rc = lc__tp_send_msg(n->tp, peer, m[i].msg_id, buf, (size_t)rc, now);
    free(buf);
    if (rc < 0) {
      /* the send queue is full or the session cannot start yet: later */
      node_retry_later(n, peer, now + NODE_RETRY_US);
      break;
    }
    node_inflight_add(n, peer, m[i].msg_id, m[i].kind == LC_CHAT_FILE);
    *mark = m[i].id;
    if (m[i].state == LC_MSG_QUEUED) {
      node_delivery(n, peer, m[i].msg_id, LC_MSG_SENT, 0);
      any_sent = 1;
    }
  }
  /* their states in one statement (the range holds only what went) */
  if (any_sent)
    lc__store_mark_sent(n->store, peer, first, *mark);
  int all_out = count == 0 || *mark == m[count - 1].id;
  lc__store_msgs_free(m, count);
  if (all_out)
    node_flush_actions(n, peer, now);
  node_flush_receipts(n, peer, now);
}

/* Reports a message of the history as it now is. */
static void node_changed(lc_node *n, const uint8_t *msg_id) {
  if (!n->o.on_changed)
    return;
  lc__stored_msg m;
  if (lc__store_get(n->store, msg_id, &m) != 1)
    return;
  node_event *e = node_event_new(EV_CHANGED);
  if (!e) {
    lc__store_msg_clear(&m);
    return;
  }
  e->msg.id = m.id;
  memcpy(e->msg.msg_id, m.msg_id, LC_MSGID_BYTES);
  memcpy(e->msg.peer, m.peer, LC_KEY_BYTES);
  e->msg.outgoing = m.outgoing;
  e->msg.sent_ms = m.sent_ms;
  e->msg.received_ms = m.received_ms;
  e->msg.state = (lc_msg_state)m.state;
  e->msg.edited_ms = m.edited_ms;
  e->msg.retracted = m.retracted;
  e->msg.kind = m.kind == LC_CHAT_FILE ? LC_KIND_FILE : LC_KIND_TEXT;
  e->msg.text = e->text = m.text; /* the event owns it now */
  e->msg.text_len = m.text_len;
  node_enqueue(n, e);
}

static int node_rcpt_find(const lc_node *n, const uint8_t *peer,
                          const uint8_t *tid) {
  for (size_t i = 0; i < n->nrcpts; i++)
    if ((peer && memcmp(n->rcpts[i].peer, peer, LC_KEY_BYTES) == 0) ||
        (tid && memcmp(n->rcpts[i].tid, tid, LC_MSGID_BYTES) == 0))
      return (int)i;
  return -1;
}

/* Read receipts owed to peer (stored, so an absent peer gets them later):
 * one envelope of up to 64 ids at a time; the next goes when the
 * transport confirmed it. */
static void node_flush_receipts(lc_node *n, const uint8_t *peer, uint64_t now) {
  if (n->o.no_read_receipts || node_rcpt_find(n, peer, NULL) >= 0)
    return;
  struct node_rcpt r;
  memcpy(r.peer, peer, LC_KEY_BYTES);
  int k = lc__store_receipts(n->store, peer, r.ids, NODE_RECEIPT_IDS);
  if (k <= 0)
    return;
  r.n = (size_t)k;
  static lc__chat c;
  memset(&c, 0, sizeof c);
  c.kind = LC_CHAT_READ;
  c.sent_ms = node_wall_ms(n);
  c.nids = r.n;
  memcpy(c.ids, r.ids, r.n * LC_MSGID_BYTES);
  uint8_t buf[64 + NODE_RECEIPT_IDS * (LC_MSGID_BYTES + 2)];
  int len = lc__chat_encode(&c, buf, sizeof buf);
  node_new_msg_id(n, r.tid);
  if (len < 0 ||
      lc__tp_send_msg(n->tp, peer, r.tid, buf, (size_t)len, now) < 0) {
    node_retry_later(n, peer, now + NODE_RETRY_US);
    return;
  }
  struct node_rcpt *v = realloc(n->rcpts, (n->nrcpts + 1) * sizeof *v);
  if (!v)
    return; /* sent, but not tracked: it goes again later, harmlessly */
  n->rcpts = v;
  n->rcpts[n->nrcpts++] = r;
}

/* Hands the peer's pending edits and retractions to the transport, after
 * its messages (so an edit never overtakes the message it changes). */
static void node_flush_actions(lc_node *n, const uint8_t *peer, uint64_t now) {
  lc__store_action *a;
  size_t count;
  if (lc__store_actions(n->store, peer, &a, &count) < 0)
    return;
  static lc__chat c;
  for (size_t i = 0; i < count; i++) {
    if (node_inflight_find(n, a[i].action_id) >= 0)
      continue;
    memset(&c, 0, sizeof c);
    c.kind = a[i].kind;
    c.sent_ms = a[i].sent_ms;
    memcpy(c.target, a[i].target, LC_MSGID_BYTES);
    c.text = a[i].text;
    c.text_len = a[i].text_len;
    c.op = a[i].target[0]; /* CONTACT: the op */
    size_t cap = a[i].text_len + 64;
    uint8_t *buf = malloc(cap);
    if (!buf)
      break;
    int rc = lc__chat_encode(&c, buf, cap);
    if (rc >= 0)
      rc = lc__tp_send_msg(n->tp, peer, a[i].action_id, buf, (size_t)rc, now);
    free(buf);
    if (rc < 0) {
      node_retry_later(n, peer, now + NODE_RETRY_US);
      break;
    }
    node_inflight_add(n, peer, a[i].action_id, 0);
  }
  lc__store_actions_free(a, count);
}

static int node_recv_change(lc_node *n, const uint8_t *peer,
                            const lc__chat *c) {
  int rc = lc__store_apply_change(n->store, peer, c->kind, c->target,
                                  c->sent_ms, c->text, c->text_len);
  if (rc == 1)
    node_changed(n, c->target);
  else if (rc < 0)
    node_log(n, 0, "cannot store a change (it waits): %s", lc_strerror(rc));
  return rc < 0 ? rc : 0;
}

/* Stores a message received.  A store that fails refuses it: the
 * transport keeps it, does not report it delivered, and offers it again. */
static int node_recv_text(lc_node *n, const uint8_t *peer,
                          const uint8_t *msg_id, const lc__chat *c) {
  uint64_t now_ms = node_wall_ms(n);
  int64_t id = 0;
  int rc = lc__store_add_incoming(n->store, peer, msg_id, c->sent_ms, now_ms,
                                  c->text, c->text_len, &id);
  if (rc < 0) {
    node_log(n, 0, "cannot store a message received (it waits): %s",
             lc_strerror(rc));
    return rc;
  }
  if (rc == 0)
    return 0; /* a retransmission of one we have */
  node_event *e = node_event_new(EV_MESSAGE);
  char *text = malloc(c->text_len + 1);
  if (!e || !text) {
    free(e);
    free(text);
    return 0; /* stored: the history has it even if this event is lost */
  }
  memcpy(text, c->text, c->text_len);
  text[c->text_len] = 0;
  memcpy(e->key, peer, LC_KEY_BYTES);
  memcpy(e->msg_id, msg_id, LC_MSGID_BYTES);
  e->text = text;
  e->len = c->text_len;
  e->sent_ms = c->sent_ms;
  e->received_ms = now_ms;
  e->id = id;
  node_enqueue(n, e);
  return 0;
}

/* An offer of files: stored (or refused) by the engine, shown like a
 * message; accepted at once from a friend under the size the user set,
 * and for a voice message of reasonable size from anyone allowed. */
static int node_recv_file(lc_node *n, const uint8_t *peer,
                          const uint8_t *msg_id, const lc__chat *c) {
  uint64_t now_ms = node_wall_ms(n);
  int autoacc = 0;
  if (c->xkind == LC_TRANSFER_KIND_VOICE) {
    autoacc = 1; /* the size is checked below, from the list */
  } else if (n->o.auto_accept_bytes) {
    lc__contact k;
    autoacc = lc__store_contact_get(n->store, peer, &k) >= 0 &&
              k.state == LC_CONTACT_FRIEND;
  }
  if (autoacc) {
    /* the total, from the list the decoder checked */
    uint64_t total = 0;
    lc__wire_file f[1];
    if (c->xkind == LC_TRANSFER_KIND_VOICE) {
      if (lc__wire_files_decode(c->blob, c->blob_len, f, 1) == 1)
        total = f[0].size;
      autoacc = c->nfiles == 1 && total <= LC_VOICE_AUTO_MAX;
    } else {
      lc__wire_file *v = malloc((c->nfiles + 1) * sizeof *v);
      int k =
          v ? lc__wire_files_decode(c->blob, c->blob_len, v, c->nfiles) : -1;
      for (int i = 0; i < k; i++)
        total += v[i].size;
      free(v);
      autoacc = k >= 0 && total <= n->o.auto_accept_bytes;
    }
  }
  int64_t id = 0;
  char *summary = NULL;
  int rc = lc__xfer_recv_offer(n->xfer, peer, msg_id, c, now_ms, autoacc, &id,
                               &summary);
  if (rc < 0) {
    node_log(n, 0, "cannot store an offer of files (it waits): %s",
             lc_strerror(rc));
    return rc;
  }
  if (id == 0 || !summary) {
    free(summary);
    return 0;
  }
  node_event *e = node_event_new(EV_MESSAGE);
  if (!e) {
    free(summary);
    return 0;
  }
  memcpy(e->key, peer, LC_KEY_BYTES);
  memcpy(e->msg_id, msg_id, LC_MSGID_BYTES);
  e->text = summary;
  e->len = strlen(summary);
  e->sent_ms = c->sent_ms;
  e->received_ms = now_ms;
  e->id = id;
  e->kind = LC_KIND_FILE;
  node_enqueue(n, e);
  return 0;
}

/* The peer read these messages of ours.  Only messages we sent to that
 * very peer move: a receipt cannot touch anybody else's. */
static void node_recv_read(lc_node *n, const uint8_t *peer, const lc__chat *c) {
  for (size_t i = 0; i < c->nids; i++) {
    lc__stored_msg m;
    if (lc__store_get(n->store, c->ids[i], &m) != 1)
      continue;
    int ours = m.outgoing && memcmp(m.peer, peer, LC_KEY_BYTES) == 0;
    lc__store_msg_clear(&m);
    if (!ours) {
      n->st.bad_datagrams++;
      continue;
    }
    if (lc__store_set_state(n->store, c->ids[i], LC_MSG_READ) == 1)
      node_delivery(n, peer, c->ids[i], LC_MSG_READ, 0);
  }
}

static int node_tp_message(void *user, const uint8_t peer[LC_PK_BYTES],
                           const uint8_t msg_id[LC_MSG_ID_BYTES],
                           const uint8_t *data, size_t len) {
  lc_node *n = user;
  static lc__chat c; /* 1 KiB of ids: not on the stack; one loop thread */
  node_batch(n);
  int rc = lc__chat_decode(&c, data, len);
  if (rc < 0) {
    n->st.bad_datagrams++;
    node_log(n, 1, "dropped a message the chat decoder refused: %s",
             lc_strerror(rc));
    return 0;
  }
  if (node_is_blocked(n, peer)) {
    n->st.blocked_dropped++; /* acknowledged, so that it is not sent again */
    return 0;
  }
  if (c.kind == LC_CHAT_CONTACT)
    return node_recv_contact(n, peer, &c);
  if (c.kind >= LC_CHAT_GROUP_OP && c.kind <= LC_CHAT_GROUP_SYNC)
    return lc__grp_recv(n->grp, peer, &c);
  if (c.kind == LC_CHAT_RELAY)
    return node_recv_relay(n, peer, &c);
  if (c.kind == LC_CHAT_FILE_CTRL) {
    lc__xfer_recv_ctrl(n->xfer, peer, &c);
    return 0;
  }
  if (n->o.contacts_only &&
      (c.kind == LC_CHAT_TEXT || c.kind == LC_CHAT_EDIT ||
       c.kind == LC_CHAT_RETRACT || c.kind == LC_CHAT_FILE)) {
    lc__contact k;
    int rc2 = lc__store_contact_get(n->store, peer, &k);
    if (rc2 < 0)
      return rc2;
    if (k.state != LC_CONTACT_FRIEND) {
      n->st.policy_dropped++;
      return 0;
    }
  }
  if (c.kind == LC_CHAT_TEXT)
    return node_recv_text(n, peer, msg_id, &c);
  if (c.kind == LC_CHAT_FILE)
    return node_recv_file(n, peer, msg_id, &c);
  if (c.kind == LC_CHAT_READ)
    node_recv_read(n, peer, &c);
  else if (c.kind == LC_CHAT_EDIT || c.kind == LC_CHAT_RETRACT)
    return node_recv_change(n, peer, &c);
  else
    n->st.bad_datagrams++; /* typing belongs in unreliable frames */
  return 0;
}

static void node_tp_unreliable(void *user, const uint8_t peer[LC_PK_BYTES],
                               const uint8_t *data, size_t len) {
  lc_node *n = user;
  static lc__chat c;
  if (lc__chat_decode(&c, data, len) < 0 || c.kind != LC_CHAT_TYPING) {
    n->st.bad_datagrams++;
    return;
  }
  if (node_is_blocked(n, peer)) {
    n->st.blocked_dropped++;
    return;
  }
  node_event *e = node_event_new(EV_TYPING);
  if (!e)
    return;
  memcpy(e->key, peer, LC_KEY_BYTES);
  e->a = c.typing;
  node_enqueue(n, e);
}

static void node_tp_acked(void *user, const uint8_t peer[LC_PK_BYTES],
                          const uint8_t msg_id[LC_MSG_ID_BYTES]) {
  lc_node *n = user;
  node_batch(n);
  if (lc__xfer_msg_acked(n->xfer, peer, msg_id))
    return; /* a transfer's control message */
  int r = node_rcpt_find(n, NULL, msg_id);
  if (r >= 0) { /* receipts delivered: no longer owed */
    lc__store_receipts_done(n->store, n->rcpts[r].ids, n->rcpts[r].n);
    n->rcpts[r] = n->rcpts[--n->nrcpts];
    node_flush_receipts(n, peer, node_now());
    return;
  }
  int offer = node_inflight_del(n, msg_id) == 2;
  if (lc__store_set_state(n->store, msg_id, LC_MSG_DELIVERED) == 1) {
    node_delivery(n, peer, msg_id, LC_MSG_DELIVERED, 0);
    if (offer)
      lc__xfer_offer_delivered(n->xfer, peer, msg_id);
  } else if (lc__store_action_done(n->store, msg_id) == 0 && /* an edit */
             lc__store_relay_done(n->store, msg_id) == 1)    /* a box */
    n->st.relays_delivered++;
}

/* The session ended before the peer confirmed: the message stays in the
 * outbox and goes again (same id) when the peer can be reached. */
static void node_tp_failed(void *user, const uint8_t peer[LC_PK_BYTES],
                           const uint8_t msg_id[LC_MSG_ID_BYTES], int err) {
  lc_node *n = user;
  (void)err;
  if (lc__xfer_msg_failed(n->xfer, peer, msg_id))
    return; /* the transfer asks again when it can */
  int r = node_rcpt_find(n, NULL, msg_id);
  if (r >= 0) /* still owed, in the store: they go again */
    n->rcpts[r] = n->rcpts[--n->nrcpts];
  node_inflight_del(n, msg_id);
  int64_t *mark = node_mark(n, peer);
  if (mark)
    *mark = 0; /* from the oldest again: the outbox knows what is left */
  if (n->state == NODE_RUNNING)
    node_retry_later(n, peer, node_now() + NODE_RETRY_US);
}

static void node_tp_up(void *user, const uint8_t peer[LC_PK_BYTES]) {
  lc_node *n = user;
  char hex[LC_KEY_HEX_LEN + 1];
  lc_key_to_hex(hex, peer);
  node_log(n, 3, "session up with %.16s", hex);
  if (!node_is_blocked(n, peer))
    lc__xfer_session_up(n->xfer, peer);
}

static void node_tp_down(void *user, const uint8_t peer[LC_PK_BYTES],
                         int reason) {
  lc_node *n = user;
  char hex[LC_KEY_HEX_LEN + 1];
  lc_key_to_hex(hex, peer);
  node_log(n, 3, "session down with %.16s (reason %d)", hex, reason);
  lc__xfer_session_down(n->xfer, peer);
  /* The peer started over, too fast for discovery to see it leave: a group
   * message or change it stored just before it died may never have left
   * it, and its own SYNC only asks for what it lacks.  Meet it again. */
  if (reason == LC_DOWN_RESTART && n->state == NODE_RUNNING &&
      !node_is_blocked(n, peer))
    lc__grp_peer_up(n->grp, peer, node_wall_ms(n));
}

static void node_tp_bulk(void *user, const uint8_t peer[LC_PK_BYTES],
                         uint32_t stream, uint64_t offset, const uint8_t *data,
                         size_t len) {
  lc_node *n = user;
  if (node_is_blocked(n, peer)) {
    n->st.blocked_dropped++;
    return;
  }
  lc__xfer_bulk(n->xfer, peer, stream, offset, data, len);
}

static void node_tp_bulk_acked(void *user, const uint8_t peer[LC_PK_BYTES],
                               uint32_t stream) {
  lc_node *n = user;
  lc__xfer_bulk_acked(n->xfer, peer, stream);
}

/* ---- discovery events ---------------------------------------------------- */

static void node_disc_event(void *user, int ev, const lc__disc_peer *p,
                            int detail) {
  lc_node *n = user;
  uint64_t now = node_now();
  if (ev == LC__DISC_APPEARED && (p->caps & 1)) {
    int rc = lc__tp_peer_moved(n->tp, p->key, &p->addr, now);
    if (rc < 0)
      node_log(n, 1, "transport refused peer %s: %s", p->nick, lc_strerror(rc));
    else
      node_flush_peer(n, p->key); /* what waited for it goes now */
  } else if (ev == LC__DISC_CHANGED && (detail & LC__DISC_CH_ADDR)) {
    lc__tp_peer_moved(n->tp, p->key, &p->addr, now);
  }
  if (ev != LC__DISC_LEFT)
    node_check_nick(n, p->key, p->nick);
  if (ev == LC__DISC_APPEARED && !node_is_blocked(n, p->key)) {
    lc__grp_peer_up(n->grp, p->key, node_wall_ms(n));
    node_relay_forward(n, p->key);
    if (p->caps & 1)
      lc__xfer_peer_up(n->xfer, p->key);
  }
  node_event *e = node_event_new(EV_PEER);
  if (!e)
    return;
  e->type = EV_PEER;
  e->a = ev == LC__DISC_APPEARED  ? LC_PEER_APPEARED
         : ev == LC__DISC_CHANGED ? LC_PEER_CHANGED
                                  : LC_PEER_LEFT;
  e->b = ev == LC__DISC_LEFT
             ? (detail == LC__DISC_GOODBYE ? LC_LEFT_GOODBYE : LC_LEFT_EXPIRED)
             : 0;
  node_peer_info(p, &e->peer);
  node_enqueue(n, e);
}

/* ---- interfaces ---------------------------------------------------------- */

/* 1 if name matches one of the comma-separated fnmatch patterns. */
static int node_match_list(const char *list, const char *name) {
  if (!list)
    return 0;
  const char *p = list;
  while (*p) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    char pat[64];
    while (len && *p == ' ') {
      p++;
      len--;
    }
    if (len && len < sizeof pat) {
      memcpy(pat, p, len);
      pat[len] = 0;
      if (fnmatch(pat, name, 0) == 0)
        return 1;
    }
    if (!end)
      break;
    p = end + 1;
  }
  return 0;
}

static int node_iface_usable(const lc_node *n, const lc__iface_addr *ia) {
  if (n->o.interfaces)
    return node_match_list(n->o.interfaces, ia->name);
  if (ia->internal)
    return 0;
  const char *skip =
      n->o.skip_interfaces ? n->o.skip_interfaces : LC_DEFAULT_SKIP_INTERFACES;
  return !node_match_list(skip, ia->name);
}

static void node_subnet_of(const lc__iface_addr *ia, lc__subnet *s) {
  memset(s, 0, sizeof *s);
  s->family = ia->addr.ss.ss_family;
  if (s->family == AF_INET) {
    memcpy(s->addr, &((const struct sockaddr_in *)&ia->addr.ss)->sin_addr, 4);
    memcpy(s->mask, &((const struct sockaddr_in *)&ia->netmask.ss)->sin_addr,
           4);
  } else {
    memcpy(s->addr, &((const struct sockaddr_in6 *)&ia->addr.ss)->sin6_addr,
           16);
    memcpy(s->mask, &((const struct sockaddr_in6 *)&ia->netmask.ss)->sin6_addr,
           16);
  }
}

/* Re-reads the interfaces; returns 1 if the targets or subnets changed. */
static int node_refresh_ifaces(lc_node *n, uint64_t now) {
  lc__iface_addr *ifs = NULL;
  size_t nifs = 0;
  int rc = lc__net_interfaces(&ifs, &nifs);
  if (rc < 0) {
    node_log(n, 1, "cannot list interfaces: %s", lc_strerror(rc));
    return 0;
  }
  size_t cap = nifs + n->nbcast + 1;
  lc__addr *targets = calloc(cap, sizeof *targets);
  lc__subnet *subnets = calloc(nifs + 1, sizeof *subnets);
  size_t nt = 0, ns = 0;
  if (!targets || !subnets) {
    free(ifs);
    free(targets);
    free(subnets);
    return 0;
  }
  for (size_t i = 0; i < n->nbcast; i++)
    targets[nt++] = n->bcast[i];
  for (size_t i = 0; i < nifs; i++) {
    const lc__iface_addr *ia = &ifs[i];
    int fam = ia->addr.ss.ss_family;
    if (!node_iface_usable(n, ia) || (fam == AF_INET && !n->v4) ||
        (fam == AF_INET6 && !n->v6))
      continue;
    node_subnet_of(ia, &subnets[ns++]);
    if (n->o.broadcast)
      continue; /* the user's list replaces the automatic one */
    lc__addr t;
    memset(&t, 0, sizeof t);
    if (fam == AF_INET) {
      uint32_t a = ((const struct sockaddr_in *)&ia->addr.ss)->sin_addr.s_addr;
      uint32_t m =
          ((const struct sockaddr_in *)&ia->netmask.ss)->sin_addr.s_addr;
      if (m == 0xffffffffu)
        continue; /* a /32 has no broadcast domain */
      struct sockaddr_in *s = (struct sockaddr_in *)&t.ss;
      s->sin_family = AF_INET;
      s->sin_addr.s_addr = a | ~m;
      s->sin_port = htons(n->o.discovery_port);
      t.len = sizeof *s;
    } else {
      if (ia->internal || ia->ifindex == 0)
        continue; /* loopback has no multicast */
      struct sockaddr_in6 *s = (struct sockaddr_in6 *)&t.ss;
      s->sin6_family = AF_INET6;
      inet_pton(AF_INET6, "ff02::1", &s->sin6_addr);
      s->sin6_scope_id = ia->ifindex;
      s->sin6_port = htons(n->o.discovery_port);
      t.len = sizeof *s;
    }
    int dup = 0;
    for (size_t k = 0; k < nt; k++)
      dup |= lc__addr_equal(&targets[k], &t);
    if (dup)
      continue;
    if (fam == AF_INET6) {
      int jr = lc__net_uv_join_all_nodes(n->net, ia->ifindex);
      if (jr < 0)
        node_log(n, 1, "cannot join ff02::1 on %s: %s", ia->name,
                 lc_strerror(jr));
    }
    targets[nt++] = t;
  }
  free(ifs);
  int changed = lc__disc_set_targets(n->disc, targets, nt, subnets, ns, now);
  free(targets);
  free(subnets);
  if (changed < 0)
    return 0;
  if (changed && n->ifaces_known) {
    n->st.interface_changes++;
    node_log(n, 2, "network changed: %zu announcement targets", nt);
    lc__tp_resume(n->tp, now);
    node_event *e = node_event_new(EV_NETWORK);
    if (e) {
      e->type = EV_NETWORK;
      e->a = LC_NET_CHANGED;
      node_enqueue(n, e);
    }
  }
  if (nt == 0 && !n->ifaces_known)
    node_log(n, 1, "no usable interface: nothing to announce to yet");
  n->ifaces_known = 1;
  return changed;
}

/* ---- the engine that net_uv drives --------------------------------------- */

static void node_finish_stop(lc__net_uv *net, void *arg) {
  (void)net;
  lc_node *n = arg;
  n->net = NULL;
  node_drain(n);
  n->state = NODE_STOPPED;
  if (n->stop_cb)
    n->stop_cb(n, n->o.user_data);
}

/* The datagram type without decoding: [version, type, ...] with both as
 * positive fixints. */
static int node_peek_type(const uint8_t *buf, size_t len) {
  if (len < 3 || (buf[0] & 0xf0) != 0x90 || buf[1] > 0x7f || buf[2] > 0x7f)
    return -1;
  return buf[2];
}

/* At most NODE_REFUSED_LOGS lines a second about refused datagrams (a
 * flood is counted, not written out line by line). */
#define NODE_REFUSED_LOGS 10

static int node_log_refused(lc_node *n, uint64_t now) {
  if (!n->o.on_log)
    return 0;
  if (now - n->refused_log_at >= 1000000) {
    n->refused_log_at = now;
    n->refused_logs = 0;
  }
  return n->refused_logs++ < NODE_REFUSED_LOGS;
}

static void node_recv(void *user, int sock, const lc__addr *from,
                      const uint8_t *buf, size_t len, uint64_t now) {
  lc_node *n = user;
  if (n->state != NODE_RUNNING)
    return;
  n->st.datagrams_in++;
  int type = node_peek_type(buf, len);
  int rc;
  if (type == LC_DG_ANNOUNCE || type == LC_DG_PEERS) {
    if (type == LC_DG_ANNOUNCE)
      n->st.announces_in++;
    else
      n->st.peers_lists_in++;
    rc = lc__disc_recv(n->disc, from, buf, len, now);
    if (rc < 0 && rc != LC_EREPLAY) {
      n->st.bad_announces++;
      n->st.bad_datagrams++;
      if (!node_log_refused(n, now))
        return;
      char a[64];
      lc__net_format_addr(from, a, sizeof a);
      node_log(n, 3, "discovery datagram from %s refused: %s", a,
               lc_strerror(rc));
    }
  } else if (sock == LC__SOCK_DISC4 || sock == LC__SOCK_DISC6) {
    n->st.bad_datagrams++; /* only discovery belongs on the shared port */
  } else {
    rc = lc__tp_recv(n->tp, from, buf, len, now);
    if (rc < 0 && rc != LC_EREPLAY) {
      n->st.bad_datagrams++;
      if (!node_log_refused(n, now))
        return;
      char a[64];
      lc__net_format_addr(from, a, sizeof a);
      node_log(n, 3, "datagram from %s refused: %s", a, lc_strerror(rc));
    }
  }
  /* the events wait for node_poll, which commits what the datagrams of
   * this receive batch brought first */
}

/* ---- relays: messages carried for someone who is away ------------------
 * A message to a peer that is away is also handed, sealed, to up to two
 * friends present; whichever meets the recipient first passes it on.  The
 * recipient takes it once (by its id); the sender's own copy still goes
 * when they meet, and is acknowledged as a duplicate. */

#define NODE_RELAYS_MAX 10000 /* boxes carried for others */
#define NODE_RELAY_COPIES 2   /* friends a box is handed to */
#define NODE_HANDED_MAX 4096  /* our messages already handed (in memory) */

static int node_handed(lc_node *n, const uint8_t *msg_id, int add) {
  for (size_t i = 0; i < n->nhanded; i++)
    if (memcmp(n->handed[i], msg_id, LC_MSGID_BYTES) == 0)
      return 1;
  if (add) {
    if (n->nhanded == NODE_HANDED_MAX)
      n->nhanded = 0; /* forget the oldest: a repeat is harmless */
    memcpy(n->handed[n->nhanded++], msg_id, LC_MSGID_BYTES);
  }
  return 0;
}

static int node_send_relay(lc_node *n, const uint8_t *to, const uint8_t *tid,
                           const uint8_t *recipient, uint64_t expires_ms,
                           const uint8_t *box, size_t len) {
  static lc__chat c;
  memset(&c, 0, offsetof(lc__chat, vec));
  c.kind = LC_CHAT_RELAY;
  c.sent_ms = node_wall_ms(n);
  memcpy(c.recipient, recipient, LC_KEY_BYTES);
  c.expires_ms = expires_ms;
  c.blob = box;
  c.blob_len = len;
  size_t cap = len + 128;
  uint8_t *env = malloc(cap);
  if (!env)
    return LC_ENOMEM;
  int rc = lc__chat_encode(&c, env, cap);
  if (rc > 0)
    rc = lc__tp_send_msg(n->tp, to, tid, env, (size_t)rc, node_now());
  free(env);
  return rc < 0 ? rc : 0;
}

/* Hands one of our messages to peer (who is away) to friends present. */
static void node_relay_handoff(lc_node *n, const uint8_t *peer,
                               const uint8_t *msg_id, uint64_t sent_ms,
                               const char *text, size_t len) {
  if (n->state != NODE_RUNNING || node_handed(n, msg_id, 0) ||
      lc__disc_peer_find(n->disc, peer))
    return;
  uint8_t *box = NULL;
  size_t box_len = 0;
  int copies = 0;
  size_t count = lc__disc_peer_count(n->disc);
  for (size_t i = 0; i < count && copies < NODE_RELAY_COPIES; i++) {
    const lc__disc_peer *p = lc__disc_peer_at(n->disc, i);
    lc__contact k;
    if (!p || memcmp(p->key, peer, LC_KEY_BYTES) == 0 ||
        node_is_blocked(n, p->key) || node_is_held(n, p->key) ||
        lc__store_contact_get(n->store, p->key, &k) != 1 ||
        k.state != LC_CONTACT_FRIEND)
      continue;
    if (!box && lc__relay_seal(&n->id, peer, msg_id, sent_ms, text, len, &box,
                               &box_len) < 0)
      return;
    uint8_t tid[LC_MSGID_BYTES];
    node_new_msg_id(n, tid);
    if (node_send_relay(n, p->key, tid, peer, node_wall_ms(n) + LC_RELAY_TTL_MS,
                        box, box_len) == 0)
      copies++;
  }
  free(box);
  if (copies) {
    node_handed(n, msg_id, 1);
    n->st.relays_handed += (uint64_t)copies;
    lc__net_uv_kick(n->net);
  }
}

/* Our outbox messages to peers that are away, not handed yet. */
static void node_relay_handoff_all(lc_node *n) {
  lc__stored_msg *m;
  size_t count;
  if (lc__store_outbox(n->store, NULL, &m, &count) < 0)
    return;
  for (size_t i = 0; i < count; i++)
    node_relay_handoff(n, m[i].peer, m[i].msg_id, m[i].sent_ms, m[i].text,
                       m[i].text_len);
  lc__store_msgs_free(m, count);
}

typedef struct {
  lc_node *n;
  const uint8_t *peer;
} node_fwd_ctx;

static void node_relay_fwd_one(void *ctx, const uint8_t *msg_id,
                               uint64_t expires_ms, const uint8_t *box,
                               size_t len) {
  node_fwd_ctx *f = ctx;
  if (node_send_relay(f->n, f->peer, msg_id, f->peer, expires_ms, box, len) ==
      0)
    f->n->st.relays_forwarded++;
}

/* Passes on what we carry for peer, now that it is here. */
static void node_relay_forward(lc_node *n, const uint8_t *peer) {
  node_fwd_ctx f = {n, peer};
  lc__store_relays_for(n->store, peer, node_relay_fwd_one, &f);
}

/* A RELAY envelope from peer: ours to open, or one to carry. */
static int node_recv_relay(lc_node *n, const uint8_t *from, const lc__chat *c) {
  uint64_t now_ms = node_wall_ms(n);
  if (memcmp(c->recipient, n->id.pk, LC_KEY_BYTES) == 0) {
    lc__relay_inner in;
    uint8_t *plain = NULL;
    if (lc__relay_open(&n->id, c->blob, c->blob_len, &in, &plain) < 0) {
      n->st.bad_datagrams++;
      return 0;
    }
    int rc = 0;
    lc__contact k;
    if (node_is_blocked(n, in.sender)) {
      n->st.blocked_dropped++;
    } else if (n->o.contacts_only &&
               (lc__store_contact_get(n->store, in.sender, &k) != 1 ||
                k.state != LC_CONTACT_FRIEND)) {
      n->st.policy_dropped++;
    } else {
      lc__chat t;
      memset(&t, 0, offsetof(lc__chat, vec));
      t.kind = LC_CHAT_TEXT;
      t.sent_ms = in.sent_ms;
      t.text = in.text;
      t.text_len = in.text_len;
      node_event *tail = n->ev_tail;
      rc = node_recv_text(n, in.sender, in.msg_id, &t);
      if (rc == 0 && n->ev_tail != tail) /* new: not a copy we had */
        n->st.relayed_in++;
    }
    free(plain);
    return rc;
  }
  /* to carry: only for friends, only so many, only so long */
  lc__contact k;
  if (lc__store_contact_get(n->store, from, &k) != 1 ||
      k.state != LC_CONTACT_FRIEND ||
      memcmp(c->recipient, from, LC_KEY_BYTES) == 0 ||
      lc__store_relay_count(n->store) >= NODE_RELAYS_MAX) {
    n->st.relays_refused++;
    return 0;
  }
  uint64_t expires = c->expires_ms;
  if (expires > now_ms + LC_RELAY_TTL_MS)
    expires = now_ms + LC_RELAY_TTL_MS;
  if (expires <= now_ms)
    return 0;
  /* the box's id is its hash: two copies of one box are one */
  uint8_t id[LC_MSGID_BYTES];
  lc__hash(id, sizeof id, c->blob, c->blob_len);
  int rc = lc__store_relay_add(n->store, c->recipient, id, from, expires,
                               c->blob, c->blob_len);
  if (rc < 0)
    return rc; /* refused: it comes again */
  if (rc == 1) {
    n->st.relays_carried++;
    if (lc__disc_peer_find(n->disc, c->recipient))
      node_relay_forward(n, c->recipient);
  }
  return 0;
}

/* ---- group chats: the engine's input and output -------------------------
 */

static void node_grp_send(void *user, const uint8_t *peer, const uint8_t *env,
                          size_t len) {
  lc_node *n = user;
  if (n->state != NODE_RUNNING || !lc__disc_peer_find(n->disc, peer) ||
      node_is_blocked(n, peer))
    return; /* away: a SYNC brings it when we meet */
  uint8_t id[LC_MSGID_BYTES];
  node_new_msg_id(n, id);
  if (lc__tp_send_msg(n->tp, peer, id, env, len, node_now()) == 0)
    lc__net_uv_kick(n->net);
}

static int node_grp_op_put(void *user, const uint8_t *group, const uint8_t *op,
                           size_t len) {
  lc_node *n = user;
  return lc__store_group_op_add(n->store, group, op, len);
}

static int node_grp_msg_put(void *user, const lc__gmsg_wire *m,
                            const uint8_t *msg_id, const uint8_t *blob,
                            size_t len) {
  lc_node *n = user;
  int outgoing = memcmp(m->author, n->id.pk, LC_KEY_BYTES) == 0;
  if (!outgoing && node_is_blocked(n, m->author)) {
    n->st.blocked_dropped++;
    return 0; /* not stored, not counted as held: a SYNC may offer it */
  }
  uint64_t now_ms = node_wall_ms(n);
  int64_t id = 0;
  int rc = lc__store_group_msg_add(
      n->store, m->group, msg_id, m->author, outgoing, m->seq, m->lamport,
      m->sent_ms, now_ms, m->text, m->text_len, blob, len, &id);
  if (rc == 1 && !outgoing && id) {
    node_event *e = node_event_new(EV_MESSAGE);
    char *text = malloc(m->text_len + 1);
    if (e && text) {
      memcpy(text, m->text, m->text_len);
      text[m->text_len] = 0;
      memcpy(e->key, m->author, LC_KEY_BYTES);
      memcpy(e->msg_id, msg_id, LC_MSGID_BYTES);
      memcpy(e->group_id, m->group, LC_GROUP_ID_BYTES);
      e->in_group = 1;
      e->text = text;
      e->len = m->text_len;
      e->sent_ms = m->sent_ms;
      e->received_ms = now_ms;
      e->id = id;
      node_enqueue(n, e);
    } else {
      free(e);
      free(text);
    }
  }
  return rc;
}

static int node_grp_msgs_after(void *user, const uint8_t *group,
                               const uint8_t *author, uint64_t after,
                               size_t max,
                               void (*each)(void *, const uint8_t *, size_t),
                               void *ctx) {
  lc_node *n = user;
  return lc__store_group_msgs_after(n->store, group, author, after, max, each,
                                    ctx);
}

/* A snapshot of a group for the application. */
static lc_group_info *node_group_info(const lc_node *n, const lc__group *g,
                                      lc_group_info *into) {
  lc_group_info *info = into ? into : calloc(1, sizeof *info);
  if (!info)
    return NULL;
  memset(info, 0, sizeof *info);
  lc__group_id(g, info->id);
  snprintf(info->name, sizeof info->name, "%s", lc__group_name(g));
  info->member = lc__group_is_member(g, n->id.pk);
  const lc__gmember *m;
  size_t k = lc__group_members(g, &m);
  info->members = calloc(k ? k : 1, sizeof *info->members);
  if (!info->members) {
    if (!into)
      free(info);
    return NULL;
  }
  for (size_t i = 0; i < k; i++) {
    memcpy(info->members[i].key, m[i].key, LC_KEY_BYTES);
    info->members[i].owner = m[i].owner;
  }
  info->nmembers = k;
  return info;
}

static void node_grp_changed(void *user, const lc__group *g) {
  lc_node *n = user;
  if (!n->o.on_group)
    return;
  node_event *e = node_event_new(EV_GROUP);
  if (!e)
    return;
  e->group = node_group_info(n, g, NULL);
  if (!e->group) {
    free(e);
    return;
  }
  node_enqueue(n, e);
}

static void node_grp_load_op(void *ctx, const uint8_t *op, size_t len) {
  lc__grp_load_op(ctx, op, len);
}

static void node_grp_load_seq(void *ctx, const uint8_t *group,
                              const uint8_t *author, uint64_t seq,
                              uint64_t lamport) {
  lc__grp_load_msg(ctx, group, author, seq, lamport);
}

/* The engine, with what the store kept. */
static int node_group_open(lc_node *n) {
  lc__grp_io io = {.user = n,
                   .send = node_grp_send,
                   .op_put = node_grp_op_put,
                   .msg_put = node_grp_msg_put,
                   .msgs_after = node_grp_msgs_after,
                   .changed = node_grp_changed};
  n->grp = lc__grp_new(&n->id, &io);
  if (!n->grp)
    return LC_ENOMEM;
  int rc = lc__store_group_ops(n->store, node_grp_load_op, n->grp);
  if (rc == 0)
    rc = lc__store_group_seqs(n->store, node_grp_load_seq, n->grp);
  return rc;
}

/* Every minute, a SYNC for each group with every member present: what a
 * lost send or a full queue left out is repaired without waiting for
 * someone to come and go. */
#define NODE_GROUP_SYNC_US (60 * UINT64_C(1000000))
static void node_group_sync_all(lc_node *n) {
  if (lc__grp_count(n->grp) == 0)
    return;
  size_t count = lc__disc_peer_count(n->disc);
  for (size_t i = 0; i < count; i++) {
    const lc__disc_peer *p = lc__disc_peer_at(n->disc, i);
    if (p && !node_is_blocked(n, p->key))
      lc__grp_peer_up(n->grp, p->key, node_wall_ms(n));
  }
}

static int node_poll(void *user, uint64_t now, lc__addr *to, uint8_t *buf,
                     size_t cap) {
  lc_node *n = user;
  int len = 0;
  node_commit(n); /* nothing leaves before what came in is stored */
  if (n->state == NODE_RUNNING)
    for (size_t i = 0; i < n->nretry;) {
      if (n->retry[i].at > now) {
        i++;
        continue;
      }
      uint8_t peer[LC_KEY_BYTES];
      memcpy(peer, n->retry[i].peer, LC_KEY_BYTES);
      n->retry[i] = n->retry[--n->nretry];
      node_batch(n); /* the states of all the messages handed over */
      node_flush_peer(n, peer);
    }
  if (n->state == NODE_RUNNING && now >= n->next_iface_check) {
    node_refresh_ifaces(n, now);
    n->next_iface_check = now + (uint64_t)n->o.interface_poll_ms * 1000;
    if (now >= n->next_group_sync) {
      node_group_sync_all(n);
      node_relay_handoff_all(n);
      lc__store_relay_purge(n->store, node_wall_ms(n));
      n->next_group_sync = now + NODE_GROUP_SYNC_US;
    }
  }
  if (n->state == NODE_RUNNING)
    lc__xfer_pump(n->xfer, now);
  if (n->state == NODE_RUNNING || n->state == NODE_STOPPING) {
    len = lc__disc_poll(n->disc, now, to, buf, cap);
    if (len == 0)
      len = lc__tp_poll(n->tp, now, to, buf, cap);
    if (len == 0 && node_commit(n)) /* a redelivery: commit, its ACK */
      len = lc__tp_poll(n->tp, now, to, buf, cap);
  }
  node_drain(n);
  if (len > 0) {
    n->st.datagrams_out++;
    return len;
  }
  if (n->state == NODE_STOPPING && n->net) {
    /* Goodbyes are out; CLOSE frames go as soon as pacing lets them (a
     * transport timer due within NODE_STOP_WAIT_US); then the sockets go. */
    uint64_t t = lc__tp_next_wakeup(n->tp);
    if (now >= n->stop_deadline || t == LC_NEVER ||
        t > now + NODE_STOP_WAIT_US) {
      n->state = NODE_CLOSING;
      lc__net_uv_close(n->net, node_finish_stop, n);
    }
  }
  return 0;
}

static uint64_t node_next_wakeup(void *user) {
  lc_node *n = user;
  if (n->state != NODE_RUNNING && n->state != NODE_STOPPING)
    return LC_NEVER;
  uint64_t t = lc__disc_next_wakeup(n->disc);
  if (n->state == NODE_STOPPING && n->stop_deadline < t)
    t = n->stop_deadline;
  uint64_t u = lc__tp_next_wakeup(n->tp);
  if (u < t)
    t = u;
  if (n->next_iface_check < t)
    t = n->next_iface_check;
  if (n->state == NODE_RUNNING) {
    u = lc__xfer_next_wakeup(n->xfer);
    if (u < t)
      t = u;
  }
  for (size_t i = 0; n->state == NODE_RUNNING && i < n->nretry; i++)
    if (n->retry[i].at < t)
      t = n->retry[i].at;
  return t;
}

/* ---- file transfers: the engine's reach into the node ---------------------
 */

static int node_x_send(void *user, const uint8_t *peer, const uint8_t *tid,
                       const uint8_t *env, size_t len) {
  lc_node *n = user;
  if (n->state != NODE_RUNNING || node_is_blocked(n, peer))
    return LC_ESTATE;
  return lc__tp_send_msg(n->tp, peer, tid, env, len, node_now());
}

static int node_x_open(void *user, const uint8_t *peer, uint32_t *stream) {
  lc_node *n = user;
  if (n->state != NODE_RUNNING)
    return LC_ESTATE;
  return lc__tp_bulk_open(n->tp, peer, stream);
}

static int node_x_write(void *user, const uint8_t *peer, uint32_t stream,
                        const uint8_t *data, size_t len, int fin) {
  lc_node *n = user;
  if (n->state != NODE_RUNNING)
    return LC_ESTATE;
  return lc__tp_bulk_write(n->tp, peer, stream, data, len, fin, node_now());
}

static void node_x_connect(void *user, const uint8_t *peer) {
  lc_node *n = user;
  if (n->state == NODE_RUNNING && !node_is_blocked(n, peer))
    lc__tp_connect(n->tp, peer, node_now());
}

/* Flushing received files to the disk, on a worker thread: it can take a
 * long time, and nothing on the loop (chat included) waits for it. */
typedef struct node_sync {
  struct node_sync *next;
  lc_node *n; /* NULL once the node is freed */
  uint8_t id[LC_MSGID_BYTES];
  uint32_t group;
  char **paths;
  size_t np;
  int rc;
} node_sync;

static void node_sync_work(void *ctx) { /* a worker thread: no node here */
  node_sync *w = ctx;
  for (size_t i = 0; w->rc == 0 && i < w->np; i++) {
    int fd = open(w->paths[i], O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 || (fdatasync(fd) < 0 && errno != EINVAL))
      w->rc = -errno;
    if (fd >= 0)
      close(fd);
  }
}

static void node_sync_free(node_sync *w) {
  for (size_t i = 0; i < w->np; i++)
    free(w->paths[i]);
  free(w->paths);
  free(w);
}

static void node_sync_after(void *ctx) {
  node_sync *w = ctx;
  lc_node *n = w->n;
  if (n) {
    for (node_sync **p = &n->syncs; *p; p = &(*p)->next)
      if (*p == w) {
        *p = w->next;
        break;
      }
    lc__xfer_synced(n->xfer, w->id, w->group, w->rc);
    if (n->state == NODE_RUNNING)
      lc__net_uv_kick(n->net);
  }
  node_sync_free(w);
}

static int node_x_sync(void *user, const char *const *paths, size_t np,
                       const uint8_t *id, uint32_t group) {
  lc_node *n = user;
  if (n->state != NODE_RUNNING)
    return LC_ESTATE; /* the engine flushes them itself */
  node_sync *w = calloc(1, sizeof *w);
  if (!w)
    return LC_ENOMEM;
  w->n = n;
  memcpy(w->id, id, LC_MSGID_BYTES);
  w->group = group;
  w->paths = calloc(np ? np : 1, sizeof *w->paths);
  for (size_t i = 0; w->paths && i < np; i++, w->np++)
    if (!(w->paths[i] = node_strdup(paths[i])))
      break;
  int rc =
      !w->paths || w->np != np
          ? LC_ENOMEM
          : lc__net_uv_queue_work(n->loop, node_sync_work, node_sync_after, w);
  if (rc < 0) {
    node_sync_free(w);
    return rc;
  }
  w->next = n->syncs;
  n->syncs = w;
  return 0;
}

/* ---- the history's checkpoints, on a worker thread ----------------------
 * Copying SQLite's log into the database file and flushing it takes tens
 * of milliseconds every few thousand messages: not on the loop, where it
 * held up a text now and then by 30 ms.  If the worker falls far behind,
 * the loop checkpoints itself so that the log stays bounded. */
#define NODE_CKPT_PAGES 2048 /* 8 MiB of log */

typedef struct node_ckpt {
  lc_node *n; /* NULL once the node is freed */
  char *path;
} node_ckpt;

static void node_ckpt_work(void *ctx) { /* a worker thread */
  node_ckpt *w = ctx;
  lc__store_checkpoint(w->path);
}

static void node_ckpt_after(void *ctx) {
  node_ckpt *w = ctx;
  if (w->n)
    w->n->ckpt = NULL;
  free(w->path);
  free(w);
}

static void node_ckpt_due(void *ctx, int pages) {
  lc_node *n = ctx;
  if (n->ckpt) {
    if (pages >= 4 * NODE_CKPT_PAGES)
      lc__store_checkpoint_now(n->store);
    return;
  }
  node_ckpt *w = calloc(1, sizeof *w);
  size_t len = strlen(n->o.data_dir) + sizeof "/history.db";
  if (w && (w->path = malloc(len)) != NULL) {
    snprintf(w->path, len, "%s/history.db", n->o.data_dir);
    w->n = n;
    if (lc__net_uv_queue_work(n->loop, node_ckpt_work, node_ckpt_after, w) ==
        0) {
      n->ckpt = w;
      return;
    }
  }
  if (w)
    free(w->path);
  free(w);
  lc__store_checkpoint_now(n->store); /* here, then */
}

static void node_x_random(void *user, void *buf, size_t len) {
  (void)user;
  lc__crypto_random(buf, len);
}

static void node_x_log(void *user, int level, const char *msg) {
  node_log(user, level, "%s", msg);
}

/* A row of the store, with live numbers, in the public form (malloc'd
 * strings).  Errors: LC_ENOMEM. */
static int node_xfer_info(const lc__xfer_row *r, uint64_t bytes, uint64_t rate,
                          lc_transfer_info *v) {
  memset(v, 0, sizeof *v);
  memcpy(v->id, r->id, LC_MSGID_BYTES);
  memcpy(v->peer, r->peer, LC_KEY_BYTES);
  v->outgoing = r->outgoing;
  v->kind = (lc_transfer_kind)r->kind;
  v->state = (lc_transfer_state)r->state;
  v->error = r->err;
  v->by_peer = r->by_peer;
  v->total = r->total;
  v->bytes = bytes > r->total ? r->total : bytes;
  v->rate = rate;
  v->eta_ms =
      rate && v->bytes < v->total ? (v->total - v->bytes) * 1000 / rate : 0;
  v->duration_ms = r->duration_ms;
  v->created_ms = r->created_ms;
  v->name = node_strdup(r->name ? r->name : "");
  v->files = calloc(r->nfiles ? r->nfiles : 1, sizeof *v->files);
  if (!v->name || !v->files)
    return LC_ENOMEM;
  v->nfiles = r->nfiles;
  for (size_t i = 0; i < r->nfiles; i++) {
    lc_transfer_file *f = &v->files[i];
    f->path = node_strdup(r->files[i].path);
    f->size = r->files[i].size;
    f->verified = r->files[i].verified;
    /* a received file still being put in place has no local path yet */
    int has = r->files[i].local && (r->outgoing || r->files[i].verified) &&
              (r->outgoing || r->files[i].local[0] != LC_XFER_PLACING);
    if (has)
      f->local = node_strdup(r->files[i].local);
    if (!f->path || (has && !f->local))
      return LC_ENOMEM;
  }
  return 0;
}

static void node_xfer_info_clear(lc_transfer_info *v) {
  for (size_t i = 0; v->files && i < v->nfiles; i++) {
    free(v->files[i].path);
    free(v->files[i].local);
  }
  free(v->files);
  free(v->name);
}

static void node_x_event(void *user, int ev, const lc__xfer_row *r,
                         uint64_t bytes, uint64_t rate, int detail) {
  lc_node *n = user;
  if (!n->o.on_transfer)
    return;
  node_event *e = node_event_new(EV_TRANSFER);
  lc_transfer_info *v = calloc(1, sizeof *v);
  if (!e || !v || node_xfer_info(r, bytes, rate, v) < 0) {
    if (v)
      node_xfer_info_clear(v);
    free(v);
    free(e);
    return;
  }
  e->a = ev;
  e->b = detail;
  e->xfer = v;
  node_enqueue(n, e);
}

static int node_xfer_open(lc_node *n) {
  char *dl = NULL;
  if (!n->o.downloads_dir || !*n->o.downloads_dir) {
    size_t l = strlen(n->o.data_dir) + 16;
    dl = malloc(l);
    if (!dl)
      return LC_ENOMEM;
    snprintf(dl, l, "%s/downloads", n->o.data_dir);
  }
  lc__xfer_ops ops;
  memset(&ops, 0, sizeof ops);
  ops.send_msg = node_x_send;
  ops.bulk_open = node_x_open;
  ops.bulk_write = node_x_write;
  ops.connect = node_x_connect;
  ops.event = node_x_event;
  ops.random = node_x_random;
  ops.log = node_x_log;
  ops.sync = node_x_sync;
  ops.user = n;
  int rc = lc__xfer_new(&n->xfer, n->store, dl ? dl : n->o.downloads_dir, &ops);
  free(dl);
  if (rc == 0)
    rc = lc__xfer_load(n->xfer, node_now());
  return rc;
}

/* ---- options ------------------------------------------------------------- */

void lc_node_options_init(lc_node_options *o) {
  if (o)
    memset(o, 0, sizeof *o);
}

/* Parses a comma-separated address list into *out (malloc'd). */
static int node_parse_list(const char *list, uint16_t default_port,
                           lc__addr **out, size_t *count) {
  *out = NULL;
  *count = 0;
  if (!list)
    return 0;
  size_t cap = 1;
  for (const char *p = list; *p; p++)
    cap += *p == ',';
  lc__addr *v = calloc(cap, sizeof *v);
  if (!v)
    return LC_ENOMEM;
  size_t k = 0;
  const char *p = list;
  while (*p) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    char item[128];
    while (len && *p == ' ') {
      p++;
      len--;
    }
    while (len && p[len - 1] == ' ')
      len--;
    if (len) {
      if (len >= sizeof item) {
        free(v);
        return LC_EINVAL;
      }
      memcpy(item, p, len);
      item[len] = 0;
      if (lc__net_parse_addr(item, default_port, &v[k]) < 0) {
        free(v);
        return LC_EINVAL;
      }
      k++;
    }
    if (!end)
      break;
    p = end + 1;
  }
  *out = v;
  *count = k;
  return 0;
}

static void node_free_strings(lc_node *n) {
  free(n->s_data_dir);
  free(n->s_nick);
  free(n->s_status);
  free(n->s_bind_v4);
  free(n->s_bind_v6);
  free(n->s_ifaces);
  free(n->s_skip);
  free(n->s_bcast);
  free(n->s_statics);
  free(n->s_downloads);
}

static int node_copy_options(lc_node *n, const lc_node_options *o) {
  n->o = *o;
#define NODE_DUP(field, store)                                                 \
  do {                                                                         \
    if (o->field) {                                                            \
      if (!(n->store = node_strdup(o->field)))                                 \
        return LC_ENOMEM;                                                      \
    }                                                                          \
    n->o.field = n->store;                                                     \
  } while (0)
  NODE_DUP(data_dir, s_data_dir);
  NODE_DUP(nickname, s_nick);
  NODE_DUP(status, s_status);
  NODE_DUP(bind_v4, s_bind_v4);
  NODE_DUP(bind_v6, s_bind_v6);
  NODE_DUP(interfaces, s_ifaces);
  NODE_DUP(skip_interfaces, s_skip);
  NODE_DUP(broadcast, s_bcast);
  NODE_DUP(static_peers, s_statics);
  NODE_DUP(downloads_dir, s_downloads);
#undef NODE_DUP
  if (!n->o.discovery_port)
    n->o.discovery_port = LC_DISCOVERY_PORT;
  if (!n->o.announce_interval_ms)
    n->o.announce_interval_ms = 5000;
  if (!n->o.interface_poll_ms)
    n->o.interface_poll_ms = 2000;
  if (!n->o.presence)
    n->o.presence = LC_PRESENCE_ONLINE;
  return 0;
}

static void node_bad_option(const lc_node_options *o, const char *what) {
  if (o->on_log) {
    char msg[256];
    snprintf(msg, sizeof msg, "invalid option: %s", what);
    o->on_log(NULL, 0, msg, o->user_data);
  }
}

static int node_check_options(const lc_node_options *o) {
  if (!o->data_dir || !*o->data_dir) {
    node_bad_option(o, "data_dir is required");
    return LC_EINVAL;
  }
  if (o->announce_interval_ms &&
      (o->announce_interval_ms < 1000 || o->announce_interval_ms > 3600000)) {
    node_bad_option(o, "announce_interval_ms must be 1000..3600000");
    return LC_EINVAL;
  }
  if (o->interface_poll_ms && o->interface_poll_ms < 100) {
    node_bad_option(o, "interface_poll_ms must be at least 100");
    return LC_EINVAL;
  }
  if (o->presence < 0 || o->presence > LC_PRESENCE_BUSY) {
    node_bad_option(o, "presence out of range");
    return LC_EINVAL;
  }
  if (o->nickname && (!*o->nickname || strlen(o->nickname) > LC_NICK_MAX ||
                      !lc__utf8_valid(o->nickname, strlen(o->nickname)))) {
    node_bad_option(o, "nickname: 1 to 64 bytes of UTF-8");
    return LC_EINVAL;
  }
  if (o->status && (strlen(o->status) > LC_STATUS_MAX ||
                    !lc__utf8_valid(o->status, strlen(o->status)))) {
    node_bad_option(o, "status: up to 128 bytes of UTF-8");
    return LC_EINVAL;
  }
  return 0;
}

static const char *node_default_nick(void) {
  const char *u = getenv("USER");
  if (u && *u && strlen(u) <= LC_NICK_MAX && lc__utf8_valid(u, strlen(u)))
    return u;
  return "lanchat";
}

static int node_bind_addr(const char *s, int family, lc__addr *out) {
  const char *def = family == AF_INET ? "0.0.0.0" : "::";
  if (lc__net_parse_addr(s ? s : def, 0, out) < 0 ||
      out->ss.ss_family != family)
    return LC_EINVAL;
  return 0;
}

/* Says why the identity at path did not load, and what to do (log
 * callback, node NULL).  The key file is never changed or replaced. */
static void node_identity_error(const lc_node_options *o, const char *path,
                                int rc) {
  if (!o->on_log)
    return;
  char msg[9000], q[4200];
  const char *qp = lc__store_shq(path, q, sizeof q);
  struct stat st;
  int have = stat(path, &st) == 0;
  if (rc == -ENOENT && o->no_create_identity)
    snprintf(msg, sizeof msg, "no identity in %s: create one with lanchat init",
             o->data_dir);
  else if (rc == LC_EPASSPHRASE)
    snprintf(msg, sizeof msg,
             "the identity %s is protected by a passphrase: %s", path,
             o->passphrase && *o->passphrase ? "wrong passphrase"
                                             : "no passphrase given");
  else if (rc == LC_EKEYFILE && have && !S_ISREG(st.st_mode))
    snprintf(msg, sizeof msg,
             "the identity %s is not a regular file; put the key file back "
             "there (from a backup)",
             path);
  else if (rc == LC_EKEYFILE && have && (st.st_mode & 077))
    snprintf(msg, sizeof msg,
             "the identity %s can be read or changed by other users (mode "
             "%04o), so it is not used; make it yours only: chmod 600 %s "
             "(if others could read it, they may have copied the key)",
             path, (unsigned)(st.st_mode & 07777), qp);
  else if (rc == LC_EKEYFILE)
    snprintf(msg, sizeof msg,
             "the identity %s is damaged or not a lanchat key file; it is "
             "left as it is. Restore it from a backup. Only if there is "
             "none: mv %s %s.bad, then lanchat init creates a new identity "
             "(your friends will see a new key)",
             path, qp, qp);
  else if (rc == -EACCES)
    snprintf(msg, sizeof msg,
             "cannot read the identity %s: %s; it must belong to this user, "
             "with mode 600",
             path, lc_strerror(rc));
  else
    snprintf(msg, sizeof msg, "cannot load the identity %s: %s", path,
             lc_strerror(rc));
  o->on_log(NULL, 0, msg, o->user_data);
}

int lc_node_new(lc_node **out, struct uv_loop_s *loop,
                const lc_node_options *o) {
  if (!out)
    return LC_EINVAL;
  *out = NULL;
  if (!loop || !o)
    return LC_EINVAL;
  int rc = node_check_options(o);
  if (rc < 0)
    return rc;
  rc = lc__crypto_init();
  if (rc < 0)
    return rc;
  lc_node *n = calloc(1, sizeof *n);
  if (!n)
    return LC_ENOMEM;
  n->loop = loop;
  n->state = NODE_NEW;
  rc = node_copy_options(n, o);
  /* The passphrase is the caller's: read below while loading the identity,
   * never copied nor kept by the node. */
  n->o.passphrase = NULL;
  if (rc < 0)
    goto fail;
  n->v4 = !(n->o.bind_v4 && !*n->o.bind_v4);
  n->v6 = !(n->o.bind_v6 && !*n->o.bind_v6);
  if (!n->v4 && !n->v6) {
    node_bad_option(o, "both address families disabled");
    rc = LC_EINVAL;
    goto fail;
  }
  lc__addr tmp;
  if ((n->v4 && node_bind_addr(n->o.bind_v4, AF_INET, &tmp) < 0) ||
      (n->v6 && node_bind_addr(n->o.bind_v6, AF_INET6, &tmp) < 0)) {
    node_bad_option(o, "bind_v4 / bind_v6: a numeric address of that family");
    rc = LC_EINVAL;
    goto fail;
  }
  rc = node_parse_list(n->o.broadcast, n->o.discovery_port, &n->bcast,
                       &n->nbcast);
  if (rc < 0) {
    node_bad_option(o, "broadcast: comma-separated numeric addresses");
    goto fail;
  }
  rc = node_parse_list(n->o.static_peers, n->o.discovery_port, &n->statics,
                       &n->nstatics);
  if (rc < 0) {
    node_bad_option(o, "static_peers: comma-separated host:port");
    goto fail;
  }
  if (mkdir(n->o.data_dir, 0700) < 0 && errno != EEXIST) {
    rc = -errno;
    if (o->on_log) {
      char msg[4400];
      snprintf(msg, sizeof msg, "cannot create the data folder %s: %s",
               n->o.data_dir, strerror(-rc));
      o->on_log(NULL, 0, msg, o->user_data);
    }
    goto fail;
  }
  char path[4096];
  if (snprintf(path, sizeof path, "%s/identity.key", n->o.data_dir) >=
      (int)sizeof path) {
    rc = LC_EINVAL;
    goto fail;
  }
  rc = lc__identity_open(&n->id, path, o->passphrase, !o->no_create_identity);
  if (rc < 0) {
    node_identity_error(o, path, rc);
    goto fail;
  }
  snprintf(path, sizeof path, "%s/history.db", n->o.data_dir);
  char *err = NULL;
  rc = lc__store_open(&n->store, path, &err);
  if (rc < 0) {
    if (o->on_log) {
      char msg[4400];
      snprintf(msg, sizeof msg, "cannot open the history %s: %s", path,
               err ? err : lc_strerror(rc));
      o->on_log(NULL, 0, msg, o->user_data);
    }
    free(err);
    goto fail;
  }
  lc__store_external_checkpoints(n->store, NODE_CKPT_PAGES, node_ckpt_due, n);
  lc__contact *ks;
  size_t nk;
  if (lc__store_contacts(n->store, &ks, &nk) == 0) {
    for (size_t i = 0; i < nk; i++)
      node_contact_sets(n, &ks[i]);
    free(ks);
  }
  rc = node_group_open(n);
  if (rc < 0)
    goto fail;
  rc = node_xfer_open(n);
  if (rc < 0)
    goto fail;
  n->handed = calloc(NODE_HANDED_MAX, LC_MSGID_BYTES);
  if (!n->handed) {
    rc = LC_ENOMEM;
    goto fail;
  }
  *out = n;
  return 0;
fail:
  lc__identity_wipe(&n->id);
  node_free_strings(n);
  free(n->bcast);
  free(n->statics);
  free(n);
  return rc;
}

/* <data_dir>/identity.key into path.  Errors: LC_EINVAL. */
static int node_identity_path(char *path, size_t cap, const char *data_dir) {
  if (!data_dir || !*data_dir)
    return LC_EINVAL;
  int n = snprintf(path, cap, "%s/identity.key", data_dir);
  return n < 0 || (size_t)n >= cap ? LC_EINVAL : 0;
}

int lc_identity_create(const char *data_dir, const char *passphrase,
                       uint8_t key[LC_KEY_BYTES]) {
  char path[4096];
  int rc = node_identity_path(path, sizeof path, data_dir);
  if (rc < 0)
    return rc;
  rc = lc__crypto_init();
  if (rc < 0)
    return rc;
  if (mkdir(data_dir, 0700) < 0 && errno != EEXIST)
    return -errno;
  lc__identity id;
  rc = lc__identity_create(&id, path, passphrase);
  if (rc == 0 && key)
    memcpy(key, id.pk, LC_KEY_BYTES);
  lc__identity_wipe(&id);
  return rc == -EEXIST ? LC_EEXIST : rc;
}

int lc_identity_public(const char *data_dir, uint8_t key[LC_KEY_BYTES],
                       int *sealed) {
  char path[4096];
  if (!key)
    return LC_EINVAL;
  int rc = node_identity_path(path, sizeof path, data_dir);
  if (rc < 0)
    return rc;
  return lc__identity_read_public(path, key, sealed);
}

static uint64_t node_wall_us_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void node_net_log(void *user, int level, const char *msg) {
  node_log(user, level, "%s", msg);
}

int lc_node_start(lc_node *n) {
  if (!n)
    return LC_EINVAL;
  if (n->state != NODE_NEW)
    return LC_ESTATE;
  uint64_t now = node_now();
  uint64_t wall = node_wall_us_now();
  n->clock_offset_us = wall > now ? wall - now : 0;

  lc__tp_config tc;
  lc__tp_config_default(&tc);
  /* one budget for both families: IPv6's larger header decides.  A node
   * bound to a loopback address only reaches peers over loopback, whose
   * MTU is 64 KiB: larger datagrams there (fewer system calls and seals
   * per byte), still far under 64 KiB. */
  tc.max_datagram = n->v6 ? 1452 : 1472;
  if (n->v4 && !n->v6 && n->o.bind_v4 && strncmp(n->o.bind_v4, "127.", 4) == 0)
    tc.max_datagram = NODE_LOOPBACK_DATAGRAM;
  tc.clock_offset_us = n->clock_offset_us;
  tc.cb.message = node_tp_message;
  tc.cb.message_acked = node_tp_acked;
  tc.cb.message_failed = node_tp_failed;
  tc.cb.unreliable = node_tp_unreliable;
  tc.cb.session_up = node_tp_up;
  tc.cb.session_down = node_tp_down;
  tc.cb.bulk = node_tp_bulk;
  tc.cb.bulk_acked = node_tp_bulk_acked;
  /* bulk data must not halve its rate on the random loss of a busy LAN;
   * congestion (a queue growing) still slows it */
  tc.loss_tolerant = 1;
  tc.pace_tick_us = 2000; /* libuv's timers: 1 ms, rounded up */
  tc.hold_delivered = 1;  /* messages are committed in batches */
  tc.user = n;
  int rc = lc__tp_new(&n->tp, &n->id, &tc);
  if (rc < 0)
    return rc;

  lc__net_uv_options no;
  memset(&no, 0, sizeof no);
  lc__addr *first = &no.bind, *second = &no.bind2;
  uint16_t want_port = n->o.port ? n->o.port : n->o.discovery_port + 1;
  if (n->v4) {
    node_bind_addr(n->o.bind_v4, AF_INET, first);
    ((struct sockaddr_in *)&first->ss)->sin_port = htons(want_port);
    first = second;
  }
  if (n->v6) {
    node_bind_addr(n->o.bind_v6, AF_INET6, first);
    ((struct sockaddr_in6 *)&first->ss)->sin6_port = htons(want_port);
  }
  no.port_fallback = n->o.port == 0;
  no.discovery_port = n->o.discovery_port;
  no.discovery4 = n->v4;
  no.discovery6 = n->v6;
  no.log = node_net_log;
  no.log_user = n;
  no.engine.recv = node_recv;
  no.engine.poll = node_poll;
  no.engine.next_wakeup = node_next_wakeup;
  no.engine.user = n;
  rc = lc__net_uv_start(&n->net, n->loop, NULL, &no);
  if (rc < 0) {
    lc__tp_free(n->tp);
    n->tp = NULL;
    return rc;
  }
  lc__addr local;
  lc__net_uv_local_addr(n->net, &local);
  n->port = local.ss.ss_family == AF_INET
                ? ntohs(((struct sockaddr_in *)&local.ss)->sin_port)
                : ntohs(((struct sockaddr_in6 *)&local.ss)->sin6_port);

  lc__disc_config dc;
  lc__disc_config_default(&dc);
  dc.port = n->port;
  dc.interval_us = (uint64_t)n->o.announce_interval_ms * 1000;
  dc.clock_offset_us = n->clock_offset_us;
  dc.peer_event = node_disc_event;
  dc.user = n;
  rc = lc__disc_new(&n->disc, &n->id, &dc);
  if (rc == 0)
    rc = lc__disc_set_profile(
        n->disc, n->o.nickname ? n->o.nickname : node_default_nick(),
        n->o.presence, n->o.status ? n->o.status : "", now);
  if (rc < 0) {
    /* the sockets close on a later iteration; the node can be freed after
     * the loop ran once more */
    lc__net_uv_close(n->net, NULL, NULL);
    n->net = NULL;
    lc__disc_free(n->disc);
    n->disc = NULL;
    lc__tp_free(n->tp);
    n->tp = NULL;
    return rc;
  }
  for (size_t i = 0; i < n->nstatics; i++)
    lc__disc_add_static(n->disc, &n->statics[i], now);
  n->state = NODE_RUNNING;
  node_refresh_ifaces(n, now);
  n->next_iface_check = now + (uint64_t)n->o.interface_poll_ms * 1000;
  lc__disc_start(n->disc, now);
  lc__net_uv_kick(n->net);
  return 0;
}

int lc_node_stop(lc_node *n, lc_stop_cb *cb) {
  if (!n)
    return LC_EINVAL;
  if (n->state != NODE_RUNNING)
    return LC_ESTATE;
  uint64_t now = node_now();
  n->stop_cb = cb;
  n->state = NODE_STOPPING;
  n->stop_deadline = now + NODE_STOP_DEADLINE_US;
  lc__disc_stop(n->disc, now);
  lc__tp_close_all(n->tp, now);
  lc__net_uv_kick(n->net);
  return 0;
}

void lc_node_free(lc_node *n) {
  if (!n)
    return;
  /* still on the loop: freeing now would leave libuv with dangling
   * handles, so refuse (documented: stop first) */
  if (n->state == NODE_RUNNING || n->state == NODE_STOPPING ||
      n->state == NODE_CLOSING)
    return;
  node_event *e;
  while ((e = n->ev_head) != NULL) {
    n->ev_head = e->next;
    node_event_free(e);
  }
  lc__disc_free(n->disc);
  lc__tp_free(n->tp);
  lc__identity_wipe(&n->id);
  lc__store_close(n->store);
  node_free_strings(n);
  free(n->bcast);
  free(n->statics);
  free(n->inflight);
  free(n->marks);
  free(n->rcpts);
  free(n->blocked);
  free(n->held);
  lc__grp_free(n->grp);
  for (node_sync *w = n->syncs; w; w = w->next)
    w->n = NULL; /* its worker finishes on its own */
  if (n->ckpt)
    n->ckpt->n = NULL; /* the same */
  lc__xfer_free(n->xfer);
  free(n->handed);
  free(n);
}

void lc_node_key(const lc_node *n, uint8_t key[LC_KEY_BYTES]) {
  if (n && key)
    memcpy(key, n->id.pk, LC_KEY_BYTES);
}

int lc_node_port(const lc_node *n) {
  return n ? n->port : 0;
}

int lc_node_set_nickname(lc_node *n, const char *nickname) {
  if (!n || !nickname)
    return LC_EINVAL;
  size_t l = strlen(nickname);
  if (l == 0 || l > LC_NICK_MAX || !lc__utf8_valid(nickname, l))
    return LC_EINVAL;
  if (n->disc) {
    int rc = lc__disc_set_profile(n->disc, nickname, -1, NULL, node_now());
    if (rc < 0)
      return rc;
    if (n->net && n->state == NODE_RUNNING)
      lc__net_uv_kick(n->net);
  }
  char *c = node_strdup(nickname);
  if (!c)
    return LC_ENOMEM;
  free(n->s_nick);
  n->s_nick = c;
  n->o.nickname = c;
  return 0;
}

int lc_node_set_presence(lc_node *n, lc_presence presence, const char *status) {
  if (!n || presence < LC_PRESENCE_ONLINE || presence > LC_PRESENCE_BUSY)
    return LC_EINVAL;
  if (status && (strlen(status) > LC_STATUS_MAX ||
                 !lc__utf8_valid(status, strlen(status))))
    return LC_EINVAL;
  if (n->disc) {
    int rc = lc__disc_set_profile(n->disc, NULL, presence, status, node_now());
    if (rc < 0)
      return rc;
    if (n->net && n->state == NODE_RUNNING)
      lc__net_uv_kick(n->net);
  }
  n->o.presence = presence;
  if (status) {
    char *c = node_strdup(status);
    if (!c)
      return LC_ENOMEM;
    free(n->s_status);
    n->s_status = c;
    n->o.status = c;
  }
  return 0;
}

int lc_node_add_static_peer(lc_node *n, const char *host_port) {
  if (!n || !host_port)
    return LC_EINVAL;
  lc__addr a;
  if (lc__net_parse_addr(host_port, n->o.discovery_port, &a) < 0)
    return LC_EINVAL;
  lc__addr *v = realloc(n->statics, (n->nstatics + 1) * sizeof *v);
  if (!v)
    return LC_ENOMEM;
  n->statics = v;
  n->statics[n->nstatics++] = a;
  if (n->state == NODE_RUNNING) {
    int rc = lc__disc_add_static(n->disc, &a, node_now());
    if (rc < 0)
      return rc;
    lc__net_uv_kick(n->net);
  }
  return 0;
}

int lc_node_peers(lc_node *n, lc_peer_info **out, size_t *count) {
  if (!n || !out || !count)
    return LC_EINVAL;
  *out = NULL;
  *count = 0;
  size_t c = n->disc ? lc__disc_peer_count(n->disc) : 0;
  lc_peer_info *v = calloc(c ? c : 1, sizeof *v);
  if (!v)
    return LC_ENOMEM;
  for (size_t i = 0; i < c; i++)
    node_peer_info(lc__disc_peer_at(n->disc, i), &v[i]);
  *out = v;
  *count = c;
  return 0;
}

void lc_peers_free(lc_peer_info *peers) {
  free(peers);
}

int lc_batch_begin(lc_node *n) {
  if (!n)
    return LC_EINVAL;
  node_commit(n); /* what came in before is not part of it */
  return lc__store_begin(n->store) < 0 ? LC_ESTORE : 0;
}

int lc_batch_end(lc_node *n) {
  if (!n)
    return LC_EINVAL;
  if (!lc__store_in_batch(n->store) || n->batch)
    return LC_ESTATE;
  int rc = lc__store_commit(n->store);
  node_committed(n, rc, 0);
  if (rc < 0)
    return LC_ESTORE;
  if (n->net && n->state == NODE_RUNNING && !lc__store_in_batch(n->store))
    lc__net_uv_kick(n->net);
  return 0;
}

/* Not a usable key.  A peer discovery knows was checked when its signed
 * announcement was (the check costs a field inversion). */
static int node_bad_key(lc_node *n, const uint8_t *key) {
  if (n->disc && lc__disc_peer_find(n->disc, key))
    return 0;
  return lc__pk_check(key) < 0;
}

int lc_send_text(lc_node *n, const uint8_t peer[LC_KEY_BYTES], const char *text,
                 size_t len, uint8_t msg_id[LC_MSGID_BYTES]) {
  if (!n || !peer || (!text && len))
    return LC_EINVAL;
  if (n->state != NODE_NEW && n->state != NODE_RUNNING)
    return LC_ESTATE;
  if (len > NODE_MAX_TEXT)
    return LC_ETOOBIG;
  if (!lc__utf8_valid(text ? text : "", len) ||
      memcmp(peer, n->id.pk, LC_KEY_BYTES) == 0 || node_bad_key(n, peer))
    return LC_EINVAL;
  if (node_is_blocked(n, peer))
    return LC_ESTATE;
  uint8_t id[LC_MSGID_BYTES];
  node_new_msg_id(n, id);
  uint64_t now_ms = node_wall_ms(n);
  int rc = lc__store_add_outgoing(n->store, peer, id, now_ms, now_ms,
                                  text ? text : "", len, NULL);
  if (rc < 0)
    return rc;
  if (msg_id)
    memcpy(msg_id, id, LC_MSGID_BYTES);
  if (n->state == NODE_RUNNING) {
    /* handed to the transport on the next loop iteration, with the other
     * messages sent meanwhile (their states in one commit) */
    if (!node_retry_later(n, peer, 0))
      node_flush_peer(n, peer);
    /* away: friends present carry a sealed copy (in a batch, not yet
     * committed: the minute's handoff of the whole outbox takes it) */
    if (!node_is_held(n, peer) && !lc__store_in_batch(n->store))
      node_relay_handoff(n, peer, id, now_ms, text ? text : "", len);
    lc__net_uv_kick(n->net);
  }
  return 0;
}

int lc_send_typing(lc_node *n, const uint8_t peer[LC_KEY_BYTES],
                   lc_typing state) {
  if (!n || !peer || (int)state < 0 || state > LC_TYPING_PAUSED)
    return LC_EINVAL;
  if (n->state != NODE_RUNNING)
    return LC_ESTATE;
  if (!lc__disc_peer_find(n->disc, peer))
    return LC_ENOPEER;
  if (node_is_blocked(n, peer) || node_is_held(n, peer))
    return LC_ESTATE;
  static lc__chat c;
  memset(&c, 0, sizeof c);
  c.kind = LC_CHAT_TYPING;
  c.sent_ms = node_wall_ms(n);
  c.typing = (int)state;
  uint8_t buf[32];
  int len = lc__chat_encode(&c, buf, sizeof buf);
  if (len < 0)
    return len;
  uint64_t now = node_now();
  int rc = lc__tp_send_unreliable(n->tp, peer, buf, (size_t)len, now);
  if (rc == LC_ENOSESSION)
    lc__tp_connect(n->tp, peer, now); /* so that the next one goes */
  lc__net_uv_kick(n->net);
  return rc;
}

/* ---- history ---------------------------------------------------------------
 */

static void node_msg_info(lc__stored_msg *m, lc_msg_info *v) {
  v->id = m->id;
  memcpy(v->msg_id, m->msg_id, LC_MSGID_BYTES);
  memcpy(v->peer, m->peer, LC_KEY_BYTES);
  v->outgoing = m->outgoing;
  v->sent_ms = m->sent_ms;
  v->received_ms = m->received_ms;
  v->state = (lc_msg_state)m->state;
  v->edited_ms = m->edited_ms;
  v->retracted = m->retracted;
  v->text = m->text; /* moved */
  v->text_len = m->text_len;
  m->text = NULL;
  v->is_group = m->is_group;
  memcpy(v->sender, m->sender, LC_KEY_BYTES);
  v->kind = m->kind == LC_CHAT_FILE ? LC_KIND_FILE : LC_KIND_TEXT;
}

/* Moves the store's messages into the public form (texts change owner). */
static int node_msgs_out(lc__stored_msg *m, size_t count, lc_msg_info **out,
                         size_t *n) {
  lc_msg_info *v = calloc(count ? count : 1, sizeof *v);
  if (!v) {
    lc__store_msgs_free(m, count);
    return LC_ENOMEM;
  }
  for (size_t i = 0; i < count; i++)
    node_msg_info(&m[i], &v[i]);
  lc__store_msgs_free(m, count); /* texts are NULL now */
  *out = v;
  *n = count;
  return 0;
}

int lc_history_page(lc_node *n, const uint8_t peer[LC_KEY_BYTES],
                    int64_t before_id, size_t max, lc_msg_info **out,
                    size_t *got) {
  if (!n || !peer || !out || !got)
    return LC_EINVAL;
  lc__stored_msg *m;
  size_t k;
  int rc = lc__store_page(n->store, peer, before_id, max, &m, &k);
  return rc < 0 ? rc : node_msgs_out(m, k, out, got);
}

int lc_history_get(lc_node *n, const uint8_t msg_id[LC_MSGID_BYTES],
                   lc_msg_info **out) {
  if (!n || !msg_id || !out)
    return LC_EINVAL;
  lc__stored_msg *m = calloc(1, sizeof *m);
  if (!m)
    return LC_ENOMEM;
  int rc = lc__store_get(n->store, msg_id, m);
  if (rc <= 0) {
    free(m);
    return rc == 0 ? -ENOENT : rc;
  }
  size_t got;
  return node_msgs_out(m, 1, out, &got);
}

int lc_history_before_time(lc_node *n, const uint8_t peer[LC_KEY_BYTES],
                           uint64_t before_ms, size_t max, lc_msg_info **out,
                           size_t *got) {
  if (!n || !peer || !out || !got)
    return LC_EINVAL;
  lc__stored_msg *m;
  size_t k;
  int rc = lc__store_page_before_time(n->store, peer, before_ms, max, &m, &k);
  return rc < 0 ? rc : node_msgs_out(m, k, out, got);
}

int lc_history_search(lc_node *n, const uint8_t *peer, const char *query,
                      size_t max, lc_msg_info **out, size_t *got) {
  if (!n || !query || !out || !got)
    return LC_EINVAL;
  lc__stored_msg *m;
  size_t k;
  int rc = lc__store_search(n->store, peer, query, max, &m, &k);
  return rc < 0 ? rc : node_msgs_out(m, k, out, got);
}

void lc_msgs_free(lc_msg_info *msgs, size_t count) {
  for (size_t i = 0; msgs && i < count; i++)
    free(msgs[i].text);
  free(msgs);
}

int lc_conversations(lc_node *n, lc_conversation_info **out, size_t *count) {
  if (!n || !out || !count)
    return LC_EINVAL;
  lc__conversation *c;
  size_t k;
  int rc = lc__store_conversations(n->store, &c, &k);
  if (rc < 0)
    return rc;
  lc_conversation_info *v = calloc(k ? k : 1, sizeof *v);
  if (!v) {
    lc__store_conversations_free(c, k);
    return LC_ENOMEM;
  }
  for (size_t i = 0; i < k; i++) {
    memcpy(v[i].peer, c[i].peer, LC_KEY_BYTES);
    v[i].unread = c[i].unread;
    v[i].has_last = c[i].has_last;
    if (c[i].has_last)
      node_msg_info(&c[i].last, &v[i].last);
  }
  lc__store_conversations_free(c, k);
  *out = v;
  *count = k;
  return 0;
}

void lc_conversations_free(lc_conversation_info *c, size_t count) {
  for (size_t i = 0; c && i < count; i++)
    free(c[i].last.text);
  free(c);
}

int64_t lc_unread_total(lc_node *n) {
  return n ? lc__store_unread_total(n->store) : LC_EINVAL;
}

int lc_mark_read(lc_node *n, const uint8_t peer[LC_KEY_BYTES],
                 int64_t up_to_id) {
  if (!n || !peer || up_to_id < 0)
    return LC_EINVAL;
  uint8_t(*ids)[LC_MSGID_BYTES];
  size_t k;
  int rc = lc__store_mark_read(n->store, peer, up_to_id, &ids, &k);
  if (rc < 0)
    return rc;
  /* the receipts are owed until the peer's node has them, across
   * restarts; they go now if the peer is there (not in groups: a group's
   * messages are marked read here only) */
  if (k && !n->o.no_read_receipts && !lc__grp_find(n->grp, peer)) {
    rc = lc__store_receipts_add(n->store, peer, ids, k);
    if (rc == 0 && n->state == NODE_RUNNING) {
      node_flush_peer(n, peer);
      lc__net_uv_kick(n->net);
    }
  }
  free(ids);
  return (int)k;
}

static int node_change_own(lc_node *n, int kind, const uint8_t *msg_id,
                           const char *text, size_t len) {
  if (!n || !msg_id || (!text && len))
    return LC_EINVAL;
  if (n->state != NODE_NEW && n->state != NODE_RUNNING)
    return LC_ESTATE;
  if (len > NODE_MAX_TEXT)
    return LC_ETOOBIG;
  if (!lc__utf8_valid(text ? text : "", len))
    return LC_EINVAL;
  lc__stored_msg m;
  if (lc__store_get(n->store, msg_id, &m) == 1) {
    int in_group = m.is_group;
    lc__store_msg_clear(&m);
    if (in_group)
      return LC_EINVAL; /* group messages cannot be changed (yet) */
  }
  uint8_t action_id[LC_MSGID_BYTES], peer[LC_KEY_BYTES];
  node_new_msg_id(n, action_id);
  int rc = lc__store_change_own(n->store, kind, msg_id, action_id,
                                node_wall_ms(n), text, len, peer);
  if (rc < 0)
    return rc;
  if (rc == 0)
    return LC_EINVAL; /* unknown, not ours, or retracted */
  node_changed(n, msg_id);
  if (n->state == NODE_RUNNING) {
    node_flush_peer(n, peer);
    lc__net_uv_kick(n->net);
  }
  return 0;
}

int lc_edit_message(lc_node *n, const uint8_t msg_id[LC_MSGID_BYTES],
                    const char *text, size_t len) {
  return node_change_own(n, LC_CHAT_EDIT, msg_id, text, len);
}

int lc_retract_message(lc_node *n, const uint8_t msg_id[LC_MSGID_BYTES]) {
  return node_change_own(n, LC_CHAT_RETRACT, msg_id, NULL, 0);
}

int lc_export_conversation(lc_node *n, const uint8_t peer[LC_KEY_BYTES],
                           lc_export_format format, const char *path) {
  if (!n || !peer || !path || !*path ||
      (format != LC_EXPORT_JSONL && format != LC_EXPORT_TEXT))
    return LC_EINVAL;
  char tmp[4200];
  if (snprintf(tmp, sizeof tmp, "%s.part", path) >= (int)sizeof tmp)
    return LC_EINVAL;
  FILE *f = fopen(tmp, "w");
  if (!f)
    return -errno;
  /* the peer as the text names it: its nickname if present, else its key */
  char who[LC_NICK_MAX + 1];
  const lc__disc_peer *dp = n->disc ? lc__disc_peer_find(n->disc, peer) : 0;
  if (dp) {
    snprintf(who, sizeof who, "%s", dp->nick);
  } else {
    char hex[LC_KEY_HEX_LEN + 1];
    lc_key_to_hex(hex, peer);
    snprintf(who, sizeof who, "%.16s", hex);
  }
  int rc = 0, total = 0;
  int64_t after = 0;
  for (;;) {
    lc__stored_msg *m;
    size_t k;
    rc = lc__store_page_after(n->store, peer, after, 500, &m, &k);
    if (rc < 0 || k == 0) {
      if (rc == 0)
        lc__store_msgs_free(m, k);
      break;
    }
    for (size_t i = 0; i < k && rc == 0; i++) {
      rc = format == LC_EXPORT_JSONL ? lc__export_jsonl(f, &m[i])
                                     : lc__export_text(f, &m[i], who);
      total++;
    }
    after = m[k - 1].id;
    lc__store_msgs_free(m, k);
    if (rc < 0)
      break;
  }
  if (fclose(f) != 0 && rc == 0)
    rc = -errno;
  if (rc == 0 && rename(tmp, path) != 0)
    rc = -errno;
  if (rc < 0) {
    unlink(tmp);
    return rc;
  }
  return total;
}

int lc_mark_message_read(lc_node *n, const uint8_t msg_id[LC_MSGID_BYTES]) {
  if (!n || !msg_id)
    return LC_EINVAL;
  lc__stored_msg m;
  int rc = lc__store_get(n->store, msg_id, &m);
  if (rc <= 0)
    return rc < 0 ? rc : LC_EINVAL;
  int outgoing = m.outgoing, in_group = m.is_group;
  uint8_t peer[LC_KEY_BYTES];
  memcpy(peer, m.peer, LC_KEY_BYTES);
  lc__store_msg_clear(&m);
  if (outgoing)
    return LC_EINVAL;
  rc = lc__store_set_state(n->store, msg_id, LC_MSG_READ);
  if (rc == 1 && !n->o.no_read_receipts && !in_group) {
    uint8_t ids[1][LC_MSGID_BYTES];
    memcpy(ids[0], msg_id, LC_MSGID_BYTES);
    if (lc__store_receipts_add(n->store, peer, ids, 1) == 0 &&
        n->state == NODE_RUNNING) {
      node_flush_peer(n, peer);
      lc__net_uv_kick(n->net);
    }
  }
  return rc;
}

int lc_delete_message(lc_node *n, int64_t id) {
  return n ? lc__store_delete_message(n->store, id) : LC_EINVAL;
}

int lc_delete_conversation(lc_node *n, const uint8_t peer[LC_KEY_BYTES]) {
  return n && peer ? lc__store_delete_conversation(n->store, peer) : LC_EINVAL;
}

void lc_node_stats_get(const lc_node *n, lc_node_stats *st) {
  memset(st, 0, sizeof *st);
  if (!n)
    return;
  *st = n->st;
  if (n->disc) {
    lc__disc_stats ds;
    lc__disc_stats_get(n->disc, &ds);
    st->announces_out = ds.announces_out;
    st->peers_lists_out = ds.peers_out;
    st->peers_present = lc__disc_peer_count(n->disc);
  }
  if (n->net) {
    lc__net_uv_stats ns;
    lc__net_uv_stats_get(n->net, &ns);
    st->send_errors = ns.send_errors;
    st->recvmmsg = ns.recvmmsg;
  }
  if (n->xfer) {
    lc__xfer_stats xs;
    lc__xfer_stats_get(n->xfer, &xs);
    st->transfers_refused = xs.refused;
    st->transfer_bad_data = xs.bad_data;
    st->transfer_hash_fails = xs.hash_fails;
    st->bytes_sent_files = xs.bytes_sent;
    st->bytes_received_files = xs.bytes_recv;
    st->bad_datagrams += xs.bad_control;
  }
  if (n->tp) {
    lc__tp_stats ts;
    lc__tp_stats_get(n->tp, &ts);
    st->handshakes_limited = ts.drop_hs_rate;
  }
}

/* ---- small public utilities ---------------------------------------------- */

const char *lc_presence_name(int presence) {
  switch (presence) {
  case LC_PRESENCE_OFFLINE:
    return "offline";
  case LC_PRESENCE_ONLINE:
    return "online";
  case LC_PRESENCE_AWAY:
    return "away";
  case LC_PRESENCE_BUSY:
    return "busy";
  }
  return NULL;
}

int lc_presence_from_name(const char *name) {
  for (int p = LC_PRESENCE_ONLINE; name && p <= LC_PRESENCE_BUSY; p++)
    if (strcmp(name, lc_presence_name(p)) == 0)
      return p;
  return LC_EINVAL;
}

const char *lc_msg_state_name(int state) {
  switch (state) {
  case LC_MSG_QUEUED:
    return "queued";
  case LC_MSG_SENT:
    return "sent";
  case LC_MSG_DELIVERED:
    return "delivered";
  case LC_MSG_READ:
    return "read";
  case LC_MSG_FAILED:
    return "failed";
  }
  return NULL;
}

void lc_key_to_hex(char out[LC_KEY_HEX_LEN + 1],
                   const uint8_t key[LC_KEY_BYTES]) {
  static const char hexd[] = "0123456789abcdef";
  for (size_t i = 0; i < LC_KEY_BYTES; i++) {
    out[2 * i] = hexd[key[i] >> 4];
    out[2 * i + 1] = hexd[key[i] & 15];
  }
  out[LC_KEY_HEX_LEN] = 0;
}

static int node_hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int lc_key_from_hex(uint8_t key[LC_KEY_BYTES], const char *hex) {
  if (!key || !hex || strlen(hex) != LC_KEY_HEX_LEN)
    return LC_EINVAL;
  for (size_t i = 0; i < LC_KEY_BYTES; i++) {
    int hi = node_hexval(hex[2 * i]), lo = node_hexval(hex[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return LC_EINVAL;
    key[i] = (uint8_t)(hi << 4 | lo);
  }
  return 0;
}

/* ---- contacts and trust ---------------------------------------------------
 */

static int node_contact_args(lc_node *n, const uint8_t *peer) {
  if (!n || !peer || memcmp(peer, n->id.pk, LC_KEY_BYTES) == 0 ||
      lc__pk_check(peer) < 0)
    return LC_EINVAL;
  if (n->state != NODE_NEW && n->state != NODE_RUNNING)
    return LC_ESTATE;
  return 0;
}

int lc_contact_request(lc_node *n, const uint8_t peer[LC_KEY_BYTES],
                       const char *note) {
  int rc = node_contact_args(n, peer);
  if (rc < 0)
    return rc;
  size_t len = note ? strlen(note) : 0;
  if (len > LC_NOTE_MAX || !lc__utf8_valid(note ? note : "", len))
    return LC_EINVAL;
  lc__contact k;
  if ((rc = lc__store_contact_get(n->store, peer, &k)) < 0)
    return rc;
  if (k.blocked)
    return LC_ESTATE;
  if (k.state == LC_CONTACT_FRIEND)
    return LC_EEXIST;
  node_contact_nick(n, &k);
  int op = LC_CONTACT_OP_REQUEST;
  if (k.state == LC_CONTACT_ASKING) {
    k.state = LC_CONTACT_FRIEND; /* it asked first: this accepts */
    op = LC_CONTACT_OP_ACCEPT;
    note = NULL;
  } else {
    k.state = LC_CONTACT_ASKED;
    snprintf(k.note, sizeof k.note, "%s", note ? note : "");
  }
  rc = node_contact_commit(n, &k, op, note);
  if (rc == 0)
    node_contact_event(n, LC_CONTACT_UPDATED, &k, NULL);
  return rc;
}

/* accept (1) or reject (0) a request */
static int node_contact_answer(lc_node *n, const uint8_t *peer, int yes) {
  int rc = node_contact_args(n, peer);
  if (rc < 0)
    return rc;
  lc__contact k;
  if ((rc = lc__store_contact_get(n->store, peer, &k)) < 0)
    return rc;
  if (k.state != LC_CONTACT_ASKING)
    return LC_ESTATE;
  node_contact_nick(n, &k);
  k.state = yes ? LC_CONTACT_FRIEND : LC_CONTACT_NONE;
  if (!yes)
    k.note[0] = '\0';
  rc = node_contact_commit(
      n, &k, yes ? LC_CONTACT_OP_ACCEPT : LC_CONTACT_OP_REJECT, NULL);
  if (rc == 0)
    node_contact_event(n, LC_CONTACT_UPDATED, &k, NULL);
  return rc;
}

int lc_contact_accept(lc_node *n, const uint8_t peer[LC_KEY_BYTES]) {
  return node_contact_answer(n, peer, 1);
}

int lc_contact_reject(lc_node *n, const uint8_t peer[LC_KEY_BYTES]) {
  return node_contact_answer(n, peer, 0);
}

int lc_contact_remove(lc_node *n, const uint8_t peer[LC_KEY_BYTES]) {
  int rc = node_contact_args(n, peer);
  if (rc < 0)
    return rc;
  lc__contact k;
  if ((rc = lc__store_contact_get(n->store, peer, &k)) < 0)
    return rc;
  if (k.state != LC_CONTACT_FRIEND && k.state != LC_CONTACT_ASKED)
    return LC_ESTATE;
  k.state = LC_CONTACT_NONE;
  k.note[0] = '\0';
  rc = node_contact_commit(n, &k, LC_CONTACT_OP_REMOVE, NULL);
  if (rc == 0)
    node_contact_event(n, LC_CONTACT_UPDATED, &k, NULL);
  return rc;
}

int lc_block(lc_node *n, const uint8_t peer[LC_KEY_BYTES], int on) {
  int rc = node_contact_args(n, peer);
  if (rc < 0)
    return rc;
  lc__contact k;
  if ((rc = lc__store_contact_get(n->store, peer, &k)) < 0)
    return rc;
  node_contact_nick(n, &k);
  k.blocked = on ? 1 : 0;
  rc = node_contact_commit(n, &k, 0, NULL);
  if (rc == 0) {
    node_contact_event(n, LC_CONTACT_UPDATED, &k, NULL);
    if (!on && n->state == NODE_RUNNING) {
      node_flush_peer(n, peer); /* what waited for it goes now */
      lc__net_uv_kick(n->net);
    }
  }
  return rc;
}

int lc_trust_key(lc_node *n, const uint8_t peer[LC_KEY_BYTES]) {
  int rc = node_contact_args(n, peer);
  if (rc < 0)
    return rc;
  lc__contact k;
  if ((rc = lc__store_contact_get(n->store, peer, &k)) < 0)
    return rc;
  node_contact_nick(n, &k);
  k.trust = 2;
  rc = node_contact_commit(n, &k, 0, NULL);
  if (rc < 0)
    return rc;
  if (k.nick[0]) /* the nickname belongs to this key from now on */
    lc__store_pin_set(n->store, k.nick, peer, node_wall_ms(n));
  node_contact_event(n, LC_CONTACT_UPDATED, &k, NULL);
  if (n->state == NODE_RUNNING) {
    node_flush_peer(n, peer);
    lc__net_uv_kick(n->net);
  }
  return 0;
}

int lc_contact_get(lc_node *n, const uint8_t peer[LC_KEY_BYTES],
                   lc_contact_info *out) {
  if (!n || !peer || !out)
    return LC_EINVAL;
  lc__contact k;
  int rc = lc__store_contact_get(n->store, peer, &k);
  if (rc < 0)
    return rc;
  node_contact_nick(n, &k);
  node_contact_info(&k, out);
  return rc;
}

int lc_contacts(lc_node *n, lc_contact_info **out, size_t *count) {
  if (!n || !out || !count)
    return LC_EINVAL;
  lc__contact *ks;
  size_t nk;
  int rc = lc__store_contacts(n->store, &ks, &nk);
  if (rc < 0)
    return rc;
  lc_contact_info *v = calloc(nk ? nk : 1, sizeof *v);
  if (!v) {
    free(ks);
    return LC_ENOMEM;
  }
  for (size_t i = 0; i < nk; i++) {
    node_contact_nick(n, &ks[i]);
    node_contact_info(&ks[i], &v[i]);
  }
  free(ks);
  *out = v;
  *count = nk;
  return 0;
}

void lc_contacts_free(lc_contact_info *c) {
  free(c);
}

int lc_node_set_policy(lc_node *n, int contacts_only) {
  if (!n)
    return LC_EINVAL;
  n->o.contacts_only = contacts_only ? 1 : 0;
  return 0;
}

void lc_fingerprint(char out[LC_FINGERPRINT_LEN + 1],
                    const uint8_t key[LC_KEY_BYTES]) {
  lc__fingerprint(out, key);
}

/* ---- group chats ----------------------------------------------------------
 */

static int node_group_args(lc_node *n, const uint8_t *group) {
  if (!n || !group)
    return LC_EINVAL;
  if (n->state != NODE_NEW && n->state != NODE_RUNNING)
    return LC_ESTATE;
  return 0;
}

static int node_group_done(lc_node *n, int rc) {
  if (rc == 0 && n->state == NODE_RUNNING)
    lc__net_uv_kick(n->net);
  return rc;
}

int lc_group_create(lc_node *n, const char *name,
                    const uint8_t (*members)[LC_KEY_BYTES], size_t count,
                    uint8_t id[LC_GROUP_ID_BYTES]) {
  if (!n || !name || (count && !members))
    return LC_EINVAL;
  if (n->state != NODE_NEW && n->state != NODE_RUNNING)
    return LC_ESTATE;
  if (strlen(name) > LC_GROUP_NAME_MAX || !lc__utf8_valid(name, strlen(name)))
    return LC_EINVAL;
  return node_group_done(
      n, lc__grp_create(n->grp, name, members, count, node_wall_ms(n), id));
}

int lc_group_invite(lc_node *n, const uint8_t group[LC_GROUP_ID_BYTES],
                    const uint8_t peer[LC_KEY_BYTES]) {
  int rc = node_group_args(n, group);
  if (rc < 0 || !peer)
    return rc < 0 ? rc : LC_EINVAL;
  return node_group_done(n, lc__grp_add(n->grp, group, peer, node_wall_ms(n)));
}

int lc_group_remove(lc_node *n, const uint8_t group[LC_GROUP_ID_BYTES],
                    const uint8_t peer[LC_KEY_BYTES]) {
  int rc = node_group_args(n, group);
  if (rc < 0 || !peer)
    return rc < 0 ? rc : LC_EINVAL;
  return node_group_done(n,
                         lc__grp_remove(n->grp, group, peer, node_wall_ms(n)));
}

int lc_group_leave(lc_node *n, const uint8_t group[LC_GROUP_ID_BYTES]) {
  int rc = node_group_args(n, group);
  if (rc < 0)
    return rc;
  return node_group_done(
      n, lc__grp_remove(n->grp, group, n->id.pk, node_wall_ms(n)));
}

int lc_group_rename(lc_node *n, const uint8_t group[LC_GROUP_ID_BYTES],
                    const char *name) {
  int rc = node_group_args(n, group);
  if (rc < 0 || !name)
    return rc < 0 ? rc : LC_EINVAL;
  if (strlen(name) > LC_GROUP_NAME_MAX || !lc__utf8_valid(name, strlen(name)))
    return LC_EINVAL;
  return node_group_done(n,
                         lc__grp_rename(n->grp, group, name, node_wall_ms(n)));
}

int lc_group_send(lc_node *n, const uint8_t group[LC_GROUP_ID_BYTES],
                  const char *text, size_t len,
                  uint8_t msg_id[LC_MSGID_BYTES]) {
  int rc = node_group_args(n, group);
  if (rc < 0 || (!text && len))
    return rc < 0 ? rc : LC_EINVAL;
  if (len > NODE_MAX_TEXT)
    return LC_ETOOBIG;
  if (!lc__utf8_valid(text ? text : "", len))
    return LC_EINVAL;
  return node_group_done(n, lc__grp_send(n->grp, group, text ? text : "", len,
                                         node_wall_ms(n), msg_id));
}

int lc_groups(lc_node *n, lc_group_info **out, size_t *count) {
  if (!n || !out || !count)
    return LC_EINVAL;
  size_t k = lc__grp_count(n->grp);
  lc_group_info *v = calloc(k ? k : 1, sizeof *v);
  if (!v)
    return LC_ENOMEM;
  for (size_t i = 0; i < k; i++) {
    if (!node_group_info(n, lc__grp_at(n->grp, i), &v[i])) {
      lc_groups_free(v, i);
      return LC_ENOMEM;
    }
  }
  *out = v;
  *count = k;
  return 0;
}

void lc_groups_free(lc_group_info *g, size_t count) {
  for (size_t i = 0; g && i < count; i++)
    free(g[i].members);
  free(g);
}

/* ---- files, folders and voice messages ----------------------------------- */

const char *lc_transfer_state_name(int state) {
  switch (state) {
  case LC_TRANSFER_OFFERED:
    return "offered";
  case LC_TRANSFER_ACCEPTED:
    return "accepted";
  case LC_TRANSFER_DONE:
    return "done";
  case LC_TRANSFER_DECLINED:
    return "declined";
  case LC_TRANSFER_CANCELLED:
    return "cancelled";
  case LC_TRANSFER_FAILED:
    return "failed";
  }
  return NULL;
}

const char *lc_transfer_kind_name(int kind) {
  switch (kind) {
  case LC_TRANSFER_KIND_FILES:
    return "files";
  case LC_TRANSFER_KIND_FOLDER:
    return "folder";
  case LC_TRANSFER_KIND_VOICE:
    return "voice";
  }
  return NULL;
}

static int node_offer(lc_node *n, const uint8_t *peer, const char *const *paths,
                      size_t count, int kind, uint64_t duration_ms,
                      uint8_t *out_id) {
  if (!n || !peer || !paths || count == 0)
    return LC_EINVAL;
  if (n->state != NODE_NEW && n->state != NODE_RUNNING)
    return LC_ESTATE;
  if (memcmp(peer, n->id.pk, LC_KEY_BYTES) == 0 || lc__pk_check(peer) < 0)
    return LC_EINVAL;
  if (node_is_blocked(n, peer))
    return LC_ESTATE;
  uint8_t id[LC_MSGID_BYTES];
  node_new_msg_id(n, id);
  int rc = lc__xfer_offer(n->xfer, peer, paths, count, kind, duration_ms,
                          node_wall_ms(n), id);
  if (rc < 0)
    return rc;
  if (out_id)
    memcpy(out_id, id, LC_MSGID_BYTES);
  if (n->state == NODE_RUNNING) {
    node_flush_peer(n, peer);
    lc__net_uv_kick(n->net);
  }
  return 0;
}

int lc_send_files(lc_node *n, const uint8_t peer[LC_KEY_BYTES],
                  const char *const *paths, size_t count,
                  uint8_t id[LC_MSGID_BYTES]) {
  return node_offer(n, peer, paths, count, 0, 0, id);
}

int lc_send_voice(lc_node *n, const uint8_t peer[LC_KEY_BYTES],
                  const char *path, uint64_t duration_ms,
                  uint8_t id[LC_MSGID_BYTES]) {
  if (!path)
    return LC_EINVAL;
  if (duration_ms == 0) {
    int rc = lc_audio_duration(path, &duration_ms);
    if (rc < 0)
      return rc;
  }
  const char *paths[1] = {path};
  return node_offer(n, peer, paths, 1, LC_TRANSFER_KIND_VOICE, duration_ms, id);
}

static int node_xfer_done(lc_node *n, int rc) {
  if (n->state == NODE_RUNNING)
    lc__net_uv_kick(n->net);
  return rc;
}

int lc_transfer_accept(lc_node *n, const uint8_t id[LC_MSGID_BYTES]) {
  if (!n || !id)
    return LC_EINVAL;
  return node_xfer_done(n, lc__xfer_accept(n->xfer, id));
}

int lc_transfer_decline(lc_node *n, const uint8_t id[LC_MSGID_BYTES]) {
  if (!n || !id)
    return LC_EINVAL;
  return node_xfer_done(n, lc__xfer_decline(n->xfer, id));
}

int lc_transfer_cancel(lc_node *n, const uint8_t id[LC_MSGID_BYTES]) {
  if (!n || !id)
    return LC_EINVAL;
  return node_xfer_done(n, lc__xfer_cancel(n->xfer, id));
}

/* The store's rows in the public form, with the live numbers. */
static int node_xfers_out(lc_node *n, lc__xfer_row *r, size_t count,
                          lc_transfer_info **out) {
  lc_transfer_info *v = calloc(count ? count : 1, sizeof *v);
  int rc = v ? 0 : LC_ENOMEM;
  for (size_t i = 0; rc == 0 && i < count; i++) {
    uint64_t bytes, rate = 0;
    if (!lc__xfer_live(n->xfer, r[i].id, &bytes, &rate))
      bytes = r[i].state == LC_TRANSFER_DONE ? r[i].total
                                             : (r[i].outgoing ? 0 : r[i].pos);
    rc = node_xfer_info(&r[i], bytes, rate, &v[i]);
  }
  lc__store_xfers_free(r, count);
  if (rc < 0) {
    lc_transfers_free(v, count);
    return rc;
  }
  *out = v;
  return 0;
}

int lc_transfer_get(lc_node *n, const uint8_t id[LC_MSGID_BYTES],
                    lc_transfer_info **out) {
  if (!n || !id || !out)
    return LC_EINVAL;
  lc__xfer_row *r = calloc(1, sizeof *r);
  if (!r)
    return LC_ENOMEM;
  int rc = lc__store_xfer_get(n->store, id, r);
  if (rc <= 0) {
    free(r);
    return rc == 0 ? -ENOENT : rc;
  }
  return node_xfers_out(n, r, 1, out);
}

int lc_transfers(lc_node *n, int active_only, lc_transfer_info **out,
                 size_t *count) {
  if (!n || !out || !count)
    return LC_EINVAL;
  lc__xfer_row *r;
  size_t k;
  int rc = lc__store_xfers(n->store, active_only ? 1 : 0, &r, &k);
  if (rc < 0)
    return rc;
  rc = node_xfers_out(n, r, k, out);
  if (rc == 0)
    *count = k;
  return rc;
}

void lc_transfers_free(lc_transfer_info *t, size_t count) {
  for (size_t i = 0; t && i < count; i++)
    node_xfer_info_clear(&t[i]);
  free(t);
}
