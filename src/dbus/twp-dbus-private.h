/* SPDX-License-Identifier: BSD-3-Clause */
/* Binding transforms shared by the D-Bus objects: core property types
 * (int enums, TwpFrameMode, free text) to D-Bus property types. */
#pragma once

#include <glib-object.h>

G_BEGIN_DECLS

/* Said in broadcasts instead of free text that unsafe logging may have
 * filled with addresses: signals reach every client on the bus. */
#define TWP_DBUS_WITHHELD "(withheld from broadcasts: unsafe logging is on; see GetDiagnostics)"

/* A core enum (twp-state.h) -> u, negative values as 0. */
gboolean twp_dbus_transform_enum_to_uint  (GBinding     *binding,
                                           const GValue *from,
                                           GValue       *to,
                                           gpointer      user_data);
/* TwpFrameMode -> "binary"/"base64". */
gboolean twp_dbus_transform_frame_mode    (GBinding     *binding,
                                           const GValue *from,
                                           GValue       *to,
                                           gpointer      user_data);
/* Failure details -> what a broadcast may carry: NULL becomes "", and with
 * unsafe logging the text is withheld. */
gboolean twp_dbus_transform_details       (GBinding     *binding,
                                           const GValue *from,
                                           GValue       *to,
                                           gpointer      user_data);
/* Free text for a broadcast signal, as above. */
const char *twp_dbus_broadcast_text       (const char *text);

G_END_DECLS
