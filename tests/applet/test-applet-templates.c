/* SPDX-License-Identifier: BSD-3-Clause */
/* Every GtkBuilder template of the status app, instantiated once and
 * drawn under G_DEBUG=fatal-warnings: a misspelled property, a bad
 * binding or a missing type aborts here (gtk4-builder-tool cannot see
 * them). Runs under xvfb-run. */
#define G_LOG_DOMAIN "twp-test-applet-templates"

#include "config.h"

#include <adwaita.h>
#include <string.h>

#include "twp-application.h"
#include "twp-bridge-row-private.h"
#include "twp-events-dialog.h"
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
  g_test_add_func ("/applet/templates/application", test_application);
  return g_test_run ();
}
