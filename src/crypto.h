/* crypto.h: identity keys, the handshake, datagram sealing and the replay
 * window.  crypto.c is the only file that includes sodium.h.
 *
 * Nothing here draws randomness on its own except lc__crypto_random(): the
 * handshake takes its ephemeral seed from the caller, so the deterministic
 * simulator can replay a run exactly from its seed.
 *
 * The handshake is a Noise IK pattern (docs/PROTOCOL.md, "Handshake"):
 *   -> e, es, s, ss      HELLO   (initiator knows the responder's key)
 *   <- e, ee, se         WELCOME
 * built from X25519, ChaCha20-Poly1305-IETF and keyed BLAKE2b-256.  Identity
 * keys are Ed25519 and are converted to X25519 for the DH steps.
 */
#ifndef LC_CRYPTO_H
#define LC_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

#define LC_PK_BYTES 32        /* Ed25519 public key */
#define LC_SK_BYTES 64        /* Ed25519 secret key (libsodium layout) */
#define LC_SIG_BYTES 64       /* Ed25519 signature */
#define LC_REPLAY_WINDOW 4096 /* packets; a multiple of 64 */

/* Initialises libsodium; idempotent, cheap after the first call.  Returns 0
 * or LC_ECRYPTO. */
int lc__crypto_init(void);

/* Fills buf with len bytes from the OS CSPRNG. */
void lc__crypto_random(void *buf, size_t len);
/* The same, in the shape of the transport's and discovery's `random`
 * option (ctx unused): their default. */
void lc__crypto_random_cb(void *ctx, void *buf, size_t len);

/* ---- identity -------------------------------------------------------- */
typedef struct {
  uint8_t pk[LC_PK_BYTES];
  uint8_t sk[LC_SK_BYTES];
  /* X25519 forms of the same key, derived once. */
  uint8_t x_pk[LC_KEY_BYTES];
  uint8_t x_sk[LC_KEY_BYTES];
} lc__identity;

/* Creates an identity from a 32-byte seed (deterministic; tests) or, when
 * seed is NULL, from the CSPRNG. */
int lc__identity_generate(lc__identity *id, const uint8_t *seed);

/* The identity file (docs/PROTOCOL.md, "The identity file") is stored
 * either in the clear or sealed under a passphrase (Argon2id key, then
 * XSalsa20-Poly1305).  A passphrase is "given" when not NULL and not "";
 * one given for a file in the clear is not needed and is ignored. */

/* Loads the identity stored at path.  Errors: -ENOENT (no file), another
 * negative errno from the file system, LC_EKEYFILE (malformed, readable by
 * group/others, absurd stored limits, or the sealed seed does not match the
 * stored public key), LC_EPASSPHRASE (the file is sealed and no passphrase
 * or a wrong one was given; a tampered box or salt looks the same),
 * LC_ECRYPTO (the key derivation failed, e.g. out of memory). */
int lc__identity_load(lc__identity *id, const char *path,
                      const char *passphrase);

/* Creates a new identity at path (file mode 0600, written to a temporary
 * name, fsynced, then linked into place so an existing file is never
 * replaced), sealed under the passphrase if one is given (moderate
 * crypto_pwhash limits).  Errors: -EEXIST (a file is there already), a
 * negative errno, LC_ECRYPTO. */
int lc__identity_create(lc__identity *id, const char *path,
                        const char *passphrase);

/* The same, sealed, with the given crypto_pwhash limits (tests use the
 * cheap ones).  Errors as lc__identity_create, and LC_EINVAL (no
 * passphrase, or limits outside what lc__identity_load accepts:
 * opslimit 1..100, memlimit 8 KiB..1 GiB). */
int lc__identity_create_sealed(lc__identity *id, const char *path,
                               const char *passphrase,
                               unsigned long long opslimit,
                               unsigned long long memlimit);

/* Reads the public key of the identity at path without its passphrase;
 * *sealed (may be NULL) is set to 1 for a sealed file, 0 for one in the
 * clear.  Errors: -ENOENT, another negative errno, LC_EKEYFILE. */
int lc__identity_read_public(const char *path, uint8_t pk[LC_PK_BYTES],
                             int *sealed);

/* lc__identity_load, and when there is no file and create is set,
 * lc__identity_create (sealed if a passphrase is given); a file created by
 * someone else in between is read instead.  Without create a missing file
 * is -ENOENT. */
int lc__identity_open(lc__identity *id, const char *path,
                      const char *passphrase, int create);

/* lc__identity_open(id, path, NULL, 1): loads the identity stored at path,
 * or creates one there in the clear if none exists.  Errors: a negative
 * errno from the file system, LC_EKEYFILE if the file exists but is
 * malformed or readable by group/others, LC_EPASSPHRASE if it is sealed. */
int lc__identity_load_or_create(lc__identity *id, const char *path);

/* Wipes secret material. */
void lc__identity_wipe(lc__identity *id);

/* Detached Ed25519 signature (for discovery announcements). */
void lc__sign(const lc__identity *id, const uint8_t *msg, size_t len,
              uint8_t sig[LC_SIG_BYTES]);
/* 0 if sig is a valid signature of msg by pk, LC_EAUTH otherwise. */
int lc__verify(const uint8_t pk[LC_PK_BYTES], const uint8_t *msg, size_t len,
               const uint8_t sig[LC_SIG_BYTES]);

/* 0 if pk is an Ed25519 public key a handshake can use (it converts to
 * X25519), LC_EAUTH otherwise. */
int lc__pk_check(const uint8_t pk[LC_PK_BYTES]);

/* Sealed boxes, for a message a relay carries without reading it: an
 * ephemeral X25519 key and XSalsa20-Poly1305 (crypto_box_seal) to the
 * recipient's identity (its Ed25519 key, converted).  out has len +
 * LC_SEAL_OVERHEAD bytes.  Errors: LC_EAUTH (not a usable key, or a box
 * that does not open). */
#define LC_SEAL_OVERHEAD 48
int lc__seal_to(const uint8_t recipient[LC_PK_BYTES], const uint8_t *pt,
                size_t len, uint8_t *out);
int lc__seal_open(const lc__identity *self, const uint8_t *ct, size_t len,
                  uint8_t *out);

/* BLAKE2b of in, outlen bytes (16..64). */
void lc__hash(uint8_t *out, size_t outlen, const void *in, size_t inlen);

/* BLAKE2b-256 over a stream of bytes (files).  The state is plain bytes:
 * it may be copied, never shared between two streams. */
typedef struct {
  _Alignas(64) uint8_t opaque[384];
} lc__hash_state;
void lc__hash_init(lc__hash_state *st);
void lc__hash_update(lc__hash_state *st, const void *in, size_t len);
void lc__hash_final(lc__hash_state *st, uint8_t out[32]);

/* Six groups of five digits from a BLAKE2b hash of the key (out: 36
 * bytes with the NUL). */
void lc__fingerprint(char out[36], const uint8_t pk[LC_PK_BYTES]);

/* ---- handshake ------------------------------------------------------- */

/* State carried from one handshake message to the next.  Owned by the
 * transport's pending handshake; wiped by lc__hs_wipe. */
typedef struct {
  uint8_t ck[32]; /* chaining key */
  uint8_t h[32];  /* handshake hash */
  uint8_t e_sk[LC_KEY_BYTES];
  uint8_t e_pk[LC_KEY_BYTES];
  uint8_t re_pk[LC_KEY_BYTES];   /* remote ephemeral */
  uint8_t rs_pk[LC_PK_BYTES];    /* remote identity (Ed25519) */
  uint8_t rs_x_pk[LC_KEY_BYTES]; /* remote identity (X25519) */
  uint8_t s_x_sk[LC_KEY_BYTES];  /* initiator: our X25519 identity secret,
                                    kept for the se step of the WELCOME */
  uint32_t local_index;
} lc__hs;

/* Keys that come out of a completed handshake. */
typedef struct {
  uint8_t send_key[32];
  uint8_t recv_key[32];
} lc__session_keys;

/* Initiator, first message.  peer_pk is the responder's Ed25519 identity
 * (learnt from discovery).  timestamp is a strictly increasing wall-clock
 * value in microseconds (the responder rejects one not newer than the last
 * it accepted from us), instance identifies this run of the process.
 * eph_seed: 32 random bytes from the caller.  Errors: LC_EAUTH (peer_pk is
 * not a valid key), LC_ECRYPTO. */
int lc__hs_initiate(lc__hs *hs, const lc__identity *self,
                    const uint8_t peer_pk[LC_PK_BYTES], uint32_t local_index,
                    uint64_t timestamp, uint64_t instance,
                    const uint8_t eph_seed[32], lc__hello *out);

/* Responder, reading a HELLO.  On success fills hs (for
 * lc__hs_write_welcome), the initiator's identity, timestamp and instance;
 * on failure hs is wiped.  Errors: LC_EAUTH (not for us, tampered, invalid
 * key). */
int lc__hs_read_hello(lc__hs *hs, const lc__identity *self, const lc__hello *in,
                      uint8_t peer_pk[LC_PK_BYTES], uint64_t *timestamp,
                      uint64_t *instance);

/* Responder, answering.  Produces the WELCOME and the session keys, and
 * wipes hs whether it succeeds or fails.  local_index is the responder's
 * index for this session. */
int lc__hs_write_welcome(lc__hs *hs, uint32_t local_index, uint64_t instance,
                         const uint8_t eph_seed[32], lc__welcome *out,
                         lc__session_keys *keys);

/* Initiator, reading the WELCOME.  On success fills keys and the
 * responder's instance, and wipes hs.  On failure hs is left unchanged, so
 * a forged WELCOME does not disturb the pending handshake.  Errors:
 * LC_EAUTH. */
int lc__hs_read_welcome(lc__hs *hs, const lc__welcome *in,
                        lc__session_keys *keys, uint64_t *instance);

void lc__hs_wipe(lc__hs *hs);

/* ---- sealing --------------------------------------------------------- */

/* One direction pair of keys plus the receive replay window.  Owned by the
 * transport session that installed it. */
typedef struct {
  lc__session_keys keys;
  uint32_t local_index;  /* peers address DATA to us with this */
  uint32_t remote_index; /* we address DATA to the peer with this */
  uint64_t send_count;   /* packets sealed with these keys */
  uint64_t last_sealed_pn;
  int sealed_any;
  /* replay window: highest pn accepted and a bitmap of the
   * LC_REPLAY_WINDOW packet numbers at and below it. */
  uint64_t recv_max;
  int recv_any;
  uint64_t recv_bitmap[LC_REPLAY_WINDOW / 64];
} lc__keypair;

void lc__keypair_init(lc__keypair *kp, const lc__session_keys *keys,
                      uint32_t local_index, uint32_t remote_index);
void lc__keypair_wipe(lc__keypair *kp);

/* Seals plaintext pt under packet number pn into out (pt_len + 16 bytes).
 * Associated data: remote_index (4 bytes LE) || pn (8 bytes LE).  The nonce
 * is 4 zero bytes || pn (8 bytes LE); pn must be strictly greater than the
 * last pn sealed with kp (LC_ESTATE otherwise), so a nonce never repeats.
 * Returns the ciphertext length, or LC_ETOOBIG (pt_len > INT_MAX - 16),
 * LC_ECRYPTO. */
int lc__seal(lc__keypair *kp, uint64_t pn, const uint8_t *pt, size_t pt_len,
             uint8_t *out);

/* Opens a ciphertext addressed to kp->local_index.  Returns the plaintext
 * length (written to out, ct_len - 16 bytes), LC_EREPLAY if pn was already
 * accepted or is older than the window, LC_EAUTH if the tag does not verify,
 * LC_ETRUNC if ct_len < 16, LC_ETOOBIG if ct_len > INT_MAX + 16.  The
 * window is only updated after the tag verifies. */
int lc__open(lc__keypair *kp, uint64_t pn, const uint8_t *ct, size_t ct_len,
             uint8_t *out);

#endif /* LC_CRYPTO_H */
