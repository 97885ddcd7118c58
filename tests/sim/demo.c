/* demo.c: lanchat-simdemo, two simulated peers chatting over a lossy,
 * jittery link, with a readable transcript in virtual time.  It is what
 * tools/demo runs until the daemon exists.  Exits 0 only if every message
 * was delivered exactly once (and acknowledged).
 *
 *   lanchat-simdemo [--seed N] [--loss PCT] [--count N] [--quiet]
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define MS UINT64_C(1000)
#define SEC UINT64_C(1000000)

enum { ALICE = 0, BOB = 1 };
static const char *const demo_names[] = {"alice", "bob"};

typedef struct {
  uint64_t t0;
  int count;
  int sent;
  int quiet;
  int send_errors;
} demo;

static void demo_stamp(const demo *d, sim *s) {
  uint64_t t = sim_now(s) - d->t0;
  printf("[%4" PRIu64 ".%03" PRIu64 " s] ", t / SEC, t % SEC / MS);
}

static uint64_t demo_counter(const uint8_t id[LC_MSG_ID_BYTES]) {
  uint64_t c = 0;
  for (int i = 0; i < 8; i++)
    c = (c << 8) | id[4 + i];
  return c;
}

static void demo_send(demo *d, sim *s, int from, const char *text) {
  sim_node *n = sim_node_get(s, from);
  uint64_t counter = n->counter;
  int rc =
      sim_send_msg_data(s, from, 1 - from, (const uint8_t *)text, strlen(text));
  if (d->quiet && rc == 0)
    return;
  demo_stamp(d, s);
  if (rc == 0)
    printf("%s -> %s: sent #%" PRIu64 " \"%s\"\n", demo_names[from],
           demo_names[1 - from], counter, text);
  else
    printf("%s: sending failed: %s\n", demo_names[from], lc_strerror(rc));
  if (rc != 0)
    d->send_errors++;
}

static void demo_event(void *ctx, sim *s, int node, int kind, int peer,
                       const uint8_t *msg_id, const uint8_t *data, size_t len,
                       int64_t arg) {
  demo *d = ctx;
  const char *me = demo_names[node];
  const char *other = peer == 0 || peer == 1 ? demo_names[peer] : "?";
  if (!d->quiet || kind == SIM_E_UP || kind == SIM_E_DOWN ||
      kind == SIM_E_FAILED) {
    demo_stamp(d, s);
    switch (kind) {
    case SIM_E_UP:
      printf("%s: session with %s established (handshake complete)\n", me,
             other);
      break;
    case SIM_E_DOWN:
      printf("%s: session with %s ended (reason %d)\n", me, other, (int)arg);
      break;
    case SIM_E_MSG:
      printf("%s <- %s: delivered #%" PRIu64 " \"%.*s\"\n", me, other,
             demo_counter(msg_id), (int)len, (const char *)data);
      break;
    case SIM_E_ACKED:
      printf("%s: #%" PRIu64 " acknowledged by %s\n", me, demo_counter(msg_id),
             other);
      break;
    case SIM_E_FAILED:
      printf("%s: #%" PRIu64 " to %s failed: %s\n", me, demo_counter(msg_id),
             other, lc_strerror((int)arg));
      break;
    default:
      printf("%s: event %d from %s\n", me, kind, other);
      break;
    }
  }
  /* bob answers every message from alice */
  if (kind == SIM_E_MSG && node == BOB) {
    char reply[128];
    snprintf(reply, sizeof reply, "thanks for message %" PRIu64 ", alice",
             demo_counter(msg_id) + 1);
    demo_send(d, s, BOB, reply);
  }
}

static void demo_alice_speaks(void *ctx, sim *s) {
  demo *d = ctx;
  static const char *const lines[] = {
      "hi bob, are you on the LAN?",
      "the printer on floor 2 is out of toner again",
      "lunch at noon?",
      "I pushed the fix for the build",
      "see you tomorrow",
  };
  char text[160];
  snprintf(text, sizeof text, "%s (%d/%d)", lines[d->sent % 5], d->sent + 1,
           d->count);
  demo_send(d, s, ALICE, text);
  if (++d->sent < d->count)
    sim_at(s, sim_now(s) + 300 * MS, demo_alice_speaks, d);
}

static int demo_pending(void *ctx, sim *s) {
  demo *d = ctx;
  return d->sent < d->count || !sim_all_delivered(s, ALICE, BOB, 1) ||
         !sim_all_delivered(s, BOB, ALICE, 1);
}

static void demo_usage(const char *argv0) {
  fprintf(stderr, "usage: %s [--seed N] [--loss PCT] [--count N] [--quiet]\n",
          argv0);
}

static void demo_stats(sim *s, int node) {
  lc__tp_session_stats st;
  sim_node *n = sim_node_get(s, node), *p = sim_node_get(s, 1 - node);
  if (lc__tp_session_stats_get(n->tp, p->id.pk, &st) != 0) {
    printf("  %s: no session\n", demo_names[node]);
    return;
  }
  printf("  %-5s: packets sent %" PRIu64 ", received %" PRIu64
         ", declared lost and resent %" PRIu64 ", probe timeouts %" PRIu64 "\n"
         "         rtt smoothed %.2f ms (min %.2f, var %.2f), cwnd %" PRIu64
         " bytes, in flight %" PRIu64 "\n",
         demo_names[node], st.packets_sent, st.packets_received,
         st.packets_lost, st.pto_count, (double)st.smoothed_rtt_us / 1e3,
         (double)st.min_rtt_us / 1e3, (double)st.rttvar_us / 1e3, st.cwnd,
         st.bytes_in_flight);
}

int main(int argc, char **argv) {
  uint64_t seed = 1;
  double loss_pct = 10;
  demo d;
  memset(&d, 0, sizeof d);
  d.count = 5;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--quiet") == 0) {
      d.quiet = 1;
      continue;
    }
    if (i + 1 >= argc) {
      demo_usage(argv[0]);
      return 2;
    }
    char *end;
    if (strcmp(a, "--seed") == 0) {
      seed = strtoull(argv[++i], &end, 0);
    } else if (strcmp(a, "--loss") == 0) {
      loss_pct = strtod(argv[++i], &end);
      if (loss_pct < 0 || loss_pct > 90) {
        fprintf(stderr, "--loss must be 0..90\n");
        return 2;
      }
    } else if (strcmp(a, "--count") == 0) {
      long c = strtol(argv[++i], &end, 0);
      if (c < 1 || c > 100000) {
        fprintf(stderr, "--count must be 1..100000\n");
        return 2;
      }
      d.count = (int)c;
    } else {
      demo_usage(argv[0]);
      return 2;
    }
    if (*end != '\0') {
      demo_usage(argv[0]);
      return 2;
    }
  }

  sim *s = sim_new(seed);
  if (!s) {
    fprintf(stderr, "cannot create the simulator\n");
    return 1;
  }
  if (sim_add_node(s, NULL) != ALICE || sim_add_node(s, NULL) != BOB) {
    fprintf(stderr, "cannot create the peers: %s\n",
            sim_failed(s) ? sim_failed(s) : "?");
    sim_free(s);
    return 1;
  }
  sim_link_params lp = {.loss = loss_pct / 100.0,
                        .dup = 0.01,
                        .delay_us = 5 * MS,
                        .jitter_us = 2 * MS,
                        .reorder = 0.05,
                        .reorder_max_us = 5 * MS};
  sim_link_set_both(s, ALICE, BOB, &lp);
  d.t0 = sim_now(s);
  sim_set_event_hook(s, demo_event, &d);

  printf("lanchat simulator demo: seed %" PRIu64 " (replay: --seed %" PRIu64
         ")\n",
         seed, seed);
  printf("link alice <-> bob: %.1f ms +- %.1f ms one way, %.1f%% loss, 1%% "
         "duplication, 5%% reordered\n\n",
         (double)lp.delay_us / 1e3, (double)lp.jitter_us / 1e3, loss_pct);

  sim_at(s, d.t0, demo_alice_speaks, &d);
  int r = sim_run_while(s, demo_pending, &d, d.t0 + 600 * SEC);

  printf("\nafter %.3f s of virtual time:\n",
         (double)(sim_now(s) - d.t0) / 1e6);
  for (int from = 0; from < 2; from++) {
    const sim_link_stats *ls = sim_link_stats_of(s, from, 1 - from);
    printf("  datagrams %s -> %s: sent %" PRIu64 ", lost %" PRIu64
           ", duplicated %" PRIu64 ", delivered %" PRIu64 "\n",
           demo_names[from], demo_names[1 - from], ls->sent, ls->lost,
           ls->duplicated, ls->delivered);
  }
  demo_stats(s, ALICE);
  demo_stats(s, BOB);

  int ok = r == 0 && d.send_errors == 0 && sim_failed(s) == NULL;
  if (r != 0)
    printf("run did not complete: %s\n",
           sim_failed(s) ? sim_failed(s) : "deadline reached");
  for (int from = 0; from < 2; from++)
    if (sim_check_delivery(s, from, 1 - from, 1) != 0)
      ok = 0;
  sim_node *na = sim_node_get(s, ALICE), *nb = sim_node_get(s, BOB);
  printf("\n%s: alice sent %zu, bob got %zu; bob sent %zu, alice got %zu\n",
         ok ? "OK, every message delivered exactly once" : "FAILED", na->nsent,
         nb->nmsgs, nb->nsent, na->nmsgs);
  sim_free(s);
  return ok ? 0 : 1;
}
