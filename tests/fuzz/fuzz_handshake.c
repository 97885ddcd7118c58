/* fuzz_handshake.c: libFuzzer harness for the handshake, as the transport
 * runs it in both roles.
 *
 * The harness plays two peers, A and B, with the crypto API (plus a HELLO
 * signed with the transport's own identity, which must be refused).  The
 * fuzz input is a list of chunks, [selector][len][len bytes]; the
 * selector's low 3 bits pick the step (HS_*), its high bits a parameter:
 * a well-formed HELLO from A, B or the transport itself, with a timestamp
 * moved back or forth by the chunk, from one of three addresses, possibly
 * with one byte flipped; a raw datagram; a replay of an earlier one; the
 * transport connecting to A or B (its HELLO must open under that peer's
 * key, and its timestamps never go back); the peer's WELCOME to the
 * transport's latest HELLO, possibly flipped or sent twice; a time
 * advance; a packet sealed under the keys a handshake gave; the closing
 * and sending API.  Every datagram the transport sends must decode, and a
 * WELCOME it sends to one of our untouched HELLOs must verify under the
 * state that HELLO left: the harness aborts if not.
 *
 * Deterministic: fixed identities, a seeded generator, a virtual clock.
 * Built with clang -fsanitize=fuzzer by tools/fuzz, and with any compiler
 * plus corpus_main.c to replay tests/fuzz/corpus/handshake in the suite.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "transport.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FH_CLOCK_OFFSET 1700000000000000ull
#define FH_RING 8
#define FH_PENDING 4 /* our HELLOs whose WELCOME we can check, per peer */
#define FH_MAX_DRAIN 64

enum {
  FH_HELLO = 0,   /* a HELLO from A, B or the transport's own key */
  FH_RAW = 1,     /* the chunk is a datagram */
  FH_REPLAY = 2,  /* one of the last datagrams we sent, again */
  FH_CONNECT = 3, /* the transport starts a handshake with A or B */
  FH_WELCOME = 4, /* A or B answers the transport's latest HELLO */
  FH_TIME = 5,    /* advance the clock */
  FH_DATA = 6,    /* a packet under the keys of the last handshake */
  FH_API = 7      /* close, send, move, close all */
};

typedef struct {
  uint64_t s;
} fh_rng;

static void fh_random(void *ctx, void *buf, size_t len) {
  fh_rng *r = ctx;
  uint8_t *p = buf;
  for (size_t i = 0; i < len; i++) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    p[i] = (uint8_t)(z ^ (z >> 31));
  }
}

/* One of our HELLOs (as initiator) that the transport may answer. */
typedef struct {
  int used;
  lc__hs hs;
} fh_sent;

/* A peer the harness plays. */
typedef struct {
  const lc__identity *id;
  uint64_t ts; /* the newest HELLO timestamp we used */
  fh_sent sent[FH_PENDING];
  unsigned sent_next;
  /* the transport's latest HELLO to us, read, not yet answered */
  int have_theirs;
  lc__hs theirs;
  uint32_t theirs_index;
  uint64_t theirs_ts; /* timestamps of the transport's HELLOs to us */
  lc__hello theirs_last;
  int any_theirs;
  /* keys from the last completed handshake */
  int have_keys;
  lc__keypair kp;
  uint64_t pn;
} fh_peer;

typedef struct {
  lc__tp *tp;
  fh_rng rng;
  uint64_t now;
  uint32_t next_index;
  fh_peer peer[2];
  lc__addr addr[3];
  uint8_t ring[FH_RING][LC_DATAGRAM_MAX];
  size_t ring_len[FH_RING];
  unsigned ring_from[FH_RING];
  unsigned ring_next;
  uint8_t out[LC_DATAGRAM_MAX];
  uint8_t buf[LC_DATAGRAM_MAX];
  uint8_t ct[LC_DATAGRAM_MAX];
  uint8_t pt[LC_DATAGRAM_MAX];
} fh_state;

static lc__identity fh_tp_id, fh_a_id, fh_b_id;
static int fh_ready;

static void fh_fail(const char *what) {
  fprintf(stderr, "fuzz_handshake: %s\n", what);
  abort();
}

static void fh_init_once(void) {
  if (fh_ready)
    return;
  if (lc__crypto_init() != 0)
    fh_fail("crypto init");
  uint8_t seed[32];
  memset(seed, 0x31, sizeof seed);
  if (lc__identity_generate(&fh_tp_id, seed) != 0)
    fh_fail("identity");
  memset(seed, 0x32, sizeof seed);
  if (lc__identity_generate(&fh_a_id, seed) != 0)
    fh_fail("identity");
  memset(seed, 0x33, sizeof seed);
  if (lc__identity_generate(&fh_b_id, seed) != 0)
    fh_fail("identity");
  fh_ready = 1;
}

static uint64_t fh_u64(const uint8_t *p, size_t len) {
  uint64_t v = 0;
  for (size_t i = 0; i < len && i < 8; i++)
    v = (v << 8) | p[i];
  return v;
}

/* The transport sent a HELLO: it must open under A's or B's key (the only
 * peers it is asked to reach), and its timestamps never go back. */
static void fh_check_hello(fh_state *st, const lc__hello *h) {
  for (int k = 0; k < 2; k++) {
    fh_peer *p = &st->peer[k];
    lc__hs hs;
    uint8_t pk[LC_PK_BYTES];
    uint64_t ts = 0, inc = 0;
    if (lc__hs_read_hello(&hs, p->id, h, pk, &ts, &inc) != 0)
      continue;
    if (memcmp(pk, fh_tp_id.pk, LC_PK_BYTES) != 0)
      fh_fail("the transport's HELLO names another identity");
    if (p->any_theirs &&
        (ts < p->theirs_ts ||
         (ts == p->theirs_ts && memcmp(h, &p->theirs_last, sizeof *h) != 0)))
      fh_fail("the transport's HELLO timestamps went back");
    p->any_theirs = 1;
    p->theirs_ts = ts;
    p->theirs_last = *h;
    if (p->have_theirs)
      lc__hs_wipe(&p->theirs);
    p->theirs = hs;
    p->theirs_index = h->sender_index;
    p->have_theirs = 1;
    return;
  }
  fh_fail("the transport sent a HELLO that neither peer can open");
}

/* The transport sent a WELCOME: if it answers one of our untouched HELLOs,
 * it must verify under that HELLO's state. */
static void fh_check_welcome(fh_state *st, const lc__welcome *w) {
  for (int k = 0; k < 2; k++) {
    fh_peer *p = &st->peer[k];
    for (unsigned i = 0; i < FH_PENDING; i++) {
      fh_sent *s = &p->sent[i];
      if (!s->used || s->hs.local_index != w->receiver_index)
        continue;
      lc__hs hs = s->hs;
      lc__session_keys keys;
      uint64_t inc = 0;
      if (lc__hs_read_welcome(&hs, w, &keys, &inc) != 0)
        fh_fail("the transport's WELCOME to our HELLO does not verify");
      lc__keypair_wipe(&p->kp);
      lc__keypair_init(&p->kp, &keys, s->hs.local_index, w->sender_index);
      memset(&keys, 0, sizeof keys);
      lc__hs_wipe(&hs);
      p->have_keys = 1;
      p->pn = 0;
      return;
    }
  }
}

static void fh_drain(fh_state *st) {
  for (int i = 0; i < FH_MAX_DRAIN; i++) {
    lc__addr to;
    int n = lc__tp_poll(st->tp, st->now, &to, st->out, sizeof st->out);
    if (n < 0)
      fh_fail("poll returned an error");
    if (n == 0)
      return;
    lc__datagram dg;
    if (lc__wire_decode(&dg, st->out, (size_t)n) != 0)
      fh_fail("the transport sent an undecodable datagram");
    if (dg.type == LC_DG_HELLO)
      fh_check_hello(st, &dg.u.hello);
    else if (dg.type == LC_DG_WELCOME)
      fh_check_welcome(st, &dg.u.welcome);
  }
}

static void fh_advance(fh_state *st, uint64_t us) {
  uint64_t until = st->now + us;
  for (int i = 0; i < 64; i++) {
    uint64_t w = lc__tp_next_wakeup(st->tp);
    if (w > until)
      break;
    if (w > st->now)
      st->now = w;
    fh_drain(st);
  }
  st->now = until;
  fh_drain(st);
}

/* Delivers a datagram from address a, and keeps it for replays. */
static void fh_deliver(fh_state *st, const uint8_t *buf, size_t len,
                       unsigned a) {
  unsigned i = st->ring_next++ % FH_RING;
  memcpy(st->ring[i], buf, len);
  st->ring_len[i] = len;
  st->ring_from[i] = a;
  (void)lc__tp_recv(st->tp, &st->addr[a], buf, len, st->now);
  fh_drain(st);
}

/* Flips one byte of an encoded datagram when the chunk asks for it
 * (c = [pos hi][pos lo][xor]); returns 1 if it did. */
static int fh_mutate(uint8_t *buf, size_t len, const uint8_t *c, size_t clen) {
  if (clen < 3 || c[2] == 0 || len == 0)
    return 0;
  buf[((size_t)c[0] << 8 | c[1]) % len] ^= c[2];
  return 1;
}

static int fh_encode(fh_state *st, const lc__datagram *dg) {
  int n = lc__wire_encode(dg, st->buf, sizeof st->buf);
  if (n <= 0)
    fh_fail("encode");
  return n;
}

/* A HELLO from who (0 A, 1 B, 2 the transport's own key); c = [ts delta
 * hi][ts delta lo][incarnation][mutation: 3 bytes]. */
static void fh_hello(fh_state *st, unsigned who, unsigned a, const uint8_t *c,
                     size_t len) {
  const lc__identity *id = who == 0   ? &fh_a_id
                           : who == 1 ? &fh_b_id
                                      : &fh_tp_id;
  fh_peer *p = who < 2 ? &st->peer[who] : NULL;
  uint64_t base = p ? p->ts : FH_CLOCK_OFFSET;
  int16_t delta = (int16_t)(len >= 2 ? (uint16_t)(c[0] << 8 | c[1]) : 1);
  uint64_t ts = base + (uint64_t)(int64_t)delta * 1000;
  if (p && ts > p->ts)
    p->ts = ts;
  uint64_t inc = len >= 3 ? c[2] : 1;
  uint8_t eph[32];
  fh_random(&st->rng, eph, sizeof eph);
  lc__hs hs;
  lc__datagram dg;
  memset(&dg, 0, sizeof dg);
  dg.type = LC_DG_HELLO;
  if (lc__hs_initiate(&hs, id, fh_tp_id.pk, st->next_index++, ts, inc, eph,
                      &dg.u.hello) != 0)
    fh_fail("hs_initiate");
  int n = fh_encode(st, &dg);
  int mutated =
      fh_mutate(st->buf, (size_t)n, len > 3 ? c + 3 : c, len > 3 ? len - 3 : 0);
  if (p && !mutated) {
    fh_sent *s = &p->sent[p->sent_next++ % FH_PENDING];
    if (s->used)
      lc__hs_wipe(&s->hs);
    s->hs = hs;
    s->used = 1;
  } else {
    lc__hs_wipe(&hs);
  }
  fh_deliver(st, st->buf, (size_t)n, a);
}

/* who answers the transport's latest HELLO to it; c = mutation. */
static void fh_welcome(fh_state *st, unsigned who, int twice, unsigned a,
                       const uint8_t *c, size_t len) {
  fh_peer *p = &st->peer[who];
  if (!p->have_theirs)
    return;
  uint8_t eph[32];
  fh_random(&st->rng, eph, sizeof eph);
  uint32_t idx = st->next_index++;
  lc__datagram dg;
  memset(&dg, 0, sizeof dg);
  dg.type = LC_DG_WELCOME;
  lc__session_keys keys;
  int rc = lc__hs_write_welcome(&p->theirs, idx, 7, eph, &dg.u.welcome, &keys);
  p->have_theirs = 0; /* write_welcome wiped it */
  if (rc != 0)
    fh_fail("hs_write_welcome");
  dg.u.welcome.receiver_index = p->theirs_index;
  dg.u.welcome.sender_index = idx;
  int n = fh_encode(st, &dg);
  if (!fh_mutate(st->buf, (size_t)n, c, len)) {
    lc__keypair_wipe(&p->kp);
    lc__keypair_init(&p->kp, &keys, idx, p->theirs_index);
    p->have_keys = 1;
    p->pn = 0;
  }
  memset(&keys, 0, sizeof keys);
  uint8_t copy[LC_DATAGRAM_MAX];
  memcpy(copy, st->buf, (size_t)n);
  fh_deliver(st, copy, (size_t)n, a);
  if (twice)
    fh_deliver(st, copy, (size_t)n, a);
}

/* A packet from who under its latest keys: the chunk as the payload, or a
 * PING when it is empty. */
static void fh_data(fh_state *st, unsigned who, unsigned a, const uint8_t *c,
                    size_t len) {
  fh_peer *p = &st->peer[who];
  if (!p->have_keys)
    return;
  uint8_t ping[64];
  if (len == 0) {
    lc__frame f;
    memset(&f, 0, sizeof f);
    f.type = LC_FR_PING;
    lc__payload_writer w;
    lc__payload_init(&w, ping, sizeof ping);
    if (lc__payload_add(&w, &f) != 0)
      fh_fail("payload");
    len = lc__payload_finish(&w);
    c = ping;
  }
  if (len + LC_TAG_BYTES > sizeof st->ct - 64)
    return;
  int n = lc__seal(&p->kp, p->pn, c, len, st->ct);
  if (n < 0)
    return; /* the keys are used up */
  lc__datagram dg;
  memset(&dg, 0, sizeof dg);
  dg.type = LC_DG_DATA;
  dg.u.data.receiver_index = p->kp.remote_index;
  dg.u.data.packet_number = p->pn++;
  dg.u.data.ciphertext = st->ct;
  dg.u.data.ciphertext_len = (size_t)n;
  int m = lc__wire_encode(&dg, st->buf, sizeof st->buf);
  if (m <= 0)
    return;
  uint8_t copy[LC_DATAGRAM_MAX];
  memcpy(copy, st->buf, (size_t)m);
  fh_deliver(st, copy, (size_t)m, a);
}

static void fh_api(fh_state *st, unsigned op, const uint8_t *c, size_t len) {
  const uint8_t *pk = (op & 4) ? fh_b_id.pk : fh_a_id.pk;
  unsigned a = (op >> 3) % 3;
  switch (op & 3) {
  case 0:
    (void)lc__tp_close(st->tp, pk, st->now);
    break;
  case 1: {
    uint8_t id[LC_MSG_ID_BYTES];
    memset(id, 0, sizeof id);
    memcpy(id, &st->now, sizeof st->now);
    (void)lc__tp_set_peer_addr(st->tp, pk, &st->addr[a]);
    (void)lc__tp_send_msg(st->tp, pk, id, len ? c : (const uint8_t *)"x",
                          len ? len : 1, st->now);
    break;
  }
  case 2:
    (void)lc__tp_peer_moved(st->tp, pk, &st->addr[a], st->now);
    break;
  default:
    lc__tp_close_all(st->tp, st->now);
    break;
  }
  fh_drain(st);
}

/* With FUZZ_HANDSHAKE_TRACE set: what an input did (to write seeds). */
static void fh_trace(fh_state *st) {
  lc__tp_stats ts;
  lc__tp_stats_get(st->tp, &ts);
  fprintf(stderr,
          "recv %llu sent %llu malformed %llu auth %llu replay %llu "
          "no_session %llu limit %llu stale %llu rate %llu",
          (unsigned long long)ts.received, (unsigned long long)ts.sent,
          (unsigned long long)ts.drop_malformed,
          (unsigned long long)ts.drop_auth, (unsigned long long)ts.drop_replay,
          (unsigned long long)ts.drop_no_session,
          (unsigned long long)ts.drop_limit,
          (unsigned long long)ts.drop_stale_handshake,
          (unsigned long long)ts.drop_hs_rate);
  for (int k = 0; k < 2; k++) {
    lc__tp_session_stats ss;
    if (lc__tp_session_stats_get(st->tp, st->peer[k].id->pk, &ss) == 0)
      fprintf(stderr, " | %c: up %d handshakes %llu received %llu", 'A' + k,
              ss.established, (unsigned long long)ss.keypairs_installed,
              (unsigned long long)ss.packets_received);
  }
  fprintf(stderr, "\n");
}

static void fh_addrs(fh_state *st) {
  for (int i = 0; i < 2; i++) {
    struct sockaddr_in *sin = (struct sockaddr_in *)&st->addr[i].ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(7000);
    sin->sin_addr.s_addr = htonl(0xc0a80102u + (uint32_t)i);
    st->addr[i].len = sizeof *sin;
  }
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&st->addr[2].ss;
  s6->sin6_family = AF_INET6;
  s6->sin6_port = htons(7000);
  s6->sin6_addr.s6_addr[0] = 0xfe;
  s6->sin6_addr.s6_addr[1] = 0x80;
  s6->sin6_addr.s6_addr[15] = 1;
  st->addr[2].len = sizeof *s6;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fh_init_once();
  fh_state *st = calloc(1, sizeof *st);
  if (!st)
    return 0;
  st->rng.s = 0x4a5;
  st->now = 1000000;
  st->next_index = 0x1000;
  st->peer[0].id = &fh_a_id;
  st->peer[1].id = &fh_b_id;
  st->peer[0].ts = st->peer[1].ts = FH_CLOCK_OFFSET;
  fh_addrs(st);

  lc__tp_config cfg;
  lc__tp_config_default(&cfg);
  cfg.random = fh_random;
  cfg.random_ctx = &st->rng;
  cfg.clock_offset_us = FH_CLOCK_OFFSET;
  cfg.max_sessions = 4;
  cfg.idle_timeout_us = 30000000;
  cfg.keepalive_us = 5000000;
  cfg.rekey_after_us = 60000000;
  if (lc__tp_new(&st->tp, &fh_tp_id, &cfg) != 0)
    fh_fail("lc__tp_new");

  size_t i = 0;
  while (i < size) {
    uint8_t sel = data[i++];
    size_t len = i < size ? data[i++] : 0;
    if (len > size - i)
      len = size - i;
    const uint8_t *c = data + i;
    i += len;
    unsigned par = sel >> 3;
    switch (sel & 7) {
    case FH_HELLO:
      fh_hello(st, par % 3, (par / 3) % 3, c, len);
      break;
    case FH_RAW:
      fh_deliver(st, c, len, par % 3);
      break;
    case FH_REPLAY: {
      unsigned k = par % FH_RING;
      if (st->ring_len[k]) {
        uint8_t copy[LC_DATAGRAM_MAX];
        size_t n = st->ring_len[k];
        memcpy(copy, st->ring[k], n);
        /* from where it came, or (high bit) from another address */
        fh_deliver(st, copy, n, (st->ring_from[k] + (par >> 3)) % 3);
      }
      break;
    }
    case FH_CONNECT: {
      const uint8_t *pk = (par & 1) ? fh_b_id.pk : fh_a_id.pk;
      (void)lc__tp_set_peer_addr(st->tp, pk, &st->addr[(par >> 1) % 3]);
      (void)lc__tp_connect(st->tp, pk, st->now);
      fh_drain(st);
      break;
    }
    case FH_WELCOME:
      fh_welcome(st, par & 1, (par >> 1) & 1, (par >> 2) % 3, c, len);
      break;
    case FH_TIME:
      fh_advance(st, fh_u64(c, len < 4 ? len : 4) + 1);
      break;
    case FH_DATA:
      fh_data(st, par & 1, (par >> 1) % 3, c, len);
      break;
    case FH_API:
      fh_api(st, par, c, len);
      break;
    }
    st->now += 100;
  }
  fh_advance(st, 3000000);
  if (getenv("FUZZ_HANDSHAKE_TRACE"))
    fh_trace(st);
  lc__tp_free(st->tp);
  for (int k = 0; k < 2; k++) {
    fh_peer *p = &st->peer[k];
    for (unsigned j = 0; j < FH_PENDING; j++)
      if (p->sent[j].used)
        lc__hs_wipe(&p->sent[j].hs);
    if (p->have_theirs)
      lc__hs_wipe(&p->theirs);
    lc__keypair_wipe(&p->kp);
  }
  free(st);
  return 0;
}
