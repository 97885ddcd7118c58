/* main.c: lanchat, the command line: global options, then a table of
 * subcommands, one function each, talking to lanchatd over its control
 * socket (client.c) and printing for people or, with --json, for scripts. */
#include "cli.h"
#include "lanchat.h"
#include "paths.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
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

static int has_identity(void) {
  uint8_t key[LC_KEY_BYTES];
  return lc_identity_public(A.data_dir, key, NULL) == 0;
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
  int rc = lc_identity_create(A.data_dir, pass[0] ? pass : NULL, key);
  memset(pass, 0, sizeof pass);
  if (rc == LC_EEXIST) {
    char hexk[LC_KEY_HEX_LEN + 1] = "?";
    if (lc_identity_public(A.data_dir, key, NULL) == 0)
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
  if (lc_identity_public(A.data_dir, key, &sealed) != 0)
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
         "send, history, read, search and chat also take a GROUP (its name\n"
         "or at least 8 hex digits of its id).\n"
         "DIR defaults to $LANCHAT_HOME, else $XDG_DATA_HOME/lanchat, else\n"
         "~/.local/share/lanchat.  Exit status: 0 done, 1 failed, 2 usage,\n"
         "3 daemon not running, 4 no identity yet, 5 unknown peer.\n");
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
