/* test_crash_files.c: file transfers, exactly once, whatever dies.  A
 * sender process offers files and folders (one offer every 500 ms) to a
 * receiver process that accepts every offer; both, each one node on
 * 127.0.0.1, are killed with SIGKILL at random moments (24 times in all,
 * every other one waiting for a transfer in progress) and restarted, in
 * the middle of offers, data, hashes, renames into place; and each kills
 * itself now and then (a draw from the seed) right after lc_send_files or
 * lc_transfer_accept returned, before the offer or the ACCEPT left.
 * At the end each offer the sender's lc_send_files accepted is one
 * transfer on each side and one message of each history, DONE, every file
 * in the downloads folder once, byte for byte the one sent, under a name
 * of its own (a name taken becomes "name (1).ext", and the file that held
 * it is untouched), and nothing else there: no hidden .lanchat-*.part
 * folder, no partial or doubled file.  LC_CRASH_SEED=<n> replays a run's
 * moments and file contents. */
#include "crash_util.h"

#include <dirent.h>
#include <inttypes.h>

#define KILLS 24
#define EVERY_MS 25    /* the sender's tick */
#define OFFER_TICKS 20 /* an offer every 500 ms */

/* What is offered: offer, path as the receiver sees it (a folder's files
 * carry its name first), size.  Names repeat on purpose: "report.bin"
 * three times and a folder "proj" twice (and the receiver holds a
 * "report.bin" of its own before anything arrives). */
static const struct {
  int offer;
  const char *path;
  unsigned size;
} k_files[] = {
    {0, "report.bin", 3u << 20},
    {1, "proj/a.txt", 1000},
    {1, "proj/sub/b.bin", 2u << 20},
    {1, "proj/sub/deep/c.bin", 700001},
    {1, "proj/zero", 0},
    {2, "report.bin", 1500000},
    {3, "x.dat", 800000},
    {3, "y.dat", 5u << 20},
    {4, "empty.txt", 0},
    {5, "big.iso", 64u << 20},
    {6, "proj/a.txt", 5000},
    {6, "proj/b.txt", 4u << 20},
    {7, "report.bin", 2u << 20},
    {8, "photos/1.jpg", 1u << 20},
    {8, "photos/2.jpg", 1300000},
    {8, "photos/3.jpg", 900000},
    {8, "notes.md", 12345},
    {9, "a.bin", 32u << 20},
    {10, "b.bin", 3u << 20},
    {10, "c.bin", 1},
    {11, "d.bin", 7u << 20},
    {12, "e.bin", 2500000},
    {13, "f.bin", 4u << 20},
    {14, "g.bin", 64},
    {15, "h.bin", 48u << 20},
};
#define NFILES (sizeof k_files / sizeof k_files[0])
#define OFFERS 16
#define SENTINEL "sentinel: the receiver's own report.bin\n"

static char g_src[128]; /* src/<offer>/<path>: what the sender offers */

/* The top-level names of an offer, in the order of the table. */
static size_t offer_paths(int offer, char paths[][192], size_t cap) {
  size_t n = 0;
  for (size_t i = 0; i < NFILES; i++) {
    if (k_files[i].offer != offer)
      continue;
    const char *p = k_files[i].path;
    size_t tl = strcspn(p, "/");
    char top[192];
    snprintf(top, sizeof top, "%s/%d/%.*s", g_src, offer, (int)tl, p);
    size_t k = 0;
    while (k < n && strcmp(paths[k], top) != 0)
      k++;
    if (k == n && n < cap)
      memcpy(paths[n++], top, sizeof top);
  }
  return n;
}

/* The offer a sent transfer is, from its first file's path: src/<i>/... */
static int offer_of(const lc_transfer_info *t) {
  size_t l = strlen(g_src);
  if (t->nfiles == 0 || !t->files[0].local ||
      strncmp(t->files[0].local, g_src, l) != 0 || t->files[0].local[l] != '/')
    return -1;
  return atoi(t->files[0].local + l + 1);
}

/* ---- the children ---------------------------------------------------------
 */

typedef struct {
  crash_child c;
  int next;    /* sender: the next offer */
  int ticks;   /* since the last offer */
  int done;    /* sender: every offer DONE, said so */
  int refused; /* receiver: an accept that failed */
} files_child;

static void on_transfer(lc_node *node, lc_transfer_event ev,
                        const lc_transfer_info *t, int detail, void *user) {
  (void)detail;
  files_child *f = user;
  if (getenv("LC_CRASH_VERBOSE") && ev == LC_TRANSFER_CHANGED && !t->outgoing)
    fprintf(stderr, "receiver: %s %s at %" PRIu64 " ms\n", t->name,
            lc_transfer_state_name(t->state), uv_now(&f->c.loop));
  if (ev == LC_TRANSFER_OFFER && !t->outgoing) {
    int rc = lc_transfer_accept(node, t->id);
    if (rc < 0 && rc != LC_ESTATE) { /* ESTATE: the tick was first */
      fprintf(stderr, "receiver: accept: %s\n", lc_strerror(rc));
      f->refused++;
    }
    if (rc == 0) /* before the ACCEPT left (the offers' sizes differ) */
      crash_self_kill(1, (unsigned)t->total, 4);
  }
}

/* The receiver: offers it holds unanswered (a kill between storing an
 * offer and answering it) are accepted now. */
static void receiver_tick(crash_child *c) {
  lc_transfer_info *t;
  size_t n;
  if (lc_transfers(c->node, 1, &t, &n) < 0)
    return;
  for (size_t i = 0; i < n; i++)
    if (!t[i].outgoing && t[i].state == LC_TRANSFER_OFFERED)
      lc_transfer_accept(c->node, t[i].id);
  lc_transfers_free(t, n);
}

/* The sender: the next offer is one past the last its store holds (what
 * lc_send_files accepted is there); once all are made, done when every
 * one is DONE. */
static void sender_scan(files_child *f, int *next, int *done) {
  lc_transfer_info *t;
  size_t n;
  *next = 0;
  *done = 0;
  if (lc_transfers(f->c.node, 0, &t, &n) < 0)
    return;
  for (size_t i = 0; i < n; i++) {
    int o = offer_of(&t[i]);
    if (t[i].outgoing && o + 1 > *next)
      *next = o + 1;
    if (t[i].outgoing && t[i].state == LC_TRANSFER_DONE)
      (*done)++;
  }
  lc_transfers_free(t, n);
}

static void sender_tick(crash_child *c) {
  files_child *f = (files_child *)c;
  if (f->done)
    return;
  if (f->next < OFFERS) {
    if (++f->ticks < OFFER_TICKS)
      return;
    char paths[8][192];
    const char *p[8];
    size_t n = offer_paths(f->next, paths, 8);
    for (size_t i = 0; i < n; i++)
      p[i] = paths[i];
    int rc = lc_send_files(c->node, g_run.key[1], p, n, NULL);
    if (rc < 0)
      fprintf(stderr, "sender: offer %d: %s\n", f->next, lc_strerror(rc));
    else
      crash_self_kill(0, (unsigned)f->next++, 4); /* before the offer left */
    f->ticks = 0;
    return;
  }
  int next, done;
  sender_scan(f, &next, &done);
  if (done == OFFERS) {
    crash_touch(0, "done");
    f->done = 1;
  }
}

static int child_main(int who) {
  static files_child f;
  memset(&f, 0, sizeof f);
  f.c.who = who;
  f.c.on_tick = who == 0 ? sender_tick : receiver_tick;
  /* a third of the receiver's lives end at the worst moments of putting a
   * file or folder in place (LC_FAILPOINT, src/transfer.c): where it goes
   * recorded but not renamed yet, or renamed but not recorded yet */
  if (who == 1) {
    unsigned life = (unsigned)(g_run.kills[1] + g_run.self_kills[1]);
    uint64_t d = ((uint64_t)g_run.seed << 32 ^ life) * 0x9e3779b97f4a7c15ull;
    d >>= 33;
    if (d % 6 == 0)
      setenv("LC_FAILPOINT", "xfer_place", 1);
    else if (d % 6 == 1)
      setenv("LC_FAILPOINT", "xfer_placed", 1);
  }
  uv_loop_init(&f.c.loop);
  lc_node_options o;
  crash_options(&o, who, who == 0 ? "sender" : "receiver", &f);
  o.on_transfer = on_transfer;
  if (lc_node_new(&f.c.node, &f.c.loop, &o) < 0)
    return 2;
  if (getenv("LC_CRASH_VERBOSE")) { /* what the kill interrupted */
    lc_transfer_info *t;
    size_t n;
    if (lc_transfers(f.c.node, 1, &t, &n) == 0) {
      for (size_t i = 0; i < n; i++)
        fprintf(stderr, "%s restarts: %s %s %" PRIu64 "/%" PRIu64 "\n",
                who ? "receiver" : "sender", t[i].name,
                lc_transfer_state_name(t[i].state), t[i].bytes, t[i].total);
      lc_transfers_free(t, n);
    }
  }
  if (who == 0) {
    int done;
    sender_scan(&f, &f.next, &done);
    f.ticks = OFFER_TICKS; /* the next offer at once */
  }
  int rc = crash_child_run(&f.c, who == 0 ? EVERY_MS : 100);
  return rc ? rc : f.refused ? 4 : 0;
}

/* ---- the files --------------------------------------------------------------
 */

/* A file's bytes, from the seed, the file's index and the position. */
static uint8_t content_byte(size_t file, uint64_t pos) {
  uint64_t x = (pos / 8) * 0x9e3779b97f4a7c15ull ^
               ((uint64_t)g_run.seed << 20) ^ ((uint64_t)file << 48);
  x ^= x >> 31;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 29;
  return (uint8_t)(x >> (8 * (pos % 8)));
}

static void mkdirs_for(const char *path) {
  char p[256];
  snprintf(p, sizeof p, "%s", path);
  for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
    *s = 0;
    mkdir(p, 0700);
    *s = '/';
  }
}

static void make_sources(void) {
  static uint8_t buf[65536];
  for (size_t i = 0; i < NFILES; i++) {
    char p[256];
    snprintf(p, sizeof p, "%s/%d/%s", g_src, k_files[i].offer, k_files[i].path);
    mkdirs_for(p);
    FILE *f = fopen(p, "wb");
    if (!f)
      crash_die("cannot create %s", p);
    for (uint64_t pos = 0; pos < k_files[i].size;) {
      size_t n = k_files[i].size - pos < sizeof buf
                     ? (size_t)(k_files[i].size - pos)
                     : sizeof buf;
      for (size_t k = 0; k < n; k++)
        buf[k] = content_byte(i, pos + k);
      if (fwrite(buf, 1, n, f) != n)
        crash_die("cannot write %s", p);
      pos += n;
    }
    fclose(f);
  }
}

/* 1 if the file at path holds exactly table file i's bytes. */
static int same_content(const char *path, size_t i) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return 0;
  static uint8_t buf[65536];
  uint64_t pos = 0;
  size_t n;
  int ok = 1;
  while (ok && (n = fread(buf, 1, sizeof buf, f)) > 0) {
    for (size_t k = 0; k < n && ok; k++)
      ok = pos + k < k_files[i].size && buf[k] == content_byte(i, pos + k);
    pos += n;
  }
  fclose(f);
  return ok && pos == k_files[i].size;
}

/* ---- the checks ------------------------------------------------------------
 */

static uint8_t g_ids[OFFERS][LC_MSGID_BYTES]; /* the sender's transfers */

static int find_id(const uint8_t *id) {
  for (int i = 0; i < OFFERS; i++)
    if (memcmp(g_ids[i], id, LC_MSGID_BYTES) == 0)
      return i;
  return -1;
}

/* The sender: one transfer per offer, DONE. */
static int check_sender(void) {
  crash_reader r;
  crash_open(&r, 0);
  lc_transfer_info *t;
  size_t n;
  if (lc_transfers(r.node, 0, &t, &n) < 0)
    crash_die("lc_transfers (sender)");
  int bad = 0, seen[OFFERS] = {0};
  if (n != OFFERS) {
    fprintf(stderr, "sender: %zu transfers, expected %d\n", n, OFFERS);
    bad = 1;
  }
  for (size_t i = 0; i < n; i++) {
    int o = offer_of(&t[i]);
    if (o < 0 || o >= OFFERS || !t[i].outgoing || seen[o]++) {
      fprintf(stderr, "sender: transfer %zu is offer %d (%s)\n", i, o,
              o >= 0 && o < OFFERS && seen[o] > 1 ? "twice" : "unknown");
      bad = 1;
      continue;
    }
    memcpy(g_ids[o], t[i].id, LC_MSGID_BYTES);
    if (t[i].state != LC_TRANSFER_DONE) {
      fprintf(stderr, "sender: offer %d is %s (error %d)\n", o,
              lc_transfer_state_name(t[i].state), t[i].error);
      bad = 1;
    }
  }
  lc_transfers_free(t, n);
  crash_close(&r);
  return bad;
}

/* Both histories: one FILE message per offer, the transfer's id. */
static int check_history(int who) {
  crash_reader r;
  crash_open(&r, who);
  lc_msg_info *m;
  size_t n;
  if (lc_history_page(r.node, g_run.key[1 - who], 0, 10 * OFFERS, &m, &n) < 0)
    crash_die("lc_history_page");
  int bad = 0, seen[OFFERS] = {0};
  const char *name = who ? "receiver" : "sender";
  if (n != OFFERS) {
    fprintf(stderr, "%s: %zu messages in the history, expected %d\n", name, n,
            OFFERS);
    bad = 1;
  }
  for (size_t i = 0; i < n; i++) {
    int o = find_id(m[i].msg_id);
    if (o < 0 || seen[o]++ || m[i].kind != LC_KIND_FILE ||
        m[i].outgoing != (who == 0)) {
      fprintf(stderr, "%s: history message \"%s\" is offer %d (%s)\n", name,
              m[i].text, o, o >= 0 && seen[o] > 1 ? "twice" : "unexpected");
      bad = 1;
    }
  }
  lc_msgs_free(m, n);
  crash_close(&r);
  return bad;
}

static char g_local[NFILES][256]; /* where each file is at the receiver */
static char g_dl[160];

/* The receiver: one transfer per offer, DONE, each file verified and in
 * place under a name of its own, with the bytes sent. */
static int check_receiver(void) {
  crash_reader r;
  crash_open(&r, 1);
  lc_transfer_info *t;
  size_t n;
  if (lc_transfers(r.node, 0, &t, &n) < 0)
    crash_die("lc_transfers (receiver)");
  int bad = 0, seen[OFFERS] = {0};
  if (n != OFFERS) {
    fprintf(stderr, "receiver: %zu transfers, expected %d\n", n, OFFERS);
    bad = 1;
  }
  for (size_t i = 0; i < n; i++) {
    int o = find_id(t[i].id);
    if (o < 0 || t[i].outgoing || seen[o]++) {
      fprintf(stderr, "receiver: transfer %zu is offer %d (%s)\n", i, o,
              o >= 0 && seen[o] > 1 ? "twice" : "unknown");
      bad = 1;
      continue;
    }
    if (t[i].state != LC_TRANSFER_DONE) {
      fprintf(stderr, "receiver: offer %d is %s (error %d)\n", o,
              lc_transfer_state_name(t[i].state), t[i].error);
      bad = 1;
    }
    size_t want = 0;
    for (size_t k = 0; k < NFILES; k++)
      want += k_files[k].offer == o;
    if (t[i].nfiles != want) {
      fprintf(stderr, "receiver: offer %d has %zu files, expected %zu\n", o,
              t[i].nfiles, want);
      bad = 1;
    }
    for (size_t j = 0; j < t[i].nfiles; j++) {
      const lc_transfer_file *f = &t[i].files[j];
      size_t k = 0;
      while (k < NFILES &&
             (k_files[k].offer != o || strcmp(k_files[k].path, f->path) != 0))
        k++;
      if (k == NFILES || g_local[k][0]) {
        fprintf(stderr, "receiver: offer %d lists %s\n", o, f->path);
        bad = 1;
        continue;
      }
      if (!f->verified || !f->local) {
        fprintf(stderr, "receiver: offer %d: %s is not in place\n", o, f->path);
        bad = 1;
        continue;
      }
      snprintf(g_local[k], sizeof g_local[k], "%s", f->local);
      if (!same_content(f->local, k)) {
        fprintf(stderr,
                "receiver: %s (offer %d, %s) differs from what was "
                "sent\n",
                f->local, o, f->path);
        bad = 1;
      }
    }
  }
  lc_transfers_free(t, n);
  crash_close(&r);
  for (size_t k = 0; k < NFILES; k++)
    for (size_t j = 0; j < k; j++)
      if (g_local[k][0] && strcmp(g_local[k], g_local[j]) == 0) {
        fprintf(stderr, "receiver: two files in one place: %s\n", g_local[k]);
        bad = 1;
      }
  return bad;
}

/* The downloads folder holds the files in place, their folders and the
 * receiver's own file, nothing else. */
static int g_stray;

static int walk_one(const char *p, const struct stat *sb, int flag,
                    struct FTW *ftw) {
  (void)ftw;
  if (strcmp(p, g_dl) == 0)
    return 0;
  int known = 0;
  if (flag == FTW_F && S_ISREG(sb->st_mode)) {
    char own[192];
    snprintf(own, sizeof own, "%s/report.bin", g_dl);
    known = strcmp(p, own) == 0;
    for (size_t k = 0; k < NFILES && !known; k++)
      known = strcmp(p, g_local[k]) == 0;
  } else if (flag == FTW_D || flag == FTW_DP) {
    size_t l = strlen(p);
    for (size_t k = 0; k < NFILES && !known; k++)
      known = strncmp(p, g_local[k], l) == 0 && g_local[k][l] == '/';
  }
  if (!known) {
    fprintf(stderr, "receiver: stray in the downloads folder: %s\n", p);
    g_stray = 1;
  }
  return 0;
}

static int check_downloads(void) {
  g_stray = 0;
  nftw(g_dl, walk_one, 16, FTW_PHYS);
  char own[192], buf[128];
  snprintf(own, sizeof own, "%s/report.bin", g_dl);
  FILE *f = fopen(own, "rb");
  size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
  if (f)
    fclose(f);
  if (n != strlen(SENTINEL) || memcmp(buf, SENTINEL, n) != 0) {
    fprintf(stderr, "receiver: its own report.bin was overwritten\n");
    g_stray = 1;
  }
  return g_stray;
}

/* 1 while the receiver holds a transfer not in place yet (its hidden
 * .lanchat-*.part folder). */
static int receiving(void) {
  DIR *d = opendir(g_dl);
  struct dirent *e;
  int part = 0;
  while (d && (e = readdir(d)) != NULL)
    part |= strncmp(e->d_name, ".lanchat-", 9) == 0;
  if (d)
    closedir(d);
  return part;
}

static int g_cut; /* kills that came while receiving */

static void before_kill(int who) {
  (void)who;
  g_cut += receiving();
}

static int sender_done(void) {
  return crash_exists(0, "done");
}

int main(void) {
  crash_init("test_crash_files", 2, child_main);
  snprintf(g_src, sizeof g_src, "%s/src", g_run.dir[0]);
  mkdir(g_src, 0700);
  make_sources();
  snprintf(g_dl, sizeof g_dl, "%s/downloads", g_run.dir[1]);
  mkdir(g_dl, 0700);
  char own[192];
  snprintf(own, sizeof own, "%s/report.bin", g_dl);
  FILE *f = fopen(own, "wb");
  if (!f || fputs(SENTINEL, f) < 0 || fclose(f) != 0)
    crash_die("cannot write %s", own);

  g_run.before_kill = before_kill;
  g_run.busy = receiving;
  crash_spawn(0);
  crash_spawn(1);
  crash_kill_loop(KILLS, NULL);
  printf("test_crash_files: killed the sender %d times, the receiver %d "
         "times, %d of them during a transfer; %d and %d more right after "
         "an offer or an accept\n",
         g_run.kills[0], g_run.kills[1], g_cut, g_run.self_kills[0],
         g_run.self_kills[1]);
  /* now let them finish: the sender marks its folder once every offer is
   * DONE (the receiver's DONE came back) */
  int finished = crash_wait(sender_done, 60000);
  if (crash_stop_all())
    finished = 0;
  if (!finished)
    fprintf(stderr, "the sender never saw all %d offers done\n", OFFERS);
  int bad = check_sender();
  bad |= check_history(0) | check_history(1);
  bad |= check_receiver();
  bad |= check_downloads();
  if (!finished || bad) {
    printf("test_crash_files: FAILED (seed %u; data left in %s and %s)\n",
           g_run.seed, g_run.dir[0], g_run.dir[1]);
    return 1;
  }
  crash_rm_tree(g_run.dir[0]);
  crash_rm_tree(g_run.dir[1]);
  printf("test_crash_files: %d offers (%zu files) each once on both sides, "
         "in place, byte for byte\n",
         OFFERS, NFILES);
  return 0;
}
