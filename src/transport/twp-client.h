/* SPDX-License-Identifier: BSD-3-Clause */
/* The client role: a SOCKS listener for tor; each SOCKS request becomes one
 * WebSocket to the bridge its arguments name, relayed both ways. */
#pragma once

#include <gio/gio.h>

#include "twp-args.h"
#include "twp-bridge.h"
#include "twp-bridge-config.h"
#include "twp-dial.h"
#include "twp-relay.h"
#include "twp-state.h"

G_BEGIN_DECLS

typedef struct {
  TwpDialOptions dial;           /* proxy, outbound addresses, TLS trust, timeout */
  TwpRelayOptions relay;         /* keepalive, message bound (is_client/base64 set per connection) */
  guint socks_timeout_ms;        /* bounds tor's SOCKS handshake */
  TwpArgs *default_args;         /* unmanaged: used when a SOCKS request carries no arguments */
  /* The bridge table (0: the defaults, 256 bridges and 10 minutes): a
   * bridge no attempt or tunnel uses is forgotten after the idle timeout,
   * or sooner when a new one needs its place; a full table of bridges in
   * use refuses new ones. */
  guint max_bridges;
  guint bridge_idle_timeout_ms;
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
/* Payload bytes of every tunnel so far, open ones included. */
guint64       twp_client_get_bytes_sent     (TwpClient  *self);
guint64       twp_client_get_bytes_received (TwpClient  *self);
/* The bridges in the table now (at most max_bridges). */
guint         twp_client_get_n_bridges      (TwpClient  *self);
TwpTransportState twp_client_get_state   (TwpClient    *self);
/* The bridges tor asked for (TwpBridge), in order of first use; watch
 * items-changed for new ones and for those forgotten (idle too long, or
 * making room for a new one). */
GListModel   *twp_client_get_bridges     (TwpClient    *self);
/* The most recent failure of any bridge (unix seconds, 0: none). */
gint64        twp_client_get_last_failure_time (TwpClient *self);
TwpFailureReason twp_client_get_last_failure_reason (TwpClient *self);
const char   *twp_client_get_last_failure_details (TwpClient *self);

/* Opens a WebSocket to @bridge (DNS, TCP, proxy, TLS, upgrade) and closes
 * it again, carrying no tor traffic; bounded by @timeout_ms. On failure
 * @failed_phase says where it stopped. */
void          twp_client_test_bridge_async  (TwpClient           *self,
                                             TwpBridge           *bridge,
                                             guint                timeout_ms,
                                             GCancellable        *cancellable,
                                             GAsyncReadyCallback  callback,
                                             gpointer             user_data);
gboolean      twp_client_test_bridge_finish (TwpClient     *self,
                                             GAsyncResult  *result,
                                             TwpDialPhase  *failed_phase,
                                             GError       **error);
/* Stops listening and tears down every connection at once. */
void          twp_client_stop            (TwpClient    *self);

G_END_DECLS
