/* paths.c: the data folder's default and the names of the files in it (see
 * paths.h). */
#include "paths.h"

#include <stdio.h>
#include <stdlib.h>
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

int lc_paths_join(const char *data_dir, const char *name, char *out,
                  size_t outlen) {
  int n = snprintf(out, outlen, "%s/%s", data_dir, name);
  return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

size_t lc_paths_socket_max(void) {
  struct sockaddr_un sa;
  return sizeof sa.sun_path;
}
