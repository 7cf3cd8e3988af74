/* SPDX-License-Identifier: BSD-3-Clause */
/* One io.github.TorWebSocketProxy1.Bridge object: a subclass of the
 * generated skeleton that mirrors a TwpBridge of the client, and answers
 * GetUrl() and Test().
 *
 * The generated GInterface owns the name TwpDBusBridge, so the class is
 * TwpDBusBridgeImpl. */
#pragma once

#include <gio/gio.h>

#include "twp-client.h"
#include "twp-dbus-generated.h"

G_BEGIN_DECLS

/* Bound of one Test(): DNS, TCP, proxy, TLS and upgrade together. */
#define TWP_DBUS_BRIDGE_TEST_TIMEOUT_MS 15000
/* Callers waiting on one running test; more are refused. */
#define TWP_DBUS_BRIDGE_MAX_TEST_WAITERS 16

#define TWP_DBUS_TYPE_BRIDGE_IMPL (twp_dbus_bridge_impl_get_type ())
G_DECLARE_FINAL_TYPE (TwpDBusBridgeImpl, twp_dbus_bridge_impl,
                      TWP_DBUS, BRIDGE_IMPL, TwpDBusBridgeSkeleton)

TwpDBusBridgeImpl *twp_dbus_bridge_impl_new        (TwpClient *client,
                                                    TwpBridge *bridge);
TwpBridge         *twp_dbus_bridge_impl_get_bridge (TwpDBusBridgeImpl *self);
/* Copies the counters (attempts, failures, bytes, RTT), which change too
 * often to follow: the service calls it once a second for every bridge. */
void               twp_dbus_bridge_impl_update_counters (TwpDBusBridgeImpl *self);
/* Cancels a running Test() (its callers get an error). */
void               twp_dbus_bridge_impl_shutdown   (TwpDBusBridgeImpl *self);

G_END_DECLS
