/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-client"

#include "config.h"

#include "twp-client.h"

#include <netinet/in.h>
#include <netinet/tcp.h>

#include "twp-acceptor.h"
#include "twp-enum-types.h"
#include "twp-failure.h"
#include "twp-bridge-private.h"
#include "twp-deadline.h"
#include "twp-log.h"
#include "twp-socks.h"
#include "twp-state-enums.h"

/* Every distinct bridge line tor (or any local process: the SOCKS port has
 * no authentication) asks for makes a bridge object, mirrored on D-Bus.
 * The table is bounded: a bridge with no attempt and no tunnel is forgotten
 * after this long, and beyond the cap the least recently used idle one
 * goes. Both can be changed for tests (TwpClientOptions). */
#define DEFAULT_BRIDGE_IDLE_TIMEOUT_MS (10 * 60 * 1000)
#define DEFAULT_MAX_BRIDGES 256
/* A full table of busy bridges refuses new ones: logged at most this often. */
#define FULL_LOG_INTERVAL_US (10 * G_USEC_PER_SEC)

/* One bridge in the table, with what the client counts about it. */
typedef struct {
  TwpClient *client;             /* borrowed: the client owns the entry */
  TwpBridge *bridge;             /* owned */
  TwpBridgeState counted;        /* the state counted in the client's totals */
  GList idle_link;               /* in client->idle while no attempt or tunnel uses the bridge */
  gint64 idle_since;             /* monotonic, while idle */
  gulong state_handler;
  gulong failure_handler;
} BridgeEntry;

struct _TwpClient
{
  GObject parent_instance;

  /* owned */
  TwpAcceptor *service;
  GHashTable *connections;       /* ClientConnection* set */
  TwpClientOptions options;      /* with references to its objects */
  GListStore *bridges;           /* TwpBridge, in order of first use */
  GHashTable *bridges_by_key;    /* key -> BridgeEntry* (owned) */
  GQueue idle;                   /* BridgeEntry*, idle longest first */
  GSource *expiry;               /* due when the longest idle bridge expires */
  char *last_failure_details;

  /* Bridges by state, kept as they change, so that no state change walks
   * the table. */
  guint n_connected;
  guint n_connecting;
  guint n_failing;
  /* Payload of tunnels that ended (those open are read from their relays). */
  guint64 bytes_sent_closed;
  guint64 bytes_received_closed;
  gint64 full_logged_at;
  guint full_refused;            /* refused since the last such log line */

  TwpFrameMode frame_mode;
  TwpTransportState state;
  gboolean listening;
  gint64 last_failure_time;
  TwpFailureReason last_failure_reason;
};

enum {
  PROP_0,
  PROP_FRAME_MODE,
  PROP_N_CONNECTIONS,
  PROP_STATE,
  PROP_LAST_FAILURE_TIME,
  PROP_LAST_FAILURE_REASON,
  PROP_LAST_FAILURE_DETAILS,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

G_DEFINE_FINAL_TYPE (TwpClient, twp_client, G_TYPE_OBJECT)

/* One SOCKS connection from tor, from handshake to the end of its relay. */
typedef struct {
  TwpClient *client;              /* a reference: callbacks may outlive twp_client_stop () */
  GSocketConnection *tcp;
  GCancellable *cancellable;
  TwpDeadline *socks_deadline;
  TwpSocksRequest *request;
  GBytes *tcp_leftover;
  TwpBridgeConfig *config;
  TwpBridge *bridge;
  TwpDial *dial;
  TwpRelay *relay;
  gboolean base64;
} ClientConnection;

static void
client_connection_free (ClientConnection *conn)
{
  g_clear_pointer (&conn->socks_deadline, twp_deadline_free);
  g_clear_object (&conn->tcp);
  g_clear_object (&conn->cancellable);
  g_clear_pointer (&conn->request, twp_socks_request_free);
  g_clear_pointer (&conn->tcp_leftover, g_bytes_unref);
  g_clear_object (&conn->dial);
  g_clear_object (&conn->relay);
  g_clear_pointer (&conn->config, twp_bridge_config_free);
  g_clear_object (&conn->bridge);
  g_clear_object (&conn->client);
  g_free (conn);
}

static void
client_connection_close (ClientConnection *conn)
{
  /* Removing the connection drops its reference on the client. */
  g_autoptr(TwpClient) self = g_object_ref (conn->client);

  g_cancellable_cancel (conn->cancellable);
  g_io_stream_close_async (G_IO_STREAM (conn->tcp), G_PRIORITY_DEFAULT, NULL, NULL, NULL);
  if (g_hash_table_remove (self->connections, conn))
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_N_CONNECTIONS]);
}

/* ---- relay ------------------------------------------------------------- */

static void
relay_done_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  ClientConnection *conn = user_data;
  g_autoptr(GError) error = NULL;

  if (!twp_relay_run_finish (TWP_RELAY (source), result, &error) &&
      !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    twp_log_user (TWP_LOG_INFO, "connection to bridge ended: %s", error->message);
  twp_bridge_tunnel_closed (conn->bridge, conn->relay, error);
  conn->client->bytes_sent_closed += twp_relay_get_bytes_to_ws (conn->relay);
  conn->client->bytes_received_closed += twp_relay_get_bytes_from_ws (conn->relay);
  client_connection_close (conn);
}

static void
start_relay (ClientConnection *conn,
             GIOStream        *ws,
             GBytes           *ws_leftover)
{
  TwpRelayOptions options = conn->client->options.relay;

  options.is_client = TRUE;
  options.base64 = conn->base64;
  conn->relay = twp_relay_new (G_IO_STREAM (conn->tcp), ws, conn->tcp_leftover, ws_leftover, &options);
  twp_bridge_tunnel_opened (conn->bridge, conn->relay);
  twp_relay_run_async (conn->relay, conn->cancellable, relay_done_cb, conn);
}

/* ---- SOCKS reply ------------------------------------------------------- */

typedef struct {
  ClientConnection *conn;
  GIOStream *ws;               /* NULL when the reply reports a failure */
  GBytes *ws_leftover;
} ReplyData;

static void
reply_data_free (ReplyData *data)
{
  g_clear_object (&data->ws);
  g_clear_pointer (&data->ws_leftover, g_bytes_unref);
  g_free (data);
}

static void
reply_written_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  ReplyData *data = user_data;
  ClientConnection *conn = data->conn;
  g_autoptr(GError) error = NULL;

  if (!twp_socks_server_reply_finish (G_IO_STREAM (source), result, &error) || data->ws == NULL)
    {
      if (data->ws != NULL)
        g_io_stream_close_async (data->ws, G_PRIORITY_DEFAULT, NULL, NULL, NULL);
      client_connection_close (conn);
    }
  else
    {
      start_relay (conn, data->ws, data->ws_leftover);
    }
  reply_data_free (data);
}

static void
send_reply (ClientConnection *conn,
            TwpSocksReply     reply,
            GIOStream        *ws,
            GBytes           *ws_leftover)
{
  ReplyData *data = g_new0 (ReplyData, 1);

  data->conn = conn;
  data->ws = ws != NULL ? g_object_ref (ws) : NULL;
  data->ws_leftover = ws_leftover != NULL ? g_bytes_ref (ws_leftover) : NULL;
  twp_socks_server_reply_async (G_IO_STREAM (conn->tcp), conn->request, reply,
                                conn->cancellable, reply_written_cb, data);
}

/* ---- dial -------------------------------------------------------------- */

static void
dial_done_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  ClientConnection *conn = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) leftover = NULL;
  g_autoptr(GIOStream) ws = NULL;

  ws = twp_dial_run_finish (TWP_DIAL (source), result, &leftover, &error);
  if (ws == NULL)
    {
      g_autofree char *url = NULL;

      if (g_cancellable_is_cancelled (conn->cancellable) &&
          !g_error_matches (error, TWP_DIAL_ERROR, TWP_DIAL_ERROR_TIMED_OUT))
        {
          twp_bridge_attempt_cancelled (conn->bridge, conn->dial);
          client_connection_close (conn);
          return;
        }
      url = g_uri_to_string (conn->config->uri);
      twp_log_user (TWP_LOG_WARNING, "cannot open WebSocket to bridge %s: %s",
                    twp_log_redact (url), error->message);
      twp_bridge_attempt_failed (conn->bridge, conn->dial, error);
      send_reply (conn, twp_failure_socks_reply (error), NULL, NULL);
      return;
    }

  twp_log_user (TWP_LOG_DEBUG, "WebSocket open (%s frames)", conn->base64 ? "base64" : "binary");
  twp_bridge_attempt_succeeded (conn->bridge, conn->dial);
  /* C13: tor hears success only now, when the tunnel really works. */
  send_reply (conn, TWP_SOCKS_REPLY_SUCCEEDED, ws, leftover);
}

/* ---- SOCKS handshake --------------------------------------------------- */

static TwpArgs *
parse_args (TwpClient   *self,
            const char  *args,
            gsize        args_len,
            GError     **error)
{
  if (args_len == 0 && self->options.default_args != NULL)
    {
      /* Unmanaged mode: command-line defaults for plain SOCKS clients. */
      g_autoptr(TwpArgs) copy = twp_args_new ();

      for (guint i = 0; i < twp_args_get_length (self->options.default_args); i++)
        twp_args_add (copy, twp_args_get_key (self->options.default_args, i),
                      twp_args_get_value (self->options.default_args, i));
      return g_steal_pointer (&copy);
    }
  return twp_args_parse_socks (args, args_len, error);
}

/* C10: arguments that do not parse fail the SOCKS authentication, so tor
 * logs why instead of us connecting somewhere unintended. */
static gboolean
validate_args_cb (const char  *args,
                  gsize        args_len,
                  gpointer     user_data,
                  GError     **error)
{
  ClientConnection *conn = user_data;
  g_autoptr(TwpArgs) parsed = NULL;
  g_autoptr(TwpBridgeConfig) config = NULL;

  parsed = parse_args (conn->client, args, args_len, error);
  if (parsed == NULL)
    return FALSE;
  /* The real bridge address is not known yet; any address validates the
   * rest of the arguments. */
  config = twp_bridge_config_new (parsed, "0.0.0.0", 1, error);
  return config != NULL;
}

/* ---- bridges and state ------------------------------------------------ */

static void
set_last_failure (TwpClient        *self,
                  TwpFailureReason  reason,
                  const char       *details)
{
  self->last_failure_time = g_get_real_time () / G_USEC_PER_SEC;
  self->last_failure_reason = reason;
  g_free (self->last_failure_details);
  /* Details quote bridge arguments, which any local process can send. */
  self->last_failure_details = twp_log_make_valid (details, -1);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_LAST_FAILURE_TIME]);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_LAST_FAILURE_REASON]);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_LAST_FAILURE_DETAILS]);
}

static void
update_state (TwpClient *self)
{
  TwpTransportState state = TWP_TRANSPORT_STATE_STARTING;
  guint n_connected = self->n_connected;
  guint n_connecting = self->n_connecting;
  guint n_failing = self->n_failing;

  if (self->listening)
    {
      if (n_connected > 0)
        state = n_failing > 0 ? TWP_TRANSPORT_STATE_DEGRADED : TWP_TRANSPORT_STATE_CONNECTED;
      else if (n_connecting > 0)
        state = TWP_TRANSPORT_STATE_CONNECTING;
      else if (n_failing > 0)
        state = TWP_TRANSPORT_STATE_FAILING;
      else
        state = TWP_TRANSPORT_STATE_READY;
    }

  if (state == self->state)
    return;
  self->state = state;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STATE]);
}

static guint *
state_counter (TwpClient      *self,
               TwpBridgeState  state)
{
  switch (state)
    {
    case TWP_BRIDGE_STATE_CONNECTED:
      return &self->n_connected;
    case TWP_BRIDGE_STATE_CONNECTING:
      return &self->n_connecting;
    case TWP_BRIDGE_STATE_FAILING:
      return &self->n_failing;
    case TWP_BRIDGE_STATE_IDLE:
    case TWP_BRIDGE_STATE_UNKNOWN:
    default:
      return NULL;
    }
}

static guint
bridge_idle_timeout_ms (TwpClient *self)
{
  return self->options.bridge_idle_timeout_ms > 0 ? self->options.bridge_idle_timeout_ms
                                                  : DEFAULT_BRIDGE_IDLE_TIMEOUT_MS;
}

static guint
max_bridges (TwpClient *self)
{
  return self->options.max_bridges > 0 ? self->options.max_bridges : DEFAULT_MAX_BRIDGES;
}

static gboolean expiry_cb (gpointer user_data);

static void
arm_expiry (TwpClient *self)
{
  BridgeEntry *oldest = g_queue_peek_head (&self->idle);
  gint64 due;

  if (self->expiry != NULL || oldest == NULL)
    return;
  /* One timer for the whole table: the queue is in idle order, so only
   * its head can be due. */
  due = oldest->idle_since + (gint64) bridge_idle_timeout_ms (self) * 1000;
  self->expiry = g_timeout_source_new (MAX (0, (due - g_get_monotonic_time ()) / 1000 + 1));
  g_source_set_static_name (self->expiry, "[twp] bridge expiry");
  g_source_set_callback (self->expiry, expiry_cb, self, NULL);
  g_source_attach (self->expiry, g_main_context_get_thread_default ());
}

static void
disarm_expiry (TwpClient *self)
{
  if (self->expiry != NULL)
    g_source_destroy (self->expiry);
  g_clear_pointer (&self->expiry, g_source_unref);
}

/* A bridge is idle when no attempt and no tunnel uses it. */
static gboolean
state_is_idle (TwpBridgeState state)
{
  return state == TWP_BRIDGE_STATE_IDLE || state == TWP_BRIDGE_STATE_FAILING;
}

/* Brings the client's totals and the idle queue in line with the
 * bridge's state: O(1), whatever the number of bridges. */
static void
entry_count_state (BridgeEntry *entry)
{
  TwpClient *self = entry->client;
  TwpBridgeState state = twp_bridge_get_state (entry->bridge);
  guint *counter;

  if ((counter = state_counter (self, entry->counted)) != NULL)
    (*counter)--;
  if ((counter = state_counter (self, state)) != NULL)
    (*counter)++;

  if (state_is_idle (state) && !state_is_idle (entry->counted))
    {
      entry->idle_since = g_get_monotonic_time ();
      g_queue_push_tail_link (&self->idle, &entry->idle_link);
      arm_expiry (self);
    }
  else if (!state_is_idle (state) && state_is_idle (entry->counted))
    {
      g_queue_unlink (&self->idle, &entry->idle_link);
    }
  entry->counted = state;
}

static void
bridge_state_cb (TwpBridge  *bridge,
                 GParamSpec *pspec,
                 gpointer    user_data)
{
  BridgeEntry *entry = user_data;

  entry_count_state (entry);
  update_state (entry->client);
}

static void
bridge_failure_cb (TwpBridge  *bridge,
                   GParamSpec *pspec,
                   gpointer    user_data)
{
  BridgeEntry *entry = user_data;

  set_last_failure (entry->client, twp_bridge_get_last_failure_reason (bridge),
                    twp_bridge_get_last_failure_details (bridge));
}

/* The hash table's value destructor: the entry leaves the totals, the
 * idle queue and the list model. */
static void
bridge_entry_free (BridgeEntry *entry)
{
  TwpClient *self = entry->client;
  guint *counter = state_counter (self, entry->counted);
  guint position;

  if (counter != NULL)
    (*counter)--;
  if (state_is_idle (entry->counted))
    g_queue_unlink (&self->idle, &entry->idle_link);
  g_signal_handler_disconnect (entry->bridge, entry->state_handler);
  g_signal_handler_disconnect (entry->bridge, entry->failure_handler);
  /* Linear in the table, which is bounded; only when a bridge goes. */
  if (self->bridges != NULL && g_list_store_find (self->bridges, entry->bridge, &position))
    g_list_store_remove (self->bridges, position);
  g_object_unref (entry->bridge);
  g_free (entry);
}

static void
remove_bridge (TwpClient   *self,
               BridgeEntry *entry)
{
  /* Open connections keep their own reference to the bridge. */
  g_hash_table_remove (self->bridges_by_key, twp_bridge_get_key (entry->bridge));
}

static gboolean
expiry_cb (gpointer user_data)
{
  TwpClient *self = user_data;
  gint64 now = g_get_monotonic_time ();
  gint64 timeout_us = (gint64) bridge_idle_timeout_ms (self) * 1000;
  gboolean removed = FALSE;
  BridgeEntry *oldest;

  g_clear_pointer (&self->expiry, g_source_unref);
  while ((oldest = g_queue_peek_head (&self->idle)) != NULL && oldest->idle_since + timeout_us <= now)
    {
      remove_bridge (self, oldest);
      removed = TRUE;
    }
  if (removed)
    update_state (self);
  arm_expiry (self);
  return G_SOURCE_REMOVE;
}

/* One object per distinct bridge line: the same arguments to the same
 * address are the same bridge. NULL when the table is full of bridges in
 * use. */
static TwpBridge *
lookup_bridge (TwpClient  *self,
               TwpArgs    *args,
               const char *host,
               guint16     port)
{
  g_autoptr(GString) key = g_string_new (NULL);
  g_autoptr(GError) error = NULL;
  TwpBridgeConfig *config;
  BridgeEntry *entry;

  g_string_append_printf (key, "%s %u", host, port);
  for (guint i = 0; i < twp_args_get_length (args); i++)
    g_string_append_printf (key, " %s=%s", twp_args_get_key (args, i), twp_args_get_value (args, i));

  entry = g_hash_table_lookup (self->bridges_by_key, key->str);
  if (entry != NULL)
    return entry->bridge;

  if (g_hash_table_size (self->bridges_by_key) >= max_bridges (self))
    {
      BridgeEntry *oldest = g_queue_peek_head (&self->idle);

      if (oldest == NULL)
        return NULL;
      /* The least recently used idle bridge makes room. */
      remove_bridge (self, oldest);
    }

  /* Validated already: this cannot fail. */
  config = twp_bridge_config_new (args, host, port, &error);
  g_assert (config != NULL);
  entry = g_new0 (BridgeEntry, 1);
  entry->client = self;
  entry->bridge = twp_bridge_new (key->str, config, self->frame_mode);
  entry->idle_link.data = entry;
  entry->counted = TWP_BRIDGE_STATE_UNKNOWN;
  entry_count_state (entry);
  entry->state_handler = g_signal_connect (entry->bridge, "notify::state", G_CALLBACK (bridge_state_cb), entry);
  entry->failure_handler = g_signal_connect (entry->bridge, "notify::last-failure-time",
                                             G_CALLBACK (bridge_failure_cb), entry);
  g_hash_table_insert (self->bridges_by_key, g_strdup (key->str), entry);
  g_list_store_append (self->bridges, entry->bridge);
  return entry->bridge;
}

static void
handshake_done_cb (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  ClientConnection *conn = user_data;
  TwpClient *self = conn->client;
  g_autoptr(GError) error = NULL;
  g_autoptr(TwpArgs) args = NULL;
  TwpBridge *bridge;

  g_clear_pointer (&conn->socks_deadline, twp_deadline_free);

  conn->request = twp_socks_server_handshake_finish (G_IO_STREAM (source), result,
                                                     &conn->tcp_leftover, &error);
  if (conn->request == NULL)
    {
      if (g_error_matches (error, TWP_SOCKS_ERROR, TWP_SOCKS_ERROR_AUTH))
        {
          twp_log_user (TWP_LOG_WARNING, "bad bridge line arguments: %s", error->message);
          set_last_failure (self, twp_failure_reason_from_error (error), error->message);
        }
      else
        twp_log_user (TWP_LOG_INFO, "SOCKS handshake failed: %s", error->message);
      client_connection_close (conn);
      return;
    }

  args = parse_args (self, conn->request->args, conn->request->args_len, &error);
  if (args != NULL)
    conn->config = twp_bridge_config_new (args, conn->request->host, conn->request->port, &error);
  if (conn->config == NULL)
    {
      twp_log_user (TWP_LOG_WARNING, "bad bridge line arguments: %s", error->message);
      set_last_failure (self, twp_failure_reason_from_error (error), error->message);
      send_reply (conn, twp_failure_socks_reply (error), NULL, NULL);
      return;
    }

  bridge = lookup_bridge (self, args, conn->request->host, conn->request->port);
  if (bridge == NULL)
    {
      gint64 now = g_get_monotonic_time ();

      /* Every bridge in the table is in use: this one is refused rather
       * than growing the table without bound. */
      self->full_refused++;
      if (self->full_logged_at == 0 || now - self->full_logged_at >= FULL_LOG_INTERVAL_US)
        {
          twp_log_user (TWP_LOG_WARNING, "refused %u connection(s) to new bridges: all %u bridges are in use",
                        self->full_refused, max_bridges (self));
          self->full_logged_at = now;
          self->full_refused = 0;
        }
      send_reply (conn, TWP_SOCKS_REPLY_GENERAL_FAILURE, NULL, NULL);
      return;
    }
  conn->bridge = g_object_ref (bridge);
  conn->base64 = twp_bridge_get_frame_mode (conn->bridge) == TWP_FRAME_MODE_BASE64;
  conn->dial = twp_dial_new (conn->config, conn->base64, &self->options.dial);
  twp_bridge_attempt_started (conn->bridge, conn->dial);
  twp_dial_run_async (conn->dial, conn->cancellable, dial_done_cb, conn);
}

static gboolean
incoming_cb (TwpAcceptor       *service,
             GSocketConnection *connection,
             GObject           *source_object,
             gpointer           user_data)
{
  TwpClient *self = user_data;
  ClientConnection *conn = g_new0 (ClientConnection, 1);

  conn->client = g_object_ref (self);
  conn->tcp = g_object_ref (connection);
  conn->cancellable = g_cancellable_new ();
  g_socket_set_option (g_socket_connection_get_socket (connection), IPPROTO_TCP, TCP_NODELAY, 1, NULL);
  g_hash_table_add (self->connections, conn);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_N_CONNECTIONS]);

  /* C15: tor's handshake is bounded; a silent client must not hold a slot. */
  conn->socks_deadline = twp_deadline_new (conn->cancellable, NULL, self->options.socks_timeout_ms,
                                           "[twp] SOCKS deadline");

  twp_socks_server_handshake_async (G_IO_STREAM (connection), validate_args_cb, conn,
                                    conn->cancellable, handshake_done_cb, conn);
  return TRUE;
}

/* ---- object ------------------------------------------------------------ */

static void
twp_client_dispose (GObject *object)
{
  TwpClient *self = TWP_CLIENT (object);

  twp_client_stop (self);
  g_clear_object (&self->service);
  g_clear_object (&self->options.dial.tls_database);
  g_clear_object (&self->options.dial.bind_v4);
  g_clear_object (&self->options.dial.bind_v6);
  g_clear_pointer (&self->options.dial.proxy, twp_proxy_config_free);
  g_clear_pointer (&self->options.default_args, twp_args_free);
  disarm_expiry (self);
  /* The store first: the entries need not leave it one by one. */
  g_clear_object (&self->bridges);
  g_clear_pointer (&self->bridges_by_key, g_hash_table_unref);

  G_OBJECT_CLASS (twp_client_parent_class)->dispose (object);
}

static void
twp_client_finalize (GObject *object)
{
  TwpClient *self = TWP_CLIENT (object);

  g_assert (g_hash_table_size (self->connections) == 0);
  g_hash_table_unref (self->connections);
  g_free (self->last_failure_details);

  G_OBJECT_CLASS (twp_client_parent_class)->finalize (object);
}

static void
twp_client_get_property (GObject    *object,
                         guint       prop_id,
                         GValue     *value,
                         GParamSpec *pspec)
{
  TwpClient *self = TWP_CLIENT (object);

  switch (prop_id)
    {
    case PROP_FRAME_MODE:
      g_value_set_enum (value, self->frame_mode);
      break;
    case PROP_N_CONNECTIONS:
      g_value_set_uint (value, g_hash_table_size (self->connections));
      break;
    case PROP_STATE:
      g_value_set_enum (value, self->state);
      break;
    case PROP_LAST_FAILURE_TIME:
      g_value_set_int64 (value, self->last_failure_time);
      break;
    case PROP_LAST_FAILURE_REASON:
      g_value_set_enum (value, self->last_failure_reason);
      break;
    case PROP_LAST_FAILURE_DETAILS:
      g_value_set_string (value, self->last_failure_details);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
twp_client_set_property (GObject      *object,
                         guint         prop_id,
                         const GValue *value,
                         GParamSpec   *pspec)
{
  TwpClient *self = TWP_CLIENT (object);

  switch (prop_id)
    {
    case PROP_FRAME_MODE:
      twp_client_set_frame_mode (self, g_value_get_enum (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
twp_client_class_init (TwpClientClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = twp_client_dispose;
  object_class->finalize = twp_client_finalize;
  object_class->get_property = twp_client_get_property;
  object_class->set_property = twp_client_set_property;

  properties[PROP_FRAME_MODE] =
    g_param_spec_enum ("frame-mode", NULL, NULL, TWP_TYPE_FRAME_MODE, TWP_FRAME_MODE_BINARY,
                       G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);
  properties[PROP_N_CONNECTIONS] =
    g_param_spec_uint ("n-connections", NULL, NULL, 0, G_MAXUINT, 0,
                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);
  properties[PROP_STATE] =
    g_param_spec_enum ("state", NULL, NULL, TWP_TYPE_TRANSPORT_STATE, TWP_TRANSPORT_STATE_STARTING,
                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);
  properties[PROP_LAST_FAILURE_TIME] =
    g_param_spec_int64 ("last-failure-time", NULL, NULL, 0, G_MAXINT64, 0,
                        G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);
  properties[PROP_LAST_FAILURE_REASON] =
    g_param_spec_enum ("last-failure-reason", NULL, NULL, TWP_TYPE_FAILURE_REASON, TWP_FAILURE_NONE,
                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);
  properties[PROP_LAST_FAILURE_DETAILS] =
    g_param_spec_string ("last-failure-details", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);
  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
twp_client_init (TwpClient *self)
{
  self->connections = g_hash_table_new_full (NULL, NULL, (GDestroyNotify) client_connection_free, NULL);
  self->bridges = g_list_store_new (TWP_TYPE_BRIDGE);
  self->bridges_by_key = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                                (GDestroyNotify) bridge_entry_free);
  g_queue_init (&self->idle);
  self->state = TWP_TRANSPORT_STATE_STARTING;
}

TwpClient *
twp_client_new (const TwpClientOptions *options)
{
  TwpClient *self;

  g_return_val_if_fail (options != NULL, NULL);

  self = g_object_new (TWP_TYPE_CLIENT, NULL);
  self->options = *options;
  if (options->dial.tls_database != NULL)
    g_object_ref (options->dial.tls_database);
  if (options->dial.bind_v4 != NULL)
    g_object_ref (options->dial.bind_v4);
  if (options->dial.bind_v6 != NULL)
    g_object_ref (options->dial.bind_v6);
  self->options.dial.proxy = twp_proxy_config_copy (options->dial.proxy);
  self->options.default_args = NULL;
  if (options->default_args != NULL)
    {
      self->options.default_args = twp_args_new ();
      for (guint i = 0; i < twp_args_get_length (options->default_args); i++)
        twp_args_add (self->options.default_args, twp_args_get_key (options->default_args, i),
                      twp_args_get_value (options->default_args, i));
    }

  self->service = twp_acceptor_new ();
  /* tor opens circuits in bursts; GLib's default backlog of 10 would drop
   * connections that then wait for SYN retries. */
  g_socket_listener_set_backlog (G_SOCKET_LISTENER (self->service), 4096);
  g_signal_connect_object (self->service, "incoming", G_CALLBACK (incoming_cb), self, 0);
  return self;
}

GInetSocketAddress *
twp_client_listen (TwpClient     *self,
                   GInetAddress  *address,
                   guint16        port,
                   GError       **error)
{
  g_autoptr(GSocketAddress) requested = NULL;
  g_autoptr(GSocketAddress) effective = NULL;

  g_return_val_if_fail (TWP_IS_CLIENT (self), NULL);
  g_return_val_if_fail (G_IS_INET_ADDRESS (address), NULL);

  requested = g_inet_socket_address_new (address, port);
  if (!g_socket_listener_add_address (G_SOCKET_LISTENER (self->service), requested,
                                      G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP,
                                      NULL, &effective, error))
    return NULL;
  twp_acceptor_start (self->service);
  self->listening = TRUE;
  update_state (self);
  return G_INET_SOCKET_ADDRESS (g_steal_pointer (&effective));
}

TwpFrameMode
twp_client_get_frame_mode (TwpClient *self)
{
  g_return_val_if_fail (TWP_IS_CLIENT (self), TWP_FRAME_MODE_BINARY);
  return self->frame_mode;
}

void
twp_client_set_frame_mode (TwpClient    *self,
                           TwpFrameMode  mode)
{
  g_return_if_fail (TWP_IS_CLIENT (self));
  g_return_if_fail (mode == TWP_FRAME_MODE_BINARY || mode == TWP_FRAME_MODE_BASE64);

  if (self->frame_mode == mode)
    return;
  /* Applies to connections opened from now on; open ones keep theirs. */
  self->frame_mode = mode;
  for (guint i = 0; i < g_list_model_get_n_items (G_LIST_MODEL (self->bridges)); i++)
    {
      g_autoptr(TwpBridge) bridge = g_list_model_get_item (G_LIST_MODEL (self->bridges), i);

      twp_bridge_set_default_mode (bridge, mode);
    }
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_FRAME_MODE]);
}

guint
twp_client_get_n_connections (TwpClient *self)
{
  g_return_val_if_fail (TWP_IS_CLIENT (self), 0);
  return g_hash_table_size (self->connections);
}

guint64
twp_client_get_bytes_sent (TwpClient *self)
{
  GHashTableIter iter;
  ClientConnection *conn;
  guint64 total;

  g_return_val_if_fail (TWP_IS_CLIENT (self), 0);

  /* Open tunnels only: the number of bridges ever seen does not matter. */
  total = self->bytes_sent_closed;
  g_hash_table_iter_init (&iter, self->connections);
  while (g_hash_table_iter_next (&iter, (gpointer *) &conn, NULL))
    if (conn->relay != NULL)
      total += twp_relay_get_bytes_to_ws (conn->relay);
  return total;
}

guint64
twp_client_get_bytes_received (TwpClient *self)
{
  GHashTableIter iter;
  ClientConnection *conn;
  guint64 total;

  g_return_val_if_fail (TWP_IS_CLIENT (self), 0);

  total = self->bytes_received_closed;
  g_hash_table_iter_init (&iter, self->connections);
  while (g_hash_table_iter_next (&iter, (gpointer *) &conn, NULL))
    if (conn->relay != NULL)
      total += twp_relay_get_bytes_from_ws (conn->relay);
  return total;
}

guint
twp_client_get_n_bridges (TwpClient *self)
{
  g_return_val_if_fail (TWP_IS_CLIENT (self), 0);
  return g_hash_table_size (self->bridges_by_key);
}

void
twp_client_stop (TwpClient *self)
{
  GHashTableIter iter;
  ClientConnection *conn;

  g_return_if_fail (TWP_IS_CLIENT (self));

  if (self->listening)
    {
      self->listening = FALSE;
      self->state = TWP_TRANSPORT_STATE_STOPPING;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STATE]);
    }
  if (self->service != NULL)
    {
      twp_acceptor_stop (self->service);
      g_socket_listener_close (G_SOCKET_LISTENER (self->service));
    }
  /* Cancelling lets each pending callback run once more and find its
   * connection gone; the connections themselves are freed here. */
  g_hash_table_iter_init (&iter, self->connections);
  while (g_hash_table_iter_next (&iter, (gpointer *) &conn, NULL))
    g_cancellable_cancel (conn->cancellable);
}

TwpTransportState
twp_client_get_state (TwpClient *self)
{
  g_return_val_if_fail (TWP_IS_CLIENT (self), TWP_TRANSPORT_STATE_UNKNOWN);
  return self->state;
}

GListModel *
twp_client_get_bridges (TwpClient *self)
{
  g_return_val_if_fail (TWP_IS_CLIENT (self), NULL);
  return G_LIST_MODEL (self->bridges);
}

gint64
twp_client_get_last_failure_time (TwpClient *self)
{
  g_return_val_if_fail (TWP_IS_CLIENT (self), 0);
  return self->last_failure_time;
}

TwpFailureReason
twp_client_get_last_failure_reason (TwpClient *self)
{
  g_return_val_if_fail (TWP_IS_CLIENT (self), TWP_FAILURE_NONE);
  return self->last_failure_reason;
}

const char *
twp_client_get_last_failure_details (TwpClient *self)
{
  g_return_val_if_fail (TWP_IS_CLIENT (self), NULL);
  return self->last_failure_details;
}

/* ---- bridge test ------------------------------------------------------- */

typedef struct {
  TwpDial *dial;
  TwpDialOptions options;
} TestData;

static void
test_data_free (TestData *data)
{
  g_clear_object (&data->dial);
  g_free (data);
}

static void
test_dial_done_cb (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GIOStream) stream = NULL;

  stream = twp_dial_run_finish (TWP_DIAL (source), result, NULL, &error);
  if (stream == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  /* A test carries no tor traffic: close at once. */
  g_io_stream_close_async (stream, G_PRIORITY_DEFAULT, NULL, NULL, NULL);
  g_task_return_boolean (task, TRUE);
}

void
twp_client_test_bridge_async (TwpClient           *self,
                              TwpBridge           *bridge,
                              guint                timeout_ms,
                              GCancellable        *cancellable,
                              GAsyncReadyCallback  callback,
                              gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  TestData *data;

  g_return_if_fail (TWP_IS_CLIENT (self));
  g_return_if_fail (TWP_IS_BRIDGE (bridge));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, twp_client_test_bridge_async);
  g_task_set_name (task, "[twp] bridge test");

  data = g_new0 (TestData, 1);
  data->options = self->options.dial;
  data->options.timeout_ms = timeout_ms;
  /* The bridge (and its configuration) outlives the test: the task holds
   * a reference through its task data. */
  data->dial = twp_dial_new (twp_bridge_get_config (bridge),
                             twp_bridge_get_frame_mode (bridge) == TWP_FRAME_MODE_BASE64,
                             &data->options);
  g_object_set_data_full (G_OBJECT (data->dial), "twp-bridge", g_object_ref (bridge), g_object_unref);
  g_task_set_task_data (task, data, (GDestroyNotify) test_data_free);
  twp_dial_run_async (data->dial, cancellable, test_dial_done_cb, g_steal_pointer (&task));
}

gboolean
twp_client_test_bridge_finish (TwpClient     *self,
                               GAsyncResult  *result,
                               TwpDialPhase  *failed_phase,
                               GError       **error)
{
  g_autoptr(GError) local_error = NULL;
  TestData *data;

  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == twp_client_test_bridge_async, FALSE);

  data = g_task_get_task_data (G_TASK (result));
  if (failed_phase != NULL)
    *failed_phase = twp_dial_get_phase (data->dial);
  if (!g_task_propagate_boolean (G_TASK (result), &local_error))
    {
      /* The text goes to a D-Bus reply: valid UTF-8 only. */
      twp_log_error_make_valid (local_error);
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
  return TRUE;
}
