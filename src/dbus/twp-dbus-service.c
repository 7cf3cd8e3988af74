/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-dbus"

#include "config.h"

#include "twp-dbus-service.h"

#include <unistd.h>

#include "twp-dbus-bridge.h"
#include "twp-dbus-error.h"
#include "twp-dbus-generated.h"
#include "twp-dbus-transport.h"
#include "twp-log.h"

/* instance<PID>, then instance<PID>_1 ... when taken (PID namespaces). */
#define MAX_NAME_ATTEMPTS 16
/* From the D-Bus specification (RequestName). */
#define DBUS_NAME_FLAG_DO_NOT_QUEUE 4
#define DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER 1
/* After the bus goes away: try its address again after 1 s, doubling up
 * to a minute, so that a bus that stays away costs next to nothing. */
#define RECONNECT_MIN_MS 1000
#define RECONNECT_MAX_MS 60000

struct _TwpDBusService
{
  GObject parent_instance;

  /* owned */
  TwpClient *client;             /* exactly one of client and server */
  TwpServer *server;
  GSettings *settings;           /* NULL without the schema or a session bus */
  TwpDBusTransportImpl *transport;
  GDBusObjectManagerServer *manager;
  GHashTable *bridge_objects;    /* TwpBridge* -> TwpDBusObjectSkeleton* */
  GPtrArray *bridge_order;       /* TwpBridge, as in the client's list model */
  GSource *counters_timer;       /* copies every bridge's counters once a second */
  GCancellable *cancellable;
  GDBusConnection *connection;   /* NULL until connected, and after stop */
  char *name;                    /* the name owned or being asked for */
  char *address;                 /* the session bus's, kept to come back to it */
  GSource *reconnect_timer;      /* while the bus is away */
  guint reconnect_ms;            /* 0: not reconnecting */

  guint name_lost_id;            /* NameLost subscription while the name is ours */
  guint name_attempt;
  gboolean name_acquired;
  gboolean started;
  gboolean stopped;
};

G_DEFINE_FINAL_TYPE (TwpDBusService, twp_dbus_service, G_TYPE_OBJECT)

/* ---- finding the bus --------------------------------------------------- */

char *
twp_dbus_session_bus_address (void)
{
  const char *env = g_getenv ("DBUS_SESSION_BUS_ADDRESS");
  const char *runtime_dir = g_getenv ("XDG_RUNTIME_DIR");

  if (env != NULL && *env != '\0')
    {
      g_auto(GStrv) entries = g_strsplit (env, ";", -1);
      g_autoptr(GPtrArray) kept = g_ptr_array_new ();

      /* An autolaunch: entry would spawn a bus: never. */
      for (char **entry = entries; *entry != NULL; entry++)
        if (**entry != '\0' && !g_str_has_prefix (*entry, "autolaunch:"))
          g_ptr_array_add (kept, *entry);
      if (kept->len == 0)
        return NULL;
      g_ptr_array_add (kept, NULL);
      return g_strjoinv (";", (char **) kept->pdata);
    }

  if (runtime_dir != NULL && g_path_is_absolute (runtime_dir))
    {
      g_autofree char *path = g_build_filename (runtime_dir, "bus", NULL);
      g_autofree char *escaped = NULL;

      if (!g_file_test (path, G_FILE_TEST_EXISTS) || g_file_test (path, G_FILE_TEST_IS_DIR))
        return NULL;
      escaped = g_dbus_address_escape_value (path);
      return g_strdup_printf ("unix:path=%s", escaped);
    }
  return NULL;
}

static GSettings *
stored_settings_new (void)
{
  g_autofree char *address = twp_dbus_session_bus_address ();
  GSettingsSchemaSource *source;
  g_autoptr(GSettingsSchema) schema = NULL;

  /* Without a session bus there is no desktop user to remember a choice,
   * and the dconf backend would try to reach (or autolaunch) a bus. */
  if (address == NULL)
    return NULL;
  source = g_settings_schema_source_get_default ();
  if (source == NULL)
    return NULL;
  schema = g_settings_schema_source_lookup (source, TWP_DBUS_SETTINGS_SCHEMA, TRUE);
  if (schema == NULL || !g_settings_schema_has_key (schema, "frame-mode"))
    return NULL;
  return g_settings_new_full (schema, NULL, NULL);
}

static void
settings_changed_cb (GSettings  *settings,
                     const char *key,
                     gpointer    user_data)
{
  TwpDBusService *self = user_data;
  TwpFrameMode mode = g_settings_get_enum (settings, "frame-mode") == TWP_FRAME_MODE_BASE64
                      ? TWP_FRAME_MODE_BASE64 : TWP_FRAME_MODE_BINARY;

  /* The status app (or another transport) changed the user's choice. */
  if (self->client != NULL && twp_client_get_frame_mode (self->client) != mode)
    {
      twp_client_set_frame_mode (self->client, mode);
      twp_log_user (TWP_LOG_INFO, "frame mode of new connections set to %s (stored choice)",
                    twp_frame_mode_to_string (mode));
    }
}

/* ---- bridges ----------------------------------------------------------- */

static void
export_bridge (TwpDBusService *self,
               TwpBridge      *bridge)
{
  g_autofree char *path = g_strconcat (TWP_DBUS_BRIDGE_PATH_PREFIX, twp_bridge_get_id (bridge), NULL);
  g_autoptr(TwpDBusObjectSkeleton) object = NULL;
  g_autoptr(TwpDBusBridgeImpl) impl = NULL;

  if (!g_variant_is_object_path (path))
    {
      g_debug ("bridge id %s is no object path element; not exported", twp_bridge_get_id (bridge));
      return;
    }
  impl = twp_dbus_bridge_impl_new (self->client, bridge);
  object = twp_dbus_object_skeleton_new (path);
  twp_dbus_object_skeleton_set_bridge (object, TWP_DBUS_BRIDGE (impl));
  /* Exported at once when connected (InterfacesAdded), else on connect. */
  g_dbus_object_manager_server_export (self->manager, G_DBUS_OBJECT_SKELETON (object));
  g_hash_table_insert (self->bridge_objects, g_object_ref (bridge), g_steal_pointer (&object));
}

static void
unexport_bridge (TwpDBusService        *self,
                 TwpDBusObjectSkeleton *object)
{
  g_autoptr(TwpDBusBridge) iface = twp_dbus_object_get_bridge (TWP_DBUS_OBJECT (object));

  if (iface != NULL)
    twp_dbus_bridge_impl_shutdown (TWP_DBUS_BRIDGE_IMPL (iface));
  g_dbus_object_manager_server_unexport (self->manager,
                                         g_dbus_object_get_object_path (G_DBUS_OBJECT (object)));
}

static gboolean
counters_timer_cb (gpointer user_data)
{
  TwpDBusService *self = user_data;
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, self->bridge_objects);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      g_autoptr(TwpDBusBridge) iface = twp_dbus_object_get_bridge (TWP_DBUS_OBJECT (value));

      if (iface != NULL)
        twp_dbus_bridge_impl_update_counters (TWP_DBUS_BRIDGE_IMPL (iface));
    }
  return G_SOURCE_CONTINUE;
}

/* Follows the client's list model: the bridges it adds are exported
 * (InterfacesAdded), those it forgets unexported (InterfacesRemoved). The
 * work is per changed bridge, never a walk over all of them. */
static void
bridges_changed_cb (GListModel *model,
                    guint       position,
                    guint       removed,
                    guint       added,
                    gpointer    user_data)
{
  TwpDBusService *self = TWP_DBUS_SERVICE (user_data);

  g_return_if_fail (position + removed <= self->bridge_order->len);

  for (guint i = position; i < position + removed; i++)
    {
      TwpBridge *bridge = g_ptr_array_index (self->bridge_order, i);
      TwpDBusObjectSkeleton *object = g_hash_table_lookup (self->bridge_objects, bridge);

      /* Not exported when its id made no object path. */
      if (object != NULL)
        {
          unexport_bridge (self, object);
          g_hash_table_remove (self->bridge_objects, bridge);
        }
    }
  g_ptr_array_remove_range (self->bridge_order, position, removed);

  for (guint i = position; i < position + added; i++)
    {
      g_autoptr(TwpBridge) bridge = g_list_model_get_item (model, i);

      g_ptr_array_insert (self->bridge_order, i, g_object_ref (bridge));
      export_bridge (self, bridge);
    }
}

/* ---- publishing -------------------------------------------------------- */

static void
unpublish (TwpDBusService *self)
{
  if (self->name_lost_id != 0)
    g_dbus_connection_signal_unsubscribe (self->connection, self->name_lost_id);
  self->name_lost_id = 0;
  if (self->connection != NULL)
    g_signal_handlers_disconnect_by_data (self->connection, self);
  self->name_acquired = FALSE;
  g_clear_pointer (&self->name, g_free);
  g_dbus_object_manager_server_set_connection (self->manager, NULL);
  /* Closing the connection also gives the name back. */
  if (self->connection != NULL)
    g_dbus_connection_close (self->connection, NULL, NULL, NULL);
  g_clear_object (&self->connection);
}

static void connect_to_bus (TwpDBusService *self);

static gboolean
reconnect_cb (gpointer user_data)
{
  TwpDBusService *self = user_data;

  g_clear_pointer (&self->reconnect_timer, g_source_unref);
  connect_to_bus (self);
  return G_SOURCE_REMOVE;
}

static void
schedule_reconnect (TwpDBusService *self)
{
  if (self->stopped || self->reconnect_timer != NULL)
    return;
  self->reconnect_ms = CLAMP (self->reconnect_ms * 2, RECONNECT_MIN_MS, RECONNECT_MAX_MS);
  self->reconnect_timer = g_timeout_source_new (self->reconnect_ms);
  g_source_set_static_name (self->reconnect_timer, "[twp] D-Bus reconnect");
  g_source_set_callback (self->reconnect_timer, reconnect_cb, self, NULL);
  g_source_attach (self->reconnect_timer, NULL);
}

static void
connection_closed_cb (GDBusConnection *connection,
                      gboolean         remote_peer_vanished,
                      GError          *error,
                      gpointer         user_data)
{
  TwpDBusService *self = user_data;

  /* The bus went away (the session ended, or its daemon restarted): the
   * transport goes on serving tor, unobserved, and comes back to the
   * same address when a bus answers there again. */
  twp_log_user (TWP_LOG_NOTICE, "D-Bus status unavailable: the session bus connection closed; "
                "publishing again when it returns");
  unpublish (self);
  schedule_reconnect (self);
}

static void
name_lost_cb (GDBusConnection *connection,
              const char      *sender,
              const char      *path,
              const char      *iface,
              const char      *member,
              GVariant        *parameters,
              gpointer         user_data)
{
  TwpDBusService *self = user_data;

  twp_log_user (TWP_LOG_NOTICE, "D-Bus status unavailable: lost the session bus name %s", self->name);
  unpublish (self);
}

static void own_next_name (TwpDBusService *self);

/* Owning the name by hand rather than with g_bus_own_name(): GLib 2.74
 * warns when it releases a name that DO_NOT_QUEUE never got, and
 * warnings must not be fatal to a transport. */
static void
request_name_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_autoptr(TwpDBusService) self = user_data;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GError) error = NULL;
  guint32 answer;

  reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (source), result, &error);
  if (self->stopped || self->connection == NULL || G_DBUS_CONNECTION (source) != self->connection)
    return;
  if (reply == NULL)
    {
      /* Refused by the bus's policy or AppArmor (AccessDenied): said
       * once at notice level, where tor's default log shows it, and
       * never asked again. */
      twp_log_user (TWP_LOG_NOTICE, "D-Bus status unavailable: the session bus refused the name %s "
                    "(bus policy or AppArmor); the transport works without it: %s",
                    self->name, error->message);
      unpublish (self);
      return;
    }

  g_variant_get (reply, "(u)", &answer);
  if (answer == DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER)
    {
      self->name_acquired = TRUE;
      self->name_lost_id = g_dbus_connection_signal_subscribe (self->connection, "org.freedesktop.DBus",
                                                               "org.freedesktop.DBus", "NameLost",
                                                               "/org/freedesktop/DBus", self->name,
                                                               G_DBUS_SIGNAL_FLAGS_NONE, name_lost_cb,
                                                               self, NULL);
      twp_log_user (TWP_LOG_INFO, "published on the session bus as %s", self->name);
      return;
    }
  /* Taken (another process in another PID namespace): next suffix. */
  if (self->name_attempt + 1 < MAX_NAME_ATTEMPTS)
    {
      self->name_attempt++;
      own_next_name (self);
      return;
    }
  twp_log_user (TWP_LOG_NOTICE, "D-Bus status unavailable: every session bus name for this process is taken");
  unpublish (self);
}

static void
own_next_name (TwpDBusService *self)
{
  g_free (self->name);
  if (self->name_attempt == 0)
    self->name = g_strdup_printf (TWP_DBUS_NAME_PREFIX "%d", (int) getpid ());
  else
    self->name = g_strdup_printf (TWP_DBUS_NAME_PREFIX "%d_%u", (int) getpid (), self->name_attempt);

  g_dbus_connection_call (self->connection, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                          "org.freedesktop.DBus", "RequestName",
                          g_variant_new ("(su)", self->name, DBUS_NAME_FLAG_DO_NOT_QUEUE),
                          G_VARIANT_TYPE ("(u)"), G_DBUS_CALL_FLAGS_NONE, -1, self->cancellable,
                          request_name_cb, g_object_ref (self));
}

static void
connection_ready_cb (GObject      *source,
                     GAsyncResult *result,
                     gpointer      user_data)
{
  g_autoptr(TwpDBusService) self = user_data;
  g_autoptr(GDBusConnection) connection = NULL;
  g_autoptr(GError) error = NULL;

  connection = g_dbus_connection_new_for_address_finish (result, &error);
  if (connection == NULL)
    {
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        return;
      /* Said once: the bus that went away is not back yet. */
      if (self->reconnect_ms > 0)
        {
          twp_log_user (TWP_LOG_DEBUG, "the session bus is not back yet: %s", error->message);
          schedule_reconnect (self);
          return;
        }
      twp_log_user (TWP_LOG_NOTICE, "D-Bus status unavailable: cannot connect to the session bus "
                    "(bus policy or AppArmor?): %s", error->message);
      return;
    }
  if (self->stopped)
    {
      g_dbus_connection_close (connection, NULL, NULL, NULL);
      return;
    }
  if (self->reconnect_ms > 0)
    {
      twp_log_user (TWP_LOG_NOTICE, "D-Bus status available again: the session bus is back");
      self->reconnect_ms = 0;
    }

  self->connection = g_steal_pointer (&connection);
  g_signal_connect (self->connection, "closed", G_CALLBACK (connection_closed_cb), self);
  /* Export every object first, then own the name: whoever sees the name
   * finds the objects. */
  g_dbus_object_manager_server_set_connection (self->manager, self->connection);
  self->name_attempt = 0;
  own_next_name (self);
}

static void
connect_to_bus (TwpDBusService *self)
{
  /* Our own connection, not the shared singleton: g_bus_get() could
   * autolaunch a bus and would exit the process when the bus goes away. */
  g_dbus_connection_new_for_address (self->address,
                                     G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                                     G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
                                     NULL, self->cancellable, connection_ready_cb, g_object_ref (self));
}

void
twp_dbus_service_start (TwpDBusService *self)
{
  g_return_if_fail (TWP_IS_DBUS_SERVICE (self));
  g_return_if_fail (!self->started);

  self->started = TRUE;
  self->address = twp_dbus_session_bus_address ();
  if (self->address == NULL)
    {
      twp_log_user (TWP_LOG_INFO, "no session bus; not published on D-Bus");
      return;
    }
  connect_to_bus (self);
}

void
twp_dbus_service_stop (TwpDBusService *self)
{
  GHashTableIter iter;
  gpointer value;

  g_return_if_fail (TWP_IS_DBUS_SERVICE (self));

  if (self->stopped)
    return;
  self->stopped = TRUE;
  g_cancellable_cancel (self->cancellable);
  if (self->client != NULL)
    g_signal_handlers_disconnect_by_func (twp_client_get_bridges (self->client), bridges_changed_cb, self);
  if (self->settings != NULL)
    g_signal_handlers_disconnect_by_func (self->settings, settings_changed_cb, self);
  g_hash_table_iter_init (&iter, self->bridge_objects);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    unexport_bridge (self, value);
  g_hash_table_remove_all (self->bridge_objects);
  g_ptr_array_set_size (self->bridge_order, 0);
  if (self->counters_timer != NULL)
    g_source_destroy (self->counters_timer);
  g_clear_pointer (&self->counters_timer, g_source_unref);
  if (self->reconnect_timer != NULL)
    g_source_destroy (self->reconnect_timer);
  g_clear_pointer (&self->reconnect_timer, g_source_unref);
  unpublish (self);
}

const char *
twp_dbus_service_get_name (TwpDBusService *self)
{
  g_return_val_if_fail (TWP_IS_DBUS_SERVICE (self), NULL);
  return self->name_acquired ? self->name : NULL;
}

/* ---- object ------------------------------------------------------------ */

static void
twp_dbus_service_dispose (GObject *object)
{
  TwpDBusService *self = TWP_DBUS_SERVICE (object);

  twp_dbus_service_stop (self);
  g_clear_object (&self->manager);
  g_clear_object (&self->transport);
  g_clear_object (&self->settings);
  g_clear_object (&self->client);
  g_clear_object (&self->server);

  G_OBJECT_CLASS (twp_dbus_service_parent_class)->dispose (object);
}

static void
twp_dbus_service_finalize (GObject *object)
{
  TwpDBusService *self = TWP_DBUS_SERVICE (object);

  g_hash_table_unref (self->bridge_objects);
  g_ptr_array_unref (self->bridge_order);
  g_object_unref (self->cancellable);
  g_free (self->name);
  g_free (self->address);

  G_OBJECT_CLASS (twp_dbus_service_parent_class)->finalize (object);
}

static void
twp_dbus_service_class_init (TwpDBusServiceClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = twp_dbus_service_dispose;
  object_class->finalize = twp_dbus_service_finalize;
}

static void
twp_dbus_service_init (TwpDBusService *self)
{
  /* Registers the error names before any reply can carry them. */
  (void) TWP_DBUS_ERROR;
  self->cancellable = g_cancellable_new ();
  self->manager = g_dbus_object_manager_server_new (TWP_DBUS_ROOT_PATH);
  self->bridge_objects = g_hash_table_new_full (NULL, NULL, g_object_unref, g_object_unref);
  self->bridge_order = g_ptr_array_new_with_free_func (g_object_unref);
}

static void
export_transport (TwpDBusService *self)
{
  g_autoptr(TwpDBusObjectSkeleton) object = twp_dbus_object_skeleton_new (TWP_DBUS_TRANSPORT_PATH);

  twp_dbus_object_skeleton_set_transport (object, TWP_DBUS_TRANSPORT (self->transport));
  g_dbus_object_manager_server_export (self->manager, G_DBUS_OBJECT_SKELETON (object));
}

TwpDBusService *
twp_dbus_service_new_for_client (TwpClient  *client,
                                 const char *state_location,
                                 gboolean    follow_stored_mode)
{
  TwpDBusService *self;

  g_return_val_if_fail (TWP_IS_CLIENT (client), NULL);

  self = g_object_new (TWP_TYPE_DBUS_SERVICE, NULL);
  self->client = g_object_ref (client);
  self->settings = stored_settings_new ();
  if (self->settings != NULL && follow_stored_mode)
    {
      /* Before the main loop runs, so before tor's first connection. */
      settings_changed_cb (self->settings, "frame-mode", self);
      g_signal_connect (self->settings, "changed::frame-mode", G_CALLBACK (settings_changed_cb), self);
    }
  self->transport = twp_dbus_transport_impl_new_for_client (client, state_location, self->settings);
  export_transport (self);
  bridges_changed_cb (twp_client_get_bridges (client), 0, 0,
                      g_list_model_get_n_items (twp_client_get_bridges (client)), self);
  g_signal_connect (twp_client_get_bridges (client), "items-changed", G_CALLBACK (bridges_changed_cb), self);
  self->counters_timer = g_timeout_source_new_seconds (1);
  g_source_set_static_name (self->counters_timer, "[twp] D-Bus bridge counters");
  g_source_set_callback (self->counters_timer, counters_timer_cb, self, NULL);
  g_source_attach (self->counters_timer, NULL);
  return self;
}

TwpDBusService *
twp_dbus_service_new_for_server (TwpServer  *server,
                                 const char *state_location)
{
  TwpDBusService *self;

  g_return_val_if_fail (TWP_IS_SERVER (server), NULL);

  self = g_object_new (TWP_TYPE_DBUS_SERVICE, NULL);
  self->server = g_object_ref (server);
  self->transport = twp_dbus_transport_impl_new_for_server (server, state_location);
  export_transport (self);
  return self;
}
