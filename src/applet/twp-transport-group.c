/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-applet"

#include "config.h"

#include "twp-transport-group.h"

#include <glib/gi18n.h>

#include "twp-bridge-row.h"
#include "twp-events-dialog.h"
#include "twp-status-text.h"

struct _TwpTransportGroup
{
  AdwPreferencesGroup parent_instance;

  /* owned */
  TwpInstance *instance;
  GCancellable *cancellable;
  /* The switch's state machine: idle (both NULL); a Set in flight
   * (mode_sent); and while it flies, the user's latest choice
   * (mode_pending), sent when the reply comes if it differs. mode_known
   * is the transport's mode as last seen or confirmed by a reply: the
   * proxy's cache lags behind a reply until PropertiesChanged.
   * Static strings. */
  const char *mode_sent;
  const char *mode_pending;
  const char *mode_known;
  gboolean syncing_switch;      /* the switch moves to follow the transport */

  /* template children (borrowed) */
  AdwActionRow *state_row;
  AdwActionRow *mode_row;
  GtkSwitch *mode_switch;
  GtkListBox *bridge_list;
};

G_DEFINE_FINAL_TYPE (TwpTransportGroup, twp_transport_group, ADW_TYPE_PREFERENCES_GROUP)

enum {
  PROP_0,
  PROP_INSTANCE,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

/* ---- closures used by the template ------------------------------------ */

static char *
transport_state_text_cb (TwpTransportGroup *self,
                         guint              state)
{
  return g_strdup (twp_status_transport_state_text (state));
}

static char *
transport_state_icon_cb (TwpTransportGroup *self,
                         guint              state)
{
  return g_strdup (twp_status_transport_state_icon (state));
}

static char *
transport_summary_cb (TwpTransportGroup *self,
                      guint              active,
                      guint64            sent,
                      guint64            received,
                      guint              state,
                      guint              reason)
{
  g_autofree char *traffic = twp_status_traffic_text (sent, received);
  g_autofree char *connections = NULL;
  g_autofree char *reason_text = NULL;

  /* Translators: the number of open tunnels */
  connections = g_strdup_printf (g_dngettext (GETTEXT_PACKAGE, "%u open connection", "%u open connections", active),
                                 active);
  if (state == TWP_TRANSPORT_STATE_FAILING || state == TWP_TRANSPORT_STATE_DEGRADED)
    /* The transport has no failure code: the reason alone, in words. */
    reason_text = twp_status_reason_text (reason, 0);
  if (reason_text != NULL)
    return g_strdup_printf ("%s · %s\n%s", connections, traffic, reason_text);
  return g_strdup_printf ("%s · %s", connections, traffic);
}

static gboolean
transport_is_client_cb (TwpTransportGroup *self,
                        const char        *role)
{
  return g_strcmp0 (role, "client") == 0;
}

/* ---- frame mode -------------------------------------------------------- */

static const char *
mode_name (gboolean base64)
{
  return base64 ? "base64" : "binary";
}

/* The switch follows the transport (scripts may change it too), except
 * while our own Set is in flight: the cached FrameMode is stale then. */
static void
sync_switch (TwpTransportGroup *self)
{
  TwpDBusTransport *transport = twp_instance_get_transport (self->instance);
  gboolean base64 = g_strcmp0 (twp_dbus_transport_get_frame_mode (transport), "base64") == 0;

  self->mode_known = mode_name (base64);
  self->syncing_switch = TRUE;
  gtk_switch_set_active (self->mode_switch, base64);
  self->syncing_switch = FALSE;
}

static void
transport_mode_changed_cb (TwpTransportGroup *self)
{
  if (self->mode_sent == NULL)
    sync_switch (self);
}

static void send_frame_mode (TwpTransportGroup *self,
                             const char        *mode);

static void
set_frame_mode_cb (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = g_dbus_proxy_call_finish (G_DBUS_PROXY (source), result, &error);
  TwpTransportGroup *self;
  g_autofree char *message = NULL;
  const char *pending;

  if (reply == NULL && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  self = TWP_TRANSPORT_GROUP (user_data);
  pending = self->mode_pending;
  self->mode_pending = NULL;
  if (reply != NULL)
    {
      /* The user changed their mind during the round trip: the last
       * choice wins. Otherwise PropertiesChanged (usually right behind
       * the reply) moves the switch, if it still has to. */
      self->mode_known = self->mode_sent;
      if (pending != NULL && g_strcmp0 (pending, self->mode_sent) != 0)
        send_frame_mode (self, pending);
      else
        self->mode_sent = NULL;
      return;
    }
  /* Put the switch back to what the transport really uses. */
  self->mode_sent = NULL;
  sync_switch (self);
  g_dbus_error_strip_remote_error (error);
  /* Translators: %s is an error message from the transport */
  message = g_strdup_printf (_("Could not change the frame mode: %s"), error->message);
  gtk_widget_activate_action (GTK_WIDGET (self), "win.toast", "s", message);
}

static void
send_frame_mode (TwpTransportGroup *self,
                 const char        *mode)
{
  self->mode_sent = mode;
  g_dbus_proxy_call (G_DBUS_PROXY (twp_instance_get_transport (self->instance)),
                     "org.freedesktop.DBus.Properties.Set",
                     g_variant_new ("(ssv)", "io.github.TorWebSocketProxy1.Transport", "FrameMode",
                                    g_variant_new_string (mode)),
                     G_DBUS_CALL_FLAGS_NONE, -1, self->cancellable, set_frame_mode_cb, self);
}

/* Only the user's changes are sent; one Set at a time, so that two
 * toggles within one round trip cannot be compared against a stale
 * cached FrameMode and lost. */
static void
mode_switch_active_cb (TwpTransportGroup *self)
{
  const char *wanted;

  if (self->instance == NULL || self->syncing_switch)
    return;
  wanted = mode_name (gtk_switch_get_active (self->mode_switch));
  if (self->mode_sent != NULL)
    {
      self->mode_pending = wanted;
      return;
    }
  if (g_strcmp0 (self->mode_known, wanted) == 0)
    return;
  send_frame_mode (self, wanted);
}

/* ---- events ------------------------------------------------------------ */

static void
events_activated_cb (TwpTransportGroup *self)
{
  GtkWidget *dialog;

  if (self->instance == NULL)
    return;
  dialog = twp_events_dialog_new (twp_instance_get_transport (self->instance));
  gtk_window_set_transient_for (GTK_WINDOW (dialog), GTK_WINDOW (gtk_widget_get_root (GTK_WIDGET (self))));
  gtk_window_present (GTK_WINDOW (dialog));
}

/* ---- GObject ----------------------------------------------------------- */

static GtkWidget *
create_bridge_row (gpointer item,
                   gpointer user_data)
{
  return twp_bridge_row_new (item);
}

static void
twp_transport_group_set_instance (TwpTransportGroup *self,
                                  TwpInstance       *instance)
{
  TwpDBusTransport *transport;
  g_autofree char *title = NULL;

  g_return_if_fail (self->instance == NULL);
  if (instance == NULL)
    return;
  self->instance = g_object_ref (instance);
  transport = twp_instance_get_transport (instance);
  if (g_strcmp0 (twp_dbus_transport_get_role (transport), "server") == 0)
    /* Translators: %u is a process ID */
    title = g_strdup_printf (_("Server transport, process %u"), twp_instance_get_pid (instance));
  else
    title = g_strdup_printf (_("Client transport, process %u"), twp_instance_get_pid (instance));
  adw_preferences_group_set_title (ADW_PREFERENCES_GROUP (self), title);
  if (twp_dbus_transport_get_version (transport) != NULL && *twp_dbus_transport_get_version (transport) != '\0')
    {
      /* Translators: %s is a version number */
      g_autofree char *description = g_strdup_printf (_("tor-websocket-proxy %s"),
                                                      twp_dbus_transport_get_version (transport));

      adw_preferences_group_set_description (ADW_PREFERENCES_GROUP (self), description);
    }
  g_signal_connect_object (transport, "notify::frame-mode", G_CALLBACK (transport_mode_changed_cb), self,
                           G_CONNECT_SWAPPED);
  sync_switch (self);
  gtk_list_box_bind_model (self->bridge_list, twp_instance_get_bridges (instance),
                           create_bridge_row, NULL, NULL);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_INSTANCE]);
}

static void
twp_transport_group_dispose (GObject *object)
{
  TwpTransportGroup *self = TWP_TRANSPORT_GROUP (object);

  g_cancellable_cancel (self->cancellable);
  /* Template children go below: no more transport signals. */
  if (self->instance != NULL)
    g_signal_handlers_disconnect_by_data (twp_instance_get_transport (self->instance), self);
  if (self->bridge_list != NULL)
    gtk_list_box_bind_model (self->bridge_list, NULL, NULL, NULL, NULL);
  gtk_widget_dispose_template (GTK_WIDGET (self), TWP_TYPE_TRANSPORT_GROUP);
  g_clear_object (&self->instance);
  G_OBJECT_CLASS (twp_transport_group_parent_class)->dispose (object);
}

static void
twp_transport_group_finalize (GObject *object)
{
  TwpTransportGroup *self = TWP_TRANSPORT_GROUP (object);

  g_clear_object (&self->cancellable);
  G_OBJECT_CLASS (twp_transport_group_parent_class)->finalize (object);
}

static void
twp_transport_group_get_property (GObject    *object,
                                  guint       prop_id,
                                  GValue     *value,
                                  GParamSpec *pspec)
{
  TwpTransportGroup *self = TWP_TRANSPORT_GROUP (object);

  switch (prop_id)
    {
    case PROP_INSTANCE:
      g_value_set_object (value, self->instance);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
twp_transport_group_set_property (GObject      *object,
                                  guint         prop_id,
                                  const GValue *value,
                                  GParamSpec   *pspec)
{
  TwpTransportGroup *self = TWP_TRANSPORT_GROUP (object);

  switch (prop_id)
    {
    case PROP_INSTANCE:
      twp_transport_group_set_instance (self, g_value_get_object (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
twp_transport_group_class_init (TwpTransportGroupClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = twp_transport_group_dispose;
  object_class->finalize = twp_transport_group_finalize;
  object_class->get_property = twp_transport_group_get_property;
  object_class->set_property = twp_transport_group_set_property;

  properties[PROP_INSTANCE] =
    g_param_spec_object ("instance", NULL, NULL, TWP_TYPE_INSTANCE,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  g_type_ensure (TWP_TYPE_INSTANCE);
  g_type_ensure (TWP_DBUS_TYPE_TRANSPORT);
  g_type_ensure (TWP_TYPE_BRIDGE_ROW);

  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/io/github/TorWebSocketProxy/ui/twp-transport-group.ui");
  gtk_widget_class_bind_template_child (widget_class, TwpTransportGroup, state_row);
  gtk_widget_class_bind_template_child (widget_class, TwpTransportGroup, mode_row);
  gtk_widget_class_bind_template_child (widget_class, TwpTransportGroup, mode_switch);
  gtk_widget_class_bind_template_child (widget_class, TwpTransportGroup, bridge_list);
  gtk_widget_class_bind_template_callback (widget_class, transport_state_text_cb);
  gtk_widget_class_bind_template_callback (widget_class, transport_state_icon_cb);
  gtk_widget_class_bind_template_callback (widget_class, transport_summary_cb);
  gtk_widget_class_bind_template_callback (widget_class, transport_is_client_cb);
  gtk_widget_class_bind_template_callback (widget_class, mode_switch_active_cb);
  gtk_widget_class_bind_template_callback (widget_class, events_activated_cb);
}

static void
twp_transport_group_init (TwpTransportGroup *self)
{
  self->cancellable = g_cancellable_new ();
  gtk_widget_init_template (GTK_WIDGET (self));
}

GtkWidget *
twp_transport_group_new (TwpInstance *instance)
{
  g_return_val_if_fail (instance == NULL || TWP_IS_INSTANCE (instance), NULL);

  return g_object_new (TWP_TYPE_TRANSPORT_GROUP, "instance", instance, NULL);
}

TwpInstance *
twp_transport_group_get_instance (TwpTransportGroup *self)
{
  g_return_val_if_fail (TWP_IS_TRANSPORT_GROUP (self), NULL);

  return self->instance;
}

GtkSwitch *
twp_transport_group_get_mode_switch (TwpTransportGroup *self)
{
  g_return_val_if_fail (TWP_IS_TRANSPORT_GROUP (self), NULL);

  return self->mode_switch;
}

GtkListBox *
twp_transport_group_get_bridge_list (TwpTransportGroup *self)
{
  g_return_val_if_fail (TWP_IS_TRANSPORT_GROUP (self), NULL);

  return self->bridge_list;
}
