/* SPDX-License-Identifier: BSD-3-Clause */
/* What one Bridge line asks of the client: where the WebSocket server is and
 * how to speak to it, from the SOCKS arguments tor passes (url=, mode=, ...). */
#pragma once

#include <gio/gio.h>

#include "twp-args.h"

G_BEGIN_DECLS

#define TWP_BRIDGE_CONFIG_ERROR (twp_bridge_config_error_quark ())
GQuark twp_bridge_config_error_quark (void);

typedef enum {
  TWP_BRIDGE_CONFIG_ERROR_INVALID,
} TwpBridgeConfigError;

typedef enum {
  TWP_FRAME_MODE_BINARY,
  TWP_FRAME_MODE_BASE64,
} TwpFrameMode;

typedef struct {
  GUri *uri;                 /* ws:// or wss://, absolute, with a host */
  gboolean mode_pinned;      /* mode= given on the bridge line */
  TwpFrameMode mode;         /* only meaningful when pinned */
  char *tls_server_name;     /* sni=: TLS server name and certificate name */
  GBytes *certificate_pin;   /* cert-sha256=: SHA-256 of the server's DER certificate */
  char *origin;              /* origin=: Origin header */
  char *host_header;         /* host=: Host header */
  guint16 port;              /* from the URI, or the scheme's default */
} TwpBridgeConfig;

void twp_bridge_config_free (TwpBridgeConfig *config);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TwpBridgeConfig, twp_bridge_config_free)

/* Builds the configuration from the bridge line's arguments. @bridge_host and
 * @bridge_port (the SOCKS CONNECT target, i.e. the Bridge line's address)
 * make the default url= ws://host:port/. Unknown or repeated keys are
 * errors: a typo must not silently send tor elsewhere. */
TwpBridgeConfig *twp_bridge_config_new (TwpArgs     *args,
                                        const char  *bridge_host,
                                        guint16      bridge_port,
                                        GError     **error);

/* Checks a ws:// or wss:// URL: scheme, host, no userinfo, no fragment. */
GUri *twp_bridge_config_parse_url (const char  *url,
                                   GError     **error);

gboolean twp_frame_mode_from_string (const char   *string,
                                     TwpFrameMode *mode);
const char *twp_frame_mode_to_string (TwpFrameMode mode);

G_END_DECLS
