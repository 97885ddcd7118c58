/* crypto.c: identity keys and their file, the Noise-IK handshake, datagram
 * sealing and the replay window.  The only file that includes sodium.h;
 * docs/PROTOCOL.md ("Handshake and keys") is the normative description of
 * every byte computed here. */
#include "crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#define LC_HASH_BYTES 32
#define LC_AEAD_NONCE_BYTES 12

static const char crypto_protocol_name[] =
    "lanchat-IK-25519-ChaChaPoly-BLAKE2b v1";

/* The primitives must be the ones the wire sizes were computed for. */
_Static_assert(crypto_aead_chacha20poly1305_ietf_ABYTES == LC_TAG_BYTES,
               "tag size");
_Static_assert(crypto_aead_chacha20poly1305_ietf_NPUBBYTES ==
                   LC_AEAD_NONCE_BYTES,
               "nonce size");
_Static_assert(crypto_aead_chacha20poly1305_ietf_KEYBYTES == 32, "key size");
_Static_assert(crypto_scalarmult_BYTES == LC_KEY_BYTES, "x25519 size");
_Static_assert(crypto_sign_PUBLICKEYBYTES == LC_PK_BYTES, "ed25519 pk");
_Static_assert(crypto_sign_SECRETKEYBYTES == LC_SK_BYTES, "ed25519 sk");
_Static_assert(crypto_sign_BYTES == LC_SIG_BYTES, "ed25519 sig");
_Static_assert(crypto_sign_SEEDBYTES == 32, "ed25519 seed");
_Static_assert(LC_HELLO_STATIC_BYTES == LC_PK_BYTES + LC_TAG_BYTES, "HELLO");
_Static_assert(LC_HELLO_PAYLOAD_BYTES == 16 + LC_TAG_BYTES, "HELLO payload");
_Static_assert(LC_WELCOME_PAYLOAD_BYTES == 8 + LC_TAG_BYTES, "WELCOME");
_Static_assert(LC_REPLAY_WINDOW % 64 == 0, "replay window");

int lc__crypto_init(void) {
  /* 1 means "already initialised", which is just as good. */
  return sodium_init() < 0 ? LC_ECRYPTO : 0;
}

void lc__crypto_random(void *buf, size_t len) {
  randombytes_buf(buf, len);
}

void lc__crypto_random_cb(void *ctx, void *buf, size_t len) {
  (void)ctx;
  lc__crypto_random(buf, len);
}

static void crypto_put_u32le(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static void crypto_put_u64le(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t crypto_get_u64le(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

/* ---- identity -------------------------------------------------------- */

int lc__identity_generate(lc__identity *id, const uint8_t *seed) {
  if (lc__crypto_init() != 0)
    return LC_ECRYPTO;
  int rc = seed ? crypto_sign_seed_keypair(id->pk, id->sk, seed)
                : crypto_sign_keypair(id->pk, id->sk);
  if (rc != 0 || crypto_sign_ed25519_pk_to_curve25519(id->x_pk, id->pk) != 0 ||
      crypto_sign_ed25519_sk_to_curve25519(id->x_sk, id->sk) != 0) {
    lc__identity_wipe(id);
    return LC_ECRYPTO;
  }
  return 0;
}

void lc__identity_wipe(lc__identity *id) {
  sodium_memzero(id, sizeof *id);
}

/* The identity file comes in two formats, told apart by the first line.
 *
 * In the clear, exactly IDFILE_BYTES (158) of ASCII:
 *   "lanchat-identity v1\n"
 *   "seed " <64 lowercase hex digits> "\n"
 *   "pk " <64 lowercase hex digits> "\n"
 * The seed is all that is needed; the public key is there so that a
 * damaged seed is caught instead of silently becoming another identity.
 *
 * Sealed under a passphrase (at most IDFILE_MAX bytes):
 *   "lanchat-identity-sealed v1\n"
 *   "pk " <64 hex> "\n"
 *   "salt " <32 hex: crypto_pwhash_SALTBYTES> "\n"
 *   "opslimit " <decimal> "\n"
 *   "memlimit " <decimal, bytes> "\n"
 *   "nonce " <48 hex: crypto_secretbox_NONCEBYTES> "\n"
 *   "box " <96 hex: crypto_secretbox_easy(seed), 32 + 16 bytes> "\n"
 * The box key is crypto_pwhash(Argon2id 1.3, passphrase, salt, opslimit,
 * memlimit), 32 bytes.  The public key stays readable without the
 * passphrase. */
#define IDFILE_HEAD "lanchat-identity v1\nseed "
#define IDFILE_PK "pk "
#define IDFILE_BYTES (sizeof IDFILE_HEAD - 1 + 65 + sizeof IDFILE_PK - 1 + 65)
#define IDFILE_SEALED_HEAD "lanchat-identity-sealed v1\n"
#define IDFILE_MAX 512
#define IDFILE_SEED_BOX_BYTES (32 + crypto_secretbox_MACBYTES)
/* Stored limits beyond these are refused as damage (or an attempt to make
 * loading take forever) rather than obeyed. */
#define IDFILE_OPSLIMIT_MAX 100ULL
#define IDFILE_MEMLIMIT_MAX (1ULL << 30)

_Static_assert(crypto_secretbox_KEYBYTES == 32, "secretbox key");
_Static_assert(crypto_pwhash_SALTBYTES == 16, "pwhash salt");
_Static_assert(crypto_secretbox_NONCEBYTES == 24, "secretbox nonce");

typedef struct {
  uint8_t pk[LC_PK_BYTES];
  uint8_t salt[crypto_pwhash_SALTBYTES];
  unsigned long long opslimit;
  unsigned long long memlimit;
  uint8_t nonce[crypto_secretbox_NONCEBYTES];
  uint8_t box[IDFILE_SEED_BOX_BYTES];
} identity_sealed;

static int identity_limits_ok(unsigned long long ops, unsigned long long mem) {
  return ops >= crypto_pwhash_OPSLIMIT_MIN && ops <= IDFILE_OPSLIMIT_MAX &&
         mem >= crypto_pwhash_MEMLIMIT_MIN && mem <= IDFILE_MEMLIMIT_MAX;
}

static int identity_has_passphrase(const char *passphrase) {
  return passphrase && *passphrase;
}

/* Formats the clear file for id into buf (IDFILE_BYTES + 1, NUL-terminated).
 * Returns its length. */
static size_t identity_format(const lc__identity *id, char buf[IDFILE_MAX]) {
  char *p = buf;
  memcpy(p, IDFILE_HEAD, sizeof IDFILE_HEAD - 1);
  p += sizeof IDFILE_HEAD - 1;
  /* libsodium's Ed25519 secret key is seed || pk */
  sodium_bin2hex(p, 65, id->sk, 32);
  p += 64;
  *p++ = '\n';
  memcpy(p, IDFILE_PK, sizeof IDFILE_PK - 1);
  p += sizeof IDFILE_PK - 1;
  sodium_bin2hex(p, 65, id->pk, LC_PK_BYTES);
  p += 64;
  *p++ = '\n';
  *p = '\0';
  return IDFILE_BYTES;
}

/* Appends "<name> <hex of bin>\n" at buf + *at. */
static void identity_put_hex(char *buf, size_t *at, const char *name,
                             const uint8_t *bin, size_t len) {
  size_t n = strlen(name);
  /* a name then a space: no terminator wanted */
  memcpy(buf + *at, name, n); /* NOLINT(bugprone-not-null-terminated-result) */
  *at += n;
  buf[(*at)++] = ' ';
  sodium_bin2hex(buf + *at, IDFILE_MAX - *at, bin, len);
  *at += 2 * len;
  buf[(*at)++] = '\n';
}

/* Formats the sealed file into buf.  Returns its length. */
static size_t identity_format_sealed(const identity_sealed *s,
                                     char buf[IDFILE_MAX]) {
  size_t at = sizeof IDFILE_SEALED_HEAD - 1;
  memcpy(buf, IDFILE_SEALED_HEAD, at);
  identity_put_hex(buf, &at, "pk", s->pk, sizeof s->pk);
  identity_put_hex(buf, &at, "salt", s->salt, sizeof s->salt);
  int n = snprintf(buf + at, IDFILE_MAX - at, "opslimit %llu\nmemlimit %llu\n",
                   s->opslimit, s->memlimit);
  at += (size_t)n;
  identity_put_hex(buf, &at, "nonce", s->nonce, sizeof s->nonce);
  identity_put_hex(buf, &at, "box", s->box, sizeof s->box);
  buf[at] = '\0';
  return at;
}

/* Parses exactly 2 * n hex digits followed by a newline into n bytes. */
static int identity_hex(uint8_t *out, size_t n, const char *hex,
                        const char *end) {
  size_t got = 0;
  const char *stop = NULL;
  if ((size_t)(end - hex) < 2 * n + 1 ||
      sodium_hex2bin(out, n, hex, 2 * n, NULL, &got, &stop) != 0 || got != n ||
      stop != hex + 2 * n || hex[2 * n] != '\n')
    return LC_EKEYFILE;
  return 0;
}

static int identity_hex32(uint8_t out[32], const char *hex) {
  return identity_hex(out, 32, hex, hex + 65);
}

/* Matches lit at *p (and advances past it). */
static int identity_lit(const char **p, const char *end, const char *lit) {
  size_t n = strlen(lit);
  if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0)
    return LC_EKEYFILE;
  *p += n;
  return 0;
}

/* "<name> <hex>\n" into n bytes. */
static int identity_field_hex(const char **p, const char *end, const char *name,
                              uint8_t *out, size_t n) {
  if (identity_lit(p, end, name) != 0 || identity_lit(p, end, " ") != 0 ||
      identity_hex(out, n, *p, end) != 0)
    return LC_EKEYFILE;
  *p += 2 * n + 1;
  return 0;
}

/* "<name> <decimal>\n": 1 to 19 digits, no leading zero. */
static int identity_field_dec(const char **p, const char *end, const char *name,
                              unsigned long long *out) {
  if (identity_lit(p, end, name) != 0 || identity_lit(p, end, " ") != 0)
    return LC_EKEYFILE;
  const char *q = *p;
  unsigned long long v = 0;
  int digits = 0;
  while (q < end && *q >= '0' && *q <= '9' && digits < 19) {
    v = v * 10 + (unsigned)(*q - '0');
    q++;
    digits++;
  }
  if (digits == 0 || (digits > 1 && **p == '0') || q >= end || *q != '\n')
    return LC_EKEYFILE;
  *out = v;
  *p = q + 1;
  return 0;
}

/* Parses a sealed file.  Returns 0 or LC_EKEYFILE. */
static int identity_parse_sealed(identity_sealed *s, const char *buf,
                                 size_t len) {
  const char *p = buf, *end = buf + len;
  if (identity_lit(&p, end, IDFILE_SEALED_HEAD) != 0 ||
      identity_field_hex(&p, end, "pk", s->pk, sizeof s->pk) != 0 ||
      identity_field_hex(&p, end, "salt", s->salt, sizeof s->salt) != 0 ||
      identity_field_dec(&p, end, "opslimit", &s->opslimit) != 0 ||
      identity_field_dec(&p, end, "memlimit", &s->memlimit) != 0 ||
      identity_field_hex(&p, end, "nonce", s->nonce, sizeof s->nonce) != 0 ||
      identity_field_hex(&p, end, "box", s->box, sizeof s->box) != 0 ||
      p != end || !identity_limits_ok(s->opslimit, s->memlimit) ||
      lc__pk_check(s->pk) != 0)
    return LC_EKEYFILE;
  return 0;
}

static int identity_is_sealed(const char *buf, size_t len) {
  return len >= sizeof IDFILE_SEALED_HEAD - 1 &&
         memcmp(buf, IDFILE_SEALED_HEAD, sizeof IDFILE_SEALED_HEAD - 1) == 0;
}

/* Derives the box key from the passphrase.  Returns 0 or LC_ECRYPTO (out of
 * memory, most likely). */
static int identity_derive(uint8_t key[crypto_secretbox_KEYBYTES],
                           const char *passphrase, const identity_sealed *s) {
  if (crypto_pwhash(key, crypto_secretbox_KEYBYTES, passphrase,
                    strlen(passphrase), s->salt, s->opslimit,
                    (size_t)s->memlimit, crypto_pwhash_ALG_ARGON2ID13) != 0) {
    sodium_memzero(key, crypto_secretbox_KEYBYTES);
    return LC_ECRYPTO;
  }
  return 0;
}

static int identity_parse(lc__identity *id, const char *buf, size_t len) {
  uint8_t seed[32], pk[LC_PK_BYTES];
  const char *p = buf;
  int rc = LC_EKEYFILE;
  if (len != IDFILE_BYTES || memcmp(p, IDFILE_HEAD, sizeof IDFILE_HEAD - 1))
    goto out;
  p += sizeof IDFILE_HEAD - 1;
  if (identity_hex32(seed, p) != 0)
    goto out;
  p += 65;
  if (memcmp(p, IDFILE_PK, sizeof IDFILE_PK - 1))
    goto out;
  p += sizeof IDFILE_PK - 1;
  if (identity_hex32(pk, p) != 0)
    goto out;
  rc = lc__identity_generate(id, seed);
  if (rc == 0 && sodium_memcmp(id->pk, pk, LC_PK_BYTES) != 0) {
    lc__identity_wipe(id);
    rc = LC_EKEYFILE;
  }
out:
  sodium_memzero(seed, sizeof seed);
  return rc;
}

/* Opens a sealed file with the passphrase.  Returns 0, LC_EKEYFILE,
 * LC_EPASSPHRASE (none given, or the box does not open with it),
 * LC_ECRYPTO. */
static int identity_parse_sealed_open(lc__identity *id, const char *buf,
                                      size_t len, const char *passphrase) {
  identity_sealed s;
  uint8_t key[crypto_secretbox_KEYBYTES], seed[32];
  int rc = identity_parse_sealed(&s, buf, len);
  if (rc != 0)
    return rc;
  if (!identity_has_passphrase(passphrase))
    return LC_EPASSPHRASE;
  rc = identity_derive(key, passphrase, &s);
  if (rc != 0)
    return rc;
  if (crypto_secretbox_open_easy(seed, s.box, sizeof s.box, s.nonce, key) !=
      0) {
    rc = LC_EPASSPHRASE;
    goto out;
  }
  rc = lc__identity_generate(id, seed);
  if (rc == 0 && sodium_memcmp(id->pk, s.pk, LC_PK_BYTES) != 0) {
    lc__identity_wipe(id);
    rc = LC_EKEYFILE;
  }
out:
  sodium_memzero(key, sizeof key);
  sodium_memzero(seed, sizeof seed);
  return rc;
}

/* Reads the whole key file into buf (IDFILE_MAX + 1 bytes: one more than a
 * valid file has, to notice a longer one).  Returns 0, LC_EKEYFILE (not a
 * regular file, or readable by group/others), or a negative errno (-ENOENT
 * when there is none). */
static int identity_read_file(const char *path, char buf[IDFILE_MAX + 1],
                              size_t *lenp) {
  size_t len = 0;
  int rc = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return -errno;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    rc = -errno;
    goto out;
  }
  /* Like ssh: a secret key that others can read (or replace) is refused
   * rather than used, so that the mistake gets noticed. */
  if (!S_ISREG(st.st_mode) || (st.st_mode & 077) != 0) {
    rc = LC_EKEYFILE;
    goto out;
  }
  while (len < IDFILE_MAX + 1) {
    ssize_t n = read(fd, buf + len, IDFILE_MAX + 1 - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      rc = -errno;
      goto out;
    }
    if (n == 0)
      break;
    len += (size_t)n;
  }
  *lenp = len;
out:
  close(fd);
  return rc;
}

int lc__identity_load(lc__identity *id, const char *path,
                      const char *passphrase) {
  char buf[IDFILE_MAX + 1];
  size_t len = 0;
  if (lc__crypto_init() != 0)
    return LC_ECRYPTO;
  int rc = identity_read_file(path, buf, &len);
  if (rc == 0) {
    /* a passphrase given for a file in the clear is not needed: ignored */
    rc = identity_is_sealed(buf, len)
             ? identity_parse_sealed_open(id, buf, len, passphrase)
             : identity_parse(id, buf, len);
  }
  sodium_memzero(buf, sizeof buf);
  return rc;
}

int lc__identity_read_public(const char *path, uint8_t pk[LC_PK_BYTES],
                             int *sealed) {
  char buf[IDFILE_MAX + 1];
  size_t len = 0;
  if (lc__crypto_init() != 0)
    return LC_ECRYPTO;
  int rc = identity_read_file(path, buf, &len);
  if (rc == 0) {
    if (identity_is_sealed(buf, len)) {
      identity_sealed s;
      rc = identity_parse_sealed(&s, buf, len);
      if (rc == 0) {
        memcpy(pk, s.pk, LC_PK_BYTES);
        if (sealed)
          *sealed = 1;
      }
    } else {
      lc__identity id;
      rc = identity_parse(&id, buf, len);
      if (rc == 0) {
        memcpy(pk, id.pk, LC_PK_BYTES);
        if (sealed)
          *sealed = 0;
      }
      lc__identity_wipe(&id);
    }
  }
  sodium_memzero(buf, sizeof buf);
  return rc;
}

static int identity_write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Makes the new directory entry durable.  Best effort: some file systems
 * refuse fsync on a directory, and the key itself is already on disk. */
static void identity_sync_dir(const char *path) {
  char dir[PATH_MAX];
  const char *slash = strrchr(path, '/');
  if (!slash) {
    strcpy(dir, ".");
  } else if (slash == path) {
    strcpy(dir, "/");
  } else {
    size_t n = (size_t)(slash - path);
    if (n >= sizeof dir)
      return;
    memcpy(dir, path, n);
    dir[n] = '\0';
  }
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    (void)fsync(fd);
    close(fd);
  }
}

/* Formats a fresh identity into text, sealed under the passphrase if there
 * is one.  Returns the length or a negative error; on error id is wiped. */
static int identity_format_new(lc__identity *id, const char *passphrase,
                               unsigned long long opslimit,
                               unsigned long long memlimit,
                               char text[IDFILE_MAX]) {
  int rc = lc__identity_generate(id, NULL);
  if (rc != 0)
    return rc;
  if (!identity_has_passphrase(passphrase))
    return (int)identity_format(id, text);

  identity_sealed s;
  uint8_t key[crypto_secretbox_KEYBYTES];
  memcpy(s.pk, id->pk, LC_PK_BYTES);
  lc__crypto_random(s.salt, sizeof s.salt);
  lc__crypto_random(s.nonce, sizeof s.nonce);
  s.opslimit = opslimit;
  s.memlimit = memlimit;
  rc = identity_derive(key, passphrase, &s);
  /* libsodium's Ed25519 secret key is seed || pk */
  if (rc == 0 && crypto_secretbox_easy(s.box, id->sk, 32, s.nonce, key) != 0)
    rc = LC_ECRYPTO;
  sodium_memzero(key, sizeof key);
  if (rc != 0) {
    lc__identity_wipe(id);
    return rc;
  }
  return (int)identity_format_sealed(&s, text);
}

/* Creates a fresh identity at path.  The file is complete and synced under
 * a temporary name in the same directory before it appears under its own,
 * so a crash never leaves a half-written key.  Returns 0, -EEXIST if
 * the file exists (another process may have created it first), or a
 * negative error. */
static int identity_create(lc__identity *id, const char *path,
                           const char *passphrase, unsigned long long opslimit,
                           unsigned long long memlimit) {
  char tmp[PATH_MAX];
  char text[IDFILE_MAX];
  uint8_t rnd[8];
  char rhex[2 * sizeof rnd + 1];
  int rc;

  if (lc__crypto_init() != 0)
    return LC_ECRYPTO;
  if (identity_has_passphrase(passphrase) &&
      !identity_limits_ok(opslimit, memlimit))
    return LC_EINVAL;
  lc__crypto_random(rnd, sizeof rnd);
  sodium_bin2hex(rhex, sizeof rhex, rnd, sizeof rnd);
  int n = snprintf(tmp, sizeof tmp, "%s.tmp-%s", path, rhex);
  if (n < 0 || (size_t)n >= sizeof tmp)
    return -ENAMETOOLONG;
  /* Fail early, before the slow key derivation, when there is one already;
   * link() below still settles a race. */
  struct stat st;
  if (lstat(path, &st) == 0)
    return -EEXIST;
  rc = identity_format_new(id, passphrase, opslimit, memlimit, text);
  if (rc < 0)
    return rc;
  size_t len = (size_t)rc;

  int fd =
      open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    rc = -errno;
    goto fail;
  }
  /* the umask can only take bits away, but say exactly what we mean */
  rc = fchmod(fd, 0600) == 0 ? 0 : -errno;
  if (rc == 0)
    rc = identity_write_all(fd, text, len);
  if (rc == 0 && fsync(fd) != 0)
    rc = -errno;
  if (close(fd) != 0 && rc == 0)
    rc = -errno;
  if (rc != 0)
    goto fail_unlink;

  /* link() never replaces an existing file, so two processes racing to
   * create the identity end up agreeing on one.  File systems without hard
   * links fall back to rename(). */
  if (link(tmp, path) == 0) {
    unlink(tmp);
  } else if (errno == EPERM || errno == EOPNOTSUPP || errno == ENOSYS) {
    if (rename(tmp, path) != 0) {
      rc = -errno;
      goto fail_unlink;
    }
  } else {
    rc = -errno;
    goto fail_unlink;
  }
  identity_sync_dir(path);
  sodium_memzero(text, sizeof text);
  return 0;

fail_unlink:
  unlink(tmp);
fail:
  sodium_memzero(text, sizeof text);
  lc__identity_wipe(id);
  return rc;
}

int lc__identity_create(lc__identity *id, const char *path,
                        const char *passphrase) {
  return identity_create(id, path, passphrase, crypto_pwhash_OPSLIMIT_MODERATE,
                         crypto_pwhash_MEMLIMIT_MODERATE);
}

int lc__identity_create_sealed(lc__identity *id, const char *path,
                               const char *passphrase,
                               unsigned long long opslimit,
                               unsigned long long memlimit) {
  if (!identity_has_passphrase(passphrase))
    return LC_EINVAL;
  return identity_create(id, path, passphrase, opslimit, memlimit);
}

int lc__identity_open(lc__identity *id, const char *path,
                      const char *passphrase, int create) {
  if (lc__crypto_init() != 0)
    return LC_ECRYPTO;
  for (int attempt = 0; attempt < 3; attempt++) {
    int rc = lc__identity_load(id, path, passphrase);
    if (rc != -ENOENT || !create)
      return rc;
    rc = lc__identity_create(id, path, passphrase);
    if (rc != -EEXIST)
      return rc;
    /* someone else created it in between: read theirs */
  }
  return -EEXIST;
}

int lc__identity_load_or_create(lc__identity *id, const char *path) {
  return lc__identity_open(id, path, NULL, 1);
}

/* ---- signatures ------------------------------------------------------ */

void lc__sign(const lc__identity *id, const uint8_t *msg, size_t len,
              uint8_t sig[LC_SIG_BYTES]) {
  crypto_sign_detached(sig, NULL, msg, len, id->sk);
}

int lc__verify(const uint8_t pk[LC_PK_BYTES], const uint8_t *msg, size_t len,
               const uint8_t sig[LC_SIG_BYTES]) {
  return crypto_sign_verify_detached(sig, msg, len, pk) == 0 ? 0 : LC_EAUTH;
}

int lc__pk_check(const uint8_t pk[LC_PK_BYTES]) {
  uint8_t x[crypto_scalarmult_curve25519_BYTES];
  int rc = crypto_sign_ed25519_pk_to_curve25519(x, pk) == 0 ? 0 : LC_EAUTH;
  sodium_memzero(x, sizeof x);
  return rc;
}

int lc__seal_to(const uint8_t recipient[LC_PK_BYTES], const uint8_t *pt,
                size_t len, uint8_t *out) {
  uint8_t x[crypto_box_PUBLICKEYBYTES];
  if (crypto_sign_ed25519_pk_to_curve25519(x, recipient) != 0)
    return LC_EAUTH;
  return crypto_box_seal(out, pt, len, x) == 0 ? 0 : LC_ECRYPTO;
}

int lc__seal_open(const lc__identity *self, const uint8_t *ct, size_t len,
                  uint8_t *out) {
  if (len < crypto_box_SEALBYTES)
    return LC_EAUTH;
  return crypto_box_seal_open(out, ct, len, self->x_pk, self->x_sk) == 0
             ? 0
             : LC_EAUTH;
}

void lc__hash(uint8_t *out, size_t outlen, const void *in, size_t inlen) {
  crypto_generichash(out, outlen, in, inlen, NULL, 0);
}

_Static_assert(sizeof(crypto_generichash_state) <= sizeof(lc__hash_state),
               "lc__hash_state holds a crypto_generichash_state");

void lc__hash_init(lc__hash_state *st) {
  crypto_generichash_init((crypto_generichash_state *)(void *)st->opaque, NULL,
                          0, 32);
}

void lc__hash_update(lc__hash_state *st, const void *in, size_t len) {
  crypto_generichash_update((crypto_generichash_state *)(void *)st->opaque, in,
                            len);
}

void lc__hash_final(lc__hash_state *st, uint8_t out[32]) {
  crypto_generichash_final((crypto_generichash_state *)(void *)st->opaque, out,
                           32);
}

void lc__fingerprint(char out[36], const uint8_t pk[LC_PK_BYTES]) {
  static const uint8_t personal[] = "lanchat-fingerprint-v1";
  uint8_t h[30];
  crypto_generichash(h, sizeof h, personal, sizeof personal - 1, pk,
                     LC_PK_BYTES);
  /* the hash keyed with the key: any change of the key changes it */
  char *p = out;
  for (int g = 0; g < 6; g++) {
    uint64_t v = 0;
    for (int i = 0; i < 5; i++)
      v = v << 8 | h[g * 5 + i];
    p += sprintf(p, g ? " %05u" : "%05u", (unsigned)(v % 100000));
  }
  sodium_memzero(h, sizeof h);
}

/* ---- handshake ------------------------------------------------------- */

/* lc__hs has no field for the HELLO's sender_index, which the WELCOME must
 * echo; between lc__hs_read_hello and lc__hs_write_welcome it waits in
 * local_index, which the responder only fills in write_welcome. */
#define HS_RESPONDER_PEER_INDEX(hs) ((hs)->local_index)

/* h = HASH(h || data) */
static void hs_mix_hash(lc__hs *hs, const uint8_t *data, size_t len) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, LC_HASH_BYTES);
  crypto_generichash_update(&st, hs->h, sizeof hs->h);
  crypto_generichash_update(&st, data, len);
  crypto_generichash_final(&st, hs->h, sizeof hs->h);
  sodium_memzero(&st, sizeof st);
}

/* The Noise HKDF with keyed BLAKE2b-256 in place of HMAC:
 *   temp = B(key=ck, ikm); out1 = B(key=temp, 0x01);
 *   out2 = B(key=temp, out1 || 0x02).
 * out1 and out2 may alias ck; out2 may be NULL. */
static void hs_hkdf(const uint8_t ck[32], const uint8_t *ikm, size_t ikm_len,
                    uint8_t out1[32], uint8_t out2[32]) {
  uint8_t temp[32], o1[33], o2[32];
  static const uint8_t one = 0x01;
  crypto_generichash(temp, sizeof temp, ikm_len ? ikm : ck, ikm_len, ck, 32);
  crypto_generichash(o1, 32, &one, 1, temp, sizeof temp);
  o1[32] = 0x02;
  crypto_generichash(o2, sizeof o2, o1, sizeof o1, temp, sizeof temp);
  memcpy(out1, o1, 32);
  if (out2)
    memcpy(out2, o2, 32);
  sodium_memzero(temp, sizeof temp);
  sodium_memzero(o1, sizeof o1);
  sodium_memzero(o2, sizeof o2);
}

/* ck, k = HKDF(ck, DH(sk, pk)); k may be NULL (a MixKey whose key goes
 * unused).  An all-zero DH output (a low-order point) is LC_EAUTH. */
static int hs_mix_dh(lc__hs *hs, const uint8_t sk[32], const uint8_t pk[32],
                     uint8_t k[32]) {
  uint8_t dh[32];
  if (crypto_scalarmult(dh, sk, pk) != 0) {
    sodium_memzero(dh, sizeof dh);
    return LC_EAUTH;
  }
  hs_hkdf(hs->ck, dh, sizeof dh, hs->ck, k);
  sodium_memzero(dh, sizeof dh);
  return 0;
}

/* EncryptAndHash: out = AEAD(k, nonce 0, ad = h, pt); h = HASH(h || out).
 * Every k comes fresh out of hs_mix_dh and seals one message, so the zero
 * nonce never repeats under a key. */
static void hs_seal(lc__hs *hs, const uint8_t k[32], const uint8_t *pt,
                    size_t len, uint8_t *out) {
  static const uint8_t zero_nonce[LC_AEAD_NONCE_BYTES];
  crypto_aead_chacha20poly1305_ietf_encrypt(out, NULL, pt, len, hs->h,
                                            sizeof hs->h, NULL, zero_nonce, k);
  hs_mix_hash(hs, out, len + LC_TAG_BYTES);
}

/* DecryptAndHash, the inverse of hs_seal; LC_EAUTH if the tag is wrong. */
static int hs_open(lc__hs *hs, const uint8_t k[32], const uint8_t *ct,
                   size_t ct_len, uint8_t *out) {
  static const uint8_t zero_nonce[LC_AEAD_NONCE_BYTES];
  if (crypto_aead_chacha20poly1305_ietf_decrypt(
          out, NULL, NULL, ct, ct_len, hs->h, sizeof hs->h, zero_nonce, k) != 0)
    return LC_EAUTH;
  hs_mix_hash(hs, ct, ct_len);
  return 0;
}

/* The state both sides share before the HELLO: the protocol name, the
 * responder's identity (the "<- s" pre-message) and the initiator's index,
 * so that the index cannot be changed in flight. */
static void hs_start(lc__hs *hs, const uint8_t responder_pk[LC_PK_BYTES],
                     uint32_t initiator_index) {
  uint8_t idx[4];
  memset(hs, 0, sizeof *hs);
  crypto_generichash(hs->h, sizeof hs->h, (const uint8_t *)crypto_protocol_name,
                     sizeof crypto_protocol_name - 1, NULL, 0);
  memcpy(hs->ck, hs->h, sizeof hs->ck);
  hs_mix_hash(hs, responder_pk, LC_PK_BYTES);
  crypto_put_u32le(idx, initiator_index);
  hs_mix_hash(hs, idx, sizeof idx);
}

/* Our ephemeral key pair: the seed is the X25519 secret (the scalar
 * multiplication clamps it). */
static int hs_ephemeral(lc__hs *hs, const uint8_t seed[32]) {
  memcpy(hs->e_sk, seed, 32);
  return crypto_scalarmult_base(hs->e_pk, hs->e_sk) == 0 ? 0 : LC_ECRYPTO;
}

/* Mixes the WELCOME's two indices into h. */
static void hs_mix_indices(lc__hs *hs, uint32_t sender_index,
                           uint32_t receiver_index) {
  uint8_t idx[8];
  crypto_put_u32le(idx, sender_index);
  crypto_put_u32le(idx + 4, receiver_index);
  hs_mix_hash(hs, idx, sizeof idx);
}

/* k1, k2 = HKDF(ck, empty); k1 protects initiator -> responder. */
static void hs_split(lc__hs *hs, lc__session_keys *keys, int initiator) {
  uint8_t k1[32], k2[32];
  hs_hkdf(hs->ck, NULL, 0, k1, k2);
  memcpy(keys->send_key, initiator ? k1 : k2, 32);
  memcpy(keys->recv_key, initiator ? k2 : k1, 32);
  sodium_memzero(k1, sizeof k1);
  sodium_memzero(k2, sizeof k2);
}

int lc__hs_initiate(lc__hs *hs, const lc__identity *self,
                    const uint8_t peer_pk[LC_PK_BYTES], uint32_t local_index,
                    uint64_t timestamp, uint64_t instance,
                    const uint8_t eph_seed[32], lc__hello *out) {
  uint8_t k[32], payload[16];
  int rc;
  hs_start(hs, peer_pk, local_index);
  hs->local_index = local_index;
  memcpy(hs->rs_pk, peer_pk, LC_PK_BYTES);
  memcpy(hs->s_x_sk, self->x_sk, LC_KEY_BYTES);
  memset(out, 0, sizeof *out);
  out->sender_index = local_index;
  if (crypto_sign_ed25519_pk_to_curve25519(hs->rs_x_pk, peer_pk) != 0) {
    rc = LC_EAUTH;
    goto fail;
  }
  /* -> e */
  if ((rc = hs_ephemeral(hs, eph_seed)) != 0)
    goto fail;
  memcpy(out->ephemeral, hs->e_pk, LC_KEY_BYTES);
  hs_mix_hash(hs, hs->e_pk, LC_KEY_BYTES);
  /* es */
  if ((rc = hs_mix_dh(hs, hs->e_sk, hs->rs_x_pk, k)) != 0)
    goto fail;
  /* s */
  hs_seal(hs, k, self->pk, LC_PK_BYTES, out->sealed_static);
  /* ss */
  if ((rc = hs_mix_dh(hs, self->x_sk, hs->rs_x_pk, k)) != 0)
    goto fail;
  crypto_put_u64le(payload, timestamp);
  crypto_put_u64le(payload + 8, instance);
  hs_seal(hs, k, payload, sizeof payload, out->sealed_payload);
  rc = 0;
  goto out;
fail:
  lc__hs_wipe(hs);
  memset(out, 0, sizeof *out);
out:
  sodium_memzero(k, sizeof k);
  sodium_memzero(payload, sizeof payload);
  return rc;
}

int lc__hs_read_hello(lc__hs *hs, const lc__identity *self, const lc__hello *in,
                      uint8_t peer_pk[LC_PK_BYTES], uint64_t *timestamp,
                      uint64_t *instance) {
  uint8_t k[32], payload[16];
  int rc;
  hs_start(hs, self->pk, in->sender_index);
  memcpy(hs->re_pk, in->ephemeral, LC_KEY_BYTES);
  /* -> e */
  hs_mix_hash(hs, hs->re_pk, LC_KEY_BYTES);
  /* es */
  if ((rc = hs_mix_dh(hs, self->x_sk, hs->re_pk, k)) != 0)
    goto fail;
  /* s */
  if ((rc = hs_open(hs, k, in->sealed_static, LC_HELLO_STATIC_BYTES,
                    hs->rs_pk)) != 0)
    goto fail;
  if (crypto_sign_ed25519_pk_to_curve25519(hs->rs_x_pk, hs->rs_pk) != 0) {
    rc = LC_EAUTH;
    goto fail;
  }
  /* ss */
  if ((rc = hs_mix_dh(hs, self->x_sk, hs->rs_x_pk, k)) != 0)
    goto fail;
  if ((rc = hs_open(hs, k, in->sealed_payload, LC_HELLO_PAYLOAD_BYTES,
                    payload)) != 0)
    goto fail;
  memcpy(peer_pk, hs->rs_pk, LC_PK_BYTES);
  *timestamp = crypto_get_u64le(payload);
  *instance = crypto_get_u64le(payload + 8);
  HS_RESPONDER_PEER_INDEX(hs) = in->sender_index;
  rc = 0;
  goto out;
fail:
  lc__hs_wipe(hs);
out:
  sodium_memzero(k, sizeof k);
  sodium_memzero(payload, sizeof payload);
  return rc;
}

int lc__hs_write_welcome(lc__hs *hs, uint32_t local_index, uint64_t instance,
                         const uint8_t eph_seed[32], lc__welcome *out,
                         lc__session_keys *keys) {
  uint8_t k[32], payload[8];
  int rc;
  memset(out, 0, sizeof *out);
  out->sender_index = local_index;
  out->receiver_index = HS_RESPONDER_PEER_INDEX(hs);
  hs->local_index = local_index;
  hs_mix_indices(hs, out->sender_index, out->receiver_index);
  /* <- e */
  if ((rc = hs_ephemeral(hs, eph_seed)) != 0)
    goto fail;
  memcpy(out->ephemeral, hs->e_pk, LC_KEY_BYTES);
  hs_mix_hash(hs, hs->e_pk, LC_KEY_BYTES);
  /* ee */
  if ((rc = hs_mix_dh(hs, hs->e_sk, hs->re_pk, NULL)) != 0)
    goto fail;
  /* se */
  if ((rc = hs_mix_dh(hs, hs->e_sk, hs->rs_x_pk, k)) != 0)
    goto fail;
  crypto_put_u64le(payload, instance);
  hs_seal(hs, k, payload, sizeof payload, out->sealed_payload);
  hs_split(hs, keys, 0);
  rc = 0;
  goto out;
fail:
  memset(out, 0, sizeof *out);
  sodium_memzero(keys, sizeof *keys);
out:
  lc__hs_wipe(hs);
  sodium_memzero(k, sizeof k);
  sodium_memzero(payload, sizeof payload);
  return rc;
}

int lc__hs_read_welcome(lc__hs *hs, const lc__welcome *in,
                        lc__session_keys *keys, uint64_t *instance) {
  /* Work on a copy, so that a forged WELCOME leaves the pending handshake
   * as it was and the real WELCOME can still complete it. */
  lc__hs t = *hs;
  uint8_t k[32], payload[8];
  int rc = LC_EAUTH;
  sodium_memzero(keys, sizeof *keys);
  if (in->receiver_index != t.local_index)
    goto out;
  hs_mix_indices(&t, in->sender_index, in->receiver_index);
  memcpy(t.re_pk, in->ephemeral, LC_KEY_BYTES);
  /* <- e */
  hs_mix_hash(&t, t.re_pk, LC_KEY_BYTES);
  /* ee */
  if ((rc = hs_mix_dh(&t, t.e_sk, t.re_pk, NULL)) != 0)
    goto out;
  /* se */
  if ((rc = hs_mix_dh(&t, t.s_x_sk, t.re_pk, k)) != 0)
    goto out;
  if ((rc = hs_open(&t, k, in->sealed_payload, LC_WELCOME_PAYLOAD_BYTES,
                    payload)) != 0)
    goto out;
  hs_split(&t, keys, 1);
  *instance = crypto_get_u64le(payload);
  lc__hs_wipe(hs);
  rc = 0;
out:
  lc__hs_wipe(&t);
  sodium_memzero(k, sizeof k);
  sodium_memzero(payload, sizeof payload);
  return rc;
}

void lc__hs_wipe(lc__hs *hs) {
  sodium_memzero(hs, sizeof *hs);
}

/* ---- sealing --------------------------------------------------------- */

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

/* nonce = 4 zero bytes || pn LE; ad = index LE || pn LE */
static void seal_nonce_ad(uint8_t nonce[LC_AEAD_NONCE_BYTES], uint8_t ad[12],
                          uint32_t index, uint64_t pn) {
  memset(nonce, 0, 4);
  crypto_put_u64le(nonce + 4, pn);
  crypto_put_u32le(ad, index);
  crypto_put_u64le(ad + 4, pn);
}

int lc__seal(lc__keypair *kp, uint64_t pn, const uint8_t *pt, size_t pt_len,
             uint8_t *out) {
  uint8_t nonce[LC_AEAD_NONCE_BYTES], ad[12];
  unsigned long long clen = 0;
  if (kp->sealed_any && pn <= kp->last_sealed_pn)
    return LC_ESTATE; /* the nonce would repeat */
  if (pt_len > (size_t)INT_MAX - LC_TAG_BYTES)
    return LC_ETOOBIG;
  seal_nonce_ad(nonce, ad, kp->remote_index, pn);
  if (crypto_aead_chacha20poly1305_ietf_encrypt(out, &clen, pt, pt_len, ad,
                                                sizeof ad, NULL, nonce,
                                                kp->keys.send_key) != 0)
    return LC_ECRYPTO;
  kp->sealed_any = 1;
  kp->last_sealed_pn = pn;
  kp->send_count++;
  return (int)clen;
}

static size_t replay_slot(uint64_t pn) {
  return (size_t)(pn % LC_REPLAY_WINDOW);
}

/* Can pn still be accepted?  Cheap, so it runs before the AEAD. */
static int replay_check(const lc__keypair *kp, uint64_t pn) {
  if (!kp->recv_any || pn > kp->recv_max)
    return 0;
  if (kp->recv_max - pn >= LC_REPLAY_WINDOW)
    return LC_EREPLAY; /* too old to tell */
  size_t s = replay_slot(pn);
  return (kp->recv_bitmap[s / 64] >> (s % 64)) & 1 ? LC_EREPLAY : 0;
}

/* Records pn as accepted; only after its tag verified, so a forged packet
 * can neither mark a number nor move the window.  The bitmap is a ring
 * indexed by pn mod LC_REPLAY_WINDOW covering [recv_max -
 * LC_REPLAY_WINDOW + 1, recv_max]; moving recv_max up clears the slots of
 * the numbers it skips, which is where the ones leaving the window were. */
static void replay_update(lc__keypair *kp, uint64_t pn) {
  if (!kp->recv_any) {
    memset(kp->recv_bitmap, 0, sizeof kp->recv_bitmap);
    kp->recv_max = pn;
    kp->recv_any = 1;
  } else if (pn > kp->recv_max) {
    if (pn - kp->recv_max >= LC_REPLAY_WINDOW) {
      memset(kp->recv_bitmap, 0, sizeof kp->recv_bitmap);
    } else {
      for (uint64_t q = kp->recv_max + 1; q < pn; q++) {
        size_t s = replay_slot(q);
        kp->recv_bitmap[s / 64] &= ~((uint64_t)1 << (s % 64));
      }
    }
    kp->recv_max = pn;
  }
  size_t s = replay_slot(pn);
  kp->recv_bitmap[s / 64] |= (uint64_t)1 << (s % 64);
}

int lc__open(lc__keypair *kp, uint64_t pn, const uint8_t *ct, size_t ct_len,
             uint8_t *out) {
  uint8_t nonce[LC_AEAD_NONCE_BYTES], ad[12];
  unsigned long long mlen = 0;
  if (ct_len < LC_TAG_BYTES)
    return LC_ETRUNC;
  if (ct_len - LC_TAG_BYTES > (size_t)INT_MAX)
    return LC_ETOOBIG;
  int rc = replay_check(kp, pn);
  if (rc != 0)
    return rc;
  seal_nonce_ad(nonce, ad, kp->local_index, pn);
  if (crypto_aead_chacha20poly1305_ietf_decrypt(out, &mlen, NULL, ct, ct_len,
                                                ad, sizeof ad, nonce,
                                                kp->keys.recv_key) != 0)
    return LC_EAUTH;
  replay_update(kp, pn);
  return (int)mlen;
}
