/* net_uv.h: drives one transport (lc__tp) from a UDP socket and a timer on
 * the caller's libuv loop.  net_uv.c is the only file that includes uv.h.
 *
 * Received datagrams go to lc__tp_recv (batched with recvmmsg where libuv
 * offers it); after every event the transport is polled until it has
 * nothing more to send, and one timer is armed for lc__tp_next_wakeup.
 * Times given to the transport come from uv_hrtime, in microseconds.
 */
#ifndef LC_NET_UV_H
#define LC_NET_UV_H

#include "transport.h"

struct uv_loop_s;
typedef struct lc__net_uv lc__net_uv;

typedef void lc__net_uv_close_cb(lc__net_uv *net, void *arg);
typedef void lc__net_uv_log_cb(void *user, int level, const char *msg);

typedef struct {
  lc__addr bind;          /* address and port to bind (port 0: any) */
  int sock_buf_bytes;     /* SO_RCVBUF/SO_SNDBUF wanted; default 4 MiB */
  lc__net_uv_log_cb *log; /* optional: clamped buffers, send errors */
  void *log_user;
} lc__net_uv_options;

typedef struct {
  uint64_t datagrams_in, datagrams_out;
  uint64_t recv_errors, send_errors, send_blocked;
  int rcvbuf, sndbuf; /* what the kernel granted */
  int recvmmsg;       /* 1 if libuv batches receives */
} lc__net_uv_stats;

/* Creates the socket, binds it and starts receiving.  tp is borrowed and
 * must outlive the net.  Errors: negative errno from libuv (port in use,
 * ...), LC_ENOMEM. */
int lc__net_uv_start(lc__net_uv **out, struct uv_loop_s *loop, lc__tp *tp,
                     const lc__net_uv_options *opts);

/* The local address actually bound (port 0 resolved). */
int lc__net_uv_local_addr(const lc__net_uv *net, lc__addr *out);

/* The current time as the transport sees it (microseconds). */
uint64_t lc__net_uv_now(const lc__net_uv *net);

/* Sends what the transport has to send and re-arms the timer; call after
 * anything that queues data on the transport (lc__tp_send_msg, ...). */
void lc__net_uv_flush(lc__net_uv *net);

void lc__net_uv_stats_get(const lc__net_uv *net, lc__net_uv_stats *st);

/* Closes the socket and timer; cb runs on a later loop iteration, after
 * which the memory is freed.  The transport is not freed. */
void lc__net_uv_close(lc__net_uv *net, lc__net_uv_close_cb *cb, void *arg);

#endif
