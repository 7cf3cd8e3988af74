/* SPDX-License-Identifier: BSD-3-Clause */
/* The status app's widgets against a fake transport: generated skeletons
 * exported by this process on a second connection to the private session
 * bus of dbus-run-session (Xvfb display). The fake does what the real one
 * cannot be made to do on cue: answer in a chosen order, fail
 * GetRecentEvents, send the unsafe-logging placeholder.
 *
 * Covered: two or three frame-mode toggles within one D-Bus round trip
 * end at the last choice, a script's change moves the switch without a Set
 * going back; a failure code is shown even when the details are withheld;
 * the events dialog shows live events when GetRecentEvents fails, turns the
 * placeholder into words, and takes no event after dispose. */
#define G_LOG_DOMAIN "twp-test-applet-fake"

#include "config.h"

#include <adwaita.h>
#include <string.h>
#include <unistd.h>

#include "twp-bridge-row-private.h"
#include "twp-events-dialog-private.h"
#include "twp-instance.h"
#include "twp-transport-group.h"
#include "twp-test-utils.h"
/* TWP_DBUS_WITHHELD, the transport's placeholder (glib-object.h only). */
#include "../../src/dbus/twp-dbus-private.h"

#define ROOT_PATH "/io/github/TorWebSocketProxy1"


typedef struct
{
  GDBusConnection *service_connection; /* the fake transport's own */
  GDBusObjectManagerServer *manager;
  TwpDBusTransport *transport;         /* skeleton */
  TwpDBusBridge *bridge;               /* skeleton */
  GPtrArray *modes_set;                /* FrameMode values the fake received, in order */
  TwpInstance *instance;               /* the app's view of it */
} Fixture;

/* Let queued D-Bus traffic (replies, PropertiesChanged) settle. */
static void
spin (int milliseconds)
{
  gint64 until = g_get_monotonic_time () + milliseconds * 1000;

  while (g_get_monotonic_time () < until)
    {
      g_main_context_iteration (NULL, FALSE);
      g_usleep (2000);
    }
}

static void
mode_set_cb (GObject    *object,
             GParamSpec *pspec,
             Fixture    *fixture)
{
  g_ptr_array_add (fixture->modes_set, g_strdup (twp_dbus_transport_get_frame_mode (fixture->transport)));
}

static void
instance_ready_cb (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  Fixture *fixture = user_data;
  g_autoptr(GError) error = NULL;

  fixture->instance = twp_instance_new_finish (result, &error);
  g_assert_no_error (error);
}

static void
fixture_set_up (Fixture       *fixture,
                gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *address = g_dbus_address_get_for_bus_sync (G_BUS_TYPE_SESSION, NULL, &error);
  g_autofree char *name = g_strdup_printf ("io.github.TorWebSocketProxy1.instance%u", (guint) getpid ());
  g_autoptr(TwpDBusObjectSkeleton) transport_object = twp_dbus_object_skeleton_new (ROOT_PATH "/Transport");
  g_autoptr(TwpDBusObjectSkeleton) bridge_object = twp_dbus_object_skeleton_new (ROOT_PATH "/Bridges/0");
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GDBusConnection) connection = NULL;

  g_assert_no_error (error);
  fixture->service_connection =
    g_dbus_connection_new_for_address_sync (address,
                                            G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                                            G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
                                            NULL, NULL, &error);
  g_assert_no_error (error);

  fixture->modes_set = g_ptr_array_new_with_free_func (g_free);
  fixture->transport = twp_dbus_transport_skeleton_new ();
  twp_dbus_transport_set_role (fixture->transport, "client");
  twp_dbus_transport_set_version (fixture->transport, "0.0-test");
  twp_dbus_transport_set_state (fixture->transport, 20);
  twp_dbus_transport_set_frame_mode (fixture->transport, "binary");
  g_signal_connect (fixture->transport, "notify::frame-mode", G_CALLBACK (mode_set_cb), fixture);
  twp_dbus_object_skeleton_set_transport (transport_object, fixture->transport);

  /* Failing with a close code, while unsafe logging withholds the words. */
  fixture->bridge = twp_dbus_bridge_skeleton_new ();
  twp_dbus_bridge_set_state (fixture->bridge, 40);
  twp_dbus_bridge_set_phase (fixture->bridge, 60);
  twp_dbus_bridge_set_frame_mode (fixture->bridge, "binary");
  twp_dbus_bridge_set_rtt_microseconds (fixture->bridge, -1);
  twp_dbus_bridge_set_last_failure_reason (fixture->bridge, 130);
  twp_dbus_bridge_set_last_failure_code (fixture->bridge, 1008);
  twp_dbus_bridge_set_last_failure_details (fixture->bridge, TWP_DBUS_WITHHELD);
  twp_dbus_object_skeleton_set_bridge (bridge_object, fixture->bridge);

  fixture->manager = g_dbus_object_manager_server_new (ROOT_PATH);
  g_dbus_object_manager_server_export (fixture->manager, G_DBUS_OBJECT_SKELETON (transport_object));
  g_dbus_object_manager_server_export (fixture->manager, G_DBUS_OBJECT_SKELETON (bridge_object));
  g_dbus_object_manager_server_set_connection (fixture->manager, fixture->service_connection);
  /* Another connection of this process serves the bus name: no deadlock. */
  reply = g_dbus_connection_call_sync (fixture->service_connection, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                       "org.freedesktop.DBus", "RequestName",
                                       g_variant_new ("(su)", name, 4 /* DO_NOT_QUEUE */), G_VARIANT_TYPE ("(u)"),
                                       G_DBUS_CALL_FLAGS_NONE, 5000, NULL, &error);
  g_assert_no_error (error);

  connection = g_bus_get_sync (G_BUS_TYPE_SESSION, NULL, &error);
  g_assert_no_error (error);
  twp_instance_new_async (connection, name, NULL, instance_ready_cb, fixture);
  TWP_TEST_ASSERT_WAIT (fixture->instance != NULL, 10000, "the fake transport");
  TWP_TEST_ASSERT_WAIT (g_list_model_get_n_items (twp_instance_get_bridges (fixture->instance)) == 1, 10000, "the fake bridge");
}

static void
fixture_tear_down (Fixture       *fixture,
                   gconstpointer  data)
{
  g_clear_object (&fixture->instance);
  g_dbus_object_manager_server_set_connection (fixture->manager, NULL);
  g_clear_object (&fixture->manager);
  g_signal_handlers_disconnect_by_data (fixture->transport, fixture);
  g_clear_object (&fixture->transport);
  g_clear_object (&fixture->bridge);
  g_dbus_connection_close_sync (fixture->service_connection, NULL, NULL);
  g_clear_object (&fixture->service_connection);
  g_ptr_array_unref (fixture->modes_set);
}

static const char *
last_mode_set (Fixture *fixture)
{
  return fixture->modes_set->len > 0 ? g_ptr_array_index (fixture->modes_set, fixture->modes_set->len - 1) : NULL;
}

/* The user's toggles happen faster than a D-Bus round trip (nothing is
 * dispatched between them): the last one must win, on the switch and on
 * the transport. */
static void
test_mode_switch_race (Fixture       *fixture,
                       gconstpointer  data)
{
  GtkWidget *window = gtk_window_new ();
  GtkWidget *group = twp_transport_group_new (fixture->instance);
  GtkSwitch *mode_switch = twp_transport_group_get_mode_switch (TWP_TRANSPORT_GROUP (group));
  TwpDBusTransport *proxy = twp_instance_get_transport (fixture->instance);

  gtk_window_set_child (GTK_WINDOW (window), group);
  gtk_window_present (GTK_WINDOW (window));
  g_assert_false (gtk_switch_get_active (mode_switch));

  /* On, off: the transport ends at binary, having seen base64 on the way. */
  gtk_switch_set_active (mode_switch, TRUE);
  gtk_switch_set_active (mode_switch, FALSE);
  TWP_TEST_ASSERT_WAIT (fixture->modes_set->len >= 2 && g_strcmp0 (twp_dbus_transport_get_frame_mode (proxy), "binary") == 0, 10000, "the second toggle to reach the transport");
  spin (200);
  g_assert_cmpuint (fixture->modes_set->len, ==, 2);
  g_assert_cmpstr (g_ptr_array_index (fixture->modes_set, 0), ==, "base64");
  g_assert_cmpstr (last_mode_set (fixture), ==, "binary");
  g_assert_false (gtk_switch_get_active (mode_switch));

  /* On, off, on: only base64 needs sending, the middle choice is moot. */
  gtk_switch_set_active (mode_switch, TRUE);
  gtk_switch_set_active (mode_switch, FALSE);
  gtk_switch_set_active (mode_switch, TRUE);
  TWP_TEST_ASSERT_WAIT (g_strcmp0 (twp_dbus_transport_get_frame_mode (proxy), "base64") == 0, 10000, "base64 at the transport");
  spin (200);
  g_assert_cmpuint (fixture->modes_set->len, ==, 3);
  g_assert_cmpstr (last_mode_set (fixture), ==, "base64");
  g_assert_true (gtk_switch_get_active (mode_switch));

  /* A script sets binary: the switch follows, and sends nothing back. */
  twp_dbus_transport_set_frame_mode (fixture->transport, "binary");
  TWP_TEST_ASSERT_WAIT (!gtk_switch_get_active (mode_switch), 10000, "the switch to follow a script");
  spin (200);
  g_assert_cmpuint (fixture->modes_set->len, ==, 4);
  g_assert_cmpstr (last_mode_set (fixture), ==, "binary");

  gtk_window_destroy (GTK_WINDOW (window));
}

/* LastFailureCode gives the number; the withheld details change nothing. */
static void
test_bridge_code (Fixture       *fixture,
                  gconstpointer  data)
{
  g_autoptr(TwpDBusBridge) bridge = g_list_model_get_item (twp_instance_get_bridges (fixture->instance), 0);
  GtkWidget *window = gtk_window_new ();
  GtkWidget *list = gtk_list_box_new ();
  GtkWidget *row = twp_bridge_row_new (bridge);

  gtk_list_box_append (GTK_LIST_BOX (list), row);
  gtk_window_set_child (GTK_WINDOW (window), list);
  gtk_window_present (GTK_WINDOW (window));
  g_assert_cmpstr (twp_bridge_row_get_reason_text (TWP_BRIDGE_ROW (row)), ==,
                   "Closed by server (1008) — check the server’s log");
  /* A new failure: the row follows the code, never the text. */
  twp_dbus_bridge_set_last_failure_reason (fixture->bridge, 90);
  twp_dbus_bridge_set_last_failure_code (fixture->bridge, 404);
  TWP_TEST_ASSERT_WAIT (g_strcmp0 (twp_bridge_row_get_reason_text (TWP_BRIDGE_ROW (row)),
                         "Server refused the upgrade (HTTP 404) — check the url= path") == 0, 10000, "the new failure code");
  g_assert_nonnull (strstr (twp_bridge_row_get_accessible_description (TWP_BRIDGE_ROW (row)), "(HTTP 404)"));
  gtk_window_destroy (GTK_WINDOW (window));
}

/* The fake does not implement GetRecentEvents: it fails. */
static void
test_events_dialog (Fixture       *fixture,
                    gconstpointer  data)
{
  TwpEventsDialog *dialog = TWP_EVENTS_DIALOG (twp_events_dialog_new (twp_instance_get_transport (fixture->instance)));
  guint n_events;

  gtk_window_present (GTK_WINDOW (dialog));
  /* Events sent before the failed answer arrived are dropped; keep
   * sending until one shows. */
  TWP_TEST_ASSERT_WAIT ((twp_dbus_transport_emit_event (fixture->transport, 1, 1, TWP_DBUS_WITHHELD), spin (20),
               twp_events_dialog_get_n_events (dialog) >= 1), 10000, "a live event after GetRecentEvents failed");
  g_assert_cmpstr (twp_events_dialog_get_event_text (dialog, 0), ==,
                   "Details withheld (unsafe logging is on); see Copy diagnostics");
  n_events = twp_events_dialog_get_n_events (dialog);
  twp_dbus_transport_emit_event (fixture->transport, 2, 2, "frame mode set to base64");
  /* Withheld events the loop above sent may still be arriving (a loaded
   * machine): the plain one comes after them, as the last. */
  TWP_TEST_ASSERT_WAIT (twp_events_dialog_get_n_events (dialog) > n_events &&
                        g_strcmp0 (twp_events_dialog_get_event_text (dialog,
                                                                     twp_events_dialog_get_n_events (dialog) - 1),
                                   "frame mode set to base64") == 0,
                        10000, "a plain event");
  for (guint i = n_events; i + 1 < twp_events_dialog_get_n_events (dialog); i++)
    g_assert_cmpstr (twp_events_dialog_get_event_text (dialog, i), ==,
                     "Details withheld (unsafe logging is on); see Copy diagnostics");

  /* Disposed but still referenced (as a pending callback or a binding
   * might): an event must not reach it. Drain the events still queued
   * from the loop above first. */
  spin (200);
  g_object_ref (dialog);
  gtk_window_destroy (GTK_WINDOW (dialog));
  g_object_run_dispose (G_OBJECT (dialog));
  n_events = twp_events_dialog_get_n_events (dialog);
  twp_dbus_transport_emit_event (fixture->transport, 3, 0, "after dispose");
  spin (200);
  g_assert_cmpuint (twp_events_dialog_get_n_events (dialog), ==, n_events);
  g_object_unref (dialog);
}

int
main (int   argc,
      char *argv[])
{
  g_setenv ("LANGUAGE", "C", TRUE);
  gtk_test_init (&argc, &argv, NULL);
  adw_init ();
  g_test_add ("/applet/fake/mode-switch-race", Fixture, NULL, fixture_set_up, test_mode_switch_race,
              fixture_tear_down);
  g_test_add ("/applet/fake/bridge-code", Fixture, NULL, fixture_set_up, test_bridge_code, fixture_tear_down);
  g_test_add ("/applet/fake/events-dialog", Fixture, NULL, fixture_set_up, test_events_dialog, fixture_tear_down);
  return g_test_run ();
}
