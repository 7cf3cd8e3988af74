/* SPDX-License-Identifier: BSD-3-Clause */
/* For tests: the dialog on a fake home and AppArmor directory, and its
 * buttons' code paths. */
#pragma once

#include "twp-tor-browser-dialog.h"

G_BEGIN_DECLS

/* @home: where to look for installations; @apparmor_dir: where
 * torbrowser-launcher's profile would be (normally /etc/apparmor.d). */
GtkWidget  *twp_tor_browser_dialog_new_full       (GtkWindow  *parent,
                                                   const char *home,
                                                   const char *data_home,
                                                   const char *apparmor_dir);
guint       twp_tor_browser_dialog_get_n_installs (TwpTorBrowserDialog *self);
/* The "Set Up" / "Undo" button of installation @i. */
GtkButton  *twp_tor_browser_dialog_get_button     (TwpTorBrowserDialog *self,
                                                   guint                i);
/* What the folder chooser does with the folder picked. */
void        twp_tor_browser_dialog_add_folder     (TwpTorBrowserDialog *self,
                                                   GFile               *folder);
const char *twp_tor_browser_dialog_get_status     (TwpTorBrowserDialog *self);
gboolean    twp_tor_browser_dialog_apparmor_shown (TwpTorBrowserDialog *self);
const char *twp_tor_browser_dialog_get_apparmor   (TwpTorBrowserDialog *self);
void        twp_tor_browser_dialog_set_bridge_line (TwpTorBrowserDialog *self,
                                                    const char          *line);
const char *twp_tor_browser_dialog_get_bridge_result (TwpTorBrowserDialog *self);

G_END_DECLS
