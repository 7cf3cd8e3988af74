/* SPDX-License-Identifier: BSD-3-Clause */
/* tor-websocket-proxy: the "websocket" pluggable transport for tor.
 *
 * Managed mode follows pt-spec v1: validate the environment, speak the
 * stdout protocol (VERSION, PROXY, CMETHOD/SMETHOD, DONE), then serve until
 * tor sends SIGTERM or closes stdin. Unmanaged mode takes the same settings
 * from the command line. */
#define G_LOG_DOMAIN "tor-websocket-proxy"

#include "config.h"

#include <glib-unix.h>
#include <gio/gunixinputstream.h>
#include <signal.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>

#include "twp-args.h"
#include "twp-bridge-config.h"
#include "twp-client.h"
#include "twp-dbus-service.h"
#include "twp-log.h"
#include "twp-metrics-endpoint.h"
#include "twp-pt-env.h"
#include "twp-pt-output.h"
#include "twp-server.h"

#define TRANSPORT_NAME "websocket"
/* How long a server keeps open connections after SIGINT (tor's own
 * ShutdownWaitLength is 30 s by default). */
#define GRACEFUL_SHUTDOWN_SECONDS 30
/* Bounded wait for cancelled connections to unwind before exit. */
#define DRAIN_MS 200
/* A server logs its counters this often, as tor's own heartbeat does;
 * the tests shorten it through HEARTBEAT_TEST_ENV (seconds). */
#define HEARTBEAT_SECONDS 3600
#define HEARTBEAT_TEST_ENV "TWP_HEARTBEAT_SECONDS_FOR_TESTS"

typedef struct {
  /* command line */
  gboolean client;
  gboolean server;
  gboolean managed;
  gboolean unsafe_logging;
  gboolean show_version;
  char *log_level;
  char *listen;
  char *url;
  char *mode;
  char *sni;
  char *origin;
  char *host;
  char *cert_sha256;
  char *ca_file;
  char *proxy;
  char *orport;
  char *extorport;
  char *auth_cookie;
  char **server_options;
  int keepalive;
  int idle_timeout;
  int stall_timeout;
  int connect_timeout;
  int max_message_size;

  /* state */
  GMainLoop *loop;
  TwpPtOutput *output;
  TwpPtLogSeverity log_threshold;
  guint tor_log_sink_id;
  GTlsDatabase *tls_database;    /* from --ca-file */
  TwpClient *client_role;
  TwpServer *server_role;
  TwpDBusService *dbus;          /* D-Bus export; started after *METHODS DONE */
  TwpMetricsEndpoint *metrics;   /* server option metrics= */
  GSource *heartbeat;
  guint sigint_count;
  pid_t parent_pid;
  GInputStream *stdin_stream;
  GCancellable *stdin_cancellable;
  int exit_status;
} App;

static void
app_quit (App *app)
{
  g_main_loop_quit (app->loop);
}

/* ---- logging ----------------------------------------------------------- */

static void
tor_log_sink (TwpLogSeverity  severity,
              const char     *message,
              gpointer        user_data)
{
  App *app = user_data;

  /* TwpLogSeverity and TwpPtLogSeverity share their order. */
  if ((int) severity <= (int) app->log_threshold && app->output != NULL)
    twp_pt_output_log (app->output, (TwpPtLogSeverity) severity, "%s", message);
}

static gboolean
parse_log_level (const char       *level,
                 TwpPtLogSeverity *severity)
{
  static const char *const names[] = { "error", "warning", "notice", "info", "debug" };

  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    if (g_strcmp0 (level, names[i]) == 0)
      {
        *severity = i;
        return TRUE;
      }
  return FALSE;
}

/* ---- signals and tor's lifeline ---------------------------------------- */

static gboolean
sigterm_cb (gpointer user_data)
{
  App *app = user_data;

  /* K1: tor never sends SIGKILL; we leave at once. */
  app_quit (app);
  return G_SOURCE_CONTINUE;
}

static gboolean
graceful_timeout_cb (gpointer user_data)
{
  app_quit (user_data);
  return G_SOURCE_REMOVE;
}

static gboolean
sigint_cb (gpointer user_data)
{
  App *app = user_data;

  app->sigint_count++;
  /* K4: a server drains on the first SIGINT (systemd's stop, tor's
   * ShutdownWaitLength); a client, or a second SIGINT, leaves at once. */
  if (app->server_role == NULL || app->sigint_count > 1 ||
      twp_server_get_n_connections (app->server_role) == 0)
    {
      app_quit (app);
      return G_SOURCE_CONTINUE;
    }
  twp_log_user (TWP_LOG_NOTICE, "interrupt: no longer accepting; exiting when %u connections end",
                twp_server_get_n_connections (app->server_role));
  twp_server_stop_accepting (app->server_role);
  g_source_set_name_by_id (g_timeout_add_seconds_full (G_PRIORITY_DEFAULT, GRACEFUL_SHUTDOWN_SECONDS,
                                                       graceful_timeout_cb, app, NULL),
                           "[twp] graceful shutdown");
  return G_SOURCE_CONTINUE;
}

static void
server_connections_changed_cb (GObject    *object,
                               GParamSpec *pspec,
                               gpointer    user_data)
{
  App *app = user_data;

  if (app->sigint_count > 0 && twp_server_get_n_connections (app->server_role) == 0)
    app_quit (app);
}

static gboolean
sighup_cb (gpointer user_data)
{
  /* K6: tor never sends SIGHUP; a terminal might. Nothing to reload. */
  return G_SOURCE_CONTINUE;
}

static void
stdin_read_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  App *app = user_data;
  static char discard[256];
  g_autoptr(GError) error = NULL;
  gssize n;

  n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  if (n <= 0)
    {
      /* G10, K3: EOF on stdin means tor is gone or wants us gone. */
      app_quit (app);
      return;
    }
  g_input_stream_read_async (G_INPUT_STREAM (source), discard, sizeof discard,
                             G_PRIORITY_DEFAULT, app->stdin_cancellable, stdin_read_cb, app);
}

static gboolean
parent_check_cb (gpointer user_data)
{
  App *app = user_data;

  /* K5: reparented means tor died without telling us. */
  if (getppid () != app->parent_pid)
    {
      app_quit (app);
      return G_SOURCE_REMOVE;
    }
  return G_SOURCE_CONTINUE;
}

static void
watch_lifeline (App      *app,
                gboolean  exit_on_stdin_close)
{
  g_source_set_name_by_id (g_unix_signal_add (SIGTERM, sigterm_cb, app), "[twp] SIGTERM");
  g_source_set_name_by_id (g_unix_signal_add (SIGINT, sigint_cb, app), "[twp] SIGINT");
  g_source_set_name_by_id (g_unix_signal_add (SIGHUP, sighup_cb, app), "[twp] SIGHUP");

  if (exit_on_stdin_close)
    {
      static char discard[256];

      app->stdin_stream = g_unix_input_stream_new (STDIN_FILENO, FALSE);
      app->stdin_cancellable = g_cancellable_new ();
      g_input_stream_read_async (app->stdin_stream, discard, sizeof discard, G_PRIORITY_DEFAULT,
                                 app->stdin_cancellable, stdin_read_cb, app);
    }
  if (app->managed)
    g_source_set_name_by_id (g_timeout_add_seconds_full (G_PRIORITY_LOW, 2, parent_check_cb, app, NULL),
                             "[twp] parent check");
}

/* ---- pt-spec environment ----------------------------------------------- */

/* Reads and checks the whole environment before VERSION (G3). On error the
 * reason is printed first, so that tor logs it and does not respawn us
 * every second (G1, G11, B3); returns NULL then. */
static TwpPtEnv *
read_environment (App     *app,
                  TwpRole  role)
{
  g_auto(GStrv) environ_copy = g_get_environ ();
  g_autoptr(TwpPtEnv) env = NULL;
  g_autoptr(GError) error = NULL;

  env = twp_pt_env_parse ((const char * const *) environ_copy, role, &error);
  if (env == NULL)
    {
      if (g_error_matches (error, TWP_PT_ENV_ERROR, TWP_PT_ENV_ERROR_NO_VERSION))
        twp_pt_output_version_error (app->output);
      else
        twp_pt_output_env_error (app->output, error->message);
      return NULL;
    }
  if (!twp_pt_env_ensure_state_location (env, &error))
    {
      twp_pt_output_env_error (app->output, error->message);
      return NULL;
    }
  return g_steal_pointer (&env);
}

/* C1: a name we do not provide gets no *METHOD-ERROR, but a warning. */
static gboolean
provides_transport (App        *app,
                    const char *name)
{
  if (g_strcmp0 (name, TRANSPORT_NAME) == 0)
    return TRUE;
  twp_pt_output_log (app->output, TWP_PT_LOG_WARNING,
                     "unsupported transport \"%s\" ignored (this program provides \"%s\")",
                     name, TRANSPORT_NAME);
  return FALSE;
}

/* The end of every run_* function: publish on D-Bus (taking @dbus), watch
 * for tor's signals and stdin, serve until told to stop. */
static int
serve (App            *app,
       TwpDBusService *dbus,
       gboolean        exit_on_stdin_close)
{
  app->dbus = dbus;
  twp_dbus_service_start (app->dbus);
  watch_lifeline (app, exit_on_stdin_close);
  g_main_loop_run (app->loop);
  return EXIT_SUCCESS;
}

/* ---- client ------------------------------------------------------------ */

static TwpArgs *
default_bridge_args (App      *app,
                     GError  **error)
{
  g_autoptr(TwpArgs) args = twp_args_new ();
  g_autoptr(TwpBridgeConfig) config = NULL;

  if (app->url != NULL)
    twp_args_add (args, "url", app->url);
  if (app->sni != NULL)
    twp_args_add (args, "sni", app->sni);
  if (app->cert_sha256 != NULL)
    twp_args_add (args, "cert-sha256", app->cert_sha256);
  if (app->origin != NULL)
    twp_args_add (args, "origin", app->origin);
  if (app->host != NULL)
    twp_args_add (args, "host", app->host);
  if (twp_args_get_length (args) == 0)
    return NULL;
  if (app->url == NULL)
    {
      g_set_error_literal (error, TWP_BRIDGE_CONFIG_ERROR, TWP_BRIDGE_CONFIG_ERROR_INVALID,
                           "--url is needed with --sni, --origin, --host or --cert-sha256");
      return NULL;
    }
  config = twp_bridge_config_new (args, NULL, 0, error);
  if (config == NULL)
    return NULL;
  return g_steal_pointer (&args);
}

static gboolean
load_ca_file (App     *app,
              GError **error)
{
  g_autoptr(GError) local_error = NULL;

  if (app->ca_file == NULL)
    return TRUE;
  app->tls_database = g_tls_file_database_new (app->ca_file, &local_error);
  if (app->tls_database == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "--ca-file: %s", local_error->message);
      return FALSE;
    }
  return TRUE;
}

/* --mode is the user's default; a bridge's mode= still pins that bridge. */
static void
apply_frame_mode (App *app)
{
  TwpFrameMode mode;

  if (app->mode != NULL && twp_frame_mode_from_string (app->mode, &mode))
    twp_client_set_frame_mode (app->client_role, mode);
}

/* A positive number from the environment, else 0 (the default). */
static guint
test_env_uint (const char *name)
{
  const char *value = g_getenv (name);
  guint64 number = 0;

  if (value == NULL || !g_ascii_string_to_unsigned (value, 10, 1, G_MAXUINT, &number, NULL))
    return 0;
  return (guint) number;
}

static gboolean
fill_client_options (App               *app,
                     TwpPtEnv          *env,
                     TwpProxyConfig    *proxy,
                     TwpClientOptions  *options,
                     GError           **error)
{
  options->dial.proxy = proxy;
  options->dial.timeout_ms = (guint) app->connect_timeout * 1000;
  options->socks_timeout_ms = 10 * 1000;
  options->relay.keepalive_seconds = (guint) app->keepalive;
  options->relay.idle_timeout_seconds = (guint) app->idle_timeout;
  options->relay.stall_timeout_seconds = (guint) app->stall_timeout;
  options->relay.max_message_size = (gsize) app->max_message_size;
  /* For tests only (README, "Tests"): bridge expiry in milliseconds and a
   * smaller bridge table, so that the bounds can be checked in seconds. */
  options->bridge_idle_timeout_ms = test_env_uint ("TWP_TEST_BRIDGE_IDLE_MS");
  options->max_bridges = test_env_uint ("TWP_TEST_MAX_BRIDGES");
  if (env != NULL)
    {
      options->dial.bind_v4 = env->outbound_bind_v4;
      options->dial.bind_v6 = env->outbound_bind_v6;
    }
  if (app->tls_database != NULL)
    options->dial.tls_database = g_object_ref (app->tls_database);
  if (!app->managed)
    {
      options->default_args = default_bridge_args (app, error);
      if (options->default_args == NULL && error != NULL && *error != NULL)
        return FALSE;
    }
  return TRUE;
}

static void
clear_client_options (TwpClientOptions *options)
{
  g_clear_object (&options->dial.tls_database);
  g_clear_pointer (&options->default_args, twp_args_free);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (TwpClientOptions, clear_client_options)

static int
run_client_managed (App *app)
{
  g_autoptr(TwpPtEnv) env = NULL;
  g_autoptr(TwpProxyConfig) proxy = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_auto(TwpClientOptions) options = { 0 };
  guint n_methods = 0;

  env = read_environment (app, TWP_ROLE_CLIENT);
  if (env == NULL)
    return EXIT_FAILURE;
  /* A bad --ca-file is a configuration error: reported before VERSION,
   * not as an exit after DONE that tor would answer by respawning us. */
  if (!load_ca_file (app, &error))
    {
      twp_pt_output_env_error (app->output, error->message);
      return EXIT_FAILURE;
    }

  twp_pt_output_version (app->output);
  twp_pt_output_status_version (app->output, PACKAGE_NAME, PACKAGE_VERSION);

  if (env->proxy_uri != NULL)
    {
      /* C2: answered before any CMETHOD; on error we stop (fail closed). */
      proxy = twp_proxy_config_parse (env->proxy_uri, &error);
      if (proxy == NULL)
        {
          twp_pt_output_proxy_error (app->output, error->message);
          return EXIT_FAILURE;
        }
      twp_pt_output_proxy_done (app->output);
    }

  if (!fill_client_options (app, env, proxy, &options, &error))
    {
      twp_pt_output_cmethod_error (app->output, TRANSPORT_NAME, error->message);
      twp_pt_output_cmethods_done (app->output);
      return EXIT_FAILURE;
    }
  app->client_role = twp_client_new (&options);
  apply_frame_mode (app);

  for (char **name = env->transports; *name != NULL; name++)
    {
      g_autoptr(GInetSocketAddress) bound = NULL;

      if (!provides_transport (app, *name))
        continue;
      /* C6: loopback only, ephemeral port. */
      bound = twp_client_listen (app->client_role, loopback, 0, &error);
      if (bound == NULL)
        {
          twp_pt_output_cmethod_error (app->output, TRANSPORT_NAME, error->message);
          g_clear_error (&error);
          continue;
        }
      twp_pt_output_cmethod (app->output, TRANSPORT_NAME, "socks5", bound);
      n_methods++;
    }
  twp_pt_output_cmethods_done (app->output);
  app->tor_log_sink_id = twp_log_add_sink (tor_log_sink, app);

  /* With nothing registered we still stay: an exit after DONE makes tor
   * relaunch us every second, forever (G11). tor's SIGTERM ends us. */
  if (n_methods == 0)
    twp_log_user (TWP_LOG_WARNING, "no transport could be started; idle until tor stops us");

  /* After DONE: D-Bus never delays tor. */
  return serve (app, twp_dbus_service_new_for_client (app->client_role, env->state_location, app->mode == NULL),
                env->exit_on_stdin_close);
}

static gboolean
parse_listen (const char    *listen,
              const char    *fallback,
              GInetAddress **address,
              guint16       *port,
              GError       **error)
{
  g_autofree char *host = NULL;

  if (!twp_parse_ip_port (listen != NULL ? listen : fallback, TRUE, &host, port, error))
    return FALSE;
  *address = g_inet_address_new_from_string (host);
  return *address != NULL;
}

static void
print_listening (GInetSocketAddress *bound)
{
  g_autofree char *text = g_socket_connectable_to_string (G_SOCKET_CONNECTABLE (bound));

  /* For people and scripts: where to point a SOCKS client or a browser. */
  g_print ("listening on %s\n", text);
}

static int
run_client_unmanaged (App *app)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GInetAddress) address = NULL;
  g_autoptr(GInetSocketAddress) bound = NULL;
  g_autoptr(TwpProxyConfig) proxy = NULL;
  g_auto(TwpClientOptions) options = { 0 };
  guint16 port;

  if (app->mode != NULL)
    {
      TwpFrameMode mode;

      if (!twp_frame_mode_from_string (app->mode, &mode))
        {
          g_printerr ("--mode must be binary or base64\n");
          return EXIT_FAILURE;
        }
    }
  if (app->proxy != NULL)
    {
      proxy = twp_proxy_config_parse (app->proxy, &error);
      if (proxy == NULL)
        {
          g_printerr ("--proxy: %s\n", error->message);
          return EXIT_FAILURE;
        }
    }
  if (!load_ca_file (app, &error))
    {
      g_printerr ("%s\n", error->message);
      return EXIT_FAILURE;
    }
  if (!parse_listen (app->listen, "127.0.0.1:1080", &address, &port, &error))
    {
      g_printerr ("--listen: %s\n", error != NULL ? error->message : "not an IP address");
      return EXIT_FAILURE;
    }
  if (!fill_client_options (app, NULL, proxy, &options, &error))
    {
      g_printerr ("%s\n", error->message);
      return EXIT_FAILURE;
    }
  app->client_role = twp_client_new (&options);
  apply_frame_mode (app);

  bound = twp_client_listen (app->client_role, address, port, &error);
  if (bound == NULL)
    {
      g_printerr ("cannot listen: %s\n", error->message);
      return EXIT_FAILURE;
    }
  print_listening (bound);
  return serve (app, twp_dbus_service_new_for_client (app->client_role, NULL, app->mode == NULL), FALSE);
}

/* ---- server ------------------------------------------------------------ */

static gboolean
apply_command_line_server_options (App               *app,
                                   TwpServerOptions  *options,
                                   GError           **error)
{
  g_autoptr(TwpArgs) args = twp_args_new ();

  if (app->keepalive >= 0)
    options->relay.keepalive_seconds = (guint) app->keepalive;
  if (app->idle_timeout > 0)
    options->relay.idle_timeout_seconds = (guint) app->idle_timeout;
  if (app->stall_timeout > 0)
    options->relay.stall_timeout_seconds = (guint) app->stall_timeout;
  if (app->max_message_size > 0)
    options->relay.max_message_size = (gsize) app->max_message_size;

  /* --option KEY=VALUE: the same keys as ServerTransportOptions. */
  for (char **item = app->server_options; item != NULL && *item != NULL; item++)
    {
      const char *equals = strchr (*item, '=');
      g_autofree char *key = NULL;

      if (equals == NULL || equals == *item)
        {
          g_set_error (error, TWP_SERVER_ERROR, TWP_SERVER_ERROR_INVALID_OPTION,
                       "--option needs KEY=VALUE, got \"%s\"", *item);
          return FALSE;
        }
      key = g_strndup (*item, equals - *item);
      twp_args_add (args, key, equals + 1);
    }
  return twp_server_options_apply (options, args, error);
}

/* S5: ext-orport-spec 4 wants the Extended ORPort on loopback; the
 * metadata and payload cross it unencrypted. */
static void
warn_if_remote_extorport (const char *ext_orport)
{
  g_autofree char *host = NULL;
  g_autoptr(GInetAddress) address = NULL;
  guint16 port;

  if (ext_orport == NULL || !twp_parse_ip_port (ext_orport, FALSE, &host, &port, NULL))
    return;
  address = g_inet_address_new_from_string (host);
  if (address != NULL && !g_inet_address_get_is_loopback (address))
    twp_log_user (TWP_LOG_WARNING, "the Extended ORPort is not on a loopback address: "
                  "client metadata crosses the network unencrypted");
}

/* metrics=: bound before VERSION, so that a taken port is an ENV-ERROR
 * the operator sees in tor's log. */
static gboolean
start_metrics (App             *app,
               GSocketAddress  *address,
               GError         **error)
{
  g_autoptr(GError) local_error = NULL;
  const char *reason;

  if (address == NULL)
    return TRUE;
  app->metrics = twp_metrics_endpoint_new (app->server_role);
  if (twp_metrics_endpoint_listen (app->metrics, address, &local_error))
    return TRUE;
  /* GLib's message names the address, which may be the bridge's own:
   * keep only the reason after it. */
  reason = strrchr (local_error->message, ':');
  g_set_error (error, TWP_SERVER_ERROR, TWP_SERVER_ERROR_INVALID_OPTION, "metrics=: cannot listen: %s",
               twp_log_get_unsafe () || reason == NULL ? local_error->message : reason + 2);
  return FALSE;
}

static gboolean
heartbeat_cb (gpointer user_data)
{
  App *app = user_data;
  g_autofree char *summary = twp_server_stats_format_summary (twp_server_get_stats (app->server_role));

  twp_log_user (TWP_LOG_NOTICE, "%s", summary);
  return G_SOURCE_CONTINUE;
}

/* An operator without Prometheus or D-Bus still sees the counters, in
 * tor's log. */
static void
start_heartbeat (App *app)
{
  const char *test_seconds = g_getenv (HEARTBEAT_TEST_ENV);
  guint64 seconds = HEARTBEAT_SECONDS;

  if (test_seconds != NULL && !g_ascii_string_to_unsigned (test_seconds, 10, 1, HEARTBEAT_SECONDS,
                                                           &seconds, NULL))
    seconds = HEARTBEAT_SECONDS;
  app->heartbeat = g_timeout_source_new_seconds (seconds);
  g_source_set_static_name (app->heartbeat, "[twp] heartbeat");
  g_source_set_callback (app->heartbeat, heartbeat_cb, app, NULL);
  g_source_attach (app->heartbeat, NULL);
}

static int
run_server_managed (App *app)
{
  g_autoptr(TwpPtEnv) env = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketAddress) metrics_address = NULL;
  TwpServerOptions options;
  TwpArgs *transport_options;
  guint n_methods = 0;

  env = read_environment (app, TWP_ROLE_SERVER);
  if (env == NULL)
    return EXIT_FAILURE;

  /* G3: every option is checked before VERSION, while tor still logs
   * ENV-ERROR text (B3). */
  twp_server_options_init (&options);
  options.orport = g_strdup (env->orport);
  options.ext_orport = g_strdup (env->ext_orport);
  options.auth_cookie_file = g_strdup (env->auth_cookie_file);
  transport_options = g_hash_table_lookup (env->server_options, TRANSPORT_NAME);
  if ((transport_options != NULL && !twp_server_options_apply (&options, transport_options, &error)) ||
      !apply_command_line_server_options (app, &options, &error))
    {
      twp_pt_output_env_error (app->output, error->message);
      twp_server_options_clear (&options);
      return EXIT_FAILURE;
    }
  metrics_address = g_steal_pointer (&options.metrics_address);
  app->server_role = twp_server_new (&options);
  g_signal_connect (app->server_role, "notify::n-connections",
                    G_CALLBACK (server_connections_changed_cb), app);
  if (!start_metrics (app, metrics_address, &error))
    {
      twp_pt_output_env_error (app->output, error->message);
      return EXIT_FAILURE;
    }

  twp_pt_output_version (app->output);
  twp_pt_output_status_version (app->output, PACKAGE_NAME, PACKAGE_VERSION);

  for (char **name = env->transports; *name != NULL; name++)
    {
      g_autoptr(GInetSocketAddress) bound = NULL;
      g_autoptr(GInetAddress) address = NULL;
      TwpBindAddr *bindaddr;

      if (!provides_transport (app, *name))
        continue;
      /* S2: bind exactly what tor asks, port included, to keep the
       * published port stable; 0.0.0.0:0 when it has no preference. */
      bindaddr = twp_pt_env_lookup_bindaddr (env, TRANSPORT_NAME);
      address = g_inet_address_new_from_string (bindaddr != NULL ? bindaddr->address : "0.0.0.0");
      bound = twp_server_listen (app->server_role, address, bindaddr != NULL ? bindaddr->port : 0, &error);
      if (bound == NULL)
        {
          twp_pt_output_smethod_error (app->output, TRANSPORT_NAME, error->message);
          g_clear_error (&error);
          continue;
        }
      twp_pt_output_smethod (app->output, TRANSPORT_NAME, bound, NULL);
      n_methods++;
    }
  twp_pt_output_smethods_done (app->output);
  app->tor_log_sink_id = twp_log_add_sink (tor_log_sink, app);
  warn_if_remote_extorport (env->ext_orport);
  start_heartbeat (app);

  if (n_methods == 0)
    twp_log_user (TWP_LOG_WARNING, "no transport could be started; idle until tor stops us");

  /* After DONE: D-Bus never delays tor. */
  return serve (app, twp_dbus_service_new_for_server (app->server_role, env->state_location),
                env->exit_on_stdin_close);
}

static int
run_server_unmanaged (App *app)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GInetAddress) address = NULL;
  g_autoptr(GInetSocketAddress) bound = NULL;
  g_autoptr(GSocketAddress) metrics_address = NULL;
  TwpServerOptions options;
  guint16 port;

  if (app->orport == NULL && app->extorport == NULL)
    {
      g_printerr ("--server needs --orport or --extorport (with --auth-cookie)\n");
      return EXIT_FAILURE;
    }
  if (app->extorport != NULL && app->auth_cookie == NULL)
    {
      g_printerr ("--extorport needs --auth-cookie\n");
      return EXIT_FAILURE;
    }
  if (!parse_listen (app->listen, "127.0.0.1:8080", &address, &port, &error))
    {
      g_printerr ("--listen: %s\n", error != NULL ? error->message : "not an IP address");
      return EXIT_FAILURE;
    }

  twp_server_options_init (&options);
  options.orport = g_strdup (app->orport);
  options.ext_orport = g_strdup (app->extorport);
  options.auth_cookie_file = g_strdup (app->auth_cookie);
  if (!apply_command_line_server_options (app, &options, &error))
    {
      g_printerr ("%s\n", error->message);
      twp_server_options_clear (&options);
      return EXIT_FAILURE;
    }
  metrics_address = g_steal_pointer (&options.metrics_address);
  app->server_role = twp_server_new (&options);
  g_signal_connect (app->server_role, "notify::n-connections",
                    G_CALLBACK (server_connections_changed_cb), app);
  if (!start_metrics (app, metrics_address, &error))
    {
      g_printerr ("%s\n", error->message);
      return EXIT_FAILURE;
    }

  bound = twp_server_listen (app->server_role, address, port, &error);
  if (bound == NULL)
    {
      g_printerr ("cannot listen: %s\n", error->message);
      return EXIT_FAILURE;
    }
  print_listening (bound);
  start_heartbeat (app);
  return serve (app, twp_dbus_service_new_for_server (app->server_role, NULL), FALSE);
}

/* ---- main -------------------------------------------------------------- */

static void
drain_main_context (void)
{
  gint64 deadline = g_get_monotonic_time () + DRAIN_MS * 1000;

  /* Let cancelled operations return so that everything is freed. */
  while (g_get_monotonic_time () < deadline && g_main_context_iteration (NULL, FALSE))
    ;
}

/* Stops what a run_* function started and lets cancelled operations
 * unwind, so that app_clear() frees everything. */
static void
app_stop (App *app)
{
  if (app->tor_log_sink_id != 0)
    twp_log_remove_sink (app->tor_log_sink_id);
  if (app->dbus != NULL)
    twp_dbus_service_stop (app->dbus);
  if (app->client_role != NULL)
    twp_client_stop (app->client_role);
  if (app->metrics != NULL)
    twp_metrics_endpoint_stop (app->metrics);
  if (app->heartbeat != NULL)
    g_source_destroy (app->heartbeat);
  g_clear_pointer (&app->heartbeat, g_source_unref);
  if (app->server_role != NULL)
    twp_server_stop (app->server_role);
  if (app->stdin_cancellable != NULL)
    g_cancellable_cancel (app->stdin_cancellable);
  drain_main_context ();
}

/* Frees the command line and the state: main()'s g_auto(App). */
static void
app_clear (App *app)
{
  g_clear_object (&app->stdin_stream);
  g_clear_object (&app->stdin_cancellable);
  g_clear_object (&app->dbus);
  g_clear_object (&app->client_role);
  g_clear_object (&app->tls_database);
  g_clear_object (&app->metrics);
  g_clear_object (&app->server_role);
  g_clear_pointer (&app->output, twp_pt_output_free);
  g_clear_pointer (&app->loop, g_main_loop_unref);
  g_free (app->log_level);
  g_free (app->listen);
  g_free (app->url);
  g_free (app->mode);
  g_free (app->sni);
  g_free (app->origin);
  g_free (app->host);
  g_free (app->cert_sha256);
  g_free (app->ca_file);
  g_free (app->proxy);
  g_free (app->orport);
  g_free (app->extorport);
  g_free (app->auth_cookie);
  g_strfreev (app->server_options);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (App, app_clear)

int
main (int    argc,
      char **argv)
{
  g_auto(App) app = { .keepalive = -1, .connect_timeout = 30 };
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  int status;
  const GOptionEntry entries[] = {
    { "client", 0, 0, G_OPTION_ARG_NONE, &app.client, "Run the client side (SOCKS proxy for tor)", NULL },
    { "server", 0, 0, G_OPTION_ARG_NONE, &app.server, "Run the server side (WebSocket server for a bridge)", NULL },
    { "managed", 0, 0, G_OPTION_ARG_NONE, &app.managed, "Run as a managed proxy launched by tor (pt-spec)", NULL },
    { "listen", 0, 0, G_OPTION_ARG_STRING, &app.listen, "Unmanaged: address to listen on (client default 127.0.0.1:1080, server 127.0.0.1:8080)", "ADDR:PORT" },
    { "url", 0, 0, G_OPTION_ARG_STRING, &app.url, "Client, unmanaged: bridge URL for SOCKS requests without arguments", "ws[s]://HOST[:PORT]/PATH" },
    { "mode", 0, 0, G_OPTION_ARG_STRING, &app.mode, "Client: frame mode, binary (default) or base64", "MODE" },
    { "sni", 0, 0, G_OPTION_ARG_STRING, &app.sni, "Client, unmanaged: TLS server name for wss://", "NAME" },
    { "origin", 0, 0, G_OPTION_ARG_STRING, &app.origin, "Client, unmanaged: Origin header to send", "ORIGIN" },
    { "host", 0, 0, G_OPTION_ARG_STRING, &app.host, "Client, unmanaged: Host header to send", "HOST" },
    { "cert-sha256", 0, 0, G_OPTION_ARG_STRING, &app.cert_sha256, "Client, unmanaged: trust only the wss:// certificate with this SHA-256", "HEX" },
    { "ca-file", 0, 0, G_OPTION_ARG_FILENAME, &app.ca_file, "Client: trust the CA certificates in FILE instead of the system's", "FILE" },
    { "proxy", 0, 0, G_OPTION_ARG_STRING, &app.proxy, "Client, unmanaged: upstream proxy, as TOR_PT_PROXY", "URI" },
    { "connect-timeout", 0, 0, G_OPTION_ARG_INT, &app.connect_timeout, "Client: seconds to open a WebSocket (default 30)", "SECONDS" },
    { "orport", 0, 0, G_OPTION_ARG_STRING, &app.orport, "Server, unmanaged: tor's ORPort", "ADDR:PORT" },
    { "extorport", 0, 0, G_OPTION_ARG_STRING, &app.extorport, "Server, unmanaged: tor's Extended ORPort", "ADDR:PORT" },
    { "auth-cookie", 0, 0, G_OPTION_ARG_FILENAME, &app.auth_cookie, "Server, unmanaged: tor's ExtORPort cookie file", "FILE" },
    { "option", 0, 0, G_OPTION_ARG_STRING_ARRAY, &app.server_options, "Server: a transport option (see the manual), repeatable", "KEY=VALUE" },
    { "keepalive", 0, 0, G_OPTION_ARG_INT, &app.keepalive, "Seconds of idleness before a ping (client default 30, server 0 = off)", "SECONDS" },
    { "idle-timeout", 0, 0, G_OPTION_ARG_INT, &app.idle_timeout, "Close tunnels idle this long (default 0 = never)", "SECONDS" },
    { "stall-timeout", 0, 0, G_OPTION_ARG_INT, &app.stall_timeout, "Close tunnels whose reader takes nothing for this long (default 60)", "SECONDS" },
    { "max-message-size", 0, 0, G_OPTION_ARG_INT, &app.max_message_size, "Largest incoming WebSocket message in bytes (default 65536)", "BYTES" },
    { "log-level", 0, 0, G_OPTION_ARG_STRING, &app.log_level, "Lowest severity sent to tor: error, warning, notice (default), info, debug", "LEVEL" },
    { "unsafe-logging", 0, 0, G_OPTION_ARG_NONE, &app.unsafe_logging, "Do not scrub addresses and URLs from logs", NULL },
    { "version", 0, 0, G_OPTION_ARG_NONE, &app.show_version, "Print the version and exit", NULL },
    { NULL }
  };

  /* K5: who started us, taken first thing, so that a tor dying while we
   * start up is noticed too. */
  app.parent_pid = getppid ();
  /* K2: writes to a closed stdout (tor gone) must fail, not kill us. */
  signal (SIGPIPE, SIG_IGN);
  /* stdout belongs to the pt-spec protocol: GLib's debug and info output
   * (G_MESSAGES_DEBUG in tor's environment) must never reach it (G4, G8). */
  g_log_writer_default_set_use_stderr (TRUE);

  context = g_option_context_new ("- the WebSocket pluggable transport for Tor");
  g_option_context_add_main_entries (context, entries, NULL);
  g_option_context_set_description (context,
    "Run by tor:\n"
    "  UseBridges 1\n"
    "  ClientTransportPlugin websocket exec /usr/libexec/tor-websocket-proxy --client --managed\n"
    "  Bridge websocket 192.0.2.3:443 url=wss://bridge.example.net/path\n"
    "  ServerTransportPlugin websocket exec /usr/libexec/tor-websocket-proxy --server --managed\n"
    "\n"
    "Bridge line arguments (client): url=, mode=binary|base64, sni=, cert-sha256=, origin=, host=.\n"
    "See tor-websocket-proxy(1) for every option.");
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("%s\n", error->message);
      return 2;
    }
  if (app.show_version)
    {
      g_print ("%s %s\n", PACKAGE_NAME, PACKAGE_VERSION);
      return EXIT_SUCCESS;
    }
  if (app.client == app.server)
    {
      g_printerr ("Give exactly one of --client or --server (see --help)\n");
      return 2;
    }
  app.log_threshold = TWP_PT_LOG_NOTICE;
  if (app.log_level != NULL && !parse_log_level (app.log_level, &app.log_threshold))
    {
      g_printerr ("--log-level must be error, warning, notice, info or debug\n");
      return 2;
    }
  if (app.keepalive < 0)
    app.keepalive = app.client ? 30 : -1;
  if (app.connect_timeout <= 0 || app.idle_timeout < 0 || app.stall_timeout < 0 || app.max_message_size < 0)
    {
      g_printerr ("timeouts and sizes must be positive\n");
      return 2;
    }

  twp_log_set_unsafe (app.unsafe_logging);
  app.loop = g_main_loop_new (NULL, FALSE);
  if (app.managed)
    app.output = twp_pt_output_new (STDOUT_FILENO);

  if (app.client)
    status = app.managed ? run_client_managed (&app) : run_client_unmanaged (&app);
  else
    status = app.managed ? run_server_managed (&app) : run_server_unmanaged (&app);
  app_stop (&app);
  return status;
}
