/* transfer.h: files, folders and voice messages between two nodes.
 *
 * The engine owns every transfer of a node: the offer (a stored message),
 * the control messages (accept, start, hashes, done, cancel), reading the
 * files sent into bulk streams, writing what arrives under a hidden folder,
 * hashing both sides and renaming a verified file into place.  It reaches
 * the transport only through the ops below (so the simulator can drive it
 * as the node does) and the disk directly, with plain POSIX calls.
 */
#ifndef LC_TRANSFER_H
#define LC_TRANSFER_H

#include <stddef.h>
#include <stdint.h>

#include "lanchat.h"
#include "store.h"
#include "wire.h"

/* The first byte of a received file's stored local path while it is being
 * renamed into place (never part of a real path): not placed yet. */
#define LC_XFER_PLACING '\x01'

typedef struct lc__xfer lc__xfer;

typedef struct {
  /* Sends a chat envelope reliably under the id tid (fresh, random).
   * Returns 0 or a negative code (the peer cannot be reached now). */
  int (*send_msg)(void *user, const uint8_t *peer, const uint8_t *tid,
                  const uint8_t *env, size_t len);
  /* Opens an outgoing bulk stream to peer. */
  int (*bulk_open)(void *user, const uint8_t *peer, uint32_t *stream);
  /* Appends to it: the number of bytes taken, or LC_EAGAIN, or an error. */
  int (*bulk_write)(void *user, const uint8_t *peer, uint32_t stream,
                    const uint8_t *data, size_t len, int fin);
  /* Makes sure a session with peer exists or is being set up. */
  void (*connect)(void *user, const uint8_t *peer);
  /* An event (lc_transfer_event) about r; bytes and rate are live. */
  void (*event)(void *user, int ev, const lc__xfer_row *r, uint64_t bytes,
                uint64_t rate, int detail);
  /* Optional: flushes these files to the disk (fdatasync) away from the
   * loop, then calls lc__xfer_synced(id, group, 0 or an error).  Returns
   * 0 if it will, or an error (the engine then flushes them itself).
   * paths are borrowed for the call. */
  int (*sync)(void *user, const char *const *paths, size_t n, const uint8_t *id,
              uint32_t group);
  void (*random)(void *user, void *buf, size_t len);
  void (*log)(void *user, int level, const char *msg);
  void *user;
} lc__xfer_ops;

typedef struct {
  uint64_t refused;     /* offers with unsafe names, too many files, ... */
  uint64_t bad_data;    /* bulk data of no transfer, or beyond its end */
  uint64_t hash_fails;  /* files whose hash did not match */
  uint64_t bytes_sent;  /* file bytes handed to the transport */
  uint64_t bytes_recv;  /* file bytes written */
  uint64_t bad_control; /* control messages that fit no transfer */
} lc__xfer_stats;

/* downloads: the folder for received files (created 0700 if missing).
 * Errors: LC_ENOMEM, a negative errno. */
int lc__xfer_new(lc__xfer **out, lc__store *store, const char *downloads,
                 const lc__xfer_ops *ops);
void lc__xfer_free(lc__xfer *x);

/* Takes up the unfinished transfers of the store (at start). */
int lc__xfer_load(lc__xfer *x, uint64_t now_us);

/* Offers paths (files or folders) to peer: stored with its offer message
 * in the outbox (the node sends it like a text).  kind VOICE needs one
 * file.  Errors as lc_send_files. */
int lc__xfer_offer(lc__xfer *x, const uint8_t peer[LC_KEY_BYTES],
                   const char *const *paths, size_t count, int kind,
                   uint64_t duration_ms, uint64_t now_ms,
                   const uint8_t id[LC_MSGID_BYTES]);
/* The offer's envelope, for the outbox (*env: malloc'd).  Errors:
 * -ENOENT, LC_ESTORE, LC_ENOMEM. */
int lc__xfer_offer_envelope(lc__xfer *x, const uint8_t id[LC_MSGID_BYTES],
                            uint64_t sent_ms, uint8_t **env, size_t *len);

/* An offer received (c: its decoded envelope).  auto_accept: accept it at
 * once.  Returns 0 when handled (stored, or refused and counted), or a
 * negative code when it cannot be taken now (the store failed: the
 * transport offers it again).  *local_id: its message's local id (0 if
 * it was not stored as new). */
int lc__xfer_recv_offer(lc__xfer *x, const uint8_t peer[LC_KEY_BYTES],
                        const uint8_t id[LC_MSGID_BYTES], const lc__chat *c,
                        uint64_t now_ms, int auto_accept, int64_t *local_id,
                        char **summary);
/* A control message received. */
void lc__xfer_recv_ctrl(lc__xfer *x, const uint8_t peer[LC_KEY_BYTES],
                        const lc__chat *c);

/* The user's answers.  Errors as lc_transfer_accept / _decline /
 * _cancel. */
int lc__xfer_accept(lc__xfer *x, const uint8_t id[LC_MSGID_BYTES]);
int lc__xfer_decline(lc__xfer *x, const uint8_t id[LC_MSGID_BYTES]);
int lc__xfer_cancel(lc__xfer *x, const uint8_t id[LC_MSGID_BYTES]);

/* Transport events, passed on by the node. */
void lc__xfer_bulk(lc__xfer *x, const uint8_t peer[LC_KEY_BYTES],
                   uint32_t stream, uint64_t offset, const uint8_t *data,
                   size_t len);
void lc__xfer_bulk_acked(lc__xfer *x, const uint8_t peer[LC_KEY_BYTES],
                         uint32_t stream);
/* 1 if tid was one of the engine's control messages, else 0. */
int lc__xfer_msg_acked(lc__xfer *x, const uint8_t peer[LC_KEY_BYTES],
                       const uint8_t tid[LC_MSGID_BYTES]);
int lc__xfer_msg_failed(lc__xfer *x, const uint8_t peer[LC_KEY_BYTES],
                        const uint8_t tid[LC_MSGID_BYTES]);
/* What ops.sync started is done (err: 0 or an error). */
void lc__xfer_synced(lc__xfer *x, const uint8_t id[LC_MSGID_BYTES],
                     uint32_t group, int err);
/* Our offer id reached peer's node (a message the node had queued). */
void lc__xfer_offer_delivered(lc__xfer *x, const uint8_t peer[LC_KEY_BYTES],
                              const uint8_t id[LC_MSGID_BYTES]);
void lc__xfer_session_up(lc__xfer *x, const uint8_t peer[LC_KEY_BYTES]);
void lc__xfer_session_down(lc__xfer *x, const uint8_t peer[LC_KEY_BYTES]);
/* Discovery saw the peer (again). */
void lc__xfer_peer_up(lc__xfer *x, const uint8_t peer[LC_KEY_BYTES]);

/* Moves data: fills the bulk streams, hashes, saves progress, reports
 * it.  Call after each batch of received datagrams and when due. */
void lc__xfer_pump(lc__xfer *x, uint64_t now_us);
/* When lc__xfer_pump next has work (LC_NEVER: none). */
uint64_t lc__xfer_next_wakeup(const lc__xfer *x);

/* The live byte count and rate of an active transfer: 1, or 0 if it is
 * not active here. */
int lc__xfer_live(const lc__xfer *x, const uint8_t id[LC_MSGID_BYTES],
                  uint64_t *bytes, uint64_t *rate);

void lc__xfer_stats_get(const lc__xfer *x, lc__xfer_stats *st);

/* Checks a relative path from the network: UTF-8, '/'-separated
 * components, none empty, "." or "..", none with a control character or
 * over 255 bytes.  1 if safe. */
int lc__xfer_path_safe(const char *path, size_t len);

#endif /* LC_TRANSFER_H */
