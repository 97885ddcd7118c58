/* peer.c: lanchat-peer, one node driven from the command line for the
 * multi-host tests (tests/netns) and the demo.  Built on the public API
 * only.  It meets a list of expectations (peers seen, messages received,
 * presence seen), prints one line per event, and exits 0 when all are met,
 * 1 with the unmet one named when the time runs out. */
#include <getopt.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#include "lanchat.h"

typedef struct {
  uv_loop_t loop;
  uv_timer_t tick, deadline;
  uv_signal_t sigterm, sigint;
  lc_node *node;
  int expect_peers, expect_messages;
  const char *say, *presence, *status, *expect_presence, *say_on_change;
  int expect_network, network_changes, said_on_change;
  uint64_t linger_ms;
  int peers_now, messages, said, delivered, presence_set, presence_seen;
  int failed_deliveries;
  /* --repeat N --every-ms MS: "TEXT 1" .. "TEXT N" to the peers present at
   * the first, whether they are still present or not */
  int repeat, rounds, nkeys;
  uint64_t every_ms, next_at;
  uint8_t keys[8][LC_KEY_BYTES];
  int done, timed_out, stopping, stopped;
  uint64_t done_at;
} peer_app;

static void peer_out(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static void peer_out(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
  fflush(stdout);
}

static int peer_presence_of(const char *s) {
  int p = lc_presence_from_name(s);
  return p < 0 ? -1 : p;
}

static void peer_check_presence(peer_app *a, const lc_peer_info *p) {
  if (!a->expect_presence)
    return;
  char want[96];
  snprintf(want, sizeof want, "%s=%s", p->nickname,
           lc_presence_name(p->presence));
  if (!strcmp(want, a->expect_presence))
    a->presence_seen = 1;
}

/* Messages from a peer not discovered yet (its announcements were lost:
 * the message itself is authenticated by the session) are printed once
 * it appears, so each line names its sender. */
#define PEER_PENDING 32
static struct {
  uint8_t key[LC_KEY_BYTES];
  char text[128];
} peer_pending[PEER_PENDING];
static int peer_npending;

static void peer_flush_pending(const lc_peer_info *p) {
  for (int i = 0; i < peer_npending;) {
    if (memcmp(peer_pending[i].key, p->key, LC_KEY_BYTES) != 0) {
      i++;
      continue;
    }
    peer_out("message from %s: %s", p->nickname, peer_pending[i].text);
    for (int k = i + 1; k < peer_npending; k++) /* keep their order */
      peer_pending[k - 1] = peer_pending[k];
    peer_npending--;
  }
}

static void peer_on_message(lc_node *node, const lc_message *m, void *user) {
  peer_app *a = user;
  lc_peer_info *v;
  size_t c;
  const char *from = NULL;
  a->messages++;
  if (lc_node_peers(node, &v, &c) != 0)
    return;
  for (size_t i = 0; i < c; i++)
    if (!memcmp(v[i].key, m->from, LC_KEY_BYTES))
      from = v[i].nickname;
  if (from) {
    peer_out("message from %s: %s", from, m->text);
  } else if (peer_npending < PEER_PENDING) {
    memcpy(peer_pending[peer_npending].key, m->from, LC_KEY_BYTES);
    snprintf(peer_pending[peer_npending].text, sizeof peer_pending[0].text,
             "%s", m->text);
    peer_npending++;
  } else {
    peer_out("message from ?: %s", m->text);
  }
  lc_peers_free(v);
}

static void peer_on_peer(lc_node *node, lc_peer_event ev, const lc_peer_info *p,
                         int detail, void *user) {
  (void)node;
  peer_app *a = user;
  if (ev == LC_PEER_APPEARED) {
    a->peers_now++;
    peer_out("peer appeared %s %s%s", p->nickname, p->address,
             p->remote ? " remote" : "");
    /* first heard already away (its earlier announcements were lost, or
     * it changed before we met): the same line as for a change */
    if (p->presence != LC_PRESENCE_ONLINE)
      peer_out("presence %s %s %s", p->nickname, lc_presence_name(p->presence),
               p->status);
    peer_flush_pending(p);
  } else if (ev == LC_PEER_CHANGED) {
    peer_out("presence %s %s %s", p->nickname, lc_presence_name(p->presence),
             p->status);
    peer_out("address %s %s", p->nickname, p->address);
  } else {
    a->peers_now--;
    peer_out("left %s %s", p->nickname,
             detail == LC_LEFT_GOODBYE ? "goodbye" : "expired");
  }
  peer_check_presence(a, p);
}

static void peer_on_delivery(lc_node *node, const uint8_t peer[LC_KEY_BYTES],
                             const uint8_t id[LC_MSGID_BYTES], lc_msg_state st,
                             int err, void *user) {
  (void)node;
  (void)peer;
  peer_app *a = user;
  char hex[2 * LC_MSGID_BYTES + 1];
  for (int i = 0; i < LC_MSGID_BYTES; i++)
    sprintf(hex + 2 * i, "%02x", id[i]);
  if (st == LC_MSG_DELIVERED) {
    a->delivered++;
    peer_out("delivered %s", hex);
  } else if (st == LC_MSG_READ) {
    peer_out("read %s", hex);
  } else if (st == LC_MSG_FAILED) {
    a->failed_deliveries++;
    peer_out("failed %s %s", hex, lc_strerror(err));
  } /* SENT: on its way; not printed */
}

static void peer_on_network(lc_node *node, lc_network_event ev, void *user) {
  (void)ev;
  peer_app *a = user;
  a->network_changes++;
  peer_out("network changed");
  if (a->say_on_change && !a->said_on_change) {
    a->said_on_change = 1;
    lc_peer_info *v;
    size_t c;
    if (lc_node_peers(node, &v, &c) == 0) {
      for (size_t i = 0; i < c; i++)
        if (lc_send_text(node, v[i].key, a->say_on_change,
                         strlen(a->say_on_change), NULL) == 0)
          a->said++;
      lc_peers_free(v);
    }
  }
}

static void peer_on_log(lc_node *node, int level, const char *msg, void *user) {
  (void)node;
  (void)user;
  if (level <= 2)
    fprintf(stderr, "log%d: %s\n", level, msg);
}

static void peer_on_stop(lc_node *node, void *user) {
  (void)node;
  peer_app *a = user;
  a->stopped = 1;
  uv_close((uv_handle_t *)&a->tick, NULL);
  uv_close((uv_handle_t *)&a->deadline, NULL);
  uv_close((uv_handle_t *)&a->sigterm, NULL);
  uv_close((uv_handle_t *)&a->sigint, NULL);
}

static void peer_stop(peer_app *a) {
  if (a->stopping)
    return;
  a->stopping = 1;
  if (lc_node_stop(a->node, peer_on_stop) < 0)
    peer_on_stop(a->node, a);
}

static int peer_met(peer_app *a) {
  if (a->peers_now < a->expect_peers)
    return 0;
  if (a->say && (a->rounds < a->repeat || a->delivered < a->said))
    return 0;
  if (a->messages < a->expect_messages)
    return 0;
  if (a->expect_presence && !a->presence_seen)
    return 0;
  if (a->network_changes < a->expect_network)
    return 0;
  if (a->say_on_change && (!a->said_on_change || a->delivered < a->said))
    return 0;
  return 1;
}

/* One round of --say: the text (numbered when repeated) to each peer. */
static void peer_say_round(peer_app *a) {
  char text[160];
  if (a->repeat > 1)
    snprintf(text, sizeof text, "%s %d", a->say, a->rounds + 1);
  else
    snprintf(text, sizeof text, "%s", a->say);
  for (int i = 0; i < a->nkeys; i++) {
    int rc = lc_send_text(a->node, a->keys[i], text, strlen(text), NULL);
    if (rc < 0)
      peer_out("send failed: %s", lc_strerror(rc));
    else
      a->said++;
  }
  a->rounds++;
  a->next_at = uv_now(&a->loop) + a->every_ms;
}

static void peer_tick(uv_timer_t *t) {
  peer_app *a = t->data;
  if (a->stopping)
    return;
  if (a->say && a->rounds > 0 && a->rounds < a->repeat &&
      uv_now(&a->loop) >= a->next_at)
    peer_say_round(a);
  if (a->peers_now >= a->expect_peers) {
    if (a->say && a->rounds == 0) {
      lc_peer_info *v;
      size_t c;
      if (lc_node_peers(a->node, &v, &c) == 0) {
        for (size_t i = 0; i < c && a->nkeys < 8; i++)
          memcpy(a->keys[a->nkeys++], v[i].key, LC_KEY_BYTES);
        lc_peers_free(v);
      }
      peer_say_round(a);
    }
    if (a->presence && !a->presence_set) {
      a->presence_set = 1;
      int rc = lc_node_set_presence(a->node, peer_presence_of(a->presence),
                                    a->status);
      if (rc < 0)
        peer_out("set presence failed: %s", lc_strerror(rc));
    }
  }
  if (!a->done && peer_met(a)) {
    a->done = 1;
    a->done_at = uv_now(&a->loop);
    peer_out("expectations met");
  }
  if (a->done && uv_now(&a->loop) >= a->done_at + a->linger_ms)
    peer_stop(a);
}

static void peer_deadline(uv_timer_t *t) {
  peer_app *a = t->data;
  if (a->done)
    return;
  a->timed_out = 1;
  if (a->peers_now < a->expect_peers)
    peer_out("timeout: saw %d peers, expected %d", a->peers_now,
             a->expect_peers);
  else if (a->say && a->delivered < a->said)
    peer_out("timeout: %d of %d messages delivered", a->delivered, a->said);
  else if (a->messages < a->expect_messages)
    peer_out("timeout: received %d messages, expected %d", a->messages,
             a->expect_messages);
  else if (a->expect_presence && !a->presence_seen)
    peer_out("timeout: never saw %s", a->expect_presence);
  else if (a->network_changes < a->expect_network)
    peer_out("timeout: no network change seen");
  else
    peer_out("timeout: messages sent after the network change not delivered");
  peer_stop(a);
}

static void peer_signal(uv_signal_t *s, int signum) {
  (void)signum;
  peer_app *a = s->data;
  a->timed_out = !a->done;
  peer_stop(a);
}

static void peer_usage(void) {
  fprintf(stderr,
          "usage: lanchat-peer --dir DIR [--nick NAME] [--discovery-port P]\n"
          "  [--port P] [--bind-v4 ADDR] [--bind-v6 ADDR] [--interfaces PATS]\n"
          "  [--broadcast LIST] [--static LIST] [--interval-ms MS]\n"
          "  [--expect-peers N] [--say TEXT [--repeat N --every-ms MS]]\n"
          "  [--expect-messages K]\n"
          "  [--presence online|away|busy] [--status TEXT]\n"
          "  [--expect-presence NICK=STATE] [--linger-ms MS] "
          "[--timeout-ms MS]\n"
          "  [--expect-network-change] [--say-on-network-change TEXT]\n");
}

int main(int argc, char **argv) {
  static peer_app a;
  a.repeat = 1;
  lc_node_options o;
  lc_node_options_init(&o);
  uint64_t timeout_ms = 20000;
  static const struct option opts[] = {{"dir", 1, 0, 'd'},
                                       {"nick", 1, 0, 'n'},
                                       {"discovery-port", 1, 0, 'D'},
                                       {"port", 1, 0, 'p'},
                                       {"bind-v4", 1, 0, '4'},
                                       {"bind-v6", 1, 0, '6'},
                                       {"interfaces", 1, 0, 'i'},
                                       {"broadcast", 1, 0, 'b'},
                                       {"static", 1, 0, 's'},
                                       {"interval-ms", 1, 0, 'I'},
                                       {"expect-peers", 1, 0, 'e'},
                                       {"say", 1, 0, 'S'},
                                       {"repeat", 1, 0, 'R'},
                                       {"every-ms", 1, 0, 'M'},
                                       {"expect-messages", 1, 0, 'm'},
                                       {"presence", 1, 0, 'P'},
                                       {"status", 1, 0, 't'},
                                       {"expect-presence", 1, 0, 'E'},
                                       {"linger-ms", 1, 0, 'l'},
                                       {"timeout-ms", 1, 0, 'T'},
                                       {"expect-network-change", 0, 0, 'N'},
                                       {"say-on-network-change", 1, 0, 'C'},
                                       {"help", 0, 0, 'h'},
                                       {0, 0, 0, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 'd':
      o.data_dir = optarg;
      break;
    case 'n':
      o.nickname = optarg;
      break;
    case 'D':
      o.discovery_port = (uint16_t)atoi(optarg);
      break;
    case 'p':
      o.port = (uint16_t)atoi(optarg);
      break;
    case '4':
      o.bind_v4 = optarg;
      break;
    case '6':
      o.bind_v6 = optarg;
      break;
    case 'i':
      o.interfaces = optarg;
      break;
    case 'b':
      o.broadcast = optarg;
      break;
    case 's':
      o.static_peers = optarg;
      break;
    case 'I':
      o.announce_interval_ms = (uint32_t)atoi(optarg);
      break;
    case 'e':
      a.expect_peers = atoi(optarg);
      break;
    case 'S':
      a.say = optarg;
      break;
    case 'R':
      a.repeat = atoi(optarg);
      if (a.repeat < 1) {
        peer_usage();
        return 2;
      }
      break;
    case 'M':
      a.every_ms = (uint64_t)atoll(optarg);
      break;
    case 'm':
      a.expect_messages = atoi(optarg);
      break;
    case 'P':
      a.presence = optarg;
      if (peer_presence_of(optarg) < 0) {
        peer_usage();
        return 2;
      }
      break;
    case 't':
      a.status = optarg;
      break;
    case 'E':
      a.expect_presence = optarg;
      break;
    case 'l':
      a.linger_ms = (uint64_t)atoll(optarg);
      break;
    case 'T':
      timeout_ms = (uint64_t)atoll(optarg);
      break;
    case 'N':
      a.expect_network = 1;
      break;
    case 'C':
      a.say_on_change = optarg;
      a.expect_network = 1;
      break;
    default:
      peer_usage();
      return 2;
    }
  }
  if (!o.data_dir || optind != argc) {
    peer_usage();
    return 2;
  }
  o.on_peer = peer_on_peer;
  o.on_message = peer_on_message;
  o.on_delivery = peer_on_delivery;
  o.on_network = peer_on_network;
  o.on_log = peer_on_log;
  o.user_data = &a;
  uv_loop_init(&a.loop);
  int rc = lc_node_new(&a.node, &a.loop, &o);
  if (rc == 0)
    rc = lc_node_start(a.node);
  if (rc < 0) {
    fprintf(stderr, "lanchat-peer: %s\n", lc_strerror(rc));
    lc_node_free(a.node);
    uv_run(&a.loop, UV_RUN_DEFAULT);
    uv_loop_close(&a.loop);
    return 1;
  }
  uint8_t key[LC_KEY_BYTES];
  char hex[LC_KEY_HEX_LEN + 1];
  lc_node_key(a.node, key);
  lc_key_to_hex(hex, key);
  peer_out("started %s port %d key %s", o.nickname ? o.nickname : "-",
           lc_node_port(a.node), hex);
  uv_timer_init(&a.loop, &a.tick);
  uv_timer_init(&a.loop, &a.deadline);
  a.tick.data = a.deadline.data = &a;
  uv_timer_start(&a.tick, peer_tick, 10, 10);
  uv_timer_start(&a.deadline, peer_deadline, timeout_ms, 0);
  uv_signal_init(&a.loop, &a.sigterm);
  uv_signal_init(&a.loop, &a.sigint);
  a.sigterm.data = a.sigint.data = &a;
  uv_signal_start(&a.sigterm, peer_signal, SIGTERM);
  uv_signal_start(&a.sigint, peer_signal, SIGINT);
  uv_run(&a.loop, UV_RUN_DEFAULT);
  lc_node_free(a.node);
  if (uv_loop_close(&a.loop) != 0) {
    fprintf(stderr, "lanchat-peer: handles left open\n");
    return 1;
  }
  if (a.failed_deliveries)
    return 1;
  return a.done ? 0 : 1;
}
