/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-test-ws-handshake"

#include "config.h"

#include "twp-ws-handshake.h"
#include "twp-log.h"

#include <string.h>

/* The two handshakes of the proposal ("Examples"); Host left empty there. */
#define PROPOSAL_KEY_BINARY "mzo2xSF9N8VUxuefqO0RSw=="
#define PROPOSAL_ACCEPT_BINARY "fM0KjD7ixoxkl4PEXU6tNaTveSg="
#define PROPOSAL_KEY_BASE64 "k5Ybhw0XBDeBfmda1J9ooQ=="
#define PROPOSAL_ACCEPT_BASE64 "LYWpflPUHdal8U1BLPXWR3iqUrI="

static const char proposal_request_binary[] =
  "GET / HTTP/1.1\r\n"
  "Host:\r\n"
  "Origin: https://example.com\r\n"
  "Sec-WebSocket-Version: 13\r\n"
  "Sec-WebSocket-Key: " PROPOSAL_KEY_BINARY "\r\n"
  "Connection: Upgrade\r\n"
  "Upgrade: websocket\r\n"
  "\r\n";

static const char proposal_request_base64[] =
  "GET / HTTP/1.1\r\n"
  "Host:\r\n"
  "Origin: https://example.com\r\n"
  "Sec-WebSocket-Version: 13\r\n"
  "Sec-WebSocket-Protocol: base64\r\n"
  "Sec-WebSocket-Key: " PROPOSAL_KEY_BASE64 "\r\n"
  "Connection: Upgrade\r\n"
  "Upgrade: websocket\r\n"
  "\r\n";

static const char proposal_response_binary[] =
  "HTTP/1.1 101 Switching Protocols\r\n"
  "Upgrade: websocket\r\n"
  "Connection: Upgrade\r\n"
  "Sec-WebSocket-Accept: " PROPOSAL_ACCEPT_BINARY "\r\n"
  "\r\n";

static const char proposal_response_base64[] =
  "HTTP/1.1 101 Switching Protocols\r\n"
  "Upgrade: websocket\r\n"
  "Connection: Upgrade\r\n"
  "Sec-WebSocket-Accept: " PROPOSAL_ACCEPT_BASE64 "\r\n"
  "Sec-WebSocket-Protocol: base64\r\n"
  "\r\n";

static void
test_accept (void)
{
  g_autofree char *rfc = twp_ws_compute_accept ("dGhlIHNhbXBsZSBub25jZQ==");
  g_autofree char *binary = twp_ws_compute_accept (PROPOSAL_KEY_BINARY);
  g_autofree char *base64 = twp_ws_compute_accept (PROPOSAL_KEY_BASE64);

  /* RFC 6455 section 1.3 (checked with Python's hashlib; the value
   * "s3pPLMBiTxaQ9kYGjB1EGvq0HBk=" in our brief was a typo). */
  g_assert_cmpstr (rfc, ==, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  g_assert_cmpstr (binary, ==, PROPOSAL_ACCEPT_BINARY);
  g_assert_cmpstr (base64, ==, PROPOSAL_ACCEPT_BASE64);
}

/* find_head_end */

static void
test_head_end_incremental (void)
{
  const char *request = proposal_request_binary;
  gsize total = strlen (request);
  gsize i;

  /* Fed one byte more at a time, the end shows up exactly at the last byte. */
  for (i = 0; i < total; i++)
    {
      g_autoptr(GError) error = NULL;

      g_assert_cmpuint (twp_http_find_head_end ((const guint8 *) request, i, &error), ==, 0);
      g_assert_no_error (error);
    }
  g_assert_cmpuint (twp_http_find_head_end ((const guint8 *) request, total, NULL), ==, total);
}

static void
test_head_end_forms (void)
{
  const struct {
    const char *text;
    gsize expected;
  } cases[] = {
    { "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27 },
    { "GET / HTTP/1.1\nHost: a\n\n", 24 },             /* bare LF */
    { "GET / HTTP/1.1\r\nHost: a\n\r\n", 26 },         /* LF CR LF */
    { "GET / HTTP/1.1\r\nHost: a\r\n\r\n\x82\x80", 27 }, /* frames follow */
    { "GET / HTTP/1.1\r\nHost: a\r\n\r", 0 },
    { "GET / HTTP/1.1\r\n\rHost: a\r\n", 0 },          /* lone CR is no line end */
    { "", 0 },
    { "\n\n", 2 },
  };
  gsize i;

  for (i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GError) error = NULL;
      gsize end = twp_http_find_head_end ((const guint8 *) cases[i].text, strlen (cases[i].text), &error);

      g_assert_no_error (error);
      g_assert_cmpuint (end, ==, cases[i].expected);
    }
}

static void
test_head_end_too_large (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GByteArray) buf = g_byte_array_new ();
  g_autofree char *filler = g_strnfill (TWP_HTTP_MAX_HEAD_SIZE, 'a');
  gsize end;

  g_byte_array_append (buf, (const guint8 *) "GET / HTTP/1.1\r\nX: ", 19);
  g_byte_array_append (buf, (const guint8 *) filler, TWP_HTTP_MAX_HEAD_SIZE - 19 - 4);
  /* One byte short of the limit: still waiting. */
  end = twp_http_find_head_end (buf->data, buf->len + 3, &error);
  g_byte_array_append (buf, (const guint8 *) "\r\n\r\n", 4);
  g_assert_cmpuint (buf->len, ==, TWP_HTTP_MAX_HEAD_SIZE);
  g_assert_no_error (error);
  g_assert_cmpuint (end, ==, 0);

  /* Exactly the limit, end included: accepted. */
  end = twp_http_find_head_end (buf->data, buf->len, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (end, ==, TWP_HTTP_MAX_HEAD_SIZE);

  /* One more byte of header before the end: refused, however much follows. */
  g_byte_array_set_size (buf, 0);
  g_byte_array_append (buf, (const guint8 *) filler, TWP_HTTP_MAX_HEAD_SIZE);
  g_byte_array_append (buf, (const guint8 *) "\r\n\r\n", 4);
  end = twp_http_find_head_end (buf->data, TWP_HTTP_MAX_HEAD_SIZE, &error);
  g_assert_error (error, TWP_HTTP_ERROR, TWP_HTTP_ERROR_TOO_LARGE);
  g_assert_cmpuint (end, ==, 0);
  g_clear_error (&error);
  end = twp_http_find_head_end (buf->data, buf->len, &error);
  g_assert_error (error, TWP_HTTP_ERROR, TWP_HTTP_ERROR_TOO_LARGE);
  g_assert_cmpuint (end, ==, 0);
  g_clear_error (&error);

  /* The parsers refuse it the same way. */
  g_assert_null (twp_ws_server_request_parse ((const char *) buf->data, buf->len, &error));
  g_assert_error (error, TWP_WS_HANDSHAKE_ERROR, TWP_WS_HANDSHAKE_ERROR_TOO_LARGE);
}

/* Client request */

static char *
build (const char  *url,
       const char  *host_header,
       const char  *origin,
       gboolean     base64,
       char       **key_out,
       GError     **error)
{
  g_autoptr(GUri) uri = g_uri_parse (url, G_URI_FLAGS_ENCODED, NULL);
  TwpWsClientRequestOptions options = { 0 };

  g_assert_nonnull (uri);
  options.uri = uri;
  options.host_header = host_header;
  options.origin = origin;
  options.request_base64 = base64;
  return twp_ws_client_request_build (&options, key_out, error);
}

static void
assert_key_valid (const char *key)
{
  g_autofree guchar *raw = NULL;
  gsize raw_len;

  g_assert_cmpuint (strlen (key), ==, 24);
  raw = g_base64_decode (key, &raw_len);
  g_assert_cmpuint (raw_len, ==, 16);
}

static void
test_request_exact (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *key = NULL;
  g_autofree char *request = NULL;
  g_autofree char *expected = NULL;

  request = build ("wss://example.com/ws", NULL, "https://example.com", FALSE, &key, &error);
  g_assert_no_error (error);
  assert_key_valid (key);
  expected = g_strdup_printf ("GET /ws HTTP/1.1\r\n"
                              "Host: example.com\r\n"
                              "Origin: https://example.com\r\n"
                              "Sec-WebSocket-Version: 13\r\n"
                              "Sec-WebSocket-Key: %s\r\n"
                              "Connection: Upgrade\r\n"
                              "Upgrade: websocket\r\n"
                              "\r\n", key);
  g_assert_cmpstr (request, ==, expected);
  /* Nothing that identifies the implementation or invites compression. */
  g_assert_null (strstr (request, "User-Agent"));
  g_assert_null (strstr (request, "Accept-Encoding"));
  g_assert_null (strstr (request, "Extensions"));
  g_assert_null (strstr (request, "Protocol"));
}

static void
test_request_base64_and_keys (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *key1 = NULL;
  g_autofree char *key2 = NULL;
  g_autofree char *request = NULL;
  g_autofree char *request2 = NULL;
  g_autofree char *expected = NULL;

  request = build ("ws://example.com", NULL, NULL, TRUE, &key1, &error);
  g_assert_no_error (error);
  expected = g_strdup_printf ("GET / HTTP/1.1\r\n"
                              "Host: example.com\r\n"
                              "Sec-WebSocket-Version: 13\r\n"
                              "Sec-WebSocket-Protocol: base64\r\n"
                              "Sec-WebSocket-Key: %s\r\n"
                              "Connection: Upgrade\r\n"
                              "Upgrade: websocket\r\n"
                              "\r\n", key1);
  g_assert_cmpstr (request, ==, expected);
  g_assert_null (strstr (request, "Origin"));

  /* A fresh key per request. */
  request2 = build ("ws://example.com", NULL, NULL, TRUE, &key2, &error);
  g_assert_no_error (error);
  assert_key_valid (key2);
  g_assert_cmpstr (key1, !=, key2);
}

static void
assert_request_line_and_host (const char *url,
                              const char *host_header,
                              const char *request_line,
                              const char *host_line)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *key = NULL;
  g_autofree char *request = build (url, host_header, NULL, FALSE, &key, &error);

  g_assert_no_error (error);
  g_assert_nonnull (request);
  g_assert_true (g_str_has_prefix (request, request_line));
  g_assert_nonnull (strstr (request, host_line));
}

static void
test_request_hosts_and_paths (void)
{
  assert_request_line_and_host ("ws://[2001:db8::1]/", NULL, "GET / HTTP/1.1\r\n", "\r\nHost: [2001:db8::1]\r\n");
  assert_request_line_and_host ("ws://[2001:db8::1]:8080/", NULL, "GET / HTTP/1.1\r\n", "\r\nHost: [2001:db8::1]:8080\r\n");
  assert_request_line_and_host ("wss://[2001:db8::1]:443/x", NULL, "GET /x HTTP/1.1\r\n", "\r\nHost: [2001:db8::1]\r\n");
  assert_request_line_and_host ("ws://[fe80::1%25eth0]:81/", NULL, "GET / HTTP/1.1\r\n", "\r\nHost: [fe80::1]:81\r\n");
  /* Default ports omitted, others kept. */
  assert_request_line_and_host ("ws://example.com:80/", NULL, "GET / HTTP/1.1\r\n", "\r\nHost: example.com\r\n");
  assert_request_line_and_host ("wss://example.com:443/", NULL, "GET / HTTP/1.1\r\n", "\r\nHost: example.com\r\n");
  assert_request_line_and_host ("ws://example.com:443/", NULL, "GET / HTTP/1.1\r\n", "\r\nHost: example.com:443\r\n");
  assert_request_line_and_host ("wss://example.com:80/", NULL, "GET / HTTP/1.1\r\n", "\r\nHost: example.com:80\r\n");
  assert_request_line_and_host ("ws://192.0.2.1:9901/", NULL, "GET / HTTP/1.1\r\n", "\r\nHost: 192.0.2.1:9901\r\n");
  /* Path and query kept as written; the fragment is never sent. */
  assert_request_line_and_host ("wss://example.com/a%20b/c%2Fd?x=1&y=%2F#frag", NULL,
                                "GET /a%20b/c%2Fd?x=1&y=%2F HTTP/1.1\r\n", "\r\nHost: example.com\r\n");
  assert_request_line_and_host ("ws://example.com?q", NULL, "GET /?q HTTP/1.1\r\n", "\r\nHost: example.com\r\n");
  /* An explicit Host header (domain fronting) wins. */
  assert_request_line_and_host ("wss://front.example/", "hidden.example", "GET / HTTP/1.1\r\n",
                                "\r\nHost: hidden.example\r\n");
}

static void
test_request_injection (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *key = NULL;
  g_autofree char *request = NULL;
  g_autoptr(GUri) uri = NULL;
  TwpWsClientRequestOptions options = { 0 };

  request = build ("ws://example.com/", NULL, "https://a.example\r\nX-Evil: 1", FALSE, &key, &error);
  g_assert_error (error, TWP_WS_HANDSHAKE_ERROR, TWP_WS_HANDSHAKE_ERROR_INVALID_ARGUMENT);
  g_assert_null (request);
  g_assert_null (key);
  g_clear_error (&error);

  request = build ("ws://example.com/", "a.example\nX: y", NULL, FALSE, &key, &error);
  g_assert_error (error, TWP_WS_HANDSHAKE_ERROR, TWP_WS_HANDSHAKE_ERROR_INVALID_ARGUMENT);
  g_assert_null (request);
  g_clear_error (&error);

  /* A decoded URI whose path holds CR LF gets it percent-encoded again. */
  uri = g_uri_parse ("ws://example.com/a%0D%0AX:%20y", G_URI_FLAGS_NONE, NULL);
  g_assert_nonnull (uri);
  options.uri = uri;
  request = twp_ws_client_request_build (&options, &key, &error);
  g_assert_no_error (error);
  g_assert_true (g_str_has_prefix (request, "GET /a%0D%0AX:%20y HTTP/1.1\r\n"));
  g_clear_pointer (&request, g_free);
  g_clear_pointer (&key, g_free);
  g_clear_pointer (&uri, g_uri_unref);

  /* ... and a decoded host with CR LF is refused. */
  uri = g_uri_parse ("ws://exa%0D%0Ample.com/", G_URI_FLAGS_NONE, NULL);
  if (uri != NULL)
    {
      options.uri = uri;
      request = twp_ws_client_request_build (&options, &key, &error);
      g_assert_error (error, TWP_WS_HANDSHAKE_ERROR, TWP_WS_HANDSHAKE_ERROR_INVALID_ARGUMENT);
      g_assert_null (request);
      g_clear_error (&error);
    }
}

/* Client response */

static gboolean
parse_response (const char           *head,
                const char           *key,
                gboolean              requested_base64,
                TwpWsClientResponse  *response,
                GError              **error)
{
  return twp_ws_client_response_parse (head, strlen (head), key, requested_base64, response, error);
}

static void
test_response_ok (void)
{
  g_autoptr(GError) error = NULL;
  TwpWsClientResponse response = { 0 };
  g_autofree char *with_frames = NULL;

  g_assert_true (parse_response (proposal_response_binary, PROPOSAL_KEY_BINARY, FALSE, &response, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (response.status, ==, 101);
  g_assert_false (response.base64);
  g_assert_null (response.location);
  twp_ws_client_response_clear (&response);

  g_assert_true (parse_response (proposal_response_base64, PROPOSAL_KEY_BASE64, TRUE, &response, &error));
  g_assert_no_error (error);
  g_assert_true (response.base64);
  twp_ws_client_response_clear (&response);

  /* Requested but not granted: binary, the caller decides. */
  g_assert_true (parse_response (proposal_response_binary, PROPOSAL_KEY_BINARY, TRUE, &response, &error));
  g_assert_no_error (error);
  g_assert_false (response.base64);
  twp_ws_client_response_clear (&response);

  /* Case-insensitive header names and values, token lists, bare LF, and
   * frame bytes after the head. */
  with_frames = g_strconcat ("HTTP/1.1 101 Web Socket Protocol Handshake\n"
                             "upgrade: WebSocket\n"
                             "connection: keep-alive, UPGRADE\n"
                             "sec-websocket-accept: " PROPOSAL_ACCEPT_BINARY "\n"
                             "Server: nginx\n"
                             "\n", "\x82\x05hello", NULL);
  g_assert_true (parse_response (with_frames, PROPOSAL_KEY_BINARY, FALSE, &response, &error));
  g_assert_no_error (error);
  twp_ws_client_response_clear (&response);
}

static void
test_response_status (void)
{
  const struct {
    const char *head;
    guint status;
    const char *location;
    const char *message_part;
  } cases[] = {
    { "HTTP/1.1 301 Moved Permanently\r\nLocation: wss://other.example/\r\nContent-Length: 0\r\n\r\n",
      301, "wss://other.example/", "redirect not followed" },
    { "HTTP/1.1 302 Found\r\nLocation: ws://evil.example/ws\r\n\r\n", 302, "ws://evil.example/ws", "HTTP 302" },
    { "HTTP/1.1 307 Temporary Redirect\r\n\r\n", 307, NULL, "redirect not followed" },
    { "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", 403, NULL, "HTTP 403" },
    { "HTTP/1.1 404 Not Found\r\n\r\n", 404, NULL, "HTTP 404" },
    { "HTTP/1.1 500 Internal Server Error\r\n\r\n", 500, NULL, "HTTP 500" },
    { "HTTP/1.1 200 OK\r\n"
      "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " PROPOSAL_ACCEPT_BINARY "\r\n\r\n",
      200, NULL, "HTTP 200" },
    /* A Location meant for a terminal gets defanged for the log. */
    { "HTTP/1.1 302 Found\r\nLocation: http://x/\x1b[31m\r\n\r\n", 302, "http://x/?[31m", "HTTP 302" },
  };
  gsize i;

  for (i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GError) error = NULL;
      TwpWsClientResponse response = { 0 };

      g_assert_false (parse_response (cases[i].head, PROPOSAL_KEY_BINARY, FALSE, &response, &error));
      g_assert_error (error, TWP_WS_HANDSHAKE_ERROR, TWP_WS_HANDSHAKE_ERROR_STATUS);
      g_assert_nonnull (strstr (error->message, cases[i].message_part));
      g_assert_cmpuint (response.status, ==, cases[i].status);
      g_assert_cmpstr (response.location, ==, cases[i].location);
      twp_ws_client_response_clear (&response);
      g_assert_null (response.location);
    }
}

/* A redirect's Location often names the bridge's real host: the error text
 * (which reaches tor's log and D-Bus broadcasts) carries it only with
 * unsafe logging. */
static void
test_response_location_private (void)
{
  static const char head[] = "HTTP/1.1 302 Found\r\nLocation: wss://secret-bridge.example.net/ws\r\n\r\n";

  for (int unsafe = 0; unsafe <= 1; unsafe++)
    {
      g_autoptr(GError) error = NULL;
      TwpWsClientResponse response = { 0 };

      twp_log_set_unsafe (unsafe);
      g_assert_false (parse_response (head, PROPOSAL_KEY_BINARY, FALSE, &response, &error));
      g_assert_error (error, TWP_WS_HANDSHAKE_ERROR, TWP_WS_HANDSHAKE_ERROR_STATUS);
      g_assert_cmpstr (response.location, ==, "wss://secret-bridge.example.net/ws");
      if (unsafe)
        g_assert_nonnull (strstr (error->message, "secret-bridge.example.net"));
      else
        g_assert_null (strstr (error->message, "secret-bridge"));
      twp_ws_client_response_clear (&response);
    }
  twp_log_set_unsafe (FALSE);
}

static void
test_response_bad (void)
{
  const struct {
    const char *head;
    gboolean requested_base64;
    int code;
  } cases[] = {
    /* Accept */
    { "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
      FALSE, TWP_WS_HANDSHAKE_ERROR_BAD_ACCEPT },
    { "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: " PROPOSAL_ACCEPT_BASE64 "\r\n\r\n", FALSE, TWP_WS_HANDSHAKE_ERROR_BAD_ACCEPT },
    { "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: fm0kjd7ixoxkl4pexu6tnatvesg=\r\n\r\n", FALSE, TWP_WS_HANDSHAKE_ERROR_BAD_ACCEPT },
    { "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: " PROPOSAL_ACCEPT_BINARY "\r\n"
      "Sec-WebSocket-Accept: " PROPOSAL_ACCEPT_BINARY "\r\n\r\n", FALSE, TWP_WS_HANDSHAKE_ERROR_BAD_ACCEPT },
    /* Upgrade / Connection */
    { "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: " PROPOSAL_ACCEPT_BINARY "\r\n\r\n", FALSE, TWP_WS_HANDSHAKE_ERROR_BAD_UPGRADE },
    { "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: " PROPOSAL_ACCEPT_BINARY "\r\n\r\n", FALSE, TWP_WS_HANDSHAKE_ERROR_BAD_UPGRADE },
    { "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
      "Sec-WebSocket-Accept: " PROPOSAL_ACCEPT_BINARY "\r\n\r\n", FALSE, TWP_WS_HANDSHAKE_ERROR_BAD_UPGRADE },
    { "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
      "Sec-WebSocket-Accept: " PROPOSAL_ACCEPT_BINARY "\r\n\r\n", FALSE, TWP_WS_HANDSHAKE_ERROR_BAD_UPGRADE },
    /* Subprotocol both ways */
    { "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: " PROPOSAL_ACCEPT_BINARY "\r\nSec-WebSocket-Protocol: base64\r\n\r\n",
      FALSE, TWP_WS_HANDSHAKE_ERROR_PROTOCOL },
    { "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: " PROPOSAL_ACCEPT_BINARY "\r\nSec-WebSocket-Protocol: chat\r\n\r\n",
      TRUE, TWP_WS_HANDSHAKE_ERROR_PROTOCOL },
    { "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: " PROPOSAL_ACCEPT_BINARY "\r\nSec-WebSocket-Protocol: base64, chat\r\n\r\n",
      TRUE, TWP_WS_HANDSHAKE_ERROR_PROTOCOL },
    { "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: " PROPOSAL_ACCEPT_BINARY "\r\nSec-WebSocket-Protocol: base64\r\n"
      "Sec-WebSocket-Protocol: base64\r\n\r\n", TRUE, TWP_WS_HANDSHAKE_ERROR_PROTOCOL },
    { "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: " PROPOSAL_ACCEPT_BINARY "\r\nSec-WebSocket-Protocol: BASE64\r\n\r\n",
      TRUE, TWP_WS_HANDSHAKE_ERROR_PROTOCOL },
    /* Extensions */
    { "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: " PROPOSAL_ACCEPT_BINARY "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
      FALSE, TWP_WS_HANDSHAKE_ERROR_EXTENSION },
    { "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: " PROPOSAL_ACCEPT_BINARY "\r\nSec-WebSocket-Extensions:\r\n\r\n",
      FALSE, TWP_WS_HANDSHAKE_ERROR_EXTENSION },
    /* Truncated and garbage */
    { "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n", FALSE, TWP_WS_HANDSHAKE_ERROR_MALFORMED },
    { "HTTP/1.1 101", FALSE, TWP_WS_HANDSHAKE_ERROR_MALFORMED },
    { "", FALSE, TWP_WS_HANDSHAKE_ERROR_MALFORMED },
    { "\r\n\r\n", FALSE, TWP_WS_HANDSHAKE_ERROR_MALFORMED },
    { "SSH-2.0-OpenSSH_9.2\r\n\r\n", FALSE, TWP_WS_HANDSHAKE_ERROR_MALFORMED },
    { "HTTP/2 101\r\n\r\n", FALSE, TWP_WS_HANDSHAKE_ERROR_MALFORMED },
    { "HTTP/1.1 1010 Switching\r\n\r\n", FALSE, TWP_WS_HANDSHAKE_ERROR_MALFORMED },
    { "HTTP/1.1 abc Switching\r\n\r\n", FALSE, TWP_WS_HANDSHAKE_ERROR_MALFORMED },
    { "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n\n", FALSE, TWP_WS_HANDSHAKE_ERROR_MALFORMED },
  };
  gsize i;

  for (i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GError) error = NULL;
      TwpWsClientResponse response = { 0 };

      g_test_message ("case %" G_GSIZE_FORMAT, i);
      g_assert_false (parse_response (cases[i].head, PROPOSAL_KEY_BINARY, cases[i].requested_base64,
                                      &response, &error));
      g_assert_error (error, TWP_WS_HANDSHAKE_ERROR, cases[i].code);
      g_assert_false (response.base64);
      twp_ws_client_response_clear (&response);
    }
}

/* The Go websocket-server of the proposal's reference implementation
 * answers with HTTP/1.0, Go's canonical header case and Go's sorted header
 * order, and names the subprotocol only when asked. */
#define GO_RESPONSE_BINARY \
  "HTTP/1.0 101 Switching Protocols\r\n" \
  "Connection: Upgrade\r\n" \
  "Sec-Websocket-Accept: " PROPOSAL_ACCEPT_BINARY "\r\n" \
  "Upgrade: websocket\r\n" \
  "\r\n"
#define GO_RESPONSE_BASE64 \
  "HTTP/1.0 101 Switching Protocols\r\n" \
  "Connection: Upgrade\r\n" \
  "Sec-Websocket-Accept: " PROPOSAL_ACCEPT_BASE64 "\r\n" \
  "Sec-Websocket-Protocol: base64\r\n" \
  "Upgrade: websocket\r\n" \
  "\r\n"

static void
test_response_http10 (void)
{
  g_autoptr(GError) error = NULL;
  TwpWsClientResponse response = { 0 };

  g_assert_true (parse_response (GO_RESPONSE_BINARY, PROPOSAL_KEY_BINARY, FALSE, &response, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (response.status, ==, 101);
  g_assert_false (response.base64);
  twp_ws_client_response_clear (&response);

  g_assert_true (parse_response (GO_RESPONSE_BASE64, PROPOSAL_KEY_BASE64, TRUE, &response, &error));
  g_assert_no_error (error);
  g_assert_true (response.base64);
  twp_ws_client_response_clear (&response);

  /* Asked for base64, not granted: binary, the caller decides. */
  g_assert_true (parse_response (GO_RESPONSE_BINARY, PROPOSAL_KEY_BINARY, TRUE, &response, &error));
  g_assert_no_error (error);
  g_assert_false (response.base64);
  twp_ws_client_response_clear (&response);

  /* The proposal's own answer, only the version changed. */
  g_assert_true (parse_response ("HTTP/1.0 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                 "Connection: Upgrade\r\nSec-WebSocket-Accept: " PROPOSAL_ACCEPT_BINARY
                                 "\r\n\r\n", PROPOSAL_KEY_BINARY, FALSE, &response, &error));
  g_assert_no_error (error);
  twp_ws_client_response_clear (&response);
}

/* Only the version is lenient: an HTTP/1.0 answer gets every other check,
 * and versions other than 1.0 and 1.1 stay refused. */
static void
test_response_http10_strict (void)
{
  const struct {
    const char *head;
    gboolean requested_base64;
    int code;
  } cases[] = {
    /* Each header of the Go answer missing or wrong in turn */
    { "HTTP/1.0 101 Switching Protocols\r\nSec-Websocket-Accept: " PROPOSAL_ACCEPT_BINARY "\r\n"
      "Upgrade: websocket\r\n\r\n", FALSE, TWP_WS_HANDSHAKE_ERROR_BAD_UPGRADE },
    { "HTTP/1.0 101 Switching Protocols\r\nConnection: close\r\nSec-Websocket-Accept: "
      PROPOSAL_ACCEPT_BINARY "\r\nUpgrade: websocket\r\n\r\n", FALSE, TWP_WS_HANDSHAKE_ERROR_BAD_UPGRADE },
    { "HTTP/1.0 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-Websocket-Accept: "
      PROPOSAL_ACCEPT_BINARY "\r\n\r\n", FALSE, TWP_WS_HANDSHAKE_ERROR_BAD_UPGRADE },
    { "HTTP/1.0 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-Websocket-Accept: "
      PROPOSAL_ACCEPT_BINARY "\r\nUpgrade: h2c\r\n\r\n", FALSE, TWP_WS_HANDSHAKE_ERROR_BAD_UPGRADE },
    { "HTTP/1.0 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
      FALSE, TWP_WS_HANDSHAKE_ERROR_BAD_ACCEPT },
    { "HTTP/1.0 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-Websocket-Accept: "
      PROPOSAL_ACCEPT_BASE64 "\r\nUpgrade: websocket\r\n\r\n", FALSE, TWP_WS_HANDSHAKE_ERROR_BAD_ACCEPT },
    { "HTTP/1.0 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-Websocket-Accept: "
      PROPOSAL_ACCEPT_BINARY "\r\nSec-Websocket-Protocol: base64\r\nUpgrade: websocket\r\n\r\n",
      FALSE, TWP_WS_HANDSHAKE_ERROR_PROTOCOL },
    { "HTTP/1.0 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-Websocket-Accept: "
      PROPOSAL_ACCEPT_BINARY "\r\nSec-Websocket-Extensions: permessage-deflate\r\nUpgrade: websocket\r\n\r\n",
      FALSE, TWP_WS_HANDSHAKE_ERROR_EXTENSION },
    /* Other statuses over HTTP/1.0 */
    { "HTTP/1.0 200 OK\r\nConnection: Upgrade\r\nSec-Websocket-Accept: " PROPOSAL_ACCEPT_BINARY "\r\n"
      "Upgrade: websocket\r\n\r\n", FALSE, TWP_WS_HANDSHAKE_ERROR_STATUS },
    { "HTTP/1.0 302 Found\r\nLocation: ws://elsewhere.example/\r\n\r\n", FALSE, TWP_WS_HANDSHAKE_ERROR_STATUS },
    { "HTTP/1.0 400 Bad Request\r\nConnection: close\r\n\r\n", FALSE, TWP_WS_HANDSHAKE_ERROR_STATUS },
    /* Other versions and look-alikes libsoup itself would take */
    { "HTTP/1.2 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-Websocket-Accept: "
      PROPOSAL_ACCEPT_BINARY "\r\nUpgrade: websocket\r\n\r\n", FALSE, TWP_WS_HANDSHAKE_ERROR_MALFORMED },
    { "HTTP/1.01 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-Websocket-Accept: "
      PROPOSAL_ACCEPT_BINARY "\r\nUpgrade: websocket\r\n\r\n", FALSE, TWP_WS_HANDSHAKE_ERROR_MALFORMED },
    { "HTTP/01.0 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-Websocket-Accept: "
      PROPOSAL_ACCEPT_BINARY "\r\nUpgrade: websocket\r\n\r\n", FALSE, TWP_WS_HANDSHAKE_ERROR_MALFORMED },
    { "HTTP/2 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-Websocket-Accept: "
      PROPOSAL_ACCEPT_BINARY "\r\nUpgrade: websocket\r\n\r\n", FALSE, TWP_WS_HANDSHAKE_ERROR_MALFORMED },
    { "HTTP/2.0 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-Websocket-Accept: "
      PROPOSAL_ACCEPT_BINARY "\r\nUpgrade: websocket\r\n\r\n", FALSE, TWP_WS_HANDSHAKE_ERROR_MALFORMED },
    { "HTTP/0.9 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-Websocket-Accept: "
      PROPOSAL_ACCEPT_BINARY "\r\nUpgrade: websocket\r\n\r\n", FALSE, TWP_WS_HANDSHAKE_ERROR_MALFORMED },
    { "ICY 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-Websocket-Accept: "
      PROPOSAL_ACCEPT_BINARY "\r\nUpgrade: websocket\r\n\r\n", FALSE, TWP_WS_HANDSHAKE_ERROR_MALFORMED },
    { "http/1.0 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-Websocket-Accept: "
      PROPOSAL_ACCEPT_BINARY "\r\nUpgrade: websocket\r\n\r\n", FALSE, TWP_WS_HANDSHAKE_ERROR_MALFORMED },
    { "HTTP/1.0\r\n\r\n", FALSE, TWP_WS_HANDSHAKE_ERROR_MALFORMED },
    /* libsoup skips a line without a colon; the answer still lacks Upgrade */
    { "HTTP/1.0 101\r\nConnection: Upgrade\r\nUpgrade websocket\r\n\r\n", FALSE,
      TWP_WS_HANDSHAKE_ERROR_BAD_UPGRADE },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GError) error = NULL;
      TwpWsClientResponse response = { 0 };

      g_test_message ("case %" G_GSIZE_FORMAT, i);
      g_assert_false (parse_response (cases[i].head, PROPOSAL_KEY_BINARY, cases[i].requested_base64,
                                      &response, &error));
      g_assert_error (error, TWP_WS_HANDSHAKE_ERROR, cases[i].code);
      g_assert_false (response.base64);
      twp_ws_client_response_clear (&response);
    }
}

static void
test_response_nul (void)
{
  g_autoptr(GError) error = NULL;
  TwpWsClientResponse response = { 0 };
  const char head[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\0x\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Accept: " PROPOSAL_ACCEPT_BINARY "\r\n\r\n";

  g_assert_false (twp_ws_client_response_parse (head, sizeof head - 1, PROPOSAL_KEY_BINARY, FALSE,
                                                &response, &error));
  g_assert_error (error, TWP_WS_HANDSHAKE_ERROR, TWP_WS_HANDSHAKE_ERROR_MALFORMED);
  twp_ws_client_response_clear (&response);
}

/* Server request */

static TwpWsServerRequest *
parse_request (const char  *head,
               GError     **error)
{
  return twp_ws_server_request_parse (head, strlen (head), error);
}

static void
test_request_parse_upgrade (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TwpWsServerRequest) binary = NULL;
  g_autoptr(TwpWsServerRequest) base64 = NULL;
  g_autoptr(TwpWsServerRequest) several = NULL;
  g_autoptr(TwpWsServerRequest) browser = NULL;
  g_autofree char *accept_binary = NULL;
  g_autofree char *accept_base64 = NULL;

  binary = parse_request (proposal_request_binary, &error);
  g_assert_no_error (error);
  g_assert_nonnull (binary);
  g_assert_cmpint (binary->kind, ==, TWP_WS_REQUEST_UPGRADE);
  g_assert_null (binary->reason);
  g_assert_cmpstr (binary->method, ==, "GET");
  g_assert_cmpstr (binary->path, ==, "/");
  g_assert_cmpstr (binary->host, ==, "");
  g_assert_cmpstr (binary->origin, ==, "https://example.com");
  g_assert_cmpstr (binary->key, ==, PROPOSAL_KEY_BINARY);
  g_assert_false (binary->wants_base64);
  g_assert_false (binary->offered_extensions);
  g_assert_nonnull (binary->headers);

  /* Our answer is byte for byte the proposal's. */
  accept_binary = twp_ws_server_response_accept (binary->key, binary->wants_base64);
  g_assert_cmpstr (accept_binary, ==, proposal_response_binary);

  base64 = parse_request (proposal_request_base64, &error);
  g_assert_no_error (error);
  g_assert_cmpint (base64->kind, ==, TWP_WS_REQUEST_UPGRADE);
  g_assert_true (base64->wants_base64);
  accept_base64 = twp_ws_server_response_accept (base64->key, base64->wants_base64);
  g_assert_cmpstr (accept_base64, ==, proposal_response_base64);
  g_assert_null (strstr (accept_base64, "Extensions"));

  several = parse_request ("GET /tunnel?a=b HTTP/1.1\r\n"
                           "Host: bridge.example:8080\r\n"
                           "Sec-WebSocket-Version: 13\r\n"
                           "Sec-WebSocket-Protocol: chat, base64\r\n"
                           "Sec-WebSocket-Protocol: superchat\r\n"
                           "Sec-WebSocket-Key: " PROPOSAL_KEY_BINARY "\r\n"
                           "Connection: keep-alive, Upgrade\r\n"
                           "Upgrade: WebSocket\r\n"
                           "\r\n", &error);
  g_assert_no_error (error);
  g_assert_cmpint (several->kind, ==, TWP_WS_REQUEST_UPGRADE);
  g_assert_cmpstr (several->path, ==, "/tunnel?a=b");
  g_assert_cmpstr (several->host, ==, "bridge.example:8080");
  g_assert_null (several->origin);
  g_assert_true (several->wants_base64);

  /* What Firefox sends, permessage-deflate included. */
  browser = parse_request ("GET /ws HTTP/1.1\r\n"
                           "Host: bridge.example\r\n"
                           "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
                           "Accept: */*\r\n"
                           "Accept-Language: en-US,en;q=0.5\r\n"
                           "Accept-Encoding: gzip, deflate, br\r\n"
                           "Sec-WebSocket-Version: 13\r\n"
                           "Origin: https://www.example.org\r\n"
                           "Sec-WebSocket-Protocol: Base64, binary\r\n"
                           "Sec-WebSocket-Extensions: permessage-deflate\r\n"
                           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                           "Connection: keep-alive, Upgrade\r\n"
                           "Sec-Fetch-Dest: empty\r\n"
                           "Pragma: no-cache\r\n"
                           "Upgrade: websocket\r\n"
                           "\r\n", &error);
  g_assert_no_error (error);
  g_assert_cmpint (browser->kind, ==, TWP_WS_REQUEST_UPGRADE);
  g_assert_true (browser->offered_extensions);
  /* Subprotocol names are case-sensitive. */
  g_assert_false (browser->wants_base64);
  g_assert_cmpstr (twp_http_headers_get_one (browser->headers, "Accept-Language"), ==, "en-US,en;q=0.5");
}

static void
test_request_parse_kinds (void)
{
  const struct {
    const char *head;
    TwpWsRequestKind kind;
  } cases[] = {
    /* Plain HTTP */
    { "GET / HTTP/1.1\r\nHost: example.com\r\nAccept: text/html\r\n\r\n", TWP_WS_REQUEST_PLAIN_HTTP },
    { "GET /favicon.ico HTTP/1.0\r\n\r\n", TWP_WS_REQUEST_PLAIN_HTTP },
    { "POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n", TWP_WS_REQUEST_PLAIN_HTTP },
    { "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", TWP_WS_REQUEST_PLAIN_HTTP },
    { "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\r\n",
      TWP_WS_REQUEST_PLAIN_HTTP },
    /* hixie-76 (draft-ietf-hybi-thewebsocketprotocol-00) */
    { "GET /demo HTTP/1.1\r\n"
      "Host: example.com\r\n"
      "Connection: Upgrade\r\n"
      "Sec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\n"
      "Sec-WebSocket-Protocol: sample\r\n"
      "Upgrade: WebSocket\r\n"
      "Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\n"
      "Origin: http://example.com\r\n"
      "\r\n", TWP_WS_REQUEST_OLD_VERSION },
    /* hixie-75 */
    { "GET /demo HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\nHost: example.com\r\n"
      "Origin: http://example.com\r\nWebSocket-Protocol: sample\r\n\r\n", TWP_WS_REQUEST_OLD_VERSION },
    /* hybi-10 */
    { "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: " PROPOSAL_KEY_BINARY "\r\nSec-WebSocket-Version: 8\r\n\r\n", TWP_WS_REQUEST_OLD_VERSION },
    { "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: " PROPOSAL_KEY_BINARY "\r\nSec-WebSocket-Version: 14\r\n\r\n", TWP_WS_REQUEST_OLD_VERSION },
    { "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: " PROPOSAL_KEY_BINARY "\r\n\r\n", TWP_WS_REQUEST_OLD_VERSION },
    { "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: " PROPOSAL_KEY_BINARY "\r\nSec-WebSocket-Version: 13\r\n"
      "Sec-WebSocket-Version: 8\r\n\r\n", TWP_WS_REQUEST_OLD_VERSION },
    /* Bad upgrades */
    { "POST / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: " PROPOSAL_KEY_BINARY "\r\nSec-WebSocket-Version: 13\r\n\r\n", TWP_WS_REQUEST_BAD },
    { "get / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: " PROPOSAL_KEY_BINARY "\r\nSec-WebSocket-Version: 13\r\n\r\n", TWP_WS_REQUEST_BAD },
    { "GET / HTTP/1.0\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: " PROPOSAL_KEY_BINARY "\r\nSec-WebSocket-Version: 13\r\n\r\n", TWP_WS_REQUEST_BAD },
    { "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n", TWP_WS_REQUEST_BAD },
    { "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: mzo2xSF9N8VUxuefqO0RS!==\r\nSec-WebSocket-Version: 13\r\n\r\n", TWP_WS_REQUEST_BAD },
    { "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: mzo2xSF9N8VUxuefqO0RSwAA\r\nSec-WebSocket-Version: 13\r\n\r\n", TWP_WS_REQUEST_BAD },
    { "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Version: 13\r\n\r\n", TWP_WS_REQUEST_BAD },
    { "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: " PROPOSAL_KEY_BINARY "\r\nSec-WebSocket-Key: " PROPOSAL_KEY_BASE64 "\r\n"
      "Sec-WebSocket-Version: 13\r\n\r\n", TWP_WS_REQUEST_BAD },
    { "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
      "Sec-WebSocket-Key: " PROPOSAL_KEY_BINARY "\r\nSec-WebSocket-Version: 13\r\n\r\n", TWP_WS_REQUEST_BAD },
    { "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: " PROPOSAL_KEY_BINARY "\r\nSec-WebSocket-Version: 13\r\n\r\n", TWP_WS_REQUEST_BAD },
    { "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: " PROPOSAL_KEY_BINARY "\r\nSec-WebSocket-Version: 13\r\n\r\n", TWP_WS_REQUEST_BAD },
    { "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: " PROPOSAL_KEY_BINARY "\r\nSec-WebSocket-Version: 13\r\n\r\n", TWP_WS_REQUEST_BAD },
  };
  gsize i;

  for (i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(TwpWsServerRequest) request = NULL;

      g_test_message ("case %" G_GSIZE_FORMAT, i);
      request = parse_request (cases[i].head, &error);
      g_assert_no_error (error);
      g_assert_nonnull (request);
      g_assert_cmpint (request->kind, ==, cases[i].kind);
      g_assert_nonnull (request->method);
      g_assert_nonnull (request->path);
      g_assert_nonnull (request->reason);
      g_assert_null (request->key);
    }
}

static void
test_request_parse_malformed (void)
{
  const char *cases[] = {
    "",
    "\r\n\r\n",
    "GET\r\n\r\n",
    "GET /\r\n\r\n",
    "GET / HTTP/1.1",
    "GET / HTTP/1.1\r\nHost: a\r\n",
    "GET / HTTP/2.0\r\n\r\n",
    "GET / HTTP/1.1 extra\r\n\r\n",
    "GET / FOO/1.1\r\n\r\n",
    "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\n\n",
    "SSH-2.0-OpenSSH_9.2\r\n\r\n",
  };
  gsize i;

  for (i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GError) error = NULL;

      g_test_message ("case %" G_GSIZE_FORMAT, i);
      g_assert_null (parse_request (cases[i], &error));
      g_assert_error (error, TWP_WS_HANDSHAKE_ERROR, TWP_WS_HANDSHAKE_ERROR_MALFORMED);
    }
}

/* Issue 11: what nginx refuses with 400 is refused here too (libsoup's
 * parser alone accepted all of it and the upgrade got 101). */
#define UPGRADE_HEADERS "Upgrade: websocket\r\nConnection: Upgrade\r\n" \
  "Sec-WebSocket-Key: " PROPOSAL_KEY_BINARY "\r\nSec-WebSocket-Version: 13\r\n"

static void
test_request_parse_strict (void)
{
  const struct {
    const char *head;
    const char *rule;
  } bad[] = {
    { "GET / HTTP/1.1\r\nHost: a\r\nX-Evil\r\n" UPGRADE_HEADERS "\r\n", "header line without a colon" },
    { "GET / HTTP/1.1\r\nHost: a\r\nX Evil: 1\r\n" UPGRADE_HEADERS "\r\n", "header name is not a token" },
    { "GET / HTTP/1.1\r\nHost : a\r\n" UPGRADE_HEADERS "\r\n", "header name is not a token" },
    { "GET / HTTP/1.1\r\nHost\t: a\r\n" UPGRADE_HEADERS "\r\n", "header name is not a token" },
    { "GET / HTTP/1.1\r\nX(y): 1\r\nHost: a\r\n" UPGRADE_HEADERS "\r\n", "header name is not a token" },
    { "GET / HTTP/1.1\r\n: a\r\nHost: a\r\n" UPGRADE_HEADERS "\r\n", "empty header name" },
    { "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  continued\r\n" UPGRADE_HEADERS "\r\n", "obs-fold continuation line" },
    { "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\tcontinued\r\n" UPGRADE_HEADERS "\r\n", "obs-fold continuation line" },
    { "GET / HTTP/1.1\r\n Host: a\r\n" UPGRADE_HEADERS "\r\n", "obs-fold continuation line" },
    { "GET / HTTP/1.1\nHost: a\r\n" UPGRADE_HEADERS "\r\n", "bare LF line end" },
    { "GET / HTTP/1.1\r\nHost: a\n" UPGRADE_HEADERS "\r\n", "bare LF line end" },
    { "GET / HTTP/1.1\r\nHost: a\r\n" UPGRADE_HEADERS "\n", "bare LF line end" },
    { "GET / HTTP/1.1\nHost: a\nUpgrade: websocket\nConnection: Upgrade\n"
      "Sec-WebSocket-Key: " PROPOSAL_KEY_BINARY "\nSec-WebSocket-Version: 13\n\n", "bare LF line end" },
    { "GET / HTTP/1.1\r\nHost: a\rX-Smuggled: 1\r\n" UPGRADE_HEADERS "\r\n", "CR inside a line" },
    { "GET / HTTP/1.1\r\nHost: a\x01\r\n" UPGRADE_HEADERS "\r\n", "control character in a header value" },
    { "GET / HTTP/1.1\r\nHost: a\r\nX-A: \x1b[31mred\r\n" UPGRADE_HEADERS "\r\n", "control character in a header value" },
    { "GET / HTTP/1.1\r\nHost: a\x7f\r\n" UPGRADE_HEADERS "\r\n", "control character in a header value" },
    { "GET  / HTTP/1.1\r\nHost: a\r\n" UPGRADE_HEADERS "\r\n", "invalid request line" },
    { "GET / HTTP/1.1 \r\nHost: a\r\n" UPGRADE_HEADERS "\r\n", "invalid request line" },
    { "GET\t/ HTTP/1.1\r\nHost: a\r\n" UPGRADE_HEADERS "\r\n", "invalid request line" },
    { " GET / HTTP/1.1\r\nHost: a\r\n" UPGRADE_HEADERS "\r\n", "invalid request line" },
    { "GET / http/1.1\r\nHost: a\r\n" UPGRADE_HEADERS "\r\n", "invalid request line" },
    { "GET / HTTP/1.2\r\nHost: a\r\n" UPGRADE_HEADERS "\r\n", "invalid request line" },
    { "GET / HTTP/1.10\r\nHost: a\r\n" UPGRADE_HEADERS "\r\n", "invalid request line" },
    { "G(T / HTTP/1.1\r\nHost: a\r\n" UPGRADE_HEADERS "\r\n", "invalid request line" },
    { "GET /a\x7f HTTP/1.1\r\nHost: a\r\n" UPGRADE_HEADERS "\r\n", "invalid request line" },
    { "GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n" UPGRADE_HEADERS "\r\n", "invalid request line" },
    { "GET /\x01 HTTP/1.1\r\nHost: a\r\n" UPGRADE_HEADERS "\r\n", "invalid request line" },
  };
  const char *good[] = {
    /* obs-text, tabs and empty values are allowed in a value. */
    "GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: caf\xc3\xa9\t1.0 \r\nX-Empty:\r\nX-Tab:\t\r\n" UPGRADE_HEADERS "\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\nX_Under.score~!#$%&'*+^`|: 1\r\n" UPGRADE_HEADERS "\r\n",
    "GET http://a/ HTTP/1.1\r\nHost: a\r\n" UPGRADE_HEADERS "\r\n",
  };
  gsize i;

  for (i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GError) error = NULL;

      g_test_message ("bad case %" G_GSIZE_FORMAT ": %s", i, bad[i].rule);
      g_assert_null (parse_request (bad[i].head, &error));
      g_assert_error (error, TWP_WS_HANDSHAKE_ERROR, TWP_WS_HANDSHAKE_ERROR_MALFORMED);
      g_assert_true (g_str_has_suffix (error->message, bad[i].rule));
    }
  for (i = 0; i < G_N_ELEMENTS (good); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(TwpWsServerRequest) request = NULL;

      g_test_message ("good case %" G_GSIZE_FORMAT, i);
      request = parse_request (good[i], &error);
      g_assert_no_error (error);
      g_assert_cmpint (request->kind, ==, TWP_WS_REQUEST_UPGRADE);
    }
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(TwpWsServerRequest) request = parse_request ("OPTIONS * HTTP/1.0\r\n\r\n", &error);

    g_assert_no_error (error);
    g_assert_cmpint (request->kind, ==, TWP_WS_REQUEST_PLAIN_HTTP);
    g_assert_cmpstr (request->path, ==, "*");
  }
}

static void
test_request_parse_nul (void)
{
  g_autoptr(GError) error = NULL;
  /* A NUL hides "Host: b" from a C string parser but not from a proxy. */
  const char head[] = "GET / HTTP/1.1\r\nX: a\0\r\nHost: b\r\n\r\n";

  g_assert_null (twp_ws_server_request_parse (head, sizeof head - 1, &error));
  g_assert_error (error, TWP_WS_HANDSHAKE_ERROR, TWP_WS_HANDSHAKE_ERROR_MALFORMED);
}

/* Forwarded-for on a parsed request (the rest: test-http.c) */

static void
test_forwarded_for_parsed_request (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TwpWsServerRequest) request = NULL;
  g_autofree char *address = NULL;

  request = parse_request ("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Key: " PROPOSAL_KEY_BINARY "\r\nSec-WebSocket-Version: 13\r\n"
                           "X-Forwarded-For: 6.6.6.6\r\n"
                           "X-Forwarded-For: 203.0.113.7, 10.0.0.1\r\n\r\n", &error);
  g_assert_no_error (error);
  g_assert_cmpint (request->kind, ==, TWP_WS_REQUEST_UPGRADE);
  address = twp_http_forwarded_for (request->headers);
  g_assert_cmpstr (address, ==, "10.0.0.1");
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/ws-handshake/accept", test_accept);
  g_test_add_func ("/ws-handshake/head-end/incremental", test_head_end_incremental);
  g_test_add_func ("/ws-handshake/head-end/forms", test_head_end_forms);
  g_test_add_func ("/ws-handshake/head-end/too-large", test_head_end_too_large);
  g_test_add_func ("/ws-handshake/client-request/exact", test_request_exact);
  g_test_add_func ("/ws-handshake/client-request/base64-and-keys", test_request_base64_and_keys);
  g_test_add_func ("/ws-handshake/client-request/hosts-and-paths", test_request_hosts_and_paths);
  g_test_add_func ("/ws-handshake/client-request/injection", test_request_injection);
  g_test_add_func ("/ws-handshake/client-response/ok", test_response_ok);
  g_test_add_func ("/ws-handshake/client-response/status", test_response_status);
  g_test_add_func ("/ws-handshake/client-response/location-private", test_response_location_private);
  g_test_add_func ("/ws-handshake/client-response/bad", test_response_bad);
  g_test_add_func ("/ws-handshake/client-response/nul", test_response_nul);
  g_test_add_func ("/ws-handshake/client-response/http10", test_response_http10);
  g_test_add_func ("/ws-handshake/client-response/http10-strict", test_response_http10_strict);
  g_test_add_func ("/ws-handshake/server-request/upgrade", test_request_parse_upgrade);
  g_test_add_func ("/ws-handshake/server-request/kinds", test_request_parse_kinds);
  g_test_add_func ("/ws-handshake/server-request/malformed", test_request_parse_malformed);
  g_test_add_func ("/ws-handshake/server-request/nul", test_request_parse_nul);
  g_test_add_func ("/ws-handshake/server-request/strict", test_request_parse_strict);
  g_test_add_func ("/ws-handshake/forwarded-for/parsed-request", test_forwarded_for_parsed_request);

  return g_test_run ();
}
