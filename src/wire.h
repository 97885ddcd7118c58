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
  LC_DG_ANNOUNCE = 1, /* discovery: signed, in the clear (lc__disc_decode) */
  LC_DG_HELLO = 2,    /* handshake initiation */
  LC_DG_WELCOME = 3,  /* handshake response */
  LC_DG_DATA = 4,     /* sealed transport packet */
  LC_DG_PEERS = 5     /* discovery: signed peer list (lc__disc_decode) */
};

/* LC_KEY_BYTES (32) comes from lanchat.h */
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

/* ---- discovery datagrams (ANNOUNCE, PEERS) ---------------------------
 * Both are signed by the sender's identity key and travel in the clear.
 * The signature covers every byte of the datagram before the signature
 * field (signed_len on decode), so it is checked over exactly what arrived
 * and the encoding never has to be reproduced.  lc__wire_decode refuses
 * them with LC_ETYPE: they have their own codec below. */

#define LC_SIGNATURE_BYTES 64
#define LC_NICK_MAX_BYTES 64    /* UTF-8 bytes, no terminator */
#define LC_STATUS_MAX_BYTES 128 /* UTF-8 bytes, no terminator */
#define LC_PEERS_MAX 24         /* entries in one PEERS datagram */

/* ANNOUNCE flags */
enum {
  LC_ANN_REPLY = 1,   /* an answer (to SOLICIT or a newcomer): never
                         answered itself */
  LC_ANN_GOODBYE = 2, /* the sender is leaving (presence is OFFLINE) */
  LC_ANN_SOLICIT = 4, /* "answer me by unicast": set at start, after a
                         network change, and on probes */
  LC_ANN_FLAGS_ALL = 7
};

/* ANNOUNCE: [1, 1, flags u8, key bin32, timestamp_us u64, port u16,
 *            interval_ms u32, presence u8, caps u64, nickname str,
 *            status str, sig bin64]
 * timestamp_us: sender's wall clock in microseconds (Unix epoch), strictly
 * increasing per sender; port: the sender's unicast port, never 0;
 * interval_ms: the sender's announcement interval, 1000..3600000 (receivers
 * expire it after three); presence 0..3 (LC_PRESENCE_*). */
typedef struct {
  uint32_t flags;
  uint8_t key[32];
  uint64_t timestamp_us;
  uint16_t port;
  uint32_t interval_ms;
  uint8_t presence;
  uint64_t caps;
  const char *nick; /* not NUL-terminated; decode: points into the input */
  size_t nick_len;  /* <= LC_NICK_MAX_BYTES, valid UTF-8 */
  const char *status;
  size_t status_len; /* <= LC_STATUS_MAX_BYTES, valid UTF-8 */
} lc__announce;

/* One PEERS entry: a peer the sender hears, and where. */
typedef struct {
  uint8_t key[32];
  uint8_t ip[16]; /* IPv4 in the first 4 bytes when ip_len == 4 */
  uint8_t ip_len; /* 4 or 16 */
  uint16_t port;  /* never 0 */
} lc__peer_entry;

/* PEERS: [1, 5, key bin32, timestamp_us u64, [[key bin32, ip bin4|bin16,
 *         port u16], ...], sig bin64]   (at most LC_PEERS_MAX entries) */
typedef struct {
  uint8_t key[32];
  uint64_t timestamp_us;
  size_t nentries;
  lc__peer_entry *entries; /* encode: caller's array; decode: filled into
                              the caller's array of LC_PEERS_MAX */
} lc__peers;

typedef struct {
  int type; /* LC_DG_ANNOUNCE or LC_DG_PEERS */
  union {
    lc__announce announce;
    lc__peers peers;
  } u;
  size_t signed_len; /* decode: bytes covered by the signature */
  uint8_t sig[LC_SIGNATURE_BYTES];
} lc__disc_datagram;

/* Encodes everything up to the signature into out and returns that length
 * (the bytes to sign).  The caller signs them and appends the signature
 * with lc__disc_encode_sig.  Errors: LC_ETOOBIG, LC_EINVAL (a field the
 * decoder would refuse: over-long or invalid UTF-8 strings, port 0,
 * presence > 3, unknown flags, too many entries, bad ip_len). */
int lc__disc_encode_body(const lc__disc_datagram *dg, uint8_t *out, size_t cap);
/* Appends the signature field after a body of body_len bytes.  Returns the
 * total datagram length or LC_ETOOBIG. */
int lc__disc_encode_sig(uint8_t *out, size_t cap, size_t body_len,
                        const uint8_t sig[LC_SIGNATURE_BYTES]);

/* Decodes an ANNOUNCE or PEERS datagram; the signature is NOT checked
 * here (the caller verifies sig over buf[0..signed_len)).  entries is the
 * caller's array of LC_PEERS_MAX for PEERS (may be NULL otherwise).
 * Errors as lc__wire_decode, plus LC_ETYPE for any other datagram type. */
int lc__disc_decode(lc__disc_datagram *dg, const uint8_t *buf, size_t len,
                    lc__peer_entry *entries);

/* ---- the chat envelope: the body of a transport message --------------
 * [kind u8, sent_ms u64, ...]  sent_ms is the sender's wall clock in
 * milliseconds.
 *   TEXT (1): [1, sent_ms, text str]
 *   READ (2): [2, sent_ms, [msg_id bin16, ...]]  (1..LC_CHAT_IDS_MAX ids):
 *             the sender of this envelope read these messages of ours.
 *   TYPING (3): [3, sent_ms, state uint 0..2]  idle, composing, paused;
 *             sent unreliably, never stored.
 *   EDIT (4): [4, sent_ms, target msg_id bin16, text str]
 *   RETRACT (5): [5, sent_ms, target msg_id bin16]
 *   CONTACT (6): [6, sent_ms, op uint 1..4, note str]  a friend request
 *             (1, with its note, at most LC_CHAT_NOTE_MAX bytes), accept
 *             (2), reject (3) or removal (4); the note is "" but for 1. */
enum {
  LC_CHAT_TEXT = 1,
  LC_CHAT_READ = 2,
  LC_CHAT_TYPING = 3,
  LC_CHAT_EDIT = 4,
  LC_CHAT_RETRACT = 5,
  LC_CHAT_CONTACT = 6,
  LC_CHAT_GROUP_OP = 7,   /* [7, sent_ms, op bin]: a signed group operation */
  LC_CHAT_GROUP_MSG = 8,  /* [8, sent_ms, msg bin]: a signed group message */
  LC_CHAT_GROUP_SYNC = 9, /* [9, sent_ms, group bin32, nops uint, ops_hash
                             bin16, [[author bin32, seq uint], ...]] */
  LC_CHAT_RELAY = 10,     /* [10, sent_ms, recipient bin32, expires_ms
                             uint, sealed bin]: a message carried for
                             someone else, sealed to the recipient */
  LC_CHAT_FILE = 11,      /* [11, sent_ms, kind uint 1..3, duration_ms
                             uint, [[path str, size uint], ...]]: an offer
                             of files; its message id is the transfer's */
  LC_CHAT_FILE_CTRL = 12  /* [12, sent_ms, transfer bin16, op uint 1..6,
                             pos uint, stream u32, file u32, hash bin (0
                             or 32 bytes), err int]: see LC_XFER_OP_* */
};
enum {
  LC_XFER_OP_ACCEPT = 1,  /* receiver: send from byte pos (resume) */
  LC_XFER_OP_DECLINE = 2, /* receiver: no */
  LC_XFER_OP_CANCEL = 3,  /* either side: stop (err: why, 0 = the user) */
  LC_XFER_OP_START = 4,   /* sender: stream carries bytes from pos */
  LC_XFER_OP_HASH = 5,    /* sender: file's BLAKE2b-256 is hash */
  LC_XFER_OP_DONE = 6     /* receiver: every file verified */
};
#define LC_XFER_HASH_BYTES 32
/* One file of an offer: encode from an array of these; decode with
 * lc__wire_files_decode from the list's bytes. */
typedef struct {
  const char *path; /* not NUL-terminated on decode (points into the buffer) */
  size_t path_len;
  uint64_t size;
} lc__wire_file;
/* LC_GROUP_ID_BYTES, LC_GROUP_MEMBERS_MAX, LC_GROUP_NAME_MAX: lanchat.h */
#define LC_GROUP_BLOB_MAX (LC_GROUP_MEMBERS_MAX * 34 + 1024) /* an op */
#define LC_GROUP_MSG_MAX (LC_TEXT_MAX + 512)                 /* a message */
enum {
  LC_CONTACT_OP_REQUEST = 1,
  LC_CONTACT_OP_ACCEPT = 2,
  LC_CONTACT_OP_REJECT = 3,
  LC_CONTACT_OP_REMOVE = 4
};
#define LC_CHAT_NOTE_MAX 1024
#define LC_CHAT_IDS_MAX 64

typedef struct {
  int kind;
  uint64_t sent_ms;
  const char *text; /* TEXT, EDIT: valid UTF-8, not NUL-terminated; decode:
                       into buf */
  size_t text_len;
  int typing;          /* TYPING: 0..2 */
  int op;              /* CONTACT: LC_CONTACT_OP_* */
  const uint8_t *blob; /* GROUP_OP, GROUP_MSG: the signed bytes; RELAY:
                          the sealed box */
  size_t blob_len;
  uint8_t recipient[LC_KEY_BYTES]; /* RELAY */
  uint64_t expires_ms;
  uint8_t group[LC_GROUP_ID_BYTES]; /* GROUP_SYNC */
  uint64_t nops;
  uint8_t ops_hash[16];
  size_t nvec;
  struct {
    uint8_t author[LC_KEY_BYTES];
    uint64_t seq;
  } vec[LC_GROUP_MEMBERS_MAX];
  /* FILE: xkind (lc_transfer_kind), duration_ms, the files: encode from
   * files[nfiles]; decode leaves the list's raw bytes in blob/blob_len,
   * already checked, and its length in nfiles */
  int xkind;
  uint64_t duration_ms;
  size_t nfiles;
  const lc__wire_file *files;
  /* FILE_CTRL: target is the transfer, op an LC_XFER_OP_* */
  uint64_t pos;
  uint32_t stream, file;
  int has_hash;
  uint8_t hash[LC_XFER_HASH_BYTES];
  int64_t err;
  uint8_t target[LC_MSG_ID_BYTES]; /* EDIT, RETRACT, FILE_CTRL */
  size_t nids;                     /* READ */
  uint8_t ids[LC_CHAT_IDS_MAX][LC_MSG_ID_BYTES];
} lc__chat;

/* Returns the encoded length, LC_ETOOBIG or LC_EINVAL (unknown kind,
 * invalid UTF-8, no or too many ids). */
int lc__chat_encode(const lc__chat *c, uint8_t *out, size_t cap);
/* Errors as lc__wire_decode; invalid UTF-8 is LC_EFIELD, an unknown kind
 * LC_ETYPE. */
int lc__chat_decode(lc__chat *c, const uint8_t *buf, size_t len);
/* The files of a decoded FILE envelope (c->blob, c->blob_len) into
 * out[max]; returns how many, or a decoder error (never for a list that
 * lc__chat_decode accepted). */
int lc__wire_files_decode(const uint8_t *buf, size_t len, lc__wire_file *out,
                          size_t max);

/* ---- group operations and messages (signed blobs inside the envelope) --
 * op:  [group bin32, author bin32, lamport uint, sent_ms uint, kind uint,
 *       target bin32, name str, nonce bin16, [member bin32, ...], sig bin64]
 * msg: [group bin32, author bin32, seq uint, lamport uint, sent_ms uint,
 *       text str, sig bin64]
 * The signature (the author's Ed25519) covers every byte before its own
 * field: buf[0..signed_len). */
enum {
  LC_GOP_CREATE = 1,
  LC_GOP_ADD = 2,
  LC_GOP_REMOVE = 3,
  LC_GOP_RENAME = 4
};

typedef struct {
  uint8_t group[LC_GROUP_ID_BYTES];
  uint8_t author[LC_KEY_BYTES];
  uint64_t lamport, sent_ms;
  int kind;
  uint8_t target[LC_KEY_BYTES]; /* ADD, REMOVE; zeros otherwise */
  const char *name;             /* CREATE, RENAME */
  size_t name_len;
  uint8_t nonce[16];      /* CREATE: group = BLAKE2b(author || nonce) */
  size_t nmembers;        /* CREATE: the first members besides the author */
  const uint8_t *members; /* nmembers * 32 bytes (decode: the caller's
                             array given to lc__gop_decode) */
  uint8_t sig[64];
  size_t signed_len; /* decode */
} lc__gop_wire;

typedef struct {
  uint8_t group[LC_GROUP_ID_BYTES];
  uint8_t author[LC_KEY_BYTES];
  uint64_t seq, lamport, sent_ms;
  const char *text;
  size_t text_len;
  uint8_t sig[64];
  size_t signed_len;
} lc__gmsg_wire;

/* Encode with the signature field last; *signed_len is the length the
 * signature covers (sign it, then copy it into out[len - 64, len)).
 * Returns the length, LC_ETOOBIG, LC_EINVAL. */
int lc__gop_encode(const lc__gop_wire *op, uint8_t *out, size_t cap,
                   size_t *signed_len);
int lc__gop_decode(lc__gop_wire *op, uint8_t (*members)[LC_KEY_BYTES],
                   const uint8_t *buf, size_t len);
int lc__gmsg_encode(const lc__gmsg_wire *m, uint8_t *out, size_t cap,
                    size_t *signed_len);
int lc__gmsg_decode(lc__gmsg_wire *m, const uint8_t *buf, size_t len);

/* ---- relayed messages: the inside of a RELAY's sealed box ----------------
 * [sender bin32, recipient bin32, msg_id bin16, sent_ms uint, text str,
 *  sig bin64], the sender's signature over the bytes before sig. */
typedef struct {
  uint8_t sender[LC_KEY_BYTES];
  uint8_t recipient[LC_KEY_BYTES];
  uint8_t msg_id[LC_MSG_ID_BYTES];
  uint64_t sent_ms;
  const char *text;
  size_t text_len;
  uint8_t sig[64];
  size_t signed_len;
} lc__relay_inner;
#define LC_RELAY_MAX (LC_TEXT_MAX + 512) /* a sealed box */

int lc__relay_inner_encode(const lc__relay_inner *r, uint8_t *out, size_t cap,
                           size_t *signed_len);
int lc__relay_inner_decode(lc__relay_inner *r, const uint8_t *buf, size_t len);

/* 1 if s[0..len) is well-formed UTF-8 (no overlongs, no surrogates). */
int lc__utf8_valid(const char *s, size_t len);

#endif /* LC_WIRE_H */
