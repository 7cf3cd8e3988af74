/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-server"

#include "config.h"

#include "twp-server.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>

#include "twp-acceptor.h"
#include "twp-deadline.h"
#include "twp-extorport.h"
#include "twp-log.h"
#include "twp-memory-guard.h"
#include "twp-pt-env.h"
#include "twp-server-request.h"
#include "twp-server-stats.h"
#include "twp-state-enums.h"
#include "twp-static-files.h"
#include "twp-tls-stream.h"
#include "twp-ws-handshake.h"

#define TRANSPORT_NAME "websocket"
#define TWP_LISTEN_BACKLOG 4096
/* Kept after tor's step ends in time for the answer (503 or 101) to be
 * written before the handshake deadline. */
#define ANSWER_GRACE_MS 1000

struct _TwpServer
{
  GObject parent_instance;

  /* owned */
  TwpAcceptor *service;
  GHashTable *connections;       /* ServerConnection* set */
  GHashTable *per_address;       /* client address (string) -> connections, for max-connections-per-ip */
  GQueue reading_head;           /* ServerConnection* still in TLS or reading their head, oldest first */
  guint n_evicted;               /* connections cancelled to make room, not yet gone */
  TwpServerOptions options;
  TwpServerStats *stats;
  TwpTlsCredentials *tls_credentials;   /* tls-cert=/tls-key=, for every connection */
  TwpMemoryGuard *memory_guard;  /* this process's cgroup; NULL: none */

  guint64 bytes_from_ws_done;    /* totals of relays that ended */
  guint64 bytes_to_ws_done;
  /* starting until listening, then ready or connected (any connection,
   * half-open ones too: a server has no bridges to fail), stopping once it
   * no longer accepts */
  TwpTransportState state;
  gboolean listening;
  gboolean stopping;
};

enum {
  PROP_0,
  PROP_N_CONNECTIONS,
  PROP_STATE,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

G_DEFINE_FINAL_TYPE (TwpServer, twp_server, G_TYPE_OBJECT)

static void
update_state (TwpServer *self)
{
  TwpTransportState state = TWP_TRANSPORT_STATE_STARTING;

  if (self->stopping)
    state = TWP_TRANSPORT_STATE_STOPPING;
  else if (self->listening)
    state = g_hash_table_size (self->connections) > 0 ? TWP_TRANSPORT_STATE_CONNECTED
                                                     : TWP_TRANSPORT_STATE_READY;
  if (state == self->state)
    return;
  self->state = state;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STATE]);
}

static void
connections_changed (TwpServer *self)
{
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_N_CONNECTIONS]);
  update_state (self);
}

/* One accepted connection: TLS (optional), HTTP upgrade, tor, relay. */
typedef struct {
  TwpServer *server;             /* a reference */
  GSocketConnection *tcp;
  GIOStream *ws;                 /* tcp, or the TLS connection over it */
  GCancellable *cancellable;
  GSource *deadline;
  GInetSocketAddress *peer;
  TwpWsServerRequest *request;
  GInetSocketAddress *client_address;  /* USERADDR: the peer, or what a trusted proxy says */
  GSocketClient *socket_client;
  GSocketConnection *orport;
  GCancellable *connect_cancellable;   /* the connect to tor: our deadline's or conn's */
  TwpDeadline *tor_deadline;           /* bounds the connect to tor */
  gint64 tor_started;                  /* monotonic time tor's step began */
  gboolean in_tor_step;                /* from the connect to tor until its answer */
  GBytes *ws_leftover;
  char *response;
  gboolean answering;            /* a refusal counted, its answer being prepared */
  char *counted_address;         /* key held in per_address while counted */
  GList *reading_head_link;      /* in server->reading_head, or NULL */
  gboolean evicted;              /* cancelled to make room (max-connections) */
  TwpRelay *relay;
  gint64 accepted_at;            /* monotonic, for the latency histograms */
} ServerConnection;

static void
uncount_address (ServerConnection *conn)
{
  GHashTable *per_address = conn->server->per_address;
  guint n;

  if (conn->counted_address == NULL)
    return;
  n = GPOINTER_TO_UINT (g_hash_table_lookup (per_address, conn->counted_address));
  if (n <= 1)
    g_hash_table_remove (per_address, conn->counted_address);
  else
    g_hash_table_insert (per_address, g_strdup (conn->counted_address), GUINT_TO_POINTER (n - 1));
  g_clear_pointer (&conn->counted_address, g_free);
}

/* S11: tor's DoS defences only see the address we report, and only after
 * we spent a connection to it; one address must not take every slot here.
 * FALSE when @key already has max-connections-per-ip connections. */
static gboolean
address_has_room (TwpServer  *self,
                  const char *key)
{
  guint n = GPOINTER_TO_UINT (g_hash_table_lookup (self->per_address, key));

  return n < self->options.max_connections_per_ip;
}

static void
count_address (ServerConnection *conn,
               char             *key)
{
  GHashTable *per_address = conn->server->per_address;
  guint n = GPOINTER_TO_UINT (g_hash_table_lookup (per_address, key));

  g_assert (conn->counted_address == NULL);
  g_hash_table_insert (per_address, g_strdup (key), GUINT_TO_POINTER (n + 1));
  conn->counted_address = key;
}

/* The address a new connection from @peer counts against from accept on,
 * or NULL for none yet. Counting only complete heads would let one address
 * hold every slot with half-open connections. A trusted proxy's own
 * connections carry many clients: each counts once the proxy's header
 * names it. Loopback is exempt only when no proxy is declared: it is then
 * likely a reverse proxy nobody declared trusted, not one greedy host. */
static char *
accept_key (TwpServer          *self,
            GInetSocketAddress *peer)
{
  GInetAddress *address;

  if (self->options.max_connections_per_ip == 0 || peer == NULL)
    return NULL;
  address = g_inet_socket_address_get_address (peer);
  if (twp_server_request_is_trusted_proxy (&self->options, address))
    return NULL;
  if (self->options.trusted_proxies == NULL && g_inet_address_get_is_loopback (address))
    return NULL;
  return g_inet_address_to_string (address);
}

static void
stop_reading_head (ServerConnection *conn)
{
  if (conn->reading_head_link == NULL)
    return;
  g_queue_delete_link (&conn->server->reading_head, conn->reading_head_link);
  conn->reading_head_link = NULL;
}

static void
server_connection_free (ServerConnection *conn)
{
  uncount_address (conn);
  stop_reading_head (conn);
  if (conn->evicted)
    conn->server->n_evicted--;
  if (conn->deadline != NULL)
    g_source_destroy (conn->deadline);
  g_clear_pointer (&conn->deadline, g_source_unref);
  g_clear_pointer (&conn->tor_deadline, twp_deadline_free);
  g_clear_object (&conn->connect_cancellable);
  if (conn->relay != NULL)
    {
      conn->server->bytes_from_ws_done += twp_relay_get_bytes_from_ws (conn->relay);
      conn->server->bytes_to_ws_done += twp_relay_get_bytes_to_ws (conn->relay);
    }
  g_clear_object (&conn->relay);
  g_clear_object (&conn->tcp);
  g_clear_object (&conn->ws);
  g_clear_object (&conn->cancellable);
  g_clear_object (&conn->peer);
  g_clear_pointer (&conn->request, twp_ws_server_request_free);
  g_clear_object (&conn->client_address);
  g_clear_object (&conn->socket_client);
  g_clear_object (&conn->orport);
  g_clear_pointer (&conn->ws_leftover, g_bytes_unref);
  g_free (conn->response);
  g_clear_object (&conn->server);
  g_free (conn);
}

static void
server_connection_close (ServerConnection *conn)
{
  /* Removing the connection drops its reference on the server. */
  g_autoptr(TwpServer) self = g_object_ref (conn->server);

  g_cancellable_cancel (conn->cancellable);
  if (conn->orport != NULL)
    g_io_stream_close_async (G_IO_STREAM (conn->orport), G_PRIORITY_DEFAULT, NULL, NULL, NULL);
  g_io_stream_close_async (conn->ws != NULL ? conn->ws : G_IO_STREAM (conn->tcp),
                           G_PRIORITY_DEFAULT, NULL, NULL, NULL);
  if (g_hash_table_remove (self->connections, conn))
    connections_changed (self);
}

static const char *
peer_for_log (ServerConnection *conn)
{
  static char text[64];
  g_autofree char *address = NULL;

  if (!twp_log_get_unsafe () || conn->peer == NULL)
    return "[scrubbed]";
  address = g_socket_connectable_to_string (G_SOCKET_CONNECTABLE (conn->peer));
  g_strlcpy (text, address, sizeof text);
  return text;
}

/* ---- relay ------------------------------------------------------------- */

static void
relay_done_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  ServerConnection *conn = user_data;
  g_autoptr(GError) error = NULL;

  if (!twp_relay_run_finish (TWP_RELAY (source), result, &error) &&
      !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    twp_log_user (TWP_LOG_DEBUG, "connection from %s ended: %s", peer_for_log (conn), error->message);
  twp_server_stats_tunnel_closed (conn->server->stats, conn->relay, conn->request->wants_base64,
                                  TWP_IS_TLS_STREAM (conn->ws));
  server_connection_close (conn);
}

static void
upgrade_written_cb (GObject      *source,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  ServerConnection *conn = user_data;
  g_autoptr(GError) error = NULL;
  TwpRelayOptions options = conn->server->options.relay;

  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, &error))
    {
      server_connection_close (conn);
      return;
    }

  twp_server_stats_tunnel_opened (conn->server->stats, g_get_monotonic_time () - conn->accepted_at,
                                  conn->request->wants_base64, TWP_IS_TLS_STREAM (conn->ws));
  options.is_client = FALSE;
  options.base64 = conn->request->wants_base64;
  conn->relay = twp_relay_new (G_IO_STREAM (conn->orport), conn->ws, NULL, conn->ws_leftover, &options);
  twp_relay_run_async (conn->relay, conn->cancellable, relay_done_cb, conn);
}

static void
send_upgrade (ServerConnection *conn)
{
  conn->in_tor_step = FALSE;
  /* The handshake deadline ends here: from now on the relay's own
   * timeouts apply. */
  if (conn->deadline != NULL)
    g_source_destroy (conn->deadline);
  g_clear_pointer (&conn->deadline, g_source_unref);

  /* base64 is answered only when asked for, binary otherwise; no extension
   * is ever accepted (permessage-deflate inflates without bound). */
  conn->response = twp_ws_server_response_accept (conn->request->key, conn->request->wants_base64);
  g_output_stream_write_all_async (g_io_stream_get_output_stream (conn->ws),
                                   conn->response, strlen (conn->response),
                                   G_PRIORITY_DEFAULT, conn->cancellable,
                                   upgrade_written_cb, conn);
}

/* ---- plain HTTP answers ------------------------------------------------ */

static void
answer_written_cb (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  ServerConnection *conn = user_data;

  g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, NULL);
  server_connection_close (conn);
}

/* Sends a complete HTTP response, then closes. */
static void
send_answer (ServerConnection *conn,
             char             *response,
             gsize             length)
{
  g_free (conn->response);
  conn->response = response;
  g_output_stream_write_all_async (g_io_stream_get_output_stream (conn->ws),
                                   conn->response, length,
                                   G_PRIORITY_DEFAULT, conn->cancellable,
                                   answer_written_cb, conn);
}

static void
send_error (ServerConnection *conn,
            guint             status)
{
  char *response = twp_http_response_error (status);

  send_answer (conn, response, strlen (response));
}

static void
static_file_cb (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  ServerConnection *conn = user_data;
  gsize length;
  char *response = twp_static_files_respond_finish (result, &length, NULL);

  if (response == NULL)
    {
      /* Cancelled: the deadline passed or the server stops. */
      server_connection_close (conn);
      return;
    }
  send_answer (conn, response, length);
}

/* GET or HEAD with static-dir set (twp_server_request_check () said 200):
 * the file, or a plain 404. The refusal was counted already. */
static void
answer_plain_http (ServerConnection *conn)
{
  conn->answering = TRUE;
  twp_static_files_respond_async (conn->server->options.static_dir, conn->request->method,
                                  conn->request->path, conn->cancellable, static_file_cb, conn);
}

/* ---- tor's side -------------------------------------------------------- */

static const char *
tor_port_name (TwpServer *self)
{
  return self->options.ext_orport != NULL ? "Extended ORPort" : "ORPort";
}

static void
extorport_done_cb (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  ServerConnection *conn = user_data;
  g_autoptr(GError) error = NULL;

  if (!twp_extorport_handshake_finish (G_IO_STREAM (source), result, &error))
    {
      conn->in_tor_step = FALSE;
      if (!g_cancellable_is_cancelled (conn->cancellable))
        {
          /* A timeout's message names the step tor stalled at. */
          twp_log_user (TWP_LOG_WARNING, "Extended ORPort handshake failed: %s", error->message);
          twp_server_stats_extorport_failed (conn->server->stats, FALSE, error);
          twp_server_stats_refused (conn->server->stats, TWP_SERVER_REFUSAL_TOR_UNAVAILABLE);
          /* tor's side is done with: do not hold it while the 503 goes out. */
          g_io_stream_close_async (G_IO_STREAM (conn->orport), G_PRIORITY_DEFAULT, NULL, NULL, NULL);
          g_clear_object (&conn->orport);
          send_error (conn, 503);
        }
      else
        server_connection_close (conn);
      return;
    }
  twp_server_stats_extorport_ready (conn->server->stats, g_get_monotonic_time () - conn->tor_started);
  send_upgrade (conn);
}

static void
orport_connected_cb (GObject      *source,
                     GAsyncResult *result,
                     gpointer      user_data)
{
  ServerConnection *conn = user_data;
  TwpServer *self = conn->server;
  g_autoptr(GError) error = NULL;
  gint64 elapsed_ms;

  conn->orport = g_socket_client_connect_finish (G_SOCKET_CLIENT (source), result, &error);
  twp_deadline_disarm (conn->tor_deadline);
  if (conn->orport == NULL)
    {
      conn->in_tor_step = FALSE;
      if (g_cancellable_is_cancelled (conn->cancellable))
        server_connection_close (conn);
      else
        {
          if (twp_deadline_has_expired (conn->tor_deadline))
            twp_log_user (TWP_LOG_WARNING, "cannot connect to tor's %s: connecting stalled for %u ms",
                          tor_port_name (self), self->options.orport_timeout_ms);
          /* tor gives its port once, when it starts us; a reload that
           * changes ExtORPort moves the listener but keeps us (tor 0.4.9). */
          else if (self->options.ext_orport != NULL &&
                   g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED))
            twp_log_user (TWP_LOG_WARNING, "cannot connect to tor's Extended ORPort: connection refused "
                          "on the port tor gave when it started us; if ExtORPort changed since, "
                          "restart tor");
          else
            twp_log_user (TWP_LOG_WARNING, "cannot connect to tor's %s: %s",
                          tor_port_name (self), error->message);
          twp_server_stats_extorport_failed (self->stats, TRUE, error);
          twp_server_stats_refused (self->stats, TWP_SERVER_REFUSAL_TOR_UNAVAILABLE);
          send_error (conn, 503);
        }
      return;
    }
  g_socket_set_option (g_socket_connection_get_socket (conn->orport), IPPROTO_TCP, TCP_NODELAY, 1, NULL);

  if (self->options.ext_orport == NULL)
    {
      /* Plain ORPort: tor sees 127.0.0.1 and learns nothing about the
       * client. Used only when tor has no ExtORPort. */
      twp_server_stats_extorport_ready (self->stats, g_get_monotonic_time () - conn->tor_started);
      send_upgrade (conn);
      return;
    }
  /* X5: the exchange gets what is left of tor's step; the cookie is
   * re-read every time (S6: tor rewrites it on each start). */
  elapsed_ms = (g_get_monotonic_time () - conn->tor_started) / 1000;
  twp_extorport_handshake_async (G_IO_STREAM (conn->orport), self->options.auth_cookie_file,
                                 conn->client_address, TRANSPORT_NAME,
                                 (guint) MAX (1, (gint64) self->options.orport_timeout_ms - elapsed_ms),
                                 conn->cancellable, extorport_done_cb, conn);
}

static gboolean deadline_cb (gpointer user_data);

/* (Re)arms the handshake deadline @ms from now. */
static void
set_deadline (ServerConnection *conn,
              guint             ms)
{
  if (conn->deadline != NULL)
    g_source_destroy (conn->deadline);
  g_clear_pointer (&conn->deadline, g_source_unref);
  conn->deadline = g_timeout_source_new (ms);
  g_source_set_static_name (conn->deadline, "[twp] handshake deadline");
  g_source_set_callback (conn->deadline, deadline_cb, conn, NULL);
  g_source_attach (conn->deadline, g_main_context_get_thread_default ());
}

/* tor's step: connect, then the ExtORPort exchange, under a deadline of
 * its own inside the handshake deadline, so that a silent tor gives the
 * client a 503 it can read (not a bare close) and tor's log the step. */
static void
connect_to_tor (ServerConnection *conn)
{
  TwpServer *self = conn->server;
  guint tor_ms = self->options.orport_timeout_ms;
  gint64 needed = g_get_monotonic_time () + (gint64) (tor_ms + ANSWER_GRACE_MS) * 1000;

  /* A client that took most of the handshake timeout to send its head
   * still gets tor's whole step and its answer. */
  if (conn->deadline != NULL && g_source_get_ready_time (conn->deadline) < needed)
    set_deadline (conn, tor_ms + ANSWER_GRACE_MS);

  conn->tor_started = g_get_monotonic_time ();
  conn->in_tor_step = TRUE;
  conn->connect_cancellable = g_cancellable_new ();
  /* The connect fails with CANCELLED at the deadline; the connection
   * itself goes on to answer 503. */
  conn->tor_deadline = twp_deadline_new (conn->connect_cancellable, conn->cancellable, tor_ms,
                                         "[twp] tor connect deadline");

  conn->socket_client = g_socket_client_new ();
  /* No g_socket_client_set_timeout (): GLib keeps it on the connected
   * socket and would cut every tunnel idle that long. */
  g_socket_client_set_enable_proxy (conn->socket_client, FALSE);
  g_socket_client_connect_to_host_async (conn->socket_client,
                                         self->options.ext_orport != NULL ? self->options.ext_orport
                                                                          : self->options.orport,
                                         0, conn->connect_cancellable, orport_connected_cb, conn);
}

/* The operator's reason for a refusal decided from the head alone. */
static TwpServerRefusal
refusal_for_status (const TwpWsServerRequest *request,
                    guint                     status)
{
  if (request != NULL && request->kind == TWP_WS_REQUEST_PLAIN_HTTP)
    return TWP_SERVER_REFUSAL_NOT_WEBSOCKET;
  switch (status)
    {
    case 403:
      return TWP_SERVER_REFUSAL_ORIGIN;
    case 404:
      return TWP_SERVER_REFUSAL_BAD_PATH;
    case 426:
      return TWP_SERVER_REFUSAL_OLD_VERSION;
    default:
      return TWP_SERVER_REFUSAL_BAD_REQUEST;
    }
}

/* @head is what the client sent so far, @head_len its head (NULL, 0: the
 * head was too large). */
static void
handle_request (ServerConnection *conn,
                guint             status,
                GBytes           *head,
                gsize             head_len)
{
  TwpServer *self = conn->server;
  g_autoptr(GError) error = NULL;

  switch (status)
    {
    case 101:
      break;
    case 200:
      twp_server_stats_refused (self->stats, TWP_SERVER_REFUSAL_NOT_WEBSOCKET);
      answer_plain_http (conn);
      return;
    default:
      twp_server_stats_refused (self->stats, refusal_for_status (conn->request, status));
      send_error (conn, status);
      return;
    }

  /* Anything the client sent after its request (it should wait for our
   * 101, but may not) is WebSocket data. */
  conn->ws_leftover = g_bytes_new_from_bytes (head, head_len, g_bytes_get_size (head) - head_len);
  if (conn->peer != NULL)
    {
      conn->client_address = twp_server_request_client_address (&self->options, conn->peer,
                                                                conn->request->headers, &error);
      if (conn->client_address == NULL)
        {
          twp_log_user (TWP_LOG_INFO, "refused a request: %s", error->message);
          twp_server_stats_refused (self->stats, TWP_SERVER_REFUSAL_BAD_REQUEST);
          send_error (conn, 400);
          return;
        }
    }
  /* A trusted proxy's connection counts against the client it names
   * (the proxy itself when it sent no header); any other connection has
   * counted since accept. */
  if (conn->peer != NULL && self->options.max_connections_per_ip > 0 &&
      twp_server_request_is_trusted_proxy (&self->options, g_inet_socket_address_get_address (conn->peer)))
    {
      g_autofree char *key = g_inet_address_to_string (g_inet_socket_address_get_address (conn->client_address));

      if (!address_has_room (self, key))
        {
          /* What a busy web server says; the address stays out of the log. */
          twp_log_user (TWP_LOG_INFO, "refused a connection: too many from one address");
          twp_server_stats_refused (self->stats, TWP_SERVER_REFUSAL_PER_ADDRESS_LIMIT);
          send_error (conn, 429);
          return;
        }
      count_address (conn, g_steal_pointer (&key));
    }

  /* Near the cgroup's memory limit, a new tunnel would risk the OOM
   * killer ending all the others. */
  if (self->memory_guard != NULL && twp_memory_guard_is_over (self->memory_guard, g_get_monotonic_time ()))
    {
      twp_server_stats_refused (self->stats, TWP_SERVER_REFUSAL_MEMORY_PRESSURE);
      send_error (conn, 503);
      return;
    }

  /* tor comes first: a bridge whose tor is down answers 503 instead of
   * accepting a WebSocket it cannot serve. */
  connect_to_tor (conn);
}

static void
head_read_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  ServerConnection *conn = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree char *why = NULL;
  g_autoptr(GBytes) head = NULL;
  gsize head_len;
  guint status;

  head = twp_http_read_head_finish (G_INPUT_STREAM (source), result, &head_len, &error);
  if (head == NULL && !g_error_matches (error, TWP_HTTP_ERROR, TWP_HTTP_ERROR_TOO_LARGE))
    {
      server_connection_close (conn);
      return;
    }
  /* A complete head: no longer among the connections closed first when
   * max-connections is reached. */
  stop_reading_head (conn);
  if (head == NULL)
    {
      twp_log_user (TWP_LOG_DEBUG, "answered 400 to a request: %s", error->message);
      handle_request (conn, 400, NULL, 0);
      return;
    }

  status = twp_server_request_check (&conn->server->options, g_bytes_get_data (head, NULL),
                                     g_bytes_get_size (head), &head_len, &conn->request, &why);
  /* The reader stopped at the end the check finds. */
  g_assert (status != 0);
  if (why != NULL)
    twp_log_user (TWP_LOG_DEBUG, "answered %u to a request: %s", status, why);
  handle_request (conn, status, head, head_len);
}

static void
read_head (ServerConnection *conn)
{
  /* The head is bounded by TWP_HTTP_MAX_HEAD_SIZE; what a client
   * pipelines behind it is kept as WebSocket data. */
  twp_http_read_head_async (g_io_stream_get_input_stream (conn->ws), NULL, TWP_HTTP_MAX_HEAD_SIZE,
                            conn->cancellable, head_read_cb, conn);
}

static void
tls_handshake_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  ServerConnection *conn = user_data;
  g_autoptr(GError) error = NULL;

  if (!twp_tls_stream_handshake_finish (TWP_TLS_STREAM (source), result, &error))
    {
      if (!g_cancellable_is_cancelled (conn->cancellable))
        twp_server_stats_refused (conn->server->stats, TWP_SERVER_REFUSAL_TLS_FAILURE);
      server_connection_close (conn);
      return;
    }
  read_head (conn);
}

static gboolean
deadline_cb (gpointer user_data)
{
  ServerConnection *conn = user_data;

  g_clear_pointer (&conn->deadline, g_source_unref);
  /* tor's step ends before this deadline and always answers: wait for it
   * even when a busy main loop runs both deadlines at once. */
  if (conn->in_tor_step)
    {
      set_deadline (conn, ANSWER_GRACE_MS);
      return G_SOURCE_REMOVE;
    }
  /* Slowloris: whoever does not finish the upgrade in time is dropped.
   * A refusal being prepared or written was counted already. */
  if (conn->response == NULL && !conn->answering)
    twp_server_stats_refused (conn->server->stats, TWP_SERVER_REFUSAL_HANDSHAKE_TIMEOUT);
  g_cancellable_cancel (conn->cancellable);
  return G_SOURCE_REMOVE;
}

/* The TLS end of one accepted connection, on our GnuTLS stream rather
 * than glib-networking's: its handshakes run on the main context instead
 * of blocking GTask's few threads (twp-tls-stream.h), and every connection
 * shares one set of credentials. glib-networking's server connection also
 * parsed the whole system CA bundle into each connection (about 3.7 MiB),
 * which a server that asks for no client certificate never uses. */
static GIOStream *
tls_server_stream_new (TwpServer          *self,
                       GSocketConnection  *base,
                       GError            **error)
{
  /* Loaded by twp_server_listen (), before any connection. */
  g_assert (self->tls_credentials != NULL);
  return G_IO_STREAM (twp_tls_stream_new_server (base, self->tls_credentials, error));
}

/* At max-connections: closes the oldest connections that have not sent a
 * complete head yet (half-open ones, slowloris) until one slot is free.
 * Tunnels and requests being answered are never closed for a newcomer.
 * FALSE when there is no such connection: the newcomer is refused. */
static gboolean
make_room (TwpServer *self)
{
  while (g_hash_table_size (self->connections) - self->n_evicted >= self->options.max_connections)
    {
      ServerConnection *oldest = g_queue_peek_head (&self->reading_head);

      if (oldest == NULL)
        return FALSE;
      /* Its pending read or TLS handshake fails with CANCELLED and closes
       * it; until then it no longer counts against the cap. */
      stop_reading_head (oldest);
      /* One its handshake deadline already ended was counted there. */
      if (!g_cancellable_is_cancelled (oldest->cancellable))
        twp_server_stats_refused (self->stats, TWP_SERVER_REFUSAL_CONNECTION_CAP);
      oldest->evicted = TRUE;
      self->n_evicted++;
      g_cancellable_cancel (oldest->cancellable);
      twp_log_user (TWP_LOG_DEBUG, "closed the oldest unfinished handshake to make room (max-connections)");
    }
  return TRUE;
}

static void
refused_cb (TwpAcceptor *service,
            gpointer     user_data)
{
  TwpServer *self = user_data;

  twp_server_stats_connection_accepted (self->stats);
  twp_server_stats_refused (self->stats, TWP_SERVER_REFUSAL_OUT_OF_FDS);
}

static gboolean
incoming_cb (TwpAcceptor       *service,
             GSocketConnection *connection,
             GObject           *source_object,
             gpointer           user_data)
{
  TwpServer *self = user_data;
  ServerConnection *conn;
  g_autoptr(GSocketAddress) peer = g_socket_connection_get_remote_address (connection, NULL);
  g_autofree char *key = NULL;

  twp_server_stats_connection_accepted (self->stats);
  key = accept_key (self, G_IS_INET_SOCKET_ADDRESS (peer) ? G_INET_SOCKET_ADDRESS (peer) : NULL);
  if (key != NULL && !address_has_room (self, key))
    {
      /* That address already holds its share, tunnels and half-open
       * connections alike: close at once, costing nothing. */
      twp_log_user (TWP_LOG_INFO, "refused a connection: too many from one address");
      twp_server_stats_refused (self->stats, TWP_SERVER_REFUSAL_PER_ADDRESS_LIMIT);
      g_io_stream_close (G_IO_STREAM (connection), NULL, NULL);
      return TRUE;
    }
  if (self->options.max_connections > 0 && !make_room (self))
    {
      /* Over the cap with only tunnels: close at once, costing nothing. */
      twp_server_stats_refused (self->stats, TWP_SERVER_REFUSAL_CONNECTION_CAP);
      g_io_stream_close (G_IO_STREAM (connection), NULL, NULL);
      return TRUE;
    }

  conn = g_new0 (ServerConnection, 1);
  conn->server = g_object_ref (self);
  conn->tcp = g_object_ref (connection);
  conn->cancellable = g_cancellable_new ();
  conn->accepted_at = g_get_monotonic_time ();
  if (G_IS_INET_SOCKET_ADDRESS (peer))
    conn->peer = G_INET_SOCKET_ADDRESS (g_steal_pointer (&peer));
  if (key != NULL)
    count_address (conn, g_steal_pointer (&key));
  g_socket_set_option (g_socket_connection_get_socket (connection), IPPROTO_TCP, TCP_NODELAY, 1, NULL);
  g_hash_table_add (self->connections, conn);
  g_queue_push_tail (&self->reading_head, conn);
  conn->reading_head_link = g_queue_peek_tail_link (&self->reading_head);
  connections_changed (self);

  set_deadline (conn, self->options.handshake_timeout_ms);

  if (self->options.tls_certificate != NULL)
    {
      g_autoptr(GError) error = NULL;

      conn->ws = tls_server_stream_new (self, connection, &error);
      if (conn->ws == NULL)
        {
          twp_log_user (TWP_LOG_WARNING, "cannot start TLS: %s", error->message);
          twp_server_stats_refused (self->stats, TWP_SERVER_REFUSAL_TLS_FAILURE);
          server_connection_close (conn);
          return TRUE;
        }
      twp_tls_stream_handshake_async (TWP_TLS_STREAM (conn->ws), conn->cancellable, tls_handshake_cb, conn);
    }
  else
    {
      conn->ws = g_object_ref (G_IO_STREAM (connection));
      read_head (conn);
    }
  return TRUE;
}

/* ---- object ------------------------------------------------------------ */

static void
twp_server_dispose (GObject *object)
{
  TwpServer *self = TWP_SERVER (object);

  twp_server_stop (self);
  g_clear_object (&self->service);

  G_OBJECT_CLASS (twp_server_parent_class)->dispose (object);
}

static void
twp_server_finalize (GObject *object)
{
  TwpServer *self = TWP_SERVER (object);

  g_assert (g_hash_table_size (self->connections) == 0);
  g_hash_table_unref (self->connections);
  g_assert (g_hash_table_size (self->per_address) == 0);
  g_hash_table_unref (self->per_address);
  g_assert (g_queue_is_empty (&self->reading_head));
  g_assert (self->n_evicted == 0);
  twp_server_options_clear (&self->options);
  g_clear_object (&self->stats);
  g_clear_pointer (&self->tls_credentials, twp_tls_credentials_unref);
  g_clear_pointer (&self->memory_guard, twp_memory_guard_free);

  G_OBJECT_CLASS (twp_server_parent_class)->finalize (object);
}

static void
twp_server_get_property (GObject    *object,
                         guint       prop_id,
                         GValue     *value,
                         GParamSpec *pspec)
{
  TwpServer *self = TWP_SERVER (object);

  switch (prop_id)
    {
    case PROP_N_CONNECTIONS:
      g_value_set_uint (value, g_hash_table_size (self->connections));
      break;
    case PROP_STATE:
      g_value_set_enum (value, self->state);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
twp_server_class_init (TwpServerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = twp_server_dispose;
  object_class->finalize = twp_server_finalize;
  object_class->get_property = twp_server_get_property;

  properties[PROP_N_CONNECTIONS] =
    g_param_spec_uint ("n-connections", NULL, NULL, 0, G_MAXUINT, 0,
                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);
  properties[PROP_STATE] =
    g_param_spec_enum ("state", NULL, NULL, TWP_TYPE_TRANSPORT_STATE, TWP_TRANSPORT_STATE_STARTING,
                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);
  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
twp_server_init (TwpServer *self)
{
  self->connections = g_hash_table_new_full (NULL, NULL, (GDestroyNotify) server_connection_free, NULL);
  self->per_address = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_queue_init (&self->reading_head);
  self->stats = twp_server_stats_new ();
  self->state = TWP_TRANSPORT_STATE_STARTING;
}

TwpServer *
twp_server_new (TwpServerOptions *options)
{
  TwpServer *self;

  g_return_val_if_fail (options != NULL, NULL);
  g_return_val_if_fail (options->orport != NULL || options->ext_orport != NULL, NULL);

  self = g_object_new (TWP_TYPE_SERVER, NULL);
  self->options = *options;
  memset (options, 0, sizeof *options);
  /* tor's step ends inside the handshake deadline, leaving time for the
   * 503 (see connect_to_tor ()). */
  self->options.orport_timeout_ms = MAX (1, MIN (self->options.orport_timeout_ms,
                                                 self->options.handshake_timeout_ms / 2));

  self->service = twp_acceptor_new ();
  g_signal_connect_object (self->service, "incoming", G_CALLBACK (incoming_cb), self, 0);
  g_signal_connect_object (self->service, "refused", G_CALLBACK (refused_cb), self, 0);
  self->memory_guard = twp_memory_guard_new_self ();
  return self;
}

GInetSocketAddress *
twp_server_listen (TwpServer     *self,
                   GInetAddress  *address,
                   guint16        port,
                   GError       **error)
{
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GSocketAddress) requested = NULL;

  g_return_val_if_fail (TWP_IS_SERVER (self), NULL);
  g_return_val_if_fail (G_IS_INET_ADDRESS (address), NULL);

  /* A certificate GnuTLS cannot use fails here, once, for tor to report
   * (SMETHOD-ERROR), not on every connection that comes later. */
  if (self->options.tls_certificate != NULL && self->tls_credentials == NULL)
    {
      self->tls_credentials = twp_tls_credentials_new (self->options.tls_certificate, error);
      if (self->tls_credentials == NULL)
        return NULL;
    }

  /* K7: tor pins the port we reported last time; SO_REUSEADDR lets a
   * restarted transport bind it again at once. */
  socket = g_socket_new (g_inet_address_get_family (address), G_SOCKET_TYPE_STREAM,
                         G_SOCKET_PROTOCOL_TCP, error);
  if (socket == NULL)
    return NULL;
  g_socket_set_option (socket, SOL_SOCKET, SO_REUSEADDR, 1, NULL);
  /* GLib's default backlog of 10 drops bursts of connections (each retry
   * costs the client a second or more); the kernel caps this at somaxconn. */
  g_socket_set_listen_backlog (socket, TWP_LISTEN_BACKLOG);
  requested = g_inet_socket_address_new (address, port);
  if (!g_socket_bind (socket, requested, TRUE, error) ||
      !g_socket_listen (socket, error) ||
      !g_socket_listener_add_socket (G_SOCKET_LISTENER (self->service), socket, NULL, error))
    return NULL;
  twp_acceptor_start (self->service);
  self->listening = TRUE;
  update_state (self);
  return G_INET_SOCKET_ADDRESS (g_socket_get_local_address (socket, error));
}

void
twp_server_set_memory_guard (TwpServer      *self,
                             TwpMemoryGuard *guard)
{
  g_return_if_fail (TWP_IS_SERVER (self));

  g_clear_pointer (&self->memory_guard, twp_memory_guard_free);
  self->memory_guard = guard;
}

guint
twp_server_get_n_connections (TwpServer *self)
{
  g_return_val_if_fail (TWP_IS_SERVER (self), 0);
  return g_hash_table_size (self->connections);
}

TwpTransportState
twp_server_get_state (TwpServer *self)
{
  g_return_val_if_fail (TWP_IS_SERVER (self), TWP_TRANSPORT_STATE_UNKNOWN);
  return self->state;
}

/* Totals of ended tunnels plus what the open ones moved so far. */
static guint64
sum_bytes (TwpServer *self,
           guint64    ended,
           guint64  (*relay_bytes) (TwpRelay *relay))
{
  GHashTableIter iter;
  ServerConnection *conn;
  guint64 total = ended;

  g_hash_table_iter_init (&iter, self->connections);
  while (g_hash_table_iter_next (&iter, (gpointer *) &conn, NULL))
    if (conn->relay != NULL)
      total += relay_bytes (conn->relay);
  return total;
}

guint64
twp_server_get_bytes_from_ws (TwpServer *self)
{
  g_return_val_if_fail (TWP_IS_SERVER (self), 0);
  return sum_bytes (self, self->bytes_from_ws_done, twp_relay_get_bytes_from_ws);
}

guint64
twp_server_get_bytes_to_ws (TwpServer *self)
{
  g_return_val_if_fail (TWP_IS_SERVER (self), 0);
  return sum_bytes (self, self->bytes_to_ws_done, twp_relay_get_bytes_to_ws);
}

TwpServerStats *
twp_server_get_stats (TwpServer *self)
{
  g_return_val_if_fail (TWP_IS_SERVER (self), NULL);

  twp_server_stats_set_live (self->stats, g_hash_table_size (self->connections),
                             self->options.max_connections,
                             twp_server_get_bytes_from_ws (self), twp_server_get_bytes_to_ws (self));
  return self->stats;
}

void
twp_server_stop_accepting (TwpServer *self)
{
  g_return_if_fail (TWP_IS_SERVER (self));

  if (self->service != NULL)
    {
      twp_acceptor_stop (self->service);
      g_socket_listener_close (G_SOCKET_LISTENER (self->service));
    }
  self->stopping = TRUE;
  update_state (self);
}

void
twp_server_stop (TwpServer *self)
{
  GHashTableIter iter;
  ServerConnection *conn;

  g_return_if_fail (TWP_IS_SERVER (self));

  twp_server_stop_accepting (self);
  g_hash_table_iter_init (&iter, self->connections);
  while (g_hash_table_iter_next (&iter, (gpointer *) &conn, NULL))
    g_cancellable_cancel (conn->cancellable);
}
