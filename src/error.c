/* error.c: lc_strerror and lc_err_name, generated from the one error table
 * in lanchat.h (LC_ERRNO_MAP) plus the system's errno messages. */
#include <string.h>

#include "lanchat.h"

const char *lc_strerror(int err) {
  switch (err) {
#define LC__ERR_MSG(name, value, msg)                                          \
  case LC_##name:                                                              \
    return msg;
    LC_ERRNO_MAP(LC__ERR_MSG)
#undef LC__ERR_MSG
  case 0:
    return "success";
  default:
    break;
  }
  if (err < 0 && err > -4096)
    return strerror(-err);
  return "unknown error";
}

const char *lc_err_name(int err) {
  switch (err) {
#define LC__ERR_NAME(name, value, msg)                                         \
  case LC_##name:                                                              \
    return "LC_" #name;
    LC_ERRNO_MAP(LC__ERR_NAME)
#undef LC__ERR_NAME
  case 0:
    return "OK";
#define LC__SYS(e)                                                             \
  case -(e):                                                                   \
    return #e;
    LC__SYS(EPERM)
    LC__SYS(ENOENT)
    LC__SYS(EINTR)
    LC__SYS(EIO)
    LC__SYS(EBADF)
    LC__SYS(EAGAIN)
    LC__SYS(ENOMEM)
    LC__SYS(EACCES)
    LC__SYS(EEXIST)
    LC__SYS(ENOTDIR)
    LC__SYS(EISDIR)
    LC__SYS(EINVAL)
    LC__SYS(EMFILE)
    LC__SYS(ENOSPC)
    LC__SYS(EROFS)
    LC__SYS(EPIPE)
    LC__SYS(EADDRINUSE)
    LC__SYS(EADDRNOTAVAIL)
    LC__SYS(ENETUNREACH)
    LC__SYS(ECONNREFUSED)
    LC__SYS(EHOSTUNREACH)
    LC__SYS(EMSGSIZE)
    LC__SYS(ETIMEDOUT)
#undef LC__SYS
  default:
    return "UNKNOWN";
  }
}

const char *lc_version_string(void) {
#define LC__STR2(x) #x
#define LC__STR(x) LC__STR2(x)
  return LC__STR(LC_VERSION_MAJOR) "." LC__STR(LC_VERSION_MINOR) "." LC__STR(
      LC_VERSION_PATCH);
}
