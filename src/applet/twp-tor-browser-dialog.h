/* SPDX-License-Identifier: BSD-3-Clause */
/* "Use with Tor Browser": finds Tor Browser installations, adds our line
 * to the chosen one's torrc (or takes it out), shows the AppArmor lines
 * its tor needs, and checks and copies a bridge line for Tor Browser's
 * "Add a Bridge Manually" dialog. The work is in twp-tor-browser.c. */
#pragma once

#include <adwaita.h>

G_BEGIN_DECLS

#define TWP_TYPE_TOR_BROWSER_DIALOG (twp_tor_browser_dialog_get_type ())
G_DECLARE_FINAL_TYPE (TwpTorBrowserDialog, twp_tor_browser_dialog, TWP, TOR_BROWSER_DIALOG, AdwWindow)

/* Looks for installations under the user's home directory. */
GtkWidget *twp_tor_browser_dialog_new (GtkWindow *parent);

G_END_DECLS
