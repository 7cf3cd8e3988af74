/* SPDX-License-Identifier: BSD-3-Clause */
/* Plain HTTP/1.1 for both roles, below the WebSocket handshake: reading a
 * head off a stream, the few responses a server needs to look like an
 * ordinary web server, request headers, and the client address a reverse
 * proxy reports (Forwarded, X-Forwarded-For). Header parsing is libsoup's,
 * kept behind this file: the core's public headers need only GLib/GIO. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define TWP_HTTP_ERROR (twp_http_error_quark ())

typedef enum {
  TWP_HTTP_ERROR_TOO_LARGE, /* no end of head within the size limit */
  TWP_HTTP_ERROR_TRUNCATED, /* the peer closed before the end of the head */
} TwpHttpError;

GQuark twp_http_error_quark (void);

/* Largest HTTP head (request or status line, headers, final empty line) we
 * buffer from a peer: browsers send about 600 bytes, nginx accepts 8 KiB. */
#define TWP_HTTP_MAX_HEAD_SIZE 8192

/* Returns the length of the HTTP head in @buf including the empty line that
 * ends it, or 0 when it is not complete yet. Lines may end in CRLF or in a
 * bare LF (RFC 7230 section 3.5, lenient on receive). Sets TOO_LARGE and
 * returns 0 when the first TWP_HTTP_MAX_HEAD_SIZE bytes hold no end. Call it
 * again on the whole buffer after each read. */
gsize twp_http_find_head_end (const guint8  *buf,
                              gsize          len,
                              GError       **error);

/* Where a head ends in the @len bytes read so far: its length, or 0 to read
 * more, or 0 with @error set to give up. twp_http_find_head_end() is one. */
typedef gsize (*TwpHttpHeadEndFunc) (const guint8  *buf,
                                     gsize          len,
                                     GError       **error);

/* Reads @stream in small reads until @find_end (NULL:
 * twp_http_find_head_end()) sees the end of a head. Fails with TOO_LARGE
 * when @max_size bytes hold no end, TRUNCATED at end of stream, or the
 * stream's own error. */
void    twp_http_read_head_async  (GInputStream         *stream,
                                   TwpHttpHeadEndFunc    find_end,
                                   gsize                 max_size,
                                   GCancellable         *cancellable,
                                   GAsyncReadyCallback   callback,
                                   gpointer              user_data);
/* Every byte read: the head (its length in @head_len) and whatever the
 * peer sent after it in the same reads, which belongs to the caller. */
GBytes *twp_http_read_head_finish (GInputStream         *stream,
                                   GAsyncResult         *result,
                                   gsize                *head_len,
                                   GError              **error);

/* Whether @value can go into a header line as it is: no control characters
 * (CR/LF would end the line and inject headers), no DEL. */
gboolean twp_http_header_value_is_safe (const char *value);

/* Request headers as parsed (libsoup's, behind an opaque type). */
typedef struct _TwpHttpHeaders TwpHttpHeaders;

TwpHttpHeaders *twp_http_headers_new      (void);
void            twp_http_headers_free     (TwpHttpHeaders *headers);
void            twp_http_headers_append   (TwpHttpHeaders *headers,
                                           const char     *name,
                                           const char     *value);
/* Replaces every line named @name with one. */
void            twp_http_headers_replace  (TwpHttpHeaders *headers,
                                           const char     *name,
                                           const char     *value);
/* The value of a header that must appear once, or NULL (case-insensitive
 * name). */
const char     *twp_http_headers_get_one  (TwpHttpHeaders *headers,
                                           const char     *name);
/* Every line named @name joined with ", ", or NULL. */
const char     *twp_http_headers_get_list (TwpHttpHeaders *headers,
                                           const char     *name);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (TwpHttpHeaders, twp_http_headers_free)

/* A complete HTTP/1.1 error response that looks like nginx's: Server: nginx,
 * Date, Content-Type: text/html, Content-Length, Connection: close and a
 * short HTML body. @status is one of 400, 403, 404, 405 (adds Allow),
 * 426 (adds Sec-WebSocket-Version: 13, Upgrade: websocket and the upgrade
 * connection option RFC 7230 section 6.7 requires), 429, 503. */
char *twp_http_response_error (guint status);

/* A 200 response with @body as @content_type (no CR/LF in it), the same
 * headers as above. @head_only (a HEAD request) omits the body but keeps its
 * Content-Length. The result may hold NUL bytes from @body: its size is
 * returned in @length. */
char *twp_http_response_ok (const char *content_type,
                            GBytes     *body,
                            gboolean    head_only,
                            gsize      *length);

/* Reverse proxies. Both return the client address added by the LAST
 * (nearest) proxy, i.e. the rightmost list element, as a canonical IP
 * literal without brackets or port (IPv4-mapped IPv6 as IPv4), or NULL when
 * absent or unusable ("unknown", obfuscated "_x", hostnames, zone IDs,
 * addresses no client can have: unspecified, broadcast, reserved,
 * multicast; a list with an unterminated quoted-string; garbage). A client can
 * send either header itself and a proxy passes through the one it does not
 * set: when the operator knows which one the proxy sets, use
 * twp_http_forwarded_for_from() with that source. */
typedef enum {
  TWP_HTTP_FORWARDED_ANY,             /* Forwarded if present (even if unusable), else X-Forwarded-For */
  TWP_HTTP_FORWARDED_RFC7239,         /* only the RFC 7239 Forwarded "for=" parameter */
  TWP_HTTP_FORWARDED_X_FORWARDED_FOR, /* only X-Forwarded-For */
} TwpHttpForwardedSource;

char *twp_http_forwarded_for_from (TwpHttpHeaders         *headers,
                                   TwpHttpForwardedSource  source);
/* Same as twp_http_forwarded_for_from (headers, TWP_HTTP_FORWARDED_ANY).
 * Several header lines of the same name count as one joined list. */
char *twp_http_forwarded_for (TwpHttpHeaders *headers);

G_END_DECLS
