/* SPDX-License-Identifier: BSD-3-Clause */
/* A server near its cgroup's memory limit answers new WebSockets with
 * HTTP 503 and counts them as memory_pressure, in process, against a fake
 * cgroup directory: over 90% of the limit 503, below 85% 101 again. The
 * fault suite (tests/faults/test-memory-pressure.py) does the same under a
 * real cgroup with a process that fills it. */
#define G_LOG_DOMAIN "twp-test-server-memory"

#include "config.h"

#include <glib/gstdio.h>
#include <string.h>

#include "twp-memory-guard.h"
#include "twp-server.h"

#define DEADLINE_S 30

static const char upgrade[] =
  "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

typedef struct {
  guint16 port;
  char *head;       /* the answer's first line, once read */
} Exchange;

static void
head_read_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  Exchange *exchange = user_data;
  g_autoptr(GError) error = NULL;
  char *line = g_data_input_stream_read_line_finish (G_DATA_INPUT_STREAM (source), result, NULL, &error);

  g_assert_no_error (error);
  exchange->head = line != NULL ? line : g_strdup ("");
}

/* The status line a WebSocket upgrade gets; the server runs on this
 * thread's main context, so the client waits by iterating it. */
static char *
status_line (guint16 port)
{
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GSocketConnection) connection = NULL;
  g_autoptr(GDataInputStream) in = NULL;
  g_autoptr(GError) error = NULL;
  Exchange exchange = { port, NULL };
  gint64 deadline = g_get_monotonic_time () + DEADLINE_S * G_USEC_PER_SEC;

  g_socket_client_set_enable_proxy (client, FALSE);
  connection = g_socket_client_connect_to_host (client, "127.0.0.1", port, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (connection)),
                                            upgrade, strlen (upgrade), NULL, NULL, &error));
  g_assert_no_error (error);
  in = g_data_input_stream_new (g_io_stream_get_input_stream (G_IO_STREAM (connection)));
  g_data_input_stream_read_line_async (in, G_PRIORITY_DEFAULT, NULL, head_read_cb, &exchange);
  while (exchange.head == NULL)
    {
      if (g_get_monotonic_time () > deadline)
        g_error ("Timed out waiting for the server's answer");
      g_main_context_iteration (NULL, TRUE);
    }
  g_io_stream_close (G_IO_STREAM (connection), NULL, NULL);
  return exchange.head;
}

static gboolean
orport_incoming_cb (GSocketService    *service,
                    GSocketConnection *connection,
                    GObject           *source_object,
                    gpointer           user_data)
{
  /* tor's ORPort, as far as the 101 goes: it accepts and holds on. */
  g_ptr_array_add (user_data, g_object_ref (connection));
  return TRUE;
}

static void
write_file (const char *dir,
            const char *name,
            const char *text)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_autoptr(GError) error = NULL;

  g_file_set_contents (path, text, -1, &error);
  g_assert_no_error (error);
}

static void
test_memory_pressure (void)
{
  g_autofree char *dir = g_dir_make_tmp ("twp-server-memory-XXXXXX", NULL);
  g_autoptr(GSocketService) orport = g_socket_service_new ();
  g_autoptr(GPtrArray) held = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GError) error = NULL;
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GInetSocketAddress) bound = NULL;
  g_autoptr(TwpServer) server = NULL;
  TwpServerOptions options;
  guint16 orport_port;
  gint64 deadline;

  orport_port = g_socket_listener_add_any_inet_port (G_SOCKET_LISTENER (orport), NULL, &error);
  g_assert_no_error (error);
  g_signal_connect (orport, "incoming", G_CALLBACK (orport_incoming_cb), held);

  twp_server_options_init (&options);
  options.orport = g_strdup_printf ("127.0.0.1:%u", orport_port);
  server = twp_server_new (&options);
  write_file (dir, "memory.limit_in_bytes", "1000000\n");
  write_file (dir, "memory.stat", "total_inactive_file 0\n");
  write_file (dir, "memory.usage_in_bytes", "950000\n");
  twp_server_set_memory_guard (server, twp_memory_guard_new (dir, dir, FALSE));
  bound = twp_server_listen (server, loopback, 0, &error);
  g_assert_no_error (error);

  /* 95% of the limit: shed, every time, counted each time. */
  for (guint i = 0; i < 3; i++)
    {
      g_autofree char *line = status_line (g_inet_socket_address_get_port (bound));

      g_assert_true (g_str_has_prefix (line, "HTTP/1.1 503 "));
    }
  g_assert_cmpuint (twp_server_stats_get_counters (twp_server_get_stats (server))
                      ->refused[TWP_SERVER_REFUSAL_MEMORY_PRESSURE], ==, 3);
  g_assert_cmpstr (twp_server_refusal_to_string (TWP_SERVER_REFUSAL_MEMORY_PRESSURE), ==, "memory_pressure");
  g_assert_cmpuint (held->len, ==, 0);

  /* Down to 80%: once the one-second reading expires, tunnels again. */
  write_file (dir, "memory.usage_in_bytes", "800000\n");
  deadline = g_get_monotonic_time () + DEADLINE_S * G_USEC_PER_SEC;
  while (TRUE)
    {
      g_autofree char *line = status_line (g_inet_socket_address_get_port (bound));

      if (g_str_has_prefix (line, "HTTP/1.1 101 "))
        break;
      g_assert_true (g_str_has_prefix (line, "HTTP/1.1 503 "));
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_usleep (100000);
    }
  g_assert_cmpuint (held->len, ==, 1);

  twp_server_stop (server);
  g_socket_service_stop (orport);
  g_socket_listener_close (G_SOCKET_LISTENER (orport));
  for (const char *const *name = (const char *const[]) { "memory.limit_in_bytes", "memory.stat",
                                                        "memory.usage_in_bytes", NULL };
       *name != NULL; name++)
    {
      g_autofree char *path = g_build_filename (dir, *name, NULL);

      g_unlink (path);
    }
  g_rmdir (dir);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/server/memory-pressure", test_memory_pressure);
  return g_test_run ();
}
