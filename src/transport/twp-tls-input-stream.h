/* SPDX-License-Identifier: BSD-3-Clause */
/* The reading half of a TwpTlsStream (pollable). */
#pragma once

#include <gio/gio.h>

#include "twp-tls-stream.h"

G_BEGIN_DECLS

#define TWP_TYPE_TLS_INPUT_STREAM (twp_tls_input_stream_get_type ())
G_DECLARE_FINAL_TYPE (TwpTlsInputStream, twp_tls_input_stream, TWP, TLS_INPUT_STREAM, GInputStream)

/* @connection is borrowed: it owns the stream and detaches it (NULL) when
 * it goes away, after which the stream reports itself closed. */
GInputStream *twp_tls_input_stream_new    (TwpTlsStream      *connection);
void          twp_tls_input_stream_detach (TwpTlsInputStream *self);

G_END_DECLS
