/* media.c: lc_audio_duration, the length of a voice message read from the
 * file itself (WAV/RF64, Ogg Opus, Ogg Vorbis).  Files come from the network,
 * so every field is bounds-checked and every loop and buffer has a limit. */
#include "lanchat.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A WAV file with more chunks than this before its audio is not a voice
 * message; the limit keeps a file of tiny chunks from costing a read each. */
#define MEDIA_WAV_MAX_CHUNKS 1024

/* The largest Ogg page: a 27-byte header, 255 lacing values, 255 * 255 bytes
 * of body. */
#define MEDIA_OGG_PAGE_MAX (27 + 255 + 255 * 255)
/* The end of an Ogg file is read in windows of this size, each one reaching
 * a whole page past the previous, so a page is never split between windows.
 * The last page (complete or cut short) and the one before it fit in one. */
#define MEDIA_OGG_WINDOW (2 * MEDIA_OGG_PAGE_MAX)
/* How far back from the end the last page of the audio stream is looked for
 * (other streams' pages may follow it), and how many candidate pages have
 * their CRC computed: "OggS" is four bytes any packet may contain, and a
 * hostile window can hold thousands of them. */
#define MEDIA_OGG_WINDOWS 8
#define MEDIA_OGG_MAX_CRCS 64

typedef struct {
  int fd;
  uint64_t size;
} media_file;

static uint16_t media_le16(const uint8_t *p) {
  return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t media_le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static uint64_t media_le64(const uint8_t *p) {
  return (uint64_t)media_le32(p) | (uint64_t)media_le32(p + 4) << 32;
}

/* Reads up to len bytes at off, through short reads and EINTR.  Returns the
 * number read (less than len only at the end of the file) or -errno. */
static ssize_t media_read(const media_file *f, void *buf, size_t len,
                          uint64_t off) {
  size_t got = 0;
  if (off >= f->size)
    return 0;
  if (len > f->size - off)
    len = (size_t)(f->size - off);
  while (got < len) {
    ssize_t n =
        pread(f->fd, (uint8_t *)buf + got, len - got, (off_t)(off + got));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    if (n == 0)
      break;
    got += (size_t)n;
  }
  return (ssize_t)got;
}

/* Reads exactly len bytes at off: 0, LC_EINVAL if the file ends first (the
 * header that says they are there is malformed), or -errno. */
static int media_read_all(const media_file *f, void *buf, size_t len,
                          uint64_t off) {
  ssize_t n = media_read(f, buf, len, off);
  if (n < 0)
    return (int)n;
  return (size_t)n == len ? 0 : LC_EINVAL;
}

/* count units at rate per second, in whole milliseconds rounded down,
 * without the overflow of count * 1000. */
static int media_to_ms(uint64_t count, uint64_t rate, uint64_t *ms) {
  if (rate == 0)
    return LC_EINVAL;
  uint64_t whole = count / rate;
  if (whole > UINT64_MAX / 1000)
    return LC_EINVAL;
  /* the remainder is below rate, itself below 2^48 (a WAV block of 65535
   * bytes at 2^32 - 1 per second), so this does not overflow either */
  *ms = whole * 1000 + (count % rate) * 1000 / rate;
  return 0;
}

/* ---- WAV: RIFF (and RF64/BW64) with "fmt " and "data" chunks ---- */

static int media_wav_id_ok(const uint8_t id[4]) {
  for (int i = 0; i < 4; i++)
    if (id[i] < 0x20 || id[i] > 0x7e)
      return 0;
  return 1;
}

/* Bytes of audio per second from a "fmt " chunk's first 16 bytes.  For the
 * uncompressed formats a frame is block_align bytes, which is what a player
 * trusts; a writer that got nAvgBytesPerSec wrong does not change the
 * length.  Compressed ones (ADPCM, GSM, MP3...) have only nAvgBytesPerSec. */
static uint64_t media_wav_byte_rate(const uint8_t fmt[16]) {
  uint16_t tag = media_le16(fmt);
  uint32_t rate = media_le32(fmt + 4);
  uint32_t avg = media_le32(fmt + 8);
  uint16_t align = media_le16(fmt + 12);
  int plain = tag == 1 /* PCM */ || tag == 3 /* IEEE float */ ||
              tag == 6 /* A-law */ || tag == 7 /* mu-law */ ||
              tag == 0xfffe /* WAVE_FORMAT_EXTENSIBLE */;
  if (plain && align != 0 && rate != 0)
    return (uint64_t)align * rate;
  return avg;
}

static int media_wav(const media_file *f, int rf64, uint64_t *duration_ms) {
  uint64_t off = 12, byte_rate = 0, data_size = 0, ds64_data = 0;
  int have_fmt = 0, have_data = 0, have_ds64 = 0, prev_odd = 0;
  for (int n = 0; n < MEDIA_WAV_MAX_CHUNKS; n++) {
    uint8_t h[8];
    if (off > f->size || f->size - off < 8)
      break;
    int rc = media_read_all(f, h, 8, off);
    if (rc != 0)
      return rc;
    /* Some writers leave out the pad byte after an odd-sized chunk; if what
     * follows the pad is no chunk id but what follows the chunk is, the pad
     * is missing. */
    if (prev_odd && !media_wav_id_ok(h)) {
      uint8_t h2[8];
      rc = media_read_all(f, h2, 8, off - 1);
      if (rc != 0)
        return rc;
      if (media_wav_id_ok(h2)) {
        off--;
        memcpy(h, h2, 8);
      }
    }
    uint64_t size = media_le32(h + 4);
    uint64_t body = off + 8, avail = f->size - body;
    if (rf64 && n == 0) {
      /* RF64 (EBU Tech 3306): the first chunk, "ds64", holds the 64-bit
       * sizes that the 32-bit fields mark with 0xFFFFFFFF. */
      uint8_t ds[28];
      if (memcmp(h, "ds64", 4) != 0 || size < 28)
        return LC_EINVAL;
      rc = media_read_all(f, ds, sizeof ds, body);
      if (rc != 0)
        return rc;
      ds64_data = media_le64(ds + 8);
      have_ds64 = 1;
    } else if (memcmp(h, "fmt ", 4) == 0) {
      uint8_t fmt[16];
      if (size < 16)
        return LC_EINVAL;
      rc = media_read_all(f, fmt, sizeof fmt, body);
      if (rc != 0)
        return rc;
      byte_rate = media_wav_byte_rate(fmt);
      if (byte_rate == 0)
        return LC_EINVAL;
      have_fmt = 1;
    } else if (memcmp(h, "data", 4) == 0) {
      int to_end = 0;
      if (size == 0xffffffff && have_ds64)
        size = ds64_data;
      /* A recording cut short, or streamed with a size it never came back
       * to fill in (0xFFFFFFFF): the audio is what the file holds. */
      if (size > avail || (size == 0xffffffff && !have_ds64)) {
        size = avail;
        to_end = 1;
      }
      data_size = size;
      have_data = 1;
      if (have_fmt || to_end)
        break;
    }
    if (have_fmt && have_data)
      break;
    if (size > avail)
      break; /* a chunk past the end of the file: nothing after it */
    prev_odd = (int)(size & 1);
    off = body + size + (size & 1);
  }
  if (!have_fmt || !have_data)
    return LC_EINVAL;
  return media_to_ms(data_size, byte_rate, duration_ms);
}

/* ---- Ogg: the codec from the first packet, the length from the last page
 * ---- */

/* Ogg's CRC-32: polynomial 0x04c11db7, not reflected, initial value 0, no
 * final xor (RFC 3533 6). */
typedef struct {
  uint32_t t[256];
} media_crc;

static void media_crc_init(media_crc *c) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t r = i << 24;
    for (int k = 0; k < 8; k++)
      r = r & 0x80000000u ? r << 1 ^ 0x04c11db7u : r << 1;
    c->t[i] = r;
  }
}

/* The CRC of a whole page, its own CRC field (bytes 22-25) read as zero. */
static uint32_t media_crc_page(const media_crc *c, const uint8_t *p,
                               size_t len) {
  uint32_t r = 0;
  for (size_t i = 0; i < len; i++) {
    uint8_t b = i >= 22 && i < 26 ? 0 : p[i];
    r = r << 8 ^ c->t[(r >> 24 ^ b) & 0xff];
  }
  return r;
}

/* If buf[0..avail) starts with a whole Ogg page, returns its length, else
 * 0.  Checks the structure only, not the CRC. */
static size_t media_ogg_page_len(const uint8_t *buf, size_t avail) {
  if (avail < 27 || memcmp(buf, "OggS", 4) != 0 || buf[4] != 0)
    return 0;
  size_t nseg = buf[26], len = 27 + nseg;
  if (avail < len)
    return 0;
  for (size_t i = 0; i < nseg; i++)
    len += buf[27 + i];
  return avail < len ? 0 : len;
}

typedef struct {
  uint32_t serial;
  uint64_t rate;     /* granule units per second */
  uint64_t pre_skip; /* granule units before the first audible sample */
} media_ogg_stream;

/* The first page: its first packet is the codec's identification header. */
static int media_ogg_first(const media_file *f, const media_crc *crc,
                           uint8_t *buf, media_ogg_stream *s) {
  ssize_t n = media_read(f, buf, 27 + 255, 0);
  if (n < 0)
    return (int)n;
  if (n < 27 || (size_t)n < 27 + (size_t)buf[26])
    return LC_EINVAL;
  size_t len = 27 + (size_t)buf[26];
  for (size_t i = 0; i < buf[26]; i++)
    len += buf[27 + i];
  if (len > (size_t)n) {
    int rc = media_read_all(f, buf + n, len - (size_t)n, (uint64_t)n);
    if (rc != 0)
      return rc;
  }
  len = media_ogg_page_len(buf, len);
  /* the beginning of a stream, not the continuation of a packet */
  if (len == 0 || (buf[5] & 0x03) != 0x02)
    return LC_EINVAL;
  if (media_crc_page(crc, buf, len) != media_le32(buf + 22))
    return LC_EINVAL;
  /* the first packet's length: lacing values up to the first below 255 */
  size_t nseg = buf[26], plen = 0;
  for (size_t i = 0; i < nseg; i++) {
    plen += buf[27 + i];
    if (buf[27 + i] < 255)
      break;
  }
  const uint8_t *p = buf + 27 + nseg;
  s->serial = media_le32(buf + 14);
  if (plen >= 19 && memcmp(p, "OpusHead", 8) == 0) {
    /* RFC 7845 5.1: the version's high nibble is the incompatible part; the
     * granule always counts 48 kHz samples, whatever the input rate. */
    if ((p[8] & 0xf0) != 0 || p[9] == 0)
      return LC_EINVAL;
    s->rate = 48000;
    s->pre_skip = media_le16(p + 10);
    return 0;
  }
  if (plen >= 30 && memcmp(p, "\x01vorbis", 7) == 0) {
    /* Vorbis I 4.2.2: version 0, channels and rate non-zero */
    if (media_le32(p + 7) != 0 || p[11] == 0 || media_le32(p + 12) == 0)
      return LC_EINVAL;
    s->rate = media_le32(p + 12);
    s->pre_skip = 0;
    return 0;
  }
  return LC_EINVAL;
}

/* Searches buf[0..len) backwards for the last whole page of stream s that
 * carries a granule position (a page where no packet ends has -1), among
 * those that start before buf + lim (the rest were seen in the previous
 * window).  Returns 1 and the granule, 0 if there is none, LC_EINVAL when
 * the CRC budget is spent. */
static int media_ogg_scan(const media_crc *crc, const uint8_t *buf, size_t len,
                          size_t lim, const media_ogg_stream *s, int *crcs,
                          uint64_t *granule) {
  if (len < 27)
    return 0;
  if (lim > len - 27 + 1)
    lim = len - 27 + 1;
  for (size_t i = lim; i-- > 0;) {
    if (buf[i] != 'O' || memcmp(buf + i, "OggS", 4) != 0)
      continue;
    const uint8_t *p = buf + i;
    size_t plen = media_ogg_page_len(p, len - i);
    if (plen == 0 || media_le32(p + 14) != s->serial)
      continue;
    uint64_t g = media_le64(p + 6);
    if (g == UINT64_MAX)
      continue;
    if (++*crcs > MEDIA_OGG_MAX_CRCS)
      return LC_EINVAL;
    if (media_crc_page(crc, p, plen) != media_le32(p + 22))
      continue;
    *granule = g;
    return 1;
  }
  return 0;
}

static int media_ogg(const media_file *f, uint64_t *duration_ms) {
  uint8_t *buf = malloc(MEDIA_OGG_WINDOW);
  if (!buf)
    return LC_ENOMEM;
  media_crc crc;
  media_crc_init(&crc);
  media_ogg_stream s = {0};
  int rc = media_ogg_first(f, &crc, buf, &s);
  /* cppcheck-suppress duplicateAssignExpression ; both start at the end */
  uint64_t end = f->size, seen = f->size, granule = 0;
  int crcs = 0, found = 0;
  for (int w = 0; rc == 0 && !found && w < MEDIA_OGG_WINDOWS; w++) {
    uint64_t start = end > MEDIA_OGG_WINDOW ? end - MEDIA_OGG_WINDOW : 0;
    rc = media_read_all(f, buf, (size_t)(end - start), start);
    if (rc == 0)
      rc = media_ogg_scan(&crc, buf, (size_t)(end - start),
                          (size_t)(seen - start), &s, &crcs, &granule);
    if (rc == 1) {
      found = 1;
      rc = 0;
    }
    if (start == 0)
      break;
    /* the next window ends a whole page after this one starts: a page that
     * began before this window is entirely inside the next */
    end = start + MEDIA_OGG_PAGE_MAX;
    seen = start;
  }
  free(buf);
  if (rc != 0)
    return rc;
  /* granule positions are signed; below the pre-skip there is no audio */
  if (!found || granule > INT64_MAX || granule < s.pre_skip)
    return LC_EINVAL;
  return media_to_ms(granule - s.pre_skip, s.rate, duration_ms);
}

int lc_audio_duration(const char *path, uint64_t *duration_ms) {
  if (!path || !duration_ms)
    return LC_EINVAL;
  /* O_NONBLOCK: a FIFO given as the path must not hang the open */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0)
    return -errno;
  struct stat st;
  media_file f = {fd, 0};
  uint8_t h[12];
  int rc = 0;
  if (fstat(fd, &st) != 0)
    rc = -errno;
  else if (S_ISDIR(st.st_mode))
    rc = -EISDIR;
  else if (!S_ISREG(st.st_mode) || st.st_size < 12)
    rc = LC_EINVAL;
  if (rc == 0) {
    f.size = (uint64_t)st.st_size;
    rc = media_read_all(&f, h, sizeof h, 0);
  }
  uint64_t ms = 0;
  if (rc != 0) {
    /* the error is set */
  } else if ((memcmp(h, "RIFF", 4) == 0 || memcmp(h, "RF64", 4) == 0 ||
              memcmp(h, "BW64", 4) == 0) &&
             memcmp(h + 8, "WAVE", 4) == 0) {
    rc = media_wav(&f, memcmp(h, "RIFF", 4) != 0, &ms);
  } else if (memcmp(h, "OggS", 4) == 0) {
    rc = media_ogg(&f, &ms);
  } else {
    rc = LC_EINVAL;
  }
  close(fd);
  if (rc == 0)
    *duration_ms = ms;
  return rc;
}
