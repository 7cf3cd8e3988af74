/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-applet"

#include "config.h"

#include "twp-window.h"

#include <glib/gi18n.h>

#include "twp-tor-browser.h"
#include "twp-tor-browser-dialog.h"
#include "twp-transport-group.h"

struct _TwpWindow
{
  AdwApplicationWindow parent_instance;

  /* owned */
  TwpMonitor *monitor;
  GNetworkMonitor *network_monitor;
  gulong network_id;            /* notify::network-available, until dispose */
  GHashTable *groups;           /* TwpInstance -> TwpTransportGroup (borrowed widget) */
  char *torrc_text;

  /* template children (borrowed) */
  GtkRevealer *offline_revealer;
  AdwToastOverlay *toast_overlay;
  GtkStack *stack;
  GtkLabel *torrc_label;
  GtkBox *tor_browser_section;
  GtkBox *system_section;
  GtkBox *other_section;
};

G_DEFINE_FINAL_TYPE (TwpWindow, twp_window, ADW_TYPE_APPLICATION_WINDOW)

enum {
  PROP_0,
  PROP_MONITOR,
  PROP_NETWORK_MONITOR,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static GtkBox *
section_for (TwpWindow   *self,
             TwpInstance *instance)
{
  const char *origin = twp_dbus_transport_get_origin_hint (twp_instance_get_transport (instance));

  if (g_strcmp0 (origin, "tor-browser") == 0)
    return self->tor_browser_section;
  if (g_strcmp0 (origin, "system-tor") == 0)
    return self->system_section;
  return self->other_section;
}

/* A section shows while it holds a group (its first child is the
 * heading). */
static void
update_section (GtkBox *section)
{
  GtkWidget *heading = gtk_widget_get_first_child (GTK_WIDGET (section));

  gtk_widget_set_visible (GTK_WIDGET (section), heading != NULL && gtk_widget_get_next_sibling (heading) != NULL);
}

/* Groups are added and removed one by one, never rebuilt, so that a row's
 * state (a test result, a revealed URL, focus) survives other transports
 * coming and going. */
static void
sync_groups (TwpWindow *self)
{
  GListModel *instances = twp_monitor_get_instances (self->monitor);
  guint n = g_list_model_get_n_items (instances);
  g_autoptr(GHashTable) present = g_hash_table_new (NULL, NULL);
  GHashTableIter iter;
  gpointer key;
  gpointer value;

  for (guint i = 0; i < n; i++)
    {
      g_autoptr(TwpInstance) instance = g_list_model_get_item (instances, i);

      g_hash_table_add (present, instance);
      if (!g_hash_table_contains (self->groups, instance))
        {
          GtkWidget *group = twp_transport_group_new (instance);
          GtkBox *section = section_for (self, instance);

          gtk_box_append (section, group);
          g_hash_table_insert (self->groups, g_object_ref (instance), group);
          update_section (section);
        }
    }

  g_hash_table_iter_init (&iter, self->groups);
  while (g_hash_table_iter_next (&iter, &key, &value))
    {
      GtkWidget *group = value;
      GtkWidget *section;

      if (g_hash_table_contains (present, key))
        continue;
      section = gtk_widget_get_parent (group);
      gtk_box_remove (GTK_BOX (section), group);
      g_hash_table_iter_remove (&iter);
      update_section (GTK_BOX (section));
    }

  gtk_stack_set_visible_child_name (self->stack, n == 0 ? "empty" : "list");
}

static void
instances_changed_cb (GListModel *model,
                      guint       position,
                      guint       removed,
                      guint       added,
                      TwpWindow  *self)
{
  sync_groups (self);
}

/* Live, from GNetworkMonitor: no polling. */
static void
network_changed_cb (TwpWindow *self)
{
  gtk_revealer_set_reveal_child (self->offline_revealer,
                                 !g_network_monitor_get_network_available (self->network_monitor));
}

static void
tor_browser_activated (GtkWidget  *widget,
                       const char *action_name,
                       GVariant   *parameter)
{
  gtk_window_present (GTK_WINDOW (twp_tor_browser_dialog_new (GTK_WINDOW (widget))));
}

static void
copy_torrc_activated (GtkWidget  *widget,
                      const char *action_name,
                      GVariant   *parameter)
{
  TwpWindow *self = TWP_WINDOW (widget);

  gdk_clipboard_set_text (gtk_widget_get_clipboard (widget), self->torrc_text);
  adw_toast_overlay_add_toast (self->toast_overlay, adw_toast_new (_("torrc lines copied")));
}

static void
toast_activated (GtkWidget  *widget,
                 const char *action_name,
                 GVariant   *parameter)
{
  TwpWindow *self = TWP_WINDOW (widget);

  adw_toast_overlay_add_toast (self->toast_overlay, adw_toast_new (g_variant_get_string (parameter, NULL)));
}

static void
twp_window_constructed (GObject *object)
{
  TwpWindow *self = TWP_WINDOW (object);

  G_OBJECT_CLASS (twp_window_parent_class)->constructed (object);

  if (self->network_monitor == NULL)
    self->network_monitor = g_object_ref (g_network_monitor_get_default ());
  self->network_id = g_signal_connect_swapped (self->network_monitor, "notify::network-available",
                                               G_CALLBACK (network_changed_cb), self);
  network_changed_cb (self);

  if (self->monitor != NULL)
    {
      g_signal_connect_object (twp_monitor_get_instances (self->monitor), "items-changed",
                               G_CALLBACK (instances_changed_cb), self, 0);
      sync_groups (self);
    }
}

static void
twp_window_dispose (GObject *object)
{
  TwpWindow *self = TWP_WINDOW (object);

  /* The default monitor outlives us, and the revealer goes below. */
  if (self->network_monitor != NULL)
    g_clear_signal_handler (&self->network_id, self->network_monitor);
  g_clear_object (&self->network_monitor);
  gtk_widget_dispose_template (GTK_WIDGET (self), TWP_TYPE_WINDOW);
  g_hash_table_remove_all (self->groups);
  g_clear_object (&self->monitor);
  G_OBJECT_CLASS (twp_window_parent_class)->dispose (object);
}

static void
twp_window_finalize (GObject *object)
{
  TwpWindow *self = TWP_WINDOW (object);

  g_hash_table_unref (self->groups);
  g_free (self->torrc_text);
  G_OBJECT_CLASS (twp_window_parent_class)->finalize (object);
}

static void
twp_window_get_property (GObject    *object,
                         guint       prop_id,
                         GValue     *value,
                         GParamSpec *pspec)
{
  TwpWindow *self = TWP_WINDOW (object);

  switch (prop_id)
    {
    case PROP_MONITOR:
      g_value_set_object (value, self->monitor);
      break;
    case PROP_NETWORK_MONITOR:
      g_value_set_object (value, self->network_monitor);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
twp_window_set_property (GObject      *object,
                         guint         prop_id,
                         const GValue *value,
                         GParamSpec   *pspec)
{
  TwpWindow *self = TWP_WINDOW (object);

  switch (prop_id)
    {
    case PROP_MONITOR:
      self->monitor = g_value_dup_object (value);
      break;
    case PROP_NETWORK_MONITOR:
      self->network_monitor = g_value_dup_object (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
twp_window_class_init (TwpWindowClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->constructed = twp_window_constructed;
  object_class->dispose = twp_window_dispose;
  object_class->finalize = twp_window_finalize;
  object_class->get_property = twp_window_get_property;
  object_class->set_property = twp_window_set_property;

  properties[PROP_MONITOR] =
    g_param_spec_object ("monitor", NULL, NULL, TWP_TYPE_MONITOR,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  /* NULL: the default one (tests pass their own). */
  properties[PROP_NETWORK_MONITOR] =
    g_param_spec_object ("network-monitor", NULL, NULL, G_TYPE_NETWORK_MONITOR,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  gtk_widget_class_set_template_from_resource (widget_class, "/io/github/TorWebSocketProxy/ui/twp-window.ui");
  gtk_widget_class_bind_template_child (widget_class, TwpWindow, offline_revealer);
  gtk_widget_class_bind_template_child (widget_class, TwpWindow, toast_overlay);
  gtk_widget_class_bind_template_child (widget_class, TwpWindow, stack);
  gtk_widget_class_bind_template_child (widget_class, TwpWindow, torrc_label);
  gtk_widget_class_bind_template_child (widget_class, TwpWindow, tor_browser_section);
  gtk_widget_class_bind_template_child (widget_class, TwpWindow, system_section);
  gtk_widget_class_bind_template_child (widget_class, TwpWindow, other_section);

  gtk_widget_class_install_action (widget_class, "win.copy-torrc", NULL, copy_torrc_activated);
  gtk_widget_class_install_action (widget_class, "win.tor-browser", NULL, tor_browser_activated);
  gtk_widget_class_install_action (widget_class, "win.toast", "s", toast_activated);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_w, GDK_CONTROL_MASK, "window.close", NULL);
}

static void
twp_window_init (TwpWindow *self)
{
  self->groups = g_hash_table_new_full (NULL, NULL, g_object_unref, NULL);
  gtk_widget_init_template (GTK_WIDGET (self));

  /* One source for these lines: the torrc snippet test runs them. */
  self->torrc_text = twp_torrc_client_example ();
  gtk_label_set_label (self->torrc_label, self->torrc_text);
  gtk_stack_set_visible_child_name (self->stack, "empty");
}

TwpWindow *
twp_window_new (GtkApplication *application,
                TwpMonitor     *monitor)
{
  g_return_val_if_fail (application == NULL || GTK_IS_APPLICATION (application), NULL);
  g_return_val_if_fail (monitor == NULL || TWP_IS_MONITOR (monitor), NULL);

  return g_object_new (TWP_TYPE_WINDOW, "application", application, "monitor", monitor, NULL);
}

const char *
twp_window_get_torrc_text (TwpWindow *self)
{
  g_return_val_if_fail (TWP_IS_WINDOW (self), NULL);

  return self->torrc_text;
}

gboolean
twp_window_is_offline_shown (TwpWindow *self)
{
  g_return_val_if_fail (TWP_IS_WINDOW (self), FALSE);

  return gtk_revealer_get_reveal_child (self->offline_revealer);
}

gboolean
twp_window_is_empty (TwpWindow *self)
{
  g_return_val_if_fail (TWP_IS_WINDOW (self), FALSE);

  return g_strcmp0 (gtk_stack_get_visible_child_name (self->stack), "empty") == 0;
}

GtkWidget *
twp_window_get_group (TwpWindow   *self,
                      TwpInstance *instance)
{
  g_return_val_if_fail (TWP_IS_WINDOW (self), NULL);

  return g_hash_table_lookup (self->groups, instance);
}

gboolean
twp_window_shows_under (TwpWindow   *self,
                        TwpInstance *instance,
                        const char  *origin)
{
  GtkWidget *group;
  GtkBox *section;

  g_return_val_if_fail (TWP_IS_WINDOW (self), FALSE);

  group = g_hash_table_lookup (self->groups, instance);
  if (g_strcmp0 (origin, "tor-browser") == 0)
    section = self->tor_browser_section;
  else if (g_strcmp0 (origin, "system-tor") == 0)
    section = self->system_section;
  else
    section = self->other_section;
  return group != NULL && gtk_widget_get_parent (group) == GTK_WIDGET (section) &&
         gtk_widget_get_visible (GTK_WIDGET (section));
}
