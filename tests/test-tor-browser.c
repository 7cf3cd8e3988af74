/* SPDX-License-Identifier: BSD-3-Clause */
/* Tor Browser beside us (src/applet/twp-tor-browser.c): finding the
 * installations, the torrc edit and its undo, the lock check and the
 * bridge line check, on fake Tor Browser folders laid out as the real
 * ones. tests/tor/ runs the result with real tor. */
#include "config.h"

#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "twp-tor-browser.h"

#define BINARY TWP_LIBEXECDIR "/tor-websocket-proxy"

/* A Tor Browser folder under @parent: Browser/TorBrowser/Data/Tor with
 * torrc-defaults and, when @torrc is not NULL, a torrc. */
static char *
make_tor_browser (const char *parent,
                  const char *torrc)
{
  g_autofree char *tor_dir = g_build_filename (parent, "tor-browser", "Browser", "TorBrowser", "Data", "Tor", NULL);
  g_autofree char *defaults = g_build_filename (tor_dir, "torrc-defaults", NULL);
  g_autoptr(GError) error = NULL;

  g_assert_cmpint (g_mkdir_with_parents (tor_dir, 0700), ==, 0);
  g_file_set_contents (defaults, "ClientTransportPlugin meek_lite,obfs4 exec ./lyrebird\n", -1, &error);
  g_assert_no_error (error);
  if (torrc != NULL)
    {
      g_autofree char *path = g_build_filename (tor_dir, "torrc", NULL);

      g_file_set_contents (path, torrc, -1, &error);
      g_assert_no_error (error);
    }
  return g_build_filename (parent, "tor-browser", NULL);
}

static char *
read_file (const char *path)
{
  g_autoptr(GError) error = NULL;
  char *text = NULL;

  g_file_get_contents (path, &text, NULL, &error);
  g_assert_no_error (error);
  return text;
}

static void
rm_rf (const char *path)
{
  g_autofree char *quoted = g_shell_quote (path);
  g_autofree char *command = g_strdup_printf ("rm -rf %s", quoted);

  g_assert_true (g_spawn_command_line_sync (command, NULL, NULL, NULL, NULL));
}

static void
test_snippets (void)
{
  g_autofree char *plugin = twp_torrc_client_plugin_line ();
  g_autofree char *example = twp_torrc_client_example ();
  g_autofree char *tb = twp_torrc_tor_browser_line ();
  g_autofree char *apparmor = twp_tor_browser_apparmor_line ();

  /* The regression: without --client --managed the transport refuses to run. */
  g_assert_cmpstr (plugin, ==, "ClientTransportPlugin websocket exec " BINARY " --client --managed");
  g_assert_nonnull (strstr (example, plugin));
  g_assert_true (g_str_has_prefix (example, "UseBridges 1\n"));
  g_assert_nonnull (strstr (example, "\nBridge websocket "));
  g_assert_cmpstr (tb, ==, "+" "ClientTransportPlugin websocket exec " BINARY " --client --managed");
  g_assert_cmpstr (apparmor, ==, BINARY " Px,");
}

static void
test_find (void)
{
  g_autofree char *home = g_dir_make_tmp ("twp-tb-home-XXXXXX", NULL);
  g_autofree char *native = g_build_filename (home, ".local", "share", "torbrowser", "tbb", "x86_64", NULL);
  g_autofree char *flatpak = g_build_filename (home, ".var", "app", TWP_TOR_BROWSER_FLATPAK_ID, "data",
                                               "torbrowser", "tbb", "x86_64", NULL);
  g_autofree char *xdg = g_build_filename (home, "xdg", NULL);
  g_autofree char *xdg_tbb = g_build_filename (xdg, "torbrowser", "tbb", "i686", NULL);
  g_autofree char *root1 = NULL;
  g_autofree char *root2 = NULL;
  g_autofree char *root3 = NULL;
  g_autoptr(GPtrArray) found = NULL;
  TwpTorBrowser *tb;

  found = twp_tor_browser_find (home, NULL);
  g_assert_cmpuint (found->len, ==, 0);
  g_clear_pointer (&found, g_ptr_array_unref);

  root1 = make_tor_browser (native, NULL);
  root2 = make_tor_browser (flatpak, "");
  found = twp_tor_browser_find (home, NULL);
  g_assert_cmpuint (found->len, ==, 2);
  tb = g_ptr_array_index (found, 0);
  g_assert_cmpint (tb->kind, ==, TWP_TOR_BROWSER_LAUNCHER);
  g_assert_cmpstr (tb->root, ==, root1);
  g_assert_true (g_str_has_suffix (tb->torrc, "/tor-browser/Browser/TorBrowser/Data/Tor/torrc"));
  tb = g_ptr_array_index (found, 1);
  g_assert_cmpint (tb->kind, ==, TWP_TOR_BROWSER_FLATPAK);
  g_assert_cmpstr (tb->root, ==, root2);
  g_clear_pointer (&found, g_ptr_array_unref);

  /* $XDG_DATA_HOME moves torbrowser-launcher's folder. */
  root3 = make_tor_browser (xdg_tbb, NULL);
  found = twp_tor_browser_find (home, xdg);
  g_assert_cmpuint (found->len, ==, 2);
  g_assert_cmpstr (((TwpTorBrowser *) g_ptr_array_index (found, 0))->root, ==, root3);
  rm_rf (home);
}

static void
test_folder (void)
{
  g_autofree char *dir = g_dir_make_tmp ("twp-tb-folder-XXXXXX", NULL);
  g_autofree char *root = make_tor_browser (dir, NULL);
  g_autoptr(TwpTorBrowser) tb = NULL;
  g_autoptr(TwpTorBrowser) tb2 = NULL;
  g_autoptr(GError) error = NULL;

  tb = twp_tor_browser_new_for_folder (root, TWP_TOR_BROWSER_FOLDER, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (tb->root, ==, root);
  /* The folder the tarball was extracted into works too. */
  tb2 = twp_tor_browser_new_for_folder (dir, TWP_TOR_BROWSER_FOLDER, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (tb2->root, ==, root);
  g_assert_null (twp_tor_browser_new_for_folder ("/proc", TWP_TOR_BROWSER_FOLDER, &error));
  g_assert_error (error, TWP_TOR_BROWSER_ERROR, TWP_TOR_BROWSER_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, "tor-browser"));
  rm_rf (dir);
}

static void
test_set_up_and_undo (void)
{
  const char *original = "# Tor Browser's torrc\n"
                         "UseBridges 1\n"
                         "Bridge obfs4 192.0.2.9:80 0123456789ABCDEF0123456789ABCDEF01234567 cert=x iat-mode=0\n"
                         "ClientTransportPlugin obfs4 exec ./lyrebird\n"
                         "DataDirectory /somewhere\n";
  g_autofree char *dir = g_dir_make_tmp ("twp-tb-edit-XXXXXX", NULL);
  g_autofree char *root = make_tor_browser (dir, original);
  g_autoptr(TwpTorBrowser) tb = twp_tor_browser_new_for_folder (root, TWP_TOR_BROWSER_FOLDER, NULL);
  g_autofree char *after = NULL;
  g_autofree char *again = NULL;
  g_autofree char *undone = NULL;
  g_autofree char *backup = NULL;
  g_autofree char *line = twp_torrc_tor_browser_line ();
  g_autofree char *line_nl = g_strconcat (line, "\n", NULL);
  g_autoptr(GError) error = NULL;
  GStatBuf st;

  g_assert_cmpint (g_chmod (tb->torrc, 0600), ==, 0);
  g_assert_false (twp_tor_browser_is_set_up (tb));
  g_assert_true (twp_tor_browser_set_up (tb, &error));
  g_assert_no_error (error);
  g_assert_true (twp_tor_browser_is_set_up (tb));
  after = read_file (tb->torrc);
  /* Every line kept, in order, ours added at the end. */
  g_assert_true (g_str_has_prefix (after, original));
  g_assert_true (g_str_has_suffix (after, line_nl));
  g_assert_cmpint (g_stat (tb->torrc, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0600);
  backup = read_file (tb->backup);
  g_assert_cmpstr (backup, ==, original);

  /* Twice: nothing changes. */
  g_assert_true (twp_tor_browser_set_up (tb, &error));
  g_assert_no_error (error);
  again = read_file (tb->torrc);
  g_assert_cmpstr (again, ==, after);

  g_assert_true (twp_tor_browser_undo (tb, &error));
  g_assert_no_error (error);
  g_assert_false (twp_tor_browser_is_set_up (tb));
  undone = read_file (tb->torrc);
  g_assert_cmpstr (undone, ==, original);
  rm_rf (dir);
}

static void
test_replace_and_saveconf (void)
{
  /* The old wrong hint (no --client --managed) is replaced; after tor's
   * SAVECONF our line has lost its '+' and the comment: undo still finds it. */
  g_autofree char *dir = g_dir_make_tmp ("twp-tb-edit-XXXXXX", NULL);
  g_autofree char *root = make_tor_browser (dir, "ClientTransportPlugin websocket exec " BINARY "\n"
                                                 "SocksPort 9150\n");
  g_autoptr(TwpTorBrowser) tb = twp_tor_browser_new_for_folder (root, TWP_TOR_BROWSER_FOLDER, NULL);
  g_autofree char *plugin = twp_torrc_client_plugin_line ();
  g_autofree char *saved = g_strdup_printf ("SocksPort 9150\nClientTransportPlugin meek_lite,obfs4 exec ./lyrebird\n%s\n",
                                            plugin);
  g_autofree char *text = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_false (twp_tor_browser_is_set_up (tb));
  g_assert_true (twp_tor_browser_set_up (tb, &error));
  g_assert_no_error (error);
  text = read_file (tb->torrc);
  g_assert_true (g_str_has_prefix (text, "SocksPort 9150\n#"));
  g_assert_null (strstr (text, BINARY "\n"));

  g_file_set_contents (tb->torrc, saved, -1, &error);
  g_assert_no_error (error);
  g_assert_true (twp_tor_browser_is_set_up (tb));
  g_assert_true (twp_tor_browser_undo (tb, &error));
  g_assert_no_error (error);
  g_clear_pointer (&text, g_free);
  text = read_file (tb->torrc);
  g_assert_cmpstr (text, ==, "SocksPort 9150\nClientTransportPlugin meek_lite,obfs4 exec ./lyrebird\n");
  rm_rf (dir);
}

static void
test_no_torrc_yet (void)
{
  g_autofree char *dir = g_dir_make_tmp ("twp-tb-edit-XXXXXX", NULL);
  g_autofree char *root = make_tor_browser (dir, NULL);
  g_autoptr(TwpTorBrowser) tb = twp_tor_browser_new_for_folder (root, TWP_TOR_BROWSER_FOLDER, NULL);
  g_autofree char *line = twp_torrc_tor_browser_line ();
  g_autofree char *text = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_true (twp_tor_browser_set_up (tb, &error));
  g_assert_no_error (error);
  text = read_file (tb->torrc);
  g_assert_nonnull (strstr (text, line));
  g_assert_false (g_file_test (tb->backup, G_FILE_TEST_EXISTS));
  rm_rf (dir);
}

static void
test_refusals (void)
{
  g_autofree char *dir = g_dir_make_tmp ("twp-tb-lock-XXXXXX", NULL);
  g_autofree char *root = make_tor_browser (dir, "SocksPort 9150\n");
  g_autoptr(TwpTorBrowser) tb = twp_tor_browser_new_for_folder (root, TWP_TOR_BROWSER_FOLDER, NULL);
  g_autoptr(TwpTorBrowser) sandboxed = twp_tor_browser_new_for_folder (root, TWP_TOR_BROWSER_FLATPAK, NULL);
  g_autofree char *lock = g_build_filename (tb->tor_dir, "lock", NULL);
  g_autofree char *text = NULL;
  g_autoptr(GError) error = NULL;
  int fd;

  /* A lock file left by a tor that exited is no lock. */
  fd = g_open (lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  g_assert_cmpint (fd, >=, 0);
  g_assert_false (twp_tor_browser_is_running (tb));
  /* Held as tor holds it: flock() on its own open file. */
  g_assert_cmpint (flock (fd, LOCK_EX | LOCK_NB), ==, 0);
  g_assert_true (twp_tor_browser_is_running (tb));
  g_assert_false (twp_tor_browser_set_up (tb, &error));
  g_assert_error (error, TWP_TOR_BROWSER_ERROR, TWP_TOR_BROWSER_ERROR_RUNNING);
  g_assert_nonnull (strstr (error->message, "Close Tor Browser"));
  g_clear_error (&error);
  g_assert_false (twp_tor_browser_undo (tb, &error));
  g_assert_error (error, TWP_TOR_BROWSER_ERROR, TWP_TOR_BROWSER_ERROR_RUNNING);
  g_clear_error (&error);
  text = read_file (tb->torrc);
  g_assert_cmpstr (text, ==, "SocksPort 9150\n");
  g_assert_false (g_file_test (tb->backup, G_FILE_TEST_EXISTS));
  close (fd);
  g_assert_false (twp_tor_browser_is_running (tb));

  g_assert_false (twp_tor_browser_set_up (sandboxed, &error));
  g_assert_error (error, TWP_TOR_BROWSER_ERROR, TWP_TOR_BROWSER_ERROR_SANDBOXED);
  g_assert_nonnull (strstr (error->message, "Flatpak"));
  rm_rf (dir);
}

static void
test_confined (void)
{
  g_autofree char *dir = g_dir_make_tmp ("twp-tb-aa-XXXXXX", NULL);
  g_autofree char *root = make_tor_browser (dir, NULL);
  g_autofree char *profile = g_build_filename (dir, TWP_TOR_BROWSER_APPARMOR_PROFILE, NULL);
  g_autoptr(TwpTorBrowser) launcher = twp_tor_browser_new_for_folder (root, TWP_TOR_BROWSER_LAUNCHER, NULL);
  g_autoptr(TwpTorBrowser) folder = twp_tor_browser_new_for_folder (root, TWP_TOR_BROWSER_FOLDER, NULL);

  g_assert_false (twp_tor_browser_is_confined (launcher, dir));
  g_assert_true (g_file_set_contents (profile, "# profile\n", -1, NULL));
  g_assert_true (twp_tor_browser_is_confined (launcher, dir));
  /* The profile attaches to torbrowser-launcher's path only. */
  g_assert_false (twp_tor_browser_is_confined (folder, dir));
  rm_rf (dir);
}

static void
test_bridge_line_good (void)
{
  static const struct {
    const char *in;
    const char *out;
  } cases[] = {
    { "websocket 192.0.2.3:443 url=wss://bridge.example.net/path",
      "websocket 192.0.2.3:443 url=wss://bridge.example.net/path" },
    { "  Bridge   websocket\t192.0.2.3:443  0123456789abcdef0123456789ABCDEF01234567 url=ws://b.example/ mode=base64 \n",
      "websocket 192.0.2.3:443 0123456789abcdef0123456789ABCDEF01234567 url=ws://b.example/ mode=base64" },
    { "bridge websocket [2001:db8::1]:80", "websocket [2001:db8::1]:80" },
    { "websocket 192.0.2.3:443 url=wss://b.example/ sni=front.example cert-sha256="
      "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89 "
      "origin=https://b.example host=b.example",
      NULL },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *out = twp_bridge_line_check (cases[i].in, &error);

      g_assert_no_error (error);
      g_assert_cmpstr (out, ==, cases[i].out != NULL ? cases[i].out : cases[i].in);
    }
}

static void
test_bridge_line_bad (void)
{
  static const struct {
    const char *in;
    const char *says;
  } cases[] = {
    { "", "empty" },
    { "Bridge", "empty" },
    { "obfs4 192.0.2.3:443 cert=abc iat-mode=0", "“obfs4” transport" },
    { "WebSocket 192.0.2.3:443", "“WebSocket” transport" },
    { "websocket", "no address" },
    { "websocket 192.0.2.3", "has no port" },
    { "websocket bridge.example.net:443", "not an IP address" },
    { "websocket 2001:db8::1:443", "not an IP address" },
    { "websocket [2001:db8::1]443", "not an address with a port" },
    { "websocket 192.0.2.3:0", "not a port number" },
    { "websocket 192.0.2.3:65536", "not a port number" },
    { "websocket 192.0.2.3:https", "not a port number" },
    { "websocket 192.0.2.3:443 0123", "neither a fingerprint" },
    { "websocket 192.0.2.3:443 url=wss://b.example/ stray", "not a key=value" },
    { "websocket 192.0.2.3:443 =x", "not a key=value" },
    { "websocket 192.0.2.3:443 ur=wss://b.example/", "unknown bridge argument \"ur\"" },
    { "websocket 192.0.2.3:443 url=wss://a.example/ url=wss://b.example/", "more than once" },
    { "websocket 192.0.2.3:443 url=https://b.example/", "url=" },
    { "websocket 192.0.2.3:443 url=ws://b.example/ mode=text", "mode= must be binary or base64" },
    { "websocket 192.0.2.3:443 url=ws://b.example/ sni=x.example", "sni= needs a wss:// url" },
    { "websocket 192.0.2.3:443 url=wss://b.example/ cert-sha256=12", "cert-sha256" },
    { "websocket 192.0.2.3:443 url=\xff", "not text" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *out = twp_bridge_line_check (cases[i].in, &error);

      g_assert_null (out);
      g_assert_error (error, TWP_TOR_BROWSER_ERROR, TWP_TOR_BROWSER_ERROR_BRIDGE_LINE);
      if (strstr (error->message, cases[i].says) == NULL)
        g_error ("%s: \"%s\" does not say \"%s\"", cases[i].in, error->message, cases[i].says);
    }
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/tor-browser/snippets", test_snippets);
  g_test_add_func ("/tor-browser/find", test_find);
  g_test_add_func ("/tor-browser/folder", test_folder);
  g_test_add_func ("/tor-browser/set-up-and-undo", test_set_up_and_undo);
  g_test_add_func ("/tor-browser/replace-and-saveconf", test_replace_and_saveconf);
  g_test_add_func ("/tor-browser/no-torrc-yet", test_no_torrc_yet);
  g_test_add_func ("/tor-browser/refusals", test_refusals);
  g_test_add_func ("/tor-browser/confined", test_confined);
  g_test_add_func ("/tor-browser/bridge-line-good", test_bridge_line_good);
  g_test_add_func ("/tor-browser/bridge-line-bad", test_bridge_line_bad);
  return g_test_run ();
}
