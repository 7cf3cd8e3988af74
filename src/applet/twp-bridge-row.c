/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-applet"

#include "config.h"

#include "twp-bridge-row-private.h"

#include <glib/gi18n.h>

#include "twp-status-text.h"

struct _TwpBridgeRow
{
  GtkListBoxRow parent_instance;

  /* owned */
  TwpDBusBridge *bridge;
  GCancellable *cancellable;    /* GetUrl and Test; cancelled on dispose */
  char *url;                    /* NULL until GetUrl answered */
  char *host;
  char *a11y_label;
  char *a11y_description;
  char *test_result;
  gboolean testing;

  /* template children (borrowed) */
  GtkLabel *host_label;
  GtkLabel *state_label;
  GtkLabel *reason_label;
  GtkButton *test_button;
  GtkBox *test_box;
  GtkSpinner *test_spinner;
  GtkImage *test_icon;
  GtkLabel *test_label;
  GtkToggleButton *url_button;
  GtkLabel *url_label;
};

G_DEFINE_FINAL_TYPE (TwpBridgeRow, twp_bridge_row, GTK_TYPE_LIST_BOX_ROW)

/* The service bounds a Test to 15 s; the reply may take a little longer. */
#define TEST_TIMEOUT_MS 20000

enum {
  PROP_0,
  PROP_BRIDGE,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

/* ---- closures used by the template ------------------------------------ */

static char *
bridge_state_icon_cb (TwpBridgeRow *self,
                      guint         state)
{
  return g_strdup (twp_status_bridge_state_icon (state));
}

static char *
state_line (guint state,
            guint phase)
{
  const char *words = twp_status_bridge_state_text (state);

  if (phase == 0)
    return g_strdup (words);
  /* Translators: a bridge state and the step the newest attempt reached
   * (or failed at), "Connecting — TLS handshake" */
  return g_strdup_printf (_("%s — %s"), words, twp_status_phase_text (phase));
}

static char *
bridge_state_line_cb (TwpBridgeRow *self,
                      guint         state,
                      guint         phase)
{
  return state_line (state, phase);
}

static gboolean
bridge_is_failing_cb (TwpBridgeRow *self,
                      guint         state)
{
  return state == TWP_BRIDGE_STATE_FAILING;
}

static char *
bridge_reason_cb (TwpBridgeRow *self,
                  guint         reason,
                  guint         code)
{
  char *text = twp_status_reason_text (reason, code);

  return text != NULL ? text : g_strdup ("");
}

static char *
details_line (gint64  rtt,
              guint64 sent,
              guint64 received,
              guint64 attempts,
              guint64 failures)
{
  g_autofree char *rtt_text = twp_status_rtt_text (rtt);
  g_autofree char *traffic = twp_status_traffic_text (sent, received);

  g_autofree char *attempts_text = NULL;
  g_autofree char *attempts_number = g_strdup_printf ("%" G_GUINT64_FORMAT, attempts);
  g_autofree char *failures_number = g_strdup_printf ("%" G_GUINT64_FORMAT, failures);

  /* Translators: "4 attempts, 1 failed"; the numbers come preformatted */
  attempts_text = g_strdup_printf (g_dngettext (GETTEXT_PACKAGE, "%s attempt, %s failed", "%s attempts, %s failed",
                                                (gulong) MIN (attempts, G_MAXULONG)),
                                   attempts_number, failures_number);
  /* Translators: "Round trip 3 ms · 1 kB sent, 2 kB received · 4 attempts, 1 failed" */
  return g_strdup_printf (_("Round trip %s · %s · %s"), rtt_text, traffic, attempts_text);
}

static char *
bridge_details_cb (TwpBridgeRow *self,
                   gint64        rtt,
                   guint64       sent,
                   guint64       received,
                   guint64       attempts,
                   guint64       failures)
{
  return details_line (rtt, sent, received, attempts, failures);
}

static char *
mode_line (const char *mode,
           gboolean    pinned)
{
  const char *words = g_strcmp0 (mode, "base64") == 0 ? _("Base64 text frames") : _("Binary frames");

  if (pinned)
    /* Translators: "Binary frames, pinned by the bridge line (mode=)" */
    return g_strdup_printf (_("%s, pinned by the bridge line (mode=)"), words);
  return g_strdup (words);
}

static char *
bridge_mode_cb (TwpBridgeRow *self,
                const char   *mode,
                gboolean      pinned)
{
  return mode_line (mode, pinned);
}

/* ---- accessibility ----------------------------------------------------- */

/* GTK 4.8 cannot announce, so the row's description carries everything a
 * sighted user reads off the row; screen readers read it on focus. */
static void
update_accessible (TwpBridgeRow *self)
{
  g_autoptr(GString) description = g_string_new (NULL);
  g_autofree char *state = NULL;
  g_autofree char *reason = NULL;
  g_autofree char *details = NULL;
  g_autofree char *mode = NULL;
  g_autofree char *test_description = NULL;
  const char *host = self->host != NULL ? self->host : _("(address hidden)");
  guint bridge_state;

  g_free (self->a11y_label);
  /* Translators: the accessible name of a bridge row, "Bridge example.org" */
  self->a11y_label = g_strdup_printf (_("Bridge %s"), host);
  /* Every row has a "Test" button: say which bridge each one tests. */
  /* Translators: the accessible description of a Test button, "Test the bridge example.org" */
  test_description = g_strdup_printf (_("Test the bridge %s"), host);
  gtk_accessible_update_property (GTK_ACCESSIBLE (self->test_button),
                                  GTK_ACCESSIBLE_PROPERTY_DESCRIPTION, test_description,
                                  -1);

  if (self->bridge != NULL)
    {
      bridge_state = twp_dbus_bridge_get_state (self->bridge);
      state = state_line (bridge_state, twp_dbus_bridge_get_phase (self->bridge));
      g_string_append_printf (description, "%s.", state);
      if (bridge_state == TWP_BRIDGE_STATE_FAILING)
        {
          reason = twp_status_reason_text (twp_dbus_bridge_get_last_failure_reason (self->bridge),
                                           twp_dbus_bridge_get_last_failure_code (self->bridge));
          if (reason != NULL)
            g_string_append_printf (description, " %s.", reason);
        }
      details = details_line (twp_dbus_bridge_get_rtt_microseconds (self->bridge),
                              twp_dbus_bridge_get_bytes_sent (self->bridge),
                              twp_dbus_bridge_get_bytes_received (self->bridge),
                              twp_dbus_bridge_get_attempts (self->bridge),
                              twp_dbus_bridge_get_failures (self->bridge));
      mode = mode_line (twp_dbus_bridge_get_frame_mode (self->bridge),
                        twp_dbus_bridge_get_mode_pinned (self->bridge));
      g_string_append_printf (description, " %s. %s.", details, mode);
    }
  if (self->test_result != NULL)
    g_string_append_printf (description, " %s", self->test_result);

  g_free (self->a11y_description);
  self->a11y_description = g_string_free (g_steal_pointer (&description), FALSE);
  gtk_accessible_update_property (GTK_ACCESSIBLE (self),
                                  GTK_ACCESSIBLE_PROPERTY_LABEL, self->a11y_label,
                                  GTK_ACCESSIBLE_PROPERTY_DESCRIPTION, self->a11y_description,
                                  -1);
}

static void
bridge_notify_cb (GObject      *object,
                  GParamSpec   *pspec,
                  TwpBridgeRow *self)
{
  update_accessible (self);
}

/* ---- URL --------------------------------------------------------------- */

static void
get_url_cb (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *url = NULL;
  TwpBridgeRow *self;

  if (!twp_dbus_bridge_call_get_url_finish (TWP_DBUS_BRIDGE (source), &url, result, &error))
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_debug ("GetUrl failed: %s", error->message);
      return;
    }
  self = TWP_BRIDGE_ROW (user_data);
  g_free (self->url);
  self->url = g_steal_pointer (&url);
  g_free (self->host);
  self->host = twp_status_host_from_url (self->url);
  gtk_label_set_label (self->host_label, self->host != NULL ? self->host : _("Bridge (unreadable URL)"));
  gtk_label_set_label (self->url_label, self->url);
  update_accessible (self);
}

static void
url_toggled_cb (TwpBridgeRow *self)
{
  gtk_button_set_label (GTK_BUTTON (self->url_button),
                        gtk_toggle_button_get_active (self->url_button) ? _("Hide _Full URL") : _("Show _Full URL"));
}

/* ---- Test -------------------------------------------------------------- */

static void
set_test_result (TwpBridgeRow *self,
                 gboolean      ok,
                 const char   *text)
{
  g_free (self->test_result);
  self->test_result = g_strdup (text);
  self->testing = FALSE;
  gtk_spinner_stop (self->test_spinner);
  gtk_widget_set_visible (GTK_WIDGET (self->test_spinner), FALSE);
  gtk_image_set_from_icon_name (self->test_icon, ok ? "emblem-ok-symbolic" : "dialog-error-symbolic");
  gtk_widget_set_visible (GTK_WIDGET (self->test_icon), TRUE);
  gtk_label_set_label (self->test_label, text);
  gtk_widget_set_sensitive (GTK_WIDGET (self->test_button), TRUE);
  update_accessible (self);
}

static void
test_cb (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autofree char *reason_text = NULL;
  g_autofree char *text = NULL;
  gboolean ok;
  guint phase;
  guint reason;
  TwpBridgeRow *self;

  reply = g_dbus_proxy_call_finish (G_DBUS_PROXY (source), result, &error);
  if (reply == NULL)
    {
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        return;
      self = TWP_BRIDGE_ROW (user_data);
      g_dbus_error_strip_remote_error (error);
      /* Translators: %s is an error message from D-Bus */
      text = g_strdup_printf (_("Could not run the test: %s"), error->message);
      set_test_result (self, FALSE, text);
      return;
    }
  self = TWP_BRIDGE_ROW (user_data);
  /* The proxy knows Test's signature from the XML and has checked the
   * reply's type against it. */
  g_variant_get (reply, "(buu&s)", &ok, &phase, &reason, NULL);
  if (ok)
    {
      set_test_result (self, TRUE, _("Test passed: the WebSocket opened."));
      return;
    }
  /* Test's reply carries no failure code (and its details are free
   * text, never parsed): the reason alone, in words. */
  reason_text = twp_status_reason_text (reason, 0);
  /* Translators: "Test failed (step: TLS handshake): TLS certificate not trusted — check sni= or cert-sha256=" */
  text = g_strdup_printf (_("Test failed (step: %s): %s"), twp_status_phase_text (phase),
                          reason_text != NULL ? reason_text : _("unknown reason"));
  set_test_result (self, FALSE, text);
}

static void
test_clicked_cb (TwpBridgeRow *self)
{
  if (self->bridge == NULL || self->testing)
    return;
  self->testing = TRUE;
  gtk_widget_set_sensitive (GTK_WIDGET (self->test_button), FALSE);
  gtk_widget_set_visible (GTK_WIDGET (self->test_box), TRUE);
  gtk_widget_set_visible (GTK_WIDGET (self->test_icon), FALSE);
  gtk_widget_set_visible (GTK_WIDGET (self->test_spinner), TRUE);
  gtk_spinner_start (self->test_spinner);
  gtk_label_set_label (self->test_label, _("Testing…"));
  /* The service bounds a test to 15 s; allow it 20 before giving up. The
   * timeout is per call: the proxy is shared with the rest of the app. */
  g_dbus_proxy_call (G_DBUS_PROXY (self->bridge), "Test", g_variant_new ("()"), G_DBUS_CALL_FLAGS_NONE,
                     TEST_TIMEOUT_MS, self->cancellable, test_cb, self);
}

/* ---- GObject ----------------------------------------------------------- */

/* Construct-only: set once, before anything reads it. */
static void
twp_bridge_row_set_bridge (TwpBridgeRow  *self,
                           TwpDBusBridge *bridge)
{
  if (bridge == NULL)
    return;
  self->bridge = g_object_ref (bridge);
  g_signal_connect_object (bridge, "notify", G_CALLBACK (bridge_notify_cb), self, 0);
  twp_dbus_bridge_call_get_url (bridge, self->cancellable, get_url_cb, self);
  update_accessible (self);
}

static void
twp_bridge_row_dispose (GObject *object)
{
  TwpBridgeRow *self = TWP_BRIDGE_ROW (object);

  /* Pending calls hold a borrowed pointer to us: cancel them first. */
  g_cancellable_cancel (self->cancellable);
  gtk_widget_dispose_template (GTK_WIDGET (self), TWP_TYPE_BRIDGE_ROW);
  g_clear_object (&self->bridge);
  G_OBJECT_CLASS (twp_bridge_row_parent_class)->dispose (object);
}

static void
twp_bridge_row_finalize (GObject *object)
{
  TwpBridgeRow *self = TWP_BRIDGE_ROW (object);

  g_clear_object (&self->cancellable);
  g_free (self->url);
  g_free (self->host);
  g_free (self->a11y_label);
  g_free (self->a11y_description);
  g_free (self->test_result);
  G_OBJECT_CLASS (twp_bridge_row_parent_class)->finalize (object);
}

static void
twp_bridge_row_get_property (GObject    *object,
                             guint       prop_id,
                             GValue     *value,
                             GParamSpec *pspec)
{
  TwpBridgeRow *self = TWP_BRIDGE_ROW (object);

  switch (prop_id)
    {
    case PROP_BRIDGE:
      g_value_set_object (value, self->bridge);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
twp_bridge_row_set_property (GObject      *object,
                             guint         prop_id,
                             const GValue *value,
                             GParamSpec   *pspec)
{
  TwpBridgeRow *self = TWP_BRIDGE_ROW (object);

  switch (prop_id)
    {
    case PROP_BRIDGE:
      twp_bridge_row_set_bridge (self, g_value_get_object (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
twp_bridge_row_class_init (TwpBridgeRowClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = twp_bridge_row_dispose;
  object_class->finalize = twp_bridge_row_finalize;
  object_class->get_property = twp_bridge_row_get_property;
  object_class->set_property = twp_bridge_row_set_property;

  properties[PROP_BRIDGE] =
    g_param_spec_object ("bridge", NULL, NULL, TWP_DBUS_TYPE_BRIDGE,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  /* <lookup type="TwpDBusBridge"> needs the type registered. */
  g_type_ensure (TWP_DBUS_TYPE_BRIDGE);

  gtk_widget_class_set_template_from_resource (widget_class, "/io/github/TorWebSocketProxy/ui/twp-bridge-row.ui");
  gtk_widget_class_bind_template_child (widget_class, TwpBridgeRow, host_label);
  gtk_widget_class_bind_template_child (widget_class, TwpBridgeRow, state_label);
  gtk_widget_class_bind_template_child (widget_class, TwpBridgeRow, reason_label);
  gtk_widget_class_bind_template_child (widget_class, TwpBridgeRow, test_button);
  gtk_widget_class_bind_template_child (widget_class, TwpBridgeRow, test_box);
  gtk_widget_class_bind_template_child (widget_class, TwpBridgeRow, test_spinner);
  gtk_widget_class_bind_template_child (widget_class, TwpBridgeRow, test_icon);
  gtk_widget_class_bind_template_child (widget_class, TwpBridgeRow, test_label);
  gtk_widget_class_bind_template_child (widget_class, TwpBridgeRow, url_button);
  gtk_widget_class_bind_template_child (widget_class, TwpBridgeRow, url_label);
  gtk_widget_class_bind_template_callback (widget_class, bridge_state_icon_cb);
  gtk_widget_class_bind_template_callback (widget_class, bridge_state_line_cb);
  gtk_widget_class_bind_template_callback (widget_class, bridge_is_failing_cb);
  gtk_widget_class_bind_template_callback (widget_class, bridge_reason_cb);
  gtk_widget_class_bind_template_callback (widget_class, bridge_details_cb);
  gtk_widget_class_bind_template_callback (widget_class, bridge_mode_cb);
  gtk_widget_class_bind_template_callback (widget_class, test_clicked_cb);
  gtk_widget_class_bind_template_callback (widget_class, url_toggled_cb);
  gtk_widget_class_set_accessible_role (widget_class, GTK_ACCESSIBLE_ROLE_LIST_ITEM);
}

static void
twp_bridge_row_init (TwpBridgeRow *self)
{
  self->cancellable = g_cancellable_new ();
  gtk_widget_init_template (GTK_WIDGET (self));
  update_accessible (self);
}

GtkWidget *
twp_bridge_row_new (TwpDBusBridge *bridge)
{
  g_return_val_if_fail (bridge == NULL || TWP_DBUS_IS_BRIDGE (bridge), NULL);

  return g_object_new (TWP_TYPE_BRIDGE_ROW, "bridge", bridge, NULL);
}

TwpDBusBridge *
twp_bridge_row_get_bridge (TwpBridgeRow *self)
{
  g_return_val_if_fail (TWP_IS_BRIDGE_ROW (self), NULL);

  return self->bridge;
}

const char *
twp_bridge_row_get_accessible_label (TwpBridgeRow *self)
{
  return self->a11y_label;
}

const char *
twp_bridge_row_get_accessible_description (TwpBridgeRow *self)
{
  return self->a11y_description;
}

const char *
twp_bridge_row_get_host (TwpBridgeRow *self)
{
  return self->host;
}

const char *
twp_bridge_row_get_test_result (TwpBridgeRow *self)
{
  return self->test_result;
}

GtkButton *
twp_bridge_row_get_test_button (TwpBridgeRow *self)
{
  return self->test_button;
}

const char *
twp_bridge_row_get_state_text (TwpBridgeRow *self)
{
  return gtk_label_get_label (self->state_label);
}

/* Empty while the bridge is not failing (the label is hidden then). */
const char *
twp_bridge_row_get_reason_text (TwpBridgeRow *self)
{
  return gtk_widget_get_visible (GTK_WIDGET (self->reason_label)) ? gtk_label_get_label (self->reason_label) : "";
}
