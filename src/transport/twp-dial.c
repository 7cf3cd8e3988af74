/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-dial"

#include "config.h"

#include "twp-dial.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>

#include "twp-failure.h"
#include "twp-deadline.h"
#include "twp-log.h"
#include "twp-state-enums.h"
#include "twp-ws-handshake.h"

struct _TwpDial
{
  GObject parent_instance;

  /* borrowed: the caller keeps them alive for the attempt */
  const TwpBridgeConfig *config;
  TwpDialOptions options;

  /* owned */
  GTask *task;
  GCancellable *cancellable;
  TwpDeadline *deadline;            /* the caller's cancel and our timeout */
  GSocketClient *client;
  GIOStream *stream;
  char *key;
  char *request;

  gboolean base64;
  TwpDialPhase phase;
  guint http_status;
};

enum {
  PROP_0,
  PROP_PHASE,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

G_DEFINE_FINAL_TYPE (TwpDial, twp_dial, G_TYPE_OBJECT)
G_DEFINE_QUARK (twp-dial-error-quark, twp_dial_error)

const char *
twp_dial_phase_to_string (TwpDialPhase phase)
{
  switch (phase)
    {
    case TWP_DIAL_PHASE_RESOLVING:
      return "resolving";
    case TWP_DIAL_PHASE_CONNECTING:
      return "tcp";
    case TWP_DIAL_PHASE_PROXY:
      return "proxy";
    case TWP_DIAL_PHASE_TLS:
      return "tls";
    case TWP_DIAL_PHASE_UPGRADE:
      return "upgrade";
    case TWP_DIAL_PHASE_OPEN:
      return "open";
    case TWP_DIAL_PHASE_NONE:
    default:
      return "none";
    }
}

static void
set_phase (TwpDial      *self,
           TwpDialPhase  phase)
{
  /* Progress never goes backwards (happy eyeballs may report "connecting"
   * again for a second address). */
  if (phase <= self->phase)
    return;
  self->phase = phase;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_PHASE]);
}

static void
twp_dial_dispose (GObject *object)
{
  TwpDial *self = TWP_DIAL (object);

  g_clear_pointer (&self->deadline, twp_deadline_free);
  g_clear_object (&self->task);
  g_clear_object (&self->cancellable);
  g_clear_object (&self->client);
  g_clear_object (&self->stream);

  G_OBJECT_CLASS (twp_dial_parent_class)->dispose (object);
}

static void
twp_dial_finalize (GObject *object)
{
  TwpDial *self = TWP_DIAL (object);

  g_free (self->key);
  g_free (self->request);

  G_OBJECT_CLASS (twp_dial_parent_class)->finalize (object);
}

static void
twp_dial_get_property (GObject    *object,
                       guint       prop_id,
                       GValue     *value,
                       GParamSpec *pspec)
{
  TwpDial *self = TWP_DIAL (object);

  switch (prop_id)
    {
    case PROP_PHASE:
      g_value_set_enum (value, self->phase);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
twp_dial_class_init (TwpDialClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = twp_dial_dispose;
  object_class->finalize = twp_dial_finalize;
  object_class->get_property = twp_dial_get_property;

  properties[PROP_PHASE] =
    g_param_spec_enum ("phase", NULL, NULL, TWP_TYPE_DIAL_PHASE, TWP_DIAL_PHASE_NONE,
                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);
  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
twp_dial_init (TwpDial *self)
{
  self->cancellable = g_cancellable_new ();
}

TwpDial *
twp_dial_new (const TwpBridgeConfig *config,
              gboolean               base64,
              const TwpDialOptions  *options)
{
  TwpDial *self;

  g_return_val_if_fail (config != NULL && config->uri != NULL, NULL);
  g_return_val_if_fail (options != NULL, NULL);

  self = g_object_new (TWP_TYPE_DIAL, NULL);
  self->config = config;
  self->options = *options;
  self->base64 = base64;
  return self;
}

TwpDialPhase
twp_dial_get_phase (TwpDial *self)
{
  g_return_val_if_fail (TWP_IS_DIAL (self), TWP_DIAL_PHASE_NONE);
  return self->phase;
}

guint
twp_dial_get_http_status (TwpDial *self)
{
  g_return_val_if_fail (TWP_IS_DIAL (self), 0);
  return self->http_status;
}

gboolean
twp_dial_holds_source_for_testing (TwpDial *self)
{
  g_return_val_if_fail (TWP_IS_DIAL (self), FALSE);

  return self->deadline != NULL && twp_deadline_is_armed (self->deadline);
}

/* ---- failure ----------------------------------------------------------- */

static const char *
describe (TwpDialError code)
{
  switch (code)
    {
    case TWP_DIAL_ERROR_DNS:
      return "DNS lookup failed";
    case TWP_DIAL_ERROR_REFUSED:
      return "connection refused";
    case TWP_DIAL_ERROR_NETWORK_UNREACHABLE:
      return "network unreachable";
    case TWP_DIAL_ERROR_HOST_UNREACHABLE:
      return "host unreachable";
    case TWP_DIAL_ERROR_TIMED_OUT:
      return "timed out";
    case TWP_DIAL_ERROR_PROXY:
      return "upstream proxy failed";
    case TWP_DIAL_ERROR_TLS:
      return "TLS handshake failed";
    case TWP_DIAL_ERROR_TLS_CERTIFICATE:
      return "TLS certificate not trusted";
    case TWP_DIAL_ERROR_HTTP_STATUS:
      return "server refused the WebSocket upgrade";
    case TWP_DIAL_ERROR_HANDSHAKE:
      return "invalid WebSocket handshake";
    case TWP_DIAL_ERROR_CLOSED:
      return "connection closed by the server";
    case TWP_DIAL_ERROR_FAILED:
    default:
      return "failed";
    }
}

/* Ends the attempt with an error whose text says where and why, and never
 * names the bridge: GIO's messages may contain host names. */
static void
fail (TwpDial *self,
      GError  *error_in)
{
  g_autoptr(GTask) task = g_steal_pointer (&self->task);
  g_autoptr(GError) error = error_in;
  TwpDialError code;
  g_autoptr(GString) message = g_string_new (NULL);

  if (task == NULL)
    return;

  /* Our deadline makes the pending operation fail with CANCELLED. */
  code = twp_deadline_has_expired (self->deadline) ? TWP_DIAL_ERROR_TIMED_OUT : twp_failure_dial_code (error);
  g_string_append_printf (message, "%s (during %s)", describe (code),
                          twp_dial_phase_to_string (self->phase));
  if (code == TWP_DIAL_ERROR_HTTP_STATUS || code == TWP_DIAL_ERROR_HANDSHAKE ||
      twp_log_get_unsafe ())
    /* Handshake messages are ours and name no host ("HTTP 403",
     * "redirect not followed"); others only with unsafe logging. */
    g_string_append_printf (message, ": %s", error->message);

  twp_deadline_disarm (self->deadline);
  g_cancellable_cancel (self->cancellable);
  g_task_return_new_error (task, TWP_DIAL_ERROR, code, "%s", message->str);
}

/* ---- upgrade ----------------------------------------------------------- */

static void
response_read_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  g_autoptr(TwpDial) self = user_data;
  g_autoptr(GError) error = NULL;
  TwpWsClientResponse response = { 0 };
  g_autoptr(GBytes) head = NULL;
  g_autoptr(GBytes) leftover = NULL;
  g_autoptr(GTask) task = NULL;
  gsize head_len;

  head = twp_http_read_head_finish (G_INPUT_STREAM (source), result, &head_len, &error);
  if (g_error_matches (error, TWP_HTTP_ERROR, TWP_HTTP_ERROR_TRUNCATED))
    {
      fail (self, g_error_new_literal (TWP_DIAL_ERROR, TWP_DIAL_ERROR_CLOSED,
                                       "connection closed before the upgrade response"));
      return;
    }
  if (g_error_matches (error, TWP_HTTP_ERROR, TWP_HTTP_ERROR_TOO_LARGE))
    {
      /* A response head we will not buffer is an invalid handshake. */
      fail (self, g_error_new_literal (TWP_DIAL_ERROR, TWP_DIAL_ERROR_HANDSHAKE, error->message));
      return;
    }
  if (head == NULL)
    {
      fail (self, g_steal_pointer (&error));
      return;
    }

  if (!twp_ws_client_response_parse (g_bytes_get_data (head, NULL), head_len, self->key,
                                     self->base64, &response, &error))
    {
      self->http_status = response.status;
      /* A 3xx is never followed (proposal: MUST NOT follow redirects). */
      fail (self, g_steal_pointer (&error));
      twp_ws_client_response_clear (&response);
      return;
    }
  self->http_status = 101;
  if (self->base64 && !response.base64)
    {
      /* Text frames are never sent unasked; a binary fallback would defeat
       * whoever asked for base64 (a middlebox that passes only text). */
      twp_ws_client_response_clear (&response);
      fail (self, g_error_new_literal (TWP_DIAL_ERROR, TWP_DIAL_ERROR_HANDSHAKE,
                                       "server did not accept the base64 subprotocol"));
      return;
    }
  twp_ws_client_response_clear (&response);

  /* What the server sent after its 101 (the first frames) is the relay's. */
  leftover = g_bytes_new_from_bytes (head, head_len, g_bytes_get_size (head) - head_len);
  set_phase (self, TWP_DIAL_PHASE_OPEN);

  /* The timer goes now, not with the dial: GLib unlinks a destroyed
   * source from the main context only at its last unref, and the client
   * keeps the dial as long as the tunnel, so every open tunnel kept one
   * more source for each main loop iteration to walk. */
  twp_deadline_disarm (self->deadline);
  task = g_steal_pointer (&self->task);
  g_task_set_task_data (task, g_steal_pointer (&leftover), (GDestroyNotify) g_bytes_unref);
  g_task_return_pointer (task, g_steal_pointer (&self->stream), g_object_unref);
}

static void
request_written_cb (GObject      *source,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  g_autoptr(TwpDial) self = user_data;
  g_autoptr(GError) error = NULL;

  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, &error))
    {
      fail (self, g_steal_pointer (&error));
      return;
    }
  twp_http_read_head_async (g_io_stream_get_input_stream (self->stream), NULL, TWP_HTTP_MAX_HEAD_SIZE,
                            self->cancellable, response_read_cb, g_object_ref (self));
}

static void
start_upgrade (TwpDial *self)
{
  g_autoptr(GError) error = NULL;
  TwpWsClientRequestOptions request_options = {
    .uri = self->config->uri,
    .host_header = self->config->host_header,
    .origin = self->config->origin,
    .request_base64 = self->base64,
  };

  set_phase (self, TWP_DIAL_PHASE_UPGRADE);
  self->request = twp_ws_client_request_build (&request_options, &self->key, &error);
  if (self->request == NULL)
    {
      fail (self, g_steal_pointer (&error));
      return;
    }
  g_output_stream_write_all_async (g_io_stream_get_output_stream (self->stream),
                                   self->request, strlen (self->request),
                                   G_PRIORITY_DEFAULT, self->cancellable,
                                   request_written_cb, g_object_ref (self));
}

/* ---- TLS --------------------------------------------------------------- */

static gboolean
certificate_matches_pin (TwpDial         *self,
                         GTlsCertificate *certificate)
{
  g_autoptr(GByteArray) der = NULL;
  guint8 digest[32];
  gsize digest_len = sizeof digest;
  g_autoptr(GChecksum) checksum = g_checksum_new (G_CHECKSUM_SHA256);
  gsize pin_len;
  const guint8 *pin = g_bytes_get_data (self->config->certificate_pin, &pin_len);

  if (certificate == NULL)
    return FALSE;
  g_object_get (certificate, "certificate", &der, NULL);
  if (der == NULL)
    return FALSE;
  g_checksum_update (checksum, der->data, der->len);
  g_checksum_get_digest (checksum, digest, &digest_len);
  return pin_len == digest_len && memcmp (pin, digest, digest_len) == 0;
}

/* Called only when normal validation failed: a pinned certificate is
 * trusted by its pin alone (self-signed bridges). */
static gboolean
accept_certificate_cb (GTlsConnection       *connection,
                       GTlsCertificate      *peer_cert,
                       GTlsCertificateFlags  errors,
                       gpointer              user_data)
{
  TwpDial *self = user_data;

  return self->config->certificate_pin != NULL && certificate_matches_pin (self, peer_cert);
}

static void
tls_handshake_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  g_autoptr(TwpDial) self = user_data;
  g_autoptr(GError) error = NULL;

  if (!g_tls_connection_handshake_finish (G_TLS_CONNECTION (source), result, &error))
    {
      fail (self, g_steal_pointer (&error));
      return;
    }
  /* With a pin, a certificate that a CA vouches for must still match it. */
  if (self->config->certificate_pin != NULL &&
      !certificate_matches_pin (self, g_tls_connection_get_peer_certificate (G_TLS_CONNECTION (source))))
    {
      fail (self, g_error_new_literal (TWP_DIAL_ERROR, TWP_DIAL_ERROR_TLS_CERTIFICATE,
                                       "certificate does not match cert-sha256="));
      return;
    }
  start_upgrade (self);
}

/* The database is chosen at construction: g_tls_client_connection_new()
 * would first load the default database into the connection's credentials
 * (the whole system CA bundle, parsed per connection) only for a later
 * set_database() to parse the chosen one again. With a pin the database
 * cannot change the outcome (a pinned certificate is accepted by its pin
 * alone, and only by it: see accept_certificate_cb and tls_handshake_cb),
 * so none is loaded at all. */
static GIOStream *
tls_client_stream_new (TwpDial             *self,
                       GIOStream           *base,
                       GSocketConnectable  *identity,
                       GError             **error)
{
  GTlsBackend *backend = g_tls_backend_get_default ();
  g_autoptr(GTlsDatabase) database = NULL;

  if (self->config->certificate_pin != NULL)
    database = NULL;
  else if (self->options.tls_database != NULL)
    database = g_object_ref (self->options.tls_database);
  else
    database = g_tls_backend_get_default_database (backend);

  return g_initable_new (g_tls_backend_get_client_connection_type (backend), NULL, error,
                         "base-io-stream", base,
                         "server-identity", identity,
                         "database", database,
                         NULL);
}

static void
start_tls (TwpDial           *self,
           GSocketConnection *connection)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketConnectable) identity = NULL;
  g_autoptr(GIOStream) tls = NULL;
  const char *name = self->config->tls_server_name != NULL
                     ? self->config->tls_server_name
                     : g_uri_get_host (self->config->uri);

  set_phase (self, TWP_DIAL_PHASE_TLS);
  identity = g_network_address_new (name, self->config->port);
  tls = tls_client_stream_new (self, G_IO_STREAM (connection), identity, &error);
  if (tls == NULL)
    {
      fail (self, g_steal_pointer (&error));
      return;
    }
  g_signal_connect_object (tls, "accept-certificate", G_CALLBACK (accept_certificate_cb), self, 0);
  g_set_object (&self->stream, tls);
  g_tls_connection_handshake_async (G_TLS_CONNECTION (tls), G_PRIORITY_DEFAULT, self->cancellable,
                                    tls_handshake_cb, g_object_ref (self));
}

/* ---- TCP and proxy ----------------------------------------------------- */

static gboolean
is_loopback (GSocketAddress *address)
{
  return G_IS_INET_SOCKET_ADDRESS (address) &&
         g_inet_address_get_is_loopback (g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (address)));
}

/* GSocketClient creates the socket just before it emits CONNECTING: bind
 * it there to the outbound address of the right family (C3, C4). Loopback
 * destinations keep the default route. */
static void
socket_client_event_cb (GSocketClient      *client,
                        GSocketClientEvent  event,
                        GSocketConnectable *connectable,
                        GIOStream          *connection,
                        gpointer            user_data)
{
  TwpDial *self = user_data;

  switch (event)
    {
    case G_SOCKET_CLIENT_RESOLVING:
      set_phase (self, self->options.proxy != NULL ? TWP_DIAL_PHASE_PROXY : TWP_DIAL_PHASE_RESOLVING);
      break;

    case G_SOCKET_CLIENT_CONNECTING:
      set_phase (self, self->options.proxy != NULL ? TWP_DIAL_PHASE_PROXY : TWP_DIAL_PHASE_CONNECTING);
      if (G_IS_INET_SOCKET_ADDRESS (connectable) && !is_loopback (G_SOCKET_ADDRESS (connectable)) &&
          G_IS_SOCKET_CONNECTION (connection))
        {
          GInetAddress *target = g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (connectable));
          GInetAddress *bind = g_inet_address_get_family (target) == G_SOCKET_FAMILY_IPV6
                               ? self->options.bind_v6 : self->options.bind_v4;

          if (bind != NULL)
            {
              g_autoptr(GSocketAddress) local = g_inet_socket_address_new (bind, 0);
              g_autoptr(GError) error = NULL;
              GSocket *socket = g_socket_connection_get_socket (G_SOCKET_CONNECTION (connection));

              if (!g_socket_bind (socket, local, TRUE, &error))
                g_debug ("cannot bind the outbound socket: %s", error->message);
            }
        }
      break;

    case G_SOCKET_CLIENT_PROXY_NEGOTIATING:
      set_phase (self, TWP_DIAL_PHASE_PROXY);
      break;

    case G_SOCKET_CLIENT_RESOLVED:
    case G_SOCKET_CLIENT_CONNECTED:
    case G_SOCKET_CLIENT_PROXY_NEGOTIATED:
    case G_SOCKET_CLIENT_TLS_HANDSHAKING:
    case G_SOCKET_CLIENT_TLS_HANDSHAKED:
    case G_SOCKET_CLIENT_COMPLETE:
    default:
      break;
    }
}

static void
connected_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(TwpDial) self = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketConnection) connection = NULL;

  connection = g_socket_client_connect_finish (G_SOCKET_CLIENT (source), result, &error);
  if (connection == NULL)
    {
      fail (self, g_steal_pointer (&error));
      return;
    }
  g_socket_set_option (g_socket_connection_get_socket (connection), IPPROTO_TCP, TCP_NODELAY, 1, NULL);
  g_set_object (&self->stream, G_IO_STREAM (connection));

  if (g_ascii_strcasecmp (g_uri_get_scheme (self->config->uri), "wss") == 0)
    start_tls (self, connection);
  else
    start_upgrade (self);
}

static char *
escape_userinfo (const char *value)
{
  /* GIO percent-decodes proxy URIs; tor's credentials are raw (B4). */
  return g_uri_escape_string (value, NULL, FALSE);
}

static GProxyResolver *
build_proxy_resolver (const TwpProxyConfig *proxy)
{
  g_autoptr(GString) uri = g_string_new (NULL);
  static const char *const schemes[] = { NULL, "socks5", "socks4a", "http" };

  g_string_append_printf (uri, "%s://", schemes[proxy->type]);
  if (proxy->username != NULL)
    {
      g_autofree char *user = escape_userinfo (proxy->username);

      g_string_append (uri, user);
      if (proxy->password != NULL)
        {
          g_autofree char *password = escape_userinfo (proxy->password);

          g_string_append_printf (uri, ":%s", password);
        }
      g_string_append_c (uri, '@');
    }
  if (strchr (proxy->host, ':') != NULL)
    g_string_append_printf (uri, "[%s]:%u", proxy->host, proxy->port);
  else
    g_string_append_printf (uri, "%s:%u", proxy->host, proxy->port);

  /* No ignore list: fail closed, everything goes through the proxy. */
  return g_simple_proxy_resolver_new (uri->str, NULL);
}

void
twp_dial_run_async (TwpDial             *self,
                    GCancellable        *cancellable,
                    GAsyncReadyCallback  callback,
                    gpointer             user_data)
{
  g_return_if_fail (TWP_IS_DIAL (self));
  g_return_if_fail (self->task == NULL);

  self->task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (self->task, twp_dial_run_async);
  g_task_set_name (self->task, "[twp] dial");
  self->deadline = twp_deadline_new (self->cancellable, cancellable, self->options.timeout_ms,
                                     "[twp] dial deadline");

  self->client = g_socket_client_new ();
  if (self->options.proxy != NULL)
    {
      g_autoptr(GProxyResolver) resolver = build_proxy_resolver (self->options.proxy);

      g_socket_client_set_proxy_resolver (self->client, resolver);
      g_socket_client_set_enable_proxy (self->client, TRUE);
    }
  else
    {
      /* tor hands us its whole environment: an http_proxy variable there
       * must not reroute the bridge connection. */
      g_socket_client_set_enable_proxy (self->client, FALSE);
    }
  g_signal_connect_object (self->client, "event", G_CALLBACK (socket_client_event_cb), self, 0);

  set_phase (self, self->options.proxy != NULL ? TWP_DIAL_PHASE_PROXY : TWP_DIAL_PHASE_RESOLVING);
  g_socket_client_connect_to_host_async (self->client, g_uri_get_host (self->config->uri),
                                         self->config->port, self->cancellable,
                                         connected_cb, g_object_ref (self));
}

GIOStream *
twp_dial_run_finish (TwpDial       *self,
                     GAsyncResult  *result,
                     GBytes       **leftover,
                     GError       **error)
{
  GIOStream *stream;

  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == twp_dial_run_async, NULL);

  stream = g_task_propagate_pointer (G_TASK (result), error);
  if (stream != NULL && leftover != NULL)
    *leftover = g_bytes_ref (g_task_get_task_data (G_TASK (result)));
  return stream;
}
