/* main.c: lanchat, the command line: global options, then a table of
 * subcommands, one function each, talking to lanchatd over its control
 * socket (client.c) and printing for people or, with --json, for scripts. */
#include "cli.h"
#include "lanchat.h"
#include "paths.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
  char data_dir[PATH_MAX];
  char sock_path[PATH_MAX];
  int json;
  int connected;
  lcc_conn conn;
  lcj *last; /* the last reply, freed at exit */
} app;

static app A;

static void die(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));
static void die(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("lanchat: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(code);
}

/* Exits with what is wrong with the identity file that is there but cannot
 * be read (rc from lc_identity_public), and what to do; the file is never
 * changed. */
static void identity_die(int rc) {
  char path[PATH_MAX], q[PATH_MAX + 64];
  if (lc_paths_join(A.data_dir, "identity.key", path, sizeof path) != 0)
    die(LCC_EXIT_USAGE, "the data folder's path is too long");
  const char *qp = lc_paths_shq(path, q, sizeof q);
  struct stat st;
  int have = stat(path, &st) == 0;
  if (rc == LC_EKEYFILE && have && !S_ISREG(st.st_mode))
    die(LCC_EXIT_FAIL,
        "the identity %s is not a regular file; put the key file back there "
        "(from a backup)",
        path);
  if (rc == LC_EKEYFILE && have && (st.st_mode & 077))
    die(LCC_EXIT_FAIL,
        "the identity %s can be read or changed by other users (mode %04o), "
        "so it is not used; make it yours only: chmod 600 %s (if others could "
        "read it, they may have copied the key)",
        path, (unsigned)(st.st_mode & 07777), qp);
  if (rc == LC_EKEYFILE)
    die(LCC_EXIT_FAIL,
        "the identity %s is damaged or not a lanchat key file; it is left as "
        "it is. Restore it from a backup. Only if there is none: mv %s %s.bad, "
        "then lanchat init creates a new identity (your friends will see a "
        "new key)",
        path, qp, qp);
  die(LCC_EXIT_FAIL, "cannot read the identity %s: %s%s", path, lc_strerror(rc),
      rc == -EACCES ? "; it must belong to this user, with mode 600" : "");
}

/* 1 if the data folder holds a usable identity, 0 if none; exits if one is
 * there that cannot be used. */
static int has_identity(void) {
  uint8_t key[LC_KEY_BYTES];
  int rc = lc_identity_public(A.data_dir, key, NULL);
  if (rc == -ENOENT)
    return 0;
  if (rc < 0)
    identity_die(rc);
  return 1;
}

static void connect_daemon(void) {
  if (A.connected)
    return;
  int rc = lcc_connect(&A.conn, A.sock_path);
  if (rc == 0) {
    A.connected = 1;
    return;
  }
  if (!has_identity())
    die(LCC_EXIT_NOID,
        "no identity in %s yet; create one with:\n  lanchat --data-dir %s "
        "init --nick NAME\nthen start the daemon with:\n  lanchatd "
        "--data-dir %s",
        A.data_dir, A.data_dir, A.data_dir);
  if (rc == -ENOENT || rc == -ECONNREFUSED)
    die(LCC_EXIT_NODAEMON,
        "lanchatd is not running for %s (no control socket at %s); start "
        "it with:\n  lanchatd --data-dir %s",
        A.data_dir, A.sock_path, A.data_dir);
  die(LCC_EXIT_NODAEMON, "cannot connect to %s: %s", A.sock_path,
      strerror(-rc));
}

/* Prints a daemon's error reply and exits with the matching status. */
static void report_error(const lcj *reply) {
  lcj *e = lcj_get(reply, "error");
  const char *code = lcj_get_str(e, "code");
  const char *msg = lcj_get_str(e, "message");
  if (A.json)
    lcc_print_json(e);
  else
    fprintf(stderr, "lanchat: %s\n", msg ? msg : "request failed");
  lcj *cands = lcj_get(e, "candidates");
  if (!A.json && lcj_len(cands) > 0) {
    fprintf(stderr, "candidates:\n");
    for (size_t i = 0; i < lcj_len(cands); i++) {
      lcj *p = lcj_at(cands, i);
      if (lcj_get_str(p, "name")) /* a group */
        fprintf(stderr, "  #%-19s %s (group, %zu members)\n",
                lcj_get_str(p, "name"), lcj_get_str(p, "id"),
                lcj_len(lcj_get(p, "members")));
      else
        fprintf(stderr, "  %-20s %s (%s)\n", lcj_get_str(p, "nick"),
                lcj_get_str(p, "id"), lcj_get_str(p, "presence"));
    }
  }
  int unknown_peer =
      code &&
      (!strcmp(code, "unknown_peer") || !strcmp(code, "ambiguous_peer") ||
       !strcmp(code, "unknown_group") || !strcmp(code, "ambiguous_group"));
  exit(unknown_peer ? LCC_EXIT_NOPEER : LCC_EXIT_FAIL);
}

/* Calls a command; returns its result (borrowed until the next call) or
 * exits with the error. */
static lcj *call(const char *cmd, lcj *args) {
  connect_daemon();
  lcj_free(A.last);
  A.last = lcc_call(&A.conn, cmd, args);
  if (!A.last)
    die(LCC_EXIT_NODAEMON, "the daemon closed the connection");
  if (!lcj_bval(lcj_get(A.last, "ok")))
    report_error(A.last);
  return lcj_get(A.last, "result");
}

static lcj *args_obj(void) {
  return lcj_obj();
}

/* ---- option helpers ---- */

static void usage_die(const char *cmd, const char *use) {
  die(LCC_EXIT_USAGE, "usage: lanchat %s %s", cmd, use);
}

static long parse_num(const char *s, const char *what, long min, long max) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < min || v > max)
    die(LCC_EXIT_USAGE, "%s: expected a number from %ld to %ld, not '%s'", what,
        min, max, s);
  return v;
}

/* Joins argv[i..] with spaces (a message typed without quotes). */
static char *join_words(int argc, char **argv, int i) {
  size_t len = 1;
  for (int k = i; k < argc; k++)
    len += strlen(argv[k]) + 1;
  char *s = malloc(len);
  if (!s)
    die(LCC_EXIT_FAIL, "out of memory");
  s[0] = '\0';
  for (int k = i; k < argc; k++) {
    if (k > i)
      strcat(s, " ");
    strcat(s, argv[k]);
  }
  return s;
}

static char *read_stdin(void) {
  size_t cap = 4096, len = 0;
  char *s = malloc(cap);
  for (;;) {
    if (!s)
      die(LCC_EXIT_FAIL, "out of memory");
    if (len == cap - 1) {
      if (cap > (2u << 20))
        die(LCC_EXIT_USAGE, "the message on standard input is over 1 MiB");
      cap *= 2;
      char *bigger = realloc(s, cap);
      if (!bigger)
        free(s);
      s = bigger; /* NULL: dies at the top of the loop */
      continue;
    }
    size_t n = fread(s + len, 1, cap - 1 - len, stdin);
    if (n == 0)
      break;
    len += n;
  }
  /* one trailing newline (from echo or a heredoc) is not part of it */
  if (len && s[len - 1] == '\n')
    len--;
  s[len] = '\0';
  return s;
}

/* ---- subcommands ---- */

static int cmd_init(int argc, char **argv) {
  const char *nick = NULL, *pfile = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--nick") && i + 1 < argc)
      nick = argv[++i];
    else if (!strcmp(argv[i], "--passphrase-file") && i + 1 < argc)
      pfile = argv[++i];
    else
      usage_die("init", "--nick NAME [--passphrase-file FILE]");
  }
  if (!nick || !*nick || strlen(nick) > LC_NICK_MAX)
    usage_die("init", "--nick NAME (1 to 64 bytes) [--passphrase-file FILE]");
  char pass[1024] = "";
  if (pfile) {
    FILE *f = fopen(pfile, "re");
    if (!f)
      die(LCC_EXIT_USAGE, "%s: %s", pfile, strerror(errno));
    size_t n = fread(pass, 1, sizeof pass - 1, f);
    fclose(f);
    pass[n] = '\0';
    pass[strcspn(pass, "\r\n")] = '\0';
  } else if (getenv("LANCHAT_PASSPHRASE")) {
    snprintf(pass, sizeof pass, "%s", getenv("LANCHAT_PASSPHRASE"));
  }
  uint8_t key[LC_KEY_BYTES];
  int mk = lc_paths_mkdirs(A.data_dir); /* ~/.local/share may not exist */
  if (mk < 0)
    die(LCC_EXIT_FAIL,
        "cannot create the data folder %s: %s; create it yourself (mkdir -m "
        "700), or choose another with --data-dir",
        A.data_dir, strerror(-mk));
  /* the same checks as lanchatd's, before a secret key goes there */
  char why[PATH_MAX * 2 + 600];
  int safe = lc_paths_check_data_dir(A.data_dir, why, sizeof why);
  if (safe < 0)
    die(LCC_EXIT_FAIL, "%s", why);
  if (safe > 0)
    fprintf(stderr, "lanchat: warning: %s\n", why);
  int rc = lc_identity_create(A.data_dir, pass[0] ? pass : NULL, key);
  memset(pass, 0, sizeof pass);
  if (rc == LC_EEXIST) {
    /* never replaced, whatever it holds */
    int prc = lc_identity_public(A.data_dir, key, NULL);
    if (prc < 0 && prc != -ENOENT)
      identity_die(prc);
    char hexk[LC_KEY_HEX_LEN + 1] = "?";
    if (prc == 0)
      lc_key_to_hex(hexk, key);
    die(LCC_EXIT_FAIL, "%s already holds an identity (%s)", A.data_dir, hexk);
  }
  if (rc < 0)
    die(LCC_EXIT_FAIL, "cannot create an identity in %s: %s", A.data_dir,
        lc_strerror(rc));
  /* the nickname, for the daemon to start with */
  char path[PATH_MAX];
  lc_paths_join(A.data_dir, LC_PROFILE_NAME, path, sizeof path);
  lcj *p = lcj_obj();
  lcj_set_str(p, "nick", nick);
  lcj_set_str(p, "presence", "online");
  lcj_set_str(p, "status", "");
  char *text = lcj_dump(p);
  lcj_free(p);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || !text || write(fd, text, strlen(text)) < 0 ||
      write(fd, "\n", 1) < 0)
    die(LCC_EXIT_FAIL, "cannot write %s: %s", path, strerror(errno));
  close(fd);
  free(text);
  char hexk[LC_KEY_HEX_LEN + 1];
  lc_key_to_hex(hexk, key);
  if (A.json) {
    lcj *o = lcj_obj();
    lcj_set_str(o, "id", hexk);
    lcj_set_str(o, "nick", nick);
    lcj_set_str(o, "data_dir", A.data_dir);
    lcj_set_bool(o, "sealed", pfile || getenv("LANCHAT_PASSPHRASE"));
    lcc_print_json(o);
    lcj_free(o);
  } else {
    printf("created the identity of %s in %s\n  id %s\n", nick, A.data_dir,
           hexk);
    printf("start the daemon with: lanchatd --data-dir %s\n", A.data_dir);
  }
  return 0;
}

static int cmd_whoami(int argc, char **argv) {
  (void)argv;
  if (argc > 1)
    usage_die("whoami", "");
  if (lcc_connect(&A.conn, A.sock_path) == 0) {
    A.connected = 1;
    lcj *r = call("whoami", NULL);
    lcj *p = lcj_get(r, "peer");
    if (A.json) {
      lcc_print_json(r);
      return 0;
    }
    printf("%s (%s%s%s)\n  id          %s\n  fingerprint %s\n  daemon pid "
           "%lld, port %lld, data folder %s\n",
           lcj_get_str(p, "nick"), lcj_get_str(p, "presence"),
           *lcj_get_str(p, "status") ? ": " : "", lcj_get_str(p, "status"),
           lcj_get_str(p, "id"), lcj_get_str(p, "fingerprint"),
           (long long)lcj_ival(lcj_get(r, "pid")),
           (long long)lcj_ival(lcj_get(r, "port")), A.data_dir);
    return 0;
  }
  /* no daemon: what the data folder says */
  uint8_t key[LC_KEY_BYTES];
  int sealed = 0;
  int rc = lc_identity_public(A.data_dir, key, &sealed);
  if (rc < 0 && rc != -ENOENT)
    identity_die(rc);
  if (rc < 0)
    connect_daemon(); /* exits with the right message */
  char hexk[LC_KEY_HEX_LEN + 1];
  lc_key_to_hex(hexk, key);
  if (A.json) {
    lcj *o = lcj_obj(), *pj = lcj_obj();
    lcj_set_str(pj, "id", hexk);
    lcj_set(o, "peer", pj);
    lcj_set_str(o, "data_dir", A.data_dir);
    lcj_set_bool(o, "running", 0);
    lcc_print_json(o);
    lcj_free(o);
  } else {
    char fp[LC_FINGERPRINT_LEN + 1];
    lc_fingerprint(fp, key);
    printf("id %s%s\n  fingerprint %s\n  data folder %s (lanchatd is not "
           "running)\n",
           hexk, sealed ? " (protected by a passphrase)" : "", fp, A.data_dir);
  }
  return 0;
}

static int cmd_peers(int argc, char **argv) {
  lcj *a = args_obj();
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--all"))
      lcj_set_bool(a, "all", 1);
    else
      usage_die("peers", "[--all]");
  }
  lcj *r = call("peers", a);
  lcj *peers = lcj_get(r, "peers");
  if (A.json) {
    for (size_t i = 0; i < lcj_len(peers); i++)
      lcc_print_json(lcj_at(peers, i));
  } else {
    lcc_print_peer_table(peers);
  }
  return 0;
}

static int cmd_nick(int argc, char **argv) {
  if (argc != 2)
    usage_die("nick", "NAME");
  lcj *a = args_obj();
  lcj_set_str(a, "nick", argv[1]);
  lcj *r = call("nick", a);
  if (A.json)
    lcc_print_json(r);
  else
    printf("nickname: %s\n", lcj_get_str(r, "nick"));
  return 0;
}

static int cmd_status(int argc, char **argv) {
  if (argc < 2)
    usage_die("status", "online|away|busy [TEXT]");
  lcj *a = args_obj();
  lcj_set_str(a, "presence", argv[1]);
  char *text = join_words(argc, argv, 2);
  lcj_set_str(a, "text", text);
  free(text);
  lcj *r = call("status", a);
  if (A.json)
    lcc_print_json(r);
  else
    printf("%s%s%s\n", lcj_get_str(r, "presence"),
           *lcj_get_str(r, "status") ? ": " : "", lcj_get_str(r, "status"));
  return 0;
}

static int cmd_send(int argc, char **argv) {
  if (argc < 3)
    usage_die("send", "PEER TEXT... (or - to read the text from stdin)");
  char *text = argc == 3 && !strcmp(argv[2], "-") ? read_stdin()
                                                  : join_words(argc, argv, 2);
  lcj *a = args_obj();
  lcj *t = lcj_str(text);
  free(text);
  if (!t)
    die(LCC_EXIT_USAGE, "the message is not valid UTF-8");
  lcj_set_str(a, "to", argv[1]);
  lcj_set(a, "text", t);
  lcj *r = call("send", a);
  lcj *m = lcj_get(r, "message");
  if (A.json)
    lcc_print_json(m);
  else
    printf("%s\n", lcj_get_str(m, "id"));
  return 0;
}

static const char *self_id(void) {
  static char id[LC_KEY_HEX_LEN + 1];
  uint8_t key[LC_KEY_BYTES];
  if (!id[0] && lc_identity_public(A.data_dir, key, NULL) == 0)
    lc_key_to_hex(id, key);
  return id[0] ? id : NULL;
}

static void print_messages(lcj *msgs) {
  for (size_t i = 0; i < lcj_len(msgs); i++) {
    if (A.json)
      lcc_print_json(lcj_at(msgs, i));
    else
      lcc_print_message(lcj_at(msgs, i), self_id(), 0);
  }
}

static int cmd_history(int argc, char **argv) {
  if (argc < 2)
    usage_die("history", "PEER [--limit N] [--before MSGID]");
  lcj *a = args_obj();
  lcj_set_str(a, "with", argv[1]);
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--limit") && i + 1 < argc)
      lcj_set_int(a, "limit", parse_num(argv[++i], "--limit", 1, 1000));
    else if (!strcmp(argv[i], "--before") && i + 1 < argc)
      lcj_set_str(a, "before", argv[++i]);
    else
      usage_die("history", "PEER [--limit N] [--before MSGID]");
  }
  lcj *r = call("history", a);
  lcj *msgs = lcj_get(r, "messages");
  if (!A.json && lcj_len(msgs) == 0)
    printf("no messages with %s yet\n", argv[1]);
  print_messages(msgs);
  return 0;
}

static int cmd_conversations(int argc, char **argv) {
  (void)argv;
  if (argc > 1)
    usage_die("conversations", "");
  lcj *r = call("conversations", NULL);
  lcj *cv = lcj_get(r, "conversations");
  if (A.json) {
    for (size_t i = 0; i < lcj_len(cv); i++)
      lcc_print_json(lcj_at(cv, i));
    return 0;
  }
  if (lcj_len(cv) == 0)
    printf("no conversations yet\n");
  for (size_t i = 0; i < lcj_len(cv); i++) {
    lcj *c = lcj_at(cv, i), *p = lcj_get(c, "peer"), *last = lcj_get(c, "last");
    char sid[17], when[40] = "", gname[LC_GROUP_NAME_MAX + 2];
    const char *nick = lcj_get_str(p, "nick");
    if (lcj_is_obj(lcj_get(c, "group"))) {
      p = lcj_get(c, "group");
      snprintf(gname, sizeof gname, "#%s", lcj_get_str(p, "name"));
      nick = gname;
    }
    int64_t unread = lcj_ival(lcj_get(c, "unread"));
    lcc_local_time(lcj_get_str(last, "sent_at"), 1, when, sizeof when);
    char count[24] = "";
    if (unread)
      snprintf(count, sizeof count, "%lld new", (long long)unread);
    const char *text = lcj_get_str(last, "text");
    char who[LC_NICK_MAX + 4] = "";
    if (lcj_bval(lcj_get(last, "outgoing")))
      snprintf(who, sizeof who, "me: ");
    else if (lcj_get(last, "group") && lcj_get_str(last, "from_nick"))
      snprintf(who, sizeof who, "%s: ", lcj_get_str(last, "from_nick"));
    printf("%s%-20s%s %s%-8s%s %-19s %s%s\n", lcc_c("\033[1m"),
           nick && *nick ? nick : lcc_short_id(lcj_get_str(p, "id"), sid),
           lcc_c("\033[0m"), lcc_c("\033[33m"), count, lcc_c("\033[0m"), when,
           who, text ? text : "");
  }
  return 0;
}

static int cmd_unread(int argc, char **argv) {
  (void)argv;
  if (argc > 1)
    usage_die("unread", "");
  lcj *r = call("unread", NULL);
  if (A.json) {
    lcc_print_json(r);
    return 0;
  }
  lcj *cv = lcj_get(r, "conversations");
  printf("%lld unread\n", (long long)lcj_ival(lcj_get(r, "total")));
  for (size_t i = 0; i < lcj_len(cv); i++) {
    lcj *c = lcj_at(cv, i), *p = lcj_get(c, "peer");
    char sid[17], gname[LC_GROUP_NAME_MAX + 2];
    const char *nick = lcj_get_str(p, "nick");
    if (lcj_is_obj(lcj_get(c, "group"))) {
      p = lcj_get(c, "group");
      snprintf(gname, sizeof gname, "#%s", lcj_get_str(p, "name"));
      nick = gname;
    }
    printf("  %-20s %lld\n",
           nick && *nick ? nick : lcc_short_id(lcj_get_str(p, "id"), sid),
           (long long)lcj_ival(lcj_get(c, "unread")));
  }
  return 0;
}

static int cmd_read(int argc, char **argv) {
  if (argc != 2)
    usage_die("read", "PEER");
  lcj *a = args_obj();
  lcj_set_str(a, "with", argv[1]);
  lcj *r = call("read", a);
  if (A.json)
    lcc_print_json(r);
  else
    printf("%lld marked read\n", (long long)lcj_ival(lcj_get(r, "marked")));
  return 0;
}

static int cmd_search(int argc, char **argv) {
  const char *use = "QUERY... [--with PEER] [--limit N]";
  lcj *a = args_obj();
  char *query = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--with") && i + 1 < argc) {
      lcj_set_str(a, "with", argv[++i]);
    } else if (!strcmp(argv[i], "--limit") && i + 1 < argc) {
      lcj_set_int(a, "limit", parse_num(argv[++i], "--limit", 1, 1000));
    } else if (argv[i][0] == '-' && argv[i][1] == '-') {
      usage_die("search", use);
    } else {
      /* the words of the query, joined (lanchat search lunch OR usual) */
      size_t len = (query ? strlen(query) + 1 : 0) + strlen(argv[i]) + 1;
      char *q = realloc(query, len);
      if (!q)
        die(LCC_EXIT_FAIL, "out of memory");
      if (!query)
        q[0] = '\0';
      else
        strcat(q, " ");
      strcat(q, argv[i]);
      query = q;
    }
  }
  if (!query)
    usage_die("search", use);
  lcj_set_str(a, "query", query);
  free(query);
  lcj *r = call("search", a);
  lcj *msgs = lcj_get(r, "messages");
  if (!A.json && lcj_len(msgs) == 0)
    printf("nothing found\n");
  print_messages(msgs);
  return 0;
}

static int cmd_export(int argc, char **argv) {
  const char *use = "PEER [--format json|text] [--output FILE]";
  if (argc < 2)
    usage_die("export", use);
  const char *format = "json", *output = NULL;
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--format") && i + 1 < argc)
      format = argv[++i];
    else if (!strcmp(argv[i], "--output") && i + 1 < argc)
      output = argv[++i];
    else
      usage_die("export", use);
  }
  char path[PATH_MAX], tmpdir[PATH_MAX] = "";
  if (output) {
    if (output[0] == '/')
      snprintf(path, sizeof path, "%s", output);
    else if (!getcwd(path, sizeof path) ||
             strlen(path) + strlen(output) + 2 > sizeof path)
      die(LCC_EXIT_USAGE, "--output: path too long");
    else
      snprintf(path + strlen(path), sizeof path - strlen(path), "/%s", output);
  } else {
    /* to standard output, through a private temporary folder */
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/lanchat-export-XXXXXX",
             t && *t ? t : "/tmp");
    if (!mkdtemp(tmpdir))
      die(LCC_EXIT_FAIL, "mkdtemp: %s", strerror(errno));
    snprintf(path, sizeof path, "%s/export", tmpdir);
  }
  lcj *a = args_obj();
  lcj_set_str(a, "with", argv[1]);
  lcj_set_str(a, "format", format);
  lcj_set_str(a, "path", path);
  lcj *r = call("export", a);
  if (!output) {
    FILE *f = fopen(path, "re");
    char buf[65536];
    size_t n;
    while (f && (n = fread(buf, 1, sizeof buf, f)) > 0)
      fwrite(buf, 1, n, stdout);
    if (f)
      fclose(f);
    unlink(path);
    rmdir(tmpdir);
  } else if (A.json) {
    lcc_print_json(r);
  } else {
    printf("%lld messages written to %s\n",
           (long long)lcj_ival(lcj_get(r, "count")), path);
  }
  return 0;
}

static void print_contact(const lcj *c);

static int cmd_watch(int argc, char **argv) {
  (void)argv;
  if (argc > 1)
    usage_die("watch", "");
  call("subscribe", NULL);
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (;;) {
    lcj *ev;
    int r = lcc_next(&A.conn, -1, &ev);
    if (r < 0)
      break;
    const char *name = lcj_get_str(ev, "event");
    if (A.json || !name) {
      lcc_print_json(ev);
    } else if (!strcmp(name, "message") || !strcmp(name, "changed")) {
      if (!strcmp(name, "changed"))
        printf("edited: ");
      lcc_print_message(lcj_get(ev, "message"), self_id(), 1);
    } else if (!strcmp(name, "peer")) {
      lcj *p = lcj_get(ev, "peer");
      printf("%s%s %s%s%s%s\n", lcc_c("\033[90m"), lcj_get_str(p, "nick"),
             lcj_get_str(ev, "change"),
             !strcmp(lcj_get_str(ev, "change"), "left") ? "" : ": ",
             !strcmp(lcj_get_str(ev, "change"), "left")
                 ? ""
                 : lcj_get_str(p, "presence"),
             lcc_c("\033[0m"));
    } else if (!strcmp(name, "delivery")) {
      printf("%s%s %s%s\n", lcc_c("\033[90m"), lcj_get_str(ev, "id"),
             lcj_get_str(ev, "state"), lcc_c("\033[0m"));
    } else if (!strcmp(name, "typing")) {
      printf("%s%s is %s%s\n", lcc_c("\033[90m"), lcj_get_str(ev, "nick"),
             lcj_get_str(ev, "state"), lcc_c("\033[0m"));
    } else if (!strcmp(name, "contact")) {
      lcj *c = lcj_get(ev, "contact");
      printf("%scontact %s:%s ", lcc_c("\033[33m"), lcj_get_str(ev, "change"),
             lcc_c("\033[0m"));
      print_contact(c);
      if (lcj_get_str(ev, "previous_key"))
        printf("  %sthe nickname belonged to %s: nothing is sent to the new "
               "key until you run: lanchat trust %s%s\n",
               lcc_c("\033[31m"), lcj_get_str(ev, "previous_key"),
               lcj_get_str(lcj_get(c, "peer"), "id"), lcc_c("\033[0m"));
    } else if (!strncmp(name, "transfer_", 9)) {
      lcc_print_transfer_event(ev);
    } else if (!strcmp(name, "daemon")) {
      printf("lanchatd is stopping\n");
    } else {
      lcc_print_json(ev);
    }
    int stop = name && !strcmp(name, "daemon");
    lcj_free(ev);
    if (stop)
      break;
  }
  return 0;
}

static int cmd_chat(int argc, char **argv) {
  if (argc != 2)
    usage_die("chat", "PEER");
  connect_daemon();
  return lcc_chat(&A.conn, argv[1], self_id());
}

static int cmd_edit(int argc, char **argv) {
  if (argc < 3)
    usage_die("edit", "MSGID TEXT...");
  lcj *a = args_obj();
  lcj_set_str(a, "msg", argv[1]);
  char *text = join_words(argc, argv, 2);
  lcj_set_str(a, "text", text);
  free(text);
  lcj *r = call("edit", a);
  if (A.json)
    lcc_print_json(lcj_get(r, "message"));
  else
    lcc_print_message(lcj_get(r, "message"), self_id(), 0);
  return 0;
}

static int cmd_retract(int argc, char **argv) {
  if (argc != 2)
    usage_die("retract", "MSGID");
  lcj *a = args_obj();
  lcj_set_str(a, "msg", argv[1]);
  lcj *r = call("retract", a);
  if (A.json)
    lcc_print_json(lcj_get(r, "message"));
  else
    printf("retracted %s\n", argv[1]);
  return 0;
}

static int cmd_stats(int argc, char **argv) {
  (void)argv;
  if (argc > 1)
    usage_die("stats", "");
  lcj *r = call("stats", NULL);
  lcc_print_json(r);
  return 0;
}

static int cmd_stop(int argc, char **argv) {
  (void)argv;
  if (argc > 1)
    usage_die("stop", "");
  call("subscribe", NULL);
  call("stop", NULL);
  /* wait until the daemon has said goodbye and closed the connection */
  lcj *ev;
  while (lcc_next(&A.conn, 10000, &ev) == 1)
    lcj_free(ev);
  /* and until its process has ended (its lock is free), so that a new
   * lanchatd can start right after this command */
  char lock[PATH_MAX];
  int fd = lc_paths_join(A.data_dir, LC_LOCK_NAME, lock, sizeof lock) == 0
               ? open(lock, O_RDONLY | O_CLOEXEC)
               : -1;
  for (int i = 0; fd >= 0 && i < 1000; i++) {
    if (flock(fd, LOCK_SH | LOCK_NB) == 0)
      break;
    usleep(10000);
  }
  if (fd >= 0)
    close(fd);
  if (!A.json)
    printf("lanchatd stopped\n");
  return 0;
}

/* ---- contacts ---- */

static void print_contact(const lcj *c) {
  lcj *p = lcj_get(c, "peer");
  char sid[17];
  const char *nick = lcj_get_str(p, "nick");
  const char *state = lcj_get_str(c, "state");
  char flags[64] = "";
  if (lcj_bval(lcj_get(c, "blocked")))
    strcat(flags, " blocked");
  if (lcj_bval(lcj_get(c, "held")))
    strcat(flags, " KEY-CHANGED(held)");
  if (lcj_bval(lcj_get(c, "trusted")))
    strcat(flags, " trusted");
  const char *what = !strcmp(state, "friend")   ? "friend"
                     : !strcmp(state, "asked")  ? "request sent"
                     : !strcmp(state, "asking") ? "asks to be a friend"
                                                : "-";
  printf("%-20s %-16s %-20s %s %s%s%s\n", nick && *nick ? nick : "?",
         lcc_short_id(lcj_get_str(p, "id"), sid), what,
         lcj_get_str(p, "fingerprint"), lcc_c("\033[33m"), flags,
         lcc_c("\033[0m"));
  if (*lcj_get_str(c, "note"))
    printf("%21s\"%s\"\n", "", lcj_get_str(c, "note"));
}

static int contact_cmd(const char *cmd, const char *peer, const char *note,
                       const char *done) {
  lcj *a = args_obj();
  lcj_set_str(a, "peer", peer);
  if (note && *note)
    lcj_set_str(a, "note", note);
  lcj *r = call(cmd, a);
  lcj *c = lcj_get(r, "contact");
  if (A.json) {
    lcc_print_json(c);
  } else {
    printf("%s: ", done);
    print_contact(c);
  }
  return 0;
}

static int cmd_friend(int argc, char **argv) {
  const char *use = "add PEER [MESSAGE...] | accept|reject|remove PEER | list";
  if (argc < 2)
    usage_die("friend", use);
  const char *sub = argv[1];
  if (!strcmp(sub, "list") && argc == 2) {
    lcj *r = call("friends", NULL);
    lcj *v = lcj_get(r, "contacts");
    for (size_t i = 0; i < lcj_len(v); i++) {
      if (A.json)
        lcc_print_json(lcj_at(v, i));
      else
        print_contact(lcj_at(v, i));
    }
    if (!A.json && lcj_len(v) == 0)
      printf("no contacts yet (lanchat friend add PEER)\n");
    return 0;
  }
  if (!strcmp(sub, "add") && argc >= 3) {
    char *note = join_words(argc, argv, 3);
    int rc = contact_cmd("friend_add", argv[2], note, "asked");
    free(note);
    return rc;
  }
  if (argc != 3)
    usage_die("friend", use);
  if (!strcmp(sub, "accept"))
    return contact_cmd("friend_accept", argv[2], NULL, "accepted");
  if (!strcmp(sub, "reject"))
    return contact_cmd("friend_reject", argv[2], NULL, "rejected");
  if (!strcmp(sub, "remove"))
    return contact_cmd("friend_remove", argv[2], NULL, "removed");
  usage_die("friend", use);
  return LCC_EXIT_USAGE;
}

static int cmd_block(int argc, char **argv) {
  if (argc != 2)
    usage_die(argv[0], "PEER");
  int on = !strcmp(argv[0], "block");
  return contact_cmd(on ? "block" : "unblock", argv[1], NULL,
                     on ? "blocked" : "unblocked");
}

static int cmd_trust(int argc, char **argv) {
  if (argc != 2)
    usage_die("trust", "PEER (accept a peer's new key)");
  return contact_cmd("trust", argv[1], NULL, "trusted");
}

static int cmd_policy(int argc, char **argv) {
  if (argc > 2 ||
      (argc == 2 && strcmp(argv[1], "anyone") && strcmp(argv[1], "contacts")))
    usage_die("policy", "[anyone|contacts]");
  lcj *a = args_obj();
  if (argc == 2)
    lcj_set_str(a, "accept", argv[1]);
  lcj *r = call("policy", a);
  if (A.json)
    lcc_print_json(r);
  else
    printf("messages accepted from: %s\n", lcj_get_str(r, "accept"));
  return 0;
}

/* ---- groups ---- */

static void print_group(const lcj *g, int with_members) {
  char sid[17];
  lcj *m = lcj_get(g, "members");
  printf("%s#%s%s  %s  %zu members%s\n", lcc_c("\033[1m"),
         lcj_get_str(g, "name"), lcc_c("\033[0m"),
         lcc_short_id(lcj_get_str(g, "id"), sid), lcj_len(m),
         lcj_bval(lcj_get(g, "member")) ? "" : "  (not a member)");
  for (size_t i = 0; with_members && i < lcj_len(m); i++) {
    lcj *p = lcj_at(m, i);
    printf("  %-20s %-16s %s%s\n", lcj_get_str(p, "nick"),
           lcc_short_id(lcj_get_str(p, "id"), sid),
           lcj_bval(lcj_get(p, "owner")) ? "owner " : "",
           lcj_bval(lcj_get(p, "me"))       ? "(me)"
           : lcj_bval(lcj_get(p, "online")) ? "online"
                                            : "offline");
  }
}

static int group_reply_print(lcj *r) {
  lcj *g = lcj_get(r, "group");
  if (A.json)
    lcc_print_json(g);
  else
    print_group(g, 1);
  return 0;
}

static int cmd_group(int argc, char **argv) {
  const char *use = "create NAME PEER... | invite|remove GROUP PEER | leave "
                    "GROUP | rename GROUP NAME | list | members GROUP";
  if (argc < 2)
    usage_die("group", use);
  const char *sub = argv[1];
  lcj *a = args_obj();
  if (!strcmp(sub, "create") && argc >= 3) {
    lcj_set_str(a, "name", argv[2]);
    lcj *m = lcj_arr();
    for (int i = 3; i < argc; i++)
      lcj_push(m, lcj_str(argv[i]));
    lcj_set(a, "members", m);
    return group_reply_print(call("group_create", a));
  }
  if ((!strcmp(sub, "invite") || !strcmp(sub, "remove")) && argc == 4) {
    lcj_set_str(a, "group", argv[2]);
    lcj_set_str(a, "peer", argv[3]);
    return group_reply_print(
        call(!strcmp(sub, "invite") ? "group_invite" : "group_remove", a));
  }
  if (!strcmp(sub, "leave") && argc == 3) {
    lcj_set_str(a, "group", argv[2]);
    return group_reply_print(call("group_leave", a));
  }
  if (!strcmp(sub, "rename") && argc == 4) {
    lcj_set_str(a, "group", argv[2]);
    lcj_set_str(a, "name", argv[3]);
    return group_reply_print(call("group_rename", a));
  }
  if (!strcmp(sub, "members") && argc == 3) {
    lcj_set_str(a, "group", argv[2]);
    return group_reply_print(call("group_members", a));
  }
  if (!strcmp(sub, "list") && argc == 2) {
    lcj_free(a);
    lcj *v = lcj_get(call("groups", NULL), "groups");
    for (size_t i = 0; i < lcj_len(v); i++) {
      if (A.json)
        lcc_print_json(lcj_at(v, i));
      else
        print_group(lcj_at(v, i), 0);
    }
    if (!A.json && lcj_len(v) == 0)
      printf("no groups yet (lanchat group create NAME PEER...)\n");
    return 0;
  }
  lcj_free(a);
  usage_die("group", use);
  return LCC_EXIT_USAGE;
}

/* ---- files, folders and voice messages ---- */

extern char **environ;

/* A path for the daemon, whose current folder is not ours: absolute, and
 * with a final symbolic link kept as it is (the file is sent under the
 * name the user typed).  One that does not exist is only made absolute:
 * the daemon says it is not there. */
static char *daemon_path(const char *p) {
  char buf[PATH_MAX], *r = NULL;
  struct stat st;
  size_t n = strlen(p);
  if (n == 0 || n >= sizeof buf)
    die(LCC_EXIT_USAGE, "'%s': not a usable path", p);
  memcpy(buf, p, n + 1);
  while (n > 1 && buf[n - 1] == '/')
    buf[--n] = '\0';
  char *slash = strrchr(buf, '/');
  const char *base = slash ? slash + 1 : buf;
  if (lstat(buf, &st) == 0 && S_ISLNK(st.st_mode) && strcmp(base, ".") &&
      strcmp(base, "..")) {
    /* the folder resolved, the link's own name kept */
    char dir[PATH_MAX];
    if (slash == buf)
      snprintf(dir, sizeof dir, "/");
    else if (slash)
      snprintf(dir, sizeof dir, "%.*s", (int)(slash - buf), buf);
    else
      snprintf(dir, sizeof dir, ".");
    char *d = realpath(dir, NULL);
    if (d) {
      size_t len = strlen(d) + strlen(base) + 2;
      r = malloc(len);
      if (r)
        snprintf(r, len, "%s/%s", strcmp(d, "/") ? d : "", base);
      free(d);
    }
  } else {
    r = realpath(buf, NULL);
  }
  if (!r) {
    char cwd[PATH_MAX];
    if (buf[0] == '/')
      r = strdup(buf);
    else if (getcwd(cwd, sizeof cwd)) {
      size_t len = strlen(cwd) + strlen(buf) + 2;
      r = malloc(len);
      if (r)
        snprintf(r, len, "%s/%s", cwd, buf);
    }
  }
  if (!r)
    die(LCC_EXIT_FAIL, "%s: %s", p, strerror(errno));
  return r;
}

/* What send-file and accept --wait show while transfers run. */
typedef struct {
  char id[2 * LC_MSGID_BYTES + 1];
  char nick[LC_NICK_MAX + 1];
  char what[600]; /* lcc_transfer_summary */
  char name[256];
  char state[16];
  char error[200];
  int by_peer, outgoing;
  uint64_t total, bytes, rate, eta_ms;
} xfer_view;

static int xfer_over(const char *state) {
  return !strcmp(state, "done") || !strcmp(state, "declined") ||
         !strcmp(state, "cancelled") || !strcmp(state, "failed");
}

static uint64_t juint(const lcj *o, const char *key) {
  int64_t v = lcj_ival(lcj_get(o, key));
  return v < 0 ? 0 : (uint64_t)v;
}

static void view_set(xfer_view *v, const lcj *t) {
  char sid[17];
  const char *s;
  /* cppcheck-suppress ctuuninitvar ; snprintf writes v->id, reads nothing */
  snprintf(v->id, sizeof v->id, "%s", lcj_get_str(t, "id"));
  s = lcj_get_str(t, "peer_nick");
  snprintf(v->nick, sizeof v->nick, "%s",
           s && *s ? s : lcc_short_id(lcj_get_str(t, "peer"), sid));
  lcc_transfer_summary(t, v->what, sizeof v->what);
  s = lcj_get_str(t, "name");
  snprintf(v->name, sizeof v->name, "%s", s ? s : "?");
  s = lcj_get_str(t, "state");
  snprintf(v->state, sizeof v->state, "%s", s ? s : "?");
  lcj *e = lcj_get(t, "error");
  snprintf(v->error, sizeof v->error, "%s",
           lcj_is_obj(e) ? lcj_get_str(e, "message") : "");
  v->by_peer = lcj_bval(lcj_get(t, "by_peer"));
  v->outgoing = lcj_bval(lcj_get(t, "outgoing"));
  v->total = juint(t, "total");
  v->bytes = juint(t, "bytes");
  v->rate = juint(t, "rate");
  v->eta_ms = juint(t, "eta_ms");
}

/* One line, redrawn in place on a terminal: every transfer together. */
static void views_draw(const xfer_view *v, size_t n) {
  uint64_t bytes = 0, total = 0, rate = 0, eta = 0;
  size_t offered = 0, over = 0;
  for (size_t i = 0; i < n; i++) {
    if (!strcmp(v[i].state, "offered"))
      offered++;
    if (xfer_over(v[i].state))
      over++;
    if (!strcmp(v[i].state, "accepted") || !strcmp(v[i].state, "done")) {
      bytes += v[i].bytes;
      total += v[i].total;
      rate += v[i].rate;
      if (v[i].eta_ms > eta)
        eta = v[i].eta_ms;
    }
  }
  char who[LC_NICK_MAX + 32];
  if (n == 1)
    snprintf(who, sizeof who, "%s %s", v[0].outgoing ? "to" : "from",
             v[0].nick);
  else
    snprintf(who, sizeof who, "to %zu peers, %zu over", n, over);
  fprintf(stderr, "\r\033[K%.40s %s", v[0].name, who);
  if (offered == n) {
    fprintf(stderr, ": waiting for %s", n == 1 ? "an answer" : "answers");
  } else if (total) {
    char b[32], t[32], r[32], e[32];
    unsigned pct = (unsigned)(bytes >= total ? 100 : bytes * 100 / total);
    char bar[25];
    unsigned fill = pct * 24 / 100;
    for (unsigned i = 0; i < 24; i++)
      bar[i] = i < fill ? '#' : ' ';
    bar[24] = '\0';
    lcc_size(bytes, b, sizeof b);
    lcc_size(total, t, sizeof t);
    lcc_size(rate, r, sizeof r);
    lcc_duration(eta, e, sizeof e);
    fprintf(stderr, " [%s] %3u%%  %s / %s", bar, pct, b, t);
    if (rate)
      fprintf(stderr, "  %s/s", r);
    if (eta && pct < 100)
      fprintf(stderr, "  %s left", e);
  }
  fflush(stderr);
}

/* Follows the transfers (subscribed already) until each is over; prints
 * on a terminal a progress line, else a line per change (JSON lines with
 * --json).  0 if all are done, 1 if any was declined, cancelled or
 * failed. */
static int views_wait(xfer_view *v, size_t n) {
  int tty = !A.json && isatty(STDERR_FILENO);
  if (tty) {
    fprintf(stderr, "(Ctrl-C stops watching; the transfer goes on in the "
                    "daemon: lanchat transfers)\n");
    views_draw(v, n);
  }
  for (;;) {
    size_t over = 0;
    for (size_t i = 0; i < n; i++)
      over += xfer_over(v[i].state) != 0;
    if (over == n)
      break;
    lcj *ev;
    if (lcc_next(&A.conn, -1, &ev) != 1) {
      if (tty)
        fputc('\n', stderr);
      die(LCC_EXIT_NODAEMON, "the daemon closed the connection");
    }
    const char *name = lcj_get_str(ev, "event");
    if (name && !strcmp(name, "daemon")) {
      lcj_free(ev);
      if (tty)
        fputc('\n', stderr);
      die(LCC_EXIT_FAIL, "lanchatd is stopping; the transfer resumes when it "
                         "is back");
    }
    lcj *t = lcj_get(ev, "transfer");
    const char *id = lcj_get_str(t, "id");
    for (size_t i = 0; name && id && !strncmp(name, "transfer_", 9) && i < n;
         i++) {
      if (strcmp(v[i].id, id))
        continue;
      char before[16];
      snprintf(before, sizeof before, "%s", v[i].state);
      view_set(&v[i], t);
      if (A.json) {
        lcc_print_json(ev);
        fflush(stdout);
      } else if (tty) {
        views_draw(v, n);
      } else if (strcmp(before, v[i].state)) {
        fprintf(stderr, "%s %s %s: %s\n", v[i].name,
                v[i].outgoing ? "to" : "from", v[i].nick, v[i].state);
      }
    }
    lcj_free(ev);
  }
  int rc = 0;
  for (size_t i = 0; i < n; i++)
    if (strcmp(v[i].state, "done"))
      rc = LCC_EXIT_FAIL;
  if (tty)
    fputs(rc == 0 ? "  done\n" : "\n", stderr);
  for (size_t i = 0; i < n; i++) {
    if (!strcmp(v[i].state, "done"))
      continue;
    if (!A.json)
      fprintf(stderr, "lanchat: %s %s %s: %s%s%s%s\n", v[i].what,
              v[i].outgoing ? "to" : "from", v[i].nick, v[i].state,
              v[i].by_peer ? " by the peer" : "", v[i].error[0] ? ": " : "",
              v[i].error);
  }
  return rc;
}

static void subscribe_transfers(void) {
  lcj *a = args_obj(), *ev = lcj_arr();
  lcj_push(ev, lcj_str("transfer"));
  lcj_set(a, "events", ev);
  call("subscribe", a);
}

/* Prints the reply of send_files or send_voice: each transfer's id (or
 * the transfer, with --json); returns the views to wait on. */
static xfer_view *offers_print(lcj *r, size_t *n) {
  lcj *ts = lcj_get(r, "transfers");
  *n = lcj_len(ts);
  xfer_view *v = calloc(*n ? *n : 1, sizeof *v);
  if (!v)
    die(LCC_EXIT_FAIL, "out of memory");
  for (size_t i = 0; i < *n; i++) {
    lcj *t = lcj_at(ts, i);
    view_set(&v[i], t);
    if (A.json)
      lcc_print_json(t);
    else
      printf("%s\n", v[i].id);
  }
  fflush(stdout);
  return v;
}

static int cmd_send_file(int argc, char **argv) {
  const char *use = "PEER|GROUP PATH... [--no-wait]";
  const char *to = NULL;
  int wait = 1, dashdash = 0;
  lcj *paths = lcj_arr();
  for (int i = 1; i < argc; i++) {
    if (!dashdash && !strcmp(argv[i], "--no-wait")) {
      wait = 0;
    } else if (!dashdash && !strcmp(argv[i], "--")) {
      dashdash = 1;
    } else if (!dashdash && argv[i][0] == '-' && argv[i][1] == '-') {
      usage_die("send-file", use);
    } else if (!to) {
      to = argv[i];
    } else {
      char *p = daemon_path(argv[i]);
      lcj *s = lcj_str(p);
      free(p);
      if (!s)
        die(LCC_EXIT_USAGE, "'%s': the daemon takes UTF-8 paths only", argv[i]);
      lcj_push(paths, s);
    }
  }
  if (!to || lcj_len(paths) == 0) {
    lcj_free(paths);
    usage_die("send-file", use);
  }
  if (wait)
    subscribe_transfers();
  lcj *a = args_obj();
  lcj_set_str(a, "to", to);
  lcj_set(a, "paths", paths);
  size_t n;
  xfer_view *v = offers_print(call("send_files", a), &n);
  int rc = wait ? views_wait(v, n) : 0;
  free(v);
  return rc;
}

static int cmd_transfers(int argc, char **argv) {
  int all = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--all"))
      all = 1;
    else
      usage_die("transfers", "[--all]");
  }
  lcj *a = args_obj();
  lcj_set_bool(a, "active", !all);
  lcj *ts = lcj_get(call("transfers", a), "transfers");
  if (A.json) {
    for (size_t i = 0; i < lcj_len(ts); i++)
      lcc_print_json(lcj_at(ts, i));
    return 0;
  }
  if (lcj_len(ts) == 0) {
    printf(all ? "no transfers yet (lanchat send-file PEER PATH...)\n"
               : "no transfer under way (--all: the finished ones too)\n");
    return 0;
  }
  printf("%s%-32s %-4s %-16s %-20s %s%s\n", lcc_c("\033[1m"), "ID", "", "PEER",
         "STATE", "WHAT", lcc_c("\033[0m"));
  for (size_t i = 0; i < lcj_len(ts); i++) {
    lcj *t = lcj_at(ts, i);
    xfer_view v;
    char st[64];
    view_set(&v, t);
    lcc_transfer_state(t, st, sizeof st);
    if (!st[0])
      snprintf(st, sizeof st, "[%s]", v.state);
    printf("%-32s %-4s %-16s %-20s %s%s%s\n", v.id, v.outgoing ? "to" : "from",
           v.nick, st, v.what, v.error[0] ? ": " : "", v.error);
  }
  return 0;
}

static int cmd_transfer_op(int argc, char **argv) {
  const char *op = argv[0];
  int wait = 0;
  const char *id = NULL;
  int is_accept = !strcmp(op, "accept");
  for (int i = 1; i < argc; i++) {
    if (is_accept && !strcmp(argv[i], "--wait"))
      wait = 1;
    else if (!id && argv[i][0] != '-')
      id = argv[i];
    else
      id = NULL, i = argc;
  }
  if (!id)
    usage_die(op, is_accept ? "TRANSFER [--wait]   (TRANSFER: its 32-digit id, "
                              "from lanchat transfers)"
                            : "TRANSFER   (its 32-digit id, from lanchat "
                              "transfers)");
  if (wait)
    subscribe_transfers();
  lcj *a = args_obj();
  lcj_set_str(a, "transfer", id);
  lcj *t = lcj_get(call(op, a), "transfer");
  xfer_view v;
  view_set(&v, t);
  if (A.json)
    lcc_print_json(t);
  else
    printf("%s: %s %s %s\n",
           is_accept                ? "accepted"
           : !strcmp(op, "decline") ? "declined"
                                    : "cancelled",
           v.what, v.outgoing ? "to" : "from", v.nick);
  if (!wait)
    return 0;
  fflush(stdout);
  int rc = views_wait(&v, 1);
  if (rc == 0 && !A.json) {
    /* where the files are now */
    lcj *b = args_obj();
    lcj_set_str(b, "transfer", id);
    lcj *files = lcj_get(lcj_get(call("transfer", b), "transfer"), "files");
    for (size_t i = 0; i < lcj_len(files); i++) {
      const char *local = lcj_get_str(lcj_at(files, i), "local");
      if (local)
        printf("%s\n", local);
    }
  }
  return rc;
}

/* A command line from LANCHAT_PLAYER, LANCHAT_RECORD or an option, split
 * into words as a shell would for plain words and '...' or "..." quotes
 * (no variables, no globs, nothing run through a shell); the word FILE
 * becomes path, or path is added at the end if no word is FILE.  The
 * result is malloc'd, NULL-terminated. */
static char **command_words(const char *cmd, const char *path) {
  size_t cap = 8, n = 0, len = strlen(cmd);
  char **w = calloc(cap, sizeof *w);
  char *buf = malloc(len + 1);
  int has_file = 0;
  if (!w || !buf)
    die(LCC_EXIT_FAIL, "out of memory");
  const char *p = cmd;
  for (;;) {
    while (*p == ' ' || *p == '\t' || *p == '\n')
      p++;
    if (!*p)
      break;
    size_t k = 0;
    char quote = 0;
    for (; *p && (quote || (*p != ' ' && *p != '\t' && *p != '\n')); p++) {
      if (quote && *p == quote)
        quote = 0;
      else if (!quote && (*p == '\'' || *p == '"'))
        quote = *p;
      else if (*p == '\\' && quote != '\'' && p[1])
        buf[k++] = *++p;
      else
        buf[k++] = *p;
    }
    if (quote)
      die(LCC_EXIT_USAGE, "unbalanced quote in the command '%s'", cmd);
    buf[k] = '\0';
    if (n + 2 >= cap) {
      cap *= 2;
      char **nw = realloc(w, cap * sizeof *w);
      if (!nw)
        die(LCC_EXIT_FAIL, "out of memory");
      w = nw;
    }
    if (!strcmp(buf, "FILE")) {
      w[n++] = strdup(path);
      has_file = 1;
    } else {
      w[n++] = strdup(buf);
    }
    if (!w[n - 1])
      die(LCC_EXIT_FAIL, "out of memory");
  }
  free(buf);
  if (n == 0)
    die(LCC_EXIT_USAGE, "an empty command");
  if (!has_file && !(w[n++] = strdup(path)))
    die(LCC_EXIT_FAIL, "out of memory");
  w[n] = NULL;
  return w;
}

static void words_free(char **w) {
  for (size_t i = 0; w && w[i]; i++)
    free(w[i]);
  free(w);
}

/* Starts words[0] (looked up in PATH) with stdin from /dev/null if
 * no_stdin; dies with a hint naming how to choose another command. */
static pid_t spawn_words(char **words, int no_stdin, const char *hint) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (no_stdin)
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY,
                                     0);
  pid_t pid;
  int e = posix_spawnp(&pid, words[0], &fa, NULL, words, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (e != 0)
    die(LCC_EXIT_FAIL, "cannot run %s: %s (%s)", words[0], strerror(e), hint);
  return pid;
}

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig) {
  (void)sig;
  interrupted = 1;
}

/* Records a voice message into <data-dir>/recordings (it stays there: the
 * file is read when sent, and `lanchat play` plays it later) with the
 * recorder until Enter (or the end of standard input).  Returns the
 * file's path (malloc'd). */
static char *record_voice(const char *cmd) {
  char dir[PATH_MAX], path[PATH_MAX];
  if (lc_paths_join(A.data_dir, LC_RECORDINGS_NAME, dir, sizeof dir) != 0)
    die(LCC_EXIT_USAGE, "the data folder's path is too long");
  if (mkdir(dir, 0700) != 0 && errno != EEXIST)
    die(LCC_EXIT_FAIL, "cannot create %s: %s", dir, strerror(errno));
  time_t now = time(NULL);
  struct tm tm;
  char stamp[32];
  strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", localtime_r(&now, &tm));
  int fd = -1;
  for (int k = 0; fd < 0 && k < 100; k++) {
    if (k == 0)
      snprintf(path, sizeof path, "%s/voice-%s.wav", dir, stamp);
    else
      snprintf(path, sizeof path, "%s/voice-%s-%d.wav", dir, stamp, k);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST)
      die(LCC_EXIT_FAIL, "%s: %s", path, strerror(errno));
  }
  if (fd < 0)
    die(LCC_EXIT_FAIL, "no free name for a recording in %s", dir);
  close(fd);
  char **words = command_words(cmd, path);
  struct sigaction sa, old_int, old_term;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_interrupt; /* no SA_RESTART: poll returns */
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  pid_t pid = spawn_words(words, 1,
                          "choose the recorder with --record-command or "
                          "LANCHAT_RECORD");
  fprintf(stderr,
          "recording with %s; press Enter to stop and send, Ctrl-C "
          "to cancel\n",
          words[0]);
  int status = 0, exited = 0;
  for (;;) {
    if (waitpid(pid, &status, WNOHANG) == pid) {
      exited = 1; /* the recorder stopped by itself */
      break;
    }
    if (interrupted)
      break;
    struct pollfd pf = {.fd = STDIN_FILENO, .events = POLLIN};
    int r = poll(&pf, 1, 200);
    if (r > 0) {
      char ch;
      ssize_t got = read(STDIN_FILENO, &ch, 1);
      if (got <= 0 || ch == '\n')
        break;
    }
  }
  if (!exited) {
    /* arecord (and most recorders) finish the file on SIGINT */
    kill(pid, SIGINT);
    for (int i = 0; i < 100 && waitpid(pid, &status, WNOHANG) != pid; i++)
      usleep(50000);
    if (kill(pid, 0) == 0) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
    }
  }
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  if (interrupted) {
    unlink(path);
    words_free(words);
    die(LCC_EXIT_FAIL, "recording cancelled");
  }
  if (exited && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
    unlink(path);
    die(LCC_EXIT_FAIL, "the recorder %s failed (%s %d)", words[0],
        WIFEXITED(status) ? "exit status" : "signal",
        WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
  }
  words_free(words);
  uint64_t ms = 0;
  int rc = lc_audio_duration(path, &ms);
  if (rc < 0) {
    unlink(path);
    die(LCC_EXIT_FAIL, "the recording is not usable: %s", lc_strerror(rc));
  }
  char d[32];
  lcc_duration(ms, d, sizeof d);
  fprintf(stderr, "recorded %s: %s\n", d, path);
  return strdup(path);
}

static int cmd_voice(int argc, char **argv) {
  const char *use = "PEER|GROUP FILE | --record [--record-command CMD] "
                    "PEER|GROUP";
  int record = 0;
  const char *to = NULL, *file = NULL, *rcmd = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--record"))
      record = 1;
    else if (!strcmp(argv[i], "--record-command") && i + 1 < argc)
      rcmd = argv[++i], record = 1;
    else if (argv[i][0] == '-' && argv[i][1] == '-')
      usage_die("voice", use);
    else if (!to)
      to = argv[i];
    else if (!file)
      file = argv[i];
    else
      usage_die("voice", use);
  }
  if (!to || (record ? file != NULL : file == NULL))
    usage_die("voice", use);
  char *path;
  if (record) {
    connect_daemon(); /* before recording: no daemon, no recording */
    if (!rcmd)
      rcmd = getenv("LANCHAT_RECORD");
    if (!rcmd || !*rcmd)
      rcmd = "arecord -q -f S16_LE -r 16000 -c 1 -t wav FILE";
    path = record_voice(rcmd);
  } else {
    path = daemon_path(file);
  }
  lcj *a = args_obj();
  lcj_set_str(a, "to", to);
  lcj *p = lcj_str(path);
  free(path);
  if (!p)
    die(LCC_EXIT_USAGE, "'%s': the daemon takes UTF-8 paths only", file);
  lcj_set(a, "path", p);
  size_t n;
  free(offers_print(call("send_voice", a), &n));
  return 0;
}

static int cmd_play(int argc, char **argv) {
  const char *use = "MSGID [--player CMD]";
  const char *msg = NULL, *player = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--player") && i + 1 < argc)
      player = argv[++i];
    else if (!msg && argv[i][0] != '-')
      msg = argv[i];
    else
      usage_die("play", use);
  }
  if (!msg)
    usage_die("play", use);
  lcj *a = args_obj();
  lcj_set_str(a, "msg", msg);
  lcj *m = lcj_get(call("get", a), "message");
  const char *kind = lcj_get_str(m, "kind");
  if (!kind || strcmp(kind, "file"))
    die(LCC_EXIT_FAIL, "%s is a text message, not a voice message", msg);
  a = args_obj();
  lcj_set_str(a, "transfer", lcj_get_str(m, "transfer"));
  lcj *t = lcj_get(call("transfer", a), "transfer");
  xfer_view v;
  view_set(&v, t);
  const char *tkind = lcj_get_str(t, "kind");
  if (!tkind || strcmp(tkind, "voice"))
    die(LCC_EXIT_FAIL, "%s is not a voice message but %s", msg, v.what);
  lcj *f = lcj_at(lcj_get(t, "files"), 0);
  const char *local = lcj_get_str(f, "local");
  if (!local)
    die(LCC_EXIT_FAIL, "the voice message has not arrived yet (%s)%s%s",
        v.state,
        !strcmp(v.state, "offered") && !v.outgoing ? "; lanchat accept " : "",
        !strcmp(v.state, "offered") && !v.outgoing ? v.id : "");
  if (!player)
    player = getenv("LANCHAT_PLAYER");
  if (!player || !*player)
    player = "aplay -q";
  char **words = command_words(player, local);
  if (!A.json)
    fprintf(stderr, "%s from %s: %s\n", v.what, v.outgoing ? "me" : v.nick,
            local);
  pid_t pid = spawn_words(words, 0,
                          "choose the player with --player or "
                          "LANCHAT_PLAYER");
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
    fprintf(stderr, "lanchat: %s failed (%s %d)\n", words[0],
            WIFEXITED(status) ? "exit status" : "signal",
            WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    words_free(words);
    return LCC_EXIT_FAIL;
  }
  words_free(words);
  return 0;
}

static int cmd_help(int argc, char **argv);

static const struct {
  const char *name;
  int (*fn)(int argc, char **argv);
  const char *args;
  const char *help;
} cmds[] = {
    {"init", cmd_init, "--nick NAME [--passphrase-file FILE]",
     "create this user's identity"},
    {"whoami", cmd_whoami, "", "our id, nickname and status"},
    {"peers", cmd_peers, "[--all]", "who is on the LAN (--all: ever seen)"},
    {"nick", cmd_nick, "NAME", "change our nickname"},
    {"status", cmd_status, "online|away|busy [TEXT]", "set our presence"},
    {"send", cmd_send, "PEER TEXT...|-", "send a message; prints its id"},
    {"history", cmd_history, "PEER [--limit N] [--before MSGID]",
     "the conversation, oldest first"},
    {"conversations", cmd_conversations, "", "conversations, unread counts"},
    {"unread", cmd_unread, "", "unread messages, by peer"},
    {"read", cmd_read, "PEER", "mark a conversation read"},
    {"search", cmd_search, "QUERY... [--with PEER] [--limit N]",
     "full-text search"},
    {"export", cmd_export, "PEER [--format json|text] [--output FILE]",
     "export a conversation"},
    {"edit", cmd_edit, "MSGID TEXT...", "edit a message we sent"},
    {"retract", cmd_retract, "MSGID", "retract a message we sent"},
    {"watch", cmd_watch, "", "stream events as they happen"},
    {"chat", cmd_chat, "PEER", "interactive chat"},
    {"friend", cmd_friend, "add PEER [MSG]|accept|reject|remove PEER|list",
     "contacts"},
    {"group", cmd_group,
     "create NAME PEER...|invite|remove|leave|rename|list|members",
     "group chats"},
    {"block", cmd_block, "PEER", "drop everything from a peer"},
    {"unblock", cmd_block, "PEER", "stop blocking a peer"},
    {"trust", cmd_trust, "PEER", "accept a peer's new key"},
    {"policy", cmd_policy, "[anyone|contacts]", "who may send us messages"},
    {"send-file", cmd_send_file, "PEER|GROUP PATH... [--no-wait]",
     "offer files and folders; follows them until done"},
    {"transfers", cmd_transfers, "[--all]", "transfers under way (or all)"},
    {"accept", cmd_transfer_op, "TRANSFER [--wait]", "accept files offered"},
    {"decline", cmd_transfer_op, "TRANSFER", "decline files offered"},
    {"cancel", cmd_transfer_op, "TRANSFER", "cancel a transfer"},
    {"voice", cmd_voice, "PEER|GROUP FILE | --record PEER|GROUP",
     "send a voice message (or record one)"},
    {"play", cmd_play, "MSGID [--player CMD]", "play a voice message"},
    {"stats", cmd_stats, "", "the daemon's counters (JSON)"},
    {"stop", cmd_stop, "", "make the daemon say goodbye and exit"},
    {"help", cmd_help, "", "this list"},
};
#define N_CMDS (sizeof cmds / sizeof cmds[0])

static int cmd_help(int argc, char **argv) {
  (void)argc;
  (void)argv;
  printf("usage: lanchat [--data-dir DIR] [--json] COMMAND [ARGS]\n\n");
  for (size_t i = 0; i < N_CMDS; i++)
    printf("  %-14s %-42s %s\n", cmds[i].name, cmds[i].args, cmds[i].help);
  printf("\nPEER is a nickname or at least 8 hex digits of a peer's id;\n"
         "send, history, read, search, chat, send-file and voice also take a\n"
         "GROUP (its name or at least 8 hex digits of its id).\n"
         "TRANSFER is a transfer's id (32 hex digits: lanchat transfers).\n"
         "voice --record runs $LANCHAT_RECORD (or --record-command CMD; "
         "default\n"
         "'arecord -q -f S16_LE -r 16000 -c 1 -t wav FILE') until Enter; play\n"
         "runs $LANCHAT_PLAYER (or --player CMD; default 'aplay -q') on the\n"
         "file.  FILE in a command is the file's path, else it is added "
         "last.\n"
         "DIR defaults to $LANCHAT_HOME, else $XDG_DATA_HOME/lanchat, else\n"
         "~/.local/share/lanchat.  Exit status: 0 done, 1 failed, 2 usage,\n"
         "3 daemon not running, 4 no identity yet, 5 unknown peer.  A file in\n"
         "DIR that cannot be used (an identity that others can read, or that\n"
         "is damaged) is never changed: the message says how to fix it.\n");
  return 0;
}

static void cleanup(void) {
  lcj_free(A.last);
  A.last = NULL;
  if (A.connected)
    lcc_close(&A.conn);
}

int main(int argc, char **argv) {
  const char *dir = NULL;
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (!strcmp(argv[i], "--data-dir") && i + 1 < argc)
      dir = argv[++i];
    else if (!strncmp(argv[i], "--data-dir=", 11))
      dir = argv[i] + 11;
    else if (!strcmp(argv[i], "--json"))
      A.json = 1;
    else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
      return cmd_help(0, NULL);
    else
      die(LCC_EXIT_USAGE, "unknown option '%s' (see lanchat help)", argv[i]);
  }
  if (i == argc) {
    cmd_help(0, NULL);
    return LCC_EXIT_USAGE;
  }
  char err[300];
  if (lc_paths_data_dir(dir, A.data_dir, sizeof A.data_dir, err, sizeof err))
    die(LCC_EXIT_USAGE, "%s", err);
  if (lc_paths_join(A.data_dir, LC_SOCKET_NAME, A.sock_path,
                    sizeof A.sock_path) != 0)
    die(LCC_EXIT_USAGE, "the data folder's path is too long");
  lcc_output_init();
  atexit(cleanup);
  /* --json may also follow the command's name */
  int sub_argc = 0;
  char **sub_argv = calloc((size_t)(argc - i) + 1, sizeof *sub_argv);
  if (!sub_argv)
    die(LCC_EXIT_FAIL, "out of memory");
  for (int k = i; k < argc; k++) {
    if (!strcmp(argv[k], "--json") && k > i)
      A.json = 1;
    else
      sub_argv[sub_argc++] = argv[k];
  }
  for (size_t k = 0; k < N_CMDS; k++) {
    if (!strcmp(cmds[k].name, sub_argv[0])) {
      int rc = cmds[k].fn(sub_argc, sub_argv);
      free(sub_argv);
      fflush(stdout);
      return rc;
    }
  }
  die(LCC_EXIT_USAGE, "unknown command '%s' (see lanchat help)", sub_argv[0]);
}
