/* relay.h: messages carried by a third peer for someone who is away.  The
 * sender signs the message and seals it to the recipient's identity
 * (crypto_box_seal): the relay can neither read nor change it, and the
 * recipient knows who wrote it.  Sans-I/O: the node stores and forwards
 * the boxes (store.c, node.c). */
#ifndef LC_RELAY_H
#define LC_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "wire.h"

#define LC_RELAY_TTL_MS (7 * 24 * 3600 * UINT64_C(1000)) /* then dropped */

/* The sealed box of a text from self to recipient, in a malloc'd *out.
 * Errors: LC_EINVAL, LC_ETOOBIG, LC_EAUTH (not a usable key), LC_ENOMEM. */
int lc__relay_seal(const lc__identity *self, const uint8_t *recipient,
                   const uint8_t *msg_id, uint64_t sent_ms, const char *text,
                   size_t len, uint8_t **out, size_t *out_len);

/* Opens a box meant for self: it must open with our key, decode, name us
 * as its recipient and carry its sender's valid signature.  *plain is
 * malloc'd (inner points into it; free it after).  Errors: LC_EAUTH,
 * LC_EPROTO (and the decoder's), LC_ENOMEM. */
int lc__relay_open(const lc__identity *self, const uint8_t *box, size_t len,
                   lc__relay_inner *inner, uint8_t **plain);

#endif /* LC_RELAY_H */
