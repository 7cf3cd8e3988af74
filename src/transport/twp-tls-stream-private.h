/* SPDX-License-Identifier: BSD-3-Clause */
/* What TwpTlsInputStream and TwpTlsOutputStream call on their connection. */
#pragma once

#include "twp-tls-stream.h"

G_BEGIN_DECLS

/* Without @blocking, G_IO_ERROR_WOULD_BLOCK when nothing can move now.
 * After would-block a send must be repeated with the same data (GnuTLS
 * has already sealed it into a record); GIO's callers do so. */
gssize   twp_tls_stream_recv          (TwpTlsStream  *self,
                                       void          *buffer,
                                       gsize          count,
                                       gboolean       blocking,
                                       GCancellable  *cancellable,
                                       GError       **error);
gssize   twp_tls_stream_send          (TwpTlsStream  *self,
                                       const void    *buffer,
                                       gsize          count,
                                       gboolean       blocking,
                                       GCancellable  *cancellable,
                                       GError       **error);
/* G_IO_IN: GnuTLS holds decrypted data, or the socket is readable. */
gboolean twp_tls_stream_check         (TwpTlsStream  *self,
                                       GIOCondition   condition);
GSource *twp_tls_stream_create_source (TwpTlsStream  *self,
                                       GIOCondition   condition,
                                       GCancellable  *cancellable);

G_END_DECLS
