/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-server"

#include "config.h"

#include "twp-server-options.h"

#include <string.h>

#include "twp-metrics-endpoint.h"

/* tor's step (connect, ExtORPort exchange) gets at most this, and at most
 * half the handshake timeout (goptlib uses 5 s, X5). */
#define TOR_STEP_TIMEOUT_MAX_MS 5000

G_DEFINE_QUARK (twp-server-error-quark, twp_server_error)

void
twp_server_options_init (TwpServerOptions *options)
{
  memset (options, 0, sizeof *options);
  options->path = g_strdup ("/");
  /* Enough for a busy bridge; each connection buffers at most about
   * 100 KiB, so the cap also bounds memory (about 1.6 GiB at worst). */
  options->max_connections = 16384;
  /* Generous for NAT and carrier-grade NAT, small against one greedy host. */
  options->max_connections_per_ip = 256;
  options->handshake_timeout_ms = 10 * 1000;
  /* At most half the handshake timeout: twp_server_new () applies that. */
  options->orport_timeout_ms = TOR_STEP_TIMEOUT_MAX_MS;
}

void
twp_server_options_clear (TwpServerOptions *options)
{
  g_clear_pointer (&options->orport, g_free);
  g_clear_pointer (&options->ext_orport, g_free);
  g_clear_pointer (&options->auth_cookie_file, g_free);
  g_clear_pointer (&options->path, g_free);
  g_clear_pointer (&options->allowed_origins, g_strfreev);
  g_clear_object (&options->tls_certificate);
  g_clear_pointer (&options->trusted_proxies, g_ptr_array_unref);
  g_clear_pointer (&options->static_dir, g_free);
  g_clear_object (&options->metrics_address);
}

static gboolean
parse_count (const char  *key,
             const char  *value,
             guint64      max,
             guint64     *out,
             GError     **error)
{
  if (!g_ascii_string_to_unsigned (value, 10, 0, max, out, NULL))
    {
      g_set_error (error, TWP_SERVER_ERROR, TWP_SERVER_ERROR_INVALID_OPTION,
                   "%s= must be a number from 0 to %" G_GUINT64_FORMAT, key, max);
      return FALSE;
    }
  return TRUE;
}

gboolean
twp_server_options_apply (TwpServerOptions  *options,
                          TwpArgs           *args,
                          GError           **error)
{
  const char *tls_cert = NULL;
  const char *tls_key = NULL;
  g_autoptr(GPtrArray) origins = g_ptr_array_new ();

  for (guint i = 0; i < twp_args_get_length (args); i++)
    {
      const char *key = twp_args_get_key (args, i);
      const char *value = twp_args_get_value (args, i);
      guint64 number;

      if (g_str_equal (key, "path"))
        {
          if (value[0] != '/' || strpbrk (value, "?# \t") != NULL)
            {
              g_set_error (error, TWP_SERVER_ERROR, TWP_SERVER_ERROR_INVALID_OPTION,
                           "path= must start with / and hold no query");
              return FALSE;
            }
          g_free (options->path);
          options->path = g_strdup (value);
        }
      else if (g_str_equal (key, "origin"))
        g_ptr_array_add (origins, (gpointer) value);
      else if (g_str_equal (key, "tls-cert"))
        tls_cert = value;
      else if (g_str_equal (key, "tls-key"))
        tls_key = value;
      else if (g_str_equal (key, "trusted-proxy"))
        {
          g_autoptr(GInetAddressMask) mask = NULL;

          mask = g_inet_address_mask_new_from_string (value, NULL);
          if (mask == NULL)
            {
              g_autoptr(GInetAddress) address = g_inet_address_new_from_string (value);

              if (address != NULL)
                mask = g_inet_address_mask_new (address, g_inet_address_get_native_size (address) * 8, NULL);
            }
          if (mask == NULL)
            {
              g_set_error (error, TWP_SERVER_ERROR, TWP_SERVER_ERROR_INVALID_OPTION,
                           "trusted-proxy= must be an IP address or ADDRESS/BITS");
              return FALSE;
            }
          if (options->trusted_proxies == NULL)
            options->trusted_proxies = g_ptr_array_new_with_free_func (g_object_unref);
          g_ptr_array_add (options->trusted_proxies, g_steal_pointer (&mask));
        }
      else if (g_str_equal (key, "trusted-proxy-header"))
        {
          if (g_ascii_strcasecmp (value, "x-forwarded-for") == 0)
            options->trust_rfc7239 = FALSE;
          else if (g_ascii_strcasecmp (value, "forwarded") == 0)
            options->trust_rfc7239 = TRUE;
          else
            {
              g_set_error (error, TWP_SERVER_ERROR, TWP_SERVER_ERROR_INVALID_OPTION,
                           "trusted-proxy-header= must be x-forwarded-for or forwarded");
              return FALSE;
            }
        }
      else if (g_str_equal (key, "max-connections"))
        {
          if (!parse_count (key, value, G_MAXINT, &number, error))
            return FALSE;
          options->max_connections = number;
        }
      else if (g_str_equal (key, "max-connections-per-ip"))
        {
          if (!parse_count (key, value, G_MAXINT, &number, error))
            return FALSE;
          options->max_connections_per_ip = number;
        }
      else if (g_str_equal (key, "handshake-timeout"))
        {
          if (!parse_count (key, value, 3600, &number, error))
            return FALSE;
          if (number == 0)
            {
              g_set_error (error, TWP_SERVER_ERROR, TWP_SERVER_ERROR_INVALID_OPTION,
                           "handshake-timeout= must be at least 1");
              return FALSE;
            }
          options->handshake_timeout_ms = number * 1000;
        }
      else if (g_str_equal (key, "idle-timeout"))
        {
          if (!parse_count (key, value, 86400, &number, error))
            return FALSE;
          options->relay.idle_timeout_seconds = number;
        }
      else if (g_str_equal (key, "stall-timeout"))
        {
          if (!parse_count (key, value, 86400, &number, error))
            return FALSE;
          options->relay.stall_timeout_seconds = number;
        }
      else if (g_str_equal (key, "keepalive"))
        {
          if (!parse_count (key, value, 86400, &number, error))
            return FALSE;
          options->relay.keepalive_seconds = number;
        }
      else if (g_str_equal (key, "max-message-size"))
        {
          if (!parse_count (key, value, 64 * 1024 * 1024, &number, error))
            return FALSE;
          if (number < 21848)
            {
              /* The proposal's later revision: every endpoint takes 16,384
               * bytes of binary (21,848 characters of base64). */
              g_set_error (error, TWP_SERVER_ERROR, TWP_SERVER_ERROR_INVALID_OPTION,
                           "max-message-size= must be at least 21848");
              return FALSE;
            }
          options->relay.max_message_size = number;
        }
      else if (g_str_equal (key, "metrics"))
        {
          g_clear_object (&options->metrics_address);
          options->metrics_address = twp_metrics_address_parse (value, error);
          if (options->metrics_address == NULL)
            return FALSE;
        }
      else if (g_str_equal (key, "metrics-allow-remote"))
        {
          if (!parse_count (key, value, 1, &number, error))
            return FALSE;
          options->metrics_allow_remote = number == 1;
        }
      else if (g_str_equal (key, "static-dir"))
        {
          if (!g_file_test (value, G_FILE_TEST_IS_DIR))
            {
              g_set_error (error, TWP_SERVER_ERROR, TWP_SERVER_ERROR_INVALID_OPTION,
                           "static-dir= is not a directory");
              return FALSE;
            }
          g_free (options->static_dir);
          options->static_dir = g_strdup (value);
        }
      else
        {
          g_set_error (error, TWP_SERVER_ERROR, TWP_SERVER_ERROR_INVALID_OPTION,
                       "unknown option \"%s\"", key);
          return FALSE;
        }
    }

  if (origins->len > 0)
    {
      g_ptr_array_add (origins, NULL);
      g_strfreev (options->allowed_origins);
      options->allowed_origins = g_strdupv ((char **) origins->pdata);
    }
  if (options->metrics_address != NULL && !options->metrics_allow_remote &&
      !twp_metrics_address_is_local (options->metrics_address))
    {
      /* The address stays out of the message: it may be the bridge's own. */
      g_set_error (error, TWP_SERVER_ERROR, TWP_SERVER_ERROR_INVALID_OPTION,
                   "metrics= is not a loopback address or a Unix socket: the counters show anyone "
                   "who reaches them how busy this bridge is, and an open metrics port marks the "
                   "machine as a bridge to scanners; use 127.0.0.1, [::1] or a socket path, or "
                   "add metrics-allow-remote=1 if a firewall guards that address");
      return FALSE;
    }
  if ((tls_cert == NULL) != (tls_key == NULL))
    {
      g_set_error (error, TWP_SERVER_ERROR, TWP_SERVER_ERROR_INVALID_OPTION,
                   "tls-cert= and tls-key= go together");
      return FALSE;
    }
  if (tls_cert != NULL)
    {
      g_autoptr(GError) local_error = NULL;
      GTlsCertificate *certificate = g_tls_certificate_new_from_files (tls_cert, tls_key, &local_error);

      if (certificate == NULL)
        {
          g_set_error (error, TWP_SERVER_ERROR, TWP_SERVER_ERROR_INVALID_OPTION,
                       "cannot load tls-cert=/tls-key=: %s", local_error->message);
          return FALSE;
        }
      g_clear_object (&options->tls_certificate);
      options->tls_certificate = certificate;
    }
  return TRUE;
}
