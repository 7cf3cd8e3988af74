/* SPDX-License-Identifier: BSD-3-Clause */
/* static-dir=: the file and its headers for GET and HEAD, and for anything
 * that is not a small regular file inside the directory (missing,
 * unreadable, a directory, a FIFO, too large, "..") the 404 every other
 * request without static-dir= gets. */
#define G_LOG_DOMAIN "twp-test-static-files"

#include "config.h"

#include "twp-static-files.h"
#include "twp-http.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

/* Generous: the machine running the tests may be loaded. */
#define WAIT_MS 20000

/* Keeps the GAsyncResult: the test finishes the answer itself. */
static void
keep_result_cb (GObject      *source,
                GAsyncResult *async_result,
                gpointer      user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (async_result);
}

/* The answer to @method @target from @dir; NULL when cancelled. */
static char *
respond (const char    *dir,
         const char    *method,
         const char    *target,
         GCancellable  *cancellable,
         gsize         *length,
         GError       **error)
{
  g_autoptr(GAsyncResult) async_result = NULL;
  gint64 deadline = g_get_monotonic_time () + (gint64) WAIT_MS * 1000;
  char *response;

  twp_static_files_respond_async (dir, method, target, cancellable, keep_result_cb, &async_result);
  while (async_result == NULL)
    {
      if (g_get_monotonic_time () > deadline)
        g_error ("no answer for %s within %d ms", target, WAIT_MS);
      if (!g_main_context_iteration (NULL, FALSE))
        g_usleep (1000);
    }
  response = twp_static_files_respond_finish (async_result, length, error);
  g_assert_true (response != NULL || (error != NULL && *error != NULL));
  return response;
}

/* A response without its Date line (the only part that changes). */
static char *
without_date (const char *response,
              gsize       length)
{
  g_auto(GStrv) lines = g_strsplit (response, "\r\n", -1);
  g_autoptr(GString) out = g_string_new (NULL);

  g_assert_cmpuint (strlen (response), ==, length);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      if (g_str_has_prefix (lines[i], "Date: "))
        continue;
      g_string_append (out, lines[i]);
      if (lines[i + 1] != NULL)
        g_string_append (out, "\r\n");
    }
  return g_string_free (g_steal_pointer (&out), FALSE);
}

/* @response is exactly twp_http_response_error (@status), but for the date. */
static void
assert_error_response (const char *response,
                       gsize       length,
                       guint       status)
{
  g_autofree char *expected = twp_http_response_error (status);
  g_autofree char *got = without_date (response, length);
  g_autofree char *want = without_date (expected, strlen (expected));

  g_assert_cmpstr (got, ==, want);
}

static char *
make_site (void)
{
  g_autoptr(GError) error = NULL;
  char *site = g_dir_make_tmp ("twp-static-XXXXXX", &error);
  g_autofree char *index = g_build_filename (site, "index.html", NULL);
  g_autofree char *text = g_build_filename (site, "notes.txt", NULL);
  g_autofree char *sub = g_build_filename (site, "dir.html", NULL);

  g_assert_no_error (error);
  g_assert_true (g_file_set_contents (index, "<h1>garden</h1>\n", -1, &error));
  g_assert_true (g_file_set_contents (text, "some notes\n", -1, &error));
  g_assert_no_error (error);
  g_assert_cmpint (g_mkdir (sub, 0700), ==, 0);
  return site;
}

static void
remove_site (const char *site)
{
  g_autoptr(GDir) dir = g_dir_open (site, 0, NULL);
  const char *name;

  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename (site, name, NULL);

      g_assert_cmpint (g_file_test (path, G_FILE_TEST_IS_DIR) ? g_rmdir (path) : g_unlink (path), ==, 0);
    }
  g_assert_cmpint (g_rmdir (site), ==, 0);
}

static void
test_serves_files (void)
{
  g_autofree char *site = make_site ();
  g_autoptr(GError) error = NULL;
  g_autofree char *index = NULL;
  g_autofree char *head = NULL;
  g_autofree char *text = NULL;
  gsize length;

  index = respond (site, "GET", "/", NULL, &length, &error);
  g_assert_no_error (error);
  g_assert_true (g_str_has_prefix (index, "HTTP/1.1 200 OK\r\n"));
  g_assert_nonnull (strstr (index, "\r\nContent-Type: text/html; charset=utf-8\r\n"));
  g_assert_nonnull (strstr (index, "\r\nContent-Length: 16\r\n"));
  g_assert_nonnull (strstr (index, "\r\nServer: nginx\r\n"));
  g_assert_true (g_str_has_suffix (index, "\r\n\r\n<h1>garden</h1>\n"));
  g_assert_cmpuint (length, ==, strlen (index));

  /* HEAD: the same headers, no body. */
  head = respond (site, "HEAD", "/index.html", NULL, &length, &error);
  g_assert_no_error (error);
  g_assert_nonnull (strstr (head, "\r\nContent-Length: 16\r\n"));
  g_assert_true (g_str_has_suffix (head, "\r\n\r\n"));
  g_assert_cmpuint (length, ==, strlen (head));

  /* The query is not part of the file name; escapes are. */
  text = respond (site, "GET", "/n%6Ftes.txt?v=2", NULL, &length, &error);
  g_assert_no_error (error);
  g_assert_nonnull (strstr (text, "\r\nContent-Type: text/plain; charset=utf-8\r\n"));
  g_assert_true (g_str_has_suffix (text, "\r\n\r\nsome notes\n"));

  remove_site (site);
}

/* Everything that is not a small regular file in the site: the 404 a
 * request gets without static-dir=, byte for byte but the date. */
static void
test_not_found (void)
{
  g_autofree char *site = make_site ();
  g_autofree char *fifo = g_build_filename (site, "fifo.html", NULL);
  g_autofree char *big = g_build_filename (site, "big.png", NULL);
  g_autofree char *secret = g_build_filename (site, "secret.txt", NULL);
  g_autofree char *dangling = g_build_filename (site, "gone.html", NULL);
  g_autofree char *large = g_malloc0 (TWP_STATIC_FILES_MAX_SIZE + 1);
  g_autoptr(GError) error = NULL;
  const char *targets[] = {
    "/missing.html",
    "/dir.html",              /* a directory */
    "/dir.html/",             /* its missing index.html */
    "/fifo.html",             /* would block an open () */
    "/big.png",               /* over the size bound */
    "/gone.html",             /* a dangling symbolic link */
    "/../index.html",
    "/%2e%2e/index.html",
    "notes.txt",              /* not an origin-form target */
  };

  g_assert_cmpint (mkfifo (fifo, 0600), ==, 0);
  g_assert_true (g_file_set_contents (big, large, TWP_STATIC_FILES_MAX_SIZE + 1, &error));
  g_assert_no_error (error);
  g_assert_cmpint (symlink ("/nonexistent/twp", dangling), ==, 0);

  for (guint i = 0; i < G_N_ELEMENTS (targets); i++)
    {
      g_autofree char *response = NULL;
      gsize length;

      g_test_message ("%s", targets[i]);
      response = respond (site, "GET", targets[i], NULL, &length, &error);
      g_assert_no_error (error);
      assert_error_response (response, length, 404);
    }

  /* A file the server may not read. (root reads it anyway: the check
   * then shows that the mode alone changes nothing.) */
  g_assert_true (g_file_set_contents (secret, "secret\n", -1, &error));
  g_assert_no_error (error);
  g_assert_cmpint (g_chmod (secret, 0), ==, 0);
  {
    g_autofree char *response = NULL;
    gsize length;

    response = respond (site, "GET", "/secret.txt", NULL, &length, &error);
    g_assert_no_error (error);
    if (geteuid () != 0)
      assert_error_response (response, length, 404);
    else
      g_assert_true (g_str_has_suffix (response, "\r\n\r\nsecret\n"));
  }

  /* Exactly the bound is still served. */
  g_assert_true (g_file_set_contents (big, large, TWP_STATIC_FILES_MAX_SIZE, &error));
  g_assert_no_error (error);
  {
    g_autofree char *response = NULL;
    gsize length;

    response = respond (site, "HEAD", "/big.png", NULL, &length, &error);
    g_assert_no_error (error);
    g_assert_true (g_str_has_prefix (response, "HTTP/1.1 200 OK\r\n"));
    g_assert_nonnull (strstr (response, "\r\nContent-Type: image/png\r\n"));
  }

  remove_site (site);
}

/* A target that does not unescape to a path (an escaped "/" or NUL). */
static void
test_bad_target (void)
{
  g_autofree char *site = make_site ();
  const char *targets[] = { "/a%2Fb.html", "/%00.html" };

  for (guint i = 0; i < G_N_ELEMENTS (targets); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *response = NULL;
      gsize length;

      response = respond (site, "GET", targets[i], NULL, &length, &error);
      g_assert_no_error (error);
      assert_error_response (response, length, 400);
    }
  remove_site (site);
}

/* Cancelled (deadline, shutdown): no answer at all. */
static void
test_cancelled (void)
{
  g_autofree char *site = make_site ();
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *response = NULL;
  gsize length = 1;

  g_cancellable_cancel (cancellable);
  response = respond (site, "GET", "/", cancellable, &length, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_null (response);
  g_assert_cmpuint (length, ==, 0);
  remove_site (site);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/static-files/serves", test_serves_files);
  g_test_add_func ("/static-files/not-found", test_not_found);
  g_test_add_func ("/static-files/bad-target", test_bad_target);
  g_test_add_func ("/static-files/cancelled", test_cancelled);

  return g_test_run ();
}
