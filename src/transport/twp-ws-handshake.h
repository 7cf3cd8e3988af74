/* SPDX-License-Identifier: BSD-3-Clause */
/* The RFC 6455 opening handshake on both ends. Pure functions on memory
 * (no I/O): the caller finds the head with twp_http_find_head_end() and
 * hands it over, so every byte a peer can send is reachable from a fuzz
 * target. Plain HTTP (responses, proxies' headers) is in twp-http.h. */
#pragma once

#include <glib.h>

#include "twp-http.h"

G_BEGIN_DECLS

#define TWP_WS_HANDSHAKE_ERROR (twp_ws_handshake_error_quark ())

typedef enum {
  TWP_WS_HANDSHAKE_ERROR_MALFORMED,        /* not parseable HTTP */
  TWP_WS_HANDSHAKE_ERROR_TOO_LARGE,        /* head exceeds TWP_HTTP_MAX_HEAD_SIZE */
  TWP_WS_HANDSHAKE_ERROR_STATUS,           /* response status != 101 */
  TWP_WS_HANDSHAKE_ERROR_BAD_ACCEPT,       /* missing/wrong Sec-WebSocket-Accept */
  TWP_WS_HANDSHAKE_ERROR_BAD_UPGRADE,      /* missing Upgrade: websocket / Connection: upgrade */
  TWP_WS_HANDSHAKE_ERROR_PROTOCOL,         /* server chose a subprotocol we did not request, or several */
  TWP_WS_HANDSHAKE_ERROR_EXTENSION,        /* server answered with an extension we never offer */
  TWP_WS_HANDSHAKE_ERROR_INVALID_ARGUMENT, /* a caller-supplied value cannot go into a request (CR/LF, no host) */
} TwpWsHandshakeError;

GQuark twp_ws_handshake_error_quark (void);

/* base64 (SHA-1 (@key + RFC 6455 GUID)), the Sec-WebSocket-Accept value. */
char *twp_ws_compute_accept (const char *key);

/* Client side */

typedef struct {
  GUri *uri;               /* ws:// or wss://, already validated by the caller */
  const char *host_header; /* NULL: from uri (host, [v6] bracketed, ":port" only if not the scheme default) */
  const char *origin;      /* NULL: no Origin header */
  gboolean request_base64; /* adds "Sec-WebSocket-Protocol: base64" */
} TwpWsClientRequestOptions;

/* Returns the full request "GET <path?query> HTTP/1.1\r\n...\r\n\r\n" with
 * Host, Origin (if given), Sec-WebSocket-Version: 13,
 * Sec-WebSocket-Protocol: base64 (if asked), Sec-WebSocket-Key,
 * Connection: Upgrade, Upgrade: websocket, in the proposal's order. Nothing
 * else: no User-Agent, Accept-Encoding or extensions. The fresh key (base64 of
 * 16 random bytes) goes to @key_out. INVALID_ARGUMENT when a value would not
 * fit in a header line (control characters, e.g. CR/LF injection). */
char *twp_ws_client_request_build (const TwpWsClientRequestOptions  *options,
                                   char                            **key_out,
                                   GError                          **error);

typedef struct {
  guint status;     /* set whenever the status line parsed, else 0 */
  char *location;   /* Location header if any, sanitized for the log (printable ASCII, at most 256 bytes), or NULL */
  gboolean base64;  /* server confirmed the base64 subprotocol */
} TwpWsClientResponse;

void twp_ws_client_response_clear (TwpWsClientResponse *response);

/* Checks an upgrade response head (@len bytes from twp_http_find_head_end();
 * bytes after the head, e.g. the first frames, are ignored). @response is
 * reset on entry and filled as far as parsing got, on failure too: clear it
 * in both cases. Status must be 101 (the proposal forbids following
 * redirects), then RFC 6455 section 4.1: Upgrade: websocket,
 * Connection: upgrade, Sec-WebSocket-Accept matching @key;
 * Sec-WebSocket-Protocol absent or exactly "base64" and only when
 * @requested_base64; no Sec-WebSocket-Extensions at all. */
gboolean twp_ws_client_response_parse (const char           *head,
                                       gsize                 len,
                                       const char           *key,
                                       gboolean              requested_base64,
                                       TwpWsClientResponse  *response,
                                       GError              **error);

/* Server side */

typedef enum {
  TWP_WS_REQUEST_UPGRADE,     /* valid RFC 6455 upgrade */
  TWP_WS_REQUEST_PLAIN_HTTP,  /* an ordinary HTTP request (no Upgrade: websocket): answer with a boring page */
  TWP_WS_REQUEST_OLD_VERSION, /* hixie-75/76 (Sec-WebSocket-Key1/Key2 or no version) or Sec-WebSocket-Version != 13: 426 */
  TWP_WS_REQUEST_BAD,         /* malformed upgrade: 400 */
} TwpWsRequestKind;

typedef struct {
  TwpWsRequestKind kind;
  char *method;                /* never NULL */
  char *path;                  /* request target as sent (path?query), never NULL */
  char *host;                  /* Host header or NULL */
  char *origin;                /* Origin header or NULL */
  char *key;                   /* Sec-WebSocket-Key (validated: base64 of 16 bytes); set only for UPGRADE */
  gboolean wants_base64;       /* "base64" among the comma-separated Sec-WebSocket-Protocol tokens */
  gboolean offered_extensions; /* client offered e.g. permessage-deflate: we ignore it (never negotiate) */
  TwpHttpHeaders *headers;     /* all request headers, for X-Forwarded-For etc. */
  const char *reason;          /* static text saying why kind is not UPGRADE, for the log; NULL for UPGRADE */
} TwpWsServerRequest;

void twp_ws_server_request_free (TwpWsServerRequest *request);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TwpWsServerRequest, twp_ws_server_request_free)

/* Parses a request head (@len bytes from twp_http_find_head_end(); bytes
 * after the head are ignored). Returns NULL with MALFORMED (or TOO_LARGE)
 * when it is not a well-formed HTTP/1.0 or 1.1 request head (RFC 9112,
 * strictly: CRLF line ends only, "METHOD SP target SP HTTP/1.x", every
 * header line a token name, a colon and a value without control
 * characters, no obs-fold, no NUL; the error says which rule failed);
 * otherwise classifies it into kind. UPGRADE requires GET, HTTP/1.1, one Host, an Upgrade token
 * "websocket" and a Connection token "upgrade" (both case-insensitive),
 * Sec-WebSocket-Version 13 and a valid key. */
TwpWsServerRequest *twp_ws_server_request_parse (const char  *head,
                                                 gsize        len,
                                                 GError     **error);

/* "HTTP/1.1 101 Switching Protocols" with Upgrade, Connection,
 * Sec-WebSocket-Accept, and "Sec-WebSocket-Protocol: base64" iff @base64;
 * never Sec-WebSocket-Extensions. @key is a validated request key. */
char *twp_ws_server_response_accept (const char *key,
                                     gboolean    base64);

G_END_DECLS
