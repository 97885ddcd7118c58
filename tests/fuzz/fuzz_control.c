/* fuzz_control.c: libFuzzer harness for lanchatd's control API: the
 * request parser and every command's argument handling
 * (src/daemon/commands.c, lcd_command), the way server.c calls it for
 * each line a client writes on the control socket.
 *
 * One daemon state with a real node (never started: no socket is opened,
 * nothing goes on the network) lives in a temporary folder for the whole
 * run, with two known peers (bob, offline, and carol, online), so that
 * names resolve and commands reach the node.  Each input is split on
 * newlines into requests, up to FC_LINES of them, each handed to
 * lcd_command as it came, except that the paths of export, send_files
 * and send_voice are rewritten into the sandbox first (the fuzzer must not
 * write or read the machine's files); then the loop runs once.  Every
 * reply must be an object with an "id" and a boolean "ok", an error reply
 * must carry a string "code" and "message", and it must print as JSON.
 *
 * Built with clang -fsanitize=fuzzer by tools/fuzz, and with any compiler
 * plus corpus_main.c to replay tests/fuzz/corpus/control in the suite. */
#define _GNU_SOURCE
#include <ftw.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "daemon.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FC_LINES 16
#define FC_RESET 200 /* inputs between two fresh nodes */

static lcd_daemon fc_d;
static uv_loop_t fc_loop;
static char fc_root[256];
static char fc_files[3][300]; /* a file, a folder, a WAV file */
static char fc_out[3][300];   /* export: a file, a folder, a missing folder */
static int fc_ready;
static unsigned fc_runs;
static uint8_t fc_bob[LC_KEY_BYTES], fc_carol[LC_KEY_BYTES];

static void fc_fail(const char *what, const char *detail) {
  fprintf(stderr, "fuzz_control: %s%s%s\n", what, detail ? ": " : "",
          detail ? detail : "");
  abort();
}

/* ---- what commands.c needs from main.c and server.c ---- */

int lcd_log_max = -1; /* quiet */

void lcd_log(int level, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap); /* formats every message */
  va_end(ap);
  if (level <= lcd_log_max)
    fprintf(stderr, "lanchatd: %s\n", buf);
}

void lcd_server_broadcast(lcd_daemon *d, unsigned cls, lcj *ev) {
  (void)d;
  (void)cls;
  char *s = lcj_dump(ev);
  if (ev && !s)
    fc_fail("an event does not print", NULL);
  free(s);
  lcj_free(ev);
}

void lcd_server_shutdown(lcd_daemon *d) {
  (void)d;
}

void lcd_server_clients(lcd_daemon *d, size_t *clients, size_t *subscribers) {
  (void)d;
  *clients = 1;
  *subscribers = 0;
}

/* ---- the sandbox ---- */

static int fc_rm(const char *path, const struct stat *st, int flag,
                 struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static void fc_cleanup(void) {
  if (fc_d.node) {
    lc_node_free(fc_d.node);
    fc_d.node = NULL;
    uv_run(&fc_loop, UV_RUN_NOWAIT);
    uv_loop_close(&fc_loop);
  }
  lcd_dir_free(&fc_d.dir);
  lcd_config_free(&fc_d.cfg);
  if (fc_root[0])
    nftw(fc_root, fc_rm, 16, FTW_DEPTH | FTW_PHYS);
}

static void fc_write(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0)
    fc_fail("cannot write", path);
}

static void fc_path(char *out, size_t cap, const char *name) {
  if ((size_t)snprintf(out, cap, "%s/%s", fc_root, name) >= cap)
    fc_fail("path too long", name);
}

/* A WAV header for 0.1 s of silence at 8 kHz, 8-bit mono. */
static void fc_write_wav(const char *path) {
  uint8_t w[44 + 800];
  memset(w, 0x80, sizeof w);
  uint32_t riff = sizeof w - 8, fmt_len = 16, rate = 8000, data_len = 800;
  uint16_t pcm = 1, ch = 1, align = 1, bits = 8;
  memcpy(w, "RIFF", 4);
  memcpy(w + 4, &riff, 4);
  memcpy(w + 8, "WAVEfmt ", 8);
  memcpy(w + 16, &fmt_len, 4);
  memcpy(w + 20, &pcm, 2);
  memcpy(w + 22, &ch, 2);
  memcpy(w + 24, &rate, 4);
  memcpy(w + 28, &rate, 4); /* bytes per second */
  memcpy(w + 32, &align, 2);
  memcpy(w + 34, &bits, 2);
  memcpy(w + 36, "data", 4);
  memcpy(w + 40, &data_len, 4);
  fc_write(path, w, sizeof w);
}

/* A fresh node on an empty history, and the two known peers. */
static void fc_open(void) {
  lcd_daemon *d = &fc_d;
  d->presence = LC_PRESENCE_ONLINE;
  d->status[0] = '\0';
  d->contacts_only = 0;
  lcd_dir_init(&d->dir);
  lc_peer_info info;
  memset(&info, 0, sizeof info);
  memcpy(info.key, fc_bob, sizeof fc_bob);
  strcpy(info.nickname, "bob");
  info.presence = LC_PRESENCE_OFFLINE;
  lcd_dir_update(&d->dir, &info, 0);
  memcpy(info.key, fc_carol, sizeof fc_carol);
  strcpy(info.nickname, "carol");
  strcpy(info.address, "192.0.2.7:7781");
  info.presence = LC_PRESENCE_ONLINE;
  lcd_dir_update(&d->dir, &info, 1);
  char err[1024];
  if (lcd_node_open(d, &fc_loop, err, sizeof err) != 0)
    fc_fail("lcd_node_open", err);
}

/* Drops the node, its history and what the daemon learnt, so that state
 * does not pile up over a long run (the store, queued sends, transfers). */
static void fc_reset(void) {
  uv_run(&fc_loop, UV_RUN_DEFAULT); /* the store's work on the thread pool */
  lc_node_free(fc_d.node);
  fc_d.node = NULL;
  lcd_dir_free(&fc_d.dir);
  static const char *const names[] = {"history.db", "history.db-wal",
                                      "history.db-shm", "profile.json",
                                      "peers.json"};
  char p[400];
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    snprintf(p, sizeof p, "%s/%s", fc_d.data_dir, names[i]);
    unlink(p);
  }
  nftw(fc_d.downloads, fc_rm, 16, FTW_DEPTH | FTW_PHYS);
  fc_open();
}

static void fc_init_once(void) {
  if (fc_ready)
    return;
  const char *tmp = getenv("TMPDIR");
  snprintf(fc_root, sizeof fc_root, "%s/lanchat-fuzz-control-XXXXXX",
           tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(fc_root))
    fc_fail("mkdtemp", fc_root);
  atexit(fc_cleanup);
  char p[300];
  fc_path(p, sizeof p, "files");
  mkdir(p, 0700);
  fc_path(p, sizeof p, "files/dir");
  mkdir(p, 0700);
  fc_path(fc_files[0], sizeof fc_files[0], "files/a.txt");
  fc_write(fc_files[0], "hello\n", 6);
  fc_path(p, sizeof p, "files/dir/b.txt");
  fc_write(p, "world\n", 6);
  fc_path(fc_files[1], sizeof fc_files[1], "files/dir");
  fc_path(fc_files[2], sizeof fc_files[2], "files/v.wav");
  fc_write_wav(fc_files[2]);
  fc_path(p, sizeof p, "out");
  mkdir(p, 0700);
  fc_path(fc_out[0], sizeof fc_out[0], "out/export");
  fc_path(fc_out[1], sizeof fc_out[1], "out");
  fc_path(fc_out[2], sizeof fc_out[2], "missing/export");

  /* two peers the daemon has known */
  uint8_t bob[LC_KEY_BYTES], carol[LC_KEY_BYTES];
  fc_path(p, sizeof p, "bob");
  if (lc_identity_create(p, NULL, bob) != 0)
    fc_fail("identity", p);
  fc_path(p, sizeof p, "carol");
  if (lc_identity_create(p, NULL, carol) != 0)
    fc_fail("identity", p);

  memcpy(fc_bob, bob, sizeof bob);
  memcpy(fc_carol, carol, sizeof carol);

  lcd_daemon *d = &fc_d;
  lcd_config_init(&d->cfg);
  d->cfg.nick = strdup("fuzz");
  d->cfg.bind_v4 = strdup("127.0.0.1");
  d->cfg.bind_v6 = strdup("");
  fc_path(d->data_dir, sizeof d->data_dir, "data");
  fc_path(d->downloads, sizeof d->downloads, "downloads");
  fc_path(d->sock_path, sizeof d->sock_path, "data/control.sock");
  fc_path(d->peers_path, sizeof d->peers_path, "data/peers.json");
  fc_path(d->profile_path, sizeof d->profile_path, "data/profile.json");
  if (lc_identity_create(d->data_dir, NULL, d->self) != 0)
    fc_fail("identity", d->data_dir);
  if (uv_loop_init(&fc_loop) != 0)
    fc_fail("uv_loop_init", NULL);
  fc_open();
  fc_ready = 1;
}

/* Paths into the sandbox: any absolute path becomes one of the sandbox's
 * (which one from its length), so each command still meets a file, a
 * folder and a WAV file (export: a file, a folder, a missing folder).
 * Relative ones stay (the command refuses them). */
static void fc_sandbox_str(lcj *obj, const char *key, char (*to)[300]) {
  const char *s = lcj_get_str(obj, key);
  if (s && s[0] == '/')
    lcj_set_str(obj, key, to[strlen(s) % 3]);
}

/* The request rewritten for the sandbox (malloc'd, in *out), or NULL when
 * the line goes as it came. */
static char *fc_sandbox(const char *line, size_t len) {
  char err[128];
  lcj *req = lcj_parse(line, len, err, sizeof err);
  const char *cmd = lcj_get_str(req, "cmd");
  char *out = NULL;
  if (cmd && (!strcmp(cmd, "export") || !strcmp(cmd, "send_files") ||
              !strcmp(cmd, "send_voice"))) {
    fc_sandbox_str(req, "path", !strcmp(cmd, "export") ? fc_out : fc_files);
    lcj *paths = lcj_get(req, "paths");
    size_t n = lcj_len(paths);
    for (size_t i = 0; i < n; i++) {
      const char *s = lcj_sval(lcj_at(paths, i));
      if (s && s[0] == '/') {
        lcj *arr = lcj_arr();
        for (size_t j = 0; j < n; j++) {
          lcj *e = lcj_at(paths, j);
          const char *t = lcj_sval(e);
          lcj_push(arr, t && t[0] == '/' ? lcj_str(fc_files[strlen(t) % 3])
                                         : lcj_ref(e));
        }
        lcj_set(req, "paths", arr);
        break;
      }
    }
    out = lcj_dump(req);
    if (!out)
      fc_fail("a parsed request does not print", NULL);
  }
  lcj_free(req);
  return out;
}

static void fc_check_reply(lcj *r) {
  if (!lcj_is_obj(r))
    fc_fail("a reply is not an object", NULL);
  lcj *id = lcj_get(r, "id");
  if (!id || (!lcj_is_null(id) && !lcj_is_str(id) && !lcj_is_int(id)))
    fc_fail("a reply without a valid id", NULL);
  lcj *ok = lcj_get(r, "ok");
  if (!lcj_is_bool(ok))
    fc_fail("a reply without ok", NULL);
  if (!lcj_bval(ok)) {
    lcj *e = lcj_get(r, "error");
    if (!lcj_get_str(e, "code") || !lcj_get_str(e, "message"))
      fc_fail("an error reply without code and message", NULL);
  } else if (!lcj_get(r, "result")) {
    fc_fail("a success without a result", NULL);
  }
  char *s = lcj_dump(r);
  if (!s)
    fc_fail("a reply does not print", NULL);
  free(s);
}

static void fc_request(const char *line, size_t len) {
  char *rewritten = fc_sandbox(line, len);
  lcd_effect eff;
  memset(&eff, 0, sizeof eff);
  lcj *r = rewritten ? lcd_command(&fc_d, rewritten, strlen(rewritten), &eff)
                     : lcd_command(&fc_d, line, len, &eff);
  free(rewritten);
  if (!r)
    fc_fail("no reply", NULL);
  fc_check_reply(r);
  lcj_free(r);
  fc_d.stopping = 0; /* "stop" only sets the effect; keep serving */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fc_init_once();
  if (++fc_runs % FC_RESET == 0)
    fc_reset();
  const char *p = (const char *)data, *end = p + size;
  for (int n = 0; n < FC_LINES && p < end; n++) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
    fc_request(p, len);
    p += len + (nl ? 1 : 0);
  }
  uv_run(&fc_loop, UV_RUN_NOWAIT);
  return 0;
}
