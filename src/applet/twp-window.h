/* SPDX-License-Identifier: BSD-3-Clause */
/* The main window: every running transport, grouped by origin (Tor
 * Browser, system tor, other), or an empty state with torrc help. */
#pragma once

#include <adwaita.h>

#include "twp-monitor.h"

G_BEGIN_DECLS

#define TWP_TYPE_WINDOW (twp_window_get_type ())
G_DECLARE_FINAL_TYPE (TwpWindow, twp_window, TWP, WINDOW, AdwApplicationWindow)

/* @application and @monitor may be NULL (tests). */
TwpWindow *twp_window_new             (GtkApplication *application,
                                       TwpMonitor     *monitor);
/* The example torrc lines of the empty state. */
const char *twp_window_get_torrc_text (TwpWindow *self);
/* Whether the empty state is shown. */
gboolean    twp_window_is_empty       (TwpWindow *self);
/* Whether the offline notice is shown (GNetworkMonitor says the network
 * is not available). */
gboolean    twp_window_is_offline_shown (TwpWindow *self);
/* The group shown for @instance, or NULL. */
GtkWidget  *twp_window_get_group      (TwpWindow   *self,
                                       TwpInstance *instance);
/* For tests: TRUE when @instance's group is shown under the heading of
 * @origin ("tor-browser", "system-tor" or "other"). */
gboolean    twp_window_shows_under    (TwpWindow   *self,
                                       TwpInstance *instance,
                                       const char  *origin);

G_END_DECLS
