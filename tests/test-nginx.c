/* SPDX-License-Identifier: BSD-3-Clause */
/* Suite `nginx`: a real reverse proxy in front of our server.
 *
 * The test starts Debian's nginx as the current user with its own prefix
 * in a temporary directory: TLS termination with a certificate that
 * openssl makes here (a test CA and a leaf for localhost), WebSocket
 * upgrade proxying, X-Forwarded-For, and an upstream of TWO instances of
 * our server (managed mode, trusted-proxy=127.0.0.1), each in front of its
 * own in-test Extended ORPort server that behaves like tor 0.4.9 and
 * records USERADDR. It then checks:
 *  - libsoup WebSocket clients bound to 127.0.0.2 get byte-exact echoes
 *    through nginx, both instances get connections (load balancing), and
 *    tor learns 127.0.0.2 (the header nginx wrote, believed because nginx
 *    is trusted), even when the client forges X-Forwarded-For itself;
 *  - a client at 127.0.0.3 that forges X-Forwarded-For straight at a
 *    server is not believed (127.0.0.1 is the only trusted proxy), while
 *    the same header from 127.0.0.1 is (the control);
 *  - our client binary, run the way tor runs it (managed, SOCKS5 with
 *    url=wss://localhost:<nginx>/ and --ca-file), carries 1 MiB byte-exact
 *    in binary and base64 modes, and refuses the certificate without it.
 *
 * Every process is started from the main thread with PR_SET_PDEATHSIG and
 * a stdin pipe (TOR_PT_EXIT_ON_STDIN_CLOSE), so none outlives a failed
 * assertion; on the normal path each is stopped by SIGTERM with a deadline. */
#define G_LOG_DOMAIN "twp-test-nginx"

#include "config.h"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <libsoup/soup.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "twp-test-extor-server.h"
#include "twp-test-utils.h"

#define STARTUP_TIMEOUT_MS 10000
#define TRANSFER_TIMEOUT_MS 20000
#define STOP_TIMEOUT_MS 5000
#define SOUP_MESSAGES 16
#define SOUP_MESSAGE_SIZE 16384
#define CLIENT_BYTES (1024 * 1024)

/* A process we started: our binary or nginx. */
typedef struct {
  char *name;
  GSubprocess *process;
  GDataInputStream *out;        /* stdout, when piped */
  GCancellable *cancellable;
  GString *log;                 /* stdout after startup, bounded */
  char read_buf[4096];
  gboolean exited;
} Child;

typedef struct {
  char *dir;
  char *ca_file;
  char *nginx_dir;
  TwpTestExtOrServer *extor[2];
  Child *server[2];
  guint16 server_port[2];
  Child *nginx;
  guint16 nginx_port;
} Fixture;

static Fixture fx;

/* ---- processes --------------------------------------------------------- */

static void
child_setup (gpointer user_data)
{
  /* Dies with the test, however the test ends. */
  prctl (PR_SET_PDEATHSIG, SIGKILL);
  if (getppid () == 1)
    _exit (127);
}

static void
child_exited_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  Child *child = user_data;

  g_subprocess_wait_finish (G_SUBPROCESS (source), result, NULL);
  child->exited = TRUE;
}

static Child *
child_spawn (const char         *name,
             const char * const *argv,
             const char * const *env,
             gboolean            pipe_stdout)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GError) error = NULL;
  Child *child = g_new0 (Child, 1);

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE |
                                        (pipe_stdout ? G_SUBPROCESS_FLAGS_STDOUT_PIPE : 0));
  for (guint i = 0; env != NULL && env[i] != NULL; i += 2)
    g_subprocess_launcher_setenv (launcher, env[i], env[i + 1], TRUE);
  g_subprocess_launcher_set_child_setup (launcher, child_setup, NULL, NULL);

  child->name = g_strdup (name);
  child->cancellable = g_cancellable_new ();
  child->log = g_string_new (NULL);
  child->process = g_subprocess_launcher_spawnv (launcher, argv, &error);
  g_assert_no_error (error);
  if (pipe_stdout)
    child->out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (child->process));
  g_subprocess_wait_async (child->process, NULL, child_exited_cb, child);
  g_test_message ("started %s, PID %s", name, g_subprocess_get_identifier (child->process));
  return child;
}

typedef struct {
  char *line;
  gboolean done;
} LineRead;

static void
line_read_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  LineRead *read = user_data;

  read->line = g_data_input_stream_read_line_finish_utf8 (G_DATA_INPUT_STREAM (source), result,
                                                          NULL, NULL);
  read->done = TRUE;
}

/* Managed-mode stdout up to DONE_LINE; fails the test past the deadline. */
static GPtrArray *
child_read_until (Child      *child,
                  const char *done_line)
{
  GPtrArray *lines = g_ptr_array_new_with_free_func (g_free);

  for (;;)
    {
      LineRead read = { NULL, FALSE };

      g_data_input_stream_read_line_async (child->out, G_PRIORITY_DEFAULT, child->cancellable,
                                           line_read_cb, &read);
      if (!TWP_TEST_WAIT_FOR (read.done, STARTUP_TIMEOUT_MS))
        g_error ("timed out after %d ms waiting for \"%s\" from %s", STARTUP_TIMEOUT_MS, done_line,
                 child->name);
      if (read.line == NULL)
        g_error ("%s ended its output before \"%s\"", child->name, done_line);
      g_test_message ("%s: %s", child->name, read.line);
      g_ptr_array_add (lines, read.line);
      if (g_str_equal (read.line, done_line))
        return lines;
    }
}

static void child_drain (Child *child);

static void
drain_cb (GObject      *source,
          GAsyncResult *result,
          gpointer      user_data)
{
  Child *child = user_data;
  gssize n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, NULL);

  if (n <= 0)
    return;
  /* Logs stay readable for a failure message, within a bound. */
  if (child->log->len < 65536)
    g_string_append_len (child->log, child->read_buf, n);
  child_drain (child);
}

/* Keeps reading stdout so that log lines never fill the pipe. */
static void
child_drain (Child *child)
{
  g_input_stream_read_async (G_INPUT_STREAM (child->out), child->read_buf, sizeof child->read_buf,
                             G_PRIORITY_DEFAULT, child->cancellable, drain_cb, child);
}

static void
child_stop (Child *child)
{
  if (child == NULL)
    return;
  if (!child->exited)
    {
      g_subprocess_send_signal (child->process, SIGTERM);
      if (!TWP_TEST_WAIT_FOR (child->exited, STOP_TIMEOUT_MS))
        {
          g_test_message ("%s did not stop on SIGTERM; killing it", child->name);
          g_subprocess_force_exit (child->process);
          TWP_TEST_ASSERT_WAIT (child->exited, STOP_TIMEOUT_MS, "a killed child");
        }
    }
  g_cancellable_cancel (child->cancellable);
  /* Let the cancelled read call back before freeing what it points to. */
  for (int i = 0; i < 10; i++)
    g_main_context_iteration (NULL, FALSE);
  if (child->log->len > 0)
    g_test_message ("%s stdout after startup:\n%s", child->name, child->log->str);
  g_clear_object (&child->out);
  g_clear_object (&child->process);
  g_clear_object (&child->cancellable);
  g_string_free (child->log, TRUE);
  g_free (child->name);
  g_free (child);
}

static void
run_checked (const char * const *argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  int status;

  g_spawn_sync (fx.dir, (char **) argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &out, &err,
                &status, &error);
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, &error))
    g_error ("%s failed: %s\n%s%s", argv[0], error->message, out, err);
}

static gboolean
port_accepts (guint16 port)
{
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GSocketConnection) connection = NULL;

  g_socket_client_set_enable_proxy (client, FALSE);
  g_socket_client_set_timeout (client, 1);
  connection = g_socket_client_connect_to_host (client, "127.0.0.1", port, NULL, NULL);
  return connection != NULL;
}

/* ---- fixture ----------------------------------------------------------- */

static void
make_certificates (void)
{
  const char *ca[] = {
    "openssl", "req", "-x509", "-new", "-nodes", "-newkey", "ec",
    "-pkeyopt", "ec_paramgen_curve:prime256v1", "-keyout", "ca.key", "-out", "ca.pem",
    "-days", "2", "-subj", "/CN=tor-websocket-proxy test CA",
    "-addext", "basicConstraints=critical,CA:TRUE",
    "-addext", "keyUsage=critical,keyCertSign,cRLSign", NULL
  };
  const char *csr[] = {
    "openssl", "req", "-new", "-nodes", "-newkey", "ec",
    "-pkeyopt", "ec_paramgen_curve:prime256v1", "-keyout", "server.key", "-out", "server.csr",
    "-subj", "/CN=localhost", NULL
  };
  const char *sign[] = {
    "openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
    "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext", NULL
  };
  g_autofree char *ext = g_build_filename (fx.dir, "server.ext", NULL);
  g_autoptr(GError) error = NULL;

  g_file_set_contents (ext,
                       "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                       "basicConstraints=critical,CA:FALSE\n"
                       "keyUsage=critical,digitalSignature\n"
                       "extendedKeyUsage=serverAuth\n", -1, &error);
  g_assert_no_error (error);
  run_checked (ca);
  run_checked (csr);
  run_checked (sign);
  fx.ca_file = g_build_filename (fx.dir, "ca.pem", NULL);
}

static void
start_server (guint i)
{
  g_autofree char *state = g_strdup_printf ("%s/server%u-state", fx.dir, i);
  const char *argv[] = { g_getenv ("TWP_BINARY"), "--server", "--managed", NULL };
  const char *env[] = {
    "TOR_PT_MANAGED_TRANSPORT_VER", "1",
    "TOR_PT_SERVER_TRANSPORTS", "websocket",
    "TOR_PT_SERVER_BINDADDR", "websocket-127.0.0.1:0",
    "TOR_PT_EXTENDED_SERVER_PORT", twp_test_extor_server_get_address (fx.extor[i]),
    "TOR_PT_AUTH_COOKIE_FILE", twp_test_extor_server_get_cookie_path (fx.extor[i]),
    "TOR_PT_SERVER_TRANSPORT_OPTIONS", "websocket:trusted-proxy=127.0.0.1",
    "TOR_PT_STATE_LOCATION", state,
    "TOR_PT_EXIT_ON_STDIN_CLOSE", "1",
    NULL
  };
  g_autofree char *name = g_strdup_printf ("server %u", i);
  g_autoptr(GPtrArray) lines = NULL;

  fx.server[i] = child_spawn (name, argv, env, TRUE);
  lines = child_read_until (fx.server[i], "SMETHODS DONE");
  for (guint j = 0; j < lines->len; j++)
    {
      unsigned port;

      if (sscanf (g_ptr_array_index (lines, j), "SMETHOD websocket 127.0.0.1:%u", &port) == 1)
        fx.server_port[i] = port;
    }
  g_assert_cmpuint (fx.server_port[i], >, 0);
  child_drain (fx.server[i]);
}

static void
start_nginx (void)
{
  g_autofree char *conf = NULL;
  g_autofree char *conf_path = NULL;
  g_autofree char *globals = NULL;
  g_autofree char *nginx = NULL;
  g_autoptr(GError) error = NULL;
  const char *argv[10];

  fx.nginx_dir = g_build_filename (fx.dir, "nginx", NULL);
  g_assert_cmpint (g_mkdir_with_parents (fx.nginx_dir, 0700), ==, 0);
  /* nginx cannot report an ephemeral port: it must bind one we name. */
  fx.nginx_port = twp_test_port_for_child ();
  /* Single process: no user switch when run as root, nothing left behind
   * if the test dies (PR_SET_PDEATHSIG reaches the only process). Every
   * path nginx writes is under its own prefix. */
  conf = g_strdup_printf (
    "master_process off;\n"
    "worker_processes 1;\n"
    "events { worker_connections 64; }\n"
    "http {\n"
    "  access_log %1$s/access.log;\n"
    "  client_body_temp_path %1$s/body;\n"
    "  proxy_temp_path %1$s/proxy;\n"
    "  fastcgi_temp_path %1$s/fastcgi;\n"
    "  uwsgi_temp_path %1$s/uwsgi;\n"
    "  scgi_temp_path %1$s/scgi;\n"
    "  upstream twp {\n"
    "    server 127.0.0.1:%2$u;\n"
    "    server 127.0.0.1:%3$u;\n"
    "  }\n"
    "  server {\n"
    "    listen 127.0.0.1:%4$u ssl;\n"
    "    server_name localhost;\n"
    "    ssl_certificate %5$s/server.pem;\n"
    "    ssl_certificate_key %5$s/server.key;\n"
    "    location / {\n"
    "      proxy_pass http://twp;\n"
    "      proxy_http_version 1.1;\n"
    "      proxy_set_header Upgrade $http_upgrade;\n"
    "      proxy_set_header Connection \"upgrade\";\n"
    "      proxy_set_header Host $host;\n"
    "      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
    "      proxy_read_timeout 60s;\n"
    "    }\n"
    "  }\n"
    "}\n",
    fx.nginx_dir, fx.server_port[0], fx.server_port[1], fx.nginx_port, fx.dir);
  conf_path = g_build_filename (fx.nginx_dir, "nginx.conf", NULL);
  g_file_set_contents (conf_path, conf, -1, &error);
  g_assert_no_error (error);
  globals = g_strdup_printf ("daemon off; pid %s/nginx.pid; error_log stderr;", fx.nginx_dir);

  argv[0] = "nginx";
  argv[1] = "-e";            /* not the packaged /var/log/nginx/error.log */
  argv[2] = "stderr";
  argv[3] = "-p";
  argv[4] = fx.nginx_dir;
  argv[5] = "-c";
  argv[6] = conf_path;
  argv[7] = "-g";
  argv[8] = globals;
  argv[9] = NULL;
  /* Debian puts it in /usr/sbin, which a user's PATH may lack. */
  nginx = g_find_program_in_path ("nginx");
  if (nginx == NULL && g_file_test ("/usr/sbin/nginx", G_FILE_TEST_IS_EXECUTABLE))
    argv[0] = "/usr/sbin/nginx";
  fx.nginx = child_spawn ("nginx", argv, NULL, FALSE);
  TWP_TEST_ASSERT_WAIT (fx.nginx->exited || port_accepts (fx.nginx_port), STARTUP_TIMEOUT_MS, "nginx to listen");
  g_assert_false (fx.nginx->exited);
}

static void
fixture_setup (void)
{
  g_autoptr(GError) error = NULL;

  g_assert_nonnull (g_getenv ("TWP_BINARY"));
  fx.dir = g_dir_make_tmp ("twp-test-nginx-XXXXXX", &error);
  g_assert_no_error (error);
  make_certificates ();
  for (guint i = 0; i < 2; i++)
    {
      g_autofree char *dir = g_strdup_printf ("%s/tor%u", fx.dir, i);

      g_assert_cmpint (g_mkdir (dir, 0700), ==, 0);
      fx.extor[i] = twp_test_extor_server_new (dir, TWP_TEST_EXTOR_MODE_ECHO);
      start_server (i);
    }
  start_nginx ();
}

static void
remove_tree (const char *path)
{
  g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *child = g_build_filename (path, name, NULL);

      if (g_file_test (child, G_FILE_TEST_IS_DIR) && !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
        remove_tree (child);
      else
        g_unlink (child);
    }
  g_rmdir (path);
}

static void
fixture_teardown (void)
{
  child_stop (fx.nginx);
  for (guint i = 0; i < 2; i++)
    {
      child_stop (fx.server[i]);
      g_clear_pointer (&fx.extor[i], twp_test_extor_server_free);
    }
  remove_tree (fx.dir);
  g_free (fx.dir);
  g_free (fx.ca_file);
  g_free (fx.nginx_dir);
}

/* ---- libsoup WebSocket client (a third-party implementation) ----------- */

typedef struct {
  SoupWebsocketConnection *ws;
  GError *error;
  gboolean connected;
  GByteArray *received;
  gboolean closed;
} SoupPeer;

static void
soup_connected_cb (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  SoupPeer *peer = user_data;

  peer->ws = soup_session_websocket_connect_finish (SOUP_SESSION (source), result, &peer->error);
  peer->connected = TRUE;
}

static void
soup_message_cb (SoupWebsocketConnection *ws,
                 int                      type,
                 GBytes                  *message,
                 gpointer                 user_data)
{
  SoupPeer *peer = user_data;
  gsize length;
  const guint8 *data = g_bytes_get_data (message, &length);

  g_assert_cmpint (type, ==, SOUP_WEBSOCKET_DATA_BINARY);
  g_byte_array_append (peer->received, data, length);
}

static void
soup_closed_cb (SoupWebsocketConnection *ws,
                gpointer                 user_data)
{
  SoupPeer *peer = user_data;

  peer->closed = TRUE;
}

/* Opens URL from LOCAL_ADDRESS (optionally forging X-Forwarded-For),
 * echoes random bytes byte-exact, closes, and returns USERADDR as tor saw
 * it at whichever ExtORPort server got the connection (its index in
 * *WHICH). */
static char *
soup_echo (const char *url,
           const char *local_address,
           const char *forged_xff,
           guint      *which)
{
  g_autoptr(GInetAddress) address = g_inet_address_new_from_string (local_address);
  g_autoptr(GSocketAddress) local = g_inet_socket_address_new (address, 0);
  g_autoptr(GTlsDatabase) database = NULL;
  /* Straight to loopback: no system proxy settings (libproxy). */
  g_autoptr(GProxyResolver) no_proxy = g_simple_proxy_resolver_new (NULL, NULL);
  g_autoptr(SoupSession) session = NULL;
  g_autoptr(SoupMessage) message = NULL;
  g_autoptr(GByteArray) sent = g_byte_array_new ();
  g_autoptr(GError) error = NULL;
  SoupPeer peer = { 0 };
  guint before[2];
  int changed = -1;

  database = g_tls_file_database_new (fx.ca_file, &error);
  g_assert_no_error (error);
  session = soup_session_new_with_options ("local-address", local, "tls-database", database,
                                           "proxy-resolver", no_proxy, NULL);
  message = soup_message_new (SOUP_METHOD_GET, url);
  if (forged_xff != NULL)
    soup_message_headers_append (soup_message_get_request_headers (message),
                                 "X-Forwarded-For", forged_xff);
  for (guint i = 0; i < 2; i++)
    before[i] = twp_test_extor_server_get_n_connections (fx.extor[i]);

  peer.received = g_byte_array_new ();
  soup_session_websocket_connect_async (session, message, NULL, NULL, G_PRIORITY_DEFAULT, NULL,
                                        soup_connected_cb, &peer);
  TWP_TEST_ASSERT_WAIT (peer.connected, TRANSFER_TIMEOUT_MS, "the libsoup WebSocket to open");
  g_assert_no_error (peer.error);
  g_signal_connect (peer.ws, "message", G_CALLBACK (soup_message_cb), &peer);
  g_signal_connect (peer.ws, "closed", G_CALLBACK (soup_closed_cb), &peer);

  for (guint i = 0; i < SOUP_MESSAGES; i++)
    {
      guint8 chunk[SOUP_MESSAGE_SIZE];

      for (guint j = 0; j < sizeof chunk; j += 4)
        {
          guint32 r = g_random_int ();

          memcpy (chunk + j, &r, 4);
        }
      g_byte_array_append (sent, chunk, sizeof chunk);
      soup_websocket_connection_send_binary (peer.ws, chunk, sizeof chunk);
    }
  TWP_TEST_ASSERT_WAIT (peer.received->len >= sent->len || peer.closed, TRANSFER_TIMEOUT_MS,
              "the echo through the WebSocket");
  g_assert_cmpuint (peer.received->len, ==, sent->len);
  g_assert_cmpmem (peer.received->data, peer.received->len, sent->data, sent->len);

  soup_websocket_connection_close (peer.ws, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
  TWP_TEST_ASSERT_WAIT (peer.closed, TRANSFER_TIMEOUT_MS, "the WebSocket to close");
  g_clear_object (&peer.ws);
  g_byte_array_unref (peer.received);

  for (guint i = 0; i < 2; i++)
    if (twp_test_extor_server_get_n_connections (fx.extor[i]) != before[i])
      {
        g_assert_cmpint (changed, ==, -1);
        g_assert_cmpuint (twp_test_extor_server_get_n_connections (fx.extor[i]), ==, before[i] + 1);
        changed = i;
      }
  g_assert_cmpint (changed, >=, 0);
  *which = changed;
  g_assert_cmpstr (twp_test_extor_server_get_last_transport (fx.extor[changed]), ==, "websocket");
  g_assert_cmpint (twp_test_extor_server_get_last_result (fx.extor[changed]), ==,
                   TWP_TEST_EXTOR_RESULT_OKAY);
  return g_strdup (twp_test_extor_server_get_last_useraddr (fx.extor[changed]));
}

/* Tries to open URL from LOCAL_ADDRESS with X-Forwarded-For: FORGED_XFF
 * and returns the HTTP status the upgrade was answered with (101 only if a
 * WebSocket opened, which is then closed). */
static guint
soup_upgrade_status (const char *url,
                     const char *local_address,
                     const char *forged_xff)
{
  g_autoptr(GInetAddress) address = g_inet_address_new_from_string (local_address);
  g_autoptr(GSocketAddress) local = g_inet_socket_address_new (address, 0);
  g_autoptr(GTlsDatabase) database = NULL;
  g_autoptr(GProxyResolver) no_proxy = g_simple_proxy_resolver_new (NULL, NULL);
  g_autoptr(SoupSession) session = NULL;
  g_autoptr(SoupMessage) message = NULL;
  g_autoptr(GError) error = NULL;
  SoupPeer peer = { 0 };
  guint status;

  database = g_tls_file_database_new (fx.ca_file, &error);
  g_assert_no_error (error);
  session = soup_session_new_with_options ("local-address", local, "tls-database", database,
                                           "proxy-resolver", no_proxy, NULL);
  message = soup_message_new (SOUP_METHOD_GET, url);
  soup_message_headers_append (soup_message_get_request_headers (message), "X-Forwarded-For", forged_xff);
  soup_session_websocket_connect_async (session, message, NULL, NULL, G_PRIORITY_DEFAULT, NULL,
                                        soup_connected_cb, &peer);
  TWP_TEST_ASSERT_WAIT (peer.connected, TRANSFER_TIMEOUT_MS, "the upgrade to be answered");
  status = soup_message_get_status (message);
  if (peer.ws != NULL)
    {
      g_signal_connect (peer.ws, "closed", G_CALLBACK (soup_closed_cb), &peer);
      soup_websocket_connection_close (peer.ws, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
      TWP_TEST_ASSERT_WAIT (peer.closed, TRANSFER_TIMEOUT_MS, "the WebSocket to close");
      g_clear_object (&peer.ws);
    }
  g_clear_error (&peer.error);
  return status;
}

static void
assert_useraddr_host (const char *useraddr,
                      const char *host)
{
  g_autofree char *prefix = g_strdup_printf ("%s:", host);
  guint64 port;

  g_assert_nonnull (useraddr);
  g_test_message ("USERADDR %s", useraddr);
  g_assert_true (g_str_has_prefix (useraddr, prefix));
  g_assert_true (g_ascii_string_to_unsigned (useraddr + strlen (prefix), 10, 1, 65535, &port, NULL));
}

static char *
nginx_url (void)
{
  return g_strdup_printf ("wss://localhost:%u/", fx.nginx_port);
}

/* Upgrades (status 101) in nginx's own access log. */
static guint
count_logged_upgrades (void)
{
  g_autofree char *path = g_build_filename (fx.nginx_dir, "access.log", NULL);
  g_autofree char *log = NULL;
  guint upgrades = 0;

  if (!g_file_get_contents (path, &log, NULL, NULL))
    return 0;
  for (const char *line = log; (line = strstr (line, "\" 101 ")) != NULL; line++)
    upgrades++;
  return upgrades;
}

static void
test_load_balanced_tls_upgrade (void)
{
  g_autofree char *url = nginx_url ();
  guint hits[2] = { 0, 0 };

  for (guint i = 0; i < 4; i++)
    {
      g_autofree char *useraddr = NULL;
      guint which;

      useraddr = soup_echo (url, "127.0.0.2", NULL, &which);
      /* tor learns the client's address from nginx's X-Forwarded-For. */
      assert_useraddr_host (useraddr, "127.0.0.2");
      hits[which]++;
    }
  g_test_message ("instance 0 got %u, instance 1 got %u", hits[0], hits[1]);
  g_assert_cmpuint (hits[0], >=, 1);
  g_assert_cmpuint (hits[1], >=, 1);

  /* nginx itself proxied these as upgrades (it logs when each ends). */
  TWP_TEST_ASSERT_WAIT (count_logged_upgrades () >= 4, STOP_TIMEOUT_MS, "4 upgrades in nginx's access log");
}

static void
test_forged_header_through_nginx (void)
{
  g_autofree char *url = nginx_url ();
  g_autofree char *useraddr = NULL;
  guint which;

  /* nginx appends the real peer; only that last element counts. */
  useraddr = soup_echo (url, "127.0.0.2", "6.6.6.6", &which);
  assert_useraddr_host (useraddr, "127.0.0.2");
}

/* Issue 11: a client ends its own X-Forwarded-For in an open quote; nginx
 * appends the real address to it ("x, 127.0.0.2), which no longer parses.
 * The server must not fall back to the socket peer (nginx on loopback:
 * exempt from max-connections-per-ip, and tor would log 127.0.0.1): it
 * refuses the upgrade, and tor hears nothing. Then the same client without
 * the trick is served as itself. */
static void
test_forged_open_quote_through_nginx (void)
{
  g_autofree char *url = nginx_url ();
  g_autofree char *useraddr = NULL;
  const char *tricks[] = { "\"x", "203.0.113.9, \"", "0.0.0.0, \"" };
  guint before[2];
  guint which;

  for (guint i = 0; i < 2; i++)
    before[i] = twp_test_extor_server_get_n_connections (fx.extor[i]);
  for (guint i = 0; i < G_N_ELEMENTS (tricks); i++)
    {
      g_test_message ("X-Forwarded-For: %s", tricks[i]);
      g_assert_cmpuint (soup_upgrade_status (url, "127.0.0.2", tricks[i]), ==, 400);
    }
  for (guint i = 0; i < 2; i++)
    g_assert_cmpuint (twp_test_extor_server_get_n_connections (fx.extor[i]), ==, before[i]);

  useraddr = soup_echo (url, "127.0.0.2", "203.0.113.9", &which);
  assert_useraddr_host (useraddr, "127.0.0.2");
}

static void
test_forged_header_direct_untrusted (void)
{
  g_autofree char *url = g_strdup_printf ("ws://127.0.0.1:%u/", fx.server_port[0]);
  g_autofree char *useraddr = NULL;
  guint which;

  useraddr = soup_echo (url, "127.0.0.3", "6.6.6.6", &which);
  g_assert_cmpuint (which, ==, 0);
  assert_useraddr_host (useraddr, "127.0.0.3");
}

static void
test_header_direct_trusted_control (void)
{
  g_autofree char *url = g_strdup_printf ("ws://127.0.0.1:%u/", fx.server_port[1]);
  g_autofree char *useraddr = NULL;
  guint which;

  /* The control for the test above: from 127.0.0.1 the header counts. */
  useraddr = soup_echo (url, "127.0.0.1", "6.6.6.6", &which);
  g_assert_cmpuint (which, ==, 1);
  assert_useraddr_host (useraddr, "6.6.6.6");
}

/* ---- our client binary, as tor runs it -------------------------------- */

typedef struct {
  guint16 socks_port;
  char *args;
  GBytes *data;
  GByteArray *received;
  guint8 socks_reply;           /* REP of the SOCKS5 reply; 0xff: none came */
  char *error;                  /* first failure, NULL if none */
  GOutputStream *out;
  int done;                     /* atomic */
} SocksJob;

static gpointer
socks_writer_thread (gpointer user_data)
{
  SocksJob *job = user_data;
  gsize length;
  const guint8 *data = g_bytes_get_data (job->data, &length);
  g_autoptr(GError) error = NULL;

  for (gsize offset = 0; offset < length && error == NULL; offset += 16384)
    g_output_stream_write_all (job->out, data + offset, MIN (16384, length - offset), NULL, NULL, &error);
  return error != NULL ? g_strdup (error->message) : NULL;
}

static gboolean
read_exact (GInputStream  *in,
            guint8        *buf,
            gsize          length,
            GError       **error)
{
  gsize got = 0;

  if (!g_input_stream_read_all (in, buf, length, &got, NULL, error))
    return FALSE;
  if (got != length)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED, "EOF after %zu of %zu bytes", got, length);
      return FALSE;
    }
  return TRUE;
}

/* SOCKS5 with the bridge arguments in USERNAME/PASSWORD (tor's way), then
 * the data both ways at once. Blocking I/O with a socket timeout, in a
 * thread, while the main thread runs the ExtORPort servers. */
static gpointer
socks_job_thread (gpointer user_data)
{
  SocksJob *job = user_data;
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GSocketConnection) connection = NULL;
  g_autoptr(GError) error = NULL;
  GInputStream *in;
  GByteArray *request = g_byte_array_new ();
  gsize args_len = strlen (job->args);
  gsize user_len = MIN (args_len, 255);
  guint8 reply[10];
  guint8 buf[16384];
  GThread *writer = NULL;
  char *writer_error;

  g_socket_client_set_enable_proxy (client, FALSE);
  g_socket_client_set_timeout (client, 20);
  connection = g_socket_client_connect_to_host (client, "127.0.0.1", job->socks_port, NULL, &error);
  if (connection == NULL)
    goto out;
  in = g_io_stream_get_input_stream (G_IO_STREAM (connection));
  job->out = g_io_stream_get_output_stream (G_IO_STREAM (connection));

  g_byte_array_append (request, (const guint8 *) "\x05\x02\x00\x02", 4);
  if (!g_output_stream_write_all (job->out, request->data, request->len, NULL, NULL, &error) ||
      !read_exact (in, reply, 2, &error))
    goto out;
  if (reply[1] != 0x02)
    {
      g_set_error (&error, G_IO_ERROR, G_IO_ERROR_FAILED, "SOCKS method %u, not 2", reply[1]);
      goto out;
    }
  g_byte_array_set_size (request, 0);
  g_byte_array_append (request, (const guint8 *) "\x01", 1);
  g_byte_array_append (request, (const guint8 *) &(guint8) { user_len }, 1);
  g_byte_array_append (request, (const guint8 *) job->args, user_len);
  if (args_len > 255)
    {
      g_byte_array_append (request, (const guint8 *) &(guint8) { args_len - 255 }, 1);
      g_byte_array_append (request, (const guint8 *) job->args + 255, args_len - 255);
    }
  else
    g_byte_array_append (request, (const guint8 *) "\x01\x00", 2);
  /* CONNECT 127.0.0.1:<nginx>, the bridge address of the Bridge line. */
  g_byte_array_append (request, (const guint8 *) "\x05\x01\x00\x01\x7f\x00\x00\x01", 8);
  g_byte_array_append (request, (const guint8 *) &(guint8) { fx.nginx_port >> 8 }, 1);
  g_byte_array_append (request, (const guint8 *) &(guint8) { fx.nginx_port & 0xff }, 1);
  if (!g_output_stream_write_all (job->out, request->data, request->len, NULL, NULL, &error) ||
      !read_exact (in, reply, 2, &error))
    goto out;
  if (reply[1] != 0x00)
    {
      g_set_error (&error, G_IO_ERROR, G_IO_ERROR_FAILED, "SOCKS auth status %u", reply[1]);
      goto out;
    }
  if (!read_exact (in, reply, 10, &error))
    goto out;
  job->socks_reply = reply[1];
  if (reply[1] != 0x00)
    goto out;

  writer = g_thread_new ("socks-writer", socks_writer_thread, job);
  while (job->received->len < g_bytes_get_size (job->data))
    {
      gssize n = g_input_stream_read (in, buf, sizeof buf, NULL, &error);

      if (n <= 0)
        {
          if (n == 0)
            g_set_error (&error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED, "EOF after %u bytes",
                         job->received->len);
          break;
        }
      g_byte_array_append (job->received, buf, n);
    }
  writer_error = g_thread_join (writer);
  if (writer_error != NULL && error == NULL)
    g_set_error (&error, G_IO_ERROR, G_IO_ERROR_FAILED, "writing: %s", writer_error);
  g_free (writer_error);

out:
  if (error != NULL)
    job->error = g_strdup (error->message);
  if (connection != NULL)
    g_io_stream_close (G_IO_STREAM (connection), NULL, NULL);
  g_byte_array_unref (request);
  g_atomic_int_set (&job->done, 1);
  return NULL;
}

static Child *
start_client (gboolean with_ca_file,
              guint16 *socks_port)
{
  g_autofree char *state = g_build_filename (fx.dir, "client-state", NULL);
  g_autofree char *ca_option = g_strdup_printf ("--ca-file=%s", fx.ca_file);
  const char *argv[] = { g_getenv ("TWP_BINARY"), "--client", "--managed",
                         with_ca_file ? ca_option : NULL, NULL };
  const char *env[] = {
    "TOR_PT_MANAGED_TRANSPORT_VER", "1",
    "TOR_PT_CLIENT_TRANSPORTS", "websocket",
    "TOR_PT_STATE_LOCATION", state,
    "TOR_PT_EXIT_ON_STDIN_CLOSE", "1",
    NULL
  };
  g_autoptr(GPtrArray) lines = NULL;
  Child *child;

  child = child_spawn ("client", argv, env, TRUE);
  lines = child_read_until (child, "CMETHODS DONE");
  *socks_port = 0;
  for (guint j = 0; j < lines->len; j++)
    {
      unsigned port;

      if (sscanf (g_ptr_array_index (lines, j), "CMETHOD websocket socks5 127.0.0.1:%u", &port) == 1)
        *socks_port = port;
    }
  g_assert_cmpuint (*socks_port, >, 0);
  child_drain (child);
  return child;
}

static void
run_socks_job (SocksJob *job)
{
  GThread *thread = g_thread_new ("socks-job", socks_job_thread, job);

  TWP_TEST_ASSERT_WAIT (g_atomic_int_get (&job->done), TRANSFER_TIMEOUT_MS + 5000, "the SOCKS transfer");
  g_thread_join (thread);
}

static void
client_binary_echo (const char *mode)
{
  guint8 *data = g_malloc (CLIENT_BYTES);
  SocksJob job = { 0 };
  Child *client;
  guint before[2];
  int changed = -1;

  client = start_client (TRUE, &job.socks_port);
  for (guint i = 0; i < CLIENT_BYTES; i++)
    data[i] = g_random_int () & 0xff;
  for (guint i = 0; i < 2; i++)
    before[i] = twp_test_extor_server_get_n_connections (fx.extor[i]);

  job.args = g_strdup_printf ("url=wss://localhost:%u/;mode=%s", fx.nginx_port, mode);
  job.data = g_bytes_new_take (data, CLIENT_BYTES);
  job.received = g_byte_array_new ();
  job.socks_reply = 0xff;
  run_socks_job (&job);
  g_assert_cmpstr (job.error, ==, NULL);
  g_assert_cmpuint (job.socks_reply, ==, 0);
  g_assert_cmpmem (job.received->data, job.received->len,
                   g_bytes_get_data (job.data, NULL), g_bytes_get_size (job.data));

  for (guint i = 0; i < 2; i++)
    if (twp_test_extor_server_get_n_connections (fx.extor[i]) != before[i])
      changed = i;
  g_assert_cmpint (changed, >=, 0);
  {
    g_autoptr(GBytes) payload = twp_test_extor_server_get_last_payload (fx.extor[changed]);

    /* What reached tor is exactly what the SOCKS client sent. */
    g_assert_true (g_bytes_equal (payload, job.data));
  }
  /* C3: our client does not bind loopback destinations, and nginx says
   * where the connection came from: 127.0.0.1. */
  assert_useraddr_host (twp_test_extor_server_get_last_useraddr (fx.extor[changed]), "127.0.0.1");

  child_stop (client);
  g_free (job.args);
  g_free (job.error);
  g_bytes_unref (job.data);
  g_byte_array_unref (job.received);
}

static void
test_client_binary_binary (void)
{
  client_binary_echo ("binary");
}

static void
test_client_binary_base64 (void)
{
  client_binary_echo ("base64");
}

static void
test_client_binary_needs_ca (void)
{
  SocksJob job = { 0 };
  Child *client;
  guint before[2];

  /* Without --ca-file the test CA is unknown: no tunnel, and tor's side
   * never sees a connection. */
  client = start_client (FALSE, &job.socks_port);
  for (guint i = 0; i < 2; i++)
    before[i] = twp_test_extor_server_get_n_connections (fx.extor[i]);
  job.args = g_strdup_printf ("url=wss://localhost:%u/", fx.nginx_port);
  job.data = g_bytes_new_static ("x", 1);
  job.received = g_byte_array_new ();
  job.socks_reply = 0xff;
  run_socks_job (&job);
  g_test_message ("without --ca-file: SOCKS reply %u, %s", job.socks_reply,
                  job.error != NULL ? job.error : "no error");
  g_assert_cmpuint (job.socks_reply, !=, 0);
  g_assert_cmpuint (job.received->len, ==, 0);
  for (guint i = 0; i < 2; i++)
    g_assert_cmpuint (twp_test_extor_server_get_n_connections (fx.extor[i]), ==, before[i]);

  child_stop (client);
  g_free (job.args);
  g_free (job.error);
  g_bytes_unref (job.data);
  g_byte_array_unref (job.received);
}

int
main (int    argc,
      char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/nginx/tls-upgrade-load-balanced", test_load_balanced_tls_upgrade);
  g_test_add_func ("/nginx/forged-header-through-nginx", test_forged_header_through_nginx);
  g_test_add_func ("/nginx/forged-open-quote-through-nginx", test_forged_open_quote_through_nginx);
  g_test_add_func ("/nginx/forged-header-direct-untrusted", test_forged_header_direct_untrusted);
  g_test_add_func ("/nginx/header-direct-trusted-control", test_header_direct_trusted_control);
  g_test_add_func ("/nginx/client-binary/binary", test_client_binary_binary);
  g_test_add_func ("/nginx/client-binary/base64", test_client_binary_base64);
  g_test_add_func ("/nginx/client-binary/needs-ca-file", test_client_binary_needs_ca);

  fixture_setup ();
  status = g_test_run ();
  fixture_teardown ();
  return status;
}
