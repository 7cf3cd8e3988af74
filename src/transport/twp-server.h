/* SPDX-License-Identifier: BSD-3-Clause */
/* The server role: accepts WebSocket connections from the internet (our
 * client, browsers, scanners), and relays each one to tor's Extended ORPort
 * (or plain ORPort). Everything a peer controls is bounded: handshake time
 * and size, connections, message size, buffered bytes. */
#pragma once

#include <gio/gio.h>

#include "twp-memory-guard.h"
#include "twp-relay.h"
#include "twp-server-options.h"
#include "twp-server-stats.h"
#include "twp-state.h"

G_BEGIN_DECLS

#define TWP_TYPE_SERVER (twp_server_get_type ())
G_DECLARE_FINAL_TYPE (TwpServer, twp_server, TWP, SERVER, GObject)

/* Takes over the contents of @options (cleared on return). */
TwpServer          *twp_server_new      (TwpServerOptions *options);
/* Binds exactly @address:@port (0: ephemeral) with SO_REUSEADDR and
 * returns the bound address. */
GInetSocketAddress *twp_server_listen   (TwpServer     *self,
                                         GInetAddress  *address,
                                         guint16        port,
                                         GError       **error);
/* Takes @guard (NULL: never shed for memory) in place of the one for
 * this process's own cgroup. */
void                twp_server_set_memory_guard  (TwpServer      *self,
                                                  TwpMemoryGuard *guard);
guint               twp_server_get_n_connections (TwpServer *self);
/* Starting until it listens, ready or connected (any connection open),
 * stopping once it no longer accepts. */
TwpTransportState   twp_server_get_state         (TwpServer *self);
guint64             twp_server_get_bytes_from_ws (TwpServer *self);
guint64             twp_server_get_bytes_to_ws   (TwpServer *self);
/* The server's counters, with the live values brought up to date. */
TwpServerStats     *twp_server_get_stats         (TwpServer *self);
/* SIGINT: stop accepting; open connections go on. */
void                twp_server_stop_accepting (TwpServer *self);
/* Tears every connection down at once. */
void                twp_server_stop     (TwpServer *self);

G_END_DECLS
