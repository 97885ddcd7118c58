/* fuzz_wire.c: libFuzzer harness for the datagram and payload decoders of
 * src/wire.h.  Every input goes to both decoders; whatever decodes must
 * re-encode canonically (no longer than the input, since every field gets its
 * smallest encoding), decode again, and re-encode to the very same bytes.
 * Built with clang -fsanitize=fuzzer by tools/fuzz, and with plain gcc and
 * tests/fuzz/corpus_main.c to replay the committed corpus. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lanchat.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_BUF (LC_DATAGRAM_MAX + 64)

static void fuzz_fail(const char *what, size_t size) {
  fprintf(stderr, "fuzz_wire: %s (input of %zu bytes)\n", what, size);
  abort();
}

static void fuzz_datagram(const uint8_t *data, size_t size) {
  static uint8_t e1[FUZZ_BUF], e2[FUZZ_BUF];
  lc__datagram dg;
  if (lc__wire_decode(&dg, data, size) != 0)
    return;
  int n1 = lc__wire_encode(&dg, e1, sizeof e1);
  if (n1 < 0)
    fuzz_fail("decoded datagram does not encode", size);
  if ((size_t)n1 > size)
    fuzz_fail("canonical datagram longer than its input", size);
  if (dg.type == LC_DG_DATA &&
      lc__wire_data_overhead(dg.u.data.receiver_index, dg.u.data.packet_number,
                             dg.u.data.ciphertext_len) +
              dg.u.data.ciphertext_len !=
          (size_t)n1)
    fuzz_fail("data overhead disagrees with the encoder", size);
  lc__datagram again;
  if (lc__wire_decode(&again, e1, (size_t)n1) != 0)
    fuzz_fail("canonical datagram does not decode", size);
  int n2 = lc__wire_encode(&again, e2, sizeof e2);
  if (n2 != n1 || memcmp(e1, e2, (size_t)n1) != 0)
    fuzz_fail("datagram round trip not byte-identical", size);
}

static const uint8_t **fuzz_frame_data(lc__frame *f, size_t **len) {
  switch (f->type) {
  case LC_FR_MSG:
    *len = &f->u.msg.len;
    return &f->u.msg.data;
  case LC_FR_BULK:
    *len = &f->u.bulk.len;
    return &f->u.bulk.data;
  case LC_FR_UNREL:
    *len = &f->u.unrel.len;
    return &f->u.unrel.data;
  default:
    return NULL;
  }
}

/* Encodes frames as one payload; returns its length or a negative error. */
static int fuzz_payload_encode(lc__frame *frames, size_t n, uint8_t *out,
                               size_t cap, size_t size) {
  lc__payload_writer w;
  lc__payload_init(&w, out, cap);
  for (size_t i = 0; i < n; i++) {
    size_t before = w.len;
    size_t fsize = lc__frame_size(&frames[i]);
    /* the largest data that fits this frame's own size is its data */
    size_t *len;
    if (fuzz_frame_data(&frames[i], &len) != NULL &&
        lc__frame_max_data(&frames[i], fsize) != *len)
      fuzz_fail("frame_max_data disagrees with frame_size", size);
    int rc = lc__payload_add(&w, &frames[i]);
    if (rc < 0)
      return rc;
    if (w.len - before != fsize)
      fuzz_fail("frame_size disagrees with payload_add", size);
  }
  return (int)lc__payload_finish(&w);
}

static void fuzz_payload(const uint8_t *data, size_t size) {
  static uint8_t e1[FUZZ_BUF], e2[FUZZ_BUF];
  static lc__frame fr[LC_FRAMES_MAX], fr2[LC_FRAMES_MAX];
  lc__ack_range r[LC_ACK_RANGES_MAX], r2[LC_ACK_RANGES_MAX];
  size_t n;
  if (lc__payload_decode(data, size, fr, LC_FRAMES_MAX, &n, r) != 0)
    return;
  if (n == 0 || n > LC_FRAMES_MAX)
    fuzz_fail("payload decoded with a bad frame count", size);
  int n1 = fuzz_payload_encode(fr, n, e1, sizeof e1, size);
  if (n1 < 0)
    fuzz_fail("decoded payload does not encode", size);
  if ((size_t)n1 > size)
    fuzz_fail("canonical payload longer than its input", size);
  size_t m;
  if (lc__payload_decode(e1, (size_t)n1, fr2, LC_FRAMES_MAX, &m, r2) != 0 ||
      m != n)
    fuzz_fail("canonical payload does not decode", size);
  int n2 = fuzz_payload_encode(fr2, m, e2, sizeof e2, size);
  if (n2 != n1 || memcmp(e1, e2, (size_t)n1) != 0)
    fuzz_fail("payload round trip not byte-identical", size);
}

/* Discovery datagrams: whatever decodes re-encodes to a body that decodes
 * to the same fields, within the signed length the decoder reported. */
static void fuzz_disc(const uint8_t *data, size_t size) {
  static uint8_t e[FUZZ_BUF];
  lc__disc_datagram dg, again;
  lc__peer_entry entries[LC_PEERS_MAX], entries2[LC_PEERS_MAX];
  if (lc__disc_decode(&dg, data, size, entries) != 0)
    return;
  if (dg.signed_len >= size)
    fuzz_fail("signed length covers the signature", size);
  int n = lc__disc_encode_body(&dg, e, sizeof e);
  if (n < 0)
    fuzz_fail("decoded discovery datagram does not encode", size);
  n = lc__disc_encode_sig(e, sizeof e, (size_t)n, dg.sig);
  if (n < 0 || lc__disc_decode(&again, e, (size_t)n, entries2) != 0)
    fuzz_fail("canonical discovery datagram does not decode", size);
  if (again.type != dg.type || memcmp(again.sig, dg.sig, sizeof dg.sig) != 0)
    fuzz_fail("discovery round trip changed the datagram", size);
  if (dg.type == LC_DG_ANNOUNCE) {
    const lc__announce *a = &dg.u.announce, *b = &again.u.announce;
    if (a->flags != b->flags || a->timestamp_us != b->timestamp_us ||
        a->port != b->port || a->interval_ms != b->interval_ms ||
        a->presence != b->presence || a->caps != b->caps ||
        a->nick_len != b->nick_len || a->status_len != b->status_len ||
        memcmp(a->nick, b->nick, a->nick_len) != 0 ||
        memcmp(a->status, b->status, a->status_len) != 0 ||
        !lc__utf8_valid(a->nick, a->nick_len))
      fuzz_fail("announce round trip changed a field", size);
  } else if (dg.u.peers.nentries != again.u.peers.nentries ||
             memcmp(entries, entries2,
                    dg.u.peers.nentries * sizeof entries[0]) != 0) {
    fuzz_fail("peers round trip changed an entry", size);
  }
}

static void fuzz_chat(const uint8_t *data, size_t size) {
  static uint8_t e[FUZZ_BUF];
  static lc__chat c, again;
  static lc__wire_file files[LC_TRANSFER_FILES_MAX];
  if (lc__chat_decode(&c, data, size) != 0)
    return;
  if (!lc__utf8_valid(c.text, c.text_len))
    fuzz_fail("chat text is not UTF-8", size);
  if (c.kind == LC_CHAT_FILE) {
    /* an offer: its list, which the decoder checked, decodes whole */
    if (lc__wire_files_decode(c.blob, c.blob_len, files,
                              LC_TRANSFER_FILES_MAX) != (int)c.nfiles)
      fuzz_fail("an offer's list does not decode", size);
    c.files = files;
  }
  int n = lc__chat_encode(&c, e, sizeof e);
  if (n < 0 || lc__chat_decode(&again, e, (size_t)n) != 0 ||
      again.kind != c.kind || again.sent_ms != c.sent_ms ||
      again.typing != c.typing ||
      memcmp(again.target, c.target, sizeof c.target) != 0 ||
      again.text_len != c.text_len ||
      (c.text_len && memcmp(again.text, c.text, c.text_len) != 0) ||
      again.nids != c.nids ||
      memcmp(again.ids, c.ids, c.nids * sizeof c.ids[0]) != 0 ||
      again.op != c.op ||
      (c.kind != LC_CHAT_FILE && /* an offer's list: compared below */
       (again.blob_len != c.blob_len ||
        (c.blob_len && memcmp(again.blob, c.blob, c.blob_len) != 0))) ||
      memcmp(again.group, c.group, sizeof c.group) != 0 ||
      again.nops != c.nops || again.nvec != c.nvec ||
      memcmp(again.vec, c.vec, c.nvec * sizeof c.vec[0]) != 0 ||
      memcmp(again.recipient, c.recipient, sizeof c.recipient) != 0 ||
      again.expires_ms != c.expires_ms || again.xkind != c.xkind ||
      again.duration_ms != c.duration_ms || again.nfiles != c.nfiles ||
      again.pos != c.pos || again.stream != c.stream || again.file != c.file ||
      again.has_hash != c.has_hash ||
      memcmp(again.hash, c.hash, sizeof c.hash) != 0 || again.err != c.err)
    fuzz_fail("chat round trip failed", size);
  if (c.kind == LC_CHAT_FILE) {
    static lc__wire_file back[LC_TRANSFER_FILES_MAX];
    if (lc__wire_files_decode(again.blob, again.blob_len, back,
                              LC_TRANSFER_FILES_MAX) != (int)c.nfiles)
      fuzz_fail("an offer's list changed its length", size);
    for (size_t i = 0; i < c.nfiles; i++)
      if (back[i].size != files[i].size ||
          back[i].path_len != files[i].path_len ||
          memcmp(back[i].path, files[i].path, files[i].path_len) != 0)
        fuzz_fail("an offer's list changed", size);
  }
}

/* The signed blobs inside group and relay envelopes: what decodes
 * re-encodes no longer than it came, and a canonical input (one that
 * re-encodes to its own length) to the very same bytes and the same
 * signed span (the signature covers the bytes as they came). */
static void fuzz_blob_check(const char *what, int n, size_t size,
                            const uint8_t *data, const uint8_t *e, size_t sl,
                            size_t signed_len) {
  if (n < 0 || (size_t)n > size)
    fuzz_fail(what, size);
  if ((size_t)n == size && (memcmp(e, data, size) != 0 || sl != signed_len))
    fuzz_fail(what, size);
}

static void fuzz_blobs(const uint8_t *data, size_t size) {
  static uint8_t e[FUZZ_BUF];
  static uint8_t members[LC_GROUP_MEMBERS_MAX][LC_KEY_BYTES];
  size_t sl = 0;
  int n;
  lc__gop_wire op;
  if (lc__gop_decode(&op, members, data, size) == 0) {
    n = lc__gop_encode(&op, e, sizeof e, &sl);
    fuzz_blob_check("group operation round trip failed", n, size, data, e, sl,
                    op.signed_len);
  }
  lc__gmsg_wire m;
  if (lc__gmsg_decode(&m, data, size) == 0) {
    n = lc__gmsg_encode(&m, e, sizeof e, &sl);
    fuzz_blob_check("group message round trip failed", n, size, data, e, sl,
                    m.signed_len);
  }
  lc__relay_inner r;
  if (lc__relay_inner_decode(&r, data, size) == 0) {
    n = lc__relay_inner_encode(&r, e, sizeof e, &sl);
    fuzz_blob_check("relayed message round trip failed", n, size, data, e, sl,
                    r.signed_len);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_datagram(data, size);
  fuzz_payload(data, size);
  fuzz_disc(data, size);
  fuzz_chat(data, size);
  fuzz_blobs(data, size);
  return 0;
}
