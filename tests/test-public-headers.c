/* SPDX-License-Identifier: BSD-3-Clause */
/* Header hygiene: the core's public headers need only GLib and GIO. This
 * file is built with no other dependency (no libsoup, no GnuTLS) together
 * with one that includes every public header (tests/gen-public-headers.py),
 * so a public header that pulls in anything else breaks the build. At run
 * time it checks that the generated list is the directory's. */
#define G_LOG_DOMAIN "twp-test-public-headers"

#include "config.h"

#include <string.h>

#include <gio/gio.h>

extern const char *public_headers[];

static gboolean
listed (const char *name)
{
  for (guint i = 0; public_headers[i] != NULL; i++)
    if (strcmp (public_headers[i], name) == 0)
      return TRUE;
  return FALSE;
}

static void
test_every_header_listed (void)
{
  g_autofree char *dir = g_test_build_filename (G_TEST_DIST, "..", "src", "transport", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(GDir) listing = g_dir_open (dir, 0, &error);
  const char *name;
  guint n_public = 0;
  guint n_listed = 0;

  g_assert_no_error (error);
  while ((name = g_dir_read_name (listing)) != NULL)
    {
      if (!g_str_has_prefix (name, "twp-") || !g_str_has_suffix (name, ".h") ||
          g_str_has_suffix (name, "-private.h"))
        continue;
      n_public++;
      if (!listed (name))
        g_error ("%s is not among the headers compiled with GLib/GIO only", name);
    }
  for (guint i = 0; public_headers[i] != NULL; i++)
    n_listed++;
  /* The core has a dozen public headers or more; the private ones are not
   * among them. */
  g_assert_cmpuint (n_public, >=, 12);
  g_assert_cmpuint (n_listed, ==, n_public);
  g_assert_false (listed ("twp-http-private.h"));
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/public-headers/glib-gio-only", test_every_header_listed);
  return g_test_run ();
}
