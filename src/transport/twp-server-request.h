/* SPDX-License-Identifier: BSD-3-Clause */
/* What the server decides about a request from bytes alone, before any
 * I/O with tor: the status it answers a head with, and the client address
 * it reports to tor (USERADDR). twp-server.c calls these on every
 * connection; the unit tests and a fuzz target call the same functions. */
#pragma once

#include <gio/gio.h>

#include "twp-server-options.h"
#include "twp-ws-handshake.h"

G_BEGIN_DECLS

#define TWP_SERVER_REQUEST_ERROR (twp_server_request_error_quark ())
GQuark twp_server_request_error_quark (void);

typedef enum {
  TWP_SERVER_REQUEST_ERROR_FORWARDED, /* a trusted proxy's header names no client address */
} TwpServerRequestError;

/* Returns what the server answers to the @len bytes a client sent so far
 * (call it again on the whole buffer after each read):
 *  - 0: the head is not complete yet, read more;
 *  - 101: a WebSocket upgrade for our path= from an allowed origin= (the
 *    address checks and tor come next);
 *  - 200: an ordinary GET or HEAD and static-dir= is set (a file, or 404);
 *  - 400 (head malformed or over TWP_HTTP_MAX_HEAD_SIZE, bad upgrade),
 *    403, 404, 405, 426: that error response.
 * *@head_len is the head's length once complete, else 0. *@request is the
 * parsed request whenever the head parsed (free it), else NULL. *@why
 * (free it) says in a few words why for any other status than 0, 101 and
 * 200, else NULL; it holds nothing the client wrote. */
guint twp_server_request_check (const TwpServerOptions  *options,
                                const guint8            *data,
                                gsize                    len,
                                gsize                   *head_len,
                                TwpWsServerRequest     **request,
                                char                   **why);

/* Whether @address is one of the trusted-proxy= ranges. */
gboolean twp_server_request_is_trusted_proxy (const TwpServerOptions *options,
                                              GInetAddress           *address);

/* USERADDR for a request from @peer: @peer itself, unless @peer is a
 * trusted proxy that sent its header (trusted-proxy-header=); then the
 * address that proxy appended (the last element), with @peer's port
 * standing in for the client's. When a trusted proxy's header is there but
 * names no client address (it does not parse, e.g. an unterminated quote a
 * client left for the proxy to append to; or its last element is not an
 * IP address a client can have), returns NULL with FORWARDED: the request
 * is refused, never carried on as coming from the proxy itself. */
GInetSocketAddress *twp_server_request_client_address (const TwpServerOptions  *options,
                                                       GInetSocketAddress      *peer,
                                                       TwpHttpHeaders          *headers,
                                                       GError                 **error);

G_END_DECLS
