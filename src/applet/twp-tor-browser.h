/* SPDX-License-Identifier: BSD-3-Clause */
/* Tor Browser beside us, without GTK: the torrc lines we show, finding
 * Tor Browser installations, adding our ClientTransportPlugin line to
 * their torrc (and taking it out again), and checking a bridge line with
 * the transport's own parser. The status app's "Use with Tor Browser"
 * window is the face of this file. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* torbrowser-launcher's Flatpak, and the AppArmor profile its Debian
 * package confines Tor Browser's tor with. */
#define TWP_TOR_BROWSER_FLATPAK_ID      "org.torproject.torbrowser-launcher"
#define TWP_TOR_BROWSER_APPARMOR_PROFILE "torbrowser.Tor.tor"

#define TWP_TOR_BROWSER_ERROR (twp_tor_browser_error_quark ())
GQuark twp_tor_browser_error_quark (void);

typedef enum {
  TWP_TOR_BROWSER_ERROR_NOT_FOUND,     /* not a Tor Browser folder */
  TWP_TOR_BROWSER_ERROR_RUNNING,       /* its tor holds the data directory's lock */
  TWP_TOR_BROWSER_ERROR_SANDBOXED,     /* a Flatpak: cannot run a host program */
  TWP_TOR_BROWSER_ERROR_BRIDGE_LINE,   /* the bridge line does not parse */
} TwpTorBrowserError;

typedef enum {
  TWP_TOR_BROWSER_LAUNCHER,   /* torbrowser-launcher's download */
  TWP_TOR_BROWSER_FLATPAK,    /* the same, inside its Flatpak */
  TWP_TOR_BROWSER_FOLDER,     /* an extracted tarball the user chose */
} TwpTorBrowserKind;

typedef struct {
  TwpTorBrowserKind kind;
  char *root;       /* the tor-browser folder */
  char *tor_dir;    /* Browser/TorBrowser/Data/Tor: tor's DataDirectory */
  char *torrc;      /* tor_dir/torrc */
  char *backup;     /* tor_dir/torrc.before-websocket */
} TwpTorBrowser;

void twp_tor_browser_free (TwpTorBrowser *self);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TwpTorBrowser, twp_tor_browser_free)

/* "ClientTransportPlugin websocket exec <libexecdir>/tor-websocket-proxy
 * --client --managed": the line every torrc of ours shows. */
char *twp_torrc_client_plugin_line (void);
/* The empty state's example: UseBridges, the plugin line, a Bridge line
 * with documentation addresses (RFC 5737, RFC 2606). */
char *twp_torrc_client_example (void);
/* The plugin line for Tor Browser's torrc, with a leading '+': a plain
 * line would replace the ClientTransportPlugin lines of Tor Browser's
 * torrc-defaults (obfs4, snowflake...) instead of adding to them. */
char *twp_torrc_tor_browser_line (void);

/* Installations of torbrowser-launcher (natively and in its Flatpak)
 * under @home; @data_home is $XDG_DATA_HOME (NULL: @home/.local/share).
 * An array of TwpTorBrowser, possibly empty. */
GPtrArray *twp_tor_browser_find (const char *home,
                                 const char *data_home);

/* @folder is a tor-browser folder (or the folder holding one, as the
 * tarball extracts). */
TwpTorBrowser *twp_tor_browser_new_for_folder (const char         *folder,
                                               TwpTorBrowserKind   kind,
                                               GError            **error);

/* TRUE while a tor holds @self's data directory lock. */
gboolean twp_tor_browser_is_running (TwpTorBrowser *self);
/* TRUE when the torrc has a websocket ClientTransportPlugin line running
 * our binary with --client --managed. */
gboolean twp_tor_browser_is_set_up (TwpTorBrowser *self);
/* Adds our line (replacing any other websocket ClientTransportPlugin line)
 * and keeps the first torrc it changed as @self->backup. Refuses while
 * tor runs and for a Flatpak. Doing it twice changes nothing. */
gboolean twp_tor_browser_set_up (TwpTorBrowser  *self,
                                 GError        **error);
/* Takes out every line set_up() added; every other line stays. */
gboolean twp_tor_browser_undo (TwpTorBrowser  *self,
                               GError        **error);
/* TRUE when torbrowser-launcher's AppArmor profile would confine this
 * tor (a launcher installation and the profile under @apparmor_dir,
 * normally /etc/apparmor.d). */
gboolean twp_tor_browser_is_confined (TwpTorBrowser *self,
                                      const char    *apparmor_dir);
/* The line for /etc/apparmor.d/local/<profile> that makes a confined tor
 * switch to our own profile when it runs us. */
char *twp_tor_browser_apparmor_line (void);
/* The shell commands that add that line for torbrowser-launcher's
 * profile and reload it. */
char *twp_tor_browser_apparmor_commands (void);

/* Checks a bridge line ("[Bridge ]websocket ADDR:PORT [FINGERPRINT]
 * k=v...") with the transport's own parser. Returns it as Tor Browser's
 * "Add a bridge manually" takes it (no "Bridge ", single spaces), or NULL
 * with TWP_TOR_BROWSER_ERROR_BRIDGE_LINE and a message in words. */
char *twp_bridge_line_check (const char  *line,
                             GError     **error);

G_END_DECLS
