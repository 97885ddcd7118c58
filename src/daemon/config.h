/* config.h: lanchatd's settings, from the command line and from a
 * `key = value` file (the same names as the long options, without the
 * dashes); what is given on the command line wins.  Pure parsing: no I/O
 * except reading the file. */
#ifndef LCD_CONFIG_H
#define LCD_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define LCD_LIST_MAX 32 /* entries of a repeatable setting */

typedef struct {
  char *data_dir;
  char *nick;
  char *bind_v4, *bind_v6; /* NULL: the library's default */
  char *interfaces;
  char *passphrase_file;
  char *config;
  char *downloads; /* NULL: the default (lanchatd's main.c) */
  char *broadcast[LCD_LIST_MAX];
  size_t n_broadcast;
  char *peer[LCD_LIST_MAX];
  size_t n_peer;
  uint16_t port, discovery_port;
  uint32_t announce_interval_ms;
  int log_level; /* 0 error, 1 warning (default), 2 notice, 3 debug */
  int foreground;
  int no_read_receipts;
  uint64_t auto_accept_bytes; /* offers from friends up to this: 0 off */
  uint64_t set_by_flag;       /* bit per setting given on the command line */
} lcd_config;

void lcd_config_init(lcd_config *c);
void lcd_config_free(lcd_config *c);

/* Applies one setting.  name is the long option's name ("data-dir");
 * value NULL for a switch (foreground).  from_flag: 1 for the command line
 * (always applied), 0 for the file (ignored when the command line gave the
 * same setting).  Returns 0, or -1 with a message in err. */
int lcd_config_set(lcd_config *c, const char *name, const char *value,
                   int from_flag, char *err, size_t errlen);

/* 1 if the setting takes no value (a switch), 0 if it takes one, -1 if
 * there is no such setting. */
int lcd_config_is_switch(const char *name);

/* Parses a configuration file's text: `name = value` lines, `#` comments
 * and blank lines.  Returns 0, or -1 with "line N: ..." in err. */
int lcd_config_parse(lcd_config *c, const char *text, size_t len, char *err,
                     size_t errlen);

/* Reads and parses a file.  Returns 0, -1 with a message in err.  missing_ok:
 * a file that does not exist is not an error. */
int lcd_config_load(lcd_config *c, const char *path, int missing_ok, char *err,
                    size_t errlen);

/* A size: digits with an optional K, M, G or T (powers of 1024, any
 * case, an optional "iB" or "B" after it).  0, or -1 if malformed or
 * over 2^62. */
int lcd_parse_size(const char *s, uint64_t *out);

/* "error", "warning", "notice", "debug" to 0..3, or -1. */
int lcd_log_level(const char *name);

#endif
