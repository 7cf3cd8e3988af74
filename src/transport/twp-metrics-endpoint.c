/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-metrics"

#include "config.h"

#include "twp-metrics-endpoint.h"

#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <gio/gunixsocketaddress.h>
#include <glib/gstdio.h>

#include "twp-acceptor.h"
#include "twp-http.h"
#include "twp-log.h"
#include "twp-pt-env.h"

/* A scraper polls every few seconds with one connection; a handful at once
 * is plenty, and the cap keeps a local nuisance from piling them up. */
#define MAX_CLIENTS 4
/* A scrape takes milliseconds; a client silent this long is dropped. */
#define CLIENT_DEADLINE_MS (5 * 1000)
#define READ_CHUNK 1024

struct _TwpMetricsEndpoint
{
  GObject parent_instance;

  /* owned */
  TwpServer *server;
  TwpAcceptor *service;
  GHashTable *clients;           /* MetricsClient* set */
  char *socket_path;             /* the Unix socket we created, removed on stop */
};

G_DEFINE_FINAL_TYPE (TwpMetricsEndpoint, twp_metrics_endpoint, G_TYPE_OBJECT)

/* ---- request parser ---------------------------------------------------- */

static gboolean
is_tchar (guint8 c)
{
  /* strchr () would find the terminating NUL. */
  return g_ascii_isalnum (c) || (c != '\0' && strchr ("!#$%&'*+-.^_`|~", c) != NULL);
}

TwpMetricsRequest
twp_metrics_parse_request (const guint8 *data,
                           gsize         len)
{
  const guint8 *end = NULL;
  const guint8 *p;
  const guint8 *line_end;
  const guint8 *method;
  gsize method_len;
  const guint8 *target;
  gsize target_len;
  gsize path_len;

  g_return_val_if_fail (data != NULL || len == 0, TWP_METRICS_REQUEST_BAD);

  for (gsize i = 0; i < len && i < TWP_METRICS_MAX_REQUEST; i++)
    {
      /* Lines end in CRLF (RFC 9112 2.2); a bare LF would leave us
       * waiting for an end that never comes. */
      if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
        return TWP_METRICS_REQUEST_BAD;
      if (i >= 3 && memcmp (data + i - 3, "\r\n\r\n", 4) == 0)
        {
          end = data + i - 1;   /* just after the last header line's CRLF */
          break;
        }
    }
  if (end == NULL)
    {
      /* Anything that is not even text is refused at once. */
      if (len > 0 && memchr (data, '\0', MIN (len, TWP_METRICS_MAX_REQUEST)) != NULL)
        return TWP_METRICS_REQUEST_BAD;
      return len >= TWP_METRICS_MAX_REQUEST ? TWP_METRICS_REQUEST_TOO_LARGE : TWP_METRICS_REQUEST_INCOMPLETE;
    }

  /* Request line: METHOD SP TARGET SP HTTP/1.x CRLF (RFC 9112 3). */
  p = data;
  line_end = memchr (p, '\r', end - p);
  if (line_end == NULL || line_end[1] != '\n')
    return TWP_METRICS_REQUEST_BAD;
  method = p;
  while (p < line_end && is_tchar (*p))
    p++;
  method_len = p - method;
  if (method_len == 0 || p >= line_end || *p != ' ')
    return TWP_METRICS_REQUEST_BAD;
  target = ++p;
  while (p < line_end && *p > ' ' && *p < 0x7f)
    p++;
  target_len = p - target;
  if (target_len == 0 || target[0] != '/' || p >= line_end || *p != ' ')
    return TWP_METRICS_REQUEST_BAD;
  p++;
  if (line_end - p != 8 || memcmp (p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1'))
    return TWP_METRICS_REQUEST_BAD;

  /* Header lines: NAME ":" VALUE, no control bytes but tab. Their
   * contents do not matter to us. */
  for (p = line_end + 2; p < end; p = line_end + 2)
    {
      const guint8 *name = p;

      line_end = memchr (p, '\r', end - p);
      if (line_end == NULL || line_end[1] != '\n')
        return TWP_METRICS_REQUEST_BAD;
      while (p < line_end && is_tchar (*p))
        p++;
      if (p == name || p >= line_end || *p != ':')
        return TWP_METRICS_REQUEST_BAD;
      for (; p < line_end; p++)
        if ((*p < ' ' && *p != '\t') || *p == 0x7f)
          return TWP_METRICS_REQUEST_BAD;
    }

  path_len = 0;
  while (path_len < target_len && target[path_len] != '?')
    path_len++;
  if (path_len != strlen ("/metrics") || memcmp (target, "/metrics", path_len) != 0)
    return TWP_METRICS_REQUEST_NOT_FOUND;
  if (method_len == 3 && memcmp (method, "GET", 3) == 0)
    return TWP_METRICS_REQUEST_GET;
  if (method_len == 4 && memcmp (method, "HEAD", 4) == 0)
    return TWP_METRICS_REQUEST_HEAD;
  return TWP_METRICS_REQUEST_BAD_METHOD;
}

/* ---- addresses --------------------------------------------------------- */

GSocketAddress *
twp_metrics_address_parse (const char  *value,
                           GError     **error)
{
  g_autofree char *host = NULL;
  g_autoptr(GInetAddress) address = NULL;
  guint16 port;

  g_return_val_if_fail (value != NULL, NULL);

  if (value[0] == '/')
    {
      /* sun_path holds 108 bytes with the NUL. */
      if (strlen (value) >= 108)
        {
          g_set_error (error, TWP_SERVER_ERROR, TWP_SERVER_ERROR_INVALID_OPTION,
                       "metrics= socket path is longer than 107 bytes");
          return NULL;
        }
      return g_unix_socket_address_new (value);
    }
  if (!twp_parse_ip_port (value, FALSE, &host, &port, NULL) ||
      (address = g_inet_address_new_from_string (host)) == NULL)
    {
      g_set_error (error, TWP_SERVER_ERROR, TWP_SERVER_ERROR_INVALID_OPTION,
                   "metrics= must be IP:PORT (127.0.0.1:9100, [::1]:9100) or an absolute socket path");
      return NULL;
    }
  return g_inet_socket_address_new (address, port);
}

gboolean
twp_metrics_address_is_local (GSocketAddress *address)
{
  g_return_val_if_fail (G_IS_SOCKET_ADDRESS (address), FALSE);

  if (G_IS_UNIX_SOCKET_ADDRESS (address))
    return TRUE;
  return G_IS_INET_SOCKET_ADDRESS (address) &&
         g_inet_address_get_is_loopback (g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (address)));
}

/* ---- exposition -------------------------------------------------------- */

static void
append_header (GString    *out,
               const char *name,
               const char *type,
               const char *help)
{
  g_string_append_printf (out, "# HELP tor_websocket_proxy_%s %s\n# TYPE tor_websocket_proxy_%s %s\n",
                          name, help, name, type);
}

static void
append_value (GString    *out,
              const char *name,
              const char *labels,
              guint64     value)
{
  g_string_append_printf (out, "tor_websocket_proxy_%s%s %" G_GUINT64_FORMAT "\n", name, labels, value);
}

static void
append_labelled (GString       *out,
                 const char    *name,
                 const char    *label,
                 const char    *value,
                 guint64        number)
{
  g_string_append_printf (out, "tor_websocket_proxy_%s{%s=\"%s\"} %" G_GUINT64_FORMAT "\n",
                          name, label, value, number);
}

static void
append_histogram (GString                  *out,
                  const char               *name,
                  const char               *help,
                  const TwpServerHistogram *histogram)
{
  char number[G_ASCII_DTOSTR_BUF_SIZE];
  guint64 cumulative = 0;

  append_header (out, name, "histogram", help);
  for (guint i = 0; i < TWP_SERVER_STATS_N_BUCKETS; i++)
    {
      cumulative += histogram->counts[i];
      g_ascii_formatd (number, sizeof number, "%g", twp_server_stats_buckets[i]);
      g_string_append_printf (out, "tor_websocket_proxy_%s_bucket{le=\"%s\"} %" G_GUINT64_FORMAT "\n",
                              name, number, cumulative);
    }
  g_string_append_printf (out, "tor_websocket_proxy_%s_bucket{le=\"+Inf\"} %" G_GUINT64_FORMAT "\n",
                          name, histogram->count);
  g_ascii_formatd (number, sizeof number, "%.6f", histogram->sum_seconds);
  g_string_append_printf (out, "tor_websocket_proxy_%s_sum %s\n", name, number);
  g_string_append_printf (out, "tor_websocket_proxy_%s_count %" G_GUINT64_FORMAT "\n", name, histogram->count);
}

char *
twp_metrics_format (const TwpServerCounters *c,
                    guint64                  rss_bytes,
                    guint                    n_fds)
{
  static const char *const modes[2] = { "binary", "base64" };
  static const char *const schemes[2] = { "ws", "wss" };
  GString *out = g_string_sized_new (8192);

  g_return_val_if_fail (c != NULL, NULL);

  /* Every label value below comes from a fixed table: nothing a client
   * sends, and nothing that names a client or the bridge. */
  append_header (out, "connections_open", "gauge", "Connections open now, handshaking or relaying.");
  append_value (out, "connections_open", "", c->connections_open);
  append_header (out, "connections_max", "gauge", "The max-connections cap (0: unlimited).");
  append_value (out, "connections_max", "", c->connections_max);
  append_header (out, "connections_accepted_total", "counter", "TCP connections accepted.");
  append_value (out, "connections_accepted_total", "", c->connections_accepted);

  append_header (out, "tunnels_open", "gauge", "Tunnels relaying now, by frame mode and scheme.");
  for (guint mode = 0; mode < 2; mode++)
    for (guint tls = 0; tls < 2; tls++)
      g_string_append_printf (out, "tor_websocket_proxy_tunnels_open{mode=\"%s\",scheme=\"%s\"} "
                              "%" G_GUINT64_FORMAT "\n",
                              modes[mode], schemes[tls],
                              c->tunnels_opened[mode][tls] - c->tunnels_closed[mode][tls]);
  append_header (out, "tunnels_total", "counter", "Tunnels opened (101 sent), by frame mode and scheme.");
  for (guint mode = 0; mode < 2; mode++)
    for (guint tls = 0; tls < 2; tls++)
      g_string_append_printf (out, "tor_websocket_proxy_tunnels_total{mode=\"%s\",scheme=\"%s\"} "
                              "%" G_GUINT64_FORMAT "\n",
                              modes[mode], schemes[tls], c->tunnels_opened[mode][tls]);

  append_header (out, "handshakes_completed_total", "counter", "WebSocket handshakes completed.");
  append_value (out, "handshakes_completed_total", "", c->handshake_seconds.count);
  append_header (out, "handshakes_refused_total", "counter", "Connections that got no tunnel, by reason.");
  for (guint i = 0; i < TWP_SERVER_N_REFUSALS; i++)
    append_labelled (out, "handshakes_refused_total", "reason", twp_server_refusal_to_string (i), c->refused[i]);

  append_header (out, "tunnel_closes_total", "counter", "Tunnels ended, by the first reason.");
  for (guint i = TWP_RELAY_END_NORMAL; i < TWP_RELAY_N_ENDS; i++)
    append_labelled (out, "tunnel_closes_total", "reason", twp_relay_end_to_string (i), c->tunnel_ends[i]);
  append_header (out, "protocol_closes_total", "counter",
                 "Tunnels we closed for a peer's protocol error, by the close code we sent.");
  for (guint i = 0; i <= TWP_SERVER_STATS_N_CLOSE_CODES; i++)
    append_labelled (out, "protocol_closes_total", "code", twp_server_stats_close_code_label (i),
                     c->protocol_closes[i]);
  append_header (out, "peer_closes_total", "counter", "Close frames peers sent, by close code.");
  for (guint i = 0; i <= TWP_SERVER_STATS_N_CLOSE_CODES; i++)
    append_labelled (out, "peer_closes_total", "code", twp_server_stats_close_code_label (i), c->peer_closes[i]);

  append_header (out, "bytes_total", "counter", "Payload bytes relayed, by direction.");
  append_labelled (out, "bytes_total", "direction", "from_websocket", c->bytes_from_ws);
  append_labelled (out, "bytes_total", "direction", "to_websocket", c->bytes_to_ws);

  append_header (out, "extorport_failures_total", "counter",
                 "Failures to connect to or authenticate with tor's Extended ORPort, by kind.");
  for (guint i = 0; i < TWP_SERVER_N_EXTORPORT_FAILURES; i++)
    append_labelled (out, "extorport_failures_total", "kind", twp_server_extorport_failure_to_string (i),
                     c->extorport_failures[i]);

  append_histogram (out, "handshake_duration_seconds",
                    "From accepting a connection to writing its 101.", &c->handshake_seconds);
  append_histogram (out, "extorport_setup_duration_seconds",
                    "From connecting to tor's (Extended) ORPort to its OKAY.", &c->extorport_seconds);

  append_header (out, "resident_memory_bytes", "gauge", "Resident memory of this process (VmRSS).");
  append_value (out, "resident_memory_bytes", "", rss_bytes);
  append_header (out, "open_fds", "gauge", "File descriptors open in this process.");
  append_value (out, "open_fds", "", n_fds);
  return g_string_free (out, FALSE);
}

/* ---- HTTP -------------------------------------------------------------- */

typedef struct {
  TwpMetricsEndpoint *endpoint;  /* borrowed: the endpoint owns us */
  GSocketConnection *connection;
  GCancellable *cancellable;
  GSource *deadline;
  GByteArray *in;
  char *response;
  gsize response_len;
} MetricsClient;

static void
metrics_client_free (MetricsClient *client)
{
  g_cancellable_cancel (client->cancellable);
  if (client->deadline != NULL)
    g_source_destroy (client->deadline);
  g_clear_pointer (&client->deadline, g_source_unref);
  g_io_stream_close_async (G_IO_STREAM (client->connection), G_PRIORITY_DEFAULT, NULL, NULL, NULL);
  g_clear_object (&client->connection);
  g_clear_object (&client->cancellable);
  g_byte_array_unref (client->in);
  g_free (client->response);
  g_free (client);
}

static void
metrics_client_close (MetricsClient *client)
{
  g_hash_table_remove (client->endpoint->clients, client);
}

static void linger (MetricsClient *client);

static void
linger_read_cb (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr(GError) error = NULL;
  gssize n;

  n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  if (n <= 0)
    metrics_client_close (user_data);
  else
    linger (user_data);
}

/* Closing with unread bytes (a refused oversized request) resets the
 * connection, and the client may lose our answer: half-close, then drop
 * what still comes until it closes or the deadline passes. */
static void
linger (MetricsClient *client)
{
  g_byte_array_set_size (client->in, READ_CHUNK);
  g_input_stream_read_async (g_io_stream_get_input_stream (G_IO_STREAM (client->connection)),
                             client->in->data, READ_CHUNK, G_PRIORITY_DEFAULT,
                             client->cancellable, linger_read_cb, client);
}

static void
response_written_cb (GObject      *source,
                     GAsyncResult *result,
                     gpointer      user_data)
{
  MetricsClient *client = user_data;
  g_autoptr(GError) error = NULL;

  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, &error))
    {
      /* Cancelled: the client is already freed. */
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        metrics_client_close (client);
      return;
    }
  g_socket_shutdown (g_socket_connection_get_socket (client->connection), FALSE, TRUE, NULL);
  linger (client);
}

static void
respond (MetricsClient     *client,
         TwpMetricsRequest  request)
{
  g_autofree char *body = NULL;
  const char *status;
  const char *type = "text/plain; charset=utf-8";
  const char *extra = "";
  GString *response;

  switch (request)
    {
    case TWP_METRICS_REQUEST_GET:
    case TWP_METRICS_REQUEST_HEAD:
      {
        TwpServerStats *stats = twp_server_get_stats (client->endpoint->server);
        guint64 rss;
        guint fds;

        twp_server_stats_read_process (&rss, &fds);
        body = twp_metrics_format (twp_server_stats_get_counters (stats), rss, fds);
        status = "200 OK";
        type = "text/plain; version=0.0.4; charset=utf-8";
      }
      break;
    case TWP_METRICS_REQUEST_NOT_FOUND:
      status = "404 Not Found";
      body = g_strdup ("Not found; the metrics are at /metrics\n");
      break;
    case TWP_METRICS_REQUEST_BAD_METHOD:
      status = "405 Method Not Allowed";
      extra = "Allow: GET, HEAD\r\n";
      body = g_strdup ("Only GET and HEAD\n");
      break;
    case TWP_METRICS_REQUEST_TOO_LARGE:
      status = "431 Request Header Fields Too Large";
      body = g_strdup ("Request too large\n");
      break;
    case TWP_METRICS_REQUEST_BAD:
    case TWP_METRICS_REQUEST_INCOMPLETE:
    default:
      status = "400 Bad Request";
      body = g_strdup ("Bad request\n");
      break;
    }

  /* One response per connection: no keep-alive to track. */
  response = g_string_new (NULL);
  g_string_append_printf (response,
                          "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %" G_GSIZE_FORMAT "\r\n"
                          "Cache-Control: no-store\r\n%sConnection: close\r\n\r\n",
                          status, type, strlen (body), extra);
  if (request != TWP_METRICS_REQUEST_HEAD)
    g_string_append (response, body);
  client->response_len = response->len;
  client->response = g_string_free (response, FALSE);
  g_output_stream_write_all_async (g_io_stream_get_output_stream (G_IO_STREAM (client->connection)),
                                   client->response, client->response_len, G_PRIORITY_DEFAULT,
                                   client->cancellable, response_written_cb, client);
}

/* Where a scrape's head ends, for twp_http_read_head_async (): as soon as
 * the parser can answer, which for garbage (a bare LF, a NUL) is before
 * any end. */
static gsize
request_end (const guint8  *data,
             gsize          len,
             GError       **error)
{
  return twp_metrics_parse_request (data, len) == TWP_METRICS_REQUEST_INCOMPLETE ? 0 : len;
}

static void
request_read_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  MetricsClient *client = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) head = NULL;
  gsize head_len;

  head = twp_http_read_head_finish (G_INPUT_STREAM (source), result, &head_len, &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  if (head == NULL)
    {
      metrics_client_close (client);
      return;
    }
  respond (client, twp_metrics_parse_request (g_bytes_get_data (head, NULL), head_len));
}

static void
read_request (MetricsClient *client)
{
  /* The parser answers TOO_LARGE at TWP_METRICS_MAX_REQUEST: at most one
   * read more is ever held. */
  twp_http_read_head_async (g_io_stream_get_input_stream (G_IO_STREAM (client->connection)),
                            request_end, TWP_METRICS_MAX_REQUEST, client->cancellable,
                            request_read_cb, client);
}

static gboolean
client_deadline_cb (gpointer user_data)
{
  MetricsClient *client = user_data;

  g_clear_pointer (&client->deadline, g_source_unref);
  metrics_client_close (client);
  return G_SOURCE_REMOVE;
}

static gboolean
incoming_cb (TwpAcceptor       *service,
             GSocketConnection *connection,
             GObject           *source_object,
             gpointer           user_data)
{
  TwpMetricsEndpoint *self = user_data;
  MetricsClient *client;

  if (g_hash_table_size (self->clients) >= MAX_CLIENTS)
    {
      g_io_stream_close (G_IO_STREAM (connection), NULL, NULL);
      return TRUE;
    }

  client = g_new0 (MetricsClient, 1);
  client->endpoint = self;
  client->connection = g_object_ref (connection);
  client->cancellable = g_cancellable_new ();
  client->in = g_byte_array_new ();
  g_hash_table_add (self->clients, client);

  client->deadline = g_timeout_source_new (CLIENT_DEADLINE_MS);
  g_source_set_static_name (client->deadline, "[twp] metrics request deadline");
  g_source_set_callback (client->deadline, client_deadline_cb, client, NULL);
  g_source_attach (client->deadline, g_main_context_get_thread_default ());

  read_request (client);
  return TRUE;
}

/* ---- object ------------------------------------------------------------ */

void
twp_metrics_endpoint_stop (TwpMetricsEndpoint *self)
{
  g_return_if_fail (TWP_IS_METRICS_ENDPOINT (self));

  if (self->service != NULL)
    {
      twp_acceptor_stop (self->service);
      g_socket_listener_close (G_SOCKET_LISTENER (self->service));
    }
  g_hash_table_remove_all (self->clients);
  if (self->socket_path != NULL)
    g_unlink (self->socket_path);
  g_clear_pointer (&self->socket_path, g_free);
}

static void
twp_metrics_endpoint_dispose (GObject *object)
{
  TwpMetricsEndpoint *self = TWP_METRICS_ENDPOINT (object);

  twp_metrics_endpoint_stop (self);
  g_clear_object (&self->service);
  g_clear_object (&self->server);

  G_OBJECT_CLASS (twp_metrics_endpoint_parent_class)->dispose (object);
}

static void
twp_metrics_endpoint_finalize (GObject *object)
{
  TwpMetricsEndpoint *self = TWP_METRICS_ENDPOINT (object);

  g_assert (g_hash_table_size (self->clients) == 0);
  g_hash_table_unref (self->clients);

  G_OBJECT_CLASS (twp_metrics_endpoint_parent_class)->finalize (object);
}

static void
twp_metrics_endpoint_class_init (TwpMetricsEndpointClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = twp_metrics_endpoint_dispose;
  object_class->finalize = twp_metrics_endpoint_finalize;
}

static void
twp_metrics_endpoint_init (TwpMetricsEndpoint *self)
{
  self->clients = g_hash_table_new_full (NULL, NULL, (GDestroyNotify) metrics_client_free, NULL);
}

TwpMetricsEndpoint *
twp_metrics_endpoint_new (TwpServer *server)
{
  TwpMetricsEndpoint *self;

  g_return_val_if_fail (TWP_IS_SERVER (server), NULL);

  self = g_object_new (TWP_TYPE_METRICS_ENDPOINT, NULL);
  self->server = g_object_ref (server);
  return self;
}

gboolean
twp_metrics_endpoint_listen (TwpMetricsEndpoint  *self,
                             GSocketAddress      *address,
                             GError             **error)
{
  g_autoptr(GSocket) socket = NULL;

  g_return_val_if_fail (TWP_IS_METRICS_ENDPOINT (self), FALSE);
  g_return_val_if_fail (G_IS_SOCKET_ADDRESS (address), FALSE);
  g_return_val_if_fail (self->service == NULL, FALSE);

  if (G_IS_UNIX_SOCKET_ADDRESS (address))
    {
      const char *path = g_unix_socket_address_get_path (G_UNIX_SOCKET_ADDRESS (address));
      GStatBuf info;

      /* A socket left by an earlier run (tor restarts us) is ours to
       * replace; any other file is not. */
      if (g_lstat (path, &info) == 0 && S_ISSOCK (info.st_mode))
        g_unlink (path);
      socket = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_DEFAULT, error);
    }
  else
    {
      socket = g_socket_new (g_socket_address_get_family (address), G_SOCKET_TYPE_STREAM,
                             G_SOCKET_PROTOCOL_TCP, error);
      /* A restarted transport binds the same port at once. */
      if (socket != NULL)
        g_socket_set_option (socket, SOL_SOCKET, SO_REUSEADDR, 1, NULL);
    }
  if (socket == NULL)
    return FALSE;

  self->service = twp_acceptor_new ();
  g_signal_connect_object (self->service, "incoming", G_CALLBACK (incoming_cb), self, 0);
  if (!g_socket_bind (socket, address, TRUE, error) ||
      !g_socket_listen (socket, error) ||
      !g_socket_listener_add_socket (G_SOCKET_LISTENER (self->service), socket, NULL, error))
    {
      g_clear_object (&self->service);
      return FALSE;
    }
  if (G_IS_UNIX_SOCKET_ADDRESS (address))
    self->socket_path = g_strdup (g_unix_socket_address_get_path (G_UNIX_SOCKET_ADDRESS (address)));
  twp_acceptor_start (self->service);
  return TRUE;
}
