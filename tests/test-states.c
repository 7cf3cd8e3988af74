/* SPDX-License-Identifier: BSD-3-Clause */
/* The numbers users see (twp-state.h) as the core's objects expose them:
 * the generated enum types hold the values D-Bus documents, the core's
 * properties are of those types, and a server's state follows its
 * listener and its connections, in process, on 127.0.0.1. */
#define G_LOG_DOMAIN "test-states"

#include "config.h"

#include "twp-bridge.h"
#include "twp-client.h"
#include "twp-dial.h"
#include "twp-enum-types.h"
#include "twp-server.h"
#include "twp-state-enums.h"

#define DEADLINE_SECONDS 30

/* The values the D-Bus interfaces document (the XML in data/), by nick. */
static void
test_enum_values (void)
{
  struct {
    GType (*get_type) (void);
    int value;
    const char *nick;
  } cases[] = {
    { twp_transport_state_get_type, 0, "unknown" },
    { twp_transport_state_get_type, 10, "starting" },
    { twp_transport_state_get_type, 20, "ready" },
    { twp_transport_state_get_type, 30, "connecting" },
    { twp_transport_state_get_type, 40, "connected" },
    { twp_transport_state_get_type, 50, "degraded" },
    { twp_transport_state_get_type, 60, "failing" },
    { twp_transport_state_get_type, 70, "stopping" },
    { twp_bridge_state_get_type, 0, "unknown" },
    { twp_bridge_state_get_type, 10, "idle" },
    { twp_bridge_state_get_type, 20, "connecting" },
    { twp_bridge_state_get_type, 30, "connected" },
    { twp_bridge_state_get_type, 40, "failing" },
    { twp_dial_phase_get_type, 0, "none" },
    { twp_dial_phase_get_type, 10, "resolving" },
    { twp_dial_phase_get_type, 20, "connecting" },
    { twp_dial_phase_get_type, 30, "proxy" },
    { twp_dial_phase_get_type, 40, "tls" },
    { twp_dial_phase_get_type, 50, "upgrade" },
    { twp_dial_phase_get_type, 60, "open" },
    { twp_failure_reason_get_type, 0, "none" },
    { twp_failure_reason_get_type, 10, "bad-arguments" },
    { twp_failure_reason_get_type, 20, "dns" },
    { twp_failure_reason_get_type, 30, "refused" },
    { twp_failure_reason_get_type, 40, "unreachable" },
    { twp_failure_reason_get_type, 50, "timed-out" },
    { twp_failure_reason_get_type, 60, "proxy" },
    { twp_failure_reason_get_type, 70, "tls" },
    { twp_failure_reason_get_type, 80, "tls-certificate" },
    { twp_failure_reason_get_type, 90, "http-status" },
    { twp_failure_reason_get_type, 100, "handshake" },
    { twp_failure_reason_get_type, 110, "closed" },
    { twp_failure_reason_get_type, 120, "protocol" },
    { twp_failure_reason_get_type, 130, "closed-by-peer" },
    { twp_failure_reason_get_type, 1000, "other" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GEnumClass) klass = g_type_class_ref (cases[i].get_type ());
      GEnumValue *value = g_enum_get_value (klass, cases[i].value);

      g_test_message ("%s %d", g_type_name (cases[i].get_type ()), cases[i].value);
      g_assert_nonnull (value);
      g_assert_cmpstr (value->value_nick, ==, cases[i].nick);
      /* Every failure reason has the name the diagnostics print. */
      if (cases[i].get_type == twp_failure_reason_get_type)
        g_assert_cmpstr (twp_failure_reason_to_string (cases[i].value), ==, cases[i].nick);
    }
}

/* Properties that hold these numbers are enum properties of their type. */
static void
test_enum_properties (void)
{
  struct {
    GType (*object_type) (void);
    const char *name;
    GType (*value_type) (void);
  } cases[] = {
    { twp_client_get_type, "state", twp_transport_state_get_type },
    { twp_client_get_type, "frame-mode", twp_frame_mode_get_type },
    { twp_client_get_type, "last-failure-reason", twp_failure_reason_get_type },
    { twp_server_get_type, "state", twp_transport_state_get_type },
    { twp_bridge_get_type, "state", twp_bridge_state_get_type },
    { twp_bridge_get_type, "phase", twp_dial_phase_get_type },
    { twp_bridge_get_type, "frame-mode", twp_frame_mode_get_type },
    { twp_bridge_get_type, "last-failure-reason", twp_failure_reason_get_type },
    { twp_dial_get_type, "phase", twp_dial_phase_get_type },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GTypeClass) klass = g_type_class_ref (cases[i].object_type ());
      GParamSpec *pspec = g_object_class_find_property (G_OBJECT_CLASS (klass), cases[i].name);

      g_test_message ("%s:%s", g_type_name (cases[i].object_type ()), cases[i].name);
      g_assert_nonnull (pspec);
      g_assert_true (G_IS_PARAM_SPEC_ENUM (pspec));
      g_assert_true (pspec->value_type == cases[i].value_type ());
    }
}

/* ---- a server's state ------------------------------------------------- */

typedef struct {
  GArray *seen;                  /* TwpTransportState, in notify order */
} StateLog;

static void
state_notify_cb (GObject    *object,
                 GParamSpec *pspec,
                 gpointer    user_data)
{
  StateLog *log = user_data;
  TwpTransportState state;

  g_object_get (object, "state", &state, NULL);
  g_assert_cmpint (state, ==, twp_server_get_state (TWP_SERVER (object)));
  g_array_append_val (log->seen, state);
}

static gboolean
deadline_cb (gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
  return G_SOURCE_REMOVE;
}

/* Runs the main context until @done; fails loudly, saying @what, after
 * DEADLINE_SECONDS. */
static void
wait_until (gboolean   (*done) (gpointer data),
            gpointer     data,
            const char  *what)
{
  gboolean expired = FALSE;
  g_autoptr(GSource) deadline = g_timeout_source_new_seconds (DEADLINE_SECONDS);

  g_source_set_static_name (deadline, "[test] deadline");
  g_source_set_callback (deadline, deadline_cb, &expired, NULL);
  g_source_attach (deadline, NULL);
  while (!done (data) && !expired)
    g_main_context_iteration (NULL, TRUE);
  g_source_destroy (deadline);
  if (!done (data))
    g_error ("still waiting for %s after %d s", what, DEADLINE_SECONDS);
}

typedef struct {
  TwpServer *server;
  GSocketConnection *first;
  GSocketConnection *second;
} Peers;

static gboolean
server_connected (gpointer data)
{
  return twp_server_get_state (((Peers *) data)->server) == TWP_TRANSPORT_STATE_CONNECTED;
}

static gboolean
server_ready (gpointer data)
{
  return twp_server_get_state (((Peers *) data)->server) == TWP_TRANSPORT_STATE_READY;
}

static gboolean
both_accepted (gpointer data)
{
  Peers *peers = data;

  return peers->first != NULL && peers->second != NULL &&
         twp_server_get_n_connections (peers->server) == 2;
}

static void
connected_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  GSocketConnection **connection = user_data;
  g_autoptr(GError) error = NULL;

  *connection = g_socket_client_connect_finish (G_SOCKET_CLIENT (source), result, &error);
  g_assert_no_error (error);
}

static void
test_server_state (void)
{
  TwpServerOptions options;
  g_autoptr(TwpServer) server = NULL;
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GInetSocketAddress) bound = NULL;
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GError) error = NULL;
  Peers peers = { NULL, NULL, NULL };
  StateLog log = { g_array_new (FALSE, FALSE, sizeof (TwpTransportState)) };
  const TwpTransportState expected[] = {
    TWP_TRANSPORT_STATE_READY,
    TWP_TRANSPORT_STATE_CONNECTED,
    TWP_TRANSPORT_STATE_READY,
    TWP_TRANSPORT_STATE_STOPPING,
  };

  /* Loopback only: no proxy lookup (libproxy throws under ASan). */
  g_socket_client_set_enable_proxy (client, FALSE);
  twp_server_options_init (&options);
  /* Never dialled: no connection gets past its request head. */
  options.orport = g_strdup ("127.0.0.1:9");
  server = twp_server_new (&options);
  peers.server = server;
  g_signal_connect (server, "notify::state", G_CALLBACK (state_notify_cb), &log);
  g_assert_cmpint (twp_server_get_state (server), ==, TWP_TRANSPORT_STATE_STARTING);

  bound = twp_server_listen (server, loopback, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpint (twp_server_get_state (server), ==, TWP_TRANSPORT_STATE_READY);

  /* A connection still sending its head counts: the server is serving;
   * a second one is no new state. */
  g_socket_client_connect_async (client, G_SOCKET_CONNECTABLE (bound), NULL, connected_cb, &peers.first);
  wait_until (server_connected, &peers, "the server to count a connection");
  g_socket_client_connect_async (client, G_SOCKET_CONNECTABLE (bound), NULL, connected_cb, &peers.second);
  wait_until (both_accepted, &peers, "two connections");
  g_assert_cmpint (twp_server_get_state (server), ==, TWP_TRANSPORT_STATE_CONNECTED);

  /* Both peers leave: ready again, once, when the last one has gone. */
  g_io_stream_close (G_IO_STREAM (peers.first), NULL, &error);
  g_assert_no_error (error);
  g_io_stream_close (G_IO_STREAM (peers.second), NULL, &error);
  g_assert_no_error (error);
  wait_until (server_ready, &peers, "the server to be ready again");
  g_assert_cmpuint (twp_server_get_n_connections (server), ==, 0);

  twp_server_stop_accepting (server);
  g_assert_cmpint (twp_server_get_state (server), ==, TWP_TRANSPORT_STATE_STOPPING);
  /* Stopping stays stopping. */
  twp_server_stop (server);
  g_assert_cmpint (twp_server_get_state (server), ==, TWP_TRANSPORT_STATE_STOPPING);

  /* Notified on each change only. */
  g_assert_cmpmem (log.seen->data, log.seen->len * sizeof (TwpTransportState), expected, sizeof expected);
  g_signal_handlers_disconnect_by_data (server, &log);
  g_array_unref (log.seen);
  g_clear_object (&peers.first);
  g_clear_object (&peers.second);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/states/enum-values", test_enum_values);
  g_test_add_func ("/states/enum-properties", test_enum_properties);
  g_test_add_func ("/states/server", test_server_state);

  return g_test_run ();
}
