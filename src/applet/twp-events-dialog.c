/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-applet"

#include "config.h"

#include "twp-events-dialog-private.h"

#include <glib/gi18n.h>

#include "twp-log.h"
#include "twp-status-text.h"

/* The transport keeps 100 events; so do we, dropping the oldest. */
#define MAX_EVENTS 100

struct _TwpEventsDialog
{
  AdwWindow parent_instance;

  /* owned */
  TwpDBusTransport *transport;
  GCancellable *cancellable;
  gulong event_id;              /* Event handler, disconnected on dispose */
  guint n_events;
  guint n_copied;
  /* Events seen from the signal before GetRecentEvents answered are
   * already in its answer: ignore signals until then. */
  gboolean loaded;

  /* template children (borrowed) */
  AdwToastOverlay *toast_overlay;
  GtkSwitch *unredacted_switch;
  GtkButton *copy_button;
  GtkListBox *events_list;
};

G_DEFINE_FINAL_TYPE (TwpEventsDialog, twp_events_dialog, ADW_TYPE_WINDOW)

enum {
  PROP_0,
  PROP_TRANSPORT,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void
add_event (TwpEventsDialog *self,
           gint64           time,
           guint            severity,
           const char      *message)
{
  g_autoptr(GDateTime) date = g_date_time_new_from_unix_local (time);
  g_autofree char *when = date != NULL ? g_date_time_format (date, "%X") : g_strdup ("?");
  g_autofree char *subtitle = NULL;
  const char *severity_text;
  const char *icon;
  GtkWidget *row;
  GtkWidget *image;

  switch (severity)
    {
    case TWP_LOG_ERROR:
      severity_text = _("Error");
      icon = "dialog-error-symbolic";
      break;
    case TWP_LOG_WARNING:
      severity_text = _("Warning");
      icon = "dialog-warning-symbolic";
      break;
    case TWP_LOG_NOTICE:
      severity_text = _("Notice");
      icon = "dialog-information-symbolic";
      break;
    default:
      severity_text = _("Info");
      icon = "dialog-information-symbolic";
      break;
    }
  /* Translators: "Warning, 14:03:22" */
  subtitle = g_strdup_printf (_("%s, %s"), severity_text, when);

  /* Messages are plain text from the transport: never markup. With
   * unsafe logging, Event signals carry a placeholder: say it in words. */
  row = g_object_new (ADW_TYPE_ACTION_ROW,
                      "use-markup", FALSE,
                      "title", twp_status_details_text (message),
                      "subtitle", subtitle,
                      "title-selectable", TRUE,
                      NULL);
  image = gtk_image_new_from_icon_name (icon);
  gtk_accessible_update_property (GTK_ACCESSIBLE (image), GTK_ACCESSIBLE_PROPERTY_LABEL, severity_text, -1);
  adw_action_row_add_prefix (ADW_ACTION_ROW (row), image);
  gtk_list_box_append (self->events_list, row);
  if (++self->n_events > MAX_EVENTS)
    {
      gtk_list_box_remove (self->events_list, GTK_WIDGET (gtk_list_box_get_row_at_index (self->events_list, 0)));
      self->n_events--;
    }
}

static void
event_cb (TwpDBusTransport *transport,
          gint64            time,
          guint             severity,
          const char       *message,
          TwpEventsDialog  *self)
{
  if (self->loaded)
    add_event (self, time, severity, message);
}

static void
recent_events_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) events = NULL;
  TwpEventsDialog *self;
  GVariantIter iter;
  gint64 time;
  guint severity;
  const char *message;

  if (!twp_dbus_transport_call_get_recent_events_finish (TWP_DBUS_TRANSPORT (source), &events, result, &error))
    {
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        return;
      g_debug ("GetRecentEvents failed: %s", error->message);
      /* No history, but new events still show. */
      TWP_EVENTS_DIALOG (user_data)->loaded = TRUE;
      return;
    }
  self = TWP_EVENTS_DIALOG (user_data);
  g_variant_iter_init (&iter, events);
  while (g_variant_iter_next (&iter, "(xu&s)", &time, &severity, &message))
    add_event (self, time, severity, message);
  self->loaded = TRUE;
}

static void
diagnostics_cb (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *text = NULL;
  TwpEventsDialog *self;

  if (!twp_dbus_transport_call_get_diagnostics_finish (TWP_DBUS_TRANSPORT (source), &text, result, &error))
    {
      g_autofree char *message = NULL;

      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        return;
      self = TWP_EVENTS_DIALOG (user_data);
      g_dbus_error_strip_remote_error (error);
      /* Translators: %s is an error message from D-Bus */
      message = g_strdup_printf (_("Could not read the diagnostics: %s"), error->message);
      adw_toast_overlay_add_toast (self->toast_overlay, adw_toast_new (message));
      return;
    }
  self = TWP_EVENTS_DIALOG (user_data);
  gdk_clipboard_set_text (gtk_widget_get_clipboard (GTK_WIDGET (self)), text);
  self->n_copied++;
  adw_toast_overlay_add_toast (self->toast_overlay,
                               adw_toast_new (gtk_switch_get_active (self->unredacted_switch)
                                              ? _("Diagnostics with bridge addresses copied")
                                              : _("Diagnostics copied")));
}

static void
copy_clicked_cb (TwpEventsDialog *self)
{
  if (self->transport == NULL)
    return;
  twp_dbus_transport_call_get_diagnostics (self->transport, gtk_switch_get_active (self->unredacted_switch),
                                           self->cancellable, diagnostics_cb, self);
}

static void
twp_events_dialog_constructed (GObject *object)
{
  TwpEventsDialog *self = TWP_EVENTS_DIALOG (object);

  G_OBJECT_CLASS (twp_events_dialog_parent_class)->constructed (object);

  gtk_widget_set_sensitive (GTK_WIDGET (self->unredacted_switch), self->transport != NULL);
  if (self->transport == NULL)
    return;
  self->event_id = g_signal_connect (self->transport, "event", G_CALLBACK (event_cb), self);
  twp_dbus_transport_call_get_recent_events (self->transport, self->cancellable, recent_events_cb, self);
}

static void
twp_events_dialog_dispose (GObject *object)
{
  TwpEventsDialog *self = TWP_EVENTS_DIALOG (object);

  g_cancellable_cancel (self->cancellable);
  /* The list goes with the template: no event may arrive after it. */
  if (self->transport != NULL)
    g_clear_signal_handler (&self->event_id, self->transport);
  gtk_widget_dispose_template (GTK_WIDGET (self), TWP_TYPE_EVENTS_DIALOG);
  g_clear_object (&self->transport);
  G_OBJECT_CLASS (twp_events_dialog_parent_class)->dispose (object);
}

static void
twp_events_dialog_finalize (GObject *object)
{
  TwpEventsDialog *self = TWP_EVENTS_DIALOG (object);

  g_clear_object (&self->cancellable);
  G_OBJECT_CLASS (twp_events_dialog_parent_class)->finalize (object);
}

static void
twp_events_dialog_get_property (GObject    *object,
                                guint       prop_id,
                                GValue     *value,
                                GParamSpec *pspec)
{
  TwpEventsDialog *self = TWP_EVENTS_DIALOG (object);

  switch (prop_id)
    {
    case PROP_TRANSPORT:
      g_value_set_object (value, self->transport);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
twp_events_dialog_set_property (GObject      *object,
                                guint         prop_id,
                                const GValue *value,
                                GParamSpec   *pspec)
{
  TwpEventsDialog *self = TWP_EVENTS_DIALOG (object);

  switch (prop_id)
    {
    case PROP_TRANSPORT:
      self->transport = g_value_dup_object (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
twp_events_dialog_class_init (TwpEventsDialogClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->constructed = twp_events_dialog_constructed;
  object_class->dispose = twp_events_dialog_dispose;
  object_class->finalize = twp_events_dialog_finalize;
  object_class->get_property = twp_events_dialog_get_property;
  object_class->set_property = twp_events_dialog_set_property;

  properties[PROP_TRANSPORT] =
    g_param_spec_object ("transport", NULL, NULL, TWP_DBUS_TYPE_TRANSPORT,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/io/github/TorWebSocketProxy/ui/twp-events-dialog.ui");
  gtk_widget_class_bind_template_child (widget_class, TwpEventsDialog, toast_overlay);
  gtk_widget_class_bind_template_child (widget_class, TwpEventsDialog, unredacted_switch);
  gtk_widget_class_bind_template_child (widget_class, TwpEventsDialog, copy_button);
  gtk_widget_class_bind_template_child (widget_class, TwpEventsDialog, events_list);
  gtk_widget_class_bind_template_callback (widget_class, copy_clicked_cb);
}

static void
twp_events_dialog_init (TwpEventsDialog *self)
{
  self->cancellable = g_cancellable_new ();
  gtk_widget_init_template (GTK_WIDGET (self));
}

GtkWidget *
twp_events_dialog_new (TwpDBusTransport *transport)
{
  g_return_val_if_fail (transport == NULL || TWP_DBUS_IS_TRANSPORT (transport), NULL);

  return g_object_new (TWP_TYPE_EVENTS_DIALOG, "transport", transport, NULL);
}

guint
twp_events_dialog_get_n_events (TwpEventsDialog *self)
{
  return self->n_events;
}

GtkButton *
twp_events_dialog_get_copy_button (TwpEventsDialog *self)
{
  return self->copy_button;
}

GtkSwitch *
twp_events_dialog_get_unredacted_switch (TwpEventsDialog *self)
{
  return self->unredacted_switch;
}

guint
twp_events_dialog_get_n_copied (TwpEventsDialog *self)
{
  return self->n_copied;
}

const char *
twp_events_dialog_get_event_text (TwpEventsDialog *self,
                                  guint            index)
{
  GtkListBoxRow *row = gtk_list_box_get_row_at_index (self->events_list, (int) index);

  return row != NULL ? adw_preferences_row_get_title (ADW_PREFERENCES_ROW (row)) : NULL;
}
