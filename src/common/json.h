/* json.h: the JSON values that lanchatd and lanchat exchange on the control
 * socket (and keep in small files), as a thin layer over jansson, so that
 * json.c is the only file that includes <jansson.h>.
 *
 * Ownership follows jansson: a constructor returns a new reference; lcj_set
 * and lcj_push take (steal) the value they are given, even on failure;
 * getters return borrowed references.  Every function accepts NULL. */
#ifndef LC_JSON_H
#define LC_JSON_H

#include <stddef.h>
#include <stdint.h>

typedef struct json_t lcj; /* jansson's json_t, kept opaque */

lcj *lcj_obj(void);
lcj *lcj_arr(void);
lcj *lcj_str(const char *s);            /* NULL for invalid UTF-8 */
lcj *lcj_strn(const char *s, size_t n); /* NULL for invalid UTF-8 */
lcj *lcj_int(int64_t v);
lcj *lcj_bool(int v);
lcj *lcj_null(void);
lcj *lcj_ref(lcj *v);  /* one more reference */
void lcj_free(lcj *v); /* one reference less */

/* Object members and array elements; they steal v.  0 or -1. */
int lcj_set(lcj *obj, const char *key, lcj *v);
int lcj_push(lcj *arr, lcj *v);
int lcj_set_str(lcj *obj, const char *key, const char *s);
int lcj_set_int(lcj *obj, const char *key, int64_t v);
int lcj_set_bool(lcj *obj, const char *key, int v);

/* Borrowed member (NULL if absent or obj is not an object). */
lcj *lcj_get(const lcj *obj, const char *key);
size_t lcj_len(const lcj *arr); /* array length; 0 for anything else */
lcj *lcj_at(const lcj *arr, size_t i);

/* Types. */
int lcj_is_obj(const lcj *v);
int lcj_is_arr(const lcj *v);
int lcj_is_str(const lcj *v);
int lcj_is_int(const lcj *v);
int lcj_is_bool(const lcj *v);
int lcj_is_null(const lcj *v);
/* The JSON type's name: "object", "array", "string", "integer", "real",
 * "boolean", "null" ("nothing" for NULL). */
const char *lcj_type_name(const lcj *v);

/* Values (borrowed string; NULL, 0 or 0 for another type). */
const char *lcj_sval(const lcj *v);
size_t lcj_slen(const lcj *v);
int64_t lcj_ival(const lcj *v);
int lcj_bval(const lcj *v); /* true and false */

/* Convenience: a member's string or NULL. */
const char *lcj_get_str(const lcj *obj, const char *key);

/* Object iteration: for (void *it = lcj_iter(o); it; it = lcj_next(o, it)) */
void *lcj_iter(lcj *obj);
void *lcj_next(lcj *obj, void *it);
const char *lcj_iter_key(void *it);
lcj *lcj_iter_value(void *it);

/* One line of compact JSON without a newline, in a malloc'd string (free
 * with free()); NULL when out of memory. */
char *lcj_dump(const lcj *v);
/* Parses exactly one JSON value of len bytes (no NUL needed; NUL bytes in
 * strings are refused).  On failure returns NULL and writes a message of
 * the form "line 1, column 7: ..." into err. */
lcj *lcj_parse(const char *buf, size_t len, char *err, size_t errlen);

#endif
