/* wire.c: encodes and decodes datagrams and packet payloads (docs/PROTOCOL.md).
 * The only file that includes msgpack.h.  Pure functions over caller buffers:
 * no I/O, no allocation.
 *
 * Encoding goes through msgpack-c's packer writing into a fixed buffer whose
 * size was checked first, so it always picks the smallest representation.
 * Decoding does not use msgpack-c's unpacker: it allocates an object array
 * sized by the declared element count before a single element has arrived
 * (a 5-byte datagram "dd 10 00 00 00" makes it ask malloc for 8 GiB).  A small
 * strict reader here accepts only the msgpack types the protocol uses and
 * never allocates at all. */
#include <assert.h>
#include <string.h>

#include <msgpack.h>

#include "wire.h"

/* ---- sizes ------------------------------------------------------------- */

/* Encoded size of an unsigned integer, as msgpack-c packs it. */
static size_t wire_uint_size(uint64_t v) {
  if (v < 128)
    return 1;
  if (v <= UINT8_MAX)
    return 2;
  if (v <= UINT16_MAX)
    return 3;
  if (v <= UINT32_MAX)
    return 5;
  return 9;
}

/* Encoded size of a signed integer, as msgpack_pack_int64 packs it
 * (non-negative values use the unsigned formats). */
static size_t wire_int_size(int64_t v) {
  if (v >= 0)
    return wire_uint_size((uint64_t)v);
  if (v >= -32)
    return 1;
  if (v >= INT8_MIN)
    return 2;
  if (v >= INT16_MIN)
    return 3;
  if (v >= INT32_MIN)
    return 5;
  return 9;
}

static size_t wire_bin_header_size(size_t n) {
  if (n <= UINT8_MAX)
    return 2;
  if (n <= UINT16_MAX)
    return 3;
  return 5;
}

static size_t wire_array_header_size(size_t n) {
  if (n < 16)
    return 1;
  if (n <= UINT16_MAX)
    return 3;
  return 5;
}

/* ---- encoding ---------------------------------------------------------- */

/* A fixed buffer for msgpack_packer.  The callers size everything before
 * packing, so `overflow` only ever guards against a sizing bug. */
typedef struct {
  uint8_t *buf;
  size_t cap;
  size_t len;
  int overflow;
} wire_out;

static int wire_out_write(void *data, const char *p, size_t n) {
  wire_out *o = data;
  if (n > o->cap - o->len) {
    o->overflow = 1;
    return -1;
  }
  if (n > 0)
    memcpy(o->buf + o->len, p, n);
  o->len += n;
  return 0;
}

static void wire_pack_bin(msgpack_packer *pk, const uint8_t *p, size_t n) {
  msgpack_pack_bin(pk, n);
  if (n > 0)
    msgpack_pack_bin_body(pk, p, n);
}

/* Size of a datagram's encoding, or 0 if dg is not one we can encode. */
static size_t wire_datagram_size(const lc__datagram *dg) {
  switch (dg->type) {
  case LC_DG_HELLO:
    return 1 + 1 + 1 + wire_uint_size(dg->u.hello.sender_index) +
           wire_bin_header_size(LC_KEY_BYTES) + LC_KEY_BYTES +
           wire_bin_header_size(LC_HELLO_STATIC_BYTES) + LC_HELLO_STATIC_BYTES +
           wire_bin_header_size(LC_HELLO_PAYLOAD_BYTES) +
           LC_HELLO_PAYLOAD_BYTES;
  case LC_DG_WELCOME:
    return 1 + 1 + 1 + wire_uint_size(dg->u.welcome.sender_index) +
           wire_uint_size(dg->u.welcome.receiver_index) +
           wire_bin_header_size(LC_KEY_BYTES) + LC_KEY_BYTES +
           wire_bin_header_size(LC_WELCOME_PAYLOAD_BYTES) +
           LC_WELCOME_PAYLOAD_BYTES;
  case LC_DG_DATA:
    return lc__wire_data_overhead(dg->u.data.receiver_index,
                                  dg->u.data.packet_number,
                                  dg->u.data.ciphertext_len) +
           dg->u.data.ciphertext_len;
  default:
    return 0;
  }
}

size_t lc__wire_data_overhead(uint32_t receiver_index, uint64_t pn,
                              size_t ciphertext_len) {
  /* fixarray(5), version, type, receiver_index, pn, bin header */
  return 1 + 1 + 1 + wire_uint_size(receiver_index) + wire_uint_size(pn) +
         wire_bin_header_size(ciphertext_len);
}

int lc__wire_encode(const lc__datagram *dg, uint8_t *out, size_t cap) {
  assert(dg != NULL);
  if (dg->type == LC_DG_DATA) {
    /* never produce what a decoder must reject */
    if (dg->u.data.ciphertext_len < LC_TAG_BYTES ||
        dg->u.data.ciphertext == NULL)
      return LC_EINVAL;
    if (dg->u.data.ciphertext_len > LC_DATAGRAM_MAX)
      return LC_ETOOBIG;
  }
  size_t need = wire_datagram_size(dg);
  if (need == 0)
    return LC_EINVAL;
  if (need > LC_DATAGRAM_MAX || need > cap)
    return LC_ETOOBIG;

  wire_out o = {out, cap, 0, 0};
  msgpack_packer pk;
  msgpack_packer_init(&pk, &o, wire_out_write);
  switch (dg->type) {
  case LC_DG_HELLO:
    msgpack_pack_array(&pk, 6);
    msgpack_pack_uint64(&pk, LC_PROTOCOL_VERSION);
    msgpack_pack_uint64(&pk, LC_DG_HELLO);
    msgpack_pack_uint64(&pk, dg->u.hello.sender_index);
    wire_pack_bin(&pk, dg->u.hello.ephemeral, LC_KEY_BYTES);
    wire_pack_bin(&pk, dg->u.hello.sealed_static, LC_HELLO_STATIC_BYTES);
    wire_pack_bin(&pk, dg->u.hello.sealed_payload, LC_HELLO_PAYLOAD_BYTES);
    break;
  case LC_DG_WELCOME:
    msgpack_pack_array(&pk, 6);
    msgpack_pack_uint64(&pk, LC_PROTOCOL_VERSION);
    msgpack_pack_uint64(&pk, LC_DG_WELCOME);
    msgpack_pack_uint64(&pk, dg->u.welcome.sender_index);
    msgpack_pack_uint64(&pk, dg->u.welcome.receiver_index);
    wire_pack_bin(&pk, dg->u.welcome.ephemeral, LC_KEY_BYTES);
    wire_pack_bin(&pk, dg->u.welcome.sealed_payload, LC_WELCOME_PAYLOAD_BYTES);
    break;
  case LC_DG_DATA:
    msgpack_pack_array(&pk, 5);
    msgpack_pack_uint64(&pk, LC_PROTOCOL_VERSION);
    msgpack_pack_uint64(&pk, LC_DG_DATA);
    msgpack_pack_uint64(&pk, dg->u.data.receiver_index);
    msgpack_pack_uint64(&pk, dg->u.data.packet_number);
    wire_pack_bin(&pk, dg->u.data.ciphertext, dg->u.data.ciphertext_len);
    break;
  default:
    return LC_EINVAL;
  }
  assert(!o.overflow && o.len == need);
  if (o.overflow)
    return LC_ETOOBIG;
  return (int)o.len;
}

/* ---- frames ------------------------------------------------------------ */

/* Size of a MSG, BULK or UNREL frame without its data bytes and without the
 * data's bin header. */
static size_t wire_frame_fixed_size(const lc__frame *f) {
  switch (f->type) {
  case LC_FR_MSG:
    return 1 + 1 + wire_uint_size(f->u.msg.seq) +
           wire_bin_header_size(LC_MSG_ID_BYTES) + LC_MSG_ID_BYTES +
           wire_uint_size(f->u.msg.total_len) + wire_uint_size(f->u.msg.offset);
  case LC_FR_BULK:
    return 1 + 1 + wire_uint_size(f->u.bulk.stream_id) +
           wire_uint_size(f->u.bulk.offset) + 1;
  case LC_FR_UNREL:
    return 1 + 1;
  default:
    return 0;
  }
}

size_t lc__frame_size(const lc__frame *f) {
  assert(f != NULL);
  switch (f->type) {
  case LC_FR_PING:
    return 2; /* fixarray(1), 0 */
  case LC_FR_ACK: {
    size_t n = 1 + 1 + wire_uint_size(f->u.ack.largest) +
               wire_uint_size(f->u.ack.ack_delay_us) +
               wire_uint_size(f->u.ack.first_range) +
               wire_array_header_size(2 * f->u.ack.nranges);
    for (size_t i = 0; f->u.ack.ranges && i < f->u.ack.nranges; i++)
      n += wire_uint_size(f->u.ack.ranges[i].gap) +
           wire_uint_size(f->u.ack.ranges[i].len);
    return n;
  }
  case LC_FR_MSG:
    return wire_frame_fixed_size(f) + wire_bin_header_size(f->u.msg.len) +
           f->u.msg.len;
  case LC_FR_BULK:
    return wire_frame_fixed_size(f) + wire_bin_header_size(f->u.bulk.len) +
           f->u.bulk.len;
  case LC_FR_UNREL:
    return wire_frame_fixed_size(f) + wire_bin_header_size(f->u.unrel.len) +
           f->u.unrel.len;
  case LC_FR_MSG_CREDIT:
    return 1 + 1 + wire_uint_size(f->u.msg_credit.max_seq);
  case LC_FR_DELIVERED:
    return 1 + 1 + wire_uint_size(f->u.delivered.seq);
  case LC_FR_BULK_CREDIT:
    return 1 + 1 + wire_uint_size(f->u.bulk_credit.stream_id) +
           wire_uint_size(f->u.bulk_credit.max_offset);
  case LC_FR_CLOSE:
    return 1 + 1 + wire_int_size(f->u.close.code);
  default:
    return 0;
  }
}

size_t lc__frame_max_data(const lc__frame *f, size_t room) {
  assert(f != NULL);
  if (f->type != LC_FR_MSG && f->type != LC_FR_BULK && f->type != LC_FR_UNREL)
    return 0;
  size_t fixed = wire_frame_fixed_size(f);
  /* Try each bin header size from the largest down; the first whose data
   * range holds the leftover room gives the answer (leftover shrinks as the
   * header grows, so the largest header that fits wins). */
  static const struct {
    size_t hdr, min, max;
  } steps[] = {
      {5, (size_t)UINT16_MAX + 1, UINT32_MAX},
      {3, (size_t)UINT8_MAX + 1, UINT16_MAX},
      {2, 0, UINT8_MAX},
  };
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    if (room < fixed + steps[i].hdr)
      continue;
    size_t left = room - fixed - steps[i].hdr;
    if (left < steps[i].min)
      continue;
    return left > steps[i].max ? steps[i].max : left;
  }
  /* room < fixed + 2: not even empty data fits */
  return 0;
}

/* Returns 0 if the decoder would accept f, LC_EINVAL otherwise. */
static int wire_frame_check(const lc__frame *f) {
  switch (f->type) {
  case LC_FR_PING:
  case LC_FR_MSG_CREDIT:
  case LC_FR_BULK_CREDIT:
  case LC_FR_CLOSE:
  case LC_FR_DELIVERED:
    return 0;
  case LC_FR_ACK: {
    if (f->u.ack.nranges > LC_ACK_RANGES_MAX ||
        f->u.ack.first_range > f->u.ack.largest)
      return LC_EINVAL;
    if (f->u.ack.nranges > 0 && f->u.ack.ranges == NULL)
      return LC_EINVAL;
    uint64_t smallest = f->u.ack.largest - f->u.ack.first_range;
    for (size_t i = 0; i < f->u.ack.nranges; i++) {
      const lc__ack_range *r = &f->u.ack.ranges[i];
      if (smallest < 2 || r->gap > smallest - 2)
        return LC_EINVAL;
      uint64_t top = smallest - r->gap - 2;
      if (r->len > top)
        return LC_EINVAL;
      smallest = top - r->len;
    }
    return 0;
  }
  case LC_FR_MSG:
    if (f->u.msg.len > UINT32_MAX ||
        (f->u.msg.len > 0 && f->u.msg.data == NULL))
      return LC_EINVAL;
    if ((uint64_t)f->u.msg.offset + f->u.msg.len > f->u.msg.total_len)
      return LC_EINVAL;
    return 0;
  case LC_FR_BULK:
    if (f->u.bulk.len > UINT32_MAX ||
        (f->u.bulk.len > 0 && f->u.bulk.data == NULL))
      return LC_EINVAL;
    if (f->u.bulk.len > UINT64_MAX - f->u.bulk.offset)
      return LC_EINVAL;
    return 0;
  case LC_FR_UNREL:
    if (f->u.unrel.len > UINT32_MAX ||
        (f->u.unrel.len > 0 && f->u.unrel.data == NULL))
      return LC_EINVAL;
    return 0;
  default:
    return LC_EINVAL;
  }
}

void lc__payload_init(lc__payload_writer *w, uint8_t *buf, size_t cap) {
  assert(w != NULL && buf != NULL);
  w->buf = buf;
  w->cap = cap;
  /* room for an array16 header; lc__payload_finish shrinks it when it can */
  w->len = 3;
  w->nframes = 0;
}

int lc__payload_add(lc__payload_writer *w, const lc__frame *f) {
  assert(w != NULL && f != NULL);
  int rc = wire_frame_check(f);
  if (rc < 0)
    return rc;
  size_t need = lc__frame_size(f);
  if (w->nframes >= LC_FRAMES_MAX || w->len > w->cap || need > w->cap - w->len)
    return LC_ETOOBIG;

  wire_out o = {w->buf + w->len, w->cap - w->len, 0, 0};
  msgpack_packer pk;
  msgpack_packer_init(&pk, &o, wire_out_write);
  switch (f->type) {
  case LC_FR_PING:
    msgpack_pack_array(&pk, 1);
    msgpack_pack_uint64(&pk, LC_FR_PING);
    break;
  case LC_FR_ACK:
    msgpack_pack_array(&pk, 5);
    msgpack_pack_uint64(&pk, LC_FR_ACK);
    msgpack_pack_uint64(&pk, f->u.ack.largest);
    msgpack_pack_uint64(&pk, f->u.ack.ack_delay_us);
    msgpack_pack_uint64(&pk, f->u.ack.first_range);
    msgpack_pack_array(&pk, 2 * f->u.ack.nranges);
    for (size_t i = 0; i < f->u.ack.nranges; i++) {
      msgpack_pack_uint64(&pk, f->u.ack.ranges[i].gap);
      msgpack_pack_uint64(&pk, f->u.ack.ranges[i].len);
    }
    break;
  case LC_FR_MSG:
    msgpack_pack_array(&pk, 6);
    msgpack_pack_uint64(&pk, LC_FR_MSG);
    msgpack_pack_uint64(&pk, f->u.msg.seq);
    wire_pack_bin(&pk, f->u.msg.msg_id, LC_MSG_ID_BYTES);
    msgpack_pack_uint64(&pk, f->u.msg.total_len);
    msgpack_pack_uint64(&pk, f->u.msg.offset);
    wire_pack_bin(&pk, f->u.msg.data, f->u.msg.len);
    break;
  case LC_FR_BULK:
    msgpack_pack_array(&pk, 5);
    msgpack_pack_uint64(&pk, LC_FR_BULK);
    msgpack_pack_uint64(&pk, f->u.bulk.stream_id);
    msgpack_pack_uint64(&pk, f->u.bulk.offset);
    if (f->u.bulk.fin)
      msgpack_pack_true(&pk);
    else
      msgpack_pack_false(&pk);
    wire_pack_bin(&pk, f->u.bulk.data, f->u.bulk.len);
    break;
  case LC_FR_UNREL:
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint64(&pk, LC_FR_UNREL);
    wire_pack_bin(&pk, f->u.unrel.data, f->u.unrel.len);
    break;
  case LC_FR_MSG_CREDIT:
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint64(&pk, LC_FR_MSG_CREDIT);
    msgpack_pack_uint64(&pk, f->u.msg_credit.max_seq);
    break;
  case LC_FR_DELIVERED:
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint64(&pk, LC_FR_DELIVERED);
    msgpack_pack_uint64(&pk, f->u.delivered.seq);
    break;
  case LC_FR_BULK_CREDIT:
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint64(&pk, LC_FR_BULK_CREDIT);
    msgpack_pack_uint64(&pk, f->u.bulk_credit.stream_id);
    msgpack_pack_uint64(&pk, f->u.bulk_credit.max_offset);
    break;
  case LC_FR_CLOSE:
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint64(&pk, LC_FR_CLOSE);
    msgpack_pack_int64(&pk, f->u.close.code);
    break;
  default:
    return LC_EINVAL; /* unreachable: wire_frame_check */
  }
  assert(!o.overflow && o.len == need);
  if (o.overflow)
    return LC_ETOOBIG;
  w->len += o.len;
  w->nframes++;
  return 0;
}

size_t lc__payload_finish(lc__payload_writer *w) {
  assert(w != NULL && w->len >= 3 && w->nframes <= LC_FRAMES_MAX);
  if (w->nframes < 16) {
    w->buf[2] = (uint8_t)(0x90 | w->nframes);
    memmove(w->buf, w->buf + 2, w->len - 2);
    w->len -= 2;
  } else {
    w->buf[0] = 0xdc;
    w->buf[1] = (uint8_t)(w->nframes >> 8);
    w->buf[2] = (uint8_t)(w->nframes & 0xff);
  }
  return w->len;
}

/* ---- decoding ---------------------------------------------------------- */

/* A cursor over hostile input.  Every read checks the remaining length
 * before touching a byte. */
typedef struct {
  const uint8_t *p;
  size_t len;
  size_t pos;
} wire_in;

static uint64_t wire_be(const uint8_t *p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++)
    v = (v << 8) | p[i];
  return v;
}

/* Takes n bytes, or LC_ETRUNC. */
static int wire_take(wire_in *in, size_t n, const uint8_t **out) {
  if (n > in->len - in->pos)
    return LC_ETRUNC;
  *out = in->p + in->pos;
  in->pos += n;
  return 0;
}

/* Reads an array header.  `wrong` is returned when the next value is not an
 * array (LC_EPROTO for structure, LC_EFIELD for a field). */
static int wire_read_array(wire_in *in, uint32_t *n, int wrong) {
  const uint8_t *b;
  int rc = wire_take(in, 1, &b);
  if (rc < 0)
    return rc;
  size_t w;
  if ((b[0] & 0xf0) == 0x90) {
    *n = b[0] & 0x0f;
    return 0;
  } else if (b[0] == 0xdc) {
    w = 2;
  } else if (b[0] == 0xdd) {
    w = 4;
  } else {
    return wrong;
  }
  const uint8_t *q;
  if ((rc = wire_take(in, w, &q)) < 0)
    return rc;
  *n = (uint32_t)wire_be(q, w);
  return 0;
}

/* Reads any msgpack integer.  Sets *neg and stores a negative value in *s,
 * a non-negative one in *u.  LC_EFIELD if the value is not an integer. */
static int wire_read_integer(wire_in *in, int *neg, uint64_t *u, int64_t *s) {
  const uint8_t *b;
  int rc = wire_take(in, 1, &b);
  if (rc < 0)
    return rc;
  uint8_t t = b[0];
  *neg = 0;
  if (t <= 0x7f) {
    *u = t;
    return 0;
  }
  if (t >= 0xe0) {
    *neg = 1;
    /* a negative fixint: the byte is the value's two's complement */
    *s = (int8_t)t; /* NOLINT(bugprone-signed-char-misuse,cert-str34-c) */
    return 0;
  }
  size_t w;
  int is_signed;
  switch (t) {
  case 0xcc:
  case 0xcd:
  case 0xce:
  case 0xcf:
    w = (size_t)1 << (t - 0xcc);
    is_signed = 0;
    break;
  case 0xd0:
  case 0xd1:
  case 0xd2:
  case 0xd3:
    w = (size_t)1 << (t - 0xd0);
    is_signed = 1;
    break;
  default:
    return LC_EFIELD;
  }
  const uint8_t *q;
  if ((rc = wire_take(in, w, &q)) < 0)
    return rc;
  uint64_t v = wire_be(q, w);
  if (!is_signed) {
    *u = v;
    return 0;
  }
  /* sign-extend from w bytes */
  int64_t sv;
  switch (w) {
  case 1:
    sv = (int8_t)v; /* NOLINT(bugprone-signed-char-misuse,cert-str34-c) */
    break;
  case 2:
    sv = (int16_t)v;
    break;
  case 4:
    sv = (int32_t)v;
    break;
  default:
    sv = (int64_t)v;
    break;
  }
  if (sv < 0) {
    *neg = 1;
    *s = sv;
  } else {
    *u = (uint64_t)sv;
  }
  return 0;
}

/* An unsigned field no larger than max: LC_EFIELD if not an integer,
 * LC_ERANGE if negative or above max. */
static int wire_read_uint(wire_in *in, uint64_t max, uint64_t *v) {
  int neg;
  uint64_t u = 0;
  int64_t s = 0;
  int rc = wire_read_integer(in, &neg, &u, &s);
  if (rc < 0)
    return rc;
  if (neg || u > max)
    return LC_ERANGE;
  *v = u;
  return 0;
}

static int wire_read_u64(wire_in *in, uint64_t *v) {
  return wire_read_uint(in, UINT64_MAX, v);
}

static int wire_read_u32(wire_in *in, uint32_t *v) {
  uint64_t u;
  int rc = wire_read_uint(in, UINT32_MAX, &u);
  if (rc == 0)
    *v = (uint32_t)u;
  return rc;
}

static int wire_read_i64(wire_in *in, int64_t *v) {
  int neg;
  uint64_t u = 0;
  int64_t s = 0;
  int rc = wire_read_integer(in, &neg, &u, &s);
  if (rc < 0)
    return rc;
  if (neg) {
    *v = s;
  } else {
    if (u > INT64_MAX)
      return LC_ERANGE;
    *v = (int64_t)u;
  }
  return 0;
}

static int wire_read_bool(wire_in *in, int *v) {
  const uint8_t *b;
  int rc = wire_take(in, 1, &b);
  if (rc < 0)
    return rc;
  if (b[0] == 0xc2)
    *v = 0;
  else if (b[0] == 0xc3)
    *v = 1;
  else
    return LC_EFIELD;
  return 0;
}

/* A byte string (bin8/16/32 only).  *p points into the input. */
static int wire_read_bin(wire_in *in, const uint8_t **p, size_t *n) {
  const uint8_t *b;
  int rc = wire_take(in, 1, &b);
  if (rc < 0)
    return rc;
  size_t w;
  switch (b[0]) {
  case 0xc4:
    w = 1;
    break;
  case 0xc5:
    w = 2;
    break;
  case 0xc6:
    w = 4;
    break;
  default:
    return LC_EFIELD;
  }
  const uint8_t *q;
  if ((rc = wire_take(in, w, &q)) < 0)
    return rc;
  size_t len = (size_t)wire_be(q, w);
  if ((rc = wire_take(in, len, p)) < 0)
    return rc;
  *n = len;
  return 0;
}

/* A byte string of exactly n bytes, copied to out. */
static int wire_read_fixed(wire_in *in, uint8_t *out, size_t n) {
  const uint8_t *p;
  size_t len;
  int rc = wire_read_bin(in, &p, &len);
  if (rc < 0)
    return rc;
  if (len != n)
    return LC_ERANGE;
  memcpy(out, p, n);
  return 0;
}

#define WIRE_TRY(expr)                                                         \
  do {                                                                         \
    int wire_rc_ = (expr);                                                     \
    if (wire_rc_ < 0)                                                          \
      return wire_rc_;                                                         \
  } while (0)

int lc__wire_decode(lc__datagram *dg, const uint8_t *buf, size_t len) {
  assert(dg != NULL);
  if (len > LC_DATAGRAM_MAX)
    return LC_ETOOBIG;
  if (buf == NULL && len > 0)
    return LC_EINVAL;
  wire_in in = {buf, len, 0};
  uint32_t n;
  WIRE_TRY(wire_read_array(&in, &n, LC_EPROTO));
  if (n == 0)
    return LC_EPROTO;
  /* The version decides how the rest is read, so it is checked first. */
  int neg;
  uint64_t ver = 0;
  int64_t sver = 0;
  WIRE_TRY(wire_read_integer(&in, &neg, &ver, &sver));
  if (neg || ver != LC_PROTOCOL_VERSION)
    return LC_EVERSION;
  if (n < 2)
    return LC_EPROTO;
  uint64_t type = 0;
  int64_t stype = 0;
  WIRE_TRY(wire_read_integer(&in, &neg, &type, &stype));
  if (neg)
    return LC_ETYPE;
  memset(dg, 0, sizeof *dg);
  switch (type) {
  case LC_DG_HELLO: {
    lc__hello *h = &dg->u.hello;
    if (n != 6)
      return LC_EPROTO;
    WIRE_TRY(wire_read_u32(&in, &h->sender_index));
    WIRE_TRY(wire_read_fixed(&in, h->ephemeral, LC_KEY_BYTES));
    WIRE_TRY(wire_read_fixed(&in, h->sealed_static, LC_HELLO_STATIC_BYTES));
    WIRE_TRY(wire_read_fixed(&in, h->sealed_payload, LC_HELLO_PAYLOAD_BYTES));
    break;
  }
  case LC_DG_WELCOME: {
    lc__welcome *w = &dg->u.welcome;
    if (n != 6)
      return LC_EPROTO;
    WIRE_TRY(wire_read_u32(&in, &w->sender_index));
    WIRE_TRY(wire_read_u32(&in, &w->receiver_index));
    WIRE_TRY(wire_read_fixed(&in, w->ephemeral, LC_KEY_BYTES));
    WIRE_TRY(wire_read_fixed(&in, w->sealed_payload, LC_WELCOME_PAYLOAD_BYTES));
    break;
  }
  case LC_DG_DATA: {
    lc__data *d = &dg->u.data;
    if (n != 5)
      return LC_EPROTO;
    WIRE_TRY(wire_read_u32(&in, &d->receiver_index));
    WIRE_TRY(wire_read_u64(&in, &d->packet_number));
    WIRE_TRY(wire_read_bin(&in, &d->ciphertext, &d->ciphertext_len));
    if (d->ciphertext_len < LC_TAG_BYTES)
      return LC_ERANGE;
    break;
  }
  default:
    /* ANNOUNCE and PEERS have their own codec (lc__disc_decode). */
    return LC_ETYPE;
  }
  if (in.pos != in.len)
    return LC_ETRAILING;
  dg->type = (int)type;
  return 0;
}

/* Reads the body of an ACK frame after its type; ranges go to `ranges`. */
static int wire_read_ack(wire_in *in, lc__frame *f, lc__ack_range *ranges) {
  WIRE_TRY(wire_read_u64(in, &f->u.ack.largest));
  WIRE_TRY(wire_read_u64(in, &f->u.ack.ack_delay_us));
  WIRE_TRY(wire_read_u64(in, &f->u.ack.first_range));
  if (f->u.ack.first_range > f->u.ack.largest)
    return LC_ERANGE;
  uint32_t m;
  WIRE_TRY(wire_read_array(in, &m, LC_EFIELD));
  if (m % 2 != 0)
    return LC_EPROTO;
  if (m / 2 > LC_ACK_RANGES_MAX)
    return LC_ERANGE;
  uint64_t smallest = f->u.ack.largest - f->u.ack.first_range;
  for (uint32_t i = 0; i < m / 2; i++) {
    lc__ack_range *r = &ranges[i];
    WIRE_TRY(wire_read_u64(in, &r->gap));
    WIRE_TRY(wire_read_u64(in, &r->len));
    /* RFC 9000 19.3.1: largest = previous smallest - gap - 2, smallest =
     * largest - len; neither may go below packet number 0. */
    if (smallest < 2 || r->gap > smallest - 2)
      return LC_ERANGE;
    uint64_t top = smallest - r->gap - 2;
    if (r->len > top)
      return LC_ERANGE;
    smallest = top - r->len;
  }
  f->u.ack.nranges = m / 2;
  f->u.ack.ranges = ranges;
  return 0;
}

/* Reads one frame.  *seen_ack tracks the one-ACK-per-payload rule. */
static int wire_read_frame(wire_in *in, lc__frame *f, lc__ack_range *ranges,
                           int *seen_ack) {
  uint32_t n;
  WIRE_TRY(wire_read_array(in, &n, LC_EPROTO));
  if (n < 1)
    return LC_EPROTO;
  int neg;
  uint64_t type = 0;
  int64_t stype = 0;
  WIRE_TRY(wire_read_integer(in, &neg, &type, &stype));
  if (neg)
    return LC_ETYPE;
  static const uint32_t arity[] = {
      [LC_FR_PING] = 1,        [LC_FR_ACK] = 5,   [LC_FR_MSG] = 6,
      [LC_FR_BULK] = 5,        [LC_FR_UNREL] = 2, [LC_FR_MSG_CREDIT] = 2,
      [LC_FR_BULK_CREDIT] = 3, [LC_FR_CLOSE] = 2, [LC_FR_DELIVERED] = 2,
  };
  if (type >= sizeof arity / sizeof arity[0])
    return LC_ETYPE;
  if (n != arity[type])
    return LC_EPROTO;
  memset(f, 0, sizeof *f);
  f->type = (int)type;
  switch (type) {
  case LC_FR_PING:
    break;
  case LC_FR_ACK:
    if (*seen_ack)
      return LC_EPROTO;
    *seen_ack = 1;
    WIRE_TRY(wire_read_ack(in, f, ranges));
    break;
  case LC_FR_MSG:
    WIRE_TRY(wire_read_u64(in, &f->u.msg.seq));
    WIRE_TRY(wire_read_fixed(in, f->u.msg.msg_id, LC_MSG_ID_BYTES));
    WIRE_TRY(wire_read_u32(in, &f->u.msg.total_len));
    WIRE_TRY(wire_read_u32(in, &f->u.msg.offset));
    WIRE_TRY(wire_read_bin(in, &f->u.msg.data, &f->u.msg.len));
    if ((uint64_t)f->u.msg.offset + f->u.msg.len > f->u.msg.total_len)
      return LC_ERANGE;
    break;
  case LC_FR_BULK:
    WIRE_TRY(wire_read_u32(in, &f->u.bulk.stream_id));
    WIRE_TRY(wire_read_u64(in, &f->u.bulk.offset));
    WIRE_TRY(wire_read_bool(in, &f->u.bulk.fin));
    WIRE_TRY(wire_read_bin(in, &f->u.bulk.data, &f->u.bulk.len));
    if (f->u.bulk.len > UINT64_MAX - f->u.bulk.offset)
      return LC_ERANGE;
    break;
  case LC_FR_UNREL:
    WIRE_TRY(wire_read_bin(in, &f->u.unrel.data, &f->u.unrel.len));
    break;
  case LC_FR_MSG_CREDIT:
    WIRE_TRY(wire_read_u64(in, &f->u.msg_credit.max_seq));
    break;
  case LC_FR_DELIVERED:
    WIRE_TRY(wire_read_u64(in, &f->u.delivered.seq));
    break;
  case LC_FR_BULK_CREDIT:
    WIRE_TRY(wire_read_u32(in, &f->u.bulk_credit.stream_id));
    WIRE_TRY(wire_read_u64(in, &f->u.bulk_credit.max_offset));
    break;
  case LC_FR_CLOSE:
    WIRE_TRY(wire_read_i64(in, &f->u.close.code));
    break;
  default:
    return LC_ETYPE;
  }
  return 0;
}

int lc__payload_decode(const uint8_t *buf, size_t len, lc__frame *frames,
                       size_t max_frames, size_t *nframes,
                       lc__ack_range *ranges) {
  assert(frames != NULL && nframes != NULL && ranges != NULL);
  *nframes = 0;
  if (len > LC_DATAGRAM_MAX)
    return LC_ETOOBIG;
  if (buf == NULL && len > 0)
    return LC_EINVAL;
  wire_in in = {buf, len, 0};
  uint32_t n;
  WIRE_TRY(wire_read_array(&in, &n, LC_EPROTO));
  if (n == 0 || n > LC_FRAMES_MAX || n > max_frames)
    return LC_EPROTO;
  int seen_ack = 0;
  for (uint32_t i = 0; i < n; i++)
    WIRE_TRY(wire_read_frame(&in, &frames[i], ranges, &seen_ack));
  if (in.pos != in.len)
    return LC_ETRAILING;
  *nframes = n;
  return 0;
}

/* ---- discovery datagrams and the chat envelope --------------------------- */

int lc__utf8_valid(const char *s, size_t len) {
  const uint8_t *p = (const uint8_t *)s;
  size_t i = 0;
  while (i < len) {
    uint8_t c = p[i];
    if (c == 0)
      return 0; /* handed out as C strings: no NUL inside */
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t n;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
      n = 1;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      cp = c & 0x07;
    } else {
      return 0; /* continuation byte, overlong lead (c0, c1) or > f4 */
    }
    if (n > len - i - 1)
      return 0;
    for (size_t k = 1; k <= n; k++) {
      if ((p[i + k] & 0xc0) != 0x80)
        return 0;
      cp = cp << 6 | (p[i + k] & 0x3f);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return 0;
    i += n + 1;
  }
  return 1;
}

static void wire_pack_str(msgpack_packer *pk, const char *s, size_t n) {
  msgpack_pack_str(pk, n);
  if (n > 0)
    msgpack_pack_str_body(pk, s, n);
}

static int wire_disc_check(const lc__disc_datagram *dg) {
  if (dg->type == LC_DG_ANNOUNCE) {
    const lc__announce *a = &dg->u.announce;
    if ((a->flags & ~(uint32_t)LC_ANN_FLAGS_ALL) || a->port == 0 ||
        a->presence > 3 || a->interval_ms < 1000 || a->interval_ms > 3600000 ||
        a->nick_len > LC_NICK_MAX_BYTES ||
        a->status_len > LC_STATUS_MAX_BYTES || (a->nick_len && !a->nick) ||
        (a->status_len && !a->status) ||
        !lc__utf8_valid(a->nick, a->nick_len) ||
        !lc__utf8_valid(a->status, a->status_len))
      return LC_EINVAL;
    return 0;
  }
  if (dg->type == LC_DG_PEERS) {
    const lc__peers *p = &dg->u.peers;
    if (p->nentries > LC_PEERS_MAX || (p->nentries && !p->entries))
      return LC_EINVAL;
    for (size_t i = 0; i < p->nentries; i++)
      if ((p->entries[i].ip_len != 4 && p->entries[i].ip_len != 16) ||
          p->entries[i].port == 0)
        return LC_EINVAL;
    return 0;
  }
  return LC_EINVAL;
}

int lc__disc_encode_body(const lc__disc_datagram *dg, uint8_t *out,
                         size_t cap) {
  assert(dg != NULL);
  int rc = wire_disc_check(dg);
  if (rc < 0)
    return rc;
  /* the signature field follows: its room is part of the budget */
  size_t sig_room = 2 + LC_SIGNATURE_BYTES;
  if (cap < sig_room)
    return LC_ETOOBIG;
  wire_out o = {out, cap - sig_room, 0, 0};
  msgpack_packer pk;
  msgpack_packer_init(&pk, &o, wire_out_write);
  if (dg->type == LC_DG_ANNOUNCE) {
    const lc__announce *a = &dg->u.announce;
    msgpack_pack_array(&pk, 12);
    msgpack_pack_uint64(&pk, LC_PROTOCOL_VERSION);
    msgpack_pack_uint64(&pk, LC_DG_ANNOUNCE);
    msgpack_pack_uint64(&pk, a->flags);
    wire_pack_bin(&pk, a->key, 32);
    msgpack_pack_uint64(&pk, a->timestamp_us);
    msgpack_pack_uint64(&pk, a->port);
    msgpack_pack_uint64(&pk, a->interval_ms);
    msgpack_pack_uint64(&pk, a->presence);
    msgpack_pack_uint64(&pk, a->caps);
    wire_pack_str(&pk, a->nick, a->nick_len);
    wire_pack_str(&pk, a->status, a->status_len);
  } else {
    const lc__peers *p = &dg->u.peers;
    msgpack_pack_array(&pk, 6);
    msgpack_pack_uint64(&pk, LC_PROTOCOL_VERSION);
    msgpack_pack_uint64(&pk, LC_DG_PEERS);
    wire_pack_bin(&pk, p->key, 32);
    msgpack_pack_uint64(&pk, p->timestamp_us);
    msgpack_pack_array(&pk, p->nentries);
    for (size_t i = 0; i < p->nentries; i++) {
      const lc__peer_entry *e = &p->entries[i];
      msgpack_pack_array(&pk, 3);
      wire_pack_bin(&pk, e->key, 32);
      wire_pack_bin(&pk, e->ip, e->ip_len);
      msgpack_pack_uint64(&pk, e->port);
    }
  }
  if (o.overflow || o.len + sig_room > LC_DATAGRAM_MAX)
    return LC_ETOOBIG;
  return (int)o.len;
}

int lc__disc_encode_sig(uint8_t *out, size_t cap, size_t body_len,
                        const uint8_t sig[LC_SIGNATURE_BYTES]) {
  if (body_len > cap || cap - body_len < 2 + LC_SIGNATURE_BYTES)
    return LC_ETOOBIG;
  wire_out o = {out, cap, body_len, 0};
  msgpack_packer pk;
  msgpack_packer_init(&pk, &o, wire_out_write);
  wire_pack_bin(&pk, sig, LC_SIGNATURE_BYTES);
  return o.overflow ? LC_ETOOBIG : (int)o.len;
}

/* A UTF-8 string (str formats only) of at most max bytes, into the input. */
static int wire_read_str(wire_in *in, size_t max, const char **s, size_t *n) {
  const uint8_t *b;
  int rc = wire_take(in, 1, &b);
  if (rc < 0)
    return rc;
  size_t len;
  if ((b[0] & 0xe0) == 0xa0) {
    len = b[0] & 0x1f;
  } else {
    size_t w;
    switch (b[0]) {
    case 0xd9:
      w = 1;
      break;
    case 0xda:
      w = 2;
      break;
    case 0xdb:
      w = 4;
      break;
    default:
      return LC_EFIELD;
    }
    const uint8_t *q;
    if ((rc = wire_take(in, w, &q)) < 0)
      return rc;
    len = (size_t)wire_be(q, w);
  }
  const uint8_t *p;
  if ((rc = wire_take(in, len, &p)) < 0)
    return rc;
  if (len > max)
    return LC_ERANGE;
  if (!lc__utf8_valid((const char *)p, len))
    return LC_EFIELD;
  *s = (const char *)p;
  *n = len;
  return 0;
}

/* [1, type, ...]: the array header, the version and the type. */
static int wire_read_head(wire_in *in, uint32_t *n, uint64_t *type) {
  WIRE_TRY(wire_read_array(in, n, LC_EPROTO));
  if (*n == 0)
    return LC_EPROTO;
  int neg;
  uint64_t ver = 0;
  int64_t s = 0;
  WIRE_TRY(wire_read_integer(in, &neg, &ver, &s));
  if (neg || ver != LC_PROTOCOL_VERSION)
    return LC_EVERSION;
  if (*n < 2)
    return LC_EPROTO;
  WIRE_TRY(wire_read_integer(in, &neg, type, &s));
  if (neg)
    return LC_ETYPE;
  return 0;
}

int lc__disc_decode(lc__disc_datagram *dg, const uint8_t *buf, size_t len,
                    lc__peer_entry *entries) {
  assert(dg != NULL);
  if (len > LC_DATAGRAM_MAX)
    return LC_ETOOBIG;
  if (buf == NULL && len > 0)
    return LC_EINVAL;
  wire_in in = {buf, len, 0};
  uint32_t n;
  uint64_t type = 0, v;
  WIRE_TRY(wire_read_head(&in, &n, &type));
  memset(dg, 0, sizeof *dg);
  if (type == LC_DG_ANNOUNCE) {
    lc__announce *a = &dg->u.announce;
    if (n != 12)
      return LC_EPROTO;
    WIRE_TRY(wire_read_uint(&in, LC_ANN_FLAGS_ALL, &v));
    a->flags = (uint32_t)v;
    WIRE_TRY(wire_read_fixed(&in, a->key, 32));
    WIRE_TRY(wire_read_u64(&in, &a->timestamp_us));
    WIRE_TRY(wire_read_uint(&in, UINT16_MAX, &v));
    if (v == 0)
      return LC_ERANGE;
    a->port = (uint16_t)v;
    WIRE_TRY(wire_read_uint(&in, 3600000, &v));
    if (v < 1000)
      return LC_ERANGE;
    a->interval_ms = (uint32_t)v;
    WIRE_TRY(wire_read_uint(&in, 3, &v));
    a->presence = (uint8_t)v;
    WIRE_TRY(wire_read_u64(&in, &a->caps));
    WIRE_TRY(wire_read_str(&in, LC_NICK_MAX_BYTES, &a->nick, &a->nick_len));
    WIRE_TRY(
        wire_read_str(&in, LC_STATUS_MAX_BYTES, &a->status, &a->status_len));
  } else if (type == LC_DG_PEERS) {
    lc__peers *p = &dg->u.peers;
    if (n != 6)
      return LC_EPROTO;
    if (!entries)
      return LC_EINVAL;
    WIRE_TRY(wire_read_fixed(&in, p->key, 32));
    WIRE_TRY(wire_read_u64(&in, &p->timestamp_us));
    uint32_t ne;
    WIRE_TRY(wire_read_array(&in, &ne, LC_EFIELD));
    if (ne > LC_PEERS_MAX)
      return LC_ERANGE;
    for (uint32_t i = 0; i < ne; i++) {
      lc__peer_entry *e = &entries[i];
      memset(e, 0, sizeof *e);
      uint32_t k;
      WIRE_TRY(wire_read_array(&in, &k, LC_EFIELD));
      if (k != 3)
        return LC_EPROTO;
      WIRE_TRY(wire_read_fixed(&in, e->key, 32));
      const uint8_t *ip;
      size_t iplen;
      WIRE_TRY(wire_read_bin(&in, &ip, &iplen));
      if (iplen != 4 && iplen != 16)
        return LC_ERANGE;
      memcpy(e->ip, ip, iplen);
      e->ip_len = (uint8_t)iplen;
      WIRE_TRY(wire_read_uint(&in, UINT16_MAX, &v));
      if (v == 0)
        return LC_ERANGE;
      e->port = (uint16_t)v;
    }
    p->nentries = ne;
    p->entries = entries;
  } else {
    return LC_ETYPE;
  }
  dg->signed_len = in.pos;
  WIRE_TRY(wire_read_fixed(&in, dg->sig, LC_SIGNATURE_BYTES));
  if (in.pos != in.len)
    return LC_ETRAILING;
  dg->type = (int)type;
  return 0;
}

/* How many fields each kind of chat envelope has. */
static uint32_t wire_chat_fields(int kind) {
  switch (kind) {
  case LC_CHAT_FILE_CTRL:
    return 9;
  case LC_CHAT_GROUP_SYNC:
    return 6;
  case LC_CHAT_FILE:
  case LC_CHAT_RELAY:
    return 5;
  case LC_CHAT_EDIT:
  case LC_CHAT_CONTACT:
    return 4;
  }
  return 3;
}

int lc__chat_encode(const lc__chat *c, uint8_t *out, size_t cap) {
  assert(c != NULL);
  if (c->kind == LC_CHAT_TEXT) {
    if ((c->text_len && !c->text) || !lc__utf8_valid(c->text, c->text_len))
      return LC_EINVAL;
  } else if (c->kind == LC_CHAT_READ) {
    if (c->nids == 0 || c->nids > LC_CHAT_IDS_MAX)
      return LC_EINVAL;
  } else if (c->kind == LC_CHAT_TYPING) {
    if (c->typing < 0 || c->typing > 2)
      return LC_EINVAL;
  } else if (c->kind == LC_CHAT_EDIT) {
    if ((c->text_len && !c->text) || !lc__utf8_valid(c->text, c->text_len))
      return LC_EINVAL;
  } else if (c->kind == LC_CHAT_CONTACT) {
    if (c->op < LC_CONTACT_OP_REQUEST || c->op > LC_CONTACT_OP_REMOVE ||
        c->text_len > LC_CHAT_NOTE_MAX || (c->text_len && !c->text) ||
        !lc__utf8_valid(c->text, c->text_len))
      return LC_EINVAL;
  } else if (c->kind == LC_CHAT_GROUP_OP || c->kind == LC_CHAT_GROUP_MSG) {
    if (!c->blob || c->blob_len == 0 ||
        c->blob_len > (c->kind == LC_CHAT_GROUP_OP ? LC_GROUP_BLOB_MAX
                                                   : LC_GROUP_MSG_MAX))
      return LC_EINVAL;
  } else if (c->kind == LC_CHAT_GROUP_SYNC) {
    if (c->nvec > LC_GROUP_MEMBERS_MAX)
      return LC_EINVAL;
  } else if (c->kind == LC_CHAT_RELAY) {
    if (!c->blob || c->blob_len == 0 || c->blob_len > LC_RELAY_MAX)
      return LC_EINVAL;
  } else if (c->kind == LC_CHAT_FILE) {
    if (c->xkind < 1 || c->xkind > 3 || c->nfiles == 0 ||
        c->nfiles > LC_TRANSFER_FILES_MAX || !c->files)
      return LC_EINVAL;
    for (size_t i = 0; i < c->nfiles; i++)
      if (!c->files[i].path || c->files[i].path_len == 0 ||
          c->files[i].path_len > LC_TRANSFER_PATH_MAX ||
          !lc__utf8_valid(c->files[i].path, c->files[i].path_len))
        return LC_EINVAL;
  } else if (c->kind == LC_CHAT_FILE_CTRL) {
    if (c->op < LC_XFER_OP_ACCEPT || c->op > LC_XFER_OP_DONE)
      return LC_EINVAL;
  } else if (c->kind != LC_CHAT_RETRACT) {
    return LC_EINVAL;
  }
  wire_out o = {out, cap, 0, 0};
  msgpack_packer pk;
  msgpack_packer_init(&pk, &o, wire_out_write);
  msgpack_pack_array(&pk, wire_chat_fields(c->kind));
  msgpack_pack_uint64(&pk, (uint64_t)c->kind);
  msgpack_pack_uint64(&pk, c->sent_ms);
  if (c->kind == LC_CHAT_EDIT || c->kind == LC_CHAT_RETRACT) {
    wire_pack_bin(&pk, c->target, LC_MSG_ID_BYTES);
    if (c->kind == LC_CHAT_EDIT)
      wire_pack_str(&pk, c->text, c->text_len);
  } else if (c->kind == LC_CHAT_TEXT) {
    wire_pack_str(&pk, c->text, c->text_len);
  } else if (c->kind == LC_CHAT_TYPING) {
    msgpack_pack_uint64(&pk, (uint64_t)c->typing);
  } else if (c->kind == LC_CHAT_CONTACT) {
    msgpack_pack_uint64(&pk, (uint64_t)c->op);
    wire_pack_str(&pk, c->text, c->text_len);
  } else if (c->kind == LC_CHAT_GROUP_OP || c->kind == LC_CHAT_GROUP_MSG) {
    wire_pack_bin(&pk, c->blob, c->blob_len);
  } else if (c->kind == LC_CHAT_RELAY) {
    wire_pack_bin(&pk, c->recipient, LC_KEY_BYTES);
    msgpack_pack_uint64(&pk, c->expires_ms);
    wire_pack_bin(&pk, c->blob, c->blob_len);
  } else if (c->kind == LC_CHAT_FILE) {
    msgpack_pack_uint64(&pk, (uint64_t)c->xkind);
    msgpack_pack_uint64(&pk, c->duration_ms);
    msgpack_pack_array(&pk, (uint32_t)c->nfiles);
    for (size_t i = 0; i < c->nfiles; i++) {
      msgpack_pack_array(&pk, 2);
      wire_pack_str(&pk, c->files[i].path, c->files[i].path_len);
      msgpack_pack_uint64(&pk, c->files[i].size);
    }
  } else if (c->kind == LC_CHAT_FILE_CTRL) {
    wire_pack_bin(&pk, c->target, LC_MSG_ID_BYTES);
    msgpack_pack_uint64(&pk, (uint64_t)c->op);
    msgpack_pack_uint64(&pk, c->pos);
    msgpack_pack_uint64(&pk, c->stream);
    msgpack_pack_uint64(&pk, c->file);
    wire_pack_bin(&pk, c->hash, c->has_hash ? LC_XFER_HASH_BYTES : 0);
    msgpack_pack_int64(&pk, c->err);
  } else if (c->kind == LC_CHAT_GROUP_SYNC) {
    wire_pack_bin(&pk, c->group, LC_GROUP_ID_BYTES);
    msgpack_pack_uint64(&pk, c->nops);
    wire_pack_bin(&pk, c->ops_hash, sizeof c->ops_hash);
    msgpack_pack_array(&pk, c->nvec);
    for (size_t i = 0; i < c->nvec; i++) {
      msgpack_pack_array(&pk, 2);
      wire_pack_bin(&pk, c->vec[i].author, LC_KEY_BYTES);
      msgpack_pack_uint64(&pk, c->vec[i].seq);
    }
  } else {
    msgpack_pack_array(&pk, c->nids);
    for (size_t i = 0; i < c->nids; i++)
      wire_pack_bin(&pk, c->ids[i], LC_MSG_ID_BYTES);
  }
  return o.overflow ? LC_ETOOBIG : (int)o.len;
}

/* An offer's list of files, [[path str, size uint64], ...]: at most max
 * entries, paths of 1 to LC_TRANSFER_PATH_MAX bytes, into out (NULL: only
 * checked). */
static int wire_read_files(wire_in *in, lc__wire_file *out, size_t max,
                           uint32_t *count) {
  uint32_t k;
  WIRE_TRY(wire_read_array(in, &k, LC_EFIELD));
  if (k > max)
    return LC_ERANGE;
  for (uint32_t i = 0; i < k; i++) {
    uint32_t two;
    lc__wire_file f;
    WIRE_TRY(wire_read_array(in, &two, LC_EFIELD));
    if (two != 2)
      return LC_EPROTO;
    WIRE_TRY(wire_read_str(in, LC_TRANSFER_PATH_MAX, &f.path, &f.path_len));
    if (f.path_len == 0)
      return LC_ERANGE;
    WIRE_TRY(wire_read_u64(in, &f.size));
    if (out)
      out[i] = f;
  }
  *count = k;
  return 0;
}

int lc__chat_decode(lc__chat *c, const uint8_t *buf, size_t len) {
  assert(c != NULL);
  if (buf == NULL && len > 0)
    return LC_EINVAL;
  wire_in in = {buf, len, 0};
  uint32_t n;
  uint64_t kind;
  c->kind = 0;
  c->text = NULL;
  c->text_len = 0;
  c->nids = 0;
  c->typing = 0;
  c->op = 0;
  c->blob = NULL;
  c->blob_len = 0;
  c->nvec = 0;
  c->nops = 0;
  c->expires_ms = 0;
  memset(c->group, 0, sizeof c->group);
  memset(c->ops_hash, 0, sizeof c->ops_hash);
  memset(c->recipient, 0, sizeof c->recipient);
  memset(c->target, 0, sizeof c->target);
  c->xkind = 0;
  c->duration_ms = 0;
  c->nfiles = 0;
  c->files = NULL;
  c->pos = 0;
  c->stream = 0;
  c->file = 0;
  c->has_hash = 0;
  memset(c->hash, 0, sizeof c->hash);
  c->err = 0;
  WIRE_TRY(wire_read_array(&in, &n, LC_EPROTO));
  if (n < 3)
    return LC_EPROTO;
  WIRE_TRY(wire_read_uint(&in, 255, &kind));
  if (kind < LC_CHAT_TEXT || kind > LC_CHAT_FILE_CTRL)
    return LC_ETYPE;
  if (n != wire_chat_fields((int)kind))
    return LC_EPROTO;
  WIRE_TRY(wire_read_u64(&in, &c->sent_ms));
  if (kind == LC_CHAT_EDIT || kind == LC_CHAT_RETRACT) {
    WIRE_TRY(wire_read_fixed(&in, c->target, LC_MSG_ID_BYTES));
    if (kind == LC_CHAT_EDIT)
      WIRE_TRY(wire_read_str(&in, SIZE_MAX, &c->text, &c->text_len));
  } else if (kind == LC_CHAT_TEXT) {
    WIRE_TRY(wire_read_str(&in, SIZE_MAX, &c->text, &c->text_len));
  } else if (kind == LC_CHAT_TYPING) {
    uint64_t t;
    WIRE_TRY(wire_read_uint(&in, 2, &t));
    c->typing = (int)t;
  } else if (kind == LC_CHAT_CONTACT) {
    uint64_t op;
    WIRE_TRY(wire_read_uint(&in, LC_CONTACT_OP_REMOVE, &op));
    if (op < LC_CONTACT_OP_REQUEST)
      return LC_ERANGE;
    c->op = (int)op;
    WIRE_TRY(wire_read_str(&in, LC_CHAT_NOTE_MAX, &c->text, &c->text_len));
  } else if (kind == LC_CHAT_GROUP_OP || kind == LC_CHAT_GROUP_MSG) {
    WIRE_TRY(wire_read_bin(&in, &c->blob, &c->blob_len));
    if (c->blob_len == 0 ||
        c->blob_len >
            (kind == LC_CHAT_GROUP_OP ? LC_GROUP_BLOB_MAX : LC_GROUP_MSG_MAX))
      return LC_ERANGE;
  } else if (kind == LC_CHAT_RELAY) {
    WIRE_TRY(wire_read_fixed(&in, c->recipient, LC_KEY_BYTES));
    WIRE_TRY(wire_read_u64(&in, &c->expires_ms));
    WIRE_TRY(wire_read_bin(&in, &c->blob, &c->blob_len));
    if (c->blob_len == 0 || c->blob_len > LC_RELAY_MAX)
      return LC_ERANGE;
  } else if (kind == LC_CHAT_FILE) {
    uint64_t xk;
    WIRE_TRY(wire_read_uint(&in, 3, &xk));
    if (xk < 1)
      return LC_ERANGE;
    c->xkind = (int)xk;
    WIRE_TRY(wire_read_u64(&in, &c->duration_ms));
    size_t start = in.pos;
    uint32_t k;
    WIRE_TRY(wire_read_files(&in, NULL, LC_TRANSFER_FILES_MAX, &k));
    if (k == 0)
      return LC_ERANGE;
    c->blob = buf + start;
    c->blob_len = in.pos - start;
    c->nfiles = k;
  } else if (kind == LC_CHAT_FILE_CTRL) {
    uint64_t op, v;
    const uint8_t *h;
    size_t hlen;
    WIRE_TRY(wire_read_fixed(&in, c->target, LC_MSG_ID_BYTES));
    WIRE_TRY(wire_read_uint(&in, LC_XFER_OP_DONE, &op));
    if (op < LC_XFER_OP_ACCEPT)
      return LC_ERANGE;
    c->op = (int)op;
    WIRE_TRY(wire_read_u64(&in, &c->pos));
    WIRE_TRY(wire_read_u32(&in, &c->stream));
    WIRE_TRY(wire_read_uint(&in, UINT32_MAX, &v));
    c->file = (uint32_t)v;
    WIRE_TRY(wire_read_bin(&in, &h, &hlen));
    if (hlen != 0 && hlen != LC_XFER_HASH_BYTES)
      return LC_ERANGE;
    if (hlen) {
      memcpy(c->hash, h, LC_XFER_HASH_BYTES);
      c->has_hash = 1;
    }
    WIRE_TRY(wire_read_i64(&in, &c->err));
  } else if (kind == LC_CHAT_GROUP_SYNC) {
    WIRE_TRY(wire_read_fixed(&in, c->group, LC_GROUP_ID_BYTES));
    WIRE_TRY(wire_read_u64(&in, &c->nops));
    WIRE_TRY(wire_read_fixed(&in, c->ops_hash, sizeof c->ops_hash));
    uint32_t k;
    WIRE_TRY(wire_read_array(&in, &k, LC_EFIELD));
    if (k > LC_GROUP_MEMBERS_MAX)
      return LC_ERANGE;
    for (uint32_t i = 0; i < k; i++) {
      uint32_t two;
      WIRE_TRY(wire_read_array(&in, &two, LC_EFIELD));
      if (two != 2)
        return LC_EPROTO;
      WIRE_TRY(wire_read_fixed(&in, c->vec[i].author, LC_KEY_BYTES));
      WIRE_TRY(wire_read_u64(&in, &c->vec[i].seq));
    }
    c->nvec = k;
  } else {
    uint32_t k;
    WIRE_TRY(wire_read_array(&in, &k, LC_EFIELD));
    if (k == 0 || k > LC_CHAT_IDS_MAX)
      return LC_ERANGE;
    for (uint32_t i = 0; i < k; i++)
      WIRE_TRY(wire_read_fixed(&in, c->ids[i], LC_MSG_ID_BYTES));
    c->nids = k;
  }
  if (in.pos != in.len)
    return LC_ETRAILING;
  c->kind = (int)kind;
  return 0;
}

int lc__wire_files_decode(const uint8_t *buf, size_t len, lc__wire_file *out,
                          size_t max) {
  wire_in in = {buf, len, 0};
  uint32_t k;
  WIRE_TRY(wire_read_files(&in, out, max, &k));
  return in.pos == in.len ? (int)k : LC_ETRAILING;
}

/* ---- group operations and messages ------------------------------------- */

#define WIRE_SIG_FIELD 66 /* bin8 header (2) + 64 bytes */

static int wire_name_ok(const char *s, size_t n) {
  return n <= LC_GROUP_NAME_MAX && (!n || s) && lc__utf8_valid(s ? s : "", n);
}

int lc__gop_encode(const lc__gop_wire *op, uint8_t *out, size_t cap,
                   size_t *signed_len) {
  if (op->kind < LC_GOP_CREATE || op->kind > LC_GOP_RENAME ||
      !wire_name_ok(op->name, op->name_len) ||
      op->nmembers > LC_GROUP_MEMBERS_MAX || (op->nmembers && !op->members))
    return LC_EINVAL;
  wire_out o = {out, cap, 0, 0};
  msgpack_packer pk;
  msgpack_packer_init(&pk, &o, wire_out_write);
  msgpack_pack_array(&pk, 10);
  wire_pack_bin(&pk, op->group, LC_GROUP_ID_BYTES);
  wire_pack_bin(&pk, op->author, LC_KEY_BYTES);
  msgpack_pack_uint64(&pk, op->lamport);
  msgpack_pack_uint64(&pk, op->sent_ms);
  msgpack_pack_uint64(&pk, (uint64_t)op->kind);
  wire_pack_bin(&pk, op->target, LC_KEY_BYTES);
  wire_pack_str(&pk, op->name, op->name_len);
  wire_pack_bin(&pk, op->nonce, sizeof op->nonce);
  msgpack_pack_array(&pk, op->nmembers);
  for (size_t i = 0; i < op->nmembers; i++)
    wire_pack_bin(&pk, op->members + i * LC_KEY_BYTES, LC_KEY_BYTES);
  wire_pack_bin(&pk, op->sig, sizeof op->sig);
  if (o.overflow)
    return LC_ETOOBIG;
  if (signed_len)
    *signed_len = o.len - WIRE_SIG_FIELD;
  return (int)o.len;
}

int lc__gop_decode(lc__gop_wire *op, uint8_t (*members)[LC_KEY_BYTES],
                   const uint8_t *buf, size_t len) {
  if (!buf && len)
    return LC_EINVAL;
  wire_in in = {buf, len, 0};
  uint32_t n, k;
  uint64_t kind;
  memset(op, 0, sizeof *op);
  WIRE_TRY(wire_read_array(&in, &n, LC_EPROTO));
  if (n != 10)
    return LC_EPROTO;
  WIRE_TRY(wire_read_fixed(&in, op->group, LC_GROUP_ID_BYTES));
  WIRE_TRY(wire_read_fixed(&in, op->author, LC_KEY_BYTES));
  WIRE_TRY(wire_read_u64(&in, &op->lamport));
  WIRE_TRY(wire_read_u64(&in, &op->sent_ms));
  WIRE_TRY(wire_read_uint(&in, LC_GOP_RENAME, &kind));
  if (kind < LC_GOP_CREATE)
    return LC_ERANGE;
  op->kind = (int)kind;
  WIRE_TRY(wire_read_fixed(&in, op->target, LC_KEY_BYTES));
  WIRE_TRY(wire_read_str(&in, LC_GROUP_NAME_MAX, &op->name, &op->name_len));
  WIRE_TRY(wire_read_fixed(&in, op->nonce, sizeof op->nonce));
  WIRE_TRY(wire_read_array(&in, &k, LC_EFIELD));
  if (k > LC_GROUP_MEMBERS_MAX)
    return LC_ERANGE;
  for (uint32_t i = 0; i < k; i++)
    WIRE_TRY(wire_read_fixed(&in, members[i], LC_KEY_BYTES));
  op->nmembers = k;
  op->members = k ? members[0] : NULL;
  op->signed_len = in.pos;
  WIRE_TRY(wire_read_fixed(&in, op->sig, sizeof op->sig));
  if (in.pos != in.len)
    return LC_ETRAILING;
  return 0;
}

int lc__gmsg_encode(const lc__gmsg_wire *m, uint8_t *out, size_t cap,
                    size_t *signed_len) {
  if ((m->text_len && !m->text) ||
      !lc__utf8_valid(m->text ? m->text : "", m->text_len) || m->seq == 0)
    return LC_EINVAL;
  wire_out o = {out, cap, 0, 0};
  msgpack_packer pk;
  msgpack_packer_init(&pk, &o, wire_out_write);
  msgpack_pack_array(&pk, 7);
  wire_pack_bin(&pk, m->group, LC_GROUP_ID_BYTES);
  wire_pack_bin(&pk, m->author, LC_KEY_BYTES);
  msgpack_pack_uint64(&pk, m->seq);
  msgpack_pack_uint64(&pk, m->lamport);
  msgpack_pack_uint64(&pk, m->sent_ms);
  wire_pack_str(&pk, m->text, m->text_len);
  wire_pack_bin(&pk, m->sig, sizeof m->sig);
  if (o.overflow)
    return LC_ETOOBIG;
  if (signed_len)
    *signed_len = o.len - WIRE_SIG_FIELD;
  return (int)o.len;
}

int lc__gmsg_decode(lc__gmsg_wire *m, const uint8_t *buf, size_t len) {
  if (!buf && len)
    return LC_EINVAL;
  wire_in in = {buf, len, 0};
  uint32_t n;
  memset(m, 0, sizeof *m);
  WIRE_TRY(wire_read_array(&in, &n, LC_EPROTO));
  if (n != 7)
    return LC_EPROTO;
  WIRE_TRY(wire_read_fixed(&in, m->group, LC_GROUP_ID_BYTES));
  WIRE_TRY(wire_read_fixed(&in, m->author, LC_KEY_BYTES));
  WIRE_TRY(wire_read_u64(&in, &m->seq));
  WIRE_TRY(wire_read_u64(&in, &m->lamport));
  WIRE_TRY(wire_read_u64(&in, &m->sent_ms));
  WIRE_TRY(wire_read_str(&in, SIZE_MAX, &m->text, &m->text_len));
  m->signed_len = in.pos;
  WIRE_TRY(wire_read_fixed(&in, m->sig, sizeof m->sig));
  if (in.pos != in.len)
    return LC_ETRAILING;
  if (m->seq == 0)
    return LC_ERANGE;
  return 0;
}

/* ---- relayed messages -------------------------------------------------- */

int lc__relay_inner_encode(const lc__relay_inner *r, uint8_t *out, size_t cap,
                           size_t *signed_len) {
  if ((r->text_len && !r->text) ||
      !lc__utf8_valid(r->text ? r->text : "", r->text_len))
    return LC_EINVAL;
  wire_out o = {out, cap, 0, 0};
  msgpack_packer pk;
  msgpack_packer_init(&pk, &o, wire_out_write);
  msgpack_pack_array(&pk, 6);
  wire_pack_bin(&pk, r->sender, LC_KEY_BYTES);
  wire_pack_bin(&pk, r->recipient, LC_KEY_BYTES);
  wire_pack_bin(&pk, r->msg_id, LC_MSG_ID_BYTES);
  msgpack_pack_uint64(&pk, r->sent_ms);
  wire_pack_str(&pk, r->text, r->text_len);
  wire_pack_bin(&pk, r->sig, sizeof r->sig);
  if (o.overflow)
    return LC_ETOOBIG;
  if (signed_len)
    *signed_len = o.len - WIRE_SIG_FIELD;
  return (int)o.len;
}

int lc__relay_inner_decode(lc__relay_inner *r, const uint8_t *buf, size_t len) {
  if (!buf && len)
    return LC_EINVAL;
  wire_in in = {buf, len, 0};
  uint32_t n;
  memset(r, 0, sizeof *r);
  WIRE_TRY(wire_read_array(&in, &n, LC_EPROTO));
  if (n != 6)
    return LC_EPROTO;
  WIRE_TRY(wire_read_fixed(&in, r->sender, LC_KEY_BYTES));
  WIRE_TRY(wire_read_fixed(&in, r->recipient, LC_KEY_BYTES));
  WIRE_TRY(wire_read_fixed(&in, r->msg_id, LC_MSG_ID_BYTES));
  WIRE_TRY(wire_read_u64(&in, &r->sent_ms));
  WIRE_TRY(wire_read_str(&in, SIZE_MAX, &r->text, &r->text_len));
  r->signed_len = in.pos;
  WIRE_TRY(wire_read_fixed(&in, r->sig, sizeof r->sig));
  if (in.pos != in.len)
    return LC_ETRAILING;
  return 0;
}
