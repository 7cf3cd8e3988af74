/* SPDX-License-Identifier: BSD-3-Clause */
/* Random bytes from the kernel, for everything a censor or a peer must not
 * predict: WebSocket keys and masks, ExtORPort nonces. One behaviour for
 * all of them: no weaker generator ever stands in when the kernel fails. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Fills @buf with @len bytes from getrandom(), retrying when a signal
 * interrupts it; FALSE with a G_IO_ERROR when the kernel refuses. */
gboolean twp_random_bytes       (guint8  *buf,
                                 gsize    len,
                                 GError **error);

/* For callers with no error path: a failure ends the process with a clear
 * message instead of producing predictable bytes. */
void     twp_random_bytes_or_die (guint8 *buf,
                                  gsize   len);

G_END_DECLS
