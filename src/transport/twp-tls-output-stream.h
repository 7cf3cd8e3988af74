/* SPDX-License-Identifier: BSD-3-Clause */
/* The writing half of a TwpTlsStream (pollable). */
#pragma once

#include <gio/gio.h>

#include "twp-tls-stream.h"

G_BEGIN_DECLS

#define TWP_TYPE_TLS_OUTPUT_STREAM (twp_tls_output_stream_get_type ())
G_DECLARE_FINAL_TYPE (TwpTlsOutputStream, twp_tls_output_stream, TWP, TLS_OUTPUT_STREAM, GOutputStream)

/* @connection is borrowed, as for twp_tls_input_stream_new(). */
GOutputStream *twp_tls_output_stream_new    (TwpTlsStream       *connection);
void           twp_tls_output_stream_detach (TwpTlsOutputStream *self);

G_END_DECLS
