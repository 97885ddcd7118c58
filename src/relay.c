/* relay.c: sealing a message for a relay to carry, and opening one (see
 * relay.h). */
#include "relay.h"

#include <stdlib.h>
#include <string.h>

int lc__relay_seal(const lc__identity *self, const uint8_t *recipient,
                   const uint8_t *msg_id, uint64_t sent_ms, const char *text,
                   size_t len, uint8_t **out, size_t *out_len) {
  if (!text && len)
    return LC_EINVAL;
  if (len > LC_TEXT_MAX)
    return LC_ETOOBIG;
  lc__relay_inner r;
  memset(&r, 0, sizeof r);
  memcpy(r.sender, self->pk, LC_KEY_BYTES);
  memcpy(r.recipient, recipient, LC_KEY_BYTES);
  memcpy(r.msg_id, msg_id, LC_MSGID_BYTES);
  r.sent_ms = sent_ms;
  r.text = text;
  r.text_len = len;
  size_t cap = len + 256;
  uint8_t *plain = malloc(cap);
  if (!plain)
    return LC_ENOMEM;
  size_t signed_len;
  int n = lc__relay_inner_encode(&r, plain, cap, &signed_len);
  if (n < 0) {
    free(plain);
    return n;
  }
  lc__sign(self, plain, signed_len, plain + n - 64);
  uint8_t *box = malloc((size_t)n + LC_SEAL_OVERHEAD);
  int rc = box ? lc__seal_to(recipient, plain, (size_t)n, box) : LC_ENOMEM;
  memset(plain, 0, (size_t)n);
  free(plain);
  if (rc < 0) {
    free(box);
    return rc;
  }
  *out = box;
  *out_len = (size_t)n + LC_SEAL_OVERHEAD;
  return 0;
}

int lc__relay_open(const lc__identity *self, const uint8_t *box, size_t len,
                   lc__relay_inner *inner, uint8_t **plain) {
  if (len <= LC_SEAL_OVERHEAD || len > LC_RELAY_MAX)
    return LC_EAUTH;
  size_t n = len - LC_SEAL_OVERHEAD;
  uint8_t *p = malloc(n);
  if (!p)
    return LC_ENOMEM;
  int rc = lc__seal_open(self, box, len, p);
  if (rc == 0)
    rc = lc__relay_inner_decode(inner, p, n);
  if (rc == 0 &&
      (memcmp(inner->recipient, self->pk, LC_KEY_BYTES) != 0 ||
       lc__pk_check(inner->sender) < 0 ||
       lc__verify(inner->sender, p, inner->signed_len, inner->sig) != 0))
    rc = LC_EAUTH;
  if (rc < 0) {
    free(p);
    return rc;
  }
  *plain = p;
  return 0;
}
