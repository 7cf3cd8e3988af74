/* SPDX-License-Identifier: BSD-3-Clause */
/* A one-connection upstream proxy for the TOR_PT_PROXY tests: a SOCKS5
 * server (RFC 1928 with RFC 1929 username/password) or an HTTP CONNECT
 * proxy (Basic auth), written from the RFCs, running in its own thread with
 * blocking I/O. It records the credentials and target it was given,
 * connects to the target and splices both directions until either side
 * ends, counting the bytes. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

typedef enum {
  TWP_TEST_CLIENT_PROXY_SOCKS5,
  TWP_TEST_CLIENT_PROXY_HTTP,
} TwpTestClientProxyType;

typedef struct {
  /* all NULL / 0 until the handshake got there */
  char *username;
  char *password;
  char *target_host;
  guint16 target_port;
  guint64 bytes_to_target;
  guint64 bytes_from_target;
  GError *error;            /* why the proxy stopped early, if it did */
} TwpTestClientProxyResult;

typedef struct _TwpTestClientProxy TwpTestClientProxy;

TwpTestClientProxy *twp_test_client_proxy_new (TwpTestClientProxyType type);
guint16 twp_test_client_proxy_get_port (TwpTestClientProxy *proxy);
/* TRUE once the thread has finished. */
gboolean twp_test_client_proxy_is_done (TwpTestClientProxy *proxy);
/* Makes the splice loop end soon (it polls this flag). */
void twp_test_client_proxy_stop (TwpTestClientProxy *proxy);
/* After done. */
const TwpTestClientProxyResult *twp_test_client_proxy_get_result (TwpTestClientProxy *proxy);
/* Joins the thread: call it only once the proxy is done. */
void twp_test_client_proxy_free (TwpTestClientProxy *proxy);

G_END_DECLS
