/* SPDX-License-Identifier: BSD-3-Clause */
/* The status app end to end, on the private session bus of
 * dbus-run-session and an Xvfb display: the real client transport
 * ($TWP_BINARY, managed as tor runs it) publishes itself; the app's window,
 * run in this process, must show it live.
 *
 * Peers, all on 127.0.0.1:0: an echo "ORPort"; the real server binary
 * (unmanaged, kept off the bus) in front of it; and a responder that
 * answers every upgrade with HTTP 403 and records the request, so the test
 * sees which subprotocol the client asked for.
 *
 * One test, in order: the transport appears; a tunnel through the real
 * server shows the bridge as Connected; a bridge whose server refuses shows
 * the reason and a next step, on screen and in the accessible description;
 * Test reports it inline; the switch sets FrameMode over D-Bus and the next
 * handshake asks for base64; a script's change moves the switch back; the
 * transport stops and the empty state returns. Screenshots (PNG) of each
 * state go to $TWP_SCREENSHOT_DIR. */
#define G_LOG_DOMAIN "twp-test-applet-e2e"

#include "config.h"

#include <adwaita.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <sys/prctl.h>
#include <string.h>

#include "twp-bridge-row-private.h"
#include "twp-events-dialog-private.h"
#include "twp-monitor.h"
#include "twp-transport-group.h"
#include "twp-window.h"
#include "twp-test-utils.h"


/* ---- peers ------------------------------------------------------------- */

static gboolean
echo_incoming_cb (GSocketService    *service,
                  GSocketConnection *connection,
                  GObject           *source,
                  gpointer           user_data)
{
  /* The splice holds both streams until either end closes. */
  g_output_stream_splice_async (g_io_stream_get_output_stream (G_IO_STREAM (connection)),
                                g_io_stream_get_input_stream (G_IO_STREAM (connection)),
                                G_OUTPUT_STREAM_SPLICE_CLOSE_SOURCE | G_OUTPUT_STREAM_SPLICE_CLOSE_TARGET,
                                G_PRIORITY_DEFAULT, NULL, NULL, NULL);
  g_object_set_data_full (G_OBJECT (service), "last", g_object_ref (connection), g_object_unref);
  return TRUE;
}

typedef struct
{
  GSocketConnection *connection;
  GString *request;
  GPtrArray *requests;          /* borrowed from the responder */
  guint8 buffer[1024];
} RefuseJob;

static void refuse_read_cb (GObject *source, GAsyncResult *result, gpointer user_data);

static void
refuse_job_free (RefuseJob *job)
{
  g_object_unref (job->connection);
  g_string_free (job->request, TRUE);
  g_free (job);
}

static void
refuse_read_cb (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  RefuseJob *job = user_data;
  gssize n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, NULL);
  static const char response[] = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

  if (n <= 0)
    {
      refuse_job_free (job);
      return;
    }
  g_string_append_len (job->request, (const char *) job->buffer, n);
  /* Bounded: a request larger than 16 KiB is not an upgrade. */
  if (strstr (job->request->str, "\r\n\r\n") == NULL && job->request->len < 16384)
    {
      g_input_stream_read_async (G_INPUT_STREAM (source), job->buffer, sizeof job->buffer, G_PRIORITY_DEFAULT,
                                 NULL, refuse_read_cb, job);
      return;
    }
  g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (job->connection)),
                             response, strlen (response), NULL, NULL, NULL);
  g_io_stream_close (G_IO_STREAM (job->connection), NULL, NULL);
  g_ptr_array_add (job->requests, g_ascii_strdown (job->request->str, -1));
  refuse_job_free (job);
}

static gboolean
refuse_incoming_cb (GSocketService    *service,
                    GSocketConnection *connection,
                    GObject           *source,
                    gpointer           user_data)
{
  RefuseJob *job = g_new0 (RefuseJob, 1);

  job->connection = g_object_ref (connection);
  job->request = g_string_new (NULL);
  job->requests = user_data;
  g_input_stream_read_async (g_io_stream_get_input_stream (G_IO_STREAM (connection)), job->buffer,
                             sizeof job->buffer, G_PRIORITY_DEFAULT, NULL, refuse_read_cb, job);
  return TRUE;
}

/* ---- processes --------------------------------------------------------- */

typedef struct
{
  GSubprocess *process;
  GDataInputStream *out;
  GPtrArray *lines;
  gboolean eof;
  gboolean exited;
} Child;

static void
child_line_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  Child *child = user_data;
  char *line = g_data_input_stream_read_line_finish_utf8 (G_DATA_INPUT_STREAM (source), result, NULL, NULL);

  if (line == NULL)
    {
      child->eof = TRUE;
      return;
    }
  g_ptr_array_add (child->lines, line);
  /* Keep draining: the transport logs to stdout in managed mode. */
  g_data_input_stream_read_line_async (child->out, G_PRIORITY_DEFAULT, NULL, child_line_cb, child);
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

/* A child must not outlive a failed test: meson would wait for its
 * inherited stderr until the timeout. */
static void
die_with_parent (gpointer user_data)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

static Child *
child_spawn (const char * const *argv,
             char              **env,
             GSubprocessFlags    flags)
{
  g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (flags | G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  g_autoptr(GError) error = NULL;
  Child *child = g_new0 (Child, 1);

  g_subprocess_launcher_set_environ (launcher, env);
  g_subprocess_launcher_set_child_setup (launcher, die_with_parent, NULL, NULL);
  child->process = g_subprocess_launcher_spawnv (launcher, argv, &error);
  g_assert_no_error (error);
  child->lines = g_ptr_array_new_with_free_func (g_free);
  child->out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (child->process));
  g_data_input_stream_read_line_async (child->out, G_PRIORITY_DEFAULT, NULL, child_line_cb, child);
  g_subprocess_wait_async (child->process, NULL, child_exited_cb, child);
  return child;
}

/* The port after @prefix in a line of @child's stdout, 0 if none yet. */
static guint16
child_port (Child      *child,
            const char *prefix)
{
  for (guint i = 0; i < child->lines->len; i++)
    {
      const char *line = g_ptr_array_index (child->lines, i);

      if (g_str_has_prefix (line, prefix))
        return (guint16) g_ascii_strtoull (line + strlen (prefix), NULL, 10);
    }
  return 0;
}

static void
child_free (Child *child)
{
  if (!child->exited)
    g_subprocess_force_exit (child->process);
  TWP_TEST_ASSERT_WAIT (child->exited && child->eof, 10000, "a child to exit");
  g_object_unref (child->out);
  g_object_unref (child->process);
  g_ptr_array_unref (child->lines);
  g_free (child);
}

/* ---- SOCKS5 as tor speaks it (pt-spec: arguments in RFC 1929 fields) --- */

typedef struct
{
  guint16 port;
  const char *args;
  guint8 target[4];
  int rep;                      /* -1 until the reply */
  GSocketConnection *connection;
  int done;
} SocksJob;

static gboolean
io_all (GSocketConnection *connection,
        const void        *out,
        gsize              out_len,
        void              *in,
        gsize              in_len)
{
  if (out_len > 0 &&
      !g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (connection)), out, out_len,
                                  NULL, NULL, NULL))
    return FALSE;
  return in_len == 0 ||
         g_input_stream_read_all (g_io_stream_get_input_stream (G_IO_STREAM (connection)), in, in_len,
                                  NULL, NULL, NULL);
}

static gpointer
socks_thread (gpointer user_data)
{
  SocksJob *job = user_data;
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GSocketConnection) connection = NULL;
  static const guint8 greeting[] = { 0x05, 0x01, 0x02 };
  guint8 answer[2];
  guint8 reply[10];
  guint8 request[10] = { 0x05, 0x01, 0x00, 0x01, 0, 0, 0, 0, 0, 9 };
  g_autoptr(GByteArray) auth = g_byte_array_new ();
  guint8 byte;

  connection = g_socket_client_connect_to_host (client, "127.0.0.1", job->port, NULL, NULL);
  memcpy (request + 4, job->target, 4);
  byte = 0x01;
  g_byte_array_append (auth, &byte, 1);
  byte = (guint8) strlen (job->args);
  g_byte_array_append (auth, &byte, 1);
  g_byte_array_append (auth, (const guint8 *) job->args, strlen (job->args));
  byte = 0x01;
  g_byte_array_append (auth, &byte, 1);
  byte = 0x00;
  g_byte_array_append (auth, &byte, 1);
  if (connection != NULL &&
      io_all (connection, greeting, sizeof greeting, answer, 2) && answer[1] == 0x02 &&
      io_all (connection, auth->data, auth->len, answer, 2) && answer[1] == 0x00 &&
      io_all (connection, request, sizeof request, reply, sizeof reply))
    {
      job->rep = reply[1];
      if (job->rep == 0)
        job->connection = g_steal_pointer (&connection);
    }
  g_atomic_int_set (&job->done, 1);
  g_main_context_wakeup (NULL);
  return NULL;
}

/* Opens a tunnel to the bridge @args names; returns it on REP 00, else
 * NULL with *rep set. The main context keeps serving the peers meanwhile. */
static GSocketConnection *
socks_open (guint16     port,
            const char *args,
            guint8      target_last_octet,
            int        *rep)
{
  SocksJob job = { .port = port, .args = args, .target = { 192, 0, 2, target_last_octet }, .rep = -1 };
  GThread *thread = g_thread_new ("socks", socks_thread, &job);

  TWP_TEST_ASSERT_WAIT (g_atomic_int_get (&job.done), 20000, "the SOCKS reply");
  g_thread_join (thread);
  *rep = job.rep;
  return job.connection;
}

/* ---- the window -------------------------------------------------------- */

static void
save_screenshot (GtkWidget  *window,
                 const char *name)
{
  const char *dir = g_getenv ("TWP_SCREENSHOT_DIR");
  g_autofree char *path = NULL;
  g_autoptr(GdkPaintable) paintable = NULL;
  g_autoptr(GtkSnapshot) snapshot = NULL;
  g_autoptr(GskRenderNode) node = NULL;
  g_autoptr(GdkTexture) texture = NULL;
  int width;
  int height;

  /* Let layout settle and the new state draw. */
  gtk_test_widget_wait_for_draw (window);
  width = gtk_widget_get_width (window);
  height = gtk_widget_get_height (window);
  paintable = gtk_widget_paintable_new (window);
  snapshot = gtk_snapshot_new ();
  gdk_paintable_snapshot (paintable, GDK_SNAPSHOT (snapshot), width, height);
  node = gtk_snapshot_free_to_node (g_steal_pointer (&snapshot));
  g_assert_nonnull (node);
  texture = gsk_renderer_render_texture (gtk_native_get_renderer (GTK_NATIVE (window)), node,
                                         &GRAPHENE_RECT_INIT (0, 0, width, height));
  path = g_build_filename (dir != NULL ? dir : ".", name, NULL);
  g_assert_true (gdk_texture_save_to_png (texture, path));
  g_test_message ("screenshot: %s", path);
}

static void
store_result_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  GAsyncResult **out = user_data;

  *out = g_object_ref (result);
}

/* Copies the diagnostics through the dialog's button and returns what
 * landed on the clipboard. */
static char *
copy_diagnostics (TwpEventsDialog *dialog,
                  gboolean         unredacted)
{
  GdkClipboard *clipboard = gtk_widget_get_clipboard (GTK_WIDGET (dialog));
  guint copied = twp_events_dialog_get_n_copied (dialog);
  g_autoptr(GAsyncResult) result = NULL;

  gtk_switch_set_active (twp_events_dialog_get_unredacted_switch (dialog), unredacted);
  gtk_widget_activate (GTK_WIDGET (twp_events_dialog_get_copy_button (dialog)));
  TWP_TEST_ASSERT_WAIT (twp_events_dialog_get_n_copied (dialog) > copied, 10000, "the diagnostics");
  gdk_clipboard_read_text_async (clipboard, NULL, store_result_cb, &result);
  TWP_TEST_ASSERT_WAIT (result != NULL, 5000, "the clipboard");
  return gdk_clipboard_read_text_finish (clipboard, result, NULL);
}

static TwpBridgeRow *
bridge_row (TwpWindow   *window,
            TwpInstance *instance,
            int          index)
{
  GtkWidget *group = twp_window_get_group (window, instance);
  GtkListBoxRow *row;

  if (group == NULL)
    return NULL;
  row = gtk_list_box_get_row_at_index (twp_transport_group_get_bridge_list (TWP_TRANSPORT_GROUP (group)), index);
  return row != NULL && TWP_IS_BRIDGE_ROW (row) ? TWP_BRIDGE_ROW (row) : NULL;
}

static gboolean
row_description_has (TwpBridgeRow *row,
                     const char   *text)
{
  return row != NULL && twp_bridge_row_get_accessible_description (row) != NULL &&
         strstr (twp_bridge_row_get_accessible_description (row), text) != NULL;
}

static char *
get_frame_mode_over_dbus (GDBusConnection *bus,
                          const char      *name)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GVariant) value = NULL;

  reply = g_dbus_connection_call_sync (bus, name, "/io/github/TorWebSocketProxy1/Transport",
                                       "org.freedesktop.DBus.Properties", "Get",
                                       g_variant_new ("(ss)", "io.github.TorWebSocketProxy1.Transport", "FrameMode"),
                                       G_VARIANT_TYPE ("(v)"), G_DBUS_CALL_FLAGS_NONE, 5000, NULL, &error);
  g_assert_no_error (error);
  g_variant_get (reply, "(v)", &value);
  return g_variant_dup_string (value, NULL);
}

static gboolean
any_request_has (GPtrArray  *requests,
                 guint       from,
                 const char *text)
{
  for (guint i = from; i < requests->len; i++)
    if (strstr (g_ptr_array_index (requests, i), text) != NULL)
      return TRUE;
  return FALSE;
}

static void
test_end_to_end (void)
{
  const char *binary = g_getenv ("TWP_BINARY");
  g_autoptr(GError) error = NULL;
  g_autofree char *tmpdir = g_dir_make_tmp ("twp-applet-XXXXXX", &error);
  g_autofree char *no_bus = NULL;
  g_autofree char *state_dir = NULL;
  g_autofree char *echo_arg = NULL;
  g_autofree char *good_args = NULL;
  g_autofree char *refuse_args = NULL;
  g_autofree char *mode = NULL;
  g_autoptr(GSocketService) echo = g_socket_service_new ();
  g_autoptr(GSocketService) refuse = g_socket_service_new ();
  g_autoptr(GPtrArray) requests = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GDBusConnection) bus = NULL;
  g_autoptr(TwpMonitor) monitor = NULL;
  g_autoptr(TwpInstance) instance = NULL;
  g_autoptr(GSocketConnection) tunnel = NULL;
  g_auto(GStrv) server_env = NULL;
  g_auto(GStrv) client_env = NULL;
  const char *server_argv[] = { binary, "--server", "--listen", "127.0.0.1:0", "--orport", NULL, NULL };
  const char *client_argv[] = { binary, "--client", "--managed", NULL };
  Child *server;
  Child *client;
  TwpWindow *window;
  GtkSwitch *mode_switch;
  TwpBridgeRow *good;
  TwpBridgeRow *bad;
  guint16 echo_port;
  guint16 refuse_port;
  guint16 ws_port;
  guint16 socks_port;
  guint first_refused;
  int rep;
  char buffer[5];

  g_assert_no_error (error);
  g_assert_nonnull (binary);

  /* Peers. */
  echo_port = twp_test_listener_add_loopback (G_SOCKET_LISTENER (echo));
  g_signal_connect (echo, "incoming", G_CALLBACK (echo_incoming_cb), NULL);
  refuse_port = twp_test_listener_add_loopback (G_SOCKET_LISTENER (refuse));
  g_signal_connect (refuse, "incoming", G_CALLBACK (refuse_incoming_cb), requests);

  /* The real server, off the bus: only the client is the app's business. */
  no_bus = g_strdup_printf ("unix:path=%s/no-bus", tmpdir);
  server_env = g_environ_setenv (g_get_environ (), "DBUS_SESSION_BUS_ADDRESS", no_bus, TRUE);
  echo_arg = g_strdup_printf ("127.0.0.1:%u", echo_port);
  server_argv[5] = echo_arg;
  server = child_spawn (server_argv, server_env, G_SUBPROCESS_FLAGS_NONE);
  TWP_TEST_ASSERT_WAIT ((ws_port = child_port (server, "listening on 127.0.0.1:")) != 0 || server->eof, 10000,
              "the server to listen");
  g_assert_cmpuint (ws_port, !=, 0);

  /* The window, following the session bus, before any transport runs. */
  bus = g_bus_get_sync (G_BUS_TYPE_SESSION, NULL, &error);
  g_assert_no_error (error);
  monitor = twp_monitor_new (bus);
  window = twp_window_new (NULL, monitor);
  /* What GtkApplication does for the app: its own icons from resources. */
  gtk_icon_theme_add_resource_path (gtk_icon_theme_get_for_display (gtk_widget_get_display (GTK_WIDGET (window))),
                                    "/io/github/TorWebSocketProxy/icons");
  gtk_window_set_default_size (GTK_WINDOW (window), 560, 720);
  gtk_window_present (GTK_WINDOW (window));
  gtk_test_widget_wait_for_draw (GTK_WIDGET (window));
  g_assert_true (twp_window_is_empty (window));

  /* The client transport, managed as tor runs it. */
  state_dir = g_build_filename (tmpdir, "state", NULL);
  client_env = g_get_environ ();
  client_env = g_environ_setenv (client_env, "TOR_PT_MANAGED_TRANSPORT_VER", "1", TRUE);
  client_env = g_environ_setenv (client_env, "TOR_PT_CLIENT_TRANSPORTS", "websocket", TRUE);
  client_env = g_environ_setenv (client_env, "TOR_PT_STATE_LOCATION", state_dir, TRUE);
  client_env = g_environ_setenv (client_env, "TOR_PT_EXIT_ON_STDIN_CLOSE", "1", TRUE);
  client = child_spawn (client_argv, client_env, G_SUBPROCESS_FLAGS_STDIN_PIPE);
  TWP_TEST_ASSERT_WAIT ((socks_port = child_port (client, "CMETHOD websocket socks5 127.0.0.1:")) != 0 || client->eof, 10000,
              "CMETHOD");
  g_assert_cmpuint (socks_port, !=, 0);

  /* It appears live (NameOwnerChanged, no polling). */
  TWP_TEST_ASSERT_WAIT (g_list_model_get_n_items (twp_monitor_get_instances (monitor)) == 1, 10000, "the transport on the bus");
  instance = g_list_model_get_item (twp_monitor_get_instances (monitor), 0);
  g_assert_cmpstr (twp_dbus_transport_get_role (twp_instance_get_transport (instance)), ==, "client");
  g_assert_cmpuint (twp_instance_get_pid (instance), ==,
                    (guint) g_ascii_strtoull (g_subprocess_get_identifier (client->process), NULL, 10));
  TWP_TEST_ASSERT_WAIT (!twp_window_is_empty (window), 5000, "the list page");
  g_assert_nonnull (twp_window_get_group (window, instance));

  /* Connected: a tunnel through the real server to the echo peer. */
  good_args = g_strdup_printf ("url=ws://127.0.0.1:%u/", ws_port);
  tunnel = socks_open (socks_port, good_args, 1, &rep);
  g_assert_cmpint (rep, ==, 0);
  g_assert_nonnull (tunnel);
  g_assert_true (io_all (tunnel, "hello", 5, NULL, 0));
  {
    GInputStream *in = g_io_stream_get_input_stream (G_IO_STREAM (tunnel));
    g_autoptr(GAsyncResult) result = NULL;
    gsize got = 0;

    /* Asynchronous: the echo peer runs on this thread's main context. */
    g_input_stream_read_all_async (in, buffer, 5, G_PRIORITY_DEFAULT, NULL, store_result_cb, &result);
    TWP_TEST_ASSERT_WAIT (result != NULL, 10000, "the echo");
    g_assert_true (g_input_stream_read_all_finish (in, result, &got, NULL));
    g_assert_cmpmem (buffer, got, "hello", 5);
  }
  TWP_TEST_ASSERT_WAIT ((good = bridge_row (window, instance, 0)) != NULL &&
              row_description_has (good, "Connected") && twp_bridge_row_get_host (good) != NULL, 10000, "the bridge row to say Connected");
  /* Counters arrive at most once a second. */
  TWP_TEST_ASSERT_WAIT (twp_dbus_bridge_get_attempts (twp_bridge_row_get_bridge (good)) >= 1 &&
              twp_dbus_bridge_get_bytes_sent (twp_bridge_row_get_bridge (good)) >= 5 &&
              row_description_has (good, "1 attempt, 0 failed"), 5000, "the bridge's counters");
  g_assert_cmpstr (twp_bridge_row_get_host (good), ==, "127.0.0.1");
  g_assert_cmpstr (twp_bridge_row_get_accessible_label (good), ==, "Bridge 127.0.0.1");
  g_assert_true (g_str_has_prefix (twp_bridge_row_get_state_text (good), "Connected"));
  g_assert_cmpstr (twp_bridge_row_get_reason_text (good), ==, "");
  gtk_test_accessible_assert_property (good, GTK_ACCESSIBLE_PROPERTY_DESCRIPTION,
                                       twp_bridge_row_get_accessible_description (good));
  save_screenshot (GTK_WIDGET (window), "applet-connected.png");

  /* Failing: a server that refuses the upgrade. */
  refuse_args = g_strdup_printf ("url=ws://127.0.0.1:%u/wrong-path", refuse_port);
  g_assert_null (socks_open (socks_port, refuse_args, 2, &rep));
  g_assert_cmpint (rep, !=, 0);
  g_assert_cmpuint (requests->len, ==, 1);
  g_assert_false (any_request_has (requests, 0, "sec-websocket-protocol: base64"));
  TWP_TEST_ASSERT_WAIT ((bad = bridge_row (window, instance, 1)) != NULL &&
              row_description_has (bad, "Server refused the upgrade (HTTP 403) — check the url= path"), 10000, "the failure reason");
  g_assert_true (g_str_has_prefix (twp_bridge_row_get_state_text (bad), "Failing"));
  /* The number comes from LastFailureCode, not from the details text. */
  g_assert_cmpuint (twp_dbus_bridge_get_last_failure_code (twp_bridge_row_get_bridge (bad)), ==, 403);
  g_assert_cmpstr (twp_bridge_row_get_reason_text (bad), ==,
                   "Server refused the upgrade (HTTP 403) — check the url= path");
  gtk_test_accessible_assert_property (bad, GTK_ACCESSIBLE_PROPERTY_DESCRIPTION,
                                       twp_bridge_row_get_accessible_description (bad));
  g_test_message ("a11y name: %s", twp_bridge_row_get_accessible_label (bad));
  g_test_message ("a11y description: %s", twp_bridge_row_get_accessible_description (bad));

  /* Every Test button says which bridge it tests, once the row has its
   * URL (GetUrl is an asynchronous call of its own). */
  TWP_TEST_ASSERT_WAIT (twp_bridge_row_get_host (bad) != NULL, 10000, "the failing bridge's URL");
  gtk_test_accessible_assert_property (twp_bridge_row_get_test_button (bad), GTK_ACCESSIBLE_PROPERTY_DESCRIPTION,
                                       "Test the bridge 127.0.0.1");

  /* Test: inline result, from a new handshake. Test's reply has no
   * failure code, and its details are not parsed: the reason alone. */
  gtk_widget_activate (GTK_WIDGET (twp_bridge_row_get_test_button (bad)));
  TWP_TEST_ASSERT_WAIT (twp_bridge_row_get_test_result (bad) != NULL, 20000, "the test result");
  g_assert_cmpstr (twp_bridge_row_get_test_result (bad), ==,
                   "Test failed (step: HTTP upgrade): Server refused the upgrade — check the url= path");
  /* Its 20 s timeout was per call: the shared proxy keeps the default. */
  g_assert_cmpint (g_dbus_proxy_get_default_timeout (G_DBUS_PROXY (twp_bridge_row_get_bridge (bad))), ==, -1);
  g_assert_cmpuint (requests->len, ==, 2);
  g_assert_true (row_description_has (bad, "Test failed"));
  save_screenshot (GTK_WIDGET (window), "applet-failing.png");

  /* Recent events, and diagnostics: redacted unless asked. */
  {
    TwpEventsDialog *dialog = TWP_EVENTS_DIALOG (twp_events_dialog_new (twp_instance_get_transport (instance)));
    g_autofree char *port_text = g_strdup_printf (":%u", refuse_port);
    g_autofree char *redacted = NULL;
    g_autofree char *full = NULL;

    gtk_window_set_transient_for (GTK_WINDOW (dialog), GTK_WINDOW (window));
    gtk_window_present (GTK_WINDOW (dialog));
    TWP_TEST_ASSERT_WAIT (twp_events_dialog_get_n_events (dialog) >= 1, 10000, "the recent events");
    save_screenshot (GTK_WIDGET (dialog), "applet-events.png");
    redacted = copy_diagnostics (dialog, FALSE);
    g_assert_nonnull (redacted);
    g_assert_null (strstr (redacted, port_text));
    full = copy_diagnostics (dialog, TRUE);
    g_assert_nonnull (full);
    g_assert_nonnull (strstr (full, port_text));
    gtk_window_destroy (GTK_WINDOW (dialog));
  }

  /* Dark mode and a narrow window. */
  adw_style_manager_set_color_scheme (adw_style_manager_get_default (), ADW_COLOR_SCHEME_FORCE_DARK);
  save_screenshot (GTK_WIDGET (window), "applet-failing-dark.png");
  adw_style_manager_set_color_scheme (adw_style_manager_get_default (), ADW_COLOR_SCHEME_DEFAULT);
  gtk_window_set_default_size (GTK_WINDOW (window), 360, 720);
  TWP_TEST_ASSERT_WAIT (gtk_widget_get_width (GTK_WIDGET (window)) <= 400, 5000, "the narrow window");
  save_screenshot (GTK_WIDGET (window), "applet-narrow.png");
  gtk_window_set_default_size (GTK_WINDOW (window), 560, 720);

  /* The switch: FrameMode over D-Bus, then the next handshake asks for
   * base64. */
  mode_switch = twp_transport_group_get_mode_switch (TWP_TRANSPORT_GROUP (twp_window_get_group (window, instance)));
  g_assert_false (gtk_switch_get_active (mode_switch));
  /* As a click does: GtkSwitch emits state-set, then notify::active. */
  gtk_switch_set_active (mode_switch, TRUE);
  TWP_TEST_ASSERT_WAIT (g_strcmp0 (twp_dbus_transport_get_frame_mode (twp_instance_get_transport (instance)), "base64") == 0, 10000, "FrameMode to change");
  mode = get_frame_mode_over_dbus (bus, twp_instance_get_bus_name (instance));
  g_assert_cmpstr (mode, ==, "base64");
  first_refused = requests->len;
  g_assert_null (socks_open (socks_port, refuse_args, 2, &rep));
  TWP_TEST_ASSERT_WAIT (requests->len > first_refused, 10000, "the next handshake");
  g_assert_true (any_request_has (requests, first_refused, "sec-websocket-protocol: base64"));

  /* A script changes it back: the switch follows (PropertiesChanged). */
  g_dbus_connection_call_sync (bus, twp_instance_get_bus_name (instance), "/io/github/TorWebSocketProxy1/Transport",
                               "org.freedesktop.DBus.Properties", "Set",
                               g_variant_new ("(ssv)", "io.github.TorWebSocketProxy1.Transport", "FrameMode",
                                              g_variant_new_string ("binary")),
                               NULL, G_DBUS_CALL_FLAGS_NONE, 5000, NULL, &error);
  g_assert_no_error (error);
  TWP_TEST_ASSERT_WAIT (!gtk_switch_get_active (mode_switch), 10000, "the switch to follow the script");

  /* The transport stops (tor closes its stdin): the empty state. */
  g_io_stream_close (G_IO_STREAM (tunnel), NULL, NULL);
  g_output_stream_close (g_subprocess_get_stdin_pipe (client->process), NULL, NULL);
  TWP_TEST_ASSERT_WAIT (client->exited, 10000, "the transport to exit");
  TWP_TEST_ASSERT_WAIT (twp_window_is_empty (window), 10000, "the empty state");
  g_assert_cmpuint (g_list_model_get_n_items (twp_monitor_get_instances (monitor)), ==, 0);
  save_screenshot (GTK_WIDGET (window), "applet-empty.png");

  gtk_window_destroy (GTK_WINDOW (window));
  child_free (client);
  child_free (server);
  g_socket_service_stop (echo);
  g_socket_service_stop (refuse);
  g_object_set_data (G_OBJECT (echo), "last", NULL);
  g_rmdir (state_dir);
  g_rmdir (tmpdir);
}

int
main (int   argc,
      char *argv[])
{
  g_setenv ("LANGUAGE", "C", TRUE);
  gtk_test_init (&argc, &argv, NULL);
  adw_init ();
  /* Screenshots show states, not crossfades half way. */
  g_object_set (gtk_settings_get_default (), "gtk-enable-animations", FALSE, NULL);
  g_test_add_func ("/applet/e2e/connected-failing-mode-empty", test_end_to_end);
  return g_test_run ();
}
