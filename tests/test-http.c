/* SPDX-License-Identifier: BSD-3-Clause */
/* Plain HTTP: twp_http_read_head_async (), the one reader of HTTP heads
 * (the client's upgrade response, the server's request, the metrics
 * scrape), fed from memory and from a pipe that delivers the head in
 * pieces; the nginx-like responses; the client address a reverse proxy
 * reports. */
#define G_LOG_DOMAIN "twp-test-http"

#include "config.h"

#include "twp-http.h"

#include <string.h>

#include <glib-unix.h>
#include <gio/gunixinputstream.h>
#include <gio/gunixoutputstream.h>
#include <libsoup/soup.h>

/* Generous: the machine running the tests may be loaded. */
#define WAIT_MS 20000

/* What a read of a head gave. */
typedef struct {
  GBytes *bytes;
  gsize head_len;
  GError *error;
} Result;

static void
result_clear (Result *result)
{
  g_clear_pointer (&result->bytes, g_bytes_unref);
  g_clear_error (&result->error);
}

/* Keeps the GAsyncResult: the test finishes the read itself. */
static void
keep_result_cb (GObject      *source,
                GAsyncResult *async_result,
                gpointer      user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (async_result);
}

/* Runs the main context until the read is done, then finishes it. */
static void
finish_read (GInputStream  *stream,
             GAsyncResult **async_result,
             Result        *result)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) WAIT_MS * 1000;

  while (*async_result == NULL)
    {
      if (g_get_monotonic_time () > deadline)
        g_error ("the head reader did not finish within %d ms", WAIT_MS);
      if (!g_main_context_iteration (NULL, FALSE))
        g_usleep (1000);
    }
  memset (result, 0, sizeof *result);
  result->bytes = twp_http_read_head_finish (stream, *async_result, &result->head_len, &result->error);
  g_clear_object (async_result);
  g_assert_true ((result->bytes == NULL) == (result->error != NULL));
}

/* Reads @len bytes of @data through the helper. */
static void
read_memory (const char         *data,
             gsize               len,
             TwpHttpHeadEndFunc  find_end,
             gsize               max_size,
             Result             *result)
{
  g_autoptr(GInputStream) stream = g_memory_input_stream_new_from_data (g_memdup2 (data, len), len, g_free);
  GAsyncResult *async_result = NULL;

  twp_http_read_head_async (stream, find_end, max_size, NULL, keep_result_cb, &async_result);
  finish_read (stream, &async_result, result);
}

static void
test_read_head_leftover (void)
{
  const char head[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
  const char after[] = "\x82\x03" "abc";
  g_autoptr(GString) input = g_string_new (head);
  Result result;

  /* The first frames follow the head in the same read: they stay with the
   * caller, byte for byte. */
  g_string_append_len (input, after, sizeof after - 1);
  read_memory (input->str, input->len, NULL, TWP_HTTP_MAX_HEAD_SIZE, &result);
  g_assert_no_error (result.error);
  g_assert_cmpuint (result.head_len, ==, strlen (head));
  g_assert_cmpmem (g_bytes_get_data (result.bytes, NULL), g_bytes_get_size (result.bytes), input->str, input->len);
  result_clear (&result);

  /* Bare LF line ends are a head too (twp_http_find_head_end ()). */
  read_memory ("GET / HTTP/1.1\nHost: a\n\nrest", 28, NULL, TWP_HTTP_MAX_HEAD_SIZE, &result);
  g_assert_no_error (result.error);
  g_assert_cmpuint (result.head_len, ==, 24);
  g_assert_cmpuint (g_bytes_get_size (result.bytes), ==, 28);
  result_clear (&result);
}

/* A head longer than one read (1 KiB) is found across reads, however the
 * bytes after it fall. */
static void
test_read_head_many_reads (void)
{
  g_autoptr(GString) input = g_string_new ("GET / HTTP/1.1\r\n");
  gsize head_len;
  Result result;

  while (input->len < 5000)
    g_string_append (input, "X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
  g_string_append (input, "\r\n");
  head_len = input->len;
  g_string_append (input, "tail bytes");

  read_memory (input->str, input->len, NULL, TWP_HTTP_MAX_HEAD_SIZE, &result);
  g_assert_no_error (result.error);
  g_assert_cmpuint (result.head_len, ==, head_len);
  g_assert_cmpmem (g_bytes_get_data (result.bytes, NULL), g_bytes_get_size (result.bytes), input->str, input->len);
  result_clear (&result);
}

static void
test_read_head_truncated (void)
{
  const char *inputs[] = {
    "",
    "GET / HTTP/1.1\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\n\r",
  };
  Result result;

  for (guint i = 0; i < G_N_ELEMENTS (inputs); i++)
    {
      read_memory (inputs[i], strlen (inputs[i]), NULL, TWP_HTTP_MAX_HEAD_SIZE, &result);
      g_assert_error (result.error, TWP_HTTP_ERROR, TWP_HTTP_ERROR_TRUNCATED);
      g_assert_cmpuint (result.head_len, ==, 0);
      result_clear (&result);
    }
}

static gsize
never_ends (const guint8  *data,
            gsize          len,
            GError       **error)
{
  return 0;
}

static gsize
refuses_x (const guint8  *data,
           gsize          len,
           GError       **error)
{
  if (memchr (data, 'X', len) != NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "an X");
      return 0;
    }
  return twp_http_find_head_end (data, len, error);
}

static void
test_read_head_too_large (void)
{
  g_autofree char *filler = g_strnfill (3 * TWP_HTTP_MAX_HEAD_SIZE, 'a');
  g_autoptr(GString) late = g_string_new ("GET / HTTP/1.1\r\n");
  Result result;

  /* No end within the limit: refused, however much more would come. */
  read_memory (filler, strlen (filler), NULL, TWP_HTTP_MAX_HEAD_SIZE, &result);
  g_assert_error (result.error, TWP_HTTP_ERROR, TWP_HTTP_ERROR_TOO_LARGE);
  result_clear (&result);

  /* An end just past the limit is too late as well. */
  g_string_append_len (late, filler, TWP_HTTP_MAX_HEAD_SIZE - late->len);
  g_string_append (late, "\r\n\r\n");
  read_memory (late->str, late->len, NULL, TWP_HTTP_MAX_HEAD_SIZE, &result);
  g_assert_error (result.error, TWP_HTTP_ERROR, TWP_HTTP_ERROR_TOO_LARGE);
  result_clear (&result);

  /* The helper's own bound holds for a finder that never decides. */
  read_memory (filler, strlen (filler), never_ends, 100, &result);
  g_assert_error (result.error, TWP_HTTP_ERROR, TWP_HTTP_ERROR_TOO_LARGE);
  result_clear (&result);
}

/* A finder's error ends the read at once, with that error. */
static void
test_read_head_finder_error (void)
{
  Result result;

  read_memory ("GET /X HTTP/1.1\r\n", 17, refuses_x, TWP_HTTP_MAX_HEAD_SIZE, &result);
  g_assert_error (result.error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
  result_clear (&result);

  read_memory ("GET / HTTP/1.1\r\n\r\n", 18, refuses_x, TWP_HTTP_MAX_HEAD_SIZE, &result);
  g_assert_no_error (result.error);
  g_assert_cmpuint (result.head_len, ==, 18);
  result_clear (&result);
}

static void
test_read_head_cancelled (void)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GInputStream) stream = g_memory_input_stream_new_from_data ("GET / HTTP/1.1\r\n", 16, NULL);
  GAsyncResult *async_result = NULL;
  Result result;

  g_cancellable_cancel (cancellable);
  twp_http_read_head_async (stream, NULL, TWP_HTTP_MAX_HEAD_SIZE, cancellable, keep_result_cb, &async_result);
  finish_read (stream, &async_result, &result);
  g_assert_error (result.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_null (result.bytes);
  result_clear (&result);
}

/* A peer that sends its head a few bytes at a time, as slow clients do:
 * the reader waits for each piece and sees the end when it comes. */
static void
test_read_head_pieces (void)
{
  const char input[] = "GET /ws HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\r\nframe";
  g_autoptr(GError) error = NULL;
  g_autoptr(GInputStream) in = NULL;
  g_autoptr(GOutputStream) out = NULL;
  GAsyncResult *async_result = NULL;
  Result result;
  int fds[2];
  gsize sent = 0;

  g_assert_true (g_unix_open_pipe (fds, FD_CLOEXEC, &error));
  g_assert_no_error (error);
  in = g_unix_input_stream_new (fds[0], TRUE);
  out = g_unix_output_stream_new (fds[1], TRUE);

  twp_http_read_head_async (in, NULL, TWP_HTTP_MAX_HEAD_SIZE, NULL, keep_result_cb, &async_result);
  while (sent < sizeof input - 1)
    {
      gsize n = MIN (7, sizeof input - 1 - sent);

      g_assert_null (async_result);
      g_assert_true (g_output_stream_write_all (out, input + sent, n, NULL, NULL, &error));
      g_assert_no_error (error);
      sent += n;
      /* Let the reader take the piece (and answer, once the end came). */
      for (guint i = 0; i < 10 && async_result == NULL; i++)
        g_main_context_iteration (NULL, FALSE);
      if (async_result != NULL)
        break;
    }
  finish_read (in, &async_result, &result);
  g_assert_no_error (result.error);
  g_assert_cmpuint (result.head_len, ==, strlen (input) - strlen ("frame"));
  g_assert_cmpuint (g_bytes_get_size (result.bytes), >=, result.head_len);
  g_assert_cmpmem (g_bytes_get_data (result.bytes, NULL), g_bytes_get_size (result.bytes),
                   input, g_bytes_get_size (result.bytes));
  result_clear (&result);
}

/* Responses */

static void
assert_common_response_headers (const char *response,
                                const char *status_line)
{
  g_autoptr(SoupMessageHeaders) headers = soup_message_headers_new (SOUP_MESSAGE_HEADERS_RESPONSE);
  g_autoptr(GDateTime) date = NULL;
  g_autofree char *lower = NULL;
  const char *body;
  guint status;
  gsize head_len;

  g_assert_true (g_str_has_prefix (response, status_line));
  head_len = twp_http_find_head_end ((const guint8 *) response, strlen (response), NULL);
  g_assert_cmpuint (head_len, >, 0);
  g_assert_true (soup_headers_parse_response (response, (int) head_len - 2, headers, NULL, &status, NULL));
  g_assert_cmpstr (soup_message_headers_get_one (headers, "Server"), ==, "nginx");
  g_assert_true (soup_message_headers_header_contains (headers, "Connection", "close"));
  date = soup_date_time_new_from_http_string (soup_message_headers_get_one (headers, "Date"));
  g_assert_nonnull (date);
  body = response + head_len;
  g_assert_cmpint (soup_message_headers_get_content_length (headers), ==, strlen (body));
  /* Nothing that gives the transport away (426 has to name websocket). */
  lower = g_ascii_strdown (response, (gssize) head_len);
  g_assert_null (strstr (lower, "tor"));
  if (status != 426)
    g_assert_null (strstr (lower, "websocket"));
}

static void
test_response_error (void)
{
  const guint statuses[] = { 400, 403, 404, 405, 426, 429, 503 };
  gsize i;

  for (i = 0; i < G_N_ELEMENTS (statuses); i++)
    {
      g_autofree char *response = twp_http_response_error (statuses[i]);
      g_autofree char *status_line = g_strdup_printf ("HTTP/1.1 %u ", statuses[i]);

      assert_common_response_headers (response, status_line);
      g_assert_nonnull (strstr (response, "\r\n\r\n<html>"));
      if (statuses[i] == 426)
        {
          g_assert_nonnull (strstr (response, "\r\nSec-WebSocket-Version: 13\r\n"));
          g_assert_nonnull (strstr (response, "\r\nUpgrade: websocket\r\n"));
        }
      else
        {
          g_assert_null (strstr (response, "Sec-WebSocket"));
        }
    }
}

static void
test_response_ok_page (void)
{
  static const guint8 png[] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0x00, 0x00 };
  g_autoptr(GBytes) html = g_bytes_new_static ("<html><body>It works!</body></html>\n", 36);
  g_autoptr(GBytes) image = g_bytes_new_static (png, sizeof png);
  g_autofree char *response = NULL;
  g_autofree char *head = NULL;
  g_autofree char *binary = NULL;
  gsize length;
  gsize head_len;

  response = twp_http_response_ok ("text/html", html, FALSE, &length);
  g_assert_cmpuint (length, ==, strlen (response));
  assert_common_response_headers (response, "HTTP/1.1 200 OK\r\n");
  g_assert_true (g_str_has_suffix (response, "\r\n\r\n<html><body>It works!</body></html>\n"));
  g_assert_nonnull (strstr (response, "\r\nContent-Type: text/html\r\n"));

  /* HEAD: same Content-Length, no body. */
  head = twp_http_response_ok ("text/html", html, TRUE, &length);
  g_assert_true (g_str_has_suffix (head, "\r\nContent-Length: 36\r\nConnection: close\r\n\r\n"));
  g_assert_cmpuint (length, ==, strlen (head));

  binary = twp_http_response_ok ("image/png", image, FALSE, &length);
  head_len = twp_http_find_head_end ((const guint8 *) binary, length, NULL);
  g_assert_cmpuint (length, ==, head_len + sizeof png);
  g_assert_cmpmem (binary + head_len, sizeof png, png, sizeof png);
}

/* Forwarded-for */

static char *
forwarded_for (const char             *name,
               const char             *value,
               TwpHttpForwardedSource  source)
{
  g_autoptr(TwpHttpHeaders) headers = twp_http_headers_new ();

  twp_http_headers_append (headers, name, value);
  return twp_http_forwarded_for_from (headers, source);
}

static void
test_forwarded_for (void)
{
  const struct {
    const char *name;
    const char *value;
    const char *expected;
  } cases[] = {
    { "X-Forwarded-For", "203.0.113.7, 10.0.0.1", "10.0.0.1" },
    { "X-Forwarded-For", "203.0.113.7", "203.0.113.7" },
    { "X-Forwarded-For", " 203.0.113.7 ,  198.51.100.2 ", "198.51.100.2" },
    { "X-Forwarded-For", "2001:db8::1", "2001:db8::1" },
    { "X-Forwarded-For", "2001:DB8:0:0::1", "2001:db8::1" },
    { "X-Forwarded-For", "[2001:db8::1]:4711", "2001:db8::1" },
    { "X-Forwarded-For", "192.0.2.9:51234", "192.0.2.9" },
    { "X-Forwarded-For", "::ffff:192.0.2.9", "192.0.2.9" },
    { "X-Forwarded-For", "[::ffff:192.0.2.9]:80", "192.0.2.9" },
    { "X-Forwarded-For", "127.0.0.1", "127.0.0.1" },
    { "X-Forwarded-For", "::1", "::1" },
    /* No client has these addresses (issue 11). */
    { "X-Forwarded-For", "0.0.0.0", NULL },
    { "X-Forwarded-For", "0.1.2.3", NULL },
    { "X-Forwarded-For", "203.0.113.9, 0.0.0.0:80", NULL },
    { "X-Forwarded-For", "::", NULL },
    { "X-Forwarded-For", "[::]:443", NULL },
    { "X-Forwarded-For", "255.255.255.255", NULL },
    { "X-Forwarded-For", "240.0.0.1", NULL },
    { "X-Forwarded-For", "224.0.0.1", NULL },
    { "X-Forwarded-For", "239.255.255.250", NULL },
    { "X-Forwarded-For", "ff02::1", NULL },
    { "X-Forwarded-For", "ff0e::101", NULL },
    { "X-Forwarded-For", "::ffff:0.0.0.0", NULL },
    { "X-Forwarded-For", "::ffff:255.255.255.255", NULL },
    { "X-Forwarded-For", "::ffff:224.0.0.251", NULL },
    /* A client's unterminated quote swallows what the proxy appends. */
    { "X-Forwarded-For", "\"x, 203.0.113.9", NULL },
    { "X-Forwarded-For", "198.51.100.1, \", 203.0.113.9", NULL },
    { "X-Forwarded-For", "10.0.0.1, unknown", NULL },
    { "X-Forwarded-For", "10.0.0.1, proxy.example", NULL },
    { "X-Forwarded-For", "1.2.3", NULL },
    { "X-Forwarded-For", "1.2.3.4.5", NULL },
    { "X-Forwarded-For", "256.1.1.1", NULL },
    { "X-Forwarded-For", "192.0.2.9:99999", NULL },
    { "X-Forwarded-For", "192.0.2.9:", NULL },
    { "X-Forwarded-For", "fe80::1%eth0", NULL },
    { "X-Forwarded-For", "[2001:db8::1", NULL },
    { "X-Forwarded-For", "[192.0.2.1]", NULL },
    { "X-Forwarded-For", "<script>alert(1)</script>", NULL },
    { "X-Forwarded-For", "", NULL },
    { "X-Forwarded-For", ",,,", NULL },
    { "Forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60" },
    { "Forwarded", "For=\"[2001:db8:cafe::17]:4711\"", "2001:db8:cafe::17" },
    { "Forwarded", "for=\"[2001:db8:cafe::17]\"", "2001:db8:cafe::17" },
    { "Forwarded", "for=\"192.0.2.43:47011\"", "192.0.2.43" },
    { "Forwarded", "for=192.0.2.43, for=198.51.100.17", "198.51.100.17" },
    { "Forwarded", "for=198.51.100.17, for=\"[2001:db8::2]\";proto=https", "2001:db8::2" },
    { "Forwarded", "for=192.0.2.43, for=unknown", NULL },
    { "Forwarded", "for=unknown", NULL },
    { "Forwarded", "for=_hidden", NULL },
    { "Forwarded", "for=\"_gazonk\"", NULL },
    { "Forwarded", "for=192.0.2.43, proto=https", NULL },
    { "Forwarded", "for=192.0.2.43;for=198.51.100.17", NULL },
    { "Forwarded", "for=2001:db8::1", NULL },
    { "Forwarded", "for=\"192.0.2.43", NULL },
    { "Forwarded", "for=", NULL },
    { "Forwarded", "for", NULL },
    { "Forwarded", "for=\"\\\"1.2.3.4\"", NULL },
    { "Forwarded", "by=203.0.113.43", NULL },
    { "Forwarded", "\"\"\"", NULL },
    { "Forwarded", "for=\"x, for=203.0.113.9", NULL },
    { "Forwarded", "for=0.0.0.0", NULL },
    { "Forwarded", "for=\"[::]\"", NULL },
    { "Forwarded", "for=\"[::ffff:0.0.0.0]:80\"", NULL },
    { "Forwarded", "for=255.255.255.255", NULL },
    { "Forwarded", "for=\"[ff02::1]:80\"", NULL },
    { "Forwarded", "for=\"[::ffff:198.51.100.17]\"", "198.51.100.17" },
  };
  gsize i;

  for (i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *result = forwarded_for (cases[i].name, cases[i].value, TWP_HTTP_FORWARDED_ANY);

      g_test_message ("%s: %s", cases[i].name, cases[i].value);
      g_assert_cmpstr (result, ==, cases[i].expected);
    }
}

static void
test_forwarded_for_sources (void)
{
  g_autoptr(TwpHttpHeaders) headers = twp_http_headers_new ();
  g_autofree char *any = NULL;
  g_autofree char *rfc = NULL;
  g_autofree char *xff = NULL;
  g_autofree char *joined = NULL;
  g_autofree char *unusable = NULL;

  g_assert_null (twp_http_forwarded_for (NULL));
  g_assert_null (twp_http_forwarded_for (headers));

  /* Several header lines are one list; the last line is the nearest proxy. */
  twp_http_headers_append (headers, "X-Forwarded-For", "203.0.113.7");
  twp_http_headers_append (headers, "X-Forwarded-For", "198.51.100.1, 10.1.2.3");
  joined = twp_http_forwarded_for (headers);
  g_assert_cmpstr (joined, ==, "10.1.2.3");

  twp_http_headers_append (headers, "Forwarded", "for=192.0.2.60");
  any = twp_http_forwarded_for (headers);
  rfc = twp_http_forwarded_for_from (headers, TWP_HTTP_FORWARDED_RFC7239);
  xff = twp_http_forwarded_for_from (headers, TWP_HTTP_FORWARDED_X_FORWARDED_FOR);
  g_assert_cmpstr (any, ==, "192.0.2.60");
  g_assert_cmpstr (rfc, ==, "192.0.2.60");
  g_assert_cmpstr (xff, ==, "10.1.2.3");

  /* A proxy that says "unknown" is believed: no fall-back to a header the
   * client may have written itself. */
  twp_http_headers_replace (headers, "Forwarded", "for=unknown");
  unusable = twp_http_forwarded_for (headers);
  g_assert_null (unusable);
}

static void
test_forwarded_for_spoofing (void)
{
  g_autoptr(TwpHttpHeaders) headers = twp_http_headers_new ();
  g_autofree char *forwarded = NULL;
  g_autofree char *x_forwarded_for = NULL;
  g_autofree char *escaped = NULL;

  /* The client's line ends in an open quote, hoping to swallow the
   * element the proxy appends and leave its own quoted address. */
  twp_http_headers_append (headers, "Forwarded", "for=\"6.6.6.6\"\"");
  twp_http_headers_append (headers, "Forwarded", "for=192.0.2.60");
  forwarded = twp_http_forwarded_for_from (headers, TWP_HTTP_FORWARDED_RFC7239);
  g_assert_cmpstr (forwarded, !=, "6.6.6.6");
  g_assert_null (forwarded);

  twp_http_headers_append (headers, "X-Forwarded-For", "\"6.6.6.6");
  twp_http_headers_append (headers, "X-Forwarded-For", "192.0.2.60");
  x_forwarded_for = twp_http_forwarded_for_from (headers, TWP_HTTP_FORWARDED_X_FORWARDED_FOR);
  g_assert_null (x_forwarded_for);

  /* An escaped quote inside a quoted-string does not close it. */
  twp_http_headers_replace (headers, "Forwarded", "for=\"x\\\"\", for=\"[2001:db8::5]:80\"");
  escaped = twp_http_forwarded_for_from (headers, TWP_HTTP_FORWARDED_RFC7239);
  g_assert_cmpstr (escaped, ==, "2001:db8::5");
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/http/read-head/leftover", test_read_head_leftover);
  g_test_add_func ("/http/read-head/many-reads", test_read_head_many_reads);
  g_test_add_func ("/http/read-head/truncated", test_read_head_truncated);
  g_test_add_func ("/http/read-head/too-large", test_read_head_too_large);
  g_test_add_func ("/http/read-head/finder-error", test_read_head_finder_error);
  g_test_add_func ("/http/read-head/cancelled", test_read_head_cancelled);
  g_test_add_func ("/http/read-head/pieces", test_read_head_pieces);
  g_test_add_func ("/http/response/error", test_response_error);
  g_test_add_func ("/http/response/ok", test_response_ok_page);
  g_test_add_func ("/http/forwarded-for/forms", test_forwarded_for);
  g_test_add_func ("/http/forwarded-for/sources", test_forwarded_for_sources);
  g_test_add_func ("/http/forwarded-for/spoofing", test_forwarded_for_spoofing);

  return g_test_run ();
}
