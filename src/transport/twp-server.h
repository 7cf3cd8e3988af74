/* SPDX-License-Identifier: BSD-3-Clause */
/* The server role: accepts WebSocket connections from the internet (our
 * client, browsers, scanners), and relays each one to tor's Extended ORPort
 * (or plain ORPort). Everything a peer controls is bounded: handshake time
 * and size, connections, message size, buffered bytes. */
#pragma once

#include <gio/gio.h>

#include "twp-args.h"
#include "twp-memory-guard.h"
#include "twp-relay.h"
#include "twp-server-stats.h"
#include "twp-state.h"

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

#define TWP_TYPE_SERVER (twp_server_get_type ())
G_DECLARE_FINAL_TYPE (TwpServer, twp_server, TWP, SERVER, GObject)

/* Takes over the contents of @options (cleared on return). */
TwpServer          *twp_server_new      (TwpServerOptions *options);
/* Binds exactly @address:@port (0: ephemeral) with SO_REUSEADDR and
 * returns the bound address. */
GInetSocketAddress *twp_server_listen   (TwpServer     *self,
                                         GInetAddress  *address,
                                         guint16        port,
                                         GError       **error);
/* Takes @guard (NULL: never shed for memory) in place of the one for
 * this process's own cgroup. */
void                twp_server_set_memory_guard  (TwpServer      *self,
                                                  TwpMemoryGuard *guard);
guint               twp_server_get_n_connections (TwpServer *self);
/* Starting until it listens, ready or connected (any connection open),
 * stopping once it no longer accepts. */
TwpTransportState   twp_server_get_state         (TwpServer *self);
guint64             twp_server_get_bytes_from_ws (TwpServer *self);
guint64             twp_server_get_bytes_to_ws   (TwpServer *self);
/* The server's counters, with the live values brought up to date. */
TwpServerStats     *twp_server_get_stats         (TwpServer *self);
/* SIGINT: stop accepting; open connections go on. */
void                twp_server_stop_accepting (TwpServer *self);
/* Tears every connection down at once. */
void                twp_server_stop     (TwpServer *self);

G_END_DECLS
