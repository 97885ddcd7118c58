/* test_media.c: lc_audio_duration (src/media.c) on WAV, RF64 and Ogg files
 * built here byte by byte (Ogg pages with their real CRC), on malformed and
 * hostile ones, and on thousands of random and mutated files from a fixed
 * seed.  A failing random run prints its seed; LC_TEST_SEED=<n> replays it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "lanchat.h"

/* ---- a growable byte buffer to build files in ---- */

typedef struct {
  uint8_t *p;
  size_t len, cap;
} tm_buf;

static void tm_put(tm_buf *b, const void *data, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n)
      cap *= 2;
    b->p = realloc(b->p, cap);
    assert_non_null(b->p);
    b->cap = cap;
  }
  if (n)
    memcpy(b->p + b->len, data, n);
  b->len += n;
}

static void tm_fill(tm_buf *b, uint8_t byte, size_t n) {
  for (size_t i = 0; i < n; i++)
    tm_put(b, &byte, 1);
}

static void tm_le16(tm_buf *b, uint16_t v) {
  uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
  tm_put(b, x, 2);
}

static void tm_le32(tm_buf *b, uint32_t v) {
  uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16),
                  (uint8_t)(v >> 24)};
  tm_put(b, x, 4);
}

static void tm_le64(tm_buf *b, uint64_t v) {
  tm_le32(b, (uint32_t)v);
  tm_le32(b, (uint32_t)(v >> 32));
}

static void tm_free(tm_buf *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

/* ---- the temporary folder and the one file each case writes ---- */

typedef struct {
  char dir[64];
  char path[96];
} tm_fixture;

static int tm_setup(void **state) {
  tm_fixture *f = calloc(1, sizeof *f);
  if (!f)
    return -1;
  snprintf(f->dir, sizeof f->dir, "/tmp/lc-test-media-XXXXXX");
  if (!mkdtemp(f->dir))
    return -1;
  snprintf(f->path, sizeof f->path, "%s/audio", f->dir);
  *state = f;
  return 0;
}

static int tm_teardown(void **state) {
  tm_fixture *f = *state;
  unlink(f->path);
  rmdir(f->dir);
  free(f);
  return 0;
}

static void tm_write(const tm_fixture *f, const void *data, size_t len) {
  FILE *fp = fopen(f->path, "wb");
  assert_non_null(fp);
  if (len)
    assert_int_equal(fwrite(data, 1, len, fp), len);
  assert_int_equal(fclose(fp), 0);
}

/* Writes the file and returns lc_audio_duration's result; *ms is set to
 * UINT64_MAX first, so a failure that wrote it shows. */
static int tm_duration(const tm_fixture *f, const tm_buf *b, uint64_t *ms) {
  tm_write(f, b->p, b->len);
  *ms = UINT64_MAX;
  int rc = lc_audio_duration(f->path, ms);
  if (rc != 0)
    assert_int_equal(*ms, UINT64_MAX);
  return rc;
}

static void tm_expect_ms(const tm_fixture *f, const tm_buf *b, uint64_t want) {
  uint64_t ms;
  assert_int_equal(tm_duration(f, b, &ms), 0);
  assert_int_equal(ms, want);
}

static void tm_expect_einval(const tm_fixture *f, const tm_buf *b) {
  uint64_t ms;
  assert_int_equal(tm_duration(f, b, &ms), LC_EINVAL);
}

/* ---- WAV ---- */

static void tm_chunk(tm_buf *b, const char id[4], uint32_t size) {
  tm_put(b, id, 4);
  tm_le32(b, size);
}

/* A 16-byte "fmt " chunk body. */
static void tm_fmt(tm_buf *b, uint16_t tag, uint16_t channels, uint32_t rate,
                   uint32_t avg, uint16_t align, uint16_t bits) {
  tm_chunk(b, "fmt ", 16);
  tm_le16(b, tag);
  tm_le16(b, channels);
  tm_le32(b, rate);
  tm_le32(b, avg);
  tm_le16(b, align);
  tm_le16(b, bits);
}

static void tm_riff(tm_buf *b, const char magic[4]) {
  tm_put(b, magic, 4);
  tm_le32(b, 0); /* the RIFF size: never trusted, patched by tm_riff_end */
  tm_put(b, "WAVE", 4);
}

static void tm_riff_end(tm_buf *b) {
  uint32_t size = (uint32_t)(b->len - 8);
  memcpy(b->p + 4,
         (uint8_t[4]){(uint8_t)size, (uint8_t)(size >> 8),
                      (uint8_t)(size >> 16), (uint8_t)(size >> 24)},
         4);
}

/* A plain PCM file: rate Hz, channels, bits per sample, frames of audio. */
static void tm_wav_pcm(tm_buf *b, uint32_t rate, uint16_t channels,
                       uint16_t bits, uint32_t frames) {
  uint16_t align = (uint16_t)(channels * bits / 8);
  tm_riff(b, "RIFF");
  tm_fmt(b, 1, channels, rate, rate * align, align, bits);
  tm_chunk(b, "data", frames * align);
  for (uint32_t i = 0; i < frames * align; i++)
    tm_put(b, (uint8_t[1]){(uint8_t)(i * 7)}, 1);
  tm_riff_end(b);
}

static void test_wav_pcm(void **state) {
  tm_fixture *f = *state;
  tm_buf b = {0};
  /* 8000 Hz mono 16-bit, 1.5 s */
  tm_wav_pcm(&b, 8000, 1, 16, 12000);
  tm_expect_ms(f, &b, 1500);
  tm_free(&b);
  /* 44100 Hz stereo 16-bit, 0.25 s */
  tm_wav_pcm(&b, 44100, 2, 16, 11025);
  tm_expect_ms(f, &b, 250);
  tm_free(&b);
  /* rounded down: 15 bytes at 8000 bytes/s is 1.875 ms */
  tm_riff(&b, "RIFF");
  tm_fmt(&b, 1, 1, 8000, 8000, 1, 8);
  tm_chunk(&b, "data", 15);
  tm_fill(&b, 0x80, 15);
  tm_expect_ms(f, &b, 1);
  tm_free(&b);
  /* an empty data chunk is a zero-length recording */
  tm_riff(&b, "RIFF");
  tm_fmt(&b, 1, 1, 8000, 16000, 2, 16);
  tm_chunk(&b, "data", 0);
  tm_expect_ms(f, &b, 0);
  tm_free(&b);
  /* PCM trusts block_align * rate over a wrong nAvgBytesPerSec */
  tm_riff(&b, "RIFF");
  tm_fmt(&b, 1, 1, 8000, 12345, 2, 16);
  tm_chunk(&b, "data", 16000);
  tm_fill(&b, 0, 16000);
  tm_expect_ms(f, &b, 1000);
  tm_free(&b);
}

/* Odd-sized chunks before the audio, with their pad byte and (as some
 * writers do) without it; "data" before "fmt "; a chunk after "data". */
static void test_wav_chunks(void **state) {
  tm_fixture *f = *state;
  tm_buf b = {0};
  for (int pad = 1; pad >= 0; pad--) {
    tm_riff(&b, "RIFF");
    tm_fmt(&b, 1, 1, 22050, 22050, 1, 8);
    tm_chunk(&b, "LIST", 5);
    tm_put(&b, "INFOx", 5);
    if (pad)
      tm_fill(&b, 0, 1);
    tm_chunk(&b, "fact", 3);
    tm_put(&b, "abc", 3);
    if (pad)
      tm_fill(&b, 0, 1);
    tm_chunk(&b, "data", 11025); /* odd, 0.5 s */
    tm_fill(&b, 0x80, 11025);
    tm_fill(&b, 0, 1);
    tm_chunk(&b, "LIST", 4);
    tm_put(&b, "INFO", 4);
    tm_riff_end(&b);
    tm_expect_ms(f, &b, 500);
    tm_free(&b);
  }
  /* "data" first, "fmt " after it */
  tm_riff(&b, "RIFF");
  tm_chunk(&b, "data", 32000);
  tm_fill(&b, 0, 32000);
  tm_fmt(&b, 1, 2, 8000, 32000, 4, 16);
  tm_expect_ms(f, &b, 1000);
  tm_free(&b);
  /* a longer "fmt " (WAVE_FORMAT_EXTENSIBLE, 48 kHz stereo 24-bit) */
  tm_riff(&b, "RIFF");
  tm_chunk(&b, "fmt ", 40);
  tm_le16(&b, 0xfffe);
  tm_le16(&b, 2);
  tm_le32(&b, 48000);
  tm_le32(&b, 288000);
  tm_le16(&b, 6);
  tm_le16(&b, 24);
  tm_le16(&b, 22);
  tm_le16(&b, 24);
  tm_le32(&b, 3);
  tm_put(&b, "\x01\x00\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71",
         16);
  tm_chunk(&b, "data", 288000 * 2);
  tm_fill(&b, 0, 288000 * 2);
  tm_expect_ms(f, &b, 2000);
  tm_free(&b);
  /* a compressed format (IMA ADPCM): nAvgBytesPerSec is the rate */
  tm_riff(&b, "RIFF");
  tm_chunk(&b, "fmt ", 20);
  tm_le16(&b, 0x11);
  tm_le16(&b, 1);
  tm_le32(&b, 8000);
  tm_le32(&b, 4055);
  tm_le16(&b, 256);
  tm_le16(&b, 4);
  tm_le16(&b, 2);
  tm_le16(&b, 505);
  tm_chunk(&b, "data", 4055 * 4 + 2000);
  tm_fill(&b, 0, 4055 * 4 + 2000);
  tm_expect_ms(f, &b, 4493); /* 18220 * 1000 / 4055 = 4493.2 */
  tm_free(&b);
}

/* A data size that was never filled in, or that says more than the file
 * holds: the audio is what is there. */
static void test_wav_streamed(void **state) {
  tm_fixture *f = *state;
  tm_buf b = {0};
  tm_riff(&b, "RIFF");
  memset(b.p + 4, 0xff, 4);
  tm_fmt(&b, 1, 1, 8000, 16000, 2, 16);
  tm_chunk(&b, "data", 0xffffffff);
  tm_fill(&b, 0, 16000);
  tm_expect_ms(f, &b, 1000);
  tm_free(&b);
  /* cut short: says 2 s, holds 0.75 s */
  tm_riff(&b, "RIFF");
  tm_fmt(&b, 1, 1, 8000, 16000, 2, 16);
  tm_chunk(&b, "data", 32000);
  tm_fill(&b, 0, 12000);
  tm_riff_end(&b);
  tm_expect_ms(f, &b, 750);
  tm_free(&b);
}

/* RF64: the sizes in "ds64". */
static void test_wav_rf64(void **state) {
  tm_fixture *f = *state;
  tm_buf b = {0};
  tm_riff(&b, "RF64");
  memset(b.p + 4, 0xff, 4);
  tm_chunk(&b, "ds64", 28);
  tm_le64(&b, 0);     /* RIFF size */
  tm_le64(&b, 24000); /* data size */
  tm_le64(&b, 12000); /* sample count */
  tm_le32(&b, 0);     /* table length */
  tm_fmt(&b, 1, 1, 8000, 16000, 2, 16);
  tm_chunk(&b, "data", 0xffffffff);
  tm_fill(&b, 0, 24000);
  tm_chunk(&b, "LIST", 4); /* not audio, and not counted */
  tm_put(&b, "INFO", 4);
  tm_expect_ms(f, &b, 1500);
  tm_free(&b);
  /* RF64 without ds64 first */
  tm_riff(&b, "RF64");
  tm_fmt(&b, 1, 1, 8000, 16000, 2, 16);
  tm_chunk(&b, "data", 16000);
  tm_fill(&b, 0, 16000);
  tm_expect_einval(f, &b);
  tm_free(&b);
}

static void test_wav_bad(void **state) {
  tm_fixture *f = *state;
  tm_buf b = {0};
  /* zero byte rate, PCM and compressed */
  tm_riff(&b, "RIFF");
  tm_fmt(&b, 1, 1, 0, 0, 2, 16);
  tm_chunk(&b, "data", 1600);
  tm_fill(&b, 0, 1600);
  tm_expect_einval(f, &b);
  tm_free(&b);
  tm_riff(&b, "RIFF");
  tm_fmt(&b, 0x55, 1, 44100, 0, 1, 0);
  tm_chunk(&b, "data", 1600);
  tm_fill(&b, 0, 1600);
  tm_expect_einval(f, &b);
  tm_free(&b);
  /* a chunk whose size points past the end of the file hides "data" */
  tm_riff(&b, "RIFF");
  tm_fmt(&b, 1, 1, 8000, 16000, 2, 16);
  tm_chunk(&b, "LIST", 0x7ffffff0);
  tm_put(&b, "INFO", 4);
  tm_chunk(&b, "data", 1600);
  tm_fill(&b, 0, 1600);
  tm_expect_einval(f, &b);
  tm_free(&b);
  /* "fmt " that the file ends inside of */
  tm_riff(&b, "RIFF");
  tm_chunk(&b, "fmt ", 16);
  tm_le16(&b, 1);
  tm_le16(&b, 1);
  tm_le32(&b, 8000);
  tm_expect_einval(f, &b);
  tm_free(&b);
  /* "fmt " too short */
  tm_riff(&b, "RIFF");
  tm_chunk(&b, "fmt ", 8);
  tm_le16(&b, 1);
  tm_le16(&b, 1);
  tm_le32(&b, 8000);
  tm_chunk(&b, "data", 1600);
  tm_fill(&b, 0, 1600);
  tm_expect_einval(f, &b);
  tm_free(&b);
  /* no "data", no "fmt " */
  tm_riff(&b, "RIFF");
  tm_fmt(&b, 1, 1, 8000, 16000, 2, 16);
  tm_expect_einval(f, &b);
  tm_free(&b);
  tm_riff(&b, "RIFF");
  tm_chunk(&b, "data", 1600);
  tm_fill(&b, 0, 1600);
  tm_expect_einval(f, &b);
  tm_free(&b);
  /* "data" to the end of the file, "fmt " never seen */
  tm_riff(&b, "RIFF");
  tm_chunk(&b, "data", 0xffffffff);
  tm_fill(&b, 0, 1600);
  tm_fmt(&b, 1, 1, 8000, 16000, 2, 16);
  tm_expect_einval(f, &b);
  tm_free(&b);
  /* the header alone, and less */
  tm_riff(&b, "RIFF");
  tm_expect_einval(f, &b);
  b.len = 5;
  tm_expect_einval(f, &b);
  tm_free(&b);
  /* not WAVE */
  tm_put(&b,
         "RIFF\x04\x00\x00\x00"
         "AVI ",
         12);
  tm_fmt(&b, 1, 1, 8000, 16000, 2, 16);
  tm_chunk(&b, "data", 0);
  tm_expect_einval(f, &b);
  tm_free(&b);
  /* thousands of empty chunks: given up on, in bounded time */
  tm_riff(&b, "RIFF");
  for (int i = 0; i < 5000; i++)
    tm_chunk(&b, "junk", 0);
  tm_fmt(&b, 1, 1, 8000, 16000, 2, 16);
  tm_chunk(&b, "data", 0);
  tm_expect_einval(f, &b);
  tm_free(&b);
}

/* ---- Ogg ---- */

static uint32_t tm_ogg_crc(const uint8_t *p, size_t n) {
  uint32_t r = 0;
  for (size_t i = 0; i < n; i++) {
    r ^= (uint32_t)p[i] << 24;
    for (int k = 0; k < 8; k++)
      r = r & 0x80000000u ? r << 1 ^ 0x04c11db7u : r << 1;
  }
  return r;
}

/* Appends one page holding the given body, laced as one packet per page
 * (continued across pages when over 255 * 255 bytes is never needed here);
 * complete == 0 leaves the packet open (lacing ends in 255). */
static void tm_ogg_page(tm_buf *b, uint8_t flags, uint64_t granule,
                        uint32_t serial, uint32_t seq, const void *body,
                        size_t len) {
  assert_true(len <= 255 * 255);
  size_t start = b->len;
  size_t nseg = len / 255 + 1;
  if (nseg > 255) /* exactly 255 * 255 bytes: an open packet */
    nseg = 255;
  tm_put(b, "OggS", 4);
  tm_put(b, (uint8_t[2]){0, flags}, 2);
  tm_le64(b, granule);
  tm_le32(b, serial);
  tm_le32(b, seq);
  tm_le32(b, 0);
  tm_put(b, (uint8_t[1]){(uint8_t)nseg}, 1);
  for (size_t i = 0; i < nseg; i++) {
    size_t left = len - i * 255;
    tm_put(b, (uint8_t[1]){(uint8_t)(left >= 255 ? 255 : left)}, 1);
  }
  tm_put(b, body, len);
  uint32_t crc = tm_ogg_crc(b->p + start, b->len - start);
  for (int i = 0; i < 4; i++)
    b->p[start + 22 + i] = (uint8_t)(crc >> (8 * i));
}

static void tm_opus_head(tm_buf *h, uint16_t pre_skip) {
  tm_put(h, "OpusHead", 8);
  tm_put(h, (uint8_t[2]){1, 1}, 2); /* version 1, mono */
  tm_le16(h, pre_skip);
  tm_le32(h, 16000);             /* the input rate: not the granule's */
  tm_le16(h, 0);                 /* gain */
  tm_put(h, (uint8_t[1]){0}, 1); /* mapping family */
}

static void tm_vorbis_head(tm_buf *h, uint32_t rate) {
  tm_put(h, "\x01vorbis", 7);
  tm_le32(h, 0);
  tm_put(h, (uint8_t[1]){2}, 1);
  tm_le32(h, rate);
  tm_le32(h, 0);
  tm_le32(h, 128000);
  tm_le32(h, 0);
  tm_put(h, (uint8_t[2]){0xb8, 1}, 2); /* blocksizes, framing */
}

/* A stream: the identification header, a comment page, audio pages whose
 * granules climb to final, the last one with the EOS flag. */
static void tm_ogg_stream(tm_buf *b, const tm_buf *head, uint32_t serial,
                          uint64_t first_audio, uint64_t final, int pages,
                          size_t page_bytes) {
  uint8_t *body = malloc(page_bytes ? page_bytes : 1);
  assert_non_null(body);
  for (size_t i = 0; i < page_bytes; i++)
    body[i] = (uint8_t)(i * 31 + 7);
  uint32_t seq = 0;
  tm_ogg_page(b, 0x02, 0, serial, seq++, head->p, head->len);
  tm_ogg_page(b, 0, 0, serial, seq++, "OpusTags\0\0\0\0\0\0\0\0", 16);
  for (int i = 1; i <= pages; i++) {
    /* the last page exactly final; no product that could overflow */
    uint64_t g = i == pages ? final
                            : first_audio + (final - first_audio) /
                                                (uint64_t)pages * (uint64_t)i;
    tm_ogg_page(b, i == pages ? 0x04 : 0, g, serial, seq++, body, page_bytes);
  }
  free(body);
}

static void test_ogg_opus(void **state) {
  tm_fixture *f = *state;
  tm_buf b = {0}, head = {0};
  tm_opus_head(&head, 312);
  tm_ogg_stream(&b, &head, 0x1234, 312, 48000 * 7 + 312, 50, 400);
  tm_expect_ms(f, &b, 7000);
  /* a page with no granule (-1: no packet ends on it) and another
   * stream's page after the last one are passed over */
  tm_ogg_page(&b, 0, UINT64_MAX, 0x1234, 99, "x", 1);
  tm_ogg_page(&b, 0, 999999999, 0x9999, 0, "y", 1);
  tm_expect_ms(f, &b, 7000);
  /* a last page cut short: the one before it counts */
  size_t whole = b.len;
  tm_ogg_page(&b, 0, 48000 * 9 + 312, 0x1234, 100, "zzzzzzzz", 8);
  b.len -= 3;
  tm_expect_ms(f, &b, 7000);
  /* an "OggS" inside audio data, claiming a later granule, fails its CRC */
  b.len = whole;
  {
    tm_buf fake = {0}, body = {0};
    tm_ogg_page(&fake, 0, 48000 * 60 + 312, 0x1234, 101, "fake", 4);
    fake.p[22] ^= 1;
    tm_fill(&body, 0xa5, 100);
    tm_put(&body, fake.p, fake.len);
    tm_fill(&body, 0x5a, 3);
    tm_ogg_page(&b, 0, 48000 * 8 + 312, 0x1234, 102, body.p, body.len);
    tm_expect_ms(f, &b, 8000);
    tm_free(&fake);
    tm_free(&body);
  }
  tm_free(&b);
  /* pre-skip 0, an exact remainder rounded down: 47999 samples */
  tm_free(&head);
  tm_opus_head(&head, 0);
  tm_ogg_stream(&b, &head, 7, 0, 47999, 3, 100);
  tm_expect_ms(f, &b, 999);
  tm_free(&b);
  /* the last page of the stream far from the end: over 128 KiB of another
   * stream's pages follow it */
  tm_free(&head);
  tm_opus_head(&head, 312);
  tm_ogg_stream(&b, &head, 0x1234, 312, 48000 * 5 + 312, 10, 4000);
  {
    uint8_t *big = calloc(1, 60000);
    assert_non_null(big);
    for (uint32_t i = 0; i < 6; i++)
      tm_ogg_page(&b, 0, 1000 * (i + 1), 0x4321, i, big, 60000);
    free(big);
  }
  tm_expect_ms(f, &b, 5000);
  tm_free(&b);
  tm_free(&head);
}

static void test_ogg_vorbis(void **state) {
  tm_fixture *f = *state;
  tm_buf b = {0}, head = {0};
  tm_vorbis_head(&head, 44100);
  tm_ogg_stream(&b, &head, 0xabcdef01, 0, 44100 * 3, 20, 1000);
  tm_expect_ms(f, &b, 3000);
  tm_free(&b);
  /* the pages of one big packet: only the last carries the granule */
  {
    uint8_t *big = calloc(1, 255 * 255);
    assert_non_null(big);
    uint32_t seq = 0;
    tm_ogg_page(&b, 0x02, 0, 5, seq++, head.p, head.len);
    tm_ogg_page(&b, 0, 44100 * 2, 5, seq++, big, 1000);
    tm_ogg_page(&b, 0, UINT64_MAX, 5, seq++, big, 255 * 255);
    tm_ogg_page(&b, 0x01, UINT64_MAX, 5, seq++, big, 255 * 255);
    tm_ogg_page(&b, 0x05, 44100 * 4 + 22050, 5, seq++, big, 10);
    free(big);
  }
  tm_expect_ms(f, &b, 4500);
  tm_free(&b);
  tm_free(&head);
}

static void test_ogg_bad(void **state) {
  tm_fixture *f = *state;
  tm_buf b = {0}, head = {0};
  /* a final granule below the pre-skip */
  tm_opus_head(&head, 312);
  tm_ogg_stream(&b, &head, 1, 100, 200, 3, 100);
  tm_expect_einval(f, &b);
  tm_free(&b);
  /* a negative granule */
  tm_ogg_stream(&b, &head, 1, 312, (uint64_t)1 << 63, 3, 100);
  tm_expect_einval(f, &b);
  tm_free(&b);
  /* the first page's CRC wrong */
  tm_ogg_stream(&b, &head, 1, 312, 48312, 3, 100);
  b.p[22] ^= 0x10;
  tm_expect_einval(f, &b);
  tm_free(&b);
  /* the first page not the beginning of a stream */
  tm_ogg_page(&b, 0, 0, 1, 0, head.p, head.len);
  tm_ogg_page(&b, 0x04, 48312, 1, 1, "a", 1);
  tm_expect_einval(f, &b);
  tm_free(&b);
  /* the first page cut short, in its header, its lacing, its body */
  tm_ogg_stream(&b, &head, 1, 312, 48312, 3, 100);
  size_t cuts[] = {4, 20, 27, 28, 40};
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
    b.len = cuts[i];
    tm_expect_einval(f, &b);
  }
  tm_free(&b);
  tm_free(&head);
  /* an identification header too short, or of an unknown codec */
  tm_put(&head, "OpusHead\x01\x01\x38", 11);
  tm_ogg_stream(&b, &head, 1, 312, 48312, 3, 100);
  tm_expect_einval(f, &b);
  tm_free(&b);
  tm_free(&head);
  tm_put(&head, "Speex   1.2rc1\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
         36);
  tm_ogg_stream(&b, &head, 1, 0, 48000, 3, 100);
  tm_expect_einval(f, &b);
  tm_free(&b);
  tm_free(&head);
  /* an Opus version this does not know (high nibble set) */
  tm_opus_head(&head, 312);
  head.p[8] = 0x10;
  tm_ogg_stream(&b, &head, 1, 312, 48312, 3, 100);
  tm_expect_einval(f, &b);
  tm_free(&b);
  tm_free(&head);
  /* Vorbis with a rate of 0, or no channels */
  tm_vorbis_head(&head, 0);
  tm_ogg_stream(&b, &head, 1, 0, 44100, 3, 100);
  tm_expect_einval(f, &b);
  tm_free(&b);
  tm_free(&head);
  tm_vorbis_head(&head, 44100);
  head.p[11] = 0;
  tm_ogg_stream(&b, &head, 1, 0, 44100, 3, 100);
  tm_expect_einval(f, &b);
  tm_free(&b);
  tm_free(&head);
  /* every page at the end is another stream's */
  tm_vorbis_head(&head, 44100);
  tm_ogg_page(&b, 0x02, 0, 1, 0, head.p, head.len);
  for (uint32_t i = 0; i < 50; i++)
    tm_ogg_page(&b, 0, 44100 * i, 2, i, "abcd", 4);
  tm_expect_ms(f, &b, 0); /* the header page itself, at granule 0 */
  tm_free(&b);
  /* hundreds of pages of the stream, each with a bad CRC: a bounded search,
   * then an error */
  tm_ogg_page(&b, 0x02, 0, 1, 0, head.p, head.len);
  size_t first = b.len;
  {
    uint8_t *body = calloc(1, 60000);
    assert_non_null(body);
    tm_ogg_page(&b, 0, 44100, 1, 1, body, 60000);
    free(body);
  }
  for (uint32_t i = 0; i < 2000; i++) {
    size_t at = b.len;
    tm_ogg_page(&b, 0, 44100 * 2, 1, i + 2, "q", 1);
    b.p[at + 22] ^= 0xff;
  }
  tm_expect_einval(f, &b);
  (void)first;
  tm_free(&b);
  tm_free(&head);
}

/* ---- anything else ---- */

static void test_files(void **state) {
  tm_fixture *f = *state;
  tm_buf b = {0};
  uint64_t ms = 42;
  /* empty, and a few bytes of nothing known */
  tm_expect_einval(f, &b);
  tm_put(&b, "ID3\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 14);
  tm_expect_einval(f, &b);
  tm_free(&b);
  /* missing, a folder, a FIFO (which must not hang the open) */
  char p[128];
  snprintf(p, sizeof p, "%s/missing.wav", f->dir);
  assert_int_equal(lc_audio_duration(p, &ms), -ENOENT);
  assert_int_equal(lc_audio_duration(f->dir, &ms), -EISDIR);
  snprintf(p, sizeof p, "%s/fifo", f->dir);
  assert_int_equal(mkfifo(p, 0600), 0);
  assert_int_equal(lc_audio_duration(p, &ms), LC_EINVAL);
  unlink(p);
  assert_int_equal(ms, 42);
  /* NULL arguments */
  assert_int_equal(lc_audio_duration(NULL, &ms), LC_EINVAL);
  assert_int_equal(lc_audio_duration(f->dir, NULL), LC_EINVAL);
}

/* xorshift64*: the same files on every machine for a given seed */
static uint64_t tm_rand(uint64_t *s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 0x2545f4914f6cdd1dull;
}

/* Random bytes, random bytes behind a known magic, and valid files with
 * bytes changed, cut or both: each one gives a duration or LC_EINVAL, and
 * under the sanitizers, no bad read. */
static void test_random(void **state) {
  tm_fixture *f = *state;
  uint64_t seed = 20240611;
  const char *env = getenv("LC_TEST_SEED");
  if (env)
    seed = strtoull(env, NULL, 10);
  printf("test_random: seed %llu\n", (unsigned long long)seed);
  uint64_t s = seed | 1;
  tm_buf wav = {0}, opus = {0}, vorbis = {0}, head = {0}, b = {0};
  tm_wav_pcm(&wav, 8000, 1, 16, 400);
  tm_opus_head(&head, 312);
  tm_ogg_stream(&opus, &head, 3, 312, 48312, 4, 300);
  tm_free(&head);
  tm_vorbis_head(&head, 44100);
  tm_ogg_stream(&vorbis, &head, 4, 0, 44100, 4, 300);
  tm_free(&head);
  const tm_buf *valid[] = {&wav, &opus, &vorbis};
  int ok = 0, einval = 0;
  for (int n = 0; n < 3000; n++) {
    b.len = 0;
    uint64_t kind = tm_rand(&s) % 4;
    if (kind < 2) {
      size_t len = (size_t)(tm_rand(&s) % 4096);
      if (kind == 1) { /* a plausible start, then noise */
        int riff = (int)(tm_rand(&s) & 1);
        tm_put(&b, riff ? "RIFF\xff\xff\xff\xffWAVE" : "OggS\0\2",
               riff ? 12 : 6);
      }
      for (size_t i = 0; i < len; i++)
        tm_put(&b, (uint8_t[1]){(uint8_t)tm_rand(&s)}, 1);
    } else {
      const tm_buf *v = valid[tm_rand(&s) % 3];
      tm_put(&b, v->p, v->len);
      int changes = (int)(tm_rand(&s) % 8);
      for (int i = 0; i < changes; i++)
        b.p[tm_rand(&s) % b.len] = (uint8_t)tm_rand(&s);
      if (kind == 3)
        b.len = (size_t)(tm_rand(&s) % (b.len + 1));
    }
    uint64_t ms;
    int rc = tm_duration(f, &b, &ms);
    if (rc != 0 && rc != LC_EINVAL)
      fail_msg("seed %llu, file %d: %d", (unsigned long long)seed, n, rc);
    rc == 0 ? ok++ : einval++;
  }
  printf("test_random: %d durations, %d LC_EINVAL\n", ok, einval);
  assert_true(ok > 0 && einval > 0);
  tm_free(&wav);
  tm_free(&opus);
  tm_free(&vorbis);
  tm_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_wav_pcm, tm_setup, tm_teardown),
      cmocka_unit_test_setup_teardown(test_wav_chunks, tm_setup, tm_teardown),
      cmocka_unit_test_setup_teardown(test_wav_streamed, tm_setup, tm_teardown),
      cmocka_unit_test_setup_teardown(test_wav_rf64, tm_setup, tm_teardown),
      cmocka_unit_test_setup_teardown(test_wav_bad, tm_setup, tm_teardown),
      cmocka_unit_test_setup_teardown(test_ogg_opus, tm_setup, tm_teardown),
      cmocka_unit_test_setup_teardown(test_ogg_vorbis, tm_setup, tm_teardown),
      cmocka_unit_test_setup_teardown(test_ogg_bad, tm_setup, tm_teardown),
      cmocka_unit_test_setup_teardown(test_files, tm_setup, tm_teardown),
      cmocka_unit_test_setup_teardown(test_random, tm_setup, tm_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
