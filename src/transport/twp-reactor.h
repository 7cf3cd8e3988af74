/* SPDX-License-Identifier: BSD-3-Clause */
/* One epoll set behind one GSource, for the sockets of open tunnels.
 *
 * GLib's main loop scans every source on each iteration, and GIO's async
 * reads each hold a source while they wait: with thousands of idle tunnels
 * every event cost thousands of checks (opening 10,000 tunnels took
 * minutes). Plain sockets of open tunnels wait here instead, so the loop
 * sees a single source however many tunnels are open. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _TwpReactorWatch TwpReactorWatch;

/* @events: the epoll events that fired (EPOLLIN, EPOLLOUT, EPOLLERR,
 * EPOLLHUP...), or 0 for a call requested with twp_reactor_watch_defer(). */
typedef void (*TwpReactorFunc) (TwpReactorWatch *watch,
                                guint32          events,
                                gpointer         user_data);

/* Creates the main context's reactor now, while descriptors are plenty:
 * the first tunnel may come when the process is at its limit, and the
 * reactor's epoll descriptor cannot fail then. */
void             twp_reactor_ensure           (void);
/* Watches @fd (which stays the caller's) on the thread-default main
 * context; no events until twp_reactor_watch_set_events(). */
TwpReactorWatch *twp_reactor_watch_new        (int              fd,
                                               TwpReactorFunc   func,
                                               gpointer         user_data);
/* Level-triggered interest in EPOLLIN and/or EPOLLOUT (0: none). */
void             twp_reactor_watch_set_events (TwpReactorWatch *watch,
                                               guint32          events);
/* Calls the function once from the next dispatch, with events 0: how a
 * result known at once is still delivered asynchronously. */
void             twp_reactor_watch_defer      (TwpReactorWatch *watch);
/* Stops watching; safe from inside any callback. Call it before the fd
 * is closed. */
void             twp_reactor_watch_free       (TwpReactorWatch *watch);

G_END_DECLS
