/* paths.c: the data folder's default and the names of the files in it (see
 * paths.h). */
#include "paths.h"

#include <errno.h>
#include <limits.h>
#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

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
