/* loopdemo.c: lanchat-loopdemo, two real peers on UDP sockets bound to
 * 127.0.0.1 in one libuv loop: a handshake, a short chat, and a 4 MiB bulk
 * transfer, with a transcript in real time.  Nothing leaves loopback.
 * Exits 0 only if every message arrived exactly once and the transfer is
 * intact.
 *
 *   lanchat-loopdemo [--count N] [--bulk MIB]
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "net_uv.h"
#include "transport.h"

typedef struct demo demo;

typedef struct {
  const char *name;
  demo *d;
  lc__identity id;
  lc__tp *tp;
  lc__net_uv *net;
  lc__addr addr;
  int got, acked, dups;
  uint64_t bulk_bytes, bulk_sum;
  int bulk_done, bulk_acked;
} peer;

struct demo {
  uv_loop_t loop;
  uv_timer_t tick, deadline;
  peer alice, bob;
  uint64_t t0;
  int count, sent;
  uint32_t stream;
  uint64_t bulk_total, bulk_written, bulk_sum;
  uint64_t bulk_start, bulk_end;
  int failed;
};

static const char *const lines[] = {
    "hi bob, are you on the LAN?",
    "the printer on floor 2 is out of toner again",
    "lunch at noon?",
    "I'll send you the slides",
    "see you at the stand-up",
};

static void stamp(const demo *d) {
  uint64_t us = uv_hrtime() / 1000 - d->t0;
  printf("[%3" PRIu64 ".%06" PRIu64 " s] ", us / 1000000, us % 1000000);
}

static peer *other(peer *p) {
  return p == &p->d->alice ? &p->d->bob : &p->d->alice;
}

static void on_up(void *user, const uint8_t pk[LC_PK_BYTES]) {
  (void)pk;
  peer *p = user;
  stamp(p->d);
  printf("%s: encrypted session with %s established\n", p->name,
         other(p)->name);
}

static int on_message(void *user, const uint8_t pk[LC_PK_BYTES],
                      const uint8_t id[LC_MSG_ID_BYTES], const uint8_t *data,
                      size_t len) {
  (void)pk;
  peer *p = user;
  p->got++;
  stamp(p->d);
  printf("%s <- %s: #%u \"%.*s\"\n", p->name, other(p)->name, id[0], (int)len,
         (const char *)data);
  if (p == &p->d->bob) {
    char reply[96];
    int n = snprintf(reply, sizeof reply, "got your message %u, alice", id[0]);
    uint8_t rid[LC_MSG_ID_BYTES] = {id[0], 'r'};
    lc__tp_send_msg(p->tp, other(p)->id.pk, rid, (const uint8_t *)reply,
                    (size_t)n, lc__net_uv_now(p->net));
    lc__net_uv_flush(p->net);
  }
  return 0;
}

static void on_acked(void *user, const uint8_t pk[LC_PK_BYTES],
                     const uint8_t id[LC_MSG_ID_BYTES]) {
  (void)pk;
  peer *p = user;
  p->acked++;
  stamp(p->d);
  printf("%s: #%u delivered to %s's application\n", p->name, id[0],
         other(p)->name);
}

static uint8_t bulk_byte(uint64_t off) {
  return (uint8_t)(off * 2654435761u >> 13);
}

static void on_bulk(void *user, const uint8_t pk[LC_PK_BYTES], uint32_t sid,
                    uint64_t off, const uint8_t *data, size_t len) {
  (void)pk;
  (void)sid;
  peer *p = user;
  for (size_t i = 0; i < len; i++)
    p->bulk_sum += (uint64_t)data[i] * (off + i + 1);
  p->bulk_bytes += len;
}

static void on_bulk_done(void *user, const uint8_t pk[LC_PK_BYTES],
                         uint32_t sid, uint64_t size) {
  (void)pk;
  (void)sid;
  peer *p = user;
  p->bulk_done = 1;
  p->d->bulk_end = uv_hrtime() / 1000;
  stamp(p->d);
  printf("%s: bulk stream complete, %" PRIu64 " bytes\n", p->name, size);
}

static void on_bulk_acked(void *user, const uint8_t pk[LC_PK_BYTES],
                          uint32_t sid) {
  (void)pk;
  (void)sid;
  ((peer *)user)->bulk_acked = 1;
}

static void feed_bulk(demo *d) {
  static uint8_t buf[64 * 1024];
  while (d->bulk_written < d->bulk_total) {
    size_t n = sizeof buf;
    if (n > d->bulk_total - d->bulk_written)
      n = (size_t)(d->bulk_total - d->bulk_written);
    for (size_t i = 0; i < n; i++)
      buf[i] = bulk_byte(d->bulk_written + i);
    int fin = d->bulk_written + n == d->bulk_total;
    int w = lc__tp_bulk_write(d->alice.tp, d->bob.id.pk, d->stream, buf, n, fin,
                              lc__net_uv_now(d->alice.net));
    if (w <= 0)
      break; /* the send buffer is full: try again on the next tick */
    for (int i = 0; i < w; i++)
      d->bulk_sum += (uint64_t)buf[i] * (d->bulk_written + (uint64_t)i + 1);
    d->bulk_written += (uint64_t)w;
    if ((size_t)w < n)
      break;
  }
  lc__net_uv_flush(d->alice.net);
}

static void on_tick(uv_timer_t *t) {
  demo *d = t->data;
  if (d->sent < d->count) {
    uint8_t id[LC_MSG_ID_BYTES] = {(uint8_t)d->sent};
    const char *text = lines[d->sent % (sizeof lines / sizeof lines[0])];
    stamp(d);
    printf("alice -> bob: #%d \"%s\"\n", d->sent, text);
    int rc =
        lc__tp_send_msg(d->alice.tp, d->bob.id.pk, id, (const uint8_t *)text,
                        strlen(text), lc__net_uv_now(d->alice.net));
    if (rc < 0) {
      printf("send failed: %s\n", lc_strerror(rc));
      d->failed = 1;
    }
    d->sent++;
    lc__net_uv_flush(d->alice.net);
    return;
  }
  if (d->bulk_total && d->bulk_start == 0 && d->alice.acked == d->count) {
    d->bulk_start = uv_hrtime() / 1000;
    stamp(d);
    printf("alice -> bob: bulk stream of %" PRIu64 " bytes\n", d->bulk_total);
    lc__tp_bulk_open(d->alice.tp, d->bob.id.pk, &d->stream);
  }
  if (d->bulk_start)
    feed_bulk(d);
  if (d->alice.acked == d->count && d->bob.acked == d->count &&
      (!d->bulk_total || d->alice.bulk_acked))
    uv_stop(&d->loop);
}

static void on_deadline(uv_timer_t *t) {
  demo *d = t->data;
  printf("timed out\n");
  d->failed = 1;
  uv_stop(&d->loop);
}

static int peer_start(demo *d, peer *p, const char *name, uint8_t seed) {
  p->name = name;
  p->d = d;
  uint8_t s[32];
  memset(s, seed, sizeof s);
  int rc = lc__identity_generate(&p->id, s);
  if (rc < 0)
    return rc;
  lc__tp_config cfg;
  lc__tp_config_default(&cfg);
  cfg.cb.session_up = on_up;
  cfg.cb.message = on_message;
  cfg.cb.message_acked = on_acked;
  cfg.cb.bulk = on_bulk;
  cfg.cb.bulk_done = on_bulk_done;
  cfg.cb.bulk_acked = on_bulk_acked;
  cfg.user = p;
  if ((rc = lc__tp_new(&p->tp, &p->id, &cfg)) < 0)
    return rc;
  lc__net_uv_options o;
  memset(&o, 0, sizeof o);
  struct sockaddr_in *sin = (struct sockaddr_in *)&o.bind.ss;
  sin->sin_family = AF_INET;
  sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  o.bind.len = sizeof *sin;
  if ((rc = lc__net_uv_start(&p->net, &d->loop, p->tp, &o)) < 0)
    return rc;
  return lc__net_uv_local_addr(p->net, &p->addr);
}

static void print_stats(peer *p) {
  lc__tp_session_stats st;
  if (lc__tp_session_stats_get(p->tp, other(p)->id.pk, &st) < 0)
    return;
  printf("  %-5s: packets sent %" PRIu64 ", received %" PRIu64 ", lost %" PRIu64
         "; rtt %.0f us (min %.0f); cwnd %" PRIu64 " bytes; %" PRIu64
         " keypair(s)\n",
         p->name, st.packets_sent, st.packets_received, st.packets_lost,
         (double)st.smoothed_rtt_us, (double)st.min_rtt_us, st.cwnd,
         st.keypairs_installed);
}

int main(int argc, char **argv) {
  demo *d = calloc(1, sizeof *d);
  if (!d)
    return 1;
  d->count = 5;
  d->bulk_total = 4u << 20;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--count") == 0 && i + 1 < argc)
      d->count = atoi(argv[++i]);
    else if (strcmp(argv[i], "--bulk") == 0 && i + 1 < argc)
      d->bulk_total = (uint64_t)atoi(argv[++i]) << 20;
    else {
      fprintf(stderr, "usage: %s [--count N] [--bulk MIB]\n", argv[0]);
      return 2;
    }
  }
  if (d->count < 1 || d->count > 200) {
    fprintf(stderr, "--count must be 1..200\n");
    return 2;
  }
  uv_loop_init(&d->loop);
  int rc = peer_start(d, &d->alice, "alice", 1);
  if (rc == 0)
    rc = peer_start(d, &d->bob, "bob", 2);
  if (rc < 0) {
    fprintf(stderr, "lanchat-loopdemo: %s\n", lc_strerror(rc));
    return 1;
  }
  char a[64], b[64];
  inet_ntop(AF_INET, &((struct sockaddr_in *)&d->alice.addr.ss)->sin_addr, a,
            sizeof a);
  inet_ntop(AF_INET, &((struct sockaddr_in *)&d->bob.addr.ss)->sin_addr, b,
            sizeof b);
  printf("lanchat loopback demo: alice on %s:%u, bob on %s:%u (UDP, "
         "loopback only)\n\n",
         a, ntohs(((struct sockaddr_in *)&d->alice.addr.ss)->sin_port), b,
         ntohs(((struct sockaddr_in *)&d->bob.addr.ss)->sin_port));
  /* no discovery yet: each learns the other's address directly */
  lc__tp_set_peer_addr(d->alice.tp, d->bob.id.pk, &d->bob.addr);
  lc__tp_set_peer_addr(d->bob.tp, d->alice.id.pk, &d->alice.addr);
  d->t0 = uv_hrtime() / 1000;
  uv_timer_init(&d->loop, &d->tick);
  d->tick.data = d;
  uv_timer_start(&d->tick, on_tick, 0, 20);
  uv_timer_init(&d->loop, &d->deadline);
  d->deadline.data = d;
  uv_timer_start(&d->deadline, on_deadline, 30000, 0);
  uv_run(&d->loop, UV_RUN_DEFAULT);

  printf("\n");
  print_stats(&d->alice);
  print_stats(&d->bob);
  int ok = !d->failed && d->bob.got == d->count && d->alice.got == d->count &&
           d->alice.acked == d->count && d->bob.acked == d->count;
  if (d->bulk_total) {
    ok &= d->bob.bulk_done && d->bob.bulk_bytes == d->bulk_total &&
          d->bob.bulk_sum == d->bulk_sum;
    if (d->bulk_end > d->bulk_start)
      printf("  bulk : %" PRIu64 " bytes in %.3f s (%.0f Mbit/s on loopback, "
             "1472-byte datagrams; not a LAN benchmark)\n",
             d->bulk_total, (double)(d->bulk_end - d->bulk_start) / 1e6,
             (double)d->bulk_total * 8 / (double)(d->bulk_end - d->bulk_start));
  }
  uv_timer_stop(&d->tick);
  uv_timer_stop(&d->deadline);
  uv_close((uv_handle_t *)&d->tick, NULL);
  uv_close((uv_handle_t *)&d->deadline, NULL);
  lc__net_uv_close(d->alice.net, NULL, NULL);
  lc__net_uv_close(d->bob.net, NULL, NULL);
  uv_run(&d->loop, UV_RUN_DEFAULT);
  uv_loop_close(&d->loop);
  lc__tp_free(d->alice.tp);
  lc__tp_free(d->bob.tp);
  printf("\n%s\n", ok ? "OK, every message delivered exactly once and the "
                        "bulk data arrived intact"
                      : "FAILED");
  free(d);
  return ok ? 0 : 1;
}
