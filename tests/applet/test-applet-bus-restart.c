/* SPDX-License-Identifier: BSD-3-Clause */
/* The status app when the session bus goes away and comes back: a
 * dbus-daemon of the test's own on a fixed path, a fake transport (the
 * generated skeletons, on a connection of its own) and the window watching
 * through a TwpMonitor. Killing the daemon empties the window (the proxies
 * are dead) without ending the app; a new daemon at the same address, and
 * the transport publishing there again, puts it back in the window. */
#define G_LOG_DOMAIN "twp-test-applet-bus-restart"

#include "config.h"

#include <adwaita.h>
#include <glib/gstdio.h>
#include <unistd.h>

#include "twp-dbus-generated.h"
#include "twp-monitor.h"
#include "twp-test-utils.h"
#include "twp-window.h"

#define ROOT_PATH "/io/github/TorWebSocketProxy1"

static GDBusConnection *
bus_connect (const char *address)
{
  g_autoptr(GError) error = NULL;
  GDBusConnection *connection;

  connection = g_dbus_connection_new_for_address_sync (address, G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                                                       G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
                                                       NULL, NULL, &error);
  g_assert_no_error (error);
  /* The test's own connections must not end the test with the bus. */
  g_dbus_connection_set_exit_on_close (connection, FALSE);
  return connection;
}

/* What the transport does on each bus: objects first, then the name. */
static GDBusConnection *
fake_publish (GDBusObjectManagerServer *manager,
              const char               *address,
              const char               *name)
{
  g_autoptr(GDBusConnection) connection = bus_connect (address);
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GError) error = NULL;

  g_dbus_object_manager_server_set_connection (manager, connection);
  reply = g_dbus_connection_call_sync (connection, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                       "org.freedesktop.DBus", "RequestName",
                                       g_variant_new ("(su)", name, 4 /* DO_NOT_QUEUE */), G_VARIANT_TYPE ("(u)"),
                                       G_DBUS_CALL_FLAGS_NONE, 5000, NULL, &error);
  g_assert_no_error (error);
  return g_steal_pointer (&connection);
}

static gboolean
shows (TwpMonitor *monitor,
       TwpWindow  *window,
       const char *name)
{
  GListModel *instances = twp_monitor_get_instances (monitor);
  g_autoptr(TwpInstance) instance = NULL;

  if (g_list_model_get_n_items (instances) != 1)
    return FALSE;
  instance = g_list_model_get_item (instances, 0);
  return g_strcmp0 (twp_instance_get_bus_name (instance), name) == 0 && !twp_window_is_empty (window);
}

static void
test_bus_restart (void)
{
  g_autofree char *dir = g_dir_make_tmp ("twp-applet-bus-XXXXXX", NULL);
  g_autofree char *socket_path = g_build_filename (dir, "bus", NULL);
  g_autofree char *address = g_strdup_printf ("unix:path=%s", socket_path);
  g_autofree char *name = g_strdup_printf ("io.github.TorWebSocketProxy1.instance%u", (guint) getpid ());
  g_autoptr(GSubprocess) daemon = twp_test_bus_start (address);
  g_autoptr(TwpDBusObjectSkeleton) object = twp_dbus_object_skeleton_new (ROOT_PATH "/Transport");
  g_autoptr(TwpDBusTransport) transport = twp_dbus_transport_skeleton_new ();
  g_autoptr(GDBusObjectManagerServer) manager = g_dbus_object_manager_server_new (ROOT_PATH);
  g_autoptr(GDBusConnection) service = NULL;
  g_autoptr(GDBusConnection) watching = NULL;
  g_autoptr(TwpMonitor) monitor = NULL;
  g_autoptr(GDBusConnection) current = NULL;
  TwpWindow *window;

  twp_dbus_transport_set_role (transport, "client");
  twp_dbus_transport_set_version (transport, "0.0-test");
  twp_dbus_transport_set_state (transport, 20);
  twp_dbus_transport_set_frame_mode (transport, "binary");
  twp_dbus_object_skeleton_set_transport (object, transport);
  g_dbus_object_manager_server_export (manager, G_DBUS_OBJECT_SKELETON (object));
  service = fake_publish (manager, address, name);

  /* As the app does with GApplication's connection (exit-on-close). */
  watching = g_dbus_connection_new_for_address_sync (address, G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                                                     G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
                                                     NULL, NULL, NULL);
  g_assert_nonnull (watching);
  g_dbus_connection_set_exit_on_close (watching, TRUE);
  monitor = g_object_new (TWP_TYPE_MONITOR, "connection", watching, "address", address, NULL);
  g_clear_object (&watching);
  window = twp_window_new (NULL, monitor);
  gtk_window_present (GTK_WINDOW (window));
  TWP_TEST_ASSERT_WAIT (shows (monitor, window, name), 20000, "the transport in the window");

  /* The bus goes away: nothing shown, the app still running. */
  twp_test_bus_stop (daemon);
  g_clear_object (&daemon);
  TWP_TEST_ASSERT_WAIT (g_list_model_get_n_items (twp_monitor_get_instances (monitor)) == 0 &&
                        twp_window_is_empty (window),
                        20000, "the window to empty with the bus gone");
  g_object_get (monitor, "connection", &current, NULL);
  g_assert_null (current);

  /* A new bus at the same address, where the transport publishes again. */
  g_dbus_object_manager_server_set_connection (manager, NULL);
  g_clear_object (&service);
  daemon = twp_test_bus_start (address);
  service = fake_publish (manager, address, name);
  TWP_TEST_ASSERT_WAIT (shows (monitor, window, name), 30000, "the transport back in the window");
  g_object_get (monitor, "connection", &current, NULL);
  g_assert_nonnull (current);
  g_assert_false (g_dbus_connection_is_closed (current));

  gtk_window_destroy (GTK_WINDOW (window));
  g_clear_object (&monitor);
  g_dbus_object_manager_server_set_connection (manager, NULL);
  g_dbus_connection_close_sync (service, NULL, NULL);
  g_dbus_connection_close_sync (current, NULL, NULL);
  twp_test_bus_stop (daemon);
  g_remove (socket_path);
  g_rmdir (dir);
}

int
main (int    argc,
      char **argv)
{
  gtk_test_init (&argc, &argv, NULL);
  adw_init ();

  g_test_add_func ("/applet/bus-restart", test_bus_restart);
  return g_test_run ();
}
