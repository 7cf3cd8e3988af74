/* SPDX-License-Identifier: BSD-3-Clause */
/* The server's decisions from bytes alone (twp-server-request): the status
 * each head gets, read as the server reads it, and the client address a
 * request reports to tor, with and without trusted proxies. */
#define G_LOG_DOMAIN "twp-test-server-request"

#include "config.h"

#include <string.h>

#include "twp-server-request.h"

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define UPGRADE(path, extra) \
  "GET " path " HTTP/1.1\r\nHost: bridge.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" \
  "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 13\r\n" extra "\r\n"

/* Options as tor would give them ("key=value" pairs), on the defaults. */
static void
options_from (TwpServerOptions *options,
              const char       *pairs[])
{
  g_autoptr(TwpArgs) args = twp_args_new ();
  g_autoptr(GError) error = NULL;

  twp_server_options_init (options);
  for (guint i = 0; pairs != NULL && pairs[i] != NULL; i += 2)
    twp_args_add (args, pairs[i], pairs[i + 1]);
  g_assert_true (twp_server_options_apply (options, args, &error));
  g_assert_no_error (error);
}

static guint
check (const TwpServerOptions *options,
       const char             *head,
       gsize                  *head_len,
       char                  **why)
{
  g_autoptr(TwpWsServerRequest) request = NULL;
  guint status = twp_server_request_check (options, (const guint8 *) head, strlen (head), head_len, &request, why);

  /* The request is there whenever the head parsed. */
  if (status == 0 || (status == 400 && *why != NULL && g_str_has_prefix (*why, "Malformed")))
    g_assert_null (request);
  else if (status != 400)
    g_assert_nonnull (request);
  if (status == 101)
    g_assert_cmpint (request->kind, ==, TWP_WS_REQUEST_UPGRADE);
  return status;
}

/* The head arrives a byte at a time: nothing is decided before its end,
 * and what the client sends behind it stays out of it. */
static void
test_check_incremental (void)
{
  TwpServerOptions options;
  const char head[] = UPGRADE ("/", "");
  g_autofree char *with_frame = g_strconcat (head, "\x82\x80" "abcd", NULL);

  options_from (&options, NULL);
  for (gsize n = 0; n < strlen (with_frame); n++)
    {
      g_autoptr(TwpWsServerRequest) request = NULL;
      g_autofree char *why = NULL;
      gsize head_len = 99;
      guint status = twp_server_request_check (&options, (const guint8 *) with_frame, n, &head_len, &request, &why);

      if (n < strlen (head))
        {
          g_assert_cmpuint (status, ==, 0);
          g_assert_cmpuint (head_len, ==, 0);
          g_assert_null (request);
        }
      else
        {
          g_assert_cmpuint (status, ==, 101);
          g_assert_cmpuint (head_len, ==, strlen (head));
          g_assert_cmpstr (request->key, ==, KEY);
        }
      g_assert_null (why);
    }
  twp_server_options_clear (&options);
}

static void
test_check_statuses (void)
{
  const char *plain[] = { "path", "/ws", "origin", "https://allowed.example", NULL };
  const char *with_site[] = { "static-dir", ".", NULL };
  const struct {
    const char **options;
    const char *head;
    guint status;
  } cases[] = {
    { plain, UPGRADE ("/ws", "Origin: https://allowed.example\r\n"), 101 },
    { plain, UPGRADE ("/ws?x=1", "Origin: https://allowed.example\r\n"), 101 },
    { plain, UPGRADE ("/", "Origin: https://allowed.example\r\n"), 404 },
    { plain, UPGRADE ("/ws/", "Origin: https://allowed.example\r\n"), 404 },
    { plain, UPGRADE ("/ws", "Origin: https://evil.example\r\n"), 403 },
    { plain, UPGRADE ("/ws", ""), 403 },
    { NULL, UPGRADE ("/", ""), 101 },
    { NULL, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 404 },
    { NULL, "HEAD /index.html HTTP/1.1\r\nHost: a\r\n\r\n", 404 },
    { NULL, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", 405 },
    { with_site, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 200 },
    { with_site, "HEAD / HTTP/1.0\r\n\r\n", 200 },
    { with_site, "DELETE / HTTP/1.1\r\nHost: a\r\n\r\n", 405 },
    { NULL, "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 8\r\n\r\n", 426 },
    { NULL, "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n", 400 },
    /* Malformed heads (issue 11): 400 whatever follows. */
    { NULL, UPGRADE ("/", "X-Evil\r\n"), 400 },
    { NULL, UPGRADE ("/", "Bad Name: 1\r\n"), 400 },
    { NULL, UPGRADE ("/", "X-A: 1\r\n folded\r\n"), 400 },
    { NULL, "GET / HTTP/1.1\nHost: a\nUpgrade: websocket\nConnection: Upgrade\n"
            "Sec-WebSocket-Key: " KEY "\nSec-WebSocket-Version: 13\n\n", 400 },
    { NULL, UPGRADE ("/", "X-A: \x01\r\n"), 400 },
    { NULL, "SSH-2.0-OpenSSH_9.2\r\n\r\n", 400 },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      TwpServerOptions options;
      g_autofree char *why = NULL;
      gsize head_len = 0;
      guint status;

      g_test_message ("case %" G_GSIZE_FORMAT ": expect %u", i, cases[i].status);
      options_from (&options, cases[i].options);
      status = check (&options, cases[i].head, &head_len, &why);
      g_assert_cmpuint (status, ==, cases[i].status);
      g_assert_cmpuint (head_len, ==, strlen (cases[i].head));
      /* Every refusal says why, in words of ours. */
      g_assert_true ((why != NULL) == (status != 101 && status != 200));
      if (why != NULL)
        {
          g_test_message ("  why: %s", why);
          g_assert_null (strstr (why, "evil"));
          g_assert_null (strstr (why, "X-"));
        }
      twp_server_options_clear (&options);
    }
}

/* A head that never ends is refused once it passes the bound. */
static void
test_check_too_large (void)
{
  TwpServerOptions options;
  g_autoptr(GString) head = g_string_new ("GET / HTTP/1.1\r\n");
  g_autofree char *why = NULL;
  gsize head_len = 0;

  options_from (&options, NULL);
  while (head->len < TWP_HTTP_MAX_HEAD_SIZE - 100)
    g_string_append (head, "X-Padding: 0123456789\r\n");
  g_assert_cmpuint (check (&options, head->str, &head_len, &why), ==, 0);
  while (head->len < TWP_HTTP_MAX_HEAD_SIZE)
    g_string_append (head, "X-Padding: 0123456789\r\n");
  g_assert_cmpuint (check (&options, head->str, &head_len, &why), ==, 400);
  g_assert_cmpuint (head_len, ==, 0);
  g_assert_nonnull (why);
  twp_server_options_clear (&options);
}

/* ---- client address ----------------------------------------------------- */

static GInetSocketAddress *
socket_address (const char *ip,
                guint16     port)
{
  return G_INET_SOCKET_ADDRESS (g_inet_socket_address_new_from_string (ip, port));
}

/* The address (without port) for a request with header @name: @value from
 * @peer, or NULL when refused (then the error is FORWARDED). */
static char *
client_address (const TwpServerOptions *options,
                const char             *peer_ip,
                const char             *name,
                const char             *value)
{
  g_autoptr(GInetSocketAddress) peer = socket_address (peer_ip, 40000);
  g_autoptr(TwpHttpHeaders) headers = twp_http_headers_new ();
  g_autoptr(GInetSocketAddress) address = NULL;
  g_autoptr(GError) error = NULL;

  if (name != NULL)
    twp_http_headers_append (headers, name, value);
  address = twp_server_request_client_address (options, peer, headers, &error);
  if (address == NULL)
    {
      g_assert_error (error, TWP_SERVER_REQUEST_ERROR, TWP_SERVER_REQUEST_ERROR_FORWARDED);
      /* The message names the header, never what the client put in it. */
      g_assert_null (strstr (error->message, "203.0.113"));
      return NULL;
    }
  g_assert_no_error (error);
  /* The proxy connection's port stands in for the client's. */
  g_assert_cmpuint (g_inet_socket_address_get_port (address), ==, 40000);
  return g_inet_address_to_string (g_inet_socket_address_get_address (address));
}

static void
test_client_address_x_forwarded_for (void)
{
  const char *trusting[] = { "trusted-proxy", "127.0.0.1", "trusted-proxy", "10.0.0.0/8", NULL };
  const struct {
    const char *peer;
    const char *header;         /* X-Forwarded-For, or NULL for none */
    const char *expected;       /* NULL: refused (400) */
  } cases[] = {
    /* From a trusted proxy: the element it appended. */
    { "127.0.0.1", "203.0.113.9", "203.0.113.9" },
    { "10.1.2.3", "6.6.6.6, 203.0.113.9", "203.0.113.9" },
    { "127.0.0.1", "2001:db8::7", "2001:db8::7" },
    { "127.0.0.1", "::ffff:203.0.113.9", "203.0.113.9" },
    /* No header: the proxy's own request (a health check). */
    { "127.0.0.1", NULL, "127.0.0.1" },
    /* The issue-11 attack: the client's open quote swallows the proxy's
     * element. Never the proxy's own address instead. */
    { "127.0.0.1", "\"x, 203.0.113.9", NULL },
    { "127.0.0.1", "\"x\", \"y, 203.0.113.9", NULL },
    { "127.0.0.1", "not-an-address", NULL },
    { "127.0.0.1", "203.0.113.9, unknown", NULL },
    { "127.0.0.1", "", NULL },
    { "127.0.0.1", "0.0.0.0", NULL },
    { "127.0.0.1", "::", NULL },
    { "127.0.0.1", "255.255.255.255", NULL },
    { "127.0.0.1", "224.0.0.1", NULL },
    { "127.0.0.1", "ff02::1", NULL },
    { "127.0.0.1", "::ffff:0.0.0.0", NULL },
    { "127.0.0.1", "::ffff:255.255.255.255", NULL },
    /* Anyone else's header is not read at all. */
    { "127.0.0.2", "203.0.113.9", "127.0.0.2" },
    { "127.0.0.2", "\"x, 203.0.113.9", "127.0.0.2" },
    { "192.0.2.1", "0.0.0.0", "192.0.2.1" },
  };
  TwpServerOptions options;
  g_autoptr(GInetSocketAddress) in_range = socket_address ("10.255.0.1", 1);

  options_from (&options, trusting);
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *address = NULL;

      g_test_message ("from %s: X-Forwarded-For: %s", cases[i].peer, cases[i].header ? cases[i].header : "(none)");
      address = client_address (&options, cases[i].peer, cases[i].header != NULL ? "X-Forwarded-For" : NULL,
                                cases[i].header);
      g_assert_cmpstr (address, ==, cases[i].expected);
    }
  g_assert_true (twp_server_request_is_trusted_proxy (&options, g_inet_socket_address_get_address (in_range)));
  twp_server_options_clear (&options);
}

static void
test_client_address_forwarded (void)
{
  const char *trusting[] = { "trusted-proxy", "127.0.0.1", "trusted-proxy-header", "forwarded", NULL };
  TwpServerOptions options;
  g_autofree char *good = NULL;
  g_autofree char *v6 = NULL;
  g_autofree char *xff = NULL;
  g_autofree char *open_quote = NULL;
  g_autofree char *unspecified = NULL;
  g_autofree char *unknown = NULL;

  options_from (&options, trusting);
  good = client_address (&options, "127.0.0.1", "Forwarded", "for=6.6.6.6, for=203.0.113.9;proto=https");
  g_assert_cmpstr (good, ==, "203.0.113.9");
  v6 = client_address (&options, "127.0.0.1", "Forwarded", "for=\"[2001:db8::7]:4711\"");
  g_assert_cmpstr (v6, ==, "2001:db8::7");
  /* Only the header this proxy writes counts. */
  xff = client_address (&options, "127.0.0.1", "X-Forwarded-For", "203.0.113.9");
  g_assert_cmpstr (xff, ==, "127.0.0.1");
  open_quote = client_address (&options, "127.0.0.1", "Forwarded", "for=\"x, for=203.0.113.9");
  g_assert_null (open_quote);
  unspecified = client_address (&options, "127.0.0.1", "Forwarded", "for=\"[::]\"");
  g_assert_null (unspecified);
  unknown = client_address (&options, "127.0.0.1", "Forwarded", "for=unknown");
  g_assert_null (unknown);
  twp_server_options_clear (&options);
}

/* Without trusted-proxy=, every peer is its own client. */
static void
test_client_address_untrusted (void)
{
  TwpServerOptions options;
  g_autofree char *address = NULL;
  g_autoptr(GInetSocketAddress) loopback = socket_address ("127.0.0.1", 1);

  options_from (&options, NULL);
  address = client_address (&options, "127.0.0.1", "X-Forwarded-For", "\"x, 203.0.113.9");
  g_assert_cmpstr (address, ==, "127.0.0.1");
  g_assert_false (twp_server_request_is_trusted_proxy (&options, g_inet_socket_address_get_address (loopback)));
  twp_server_options_clear (&options);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/server-request/check/incremental", test_check_incremental);
  g_test_add_func ("/server-request/check/statuses", test_check_statuses);
  g_test_add_func ("/server-request/check/too-large", test_check_too_large);
  g_test_add_func ("/server-request/client-address/x-forwarded-for", test_client_address_x_forwarded_for);
  g_test_add_func ("/server-request/client-address/forwarded", test_client_address_forwarded);
  g_test_add_func ("/server-request/client-address/untrusted", test_client_address_untrusted);

  return g_test_run ();
}
