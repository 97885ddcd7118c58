/* sim.c: the deterministic network simulator (see sim.h).  It owns the
 * event queue, the links, the nodes' transports and the records of what
 * each node saw.  Nothing here reads the real clock or the OS generator. */
#include "sim.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIM_START_US 1000000ull
/* Every node's wall clock: 2023-11-14, in microseconds. */
#define SIM_CLOCK_OFFSET_US 1700000000000000ull
/* A node still due after this many consecutive 1 us nudges is spinning. */
#define SIM_MAX_STALLS 10000
/* Datagrams out of one drain before we call it a runaway. */
#define SIM_MAX_BURST 1000000

enum { SIM_EV_DGRAM = 1, SIM_EV_TIMER = 2 };

typedef struct {
  uint64_t t, seq;
  int kind;
  int from, to;
  uint8_t *buf;
  size_t len;
  sim_timer_fn *fn;
  void *ctx;
} sim_event;

typedef struct {
  sim_link_params p;
  sim_link_stats st;
  uint64_t free_at; /* when the last queued datagram has departed */
} sim_link;

typedef struct {
  int dirty;
  unsigned stalls; /* consecutive */
  uint64_t delivered_from[SIM_MAX_NODES];
  uint64_t acked_to[SIM_MAX_NODES];
  uint64_t sent_to[SIM_MAX_NODES];
  uint64_t in_flight[SIM_MAX_NODES]; /* after the last poll */
} sim_node_state;

struct sim {
  uint64_t seed;
  uint64_t now;
  uint64_t seq;   /* event insertion order */
  uint64_t order; /* callback order */
  sim_rng link_rng;
  sim_rng work_rng;

  sim_node nodes[SIM_MAX_NODES];
  sim_node_state ns[SIM_MAX_NODES];
  int nnodes;
  sim_link links[SIM_MAX_NODES][SIM_MAX_NODES];

  sim_event *heap;
  size_t nheap, heap_cap;

  sim_filter_fn *filter;
  void *filter_ctx;
  sim_poll_fn *poll_hook;
  void *poll_hook_ctx;
  sim_event_fn *event_hook;
  void *event_hook_ctx;
  uint64_t cwnd_slack;
  int cwnd_mode;
  uint64_t over_cwnd;     /* polls that found bytes_in_flight > cwnd */
  uint64_t over_cwnd_max; /* by how much, at worst */

  uint64_t violations;
  uint64_t stalls;
  uint64_t events;
  uint64_t no_dest;
  uint64_t trace;
  char fail[512];
  int failed;
  int verbose; /* LC_SIM_TRACE: print every datagram's fate */

  uint8_t dgram[LC_DATAGRAM_MAX];
};

/* ---- generator ------------------------------------------------------- */

uint64_t sim_splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void sim_rng_seed(sim_rng *r, uint64_t seed) {
  uint64_t st = seed;
  for (int i = 0; i < 4; i++)
    r->s[i] = sim_splitmix64(&st);
}

static uint64_t sim_rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

uint64_t sim_rng_next(sim_rng *r) {
  uint64_t *s = r->s;
  uint64_t result = sim_rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = sim_rotl(s[3], 45);
  return result;
}

uint64_t sim_rng_below(sim_rng *r, uint64_t n) {
  if (n == 0)
    return 0;
  /* rejection sampling: no modulo bias */
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do
    x = sim_rng_next(r);
  while (x >= limit);
  return x % n;
}

uint64_t sim_rng_range(sim_rng *r, uint64_t lo, uint64_t hi) {
  if (hi <= lo)
    return lo;
  if (hi - lo == UINT64_MAX)
    return sim_rng_next(r);
  return lo + sim_rng_below(r, hi - lo + 1);
}

double sim_rng_double(sim_rng *r) {
  return (double)(sim_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

void sim_rng_fill(sim_rng *r, void *buf, size_t len) {
  uint8_t *p = buf;
  while (len > 0) {
    uint64_t x = sim_rng_next(r);
    size_t n = len < 8 ? len : 8;
    for (size_t i = 0; i < n; i++)
      p[i] = (uint8_t)(x >> (8 * i));
    p += n;
    len -= n;
  }
}

/* Independent streams from one seed: the tag selects the stream. */
static void sim_rng_derive(sim_rng *r, uint64_t seed, uint64_t tag) {
  uint64_t st = seed ^ (tag * 0xd1b54a32d192ed03ull);
  sim_rng_seed(r, sim_splitmix64(&st) ^ tag);
}

int sim_seed_from_env(void) {
  const char *e = getenv("LC_SIM_SEED");
  return e != NULL && *e != '\0';
}

uint64_t sim_seed(uint64_t base, uint64_t index) {
  if (sim_seed_from_env())
    return strtoull(getenv("LC_SIM_SEED"), NULL, 0);
  return base + index;
}

/* ---- hashing ---------------------------------------------------------- */

uint64_t sim_hash(const void *buf, size_t len) {
  const uint8_t *p = buf;
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < len; i++) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

static void sim_trace(sim *s, uint64_t v) {
  uint64_t x = s->trace ^ v;
  s->trace = sim_splitmix64(&x);
}

static void sim_trace_bytes(sim *s, const void *buf, size_t len) {
  sim_trace(s, len);
  sim_trace(s, sim_hash(buf, len));
}

/* ---- reporting ---------------------------------------------------------- */

void sim_report(const sim *s, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr,
          "sim seed=%" PRIu64 " (replay: LC_SIM_SEED=%" PRIu64 "): ", s->seed,
          s->seed);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

static void sim_fail(sim *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sim_fail(sim *s, const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  sim_report(s, "t=%" PRIu64 "us: %s", s->now, msg);
  if (!s->failed) {
    s->failed = 1;
    snprintf(s->fail, sizeof s->fail,
             "seed=%" PRIu64 " t=%" PRIu64
             "us: %s (replay: LC_SIM_SEED=%" PRIu64 ")",
             s->seed, s->now, msg, s->seed);
  }
}

const char *sim_failed(const sim *s) {
  return s->failed ? s->fail : NULL;
}

uint64_t sim_invariant_violations(const sim *s) {
  return s->violations;
}

uint64_t sim_stalls(const sim *s) {
  return s->stalls;
}

uint64_t sim_events(const sim *s) {
  return s->events;
}

uint64_t sim_trace_hash(const sim *s) {
  return s->trace;
}

uint64_t sim_seed_of(const sim *s) {
  return s->seed;
}

uint64_t sim_now(const sim *s) {
  return s->now;
}

sim_rng *sim_rng_of(sim *s) {
  return &s->work_rng;
}

int sim_node_count(const sim *s) {
  return s->nnodes;
}

sim_node *sim_node_get(sim *s, int i) {
  return i >= 0 && i < s->nnodes ? &s->nodes[i] : NULL;
}

int sim_node_by_pk(const sim *s, const uint8_t pk[LC_PK_BYTES]) {
  for (int i = 0; i < s->nnodes; i++)
    if (memcmp(s->nodes[i].id.pk, pk, LC_PK_BYTES) == 0)
      return i;
  return -1;
}

/* ---- growable arrays ---------------------------------------------------- */

static void *sim_grow(void *v, size_t *cap, size_t n, size_t elem) {
  if (n < *cap)
    return v;
  size_t ncap = *cap ? *cap * 2 : 16;
  void *nv = realloc(v, ncap * elem);
  if (!nv) {
    fprintf(stderr, "sim: out of memory\n");
    abort();
  }
  *cap = ncap;
  return nv;
}

#define SIM_PUSH(arr, n, cap)                                                  \
  (arr = sim_grow(arr, &(cap), n, sizeof *(arr)), &(arr)[(n)++])

/* ---- event heap --------------------------------------------------------- */

static int sim_ev_before(const sim_event *a, const sim_event *b) {
  return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static void sim_heap_push(sim *s, sim_event ev) {
  ev.seq = s->seq++;
  s->heap = sim_grow(s->heap, &s->heap_cap, s->nheap, sizeof *s->heap);
  size_t i = s->nheap++;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!sim_ev_before(&ev, &s->heap[parent]))
      break;
    s->heap[i] = s->heap[parent];
    i = parent;
  }
  s->heap[i] = ev;
}

static sim_event sim_heap_pop(sim *s) {
  sim_event top = s->heap[0];
  sim_event last = s->heap[--s->nheap];
  size_t i = 0, n = s->nheap;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    const sim_event *best = &last;
    if (l < n && sim_ev_before(&s->heap[l], best)) {
      m = l;
      best = &s->heap[l];
    }
    if (r < n && sim_ev_before(&s->heap[r], best))
      m = r;
    if (m == i)
      break;
    s->heap[i] = s->heap[m];
    i = m;
  }
  if (n > 0)
    s->heap[i] = last;
  return top;
}

/* ---- transport callbacks ------------------------------------------------ */

static sim *sim_owner(sim_node *n) {
  return (sim *)n->owner;
}

static int sim_peer_index(sim *s, const uint8_t peer[LC_PK_BYTES]) {
  return sim_node_by_pk(s, peer);
}

static uint64_t sim_msg_id_counter(const uint8_t id[LC_MSG_ID_BYTES],
                                   int *sender);

static void sim_emit(sim *s, const sim_node *n, int kind, int peer,
                     const uint8_t *msg_id, const uint8_t *data, size_t len,
                     int64_t arg) {
  if (s->verbose) {
    int sender = -1;
    uint64_t c = msg_id ? sim_msg_id_counter(msg_id, &sender) : 0;
    fprintf(stderr,
            "%12" PRIu64 " event     %d: kind %d peer %d arg %" PRId64
            " msg %d/%" PRIu64 " len %zu\n",
            s->now, n->index, kind, peer, arg, sender, c, len);
  }
  if (s->event_hook)
    s->event_hook(s->event_hook_ctx, s, n->index, kind, peer, msg_id, data, len,
                  arg);
}

static void sim_cb_session_up(void *user, const uint8_t peer[LC_PK_BYTES]) {
  sim_node *n = user;
  sim *s = sim_owner(n);
  n->ups++;
  sim_trace(s, 0x100 + (uint64_t)n->index);
  sim_trace(s, (uint64_t)sim_peer_index(s, peer));
  sim_trace(s, s->now);
  s->order++;
  sim_emit(s, n, SIM_E_UP, sim_peer_index(s, peer), NULL, NULL, 0, 0);
}

static void sim_cb_session_down(void *user, const uint8_t peer[LC_PK_BYTES],
                                int reason) {
  sim_node *n = user;
  sim *s = sim_owner(n);
  n->downs++;
  n->last_down_reason = reason;
  sim_trace(s, 0x200 + (uint64_t)n->index);
  sim_trace(s, (uint64_t)sim_peer_index(s, peer));
  sim_trace(s, (uint64_t)(int64_t)reason);
  sim_trace(s, s->now);
  s->order++;
  sim_emit(s, n, SIM_E_DOWN, sim_peer_index(s, peer), NULL, NULL, 0, reason);
}

static void sim_record_msg(sim *s, sim_node *n, int p, const uint8_t *msg_id,
                           const uint8_t *data, size_t len);

static int sim_cb_message(void *user, const uint8_t peer[LC_PK_BYTES],
                          const uint8_t msg_id[LC_MSG_ID_BYTES],
                          const uint8_t *data, size_t len) {
  sim_node *n = user;
  sim *s = sim_owner(n);
  if (n->refuse > 0) {
    uint64_t h = s->now * 0x9e3779b97f4a7c15ull;
    for (int k = 0; k < LC_MSG_ID_BYTES; k++)
      h = (h ^ msg_id[k]) * 0x100000001b3ull;
    if ((double)(h >> 11) / 9007199254740992.0 < n->refuse) {
      n->refusals++;
      return -1;
    }
  }
  int p = sim_peer_index(s, peer);
  if (n->cfg.hold_delivered) { /* recorded when committed */
    sim_msg *h = SIM_PUSH(n->held, n->nheld, n->held_cap);
    h->peer = p;
    memcpy(h->msg_id, msg_id, LC_MSG_ID_BYTES);
    h->data = malloc(len ? len : 1);
    if (!h->data)
      abort();
    if (len)
      memcpy(h->data, data, len);
    h->len = len;
    return 0;
  }
  sim_record_msg(s, n, p, msg_id, data, len);
  return 0;
}

static void sim_record_msg(sim *s, sim_node *n, int p, const uint8_t *msg_id,
                           const uint8_t *data, size_t len) {
  sim_msg *m = SIM_PUSH(n->msgs, n->nmsgs, n->msgs_cap);
  m->peer = p;
  memcpy(m->msg_id, msg_id, LC_MSG_ID_BYTES);
  m->data = malloc(len ? len : 1);
  if (!m->data)
    abort();
  if (len)
    memcpy(m->data, data, len);
  m->len = len;
  m->order = s->order++;
  m->time = s->now;
  if (p >= 0)
    s->ns[n->index].delivered_from[p]++;
  sim_trace(s, 0x300 + (uint64_t)n->index);
  sim_trace(s, (uint64_t)p);
  sim_trace_bytes(s, msg_id, LC_MSG_ID_BYTES);
  sim_trace_bytes(s, data, len);
  sim_trace(s, s->now);
  if (n->on_msg)
    n->on_msg(n->on_msg_ctx, s, n->index, p, msg_id, data, len);
  sim_emit(s, n, SIM_E_MSG, p, msg_id, data, len, 0);
}

static void sim_drop_held(sim_node *n) {
  for (size_t k = 0; k < n->nheld; k++)
    free(n->held[k].data);
  n->nheld = 0;
}

/* hold_delivered: the application commits what it took (or fails to).
 * Returns 1 if the transport has acknowledgements to send now. */
static int sim_commit(sim *s, sim_node *n) {
  if (!n->cfg.hold_delivered || !n->tp)
    return 0;
  int ok = 1;
  if (n->nheld && n->commit_fail > 0) {
    uint64_t h = (s->now + n->nheld) * 0x9e3779b97f4a7c15ull ^ n->commits;
    h = (h ^ (h >> 29)) * 0xbf58476d1ce4e5b9ull;
    ok = (double)(h >> 11) / 9007199254740992.0 >= n->commit_fail;
  }
  if (n->nheld)
    n->commits++;
  if (ok) {
    for (size_t k = 0; k < n->nheld; k++)
      sim_record_msg(s, n, n->held[k].peer, n->held[k].msg_id, n->held[k].data,
                     n->held[k].len);
  } else {
    n->commit_fails++;
  }
  sim_drop_held(n);
  return lc__tp_commit(n->tp, ok, s->now);
}

static void sim_cb_acked(void *user, const uint8_t peer[LC_PK_BYTES],
                         const uint8_t msg_id[LC_MSG_ID_BYTES]) {
  sim_node *n = user;
  sim *s = sim_owner(n);
  int p = sim_peer_index(s, peer);
  sim_ack *a = SIM_PUSH(n->acked, n->nacked, n->acked_cap);
  a->peer = p;
  memcpy(a->msg_id, msg_id, LC_MSG_ID_BYTES);
  a->err = 0;
  a->order = s->order++;
  a->time = s->now;
  if (p >= 0)
    s->ns[n->index].acked_to[p]++;
  sim_trace(s, 0x400 + (uint64_t)n->index);
  sim_trace(s, (uint64_t)p);
  sim_trace_bytes(s, msg_id, LC_MSG_ID_BYTES);
  sim_trace(s, s->now);
  sim_emit(s, n, SIM_E_ACKED, p, msg_id, NULL, 0, 0);
}

static void sim_cb_failed(void *user, const uint8_t peer[LC_PK_BYTES],
                          const uint8_t msg_id[LC_MSG_ID_BYTES], int err) {
  sim_node *n = user;
  sim *s = sim_owner(n);
  sim_ack *a = SIM_PUSH(n->failed, n->nfailed, n->failed_cap);
  a->peer = sim_peer_index(s, peer);
  memcpy(a->msg_id, msg_id, LC_MSG_ID_BYTES);
  a->err = err;
  a->order = s->order++;
  a->time = s->now;
  sim_trace(s, 0x500 + (uint64_t)n->index);
  sim_trace(s, (uint64_t)a->peer);
  sim_trace_bytes(s, msg_id, LC_MSG_ID_BYTES);
  sim_trace(s, (uint64_t)(int64_t)err);
  sim_emit(s, n, SIM_E_FAILED, a->peer, msg_id, NULL, 0, err);
}

static void sim_cb_unreliable(void *user, const uint8_t peer[LC_PK_BYTES],
                              const uint8_t *data, size_t len) {
  sim_node *n = user;
  sim *s = sim_owner(n);
  n->unrel_count++;
  n->unrel_bytes += len;
  sim_trace(s, 0x600 + (uint64_t)n->index);
  sim_trace(s, (uint64_t)sim_peer_index(s, peer));
  sim_trace_bytes(s, data, len);
  s->order++;
  sim_emit(s, n, SIM_E_UNRELIABLE, sim_peer_index(s, peer), NULL, data, len, 0);
}

static void sim_cb_bulk(void *user, const uint8_t peer[LC_PK_BYTES],
                        uint32_t stream_id, uint64_t offset,
                        const uint8_t *data, size_t len) {
  sim_node *n = user;
  sim *s = sim_owner(n);
  int p = sim_peer_index(s, peer);
  n->bulk_bytes += len;
  sim_trace(s, 0x700 + (uint64_t)n->index);
  sim_trace(s, (uint64_t)p);
  sim_trace(s, stream_id);
  sim_trace(s, offset);
  sim_trace_bytes(s, data, len);
  s->order++;
  if (n->on_bulk)
    n->on_bulk(n->on_bulk_ctx, s, n->index, p, stream_id, offset, data, len);
}

static void sim_cb_bulk_done(void *user, const uint8_t peer[LC_PK_BYTES],
                             uint32_t stream_id, uint64_t final_size) {
  sim_node *n = user;
  sim *s = sim_owner(n);
  sim_bulk_event *e = SIM_PUSH(n->bulk_done, n->nbulk_done, n->bulk_done_cap);
  e->peer = sim_peer_index(s, peer);
  e->stream_id = stream_id;
  e->final_size = final_size;
  e->time = s->now;
  sim_trace(s, 0x800 + (uint64_t)n->index);
  sim_trace(s, stream_id);
  sim_trace(s, final_size);
  s->order++;
  sim_emit(s, n, SIM_E_BULK_DONE, e->peer, NULL, NULL, (size_t)final_size,
           stream_id);
}

static void sim_cb_bulk_acked(void *user, const uint8_t peer[LC_PK_BYTES],
                              uint32_t stream_id) {
  sim_node *n = user;
  sim *s = sim_owner(n);
  sim_bulk_event *e =
      SIM_PUSH(n->bulk_acked, n->nbulk_acked, n->bulk_acked_cap);
  e->peer = sim_peer_index(s, peer);
  e->stream_id = stream_id;
  e->final_size = 0;
  e->time = s->now;
  sim_trace(s, 0x900 + (uint64_t)n->index);
  sim_trace(s, stream_id);
  s->order++;
  sim_emit(s, n, SIM_E_BULK_ACKED, e->peer, NULL, NULL, 0, stream_id);
}

static void sim_node_random(void *ctx, void *buf, size_t len) {
  sim_rng_fill(ctx, buf, len);
}

/* ---- nodes -------------------------------------------------------------- */

sim *sim_new(uint64_t seed) {
  if (lc__crypto_init() != 0)
    return NULL;
  sim *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  s->seed = seed;
  s->now = SIM_START_US;
  sim_rng_derive(&s->link_rng, seed, 1);
  sim_rng_derive(&s->work_rng, seed, 2);
  s->verbose = getenv("LC_SIM_TRACE") != NULL;
  s->cwnd_mode = SIM_CWND_ON_SEND;
  const char *mode = getenv("LC_SIM_CWND");
  if (mode && strcmp(mode, "strict") == 0)
    s->cwnd_mode = SIM_CWND_STRICT;
  sim_trace(s, seed);
  return s;
}

void sim_free(sim *s) {
  if (!s)
    return;
  for (int i = 0; i < s->nnodes; i++) {
    sim_node *n = &s->nodes[i];
    lc__tp_free(n->tp);
    for (size_t k = 0; k < n->nmsgs; k++)
      free(n->msgs[k].data);
    free(n->msgs);
    sim_drop_held(n);
    free(n->held);
    free(n->acked);
    free(n->failed);
    free(n->sent);
    free(n->bulk_done);
    free(n->bulk_acked);
    lc__identity_wipe(&n->id);
  }
  for (size_t i = 0; i < s->nheap; i++)
    free(s->heap[i].buf);
  free(s->heap);
  free(s);
}

void sim_default_config(lc__tp_config *cfg) {
  lc__tp_config_default(cfg);
}

static void sim_node_learn_peers(sim *s, int i) {
  sim_node *n = &s->nodes[i];
  for (int j = 0; j < s->nnodes; j++) {
    if (j == i)
      continue;
    lc__tp_set_peer_addr(n->tp, s->nodes[j].id.pk, &s->nodes[j].addr);
    if (s->nodes[j].tp)
      lc__tp_set_peer_addr(s->nodes[j].tp, n->id.pk, &n->addr);
  }
}

static int sim_node_create_tp(sim *s, sim_node *n) {
  n->cfg.random = sim_node_random;
  n->cfg.random_ctx = &n->rng;
  n->cfg.user = n;
  n->cfg.clock_offset_us = SIM_CLOCK_OFFSET_US;
  n->cfg.cb.session_up = sim_cb_session_up;
  n->cfg.cb.session_down = sim_cb_session_down;
  n->cfg.cb.message = sim_cb_message;
  n->cfg.cb.message_acked = sim_cb_acked;
  n->cfg.cb.message_failed = sim_cb_failed;
  n->cfg.cb.unreliable = sim_cb_unreliable;
  n->cfg.cb.bulk = sim_cb_bulk;
  n->cfg.cb.bulk_done = sim_cb_bulk_done;
  n->cfg.cb.bulk_acked = sim_cb_bulk_acked;
  int rc = lc__tp_new(&n->tp, &n->id, &n->cfg);
  if (rc != 0) {
    sim_fail(s, "lc__tp_new for node %d: %s", n->index, lc_err_name(rc));
    n->tp = NULL;
  }
  return rc;
}

int sim_add_node(sim *s, const lc__tp_config *cfg) {
  if (s->nnodes >= SIM_MAX_NODES)
    return LC_ELIMIT;
  int i = s->nnodes;
  sim_node *n = &s->nodes[i];
  memset(n, 0, sizeof *n);
  memset(&s->ns[i], 0, sizeof s->ns[i]);
  n->owner = s;
  n->index = i;
  if (cfg)
    n->cfg = *cfg;
  else
    sim_default_config(&n->cfg);

  uint8_t idseed[32];
  sim_rng idr;
  sim_rng_derive(&idr, s->seed, 0x1000 + (uint64_t)i);
  sim_rng_fill(&idr, idseed, sizeof idseed);
  int rc = lc__identity_generate(&n->id, idseed);
  if (rc != 0) {
    sim_fail(s, "lc__identity_generate: %s", lc_err_name(rc));
    return rc;
  }
  sim_rng_derive(&n->rng, s->seed, 0x2000 + (uint64_t)i);

  struct sockaddr_in *sin = (struct sockaddr_in *)&n->addr.ss;
  memset(&n->addr, 0, sizeof n->addr);
  sin->sin_family = AF_INET;
  sin->sin_port = htons(SIM_PORT);
  sin->sin_addr.s_addr = htonl(0x0a000000u | (uint32_t)(i + 1));
  n->addr.len = sizeof *sin;

  rc = sim_node_create_tp(s, n);
  if (rc != 0)
    return rc;
  s->nnodes++;
  sim_node_learn_peers(s, i);
  s->ns[i].dirty = 1;
  return i;
}

int sim_node_restart(sim *s, int i) {
  sim_node *n = sim_node_get(s, i);
  if (!n)
    return LC_EINVAL;
  lc__tp_free(n->tp);
  n->tp = NULL;
  sim_drop_held(n); /* never committed: lost with the process */
  n->restarts++;
  sim_trace(s, 0xa00 + (uint64_t)i);
  int rc = sim_node_create_tp(s, n);
  if (rc != 0)
    return rc;
  sim_node_learn_peers(s, i);
  s->ns[i].dirty = 1;
  return 0;
}

static int sim_addr_to_node(const sim *s, const lc__addr *a) {
  if (a->ss.ss_family != AF_INET)
    return -1;
  const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->ss;
  uint32_t ip = ntohl(sin->sin_addr.s_addr);
  if ((ip & 0xffffff00u) != 0x0a000000u || ntohs(sin->sin_port) != SIM_PORT)
    return -1;
  int i = (int)(ip & 0xff) - 1;
  return i >= 0 && i < s->nnodes ? i : -1;
}

/* ---- links -------------------------------------------------------------- */

void sim_link_set(sim *s, int from, int to, const sim_link_params *p) {
  s->links[from][to].p = *p;
}

void sim_link_set_both(sim *s, int a, int b, const sim_link_params *p) {
  sim_link_set(s, a, b, p);
  sim_link_set(s, b, a, p);
}

sim_link_params *sim_link_params_of(sim *s, int from, int to) {
  return &s->links[from][to].p;
}

const sim_link_stats *sim_link_stats_of(const sim *s, int from, int to) {
  return &s->links[from][to].st;
}

void sim_partition(sim *s, int a, int b, int on) {
  s->links[a][b].p.partitioned = on;
  s->links[b][a].p.partitioned = on;
  sim_trace(s, 0xb00 + (uint64_t)on);
}

static uint64_t sim_link_delay(sim *s, const sim_link_params *p) {
  uint64_t d = p->delay_us;
  if (p->jitter_us) {
    uint64_t j = sim_rng_range(&s->link_rng, 0, 2 * p->jitter_us);
    d = d + j >= p->jitter_us ? d + j - p->jitter_us : 0;
  }
  if (p->reorder > 0 && sim_rng_double(&s->link_rng) < p->reorder)
    d += sim_rng_range(&s->link_rng, 0, p->reorder_max_us);
  return d;
}

static void sim_schedule_dgram(sim *s, int from, int to, const uint8_t *buf,
                               size_t len, uint64_t t) {
  sim_event ev;
  memset(&ev, 0, sizeof ev);
  ev.kind = SIM_EV_DGRAM;
  ev.t = t;
  ev.from = from;
  ev.to = to;
  ev.len = len;
  ev.buf = malloc(len ? len : 1);
  if (!ev.buf)
    abort();
  memcpy(ev.buf, buf, len);
  sim_heap_push(s, ev);
}

/* One line per datagram event, for LC_SIM_TRACE. */
static void sim_log_dgram(const sim *s, const char *what, int from, int to,
                          const uint8_t *buf, size_t len, int64_t extra) {
  if (!s->verbose)
    return;
  lc__datagram dg;
  const char *type = "?";
  uint64_t pn = 0;
  uint32_t idx = 0;
  if (lc__wire_decode(&dg, buf, len) == 0) {
    type = dg.type == LC_DG_HELLO     ? "HELLO"
           : dg.type == LC_DG_WELCOME ? "WELCOME"
           : dg.type == LC_DG_DATA    ? "DATA"
                                      : "other";
    if (dg.type == LC_DG_DATA) {
      pn = dg.u.data.packet_number;
      idx = dg.u.data.receiver_index;
    } else if (dg.type == LC_DG_HELLO) {
      idx = dg.u.hello.sender_index;
    } else if (dg.type == LC_DG_WELCOME) {
      idx = dg.u.welcome.receiver_index;
    }
  }
  fprintf(stderr,
          "%12" PRIu64 " %-9s %d -> %d %-7s idx %08x pn %-6" PRIu64
          " %5zu bytes %" PRId64 "\n",
          s->now, what, from, to, type, idx, pn, len, extra);
}

/* A datagram leaves node `from` for address `to_addr`. */
static void sim_transmit(sim *s, int from, const lc__addr *to_addr,
                         uint8_t *buf, size_t len) {
  int to = sim_addr_to_node(s, to_addr);
  sim_trace(s, 0xc00 + (uint64_t)from);
  sim_trace(s, (uint64_t)to);
  sim_trace(s, s->now);
  sim_trace_bytes(s, buf, len);
  s->nodes[from].datagrams_sent++;
  if (len >= LC_DATAGRAM_MAX + 1u || len > s->nodes[from].cfg.max_datagram)
    sim_fail(s, "node %d sent a %zu-byte datagram (max_datagram %zu)", from,
             len, s->nodes[from].cfg.max_datagram);
  if (to < 0 || to == from) {
    s->no_dest++;
    return;
  }
  if (s->filter && s->filter(s->filter_ctx, s, from, to, buf, len))
    return;
  sim_link *l = &s->links[from][to];
  const sim_link_params *p = &l->p;
  l->st.sent++;
  l->st.bytes_sent += len;
  if (p->partitioned) {
    l->st.cut++;
    sim_log_dgram(s, "cut", from, to, buf, len, 0);
    return;
  }
  uint64_t depart = s->now;
  if (p->bandwidth_bps) {
    uint64_t backlog = 0;
    if (l->free_at > s->now)
      backlog = (l->free_at - s->now) * p->bandwidth_bps / 8000000u;
    /* an idle link always takes one datagram, however large */
    if (p->queue_bytes && backlog > 0 && backlog + len > p->queue_bytes) {
      l->st.queue_drops++;
      sim_log_dgram(s, "qdrop", from, to, buf, len, (int64_t)backlog);
      return;
    }
    if (backlog + len > l->st.max_backlog)
      l->st.max_backlog = backlog + len;
    uint64_t start = l->free_at > s->now ? l->free_at : s->now;
    uint64_t tx = ((uint64_t)len * 8u * 1000000u + p->bandwidth_bps - 1) /
                  p->bandwidth_bps;
    l->free_at = start + tx;
    depart = l->free_at;
  }
  if (p->loss > 0 && sim_rng_double(&s->link_rng) < p->loss) {
    l->st.lost++;
    sim_log_dgram(s, "lost", from, to, buf, len, 0);
    return;
  }
  sim_log_dgram(s, "send", from, to, buf, len, 0);
  int copies = 1;
  if (p->dup > 0 && sim_rng_double(&s->link_rng) < p->dup) {
    copies = 2;
    l->st.duplicated++;
  }
  for (int c = 0; c < copies; c++)
    sim_schedule_dgram(s, from, to, buf, len, depart + sim_link_delay(s, p));
}

/* ---- driving the transports --------------------------------------------- */

/* The congestion invariant, after every poll.  emitted: the poll returned
 * a datagram.  After a loss the window shrinks below what is already in
 * flight, so "over the window" alone is not always a fault: in
 * SIM_CWND_ON_SEND mode only a poll that emitted a datagram and grew the
 * bytes in flight beyond the window is one. */
static void sim_check_node(sim *s, int i, int emitted) {
  sim_node *n = &s->nodes[i];
  for (int j = 0; j < s->nnodes; j++) {
    if (j == i)
      continue;
    lc__tp_session_stats st;
    if (lc__tp_session_stats_get(n->tp, s->nodes[j].id.pk, &st) != 0)
      continue;
    uint64_t prev = s->ns[i].in_flight[j];
    s->ns[i].in_flight[j] = st.bytes_in_flight;
    if (st.bytes_in_flight > st.cwnd + s->cwnd_slack) {
      uint64_t over = st.bytes_in_flight - st.cwnd;
      s->over_cwnd++;
      if (over > s->over_cwnd_max)
        s->over_cwnd_max = over;
      int fault = s->cwnd_mode == SIM_CWND_STRICT ||
                  (emitted && st.bytes_in_flight > prev);
      if (fault) {
        s->violations++;
        if (s->violations == 1)
          sim_fail(s,
                   "invariant: node %d -> %d bytes_in_flight %" PRIu64
                   " > cwnd %" PRIu64 "%s",
                   i, j, st.bytes_in_flight, st.cwnd,
                   emitted ? " after sending" : "");
      }
    }
    if (s->poll_hook)
      s->poll_hook(s->poll_hook_ctx, s, i, j, &st);
  }
}

/* Polls node i until it has nothing more to send now.  Returns the number
 * of datagrams sent. */
static uint64_t sim_drain(sim *s, int i) {
  sim_node *n = &s->nodes[i];
  uint64_t count = 0;
  if (!n->tp)
    return 0;
  for (;;) {
    lc__addr to;
    memset(&to, 0, sizeof to);
    sim_commit(s, n); /* as the node: nothing leaves before its commit */
    int len = lc__tp_poll(n->tp, s->now, &to, s->dgram, sizeof s->dgram);
    sim_check_node(s, i, len > 0);
    if (len < 0) {
      sim_fail(s, "lc__tp_poll on node %d returned %s", i, lc_err_name(len));
      break;
    }
    if (len == 0 && sim_commit(s, n)) /* what the poll handed over */
      continue;
    if (len == 0)
      break;
    count++;
    sim_transmit(s, i, &to, s->dgram, (size_t)len);
    if (count > SIM_MAX_BURST) {
      sim_fail(s, "node %d: runaway burst of %" PRIu64 " datagrams", i, count);
      break;
    }
  }
  if (count > n->max_burst)
    n->max_burst = count;
  return count;
}

static void sim_deliver(sim *s, const sim_event *ev) {
  sim_link *l = &s->links[ev->from][ev->to];
  if (l->p.partitioned) {
    l->st.cut++;
    sim_log_dgram(s, "cut", ev->from, ev->to, ev->buf, ev->len, 1);
    return;
  }
  sim_node *n = &s->nodes[ev->to];
  if (!n->tp)
    return;
  l->st.delivered++;
  sim_trace(s, 0xd00 + (uint64_t)ev->to);
  sim_trace(s, s->now);
  int rc =
      lc__tp_recv(n->tp, &s->nodes[ev->from].addr, ev->buf, ev->len, s->now);
  sim_trace(s, (uint64_t)(int64_t)rc);
  sim_log_dgram(s, rc == 0 ? "recv" : "recv-drop", ev->from, ev->to, ev->buf,
                ev->len, rc);
  sim_drain(s, ev->to);
}

/* One step: returns 0 after doing something, 1 if nothing is due up to
 * limit (the clock is not moved), -1 after a failure. */
static int sim_step(sim *s, uint64_t limit) {
  if (s->failed)
    return -1;
  for (int i = 0; i < s->nnodes; i++) {
    if (s->ns[i].dirty) {
      s->ns[i].dirty = 0;
      sim_drain(s, i);
      return s->failed ? -1 : 0;
    }
  }
  uint64_t t = LC_NEVER;
  if (s->nheap > 0)
    t = s->heap[0].t;
  for (int i = 0; i < s->nnodes; i++) {
    if (!s->nodes[i].tp)
      continue;
    uint64_t w = lc__tp_next_wakeup(s->nodes[i].tp);
    if (w < t)
      t = w;
  }
  if (t == LC_NEVER || t > limit)
    return 1;
  if (t > s->now)
    s->now = t;
  s->events++;
  if (s->nheap > 0 && s->heap[0].t <= s->now) {
    sim_event ev = sim_heap_pop(s);
    if (ev.kind == SIM_EV_DGRAM)
      sim_deliver(s, &ev);
    else if (ev.kind == SIM_EV_TIMER)
      ev.fn(ev.ctx, s);
    free(ev.buf);
    return s->failed ? -1 : 0;
  }
  int stalled = 0;
  for (int i = 0; i < s->nnodes; i++) {
    sim_node *n = &s->nodes[i];
    if (!n->tp || lc__tp_next_wakeup(n->tp) > s->now)
      continue;
    uint64_t sent = sim_drain(s, i);
    if (sent == 0 && n->tp && lc__tp_next_wakeup(n->tp) <= s->now) {
      /* due, but did nothing and is still due: nudge the clock */
      s->stalls++;
      stalled = 1;
      if (++s->ns[i].stalls > SIM_MAX_STALLS)
        sim_fail(s,
                 "livelock: node %d due (next_wakeup %" PRIu64
                 ") but poll returns nothing, %u times in a row",
                 i, lc__tp_next_wakeup(n->tp), s->ns[i].stalls);
    } else {
      s->ns[i].stalls = 0;
    }
  }
  if (stalled && s->now < limit)
    s->now++;
  return s->failed ? -1 : 0;
}

int sim_run_until(sim *s, uint64_t t) {
  int r;
  while ((r = sim_step(s, t)) == 0)
    ;
  if (r < 0)
    return -1;
  if (t > s->now)
    s->now = t;
  return 0;
}

int sim_run_while(sim *s, sim_pred_fn *pred, void *ctx, uint64_t deadline) {
  while (pred(ctx, s)) {
    int r = sim_step(s, deadline);
    if (r < 0)
      return -1;
    if (r == 1) {
      if (deadline > s->now)
        s->now = deadline;
      return pred(ctx, s) ? 1 : 0;
    }
  }
  return 0;
}

/* ---- workload helpers --------------------------------------------------- */

void sim_touch(sim *s, int node) {
  if (node >= 0 && node < s->nnodes)
    s->ns[node].dirty = 1;
}

void sim_at(sim *s, uint64_t t, sim_timer_fn *fn, void *ctx) {
  sim_event ev;
  memset(&ev, 0, sizeof ev);
  ev.kind = SIM_EV_TIMER;
  ev.t = t < s->now ? s->now : t;
  ev.fn = fn;
  ev.ctx = ctx;
  sim_heap_push(s, ev);
}

void sim_inject(sim *s, int from, int to, const uint8_t *buf, size_t len,
                uint64_t t) {
  sim_trace(s, 0xe00 + (uint64_t)to);
  sim_schedule_dgram(s, from, to, buf, len, t < s->now ? s->now : t);
}

void sim_set_filter(sim *s, sim_filter_fn *fn, void *ctx) {
  s->filter = fn;
  s->filter_ctx = ctx;
}

void sim_set_poll_hook(sim *s, sim_poll_fn *fn, void *ctx) {
  s->poll_hook = fn;
  s->poll_hook_ctx = ctx;
}

void sim_set_event_hook(sim *s, sim_event_fn *fn, void *ctx) {
  s->event_hook = fn;
  s->event_hook_ctx = ctx;
}

void sim_set_cwnd_slack(sim *s, uint64_t bytes) {
  s->cwnd_slack = bytes;
}

void sim_set_cwnd_mode(sim *s, int mode) {
  s->cwnd_mode = mode;
}

uint64_t sim_over_cwnd(const sim *s, uint64_t *max_over) {
  if (max_over)
    *max_over = s->over_cwnd_max;
  return s->over_cwnd;
}

#define SIM_ID_MAGIC 0x5a

void sim_msg_id(int sender, uint64_t counter, uint8_t out[LC_MSG_ID_BYTES]) {
  memset(out, 0, LC_MSG_ID_BYTES);
  out[0] = SIM_ID_MAGIC;
  out[1] = (uint8_t)sender;
  for (int i = 0; i < 8; i++)
    out[4 + i] = (uint8_t)(counter >> (56 - 8 * i));
}

/* Returns the counter of a sim message id, or UINT64_MAX if it is not
 * one. */
static uint64_t sim_msg_id_counter(const uint8_t id[LC_MSG_ID_BYTES],
                                   int *sender) {
  if (id[0] != SIM_ID_MAGIC)
    return UINT64_MAX;
  uint64_t c = 0;
  for (int i = 0; i < 8; i++)
    c = (c << 8) | id[4 + i];
  if (sender)
    *sender = id[1];
  return c;
}

void sim_msg_fill(int sender, uint64_t counter, uint8_t *buf, size_t len) {
  sim_rng r;
  sim_rng_seed(&r,
               ((uint64_t)sender << 56) ^ (counter * 0x9e3779b97f4a7c15ull));
  sim_rng_fill(&r, buf, len);
}

static int sim_send_logged(sim *s, int from, int to, uint64_t counter,
                           const uint8_t *data, size_t len) {
  sim_node *n = sim_node_get(s, from);
  if (!n || !sim_node_get(s, to))
    return LC_EINVAL;
  uint8_t id[LC_MSG_ID_BYTES];
  sim_msg_id(from, counter, id);
  int rc = lc__tp_send_msg(n->tp, s->nodes[to].id.pk, id, data, len, s->now);
  sim_trace(s, 0xf00 + (uint64_t)from);
  sim_trace(s, (uint64_t)(int64_t)rc);
  s->ns[from].dirty = 1;
  if (rc == 0) {
    sim_sent *e = SIM_PUSH(n->sent, n->nsent, n->sent_cap);
    e->to = to;
    e->counter = counter;
    memcpy(e->msg_id, id, LC_MSG_ID_BYTES);
    e->len = len;
    e->hash = sim_hash(data, len);
    e->time = s->now;
    s->ns[from].sent_to[to]++;
  }
  return rc;
}

int sim_send_msg(sim *s, int from, int to, size_t len) {
  sim_node *n = sim_node_get(s, from);
  if (!n)
    return LC_EINVAL;
  uint8_t *buf = malloc(len ? len : 1);
  if (!buf)
    return LC_ENOMEM;
  uint64_t counter = n->counter++;
  sim_msg_fill(from, counter, buf, len);
  int rc = sim_send_logged(s, from, to, counter, buf, len);
  free(buf);
  return rc;
}

int sim_send_msg_data(sim *s, int from, int to, const uint8_t *data,
                      size_t len) {
  sim_node *n = sim_node_get(s, from);
  if (!n)
    return LC_EINVAL;
  return sim_send_logged(s, from, to, n->counter++, data, len);
}

int sim_send_unreliable(sim *s, int from, int to, const uint8_t *data,
                        size_t len) {
  sim_node *n = sim_node_get(s, from);
  if (!n || !sim_node_get(s, to))
    return LC_EINVAL;
  int rc = lc__tp_send_unreliable(n->tp, s->nodes[to].id.pk, data, len, s->now);
  s->ns[from].dirty = 1;
  return rc;
}

/* ---- checks ------------------------------------------------------------- */

int sim_all_delivered(sim *s, int from, int to, int want_acked) {
  if (s->ns[to].delivered_from[from] < s->ns[from].sent_to[to])
    return 0;
  if (want_acked && s->ns[from].acked_to[to] < s->ns[from].sent_to[to])
    return 0;
  return 1;
}

int sim_check_delivery(sim *s, int from, int to, int want_acked) {
  sim_node *src = sim_node_get(s, from), *dst = sim_node_get(s, to);
  if (!src || !dst)
    return -1;
  int bad = 0;
  /* in order, exactly once, intact */
  size_t k = 0, nseen = 0;
  for (size_t i = 0; i < dst->nmsgs && !bad; i++) {
    const sim_msg *m = &dst->msgs[i];
    if (m->peer != from)
      continue;
    nseen++;
    while (k < src->nsent && src->sent[k].to != to)
      k++;
    if (k >= src->nsent) {
      int sender = -1;
      uint64_t c = sim_msg_id_counter(m->msg_id, &sender);
      sim_report(s,
                 "node %d got an extra message from %d (sender %d counter "
                 "%" PRIu64 ", %zu bytes) at t=%" PRIu64,
                 to, from, sender, c, m->len, m->time);
      bad = 1;
      break;
    }
    const sim_sent *e = &src->sent[k];
    if (memcmp(e->msg_id, m->msg_id, LC_MSG_ID_BYTES) != 0) {
      int sender = -1;
      uint64_t c = sim_msg_id_counter(m->msg_id, &sender);
      sim_report(s,
                 "node %d: message #%zu from %d is counter %" PRIu64
                 " but counter %" PRIu64 " was expected (duplicate, loss or "
                 "reordering) at t=%" PRIu64,
                 to, nseen - 1, from, c, e->counter, m->time);
      bad = 1;
      break;
    }
    if (e->len != m->len || e->hash != sim_hash(m->data, m->len)) {
      sim_report(s,
                 "node %d: message counter %" PRIu64 " from %d corrupted: "
                 "%zu bytes, expected %zu",
                 to, e->counter, from, m->len, e->len);
      bad = 1;
      break;
    }
    k++;
  }
  if (!bad) {
    size_t expected = 0;
    for (size_t i = 0; i < src->nsent; i++)
      expected += src->sent[i].to == to;
    if (nseen != expected) {
      size_t first_missing = 0;
      for (size_t i = 0, seen = 0; i < src->nsent; i++) {
        if (src->sent[i].to != to)
          continue;
        if (seen++ == nseen) {
          first_missing = i;
          break;
        }
      }
      sim_report(s,
                 "node %d got %zu of %zu messages from %d; first missing: "
                 "counter %" PRIu64 " (%zu bytes, sent at t=%" PRIu64 ")",
                 to, nseen, expected, from, src->sent[first_missing].counter,
                 src->sent[first_missing].len, src->sent[first_missing].time);
      bad = 1;
    }
  }
  /* acknowledged exactly once, none failed */
  if (!bad && want_acked) {
    uint8_t *seen = calloc(src->counter ? src->counter : 1, 1);
    if (!seen)
      abort();
    size_t nacks = 0;
    for (size_t i = 0; i < src->nacked && !bad; i++) {
      const sim_ack *a = &src->acked[i];
      if (a->peer != to)
        continue;
      int sender = -1;
      uint64_t c = sim_msg_id_counter(a->msg_id, &sender);
      if (c >= src->counter || sender != from) {
        sim_report(s, "node %d: ack for an unknown message id", from);
        bad = 1;
      } else if (seen[c]++) {
        sim_report(s, "node %d: message counter %" PRIu64 " acked twice", from,
                   c);
        bad = 1;
      }
      nacks++;
    }
    for (size_t i = 0; i < src->nsent && !bad; i++) {
      if (src->sent[i].to == to && !seen[src->sent[i].counter]) {
        sim_report(s,
                   "node %d: message counter %" PRIu64 " to %d never acked "
                   "(%zu acks in all)",
                   from, src->sent[i].counter, to, nacks);
        bad = 1;
      }
    }
    free(seen);
  }
  for (size_t i = 0; i < src->nfailed && !bad; i++) {
    if (src->failed[i].peer == to) {
      sim_report(s, "node %d: message to %d failed: %s", from, to,
                 lc_err_name(src->failed[i].err));
      bad = 1;
    }
  }
  return bad ? -1 : 0;
}

int sim_pred_pending(void *ctx, sim *s) {
  (void)ctx;
  int n = sim_node_count(s);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++)
      if (i != j && !sim_all_delivered(s, i, j, 1))
        return 1;
  return 0;
}
