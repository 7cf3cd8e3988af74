/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-test-extor-server"

#include "config.h"

#include "twp-test-extor-server.h"

#include <arpa/inet.h>
#include <glib/gstdio.h>
#include <string.h>

#include "twp-extorport.h"

/* Keep at most this much received payload per connection for assertions. */
#define PAYLOAD_RECORD_MAX (1024 * 1024)
#define READ_CHUNK 16384
/* free() waits this long for cancelled operations to call back. */
#define DRAIN_TIMEOUT_US (5 * G_USEC_PER_SEC)

typedef enum {
  CONN_AUTH_TYPE,    /* expecting 01 */
  CONN_NONCE,        /* expecting 32 bytes of ClientNonce */
  CONN_CLIENT_HASH,  /* expecting 32 bytes of ClientHash */
  CONN_COMMANDS,     /* USERADDR / TRANSPORT / ... until DONE */
  CONN_RELAY,        /* after OKAY: raw OR payload */
  CONN_STALLED,      /* STALL mode: read and discard, never answer */
  CONN_CLOSED,
} ConnState;

typedef struct {
  TwpTestExtOrServer *server;  /* borrowed: free() outlives every pending op */
  GSocketConnection *connection;
  ConnState state;
  TwpTestExtOrResult result;
  GByteArray *inbuf;           /* received, not yet processed */
  GBytes *pending_out;         /* being written */
  gboolean close_after_write;
  guint8 read_buf[READ_CHUNK];
  guint8 client_nonce[TWP_EXTORPORT_NONCE_LEN];
  guint8 server_nonce[TWP_EXTORPORT_NONCE_LEN];
  char *useraddr;
  char *transport;
  GByteArray *payload;
} Conn;

struct _TwpTestExtOrServer {
  GSocketService *service;
  GCancellable *cancellable;
  GMainContext *context;
  char *cookie_path;
  char *address;
  guint16 port;
  TwpTestExtOrMode mode;
  guint8 cookie[TWP_EXTORPORT_COOKIE_LEN];
  GPtrArray *connections;      /* of Conn, in accept order; owned refs */
  guint n_pending_ops;         /* async operations in flight */
  guint n_okay;
  guint n_closed;
  guint64 bytes_relayed;
};

static void
conn_clear (gpointer data)
{
  Conn *conn = data;

  g_clear_object (&conn->connection);
  g_clear_pointer (&conn->inbuf, g_byte_array_unref);
  g_clear_pointer (&conn->pending_out, g_bytes_unref);
  g_clear_pointer (&conn->payload, g_byte_array_unref);
  g_clear_pointer (&conn->useraddr, g_free);
  g_clear_pointer (&conn->transport, g_free);
}

static void
conn_unref (Conn *conn)
{
  g_rc_box_release_full (conn, conn_clear);
}

static void
conn_close (Conn               *conn,
            TwpTestExtOrResult  result)
{
  if (conn->state == CONN_CLOSED)
    return;
  /* NONE keeps the result already recorded (e.g. OKAY, AUTH_FAILED). */
  if (result != TWP_TEST_EXTOR_RESULT_NONE)
    conn->result = result;
  conn->state = CONN_CLOSED;
  conn->server->n_closed++;
  /* A socket close does not block; like tor, we just drop the connection. */
  g_io_stream_close (G_IO_STREAM (conn->connection), NULL, NULL);
}

static void
write_cookie (TwpTestExtOrServer *server)
{
  guint8 file[TWP_EXTORPORT_COOKIE_FILE_LEN];
  g_autoptr(GError) error = NULL;

  for (gsize i = 0; i < TWP_EXTORPORT_COOKIE_LEN; i++)
    server->cookie[i] = g_random_int_range (0, 256);
  memcpy (file, TWP_EXTORPORT_COOKIE_HEADER, TWP_EXTORPORT_COOKIE_FILE_LEN - TWP_EXTORPORT_COOKIE_LEN);
  memcpy (file + TWP_EXTORPORT_COOKIE_FILE_LEN - TWP_EXTORPORT_COOKIE_LEN, server->cookie,
          TWP_EXTORPORT_COOKIE_LEN);
  /* Atomic and 0600, as tor writes it. */
  g_file_set_contents_full (server->cookie_path, (const char *) file, sizeof file,
                            G_FILE_SET_CONTENTS_CONSISTENT, 0600, &error);
  g_assert_no_error (error);
}

/* tor's USERADDR rule, as observed on 0.4.9.11 (X2): "IPv4[:port]" or
 * "[IPv6][:port]", port 1-65535; a missing port is accepted. */
static gboolean
useraddr_is_valid (const guint8 *body,
                   gsize         len)
{
  g_autofree char *s = NULL;
  g_autofree char *host = NULL;
  const char *port = NULL;
  guint8 addr[16];
  guint64 value;

  if (memchr (body, '\0', len) != NULL)
    return FALSE;
  s = g_strndup ((const char *) body, len);

  if (s[0] == '[')
    {
      const char *end = strchr (s, ']');

      if (end == NULL)
        return FALSE;
      host = g_strndup (s + 1, end - s - 1);
      if (inet_pton (AF_INET6, host, addr) != 1)
        return FALSE;
      if (end[1] == ':')
        port = end + 2;
      else if (end[1] != '\0')
        return FALSE;
    }
  else
    {
      const char *colon = strchr (s, ':');

      host = colon != NULL ? g_strndup (s, colon - s) : g_strdup (s);
      if (inet_pton (AF_INET, host, addr) != 1)
        return FALSE;
      if (colon != NULL)
        port = colon + 1;
    }

  if (port == NULL || port[0] == '\0')
    return TRUE;
  if (strlen (port) > 5 || strspn (port, "0123456789") != strlen (port))
    return FALSE;
  value = g_ascii_strtoull (port, NULL, 10);
  return value >= 1 && value <= 65535;
}

/* Runs tor's side over everything buffered; appends replies to @out. */
static void
conn_process (Conn       *conn,
              GByteArray *out)
{
  TwpTestExtOrServer *server = conn->server;

  for (;;)
    {
      GByteArray *in = conn->inbuf;

      switch (conn->state)
        {
        case CONN_AUTH_TYPE:
          if (in->len < 1)
            return;
          if (in->data[0] != TWP_EXTORPORT_AUTH_SAFE_COOKIE)
            {
              conn_close (conn, TWP_TEST_EXTOR_RESULT_BAD_AUTH_TYPE);
              return;
            }
          g_byte_array_remove_range (in, 0, 1);
          conn->state = CONN_NONCE;
          break;

        case CONN_NONCE:
          {
            guint8 server_hash[TWP_EXTORPORT_HASH_LEN];

            if (in->len < TWP_EXTORPORT_NONCE_LEN)
              return;
            memcpy (conn->client_nonce, in->data, TWP_EXTORPORT_NONCE_LEN);
            g_byte_array_remove_range (in, 0, TWP_EXTORPORT_NONCE_LEN);
            if (server->mode == TWP_TEST_EXTOR_MODE_CLOSE_AFTER_NONCE)
              {
                conn_close (conn, TWP_TEST_EXTOR_RESULT_CLOSED_BY_MODE);
                return;
              }
            for (gsize i = 0; i < TWP_EXTORPORT_NONCE_LEN; i++)
              conn->server_nonce[i] = g_random_int_range (0, 256);
            twp_extorport_server_hash (server->cookie, conn->client_nonce, conn->server_nonce, server_hash);
            g_byte_array_append (out, server_hash, sizeof server_hash);
            g_byte_array_append (out, conn->server_nonce, sizeof conn->server_nonce);
            conn->state = CONN_CLIENT_HASH;
          }
          break;

        case CONN_CLIENT_HASH:
          {
            guint8 expected[TWP_EXTORPORT_HASH_LEN];
            guint8 status;

            if (in->len < TWP_EXTORPORT_HASH_LEN)
              return;
            twp_extorport_client_hash (server->cookie, conn->client_nonce, conn->server_nonce, expected);
            status = server->mode != TWP_TEST_EXTOR_MODE_AUTH_FAIL &&
                     memcmp (expected, in->data, TWP_EXTORPORT_HASH_LEN) == 0;
            g_byte_array_remove_range (in, 0, TWP_EXTORPORT_HASH_LEN);
            g_byte_array_append (out, &status, 1);
            if (!status)
              {
                /* tor: "Incorrect client hash", then it closes. */
                conn->close_after_write = TRUE;
                conn->result = TWP_TEST_EXTOR_RESULT_AUTH_FAILED;
                return;
              }
            conn->state = CONN_COMMANDS;
          }
          break;

        case CONN_COMMANDS:
          {
            guint16 command, len;
            const guint8 *body;

            if (in->len < TWP_EXTORPORT_COMMAND_HEADER_LEN)
              return;
            command = (in->data[0] << 8) | in->data[1];
            len = (in->data[2] << 8) | in->data[3];
            if (in->len < TWP_EXTORPORT_COMMAND_HEADER_LEN + (gsize) len)
              return;
            body = in->data + TWP_EXTORPORT_COMMAND_HEADER_LEN;

            if (command == TWP_EXTORPORT_CMD_USERADDR)
              {
                if (!useraddr_is_valid (body, len))
                  {
                    conn_close (conn, TWP_TEST_EXTOR_RESULT_BAD_USERADDR);
                    return;
                  }
                g_free (conn->useraddr);
                conn->useraddr = g_strndup ((const char *) body, len);
              }
            else if (command == TWP_EXTORPORT_CMD_TRANSPORT)
              {
                g_autofree char *name = g_strndup ((const char *) body, len);

                if (memchr (body, '\0', len) != NULL || !twp_extorport_is_c_identifier (name))
                  {
                    conn_close (conn, TWP_TEST_EXTOR_RESULT_BAD_TRANSPORT);
                    return;
                  }
                /* A repeated TRANSPORT replaces the previous one. */
                g_free (conn->transport);
                conn->transport = g_steal_pointer (&name);
              }
            g_byte_array_remove_range (in, 0, TWP_EXTORPORT_COMMAND_HEADER_LEN + len);

            if (command == TWP_EXTORPORT_CMD_DONE)
              {
                static const guint8 okay[] = { 0x10, 0x00, 0x00, 0x00 };
                static const guint8 deny[] = { 0x10, 0x01, 0x00, 0x00 };

                /* X1: tor refuses a client that did not wait for OKAY. */
                if (in->len > 0)
                  {
                    conn_close (conn, TWP_TEST_EXTOR_RESULT_PIPELINED);
                    return;
                  }
                if (server->mode == TWP_TEST_EXTOR_MODE_NO_OKAY)
                  {
                    conn->state = CONN_STALLED;
                    return;
                  }
                if (server->mode == TWP_TEST_EXTOR_MODE_DENY)
                  {
                    g_byte_array_append (out, deny, sizeof deny);
                    conn->close_after_write = TRUE;
                    conn->result = TWP_TEST_EXTOR_RESULT_DENIED;
                    return;
                  }
                g_byte_array_append (out, okay, sizeof okay);
                conn->result = TWP_TEST_EXTOR_RESULT_OKAY;
                server->n_okay++;
                conn->state = CONN_RELAY;
              }
            /* Unknown commands are ignored, as tor does (X4). */
          }
          break;

        case CONN_RELAY:
          if (in->len == 0)
            return;
          server->bytes_relayed += in->len;
          if (conn->payload->len < PAYLOAD_RECORD_MAX)
            g_byte_array_append (conn->payload, in->data,
                                 MIN (in->len, PAYLOAD_RECORD_MAX - conn->payload->len));
          if (server->mode != TWP_TEST_EXTOR_MODE_SINK)
            g_byte_array_append (out, in->data, in->len);
          g_byte_array_set_size (in, 0);
          return;

        case CONN_STALLED:
          g_byte_array_set_size (in, 0);
          return;

        case CONN_CLOSED:
        default:
          return;
        }
    }
}

static void conn_read (Conn *conn);

static void
conn_write_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  Conn *conn = user_data;
  g_autoptr(GError) error = NULL;

  conn->server->n_pending_ops--;
  g_clear_pointer (&conn->pending_out, g_bytes_unref);
  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, &error))
    conn_close (conn, TWP_TEST_EXTOR_RESULT_NONE);
  else if (conn->close_after_write)
    conn_close (conn, TWP_TEST_EXTOR_RESULT_NONE);
  else
    conn_read (conn);
  conn_unref (conn);
}

/* Writes @out if non-empty, then reads on; one operation at a time. */
static void
conn_continue (Conn       *conn,
               GByteArray *out)
{
  if (conn->state == CONN_CLOSED)
    return;
  if (out->len == 0)
    {
      if (conn->close_after_write)
        conn_close (conn, TWP_TEST_EXTOR_RESULT_NONE);
      else
        conn_read (conn);
      return;
    }
  conn->pending_out = g_bytes_new (out->data, out->len);
  conn->server->n_pending_ops++;
  g_output_stream_write_all_async (g_io_stream_get_output_stream (G_IO_STREAM (conn->connection)),
                                   g_bytes_get_data (conn->pending_out, NULL),
                                   g_bytes_get_size (conn->pending_out),
                                   G_PRIORITY_DEFAULT, conn->server->cancellable,
                                   conn_write_cb, g_rc_box_acquire (conn));
}

static void
conn_read_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  Conn *conn = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GByteArray) out = g_byte_array_new ();
  gssize n;

  conn->server->n_pending_ops--;
  n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, &error);
  if (n <= 0)
    {
      conn_close (conn, conn->result == TWP_TEST_EXTOR_RESULT_NONE ?
                        TWP_TEST_EXTOR_RESULT_PEER_CLOSED : TWP_TEST_EXTOR_RESULT_NONE);
      conn_unref (conn);
      return;
    }
  g_byte_array_append (conn->inbuf, conn->read_buf, n);
  conn_process (conn, out);
  conn_continue (conn, out);
  conn_unref (conn);
}

static void
conn_read (Conn *conn)
{
  conn->server->n_pending_ops++;
  g_input_stream_read_async (g_io_stream_get_input_stream (G_IO_STREAM (conn->connection)),
                             conn->read_buf, sizeof conn->read_buf,
                             G_PRIORITY_DEFAULT, conn->server->cancellable,
                             conn_read_cb, g_rc_box_acquire (conn));
}

static gboolean
incoming_cb (GSocketService    *service,
             GSocketConnection *connection,
             GObject           *source_object,
             gpointer           user_data)
{
  TwpTestExtOrServer *server = user_data;
  Conn *conn = g_rc_box_new0 (Conn);
  g_autoptr(GByteArray) out = g_byte_array_new ();
  static const guint8 auth_types[] = { TWP_EXTORPORT_AUTH_SAFE_COOKIE, 0x00 };

  conn->server = server;
  conn->connection = g_object_ref (connection);
  conn->inbuf = g_byte_array_new ();
  conn->payload = g_byte_array_new ();
  conn->state = server->mode == TWP_TEST_EXTOR_MODE_STALL ||
                server->mode == TWP_TEST_EXTOR_MODE_SILENT ? CONN_STALLED : CONN_AUTH_TYPE;
  g_ptr_array_add (server->connections, conn);

  /* tor 0.4.9 speaks first: `01 00` (E). */
  if (server->mode != TWP_TEST_EXTOR_MODE_SILENT)
    g_byte_array_append (out, auth_types, sizeof auth_types);
  conn_continue (conn, out);
  return TRUE;
}

TwpTestExtOrServer *
twp_test_extor_server_new (const char       *dir,
                           TwpTestExtOrMode  mode)
{
  TwpTestExtOrServer *server = g_new0 (TwpTestExtOrServer, 1);
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) bind_address = g_inet_socket_address_new (loopback, 0);
  g_autoptr(GSocketAddress) bound = NULL;
  g_autoptr(GError) error = NULL;

  server->mode = mode;
  server->context = g_main_context_ref_thread_default ();
  server->cancellable = g_cancellable_new ();
  server->connections = g_ptr_array_new_with_free_func ((GDestroyNotify) conn_unref);
  server->cookie_path = g_build_filename (dir, "extended_orport_auth_cookie", NULL);
  write_cookie (server);

  server->service = g_socket_service_new ();
  /* tor listens with a large backlog too; bursts of tests must not stall. */
  g_socket_listener_set_backlog (G_SOCKET_LISTENER (server->service), 4096);
  g_socket_listener_add_address (G_SOCKET_LISTENER (server->service), bind_address,
                                 G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP,
                                 NULL, &bound, &error);
  g_assert_no_error (error);
  server->port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  server->address = g_strdup_printf ("127.0.0.1:%u", server->port);
  g_signal_connect (server->service, "incoming", G_CALLBACK (incoming_cb), server);
  g_socket_service_start (server->service);
  return server;
}

void
twp_test_extor_server_free (TwpTestExtOrServer *server)
{
  gint64 deadline;

  if (server == NULL)
    return;

  g_signal_handlers_disconnect_by_func (server->service, incoming_cb, server);
  g_socket_service_stop (server->service);
  g_socket_listener_close (G_SOCKET_LISTENER (server->service));
  g_cancellable_cancel (server->cancellable);
  for (guint i = 0; i < server->connections->len; i++)
    conn_close (g_ptr_array_index (server->connections, i), TWP_TEST_EXTOR_RESULT_NONE);

  /* Callbacks still pending borrow @server: let them all run first. */
  deadline = g_get_monotonic_time () + DRAIN_TIMEOUT_US;
  while (server->n_pending_ops > 0 && g_get_monotonic_time () < deadline)
    g_main_context_iteration (server->context, FALSE);
  g_assert_cmpuint (server->n_pending_ops, ==, 0);

  g_unlink (server->cookie_path);
  g_clear_object (&server->service);
  g_clear_object (&server->cancellable);
  g_clear_pointer (&server->connections, g_ptr_array_unref);
  g_clear_pointer (&server->context, g_main_context_unref);
  g_free (server->cookie_path);
  g_free (server->address);
  g_free (server);
}

guint16
twp_test_extor_server_get_port (TwpTestExtOrServer *server)
{
  return server->port;
}

const char *
twp_test_extor_server_get_address (TwpTestExtOrServer *server)
{
  return server->address;
}

const char *
twp_test_extor_server_get_cookie_path (TwpTestExtOrServer *server)
{
  return server->cookie_path;
}

void
twp_test_extor_server_regenerate_cookie (TwpTestExtOrServer *server)
{
  write_cookie (server);
}

void
twp_test_extor_server_set_mode (TwpTestExtOrServer *server,
                                TwpTestExtOrMode    mode)
{
  server->mode = mode;
}

guint
twp_test_extor_server_get_n_connections (TwpTestExtOrServer *server)
{
  return server->connections->len;
}

guint
twp_test_extor_server_get_n_okay (TwpTestExtOrServer *server)
{
  return server->n_okay;
}

guint
twp_test_extor_server_get_n_closed (TwpTestExtOrServer *server)
{
  return server->n_closed;
}

static Conn *
last_conn (TwpTestExtOrServer *server)
{
  if (server->connections->len == 0)
    return NULL;
  return g_ptr_array_index (server->connections, server->connections->len - 1);
}

const char *
twp_test_extor_server_get_last_useraddr (TwpTestExtOrServer *server)
{
  Conn *conn = last_conn (server);

  return conn != NULL ? conn->useraddr : NULL;
}

const char *
twp_test_extor_server_get_last_transport (TwpTestExtOrServer *server)
{
  Conn *conn = last_conn (server);

  return conn != NULL ? conn->transport : NULL;
}

gboolean
twp_test_extor_server_get_last_closed (TwpTestExtOrServer *server)
{
  Conn *conn = last_conn (server);

  return conn != NULL && conn->state == CONN_CLOSED;
}

TwpTestExtOrResult
twp_test_extor_server_get_last_result (TwpTestExtOrServer *server)
{
  Conn *conn = last_conn (server);

  return conn != NULL ? conn->result : TWP_TEST_EXTOR_RESULT_NONE;
}

GBytes *
twp_test_extor_server_get_last_payload (TwpTestExtOrServer *server)
{
  Conn *conn = last_conn (server);

  if (conn == NULL)
    return g_bytes_new (NULL, 0);
  return g_bytes_new (conn->payload->data, conn->payload->len);
}

guint64
twp_test_extor_server_get_bytes_relayed (TwpTestExtOrServer *server)
{
  return server->bytes_relayed;
}
