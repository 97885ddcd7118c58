/* sim.h: a deterministic network simulator for the transport.
 *
 * It owns a virtual clock (microseconds), a seeded generator, N transports
 * (lc__tp) and the directed links between them, and runs them from one event
 * queue.  Everything random (link behaviour, every node's ephemeral keys and
 * instance, identities) is drawn from streams derived from one 64-bit seed,
 * so the same seed replays a run byte for byte.  Every failure it reports
 * names that seed; LC_SIM_SEED=<seed> replays it, and LC_SIM_TRACE=1 prints
 * every datagram's fate (sent, lost, cut, dropped, received) on stderr.
 */
#ifndef LC_SIM_H
#define LC_SIM_H

#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>

#include "transport.h"

#define SIM_MAX_NODES 24
#define SIM_PORT 7000

/* ---- the seeded generator (xoshiro256**, seeded through splitmix64) --- */
typedef struct {
  uint64_t s[4];
} sim_rng;

uint64_t sim_splitmix64(uint64_t *state);
void sim_rng_seed(sim_rng *r, uint64_t seed);
uint64_t sim_rng_next(sim_rng *r);
/* Uniform in [0, n); 0 when n is 0. */
uint64_t sim_rng_below(sim_rng *r, uint64_t n);
/* Uniform in [lo, hi] (inclusive). */
uint64_t sim_rng_range(sim_rng *r, uint64_t lo, uint64_t hi);
/* Uniform in [0, 1). */
double sim_rng_double(sim_rng *r);
void sim_rng_fill(sim_rng *r, void *buf, size_t len);

/* The seed for run `index` of a test: LC_SIM_SEED if set (to replay one
 * failure), else base + index. */
uint64_t sim_seed(uint64_t base, uint64_t index);
/* 1 if LC_SIM_SEED is set (multi-seed tests then run only that one). */
int sim_seed_from_env(void);

/* ---- links --------------------------------------------------------------
 * One per ordered pair of nodes.  A datagram is tail-dropped if the queue is
 * full, otherwise it departs when the link is free (serialisation at
 * bandwidth_bps), may be lost, and arrives after delay +- jitter, plus an
 * extra reordering delay for a fraction of packets; it may be duplicated
 * (the copy gets its own delay). */
typedef struct {
  double loss;             /* probability a datagram is lost, 0..1 */
  double dup;              /* probability it is delivered twice */
  double reorder;          /* fraction given an extra delay */
  uint64_t reorder_max_us; /* that extra delay is uniform in [0, this] */
  uint64_t delay_us;       /* one-way propagation delay */
  uint64_t jitter_us;      /* delay is uniform in [delay-j, delay+j] */
  uint64_t bandwidth_bps;  /* 0: unlimited (no serialisation) */
  size_t queue_bytes;      /* bytes waiting to depart; 0: unlimited (an
                              idle link takes any one datagram) */
  int partitioned;         /* 1: everything is dropped */
} sim_link_params;

typedef struct {
  uint64_t sent;        /* datagrams offered to the link */
  uint64_t delivered;   /* handed to the receiving transport */
  uint64_t lost;        /* random loss */
  uint64_t duplicated;  /* extra copies made */
  uint64_t queue_drops; /* tail drops */
  uint64_t cut;         /* dropped by a partition */
  uint64_t bytes_sent;  /* bytes offered */
  uint64_t max_backlog; /* bytes queued, at worst */
} sim_link_stats;

/* ---- what each node saw (for assertions) ------------------------------ */
typedef struct {
  int peer; /* node index of the sender */
  uint8_t msg_id[LC_MSG_ID_BYTES];
  uint8_t *data;
  size_t len;
  uint64_t order; /* global event sequence number */
  uint64_t time;
} sim_msg;

typedef struct {
  int peer;
  uint8_t msg_id[LC_MSG_ID_BYTES];
  int err; /* message_failed only */
  uint64_t order, time;
} sim_ack;

/* A message this node queued with sim_send_msg. */
typedef struct {
  int to;
  uint64_t counter;
  uint8_t msg_id[LC_MSG_ID_BYTES];
  size_t len;
  uint64_t hash; /* of the data */
  uint64_t time;
} sim_sent;

typedef struct {
  int peer;
  uint32_t stream_id;
  uint64_t final_size;
  uint64_t time;
} sim_bulk_event;

typedef struct sim sim;

/* Hooks a test may install. */
typedef void sim_bulk_fn(void *ctx, sim *s, int node, int peer,
                         uint32_t stream_id, uint64_t offset,
                         const uint8_t *data, size_t len);
typedef void sim_msg_fn(void *ctx, sim *s, int node, int peer,
                        const uint8_t msg_id[LC_MSG_ID_BYTES],
                        const uint8_t *data, size_t len);
/* Called after every lc__tp_poll, for every session the node has. */
typedef void sim_poll_fn(void *ctx, sim *s, int node, int peer,
                         const lc__tp_session_stats *st);
/* Sees every datagram a node sends, before its link.  buf may be changed
 * in place (tamper) and copied (capture); return 0 to pass it on, 1 to drop
 * it. */
typedef int sim_filter_fn(void *ctx, sim *s, int from, int to, uint8_t *buf,
                          size_t len);
typedef void sim_timer_fn(void *ctx, sim *s);

/* Every transport callback, as it happens (transcripts, demos). */
enum {
  SIM_E_UP = 1,
  SIM_E_DOWN,       /* arg: reason */
  SIM_E_MSG,        /* msg_id, data, len */
  SIM_E_ACKED,      /* msg_id */
  SIM_E_FAILED,     /* msg_id, arg: error */
  SIM_E_UNRELIABLE, /* data, len */
  SIM_E_BULK_DONE,  /* arg: stream id, len: final size */
  SIM_E_BULK_ACKED  /* arg: stream id */
};
typedef void sim_event_fn(void *ctx, sim *s, int node, int kind, int peer,
                          const uint8_t *msg_id, const uint8_t *data,
                          size_t len, int64_t arg);
typedef int sim_pred_fn(void *ctx, sim *s);

typedef struct {
  void *owner; /* the sim */
  lc__tp *tp;
  lc__identity id;
  lc__addr addr;
  lc__tp_config cfg;
  sim_rng rng; /* the transport's randomness */
  int index;
  int restarts;

  sim_msg *msgs;
  size_t nmsgs, msgs_cap;
  sim_ack *acked;
  size_t nacked, acked_cap;
  sim_ack *failed;
  size_t nfailed, failed_cap;
  sim_sent *sent;
  size_t nsent, sent_cap;
  sim_bulk_event *bulk_done;
  size_t nbulk_done, bulk_done_cap;
  sim_bulk_event *bulk_acked;
  size_t nbulk_acked, bulk_acked_cap;

  uint64_t counter; /* next message counter */
  uint64_t ups, downs;
  int last_down_reason;
  uint64_t unrel_count, unrel_bytes;
  uint64_t bulk_bytes; /* through bulk() */
  uint64_t datagrams_sent;
  uint64_t max_burst; /* datagrams out of one drain */

  /* The application refuses a message it is offered (its store failed,
   * say) with this probability; decided by a hash of the message id and
   * the time, so it draws nothing from the simulation's generators. */
  double refuse;
  uint64_t refusals;

  /* With cfg.hold_delivered, messages the application took wait here until
   * the node's next poll commits them (lc__tp_commit), as the node commits
   * a receive batch; a commit fails with probability commit_fail (the
   * messages are dropped and offered again), and a restart loses them. */
  double commit_fail;
  uint64_t commits, commit_fails;
  sim_msg *held;
  size_t nheld, held_cap;

  sim_msg_fn *on_msg;
  void *on_msg_ctx;
  sim_bulk_fn *on_bulk;
  void *on_bulk_ctx;
} sim_node;

/* Creates a simulator.  Starts at virtual time 1 s. */
sim *sim_new(uint64_t seed);
void sim_free(sim *s);

uint64_t sim_seed_of(const sim *s);
uint64_t sim_now(const sim *s);
sim_rng *sim_rng_of(sim *s); /* the workload stream (not the links') */
int sim_node_count(const sim *s);
sim_node *sim_node_get(sim *s, int i);
/* The node whose identity is pk, or -1. */
int sim_node_by_pk(const sim *s, const uint8_t pk[LC_PK_BYTES]);

/* The configuration sim_add_node uses when given NULL: the transport's
 * defaults.  random, random_ctx, cb, user, clock_offset_us are always
 * replaced by the simulator's. */
void sim_default_config(lc__tp_config *cfg);

/* Adds a node (address 10.0.0.<i+1>:7000) with an identity derived from the
 * seed, and tells it and every other node each other's address.  Returns
 * the index, or a negative code. */
int sim_add_node(sim *s, const lc__tp_config *cfg);

/* Frees node i's transport and creates a new one with the same identity and
 * configuration (a new instance: what a process restart looks like). */
int sim_node_restart(sim *s, int i);

/* Link parameters (every link starts with zeroes: perfect, instant). */
void sim_link_set(sim *s, int from, int to, const sim_link_params *p);
void sim_link_set_both(sim *s, int a, int b, const sim_link_params *p);
sim_link_params *sim_link_params_of(sim *s, int from, int to);
const sim_link_stats *sim_link_stats_of(const sim *s, int from, int to);
void sim_partition(sim *s, int a, int b, int on);

/* Message ids are (sender, counter) so a failure names the message. */
void sim_msg_id(int sender, uint64_t counter, uint8_t out[LC_MSG_ID_BYTES]);
/* Deterministic content for (sender, counter). */
void sim_msg_fill(int sender, uint64_t counter, uint8_t *buf, size_t len);
uint64_t sim_hash(const void *buf, size_t len);

/* Queues a message from -> to of len bytes of sim_msg_fill content, with
 * the next counter of the sender, and logs it in the sender's `sent`.
 * Returns lc__tp_send_msg's result. */
int sim_send_msg(sim *s, int from, int to, size_t len);
/* Same with caller-provided bytes. */
int sim_send_msg_data(sim *s, int from, int to, const uint8_t *data,
                      size_t len);
int sim_send_unreliable(sim *s, int from, int to, const uint8_t *data,
                        size_t len);
/* Tells the simulator a node's transport has work (after calling lc__tp_*
 * directly). */
void sim_touch(sim *s, int node);

/* Schedules fn at virtual time t (>= now). */
void sim_at(sim *s, uint64_t t, sim_timer_fn *fn, void *ctx);
/* Delivers a copy of buf to node `to`, as if sent by `from`, at time t. */
void sim_inject(sim *s, int from, int to, const uint8_t *buf, size_t len,
                uint64_t t);

void sim_set_filter(sim *s, sim_filter_fn *fn, void *ctx);
void sim_set_poll_hook(sim *s, sim_poll_fn *fn, void *ctx);
void sim_set_event_hook(sim *s, sim_event_fn *fn, void *ctx);
/* The congestion invariant checked after every poll, for every session.
 * SIM_CWND_ON_SEND (the default): sending may never take bytes_in_flight
 * above cwnd; a poll that emitted a datagram and grew bytes_in_flight beyond
 * cwnd is a fault.  (RFC 9002: a window cut below what is already in flight
 * is legal, and drains as acknowledgements arrive.)  SIM_CWND_STRICT:
 * bytes_in_flight <= cwnd at every poll, whatever happened.
 * LC_SIM_CWND=strict in the environment makes STRICT the default. */
enum { SIM_CWND_ON_SEND = 0, SIM_CWND_STRICT = 1 };
void sim_set_cwnd_mode(sim *s, int mode);
/* Tolerance of the invariant (default 0). */
void sim_set_cwnd_slack(sim *s, uint64_t bytes);
/* Polls that found bytes_in_flight > cwnd whatever the mode, and the worst
 * excess. */
uint64_t sim_over_cwnd(const sim *s, uint64_t *max_over);

/* Runs events up to and including virtual time t; the clock ends at t.
 * Returns 0, or -1 after a failure (livelock, runaway burst); see
 * sim_failed. */
int sim_run_until(sim *s, uint64_t t);
/* Runs while pred returns non-zero, up to virtual time deadline.  Returns 0
 * when pred became 0, 1 on reaching the deadline, -1 after a failure. */
int sim_run_while(sim *s, sim_pred_fn *pred, void *ctx, uint64_t deadline);

/* The first failure (invariant, livelock, ...) as text, or NULL. */
const char *sim_failed(const sim *s);
uint64_t sim_invariant_violations(const sim *s);
uint64_t sim_stalls(const sim *s); /* livelock nudges */
uint64_t sim_events(const sim *s);
/* A hash over everything that happened: every datagram's bytes and time,
 * every callback with its arguments. */
uint64_t sim_trace_hash(const sim *s);

/* Checks that every message `from` sent to `to` with sim_send_msg arrived
 * exactly once, in order, intact, and (if want_acked) was acknowledged
 * exactly once, and that none failed.  Returns 0, or -1 after printing what
 * is wrong (with the seed). */
int sim_check_delivery(sim *s, int from, int to, int want_acked);
/* 1 if all of from's messages to `to` have been delivered (and acked). */
int sim_all_delivered(sim *s, int from, int to, int want_acked);

/* 1 while some message between any two nodes is undelivered or unacked
 * (a sim_pred_fn for sim_run_while). */
int sim_pred_pending(void *ctx, sim *s);

/* In cmocka tests (include <cmocka.h> first): fails the test, naming the
 * seed, unless cond holds. */
#ifdef fail_msg
#define SIM_CHECK(s, cond, ...)                                                \
  do {                                                                         \
    if (!(cond)) {                                                             \
      sim_report((s), __VA_ARGS__);                                            \
      fail_msg("%s:%d: %s (seed %" PRIu64 ", replay: LC_SIM_SEED=%" PRIu64     \
               ")",                                                            \
               __FILE__, __LINE__, #cond, sim_seed_of(s), sim_seed_of(s));     \
    }                                                                          \
  } while (0)
#endif

/* Prints "sim seed=<seed> (replay: LC_SIM_SEED=<seed>): " + message to
 * stderr. */
void sim_report(const sim *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif /* LC_SIM_H */
