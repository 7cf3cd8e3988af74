/* SPDX-License-Identifier: BSD-3-Clause */
/* What the tests reach inside the events dialog. */
#pragma once

#include "twp-events-dialog.h"

G_BEGIN_DECLS

guint      twp_events_dialog_get_n_events         (TwpEventsDialog *self);
GtkButton *twp_events_dialog_get_copy_button      (TwpEventsDialog *self);
GtkSwitch *twp_events_dialog_get_unredacted_switch (TwpEventsDialog *self);
/* How many reports were copied to the clipboard so far. */
guint      twp_events_dialog_get_n_copied         (TwpEventsDialog *self);
/* The text shown for the @index-th event (oldest first), or NULL. */
const char *twp_events_dialog_get_event_text      (TwpEventsDialog *self,
                                                   guint            index);

G_END_DECLS
