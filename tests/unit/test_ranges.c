/* test_ranges.c: the interval set of src/ranges.h, by hand-picked cases and
 * by a seeded random walk checked against a plain bitmap.  A failing random
 * run prints its seed; LC_TEST_SEED=<n> replays that one seed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lanchat.h"
#include "ranges.h"

/* Asserts that the set holds exactly the given ranges, in order. */
static void ranges_expect(const lc__rangeset *rs, const uint64_t *pairs,
                          size_t npairs) {
  assert_int_equal(rs->n, npairs);
  for (size_t i = 0; i < npairs; i++) {
    assert_int_equal(rs->v[i].lo, pairs[2 * i]);
    assert_int_equal(rs->v[i].hi, pairs[2 * i + 1]);
  }
}

#define EXPECT(rs, ...)                                                        \
  do {                                                                         \
    const uint64_t want_[] = {__VA_ARGS__};                                    \
    ranges_expect((rs), want_, sizeof want_ / sizeof want_[0] / 2);            \
  } while (0)

static void test_empty(void **state) {
  (void)state;
  lc__rangeset rs;
  lc__rs_init(&rs, 16);
  assert_int_equal(rs.n, 0);
  assert_int_equal(lc__rs_count(&rs), 0);
  assert_false(lc__rs_contains(&rs, 0, 1));
  assert_true(lc__rs_contains(&rs, 5, 5)); /* an empty range is contained */
  assert_int_equal(lc__rs_run_end(&rs, 7), 7);
  lc__rs_drop_below(&rs, 100);
  assert_int_equal(rs.n, 0);
  /* empty and inverted ranges add nothing */
  assert_int_equal(lc__rs_add(&rs, 10, 10), 0);
  assert_int_equal(lc__rs_add(&rs, 10, 3), 0);
  assert_int_equal(rs.n, 0);
  lc__rs_free(&rs);
  lc__rs_free(&rs); /* freeing twice is harmless */
}

static void test_add_and_duplicates(void **state) {
  (void)state;
  lc__rangeset rs;
  lc__rs_init(&rs, 16);
  assert_int_equal(lc__rs_add(&rs, 10, 20), 10);
  EXPECT(&rs, 10, 20);
  assert_int_equal(lc__rs_add(&rs, 10, 20), 0);
  assert_int_equal(lc__rs_add(&rs, 12, 15), 0);
  assert_int_equal(lc__rs_add(&rs, 19, 20), 0);
  EXPECT(&rs, 10, 20);
  /* disjoint ranges stay separate and sorted, whatever the insert order */
  assert_int_equal(lc__rs_add(&rs, 40, 50), 10);
  assert_int_equal(lc__rs_add(&rs, 0, 5), 5);
  assert_int_equal(lc__rs_add(&rs, 30, 31), 1);
  EXPECT(&rs, 0, 5, 10, 20, 30, 31, 40, 50);
  assert_int_equal(lc__rs_count(&rs), 26);
  lc__rs_free(&rs);
}

static void test_merge_adjacent(void **state) {
  (void)state;
  lc__rangeset rs;
  lc__rs_init(&rs, 16);
  assert_int_equal(lc__rs_add(&rs, 10, 20), 10);
  /* touching on the left and on the right merges: [lo, hi) half-open */
  assert_int_equal(lc__rs_add(&rs, 5, 10), 5);
  EXPECT(&rs, 5, 20);
  assert_int_equal(lc__rs_add(&rs, 20, 25), 5);
  EXPECT(&rs, 5, 25);
  /* one apart does not merge */
  assert_int_equal(lc__rs_add(&rs, 26, 30), 4);
  EXPECT(&rs, 5, 25, 26, 30);
  /* filling the single gap bridges both neighbours */
  assert_int_equal(lc__rs_add(&rs, 25, 26), 1);
  EXPECT(&rs, 5, 30);
  /* packet numbers one at a time collapse into one range */
  lc__rs_free(&rs);
  lc__rs_init(&rs, 2);
  for (uint64_t pn = 0; pn < 1000; pn++)
    assert_int_equal(lc__rs_add(&rs, pn, pn + 1), 1);
  EXPECT(&rs, 0, 1000);
  lc__rs_free(&rs);
}

static void test_merge_overlapping(void **state) {
  (void)state;
  lc__rangeset rs;
  lc__rs_init(&rs, 16);
  assert_int_equal(lc__rs_add(&rs, 10, 20), 10);
  assert_int_equal(lc__rs_add(&rs, 15, 30), 10);
  EXPECT(&rs, 10, 30);
  assert_int_equal(lc__rs_add(&rs, 5, 12), 5);
  EXPECT(&rs, 5, 30);
  /* one range swallowing several, counting only the gaps as new */
  assert_int_equal(lc__rs_add(&rs, 40, 50), 10);
  assert_int_equal(lc__rs_add(&rs, 60, 70), 10);
  EXPECT(&rs, 5, 30, 40, 50, 60, 70);
  assert_int_equal(lc__rs_add(&rs, 0, 100), 100 - 25 - 10 - 10);
  EXPECT(&rs, 0, 100);
  /* a range covering the middle ones exactly, ending inside the last */
  lc__rs_free(&rs);
  lc__rs_init(&rs, 16);
  lc__rs_add(&rs, 0, 2);
  lc__rs_add(&rs, 4, 6);
  lc__rs_add(&rs, 8, 10);
  lc__rs_add(&rs, 12, 14);
  assert_int_equal(lc__rs_add(&rs, 4, 13), 4);
  EXPECT(&rs, 0, 2, 4, 14);
  lc__rs_free(&rs);
}

static void test_limit(void **state) {
  (void)state;
  lc__rangeset rs;
  lc__rs_init(&rs, 3);
  assert_int_equal(lc__rs_add(&rs, 0, 1), 1);
  assert_int_equal(lc__rs_add(&rs, 10, 11), 1);
  assert_int_equal(lc__rs_add(&rs, 20, 21), 1);
  /* a fourth separate range is refused and the set is unchanged */
  assert_int_equal(lc__rs_add(&rs, 30, 31), LC_ELIMIT);
  assert_int_equal(lc__rs_add(&rs, 5, 6), LC_ELIMIT);
  EXPECT(&rs, 0, 1, 10, 11, 20, 21);
  assert_int_equal(lc__rs_count(&rs), 3);
  /* extending or merging never needs a new slot, so it still works */
  assert_int_equal(lc__rs_add(&rs, 1, 3), 2);
  assert_int_equal(lc__rs_add(&rs, 21, 25), 4);
  assert_int_equal(lc__rs_add(&rs, 0, 25), 25 - 3 - 1 - 5);
  EXPECT(&rs, 0, 25);
  /* and the slots freed by merging can be used again */
  assert_int_equal(lc__rs_add(&rs, 30, 31), 1);
  assert_int_equal(lc__rs_add(&rs, 40, 41), 1);
  assert_int_equal(lc__rs_add(&rs, 50, 51), LC_ELIMIT);
  EXPECT(&rs, 0, 25, 30, 31, 40, 41);
  lc__rs_free(&rs);

  /* max 0 is taken as 1: a set can always hold one range */
  lc__rs_init(&rs, 0);
  assert_int_equal(lc__rs_add(&rs, 7, 9), 2);
  assert_int_equal(lc__rs_add(&rs, 1, 2), LC_ELIMIT);
  EXPECT(&rs, 7, 9);
  lc__rs_free(&rs);
}

static void test_contains(void **state) {
  (void)state;
  lc__rangeset rs;
  lc__rs_init(&rs, 16);
  lc__rs_add(&rs, 10, 20);
  lc__rs_add(&rs, 30, 40);
  assert_true(lc__rs_contains(&rs, 10, 20));
  assert_true(lc__rs_contains(&rs, 10, 11));
  assert_true(lc__rs_contains(&rs, 19, 20));
  assert_true(lc__rs_contains(&rs, 33, 37));
  assert_false(lc__rs_contains(&rs, 9, 10));
  assert_false(lc__rs_contains(&rs, 9, 11));
  assert_false(lc__rs_contains(&rs, 19, 21));
  assert_false(lc__rs_contains(&rs, 20, 21));
  assert_false(lc__rs_contains(&rs, 15, 35)); /* spans the gap */
  assert_false(lc__rs_contains(&rs, 40, 41));
  assert_false(lc__rs_contains(&rs, 0, 5));
  assert_false(lc__rs_contains(&rs, 100, 200));
  lc__rs_free(&rs);
}

static void test_run_end(void **state) {
  (void)state;
  lc__rangeset rs;
  lc__rs_init(&rs, 16);
  lc__rs_add(&rs, 0, 5);
  lc__rs_add(&rs, 10, 20);
  assert_int_equal(lc__rs_run_end(&rs, 0), 5);
  assert_int_equal(lc__rs_run_end(&rs, 4), 5);
  assert_int_equal(lc__rs_run_end(&rs, 5), 5); /* absent */
  assert_int_equal(lc__rs_run_end(&rs, 7), 7); /* absent, in a gap */
  assert_int_equal(lc__rs_run_end(&rs, 10), 20);
  assert_int_equal(lc__rs_run_end(&rs, 19), 20);
  assert_int_equal(lc__rs_run_end(&rs, 20), 20); /* absent, just past */
  assert_int_equal(lc__rs_run_end(&rs, 1000), 1000);
  /* filling the gap extends the run from the start */
  lc__rs_add(&rs, 5, 10);
  assert_int_equal(lc__rs_run_end(&rs, 0), 20);
  lc__rs_free(&rs);
}

static void test_drop_below(void **state) {
  (void)state;
  lc__rangeset rs;
  lc__rs_init(&rs, 16);
  lc__rs_add(&rs, 10, 20);
  lc__rs_add(&rs, 30, 40);
  lc__rs_add(&rs, 50, 60);
  lc__rs_drop_below(&rs, 0);
  EXPECT(&rs, 10, 20, 30, 40, 50, 60);
  lc__rs_drop_below(&rs, 10);
  EXPECT(&rs, 10, 20, 30, 40, 50, 60);
  lc__rs_drop_below(&rs, 15); /* cuts into the first range */
  EXPECT(&rs, 15, 20, 30, 40, 50, 60);
  lc__rs_drop_below(&rs, 20); /* exactly at its end: gone */
  EXPECT(&rs, 30, 40, 50, 60);
  lc__rs_drop_below(&rs, 45); /* inside a gap */
  EXPECT(&rs, 50, 60);
  assert_int_equal(lc__rs_count(&rs), 10);
  /* dropped values can be added again and count as new */
  assert_int_equal(lc__rs_add(&rs, 0, 60), 50);
  EXPECT(&rs, 0, 60);
  lc__rs_drop_below(&rs, 1000);
  assert_int_equal(rs.n, 0);
  assert_int_equal(lc__rs_count(&rs), 0);
  lc__rs_free(&rs);
}

static void test_large_values(void **state) {
  (void)state;
  lc__rangeset rs;
  lc__rs_init(&rs, 4);
  /* the returned count saturates; the set itself is exact */
  assert_int_equal(lc__rs_add(&rs, 0, UINT64_MAX), INT32_MAX);
  assert_true(lc__rs_count(&rs) == UINT64_MAX);
  assert_true(lc__rs_contains(&rs, UINT64_MAX - 1, UINT64_MAX));
  assert_true(lc__rs_run_end(&rs, 12345) == UINT64_MAX);
  assert_int_equal(lc__rs_add(&rs, 5, 1000), 0);
  lc__rs_free(&rs);

  lc__rs_init(&rs, 4);
  uint64_t big = (uint64_t)1 << 40;
  assert_int_equal(lc__rs_add(&rs, big, big + 100), 100);
  assert_int_equal(lc__rs_add(&rs, big - 50, big + 50), 50);
  EXPECT(&rs, big - 50, big + 100);
  lc__rs_drop_below(&rs, big);
  EXPECT(&rs, big, big + 100);
  lc__rs_free(&rs);
}

/* ---- randomized comparison against a bitmap ---- */

#define UNIVERSE 160
#define RANDOM_OPS 10000

static uint64_t ranges_rng(uint64_t *s) {
  /* splitmix64: the same sequence on every platform and libc */
  uint64_t z = (*s += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

/* Number of maximal runs of set bits in the model. */
static size_t model_runs(const unsigned char *m) {
  size_t runs = 0;
  for (size_t i = 0; i < UNIVERSE; i++)
    if (m[i] && (i == 0 || !m[i - 1]))
      runs++;
  return runs;
}

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond))                                                               \
      fail_msg("seed %llu, op %d: %s (replay with LC_TEST_SEED=%llu)",         \
               (unsigned long long)seed, op, #cond, (unsigned long long)seed); \
  } while (0)

/* The set must equal the model exactly: same values, and stored as sorted,
 * disjoint, non-adjacent ranges (so the range count equals the run count). */
static void ranges_check_model(const lc__rangeset *rs, const unsigned char *m,
                               uint64_t seed, int op) {
  CHECK(rs->n <= rs->max);
  CHECK(rs->n == model_runs(m));
  uint64_t count = 0;
  for (size_t i = 0; i < rs->n; i++) {
    CHECK(rs->v[i].lo < rs->v[i].hi);
    CHECK(rs->v[i].hi <= UNIVERSE);
    if (i > 0)
      CHECK(rs->v[i - 1].hi < rs->v[i].lo);
    for (uint64_t x = rs->v[i].lo; x < rs->v[i].hi; x++)
      CHECK(m[x]);
    count += rs->v[i].hi - rs->v[i].lo;
  }
  uint64_t model_count = 0;
  for (size_t i = 0; i < UNIVERSE; i++)
    model_count += m[i];
  CHECK(count == model_count);
  CHECK(lc__rs_count(rs) == model_count);
}

static void ranges_random_run(uint64_t seed) {
  uint64_t s = seed;
  unsigned char m[UNIVERSE] = {0};
  static const size_t maxes[] = {1, 3, 8, 1000};
  size_t max = maxes[seed % 4];
  lc__rangeset rs;
  lc__rs_init(&rs, max);
  int limits = 0, op;

  for (op = 0; op < RANDOM_OPS; op++) {
    uint64_t r = ranges_rng(&s);
    uint64_t lo = ranges_rng(&s) % UNIVERSE;
    uint64_t len = ranges_rng(&s) % 12;
    uint64_t hi = lo + len > UNIVERSE ? UNIVERSE : lo + len;
    switch (r % 16) {
    case 0: { /* forget a prefix */
      lc__rs_drop_below(&rs, lo);
      memset(m, 0, lo);
      break;
    }
    case 1: { /* run_end */
      uint64_t e = lo;
      while (e < UNIVERSE && m[e])
        e++;
      CHECK(lc__rs_run_end(&rs, lo) == e);
      break;
    }
    case 2:
    case 3: { /* contains */
      int want = 1;
      for (uint64_t x = lo; x < hi; x++)
        want &= m[x];
      CHECK(lc__rs_contains(&rs, lo, hi) == want);
      break;
    }
    default: { /* add */
      unsigned char after[UNIVERSE];
      memcpy(after, m, sizeof m);
      int64_t fresh = 0;
      for (uint64_t x = lo; x < hi; x++) {
        fresh += !after[x];
        after[x] = 1;
      }
      int64_t got = lc__rs_add(&rs, lo, hi);
      if (model_runs(after) > max) {
        /* refused exactly when the result would need too many ranges */
        CHECK(got == LC_ELIMIT);
        limits++;
      } else {
        CHECK(got == fresh);
        memcpy(m, after, sizeof m);
      }
      break;
    }
    }
    ranges_check_model(&rs, m, seed, op);
  }
  /* the small maxima must really have exercised the limit */
  if (max < 1000)
    CHECK(limits > 0);
  lc__rs_free(&rs);
}

static void test_random_against_bitmap(void **state) {
  (void)state;
  const char *env = getenv("LC_TEST_SEED");
  if (env && *env) {
    uint64_t seed = strtoull(env, NULL, 0);
    print_message("ranges: replaying seed %llu\n", (unsigned long long)seed);
    ranges_random_run(seed);
    return;
  }
  /* fixed seeds, so every run is the same; seed % 4 picks the maximum, so
   * each of the four maxima runs twice */
  for (uint64_t seed = 1; seed <= 8; seed++)
    ranges_random_run(seed);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_empty),
      cmocka_unit_test(test_add_and_duplicates),
      cmocka_unit_test(test_merge_adjacent),
      cmocka_unit_test(test_merge_overlapping),
      cmocka_unit_test(test_limit),
      cmocka_unit_test(test_contains),
      cmocka_unit_test(test_run_end),
      cmocka_unit_test(test_drop_below),
      cmocka_unit_test(test_large_values),
      cmocka_unit_test(test_random_against_bitmap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
