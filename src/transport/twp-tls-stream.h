/* SPDX-License-Identifier: BSD-3-Clause */
/* The server's TLS, driven through GnuTLS on the main context.
 *
 * glib-networking runs every handshake as a blocking call in GTask's small
 * thread pool: a few dozen clients that connect and send nothing held all
 * of its threads until the handshake deadline, and every other handshake
 * waited behind them (bench/README.md, "wss"). Here a handshake is a state
 * machine on the socket's readiness, no thread; one set of credentials
 * (certificate, key, no CA list: the server asks for no client
 * certificate) serves every connection, which keeps only its GnuTLS
 * session. The streams are pollable, so GIO's async calls and the relay's
 * reactor read and write them without blocking. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* Certificate and key, loaded once for every connection. */
typedef struct _TwpTlsCredentials TwpTlsCredentials;

TwpTlsCredentials *twp_tls_credentials_new   (GTlsCertificate    *certificate,
                                              GError            **error);
TwpTlsCredentials *twp_tls_credentials_ref   (TwpTlsCredentials  *credentials);
void               twp_tls_credentials_unref (TwpTlsCredentials  *credentials);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (TwpTlsCredentials, twp_tls_credentials_unref)

#define TWP_TYPE_TLS_STREAM (twp_tls_stream_get_type ())
G_DECLARE_FINAL_TYPE (TwpTlsStream, twp_tls_stream, TWP, TLS_STREAM, GIOStream)

/* The server end of TLS over @base; nothing is sent before the handshake. */
TwpTlsStream *twp_tls_stream_new_server       (GSocketConnection    *base,
                                               TwpTlsCredentials    *credentials,
                                               GError              **error);
/* Cancelling @cancellable (the handshake deadline) ends it with an error. */
void          twp_tls_stream_handshake_async  (TwpTlsStream         *self,
                                               GCancellable         *cancellable,
                                               GAsyncReadyCallback   callback,
                                               gpointer              user_data);
gboolean      twp_tls_stream_handshake_finish (TwpTlsStream         *self,
                                               GAsyncResult         *result,
                                               GError              **error);

G_END_DECLS
