/* SPDX-License-Identifier: BSD-3-Clause */
/* Publishes a running transport on the session bus: one name per process
 * (io.github.TorWebSocketProxy1.instance<PID>, MPRIS style), an
 * ObjectManager on /io/github/TorWebSocketProxy1, the Transport object at
 * /io/github/TorWebSocketProxy1/Transport and one object per bridge at
 * /io/github/TorWebSocketProxy1/bridge/<id>.
 *
 * D-Bus is a window onto the transport, never part of it: without a
 * session bus nothing is published (and no bus is ever autolaunched), and
 * every D-Bus failure is logged and ignored. */
#pragma once

#include <gio/gio.h>

#include "twp-client.h"
#include "twp-server.h"

G_BEGIN_DECLS

#define TWP_DBUS_NAME_PREFIX "io.github.TorWebSocketProxy1.instance"
#define TWP_DBUS_ROOT_PATH "/io/github/TorWebSocketProxy1"
#define TWP_DBUS_TRANSPORT_PATH TWP_DBUS_ROOT_PATH "/Transport"
#define TWP_DBUS_BRIDGE_PATH_PREFIX TWP_DBUS_ROOT_PATH "/bridge/"
#define TWP_DBUS_SETTINGS_SCHEMA "io.github.TorWebSocketProxy"

#define TWP_TYPE_DBUS_SERVICE (twp_dbus_service_get_type ())
G_DECLARE_FINAL_TYPE (TwpDBusService, twp_dbus_service, TWP, DBUS_SERVICE, GObject)

/* The session bus address to use, or NULL when there is none:
 * DBUS_SESSION_BUS_ADDRESS (without autolaunch: entries), else
 * unix:path=$XDG_RUNTIME_DIR/bus if that socket exists. */
char           *twp_dbus_session_bus_address      (void);

/* Call these once *METHODS DONE is out (nothing here may delay it) and
 * before the main loop runs. @state_location may be NULL. With
 * @follow_stored_mode the client takes the user's stored frame mode
 * (GSettings io.github.TorWebSocketProxy frame-mode) now and follows its
 * changes; pass FALSE when --mode was given. The stored choice is used
 * only when the schema is installed and a session bus exists (without a
 * bus, the dconf backend could autolaunch one). */
TwpDBusService *twp_dbus_service_new_for_client (TwpClient  *client,
                                                 const char *state_location,
                                                 gboolean    follow_stored_mode);
TwpDBusService *twp_dbus_service_new_for_server (TwpServer  *server,
                                                 const char *state_location);
/* Connects and publishes in the background. */
void            twp_dbus_service_start          (TwpDBusService *self);
/* Unpublishes and disconnects; safe to call more than once. */
void            twp_dbus_service_stop           (TwpDBusService *self);
/* The bus name owned, or NULL while there is none. */
const char     *twp_dbus_service_get_name       (TwpDBusService *self);

G_END_DECLS
