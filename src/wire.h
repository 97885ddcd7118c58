/* wire.h: the datagram and frame codec.  Pure functions over byte buffers;
 * wire.c is the only file that includes msgpack.h.  docs/PROTOCOL.md is the
 * normative description of every layout here.
 *
 * Every datagram is one msgpack array [version, type, ...].  Sealed DATA
 * datagrams carry ciphertext whose plaintext is itself one msgpack array of
 * frames (a "packet payload").
 *
 * Decoders treat every byte as hostile: types and lengths are checked before
 * use, trailing bytes are rejected, and decoded byte strings point into the
 * caller's input buffer (no allocation sized by a length from the wire).
 */
#ifndef LC_WIRE_H
#define LC_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "lanchat.h"

/* ---- datagram types (second field of the outer array) ---------------- */
enum {
  LC_DG_ANNOUNCE = 1, /* reserved for discovery; decode says LC_ETYPE */
  LC_DG_HELLO = 2,    /* handshake initiation */
  LC_DG_WELCOME = 3,  /* handshake response */
  LC_DG_DATA = 4      /* sealed transport packet */
};

#define LC_KEY_BYTES 32
#define LC_TAG_BYTES 16
#define LC_HELLO_STATIC_BYTES (LC_KEY_BYTES + LC_TAG_BYTES) /* 48 */
#define LC_HELLO_PAYLOAD_BYTES (16 + LC_TAG_BYTES)          /* 32 */
#define LC_WELCOME_PAYLOAD_BYTES (8 + LC_TAG_BYTES)         /* 24 */

/* HELLO: [1, 2, sender_index u32, ephemeral bin32, sealed_static bin48,
 *         sealed_payload bin32] */
typedef struct {
  uint32_t sender_index;
  uint8_t ephemeral[LC_KEY_BYTES];
  uint8_t sealed_static[LC_HELLO_STATIC_BYTES];
  uint8_t sealed_payload[LC_HELLO_PAYLOAD_BYTES];
} lc__hello;

/* WELCOME: [1, 3, sender_index u32, receiver_index u32, ephemeral bin32,
 *           sealed_payload bin24] */
typedef struct {
  uint32_t sender_index;
  uint32_t receiver_index;
  uint8_t ephemeral[LC_KEY_BYTES];
  uint8_t sealed_payload[LC_WELCOME_PAYLOAD_BYTES];
} lc__welcome;

/* DATA: [1, 4, receiver_index u32, packet_number u64, ciphertext bin]
 * ciphertext is at least LC_TAG_BYTES long.  On decode, ciphertext points
 * into the input buffer. */
typedef struct {
  uint32_t receiver_index;
  uint64_t packet_number;
  const uint8_t *ciphertext;
  size_t ciphertext_len;
} lc__data;

typedef struct {
  int type; /* LC_DG_* */
  union {
    lc__hello hello;
    lc__welcome welcome;
    lc__data data;
  } u;
} lc__datagram;

/* Encodes dg into out (capacity cap).  Returns the number of bytes written,
 * or LC_ETOOBIG if it does not fit (or exceeds LC_DATAGRAM_MAX), LC_EINVAL
 * for an unknown type or a DATA whose ciphertext is NULL or shorter than
 * LC_TAG_BYTES. */
int lc__wire_encode(const lc__datagram *dg, uint8_t *out, size_t cap);

/* Decodes one datagram.  Pointers in *dg point into buf.  Errors:
 * LC_ETRUNC, LC_EPROTO (not a msgpack array / wrong arity), LC_EVERSION,
 * LC_ETYPE, LC_EFIELD, LC_ERANGE, LC_ETRAILING, LC_ETOOBIG (len >
 * LC_DATAGRAM_MAX). */
int lc__wire_decode(lc__datagram *dg, const uint8_t *buf, size_t len);

/* Size of the encoded DATA datagram header, i.e. everything except the
 * ciphertext bytes themselves, for a given packet number and ciphertext
 * length.  Lets the transport size packets to the path MTU exactly. */
size_t lc__wire_data_overhead(uint32_t receiver_index, uint64_t pn,
                              size_t ciphertext_len);

/* ---- frames inside a packet payload ---------------------------------- */
enum {
  LC_FR_PING = 0, /* [0] ack-eliciting, no content */
  LC_FR_ACK = 1,  /* [1, largest, ack_delay_us, first_range, [gap, len, ...]] */
  LC_FR_MSG = 2,  /* [2, seq, msg_id bin16, total_len, offset, data bin] */
  LC_FR_BULK = 3, /* [3, stream_id, offset, fin bool, data bin] */
  LC_FR_UNREL = 4,       /* [4, data bin] unreliable (presence, typing) */
  LC_FR_MSG_CREDIT = 5,  /* [5, max_seq]: peer may send chat seq < max_seq */
  LC_FR_BULK_CREDIT = 6, /* [6, stream_id, max_offset] */
  LC_FR_CLOSE = 7,       /* [7, code int] */
  LC_FR_DELIVERED = 8    /* [8, seq]: every chat seq < seq was handed to
                            the receiving application */
};

#define LC_MSG_ID_BYTES 16
#define LC_ACK_RANGES_MAX 64 /* extra (gap, len) pairs in one ACK frame */
#define LC_FRAMES_MAX 64     /* frames in one packet payload */

typedef struct {
  uint64_t gap; /* as in RFC 9000 19.3.1 */
  uint64_t len; /* "ACK Range Length" */
} lc__ack_range;

typedef struct {
  int type; /* LC_FR_* */
  union {
    struct {
      uint64_t largest;
      uint64_t ack_delay_us;
      uint64_t first_range; /* packets below largest also acked */
      size_t nranges;       /* <= LC_ACK_RANGES_MAX */
      /* Encode: the caller's array.  Decode: the ranges array given to
       * lc__payload_decode (hence at most one ACK frame per payload). */
      lc__ack_range *ranges;
    } ack;
    struct {
      uint64_t seq;
      uint8_t msg_id[LC_MSG_ID_BYTES];
      uint32_t total_len;
      uint32_t offset;
      const uint8_t *data;
      size_t len;
    } msg;
    struct {
      uint32_t stream_id;
      uint64_t offset;
      int fin;
      const uint8_t *data;
      size_t len;
    } bulk;
    struct {
      const uint8_t *data;
      size_t len;
    } unrel;
    struct {
      uint64_t max_seq;
    } msg_credit;
    struct {
      uint32_t stream_id;
      uint64_t max_offset;
    } bulk_credit;
    struct {
      int64_t code;
    } close;
    struct {
      uint64_t seq;
    } delivered;
  } u;
} lc__frame;

/* A packet payload being built: frames are appended while they fit. */
typedef struct {
  uint8_t *buf;
  size_t cap;
  size_t len;     /* bytes used, including the array header */
  size_t nframes; /* frames appended so far (<= LC_FRAMES_MAX) */
} lc__payload_writer;

/* Starts a payload in buf.  cap is the plaintext budget. */
void lc__payload_init(lc__payload_writer *w, uint8_t *buf, size_t cap);

/* Encoded size of one frame (exactly what lc__payload_add would append). */
size_t lc__frame_size(const lc__frame *f);

/* Appends one frame.  Returns 0, LC_ETOOBIG if it would not fit in the
 * budget or the frame count would exceed LC_FRAMES_MAX, or LC_EINVAL for a
 * frame the decoder would reject (the writer is then unchanged). */
int lc__payload_add(lc__payload_writer *w, const lc__frame *f);

/* Finishes the payload and returns its final length.  The array header is
 * rewritten for the real frame count; the caller must have reserved the
 * worst case (lc__payload_init does). */
size_t lc__payload_finish(lc__payload_writer *w);

/* Largest data length of a MSG, BULK or UNREL frame whose other fields are
 * as in f that fits in `room` bytes of payload (0 if none does). */
size_t lc__frame_max_data(const lc__frame *f, size_t room);

/* Decodes a whole packet payload into frames[0..*nframes).  Byte strings
 * point into buf; an ACK frame's ranges are written to `ranges` (room for
 * LC_ACK_RANGES_MAX).  Same errors as lc__wire_decode; an empty payload (no
 * frames), more than max_frames (or LC_FRAMES_MAX) frames, or a second ACK
 * frame is LC_EPROTO. */
int lc__payload_decode(const uint8_t *buf, size_t len, lc__frame *frames,
                       size_t max_frames, size_t *nframes,
                       lc__ack_range *ranges);

#endif /* LC_WIRE_H */
