/* SPDX-License-Identifier: BSD-3-Clause */
/* Bounds one step (a dial, tor's handshake, the SOCKS exchange, a relay)
 * that runs all its I/O with a cancellable of its own: that cancellable is
 * cancelled when the caller's is, or when the deadline passes, whichever
 * comes first. When the I/O then fails with CANCELLED,
 * twp_deadline_has_expired() tells a timeout from the caller's cancel.
 * Main context only (the caller's cancellable may be cancelled from any
 * thread). */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

typedef struct _TwpDeadline TwpDeadline;

/* Cancels @cancellable (the step's own; referenced) when @parent is
 * cancelled (NULL: never; already cancelled: at once) or after @timeout_ms
 * on the thread-default main context (0: no timer, forwarding only).
 * @name is the timer's static GSource name. */
TwpDeadline  *twp_deadline_new             (GCancellable *cancellable,
                                            GCancellable *parent,
                                            guint         timeout_ms,
                                            const char   *name);
/* TRUE once the timer fired (it cancelled the cancellable). */
gboolean      twp_deadline_has_expired     (TwpDeadline  *self);
/* TRUE while the timer exists: neither fired nor disarmed. */
gboolean      twp_deadline_is_armed        (TwpDeadline  *self);
/* The step finished in time: the timer goes, forwarding stays. */
void          twp_deadline_disarm          (TwpDeadline  *self);
/* Removes the timer and disconnects from the parent (waiting for a
 * forward in progress in another thread); does not cancel. */
void          twp_deadline_free            (TwpDeadline  *self);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (TwpDeadline, twp_deadline_free)

G_END_DECLS
