/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-test-args"

#include "config.h"

#include <string.h>

#include "twp-args.h"

static TwpArgs *
parse_socks_str (const char  *str,
                 GError     **error)
{
  return twp_args_parse_socks (str, strlen (str), error);
}

static void
assert_pair (TwpArgs    *args,
             guint       i,
             const char *key,
             const char *value)
{
  g_assert_cmpuint (i, <, twp_args_get_length (args));
  g_assert_cmpstr (twp_args_get_key (args, i), ==, key);
  g_assert_cmpstr (twp_args_get_value (args, i), ==, value);
}

static void
test_list (void)
{
  g_autoptr(TwpArgs) args = twp_args_new ();
  g_autoptr(TwpArgs) other = twp_args_new ();

  g_assert_cmpuint (twp_args_get_length (args), ==, 0);
  g_assert_null (twp_args_lookup (args, "a"));
  twp_args_add (args, "a", "1");
  twp_args_add (args, "b", "2");
  twp_args_add (args, "a", "3");
  g_assert_cmpuint (twp_args_get_length (args), ==, 3);
  g_assert_cmpstr (twp_args_lookup (args, "a"), ==, "1");
  g_assert_cmpuint (twp_args_count (args, "a"), ==, 2);
  g_assert_cmpuint (twp_args_count (args, "c"), ==, 0);
  assert_pair (args, 2, "a", "3");

  g_assert_false (twp_args_equal (args, other));
  twp_args_add (other, "a", "1");
  twp_args_add (other, "b", "2");
  twp_args_add (other, "a", "3");
  g_assert_true (twp_args_equal (args, other));
}

/* C11 with the exact string observed from tor 0.4.9.11 (354 bytes, split
 * across UNAME and PASSWD on the wire; concatenated here). */
static void
test_socks_observed (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TwpArgs) args = NULL;
  g_autofree char *longval = g_strnfill (300, 'A');
  g_autofree char *wire = g_strconcat ("url=ws://example/long;semi=a\\;b;back=c\\\\d;eq=x=y;long=",
                                       longval, NULL);

  g_assert_cmpuint (strlen (wire), ==, 354);
  args = twp_args_parse_socks (wire, strlen (wire), &error);
  g_assert_no_error (error);
  g_assert_cmpuint (twp_args_get_length (args), ==, 5);
  assert_pair (args, 0, "url", "ws://example/long");
  assert_pair (args, 1, "semi", "a;b");
  assert_pair (args, 2, "back", "c\\d");
  assert_pair (args, 3, "eq", "x=y");
  assert_pair (args, 4, "long", longval);

  /* the short one, as it arrived in UNAME alone */
  g_clear_pointer (&args, twp_args_free);
  args = parse_socks_str ("url=ws://example/;foo=bar", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (twp_args_get_length (args), ==, 2);
  assert_pair (args, 0, "url", "ws://example/");
  assert_pair (args, 1, "foo", "bar");
}

/* 8.2: tor splits at byte 255, possibly inside "\;". Parsing works on the
 * concatenation, so each split point gives the same list. */
static void
test_socks_split_escape (void)
{
  const char *wire = "a=x\\;y;b=\\\\;c=\\=";

  for (gsize cut = 0; cut <= strlen (wire); cut++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(TwpArgs) args = NULL;
      g_autofree char *uname = g_strndup (wire, cut);
      g_autofree char *joined = g_strconcat (uname, wire + cut, NULL);

      args = twp_args_parse_socks (joined, strlen (joined), &error);
      g_assert_no_error (error);
      g_assert_cmpuint (twp_args_get_length (args), ==, 3);
      assert_pair (args, 0, "a", "x;y");
      assert_pair (args, 1, "b", "\\");
      assert_pair (args, 2, "c", "=");
    }
}

static void
test_socks_edge (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TwpArgs) args = NULL;

  /* empty string: no args at all (greeting 05 01 00 path) */
  args = twp_args_parse_socks ("", 0, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (twp_args_get_length (args), ==, 0);
  g_clear_pointer (&args, twp_args_free);

  args = twp_args_parse_socks (NULL, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (twp_args_get_length (args), ==, 0);
  g_clear_pointer (&args, twp_args_free);

  /* empty value, repeated key, escaped key, non-ASCII bytes kept */
  args = parse_socks_str ("k=;k=2;\\=k\\;=v;u=\xc3\xa9", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (twp_args_get_length (args), ==, 4);
  assert_pair (args, 0, "k", "");
  assert_pair (args, 1, "k", "2");
  assert_pair (args, 2, "=k;", "v");
  assert_pair (args, 3, "u", "\xc3\xa9");
  g_assert_cmpuint (twp_args_count (args, "k"), ==, 2);
  g_clear_pointer (&args, twp_args_free);

  /* @len is honoured: the bytes after it are not read */
  args = twp_args_parse_socks ("a=b;c=d", 3, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (twp_args_get_length (args), ==, 1);
  assert_pair (args, 0, "a", "b");
}

static void
test_socks_errors (void)
{
  static const struct {
    const char *str;
    gsize len;
  } bad[] = {
    { "a=b\\", 4 },          /* trailing lone '\' */
    { "a=b;c=\\", 7 },
    { "=v", 2 },              /* empty key */
    { "a=b;=v", 6 },
    { "novalue", 7 },         /* item without '=' */
    { "a=b;c", 5 },
    { "a=b;", 4 },            /* empty last item */
    { ";a=b", 4 },
    { "a\\=b", 4 },           /* the only '=' is escaped */
    { "a=b\0c", 5 },          /* NUL byte */
    { "a=\\\0", 4 },          /* escaped NUL byte */
    { "\0", 1 },
  };

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(TwpArgs) args = twp_args_parse_socks (bad[i].str, bad[i].len, &error);

      g_test_message ("bad SOCKS args #%u", i);
      g_assert_null (args);
      g_assert_error (error, TWP_ARGS_ERROR, TWP_ARGS_ERROR_INVALID);
      g_assert_null (strchr (error->message, '\n'));
    }
}

/* S3 with the exact value observed from tor 0.4.9.11. */
static void
test_server_options_observed (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GHashTable) table = NULL;
  TwpArgs *args;

  table = twp_args_parse_server_options ("websocket:path=/ws\\;x;websocket:colon=a\\:b;"
                                         "websocket:back=c\\\\d;websocket:eq=x=y",
                                         &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_hash_table_size (table), ==, 1);
  args = g_hash_table_lookup (table, "websocket");
  g_assert_nonnull (args);
  g_assert_cmpuint (twp_args_get_length (args), ==, 4);
  assert_pair (args, 0, "path", "/ws;x");
  assert_pair (args, 1, "colon", "a:b");
  assert_pair (args, 2, "back", "c\\d");
  assert_pair (args, 3, "eq", "x=y");
}

static void
test_server_options_edge (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GHashTable) table = NULL;
  TwpArgs *args;

  table = twp_args_parse_server_options (NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_hash_table_size (table), ==, 0);
  g_clear_pointer (&table, g_hash_table_unref);

  table = twp_args_parse_server_options ("", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_hash_table_size (table), ==, 0);
  g_clear_pointer (&table, g_hash_table_unref);

  /* two transports, interleaved, empty value, a ':' inside the value */
  table = twp_args_parse_server_options ("a:k=1;b:k=2;a:k=;a:u=x:y", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_hash_table_size (table), ==, 2);
  args = g_hash_table_lookup (table, "a");
  g_assert_cmpuint (twp_args_get_length (args), ==, 3);
  assert_pair (args, 0, "k", "1");
  assert_pair (args, 1, "k", "");
  assert_pair (args, 2, "u", "x:y");
  args = g_hash_table_lookup (table, "b");
  g_assert_cmpuint (twp_args_get_length (args), ==, 1);
  assert_pair (args, 0, "k", "2");
}

static void
test_server_options_errors (void)
{
  static const char * const bad[] = {
    "websocket",               /* no ':' */
    "websocket:key",           /* no '=' */
    ":k=v",                    /* empty name */
    "websocket:=v",            /* empty key */
    "websocket:k=v;",          /* empty trailing item */
    ";websocket:k=v",
    "websocket:k=v\\",         /* dangling '\' */
    "web\\:socket=x",          /* the only ':' is escaped */
    "websocket:k\\=v",         /* the only '=' is escaped */
  };

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GHashTable) table = twp_args_parse_server_options (bad[i], &error);

      g_test_message ("bad options: %s", bad[i]);
      g_assert_null (table);
      g_assert_error (error, TWP_ARGS_ERROR, TWP_ARGS_ERROR_INVALID);
    }
}

static void
test_smethod_format (void)
{
  g_autoptr(TwpArgs) args = twp_args_new ();
  g_autoptr(TwpArgs) back = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *empty = NULL;
  g_autofree char *str = NULL;

  empty = twp_args_format_smethod (args);
  g_assert_cmpstr (empty, ==, "");

  /* the example published in extra-info by tor 0.4.9.11 (S8) */
  twp_args_add (args, "url", "ws://127.0.0.1=x/");
  twp_args_add (args, "note", "a,b");
  twp_args_add (args, "k\\=,", "v;:");
  str = twp_args_format_smethod (args);
  g_assert_cmpstr (str, ==, "url=ws://127.0.0.1\\=x/,note=a\\,b,k\\\\\\=\\,=v;:");

  back = twp_args_parse_smethod (str, &error);
  g_assert_no_error (error);
  g_assert_true (twp_args_equal (args, back));
}

static void
test_smethod_parse_errors (void)
{
  static const char * const bad[] = { "a=b,", "a", "=b", "a=b\\", "a=b,,c=d" };

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(TwpArgs) args = twp_args_parse_smethod (bad[i], &error);

      g_assert_null (args);
      g_assert_error (error, TWP_ARGS_ERROR, TWP_ARGS_ERROR_INVALID);
    }
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/args/list", test_list);
  g_test_add_func ("/args/socks/observed", test_socks_observed);
  g_test_add_func ("/args/socks/split-escape", test_socks_split_escape);
  g_test_add_func ("/args/socks/edge", test_socks_edge);
  g_test_add_func ("/args/socks/errors", test_socks_errors);
  g_test_add_func ("/args/server-options/observed", test_server_options_observed);
  g_test_add_func ("/args/server-options/edge", test_server_options_edge);
  g_test_add_func ("/args/server-options/errors", test_server_options_errors);
  g_test_add_func ("/args/smethod/format", test_smethod_format);
  g_test_add_func ("/args/smethod/parse-errors", test_smethod_parse_errors);

  return g_test_run ();
}
