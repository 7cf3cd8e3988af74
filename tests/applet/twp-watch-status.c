/* SPDX-License-Identifier: BSD-3-Clause */
/* The status app's window, watching the session bus until a transport
 * started by Tor Browser shows under the "Tor Browser" heading with its
 * first bridge Connected. For tests/tor/test-tor-network.py, which runs it
 * under xvfb-run on the private bus its Tor Browser tor uses.
 *
 * Usage: twp-watch-status SECONDS   (exit 0: seen; 1: not before then)
 * A screenshot goes to $TWP_SCREENSHOT_DIR/tor-browser-connected.png. */
#define G_LOG_DOMAIN "twp-watch-status"

#include "config.h"

#include <adwaita.h>
#include <stdio.h>
#include <string.h>

#include "twp-bridge-row-private.h"
#include "twp-monitor.h"
#include "twp-transport-group.h"
#include "twp-window.h"

static TwpBridgeRow *
first_bridge_row (TwpWindow   *window,
                  TwpInstance *instance)
{
  GtkWidget *group = twp_window_get_group (window, instance);
  GtkListBoxRow *row;

  if (group == NULL)
    return NULL;
  row = gtk_list_box_get_row_at_index (twp_transport_group_get_bridge_list (TWP_TRANSPORT_GROUP (group)), 0);
  return row != NULL && TWP_IS_BRIDGE_ROW (row) ? TWP_BRIDGE_ROW (row) : NULL;
}

/* The instance shown as Tor Browser's with a Connected bridge, or NULL. */
static TwpInstance *
find_connected (TwpWindow  *window,
                TwpMonitor *monitor,
                GString    *seen)
{
  GListModel *instances = twp_monitor_get_instances (monitor);

  g_string_truncate (seen, 0);
  for (guint i = 0; i < g_list_model_get_n_items (instances); i++)
    {
      g_autoptr(TwpInstance) instance = g_list_model_get_item (instances, i);
      TwpBridgeRow *row = first_bridge_row (window, instance);
      const char *state = row != NULL ? twp_bridge_row_get_state_text (row) : NULL;
      gboolean tb = twp_window_shows_under (window, instance, "tor-browser");

      g_string_append_printf (seen, "[pid %u, under Tor Browser: %s, first bridge: %s] ",
                              twp_instance_get_pid (instance), tb ? "yes" : "no", state ? state : "none");
      if (tb && state != NULL && g_str_has_prefix (state, "Connected"))
        return instance;
    }
  return NULL;
}

static void
save_screenshot (GtkWidget *window)
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
  path = g_build_filename (g_getenv ("TWP_SCREENSHOT_DIR"), "tor-browser-connected.png", NULL);
  paintable = gtk_widget_paintable_new (window);
  snapshot = gtk_snapshot_new ();
  gdk_paintable_snapshot (paintable, GDK_SNAPSHOT (snapshot), width, height);
  node = gtk_snapshot_free_to_node (g_steal_pointer (&snapshot));
  if (node == NULL)
    return;
  texture = gsk_renderer_render_texture (gtk_native_get_renderer (GTK_NATIVE (window)), node,
                                         &GRAPHENE_RECT_INIT (0, 0, width, height));
  if (gdk_texture_save_to_png (texture, path))
    printf ("screenshot: %s\n", path);
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GDBusConnection) bus = NULL;
  g_autoptr(TwpMonitor) monitor = NULL;
  g_autoptr(GString) seen = g_string_new (NULL);
  TwpInstance *found = NULL;
  TwpWindow *window;
  gint64 deadline;

  if (argc != 2)
    {
      fprintf (stderr, "usage: twp-watch-status SECONDS\n");
      return 2;
    }
  deadline = g_get_monotonic_time () + g_ascii_strtoll (argv[1], NULL, 10) * G_USEC_PER_SEC;
  adw_init ();
  /* No crossfade: the screenshot shows the list as soon as it is there. */
  g_object_set (gtk_settings_get_default (), "gtk-enable-animations", FALSE, NULL);
  bus = g_bus_get_sync (G_BUS_TYPE_SESSION, NULL, &error);
  if (bus == NULL)
    {
      fprintf (stderr, "no session bus: %s\n", error->message);
      return 1;
    }
  monitor = twp_monitor_new (bus);
  window = twp_window_new (NULL, monitor);
  /* What GtkApplication does for the app: its own icons from resources. */
  gtk_icon_theme_add_resource_path (gtk_icon_theme_get_for_display (gtk_widget_get_display (GTK_WIDGET (window))),
                                    "/io/github/TorWebSocketProxy/icons");
  gtk_window_set_default_size (GTK_WINDOW (window), 560, 720);
  gtk_window_present (GTK_WINDOW (window));
  /* Event-driven: the window follows NameOwnerChanged and PropertiesChanged. */
  while ((found = find_connected (window, monitor, seen)) == NULL)
    {
      if (g_get_monotonic_time () > deadline)
        {
          printf ("not seen before the deadline; window shows: %s\n", seen->len ? seen->str : "nothing");
          gtk_window_destroy (GTK_WINDOW (window));
          return 1;
        }
      g_main_context_iteration (NULL, FALSE);
      g_usleep (5000);
    }
  printf ("seen: %s\n", seen->str);
  g_assert_false (twp_window_is_empty (window));
  gtk_test_widget_wait_for_draw (GTK_WIDGET (window));
  save_screenshot (GTK_WIDGET (window));
  gtk_window_destroy (GTK_WINDOW (window));
  return 0;
}
