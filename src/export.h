/* export.h: a conversation written out as JSON lines or as plain text.
 * Pure formatting over a stdio stream; the node feeds it messages from the
 * store, oldest first. */
#ifndef LC_EXPORT_H
#define LC_EXPORT_H

#include <stdio.h>

#include "store.h"

/* Writes one message as one JSON object on one line.  Returns 0 or a
 * negative errno. */
int lc__export_jsonl(FILE *f, const lc__stored_msg *m);

/* Writes one message as "[YYYY-MM-DD HH:MM:SS] who: text" in local time,
 * with "(edited)" / "(retracted)" marks; `who` names the peer for
 * messages it sent.  Returns 0 or a negative errno. */
int lc__export_text(FILE *f, const lc__stored_msg *m, const char *who);

/* Writes s as a JSON string (quotes included), escaping what JSON needs
 * escaped.  s is valid UTF-8 (the store holds nothing else). */
int lc__export_json_string(FILE *f, const char *s, size_t len);

#endif
