/* ranges.c: sorted disjoint interval sets (see ranges.h).  Linear scans are
 * fine: sets are kept small by their max and by lc__rs_drop_below. */
#include "ranges.h"

#include <stdlib.h>
#include <string.h>

#include "lanchat.h"

void lc__rs_init(lc__rangeset *rs, size_t max_ranges) {
  rs->v = NULL;
  rs->n = rs->cap = 0;
  rs->max = max_ranges ? max_ranges : 1;
}

void lc__rs_free(lc__rangeset *rs) {
  free(rs->v);
  rs->v = NULL;
  rs->n = rs->cap = 0;
}

static uint64_t rs_overlap(const lc__range *r, uint64_t lo, uint64_t hi) {
  uint64_t a = r->lo > lo ? r->lo : lo;
  uint64_t b = r->hi < hi ? r->hi : hi;
  return b > a ? b - a : 0;
}

int64_t lc__rs_add(lc__rangeset *rs, uint64_t lo, uint64_t hi) {
  if (hi <= lo)
    return 0;
  /* first range that ends at or after lo (may merge when adjacent) */
  size_t i = 0;
  while (i < rs->n && rs->v[i].hi < lo)
    i++;
  /* ranges i..j-1 touch or overlap [lo, hi) */
  size_t j = i;
  uint64_t covered = 0;
  while (j < rs->n && rs->v[j].lo <= hi) {
    covered += rs_overlap(&rs->v[j], lo, hi);
    j++;
  }
  uint64_t added = (hi - lo) - covered;
  if (j == i) {
    /* insert a new range at i */
    if (rs->n >= rs->max)
      return LC_ELIMIT;
    if (rs->n == rs->cap) {
      size_t nc = rs->cap ? rs->cap * 2 : 8;
      if (nc > rs->max)
        nc = rs->max;
      lc__range *nv = realloc(rs->v, nc * sizeof *nv);
      if (!nv)
        return LC_ENOMEM;
      rs->v = nv;
      rs->cap = nc;
    }
    memmove(&rs->v[i + 1], &rs->v[i], (rs->n - i) * sizeof *rs->v);
    rs->v[i].lo = lo;
    rs->v[i].hi = hi;
    rs->n++;
  } else {
    uint64_t nlo = rs->v[i].lo < lo ? rs->v[i].lo : lo;
    uint64_t nhi = rs->v[j - 1].hi > hi ? rs->v[j - 1].hi : hi;
    rs->v[i].lo = nlo;
    rs->v[i].hi = nhi;
    memmove(&rs->v[i + 1], &rs->v[j], (rs->n - j) * sizeof *rs->v);
    rs->n -= (j - i - 1);
  }
  return added > INT32_MAX ? INT32_MAX : (int64_t)added;
}

int lc__rs_contains(const lc__rangeset *rs, uint64_t lo, uint64_t hi) {
  if (hi <= lo)
    return 1;
  for (size_t i = 0; i < rs->n; i++) {
    if (rs->v[i].lo <= lo && hi <= rs->v[i].hi)
      return 1;
    if (rs->v[i].lo > lo)
      break;
  }
  return 0;
}

uint64_t lc__rs_run_end(const lc__rangeset *rs, uint64_t x) {
  for (size_t i = 0; i < rs->n; i++) {
    if (rs->v[i].lo <= x && x < rs->v[i].hi)
      return rs->v[i].hi;
    if (rs->v[i].lo > x)
      break;
  }
  return x;
}

void lc__rs_drop_below(lc__rangeset *rs, uint64_t x) {
  size_t k = 0;
  while (k < rs->n && rs->v[k].hi <= x)
    k++;
  if (k) {
    memmove(&rs->v[0], &rs->v[k], (rs->n - k) * sizeof *rs->v);
    rs->n -= k;
  }
  if (rs->n && rs->v[0].lo < x)
    rs->v[0].lo = x;
}

uint64_t lc__rs_count(const lc__rangeset *rs) {
  uint64_t c = 0;
  for (size_t i = 0; i < rs->n; i++)
    c += rs->v[i].hi - rs->v[i].lo;
  return c;
}
