/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-ws-handshake"

#include "config.h"

#include "twp-ws-handshake.h"

#include "twp-log.h"
#include "twp-random.h"

#include <string.h>

#include <gio/gio.h>

G_DEFINE_QUARK (twp-ws-handshake-error-quark, twp_ws_handshake_error)

/* RFC 6455 section 1.3 */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_KEY_RAW_SIZE 16
/* base64 of 16 bytes: 22 characters and "==" */
#define WS_KEY_B64_SIZE 24
/* A peer-chosen Location or reason phrase ends up in our log: cap it. */
#define LOG_VALUE_MAX 256

gsize
twp_http_find_head_end (const guint8  *buf,
                        gsize          len,
                        GError       **error)
{
  /* Only the first TWP_HTTP_MAX_HEAD_SIZE bytes may hold the head. */
  gsize limit = MIN (len, TWP_HTTP_MAX_HEAD_SIZE);
  gsize i;

  for (i = 0; i < limit; i++)
    {
      if (buf[i] != '\n')
        continue;
      /* An empty line: LF LF, or LF CR LF (the CR before a LF is ignored). */
      if (i + 1 < limit && buf[i + 1] == '\n')
        return i + 2;
      if (i + 2 < limit && buf[i + 1] == '\r' && buf[i + 2] == '\n')
        return i + 3;
    }

  if (len >= TWP_HTTP_MAX_HEAD_SIZE)
    g_set_error (error, TWP_WS_HANDSHAKE_ERROR, TWP_WS_HANDSHAKE_ERROR_TOO_LARGE,
                 "HTTP head longer than %d bytes", TWP_HTTP_MAX_HEAD_SIZE);
  return 0;
}

char *
twp_ws_compute_accept (const char *key)
{
  g_autoptr(GChecksum) checksum = NULL;
  guint8 digest[20];
  gsize digest_len = sizeof digest;

  g_return_val_if_fail (key != NULL, NULL);

  checksum = g_checksum_new (G_CHECKSUM_SHA1);
  g_checksum_update (checksum, (const guchar *) key, strlen (key));
  g_checksum_update (checksum, (const guchar *) WS_GUID, strlen (WS_GUID));
  g_checksum_get_digest (checksum, digest, &digest_len);
  return g_base64_encode (digest, digest_len);
}

/* Shared head handling */

/* Replaces what could confuse a log reader or a terminal (control
 * characters, non-ASCII) with '?' and caps the length. */
static char *
sanitize_for_log (const char *value)
{
  gsize len = MIN (strlen (value), LOG_VALUE_MAX);
  char *copy = g_strndup (value, len);
  gsize i;

  for (i = 0; i < len; i++)
    {
      if ((guchar) copy[i] < 0x20 || (guchar) copy[i] >= 0x7f)
        copy[i] = '?';
    }
  return copy;
}

/* Checks the size and framing of a head and returns a NUL-terminated copy of
 * it without its final empty line (what libsoup's parsers expect), its
 * length in @out_len. Bytes after the head are dropped. */
static char *
copy_head (const char  *head,
           gsize        len,
           gsize       *out_len,
           GError     **error)
{
  GError *local_error = NULL;
  gsize head_len;

  head_len = twp_http_find_head_end ((const guint8 *) head, len, &local_error);
  if (local_error != NULL)
    {
      g_propagate_error (error, local_error);
      return NULL;
    }
  if (head_len == 0)
    {
      g_set_error_literal (error, TWP_WS_HANDSHAKE_ERROR, TWP_WS_HANDSHAKE_ERROR_MALFORMED,
                           "Truncated HTTP head");
      return NULL;
    }
  /* libsoup ignores what follows a NUL in a line: refuse instead of letting
   * two parsers disagree about the headers (request smuggling). */
  if (memchr (head, '\0', head_len) != NULL)
    {
      g_set_error_literal (error, TWP_WS_HANDSHAKE_ERROR, TWP_WS_HANDSHAKE_ERROR_MALFORMED,
                           "NUL byte in HTTP head");
      return NULL;
    }

  /* Drop the empty line ("\n" or "\r\n") but keep the LF ending the last
   * header line. */
  head_len -= (head[head_len - 2] == '\r') ? 2 : 1;
  *out_len = head_len;
  return g_strndup (head, head_len);
}

/* Number of header lines named @name (a joined list hides duplicates). */
static guint
count_headers (SoupMessageHeaders *headers,
               const char         *name)
{
  SoupMessageHeadersIter iter;
  const char *header_name;
  const char *value;
  guint n = 0;

  soup_message_headers_iter_init (&iter, headers);
  while (soup_message_headers_iter_next (&iter, &header_name, &value))
    {
      if (g_ascii_strcasecmp (header_name, name) == 0)
        n++;
    }
  return n;
}

/* Client side */

/* A value we put in a header line: no control characters (CR/LF would end
 * the line and inject headers), no DEL. */
static gboolean
header_value_is_safe (const char *value)
{
  const char *p;

  for (p = value; *p != '\0'; p++)
    {
      if ((guchar) *p < 0x20 || (guchar) *p == 0x7f)
        return FALSE;
    }
  return TRUE;
}

/* The request target must be one token of visible ASCII. */
static gboolean
request_target_is_safe (const char *target)
{
  const char *p;

  if (target[0] != '/')
    return FALSE;
  for (p = target; *p != '\0'; p++)
    {
      if ((guchar) *p <= 0x20 || (guchar) *p >= 0x7f)
        return FALSE;
    }
  return TRUE;
}

static char *
host_header_from_uri (GUri    *uri,
                      GError **error)
{
  const char *scheme = g_uri_get_scheme (uri);
  const char *host = g_uri_get_host (uri);
  int port = g_uri_get_port (uri);
  int default_port;
  g_autofree char *name = NULL;
  const char *zone;

  if (host == NULL || host[0] == '\0')
    {
      g_set_error_literal (error, TWP_WS_HANDSHAKE_ERROR, TWP_WS_HANDSHAKE_ERROR_INVALID_ARGUMENT,
                           "WebSocket URL has no host");
      return NULL;
    }

  /* An IPv6 zone ID only means something on this machine: not sent. */
  zone = strchr (host, '%');
  name = g_strndup (host, zone != NULL ? (gsize) (zone - host) : strlen (host));

  default_port = (scheme != NULL && g_ascii_strcasecmp (scheme, "wss") == 0) ? 443 : 80;
  if (strchr (name, ':') != NULL)
    {
      if (port < 0 || port == default_port)
        return g_strdup_printf ("[%s]", name);
      return g_strdup_printf ("[%s]:%d", name, port);
    }
  if (port < 0 || port == default_port)
    return g_steal_pointer (&name);
  return g_strdup_printf ("%s:%d", name, port);
}

char *
twp_ws_client_request_build (const TwpWsClientRequestOptions  *options,
                             char                            **key_out,
                             GError                          **error)
{
  g_autofree char *host = NULL;
  g_autofree char *target = NULL;
  g_autofree char *key = NULL;
  guint8 raw_key[WS_KEY_RAW_SIZE];
  GUriFlags encoding_flags;
  GString *request;

  g_return_val_if_fail (options != NULL, NULL);
  g_return_val_if_fail (options->uri != NULL, NULL);
  g_return_val_if_fail (key_out != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (options->host_header != NULL)
    host = g_strdup (options->host_header);
  else
    host = host_header_from_uri (options->uri, error);
  if (host == NULL)
    return NULL;
  if (!header_value_is_safe (host))
    {
      g_set_error_literal (error, TWP_WS_HANDSHAKE_ERROR, TWP_WS_HANDSHAKE_ERROR_INVALID_ARGUMENT,
                           "Host contains control characters");
      return NULL;
    }
  if (options->origin != NULL && !header_value_is_safe (options->origin))
    {
      g_set_error_literal (error, TWP_WS_HANDSHAKE_ERROR, TWP_WS_HANDSHAKE_ERROR_INVALID_ARGUMENT,
                           "Origin contains control characters");
      return NULL;
    }

  /* Re-encode path and query the way the URI was parsed: a decoded path
   * (no G_URI_FLAGS_ENCODED*) may hold spaces or CR/LF from %20 or %0D%0A. */
  encoding_flags = g_uri_get_flags (options->uri) &
                   (G_URI_FLAGS_ENCODED | G_URI_FLAGS_ENCODED_PATH | G_URI_FLAGS_ENCODED_QUERY);
  target = g_uri_join (encoding_flags, NULL, NULL, NULL, -1,
                       g_uri_get_path (options->uri), g_uri_get_query (options->uri), NULL);
  if (target[0] == '\0' || target[0] == '?')
    {
      char *rooted = g_strconcat ("/", target, NULL);

      g_free (target);
      target = rooted;
    }
  if (!request_target_is_safe (target))
    {
      g_set_error_literal (error, TWP_WS_HANDSHAKE_ERROR, TWP_WS_HANDSHAKE_ERROR_INVALID_ARGUMENT,
                           "WebSocket URL path is not a valid request target");
      return NULL;
    }

  /* The key is not a secret (RFC 6455 10.3), but predictable keys would
   * help a censor tell us apart. */
  if (!twp_random_bytes (raw_key, sizeof raw_key, error))
    return NULL;
  key = g_base64_encode (raw_key, sizeof raw_key);

  /* Header order of the proposal's examples; nothing that identifies us. */
  request = g_string_sized_new (256);
  g_string_append_printf (request, "GET %s HTTP/1.1\r\n", target);
  g_string_append_printf (request, "Host: %s\r\n", host);
  if (options->origin != NULL)
    g_string_append_printf (request, "Origin: %s\r\n", options->origin);
  g_string_append (request, "Sec-WebSocket-Version: 13\r\n");
  if (options->request_base64)
    g_string_append (request, "Sec-WebSocket-Protocol: base64\r\n");
  g_string_append_printf (request, "Sec-WebSocket-Key: %s\r\n", key);
  g_string_append (request, "Connection: Upgrade\r\n");
  g_string_append (request, "Upgrade: websocket\r\n");
  g_string_append (request, "\r\n");

  *key_out = g_steal_pointer (&key);
  return g_string_free (request, FALSE);
}

void
twp_ws_client_response_clear (TwpWsClientResponse *response)
{
  g_return_if_fail (response != NULL);

  g_clear_pointer (&response->location, g_free);
  response->status = 0;
  response->base64 = FALSE;
}

gboolean
twp_ws_client_response_parse (const char           *head,
                              gsize                 len,
                              const char           *key,
                              gboolean              requested_base64,
                              TwpWsClientResponse  *response,
                              GError              **error)
{
  g_autoptr(SoupMessageHeaders) headers = NULL;
  g_autofree char *copy = NULL;
  g_autofree char *reason = NULL;
  g_autofree char *expected_accept = NULL;
  gsize copy_len = 0;
  SoupHTTPVersion version;
  guint status = 0;
  const char *location;
  const char *accept;
  const char *protocol;

  g_return_val_if_fail (head != NULL || len == 0, FALSE);
  g_return_val_if_fail (key != NULL, FALSE);
  g_return_val_if_fail (response != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  /* Reset, so that the caller can clear it whatever we return. */
  response->status = 0;
  response->location = NULL;
  response->base64 = FALSE;

  copy = copy_head (head, len, &copy_len, error);
  if (copy == NULL)
    return FALSE;

  headers = soup_message_headers_new (SOUP_MESSAGE_HEADERS_RESPONSE);
  /* Status line first, on its own, so the status is known for the log even
   * when a header line is broken.
   * RFC 6455 wants HTTP/1.1, but the reference server of the proposal (the
   * Go websocket-server the first bridges ran) answers "HTTP/1.0 101":
   * liberal in the version only, every header check below applies to both.
   * libsoup would also take "ICY" or HTTP/1.2, so the prefix is checked
   * here. The header lines go through soup_headers_parse(): for HTTP/1.0,
   * soup_headers_parse_response() drops the headers Connection names,
   * Upgrade among them. */
  if (!(g_str_has_prefix (copy, "HTTP/1.1 ") || g_str_has_prefix (copy, "HTTP/1.0 ")) ||
      !soup_headers_parse_status_line (copy, &version, &status, &reason) ||
      !soup_headers_parse (copy, (int) copy_len, headers))
    {
      response->status = status;
      g_set_error_literal (error, TWP_WS_HANDSHAKE_ERROR, TWP_WS_HANDSHAKE_ERROR_MALFORMED,
                           "Malformed HTTP response");
      return FALSE;
    }
  response->status = status;

  location = soup_message_headers_get_list (headers, "Location");
  if (location != NULL)
    response->location = sanitize_for_log (location);

  if (status != SOUP_STATUS_SWITCHING_PROTOCOLS)
    {
      g_autofree char *safe_reason = sanitize_for_log (reason);

      /* The proposal: a client MUST NOT proceed on anything but 101, and
       * MUST NOT follow redirections. */
      /* The Location names a host (often the bridge's real one): it stays
       * in response->location and reaches messages only with unsafe
       * logging, as every other address. */
      if (status >= 300 && status < 400)
        g_set_error (error, TWP_WS_HANDSHAKE_ERROR, TWP_WS_HANDSHAKE_ERROR_STATUS,
                     "HTTP %u %s from WebSocket server: redirect not followed (Location: %s)",
                     status, safe_reason,
                     response->location == NULL ? "none"
                     : twp_log_get_unsafe () ? response->location : "[scrubbed]");
      else
        g_set_error (error, TWP_WS_HANDSHAKE_ERROR, TWP_WS_HANDSHAKE_ERROR_STATUS,
                     "HTTP %u %s from WebSocket server, expected 101 Switching Protocols",
                     status, safe_reason);
      return FALSE;
    }

  /* RFC 6455 section 4.1, checks 2 to 6 of the client's validation. */
  if (!soup_message_headers_header_equals (headers, "Upgrade", "websocket"))
    {
      g_set_error_literal (error, TWP_WS_HANDSHAKE_ERROR, TWP_WS_HANDSHAKE_ERROR_BAD_UPGRADE,
                           "Response lacks \"Upgrade: websocket\"");
      return FALSE;
    }
  if (!soup_message_headers_header_contains (headers, "Connection", "upgrade"))
    {
      g_set_error_literal (error, TWP_WS_HANDSHAKE_ERROR, TWP_WS_HANDSHAKE_ERROR_BAD_UPGRADE,
                           "Response lacks \"Connection: upgrade\"");
      return FALSE;
    }

  expected_accept = twp_ws_compute_accept (key);
  /* get_list joins duplicate lines, so two Accept lines never match. */
  accept = soup_message_headers_get_list (headers, "Sec-WebSocket-Accept");
  if (accept == NULL || strcmp (accept, expected_accept) != 0)
    {
      g_set_error_literal (error, TWP_WS_HANDSHAKE_ERROR, TWP_WS_HANDSHAKE_ERROR_BAD_ACCEPT,
                           accept == NULL ? "Response lacks Sec-WebSocket-Accept"
                                          : "Wrong Sec-WebSocket-Accept");
      return FALSE;
    }

  /* We never offer an extension, so the server must not use one. */
  if (soup_message_headers_get_list (headers, "Sec-WebSocket-Extensions") != NULL)
    {
      g_set_error_literal (error, TWP_WS_HANDSHAKE_ERROR, TWP_WS_HANDSHAKE_ERROR_EXTENSION,
                           "Server selected a WebSocket extension we did not offer");
      return FALSE;
    }

  protocol = soup_message_headers_get_list (headers, "Sec-WebSocket-Protocol");
  if (protocol != NULL)
    {
      /* The server answers with exactly one subprotocol, one we asked for. */
      if (!requested_base64 || strcmp (protocol, "base64") != 0)
        {
          g_set_error_literal (error, TWP_WS_HANDSHAKE_ERROR, TWP_WS_HANDSHAKE_ERROR_PROTOCOL,
                               requested_base64
                                 ? "Server selected a subprotocol other than base64"
                                 : "Server selected a subprotocol we did not request");
          return FALSE;
        }
      response->base64 = TRUE;
    }

  return TRUE;
}

/* Server side */

void
twp_ws_server_request_free (TwpWsServerRequest *request)
{
  if (request == NULL)
    return;

  g_free (request->method);
  g_free (request->path);
  g_free (request->host);
  g_free (request->origin);
  g_free (request->key);
  g_clear_pointer (&request->headers, soup_message_headers_unref);
  g_free (request);
}

/* RFC 9110 section 5.6.2: tchar. */
static gboolean
is_tchar (guchar c)
{
  return g_ascii_isalnum (c) || (c != '\0' && strchr ("!#$%&'*+-.^_`|~", c) != NULL);
}

/* RFC 9112 section 3: method SP request-target SP HTTP-version, the target
 * visible ASCII (origin, absolute, authority or asterisk form). */
static gboolean
request_line_is_strict (const char *line,
                        gsize       len)
{
  gsize i = 0;
  gsize start;

  while (i < len && is_tchar (line[i]))
    i++;
  if (i == 0 || i == len || line[i] != ' ')
    return FALSE;
  start = ++i;
  while (i < len && (guchar) line[i] > 0x20 && (guchar) line[i] < 0x7f)
    i++;
  if (i == start || i == len || line[i] != ' ')
    return FALSE;
  i++;
  return len - i == strlen ("HTTP/1.1") &&
         (memcmp (line + i, "HTTP/1.1", len - i) == 0 || memcmp (line + i, "HTTP/1.0", len - i) == 0);
}

/* libsoup's request parser is lenient (bare LF, obs-fold, lines without a
 * colon, names with spaces); a proxy in front may read such a head
 * differently from us, so refuse what RFC 9112 lets a server refuse, as
 * nginx does. @head_len includes the final empty line. */
static gboolean
request_head_is_strict (const char  *head,
                        gsize        head_len,
                        GError     **error)
{
  const char *reason = NULL;
  gboolean first = TRUE;
  gsize pos = 0;

  while (reason == NULL)
    {
      const char *line = head + pos;
      const char *lf = memchr (line, '\n', head_len - pos);
      gsize len;
      gsize i;

      /* twp_http_find_head_end () found an empty line: there is a LF. */
      g_assert (lf != NULL);
      len = (gsize) (lf - line);
      if (len == 0 || line[len - 1] != '\r')
        {
          reason = "bare LF line end";
          break;
        }
      len--;
      if (memchr (line, '\r', len) != NULL)
        reason = "CR inside a line";
      else if (first)
        {
          if (!request_line_is_strict (line, len))
            reason = "invalid request line";
          first = FALSE;
        }
      else if (len == 0)
        break;
      else if (line[0] == ' ' || line[0] == '\t')
        reason = "obs-fold continuation line";
      else
        {
          for (i = 0; i < len && is_tchar (line[i]); i++)
            ;
          if (i == len)
            reason = "header line without a colon";
          else if (line[i] != ':')
            reason = memchr (line + i, ':', len - i) != NULL ? "header name is not a token" : "header line without a colon";
          else if (i == 0)
            reason = "empty header name";
          else
            {
              /* field-value: VCHAR, obs-text, SP and HTAB only. */
              for (i++; i < len && reason == NULL; i++)
                {
                  guchar c = line[i];

                  if ((c < 0x20 && c != '\t') || c == 0x7f)
                    reason = "control character in a header value";
                }
            }
        }
      pos += (gsize) (lf - line) + 1;
    }

  if (reason != NULL)
    {
      g_set_error (error, TWP_WS_HANDSHAKE_ERROR, TWP_WS_HANDSHAKE_ERROR_MALFORMED,
                   "Malformed HTTP request: %s", reason);
      return FALSE;
    }
  return TRUE;
}

/* RFC 6455 section 4.2.1 item 5: base64 of a 16-byte value. */
static gboolean
key_is_valid (const char *key)
{
  gsize i;

  if (strlen (key) != WS_KEY_B64_SIZE)
    return FALSE;
  for (i = 0; i < WS_KEY_B64_SIZE - 2; i++)
    {
      if (!g_ascii_isalnum (key[i]) && key[i] != '+' && key[i] != '/')
        return FALSE;
    }
  return key[WS_KEY_B64_SIZE - 2] == '=' && key[WS_KEY_B64_SIZE - 1] == '=';
}

/* Subprotocol names are case-sensitive (RFC 6455 section 11.3.4), unlike
 * the header tokens soup_header_contains () compares. */
static gboolean
list_contains_exact (const char *list,
                     const char *token)
{
  GSList *items = soup_header_parse_list (list);
  gboolean found = FALSE;
  GSList *l;

  for (l = items; l != NULL && !found; l = l->next)
    found = strcmp (l->data, token) == 0;
  soup_header_free_list (items);
  return found;
}

static void
classify (TwpWsServerRequest *request,
          SoupHTTPVersion     version)
{
  SoupMessageHeaders *headers = request->headers;
  const char *ws_version;
  const char *key;
  const char *protocols;
  const char *extensions;
  gboolean upgrade_websocket;

  upgrade_websocket = soup_message_headers_header_contains (headers, "Upgrade", "websocket");
  key = soup_message_headers_get_list (headers, "Sec-WebSocket-Key");
  ws_version = soup_message_headers_get_list (headers, "Sec-WebSocket-Version");

  /* Not an attempt at WebSocket at all: an ordinary page request. */
  if (!upgrade_websocket && key == NULL && ws_version == NULL &&
      soup_message_headers_get_one (headers, "Sec-WebSocket-Key1") == NULL &&
      soup_message_headers_get_one (headers, "Sec-WebSocket-Key2") == NULL)
    {
      request->kind = TWP_WS_REQUEST_PLAIN_HTTP;
      request->reason = "no WebSocket upgrade requested";
      return;
    }

  /* Version first: a 426 tells an old client which version we speak
   * (RFC 6455 section 4.4). hixie-76 sends Key1/Key2, hixie-75 no version
   * and no key. */
  if (soup_message_headers_get_one (headers, "Sec-WebSocket-Key1") != NULL ||
      soup_message_headers_get_one (headers, "Sec-WebSocket-Key2") != NULL)
    {
      request->kind = TWP_WS_REQUEST_OLD_VERSION;
      request->reason = "hixie-76 WebSocket request";
      return;
    }
  if (ws_version == NULL && key == NULL)
    {
      request->kind = TWP_WS_REQUEST_OLD_VERSION;
      request->reason = "hixie-75 WebSocket request (no version)";
      return;
    }
  if (ws_version == NULL || strcmp (ws_version, "13") != 0)
    {
      request->kind = TWP_WS_REQUEST_OLD_VERSION;
      request->reason = "unsupported Sec-WebSocket-Version";
      return;
    }

  request->kind = TWP_WS_REQUEST_BAD;
  if (strcmp (request->method, "GET") != 0)
    {
      request->reason = "WebSocket upgrade with a method other than GET";
      return;
    }
  if (version != SOUP_HTTP_1_1)
    {
      request->reason = "WebSocket upgrade over HTTP/1.0";
      return;
    }
  if (!upgrade_websocket)
    {
      request->reason = "missing \"Upgrade: websocket\"";
      return;
    }
  if (!soup_message_headers_header_contains (headers, "Connection", "upgrade"))
    {
      request->reason = "missing \"Connection: upgrade\"";
      return;
    }
  /* RFC 7230 section 5.4: exactly one Host, else 400. */
  if (count_headers (headers, "Host") != 1)
    {
      request->reason = "missing or repeated Host";
      return;
    }
  /* get_list joins repeated lines, which then fail the check. */
  if (key == NULL || !key_is_valid (key))
    {
      request->reason = "missing or invalid Sec-WebSocket-Key";
      return;
    }

  request->kind = TWP_WS_REQUEST_UPGRADE;
  request->reason = NULL;
  request->key = g_strdup (key);

  protocols = soup_message_headers_get_list (headers, "Sec-WebSocket-Protocol");
  request->wants_base64 = protocols != NULL && list_contains_exact (protocols, "base64");
  extensions = soup_message_headers_get_list (headers, "Sec-WebSocket-Extensions");
  request->offered_extensions = extensions != NULL && extensions[0] != '\0';
}

TwpWsServerRequest *
twp_ws_server_request_parse (const char  *head,
                             gsize        len,
                             GError     **error)
{
  g_autoptr(TwpWsServerRequest) request = NULL;
  g_autoptr(SoupMessageHeaders) headers = NULL;
  g_autofree char *copy = NULL;
  g_autofree char *method = NULL;
  g_autofree char *path = NULL;
  gsize copy_len = 0;
  SoupHTTPVersion version = SOUP_HTTP_1_0;
  guint status;
  const char *value;

  g_return_val_if_fail (head != NULL || len == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  copy = copy_head (head, len, &copy_len, error);
  if (copy == NULL)
    return NULL;
  if (!request_head_is_strict (head, twp_http_find_head_end ((const guint8 *) head, len, NULL), error))
    return NULL;

  headers = soup_message_headers_new (SOUP_MESSAGE_HEADERS_REQUEST);
  status = soup_headers_parse_request (copy, (int) copy_len, headers, &method, &path, &version);
  if (status != SOUP_STATUS_OK)
    {
      g_set_error (error, TWP_WS_HANDSHAKE_ERROR, TWP_WS_HANDSHAKE_ERROR_MALFORMED,
                   "Malformed HTTP request (%u %s)", status, soup_status_get_phrase (status));
      return NULL;
    }

  request = g_new0 (TwpWsServerRequest, 1);
  request->method = g_steal_pointer (&method);
  request->path = g_steal_pointer (&path);
  request->headers = g_steal_pointer (&headers);
  value = soup_message_headers_get_list (request->headers, "Host");
  request->host = g_strdup (value);
  value = soup_message_headers_get_list (request->headers, "Origin");
  request->origin = g_strdup (value);

  classify (request, version);
  return g_steal_pointer (&request);
}

char *
twp_ws_server_response_accept (const char *key,
                               gboolean    base64)
{
  g_autofree char *accept = NULL;

  g_return_val_if_fail (key != NULL, NULL);

  accept = twp_ws_compute_accept (key);
  return g_strdup_printf ("HTTP/1.1 101 Switching Protocols\r\n"
                          "Upgrade: websocket\r\n"
                          "Connection: Upgrade\r\n"
                          "Sec-WebSocket-Accept: %s\r\n"
                          "%s"
                          "\r\n",
                          accept,
                          base64 ? "Sec-WebSocket-Protocol: base64\r\n" : "");
}

/* Plain HTTP responses */

static const char *
status_phrase (guint status)
{
  switch (status)
    {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Not Allowed"; /* nginx's wording */
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 503: return "Service Temporarily Unavailable"; /* nginx's wording */
    default: return NULL;
    }
}

/* Status line and the headers every response carries: the Server header
 * says what most of the web says, never tor or websocket. */
static GString *
response_head_new (guint        status,
                   const char  *content_type,
                   gsize        content_length)
{
  g_autoptr(GDateTime) now = g_date_time_new_now_utc ();
  g_autofree char *date = soup_date_time_to_string (now, SOUP_DATE_HTTP);
  GString *response = g_string_sized_new (512);

  g_string_append_printf (response, "HTTP/1.1 %u %s\r\n", status, status_phrase (status));
  g_string_append (response, "Server: nginx\r\n");
  g_string_append_printf (response, "Date: %s\r\n", date);
  g_string_append_printf (response, "Content-Type: %s\r\n", content_type);
  g_string_append_printf (response, "Content-Length: %" G_GSIZE_FORMAT "\r\n", content_length);
  return response;
}

char *
twp_http_response_error (guint status)
{
  g_autofree char *body = NULL;
  const char *phrase = status_phrase (status);
  GString *response;

  g_return_val_if_fail (phrase != NULL && status >= 400, NULL);

  body = g_strdup_printf ("<html>\r\n"
                          "<head><title>%u %s</title></head>\r\n"
                          "<body>\r\n"
                          "<center><h1>%u %s</h1></center>\r\n"
                          "<hr><center>nginx</center>\r\n"
                          "</body>\r\n"
                          "</html>\r\n",
                          status, phrase, status, phrase);

  response = response_head_new (status, "text/html", strlen (body));
  if (status == 405)
    g_string_append (response, "Allow: GET, HEAD\r\n");
  if (status == 426)
    {
      /* RFC 6455 section 4.4; RFC 7230 section 6.7 wants the "upgrade"
       * connection option next to an Upgrade header. */
      g_string_append (response, "Sec-WebSocket-Version: 13\r\n");
      g_string_append (response, "Upgrade: websocket\r\n");
      g_string_append (response, "Connection: upgrade, close\r\n");
    }
  else
    {
      g_string_append (response, "Connection: close\r\n");
    }
  g_string_append (response, "\r\n");
  g_string_append (response, body);
  return g_string_free (response, FALSE);
}

char *
twp_http_response_ok (const char *content_type,
                      GBytes     *body,
                      gboolean    head_only,
                      gsize      *length)
{
  gconstpointer data;
  gsize size;
  GString *response;

  g_return_val_if_fail (content_type != NULL && header_value_is_safe (content_type), NULL);
  g_return_val_if_fail (body != NULL, NULL);
  g_return_val_if_fail (length != NULL, NULL);

  data = g_bytes_get_data (body, &size);
  response = response_head_new (200, content_type, size);
  g_string_append (response, "Connection: close\r\n");
  g_string_append (response, "\r\n");
  if (!head_only && size > 0)
    g_string_append_len (response, data, (gssize) size);

  *length = response->len;
  return g_string_free (response, FALSE);
}

/* Reverse proxies */

/* Digits only, 1..65535: a port a proxy may append to the address. */
static gboolean
port_is_valid (const char *port)
{
  guint64 value;

  if (port[0] == '\0' || strlen (port) > 5)
    return FALSE;
  if (!g_ascii_string_to_unsigned (port, 10, 1, 65535, &value, NULL))
    return FALSE;
  return TRUE;
}

/* Whether @address can be a client's own: not unspecified (0.0.0.0/8,
 * ::), broadcast, reserved (240.0.0.0/4) or multicast. Such an address
 * never sends a TCP handshake; written by a proxy it means the proxy did
 * not know, and as USERADDR it would pool unrelated clients. */
static gboolean
is_client_address (GInetAddress *address)
{
  const guint8 *bytes = g_inet_address_to_bytes (address);

  if (g_inet_address_get_is_any (address) || g_inet_address_get_is_multicast (address))
    return FALSE;
  if (g_inet_address_get_family (address) == G_SOCKET_FAMILY_IPV4)
    return bytes[0] != 0 && bytes[0] < 224;
  return TRUE;
}

/* An IP literal in canonical form, or NULL. An IPv4-mapped IPv6 address
 * comes out as the IPv4 address it is. Zone IDs are refused: they only
 * mean something on the proxy's host. */
static char *
canonical_ip (const char *text,
              gsize       len,
              gboolean    want_ipv6)
{
  g_autofree char *copy = g_strndup (text, len);
  g_autoptr(GInetAddress) address = NULL;
  const guint8 *bytes;

  if (copy[0] == '\0' || strchr (copy, '%') != NULL)
    return NULL;
  address = g_inet_address_new_from_string (copy);
  if (address == NULL)
    return NULL;
  if ((g_inet_address_get_family (address) == G_SOCKET_FAMILY_IPV6) != want_ipv6)
    return NULL;
  bytes = g_inet_address_to_bytes (address);
  /* ::ffff:a.b.c.d (GLib 2.74 has no g_inet_address_get_is_mapped_v4 ()) */
  if (want_ipv6 && memcmp (bytes, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0)
    {
      g_autoptr(GInetAddress) v4 = g_inet_address_new_from_bytes (bytes + 12, G_SOCKET_FAMILY_IPV4);

      g_set_object (&address, v4);
    }
  if (!is_client_address (address))
    return NULL;
  return g_inet_address_to_string (address);
}

/* One node of either header: "1.2.3.4", "1.2.3.4:80", "[v6]", "[v6]:80",
 * and (X-Forwarded-For only) a bare "v6". Anything else ("unknown",
 * "_obfuscated", names) is NULL. */
static char *
parse_node (const char *node,
            gboolean    allow_bare_ipv6)
{
  const char *colon;

  if (node[0] == '[')
    {
      const char *close = strchr (node, ']');

      if (close == NULL)
        return NULL;
      if (close[1] != '\0' && (close[1] != ':' || !port_is_valid (close + 2)))
        return NULL;
      return canonical_ip (node + 1, (gsize) (close - node - 1), TRUE);
    }

  colon = strchr (node, ':');
  if (colon == NULL)
    return canonical_ip (node, strlen (node), FALSE);
  if (strchr (colon + 1, ':') != NULL)
    return allow_bare_ipv6 ? canonical_ip (node, strlen (node), TRUE) : NULL;
  if (!port_is_valid (colon + 1))
    return NULL;
  return canonical_ip (node, (gsize) (colon - node), FALSE);
}

/* Whether every quoted-string in @list is closed, with the rules libsoup's
 * list parser uses (backslash escapes only inside quotes). */
static gboolean
quotes_balanced (const char *list)
{
  gboolean quoted = FALSE;
  const char *p;

  for (p = list; *p != '\0'; p++)
    {
      if (*p == '"')
        quoted = !quoted;
      else if (quoted && *p == '\\' && p[1] != '\0')
        p++;
    }
  return !quoted;
}

/* The last element of a comma-separated list (quoted strings respected),
 * or NULL for an empty list. */
static char *
last_list_element (const char *list)
{
  GSList *items;
  char *last = NULL;
  GSList *l;

  /* A client that ends its own header in an open quote would swallow the
   * element the proxy appends ('for="6.6.6.6""' + ', for=10.0.0.1' decodes
   * as 6.6.6.6): the proxy's element must stand on its own. */
  if (!quotes_balanced (list))
    return NULL;

  items = soup_header_parse_list (list);
  l = g_slist_last (items);
  if (l != NULL)
    last = g_steal_pointer (&l->data);
  soup_header_free_list (items);
  return last;
}

static char *
forwarded_rfc7239 (const char *value)
{
  g_autofree char *element = last_list_element (value);
  GHashTable *params;
  const char *node;
  char *result = NULL;

  if (element == NULL)
    return NULL;
  /* Strict: a repeated "for" makes the element unusable. */
  params = soup_header_parse_semi_param_list_strict (element);
  if (params == NULL)
    return NULL;
  /* Parameter names are case-insensitive here, as RFC 7239 wants; quoted
   * values come back unquoted. */
  node = g_hash_table_lookup (params, "for");
  if (node != NULL)
    result = parse_node (node, FALSE);
  soup_header_free_param_list (params);
  return result;
}

static char *
forwarded_x_forwarded_for (const char *value)
{
  g_autofree char *element = last_list_element (value);

  if (element == NULL)
    return NULL;
  return parse_node (element, TRUE);
}

char *
twp_http_forwarded_for_from (SoupMessageHeaders     *headers,
                             TwpHttpForwardedSource  source)
{
  const char *forwarded;
  const char *x_forwarded_for;

  if (headers == NULL)
    return NULL;

  forwarded = soup_message_headers_get_list (headers, "Forwarded");
  x_forwarded_for = soup_message_headers_get_list (headers, "X-Forwarded-For");

  switch (source)
    {
    case TWP_HTTP_FORWARDED_ANY:
      /* A present but unusable Forwarded does not fall back to
       * X-Forwarded-For: the proxy told us it does not know. */
      if (forwarded != NULL)
        return forwarded_rfc7239 (forwarded);
      return x_forwarded_for != NULL ? forwarded_x_forwarded_for (x_forwarded_for) : NULL;
    case TWP_HTTP_FORWARDED_RFC7239:
      return forwarded != NULL ? forwarded_rfc7239 (forwarded) : NULL;
    case TWP_HTTP_FORWARDED_X_FORWARDED_FOR:
      return x_forwarded_for != NULL ? forwarded_x_forwarded_for (x_forwarded_for) : NULL;
    default:
      g_return_val_if_reached (NULL);
    }
}

char *
twp_http_forwarded_for (SoupMessageHeaders *headers)
{
  return twp_http_forwarded_for_from (headers, TWP_HTTP_FORWARDED_ANY);
}
