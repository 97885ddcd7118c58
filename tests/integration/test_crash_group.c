/* test_crash_group.c: a group's changes and messages, whatever dies.  Four
 * processes, each one node on 127.0.0.1: ann creates a group with bob and
 * cy, then adds and removes dee and cy and renames the group, one step
 * every 300 ms; bob renames it too, crossing her; every member sends a
 * numbered message every 200 ms.  All four are killed with SIGKILL at
 * random moments (28 times in all) and restarted; each also kills itself
 * now and then (a draw from the seed) right after a change or a send
 * returned, before what it queued left; and once all is quiet ann renames
 * the group and bob sends a last message, each killed right then and back
 * at once while the others stay up.  At the end the members
 * (ann, bob, cy) agree on the members and the name, dee knows it was
 * removed, and every message whose lc_group_send returned 0 is in its
 * author's history and in every member's exactly once, in one order
 * that all members share.  LC_CRASH_SEED=<n> replays a run's moments. */
#include "crash_util.h"

#define KILLS 28
#define EVERY_MS 25
#define STEP_TICKS 12   /* ann's next change: every 300 ms */
#define SEND_TICKS 8    /* a message from every member: every 200 ms */
#define RENAME_TICKS 44 /* bob renames: every 1.1 s */
#define STATUS_TICKS 8  /* each says what it holds: every 200 ms */
#define MAX_MSGS 4000
#define LAST_AFTER_S 4 /* the last words come this long after the kills */

enum { ANN, BOB, CY, DEE, N };
static const char *const k_nick[N] = {"ann", "bob", "cy", "dee"};

/* ann's script after the CREATE (members bob and cy). */
typedef enum { ADD, REMOVE, RENAME } step_kind;
static const struct {
  step_kind kind;
  int who; /* ADD, REMOVE */
  const char *name;
} k_steps[] = {
    {ADD, DEE, NULL},    {RENAME, 0, "two"},      {REMOVE, CY, NULL},
    {ADD, CY, NULL},     {REMOVE, DEE, NULL},     {RENAME, 0, "six"},
    {ADD, DEE, NULL},    {REMOVE, CY, NULL},      {RENAME, 0, "nine"},
    {ADD, CY, NULL},     {REMOVE, DEE, NULL},     {ADD, DEE, NULL},
    {REMOVE, DEE, NULL}, {RENAME, 0, "fourteen"},
};
#define STEPS ((int)(sizeof k_steps / sizeof k_steps[0]))
static const int k_final[N] = {1, 1, 1, 0}; /* members at the end */

/* ---- the children ---------------------------------------------------------
 */

typedef struct {
  crash_child c;
  int ticks;
  int step;    /* ann: the next step of her script */
  int seq;     /* the number of our next message */
  int renames; /* bob */
  int errors;  /* an lc_ call that failed for no good reason */
  uint8_t gid[LC_GROUP_ID_BYTES];
  int have_gid;
} group_child;

/* The one group this node knows: 1 and *g (free with lc_groups_free), or
 * 0. */
static int the_group(group_child *k, lc_group_info **g) {
  size_t n;
  if (lc_groups(k->c.node, g, &n) < 0)
    return 0;
  if (n != 1) {
    if (n > 1) {
      fprintf(stderr, "%s: %zu groups\n", k_nick[k->c.who], n);
      k->errors++;
    }
    lc_groups_free(*g, n);
    return 0;
  }
  memcpy(k->gid, (*g)->id, LC_GROUP_ID_BYTES);
  k->have_gid = 1;
  return 1;
}

/* What the history of the group holds (count in *n), newest first as
 * pages come. */
static lc_msg_info *group_history(group_child *k, size_t *n) {
  lc_msg_info *m;
  if (!k->have_gid ||
      lc_history_page(k->c.node, k->gid, 0, MAX_MSGS, &m, n) < 0) {
    *n = 0;
    return NULL;
  }
  return m;
}

/* Our next message's number: one past those of ours the history holds
 * (lc_group_send stored every one it accepted). */
static int next_seq(group_child *k) {
  size_t n;
  lc_msg_info *m = group_history(k, &n);
  int mine = 0;
  for (size_t i = 0; i < n; i++)
    mine += memcmp(m[i].sender, g_run.key[k->c.who], LC_KEY_BYTES) == 0;
  lc_msgs_free(m, n);
  return mine + 1;
}

static void save_step(int step) {
  char tmp[192], path[192], text[16];
  crash_path(tmp, sizeof tmp, ANN, "step.tmp");
  crash_path(path, sizeof path, ANN, "step");
  FILE *f = fopen(tmp, "w");
  if (!f)
    return;
  snprintf(text, sizeof text, "%d\n", step);
  fputs(text, f);
  fclose(f);
  rename(tmp, path); /* never half written, whenever the kill comes */
}

static int load_step(void) {
  char path[192];
  crash_path(path, sizeof path, ANN, "step");
  FILE *f = fopen(path, "r");
  int step = 0;
  if (f) {
    if (fscanf(f, "%d", &step) != 1)
      step = 0;
    fclose(f);
  }
  return step;
}

/* ann: the group at first, then one step of the script.  A kill between
 * a change and save_step leaves the step to do again: an ADD or REMOVE
 * done already is refused with LC_ESTATE (and counts as done), a RENAME
 * goes twice. */
static void ann_step(group_child *k, const lc_group_info *g) {
  int rc;
  if (!g) {
    uint8_t members[2][LC_KEY_BYTES];
    memcpy(members[0], g_run.key[BOB], LC_KEY_BYTES);
    memcpy(members[1], g_run.key[CY], LC_KEY_BYTES);
    rc = lc_group_create(k->c.node, "one", members, 2, NULL);
    if (rc < 0) {
      fprintf(stderr, "ann: create: %s\n", lc_strerror(rc));
      k->errors++;
    }
    return;
  }
  if (k->step >= STEPS)
    return;
  const uint8_t *who = g_run.key[k_steps[k->step].who];
  switch (k_steps[k->step].kind) {
  case ADD:
    rc = lc_group_invite(k->c.node, g->id, who);
    break;
  case REMOVE:
    rc = lc_group_remove(k->c.node, g->id, who);
    break;
  default:
    rc = lc_group_rename(k->c.node, g->id, k_steps[k->step].name);
  }
  if (rc == LC_ESTATE && k_steps[k->step].kind != RENAME)
    rc = 0;
  if (rc < 0) {
    fprintf(stderr, "ann: step %d: %s\n", k->step, lc_strerror(rc));
    k->errors++;
    return;
  }
  save_step(++k->step);
  crash_self_kill(ANN, (unsigned)k->step, 4); /* the change not sent yet */
}

static void send_one(group_child *k, const lc_group_info *g) {
  char text[32];
  snprintf(text, sizeof text, "%s-%04d", k_nick[k->c.who], k->seq);
  int rc = lc_group_send(k->c.node, g->id, text, strlen(text), NULL);
  if (rc == LC_ESTATE)
    return; /* not a member now (a change we had not seen yet) */
  if (rc < 0) {
    fprintf(stderr, "%s: send: %s\n", k_nick[k->c.who], lc_strerror(rc));
    k->errors++;
    return;
  }
  crash_log_line(k->c.who, "accepted", text);
  crash_self_kill(k->c.who, (unsigned)k->seq++, 16); /* before it left */
}

/* Once the others are quiet: ann renames the group, bob sends one more
 * message, and each is killed right after the call returned, before its
 * loop sent anything; started again, nothing else happens.  What they
 * wrote reaches the others all the same (their store has it, and they
 * meet the others again). */
static void last_word(group_child *k, const lc_group_info *g) {
  if ((k->c.who != ANN && k->c.who != BOB) || crash_exists(k->c.who, "last") ||
      (k->c.who == ANN && k->step < STEPS))
    return;
  /* and only once the others have been up for a while (a node just
   * started asks everyone what it lacks, which would hide a gap) */
  char quiet[192];
  struct stat st;
  crash_path(quiet, sizeof quiet, ANN, "quiet");
  if (stat(quiet, &st) < 0 || time(NULL) < st.st_mtime + LAST_AFTER_S)
    return;
  int rc;
  if (k->c.who == ANN) {
    rc = lc_group_rename(k->c.node, g->id, "last");
  } else {
    rc = lc_group_send(k->c.node, g->id, "bob-last", 8, NULL);
    if (rc == 0)
      crash_log_line(BOB, "accepted", "bob-last");
  }
  if (rc < 0) {
    fprintf(stderr, "%s: last word: %s\n", k_nick[k->c.who], lc_strerror(rc));
    k->errors++;
    return;
  }
  crash_touch(k->c.who, "last");
  raise(SIGKILL);
}

static int key_cmp(const void *a, const void *b) {
  return memcmp(a, b, LC_KEY_BYTES);
}

/* Says what this node holds (written aside, then renamed): whether it is
 * a member, the members, the name, then the group's texts in the order
 * of its history.  The parent waits until the members' agree. */
static void write_status(group_child *k, const lc_group_info *g) {
  char tmp[192], path[192];
  crash_path(tmp, sizeof tmp, k->c.who, "status.tmp");
  crash_path(path, sizeof path, k->c.who, "status");
  FILE *f = fopen(tmp, "w");
  if (!f)
    return;
  uint8_t keys[LC_GROUP_MEMBERS_MAX][LC_KEY_BYTES];
  size_t nk =
      g->nmembers < LC_GROUP_MEMBERS_MAX ? g->nmembers : LC_GROUP_MEMBERS_MAX;
  for (size_t i = 0; i < nk; i++)
    memcpy(keys[i], g->members[i].key, LC_KEY_BYTES);
  qsort(keys, nk, LC_KEY_BYTES, key_cmp);
  fprintf(f, "member %d\nname %s\nmembers", g->member, g->name);
  for (size_t i = 0; i < nk; i++)
    for (int w = 0; w < N; w++)
      if (memcmp(keys[i], g_run.key[w], LC_KEY_BYTES) == 0)
        fprintf(f, " %s", k_nick[w]);
  fputc('\n', f);
  size_t n;
  lc_msg_info *m = group_history(k, &n);
  for (size_t i = n; i-- > 0;)
    fprintf(f, "%s\n", m[i].text);
  lc_msgs_free(m, n);
  fclose(f);
  rename(tmp, path);
}

static void child_tick(crash_child *c) {
  group_child *k = (group_child *)c;
  int quiet = crash_exists(ANN, "quiet");
  k->ticks++;
  lc_group_info *g = NULL;
  int have = the_group(k, &g);
  if (c->who == ANN && k->ticks % STEP_TICKS == 0)
    ann_step(k, have ? g : NULL);
  if (have && g->member && !quiet) {
    if (k->seq == 0)
      k->seq = next_seq(k);
    if ((k->ticks + c->who) % SEND_TICKS == 0)
      send_one(k, g);
    if (c->who == BOB && k->ticks % RENAME_TICKS == 0) {
      char name[32];
      snprintf(name, sizeof name, "bob-%d-%d", getpid(), ++k->renames);
      int rc = lc_group_rename(c->node, g->id, name);
      if (rc < 0 && rc != LC_ESTATE) {
        fprintf(stderr, "bob: rename: %s\n", lc_strerror(rc));
        k->errors++;
      }
    }
  }
  if (have && g->member && quiet)
    last_word(k, g);
  if (have && k->ticks % STATUS_TICKS == 0)
    write_status(k, g);
  if (have)
    lc_groups_free(g, 1);
}

static void on_message(lc_node *node, const lc_message *m, void *user) {
  (void)node;
  group_child *k = user;
  if (getenv("LC_CRASH_VERBOSE") && strstr(m->text, "last"))
    fprintf(stderr, "%s: got %s at %llu\n", k_nick[k->c.who], m->text,
            (unsigned long long)uv_now(&k->c.loop));
}

static void on_log(lc_node *node, int level, const char *msg, void *user) {
  (void)node;
  group_child *k = user;
  if (getenv("LC_CRASH_VERBOSE") && level <= 3)
    fprintf(stderr, "%s [%llu]: %s\n", k_nick[k->c.who],
            (unsigned long long)uv_now(&k->c.loop), msg);
}

static int child_main(int who) {
  static group_child k;
  memset(&k, 0, sizeof k);
  k.c.who = who;
  k.c.on_tick = child_tick;
  uv_loop_init(&k.c.loop);
  lc_node_options o;
  crash_options(&o, who, k_nick[who], &k);
  o.on_message = on_message;
  o.on_log = on_log;
  if (lc_node_new(&k.c.node, &k.c.loop, &o) < 0)
    return 2;
  if (who == ANN)
    k.step = load_step();
  int rc = crash_child_run(&k.c, EVERY_MS);
  return rc ? rc : k.errors ? 4 : 0;
}

/* ---- the parent -------------------------------------------------------------
 */

/* A file's bytes (malloc'd, NUL-terminated), or NULL. */
static char *slurp(int who, const char *name) {
  char path[192];
  crash_path(path, sizeof path, who, name);
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  size_t cap = 4096, len = 0;
  char *s = malloc(cap);
  size_t r;
  while (s && (r = fread(s + len, 1, cap - len - 1, f)) > 0) {
    len += r;
    if (len + 1 == cap) {
      char *t = realloc(s, cap *= 2);
      if (!t) {
        free(s);
        s = NULL;
      }
      s = t;
    }
  }
  fclose(f);
  if (s)
    s[len] = 0;
  return s;
}

/* 1 if the line occurs in text (a whole line). */
static int has_line(const char *text, const char *line) {
  size_t l = strlen(line);
  for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
    if ((p == text || p[-1] == '\n') && p[l] == '\n')
      return 1;
  return 0;
}

/* Every line of every accepted log is a line of text. */
static int has_accepted(const char *text) {
  int ok = 1;
  for (int w = 0; w < N && ok; w++) {
    char *log = slurp(w, "accepted");
    for (char *line = log ? strtok(log, "\n") : NULL; line && ok;
         line = strtok(NULL, "\n"))
      ok = has_line(text, line);
    free(log);
  }
  return ok;
}

/* The end: ann's script done, the members' statuses the same, every
 * message accepted in them, dee told it was removed. */
static int settled(void) {
  char *st[N];
  for (int w = 0; w < N; w++)
    st[w] = slurp(w, "status");
  char *step = slurp(ANN, "step");
  int ok = step && atoi(step) == STEPS && crash_exists(ANN, "last") &&
           crash_exists(BOB, "last");
  for (int w = 0; w < N && ok; w++) {
    ok = st[w] != NULL;
    if (ok && k_final[w])
      ok = strncmp(st[w], "member 1\n", 9) == 0 && strcmp(st[w], st[ANN]) == 0;
    else if (ok)
      ok = strncmp(st[w], "member 0\n", 9) == 0;
  }
  ok = ok && has_accepted(st[ANN]);
  for (int w = 0; w < N; w++)
    free(st[w]);
  free(step);
  return ok;
}

/* ---- the checks, on the stores once every child stopped -------------------
 */

typedef struct {
  lc_group_info *g;
  size_t ng;
  lc_msg_info *m; /* oldest first */
  size_t n;
} view;

static void read_view(int who, view *v) {
  crash_reader r;
  crash_open(&r, who);
  memset(v, 0, sizeof *v);
  if (lc_groups(r.node, &v->g, &v->ng) < 0)
    crash_die("lc_groups (%s)", k_nick[who]);
  if (v->ng == 1) {
    lc_msg_info *m;
    size_t n;
    if (lc_history_page(r.node, v->g[0].id, 0, MAX_MSGS, &m, &n) < 0)
      crash_die("lc_history_page (%s)", k_nick[who]);
    for (size_t i = 0; i < n / 2; i++) { /* oldest first */
      lc_msg_info t = m[i];
      m[i] = m[n - 1 - i];
      m[n - 1 - i] = t;
    }
    v->m = m;
    v->n = n;
  }
  crash_close(&r);
}

static void free_view(view *v) {
  lc_groups_free(v->g, v->ng);
  lc_msgs_free(v->m, v->n);
}

static int in_view(const view *v, const char *text) {
  int c = 0;
  for (size_t i = 0; i < v->n; i++)
    c += strcmp(v->m[i].text, text) == 0;
  return c;
}

static int check(void) {
  view v[N];
  int bad = 0;
  for (int w = 0; w < N; w++) {
    read_view(w, &v[w]);
    if (v[w].ng != 1) {
      fprintf(stderr, "%s knows %zu groups, expected 1\n", k_nick[w], v[w].ng);
      bad = 1;
    }
  }
  if (bad)
    goto out;
  /* the members: the same id, members, name; dee knows it is out */
  for (int w = 0; w < N; w++) {
    const lc_group_info *g = &v[w].g[0], *a = &v[ANN].g[0];
    if (memcmp(g->id, a->id, LC_GROUP_ID_BYTES) != 0) {
      fprintf(stderr, "%s knows another group\n", k_nick[w]);
      bad = 1;
    }
    if (g->member != k_final[w]) {
      fprintf(stderr, "%s: member %d, expected %d\n", k_nick[w], g->member,
              k_final[w]);
      bad = 1;
    }
    if (!k_final[w])
      continue;
    int in[N] = {0};
    for (size_t i = 0; i < g->nmembers; i++)
      for (int x = 0; x < N; x++)
        in[x] += memcmp(g->members[i].key, g_run.key[x], LC_KEY_BYTES) == 0;
    for (int x = 0; x < N; x++)
      if (in[x] != k_final[x] || g->nmembers != 3) {
        fprintf(stderr, "%s: %s is a member %d times, expected %d\n", k_nick[w],
                k_nick[x], in[x], k_final[x]);
        bad = 1;
      }
    if (strcmp(g->name, a->name) != 0) {
      fprintf(stderr, "%s calls the group \"%s\", ann \"%s\"\n", k_nick[w],
              g->name, a->name);
      bad = 1;
    }
  }
  /* every message accepted is in its author's history */
  int accepted = 0;
  for (int w = 0; w < N; w++) {
    char *log = slurp(w, "accepted");
    for (char *line = log ? strtok(log, "\n") : NULL; line;
         line = strtok(NULL, "\n")) {
      accepted++;
      if (in_view(&v[w], line) != 1) {
        fprintf(stderr, "%s: \"%s\" accepted, %d times in its history\n",
                k_nick[w], line, in_view(&v[w], line));
        bad = 1;
      }
    }
    free(log);
  }
  /* what each author holds of its own is in every member's history once,
   * in the order all members share, and nothing else */
  for (int w = 0; w < N; w++) {
    for (size_t i = 0; i < v[w].n; i++) {
      const lc_msg_info *m = &v[w].m[i];
      if (memcmp(m->sender, g_run.key[w], LC_KEY_BYTES) != 0)
        continue;
      for (int x = 0; x < N; x++)
        if (k_final[x] && in_view(&v[x], m->text) != 1) {
          fprintf(stderr, "%s: \"%s\" %d times in its history\n", k_nick[x],
                  m->text, in_view(&v[x], m->text));
          bad = 1;
        }
    }
  }
  for (int x = 0; x < N; x++) {
    if (!k_final[x])
      continue;
    size_t total = 0;
    for (int w = 0; w < N; w++)
      for (size_t i = 0; i < v[w].n; i++)
        total += memcmp(v[w].m[i].sender, g_run.key[w], LC_KEY_BYTES) == 0;
    if (v[x].n != total) {
      fprintf(stderr, "%s holds %zu messages, their authors %zu\n", k_nick[x],
              v[x].n, total);
      bad = 1;
    }
    for (size_t i = 0; i < v[x].n && i < v[ANN].n; i++) {
      if (memcmp(v[x].m[i].msg_id, v[ANN].m[i].msg_id, LC_MSGID_BYTES) != 0) {
        fprintf(stderr, "%s: message %zu is \"%s\", ann's \"%s\"\n", k_nick[x],
                i, v[x].m[i].text, v[ANN].m[i].text);
        bad = 1;
        break;
      }
    }
  }
  /* dee, out: what it holds, once */
  for (size_t i = 0; i < v[DEE].n; i++)
    if (in_view(&v[DEE], v[DEE].m[i].text) != 1) {
      fprintf(stderr, "dee: \"%s\" twice\n", v[DEE].m[i].text);
      bad = 1;
    }
  if (!bad)
    printf("test_crash_group: %d messages accepted, %zu in each member's "
           "history, group \"%s\"\n",
           accepted, v[ANN].n, v[ANN].g[0].name);
out:
  for (int w = 0; w < N; w++)
    free_view(&v[w]);
  return bad;
}

int main(void) {
  crash_init("test_crash_group", N, child_main);
  for (int w = 0; w < N; w++)
    crash_spawn(w);
  crash_kill_loop(KILLS, NULL);
  printf("test_crash_group: killed ann %d, bob %d, cy %d, dee %d times; "
         "%d, %d, %d, %d more right after a change or a send\n",
         g_run.kills[ANN], g_run.kills[BOB], g_run.kills[CY], g_run.kills[DEE],
         g_run.self_kills[ANN], g_run.self_kills[BOB], g_run.self_kills[CY],
         g_run.self_kills[DEE]);
  crash_touch(ANN, "quiet"); /* no more messages or renames */
  int finished = crash_wait(settled, 30000);
  if (crash_stop_all())
    finished = 0;
  if (!finished)
    fprintf(stderr, "the members never agreed\n");
  int bad = check();
  if (!finished || bad) {
    printf("test_crash_group: FAILED (seed %u; data left in /tmp/lc-%s-*)\n",
           g_run.seed, g_run.name);
    return 1;
  }
  for (int w = 0; w < N; w++)
    crash_rm_tree(g_run.dir[w]);
  printf("test_crash_group: every change and message once, everywhere\n");
  return 0;
}
