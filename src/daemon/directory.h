/* directory.h: the peers lanchatd has known, present or not: nickname,
 * status, last address and when each was last seen, kept across restarts
 * in <data_dir>/peers.json; and the rule that turns what a user types (a
 * nickname, or a prefix of a peer's id) into one peer. */
#ifndef LCD_DIRECTORY_H
#define LCD_DIRECTORY_H

#include "lanchat.h"

typedef struct {
  lc_peer_info info; /* presence OFFLINE when absent */
  int online;
} lcd_peer;

typedef struct {
  lcd_peer *v;
  size_t n, cap;
  int dirty;
} lcd_directory;

void lcd_dir_init(lcd_directory *d);
void lcd_dir_free(lcd_directory *d);

/* Loads peers.json (a missing file is an empty directory; a malformed one
 * is set aside as peers.json.bad and reported with -1 and a message). */
int lcd_dir_load(lcd_directory *d, const char *path, char *err, size_t errlen);
/* Writes it aside, then renames it into place.  0 or a negative errno. */
int lcd_dir_save(lcd_directory *d, const char *path);

/* A peer appeared, changed (online) or left. */
void lcd_dir_update(lcd_directory *d, const lc_peer_info *p, int online);
/* Adds a peer known only by its key (a conversation partner). */
void lcd_dir_touch(lcd_directory *d, const uint8_t key[LC_KEY_BYTES]);
lcd_peer *lcd_dir_find(lcd_directory *d, const uint8_t key[LC_KEY_BYTES]);

/* Resolves what a user typed: 64 hex digits (any key), a prefix of at least
 * 8 hex digits of a known peer's id, or a nickname (exact, then ignoring
 * case; of several peers with one name, the only one online wins).
 * Returns 1 with the key, 0 for no match, or -(number of matches) when
 * ambiguous; matches (may be NULL) receives up to max_matches indexes into
 * d->v of the candidates (for an error that lists them). */
int lcd_dir_resolve(lcd_directory *d, const char *what,
                    uint8_t key[LC_KEY_BYTES], size_t *matches,
                    size_t max_matches);

#endif
