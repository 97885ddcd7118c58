/* export.c: JSON lines and plain text for a conversation (see export.h).
 * JSON is written by hand: strings need only their escapes, and the one
 * JSON library (jansson) belongs to the control API. */
#include "export.h"

#include <errno.h>
#include <string.h>
#include <time.h>

static const char *export_state(int state) {
  const char *name = lc_msg_state_name(state);
  return name ? name : "unknown";
}

static void export_hex(char *out, const uint8_t *b, size_t n) {
  static const char d[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = d[b[i] >> 4];
    out[2 * i + 1] = d[b[i] & 15];
  }
  out[2 * n] = 0;
}

int lc__export_json_string(FILE *f, const char *s, size_t len) {
  if (fputc('"', f) == EOF)
    return -EIO;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    int rc;
    if (c == '"' || c == '\\')
      rc = fprintf(f, "\\%c", c);
    else if (c == '\n')
      rc = fputs("\\n", f);
    else if (c == '\r')
      rc = fputs("\\r", f);
    else if (c == '\t')
      rc = fputs("\\t", f);
    else if (c < 0x20 || c == 0x7f)
      rc = fprintf(f, "\\u%04x", c);
    else
      rc = fputc(c, f);
    if (rc < 0)
      return -EIO;
  }
  return fputc('"', f) == EOF ? -EIO : 0;
}

int lc__export_jsonl(FILE *f, const lc__stored_msg *m) {
  char id[2 * LC_MSGID_BYTES + 1], peer[2 * LC_KEY_BYTES + 1];
  export_hex(id, m->msg_id, LC_MSGID_BYTES);
  export_hex(peer, m->peer, LC_KEY_BYTES);
  if (fprintf(f,
              "{\"id\":%lld,\"msg_id\":\"%s\",\"peer\":\"%s\","
              "\"direction\":\"%s\",\"sent_ms\":%llu,\"received_ms\":%llu,"
              "\"state\":\"%s\",\"edited_ms\":%llu,\"retracted\":%s,"
              "\"text\":",
              (long long)m->id, id, peer, m->outgoing ? "out" : "in",
              (unsigned long long)m->sent_ms,
              (unsigned long long)m->received_ms, export_state(m->state),
              (unsigned long long)m->edited_ms,
              m->retracted ? "true" : "false") < 0)
    return -EIO;
  int rc = lc__export_json_string(f, m->text, m->text_len);
  if (rc < 0)
    return rc;
  return fputs("}\n", f) < 0 ? -EIO : 0;
}

int lc__export_text(FILE *f, const lc__stored_msg *m, const char *who) {
  time_t t = (time_t)(m->sent_ms / 1000);
  struct tm tm;
  char when[32] = "?";
  if (localtime_r(&t, &tm))
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
  /* a retracted message has no text left: the mark stands alone */
  const char *mark = "";
  if (m->retracted)
    mark = m->text_len ? " (retracted)" : "(retracted)";
  else if (m->edited_ms)
    mark = " (edited)";
  if (fprintf(f, "[%s] %s: ", when, m->outgoing ? "me" : who) < 0)
    return -EIO;
  /* one message, one paragraph: continuation lines are indented */
  for (size_t i = 0; i < m->text_len; i++) {
    if (fputc(m->text[i], f) == EOF)
      return -EIO;
    if (m->text[i] == '\n' && fputs("    ", f) < 0)
      return -EIO;
  }
  return fprintf(f, "%s\n", mark) < 0 ? -EIO : 0;
}
