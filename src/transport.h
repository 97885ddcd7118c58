/* transport.h: lanchat's reliable transport, a sans-I/O state machine.
 *
 * It owns sessions with peers (handshake, keys, packet numbers, loss
 * detection, congestion control, streams) and nothing else: no sockets, no
 * clock, no randomness of its own.  It is fed received datagrams and the
 * current time, hands out datagrams to send, and says when it next needs to
 * be woken.  libuv drives it in the node; tests/sim drives it with a virtual
 * clock.  RFC 9002 is the model for loss detection and congestion control.
 *
 * Times are microseconds on a monotonic clock chosen by the driver.
 */
#ifndef LC_TRANSPORT_H
#define LC_TRANSPORT_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "crypto.h"
#include "wire.h"

#define LC_NEVER UINT64_MAX
#define LC_REDELIVER_US 200000 /* a refused message is offered again */

/* A peer's UDP address (IPv4 or IPv6). */
typedef struct {
  struct sockaddr_storage ss;
  socklen_t len;
} lc__addr;

int lc__addr_equal(const lc__addr *a, const lc__addr *b);

/* Why a session ended (session_down). */
enum {
  LC_DOWN_CLOSED = 1,  /* we closed it */
  LC_DOWN_PEER = 2,    /* the peer sent CLOSE */
  LC_DOWN_IDLE = 3,    /* nothing heard for idle_timeout_us */
  LC_DOWN_RESTART = 4, /* the peer forgot the session (restart, timeout) */
  LC_DOWN_ERROR = 5    /* protocol violation by the peer */
};

/* Events.  Every pointer argument is borrowed for the duration of the call.
 * Callbacks may call lc__tp_send_* but must not free the transport. */
typedef struct {
  /* A session is established (handshake complete, keys confirmed). */
  void (*session_up)(void *user, const uint8_t peer[LC_PK_BYTES]);
  void (*session_down)(void *user, const uint8_t peer[LC_PK_BYTES], int reason);
  /* A complete chat message, delivered exactly once per session and in the
   * order the peer sent it.  Return 0 once the application has it (only
   * then is it reported delivered to the sender), or a negative value if
   * it cannot take it now (its store failed, say): the transport keeps it,
   * holds back the ones after it, and offers it again LC_REDELIVER_US
   * later. */
  int (*message)(void *user, const uint8_t peer[LC_PK_BYTES],
                 const uint8_t msg_id[LC_MSG_ID_BYTES], const uint8_t *data,
                 size_t len);
  /* The peer's transport handed the message to its application (in
   * order; so every earlier message too).  Received alone is not enough: a
   * message waiting in the peer's reassembly for an earlier one is not
   * acknowledged yet, so a restart of the peer never loses an acknowledged
   * message. */
  void (*message_acked)(void *user, const uint8_t peer[LC_PK_BYTES],
                        const uint8_t msg_id[LC_MSG_ID_BYTES]);
  /* A message we sent was not reported delivered before its session ended;
   * err says why.  The peer may still have received it (the report may
   * have been lost), so an application that queues it again relies on the
   * message id to drop the duplicate. */
  void (*message_failed)(void *user, const uint8_t peer[LC_PK_BYTES],
                         const uint8_t msg_id[LC_MSG_ID_BYTES], int err);
  /* An unreliable datagram (presence, typing). */
  void (*unreliable)(void *user, const uint8_t peer[LC_PK_BYTES],
                     const uint8_t *data, size_t len);
  /* Bulk data at its byte offset, possibly out of order, each byte once. */
  void (*bulk)(void *user, const uint8_t peer[LC_PK_BYTES], uint32_t stream_id,
               uint64_t offset, const uint8_t *data, size_t len);
  /* The peer's bulk stream is complete: every byte up to final_size has
   * been delivered through bulk(). */
  void (*bulk_done)(void *user, const uint8_t peer[LC_PK_BYTES],
                    uint32_t stream_id, uint64_t final_size);
  /* All data of a bulk stream we sent, fin included, is acknowledged. */
  void (*bulk_acked)(void *user, const uint8_t peer[LC_PK_BYTES],
                     uint32_t stream_id);
} lc__tp_callbacks;

typedef struct {
  /* UDP payload budget per datagram: 1472 for IPv4 over Ethernet (the
   * default), up to LC_DATAGRAM_MAX - 1 on loopback. */
  size_t max_datagram;
  uint64_t initial_rtt_us;      /* before any sample; default 100 ms */
  uint64_t max_ack_delay_us;    /* how long we may hold an ACK; default 2 ms */
  uint64_t pto_max_us;          /* cap on the backed-off probe timeout; 1 s */
  uint64_t idle_timeout_us;     /* 0: sessions never expire; default 0 */
  uint64_t keepalive_us;        /* PING after this much silence; 0 = off */
  uint64_t rekey_after_us;      /* new handshake after this; default 120 s */
  uint64_t rekey_after_packets; /* ... or this many packets; 2^48 */
  uint32_t max_sessions;        /* default 1024 */
  size_t max_msg_bytes;         /* largest chat message; default 1 MiB */
  size_t max_send_bytes;        /* queued, unacked send data per session;
                                   default 64 MiB */
  size_t max_reassembly_bytes;  /* per session; default 8 MiB */
  uint64_t msg_window;          /* chat credit in messages; default 4096 */
  uint64_t bulk_window;         /* bulk credit in bytes; default 16 MiB */
  uint32_t max_bulk_streams;    /* open per direction; default 64 */
  int loss_tolerant;            /* 1: random loss (no queue) keeps cwnd */
  int hold_delivered;           /* 1: DELIVERED claims a message only after
                                   lc__tp_commit (the application commits
                                   what it took in batches) */
  uint64_t pace_tick_us;        /* the caller's timer resolution: pacing
                                   allows a burst of what the rate earns in
                                   it (0: ten datagrams at most) */
  uint64_t clock_offset_us;     /* wall clock = now + offset (handshake
                                   timestamps) */
  /* Randomness (ephemeral keys, indices, instance).  Required. */
  void (*random)(void *ctx, void *buf, size_t len);
  void *random_ctx;
  lc__tp_callbacks cb;
  void *user;
} lc__tp_config;

/* Fills cfg with the defaults above (random = the OS CSPRNG). */
void lc__tp_config_default(lc__tp_config *cfg);

typedef struct lc__tp lc__tp;

/* Creates a transport for identity id (copied).  Errors: LC_ENOMEM,
 * LC_EINVAL for a configuration it cannot honour: max_datagram outside
 * 512..LC_DATAGRAM_MAX-1, msg_window below 256 or bulk_window below 1 MiB
 * (the initial credits every peer may assume), max_reassembly_bytes below
 * twice max_msg_bytes, a zero initial_rtt_us, pto_max_us or limit, no
 * random function. */
int lc__tp_new(lc__tp **out, const lc__identity *id, const lc__tp_config *cfg);
/* Frees everything.  No callback runs.  NULL is a no-op. */
void lc__tp_free(lc__tp *tp);

/* Feeds one received datagram.  Returns 0 or the reason it was dropped
 * (also counted in the stats): LC_EPROTO and friends from the decoder,
 * LC_EAUTH, LC_EREPLAY, LC_ENOSESSION, LC_ELIMIT (also: a HELLO over the
 * handshake rate limits, LC_HS_* in transport.c), LC_EFLOW. */
int lc__tp_recv(lc__tp *tp, const lc__addr *from, const uint8_t *buf,
                size_t len, uint64_t now);

/* Runs due timers and writes the next datagram to send into buf (capacity
 * cap, at least max_datagram).  Returns its length, or 0 when nothing is
 * due now (call again after lc__tp_next_wakeup()). */
int lc__tp_poll(lc__tp *tp, uint64_t now, lc__addr *to, uint8_t *buf,
                size_t cap);

/* Absolute time at which lc__tp_poll next has work, or LC_NEVER. */
uint64_t lc__tp_next_wakeup(const lc__tp *tp);

/* Tells the transport where a peer can be reached (from discovery or
 * configuration).  A session already running keeps its current address
 * until an authenticated packet arrives from the new one.  Starts no
 * handshake.  Errors: LC_EINVAL (our own key, or not a usable Ed25519
 * key), LC_ELIMIT (the peer table is full of peers with sessions),
 * LC_ENOMEM. */
int lc__tp_set_peer_addr(lc__tp *tp, const uint8_t peer[LC_PK_BYTES],
                         const lc__addr *addr);

/* The peer proved (by a signed announcement) that it is now at addr: a
 * running session moves there at once, and whatever waits on a backed-off
 * retransmission or handshake timer goes out now.  Errors as
 * lc__tp_set_peer_addr. */
int lc__tp_peer_moved(lc__tp *tp, const uint8_t peer[LC_PK_BYTES],
                      const lc__addr *addr, uint64_t now);

/* Our network changed: every pending retransmission and handshake goes out
 * now instead of after its backed-off timer. */
void lc__tp_resume(lc__tp *tp, uint64_t now);

/* Starts a handshake unless a session exists or is being set up.
 * Errors: LC_ENOPEER (no address known), LC_ELIMIT (max_sessions). */
int lc__tp_connect(lc__tp *tp, const uint8_t peer[LC_PK_BYTES], uint64_t now);

/* Queues a chat message (copied).  Connects if needed.  Errors:
 * LC_ENOPEER, LC_ETOOBIG (len > max_msg_bytes), LC_ELIMIT (send queue
 * full), LC_ENOMEM. */
int lc__tp_send_msg(lc__tp *tp, const uint8_t peer[LC_PK_BYTES],
                    const uint8_t msg_id[LC_MSG_ID_BYTES], const uint8_t *data,
                    size_t len, uint64_t now);

/* Sends an unreliable datagram if a session is up: never queued, never
 * retransmitted.  Errors: LC_ENOSESSION, LC_ETOOBIG (does not fit one
 * packet). */
int lc__tp_send_unreliable(lc__tp *tp, const uint8_t peer[LC_PK_BYTES],
                           const uint8_t *data, size_t len, uint64_t now);

/* Opens an outgoing bulk stream.  Errors: LC_ENOPEER, LC_ELIMIT. */
int lc__tp_bulk_open(lc__tp *tp, const uint8_t peer[LC_PK_BYTES],
                     uint32_t *stream_id);
/* Appends data to a bulk stream (copied); fin marks its end.  Returns the
 * number of bytes accepted, which is less than len when the send buffer is
 * full (LC_EAGAIN if none).  Errors: LC_ENOSESSION, LC_ESTATE (after fin). */
int lc__tp_bulk_write(lc__tp *tp, const uint8_t peer[LC_PK_BYTES],
                      uint32_t stream_id, const uint8_t *data, size_t len,
                      int fin, uint64_t now);

/* hold_delivered: the application has made durable (ok = 1) or lost
 * (ok = 0) every message it took since the last call.  Made durable: the
 * sender is told at once (an ACK with DELIVERED is due now; returns 1 if
 * one is, so poll again).  Lost: they are offered again LC_REDELIVER_US
 * later, in order.  Cheap when nothing is held.  Call it before polling:
 * a poll may hand over messages (a redelivery) that wait for it. */
int lc__tp_commit(lc__tp *tp, int ok, uint64_t now);

/* Closes a session: sends CLOSE, fails pending messages (message_failed
 * with LC_ECLOSED), and raises session_down.  Errors: LC_ENOSESSION. */
int lc__tp_close(lc__tp *tp, const uint8_t peer[LC_PK_BYTES], uint64_t now);

/* Closes every session (a node stopping).  Events as lc__tp_close. */
void lc__tp_close_all(lc__tp *tp, uint64_t now);

/* ---- observation (tests, benchmarks, the control API) ----------------- */
typedef struct {
  int established;
  uint64_t smoothed_rtt_us, rttvar_us, min_rtt_us, latest_rtt_us;
  uint64_t cwnd, bytes_in_flight, ssthresh;
  uint64_t packets_sent, packets_received, packets_lost;
  uint64_t pto_count;
  uint64_t msgs_sent, msgs_acked, msgs_delivered;
  uint64_t keypairs_installed; /* handshakes completed (rekeys included) */
  size_t send_queue_bytes;
} lc__tp_session_stats;

int lc__tp_session_stats_get(const lc__tp *tp, const uint8_t peer[LC_PK_BYTES],
                             lc__tp_session_stats *st);

/* Datagrams dropped, by reason, over the transport's life. */
typedef struct {
  uint64_t received, sent;
  uint64_t drop_malformed; /* decoder errors */
  uint64_t drop_auth;      /* tag or handshake did not verify */
  uint64_t drop_replay;
  uint64_t drop_no_session;
  uint64_t drop_limit; /* session / reassembly / credit limits */
  uint64_t drop_stale_handshake;
  uint64_t drop_hs_rate; /* HELLOs over the handshake rate limits */
  uint64_t addr_changes; /* sessions that followed their peer to a new
                            address (newest authenticated packet) */
  uint64_t addr_stale;   /* authentic older packets from another address:
                            taken, but the session's address kept */
} lc__tp_stats;

void lc__tp_stats_get(const lc__tp *tp, lc__tp_stats *st);

#endif /* LC_TRANSPORT_H */
