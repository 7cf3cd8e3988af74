/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-ws-handshake"

#include "config.h"

#include "twp-ws-handshake.h"

#include "twp-http-private.h"
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
      /* This parser's callers match its own domain. */
      g_set_error_literal (error, TWP_WS_HANDSHAKE_ERROR, TWP_WS_HANDSHAKE_ERROR_TOO_LARGE,
                           local_error->message);
      g_error_free (local_error);
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
  if (!twp_http_header_value_is_safe (host))
    {
      g_set_error_literal (error, TWP_WS_HANDSHAKE_ERROR, TWP_WS_HANDSHAKE_ERROR_INVALID_ARGUMENT,
                           "Host contains control characters");
      return NULL;
    }
  if (options->origin != NULL && !twp_http_header_value_is_safe (options->origin))
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
  g_clear_pointer (&request->headers, twp_http_headers_free);
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
  SoupMessageHeaders *headers = twp_http_headers_get_soup (request->headers);
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
  value = soup_message_headers_get_list (headers, "Host");
  request->host = g_strdup (value);
  value = soup_message_headers_get_list (headers, "Origin");
  request->origin = g_strdup (value);
  request->headers = twp_http_headers_new_take (g_steal_pointer (&headers));

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
