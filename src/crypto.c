/* crypto.c: identity keys, the Noise-IK handshake, sealing and the replay
 * window (see crypto.h).  The only file that includes sodium.h. */
#include "crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HS_NAME "lanchat-IK-25519-ChaChaPoly-BLAKE2b v1"

int lc__crypto_init(void) {
  return sodium_init() < 0 ? LC_ECRYPTO : 0;
}

void lc__crypto_random(void *buf, size_t len) {
  randombytes_buf(buf, len);
}

int lc__identity_generate(lc__identity *id, const uint8_t *seed) {
  if (lc__crypto_init() < 0)
    return LC_ECRYPTO;
  int rc = seed ? crypto_sign_seed_keypair(id->pk, id->sk, seed)
                : crypto_sign_keypair(id->pk, id->sk);
  if (rc != 0 || crypto_sign_ed25519_pk_to_curve25519(id->x_pk, id->pk) != 0 ||
      crypto_sign_ed25519_sk_to_curve25519(id->x_sk, id->sk) != 0)
    return LC_ECRYPTO;
  return 0;
}

void lc__identity_wipe(lc__identity *id) {
  sodium_memzero(id, sizeof *id);
}

void lc__sign(const lc__identity *id, const uint8_t *msg, size_t len,
              uint8_t sig[LC_SIG_BYTES]) {
  crypto_sign_detached(sig, NULL, msg, len, id->sk);
}

int lc__verify(const uint8_t pk[LC_PK_BYTES], const uint8_t *msg, size_t len,
               const uint8_t sig[LC_SIG_BYTES]) {
  return crypto_sign_verify_detached(sig, msg, len, pk) == 0 ? 0 : LC_EAUTH;
}

/* ---- key file ---------------------------------------------------------- */
#define KEYFILE_MAGIC "lanchat-identity-v1 "

int lc__identity_load_or_create(lc__identity *id, const char *path) {
  char buf[128];
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd >= 0) {
    struct stat st;
    if (fstat(fd, &st) != 0) {
      int e = -errno;
      close(fd);
      return e;
    }
    if (!S_ISREG(st.st_mode) || (st.st_mode & 077)) {
      close(fd);
      return LC_EKEYFILE;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0)
      return -errno;
    buf[n] = 0;
    size_t ml = strlen(KEYFILE_MAGIC);
    if ((size_t)n < ml + 64 || memcmp(buf, KEYFILE_MAGIC, ml) != 0)
      return LC_EKEYFILE;
    uint8_t seed[32];
    size_t bin_len = 0;
    if (sodium_hex2bin(seed, sizeof seed, buf + ml, 64, NULL, &bin_len, NULL) !=
            0 ||
        bin_len != 32) {
      sodium_memzero(buf, sizeof buf);
      return LC_EKEYFILE;
    }
    for (ssize_t i = (ssize_t)ml + 64; i < n; i++)
      if (buf[i] != '\n') {
        sodium_memzero(buf, sizeof buf);
        sodium_memzero(seed, sizeof seed);
        return LC_EKEYFILE;
      }
    int rc = lc__identity_generate(id, seed);
    sodium_memzero(buf, sizeof buf);
    sodium_memzero(seed, sizeof seed);
    return rc;
  }
  if (errno != ENOENT)
    return -errno;
  uint8_t seed[32];
  if (lc__crypto_init() < 0)
    return LC_ECRYPTO;
  randombytes_buf(seed, sizeof seed);
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid()) >=
      (int)sizeof tmp)
    return -ENAMETOOLONG;
  fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    return -errno;
  size_t ml = strlen(KEYFILE_MAGIC);
  memcpy(buf, KEYFILE_MAGIC, ml);
  sodium_bin2hex(buf + ml, 65, seed, sizeof seed);
  buf[ml + 64] = '\n';
  size_t total = ml + 65;
  int rc = 0;
  if (write(fd, buf, total) != (ssize_t)total || fsync(fd) != 0)
    rc = -errno;
  if (close(fd) != 0 && rc == 0)
    rc = -errno;
  if (rc == 0 && rename(tmp, path) != 0)
    rc = -errno;
  if (rc != 0)
    unlink(tmp);
  sodium_memzero(buf, sizeof buf);
  if (rc == 0)
    rc = lc__identity_generate(id, seed);
  sodium_memzero(seed, sizeof seed);
  return rc;
}

/* ---- handshake --------------------------------------------------------- */

static void hs_hash(uint8_t h[32], const uint8_t *data, size_t len) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, 32);
  crypto_generichash_update(&st, h, 32);
  crypto_generichash_update(&st, data, len);
  crypto_generichash_final(&st, h, 32);
}

/* Noise's HKDF with keyed BLAKE2b-256 in place of HMAC. */
static void hs_hkdf(const uint8_t ck[32], const uint8_t *ikm, size_t ikm_len,
                    uint8_t out1[32], uint8_t out2[32]) {
  uint8_t temp[32], in[33];
  crypto_generichash(temp, 32, ikm, ikm_len, ck, 32);
  in[0] = 1;
  crypto_generichash(out1, 32, in, 1, temp, 32);
  memcpy(in, out1, 32);
  in[32] = 2;
  crypto_generichash(out2, 32, in, 33, temp, 32);
  sodium_memzero(temp, sizeof temp);
  sodium_memzero(in, sizeof in);
}

static int hs_mix_dh(lc__hs *hs, const uint8_t sk[32], const uint8_t pk[32],
                     uint8_t k[32]) {
  uint8_t dh[32], ck2[32];
  if (crypto_scalarmult(dh, sk, pk) != 0) {
    sodium_memzero(dh, sizeof dh);
    return LC_EAUTH;
  }
  hs_hkdf(hs->ck, dh, sizeof dh, ck2, k);
  memcpy(hs->ck, ck2, 32);
  sodium_memzero(dh, sizeof dh);
  sodium_memzero(ck2, sizeof ck2);
  return 0;
}

static const uint8_t hs_zero_nonce[crypto_aead_chacha20poly1305_IETF_NPUBBYTES];

static void hs_seal(const uint8_t k[32], const uint8_t h[32], const uint8_t *pt,
                    size_t len, uint8_t *out) {
  crypto_aead_chacha20poly1305_ietf_encrypt(out, NULL, pt, len, h, 32, NULL,
                                            hs_zero_nonce, k);
}

static int hs_open(const uint8_t k[32], const uint8_t h[32], const uint8_t *ct,
                   size_t len, uint8_t *out) {
  return crypto_aead_chacha20poly1305_ietf_decrypt(out, NULL, NULL, ct, len, h,
                                                   32, hs_zero_nonce, k) == 0
             ? 0
             : LC_EAUTH;
}

static void hs_le32(uint8_t *b, uint32_t v) {
  for (int i = 0; i < 4; i++)
    b[i] = (uint8_t)(v >> (8 * i));
}
static void hs_le64(uint8_t *b, uint64_t v) {
  for (int i = 0; i < 8; i++)
    b[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t hs_rd64(const uint8_t *b) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = (v << 8) | b[i];
  return v;
}

/* h = HASH(name), ck = h, then the responder's identity and the initiator's
 * index are mixed in. */
static void hs_begin(lc__hs *hs, const uint8_t responder_pk[32],
                     uint32_t initiator_index) {
  crypto_generichash(hs->h, 32, (const uint8_t *)HS_NAME, strlen(HS_NAME), NULL,
                     0);
  memcpy(hs->ck, hs->h, 32);
  hs_hash(hs->h, responder_pk, 32);
  uint8_t b[4];
  hs_le32(b, initiator_index);
  hs_hash(hs->h, b, 4);
}

static void hs_ephemeral(lc__hs *hs, const uint8_t seed[32]) {
  memcpy(hs->e_sk, seed, 32);
  hs->e_sk[0] &= 248;
  hs->e_sk[31] &= 127;
  hs->e_sk[31] |= 64;
  crypto_scalarmult_base(hs->e_pk, hs->e_sk);
}

int lc__hs_initiate(lc__hs *hs, const lc__identity *self,
                    const uint8_t peer_pk[LC_PK_BYTES], uint32_t local_index,
                    uint64_t timestamp, uint64_t instance,
                    const uint8_t eph_seed[32], lc__hello *out) {
  memset(hs, 0, sizeof *hs);
  memcpy(hs->rs_pk, peer_pk, 32);
  if (crypto_sign_ed25519_pk_to_curve25519(hs->rs_x_pk, peer_pk) != 0)
    return LC_EAUTH;
  hs->local_index = local_index;
  memcpy(hs->s_x_sk, self->x_sk, 32);
  hs_begin(hs, peer_pk, local_index);
  hs_ephemeral(hs, eph_seed);
  out->sender_index = local_index;
  memcpy(out->ephemeral, hs->e_pk, 32);
  hs_hash(hs->h, hs->e_pk, 32);
  uint8_t k[32];
  int rc = hs_mix_dh(hs, hs->e_sk, hs->rs_x_pk, k); /* es */
  if (rc < 0)
    goto fail;
  hs_seal(k, hs->h, self->pk, 32, out->sealed_static);
  hs_hash(hs->h, out->sealed_static, sizeof out->sealed_static);
  rc = hs_mix_dh(hs, self->x_sk, hs->rs_x_pk, k); /* ss */
  if (rc < 0)
    goto fail;
  uint8_t pl[16];
  hs_le64(pl, timestamp);
  hs_le64(pl + 8, instance);
  hs_seal(k, hs->h, pl, sizeof pl, out->sealed_payload);
  hs_hash(hs->h, out->sealed_payload, sizeof out->sealed_payload);
  sodium_memzero(k, sizeof k);
  return 0;
fail:
  sodium_memzero(k, sizeof k);
  lc__hs_wipe(hs);
  return rc;
}

int lc__hs_read_hello(lc__hs *hs, const lc__identity *self, const lc__hello *in,
                      uint8_t peer_pk[LC_PK_BYTES], uint64_t *timestamp,
                      uint64_t *instance) {
  memset(hs, 0, sizeof *hs);
  uint8_t k[32], pl[16];
  int rc;
  hs_begin(hs, self->pk, in->sender_index);
  memcpy(hs->re_pk, in->ephemeral, 32);
  hs_hash(hs->h, in->ephemeral, 32);
  if ((rc = hs_mix_dh(hs, self->x_sk, in->ephemeral, k)) < 0) /* es */
    goto fail;
  if ((rc = hs_open(k, hs->h, in->sealed_static, sizeof in->sealed_static,
                    hs->rs_pk)) < 0)
    goto fail;
  hs_hash(hs->h, in->sealed_static, sizeof in->sealed_static);
  if (crypto_sign_ed25519_pk_to_curve25519(hs->rs_x_pk, hs->rs_pk) != 0) {
    rc = LC_EAUTH;
    goto fail;
  }
  if ((rc = hs_mix_dh(hs, self->x_sk, hs->rs_x_pk, k)) < 0) /* ss */
    goto fail;
  if ((rc = hs_open(k, hs->h, in->sealed_payload, sizeof in->sealed_payload,
                    pl)) < 0)
    goto fail;
  hs_hash(hs->h, in->sealed_payload, sizeof in->sealed_payload);
  memcpy(peer_pk, hs->rs_pk, 32);
  *timestamp = hs_rd64(pl);
  *instance = hs_rd64(pl + 8);
  hs->local_index = in->sender_index; /* the initiator's, for the WELCOME */
  sodium_memzero(k, sizeof k);
  return 0;
fail:
  sodium_memzero(k, sizeof k);
  lc__hs_wipe(hs);
  return rc;
}

static void hs_split(lc__hs *hs, uint8_t k1[32], uint8_t k2[32]) {
  hs_hkdf(hs->ck, NULL, 0, k1, k2);
}

int lc__hs_write_welcome(lc__hs *hs, uint32_t local_index, uint64_t instance,
                         const uint8_t eph_seed[32], lc__welcome *out,
                         lc__session_keys *keys) {
  uint8_t b[8], k[32], pl[8];
  int rc;
  uint32_t initiator_index = hs->local_index;
  out->sender_index = local_index;
  out->receiver_index = initiator_index;
  hs_le32(b, local_index);
  hs_le32(b + 4, initiator_index);
  hs_hash(hs->h, b, 8);
  hs_ephemeral(hs, eph_seed);
  memcpy(out->ephemeral, hs->e_pk, 32);
  hs_hash(hs->h, hs->e_pk, 32);
  if ((rc = hs_mix_dh(hs, hs->e_sk, hs->re_pk, k)) < 0) /* ee */
    goto done;
  if ((rc = hs_mix_dh(hs, hs->e_sk, hs->rs_x_pk, k)) < 0) /* se */
    goto done;
  hs_le64(pl, instance);
  hs_seal(k, hs->h, pl, sizeof pl, out->sealed_payload);
  hs_hash(hs->h, out->sealed_payload, sizeof out->sealed_payload);
  hs_split(hs, keys->recv_key, keys->send_key);
done:
  sodium_memzero(k, sizeof k);
  lc__hs_wipe(hs);
  return rc;
}

int lc__hs_read_welcome(lc__hs *hs, const lc__welcome *in,
                        lc__session_keys *keys, uint64_t *instance) {
  if (in->receiver_index != hs->local_index)
    return LC_EAUTH;
  lc__hs t = *hs; /* work on a copy: a forged WELCOME leaves hs intact */
  uint8_t b[8], k[32], pl[8];
  int rc;
  hs_le32(b, in->sender_index);
  hs_le32(b + 4, in->receiver_index);
  hs_hash(t.h, b, 8);
  hs_hash(t.h, in->ephemeral, 32);
  if ((rc = hs_mix_dh(&t, t.e_sk, in->ephemeral, k)) < 0) /* ee */
    goto done;
  if ((rc = hs_mix_dh(&t, t.s_x_sk, in->ephemeral, k)) < 0) /* se */
    goto done;
  if ((rc = hs_open(k, t.h, in->sealed_payload, sizeof in->sealed_payload,
                    pl)) < 0)
    goto done;
  hs_hash(t.h, in->sealed_payload, sizeof in->sealed_payload);
  hs_split(&t, keys->send_key, keys->recv_key);
  *instance = hs_rd64(pl);
  lc__hs_wipe(hs);
done:
  sodium_memzero(k, sizeof k);
  sodium_memzero(&t, sizeof t);
  return rc;
}

void lc__hs_wipe(lc__hs *hs) {
  sodium_memzero(hs, sizeof *hs);
}

/* ---- sealing ----------------------------------------------------------- */

void lc__keypair_init(lc__keypair *kp, const lc__session_keys *keys,
                      uint32_t local_index, uint32_t remote_index) {
  memset(kp, 0, sizeof *kp);
  kp->keys = *keys;
  kp->local_index = local_index;
  kp->remote_index = remote_index;
}

void lc__keypair_wipe(lc__keypair *kp) {
  sodium_memzero(kp, sizeof *kp);
}

static void seal_ad_nonce(uint32_t index, uint64_t pn, uint8_t ad[12],
                          uint8_t nonce[12]) {
  hs_le32(ad, index);
  hs_le64(ad + 4, pn);
  memset(nonce, 0, 4);
  hs_le64(nonce + 4, pn);
}

int lc__seal(lc__keypair *kp, uint64_t pn, const uint8_t *pt, size_t pt_len,
             uint8_t *out) {
  if (kp->sealed_any && pn <= kp->last_sealed_pn)
    return LC_ESTATE;
  uint8_t ad[12], nonce[12];
  seal_ad_nonce(kp->remote_index, pn, ad, nonce);
  unsigned long long clen = 0;
  crypto_aead_chacha20poly1305_ietf_encrypt(
      out, &clen, pt, pt_len, ad, sizeof ad, NULL, nonce, kp->keys.send_key);
  kp->sealed_any = 1;
  kp->last_sealed_pn = pn;
  kp->send_count++;
  return (int)clen;
}

static int replay_seen(const lc__keypair *kp, uint64_t pn) {
  if (!kp->recv_any)
    return 0;
  if (pn > kp->recv_max)
    return 0;
  if (kp->recv_max - pn >= LC_REPLAY_WINDOW)
    return 1;
  uint64_t bit = pn % LC_REPLAY_WINDOW;
  return (kp->recv_bitmap[bit / 64] >> (bit % 64)) & 1;
}

static void replay_mark(lc__keypair *kp, uint64_t pn) {
  if (!kp->recv_any || pn > kp->recv_max) {
    uint64_t from = kp->recv_any ? kp->recv_max + 1 : pn;
    if (!kp->recv_any || pn - kp->recv_max >= LC_REPLAY_WINDOW) {
      memset(kp->recv_bitmap, 0, sizeof kp->recv_bitmap);
    } else {
      for (uint64_t p = from; p <= pn; p++) {
        uint64_t bit = p % LC_REPLAY_WINDOW;
        kp->recv_bitmap[bit / 64] &= ~(1ull << (bit % 64));
      }
    }
    kp->recv_max = pn;
    kp->recv_any = 1;
  }
  uint64_t bit = pn % LC_REPLAY_WINDOW;
  kp->recv_bitmap[bit / 64] |= 1ull << (bit % 64);
}

int lc__open(lc__keypair *kp, uint64_t pn, const uint8_t *ct, size_t ct_len,
             uint8_t *out) {
  if (ct_len < LC_TAG_BYTES)
    return LC_ETRUNC;
  if (replay_seen(kp, pn))
    return LC_EREPLAY;
  uint8_t ad[12], nonce[12];
  seal_ad_nonce(kp->local_index, pn, ad, nonce);
  unsigned long long plen = 0;
  if (crypto_aead_chacha20poly1305_ietf_decrypt(out, &plen, NULL, ct, ct_len,
                                                ad, sizeof ad, nonce,
                                                kp->keys.recv_key) != 0)
    return LC_EAUTH;
  replay_mark(kp, pn);
  return (int)plen;
}
