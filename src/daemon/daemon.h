/* daemon.h: what lanchatd's parts share.  main.c owns the settings, the
 * lock and the process; server.c owns the event loop, signals and the
 * control socket (the only daemon file that includes <uv.h>); commands.c
 * owns the node, its events and the control commands (JSON through
 * common/json.h). */
#ifndef LCD_DAEMON_H
#define LCD_DAEMON_H

#include "config.h"
#include "directory.h"
#include "json.h"
#include "lanchat.h"

#include <limits.h>

/* Event classes a subscriber may choose (bits). */
enum {
  LCD_EV_MESSAGE = 1 << 0,  /* message: received or sent */
  LCD_EV_DELIVERY = 1 << 1, /* delivery: sent, delivered, read */
  LCD_EV_PEER = 1 << 2,     /* peer: appeared, changed, left */
  LCD_EV_TYPING = 1 << 3,   /* typing */
  LCD_EV_CHANGED = 1 << 4,  /* changed: a message edited or retracted */
  LCD_EV_NETWORK = 1 << 5,  /* network: interfaces changed */
  LCD_EV_DAEMON = 1 << 6,   /* daemon: stopping */
  LCD_EV_CONTACT = 1 << 7,  /* contact: requests, answers, key changes */
  LCD_EV_GROUP = 1 << 8,    /* group: members or name changed, joined */
  LCD_EV_TRANSFER = 1 << 9, /* transfer_*: offers, states, progress, files */
  LCD_EV_ALL = (1 << 10) - 1
};

typedef struct {
  uint64_t requests, bad_requests, events, clients, clients_dropped,
      clients_refused, clients_evicted, clients_timed_out, oversized_lines;
} lcd_counters;

typedef struct lcd_daemon {
  lcd_config cfg;
  char data_dir[PATH_MAX];
  char sock_path[PATH_MAX];
  char peers_path[PATH_MAX];
  char profile_path[PATH_MAX];
  char downloads[PATH_MAX]; /* where received files go (absolute) */
  char *passphrase;         /* wiped and freed once the node is created */
  lc_node *node;
  lcd_directory dir;
  uint8_t self[LC_KEY_BYTES];
  /* our profile (nick in cfg.nick): kept in profile.json across restarts */
  int presence;
  char status[LC_STATUS_MAX + 1];
  int contacts_only; /* the policy: messages from friends only */
  int profile_dirty;
  void *server; /* server.c's state */
  int stopping;
  uint64_t started_ms;
  lcd_counters count;
} lcd_daemon;

/* What a request asks of the connection, besides its reply. */
typedef struct {
  int subscribe;   /* 1: start streaming events of mask */
  unsigned mask;   /* LCD_EV_* */
  int unsubscribe; /* 1: stop streaming */
  int stop;        /* 1: shut the daemon down after the reply */
} lcd_effect;

/* ---- main.c ---- */
void lcd_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
extern int lcd_log_max; /* messages above this level are not shown */

/* ---- server.c ---- */
/* Runs the daemon: creates the loop, the node (lcd_node_open), the control
 * socket and the signal handlers, starts the node, calls ready(0) (or
 * ready(err, message) and returns 1), then serves until stopped.  Returns
 * the process's exit status. */
int lcd_server_run(lcd_daemon *d,
                   void (*ready)(lcd_daemon *d, int rc, const char *msg));
/* Sends an event to every subscriber of its class (steals ev). */
void lcd_server_broadcast(lcd_daemon *d, unsigned cls, lcj *ev);
/* Begins the shutdown: goodbye to the LAN, close the clients, exit 0. */
void lcd_server_shutdown(lcd_daemon *d);
/* Number of connected clients and of subscribers. */
void lcd_server_clients(lcd_daemon *d, size_t *clients, size_t *subscribers);

/* ---- commands.c ---- */
/* Creates the node (not started) on the loop.  0, or a negative error with
 * a message for the user in err. */
int lcd_node_open(lcd_daemon *d, struct uv_loop_s *loop, char *err,
                  size_t errlen);
/* Reads profile.json (nickname, presence, status; a nickname from the
 * command line or the config file wins). */
void lcd_profile_load(lcd_daemon *d);
/* Writes what changed: profile.json and peers.json. */
void lcd_save_state(lcd_daemon *d);
/* Handles one request line; returns the reply (never NULL unless out of
 * memory) and fills eff. */
lcj *lcd_command(lcd_daemon *d, const char *line, size_t len, lcd_effect *eff);
/* An error reply for a line that could not be read whole. */
lcj *lcd_error_reply(lcj *id, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
