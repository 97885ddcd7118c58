/* json.c: lcj over jansson, the only file that includes <jansson.h>.  See
 * json.h for the ownership rules. */
#include "json.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

lcj *lcj_obj(void) {
  return json_object();
}
lcj *lcj_arr(void) {
  return json_array();
}
lcj *lcj_str(const char *s) {
  return s ? json_string(s) : NULL;
}
lcj *lcj_strn(const char *s, size_t n) {
  return s ? json_stringn(s, n) : NULL;
}
lcj *lcj_int(int64_t v) {
  return json_integer((json_int_t)v);
}
lcj *lcj_bool(int v) {
  return json_boolean(v);
}
lcj *lcj_null(void) {
  return json_null();
}
lcj *lcj_ref(lcj *v) {
  return json_incref(v);
}
void lcj_free(lcj *v) {
  json_decref(v);
}

int lcj_set(lcj *obj, const char *key, lcj *v) {
  if (!obj || !key || !v) {
    json_decref(v);
    return -1;
  }
  return json_object_set_new(obj, key, v);
}

int lcj_push(lcj *arr, lcj *v) {
  if (!arr || !v) {
    json_decref(v);
    return -1;
  }
  return json_array_append_new(arr, v);
}

int lcj_set_str(lcj *obj, const char *key, const char *s) {
  return lcj_set(obj, key, lcj_str(s));
}
int lcj_set_int(lcj *obj, const char *key, int64_t v) {
  return lcj_set(obj, key, lcj_int(v));
}
int lcj_set_bool(lcj *obj, const char *key, int v) {
  return lcj_set(obj, key, lcj_bool(v));
}

lcj *lcj_get(const lcj *obj, const char *key) {
  return obj && key && json_is_object(obj) ? json_object_get(obj, key) : NULL;
}
size_t lcj_len(const lcj *arr) {
  return arr && json_is_array(arr) ? json_array_size(arr) : 0;
}
lcj *lcj_at(const lcj *arr, size_t i) {
  return arr && json_is_array(arr) ? json_array_get(arr, i) : NULL;
}

int lcj_is_obj(const lcj *v) {
  return v && json_is_object(v);
}
int lcj_is_arr(const lcj *v) {
  return v && json_is_array(v);
}
int lcj_is_str(const lcj *v) {
  return v && json_is_string(v);
}
int lcj_is_int(const lcj *v) {
  return v && json_is_integer(v);
}
int lcj_is_bool(const lcj *v) {
  return v && json_is_boolean(v);
}
int lcj_is_null(const lcj *v) {
  return v && json_is_null(v);
}

const char *lcj_type_name(const lcj *v) {
  if (!v)
    return "nothing";
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    return "object";
  case JSON_ARRAY:
    return "array";
  case JSON_STRING:
    return "string";
  case JSON_INTEGER:
    return "integer";
  case JSON_REAL:
    return "real";
  case JSON_TRUE:
  case JSON_FALSE:
    return "boolean";
  case JSON_NULL:
    return "null";
  }
  return "unknown";
}

const char *lcj_sval(const lcj *v) {
  return v && json_is_string(v) ? json_string_value(v) : NULL;
}
size_t lcj_slen(const lcj *v) {
  return v && json_is_string(v) ? json_string_length(v) : 0;
}
int64_t lcj_ival(const lcj *v) {
  return v && json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}
int lcj_bval(const lcj *v) {
  return v && json_is_true(v);
}

const char *lcj_get_str(const lcj *obj, const char *key) {
  return lcj_sval(lcj_get(obj, key));
}

void *lcj_iter(lcj *obj) {
  return obj ? json_object_iter(obj) : NULL;
}
void *lcj_next(lcj *obj, void *it) {
  return json_object_iter_next(obj, it);
}
const char *lcj_iter_key(void *it) {
  return json_object_iter_key(it);
}
lcj *lcj_iter_value(void *it) {
  return json_object_iter_value(it);
}

char *lcj_dump(const lcj *v) {
  return v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
}

lcj *lcj_parse(const char *buf, size_t len, char *err, size_t errlen) {
  json_error_t e;
  lcj *v = json_loadb(buf, len, JSON_DECODE_ANY, &e);
  if (!v && err && errlen)
    snprintf(err, errlen, "line %d, column %d: %s", e.line, e.column, e.text);
  return v;
}
