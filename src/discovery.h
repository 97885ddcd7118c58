/* discovery.h: who is on the LAN.  A sans-I/O state machine like the
 * transport: it is fed ANNOUNCE and PEERS datagrams, the time, the list of
 * places to announce to and our own subnets; it hands out datagrams to send
 * and raises peer events.  The node drives it from libuv, tests/sim from a
 * virtual clock.  docs/PROTOCOL.md ("Discovery") is the normative spec.
 */
#ifndef LC_DISCOVERY_H
#define LC_DISCOVERY_H

#include "crypto.h"
#include "transport.h" /* lc__addr, LC_NEVER */

/* One of our own subnets: a peer whose address lies in one is "local"
 * (heard by broadcast), any other is "remote". */
typedef struct {
  int family; /* AF_INET or AF_INET6 */
  uint8_t addr[16];
  uint8_t mask[16]; /* netmask, same length as the address */
} lc__subnet;

/* What discovery knows of a present peer.  Owned by the discovery; a
 * pointer stays valid until the next call into it. */
typedef struct {
  uint8_t key[LC_PK_BYTES];
  lc__addr addr; /* its unicast address */
  char nick[LC_NICK_MAX_BYTES + 1];
  char status[LC_STATUS_MAX_BYTES + 1];
  int presence;
  uint64_t caps;
  uint32_t interval_ms; /* its announcement interval */
  int remote;
  uint64_t last_heard;   /* our monotonic clock */
  uint64_t last_seen_ms; /* our wall clock */
} lc__disc_peer;

enum { LC__DISC_APPEARED = 1, LC__DISC_CHANGED = 2, LC__DISC_LEFT = 3 };
enum { LC__DISC_GOODBYE = 1, LC__DISC_EXPIRED = 2 }; /* LEFT detail */
/* CHANGED detail: which fields changed */
enum {
  LC__DISC_CH_NICK = 1,
  LC__DISC_CH_PRESENCE = 2, /* presence or status */
  LC__DISC_CH_ADDR = 4,
  LC__DISC_CH_CAPS = 8
};

typedef struct {
  uint16_t port;            /* our unicast port, announced; required */
  uint64_t interval_us;     /* 1 s .. 1 h; default 5 s */
  uint32_t max_peers;       /* present + remembered; default 1024 */
  uint64_t caps;            /* announced capability bits */
  uint64_t clock_offset_us; /* wall clock = now + offset */
  uint32_t reply_burst;     /* answer budget; default 200 */
  uint32_t reply_per_sec;   /* default 100 */
  void (*random)(void *ctx, void *buf, size_t len); /* required */
  void *random_ctx;
  /* A peer appeared, changed or left.  p is borrowed for the call. */
  void (*peer_event)(void *user, int event, const lc__disc_peer *p, int detail);
  void *user;
} lc__disc_config;

void lc__disc_config_default(lc__disc_config *cfg);

typedef struct lc__disc lc__disc;

/* Creates a discovery for identity id (copied).  Errors: LC_EINVAL (port
 * 0, interval out of range, no random), LC_ENOMEM. */
int lc__disc_new(lc__disc **out, const lc__identity *id,
                 const lc__disc_config *cfg);
void lc__disc_free(lc__disc *d);

/* Our nickname, presence and status (copied; validated as the wire
 * requires).  Announced at once when running and something changed.
 * Errors: LC_EINVAL. */
int lc__disc_set_profile(lc__disc *d, const char *nick, int presence,
                         const char *status, uint64_t now);

/* Where announcements go (broadcast addresses and ff02::1%if, with the
 * discovery port) and our own subnets.  Both copied.  When running and
 * anything changed, announces at once with SOLICIT.  Returns 1 if it
 * changed, 0 if not, LC_ENOMEM. */
int lc__disc_set_targets(lc__disc *d, const lc__addr *targets, size_t ntargets,
                         const lc__subnet *subnets, size_t nsubnets,
                         uint64_t now);

/* A static peer address (host:port), probed at every announcement. */
int lc__disc_add_static(lc__disc *d, const lc__addr *addr, uint64_t now);

/* Starts announcing (the first round at once, with SOLICIT). */
void lc__disc_start(lc__disc *d, uint64_t now);
/* Queues one GOODBYE to every target, static and remote peer; nothing is
 * announced after it.  Drain with lc__disc_poll. */
void lc__disc_stop(lc__disc *d, uint64_t now);

/* Announces at once to every target (a new round, with SOLICIT): the
 * node's answer to "the network came back". */
void lc__disc_announce_now(lc__disc *d, int solicit, uint64_t now);

/* Feeds a received ANNOUNCE or PEERS datagram.  Returns 0 or why it was
 * dropped: decoder errors, LC_EAUTH (signature), LC_EREPLAY (older than
 * one already accepted), LC_ELIMIT (table full), LC_ENOPEER (PEERS from a
 * peer that is not present).  A duplicate or our own announcement returns
 * 0. */
int lc__disc_recv(lc__disc *d, const lc__addr *from, const uint8_t *buf,
                  size_t len, uint64_t now);

/* Runs timers (announcements, expiry) and writes the next datagram to
 * send into buf.  Returns its length, or 0 if nothing is due. */
int lc__disc_poll(lc__disc *d, uint64_t now, lc__addr *to, uint8_t *buf,
                  size_t cap);

/* When lc__disc_poll next has work (LC_NEVER if none). */
uint64_t lc__disc_next_wakeup(const lc__disc *d);

/* Present peers. */
const lc__disc_peer *lc__disc_peer_find(const lc__disc *d,
                                        const uint8_t key[LC_PK_BYTES]);
size_t lc__disc_peer_count(const lc__disc *d);
/* The i-th present peer (0 <= i < count), in no particular order. */
const lc__disc_peer *lc__disc_peer_at(const lc__disc *d, size_t i);

/* 1 if addr lies in one of our subnets (or is IPv6 link-local). */
int lc__disc_addr_is_local(const lc__disc *d, const lc__addr *addr);

typedef struct {
  uint64_t announces_in, announces_out, peers_in, peers_out;
  uint64_t replies_out, probes_out;
  uint64_t own, duplicates, stale; /* dropped quietly */
  uint64_t copies_elsewhere;       /* of the duplicates: from a better address
                                      than the peer's, probed, not believed */
  uint64_t bad;                    /* malformed, bad signature */
  uint64_t replay;                 /* older than a tombstone */
  uint64_t refused_full, replies_limited, queue_full;
  uint64_t appeared, left_goodbye, left_expired;
} lc__disc_stats;

void lc__disc_stats_get(const lc__disc *d, lc__disc_stats *st);

#endif /* LC_DISCOVERY_H */
