/* test_crash.c: exactly once, in order, whatever dies.  A sender process
 * and a receiver process, each one node on 127.0.0.1, are killed with
 * SIGKILL at random moments (24 times in all) and restarted; the sender
 * keeps writing numbered messages, and now and then (a draw from the
 * seed) kills itself right after lc_send_text returned, before the
 * message left.  At the end every message sent is in both histories
 * exactly once, in order.  Nothing leaves the machine.  LC_CRASH_SEED=<n>
 * replays a run's choice of moments.  (test_crash_files.c and
 * test_crash_group.c do the same for transfers and groups.) */
#include "crash_util.h"

#define TOTAL 300   /* messages the sender writes */
#define KILLS 24    /* at least 20 */
#define EVERY_MS 25 /* the sender writes one message this often */

/* ---- the children ----------------------------------------------------------
 */

typedef struct {
  crash_child c;
  int next, done;
} text_child;

/* How many messages the sender wrote before (its history says), and how
 * many of them the receiver has. */
static void sender_count(crash_child *c, int *written, int *delivered) {
  lc_msg_info *m;
  size_t n;
  *written = *delivered = 0;
  if (lc_history_page(c->node, g_run.key[1], 0, TOTAL + 10, &m, &n) < 0)
    return;
  for (size_t i = 0; i < n; i++) {
    (*written)++;
    if (m[i].state == LC_MSG_DELIVERED || m[i].state == LC_MSG_READ)
      (*delivered)++;
  }
  lc_msgs_free(m, n);
}

static void sender_tick(crash_child *c) {
  text_child *t = (text_child *)c;
  if (t->done)
    return;
  if (t->next <= TOTAL) {
    char text[32];
    snprintf(text, sizeof text, "msg-%05d", t->next);
    if (lc_send_text(c->node, g_run.key[1], text, strlen(text), NULL) == 0)
      crash_self_kill(0, (unsigned)t->next++, 32); /* before it left */
    return;
  }
  int written, delivered;
  sender_count(c, &written, &delivered);
  if (delivered == TOTAL) {
    crash_touch(0, "done");
    t->done = 1;
  }
}

static void receiver_tick(crash_child *c) {
  (void)c;
}

static int child_main(int who) {
  static text_child t;
  memset(&t, 0, sizeof t);
  t.c.who = who;
  t.c.on_tick = who == 0 ? sender_tick : receiver_tick;
  uv_loop_init(&t.c.loop);
  lc_node_options o;
  crash_options(&o, who, who == 0 ? "sender" : "receiver", &t);
  if (lc_node_new(&t.c.node, &t.c.loop, &o) < 0)
    return 2;
  if (who == 0) {
    int written, delivered;
    sender_count(&t.c, &written, &delivered);
    t.next = written + 1; /* what is in the history was written */
  }
  return crash_child_run(&t.c, who == 0 ? EVERY_MS : 1000);
}

/* ---- the parent -------------------------------------------------------------
 */

/* The texts of a history, oldest first, with the direction expected. */
static int check_history(int who) {
  crash_reader r;
  crash_open(&r, who);
  lc_msg_info *m;
  size_t count;
  if (lc_history_page(r.node, g_run.key[1 - who], 0, 10 * TOTAL, &m, &count) <
      0)
    crash_die("lc_history_page");
  int bad = 0;
  if (count != TOTAL) {
    fprintf(stderr, "%s: %zu messages in the history, expected %d\n",
            who ? "receiver" : "sender", count, TOTAL);
    bad = 1;
  }
  for (size_t i = 0; i < count && !bad; i++) {
    char want[32];
    /* pages are newest first */
    snprintf(want, sizeof want, "msg-%05d", (int)(count - i));
    if (strcmp(m[i].text, want) != 0 || m[i].outgoing != (who == 0)) {
      fprintf(stderr, "%s: position %zu holds \"%s\", expected \"%s\"\n",
              who ? "receiver" : "sender", count - i, m[i].text, want);
      bad = 1;
    }
  }
  lc_msgs_free(m, count);
  crash_close(&r);
  return bad;
}

static int sender_done(void) {
  return crash_exists(0, "done");
}

int main(void) {
  crash_init("test_crash", 2, child_main);
  crash_spawn(0);
  crash_spawn(1);
  crash_kill_loop(KILLS, NULL);
  printf("test_crash: killed the sender %d times, the receiver %d times; the "
         "sender %d more right after a send\n",
         g_run.kills[0], g_run.kills[1], g_run.self_kills[0]);
  /* now let them finish: the sender marks its folder when the receiver has
   * confirmed every message */
  int finished = crash_wait(sender_done, 60000);
  if (crash_stop_all())
    finished = 0;
  if (!finished)
    fprintf(stderr, "the sender never saw all %d messages delivered\n", TOTAL);
  int bad = check_history(0) | check_history(1);
  if (!finished || bad) {
    printf("test_crash: FAILED (seed %u; data left in %s and %s)\n", g_run.seed,
           g_run.dir[0], g_run.dir[1]);
    return 1;
  }
  crash_rm_tree(g_run.dir[0]);
  crash_rm_tree(g_run.dir[1]);
  printf("test_crash: %d messages in both histories exactly once, in order\n",
         TOTAL);
  return 0;
}
