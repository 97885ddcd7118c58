/* fuzz_config.c: libFuzzer harness for lanchatd's configuration file
 * parser (src/daemon/config.c, lcd_config_parse), the text of
 * lanchatd.conf or of --config FILE.
 *
 * Every input is parsed as a whole file.  A failure must leave a message
 * "line N: ..." with N a line of the input; a success must hold only
 * values the parser promises (ports in range, lists within their bounds,
 * no empty data-dir, nick or downloads), and parsing the same text again
 * over settings all given on the command line must succeed too (the file
 * never overrides a flag, and a flag hides even a line that would be
 * refused, like `config`).  Whatever was allocated is freed
 * (LeakSanitizer checks).  Built with clang -fsanitize=fuzzer by
 * tools/fuzz, and with any compiler plus corpus_main.c to replay
 * tests/fuzz/corpus/config in the suite. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fc_fail(const char *what, const char *err) {
  fprintf(stderr, "fuzz_config: %s%s%s\n", what, err ? ": " : "",
          err ? err : "");
  abort();
}

/* The number of lines lcd_config_parse counts in text. */
static size_t fc_lines(const uint8_t *text, size_t len) {
  size_t n = 0, pos = 0;
  while (pos < len) {
    const uint8_t *nl = memchr(text + pos, '\n', len - pos);
    n++;
    pos = nl ? (size_t)(nl - text) + 1 : len;
  }
  return n;
}

static void fc_check_ok(const lcd_config *c) {
  if (c->n_broadcast > LCD_LIST_MAX || c->n_peer > LCD_LIST_MAX)
    fc_fail("a list over its bound", NULL);
  for (size_t i = 0; i < c->n_broadcast; i++)
    if (!c->broadcast[i] || !*c->broadcast[i] || strchr(c->broadcast[i], ','))
      fc_fail("a bad broadcast entry", NULL);
  for (size_t i = 0; i < c->n_peer; i++)
    if (!c->peer[i] || !*c->peer[i] || strchr(c->peer[i], ','))
      fc_fail("a bad peer entry", NULL);
  if ((c->data_dir && !*c->data_dir) || (c->nick && !*c->nick) ||
      (c->downloads && !*c->downloads))
    fc_fail("an empty value accepted", NULL);
  if (c->config)
    fc_fail("config set from inside a config file", NULL);
  if (c->log_level < 0 || c->log_level > 3)
    fc_fail("log level out of range", NULL);
  if (c->announce_interval_ms &&
      (c->announce_interval_ms < 1000 || c->announce_interval_ms > 3600000))
    fc_fail("announce interval out of range", NULL);
  if (c->auto_accept_bytes > (UINT64_C(1) << 62))
    fc_fail("auto-accept over 2^62", NULL);
  if ((c->bind_v4 && !c->bind_v6) || (c->bind_v6 && !c->bind_v4))
    fc_fail("bind set for one family only", NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[256];
  lcd_config c;
  lcd_config_init(&c);
  memset(err, 0x55, sizeof err);
  int rc = lcd_config_parse(&c, (const char *)data, size, err, sizeof err);
  if (rc == 0) {
    fc_check_ok(&c);
  } else if (rc == -1) {
    if (!memchr(err, '\0', sizeof err))
      fc_fail("error message not terminated", NULL);
    unsigned long line = 0;
    int used = 0;
    if (sscanf(err, "line %lu: %n", &line, &used) != 1 || used == 0 ||
        line == 0 || line > fc_lines(data, size))
      fc_fail("error message without its line", err);
  } else {
    fc_fail("lcd_config_parse returned neither 0 nor -1", NULL);
  }
  lcd_config_free(&c);

  if (rc == 0) {
    /* every setting given as a flag: the file changes nothing */
    lcd_config_init(&c);
    c.set_by_flag = ~UINT64_C(0);
    lcd_config before;
    memcpy(&before, &c, sizeof c);
    if (lcd_config_parse(&c, (const char *)data, size, err, sizeof err) != 0)
      fc_fail("a file that parsed alone failed under flags", err);
    if (memcmp(&before, &c, sizeof c) != 0)
      fc_fail("the file changed a setting given as a flag", NULL);
    lcd_config_free(&c);
  }
  return 0;
}
