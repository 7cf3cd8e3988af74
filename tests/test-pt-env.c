/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-test-pt-env"

#include "config.h"

#include <string.h>
#include <sys/stat.h>
#include <glib/gstdio.h>

#include "twp-pt-env.h"

/* The client environment observed from tor 0.4.9.11 (PT-CHECKLIST 9). */
static const char * const client_env[] = {
  "FOO_INHERITED=from-tor-env",
  "HOME=/srv/client1",
  "PATH=/usr/bin:/bin",
  "PWD=/srv/client1",
  "TOR_PT_CLIENT_TRANSPORTS=websocket,wsfour,wsbroken",
  "TOR_PT_EXIT_ON_STDIN_CLOSE=1",
  "TOR_PT_MANAGED_TRANSPORT_VER=1",
  "TOR_PT_OUTBOUND_BIND_ADDRESS_V4=127.0.0.1",
  "TOR_PT_OUTBOUND_BIND_ADDRESS_V6=[::1]",
  "TOR_PT_STATE_LOCATION=/srv/client1/data/pt_state/",
  NULL,
};

/* The server environment observed from tor 0.4.9.11, first run. */
static const char * const server_env[] = {
  "FOO_INHERITED=from-tor-env",
  "HOME=/srv/server1",
  "PATH=/usr/bin:/bin",
  "PWD=/srv/server1",
  "TOR_PT_AUTH_COOKIE_FILE=/srv/server1/data/extended_orport_auth_cookie",
  "TOR_PT_EXIT_ON_STDIN_CLOSE=1",
  "TOR_PT_EXTENDED_SERVER_PORT=127.0.0.1:43297",
  "TOR_PT_MANAGED_TRANSPORT_VER=1",
  "TOR_PT_ORPORT=127.0.0.1:19001",
  "TOR_PT_SERVER_BINDADDR=websocket-0.0.0.0:0,wsbroken-0.0.0.0:0",
  "TOR_PT_SERVER_TRANSPORTS=websocket,wsbroken",
  "TOR_PT_SERVER_TRANSPORT_OPTIONS=websocket:path=/ws\\;x;websocket:colon=a\\:b;websocket:back=c\\\\d;websocket:eq=x=y",
  "TOR_PT_STATE_LOCATION=/srv/server1/data/pt_state/",
  NULL,
};

/* @base with each "VAR=value" of @changes replacing or adding VAR; a bare
 * "VAR" in @changes removes it. */
static char **
env_with (const char * const *base,
          ...)
{
  char **env = g_strdupv ((char **) base);
  const char *change;
  va_list ap;

  va_start (ap, base);
  while ((change = va_arg (ap, const char *)) != NULL)
    {
      const char *eq = strchr (change, '=');
      g_autofree char *name = eq ? g_strndup (change, eq - change) : g_strdup (change);

      if (eq != NULL)
        env = g_environ_setenv (env, name, eq + 1, TRUE);
      else
        env = g_environ_unsetenv (env, name);
    }
  va_end (ap);
  return env;
}

static TwpPtEnv *
parse (char    **envp,
       TwpRole   role,
       GError  **error)
{
  return twp_pt_env_parse ((const char * const *) envp, role, error);
}

static void
assert_invalid (char    **envp,
                TwpRole   role)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TwpPtEnv) env = parse (envp, role, &error);

  g_assert_null (env);
  g_assert_error (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_INVALID);
  /* fit for "ENV-ERROR <msg>": one line of printable ASCII */
  for (const char *p = error->message; *p != '\0'; p++)
    g_assert_true (*p >= 0x20 && *p <= 0x7e);
  g_test_message ("ENV-ERROR %s", error->message);
  g_strfreev (envp);
}

/* One environment that must be refused: client_env or server_env with
 * env_with ()'s changes ("NAME=value" sets, "NAME" unsets). */
typedef struct {
  gboolean server_base;
  TwpRole role;
  const char *changes[3];
} InvalidEnv;

static void
assert_invalid_table (const InvalidEnv *cases,
                      gsize             n_cases)
{
  for (gsize i = 0; i < n_cases; i++)
    {
      const char * const *base = cases[i].server_base ? server_env : client_env;

      g_test_message ("invalid environment #%" G_GSIZE_FORMAT, i);
      assert_invalid (env_with (base, cases[i].changes[0], cases[i].changes[1], NULL), cases[i].role);
    }
}

static void
test_client_observed (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TwpPtEnv) env = twp_pt_env_parse (client_env, TWP_ROLE_CLIENT, &error);
  g_autofree char *v4 = NULL;
  g_autofree char *v6 = NULL;

  g_assert_no_error (error);
  g_assert_cmpint (env->role, ==, TWP_ROLE_CLIENT);
  g_assert_cmpuint (g_strv_length (env->transports), ==, 3);
  g_assert_cmpstr (env->transports[0], ==, "websocket");
  g_assert_cmpstr (env->transports[1], ==, "wsfour");
  g_assert_cmpstr (env->transports[2], ==, "wsbroken");
  g_assert_cmpstr (env->state_location, ==, "/srv/client1/data/pt_state/");
  g_assert_true (env->exit_on_stdin_close);
  g_assert_null (env->proxy_uri);
  v4 = g_inet_address_to_string (env->outbound_bind_v4);
  v6 = g_inet_address_to_string (env->outbound_bind_v6);
  g_assert_cmpstr (v4, ==, "127.0.0.1");
  g_assert_cmpstr (v6, ==, "::1");
  g_assert_null (env->bindaddrs);
  g_assert_null (env->server_options);
}

/* G1 */
static void
test_version (void)
{
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) ok = env_with (client_env, "TOR_PT_MANAGED_TRANSPORT_VER=1a,2b,1", NULL);
  g_auto(GStrv) two = env_with (client_env, "TOR_PT_MANAGED_TRANSPORT_VER=2", NULL);
  g_auto(GStrv) near = env_with (client_env, "TOR_PT_MANAGED_TRANSPORT_VER=1a, 1", NULL);
  g_auto(GStrv) empty = env_with (client_env, "TOR_PT_MANAGED_TRANSPORT_VER=", NULL);
  g_autoptr(TwpPtEnv) env = NULL;

  env = parse (ok, TWP_ROLE_CLIENT, &error);
  g_assert_no_error (error);
  g_assert_nonnull (env);

  g_assert_null (parse (two, TWP_ROLE_CLIENT, &error));
  g_assert_error (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_NO_VERSION);
  g_clear_error (&error);

  g_assert_null (parse (near, TWP_ROLE_CLIENT, &error));
  g_assert_error (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_NO_VERSION);
  g_clear_error (&error);

  g_assert_null (parse (empty, TWP_ROLE_CLIENT, &error));
  g_assert_error (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_NO_VERSION);
  g_clear_error (&error);

  /* the version is checked first, even when everything else is wrong too */
  {
    const char * const bad_all[] = { "TOR_PT_MANAGED_TRANSPORT_VER=2", NULL };

    g_assert_null (twp_pt_env_parse (bad_all, TWP_ROLE_SERVER, &error));
    g_assert_error (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_NO_VERSION);
    g_clear_error (&error);
  }

  /* unset: ENV-ERROR like goptlib, not VERSION-ERROR */
  assert_invalid (env_with (client_env, "TOR_PT_MANAGED_TRANSPORT_VER", NULL), TWP_ROLE_CLIENT);
  g_assert_null (twp_pt_env_parse (NULL, TWP_ROLE_CLIENT, &error));
  g_assert_error (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_INVALID);
}

/* C1, S1, G9 */
static void
test_transports (void)
{
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) dup = env_with (client_env, "TOR_PT_CLIENT_TRANSPORTS=websocket,ws2,websocket", NULL);
  g_autoptr(TwpPtEnv) env = NULL;

  /* both set, neither set, set for the other role */
  {
    static const InvalidEnv invalid[] = {
      { FALSE, TWP_ROLE_CLIENT, { "TOR_PT_SERVER_TRANSPORTS=websocket" } },
      { TRUE, TWP_ROLE_SERVER, { "TOR_PT_CLIENT_TRANSPORTS=websocket" } },
      { FALSE, TWP_ROLE_CLIENT, { "TOR_PT_CLIENT_TRANSPORTS" } },
      { FALSE, TWP_ROLE_CLIENT, { "TOR_PT_CLIENT_TRANSPORTS=" } },
      { FALSE, TWP_ROLE_SERVER, { NULL } },
      { TRUE, TWP_ROLE_CLIENT, { NULL } },
    };

    assert_invalid_table (invalid, G_N_ELEMENTS (invalid));
  }

  /* names must be C identifiers; "*" was removed from the spec (#15612) */
  {
    static const InvalidEnv invalid[] = {
      { FALSE, TWP_ROLE_CLIENT, { "TOR_PT_CLIENT_TRANSPORTS=*" } },
      { FALSE, TWP_ROLE_CLIENT, { "TOR_PT_CLIENT_TRANSPORTS=web-socket" } },
      { FALSE, TWP_ROLE_CLIENT, { "TOR_PT_CLIENT_TRANSPORTS=1ws" } },
      { FALSE, TWP_ROLE_CLIENT, { "TOR_PT_CLIENT_TRANSPORTS=websocket," } },
      { FALSE, TWP_ROLE_CLIENT, { "TOR_PT_CLIENT_TRANSPORTS=web socket" } },
      { FALSE, TWP_ROLE_CLIENT, { "TOR_PT_CLIENT_TRANSPORTS=w\xc3\xa9" } },
    };

    assert_invalid_table (invalid, G_N_ELEMENTS (invalid));
  }

  /* a repeated name is requested once */
  env = parse (dup, TWP_ROLE_CLIENT, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_strv_length (env->transports), ==, 2);
  g_assert_cmpstr (env->transports[0], ==, "websocket");
  g_assert_cmpstr (env->transports[1], ==, "ws2");
}

/* C5, G10, G13 */
static void
test_client_misc (void)
{
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) vars = env_with (client_env, "TOR_PT_EXIT_ON_STDIN_CLOSE=0",
                                 "TOR_PT_STATE_LOCATION",
                                 "TOR_PT_OUTBOUND_BIND_ADDRESS_V4=",
                                 "TOR_PT_OUTBOUND_BIND_ADDRESS_V6",
                                 "TOR_PT_PROXY=socks5://127.0.0.1:1080", NULL);
  g_auto(GStrv) bare6 = env_with (client_env, "TOR_PT_OUTBOUND_BIND_ADDRESS_V6=2001:db8::1", NULL);
  g_autoptr(TwpPtEnv) env = NULL;
  g_autofree char *v6 = NULL;

  env = parse (vars, TWP_ROLE_CLIENT, &error);
  g_assert_no_error (error);
  g_assert_false (env->exit_on_stdin_close);
  g_assert_null (env->state_location);
  g_assert_null (env->outbound_bind_v4);
  g_assert_null (env->outbound_bind_v6);
  g_assert_cmpstr (env->proxy_uri, ==, "socks5://127.0.0.1:1080");
  g_clear_pointer (&env, twp_pt_env_free);

  env = parse (bare6, TWP_ROLE_CLIENT, &error);
  g_assert_no_error (error);
  v6 = g_inet_address_to_string (env->outbound_bind_v6);
  g_assert_cmpstr (v6, ==, "2001:db8::1");

  /* C3/C4: wrong family, hostnames, half brackets */
  {
    static const InvalidEnv invalid[] = {
      { FALSE, TWP_ROLE_CLIENT, { "TOR_PT_OUTBOUND_BIND_ADDRESS_V4=::1" } },
      { FALSE, TWP_ROLE_CLIENT, { "TOR_PT_OUTBOUND_BIND_ADDRESS_V4=localhost" } },
      { FALSE, TWP_ROLE_CLIENT, { "TOR_PT_OUTBOUND_BIND_ADDRESS_V4=[127.0.0.1]" } },
      { FALSE, TWP_ROLE_CLIENT, { "TOR_PT_OUTBOUND_BIND_ADDRESS_V6=127.0.0.1" } },
      { FALSE, TWP_ROLE_CLIENT, { "TOR_PT_OUTBOUND_BIND_ADDRESS_V6=[::1" } },
      { FALSE, TWP_ROLE_CLIENT, { "TOR_PT_OUTBOUND_BIND_ADDRESS_V6=[::1]:80" } },
      /* G13: relative state location */
      { FALSE, TWP_ROLE_CLIENT, { "TOR_PT_STATE_LOCATION=pt_state/" } },
    };

    assert_invalid_table (invalid, G_N_ELEMENTS (invalid));
  }
}

/* C2: every TOR_PT_PROXY value observed from tor 0.4.9.11 */
static void
test_proxy_observed (void)
{
  static const struct {
    const char *uri;
    TwpProxyType type;
    const char *username;
    const char *password;
    const char *host;
    guint16 port;
  } cases[] = {
    /* B4: raw credentials containing ':', '@' and '%' */
    { "socks5://us:er@x:p@ss:w%rd@127.0.0.1:1080", TWP_PROXY_SOCKS5, "us", "er@x:p@ss:w%rd", "127.0.0.1", 1080 },
    { "http://user:pa:ss@127.0.0.1:3128", TWP_PROXY_HTTP, "user", "pa:ss", "127.0.0.1", 3128 },
    { "socks4a://127.0.0.1:1081", TWP_PROXY_SOCKS4A, NULL, NULL, "127.0.0.1", 1081 },
    { "socks5://[::1]:1080", TWP_PROXY_SOCKS5, NULL, NULL, "::1", 1080 },
    /* user without ':', empty password, IPv6 with credentials */
    { "http://user@[2001:db8::1]:8080", TWP_PROXY_HTTP, "user", NULL, "2001:db8::1", 8080 },
    { "socks5://u:@10.0.0.1:65535", TWP_PROXY_SOCKS5, "u", "", "10.0.0.1", 65535 },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(TwpProxyConfig) config = twp_proxy_config_parse (cases[i].uri, &error);

      g_test_message ("proxy #%u", i);
      g_assert_no_error (error);
      g_assert_cmpint (config->type, ==, cases[i].type);
      g_assert_cmpstr (config->username, ==, cases[i].username);
      g_assert_cmpstr (config->password, ==, cases[i].password);
      g_assert_cmpstr (config->host, ==, cases[i].host);
      g_assert_cmpuint (config->port, ==, cases[i].port);
    }
}

static void
test_proxy_errors (void)
{
  g_autofree char *long_user = g_strnfill (256, 'u');
  g_autofree char *too_long = g_strdup_printf ("socks5://%s:p@127.0.0.1:1080", long_user);
  const char * const bad[] = {
    "",
    "127.0.0.1:1080",                       /* no scheme */
    "socks://127.0.0.1:1080",               /* unknown schemes */
    "https://127.0.0.1:1080",
    "SOCKS5://127.0.0.1:1080",
    "socks5:/127.0.0.1:1080",
    "socks5://localhost:1080",              /* hostname, not an IP */
    "socks5://example.com:1080",
    "socks5://127.0.0.1:0",                 /* bad ports */
    "socks5://127.0.0.1:65536",
    "socks5://127.0.0.1:",
    "socks5://127.0.0.1",
    "socks5://127.0.0.1:+80",
    "socks5://127.0.0.1:80/",
    "socks5://::1:1080",                    /* IPv6 must be bracketed here */
    "socks5://[::1]",
    "socks5://[::1:1080",
    "socks5://[127.0.0.1]:1080",
    "socks4a://user:pass@127.0.0.1:1081",   /* socks4a takes no credentials */
    "socks4a://user@127.0.0.1:1081",
    "socks5://:pass@127.0.0.1:1080",        /* empty user */
    "http://@127.0.0.1:3128",
    too_long,
  };

  g_assert_null (twp_proxy_config_parse (NULL, NULL));
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(TwpProxyConfig) config = twp_proxy_config_parse (bad[i], &error);

      g_test_message ("bad proxy #%u", i);
      g_assert_null (config);
      g_assert_error (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_INVALID);
      /* the URI may hold credentials: never echoed */
      g_assert_null (strstr (error->message, "pass"));
    }
}

static void
test_ip_port (void)
{
  static const struct {
    const char *str;
    gboolean zero;
    const char *address;   /* NULL: must fail */
    guint16 port;
  } cases[] = {
    { "127.0.0.1:9000", FALSE, "127.0.0.1", 9000 },
    { "0.0.0.0:0", TRUE, "0.0.0.0", 0 },
    { "0.0.0.0:0", FALSE, NULL, 0 },
    { "[::1]:80", FALSE, "::1", 80 },
    { "[::]:0", TRUE, "::", 0 },
    { "::1:80", FALSE, "::1", 80 },                 /* bare IPv6, #7011 */
    { "2001:db8::1:443", FALSE, "2001:db8::1", 443 },
    { "127.0.0.1", FALSE, NULL, 0 },
    { "127.0.0.1:", FALSE, NULL, 0 },
    { "127.0.0.1:99999", FALSE, NULL, 0 },
    { "127.0.0.1:-1", FALSE, NULL, 0 },
    { "127.0.0.1:0x50", FALSE, NULL, 0 },
    { "127.1:80", FALSE, NULL, 0 },
    { "localhost:80", FALSE, NULL, 0 },
    { ":80", FALSE, NULL, 0 },
    { "[::1]", FALSE, NULL, 0 },
    { "[::1]80", FALSE, NULL, 0 },
    { "[fe80::1%eth0]:80", FALSE, NULL, 0 },
    { "::1", FALSE, NULL, 0 },
    { "", FALSE, NULL, 0 },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *address = NULL;
      guint16 port = 1;
      gboolean ok = twp_parse_ip_port (cases[i].str, cases[i].zero, &address, &port, &error);

      g_test_message ("ip:port %s", cases[i].str);
      if (cases[i].address == NULL)
        {
          g_assert_false (ok);
          g_assert_error (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_INVALID);
          g_assert_null (address);
        }
      else
        {
          g_assert_no_error (error);
          g_assert_true (ok);
          g_assert_cmpstr (address, ==, cases[i].address);
          g_assert_cmpuint (port, ==, cases[i].port);
        }
    }
}

static void
test_server_observed (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TwpPtEnv) env = twp_pt_env_parse (server_env, TWP_ROLE_SERVER, &error);
  TwpBindAddr *bind;
  TwpArgs *options;

  g_assert_no_error (error);
  g_assert_cmpint (env->role, ==, TWP_ROLE_SERVER);
  g_assert_cmpuint (g_strv_length (env->transports), ==, 2);
  g_assert_cmpuint (env->bindaddrs->len, ==, 2);
  bind = g_ptr_array_index (env->bindaddrs, 0);
  g_assert_cmpstr (bind->transport, ==, "websocket");
  g_assert_cmpstr (bind->address, ==, "0.0.0.0");
  g_assert_cmpuint (bind->port, ==, 0);
  bind = twp_pt_env_lookup_bindaddr (env, "wsbroken");
  g_assert_nonnull (bind);
  g_assert_cmpstr (bind->address, ==, "0.0.0.0");
  g_assert_null (twp_pt_env_lookup_bindaddr (env, "other"));

  options = twp_pt_env_lookup_server_options (env, "websocket");
  g_assert_nonnull (options);
  g_assert_cmpuint (twp_args_get_length (options), ==, 4);
  g_assert_cmpstr (twp_args_lookup (options, "path"), ==, "/ws;x");
  g_assert_cmpstr (twp_args_lookup (options, "colon"), ==, "a:b");
  g_assert_cmpstr (twp_args_lookup (options, "back"), ==, "c\\d");
  g_assert_cmpstr (twp_args_lookup (options, "eq"), ==, "x=y");
  g_assert_null (twp_pt_env_lookup_server_options (env, "wsbroken"));

  g_assert_cmpstr (env->orport, ==, "127.0.0.1:19001");
  g_assert_cmpstr (env->ext_orport, ==, "127.0.0.1:43297");
  g_assert_cmpstr (env->auth_cookie_file, ==, "/srv/server1/data/extended_orport_auth_cookie");
}

/* S2 */
static void
test_server_bindaddr (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TwpPtEnv) env = NULL;
  g_auto(GStrv) second = env_with (server_env,
                                   "TOR_PT_SERVER_BINDADDR=websocket-127.0.0.1:44027,wsbroken-0.0.0.0:0",
                                   NULL);
  g_auto(GStrv) v6 = env_with (server_env,
                               "TOR_PT_SERVER_BINDADDR=websocket-[::1]:443,wsbroken-2001:db8::2:80,other-1.2.3.4:5",
                               NULL);
  g_auto(GStrv) partial = env_with (server_env, "TOR_PT_SERVER_BINDADDR=websocket-127.0.0.1:1", NULL);
  TwpBindAddr *bind;

  /* second run: the port tor persisted from our last SMETHOD */
  env = parse (second, TWP_ROLE_SERVER, &error);
  g_assert_no_error (error);
  bind = twp_pt_env_lookup_bindaddr (env, "websocket");
  g_assert_cmpstr (bind->address, ==, "127.0.0.1");
  g_assert_cmpuint (bind->port, ==, 44027);
  g_clear_pointer (&env, twp_pt_env_free);

  /* bracketed and bare IPv6; entries for names not requested are ignored */
  env = parse (v6, TWP_ROLE_SERVER, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (env->bindaddrs->len, ==, 2);
  bind = twp_pt_env_lookup_bindaddr (env, "websocket");
  g_assert_cmpstr (bind->address, ==, "::1");
  g_assert_cmpuint (bind->port, ==, 443);
  bind = twp_pt_env_lookup_bindaddr (env, "wsbroken");
  g_assert_cmpstr (bind->address, ==, "2001:db8::2");
  g_assert_cmpuint (bind->port, ==, 80);
  g_assert_null (twp_pt_env_lookup_bindaddr (env, "other"));
  g_clear_pointer (&env, twp_pt_env_free);

  /* a requested transport without an entry simply has none */
  env = parse (partial, TWP_ROLE_SERVER, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (env->bindaddrs->len, ==, 1);
  g_assert_null (twp_pt_env_lookup_bindaddr (env, "wsbroken"));

  /* #21261 duplicates, missing '-', bad names and addresses, unset */
  {
    static const InvalidEnv invalid[] = {
      { TRUE, TWP_ROLE_SERVER, { "TOR_PT_SERVER_BINDADDR=websocket-0.0.0.0:0,websocket-0.0.0.0:1" } },
      { TRUE, TWP_ROLE_SERVER, { "TOR_PT_SERVER_BINDADDR=other-0.0.0.0:0,other-0.0.0.0:1" } },
      { TRUE, TWP_ROLE_SERVER, { "TOR_PT_SERVER_BINDADDR=websocket0.0.0.0:0" } },
      { TRUE, TWP_ROLE_SERVER, { "TOR_PT_SERVER_BINDADDR=websocket-0.0.0.0" } },
      { TRUE, TWP_ROLE_SERVER, { "TOR_PT_SERVER_BINDADDR=websocket-localhost:80" } },
      { TRUE, TWP_ROLE_SERVER, { "TOR_PT_SERVER_BINDADDR=websocket-0.0.0.0:65536" } },
      { TRUE, TWP_ROLE_SERVER, { "TOR_PT_SERVER_BINDADDR=-0.0.0.0:0" } },
      { TRUE, TWP_ROLE_SERVER, { "TOR_PT_SERVER_BINDADDR=websocket-0.0.0.0:0," } },
      { TRUE, TWP_ROLE_SERVER, { "TOR_PT_SERVER_BINDADDR=" } },
      { TRUE, TWP_ROLE_SERVER, { "TOR_PT_SERVER_BINDADDR" } },
    };

    assert_invalid_table (invalid, G_N_ELEMENTS (invalid));
  }
}

/* S3-S6 */
static void
test_server_ports (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TwpPtEnv) env = NULL;
  g_auto(GStrv) noext = env_with (server_env, "TOR_PT_EXTENDED_SERVER_PORT=",
                                  "TOR_PT_AUTH_COOKIE_FILE",
                                  "TOR_PT_SERVER_TRANSPORT_OPTIONS", NULL);
  g_auto(GStrv) extonly = env_with (server_env, "TOR_PT_ORPORT",
                                    "TOR_PT_EXTENDED_SERVER_PORT=::1:43297", NULL);

  /* S5: empty EXTENDED_SERVER_PORT means unset; no options: empty table */
  env = parse (noext, TWP_ROLE_SERVER, &error);
  g_assert_no_error (error);
  g_assert_null (env->ext_orport);
  g_assert_null (env->auth_cookie_file);
  g_assert_cmpstr (env->orport, ==, "127.0.0.1:19001");
  g_assert_nonnull (env->server_options);
  g_assert_cmpuint (g_hash_table_size (env->server_options), ==, 0);
  g_clear_pointer (&env, twp_pt_env_free);

  /* only the ExtORPort, bare IPv6 normalized to brackets */
  env = parse (extonly, TWP_ROLE_SERVER, &error);
  g_assert_no_error (error);
  g_assert_null (env->orport);
  g_assert_cmpstr (env->ext_orport, ==, "[::1]:43297");

  /* S6: ExtORPort without a cookie file */
  {
    static const InvalidEnv invalid[] = {
      { TRUE, TWP_ROLE_SERVER, { "TOR_PT_AUTH_COOKIE_FILE" } },
      { TRUE, TWP_ROLE_SERVER, { "TOR_PT_AUTH_COOKIE_FILE=" } },
      /* S4/S5: no usable ORPort at all */
      { TRUE, TWP_ROLE_SERVER, { "TOR_PT_ORPORT", "TOR_PT_EXTENDED_SERVER_PORT=" } },
      { TRUE, TWP_ROLE_SERVER, { "TOR_PT_ORPORT=", "TOR_PT_EXTENDED_SERVER_PORT" } },
      /* bad values */
      { TRUE, TWP_ROLE_SERVER, { "TOR_PT_ORPORT=127.0.0.1:0" } },
      { TRUE, TWP_ROLE_SERVER, { "TOR_PT_ORPORT=localhost:9001" } },
      { TRUE, TWP_ROLE_SERVER, { "TOR_PT_EXTENDED_SERVER_PORT=127.0.0.1" } },
      /* S3 */
      { TRUE, TWP_ROLE_SERVER, { "TOR_PT_SERVER_TRANSPORT_OPTIONS=websocket:k" } },
      { TRUE, TWP_ROLE_SERVER, { "TOR_PT_SERVER_TRANSPORT_OPTIONS=websocket:k=v\\" } },
    };

    assert_invalid_table (invalid, G_N_ELEMENTS (invalid));
  }
}

/* G13 */
static void
test_state_location (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *tmp = g_dir_make_tmp ("twp-test-pt-env-XXXXXX", &error);
  g_autofree char *state = NULL;
  g_autofree char *var = NULL;
  g_auto(GStrv) vars = NULL;
  g_autoptr(TwpPtEnv) env = NULL;
  g_autofree char *parent = NULL;
  GStatBuf st;

  g_assert_no_error (error);
  parent = g_build_filename (tmp, "data", NULL);
  state = g_build_filename (tmp, "data", "pt_state", NULL);
  /* tor's value ends in '/' */
  var = g_strconcat ("TOR_PT_STATE_LOCATION=", state, "/", NULL);
  vars = env_with (client_env, var, NULL);

  env = parse (vars, TWP_ROLE_CLIENT, &error);
  g_assert_no_error (error);
  g_assert_true (twp_pt_env_ensure_state_location (env, &error));
  g_assert_no_error (error);
  g_assert_cmpint (g_stat (state, &st), ==, 0);
  g_assert_true (S_ISDIR (st.st_mode));
  g_assert_cmpint (st.st_mode & 07777, ==, 0700);
  g_assert_cmpint (g_stat (parent, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 07077, ==, 0);

  /* an existing directory is left as it is */
  g_assert_cmpint (g_chmod (state, 0750), ==, 0);
  g_assert_true (twp_pt_env_ensure_state_location (env, &error));
  g_assert_no_error (error);
  g_assert_cmpint (g_stat (state, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 07777, ==, 0750);
  g_assert_cmpint (g_rmdir (state), ==, 0);

  /* a file in the way is an error */
  g_assert_true (g_file_set_contents (state, "x", 1, NULL));
  g_assert_false (twp_pt_env_ensure_state_location (env, &error));
  g_assert_nonnull (error);
  g_clear_error (&error);
  g_assert_cmpint (g_unlink (state), ==, 0);
  g_assert_cmpint (g_rmdir (parent), ==, 0);
  g_assert_cmpint (g_rmdir (tmp), ==, 0);

  /* unset: nothing to do */
  g_clear_pointer (&env->state_location, g_free);
  g_assert_true (twp_pt_env_ensure_state_location (env, &error));
  g_assert_no_error (error);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/pt-env/client/observed", test_client_observed);
  g_test_add_func ("/pt-env/version", test_version);
  g_test_add_func ("/pt-env/transports", test_transports);
  g_test_add_func ("/pt-env/client/misc", test_client_misc);
  g_test_add_func ("/pt-env/proxy/observed", test_proxy_observed);
  g_test_add_func ("/pt-env/proxy/errors", test_proxy_errors);
  g_test_add_func ("/pt-env/ip-port", test_ip_port);
  g_test_add_func ("/pt-env/server/observed", test_server_observed);
  g_test_add_func ("/pt-env/server/bindaddr", test_server_bindaddr);
  g_test_add_func ("/pt-env/server/ports", test_server_ports);
  g_test_add_func ("/pt-env/state-location", test_state_location);

  return g_test_run ();
}
