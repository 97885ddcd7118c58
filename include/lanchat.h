/* lanchat.h: the one public header of liblanchat, a serverless LAN messenger.
 *
 * Contract (read this first):
 * - Errors: every function that can fail returns 0 (or a non-negative count)
 *   on success and a negative code on failure.  System errors pass through as
 *   negative errno values (as libuv does); lanchat's own errors are the LC_E*
 *   codes below, in their own range.  lc_strerror() and lc_err_name() explain
 *   any code, including unknown ones.
 * - Threads: the library starts no thread and keeps no global state.  All
 *   callbacks run on the loop thread of the libuv loop the caller supplies.
 * - Memory: functions that take buffers copy what they need before returning.
 *   Pointers handed to a callback are borrowed for the duration of that
 *   callback only.  Everything returned through an out-parameter has a
 *   matching _free function that accepts NULL.
 */
#ifndef LANCHAT_H
#define LANCHAT_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LC_VERSION_MAJOR 0
#define LC_VERSION_MINOR 1
#define LC_VERSION_PATCH 0

/* Marks the public API: the shared library exports these symbols only. */
#if defined(__GNUC__) || defined(__clang__)
#define LC_EXTERN __attribute__((visibility("default")))
#else
#define LC_EXTERN
#endif

/* Protocol version carried as the first field of every datagram. */
#define LC_PROTOCOL_VERSION 1

/* Largest UDP payload lanchat ever sends or accepts: the IPv4 limit
 * (65,535 - 20 - 8).  Always below 64 KiB. */
#define LC_DATAGRAM_MAX 65507

/* lanchat's own error codes.  XX(name, value, message).  The range
 * -30000..-30999 is clear of errno values and of libuv's UV_EAI_* codes. */
#define LC_ERRNO_MAP(XX)                                                       \
  XX(EPROTO, -30001, "malformed datagram")                                     \
  XX(EVERSION, -30002, "unsupported protocol version")                         \
  XX(ETYPE, -30003, "unknown message or frame type")                           \
  XX(ETRUNC, -30004, "datagram truncated")                                     \
  XX(ETRAILING, -30005, "trailing bytes after datagram")                       \
  XX(EFIELD, -30006, "field has the wrong type")                               \
  XX(ERANGE, -30007, "field value out of range")                               \
  XX(ETOOBIG, -30008, "too large")                                             \
  XX(EAUTH, -30009, "authentication failed")                                   \
  XX(EREPLAY, -30010, "replayed or duplicate datagram")                        \
  XX(ENOSESSION, -30011, "no such session")                                    \
  XX(ENOPEER, -30012, "unknown peer")                                          \
  XX(ELIMIT, -30013, "limit exceeded")                                         \
  XX(ESTATE, -30014, "operation not valid in this state")                      \
  XX(EKEYFILE, -30015, "bad or unreadable key file")                           \
  XX(ECLOSED, -30016, "session closed")                                        \
  XX(ECRYPTO, -30017, "cryptographic library failure")                         \
  XX(EFLOW, -30018, "peer exceeded flow-control credit")                       \
  XX(EAGAIN, -30019, "resource temporarily unavailable, try again later")      \
  XX(EINVAL, -30020, "invalid argument")                                       \
  XX(ENOMEM, -30021, "out of memory")                                          \
  XX(ETIMEDOUT, -30022, "timed out")                                           \
  XX(ESTORE, -30023, "local store (database) failure")                         \
  XX(EEXIST, -30024, "already exists")                                         \
  XX(EPASSPHRASE, -30025, "wrong or missing passphrase")                       \
  XX(EINTEGRITY, -30026, "file failed its integrity check")                    \
  XX(EUNSAFE, -30027, "unsafe file name")                                      \
  XX(ECHANGED, -30028, "source file changed or missing")                       \
  XX(ECANCELED, -30029, "transfer cancelled")

typedef enum {
#define LC__ERR_ENUM(name, value, msg) LC_##name = (value),
  LC_ERRNO_MAP(LC__ERR_ENUM)
#undef LC__ERR_ENUM
      LC__ERR_END_ = -29999
} lc_errno_t;

/* Returns a human-readable message for any error code (lanchat's own or a
 * negative errno).  The string is static; never free it. */
LC_EXTERN const char *lc_strerror(int err);

/* Returns the symbolic name of an error code ("LC_EAUTH", "ENOENT", ...), or
 * "UNKNOWN" for a code it does not know.  The string is static. */
LC_EXTERN const char *lc_err_name(int err);

/* The library version as "MAJOR.MINOR.PATCH".  Static string. */
LC_EXTERN const char *lc_version_string(void);

/* ======================================================================
 * The node: one peer on the LAN, attached to the caller's libuv loop.
 *
 * Life cycle: lc_node_options_init, fill the options, lc_node_new (loads or
 * creates the identity; opens no socket), lc_node_start (binds, announces),
 * ... lc_node_stop (says goodbye, closes sessions and handles; its callback
 * runs on a later loop iteration), lc_node_free.  Several nodes may share
 * one loop and one process.  The node never calls uv_run and starts no
 * thread; every callback below runs on the loop thread, from inside
 * uv_run, never from inside the lc_ call that caused it (so a callback may
 * call any lc_ function, except lc_node_free on its own node).
 * ====================================================================== */

struct uv_loop_s; /* uv_loop_t, from <uv.h> */
typedef struct lc_node lc_node;

#define LC_KEY_BYTES 32   /* a peer's identity: its Ed25519 public key */
#define LC_MSGID_BYTES 16 /* a message id, random, unique per message */
#define LC_NICK_MAX 64    /* nickname, UTF-8 bytes */
#define LC_STATUS_MAX 128 /* status text, UTF-8 bytes */
#define LC_KEY_HEX_LEN 64 /* lc_key_to_hex writes this many chars + NUL */
#define LC_TEXT_MAX (1024 * 1024 - 64) /* a message's text, UTF-8 bytes */

typedef enum {
  LC_PRESENCE_OFFLINE = 0, /* only ever seen in a goodbye */
  LC_PRESENCE_ONLINE = 1,
  LC_PRESENCE_AWAY = 2,
  LC_PRESENCE_BUSY = 3
} lc_presence;

/* "online", "away", "busy", "offline"; NULL for anything else. */
LC_EXTERN const char *lc_presence_name(int presence);
/* The reverse: "online", "away", "busy" to their value (OFFLINE is not a
 * presence one can set); LC_EINVAL for anything else. */
LC_EXTERN int lc_presence_from_name(const char *name);

/* What the node knows of a peer.  Strings are NUL-terminated UTF-8. */
typedef struct {
  uint8_t key[LC_KEY_BYTES];
  char nickname[LC_NICK_MAX + 1];
  char status[LC_STATUS_MAX + 1];
  lc_presence presence;
  char address[64];      /* "10.0.0.7:7781", "[fe80::1%eth0]:7781" */
  uint64_t caps;         /* capability bits the peer announced */
  int remote;            /* 1: reached beyond our broadcast domain (a static
                            peer, or learned from another peer's list) */
  uint64_t last_seen_ms; /* our wall clock, Unix milliseconds */
} lc_peer_info;

typedef enum {
  LC_PEER_APPEARED = 1, /* first announcement heard (or again after left) */
  LC_PEER_CHANGED = 2,  /* nickname, presence, status or address changed */
  LC_PEER_LEFT = 3      /* goodbye heard, or silent for 3 intervals */
} lc_peer_event;

/* Why a peer left (lc_peer_cb's detail for LC_PEER_LEFT). */
typedef enum {
  LC_LEFT_GOODBYE = 1, /* it stopped cleanly */
  LC_LEFT_EXPIRED = 2  /* nothing heard for 3 announcement intervals */
} lc_left_reason;

/* A message's delivery state (grows with the store: queued, sent, ...).
 * lc_send_text returning 0 means QUEUED; lc_delivery_cb then reports
 * DELIVERED or FAILED. */
typedef enum {
  LC_MSG_QUEUED = 1,    /* accepted by lc_send_text, not yet confirmed */
  LC_MSG_SENT = 2,      /* handed to the network at least once */
  LC_MSG_DELIVERED = 3, /* the peer's node has it (for a message received:
                           stored, not read yet) */
  LC_MSG_READ = 4,      /* the reader marked it read */
  LC_MSG_FAILED = 5     /* could not be delivered (reserved: this version
                           retries until delivered) */
} lc_msg_state;

/* "queued", "sent", "delivered", "read", "failed"; NULL for anything
 * else.  Static strings. */
LC_EXTERN const char *lc_msg_state_name(int state);

/* A received chat message.  All pointers are borrowed for the callback.
 * It is committed to the history before this callback runs. */
typedef struct {
  int64_t id;            /* its local id in the history */
  const uint8_t *from;   /* LC_KEY_BYTES */
  const uint8_t *msg_id; /* LC_MSGID_BYTES */
  const char *text;      /* UTF-8, NUL-terminated (text[text_len] == 0) */
  size_t text_len;
  uint64_t sent_ms;     /* sender's clock, Unix milliseconds */
  uint64_t received_ms; /* our clock */
  const uint8_t *group; /* LC_GROUP_ID_BYTES for a group message (from is
                           its author), NULL for a direct one */
  int kind; /* LC_KIND_TEXT, or LC_KIND_FILE for an offer of files, a
               folder or a voice message (text is its summary; its
               msg_id is the transfer's id: see lc_transfer_get) */
} lc_message;

/* What a message of the history is (lc_message.kind, lc_msg_info.kind). */
typedef enum {
  LC_KIND_TEXT = 0,
  LC_KIND_FILE = 1 /* an attachment: files, a folder, a voice message */
} lc_msg_kind;

/* Network events (lc_network_cb). */
typedef enum {
  LC_NET_CHANGED = 1 /* interfaces or addresses changed: the node has
                        re-announced and resumed pending sends */
} lc_network_event;

/* When callbacks fire: on the loop iteration that processed the datagram
 * or timer that caused them; effects of an lc_ call (a failure reported
 * by lc_node_stop, say) on a later iteration, never inside the call.
 *
 * peer: borrowed for the callback.  detail: lc_left_reason for LEFT, else
 * 0.  CHANGED also reports a new address or capabilities. */
typedef void lc_peer_cb(lc_node *node, lc_peer_event event,
                        const lc_peer_info *peer, int detail, void *user);
/* A chat message from a peer, once per message id while the node runs
 * (the last 4096 ids are remembered; history across restarts comes with
 * the store). */
typedef void lc_message_cb(lc_node *node, const lc_message *msg, void *user);
/* A message sent with lc_send_text changed state: SENT (handed to the
 * network), DELIVERED (the peer's node stored it), READ (its reader marked
 * it read).  A message is never given up: one the peer has not confirmed
 * stays queued and goes again whenever the peer can be reached, so FAILED
 * is not reported by this version.  err is 0. */
typedef void lc_delivery_cb(lc_node *node, const uint8_t peer[LC_KEY_BYTES],
                            const uint8_t msg_id[LC_MSGID_BYTES],
                            lc_msg_state state, int err, void *user);
typedef void lc_network_cb(lc_node *node, lc_network_event event, void *user);

/* A message of the history was edited or retracted, by us (from this or
 * another program using the same node) or by its author.  msg is borrowed
 * for the callback; its text is the new one ("" once retracted).  The
 * struct is declared below with the history API. */
struct lc_msg_info_s;
typedef void lc_changed_cb(lc_node *node, const struct lc_msg_info_s *msg,
                           void *user);

/* Contacts (see lc_contact_request and the functions after it). */
struct lc_contact_info_s;
typedef enum {
  LC_CONTACT_REQUESTED = 1,   /* a peer asks to become our contact (note) */
  LC_CONTACT_ACCEPTED = 2,    /* our request was accepted: now friends */
  LC_CONTACT_REJECTED = 3,    /* our request was declined */
  LC_CONTACT_REMOVED = 4,     /* the peer removed us from its contacts */
  LC_CONTACT_KEY_CHANGED = 5, /* a nickname we know came with another key:
                                 that key is held (nothing is sent to it)
                                 until lc_trust_key; other_key is the key
                                 we knew */
  LC_CONTACT_UPDATED = 6      /* changed by us (request, accept, block...) */
} lc_contact_event;
/* c is borrowed for the callback; other_key is NULL but for KEY_CHANGED. */
typedef void lc_contact_cb(lc_node *node, lc_contact_event event,
                           const struct lc_contact_info_s *c,
                           const uint8_t *other_key, void *user);

/* Group chats (see lc_group_create and the functions after it). */
#define LC_GROUP_ID_BYTES 32  /* a group's id */
#define LC_GROUP_NAME_MAX 128 /* a group's name, UTF-8 bytes */
#define LC_GROUP_MEMBERS_MAX 256

typedef struct {
  uint8_t key[LC_KEY_BYTES];
  int owner;
} lc_group_member;

typedef struct {
  uint8_t id[LC_GROUP_ID_BYTES];
  char name[LC_GROUP_NAME_MAX + 1];
  int member; /* 1: we are a member (0: we left or were removed) */
  size_t nmembers;
  lc_group_member *members; /* owned by the struct (lc_groups_free) or
                               borrowed (lc_group_cb) */
} lc_group_info;
/* A group's members or name changed, or we joined it; g is borrowed. */
typedef void lc_group_cb(lc_node *node, const lc_group_info *g, void *user);

/* Typing notices (never stored). */
typedef enum {
  LC_TYPING_IDLE = 0,      /* stopped, or sent the message */
  LC_TYPING_COMPOSING = 1, /* typing now */
  LC_TYPING_PAUSED = 2     /* a draft, not typing */
} lc_typing;
/* A peer's typing state changed.  Notices are not retransmitted: an
 * application shows "typing" for a few seconds after the last one. */
typedef void lc_typing_cb(lc_node *node, const uint8_t peer[LC_KEY_BYTES],
                          lc_typing state, void *user);
/* File transfers (see lc_send_files and the functions after it). */
struct lc_transfer_info_s;
typedef enum {
  LC_TRANSFER_OFFER = 1,    /* a peer offers files: accept or decline */
  LC_TRANSFER_CHANGED = 2,  /* its state changed (accepted, done, ...) */
  LC_TRANSFER_PROGRESS = 3, /* bytes moved (at most every 250 ms) */
  LC_TRANSFER_FILE = 4      /* a file, or a folder with all its files,
                               arrived, was verified and is in place:
                               detail is the index in files[] of the file
                               (of the folder's first file) */
} lc_transfer_event;
/* t is borrowed for the callback (its files too). */
typedef void lc_transfer_cb(lc_node *node, lc_transfer_event event,
                            const struct lc_transfer_info_s *t, int detail,
                            void *user);
/* level: 0 error, 1 warning, 2 notice, 3 debug.  msg is borrowed. */
typedef void lc_log_cb(lc_node *node, int level, const char *msg, void *user);
typedef void lc_stop_cb(lc_node *node, void *user);

typedef struct {
  /* Required: folder for the identity key (created 0700 if missing). */
  const char *data_dir;
  const char *nickname; /* default: $USER, else "lanchat" */
  lc_presence presence; /* default LC_PRESENCE_ONLINE */
  const char *status;   /* default "" */

  /* Ports.  discovery_port is shared by every node on the LAN (and on one
   * host, with SO_REUSEADDR); port is this node's own unicast port: 0
   * tries discovery_port + 1, then lets the system choose. */
  uint16_t discovery_port; /* default LC_DISCOVERY_PORT */
  uint16_t port;

  /* Addresses.  bind_v4 / bind_v6: the unicast sockets' addresses
   * (default "0.0.0.0" and "::"; NULL keeps the default, "" disables that
   * family).  The discovery sockets always bind the wildcard address. */
  const char *bind_v4;
  const char *bind_v6;
  /* Comma-separated interface name patterns (fnmatch) to use, loopback
   * included if it matches ("lo" for a LAN played on one machine); NULL:
   * every interface that is up, except loopback and skip_interfaces. */
  const char *interfaces;
  /* Patterns to skip when interfaces is NULL; NULL:
   * LC_DEFAULT_SKIP_INTERFACES (container bridges, virtual links). */
  const char *skip_interfaces;
  /* Comma-separated destinations for announcements ("127.255.255.255",
   * "10.1.255.255", "ff02::1%eth0"; the port defaults to discovery_port);
   * NULL: the broadcast address of every usable IPv4 interface and ff02::1
   * on every usable IPv6 interface.  The interfaces still decide which
   * peers count as local. */
  const char *broadcast;
  /* Comma-separated "host:port" / "[v6addr]:port" peers beyond the
   * broadcast domain, announced to by unicast (port default:
   * discovery_port).  Numeric addresses only: no name lookups. */
  const char *static_peers;

  /* default 5000 (1000..3600000); each period is the interval minus a
   * random 0-20%, and peers expire a node after three of its intervals */
  uint32_t announce_interval_ms;
  uint32_t interface_poll_ms; /* default 2000 */

  /* Read receipts: 1 (default 0 = on) not to tell senders when their
   * messages were marked read. */
  int no_read_receipts;

  /* The identity.  passphrase: unlocks a key file protected with one (see
   * lc_identity_create); NULL or "" for a key file stored in the clear.
   * no_create_identity: 1 to fail with -ENOENT when data_dir holds no
   * identity yet, instead of creating one (a daemon that must not invent
   * a new identity behind its user's back). */
  const char *passphrase;
  int no_create_identity;

  /* Who may send us messages: 0 (default) anyone on the LAN, 1 our
   * friends only (messages from others are dropped and counted; friend
   * requests still arrive).  Changed later with lc_node_set_policy. */
  int contacts_only;
  lc_contact_cb *on_contact;
  lc_group_cb *on_group;

  /* Files received go to downloads_dir (created 0700 if missing; default
   * <data_dir>/downloads), each written aside under a hidden name and
   * renamed into place, never over an existing file, once verified.
   * auto_accept_bytes: offers from friends up to this total are accepted
   * without asking (0, the default: always ask).  Voice messages up to
   * LC_VOICE_AUTO_MAX are accepted from anyone allowed to message us. */
  const char *downloads_dir;
  uint64_t auto_accept_bytes;
  lc_transfer_cb *on_transfer;

  lc_peer_cb *on_peer;
  lc_message_cb *on_message;
  lc_delivery_cb *on_delivery;
  lc_network_cb *on_network;
  lc_typing_cb *on_typing;
  lc_changed_cb *on_changed;
  lc_log_cb *on_log;
  void *user_data;
} lc_node_options;

#define LC_DISCOVERY_PORT 7780
#define LC_DEFAULT_SKIP_INTERFACES                                             \
  "docker*,br-*,veth*,virbr*,vnet*,lxcbr*,lxdbr*,cni*,flannel*,podman*"

/* Fills o with the defaults (every pointer NULL, every number 0 meaning
 * "default").  Always call it first: fields are appended over time. */
LC_EXTERN void lc_node_options_init(lc_node_options *o);

/* Creates a node: validates the options (copied), loads or creates the
 * identity in data_dir (a short file read: call it before the loop is
 * busy).  Opens no socket.  Errors: LC_EINVAL (a missing data_dir, a
 * malformed address or number; the log callback, called from inside this
 * function with node NULL, says which), LC_EKEYFILE, a negative errno from
 * the file system, LC_ENOMEM. */
LC_EXTERN int lc_node_new(lc_node **out, struct uv_loop_s *loop,
                          const lc_node_options *o);

/* Binds the sockets and starts discovery.  Errors: a negative errno from
 * the socket layer (UV_EADDRINUSE, ...), LC_ESTATE if already started. */
LC_EXTERN int lc_node_start(lc_node *node);

/* Broadcasts a goodbye, closes every session (pending messages fail with
 * LC_ECLOSED), then closes the sockets and timers.  cb (may be NULL) runs
 * on a later loop iteration, once the node holds no libuv handle; only
 * then may lc_node_free be called.  Errors: LC_ESTATE if not started or
 * already stopping. */
LC_EXTERN int lc_node_stop(lc_node *node, lc_stop_cb *cb);

/* Frees a node that was never started or whose stop callback has run.
 * NULL is a no-op; so is a node still running (stop it first). */
LC_EXTERN void lc_node_free(lc_node *node);

/* This node's identity key. */
LC_EXTERN void lc_node_key(const lc_node *node, uint8_t key[LC_KEY_BYTES]);
/* The unicast port actually bound (0 before start). */
LC_EXTERN int lc_node_port(const lc_node *node);

/* Changes the nickname or presence; announced at once to every peer.
 * status NULL keeps the current text.  Errors: LC_EINVAL (empty or too
 * long, invalid UTF-8, presence out of range or OFFLINE). */
LC_EXTERN int lc_node_set_nickname(lc_node *node, const char *nickname);
LC_EXTERN int lc_node_set_presence(lc_node *node, lc_presence presence,
                                   const char *status);

/* Adds a static peer ("host:port") at run time.  Errors: LC_EINVAL. */
LC_EXTERN int lc_node_add_static_peer(lc_node *node, const char *host_port);

/* A snapshot of the peers currently present.  *out is an array of *count
 * entries owned by the caller: free it with lc_peers_free. */
LC_EXTERN int lc_node_peers(lc_node *node, lc_peer_info **out, size_t *count);
LC_EXTERN void lc_peers_free(lc_peer_info *peers);

/* Runs the sends and changes made until lc_batch_end as one commit of the
 * local history: much faster for many at once (an import, a bot, a
 * script: lc_send_text commits each message, about 0.1 ms on a typical
 * disk).  Inside a batch, lc_send_text returns before its message is
 * committed; nothing of the batch leaves before lc_batch_end commits it.
 * If that commit fails, none of the batch is stored or sent (LC_ESTORE).
 * Batches nest (the outermost commits); begin and end one in the same
 * callback.  Errors: LC_EINVAL, LC_ESTATE (lc_batch_end without a batch),
 * LC_ESTORE. */
LC_EXTERN int lc_batch_begin(lc_node *node);
LC_EXTERN int lc_batch_end(lc_node *node);

/* Sends a text message (UTF-8, up to LC_TEXT_MAX bytes) to a peer, present or
 * not. Returns only once the message is committed to the local history (state
 * QUEUED, in the outbox); the node sends it as soon as the peer is
 * present, again after either side restarts, until the peer's node has
 * stored it (then lc_delivery_cb reports DELIVERED; the receiver drops a
 * copy it already has, by message id).  The text is copied; msg_id (may be
 * NULL) receives the new message's id.  Callable once lc_node_new
 * succeeded, until lc_node_stop.  Errors: LC_EINVAL (invalid UTF-8, a key
 * that is not a usable identity, our own key), LC_ETOOBIG, LC_ESTATE
 * (stopping or stopped), LC_ESTORE, LC_ENOMEM. */
LC_EXTERN int lc_send_text(lc_node *node, const uint8_t peer[LC_KEY_BYTES],
                           const char *text, size_t len,
                           uint8_t msg_id[LC_MSGID_BYTES]);

/* Tells a present peer whether we are typing to it: one unreliable
 * datagram, never stored, never retransmitted (send it again every few
 * seconds while typing).  Errors: LC_EINVAL, LC_ESTATE (not running),
 * LC_ENOPEER (not present), LC_ENOSESSION (no session yet: one is being
 * set up, so the next notice goes). */
LC_EXTERN int lc_send_typing(lc_node *node, const uint8_t peer[LC_KEY_BYTES],
                             lc_typing state);

/* ---- history ------------------------------------------------------------
 * Kept in <data_dir>/history.db (SQLite).  Queries run on the caller's
 * thread and return owned copies: free them with the matching _free. */

/* A message in the history. */
typedef struct lc_msg_info_s {
  int64_t id; /* local order: larger is later */
  uint8_t msg_id[LC_MSGID_BYTES];
  uint8_t peer[LC_KEY_BYTES]; /* the conversation */
  int outgoing;               /* 1: we sent it */
  uint64_t sent_ms;           /* sender's clock, Unix ms */
  uint64_t received_ms;       /* ours: when stored */
  lc_msg_state state;
  uint64_t edited_ms; /* 0: never edited */
  int retracted;
  char *text; /* NUL-terminated UTF-8, owned by the array */
  size_t text_len;
  int is_group;                 /* peer is a group's id */
  uint8_t sender[LC_KEY_BYTES]; /* a group message's author */
  int kind;                     /* lc_msg_kind */
} lc_msg_info;

/* A page of history: up to max messages of the conversation with peer older
 * than before_id (0: from the newest), newest first.  Pass the last id of
 * a page to get the next one.  *out has *count entries; free it with
 * lc_msgs_free.  Errors: LC_EINVAL, LC_ESTORE, LC_ENOMEM. */
LC_EXTERN int lc_history_page(lc_node *node, const uint8_t peer[LC_KEY_BYTES],
                              int64_t before_id, size_t max, lc_msg_info **out,
                              size_t *count);
/* The same, older than a time (our clock, Unix ms). */
LC_EXTERN int lc_history_before_time(lc_node *node,
                                     const uint8_t peer[LC_KEY_BYTES],
                                     uint64_t before_ms, size_t max,
                                     lc_msg_info **out, size_t *count);
/* Full-text search (words, "a phrase", prefix*, AND/OR/NOT) in one
 * conversation (peer) or all (NULL), newest first, at most max.  Errors:
 * LC_EINVAL (empty or unparsable query), LC_ESTORE, LC_ENOMEM. */
LC_EXTERN int lc_history_search(lc_node *node, const uint8_t *peer,
                                const char *query, size_t max,
                                lc_msg_info **out, size_t *count);
LC_EXTERN void lc_msgs_free(lc_msg_info *msgs, size_t count);

/* A conversation: the peer, its newest message, its unread count. */
typedef struct {
  uint8_t peer[LC_KEY_BYTES];
  int64_t unread;
  int has_last;
  lc_msg_info last; /* its text is owned by the array */
} lc_conversation_info;

/* Every conversation, the most recently active first.  Free *out with
 * lc_conversations_free. */
LC_EXTERN int lc_conversations(lc_node *node, lc_conversation_info **out,
                               size_t *count);
LC_EXTERN void lc_conversations_free(lc_conversation_info *c, size_t count);
/* Messages received and not read yet, in all conversations (>= 0), or
 * LC_ESTORE. */
LC_EXTERN int64_t lc_unread_total(lc_node *node);

/* Marks the messages received from peer read: all (up_to_id 0) or those
 * with id <= up_to_id.  Unless no_read_receipts is set, the peer is told
 * (read receipts, kept until its node has them, across restarts and
 * absences).  Returns how many were marked, or LC_EINVAL, LC_ESTORE. */
LC_EXTERN int lc_mark_read(lc_node *node, const uint8_t peer[LC_KEY_BYTES],
                           int64_t up_to_id);

/* Edits or retracts a message we sent (by its msg_id).  The history
 * changes at once (lc_changed_cb reports it); the peer's copy changes when
 * the peer is reached, even after restarts of either side, and the peer
 * applies only the author's changes, newest last.  A retracted message
 * keeps its place with an empty text and can no longer be edited.
 * Errors: LC_EINVAL (not a message we sent, already retracted, invalid
 * UTF-8), LC_ETOOBIG, LC_ESTATE (stopping or stopped), LC_ESTORE. */
LC_EXTERN int lc_edit_message(lc_node *node,
                              const uint8_t msg_id[LC_MSGID_BYTES],
                              const char *text, size_t len);
LC_EXTERN int lc_retract_message(lc_node *node,
                                 const uint8_t msg_id[LC_MSGID_BYTES]);

/* Export formats (lc_export_conversation). */
typedef enum {
  LC_EXPORT_JSONL = 1, /* one JSON object a line: id, msg_id, peer,
                          direction, sent_ms, received_ms, state, edited_ms,
                          retracted, text */
  LC_EXPORT_TEXT = 2   /* "[2026-11-23 10:15:03] me: text", local time */
} lc_export_format;

/* Writes the conversation with peer, oldest first, to the file at path
 * (written aside, then renamed into place: an existing file is replaced
 * only by a complete export).  A blocking write: for a user's command, not
 * for the middle of a busy loop.  Returns the number of messages written,
 * or LC_EINVAL, LC_ESTORE, a negative errno. */
LC_EXTERN int lc_export_conversation(lc_node *node,
                                     const uint8_t peer[LC_KEY_BYTES],
                                     lc_export_format format, const char *path);

/* Marks one received message read (by msg_id), with a receipt as
 * lc_mark_read.  Returns 1 if it was unread, 0 if read already, or
 * LC_EINVAL (unknown, or a message we sent), LC_ESTORE. */
LC_EXTERN int lc_mark_message_read(lc_node *node,
                                   const uint8_t msg_id[LC_MSGID_BYTES]);

/* Deletes a message (by local id) or a whole conversation from the local
 * history only.  Returns 1 if something was deleted, 0 if not, or
 * LC_ESTORE. */
LC_EXTERN int lc_delete_message(lc_node *node, int64_t id);
LC_EXTERN int lc_delete_conversation(lc_node *node,
                                     const uint8_t peer[LC_KEY_BYTES]);

/* Creates a new identity in data_dir (the folder is created 0700 if
 * missing; the key file is <data_dir>/identity.key, mode 0600, written
 * aside then linked into place).  With a passphrase (not NULL, not ""),
 * the secret key is stored sealed: a key derived from the passphrase with
 * Argon2id (crypto_pwhash, moderate limits) encrypts it with XSalsa20-
 * Poly1305 (crypto_secretbox); the public key stays readable.  key (may be
 * NULL) receives the new public key.  Errors: LC_EEXIST (data_dir already
 * holds an identity), LC_EINVAL, LC_ECRYPTO, a negative errno. */
LC_EXTERN int lc_identity_create(const char *data_dir, const char *passphrase,
                                 uint8_t key[LC_KEY_BYTES]);
/* Reads the public key of the identity in data_dir, without needing its
 * passphrase.  sealed (may be NULL) is set to 1 if the secret key is
 * protected by a passphrase.  Errors: -ENOENT (no identity yet),
 * LC_EKEYFILE (malformed, or readable by group or others), a negative
 * errno. */
LC_EXTERN int lc_identity_public(const char *data_dir,
                                 uint8_t key[LC_KEY_BYTES], int *sealed);

/* One message of the history, by its message id.  *out is one entry; free
 * it with lc_msgs_free(*out, 1).  Errors: -ENOENT (no such message),
 * LC_ESTORE, LC_ENOMEM. */
LC_EXTERN int lc_history_get(lc_node *node,
                             const uint8_t msg_id[LC_MSGID_BYTES],
                             lc_msg_info **out);

/* Hex form of a key (lower case, NUL-terminated, 65 bytes of room). */
LC_EXTERN void lc_key_to_hex(char out[LC_KEY_HEX_LEN + 1],
                             const uint8_t key[LC_KEY_BYTES]);
/* Parses 64 hex digits.  Errors: LC_EINVAL. */
LC_EXTERN int lc_key_from_hex(uint8_t key[LC_KEY_BYTES], const char *hex);

/* ---- contacts and trust ---------------------------------------------------
 * Friend requests travel like messages: stored, sent whenever the peer can
 * be reached, across restarts of either side, until its node has them. */

typedef enum {
  LC_CONTACT_NONE = 0,
  LC_CONTACT_ASKED = 1,  /* we asked; no answer yet */
  LC_CONTACT_ASKING = 2, /* it asked us; accept or reject */
  LC_CONTACT_FRIEND = 3
} lc_contact_state;

#define LC_NOTE_MAX 1024 /* a friend request's note, UTF-8 bytes */

typedef struct lc_contact_info_s {
  uint8_t key[LC_KEY_BYTES];
  lc_contact_state state;
  int blocked;                    /* everything from it is dropped */
  int held;                       /* a key change: nothing goes to it */
  int trusted;                    /* accepted with lc_trust_key */
  char nickname[LC_NICK_MAX + 1]; /* as last seen ("" if never) */
  char note[LC_NOTE_MAX + 1];     /* the note of its request */
  uint64_t changed_ms;            /* our clock, Unix ms */
} lc_contact_info;

/* Asks peer to become a contact, with an optional note (NULL or "").  If
 * peer had asked us, this accepts instead.  Errors: LC_EINVAL (our own
 * key, a note too long or not UTF-8), LC_EEXIST (friends already),
 * LC_ESTATE (stopping; or peer is blocked), LC_ESTORE. */
LC_EXTERN int lc_contact_request(lc_node *node,
                                 const uint8_t peer[LC_KEY_BYTES],
                                 const char *note);
/* Answers a peer's request.  Errors: LC_ESTATE (no request from it),
 * LC_ESTORE. */
LC_EXTERN int lc_contact_accept(lc_node *node,
                                const uint8_t peer[LC_KEY_BYTES]);
LC_EXTERN int lc_contact_reject(lc_node *node,
                                const uint8_t peer[LC_KEY_BYTES]);
/* Ends a friendship (or withdraws our request); the peer is told.
 * Errors: LC_ESTATE (not a contact), LC_ESTORE. */
LC_EXTERN int lc_contact_remove(lc_node *node,
                                const uint8_t peer[LC_KEY_BYTES]);
/* Blocks (on 1) or unblocks (0) a peer: while blocked, everything it
 * sends (messages, requests, typing) is acknowledged and dropped (counted
 * in lc_node_stats.blocked_dropped), and nothing is sent to it. */
LC_EXTERN int lc_block(lc_node *node, const uint8_t peer[LC_KEY_BYTES], int on);
/* Accepts a held key (LC_CONTACT_KEY_CHANGED): its nickname now belongs
 * to it, and what waited for it is sent.  Errors: LC_ESTORE. */
LC_EXTERN int lc_trust_key(lc_node *node, const uint8_t peer[LC_KEY_BYTES]);
/* What we know of peer as a contact: 1 and *out, or 0 if nothing
 * (out->state NONE), or LC_ESTORE. */
LC_EXTERN int lc_contact_get(lc_node *node, const uint8_t peer[LC_KEY_BYTES],
                             lc_contact_info *out);
/* Every peer with a contact state, a block or a trust decision, the most
 * recently changed first.  Free *out with lc_contacts_free. */
LC_EXTERN int lc_contacts(lc_node *node, lc_contact_info **out, size_t *count);
LC_EXTERN void lc_contacts_free(lc_contact_info *c);
/* Who may send us messages (see lc_node_options.contacts_only). */
LC_EXTERN int lc_node_set_policy(lc_node *node, int contacts_only);

/* ---- group chats -------------------------------------------------------
 * No server: membership is a set of signed operations every member
 * applies in one order, so all converge; a message goes from its author to
 * every member present, and members that meet fill each other's gaps, so
 * one who was away gets what it missed from whoever holds it.  A group's
 * history is read with the history functions, the group's id as the peer;
 * its pages follow the order every member agrees on. */

/* Creates a group with the given members (besides us; at most 255).  id
 * receives its id.  Errors: LC_EINVAL (a name over LC_GROUP_NAME_MAX or
 * not UTF-8, our own key, too many), LC_ESTORE. */
LC_EXTERN int lc_group_create(lc_node *node, const char *name,
                              const uint8_t (*members)[LC_KEY_BYTES],
                              size_t count, uint8_t id[LC_GROUP_ID_BYTES]);
/* Adds a member (any member may invite). */
LC_EXTERN int lc_group_invite(lc_node *node,
                              const uint8_t group[LC_GROUP_ID_BYTES],
                              const uint8_t peer[LC_KEY_BYTES]);
/* Removes a member: owners only (the creator, or the oldest member once
 * no owner is left). */
LC_EXTERN int lc_group_remove(lc_node *node,
                              const uint8_t group[LC_GROUP_ID_BYTES],
                              const uint8_t peer[LC_KEY_BYTES]);
LC_EXTERN int lc_group_leave(lc_node *node,
                             const uint8_t group[LC_GROUP_ID_BYTES]);
LC_EXTERN int lc_group_rename(lc_node *node,
                              const uint8_t group[LC_GROUP_ID_BYTES],
                              const char *name);
/* Sends a message to the group (stored first, like lc_send_text).
 * Errors of the group functions: LC_ENOPEER (no such group), LC_ESTATE
 * (we are not a member; the peer is a member already, or is not one; not
 * an owner), LC_EINVAL, LC_ETOOBIG, LC_ESTORE. */
LC_EXTERN int lc_group_send(lc_node *node,
                            const uint8_t group[LC_GROUP_ID_BYTES],
                            const char *text, size_t len,
                            uint8_t msg_id[LC_MSGID_BYTES]);
/* The groups known (as member or former member).  Free with
 * lc_groups_free. */
LC_EXTERN int lc_groups(lc_node *node, lc_group_info **out, size_t *count);
LC_EXTERN void lc_groups_free(lc_group_info *g, size_t count);

/* ---- files, folders and voice messages -----------------------------------
 * A transfer starts as an offer, a message of the conversation (kind
 * LC_KIND_FILE) delivered like a text, present or not.  Once the receiver
 * accepts, the data flows peer to peer over the transport's bulk streams
 * whenever both are present, resuming from the last byte the receiver
 * confirmed after a disconnect or a restart of either side.  Each file is
 * hashed (BLAKE2b-256) by both sides and shown under its final name only
 * once the hashes agree.  The transfer's id is the offer's msg_id. */

#define LC_TRANSFER_FILES_MAX 10000 /* files in one offer */
#define LC_TRANSFER_PATH_MAX 1024   /* a file's relative path, bytes */
#define LC_VOICE_AUTO_MAX (16u * 1024 * 1024)

typedef enum {
  LC_TRANSFER_KIND_FILES = 1,  /* one or more files */
  LC_TRANSFER_KIND_FOLDER = 2, /* a folder (or several), its tree kept */
  LC_TRANSFER_KIND_VOICE = 3   /* a voice message: one audio file */
} lc_transfer_kind;

typedef enum {
  LC_TRANSFER_OFFERED = 1,   /* waiting for the receiver's answer */
  LC_TRANSFER_ACCEPTED = 2,  /* data flows whenever both are present */
  LC_TRANSFER_DONE = 3,      /* every file arrived and was verified */
  LC_TRANSFER_DECLINED = 4,  /* the receiver said no */
  LC_TRANSFER_CANCELLED = 5, /* by either side (by_peer says which) */
  LC_TRANSFER_FAILED = 6     /* error says why */
} lc_transfer_state;

/* "offered", "accepted", "done", "declined", "cancelled", "failed";
 * NULL for anything else. */
LC_EXTERN const char *lc_transfer_state_name(int state);
/* "files", "folder", "voice"; NULL for anything else. */
LC_EXTERN const char *lc_transfer_kind_name(int kind);

typedef struct {
  char *path;    /* relative, '/'-separated, as offered */
  uint64_t size; /* bytes */
  int verified;  /* 1: complete and its hash checked (receiver), or its
                    hash computed (sender) */
  char *local;   /* sender: the file sent; receiver: where it is once
                    verified, else NULL */
} lc_transfer_file;

typedef struct lc_transfer_info_s {
  uint8_t id[LC_MSGID_BYTES]; /* the offer's msg_id */
  uint8_t peer[LC_KEY_BYTES];
  int outgoing; /* 1: we send */
  lc_transfer_kind kind;
  lc_transfer_state state;
  int error;       /* FAILED, CANCELLED: an LC_E* code or negative errno */
  int by_peer;     /* DECLINED, CANCELLED, FAILED: 1 if the peer ended it */
  uint64_t total;  /* bytes in all files */
  uint64_t bytes;  /* received and written (receiver) or handed
                      to the transport (sender) */
  uint64_t rate;   /* bytes per second lately (0 when idle) */
  uint64_t eta_ms; /* time left at that rate (0 if unknown) */
  uint64_t duration_ms; /* voice messages */
  uint64_t created_ms;  /* our clock */
  char *name;           /* what to show: a file's or folder's name, or
                           "N files" */
  size_t nfiles;
  lc_transfer_file *files;
} lc_transfer_info;

/* Offers files and folders to a peer, present or not.  Each path is a
 * file or a folder (whose regular files are sent with their paths under
 * the folder's name; symbolic links and special files are skipped).  The
 * files are read when sent, so they must stay in place until the transfer
 * is done.  The offer is stored and sent like a text; id (may be NULL)
 * receives the transfer's id.  Errors: LC_EINVAL (no path, our own key, a
 * name that is not UTF-8), LC_ELIMIT (over LC_TRANSFER_FILES_MAX files, a
 * path over LC_TRANSFER_PATH_MAX), LC_ETOOBIG (the list does not fit one
 * message), LC_ESTATE, LC_ESTORE, a negative errno (a path that cannot be
 * read). */
LC_EXTERN int lc_send_files(lc_node *node, const uint8_t peer[LC_KEY_BYTES],
                            const char *const *paths, size_t count,
                            uint8_t id[LC_MSGID_BYTES]);
/* Sends an audio file as a voice message of duration_ms (0: read from the
 * file, WAV or Ogg; LC_EINVAL if it cannot be).  Errors as lc_send_files. */
LC_EXTERN int lc_send_voice(lc_node *node, const uint8_t peer[LC_KEY_BYTES],
                            const char *path, uint64_t duration_ms,
                            uint8_t id[LC_MSGID_BYTES]);
/* Reads an audio file's duration (WAV, Ogg Opus, Ogg Vorbis).  Errors:
 * LC_EINVAL (not a format it knows, or malformed), a negative errno. */
LC_EXTERN int lc_audio_duration(const char *path, uint64_t *duration_ms);

/* Answers an offer we received.  Errors: -ENOENT (no such transfer),
 * LC_ESTATE (not an offer to us waiting for an answer), -ENOSPC (the
 * downloads folder has less room than the offer), LC_ESTORE. */
LC_EXTERN int lc_transfer_accept(lc_node *node,
                                 const uint8_t id[LC_MSGID_BYTES]);
LC_EXTERN int lc_transfer_decline(lc_node *node,
                                  const uint8_t id[LC_MSGID_BYTES]);
/* Cancels a transfer from either side (offered or accepted); the peer is
 * told whenever it can be reached.  Partial data is deleted.  Errors:
 * -ENOENT, LC_ESTATE (already over), LC_ESTORE. */
LC_EXTERN int lc_transfer_cancel(lc_node *node,
                                 const uint8_t id[LC_MSGID_BYTES]);
/* One transfer; free with lc_transfers_free(*out, 1).  Errors: -ENOENT,
 * LC_ESTORE, LC_ENOMEM. */
LC_EXTERN int lc_transfer_get(lc_node *node, const uint8_t id[LC_MSGID_BYTES],
                              lc_transfer_info **out);
/* Every transfer (active_only: offered or accepted only), newest first. */
LC_EXTERN int lc_transfers(lc_node *node, int active_only,
                           lc_transfer_info **out, size_t *count);
LC_EXTERN void lc_transfers_free(lc_transfer_info *t, size_t count);

#define LC_FINGERPRINT_LEN 35
/* A key's fingerprint for two people to compare aloud: six groups of five
 * digits, "12345 67890 ...", from a BLAKE2b hash of the key (about 100
 * bits).  out: LC_FINGERPRINT_LEN + 1 bytes. */
LC_EXTERN void lc_fingerprint(char out[LC_FINGERPRINT_LEN + 1],
                              const uint8_t key[LC_KEY_BYTES]);

/* Counters for diagnostics: datagrams and what was refused, by reason. */
typedef struct {
  uint64_t datagrams_in, datagrams_out, send_errors;
  uint64_t announces_in, announces_out, peers_lists_in, peers_lists_out;
  uint64_t bad_datagrams; /* malformed, bad signature, replayed */
  uint64_t bad_announces; /* of which discovery datagrams */
  uint64_t peers_present;
  uint64_t interface_changes;
  int recvmmsg;             /* 1 if receives are batched */
  uint64_t blocked_dropped; /* messages from blocked peers, dropped */
  uint64_t policy_dropped;  /* messages from non-friends (contacts_only) */
  uint64_t keys_held;       /* key changes warned about */
  /* relays (messages carried for peers that are away) */
  uint64_t relays_handed;    /* copies of ours handed to friends */
  uint64_t relays_carried;   /* boxes taken to carry for friends */
  uint64_t relays_refused;   /* boxes not taken (not a friend, full) */
  uint64_t relays_forwarded; /* boxes passed on to their recipient */
  uint64_t relays_delivered; /* of which its node confirmed */
  uint64_t relayed_in;       /* messages to us that came by a relay */
  /* transfers */
  uint64_t transfers_refused;   /* offers refused: unsafe names, too many */
  uint64_t transfer_bad_data;   /* bulk data of no transfer, or beyond it */
  uint64_t transfer_hash_fails; /* files whose hash did not match */
  uint64_t bytes_sent_files, bytes_received_files;
  /* history commits that failed (a full disk, say): what they held was
   * not acknowledged, and is received again */
  uint64_t store_failures;
  /* handshakes refused by the rate limits (a flood of HELLOs; also
   * counted in bad_datagrams) */
  uint64_t handshakes_limited;
} lc_node_stats;
LC_EXTERN void lc_node_stats_get(const lc_node *node, lc_node_stats *st);

#ifdef __cplusplus
}
#endif
#endif /* LANCHAT_H */
