/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-applet"

#include "config.h"

#include "twp-instance.h"

#include "twp-status-text.h"

#define ROOT_PATH "/io/github/TorWebSocketProxy1"

struct _TwpInstance
{
  GObject parent_instance;

  /* owned */
  char *bus_name;
  GDBusObjectManager *manager;
  TwpDBusTransport *transport;
  GListStore *bridges;          /* TwpDBusBridge */
  GTask *init_task;             /* until the Transport object is seen */
};

G_DEFINE_FINAL_TYPE (TwpInstance, twp_instance, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_BUS_NAME,
  PROP_TRANSPORT,
  PROP_BRIDGES,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void
add_object (TwpInstance *self,
            GDBusObject *object)
{
  g_autoptr(TwpDBusTransport) transport = twp_dbus_object_get_transport (TWP_DBUS_OBJECT (object));
  g_autoptr(TwpDBusBridge) bridge = twp_dbus_object_get_bridge (TWP_DBUS_OBJECT (object));

  if (transport != NULL && self->transport == NULL)
    {
      self->transport = g_steal_pointer (&transport);
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_TRANSPORT]);
      if (self->init_task != NULL)
        {
          g_autoptr(GTask) task = g_steal_pointer (&self->init_task);

          g_task_return_pointer (task, g_object_ref (self), g_object_unref);
        }
    }
  if (bridge != NULL)
    g_list_store_append (self->bridges, bridge);
}

static void
object_added_cb (GDBusObjectManager *manager,
                 GDBusObject        *object,
                 TwpInstance        *self)
{
  add_object (self, object);
}

static void
object_removed_cb (GDBusObjectManager *manager,
                   GDBusObject        *object,
                   TwpInstance        *self)
{
  g_autoptr(TwpDBusBridge) bridge = twp_dbus_object_get_bridge (TWP_DBUS_OBJECT (object));
  guint position;

  if (bridge != NULL && g_list_store_find (self->bridges, bridge, &position))
    g_list_store_remove (self->bridges, position);
}

static void
manager_ready_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  g_autoptr(TwpInstance) self = user_data;
  g_autoptr(GError) error = NULL;
  GList *objects;

  self->manager = twp_dbus_object_manager_client_new_finish (result, &error);
  if (self->manager == NULL)
    {
      g_autoptr(GTask) task = g_steal_pointer (&self->init_task);

      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  g_signal_connect_object (self->manager, "object-added", G_CALLBACK (object_added_cb), self, 0);
  g_signal_connect_object (self->manager, "object-removed", G_CALLBACK (object_removed_cb), self, 0);

  objects = g_dbus_object_manager_get_objects (self->manager);
  for (GList *l = objects; l != NULL; l = l->next)
    add_object (self, l->data);
  g_list_free_full (objects, g_object_unref);
  /* The service exports its objects before it owns the name, so the
   * Transport object is there from the start or never. */
  if (self->init_task != NULL)
    {
      g_autoptr(GTask) task = g_steal_pointer (&self->init_task);

      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                               "%s exports no Transport object", self->bus_name);
    }
}

static void
twp_instance_dispose (GObject *object)
{
  TwpInstance *self = TWP_INSTANCE (object);

  g_clear_object (&self->manager);
  g_clear_object (&self->transport);
  if (self->bridges != NULL)
    g_list_store_remove_all (self->bridges);
  G_OBJECT_CLASS (twp_instance_parent_class)->dispose (object);
}

static void
twp_instance_finalize (GObject *object)
{
  TwpInstance *self = TWP_INSTANCE (object);

  g_assert (self->init_task == NULL);
  g_clear_object (&self->bridges);
  g_free (self->bus_name);
  G_OBJECT_CLASS (twp_instance_parent_class)->finalize (object);
}

static void
twp_instance_get_property (GObject    *object,
                           guint       prop_id,
                           GValue     *value,
                           GParamSpec *pspec)
{
  TwpInstance *self = TWP_INSTANCE (object);

  switch (prop_id)
    {
    case PROP_BUS_NAME:
      g_value_set_string (value, self->bus_name);
      break;
    case PROP_TRANSPORT:
      g_value_set_object (value, self->transport);
      break;
    case PROP_BRIDGES:
      g_value_set_object (value, self->bridges);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
twp_instance_class_init (TwpInstanceClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = twp_instance_dispose;
  object_class->finalize = twp_instance_finalize;
  object_class->get_property = twp_instance_get_property;

  properties[PROP_BUS_NAME] =
    g_param_spec_string ("bus-name", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);
  properties[PROP_TRANSPORT] =
    g_param_spec_object ("transport", NULL, NULL, TWP_DBUS_TYPE_TRANSPORT,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);
  properties[PROP_BRIDGES] =
    g_param_spec_object ("bridges", NULL, NULL, G_TYPE_LIST_MODEL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);
  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
twp_instance_init (TwpInstance *self)
{
  self->bridges = g_list_store_new (TWP_DBUS_TYPE_BRIDGE);
}

void
twp_instance_new_async (GDBusConnection     *connection,
                        const char          *bus_name,
                        GCancellable        *cancellable,
                        GAsyncReadyCallback  callback,
                        gpointer             user_data)
{
  TwpInstance *self;

  g_return_if_fail (G_IS_DBUS_CONNECTION (connection));
  g_return_if_fail (bus_name != NULL);

  self = g_object_new (TWP_TYPE_INSTANCE, NULL);
  self->bus_name = g_strdup (bus_name);
  self->init_task = g_task_new (NULL, cancellable, callback, user_data);
  g_task_set_source_tag (self->init_task, twp_instance_new_async);
  /* DO_NOT_AUTO_START: a vanished transport must not be activated. The
   * reference passes to manager_ready_cb. */
  twp_dbus_object_manager_client_new (connection,
                                      G_DBUS_OBJECT_MANAGER_CLIENT_FLAGS_DO_NOT_AUTO_START,
                                      bus_name, ROOT_PATH, cancellable,
                                      manager_ready_cb, self);
}

TwpInstance *
twp_instance_new_finish (GAsyncResult  *result,
                         GError       **error)
{
  g_return_val_if_fail (G_IS_TASK (result), NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

const char *
twp_instance_get_bus_name (TwpInstance *self)
{
  g_return_val_if_fail (TWP_IS_INSTANCE (self), NULL);

  return self->bus_name;
}

guint
twp_instance_get_pid (TwpInstance *self)
{
  g_return_val_if_fail (TWP_IS_INSTANCE (self), 0);

  return twp_status_pid_from_bus_name (self->bus_name);
}

TwpDBusTransport *
twp_instance_get_transport (TwpInstance *self)
{
  g_return_val_if_fail (TWP_IS_INSTANCE (self), NULL);

  return self->transport;
}

GListModel *
twp_instance_get_bridges (TwpInstance *self)
{
  g_return_val_if_fail (TWP_IS_INSTANCE (self), NULL);

  return G_LIST_MODEL (self->bridges);
}
