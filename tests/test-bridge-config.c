/* SPDX-License-Identifier: BSD-3-Clause */
/* The bridge line's arguments as the client turns them into a connection
 * plan: url=, mode=, sni=, cert-sha256=, origin=, host=. */
#include "config.h"

#include <glib.h>
#include <string.h>

#include "twp-args.h"
#include "twp-bridge-config.h"
#include "twp-log.h"

static TwpBridgeConfig *
config_from (const char  *socks_args,
             GError     **error)
{
  g_autoptr(TwpArgs) args = twp_args_parse_socks (socks_args, strlen (socks_args), error);

  if (args == NULL)
    return NULL;
  return twp_bridge_config_new (args, "192.0.2.3", 443, error);
}

static void
test_url_and_defaults (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TwpBridgeConfig) config = NULL;
  g_autofree char *text = NULL;

  config = config_from ("url=wss://bridge.example.net/path?x=1", &error);
  g_assert_no_error (error);
  text = g_uri_to_string (config->uri);
  g_assert_cmpstr (text, ==, "wss://bridge.example.net/path?x=1");
  g_assert_cmpuint (config->port, ==, 443);
  g_assert_false (config->mode_pinned);
  g_clear_pointer (&config, twp_bridge_config_free);

  config = config_from ("url=ws://bridge.example.net/", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (config->port, ==, 80);
  g_clear_pointer (&config, twp_bridge_config_free);

  config = config_from ("url=ws://[2001:db8::1]:8080/ws", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (config->port, ==, 8080);
  g_assert_cmpstr (g_uri_get_host (config->uri), ==, "2001:db8::1");
  g_clear_pointer (&config, twp_bridge_config_free);

  /* No url=: the bridge line's own address. */
  config = config_from ("", &error);
  g_assert_no_error (error);
  g_clear_pointer (&text, g_free);
  text = g_uri_to_string (config->uri);
  g_assert_cmpstr (text, ==, "ws://192.0.2.3:443/");
}

static void
test_default_ipv6 (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TwpArgs) args = twp_args_new ();
  g_autoptr(TwpBridgeConfig) config = twp_bridge_config_new (args, "2001:db8::7", 9, &error);
  g_autofree char *text = NULL;

  g_assert_no_error (error);
  text = g_uri_to_string (config->uri);
  g_assert_cmpstr (text, ==, "ws://[2001:db8::7]:9/");
}

static void
test_mode (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TwpBridgeConfig) config = config_from ("url=ws://h/;mode=base64", &error);

  g_assert_no_error (error);
  g_assert_true (config->mode_pinned);
  g_assert_cmpint (config->mode, ==, TWP_FRAME_MODE_BASE64);
  g_clear_pointer (&config, twp_bridge_config_free);

  config = config_from ("url=ws://h/;mode=binary", &error);
  g_assert_no_error (error);
  g_assert_true (config->mode_pinned);
  g_assert_cmpint (config->mode, ==, TWP_FRAME_MODE_BINARY);
}

static void
test_tls_options (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TwpBridgeConfig) config = NULL;
  const guint8 *pin;
  gsize pin_len;

  config = config_from ("url=wss://203.0.113.5/;sni=front.example.com;"
                        "cert-sha256=00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff;"
                        "origin=https://example.com;host=real.example.net", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (config->tls_server_name, ==, "front.example.com");
  g_assert_cmpstr (config->origin, ==, "https://example.com");
  g_assert_cmpstr (config->host_header, ==, "real.example.net");
  pin = g_bytes_get_data (config->certificate_pin, &pin_len);
  g_assert_cmpuint (pin_len, ==, 32);
  g_assert_cmpuint (pin[0], ==, 0x00);
  g_assert_cmpuint (pin[1], ==, 0x11);
  g_assert_cmpuint (pin[31], ==, 0xff);
  g_clear_pointer (&config, twp_bridge_config_free);

  /* openssl's colon-separated form. */
  config = config_from ("url=wss://h/;cert-sha256=00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:"
                        "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF", &error);
  g_assert_no_error (error);
  g_assert_nonnull (config->certificate_pin);
}

static void
test_bad_arguments (void)
{
  static const char *const bad[] = {
    "url=http://example.com/",          /* not a WebSocket URL */
    "url=ftp://example.com/",
    "url=example.com",                  /* no scheme */
    "url=ws:///path",                   /* no host */
    "url=ws://user:pass@example.com/",  /* credentials in the URL */
    "url=ws://example.com/#frag",       /* RFC 6455 3: no fragment */
    "url=ws://[::1/",                   /* broken IPv6 literal */
    "url=wss://h:99999/",               /* port out of range */
    "url=ws://h/;url=ws://i/",          /* repeated */
    "url=ws://h/;mode=text",            /* unknown mode */
    "url=ws://h/;mode=",
    "url=ws://h/;sni=x",                /* sni without TLS */
    "url=wss://h/;sni=a/b",             /* not a host name */
    "url=wss://h/;sni=",
    "url=ws://h/;cert-sha256=00",       /* pin without TLS */
    "url=wss://h/;cert-sha256=0011",    /* too short */
    "url=wss://h/;cert-sha256=zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
    "url=wss://h/;cert-sha256=00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee-ff",
    "url=ws://h/;origin=",
    "url=ws://h/;host=a\x01b",          /* control character */
    "url=ws://h/;usl=ws://typo/",       /* unknown key: never ignored */
    NULL
  };

  for (guint i = 0; bad[i] != NULL; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(TwpBridgeConfig) config = config_from (bad[i], &error);

      if (config != NULL)
        g_error ("accepted bad arguments: %s", bad[i]);
      g_assert_error (error, TWP_BRIDGE_CONFIG_ERROR, TWP_BRIDGE_CONFIG_ERROR_INVALID);
    }
}

static void
test_errors_hide_the_url (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TwpBridgeConfig) config = NULL;

  /* Bridge addresses stay out of logs unless unsafe logging is on. */
  config = config_from ("url=ws://[2001:db8::42/", &error);
  g_assert_null (config);
  g_assert_null (strstr (error->message, "2001:db8::42"));
  g_clear_error (&error);

  twp_log_set_unsafe (TRUE);
  config = config_from ("url=ws://[2001:db8::42/", &error);
  twp_log_set_unsafe (FALSE);
  g_assert_null (config);
  g_assert_nonnull (strstr (error->message, "2001:db8::42"));
}

static void
test_frame_mode_strings (void)
{
  TwpFrameMode mode;

  g_assert_true (twp_frame_mode_from_string ("base64", &mode));
  g_assert_cmpint (mode, ==, TWP_FRAME_MODE_BASE64);
  g_assert_true (twp_frame_mode_from_string ("binary", &mode));
  g_assert_cmpint (mode, ==, TWP_FRAME_MODE_BINARY);
  g_assert_false (twp_frame_mode_from_string ("Base64", &mode));
  g_assert_false (twp_frame_mode_from_string (NULL, &mode));
  g_assert_cmpstr (twp_frame_mode_to_string (TWP_FRAME_MODE_BASE64), ==, "base64");
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/bridge-config/url-and-defaults", test_url_and_defaults);
  g_test_add_func ("/bridge-config/default-ipv6", test_default_ipv6);
  g_test_add_func ("/bridge-config/mode", test_mode);
  g_test_add_func ("/bridge-config/tls-options", test_tls_options);
  g_test_add_func ("/bridge-config/bad-arguments", test_bad_arguments);
  g_test_add_func ("/bridge-config/errors-hide-the-url", test_errors_hide_the_url);
  g_test_add_func ("/bridge-config/frame-mode-strings", test_frame_mode_strings);

  return g_test_run ();
}
