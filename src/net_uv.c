/* net_uv.c: a UDP socket and a timer on a libuv loop driving one transport
 * (see net_uv.h).  The only file that includes uv.h. */
#include "net_uv.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

#define NET_BATCH 16 /* datagrams per recvmmsg */
#define NET_CHUNK (64 * 1024)

struct lc__net_uv {
  uv_udp_t udp;
  uv_timer_t timer;
  lc__tp *tp;
  lc__net_uv_options opts;
  lc__net_uv_stats st;
  uint8_t *rbuf; /* NET_BATCH chunks, reused: we consume synchronously */
  uint8_t sbuf[LC_DATAGRAM_MAX];
  int blocked; /* a uv_udp_send is in progress after EAGAIN */
  int closing, pending_closes;
  lc__net_uv_close_cb *close_cb;
  void *close_arg;
};

typedef struct {
  uv_udp_send_t req;
  lc__net_uv *net;
  size_t len;
  uint8_t data[];
} net_send_req;

static void net_log(lc__net_uv *net, int level, const char *msg) {
  if (net->opts.log)
    net->opts.log(net->opts.log_user, level, msg);
}

uint64_t lc__net_uv_now(const lc__net_uv *net) {
  (void)net;
  return uv_hrtime() / 1000;
}

static void net_send_cb(uv_udp_send_t *req, int status) {
  net_send_req *r = (net_send_req *)req;
  lc__net_uv *net = r->net;
  if (status < 0)
    net->st.send_errors++;
  free(r);
  net->blocked = 0;
  if (!net->closing)
    lc__net_uv_flush(net);
}

/* Returns 0 if the datagram left or was dropped, 1 if the socket is full
 * and the datagram was queued (stop sending until it completes). */
static int net_send(lc__net_uv *net, const lc__addr *to, const uint8_t *buf,
                    size_t len) {
  uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
  int rc = uv_udp_try_send(&net->udp, &b, 1, (const struct sockaddr *)&to->ss);
  if (rc >= 0) {
    net->st.datagrams_out++;
    return 0;
  }
  if (rc != UV_EAGAIN) {
    /* unreachable host, no route: the transport's loss recovery copes */
    net->st.send_errors++;
    return 0;
  }
  net_send_req *r = malloc(sizeof *r + len);
  if (!r) {
    net->st.send_errors++;
    return 0;
  }
  r->net = net;
  r->len = len;
  memcpy(r->data, buf, len);
  b = uv_buf_init((char *)r->data, (unsigned)len);
  rc = uv_udp_send(&r->req, &net->udp, &b, 1, (const struct sockaddr *)&to->ss,
                   net_send_cb);
  if (rc < 0) {
    free(r);
    net->st.send_errors++;
    return 0;
  }
  net->st.send_blocked++;
  net->st.datagrams_out++;
  net->blocked = 1;
  return 1;
}

static void net_timer_cb(uv_timer_t *t) {
  lc__net_uv_flush(t->data);
}

void lc__net_uv_flush(lc__net_uv *net) {
  if (net->closing)
    return;
  uint64_t now = lc__net_uv_now(net);
  while (!net->blocked) {
    lc__addr to;
    int n = lc__tp_poll(net->tp, now, &to, net->sbuf, sizeof net->sbuf);
    if (n <= 0)
      break;
    if (net_send(net, &to, net->sbuf, (size_t)n))
      break;
  }
  if (net->blocked)
    return; /* net_send_cb flushes again */
  uint64_t next = lc__tp_next_wakeup(net->tp);
  if (next == LC_NEVER) {
    uv_timer_stop(&net->timer);
    return;
  }
  /* libuv timers have millisecond resolution: round up, never spin */
  uint64_t ms = next > now ? (next - now + 999) / 1000 : 0;
  uv_timer_start(&net->timer, net_timer_cb, ms, 0);
}

static void net_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  lc__net_uv *net = h->data;
  *buf = uv_buf_init((char *)net->rbuf, NET_BATCH * NET_CHUNK);
}

static void net_recv_cb(uv_udp_t *udp, ssize_t nread, const uv_buf_t *buf,
                        const struct sockaddr *addr, unsigned flags) {
  (void)buf;
  lc__net_uv *net = udp->data;
  if (flags & UV_UDP_MMSG_FREE)
    return; /* the buffer is ours and reused */
  if (nread < 0) {
    net->st.recv_errors++;
    return;
  }
  if (nread == 0 || !addr) {
    /* end of a batch: send what the batch produced */
    if (!(flags & UV_UDP_MMSG_CHUNK))
      lc__net_uv_flush(net);
    return;
  }
  if (flags & UV_UDP_PARTIAL) {
    net->st.recv_errors++;
    return;
  }
  lc__addr from;
  memset(&from, 0, sizeof from);
  from.len = addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                         : sizeof(struct sockaddr_in);
  memcpy(&from.ss, addr, from.len);
  net->st.datagrams_in++;
  lc__tp_recv(net->tp, &from, (const uint8_t *)buf->base, (size_t)nread,
              lc__net_uv_now(net));
  if (!(flags & UV_UDP_MMSG_CHUNK))
    lc__net_uv_flush(net);
}

static void net_set_sockopts(lc__net_uv *net) {
  int want =
      net->opts.sock_buf_bytes > 0 ? net->opts.sock_buf_bytes : 4 * 1024 * 1024;
  int v = want;
  uv_recv_buffer_size((uv_handle_t *)&net->udp, &v);
  v = want;
  uv_send_buffer_size((uv_handle_t *)&net->udp, &v);
  int got = 0;
  uv_recv_buffer_size((uv_handle_t *)&net->udp, &got);
  net->st.rcvbuf = got;
  got = 0;
  uv_send_buffer_size((uv_handle_t *)&net->udp, &got);
  net->st.sndbuf = got;
  /* Linux reports twice what it grants */
  if (net->st.rcvbuf / 2 < want || net->st.sndbuf / 2 < want) {
    char msg[160];
    snprintf(msg, sizeof msg,
             "socket buffers clamped by the kernel: asked %d, got rcv %d snd "
             "%d (raise net.core.rmem_max/wmem_max)",
             want, net->st.rcvbuf / 2, net->st.sndbuf / 2);
    net_log(net, 2, msg);
  }
  /* Never let the kernel fragment: datagrams are sized for the path. */
  uv_os_fd_t fd;
  if (uv_fileno((uv_handle_t *)&net->udp, &fd) == 0) {
#ifdef IP_MTU_DISCOVER
    if (net->opts.bind.ss.ss_family == AF_INET) {
      int pmtu = IP_PMTUDISC_DO;
      setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu);
    }
#endif
#ifdef IPV6_MTU_DISCOVER
    if (net->opts.bind.ss.ss_family == AF_INET6) {
      int pmtu = IPV6_PMTUDISC_DO;
      setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &pmtu, sizeof pmtu);
    }
#endif
  }
}

static void net_closed(uv_handle_t *h) {
  lc__net_uv *net = h->data;
  if (--net->pending_closes > 0)
    return;
  if (net->close_cb)
    net->close_cb(net, net->close_arg);
  free(net->rbuf);
  free(net);
}

int lc__net_uv_start(lc__net_uv **out, struct uv_loop_s *loop, lc__tp *tp,
                     const lc__net_uv_options *opts) {
  *out = NULL;
  if (!loop || !tp || !opts)
    return LC_EINVAL;
  lc__net_uv *net = calloc(1, sizeof *net);
  if (!net)
    return LC_ENOMEM;
  net->rbuf = malloc(NET_BATCH * NET_CHUNK);
  if (!net->rbuf) {
    free(net);
    return LC_ENOMEM;
  }
  net->tp = tp;
  net->opts = *opts;
  int rc = uv_udp_init_ex(loop, &net->udp,
                          opts->bind.ss.ss_family | UV_UDP_RECVMMSG);
  if (rc < 0) {
    free(net->rbuf);
    free(net);
    return rc;
  }
  net->udp.data = net;
  uv_timer_init(loop, &net->timer);
  net->timer.data = net;
  rc = uv_udp_bind(&net->udp, (const struct sockaddr *)&opts->bind.ss, 0);
  if (rc == 0)
    rc = uv_udp_recv_start(&net->udp, net_alloc_cb, net_recv_cb);
  if (rc < 0) {
    /* both handles exist: close them; net_closed frees net afterwards */
    net->closing = 1;
    net->pending_closes = 2;
    uv_close((uv_handle_t *)&net->udp, net_closed);
    uv_close((uv_handle_t *)&net->timer, net_closed);
    return rc;
  }
  net->st.recvmmsg = uv_udp_using_recvmmsg(&net->udp);
  net_set_sockopts(net);
  *out = net;
  return 0;
}

int lc__net_uv_local_addr(const lc__net_uv *net, lc__addr *out) {
  memset(out, 0, sizeof *out);
  int len = sizeof out->ss;
  int rc = uv_udp_getsockname(&net->udp, (struct sockaddr *)&out->ss, &len);
  out->len = (socklen_t)len;
  return rc;
}

void lc__net_uv_stats_get(const lc__net_uv *net, lc__net_uv_stats *st) {
  *st = net->st;
}

void lc__net_uv_close(lc__net_uv *net, lc__net_uv_close_cb *cb, void *arg) {
  if (!net || net->closing)
    return;
  net->closing = 1;
  net->close_cb = cb;
  net->close_arg = arg;
  net->pending_closes = 2;
  uv_udp_recv_stop(&net->udp);
  uv_timer_stop(&net->timer);
  uv_close((uv_handle_t *)&net->udp, net_closed);
  uv_close((uv_handle_t *)&net->timer, net_closed);
}
