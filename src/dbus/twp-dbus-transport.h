/* SPDX-License-Identifier: BSD-3-Clause */
/* The io.github.TorWebSocketProxy1.Transport object of a running transport:
 * a subclass of the generated skeleton that mirrors the client's or the
 * server's state, keeps the recent events and takes the frame-mode choice.
 *
 * The generated GInterface owns the name TwpDBusTransport, so the class is
 * TwpDBusTransportImpl. */
#pragma once

#include <gio/gio.h>
#include <sys/types.h>

#include "twp-client.h"
#include "twp-dbus-generated.h"
#include "twp-server.h"

G_BEGIN_DECLS

/* Bound of the recent-events ring (GetRecentEvents). */
#define TWP_DBUS_TRANSPORT_MAX_EVENTS 100

#define TWP_DBUS_TYPE_TRANSPORT_IMPL (twp_dbus_transport_impl_get_type ())
G_DECLARE_FINAL_TYPE (TwpDBusTransportImpl, twp_dbus_transport_impl,
                      TWP_DBUS, TRANSPORT_IMPL, TwpDBusTransportSkeleton)

/* @state_location may be NULL (unmanaged); @settings (nullable) receives
 * the frame-mode choices made over D-Bus. */
TwpDBusTransportImpl *twp_dbus_transport_impl_new_for_client (TwpClient  *client,
                                                              const char *state_location,
                                                              GSettings  *settings);
TwpDBusTransportImpl *twp_dbus_transport_impl_new_for_server (TwpServer  *server,
                                                              const char *state_location);

/* "tor-browser", "system-tor" or "other", from the state location and the
 * parent's executable (/proc/<parent_pid>/exe). */
const char *twp_dbus_origin_hint (const char *state_location,
                                  pid_t       parent_pid);

G_END_DECLS
