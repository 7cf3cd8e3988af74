/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-applet"

#include "config.h"

#include "twp-tor-browser.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "twp-args.h"
#include "twp-bridge-config.h"

#define BINARY TWP_LIBEXECDIR "/tor-websocket-proxy"
/* Marks the lines we add, so that undo finds them even after a comment
 * was lost (tor's SAVECONF rewrites the file without comments). */
#define MARK "# Added by tor-websocket-status (Use with Tor Browser); Undo there takes it out."
#define TOR_DIR_IN_ROOT "Browser", "TorBrowser", "Data", "Tor"

G_DEFINE_QUARK (twp-tor-browser-error-quark, twp_tor_browser_error)

char *
twp_torrc_client_plugin_line (void)
{
  return g_strdup ("ClientTransportPlugin websocket exec " BINARY " --client --managed");
}

char *
twp_torrc_client_example (void)
{
  /* torrc syntax is not translated. */
  return g_strdup ("UseBridges 1\n"
                   "ClientTransportPlugin websocket exec " BINARY " --client --managed\n"
                   "Bridge websocket 192.0.2.3:443 url=wss://bridge.example.net/path");
}

char *
twp_torrc_tor_browser_line (void)
{
  return g_strdup ("+ClientTransportPlugin websocket exec " BINARY " --client --managed");
}

char *
twp_tor_browser_apparmor_line (void)
{
  /* Px: run us under our own profile (tor-websocket-proxy), which allows
   * the session bus; inheriting the caller's profile would not. */
  return g_strdup (BINARY " Px,");
}

char *
twp_tor_browser_apparmor_commands (void)
{
  /* Shell, not translated. Our profile itself comes with the package. */
  return g_strdup ("echo '" BINARY " Px,' | sudo tee -a /etc/apparmor.d/local/" TWP_TOR_BROWSER_APPARMOR_PROFILE "\n"
                   "sudo apparmor_parser -r /etc/apparmor.d/" TWP_TOR_BROWSER_APPARMOR_PROFILE);
}

void
twp_tor_browser_free (TwpTorBrowser *self)
{
  if (self == NULL)
    return;
  g_free (self->root);
  g_free (self->tor_dir);
  g_free (self->torrc);
  g_free (self->backup);
  g_free (self);
}

static TwpTorBrowser *
tor_browser_at (const char        *root,
                TwpTorBrowserKind  kind)
{
  g_autofree char *tor_dir = g_build_filename (root, TOR_DIR_IN_ROOT, NULL);
  g_autofree char *defaults = g_build_filename (tor_dir, "torrc-defaults", NULL);
  g_autofree char *torrc = g_build_filename (tor_dir, "torrc", NULL);
  TwpTorBrowser *self;

  /* torrc-defaults ships in every Tor Browser; torrc appears on first run. */
  if (!g_file_test (defaults, G_FILE_TEST_IS_REGULAR) && !g_file_test (torrc, G_FILE_TEST_IS_REGULAR))
    return NULL;
  self = g_new0 (TwpTorBrowser, 1);
  self->kind = kind;
  self->root = g_canonicalize_filename (root, NULL);
  self->tor_dir = g_steal_pointer (&tor_dir);
  self->torrc = g_steal_pointer (&torrc);
  self->backup = g_build_filename (self->tor_dir, "torrc.before-websocket", NULL);
  return self;
}

TwpTorBrowser *
twp_tor_browser_new_for_folder (const char         *folder,
                                TwpTorBrowserKind   kind,
                                GError            **error)
{
  g_autofree char *inner = NULL;
  TwpTorBrowser *self;

  g_return_val_if_fail (folder != NULL, NULL);

  self = tor_browser_at (folder, kind);
  if (self != NULL)
    return self;
  /* The tarball extracts to tor-browser/ (older: tor-browser_<lang>/);
   * people often pick the folder they extracted into. */
  inner = g_build_filename (folder, "tor-browser", NULL);
  self = tor_browser_at (inner, kind);
  if (self != NULL)
    return self;
  g_set_error (error, TWP_TOR_BROWSER_ERROR, TWP_TOR_BROWSER_ERROR_NOT_FOUND,
               _("This folder is not a Tor Browser folder: it has no Browser/TorBrowser/Data/Tor/torrc-defaults. "
                 "Choose the “tor-browser” folder that the download extracted."));
  return NULL;
}

static void
find_in_tbb (GPtrArray         *found,
             const char        *tbb,
             TwpTorBrowserKind  kind)
{
  /* torbrowser-launcher: <data>/torbrowser/tbb/<arch>/tor-browser */
  static const char *const arches[] = { "x86_64", "i686", NULL };

  for (guint i = 0; arches[i] != NULL; i++)
    {
      g_autofree char *root = g_build_filename (tbb, arches[i], "tor-browser", NULL);
      TwpTorBrowser *tb = tor_browser_at (root, kind);

      if (tb != NULL)
        g_ptr_array_add (found, tb);
    }
}

GPtrArray *
twp_tor_browser_find (const char *home,
                      const char *data_home)
{
  g_autoptr(GPtrArray) found = g_ptr_array_new_with_free_func ((GDestroyNotify) twp_tor_browser_free);
  g_autofree char *native = NULL;
  g_autofree char *flatpak = NULL;

  g_return_val_if_fail (home != NULL, NULL);

  native = data_home != NULL && g_path_is_absolute (data_home)
           ? g_build_filename (data_home, "torbrowser", "tbb", NULL)
           : g_build_filename (home, ".local", "share", "torbrowser", "tbb", NULL);
  find_in_tbb (found, native, TWP_TOR_BROWSER_LAUNCHER);
  /* Inside the Flatpak, XDG_DATA_HOME is ~/.var/app/<id>/data. */
  flatpak = g_build_filename (home, ".var", "app", TWP_TOR_BROWSER_FLATPAK_ID, "data", "torbrowser", "tbb", NULL);
  find_in_tbb (found, flatpak, TWP_TOR_BROWSER_FLATPAK);
  return g_steal_pointer (&found);
}

gboolean
twp_tor_browser_is_running (TwpTorBrowser *self)
{
  g_autofree char *path = NULL;
  struct flock query = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
  gboolean running = FALSE;
  int fd;

  g_return_val_if_fail (self != NULL, FALSE);

  path = g_build_filename (self->tor_dir, "lock", NULL);
  fd = g_open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY, 0);
  if (fd < 0)
    return FALSE;
  /* tor takes <DataDirectory>/lock with flock() while it runs (fcntl()
   * where flock() is missing): test both without keeping either. */
  if (flock (fd, LOCK_EX | LOCK_NB) < 0)
    running = errno == EWOULDBLOCK;
  else
    flock (fd, LOCK_UN);
  if (!running && fcntl (fd, F_GETLK, &query) == 0 && query.l_type != F_UNLCK)
    running = TRUE;
  close (fd);
  return running;
}

/* A ClientTransportPlugin line (with or without '+') for exactly the
 * websocket transport. */
static gboolean
is_websocket_plugin_line (const char *line)
{
  g_auto(GStrv) words = NULL;

  line += strspn (line, " \t");
  if (*line == '+')
    line++;
  if (g_ascii_strncasecmp (line, "ClientTransportPlugin", strlen ("ClientTransportPlugin")) != 0)
    return FALSE;
  words = g_strsplit_set (line, " \t", -1);
  for (guint i = 1; words[i] != NULL; i++)
    if (*words[i] != '\0')
      return g_strcmp0 (words[i], "websocket") == 0;
  return FALSE;
}

static char **
read_lines (const char  *path,
            GError     **error)
{
  g_autofree char *text = NULL;
  g_autoptr(GError) local_error = NULL;
  gsize len;

  if (!g_file_get_contents (path, &text, &len, &local_error))
    {
      if (g_error_matches (local_error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
        return g_new0 (char *, 1);
      g_propagate_error (error, g_steal_pointer (&local_error));
      return NULL;
    }
  if (len > 0 && text[len - 1] == '\n')
    text[len - 1] = '\0';
  return len == 0 ? g_new0 (char *, 1) : g_strsplit (text, "\n", -1);
}

static gboolean
write_lines (const char  *path,
             GPtrArray   *lines,
             GError     **error)
{
  g_autoptr(GString) text = g_string_new (NULL);
  GStatBuf st;
  int mode = 0600;

  for (guint i = 0; i < lines->len; i++)
    g_string_append_printf (text, "%s\n", (const char *) g_ptr_array_index (lines, i));
  /* Keep the file's mode (Tor Browser's torrc is the user's alone). */
  if (g_stat (path, &st) == 0)
    mode = st.st_mode & 07777;
  return g_file_set_contents_full (path, text->str, text->len,
                                   G_FILE_SET_CONTENTS_CONSISTENT, mode, error);
}

gboolean
twp_tor_browser_is_set_up (TwpTorBrowser *self)
{
  g_auto(GStrv) lines = NULL;
  g_autofree char *ours = twp_torrc_client_plugin_line ();

  g_return_val_if_fail (self != NULL, FALSE);

  lines = read_lines (self->torrc, NULL);
  for (guint i = 0; lines != NULL && lines[i] != NULL; i++)
    {
      const char *line = lines[i] + strspn (lines[i], " \t+");

      if (is_websocket_plugin_line (lines[i]) && g_str_has_prefix (line, ours))
        return TRUE;
    }
  return FALSE;
}

static gboolean
check_can_edit (TwpTorBrowser  *self,
                GError        **error)
{
  if (self->kind == TWP_TOR_BROWSER_FLATPAK)
    {
      g_set_error (error, TWP_TOR_BROWSER_ERROR, TWP_TOR_BROWSER_ERROR_SANDBOXED,
                   _("This Tor Browser runs in a Flatpak sandbox, where its tor cannot start a program "
                     "installed on your system. Install torbrowser-launcher from Debian "
                     "(apt install torbrowser-launcher), or extract Tor Browser from torproject.org, "
                     "and set that one up instead."));
      return FALSE;
    }
  if (twp_tor_browser_is_running (self))
    {
      g_set_error (error, TWP_TOR_BROWSER_ERROR, TWP_TOR_BROWSER_ERROR_RUNNING,
                   _("Tor Browser is running: nothing was changed. Close Tor Browser, then try again "
                     "(its tor rewrites the torrc when it exits)."));
      return FALSE;
    }
  return TRUE;
}

gboolean
twp_tor_browser_set_up (TwpTorBrowser  *self,
                        GError        **error)
{
  g_auto(GStrv) lines = NULL;
  g_autoptr(GPtrArray) kept = g_ptr_array_new ();
  g_autofree char *ours = twp_torrc_tor_browser_line ();

  g_return_val_if_fail (self != NULL, FALSE);

  if (!check_can_edit (self, error))
    return FALSE;
  if (twp_tor_browser_is_set_up (self))
    return TRUE;
  lines = read_lines (self->torrc, error);
  if (lines == NULL)
    return FALSE;
  /* The first torrc we change is the one to go back to by hand. */
  if (g_file_test (self->torrc, G_FILE_TEST_EXISTS) && !g_file_test (self->backup, G_FILE_TEST_EXISTS))
    {
      g_autofree char *text = NULL;
      gsize len;

      if (!g_file_get_contents (self->torrc, &text, &len, error) ||
          !g_file_set_contents_full (self->backup, text, len, G_FILE_SET_CONTENTS_CONSISTENT, 0600, error))
        return FALSE;
    }
  /* Another websocket line (an older, wrong one) would fight ours. */
  for (guint i = 0; lines[i] != NULL; i++)
    if (!is_websocket_plugin_line (lines[i]) && g_strcmp0 (lines[i], MARK) != 0)
      g_ptr_array_add (kept, lines[i]);
  g_ptr_array_add (kept, MARK);
  g_ptr_array_add (kept, ours);
  return write_lines (self->torrc, kept, error);
}

gboolean
twp_tor_browser_undo (TwpTorBrowser  *self,
                      GError        **error)
{
  g_auto(GStrv) lines = NULL;
  g_autoptr(GPtrArray) kept = g_ptr_array_new ();
  g_autofree char *ours = twp_torrc_client_plugin_line ();
  gboolean changed = FALSE;

  g_return_val_if_fail (self != NULL, FALSE);

  if (!check_can_edit (self, error))
    return FALSE;
  lines = read_lines (self->torrc, error);
  if (lines == NULL)
    return FALSE;
  for (guint i = 0; lines[i] != NULL; i++)
    {
      const char *line = lines[i] + strspn (lines[i], " \t+");

      /* Ours, with or without '+': tor's SAVECONF drops the '+'. */
      if (g_strcmp0 (lines[i], MARK) == 0 ||
          (is_websocket_plugin_line (lines[i]) && g_str_has_prefix (line, ours)))
        changed = TRUE;
      else
        g_ptr_array_add (kept, lines[i]);
    }
  if (!changed)
    return TRUE;
  return write_lines (self->torrc, kept, error);
}

gboolean
twp_tor_browser_is_confined (TwpTorBrowser *self,
                             const char    *apparmor_dir)
{
  g_autofree char *profile = NULL;

  g_return_val_if_fail (self != NULL, FALSE);

  /* The profile only attaches to torbrowser-launcher's own path. */
  if (self->kind != TWP_TOR_BROWSER_LAUNCHER)
    return FALSE;
  profile = g_build_filename (apparmor_dir != NULL ? apparmor_dir : "/etc/apparmor.d",
                              TWP_TOR_BROWSER_APPARMOR_PROFILE, NULL);
  return g_file_test (profile, G_FILE_TEST_IS_REGULAR);
}

/* ---- bridge lines ------------------------------------------------------ */

static gboolean G_GNUC_PRINTF (2, 3)
bridge_error (GError     **error,
              const char  *format,
              ...)
{
  g_autofree char *message = NULL;
  va_list ap;

  va_start (ap, format);
  message = g_strdup_vprintf (format, ap);
  va_end (ap);
  g_set_error_literal (error, TWP_TOR_BROWSER_ERROR, TWP_TOR_BROWSER_ERROR_BRIDGE_LINE, message);
  return FALSE;
}

/* ADDR:PORT as tor wants it on a Bridge line: an IP address (IPv6 in
 * brackets) and a port. */
static gboolean
parse_address (const char  *word,
               char       **host,
               guint16     *port,
               GError     **error)
{
  g_autofree char *addr = NULL;
  const char *colon;
  guint64 value;

  if (word[0] == '[')
    {
      const char *end = strchr (word, ']');

      if (end == NULL || end[1] != ':')
        return bridge_error (error, _("“%s” is not an address with a port, like 192.0.2.3:443 or [2001:db8::1]:443."),
                             word);
      addr = g_strndup (word + 1, end - word - 1);
      colon = end + 1;
    }
  else
    {
      colon = strrchr (word, ':');
      if (colon == NULL)
        return bridge_error (error, _("“%s” has no port: write it as 192.0.2.3:443."), word);
      addr = g_strndup (word, colon - word);
    }
  if (!g_hostname_is_ip_address (addr) || (word[0] != '[' && strchr (addr, ':') != NULL))
    return bridge_error (error, _("“%s” is not an IP address. Tor needs the bridge’s IP address here; "
                                  "a host name goes in url=."), addr);
  if (!g_ascii_string_to_unsigned (colon + 1, 10, 1, 65535, &value, NULL))
    return bridge_error (error, _("“%s” is not a port number (1 to 65535)."), colon + 1);
  *host = g_steal_pointer (&addr);
  *port = (guint16) value;
  return TRUE;
}

static gboolean
is_fingerprint (const char *word)
{
  if (strlen (word) != 40)
    return FALSE;
  for (const char *p = word; *p != '\0'; p++)
    if (!g_ascii_isxdigit (*p))
      return FALSE;
  return TRUE;
}

char *
twp_bridge_line_check (const char  *line,
                       GError     **error)
{
  g_auto(GStrv) all = NULL;
  g_autoptr(GPtrArray) words = g_ptr_array_new ();
  g_autoptr(GPtrArray) out = g_ptr_array_new ();
  g_autoptr(TwpArgs) args = twp_args_new ();
  g_autoptr(TwpBridgeConfig) config = NULL;
  g_autoptr(GError) local_error = NULL;
  g_autofree char *host = NULL;
  guint16 port = 0;
  guint i = 0;

  g_return_val_if_fail (line != NULL, NULL);

  if (!g_utf8_validate (line, -1, NULL))
    {
      bridge_error (error, _("The bridge line contains bytes that are not text."));
      return NULL;
    }
  /* tor splits torrc lines at spaces and tabs. */
  all = g_strsplit_set (line, " \t\r\n", -1);
  for (char **w = all; *w != NULL; w++)
    if (**w != '\0')
      g_ptr_array_add (words, *w);
  if (words->len > 0 && g_ascii_strcasecmp (g_ptr_array_index (words, 0), "Bridge") == 0)
    i++;
  if (i >= words->len)
    {
      bridge_error (error, _("The bridge line is empty. Paste the whole line you were given, "
                             "starting with “websocket”."));
      return NULL;
    }
  if (g_strcmp0 (g_ptr_array_index (words, i), "websocket") != 0)
    {
      bridge_error (error, _("This bridge line is for the “%s” transport, not “websocket”: "
                             "Tor Browser handles it without this app."),
                    (const char *) g_ptr_array_index (words, i));
      return NULL;
    }
  g_ptr_array_add (out, g_ptr_array_index (words, i++));
  if (i >= words->len)
    {
      bridge_error (error, _("The bridge line has no address after “websocket”."));
      return NULL;
    }
  if (!parse_address (g_ptr_array_index (words, i), &host, &port, error))
    return NULL;
  g_ptr_array_add (out, g_ptr_array_index (words, i++));
  if (i < words->len && strchr (g_ptr_array_index (words, i), '=') == NULL)
    {
      if (!is_fingerprint (g_ptr_array_index (words, i)))
        {
          bridge_error (error, _("“%s” is neither a fingerprint (40 hexadecimal digits) nor a key=value argument."),
                        (const char *) g_ptr_array_index (words, i));
          return NULL;
        }
      g_ptr_array_add (out, g_ptr_array_index (words, i++));
    }
  for (; i < words->len; i++)
    {
      const char *word = g_ptr_array_index (words, i);
      const char *eq = strchr (word, '=');
      g_autofree char *key = NULL;

      if (eq == NULL || eq == word)
        {
          bridge_error (error, _("“%s” is not a key=value argument."), word);
          return NULL;
        }
      key = g_strndup (word, eq - word);
      twp_args_add (args, key, eq + 1);
      g_ptr_array_add (out, (char *) word);
    }
  /* The same check the transport makes when tor hands it this bridge. */
  config = twp_bridge_config_new (args, host, port, &local_error);
  if (config == NULL)
    {
      bridge_error (error, _("The transport would refuse this bridge line: %s."), local_error->message);
      return NULL;
    }
  g_ptr_array_add (out, NULL);
  return g_strjoinv (" ", (char **) out->pdata);
}
