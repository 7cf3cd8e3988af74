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
  gtk_test_accessible_assert_role (GTK_ACCESSIBLE (window), GTK_ACCESSIBLE_ROLE_WINDOW);
  show_and_destroy (GTK_WINDOW (window));
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
  g_test_add_func ("/applet/templates/transport-group", test_transport_group);
  g_test_add_func ("/applet/templates/bridge-row", test_bridge_row);
  g_test_add_func ("/applet/templates/events-dialog", test_events_dialog);
  g_test_add_func ("/applet/templates/application", test_application);
  return g_test_run ();
}
