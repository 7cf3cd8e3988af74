/* SPDX-License-Identifier: BSD-3-Clause */
/* A row for one bridge: host, state in words and icon, the phase reached,
 * round-trip time, traffic, the failure reason with a next step, a Test
 * button with its result inline, and whether mode= pins the frame mode. */
#pragma once

#include <gtk/gtk.h>

#include "twp-dbus-generated.h"

G_BEGIN_DECLS

#define TWP_TYPE_BRIDGE_ROW (twp_bridge_row_get_type ())
G_DECLARE_FINAL_TYPE (TwpBridgeRow, twp_bridge_row, TWP, BRIDGE_ROW, GtkListBoxRow)

/* @bridge may be NULL (an empty row, for tests). */
GtkWidget     *twp_bridge_row_new        (TwpDBusBridge *bridge);
TwpDBusBridge *twp_bridge_row_get_bridge (TwpBridgeRow  *self);

G_END_DECLS
