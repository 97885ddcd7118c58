/* main.c: lanchatd, the headless daemon: settings (flags over the config
 * file), the data folder's lock, going to the background, logging; then
 * server.c runs the node and the control socket. */
#include "daemon.h"
#include "paths.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int lcd_log_max = 1;

void lcd_log(int level, const char *fmt, ...) {
  static const char *const names[] = {"error", "warning", "notice", "debug"};
  if (level > lcd_log_max)
    return;
  if (level < 0)
    level = 0;
  if (level > 3)
    level = 3;
  char stamp[32];
  time_t t = time(NULL);
  struct tm tm;
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "%s lanchatd[%d] %s: %s\n", stamp, (int)getpid(),
          names[level], msg);
}

static void usage(FILE *f) {
  fputs(
      "usage: lanchatd [options]\n"
      "Runs one lanchat node and its control socket "
      "(<data-dir>/control.sock).\n"
      "\n"
      "  --data-dir DIR          data folder (default $LANCHAT_HOME, else\n"
      "                          $XDG_DATA_HOME/lanchat, else "
      "~/.local/share/lanchat)\n"
      "  --config FILE           settings file (default <data-dir>/"
      "lanchatd.conf)\n"
      "  --nick NAME             nickname (default: the saved one, else "
      "$USER)\n"
      "  --bind ADDR             unicast address (one per family; the other\n"
      "                          family is then off)\n"
      "  --port N                unicast port (default 7781, else any)\n"
      "  --discovery-port N      discovery port shared by the LAN (default "
      "7780)\n"
      "  --broadcast ADDR        where to announce (repeatable; default every\n"
      "                          interface's broadcast address and ff02::1)\n"
      "  --peer HOST:PORT        a peer beyond the broadcast domain "
      "(repeatable)\n"
      "  --interfaces LIST       interface patterns to use, e.g. 'lo' or "
      "'eth*'\n"
      "  --announce-interval S   seconds between announcements (default 5)\n"
      "  --passphrase-file FILE  passphrase of a protected identity (else\n"
      "                          $LANCHAT_PASSPHRASE)\n"
      "  --no-read-receipts      do not tell senders when messages are read\n"
      "  --downloads DIR         where received files go (default: with\n"
      "                          --data-dir or $LANCHAT_HOME, <data-dir>/"
      "downloads;\n"
      "                          else $XDG_DOWNLOAD_DIR/lanchat, else\n"
      "                          ~/Downloads/lanchat)\n"
      "  --auto-accept BYTES     accept files from friends up to this size\n"
      "                          without asking (K, M, G suffixes; default 0: "
      "ask)\n"
      "  --log-level LEVEL       error, warning (default), notice or debug\n"
      "  --foreground            stay in the foreground (logs on stderr)\n"
      "  -h, --help              this help\n"
      "\n"
      "Every option can also be a line 'name = value' in the config file;\n"
      "the command line wins.  Stop it with SIGTERM, SIGINT or 'lanchat "
      "stop'.\n"
      "\n"
      "Exit status: 0 stopped cleanly; 1 could not start or failed (the\n"
      "message says why and what to do: no identity, a damaged or foreign\n"
      "history, an unsafe data folder, a port in use); 2 bad command line\n"
      "or settings file.  A file it cannot use is never changed.\n",
      f);
}

/* Reads the passphrase from a file (its first line) or LANCHAT_PASSPHRASE;
 * never from the command line, where other users could see it. */
static int read_passphrase(lcd_daemon *d, char *err, size_t errlen) {
  const char *env = getenv("LANCHAT_PASSPHRASE");
  if (d->cfg.passphrase_file) {
    FILE *f = fopen(d->cfg.passphrase_file, "re");
    if (!f) {
      snprintf(err, errlen, "passphrase file %s: %s", d->cfg.passphrase_file,
               strerror(errno));
      return -1;
    }
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    d->passphrase = strdup(buf);
    memset(buf, 0, sizeof buf);
  } else if (env && *env) {
    d->passphrase = strdup(env);
  }
  return 0;
}

/* One daemon per data folder: an exclusive lock on lanchatd.pid, which
 * holds the pid of the process that has it.  The lock goes with the
 * process, however it ends. */
static int take_lock(lcd_daemon *d, char *err, size_t errlen) {
  char path[PATH_MAX];
  if (lc_paths_join(d->data_dir, LC_LOCK_NAME, path, sizeof path) != 0) {
    snprintf(err, errlen, "data folder path too long");
    return -1;
  }
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return -1;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = {0};
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    long pid = n > 0 ? strtol(buf, NULL, 10) : 0;
    if (pid > 0)
      snprintf(err, errlen,
               "another lanchatd (pid %ld) is already running on %s; stop it "
               "with: lanchat --data-dir %s stop",
               pid, d->data_dir, d->data_dir);
    else
      snprintf(err, errlen, "another lanchatd is already running on %s",
               d->data_dir);
    close(fd);
    return -1;
  }
  char buf[32];
  int n = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
  if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    close(fd);
    return -1;
  }
  return 0; /* fd stays open, and locked, until the process ends */
}

/* The folder for received files: --downloads (a relative one is taken
 * from the current folder, before going to the background moves to /),
 * else the default of lc_paths_downloads_dir. */
static int downloads_dir(lcd_daemon *d, char *err, size_t errlen) {
  const char *v = d->cfg.downloads;
  int n;
  if (v && v[0] == '/') {
    n = snprintf(d->downloads, sizeof d->downloads, "%s", v);
  } else if (v) {
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) {
      snprintf(err, errlen, "downloads: %s", strerror(errno));
      return -1;
    }
    n = snprintf(d->downloads, sizeof d->downloads, "%s/%s", cwd, v);
  } else {
    const char *home = getenv("LANCHAT_HOME");
    int explicit_dir = d->cfg.data_dir || (home && *home);
    n = lc_paths_downloads_dir(d->data_dir, explicit_dir, d->downloads,
                               sizeof d->downloads) == 0
            ? (int)strlen(d->downloads)
            : -1;
  }
  if (n < 0 || (size_t)n >= sizeof d->downloads) {
    snprintf(err, errlen, "the downloads folder's path is too long");
    return -1;
  }
  while (n > 1 && d->downloads[n - 1] == '/')
    d->downloads[--n] = '\0';
  return 0;
}

/* Readiness: in the background, the parent waits on a pipe for the child
 * to say that it serves (or why not), so that `lanchatd` returns only once
 * the control socket answers, with the right exit status. */
static int ready_fd = -1;

static void ready(lcd_daemon *d, int rc, const char *msg) {
  if (rc != 0)
    lcd_log(0, "%s", msg);
  if (ready_fd < 0)
    return;
  char buf[1200];
  int n = snprintf(buf, sizeof buf, "%c%s", rc == 0 ? '0' : '1',
                   rc == 0 ? "" : msg);
  if (write(ready_fd, buf, (size_t)n) < 0) {
    /* the parent is gone; nothing to tell */
  }
  close(ready_fd);
  ready_fd = -1;
  if (rc == 0) {
    /* detach from the terminal: logs go to lanchatd.log from now on */
    char path[PATH_MAX];
    int fd = -1;
    if (lc_paths_join(d->data_dir, LC_LOG_NAME, path, sizeof path) == 0)
      fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
      dup2(null, 0);
      dup2(null, 1);
      dup2(fd >= 0 ? fd : null, 2);
      if (null > 2)
        close(null);
    }
    if (fd > 2)
      close(fd);
  }
}

static int background(void) {
  int p[2];
  if (pipe(p) != 0) {
    perror("lanchatd: pipe");
    return -1;
  }
  pid_t pid = fork();
  if (pid < 0) {
    perror("lanchatd: fork");
    return -1;
  }
  if (pid > 0) {
    close(p[1]);
    char buf[1200];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf - 1 &&
           ((r = read(p[0], buf + n, sizeof buf - 1 - n)) > 0 ||
            (r < 0 && errno == EINTR)))
      if (r > 0)
        n += (size_t)r;
    buf[n] = '\0';
    if (n > 0 && buf[0] == '0')
      _exit(0);
    if (n == 0)
      fprintf(stderr, "lanchatd: the daemon exited while starting\n");
    /* the child has logged why, on our shared stderr; wait until it has
     * let go of the lock, so that a new start can follow at once */
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
      ;
    _exit(1);
  }
  close(p[0]);
  fcntl(p[1], F_SETFD, FD_CLOEXEC);
  ready_fd = p[1];
  setsid();
  if (chdir("/") != 0) {
    /* nothing depends on the working folder */
  }
  return 0;
}

int main(int argc, char **argv) {
  static const struct option longopts[] = {
      {"data-dir", required_argument, NULL, 0},
      {"nick", required_argument, NULL, 0},
      {"bind", required_argument, NULL, 0},
      {"port", required_argument, NULL, 0},
      {"discovery-port", required_argument, NULL, 0},
      {"broadcast", required_argument, NULL, 0},
      {"peer", required_argument, NULL, 0},
      {"announce-interval", required_argument, NULL, 0},
      {"config", required_argument, NULL, 0},
      {"log-level", required_argument, NULL, 0},
      {"foreground", no_argument, NULL, 0},
      {"interfaces", required_argument, NULL, 0},
      {"passphrase-file", required_argument, NULL, 0},
      {"no-read-receipts", no_argument, NULL, 0},
      {"downloads", required_argument, NULL, 0},
      {"auto-accept", required_argument, NULL, 0},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  static lcd_daemon d;
  char err[1200];
  lcd_config_init(&d.cfg);
  int idx, ch;
  while ((ch = getopt_long(argc, argv, "h", longopts, &idx)) != -1) {
    if (ch == 'h') {
      usage(stdout);
      return 0;
    }
    if (ch != 0) {
      usage(stderr);
      return 2;
    }
    if (lcd_config_set(&d.cfg, longopts[idx].name, optarg, 1, err,
                       sizeof err) != 0) {
      fprintf(stderr, "lanchatd: --%s\n", err);
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "lanchatd: unexpected argument '%s' (see --help)\n",
            argv[optind]);
    return 2;
  }
  if (lc_paths_data_dir(d.cfg.data_dir, d.data_dir, sizeof d.data_dir, err,
                        sizeof err) != 0) {
    fprintf(stderr, "lanchatd: %s\n", err);
    return 2;
  }
  /* the config file: --config, else <data-dir>/lanchatd.conf if present */
  char conf[PATH_MAX];
  int missing_ok = !d.cfg.config;
  if (d.cfg.config)
    snprintf(conf, sizeof conf, "%s", d.cfg.config);
  else if (lc_paths_join(d.data_dir, LC_CONFIG_NAME, conf, sizeof conf) != 0)
    conf[0] = '\0';
  if (conf[0] &&
      lcd_config_load(&d.cfg, conf, missing_ok, err, sizeof err) != 0) {
    fprintf(stderr, "lanchatd: %s\n", err);
    return 2;
  }
  /* the config file may name another data folder */
  if (d.cfg.data_dir &&
      lc_paths_data_dir(d.cfg.data_dir, d.data_dir, sizeof d.data_dir, err,
                        sizeof err) != 0) {
    fprintf(stderr, "lanchatd: %s\n", err);
    return 2;
  }
  lcd_log_max = d.cfg.log_level;
  if (downloads_dir(&d, err, sizeof err) != 0) {
    fprintf(stderr, "lanchatd: %s\n", err);
    return 2;
  }
  if (lc_paths_join(d.data_dir, LC_SOCKET_NAME, d.sock_path,
                    sizeof d.sock_path) != 0 ||
      lc_paths_join(d.data_dir, LC_PEERS_NAME, d.peers_path,
                    sizeof d.peers_path) != 0 ||
      lc_paths_join(d.data_dir, LC_PROFILE_NAME, d.profile_path,
                    sizeof d.profile_path) != 0) {
    fprintf(stderr, "lanchatd: the data folder's path is too long\n");
    return 2;
  }
  int mk = lc_paths_mkdirs(d.data_dir); /* ~/.local/share may not exist */
  if (mk < 0) {
    fprintf(stderr,
            "lanchatd: cannot create the data folder %s: %s; create it "
            "yourself (mkdir -m 700), or choose another with --data-dir\n",
            d.data_dir, strerror(-mk));
    return 1;
  }
  /* the identity and the history live there: refused if another user
   * owns it or may change it, or if it cannot be written */
  int safe = lc_paths_check_data_dir(d.data_dir, err, sizeof err);
  if (safe < 0) {
    fprintf(stderr, "lanchatd: %s\n", err);
    return 1;
  }
  if (safe > 0)
    lcd_log(1, "%s", err);
  if (read_passphrase(&d, err, sizeof err) != 0) {
    fprintf(stderr, "lanchatd: %s\n", err);
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  umask(0077); /* the history, the logs, the socket: for this user only */
  if (!d.cfg.foreground && background() != 0)
    return 1;
  if (take_lock(&d, err, sizeof err) != 0) {
    ready(&d, -1, err);
    return 1;
  }
  lcd_dir_init(&d.dir);
  if (lcd_dir_load(&d.dir, d.peers_path, err, sizeof err) != 0)
    lcd_log(1, "%s", err);
  lcd_profile_load(&d);
  if (!d.cfg.nick) {
    const char *user = getenv("USER");
    d.cfg.nick =
        strdup(user && *user && strlen(user) <= LC_NICK_MAX ? user : "lanchat");
  }
  int code = lcd_server_run(&d, ready);
  lcd_dir_free(&d.dir);
  lcd_config_free(&d.cfg);
  if (code == 0)
    lcd_log(2, "exited cleanly");
  return code;
}
