/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-bridge-config"

#include "config.h"

#include "twp-bridge-config.h"

#include <string.h>

#include "twp-log.h"

G_DEFINE_QUARK (twp-bridge-config-error-quark, twp_bridge_config_error)

void
twp_bridge_config_free (TwpBridgeConfig *config)
{
  if (config == NULL)
    return;
  g_clear_pointer (&config->uri, g_uri_unref);
  g_clear_pointer (&config->certificate_pin, g_bytes_unref);
  g_free (config->tls_server_name);
  g_free (config->origin);
  g_free (config->host_header);
  g_free (config);
}

gboolean
twp_frame_mode_from_string (const char   *string,
                            TwpFrameMode *mode)
{
  if (g_strcmp0 (string, "binary") == 0)
    *mode = TWP_FRAME_MODE_BINARY;
  else if (g_strcmp0 (string, "base64") == 0)
    *mode = TWP_FRAME_MODE_BASE64;
  else
    return FALSE;
  return TRUE;
}

const char *
twp_frame_mode_to_string (TwpFrameMode mode)
{
  return mode == TWP_FRAME_MODE_BASE64 ? "base64" : "binary";
}

GUri *
twp_bridge_config_parse_url (const char  *url,
                             GError     **error)
{
  g_autoptr(GUri) uri = NULL;
  g_autoptr(GError) local_error = NULL;
  const char *scheme;

  uri = g_uri_parse (url, G_URI_FLAGS_ENCODED | G_URI_FLAGS_SCHEME_NORMALIZE, &local_error);
  if (uri == NULL)
    {
      /* GLib's message quotes parts of the URL: only with unsafe logging. */
      g_set_error (error, TWP_BRIDGE_CONFIG_ERROR, TWP_BRIDGE_CONFIG_ERROR_INVALID,
                   "url= is not a valid URL%s%s", twp_log_get_unsafe () ? ": " : "",
                   twp_log_get_unsafe () ? local_error->message : "");
      return NULL;
    }
  scheme = g_uri_get_scheme (uri);
  if (g_ascii_strcasecmp (scheme, "ws") != 0 && g_ascii_strcasecmp (scheme, "wss") != 0)
    {
      g_set_error (error, TWP_BRIDGE_CONFIG_ERROR, TWP_BRIDGE_CONFIG_ERROR_INVALID,
                   "url= must start with ws:// or wss://");
      return NULL;
    }
  if (g_uri_get_host (uri) == NULL || *g_uri_get_host (uri) == '\0')
    {
      g_set_error (error, TWP_BRIDGE_CONFIG_ERROR, TWP_BRIDGE_CONFIG_ERROR_INVALID,
                   "url= has no host");
      return NULL;
    }
  if (g_uri_get_userinfo (uri) != NULL)
    {
      g_set_error (error, TWP_BRIDGE_CONFIG_ERROR, TWP_BRIDGE_CONFIG_ERROR_INVALID,
                   "url= must not contain user information");
      return NULL;
    }
  /* RFC 6455 3: fragments are meaningless in WebSocket URIs. */
  if (g_uri_get_fragment (uri) != NULL)
    {
      g_set_error (error, TWP_BRIDGE_CONFIG_ERROR, TWP_BRIDGE_CONFIG_ERROR_INVALID,
                   "url= must not contain a fragment");
      return NULL;
    }
  return g_steal_pointer (&uri);
}

static gboolean
is_wss (GUri *uri)
{
  return g_ascii_strcasecmp (g_uri_get_scheme (uri), "wss") == 0;
}

static GBytes *
parse_pin (const char  *value,
           GError     **error)
{
  guint8 digest[32];
  gsize len = strlen (value);

  /* 64 hex digits, optionally with ':' between bytes as openssl prints. */
  if (len == 64 || len == 95)
    {
      gsize j = 0;

      for (gsize i = 0; i < len && j < 32; j++)
        {
          int hi = g_ascii_xdigit_value (value[i]);
          int lo = i + 1 < len ? g_ascii_xdigit_value (value[i + 1]) : -1;

          if (hi < 0 || lo < 0)
            break;
          digest[j] = (guint8) (hi << 4 | lo);
          i += 2;
          if (len == 95 && j < 31)
            {
              if (value[i] != ':')
                break;
              i++;
            }
        }
      if (j == 32)
        return g_bytes_new (digest, sizeof digest);
    }

  g_set_error (error, TWP_BRIDGE_CONFIG_ERROR, TWP_BRIDGE_CONFIG_ERROR_INVALID,
               "cert-sha256= must be 64 hexadecimal digits");
  return NULL;
}

static gboolean
is_token_value (const char *value)
{
  /* Header values end up in the HTTP request: no control characters. */
  for (const char *p = value; *p != '\0'; p++)
    if ((guchar) *p < 0x20 || *p == 0x7f)
      return FALSE;
  return *value != '\0';
}

TwpBridgeConfig *
twp_bridge_config_new (TwpArgs     *args,
                       const char  *bridge_host,
                       guint16      bridge_port,
                       GError     **error)
{
  g_autoptr(TwpBridgeConfig) config = g_new0 (TwpBridgeConfig, 1);
  static const char *const known[] = { "url", "mode", "sni", "cert-sha256", "origin", "host", NULL };
  const char *url;
  const char *value;
  int port;

  for (guint i = 0; i < twp_args_get_length (args); i++)
    {
      const char *key = twp_args_get_key (args, i);

      if (!g_strv_contains (known, key))
        {
          g_set_error (error, TWP_BRIDGE_CONFIG_ERROR, TWP_BRIDGE_CONFIG_ERROR_INVALID,
                       "unknown bridge argument \"%s\" (known: url, mode, sni, cert-sha256, origin, host)",
                       key);
          return NULL;
        }
      if (twp_args_count (args, key) > 1)
        {
          g_set_error (error, TWP_BRIDGE_CONFIG_ERROR, TWP_BRIDGE_CONFIG_ERROR_INVALID,
                       "bridge argument \"%s\" given more than once", key);
          return NULL;
        }
    }

  url = twp_args_lookup (args, "url");
  if (url != NULL)
    {
      config->uri = twp_bridge_config_parse_url (url, error);
    }
  else if (bridge_host != NULL)
    {
      g_autofree char *default_url = NULL;

      default_url = strchr (bridge_host, ':') != NULL
                    ? g_strdup_printf ("ws://[%s]:%u/", bridge_host, bridge_port)
                    : g_strdup_printf ("ws://%s:%u/", bridge_host, bridge_port);
      config->uri = twp_bridge_config_parse_url (default_url, error);
    }
  else
    {
      g_set_error (error, TWP_BRIDGE_CONFIG_ERROR, TWP_BRIDGE_CONFIG_ERROR_INVALID,
                   "no url= given");
    }
  if (config->uri == NULL)
    return NULL;

  port = g_uri_get_port (config->uri);
  config->port = port > 0 ? port : (is_wss (config->uri) ? 443 : 80);

  value = twp_args_lookup (args, "mode");
  if (value != NULL)
    {
      if (!twp_frame_mode_from_string (value, &config->mode))
        {
          g_set_error (error, TWP_BRIDGE_CONFIG_ERROR, TWP_BRIDGE_CONFIG_ERROR_INVALID,
                       "mode= must be binary or base64");
          return NULL;
        }
      config->mode_pinned = TRUE;
    }

  value = twp_args_lookup (args, "sni");
  if (value != NULL)
    {
      if (!is_wss (config->uri))
        {
          g_set_error (error, TWP_BRIDGE_CONFIG_ERROR, TWP_BRIDGE_CONFIG_ERROR_INVALID,
                       "sni= needs a wss:// url");
          return NULL;
        }
      if (!is_token_value (value) || strpbrk (value, " /:@") != NULL)
        {
          g_set_error (error, TWP_BRIDGE_CONFIG_ERROR, TWP_BRIDGE_CONFIG_ERROR_INVALID,
                       "sni= is not a host name");
          return NULL;
        }
      config->tls_server_name = g_strdup (value);
    }

  value = twp_args_lookup (args, "cert-sha256");
  if (value != NULL)
    {
      if (!is_wss (config->uri))
        {
          g_set_error (error, TWP_BRIDGE_CONFIG_ERROR, TWP_BRIDGE_CONFIG_ERROR_INVALID,
                       "cert-sha256= needs a wss:// url");
          return NULL;
        }
      config->certificate_pin = parse_pin (value, error);
      if (config->certificate_pin == NULL)
        return NULL;
    }

  value = twp_args_lookup (args, "origin");
  if (value != NULL)
    {
      if (!is_token_value (value))
        {
          g_set_error (error, TWP_BRIDGE_CONFIG_ERROR, TWP_BRIDGE_CONFIG_ERROR_INVALID,
                       "origin= contains control characters");
          return NULL;
        }
      config->origin = g_strdup (value);
    }

  value = twp_args_lookup (args, "host");
  if (value != NULL)
    {
      if (!is_token_value (value))
        {
          g_set_error (error, TWP_BRIDGE_CONFIG_ERROR, TWP_BRIDGE_CONFIG_ERROR_INVALID,
                       "host= contains control characters");
          return NULL;
        }
      config->host_header = g_strdup (value);
    }

  return g_steal_pointer (&config);
}
