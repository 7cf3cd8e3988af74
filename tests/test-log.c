/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-test-log"

#include "config.h"

#include <string.h>

#include "twp-log.h"

static void
assert_valid (const char *text,
              gssize      len,
              const char *expected)
{
  g_autofree char *valid = twp_log_make_valid (text, len);

  g_assert_true (g_utf8_validate (valid, -1, NULL));
  g_assert_cmpstr (valid, ==, expected);
}

static void
test_make_valid (void)
{
  /* Valid text, ASCII or not, is kept byte for byte. */
  assert_valid ("", -1, "");
  assert_valid ("url=ws://a/", -1, "url=ws://a/");
  assert_valid ("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", -1, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  /* The SOCKS username of issue 11: every bad byte escaped, nothing lost. */
  assert_valid ("\xff\xfe=\xc0\xaf", -1, "\\xff\\xfe=\\xc0\\xaf");
  /* Overlong, surrogate, above U+10FFFF, truncated, lone continuation */
  assert_valid ("a\xc0\x80z", -1, "a\\xc0\\x80z");
  assert_valid ("\xed\xa0\x80", -1, "\\xed\\xa0\\x80");
  assert_valid ("\xf4\x90\x80\x80", -1, "\\xf4\\x90\\x80\\x80");
  assert_valid ("ok\xe2\x82", -1, "ok\\xe2\\x82");
  assert_valid ("\x80", -1, "\\x80");
  /* A valid sequence right after a bad byte survives. */
  assert_valid ("\xff\xc3\xa9", -1, "\\xff\xc3\xa9");
  /* With a length: NUL inside is a bad byte too, the rest is not read. */
  assert_valid ("a\0b", 3, "a\\x00b");
  assert_valid ("abc\xff", 3, "abc");
  g_assert_null (twp_log_make_valid (NULL, -1));
}

static void
test_error_make_valid (void)
{
  g_autoptr(GError) error = g_error_new (G_URI_ERROR, G_URI_ERROR_FAILED, "reason \"%s\"", "\xc0\xaf");
  g_autoptr(GError) fine = g_error_new_literal (G_URI_ERROR, G_URI_ERROR_FAILED, "\xc3\xa9t\xc3\xa9");
  char *before = fine->message;

  twp_log_error_make_valid (error);
  g_assert_cmpstr (error->message, ==, "reason \"\\xc0\\xaf\"");
  twp_log_error_make_valid (fine);
  g_assert_true (fine->message == before);
  twp_log_error_make_valid (NULL);
}

static void
sink_cb (TwpLogSeverity  severity,
         const char     *message,
         gpointer        user_data)
{
  GPtrArray *messages = user_data;

  g_ptr_array_add (messages, g_strdup (message));
}

/* What reaches tor's log, stderr and the D-Bus event ring is valid. */
static void
test_user_messages (void)
{
  g_autoptr(GPtrArray) messages = g_ptr_array_new_with_free_func (g_free);
  guint id = twp_log_add_sink (sink_cb, messages);

  twp_log_user (TWP_LOG_DEBUG, "bad bridge line arguments: unknown bridge argument \"%s\"", "\xff\xfe");
  twp_log_user (TWP_LOG_DEBUG, "fine: %s", "\xc3\xa9");
  twp_log_remove_sink (id);
  g_assert_cmpuint (messages->len, ==, 2);
  g_assert_cmpstr (g_ptr_array_index (messages, 0), ==,
                   "bad bridge line arguments: unknown bridge argument \"\\xff\\xfe\"");
  g_assert_cmpstr (g_ptr_array_index (messages, 1), ==, "fine: \xc3\xa9");
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/log/make-valid", test_make_valid);
  g_test_add_func ("/log/error-make-valid", test_error_make_valid);
  g_test_add_func ("/log/user-messages", test_user_messages);
  return g_test_run ();
}
