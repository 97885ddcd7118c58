/* test_daemon.c: lanchatd's pure parts, without a daemon or a socket:
 * its settings (src/daemon/config.h: flags over the file for single,
 * repeatable and switch settings, every value's bounds, every kind of bad
 * line with its line number, hostile file contents, loading files that are
 * missing, not regular or too big), its known-peers table
 * (src/daemon/directory.h: update, touch, find, resolving ids, id prefixes
 * and nicknames, peers.json's round trip and a malformed or partly bad
 * peers.json) and the JSON layer under both (src/common/json.h: parse
 * errors with their line and column, refused NUL bytes, round trips,
 * ownership and NULL arguments). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "directory.h"
#include "json.h"
#include "lanchat.h"

/* ---- helpers ----------------------------------------------------------- */

/* err begins with "line N: " (what lcd_config_parse promises). */
static void assert_line_error(const char *err, int line) {
  char want[32];
  snprintf(want, sizeof want, "line %d: ", line);
  if (strncmp(err, want, strlen(want)) != 0)
    fail_msg("expected an error starting with '%s', got '%s'", want, err);
}

static void assert_contains(const char *hay, const char *needle) {
  if (!hay || !strstr(hay, needle))
    fail_msg("expected '%s' to contain '%s'", hay ? hay : "(null)", needle);
}

static int parse_str(lcd_config *c, const char *text, char *err,
                     size_t errlen) {
  return lcd_config_parse(c, text, strlen(text), err, errlen);
}

static void write_file(const char *path, const char *data, size_t len) {
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(data, 1, len, fp), len);
  assert_int_equal(fclose(fp), 0);
}

/* The whole file in a malloc'd, NUL-terminated buffer, or NULL. */
static char *read_all(const char *path, size_t *len_out) {
  FILE *fp = fopen(path, "rb");
  if (!fp)
    return NULL;
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap + 1);
  for (;;) {
    size_t r = fread(buf + len, 1, cap - len, fp);
    len += r;
    if (len < cap)
      break;
    cap *= 2;
    buf = realloc(buf, cap + 1);
  }
  fclose(fp);
  buf[len] = '\0';
  if (len_out)
    *len_out = len;
  return buf;
}

static int exists(const char *path) {
  struct stat st;
  return lstat(path, &st) == 0;
}

/* Removes a folder and what is in it (the tests make one level, at most
 * one more). */
static void rm_tree(const char *dir) {
  DIR *dp = opendir(dir);
  if (!dp)
    return;
  struct dirent *de;
  while ((de = readdir(dp)) != NULL) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
      continue;
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
    struct stat st;
    if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
      rm_tree(p);
    else
      unlink(p);
  }
  closedir(dp);
  rmdir(dir);
}

typedef struct {
  char dir[64];
  char path[128]; /* <dir>/peers.json */
} td_fixture;

static int td_setup(void **state) {
  td_fixture *f = calloc(1, sizeof *f);
  if (!f)
    return -1;
  snprintf(f->dir, sizeof f->dir, "/tmp/lc-test-daemon-XXXXXX");
  if (!mkdtemp(f->dir)) {
    free(f);
    return -1;
  }
  snprintf(f->path, sizeof f->path, "%s/peers.json", f->dir);
  *state = f;
  return 0;
}

static int td_teardown(void **state) {
  td_fixture *f = *state;
  rm_tree(f->dir);
  assert_false(exists(f->dir));
  free(f);
  return 0;
}

/* A key whose hex begins with prefix and continues with fill. */
static void key_hex(uint8_t key[LC_KEY_BYTES], const char *prefix, char fill) {
  char hex[LC_KEY_HEX_LEN + 1];
  size_t n = strlen(prefix);
  memset(hex, fill, LC_KEY_HEX_LEN);
  hex[LC_KEY_HEX_LEN] = '\0';
  memcpy(hex, prefix, n);
  assert_int_equal(lc_key_from_hex(key, hex), 0);
}

static lc_peer_info peer_info(const char *prefix, char fill, const char *nick,
                              const char *status, const char *addr,
                              uint64_t seen) {
  lc_peer_info p;
  memset(&p, 0, sizeof p);
  key_hex(p.key, prefix, fill);
  snprintf(p.nickname, sizeof p.nickname, "%s", nick);
  snprintf(p.status, sizeof p.status, "%s", status);
  snprintf(p.address, sizeof p.address, "%s", addr);
  p.presence = LC_PRESENCE_ONLINE;
  p.last_seen_ms = seen;
  return p;
}

/* xorshift64*: the same hostile inputs on every run. */
static uint64_t rng_next(uint64_t *s) {
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1Dull;
}

/* ---- config: names, defaults ------------------------------------------- */

static void test_config_defaults_and_names(void **state) {
  lcd_config c;
  lcd_config_init(&c);
  assert_int_equal(c.log_level, 1);
  assert_null(c.data_dir);
  assert_null(c.nick);
  assert_null(c.bind_v4);
  assert_null(c.bind_v6);
  assert_int_equal(c.port, 0);
  assert_int_equal(c.discovery_port, 0);
  assert_int_equal(c.announce_interval_ms, 0);
  assert_int_equal(c.n_broadcast, 0);
  assert_int_equal(c.n_peer, 0);
  assert_int_equal(c.foreground, 0);
  assert_int_equal(c.no_read_receipts, 0);
  assert_int_equal(c.set_by_flag, 0);
  lcd_config_free(&c);

  assert_int_equal(lcd_config_is_switch("foreground"), 1);
  assert_int_equal(lcd_config_is_switch("no-read-receipts"), 1);
  const char *valued[] = {
      "data-dir",       "nick",       "bind",       "port",
      "discovery-port", "broadcast",  "peer",       "announce-interval",
      "config",         "log-level",  "interfaces", "passphrase-file",
      "downloads",      "auto-accept"};
  for (size_t i = 0; i < sizeof valued / sizeof valued[0]; i++)
    assert_int_equal(lcd_config_is_switch(valued[i]), 0);
  assert_int_equal(lcd_config_is_switch("help"), -1);
  assert_int_equal(lcd_config_is_switch("Foreground"), -1);
  assert_int_equal(lcd_config_is_switch("--foreground"), -1);
  assert_int_equal(lcd_config_is_switch(""), -1);

  assert_int_equal(lcd_log_level("error"), 0);
  assert_int_equal(lcd_log_level("warning"), 1);
  assert_int_equal(lcd_log_level("notice"), 2);
  assert_int_equal(lcd_log_level("debug"), 3);
  assert_int_equal(lcd_log_level("DEBUG"), -1);
  assert_int_equal(lcd_log_level("info"), -1);
  assert_int_equal(lcd_log_level(""), -1);
  assert_int_equal(lcd_log_level("debug "), -1);
}

/* ---- config: files and voice messages ----------------------------------- */

static void test_config_transfers(void **state) {
  lcd_config c;
  char err[700] = "";
  uint64_t v = 7;
  /* sizes: plain bytes, K/M/G/T in powers of 1024, any case, KiB/KB */
  const struct {
    const char *text;
    uint64_t want;
  } good[] = {{"0", 0},
              {"1", 1},
              {"1048576", 1048576},
              {"1K", 1024},
              {"10k", 10240},
              {"10M", 10485760},
              {"2MiB", 2097152},
              {"3MB", 3145728},
              {"1g", UINT64_C(1) << 30},
              {"4T", UINT64_C(4) << 40},
              {"4611686018427387904", UINT64_C(1) << 62}};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    assert_int_equal(lcd_parse_size(good[i].text, &v), 0);
    assert_true(v == good[i].want);
  }
  const char *bad[] = {"",
                       "-1",
                       " 1",
                       "1 ",
                       "1.5M",
                       "M",
                       "1X",
                       "1Ki",
                       "1MiBs",
                       "0x10",
                       "1KK",
                       "4611686018427387905",
                       "99999999999999999999",
                       "4194305T"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    v = 7;
    assert_int_equal(lcd_parse_size(bad[i], &v), -1);
    assert_true(v == 7); /* untouched */
  }

  lcd_config_init(&c);
  assert_null(c.downloads);
  assert_true(c.auto_accept_bytes == 0);
  assert_int_equal(parse_str(&c,
                             "downloads = /srv/inbox\n"
                             "auto-accept = 10M\n",
                             err, sizeof err),
                   0);
  assert_string_equal(c.downloads, "/srv/inbox");
  assert_true(c.auto_accept_bytes == 10485760);
  /* the command line wins, as for every setting */
  lcd_config_free(&c);
  lcd_config_init(&c);
  assert_int_equal(
      lcd_config_set(&c, "downloads", "/home/u/in", 1, err, sizeof err), 0);
  assert_int_equal(lcd_config_set(&c, "auto-accept", "0", 1, err, sizeof err),
                   0);
  assert_int_equal(
      parse_str(&c, "downloads = /x\nauto-accept = 5M\n", err, sizeof err), 0);
  assert_string_equal(c.downloads, "/home/u/in");
  assert_true(c.auto_accept_bytes == 0);
  lcd_config_free(&c);
  /* bad values name their line */
  lcd_config_init(&c);
  assert_int_equal(parse_str(&c, "\nauto-accept = lots\n", err, sizeof err),
                   -1);
  assert_line_error(err, 2);
  assert_contains(err, "auto-accept");
  assert_int_equal(parse_str(&c, "downloads =\n", err, sizeof err), -1);
  assert_line_error(err, 1);
  assert_int_equal(parse_str(&c, "downloads\n", err, sizeof err), -1);
  assert_line_error(err, 1);
  lcd_config_free(&c);
}

/* ---- config: flags and the file ----------------------------------------- */

static void test_config_flags_win(void **state) {
  lcd_config c;
  char err[700] = "";
  lcd_config_init(&c);
  /* the command line, as lanchatd reads it: before the file */
  assert_int_equal(lcd_config_set(&c, "nick", "alice", 1, err, sizeof err), 0);
  assert_int_equal(lcd_config_set(&c, "port", "7000", 1, err, sizeof err), 0);
  assert_int_equal(
      lcd_config_set(&c, "broadcast", "10.0.0.255", 1, err, sizeof err), 0);
  assert_int_equal(
      lcd_config_set(&c, "broadcast", "10.1.0.255", 1, err, sizeof err), 0);
  assert_int_equal(lcd_config_set(&c, "foreground", NULL, 1, err, sizeof err),
                   0);
  assert_int_equal(lcd_config_set(&c, "bind", "10.0.0.7", 1, err, sizeof err),
                   0);
  assert_int_equal(
      lcd_config_set(&c, "announce-interval", "5", 1, err, sizeof err), 0);

  const char *file = "# lanchatd.conf\n"
                     "nick = bob\n"
                     "port = 8000\n"
                     "broadcast = 192.168.1.255\n"
                     "broadcast = 192.168.2.255\n"
                     "foreground = no\n"
                     "bind = ::1\n"
                     "announce-interval = 60\n"
                     /* not on the command line: these apply */
                     "peer = 10.9.9.9:7781\n"
                     "peer = 10.9.9.10:7781\n"
                     "discovery-port = 7790\n"
                     "log-level = debug\n"
                     "no-read-receipts = yes\n"
                     "data-dir = /var/lib/lanchat\n"
                     "interfaces = eth0,wlan0\n"
                     "passphrase-file = /etc/lanchat/pass\n";
  assert_int_equal(parse_str(&c, file, err, sizeof err), 0);

  /* single settings: the flag's value */
  assert_string_equal(c.nick, "alice");
  assert_int_equal(c.port, 7000);
  assert_int_equal(c.announce_interval_ms, 5000);
  /* a repeatable setting: the flags' list, none of the file's */
  assert_int_equal(c.n_broadcast, 2);
  assert_string_equal(c.broadcast[0], "10.0.0.255");
  assert_string_equal(c.broadcast[1], "10.1.0.255");
  /* a switch given as a flag stays on */
  assert_int_equal(c.foreground, 1);
  /* bind from the flag: IPv4 only, IPv6 off ("") */
  assert_string_equal(c.bind_v4, "10.0.0.7");
  assert_string_equal(c.bind_v6, "");
  /* what the command line did not give comes from the file */
  assert_int_equal(c.n_peer, 2);
  assert_string_equal(c.peer[0], "10.9.9.9:7781");
  assert_string_equal(c.peer[1], "10.9.9.10:7781");
  assert_int_equal(c.discovery_port, 7790);
  assert_int_equal(c.log_level, 3);
  assert_int_equal(c.no_read_receipts, 1);
  assert_string_equal(c.data_dir, "/var/lib/lanchat");
  assert_string_equal(c.interfaces, "eth0,wlan0");
  assert_string_equal(c.passphrase_file, "/etc/lanchat/pass");

  /* a file's line for a setting the command line gave is ignored, even one
   * that would be refused on its own (config.h: "ignored when the command
   * line gave the same setting") */
  assert_int_equal(parse_str(&c, "port = banana\n", err, sizeof err), 0);
  assert_int_equal(c.port, 7000);
  lcd_config_free(&c);

  /* the flag --config is allowed; config inside a file is not */
  lcd_config_init(&c);
  assert_int_equal(
      lcd_config_set(&c, "config", "/etc/lanchatd.conf", 1, err, sizeof err),
      0);
  assert_string_equal(c.config, "/etc/lanchatd.conf");
  lcd_config_free(&c);
}

static void test_config_file_applies(void **state) {
  lcd_config c;
  char err[700] = "";
  lcd_config_init(&c);
  /* comments, blank lines, spaces and tabs around names and values, CRLF,
   * a value holding '=', no newline after the last line */
  const char *file = "# a comment\n"
                     "\n"
                     "   \t \n"
                     "  # an indented comment = with an equals sign\n"
                     "data-dir=/srv/lanchat\n"
                     "\tnick\t=\t  Zoë the = sign  \t\n"
                     "port = 7781\r\n"
                     "discovery-port = 7780\n"
                     "broadcast = 10.0.0.255\n"
                     "broadcast = 10.0.1.255\n"
                     "broadcast = 10.0.2.255\n"
                     "peer = [fe80::1%eth0]:7781\n"
                     "announce-interval = 2.5\n"
                     "log-level = notice\n"
                     "foreground\n"
                     "no-read-receipts = true\n"
                     "bind = fe80::1\n"
                     "interfaces = eth0\n"
                     "passphrase-file = /run/pass";
  assert_int_equal(parse_str(&c, file, err, sizeof err), 0);
  assert_string_equal(c.data_dir, "/srv/lanchat");
  assert_string_equal(c.nick, "Zoë the = sign");
  assert_int_equal(c.port, 7781);
  assert_int_equal(c.discovery_port, 7780);
  assert_int_equal(c.n_broadcast, 3);
  assert_string_equal(c.broadcast[0], "10.0.0.255");
  assert_string_equal(c.broadcast[1], "10.0.1.255");
  assert_string_equal(c.broadcast[2], "10.0.2.255");
  assert_int_equal(c.n_peer, 1);
  assert_string_equal(c.peer[0], "[fe80::1%eth0]:7781");
  assert_int_equal(c.announce_interval_ms, 2500);
  assert_int_equal(c.log_level, 2);
  assert_int_equal(c.foreground, 1);
  assert_int_equal(c.no_read_receipts, 1);
  /* bind from the file: IPv6 only, IPv4 off */
  assert_string_equal(c.bind_v6, "fe80::1");
  assert_string_equal(c.bind_v4, "");
  assert_string_equal(c.interfaces, "eth0");
  assert_string_equal(c.passphrase_file, "/run/pass");
  assert_int_equal(c.set_by_flag, 0);

  /* a later line of a single setting replaces an earlier one */
  assert_int_equal(
      parse_str(&c, "nick = a\nnick = b\nport=1\nport=2\n", err, sizeof err),
      0);
  assert_string_equal(c.nick, "b");
  assert_int_equal(c.port, 2);
  /* an empty text, only comments, only blank lines */
  assert_int_equal(lcd_config_parse(&c, "", 0, err, sizeof err), 0);
  assert_int_equal(parse_str(&c, "# nothing\n#\n", err, sizeof err), 0);
  assert_int_equal(parse_str(&c, "\n\n\r\n \n", err, sizeof err), 0);
  assert_string_equal(c.nick, "b");
  lcd_config_free(&c);
}

/* ---- config: values ----------------------------------------------------- */

static void test_config_values(void **state) {
  lcd_config c;
  char err[700];
  lcd_config_init(&c);

  /* switches: yes/true/1 on, no/false/0 off, a flag's NULL on */
  const char *on[] = {"yes", "true", "1"}, *off[] = {"no", "false", "0"};
  for (int i = 0; i < 3; i++) {
    assert_int_equal(
        lcd_config_set(&c, "foreground", on[i], 0, err, sizeof err), 0);
    assert_int_equal(c.foreground, 1);
    assert_int_equal(
        lcd_config_set(&c, "foreground", off[i], 0, err, sizeof err), 0);
    assert_int_equal(c.foreground, 0);
    assert_int_equal(
        lcd_config_set(&c, "no-read-receipts", on[i], 0, err, sizeof err), 0);
    assert_int_equal(c.no_read_receipts, 1);
    assert_int_equal(
        lcd_config_set(&c, "no-read-receipts", off[i], 0, err, sizeof err), 0);
    assert_int_equal(c.no_read_receipts, 0);
  }
  const char *bad_switch[] = {"maybe", "YES", "on", "off", "2", "", " yes"};
  for (size_t i = 0; i < sizeof bad_switch / sizeof bad_switch[0]; i++) {
    err[0] = '\0';
    assert_int_equal(
        lcd_config_set(&c, "foreground", bad_switch[i], 0, err, sizeof err),
        -1);
    assert_contains(err, "foreground: expected yes or no");
  }
  assert_int_equal(c.foreground, 0);

  /* ports */
  struct {
    const char *v;
    int ok;
    uint16_t want;
  } ports[] = {{"0", 1, 0},       {"1", 1, 1},
               {"7781", 1, 7781}, {"65535", 1, 65535},
               {"65536", 0, 0},   {"-1", 0, 0},
               {"", 0, 0},        {"80x", 0, 0},
               {"x80", 0, 0},     {"99999999999999999999", 0, 0},
               {"8.5", 0, 0}};
  for (size_t i = 0; i < sizeof ports / sizeof ports[0]; i++) {
    c.port = 4242;
    err[0] = '\0';
    int rc = lcd_config_set(&c, "port", ports[i].v, 0, err, sizeof err);
    if (ports[i].ok) {
      assert_int_equal(rc, 0);
      assert_int_equal(c.port, ports[i].want);
    } else {
      assert_int_equal(rc, -1);
      assert_contains(err, "port: expected 0..65535");
      assert_contains(err, ports[i].v);
      assert_int_equal(c.port, 4242);
    }
  }
  /* the discovery port cannot be 0 */
  assert_int_equal(
      lcd_config_set(&c, "discovery-port", "7780", 0, err, sizeof err), 0);
  assert_int_equal(c.discovery_port, 7780);
  assert_int_equal(
      lcd_config_set(&c, "discovery-port", "0", 0, err, sizeof err), -1);
  assert_contains(err, "discovery-port: expected 1..65535");
  assert_int_equal(
      lcd_config_set(&c, "discovery-port", "65536", 0, err, sizeof err), -1);

  /* the announce interval: seconds, 1..3600, to milliseconds (rounded) */
  struct {
    const char *v;
    uint32_t want; /* 0: refused */
  } iv[] = {
      {"1", 1000},      {"3600", 3600000}, {"2.5", 2500},   {"1.0004", 1000},
      {"1.0006", 1001}, {"30", 30000},     {"1e1", 10000},  {"0.999", 0},
      {"0", 0},         {"-5", 0},         {"3600.001", 0}, {"3601", 0},
      {"nan", 0},       {"inf", 0},        {"-inf", 0},     {"", 0},
      {"5s", 0},        {"abc", 0},        {"1e400", 0}};
  for (size_t i = 0; i < sizeof iv / sizeof iv[0]; i++) {
    c.announce_interval_ms = 777;
    err[0] = '\0';
    int rc =
        lcd_config_set(&c, "announce-interval", iv[i].v, 0, err, sizeof err);
    if (iv[i].want) {
      if (rc != 0)
        fail_msg("announce-interval '%s' refused: %s", iv[i].v, err);
      assert_int_equal(c.announce_interval_ms, iv[i].want);
    } else {
      if (rc != -1)
        fail_msg("announce-interval '%s' accepted as %u ms", iv[i].v,
                 (unsigned)c.announce_interval_ms);
      assert_contains(err, "announce-interval: expected 1..3600 seconds");
      assert_int_equal(c.announce_interval_ms, 777);
    }
  }

  /* log levels */
  const char *levels[] = {"error", "warning", "notice", "debug"};
  for (int i = 0; i < 4; i++) {
    assert_int_equal(
        lcd_config_set(&c, "log-level", levels[i], 0, err, sizeof err), 0);
    assert_int_equal(c.log_level, i);
  }
  assert_int_equal(lcd_config_set(&c, "log-level", "loud", 0, err, sizeof err),
                   -1);
  assert_contains(err, "log-level: expected error, warning, notice or debug");
  assert_contains(err, "'loud'");
  assert_true(c.log_level >= 0 && c.log_level <= 3);

  /* empty strings where a value is needed; a value missing altogether */
  assert_int_equal(lcd_config_set(&c, "data-dir", "", 0, err, sizeof err), -1);
  assert_string_equal(err, "data-dir: empty");
  assert_int_equal(lcd_config_set(&c, "nick", "", 0, err, sizeof err), -1);
  assert_string_equal(err, "nick: empty");
  assert_int_equal(lcd_config_set(&c, "nick", NULL, 1, err, sizeof err), -1);
  assert_string_equal(err, "nick needs a value");
  assert_int_equal(lcd_config_set(&c, "frob", "1", 1, err, sizeof err), -1);
  assert_string_equal(err, "unknown setting 'frob'");
  assert_null(c.nick);
  assert_null(c.data_dir);

  /* lists: one address each time, at most LCD_LIST_MAX */
  assert_int_equal(lcd_config_set(&c, "peer", "a,b", 0, err, sizeof err), -1);
  assert_contains(err, "peer: one address each time");
  assert_int_equal(lcd_config_set(&c, "broadcast", "", 0, err, sizeof err), -1);
  assert_contains(err, "broadcast: one address each time");
  for (int i = 0; i < LCD_LIST_MAX; i++) {
    char v[32];
    snprintf(v, sizeof v, "10.0.%d.255", i);
    assert_int_equal(lcd_config_set(&c, "broadcast", v, 0, err, sizeof err), 0);
  }
  assert_int_equal(
      lcd_config_set(&c, "broadcast", "10.1.0.255", 0, err, sizeof err), -1);
  assert_contains(err, "broadcast: at most 32");
  assert_int_equal(c.n_broadcast, LCD_LIST_MAX);
  assert_string_equal(c.broadcast[LCD_LIST_MAX - 1], "10.0.31.255");
  assert_int_equal(c.n_peer, 0);

  /* bind: each family once; the family never named stays off ("") */
  lcd_config_free(&c);
  lcd_config_init(&c);
  assert_int_equal(lcd_config_set(&c, "bind", "::", 1, err, sizeof err), 0);
  assert_string_equal(c.bind_v6, "::");
  assert_string_equal(c.bind_v4, "");
  assert_int_equal(lcd_config_set(&c, "bind", "0.0.0.0", 1, err, sizeof err),
                   0);
  assert_string_equal(c.bind_v4, "0.0.0.0");
  assert_string_equal(c.bind_v6, "::");
  lcd_config_free(&c);

  /* errors without an error buffer */
  lcd_config_init(&c);
  assert_int_equal(lcd_config_set(&c, "port", "x", 0, NULL, 0), -1);
  assert_int_equal(lcd_config_parse(&c, "frob = 1", 8, NULL, 0), -1);
  char tiny[6];
  assert_int_equal(lcd_config_parse(&c, "frob = 1", 8, tiny, sizeof tiny), -1);
  assert_string_equal(tiny, "line ");
  lcd_config_free(&c);
}

/* ---- config: bad lines -------------------------------------------------- */

static void test_config_bad_lines(void **state) {
  static char longline[5000];
  memset(longline, 0, sizeof longline);
  /* 4096 bytes before the newline: one too many */
  memcpy(longline, "nick = bob\n\n", 12);
  memset(longline + 12, 'x', 4096);
  memcpy(longline + 12 + 4096, "\n", 1);

  struct {
    const char *text;
    size_t len; /* 0: strlen */
    int line;
    const char *what;
  } cases[] = {
      {"frobnicate = 1\n", 0, 1, "unknown setting 'frobnicate'"},
      {"nick = a\n\n# c\nport\n", 0, 4, "expected 'port = value'"},
      {"nick = a\nni\0ck = b\n", 19, 2, "a NUL byte"},
      {"# x\n# y\n\0\n", 10, 3, "a NUL byte"},
      {longline, 0, 3, "longer than 4095 bytes"},
      {"port = 70000\n", 0, 1, "port: expected 0..65535, not '70000'"},
      {"\n\nconfig = /etc/x.conf\n", 0, 3,
       "config cannot be set inside a config file"},
      {"foreground = maybe\n", 0, 1, "foreground: expected yes or no"},
      {"foreground =\n", 0, 1, "foreground: expected yes or no, not ''"},
      {" = value\n", 0, 1, "unknown setting ''"},
      {"=\n", 0, 1, "unknown setting ''"},
      {"broadcast = a, b\n", 0, 1, "broadcast: one address each time"},
      {"announce-interval = 0.5\n", 0, 1, "announce-interval: expected"},
      {"log-level = loud\n", 0, 1, "log-level: expected"},
      {"nick =\n", 0, 1, "nick: empty"},
      {"data-dir =   \n", 0, 1, "data-dir: empty"},
      {"discovery-port = 0\n", 0, 1, "discovery-port: expected 1..65535"},
      {"nick = a\r\nport = x\r\n", 0, 2, "port: expected"},
      {"nick = a\nport = x", 0, 2, "port: expected"},
      {"data dir = /x\n", 0, 1, "unknown setting 'data dir'"},
      {"NICK = a\n", 0, 1, "unknown setting 'NICK'"},
      {"--nick = a\n", 0, 1, "unknown setting '--nick'"},
      {"nick: a\n", 0, 1, "unknown setting 'nick: a'"},
      {"[section]\n", 0, 1, "unknown setting '[section]'"},
      {"nick = a # not a comment\nport = 1\nport = 2\npeer = a,b\n", 0, 4,
       "peer: one address each time"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    lcd_config c;
    char err[700];
    memset(err, 'Z', sizeof err);
    lcd_config_init(&c);
    size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
    int rc = lcd_config_parse(&c, cases[i].text, len, err, sizeof err);
    if (rc != -1)
      fail_msg("case %zu: expected -1, got %d", i, rc);
    assert_non_null(memchr(err, '\0', sizeof err));
    assert_line_error(err, cases[i].line);
    assert_contains(err, cases[i].what);
    lcd_config_free(&c);
  }

  /* the 33rd broadcast line */
  char many[2048] = "";
  for (int i = 0; i <= LCD_LIST_MAX; i++) {
    char l[40];
    snprintf(l, sizeof l, "broadcast = 10.0.%d.255\n", i);
    strcat(many, l);
  }
  lcd_config c;
  char err[700];
  lcd_config_init(&c);
  assert_int_equal(parse_str(&c, many, err, sizeof err), -1);
  assert_line_error(err, LCD_LIST_MAX + 1);
  assert_contains(err, "at most 32");
  lcd_config_free(&c);

  /* 4095 bytes on a line is still fine */
  static char maxline[4200];
  memset(maxline, 0, sizeof maxline);
  memcpy(maxline, "nick = ", 7);
  memset(maxline + 7, 'n', 4095 - 7);
  lcd_config_init(&c);
  assert_int_equal(lcd_config_parse(&c, maxline, 4095, err, sizeof err), 0);
  assert_int_equal(strlen(c.nick), 4095 - 7);
  lcd_config_free(&c);

  /* the lines before the bad one were applied (and are freed) */
  lcd_config_init(&c);
  assert_int_equal(
      parse_str(&c, "nick = kept\npeer = p1\nbogus\n", err, sizeof err), -1);
  assert_line_error(err, 3);
  assert_string_equal(c.nick, "kept");
  assert_int_equal(c.n_peer, 1);
  lcd_config_free(&c);
}

/* ---- config: hostile text ----------------------------------------------- */

static void test_config_parse_hostile(void **state) {
  static const char *const tokens[] = {"data-dir",
                                       "nick",
                                       "bind",
                                       "port",
                                       "discovery-port",
                                       "broadcast",
                                       "peer",
                                       "announce-interval",
                                       "config",
                                       "log-level",
                                       "foreground",
                                       "interfaces",
                                       "passphrase-file",
                                       "no-read-receipts",
                                       "=",
                                       " = ",
                                       "\n",
                                       "\r\n",
                                       "#",
                                       " ",
                                       "\t",
                                       "yes",
                                       "no",
                                       "1",
                                       "0",
                                       "65535",
                                       "3600",
                                       "1e308",
                                       "nan",
                                       "debug",
                                       "::1",
                                       "10.0.0.1",
                                       "%s%n%x",
                                       ",",
                                       "\xff\xfe",
                                       "\0"};
  const size_t n_tokens = sizeof tokens / sizeof tokens[0];
  uint64_t seed = 0x6c616e63686174ull; /* "lanchat" */
  unsigned ok = 0, refused = 0;
  for (int iter = 0; iter < 2000; iter++) {
    size_t len = (size_t)(rng_next(&seed) % 301);
    /* exactly len bytes, no NUL after them: the sanitizers see overreads */
    char *text = malloc(len ? len : 1);
    assert_non_null(text);
    int mode = (int)(rng_next(&seed) % 3);
    size_t pos = 0;
    while (pos < len) {
      if (mode == 0) {
        /* any byte */
        text[pos++] = (char)(rng_next(&seed) & 0xff);
      } else if (mode == 1) {
        /* printable, with the parser's own punctuation made common */
        static const char alpha[] = "abcdefgnoprt-=#:., \t\r\n0123456789";
        text[pos++] = alpha[rng_next(&seed) % (sizeof alpha - 1)];
      } else {
        /* pieces of real lines */
        size_t k = (size_t)(rng_next(&seed) % n_tokens);
        size_t tl = k == n_tokens - 1 ? 1 : strlen(tokens[k]);
        for (size_t j = 0; j < tl && pos < len; j++)
          text[pos++] = tokens[k][j];
      }
    }
    lcd_config c;
    char err[700];
    memset(err, 'Z', sizeof err);
    lcd_config_init(&c);
    /* every other time a flag was given first */
    if (iter & 1) {
      assert_int_equal(lcd_config_set(&c, "nick", "flag", 1, err, sizeof err),
                       0);
      assert_int_equal(
          lcd_config_set(&c, "broadcast", "10.0.0.255", 1, err, sizeof err), 0);
    }
    int rc = lcd_config_parse(&c, text, len, err, sizeof err);
    if (rc != 0 && rc != -1)
      fail_msg("iteration %d: returned %d", iter, rc);
    if (rc == 0) {
      ok++;
    } else {
      refused++;
      assert_non_null(memchr(err, '\0', sizeof err));
      assert_int_equal(strncmp(err, "line ", 5), 0);
    }
    /* whatever was applied is within bounds */
    assert_true(c.log_level >= 0 && c.log_level <= 3);
    assert_true(c.n_broadcast <= LCD_LIST_MAX && c.n_peer <= LCD_LIST_MAX);
    assert_true(
        c.announce_interval_ms == 0 ||
        (c.announce_interval_ms >= 1000 && c.announce_interval_ms <= 3600000));
    assert_null(c.config);
    if (iter & 1) {
      assert_string_equal(c.nick, "flag");
      assert_int_equal(c.n_broadcast, 1);
    }
    lcd_config_free(&c);
    free(text);
  }
  /* the generator reached both outcomes */
  assert_true(ok > 0);
  assert_true(refused > 0);
}

/* ---- config: files ------------------------------------------------------ */

static void test_config_load(void **state) {
  td_fixture *f = *state;
  lcd_config c;
  char err[1200], path[256];
  lcd_config_init(&c);

  /* missing: fine when missing_ok, else an error naming the file */
  snprintf(path, sizeof path, "%s/absent.conf", f->dir);
  assert_int_equal(lcd_config_load(&c, path, 1, err, sizeof err), 0);
  assert_int_equal(lcd_config_load(&c, path, 0, err, sizeof err), -1);
  assert_contains(err, path);
  assert_contains(err, strerror(ENOENT));

  /* a folder, a device: not regular files (even when missing_ok) */
  assert_int_equal(lcd_config_load(&c, f->dir, 1, err, sizeof err), -1);
  assert_contains(err, "not a regular file");
  assert_int_equal(lcd_config_load(&c, "/dev/null", 1, err, sizeof err), -1);
  assert_contains(err, "/dev/null: not a regular file");

  /* a good file */
  snprintf(path, sizeof path, "%s/lanchatd.conf", f->dir);
  const char *good = "nick = carol\nport = 7000\nforeground = yes\n";
  write_file(path, good, strlen(good));
  assert_int_equal(lcd_config_load(&c, path, 0, err, sizeof err), 0);
  assert_string_equal(c.nick, "carol");
  assert_int_equal(c.port, 7000);
  assert_int_equal(c.foreground, 1);

  /* an empty file */
  write_file(path, "", 0);
  assert_int_equal(lcd_config_load(&c, path, 0, err, sizeof err), 0);

  /* a bad line: the path, then the line */
  const char *bad = "nick = dave\n# fine\nport = seventy\n";
  write_file(path, bad, strlen(bad));
  assert_int_equal(lcd_config_load(&c, path, 1, err, sizeof err), -1);
  char want[400];
  snprintf(want, sizeof want, "%s: line 3: port: expected 0..65535", path);
  assert_contains(err, want);
  assert_string_equal(c.nick, "dave");

  /* exactly 1 MiB of comments is read; one byte more is refused */
  size_t mib = (size_t)1 << 20;
  char *big = malloc(mib + 1);
  assert_non_null(big);
  for (size_t i = 0; i < mib + 1; i++)
    big[i] = i % 64 == 63 ? '\n' : '#';
  memcpy(big + mib - 13, "\nnick = big\n", 12);
  big[mib - 1] = '\n';
  write_file(path, big, mib);
  assert_int_equal(lcd_config_load(&c, path, 0, err, sizeof err), 0);
  assert_string_equal(c.nick, "big");
  write_file(path, big, mib + 1);
  assert_int_equal(lcd_config_load(&c, path, 0, err, sizeof err), -1);
  assert_contains(err, "not a regular file of at most 1 MiB");
  free(big);

  /* a file that cannot be read */
  if (geteuid() != 0) {
    write_file(path, good, strlen(good));
    assert_int_equal(chmod(path, 0), 0);
    assert_int_equal(lcd_config_load(&c, path, 1, err, sizeof err), -1);
    assert_contains(err, strerror(EACCES));
  }
  lcd_config_free(&c);
}

/* ---- directory: the table ----------------------------------------------- */

static void test_dir_update_touch_find(void **state) {
  lcd_directory d;
  lcd_dir_init(&d);
  assert_int_equal(d.n, 0);
  assert_int_equal(d.dirty, 0);

  lc_peer_info a =
      peer_info("a11ce000", '1', "alice", "here", "10.0.0.7:7781", 1000);
  a.presence = LC_PRESENCE_AWAY;
  lcd_dir_update(&d, &a, 1);
  assert_int_equal(d.n, 1);
  assert_int_equal(d.dirty, 1);
  lcd_peer *p = lcd_dir_find(&d, a.key);
  assert_non_null(p);
  assert_string_equal(p->info.nickname, "alice");
  assert_string_equal(p->info.status, "here");
  assert_int_equal(p->info.presence, LC_PRESENCE_AWAY);
  assert_int_equal(p->online, 1);

  /* the same key again changes the entry; leaving makes it offline */
  d.dirty = 0;
  snprintf(a.status, sizeof a.status, "gone");
  lcd_dir_update(&d, &a, 0);
  assert_int_equal(d.n, 1);
  assert_int_equal(d.dirty, 1);
  p = lcd_dir_find(&d, a.key);
  assert_string_equal(p->info.status, "gone");
  assert_int_equal(p->online, 0);
  assert_int_equal(p->info.presence, LC_PRESENCE_OFFLINE);

  /* touch: a key only; a known key is left as it is */
  uint8_t k[LC_KEY_BYTES];
  key_hex(k, "7000", '7');
  d.dirty = 0;
  lcd_dir_touch(&d, k);
  assert_int_equal(d.n, 2);
  assert_int_equal(d.dirty, 1);
  p = lcd_dir_find(&d, k);
  assert_non_null(p);
  assert_string_equal(p->info.nickname, "");
  assert_int_equal(p->online, 0);
  assert_int_equal(p->info.presence, LC_PRESENCE_OFFLINE);
  d.dirty = 0;
  lcd_dir_touch(&d, a.key);
  assert_int_equal(d.n, 2);
  assert_int_equal(d.dirty, 0);
  assert_string_equal(lcd_dir_find(&d, a.key)->info.nickname, "alice");

  /* unknown */
  key_hex(k, "", '0');
  assert_null(lcd_dir_find(&d, k));

  /* growth past the first allocation keeps every peer findable */
  for (int i = 0; i < 300; i++) {
    char pre[16];
    snprintf(pre, sizeof pre, "%08x", 0x10000000u + (unsigned)i);
    lc_peer_info q = peer_info(pre, 'c', "many", "", "", (uint64_t)i);
    lcd_dir_update(&d, &q, i % 2);
  }
  assert_int_equal(d.n, 302);
  for (int i = 0; i < 300; i++) {
    char pre[16];
    snprintf(pre, sizeof pre, "%08x", 0x10000000u + (unsigned)i);
    key_hex(k, pre, 'c');
    p = lcd_dir_find(&d, k);
    assert_non_null(p);
    assert_int_equal(p->info.last_seen_ms, (uint64_t)i);
    assert_int_equal(p->online, i % 2);
  }
  assert_string_equal(lcd_dir_find(&d, a.key)->info.nickname, "alice");
  lcd_dir_free(&d);
  assert_int_equal(d.n, 0);
  assert_null(d.v);
}

/* ---- directory: resolve ------------------------------------------------- */

static void test_dir_resolve(void **state) {
  lcd_directory d;
  lcd_dir_init(&d);
  struct {
    const char *prefix;
    char fill;
    const char *nick;
    int online;
  } peers[] = {
      {"a11ce000", '1', "alice", 1},    /* 0 */
      {"b0b00001", '2', "Bob", 0},      /* 1 */
      {"b0b00002", '3', "bob", 0},      /* 2 */
      {"c0000001", '4', "carol", 0},    /* 3 */
      {"c0000002", '4', "carol", 1},    /* 4 */
      {"d0000001", '5', "dave", 0},     /* 5 */
      {"d0000002", '5', "dave", 0},     /* 6 */
      {"e0000001", '6', "erin", 1},     /* 7 */
      {"e0000002", '6', "erin", 1},     /* 8 */
      {"e0000003", '6', "erin", 0},     /* 9 */
      {"f00dcafe1", '8', "f1", 0},      /* 10 */
      {"f00dcafe2", '8', "f2", 0},      /* 11 */
      {"99999999", '9', "deadbeef", 0}, /* 12 */
      {"0a0a0a0a", '0', "Frank", 0},    /* 13 */
      {"0b0b0b0b", '0', "FRANK", 1},    /* 14 */
  };
  const size_t np = sizeof peers / sizeof peers[0];
  for (size_t i = 0; i < np; i++) {
    lc_peer_info p =
        peer_info(peers[i].prefix, peers[i].fill, peers[i].nick, "", "", 1);
    lcd_dir_update(&d, &p, peers[i].online);
  }
  uint8_t nameless[LC_KEY_BYTES];
  key_hex(nameless, "77777777", '7');
  lcd_dir_touch(&d, nameless); /* 15, no nickname */
  assert_int_equal(d.n, np + 1);

  uint8_t key[LC_KEY_BYTES], want[LC_KEY_BYTES];
  size_t m[4];

  /* 64 hex digits: any key, known or not, either case */
  char hex[LC_KEY_HEX_LEN + 1];
  key_hex(want, "abcdef01", 'e');
  lc_key_to_hex(hex, want);
  memset(key, 0, sizeof key);
  assert_int_equal(lcd_dir_resolve(&d, hex, key, NULL, 0), 1);
  assert_memory_equal(key, want, LC_KEY_BYTES);
  for (char *s = hex; *s; s++)
    if (*s >= 'a' && *s <= 'f')
      *s = (char)(*s - 'a' + 'A');
  memset(key, 0, sizeof key);
  assert_int_equal(lcd_dir_resolve(&d, hex, key, NULL, 0), 1);
  assert_memory_equal(key, want, LC_KEY_BYTES);

  /* a prefix of at least 8 hex digits of a known peer, either case */
  assert_int_equal(lcd_dir_resolve(&d, "a11ce000", key, m, 4), 1);
  assert_memory_equal(key, d.v[0].info.key, LC_KEY_BYTES);
  memset(key, 0, sizeof key);
  assert_int_equal(lcd_dir_resolve(&d, "A11CE0001111", key, m, 4), 1);
  assert_memory_equal(key, d.v[0].info.key, LC_KEY_BYTES);
  assert_int_equal(lcd_dir_resolve(&d, "77777777", key, NULL, 0), 1);
  assert_memory_equal(key, nameless, LC_KEY_BYTES);
  /* 7 digits are not a prefix, even a unique one */
  assert_int_equal(lcd_dir_resolve(&d, "a11ce00", key, m, 4), 0);
  assert_int_equal(lcd_dir_resolve(&d, "7777777", key, m, 4), 0);
  /* a prefix no peer has */
  assert_int_equal(lcd_dir_resolve(&d, "12345678", key, m, 4), 0);
  /* 65 hex digits: longer than any id */
  char longhex[LC_KEY_HEX_LEN + 2];
  lc_key_to_hex(longhex, d.v[0].info.key);
  strcat(longhex, "1");
  assert_int_equal(lcd_dir_resolve(&d, longhex, key, m, 4), 0);
  /* a prefix two peers share: ambiguous, both listed */
  m[0] = m[1] = m[2] = 99;
  assert_int_equal(lcd_dir_resolve(&d, "f00dcafe", key, m, 4), -2);
  assert_int_equal(m[0], 10);
  assert_int_equal(m[1], 11);
  assert_int_equal(m[2], 99);
  assert_int_equal(lcd_dir_resolve(&d, "f00dcafe2", key, m, 4), 1);
  assert_memory_equal(key, d.v[11].info.key, LC_KEY_BYTES);

  /* a nickname that looks like hex but is no peer's prefix */
  assert_int_equal(lcd_dir_resolve(&d, "deadbeef", key, m, 4), 1);
  assert_memory_equal(key, d.v[12].info.key, LC_KEY_BYTES);

  /* nicknames: exact first, then ignoring case */
  assert_int_equal(lcd_dir_resolve(&d, "alice", key, m, 4), 1);
  assert_memory_equal(key, d.v[0].info.key, LC_KEY_BYTES);
  assert_int_equal(lcd_dir_resolve(&d, "ALICE", key, m, 4), 1);
  assert_memory_equal(key, d.v[0].info.key, LC_KEY_BYTES);
  assert_int_equal(lcd_dir_resolve(&d, "Bob", key, m, 4), 1);
  assert_memory_equal(key, d.v[1].info.key, LC_KEY_BYTES);
  assert_int_equal(lcd_dir_resolve(&d, "bob", key, m, 4), 1);
  assert_memory_equal(key, d.v[2].info.key, LC_KEY_BYTES);
  /* "BOB" matches both only ignoring case; both offline: ambiguous */
  m[0] = m[1] = 99;
  assert_int_equal(lcd_dir_resolve(&d, "BOB", key, m, 4), -2);
  assert_int_equal(m[0], 1);
  assert_int_equal(m[1], 2);
  /* ignoring case, the only online one wins */
  assert_int_equal(lcd_dir_resolve(&d, "frank", key, m, 4), 1);
  assert_memory_equal(key, d.v[14].info.key, LC_KEY_BYTES);
  /* exactly, one of two: no ambiguity whatever is online */
  assert_int_equal(lcd_dir_resolve(&d, "Frank", key, m, 4), 1);
  assert_memory_equal(key, d.v[13].info.key, LC_KEY_BYTES);

  /* one name, several peers: the only online one wins */
  assert_int_equal(lcd_dir_resolve(&d, "carol", key, m, 4), 1);
  assert_memory_equal(key, d.v[4].info.key, LC_KEY_BYTES);
  /* none online: ambiguous, both listed */
  m[0] = m[1] = m[2] = 99;
  assert_int_equal(lcd_dir_resolve(&d, "dave", key, m, 4), -2);
  assert_int_equal(m[0], 5);
  assert_int_equal(m[1], 6);
  assert_int_equal(m[2], 99);
  /* two of three online: ambiguous, all three counted */
  m[0] = m[1] = m[2] = m[3] = 99;
  assert_int_equal(lcd_dir_resolve(&d, "erin", key, m, 4), -3);
  assert_int_equal(m[0], 7);
  assert_int_equal(m[1], 8);
  assert_int_equal(m[2], 9);
  assert_int_equal(m[3], 99);
  /* fewer slots than matches: the count is still whole */
  m[0] = m[1] = m[2] = 99;
  assert_int_equal(lcd_dir_resolve(&d, "erin", key, m, 2), -3);
  assert_int_equal(m[0], 7);
  assert_int_equal(m[1], 8);
  assert_int_equal(m[2], 99);
  assert_int_equal(lcd_dir_resolve(&d, "erin", key, NULL, 0), -3);
  /* one of the two online peers leaves: the other one wins */
  lc_peer_info e8 = d.v[8].info;
  lcd_dir_update(&d, &e8, 0);
  assert_int_equal(lcd_dir_resolve(&d, "erin", key, m, 4), 1);
  assert_memory_equal(key, d.v[7].info.key, LC_KEY_BYTES);

  /* nobody */
  uint8_t untouched[LC_KEY_BYTES];
  memset(key, 0x5a, sizeof key);
  memcpy(untouched, key, sizeof key);
  assert_int_equal(lcd_dir_resolve(&d, "zed", key, m, 4), 0);
  assert_memory_equal(key, untouched, LC_KEY_BYTES);
  /* an empty name never matches a peer without a nickname */
  assert_int_equal(lcd_dir_resolve(&d, "", key, m, 4), 0);
  assert_memory_equal(key, untouched, LC_KEY_BYTES);
  /* 64 characters that are not hex */
  char nothex[LC_KEY_HEX_LEN + 1];
  memset(nothex, 'g', LC_KEY_HEX_LEN);
  nothex[LC_KEY_HEX_LEN] = '\0';
  assert_int_equal(lcd_dir_resolve(&d, nothex, key, m, 4), 0);

  /* an empty directory */
  lcd_directory empty;
  lcd_dir_init(&empty);
  assert_int_equal(lcd_dir_resolve(&empty, "alice", key, m, 4), 0);
  assert_int_equal(lcd_dir_resolve(&empty, "a11ce000", key, m, 4), 0);
  lc_key_to_hex(hex, want);
  assert_int_equal(lcd_dir_resolve(&empty, hex, key, m, 4), 1);
  assert_memory_equal(key, want, LC_KEY_BYTES);
  lcd_dir_free(&empty);
  lcd_dir_free(&d);
}

/* ---- directory: peers.json ---------------------------------------------- */

static void test_dir_save_load(void **state) {
  td_fixture *f = *state;
  char err[600] = "", tmp[160];
  snprintf(tmp, sizeof tmp, "%s.tmp", f->path);

  /* no file yet: an empty directory */
  lcd_directory d;
  lcd_dir_init(&d);
  assert_int_equal(lcd_dir_load(&d, f->path, err, sizeof err), 0);
  assert_int_equal(d.n, 0);

  lc_peer_info a = peer_info("a11ce000", '1', "alice", "at lunch",
                             "10.0.0.7:7781", 1700000000123ull);
  lc_peer_info b =
      peer_info("b0b00000", '2',
                "B\xc3\xb6"
                "b \xf0\x9f\x90\xb1",
                "\"quoted\" \\ and\nnewline", "[fe80::1%eth0]:7781", 42);
  b.presence = LC_PRESENCE_BUSY;
  b.caps = 3;
  b.remote = 1;
  uint8_t ck[LC_KEY_BYTES];
  key_hex(ck, "c0ffee00", 'f');
  lcd_dir_update(&d, &a, 1);
  lcd_dir_update(&d, &b, 0);
  lcd_dir_touch(&d, ck);
  /* a nickname and status of the greatest length */
  lc_peer_info e = peer_info("eeeeeeee", 'e', "", "", "", 7);
  memset(e.nickname, 'N', LC_NICK_MAX);
  e.nickname[LC_NICK_MAX] = '\0';
  memset(e.status, 'S', LC_STATUS_MAX);
  e.status[LC_STATUS_MAX] = '\0';
  lcd_dir_update(&d, &e, 1);
  assert_int_equal(d.dirty, 1);

  assert_int_equal(lcd_dir_save(&d, f->path), 0);
  assert_int_equal(d.dirty, 0);
  assert_true(exists(f->path));
  assert_false(exists(tmp)); /* written aside, then renamed */
  struct stat st;
  assert_int_equal(stat(f->path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);

  /* the file: one line of JSON, version 1, the peers in order */
  size_t len;
  char *text = read_all(f->path, &len);
  assert_non_null(text);
  assert_true(len > 0);
  assert_int_equal(text[len - 1], '\n');
  assert_null(memchr(text, '\n', len - 1));
  lcj *root = lcj_parse(text, len, err, sizeof err);
  assert_non_null(root);
  assert_int_equal(lcj_ival(lcj_get(root, "version")), 1);
  lcj *arr = lcj_get(root, "peers");
  assert_int_equal(lcj_len(arr), 4);
  char hex[LC_KEY_HEX_LEN + 1];
  lc_key_to_hex(hex, a.key);
  assert_string_equal(lcj_get_str(lcj_at(arr, 0), "id"), hex);
  assert_string_equal(lcj_get_str(lcj_at(arr, 1), "nick"), b.nickname);
  lcj_free(root);

  /* loaded back: the same peers, all offline, nothing to save */
  lcd_directory d2;
  lcd_dir_init(&d2);
  assert_int_equal(lcd_dir_load(&d2, f->path, err, sizeof err), 0);
  assert_int_equal(d2.n, 4);
  assert_int_equal(d2.dirty, 0);
  for (size_t i = 0; i < d.n; i++) {
    const lc_peer_info *x = &d.v[i].info, *y = &d2.v[i].info;
    assert_memory_equal(x->key, y->key, LC_KEY_BYTES);
    assert_string_equal(x->nickname, y->nickname);
    assert_string_equal(x->status, y->status);
    assert_string_equal(x->address, y->address);
    assert_int_equal(x->last_seen_ms, y->last_seen_ms);
    assert_int_equal(y->presence, LC_PRESENCE_OFFLINE);
    assert_int_equal(d2.v[i].online, 0);
  }
  assert_int_equal(d2.v[0].info.last_seen_ms, 1700000000123ull);
  assert_int_equal(d2.v[2].info.last_seen_ms, 0);
  assert_string_equal(d2.v[2].info.nickname, "");
  /* names resolve the same after a restart */
  uint8_t key[LC_KEY_BYTES];
  assert_int_equal(lcd_dir_resolve(&d2, "alice", key, NULL, 0), 1);
  assert_memory_equal(key, a.key, LC_KEY_BYTES);
  assert_int_equal(lcd_dir_resolve(&d2, "c0ffee00", key, NULL, 0), 1);
  assert_memory_equal(key, ck, LC_KEY_BYTES);

  /* saving what was loaded writes the same bytes */
  assert_int_equal(lcd_dir_save(&d2, f->path), 0);
  size_t len2;
  char *text2 = read_all(f->path, &len2);
  assert_non_null(text2);
  assert_int_equal(len2, len);
  assert_memory_equal(text, text2, len);
  free(text);
  free(text2);

  /* an empty directory saves and loads as empty */
  lcd_directory e0;
  lcd_dir_init(&e0);
  assert_int_equal(lcd_dir_save(&e0, f->path), 0);
  assert_int_equal(lcd_dir_load(&e0, f->path, err, sizeof err), 0);
  assert_int_equal(e0.n, 0);
  lcd_dir_free(&e0);

  /* a folder that does not exist: a negative errno, nothing left behind */
  char nowhere[200];
  snprintf(nowhere, sizeof nowhere, "%s/no/such/peers.json", f->dir);
  d.dirty = 1;
  assert_int_equal(lcd_dir_save(&d, nowhere), -ENOENT);
  assert_int_equal(d.dirty, 1);

  lcd_dir_free(&d);
  lcd_dir_free(&d2);
}

static void test_dir_load_malformed(void **state) {
  td_fixture *f = *state;
  char err[600], bad[160];
  snprintf(bad, sizeof bad, "%s.bad", f->path);

  struct {
    const char *text;
    const char *what;
  } cases[] = {
      {"{\"version\":1,\"peers\":[", "line 1, column "},
      {"{\n  \"version\": 1,\n  \"peers\": [,]\n}\n", "line 3, column "},
      {"", "line "},
      {"{\"version\":1}", "no peers array"},
      {"{\"peers\":{}}", "no peers array"},
      {"{\"peers\":null}", "no peers array"},
      {"[]", "no peers array"},
      {"\"peers\"", "no peers array"},
      {"{\"peers\":[]} trailing", "line 1, column "},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    write_file(f->path, cases[i].text, strlen(cases[i].text));
    lcd_directory d;
    lcd_dir_init(&d);
    err[0] = '\0';
    int rc = lcd_dir_load(&d, f->path, err, sizeof err);
    if (rc != -1)
      fail_msg("case %zu: expected -1, got %d", i, rc);
    assert_int_equal(d.n, 0);
    assert_contains(err, f->path);
    assert_contains(err, cases[i].what);
    assert_contains(err, "set aside as");
    assert_contains(err, bad);
    /* moved out of the way, intact */
    assert_false(exists(f->path));
    size_t len;
    char *kept = read_all(bad, &len);
    assert_non_null(kept);
    assert_int_equal(len, strlen(cases[i].text));
    assert_memory_equal(kept, cases[i].text, len);
    free(kept);
    /* the next start finds no file: an empty directory */
    assert_int_equal(lcd_dir_load(&d, f->path, err, sizeof err), 0);
    lcd_dir_free(&d);
  }

  /* bad entries cost only themselves */
  char g1[LC_KEY_HEX_LEN + 1], g2[LC_KEY_HEX_LEN + 1], g3[LC_KEY_HEX_LEN + 1];
  uint8_t k1[LC_KEY_BYTES], k2[LC_KEY_BYTES], k3[LC_KEY_BYTES];
  key_hex(k1, "11111111", 'a');
  key_hex(k2, "22222222", 'b');
  key_hex(k3, "33333333", 'c');
  lc_key_to_hex(g1, k1);
  lc_key_to_hex(g2, k2);
  lc_key_to_hex(g3, k3);
  char nick65[66], nick64[65];
  memset(nick65, 'x', 65);
  nick65[65] = '\0';
  memset(nick64, 'y', 64);
  nick64[64] = '\0';
  char text[4096];
  snprintf(text, sizeof text,
           "{\"version\":1,\"peers\":["
           "1,\"x\",null,[],{},"
           "{\"id\":\"zz\"},"
           "{\"id\":\"%.63s\"},"
           "{\"id\":\"%sg\"},"
           "{\"id\":42},"
           "{\"id\":\"%s\",\"nick\":\"%s\",\"status\":5,"
           "\"last_seen_ms\":-5},"
           "{\"id\":\"%s\",\"nick\":\"%s\",\"address\":\"10.0.0.2:1\","
           "\"last_seen_ms\":\"12\"},"
           "{\"id\":\"%s\",\"last_seen_ms\":1.5,\"extra\":{\"x\":[1]}}"
           "]}",
           g1, g1, g1, nick65, g2, nick64, g3);
  write_file(f->path, text, strlen(text));
  lcd_directory d;
  lcd_dir_init(&d);
  assert_int_equal(lcd_dir_load(&d, f->path, err, sizeof err), 0);
  assert_true(exists(f->path)); /* not set aside */
  assert_int_equal(d.n, 3);
  lcd_peer *p = lcd_dir_find(&d, k1);
  assert_non_null(p);
  assert_string_equal(p->info.nickname, ""); /* too long: dropped */
  assert_string_equal(p->info.status, "");   /* not a string */
  assert_int_equal(p->info.last_seen_ms, 0); /* negative */
  p = lcd_dir_find(&d, k2);
  assert_non_null(p);
  assert_string_equal(p->info.nickname, nick64);
  assert_string_equal(p->info.address, "10.0.0.2:1");
  assert_int_equal(p->info.last_seen_ms, 0); /* a string */
  p = lcd_dir_find(&d, k3);
  assert_non_null(p);
  assert_int_equal(p->info.last_seen_ms, 0); /* a real */
  for (size_t i = 0; i < d.n; i++) {
    assert_int_equal(d.v[i].online, 0);
    assert_int_equal(d.v[i].info.presence, LC_PRESENCE_OFFLINE);
  }
  lcd_dir_free(&d);

  /* the same id twice: one peer */
  snprintf(text, sizeof text,
           "{\"peers\":[{\"id\":\"%s\",\"nick\":\"one\"},"
           "{\"id\":\"%s\",\"nick\":\"two\"}]}",
           g1, g1);
  write_file(f->path, text, strlen(text));
  lcd_dir_init(&d);
  assert_int_equal(lcd_dir_load(&d, f->path, err, sizeof err), 0);
  assert_int_equal(d.n, 1);
  lcd_dir_free(&d);

  /* a folder where the file should be: an error, left where it is */
  assert_int_equal(unlink(f->path), 0);
  assert_int_equal(mkdir(f->path, 0700), 0);
  lcd_dir_init(&d);
  err[0] = '\0';
  assert_int_equal(lcd_dir_load(&d, f->path, err, sizeof err), -1);
  assert_contains(err, f->path);
  struct stat st;
  assert_int_equal(stat(f->path, &st), 0);
  assert_true(S_ISDIR(st.st_mode));
  lcd_dir_free(&d);
}

/* ---- json --------------------------------------------------------------- */

static void test_json_parse_errors(void **state) {
  char err[300];
  struct {
    const char *text;
    size_t len; /* 0: strlen */
    const char *where;
  } cases[] = {
      {"{\"a\":1,}", 0, "line 1, column 8: "},
      {"{\n  \"a\": 1,\n  \"b\": ]\n}", 0, "line 3, column "},
      {"[1,\n2,\n3,\n\n\"x\" \"y\"]", 0, "line 5, column "},
      {"", 0, "line "},
      {"   ", 0, "line "},
      {"{} x", 0, "line 1, column "},
      {"{}{}", 0, "line 1, column "},
      {"\"a\\u0000b\"", 0, "line 1, column "},
      {"{\"k\\u0000\":1}", 0, "line 1, column "},
      {"[\"a\0b\"]", 7, "line 1, column "},
      {"{}\0", 3, "line 1, column "},
      {"\"\xff\"", 0, "line 1, column "},
      {"[1, 2", 0, "line 1, column "},
      {"tru", 0, "line 1, column "},
      {"[01]", 0, "line 1, column "},
      {"{'a':1}", 0, "line 1, column "},
      {"[1,]", 0, "line 1, column "},
      {"/* c */ 1", 0, "line 1, column "},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
    memset(err, 'Z', sizeof err);
    lcj *v = lcj_parse(cases[i].text, len, err, sizeof err);
    if (v) {
      char *s = lcj_dump(v);
      lcj_free(v);
      fail_msg("case %zu: parsed as %s", i, s ? s : "?");
    }
    assert_non_null(memchr(err, '\0', sizeof err));
    if (strncmp(err, cases[i].where, strlen(cases[i].where)) != 0)
      fail_msg("case %zu: expected '%s...', got '%s'", i, cases[i].where, err);
    assert_true(strlen(err) > strlen(cases[i].where)); /* and a reason */
  }

  /* exactly len bytes are read: no NUL needed after them */
  const char buf[] = {'[', '1', ',', '2', ']', 'x', 'y', 'z'};
  lcj *v = lcj_parse(buf, 5, err, sizeof err);
  assert_non_null(v);
  assert_int_equal(lcj_len(v), 2);
  assert_int_equal(lcj_ival(lcj_at(v, 1)), 2);
  lcj_free(v);
  /* one value of any type */
  v = lcj_parse("  42 \n", 6, err, sizeof err);
  assert_true(lcj_is_int(v));
  assert_int_equal(lcj_ival(v), 42);
  lcj_free(v);

  /* no room for a message, or nowhere to write it */
  assert_null(lcj_parse("{", 1, NULL, 0));
  char small[8];
  assert_null(lcj_parse("{", 1, small, sizeof small));
  assert_string_equal(small, "line 1,");
  /* nothing at all */
  assert_null(lcj_parse(NULL, 0, err, sizeof err));

  /* deep nesting is refused, not a crash */
  size_t depth = 100000;
  char *deep = malloc(2 * depth);
  assert_non_null(deep);
  memset(deep, '[', depth);
  memset(deep + depth, ']', depth);
  v = lcj_parse(deep, 2 * depth, err, sizeof err);
  lcj_free(v);
  assert_null(v);
  assert_int_equal(strncmp(err, "line 1, column ", 15), 0);
  free(deep);
}

static void test_json_round_trip(void **state) {
  static const char *const compact[] = {
      "{}",
      "[]",
      "null",
      "true",
      "false",
      "0",
      "-1",
      "9223372036854775807",
      "-9223372036854775808",
      "1.5",
      "\"\"",
      "\"plain\"",
      "\"quote \\\" backslash \\\\ newline \\n tab \\t\"",
      "\"\\u0001\\u001F\"",
      "\"Zo\xc3\xab \xf0\x9f\x90\xb1\"",
      "{\"a\":1,\"b\":[true,false,null],\"c\":\"x\"}",
      "{\"z\":1,\"a\":2,\"m\":3}", /* order kept */
      "{\"peers\":[{\"id\":\"ab\",\"nick\":\"n\",\"last_seen_ms\":1}],"
      "\"version\":1}",
      "[[[[[]]]],{\"\":{\"\":[]}}]",
      "[1,-2,3.25,\"4\",{\"5\":6}]",
  };
  char err[300];
  for (size_t i = 0; i < sizeof compact / sizeof compact[0]; i++) {
    err[0] = '\0';
    lcj *v = lcj_parse(compact[i], strlen(compact[i]), err, sizeof err);
    if (!v)
      fail_msg("case %zu '%s': %s", i, compact[i], err);
    char *s = lcj_dump(v);
    assert_non_null(s);
    if (strcmp(s, compact[i]) != 0)
      fail_msg("case %zu: '%s' dumped as '%s'", i, compact[i], s);
    /* and parsing the dump gives the same dump */
    lcj *w = lcj_parse(s, strlen(s), err, sizeof err);
    char *s2 = lcj_dump(w);
    assert_string_equal(s, s2);
    free(s);
    free(s2);
    lcj_free(v);
    lcj_free(w);
  }

  /* spaces and escapes go; the dump is compact */
  const char *loose = " { \"a\" : [ 1 , 2 ] ,\n \"b\" : \"\\u00e9\\/\" } ";
  lcj *v = lcj_parse(loose, strlen(loose), err, sizeof err);
  assert_non_null(v);
  char *s = lcj_dump(v);
  assert_string_equal(s, "{\"a\":[1,2],\"b\":\"\xc3\xa9/\"}");
  free(s);
  lcj_free(v);
}

static void test_json_build_and_ownership(void **state) {
  lcj *o = lcj_obj();
  assert_true(lcj_is_obj(o));
  assert_int_equal(lcj_set_str(o, "s", "text"), 0);
  assert_int_equal(lcj_set_int(o, "i", -7), 0);
  assert_int_equal(lcj_set_bool(o, "t", 1), 0);
  assert_int_equal(lcj_set_bool(o, "f", 0), 0);
  assert_int_equal(lcj_set(o, "n", lcj_null()), 0);
  lcj *a = lcj_arr();
  assert_int_equal(lcj_push(a, lcj_int(1)), 0);
  assert_int_equal(lcj_push(a, lcj_str("two")), 0);
  assert_int_equal(lcj_push(a, lcj_strn("th\0ree", 6)), 0);
  assert_int_equal(lcj_set(o, "a", a), 0); /* stolen */
  /* replacing a member releases the old value */
  assert_int_equal(lcj_set_int(o, "i", 8), 0);

  char *s = lcj_dump(o);
  assert_string_equal(s, "{\"s\":\"text\",\"i\":8,\"t\":true,\"f\":false,"
                         "\"n\":null,\"a\":[1,\"two\",\"th\\u0000ree\"]}");
  free(s);

  /* getters and types */
  assert_string_equal(lcj_get_str(o, "s"), "text");
  assert_null(lcj_get_str(o, "i"));
  assert_null(lcj_get_str(o, "absent"));
  assert_int_equal(lcj_ival(lcj_get(o, "i")), 8);
  assert_int_equal(lcj_ival(lcj_get(o, "s")), 0);
  assert_int_equal(lcj_bval(lcj_get(o, "t")), 1);
  assert_int_equal(lcj_bval(lcj_get(o, "f")), 0);
  assert_int_equal(lcj_bval(lcj_get(o, "i")), 0);
  assert_true(lcj_is_bool(lcj_get(o, "f")));
  assert_true(lcj_is_null(lcj_get(o, "n")));
  assert_false(lcj_is_null(lcj_get(o, "absent")));
  assert_true(lcj_is_arr(lcj_get(o, "a")));
  assert_false(lcj_is_obj(lcj_get(o, "a")));
  assert_int_equal(lcj_len(lcj_get(o, "a")), 3);
  assert_int_equal(lcj_len(o), 0); /* not an array */
  assert_null(lcj_at(o, 0));
  assert_null(lcj_at(lcj_get(o, "a"), 3));
  assert_int_equal(lcj_slen(lcj_at(lcj_get(o, "a"), 2)), 6);
  assert_int_equal(lcj_slen(lcj_get(o, "i")), 0);
  assert_null(lcj_get(lcj_get(o, "a"), "s")); /* not an object */
  assert_string_equal(lcj_type_name(o), "object");
  assert_string_equal(lcj_type_name(lcj_get(o, "a")), "array");
  assert_string_equal(lcj_type_name(lcj_get(o, "s")), "string");
  assert_string_equal(lcj_type_name(lcj_get(o, "i")), "integer");
  assert_string_equal(lcj_type_name(lcj_get(o, "t")), "boolean");
  assert_string_equal(lcj_type_name(lcj_get(o, "f")), "boolean");
  assert_string_equal(lcj_type_name(lcj_get(o, "n")), "null");
  assert_string_equal(lcj_type_name(NULL), "nothing");
  lcj *r = lcj_parse("2.5", 3, NULL, 0);
  assert_string_equal(lcj_type_name(r), "real");
  assert_false(lcj_is_int(r));
  assert_int_equal(lcj_ival(r), 0);
  lcj_free(r);

  /* iteration: insertion order */
  const char *order[] = {"s", "i", "t", "f", "n", "a"};
  size_t k = 0;
  for (void *it = lcj_iter(o); it; it = lcj_next(o, it)) {
    assert_true(k < 6);
    assert_string_equal(lcj_iter_key(it), order[k]);
    assert_ptr_equal(lcj_iter_value(it), lcj_get(o, order[k]));
    k++;
  }
  assert_int_equal(k, 6);

  /* a reference outlives the container */
  lcj *held = lcj_ref(lcj_get(o, "a"));
  lcj_free(o);
  assert_int_equal(lcj_len(held), 3);
  lcj_free(held);

  /* invalid UTF-8 is refused; a setter then fails */
  assert_null(lcj_str("\xc3("));
  assert_null(lcj_strn("\xff", 1));
  o = lcj_obj();
  assert_int_equal(lcj_set_str(o, "bad", "\xc3("), -1);
  assert_int_equal(lcj_set_str(o, "null", NULL), -1);
  assert_int_equal(lcj_set_int(o, "\xff", 1), -1); /* a bad key */
  assert_null(lcj_get(o, "bad"));
  assert_int_equal(lcj_set(o, NULL, lcj_int(1)), -1);
  s = lcj_dump(o);
  assert_string_equal(s, "{}");
  free(s);

  /* stealing even on failure (the sanitizers report a leak otherwise) */
  assert_int_equal(lcj_set(NULL, "k", lcj_str("leak?")), -1);
  assert_int_equal(lcj_push(NULL, lcj_arr()), -1);
  assert_int_equal(lcj_push(o, NULL), -1);
  assert_int_equal(lcj_set(o, "k", NULL), -1);
  assert_int_equal(lcj_push(o, lcj_int(3)), -1); /* o is no array */
  lcj_free(o);

  /* every function accepts NULL */
  assert_null(lcj_ref(NULL));
  lcj_free(NULL);
  assert_null(lcj_str(NULL));
  assert_null(lcj_strn(NULL, 0));
  assert_null(lcj_get(NULL, "k"));
  assert_int_equal(lcj_len(NULL), 0);
  assert_null(lcj_at(NULL, 0));
  assert_false(lcj_is_obj(NULL));
  assert_false(lcj_is_arr(NULL));
  assert_false(lcj_is_str(NULL));
  assert_false(lcj_is_int(NULL));
  assert_false(lcj_is_bool(NULL));
  assert_false(lcj_is_null(NULL));
  assert_null(lcj_sval(NULL));
  assert_int_equal(lcj_slen(NULL), 0);
  assert_int_equal(lcj_ival(NULL), 0);
  assert_int_equal(lcj_bval(NULL), 0);
  assert_null(lcj_get_str(NULL, "k"));
  assert_null(lcj_iter(NULL));
  assert_null(lcj_next(NULL, NULL));
  assert_null(lcj_iter_key(NULL));
  assert_null(lcj_iter_value(NULL));
  assert_null(lcj_dump(NULL));
  assert_int_equal(lcj_set_int(NULL, "k", 1), -1);
  assert_int_equal(lcj_set_bool(NULL, "k", 1), -1);

  /* integers at the edges */
  o = lcj_int(INT64_MIN);
  assert_int_equal(lcj_ival(o), INT64_MIN);
  lcj_free(o);
  o = lcj_int(INT64_MAX);
  s = lcj_dump(o);
  assert_string_equal(s, "9223372036854775807");
  free(s);
  lcj_free(o);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_config_defaults_and_names),
      cmocka_unit_test(test_config_transfers),
      cmocka_unit_test(test_config_flags_win),
      cmocka_unit_test(test_config_file_applies),
      cmocka_unit_test(test_config_values),
      cmocka_unit_test(test_config_bad_lines),
      cmocka_unit_test(test_config_parse_hostile),
      cmocka_unit_test_setup_teardown(test_config_load, td_setup, td_teardown),
      cmocka_unit_test(test_dir_update_touch_find),
      cmocka_unit_test(test_dir_resolve),
      cmocka_unit_test_setup_teardown(test_dir_save_load, td_setup,
                                      td_teardown),
      cmocka_unit_test_setup_teardown(test_dir_load_malformed, td_setup,
                                      td_teardown),
      cmocka_unit_test(test_json_parse_errors),
      cmocka_unit_test(test_json_round_trip),
      cmocka_unit_test(test_json_build_and_ownership),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
