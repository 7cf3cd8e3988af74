/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-applet"

#include "config.h"

#include "twp-monitor.h"

#include <string.h>

/* After the bus goes away: look for it again after 1 s, doubling up to
 * 30 s, so that a session bus that restarts is followed at once and one
 * that stays away costs nothing. */
#define RECONNECT_MIN_MS 1000
#define RECONNECT_MAX_MS 30000

struct _TwpMonitor
{
  GObject parent_instance;

  /* owned */
  GDBusConnection *connection;  /* NULL while the bus is away */
  char *address;                /* where to find the bus again; NULL: never */
  GCancellable *cancellable;    /* this connection's calls; renewed on each */
  GSource *reconnect_timer;
  guint reconnect_ms;
  guint name_owner_changed_id;
  GListStore *instances;        /* TwpInstance, in the order they became ready */
  /* bus name -> GCancellable of a pending twp_instance_new_async: a name
   * that vanishes before its proxies are ready is dropped silently */
  GHashTable *pending;
};

G_DEFINE_FINAL_TYPE (TwpMonitor, twp_monitor, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_CONNECTION,
  PROP_ADDRESS,
  PROP_INSTANCES,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static gboolean
is_instance_name (const char *name)
{
  return name != NULL && g_str_has_prefix (name, TWP_MONITOR_NAME_PREFIX) &&
         g_dbus_is_name (name) && !g_dbus_is_unique_name (name);
}

static gboolean
find_instance (TwpMonitor *self,
               const char *name,
               guint      *position)
{
  guint n = g_list_model_get_n_items (G_LIST_MODEL (self->instances));

  for (guint i = 0; i < n; i++)
    {
      g_autoptr(TwpInstance) instance = g_list_model_get_item (G_LIST_MODEL (self->instances), i);

      if (g_strcmp0 (twp_instance_get_bus_name (instance), name) == 0)
        {
          *position = i;
          return TRUE;
        }
    }
  return FALSE;
}

static void
instance_ready_cb (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  g_autoptr(TwpMonitor) self = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(TwpInstance) instance = twp_instance_new_finish (result, &error);
  guint position;

  if (instance == NULL)
    {
      GCancellable *cancellable = g_task_get_cancellable (G_TASK (result));
      GHashTableIter iter;
      gpointer value;

      /* A cancelled one was already removed from pending; forget a failed
       * one so that its next NameOwnerChanged tries again. */
      g_hash_table_iter_init (&iter, self->pending);
      while (g_hash_table_iter_next (&iter, NULL, &value))
        if (value == cancellable)
          g_hash_table_iter_remove (&iter);
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_debug ("Ignoring a transport: %s", error->message);
      return;
    }
  g_hash_table_remove (self->pending, twp_instance_get_bus_name (instance));
  if (find_instance (self, twp_instance_get_bus_name (instance), &position))
    return;
  /* The window sorts them into sections by origin itself. */
  g_list_store_append (self->instances, instance);
}

static void
add_name (TwpMonitor *self,
          const char *name)
{
  GCancellable *cancellable;
  guint position;

  if (g_hash_table_contains (self->pending, name) || find_instance (self, name, &position))
    return;
  cancellable = g_cancellable_new ();
  g_hash_table_insert (self->pending, g_strdup (name), cancellable);
  twp_instance_new_async (self->connection, name, cancellable, instance_ready_cb, g_object_ref (self));
}

static void
remove_name (TwpMonitor *self,
             const char *name)
{
  GCancellable *cancellable = g_hash_table_lookup (self->pending, name);
  guint position;

  if (cancellable != NULL)
    {
      g_cancellable_cancel (cancellable);
      g_hash_table_remove (self->pending, name);
    }
  if (find_instance (self, name, &position))
    g_list_store_remove (self->instances, position);
}

static void
name_owner_changed_cb (GDBusConnection *connection,
                       const char      *sender_name,
                       const char      *object_path,
                       const char      *interface_name,
                       const char      *signal_name,
                       GVariant        *parameters,
                       gpointer         user_data)
{
  TwpMonitor *self = user_data;
  const char *name;
  const char *old_owner;
  const char *new_owner;

  if (!g_variant_is_of_type (parameters, G_VARIANT_TYPE ("(sss)")))
    return;
  g_variant_get (parameters, "(&s&s&s)", &name, &old_owner, &new_owner);
  if (!is_instance_name (name))
    return;
  if (*old_owner != '\0')
    remove_name (self, name);
  if (*new_owner != '\0')
    add_name (self, name);
}

static void
list_names_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  g_autoptr(TwpMonitor) self = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (source), result, &error);
  g_autoptr(GVariantIter) iter = NULL;
  const char *name;

  if (reply == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_message ("Cannot list the transports on the session bus: %s", error->message);
      return;
    }
  g_variant_get (reply, "(as)", &iter);
  while (g_variant_iter_next (iter, "&s", &name))
    if (is_instance_name (name))
      add_name (self, name);
}

static void watch_bus (TwpMonitor *self);
static void schedule_reconnect (TwpMonitor *self);

static void
bus_ready_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(TwpMonitor) self = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GDBusConnection) connection = g_dbus_connection_new_for_address_finish (result, &error);

  if (connection == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        {
          g_debug ("The session bus is not back yet: %s", error->message);
          schedule_reconnect (self);
        }
      return;
    }
  g_message ("The session bus is back: following the transports again");
  self->reconnect_ms = 0;
  self->connection = g_steal_pointer (&connection);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CONNECTION]);
  watch_bus (self);
}

static gboolean
reconnect_cb (gpointer user_data)
{
  TwpMonitor *self = user_data;

  g_clear_pointer (&self->reconnect_timer, g_source_unref);
  g_dbus_connection_new_for_address (self->address,
                                     G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                                     G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
                                     NULL, self->cancellable, bus_ready_cb, g_object_ref (self));
  return G_SOURCE_REMOVE;
}

static void
schedule_reconnect (TwpMonitor *self)
{
  if (self->address == NULL || self->reconnect_timer != NULL || g_cancellable_is_cancelled (self->cancellable))
    return;
  self->reconnect_ms = CLAMP (self->reconnect_ms * 2, RECONNECT_MIN_MS, RECONNECT_MAX_MS);
  self->reconnect_timer = g_timeout_source_new (self->reconnect_ms);
  g_source_set_static_name (self->reconnect_timer, "[twp] session bus reconnect");
  g_source_set_callback (self->reconnect_timer, reconnect_cb, self, NULL);
  g_source_attach (self->reconnect_timer, NULL);
}

static void
unwatch_bus (TwpMonitor *self)
{
  if (self->connection == NULL)
    return;
  if (self->name_owner_changed_id != 0)
    g_dbus_connection_signal_unsubscribe (self->connection, self->name_owner_changed_id);
  self->name_owner_changed_id = 0;
  g_signal_handlers_disconnect_by_data (self->connection, self);
  g_hash_table_remove_all (self->pending);
  g_list_store_remove_all (self->instances);
  g_clear_object (&self->connection);
}

static void
connection_closed_cb (GDBusConnection *connection,
                      gboolean         remote_peer_vanished,
                      GError          *error,
                      gpointer         user_data)
{
  TwpMonitor *self = user_data;

  /* The session bus went away (its daemon restarted): every transport's
   * proxy is dead. Show none, and follow them again on the bus that
   * comes back at the same address; the transports publish there too. */
  g_message ("The session bus went away: waiting for it to return");
  unwatch_bus (self);
  g_cancellable_cancel (self->cancellable);
  g_clear_object (&self->cancellable);
  self->cancellable = g_cancellable_new ();
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CONNECTION]);
  schedule_reconnect (self);
}

/* The session bus address, as GDBus finds it, but never autolaunch:. */
static char *
session_bus_address (void)
{
  const char *env = g_getenv ("DBUS_SESSION_BUS_ADDRESS");
  const char *runtime_dir = g_getenv ("XDG_RUNTIME_DIR");

  if (env != NULL && *env != '\0')
    return strstr (env, "autolaunch:") == NULL ? g_strdup (env) : NULL;
  if (runtime_dir != NULL && g_path_is_absolute (runtime_dir))
    {
      g_autofree char *path = g_build_filename (runtime_dir, "bus", NULL);
      g_autofree char *escaped = g_dbus_address_escape_value (path);

      return g_strdup_printf ("unix:path=%s", escaped);
    }
  return NULL;
}

static void
twp_monitor_constructed (GObject *object)
{
  TwpMonitor *self = TWP_MONITOR (object);

  G_OBJECT_CLASS (twp_monitor_parent_class)->constructed (object);

  if (self->connection == NULL)
    return;
  if (self->address == NULL)
    self->address = session_bus_address ();
  /* GApplication's bus connection would end the app with the bus: the
   * window stays and follows the bus that comes back. GApplication itself
   * keeps the old connection (its name and its notifications are gone
   * until the app restarts); only the window follows. */
  g_dbus_connection_set_exit_on_close (self->connection, FALSE);
  watch_bus (self);
}

static void
watch_bus (TwpMonitor *self)
{
  g_signal_connect (self->connection, "closed", G_CALLBACK (connection_closed_cb), self);
  /* Subscribe first, then list: a name that appears in between is seen
   * twice, which add_name tolerates; none is missed. */
  self->name_owner_changed_id =
    g_dbus_connection_signal_subscribe (self->connection,
                                        "org.freedesktop.DBus",
                                        "org.freedesktop.DBus",
                                        "NameOwnerChanged",
                                        "/org/freedesktop/DBus",
                                        "io.github.TorWebSocketProxy1",
                                        G_DBUS_SIGNAL_FLAGS_MATCH_ARG0_NAMESPACE,
                                        name_owner_changed_cb, self, NULL);
  g_dbus_connection_call (self->connection,
                          "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                          "ListNames", NULL, G_VARIANT_TYPE ("(as)"),
                          G_DBUS_CALL_FLAGS_NONE, -1, self->cancellable,
                          list_names_cb, g_object_ref (self));
}

static void
cancel_pending (gpointer data)
{
  g_cancellable_cancel (data);
  g_object_unref (data);
}

static void
twp_monitor_dispose (GObject *object)
{
  TwpMonitor *self = TWP_MONITOR (object);

  g_cancellable_cancel (self->cancellable);
  if (self->reconnect_timer != NULL)
    g_source_destroy (self->reconnect_timer);
  g_clear_pointer (&self->reconnect_timer, g_source_unref);
  unwatch_bus (self);
  G_OBJECT_CLASS (twp_monitor_parent_class)->dispose (object);
}

static void
twp_monitor_finalize (GObject *object)
{
  TwpMonitor *self = TWP_MONITOR (object);

  g_clear_object (&self->cancellable);
  g_free (self->address);
  g_clear_pointer (&self->pending, g_hash_table_unref);
  g_clear_object (&self->instances);
  G_OBJECT_CLASS (twp_monitor_parent_class)->finalize (object);
}

static void
twp_monitor_get_property (GObject    *object,
                          guint       prop_id,
                          GValue     *value,
                          GParamSpec *pspec)
{
  TwpMonitor *self = TWP_MONITOR (object);

  switch (prop_id)
    {
    case PROP_CONNECTION:
      g_value_set_object (value, self->connection);
      break;
    case PROP_ADDRESS:
      g_value_set_string (value, self->address);
      break;
    case PROP_INSTANCES:
      g_value_set_object (value, self->instances);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
twp_monitor_set_property (GObject      *object,
                          guint         prop_id,
                          const GValue *value,
                          GParamSpec   *pspec)
{
  TwpMonitor *self = TWP_MONITOR (object);

  switch (prop_id)
    {
    case PROP_CONNECTION:
      self->connection = g_value_dup_object (value);
      break;
    case PROP_ADDRESS:
      self->address = g_value_dup_string (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
twp_monitor_class_init (TwpMonitorClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->constructed = twp_monitor_constructed;
  object_class->dispose = twp_monitor_dispose;
  object_class->finalize = twp_monitor_finalize;
  object_class->get_property = twp_monitor_get_property;
  object_class->set_property = twp_monitor_set_property;

  properties[PROP_CONNECTION] =
    g_param_spec_object ("connection", NULL, NULL, G_TYPE_DBUS_CONNECTION,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS |
                         G_PARAM_EXPLICIT_NOTIFY);
  /* Where the bus is found again after it goes away (default: the
   * session bus's address from the environment). */
  properties[PROP_ADDRESS] =
    g_param_spec_string ("address", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  properties[PROP_INSTANCES] =
    g_param_spec_object ("instances", NULL, NULL, G_TYPE_LIST_MODEL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);
  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
twp_monitor_init (TwpMonitor *self)
{
  self->cancellable = g_cancellable_new ();
  self->instances = g_list_store_new (TWP_TYPE_INSTANCE);
  self->pending = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, cancel_pending);
}

TwpMonitor *
twp_monitor_new (GDBusConnection *connection)
{
  g_return_val_if_fail (connection == NULL || G_IS_DBUS_CONNECTION (connection), NULL);

  return g_object_new (TWP_TYPE_MONITOR, "connection", connection, NULL);
}

GListModel *
twp_monitor_get_instances (TwpMonitor *self)
{
  g_return_val_if_fail (TWP_IS_MONITOR (self), NULL);

  return G_LIST_MODEL (self->instances);
}
