/* SPDX-License-Identifier: BSD-3-Clause */
/* twp_http_read_head_async (): the one reader of HTTP heads (the client's
 * upgrade response, the server's request, the metrics scrape), fed from
 * memory and from a socket pair that delivers the head in pieces. */
#define G_LOG_DOMAIN "twp-test-http"

#include "config.h"

#include "twp-http.h"

#include <string.h>

#include <glib-unix.h>
#include <gio/gunixinputstream.h>
#include <gio/gunixoutputstream.h>

/* Generous: the machine running the tests may be loaded. */
#define WAIT_MS 20000

typedef struct {
  gboolean done;
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

static void
read_head_cb (GObject      *source,
              GAsyncResult *async_result,
              gpointer      user_data)
{
  Result *result = user_data;

  result->bytes = twp_http_read_head_finish (G_INPUT_STREAM (source), async_result,
                                             &result->head_len, &result->error);
  result->done = TRUE;
}

static void
wait_done (Result *result)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) WAIT_MS * 1000;

  while (!result->done)
    {
      if (g_get_monotonic_time () > deadline)
        g_error ("the head reader did not finish within %d ms", WAIT_MS);
      g_main_context_iteration (NULL, FALSE);
      if (!result->done)
        g_usleep (1000);
    }
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

  memset (result, 0, sizeof *result);
  twp_http_read_head_async (stream, find_end, max_size, NULL, read_head_cb, result);
  wait_done (result);
  g_assert_true ((result->bytes == NULL) == (result->error != NULL));
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
  Result result = { 0 };

  g_cancellable_cancel (cancellable);
  twp_http_read_head_async (stream, NULL, TWP_HTTP_MAX_HEAD_SIZE, cancellable, read_head_cb, &result);
  wait_done (&result);
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
  Result result = { 0 };
  int fds[2];
  gsize sent = 0;

  g_assert_true (g_unix_open_pipe (fds, FD_CLOEXEC, &error));
  g_assert_no_error (error);
  in = g_unix_input_stream_new (fds[0], TRUE);
  out = g_unix_output_stream_new (fds[1], TRUE);

  twp_http_read_head_async (in, NULL, TWP_HTTP_MAX_HEAD_SIZE, NULL, read_head_cb, &result);
  while (sent < sizeof input - 1)
    {
      gsize n = MIN (7, sizeof input - 1 - sent);

      g_assert_false (result.done);
      g_assert_true (g_output_stream_write_all (out, input + sent, n, NULL, NULL, &error));
      g_assert_no_error (error);
      sent += n;
      /* Let the reader take the piece (and answer, once the end came). */
      for (guint i = 0; i < 10 && !result.done; i++)
        g_main_context_iteration (NULL, FALSE);
      if (result.done)
        break;
    }
  wait_done (&result);
  g_assert_no_error (result.error);
  g_assert_cmpuint (result.head_len, ==, strlen (input) - strlen ("frame"));
  g_assert_cmpuint (g_bytes_get_size (result.bytes), >=, result.head_len);
  g_assert_cmpmem (g_bytes_get_data (result.bytes, NULL), g_bytes_get_size (result.bytes),
                   input, g_bytes_get_size (result.bytes));
  result_clear (&result);
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

  return g_test_run ();
}
