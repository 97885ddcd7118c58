/* paths.h: where lanchatd and lanchat keep their files, so that the daemon
 * and the command line always agree: the data folder and, inside it, the
 * control socket, the lock, the configuration and the known-peers file. */
#ifndef LC_PATHS_H
#define LC_PATHS_H

#include <stddef.h>

#define LC_SOCKET_NAME "control.sock"
#define LC_LOCK_NAME "lanchatd.pid"
#define LC_CONFIG_NAME "lanchatd.conf"
#define LC_PEERS_NAME "peers.json"
#define LC_LOG_NAME "lanchatd.log"
#define LC_PROFILE_NAME "profile.json"
#define LC_DOWNLOADS_NAME "downloads"
#define LC_RECORDINGS_NAME "recordings"

/* The data folder: dir if given (not NULL, not ""), else $LANCHAT_HOME,
 * else $XDG_DATA_HOME/lanchat, else $HOME/.local/share/lanchat.  Returns
 * 0, or -1 with a message in err when none can be found or it is too
 * long. */
int lc_paths_data_dir(const char *dir, char *out, size_t outlen, char *err,
                      size_t errlen);

/* Where lanchatd puts the files it receives when no folder is set.  A data
 * folder chosen for this daemon (explicit: --data-dir, a config file's
 * data-dir, or $LANCHAT_HOME) gets <data_dir>/downloads, so that several
 * identities on one machine never share a folder.  The user's own default
 * data folder gets the desktop's download folder: $XDG_DOWNLOAD_DIR (the
 * environment, else its line in $XDG_CONFIG_HOME/user-dirs.dirs or
 * ~/.config/user-dirs.dirs), else ~/Downloads, with "/lanchat" added.
 * Returns 0, or -1 if it does not fit in outlen. */
int lc_paths_downloads_dir(const char *data_dir, int explicit_data_dir,
                           char *out, size_t outlen);

/* <data_dir>/<name>.  Returns 0, or -1 if it does not fit in outlen. */
int lc_paths_join(const char *data_dir, const char *name, char *out,
                  size_t outlen);

/* mkdir -p: path and every missing folder above it, new ones 0700.
 * Returns 0, or a negative errno (-ENOTDIR if path is not a folder). */
int lc_paths_mkdirs(const char *path);

/* Whether dir may hold an identity and a history (like ssh's StrictModes):
 * a folder that belongs to this user, as do lanchat's files in it, that no
 * other user may change, and that this user can write in.  Returns 0; 1 if
 * usable but other users can list it (a warning in msg); -1 if refused, with
 * why and the command that fixes it in msg.  Nothing is changed. */
int lc_paths_check_data_dir(const char *dir, char *msg, size_t msglen);

/* s as one shell word, for commands that messages suggest: s itself when
 * it needs no quoting, else quoted in buf (cap bytes). */
const char *lc_paths_shq(const char *s, char *buf, size_t cap);

/* Room in struct sockaddr_un's sun_path (including the NUL). */
size_t lc_paths_socket_max(void);

#endif
