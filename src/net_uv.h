/* net_uv.h: the node's sockets and its timer on the caller's libuv loop.
 * net_uv.c is the only file that includes uv.h.
 *
 * It drives a sans-I/O "engine" (the node's transport plus discovery, or a
 * bare transport in tests): received datagrams go to engine.recv (batched
 * with recvmmsg where libuv offers it); after every event the engine is
 * polled until it has nothing more to send, and one timer is armed for
 * engine.next_wakeup.  Times are uv_hrtime in microseconds.
 *
 * Sockets: a unicast socket per family (every datagram leaves from the one
 * of its destination's family) and, optionally, a discovery socket per
 * family bound to the wildcard address and the shared discovery port with
 * SO_REUSEADDR, so several nodes on one host all hear broadcasts.
 */
#ifndef LC_NET_UV_H
#define LC_NET_UV_H

#include "transport.h"

struct uv_loop_s;
typedef struct lc__net_uv lc__net_uv;

typedef void lc__net_uv_close_cb(lc__net_uv *net, void *arg);
typedef void lc__net_uv_log_cb(void *user, int level, const char *msg);

enum {
  LC__SOCK_UNICAST4 = 0,
  LC__SOCK_UNICAST6 = 1,
  LC__SOCK_DISC4 = 2,
  LC__SOCK_DISC6 = 3,
  LC__SOCK_COUNT = 4
};

/* What the sockets drive.  All three run on the loop thread. */
typedef struct {
  void (*recv)(void *user, int sock, const lc__addr *from, const uint8_t *buf,
               size_t len, uint64_t now);
  /* The next datagram to send (its length) or 0 when nothing is due. */
  int (*poll)(void *user, uint64_t now, lc__addr *to, uint8_t *buf, size_t cap);
  uint64_t (*next_wakeup)(void *user);
  void *user;
} lc__net_engine;

typedef struct {
  /* Unicast sockets: bind (required) and bind2 (optional, the other
   * family; ss_family 0 = none).  Both use the same port: bind's port, or
   * when it is 0 (or busy and port_fallback is set) one the system picks
   * for the first that is free for both. */
  lc__addr bind;
  lc__addr bind2;
  int port_fallback;
  /* Discovery sockets on the wildcard address (0 = none). */
  uint16_t discovery_port;
  int discovery4, discovery6;
  int sock_buf_bytes;     /* SO_RCVBUF/SO_SNDBUF wanted; default 4 MiB */
  lc__net_uv_log_cb *log; /* optional: clamped buffers, send errors */
  void *log_user;
  /* The engine; when engine.poll is NULL the tp given to start is driven
   * directly (tests). */
  lc__net_engine engine;
} lc__net_uv_options;

typedef struct {
  uint64_t datagrams_in, datagrams_out;
  uint64_t recv_errors, send_errors, send_blocked, no_socket;
  int rcvbuf, sndbuf; /* what the kernel granted */
  int recvmmsg;       /* 1 if libuv batches receives */
  uint64_t gso_sends; /* sendmsg calls that carried several datagrams */
} lc__net_uv_stats;

/* Creates the sockets, binds them and starts receiving.  tp is borrowed
 * and must outlive the net (may be NULL when an engine is given).  Errors:
 * negative errno from the system (port in use, ...), LC_EINVAL,
 * LC_ENOMEM. */
int lc__net_uv_start(lc__net_uv **out, struct uv_loop_s *loop, lc__tp *tp,
                     const lc__net_uv_options *opts);

/* The local address of the first unicast socket (port 0 resolved). */
int lc__net_uv_local_addr(const lc__net_uv *net, lc__addr *out);

/* The current time as the engine sees it (microseconds). */
uint64_t lc__net_uv_now(const lc__net_uv *net);

/* Sends what the engine has to send and re-arms the timer; call after
 * anything that queued data from inside a loop callback. */
void lc__net_uv_flush(lc__net_uv *net);

/* The same, on the next loop iteration (from outside loop callbacks, so
 * that the engine's events never fire inside the caller's call). */
void lc__net_uv_kick(lc__net_uv *net);

/* Runs work(ctx) on libuv's worker threads, then after(ctx) on the loop
 * (always, also when the caller has gone: ctx must say so).  Errors:
 * LC_ENOMEM, a libuv error. */
int lc__net_uv_queue_work(struct uv_loop_s *loop, void (*work)(void *),
                          void (*after)(void *), void *ctx);

/* Joins ff02::1 on interface ifindex on the IPv6 discovery socket.
 * Returns 0 or a negative errno. */
int lc__net_uv_join_all_nodes(lc__net_uv *net, unsigned ifindex);

void lc__net_uv_stats_get(const lc__net_uv *net, lc__net_uv_stats *st);

/* Closes the sockets and timer; cb runs on a later loop iteration, after
 * which the memory is freed.  The transport is not freed. */
void lc__net_uv_close(lc__net_uv *net, lc__net_uv_close_cb *cb, void *arg);

/* ---- interfaces --------------------------------------------------------- */
typedef struct {
  char name[32];
  unsigned ifindex;
  int internal; /* loopback */
  lc__addr addr;
  lc__addr netmask;
} lc__iface_addr;

/* The machine's interface addresses (those that are up).  *out is
 * malloc'd, free it with free().  Returns 0 or a negative errno. */
int lc__net_interfaces(lc__iface_addr **out, size_t *count);

/* Parses a numeric "ip", "ip:port", "[ip6]:port" or "ip6%if" address.
 * default_port is used when none is given.  Returns 0 or LC_EINVAL. */
int lc__net_parse_addr(const char *s, uint16_t default_port, lc__addr *out);
/* Formats an address as "ip:port" / "[ip6%if]:port". */
void lc__net_format_addr(const lc__addr *a, char *out, size_t cap);

#endif
