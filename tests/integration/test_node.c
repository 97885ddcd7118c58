/* test_node.c: several lc_nodes in one process and one libuv loop, on
 * loopback only (unicast 127.0.0.1, broadcast 127.255.255.255, a discovery
 * port picked free for this run): discovery, chat both ways, presence,
 * nickname, goodbye, expiry, peer lists beyond the broadcast domain, bad
 * input.  Nothing leaves the machine. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <uv.h>

#include "crypto.h"
#include "lanchat.h"
#include "wire.h"

#define MAXN 6
#define MAXMSG 16

typedef struct tn_node {
  struct tn_net *net;
  lc_node *node;
  char dir[64];
  char nick[32];
  uint8_t key[LC_KEY_BYTES];
  int appeared, changed, left_goodbye, left_expired, stopped;
  int delivered, failed, sent, read;
  int typing_seen, typing_state;
  int changes; /* on_changed calls */
  int want;    /* a count a test waits for */
  char last_change[64];
  int stopping;
  int nmsgs;
  char msgs[MAXMSG][64];
  uint8_t msg_from[MAXMSG][LC_KEY_BYTES];
  lc_peer_info last_changed;
  int contact[8]; /* on_contact calls by event */
  lc_contact_info last_contact;
  uint8_t other_key[LC_KEY_BYTES];
  int group_msgs; /* messages received in groups */
  int group_events;
  lc_group_info last_group; /* members not kept */
} tn_node;

typedef struct tn_net {
  uv_loop_t loop;
  uv_timer_t guard;
  int timed_out;
  uint16_t dport;
  tn_node n[MAXN];
  int count;
} tn_net;

static uint16_t tn_free_port(void) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t len = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &len);
  close(fd);
  return ntohs(a.sin_port);
}

static tn_node *tn_self(tn_net *net, lc_node *node) {
  for (int i = 0; i < net->count; i++)
    if (net->n[i].node == node)
      return &net->n[i];
  fail_msg("event for an unknown node");
  return NULL;
}

static void tn_on_peer(lc_node *node, lc_peer_event ev, const lc_peer_info *p,
                       int detail, void *user) {
  tn_node *t = tn_self(user, node);
  if (ev == LC_PEER_APPEARED)
    t->appeared++;
  else if (ev == LC_PEER_CHANGED) {
    t->changed++;
    t->last_changed = *p;
  } else if (detail == LC_LEFT_GOODBYE)
    t->left_goodbye++;
  else
    t->left_expired++;
}

static void tn_on_message(lc_node *node, const lc_message *m, void *user) {
  tn_node *t = tn_self(user, node);
  assert_int_equal(strlen(m->text), m->text_len);
  if (t->nmsgs < MAXMSG) { /* the first ones are kept to be looked at */
    snprintf(t->msgs[t->nmsgs], sizeof t->msgs[0], "%s", m->text);
    memcpy(t->msg_from[t->nmsgs], m->from, LC_KEY_BYTES);
  }
  t->nmsgs++;
  if (m->group)
    t->group_msgs++;
}

static void tn_on_group(lc_node *node, const lc_group_info *g, void *user) {
  tn_node *t = tn_self(user, node);
  t->group_events++;
  t->last_group = *g;
  t->last_group.members = NULL;
  assert_true(g->nmembers <= LC_GROUP_MEMBERS_MAX);
}

static void tn_on_delivery(lc_node *node, const uint8_t peer[LC_KEY_BYTES],
                           const uint8_t id[LC_MSGID_BYTES], lc_msg_state st,
                           int err, void *user) {
  (void)peer;
  (void)id;
  (void)err;
  tn_node *t = tn_self(user, node);
  if (st == LC_MSG_DELIVERED)
    t->delivered++;
  else if (st == LC_MSG_FAILED)
    t->failed++;
  else if (st == LC_MSG_SENT)
    t->sent++;
  else if (st == LC_MSG_READ)
    t->read++;
}

static void tn_on_typing(lc_node *node, const uint8_t peer[LC_KEY_BYTES],
                         lc_typing state, void *user) {
  (void)peer;
  tn_node *t = tn_self(user, node);
  t->typing_seen++;
  t->typing_state = (int)state;
}

static void tn_on_changed(lc_node *node, const lc_msg_info *m, void *user) {
  tn_node *t = tn_self(user, node);
  t->changes++;
  snprintf(t->last_change, sizeof t->last_change, "%s%s",
           m->retracted ? "retracted:" : "", m->text);
}

static void tn_on_contact(lc_node *node, lc_contact_event ev,
                          const lc_contact_info *c, const uint8_t *other,
                          void *user) {
  tn_node *t = tn_self(user, node);
  assert_true(ev >= 1 && ev < 8);
  t->contact[ev]++;
  t->last_contact = *c;
  if (ev == LC_CONTACT_KEY_CHANGED) {
    assert_non_null(other);
    memcpy(t->other_key, other, LC_KEY_BYTES);
  } else {
    assert_null(other);
  }
}

static void tn_on_stop(lc_node *node, void *user) {
  tn_self(user, node)->stopped = 1;
}

static void tn_guard_cb(uv_timer_t *t) {
  ((tn_net *)t->data)->timed_out = 1;
}

/* Runs the loop until pred holds; fails after 15 s of real time. */
static void tn_run_until(tn_net *net, int (*pred)(tn_net *), const char *what) {
  net->timed_out = 0;
  uv_timer_start(&net->guard, tn_guard_cb, 15000, 0);
  while (!pred(net) && !net->timed_out)
    uv_run(&net->loop, UV_RUN_ONCE);
  uv_timer_stop(&net->guard);
  if (!pred(net))
    fail_msg("timed out waiting for: %s", what);
}

typedef struct {
  const char *interfaces;
  const char *broadcast;
  const char *statics;
  uint16_t dport; /* 0: the net's */
  int dir;        /* 1: reuse the slot's data folder (a restart) */
  int no_start;
} tn_opts;

/* Creates node `slot` (a new data folder, or to->dir again), and starts it
 * unless to->no_start. */
static void tn_make(tn_net *net, int slot, const char *nick,
                    const tn_opts *to) {
  tn_node *t = &net->n[slot];
  char dir[64];
  snprintf(dir, sizeof dir, "%s", t->dir);
  memset(t, 0, sizeof *t);
  t->net = net;
  snprintf(t->nick, sizeof t->nick, "%s", nick);
  if (to && to->dir) {
    snprintf(t->dir, sizeof t->dir, "%s", dir);
  } else {
    snprintf(t->dir, sizeof t->dir, "/tmp/lc-test-node-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
  }
  lc_node_options o;
  lc_node_options_init(&o);
  o.data_dir = t->dir;
  o.nickname = nick;
  o.discovery_port = to && to->dport ? to->dport : net->dport;
  o.bind_v4 = "127.0.0.1";
  o.bind_v6 = ""; /* loopback has no multicast: IPv6 is for netns tests */
  o.interfaces = to && to->interfaces ? to->interfaces : "lo";
  o.broadcast = to && to->broadcast ? to->broadcast : "127.255.255.255";
  o.static_peers = to ? to->statics : NULL;
  o.announce_interval_ms = 1000;
  o.on_peer = tn_on_peer;
  o.on_message = tn_on_message;
  o.on_delivery = tn_on_delivery;
  o.on_typing = tn_on_typing;
  o.on_changed = tn_on_changed;
  o.on_contact = tn_on_contact;
  o.on_group = tn_on_group;
  o.user_data = net;
  assert_int_equal(lc_node_new(&t->node, &net->loop, &o), 0);
  lc_node_key(t->node, t->key);
  if (to && to->no_start)
    return;
  assert_int_equal(lc_node_start(t->node), 0);
  assert_true(lc_node_port(t->node) > 0);
}

static void tn_add(tn_net *net, const char *nick, const tn_opts *to) {
  tn_make(net, net->count++, nick, to);
}

static void tn_init(tn_net *net) {
  memset(net, 0, sizeof *net);
  assert_int_equal(uv_loop_init(&net->loop), 0);
  uv_timer_init(&net->loop, &net->guard);
  net->guard.data = net;
  net->dport = tn_free_port();
}

static int tn_all_stopped(tn_net *net) {
  for (int i = 0; i < net->count; i++)
    if (net->n[i].node && !net->n[i].stopped)
      return 0;
  return 1;
}

static void tn_stop(tn_node *t) {
  assert_int_equal(lc_node_stop(t->node, tn_on_stop), 0);
  assert_int_equal(lc_node_stop(t->node, tn_on_stop), LC_ESTATE);
}

static void tn_rmdir(const char *dir) {
  const char *files[] = {"identity.key", "history.db", "history.db-wal",
                         "history.db-shm"};
  char path[128];
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, files[i]);
    unlink(path);
  }
  assert_int_equal(rmdir(dir), 0);
}

static void tn_done(tn_net *net) {
  for (int i = 0; i < net->count; i++)
    if (net->n[i].node && !net->n[i].stopped)
      tn_stop(&net->n[i]);
  tn_run_until(net, tn_all_stopped, "every node stopped");
  for (int i = 0; i < net->count; i++) {
    lc_node_free(net->n[i].node);
    tn_rmdir(net->n[i].dir);
  }
  uv_close((uv_handle_t *)&net->guard, NULL);
  uv_run(&net->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&net->loop), 0);
}

static int tn_peer_count(tn_node *t) {
  lc_peer_info *v;
  size_t c;
  assert_int_equal(lc_node_peers(t->node, &v, &c), 0);
  lc_peers_free(v);
  return (int)c;
}

static int tn_all_see_all(tn_net *net) {
  for (int i = 0; i < net->count; i++)
    if (tn_peer_count(&net->n[i]) != net->count - 1)
      return 0;
  return 1;
}

/* ---- tests --------------------------------------------------------------- */

static int tn_chat_done(tn_net *net) {
  return net->n[0].nmsgs == 1 && net->n[1].nmsgs == 1 &&
         net->n[0].delivered == 1 && net->n[1].delivered == 1;
}

static int tn_bob_sees_typing(tn_net *net) {
  return net->n[1].typing_seen > 0;
}

static void test_discover_and_chat(void **state) {
  (void)state;
  tn_net net;
  tn_init(&net);
  tn_add(&net, "alice", NULL);
  tn_add(&net, "bob", NULL);
  tn_add(&net, "carol", NULL);
  tn_run_until(&net, tn_all_see_all, "three nodes see each other");
  for (int i = 0; i < 3; i++)
    assert_int_equal(net.n[i].appeared, 2);

  lc_peer_info *v;
  size_t c;
  assert_int_equal(lc_node_peers(net.n[0].node, &v, &c), 0);
  assert_int_equal(c, 2);
  int saw_bob = 0;
  for (size_t i = 0; i < c; i++) {
    assert_int_equal(v[i].presence, LC_PRESENCE_ONLINE);
    assert_int_equal(v[i].remote, 0);
    assert_true(strncmp(v[i].address, "127.0.0.1:", 10) == 0);
    if (strcmp(v[i].nickname, "bob") == 0) {
      saw_bob = 1;
      assert_memory_equal(v[i].key, net.n[1].key, LC_KEY_BYTES);
    }
  }
  assert_true(saw_bob);
  lc_peers_free(v);

  uint8_t id[LC_MSGID_BYTES];
  assert_int_equal(lc_send_text(net.n[0].node, net.n[1].key, "hi bob", 6, id),
                   0);
  assert_int_equal(
      lc_send_text(net.n[1].node, net.n[0].key, "hi alice", 8, NULL), 0);
  /* no callback fires inside the call that caused it */
  assert_int_equal(net.n[0].delivered + net.n[1].nmsgs, 0);
  tn_run_until(&net, tn_chat_done, "a message each way, delivered");
  assert_string_equal(net.n[1].msgs[0], "hi bob");
  assert_memory_equal(net.n[1].msg_from[0], net.n[0].key, LC_KEY_BYTES);
  assert_string_equal(net.n[0].msgs[0], "hi alice");
  assert_int_equal(net.n[2].nmsgs, 0);

  /* typing notices, once a session exists */
  assert_int_equal(
      lc_send_typing(net.n[0].node, net.n[1].key, LC_TYPING_COMPOSING), 0);
  tn_run_until(&net, tn_bob_sees_typing, "bob sees alice typing");
  assert_int_equal(net.n[1].typing_state, LC_TYPING_COMPOSING);
  assert_int_equal(lc_send_typing(net.n[0].node, net.n[1].key, 7), LC_EINVAL);
  uint8_t absent[LC_KEY_BYTES];
  memcpy(absent, net.n[2].key, LC_KEY_BYTES);
  absent[5] ^= 1;
  assert_int_equal(lc_send_typing(net.n[0].node, absent, LC_TYPING_COMPOSING),
                   LC_ENOPEER);

  /* refusals: a key that is no identity, bad UTF-8, ourselves */
  uint8_t nobody[LC_KEY_BYTES] = {1};
  assert_int_equal(lc_send_text(net.n[0].node, nobody, "x", 1, NULL),
                   LC_EINVAL);
  assert_int_equal(lc_send_text(net.n[0].node, net.n[1].key, "\xff", 1, NULL),
                   LC_EINVAL);
  assert_int_equal(lc_send_text(net.n[0].node, net.n[0].key, "me", 2, NULL),
                   LC_EINVAL);
  tn_done(&net);
}

static int tn_bob_carol_see_away(tn_net *net) {
  for (int i = 1; i < 3; i++) {
    lc_peer_info *p = &net->n[i].last_changed;
    if (strcmp(p->nickname, "alice") != 0 || p->presence != LC_PRESENCE_AWAY ||
        strcmp(p->status, "at lunch") != 0)
      return 0;
  }
  return 1;
}

static int tn_bob_carol_see_rename(tn_net *net) {
  for (int i = 1; i < 3; i++)
    if (strcmp(net->n[i].last_changed.nickname, "alice2") != 0)
      return 0;
  return 1;
}

static int tn_goodbye_seen(tn_net *net) {
  return net->n[0].left_goodbye == 1 && net->n[1].left_goodbye == 1 &&
         net->n[2].stopped;
}

static void test_presence_and_goodbye(void **state) {
  (void)state;
  tn_net net;
  tn_init(&net);
  tn_add(&net, "alice", NULL);
  tn_add(&net, "bob", NULL);
  tn_add(&net, "carol", NULL);
  tn_run_until(&net, tn_all_see_all, "three nodes see each other");

  assert_int_equal(
      lc_node_set_presence(net.n[0].node, LC_PRESENCE_AWAY, "at lunch"), 0);
  tn_run_until(&net, tn_bob_carol_see_away, "alice seen away at lunch");
  assert_int_equal(lc_node_set_nickname(net.n[0].node, "alice2"), 0);
  tn_run_until(&net, tn_bob_carol_see_rename, "alice seen as alice2");
  assert_int_equal(net.n[1].last_changed.presence, LC_PRESENCE_AWAY);

  assert_int_equal(
      lc_node_set_presence(net.n[0].node, LC_PRESENCE_OFFLINE, NULL),
      LC_EINVAL);
  assert_int_equal(lc_node_set_nickname(net.n[0].node, ""), LC_EINVAL);

  tn_stop(&net.n[2]);
  tn_run_until(&net, tn_goodbye_seen, "carol's goodbye seen by both");
  assert_int_equal(net.n[0].left_expired + net.n[1].left_expired, 0);
  assert_int_equal(tn_peer_count(&net.n[0]), 1);
  /* a stopped node: harmless calls, clear refusals */
  assert_int_equal(lc_node_set_nickname(net.n[2].node, "carol2"), 0);
  assert_int_equal(
      lc_node_set_presence(net.n[2].node, LC_PRESENCE_BUSY, "gone"), 0);
  assert_int_equal(lc_send_text(net.n[2].node, net.n[0].key, "x", 1, NULL),
                   LC_ESTATE);
  assert_int_equal(lc_node_start(net.n[2].node), LC_ESTATE);
  assert_int_equal(lc_node_stop(net.n[2].node, NULL), LC_ESTATE);
  assert_int_equal(lc_node_port(net.n[2].node) > 0, 1);
  /* freeing a running node is refused (a no-op): it keeps working */
  lc_node_free(net.n[0].node);
  assert_int_equal(lc_send_text(net.n[0].node, net.n[1].key, "ok", 2, NULL), 0);
  tn_done(&net);
}

/* A peer that falls silent (no goodbye) expires after three of its
 * intervals.  It is played by a raw socket sending one signed ANNOUNCE. */
static int tn_expired_seen(tn_net *net) {
  return net->n[0].left_expired == 1 && net->n[1].left_expired == 1;
}

static int tn_ghost_seen(tn_net *net) {
  return net->n[0].appeared == 2 && net->n[1].appeared == 2;
}

static void tn_send_raw(uint16_t port, const char *ip, const uint8_t *buf,
                        size_t len) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  assert_true(fd >= 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip, &a.sin_addr);
  assert_int_equal(sendto(fd, buf, len, 0, (struct sockaddr *)&a, sizeof a),
                   (ssize_t)len);
  close(fd);
}

static int tn_ghost_announce(uint8_t *buf, size_t cap, const lc__identity *id,
                             uint64_t ts) {
  lc__disc_datagram dg;
  memset(&dg, 0, sizeof dg);
  dg.type = LC_DG_ANNOUNCE;
  dg.u.announce.flags = LC_ANN_REPLY; /* asks for no answer */
  memcpy(dg.u.announce.key, id->pk, LC_PK_BYTES);
  dg.u.announce.timestamp_us = ts;
  dg.u.announce.port = 9; /* discard: never reached */
  dg.u.announce.interval_ms = 1000;
  dg.u.announce.presence = 1;
  dg.u.announce.caps = 0;
  dg.u.announce.nick = "ghost";
  dg.u.announce.nick_len = 5;
  dg.u.announce.status = "";
  int n = lc__disc_encode_body(&dg, buf, cap);
  assert_true(n > 0);
  uint8_t sig[LC_SIG_BYTES];
  lc__sign(id, buf, (size_t)n, sig);
  n = lc__disc_encode_sig(buf, cap, (size_t)n, sig);
  assert_true(n > 0);
  return n;
}

static int tn_chat_done_one(tn_net *net) {
  return net->n[1].nmsgs == 1 && net->n[0].delivered == 1;
}

static void test_expiry_and_bad_input(void **state) {
  (void)state;
  tn_net net;
  tn_init(&net);
  tn_add(&net, "alice", NULL);
  tn_add(&net, "bob", NULL);
  tn_run_until(&net, tn_all_see_all, "two nodes see each other");

  lc_node_stats before;
  lc_node_stats_get(net.n[0].node, &before);
  /* garbage on the discovery port and on a unicast port: counted, no harm */
  const uint8_t junk[][8] = {{0x93, 0x01, 0x01, 0xc1},
                             {0x92, 0x01, 0x05},
                             {0xff, 0xff, 0xff, 0xff},
                             {0x95, 0x01, 0x04, 0x00, 0x00}};
  for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
    tn_send_raw(net.dport, "127.255.255.255", junk[i], sizeof junk[i]);
    tn_send_raw((uint16_t)lc_node_port(net.n[0].node), "127.0.0.1", junk[i],
                sizeof junk[i]);
  }

  lc__identity ghost;
  assert_int_equal(lc__identity_generate(&ghost, NULL), 0);
  uint8_t buf[512];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t now_us = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
  int n = tn_ghost_announce(buf, sizeof buf, &ghost, now_us);
  tn_send_raw(net.dport, "127.255.255.255", buf, (size_t)n);
  tn_run_until(&net, tn_ghost_seen, "the ghost appears");
  /* the same datagram again is a duplicate; a forged signature is refused */
  tn_send_raw(net.dport, "127.255.255.255", buf, (size_t)n);
  n = tn_ghost_announce(buf, sizeof buf, &ghost, now_us + 1);
  buf[n - 1] ^= 1;
  tn_send_raw(net.dport, "127.255.255.255", buf, (size_t)n);
  tn_run_until(&net, tn_expired_seen, "the ghost expires");
  assert_int_equal(net.n[0].left_goodbye, 0);
  assert_int_equal(tn_peer_count(&net.n[0]), 1); /* bob is still there */

  lc_node_stats after;
  lc_node_stats_get(net.n[0].node, &after);
  assert_true(after.bad_datagrams >= before.bad_datagrams + 8);
  assert_true(after.bad_announces >= before.bad_announces + 1);

  /* and the nodes still talk */
  assert_int_equal(lc_send_text(net.n[0].node, net.n[1].key, "still", 5, NULL),
                   0);
  tn_run_until(&net, tn_chat_done_one, "a message after the junk");
  tn_done(&net);
}

/* Beyond the broadcast domain: dave listens on another discovery port (so
 * he hears none of the others' broadcasts) and knows only alice, as a
 * static peer.  Alice, with no subnet of her own, counts everyone as
 * remote, so she tells dave whom she hears; dave probes them. */
static int tn_dave_sees_all(tn_net *net) {
  return tn_peer_count(&net->n[3]) == 3 && tn_peer_count(&net->n[1]) == 3 &&
         tn_peer_count(&net->n[2]) == 3;
}

static int tn_carol_got_one(tn_net *net) {
  return net->n[2].nmsgs == 1 && net->n[3].delivered == 1;
}

static void test_static_peer_and_lists(void **state) {
  (void)state;
  tn_net net;
  tn_init(&net);
  tn_opts alice = {.interfaces = "no-such-interface"};
  tn_add(&net, "alice", &alice);
  tn_add(&net, "bob", NULL);
  tn_add(&net, "carol", NULL);
  tn_run_until(&net, tn_all_see_all, "three nodes see each other");
  char st[64];
  snprintf(st, sizeof st, "127.0.0.1:%d", lc_node_port(net.n[0].node));
  tn_opts dave = {.interfaces = "no-such-interface",
                  .statics = st,
                  .dport = tn_free_port()};
  tn_add(&net, "dave", &dave);
  tn_run_until(&net, tn_dave_sees_all, "dave and everyone see each other");
  lc_peer_info *v;
  size_t c;
  assert_int_equal(lc_node_peers(net.n[3].node, &v, &c), 0);
  for (size_t i = 0; i < c; i++)
    assert_int_equal(v[i].remote, 1);
  lc_peers_free(v);
  assert_int_equal(
      lc_send_text(net.n[3].node, net.n[2].key, "hello from afar", 15, NULL),
      0);
  tn_run_until(&net, tn_carol_got_one, "carol receives dave's message");
  assert_string_equal(net.n[2].msgs[0], "hello from afar");
  tn_done(&net);
}

/* ---- history: offline delivery, restarts, receipts, queries ------------- */

static int tn_bob_has_three(tn_net *net) {
  return net->n[1].nmsgs == 3 && net->n[0].delivered == 3;
}

static int tn_alice_read3(tn_net *net) {
  return net->n[0].read == 3;
}

static int tn_one_stopped(tn_net *net) {
  for (int i = 0; i < net->count; i++)
    if (net->n[i].stopping && !net->n[i].stopped)
      return 0;
  return 1;
}

static void tn_stop_free(tn_net *net, int i) {
  net->n[i].stopping = 1;
  tn_stop(&net->n[i]);
  tn_run_until(net, tn_one_stopped, "the node stopped");
  lc_node_free(net->n[i].node);
  net->n[i].node = NULL;
}

static int tn_alice_has_two(tn_net *net) {
  return net->n[0].nmsgs == 2 && net->n[1].delivered == 2;
}

static int tn_bob_got_m4(tn_net *net) {
  return net->n[1].nmsgs == net->n[1].want && net->n[0].delivered > 0;
}

static int tn_alice_read1(tn_net *net) {
  return net->n[0].read == 1;
}

static int tn_alice_two_changes(tn_net *net) {
  return net->n[0].changes == 2;
}

static void test_offline_restart_receipts(void **state) {
  (void)state;
  tn_net net;
  tn_init(&net);
  tn_add(&net, "alice", NULL);
  tn_opts later = {.no_start = 1};
  tn_add(&net, "bob", &later); /* has a key, not on the LAN yet */
  uint8_t ids[3][LC_MSGID_BYTES];
  for (int i = 0; i < 3; i++) {
    char t[8];
    snprintf(t, sizeof t, "m%d", i + 1);
    assert_int_equal(lc_send_text(net.n[0].node, net.n[1].key, t, 2, ids[i]),
                     0);
  }
  /* committed before the call returned, queued while bob is away */
  lc_msg_info *m;
  size_t n;
  assert_int_equal(lc_history_page(net.n[0].node, net.n[1].key, 0, 10, &m, &n),
                   0);
  assert_int_equal(n, 3);
  assert_string_equal(m[0].text, "m3");
  assert_int_equal(m[0].outgoing, 1);
  assert_int_equal(m[0].state, LC_MSG_QUEUED);
  assert_memory_equal(m[2].msg_id, ids[0], LC_MSGID_BYTES);
  lc_msgs_free(m, n);

  /* bob comes: the outbox goes, in order, once */
  assert_int_equal(lc_node_start(net.n[1].node), 0);
  tn_run_until(&net, tn_bob_has_three, "bob receives the three");
  assert_string_equal(net.n[1].msgs[0], "m1");
  assert_string_equal(net.n[1].msgs[2], "m3");
  assert_int_equal(net.n[0].sent, 3);
  assert_int_equal(lc_unread_total(net.n[1].node), 3);
  lc_conversation_info *c;
  size_t nc;
  assert_int_equal(lc_conversations(net.n[1].node, &c, &nc), 0);
  assert_int_equal(nc, 1);
  assert_memory_equal(c[0].peer, net.n[0].key, LC_KEY_BYTES);
  assert_int_equal(c[0].unread, 3);
  assert_string_equal(c[0].last.text, "m3");
  assert_int_equal(c[0].last.outgoing, 0);
  lc_conversations_free(c, nc);

  /* bob reads the first alone, then the rest: alice sees READ for all */
  assert_int_equal(lc_mark_message_read(net.n[1].node, ids[0]), 1);
  assert_int_equal(lc_mark_message_read(net.n[1].node, ids[0]), 0);
  assert_int_equal(lc_mark_message_read(net.n[0].node, ids[0]),
                   LC_EINVAL); /* alice's own message */
  assert_int_equal(lc_unread_total(net.n[1].node), 2);
  assert_int_equal(lc_mark_read(net.n[1].node, net.n[0].key, 0), 2);
  assert_int_equal(lc_unread_total(net.n[1].node), 0);
  tn_run_until(&net, tn_alice_read3, "alice sees the read receipts");
  assert_int_equal(lc_history_page(net.n[0].node, net.n[1].key, 0, 10, &m, &n),
                   0);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(m[i].state, LC_MSG_READ);
  lc_msgs_free(m, n);

  /* alice leaves; bob writes twice and stops too: both restart, and the
   * two arrive once, from bob's outbox on disk */
  tn_stop_free(&net, 0);
  assert_int_equal(
      lc_send_text(net.n[1].node, net.n[0].key, "are you", 7, NULL), 0);
  assert_int_equal(lc_send_text(net.n[1].node, net.n[0].key, "there?", 6, NULL),
                   0);
  tn_stop_free(&net, 1);
  tn_opts again = {.dir = 1};
  tn_make(&net, 1, "bob", &again);
  tn_make(&net, 0, "alice", &again);
  tn_run_until(&net, tn_alice_has_two, "alice gets bob's two after restarts");
  assert_string_equal(net.n[0].msgs[0], "are you");
  assert_string_equal(net.n[0].msgs[1], "there?");
  /* alice's history kept everything, in order */
  assert_int_equal(lc_history_page(net.n[0].node, net.n[1].key, 0, 10, &m, &n),
                   0);
  assert_int_equal(n, 5);
  const char *want[] = {"there?", "are you", "m3", "m2", "m1"};
  for (size_t i = 0; i < n; i++)
    assert_string_equal(m[i].text, want[i]);
  int64_t older = m[1].id;
  lc_msgs_free(m, n);
  assert_int_equal(
      lc_history_page(net.n[0].node, net.n[1].key, older, 2, &m, &n), 0);
  assert_int_equal(n, 2);
  assert_string_equal(m[0].text, "m3");
  lc_msgs_free(m, n);
  assert_int_equal(lc_history_search(net.n[0].node, NULL, "there", 10, &m, &n),
                   0);
  assert_int_equal(n, 1);
  assert_int_equal(m[0].outgoing, 0);
  lc_msgs_free(m, n);
  assert_int_equal(lc_history_search(net.n[0].node, NULL, "\"", 10, &m, &n),
                   LC_EINVAL);
  assert_int_equal(lc_unread_total(net.n[0].node), 2);

  /* bob edits one and retracts the other while alice is away: her copies
   * change when she is back */
  assert_int_equal(lc_history_page(net.n[1].node, net.n[0].key, 0, 2, &m, &n),
                   0);
  uint8_t there[LC_MSGID_BYTES], areyou[LC_MSGID_BYTES];
  memcpy(there, m[0].msg_id, LC_MSGID_BYTES);
  memcpy(areyou, m[1].msg_id, LC_MSGID_BYTES);
  lc_msgs_free(m, n);
  tn_stop_free(&net, 0);
  assert_int_equal(lc_edit_message(net.n[1].node, there, "still there?", 12),
                   0);
  assert_int_equal(lc_retract_message(net.n[1].node, areyou), 0);
  assert_int_equal(lc_edit_message(net.n[1].node, areyou, "x", 1), LC_EINVAL);
  assert_int_equal(lc_edit_message(net.n[1].node, ids[0], "x", 1),
                   LC_EINVAL); /* alice's message, not bob's */
  tn_make(&net, 0, "alice", &again);
  tn_run_until(&net, tn_alice_two_changes, "alice sees the edit and retract");
  assert_int_equal(lc_history_page(net.n[0].node, net.n[1].key, 0, 2, &m, &n),
                   0);
  assert_string_equal(m[0].text, "still there?");
  assert_true(m[0].edited_ms > 0);
  assert_string_equal(m[1].text, "");
  assert_int_equal(m[1].retracted, 1);
  lc_msgs_free(m, n);

  /* a read receipt owed to an absent peer reaches it when it is back */
  uint8_t m4[LC_MSGID_BYTES];
  net.n[1].want = net.n[1].nmsgs + 1;
  assert_int_equal(lc_send_text(net.n[0].node, net.n[1].key, "m4", 2, m4), 0);
  tn_run_until(&net, tn_bob_got_m4, "bob receives m4");
  tn_stop_free(&net, 0);
  assert_int_equal(lc_mark_message_read(net.n[1].node, m4), 1);
  tn_make(&net, 0, "alice", &again);
  tn_run_until(&net, tn_alice_read1, "alice gets the receipt after a restart");
  assert_int_equal(lc_history_page(net.n[0].node, net.n[1].key, 0, 1, &m, &n),
                   0);
  assert_int_equal(n, 1);
  assert_memory_equal(m[0].msg_id, m4, LC_MSGID_BYTES);
  assert_int_equal(m[0].state, LC_MSG_READ);
  lc_msgs_free(m, n);

  /* exports, oldest first */
  char path[128], line[512];
  snprintf(path, sizeof path, "%s/export.jsonl", net.n[0].dir);
  assert_int_equal(lc_export_conversation(net.n[0].node, net.n[1].key,
                                          LC_EXPORT_JSONL, path),
                   6);
  FILE *fp = fopen(path, "r");
  assert_non_null(fp);
  int lines = 0;
  while (fgets(line, sizeof line, fp)) {
    lines++;
    assert_true(line[0] == '{' && strstr(line, "}\n"));
    if (lines == 1)
      assert_non_null(strstr(line, "\"direction\":\"out\""));
    if (lines == 1)
      assert_non_null(strstr(line, "\"text\":\"m1\""));
    if (lines == 4)
      assert_non_null(strstr(line, "\"retracted\":true,\"text\":\"\"}"));
    if (lines == 5)
      assert_non_null(strstr(line, "\"text\":\"still there?\""));
  }
  fclose(fp);
  assert_int_equal(lines, 6);
  unlink(path);
  snprintf(path, sizeof path, "%s/export.txt", net.n[0].dir);
  assert_int_equal(
      lc_export_conversation(net.n[0].node, net.n[1].key, LC_EXPORT_TEXT, path),
      6);
  fp = fopen(path, "r");
  assert_non_null(fp);
  lines = 0;
  while (fgets(line, sizeof line, fp)) {
    lines++;
    if (lines == 1)
      assert_non_null(strstr(line, "] me: m1\n"));
    if (lines == 4)
      assert_non_null(strstr(line, "] bob: (retracted)\n"));
    if (lines == 5)
      assert_non_null(strstr(line, "] bob: still there? (edited)\n"));
  }
  fclose(fp);
  assert_int_equal(lines, 6);
  unlink(path);
  assert_int_equal(lc_export_conversation(net.n[0].node, net.n[1].key, 9, path),
                   LC_EINVAL);
  assert_int_equal(lc_export_conversation(net.n[0].node, net.n[1].key,
                                          LC_EXPORT_TEXT,
                                          "/nonexistent/dir/x.txt"),
                   -ENOENT);
  tn_done(&net);
}

/* A burst: 3,000 messages sent in one go to a present peer, all stored,
 * sent, delivered once and in order. */
#define BURST 3000
static int tn_burst_done(tn_net *net) {
  return net->n[1].nmsgs == BURST && net->n[0].delivered == BURST;
}

static void tc_pause(tn_net *net, int ms);

static void test_burst(void **state) {
  (void)state;
  tn_net net;
  tn_init(&net);
  tn_add(&net, "alice", NULL);
  tn_add(&net, "bob", NULL);
  tn_run_until(&net, tn_all_see_all, "two nodes see each other");
  lc_node *a = net.n[0].node;
  char db[96];
  snprintf(db, sizeof db, "%s/history.db", net.n[0].dir);
  struct stat st0;
  assert_int_equal(stat(db, &st0), 0);
  off_t db_before = st0.st_size;
  assert_int_equal(lc_batch_end(a), LC_ESTATE); /* no batch open */
  /* the first half in batches of 32 (one nested), the rest one by one */
  for (int i = 0; i < BURST; i++) {
    char t[16];
    snprintf(t, sizeof t, "b%04d", i);
    if (i < BURST / 2 && i % 32 == 0) {
      assert_int_equal(lc_batch_begin(a), 0);
      assert_int_equal(lc_batch_begin(a), 0);
    }
    assert_int_equal(lc_send_text(a, net.n[1].key, t, 5, NULL), 0);
    if (i < BURST / 2 && (i % 32 == 31 || i == BURST / 2 - 1)) {
      assert_int_equal(lc_batch_end(a), 0);
      /* stored (uncommitted) and readable within the batch */
      lc_msg_info *mine;
      size_t k;
      assert_int_equal(lc_history_page(a, net.n[1].key, 0, 1, &mine, &k), 0);
      assert_int_equal(k, 1);
      assert_string_equal(mine[0].text, t);
      lc_msgs_free(mine, k);
      assert_int_equal(lc_batch_end(a), 0);
    }
  }
  assert_int_equal(lc_batch_end(a), LC_ESTATE);
  tn_run_until(&net, tn_burst_done, "the burst arrives");
  lc_msg_info *m;
  size_t n;
  assert_int_equal(
      lc_history_page(net.n[1].node, net.n[0].key, 0, 2 * BURST, &m, &n), 0);
  assert_int_equal(n, BURST);
  for (size_t i = 0; i < n; i++) {
    char t[16];
    snprintf(t, sizeof t, "b%04d", (int)(BURST - 1 - i));
    assert_string_equal(m[i].text, t);
  }
  lc_msgs_free(m, n);
  assert_int_equal(net.n[0].failed, 0);
  /* the log was copied into the database file by the checkpoints on the
   * worker threads (the node turns SQLite's own off) */
  struct stat st;
  for (int i = 0; i < 100; i++) {
    assert_int_equal(stat(db, &st), 0);
    if (st.st_size > db_before + 64 * 1024)
      break;
    tc_pause(&net, 20);
  }
  assert_true(st.st_size > db_before + 64 * 1024);
  tn_done(&net);
}

static void tn_log_ignore(lc_node *node, int level, const char *msg,
                          void *user) {
  (void)node;
  (void)level;
  (void)msg;
  (*(int *)user)++;
}

static tn_node *tc_wait_node;
static int tc_wait_event, tc_wait_count;
static int tc_contact_seen(tn_net *net) {
  (void)net;
  return tc_wait_node->contact[tc_wait_event] >= tc_wait_count;
}
static void tc_wait(tn_net *net, tn_node *t, int ev, int count,
                    const char *what) {
  tc_wait_node = t;
  tc_wait_event = ev;
  tc_wait_count = count;
  tn_run_until(net, tc_contact_seen, what);
}

static int tc_state(tn_node *t, const tn_node *of) {
  lc_contact_info c;
  assert_true(lc_contact_get(t->node, of->key, &c) >= 0);
  return (int)c.state;
}

static int tc_sees(tn_net *net) {
  for (int i = 0; i < net->count; i++)
    if (net->n[i].node && tn_peer_count(&net->n[i]) < net->n[i].want)
      return 0;
  return 1;
}

static void tc_wait_peers(tn_net *net, int want) {
  for (int i = 0; i < net->count; i++)
    net->n[i].want = want;
  tn_run_until(net, tc_sees, "every node sees the others");
}

static int tc_msgs_want(tn_net *net) {
  (void)net;
  return tc_wait_node->nmsgs >= tc_wait_node->want;
}

static int tc_delivered_want(tn_net *net) {
  return net->n[2].delivered >= net->n[2].want;
}

/* Runs the loop for ms of real time. */
static void tc_pause(tn_net *net, int ms) {
  uv_timer_start(&net->guard, tn_guard_cb, (uint64_t)ms, 0);
  net->timed_out = 0;
  while (!net->timed_out)
    uv_run(&net->loop, UV_RUN_ONCE);
}

/* alice, bob and carol on loopback, each seeing the two others. */
static void tn_three(tn_net *net) {
  tn_init(net);
  tn_add(net, "alice", NULL);
  tn_add(net, "bob", NULL);
  tn_add(net, "carol", NULL);
  tc_wait_peers(net, 2);
}

static void test_contacts_and_trust(void **state) {
  (void)state;
  tn_net net;
  tn_three(&net);
  tn_node *a = &net.n[0], *b = &net.n[1], *c = &net.n[2];

  /* a request with a note, accepted */
  assert_int_equal(lc_contact_request(a->node, b->key, "hi bob, it's alice"),
                   0);
  assert_int_equal(tc_state(a, b), LC_CONTACT_ASKED);
  tc_wait(&net, b, LC_CONTACT_REQUESTED, 1, "bob gets alice's request");
  assert_string_equal(b->last_contact.note, "hi bob, it's alice");
  assert_string_equal(b->last_contact.nickname, "alice");
  assert_int_equal(tc_state(b, a), LC_CONTACT_ASKING);
  assert_int_equal(lc_contact_reject(a->node, b->key), LC_ESTATE);
  assert_int_equal(lc_contact_accept(b->node, a->key), 0);
  tc_wait(&net, a, LC_CONTACT_ACCEPTED, 1, "alice learns bob accepted");
  assert_int_equal(tc_state(a, b), LC_CONTACT_FRIEND);
  assert_int_equal(tc_state(b, a), LC_CONTACT_FRIEND);
  assert_int_equal(lc_contact_request(a->node, b->key, NULL), LC_EEXIST);
  assert_int_equal(lc_contact_request(a->node, a->key, NULL), LC_EINVAL);
  char big[LC_NOTE_MAX + 2];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = 0;
  assert_int_equal(lc_contact_request(a->node, c->key, big), LC_EINVAL);

  /* a request declined */
  assert_int_equal(lc_contact_request(c->node, a->key, "carol here"), 0);
  tc_wait(&net, a, LC_CONTACT_REQUESTED, 1, "alice gets carol's request");
  assert_int_equal(lc_contact_reject(a->node, c->key), 0);
  tc_wait(&net, c, LC_CONTACT_REJECTED, 1, "carol learns of the refusal");
  assert_int_equal(tc_state(c, a), LC_CONTACT_NONE);
  assert_int_equal(tc_state(a, c), LC_CONTACT_NONE);

  /* removed while offline: bob learns it when he is back */
  tn_stop_free(&net, 1);
  assert_int_equal(lc_contact_remove(a->node, b->key), 0);
  assert_int_equal(tc_state(a, b), LC_CONTACT_NONE);
  tn_opts again = {.dir = 1};
  tn_make(&net, 1, "bob", &again);
  tc_wait(&net, b, LC_CONTACT_REMOVED, 1, "bob learns he was removed");
  assert_int_equal(tc_state(b, a), LC_CONTACT_NONE);
  assert_int_equal(lc_contact_remove(a->node, b->key), LC_ESTATE);

  /* blocked: carol's messages and requests are dropped and counted */
  tc_wait_peers(&net, 2);
  assert_int_equal(lc_block(a->node, c->key, 1), 0);
  lc_contact_info ci;
  assert_int_equal(lc_contact_get(a->node, c->key, &ci), 1);
  assert_int_equal(ci.blocked, 1);
  assert_int_equal(lc_send_text(a->node, c->key, "x", 1, NULL), LC_ESTATE);
  c->want = 1;
  assert_int_equal(lc_send_text(c->node, a->key, "let me in", 9, NULL), 0);
  assert_int_equal(lc_contact_request(c->node, a->key, "please"), 0);
  tn_run_until(&net, tc_delivered_want, "carol's message acknowledged");
  tc_pause(&net, 300);
  assert_int_equal(a->nmsgs, 0);
  assert_int_equal(a->contact[LC_CONTACT_REQUESTED], 1); /* the first only */
  lc_node_stats st;
  lc_node_stats_get(a->node, &st);
  assert_true(st.blocked_dropped >= 2);
  assert_int_equal(lc_block(a->node, c->key, 0), 0);
  a->want = 1;
  tc_wait_node = a;
  assert_int_equal(lc_send_text(c->node, a->key, "now?", 4, NULL), 0);
  tn_run_until(&net, tc_msgs_want, "alice gets carol's message once unblocked");
  assert_string_equal(a->msgs[0], "now?");

  /* contacts only: a stranger's message is dropped, a friend's is not */
  assert_int_equal(lc_node_set_policy(a->node, 1), 0);
  c->want = 3;
  assert_int_equal(lc_send_text(c->node, a->key, "stranger", 8, NULL), 0);
  tn_run_until(&net, tc_delivered_want, "carol's message acknowledged");
  tc_pause(&net, 200);
  assert_int_equal(a->nmsgs, 1);
  lc_node_stats_get(a->node, &st);
  assert_int_equal(st.policy_dropped, 1);
  assert_int_equal(lc_node_set_policy(a->node, 0), 0);

  /* another key calls itself carol: held, nothing is sent to it until
   * alice accepts it */
  tn_add(&net, "carol", NULL);
  tn_node *d = &net.n[3];
  tc_wait(&net, a, LC_CONTACT_KEY_CHANGED, 1, "alice is warned of a new key");
  assert_memory_equal(a->other_key, c->key, LC_KEY_BYTES);
  assert_memory_equal(a->last_contact.key, d->key, LC_KEY_BYTES);
  assert_int_equal(lc_contact_get(a->node, d->key, &ci), 1);
  assert_int_equal(ci.held, 1);
  lc_node_stats_get(a->node, &st);
  assert_int_equal(st.keys_held, 1);
  tc_wait_peers(&net, 3);
  assert_int_equal(lc_send_text(a->node, d->key, "who are you?", 12, NULL), 0);
  assert_int_equal(lc_send_typing(a->node, d->key, LC_TYPING_COMPOSING),
                   LC_ESTATE);
  tc_pause(&net, 1500);
  assert_int_equal(d->nmsgs, 0);
  assert_int_equal(lc_trust_key(a->node, d->key), 0);
  d->want = 1;
  tc_wait_node = d;
  tn_run_until(&net, tc_msgs_want, "the held message goes once accepted");
  assert_string_equal(d->msgs[0], "who are you?");
  assert_int_equal(lc_contact_get(a->node, d->key, &ci), 1);
  assert_int_equal(ci.held, 0);
  assert_int_equal(ci.trusted, 1);

  /* the list */
  lc_contact_info *list;
  size_t nl;
  assert_int_equal(lc_contacts(a->node, &list, &nl), 0);
  /* bob was removed and carol unblocked: only the accepted key is left */
  assert_int_equal(nl, 1);
  assert_memory_equal(list[0].key, d->key, LC_KEY_BYTES);
  assert_int_equal(list[0].trusted, 1);
  assert_string_equal(list[0].nickname, "carol");
  lc_contacts_free(list);

  /* fingerprints: six groups of five digits, one per key */
  char fa[LC_FINGERPRINT_LEN + 1], fb[LC_FINGERPRINT_LEN + 1];
  lc_fingerprint(fa, a->key);
  lc_fingerprint(fb, b->key);
  assert_int_equal(strlen(fa), LC_FINGERPRINT_LEN);
  for (int i = 0; i < LC_FINGERPRINT_LEN; i++)
    assert_true(i % 6 == 5 ? fa[i] == ' ' : (fa[i] >= '0' && fa[i] <= '9'));
  assert_string_not_equal(fa, fb);
  lc_fingerprint(fb, a->key);
  assert_string_equal(fa, fb);
  tn_done(&net);
}

static int tg_want_msgs(tn_net *net) {
  for (int i = 0; i < net->count; i++)
    if (net->n[i].node && net->n[i].group_msgs < net->n[i].want)
      return 0;
  return 1;
}

/* The texts of a group's history at node t, oldest first, joined by '|'. */
static void tg_history(tn_node *t, const uint8_t *gid, char *out, size_t cap) {
  lc_msg_info *m;
  size_t n;
  assert_int_equal(lc_history_page(t->node, gid, 0, 100, &m, &n), 0);
  out[0] = 0;
  for (size_t i = n; i-- > 0;) {
    assert_int_equal(m[i].is_group, 1);
    strncat(out, m[i].text, cap - strlen(out) - 2);
    strcat(out, "|");
  }
  lc_msgs_free(m, n);
}

static void test_groups(void **state) {
  (void)state;
  tn_net net;
  tn_three(&net);
  tn_node *a = &net.n[0], *b = &net.n[1], *c = &net.n[2];
  uint8_t gid[LC_GROUP_ID_BYTES], members[2][LC_KEY_BYTES];
  memcpy(members[0], b->key, LC_KEY_BYTES);
  memcpy(members[1], c->key, LC_KEY_BYTES);
  assert_int_equal(
      lc_group_create(a->node, "lunch", (const uint8_t(*)[32])members, 2, gid),
      0);
  assert_int_equal(lc_group_send(a->node, gid, "noon?", 5, NULL), 0);
  a->want = 0;
  b->want = 1;
  c->want = 1;
  tn_run_until(&net, tg_want_msgs, "bob and carol get alice's message");
  assert_string_equal(b->last_group.name, "lunch");
  assert_int_equal(b->last_group.member, 1);
  assert_int_equal(lc_group_send(c->node, gid, "12:30 better", 12, NULL), 0);
  a->want = 1;
  b->want = 2;
  tn_run_until(&net, tg_want_msgs, "carol's answer reaches both");
  char ha[256], hb[256], hc[256];
  tg_history(a, gid, ha, sizeof ha);
  tg_history(b, gid, hb, sizeof hb);
  tg_history(c, gid, hc, sizeof hc);
  assert_string_equal(ha, "noon?|12:30 better|");
  assert_string_equal(hb, ha);
  assert_string_equal(hc, ha);
  assert_int_equal(lc_unread_total(b->node), 2);
  assert_int_equal(lc_mark_read(b->node, gid, 0), 2);

  /* carol is away while alice writes; she catches up when back */
  tn_stop_free(&net, 2);
  assert_int_equal(lc_group_send(a->node, gid, "see you there", 13, NULL), 0);
  b->want = 3;
  tn_run_until(&net, tg_want_msgs, "bob gets it");
  tn_opts again = {.dir = 1};
  tn_make(&net, 2, "carol", &again);
  c = &net.n[2];
  c->want = 1;
  tn_run_until(&net, tg_want_msgs, "carol catches up after her restart");
  tg_history(c, gid, hc, sizeof hc);
  assert_string_equal(hc, "noon?|12:30 better|see you there|");

  /* bob leaves; only owners remove others; a rename reaches everyone */
  assert_int_equal(lc_group_remove(c->node, gid, a->key), LC_ESTATE);
  assert_int_equal(lc_group_leave(b->node, gid), 0);
  assert_int_equal(lc_group_leave(b->node, gid), LC_ESTATE);
  assert_int_equal(lc_group_rename(c->node, gid, "lunch crew"), 0);
  lc_group_info *gs;
  size_t ng;
  for (int tries = 0;; tries++) {
    assert_true(tries < 1500);
    assert_int_equal(lc_groups(a->node, &gs, &ng), 0);
    assert_int_equal(ng, 1);
    int done = gs[0].nmembers == 2 && !strcmp(gs[0].name, "lunch crew");
    lc_groups_free(gs, ng);
    if (done)
      break;
    uv_run(&net.loop, UV_RUN_ONCE);
  }
  assert_int_equal(lc_groups(b->node, &gs, &ng), 0);
  assert_int_equal(ng, 1);
  assert_int_equal(gs[0].member, 0);
  lc_groups_free(gs, ng);

  /* a newcomer gets the history the members hold */
  tn_add(&net, "dave", NULL);
  tn_node *d = &net.n[3];
  tc_wait_peers(&net, 3);
  for (int i = 0; i < 4; i++)
    net.n[i].want = 0;
  assert_int_equal(lc_group_invite(a->node, gid, d->key), 0);
  d->want = 3;
  tn_run_until(&net, tg_want_msgs, "dave gets the group's history");
  char hd[256];
  tg_history(d, gid, hd, sizeof hd);
  assert_string_equal(hd, "noon?|12:30 better|see you there|");
  assert_string_equal(d->last_group.name, "lunch crew");
  assert_int_equal(lc_group_send(d->node, gid, "hi all", 6, NULL), 0);
  a->want = 2;
  tn_run_until(&net, tg_want_msgs, "alice gets dave's hello");
  tc_pause(&net, 300);
  assert_int_equal(b->group_msgs, 3); /* bob left: not his any more */
  /* group messages cannot be edited (yet) */
  lc_msg_info *m;
  size_t n;
  assert_int_equal(lc_history_page(a->node, gid, 0, 1, &m, &n), 0);
  assert_int_equal(n, 1);
  assert_memory_equal(m[0].sender, d->key, LC_KEY_BYTES);
  assert_int_equal(lc_edit_message(d->node, m[0].msg_id, "x", 1), LC_EINVAL);
  lc_msgs_free(m, n);
  tn_done(&net);
}

static tn_node *tr_node;
static uint64_t tr_want;
static int tr_carried(tn_net *net) {
  (void)net;
  lc_node_stats st;
  lc_node_stats_get(tr_node->node, &st);
  return st.relays_carried >= tr_want;
}
static int tr_delivered(tn_net *net) {
  (void)net;
  lc_node_stats st;
  lc_node_stats_get(tr_node->node, &st);
  return st.relays_delivered >= tr_want;
}

/* alice writes to carol while carol is away; bob, alice's friend, carries
 * a sealed copy; alice leaves; carol comes back and gets it from bob, once,
 * also when alice is back and delivers it herself. */
static void test_relayed_delivery(void **state) {
  (void)state;
  tn_net net;
  tn_three(&net);
  tn_node *a = &net.n[0], *b = &net.n[1];
  assert_int_equal(lc_contact_request(a->node, b->key, NULL), 0);
  tc_wait(&net, b, LC_CONTACT_REQUESTED, 1, "bob gets alice's request");
  assert_int_equal(lc_contact_accept(b->node, a->key), 0);
  tc_wait(&net, a, LC_CONTACT_ACCEPTED, 1, "alice and bob are friends");
  uint8_t carol[LC_KEY_BYTES];
  memcpy(carol, net.n[2].key, LC_KEY_BYTES);
  tn_stop_free(&net, 2);
  tn_run_until(&net, tn_one_stopped, "carol gone");
  /* carol's departure is known once her goodbye arrived */
  for (int tries = 0; tn_peer_count(a) != 1; tries++) {
    assert_true(tries < 2000);
    uv_run(&net.loop, UV_RUN_ONCE);
  }
  assert_int_equal(lc_send_text(a->node, carol, "while you were out", 18, NULL),
                   0);
  tr_node = b;
  tr_want = 1;
  tn_run_until(&net, tr_carried, "bob carries alice's sealed message");
  lc_node_stats st;
  lc_node_stats_get(a->node, &st);
  assert_int_equal(st.relays_handed, 1);
  /* bob holds the box, not the text */
  lc_msg_info *m;
  size_t n;
  assert_int_equal(lc_history_search(b->node, NULL, "while", 10, &m, &n), 0);
  assert_int_equal(n, 0);
  lc_msgs_free(m, n);
  tn_stop_free(&net, 0);
  tn_opts again = {.dir = 1};
  tn_make(&net, 2, "carol", &again);
  tn_node *c = &net.n[2];
  c->want = 1;
  tc_wait_node = c;
  tn_run_until(&net, tc_msgs_want, "carol gets alice's message from bob");
  assert_string_equal(c->msgs[0], "while you were out");
  assert_memory_equal(c->msg_from[0], a->key, LC_KEY_BYTES);
  lc_node_stats_get(c->node, &st);
  assert_int_equal(st.relayed_in, 1);
  tr_node = b;
  tn_run_until(&net, tr_delivered, "bob's box confirmed and dropped");
  /* alice is back: her own copy goes, and is a duplicate */
  tn_make(&net, 0, "alice", &again);
  a = &net.n[0];
  for (int tries = 0; a->delivered < 1; tries++) {
    assert_true(tries < 5000);
    uv_run(&net.loop, UV_RUN_ONCE);
  }
  tc_pause(&net, 200);
  assert_int_equal(c->nmsgs, 1);
  assert_int_equal(lc_history_page(c->node, a->key, 0, 10, &m, &n), 0);
  assert_int_equal(n, 1);
  lc_msgs_free(m, n);
  tn_done(&net);
}

static void test_bad_options(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  int logs = 0;
  lc_node_options o;
  lc_node *n = (lc_node *)&o; /* must be reset to NULL on failure */
  lc_node_options_init(&o);
  o.on_log = tn_log_ignore;
  o.user_data = &logs;
  assert_int_equal(lc_node_new(&n, &loop, &o), LC_EINVAL); /* no data_dir */
  assert_null(n);
  o.data_dir = "/tmp/lc-test-node-never";
  const char *bad_lists[] = {"300.1.1.1", "1.2.3.4:0", "1.2.3.4:70000",
                             "[::1",      "hostname",  "1.2.3.4:x"};
  for (size_t i = 0; i < sizeof bad_lists / sizeof bad_lists[0]; i++) {
    o.static_peers = bad_lists[i];
    assert_int_equal(lc_node_new(&n, &loop, &o), LC_EINVAL);
    o.static_peers = NULL;
    o.broadcast = bad_lists[i];
    assert_int_equal(lc_node_new(&n, &loop, &o), LC_EINVAL);
    o.broadcast = NULL;
  }
  o.bind_v4 = "::1";
  assert_int_equal(lc_node_new(&n, &loop, &o), LC_EINVAL);
  o.bind_v4 = "";
  o.bind_v6 = "";
  assert_int_equal(lc_node_new(&n, &loop, &o), LC_EINVAL);
  o.bind_v6 = NULL;
  o.bind_v4 = NULL;
  o.announce_interval_ms = 10;
  assert_int_equal(lc_node_new(&n, &loop, &o), LC_EINVAL);
  o.announce_interval_ms = 0;
  o.nickname = "\xc0\x80";
  assert_int_equal(lc_node_new(&n, &loop, &o), LC_EINVAL);
  assert_true(logs >= 16);
  assert_int_equal(access("/tmp/lc-test-node-never", F_OK), -1);
  uint8_t k[LC_KEY_BYTES];
  char hex[LC_KEY_HEX_LEN + 1];
  memset(k, 0xab, sizeof k);
  lc_key_to_hex(hex, k);
  uint8_t k2[LC_KEY_BYTES];
  assert_int_equal(lc_key_from_hex(k2, hex), 0);
  assert_memory_equal(k, k2, sizeof k);
  hex[5] = 'g';
  assert_int_equal(lc_key_from_hex(k2, hex), LC_EINVAL);
  assert_int_equal(lc_key_from_hex(k2, "abc"), LC_EINVAL);
  assert_string_equal(lc_presence_name(LC_PRESENCE_BUSY), "busy");
  assert_null(lc_presence_name(7));
  for (int pr = LC_PRESENCE_ONLINE; pr <= LC_PRESENCE_BUSY; pr++)
    assert_int_equal(lc_presence_from_name(lc_presence_name(pr)), pr);
  assert_int_equal(lc_presence_from_name("offline"), LC_EINVAL);
  assert_int_equal(lc_presence_from_name("Online"), LC_EINVAL);
  assert_int_equal(lc_presence_from_name(NULL), LC_EINVAL);
  assert_string_equal(lc_msg_state_name(LC_MSG_QUEUED), "queued");
  assert_string_equal(lc_msg_state_name(LC_MSG_READ), "read");
  assert_null(lc_msg_state_name(0));
  lc_node_free(NULL);
  assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_discover_and_chat),
      cmocka_unit_test(test_presence_and_goodbye),
      cmocka_unit_test(test_expiry_and_bad_input),
      cmocka_unit_test(test_static_peer_and_lists),
      cmocka_unit_test(test_offline_restart_receipts),
      cmocka_unit_test(test_burst),
      cmocka_unit_test(test_contacts_and_trust),
      cmocka_unit_test(test_groups),
      cmocka_unit_test(test_relayed_delivery),
      cmocka_unit_test(test_bad_options),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
