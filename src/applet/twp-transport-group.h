/* SPDX-License-Identifier: BSD-3-Clause */
/* A group of rows for one running transport: its state, the frame-mode
 * switch, its recent events, and one TwpBridgeRow per bridge. */
#pragma once

#include <adwaita.h>

#include "twp-instance.h"

G_BEGIN_DECLS

#define TWP_TYPE_TRANSPORT_GROUP (twp_transport_group_get_type ())
G_DECLARE_FINAL_TYPE (TwpTransportGroup, twp_transport_group, TWP, TRANSPORT_GROUP, AdwPreferencesGroup)

/* @instance may be NULL (an empty group, for tests). */
GtkWidget   *twp_transport_group_new          (TwpInstance       *instance);
TwpInstance *twp_transport_group_get_instance (TwpTransportGroup *self);
/* The frame-mode switch and the bridge list, for tests. */
GtkSwitch   *twp_transport_group_get_mode_switch (TwpTransportGroup *self);
GtkListBox  *twp_transport_group_get_bridge_list (TwpTransportGroup *self);

G_END_DECLS
