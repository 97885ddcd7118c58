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
  XX(ETIMEDOUT, -30022, "timed out")

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

#ifdef __cplusplus
}
#endif
#endif /* LANCHAT_H */
