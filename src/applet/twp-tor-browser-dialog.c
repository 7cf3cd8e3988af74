/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-applet"

#include "config.h"

#include "twp-tor-browser-dialog-private.h"

#include <glib/gi18n.h>

#include "twp-tor-browser.h"

struct _TwpTorBrowserDialog
{
  AdwWindow parent_instance;

  /* owned */
  GPtrArray *installs;          /* TwpTorBrowser*, in row order */
  GPtrArray *buttons;           /* GtkButton*, borrowed from the rows */
  char *apparmor_dir;
  char *apparmor_text;
  GtkFileChooserNative *chooser;

  /* template children (borrowed) */
  AdwToastOverlay *toast_overlay;
  AdwPreferencesGroup *installs_group;
  AdwActionRow *choose_row;
  GtkLabel *status_label;
  GtkBox *apparmor_box;
  GtkLabel *apparmor_label;
  GtkEntry *bridge_entry;
  GtkLabel *bridge_result_label;
};

G_DEFINE_FINAL_TYPE (TwpTorBrowserDialog, twp_tor_browser_dialog, ADW_TYPE_WINDOW)

static const char *
kind_text (TwpTorBrowserKind kind)
{
  switch (kind)
    {
    case TWP_TOR_BROWSER_LAUNCHER:
      return _("Tor Browser (torbrowser-launcher)");
    case TWP_TOR_BROWSER_FLATPAK:
      return _("Tor Browser (Flatpak)");
    case TWP_TOR_BROWSER_FOLDER:
    default:
      return _("Tor Browser");
    }
}

static void
show_status (TwpTorBrowserDialog *self,
             const char          *text,
             gboolean             is_error)
{
  gtk_label_set_label (self->status_label, text);
  gtk_widget_set_visible (GTK_WIDGET (self->status_label), TRUE);
  if (is_error)
    gtk_widget_add_css_class (GTK_WIDGET (self->status_label), "error");
  else
    gtk_widget_remove_css_class (GTK_WIDGET (self->status_label), "error");
}

static void
update_button (TwpTorBrowserDialog *self,
               guint                i)
{
  TwpTorBrowser *tb = g_ptr_array_index (self->installs, i);
  GtkButton *button = g_ptr_array_index (self->buttons, i);
  gboolean set_up = twp_tor_browser_is_set_up (tb);

  g_autofree char *accessible = NULL;

  gtk_button_set_label (button, set_up ? _("_Undo") : _("_Set Up"));
  /* "Set Up" alone says not which Tor Browser to a screen reader.
   * Translators: "Set up Tor Browser (Flatpak)", "Undo for Tor Browser" */
  accessible = g_strdup_printf (set_up ? _("Undo for %s") : _("Set up %s"), kind_text (tb->kind));
  gtk_accessible_update_property (GTK_ACCESSIBLE (button), GTK_ACCESSIBLE_PROPERTY_LABEL, accessible, -1);
  gtk_widget_set_tooltip_text (GTK_WIDGET (button),
                               set_up ? _("Take the websocket line out of this Tor Browser’s torrc")
                                      : _("Add the websocket line to this Tor Browser’s torrc"));
}

static void
install_clicked_cb (GtkButton           *button,
                    TwpTorBrowserDialog *self)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *text = NULL;
  TwpTorBrowser *tb;
  guint i;

  if (!g_ptr_array_find (self->buttons, button, &i))
    return;
  tb = g_ptr_array_index (self->installs, i);
  if (twp_tor_browser_is_set_up (tb))
    {
      if (!twp_tor_browser_undo (tb, &error))
        {
          show_status (self, error->message, TRUE);
          return;
        }
      show_status (self, _("Undone: the websocket line is out of this Tor Browser’s torrc; every other line is "
                           "as it was."), FALSE);
      gtk_widget_set_visible (GTK_WIDGET (self->apparmor_box), FALSE);
      update_button (self, i);
      return;
    }
  if (!twp_tor_browser_set_up (tb, &error))
    {
      show_status (self, error->message, TRUE);
      return;
    }
  if (g_file_test (tb->backup, G_FILE_TEST_EXISTS))
    /* Translators: %s is a file name. */
    text = g_strdup_printf (_("Done: this Tor Browser’s tor will start the websocket transport when a bridge needs "
                              "it. The torrc as it was is kept in %s."), tb->backup);
  else
    text = g_strdup (_("Done: this Tor Browser’s tor will start the websocket transport when a bridge needs it."));
  show_status (self, text, FALSE);
  gtk_widget_set_visible (GTK_WIDGET (self->apparmor_box), twp_tor_browser_is_confined (tb, self->apparmor_dir));
  update_button (self, i);
}

static void
add_install (TwpTorBrowserDialog *self,
             TwpTorBrowser       *tb)
{
  g_autofree char *subtitle = NULL;
  GtkWidget *row;
  GtkWidget *button;

  row = adw_action_row_new ();
  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (row), kind_text (tb->kind));
  subtitle = g_markup_escape_text (tb->root, -1);
  adw_action_row_set_subtitle (ADW_ACTION_ROW (row), subtitle);
  button = gtk_button_new_with_mnemonic (_("_Set Up"));
  gtk_widget_set_valign (button, GTK_ALIGN_CENTER);
  g_signal_connect (button, "clicked", G_CALLBACK (install_clicked_cb), self);
  adw_action_row_add_suffix (ADW_ACTION_ROW (row), button);
  adw_preferences_group_add (self->installs_group, row);
  /* "Another Tor Browser Folder" stays last. */
  g_object_ref (self->choose_row);
  adw_preferences_group_remove (self->installs_group, GTK_WIDGET (self->choose_row));
  adw_preferences_group_add (self->installs_group, GTK_WIDGET (self->choose_row));
  g_object_unref (self->choose_row);
  g_ptr_array_add (self->installs, tb);
  g_ptr_array_add (self->buttons, button);
  update_button (self, self->installs->len - 1);
}

void
twp_tor_browser_dialog_add_folder (TwpTorBrowserDialog *self,
                                   GFile               *folder)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = NULL;
  TwpTorBrowser *tb;

  g_return_if_fail (TWP_IS_TOR_BROWSER_DIALOG (self));
  g_return_if_fail (G_IS_FILE (folder));

  path = g_file_get_path (folder);
  tb = path != NULL ? twp_tor_browser_new_for_folder (path, TWP_TOR_BROWSER_FOLDER, &error) : NULL;
  if (tb == NULL)
    {
      show_status (self, error != NULL ? error->message : _("This folder is not on this computer."), TRUE);
      return;
    }
  for (guint i = 0; i < self->installs->len; i++)
    if (g_strcmp0 (((TwpTorBrowser *) g_ptr_array_index (self->installs, i))->root, tb->root) == 0)
      {
        twp_tor_browser_free (tb);
        show_status (self, _("This Tor Browser is already in the list."), FALSE);
        return;
      }
  add_install (self, tb);
  show_status (self, _("Tor Browser found: click Set Up next to it."), FALSE);
}

static void
chooser_response_cb (GtkNativeDialog     *chooser,
                     int                  response,
                     TwpTorBrowserDialog *self)
{
  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr(GFile) folder = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (chooser));

      if (folder != NULL)
        twp_tor_browser_dialog_add_folder (self, folder);
    }
  g_clear_object (&self->chooser);
}

static void
choose_folder_activated (GtkWidget  *widget,
                         const char *action_name,
                         GVariant   *parameter)
{
  TwpTorBrowserDialog *self = TWP_TOR_BROWSER_DIALOG (widget);

  if (self->chooser != NULL)
    return;
  /* GTK 4.8 has no GtkFileDialog: the native chooser (a portal when
   * sandboxed) picks the folder. */
  self->chooser = gtk_file_chooser_native_new (_("Choose the Tor Browser Folder"), GTK_WINDOW (self),
                                               GTK_FILE_CHOOSER_ACTION_SELECT_FOLDER, _("_Select"), NULL);
  gtk_native_dialog_set_modal (GTK_NATIVE_DIALOG (self->chooser), TRUE);
  g_signal_connect (self->chooser, "response", G_CALLBACK (chooser_response_cb), self);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (self->chooser));
}

static void
copy_apparmor_activated (GtkWidget  *widget,
                         const char *action_name,
                         GVariant   *parameter)
{
  TwpTorBrowserDialog *self = TWP_TOR_BROWSER_DIALOG (widget);

  gdk_clipboard_set_text (gtk_widget_get_clipboard (widget), self->apparmor_text);
  adw_toast_overlay_add_toast (self->toast_overlay, adw_toast_new (_("Commands copied")));
}

static void
check_bridge_activated (GtkWidget  *widget,
                        const char *action_name,
                        GVariant   *parameter)
{
  TwpTorBrowserDialog *self = TWP_TOR_BROWSER_DIALOG (widget);
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;
  g_autofree char *text = NULL;
  GtkWidget *result = GTK_WIDGET (self->bridge_result_label);

  line = twp_bridge_line_check (gtk_editable_get_text (GTK_EDITABLE (self->bridge_entry)), &error);
  gtk_widget_set_visible (result, TRUE);
  if (line == NULL)
    {
      gtk_label_set_label (self->bridge_result_label, error->message);
      gtk_widget_add_css_class (result, "error");
      gtk_accessible_update_state (GTK_ACCESSIBLE (self->bridge_entry), GTK_ACCESSIBLE_STATE_INVALID,
                                   GTK_ACCESSIBLE_INVALID_TRUE, -1);
      return;
    }
  gtk_accessible_reset_state (GTK_ACCESSIBLE (self->bridge_entry), GTK_ACCESSIBLE_STATE_INVALID);
  gtk_widget_remove_css_class (result, "error");
  /* Translators: %s is the bridge line as copied. */
  text = g_strdup_printf (_("This bridge line is valid, and copied: %s"), line);
  gtk_label_set_label (self->bridge_result_label, text);
  gdk_clipboard_set_text (gtk_widget_get_clipboard (widget), line);
  adw_toast_overlay_add_toast (self->toast_overlay, adw_toast_new (_("Bridge line copied")));
}

static void
twp_tor_browser_dialog_dispose (GObject *object)
{
  TwpTorBrowserDialog *self = TWP_TOR_BROWSER_DIALOG (object);

  if (self->chooser != NULL)
    gtk_native_dialog_destroy (GTK_NATIVE_DIALOG (self->chooser));
  g_clear_object (&self->chooser);
  gtk_widget_dispose_template (GTK_WIDGET (self), TWP_TYPE_TOR_BROWSER_DIALOG);
  G_OBJECT_CLASS (twp_tor_browser_dialog_parent_class)->dispose (object);
}

static void
twp_tor_browser_dialog_finalize (GObject *object)
{
  TwpTorBrowserDialog *self = TWP_TOR_BROWSER_DIALOG (object);

  g_ptr_array_unref (self->installs);
  g_ptr_array_unref (self->buttons);
  g_free (self->apparmor_dir);
  g_free (self->apparmor_text);
  G_OBJECT_CLASS (twp_tor_browser_dialog_parent_class)->finalize (object);
}

static void
twp_tor_browser_dialog_class_init (TwpTorBrowserDialogClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = twp_tor_browser_dialog_dispose;
  object_class->finalize = twp_tor_browser_dialog_finalize;

  gtk_widget_class_set_template_from_resource (widget_class, "/io/github/TorWebSocketProxy/ui/twp-tor-browser-dialog.ui");
  gtk_widget_class_bind_template_child (widget_class, TwpTorBrowserDialog, toast_overlay);
  gtk_widget_class_bind_template_child (widget_class, TwpTorBrowserDialog, installs_group);
  gtk_widget_class_bind_template_child (widget_class, TwpTorBrowserDialog, choose_row);
  gtk_widget_class_bind_template_child (widget_class, TwpTorBrowserDialog, status_label);
  gtk_widget_class_bind_template_child (widget_class, TwpTorBrowserDialog, apparmor_box);
  gtk_widget_class_bind_template_child (widget_class, TwpTorBrowserDialog, apparmor_label);
  gtk_widget_class_bind_template_child (widget_class, TwpTorBrowserDialog, bridge_entry);
  gtk_widget_class_bind_template_child (widget_class, TwpTorBrowserDialog, bridge_result_label);
  gtk_widget_class_install_action (widget_class, "tor-browser.choose-folder", NULL, choose_folder_activated);
  gtk_widget_class_install_action (widget_class, "tor-browser.copy-apparmor", NULL, copy_apparmor_activated);
  gtk_widget_class_install_action (widget_class, "tor-browser.check-bridge", NULL, check_bridge_activated);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Escape, 0, "window.close", NULL);
}

static void
bridge_entry_activate_cb (GtkEntry            *entry,
                          TwpTorBrowserDialog *self)
{
  gtk_widget_activate_action (GTK_WIDGET (self), "tor-browser.check-bridge", NULL);
}

static void
twp_tor_browser_dialog_init (TwpTorBrowserDialog *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  self->installs = g_ptr_array_new_with_free_func ((GDestroyNotify) twp_tor_browser_free);
  self->buttons = g_ptr_array_new ();
  self->apparmor_text = twp_tor_browser_apparmor_commands ();
  gtk_label_set_label (self->apparmor_label, self->apparmor_text);
  g_signal_connect (self->bridge_entry, "activate", G_CALLBACK (bridge_entry_activate_cb), self);
}

GtkWidget *
twp_tor_browser_dialog_new_full (GtkWindow  *parent,
                                 const char *home,
                                 const char *data_home,
                                 const char *apparmor_dir)
{
  TwpTorBrowserDialog *self;
  g_autoptr(GPtrArray) found = NULL;

  g_return_val_if_fail (parent == NULL || GTK_IS_WINDOW (parent), NULL);
  g_return_val_if_fail (home != NULL, NULL);

  self = g_object_new (TWP_TYPE_TOR_BROWSER_DIALOG, "transient-for", parent, NULL);
  self->apparmor_dir = g_strdup (apparmor_dir);
  found = twp_tor_browser_find (home, data_home);
  for (guint i = 0; i < found->len; i++)
    add_install (self, g_ptr_array_steal_index (found, i--));
  if (self->installs->len == 0)
    show_status (self, _("No Tor Browser from torbrowser-launcher was found. If you extracted Tor Browser "
                         "yourself, choose its folder."), FALSE);
  return GTK_WIDGET (self);
}

GtkWidget *
twp_tor_browser_dialog_new (GtkWindow *parent)
{
  return twp_tor_browser_dialog_new_full (parent, g_get_home_dir (), g_get_user_data_dir (), "/etc/apparmor.d");
}

guint
twp_tor_browser_dialog_get_n_installs (TwpTorBrowserDialog *self)
{
  g_return_val_if_fail (TWP_IS_TOR_BROWSER_DIALOG (self), 0);
  return self->installs->len;
}

GtkButton *
twp_tor_browser_dialog_get_button (TwpTorBrowserDialog *self,
                                   guint                i)
{
  g_return_val_if_fail (TWP_IS_TOR_BROWSER_DIALOG (self), NULL);
  g_return_val_if_fail (i < self->buttons->len, NULL);
  return g_ptr_array_index (self->buttons, i);
}

const char *
twp_tor_browser_dialog_get_status (TwpTorBrowserDialog *self)
{
  g_return_val_if_fail (TWP_IS_TOR_BROWSER_DIALOG (self), NULL);
  return gtk_widget_get_visible (GTK_WIDGET (self->status_label)) ? gtk_label_get_label (self->status_label) : NULL;
}

gboolean
twp_tor_browser_dialog_apparmor_shown (TwpTorBrowserDialog *self)
{
  g_return_val_if_fail (TWP_IS_TOR_BROWSER_DIALOG (self), FALSE);
  return gtk_widget_get_visible (GTK_WIDGET (self->apparmor_box));
}

const char *
twp_tor_browser_dialog_get_apparmor (TwpTorBrowserDialog *self)
{
  g_return_val_if_fail (TWP_IS_TOR_BROWSER_DIALOG (self), NULL);
  return gtk_label_get_label (self->apparmor_label);
}

void
twp_tor_browser_dialog_set_bridge_line (TwpTorBrowserDialog *self,
                                        const char          *line)
{
  g_return_if_fail (TWP_IS_TOR_BROWSER_DIALOG (self));
  gtk_editable_set_text (GTK_EDITABLE (self->bridge_entry), line);
}

const char *
twp_tor_browser_dialog_get_bridge_result (TwpTorBrowserDialog *self)
{
  g_return_val_if_fail (TWP_IS_TOR_BROWSER_DIALOG (self), NULL);
  return gtk_widget_get_visible (GTK_WIDGET (self->bridge_result_label))
         ? gtk_label_get_label (self->bridge_result_label) : NULL;
}
