/* SPDX-License-Identifier: BSD-3-Clause */
/* Every GtkBuilder template of the status app, instantiated once and
 * drawn under G_DEBUG=fatal-warnings: a misspelled property, a bad
 * binding or a missing type aborts here (gtk4-builder-tool cannot see
 * them). Runs under xvfb-run. */
#define G_LOG_DOMAIN "twp-test-applet-templates"

#include "config.h"

#include <adwaita.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "twp-application.h"
#include "twp-bridge-row-private.h"
#include "twp-events-dialog.h"
#include "twp-tor-browser-dialog-private.h"
#include "twp-tor-browser.h"
#include "twp-transport-group.h"
#include "twp-window.h"

/* ---- a GNetworkMonitor the test switches on and off -------------------- */

#define TEST_TYPE_NETWORK_MONITOR (test_network_monitor_get_type ())
G_DECLARE_FINAL_TYPE (TestNetworkMonitor, test_network_monitor, TEST, NETWORK_MONITOR, GObject)

struct _TestNetworkMonitor
{
  GObject parent_instance;
  gboolean available;
};

static void test_network_monitor_iface_init (GNetworkMonitorInterface *iface);
static void test_network_monitor_initable_iface_init (GInitableIface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (TestNetworkMonitor, test_network_monitor, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_INITABLE, test_network_monitor_initable_iface_init)
                               G_IMPLEMENT_INTERFACE (G_TYPE_NETWORK_MONITOR, test_network_monitor_iface_init))

enum {
  PROP_0,
  PROP_NETWORK_AVAILABLE,
  PROP_NETWORK_METERED,
  PROP_CONNECTIVITY,
};

static gboolean
test_network_monitor_initable_init (GInitable     *initable,
                                    GCancellable  *cancellable,
                                    GError       **error)
{
  return TRUE;
}

static void
test_network_monitor_initable_iface_init (GInitableIface *iface)
{
  iface->init = test_network_monitor_initable_init;
}

static void
test_network_monitor_iface_init (GNetworkMonitorInterface *iface)
{
}

static void
test_network_monitor_get_property (GObject    *object,
                                   guint       prop_id,
                                   GValue     *value,
                                   GParamSpec *pspec)
{
  TestNetworkMonitor *self = TEST_NETWORK_MONITOR (object);

  switch (prop_id)
    {
    case PROP_NETWORK_AVAILABLE:
      g_value_set_boolean (value, self->available);
      break;
    case PROP_NETWORK_METERED:
      g_value_set_boolean (value, FALSE);
      break;
    case PROP_CONNECTIVITY:
      g_value_set_enum (value, self->available ? G_NETWORK_CONNECTIVITY_FULL : G_NETWORK_CONNECTIVITY_LOCAL);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
test_network_monitor_class_init (TestNetworkMonitorClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->get_property = test_network_monitor_get_property;
  g_object_class_override_property (object_class, PROP_NETWORK_AVAILABLE, "network-available");
  g_object_class_override_property (object_class, PROP_NETWORK_METERED, "network-metered");
  g_object_class_override_property (object_class, PROP_CONNECTIVITY, "connectivity");
}

static void
test_network_monitor_init (TestNetworkMonitor *self)
{
  self->available = TRUE;
}

static void
test_network_monitor_set_available (TestNetworkMonitor *self,
                                    gboolean            available)
{
  self->available = available;
  g_object_notify (G_OBJECT (self), "network-available");
}

/* ---- templates --------------------------------------------------------- */

static void
show_and_destroy (GtkWindow *window)
{
  gtk_window_present (window);
  gtk_test_widget_wait_for_draw (GTK_WIDGET (window));
  g_assert_true (gtk_widget_get_mapped (GTK_WIDGET (window)));
  gtk_window_destroy (window);
}

static void
test_window (void)
{
  TwpWindow *window = twp_window_new (NULL, NULL);

  /* No monitor: the empty state with copyable torrc lines. */
  g_assert_true (twp_window_is_empty (window));
  g_assert_nonnull (strstr (twp_window_get_torrc_text (window), "ClientTransportPlugin websocket exec /"));
  /* Without them the transport refuses to start (tests/tor runs the lines). */
  g_assert_nonnull (strstr (twp_window_get_torrc_text (window), "tor-websocket-proxy --client --managed\n"));
  gtk_test_accessible_assert_role (GTK_ACCESSIBLE (window), GTK_ACCESSIBLE_ROLE_WINDOW);
  show_and_destroy (GTK_WINDOW (window));
}

/* The offline notice follows GNetworkMonitor live, both ways. */
static void
test_window_offline (void)
{
  g_autoptr(TestNetworkMonitor) network = g_object_new (TEST_TYPE_NETWORK_MONITOR, NULL);
  g_autoptr(GtkCssProvider) css = gtk_css_provider_new ();
  TwpWindow *window;

  /* The app's style sheet (AdwApplication loads it; no application here). */
  gtk_css_provider_load_from_resource (css, "/io/github/TorWebSocketProxy/style.css");
  gtk_style_context_add_provider_for_display (gdk_display_get_default (), GTK_STYLE_PROVIDER (css),
                                              GTK_STYLE_PROVIDER_PRIORITY_APPLICATION);
  test_network_monitor_set_available (network, FALSE);
  window = g_object_new (TWP_TYPE_WINDOW, "network-monitor", network, NULL);
  g_assert_true (twp_window_is_offline_shown (window));
  gtk_window_present (GTK_WINDOW (window));
  gtk_test_widget_wait_for_draw (GTK_WIDGET (window));
  test_network_monitor_set_available (network, TRUE);
  g_assert_false (twp_window_is_offline_shown (window));
  test_network_monitor_set_available (network, FALSE);
  g_assert_true (twp_window_is_offline_shown (window));
  /* Let the revealer's slide (250 ms) finish before the screenshot. */
  {
    gint64 until = g_get_monotonic_time () + G_USEC_PER_SEC / 2;

    while (g_get_monotonic_time () < until)
      {
        g_main_context_iteration (NULL, FALSE);
        g_usleep (2000);
      }
  }
  gtk_test_widget_wait_for_draw (GTK_WIDGET (window));
  if (g_getenv ("TWP_SCREENSHOT_DIR") != NULL)
    {
      g_autoptr(GdkPaintable) paintable = gtk_widget_paintable_new (GTK_WIDGET (window));
      g_autoptr(GtkSnapshot) snapshot = gtk_snapshot_new ();
      g_autoptr(GskRenderNode) node = NULL;
      g_autoptr(GdkTexture) texture = NULL;
      g_autofree char *path = g_build_filename (g_getenv ("TWP_SCREENSHOT_DIR"), "applet-offline.png", NULL);
      int width = gtk_widget_get_width (GTK_WIDGET (window));
      int height = gtk_widget_get_height (GTK_WIDGET (window));

      gdk_paintable_snapshot (paintable, GDK_SNAPSHOT (snapshot), width, height);
      node = gtk_snapshot_free_to_node (g_steal_pointer (&snapshot));
      if (node != NULL)
        {
          texture = gsk_renderer_render_texture (gtk_native_get_renderer (GTK_NATIVE (window)), node,
                                                 &GRAPHENE_RECT_INIT (0, 0, width, height));
          g_assert_true (gdk_texture_save_to_png (texture, path));
        }
    }
  gtk_window_destroy (GTK_WINDOW (window));
  gtk_style_context_remove_provider_for_display (gdk_display_get_default (), GTK_STYLE_PROVIDER (css));
  /* After the window is gone, the monitor may still change. */
  test_network_monitor_set_available (network, TRUE);
}

/* A Tor Browser folder under @parent, laid out as the real one. */
static char *
make_tor_browser (const char *parent)
{
  g_autofree char *tor_dir = g_build_filename (parent, "tor-browser", "Browser", "TorBrowser", "Data", "Tor", NULL);
  g_autofree char *defaults = g_build_filename (tor_dir, "torrc-defaults", NULL);
  g_autofree char *torrc = g_build_filename (tor_dir, "torrc", NULL);

  g_assert_cmpint (g_mkdir_with_parents (tor_dir, 0700), ==, 0);
  g_assert_true (g_file_set_contents (defaults, "ClientTransportPlugin obfs4 exec ./lyrebird\n", -1, NULL));
  g_assert_true (g_file_set_contents (torrc, "SocksPort 9150\n", -1, NULL));
  return g_build_filename (parent, "tor-browser", NULL);
}

static void
save_screenshot (GtkWidget  *window,
                 const char *name)
{
  g_autoptr(GdkPaintable) paintable = NULL;
  g_autoptr(GtkSnapshot) snapshot = NULL;
  g_autoptr(GskRenderNode) node = NULL;
  g_autoptr(GdkTexture) texture = NULL;
  g_autofree char *path = NULL;
  int width = gtk_widget_get_width (window);
  int height = gtk_widget_get_height (window);

  if (g_getenv ("TWP_SCREENSHOT_DIR") == NULL)
    return;
  path = g_build_filename (g_getenv ("TWP_SCREENSHOT_DIR"), name, NULL);
  paintable = gtk_widget_paintable_new (window);
  snapshot = gtk_snapshot_new ();
  gdk_paintable_snapshot (paintable, GDK_SNAPSHOT (snapshot), width, height);
  node = gtk_snapshot_free_to_node (g_steal_pointer (&snapshot));
  g_assert_nonnull (node);
  texture = gsk_renderer_render_texture (gtk_native_get_renderer (GTK_NATIVE (window)), node,
                                         &GRAPHENE_RECT_INIT (0, 0, width, height));
  g_assert_true (gdk_texture_save_to_png (texture, path));
  g_test_message ("screenshot: %s", path);
}

static void
rm_rf (const char *path)
{
  g_autofree char *quoted = g_shell_quote (path);
  g_autofree char *command = g_strdup_printf ("rm -rf %s", quoted);

  g_assert_true (g_spawn_command_line_sync (command, NULL, NULL, NULL, NULL));
}

/* "Use with Tor Browser" on a fake home: torbrowser-launcher's folder
 * (confined: its AppArmor profile exists), its Flatpak, and a folder
 * chosen by hand; the buttons' real code paths. */
static void
test_tor_browser_dialog (void)
{
  g_autofree char *home = g_dir_make_tmp ("twp-tb-home-XXXXXX", NULL);
  g_autofree char *native = g_build_filename (home, ".local", "share", "torbrowser", "tbb", "x86_64", NULL);
  g_autofree char *flatpak = g_build_filename (home, ".var", "app", TWP_TOR_BROWSER_FLATPAK_ID, "data",
                                               "torbrowser", "tbb", "x86_64", NULL);
  g_autofree char *tarball = g_build_filename (home, "Downloads", NULL);
  g_autofree char *apparmor = g_build_filename (home, "apparmor.d", NULL);
  g_autofree char *profile = g_build_filename (apparmor, TWP_TOR_BROWSER_APPARMOR_PROFILE, NULL);
  g_autofree char *root = make_tor_browser (native);
  g_autofree char *flatpak_root = make_tor_browser (flatpak);
  g_autofree char *tarball_root = make_tor_browser (tarball);
  g_autofree char *lock = g_build_filename (tarball_root, "Browser", "TorBrowser", "Data", "Tor", "lock", NULL);
  g_autoptr(GtkCssProvider) css = gtk_css_provider_new ();
  g_autoptr(GFile) chosen = g_file_new_for_path (tarball);
  g_autoptr(TwpTorBrowser) tb = twp_tor_browser_new_for_folder (root, TWP_TOR_BROWSER_LAUNCHER, NULL);
  TwpTorBrowserDialog *dialog;
  int fd;

  gtk_css_provider_load_from_resource (css, "/io/github/TorWebSocketProxy/style.css");
  gtk_style_context_add_provider_for_display (gdk_display_get_default (), GTK_STYLE_PROVIDER (css),
                                              GTK_STYLE_PROVIDER_PRIORITY_APPLICATION);
  g_assert_cmpint (g_mkdir_with_parents (apparmor, 0700), ==, 0);
  g_assert_true (g_file_set_contents (profile, "# torbrowser-launcher's\n", -1, NULL));
  g_assert_true (g_str_has_suffix (flatpak_root, "/tor-browser"));
  dialog = TWP_TOR_BROWSER_DIALOG (twp_tor_browser_dialog_new_full (NULL, home, NULL, apparmor));
  g_assert_cmpuint (twp_tor_browser_dialog_get_n_installs (dialog), ==, 2);
  gtk_test_accessible_assert_property (twp_tor_browser_dialog_get_button (dialog, 0),
                                       GTK_ACCESSIBLE_PROPERTY_LABEL, "Set up Tor Browser (torbrowser-launcher)");
  gtk_window_set_default_size (GTK_WINDOW (dialog), 560, 900);
  gtk_window_present (GTK_WINDOW (dialog));
  gtk_test_widget_wait_for_draw (GTK_WIDGET (dialog));

  /* Set up torbrowser-launcher's: done, AppArmor commands shown. */
  g_signal_emit_by_name (twp_tor_browser_dialog_get_button (dialog, 0), "clicked");
  g_assert_nonnull (strstr (twp_tor_browser_dialog_get_status (dialog), "Done"));
  g_assert_true (twp_tor_browser_is_set_up (tb));
  g_assert_true (twp_tor_browser_dialog_apparmor_shown (dialog));
  g_assert_nonnull (strstr (twp_tor_browser_dialog_get_apparmor (dialog),
                            "/tor-websocket-proxy Px,' | sudo tee -a /etc/apparmor.d/local/torbrowser.Tor.tor"));
  g_assert_cmpstr (gtk_button_get_label (twp_tor_browser_dialog_get_button (dialog, 0)), ==, "_Undo");

  /* The bridge line: explained when wrong, copied when right. */
  twp_tor_browser_dialog_set_bridge_line (dialog, "websocket 192.0.2.3:443 ur=wss://bridge.example.net/");
  gtk_widget_activate_action (GTK_WIDGET (dialog), "tor-browser.check-bridge", NULL);
  g_assert_nonnull (strstr (twp_tor_browser_dialog_get_bridge_result (dialog), "unknown bridge argument \"ur\""));
  twp_tor_browser_dialog_set_bridge_line (dialog, "Bridge websocket 192.0.2.3:443 url=wss://bridge.example.net/path");
  gtk_widget_activate_action (GTK_WIDGET (dialog), "tor-browser.check-bridge", NULL);
  g_assert_cmpstr (twp_tor_browser_dialog_get_bridge_result (dialog), ==,
                   "This bridge line is valid, and copied: websocket 192.0.2.3:443 url=wss://bridge.example.net/path");
  gtk_test_widget_wait_for_draw (GTK_WIDGET (dialog));
  save_screenshot (GTK_WIDGET (dialog), "tor-browser-dialog.png");
  /* The narrow layout (360 px) still fits. */
  gtk_window_set_default_size (GTK_WINDOW (dialog), 360, 720);
  {
    gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

    while (gtk_widget_get_width (GTK_WIDGET (dialog)) > 400)
      {
        if (g_get_monotonic_time () > deadline)
          g_error ("the dialog never became narrow");
        g_main_context_iteration (NULL, TRUE);
      }
  }
  gtk_test_widget_wait_for_draw (GTK_WIDGET (dialog));
  save_screenshot (GTK_WIDGET (dialog), "tor-browser-dialog-narrow.png");

  /* The Flatpak: explained, nothing changed. */
  g_signal_emit_by_name (twp_tor_browser_dialog_get_button (dialog, 1), "clicked");
  g_assert_nonnull (strstr (twp_tor_browser_dialog_get_status (dialog), "Flatpak sandbox"));

  /* A folder chosen by hand whose tor runs: refused, said so. */
  twp_tor_browser_dialog_add_folder (dialog, chosen);
  g_assert_cmpuint (twp_tor_browser_dialog_get_n_installs (dialog), ==, 3);
  fd = g_open (lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  g_assert_cmpint (flock (fd, LOCK_EX | LOCK_NB), ==, 0);
  g_signal_emit_by_name (twp_tor_browser_dialog_get_button (dialog, 2), "clicked");
  g_assert_nonnull (strstr (twp_tor_browser_dialog_get_status (dialog), "Tor Browser is running"));
  close (fd);
  twp_tor_browser_dialog_add_folder (dialog, chosen);
  g_assert_cmpuint (twp_tor_browser_dialog_get_n_installs (dialog), ==, 3);

  /* Undo. */
  g_signal_emit_by_name (twp_tor_browser_dialog_get_button (dialog, 0), "clicked");
  g_assert_nonnull (strstr (twp_tor_browser_dialog_get_status (dialog), "Undone"));
  g_assert_false (twp_tor_browser_is_set_up (tb));
  g_assert_false (twp_tor_browser_dialog_apparmor_shown (dialog));

  gtk_window_destroy (GTK_WINDOW (dialog));
  gtk_style_context_remove_provider_for_display (gdk_display_get_default (), GTK_STYLE_PROVIDER (css));
  rm_rf (home);
}

static void
test_transport_group (void)
{
  GtkWidget *window = gtk_window_new ();
  GtkWidget *group = twp_transport_group_new (NULL);

  g_assert_null (twp_transport_group_get_instance (TWP_TRANSPORT_GROUP (group)));
  g_assert_true (GTK_IS_SWITCH (twp_transport_group_get_mode_switch (TWP_TRANSPORT_GROUP (group))));
  gtk_window_set_child (GTK_WINDOW (window), group);
  show_and_destroy (GTK_WINDOW (window));
}

static void
test_bridge_row (void)
{
  GtkWidget *window = gtk_window_new ();
  GtkWidget *list = gtk_list_box_new ();
  GtkWidget *row = twp_bridge_row_new (NULL);

  gtk_list_box_append (GTK_LIST_BOX (list), row);
  gtk_window_set_child (GTK_WINDOW (window), list);
  /* Named even before the URL is known, never by colour alone. */
  g_assert_cmpstr (twp_bridge_row_get_accessible_label (TWP_BRIDGE_ROW (row)), ==, "Bridge (address hidden)");
  gtk_test_accessible_assert_property (row, GTK_ACCESSIBLE_PROPERTY_LABEL, "Bridge (address hidden)");
  gtk_test_accessible_assert_role (row, GTK_ACCESSIBLE_ROLE_LIST_ITEM);
  /* The Test button says which bridge it tests. */
  gtk_test_accessible_assert_property (twp_bridge_row_get_test_button (TWP_BRIDGE_ROW (row)),
                                       GTK_ACCESSIBLE_PROPERTY_DESCRIPTION, "Test the bridge (address hidden)");
  show_and_destroy (GTK_WINDOW (window));
}

static void
test_events_dialog (void)
{
  GtkWidget *dialog = twp_events_dialog_new (NULL);

  show_and_destroy (GTK_WINDOW (dialog));
}

static void
test_application (void)
{
  g_autoptr(TwpApplication) app = twp_application_new ();

  g_assert_cmpstr (g_application_get_application_id (G_APPLICATION (app)), ==, "io.github.TorWebSocketProxy");
  g_assert_cmpstr (g_application_get_resource_base_path (G_APPLICATION (app)), ==, "/io/github/TorWebSocketProxy");
}

int
main (int   argc,
      char *argv[])
{
  g_setenv ("LANGUAGE", "C", TRUE);
  gtk_test_init (&argc, &argv, NULL);
  adw_init ();
  g_test_add_func ("/applet/templates/window", test_window);
  g_test_add_func ("/applet/templates/window-offline", test_window_offline);
  g_test_add_func ("/applet/templates/transport-group", test_transport_group);
  g_test_add_func ("/applet/templates/bridge-row", test_bridge_row);
  g_test_add_func ("/applet/templates/events-dialog", test_events_dialog);
  g_test_add_func ("/applet/templates/tor-browser-dialog", test_tor_browser_dialog);
  g_test_add_func ("/applet/templates/application", test_application);
  return g_test_run ();
}
