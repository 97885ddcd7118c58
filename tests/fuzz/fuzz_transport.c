/* fuzz_transport.c: libFuzzer harness for a transport session.
 *
 * The harness plays the peer itself with the crypto API: it sends a real
 * HELLO, reads the transport's WELCOME and so holds valid session keys.  The
 * fuzz input is then a list of chunks, each [selector][len hi][len lo][len
 * bytes].  The selector's low 3 bits pick what the chunk is (FT_*), its high
 * bits are a parameter: fed raw to lc__tp_recv; sealed as a packet payload
 * under the valid keys (so the frame decoder and the frame handling behind
 * authentication are reached), possibly after skipping packet numbers; a
 * replay of an earlier datagram; a time advance; a call to the sending API;
 * an ACK of everything the transport sent.  Everything the
 * transport sends back must decode, open under the keys and parse; the
 * harness aborts if not, or if sending takes bytes_in_flight above cwnd.
 *
 * Deterministic: fixed identities, a seeded generator, a virtual clock.
 * Built with clang -fsanitize=fuzzer by tools/fuzz, and with any compiler
 * plus corpus_main.c to replay tests/fuzz/corpus/transport in the test suite.
 * Built with -DLC_FUZZ_TRANSPORT_GEN=1 (and without corpus_main.c) it writes
 * the seed corpus into the directory named on its command line.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "transport.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FT_CLOCK_OFFSET 1700000000000000ull
#define FT_INCARNATION 0x1234
#define FT_PEER_INDEX 0x0badf00d
#define FT_MAX_DRAIN 256
#define FT_RING 8

enum {
  FT_RAW = 0,    /* the chunk is a datagram */
  FT_SEAL = 1,   /* the chunk is a payload: seal under the next pn */
  FT_SKIP = 2,   /* same, after skipping packet numbers */
  FT_REPLAY = 3, /* resend one of the last sealed datagrams */
  FT_TIME = 4,   /* advance the clock by an amount from the chunk */
  FT_API = 5,    /* call a sending function */
  FT_ACK = 6,    /* acknowledge everything the transport sent so far */
  FT_OPS = 7
};

typedef struct {
  uint64_t s;
} ft_rng;

static void ft_random(void *ctx, void *buf, size_t len) {
  ft_rng *r = ctx;
  uint8_t *p = buf;
  for (size_t i = 0; i < len; i++) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    p[i] = (uint8_t)(z ^ (z >> 31));
  }
}

typedef struct {
  lc__tp *tp;
  lc__keypair kp;
  int have_keys;
  int any_from_tp;
  uint64_t largest_from_tp; /* largest pn the transport sent us */
  uint64_t now;
  uint64_t pn;
  lc__addr peer_addr;
  ft_rng rng;
  uint8_t ring[FT_RING][LC_DATAGRAM_MAX];
  size_t ring_len[FT_RING];
  unsigned ring_next;
  uint8_t out[LC_DATAGRAM_MAX];
  uint8_t ct[LC_DATAGRAM_MAX];
  uint8_t pt[LC_DATAGRAM_MAX];
} ft_state;

static lc__identity ft_tp_id, ft_peer_id;
static int ft_ready;

static void ft_fail(const char *what) {
  fprintf(stderr, "fuzz_transport: %s\n", what);
  abort();
}

/* Callbacks do nothing but touch their arguments, so ASan sees any bad
 * pointer handed to the application. */
static volatile uint64_t ft_sink;
/* What the callbacks saw (the generator prints it per seed). */
static uint64_t ft_n_up, ft_n_down, ft_n_msg, ft_n_acked, ft_n_failed,
    ft_n_unrel, ft_n_bulk, ft_n_bulk_done, ft_n_bulk_acked;

static void ft_touch(const uint8_t *p, size_t len) {
  uint64_t h = 0;
  for (size_t i = 0; i < len; i++)
    h = h * 31 + p[i];
  ft_sink += h;
}

static void ft_cb_up(void *u, const uint8_t peer[LC_PK_BYTES]) {
  (void)u;
  ft_n_up++;
  ft_touch(peer, LC_PK_BYTES);
}

static void ft_cb_down(void *u, const uint8_t peer[LC_PK_BYTES], int reason) {
  (void)u;
  ft_n_down++;
  ft_touch(peer, LC_PK_BYTES);
  ft_sink += (uint64_t)reason;
}

static int ft_cb_msg(void *u, const uint8_t peer[LC_PK_BYTES],
                     const uint8_t id[LC_MSG_ID_BYTES], const uint8_t *d,
                     size_t len) {
  (void)u;
  ft_n_msg++;
  ft_touch(peer, LC_PK_BYTES);
  ft_touch(id, LC_MSG_ID_BYTES);
  ft_touch(d, len);
  return 0;
}

static void ft_cb_acked(void *u, const uint8_t peer[LC_PK_BYTES],
                        const uint8_t id[LC_MSG_ID_BYTES]) {
  (void)u;
  ft_n_acked++;
  ft_touch(peer, LC_PK_BYTES);
  ft_touch(id, LC_MSG_ID_BYTES);
}

static void ft_cb_failed(void *u, const uint8_t peer[LC_PK_BYTES],
                         const uint8_t id[LC_MSG_ID_BYTES], int err) {
  (void)u;
  ft_n_failed++;
  (void)err;
  ft_touch(peer, LC_PK_BYTES);
  ft_touch(id, LC_MSG_ID_BYTES);
}

static void ft_cb_unrel(void *u, const uint8_t peer[LC_PK_BYTES],
                        const uint8_t *d, size_t len) {
  (void)u;
  ft_n_unrel++;
  ft_touch(peer, LC_PK_BYTES);
  ft_touch(d, len);
}

static void ft_cb_bulk(void *u, const uint8_t peer[LC_PK_BYTES], uint32_t sid,
                       uint64_t off, const uint8_t *d, size_t len) {
  (void)u;
  ft_n_bulk++;
  ft_touch(peer, LC_PK_BYTES);
  ft_touch(d, len);
  ft_sink += sid + off;
}

static void ft_cb_bulk_done(void *u, const uint8_t peer[LC_PK_BYTES],
                            uint32_t sid, uint64_t final_size) {
  (void)u;
  ft_n_bulk_done++;
  ft_touch(peer, LC_PK_BYTES);
  ft_sink += sid + final_size;
}

static void ft_cb_bulk_acked(void *u, const uint8_t peer[LC_PK_BYTES],
                             uint32_t sid) {
  (void)u;
  ft_n_bulk_acked++;
  ft_touch(peer, LC_PK_BYTES);
  ft_sink += sid;
}

static void ft_init_once(void) {
  if (ft_ready)
    return;
  if (lc__crypto_init() != 0)
    ft_fail("crypto init");
  uint8_t seed[32];
  memset(seed, 0x11, sizeof seed);
  if (lc__identity_generate(&ft_tp_id, seed) != 0)
    ft_fail("identity");
  memset(seed, 0x22, sizeof seed);
  if (lc__identity_generate(&ft_peer_id, seed) != 0)
    ft_fail("identity");
  ft_ready = 1;
}

/* Checks one datagram the transport sent us: it must be well formed, and a
 * DATA datagram under our keys must open and parse. */
static void ft_check_output(ft_state *st, const uint8_t *buf, size_t len) {
  lc__datagram dg;
  if (lc__wire_decode(&dg, buf, len) != 0)
    ft_fail("transport sent an undecodable datagram");
  if (dg.type != LC_DG_DATA || !st->have_keys ||
      dg.u.data.receiver_index != st->kp.local_index)
    return;
  int n = lc__open(&st->kp, dg.u.data.packet_number, dg.u.data.ciphertext,
                   dg.u.data.ciphertext_len, st->pt);
  if (n == LC_EREPLAY)
    ft_fail("transport reused a packet number");
  if (n < 0)
    return; /* after a rekey these may be other keys */
  if (!st->any_from_tp || dg.u.data.packet_number > st->largest_from_tp)
    st->largest_from_tp = dg.u.data.packet_number;
  st->any_from_tp = 1;
  lc__frame frames[LC_FRAMES_MAX];
  lc__ack_range ranges[LC_ACK_RANGES_MAX];
  size_t nf = 0;
  if (lc__payload_decode(st->pt, (size_t)n, frames, LC_FRAMES_MAX, &nf,
                         ranges) != 0)
    ft_fail("transport sent an unparsable payload");
}

/* RFC 9002's rule: sending never takes bytes in flight above the window.
 * (A window cut below what is already in flight is legal.) */
static uint64_t ft_in_flight(ft_state *st, uint64_t *cwnd) {
  lc__tp_session_stats ss;
  if (lc__tp_session_stats_get(st->tp, ft_peer_id.pk, &ss) != 0) {
    *cwnd = UINT64_MAX;
    return 0;
  }
  *cwnd = ss.cwnd;
  return ss.bytes_in_flight;
}

static void ft_drain(ft_state *st) {
  for (int i = 0; i < FT_MAX_DRAIN; i++) {
    lc__addr to;
    uint64_t cwnd;
    uint64_t before = ft_in_flight(st, &cwnd);
    int n = lc__tp_poll(st->tp, st->now, &to, st->out, sizeof st->out);
    uint64_t after = ft_in_flight(st, &cwnd);
    if (n > 0 && after > before && after > cwnd)
      ft_fail("sending took bytes_in_flight above cwnd");
    if (n < 0)
      ft_fail("poll returned an error");
    if (n == 0)
      return;
    if ((size_t)n >= LC_DATAGRAM_MAX + 1u)
      ft_fail("datagram too large");
    ft_check_output(st, st->out, (size_t)n);
  }
}

/* Runs due timers, the way a driver would. */
static void ft_advance(ft_state *st, uint64_t us) {
  uint64_t until = st->now + us;
  for (int i = 0; i < 64; i++) {
    uint64_t w = lc__tp_next_wakeup(st->tp);
    if (w > until)
      break;
    if (w > st->now)
      st->now = w;
    ft_drain(st);
  }
  st->now = until;
  ft_drain(st);
}

static void ft_feed(ft_state *st, const uint8_t *buf, size_t len) {
  (void)lc__tp_recv(st->tp, &st->peer_addr, buf, len, st->now);
  ft_drain(st);
}

/* The handshake, as the initiator. */
static int ft_handshake(ft_state *st) {
  lc__hs hs;
  lc__hello hello;
  uint8_t eph[32];
  ft_random(&st->rng, eph, sizeof eph);
  if (lc__hs_initiate(&hs, &ft_peer_id, ft_tp_id.pk, FT_PEER_INDEX,
                      FT_CLOCK_OFFSET + st->now, FT_INCARNATION, eph,
                      &hello) != 0)
    ft_fail("hs_initiate");
  lc__datagram dg;
  memset(&dg, 0, sizeof dg);
  dg.type = LC_DG_HELLO;
  dg.u.hello = hello;
  int n = lc__wire_encode(&dg, st->out, sizeof st->out);
  if (n <= 0)
    ft_fail("encode HELLO");
  if (lc__tp_recv(st->tp, &st->peer_addr, st->out, (size_t)n, st->now) != 0)
    ft_fail("transport refused a valid HELLO");
  int got = 0;
  for (int i = 0; i < 8 && !got; i++) {
    lc__addr to;
    n = lc__tp_poll(st->tp, st->now, &to, st->out, sizeof st->out);
    if (n <= 0)
      break;
    lc__datagram w;
    if (lc__wire_decode(&w, st->out, (size_t)n) != 0)
      ft_fail("undecodable WELCOME");
    if (w.type != LC_DG_WELCOME)
      continue;
    lc__session_keys keys;
    uint64_t inc = 0;
    if (lc__hs_read_welcome(&hs, &w.u.welcome, &keys, &inc) != 0)
      ft_fail("WELCOME did not verify");
    lc__keypair_init(&st->kp, &keys, FT_PEER_INDEX, w.u.welcome.sender_index);
    memset(&keys, 0, sizeof keys);
    st->have_keys = 1;
    got = 1;
  }
  lc__hs_wipe(&hs);
  if (!got)
    ft_fail("no WELCOME");
  return 0;
}

static void ft_remember(ft_state *st, const uint8_t *buf, size_t len) {
  unsigned i = st->ring_next++ % FT_RING;
  memcpy(st->ring[i], buf, len);
  st->ring_len[i] = len;
}

/* Seals payload pt under the next packet number and delivers it. */
static void ft_send_sealed(ft_state *st, const uint8_t *pt, size_t len) {
  if (len + LC_TAG_BYTES > sizeof st->ct - 64)
    return;
  int n = lc__seal(&st->kp, st->pn, pt, len, st->ct);
  if (n < 0)
    ft_fail("seal");
  lc__datagram dg;
  memset(&dg, 0, sizeof dg);
  dg.type = LC_DG_DATA;
  dg.u.data.receiver_index = st->kp.remote_index;
  dg.u.data.packet_number = st->pn;
  dg.u.data.ciphertext = st->ct;
  dg.u.data.ciphertext_len = (size_t)n;
  st->pn++;
  int m = lc__wire_encode(&dg, st->out, sizeof st->out);
  if (m <= 0)
    return; /* too big for a datagram: nothing to send */
  ft_remember(st, st->out, (size_t)m);
  ft_feed(st, st->out, (size_t)m);
}

static uint64_t ft_u64(const uint8_t *p, size_t len) {
  uint64_t v = 0;
  for (size_t i = 0; i < len && i < 8; i++)
    v = (v << 8) | p[i];
  return v;
}

/* The first byte of the chunk picks the call: low 3 bits the function,
 * bit 3 a flag (fin, or close rather than connect), the high nibble a
 * repetition count (message size) or stream id. */
static void ft_api(ft_state *st, const uint8_t *c, size_t len) {
  uint8_t op = len ? c[0] : 0;
  const uint8_t *d = len ? c + 1 : c;
  size_t dl = len ? len - 1 : 0;
  unsigned rep = op >> 4;
  int flag = (op & 8) != 0;
  uint8_t id[LC_MSG_ID_BYTES];
  memset(id, 0, sizeof id);
  memcpy(id, &st->pn, sizeof st->pn);
  id[15] = op;
  switch (op & 7) {
  case 2:
    (void)lc__tp_send_unreliable(st->tp, ft_peer_id.pk, d, dl, st->now);
    break;
  case 3: {
    uint32_t sid;
    if (lc__tp_bulk_open(st->tp, ft_peer_id.pk, &sid) == 0)
      (void)lc__tp_bulk_write(st->tp, ft_peer_id.pk, sid, d, dl, flag, st->now);
    break;
  }
  case 4:
    (void)lc__tp_bulk_write(st->tp, ft_peer_id.pk, rep, d, dl, flag, st->now);
    break;
  case 5:
    if (flag)
      (void)lc__tp_close(st->tp, ft_peer_id.pk, st->now);
    else
      (void)lc__tp_connect(st->tp, ft_peer_id.pk, st->now);
    break;
  default: {
    /* a message, its bytes repeated to reach fragmentation sizes */
    size_t want = dl * (1 + rep * 97u);
    if (want > 80 * 1024)
      want = 80 * 1024;
    uint8_t *buf = malloc(want ? want : 1);
    if (!buf)
      return;
    for (size_t i = 0; i < want; i++)
      buf[i] = dl ? d[i % dl] : 0;
    (void)lc__tp_send_msg(st->tp, ft_peer_id.pk, id, buf, want, st->now);
    free(buf);
    break;
  }
  }
  ft_drain(st);
}

/* An ACK of every packet number up to the largest the transport sent, so
 * acknowledgement paths (message_acked, bulk_acked, window growth) are
 * reached without the fuzzer guessing packet numbers. */
static void ft_ack_all(ft_state *st, const uint8_t *c, size_t len) {
  if (!st->any_from_tp)
    return;
  lc__frame f;
  memset(&f, 0, sizeof f);
  f.type = LC_FR_ACK;
  f.u.ack.largest = st->largest_from_tp;
  f.u.ack.ack_delay_us = ft_u64(c, len < 2 ? len : 2);
  f.u.ack.first_range = st->largest_from_tp;
  uint8_t pt[256];
  lc__payload_writer w;
  lc__payload_init(&w, pt, sizeof pt);
  if (lc__payload_add(&w, &f) != 0)
    return;
  ft_send_sealed(st, pt, lc__payload_finish(&w));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ft_init_once();
  ft_state *st = calloc(1, sizeof *st);
  if (!st)
    return 0;
  st->rng.s = 0x5eed;
  st->now = 1000000;
  st->pn = 0;
  struct sockaddr_in *sin = (struct sockaddr_in *)&st->peer_addr.ss;
  sin->sin_family = AF_INET;
  sin->sin_port = htons(7000);
  sin->sin_addr.s_addr = htonl(0xc0a80102);
  st->peer_addr.len = sizeof *sin;

  lc__tp_config cfg;
  lc__tp_config_default(&cfg);
  cfg.random = ft_random;
  cfg.random_ctx = &st->rng;
  cfg.clock_offset_us = FT_CLOCK_OFFSET;
  /* small limits so the fuzzer can reach them */
  cfg.max_msg_bytes = 64 * 1024;
  cfg.max_reassembly_bytes = 256 * 1024;
  cfg.max_send_bytes = 1024 * 1024;
  cfg.msg_window = 256;
  cfg.bulk_window = 1024 * 1024;
  cfg.max_bulk_streams = 4;
  cfg.idle_timeout_us = 30000000;
  cfg.keepalive_us = 5000000;
  cfg.cb.session_up = ft_cb_up;
  cfg.cb.session_down = ft_cb_down;
  cfg.cb.message = ft_cb_msg;
  cfg.cb.message_acked = ft_cb_acked;
  cfg.cb.message_failed = ft_cb_failed;
  cfg.cb.unreliable = ft_cb_unrel;
  cfg.cb.bulk = ft_cb_bulk;
  cfg.cb.bulk_done = ft_cb_bulk_done;
  cfg.cb.bulk_acked = ft_cb_bulk_acked;
  if (lc__tp_new(&st->tp, &ft_tp_id, &cfg) != 0)
    ft_fail("lc__tp_new");
  ft_handshake(st);

  size_t i = 0;
  while (i < size) {
    uint8_t sel = data[i++];
    size_t len = 0;
    if (i + 2 <= size)
      len = (size_t)data[i] << 8 | data[i + 1];
    i += i + 2 <= size ? 2 : size - i;
    if (len > size - i)
      len = size - i;
    const uint8_t *c = data + i;
    i += len;
    switch ((sel & 7) % FT_OPS) { /* the high bits are parameters */
    case FT_RAW:
      ft_feed(st, c, len);
      break;
    case FT_SEAL:
      ft_send_sealed(st, c, len);
      break;
    case FT_SKIP:
      st->pn += 1 + (uint64_t)(sel >> 3) * 61;
      ft_send_sealed(st, c, len);
      break;
    case FT_REPLAY: {
      unsigned k = (sel >> 3) % FT_RING;
      if (st->ring_len[k])
        ft_feed(st, st->ring[k], st->ring_len[k]);
      break;
    }
    case FT_TIME:
      ft_advance(st, ft_u64(c, len < 3 ? len : 3) + 1);
      break;
    case FT_API:
      ft_api(st, c, len);
      break;
    case FT_ACK:
      ft_ack_all(st, c, len);
      break;
    }
    st->now += 100;
  }
  ft_advance(st, 3000000);
  lc__tp_free(st->tp);
  lc__keypair_wipe(&st->kp);
  free(st);
  return 0;
}

#ifdef LC_FUZZ_TRANSPORT_GEN
/* ---- seed corpus generator ---------------------------------------------- */

typedef struct {
  uint8_t buf[65536];
  size_t len;
} gen_input;

static void gen_chunk(gen_input *in, uint8_t sel, const uint8_t *c,
                      size_t len) {
  in->buf[in->len++] = sel;
  in->buf[in->len++] = (uint8_t)(len >> 8);
  in->buf[in->len++] = (uint8_t)len;
  if (len)
    memcpy(in->buf + in->len, c, len);
  in->len += len;
}

/* A payload of frames f[0..n) as an FT_SEAL chunk. */
static void gen_payload(gen_input *in, const lc__frame *f, size_t n) {
  uint8_t pt[2048];
  lc__payload_writer w;
  lc__payload_init(&w, pt, sizeof pt);
  for (size_t i = 0; i < n; i++)
    if (lc__payload_add(&w, &f[i]) != 0)
      ft_fail("gen: frame does not fit");
  size_t len = lc__payload_finish(&w);
  gen_chunk(in, FT_SEAL, pt, len);
}

static void gen_time(gen_input *in, uint32_t us) {
  uint8_t t[3] = {(uint8_t)(us >> 16), (uint8_t)(us >> 8), (uint8_t)us};
  gen_chunk(in, FT_TIME, t, sizeof t);
}

static void gen_write(const char *dir, const char *name, const gen_input *in) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(in->buf, 1, in->len, f) != in->len || fclose(f) != 0) {
    perror(path);
    exit(1);
  }
  /* every seed must run clean through the harness */
  ft_n_up = ft_n_down = ft_n_msg = ft_n_acked = ft_n_failed = ft_n_unrel =
      ft_n_bulk = ft_n_bulk_done = ft_n_bulk_acked = 0;
  LLVMFuzzerTestOneInput(in->buf, in->len);
  printf("%-14s %5zu bytes: up %" PRIu64 " down %" PRIu64 " msg %" PRIu64
         " acked %" PRIu64 " failed %" PRIu64 " unrel %" PRIu64 " bulk %" PRIu64
         " done %" PRIu64 " bulk_acked %" PRIu64 "\n",
         name, in->len, ft_n_up, ft_n_down, ft_n_msg, ft_n_acked, ft_n_failed,
         ft_n_unrel, ft_n_bulk, ft_n_bulk_done, ft_n_bulk_acked);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  static gen_input in;
  lc__frame f[4];
  uint8_t text[1400];
  for (size_t i = 0; i < sizeof text; i++)
    text[i] = (uint8_t)('a' + i % 26);

  /* a PING */
  memset(&in, 0, sizeof in);
  memset(f, 0, sizeof f);
  f[0].type = LC_FR_PING;
  gen_payload(&in, f, 1);
  gen_time(&in, 50000);
  gen_write(argv[1], "ping", &in);

  /* a whole chat message, then a time advance for the ACK */
  memset(&in, 0, sizeof in);
  memset(f, 0, sizeof f);
  f[0].type = LC_FR_MSG;
  f[0].u.msg.seq = 0;
  memset(f[0].u.msg.msg_id, 0xa1, LC_MSG_ID_BYTES);
  f[0].u.msg.total_len = 5;
  f[0].u.msg.data = (const uint8_t *)"hello";
  f[0].u.msg.len = 5;
  gen_payload(&in, f, 1);
  gen_time(&in, 30000);
  gen_write(argv[1], "msg", &in);

  /* a message in three fragments, out of order, one repeated */
  memset(&in, 0, sizeof in);
  for (int k = 2; k >= 0; k--) {
    memset(f, 0, sizeof f);
    f[0].type = LC_FR_MSG;
    f[0].u.msg.seq = 0;
    memset(f[0].u.msg.msg_id, 0xb2, LC_MSG_ID_BYTES);
    f[0].u.msg.total_len = 3000;
    f[0].u.msg.offset = (uint32_t)k * 1000;
    f[0].u.msg.data = text;
    f[0].u.msg.len = 1000;
    gen_payload(&in, f, 1);
    if (k == 1)
      gen_chunk(&in, FT_REPLAY | (1 << 3), NULL, 0);
  }
  gen_time(&in, 10000);
  gen_write(argv[1], "msg-fragments", &in);

  /* bulk stream 1 in two pieces with fin, plus credit and unreliable */
  memset(&in, 0, sizeof in);
  memset(f, 0, sizeof f);
  f[0].type = LC_FR_BULK;
  f[0].u.bulk.stream_id = 1;
  f[0].u.bulk.offset = 0;
  f[0].u.bulk.data = text;
  f[0].u.bulk.len = 800;
  f[1].type = LC_FR_MSG_CREDIT;
  f[1].u.msg_credit.max_seq = 500;
  gen_payload(&in, f, 2);
  memset(f, 0, sizeof f);
  f[0].type = LC_FR_BULK;
  f[0].u.bulk.stream_id = 1;
  f[0].u.bulk.offset = 800;
  f[0].u.bulk.fin = 1;
  f[0].u.bulk.data = text;
  f[0].u.bulk.len = 400;
  f[1].type = LC_FR_UNREL;
  f[1].u.unrel.data = (const uint8_t *)"typing";
  f[1].u.unrel.len = 6;
  gen_payload(&in, f, 2);
  gen_time(&in, 20000);
  gen_write(argv[1], "bulk", &in);

  /* the transport sends a message (API, three fragments); we ACK part of
   * it with ranges, then all of it, grant bulk credit and close */
  memset(&in, 0, sizeof in);
  uint8_t api[40];
  api[0] = 0x10; /* send_msg, 39 bytes repeated 98 times */
  memcpy(api + 1, text, sizeof api - 1);
  gen_chunk(&in, FT_API, api, sizeof api);
  gen_time(&in, 5000);
  lc__ack_range ranges[2] = {{0, 0}, {0, 0}};
  memset(f, 0, sizeof f);
  f[0].type = LC_FR_ACK;
  f[0].u.ack.largest = 2;
  f[0].u.ack.ack_delay_us = 100;
  f[0].u.ack.first_range = 0;
  f[0].u.ack.nranges = 1;
  f[0].u.ack.ranges = ranges;
  f[1].type = LC_FR_BULK_CREDIT;
  f[1].u.bulk_credit.stream_id = 0;
  f[1].u.bulk_credit.max_offset = 1 << 21;
  gen_payload(&in, f, 2);
  gen_chunk(&in, FT_ACK, NULL, 0);
  gen_time(&in, 400000);
  memset(f, 0, sizeof f);
  f[0].type = LC_FR_CLOSE;
  f[0].u.close.code = 0;
  gen_payload(&in, f, 1);
  gen_time(&in, 100000);
  gen_write(argv[1], "ack-close", &in);

  /* a bulk stream from the transport, acknowledged whole */
  memset(&in, 0, sizeof in);
  api[0] = 0x03; /* bulk_open + write */
  gen_chunk(&in, FT_API, api, sizeof api);
  api[0] = 0x0c; /* bulk_write on stream 0, fin */
  gen_chunk(&in, FT_API, api, sizeof api);
  gen_time(&in, 20000);
  gen_chunk(&in, FT_ACK, NULL, 0);
  gen_time(&in, 20000);
  gen_write(argv[1], "bulk-acked", &in);

  /* a message from the transport, acknowledged and reported delivered */
  memset(&in, 0, sizeof in);
  api[0] = 0x00; /* send_msg, 39 bytes */
  gen_chunk(&in, FT_API, api, sizeof api);
  gen_time(&in, 3000);
  gen_chunk(&in, FT_ACK, NULL, 0);
  memset(f, 0, sizeof f);
  f[0].type = LC_FR_DELIVERED;
  f[0].u.delivered.seq = 1;
  gen_payload(&in, f, 1);
  gen_time(&in, 20000);
  gen_write(argv[1], "delivered", &in);

  /* unreliable from the transport, a skipped packet number, a raw garbage
   * datagram, a replay, and a close from the API */
  memset(&in, 0, sizeof in);
  api[0] = 0x02; /* send_unreliable */
  gen_chunk(&in, FT_API, api, sizeof api);
  memset(f, 0, sizeof f);
  f[0].type = LC_FR_PING;
  gen_payload(&in, f, 1);
  uint8_t pt[64];
  lc__payload_writer w;
  lc__payload_init(&w, pt, sizeof pt);
  lc__payload_add(&w, &f[0]);
  size_t plen = lc__payload_finish(&w);
  gen_chunk(&in, FT_SKIP | (3 << 3), pt, plen);
  static const uint8_t garbage[] = {0x95, 0x01, 0x04, 0xce, 0, 0, 0, 1, 0x00};
  gen_chunk(&in, FT_RAW, garbage, sizeof garbage);
  gen_chunk(&in, FT_REPLAY, NULL, 0);
  gen_chunk(&in, FT_ACK, NULL, 0);
  gen_time(&in, 2000000);
  api[0] = 0x0d; /* close */
  gen_chunk(&in, FT_API, api, 1);
  gen_time(&in, 300000);
  gen_write(argv[1], "mixed", &in);

  printf("wrote the seed corpus to %s\n", argv[1]);
  return 0;
}
#endif
