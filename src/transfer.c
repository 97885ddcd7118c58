/* transfer.c: files, folders and voice messages between two nodes.
 *
 * A transfer is an offer (a stored message whose id is the transfer's)
 * and then, once the receiver accepts, one bulk stream of the transport
 * that carries the files one after the other, as a single run of bytes:
 * file i occupies [start[i], start[i+1]).  The receiver drives it: its
 * ACCEPT names the byte it wants next (its contiguous prefix) and the
 * first file whose hash it lacks, and it sends ACCEPT again whenever the
 * session comes back, so both sides resume from what the receiver has,
 * after a disconnect or a restart of either.  The sender answers with
 * START (which stream carries which byte), then the data, and each file's
 * hash once it has read the file.  The receiver hashes what it wrote,
 * compares, and renames a verified file (or a whole folder) from its
 * hidden folder into the downloads folder, never over an existing name.
 *
 * Control messages are transient (a fresh id each): the state lives in
 * the store on both sides, and the last word of a side (DECLINE, CANCEL,
 * DONE) is kept with told = 0 until the peer's node confirmed it.
 */
#define _GNU_SOURCE /* renameat2 */
#include "transfer.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "crypto.h"
#include "ranges.h"
#include "transport.h" /* LC_NEVER */

#define XF_BLOCK (256u * 1024) /* read from the files at once */
/* blocks read per pump: the loop (chat with it) waits no longer */
#define XF_FILL_ROUNDS 8
#define XF_CATCHUP (1024u * 1024)           /* hashed from disk per pump */
#define XF_SAVE_US 1000000ull               /* progress saved this often */
#define XF_SAVE_BYTES (32ull * 1024 * 1024) /* or after this much */
#define XF_EVENT_US 250000ull               /* progress events at most */
#define XF_BLOCKED_US 1000ull               /* a full stream is tried again */
#define XF_RESYNC_US 5000000ull             /* an idle receiver asks again */
#define XF_STALL_US 30000000ull             /* a stream that stopped moving */
#define XF_RETRIES 2                        /* a file that fails its hash */
#define XF_HASHES_INFLIGHT 256
#define XF_RANGES 65536
#define XF_FDS 4
#define XF_WBUF (1024u * 1024) /* received bytes gathered per write */
#define XF_SYNC_LAG                                                            \
  (4u * 1024 * 1024) /* writeback waited for this far                          \
                        behind the newest write */
#define XF_RETIRED 32
#define XF_DEPTH 64                       /* folder depth walked when sending */
#define XF_OFFER_MAX (1024u * 1024 - 256) /* an offer's envelope */
#define XF_CATCHUP_GAP_US 2000ull /* between catch-up slices, streaming */

typedef struct xf {
  struct xf *next;
  lc__xfer_row r;
  uint64_t *start;    /* nfiles + 1 offsets */
  size_t *group;      /* receiver: first file of each file's top-level name */
  size_t *unverified; /* receiver: per group start, files left */

  /* hashing, both sides: file hfile, stream position hpos */
  size_t hfile;
  uint64_t hpos;
  lc__hash_state *hs;

  /* sender */
  int streaming, started, fin_sent, acked_all;
  uint32_t stream;
  uint64_t spos; /* next byte handed to the transport */
  uint8_t *buf;
  size_t blen, boff;
  uint64_t bstart; /* stream position of buf[0] */
  int rfd;
  size_t rfile;
  uint64_t blocked_until;
  size_t hash_next; /* next HASH to send */
  int hash_inflight;
  uint64_t hash_retry_at; /* a send failed: not before then */

  /* receiver */
  int mapped;
  uint32_t rstream;
  uint64_t base; /* transfer position of the stream's byte 0 */
  lc__rangeset rs;
  uint64_t contig;
  int accept_inflight;
  int retries;
  struct {
    int fd;
    size_t file;
  } fds[XF_FDS];
  uint64_t saved_pos, saved_at;
  uint64_t catchup_at; /* hashing from disk resumes then */
  uint8_t *wbuf;       /* contiguous bytes not written yet */
  size_t wlen;
  uint64_t wpos;   /* stream position of wbuf[0] */
  uint64_t synced; /* writeback waited for below this stream position */
  int syncing;     /* a group is being flushed to disk (ops.sync) */
  size_t sync_group;

  /* both */
  uint64_t activity; /* last data moved, or the last ask */
  uint64_t ev_at, ev_bytes, rate, rate_at, rate_bytes;
  int final_inflight;
} xf;

typedef struct {
  uint8_t tid[LC_MSGID_BYTES];
  uint8_t peer[LC_KEY_BYTES];
  uint8_t xid[LC_MSGID_BYTES];
  int op;
  uint32_t stream;
} xf_ctl;

struct lc__xfer {
  lc__store *store;
  char *downloads;
  lc__xfer_ops ops;
  xf *list;
  xf_ctl *ctl;
  size_t nctl, ctl_cap;
  struct {
    uint8_t peer[LC_KEY_BYTES];
    uint32_t stream;
  } retired[XF_RETIRED];
  size_t nretired;
  uint64_t now;
  uint64_t due; /* the pump has nothing to do before */
  lc__xfer_stats st;
  /* a test of crash recovery: LC_FAILPOINT=xfer_place (as a group is
   * about to be renamed into place, where to recorded) or xfer_placed
   * (renamed, not recorded yet) kills the process there, as a power cut
   * would (tests/integration/test_crash_files.c) */
  int failpoint;
};

enum { XF_FP_NONE, XF_FP_PLACE, XF_FP_PLACED };

static void xf_failpoint(const lc__xfer *x, int at) {
  if (x->failpoint == at)
    raise(SIGKILL);
}

/* ---- small helpers ------------------------------------------------------ */

static void xf_log(lc__xfer *x, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void xf_log(lc__xfer *x, int level, const char *fmt, ...) {
  if (!x->ops.log)
    return;
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  x->ops.log(x->ops.user, level, buf);
}

/* Makes room for one more element in *v (n used of *cap, first: the
 * first capacity).  Errors: LC_ENOMEM (*v unchanged). */
static int xf_grow(void **v, size_t *cap, size_t n, size_t elem, size_t first) {
  if (n < *cap)
    return 0;
  size_t c = *cap ? 2 * *cap : first;
  void *nv = realloc(*v, c * elem);
  if (!nv)
    return LC_ENOMEM;
  *v = nv;
  *cap = c;
  return 0;
}

static char *xf_strndup(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (d) {
    memcpy(d, s, n);
    d[n] = 0;
  }
  return d;
}

static char *xf_join(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  char *d = malloc(la + lb + 2);
  if (d) {
    memcpy(d, a, la); // NOLINT(bugprone-not-null-terminated-result): below
    d[la] = '/';
    memcpy(d + la + 1, b, lb + 1);
  }
  return d;
}

static void xf_hex(char *out, const uint8_t *id, size_t n) {
  static const char h[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = h[id[i] >> 4];
    out[2 * i + 1] = h[id[i] & 15];
  }
  out[2 * n] = 0;
}

static int xf_final_state(int s) {
  return s == LC_TRANSFER_DONE || s == LC_TRANSFER_DECLINED ||
         s == LC_TRANSFER_CANCELLED || s == LC_TRANSFER_FAILED;
}

static xf *xf_find(lc__xfer *x, const uint8_t *id) {
  for (xf *t = x->list; t; t = t->next)
    if (memcmp(t->r.id, id, LC_MSGID_BYTES) == 0)
      return t;
  return NULL;
}

/* The file holding stream position pos (the last with start <= pos among
 * non-empty files; nfiles when pos is the end). */
static size_t xf_file_at(const xf *t, uint64_t pos) {
  size_t lo = 0, hi = t->r.nfiles;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (t->start[mid + 1] <= pos)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static int xf_mkdirs(char *path, size_t upto) {
  /* creates every folder of path[0..upto) (0700), component by
   * component */
  for (size_t i = 1; i <= upto; i++) {
    if (i < upto && path[i] != '/')
      continue;
    char c = path[i];
    path[i] = 0;
    int rc = mkdir(path, 0700);
    int e = errno;
    path[i] = c;
    if (rc < 0 && e != EEXIST)
      return -e;
  }
  return 0;
}

static int xf_rm_one(const char *p, const struct stat *sb, int flag,
                     struct FTW *f) {
  (void)sb;
  (void)f;
  if (flag == FTW_DP)
    rmdir(p);
  else
    unlink(p);
  return 0;
}

/* Deletes our hidden folder and everything in it. */
static void xf_rm_tree(const char *dir) {
  if (dir && *dir)
    nftw(dir, xf_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- paths ----------------------------------------------------------------
 */

int lc__xfer_path_safe(const char *path, size_t len) {
  if (!path || len == 0 || len > LC_TRANSFER_PATH_MAX ||
      !lc__utf8_valid(path, len))
    return 0;
  if (len >= 9 && memcmp(path, ".lanchat-", 9) == 0)
    return 0; /* our own hidden folders' names */
  size_t comp = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i == len || path[i] == '/') {
      const char *c = path + i - comp;
      if (comp == 0 || comp > 255 || (comp == 1 && c[0] == '.') ||
          (comp == 2 && c[0] == '.' && c[1] == '.'))
        return 0;
      comp = 0;
      continue;
    }
    unsigned char ch = (unsigned char)path[i];
    if (ch < 0x20 || ch == 0x7f || ch == '\\')
      return 0;
    comp++;
  }
  return 1;
}

/* The length of path's first component. */
static size_t xf_top_len(const char *p, size_t len) {
  const char *s = memchr(p, '/', len);
  return s ? (size_t)(s - p) : len;
}

static int xf_cmp_path(const void *a, const void *b) {
  const lc__xfer_file *const *x = a, *const *y = b;
  return strcmp((*x)->path, (*y)->path);
}

/* Checks an offer's list as a whole: every path safe, none twice, none
 * both a file and a folder, the files sharing a top-level name next to
 * each other.  1 if fine. */
static int xf_list_safe(const lc__xfer_row *r) {
  for (size_t i = 0; i < r->nfiles; i++)
    if (!lc__xfer_path_safe(r->files[i].path, r->files[i].path_len))
      return 0;
  /* duplicates and file/folder clashes: sorted, a path equal to the next
   * or a prefix of it up to a '/' */
  /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
  const lc__xfer_file **v = malloc(r->nfiles * sizeof *v + 1);
  if (!v)
    return 0;
  for (size_t i = 0; i < r->nfiles; i++)
    v[i] = &r->files[i];
  qsort(v, r->nfiles, sizeof *v, xf_cmp_path); // NOLINT: pointers
  int ok = 1;
  for (size_t i = 1; ok && i < r->nfiles; i++) {
    const lc__xfer_file *a = v[i - 1];
    /* "a" and "a/b" sort with only names starting "a" + byte < '/' between
     * them, so look ahead while the prefix holds */
    for (size_t j = i; j < r->nfiles; j++) {
      const lc__xfer_file *b = v[j];
      if (b->path_len < a->path_len ||
          memcmp(a->path, b->path, a->path_len) != 0)
        break;
      if (b->path_len == a->path_len || b->path[a->path_len] == '/') {
        ok = 0;
        break;
      }
    }
  }
  /* in that order too, the files of one top-level name are together: in
   * the offer they must be as well (first and last index, and count) */
  for (size_t i = 0; ok && i < r->nfiles;) {
    size_t tl = xf_top_len(v[i]->path, v[i]->path_len), j = i;
    size_t lo = (size_t)(v[i] - r->files), hi = lo;
    while (j < r->nfiles && xf_top_len(v[j]->path, v[j]->path_len) == tl &&
           memcmp(v[j]->path, v[i]->path, tl) == 0) {
      size_t k = (size_t)(v[j] - r->files);
      lo = k < lo ? k : lo;
      hi = k > hi ? k : hi;
      j++;
    }
    /* a name and the same name + '/...' sort apart only when other names
     * fall between; those are caught as a count mismatch here or below */
    if (hi - lo + 1 != j - i)
      ok = 0;
    i = j;
  }
  free(v);
  return ok;
}

/* ---- what an offer looks like ------------------------------------------- */

static void xf_size_text(char *out, size_t cap, uint64_t b) {
  if (b < 1000)
    snprintf(out, cap, "%" PRIu64 " B", b);
  else if (b < 1000000)
    snprintf(out, cap, "%.1f kB", (double)b / 1e3);
  else if (b < 1000000000)
    snprintf(out, cap, "%.1f MB", (double)b / 1e6);
  else
    snprintf(out, cap, "%.1f GB", (double)b / 1e9);
}

/* The name to show (malloc'd) and the summary that is the offer's text. */
static int xf_describe(lc__xfer_row *r, char **summary) {
  char size[32], buf[600];
  xf_size_text(size, sizeof size, r->total);
  const lc__xfer_file *f = r->nfiles ? &r->files[0] : NULL;
  size_t tl = f ? xf_top_len(f->path, f->path_len) : 0;
  int one_top = 1;
  for (size_t i = 1; i < r->nfiles; i++)
    if (xf_top_len(r->files[i].path, r->files[i].path_len) != tl ||
        memcmp(r->files[i].path, f->path, tl) != 0)
      one_top = 0;
  if (r->kind == LC_TRANSFER_KIND_VOICE) {
    uint64_t s = (r->duration_ms + 500) / 1000;
    r->name = xf_strndup("voice message", 13);
    snprintf(buf, sizeof buf, "voice message, %" PRIu64 ":%02u", s / 60,
             (unsigned)(s % 60));
  } else if (r->nfiles == 1 && tl == f->path_len) {
    r->name = xf_strndup(f->path, f->path_len);
    snprintf(buf, sizeof buf, "%.*s (%s)", (int)(tl > 500 ? 500 : tl), f->path,
             size);
  } else if (one_top && r->nfiles > 0) {
    r->name = xf_strndup(f->path, tl);
    snprintf(buf, sizeof buf, "%.*s/ (%zu file%s, %s)",
             (int)(tl > 500 ? 500 : tl), f->path, r->nfiles,
             r->nfiles == 1 ? "" : "s", size);
  } else {
    char nm[40];
    snprintf(nm, sizeof nm, "%zu files", r->nfiles);
    r->name = xf_strndup(nm, strlen(nm));
    snprintf(buf, sizeof buf, "%zu files (%s)", r->nfiles, size);
  }
  *summary = xf_strndup(buf, strlen(buf));
  if (!r->name || !*summary) {
    free(*summary);
    *summary = NULL;
    return LC_ENOMEM;
  }
  return 0;
}

/* ---- the engine's transfers in memory -------------------------------------
 */

static void xf_close_fds(xf *t) {
  for (int i = 0; i < XF_FDS; i++)
    if (t->fds[i].fd >= 0) {
      close(t->fds[i].fd);
      t->fds[i].fd = -1;
    }
  if (t->rfd >= 0)
    close(t->rfd);
  t->rfd = -1;
}

static int xf_flush(xf *t);

static void xf_free_one(xf *t) {
  if (!t->r.outgoing && t->r.state == LC_TRANSFER_ACCEPTED)
    xf_flush(t); /* what arrived is kept, as the saved position says */
  free(t->wbuf);
  xf_close_fds(t);
  lc__store_xfer_clear(&t->r);
  free(t->start);
  free(t->group);
  free(t->unverified);
  free(t->hs);
  free(t->buf);
  lc__rs_free(&t->rs);
  free(t);
}

static void xf_unlink(lc__xfer *x, xf *t) {
  for (xf **p = &x->list; *p; p = &(*p)->next)
    if (*p == t) {
      *p = t->next;
      break;
    }
  /* control messages in flight for it are simply ignored when they end */
  xf_free_one(t);
}

static void xf_hash_reset(xf *t, size_t file) {
  t->hfile = file;
  t->hpos = file < t->r.nfiles ? t->start[file] : t->r.total;
  lc__hash_init(t->hs);
}

/* Wraps a row (taken over) into a transfer in memory. */
static int xf_wrap(lc__xfer *x, lc__xfer_row *r, xf **out) {
  xf *t = calloc(1, sizeof *t);
  if (!t)
    return LC_ENOMEM;
  t->r = *r;
  memset(r, 0, sizeof *r);
  t->rfd = -1;
  for (int i = 0; i < XF_FDS; i++)
    t->fds[i].fd = -1;
  lc__rs_init(&t->rs, XF_RANGES);
  size_t n = t->r.nfiles;
  t->start = malloc((n + 1) * sizeof *t->start);
  t->group = malloc((n + 1) * sizeof *t->group);
  t->unverified = calloc(n + 1, sizeof *t->unverified);
  if (posix_memalign((void **)&t->hs, 64, sizeof *t->hs) != 0)
    t->hs = NULL;
  if (!t->start || !t->group || !t->unverified || !t->hs) {
    xf_free_one(t);
    return LC_ENOMEM;
  }
  uint64_t pos = 0;
  for (size_t i = 0; i < n; i++) {
    t->start[i] = pos;
    pos += t->r.files[i].size;
    const lc__xfer_file *f = &t->r.files[i];
    size_t tl = xf_top_len(f->path, f->path_len);
    if (i > 0) {
      const lc__xfer_file *p = &t->r.files[t->group[i - 1]];
      size_t pl = xf_top_len(p->path, p->path_len);
      t->group[i] =
          pl == tl && memcmp(p->path, f->path, tl) == 0 ? t->group[i - 1] : i;
    } else {
      t->group[i] = 0;
    }
    if (!f->verified)
      t->unverified[t->group[i]]++;
  }
  t->start[n] = pos;
  t->r.total = pos;
  /* hashing resumes at the first file without its hash */
  size_t h = 0;
  while (h < n &&
         (t->r.outgoing ? t->r.files[h].has_hash : t->r.files[h].has_mine))
    h++;
  xf_hash_reset(t, h);
  t->hash_next = n; /* hashes go when the receiver asks (ACCEPT) */
  if (!t->r.outgoing) {
    t->contig = t->saved_pos = t->r.pos;
    if (t->contig > t->r.total)
      t->contig = t->saved_pos = t->r.total;
    if (t->contig < t->hpos)
      t->contig = t->hpos; /* never below what is verified */
  }
  t->saved_at = t->activity = x->now;
  t->ev_bytes = t->rate_bytes = t->r.outgoing ? 0 : t->contig;
  t->ev_at = t->rate_at = x->now;
  t->next = x->list;
  x->list = t;
  *out = t;
  return 0;
}

static uint64_t xf_bytes(const xf *t) {
  if (t->r.state == LC_TRANSFER_DONE)
    return t->r.total;
  if (t->r.outgoing)
    return t->acked_all ? t->r.total : t->spos;
  return t->contig;
}

static void xf_event(lc__xfer *x, xf *t, int ev, int detail) {
  if (x->ops.event)
    x->ops.event(x->ops.user, ev, &t->r, xf_bytes(t),
                 xf_final_state(t->r.state) ? 0 : t->rate, detail);
}

static int xf_save(lc__xfer *x, xf *t) {
  if (!t->r.outgoing && t->r.state == LC_TRANSFER_ACCEPTED) {
    int rc = xf_flush(t); /* the position saved is on disk */
    if (rc < 0)
      xf_log(x, 0, "cannot write a file received: %s", lc_strerror(rc));
  }
  if (!t->r.outgoing)
    t->r.pos = t->contig;
  int rc = lc__store_xfer_update(x->store, &t->r);
  if (rc < 0)
    xf_log(x, 0, "cannot save a transfer: %s", lc_strerror(rc));
  t->saved_pos = t->r.pos;
  t->saved_at = x->now;
  return rc;
}

/* ---- control messages --------------------------------------------------- */

static int xf_send_ctl(lc__xfer *x, const uint8_t *peer, const uint8_t *xid,
                       int op, uint64_t pos, uint32_t stream, uint32_t file,
                       const uint8_t *hash, int err) {
  static lc__chat c;
  memset(&c, 0, sizeof c);
  c.kind = LC_CHAT_FILE_CTRL;
  c.sent_ms = 0;
  memcpy(c.target, xid, LC_MSGID_BYTES);
  c.op = op;
  c.pos = pos;
  c.stream = stream;
  c.file = file;
  if (hash) {
    c.has_hash = 1;
    memcpy(c.hash, hash, LC_XFER_HASH_BYTES);
  }
  c.err = err;
  uint8_t buf[256];
  int len = lc__chat_encode(&c, buf, sizeof buf);
  if (len < 0)
    return len;
  if (xf_grow((void **)&x->ctl, &x->ctl_cap, x->nctl, sizeof *x->ctl, 64) < 0)
    return LC_ENOMEM;
  xf_ctl *k = &x->ctl[x->nctl];
  x->ops.random(x->ops.user, k->tid, LC_MSGID_BYTES);
  int rc = x->ops.send_msg(x->ops.user, peer, k->tid, buf, (size_t)len);
  if (rc < 0)
    return rc;
  memcpy(k->peer, peer, LC_KEY_BYTES);
  memcpy(k->xid, xid, LC_MSGID_BYTES);
  k->op = op;
  k->stream = stream;
  x->nctl++;
  return 0;
}

/* The receiver asks for data from its contiguous prefix, and for the
 * hashes it lacks. */
static void xf_ask(lc__xfer *x, xf *t) {
  if (t->r.outgoing || t->r.state != LC_TRANSFER_ACCEPTED || t->accept_inflight)
    return;
  uint32_t first = 0;
  while (first < t->r.nfiles && t->r.files[first].has_hash)
    first++;
  t->activity = x->now;
  if (xf_send_ctl(x, t->r.peer, t->r.id, LC_XFER_OP_ACCEPT, t->contig, 0, first,
                  NULL, 0) == 0)
    t->accept_inflight = 1;
}

/* Our last word on a transfer that ended, until the peer confirms it. */
static void xf_tell(lc__xfer *x, xf *t) {
  if (t->r.told || t->final_inflight)
    return;
  int op;
  if (t->r.state == LC_TRANSFER_DONE)
    op = t->r.outgoing ? 0 : LC_XFER_OP_DONE;
  else if (t->r.state == LC_TRANSFER_DECLINED)
    op = LC_XFER_OP_DECLINE;
  else
    op = LC_XFER_OP_CANCEL;
  if (op == 0)
    return;
  if (xf_send_ctl(x, t->r.peer, t->r.id, op, 0, 0, 0, NULL,
                  t->r.state == LC_TRANSFER_FAILED ? t->r.err : 0) == 0)
    t->final_inflight = 1;
}

static void xf_retire(lc__xfer *x, const uint8_t *peer, uint32_t stream) {
  if (x->nretired == XF_RETIRED) { /* the oldest goes */
    memmove(x->retired, x->retired + 1,
            (XF_RETIRED - 1) * sizeof x->retired[0]);
    x->nretired--;
  }
  size_t i = x->nretired++;
  memcpy(x->retired[i].peer, peer, LC_KEY_BYTES);
  x->retired[i].stream = stream;
}

static int xf_is_retired(const lc__xfer *x, const uint8_t *peer,
                         uint32_t stream) {
  for (size_t i = 0; i < x->nretired; i++)
    if (x->retired[i].stream == stream &&
        memcmp(x->retired[i].peer, peer, LC_KEY_BYTES) == 0)
      return 1;
  return 0;
}

/* Stops the sender's stream (the transport sends what it holds, then the
 * end; the receiver no longer listens to it). */
static void xf_stop_stream(lc__xfer *x, xf *t) {
  if (t->r.outgoing && t->streaming) {
    if (!t->fin_sent)
      x->ops.bulk_write(x->ops.user, t->r.peer, t->stream, NULL, 0, 1);
    t->streaming = t->started = t->fin_sent = 0;
  }
  if (!t->r.outgoing && t->mapped) {
    xf_retire(x, t->r.peer, t->rstream);
    t->mapped = 0;
  }
  t->blen = t->boff = 0;
}

/* Ends a transfer: state, saved, told (or not), partial data gone. */
static void xf_end(lc__xfer *x, xf *t, int state, int err, int by_peer) {
  xf_stop_stream(x, t);
  xf_close_fds(t);
  t->r.state = state;
  t->r.err = err;
  t->r.by_peer = by_peer;
  t->r.told = by_peer || (t->r.outgoing && state == LC_TRANSFER_DONE);
  if (!t->r.outgoing && state != LC_TRANSFER_DONE) {
    t->wlen = 0; /* never written: the partial files go */
    xf_rm_tree(t->r.dir);
  }
  xf_save(x, t);
  xf_event(x, t, LC_TRANSFER_CHANGED, 0);
  if (!t->r.told)
    xf_tell(x, t);
  if (t->r.told)
    xf_unlink(x, t);
}

/* ---- hashing ------------------------------------------------------------ */

static void xf_check_file(lc__xfer *x, xf *t, size_t i);

/* A file's hash is complete (ours: the sender's, or what arrived). */
static void xf_file_hashed(lc__xfer *x, xf *t, size_t i) {
  lc__xfer_file *f = &t->r.files[i];
  if (t->r.outgoing) {
    lc__hash_final(t->hs, f->hash);
    f->has_hash = 1;
    f->verified = 1;
  } else {
    lc__hash_final(t->hs, f->mine);
    f->has_mine = 1;
  }
  lc__store_xfer_file_update(x->store, t->r.id, i, f);
  if (!t->r.outgoing)
    xf_check_file(x, t, i);
}

/* Feeds data at stream position hpos into the hash, file by file. */
/* The receiver passes over files verified already (after a retry the
 * stream carries them again; they are in place, not here). */
static void xf_hash_feed(lc__xfer *x, xf *t, const uint8_t *data, size_t len) {
  while (t->hfile < t->r.nfiles) {
    uint64_t end = t->start[t->hfile + 1];
    size_t take = (size_t)(end - t->hpos < len ? end - t->hpos : len);
    int skip = !t->r.outgoing && t->r.files[t->hfile].verified;
    if (take && !skip)
      lc__hash_update(t->hs, data, take);
    if (take && data)
      data += take;
    len -= take;
    t->hpos += take;
    if (t->hpos < end)
      break;
    size_t done = t->hfile;
    t->hfile++;
    if (skip) {
      lc__hash_init(t->hs);
      continue;
    }
    xf_file_hashed(x, t, done);
    if (t->r.state != LC_TRANSFER_ACCEPTED && t->r.state != LC_TRANSFER_OFFERED)
      return; /* the file failed for good: the transfer ended */
    if (t->hfile != done + 1)
      return; /* a retry moved the cursor */
    lc__hash_init(t->hs);
  }
}

/* ---- the receiver's files ------------------------------------------------ */

static char *xf_tmp_path(const xf *t, size_t i) {
  const lc__xfer_file *f = &t->r.files[i];
  return xf_join(t->r.dir, f->path);
}

static int xf_fd(xf *t, size_t i, int create) {
  for (int k = 0; k < XF_FDS; k++)
    if (t->fds[k].fd >= 0 && t->fds[k].file == i)
      return t->fds[k].fd;
  char *p = xf_tmp_path(t, i);
  if (!p)
    return LC_ENOMEM;
  int fd =
      open(p, O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT : 0), 0600);
  if (fd < 0 && errno == ENOENT && create) {
    int rc = xf_mkdirs(p, strlen(p) - strlen(strrchr(p, '/')));
    if (rc < 0) {
      free(p);
      return rc;
    }
    fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  }
  int e = errno;
  free(p);
  if (fd < 0)
    return -e;
  int k = -1;
  for (int j = 0; j < XF_FDS && k < 0; j++)
    if (t->fds[j].fd < 0)
      k = j;
  if (k < 0) { /* all taken: one goes */
    k = (int)(i % XF_FDS);
    close(t->fds[k].fd);
  }
  t->fds[k].fd = fd;
  t->fds[k].file = i;
  return fd;
}

static void xf_fd_drop(xf *t, size_t i) {
  for (int k = 0; k < XF_FDS; k++)
    if (t->fds[k].fd >= 0 && t->fds[k].file == i) {
      close(t->fds[k].fd);
      t->fds[k].fd = -1;
    }
}

/* Writes stream bytes [pos, pos + len) into the files. */
static int xf_write(xf *t, uint64_t pos, const uint8_t *data, size_t len) {
  while (len > 0) {
    size_t i = xf_file_at(t, pos);
    if (i >= t->r.nfiles)
      return LC_EINVAL;
    uint64_t end = t->start[i + 1];
    size_t take = (size_t)(end - pos < len ? end - pos : len);
    if (t->r.files[i].verified) { /* in place already */
      pos += take;
      data += take;
      len -= take;
      continue;
    }
    int fd = xf_fd(t, i, 1);
    if (fd < 0)
      return fd;
    size_t done = 0;
    while (done < take) {
      ssize_t w = pwrite(fd, data + done, take - done,
                         (off_t)(pos - t->start[i] + done));
      if (w < 0) {
        if (errno == EINTR)
          continue;
        return -errno;
      }
      done += (size_t)w;
    }
    pos += take;
    data += take;
    len -= take;
  }
  return 0;
}

/* Writes what was gathered, and asks the kernel to start writing it to
 * the disk now (so that the flush before the rename has little left). */
static int xf_flush(xf *t) {
  if (t->wlen == 0)
    return 0;
  int rc = xf_write(t, t->wpos, t->wbuf, t->wlen);
  uint64_t pos = t->wpos, end = t->wpos + t->wlen;
  t->wlen = 0;
  while (rc == 0 && pos < end) {
    size_t i = xf_file_at(t, pos);
    if (i >= t->r.nfiles)
      break;
    uint64_t fe = t->start[i + 1] < end ? t->start[i + 1] : end;
    for (int k = 0; k < XF_FDS; k++)
      if (t->fds[k].fd >= 0 && t->fds[k].file == i) {
        sync_file_range(t->fds[k].fd, (off_t)(pos - t->start[i]),
                        (off_t)(fe - pos), SYNC_FILE_RANGE_WRITE);
        /* and wait for what went XF_SYNC_LAG ago, a little at a time, so
         * that the flush before the rename never waits for much (the loop
         * would stall, chat with it) */
        uint64_t lo = t->synced > t->start[i] ? t->synced : t->start[i];
        if (fe > lo + XF_SYNC_LAG + XF_WBUF) {
          uint64_t hi = fe - XF_SYNC_LAG;
          sync_file_range(t->fds[k].fd, (off_t)(lo - t->start[i]),
                          (off_t)(hi - lo),
                          SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                              SYNC_FILE_RANGE_WAIT_AFTER);
          t->synced = hi;
        }
      }
    pos = fe;
  }
  return rc;
}

/* Gathers received bytes into large writes (one per datagram costs a
 * system call each). */
static int xf_gather(xf *t, uint64_t pos, const uint8_t *data, size_t len) {
  if (t->wlen && (pos != t->wpos + t->wlen || t->wlen + len > XF_WBUF)) {
    int rc = xf_flush(t);
    if (rc < 0)
      return rc;
  }
  if (!t->wbuf && !(t->wbuf = malloc(XF_WBUF)))
    return xf_write(t, pos, data, len);
  if (len > XF_WBUF)
    return xf_write(t, pos, data, len);
  if (t->wlen == 0)
    t->wpos = pos;
  memcpy(t->wbuf + t->wlen, data, len);
  t->wlen += len;
  return 0;
}

/* Reads stream bytes [pos, pos + len) back from the receiver's files:
 * 0, or LC_EINVAL when a file is shorter than what was counted. */
static int xf_read_back(xf *t, uint64_t pos, uint8_t *out, size_t len) {
  while (len > 0) {
    size_t i = xf_file_at(t, pos);
    if (i >= t->r.nfiles)
      return LC_EINVAL;
    uint64_t end = t->start[i + 1];
    size_t take = (size_t)(end - pos < len ? end - pos : len);
    int fd = xf_fd(t, i, 0);
    if (fd < 0)
      return LC_EINVAL;
    ssize_t r = pread(fd, out, take, (off_t)(pos - t->start[i]));
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return LC_EINVAL;
    pos += (size_t)r;
    out += r;
    len -= (size_t)r;
  }
  return 0;
}

/* Picks a free name in the downloads folder for name (a file's or a
 * folder's), "name (1).ext" and so on, and renames src there without ever
 * replacing anything.  *final: the path chosen (malloc'd). */
/* While a group is renamed into place, its files' local paths are stored
 * behind this byte first (where it is going), so that a restart can tell
 * whether the rename happened (xf_settle); never part of a real path. */
#define XF_PLACING LC_XFER_PLACING

static int xf_place(const char *downloads, const char *src, const char *name,
                    size_t name_len, int is_dir, char **final,
                    void (*going)(void *ctx, const char *dst), void *ctx) {
  const char *dot = NULL;
  if (!is_dir)
    for (size_t i = name_len; i-- > 1;)
      if (name[i] == '.') {
        dot = name + i;
        break;
      }
  size_t stem = dot ? (size_t)(dot - name) : name_len;
  size_t cap = strlen(downloads) + name_len + 32;
  char *dst = malloc(cap);
  if (!dst)
    return LC_ENOMEM;
  for (int k = 0; k < 1000; k++) {
    if (k == 0)
      snprintf(dst, cap, "%s/%.*s", downloads, (int)name_len, name);
    else
      snprintf(dst, cap, "%s/%.*s (%d)%.*s", downloads, (int)stem, name, k,
               (int)(name_len - stem), name + stem);
    struct stat taken;
    if (lstat(dst, &taken) == 0)
      continue; /* the rename would refuse it too */
    going(ctx, dst);
    int rc = renameat2(AT_FDCWD, src, AT_FDCWD, dst, RENAME_NOREPLACE);
    if (rc < 0 && (errno == EINVAL || errno == ENOSYS)) {
      /* a file system without RENAME_NOREPLACE: a file by link (which
       * never replaces), a folder after looking */
      struct stat st;
      if (!is_dir) {
        rc = link(src, dst);
        if (rc == 0)
          unlink(src);
      } else if (lstat(dst, &st) == 0) {
        errno = EEXIST;
        rc = -1;
      } else {
        rc = rename(src, dst);
      }
    }
    if (rc == 0) {
      *final = dst;
      return 0;
    }
    if (errno != EEXIST && errno != ENOTEMPTY) {
      int e = -errno;
      free(dst);
      return e;
    }
  }
  free(dst);
  return -EEXIST;
}

/* Every file of group g is verified: fsync, then into place. */
static size_t xf_group_end(const xf *t, size_t g) {
  size_t end = g;
  while (end < t->r.nfiles && t->group[end] == g)
    end++;
  return end;
}

/* Records where group g's files are (top: the file, or the folder that
 * holds them; placing: behind XF_PLACING, before the rename), or clears
 * them (top NULL). */
static void xf_record_group(lc__xfer *x, xf *t, size_t g, const char *top,
                            int placing) {
  const lc__xfer_file *f = &t->r.files[g];
  size_t tl = xf_top_len(f->path, f->path_len);
  int is_dir = tl < f->path_len;
  size_t end = xf_group_end(t, g);
  lc__store_begin(x->store);
  for (size_t i = g; i < end; i++) {
    lc__xfer_file *h = &t->r.files[i];
    free(h->local);
    h->local = NULL;
    if (top && is_dir)
      h->local = xf_join(top, h->path + tl + 1);
    else if (top)
      h->local = xf_strndup(top, strlen(top));
    if (h->local && placing) {
      size_t n = strlen(h->local);
      char *p = malloc(n + 2);
      if (p) {
        p[0] = XF_PLACING;
        memcpy(p + 1, h->local, n + 1);
      }
      free(h->local);
      h->local = p;
    }
    lc__store_xfer_file_update(x->store, t->r.id, i, h);
  }
  lc__store_commit(x->store);
}

typedef struct {
  lc__xfer *x;
  xf *t;
  size_t g;
} xf_going_ctx;

static void xf_going(void *ctx, const char *dst) {
  xf_going_ctx *c = ctx;
  xf_record_group(c->x, c->t, c->g, dst, 1);
  xf_failpoint(c->x, XF_FP_PLACE);
}

/* Group g is on disk (flushed): renamed into place (where to, recorded
 * first), recorded, reported. */
static int xf_place_group(lc__xfer *x, xf *t, size_t g) {
  const lc__xfer_file *f = &t->r.files[g];
  size_t tl = xf_top_len(f->path, f->path_len);
  int is_dir = tl < f->path_len;
  char *top = xf_strndup(f->path, tl);
  char *src = top ? xf_join(t->r.dir, top) : NULL;
  char *final = NULL;
  xf_going_ctx going = {x, t, g};
  int rc = src ? xf_place(x->downloads, src, f->path, tl, is_dir, &final,
                          xf_going, &going)
               : LC_ENOMEM;
  free(top);
  free(src);
  if (rc < 0) {
    xf_record_group(x, t, g, NULL, 0);
    return rc;
  }
  xf_failpoint(x, XF_FP_PLACED);
  xf_record_group(x, t, g, final, 0);
  free(final);
  /* one event for a file, or for a whole folder: one per file would copy
   * the list once per file */
  xf_event(x, t, LC_TRANSFER_FILE, (int)g);
  return 0;
}

/* Group g is verified: written out, its sizes checked on disk, then
 * flushed to the disk (by the node's worker threads when it has them: a
 * flush can take a long time, and the loop must not wait for it), then
 * placed.  *placed: 1 if it was placed at once. */
static int xf_publish(lc__xfer *x, xf *t, size_t g, int *placed) {
  *placed = 0;
  int frc = xf_flush(t);
  if (frc < 0)
    return frc;
  size_t end = xf_group_end(t, g);
  if (end <= g)
    return LC_EINVAL; /* g is always a group's first file */
  char **paths = calloc(end - g, sizeof *paths);
  if (!paths)
    return LC_ENOMEM;
  int rc = 0;
  for (size_t i = g; rc == 0 && i < end; i++) {
    int fd = xf_fd(t, i, 1); /* an empty file is created here */
    struct stat st;          /* what is on disk has the size that was hashed */
    if (fd < 0)
      rc = fd;
    else if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != t->r.files[i].size)
      rc = LC_EINTEGRITY;
    else if (!(paths[i - g] = xf_tmp_path(t, i)))
      rc = LC_ENOMEM;
    xf_fd_drop(t, i);
  }
  if (rc == 0 && x->ops.sync &&
      x->ops.sync(x->ops.user, (const char *const *)paths, end - g, t->r.id,
                  (uint32_t)g) == 0) {
    t->syncing = 1;
    t->sync_group = g;
  } else if (rc == 0) {
    for (size_t i = 0; rc == 0 && i < end - g; i++) {
      int fd = open(paths[i], O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
      if (fd < 0 || (fdatasync(fd) < 0 && errno != EINVAL))
        rc = -errno;
      if (fd >= 0)
        close(fd);
    }
    if (rc == 0)
      rc = xf_place_group(x, t, g);
    *placed = rc == 0;
  }
  for (size_t i = 0; i < end - g; i++)
    free(paths[i]);
  free(paths);
  return rc;
}

static void xf_fail(lc__xfer *x, xf *t, int err);

/* Places what is verified, one group at a time, and finishes the transfer
 * once every file is in place. */
static void xf_advance(lc__xfer *x, xf *t) {
  while (!t->r.outgoing && t->r.state == LC_TRANSFER_ACCEPTED && !t->syncing) {
    size_t g = 0;
    while (g < t->r.nfiles &&
           (t->unverified[g] != 0 || t->r.files[g].local != NULL))
      g = xf_group_end(t, g);
    if (g >= t->r.nfiles)
      break;
    int placed;
    int rc = xf_publish(x, t, g, &placed);
    if (rc < 0) {
      xf_fail(x, t, rc);
      return;
    }
    if (!placed)
      return; /* lc__xfer_synced goes on */
  }
  if (t->r.outgoing || t->r.state != LC_TRANSFER_ACCEPTED || t->syncing)
    return;
  for (size_t k = 0; k < t->r.nfiles; k++)
    if (!t->r.files[k].verified || !t->r.files[k].local)
      return;
  rmdir(t->r.dir);
  t->contig = t->r.total;
  xf_end(x, t, LC_TRANSFER_DONE, 0, 0);
}

static void xf_fail(lc__xfer *x, xf *t, int err) {
  char hex[2 * LC_MSGID_BYTES + 1];
  xf_hex(hex, t->r.id, LC_MSGID_BYTES);
  xf_log(x, 1, "transfer %.12s failed: %s", hex, lc_strerror(err));
  xf_end(x, t, LC_TRANSFER_FAILED, err, 0);
}

/* File i: compare both hashes once both are known. */
static void xf_check_file(lc__xfer *x, xf *t, size_t i) {
  lc__xfer_file *f = &t->r.files[i];
  if (f->verified || !f->has_hash || !f->has_mine ||
      t->r.state != LC_TRANSFER_ACCEPTED)
    return;
  if (memcmp(f->hash, f->mine, LC_XFER_HASH_BYTES) != 0) {
    x->st.hash_fails++;
    char hex[2 * LC_MSGID_BYTES + 1];
    xf_hex(hex, t->r.id, LC_MSGID_BYTES);
    xf_log(x, 1, "transfer %.12s: file %zu failed its hash (try %d)", hex, i,
           t->retries + 1);
    if (++t->retries > XF_RETRIES) {
      xf_fail(x, t, LC_EINTEGRITY);
      return;
    }
    /* again from the file's first byte, on a new stream (what came
     * before it is written first) */
    if (xf_flush(t) < 0) {
      xf_fail(x, t, LC_EINTEGRITY);
      return;
    }
    /* this file and every later one not verified: hashed again */
    lc__store_begin(x->store);
    for (size_t k = i; k < t->r.nfiles; k++)
      if (!t->r.files[k].verified && t->r.files[k].has_mine) {
        t->r.files[k].has_mine = 0;
        lc__store_xfer_file_update(x->store, t->r.id, k, &t->r.files[k]);
      }
    lc__store_commit(x->store);
    xf_stop_stream(x, t);
    xf_fd_drop(t, i);
    char *p = xf_tmp_path(t, i);
    if (p) {
      if (truncate(p, 0) < 0 && errno != ENOENT)
        xf_log(x, 1, "cannot truncate %s: %s", p, strerror(errno));
      free(p);
    }
    t->contig = t->start[i];
    lc__rs_drop_below(&t->rs, UINT64_MAX);
    xf_hash_reset(t, i);
    xf_save(x, t);
    t->accept_inflight = 0;
    xf_ask(x, t);
    return;
  }
  int frc = xf_flush(t); /* before it counts as verified: its last bytes
                           may still be gathered here */
  if (frc < 0) {
    xf_fail(x, t, frc);
    return;
  }
  f->verified = 1;
  lc__store_xfer_file_update(x->store, t->r.id, i, f);
  size_t g = t->group[i];
  if (t->unverified[g] > 0 && --t->unverified[g] == 0)
    xf_advance(x, t);
}

/* ---- the sender's files -------------------------------------------------- */

/* Reads stream bytes [pos, pos + len) from the files sent. */
static int xf_read(xf *t, uint64_t pos, uint8_t *out, size_t len) {
  while (len > 0) {
    size_t i = xf_file_at(t, pos);
    if (i >= t->r.nfiles)
      return LC_EINVAL;
    if (t->rfd < 0 || t->rfile != i) {
      if (t->rfd >= 0)
        close(t->rfd);
      t->rfd = open(t->r.files[i].local,
                    O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
      if (t->rfd < 0)
        return -errno;
      t->rfile = i;
      struct stat st;
      if (fstat(t->rfd, &st) < 0 || !S_ISREG(st.st_mode) ||
          (uint64_t)st.st_size != t->r.files[i].size)
        return LC_ECHANGED;
    }
    uint64_t end = t->start[i + 1];
    size_t take = (size_t)(end - pos < len ? end - pos : len);
    ssize_t r = pread(t->rfd, out, take, (off_t)(pos - t->start[i]));
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return -errno;
    if (r == 0)
      return LC_ECHANGED; /* shorter than when offered */
    pos += (size_t)r;
    out += r;
    len -= (size_t)r;
  }
  return 0;
}

/* ---- construction ------------------------------------------------------- */

int lc__xfer_new(lc__xfer **out, lc__store *store, const char *downloads,
                 const lc__xfer_ops *ops) {
  if (!out || !store || !downloads || !ops || !ops->send_msg ||
      !ops->bulk_open || !ops->bulk_write || !ops->random)
    return LC_EINVAL;
  lc__xfer *x = calloc(1, sizeof *x);
  if (!x)
    return LC_ENOMEM;
  x->store = store;
  x->ops = *ops;
  size_t l = strlen(downloads);
  while (l > 1 && downloads[l - 1] == '/')
    l--;
  x->downloads = xf_strndup(downloads, l);
  if (!x->downloads) {
    free(x);
    return LC_ENOMEM;
  }
  const char *fp = getenv("LC_FAILPOINT"); // NOLINT(concurrency-mt-unsafe)
  x->failpoint = !fp                          ? XF_FP_NONE
                 : !strcmp(fp, "xfer_place")  ? XF_FP_PLACE
                 : !strcmp(fp, "xfer_placed") ? XF_FP_PLACED
                                              : XF_FP_NONE;
  *out = x;
  return 0;
}

void lc__xfer_free(lc__xfer *x) {
  if (!x)
    return;
  while (x->list) {
    xf *t = x->list;
    x->list = t->next;
    xf_free_one(t);
  }
  free(x->ctl);
  free(x->downloads);
  free(x);
}

/* After a restart: what a crash interrupted between steps is finished
 * (a file with both hashes not compared yet, a folder verified but not
 * renamed into place, every file in place but the transfer not done). */
static void xf_settle(lc__xfer *x, xf *t) {
  if (t->r.outgoing || t->r.state != LC_TRANSFER_ACCEPTED)
    return;
  /* a group stopped as it was renamed into place: in place if it left
   * the partial folder, else not placed yet */
  for (size_t g = 0; g < t->r.nfiles; g = xf_group_end(t, g)) {
    const lc__xfer_file *f = &t->r.files[g];
    if (!f->local || f->local[0] != XF_PLACING)
      continue;
    size_t tl = xf_top_len(f->path, f->path_len);
    int is_dir = tl < f->path_len;
    char *top = xf_strndup(f->path, tl);
    char *src = top ? xf_join(t->r.dir, top) : NULL;
    char *dst = NULL;
    struct stat st;
    if (src && lstat(src, &st) < 0 && errno == ENOENT) {
      /* the rename happened: the top is the file, or the folder */
      const char *l = f->local + 1;
      size_t n = strlen(l);
      dst = xf_strndup(
          l, is_dir && n > f->path_len - tl ? n - (f->path_len - tl) : n);
      if (dst && lstat(dst, &st) < 0) { /* nor there: gone (by hand) */
        free(dst);
        dst = NULL;
      }
    }
    xf_record_group(x, t, g, dst, 0);
    if (dst)
      xf_event(x, t, LC_TRANSFER_FILE, (int)g);
    free(dst);
    free(top);
    free(src);
  }
  for (size_t i = 0; i < t->r.nfiles; i++) {
    const lc__xfer_file *f = &t->r.files[i];
    if (f->has_hash && f->has_mine && !f->verified) {
      xf_check_file(x, t, i);
      if (t->r.state != LC_TRANSFER_ACCEPTED)
        return;
    }
  }
  xf_advance(x, t);
}

int lc__xfer_load(lc__xfer *x, uint64_t now_us) {
  x->now = now_us;
  lc__xfer_row *rows;
  size_t n;
  int rc = lc__store_xfers(x->store, 2, &rows, &n);
  if (rc < 0)
    return rc;
  for (size_t i = 0; i < n; i++) {
    if (xf_find(x, rows[i].id)) {
      lc__store_xfer_clear(&rows[i]);
      continue;
    }
    xf *t;
    if (xf_wrap(x, &rows[i], &t) < 0)
      lc__store_xfer_clear(&rows[i]);
    else
      xf_settle(x, t);
  }
  free(rows);
  x->due = 0;
  return 0;
}

/* ---- offering ------------------------------------------------------------ */

/* The offer's envelope (*env malloc'd, also on error: free it).  Errors:
 * LC_ETOOBIG (over one message), LC_ENOMEM. */
static int xf_encode_offer(const lc__xfer_row *r, uint64_t sent_ms,
                           uint8_t **env, size_t *len) {
  *env = NULL;
  lc__wire_file *wf = malloc((r->nfiles + 1) * sizeof *wf);
  size_t cap = r->nfiles * (LC_TRANSFER_PATH_MAX + 16) + 64;
  if (cap > XF_OFFER_MAX)
    cap = XF_OFFER_MAX;
  *env = malloc(cap);
  if (!wf || !*env) {
    free(wf);
    return LC_ENOMEM;
  }
  for (size_t i = 0; i < r->nfiles; i++) {
    wf[i].path = r->files[i].path;
    wf[i].path_len = r->files[i].path_len;
    wf[i].size = r->files[i].size;
  }
  static lc__chat c;
  memset(&c, 0, sizeof c);
  c.kind = LC_CHAT_FILE;
  c.sent_ms = sent_ms;
  c.xkind = r->kind;
  c.duration_ms = r->duration_ms;
  c.nfiles = r->nfiles;
  c.files = wf;
  int rc = lc__chat_encode(&c, *env, cap);
  free(wf);
  if (rc < 0)
    return rc == LC_ETOOBIG ? LC_ETOOBIG : LC_EINVAL;
  *len = (size_t)rc;
  return 0;
}

typedef struct {
  lc__xfer_file *v;
  size_t n, cap;
  uint64_t total;
  int err;
} xf_list;

static int xf_list_add(xf_list *l, const char *rel, const char *local,
                       uint64_t size) {
  if (l->n >= LC_TRANSFER_FILES_MAX)
    return LC_ELIMIT;
  size_t rl = strlen(rel);
  if (rl > LC_TRANSFER_PATH_MAX)
    return LC_ELIMIT;
  if (!lc__xfer_path_safe(rel, rl))
    return LC_EINVAL;
  if (xf_grow((void **)&l->v, &l->cap, l->n, sizeof *l->v, 16) < 0)
    return LC_ENOMEM;
  lc__xfer_file *f = &l->v[l->n];
  memset(f, 0, sizeof *f);
  f->path = xf_strndup(rel, rl);
  f->path_len = rl;
  f->size = size;
  f->local = xf_strndup(local, strlen(local));
  if (!f->path || !f->local) {
    free(f->path);
    free(f->local);
    return LC_ENOMEM;
  }
  l->n++;
  l->total += size;
  return 0;
}

static int xf_cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds the regular files under local (a folder) as rel/... */
static int xf_walk(xf_list *l, const char *local, const char *rel, int depth) {
  if (depth > XF_DEPTH)
    return LC_ELIMIT;
  DIR *d = opendir(local);
  if (!d)
    return -errno;
  char **names = NULL;
  size_t n = 0, cap = 0;
  int rc = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    if (xf_grow((void **)&names, &cap, n, sizeof *names, 32) < 0) {
      rc = LC_ENOMEM;
      break;
    }
    names[n] = xf_strndup(e->d_name, strlen(e->d_name));
    if (!names[n]) {
      rc = LC_ENOMEM;
      break;
    }
    n++;
  }
  closedir(d);
  if (rc == 0 && n > 1)
    qsort(names, n, sizeof *names, xf_cmp_str);
  for (size_t i = 0; rc == 0 && i < n; i++) {
    char *lp = xf_join(local, names[i]);
    char *rp = xf_join(rel, names[i]);
    struct stat st;
    if (!lp || !rp)
      rc = LC_ENOMEM;
    else if (lstat(lp, &st) < 0)
      rc = -errno;
    else if (S_ISDIR(st.st_mode))
      rc = xf_walk(l, lp, rp, depth + 1);
    else if (S_ISREG(st.st_mode))
      rc = xf_list_add(l, rp, lp, (uint64_t)st.st_size);
    /* links and special files are skipped */
    free(lp);
    free(rp);
  }
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
  return rc;
}

static void xf_files_free(lc__xfer_file *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(v[i].path);
    free(v[i].local);
  }
  free(v);
}

int lc__xfer_offer(lc__xfer *x, const uint8_t peer[LC_KEY_BYTES],
                   const char *const *paths, size_t count, int kind,
                   uint64_t duration_ms, uint64_t now_ms,
                   const uint8_t id[LC_MSGID_BYTES]) {
  if (!paths || count == 0 || (kind == LC_TRANSFER_KIND_VOICE && count != 1))
    return LC_EINVAL;
  xf_list l = {0};
  int rc = 0, folder = 0;
  for (size_t i = 0; rc == 0 && i < count; i++) {
    if (!paths[i] || !*paths[i]) {
      rc = LC_EINVAL;
      break;
    }
    char *abs = realpath(paths[i], NULL);
    if (!abs) {
      rc = -errno;
      break;
    }
    const char *base = strrchr(abs, '/');
    base = base && base[1] ? base + 1 : abs;
    struct stat st;
    if (stat(abs, &st) < 0)
      rc = -errno;
    else if (S_ISDIR(st.st_mode) && kind != LC_TRANSFER_KIND_VOICE) {
      folder = 1;
      rc = strcmp(abs, "/") == 0 ? LC_EINVAL : xf_walk(&l, abs, base, 0);
    } else if (S_ISREG(st.st_mode))
      rc = xf_list_add(&l, base, abs, (uint64_t)st.st_size);
    else
      rc = LC_EINVAL;
    free(abs);
  }
  if (rc == 0 && l.n == 0)
    rc = LC_EINVAL; /* only empty folders */
  lc__xfer_row r;
  memset(&r, 0, sizeof r);
  memcpy(r.id, id, LC_MSGID_BYTES);
  memcpy(r.peer, peer, LC_KEY_BYTES);
  r.outgoing = 1;
  r.kind = kind     ? kind
           : folder ? LC_TRANSFER_KIND_FOLDER
                    : LC_TRANSFER_KIND_FILES;
  r.state = LC_TRANSFER_OFFERED;
  r.told = 1;
  r.total = l.total;
  r.duration_ms = kind == LC_TRANSFER_KIND_VOICE ? duration_ms : 0;
  r.created_ms = now_ms;
  r.nfiles = l.n;
  r.files = l.v;
  if (rc == 0 && !xf_list_safe(&r))
    rc = LC_EINVAL; /* two paths with the same name */
  char *summary = NULL;
  if (rc == 0)
    rc = xf_describe(&r, &summary);
  if (rc == 0) { /* the whole list must fit one message */
    uint8_t *env;
    size_t len;
    rc = xf_encode_offer(&r, now_ms, &env, &len);
    free(env);
  }
  int64_t local_id = 0;
  if (rc == 0)
    rc = lc__store_xfer_add(x->store, &r, now_ms, summary, strlen(summary),
                            &local_id);
  free(summary);
  if (rc < 0) {
    xf_files_free(l.v, l.n);
    free(r.name);
    return rc;
  }
  xf *t;
  if (xf_wrap(x, &r, &t) < 0) /* r is freed */
    xf_log(x, 0, "no memory for an offer: it is taken up at the next start");
  x->due = 0;
  return 0;
}

int lc__xfer_offer_envelope(lc__xfer *x, const uint8_t id[LC_MSGID_BYTES],
                            uint64_t sent_ms, uint8_t **env, size_t *len) {
  xf *t = xf_find(x, id);
  lc__xfer_row r;
  memset(&r, 0, sizeof r);
  int rc = t ? 1 : lc__store_xfer_get(x->store, id, &r);
  if (t) {
    rc = xf_encode_offer(&t->r, sent_ms, env, len);
    if (rc < 0) {
      free(*env);
      *env = NULL;
    }
    return rc;
  }
  if (rc == 0)
    return -ENOENT;
  if (rc < 0)
    return rc;
  rc = xf_encode_offer(&r, sent_ms, env, len);
  lc__store_xfer_clear(&r);
  if (rc < 0) {
    free(*env);
    *env = NULL;
  }
  return rc;
}

/* ---- receiving an offer ------------------------------------------------- */

static int xf_accept(lc__xfer *x, xf *t);

int lc__xfer_recv_offer(lc__xfer *x, const uint8_t peer[LC_KEY_BYTES],
                        const uint8_t id[LC_MSGID_BYTES], const lc__chat *c,
                        uint64_t now_ms, int auto_accept, int64_t *local_id,
                        char **summary) {
  *local_id = 0;
  *summary = NULL;
  lc__xfer_row r;
  memset(&r, 0, sizeof r);
  memcpy(r.id, id, LC_MSGID_BYTES);
  memcpy(r.peer, peer, LC_KEY_BYTES);
  r.kind = c->xkind;
  r.state = LC_TRANSFER_OFFERED;
  r.told = 1;
  r.duration_ms = c->duration_ms;
  r.created_ms = now_ms;
  int refuse = c->nfiles == 0 || c->nfiles > LC_TRANSFER_FILES_MAX ||
               (c->xkind == LC_TRANSFER_KIND_VOICE && c->nfiles != 1);
  lc__wire_file *wf = NULL;
  if (!refuse) {
    wf = malloc(c->nfiles * sizeof *wf);
    r.files = calloc(c->nfiles, sizeof *r.files);
    if (!wf || !r.files) {
      free(wf);
      free(r.files);
      return LC_ENOMEM;
    }
    int n = lc__wire_files_decode(c->blob, c->blob_len, wf, c->nfiles);
    if (n != (int)c->nfiles)
      refuse = 1;
    for (size_t i = 0; !refuse && i < c->nfiles; i++) {
      r.files[i].path = xf_strndup(wf[i].path, wf[i].path_len);
      if (!r.files[i].path) {
        refuse = -1;
        break;
      }
      r.nfiles = i + 1;
      r.files[i].path_len = wf[i].path_len;
      r.files[i].size = wf[i].size;
      if (r.total + wf[i].size < r.total)
        refuse = 1; /* more bytes than a counter holds */
      r.total += wf[i].size;
    }
    free(wf);
    if (!refuse && !xf_list_safe(&r))
      refuse = 1;
  }
  int rc = 0;
  if (refuse > 0) {
    x->st.refused++;
    char hex[2 * LC_KEY_BYTES + 1];
    xf_hex(hex, peer, 8);
    xf_log(x, 1, "refused an offer from %s: unsafe or malformed file list",
           hex);
    xf_send_ctl(x, peer, id, LC_XFER_OP_CANCEL, 0, 0, 0, NULL, LC_EUNSAFE);
  } else if (refuse < 0) {
    rc = LC_ENOMEM;
  } else {
    rc = xf_describe(&r, summary);
    if (rc == 0)
      rc = lc__store_xfer_add(x->store, &r, c->sent_ms, *summary,
                              strlen(*summary), local_id);
    if (rc == 1) {
      xf *t;
      rc = xf_wrap(x, &r, &t);
      if (rc == 0) {
        xf_event(x, t, LC_TRANSFER_OFFER, 0);
        if (auto_accept)
          xf_accept(x, t);
      }
      rc = 0;
    } else if (rc == 0) {
      *local_id = 0; /* one we have */
    }
  }
  lc__store_xfer_clear(&r);
  if (rc < 0 || *local_id == 0) {
    free(*summary);
    *summary = NULL;
  }
  return rc;
}

/* ---- the user's answers ---------------------------------------------------
 */

static int xf_accept(lc__xfer *x, xf *t) {
  if (t->r.outgoing || t->r.state != LC_TRANSFER_OFFERED)
    return LC_ESTATE;
  int rc = mkdir(x->downloads, 0700);
  if (rc < 0 && errno == ENOENT) {
    char *d = xf_strndup(x->downloads, strlen(x->downloads));
    rc = d ? xf_mkdirs(d, strlen(d)) : LC_ENOMEM;
    free(d);
  } else if (rc < 0 && errno != EEXIST) {
    rc = -errno;
  } else {
    rc = 0;
  }
  if (rc < 0)
    return rc;
  struct statvfs vs;
  if (statvfs(x->downloads, &vs) == 0 &&
      (uint64_t)vs.f_bavail * vs.f_frsize < t->r.total)
    return -ENOSPC;
  if (!t->r.dir) {
    char hex[2 * LC_MSGID_BYTES + 1], name[64];
    xf_hex(hex, t->r.id, LC_MSGID_BYTES);
    snprintf(name, sizeof name, ".lanchat-%s.part", hex);
    t->r.dir = xf_join(x->downloads, name);
    if (!t->r.dir)
      return LC_ENOMEM;
  }
  if (mkdir(t->r.dir, 0700) < 0 && errno != EEXIST)
    return -errno;
  t->r.state = LC_TRANSFER_ACCEPTED;
  rc = xf_save(x, t);
  if (rc < 0) {
    t->r.state = LC_TRANSFER_OFFERED;
    return rc;
  }
  xf_event(x, t, LC_TRANSFER_CHANGED, 0);
  xf_ask(x, t);
  x->due = 0;
  return 0;
}

int lc__xfer_accept(lc__xfer *x, const uint8_t id[LC_MSGID_BYTES]) {
  xf *t = xf_find(x, id);
  if (!t) {
    lc__xfer_row r;
    int rc = lc__store_xfer_get(x->store, id, &r);
    if (rc < 0)
      return rc;
    if (rc == 0)
      return -ENOENT;
    lc__store_xfer_clear(&r);
    return LC_ESTATE;
  }
  return xf_accept(x, t);
}

static int xf_user_end(lc__xfer *x, const uint8_t *id, int decline) {
  xf *t = xf_find(x, id);
  if (!t || xf_final_state(t->r.state)) {
    lc__xfer_row r;
    int rc = lc__store_xfer_get(x->store, id, &r);
    if (rc < 0)
      return rc;
    if (rc == 0)
      return -ENOENT;
    lc__store_xfer_clear(&r);
    return LC_ESTATE;
  }
  if (decline && (t->r.outgoing || t->r.state != LC_TRANSFER_OFFERED))
    return LC_ESTATE;
  xf_end(x, t, decline ? LC_TRANSFER_DECLINED : LC_TRANSFER_CANCELLED, 0, 0);
  x->due = 0;
  return 0;
}

int lc__xfer_decline(lc__xfer *x, const uint8_t id[LC_MSGID_BYTES]) {
  return xf_user_end(x, id, 1);
}

int lc__xfer_cancel(lc__xfer *x, const uint8_t id[LC_MSGID_BYTES]) {
  return xf_user_end(x, id, 0);
}

/* ---- control messages received ------------------------------------------- */

/* The sender: the receiver wants bytes from pos on a new stream. */
static void xf_restart(lc__xfer *x, xf *t, uint64_t pos) {
  if (t->streaming && t->spos == pos && !t->started)
    return; /* already starting there */
  xf_stop_stream(x, t);
  uint32_t s;
  int rc = x->ops.bulk_open(x->ops.user, t->r.peer, &s);
  if (rc < 0)
    return; /* the next ACCEPT tries again */
  t->streaming = 1;
  t->started = 0;
  t->fin_sent = 0;
  t->acked_all = 0;
  t->stream = s;
  t->spos = pos;
  t->blen = t->boff = 0;
  t->activity = x->now;
  if (xf_send_ctl(x, t->r.peer, t->r.id, LC_XFER_OP_START, pos, s, 0, NULL, 0) <
      0)
    xf_stop_stream(x, t);
}

static void xf_ctl_sender(lc__xfer *x, xf *t, const lc__chat *c) {
  switch (c->op) {
  case LC_XFER_OP_ACCEPT:
    if (c->pos > t->r.total || c->file > t->r.nfiles) {
      x->st.bad_control++;
      return;
    }
    if (t->r.state == LC_TRANSFER_OFFERED) {
      t->r.state = LC_TRANSFER_ACCEPTED;
      xf_save(x, t);
      xf_event(x, t, LC_TRANSFER_CHANGED, 0);
    }
    if (t->r.state != LC_TRANSFER_ACCEPTED) {
      xf_tell(x, t);
      return;
    }
    t->hash_next = c->file;
    t->hash_retry_at = 0;
    xf_restart(x, t, c->pos);
    break;
  case LC_XFER_OP_DECLINE:
    if (t->r.state == LC_TRANSFER_OFFERED)
      xf_end(x, t, LC_TRANSFER_DECLINED, 0, 1);
    else if (!xf_final_state(t->r.state))
      x->st.bad_control++; /* (crossing our own cancel is no fault) */
    break;
  case LC_XFER_OP_CANCEL:
    if (!xf_final_state(t->r.state))
      xf_end(x, t, c->err ? LC_TRANSFER_FAILED : LC_TRANSFER_CANCELLED,
             (int)c->err, 1);
    break;
  case LC_XFER_OP_DONE:
    if (t->r.state == LC_TRANSFER_ACCEPTED) {
      t->acked_all = 1;
      xf_end(x, t, LC_TRANSFER_DONE, 0, 0);
    } else if (!xf_final_state(t->r.state)) {
      x->st.bad_control++;
    }
    break;
  default:
    x->st.bad_control++;
  }
}

static void xf_ctl_receiver(lc__xfer *x, xf *t, const lc__chat *c) {
  switch (c->op) {
  case LC_XFER_OP_START:
    if (t->r.state != LC_TRANSFER_ACCEPTED)
      return;
    if (c->pos > t->contig || c->pos > t->r.total) {
      /* a gap: ask again from what we have */
      xf_retire(x, t->r.peer, c->stream);
      xf_ask(x, t);
      return;
    }
    if (t->mapped && t->rstream != c->stream)
      xf_retire(x, t->r.peer, t->rstream);
    t->mapped = 1;
    t->rstream = c->stream;
    t->base = c->pos;
    t->activity = x->now;
    break;
  case LC_XFER_OP_HASH:
    if (c->file >= t->r.nfiles || !c->has_hash) {
      x->st.bad_control++;
      return;
    }
    if (!t->r.files[c->file].has_hash) {
      lc__xfer_file *f = &t->r.files[c->file];
      f->has_hash = 1;
      memcpy(f->hash, c->hash, LC_XFER_HASH_BYTES);
      lc__store_xfer_file_update(x->store, t->r.id, c->file, f);
      xf_check_file(x, t, c->file);
    }
    break;
  case LC_XFER_OP_CANCEL:
    if (!xf_final_state(t->r.state))
      xf_end(x, t, c->err ? LC_TRANSFER_FAILED : LC_TRANSFER_CANCELLED,
             (int)c->err, 1);
    break;
  default:
    x->st.bad_control++;
  }
}

void lc__xfer_recv_ctrl(lc__xfer *x, const uint8_t peer[LC_KEY_BYTES],
                        const lc__chat *c) {
  x->due = 0;
  xf *t = xf_find(x, c->target);
  if (!t) {
    /* a transfer that ended here: a sender that still hears ACCEPT says
     * it is over; anything else is stale */
    lc__xfer_row r;
    if (lc__store_xfer_get(x->store, c->target, &r) != 1) {
      x->st.bad_control++;
      return;
    }
    if (memcmp(r.peer, peer, LC_KEY_BYTES) != 0)
      x->st.bad_control++;
    else if (r.outgoing && c->op == LC_XFER_OP_ACCEPT &&
             r.state != LC_TRANSFER_DONE)
      xf_send_ctl(x, peer, r.id, LC_XFER_OP_CANCEL, 0, 0, 0, NULL,
                  r.state == LC_TRANSFER_FAILED ? r.err : 0);
    lc__store_xfer_clear(&r);
    return;
  }
  if (memcmp(t->r.peer, peer, LC_KEY_BYTES) != 0) {
    x->st.bad_control++; /* somebody else's transfer */
    return;
  }
  if (t->r.outgoing)
    xf_ctl_sender(x, t, c);
  else
    xf_ctl_receiver(x, t, c);
}

/* ---- transport events -----------------------------------------------------
 */

void lc__xfer_bulk(lc__xfer *x, const uint8_t peer[LC_KEY_BYTES],
                   uint32_t stream, uint64_t offset, const uint8_t *data,
                   size_t len) {
  xf *t;
  for (t = x->list; t; t = t->next)
    if (!t->r.outgoing && t->mapped && t->rstream == stream &&
        memcmp(t->r.peer, peer, LC_KEY_BYTES) == 0)
      break;
  if (!t) {
    if (!xf_is_retired(x, peer, stream))
      x->st.bad_data++;
    return;
  }
  uint64_t pos = t->base + offset;
  if (pos < t->base || pos + len < pos || pos + len > t->r.total) {
    x->st.bad_data++;
    return;
  }
  t->activity = x->now;
  if (pos + len <= t->contig || len == 0)
    return; /* had it */
  if (pos < t->contig) {
    data += t->contig - pos;
    len -= (size_t)(t->contig - pos);
    pos = t->contig;
  }
  int64_t added = lc__rs_add(&t->rs, pos, pos + len);
  if (added < 0) {
    /* too scattered to track: start over from what is contiguous */
    xf_stop_stream(x, t);
    xf_ask(x, t);
    return;
  }
  int rc = xf_gather(t, pos, data, len);
  if (rc < 0) {
    xf_fail(x, t, rc);
    return;
  }
  x->st.bytes_recv += len;
  uint64_t old = t->contig;
  t->contig = lc__rs_run_end(&t->rs, old);
  if (t->contig > old)
    lc__rs_drop_below(&t->rs, t->contig);
  /* hash straight from the buffer when the cursor is in it */
  if (t->hpos >= pos && t->hpos < pos + len && t->hpos <= old) {
    uint64_t end = t->contig < pos + len ? t->contig : pos + len;
    xf_hash_feed(x, t, data + (t->hpos - pos), (size_t)(end - t->hpos));
  }
  /* the pump is due for this transfer's timers only, not at every
   * datagram */
  uint64_t w = t->ev_at + XF_EVENT_US;
  if (t->saved_at + XF_SAVE_US < w)
    w = t->saved_at + XF_SAVE_US;
  if (t->hpos < t->contig && t->catchup_at < w)
    w = t->catchup_at;
  if (w < x->due)
    x->due = w;
}

void lc__xfer_bulk_acked(lc__xfer *x, const uint8_t peer[LC_KEY_BYTES],
                         uint32_t stream) {
  for (xf *t = x->list; t; t = t->next)
    if (t->r.outgoing && t->streaming && t->stream == stream &&
        memcmp(t->r.peer, peer, LC_KEY_BYTES) == 0) {
      t->acked_all = 1;
      t->streaming = 0;
      xf_event(x, t, LC_TRANSFER_PROGRESS, 0);
    }
}

static int xf_ctl_end(lc__xfer *x, const uint8_t *peer, const uint8_t *tid,
                      int ok) {
  size_t i;
  for (i = 0; i < x->nctl; i++)
    if (memcmp(x->ctl[i].tid, tid, LC_MSGID_BYTES) == 0 &&
        memcmp(x->ctl[i].peer, peer, LC_KEY_BYTES) == 0)
      break;
  if (i == x->nctl)
    return 0;
  xf_ctl k = x->ctl[i];
  x->ctl[i] = x->ctl[--x->nctl];
  x->due = 0;
  xf *t = xf_find(x, k.xid);
  if (!t)
    return 1;
  switch (k.op) {
  case LC_XFER_OP_ACCEPT:
    t->accept_inflight = 0;
    break;
  case LC_XFER_OP_START:
    if (ok && t->streaming && t->stream == k.stream)
      t->started = 1;
    break;
  case LC_XFER_OP_HASH:
    if (t->hash_inflight > 0)
      t->hash_inflight--;
    if (!ok && k.stream < t->hash_next)
      t->hash_next = k.stream; /* again, when it can */
    break;
  default: /* a last word */
    t->final_inflight = 0;
    if (ok && xf_final_state(t->r.state)) {
      t->r.told = 1;
      xf_save(x, t);
      xf_unlink(x, t);
    }
  }
  return 1;
}

void lc__xfer_synced(lc__xfer *x, const uint8_t id[LC_MSGID_BYTES],
                     uint32_t group, int err) {
  xf *t = xf_find(x, id);
  if (!t || !t->syncing || t->sync_group != group)
    return;
  t->syncing = 0;
  x->due = 0;
  if (t->r.state != LC_TRANSFER_ACCEPTED)
    return; /* cancelled meanwhile */
  int rc = err < 0 ? err : xf_place_group(x, t, group);
  if (rc < 0)
    xf_fail(x, t, rc);
  else
    xf_advance(x, t);
}

void lc__xfer_offer_delivered(lc__xfer *x, const uint8_t peer[LC_KEY_BYTES],
                              const uint8_t id[LC_MSGID_BYTES]) {
  xf *t = xf_find(x, id);
  if (t && !xf_final_state(t->r.state))
    return; /* the usual case: the offer goes ahead of anything else */
  lc__xfer_row r;
  const lc__xfer_row *rp = t ? &t->r : NULL;
  if (!rp) {
    if (lc__store_xfer_get(x->store, id, &r) != 1)
      return; /* not an offer */
    rp = &r;
  }
  /* cancelled (or failed) before its offer got there: the CANCEL went
   * first and found nothing; it follows the offer now */
  if (rp->outgoing &&
      (rp->state == LC_TRANSFER_CANCELLED || rp->state == LC_TRANSFER_FAILED) &&
      !rp->by_peer && memcmp(rp->peer, peer, LC_KEY_BYTES) == 0)
    xf_send_ctl(x, peer, id, LC_XFER_OP_CANCEL, 0, 0, 0, NULL,
                rp->state == LC_TRANSFER_FAILED ? rp->err : 0);
  if (rp == &r)
    lc__store_xfer_clear(&r);
}

int lc__xfer_msg_acked(lc__xfer *x, const uint8_t peer[LC_KEY_BYTES],
                       const uint8_t tid[LC_MSGID_BYTES]) {
  return xf_ctl_end(x, peer, tid, 1);
}

int lc__xfer_msg_failed(lc__xfer *x, const uint8_t peer[LC_KEY_BYTES],
                        const uint8_t tid[LC_MSGID_BYTES]) {
  return xf_ctl_end(x, peer, tid, 0);
}

static void xf_peer_resync(lc__xfer *x, const uint8_t *peer, int connect) {
  int want = 0;
  for (xf *t = x->list, *next; t; t = next) {
    next = t->next; /* xf_tell may not unlink (it waits for the ack) */
    if (memcmp(t->r.peer, peer, LC_KEY_BYTES) != 0)
      continue;
    if (xf_final_state(t->r.state))
      xf_tell(x, t);
    else if (!t->r.outgoing && !(connect && t->mapped))
      xf_ask(x, t); /* discovery seeing a peer that streams to us: no */
    else if (t->r.state == LC_TRANSFER_ACCEPTED && !t->streaming)
      want = 1;
  }
  if (want && connect && x->ops.connect)
    x->ops.connect(x->ops.user, peer);
  x->due = 0;
}

void lc__xfer_session_up(lc__xfer *x, const uint8_t peer[LC_KEY_BYTES]) {
  xf_peer_resync(x, peer, 0);
}

void lc__xfer_session_down(lc__xfer *x, const uint8_t peer[LC_KEY_BYTES]) {
  for (xf *t = x->list; t; t = t->next)
    if (memcmp(t->r.peer, peer, LC_KEY_BYTES) == 0) {
      /* the streams went with the session */
      t->streaming = t->started = t->fin_sent = 0;
      t->mapped = 0;
      t->blen = t->boff = 0;
      if (!t->r.outgoing && t->contig != t->saved_pos)
        xf_save(x, t);
    }
}

void lc__xfer_peer_up(lc__xfer *x, const uint8_t peer[LC_KEY_BYTES]) {
  xf_peer_resync(x, peer, 1);
}

/* ---- the pump ----------------------------------------------------------- */

/* The sender: fills its stream until the transport is full. */
static void xf_fill(lc__xfer *x, xf *t) {
  if (!t->streaming || !t->started || t->fin_sent || x->now < t->blocked_until)
    return;
  if (!t->buf) {
    t->buf = malloc(XF_BLOCK);
    if (!t->buf)
      return;
  }
  for (int rounds = 0; rounds < XF_FILL_ROUNDS; rounds++) {
    if (t->boff == t->blen) {
      uint64_t left = t->r.total - t->spos;
      if (left == 0) {
        if (x->ops.bulk_write(x->ops.user, t->r.peer, t->stream, NULL, 0, 1) >=
            0)
          t->fin_sent = 1;
        return;
      }
      size_t n = left < XF_BLOCK ? (size_t)left : XF_BLOCK;
      int rc = xf_read(t, t->spos, t->buf, n);
      if (rc < 0) {
        xf_fail(x, t, rc);
        return;
      }
      t->bstart = t->spos;
      t->blen = n;
      t->boff = 0;
      if (t->hpos == t->bstart)
        xf_hash_feed(x, t, t->buf, n);
    }
    size_t want = t->blen - t->boff;
    int fin = t->spos + want == t->r.total;
    int w = x->ops.bulk_write(x->ops.user, t->r.peer, t->stream,
                              t->buf + t->boff, want, fin);
    if (w == LC_EAGAIN) {
      t->blocked_until = x->now + XF_BLOCKED_US;
      return;
    }
    if (w < 0) {
      /* the stream is gone (session down): wait for the next ACCEPT */
      t->streaming = t->started = 0;
      t->blen = t->boff = 0;
      return;
    }
    t->boff += (size_t)w;
    t->spos += (uint64_t)w;
    x->st.bytes_sent += (uint64_t)w;
    t->activity = x->now;
    if (fin && (size_t)w == want) {
      t->fin_sent = 1;
      return;
    }
    if ((size_t)w < want) {
      t->blocked_until = x->now + XF_BLOCKED_US;
      return;
    }
  }
}

/* Hashing that trails: what the buffers did not cover, read from disk,
 * a slice at a time (spaced out while a stream runs, so that sending and
 * receiving never wait long behind it). */
static void xf_catch_up(lc__xfer *x, xf *t) {
  uint64_t limit = t->r.outgoing ? t->r.total : t->contig;
  if (t->hfile >= t->r.nfiles || t->hpos > limit || x->now < t->catchup_at)
    return;
  if (t->r.outgoing && t->streaming && t->hpos >= t->spos)
    return; /* the stream's reads feed it */
  if (!t->r.outgoing && xf_flush(t) < 0)
    return; /* read back only what is written (a failed write fails it) */
  uint8_t *tmp = NULL;
  size_t budget = XF_CATCHUP;
  int retries = t->retries;
  while (t->hfile < t->r.nfiles && t->hpos <= limit && t->retries == retries &&
         t->r.state == LC_TRANSFER_ACCEPTED) {
    uint64_t end = t->start[t->hfile + 1];
    uint64_t upto = end < limit ? end : limit;
    if (t->hpos == upto && upto < end)
      break; /* waits for data */
    if (!t->r.outgoing && t->r.files[t->hfile].verified) {
      xf_hash_feed(x, t, NULL, (size_t)(upto - t->hpos));
      continue;
    }
    if (t->hpos == upto) { /* an empty file */
      xf_hash_feed(x, t, NULL, 0);
      continue;
    }
    if (budget == 0)
      break;
    if (!tmp && !(tmp = malloc(XF_BLOCK)))
      break;
    size_t n = (size_t)(upto - t->hpos < XF_BLOCK ? upto - t->hpos : XF_BLOCK);
    int rc = t->r.outgoing ? xf_read(t, t->hpos, tmp, n)
                           : xf_read_back(t, t->hpos, tmp, n);
    if (rc < 0) {
      if (t->r.outgoing) {
        xf_fail(x, t, rc);
      } else {
        /* what we counted is not on disk: ask again from the cursor */
        t->contig = t->hpos;
        lc__rs_drop_below(&t->rs, UINT64_MAX);
        xf_stop_stream(x, t);
        xf_save(x, t);
        t->accept_inflight = 0;
        xf_ask(x, t);
      }
      break;
    }
    size_t before = t->hfile;
    xf_hash_feed(x, t, tmp, n);
    budget = n < budget ? budget - n : 0;
    if (t->r.state != LC_TRANSFER_ACCEPTED || t->hfile < before)
      break;
  }
  free(tmp);
  if (budget < XF_CATCHUP && (t->streaming || t->mapped))
    t->catchup_at = x->now + XF_CATCHUP_GAP_US;
}

/* Sends the hashes the receiver lacks, a few at a time. */
static void xf_send_hashes(lc__xfer *x, xf *t) {
  if (x->now < t->hash_retry_at)
    return;
  while (t->r.state == LC_TRANSFER_ACCEPTED && t->hash_next < t->r.nfiles &&
         t->r.files[t->hash_next].has_hash &&
         t->hash_inflight < XF_HASHES_INFLIGHT) {
    size_t i = t->hash_next;
    if (xf_send_ctl(x, t->r.peer, t->r.id, LC_XFER_OP_HASH, 0, (uint32_t)i,
                    (uint32_t)i, t->r.files[i].hash, 0) < 0) {
      t->hash_retry_at = x->now + XF_RESYNC_US; /* the peer is away */
      break;
    }
    t->hash_inflight++;
    t->hash_next++;
  }
}

static void xf_progress(lc__xfer *x, xf *t) {
  uint64_t b = xf_bytes(t);
  if (x->now >= t->rate_at + XF_EVENT_US) {
    uint64_t dt = x->now - t->rate_at;
    uint64_t inst = b > t->rate_bytes ? (b - t->rate_bytes) * 1000000 / dt : 0;
    t->rate = t->rate ? (t->rate + inst) / 2 : inst;
    t->rate_at = x->now;
    t->rate_bytes = b;
  }
  if (b != t->ev_bytes && x->now >= t->ev_at + XF_EVENT_US) {
    t->ev_at = x->now;
    t->ev_bytes = b;
    xf_event(x, t, LC_TRANSFER_PROGRESS, 0);
  }
}

void lc__xfer_pump(lc__xfer *x, uint64_t now_us) {
  x->now = now_us;
  if (now_us < x->due)
    return;
  for (xf *t = x->list, *next; t; t = next) {
    next = t->next;
    if (t->r.state != LC_TRANSFER_ACCEPTED)
      continue;
    /* a transfer these calls end stays in the list (its last word waits
     * for the peer), but the id is kept apart all the same */
    uint8_t id[LC_MSGID_BYTES];
    memcpy(id, t->r.id, sizeof id);
    if (t->r.outgoing) {
      xf_fill(x, t);
      if (xf_find(x, id) != t || t->r.state != LC_TRANSFER_ACCEPTED)
        continue;
      xf_catch_up(x, t);
      if (xf_find(x, id) != t || t->r.state != LC_TRANSFER_ACCEPTED)
        continue;
      xf_send_hashes(x, t);
    } else {
      xf_catch_up(x, t);
      if (xf_find(x, id) != t || t->r.state != LC_TRANSFER_ACCEPTED)
        continue;
      if (t->contig != t->saved_pos &&
          (t->contig - t->saved_pos >= XF_SAVE_BYTES ||
           now_us >= t->saved_at + XF_SAVE_US))
        xf_save(x, t);
      if (!t->accept_inflight &&
          ((!t->mapped && now_us >= t->activity + XF_RESYNC_US) ||
           (t->mapped && now_us >= t->activity + XF_STALL_US))) {
        xf_stop_stream(x, t);
        xf_ask(x, t);
      }
    }
    xf_progress(x, t);
  }
  x->due = lc__xfer_next_wakeup(x);
}

uint64_t lc__xfer_next_wakeup(const lc__xfer *x) {
  uint64_t t_min = LC_NEVER;
#define XF_MIN(v)                                                              \
  do {                                                                         \
    uint64_t v_ = (v);                                                         \
    if (v_ < t_min)                                                            \
      t_min = v_;                                                              \
  } while (0)
  for (const xf *t = x->list; t; t = t->next) {
    if (t->r.state != LC_TRANSFER_ACCEPTED)
      continue;
    if (xf_bytes(t) != t->ev_bytes)
      XF_MIN(t->ev_at + XF_EVENT_US);
    if (t->rate)
      XF_MIN(t->rate_at + XF_EVENT_US);
    if (t->r.outgoing) {
      if (t->streaming && t->started && !t->fin_sent)
        XF_MIN(t->blocked_until);
      if (t->hfile < t->r.nfiles && !(t->streaming && t->hpos >= t->spos))
        XF_MIN(t->catchup_at);
      if (t->hash_next < t->hfile && t->hash_inflight < XF_HASHES_INFLIGHT)
        XF_MIN(t->hash_retry_at);
    } else {
      if (t->hfile < t->r.nfiles &&
          (t->hpos < t->contig || t->start[t->hfile + 1] == t->hpos))
        XF_MIN(t->catchup_at);
      if (t->contig != t->saved_pos)
        XF_MIN(t->saved_at + XF_SAVE_US);
      if (!t->accept_inflight)
        XF_MIN(t->activity + (t->mapped ? XF_STALL_US : XF_RESYNC_US));
    }
  }
#undef XF_MIN
  return t_min;
}

int lc__xfer_live(const lc__xfer *x, const uint8_t id[LC_MSGID_BYTES],
                  uint64_t *bytes, uint64_t *rate) {
  for (const xf *t = x->list; t; t = t->next)
    if (memcmp(t->r.id, id, LC_MSGID_BYTES) == 0) {
      *bytes = xf_bytes(t);
      *rate = xf_final_state(t->r.state) ? 0 : t->rate;
      return 1;
    }
  return 0;
}

void lc__xfer_stats_get(const lc__xfer *x, lc__xfer_stats *st) {
  *st = x->st;
}
