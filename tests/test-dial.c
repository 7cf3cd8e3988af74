/* SPDX-License-Identifier: BSD-3-Clause */
/* TwpDial in-process, against a minimal WebSocket server on 127.0.0.1 run
 * in a thread: what a finished dial keeps on the main context. */
#include "config.h"

#include <string.h>

#include "twp-args.h"
#include "twp-bridge-config.h"
#include "twp-dial.h"
#include "twp-ws-handshake.h"

/* Generous: the machine running the tests may be loaded. */
#define DEADLINE_S 30

typedef struct {
  GSocketListener *listener;
  guint16 port;
  GThread *thread;
  GSocketConnection *accepted;   /* kept open until the case ends */
} UpgradeServer;

/* Accepts one connection, reads the request head and answers 101. */
static gpointer
upgrade_server_thread (gpointer data)
{
  UpgradeServer *server = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GString) head = g_string_new (NULL);
  g_autofree char *key = NULL;
  g_autofree char *accept = NULL;
  g_autofree char *response = NULL;
  GInputStream *in;
  const char *line;

  server->accepted = g_socket_listener_accept (server->listener, NULL, NULL, &error);
  g_assert_no_error (error);
  in = g_io_stream_get_input_stream (G_IO_STREAM (server->accepted));
  while (!g_str_has_suffix (head->str, "\r\n\r\n"))
    {
      char c;

      g_assert_cmpint (g_input_stream_read (in, &c, 1, NULL, &error), ==, 1);
      g_string_append_c (head, c);
    }
  line = strstr (head->str, "Sec-WebSocket-Key: ");
  g_assert_nonnull (line);
  line += strlen ("Sec-WebSocket-Key: ");
  key = g_strndup (line, strcspn (line, "\r"));
  accept = twp_ws_compute_accept (key);
  response = g_strdup_printf ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", accept);
  g_assert_true (g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (server->accepted)),
                                            response, strlen (response), NULL, NULL, &error));
  g_assert_no_error (error);
  return NULL;
}

static void
upgrade_server_start (UpgradeServer *server)
{
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new_from_string ("127.0.0.1", 0);
  g_autoptr(GSocketAddress) bound = NULL;
  g_autoptr(GError) error = NULL;

  server->listener = g_socket_listener_new ();
  g_socket_listener_add_address (server->listener, address, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP,
                                 NULL, &bound, &error);
  g_assert_no_error (error);
  server->port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  server->thread = g_thread_new ("upgrade-server", upgrade_server_thread, server);
}

static void
upgrade_server_stop (UpgradeServer *server)
{
  g_thread_join (server->thread);
  g_clear_object (&server->accepted);
  g_socket_listener_close (server->listener);
  g_clear_object (&server->listener);
}

static void
run_cb (GObject      *source,
        GAsyncResult *result,
        gpointer      user_data)
{
  GAsyncResult **out = user_data;

  *out = g_object_ref (result);
}

/* Runs @dial to its end; returns the stream or NULL with @error. */
static GIOStream *
dial_to_end (TwpDial  *dial,
             GError  **error)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GBytes) leftover = NULL;
  gint64 deadline = g_get_monotonic_time () + DEADLINE_S * G_USEC_PER_SEC;

  twp_dial_run_async (dial, NULL, run_cb, &result);
  /* The dial's own deadline source exists while it runs. */
  g_assert_true (twp_dial_holds_source_for_testing (dial));
  while (result == NULL)
    {
      if (g_get_monotonic_time () > deadline)
        g_error ("the dial did not end within %d s", DEADLINE_S);
      g_main_context_iteration (NULL, TRUE);
    }
  return twp_dial_run_finish (dial, result, &leftover, error);
}

static TwpBridgeConfig *
config_for_port (guint16 port)
{
  g_autoptr(TwpArgs) args = twp_args_new ();
  g_autofree char *url = g_strdup_printf ("ws://127.0.0.1:%u/", port);
  g_autoptr(GError) error = NULL;
  TwpBridgeConfig *config;

  twp_args_add (args, "url", url);
  config = twp_bridge_config_new (args, "127.0.0.1", port, &error);
  g_assert_no_error (error);
  return config;
}

/* A finished dial keeps no source: the client holds it as long as the
 * tunnel, and GLib's main loop walks every source still linked on each
 * wakeup (issue 14: opening N tunnels cost O(N^2)). */
static void
test_open_holds_no_source (void)
{
  UpgradeServer server = { 0 };
  TwpDialOptions options = { .timeout_ms = DEADLINE_S * 1000 };
  TwpBridgeConfig *config;
  g_autoptr(TwpDial) dial = NULL;
  g_autoptr(GIOStream) stream = NULL;
  g_autoptr(GError) error = NULL;

  upgrade_server_start (&server);
  config = config_for_port (server.port);
  dial = twp_dial_new (config, FALSE, &options);
  stream = dial_to_end (dial, &error);
  g_assert_no_error (error);
  g_assert_nonnull (stream);
  g_assert_cmpint (twp_dial_get_phase (dial), ==, TWP_DIAL_PHASE_OPEN);
  g_assert_false (twp_dial_holds_source_for_testing (dial));

  g_io_stream_close (stream, NULL, NULL);
  upgrade_server_stop (&server);
  g_clear_object (&dial);
  twp_bridge_config_free (config);
}

/* The same after a failure (nothing listens on the port). */
static void
test_failure_holds_no_source (void)
{
  g_autoptr(GSocketListener) listener = g_socket_listener_new ();
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new_from_string ("127.0.0.1", 0);
  g_autoptr(GSocketAddress) bound = NULL;
  TwpDialOptions options = { .timeout_ms = DEADLINE_S * 1000 };
  TwpBridgeConfig *config;
  g_autoptr(TwpDial) dial = NULL;
  g_autoptr(GIOStream) stream = NULL;
  g_autoptr(GError) error = NULL;
  guint16 port;

  /* A port that was just free: bound, then closed. */
  g_socket_listener_add_address (listener, address, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP,
                                 NULL, &bound, &error);
  g_assert_no_error (error);
  port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  g_socket_listener_close (listener);

  config = config_for_port (port);
  dial = twp_dial_new (config, FALSE, &options);
  stream = dial_to_end (dial, &error);
  g_assert_error (error, TWP_DIAL_ERROR, TWP_DIAL_ERROR_REFUSED);
  g_assert_null (stream);
  g_assert_false (twp_dial_holds_source_for_testing (dial));

  g_clear_object (&dial);
  twp_bridge_config_free (config);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/dial/open-holds-no-source", test_open_holds_no_source);
  g_test_add_func ("/dial/failure-holds-no-source", test_failure_holds_no_source);
  return g_test_run ();
}
