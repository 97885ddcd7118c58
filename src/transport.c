/* transport.c: sessions, handshakes, loss detection, congestion control and
 * streams, as a sans-I/O state machine (see transport.h).
 *
 * Layout of one peer's state: the handshake (pending HELLO or WELCOME), up
 * to LC_KP_SLOTS keypairs (so rekeys and crossed handshakes never drop a
 * packet), RFC 9002 recovery state over one packet number space, and three
 * kinds of payload: chat messages (reliable, ordered, fragmented), bulk
 * streams (reliable, written at their offset), unreliable datagrams.
 */
#include "transport.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "ranges.h"

#define LC_KP_SLOTS 3
#define LC_REFS_MAX 24
#define LC_GRANULARITY_US 1000
#define LC_PACKET_THRESHOLD 3
#define LC_INITIAL_MSG_CREDIT 256
#define LC_INITIAL_BULK_CREDIT (1u << 20)
#define LC_ACK_RESERVE 160 /* payload bytes kept free for ACK + credit */
/* A bulk chunk leaves room for a small ACK only (a bulk sender mostly
 * acknowledges one range of its peer's ACKs); a larger one goes in a
 * packet of its own and the chunk in the next. */
#define LC_BULK_ACK_RESERVE 64
#define LC_RECV_PN_RANGES 128
#define LC_SENT_MAX 16384 /* packets tracked per session */
#define LC_UNREL_QUEUE 32
#define LC_UNREL_MAX_AGE_US 500000
#define LC_HS_MIN_RETRY_US 50000
#define LC_PERSISTENT_CONGESTION_THRESHOLD 3

/* ---- per-packet bookkeeping ------------------------------------------ */
enum {
  REF_MSG = 1,
  REF_BULK = 2,
  REF_MSG_CREDIT = 3,
  REF_BULK_CREDIT = 4,
  REF_UNREL = 5,
  REF_PING = 6
};

typedef struct {
  uint8_t kind;
  uint32_t idx; /* fragment or chunk index */
  uint64_t id;  /* message seq or stream id */
} tp_ref;

/* LOST packets stay known for a while: a late ACK for one still counts
 * for its data and for the RTT (spurious loss), which is what lets a sender
 * whose timers fired too early (a slow link, a queue) recover. */
enum { SENT_NONE = 0, SENT_OUTSTANDING = 1, SENT_DONE = 2, SENT_LOST = 3 };

typedef struct {
  uint64_t pn;
  uint64_t time_sent;
  uint32_t size;
  uint8_t ack_eliciting;
  uint8_t in_flight;
  uint8_t state;
  uint8_t nrefs;
  tp_ref refs[LC_REFS_MAX];
} tp_sent;

enum { FRAG_UNSENT = 0, FRAG_INFLIGHT = 1, FRAG_ACKED = 2, FRAG_LOST = 3 };

/* A chat message we sent and the peer has not fully acknowledged.  Owned by
 * the peer's out ring. */
typedef struct {
  uint64_t seq;
  uint8_t id[LC_MSG_ID_BYTES];
  uint8_t *data;
  uint32_t len;
  uint32_t frag_size;
  uint32_t nfrags, nacked, next_unsent;
  uint8_t *fstate;
} tp_out_msg;

/* A chat message being reassembled.  Owned by the peer's in ring. */
typedef struct {
  uint64_t seq;
  uint8_t id[LC_MSG_ID_BYTES];
  uint32_t total;
  uint8_t *buf;
  lc__rangeset got;
  int handed; /* the application has it, its commit is pending (hold) */
} tp_in_msg;

typedef struct {
  uint64_t seq;
  uint32_t idx;
  uint8_t kind; /* REF_MSG or REF_BULK (then seq is the stream id) */
} tp_rtx;

typedef struct {
  uint8_t *data;
  uint32_t len;
  uint8_t state;
  uint8_t fin;
} tp_chunk;

/* An outgoing bulk stream; chunks are fixed-size pieces of the stream,
 * chunk i at offset i * chunk_size. */
typedef struct {
  int used;
  uint32_t id;
  uint32_t chunk_size;
  tp_chunk *chunks; /* ring, capacity chunk_cap, from base_chunk */
  uint64_t chunk_cap, base_chunk, nchunks, next_unsent;
  uint64_t written;
  int fin;
  uint64_t peer_max_offset;
  size_t buffered;
} tp_bulk_out;

typedef struct {
  int used;
  int done; /* finished but not recordable in bin_done: kept as a marker */
  uint32_t id;
  lc__rangeset got;
  uint64_t final_size;
  int has_final;
  uint64_t granted;
  int credit_pending;
} tp_bulk_in;

typedef struct {
  uint8_t *data;
  size_t len;
  uint64_t queued_at;
} tp_unrel;

/* A FIFO of fragments or chunks declared lost, to be sent again. */
typedef struct {
  tp_rtx *v;
  uint64_t cap, head, tail;
} tp_fifo;

typedef struct {
  int used;
  int confirmed;
  int initiator; /* we sent the HELLO behind these keys */
  uint64_t installed_at;
  uint64_t incarnation; /* the peer's, from the handshake */
  lc__keypair kp;
} tp_kslot;

/* Everything lanchat knows about one peer.  Owned by lc__tp.peers. */
typedef struct {
  uint8_t pk[LC_PK_BYTES];
  lc__addr addr;
  int has_addr;

  /* handshake as initiator */
  int hs_active;
  lc__hs hs;
  lc__hello hello;
  /* The two attempts before hs, still answerable: on a path whose RTT
   * exceeds the retry interval, the WELCOME to an earlier HELLO is the one
   * that arrives. */
  lc__hs hs_old[2];
  uint64_t hs_old_sent[2];
  unsigned hs_old_n;
  uint64_t hs_sent_at, hs_retry_at;
  unsigned hs_attempts;
  int hs_send_now;
  /* handshake as responder: a WELCOME waiting to go out */
  int welcome_pending;
  lc__welcome welcome;
  uint64_t last_peer_ts; /* newest HELLO timestamp accepted */
  /* Incarnations name one life of the session state on each side: ours is
   * drawn afresh whenever we forget the session, and a change in the
   * peer's tells us it forgot (restart, idle timeout, close). */
  uint64_t incarnation;
  uint64_t peer_incarnation;
  int have_peer_incarnation;

  tp_kslot ks[LC_KP_SLOTS];
  int cur; /* slot we seal with, -1 none */
  int established;
  int greet_pending; /* initiator owes a first packet to confirm keys */
  int ping_pending;

  /* recovery (RFC 9002) */
  uint64_t next_pn;
  tp_sent *sent;
  uint64_t sent_cap, first_pn;
  uint64_t largest_acked;
  int any_acked;
  uint64_t latest_rtt, smoothed_rtt, rttvar, min_rtt;
  int has_rtt;
  uint64_t loss_time;
  uint64_t last_ack_eliciting_sent;
  unsigned pto_count;
  unsigned probes;
  uint64_t bytes_in_flight, cwnd, ssthresh, recovery_start;
  int in_recovery_any;
  double pace_tokens;
  uint64_t pace_last;

  /* receiving */
  lc__rangeset recv_pns;
  uint64_t largest_recv, largest_recv_time;
  int any_recv;
  int ack_dirty;  /* packets arrived since our last ACK frame */
  int ack_needed; /* an ack-eliciting packet is unacknowledged */
  unsigned unacked_eliciting;
  uint64_t ack_deadline;
  uint64_t last_recv_time, last_send_time;

  /* chat out */
  tp_out_msg *out; /* ring indexed by seq - out_base */
  uint64_t out_cap, out_base, next_seq;
  uint64_t send_cursor; /* first seq that may have unsent fragments */
  uint64_t peer_max_seq;
  uint64_t peer_delivered; /* every seq below reached the peer's app */
  tp_fifo rtx_msg, rtx_bulk;
  size_t send_bytes;
  uint64_t ae_in_flight; /* ack-eliciting packets outstanding */

  /* chat in */
  tp_in_msg **in; /* msg_window slots, slot = seq % msg_window */
  uint64_t next_deliver;
  uint64_t committed;    /* hold_delivered: what DELIVERED may claim; the
                            messages from here to next_deliver stay in their
                            slots until lc__tp_commit */
  uint64_t redeliver_at; /* the application refused a message: offer it
                            again then (0: none waiting) */
  int ping_on_commit;    /* hold_delivered: a redelivery awaits its commit */
  uint64_t granted_seq;
  int msg_credit_pending;
  size_t reasm_bytes;

  /* bulk */
  tp_bulk_out *bout;
  tp_bulk_in *bin;
  uint32_t next_bulk_id;
  lc__rangeset bin_done; /* ids of finished incoming streams */

  tp_unrel unrel[LC_UNREL_QUEUE];
  unsigned unrel_head, unrel_n;

  int close_pending;
  int64_t close_code;

  lc__tp_session_stats st;
} tp_peer;

/* A token bucket: `rate` a second, up to `burst` at once. */
typedef struct {
  double tokens;
  uint64_t last;
} tp_bucket;

/* HELLOs cost a Diffie-Hellman each before a forged one fails (~40 us):
 * at most LC_HS_SRC_RATE a second are read from one source address (IP
 * and port: several peers may share a host), and LC_HS_RATE from all
 * addresses together except those where discovery or a session put a
 * peer (a flood of random HELLOs must not keep known peers out). */
#define LC_HS_RATE 1000.0
#define LC_HS_BURST 200.0
#define LC_HS_SRC_RATE 20.0
#define LC_HS_SRC_BURST 20.0
#define LC_HS_SRC_SLOTS 256

typedef struct {
  uint8_t ip[18]; /* the address, then the port */
  tp_bucket b;
} tp_src_bucket;

struct lc__tp {
  lc__identity id;
  lc__tp_config cfg;
  uint64_t last_hs_ts;
  tp_peer **peers;
  size_t npeers, peers_cap;
  size_t rr;
  int holding; /* hold_delivered: some peer has handed messages */
  uint64_t now;
  lc__tp_stats stats;
  uint8_t pt[LC_DATAGRAM_MAX];
  uint8_t ct[LC_DATAGRAM_MAX];
  tp_bucket hs_all;
  tp_src_bucket hs_src[LC_HS_SRC_SLOTS];
};

/* ---- small helpers ---------------------------------------------------- */

static uint64_t tp_min(uint64_t a, uint64_t b) {
  return a < b ? a : b;
}
static uint64_t tp_max(uint64_t a, uint64_t b) {
  return a > b ? a : b;
}

int lc__addr_equal(const lc__addr *a, const lc__addr *b) {
  if (a->ss.ss_family != b->ss.ss_family)
    return 0;
  if (a->ss.ss_family == AF_INET) {
    const struct sockaddr_in *x = (const struct sockaddr_in *)&a->ss;
    const struct sockaddr_in *y = (const struct sockaddr_in *)&b->ss;
    return x->sin_port == y->sin_port &&
           x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a->ss.ss_family == AF_INET6) {
    const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)&a->ss;
    const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)&b->ss;
    return x->sin6_port == y->sin6_port &&
           x->sin6_scope_id == y->sin6_scope_id &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
  }
  return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

void lc__tp_config_default(lc__tp_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->max_datagram = 1472;
  cfg->initial_rtt_us = 100000;
  cfg->max_ack_delay_us = 2000;
  cfg->pto_max_us = 1000000;
  cfg->idle_timeout_us = 0;
  cfg->keepalive_us = 0;
  cfg->rekey_after_us = 120ull * 1000000;
  cfg->rekey_after_packets = 1ull << 48;
  cfg->max_sessions = 1024;
  cfg->max_msg_bytes = 1u << 20;
  cfg->max_send_bytes = 64u << 20;
  cfg->max_reassembly_bytes = 8u << 20;
  cfg->msg_window = 4096;
  cfg->bulk_window = 16u << 20;
  cfg->max_bulk_streams = 64;
  cfg->loss_tolerant = 1;
  cfg->random = lc__crypto_random_cb;
}

/* Bytes of plaintext one packet can carry at the configured datagram size. */
static size_t tp_payload_budget(const lc__tp *tp) {
  size_t dg = tp->cfg.max_datagram;
  size_t ovh = lc__wire_data_overhead(UINT32_MAX, UINT64_MAX, dg);
  if (dg <= ovh + LC_TAG_BYTES + 64)
    return 0;
  return dg - ovh - LC_TAG_BYTES;
}

static uint32_t tp_msg_frag_size(const lc__tp *tp) {
  lc__frame f;
  memset(&f, 0, sizeof f);
  f.type = LC_FR_MSG;
  f.u.msg.seq = UINT64_MAX;
  f.u.msg.total_len = UINT32_MAX;
  f.u.msg.offset = UINT32_MAX;
  /* 3 bytes: the payload's array header */
  return (uint32_t)lc__frame_max_data(&f, tp_payload_budget(tp) - 3 -
                                              LC_ACK_RESERVE);
}

static uint32_t tp_bulk_chunk_size(const lc__tp *tp) {
  lc__frame f;
  memset(&f, 0, sizeof f);
  f.type = LC_FR_BULK;
  f.u.bulk.stream_id = UINT32_MAX;
  f.u.bulk.offset = UINT64_MAX;
  f.u.bulk.fin = 1;
  return (uint32_t)lc__frame_max_data(&f, tp_payload_budget(tp) - 3 -
                                              LC_BULK_ACK_RESERVE);
}

static uint64_t tp_mds(const lc__tp *tp) {
  return tp->cfg.max_datagram;
}

static uint64_t tp_min_cwnd(const lc__tp *tp) {
  return 2 * tp_mds(tp);
}

static uint64_t tp_initial_cwnd(const lc__tp *tp) {
  return tp_min(10 * tp_mds(tp), tp_max(14720, 2 * tp_mds(tp)));
}

/* ---- peers ------------------------------------------------------------ */

static tp_peer *tp_find(const lc__tp *tp, const uint8_t pk[LC_PK_BYTES]) {
  for (size_t i = 0; i < tp->npeers; i++)
    if (memcmp(tp->peers[i]->pk, pk, LC_PK_BYTES) == 0)
      return tp->peers[i];
  return NULL;
}

static void tp_recovery_reset(lc__tp *tp, tp_peer *p) {
  p->largest_acked = 0;
  p->any_acked = 0;
  p->loss_time = 0;
  p->pto_count = 0;
  p->probes = 0;
  p->bytes_in_flight = 0;
  p->cwnd = tp_initial_cwnd(tp);
  p->ssthresh = UINT64_MAX;
  p->recovery_start = 0;
  p->in_recovery_any = 0;
  p->pace_tokens = (double)p->cwnd;
  p->pace_last = tp->now;
  p->first_pn = p->next_pn;
  for (uint64_t i = 0; i < p->sent_cap; i++)
    p->sent[i].state = SENT_NONE;
}

static void tp_in_free(tp_in_msg *m) {
  if (!m)
    return;
  free(m->buf);
  lc__rs_free(&m->got);
  free(m);
}

static void tp_bulk_out_free(tp_bulk_out *b) {
  if (!b->used)
    return;
  for (uint64_t c = b->base_chunk; c < b->nchunks; c++)
    free(b->chunks[c % b->chunk_cap].data);
  free(b->chunks);
  memset(b, 0, sizeof *b);
}

static void tp_bulk_in_free(tp_bulk_in *b) {
  if (!b->used)
    return;
  lc__rs_free(&b->got);
  memset(b, 0, sizeof *b);
}

/* Forgets everything the session knew about the stream of packets and
 * incoming data.  Outgoing chat messages survive: the caller decides
 * whether to fail them or send them again. */
static void tp_session_reset_receive(lc__tp *tp, tp_peer *p) {
  lc__rs_free(&p->recv_pns);
  lc__rs_init(&p->recv_pns, LC_RECV_PN_RANGES);
  p->largest_recv = 0;
  p->any_recv = 0;
  p->ack_needed = 0;
  p->unacked_eliciting = 0;
  for (uint64_t i = 0; p->in && i < tp->cfg.msg_window; i++) {
    tp_in_free(p->in[i]);
    p->in[i] = NULL;
  }
  p->next_deliver = 0;
  p->committed = 0;
  p->redeliver_at = 0;
  p->ping_on_commit = 0;
  p->granted_seq = LC_INITIAL_MSG_CREDIT;
  p->msg_credit_pending = 1;
  p->reasm_bytes = 0;
  for (uint32_t i = 0; i < tp->cfg.max_bulk_streams; i++)
    tp_bulk_in_free(&p->bin[i]);
  lc__rs_free(&p->bin_done);
  lc__rs_init(&p->bin_done, tp->cfg.max_bulk_streams + 2);
}

static void tp_hs_clear(tp_peer *p);
static void tp_peer_free(lc__tp *tp, tp_peer *p);

/* Nothing queued for the peer: no chat, no bulk stream. */
static int tp_peer_idle_queues(const lc__tp *tp, const tp_peer *p) {
  if (p->next_seq != p->out_base)
    return 0;
  for (uint32_t i = 0; i < tp->cfg.max_bulk_streams; i++)
    if (p->bout[i].used)
      return 0;
  return 1;
}

/* An entry that holds nothing but an address and a replay timestamp: no
 * keys, no handshake, nothing queued.  It may make room for a newcomer. */
static int tp_peer_idle(const lc__tp *tp, const tp_peer *p) {
  return p->cur < 0 && !p->hs_active && !p->welcome_pending &&
         !p->established && tp_peer_idle_queues(tp, p);
}

/* Frees the least recently heard idle entry; 0 if one was freed. */
static int tp_peer_evict(lc__tp *tp) {
  size_t victim = SIZE_MAX;
  for (size_t i = 0; i < tp->npeers; i++)
    if (tp_peer_idle(tp, tp->peers[i]) &&
        (victim == SIZE_MAX ||
         tp->peers[i]->last_recv_time < tp->peers[victim]->last_recv_time))
      victim = i;
  if (victim == SIZE_MAX)
    return -1;
  tp_peer_free(tp, tp->peers[victim]);
  tp->peers[victim] = tp->peers[--tp->npeers];
  tp->rr = 0;
  return 0;
}

static tp_peer *tp_peer_new(lc__tp *tp, const uint8_t pk[LC_PK_BYTES]) {
  if (tp->npeers >= tp->cfg.max_sessions && tp_peer_evict(tp) < 0)
    return NULL;
  if (tp->npeers == tp->peers_cap) {
    size_t nc = tp->peers_cap ? tp->peers_cap * 2 : 8;
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
    tp_peer **np = realloc(tp->peers, nc * sizeof *np);
    if (!np)
      return NULL;
    tp->peers = np;
    tp->peers_cap = nc;
  }
  tp_peer *p = calloc(1, sizeof *p);
  if (!p)
    return NULL;
  p->bout = calloc(tp->cfg.max_bulk_streams, sizeof *p->bout);
  p->bin = calloc(tp->cfg.max_bulk_streams, sizeof *p->bin);
  p->sent_cap = 16;
  p->sent = calloc(p->sent_cap, sizeof *p->sent);
  p->out_cap = 16;
  p->out = calloc(p->out_cap, sizeof *p->out);
  if (!p->bout || !p->bin || !p->sent || !p->out) {
    free(p->bout);
    free(p->bin);
    free(p->sent);
    free(p->out);
    free(p);
    return NULL;
  }
  tp->cfg.random(tp->cfg.random_ctx, &p->incarnation, sizeof p->incarnation);
  memcpy(p->pk, pk, LC_PK_BYTES);
  p->cur = -1;
  p->peer_max_seq = LC_INITIAL_MSG_CREDIT;
  lc__rs_init(&p->recv_pns, LC_RECV_PN_RANGES);
  lc__rs_init(&p->bin_done, tp->cfg.max_bulk_streams + 2);
  p->smoothed_rtt = tp->cfg.initial_rtt_us;
  p->rttvar = tp->cfg.initial_rtt_us / 2;
  p->min_rtt = 0;
  tp_recovery_reset(tp, p);
  tp_session_reset_receive(tp, p);
  p->msg_credit_pending = 0;
  tp->peers[tp->npeers++] = p;
  return p;
}

static void tp_out_msg_free(tp_out_msg *m) {
  free(m->data);
  free(m->fstate);
  memset(m, 0, sizeof *m);
}

static void tp_peer_free(lc__tp *tp, tp_peer *p) {
  for (uint64_t s = p->out_base; s < p->next_seq; s++)
    tp_out_msg_free(&p->out[s % p->out_cap]);
  for (uint64_t i = 0; i < tp->cfg.msg_window; i++)
    tp_in_free(p->in ? p->in[i] : NULL);
  for (uint32_t i = 0; i < tp->cfg.max_bulk_streams; i++) {
    tp_bulk_out_free(&p->bout[i]);
    tp_bulk_in_free(&p->bin[i]);
  }
  for (int i = 0; i < LC_KP_SLOTS; i++)
    lc__keypair_wipe(&p->ks[i].kp);
  tp_hs_clear(p);
  lc__rs_free(&p->recv_pns);
  lc__rs_free(&p->bin_done);
  free(p->in);
  free(p->bout);
  free(p->bin);
  free(p->sent);
  free(p->out);
  free(p->rtx_msg.v);
  free(p->rtx_bulk.v);
  for (unsigned i = 0; i < p->unrel_n; i++)
    free(p->unrel[(p->unrel_head + i) % LC_UNREL_QUEUE].data);
  free(p);
}

int lc__tp_new(lc__tp **out, const lc__identity *id, const lc__tp_config *cfg) {
  *out = NULL;
  if (!id || !cfg || !cfg->random || cfg->max_datagram < 512 ||
      cfg->max_datagram >= LC_DATAGRAM_MAX || cfg->msg_window < 16 ||
      cfg->msg_window < LC_INITIAL_MSG_CREDIT ||
      cfg->bulk_window < LC_INITIAL_BULK_CREDIT || cfg->max_sessions == 0 ||
      cfg->max_bulk_streams == 0 ||
      cfg->max_reassembly_bytes < 2 * cfg->max_msg_bytes ||
      cfg->initial_rtt_us == 0 || cfg->pto_max_us == 0)
    return LC_EINVAL;
  if (lc__crypto_init() != 0)
    return LC_ECRYPTO;
  lc__tp *tp = calloc(1, sizeof *tp);
  if (!tp)
    return LC_ENOMEM;
  tp->id = *id;
  tp->cfg = *cfg;
  if (tp_msg_frag_size(tp) < 256) {
    free(tp);
    return LC_EINVAL;
  }
  *out = tp;
  return 0;
}

void lc__tp_free(lc__tp *tp) {
  if (!tp)
    return;
  for (size_t i = 0; i < tp->npeers; i++)
    tp_peer_free(tp, tp->peers[i]);
  free(tp->peers);
  lc__identity_wipe(&tp->id);
  free(tp);
}

/* ---- retransmission FIFOs ----------------------------------------------- */

static int tp_fifo_push(tp_fifo *f, uint8_t kind, uint64_t seq, uint32_t idx) {
  if (f->tail - f->head == f->cap) {
    uint64_t nc = f->cap ? f->cap * 2 : 64;
    tp_rtx *nv = malloc(nc * sizeof *nv);
    if (!nv)
      return LC_ENOMEM;
    for (uint64_t i = f->head; i < f->tail; i++)
      /* cap is never 0 here: an empty ring runs no iteration */
      nv[i % nc] = f->v[i % f->cap]; // NOLINT(clang-analyzer-core.DivideZero)
    free(f->v);
    f->v = nv;
    f->cap = nc;
  }
  tp_rtx *r = &f->v[f->tail % f->cap];
  r->kind = kind;
  r->seq = seq;
  r->idx = idx;
  f->tail++;
  return 0;
}

static void tp_fifo_clear(tp_fifo *f) {
  f->head = f->tail = 0;
}

/* ---- out-of-order structures addressed by sequence -------------------- */

static tp_out_msg *tp_out_get(tp_peer *p, uint64_t seq) {
  if (seq < p->out_base || seq >= p->next_seq)
    return NULL;
  return &p->out[seq % p->out_cap];
}

static tp_bulk_out *tp_bout_find(const lc__tp *tp, tp_peer *p, uint32_t id) {
  for (uint32_t i = 0; i < tp->cfg.max_bulk_streams; i++)
    if (p->bout[i].used && p->bout[i].id == id)
      return &p->bout[i];
  return NULL;
}

static tp_bulk_in *tp_bin_find(const lc__tp *tp, tp_peer *p, uint32_t id) {
  for (uint32_t i = 0; i < tp->cfg.max_bulk_streams; i++)
    if (p->bin[i].used && p->bin[i].id == id)
      return &p->bin[i];
  return NULL;
}

static tp_chunk *tp_chunk_get(tp_bulk_out *b, uint64_t idx) {
  if (idx < b->base_chunk || idx >= b->nchunks)
    return NULL;
  return &b->chunks[idx % b->chunk_cap];
}

/* ---- keys and handshakes ---------------------------------------------- */

static uint32_t tp_new_index(lc__tp *tp) {
  for (;;) {
    uint32_t idx;
    tp->cfg.random(tp->cfg.random_ctx, &idx, sizeof idx);
    int clash = idx == 0;
    for (size_t i = 0; i < tp->npeers && !clash; i++) {
      tp_peer *p = tp->peers[i];
      if (p->hs_active && p->hs.local_index == idx)
        clash = 1;
      for (unsigned k = 0; k < p->hs_old_n; k++)
        if (p->hs_old[k].local_index == idx)
          clash = 1;
      for (int k = 0; k < LC_KP_SLOTS; k++)
        if (p->ks[k].used && p->ks[k].kp.local_index == idx)
          clash = 1;
    }
    if (!clash)
      return idx;
  }
}

static uint64_t tp_next_timestamp(lc__tp *tp) {
  uint64_t ts = tp->now + tp->cfg.clock_offset_us;
  if (ts <= tp->last_hs_ts)
    ts = tp->last_hs_ts + 1;
  tp->last_hs_ts = ts;
  return ts;
}

static uint64_t tp_hs_timeout(const lc__tp *tp, const tp_peer *p) {
  uint64_t base = p->has_rtt ? tp_max(2 * p->smoothed_rtt, LC_HS_MIN_RETRY_US)
                             : 2 * tp->cfg.initial_rtt_us;
  unsigned shift = p->hs_attempts > 0 ? p->hs_attempts - 1 : 0;
  if (shift > 16)
    shift = 16;
  return tp_min(base << shift, tp_max(tp->cfg.pto_max_us, base));
}

/* Forgets every pending handshake we initiated with p. */
static void tp_hs_clear(tp_peer *p) {
  lc__hs_wipe(&p->hs);
  for (int i = 0; i < 2; i++)
    lc__hs_wipe(&p->hs_old[i]);
  p->hs_old_n = 0;
  p->hs_active = 0;
  p->hs_send_now = 0;
  p->hs_attempts = 0;
}

/* Starts (or restarts, with fresh keys) our HELLO to p. */
static int tp_hs_start(lc__tp *tp, tp_peer *p) {
  uint8_t seed[32];
  tp->cfg.random(tp->cfg.random_ctx, seed, sizeof seed);
  if (p->hs_active && !p->hs_send_now) {
    lc__hs_wipe(&p->hs_old[1]);
    p->hs_old[1] = p->hs_old[0];
    p->hs_old_sent[1] = p->hs_old_sent[0];
    p->hs_old[0] = p->hs;
    p->hs_old_sent[0] = p->hs_sent_at;
    if (p->hs_old_n < 2)
      p->hs_old_n++;
  }
  lc__hs_wipe(&p->hs);
  uint32_t idx = tp_new_index(tp);
  int rc = lc__hs_initiate(&p->hs, &tp->id, p->pk, idx, tp_next_timestamp(tp),
                           p->incarnation, seed, &p->hello);
  memset(seed, 0, sizeof seed);
  if (rc < 0)
    return rc;
  p->hs_active = 1;
  p->hs_send_now = 1;
  p->hs_attempts++;
  return 0;
}

static int tp_kslot_install(lc__tp *tp, tp_peer *p,
                            const lc__session_keys *keys, uint32_t local,
                            uint32_t remote, uint64_t incarnation,
                            int initiator) {
  int slot = -1;
  for (int i = 0; i < LC_KP_SLOTS && slot < 0; i++)
    if (!p->ks[i].used)
      slot = i;
  if (slot < 0) {
    /* evict the oldest slot we are not sealing with */
    for (int i = 0; i < LC_KP_SLOTS; i++) {
      if (i == p->cur)
        continue;
      if (slot < 0 || p->ks[i].installed_at < p->ks[slot].installed_at)
        slot = i;
    }
  }
  tp_kslot *k = &p->ks[slot];
  lc__keypair_wipe(&k->kp);
  memset(k, 0, sizeof *k);
  k->used = 1;
  k->initiator = initiator;
  k->installed_at = tp->now;
  k->incarnation = incarnation;
  lc__keypair_init(&k->kp, keys, local, remote);
  p->st.keypairs_installed++;
  return slot;
}

static void tp_session_end(lc__tp *tp, tp_peer *p, int reason, int err,
                           int requeue);

/* How a session ends decides whether our incarnation changes: when we
 * forget on our own (close, idle), the peer must learn it; when the peer
 * forgot first, both sides are already fresh. */

/* Keys in `slot` are proven to work in both directions: seal with them from
 * now on, and notice if the peer forgot our session in between. */
static void tp_confirm(lc__tp *tp, tp_peer *p, int slot) {
  tp_kslot *k = &p->ks[slot];
  if (p->have_peer_incarnation && k->incarnation != p->peer_incarnation) {
    /* The peer started over: drop the old session but keep every keypair
     * of its new incarnation (a crossed handshake may have made two) and
     * a WELCOME still owed, and send every unacknowledged message again on
     * the new session. */
    tp_kslot keep[LC_KP_SLOTS];
    memset(keep, 0, sizeof keep);
    int nkeep = 0, at = 0;
    for (int i = 0; i < LC_KP_SLOTS; i++)
      if (p->ks[i].used && p->ks[i].incarnation == k->incarnation) {
        if (i == slot)
          at = nkeep;
        keep[nkeep++] = p->ks[i];
      }
    int welcome_pending = p->welcome_pending;
    lc__welcome welcome = p->welcome;
    tp_session_end(tp, p, LC_DOWN_RESTART, LC_ECLOSED, 1);
    /* requeueing may have started a handshake; these keys make it moot */
    tp_hs_clear(p);
    for (int i = 0; i < nkeep; i++)
      p->ks[i] = keep[i];
    memset(keep, 0, sizeof keep);
    p->welcome_pending = welcome_pending;
    p->welcome = welcome;
    slot = at;
    k = &p->ks[slot];
  }
  k->confirmed = 1;
  p->peer_incarnation = k->incarnation;
  p->have_peer_incarnation = 1;
  if (p->cur < 0 || p->cur == slot ||
      k->installed_at >= p->ks[p->cur].installed_at)
    p->cur = slot;
  if (!p->established) {
    p->established = 1;
    p->last_recv_time = tp->now;
    p->st.established = 1;
    if (tp->cfg.cb.session_up)
      tp->cfg.cb.session_up(tp->cfg.user, p->pk);
  }
}

/* Forgets the session with p.  Unacknowledged messages are either queued
 * again for the next session (requeue) or reported failed with err. */
static void tp_session_end(lc__tp *tp, tp_peer *p, int reason, int err,
                           int requeue) {
  int was = p->established;
  p->established = 0;
  p->st.established = 0;
  p->cur = -1;
  for (int i = 0; i < LC_KP_SLOTS; i++) {
    lc__keypair_wipe(&p->ks[i].kp);
    memset(&p->ks[i], 0, sizeof p->ks[i]);
  }
  tp_hs_clear(p);
  p->welcome_pending = 0;
  p->greet_pending = 0;
  p->ping_pending = 0;
  p->close_pending = 0;
  p->have_peer_incarnation = 0;
  if (reason == LC_DOWN_CLOSED || reason == LC_DOWN_IDLE ||
      reason == LC_DOWN_ERROR)
    tp->cfg.random(tp->cfg.random_ctx, &p->incarnation, sizeof p->incarnation);

  /* detach the outgoing messages; the callbacks below may queue new ones */
  tp_out_msg *old = p->out;
  uint64_t old_cap = p->out_cap, old_base = p->out_base, old_next = p->next_seq;
  p->out_cap = 64;
  p->out = calloc(p->out_cap, sizeof *p->out);
  p->out_base = p->next_seq = p->send_cursor = 0;
  p->peer_delivered = 0;
  p->send_bytes = 0;
  p->peer_max_seq = LC_INITIAL_MSG_CREDIT;
  tp_fifo_clear(&p->rtx_msg);
  tp_fifo_clear(&p->rtx_bulk);
  for (uint32_t i = 0; i < tp->cfg.max_bulk_streams; i++)
    tp_bulk_out_free(&p->bout[i]);
  for (unsigned i = 0; i < p->unrel_n; i++)
    free(p->unrel[(p->unrel_head + i) % LC_UNREL_QUEUE].data);
  p->unrel_n = 0;
  p->ae_in_flight = 0;
  tp_recovery_reset(tp, p);
  tp_session_reset_receive(tp, p);
  p->msg_credit_pending = 0;

  if (!p->out) { /* out of memory: leave an empty, valid ring */
    p->out_cap = 1;
    p->out = calloc(1, sizeof *p->out);
  }
  /* Requeue first, so that the undelivered messages keep their order ahead
   * of anything a callback below queues. */
  int requeue_err = 0; /* why a requeue failed, for message_failed */
  for (uint64_t s = old_base; requeue && p->out && s < old_next; s++) {
    tp_out_msg *m = &old[s % old_cap];
    int rc = lc__tp_send_msg(tp, p->pk, m->id, m->data, m->len, tp->now);
    if (rc == 0)
      tp_out_msg_free(m); /* nfrags 0: handed to the new session */
    else
      requeue_err = rc;
  }
  if (was && tp->cfg.cb.session_down)
    tp->cfg.cb.session_down(tp->cfg.user, p->pk, reason);
  for (uint64_t s = old_base; s < old_next; s++) {
    tp_out_msg *m = &old[s % old_cap];
    if (m->nfrags && tp->cfg.cb.message_failed)
      tp->cfg.cb.message_failed(tp->cfg.user, p->pk, m->id,
                                requeue_err ? requeue_err : err);
    tp_out_msg_free(m);
  }
  free(old);
}

/* ---- RTT, congestion control, loss detection (RFC 9002) -------------- */

static uint64_t tp_srtt(const lc__tp *tp, const tp_peer *p) {
  return p->has_rtt ? p->smoothed_rtt : tp->cfg.initial_rtt_us;
}

static void tp_rtt_sample(lc__tp *tp, tp_peer *p, uint64_t latest,
                          uint64_t ack_delay) {
  if (latest == 0)
    latest = 1;
  p->latest_rtt = latest;
  if (!p->has_rtt) {
    p->has_rtt = 1;
    p->min_rtt = latest;
    p->smoothed_rtt = latest;
    p->rttvar = latest / 2;
    return;
  }
  if (latest < p->min_rtt)
    p->min_rtt = latest;
  ack_delay = tp_min(ack_delay, tp->cfg.max_ack_delay_us);
  uint64_t adjusted = latest;
  if (latest >= p->min_rtt + ack_delay)
    adjusted = latest - ack_delay;
  uint64_t diff = p->smoothed_rtt > adjusted ? p->smoothed_rtt - adjusted
                                             : adjusted - p->smoothed_rtt;
  p->rttvar = (3 * p->rttvar + diff) / 4;
  p->smoothed_rtt = (7 * p->smoothed_rtt + adjusted) / 8;
}

static uint64_t tp_pto_base(const lc__tp *tp, const tp_peer *p) {
  uint64_t rttvar = p->has_rtt ? p->rttvar : tp->cfg.initial_rtt_us / 2;
  return tp_srtt(tp, p) + tp_max(4 * rttvar, LC_GRANULARITY_US) +
         tp->cfg.max_ack_delay_us;
}

static uint64_t tp_pto(const lc__tp *tp, const tp_peer *p) {
  uint64_t base = tp_pto_base(tp, p);
  unsigned shift = p->pto_count > 20 ? 20 : p->pto_count;
  return tp_min(base << shift, tp_max(tp->cfg.pto_max_us, base));
}

static void tp_cc_on_acked(lc__tp *tp, tp_peer *p, const tp_sent *s) {
  if (!s->in_flight)
    return;
  uint64_t before = p->bytes_in_flight;
  p->bytes_in_flight -= tp_min(p->bytes_in_flight, s->size);
  if (p->in_recovery_any && s->time_sent <= p->recovery_start)
    return;
  /* application-limited: the window was not the limit, do not grow it */
  if (before + 2 * tp_mds(tp) < p->cwnd)
    return;
  if (p->cwnd < p->ssthresh)
    p->cwnd += s->size;
  else
    p->cwnd += tp_mds(tp) * s->size / p->cwnd;
}

static void tp_cc_on_congestion(lc__tp *tp, tp_peer *p, uint64_t sent_time) {
  if (p->in_recovery_any && sent_time <= p->recovery_start)
    return;
  /* Loss-tolerant: a loss while the RTT sits at its minimum is taken as
   * random (radio, a noisy link), not a queue overflowing, and costs
   * nothing: the data is sent again, the rate stays, and no recovery
   * period holds the window's growth.  A loss with a grown RTT (a queue)
   * halves the window, as does any loss otherwise. */
  if (tp->cfg.loss_tolerant && p->has_rtt &&
      p->latest_rtt <=
          p->min_rtt +
              tp_max(p->min_rtt / 4, LC_GRANULARITY_US + tp->cfg.pace_tick_us))
    return;
  p->in_recovery_any = 1;
  p->recovery_start = tp->now;
  p->ssthresh = tp_max(p->cwnd / 2, tp_min_cwnd(tp));
  p->cwnd = p->ssthresh;
}

static void tp_on_frag_lost(lc__tp *tp, tp_peer *p, const tp_ref *r) {
  switch (r->kind) {
  case REF_MSG: {
    tp_out_msg *m = tp_out_get(p, r->id);
    if (m && r->idx < m->nfrags && m->fstate[r->idx] == FRAG_INFLIGHT) {
      m->fstate[r->idx] = FRAG_LOST;
      if (tp_fifo_push(&p->rtx_msg, REF_MSG, r->id, r->idx) < 0)
        m->fstate[r->idx] = FRAG_INFLIGHT; /* retried by the next probe */
    }
    break;
  }
  case REF_BULK: {
    tp_bulk_out *b = tp_bout_find(tp, p, (uint32_t)r->id);
    tp_chunk *c = b ? tp_chunk_get(b, r->idx) : NULL;
    if (c && c->state == FRAG_INFLIGHT) {
      c->state = FRAG_LOST;
      if (tp_fifo_push(&p->rtx_bulk, REF_BULK, r->id, r->idx) < 0)
        c->state = FRAG_INFLIGHT;
    }
    break;
  }
  case REF_MSG_CREDIT:
    p->msg_credit_pending = 1;
    break;
  case REF_BULK_CREDIT: {
    tp_bulk_in *b = tp_bin_find(tp, p, (uint32_t)r->id);
    if (b && !b->done)
      b->credit_pending = 1;
    break;
  }
  default:
    break;
  }
}

static tp_sent *tp_sent_get(tp_peer *p, uint64_t pn) {
  if (pn < p->first_pn || pn >= p->next_pn)
    return NULL;
  tp_sent *s = &p->sent[pn % p->sent_cap];
  return (s->state == SENT_OUTSTANDING && s->pn == pn) ? s : NULL;
}

/* An outstanding packet, or one declared lost that an ACK may still
 * cover. */
static tp_sent *tp_sent_get_ackable(tp_peer *p, uint64_t pn) {
  if (pn < p->first_pn || pn >= p->next_pn)
    return NULL;
  tp_sent *s = &p->sent[pn % p->sent_cap];
  return ((s->state == SENT_OUTSTANDING || s->state == SENT_LOST) &&
          s->pn == pn)
             ? s
             : NULL;
}

static void tp_sent_lost(lc__tp *tp, tp_peer *p, tp_sent *s) {
  s->state = SENT_LOST;
  p->st.packets_lost++;
  if (s->in_flight)
    p->bytes_in_flight -= tp_min(p->bytes_in_flight, s->size);
  if (s->ack_eliciting && p->ae_in_flight)
    p->ae_in_flight--;
  for (unsigned i = 0; i < s->nrefs; i++)
    tp_on_frag_lost(tp, p, &s->refs[i]);
}

static void tp_sent_trim(const lc__tp *tp, tp_peer *p) {
  /* a lost packet is remembered for four probe timeouts */
  uint64_t keep = 4 * tp_pto_base(tp, p);
  while (p->first_pn < p->next_pn) {
    const tp_sent *s = &p->sent[p->first_pn % p->sent_cap];
    /* ACK-only packets are not recorded: a slot holding another number
     * is one of them */
    if (s->pn == p->first_pn &&
        (s->state == SENT_OUTSTANDING ||
         (s->state == SENT_LOST && s->time_sent + keep > tp->now)))
      break;
    p->first_pn++;
  }
}

static void tp_detect_lost(lc__tp *tp, tp_peer *p) {
  p->loss_time = 0;
  if (!p->any_acked)
    return;
  uint64_t loss_delay =
      tp_max(tp_max(p->latest_rtt, tp_srtt(tp, p)) * 9 / 8, LC_GRANULARITY_US);
  uint64_t lost_send_time = tp->now > loss_delay ? tp->now - loss_delay : 0;
  uint64_t pc_duration =
      tp_pto_base(tp, p) * LC_PERSISTENT_CONGESTION_THRESHOLD;
  uint64_t newest_lost_time = 0;
  int any_lost = 0, persistent = 0;
  uint64_t run_start_time = 0;
  int in_run = 0;
  for (uint64_t pn = p->first_pn; pn <= p->largest_acked && pn < p->next_pn;
       pn++) {
    tp_sent *s = tp_sent_get(p, pn);
    if (!s) {
      if (p->sent[pn % p->sent_cap].pn != pn)
        continue; /* ACK-only packets neither break nor extend a run */
      in_run = 0;
      continue;
    }
    if (s->time_sent <= lost_send_time ||
        p->largest_acked >= pn + LC_PACKET_THRESHOLD) {
      if (s->ack_eliciting) {
        if (!in_run) {
          in_run = 1;
          run_start_time = s->time_sent;
        } else if (p->has_rtt && s->time_sent - run_start_time > pc_duration) {
          persistent = 1;
        }
      }
      if (s->in_flight && s->time_sent > newest_lost_time)
        newest_lost_time = s->time_sent;
      any_lost |= s->in_flight;
      tp_sent_lost(tp, p, s);
    } else {
      in_run = 0;
      uint64_t t = s->time_sent + loss_delay;
      if (p->loss_time == 0 || t < p->loss_time)
        p->loss_time = t;
    }
  }
  if (any_lost)
    tp_cc_on_congestion(tp, p, newest_lost_time);
  if (persistent)
    p->cwnd = tp_min_cwnd(tp);
  tp_sent_trim(tp, p);
}

static uint64_t tp_loss_timer(const lc__tp *tp, const tp_peer *p) {
  if (p->loss_time)
    return p->loss_time;
  if (p->ae_in_flight == 0)
    return LC_NEVER;
  uint64_t pto = tp_pto(tp, p);
  /* Chat in flight to a peer that acknowledges it as soon as it has
   * committed it (hold_delivered, as we do): no ack delay to wait for
   * before the first probe, so a lost text costs about an RTT plus the
   * timer's granularity instead of that plus max_ack_delay. */
  if (tp->cfg.hold_delivered && p->next_seq != p->out_base && p->pto_count == 0)
    pto -= tp_min(pto / 2, tp->cfg.max_ack_delay_us);
  return p->last_ack_eliciting_sent + pto;
}

/* The probe timeout fired.  RFC 9002 sends probes regardless of the
 * window; lanchat keeps the promise that bytes in flight never exceed the
 * window by first treating the oldest outstanding packets as lost (without
 * a congestion event), which is what the probe then carries again. */
static void tp_on_pto(lc__tp *tp, tp_peer *p) {
  p->pto_count++;
  p->st.pto_count++;
  p->probes = 1;
  for (uint64_t pn = p->first_pn;
       pn < p->next_pn && p->bytes_in_flight + tp_mds(tp) > p->cwnd; pn++) {
    tp_sent *s = tp_sent_get(p, pn);
    if (s && s->in_flight) {
      tp_sent_lost(tp, p, s);
      p->st.packets_lost--; /* not declared lost, only set aside */
    }
  }
  tp_sent_trim(tp, p);
}

/* ---- acknowledgements of what we sent --------------------------------- */

static void tp_out_pop(lc__tp *tp, tp_peer *p) {
  (void)tp;
  while (p->out_base < p->next_seq) {
    if (p->out_base >= p->peer_delivered)
      break;
    tp_out_msg *m = &p->out[p->out_base % p->out_cap];
    tp_out_msg_free(m);
    p->out_base++;
  }
  if (p->send_cursor < p->out_base)
    p->send_cursor = p->out_base;
}

static void tp_bulk_out_pop(lc__tp *tp, tp_peer *p, tp_bulk_out *b) {
  while (b->base_chunk < b->nchunks) {
    tp_chunk *c = &b->chunks[b->base_chunk % b->chunk_cap];
    if (c->state != FRAG_ACKED)
      break;
    free(c->data);
    c->data = NULL;
    b->base_chunk++;
  }
  if (b->fin && b->base_chunk == b->nchunks) {
    uint32_t id = b->id;
    tp_bulk_out_free(b);
    if (tp->cfg.cb.bulk_acked)
      tp->cfg.cb.bulk_acked(tp->cfg.user, p->pk, id);
  }
}

static void tp_on_ref_acked(lc__tp *tp, tp_peer *p, const tp_ref *r) {
  if (r->kind == REF_MSG) {
    tp_out_msg *m = tp_out_get(p, r->id);
    if (!m || r->idx >= m->nfrags || m->fstate[r->idx] == FRAG_ACKED)
      return;
    m->fstate[r->idx] = FRAG_ACKED;
    m->nacked++;
    /* Received is not delivered: the message may wait in the peer's
     * reassembly for an earlier one.  message_acked waits for DELIVERED. */
  } else if (r->kind == REF_BULK) {
    tp_bulk_out *b = tp_bout_find(tp, p, (uint32_t)r->id);
    tp_chunk *c = b ? tp_chunk_get(b, r->idx) : NULL;
    if (!c || c->state == FRAG_ACKED)
      return;
    c->state = FRAG_ACKED;
    b->buffered -= tp_min(b->buffered, c->len);
    tp_bulk_out_pop(tp, p, b);
  }
}

/* The peer handed every chat message below seq to its application: those
 * messages are done, in order, and will never be sent again. */
static void tp_on_delivered(lc__tp *tp, tp_peer *p, uint64_t seq) {
  while (p->peer_delivered < seq) {
    uint64_t s = p->peer_delivered++;
    tp_out_msg *m = tp_out_get(p, s);
    if (!m)
      continue;
    for (uint32_t i = 0; i < m->nfrags; i++)
      m->fstate[i] = FRAG_ACKED;
    m->nacked = m->nfrags;
    if (m->next_unsent < m->nfrags)
      m->next_unsent = m->nfrags;
    uint8_t id[LC_MSG_ID_BYTES];
    memcpy(id, m->id, sizeof id);
    p->send_bytes -= tp_min(p->send_bytes, m->len);
    p->st.msgs_acked++;
    tp_out_pop(tp, p);
    while (p->send_cursor < p->next_seq &&
           p->out[p->send_cursor % p->out_cap].next_unsent >=
               p->out[p->send_cursor % p->out_cap].nfrags)
      p->send_cursor++;
    if (tp->cfg.cb.message_acked)
      tp->cfg.cb.message_acked(tp->cfg.user, p->pk, id);
  }
}

static void tp_on_ack(lc__tp *tp, tp_peer *p, const lc__frame *f) {
  uint64_t largest = f->u.ack.largest;
  uint64_t hi = largest, lo = largest - f->u.ack.first_range;
  size_t ri = 0;
  int newly_largest = 0, new_eliciting = 0, any_new = 0;
  uint64_t largest_sent_time = 0;
  /* first pass: what is newly acknowledged, for the RTT sample */
  tp_sent *ls = tp_sent_get_ackable(p, largest);
  if (ls) {
    newly_largest = 1;
    largest_sent_time = ls->time_sent;
  }
  for (;;) {
    uint64_t a = tp_max(lo, p->first_pn);
    uint64_t b = tp_min(hi, p->next_pn ? p->next_pn - 1 : 0);
    for (uint64_t pn = a; p->next_pn && pn <= b; pn++) {
      tp_sent *s = tp_sent_get_ackable(p, pn);
      if (!s)
        continue;
      new_eliciting |= s->ack_eliciting;
      any_new = 1;
      if (s->state == SENT_OUTSTANDING) {
        if (s->ack_eliciting && p->ae_in_flight)
          p->ae_in_flight--;
        tp_cc_on_acked(tp, p, s);
      }
      s->state = SENT_DONE;
      /* refs are copied: a callback may queue data but never touches the
       * sent ring */
      tp_sent copy = *s;
      for (unsigned i = 0; i < copy.nrefs; i++)
        tp_on_ref_acked(tp, p, &copy.refs[i]);
    }
    if (ri >= f->u.ack.nranges)
      break;
    const lc__ack_range *r = &f->u.ack.ranges[ri++];
    if (lo < r->gap + 2 || lo - r->gap - 2 < r->len)
      break; /* the decoder rejects these; never wrap */
    hi = lo - r->gap - 2;
    lo = hi - r->len;
  }
  if (!p->any_acked || largest > p->largest_acked)
    p->largest_acked = largest;
  p->any_acked = 1;
  if (newly_largest && new_eliciting)
    tp_rtt_sample(tp, p, tp->now - largest_sent_time, f->u.ack.ack_delay_us);
  tp_detect_lost(tp, p);
  /* RFC 9002 A.7: only an ACK of something new proves the path works */
  if (any_new) {
    p->pto_count = 0;
    p->probes = 0;
  }
}

/* ---- incoming data frames --------------------------------------------- */

static uint64_t tp_bin_limit_ranges(const lc__tp *tp) {
  return 16 + tp->cfg.bulk_window / 512;
}

/* Checks every frame of a packet before any takes effect, so a packet is
 * either processed (and acknowledged) whole or dropped whole: acknowledging
 * a packet whose data was refused would lose that data. */
static int tp_validate(lc__tp *tp, tp_peer *p, const lc__frame *fr, size_t n) {
  size_t new_reasm = 0;
  uint32_t new_streams = 0;
  for (size_t i = 0; i < n; i++) {
    const lc__frame *f = &fr[i];
    switch (f->type) {
    case LC_FR_ACK:
      if (f->u.ack.largest >= p->next_pn)
        return LC_EPROTO; /* acknowledges a packet never sent */
      break;
    case LC_FR_DELIVERED:
      if (f->u.delivered.seq > p->next_seq)
        return LC_EPROTO; /* claims a message never sent */
      break;
    case LC_FR_MSG: {
      uint64_t seq = f->u.msg.seq;
      if (seq < p->next_deliver)
        break; /* duplicate of a delivered message */
      if (seq >= p->granted_seq)
        return LC_EFLOW;
      if (f->u.msg.total_len > tp->cfg.max_msg_bytes)
        return LC_ETOOBIG;
      tp_in_msg *m = p->in ? p->in[seq % tp->cfg.msg_window] : NULL;
      if (m) {
        if (m->total != f->u.msg.total_len ||
            memcmp(m->id, f->u.msg.msg_id, LC_MSG_ID_BYTES) != 0)
          return LC_EPROTO;
        break;
      }
      /* keep room for the next message in order, so out-of-order ones can
       * never starve it */
      size_t need = new_reasm + f->u.msg.total_len;
      size_t limit = tp->cfg.max_reassembly_bytes;
      if (seq != p->next_deliver)
        limit -= tp->cfg.max_msg_bytes;
      if (p->reasm_bytes + need > limit)
        return LC_ELIMIT;
      new_reasm = need;
      break;
    }
    case LC_FR_BULK: {
      uint32_t id = f->u.bulk.stream_id;
      if (lc__rs_contains(&p->bin_done, id, (uint64_t)id + 1))
        break;
      uint64_t end = f->u.bulk.offset + f->u.bulk.len;
      if (end < f->u.bulk.offset)
        return LC_ERANGE;
      tp_bulk_in *b = tp_bin_find(tp, p, id);
      if (b && b->done)
        break; /* a finished stream: a duplicate */
      uint64_t granted = b ? b->granted : LC_INITIAL_BULK_CREDIT;
      if (end > granted)
        return LC_EFLOW;
      if (b && b->has_final &&
          (end > b->final_size || (f->u.bulk.fin && end != b->final_size)))
        return LC_EPROTO;
      if (!b) {
        uint32_t used = 0;
        for (uint32_t k = 0; k < tp->cfg.max_bulk_streams; k++)
          used += p->bin[k].used;
        if (used + ++new_streams > tp->cfg.max_bulk_streams)
          return LC_ELIMIT;
      }
      break;
    }
    default:
      break;
    }
  }
  return 0;
}

/* Credit for msg_window messages past the delivery point, sent once a
 * quarter of the window is used (never past what is committed: the held
 * messages keep their slots). */
static void tp_grant_msgs(lc__tp *tp, tp_peer *p) {
  uint64_t w = tp->cfg.msg_window;
  uint64_t grant = p->committed + w;
  if (grant >= p->granted_seq + w / 4) {
    p->granted_seq = grant;
    p->msg_credit_pending = 1;
  }
}

/* Hands complete messages to the application in order.  A message counts
 * as delivered (and DELIVERED tells the sender so) only once the
 * application took it: one it refuses stays here, blocks the ones after
 * it, and is offered again LC_REDELIVER_US later. */
static void tp_deliver_ready(lc__tp *tp, tp_peer *p) {
  uint64_t w = tp->cfg.msg_window;
  while (p->in) {
    uint64_t seq = p->next_deliver;
    tp_in_msg *m = p->in[seq % w];
    if (!m || m->seq != seq || !lc__rs_contains(&m->got, 0, m->total))
      break;
    /* detached while the application has it: a callback that ends the
     * session cannot free it under us */
    p->in[seq % w] = NULL;
    int rc = 0;
    if (tp->cfg.cb.message)
      rc = tp->cfg.cb.message(tp->cfg.user, p->pk, m->id, m->buf, m->total);
    if (!p->in || p->next_deliver != seq || p->in[seq % w]) {
      tp_in_free(m); /* the session was reset meanwhile */
      return;
    }
    if (rc < 0) {
      p->in[seq % w] = m;
      p->redeliver_at = tp->now + LC_REDELIVER_US;
      return;
    }
    p->redeliver_at = 0;
    p->next_deliver++;
    p->st.msgs_delivered++;
    if (tp->cfg.hold_delivered) {
      m->handed = 1; /* until lc__tp_commit (or lc__tp_rollback) */
      p->in[seq % w] = m;
      tp->holding = 1;
      continue;
    }
    p->committed = p->next_deliver;
    p->reasm_bytes -= tp_min(p->reasm_bytes, m->total);
    tp_grant_msgs(tp, p);
    tp_in_free(m);
  }
}

static int tp_commit_peer(lc__tp *tp, tp_peer *p, int keep) {
  if (p->committed == p->next_deliver)
    return 0; /* nothing held for this peer */
  uint64_t w = tp->cfg.msg_window;
  for (uint64_t seq = p->committed; p->in && seq < p->next_deliver; seq++) {
    tp_in_msg *m = p->in[seq % w];
    if (!m || m->seq != seq || !m->handed)
      continue;
    if (!keep) {
      m->handed = 0; /* offered again */
      continue;
    }
    p->in[seq % w] = NULL;
    p->reasm_bytes -= tp_min(p->reasm_bytes, m->total);
    tp_in_free(m);
  }
  if (!keep) {
    p->st.msgs_delivered -= p->next_deliver - p->committed;
    p->next_deliver = p->committed;
    p->redeliver_at = tp->now + LC_REDELIVER_US;
    return 0;
  }
  p->committed = p->next_deliver;
  tp_grant_msgs(tp, p);
  /* the sender learns it from DELIVERED, which rides with an ACK: at once,
   * since the sender's application is waiting for it */
  p->ack_dirty = 1;
  p->ack_needed = 1;
  if (p->ack_deadline > tp->now)
    p->ack_deadline = tp->now;
  if (p->ping_on_commit) /* offered again by the timer: see tp_timers */
    p->ping_pending = 1;
  p->ping_on_commit = 0;
  return 1;
}

int lc__tp_commit(lc__tp *tp, int ok, uint64_t now) {
  if (!tp->holding)
    return 0;
  if (now > tp->now)
    tp->now = now;
  tp->holding = 0;
  int acks = 0;
  for (size_t i = 0; i < tp->npeers; i++)
    acks += tp_commit_peer(tp, tp->peers[i], ok);
  return acks > 0;
}

static int tp_on_msg_frame(lc__tp *tp, tp_peer *p, const lc__frame *f) {
  uint64_t seq = f->u.msg.seq;
  if (seq < p->next_deliver)
    return 0;
  uint64_t slot = seq % tp->cfg.msg_window;
  /* the reassembly ring exists only once a peer sends us chat */
  /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
  if (!p->in && !(p->in = calloc(tp->cfg.msg_window, sizeof *p->in)))
    return LC_ENOMEM;
  tp_in_msg *m = p->in[slot];
  if (!m) {
    m = calloc(1, sizeof *m);
    if (!m)
      return LC_ENOMEM;
    m->buf = malloc(f->u.msg.total_len ? f->u.msg.total_len : 1);
    if (!m->buf) {
      free(m);
      return LC_ENOMEM;
    }
    m->seq = seq;
    m->total = f->u.msg.total_len;
    memcpy(m->id, f->u.msg.msg_id, LC_MSG_ID_BYTES);
    lc__rs_init(&m->got, 2 + m->total / 128);
    p->in[slot] = m;
    p->reasm_bytes += m->total;
  }
  /* two frames of one packet can disagree; only the first one counts */
  if (m->total != f->u.msg.total_len ||
      memcmp(m->id, f->u.msg.msg_id, LC_MSG_ID_BYTES) != 0 ||
      (uint64_t)f->u.msg.offset + f->u.msg.len > m->total)
    return LC_EPROTO;
  if (f->u.msg.len) {
    if (lc__rs_add(&m->got, f->u.msg.offset,
                   (uint64_t)f->u.msg.offset + f->u.msg.len) < 0)
      return LC_ELIMIT;
    memcpy(m->buf + f->u.msg.offset, f->u.msg.data, f->u.msg.len);
  }
  if (seq == p->next_deliver)
    tp_deliver_ready(tp, p);
  return 0;
}

static int tp_on_bulk_frame(lc__tp *tp, tp_peer *p, const lc__frame *f) {
  uint32_t id = f->u.bulk.stream_id;
  if (lc__rs_contains(&p->bin_done, id, (uint64_t)id + 1))
    return 0;
  tp_bulk_in *b = tp_bin_find(tp, p, id);
  if (b && b->done)
    return 0;
  if (!b) {
    for (uint32_t k = 0; k < tp->cfg.max_bulk_streams && !b; k++)
      if (!p->bin[k].used)
        b = &p->bin[k];
    if (!b)
      return LC_ELIMIT;
    memset(b, 0, sizeof *b);
    b->used = 1;
    b->id = id;
    b->granted = LC_INITIAL_BULK_CREDIT;
    lc__rs_init(&b->got, tp_bin_limit_ranges(tp));
  }
  uint64_t lo = f->u.bulk.offset, hi = lo + f->u.bulk.len;
  if (b->has_final &&
      (hi > b->final_size || (f->u.bulk.fin && hi != b->final_size)))
    return LC_EPROTO;
  if (f->u.bulk.fin && b->got.n && b->got.v[b->got.n - 1].hi > hi)
    return LC_EPROTO; /* data already seen beyond the claimed end */
  if (f->u.bulk.fin) {
    b->has_final = 1;
    b->final_size = hi;
  }
  /* hand over only the bytes not seen before, each exactly once */
  uint64_t at = lo;
  while (at < hi) {
    uint64_t end = lc__rs_run_end(&b->got, at);
    if (end > at) { /* already have [at, end) */
      at = end;
      continue;
    }
    uint64_t gap_end = hi;
    for (size_t i = 0; i < b->got.n; i++)
      if (b->got.v[i].lo > at) {
        gap_end = tp_min(hi, b->got.v[i].lo);
        break;
      }
    if (lc__rs_add(&b->got, at, gap_end) < 0)
      return LC_ELIMIT;
    if (tp->cfg.cb.bulk)
      tp->cfg.cb.bulk(tp->cfg.user, p->pk, id, at, f->u.bulk.data + (at - lo),
                      gap_end - at);
    at = gap_end;
  }
  uint64_t contiguous = lc__rs_run_end(&b->got, 0);
  if (contiguous + tp->cfg.bulk_window >=
      b->granted + tp->cfg.bulk_window / 4) {
    b->granted = contiguous + tp->cfg.bulk_window;
    b->credit_pending = 1;
  }
  if (b->has_final && lc__rs_contains(&b->got, 0, b->final_size)) {
    uint64_t final_size = b->final_size;
    if (lc__rs_add(&p->bin_done, id, (uint64_t)id + 1) >= 0) {
      tp_bulk_in_free(b);
    } else {
      /* Stream ids out of any order the set can hold: keep the slot as a
       * marker so that a retransmission can never reopen the stream (the
       * peer pays with one of its stream slots). */
      lc__rs_free(&b->got);
      b->done = 1;
      b->credit_pending = 0;
    }
    if (tp->cfg.cb.bulk_done)
      tp->cfg.cb.bulk_done(tp->cfg.user, p->pk, id, final_size);
  }
  return 0;
}

static int tp_process_payload(lc__tp *tp, tp_peer *p, uint64_t pn,
                              const uint8_t *pt, size_t len) {
  lc__frame frames[LC_FRAMES_MAX];
  lc__ack_range ranges[LC_ACK_RANGES_MAX];
  size_t n = 0;
  int rc = lc__payload_decode(pt, len, frames, LC_FRAMES_MAX, &n, ranges);
  if (rc < 0) {
    tp->stats.drop_malformed++;
    return rc;
  }
  rc = tp_validate(tp, p, frames, n);
  if (rc < 0) {
    if (rc == LC_EPROTO || rc == LC_ERANGE)
      tp->stats.drop_malformed++;
    else
      tp->stats.drop_limit++;
    return rc;
  }
  int eliciting = 0, closed = 0, refused = 0;
  for (size_t i = 0; i < n; i++) {
    const lc__frame *f = &frames[i];
    switch (f->type) {
    case LC_FR_ACK:
      tp_on_ack(tp, p, f);
      break;
    case LC_FR_PING:
      eliciting = 1;
      break;
    case LC_FR_MSG:
      eliciting = 1;
      rc = tp_on_msg_frame(tp, p, f);
      refused |= rc < 0;
      break;
    case LC_FR_BULK:
      eliciting = 1;
      rc = tp_on_bulk_frame(tp, p, f);
      refused |= rc < 0;
      break;
    case LC_FR_UNREL:
      eliciting = 1;
      if (tp->cfg.cb.unreliable)
        tp->cfg.cb.unreliable(tp->cfg.user, p->pk, f->u.unrel.data,
                              f->u.unrel.len);
      break;
    case LC_FR_MSG_CREDIT:
      eliciting = 1;
      if (f->u.msg_credit.max_seq > p->peer_max_seq)
        p->peer_max_seq = f->u.msg_credit.max_seq;
      break;
    case LC_FR_BULK_CREDIT: {
      eliciting = 1;
      tp_bulk_out *b = tp_bout_find(tp, p, f->u.bulk_credit.stream_id);
      if (b && f->u.bulk_credit.max_offset > b->peer_max_offset)
        b->peer_max_offset = f->u.bulk_credit.max_offset;
      break;
    }
    case LC_FR_DELIVERED:
      tp_on_delivered(tp, p, f->u.delivered.seq);
      break;
    case LC_FR_CLOSE:
      closed = 1;
      break;
    default:
      break;
    }
    if (p->cur < 0)
      return 0; /* the session ended inside a callback */
  }
  if (refused) {
    /* Data was refused (no memory, or frames of one packet that
     * contradict each other): leave the packet unacknowledged, so that
     * nothing acknowledged is ever lost.  What was taken from it is
     * idempotent (duplicates are ignored). */
    tp->stats.drop_limit++;
    return LC_ELIMIT;
  }
  /* only now: record the packet number for our ACKs */
  if (lc__rs_add(&p->recv_pns, pn, pn + 1) == LC_ELIMIT) {
    lc__rs_drop_below(&p->recv_pns, p->recv_pns.v[0].hi);
    lc__rs_add(&p->recv_pns, pn, pn + 1);
  }
  int in_order = !p->any_recv || pn == p->largest_recv + 1;
  if (!p->any_recv || pn > p->largest_recv) {
    p->largest_recv = pn;
    p->largest_recv_time = tp->now;
  }
  p->any_recv = 1;
  p->ack_dirty = 1;
  p->st.packets_received++;
  if (closed) {
    tp_session_end(tp, p, LC_DOWN_PEER, LC_ECLOSED, 0);
    return 0;
  }
  if (eliciting) {
    p->ack_needed = 1;
    p->unacked_eliciting++;
    if (p->unacked_eliciting >= 2 || !in_order)
      p->ack_deadline = tp->now;
    else if (p->unacked_eliciting == 1)
      p->ack_deadline = tp->now + tp->cfg.max_ack_delay_us;
  }
  return 0;
}

/* ---- incoming datagrams ----------------------------------------------- */

static int tp_take(tp_bucket *b, double rate, double burst, uint64_t now) {
  if (b->last == 0 || now < b->last) {
    b->tokens = burst;
  } else {
    b->tokens += (double)(now - b->last) * rate / 1e6;
    if (b->tokens > burst)
      b->tokens = burst;
  }
  b->last = now;
  if (b->tokens < 1.0)
    return 0;
  b->tokens -= 1.0;
  return 1;
}

/* The source's IP address (IPv4 mapped) and port, 18 bytes. */
static void tp_src_ip(const lc__addr *a, uint8_t ip[18]) {
  memset(ip, 0, 18);
  if (a->ss.ss_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->ss;
    memcpy(ip, &in6->sin6_addr, 16);
    memcpy(ip + 16, &in6->sin6_port, 2);
  } else {
    const struct sockaddr_in *in = (const struct sockaddr_in *)&a->ss;
    ip[10] = ip[11] = 0xff;
    memcpy(ip + 12, &in->sin_addr, 4);
    memcpy(ip + 16, &in->sin_port, 2);
  }
}

static int tp_hello_allowed(lc__tp *tp, const lc__addr *from) {
  uint8_t ip[18];
  tp_src_ip(from, ip);
  uint32_t h = 2166136261u;
  for (int i = 0; i < 18; i++)
    h = (h ^ ip[i]) * 16777619u;
  tp_src_bucket *sb = &tp->hs_src[h % LC_HS_SRC_SLOTS];
  if (memcmp(sb->ip, ip, 18) != 0) { /* a new source takes the slot */
    memcpy(sb->ip, ip, 18);
    memset(&sb->b, 0, sizeof sb->b);
  }
  if (!tp_take(&sb->b, LC_HS_SRC_RATE, LC_HS_SRC_BURST, tp->now))
    return 0;
  int known = 0;
  for (size_t i = 0; i < tp->npeers && !known; i++) {
    const tp_peer *p = tp->peers[i];
    if (p->has_addr) {
      uint8_t pip[18];
      tp_src_ip(&p->addr, pip);
      known = memcmp(pip, ip, 18) == 0;
    }
  }
  return known || tp_take(&tp->hs_all, LC_HS_RATE, LC_HS_BURST, tp->now);
}

static int tp_on_hello(lc__tp *tp, const lc__addr *from, const lc__hello *h) {
  if (!tp_hello_allowed(tp, from)) {
    tp->stats.drop_hs_rate++;
    return LC_ELIMIT;
  }
  lc__hs hs;
  uint8_t pk[LC_PK_BYTES];
  uint64_t ts = 0, inc = 0;
  int rc = lc__hs_read_hello(&hs, &tp->id, h, pk, &ts, &inc);
  if (rc < 0 || memcmp(pk, tp->id.pk, LC_PK_BYTES) == 0) {
    lc__hs_wipe(&hs);
    tp->stats.drop_auth++;
    return rc < 0 ? rc : LC_EAUTH;
  }
  tp_peer *p = tp_find(tp, pk);
  if (!p)
    p = tp_peer_new(tp, pk);
  if (!p) {
    lc__hs_wipe(&hs);
    tp->stats.drop_limit++;
    return LC_ELIMIT;
  }
  if (ts <= p->last_peer_ts) {
    lc__hs_wipe(&hs);
    tp->stats.drop_stale_handshake++;
    return LC_EREPLAY;
  }
  p->last_peer_ts = ts;
  uint8_t seed[32];
  tp->cfg.random(tp->cfg.random_ctx, seed, sizeof seed);
  uint32_t idx = tp_new_index(tp);
  lc__session_keys keys;
  rc = lc__hs_write_welcome(&hs, idx, p->incarnation, seed, &p->welcome, &keys);
  memset(seed, 0, sizeof seed);
  lc__hs_wipe(&hs);
  if (rc < 0) {
    tp->stats.drop_auth++;
    return rc;
  }
  int slot = tp_kslot_install(tp, p, &keys, idx, h->sender_index, inc, 0);
  memset(&keys, 0, sizeof keys);
  p->addr = *from;
  p->has_addr = 1;
  p->welcome_pending = 1;
  /* With no working keys yet, seal with these at once; otherwise wait for
   * the initiator's first packet to prove them (a replayed HELLO must not
   * divert a working session). */
  if (p->cur < 0 || !p->ks[p->cur].confirmed)
    p->cur = slot;
  return 0;
}

static int tp_on_welcome(lc__tp *tp, const lc__addr *from,
                         const lc__welcome *w) {
  tp_peer *p = NULL;
  lc__hs *match = NULL;
  uint64_t sent_at = 0;
  for (size_t i = 0; i < tp->npeers && !p; i++) {
    tp_peer *q = tp->peers[i];
    if (!q->hs_active)
      continue;
    if (q->hs.local_index == w->receiver_index) {
      match = &q->hs;
      sent_at = q->hs_sent_at;
    }
    for (unsigned k = 0; k < q->hs_old_n && !match; k++)
      if (q->hs_old[k].local_index == w->receiver_index) {
        match = &q->hs_old[k];
        sent_at = q->hs_old_sent[k];
      }
    if (match)
      p = q;
  }
  if (!p) {
    tp->stats.drop_no_session++;
    return LC_ENOSESSION;
  }
  lc__hs hs = *match; /* a forged WELCOME must not spoil the real one */
  lc__session_keys keys;
  uint64_t inc = 0;
  int rc = lc__hs_read_welcome(&hs, w, &keys, &inc);
  lc__hs_wipe(&hs);
  if (rc < 0) {
    tp->stats.drop_auth++;
    return rc;
  }
  uint32_t local = match->local_index;
  tp_hs_clear(p);
  if (!p->has_rtt && tp->now >= sent_at)
    tp_rtt_sample(tp, p, tp->now - sent_at, 0);
  int slot = tp_kslot_install(tp, p, &keys, local, w->sender_index, inc, 1);
  memset(&keys, 0, sizeof keys);
  p->addr = *from;
  p->has_addr = 1;
  tp_confirm(tp, p, slot);
  p->greet_pending = 1;
  return 0;
}

static int tp_on_data(lc__tp *tp, const lc__addr *from, const lc__data *d) {
  tp_peer *p = NULL;
  int slot = -1;
  for (size_t i = 0; i < tp->npeers && !p; i++)
    for (int k = 0; k < LC_KP_SLOTS; k++)
      if (tp->peers[i]->ks[k].used &&
          tp->peers[i]->ks[k].kp.local_index == d->receiver_index) {
        p = tp->peers[i];
        slot = k;
        break;
      }
  if (!p) {
    tp->stats.drop_no_session++;
    return LC_ENOSESSION;
  }
  if (d->ciphertext_len > sizeof tp->pt + LC_TAG_BYTES)
    return LC_ETOOBIG;
  /* The address moves only with the newest packet under the newest keys:
   * a copy of an older datagram that never reached us, resent from
   * elsewhere, opens fine but must not divert the session (a later packet
   * already came from the peer's real address). */
  int newest =
      !p->ks[slot].kp.recv_any || d->packet_number > p->ks[slot].kp.recv_max;
  for (int k = 0; k < LC_KP_SLOTS && newest; k++)
    if (k != slot && p->ks[k].used &&
        p->ks[k].installed_at > p->ks[slot].installed_at)
      newest = 0;
  int n = lc__open(&p->ks[slot].kp, d->packet_number, d->ciphertext,
                   d->ciphertext_len, tp->pt);
  if (n < 0) {
    if (n == LC_EREPLAY)
      tp->stats.drop_replay++;
    else
      tp->stats.drop_auth++;
    return n;
  }
  if (!p->ks[slot].confirmed)
    tp_confirm(tp, p, slot);
  if (newest && !lc__addr_equal(&p->addr, from)) {
    p->addr = *from; /* authenticated and newest: the peer moved */
    tp->stats.addr_changes++;
  } else if (!newest && !lc__addr_equal(&p->addr, from)) {
    tp->stats.addr_stale++;
  }
  p->last_recv_time = tp->now;
  return tp_process_payload(tp, p, d->packet_number, tp->pt, (size_t)n);
}

int lc__tp_recv(lc__tp *tp, const lc__addr *from, const uint8_t *buf,
                size_t len, uint64_t now) {
  if (!tp || !from || (!buf && len))
    return LC_EINVAL;
  if (now > tp->now)
    tp->now = now;
  tp->stats.received++;
  lc__datagram dg;
  int rc = lc__wire_decode(&dg, buf, len);
  if (rc < 0) {
    tp->stats.drop_malformed++;
    return rc;
  }
  switch (dg.type) {
  case LC_DG_HELLO:
    return tp_on_hello(tp, from, &dg.u.hello);
  case LC_DG_WELCOME:
    return tp_on_welcome(tp, from, &dg.u.welcome);
  case LC_DG_DATA:
    return tp_on_data(tp, from, &dg.u.data);
  default:
    tp->stats.drop_malformed++;
    return LC_ETYPE;
  }
}

/* ---- building packets ------------------------------------------------- */

static int tp_cc_room(const lc__tp *tp, const tp_peer *p) {
  return p->bytes_in_flight + tp_mds(tp) <= p->cwnd &&
         p->next_pn - p->first_pn < LC_SENT_MAX - 1;
}

/* Pacing (RFC 9002 7.7): spread a window over 1/1.25 of an RTT, with a
 * burst allowance of up to ten datagrams. */
static double tp_pace_rate(const lc__tp *tp, const tp_peer *p) {
  return 1.25 * (double)p->cwnd / (double)tp_max(tp_srtt(tp, p), 1);
}

static double tp_pace_cap(const lc__tp *tp, const tp_peer *p) {
  /* ten datagrams, or what the rate earns in one tick of the caller's
   * timer (which cannot wake it sooner), within the window */
  double tick = tp_pace_rate(tp, p) * (double)tp->cfg.pace_tick_us;
  double burst = (double)(10 * tp_mds(tp));
  if (tick > burst)
    burst = tick;
  if (burst > (double)p->cwnd)
    burst = (double)p->cwnd;
  double floor2 = (double)(2 * tp_mds(tp));
  return burst > floor2 ? burst : floor2;
}

static void tp_pace_update(lc__tp *tp, tp_peer *p, uint64_t now) {
  if (now > p->pace_last) {
    p->pace_tokens += (double)(now - p->pace_last) * tp_pace_rate(tp, p);
    double cap = tp_pace_cap(tp, p);
    if (p->pace_tokens > cap)
      p->pace_tokens = cap;
    p->pace_last = now;
  }
}

static uint64_t tp_pace_time(const lc__tp *tp, const tp_peer *p) {
  double need = (double)tp_mds(tp) - p->pace_tokens;
  if (need <= 0)
    return p->pace_last;
  return p->pace_last + (uint64_t)(need / tp_pace_rate(tp, p)) + 1;
}

static int tp_rtx_valid(const lc__tp *tp, tp_peer *p, const tp_rtx *r) {
  if (r->kind == REF_MSG) {
    tp_out_msg *m = tp_out_get(p, r->seq);
    return m && r->idx < m->nfrags && m->fstate[r->idx] == FRAG_LOST;
  }
  tp_bulk_out *b = tp_bout_find(tp, p, (uint32_t)r->seq);
  tp_chunk *c = b ? tp_chunk_get(b, r->idx) : NULL;
  return c && c->state == FRAG_LOST;
}

static int tp_fifo_any_valid(const lc__tp *tp, tp_peer *p, const tp_fifo *f) {
  for (uint64_t i = f->head; i < f->tail; i++)
    if (tp_rtx_valid(tp, p, &f->v[i % f->cap]))
      return 1;
  return 0;
}

static int tp_has_new_chat(const tp_peer *p) {
  return p->send_cursor < p->next_seq && p->send_cursor < p->peer_max_seq;
}

static int tp_bulk_ready(const tp_bulk_out *b) {
  if (!b->used || b->next_unsent >= b->nchunks)
    return 0;
  const tp_chunk *c = &b->chunks[b->next_unsent % b->chunk_cap];
  if (c->len != b->chunk_size && !c->fin)
    return 0;
  return b->next_unsent * b->chunk_size + c->len <= b->peer_max_offset;
}

static int tp_chat_pending(const lc__tp *tp, tp_peer *p) {
  return tp_has_new_chat(p) || tp_fifo_any_valid(tp, p, &p->rtx_msg) ||
         p->unrel_n > 0;
}

static int tp_bulk_pending(const lc__tp *tp, tp_peer *p) {
  if (tp_fifo_any_valid(tp, p, &p->rtx_bulk))
    return 1;
  for (uint32_t i = 0; i < tp->cfg.max_bulk_streams; i++)
    if (tp_bulk_ready(&p->bout[i]))
      return 1;
  return 0;
}

/* Something ack-eliciting waits to be sent. */
static int tp_has_data(const lc__tp *tp, tp_peer *p) {
  if (p->greet_pending || p->ping_pending || p->msg_credit_pending || p->probes)
    return 1;
  for (uint32_t i = 0; i < tp->cfg.max_bulk_streams; i++)
    if (p->bin[i].used && p->bin[i].credit_pending)
      return 1;
  return tp_chat_pending(tp, p) || tp_bulk_pending(tp, p);
}

static int tp_sent_reserve(tp_peer *p) {
  if (p->next_pn - p->first_pn + 1 < p->sent_cap)
    return 0;
  uint64_t nc = p->sent_cap * 2;
  tp_sent *nv = calloc(nc, sizeof *nv);
  if (!nv)
    return LC_ENOMEM;
  for (uint64_t pn = p->first_pn; pn < p->next_pn; pn++)
    nv[pn % nc] = p->sent[pn % p->sent_cap];
  free(p->sent);
  p->sent = nv;
  p->sent_cap = nc;
  return 0;
}

static void tp_add_ack(lc__tp *tp, tp_peer *p, lc__payload_writer *w,
                       uint64_t now, size_t max) {
  const lc__rangeset *rs = &p->recv_pns;
  if (rs->n == 0)
    return;
  lc__ack_range ranges[LC_ACK_RANGES_MAX];
  const lc__range *top = &rs->v[rs->n - 1];
  lc__frame f;
  memset(&f, 0, sizeof f);
  f.type = LC_FR_ACK;
  f.u.ack.largest = top->hi - 1;
  f.u.ack.ack_delay_us = now - tp_min(now, p->largest_recv_time);
  f.u.ack.first_range = top->hi - 1 - top->lo;
  f.u.ack.ranges = ranges;
  size_t nr = 0;
  uint64_t prev_lo = top->lo;
  for (size_t i = rs->n - 1; i > 0 && nr < LC_ACK_RANGES_MAX; i--) {
    const lc__range *r = &rs->v[i - 1];
    ranges[nr].gap = prev_lo - r->hi - 1;
    ranges[nr].len = r->hi - 1 - r->lo;
    prev_lo = r->lo;
    nr++;
  }
  f.u.ack.nranges = nr;
  while (f.u.ack.nranges > 0 && lc__frame_size(&f) > max)
    f.u.ack.nranges--;
  if (lc__payload_add(w, &f) == 0) {
    p->ack_dirty = 0;
    p->ack_needed = 0;
    p->unacked_eliciting = 0;
  }
  /* Every ACK carries the delivery point: it is how the sender learns
   * that a message reached the application, not just the reassembly
   * buffer.  It needs no retransmission of its own: the packet that made a
   * delivery possible is ack-eliciting, and the sender probes until an ACK
   * (and this frame with it) gets through. */
  if (p->committed > 0) {
    memset(&f, 0, sizeof f);
    f.type = LC_FR_DELIVERED;
    f.u.delivered.seq = p->committed;
    lc__payload_add(w, &f);
  }
}

static void tp_ref_add(tp_sent *rec, uint8_t kind, uint64_t id, uint32_t idx) {
  tp_ref *r = &rec->refs[rec->nrefs++];
  r->kind = kind;
  r->id = id;
  r->idx = idx;
}

static void tp_msg_frame(const tp_out_msg *m, uint32_t idx, lc__frame *f) {
  memset(f, 0, sizeof *f);
  f->type = LC_FR_MSG;
  f->u.msg.seq = m->seq;
  memcpy(f->u.msg.msg_id, m->id, LC_MSG_ID_BYTES);
  f->u.msg.total_len = m->len;
  f->u.msg.offset = idx * m->frag_size;
  f->u.msg.data = m->data + f->u.msg.offset;
  f->u.msg.len = tp_min(m->frag_size, m->len - f->u.msg.offset);
}

static void tp_bulk_frame(const tp_bulk_out *b, uint64_t idx, lc__frame *f) {
  const tp_chunk *c = &b->chunks[idx % b->chunk_cap];
  memset(f, 0, sizeof *f);
  f->type = LC_FR_BULK;
  f->u.bulk.stream_id = b->id;
  f->u.bulk.offset = idx * b->chunk_size;
  f->u.bulk.fin = c->fin;
  f->u.bulk.data = c->data;
  f->u.bulk.len = c->len;
}

/* Adds retransmissions from a FIFO; returns 1 if any was added. */
static int tp_add_rtx(lc__tp *tp, tp_peer *p, tp_fifo *q, lc__payload_writer *w,
                      tp_sent *rec) {
  int added = 0;
  while (q->head < q->tail && rec->nrefs < LC_REFS_MAX) {
    tp_rtx r = q->v[q->head % q->cap];
    if (!tp_rtx_valid(tp, p, &r)) {
      q->head++;
      continue;
    }
    lc__frame f;
    if (r.kind == REF_MSG) {
      tp_out_msg *m = tp_out_get(p, r.seq);
      tp_msg_frame(m, r.idx, &f);
      if (lc__payload_add(w, &f) < 0)
        break;
      m->fstate[r.idx] = FRAG_INFLIGHT;
    } else {
      tp_bulk_out *b = tp_bout_find(tp, p, (uint32_t)r.seq);
      tp_bulk_frame(b, r.idx, &f);
      if (lc__payload_add(w, &f) < 0)
        break;
      b->chunks[r.idx % b->chunk_cap].state = FRAG_INFLIGHT;
    }
    q->head++;
    tp_ref_add(rec, r.kind, r.seq, r.idx);
    added = 1;
  }
  return added;
}

static int tp_add_new_chat(lc__tp *tp, tp_peer *p, lc__payload_writer *w,
                           tp_sent *rec) {
  (void)tp;
  int added = 0;
  while (tp_has_new_chat(p) && rec->nrefs < LC_REFS_MAX) {
    tp_out_msg *m = &p->out[p->send_cursor % p->out_cap];
    if (m->next_unsent < m->nfrags) {
      lc__frame f;
      tp_msg_frame(m, m->next_unsent, &f);
      if (lc__payload_add(w, &f) < 0)
        break;
      m->fstate[m->next_unsent] = FRAG_INFLIGHT;
      tp_ref_add(rec, REF_MSG, m->seq, m->next_unsent);
      m->next_unsent++;
      added = 1;
    }
    if (m->next_unsent >= m->nfrags)
      p->send_cursor++;
  }
  return added;
}

static int tp_add_new_bulk(lc__tp *tp, tp_peer *p, lc__payload_writer *w,
                           tp_sent *rec) {
  int added = 0;
  for (uint32_t i = 0; i < tp->cfg.max_bulk_streams; i++) {
    tp_bulk_out *b = &p->bout[i];
    while (tp_bulk_ready(b) && rec->nrefs < LC_REFS_MAX) {
      lc__frame f;
      tp_bulk_frame(b, b->next_unsent, &f);
      if (lc__payload_add(w, &f) < 0)
        return added;
      b->chunks[b->next_unsent % b->chunk_cap].state = FRAG_INFLIGHT;
      tp_ref_add(rec, REF_BULK, b->id, (uint32_t)b->next_unsent);
      b->next_unsent++;
      added = 1;
    }
  }
  return added;
}

/* A probe carries the oldest unacknowledged chat fragment again, so the
 * probe itself repairs the most likely loss; a PING otherwise. */
static int tp_add_probe(lc__tp *tp, tp_peer *p, lc__payload_writer *w,
                        tp_sent *rec) {
  (void)tp;
  for (uint64_t s = p->out_base; s < p->next_seq; s++) {
    tp_out_msg *m = &p->out[s % p->out_cap];
    for (uint32_t i = 0; i < m->next_unsent; i++) {
      if (m->fstate[i] == FRAG_INFLIGHT || m->fstate[i] == FRAG_LOST) {
        lc__frame f;
        tp_msg_frame(m, i, &f);
        if (lc__payload_add(w, &f) < 0)
          return 0;
        m->fstate[i] = FRAG_INFLIGHT;
        tp_ref_add(rec, REF_MSG, m->seq, i);
        return 1;
      }
    }
  }
  return 0;
}

static int tp_build(lc__tp *tp, tp_peer *p, uint64_t now, lc__addr *to,
                    uint8_t *buf, size_t cap) {
  if (p->cur < 0)
    return 0;
  tp_pace_update(tp, p, now);
  int ack_due = p->ack_dirty && p->ack_needed && p->ack_deadline <= now;
  int want = tp_cc_room(tp, p) && p->pace_tokens >= (double)tp_mds(tp) &&
             tp_has_data(tp, p);
  if (!ack_due && !want && !p->close_pending)
    return 0;
  /* A peer that never acknowledges must not make us remember packets
   * without bound: past LC_SENT_MAX numbers, the oldest is lost. */
  while (p->next_pn - p->first_pn >= LC_SENT_MAX - 1) {
    tp_sent *old = &p->sent[p->first_pn % p->sent_cap];
    if (old->pn == p->first_pn && old->state == SENT_OUTSTANDING)
      tp_sent_lost(tp, p, old);
    old->state = SENT_DONE;
    p->first_pn++;
  }
  if (tp_sent_reserve(p) < 0)
    return 0;
  size_t budget = tp_payload_budget(tp);
  lc__payload_writer w;
  lc__payload_init(&w, tp->pt, budget);
  tp_sent rec;
  memset(&rec, 0, sizeof rec);
  int elicit = 0;
  /* An ACK when something ack-eliciting waits for one: packets that were
   * not (the peer's own ACKs) are not worth a frame of their own (the
   * peer keeps no record of them), and under loss their ranges grew the
   * frame until a bulk chunk no longer fitted beside it, so that every
   * chunk went with an ACK-only packet before it.  Beside data, the frame
   * keeps to the room chunks leave for it, with the newest ranges. */
  if (p->any_recv && p->ack_dirty && (p->ack_needed || p->close_pending))
    tp_add_ack(tp, p, &w, now,
               want ? LC_BULK_ACK_RESERVE - 16 : LC_ACK_RESERVE - 24);
  lc__frame f;
  if (p->close_pending) {
    memset(&f, 0, sizeof f);
    f.type = LC_FR_CLOSE;
    f.u.close.code = p->close_code;
    lc__payload_add(&w, &f);
  } else if (want) {
    if (p->msg_credit_pending) {
      memset(&f, 0, sizeof f);
      f.type = LC_FR_MSG_CREDIT;
      f.u.msg_credit.max_seq = p->granted_seq;
      if (lc__payload_add(&w, &f) == 0) {
        p->msg_credit_pending = 0;
        tp_ref_add(&rec, REF_MSG_CREDIT, 0, 0);
        elicit = 1;
      }
    }
    for (uint32_t i = 0; i < tp->cfg.max_bulk_streams; i++) {
      tp_bulk_in *b = &p->bin[i];
      if (!b->used || !b->credit_pending || rec.nrefs >= LC_REFS_MAX)
        continue;
      memset(&f, 0, sizeof f);
      f.type = LC_FR_BULK_CREDIT;
      f.u.bulk_credit.stream_id = b->id;
      f.u.bulk_credit.max_offset = b->granted;
      if (lc__payload_add(&w, &f) == 0) {
        b->credit_pending = 0;
        tp_ref_add(&rec, REF_BULK_CREDIT, b->id, 0);
        elicit = 1;
      }
    }
    /* chat first: retransmissions, new messages, then unreliable */
    int chat = tp_add_rtx(tp, p, &p->rtx_msg, &w, &rec);
    chat |= tp_add_new_chat(tp, p, &w, &rec);
    while (p->unrel_n && rec.nrefs < LC_REFS_MAX) {
      tp_unrel *u = &p->unrel[p->unrel_head];
      memset(&f, 0, sizeof f);
      f.type = LC_FR_UNREL;
      f.u.unrel.data = u->data;
      f.u.unrel.len = u->len;
      if (lc__payload_add(&w, &f) < 0)
        break;
      free(u->data);
      u->data = NULL;
      p->unrel_head = (p->unrel_head + 1) % LC_UNREL_QUEUE;
      p->unrel_n--;
      tp_ref_add(&rec, REF_UNREL, 0, 0);
      chat = 1;
    }
    elicit |= chat;
    /* bulk only when no chat is waiting */
    if (!tp_chat_pending(tp, p)) {
      elicit |= tp_add_rtx(tp, p, &p->rtx_bulk, &w, &rec);
      elicit |= tp_add_new_bulk(tp, p, &w, &rec);
    }
    if (p->probes && !elicit)
      elicit |= tp_add_probe(tp, p, &w, &rec);
    if (!elicit && (p->greet_pending || p->ping_pending || p->probes)) {
      memset(&f, 0, sizeof f);
      f.type = LC_FR_PING;
      if (lc__payload_add(&w, &f) == 0) {
        tp_ref_add(&rec, REF_PING, 0, 0);
        elicit = 1;
      }
    }
    if (elicit) {
      p->greet_pending = 0;
      p->ping_pending = 0;
      if (p->probes)
        p->probes--;
    }
  }
  if (w.nframes == 0)
    return 0;
  size_t ptlen = lc__payload_finish(&w);
  tp_kslot *k = &p->ks[p->cur];
  uint64_t pn = p->next_pn;
  int ctlen = lc__seal(&k->kp, pn, tp->pt, ptlen, tp->ct);
  if (ctlen < 0)
    return 0;
  lc__datagram dg;
  memset(&dg, 0, sizeof dg);
  dg.type = LC_DG_DATA;
  dg.u.data.receiver_index = k->kp.remote_index;
  dg.u.data.packet_number = pn;
  dg.u.data.ciphertext = tp->ct;
  dg.u.data.ciphertext_len = (size_t)ctlen;
  int n = lc__wire_encode(&dg, buf, cap);
  if (n < 0)
    return 0;
  p->next_pn++;
  if (elicit) {
    tp_sent *s = &p->sent[pn % p->sent_cap];
    *s = rec;
    s->pn = pn;
    s->time_sent = now;
    s->size = (uint32_t)n;
    s->ack_eliciting = 1;
    s->in_flight = 1;
    s->state = SENT_OUTSTANDING;
    p->bytes_in_flight += (uint64_t)n;
    p->ae_in_flight++;
    p->last_ack_eliciting_sent = now;
    p->pace_tokens -= (double)n;
  } else {
    tp_sent_trim(tp, p); /* ACK-only packets are not recorded */
  }
  p->st.packets_sent++;
  p->last_send_time = now;
  *to = p->addr;
  if (p->close_pending)
    tp_session_end(tp, p, LC_DOWN_CLOSED, LC_ECLOSED, 0);
  return n;
}

/* ---- timers and the driver interface ---------------------------------- */

#define LC_HS_GIVE_UP_ATTEMPTS 12

static uint64_t tp_rekey_at(const lc__tp *tp, const tp_peer *p) {
  const tp_kslot *k = &p->ks[p->cur];
  /* the responder waits a little longer, so both ends rarely rekey at
   * once (a crossed rekey is harmless, only wasteful) */
  uint64_t after = tp->cfg.rekey_after_us;
  if (!k->initiator)
    after += after / 10;
  return k->installed_at + after;
}

static int tp_rekey_due(const lc__tp *tp, const tp_peer *p, uint64_t now) {
  if (p->cur < 0 || p->hs_active || !p->ks[p->cur].confirmed)
    return 0;
  const tp_kslot *k = &p->ks[p->cur];
  uint64_t limit = tp->cfg.rekey_after_packets;
  if (!k->initiator)
    limit += limit / 10;
  return now >= tp_rekey_at(tp, p) || k->kp.send_count >= limit;
}

#define LC_HALF_OPEN_US (10 * 1000000ull)

/* Keys from a HELLO, never confirmed, and no session behind them. */
static int tp_half_open(const tp_peer *p) {
  return !p->established && p->cur >= 0 && !p->ks[p->cur].confirmed;
}

static uint64_t tp_half_open_deadline(const tp_peer *p) {
  return p->ks[p->cur].installed_at + LC_HALF_OPEN_US;
}

static void tp_timers(lc__tp *tp, tp_peer *p, uint64_t now) {
  if (p->hs_active && !p->hs_send_now && now >= p->hs_retry_at) {
    if (p->hs_attempts >= LC_HS_GIVE_UP_ATTEMPTS && p->cur < 0 &&
        tp_peer_idle_queues(tp, p)) {
      tp_hs_clear(p);
    } else {
      tp_hs_start(tp, p);
    }
  }
  if (p->cur < 0)
    return;
  if (p->redeliver_at && now >= p->redeliver_at) {
    uint64_t before = p->next_deliver;
    tp_deliver_ready(tp, p);
    if (p->next_deliver > before && tp->cfg.hold_delivered) {
      p->ping_on_commit = 1; /* as below, once committed */
    } else if (p->next_deliver > before) {
      /* the sender learns of it from DELIVERED, which rides with ACKs; it
       * has nothing in flight to make us acknowledge, so a PING (which is
       * tracked, and probed for if lost) carries it */
      p->ack_dirty = 1;
      p->ack_needed = 1;
      p->ack_deadline = now;
      p->ping_pending = 1;
    }
  }
  if (tp_half_open(p) && now >= tp_half_open_deadline(p)) {
    /* A HELLO nobody followed up: forget its keys, so that throwaway
     * identities cannot hold the peer table.  Anything we queued meanwhile
     * stays queued (and starts our own handshake). */
    tp_session_end(tp, p, LC_DOWN_RESTART, LC_ECLOSED, 1);
    return;
  }
  uint64_t lt = tp_loss_timer(tp, p);
  if (lt <= now) {
    if (p->loss_time && p->loss_time <= now) {
      tp_detect_lost(tp, p);
    } else {
      tp_on_pto(tp, p);
      /* Silence after several probes: perhaps the peer forgot us.  A new
       * handshake finds out, and costs nothing if it did not. */
      if (p->pto_count >= 3 && !p->hs_active)
        tp_hs_start(tp, p);
    }
  }
  if (tp->cfg.idle_timeout_us && p->established &&
      now >= p->last_recv_time + tp->cfg.idle_timeout_us) {
    tp_session_end(tp, p, LC_DOWN_IDLE, LC_ETIMEDOUT, 0);
    return;
  }
  if (tp->cfg.keepalive_us && p->established && !p->ping_pending &&
      now >=
          tp_max(p->last_send_time, p->last_recv_time) + tp->cfg.keepalive_us)
    p->ping_pending = 1;
  if (tp_rekey_due(tp, p, now))
    tp_hs_start(tp, p);
  while (p->unrel_n &&
         now >= p->unrel[p->unrel_head].queued_at + LC_UNREL_MAX_AGE_US) {
    free(p->unrel[p->unrel_head].data);
    p->unrel[p->unrel_head].data = NULL;
    p->unrel_head = (p->unrel_head + 1) % LC_UNREL_QUEUE;
    p->unrel_n--;
  }
}

static int tp_emit(lc__tp *tp, tp_peer *p, uint64_t now, lc__addr *to,
                   uint8_t *buf, size_t cap) {
  lc__datagram dg;
  if (p->hs_active && p->hs_send_now && p->has_addr) {
    memset(&dg, 0, sizeof dg);
    dg.type = LC_DG_HELLO;
    dg.u.hello = p->hello;
    int n = lc__wire_encode(&dg, buf, cap);
    if (n < 0)
      return 0;
    p->hs_send_now = 0;
    p->hs_sent_at = now;
    p->hs_retry_at = now + tp_hs_timeout(tp, p);
    *to = p->addr;
    return n;
  }
  if (p->welcome_pending) {
    memset(&dg, 0, sizeof dg);
    dg.type = LC_DG_WELCOME;
    dg.u.welcome = p->welcome;
    int n = lc__wire_encode(&dg, buf, cap);
    if (n < 0)
      return 0;
    p->welcome_pending = 0;
    *to = p->addr;
    return n;
  }
  return tp_build(tp, p, now, to, buf, cap);
}

int lc__tp_poll(lc__tp *tp, uint64_t now, lc__addr *to, uint8_t *buf,
                size_t cap) {
  if (!tp || !to || !buf || cap < tp->cfg.max_datagram)
    return LC_EINVAL;
  if (now > tp->now)
    tp->now = now;
  now = tp->now;
  for (size_t i = 0; i < tp->npeers; i++)
    tp_timers(tp, tp->peers[i], now);
  for (size_t k = 0; k < tp->npeers; k++) {
    size_t i = (tp->rr + k) % tp->npeers;
    int n = tp_emit(tp, tp->peers[i], now, to, buf, cap);
    if (n > 0) {
      tp->rr = i + 1;
      tp->stats.sent++;
      return n;
    }
  }
  return 0;
}

static uint64_t tp_peer_wakeup(const lc__tp *tp, tp_peer *p) {
  uint64_t now = tp->now, t = LC_NEVER;
  if (p->hs_active && p->has_addr)
    t = tp_min(t, p->hs_send_now ? now : p->hs_retry_at);
  if (p->welcome_pending)
    t = now;
  if (p->cur < 0)
    return t;
  if (tp_half_open(p))
    t = tp_min(t, tp_half_open_deadline(p));
  if (p->close_pending)
    t = now;
  if (p->ack_dirty && p->ack_needed)
    t = tp_min(t, p->ack_deadline);
  if (p->redeliver_at)
    t = tp_min(t, p->redeliver_at);
  t = tp_min(t, tp_loss_timer(tp, p));
  if (tp_cc_room(tp, p) && tp_has_data(tp, p)) {
    /* tokens as they will be at pace_last, then the time to earn more */
    t = tp_min(t, tp_max(tp_pace_time(tp, p), now));
  }
  if (tp->cfg.idle_timeout_us && p->established)
    t = tp_min(t, p->last_recv_time + tp->cfg.idle_timeout_us);
  if (tp->cfg.keepalive_us && p->established && !p->ping_pending)
    t = tp_min(t, tp_max(p->last_send_time, p->last_recv_time) +
                      tp->cfg.keepalive_us);
  if (!p->hs_active && p->ks[p->cur].confirmed)
    t = tp_min(t, tp_rekey_at(tp, p));
  if (p->unrel_n)
    t = tp_min(t, p->unrel[p->unrel_head].queued_at + LC_UNREL_MAX_AGE_US);
  return t;
}

uint64_t lc__tp_next_wakeup(const lc__tp *tp) {
  uint64_t t = LC_NEVER;
  if (!tp)
    return t;
  for (size_t i = 0; i < tp->npeers; i++)
    t = tp_min(t, tp_peer_wakeup(tp, tp->peers[i]));
  return t;
}

/* ---- the application's side ------------------------------------------- */

int lc__tp_set_peer_addr(lc__tp *tp, const uint8_t peer[LC_PK_BYTES],
                         const lc__addr *addr) {
  if (!tp || !peer || !addr)
    return LC_EINVAL;
  if (memcmp(peer, tp->id.pk, LC_PK_BYTES) == 0 || lc__pk_check(peer) < 0)
    return LC_EINVAL;
  tp_peer *p = tp_find(tp, peer);
  if (!p)
    p = tp_peer_new(tp, peer);
  if (!p)
    return tp->npeers >= tp->cfg.max_sessions ? LC_ELIMIT : LC_ENOMEM;
  if (!p->has_addr || p->cur < 0)
    p->addr = *addr;
  p->has_addr = 1;
  return 0;
}

/* Whatever was waiting on a backed-off timer goes out now: the path
 * changed, so the old back-off says nothing about the new one. */
static void tp_resume_peer(lc__tp *tp, tp_peer *p) {
  if (p->hs_active && !p->hs_send_now)
    p->hs_retry_at = tp->now;
  if (p->cur >= 0 && p->ae_in_flight) {
    tp_on_pto(tp, p);
    p->pto_count = 0;
  }
}

int lc__tp_peer_moved(lc__tp *tp, const uint8_t peer[LC_PK_BYTES],
                      const lc__addr *addr, uint64_t now) {
  if (!tp || !peer || !addr)
    return LC_EINVAL;
  if (now > tp->now)
    tp->now = now;
  tp_peer *p = tp_find(tp, peer);
  if (!p)
    return lc__tp_set_peer_addr(tp, peer, addr);
  int moved = !p->has_addr || !lc__addr_equal(&p->addr, addr);
  p->addr = *addr;
  p->has_addr = 1;
  if (moved)
    tp_resume_peer(tp, p);
  return 0;
}

void lc__tp_close_all(lc__tp *tp, uint64_t now) {
  if (!tp)
    return;
  /* backwards: ending a session may remove its peer (swap with the last) */
  for (size_t i = tp->npeers; i-- > 0;)
    if (i < tp->npeers && (tp->peers[i]->cur >= 0 || tp->peers[i]->hs_active))
      lc__tp_close(tp, tp->peers[i]->pk, now);
}

void lc__tp_resume(lc__tp *tp, uint64_t now) {
  if (!tp)
    return;
  if (now > tp->now)
    tp->now = now;
  for (size_t i = 0; i < tp->npeers; i++)
    tp_resume_peer(tp, tp->peers[i]);
}

static tp_peer *tp_peer_for_send(lc__tp *tp, const uint8_t *peer) {
  tp_peer *p = tp_find(tp, peer);
  return p && p->has_addr ? p : NULL;
}

int lc__tp_connect(lc__tp *tp, const uint8_t peer[LC_PK_BYTES], uint64_t now) {
  if (!tp || !peer)
    return LC_EINVAL;
  if (now > tp->now)
    tp->now = now;
  tp_peer *p = tp_peer_for_send(tp, peer);
  if (!p)
    return LC_ENOPEER;
  if (p->cur >= 0 || p->hs_active)
    return 0;
  return tp_hs_start(tp, p);
}

static int tp_out_grow(tp_peer *p) {
  if (p->next_seq - p->out_base < p->out_cap)
    return 0;
  uint64_t nc = p->out_cap * 2;
  tp_out_msg *nv = calloc(nc, sizeof *nv);
  if (!nv)
    return LC_ENOMEM;
  for (uint64_t s = p->out_base; s < p->next_seq; s++)
    nv[s % nc] = p->out[s % p->out_cap];
  free(p->out);
  p->out = nv;
  p->out_cap = nc;
  return 0;
}

int lc__tp_send_msg(lc__tp *tp, const uint8_t peer[LC_PK_BYTES],
                    const uint8_t msg_id[LC_MSG_ID_BYTES], const uint8_t *data,
                    size_t len, uint64_t now) {
  if (!tp || !peer || !msg_id || (!data && len))
    return LC_EINVAL;
  if (now > tp->now)
    tp->now = now;
  if (len > tp->cfg.max_msg_bytes)
    return LC_ETOOBIG;
  tp_peer *p = tp_peer_for_send(tp, peer);
  if (!p)
    return LC_ENOPEER;
  if (p->send_bytes + len > tp->cfg.max_send_bytes)
    return LC_ELIMIT;
  if (tp_out_grow(p) < 0)
    return LC_ENOMEM;
  tp_out_msg m;
  memset(&m, 0, sizeof m);
  m.seq = p->next_seq;
  memcpy(m.id, msg_id, LC_MSG_ID_BYTES);
  m.len = (uint32_t)len;
  m.frag_size = tp_msg_frag_size(tp);
  m.nfrags = len ? (uint32_t)((len + m.frag_size - 1) / m.frag_size) : 1;
  m.data = malloc(len ? len : 1);
  m.fstate = calloc(m.nfrags, 1);
  if (!m.data || !m.fstate) {
    free(m.data);
    free(m.fstate);
    return LC_ENOMEM;
  }
  if (len)
    memcpy(m.data, data, len);
  p->out[p->next_seq % p->out_cap] = m;
  p->next_seq++;
  p->send_bytes += len;
  p->st.msgs_sent++;
  /* The message is queued whatever happens next: a handshake that cannot
   * start now is tried again by the next send or connect. */
  if (p->cur < 0 && !p->hs_active)
    tp_hs_start(tp, p);
  return 0;
}

int lc__tp_send_unreliable(lc__tp *tp, const uint8_t peer[LC_PK_BYTES],
                           const uint8_t *data, size_t len, uint64_t now) {
  if (!tp || !peer || (!data && len))
    return LC_EINVAL;
  if (now > tp->now)
    tp->now = now;
  tp_peer *p = tp_find(tp, peer);
  if (!p || p->cur < 0)
    return LC_ENOSESSION;
  lc__frame f;
  memset(&f, 0, sizeof f);
  f.type = LC_FR_UNREL;
  f.u.unrel.len = len;
  if (lc__frame_size(&f) + 3 + LC_ACK_RESERVE > tp_payload_budget(tp))
    return LC_ETOOBIG;
  if (p->unrel_n == LC_UNREL_QUEUE)
    return LC_ELIMIT;
  tp_unrel *u = &p->unrel[(p->unrel_head + p->unrel_n) % LC_UNREL_QUEUE];
  u->data = malloc(len ? len : 1);
  if (!u->data)
    return LC_ENOMEM;
  if (len)
    memcpy(u->data, data, len);
  u->len = len;
  u->queued_at = tp->now;
  p->unrel_n++;
  return 0;
}

int lc__tp_bulk_open(lc__tp *tp, const uint8_t peer[LC_PK_BYTES],
                     uint32_t *stream_id) {
  if (!tp || !peer || !stream_id)
    return LC_EINVAL;
  tp_peer *p = tp_peer_for_send(tp, peer);
  if (!p)
    return LC_ENOPEER;
  tp_bulk_out *b = NULL;
  for (uint32_t i = 0; i < tp->cfg.max_bulk_streams && !b; i++)
    if (!p->bout[i].used)
      b = &p->bout[i];
  if (!b)
    return LC_ELIMIT;
  memset(b, 0, sizeof *b);
  b->chunk_cap = 64;
  b->chunks = calloc(b->chunk_cap, sizeof *b->chunks);
  if (!b->chunks)
    return LC_ENOMEM;
  b->used = 1;
  b->id = p->next_bulk_id++;
  b->chunk_size = tp_bulk_chunk_size(tp);
  b->peer_max_offset = LC_INITIAL_BULK_CREDIT;
  *stream_id = b->id;
  return 0;
}

static tp_chunk *tp_chunk_append(tp_bulk_out *b) {
  if (b->nchunks - b->base_chunk == b->chunk_cap) {
    uint64_t nc = b->chunk_cap * 2;
    tp_chunk *nv = calloc(nc, sizeof *nv);
    if (!nv)
      return NULL;
    for (uint64_t i = b->base_chunk; i < b->nchunks; i++)
      nv[i % nc] = b->chunks[i % b->chunk_cap]; // NOLINT: never NULL here
    free(b->chunks);
    b->chunks = nv;
    b->chunk_cap = nc;
  }
  /* chunks exists once the stream is open (chunk_cap starts at 64) */
  tp_chunk *c = &b->chunks[b->nchunks % b->chunk_cap]; // NOLINT
  memset(c, 0, sizeof *c); // NOLINT(clang-analyzer-core.NonNullParamChecker)
  c->data = malloc(b->chunk_size);
  if (!c->data)
    return NULL;
  b->nchunks++;
  return c;
}

int lc__tp_bulk_write(lc__tp *tp, const uint8_t peer[LC_PK_BYTES],
                      uint32_t stream_id, const uint8_t *data, size_t len,
                      int fin, uint64_t now) {
  if (!tp || !peer || (!data && len))
    return LC_EINVAL;
  if (now > tp->now)
    tp->now = now;
  tp_peer *p = tp_find(tp, peer);
  tp_bulk_out *b = p ? tp_bout_find(tp, p, stream_id) : NULL;
  if (!b)
    return LC_ENOSESSION;
  if (b->fin)
    return LC_ESTATE;
  size_t limit = tp->cfg.bulk_window;
  size_t room = b->buffered < limit ? limit - b->buffered : 0;
  size_t take = len < room ? len : room;
  if (take > INT32_MAX)
    take = INT32_MAX;
  size_t done = 0;
  while (done < take) {
    tp_chunk *c = b->nchunks > b->base_chunk
                      ? &b->chunks[(b->nchunks - 1) % b->chunk_cap]
                      : NULL;
    /* only a chunk that was never sent may grow */
    if (!c || c->len == b->chunk_size || b->next_unsent >= b->nchunks) {
      c = tp_chunk_append(b);
      if (!c)
        break;
    }
    size_t n = tp_min(b->chunk_size - c->len, take - done);
    memcpy(c->data + c->len, data + done, n);
    c->len += (uint32_t)n;
    done += n;
  }
  b->buffered += done;
  b->written += done;
  if (fin && done == len) {
    tp_chunk *c = b->nchunks > b->base_chunk
                      ? &b->chunks[(b->nchunks - 1) % b->chunk_cap]
                      : NULL;
    if (!c || b->next_unsent >= b->nchunks)
      c = tp_chunk_append(b);
    if (!c)
      return done ? (int)done : LC_ENOMEM;
    c->fin = 1;
    b->fin = 1;
  }
  if (p->cur < 0 && !p->hs_active && p->has_addr)
    tp_hs_start(tp, p);
  if (done == 0 && len > 0)
    return LC_EAGAIN;
  return (int)done;
}

int lc__tp_close(lc__tp *tp, const uint8_t peer[LC_PK_BYTES], uint64_t now) {
  if (!tp || !peer)
    return LC_EINVAL;
  if (now > tp->now)
    tp->now = now;
  tp_peer *p = tp_find(tp, peer);
  if (!p || (p->cur < 0 && !p->hs_active))
    return LC_ENOSESSION;
  if (p->cur < 0) {
    tp_session_end(tp, p, LC_DOWN_CLOSED, LC_ECLOSED, 0);
    return 0;
  }
  p->close_pending = 1;
  p->close_code = 0;
  return 0;
}

int lc__tp_session_stats_get(const lc__tp *tp, const uint8_t peer[LC_PK_BYTES],
                             lc__tp_session_stats *st) {
  if (!tp || !peer || !st)
    return LC_EINVAL;
  tp_peer *p = tp_find(tp, peer);
  if (!p)
    return LC_ENOPEER;
  *st = p->st;
  st->established = p->established;
  st->smoothed_rtt_us = tp_srtt(tp, p);
  st->rttvar_us = p->rttvar;
  st->min_rtt_us = p->min_rtt;
  st->latest_rtt_us = p->latest_rtt;
  st->cwnd = p->cwnd;
  st->bytes_in_flight = p->bytes_in_flight;
  st->ssthresh = p->ssthresh;
  st->send_queue_bytes = p->send_bytes;
  return 0;
}

void lc__tp_stats_get(const lc__tp *tp, lc__tp_stats *st) {
  *st = tp->stats;
}
