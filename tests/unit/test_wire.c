/* test_wire.c: the datagram and payload codec of src/wire.h: known-answer
 * vectors (the same bytes as docs/PROTOCOL.md), round trips at boundary
 * values, a table of malformed inputs with their exact error codes, the
 * payload writer's budget, and a seeded mutation run.  A failing random run
 * prints its seed; LC_TEST_SEED=<n> replays that one seed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crypto.h"
#include "lanchat.h"
#include "wire.h"

#define BUF_MAX (LC_DATAGRAM_MAX + 64)

/* ---- helpers ----------------------------------------------------------- */

/* Decodes hex (spaces allowed) into out; returns the length. */
static size_t hex(const char *s, uint8_t *out, size_t cap) {
  size_t n = 0;
  int hi = -1;
  for (; *s; s++) {
    int v;
    if (*s >= '0' && *s <= '9')
      v = *s - '0';
    else if (*s >= 'a' && *s <= 'f')
      v = *s - 'a' + 10;
    else if (*s >= 'A' && *s <= 'F')
      v = *s - 'A' + 10;
    else
      continue;
    if (hi < 0) {
      hi = v;
    } else {
      assert_true(n < cap);
      out[n++] = (uint8_t)(hi << 4 | v);
      hi = -1;
    }
  }
  assert_int_equal(hi, -1); /* odd number of digits: a typo in a vector */
  return n;
}

static void fill_seq(uint8_t *p, size_t n, uint8_t start) {
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)(start + i);
}

static int dg_equal(const lc__datagram *a, const lc__datagram *b) {
  if (a->type != b->type)
    return 0;
  switch (a->type) {
  case LC_DG_HELLO:
    return memcmp(&a->u.hello, &b->u.hello, sizeof a->u.hello) == 0;
  case LC_DG_WELCOME:
    return memcmp(&a->u.welcome, &b->u.welcome, sizeof a->u.welcome) == 0;
  case LC_DG_DATA:
    return a->u.data.receiver_index == b->u.data.receiver_index &&
           a->u.data.packet_number == b->u.data.packet_number &&
           a->u.data.ciphertext_len == b->u.data.ciphertext_len &&
           memcmp(a->u.data.ciphertext, b->u.data.ciphertext,
                  a->u.data.ciphertext_len) == 0;
  default:
    return 0;
  }
}

static int bytes_equal(const uint8_t *a, size_t alen, const uint8_t *b,
                       size_t blen) {
  return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static int frame_equal(const lc__frame *a, const lc__frame *b) {
  if (a->type != b->type)
    return 0;
  switch (a->type) {
  case LC_FR_PING:
    return 1;
  case LC_FR_ACK:
    if (a->u.ack.largest != b->u.ack.largest ||
        a->u.ack.ack_delay_us != b->u.ack.ack_delay_us ||
        a->u.ack.first_range != b->u.ack.first_range ||
        a->u.ack.nranges != b->u.ack.nranges)
      return 0;
    for (size_t i = 0; i < a->u.ack.nranges; i++)
      if (a->u.ack.ranges[i].gap != b->u.ack.ranges[i].gap ||
          a->u.ack.ranges[i].len != b->u.ack.ranges[i].len)
        return 0;
    return 1;
  case LC_FR_MSG:
    return a->u.msg.seq == b->u.msg.seq &&
           memcmp(a->u.msg.msg_id, b->u.msg.msg_id, LC_MSG_ID_BYTES) == 0 &&
           a->u.msg.total_len == b->u.msg.total_len &&
           a->u.msg.offset == b->u.msg.offset &&
           bytes_equal(a->u.msg.data, a->u.msg.len, b->u.msg.data,
                       b->u.msg.len);
  case LC_FR_BULK:
    return a->u.bulk.stream_id == b->u.bulk.stream_id &&
           a->u.bulk.offset == b->u.bulk.offset &&
           !a->u.bulk.fin == !b->u.bulk.fin &&
           bytes_equal(a->u.bulk.data, a->u.bulk.len, b->u.bulk.data,
                       b->u.bulk.len);
  case LC_FR_UNREL:
    return bytes_equal(a->u.unrel.data, a->u.unrel.len, b->u.unrel.data,
                       b->u.unrel.len);
  case LC_FR_MSG_CREDIT:
    return a->u.msg_credit.max_seq == b->u.msg_credit.max_seq;
  case LC_FR_DELIVERED:
    return a->u.delivered.seq == b->u.delivered.seq;
  case LC_FR_BULK_CREDIT:
    return a->u.bulk_credit.stream_id == b->u.bulk_credit.stream_id &&
           a->u.bulk_credit.max_offset == b->u.bulk_credit.max_offset;
  case LC_FR_CLOSE:
    return a->u.close.code == b->u.close.code;
  default:
    return 0;
  }
}

/* Encodes frames[0..n) as one payload into out; returns its length, or a
 * negative error from lc__payload_add.  Also checks that every add grows the
 * payload by exactly lc__frame_size. */
static int payload_encode(const lc__frame *frames, size_t n, uint8_t *out,
                          size_t cap) {
  lc__payload_writer w;
  lc__payload_init(&w, out, cap);
  for (size_t i = 0; i < n; i++) {
    size_t before = w.len;
    int rc = lc__payload_add(&w, &frames[i]);
    if (rc < 0)
      return rc;
    assert_int_equal(w.len - before, lc__frame_size(&frames[i]));
  }
  return (int)lc__payload_finish(&w);
}

/* Encodes dg, decodes the result, and checks it comes back equal with no
 * trailing or missing byte.  Returns the encoded length. */
static size_t dg_roundtrip(const lc__datagram *dg, uint8_t *buf) {
  int n = lc__wire_encode(dg, buf, BUF_MAX);
  assert_true(n > 0);
  lc__datagram back;
  assert_int_equal(lc__wire_decode(&back, buf, (size_t)n), 0);
  assert_true(dg_equal(dg, &back));
  if (dg->type == LC_DG_DATA)
    assert_int_equal(lc__wire_data_overhead(dg->u.data.receiver_index,
                                            dg->u.data.packet_number,
                                            dg->u.data.ciphertext_len),
                     (size_t)n - dg->u.data.ciphertext_len);
  return (size_t)n;
}

/* Same for a payload. */
static size_t payload_roundtrip(const lc__frame *frames, size_t n,
                                uint8_t *buf) {
  int len = payload_encode(frames, n, buf, BUF_MAX);
  assert_true(len > 0);
  lc__frame back[LC_FRAMES_MAX];
  lc__ack_range ranges[LC_ACK_RANGES_MAX];
  size_t nback = 0;
  assert_int_equal(
      lc__payload_decode(buf, (size_t)len, back, LC_FRAMES_MAX, &nback, ranges),
      0);
  assert_int_equal(nback, n);
  for (size_t i = 0; i < n; i++)
    assert_true(frame_equal(&frames[i], &back[i]));
  return (size_t)len;
}

/* ---- known-answer vectors (docs/PROTOCOL.md shows the same bytes) ------ */

#define HELLO_HEX                                                              \
  "96 01 02 ce 01 02 03 04"                                                    \
  "c4 20 000102030405060708090a0b0c0d0e0f"                                     \
  "     101112131415161718191a1b1c1d1e1f"                                      \
  "c4 30 202122232425262728292a2b2c2d2e2f"                                     \
  "     303132333435363738393a3b3c3d3e3f"                                      \
  "     404142434445464748494a4b4c4d4e4f"                                      \
  "c4 20 505152535455565758595a5b5c5d5e5f"                                     \
  "     606162636465666768696a6b6c6d6e6f"

#define WELCOME_HEX                                                            \
  "96 01 03 cd 12 34 ce 01 02 03 04"                                           \
  "c4 20 a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"                                     \
  "     b0b1b2b3b4b5b6b7b8b9babbbcbdbebf"                                      \
  "c4 18 c0c1c2c3c4c5c6c7c8c9cacbcccdcecf"                                     \
  "     d0d1d2d3d4d5d6d7"

#define DATA_HEX                                                               \
  "95 01 04 07 cd 01 2c c4 13"                                                 \
  "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2"

/* [[1, 100, 1000, 4, [2, 10]], [2, 0, id, 5, 0, "hello"]] */
#define PAYLOAD_HEX                                                            \
  "92"                                                                         \
  "95 01 64 cd 03 e8 04 92 02 0a"                                              \
  "96 02 00 c4 10 101112131415161718191a1b1c1d1e1f 05 00 c4 05 68656c6c6f"

static void kat_hello(lc__datagram *dg) {
  memset(dg, 0, sizeof *dg);
  dg->type = LC_DG_HELLO;
  dg->u.hello.sender_index = 0x01020304;
  fill_seq(dg->u.hello.ephemeral, LC_KEY_BYTES, 0x00);
  fill_seq(dg->u.hello.sealed_static, LC_HELLO_STATIC_BYTES, 0x20);
  fill_seq(dg->u.hello.sealed_payload, LC_HELLO_PAYLOAD_BYTES, 0x50);
}

static void kat_welcome(lc__datagram *dg) {
  memset(dg, 0, sizeof *dg);
  dg->type = LC_DG_WELCOME;
  dg->u.welcome.sender_index = 0x1234;
  dg->u.welcome.receiver_index = 0x01020304;
  fill_seq(dg->u.welcome.ephemeral, LC_KEY_BYTES, 0xa0);
  fill_seq(dg->u.welcome.sealed_payload, LC_WELCOME_PAYLOAD_BYTES, 0xc0);
}

static uint8_t kat_ct[19];

static void kat_data(lc__datagram *dg) {
  memset(dg, 0, sizeof *dg);
  fill_seq(kat_ct, sizeof kat_ct, 0xe0);
  dg->type = LC_DG_DATA;
  dg->u.data.receiver_index = 7;
  dg->u.data.packet_number = 300;
  dg->u.data.ciphertext = kat_ct;
  dg->u.data.ciphertext_len = sizeof kat_ct;
}

static lc__ack_range kat_ranges[1] = {{2, 10}};
static const uint8_t kat_msg_id[LC_MSG_ID_BYTES] = {
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
    0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f};

static void kat_payload(lc__frame f[2]) {
  memset(f, 0, 2 * sizeof *f);
  f[0].type = LC_FR_ACK;
  f[0].u.ack.largest = 100;
  f[0].u.ack.ack_delay_us = 1000;
  f[0].u.ack.first_range = 4;
  f[0].u.ack.nranges = 1;
  f[0].u.ack.ranges = kat_ranges;
  f[1].type = LC_FR_MSG;
  f[1].u.msg.seq = 0;
  memcpy(f[1].u.msg.msg_id, kat_msg_id, LC_MSG_ID_BYTES);
  f[1].u.msg.total_len = 5;
  f[1].u.msg.offset = 0;
  f[1].u.msg.data = (const uint8_t *)"hello";
  f[1].u.msg.len = 5;
}

static void kat_datagram(const lc__datagram *dg, const char *vec) {
  uint8_t want[256], got[256];
  size_t wn = hex(vec, want, sizeof want);
  int n = lc__wire_encode(dg, got, sizeof got);
  assert_int_equal(n, (int)wn);
  assert_memory_equal(got, want, wn);
  lc__datagram back;
  assert_int_equal(lc__wire_decode(&back, want, wn), 0);
  assert_true(dg_equal(dg, &back));
  /* a buffer one byte short is refused, not overrun */
  assert_int_equal(lc__wire_encode(dg, got, wn - 1), LC_ETOOBIG);
}

static void test_kat_hello(void **state) {
  (void)state;
  lc__datagram dg;
  kat_hello(&dg);
  kat_datagram(&dg, HELLO_HEX);
}

static void test_kat_welcome(void **state) {
  (void)state;
  lc__datagram dg;
  kat_welcome(&dg);
  kat_datagram(&dg, WELCOME_HEX);
}

static void test_kat_data(void **state) {
  (void)state;
  lc__datagram dg;
  kat_data(&dg);
  kat_datagram(&dg, DATA_HEX);
  assert_int_equal(lc__wire_data_overhead(7, 300, 19), 9);
}

static void test_kat_payload(void **state) {
  (void)state;
  lc__frame f[2];
  kat_payload(f);
  uint8_t want[128], got[128];
  size_t wn = hex(PAYLOAD_HEX, want, sizeof want);
  assert_int_equal(payload_encode(f, 2, got, sizeof got), (int)wn);
  assert_memory_equal(got, want, wn);
  lc__frame back[4];
  lc__ack_range ranges[LC_ACK_RANGES_MAX];
  size_t n;
  assert_int_equal(lc__payload_decode(want, wn, back, 4, &n, ranges), 0);
  assert_int_equal(n, 2);
  assert_true(frame_equal(&f[0], &back[0]));
  assert_true(frame_equal(&f[1], &back[1]));
  assert_ptr_equal(back[0].u.ack.ranges, ranges);
  /* byte strings point into the input, nothing is copied */
  assert_ptr_equal(back[1].u.msg.data, want + wn - 5);
}

/* ---- round trips at boundary values ----------------------------------- */

static const uint64_t u32_edges[] = {0,   1,     127,   128,       255,
                                     256, 65535, 65536, UINT32_MAX};
static const uint64_t u64_edges[] = {0,
                                     127,
                                     128,
                                     255,
                                     256,
                                     65535,
                                     65536,
                                     UINT32_MAX,
                                     (uint64_t)UINT32_MAX + 1,
                                     UINT64_MAX - 1,
                                     UINT64_MAX};
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static void test_roundtrip_handshake(void **state) {
  (void)state;
  static uint8_t buf[BUF_MAX];
  for (size_t i = 0; i < NELEM(u32_edges); i++) {
    for (size_t j = 0; j < NELEM(u32_edges); j++) {
      lc__datagram dg;
      kat_welcome(&dg);
      dg.u.welcome.sender_index = (uint32_t)u32_edges[i];
      dg.u.welcome.receiver_index = (uint32_t)u32_edges[j];
      dg_roundtrip(&dg, buf);
    }
    lc__datagram dg;
    kat_hello(&dg);
    dg.u.hello.sender_index = (uint32_t)u32_edges[i];
    memset(dg.u.hello.sealed_static, 0xff, LC_HELLO_STATIC_BYTES);
    dg_roundtrip(&dg, buf);
  }
}

static void test_roundtrip_data(void **state) {
  (void)state;
  static uint8_t buf[BUF_MAX];
  static uint8_t ct[LC_DATAGRAM_MAX];
  for (size_t i = 0; i < sizeof ct; i++)
    ct[i] = (uint8_t)(i * 31 + 7);
  const size_t lens[] = {16, 17, 255, 256, 1400, 65535 - 32, 65535 - 20};
  for (size_t i = 0; i < NELEM(u32_edges); i++)
    for (size_t j = 0; j < NELEM(u64_edges); j++)
      for (size_t k = 0; k < NELEM(lens); k++) {
        lc__datagram dg;
        memset(&dg, 0, sizeof dg);
        dg.type = LC_DG_DATA;
        dg.u.data.receiver_index = (uint32_t)u32_edges[i];
        dg.u.data.packet_number = u64_edges[j];
        dg.u.data.ciphertext = ct;
        dg.u.data.ciphertext_len = lens[k];
        size_t ovh = lc__wire_data_overhead(dg.u.data.receiver_index,
                                            dg.u.data.packet_number, lens[k]);
        if (ovh + lens[k] > LC_DATAGRAM_MAX) {
          assert_int_equal(lc__wire_encode(&dg, buf, BUF_MAX), LC_ETOOBIG);
          continue;
        }
        size_t n = dg_roundtrip(&dg, buf);
        /* the decoded ciphertext points into the input */
        lc__datagram back;
        assert_int_equal(lc__wire_decode(&back, buf, n), 0);
        assert_ptr_equal(back.u.data.ciphertext, buf + n - lens[k]);
      }
}

/* The largest DATA datagram is exactly LC_DATAGRAM_MAX bytes; one more
 * ciphertext byte is refused by the encoder, and a datagram of
 * LC_DATAGRAM_MAX + 1 bytes by the decoder. */
static void test_datagram_max(void **state) {
  (void)state;
  static uint8_t buf[BUF_MAX];
  static uint8_t ct[LC_DATAGRAM_MAX];
  memset(ct, 0x5a, sizeof ct);
  lc__datagram dg;
  memset(&dg, 0, sizeof dg);
  dg.type = LC_DG_DATA;
  dg.u.data.receiver_index = UINT32_MAX;
  dg.u.data.packet_number = UINT64_MAX;
  dg.u.data.ciphertext = ct;
  size_t ovh = lc__wire_data_overhead(UINT32_MAX, UINT64_MAX, 65000);
  assert_int_equal(ovh, 1 + 1 + 1 + 5 + 9 + 3);
  dg.u.data.ciphertext_len = LC_DATAGRAM_MAX - ovh;
  assert_int_equal(dg_roundtrip(&dg, buf), LC_DATAGRAM_MAX);
  dg.u.data.ciphertext_len++;
  assert_int_equal(lc__wire_encode(&dg, buf, BUF_MAX), LC_ETOOBIG);
  /* a valid datagram followed by a byte, past the size limit */
  dg.u.data.ciphertext_len--;
  assert_int_equal(lc__wire_encode(&dg, buf, BUF_MAX), LC_DATAGRAM_MAX);
  lc__datagram back;
  assert_int_equal(lc__wire_decode(&back, buf, LC_DATAGRAM_MAX + 1),
                   LC_ETOOBIG);
  lc__frame fr[1];
  lc__ack_range r[LC_ACK_RANGES_MAX];
  size_t n;
  assert_int_equal(lc__payload_decode(buf, LC_DATAGRAM_MAX + 1, fr, 1, &n, r),
                   LC_ETOOBIG);
}

static void test_encode_refuses_invalid(void **state) {
  (void)state;
  uint8_t buf[256];
  lc__datagram dg;
  kat_data(&dg);
  dg.u.data.ciphertext_len = LC_TAG_BYTES - 1;
  assert_int_equal(lc__wire_encode(&dg, buf, sizeof buf), LC_EINVAL);
  dg.type = LC_DG_ANNOUNCE;
  assert_int_equal(lc__wire_encode(&dg, buf, sizeof buf), LC_EINVAL);
  dg.type = 99;
  assert_int_equal(lc__wire_encode(&dg, buf, sizeof buf), LC_EINVAL);

  /* frames a decoder would reject are refused by the writer too */
  lc__payload_writer w;
  lc__payload_init(&w, buf, sizeof buf);
  lc__frame f;
  memset(&f, 0, sizeof f);
  f.type = 9;
  assert_int_equal(lc__payload_add(&w, &f), LC_EINVAL);
  f.type = LC_FR_MSG;
  f.u.msg.total_len = 4;
  f.u.msg.offset = 2;
  f.u.msg.data = (const uint8_t *)"abc";
  f.u.msg.len = 3;
  assert_int_equal(lc__payload_add(&w, &f), LC_EINVAL);
  f.u.msg.offset = 1;
  assert_int_equal(lc__payload_add(&w, &f), 0);
  memset(&f, 0, sizeof f);
  f.type = LC_FR_ACK;
  f.u.ack.largest = 3;
  f.u.ack.first_range = 4;
  assert_int_equal(lc__payload_add(&w, &f), LC_EINVAL);
  lc__ack_range r = {2, 0};
  f.u.ack.first_range = 0;
  f.u.ack.ranges = &r;
  f.u.ack.nranges = 1; /* 3, then gap 2 reaches below 0 */
  assert_int_equal(lc__payload_add(&w, &f), LC_EINVAL);
  r.gap = 1; /* 3, then packet 0 */
  assert_int_equal(lc__payload_add(&w, &f), 0);
  memset(&f, 0, sizeof f);
  f.type = LC_FR_BULK;
  f.u.bulk.offset = UINT64_MAX;
  f.u.bulk.data = (const uint8_t *)"x";
  f.u.bulk.len = 1;
  assert_int_equal(lc__payload_add(&w, &f), LC_EINVAL);
  assert_int_equal(w.nframes, 2);
}

static void test_roundtrip_frames(void **state) {
  (void)state;
  static uint8_t buf[BUF_MAX];
  static uint8_t data[70000];
  for (size_t i = 0; i < sizeof data; i++)
    data[i] = (uint8_t)(i ^ (i >> 8));
  /* a payload is at most LC_DATAGRAM_MAX bytes, so data never needs bin32 */
  const size_t lens[] = {0, 1, 255, 256, 65535 - 1000, 65400};
  lc__frame f;

  memset(&f, 0, sizeof f);
  f.type = LC_FR_PING;
  assert_int_equal(payload_roundtrip(&f, 1, buf), 3);
  assert_memory_equal(buf, "\x91\x91\x00", 3);

  for (size_t i = 0; i < NELEM(u64_edges); i++) {
    memset(&f, 0, sizeof f);
    f.type = LC_FR_MSG_CREDIT;
    f.u.msg_credit.max_seq = u64_edges[i];
    payload_roundtrip(&f, 1, buf);
    memset(&f, 0, sizeof f);
    f.type = LC_FR_DELIVERED;
    f.u.delivered.seq = u64_edges[i];
    payload_roundtrip(&f, 1, buf);
    for (size_t j = 0; j < NELEM(u32_edges); j++) {
      memset(&f, 0, sizeof f);
      f.type = LC_FR_BULK_CREDIT;
      f.u.bulk_credit.stream_id = (uint32_t)u32_edges[j];
      f.u.bulk_credit.max_offset = u64_edges[i];
      payload_roundtrip(&f, 1, buf);
    }
    /* ACK: largest at every edge, first_range 0 and the whole range */
    for (int full = 0; full < 2; full++) {
      memset(&f, 0, sizeof f);
      f.type = LC_FR_ACK;
      f.u.ack.largest = u64_edges[i];
      f.u.ack.ack_delay_us = u64_edges[NELEM(u64_edges) - 1 - i];
      f.u.ack.first_range = full ? u64_edges[i] : 0;
      payload_roundtrip(&f, 1, buf);
    }
  }

  const int64_t codes[] = {INT64_MIN, (int64_t)INT32_MIN - 1,
                           INT32_MIN, INT16_MIN - 1,
                           INT16_MIN, -129,
                           -128,      -33,
                           -32,       -1,
                           0,         1,
                           127,       128,
                           INT64_MAX};
  for (size_t i = 0; i < NELEM(codes); i++) {
    memset(&f, 0, sizeof f);
    f.type = LC_FR_CLOSE;
    f.u.close.code = codes[i];
    payload_roundtrip(&f, 1, buf);
  }

  for (size_t k = 0; k < NELEM(lens); k++) {
    memset(&f, 0, sizeof f);
    f.type = LC_FR_UNREL;
    f.u.unrel.data = data;
    f.u.unrel.len = lens[k];
    payload_roundtrip(&f, 1, buf);
    for (size_t i = 0; i < NELEM(u32_edges); i++) {
      memset(&f, 0, sizeof f);
      f.type = LC_FR_MSG;
      f.u.msg.seq = u64_edges[i];
      memset(f.u.msg.msg_id, (int)i, LC_MSG_ID_BYTES);
      f.u.msg.total_len = UINT32_MAX;
      f.u.msg.offset = u32_edges[i] > UINT32_MAX - lens[k]
                           ? (uint32_t)(UINT32_MAX - lens[k])
                           : (uint32_t)u32_edges[i];
      f.u.msg.data = data;
      f.u.msg.len = lens[k];
      payload_roundtrip(&f, 1, buf);
      memset(&f, 0, sizeof f);
      f.type = LC_FR_BULK;
      f.u.bulk.stream_id = (uint32_t)u32_edges[i];
      f.u.bulk.offset = u64_edges[i] > UINT64_MAX - lens[k]
                            ? UINT64_MAX - lens[k]
                            : u64_edges[i];
      f.u.bulk.fin = (int)(i & 1);
      f.u.bulk.data = data;
      f.u.bulk.len = lens[k];
      payload_roundtrip(&f, 1, buf);
    }
  }
  /* a whole message in one frame: offset 0, len == total_len, and empty */
  memset(&f, 0, sizeof f);
  f.type = LC_FR_MSG;
  f.u.msg.total_len = 0;
  payload_roundtrip(&f, 1, buf);
}

/* The most ranges an ACK may carry, each value at its encoding edge. */
static void test_roundtrip_ack_ranges(void **state) {
  (void)state;
  static uint8_t buf[BUF_MAX];
  lc__ack_range r[LC_ACK_RANGES_MAX + 1];
  lc__frame f;
  memset(&f, 0, sizeof f);
  f.type = LC_FR_ACK;
  f.u.ack.largest = UINT64_MAX;
  f.u.ack.ack_delay_us = 25000;
  f.u.ack.first_range = 0;
  f.u.ack.ranges = r;
  for (size_t i = 0; i <= LC_ACK_RANGES_MAX; i++) {
    r[i].gap = u64_edges[i % 7];
    r[i].len = u64_edges[(i + 3) % 7];
  }
  f.u.ack.nranges = LC_ACK_RANGES_MAX;
  payload_roundtrip(&f, 1, buf);
  f.u.ack.nranges = LC_ACK_RANGES_MAX + 1;
  lc__payload_writer w;
  lc__payload_init(&w, buf, BUF_MAX);
  assert_int_equal(lc__payload_add(&w, &f), LC_EINVAL);
  /* ranges reaching exactly packet 0: 10, gap 0 -> 8, len 8 -> 0 */
  f.u.ack.largest = 10;
  f.u.ack.first_range = 0;
  r[0].gap = 0;
  r[0].len = 8;
  f.u.ack.nranges = 1;
  payload_roundtrip(&f, 1, buf);
}

/* Payloads with 1, 15, 16 and 64 frames (fixarray, then array16 header),
 * mixing every frame type, with at most one ACK. */
static void test_roundtrip_many_frames(void **state) {
  (void)state;
  static uint8_t buf[BUF_MAX];
  lc__frame fr[LC_FRAMES_MAX];
  lc__ack_range r[2] = {{0, 0}, {5, 1}};
  const size_t counts[] = {1, 15, 16, 17, LC_FRAMES_MAX};
  for (size_t c = 0; c < NELEM(counts); c++) {
    for (size_t i = 0; i < counts[c]; i++) {
      lc__frame *f = &fr[i];
      memset(f, 0, sizeof *f);
      f->type = i == 0 ? LC_FR_ACK : (int)(i % 8 == 1 ? 0 : i % 8);
      switch (f->type) {
      case LC_FR_ACK:
        f->u.ack.largest = 1000 + i;
        f->u.ack.first_range = i;
        f->u.ack.ranges = r;
        f->u.ack.nranges = 2;
        break;
      case LC_FR_MSG:
        f->u.msg.seq = i;
        f->u.msg.total_len = 100;
        f->u.msg.offset = (uint32_t)i;
        f->u.msg.data = (const uint8_t *)"chunk";
        f->u.msg.len = 5;
        break;
      case LC_FR_BULK:
        f->u.bulk.stream_id = (uint32_t)i;
        f->u.bulk.offset = i << 20;
        f->u.bulk.fin = 1;
        break;
      case LC_FR_UNREL:
        f->u.unrel.data = (const uint8_t *)"typing";
        f->u.unrel.len = 6;
        break;
      case LC_FR_CLOSE:
        f->u.close.code = -(int64_t)i;
        break;
      default:
        f->u.bulk_credit.stream_id = (uint32_t)i;
        break;
      }
    }
    size_t len = payload_roundtrip(fr, counts[c], buf);
    if (counts[c] < 16) {
      assert_int_equal(buf[0], 0x90 | counts[c]);
    } else {
      assert_int_equal(buf[0], 0xdc);
      assert_int_equal(buf[1], 0);
      assert_int_equal(buf[2], counts[c]);
    }
    /* the same frames, max_frames one too small */
    lc__frame back[LC_FRAMES_MAX];
    lc__ack_range rr[LC_ACK_RANGES_MAX];
    size_t n = 99;
    assert_int_equal(lc__payload_decode(buf, len, back, counts[c] - 1, &n, rr),
                     LC_EPROTO);
    assert_int_equal(n, 0);
  }
}

/* ---- the payload writer's budget -------------------------------------- */

static void test_payload_budget(void **state) {
  (void)state;
  uint8_t buf[64], snap[64];
  memset(buf, 0, sizeof buf); /* its tail is compared below */
  lc__payload_writer w, wsnap;
  lc__payload_init(&w, buf, sizeof buf);
  assert_int_equal(w.len, 3);
  lc__frame f;
  memset(&f, 0, sizeof f);
  f.type = LC_FR_UNREL;
  static const uint8_t data[64] = {1, 2, 3};
  f.u.unrel.data = data;
  f.u.unrel.len = 40;
  assert_int_equal(lc__frame_size(&f), 44);
  assert_int_equal(lc__payload_add(&w, &f), 0);
  assert_int_equal(w.len, 47);
  /* 17 bytes left: an 18-byte frame does not fit, a 17-byte one does */
  f.u.unrel.len = 14;
  assert_int_equal(lc__frame_size(&f), 18);
  memcpy(snap, buf, sizeof buf);
  wsnap = w;
  assert_int_equal(lc__payload_add(&w, &f), LC_ETOOBIG);
  assert_memory_equal(&w, &wsnap, sizeof w);
  assert_memory_equal(buf, snap, sizeof buf);
  f.u.unrel.len = 13;
  assert_int_equal(lc__payload_add(&w, &f), 0);
  assert_int_equal(w.len, 64);
  size_t n = lc__payload_finish(&w);
  assert_int_equal(n, 62);
  assert_int_equal(buf[0], 0x92);

  /* the frame count limit */
  static uint8_t big[4096];
  lc__payload_init(&w, big, sizeof big);
  memset(&f, 0, sizeof f);
  f.type = LC_FR_PING;
  for (int i = 0; i < LC_FRAMES_MAX; i++)
    assert_int_equal(lc__payload_add(&w, &f), 0);
  wsnap = w;
  assert_int_equal(lc__payload_add(&w, &f), LC_ETOOBIG);
  assert_memory_equal(&w, &wsnap, sizeof w);
  assert_int_equal(lc__payload_finish(&w), 3 + 2 * LC_FRAMES_MAX);

  /* a budget smaller than the reserved header takes nothing */
  lc__payload_init(&w, buf, 2);
  assert_int_equal(lc__payload_add(&w, &f), LC_ETOOBIG);
}

/* lc__frame_max_data is exact for every room size around the bin8/bin16/
 * bin32 steps: data of that length fits, one byte more does not. */
static void check_max_data(lc__frame *f, size_t *len, size_t room) {
  static uint8_t buf[BUF_MAX + 65536];
  static const uint8_t zero[LC_DATAGRAM_MAX + 8];
  size_t m = lc__frame_max_data(f, room);
  *len = m + 1;
  if (lc__frame_size(f) <= room) {
    /* one byte more fits: m was not the largest */
    print_error("room %zu: max_data %zu but %zu fits\n", room, m, m + 1);
    fail();
  }
  *len = m;
  if (m == 0) {
    /* nothing fits, or only empty data */
    return;
  }
  assert_true(lc__frame_size(f) <= room);
  if (room <= sizeof zero) {
    /* and the writer agrees, with the same room after its header */
    const uint8_t **dp = f->type == LC_FR_MSG    ? &f->u.msg.data
                         : f->type == LC_FR_BULK ? &f->u.bulk.data
                                                 : &f->u.unrel.data;
    *dp = zero;
    lc__payload_writer w;
    lc__payload_init(&w, buf, room + 3);
    assert_int_equal(lc__payload_add(&w, f), 0);
    assert_int_equal(w.len, 3 + lc__frame_size(f));
    lc__payload_init(&w, buf, room + 3);
    *len = m + 1;
    assert_int_equal(lc__payload_add(&w, f), LC_ETOOBIG);
    *dp = NULL;
  }
}

static void test_frame_max_data(void **state) {
  (void)state;
  lc__frame f;
  for (int t = 0; t < 6; t++) {
    memset(&f, 0, sizeof f);
    size_t *len;
    if (t < 2) {
      f.type = LC_FR_MSG;
      f.u.msg.seq = t ? UINT64_MAX : 0;
      f.u.msg.total_len = UINT32_MAX;
      f.u.msg.offset = t ? 70000 : 0;
      len = &f.u.msg.len;
    } else if (t < 4) {
      f.type = LC_FR_BULK;
      f.u.bulk.stream_id = t == 3 ? UINT32_MAX : 1;
      f.u.bulk.offset = t == 3 ? 1u << 20 : 0;
      f.u.bulk.fin = t == 3;
      len = &f.u.bulk.len;
    } else {
      f.type = LC_FR_UNREL;
      len = &f.u.unrel.len;
    }
    if (t == 5) {
      /* the transport's worst case header at a 1472-byte MTU */
      f.type = LC_FR_MSG;
      f.u.msg.seq = UINT64_MAX;
      f.u.msg.total_len = UINT32_MAX;
      f.u.msg.offset = UINT32_MAX - 70000;
      len = &f.u.msg.len;
    }
    for (size_t room = 0; room < 700; room++)
      check_max_data(&f, len, room);
    for (size_t room = 65400; room < 65700; room++)
      check_max_data(&f, len, room);
    check_max_data(&f, len, 1400);
    check_max_data(&f, len, 200000);
  }
  /* frames without data have none to size */
  memset(&f, 0, sizeof f);
  f.type = LC_FR_ACK;
  assert_int_equal(lc__frame_max_data(&f, 1000), 0);
  /* a concrete point: MSG with small fields is 2+1+18+1+1 = 23 bytes of
   * fixed fields, so 300 bytes of room hold 300 - 23 - 3 = 274 bytes of
   * data, and 258 bytes of room hold 255 (bin8), not 256 */
  memset(&f, 0, sizeof f);
  f.type = LC_FR_MSG;
  assert_int_equal(lc__frame_max_data(&f, 300), 274);
  assert_int_equal(lc__frame_max_data(&f, 23 + 2 + 255), 255);
  assert_int_equal(lc__frame_max_data(&f, 23 + 2 + 256), 255);
  assert_int_equal(lc__frame_max_data(&f, 23 + 3 + 256), 256);
  assert_int_equal(lc__frame_max_data(&f, 24), 0);
  assert_int_equal(lc__frame_max_data(&f, 26), 1);
}

/* ---- malformed input -------------------------------------------------- */

#define Z16 "00000000000000000000000000000000"
#define Z32 Z16 Z16
#define Z48 Z32 Z16

typedef struct {
  const char *name;
  const char *hex;
  int err;
} bad_case;

static const bad_case bad_datagrams[] = {
    {"empty", "", LC_ETRUNC},
    {"nil", "c0", LC_EPROTO},
    {"integer", "01", LC_EPROTO},
    {"map", "82 01 01 02 04", LC_EPROTO},
    {"reserved byte c1", "c1", LC_EPROTO},
    {"empty array", "90", LC_EPROTO},
    {"array16 header cut", "dc 00", LC_ETRUNC},
    {"array32 header cut", "dd 00 00 00", LC_ETRUNC},
    {"huge array, nothing after", "dd ff ff ff ff", LC_ETRUNC},
    {"huge array of DATA", "dd ff ff ff ff 01 04 07 00 c4 10" Z16, LC_EPROTO},
    {"array16 of 65535 HELLO", "dc ff ff 01 02", LC_EPROTO},
    {"version only", "91 01", LC_EPROTO},
    {"version 2 alone", "91 02", LC_EVERSION},
    {"version 0", "95 00 04 07 00 c4 10" Z16, LC_EVERSION},
    {"version 2", "95 02 04 07 00 c4 10" Z16, LC_EVERSION},
    {"version 2^64-1", "92 cf ff ff ff ff ff ff ff ff 04", LC_EVERSION},
    {"version -1", "92 ff 04", LC_EVERSION},
    {"version as string", "92 a1 31 04", LC_EFIELD},
    {"version as bool", "92 c3 04", LC_EFIELD},
    {"version as float", "92 ca 3f 80 00 00 04", LC_EFIELD},
    {"version uint16 cut", "92 cd 00", LC_ETRUNC},
    {"type 0", "92 01 00", LC_ETYPE},
    {"type ANNOUNCE (discovery codec)", "92 01 01", LC_ETYPE},
    {"type 5", "95 01 05 07 00 c4 10" Z16, LC_ETYPE},
    {"type 2^32+2", "92 01 cf 00 00 00 01 00 00 00 02", LC_ETYPE},
    {"type -4", "95 01 fc 07 00 c4 10" Z16, LC_ETYPE},
    {"type as string", "92 01 a1 04", LC_EFIELD},
    {"type as nil", "92 01 c0", LC_EFIELD},
    {"DATA with 4 fields", "94 01 04 07 00", LC_EPROTO},
    {"DATA with 6 fields", "96 01 04 07 00 c4 10" Z16 "00", LC_EPROTO},
    {"HELLO with 5 fields", "95 01 02 00 c4 20" Z32 "c4 30" Z48, LC_EPROTO},
    {"WELCOME with 7 fields", "97 01 03", LC_EPROTO},
    {"DATA index as string", "95 01 04 a1 41 00 c4 10" Z16, LC_EFIELD},
    {"DATA index as bin", "95 01 04 c4 01 07 00 c4 10" Z16, LC_EFIELD},
    {"DATA index 2^32", "95 01 04 cf 00 00 00 01 00 00 00 00 00 c4 10" Z16,
     LC_ERANGE},
    {"DATA index -1", "95 01 04 ff 00 c4 10" Z16, LC_ERANGE},
    {"DATA index int64 -2^63",
     "95 01 04 d3 80 00 00 00 00 00 00 00 00 c4 10" Z16, LC_ERANGE},
    {"DATA pn as float64", "95 01 04 07 cb 3f f0 00 00 00 00 00 00 c4 10" Z16,
     LC_EFIELD},
    {"DATA pn -1", "95 01 04 07 d0 ff c4 10" Z16, LC_ERANGE},
    {"DATA ciphertext as str", "95 01 04 07 00 b0" Z16, LC_EFIELD},
    {"DATA ciphertext as str8", "95 01 04 07 00 d9 10" Z16, LC_EFIELD},
    {"DATA ciphertext as ext", "95 01 04 07 00 c7 10 01" Z16, LC_EFIELD},
    {"DATA ciphertext 15 bytes",
     "95 01 04 07 00 c4 0f 000000000000000000000000000000", LC_ERANGE},
    {"DATA ciphertext empty", "95 01 04 07 00 c4 00", LC_ERANGE},
    {"DATA ciphertext bin32 4 GiB", "95 01 04 07 00 c6 ff ff ff ff" Z16,
     LC_ETRUNC},
    {"DATA ciphertext bin16 cut", "95 01 04 07 00 c5 01", LC_ETRUNC},
    {"DATA nested garbage", "95 01 04 07 00 91 91 91 91 91 c0", LC_EFIELD},
    {"DATA reserved byte c1", "95 01 04 07 c1 c4 10" Z16, LC_EFIELD},
    {"DATA trailing byte", "95 01 04 07 00 c4 10" Z16 "00", LC_ETRAILING},
    {"two datagrams", "95 01 04 07 00 c4 10" Z16 "95 01 04 07 00 c4 10" Z16,
     LC_ETRAILING},
    {"HELLO ephemeral 31 bytes",
     "96 01 02 00 c4 1f" Z16 "000000000000000000000000000000"
     "c4 30" Z48 "c4 20" Z32,
     LC_ERANGE},
    {"HELLO ephemeral 33 bytes",
     "96 01 02 00 c4 21" Z32 "00 c4 30" Z48 "c4 20" Z32, LC_ERANGE},
    {"HELLO static as array", "96 01 02 00 c4 20" Z32 "dc 00 30", LC_EFIELD},
    {"HELLO payload cut", "96 01 02 00 c4 20" Z32 "c4 30" Z48 "c4 20" Z16,
     LC_ETRUNC},
    {"HELLO index bool", "96 01 02 c2 c4 20" Z32 "c4 30" Z48 "c4 20" Z32,
     LC_EFIELD},
    {"WELCOME payload 25 bytes",
     "96 01 03 01 02 c4 20" Z32 "c4 19" Z16 "000000000000000000", LC_ERANGE},
    {"WELCOME cut after receiver", "96 01 03 01 ce ff ff ff ff", LC_ETRUNC},
    {"WELCOME receiver uint64 2^32", "96 01 03 01 cf 00 00 00 01 00 00 00 00",
     LC_ERANGE},
};

static void test_malformed_datagrams(void **state) {
  (void)state;
  static uint8_t buf[4096];
  for (size_t i = 0; i < NELEM(bad_datagrams); i++) {
    const bad_case *c = &bad_datagrams[i];
    size_t n = hex(c->hex, buf, sizeof buf);
    lc__datagram dg;
    int rc = lc__wire_decode(&dg, n ? buf : NULL, n);
    if (rc != c->err) {
      print_error("%s: got %s, want %s\n", c->name, lc_err_name(rc),
                  lc_err_name(c->err));
      fail();
    }
  }
}

static const bad_case bad_payloads[] = {
    {"empty", "", LC_ETRUNC},
    {"nil", "c0", LC_EPROTO},
    {"map", "81 00 00", LC_EPROTO},
    {"no frames", "90", LC_EPROTO},
    {"frame is nil", "91 c0", LC_EPROTO},
    {"frame is integer", "91 00", LC_EPROTO},
    {"frame is empty", "91 90", LC_EPROTO},
    {"frame array16 header cut", "91 dc 00", LC_ETRUNC},
    {"frame type 9", "91 91 09", LC_ETYPE},
    {"DELIVERED without its seq", "91 91 08", LC_EPROTO},
    {"frame type 255", "91 91 cc ff", LC_ETYPE},
    {"frame type -1", "91 91 ff", LC_ETYPE},
    {"frame type string", "91 91 a0", LC_EFIELD},
    {"PING with a field", "91 92 00 00", LC_EPROTO},
    {"UNREL without data", "91 91 04", LC_EPROTO},
    {"CLOSE with 3 fields", "91 93 07 00 00", LC_EPROTO},
    {"65 frames", "dc 00 41", LC_EPROTO},
    {"2^32-1 frames", "dd ff ff ff ff 91 00", LC_EPROTO},
    {"two ACKs", "92 95 01 00 00 00 90 95 01 00 00 00 90", LC_EPROTO},
    {"ACK first_range > largest", "91 95 01 05 00 06 90", LC_ERANGE},
    {"ACK ranges odd", "91 95 01 0a 00 00 91 00", LC_EPROTO},
    {"ACK ranges not array", "91 95 01 0a 00 00 c0", LC_EFIELD},
    {"ACK ranges as bin", "91 95 01 0a 00 00 c4 00", LC_EFIELD},
    {"ACK 65 ranges", "91 95 01 cd 10 00 00 00 dc 00 82", LC_ERANGE},
    {"ACK 2^31 ranges", "91 95 01 0a 00 00 dd ff ff ff fe", LC_ERANGE},
    {"ACK gap below 0", "91 95 01 0a 00 00 92 09 00", LC_ERANGE},
    {"ACK len below 0", "91 95 01 0a 00 00 92 08 01", LC_ERANGE},
    {"ACK gap 2^64-1", "91 95 01 0a 00 00 92 cf ff ff ff ff ff ff ff ff 00",
     LC_ERANGE},
    {"ACK second range below 0", "91 95 01 0a 00 00 94 00 00 07 00", LC_ERANGE},
    {"ACK ranges cut", "91 95 01 0a 00 00 94 00 00", LC_ETRUNC},
    {"ACK largest negative", "91 95 01 ff 00 00 90", LC_ERANGE},
    {"ACK delay string", "91 95 01 0a a0 00 90", LC_EFIELD},
    {"MSG beyond total_len", "91 96 02 00 c4 10" Z16 "03 01 c4 03 616263",
     LC_ERANGE},
    {"MSG offset beyond total", "91 96 02 00 c4 10" Z16 "03 04 c4 00",
     LC_ERANGE},
    {"MSG id 15 bytes",
     "91 96 02 00 c4 0f 000000000000000000000000000000 03 00 c4 00", LC_ERANGE},
    {"MSG id as str", "91 96 02 00 b0" Z16 "03 00 c4 00", LC_EFIELD},
    {"MSG total_len 2^32", "91 96 02 00 c4 10" Z16 "cf 00 00 00 01 00 00 00 00",
     LC_ERANGE},
    {"MSG data as nil", "91 96 02 00 c4 10" Z16 "03 00 c0", LC_EFIELD},
    {"MSG data cut", "91 96 02 00 c4 10" Z16 "03 00 c4 03 61 62", LC_ETRUNC},
    {"BULK fin as integer", "91 95 03 00 00 01 c4 00", LC_EFIELD},
    {"BULK fin as nil", "91 95 03 00 00 c0 c4 00", LC_EFIELD},
    {"BULK stream 2^32", "91 95 03 cf 00 00 00 01 00 00 00 00 00 c2 c4 00",
     LC_ERANGE},
    {"BULK offset+len > 2^64-1",
     "91 95 03 00 cf ff ff ff ff ff ff ff ff c2 c4 01 00", LC_ERANGE},
    {"BULK_CREDIT stream -1", "91 93 06 ff 00", LC_ERANGE},
    {"MSG_CREDIT as float32", "91 92 05 ca 00 00 00 00", LC_EFIELD},
    {"CLOSE code 2^63", "91 92 07 cf 80 00 00 00 00 00 00 00", LC_ERANGE},
    {"CLOSE code nil", "91 92 07 c0", LC_EFIELD},
    {"CLOSE code int64 cut", "91 92 07 d3 ff ff", LC_ETRUNC},
    {"UNREL bin16 cut", "91 92 04 c5 01 00 00", LC_ETRUNC},
    {"UNREL nested garbage", "91 92 04 91 91 91 91 91", LC_EFIELD},
    {"trailing byte", "91 91 00 00", LC_ETRAILING},
    {"declared 2 frames, 1 given", "92 91 00", LC_ETRUNC},
};

static void test_malformed_payloads(void **state) {
  (void)state;
  static uint8_t buf[4096];
  lc__frame fr[LC_FRAMES_MAX];
  lc__ack_range r[LC_ACK_RANGES_MAX];
  for (size_t i = 0; i < NELEM(bad_payloads); i++) {
    const bad_case *c = &bad_payloads[i];
    size_t n = hex(c->hex, buf, sizeof buf);
    size_t nf = 77;
    int rc = lc__payload_decode(n ? buf : NULL, n, fr, LC_FRAMES_MAX, &nf, r);
    if (rc != c->err || nf != 0) {
      print_error("%s: got %s (%zu frames), want %s\n", c->name,
                  lc_err_name(rc), nf, lc_err_name(c->err));
      fail();
    }
  }
}

/* Integers are accepted in any msgpack encoding that holds the value, so a
 * peer need not pick the smallest one; ours always does. */
static void test_non_minimal_accepted(void **state) {
  (void)state;
  uint8_t in[128], out[128];
  size_t n =
      hex("dc 00 05 cc 01 d0 04 cf 00 00 00 00 00 00 00 07"
          "d1 01 2c c6 00 00 00 13 e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2",
          in, sizeof in);
  lc__datagram dg, want;
  assert_int_equal(lc__wire_decode(&dg, in, n), 0);
  kat_data(&want);
  assert_true(dg_equal(&dg, &want));
  uint8_t canon[128];
  size_t wn = hex(DATA_HEX, canon, sizeof canon);
  assert_int_equal(lc__wire_encode(&dg, out, sizeof out), (int)wn);
  assert_memory_equal(out, canon, wn);

  /* CLOSE -256 as int16, int64 and a positive code as int8 */
  lc__frame fr[2];
  lc__ack_range r[LC_ACK_RANGES_MAX];
  size_t nf;
  n = hex("92 92 07 d1 ff 00 92 07 d0 05", in, sizeof in);
  assert_int_equal(lc__payload_decode(in, n, fr, 2, &nf, r), 0);
  assert_int_equal(fr[0].u.close.code, -256);
  assert_int_equal(fr[1].u.close.code, 5);
  n = hex("91 92 07 d3 ff ff ff ff ff ff ff 00", in, sizeof in);
  assert_int_equal(lc__payload_decode(in, n, fr, 2, &nf, r), 0);
  assert_int_equal(fr[0].u.close.code, -256);
  /* one frame in an array32, its header an array16 */
  n = hex("dd 00 00 00 01 dc 00 05 03 00 00 c3 c4 00", in, sizeof in);
  assert_int_equal(lc__payload_decode(in, n, fr, 2, &nf, r), 0);
  assert_int_equal(nf, 1);
  assert_int_equal(fr[0].type, LC_FR_BULK);
  assert_int_equal(fr[0].u.bulk.fin, 1);
  assert_int_equal(fr[0].u.bulk.len, 0);
}

/* Every proper prefix of a valid datagram or payload is LC_ETRUNC, and one
 * extra byte is LC_ETRAILING.  The prefix is copied into an exact-size heap
 * buffer so the sanitizer build catches any read past it. */
static void check_prefixes(const uint8_t *v, size_t n, int payload) {
  for (size_t k = 0; k <= n; k++) {
    uint8_t *p = malloc(k + 1);
    assert_non_null(p);
    memcpy(p, v, k < n ? k : n);
    if (k == n)
      p[n] = 0xc0;
    size_t len = k < n ? k : n + 1;
    int rc;
    if (payload) {
      lc__frame fr[LC_FRAMES_MAX];
      lc__ack_range r[LC_ACK_RANGES_MAX];
      size_t nf;
      rc = lc__payload_decode(p, len, fr, LC_FRAMES_MAX, &nf, r);
    } else {
      lc__datagram dg;
      rc = lc__wire_decode(&dg, p, len);
    }
    free(p);
    int want = k < n ? LC_ETRUNC : LC_ETRAILING;
    if (rc != want) {
      print_error("prefix of %zu/%zu bytes: got %s, want %s\n", k, n,
                  lc_err_name(rc), lc_err_name(want));
      fail();
    }
  }
}

static void test_truncation_and_trailing(void **state) {
  (void)state;
  static uint8_t buf[BUF_MAX];
  lc__datagram dg;
  kat_hello(&dg);
  check_prefixes(buf, (size_t)lc__wire_encode(&dg, buf, BUF_MAX), 0);
  kat_welcome(&dg);
  dg.u.welcome.sender_index = UINT32_MAX;
  check_prefixes(buf, (size_t)lc__wire_encode(&dg, buf, BUF_MAX), 0);
  kat_data(&dg);
  dg.u.data.packet_number = UINT64_MAX;
  check_prefixes(buf, (size_t)lc__wire_encode(&dg, buf, BUF_MAX), 0);
  static uint8_t ct[300];
  dg.u.data.ciphertext = ct;
  dg.u.data.ciphertext_len = sizeof ct;
  check_prefixes(buf, (size_t)lc__wire_encode(&dg, buf, BUF_MAX), 0);

  lc__frame fr[20];
  kat_payload(fr);
  check_prefixes(buf, (size_t)payload_encode(fr, 2, buf, BUF_MAX), 1);
  /* every frame type, 17 frames (array16 header) */
  for (int i = 2; i < 17; i++) {
    memset(&fr[i], 0, sizeof fr[i]);
    fr[i].type = i % 8 == 1 ? LC_FR_PING : i % 8;
  }
  fr[3].u.bulk.data = ct;
  fr[3].u.bulk.len = 256;
  fr[3].u.bulk.offset = UINT32_MAX;
  fr[7].u.close.code = INT64_MIN;
  fr[10].u.msg.total_len = 70000;
  fr[10].u.msg.offset = 69999;
  fr[10].u.msg.data = ct;
  fr[10].u.msg.len = 1;
  check_prefixes(buf, (size_t)payload_encode(fr, 17, buf, BUF_MAX), 1);
}

/* ---- seeded mutation -------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rng(void) {
  /* splitmix64: tiny, and good enough to pick mutations */
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static const uint8_t interesting[] = {
    0x00, 0x01, 0x02, 0x04, 0x07, 0x0f, 0x10, 0x7f, 0x80, 0x90,
    0x91, 0x9f, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xcc,
    0xcd, 0xce, 0xcf, 0xd0, 0xd3, 0xdc, 0xdd, 0xe0, 0xff};

static size_t mutate(uint8_t *b, size_t n, size_t cap) {
  int rounds = 1 + (int)(rng() % 4);
  for (int r = 0; r < rounds; r++) {
    size_t pos = n ? (size_t)(rng() % n) : 0;
    switch (rng() % 6) {
    case 0:
      if (n)
        b[pos] ^= (uint8_t)(1u << (rng() % 8));
      break;
    case 1:
      if (n)
        b[pos] = interesting[rng() % sizeof interesting];
      break;
    case 2: /* insert */
      if (n < cap) {
        memmove(b + pos + 1, b + pos, n - pos);
        b[pos] = interesting[rng() % sizeof interesting];
        n++;
      }
      break;
    case 3: /* delete */
      if (n) {
        memmove(b + pos, b + pos + 1, n - pos - 1);
        n--;
      }
      break;
    case 4: /* truncate */
      n = pos;
      break;
    default:
      if (n)
        b[pos] = (uint8_t)rng();
      break;
    }
  }
  return n;
}

/* After a successful decode of in, its canonical re-encoding must decode to
 * the same thing, re-encode to the same bytes, and be no longer than in. */
static int check_consistent(const uint8_t *in, size_t n, char *why,
                            size_t why_len) {
  static uint8_t e1[BUF_MAX], e2[BUF_MAX];
  lc__datagram dg, dg2;
  int accepted = 0;
  if (lc__wire_decode(&dg, in, n) == 0) {
    accepted++;
    int n1 = lc__wire_encode(&dg, e1, sizeof e1);
    if (n1 < 0 || (size_t)n1 > n) {
      snprintf(why, why_len, "datagram re-encode: %d for %zu bytes", n1, n);
      return -1;
    }
    if (lc__wire_decode(&dg2, e1, (size_t)n1) != 0 || !dg_equal(&dg, &dg2)) {
      snprintf(why, why_len, "datagram re-decode differs");
      return -1;
    }
    int n2 = lc__wire_encode(&dg2, e2, sizeof e2);
    if (n2 != n1 || memcmp(e1, e2, (size_t)n1) != 0) {
      snprintf(why, why_len, "datagram re-encode not stable");
      return -1;
    }
  }
  lc__frame fr[LC_FRAMES_MAX], fr2[LC_FRAMES_MAX];
  lc__ack_range r[LC_ACK_RANGES_MAX], r2[LC_ACK_RANGES_MAX];
  size_t nf, nf2;
  if (lc__payload_decode(in, n, fr, LC_FRAMES_MAX, &nf, r) == 0) {
    accepted++;
    int n1 = payload_encode(fr, nf, e1, sizeof e1);
    if (n1 < 0 || (size_t)n1 > n) {
      snprintf(why, why_len, "payload re-encode: %d for %zu bytes", n1, n);
      return -1;
    }
    if (lc__payload_decode(e1, (size_t)n1, fr2, LC_FRAMES_MAX, &nf2, r2) != 0 ||
        nf2 != nf) {
      snprintf(why, why_len, "payload re-decode failed");
      return -1;
    }
    for (size_t i = 0; i < nf; i++)
      if (!frame_equal(&fr[i], &fr2[i])) {
        snprintf(why, why_len, "payload frame %zu differs", i);
        return -1;
      }
    int n2 = payload_encode(fr2, nf2, e2, sizeof e2);
    if (n2 != n1 || memcmp(e1, e2, (size_t)n1) != 0) {
      snprintf(why, why_len, "payload re-encode not stable");
      return -1;
    }
  }
  return accepted;
}

static void test_random_mutations(void **state) {
  (void)state;
  uint64_t seed = 0x3f1a2b3c4d5e6f70ull;
  const char *env = getenv("LC_TEST_SEED");
  if (env && *env)
    seed = strtoull(env, NULL, 0);
  printf("test_random_mutations: seed %llu (LC_TEST_SEED to replay)\n",
         (unsigned long long)seed);
  rng_state = seed;

  /* the valid inputs to start from */
  static uint8_t seeds[8][1024];
  size_t seed_len[8];
  lc__datagram dg;
  kat_hello(&dg);
  seed_len[0] = (size_t)lc__wire_encode(&dg, seeds[0], 1024);
  kat_welcome(&dg);
  seed_len[1] = (size_t)lc__wire_encode(&dg, seeds[1], 1024);
  kat_data(&dg);
  seed_len[2] = (size_t)lc__wire_encode(&dg, seeds[2], 1024);
  dg.u.data.packet_number = 1ull << 40;
  dg.u.data.receiver_index = 70000;
  seed_len[3] = (size_t)lc__wire_encode(&dg, seeds[3], 1024);
  lc__frame fr[9];
  kat_payload(fr);
  seed_len[4] = (size_t)payload_encode(fr, 2, seeds[4], 1024);
  for (int i = 0; i < 9; i++) {
    memset(&fr[i], 0, sizeof fr[i]);
    fr[i].type = i % 8;
  }
  fr[1].u.ack.largest = 5000;
  fr[1].u.ack.first_range = 3;
  fr[1].u.ack.ranges = kat_ranges;
  fr[1].u.ack.nranges = 1;
  fr[2].u.msg.total_len = 3;
  fr[2].u.msg.data = (const uint8_t *)"abc";
  fr[2].u.msg.len = 3;
  fr[3].u.bulk.fin = 1;
  fr[3].u.bulk.offset = 1 << 20;
  fr[4].u.unrel.data = (const uint8_t *)"x";
  fr[4].u.unrel.len = 1;
  fr[7].u.close.code = -40;
  seed_len[5] = (size_t)payload_encode(fr, 9, seeds[5], 1024);
  seed_len[6] = (size_t)payload_encode(fr + 1, 1, seeds[6], 1024);
  seed_len[7] = (size_t)payload_encode(fr + 2, 7, seeds[7], 1024);

  static uint8_t b[2048];
  char why[128];
  unsigned long accepted = 0;
  const unsigned long iters = 1000000;
  for (unsigned long it = 0; it < iters; it++) {
    int s = (int)(rng() % 8);
    memcpy(b, seeds[s], seed_len[s]);
    size_t n = mutate(b, seed_len[s], sizeof b);
    int rc = check_consistent(b, n, why, sizeof why);
    if (rc < 0) {
      print_error("seed %llu iteration %lu: %s\n", (unsigned long long)seed, it,
                  why);
      fail();
    }
    accepted += (unsigned long)rc;
  }
  /* The run must have exercised the success path too, not only errors. */
  printf("test_random_mutations: %lu of %lu mutants decoded\n", accepted,
         iters);
  assert_true(accepted > iters / 100);
}

/* ---- discovery datagrams and the chat envelope (PROTOCOL.md 11) -------- */

/* The examples of PROTOCOL.md 11.2, 11.3 and 11.6. */
#define KAT_ANNOUNCE                                                           \
  "9c 01 01 04 c4 20 8a 88 e3 dd 74 09 f1 95 fd 52"                            \
  "db 2d 3c ba 5d 72 ca 67 09 bf 1d 94 12 1b f3 74"                            \
  "88 01 b4 0f 6f 5c cf 00 06 60 8b 01 5f 30 00 cd"                            \
  "1e 65 cd 13 88 01 01 a3 61 6e 61 a0 c4 40 82 1e"                            \
  "87 72 f5 0f 91 70 64 4b e8 13 44 cb 1d 84 74 d2"                            \
  "be cd 73 a5 82 23 b9 41 cb 75 eb c5 89 5f cc 4f"                            \
  "81 ff f7 a6 68 30 79 34 98 bb 9b 16 7d c7 80 8f"                            \
  "93 cd 1c b4 72 b6 da d4 1d 9a ab bf 34 0b"
#define KAT_PEERS                                                              \
  "96 01 05 c4 20 8a 88 e3 dd 74 09 f1 95 fd 52 db"                            \
  "2d 3c ba 5d 72 ca 67 09 bf 1d 94 12 1b f3 74 88"                            \
  "01 b4 0f 6f 5c cf 00 06 60 8b 01 5f 30 01 91 93"                            \
  "c4 20 22 22 22 22 22 22 22 22 22 22 22 22 22 22"                            \
  "22 22 22 22 22 22 22 22 22 22 22 22 22 22 22 22"                            \
  "22 22 c4 04 0a c9 02 03 cd 1e 65 c4 40 cb c6 da"                            \
  "95 4e 28 d9 21 3f 73 62 f3 6c bd 70 59 b3 17 ff"                            \
  "ee 45 67 21 97 ba 96 b6 54 a5 82 56 45 66 ce fb"                            \
  "62 f0 eb 17 96 71 61 20 88 4a d8 3d 5d cd d0 7f"                            \
  "13 b8 55 08 80 42 3a 55 1c 0a 3a 23 00"
#define KAT_CHAT "93 01 cf 00 00 01 a1 ee 56 5e 00 a2 68 69"

static void kat_identity(lc__identity *id) {
  uint8_t seed[32];
  memset(seed, 1, sizeof seed);
  assert_int_equal(lc__crypto_init(), 0);
  assert_int_equal(lc__identity_generate(id, seed), 0);
}

static int disc_sign_encode(const lc__identity *id, const lc__disc_datagram *dg,
                            uint8_t *buf, size_t cap) {
  int n = lc__disc_encode_body(dg, buf, cap);
  if (n < 0)
    return n;
  uint8_t sig[LC_SIGNATURE_BYTES];
  lc__sign(id, buf, (size_t)n, sig);
  return lc__disc_encode_sig(buf, cap, (size_t)n, sig);
}

static void kat_announce_struct(const lc__identity *id, lc__disc_datagram *dg) {
  memset(dg, 0, sizeof *dg);
  dg->type = LC_DG_ANNOUNCE;
  lc__announce *a = &dg->u.announce;
  a->flags = LC_ANN_SOLICIT;
  memcpy(a->key, id->pk, 32);
  a->timestamp_us = 1795000000000000ull;
  a->port = 7781;
  a->interval_ms = 5000;
  a->presence = 1;
  a->caps = 1;
  a->nick = "ana";
  a->nick_len = 3;
  a->status = "";
  a->status_len = 0;
}

static void test_kat_announce(void **state) {
  (void)state;
  lc__identity id;
  kat_identity(&id);
  lc__disc_datagram dg, got;
  kat_announce_struct(&id, &dg);
  uint8_t want[256], buf[256];
  size_t wn = hex(KAT_ANNOUNCE, want, sizeof want);
  int n = disc_sign_encode(&id, &dg, buf, sizeof buf);
  assert_int_equal(n, (int)wn);
  assert_memory_equal(buf, want, wn);
  assert_int_equal(lc__disc_decode(&got, want, wn, NULL), 0);
  assert_int_equal(got.type, LC_DG_ANNOUNCE);
  assert_int_equal(got.signed_len, 60);
  assert_int_equal(
      lc__verify(got.u.announce.key, want, got.signed_len, got.sig), 0);
  const lc__announce *a = &got.u.announce;
  assert_int_equal(a->flags, LC_ANN_SOLICIT);
  assert_memory_equal(a->key, id.pk, 32);
  assert_true(a->timestamp_us == 1795000000000000ull);
  assert_int_equal(a->port, 7781);
  assert_int_equal(a->interval_ms, 5000);
  assert_int_equal(a->presence, 1);
  assert_true(a->caps == 1);
  assert_int_equal(a->nick_len, 3);
  assert_memory_equal(a->nick, "ana", 3);
  assert_int_equal(a->status_len, 0);
  /* one flipped bit anywhere in the signed part breaks the signature */
  want[20] ^= 1;
  assert_int_equal(lc__disc_decode(&got, want, wn, NULL), 0);
  assert_int_equal(
      lc__verify(got.u.announce.key, want, got.signed_len, got.sig), LC_EAUTH);
}

static void test_kat_peers_and_chat(void **state) {
  (void)state;
  lc__identity id;
  kat_identity(&id);
  lc__peer_entry e;
  memset(&e, 0, sizeof e);
  memset(e.key, 0x22, 32);
  e.ip[0] = 10;
  e.ip[1] = 201;
  e.ip[2] = 2;
  e.ip[3] = 3;
  e.ip_len = 4;
  e.port = 7781;
  lc__disc_datagram dg, got;
  memset(&dg, 0, sizeof dg);
  dg.type = LC_DG_PEERS;
  memcpy(dg.u.peers.key, id.pk, 32);
  dg.u.peers.timestamp_us = 1795000000000001ull;
  dg.u.peers.nentries = 1;
  dg.u.peers.entries = &e;
  uint8_t want[256], buf[256];
  size_t wn = hex(KAT_PEERS, want, sizeof want);
  int n = disc_sign_encode(&id, &dg, buf, sizeof buf);
  assert_int_equal(n, (int)wn);
  assert_memory_equal(buf, want, wn);
  lc__peer_entry entries[LC_PEERS_MAX];
  assert_int_equal(lc__disc_decode(&got, want, wn, entries), 0);
  assert_int_equal(got.type, LC_DG_PEERS);
  assert_int_equal(got.u.peers.nentries, 1);
  assert_memory_equal(&got.u.peers.entries[0], &e, sizeof e);
  assert_int_equal(lc__verify(id.pk, want, got.signed_len, got.sig), 0);
  /* a PEERS needs room for its entries */
  assert_int_equal(lc__disc_decode(&got, want, wn, NULL), LC_EINVAL);

  lc__chat c = {.kind = LC_CHAT_TEXT,
                .sent_ms = 1795000000000ull,
                .text = "hi",
                .text_len = 2},
           cg;
  wn = hex(KAT_CHAT, want, sizeof want);
  n = lc__chat_encode(&c, buf, sizeof buf);
  assert_int_equal(n, (int)wn);
  assert_memory_equal(buf, want, wn);
  assert_int_equal(lc__chat_decode(&cg, want, wn), 0);
  assert_int_equal(cg.kind, LC_CHAT_TEXT);
  assert_true(cg.sent_ms == c.sent_ms);
  assert_int_equal(cg.text_len, 2);
  assert_memory_equal(cg.text, "hi", 2);
  assert_int_equal(lc__chat_encode(&c, buf, 5), LC_ETOOBIG);
}

static void test_chat_read(void **state) {
  (void)state;
  static lc__chat c, g;
  uint8_t buf[2048];
  memset(&c, 0, sizeof c);
  c.kind = LC_CHAT_READ;
  c.sent_ms = 7;
  for (size_t n = 1; n <= LC_CHAT_IDS_MAX; n += 21) {
    c.nids = n;
    for (size_t i = 0; i < n; i++)
      memset(c.ids[i], (int)i + 1, LC_MSG_ID_BYTES);
    int len = lc__chat_encode(&c, buf, sizeof buf);
    assert_true(len > 0);
    assert_int_equal(lc__chat_decode(&g, buf, (size_t)len), 0);
    assert_int_equal(g.kind, LC_CHAT_READ);
    assert_int_equal(g.nids, n);
    assert_memory_equal(g.ids, c.ids, n * LC_MSG_ID_BYTES);
    for (size_t k = 0; k < (size_t)len; k++)
      assert_true(lc__chat_decode(&g, buf, k) < 0);
  }
  c.nids = 0;
  assert_int_equal(lc__chat_encode(&c, buf, sizeof buf), LC_EINVAL);
  c.nids = LC_CHAT_IDS_MAX + 1;
  assert_int_equal(lc__chat_encode(&c, buf, sizeof buf), LC_EINVAL);
  /* [2, 7, []], [2, 7, [bin15]], 65 ids, ids as a str */
  size_t n = hex("93 02 07 90", buf, sizeof buf);
  assert_int_equal(lc__chat_decode(&g, buf, n), LC_ERANGE);
  n = hex("93 02 07 91 c4 0f 000000000000000000000000000000", buf, sizeof buf);
  assert_int_equal(lc__chat_decode(&g, buf, n), LC_ERANGE);
  n = hex("93 02 07 dc 00 41", buf, sizeof buf);
  assert_int_equal(lc__chat_decode(&g, buf, n), LC_ERANGE);
  n = hex("93 02 07 a1 41", buf, sizeof buf);
  assert_int_equal(lc__chat_decode(&g, buf, n), LC_EFIELD);
  n = hex("93 0d 07 a1 41", buf, sizeof buf);
  assert_int_equal(lc__chat_decode(&g, buf, n), LC_ETYPE);
  /* EDIT [4, 7, target, text] and RETRACT [5, 7, target] */
  memset(&c, 0, sizeof c);
  c.kind = LC_CHAT_EDIT;
  c.sent_ms = 7;
  memset(c.target, 0xab, LC_MSG_ID_BYTES);
  c.text = "fixed typo";
  c.text_len = 10;
  int len = lc__chat_encode(&c, buf, sizeof buf);
  assert_true(len > 0);
  assert_int_equal(buf[0], 0x94);
  assert_int_equal(lc__chat_decode(&g, buf, (size_t)len), 0);
  assert_int_equal(g.kind, LC_CHAT_EDIT);
  assert_memory_equal(g.target, c.target, LC_MSG_ID_BYTES);
  assert_int_equal(g.text_len, 10);
  assert_memory_equal(g.text, "fixed typo", 10);
  c.kind = LC_CHAT_RETRACT;
  len = lc__chat_encode(&c, buf, sizeof buf);
  assert_int_equal(len, 3 + 2 + LC_MSG_ID_BYTES);
  assert_int_equal(lc__chat_decode(&g, buf, (size_t)len), 0);
  assert_int_equal(g.kind, LC_CHAT_RETRACT);
  assert_memory_equal(g.target, c.target, LC_MSG_ID_BYTES);
  c.kind = LC_CHAT_EDIT;
  c.text = "\xc0\x80";
  c.text_len = 2;
  assert_int_equal(lc__chat_encode(&c, buf, sizeof buf), LC_EINVAL);
  n = hex("93 04 07 c4 10 00000000000000000000000000000000", buf, sizeof buf);
  assert_int_equal(lc__chat_decode(&g, buf, n), LC_EPROTO); /* no text */
  n = hex("94 05 07 c4 10 00000000000000000000000000000000 a0", buf,
          sizeof buf);
  assert_int_equal(lc__chat_decode(&g, buf, n), LC_EPROTO); /* extra */
  n = hex("93 05 07 c4 0f 000000000000000000000000000000", buf, sizeof buf);
  assert_int_equal(lc__chat_decode(&g, buf, n), LC_ERANGE);
  /* TYPING: [3, 7, state] */
  for (int t = 0; t <= 2; t++) {
    memset(&c, 0, sizeof c);
    c.kind = LC_CHAT_TYPING;
    c.sent_ms = 7;
    c.typing = t;
    len = lc__chat_encode(&c, buf, sizeof buf);
    assert_int_equal(len, 4);
    assert_int_equal(lc__chat_decode(&g, buf, (size_t)len), 0);
    assert_int_equal(g.kind, LC_CHAT_TYPING);
    assert_int_equal(g.typing, t);
  }
  c.typing = 3;
  assert_int_equal(lc__chat_encode(&c, buf, sizeof buf), LC_EINVAL);
  n = hex("93 03 07 03", buf, sizeof buf);
  assert_int_equal(lc__chat_decode(&g, buf, n), LC_ERANGE);
  n = hex("93 03 07 a1 41", buf, sizeof buf);
  assert_int_equal(lc__chat_decode(&g, buf, n), LC_EFIELD);
}

static void test_disc_max_sizes(void **state) {
  (void)state;
  lc__identity id;
  kat_identity(&id);
  char nick[LC_NICK_MAX_BYTES], status[LC_STATUS_MAX_BYTES];
  memset(nick, 'n', sizeof nick);
  /* multi-byte UTF-8 up to the limit */
  for (size_t i = 0; i + 3 <= sizeof status; i += 3)
    memcpy(status + i, "\xe2\x82\xac", 3);
  size_t slen = sizeof status / 3 * 3;
  lc__disc_datagram dg, got;
  kat_announce_struct(&id, &dg);
  dg.u.announce.nick = nick;
  dg.u.announce.nick_len = sizeof nick;
  dg.u.announce.status = status;
  dg.u.announce.status_len = slen;
  dg.u.announce.flags = LC_ANN_FLAGS_ALL;
  dg.u.announce.timestamp_us = UINT64_MAX;
  dg.u.announce.caps = UINT64_MAX;
  dg.u.announce.interval_ms = 3600000;
  dg.u.announce.port = 65535;
  uint8_t buf[1500];
  int n = disc_sign_encode(&id, &dg, buf, sizeof buf);
  assert_true(n > 0 && n <= 1472);
  assert_int_equal(lc__disc_decode(&got, buf, (size_t)n, NULL), 0);
  assert_int_equal(got.u.announce.nick_len, sizeof nick);
  assert_int_equal(got.u.announce.status_len, slen);
  assert_true(got.u.announce.timestamp_us == UINT64_MAX);
  /* 24 IPv6 entries: the largest PEERS still fits an Ethernet frame */
  lc__peer_entry e[LC_PEERS_MAX], ge[LC_PEERS_MAX];
  for (size_t i = 0; i < LC_PEERS_MAX; i++) {
    memset(&e[i], 0, sizeof e[i]);
    memset(e[i].key, (int)i, 32);
    memset(e[i].ip, 0xfd, 16);
    e[i].ip_len = 16;
    e[i].port = 65535;
  }
  memset(&dg, 0, sizeof dg);
  dg.type = LC_DG_PEERS;
  dg.u.peers.timestamp_us = UINT64_MAX;
  dg.u.peers.nentries = LC_PEERS_MAX;
  dg.u.peers.entries = e;
  n = disc_sign_encode(&id, &dg, buf, sizeof buf);
  assert_true(n > 0 && n <= 1472);
  assert_int_equal(lc__disc_decode(&got, buf, (size_t)n, ge), 0);
  assert_int_equal(got.u.peers.nentries, LC_PEERS_MAX);
  assert_memory_equal(ge, e, sizeof e);
  /* too small a buffer is LC_ETOOBIG, never an overflow */
  for (size_t cap = 0; cap < (size_t)n; cap += 7)
    assert_true(disc_sign_encode(&id, &dg, buf, cap) == LC_ETOOBIG);
}

static void test_disc_encode_refuses(void **state) {
  (void)state;
  lc__identity id;
  kat_identity(&id);
  uint8_t buf[1500];
  lc__disc_datagram dg;
  char long_nick[LC_NICK_MAX_BYTES + 1];
  memset(long_nick, 'x', sizeof long_nick);
  for (int k = 0; k < 8; k++) {
    kat_announce_struct(&id, &dg);
    lc__announce *a = &dg.u.announce;
    switch (k) {
    case 0:
      a->flags = 8;
      break;
    case 1:
      a->port = 0;
      break;
    case 2:
      a->presence = 4;
      break;
    case 3:
      a->interval_ms = 999;
      break;
    case 4:
      a->interval_ms = 3600001;
      break;
    case 5:
      a->nick = long_nick;
      a->nick_len = sizeof long_nick;
      break;
    case 6:
      a->nick = "\xc3\x28";
      a->nick_len = 2;
      break;
    case 7:
      a->status = "a\0b";
      a->status_len = 3;
      break;
    }
    assert_int_equal(lc__disc_encode_body(&dg, buf, sizeof buf), LC_EINVAL);
  }
  lc__peer_entry e[LC_PEERS_MAX + 1];
  memset(e, 0, sizeof e);
  for (size_t i = 0; i <= LC_PEERS_MAX; i++) {
    e[i].ip_len = 4;
    e[i].port = 1;
  }
  memset(&dg, 0, sizeof dg);
  dg.type = LC_DG_PEERS;
  dg.u.peers.entries = e;
  dg.u.peers.nentries = LC_PEERS_MAX + 1;
  assert_int_equal(lc__disc_encode_body(&dg, buf, sizeof buf), LC_EINVAL);
  dg.u.peers.nentries = 1;
  e[0].ip_len = 5;
  assert_int_equal(lc__disc_encode_body(&dg, buf, sizeof buf), LC_EINVAL);
  e[0].ip_len = 4;
  e[0].port = 0;
  assert_int_equal(lc__disc_encode_body(&dg, buf, sizeof buf), LC_EINVAL);
  dg.type = LC_DG_DATA;
  assert_int_equal(lc__disc_encode_body(&dg, buf, sizeof buf), LC_EINVAL);
  lc__chat c = {.kind = 11, .text = "x", .text_len = 1};
  assert_int_equal(lc__chat_encode(&c, buf, sizeof buf), LC_EINVAL);
  c.kind = LC_CHAT_TEXT;
  c.text = "\xed\xa0\x80"; /* a surrogate */
  c.text_len = 3;
  assert_int_equal(lc__chat_encode(&c, buf, sizeof buf), LC_EINVAL);
}

/* Announce fields, as hex, for the refusal table. */
#define A_HEAD "9c 01 01"
#define A_KEY "c4 20" Z32
#define A_SIG "c4 40" Z32 Z32
#define A_MID "00 cd 1e 65 cd 13 88 01 01" /* ts port interval pres caps */
#define A_OK A_HEAD "00" A_KEY A_MID "a3 61 6e 61 a0" A_SIG
#define P_HEAD "96 01 05" A_KEY "00"
#define P_ENTRY "93 c4 20" Z32 "c4 04 0a 00 00 01 01"

static const bad_case bad_disc[] = {
    {"valid announce", A_OK, 0},
    {"announce 11 fields", "9b 01 01 00" A_KEY A_MID "a3 61 6e 61" A_SIG,
     LC_EPROTO},
    {"announce 13 fields", "9d 01 01 00" A_KEY A_MID "a0 a0 a0" A_SIG,
     LC_EPROTO},
    {"unknown flag", A_HEAD "08" A_KEY A_MID "a0 a0" A_SIG, LC_ERANGE},
    {"flags as bool", A_HEAD "c3" A_KEY A_MID "a0 a0" A_SIG, LC_EFIELD},
    {"key 31 bytes",
     A_HEAD "00 c4 1f" Z16 "00 00 00 00 00 00 00 00 00 00 00 00"
            "00 00 00" A_MID "a0 a0" A_SIG,
     LC_ERANGE},
    {"port 0", A_HEAD "00" A_KEY "00 00 cd 13 88 01 01 a0 a0" A_SIG, LC_ERANGE},
    {"port 65536",
     A_HEAD "00" A_KEY "00 ce 00 01 00 00 cd 13 88 01 01 a0 a0" A_SIG,
     LC_ERANGE},
    {"interval 999", A_HEAD "00" A_KEY "00 01 cd 03 e7 01 01 a0 a0" A_SIG,
     LC_ERANGE},
    {"interval 3600001",
     A_HEAD "00" A_KEY "00 01 ce 00 36 ee 81 01 01 a0 a0" A_SIG, LC_ERANGE},
    {"presence 4", A_HEAD "00" A_KEY "00 01 cd 13 88 04 01 a0 a0" A_SIG,
     LC_ERANGE},
    {"negative caps", A_HEAD "00" A_KEY "00 01 cd 13 88 01 ff a0 a0" A_SIG,
     LC_ERANGE},
    {"nick as bin", A_HEAD "00" A_KEY A_MID "c4 01 61 a0" A_SIG, LC_EFIELD},
    {"nick overlong utf-8", A_HEAD "00" A_KEY A_MID "a2 c0 80 a0" A_SIG,
     LC_EFIELD},
    {"nick with NUL", A_HEAD "00" A_KEY A_MID "a1 00 a0" A_SIG, LC_EFIELD},
    {"nick surrogate", A_HEAD "00" A_KEY A_MID "a3 ed a0 80 a0" A_SIG,
     LC_EFIELD},
    {"nick above U+10FFFF", A_HEAD "00" A_KEY A_MID "a4 f4 90 80 80 a0" A_SIG,
     LC_EFIELD},
    {"nick cut sequence", A_HEAD "00" A_KEY A_MID "a2 61 e2 a0" A_SIG,
     LC_EFIELD},
    {"nick 65 bytes", A_HEAD "00" A_KEY A_MID "d9 41" Z32 Z32 "00 a0" A_SIG,
     LC_ERANGE},
    {"status 129 bytes",
     A_HEAD "00" A_KEY A_MID "a0 d9 81" Z32 Z32 Z32 Z32 "00" A_SIG, LC_ERANGE},
    {"nick str16 past the end", A_HEAD "00" A_KEY A_MID "da ff ff 61",
     LC_ETRUNC},
    {"signature 63 bytes",
     A_HEAD "00" A_KEY A_MID "a0 a0 c4 3f" Z32 Z16
            "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
     LC_ERANGE},
    {"no signature", A_HEAD "00" A_KEY A_MID "a0 a0", LC_ETRUNC},
    {"trailing byte", A_OK "00", LC_ETRAILING},
    {"type HELLO", "96 01 02 00", LC_ETYPE},
    {"type 6", "92 01 06", LC_ETYPE},
    {"version 2", "9c 02 01", LC_EVERSION},
    {"valid peers", P_HEAD "91" P_ENTRY A_SIG, 0},
    {"peers 5 fields", "95 01 05" A_KEY "00 90", LC_EPROTO},
    {"peers entries not an array", P_HEAD "c0" A_SIG, LC_EFIELD},
    {"peers 25 entries", P_HEAD "dc 00 19", LC_ERANGE},
    {"entry of 2", P_HEAD "91 92 c4 20" Z32 "c4 04 0a 00 00 01" A_SIG,
     LC_EPROTO},
    {"entry ip 5 bytes",
     P_HEAD "91 93 c4 20" Z32 "c4 05 0a 00 00 01 02 01" A_SIG, LC_ERANGE},
    {"entry port 0", P_HEAD "91 93 c4 20" Z32 "c4 04 0a 00 00 01 00" A_SIG,
     LC_ERANGE},
    {"entry ip as str", P_HEAD "91 93 c4 20" Z32 "a4 0a 00 00 01 01" A_SIG,
     LC_EFIELD},
};

static void test_disc_malformed(void **state) {
  (void)state;
  uint8_t buf[BUF_MAX];
  lc__peer_entry entries[LC_PEERS_MAX];
  for (size_t i = 0; i < sizeof bad_disc / sizeof bad_disc[0]; i++) {
    size_t n = hex(bad_disc[i].hex, buf, sizeof buf);
    lc__disc_datagram dg;
    int rc = lc__disc_decode(&dg, buf, n, entries);
    if (rc != bad_disc[i].err)
      fail_msg("%s: got %s, want %s", bad_disc[i].name, lc_err_name(rc),
               lc_err_name(bad_disc[i].err));
    /* every cut of a valid datagram fails cleanly */
    if (bad_disc[i].err == 0)
      for (size_t k = 0; k < n; k++)
        assert_true(lc__disc_decode(&dg, buf, k, entries) < 0);
  }
  const char *bad_chat[] = {"92 01 00",
                            "93 02 00 a0",
                            "93 01 00 c4 00",
                            "93 01 00 a1 ff",
                            "93 01 ff a0",
                            "93 01 00 a0 00",
                            "90"};
  for (size_t i = 0; i < sizeof bad_chat / sizeof bad_chat[0]; i++) {
    size_t n = hex(bad_chat[i], buf, sizeof buf);
    lc__chat c;
    assert_true(lc__chat_decode(&c, buf, n) < 0);
  }
  size_t n = hex(KAT_CHAT, buf, sizeof buf);
  for (size_t k = 0; k < n; k++) {
    lc__chat c;
    assert_true(lc__chat_decode(&c, buf, k) < 0);
  }
}

static void test_utf8(void **state) {
  (void)state;
  static const struct {
    const char *s;
    size_t n;
    int ok;
  } cases[] = {
      {"", 0, 1},
      {"plain ascii", 11, 1},
      {"\xc3\xa9t\xc3\xa9", 5, 1}, /* été */
      {"\xe2\x82\xac", 3, 1},      /* € */
      {"\xf0\x9f\x98\x80", 4, 1},  /* U+1F600 */
      {"\xf4\x8f\xbf\xbf", 4, 1},  /* U+10FFFF */
      {"\xef\xbf\xbf", 3, 1},      /* U+FFFF */
      {"\x00", 1, 0},              /* NUL */
      {"\x80", 1, 0},              /* lone continuation */
      {"\xc0\xaf", 2, 0},          /* overlong '/' */
      {"\xc1\xbf", 2, 0},          /* overlong */
      {"\xe0\x80\xaf", 3, 0},      /* overlong, 3 bytes */
      {"\xe0\x9f\xbf", 3, 0},      /* overlong U+07FF */
      {"\xf0\x8f\xbf\xbf", 4, 0},  /* overlong U+FFFF */
      {"\xed\xa0\x80", 3, 0},      /* U+D800 */
      {"\xed\xbf\xbf", 3, 0},      /* U+DFFF */
      {"\xf4\x90\x80\x80", 4, 0},  /* U+110000 */
      {"\xf5\x80\x80\x80", 4, 0},  /* lead f5 */
      {"\xff", 1, 0},
      {"\xe2\x82", 2, 0},     /* cut */
      {"\xc3", 1, 0},         /* cut */
      {"\xe2\x28\xa1", 3, 0}, /* bad continuation */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    if (lc__utf8_valid(cases[i].s, cases[i].n) != cases[i].ok)
      fail_msg("utf-8 case %zu: want %d", i, cases[i].ok);
}

/* CONTACT [6, sent_ms, op, note]: known bytes, each op, and refusals. */
static void test_chat_contact(void **state) {
  (void)state;
  uint8_t buf[2048];
  lc__chat c, g;
  memset(&c, 0, sizeof c);
  c.kind = LC_CHAT_CONTACT;
  c.sent_ms = 7;
  c.op = LC_CONTACT_OP_REQUEST;
  c.text = "hi";
  c.text_len = 2;
  int len = lc__chat_encode(&c, buf, sizeof buf);
  uint8_t want[16];
  size_t wn = hex("94 06 07 01 a2 6869", want, sizeof want);
  assert_int_equal(len, (int)wn);
  assert_memory_equal(buf, want, wn);
  assert_int_equal(lc__chat_decode(&g, buf, (size_t)len), 0);
  assert_int_equal(g.kind, LC_CHAT_CONTACT);
  assert_int_equal(g.op, LC_CONTACT_OP_REQUEST);
  assert_int_equal(g.text_len, 2);
  assert_memory_equal(g.text, "hi", 2);
  for (int op = LC_CONTACT_OP_ACCEPT; op <= LC_CONTACT_OP_REMOVE; op++) {
    c.op = op;
    c.text = "";
    c.text_len = 0;
    len = lc__chat_encode(&c, buf, sizeof buf);
    assert_true(len > 0);
    assert_int_equal(lc__chat_decode(&g, buf, (size_t)len), 0);
    assert_int_equal(g.op, op);
  }
  /* refused when encoding: op 0 and 5, a note over the limit, bad UTF-8 */
  c.op = 0;
  assert_int_equal(lc__chat_encode(&c, buf, sizeof buf), LC_EINVAL);
  c.op = 5;
  assert_int_equal(lc__chat_encode(&c, buf, sizeof buf), LC_EINVAL);
  c.op = LC_CONTACT_OP_REQUEST;
  char note[LC_CHAT_NOTE_MAX + 1];
  memset(note, 'n', sizeof note);
  c.text = note;
  c.text_len = sizeof note;
  assert_int_equal(lc__chat_encode(&c, buf, sizeof buf), LC_EINVAL);
  c.text_len = LC_CHAT_NOTE_MAX;
  assert_true(lc__chat_encode(&c, buf, sizeof buf) > 0);
  c.text = "\xff";
  c.text_len = 1;
  assert_int_equal(lc__chat_encode(&c, buf, sizeof buf), LC_EINVAL);
  /* refused when decoding: op 0, op 5, three fields, a note that is not a
   * string, invalid UTF-8, a note over the limit */
  size_t n = hex("94 06 07 00 a0", buf, sizeof buf);
  assert_int_equal(lc__chat_decode(&g, buf, n), LC_ERANGE);
  n = hex("94 06 07 05 a0", buf, sizeof buf);
  assert_int_equal(lc__chat_decode(&g, buf, n), LC_ERANGE);
  n = hex("93 06 07 01", buf, sizeof buf);
  assert_int_equal(lc__chat_decode(&g, buf, n), LC_EPROTO);
  n = hex("94 06 07 01 01", buf, sizeof buf);
  assert_int_equal(lc__chat_decode(&g, buf, n), LC_EFIELD);
  n = hex("94 06 07 01 a1 ff", buf, sizeof buf);
  assert_int_equal(lc__chat_decode(&g, buf, n), LC_EFIELD);
  n = hex("94 06 07 01 da 0401", buf, sizeof buf);
  memset(buf + n, 'x', 0x401);
  assert_int_equal(lc__chat_decode(&g, buf, n + 0x401), LC_ERANGE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kat_hello),
      cmocka_unit_test(test_kat_welcome),
      cmocka_unit_test(test_kat_data),
      cmocka_unit_test(test_kat_payload),
      cmocka_unit_test(test_roundtrip_handshake),
      cmocka_unit_test(test_roundtrip_data),
      cmocka_unit_test(test_datagram_max),
      cmocka_unit_test(test_encode_refuses_invalid),
      cmocka_unit_test(test_roundtrip_frames),
      cmocka_unit_test(test_roundtrip_ack_ranges),
      cmocka_unit_test(test_roundtrip_many_frames),
      cmocka_unit_test(test_payload_budget),
      cmocka_unit_test(test_frame_max_data),
      cmocka_unit_test(test_malformed_datagrams),
      cmocka_unit_test(test_malformed_payloads),
      cmocka_unit_test(test_non_minimal_accepted),
      cmocka_unit_test(test_truncation_and_trailing),
      cmocka_unit_test(test_random_mutations),
      cmocka_unit_test(test_kat_announce),
      cmocka_unit_test(test_kat_peers_and_chat),
      cmocka_unit_test(test_chat_read),
      cmocka_unit_test(test_chat_contact),
      cmocka_unit_test(test_disc_max_sizes),
      cmocka_unit_test(test_disc_encode_refuses),
      cmocka_unit_test(test_disc_malformed),
      cmocka_unit_test(test_utf8),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
