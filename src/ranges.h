/* ranges.h: a sorted set of disjoint half-open uint64 intervals.  Used for
 * received packet numbers (ACK frames), reassembly of chat messages and bulk
 * stream offsets.  Bounded: a set never holds more than max ranges. */
#ifndef LC_RANGES_H
#define LC_RANGES_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint64_t lo, hi; /* [lo, hi) */
} lc__range;

typedef struct {
  lc__range *v; /* ascending, disjoint, non-adjacent */
  size_t n, cap, max;
} lc__rangeset;

void lc__rs_init(lc__rangeset *rs, size_t max_ranges);
void lc__rs_free(lc__rangeset *rs);

/* Adds [lo, hi).  Returns how many values were new (0 for a pure
 * duplicate), LC_ELIMIT if the set would exceed its max ranges, LC_ENOMEM.
 * On error the set is unchanged.  The count saturates at INT32_MAX. */
int64_t lc__rs_add(lc__rangeset *rs, uint64_t lo, uint64_t hi);

/* 1 if every value of [lo, hi) is in the set. */
int lc__rs_contains(const lc__rangeset *rs, uint64_t lo, uint64_t hi);

/* The end of the run of values that starts at x (x itself if x is absent). */
uint64_t lc__rs_run_end(const lc__rangeset *rs, uint64_t x);

/* Forgets every value below x. */
void lc__rs_drop_below(lc__rangeset *rs, uint64_t x);

/* Total number of values in the set. */
uint64_t lc__rs_count(const lc__rangeset *rs);

#endif
