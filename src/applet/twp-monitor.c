/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-applet"

#include "config.h"

#include "twp-monitor.h"

#include <string.h>

struct _TwpMonitor
{
  GObject parent_instance;

  /* owned */
  GDBusConnection *connection;
  GCancellable *cancellable;
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

static void
twp_monitor_constructed (GObject *object)
{
  TwpMonitor *self = TWP_MONITOR (object);

  G_OBJECT_CLASS (twp_monitor_parent_class)->constructed (object);

  if (self->connection == NULL)
    return;
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
  if (self->name_owner_changed_id != 0)
    {
      g_dbus_connection_signal_unsubscribe (self->connection, self->name_owner_changed_id);
      self->name_owner_changed_id = 0;
    }
  g_hash_table_remove_all (self->pending);
  g_list_store_remove_all (self->instances);
  g_clear_object (&self->connection);
  G_OBJECT_CLASS (twp_monitor_parent_class)->dispose (object);
}

static void
twp_monitor_finalize (GObject *object)
{
  TwpMonitor *self = TWP_MONITOR (object);

  g_clear_object (&self->cancellable);
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
