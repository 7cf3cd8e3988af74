/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-applet"

#include "config.h"

#include "twp-application.h"

#include <glib/gi18n.h>

#include "twp-monitor.h"
#include "twp-status-text.h"
#include "twp-window.h"

/* At most one notification per transport in this many seconds; a state
 * reached inside the window is sent when it ends, if it still holds. */
#define NOTIFY_INTERVAL_S 30

typedef struct
{
  TwpApplication *app;          /* borrowed: the app outlives its watches */
  TwpDBusTransport *transport;  /* owned */
  char *id;                     /* notification id */
  guint pid;
  gulong notify_id;
  guint last_state;             /* last state seen */
  guint notified_state;         /* last state notified (0: none) */
  gint64 last_notified_us;
  guint deferred_id;
} StateWatch;

struct _TwpApplication
{
  AdwApplication parent_instance;

  /* owned */
  TwpMonitor *monitor;
  GSettings *settings;          /* NULL when the schema is not installed */
  GHashTable *watches;          /* TwpInstance -> StateWatch */
};

G_DEFINE_FINAL_TYPE (TwpApplication, twp_application, ADW_TYPE_APPLICATION)

/* ---- notifications ----------------------------------------------------- */

static gboolean
is_notable (guint state)
{
  return state == TWP_TRANSPORT_STATE_CONNECTED || state == TWP_TRANSPORT_STATE_FAILING;
}

static void
send_notification (StateWatch *watch,
                   guint       state)
{
  g_autoptr(GNotification) notification = NULL;
  g_autofree char *body = NULL;

  if (watch->app->settings != NULL && !g_settings_get_boolean (watch->app->settings, "notify-state-changes"))
    return;
  if (state == TWP_TRANSPORT_STATE_CONNECTED)
    {
      notification = g_notification_new (_("Bridges connected again"));
      /* Translators: %u is a process ID */
      body = g_strdup_printf (_("The websocket transport (process %u) has open connections."), watch->pid);
    }
  else
    {
      g_autofree char *reason = twp_status_reason_text (twp_dbus_transport_get_last_failure_reason (watch->transport),
                                                        0);

      notification = g_notification_new (_("Bridges failing"));
      body = reason != NULL ? g_steal_pointer (&reason) : g_strdup (_("No bridge of the websocket transport works."));
      g_notification_set_priority (notification, G_NOTIFICATION_PRIORITY_HIGH);
    }
  g_notification_set_body (notification, body);
  /* No default action: a click activates the application, which presents
   * the window. */
  g_application_send_notification (G_APPLICATION (watch->app), watch->id, notification);
  watch->notified_state = state;
  watch->last_notified_us = g_get_monotonic_time ();
}

static gboolean
deferred_cb (gpointer user_data)
{
  StateWatch *watch = user_data;

  watch->deferred_id = 0;
  if (is_notable (watch->last_state) && watch->last_state != watch->notified_state)
    send_notification (watch, watch->last_state);
  return G_SOURCE_REMOVE;
}

static void
state_changed_cb (GObject    *object,
                  GParamSpec *pspec,
                  StateWatch *watch)
{
  guint state = twp_dbus_transport_get_state (watch->transport);
  guint previous = watch->last_state;
  gint64 since;

  watch->last_state = state;
  /* Only Connected <-> Failing matters (Degraded sits in between and is
   * neither); the first state seen is not news. */
  if (!is_notable (state) || state == watch->notified_state || previous == 0)
    return;
  if (watch->notified_state == 0 && !is_notable (previous))
    {
      /* Starting -> Connected is not news either; remember it. */
      if (state == TWP_TRANSPORT_STATE_CONNECTED)
        {
          watch->notified_state = state;
          return;
        }
    }
  since = g_get_monotonic_time () - watch->last_notified_us;
  if (watch->last_notified_us != 0 && since < NOTIFY_INTERVAL_S * G_USEC_PER_SEC)
    {
      if (watch->deferred_id == 0)
        {
          watch->deferred_id = g_timeout_add_seconds (NOTIFY_INTERVAL_S - (guint) (since / G_USEC_PER_SEC),
                                                      deferred_cb, watch);
          g_source_set_static_name (g_main_context_find_source_by_id (NULL, watch->deferred_id),
                                    "[twp] deferred notification");
        }
      return;
    }
  send_notification (watch, state);
}

static void
state_watch_free (gpointer data)
{
  StateWatch *watch = data;

  g_clear_handle_id (&watch->deferred_id, g_source_remove);
  g_clear_signal_handler (&watch->notify_id, watch->transport);
  /* The transport is gone: its failure notice no longer applies. */
  g_application_withdraw_notification (G_APPLICATION (watch->app), watch->id);
  g_clear_object (&watch->transport);
  g_free (watch->id);
  g_free (watch);
}

static void
instances_changed_cb (GListModel     *model,
                      guint           position,
                      guint           removed,
                      guint           added,
                      TwpApplication *self)
{
  guint n = g_list_model_get_n_items (model);
  g_autoptr(GHashTable) present = g_hash_table_new (NULL, NULL);
  GHashTableIter iter;
  gpointer key;

  for (guint i = 0; i < n; i++)
    {
      g_autoptr(TwpInstance) instance = g_list_model_get_item (model, i);
      StateWatch *watch;

      g_hash_table_add (present, instance);
      if (g_hash_table_contains (self->watches, instance))
        continue;
      watch = g_new0 (StateWatch, 1);
      watch->app = self;
      watch->transport = g_object_ref (twp_instance_get_transport (instance));
      watch->id = g_strdup_printf ("state-%s", twp_instance_get_bus_name (instance));
      watch->pid = twp_instance_get_pid (instance);
      watch->last_state = twp_dbus_transport_get_state (watch->transport);
      if (watch->last_state == TWP_TRANSPORT_STATE_CONNECTED)
        watch->notified_state = watch->last_state;
      watch->notify_id = g_signal_connect (watch->transport, "notify::state", G_CALLBACK (state_changed_cb), watch);
      g_hash_table_insert (self->watches, g_object_ref (instance), watch);
    }

  g_hash_table_iter_init (&iter, self->watches);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    if (!g_hash_table_contains (present, key))
      g_hash_table_iter_remove (&iter);
}

/* ---- actions ----------------------------------------------------------- */

static void
about_activated (GSimpleAction *action,
                 GVariant      *parameter,
                 gpointer       user_data)
{
  GtkApplication *app = GTK_APPLICATION (user_data);
  GtkWidget *about;

  about = g_object_new (ADW_TYPE_ABOUT_WINDOW,
                        "application-name", _("Tor WebSocket Status"),
                        "application-icon", TWP_APPLICATION_ID,
                        "developer-name", _("The tor-websocket-proxy developers"),
                        "version", PACKAGE_VERSION,
                        "license-type", GTK_LICENSE_BSD_3,
                        "comments", _("Shows the websocket pluggable transports that tor runs, and why a bridge fails."),
                        /* Translators: your names, one per line */
                        "translator-credits", _("translator-credits"),
                        "transient-for", gtk_application_get_active_window (app),
                        "modal", TRUE,
                        NULL);
  gtk_window_present (GTK_WINDOW (about));
}

static void
quit_activated (GSimpleAction *action,
                GVariant      *parameter,
                gpointer       user_data)
{
  g_application_quit (G_APPLICATION (user_data));
}

static const GActionEntry app_actions[] = {
  { .name = "about", .activate = about_activated },
  { .name = "quit", .activate = quit_activated },
};

/* ---- GApplication ------------------------------------------------------ */

static void
twp_application_startup (GApplication *application)
{
  TwpApplication *self = TWP_APPLICATION (application);
  GSettingsSchemaSource *source = g_settings_schema_source_get_default ();
  g_autoptr(GSettingsSchema) schema = NULL;
  static const char *quit_accels[] = { "<Control>q", NULL };

  G_APPLICATION_CLASS (twp_application_parent_class)->startup (application);

  g_action_map_add_action_entries (G_ACTION_MAP (self), app_actions, G_N_ELEMENTS (app_actions), self);
  gtk_application_set_accels_for_action (GTK_APPLICATION (self), "app.quit", quit_accels);

  /* Without the installed schema (an uninstalled build) there is no
   * preference; notifications then stay on. */
  if (source != NULL)
    schema = g_settings_schema_source_lookup (source, TWP_APPLICATION_ID, TRUE);
  if (schema != NULL && g_settings_schema_has_key (schema, "notify-state-changes"))
    {
      g_autoptr(GAction) action = NULL;

      self->settings = g_settings_new (TWP_APPLICATION_ID);
      action = g_settings_create_action (self->settings, "notify-state-changes");
      g_action_map_add_action (G_ACTION_MAP (self), action);
    }

  /* The app follows transports through the session bus it runs on; with
   * none (unusual for a desktop app) the window shows the empty state. */
  {
    GDBusConnection *connection = g_application_get_dbus_connection (application);

    /* Never g_bus_get_sync () here: it blocks, and may autolaunch a bus. */
    if (connection != NULL)
      g_object_ref (connection);
    else
      g_message ("No session bus: showing no transports");
    self->monitor = twp_monitor_new (connection);
    g_clear_object (&connection);
  }
  g_signal_connect_object (twp_monitor_get_instances (self->monitor), "items-changed",
                           G_CALLBACK (instances_changed_cb), self, 0);
}

static void
twp_application_activate (GApplication *application)
{
  TwpApplication *self = TWP_APPLICATION (application);
  GtkWindow *window = gtk_application_get_active_window (GTK_APPLICATION (self));

  /* Single instance: a second launch lands here in the first process. */
  if (window == NULL)
    window = GTK_WINDOW (twp_window_new (GTK_APPLICATION (self), self->monitor));
  gtk_window_present (window);
}

static void
twp_application_shutdown (GApplication *application)
{
  TwpApplication *self = TWP_APPLICATION (application);

  if (self->monitor != NULL)
    g_signal_handlers_disconnect_by_data (twp_monitor_get_instances (self->monitor), self);
  g_clear_pointer (&self->watches, g_hash_table_unref);
  g_clear_object (&self->monitor);
  g_clear_object (&self->settings);
  G_APPLICATION_CLASS (twp_application_parent_class)->shutdown (application);
}

static void
twp_application_finalize (GObject *object)
{
  TwpApplication *self = TWP_APPLICATION (object);

  /* Never started (or never shut down): still ours to free. */
  g_clear_pointer (&self->watches, g_hash_table_unref);
  g_clear_object (&self->monitor);
  g_clear_object (&self->settings);
  G_OBJECT_CLASS (twp_application_parent_class)->finalize (object);
}

static void
twp_application_class_init (TwpApplicationClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GApplicationClass *app_class = G_APPLICATION_CLASS (klass);

  object_class->finalize = twp_application_finalize;

  app_class->startup = twp_application_startup;
  app_class->activate = twp_application_activate;
  app_class->shutdown = twp_application_shutdown;
}

static void
twp_application_init (TwpApplication *self)
{
  self->watches = g_hash_table_new_full (NULL, NULL, g_object_unref, state_watch_free);
}

TwpApplication *
twp_application_new (void)
{
  return g_object_new (TWP_TYPE_APPLICATION,
                       "application-id", TWP_APPLICATION_ID,
                       "flags", G_APPLICATION_DEFAULT_FLAGS,
                       "resource-base-path", "/io/github/TorWebSocketProxy",
                       NULL);
}
