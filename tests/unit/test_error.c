/* test_error.c: the error table gives every code a distinct name and a
 * message, and system errors pass through. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "lanchat.h"

static void test_own_codes(void **state) {
  (void)state;
  static const int codes[] = {
#define X(name, value, msg) LC_##name,
      LC_ERRNO_MAP(X)
#undef X
  };
  size_t n = sizeof codes / sizeof codes[0];
  for (size_t i = 0; i < n; i++) {
    assert_true(codes[i] <= -30000 && codes[i] > -31000);
    assert_string_not_equal(lc_strerror(codes[i]), "unknown error");
    assert_memory_equal(lc_err_name(codes[i]), "LC_E", 4);
    for (size_t j = i + 1; j < n; j++) {
      assert_int_not_equal(codes[i], codes[j]);
      assert_string_not_equal(lc_err_name(codes[i]), lc_err_name(codes[j]));
    }
  }
  assert_string_equal(lc_err_name(LC_EAUTH), "LC_EAUTH");
  assert_string_equal(lc_strerror(LC_EAUTH), "authentication failed");
}

static void test_system_codes(void **state) {
  (void)state;
  assert_string_equal(lc_err_name(-ENOENT), "ENOENT");
  assert_string_equal(lc_strerror(-ENOENT), strerror(ENOENT));
  assert_string_equal(lc_err_name(-99999), "UNKNOWN");
  assert_string_equal(lc_strerror(-99999), "unknown error");
  assert_string_equal(lc_strerror(0), "success");
  assert_string_equal(lc_version_string(), "0.1.0");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_own_codes),
      cmocka_unit_test(test_system_codes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
