/* SPDX-License-Identifier: BSD-3-Clause */
/* A GSocketListener that accepts connections one after another, like
 * GSocketService, but survives running out of file descriptors: GLib's
 * service warns and retries at once, so a listener with a connection
 * waiting spins at 100% CPU for as long as the process is at its limit.
 * Here the first EMFILE/ENFILE of an episode is logged, connections that
 * cannot be served are closed at once (a reserve descriptor is given up to
 * take them from the backlog), and accepting backs off until descriptors
 * are free again. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define TWP_TYPE_ACCEPTOR (twp_acceptor_get_type ())
G_DECLARE_FINAL_TYPE (TwpAcceptor, twp_acceptor, TWP, ACCEPTOR, GSocketListener)

/* Signals, on the thread-default main context of twp_acceptor_start ():
 * "incoming" (GSocketConnection *connection, GObject *source_object) as
 * GSocketService's; "refused" () for each connection closed unserved
 * because descriptors ran out. */
TwpAcceptor *twp_acceptor_new   (void);
void         twp_acceptor_start (TwpAcceptor *self);
void         twp_acceptor_stop  (TwpAcceptor *self);
/* Connections closed unserved at the descriptor limit so far. */
guint64      twp_acceptor_get_n_refused (TwpAcceptor *self);

G_END_DECLS
