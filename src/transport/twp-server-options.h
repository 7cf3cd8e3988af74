/* SPDX-License-Identifier: BSD-3-Clause */
/* The server's options: what tor passes in ServerTransportOptions (or the
 * command line gives), checked and turned into the values TwpServer runs
 * with. */
#pragma once

#include <gio/gio.h>

#include "twp-args.h"
#include "twp-relay.h"

G_BEGIN_DECLS

#define TWP_SERVER_ERROR (twp_server_error_quark ())
GQuark twp_server_error_quark (void);

typedef enum {
  TWP_SERVER_ERROR_INVALID_OPTION,
} TwpServerError;

typedef struct {
  char *orport;                  /* "host:port": plain ORPort, used only without ext_orport */
  char *ext_orport;              /* "host:port": tor's Extended ORPort */
  char *auth_cookie_file;        /* re-read for every ExtORPort connection */
  char *path;                    /* the WebSocket's URL path; other paths get 404 */
  char **allowed_origins;        /* NULL: any Origin (or none) */
  GTlsCertificate *tls_certificate; /* NULL: plain ws:// */
  GPtrArray *trusted_proxies;    /* GInetAddressMask*: peers whose Forwarded/X-Forwarded-For is believed */
  gboolean trust_rfc7239;        /* read Forwarded: for= instead of X-Forwarded-For */
  char *static_dir;              /* optional files served to plain HTTP requests */
  guint max_connections;         /* 0: unlimited; when full, the oldest half-open connection makes room */
  guint max_connections_per_ip;  /* per client address, from accept (half-open ones too), 0: unlimited */
  guint handshake_timeout_ms;    /* slowloris bound on TLS and the request head */
  guint orport_timeout_ms;       /* bound on connecting to and authenticating with tor; at most half the above */
  TwpRelayOptions relay;         /* keepalive, idle timeout, message bound */
  GSocketAddress *metrics_address; /* NULL: no metrics endpoint */
  gboolean metrics_allow_remote; /* metrics_address may be off loopback */
} TwpServerOptions;

/* Defaults for every field. */
void     twp_server_options_init  (TwpServerOptions *options);
void     twp_server_options_clear (TwpServerOptions *options);
/* Applies the transport's options from tor (ServerTransportOptions) or the
 * command line: path, origin, tls-cert, tls-key, trusted-proxy,
 * trusted-proxy-header, max-connections, max-connections-per-ip,
 * stall-timeout, handshake-timeout, idle-timeout, keepalive,
 * max-message-size, static-dir, metrics, metrics-allow-remote. Unknown keys
 * are errors. */
gboolean twp_server_options_apply (TwpServerOptions  *options,
                                   TwpArgs           *args,
                                   GError           **error);

G_END_DECLS
