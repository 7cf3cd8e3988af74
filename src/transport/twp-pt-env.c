/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-pt-env"

#include "config.h"

#include "twp-pt-env.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <glib/gstdio.h>

G_DEFINE_QUARK (twp-pt-env-error-quark, twp_pt_env_error)

/* RFC 1929 length fields are one byte. */
#define SOCKS5_MAX_CREDENTIAL 255

TwpProxyConfig *
twp_proxy_config_copy (const TwpProxyConfig *config)
{
  TwpProxyConfig *copy;

  if (config == NULL)
    return NULL;
  copy = g_new0 (TwpProxyConfig, 1);
  copy->type = config->type;
  copy->host = g_strdup (config->host);
  copy->port = config->port;
  copy->username = g_strdup (config->username);
  copy->password = g_strdup (config->password);
  return copy;
}

void
twp_proxy_config_free (TwpProxyConfig *config)
{
  if (config == NULL)
    return;
  g_free (config->host);
  g_free (config->username);
  if (config->password != NULL)
    explicit_bzero (config->password, strlen (config->password));
  g_free (config->password);
  g_free (config);
}

static void
bind_addr_free (TwpBindAddr *bind)
{
  g_free (bind->transport);
  g_free (bind->address);
  g_free (bind);
}

void
twp_pt_env_free (TwpPtEnv *env)
{
  if (env == NULL)
    return;
  g_strfreev (env->transports);
  g_free (env->state_location);
  g_free (env->proxy_uri);
  g_clear_object (&env->outbound_bind_v4);
  g_clear_object (&env->outbound_bind_v6);
  g_clear_pointer (&env->bindaddrs, g_ptr_array_unref);
  g_clear_pointer (&env->server_options, g_hash_table_unref);
  g_free (env->orport);
  g_free (env->ext_orport);
  g_free (env->auth_cookie_file);
  g_free (env);
}

gboolean
twp_pt_is_transport_name (const char *name)
{
  if (name == NULL || !(g_ascii_isalpha (name[0]) || name[0] == '_'))
    return FALSE;
  for (const char *p = name + 1; *p != '\0'; p++)
    {
      if (!(g_ascii_isalnum (*p) || *p == '_'))
        return FALSE;
    }
  return TRUE;
}

static gboolean
is_ip_literal (const char *str,
               int         family)
{
  guint8 buf[16];

  return inet_pton (family, str, buf) == 1;
}

/* 1-5 decimal digits, no sign, at most 65535. */
static gboolean
parse_port (const char *str,
            gboolean    allow_zero,
            guint16    *port)
{
  guint value = 0;
  gsize len = strlen (str);

  if (len == 0 || len > 5)
    return FALSE;
  for (gsize i = 0; i < len; i++)
    {
      if (!g_ascii_isdigit (str[i]))
        return FALSE;
      value = value * 10 + (guint) (str[i] - '0');
    }
  if (value > G_MAXUINT16 || (value == 0 && !allow_zero))
    return FALSE;
  *port = (guint16) value;
  return TRUE;
}

/* Messages never quote @str: TOR_PT_PROXY may carry credentials, and the
 * callers name the variable instead. */
static gboolean
parse_host_port (const char  *str,
                 gboolean     allow_zero_port,
                 gboolean     allow_bare_v6,
                 char       **address,
                 guint16     *port,
                 GError     **error)
{
  g_autofree char *host = NULL;
  const char *port_str;
  guint16 value;

  if (str[0] == '[')
    {
      const char *close = strchr (str, ']');

      if (close == NULL || close[1] != ':')
        {
          g_set_error_literal (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_INVALID,
                               "expected [IPv6]:port");
          return FALSE;
        }
      host = g_strndup (str + 1, close - str - 1);
      port_str = close + 2;
      if (!is_ip_literal (host, AF_INET6))
        {
          g_set_error_literal (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_INVALID,
                               "not an IPv6 address");
          return FALSE;
        }
    }
  else
    {
      const char *colon = strrchr (str, ':');

      if (colon == NULL)
        {
          g_set_error_literal (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_INVALID,
                               "missing port");
          return FALSE;
        }
      host = g_strndup (str, colon - str);
      port_str = colon + 1;
      /* A ':' left in the host means bare IPv6, which old tors wrote (#7011). */
      if (strchr (host, ':') != NULL)
        {
          if (!allow_bare_v6 || !is_ip_literal (host, AF_INET6))
            {
              g_set_error_literal (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_INVALID,
                                   "not an IP address");
              return FALSE;
            }
        }
      else if (!is_ip_literal (host, AF_INET))
        {
          g_set_error_literal (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_INVALID,
                               "not an IP address");
          return FALSE;
        }
    }

  if (!parse_port (port_str, allow_zero_port, &value))
    {
      g_set_error_literal (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_INVALID,
                           "invalid port");
      return FALSE;
    }

  if (address != NULL)
    *address = g_steal_pointer (&host);
  if (port != NULL)
    *port = value;
  return TRUE;
}

gboolean
twp_parse_ip_port (const char  *str,
                   gboolean     allow_zero_port,
                   char       **address,
                   guint16     *port,
                   GError     **error)
{
  g_return_val_if_fail (str != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return parse_host_port (str, allow_zero_port, TRUE, address, port, error);
}

TwpProxyConfig *
twp_proxy_config_parse (const char  *uri,
                        GError     **error)
{
  g_autoptr(TwpProxyConfig) config = NULL;
  const char *sep;
  const char *rest;
  const char *at;
  const char *hostport;

  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (uri == NULL || *uri == '\0')
    {
      g_set_error_literal (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_INVALID,
                           "empty proxy URI");
      return NULL;
    }

  config = g_new0 (TwpProxyConfig, 1);
  sep = strstr (uri, "://");
  if (sep == NULL)
    {
      g_set_error_literal (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_INVALID,
                           "proxy URI without scheme");
      return NULL;
    }
  /* Exactly the lower-case schemes tor writes (get_pt_proxy_uri). */
  if (sep - uri == 6 && strncmp (uri, "socks5", 6) == 0)
    config->type = TWP_PROXY_SOCKS5;
  else if (sep - uri == 7 && strncmp (uri, "socks4a", 7) == 0)
    config->type = TWP_PROXY_SOCKS4A;
  else if (sep - uri == 4 && strncmp (uri, "http", 4) == 0)
    config->type = TWP_PROXY_HTTP;
  else
    {
      g_set_error_literal (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_INVALID,
                           "unsupported proxy scheme");
      return NULL;
    }

  rest = sep + 3;
  /* Credentials are raw (B4) and may contain '@': the host is after the last. */
  at = strrchr (rest, '@');
  if (at != NULL)
    {
      const char *colon = memchr (rest, ':', at - rest);

      if (config->type == TWP_PROXY_SOCKS4A)
        {
          g_set_error_literal (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_INVALID,
                               "socks4a proxy cannot take credentials");
          return NULL;
        }
      if (colon != NULL)
        {
          config->username = g_strndup (rest, colon - rest);
          config->password = g_strndup (colon + 1, at - colon - 1);
        }
      else
        config->username = g_strndup (rest, at - rest);

      if (config->username[0] == '\0')
        {
          g_set_error_literal (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_INVALID,
                               "empty proxy username");
          return NULL;
        }
      if (config->type == TWP_PROXY_SOCKS5 &&
          (strlen (config->username) > SOCKS5_MAX_CREDENTIAL ||
           (config->password != NULL && strlen (config->password) > SOCKS5_MAX_CREDENTIAL)))
        {
          g_set_error_literal (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_INVALID,
                               "socks5 proxy credentials longer than 255 bytes");
          return NULL;
        }
      hostport = at + 1;
    }
  else
    hostport = rest;

  if (!parse_host_port (hostport, FALSE, FALSE, &config->host, &config->port, error))
    {
      g_prefix_error (error, "proxy address: ");
      return NULL;
    }

  return g_steal_pointer (&config);
}

/* First "name=value" of @envp; NULL when absent. */
static const char *
env_get (const char * const *envp,
         const char         *name)
{
  gsize len = strlen (name);

  if (envp == NULL)
    return NULL;
  for (gsize i = 0; envp[i] != NULL; i++)
    {
      if (strncmp (envp[i], name, len) == 0 && envp[i][len] == '=')
        return envp[i] + len + 1;
    }
  return NULL;
}

/* Like env_get(), but "" counts as unset (S5: tor sets some variables empty). */
static const char *
env_get_nonempty (const char * const *envp,
                  const char         *name)
{
  const char *value = env_get (envp, name);

  return value != NULL && *value != '\0' ? value : NULL;
}

static gboolean
check_version (const char * const  *envp,
               GError             **error)
{
  const char *value = env_get (envp, "TOR_PT_MANAGED_TRANSPORT_VER");
  g_auto(GStrv) versions = NULL;

  if (value == NULL)
    {
      g_set_error_literal (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_INVALID,
                           "TOR_PT_MANAGED_TRANSPORT_VER is not set");
      return FALSE;
    }
  versions = g_strsplit (value, ",", -1);
  for (guint i = 0; versions[i] != NULL; i++)
    {
      if (strcmp (versions[i], "1") == 0)
        return TRUE;
    }
  g_set_error_literal (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_NO_VERSION,
                       "no supported version in TOR_PT_MANAGED_TRANSPORT_VER");
  return FALSE;
}

static gboolean
parse_transports (TwpPtEnv            *env,
                  const char * const  *envp,
                  GError             **error)
{
  const char *client = env_get_nonempty (envp, "TOR_PT_CLIENT_TRANSPORTS");
  const char *server = env_get_nonempty (envp, "TOR_PT_SERVER_TRANSPORTS");
  const char *var;
  const char *list;
  g_auto(GStrv) names = NULL;
  g_autoptr(GPtrArray) unique = NULL;

  if (client != NULL && server != NULL)
    {
      g_set_error_literal (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_INVALID,
                           "both TOR_PT_CLIENT_TRANSPORTS and TOR_PT_SERVER_TRANSPORTS are set");
      return FALSE;
    }
  if (client == NULL && server == NULL)
    {
      g_set_error_literal (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_INVALID,
                           "neither TOR_PT_CLIENT_TRANSPORTS nor TOR_PT_SERVER_TRANSPORTS is set");
      return FALSE;
    }

  var = env->role == TWP_ROLE_CLIENT ? "TOR_PT_CLIENT_TRANSPORTS" : "TOR_PT_SERVER_TRANSPORTS";
  list = env->role == TWP_ROLE_CLIENT ? client : server;
  if (list == NULL)
    {
      g_set_error (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_INVALID,
                   "%s is not set", var);
      return FALSE;
    }

  names = g_strsplit (list, ",", -1);
  unique = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; names[i] != NULL; i++)
    {
      gboolean seen = FALSE;

      /* G9; this also rejects the retired "*" (#15612). */
      if (!twp_pt_is_transport_name (names[i]))
        {
          g_set_error (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_INVALID,
                       "%s: invalid transport name", var);
          return FALSE;
        }
      for (guint j = 0; j < unique->len; j++)
        seen = seen || strcmp (g_ptr_array_index (unique, j), names[i]) == 0;
      /* a repeated name would give a second CMETHOD/SMETHOD: keep the first */
      if (!seen)
        g_ptr_array_add (unique, g_strdup (names[i]));
    }
  g_ptr_array_add (unique, NULL);
  env->transports = (char **) g_ptr_array_free (g_steal_pointer (&unique), FALSE);
  return TRUE;
}

static gboolean
parse_outbound (const char * const  *envp,
                const char          *var,
                int                  family,
                GInetAddress       **out,
                GError             **error)
{
  const char *value = env_get_nonempty (envp, var);
  g_autofree char *literal = NULL;
  gsize len;

  if (value == NULL)
    return TRUE;

  len = strlen (value);
  /* C4: tor brackets the IPv6 address */
  if (family == AF_INET6 && len >= 2 && value[0] == '[' && value[len - 1] == ']')
    literal = g_strndup (value + 1, len - 2);
  else
    literal = g_strdup (value);

  if (!is_ip_literal (literal, family))
    {
      g_set_error (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_INVALID,
                   "%s: not an %s address", var, family == AF_INET ? "IPv4" : "IPv6");
      return FALSE;
    }
  *out = g_inet_address_new_from_string (literal);
  if (*out == NULL)
    {
      g_set_error (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_INVALID,
                   "%s: not an address", var);
      return FALSE;
    }
  return TRUE;
}

static gboolean
is_requested (TwpPtEnv   *env,
              const char *name)
{
  return g_strv_contains ((const char * const *) env->transports, name);
}

static gboolean
parse_bindaddrs (TwpPtEnv            *env,
                 const char * const  *envp,
                 GError             **error)
{
  const char *value = env_get_nonempty (envp, "TOR_PT_SERVER_BINDADDR");
  g_auto(GStrv) entries = NULL;
  g_autoptr(GHashTable) seen = NULL;

  env->bindaddrs = g_ptr_array_new_with_free_func ((GDestroyNotify) bind_addr_free);
  /* tor always sets it (S2); without it we would not know which port to keep */
  if (value == NULL)
    {
      g_set_error_literal (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_INVALID,
                           "TOR_PT_SERVER_BINDADDR is not set");
      return FALSE;
    }

  entries = g_strsplit (value, ",", -1);
  seen = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; entries[i] != NULL; i++)
    {
      g_autoptr(GError) local_error = NULL;
      /* names cannot contain '-': split at the first one */
      char *dash = strchr (entries[i], '-');
      TwpBindAddr *bind;
      char *address;
      guint16 port;

      if (dash == NULL)
        {
          g_set_error (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_INVALID,
                       "TOR_PT_SERVER_BINDADDR entry %u has no '-'", i + 1);
          return FALSE;
        }
      *dash = '\0';
      if (!twp_pt_is_transport_name (entries[i]))
        {
          g_set_error (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_INVALID,
                       "TOR_PT_SERVER_BINDADDR entry %u: invalid transport name", i + 1);
          return FALSE;
        }
      /* #21261: every entry is checked, requested or not */
      if (!g_hash_table_add (seen, entries[i]))
        {
          g_set_error (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_INVALID,
                       "TOR_PT_SERVER_BINDADDR names transport %s twice", entries[i]);
          return FALSE;
        }
      if (!parse_host_port (dash + 1, TRUE, TRUE, &address, &port, &local_error))
        {
          g_set_error (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_INVALID,
                       "TOR_PT_SERVER_BINDADDR entry %u: %s", i + 1, local_error->message);
          return FALSE;
        }
      if (!is_requested (env, entries[i]))
        {
          g_free (address);
          continue;
        }
      bind = g_new0 (TwpBindAddr, 1);
      bind->transport = g_strdup (entries[i]);
      bind->address = address;
      bind->port = port;
      g_ptr_array_add (env->bindaddrs, bind);
    }
  return TRUE;
}

/* Validates an ORPort-like variable; "" is unset. Stores "a.b.c.d:p" or
 * "[v6]:p" so that a bare IPv6 value (#7011) is unambiguous afterwards. */
static gboolean
parse_orport_var (const char * const  *envp,
                  const char          *var,
                  char               **out,
                  GError             **error)
{
  const char *value = env_get_nonempty (envp, var);
  g_autoptr(GError) local_error = NULL;
  g_autofree char *address = NULL;
  guint16 port;

  if (value == NULL)
    return TRUE;
  if (!parse_host_port (value, FALSE, TRUE, &address, &port, &local_error))
    {
      g_set_error (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_INVALID,
                   "%s: %s", var, local_error->message);
      return FALSE;
    }
  if (strchr (address, ':') != NULL)
    *out = g_strdup_printf ("[%s]:%u", address, port);
  else
    *out = g_strdup_printf ("%s:%u", address, port);
  return TRUE;
}

static gboolean
parse_server (TwpPtEnv            *env,
              const char * const  *envp,
              GError             **error)
{
  g_autoptr(GError) local_error = NULL;
  const char *value;

  if (!parse_bindaddrs (env, envp, error))
    return FALSE;

  env->server_options =
    twp_args_parse_server_options (env_get (envp, "TOR_PT_SERVER_TRANSPORT_OPTIONS"),
                                   &local_error);
  if (env->server_options == NULL)
    {
      g_set_error (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_INVALID,
                   "TOR_PT_SERVER_TRANSPORT_OPTIONS: %s", local_error->message);
      return FALSE;
    }

  if (!parse_orport_var (envp, "TOR_PT_ORPORT", &env->orport, error) ||
      !parse_orport_var (envp, "TOR_PT_EXTENDED_SERVER_PORT", &env->ext_orport, error))
    return FALSE;

  value = env_get_nonempty (envp, "TOR_PT_AUTH_COOKIE_FILE");
  env->auth_cookie_file = g_strdup (value);
  if (env->ext_orport != NULL && env->auth_cookie_file == NULL)
    {
      g_set_error_literal (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_INVALID,
                           "need TOR_PT_AUTH_COOKIE_FILE with TOR_PT_EXTENDED_SERVER_PORT");
      return FALSE;
    }
  if (env->orport == NULL && env->ext_orport == NULL)
    {
      g_set_error_literal (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_INVALID,
                           "neither TOR_PT_ORPORT nor TOR_PT_EXTENDED_SERVER_PORT is set");
      return FALSE;
    }
  return TRUE;
}

TwpPtEnv *
twp_pt_env_parse (const char * const  *envp,
                  TwpRole              role,
                  GError             **error)
{
  g_autoptr(TwpPtEnv) env = NULL;
  const char *value;

  g_return_val_if_fail (role == TWP_ROLE_CLIENT || role == TWP_ROLE_SERVER, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  /* G1 comes first: without a common version nothing else can be said */
  if (!check_version (envp, error))
    return NULL;

  env = g_new0 (TwpPtEnv, 1);
  env->role = role;
  if (!parse_transports (env, envp, error))
    return NULL;

  value = env_get_nonempty (envp, "TOR_PT_STATE_LOCATION");
  /* G13: tor's cwd is "/" under systemd, so a relative path is a mistake */
  if (value != NULL && !g_path_is_absolute (value))
    {
      g_set_error_literal (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_INVALID,
                           "TOR_PT_STATE_LOCATION is not an absolute path");
      return NULL;
    }
  env->state_location = g_strdup (value);

  /* G10: only "1" asks for it */
  env->exit_on_stdin_close =
    g_strcmp0 (env_get (envp, "TOR_PT_EXIT_ON_STDIN_CLOSE"), "1") == 0;

  /* parsed later: PROXY-ERROR is only valid after VERSION 1 (C2) */
  env->proxy_uri = g_strdup (env_get_nonempty (envp, "TOR_PT_PROXY"));

  if (!parse_outbound (envp, "TOR_PT_OUTBOUND_BIND_ADDRESS_V4", AF_INET,
                       &env->outbound_bind_v4, error) ||
      !parse_outbound (envp, "TOR_PT_OUTBOUND_BIND_ADDRESS_V6", AF_INET6,
                       &env->outbound_bind_v6, error))
    return NULL;

  if (role == TWP_ROLE_SERVER && !parse_server (env, envp, error))
    return NULL;

  return g_steal_pointer (&env);
}

TwpBindAddr *
twp_pt_env_lookup_bindaddr (TwpPtEnv   *env,
                            const char *transport)
{
  g_return_val_if_fail (env != NULL, NULL);
  g_return_val_if_fail (transport != NULL, NULL);

  if (env->bindaddrs == NULL)
    return NULL;
  for (guint i = 0; i < env->bindaddrs->len; i++)
    {
      TwpBindAddr *bind = g_ptr_array_index (env->bindaddrs, i);

      if (strcmp (bind->transport, transport) == 0)
        return bind;
    }
  return NULL;
}

TwpArgs *
twp_pt_env_lookup_server_options (TwpPtEnv   *env,
                                  const char *transport)
{
  g_return_val_if_fail (env != NULL, NULL);
  g_return_val_if_fail (transport != NULL, NULL);

  if (env->server_options == NULL)
    return NULL;
  return g_hash_table_lookup (env->server_options, transport);
}

gboolean
twp_pt_env_ensure_state_location (TwpPtEnv  *env,
                                  GError   **error)
{
  int saved_errno;

  g_return_val_if_fail (env != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (env->state_location == NULL)
    return TRUE;
  /* G13: an existing directory is the operator's, keep its mode */
  if (g_file_test (env->state_location, G_FILE_TEST_IS_DIR))
    return TRUE;

  if (g_mkdir_with_parents (env->state_location, 0700) != 0)
    {
      saved_errno = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   "cannot create TOR_PT_STATE_LOCATION: %s", g_strerror (saved_errno));
      return FALSE;
    }
  /* mkdir applies the umask; the state may hold secrets, so force 0700 */
  if (g_chmod (env->state_location, 0700) != 0)
    {
      saved_errno = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   "cannot chmod TOR_PT_STATE_LOCATION: %s", g_strerror (saved_errno));
      return FALSE;
    }
  return TRUE;
}
