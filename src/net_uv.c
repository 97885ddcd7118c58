/* net_uv.c: UDP sockets and a timer on a libuv loop driving a sans-I/O
 * engine (see net_uv.h).  The only file that includes uv.h. */
#include "net_uv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#define NET_BATCH 16 /* datagrams per recvmmsg */
#define NET_CHUNK (64 * 1024)
#define NET_BIND_TRIES 16
/* UDP GSO: datagrams of one flush to one address, of one size (the last
 * may be shorter), leave in one sendmsg of up to this many bytes and
 * segments (the kernel's limits are 64 KiB and 64). */
#define NET_GSO_BYTES 65000
#define NET_GSO_SEGS 64

typedef struct {
  uv_udp_t udp;
  struct lc__net_uv *net;
  int kind; /* LC__SOCK_* */
  int open;
} net_sock;

struct lc__net_uv {
  net_sock socks[LC__SOCK_COUNT];
  uv_timer_t timer;
  lc__tp *tp;
  lc__net_engine engine;
  lc__net_uv_options opts;
  lc__net_uv_stats st;
  uint8_t *rbuf; /* NET_BATCH chunks, reused: we consume synchronously */
  uint8_t sbuf[LC_DATAGRAM_MAX];
  /* the GSO batch being gathered: gso_n datagrams of gso_seg bytes (the
   * last may be shorter) to gso_to; gso_off: 1 once the kernel refused */
  uint8_t gso_buf[NET_GSO_BYTES];
  size_t gso_len, gso_seg;
  int gso_n, gso_off;
  lc__addr gso_to;
  int blocked; /* a uv_udp_send is in progress after EAGAIN */
  int in_flush;
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

/* ---- the bare-transport engine (tests, the loop demo) ------------------ */

static void net_tp_recv(void *user, int sock, const lc__addr *from,
                        const uint8_t *buf, size_t len, uint64_t now) {
  (void)sock;
  lc__tp_recv(user, from, buf, len, now);
}

static int net_tp_poll(void *user, uint64_t now, lc__addr *to, uint8_t *buf,
                       size_t cap) {
  return lc__tp_poll(user, now, to, buf, cap);
}

static uint64_t net_tp_next_wakeup(void *user) {
  return lc__tp_next_wakeup(user);
}

/* ---- sending ------------------------------------------------------------ */

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

static net_sock *net_sock_for(lc__net_uv *net, const lc__addr *to) {
  for (int k = LC__SOCK_UNICAST4; k <= LC__SOCK_UNICAST6; k++) {
    net_sock *s = &net->socks[k];
    if (s->open &&
        (k == LC__SOCK_UNICAST4 ? AF_INET : AF_INET6) == to->ss.ss_family)
      return s;
  }
  return NULL;
}

/* Returns 0 if the datagram left or was dropped, 1 if the socket is full
 * and the datagram was queued (stop sending until it completes). */
static int net_send(lc__net_uv *net, const lc__addr *to, const uint8_t *buf,
                    size_t len) {
  net_sock *s = net_sock_for(net, to);
  if (!s) {
    net->st.no_socket++; /* no socket of that family: nothing to do */
    return 0;
  }
  uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
  int rc = uv_udp_try_send(&s->udp, &b, 1, (const struct sockaddr *)&to->ss);
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
  rc = uv_udp_send(&r->req, &s->udp, &b, 1, (const struct sockaddr *)&to->ss,
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

/* Sends the GSO batch: one sendmsg with UDP_SEGMENT, or (one datagram,
 * the socket full, the kernel without GSO) one datagram at a time.
 * Returns net_send's 1 if the socket is full. */
static int net_gso_flush(lc__net_uv *net) {
  int n = net->gso_n;
  net->gso_n = 0;
  size_t len = net->gso_len;
  net->gso_len = 0;
  if (n == 0 || net->closing) /* the engine closed us while we gathered */
    return 0;
  net_sock *s = net_sock_for(net, &net->gso_to);
  uv_os_fd_t fd;
  if (n > 1 && !net->gso_off && s &&
      uv_fileno((uv_handle_t *)&s->udp, &fd) == 0) {
    struct iovec iov = {net->gso_buf, len};
    union {
      char buf[CMSG_SPACE(sizeof(uint16_t))];
      struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_name = &net->gso_to.ss;
    mh.msg_namelen = net->gso_to.len;
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.buf;
    mh.msg_controllen = sizeof ctl.buf;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_UDP;
    cm->cmsg_type = UDP_SEGMENT;
    cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    uint16_t seg = (uint16_t)net->gso_seg;
    memcpy(CMSG_DATA(cm), &seg, sizeof seg);
    ssize_t rc;
    do
      rc = sendmsg(fd, &mh, MSG_DONTWAIT);
    while (rc < 0 && errno == EINTR);
    if (rc >= 0) {
      net->st.datagrams_out += (uint64_t)n;
      net->st.gso_sends++;
      return 0;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS)
      net->gso_off = 1; /* no GSO here: one datagram at a time from now */
  }
  /* one at a time (what does not fit the socket waits in libuv's queue) */
  int blocked = 0;
  for (size_t off = 0; off < len; off += net->gso_seg) {
    size_t k = len - off < net->gso_seg ? len - off : net->gso_seg;
    blocked |= net_send(net, &net->gso_to, net->gso_buf + off, k);
  }
  return blocked;
}

/* Adds a datagram to the GSO batch, sending the batch first when this one
 * cannot join it.  Returns 1 if the socket is full. */
static int net_gso_add(lc__net_uv *net, const lc__addr *to, const uint8_t *buf,
                       size_t n) {
  int blocked = 0;
  if (net->gso_n > 0 &&
      (!lc__addr_equal(to, &net->gso_to) || n > net->gso_seg ||
       net->gso_len % net->gso_seg != 0 || net->gso_n >= NET_GSO_SEGS ||
       net->gso_len + n > NET_GSO_BYTES))
    blocked = net_gso_flush(net);
  if (blocked)
    return net_send(net, to, buf, n) | 1; /* queued behind the rest */
  if (net->gso_n == 0) {
    net->gso_to = *to;
    net->gso_seg = n;
  }
  memcpy(net->gso_buf + net->gso_len, buf, n);
  net->gso_len += n;
  net->gso_n++;
  return 0;
}

static void net_timer_cb(uv_timer_t *t) {
  lc__net_uv_flush(t->data);
}

void lc__net_uv_flush(lc__net_uv *net) {
  if (net->closing || net->in_flush)
    return;
  net->in_flush = 1;
  uint64_t now = lc__net_uv_now(net);
  while (!net->blocked) {
    lc__addr to;
    now = lc__net_uv_now(net); /* the pacer sees the time sending takes */
    int n = net->engine.poll(net->engine.user, now, &to, net->sbuf,
                             sizeof net->sbuf);
    if (n <= 0)
      break;
    if (net->gso_off ? net_send(net, &to, net->sbuf, (size_t)n)
                     : net_gso_add(net, &to, net->sbuf, (size_t)n))
      break;
  }
  net_gso_flush(net); /* a datagram that did not fit set blocked */
  net->in_flush = 0;
  if (net->blocked || net->closing)
    return; /* net_send_cb flushes again */
  uint64_t next = net->engine.next_wakeup(net->engine.user);
  if (next == LC_NEVER) {
    uv_timer_stop(&net->timer);
    return;
  }
  /* libuv timers have millisecond resolution: round up, never spin */
  uint64_t ms = next > now ? (next - now + 999) / 1000 : 0;
  uv_timer_start(&net->timer, net_timer_cb, ms, 0);
}

typedef struct {
  uv_work_t req;
  void (*work)(void *);
  void (*after)(void *);
  void *ctx;
} net_work;

static void net_work_cb(uv_work_t *req) {
  net_work *w = req->data;
  w->work(w->ctx);
}

static void net_after_work_cb(uv_work_t *req, int status) {
  (void)status;
  net_work *w = req->data;
  w->after(w->ctx);
  free(w);
}

int lc__net_uv_queue_work(struct uv_loop_s *loop, void (*work)(void *),
                          void (*after)(void *), void *ctx) {
  net_work *w = calloc(1, sizeof *w);
  if (!w)
    return LC_ENOMEM;
  w->work = work;
  w->after = after;
  w->ctx = ctx;
  w->req.data = w;
  int rc = uv_queue_work(loop, &w->req, net_work_cb, net_after_work_cb);
  if (rc < 0) {
    free(w);
    return rc;
  }
  return 0;
}

void lc__net_uv_kick(lc__net_uv *net) {
  if (!net->closing)
    uv_timer_start(&net->timer, net_timer_cb, 0, 0);
}

/* ---- receiving ---------------------------------------------------------- */

static void net_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  net_sock *s = h->data;
  *buf = uv_buf_init((char *)s->net->rbuf, NET_BATCH * NET_CHUNK);
}

static void net_recv_cb(uv_udp_t *udp, ssize_t nread, const uv_buf_t *buf,
                        const struct sockaddr *addr, unsigned flags) {
  net_sock *s = udp->data;
  lc__net_uv *net = s->net;
  if (flags & UV_UDP_MMSG_FREE)
    return; /* the buffer is ours and reused */
  if (net->closing)
    return;
  if (nread < 0) {
    net->st.recv_errors++;
    return;
  }
  if (!addr) {
    /* end of a batch: send what the batch produced */
    if (!(flags & UV_UDP_MMSG_CHUNK))
      lc__net_uv_flush(net);
    return;
  }
  /* an empty datagram (nread 0, an address) goes on: it is refused and
   * counted like any other that is not ours */
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
  net->engine.recv(net->engine.user, s->kind, &from, (const uint8_t *)buf->base,
                   (size_t)nread, lc__net_uv_now(net));
  if (!(flags & UV_UDP_MMSG_CHUNK))
    lc__net_uv_flush(net);
}

/* ---- sockets ------------------------------------------------------------ */

static void net_set_bufs(lc__net_uv *net, net_sock *s) {
  int want =
      net->opts.sock_buf_bytes > 0 ? net->opts.sock_buf_bytes : 4 * 1024 * 1024;
  int v = want;
  uv_recv_buffer_size((uv_handle_t *)&s->udp, &v);
  v = want;
  uv_send_buffer_size((uv_handle_t *)&s->udp, &v);
  int rcv = 0, snd = 0;
  uv_recv_buffer_size((uv_handle_t *)&s->udp, &rcv);
  uv_send_buffer_size((uv_handle_t *)&s->udp, &snd);
  if (s->kind == LC__SOCK_UNICAST4 || net->st.rcvbuf == 0) {
    net->st.rcvbuf = rcv;
    net->st.sndbuf = snd;
  }
  /* Linux reports twice what it grants */
  if (s->kind == LC__SOCK_UNICAST4 && (rcv / 2 < want || snd / 2 < want)) {
    char msg[160];
    snprintf(msg, sizeof msg,
             "socket buffers clamped by the kernel: asked %d, got rcv %d snd "
             "%d (raise net.core.rmem_max/wmem_max)",
             want, rcv / 2, snd / 2);
    net_log(net, 2, msg);
  }
}

/* A bound, non-blocking socket, or a negative errno. */
static int net_open_fd(const lc__addr *a, int reuse) {
  int fd =
      socket(a->ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  int one = 1;
  if (reuse)
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (a->ss.ss_family == AF_INET6)
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (a->ss.ss_family == AF_INET) {
    /* announcements are broadcasts */
    setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one);
#ifdef IP_MTU_DISCOVER
    /* Never let the kernel fragment: datagrams are sized for the path. */
    int pmtu = IP_PMTUDISC_DO;
    setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu);
#endif
  } else {
#ifdef IPV6_MTU_DISCOVER
    int pmtu = IPV6_PMTUDISC_DO;
    setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &pmtu, sizeof pmtu);
#endif
    int hops = 1; /* ff02::1 is link-local: never routed anyway */
    setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof hops);
  }
  if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  return fd;
}

static uint16_t net_port_of(const lc__addr *a) {
  if (a->ss.ss_family == AF_INET)
    return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
  return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
}

static void net_set_port(lc__addr *a, uint16_t port) {
  if (a->ss.ss_family == AF_INET)
    ((struct sockaddr_in *)&a->ss)->sin_port = htons(port);
  else
    ((struct sockaddr_in6 *)&a->ss)->sin6_port = htons(port);
}

static uint16_t net_fd_port(int fd) {
  lc__addr a;
  memset(&a, 0, sizeof a);
  socklen_t len = sizeof a.ss;
  if (getsockname(fd, (struct sockaddr *)&a.ss, &len) < 0)
    return 0;
  return net_port_of(&a);
}

/* Binds the unicast sockets, both on one port number (a node announces one
 * port for both families). */
static int net_bind_unicast(const lc__net_uv_options *o, int fds[2]) {
  const lc__addr *want[2] = {&o->bind,
                             o->bind2.ss.ss_family ? &o->bind2 : NULL};
  uint16_t port = net_port_of(&o->bind);
  int rc = 0;
  for (int attempt = 0; attempt < NET_BIND_TRIES; attempt++) {
    fds[0] = fds[1] = -1;
    uint16_t p = port;
    rc = 0;
    for (int i = 0; i < 2 && rc >= 0; i++) {
      if (!want[i])
        continue;
      lc__addr a = *want[i];
      net_set_port(&a, p);
      rc = net_open_fd(&a, 0);
      if (rc >= 0) {
        fds[i] = rc;
        p = net_fd_port(rc);
      }
    }
    if (rc >= 0)
      return 0;
    for (int i = 0; i < 2; i++)
      if (fds[i] >= 0)
        close(fds[i]);
    if (rc != -EADDRINUSE)
      return rc;
    /* busy: a fixed port falls back to one the system picks; a picked one
     * that the other family cannot share is simply picked again */
    if (port != 0 && !o->port_fallback)
      return rc;
    port = 0;
  }
  return rc;
}

static void net_closed(uv_handle_t *h) {
  lc__net_uv *net;
  if (h->type == UV_TIMER)
    net = h->data;
  else
    net = ((net_sock *)h->data)->net;
  if (--net->pending_closes > 0)
    return;
  if (net->close_cb)
    net->close_cb(net, net->close_arg);
  free(net->rbuf);
  free(net);
}

static void net_close_all(lc__net_uv *net) {
  net->closing = 1;
  net->pending_closes = 1;
  for (int k = 0; k < LC__SOCK_COUNT; k++) {
    net_sock *s = &net->socks[k];
    if (!s->open)
      continue;
    net->pending_closes++;
    uv_udp_recv_stop(&s->udp);
    uv_close((uv_handle_t *)&s->udp, net_closed);
  }
  uv_timer_stop(&net->timer);
  uv_close((uv_handle_t *)&net->timer, net_closed);
}

static int net_adopt(lc__net_uv *net, struct uv_loop_s *loop, int kind,
                     int fd) {
  net_sock *s = &net->socks[kind];
  s->net = net;
  s->kind = kind;
  int rc = uv_udp_init_ex(loop, &s->udp, AF_UNSPEC | UV_UDP_RECVMMSG);
  if (rc < 0) {
    close(fd);
    return rc;
  }
  s->open = 1;
  s->udp.data = s;
  rc = uv_udp_open(&s->udp, fd);
  if (rc < 0) {
    close(fd);
    return rc;
  }
  net_set_bufs(net, s);
  rc = uv_udp_recv_start(&s->udp, net_alloc_cb, net_recv_cb);
  if (rc == 0 && uv_udp_using_recvmmsg(&s->udp))
    net->st.recvmmsg = 1;
  return rc;
}

int lc__net_uv_start(lc__net_uv **out, struct uv_loop_s *loop, lc__tp *tp,
                     const lc__net_uv_options *opts) {
  *out = NULL;
  if (!loop || !opts || (!tp && !opts->engine.poll) ||
      (opts->bind.ss.ss_family != AF_INET &&
       opts->bind.ss.ss_family != AF_INET6) ||
      (opts->bind2.ss.ss_family &&
       opts->bind2.ss.ss_family == opts->bind.ss.ss_family))
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
  if (opts->engine.poll) {
    net->engine = opts->engine;
  } else {
    net->engine.recv = net_tp_recv;
    net->engine.poll = net_tp_poll;
    net->engine.next_wakeup = net_tp_next_wakeup;
    net->engine.user = tp;
  }
  uv_timer_init(loop, &net->timer);
  net->timer.data = net;

  int fds[2];
  int rc = net_bind_unicast(opts, fds);
  for (int i = 0; i < 2 && rc >= 0; i++) {
    if (fds[i] < 0)
      continue;
    const lc__addr *a = i == 0 ? &opts->bind : &opts->bind2;
    int kind =
        a->ss.ss_family == AF_INET ? LC__SOCK_UNICAST4 : LC__SOCK_UNICAST6;
    rc = net_adopt(net, loop, kind, fds[i]);
    fds[i] = -1;
  }
  for (int i = 0; i < 2; i++)
    if (rc < 0 && fds[i] >= 0)
      close(fds[i]);
  for (int fam = 0; fam < 2 && rc >= 0 && opts->discovery_port; fam++) {
    if (!(fam == 0 ? opts->discovery4 : opts->discovery6))
      continue;
    lc__addr a;
    memset(&a, 0, sizeof a);
    if (fam == 0) {
      struct sockaddr_in *s = (struct sockaddr_in *)&a.ss;
      s->sin_family = AF_INET;
      s->sin_addr.s_addr = htonl(INADDR_ANY);
      s->sin_port = htons(opts->discovery_port);
      a.len = sizeof *s;
    } else {
      struct sockaddr_in6 *s = (struct sockaddr_in6 *)&a.ss;
      s->sin6_family = AF_INET6;
      s->sin6_addr = in6addr_any;
      s->sin6_port = htons(opts->discovery_port);
      a.len = sizeof *s;
    }
    rc = net_open_fd(&a, 1);
    if (rc >= 0)
      rc = net_adopt(net, loop, fam == 0 ? LC__SOCK_DISC4 : LC__SOCK_DISC6, rc);
  }
  if (rc < 0) {
    /* handles exist: close them; net_closed frees net afterwards */
    net_close_all(net);
    return rc;
  }
  *out = net;
  return 0;
}

int lc__net_uv_join_all_nodes(lc__net_uv *net, unsigned ifindex) {
  net_sock *s = &net->socks[LC__SOCK_DISC6];
  if (!s->open)
    return UV_EBADF;
  uv_os_fd_t fd;
  int rc = uv_fileno((uv_handle_t *)&s->udp, &fd);
  if (rc < 0)
    return rc;
  struct ipv6_mreq m;
  memset(&m, 0, sizeof m);
  inet_pton(AF_INET6, "ff02::1", &m.ipv6mr_multiaddr);
  m.ipv6mr_interface = ifindex;
  if (setsockopt(fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, &m, sizeof m) < 0 &&
      errno != EADDRINUSE)
    return -errno;
  return 0;
}

int lc__net_uv_local_addr(const lc__net_uv *net, lc__addr *out) {
  memset(out, 0, sizeof *out);
  for (int k = LC__SOCK_UNICAST4; k <= LC__SOCK_UNICAST6; k++) {
    if (!net->socks[k].open)
      continue;
    int len = sizeof out->ss;
    int rc = uv_udp_getsockname(&net->socks[k].udp, (struct sockaddr *)&out->ss,
                                &len);
    out->len = (socklen_t)len;
    return rc;
  }
  return UV_EBADF;
}

void lc__net_uv_stats_get(const lc__net_uv *net, lc__net_uv_stats *st) {
  *st = net->st;
}

void lc__net_uv_close(lc__net_uv *net, lc__net_uv_close_cb *cb, void *arg) {
  if (!net || net->closing)
    return;
  net->close_cb = cb;
  net->close_arg = arg;
  net_gso_flush(net); /* what was gathered (goodbyes, CLOSE) goes first */
  net_close_all(net);
}

/* ---- interfaces and addresses ---------------------------------------------
 */

int lc__net_interfaces(lc__iface_addr **out, size_t *count) {
  *out = NULL;
  *count = 0;
  uv_interface_address_t *ifs;
  int n;
  int rc = uv_interface_addresses(&ifs, &n);
  if (rc < 0)
    return rc;
  lc__iface_addr *r = calloc((size_t)n + 1, sizeof *r);
  if (!r) {
    uv_free_interface_addresses(ifs, n);
    return LC_ENOMEM;
  }
  size_t k = 0;
  for (int i = 0; i < n; i++) {
    int fam = ifs[i].address.address4.sin_family;
    if (fam != AF_INET && fam != AF_INET6)
      continue;
    lc__iface_addr *e = &r[k++];
    snprintf(e->name, sizeof e->name, "%s", ifs[i].name);
    e->ifindex = if_nametoindex(ifs[i].name);
    e->internal = ifs[i].is_internal;
    size_t len = fam == AF_INET ? sizeof(struct sockaddr_in)
                                : sizeof(struct sockaddr_in6);
    memcpy(&e->addr.ss, &ifs[i].address, len);
    e->addr.len = (socklen_t)len;
    memcpy(&e->netmask.ss, &ifs[i].netmask, len);
    e->netmask.len = (socklen_t)len;
    e->netmask.ss.ss_family = (sa_family_t)fam;
  }
  uv_free_interface_addresses(ifs, n);
  *out = r;
  *count = k;
  return 0;
}

int lc__net_parse_addr(const char *s, uint16_t default_port, lc__addr *out) {
  memset(out, 0, sizeof *out);
  char host[96];
  const char *port_s = NULL;
  size_t n = strlen(s);
  if (n == 0 || n >= sizeof host)
    return LC_EINVAL;
  if (s[0] == '[') {
    const char *end = strchr(s, ']');
    if (!end || (end[1] && end[1] != ':'))
      return LC_EINVAL;
    memcpy(host, s + 1, (size_t)(end - s - 1));
    host[end - s - 1] = 0;
    if (end[1] == ':')
      port_s = end + 2;
  } else {
    const char *colon = strchr(s, ':');
    if (colon && strchr(colon + 1, ':'))
      colon = NULL; /* a bare IPv6 address */
    size_t hl = colon ? (size_t)(colon - s) : n;
    memcpy(host, s, hl);
    host[hl] = 0;
    if (colon)
      port_s = colon + 1;
  }
  unsigned long port = default_port;
  if (port_s) {
    char *end;
    if (!*port_s || *port_s == '-' || *port_s == '+')
      return LC_EINVAL;
    errno = 0;
    port = strtoul(port_s, &end, 10);
    if (*end || errno || port == 0 || port > 65535)
      return LC_EINVAL;
  }
  struct sockaddr_in *s4 = (struct sockaddr_in *)&out->ss;
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->ss;
  if (uv_ip4_addr(host, (int)port, s4) == 0 && strchr(host, '.')) {
    out->len = sizeof *s4;
    return 0;
  }
  memset(out, 0, sizeof *out);
  if (strchr(host, ':') && uv_ip6_addr(host, (int)port, s6) == 0) {
    const char *pct = strchr(host, '%');
    if (pct && s6->sin6_scope_id == 0)
      return LC_EINVAL; /* no such interface */
    out->len = sizeof *s6;
    return 0;
  }
  return LC_EINVAL;
}

void lc__net_format_addr(const lc__addr *a, char *out, size_t cap) {
  char ip[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  if (a->ss.ss_family == AF_INET) {
    const struct sockaddr_in *s = (const struct sockaddr_in *)&a->ss;
    inet_ntop(AF_INET, &s->sin_addr, ip, sizeof ip);
    snprintf(out, cap, "%s:%u", ip, (unsigned)ntohs(s->sin_port));
  } else if (a->ss.ss_family == AF_INET6) {
    const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&a->ss;
    inet_ntop(AF_INET6, &s->sin6_addr, ip, INET6_ADDRSTRLEN);
    char ifn[IF_NAMESIZE];
    if (s->sin6_scope_id && if_indextoname(s->sin6_scope_id, ifn)) {
      size_t l = strlen(ip);
      snprintf(ip + l, sizeof ip - l, "%%%s", ifn);
    }
    snprintf(out, cap, "[%s]:%u", ip, (unsigned)ntohs(s->sin6_port));
  } else {
    snprintf(out, cap, "?");
  }
}
