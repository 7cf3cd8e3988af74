/* SPDX-License-Identifier: BSD-3-Clause */
/* One attempt to open a WebSocket to a bridge: DNS, TCP (through the
 * upstream proxy tor gave us, if any), TLS for wss://, then the HTTP
 * upgrade. Its phase is observable so that users can see where it stops. */
#pragma once

#include <gio/gio.h>

#include "twp-bridge-config.h"
#include "twp-pt-env.h"
#include "twp-state.h"

G_BEGIN_DECLS

#define TWP_DIAL_ERROR (twp_dial_error_quark ())
GQuark twp_dial_error_quark (void);

typedef enum {
  TWP_DIAL_ERROR_FAILED,
  TWP_DIAL_ERROR_DNS,
  TWP_DIAL_ERROR_REFUSED,
  TWP_DIAL_ERROR_NETWORK_UNREACHABLE,
  TWP_DIAL_ERROR_HOST_UNREACHABLE,
  TWP_DIAL_ERROR_TIMED_OUT,
  TWP_DIAL_ERROR_PROXY,
  TWP_DIAL_ERROR_TLS,
  TWP_DIAL_ERROR_TLS_CERTIFICATE,
  TWP_DIAL_ERROR_HTTP_STATUS,
  TWP_DIAL_ERROR_HANDSHAKE,
  TWP_DIAL_ERROR_CLOSED,
} TwpDialError;

typedef struct {
  TwpProxyConfig *proxy;         /* TOR_PT_PROXY: everything goes through it */
  GInetAddress *bind_v4;         /* TOR_PT_OUTBOUND_BIND_ADDRESS_V4 */
  GInetAddress *bind_v6;         /* TOR_PT_OUTBOUND_BIND_ADDRESS_V6 */
  GTlsDatabase *tls_database;    /* NULL: the system's trust store */
  guint timeout_ms;              /* bounds the whole attempt */
} TwpDialOptions;

#define TWP_TYPE_DIAL (twp_dial_get_type ())
G_DECLARE_FINAL_TYPE (TwpDial, twp_dial, TWP, DIAL, GObject)

/* @config and the objects in @options must outlive the attempt. */
TwpDial     *twp_dial_new        (const TwpBridgeConfig *config,
                                  gboolean               base64,
                                  const TwpDialOptions  *options);
TwpDialPhase twp_dial_get_phase  (TwpDial *self);

void       twp_dial_run_async  (TwpDial             *self,
                                GCancellable        *cancellable,
                                GAsyncReadyCallback  callback,
                                gpointer             user_data);
/* Returns the open WebSocket stream, and in @leftover any bytes that
 * followed the 101 response. Errors are TWP_DIAL_ERROR; their messages
 * carry no address unless unsafe logging is on. */
GIOStream *twp_dial_run_finish (TwpDial       *self,
                                GAsyncResult  *result,
                                GBytes       **leftover,
                                GError       **error);

/* The HTTP status of a TWP_DIAL_ERROR_HTTP_STATUS failure, else 0. */
guint      twp_dial_get_http_status (TwpDial *self);

/* For tests: whether the dial still holds a main loop source. Once it has
 * returned it must hold none: GLib unlinks a destroyed source from its
 * context only at the last unref, and a client keeps each dial as long as
 * its tunnel. */
gboolean   twp_dial_holds_source_for_testing (TwpDial *self);

const char *twp_dial_phase_to_string (TwpDialPhase phase);

G_END_DECLS
