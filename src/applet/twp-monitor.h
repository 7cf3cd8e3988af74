/* SPDX-License-Identifier: BSD-3-Clause */
/* Follows every transport on the session bus: ListNames filtered by the
 * instance prefix, then NameOwnerChanged with arg0namespace; no polling.
 * The result is a GListModel of TwpInstance, in the order they became
 * ready (the window groups them by origin). */
#pragma once

#include <gio/gio.h>

#include "twp-instance.h"

G_BEGIN_DECLS

#define TWP_MONITOR_NAME_PREFIX "io.github.TorWebSocketProxy1.instance"

#define TWP_TYPE_MONITOR (twp_monitor_get_type ())
G_DECLARE_FINAL_TYPE (TwpMonitor, twp_monitor, TWP, MONITOR, GObject)

/* @connection may be NULL (no session bus): the list then stays empty.
 * When the bus goes away the list empties, and the monitor connects again
 * to the session bus address ("address" property) as it comes back. */
TwpMonitor *twp_monitor_new           (GDBusConnection *connection);
/* A GListModel of TwpInstance. */
GListModel *twp_monitor_get_instances (TwpMonitor *self);

G_END_DECLS
