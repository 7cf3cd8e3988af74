/* SPDX-License-Identifier: BSD-3-Clause */
/* What the tests read back from a bridge row. */
#pragma once

#include "twp-bridge-row.h"

G_BEGIN_DECLS

/* The accessible label and description set last (what a screen reader
 * hears), the host shown, and the text of the failure reason. */
const char *twp_bridge_row_get_accessible_label       (TwpBridgeRow *self);
const char *twp_bridge_row_get_accessible_description (TwpBridgeRow *self);
const char *twp_bridge_row_get_host                   (TwpBridgeRow *self);
/* The inline result of the last Test, NULL before any. */
const char *twp_bridge_row_get_test_result            (TwpBridgeRow *self);
GtkButton  *twp_bridge_row_get_test_button            (TwpBridgeRow *self);
/* The visible texts: state line and failure reason. */
const char *twp_bridge_row_get_state_text             (TwpBridgeRow *self);
const char *twp_bridge_row_get_reason_text            (TwpBridgeRow *self);

G_END_DECLS
