/* bench_store.c: lanchat-bench-store, the history figures of the README on
 * a generated history of 1,000,000 messages (200 conversations): stored in
 * batches, then a page of 50, the conversation list with unread counts,
 * and full-text searches, each timed many times (median and 99th
 * percentile).  The reference, measured in the same run on the same file:
 * a lookup of one message by its id.
 *
 *   lanchat-bench-store [MESSAGES]
 *
 * Output: key=value lines (store.*) on stdout, one run; exit status 0 when
 * every figure was measured (tools/bench judges the goals). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "store.h"

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* Words with a skewed frequency, as in real chat. */
#define NWORDS 4000
static char words[NWORDS][12];

static void make_words(void) {
  static const char *const common[] = {"the",    "ok",      "lunch", "meeting",
                                       "report", "thanks",  "yes",   "no",
                                       "today",  "tomorrow"};
  for (int i = 0; i < NWORDS; i++) {
    if (i < 10) {
      snprintf(words[i], sizeof words[i], "%s", common[i]);
      continue;
    }
    int len = 3 + (int)(rng() % 7);
    for (int k = 0; k < len; k++)
      words[i][k] = (char)('a' + rng() % 26);
    words[i][len] = 0;
  }
}

static const char *pick_word(void) {
  /* Zipf-like: the index is the square of a uniform fraction */
  double u = (double)(rng() % 1000000) / 1000000.0;
  return words[(int)(u * u * u * NWORDS) % NWORDS];
}

/* Message ids as the node makes them: the time first (big-endian
 * milliseconds, here one message a millisecond), then random bytes. */
static void bench_msg_id(uint8_t id[LC_MSGID_BYTES], long i) {
  uint64_t ms = 1700000000000ull + (uint64_t)i;
  for (int k = 0; k < 6; k++)
    id[k] = (uint8_t)(ms >> (40 - 8 * k));
  uint64_t r = (uint64_t)i * 0x9e3779b97f4a7c15ull;
  memcpy(id + 6, &r, 8);
  id[14] = (uint8_t)(i >> 3);
  id[15] = 0x77;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

typedef struct {
  double med_ms, p99_ms;
} timing;

static timing summarize(uint64_t *t, size_t n) {
  qsort(t, n, sizeof *t, cmp_u64);
  timing r = {(double)t[n / 2] / 1e6, (double)t[n * 99 / 100] / 1e6};
  return r;
}

int main(int argc, char **argv) {
  long total = argc > 1 ? atol(argv[1]) : 1000000;
  int convs = 200;
  if (total < 10000) {
    fprintf(stderr, "usage: lanchat-bench-store [MESSAGES >= 10000]\n");
    return 2;
  }
  char dir[256];
  if (bench_mkdtemp(dir, sizeof dir, "store") < 0)
    return 2;
  char path[300];
  snprintf(path, sizeof path, "%s/history.db", dir);
  lc__store *s;
  if (lc__store_open(&s, path, NULL) < 0)
    return 2;
  make_words();
  uint8_t peers[200][LC_KEY_BYTES];
  for (int i = 0; i < convs; i++) {
    memset(peers[i], 0, LC_KEY_BYTES);
    peers[i][0] = (uint8_t)i;
    peers[i][1] = 0xbe;
  }

  /* ---- storing, in batches of 10,000 ----
   * Each batch's texts are made first, outside the clock: the figure is
   * the store's, not the text generator's. */
  enum { BATCH = 10000 };
  static char texts[BATCH][256];
  static size_t lens[BATCH];
  uint64_t stored_ns = 0;
  for (long base = 0; base < total; base += BATCH) {
    long end = base + BATCH < total ? base + BATCH : total;
    for (long i = base; i < end; i++) {
      char *text = texts[i - base];
      size_t len = 0;
      int nw = 3 + (int)(rng() % 15);
      for (int w = 0; w < nw && len < sizeof texts[0] - 16; w++)
        len += (size_t)snprintf(text + len, sizeof texts[0] - len, "%s%s",
                                w ? " " : "", pick_word());
      lens[i - base] = len;
    }
    uint64_t t0 = now_ns();
    if (lc__store_begin(s) < 0)
      return 2;
    for (long i = base; i < end; i++) {
      uint8_t id[LC_MSGID_BYTES];
      bench_msg_id(id, i);
      /* conversations come in runs, as in an import or a busy chat */
      static const uint8_t *peer;
      if (i % 20 == 0)
        peer = peers[rng() % (uint64_t)convs];
      uint64_t ms = 1700000000000ull + (uint64_t)i * 1000;
      const char *text = texts[i - base];
      size_t len = lens[i - base];
      int rc =
          (i % 3 == 0)
              ? lc__store_add_outgoing(s, peer, id, ms, ms, text, len, NULL)
              : lc__store_add_incoming(s, peer, id, ms, ms, text, len, NULL);
      if (rc < 0) {
        fprintf(stderr, "store failed at %ld: %s\n", i, lc_strerror(rc));
        return 1;
      }
    }
    if (lc__store_commit(s) < 0)
      return 2;
    stored_ns += now_ns() - t0;
  }
  double insert_s = (double)stored_ns / 1e9;
  double rate = (double)total / insert_s;
  /* most conversations read up to some point: unread counts vary */
  for (int i = 0; i < convs; i++) {
    if (i % 4 == 0)
      continue;
    uint8_t(*ids)[LC_MSGID_BYTES];
    size_t n;
    lc__stored_msg *m;
    size_t k;
    if (lc__store_page(s, peers[i], 0, 30, &m, &k) == 0 && k == 30) {
      lc__store_mark_read(s, peers[i], m[29].id, &ids, &n);
      free(ids);
    }
    lc__store_msgs_free(m, k);
  }

  enum { ROUNDS = 1000 };
  static uint64_t t[ROUNDS];
  /* reference: one message by its id */
  for (int r = 0; r < ROUNDS; r++) {
    long i = (long)(rng() % (uint64_t)total);
    uint8_t id[LC_MSGID_BYTES];
    bench_msg_id(id, i);
    lc__stored_msg m;
    uint64_t a = now_ns();
    if (lc__store_get(s, id, &m) != 1)
      return 1;
    t[r] = now_ns() - a;
    lc__store_msg_clear(&m);
  }
  timing ref = summarize(t, ROUNDS);

  /* a page of 50: the newest, or older than a random message */
  for (int r = 0; r < ROUNDS; r++) {
    const uint8_t *peer = peers[rng() % (uint64_t)convs];
    int64_t before = r % 2 ? (int64_t)(rng() % (uint64_t)total) : 0;
    lc__stored_msg *m;
    size_t k;
    uint64_t a = now_ns();
    if (lc__store_page(s, peer, before, 50, &m, &k) < 0)
      return 1;
    t[r] = now_ns() - a;
    lc__store_msgs_free(m, k);
  }
  timing page = summarize(t, ROUNDS);

  /* a page of 50 stored before a random time */
  for (int r = 0; r < ROUNDS; r++) {
    const uint8_t *peer = peers[rng() % (uint64_t)convs];
    uint64_t before = 1700000000000ull + rng() % (uint64_t)total * 1000;
    lc__stored_msg *m;
    size_t k;
    uint64_t a = now_ns();
    if (lc__store_page_before_time(s, peer, before, 50, &m, &k) < 0)
      return 1;
    t[r] = now_ns() - a;
    lc__store_msgs_free(m, k);
  }
  timing page_time = summarize(t, ROUNDS);

  /* the conversation list with unread counts, and the total */
  for (int r = 0; r < 200; r++) {
    lc__conversation *c;
    size_t k;
    uint64_t a = now_ns();
    if (lc__store_conversations(s, &c, &k) < 0 || k != (size_t)convs)
      return 1;
    int64_t u = lc__store_unread_total(s);
    t[r] = now_ns() - a;
    lc__store_conversations_free(c, k);
    if (u <= 0)
      return 1;
  }
  timing list = summarize(t, 200);

  /* searches: a common word, a rare word, a prefix, two words */
  const char *queries[] = {"lunch", words[3000], "mee*", "report today"};
  timing search[4];
  size_t hits[4];
  for (int q = 0; q < 4; q++) {
    for (int r = 0; r < 50; r++) {
      lc__stored_msg *m;
      size_t k;
      uint64_t a = now_ns();
      if (lc__store_search(s, NULL, queries[q], 50, &m, &k) < 0)
        return 1;
      t[r] = now_ns() - a;
      hits[q] = k;
      lc__store_msgs_free(m, k);
    }
    search[q] = summarize(t, 50);
  }

  lc__store_close(s);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", dir);

    /* store.KEY_p50_ms and store.KEY_p99_ms */
#define TIMING(key, t)                                                         \
  printf("store." key "_p50_ms=%.4f\nstore." key "_p99_ms=%.4f\n", (t).med_ms, \
         (t).p99_ms)
  printf("store.messages_n=%ld\nstore.conversations_n=%d\n", total, convs);
  printf("store.insert_msg_s=%.0f\n", rate);
  TIMING("get", ref);
  TIMING("page", page);
  TIMING("page_time", page_time);
  TIMING("list", list);
  static const char *const qname[4] = {"common", "rare", "prefix", "two"};
  for (int q = 0; q < 4; q++) {
    printf("store.search_%s_p50_ms=%.4f\nstore.search_%s_p99_ms=%.4f\n",
           qname[q], search[q].med_ms, qname[q], search[q].p99_ms);
    printf("store.search_%s_hits_n=%zu\n", qname[q], hits[q]);
  }
#undef TIMING
  fprintf(stderr, "store: %ld messages; the rare word is \"%s\"\n", total,
          queries[1]);
  return 0;
}
