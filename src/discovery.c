/* discovery.c: announcements, the peer table, expiry, answers to
 * newcomers and peer-list exchange (see discovery.h and PROTOCOL.md,
 * "Discovery").  No I/O: datagrams go out through lc__disc_poll. */
#include "discovery.h"

#include <stdlib.h>
#include <string.h>

#define DISC_TOMBSTONE_US (3600ull * 1000000)
#define DISC_QUEUE_MAX 8192 /* pending datagrams */
#define DISC_PROBED_MAX 256 /* addresses probed recently */
#define DISC_SOLICIT_ROUNDS 3
#define DISC_DGRAM_MAX 1472 /* every discovery datagram fits Ethernet */
/* A change (presence, nickname, network) is announced at once and then
 * DISC_FAST_ROUNDS more times DISC_FAST_GAP_US apart, so one lost datagram
 * does not hide it for a whole interval.  A goodbye goes out twice. */
#define DISC_FAST_ROUNDS 2
#define DISC_FAST_GAP_US 200000
#define DISC_GOODBYE_COPIES 2

typedef struct {
  lc__disc_peer pub;
  int present;
  uint64_t last_ts; /* newest announcement accepted */
  uint8_t last_sig[LC_SIG_BYTES];
  uint64_t last_peers_ts;
  uint64_t addr_heard; /* when pub.addr was last heard */
  uint64_t left_at;    /* tombstones: when it left */
} disc_entry;

enum {
  DISC_OUT_ROUND,       /* the current round's announcement */
  DISC_OUT_REPLY,       /* ANNOUNCE flagged REPLY */
  DISC_OUT_PROBE,       /* ANNOUNCE flagged SOLICIT */
  DISC_OUT_GOODBYE,     /* ANNOUNCE flagged GOODBYE */
  DISC_OUT_PEERS_ALL,   /* PEERS: every present peer except `except` */
  DISC_OUT_PEERS_REMOTE /* PEERS: our remote peers */
};

typedef struct {
  lc__addr to;
  int kind;
  uint8_t except[LC_PK_BYTES];
} disc_out;

typedef struct {
  lc__addr addr;
  uint64_t at;
} disc_probed;

struct lc__disc {
  lc__identity id;
  lc__disc_config cfg;
  char nick[LC_NICK_MAX_BYTES + 1];
  char status[LC_STATUS_MAX_BYTES + 1];
  int presence;

  disc_entry *peers; /* present peers and tombstones */
  size_t npeers, peers_cap;
  size_t npresent;

  lc__addr *targets;
  size_t ntargets;
  lc__subnet *subnets;
  size_t nsubnets;
  lc__addr *statics;
  size_t nstatics;

  disc_out *q; /* ring buffer */
  size_t qhead, qlen, qcap;

  disc_probed probed[DISC_PROBED_MAX];
  size_t nprobed;

  int running, stopped;
  uint64_t now;
  uint64_t next_round;
  int solicit_rounds;
  int fast_rounds;
  uint64_t last_ts;
  uint8_t round_buf[DISC_DGRAM_MAX];
  size_t round_len;

  double tokens;
  uint64_t tokens_at;
  lc__disc_stats st;
};

/* ---- helpers -------------------------------------------------------- */

static uint64_t disc_wall_us(lc__disc *d) {
  return d->now + d->cfg.clock_offset_us;
}

/* Strictly increasing per run, so two announcements never share one. */
static uint64_t disc_next_ts(lc__disc *d) {
  uint64_t w = disc_wall_us(d);
  d->last_ts = w > d->last_ts ? w : d->last_ts + 1;
  return d->last_ts;
}

static uint64_t disc_interval_us(const disc_entry *e) {
  return (uint64_t)e->pub.interval_ms * 1000;
}

static uint64_t disc_random_u32(lc__disc *d) {
  uint32_t r = 0;
  d->cfg.random(d->cfg.random_ctx, &r, sizeof r);
  return r;
}

/* The interval minus up to 20%, so nodes started together drift apart.
 * Never more than the interval: a receiver expires a peer after three of
 * its intervals, and that must mean three announcements missed, not two
 * that happened to come late. */
static uint64_t disc_jittered(lc__disc *d) {
  uint64_t t = d->cfg.interval_us;
  uint64_t span = t / 5;
  uint64_t r = span ? (disc_random_u32(d) * span) >> 32 : 0;
  return t - r;
}

static int disc_addr_is_link_local(const lc__addr *a) {
  if (a->ss.ss_family != AF_INET6)
    return 0;
  const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&a->ss;
  return s->sin6_addr.s6_addr[0] == 0xfe &&
         (s->sin6_addr.s6_addr[1] & 0xc0) == 0x80;
}

int lc__disc_addr_is_local(const lc__disc *d, const lc__addr *a) {
  if (disc_addr_is_link_local(a))
    return 1;
  const uint8_t *ip;
  size_t n;
  if (a->ss.ss_family == AF_INET) {
    ip = (const uint8_t *)&((const struct sockaddr_in *)&a->ss)->sin_addr;
    n = 4;
  } else if (a->ss.ss_family == AF_INET6) {
    ip = ((const struct sockaddr_in6 *)&a->ss)->sin6_addr.s6_addr;
    n = 16;
  } else {
    return 0;
  }
  for (size_t i = 0; i < d->nsubnets; i++) {
    const lc__subnet *s = &d->subnets[i];
    if (s->family != a->ss.ss_family)
      continue;
    size_t k = 0;
    while (k < n && (ip[k] & s->mask[k]) == (s->addr[k] & s->mask[k]))
      k++;
    if (k == n)
      return 1;
  }
  return 0;
}

/* How much we like an address for a peer: local beats remote, IPv4 beats
 * IPv6, a routable IPv6 beats link-local. */
static int disc_addr_rank(const lc__disc *d, const lc__addr *a) {
  int local = lc__disc_addr_is_local(d, a);
  if (a->ss.ss_family == AF_INET)
    return local ? 4 : 1;
  if (disc_addr_is_link_local(a))
    return 2;
  return local ? 3 : 0;
}

static void disc_set_port(lc__addr *a, uint16_t port) {
  if (a->ss.ss_family == AF_INET)
    ((struct sockaddr_in *)&a->ss)->sin_port = htons(port);
  else if (a->ss.ss_family == AF_INET6)
    ((struct sockaddr_in6 *)&a->ss)->sin6_port = htons(port);
}

static int disc_enqueue(lc__disc *d, const lc__addr *to, int kind,
                        const uint8_t *except) {
  if (d->qlen == d->qcap) {
    size_t ncap = d->qcap ? d->qcap * 2 : 64;
    if (ncap > DISC_QUEUE_MAX || d->qlen >= DISC_QUEUE_MAX) {
      d->st.queue_full++;
      return LC_ELIMIT;
    }
    disc_out *nq = malloc(ncap * sizeof *nq);
    if (!nq)
      return LC_ENOMEM;
    for (size_t i = 0; i < d->qlen; i++)
      nq[i] = d->q[(d->qhead + i) % d->qcap];
    free(d->q);
    d->q = nq;
    d->qcap = ncap;
    d->qhead = 0;
  }
  disc_out *o = &d->q[(d->qhead + d->qlen) % d->qcap];
  memset(o, 0, sizeof *o);
  o->to = *to;
  o->kind = kind;
  if (except)
    memcpy(o->except, except, LC_PK_BYTES);
  d->qlen++;
  return 0;
}

/* Answers and probes spend from a token bucket: a flood of forged
 * newcomers must not turn us into an amplifier. */
static int disc_take_token(lc__disc *d) {
  double per_us = d->cfg.reply_per_sec / 1e6;
  d->tokens += (double)(d->now - d->tokens_at) * per_us;
  d->tokens_at = d->now;
  if (d->tokens > d->cfg.reply_burst)
    d->tokens = d->cfg.reply_burst;
  if (d->tokens < 1) {
    d->st.replies_limited++;
    return 0;
  }
  d->tokens -= 1;
  return 1;
}

static disc_entry *disc_find(const lc__disc *d, const uint8_t *key) {
  for (size_t i = 0; i < d->npeers; i++)
    if (memcmp(d->peers[i].pub.key, key, LC_PK_BYTES) == 0)
      return &d->peers[i];
  return NULL;
}

static void disc_event(lc__disc *d, int ev, const disc_entry *e, int detail) {
  if (d->cfg.peer_event)
    d->cfg.peer_event(d->cfg.user, ev, &e->pub, detail);
}

static void disc_leave(lc__disc *d, disc_entry *e, int why) {
  e->present = 0;
  e->left_at = d->now;
  d->npresent--;
  if (why == LC__DISC_GOODBYE)
    d->st.left_goodbye++;
  else
    d->st.left_expired++;
  disc_event(d, LC__DISC_LEFT, e, why);
}

/* A new entry, evicting the oldest tombstone when the table is full. */
static disc_entry *disc_new_entry(lc__disc *d) {
  if (d->npeers >= d->cfg.max_peers) {
    size_t victim = d->npeers;
    for (size_t i = 0; i < d->npeers; i++)
      if (!d->peers[i].present &&
          (victim == d->npeers ||
           d->peers[i].left_at < d->peers[victim].left_at))
        victim = i;
    if (victim == d->npeers)
      return NULL;
    d->peers[victim] = d->peers[--d->npeers];
  }
  if (d->npeers == d->peers_cap) {
    size_t ncap = d->peers_cap ? d->peers_cap * 2 : 16;
    disc_entry *np = realloc(d->peers, ncap * sizeof *np);
    if (!np)
      return NULL;
    d->peers = np;
    d->peers_cap = ncap;
  }
  disc_entry *e = &d->peers[d->npeers++];
  memset(e, 0, sizeof *e);
  return e;
}

/* ---- building datagrams ---------------------------------------------- */

static int disc_sign(lc__disc *d, lc__disc_datagram *dg, uint8_t *buf,
                     size_t cap) {
  int n = lc__disc_encode_body(dg, buf, cap);
  if (n < 0)
    return n;
  uint8_t sig[LC_SIG_BYTES];
  lc__sign(&d->id, buf, (size_t)n, sig);
  return lc__disc_encode_sig(buf, cap, (size_t)n, sig);
}

static int disc_build_announce(lc__disc *d, uint32_t flags, uint8_t *buf,
                               size_t cap) {
  lc__disc_datagram dg;
  memset(&dg, 0, sizeof dg);
  dg.type = LC_DG_ANNOUNCE;
  lc__announce *a = &dg.u.announce;
  a->flags = flags;
  memcpy(a->key, d->id.pk, LC_PK_BYTES);
  a->timestamp_us = disc_next_ts(d);
  a->port = d->cfg.port;
  a->interval_ms = (uint32_t)(d->cfg.interval_us / 1000);
  a->presence = (uint8_t)((flags & LC_ANN_GOODBYE) ? 0 : d->presence);
  a->caps = d->cfg.caps;
  a->nick = d->nick;
  a->nick_len = strlen(d->nick);
  a->status = d->status;
  a->status_len = strlen(d->status);
  return disc_sign(d, &dg, buf, cap);
}

/* An entry for a PEERS list, or 0 if the address cannot be listed
 * (link-local means nothing on another link). */
static int disc_entry_of(const disc_entry *e, lc__peer_entry *pe) {
  const lc__addr *a = &e->pub.addr;
  memset(pe, 0, sizeof *pe);
  memcpy(pe->key, e->pub.key, LC_PK_BYTES);
  if (a->ss.ss_family == AF_INET) {
    const struct sockaddr_in *s = (const struct sockaddr_in *)&a->ss;
    memcpy(pe->ip, &s->sin_addr, 4);
    pe->ip_len = 4;
    pe->port = ntohs(s->sin_port);
  } else if (a->ss.ss_family == AF_INET6 && !disc_addr_is_link_local(a)) {
    const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&a->ss;
    memcpy(pe->ip, &s->sin6_addr, 16);
    pe->ip_len = 16;
    pe->port = ntohs(s->sin6_port);
  } else {
    return 0;
  }
  return pe->port != 0;
}

static int disc_build_peers(lc__disc *d, const disc_out *o, uint8_t *buf,
                            size_t cap) {
  lc__peer_entry entries[LC_PEERS_MAX];
  size_t n = 0;
  for (size_t i = 0; i < d->npeers && n < LC_PEERS_MAX; i++) {
    const disc_entry *e = &d->peers[i];
    if (!e->present)
      continue;
    if (o->kind == DISC_OUT_PEERS_REMOTE && !e->pub.remote)
      continue;
    if (o->kind == DISC_OUT_PEERS_ALL &&
        memcmp(e->pub.key, o->except, LC_PK_BYTES) == 0)
      continue;
    if (disc_entry_of(e, &entries[n]))
      n++;
  }
  if (n == 0)
    return 0;
  lc__disc_datagram dg;
  memset(&dg, 0, sizeof dg);
  dg.type = LC_DG_PEERS;
  memcpy(dg.u.peers.key, d->id.pk, LC_PK_BYTES);
  dg.u.peers.timestamp_us = disc_next_ts(d);
  dg.u.peers.nentries = n;
  dg.u.peers.entries = entries;
  return disc_sign(d, &dg, buf, cap);
}

/* ---- rounds ---------------------------------------------------------- */

/* One announcement, the same bytes to every target: a receiver hearing it
 * on two interfaces sees one timestamp twice, a duplicate, not a replay. */
static void disc_round(lc__disc *d, int solicit) {
  uint32_t flags = solicit ? LC_ANN_SOLICIT : 0;
  int n = disc_build_announce(d, flags, d->round_buf, sizeof d->round_buf);
  if (n < 0) {
    d->round_len = 0;
    return;
  }
  d->round_len = (size_t)n;
  int remotes = 0;
  for (size_t i = 0; i < d->ntargets; i++)
    disc_enqueue(d, &d->targets[i], DISC_OUT_ROUND, NULL);
  for (size_t i = 0; i < d->nstatics; i++)
    disc_enqueue(d, &d->statics[i], DISC_OUT_ROUND, NULL);
  for (size_t i = 0; i < d->npeers; i++) {
    disc_entry *e = &d->peers[i];
    if (!e->present || !e->pub.remote)
      continue;
    remotes++;
    /* a static peer's address is already served above */
    int is_static = 0;
    for (size_t k = 0; k < d->nstatics; k++)
      is_static |= lc__addr_equal(&d->statics[k], &e->pub.addr);
    if (!is_static)
      disc_enqueue(d, &e->pub.addr, DISC_OUT_ROUND, NULL);
  }
  /* tell our LAN whom we reach beyond it */
  if (remotes)
    for (size_t i = 0; i < d->ntargets; i++)
      disc_enqueue(d, &d->targets[i], DISC_OUT_PEERS_REMOTE, NULL);
}

static void disc_round_now(lc__disc *d) {
  int solicit = d->solicit_rounds > 0;
  if (d->solicit_rounds > 0)
    d->solicit_rounds--;
  disc_round(d, solicit);
  if (d->fast_rounds > 0) {
    d->fast_rounds--;
    d->next_round = d->now + DISC_FAST_GAP_US;
  } else {
    d->next_round = d->now + disc_jittered(d);
  }
}

/* ---- public ---------------------------------------------------------- */

void lc__disc_config_default(lc__disc_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->interval_us = 5000000;
  cfg->max_peers = 1024;
  cfg->caps = 1;
  cfg->reply_burst = 200;
  cfg->reply_per_sec = 100;
  cfg->random = lc__crypto_random_cb;
}

int lc__disc_new(lc__disc **out, const lc__identity *id,
                 const lc__disc_config *cfg) {
  *out = NULL;
  if (!id || !cfg || !cfg->random || cfg->port == 0 ||
      cfg->interval_us < 1000000 || cfg->interval_us > 3600000000ull ||
      cfg->max_peers < 1 || cfg->reply_per_sec < 1 || cfg->reply_burst < 1)
    return LC_EINVAL;
  lc__disc *d = calloc(1, sizeof *d);
  if (!d)
    return LC_ENOMEM;
  d->id = *id;
  d->cfg = *cfg;
  strcpy(d->nick, "lanchat");
  d->presence = 1;
  d->tokens = cfg->reply_burst;
  *out = d;
  return 0;
}

void lc__disc_free(lc__disc *d) {
  if (!d)
    return;
  lc__identity_wipe(&d->id);
  free(d->peers);
  free(d->targets);
  free(d->subnets);
  free(d->statics);
  free(d->q);
  free(d);
}

int lc__disc_set_profile(lc__disc *d, const char *nick, int presence,
                         const char *status, uint64_t now) {
  if (!nick)
    nick = d->nick;
  if (!status)
    status = d->status;
  if (presence < 0)
    presence = d->presence;
  size_t nl = strlen(nick), sl = strlen(status);
  if (nl == 0 || nl > LC_NICK_MAX_BYTES || !lc__utf8_valid(nick, nl) ||
      sl > LC_STATUS_MAX_BYTES || !lc__utf8_valid(status, sl) || presence < 1 ||
      presence > 3)
    return LC_EINVAL;
  int changed = strcmp(nick, d->nick) != 0 || strcmp(status, d->status) != 0 ||
                presence != d->presence;
  memmove(d->nick, nick, nl + 1);
  memmove(d->status, status, sl + 1);
  d->presence = presence;
  if (now > d->now)
    d->now = now;
  if (changed && d->running && !d->stopped) {
    d->fast_rounds = DISC_FAST_ROUNDS;
    disc_round_now(d);
  }
  return 0;
}

static int disc_same_addrs(const lc__addr *a, size_t na, const lc__addr *b,
                           size_t nb) {
  if (na != nb)
    return 0;
  for (size_t i = 0; i < na; i++)
    if (!lc__addr_equal(&a[i], &b[i]))
      return 0;
  return 1;
}

int lc__disc_set_targets(lc__disc *d, const lc__addr *targets, size_t ntargets,
                         const lc__subnet *subnets, size_t nsubnets,
                         uint64_t now) {
  if (now > d->now)
    d->now = now;
  int same = disc_same_addrs(d->targets, d->ntargets, targets, ntargets) &&
             d->nsubnets == nsubnets &&
             (nsubnets == 0 ||
              memcmp(d->subnets, subnets, nsubnets * sizeof *subnets) == 0);
  if (same)
    return 0;
  lc__addr *nt = NULL;
  lc__subnet *ns = NULL;
  if (ntargets) {
    nt = malloc(ntargets * sizeof *nt);
    if (!nt)
      return LC_ENOMEM;
    memcpy(nt, targets, ntargets * sizeof *nt);
  }
  if (nsubnets) {
    ns = malloc(nsubnets * sizeof *ns);
    if (!ns) {
      free(nt);
      return LC_ENOMEM;
    }
    memcpy(ns, subnets, nsubnets * sizeof *ns);
  }
  free(d->targets);
  free(d->subnets);
  d->targets = nt;
  d->ntargets = ntargets;
  d->subnets = ns;
  d->nsubnets = nsubnets;
  /* our subnets moved: who is remote may have changed */
  for (size_t i = 0; i < d->npeers; i++)
    if (d->peers[i].present)
      d->peers[i].pub.remote =
          !lc__disc_addr_is_local(d, &d->peers[i].pub.addr);
  if (d->running && !d->stopped) {
    d->solicit_rounds = DISC_SOLICIT_ROUNDS;
    d->fast_rounds = DISC_FAST_ROUNDS;
    disc_round_now(d);
  }
  return 1;
}

int lc__disc_add_static(lc__disc *d, const lc__addr *addr, uint64_t now) {
  for (size_t i = 0; i < d->nstatics; i++)
    if (lc__addr_equal(&d->statics[i], addr))
      return 0;
  lc__addr *ns = realloc(d->statics, (d->nstatics + 1) * sizeof *ns);
  if (!ns)
    return LC_ENOMEM;
  d->statics = ns;
  d->statics[d->nstatics++] = *addr;
  if (now > d->now)
    d->now = now;
  if (d->running && !d->stopped)
    disc_enqueue(d, addr, DISC_OUT_PROBE, NULL);
  return 0;
}

void lc__disc_start(lc__disc *d, uint64_t now) {
  if (d->running)
    return;
  if (now > d->now)
    d->now = now;
  d->tokens_at = d->now;
  d->running = 1;
  d->solicit_rounds = DISC_SOLICIT_ROUNDS;
  disc_round_now(d);
}

void lc__disc_announce_now(lc__disc *d, int solicit, uint64_t now) {
  if (!d->running || d->stopped)
    return;
  if (now > d->now)
    d->now = now;
  if (solicit)
    d->solicit_rounds = DISC_SOLICIT_ROUNDS;
  d->fast_rounds = DISC_FAST_ROUNDS;
  disc_round_now(d);
}

void lc__disc_stop(lc__disc *d, uint64_t now) {
  if (!d->running || d->stopped)
    return;
  if (now > d->now)
    d->now = now;
  d->stopped = 1;
  /* whatever was still queued is moot: the goodbye supersedes it */
  d->qlen = 0;
  for (int copy = 0; copy < DISC_GOODBYE_COPIES; copy++) {
    for (size_t i = 0; i < d->ntargets; i++)
      disc_enqueue(d, &d->targets[i], DISC_OUT_GOODBYE, NULL);
    for (size_t i = 0; i < d->nstatics; i++)
      disc_enqueue(d, &d->statics[i], DISC_OUT_GOODBYE, NULL);
    for (size_t i = 0; i < d->npeers; i++)
      if (d->peers[i].present && d->peers[i].pub.remote)
        disc_enqueue(d, &d->peers[i].pub.addr, DISC_OUT_GOODBYE, NULL);
  }
}

/* ---- receiving -------------------------------------------------------- */

static void disc_copy_str(char *dst, const char *src, size_t len) {
  memcpy(dst, src, len);
  dst[len] = 0;
}

static int disc_recently_probed(lc__disc *d, const lc__addr *a);

static int disc_recv_announce(lc__disc *d, const lc__addr *from,
                              const lc__disc_datagram *dg, const uint8_t *buf) {
  const lc__announce *a = &dg->u.announce;
  d->st.announces_in++;
  if (memcmp(a->key, d->id.pk, LC_PK_BYTES) == 0) {
    d->st.own++;
    return 0;
  }
  disc_entry *e = disc_find(d, a->key);
  lc__addr addr = *from;
  disc_set_port(&addr, a->port);
  if (e && a->timestamp_us <= e->last_ts) {
    if (a->timestamp_us == e->last_ts &&
        memcmp(dg->sig, e->last_sig, LC_SIG_BYTES) == 0) {
      /* the same announcement by another path (two interfaces), or a copy
       * that someone else sends from their own address: it proves nothing
       * about that address, so a better one is probed, and only the
       * peer's fresh REPLY from there moves it (step 5) */
      d->st.duplicates++;
      if (e->present && !lc__addr_equal(&addr, &e->pub.addr) &&
          disc_addr_rank(d, &addr) > disc_addr_rank(d, &e->pub.addr)) {
        d->st.copies_elsewhere++;
        if (d->running && !d->stopped && disc_take_token(d)) {
          if (!disc_recently_probed(d, &addr))
            disc_enqueue(d, &addr, DISC_OUT_PROBE, NULL);
          else
            d->tokens += 1; /* not spent */
        }
      }
      return 0;
    }
    if (e->present) {
      d->st.stale++; /* reordered on the way: harmless */
      return 0;
    }
    d->st.replay++;
    return LC_EREPLAY;
  }
  if (lc__verify(a->key, buf, dg->signed_len, dg->sig) != 0) {
    d->st.bad++;
    return LC_EAUTH;
  }
  if (a->flags & LC_ANN_GOODBYE) {
    if (e) {
      e->last_ts = a->timestamp_us;
      memcpy(e->last_sig, dg->sig, LC_SIG_BYTES);
      if (e->present)
        disc_leave(d, e, LC__DISC_GOODBYE);
    }
    return 0;
  }
  int appeared = 0;
  if (!e) {
    e = disc_new_entry(d);
    if (!e) {
      d->st.refused_full++;
      return LC_ELIMIT;
    }
    memcpy(e->pub.key, a->key, LC_PK_BYTES);
  }
  int changed = 0;
  if (!e->present) {
    /* a tombstone comes back, or a newcomer: start from its announcement */
    appeared = 1;
    e->present = 1;
    d->npresent++;
    d->st.appeared++;
    e->pub.addr = addr;
    e->addr_heard = d->now;
    e->last_peers_ts = 0;
  } else {
    if (a->nick_len != strlen(e->pub.nick) ||
        memcmp(a->nick, e->pub.nick, a->nick_len) != 0)
      changed |= LC__DISC_CH_NICK;
    if (a->presence != e->pub.presence ||
        a->status_len != strlen(e->pub.status) ||
        memcmp(a->status, e->pub.status, a->status_len) != 0)
      changed |= LC__DISC_CH_PRESENCE;
    if (a->caps != e->pub.caps)
      changed |= LC__DISC_CH_CAPS;
    if (lc__addr_equal(&addr, &e->pub.addr)) {
      e->addr_heard = d->now;
    } else {
      /* keep an address while it is heard; move to a better one, or to
       * any when the current one fell silent */
      uint64_t quiet = disc_interval_us(e) * 3 / 2;
      if (d->now - e->addr_heard > quiet ||
          disc_addr_rank(d, &addr) > disc_addr_rank(d, &e->pub.addr)) {
        e->pub.addr = addr;
        e->addr_heard = d->now;
        changed |= LC__DISC_CH_ADDR;
      }
    }
  }
  e->last_ts = a->timestamp_us;
  memcpy(e->last_sig, dg->sig, LC_SIG_BYTES);
  disc_copy_str(e->pub.nick, a->nick, a->nick_len);
  disc_copy_str(e->pub.status, a->status, a->status_len);
  e->pub.presence = a->presence;
  e->pub.caps = a->caps;
  e->pub.interval_ms = a->interval_ms;
  e->pub.remote = !lc__disc_addr_is_local(d, &e->pub.addr);
  e->pub.last_heard = d->now;
  e->pub.last_seen_ms = disc_wall_us(d) / 1000;

  if (!(a->flags & LC_ANN_REPLY) && (appeared || (a->flags & LC_ANN_SOLICIT)) &&
      d->running && !d->stopped && disc_take_token(d))
    disc_enqueue(d, &addr, DISC_OUT_REPLY, NULL);
  /* a remote newcomer learns at once whom we hear */
  if (appeared && e->pub.remote && d->running && !d->stopped)
    disc_enqueue(d, &addr, DISC_OUT_PEERS_ALL, e->pub.key);

  if (appeared)
    disc_event(d, LC__DISC_APPEARED, e, 0);
  else if (changed)
    disc_event(d, LC__DISC_CHANGED, e, changed);
  return 0;
}

static int disc_recently_probed(lc__disc *d, const lc__addr *a) {
  size_t w = 0;
  int found = 0;
  for (size_t i = 0; i < d->nprobed; i++) {
    if (d->now - d->probed[i].at >= d->cfg.interval_us)
      continue; /* forget old ones as we go */
    if (lc__addr_equal(&d->probed[i].addr, a))
      found = 1;
    d->probed[w++] = d->probed[i];
  }
  d->nprobed = w;
  if (found)
    return 1;
  if (d->nprobed == DISC_PROBED_MAX)
    return 1; /* too many at once: the next list brings them again */
  d->probed[d->nprobed].addr = *a;
  d->probed[d->nprobed].at = d->now;
  d->nprobed++;
  return 0;
}

static int disc_recv_peers(lc__disc *d, const lc__disc_datagram *dg,
                           const uint8_t *buf) {
  const lc__peers *p = &dg->u.peers;
  d->st.peers_in++;
  if (memcmp(p->key, d->id.pk, LC_PK_BYTES) == 0) {
    d->st.own++;
    return 0;
  }
  disc_entry *e = disc_find(d, p->key);
  if (!e || !e->present)
    return LC_ENOPEER; /* a list is only worth the word of a peer we know */
  if (p->timestamp_us <= e->last_peers_ts) {
    d->st.duplicates++;
    return 0;
  }
  if (lc__verify(p->key, buf, dg->signed_len, dg->sig) != 0) {
    d->st.bad++;
    return LC_EAUTH;
  }
  e->last_peers_ts = p->timestamp_us;
  if (!d->running || d->stopped)
    return 0;
  for (size_t i = 0; i < p->nentries; i++) {
    const lc__peer_entry *pe = &p->entries[i];
    if (memcmp(pe->key, d->id.pk, LC_PK_BYTES) == 0)
      continue;
    const disc_entry *known = disc_find(d, pe->key);
    if (known && known->present)
      continue;
    lc__addr a;
    memset(&a, 0, sizeof a);
    if (pe->ip_len == 4) {
      struct sockaddr_in *s = (struct sockaddr_in *)&a.ss;
      s->sin_family = AF_INET;
      memcpy(&s->sin_addr, pe->ip, 4);
      s->sin_port = htons(pe->port);
      a.len = sizeof *s;
    } else {
      struct sockaddr_in6 *s = (struct sockaddr_in6 *)&a.ss;
      s->sin6_family = AF_INET6;
      memcpy(&s->sin6_addr, pe->ip, 16);
      s->sin6_port = htons(pe->port);
      a.len = sizeof *s;
      if (disc_addr_is_link_local(&a))
        continue; /* meaningless without the lister's link */
    }
    if (!disc_take_token(d))
      continue;
    if (disc_recently_probed(d, &a)) {
      d->tokens += 1; /* not spent */
      continue;
    }
    disc_enqueue(d, &a, DISC_OUT_PROBE, NULL);
  }
  return 0;
}

int lc__disc_recv(lc__disc *d, const lc__addr *from, const uint8_t *buf,
                  size_t len, uint64_t now) {
  if (now > d->now)
    d->now = now;
  lc__disc_datagram dg;
  lc__peer_entry entries[LC_PEERS_MAX];
  int rc = lc__disc_decode(&dg, buf, len, entries);
  if (rc < 0) {
    d->st.bad++;
    return rc;
  }
  if (dg.type == LC_DG_ANNOUNCE)
    return disc_recv_announce(d, from, &dg, buf);
  return disc_recv_peers(d, &dg, buf);
}

/* ---- timers and output ------------------------------------------------ */

static void disc_expire(lc__disc *d) {
  for (size_t i = 0; i < d->npeers; i++) {
    disc_entry *e = &d->peers[i];
    if (e->present && d->now - e->pub.last_heard >= 3 * disc_interval_us(e))
      disc_leave(d, e, LC__DISC_EXPIRED);
  }
  /* forget tombstones after an hour (swap-remove, so walk backwards) */
  for (size_t i = d->npeers; i-- > 0;) {
    disc_entry *e = &d->peers[i];
    if (!e->present && d->now - e->left_at >= DISC_TOMBSTONE_US)
      d->peers[i] = d->peers[--d->npeers];
  }
}

int lc__disc_poll(lc__disc *d, uint64_t now, lc__addr *to, uint8_t *buf,
                  size_t cap) {
  if (now > d->now)
    d->now = now;
  if (!d->running)
    return 0;
  if (!d->stopped) {
    disc_expire(d);
    if (d->now >= d->next_round)
      disc_round_now(d);
  }
  while (d->qlen) {
    disc_out o = d->q[d->qhead];
    d->qhead = (d->qhead + 1) % d->qcap;
    d->qlen--;
    int n = 0;
    switch (o.kind) {
    case DISC_OUT_ROUND:
      if (d->round_len > cap)
        continue;
      memcpy(buf, d->round_buf, d->round_len);
      n = (int)d->round_len;
      d->st.announces_out++;
      break;
    case DISC_OUT_REPLY:
      n = disc_build_announce(d, LC_ANN_REPLY, buf, cap);
      d->st.replies_out++;
      d->st.announces_out++;
      break;
    case DISC_OUT_PROBE:
      n = disc_build_announce(d, LC_ANN_SOLICIT, buf, cap);
      d->st.probes_out++;
      d->st.announces_out++;
      break;
    case DISC_OUT_GOODBYE:
      n = disc_build_announce(d, LC_ANN_GOODBYE, buf, cap);
      d->st.announces_out++;
      break;
    default:
      n = disc_build_peers(d, &o, buf, cap);
      if (n > 0)
        d->st.peers_out++;
      break;
    }
    if (n <= 0)
      continue;
    *to = o.to;
    return n;
  }
  return 0;
}

uint64_t lc__disc_next_wakeup(const lc__disc *d) {
  if (!d->running)
    return LC_NEVER;
  if (d->qlen)
    return d->now;
  if (d->stopped)
    return LC_NEVER;
  uint64_t t = d->next_round;
  for (size_t i = 0; i < d->npeers; i++) {
    const disc_entry *e = &d->peers[i];
    uint64_t at = e->present ? e->pub.last_heard + 3 * disc_interval_us(e)
                             : e->left_at + DISC_TOMBSTONE_US;
    if (at < t)
      t = at;
  }
  return t;
}

const lc__disc_peer *lc__disc_peer_find(const lc__disc *d,
                                        const uint8_t key[LC_PK_BYTES]) {
  const disc_entry *e = disc_find(d, key);
  return e && e->present ? &e->pub : NULL;
}

size_t lc__disc_peer_count(const lc__disc *d) {
  return d->npresent;
}

const lc__disc_peer *lc__disc_peer_at(const lc__disc *d, size_t i) {
  for (size_t k = 0; k < d->npeers; k++)
    if (d->peers[k].present && i-- == 0)
      return &d->peers[k].pub;
  return NULL;
}

void lc__disc_stats_get(const lc__disc *d, lc__disc_stats *st) {
  *st = d->st;
}
