/* SPDX-License-Identifier: BSD-3-Clause */
/* The client role: a SOCKS listener for tor; each SOCKS request becomes one
 * WebSocket to the bridge its arguments name, relayed both ways. */
#pragma once

#include <gio/gio.h>

#include "twp-args.h"
#include "twp-bridge-config.h"
#include "twp-dial.h"
#include "twp-relay.h"

G_BEGIN_DECLS

typedef struct {
  TwpDialOptions dial;           /* proxy, outbound addresses, TLS trust, timeout */
  TwpRelayOptions relay;         /* keepalive, message bound (is_client/base64 set per connection) */
  guint socks_timeout_ms;        /* bounds tor's SOCKS handshake */
  TwpArgs *default_args;         /* unmanaged: used when a SOCKS request carries no arguments */
} TwpClientOptions;

#define TWP_TYPE_CLIENT (twp_client_get_type ())
G_DECLARE_FINAL_TYPE (TwpClient, twp_client, TWP, CLIENT, GObject)

/* The objects in @options are referenced or copied. */
TwpClient    *twp_client_new             (const TwpClientOptions *options);
/* Listens on @address (port 0: ephemeral); returns the bound address. */
GInetSocketAddress *twp_client_listen    (TwpClient    *self,
                                          GInetAddress *address,
                                          guint16       port,
                                          GError      **error);
/* The frame mode of new connections to bridges without mode=. */
TwpFrameMode  twp_client_get_frame_mode  (TwpClient    *self);
void          twp_client_set_frame_mode  (TwpClient    *self,
                                          TwpFrameMode  mode);
guint         twp_client_get_n_connections (TwpClient  *self);
/* Stops listening and tears down every connection at once. */
void          twp_client_stop            (TwpClient    *self);

G_END_DECLS
