/* SPDX-License-Identifier: BSD-3-Clause */
/* One running transport seen on the session bus: its Transport proxy and a
 * live list of its Bridge proxies, read through the transport's
 * ObjectManager. */
#pragma once

#include <gio/gio.h>

#include "twp-dbus-generated.h"

G_BEGIN_DECLS

#define TWP_TYPE_INSTANCE (twp_instance_get_type ())
G_DECLARE_FINAL_TYPE (TwpInstance, twp_instance, TWP, INSTANCE, GObject)

/* Connects to the ObjectManager of @bus_name; finishes once the Transport
 * object is known. */
void             twp_instance_new_async      (GDBusConnection     *connection,
                                              const char          *bus_name,
                                              GCancellable        *cancellable,
                                              GAsyncReadyCallback  callback,
                                              gpointer             user_data);
TwpInstance     *twp_instance_new_finish     (GAsyncResult        *result,
                                              GError             **error);

const char      *twp_instance_get_bus_name   (TwpInstance *self);
guint            twp_instance_get_pid        (TwpInstance *self);
TwpDBusTransport *twp_instance_get_transport (TwpInstance *self);
/* A GListModel of TwpDBusBridge, in the order they appeared. */
GListModel      *twp_instance_get_bridges    (TwpInstance *self);

G_END_DECLS
