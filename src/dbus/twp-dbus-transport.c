/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-dbus"

#include "config.h"

#include "twp-dbus-transport.h"

#include <string.h>
#include <unistd.h>

#include "twp-dbus-error.h"
#include "twp-dbus-private.h"
#include "twp-log.h"

typedef struct {
  gint64 time;
  TwpLogSeverity severity;
  char *message;
} Event;

struct _TwpDBusTransportImpl
{
  TwpDBusTransportSkeleton parent_instance;

  /* owned */
  TwpClient *client;             /* exactly one of client and server */
  TwpServer *server;
  GSettings *settings;           /* NULL: the choice is not stored */
  GPtrArray *bindings;           /* GBinding*, core -> skeleton */
  GQueue events;                 /* Event*, oldest first, at most TWP_DBUS_TRANSPORT_MAX_EVENTS */
  GSource *counters_timer;
  guint log_sink_id;
};

static void twp_dbus_transport_iface_init (TwpDBusTransportIface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (TwpDBusTransportImpl, twp_dbus_transport_impl,
                               TWP_DBUS_TYPE_TRANSPORT_SKELETON,
                               G_IMPLEMENT_INTERFACE (TWP_DBUS_TYPE_TRANSPORT,
                                                      twp_dbus_transport_iface_init))

static void
event_free (Event *event)
{
  g_free (event->message);
  g_free (event);
}

/* ---- origin ------------------------------------------------------------ */

static gboolean
looks_like_tor_browser (const char *path)
{
  g_autofree char *lower = NULL;

  if (path == NULL)
    return FALSE;
  lower = g_ascii_strdown (path, -1);
  return strstr (lower, "tor-browser") != NULL || strstr (lower, "torbrowser") != NULL;
}

const char *
twp_dbus_origin_hint (const char *state_location,
                      pid_t       parent_pid)
{
  g_autofree char *exe_link = NULL;
  g_autofree char *exe = NULL;

  if (looks_like_tor_browser (state_location))
    return "tor-browser";
  if (parent_pid > 1)
    {
      exe_link = g_strdup_printf ("/proc/%d/exe", (int) parent_pid);
      /* Unreadable for another user's process: then it is no hint. */
      exe = g_file_read_link (exe_link, NULL);
      if (looks_like_tor_browser (exe))
        return "tor-browser";
    }
  if (state_location != NULL &&
      (g_str_equal (state_location, "/var/lib/tor") || g_str_has_prefix (state_location, "/var/lib/tor/")))
    return "system-tor";
  return "other";
}

/* ---- transforms (core property -> D-Bus property) ---------------------- */

static void
bind (TwpDBusTransportImpl   *self,
      gpointer                source,
      const char             *source_property,
      const char             *target_property,
      GBindingTransformFunc   transform)
{
  GBinding *binding;

  binding = g_object_bind_property_full (source, source_property, self, target_property,
                                         G_BINDING_SYNC_CREATE, transform, NULL, NULL, NULL);
  g_ptr_array_add (self->bindings, g_object_ref (binding));
}

/* ---- counters ---------------------------------------------------------- */

static void
read_counters (TwpDBusTransportImpl *self,
               guint64              *sent,
               guint64              *received)
{
  *sent = 0;
  *received = 0;
  if (self->server != NULL)
    {
      *sent = twp_server_get_bytes_to_ws (self->server);
      *received = twp_server_get_bytes_from_ws (self->server);
    }
  else
    {
      /* The client's own totals: forgotten bridges still count, and no
       * walk over the bridges on each state change. */
      *sent = twp_client_get_bytes_sent (self->client);
      *received = twp_client_get_bytes_received (self->client);
    }
}

static void
update_counters (TwpDBusTransportImpl *self)
{
  TwpDBusTransport *iface = TWP_DBUS_TRANSPORT (self);
  guint64 sent, received;

  read_counters (self, &sent, &received);
  /* Setting a skeleton property queues PropertiesChanged: only on change. */
  if (twp_dbus_transport_get_bytes_sent (iface) != sent)
    twp_dbus_transport_set_bytes_sent (iface, sent);
  if (twp_dbus_transport_get_bytes_received (iface) != received)
    twp_dbus_transport_set_bytes_received (iface, received);
}

static gboolean
counters_timer_cb (gpointer user_data)
{
  update_counters (TWP_DBUS_TRANSPORT_IMPL (user_data));
  return G_SOURCE_CONTINUE;
}

static void
state_cb (GObject    *object,
          GParamSpec *pspec,
          gpointer    user_data)
{
  /* With a state change, the counters go out in the same signal. */
  update_counters (TWP_DBUS_TRANSPORT_IMPL (user_data));
}

/* ---- events ------------------------------------------------------------ */

static void
log_sink_cb (TwpLogSeverity  severity,
             const char     *message,
             gpointer        user_data)
{
  TwpDBusTransportImpl *self = user_data;
  Event *event;

  /* Debug messages are per-connection chatter: not for users. */
  if (severity > TWP_LOG_INFO)
    return;

  event = g_new0 (Event, 1);
  event->time = g_get_real_time () / G_USEC_PER_SEC;
  event->severity = severity;
  event->message = g_strdup (message);
  g_queue_push_tail (&self->events, event);
  /* Bounded: the oldest entry goes. */
  while (self->events.length > TWP_DBUS_TRANSPORT_MAX_EVENTS)
    event_free (g_queue_pop_head (&self->events));

  twp_dbus_transport_emit_event (TWP_DBUS_TRANSPORT (self), event->time, event->severity,
                                 twp_dbus_broadcast_text (event->message));
}

/* ---- methods ----------------------------------------------------------- */

static gboolean
handle_get_recent_events (TwpDBusTransport      *iface,
                          GDBusMethodInvocation *invocation)
{
  TwpDBusTransportImpl *self = TWP_DBUS_TRANSPORT_IMPL (iface);
  GVariantBuilder builder;

  g_variant_builder_init (&builder, G_VARIANT_TYPE ("a(xus)"));
  for (GList *l = self->events.head; l != NULL; l = l->next)
    {
      Event *event = l->data;

      g_variant_builder_add (&builder, "(xus)", event->time, (guint32) event->severity, event->message);
    }
  twp_dbus_transport_complete_get_recent_events (iface, invocation, g_variant_builder_end (&builder));
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static void
append_time (GString    *text,
             const char *label,
             gint64      unix_time)
{
  g_autoptr(GDateTime) time = NULL;
  g_autofree char *formatted = NULL;

  if (unix_time <= 0)
    {
      g_string_append_printf (text, "%s: never\n", label);
      return;
    }
  time = g_date_time_new_from_unix_utc (unix_time);
  formatted = time != NULL ? g_date_time_format_iso8601 (time) : g_strdup ("?");
  g_string_append_printf (text, "%s: %s\n", label, formatted);
}

static const char *
severity_to_string (TwpLogSeverity severity)
{
  static const char *const names[] = { "error", "warning", "notice", "info", "debug" };

  return (guint) severity < G_N_ELEMENTS (names) ? names[severity] : "?";
}

static void
append_bridge (GString   *text,
               TwpBridge *bridge,
               guint      number,
               gboolean   unredacted,
               gboolean   withhold_free_text)
{
  const char *details = twp_bridge_get_last_failure_details (bridge);

  /* The id is a hash of the bridge line: whoever holds a list of bridge
   * lines could match it, so a redacted report numbers bridges instead. */
  if (unredacted)
    g_string_append_printf (text, "\nbridge %u (%s)\n", number, twp_bridge_get_id (bridge));
  else
    g_string_append_printf (text, "\nbridge %u\n", number);
  if (unredacted)
    {
      g_autofree char *url = twp_bridge_dup_url (bridge);

      g_string_append_printf (text, "  url: %s\n", url);
    }
  else
    {
      g_string_append (text, "  url: [redacted]\n");
    }
  g_string_append_printf (text, "  state: %s\n", twp_bridge_state_to_string (twp_bridge_get_state (bridge)));
  g_string_append_printf (text, "  phase: %s\n", twp_dial_phase_to_string (twp_bridge_get_phase (bridge)));
  g_string_append_printf (text, "  frame mode: %s%s\n",
                          twp_frame_mode_to_string (twp_bridge_get_frame_mode (bridge)),
                          twp_bridge_get_mode_pinned (bridge) ? " (pinned by mode=)" : "");
  g_string_append_printf (text, "  attempts: %" G_GUINT64_FORMAT ", failures: %" G_GUINT64_FORMAT
                          ", open: %u\n",
                          twp_bridge_get_attempts (bridge), twp_bridge_get_failures (bridge),
                          twp_bridge_get_active_connections (bridge));
  g_string_append_printf (text, "  bytes sent: %" G_GUINT64_FORMAT ", received: %" G_GUINT64_FORMAT "\n",
                          twp_bridge_get_bytes_sent (bridge), twp_bridge_get_bytes_received (bridge));
  if (twp_bridge_get_rtt_us (bridge) >= 0)
    g_string_append_printf (text, "  rtt: %" G_GINT64_FORMAT " us\n", twp_bridge_get_rtt_us (bridge));
  append_time (text, "  last success", twp_bridge_get_last_success_time (bridge));
  append_time (text, "  last failure", twp_bridge_get_last_failure_time (bridge));
  if (twp_bridge_get_last_failure_time (bridge) > 0)
    g_string_append_printf (text, "  last failure reason: %s (%s)\n",
                            twp_failure_reason_to_string (twp_bridge_get_last_failure_reason (bridge)),
                            withhold_free_text ? "[redacted]" : (details != NULL ? details : ""));
}

static char *
build_diagnostics (TwpDBusTransportImpl *self,
                   gboolean              unredacted)
{
  TwpDBusTransport *iface = TWP_DBUS_TRANSPORT (self);
  GString *text = g_string_new (NULL);
  /* With unsafe logging, messages may carry addresses: a redacted report
   * leaves them out. */
  gboolean withhold_free_text = !unredacted && twp_log_get_unsafe ();
  const char *details = NULL;
  guint64 sent, received;

  read_counters (self, &sent, &received);
  g_string_append_printf (text, "%s %s (%s)\n", PACKAGE_NAME, twp_dbus_transport_get_version (iface),
                          twp_dbus_transport_get_role (iface));
  g_string_append_printf (text, "report: %s\n", unredacted ? "unredacted (contains bridge URLs)" : "redacted");
  g_string_append_printf (text, "pid: %d, parent: %u, origin: %s\n", (int) getpid (),
                          twp_dbus_transport_get_parent_pid (iface), twp_dbus_transport_get_origin_hint (iface));
  /* The path names the user's home: only in an unredacted report. */
  g_string_append_printf (text, "state location: %s\n",
                          unredacted ? twp_dbus_transport_get_state_location (iface) : "[redacted]");
  g_string_append_printf (text, "unsafe logging: %s\n", twp_log_get_unsafe () ? "on" : "off");
  g_string_append_printf (text, "state: %s\n",
                          twp_transport_state_to_string (twp_dbus_transport_get_state (iface)));
  if (self->client != NULL)
    g_string_append_printf (text, "frame mode: %s\n",
                            twp_frame_mode_to_string (twp_client_get_frame_mode (self->client)));
  g_string_append_printf (text, "open connections: %u\n", twp_dbus_transport_get_active_connections (iface));
  g_string_append_printf (text, "bytes sent: %" G_GUINT64_FORMAT ", received: %" G_GUINT64_FORMAT "\n",
                          sent, received);
  if (self->server != NULL)
    {
      /* The operator's counters, as the metrics endpoint serves them. */
      g_autofree char *report = twp_server_stats_format_report (twp_server_get_stats (self->server));

      g_string_append_printf (text, "\nserver counters:\n%s", report);
    }

  if (self->client != NULL)
    {
      GListModel *bridges = twp_client_get_bridges (self->client);

      append_time (text, "last failure", twp_client_get_last_failure_time (self->client));
      details = twp_client_get_last_failure_details (self->client);
      if (twp_client_get_last_failure_time (self->client) > 0)
        g_string_append_printf (text, "last failure reason: %s (%s)\n",
                                twp_failure_reason_to_string (twp_client_get_last_failure_reason (self->client)),
                                withhold_free_text ? "[redacted]" : (details != NULL ? details : ""));
      g_string_append_printf (text, "bridges: %u\n", g_list_model_get_n_items (bridges));
      for (guint i = 0; i < g_list_model_get_n_items (bridges); i++)
        {
          g_autoptr(TwpBridge) bridge = g_list_model_get_item (bridges, i);

          append_bridge (text, bridge, i + 1, unredacted, withhold_free_text);
        }
    }

  g_string_append_printf (text, "\nrecent events: %u\n", self->events.length);
  for (GList *l = self->events.head; l != NULL; l = l->next)
    {
      Event *event = l->data;
      g_autoptr(GDateTime) time = g_date_time_new_from_unix_utc (event->time);
      g_autofree char *formatted = time != NULL ? g_date_time_format_iso8601 (time) : g_strdup ("?");

      g_string_append_printf (text, "  %s %s: %s\n", formatted, severity_to_string (event->severity),
                              withhold_free_text ? "[redacted]" : event->message);
    }
  return g_string_free (text, FALSE);
}

static gboolean
handle_get_diagnostics (TwpDBusTransport      *iface,
                        GDBusMethodInvocation *invocation,
                        gboolean               unredacted)
{
  g_autofree char *text = build_diagnostics (TWP_DBUS_TRANSPORT_IMPL (iface), unredacted);

  twp_dbus_transport_complete_get_diagnostics (iface, invocation, text);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

/* ---- FrameMode writes -------------------------------------------------- */

/* Writes from the bus go through here instead of the generated handler:
 * the value is checked, applied to the core (whose notification updates
 * the property through the binding) and stored. */
static gboolean
set_frame_mode (TwpDBusTransportImpl  *self,
                GVariant              *value,
                GError               **error)
{
  TwpFrameMode mode;

  if (self->client == NULL)
    {
      g_set_error_literal (error, TWP_DBUS_ERROR, TWP_DBUS_ERROR_FAILED,
                           "A server accepts both frame modes; FrameMode applies to clients");
      return FALSE;
    }
  if (!g_variant_is_of_type (value, G_VARIANT_TYPE_STRING) ||
      !twp_frame_mode_from_string (g_variant_get_string (value, NULL), &mode))
    {
      g_set_error_literal (error, TWP_DBUS_ERROR, TWP_DBUS_ERROR_INVALID_ARGUMENT,
                           "FrameMode must be \"binary\" or \"base64\"");
      return FALSE;
    }
  twp_client_set_frame_mode (self->client, mode);
  twp_log_user (TWP_LOG_INFO, "frame mode of new connections set to %s over D-Bus",
                twp_frame_mode_to_string (mode));
  /* The user's choice outlives the process when the schema is installed. */
  if (self->settings != NULL)
    g_settings_set_enum (self->settings, "frame-mode", mode);
  return TRUE;
}

static GDBusInterfaceVTable vtable;
static GDBusInterfaceSetPropertyFunc parent_set_property;

static gboolean
vtable_set_property (GDBusConnection  *connection,
                     const char       *sender,
                     const char       *object_path,
                     const char       *interface_name,
                     const char       *property_name,
                     GVariant         *value,
                     GError          **error,
                     gpointer          user_data)
{
  /* user_data is the skeleton the call is addressed to. */
  if (g_strcmp0 (property_name, "FrameMode") == 0)
    return set_frame_mode (TWP_DBUS_TRANSPORT_IMPL (user_data), value, error);
  return parent_set_property (connection, sender, object_path, interface_name,
                              property_name, value, error, user_data);
}

static GDBusInterfaceVTable *
twp_dbus_transport_impl_get_vtable (GDBusInterfaceSkeleton *skeleton)
{
  /* Main thread only; filled from the generated vtable on first use. */
  if (vtable.method_call == NULL)
    {
      GDBusInterfaceSkeletonClass *parent_class =
        G_DBUS_INTERFACE_SKELETON_CLASS (twp_dbus_transport_impl_parent_class);

      vtable = *parent_class->get_vtable (skeleton);
      parent_set_property = vtable.set_property;
      vtable.set_property = vtable_set_property;
    }
  return &vtable;
}

/* ---- object ------------------------------------------------------------ */

static void
twp_dbus_transport_impl_dispose (GObject *object)
{
  TwpDBusTransportImpl *self = TWP_DBUS_TRANSPORT_IMPL (object);

  if (self->log_sink_id != 0)
    twp_log_remove_sink (self->log_sink_id);
  self->log_sink_id = 0;
  if (self->counters_timer != NULL)
    g_source_destroy (self->counters_timer);
  g_clear_pointer (&self->counters_timer, g_source_unref);
  for (guint i = 0; self->bindings != NULL && i < self->bindings->len; i++)
    g_binding_unbind (g_ptr_array_index (self->bindings, i));
  g_clear_pointer (&self->bindings, g_ptr_array_unref);
  if (self->client != NULL)
    g_signal_handlers_disconnect_by_data (self->client, self);
  if (self->server != NULL)
    g_signal_handlers_disconnect_by_data (self->server, self);
  g_clear_object (&self->client);
  g_clear_object (&self->server);
  g_clear_object (&self->settings);

  G_OBJECT_CLASS (twp_dbus_transport_impl_parent_class)->dispose (object);
}

static void
twp_dbus_transport_impl_finalize (GObject *object)
{
  TwpDBusTransportImpl *self = TWP_DBUS_TRANSPORT_IMPL (object);

  g_queue_clear_full (&self->events, (GDestroyNotify) event_free);

  G_OBJECT_CLASS (twp_dbus_transport_impl_parent_class)->finalize (object);
}

static void
twp_dbus_transport_iface_init (TwpDBusTransportIface *iface)
{
  iface->handle_get_recent_events = handle_get_recent_events;
  iface->handle_get_diagnostics = handle_get_diagnostics;
}

static void
twp_dbus_transport_impl_class_init (TwpDBusTransportImplClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GDBusInterfaceSkeletonClass *skeleton_class = G_DBUS_INTERFACE_SKELETON_CLASS (klass);

  object_class->dispose = twp_dbus_transport_impl_dispose;
  object_class->finalize = twp_dbus_transport_impl_finalize;
  skeleton_class->get_vtable = twp_dbus_transport_impl_get_vtable;
}

static void
twp_dbus_transport_impl_init (TwpDBusTransportImpl *self)
{
  self->bindings = g_ptr_array_new_with_free_func (g_object_unref);
  g_queue_init (&self->events);
}

static TwpDBusTransportImpl *
new_common (const char *role,
            const char *state_location)
{
  TwpDBusTransportImpl *self = g_object_new (TWP_DBUS_TYPE_TRANSPORT_IMPL, NULL);
  TwpDBusTransport *iface = TWP_DBUS_TRANSPORT (self);
  pid_t parent = getppid ();
  /* tor's TOR_PT_STATE_LOCATION is a path: any bytes but NUL. */
  g_autofree char *location = twp_log_make_valid (state_location != NULL ? state_location : "", -1);

  twp_dbus_transport_set_role (iface, role);
  twp_dbus_transport_set_version (iface, PACKAGE_VERSION);
  twp_dbus_transport_set_parent_pid (iface, (guint) parent);
  twp_dbus_transport_set_state_location (iface, location);
  twp_dbus_transport_set_origin_hint (iface, twp_dbus_origin_hint (state_location, parent));
  twp_dbus_transport_set_last_failure_details (iface, "");
  twp_dbus_transport_set_frame_mode (iface, "");

  self->log_sink_id = twp_log_add_sink (log_sink_cb, self);
  /* Counters change with every packet: copied at most once a second. */
  self->counters_timer = g_timeout_source_new_seconds (1);
  g_source_set_static_name (self->counters_timer, "[twp] D-Bus transport counters");
  g_source_set_callback (self->counters_timer, counters_timer_cb, self, NULL);
  g_source_attach (self->counters_timer, NULL);
  return self;
}

TwpDBusTransportImpl *
twp_dbus_transport_impl_new_for_client (TwpClient  *client,
                                        const char *state_location,
                                        GSettings  *settings)
{
  TwpDBusTransportImpl *self;

  g_return_val_if_fail (TWP_IS_CLIENT (client), NULL);
  g_return_val_if_fail (settings == NULL || G_IS_SETTINGS (settings), NULL);

  self = new_common ("client", state_location);
  self->client = g_object_ref (client);
  self->settings = settings != NULL ? g_object_ref (settings) : NULL;
  bind (self, client, "state", "state", twp_dbus_transform_enum_to_uint);
  bind (self, client, "frame-mode", "frame-mode", twp_dbus_transform_frame_mode);
  bind (self, client, "n-connections", "active-connections", NULL);
  bind (self, client, "last-failure-time", "last-failure-time", NULL);
  bind (self, client, "last-failure-reason", "last-failure-reason", twp_dbus_transform_enum_to_uint);
  bind (self, client, "last-failure-details", "last-failure-details", twp_dbus_transform_details);
  update_counters (self);
  g_signal_connect_object (client, "notify::state", G_CALLBACK (state_cb), self, 0);
  return self;
}

TwpDBusTransportImpl *
twp_dbus_transport_impl_new_for_server (TwpServer  *server,
                                        const char *state_location)
{
  TwpDBusTransportImpl *self;

  g_return_val_if_fail (TWP_IS_SERVER (server), NULL);

  self = new_common ("server", state_location);
  self->server = g_object_ref (server);
  bind (self, server, "n-connections", "active-connections", NULL);
  bind (self, server, "state", "state", twp_dbus_transform_enum_to_uint);
  update_counters (self);
  g_signal_connect_object (server, "notify::n-connections", G_CALLBACK (state_cb), self, 0);
  return self;
}
