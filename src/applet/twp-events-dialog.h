/* SPDX-License-Identifier: BSD-3-Clause */
/* A transport's recent events, live, and "Copy diagnostics". */
#pragma once

#include <adwaita.h>

#include "twp-dbus-generated.h"

G_BEGIN_DECLS

#define TWP_TYPE_EVENTS_DIALOG (twp_events_dialog_get_type ())
G_DECLARE_FINAL_TYPE (TwpEventsDialog, twp_events_dialog, TWP, EVENTS_DIALOG, AdwWindow)

/* @transport may be NULL (an empty dialog, for tests). */
GtkWidget *twp_events_dialog_new (TwpDBusTransport *transport);

G_END_DECLS
