/* paths.c: the data folder's default and the names of the files in it (see
 * paths.h). */
#include "paths.h"

#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

static int set_err(char *err, size_t errlen, const char *msg) {
  if (err && errlen)
    snprintf(err, errlen, "%s", msg);
  return -1;
}

int lc_paths_data_dir(const char *dir, char *out, size_t outlen, char *err,
                      size_t errlen) {
  const char *env;
  int n;
  if (dir && *dir)
    n = snprintf(out, outlen, "%s", dir);
  else if ((env = getenv("LANCHAT_HOME")) && *env)
    n = snprintf(out, outlen, "%s", env);
  else if ((env = getenv("XDG_DATA_HOME")) && *env)
    n = snprintf(out, outlen, "%s/lanchat", env);
  else if ((env = getenv("HOME")) && *env)
    n = snprintf(out, outlen, "%s/.local/share/lanchat", env);
  else
    return set_err(err, errlen,
                   "no data folder: set --data-dir, LANCHAT_HOME or HOME");
  if (n < 0 || (size_t)n >= outlen)
    return set_err(err, errlen, "the data folder's path is too long");
  /* no trailing slashes, so that joined names look right */
  while (n > 1 && out[n - 1] == '/')
    out[--n] = '\0';
  return 0;
}

/* XDG_DOWNLOAD_DIR from user-dirs.dirs: a line XDG_DOWNLOAD_DIR="$HOME/x"
 * (the only forms xdg-user-dirs writes: "$HOME/..." or an absolute
 * path).  0 with the folder in out, or -1. */
static int user_dirs_download(const char *home, char *out, size_t outlen) {
  char path[4096];
  const char *cfg = getenv("XDG_CONFIG_HOME");
  int n = cfg && *cfg
              ? snprintf(path, sizeof path, "%s/user-dirs.dirs", cfg)
              : snprintf(path, sizeof path, "%s/.config/user-dirs.dirs", home);
  if (n < 0 || (size_t)n >= sizeof path)
    return -1;
  FILE *f = fopen(path, "re");
  if (!f)
    return -1;
  char line[4096];
  int rc = -1;
  while (rc != 0 && fgets(line, sizeof line, f)) {
    const char *key = "XDG_DOWNLOAD_DIR=\"";
    if (strncmp(line, key, strlen(key)) != 0)
      continue;
    char *v = line + strlen(key);
    char *end = strchr(v, '"');
    if (!end)
      continue;
    *end = '\0';
    if (!strcmp(v, "$HOME"))
      n = snprintf(out, outlen, "%s", home);
    else if (!strncmp(v, "$HOME/", 6))
      n = snprintf(out, outlen, "%s/%s", home, v + 6);
    else if (v[0] == '/')
      n = snprintf(out, outlen, "%s", v);
    else
      continue;
    if (n > 0 && (size_t)n < outlen)
      rc = 0;
  }
  fclose(f);
  return rc;
}

int lc_paths_downloads_dir(const char *data_dir, int explicit_data_dir,
                           char *out, size_t outlen) {
  const char *home = getenv("HOME"), *env = getenv("XDG_DOWNLOAD_DIR");
  char base[4096];
  int n;
  if (explicit_data_dir || !home || !*home)
    return lc_paths_join(data_dir, LC_DOWNLOADS_NAME, out, outlen);
  if (env && env[0] == '/')
    n = snprintf(base, sizeof base, "%s", env);
  else if (user_dirs_download(home, base, sizeof base) == 0)
    n = (int)strlen(base);
  else
    n = snprintf(base, sizeof base, "%s/Downloads", home);
  if (n < 0 || (size_t)n >= sizeof base)
    return -1;
  while (n > 1 && base[n - 1] == '/')
    base[--n] = '\0';
  n = snprintf(out, outlen, "%s/lanchat", base);
  return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

int lc_paths_join(const char *data_dir, const char *name, char *out,
                  size_t outlen) {
  int n = snprintf(out, outlen, "%s/%s", data_dir, name);
  return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

size_t lc_paths_socket_max(void) {
  struct sockaddr_un sa;
  return sizeof sa.sun_path;
}

int lc_paths_mkdirs(const char *path) {
  char buf[PATH_MAX];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
    return -ENAMETOOLONG;
  for (char *p = buf + 1;; p++) {
    if (*p != '/' && *p != '\0')
      continue;
    char ch = *p;
    *p = '\0';
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
      return -errno;
    *p = ch;
    if (!ch)
      break;
  }
  struct stat st;
  if (stat(path, &st) != 0)
    return -errno;
  return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

const char *lc_paths_shq(const char *s, char *buf, size_t cap) {
  if (*s && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                      "0123456789/._-+,:@%=") == strlen(s))
    return s;
  if (cap < 3)
    return s;
  size_t k = 0;
  buf[k++] = '\'';
  for (const char *p = s; *p && k + 5 < cap; p++) {
    if (*p == '\'') {
      memcpy(buf + k, "'\\''", 4);
      k += 4;
    } else {
      buf[k++] = *p;
    }
  }
  buf[k++] = '\'';
  buf[k] = '\0';
  return buf;
}

static const char *user_name(uid_t uid, char *buf, size_t cap) {
  struct passwd pw, *res = NULL;
  char tmp[1024];
  if (getpwuid_r(uid, &pw, tmp, sizeof tmp, &res) == 0 && res)
    snprintf(buf, cap, "%s, uid %u", res->pw_name, (unsigned)uid);
  else
    snprintf(buf, cap, "uid %u", (unsigned)uid);
  return buf;
}

/* This user's name for a command (its uid if it has none). */
static const char *own_name(char *buf, size_t cap) {
  struct passwd pw, *res = NULL;
  char tmp[1024];
  if (getpwuid_r(geteuid(), &pw, tmp, sizeof tmp, &res) == 0 && res &&
      strspn(res->pw_name,
             "abcdefghijklmnopqrstuvwxyz"
             "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == strlen(res->pw_name))
    snprintf(buf, cap, "%s", res->pw_name);
  else
    snprintf(buf, cap, "%u", (unsigned)geteuid());
  return buf;
}

int lc_paths_check_data_dir(const char *dir, char *msg, size_t msglen) {
  char q[PATH_MAX + 64], who[300], me[300], name[300];
  const char *qd = lc_paths_shq(dir, q, sizeof q);
  struct stat st;
  if (stat(dir, &st) != 0) {
    snprintf(msg, msglen, "the data folder %s: %s", dir, strerror(errno));
    return -1;
  }
  if (!S_ISDIR(st.st_mode)) {
    snprintf(msg, msglen,
             "the data folder %s is not a folder; move that file away, or "
             "choose another folder with --data-dir",
             dir);
    return -1;
  }
  /* Like ssh: a folder another user owns, or may change, could have its
   * identity or history swapped under us; refused rather than used. */
  if (st.st_uid != geteuid()) {
    snprintf(msg, msglen,
             "the data folder %s belongs to another user (%s), not to this "
             "one (%s); run lanchat as that user, or use a folder of your "
             "own (--data-dir DIR)",
             dir, user_name(st.st_uid, who, sizeof who),
             user_name(geteuid(), me, sizeof me));
    return -1;
  }
  /* lanchat run once as another user (sudo lanchatd) leaves files this
   * user cannot write, or that it should not trust */
  static const char *const files[] = {
      "identity.key", "history.db",  "history.db-wal", "history.db-shm",
      LC_LOCK_NAME,   LC_PEERS_NAME, LC_PROFILE_NAME,  LC_CONFIG_NAME,
      LC_SOCKET_NAME, LC_LOG_NAME,   LC_DOWNLOADS_NAME};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    char f[PATH_MAX];
    struct stat fst;
    if (lc_paths_join(dir, files[i], f, sizeof f) != 0 || lstat(f, &fst) != 0 ||
        fst.st_uid == geteuid())
      continue;
    snprintf(msg, msglen,
             "%s belongs to another user (%s), not to this one (%s); was "
             "lanchat run as that user? Give the data folder back: sudo chown "
             "-R %s %s",
             f, user_name(fst.st_uid, who, sizeof who),
             user_name(geteuid(), me, sizeof me), own_name(name, sizeof name),
             qd);
    return -1;
  }
  if (st.st_mode & 022) {
    snprintf(msg, msglen,
             "the data folder %s can be changed by other users (mode %04o), "
             "so it is not used; make it yours only: chmod 700 %s",
             dir, (unsigned)(st.st_mode & 07777), qd);
    return -1;
  }
  if (access(dir, W_OK | X_OK) != 0) {
    int e = errno;
    if (e == EROFS)
      snprintf(msg, msglen,
               "cannot write in the data folder %s: %s; choose a folder on a "
               "writable file system with --data-dir",
               dir, strerror(e));
    else
      snprintf(msg, msglen,
               "cannot write in the data folder %s: %s; make it writable: "
               "chmod u+rwx %s",
               dir, strerror(e), qd);
    return -1;
  }
  if (st.st_mode & 055) {
    snprintf(msg, msglen,
             "other users can list the data folder %s (mode %04o); chmod 700 "
             "%s keeps them out",
             dir, (unsigned)(st.st_mode & 07777), qd);
    return 1;
  }
  return 0;
}
