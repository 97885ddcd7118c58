/* directory.c: the peers lanchatd has known and the resolution of a peer's
 * name (see directory.h). */
#include "directory.h"

#include "json.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIR_MAX_PEERS 100000
#define DIR_MAX_FILE (64u << 20)

void lcd_dir_init(lcd_directory *d) {
  memset(d, 0, sizeof *d);
}

void lcd_dir_free(lcd_directory *d) {
  free(d->v);
  memset(d, 0, sizeof *d);
}

lcd_peer *lcd_dir_find(lcd_directory *d, const uint8_t key[LC_KEY_BYTES]) {
  for (size_t i = 0; i < d->n; i++)
    if (memcmp(d->v[i].info.key, key, LC_KEY_BYTES) == 0)
      return &d->v[i];
  return NULL;
}

static lcd_peer *dir_add(lcd_directory *d, const uint8_t key[LC_KEY_BYTES]) {
  lcd_peer *p = lcd_dir_find(d, key);
  if (p)
    return p;
  if (d->n >= DIR_MAX_PEERS)
    return NULL;
  if (d->n == d->cap) {
    size_t cap = d->cap ? d->cap * 2 : 16;
    lcd_peer *v = realloc(d->v, cap * sizeof *v);
    if (!v)
      return NULL;
    d->v = v;
    d->cap = cap;
  }
  p = &d->v[d->n++];
  memset(p, 0, sizeof *p);
  memcpy(p->info.key, key, LC_KEY_BYTES);
  d->dirty = 1;
  return p;
}

void lcd_dir_update(lcd_directory *d, const lc_peer_info *info, int online) {
  lcd_peer *p = dir_add(d, info->key);
  if (!p)
    return;
  p->info = *info;
  p->online = online;
  if (!online)
    p->info.presence = LC_PRESENCE_OFFLINE;
  d->dirty = 1;
}

void lcd_dir_touch(lcd_directory *d, const uint8_t key[LC_KEY_BYTES]) {
  (void)dir_add(d, key);
}

static int is_hex(const char *s) {
  if (!*s)
    return 0;
  for (; *s; s++)
    if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') ||
          (*s >= 'A' && *s <= 'F')))
      return 0;
  return 1;
}

int lcd_dir_resolve(lcd_directory *d, const char *what,
                    uint8_t key[LC_KEY_BYTES], size_t *matches,
                    size_t max_matches) {
  size_t len = strlen(what), found = 0, online = 0, online_at = 0;
  if (len == LC_KEY_HEX_LEN && lc_key_from_hex(key, what) == 0)
    return 1;
  /* a prefix of an id */
  if (len >= 8 && is_hex(what)) {
    for (size_t i = 0; i < d->n; i++) {
      char hex[LC_KEY_HEX_LEN + 1];
      lc_key_to_hex(hex, d->v[i].info.key);
      if (strncasecmp(hex, what, len) == 0) {
        if (matches && found < max_matches)
          matches[found] = i;
        found++;
        memcpy(key, d->v[i].info.key, LC_KEY_BYTES);
      }
    }
    if (found)
      return found == 1 ? 1 : -(int)found;
  }
  /* a nickname: exactly, else ignoring case */
  for (int pass = 0; pass < 2 && !found; pass++) {
    for (size_t i = 0; i < d->n; i++) {
      const char *nick = d->v[i].info.nickname;
      if (!*nick ||
          (pass == 0 ? strcmp(nick, what) : strcasecmp(nick, what)) != 0)
        continue;
      if (matches && found < max_matches)
        matches[found] = i;
      found++;
      if (d->v[i].online) {
        online++;
        online_at = i;
      }
      memcpy(key, d->v[i].info.key, LC_KEY_BYTES);
    }
  }
  if (found > 1 && online == 1) {
    memcpy(key, d->v[online_at].info.key, LC_KEY_BYTES);
    return 1;
  }
  return found == 1 ? 1 : -(int)found;
}

/* ---- peers.json -------------------------------------------------------- */

static int read_file(const char *path, char **out, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return -errno;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return -EINVAL; /* "Invalid argument": not a regular file */
  }
  if ((uint64_t)st.st_size > DIR_MAX_FILE) {
    close(fd);
    return -EFBIG;
  }
  char *buf = malloc((size_t)st.st_size + 1);
  size_t n = 0;
  if (!buf) {
    close(fd);
    return -ENOMEM;
  }
  while (n < (size_t)st.st_size) {
    ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    n += (size_t)r;
  }
  close(fd);
  *out = buf;
  *len = n;
  return 0;
}

static void copy_str(char *dst, size_t cap, const char *src) {
  if (!src)
    return;
  size_t n = strlen(src);
  if (n >= cap)
    return; /* longer than a peer could announce: ignore it */
  memcpy(dst, src, n + 1);
}

int lcd_dir_load(lcd_directory *d, const char *path, char *err, size_t errlen) {
  char *buf = NULL;
  size_t len = 0;
  int rc = read_file(path, &buf, &len);
  if (rc == -ENOENT)
    return 0;
  if (rc < 0) {
    snprintf(err, errlen, "%s: %s", path,
             rc == -EINVAL ? "not a regular file" : strerror(-rc));
    return -1;
  }
  char perr[200];
  lcj *root = lcj_parse(buf, len, perr, sizeof perr);
  free(buf);
  lcj *peers = lcj_get(root, "peers");
  if (!root || !lcj_is_arr(peers)) {
    char bad[4200];
    snprintf(bad, sizeof bad, "%s.bad", path);
    rename(path, bad);
    snprintf(err, errlen, "%s: %s; set aside as %s", path,
             root ? "no peers array" : perr, bad);
    lcj_free(root);
    return -1;
  }
  for (size_t i = 0; i < lcj_len(peers); i++) {
    lcj *e = lcj_at(peers, i);
    uint8_t key[LC_KEY_BYTES];
    const char *id = lcj_get_str(e, "id");
    if (!id || lc_key_from_hex(key, id) != 0)
      continue; /* one bad entry costs only itself */
    lcd_peer *p = dir_add(d, key);
    if (!p)
      break;
    copy_str(p->info.nickname, sizeof p->info.nickname, lcj_get_str(e, "nick"));
    copy_str(p->info.status, sizeof p->info.status, lcj_get_str(e, "status"));
    copy_str(p->info.address, sizeof p->info.address,
             lcj_get_str(e, "address"));
    lcj *seen = lcj_get(e, "last_seen_ms");
    if (lcj_is_int(seen) && lcj_ival(seen) > 0)
      p->info.last_seen_ms = (uint64_t)lcj_ival(seen);
    p->info.presence = LC_PRESENCE_OFFLINE;
    p->online = 0;
  }
  lcj_free(root);
  d->dirty = 0;
  return 0;
}

int lcd_dir_save(lcd_directory *d, const char *path) {
  lcj *root = lcj_obj(), *peers = lcj_arr();
  lcj_set_int(root, "version", 1);
  for (size_t i = 0; i < d->n; i++) {
    const lc_peer_info *p = &d->v[i].info;
    char hex[LC_KEY_HEX_LEN + 1];
    lc_key_to_hex(hex, p->key);
    lcj *e = lcj_obj();
    lcj_set_str(e, "id", hex);
    lcj_set_str(e, "nick", p->nickname);
    lcj_set_str(e, "status", p->status);
    lcj_set_str(e, "address", p->address);
    lcj_set_int(e, "last_seen_ms", (int64_t)p->last_seen_ms);
    lcj_push(peers, e);
  }
  lcj_set(root, "peers", peers);
  char *text = lcj_dump(root);
  lcj_free(root);
  if (!text)
    return -ENOMEM;
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int rc = 0;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    rc = -errno;
  } else {
    size_t len = strlen(text), off = 0;
    while (off < len) {
      ssize_t w = write(fd, text + off, len - off);
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0) {
        rc = -errno;
        break;
      }
      off += (size_t)w;
    }
    if (rc == 0 && write(fd, "\n", 1) != 1)
      rc = -EIO;
    if (rc == 0 && fsync(fd) != 0)
      rc = -errno;
    if (close(fd) != 0 && rc == 0)
      rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0)
      rc = -errno;
    if (rc != 0)
      unlink(tmp);
  }
  free(text);
  if (rc == 0)
    d->dirty = 0;
  return rc;
}
