/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-server"

#include "config.h"

#include "twp-server.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/stat.h>

#include <glib/gstdio.h>

#include "twp-deadline.h"
#include "twp-extorport.h"
#include "twp-log.h"
#include "twp-metrics-endpoint.h"
#include "twp-pt-env.h"
#include "twp-server-request.h"
#include "twp-server-stats.h"
#include "twp-tls-stream.h"
#include "twp-ws-handshake.h"

#define TRANSPORT_NAME "websocket"
#define TWP_LISTEN_BACKLOG 4096
/* Largest file served to plain HTTP requests from static-dir. */
#define STATIC_FILE_MAX (1024 * 1024)
/* tor's step (connect, ExtORPort exchange) gets at most this, and at most
 * half the handshake timeout (goptlib uses 5 s, X5). */
#define TOR_STEP_TIMEOUT_MAX_MS 5000
/* Kept after tor's step ends in time for the answer (503 or 101) to be
 * written before the handshake deadline. */
#define ANSWER_GRACE_MS 1000

struct _TwpServer
{
  GObject parent_instance;

  /* owned */
  GSocketService *service;
  GHashTable *connections;       /* ServerConnection* set */
  GHashTable *per_address;       /* client address (string) -> connections, for max-connections-per-ip */
  GQueue reading_head;           /* ServerConnection* still in TLS or reading their head, oldest first */
  guint n_evicted;               /* connections cancelled to make room, not yet gone */
  TwpServerOptions options;
  TwpServerStats *stats;
  TwpTlsCredentials *tls_credentials;   /* tls-cert=/tls-key=, for every connection */

  guint64 bytes_from_ws_done;    /* totals of relays that ended */
  guint64 bytes_to_ws_done;
};

enum {
  PROP_0,
  PROP_N_CONNECTIONS,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

G_DEFINE_FINAL_TYPE (TwpServer, twp_server, G_TYPE_OBJECT)
G_DEFINE_QUARK (twp-server-error-quark, twp_server_error)

/* One accepted connection: TLS (optional), HTTP upgrade, tor, relay. */
typedef struct {
  TwpServer *server;             /* a reference */
  GSocketConnection *tcp;
  GIOStream *ws;                 /* tcp, or the TLS connection over it */
  GCancellable *cancellable;
  GSource *deadline;
  GInetSocketAddress *peer;
  GByteArray *head;
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
  g_clear_pointer (&conn->head, g_byte_array_unref);
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
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_N_CONNECTIONS]);
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

static const char *
content_type_for (const char *path)
{
  static const struct { const char *suffix; const char *type; } types[] = {
    { ".html", "text/html; charset=utf-8" },
    { ".css", "text/css" },
    { ".js", "text/javascript" },
    { ".txt", "text/plain; charset=utf-8" },
    { ".png", "image/png" },
    { ".svg", "image/svg+xml" },
    { ".ico", "image/x-icon" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (types); i++)
    if (g_str_has_suffix (path, types[i].suffix))
      return types[i].type;
  return "application/octet-stream";
}

/* GET or HEAD with static-dir set (twp_server_request_check () said 200):
 * the file, or a plain 404. */
static void
answer_plain_http (ServerConnection *conn)
{
  TwpServer *self = conn->server;
  const char *method = conn->request->method;
  g_autofree char *path = NULL;
  g_autofree char *file = NULL;
  g_autofree char *contents = NULL;
  g_autoptr(GBytes) body = NULL;
  GStatBuf info;
  gsize length;
  char *query;

  path = g_uri_unescape_string (conn->request->path, "/");
  if (path == NULL || path[0] != '/' || strstr (path, "..") != NULL)
    {
      send_error (conn, path == NULL ? 400 : 404);
      return;
    }
  query = strchr (path, '?');
  if (query != NULL)
    *query = '\0';
  file = g_build_filename (self->options.static_dir, path,
                           g_str_has_suffix (path, "/") ? "index.html" : NULL, NULL);
  /* The size is checked before reading: a large file must not be read on
   * the main loop for every anonymous request. */
  if (g_stat (file, &info) != 0 || !S_ISREG (info.st_mode) || info.st_size > STATIC_FILE_MAX ||
      !g_file_get_contents (file, &contents, &length, NULL) || length > STATIC_FILE_MAX)
    {
      send_error (conn, 404);
      return;
    }
  body = g_bytes_new_take (g_steal_pointer (&contents), length);
  {
    gsize response_length;
    char *response = twp_http_response_ok (content_type_for (file), body,
                                           g_strcmp0 (method, "HEAD") == 0, &response_length);

    send_answer (conn, response, response_length);
  }
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

static void
handle_request (ServerConnection *conn,
                guint             status,
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
  conn->ws_leftover = g_bytes_new (conn->head->data + head_len, conn->head->len - head_len);
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

  /* tor comes first: a bridge whose tor is down answers 503 instead of
   * accepting a WebSocket it cannot serve. */
  connect_to_tor (conn);
}

static void read_head (ServerConnection *conn);

static void
head_read_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  ServerConnection *conn = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree char *why = NULL;
  gssize n;
  gsize head_len;
  gsize old_len = conn->head->len - 1024;
  guint status;

  n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, &error);
  if (n <= 0)
    {
      server_connection_close (conn);
      return;
    }
  g_byte_array_set_size (conn->head, old_len + n);

  status = twp_server_request_check (&conn->server->options, conn->head->data, conn->head->len,
                                     &head_len, &conn->request, &why);
  if (status == 0)
    {
      read_head (conn);
      return;
    }
  /* A complete head: no longer among the connections closed first when
   * max-connections is reached. */
  stop_reading_head (conn);
  if (why != NULL)
    twp_log_user (TWP_LOG_DEBUG, "answered %u to a request: %s", status, why);
  handle_request (conn, status, head_len);
}

static void
read_head (ServerConnection *conn)
{
  gsize old_len = conn->head->len;

  /* Small reads: the head is bounded by TWP_HTTP_MAX_HEAD_SIZE and what a
   * client pipelines behind it is kept as WebSocket data. */
  g_byte_array_set_size (conn->head, old_len + 1024);
  g_input_stream_read_async (g_io_stream_get_input_stream (conn->ws),
                             conn->head->data + old_len, 1024, G_PRIORITY_DEFAULT,
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
   * A refusal still being written was counted already. */
  if (conn->response == NULL)
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

static gboolean
incoming_cb (GSocketService    *service,
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
  conn->head = g_byte_array_new ();
  if (G_IS_INET_SOCKET_ADDRESS (peer))
    conn->peer = G_INET_SOCKET_ADDRESS (g_steal_pointer (&peer));
  if (key != NULL)
    count_address (conn, g_steal_pointer (&key));
  g_socket_set_option (g_socket_connection_get_socket (connection), IPPROTO_TCP, TCP_NODELAY, 1, NULL);
  g_hash_table_add (self->connections, conn);
  g_queue_push_tail (&self->reading_head, conn);
  conn->reading_head_link = g_queue_peek_tail_link (&self->reading_head);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_N_CONNECTIONS]);

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

/* ---- options ----------------------------------------------------------- */

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
  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
twp_server_init (TwpServer *self)
{
  self->connections = g_hash_table_new_full (NULL, NULL, (GDestroyNotify) server_connection_free, NULL);
  self->per_address = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_queue_init (&self->reading_head);
  self->stats = twp_server_stats_new ();
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

  self->service = g_socket_service_new ();
  g_signal_connect_object (self->service, "incoming", G_CALLBACK (incoming_cb), self, 0);
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
  g_socket_service_start (self->service);
  return G_INET_SOCKET_ADDRESS (g_socket_get_local_address (socket, error));
}

guint
twp_server_get_n_connections (TwpServer *self)
{
  g_return_val_if_fail (TWP_IS_SERVER (self), 0);
  return g_hash_table_size (self->connections);
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
      g_socket_service_stop (self->service);
      g_socket_listener_close (G_SOCKET_LISTENER (self->service));
    }
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
