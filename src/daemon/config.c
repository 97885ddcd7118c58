/* config.c: lanchatd's settings from flags and a `key = value` file (see
 * config.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
  S_DATA_DIR,
  S_NICK,
  S_BIND,
  S_PORT,
  S_DISCOVERY_PORT,
  S_BROADCAST,
  S_PEER,
  S_ANNOUNCE_INTERVAL,
  S_CONFIG,
  S_LOG_LEVEL,
  S_FOREGROUND,
  S_INTERFACES,
  S_PASSPHRASE_FILE,
  S_NO_READ_RECEIPTS,
  S_DOWNLOADS,
  S_AUTO_ACCEPT,
};

static const struct {
  const char *name;
  int is_switch;
} settings[] = {
    [S_DATA_DIR] = {"data-dir", 0},
    [S_NICK] = {"nick", 0},
    [S_BIND] = {"bind", 0},
    [S_PORT] = {"port", 0},
    [S_DISCOVERY_PORT] = {"discovery-port", 0},
    [S_BROADCAST] = {"broadcast", 0},
    [S_PEER] = {"peer", 0},
    [S_ANNOUNCE_INTERVAL] = {"announce-interval", 0},
    [S_CONFIG] = {"config", 0},
    [S_LOG_LEVEL] = {"log-level", 0},
    [S_FOREGROUND] = {"foreground", 1},
    [S_INTERFACES] = {"interfaces", 0},
    [S_PASSPHRASE_FILE] = {"passphrase-file", 0},
    [S_NO_READ_RECEIPTS] = {"no-read-receipts", 1},
    [S_DOWNLOADS] = {"downloads", 0},
    [S_AUTO_ACCEPT] = {"auto-accept", 0},
};
#define N_SETTINGS (sizeof settings / sizeof settings[0])

static int setting_index(const char *name) {
  for (size_t i = 0; i < N_SETTINGS; i++)
    if (strcmp(settings[i].name, name) == 0)
      return (int)i;
  return -1;
}

int lcd_config_is_switch(const char *name) {
  int i = setting_index(name);
  return i < 0 ? -1 : settings[i].is_switch;
}

void lcd_config_init(lcd_config *c) {
  memset(c, 0, sizeof *c);
  c->log_level = 1;
}

void lcd_config_free(lcd_config *c) {
  free(c->data_dir);
  free(c->nick);
  free(c->bind_v4);
  free(c->bind_v6);
  free(c->interfaces);
  free(c->passphrase_file);
  free(c->config);
  free(c->downloads);
  for (size_t i = 0; i < c->n_broadcast; i++)
    free(c->broadcast[i]);
  for (size_t i = 0; i < c->n_peer; i++)
    free(c->peer[i]);
  memset(c, 0, sizeof *c);
}

int lcd_parse_size(const char *s, uint64_t *out) {
  const char *p = s;
  uint64_t v = 0;
  if (*p < '0' || *p > '9')
    return -1;
  for (; *p >= '0' && *p <= '9'; p++) {
    if (v > (UINT64_C(1) << 62) / 10)
      return -1;
    v = v * 10 + (uint64_t)(*p - '0');
  }
  int shift = 0;
  switch (*p) {
  case 'k':
  case 'K':
    shift = 10;
    break;
  case 'm':
  case 'M':
    shift = 20;
    break;
  case 'g':
  case 'G':
    shift = 30;
    break;
  case 't':
  case 'T':
    shift = 40;
    break;
  }
  if (shift) {
    p++;
    if (!strcmp(p, "iB") || !strcmp(p, "B"))
      p += strlen(p);
  }
  if (*p || v > (UINT64_C(1) << (62 - shift)))
    return -1;
  *out = v << shift;
  return 0;
}

int lcd_log_level(const char *name) {
  static const char *const names[] = {"error", "warning", "notice", "debug"};
  for (int i = 0; i < 4; i++)
    if (strcmp(name, names[i]) == 0)
      return i;
  return -1;
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (err && errlen)
    vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return -1;
}

static int set_str(char **slot, const char *v) {
  char *d = strdup(v);
  if (!d)
    return -1;
  free(*slot);
  *slot = d;
  return 0;
}

static int parse_port(const char *v, uint16_t *out) {
  char *end;
  errno = 0;
  long n = strtol(v, &end, 10);
  if (errno || end == v || *end || n < 0 || n > 65535)
    return -1;
  *out = (uint16_t)n;
  return 0;
}

int lcd_config_set(lcd_config *c, const char *name, const char *value,
                   int from_flag, char *err, size_t errlen) {
  int i = setting_index(name);
  if (i < 0)
    return fail(err, errlen, "unknown setting '%s'", name);
  if (settings[i].is_switch) {
    /* in a file: "foreground = yes|no|true|false|1|0" */
    int on = 1;
    if (value) {
      if (!strcmp(value, "yes") || !strcmp(value, "true") ||
          !strcmp(value, "1"))
        on = 1;
      else if (!strcmp(value, "no") || !strcmp(value, "false") ||
               !strcmp(value, "0"))
        on = 0;
      else
        return fail(err, errlen, "%s: expected yes or no, not '%s'", name,
                    value);
    }
    value = on ? "1" : "0";
  } else if (!value) {
    return fail(err, errlen, "%s needs a value", name);
  }
  uint64_t bit = 1ull << i;
  if (from_flag) {
    /* flags are read before the file: a setting given as a flag (even a
     * repeatable one) makes the file's lines for it ignored */
    c->set_by_flag |= bit;
  } else if (c->set_by_flag & bit) {
    return 0;
  }
  if (i == S_CONFIG && !from_flag)
    return fail(err, errlen, "config cannot be set inside a config file");

  int rc = 0;
  switch (i) {
  case S_DATA_DIR:
    if (!*value)
      return fail(err, errlen, "data-dir: empty");
    rc = set_str(&c->data_dir, value);
    break;
  case S_NICK:
    if (!*value)
      return fail(err, errlen, "nick: empty");
    rc = set_str(&c->nick, value);
    break;
  case S_BIND:
    /* one address per family; the family not named is not used */
    if (strchr(value, ':')) {
      rc = set_str(&c->bind_v6, value);
      if (rc == 0 && !c->bind_v4)
        rc = set_str(&c->bind_v4, "");
    } else {
      rc = set_str(&c->bind_v4, value);
      if (rc == 0 && !c->bind_v6)
        rc = set_str(&c->bind_v6, "");
    }
    break;
  case S_PORT:
    if (parse_port(value, &c->port))
      return fail(err, errlen, "port: expected 0..65535, not '%s'", value);
    break;
  case S_DISCOVERY_PORT:
    if (parse_port(value, &c->discovery_port) || c->discovery_port == 0)
      return fail(err, errlen, "discovery-port: expected 1..65535, not '%s'",
                  value);
    break;
  case S_BROADCAST:
  case S_PEER: {
    char **list = i == S_BROADCAST ? c->broadcast : c->peer;
    size_t *n = i == S_BROADCAST ? &c->n_broadcast : &c->n_peer;
    if (!*value || strchr(value, ','))
      return fail(err, errlen, "%s: one address each time, not '%s'", name,
                  value);
    if (*n >= LCD_LIST_MAX)
      return fail(err, errlen, "%s: at most %d", name, LCD_LIST_MAX);
    list[*n] = strdup(value);
    if (!list[*n])
      return fail(err, errlen, "out of memory");
    (*n)++;
    break;
  }
  case S_ANNOUNCE_INTERVAL: {
    char *end;
    errno = 0;
    double s = strtod(value, &end);
    if (errno || end == value || *end || !isfinite(s) || s < 1 || s > 3600)
      return fail(err, errlen,
                  "announce-interval: expected 1..3600 seconds, not '%s'",
                  value);
    c->announce_interval_ms = (uint32_t)(s * 1000 + 0.5);
    break;
  }
  case S_CONFIG:
    rc = set_str(&c->config, value);
    break;
  case S_LOG_LEVEL:
    if (lcd_log_level(value) >= 0) {
      c->log_level = lcd_log_level(value);
    } else {
      return fail(err, errlen,
                  "log-level: expected error, warning, notice or debug, not "
                  "'%s'",
                  value);
    }
    break;
  case S_FOREGROUND:
    c->foreground = value[0] == '1';
    break;
  case S_INTERFACES:
    rc = set_str(&c->interfaces, value);
    break;
  case S_PASSPHRASE_FILE:
    rc = set_str(&c->passphrase_file, value);
    break;
  case S_NO_READ_RECEIPTS:
    c->no_read_receipts = value[0] == '1';
    break;
  case S_DOWNLOADS:
    if (!*value)
      return fail(err, errlen, "downloads: empty");
    rc = set_str(&c->downloads, value);
    break;
  case S_AUTO_ACCEPT:
    if (lcd_parse_size(value, &c->auto_accept_bytes) != 0)
      return fail(err, errlen,
                  "auto-accept: expected a size in bytes (digits, with an "
                  "optional K, M, G or T), not '%s'",
                  value);
    break;
  }
  return rc == 0 ? 0 : fail(err, errlen, "out of memory");
}

static int is_space(char ch) {
  return ch == ' ' || ch == '\t' || ch == '\r';
}

/* A message quotes the file's text: anything but printable ASCII (a
 * binary file's bytes, an escape sequence meant for the terminal) is shown
 * as '?'.  Every name and value lanchatd accepts is ASCII but the nick,
 * which no message quotes. */
static void printable(char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
      *s = '?';
}

int lcd_config_parse(lcd_config *c, const char *text, size_t len, char *err,
                     size_t errlen) {
  size_t pos = 0;
  int line = 0;
  char buf[4096], msg[512];
  /* a binary file is said to be one: its first NUL byte is reported
   * rather than whatever its first line looks like */
  int binary = memchr(text, '\0', len) != NULL;
  while (pos < len) {
    line++;
    const char *start = text + pos;
    const char *nl = memchr(start, '\n', len - pos);
    size_t n = nl ? (size_t)(nl - start) : len - pos;
    pos += n + (nl ? 1 : 0);
    if (binary && memchr(start, '\0', n))
      return fail(err, errlen, "line %d: a NUL byte (not a text file?)", line);
    if (binary)
      continue;
    if (n >= sizeof buf)
      return fail(err, errlen, "line %d: longer than %zu bytes", line,
                  sizeof buf - 1);
    memcpy(buf, start, n);
    buf[n] = '\0';
    char *p = buf;
    while (is_space(*p))
      p++;
    if (*p == '\0' || *p == '#')
      continue;
    char *eq = strchr(p, '=');
    char *key_end = eq ? eq : p + strlen(p);
    while (key_end > p && is_space(key_end[-1]))
      key_end--;
    *key_end = '\0';
    char *value = NULL;
    if (eq) {
      value = eq + 1;
      while (is_space(*value))
        value++;
      char *e = value + strlen(value);
      while (e > value && is_space(e[-1]))
        e--;
      *e = '\0';
    }
    int sw = lcd_config_is_switch(p);
    int bad = sw < 0 || (!value && !sw) ||
              lcd_config_set(c, p, value, 0, msg, sizeof msg) != 0;
    if (!bad)
      continue;
    if (sw < 0)
      fail(err, errlen, "line %d: unknown setting '%s'", line, p);
    else if (!value && !sw)
      fail(err, errlen, "line %d: expected '%s = value'", line, p);
    else
      fail(err, errlen, "line %d: %s", line, msg);
    if (err && errlen)
      printable(err);
    return -1;
  }
  return 0;
}

int lcd_config_load(lcd_config *c, const char *path, int missing_ok, char *err,
                    size_t errlen) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    if (errno == ENOENT && missing_ok)
      return 0;
    if (errno == EACCES)
      return fail(err, errlen, "%s: %s; make it readable: chmod u+r %s", path,
                  strerror(errno), path);
    return fail(err, errlen, "%s: %s", path, strerror(errno));
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > 1 << 20) {
    close(fd);
    return fail(err, errlen, "%s: not a regular file of at most 1 MiB", path);
  }
  size_t cap = (size_t)st.st_size, len = 0;
  char *buf = malloc(cap + 1);
  if (!buf) {
    close(fd);
    return fail(err, errlen, "out of memory");
  }
  while (len < cap) {
    ssize_t r = read(fd, buf + len, cap - len);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    len += (size_t)r;
  }
  close(fd);
  char msg[600];
  int rc = lcd_config_parse(c, buf, len, msg, sizeof msg);
  free(buf);
  /* the file is left as it is; the user fixes it */
  if (rc != 0)
    return fail(err, errlen,
                "%s: %s; fix or remove that line (the file holds 'name = "
                "value' lines, the names of lanchatd's long options without "
                "their dashes: lanchatd --help)",
                path, msg);
  return 0;
}
