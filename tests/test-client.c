/* SPDX-License-Identifier: BSD-3-Clause */
/* Client integration tests: the real binary ($TWP_BINARY --client --managed)
 * driven as tor drives it (managed environment, stdout protocol, SOCKS5 with
 * the bridge arguments in RFC 1929), against WebSocket servers written here:
 * libsoup's SoupServer (echo, sink, source, redirects, 403), a raw peer that
 * sends hand-built frames, and upstream SOCKS5 / HTTP CONNECT proxies.
 *
 * Threads: the main thread owns the main context (SoupServer, the child's
 * stdout and exit); SOCKS handshakes, bulk transfers, the raw peer and the
 * proxies use blocking sockets in their own threads, and the main thread
 * waits for them with TWP_TEST_WAIT_FOR/TWP_TEST_ASSERT_WAIT (twp-test-utils.h),
 * which iterate the main context until a condition holds or a deadline
 * passes. */
#define G_LOG_DOMAIN "twp-test-client"

#include "config.h"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <libsoup/soup.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>

#include "twp-test-client-peer.h"
#include "twp-test-client-proxy.h"
#include "twp-test-utils.h"

#define BULK_SIZE (64 * 1024 * 1024)
/* The client's default limit on an incoming message (--max-message-size). */
#define MAX_MESSAGE (64 * 1024)

/* ---- fast deterministic data ------------------------------------------- */

/* xorshift64*: ~1 GB/s, so 64 MiB payloads cost little next to the relay. */
static void
fill_random (guint64 *state,
             guint8  *buf,
             gsize    len)
{
  guint64 x = *state;

  for (gsize i = 0; i < len; i += 8)
    {
      guint64 v;

      x ^= x >> 12;
      x ^= x << 25;
      x ^= x >> 27;
      v = x * G_GUINT64_CONSTANT (0x2545F4914F6CDD1D);
      memcpy (buf + i, &v, MIN (8, len - i));
    }
  *state = x;
}

/* ---- the binary under test --------------------------------------------- */

/* The running binary (twp-test-utils.h's harness) and its state dir. */
typedef struct {
  TwpTestProc *proc;
  char *tmpdir;
  char *state_dir;
  guint16 port;           /* from the CMETHOD line */
} TestClient;

/* Spawns the binary with tor's client environment. @overrides holds
 * "KEY=VALUE" (set) or "KEY" (unset) items applied last. */
static TestClient *
test_client_spawn (const char * const *overrides)
{
  TestClient *client = g_new0 (TestClient, 1);
  g_autoptr(GError) error = NULL;
  /* Nothing of the test runner's own PT settings leaks in. */
  g_auto(GStrv) env = twp_test_pt_environ ();
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autofree char *no_bus = NULL;

  g_ptr_array_add (argv, (gpointer) twp_test_binary_path ());
  g_ptr_array_add (argv, "--client");
  g_ptr_array_add (argv, "--managed");
  client->tmpdir = g_dir_make_tmp ("twp-client-XXXXXX", &error);
  g_assert_no_error (error);
  /* Tor passes DataDirectory/pt_state/ with a slash and does not create it. */
  client->state_dir = g_build_filename (client->tmpdir, "pt_state", "", NULL);

  env = g_environ_setenv (env, "TOR_PT_MANAGED_TRANSPORT_VER", "1", TRUE);
  env = g_environ_setenv (env, "TOR_PT_CLIENT_TRANSPORTS", "websocket", TRUE);
  env = g_environ_setenv (env, "TOR_PT_STATE_LOCATION", client->state_dir, TRUE);
  env = g_environ_setenv (env, "TOR_PT_EXIT_ON_STDIN_CLOSE", "1", TRUE);
  /* tor hands over its whole environment: a desktop proxy setting there
   * must not reroute bridge connections (only TOR_PT_PROXY may). */
  env = g_environ_setenv (env, "http_proxy", "http://127.0.0.1:9/", TRUE);
  env = g_environ_setenv (env, "all_proxy", "socks5://127.0.0.1:9", TRUE);
  /* Hermetic: a desktop session bus must not see test instances (the
   * D-Bus export has its own tests); this address fails at once. */
  no_bus = g_strdup_printf ("unix:path=%s/no-bus", client->tmpdir);
  env = g_environ_setenv (env, "DBUS_SESSION_BUS_ADDRESS", no_bus, TRUE);
  for (guint i = 0; overrides != NULL && overrides[i] != NULL; i++)
    {
      const char *equals = strchr (overrides[i], '=');

      /* "--option" entries go on the command line, not in the environment. */
      if (g_str_has_prefix (overrides[i], "--"))
        g_ptr_array_add (argv, (gpointer) overrides[i]);
      else if (equals == NULL)
        {
          env = g_environ_unsetenv (env, overrides[i]);
        }
      else
        {
          g_autofree char *key = g_strndup (overrides[i], equals - overrides[i]);

          env = g_environ_setenv (env, key, equals + 1, TRUE);
        }
    }

  g_ptr_array_add (argv, NULL);
  client->proc = twp_test_proc_spawn ((const char * const *) argv->pdata, env);
  return client;
}

static const char *
test_client_line (TestClient *client,
                  guint       i)
{
  return i < client->proc->lines->len ? g_ptr_array_index (client->proc->lines, i) : NULL;
}

/* Spawns and waits for CMETHODS DONE; takes the port from the CMETHOD line. */
static TestClient *
test_client_start (const char * const *overrides)
{
  TestClient *client = test_client_spawn (overrides);
  const char *prefix = "CMETHOD websocket socks5 127.0.0.1:";

  TWP_TEST_ASSERT_WAIT (client->proc->done_index >= 0 || client->proc->out_eof, 10000);
  g_assert_cmpint (client->proc->done_index, >=, 0);
  for (guint i = 0; i < (guint) client->proc->done_index; i++)
    if (g_str_has_prefix (test_client_line (client, i), prefix))
      client->port = (guint16) g_ascii_strtoull (test_client_line (client, i) + strlen (prefix), NULL, 10);
  g_assert_cmpuint (client->port, !=, 0);
  return client;
}

static int
test_client_pid (TestClient *client)
{
  return (int) g_ascii_strtoll (g_subprocess_get_identifier (client->proc->process), NULL, 10);
}

/* Like tor at shutdown: stop reading the child's stdout and close it. */
static void
test_client_close_stdout (TestClient *client)
{
  g_cancellable_cancel (client->proc->cancellable);
  TWP_TEST_ASSERT_WAIT (client->proc->out_eof, 5000);
  g_input_stream_close (g_subprocess_get_stdout_pipe (client->proc->process), NULL, NULL);
}

/* G4, G6: after DONE only LOG and STATUS lines; every line is printable
 * US-ASCII. */
static void
assert_stdout_protocol (TestClient *client)
{
  for (guint i = 0; i < client->proc->lines->len; i++)
    {
      const char *line = test_client_line (client, i);

      for (const char *p = line; *p != '\0'; p++)
        g_assert_true (*p >= 0x20 && *p < 0x7f);
      if (client->proc->done_index >= 0 && i > (guint) client->proc->done_index)
        if (!g_str_has_prefix (line, "LOG ") && !g_str_has_prefix (line, "STATUS "))
          g_error ("state-gated line after CMETHODS DONE (tor bug B1): %s", line);
    }
}

static void
test_client_free (TestClient *client)
{
  g_clear_pointer (&client->proc, twp_test_proc_free);
  if (g_file_test (client->state_dir, G_FILE_TEST_IS_DIR))
    g_rmdir (client->state_dir);
  g_rmdir (client->tmpdir);
  g_free (client->state_dir);
  g_free (client->tmpdir);
  g_free (client);
}

/* Like tor: close stdin (EXIT_ON_STDIN_CLOSE=1); the child must exit 0
 * (under ASan a leak makes that fail too). */
static void
test_client_stop (TestClient *client)
{
  if (!client->proc->exited)
    {
      g_output_stream_close (g_subprocess_get_stdin_pipe (client->proc->process), NULL, NULL);
      if (!TWP_TEST_WAIT_FOR (client->proc->exited, 5000))
        {
          g_subprocess_force_exit (client->proc->process);
          TWP_TEST_ASSERT_WAIT (client->proc->exited, 5000);
          g_error ("the client did not exit within 5 s of stdin EOF");
        }
    }
  TWP_TEST_ASSERT_WAIT (client->proc->out_eof, 5000);
  assert_stdout_protocol (client);
  g_assert_true (g_subprocess_get_if_exited (client->proc->process));
  g_assert_cmpint (g_subprocess_get_exit_status (client->proc->process), ==, 0);
  test_client_free (client);
}

/* ---- SOCKS5, spoken like tor ------------------------------------------- */

typedef struct {
  guint16 port;
  const char *args;        /* NULL: no args, greeting 05 01 00 */
  guint16 target_port;
  int auth_status;         /* RFC 1929 status byte, -1 if not reached */
  int rep;                 /* SOCKS5 REP, -1 if not reached */
  gint64 reply_at;         /* monotonic time the reply was read */
  GSocket *socket;         /* on REP 00 */
  GError *error;
  int done;
} SocksJob;

static gboolean
socks_handshake (SocksJob  *job,
                 GSocket   *socket,
                 GError   **error)
{
  static const guint8 greeting_args[] = { 0x05, 0x02, 0x00, 0x02 };
  static const guint8 greeting_plain[] = { 0x05, 0x01, 0x00 };
  guint8 answer[2];
  guint8 reply[10];
  guint8 request[10] = { 0x05, 0x01, 0x00, 0x01, 127, 0, 0, 1,
                         job->target_port >> 8, job->target_port & 0xff };

  /* C9: tor offers 02 only when the bridge has arguments. */
  if (job->args != NULL)
    {
      if (!twp_test_client_send_all (socket, greeting_args, sizeof greeting_args, error))
        return FALSE;
    }
  else if (!twp_test_client_send_all (socket, greeting_plain, sizeof greeting_plain, error))
    {
      return FALSE;
    }
  if (!twp_test_client_recv_exact (socket, answer, 2, error))
    return FALSE;
  if (answer[0] != 0x05 || answer[1] != (job->args != NULL ? 0x02 : 0x00))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "method selection %02x %02x",
                   answer[0], answer[1]);
      return FALSE;
    }

  if (job->args != NULL)
    {
      /* C10: up to 255 bytes in UNAME with PASSWD "\0"; longer strings are
       * cut at byte 255, even inside an escape. */
      gsize len = strlen (job->args);
      gsize ulen = MIN (len, 255);
      gsize plen = len - ulen;
      g_autoptr(GByteArray) auth = g_byte_array_new ();
      guint8 byte;

      g_assert_cmpuint (plen, <=, 255);
      byte = 0x01;
      g_byte_array_append (auth, &byte, 1);
      byte = (guint8) ulen;
      g_byte_array_append (auth, &byte, 1);
      g_byte_array_append (auth, (const guint8 *) job->args, ulen);
      if (plen == 0)
        {
          static const guint8 empty_password[] = { 0x01, 0x00 };

          g_byte_array_append (auth, empty_password, 2);
        }
      else
        {
          byte = (guint8) plen;
          g_byte_array_append (auth, &byte, 1);
          g_byte_array_append (auth, (const guint8 *) job->args + ulen, plen);
        }
      if (!twp_test_client_send_all (socket, auth->data, auth->len, error) ||
          !twp_test_client_recv_exact (socket, answer, 2, error))
        return FALSE;
      if (answer[0] != 0x01)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "RFC 1929 version %02x", answer[0]);
          return FALSE;
        }
      job->auth_status = answer[1];
      if (answer[1] != 0x00)
        return TRUE;
    }

  /* C12: CONNECT, ATYP 1, the bridge's address (a routing tag here). */
  if (!twp_test_client_send_all (socket, request, sizeof request, error) ||
      !twp_test_client_recv_exact (socket, reply, 10, error))
    return FALSE;
  job->reply_at = g_get_monotonic_time ();
  if (reply[0] != 0x05 || reply[2] != 0x00 || reply[3] != 0x01)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "SOCKS reply %02x %02x %02x %02x",
                   reply[0], reply[1], reply[2], reply[3]);
      return FALSE;
    }
  job->rep = reply[1];
  return TRUE;
}

static gpointer
socks_thread (gpointer user_data)
{
  SocksJob *job = user_data;
  g_autoptr(GSocket) socket = twp_test_client_connect (job->port, &job->error);

  if (socket != NULL && socks_handshake (job, socket, &job->error) && job->rep == 0)
    job->socket = g_steal_pointer (&socket);
  g_atomic_int_set (&job->done, 1);
  g_main_context_wakeup (NULL);
  return NULL;
}

/* Connects to the client's SOCKS port and runs tor's handshake in a thread
 * while the main context serves the WebSocket servers. Returns the tunnel
 * on REP 00, else NULL with the reached status bytes (-1 = not reached). */
static GSocket *
socks_open_full (guint16     port,
                 const char *args,
                 int        *auth_status,
                 int        *rep,
                 gint64     *reply_at)
{
  SocksJob job = { .port = port, .args = args, .target_port = 9, .auth_status = -1, .rep = -1 };
  GThread *thread = g_thread_new ("socks", socks_thread, &job);

  /* The client's own connect timeout is 30 s; every failure here is quicker. */
  TWP_TEST_ASSERT_WAIT (g_atomic_int_get (&job.done), 40000);
  g_thread_join (thread);
  g_assert_no_error (job.error);
  if (auth_status != NULL)
    *auth_status = job.auth_status;
  if (rep != NULL)
    *rep = job.rep;
  if (reply_at != NULL)
    *reply_at = job.reply_at;
  return job.socket;
}

static GSocket *
socks_open (guint16     port,
            const char *args,
            int        *auth_status,
            int        *rep)
{
  return socks_open_full (port, args, auth_status, rep, NULL);
}

static GSocket *
socks_open_ok_at (guint16     port,
                  const char *args,
                  gint64     *reply_at)
{
  int auth_status;
  int rep;
  GSocket *socket = socks_open_full (port, args, &auth_status, &rep, reply_at);

  g_assert_cmpint (auth_status, ==, 0);
  g_assert_cmpint (rep, ==, 0);
  g_assert_nonnull (socket);
  return socket;
}

static GSocket *
socks_open_ok (guint16     port,
               const char *args)
{
  return socks_open_ok_at (port, args, NULL);
}

/* ---- bulk data pumps (threads) ----------------------------------------- */

typedef struct {
  GSocket *socket;
  guint64 total;
  guint64 seed;
  gboolean shutdown_when_done;   /* writer: half-close after the last byte */
  GThread *thread;
  /* results */
  guint64 count;
  int progress_kib;              /* reader: for a pacing server */
  char *sha256;
  GError *error;
  int done;
} Pump;

static gpointer
writer_thread (gpointer user_data)
{
  Pump *pump = user_data;
  g_autoptr(GChecksum) checksum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autofree guint8 *buf = g_malloc (65536);
  guint64 state = pump->seed;

  while (pump->count < pump->total)
    {
      gsize n = MIN (65536, pump->total - pump->count);

      fill_random (&state, buf, 65536);
      if (!twp_test_client_send_all (pump->socket, buf, n, &pump->error))
        break;
      g_checksum_update (checksum, buf, n);
      pump->count += n;
    }
  if (pump->error == NULL && pump->shutdown_when_done)
    g_socket_shutdown (pump->socket, FALSE, TRUE, &pump->error);
  pump->sha256 = g_strdup (g_checksum_get_string (checksum));
  g_atomic_int_set (&pump->done, 1);
  g_main_context_wakeup (NULL);
  return NULL;
}

static gpointer
reader_thread (gpointer user_data)
{
  Pump *pump = user_data;
  g_autoptr(GChecksum) checksum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autofree guint8 *buf = g_malloc (65536);

  while (pump->count < pump->total)
    {
      gssize n = g_socket_receive (pump->socket, (char *) buf, MIN (65536, pump->total - pump->count),
                                   NULL, &pump->error);

      if (n <= 0)
        {
          if (n == 0)
            g_set_error (&pump->error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
                         "EOF after %" G_GUINT64_FORMAT " bytes", pump->count);
          break;
        }
      g_checksum_update (checksum, buf, n);
      pump->count += n;
      g_atomic_int_set (&pump->progress_kib, (int) (pump->count / 1024));
    }
  pump->sha256 = g_strdup (g_checksum_get_string (checksum));
  g_atomic_int_set (&pump->done, 1);
  g_main_context_wakeup (NULL);
  return NULL;
}

static Pump *
pump_start (GSocket  *socket,
            gboolean  writer,
            guint64   total,
            guint64   seed,
            gboolean  shutdown_when_done)
{
  Pump *pump = g_new0 (Pump, 1);

  pump->socket = socket;
  pump->total = total;
  pump->seed = seed;
  pump->shutdown_when_done = shutdown_when_done;
  pump->thread = g_thread_new (writer ? "writer" : "reader", writer ? writer_thread : reader_thread, pump);
  return pump;
}

/* Waits for the pump, checks it moved everything, returns its sha256. */
static char *
pump_finish (Pump   *pump,
             double  seconds)
{
  char *sha256;

  TWP_TEST_ASSERT_WAIT (g_atomic_int_get (&pump->done), (seconds) * 1000);
  g_thread_join (pump->thread);
  g_assert_no_error (pump->error);
  g_assert_cmpuint (pump->count, ==, pump->total);
  sha256 = g_steal_pointer (&pump->sha256);
  g_free (pump);
  return sha256;
}

/* ---- libsoup WebSocket servers ----------------------------------------- */

typedef enum {
  WS_ECHO,     /* send every message back as it came */
  WS_SINK,     /* hash what arrives (base64 decoded) */
  WS_SOURCE,   /* send source_total bytes with known hash, paced by a reader */
} WsMode;

typedef struct {
  SoupServer *server;
  GSocketService *service;
  guint16 port;
  char *url;                  /* ws://127.0.0.1:port/ws */
  WsMode mode;
  GPtrArray *connections;     /* SoupWebsocketConnection (owned) */

  /* every request the server read, and the last one's headers */
  guint n_requests;
  SoupMessageHeaders *last_headers;
  char *last_path;
  char *redirect_location;    /* for /r301 and /r302 */

  /* WebSocket connections (tests use one at a time) */
  guint n_websockets;
  char *protocol;             /* negotiated subprotocol */
  guint n_text;
  guint n_binary;
  guint n_bad_base64;         /* text messages that are not whole padded base64 */
  gboolean closed;
  guint close_code;
  guint64 received;           /* decoded payload bytes */
  GChecksum *sink_checksum;

  /* SOURCE */
  guint64 source_total;
  guint64 source_sent;
  guint64 source_state;
  GChecksum *source_checksum;
  guint source_timer;
  const int *reader_progress_kib;
  SoupWebsocketConnection *source_connection;
} WsServer;

static gboolean
is_padded_base64 (const char *text,
                  gsize       len)
{
  const char *equals = memchr (text, '=', len);

  /* Message-level base64: whole quanta, padding only at the very end. */
  if (len % 4 != 0)
    return FALSE;
  if (equals == NULL)
    return TRUE;
  return equals >= text + len - 2 && (equals == text + len - 1 || equals[1] == '=');
}

static void
ws_message_cb (SoupWebsocketConnection *connection,
               int                      type,
               GBytes                  *message,
               gpointer                 user_data)
{
  WsServer *ws = user_data;
  gsize len;
  const char *data = g_bytes_get_data (message, &len);

  if (type == SOUP_WEBSOCKET_DATA_TEXT)
    {
      ws->n_text++;
      if (!is_padded_base64 (data, len))
        ws->n_bad_base64++;
    }
  else
    {
      ws->n_binary++;
    }

  if (ws->mode == WS_ECHO)
    {
      ws->received += len;
      if (soup_websocket_connection_get_state (connection) == SOUP_WEBSOCKET_STATE_OPEN)
        soup_websocket_connection_send_message (connection, type, message);
    }
  else if (ws->mode == WS_SINK)
    {
      if (type == SOUP_WEBSOCKET_DATA_TEXT)
        {
          g_autofree guchar *decoded = g_malloc (len / 4 * 3 + 3);
          int state = 0;
          guint save = 0;
          gsize n = g_base64_decode_step (data, len, decoded, &state, &save);

          g_checksum_update (ws->sink_checksum, decoded, n);
          ws->received += n;
        }
      else
        {
          g_checksum_update (ws->sink_checksum, (const guchar *) data, len);
          ws->received += len;
        }
    }
}

static void
ws_closed_cb (SoupWebsocketConnection *connection,
              gpointer                 user_data)
{
  WsServer *ws = user_data;

  ws->closed = TRUE;
  ws->close_code = soup_websocket_connection_get_close_code (connection);
}

/* Sends the next messages of the source stream while the reader is less
 * than 4 MiB behind: libsoup queues without bound, so pace it by hand. */
static gboolean
source_tick_cb (gpointer user_data)
{
  WsServer *ws = user_data;
  g_autofree guint8 *buf = g_malloc (48008);
  gboolean base64 = g_strcmp0 (ws->protocol, "base64") == 0;

  while (ws->source_sent < ws->source_total &&
         ws->source_sent / 1024 < (guint64) g_atomic_int_get (ws->reader_progress_kib) + 4096 &&
         soup_websocket_connection_get_state (ws->source_connection) == SOUP_WEBSOCKET_STATE_OPEN)
    {
      gsize size;

      fill_random (&ws->source_state, buf, 48008);
      /* Message sizes from 1 byte to 48000 (64000 base64 characters,
       * under the client's 64 KiB limit). */
      size = 1 + (buf[48000] | buf[48001] << 8 | (guint) buf[48002] << 16) % 48000;
      size = MIN (size, ws->source_total - ws->source_sent);
      g_checksum_update (ws->source_checksum, buf, size);
      ws->source_sent += size;
      if (base64)
        {
          g_autofree char *text = g_base64_encode (buf, size);
          g_autoptr(GBytes) bytes = g_bytes_new (text, strlen (text));

          soup_websocket_connection_send_message (ws->source_connection, SOUP_WEBSOCKET_DATA_TEXT, bytes);
        }
      else
        {
          soup_websocket_connection_send_binary (ws->source_connection, buf, size);
        }
    }
  if (ws->source_sent < ws->source_total)
    return G_SOURCE_CONTINUE;
  ws->source_timer = 0;
  return G_SOURCE_REMOVE;
}

static void
ws_handler_cb (SoupServer              *server,
               SoupServerMessage       *msg,
               const char              *path,
               SoupWebsocketConnection *connection,
               gpointer                 user_data)
{
  WsServer *ws = user_data;

  ws->n_websockets++;
  g_free (ws->protocol);
  ws->protocol = g_strdup (soup_websocket_connection_get_protocol (connection));
  ws->closed = FALSE;
  g_ptr_array_add (ws->connections, g_object_ref (connection));
  g_signal_connect (connection, "message", G_CALLBACK (ws_message_cb), ws);
  g_signal_connect (connection, "closed", G_CALLBACK (ws_closed_cb), ws);
  if (ws->mode == WS_SOURCE)
    {
      g_assert_null (ws->source_connection);
      g_assert_nonnull (ws->reader_progress_kib);
      ws->source_connection = connection;
      ws->source_timer = g_timeout_add (2, source_tick_cb, ws);
    }
}

static void
redirect_handler_cb (SoupServer        *server,
                     SoupServerMessage *msg,
                     const char        *path,
                     GHashTable        *query,
                     gpointer           user_data)
{
  WsServer *ws = user_data;

  if (g_str_equal (path, "/r301") || g_str_equal (path, "/r302"))
    {
      soup_server_message_set_status (msg, g_str_equal (path, "/r301") ? 301 : 302, NULL);
      soup_message_headers_replace (soup_server_message_get_response_headers (msg), "Location",
                                    ws->redirect_location);
    }
  else
    {
      soup_server_message_set_status (msg, 403, NULL);
    }
}

static void
request_read_cb (SoupServer        *server,
                 SoupServerMessage *msg,
                 gpointer           user_data)
{
  WsServer *ws = user_data;

  ws->n_requests++;
  g_clear_pointer (&ws->last_headers, soup_message_headers_unref);
  ws->last_headers = soup_message_headers_ref (soup_server_message_get_request_headers (msg));
  g_free (ws->last_path);
  ws->last_path = g_strdup (g_uri_get_path (soup_server_message_get_uri (msg)));
}

static gboolean
ws_incoming_cb (GSocketService    *service,
                GSocketConnection *connection,
                GObject           *source_object,
                gpointer           user_data)
{
  WsServer *ws = user_data;
  g_autoptr(GSocketAddress) local = g_socket_connection_get_local_address (connection, NULL);
  g_autoptr(GSocketAddress) remote = g_socket_connection_get_remote_address (connection, NULL);
  g_autoptr(GError) error = NULL;

  soup_server_accept_iostream (ws->server, G_IO_STREAM (connection), local, remote, &error);
  g_assert_no_error (error);
  return TRUE;
}

static WsServer *
ws_server_new (WsMode mode)
{
  WsServer *ws = g_new0 (WsServer, 1);
  g_autoptr(GError) error = NULL;
  char *protocols[] = { (char *) "base64", NULL };
  g_autoptr(GSocket) listener = NULL;

  ws->mode = mode;
  ws->connections = g_ptr_array_new_with_free_func (g_object_unref);
  ws->sink_checksum = g_checksum_new (G_CHECKSUM_SHA256);
  ws->source_checksum = g_checksum_new (G_CHECKSUM_SHA256);
  ws->source_state = G_GUINT64_CONSTANT (0x9E3779B97F4A7C15);
  ws->server = soup_server_new ("server-header", "test", NULL);
  /* A Tor PT never compresses, and libsoup's inflater is unbounded. */
  soup_server_remove_websocket_extension (ws->server, SOUP_TYPE_WEBSOCKET_EXTENSION_DEFLATE);
  soup_server_add_websocket_handler (ws->server, "/ws", NULL, protocols, ws_handler_cb, ws, NULL);
  soup_server_add_handler (ws->server, "/r301", redirect_handler_cb, ws, NULL);
  soup_server_add_handler (ws->server, "/r302", redirect_handler_cb, ws, NULL);
  soup_server_add_handler (ws->server, "/f403", redirect_handler_cb, ws, NULL);
  g_signal_connect (ws->server, "request-read", G_CALLBACK (request_read_cb), ws);
  /* We accept, SoupServer only parses: its own listener leaks every
   * accepted GSocket (and an address) in 3.2, which LSan reports. */
  listener = twp_test_client_listen (&ws->port, &error);
  g_assert_no_error (error);
  g_socket_set_blocking (listener, FALSE);
  ws->service = g_socket_service_new ();
  g_socket_listener_add_socket (G_SOCKET_LISTENER (ws->service), listener, NULL, &error);
  g_assert_no_error (error);
  g_signal_connect (ws->service, "incoming", G_CALLBACK (ws_incoming_cb), ws);
  g_socket_service_start (ws->service);
  ws->url = g_strdup_printf ("ws://127.0.0.1:%u/ws", ws->port);
  return ws;
}

static void
ws_server_free (WsServer *ws)
{
  if (ws->source_timer != 0)
    g_source_remove (ws->source_timer);
  for (guint i = 0; i < ws->connections->len; i++)
    g_signal_handlers_disconnect_by_data (g_ptr_array_index (ws->connections, i), ws);
  g_ptr_array_unref (ws->connections);
  g_socket_service_stop (ws->service);
  g_socket_listener_close (G_SOCKET_LISTENER (ws->service));
  g_signal_handlers_disconnect_by_data (ws->service, ws);
  g_object_unref (ws->service);
  soup_server_disconnect (ws->server);
  g_signal_handlers_disconnect_by_data (ws->server, ws);
  g_object_unref (ws->server);
  g_clear_pointer (&ws->last_headers, soup_message_headers_unref);
  g_checksum_free (ws->sink_checksum);
  g_checksum_free (ws->source_checksum);
  g_free (ws->last_path);
  g_free (ws->redirect_location);
  g_free (ws->protocol);
  g_free (ws->url);
  g_free (ws);
}

/* The upgrade request as the proposal describes it: version 13, base64
 * asked for iff the mode is base64, and nothing a browser would not send
 * to a plain WebSocket server (no compression, no extensions). */
static void
assert_upgrade_request (WsServer *ws,
                        gboolean  base64)
{
  SoupMessageHeaders *headers = ws->last_headers;
  g_autofree char *host = g_strdup_printf ("127.0.0.1:%u", ws->port);

  g_assert_nonnull (headers);
  g_assert_cmpstr (ws->last_path, ==, "/ws");
  g_assert_cmpstr (soup_message_headers_get_one (headers, "Host"), ==, host);
  g_assert_cmpstr (soup_message_headers_get_one (headers, "Sec-WebSocket-Version"), ==, "13");
  g_assert_cmpstr (soup_message_headers_get_one (headers, "Sec-WebSocket-Protocol"), ==,
                   base64 ? "base64" : NULL);
  g_assert_null (soup_message_headers_get_one (headers, "Accept-Encoding"));
  g_assert_null (soup_message_headers_get_one (headers, "Sec-WebSocket-Extensions"));
  g_assert_cmpstr (ws->protocol, ==, base64 ? "base64" : NULL);
}

static char *
url_args (WsServer   *ws,
          const char *extra)
{
  return g_strdup_printf ("url=%s%s%s", ws->url, extra != NULL ? ";" : "", extra != NULL ? extra : "");
}

/* A small round trip through an echo server. */
static void
assert_echo (GSocket *socket,
             gsize    len)
{
  Pump *reader = pump_start (socket, FALSE, len, 0, FALSE);
  Pump *writer = pump_start (socket, TRUE, len, 42, FALSE);
  g_autofree char *sent = pump_finish (writer, 20);
  g_autofree char *received = pump_finish (reader, 20);

  g_assert_cmpstr (sent, ==, received);
}

/* ---- 1. managed mode: stdout protocol and environment ------------------ */

static void
test_managed_golden (void)
{
  TestClient *client = test_client_spawn (NULL);
  g_autofree char *status = g_strdup_printf ("STATUS TYPE=version IMPLEMENTATION=tor-websocket-proxy VERSION=%s",
                                             PACKAGE_VERSION);
  GStatBuf st;

  TWP_TEST_ASSERT_WAIT (client->proc->done_index >= 0 || client->proc->out_eof, 10000);
  /* G2, G12, C6, C8: exactly these lines, in this order, before DONE. */
  g_assert_cmpint (client->proc->done_index, ==, 3);
  g_assert_cmpstr (test_client_line (client, 0), ==, "VERSION 1");
  g_assert_cmpstr (test_client_line (client, 1), ==, status);
  g_assert_true (g_regex_match_simple ("^CMETHOD websocket socks5 127\\.0\\.0\\.1:[1-9][0-9]{0,4}$",
                                       test_client_line (client, 2), 0, 0));
  g_assert_cmpstr (test_client_line (client, 3), ==, "CMETHODS DONE");

  /* G13: the state directory exists now, private. */
  g_assert_cmpint (g_stat (client->state_dir, &st), ==, 0);
  g_assert_true (S_ISDIR (st.st_mode));
  g_assert_cmpint (st.st_mode & 0777, ==, 0700);

  test_client_stop (client);
}

static void
test_managed_version_list (void)
{
  const char *env[] = { "TOR_PT_MANAGED_TRANSPORT_VER=1a,2b,1", NULL };
  TestClient *client = test_client_start (env);

  /* G1: any element equal to 1 is enough. */
  g_assert_cmpstr (test_client_line (client, 0), ==, "VERSION 1");
  test_client_stop (client);
}

static void
assert_exits_with_error (TestClient *client)
{
  TWP_TEST_ASSERT_WAIT (client->proc->exited && client->proc->out_eof, 10000);
  assert_stdout_protocol (client);
  g_assert_false (g_subprocess_get_successful (client->proc->process));
  for (guint i = 0; i < client->proc->lines->len; i++)
    g_assert_false (g_str_has_prefix (test_client_line (client, i), "CMETHOD"));
}

static void
test_managed_version_error (void)
{
  const char *const cases[][2] = {
    { "TOR_PT_MANAGED_TRANSPORT_VER=2", NULL },
    { "TOR_PT_MANAGED_TRANSPORT_VER=10,1a,2", NULL },
    { "TOR_PT_MANAGED_TRANSPORT_VER=", NULL },
    { "TOR_PT_MANAGED_TRANSPORT_VER", NULL },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      TestClient *client = test_client_spawn (cases[i]);

      /* G1, G11: exactly this text, then a non-zero exit. Tor always sets
       * the variable; when it is missing altogether, goptlib's ENV-ERROR
       * is as good. */
      assert_exits_with_error (client);
      if (strchr (cases[i][0], '=') == NULL && g_str_has_prefix (test_client_line (client, 0), "ENV-ERROR "))
        g_test_message ("unset TOR_PT_MANAGED_TRANSPORT_VER: %s", test_client_line (client, 0));
      else
        g_assert_cmpstr (test_client_line (client, 0), ==, "VERSION-ERROR no-version");
      test_client_free (client);
    }
}

static void
test_managed_env_error (void)
{
  const char *const cases[][3] = {
    { "TOR_PT_CLIENT_TRANSPORTS", NULL },
    /* C1: both roles at once is an error too. */
    { "TOR_PT_SERVER_TRANSPORTS=websocket", NULL },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      TestClient *client = test_client_spawn (cases[i]);

      /* G3, B3: ENV-ERROR before VERSION so that tor logs its text. */
      assert_exits_with_error (client);
      g_assert_true (g_str_has_prefix (test_client_line (client, 0), "ENV-ERROR "));
      test_client_free (client);
    }
}

static void
test_managed_proxy_done (void)
{
  const char *env[] = { "TOR_PT_PROXY=socks5://127.0.0.1:1080", NULL };
  TestClient *client = test_client_start (env);
  int version = -1;
  int proxy_done = -1;

  for (guint i = 0; i < (guint) client->proc->done_index; i++)
    {
      if (g_str_equal (test_client_line (client, i), "VERSION 1"))
        version = i;
      if (g_str_equal (test_client_line (client, i), "PROXY DONE"))
        proxy_done = i;
    }
  /* C2, B1: after VERSION, before CMETHODS DONE, never after it. */
  g_assert_cmpint (version, ==, 0);
  g_assert_cmpint (proxy_done, >, version);
  g_assert_cmpint (proxy_done, <, client->proc->done_index);
  test_client_stop (client);
}

static void
test_managed_proxy_error (void)
{
  const char *const cases[][2] = {
    { "TOR_PT_PROXY=ftp://x", NULL },
    { "TOR_PT_PROXY=socks5://127.0.0.1", NULL },
    { "TOR_PT_PROXY=http://example.com:3128", NULL },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      TestClient *client = test_client_spawn (cases[i]);
      gboolean proxy_error = FALSE;

      /* C2: PROXY-ERROR after VERSION, no CMETHOD, non-zero exit. */
      assert_exits_with_error (client);
      g_assert_cmpstr (test_client_line (client, 0), ==, "VERSION 1");
      for (guint j = 0; j < client->proc->lines->len; j++)
        {
          proxy_error = proxy_error || g_str_has_prefix (test_client_line (client, j), "PROXY-ERROR ");
          g_assert_cmpstr (test_client_line (client, j), !=, "PROXY DONE");
        }
      g_assert_true (proxy_error);
      test_client_free (client);
    }
}

static void
test_managed_unknown_transport (void)
{
  const char *env[] = { "TOR_PT_CLIENT_TRANSPORTS=obfs4,websocket", NULL };
  TestClient *client = test_client_start (env);
  gboolean warned = FALSE;

  /* C1: no CMETHOD-ERROR for a name we do not implement, but a warning
   * (B2), and the known one still registers. */
  for (guint i = 0; i < (guint) client->proc->done_index; i++)
    {
      const char *line = test_client_line (client, i);

      g_assert_false (g_str_has_prefix (line, "CMETHOD-ERROR"));
      g_assert_false (g_str_has_prefix (line, "CMETHOD obfs4"));
      warned = warned || (g_str_has_prefix (line, "LOG SEVERITY=warning MESSAGE=") && strstr (line, "obfs4") != NULL);
    }
  g_assert_true (warned);
  test_client_stop (client);
}

static void
test_managed_debug_to_stderr (void)
{
  const char *env[] = { "G_MESSAGES_DEBUG=all", NULL };
  TestClient *client = test_client_start (env);
  WsServer *ws = ws_server_new (WS_ECHO);
  g_autofree char *args = url_args (ws, NULL);
  g_autoptr(GSocket) socket = socks_open_ok (client->port, args);
  g_autoptr(GString) stray = g_string_new (NULL);
  guint n_stray = 0;

  /* tor's environment may hold G_MESSAGES_DEBUG (a user debugging
   * something else): debug output must still never reach tor's stdout
   * (G4, G6, G8: chatter goes to stderr). */
  assert_echo (socket, 1000);
  g_socket_close (socket, NULL);
  TWP_TEST_ASSERT_WAIT (ws->closed, 10000);
  g_output_stream_close (g_subprocess_get_stdin_pipe (client->proc->process), NULL, NULL);
  TWP_TEST_ASSERT_WAIT (client->proc->exited && client->proc->out_eof, 5000);
  for (guint i = client->proc->done_index + 1; i < client->proc->lines->len; i++)
    if (!g_str_has_prefix (test_client_line (client, i), "LOG ") &&
        !g_str_has_prefix (test_client_line (client, i), "STATUS "))
      {
        if (n_stray++ == 0)
          g_string_append (stray, test_client_line (client, i));
      }
  if (n_stray > 0)
    g_test_fail_printf ("%u non-protocol lines on stdout after CMETHODS DONE with G_MESSAGES_DEBUG=all, "
                        "first: \"%s\" (GLib's default log writer prints debug and info to stdout)",
                        n_stray, stray->str);
  g_assert_true (g_subprocess_get_if_exited (client->proc->process));
  g_assert_cmpint (g_subprocess_get_exit_status (client->proc->process), ==, 0);
  test_client_free (client);
  ws_server_free (ws);
}

/* ---- 2. bulk transfers ------------------------------------------------- */

static void
test_transfer_echo (gconstpointer data)
{
  gboolean base64 = GPOINTER_TO_INT (data);
  TestClient *client = test_client_start (NULL);
  WsServer *ws = ws_server_new (WS_ECHO);
  g_autofree char *args = url_args (ws, base64 ? "mode=base64" : NULL);
  g_autoptr(GSocket) socket = socks_open_ok (client->port, args);
  Pump *reader = pump_start (socket, FALSE, BULK_SIZE, 0, FALSE);
  Pump *writer = pump_start (socket, TRUE, BULK_SIZE, 1, FALSE);
  g_autofree char *sent = pump_finish (writer, 60);
  g_autofree char *received = pump_finish (reader, 60);

  assert_upgrade_request (ws, base64);
  /* Byte-exact both ways at once. */
  g_assert_cmpstr (sent, ==, received);
  if (base64)
    g_assert_cmpuint (ws->received, >=, BULK_SIZE / 3 * 4);
  else
    g_assert_cmpuint (ws->received, ==, BULK_SIZE);
  if (base64)
    {
      /* Text messages only, each a whole padded base64 string. */
      g_assert_cmpuint (ws->n_binary, ==, 0);
      g_assert_cmpuint (ws->n_bad_base64, ==, 0);
    }
  else
    {
      g_assert_cmpuint (ws->n_text, ==, 0);
    }

  /* TCP EOF from tor: the client closes the WebSocket normally. */
  g_socket_close (socket, NULL);
  TWP_TEST_ASSERT_WAIT (ws->closed, 10000);
  g_assert_cmpuint (ws->close_code, ==, SOUP_WEBSOCKET_CLOSE_NORMAL);
  test_client_stop (client);
  ws_server_free (ws);
}

static void
test_transfer_upload (gconstpointer data)
{
  gboolean base64 = GPOINTER_TO_INT (data);
  TestClient *client = test_client_start (NULL);
  WsServer *ws = ws_server_new (WS_SINK);
  g_autofree char *args = url_args (ws, base64 ? "mode=base64" : NULL);
  g_autoptr(GSocket) socket = socks_open_ok (client->port, args);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) rest = NULL;
  Pump *writer = pump_start (socket, TRUE, BULK_SIZE, 2, TRUE);
  g_autofree char *sent = pump_finish (writer, 60);

  /* Everything written before tor's EOF arrives, then a normal close. */
  TWP_TEST_ASSERT_WAIT (ws->closed, 30000);
  assert_upgrade_request (ws, base64);
  g_assert_cmpuint (ws->close_code, ==, SOUP_WEBSOCKET_CLOSE_NORMAL);
  g_assert_cmpuint (ws->received, ==, BULK_SIZE);
  g_assert_cmpstr (g_checksum_get_string (ws->sink_checksum), ==, sent);
  g_assert_cmpuint (ws->n_bad_base64, ==, 0);

  /* ... and the client then ends the SOCKS connection. */
  rest = twp_test_client_recv_until_eof (socket, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_bytes_get_size (rest), ==, 0);
  test_client_stop (client);
  ws_server_free (ws);
}

static void
test_transfer_download (gconstpointer data)
{
  gboolean base64 = GPOINTER_TO_INT (data);
  TestClient *client = test_client_start (NULL);
  WsServer *ws = ws_server_new (WS_SOURCE);
  g_autofree char *args = url_args (ws, base64 ? "mode=base64" : NULL);
  g_autoptr(GSocket) socket = NULL;
  Pump *reader;
  g_autofree char *received = NULL;
  int no_reader = 0;

  /* The server paces itself on the reader's progress; before the reader
   * exists (and after it is gone) it may send one 4 MiB window. */
  ws->source_total = BULK_SIZE;
  ws->reader_progress_kib = &no_reader;
  socket = socks_open_ok (client->port, args);
  reader = pump_start (socket, FALSE, BULK_SIZE, 0, FALSE);
  ws->reader_progress_kib = &reader->progress_kib;
  received = pump_finish (reader, 60);
  ws->reader_progress_kib = &no_reader;

  assert_upgrade_request (ws, base64);
  g_assert_cmpuint (ws->source_sent, ==, BULK_SIZE);
  g_assert_cmpstr (received, ==, g_checksum_get_string (ws->source_checksum));

  g_socket_close (socket, NULL);
  TWP_TEST_ASSERT_WAIT (ws->closed, 10000);
  test_client_stop (client);
  ws_server_free (ws);
}

/* ---- 3. arguments split over UNAME and PASSWD -------------------------- */

static void
test_args_split (gconstpointer data)
{
  gboolean straddle = GPOINTER_TO_INT (data);
  TestClient *client = test_client_start (NULL);
  WsServer *ws = ws_server_new (WS_ECHO);
  g_autofree char *prefix = g_strdup_printf ("url=%s;origin=https://", ws->url);
  g_autoptr(GString) args = g_string_new (prefix);
  g_autoptr(GString) origin = g_string_new ("https://");
  g_autoptr(GSocket) socket = NULL;

  /* C10, C11: with @straddle the escape "\;" has its backslash at byte
   * 254 (the last of UNAME) and its ';' at byte 255 (the first of
   * PASSWD); the client must join before unescaping. */
  while (args->len < 254)
    {
      g_string_append_c (args, 'a');
      g_string_append_c (origin, 'a');
    }
  if (straddle)
    {
      g_string_append (args, "\\;");
      g_string_append_c (origin, ';');
    }
  g_string_append (args, "b.example.org/with=equals");
  g_string_append (origin, "b.example.org/with=equals");
  g_string_append (args, ";mode=binary");
  g_assert_cmpuint (args->len, >, 255);
  if (straddle)
    g_assert_cmpint (args->str[254], ==, '\\');

  socket = socks_open_ok (client->port, args->str);
  assert_upgrade_request (ws, FALSE);
  g_assert_cmpstr (soup_message_headers_get_one (ws->last_headers, "Origin"), ==, origin->str);
  assert_echo (socket, 100000);

  g_socket_close (socket, NULL);
  TWP_TEST_ASSERT_WAIT (ws->closed, 10000);
  test_client_stop (client);
  ws_server_free (ws);
}

/* ---- 4. dial failures -------------------------------------------------- */

static void
test_dial_failures (void)
{
  TestClient *client = test_client_start (NULL);
  WsServer *ws = ws_server_new (WS_ECHO);
  WsServer *target = ws_server_new (WS_ECHO);
  const char *paths[] = { "/r301", "/r302", "/f403" };
  g_autofree char *refused = g_strdup_printf ("url=ws://127.0.0.1:%u/ws", twp_test_refusing_port ());
  const char *invalid[] = { "url=http://x/", "url=ws://", "bogus=1", "url=ws://127.0.0.1/;url=ws://127.0.0.1/" };
  int auth_status;
  int rep;

  ws->redirect_location = g_strdup (target->url);
  for (guint i = 0; i < G_N_ELEMENTS (paths); i++)
    {
      g_autofree char *args = g_strdup_printf ("url=ws://127.0.0.1:%u%s", ws->port, paths[i]);
      guint before = ws->n_requests;

      /* The proposal: no status but 101 lets the tunnel proceed, and a
       * redirect is never followed. C14: general failure. */
      g_assert_null (socks_open (client->port, args, &auth_status, &rep));
      g_assert_cmpint (auth_status, ==, 0);
      g_assert_cmpint (rep, ==, 0x01);
      g_assert_cmpuint (ws->n_requests, ==, before + 1);
      g_assert_cmpuint (ws->n_websockets, ==, 0);
    }
  /* Give a late redirect a chance to show up before checking. */
  g_assert_false (TWP_TEST_WAIT_FOR (target->n_requests > 0, 300));

  /* C14: ECONNREFUSED -> 05. */
  g_assert_null (socks_open (client->port, refused, &auth_status, &rep));
  g_assert_cmpint (auth_status, ==, 0);
  g_assert_cmpint (rep, ==, 0x05);

  /* C10: arguments that do not make a bridge fail the authentication. */
  for (guint i = 0; i < G_N_ELEMENTS (invalid); i++)
    {
      g_assert_null (socks_open (client->port, invalid[i], &auth_status, &rep));
      g_assert_cmpint (auth_status, ==, 0x01);
      g_assert_cmpint (rep, ==, -1);
    }

  test_client_stop (client);
  ws_server_free (ws);
  ws_server_free (target);
}

/* ---- 5. hand-built frames from a raw peer ------------------------------ */

typedef struct {
  GBytes *send;               /* written right after the 101 */
  gboolean close_after;       /* then a close 1000 */
  gboolean ping_first;        /* ping, wait for the pong and 500 ms more */
  /* results */
  GPtrArray *frames;          /* TwpTestClientFrame from the client */
  gboolean closed;            /* the client ended the TCP connection */
  GError *error;
} RawScript;

static void
raw_collect (GSocket   *socket,
             RawScript *script,
             gboolean   until_pong)
{
  for (;;)
    {
      g_autoptr(GError) error = NULL;
      TwpTestClientFrame *frame = twp_test_client_read_frame (socket, &error);

      if (frame == NULL)
        {
          if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED))
            script->closed = TRUE;
          else
            script->error = g_steal_pointer (&error);
          return;
        }
      g_ptr_array_add (script->frames, frame);
      if (until_pong && frame->opcode == 0xA)
        return;
    }
}

static void
raw_script_cb (GSocket  *socket,
               gboolean  base64,
               gpointer  user_data)
{
  RawScript *script = user_data;

  if (script->ping_first)
    {
      static const guint8 payload[] = "twp-ping-\x00\xff";
      g_autoptr(GBytes) ping = twp_test_client_build_frame (0x89, NULL, payload, sizeof payload - 1, FALSE);

      if (!twp_test_client_send_all (socket, g_bytes_get_data (ping, NULL), g_bytes_get_size (ping),
                                     &script->error))
        return;
      raw_collect (socket, script, TRUE);
      if (script->error != NULL || script->closed)
        return;
      /* A second pong would arrive right away; give it 500 ms. */
      if (g_socket_condition_timed_wait (socket, G_IO_IN, 500 * 1000, NULL, NULL))
        {
          TwpTestClientFrame *frame = twp_test_client_read_frame (socket, &script->error);

          if (frame == NULL)
            return;
          g_ptr_array_add (script->frames, frame);
        }
    }
  if (script->send != NULL &&
      !twp_test_client_send_all (socket, g_bytes_get_data (script->send, NULL),
                                 g_bytes_get_size (script->send), &script->error))
    return;
  if (script->close_after)
    {
      g_autoptr(GBytes) close = twp_test_client_build_close (1000);

      if (!twp_test_client_send_all (socket, g_bytes_get_data (close, NULL), g_bytes_get_size (close),
                                     &script->error))
        return;
    }
  raw_collect (socket, script, FALSE);
}

typedef struct {
  TwpTestClientPeer *peer;
  RawScript script;
  GBytes *socks_data;         /* what tor's side received before EOF */
  gint64 started_at;          /* before the SOCKS connection */
  gint64 reply_at;            /* SOCKS reply read */
} RawRun;

static void
raw_append (GByteArray   *array,
            guint8        first_byte,
            const guint8 *mask,
            const void   *payload,
            gsize         len)
{
  g_autoptr(GBytes) frame = twp_test_client_build_frame (first_byte, mask, payload, len, FALSE);

  g_byte_array_append (array, g_bytes_get_data (frame, NULL), g_bytes_get_size (frame));
}

/* One tunnel to a raw peer that sends @send (then a close if
 * @close_after); collects what the client sends back and what reaches the
 * SOCKS side until EOF. */
static void
raw_run_delayed (RawRun     *run,
                 TestClient *client,
                 gboolean    base64,
                 GByteArray *send,
                 gboolean    close_after,
                 gboolean    ping_first,
                 guint       delay_ms,
                 GBytes     *early)
{
  g_autofree char *args = NULL;
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GError) error = NULL;
  const char *request;
  g_autofree char *protocol = NULL;

  memset (run, 0, sizeof *run);
  run->script.send = send != NULL ? g_bytes_new (send->data, send->len) : NULL;
  run->script.close_after = close_after;
  run->script.ping_first = ping_first;
  run->script.frames = g_ptr_array_new_with_free_func ((GDestroyNotify) twp_test_client_frame_free);
  run->peer = twp_test_client_peer_new_full (TRUE, delay_ms, early, raw_script_cb, &run->script);
  args = g_strdup_printf ("url=ws://127.0.0.1:%u/raw;mode=%s", twp_test_client_peer_get_port (run->peer),
                          base64 ? "base64" : "binary");

  run->started_at = g_get_monotonic_time ();
  socket = socks_open_ok_at (client->port, args, &run->reply_at);
  /* The raw peer runs in its own thread: a blocking read is fine here. */
  run->socks_data = twp_test_client_recv_until_eof (socket, 1024 * 1024, &error);
  g_assert_no_error (error);
  TWP_TEST_ASSERT_WAIT (twp_test_client_peer_is_done (run->peer), 25000);
  g_assert_null (twp_test_client_peer_get_error (run->peer));
  g_assert_no_error (run->script.error);
  g_assert_true (run->script.closed);

  request = twp_test_client_peer_get_request (run->peer);
  g_assert_true (g_str_has_prefix (request, "GET /raw HTTP/1.1\r\n"));
  protocol = twp_test_client_header_value (request, "Sec-WebSocket-Protocol");
  g_assert_cmpstr (protocol, ==, base64 ? "base64" : NULL);

  /* RFC 6455 5.1: every client frame is masked. */
  for (guint i = 0; i < run->script.frames->len; i++)
    {
      TwpTestClientFrame *frame = g_ptr_array_index (run->script.frames, i);

      gsize len;
      const char *payload = g_bytes_get_data (frame->payload, &len);

      if (frame->opcode == 0x8)
        g_test_message ("client close frame: %u \"%.*s\"", twp_test_client_close_code (frame),
                        len > 2 ? (int) len - 2 : 0, len > 2 ? payload + 2 : "");
      else
        g_test_message ("client frame: opcode %u, fin %d, %" G_GSIZE_FORMAT " bytes",
                        frame->opcode, frame->fin, len);
      g_assert_true (frame->masked);
    }
}

static void
raw_run (RawRun     *run,
         TestClient *client,
         gboolean    base64,
         GByteArray *send,
         gboolean    close_after,
         gboolean    ping_first)
{
  raw_run_delayed (run, client, base64, send, close_after, ping_first, 0, NULL);
}

static void
raw_run_clear (RawRun *run)
{
  twp_test_client_peer_free (run->peer);
  g_clear_pointer (&run->script.send, g_bytes_unref);
  g_ptr_array_unref (run->script.frames);
  g_clear_pointer (&run->socks_data, g_bytes_unref);
}

static guint
raw_count (RawRun *run,
           guint8  opcode)
{
  guint n = 0;

  for (guint i = 0; i < run->script.frames->len; i++)
    if (((TwpTestClientFrame *) g_ptr_array_index (run->script.frames, i))->opcode == opcode)
      n++;
  return n;
}

/* The client's last frame is a close with @code; nothing follows it. */
static void
assert_raw_closed_with (RawRun *run,
                        guint   code)
{
  TwpTestClientFrame *last;

  g_assert_cmpuint (run->script.frames->len, >, 0);
  last = g_ptr_array_index (run->script.frames, run->script.frames->len - 1);
  g_assert_cmpuint (last->opcode, ==, 0x8);
  g_assert_true (last->fin);
  g_assert_cmpuint (twp_test_client_close_code (last), ==, code);
  g_assert_cmpuint (raw_count (run, 0x8), ==, 1);
}

static void
test_dial_reply_after_upgrade (void)
{
  TestClient *client = test_client_start (NULL);
  g_autoptr(GByteArray) first = g_byte_array_new ();
  g_autoptr(GBytes) early = NULL;
  RawRun run;

  /* C13: SOCKS success only once the upgrade is done, which this peer
   * holds back for 500 ms. The first frame rides in the same write as
   * the 101: the client must not lose what it read past the head. */
  raw_append (first, 0x82, NULL, "first", 5);
  early = g_bytes_new (first->data, first->len);
  raw_run_delayed (&run, client, FALSE, NULL, TRUE, FALSE, 500, early);
  g_assert_cmpint (run.reply_at, >=, twp_test_client_peer_get_accepted_at (run.peer));
  g_assert_cmpint (run.reply_at - run.started_at, >=, 500 * 1000);
  g_assert_cmpmem (g_bytes_get_data (run.socks_data, NULL), g_bytes_get_size (run.socks_data), "first", 5);
  assert_raw_closed_with (&run, 1000);
  raw_run_clear (&run);
  test_client_stop (client);
}

static void
test_frames_fragmented_binary (void)
{
  TestClient *client = test_client_start (NULL);
  g_autoptr(GByteArray) send = g_byte_array_new ();
  g_autoptr(GByteArray) expected = g_byte_array_new ();
  g_autofree guint8 *message = g_malloc (MAX_MESSAGE);
  static const gsize sizes[] = { 1, 7, 125, 126, 127, 1000, 4096, 0, 65535 };
  guint64 state = 7;
  gsize pos = 0;
  RawRun run;

  /* A message of exactly the limit (64 KiB) in many frames of every
   * length encoding, including empty ones, with a ping in the middle
   * (RFC 6455 5.4: control frames may be interleaved). */
  fill_random (&state, message, MAX_MESSAGE);
  raw_append (send, 0x02, NULL, NULL, 0);
  for (guint i = 0; pos < MAX_MESSAGE; i++)
    {
      gsize len = MIN (sizes[i % G_N_ELEMENTS (sizes)], MAX_MESSAGE - pos);
      gboolean last = pos + len == MAX_MESSAGE;

      raw_append (send, last ? 0x80 : 0x00, NULL, message + pos, len);
      pos += len;
      if (i == 3)
        raw_append (send, 0x89, NULL, "mid", 3);
    }
  g_byte_array_append (expected, message, MAX_MESSAGE);
  /* Then an ordinary one-frame message. */
  raw_append (send, 0x82, NULL, "tail", 4);
  g_byte_array_append (expected, (const guint8 *) "tail", 4);

  raw_run (&run, client, FALSE, send, TRUE, FALSE);
  g_assert_cmpmem (g_bytes_get_data (run.socks_data, NULL), g_bytes_get_size (run.socks_data),
                   expected->data, expected->len);
  /* The interleaved ping got its pong; our close got an answer. */
  g_assert_cmpuint (raw_count (&run, 0xA), ==, 1);
  assert_raw_closed_with (&run, 1000);
  raw_run_clear (&run);
  test_client_stop (client);
}

static void
test_frames_fragmented_base64 (void)
{
  TestClient *client = test_client_start (NULL);
  g_autoptr(GByteArray) send = g_byte_array_new ();
  RawRun run;

  /* ERRATA: the proposal's two-frame example, corrected: "Hello" as
   * 0x01 0x02 "SG" + 0x80 0x06 "VsbG8=" (split inside a quantum). */
  g_byte_array_append (send, (const guint8 *) "\x01\x02SG\x80\x06VsbG8=", 12);
  /* " World" ("IFdvcmxk") as "I", an empty continuation, "Fdvcmxk". */
  raw_append (send, 0x01, NULL, "I", 1);
  raw_append (send, 0x00, NULL, NULL, 0);
  raw_append (send, 0x80, NULL, "Fdvcmxk", 7);

  raw_run (&run, client, TRUE, send, TRUE, FALSE);
  g_assert_cmpmem (g_bytes_get_data (run.socks_data, NULL), g_bytes_get_size (run.socks_data),
                   "Hello World", 11);
  assert_raw_closed_with (&run, 1000);
  raw_run_clear (&run);
  test_client_stop (client);
}

static void
test_frames_ping (void)
{
  TestClient *client = test_client_start (NULL);
  TwpTestClientFrame *pong = NULL;
  RawRun run;

  /* The proposal: endpoints SHOULD answer a ping with a single pong
   * (RFC 6455 5.5.3: same payload). */
  raw_run (&run, client, FALSE, NULL, TRUE, TRUE);
  g_assert_cmpuint (raw_count (&run, 0xA), ==, 1);
  for (guint i = 0; i < run.script.frames->len; i++)
    if (((TwpTestClientFrame *) g_ptr_array_index (run.script.frames, i))->opcode == 0xA)
      pong = g_ptr_array_index (run.script.frames, i);
  if (pong == NULL)
    g_error ("no pong");
  g_assert_true (pong->fin);
  g_assert_cmpmem (g_bytes_get_data (pong->payload, NULL), g_bytes_get_size (pong->payload),
                   "twp-ping-\x00\xff", 11);
  assert_raw_closed_with (&run, 1000);
  g_assert_cmpuint (g_bytes_get_size (run.socks_data), ==, 0);
  raw_run_clear (&run);
  test_client_stop (client);
}

static void
test_frames_oversize (void)
{
  TestClient *client = test_client_start (NULL);
  g_autoptr(GByteArray) header = g_byte_array_new ();
  g_autoptr(GByteArray) fragments = g_byte_array_new ();
  g_autofree guint8 *chunk = g_malloc0 (4096);
  static const guint8 oversize[] = { 0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x01 };
  RawRun run;

  /* A frame header announcing 64 KiB + 1: closed at the header with 1009,
   * nothing delivered. (The proposal: MUST limit what is buffered, SHOULD
   * close with 1009.) */
  g_byte_array_append (header, oversize, sizeof oversize);
  raw_run (&run, client, FALSE, header, FALSE, FALSE);
  assert_raw_closed_with (&run, 1009);
  g_assert_cmpuint (g_bytes_get_size (run.socks_data), ==, 0);
  raw_run_clear (&run);

  /* 16 fragments of 4 KiB fill the limit exactly; one more byte crosses
   * it: libsoup only limits frames, the client must count messages. */
  for (guint i = 0; i < 16; i++)
    raw_append (fragments, i == 0 ? 0x02 : 0x00, NULL, chunk, 4096);
  raw_append (fragments, 0x80, NULL, "x", 1);
  raw_run (&run, client, FALSE, fragments, FALSE, FALSE);
  assert_raw_closed_with (&run, 1009);
  g_assert_cmpuint (g_bytes_get_size (run.socks_data), <=, MAX_MESSAGE);
  raw_run_clear (&run);

  test_client_stop (client);
}

static void
test_frames_protocol_errors (void)
{
  TestClient *client = test_client_start (NULL);
  static const guint8 mask[4] = { 0x12, 0x34, 0x56, 0x78 };
  static const struct {
    const char *what;
    gboolean base64;
    guint8 first_byte;
    gboolean masked;
    const char *payload;
    guint code;
  } cases[] = {
    /* The proposal: text frames MUST NOT be sent without base64; the
     * receiver MUST close (1003, unsupported data). */
    { "text frame in binary mode", FALSE, 0x81, FALSE, "hello", 1003 },
    /* RFC 6455 5.1: a client MUST close on a masked server frame. */
    { "masked server frame", FALSE, 0x82, TRUE, "hello", 1002 },
    { "masked server frame (base64)", TRUE, 0x81, TRUE, "SGVsbG8=", 1002 },
    /* The proposal: a text message that is not base64 MUST close (1007). */
    { "invalid base64 characters", TRUE, 0x81, FALSE, "SG!!", 1007 },
    { "padding inside the message", TRUE, 0x81, FALSE, "SG==SGVs", 1007 },
    { "truncated quantum at message end", TRUE, 0x81, FALSE, "SGVsbG8", 1007 },
    /* RFC 6455 5.2: reserved bits without an extension. */
    { "RSV1 set", FALSE, 0xC2, FALSE, "hello", 1002 },
    /* RFC 6455 5.4: a continuation with no message to continue. */
    { "orphan continuation", FALSE, 0x80, FALSE, "hello", 1002 },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GByteArray) send = g_byte_array_new ();
      RawRun run;

      g_test_message ("case: %s", cases[i].what);
      raw_append (send, cases[i].first_byte, cases[i].masked ? mask : NULL,
                  cases[i].payload, strlen (cases[i].payload));
      raw_run (&run, client, cases[i].base64, send, FALSE, FALSE);
      assert_raw_closed_with (&run, cases[i].code);
      g_assert_cmpuint (g_bytes_get_size (run.socks_data), ==, 0);
      raw_run_clear (&run);
    }
  test_client_stop (client);
}

/* The decision for a server that ignores the base64 request: the tunnel
 * fails (REP 01) rather than falling back to binary frames, and the client
 * sends no frame at all. */
static void
unconfirmed_script_cb (GSocket  *socket,
                       gboolean  base64,
                       gpointer  user_data)
{
  RawScript *script = user_data;

  g_assert_false (base64);
  raw_collect (socket, script, FALSE);
}

static void
test_frames_base64_unconfirmed (void)
{
  TestClient *client = test_client_start (NULL);
  RawScript script = { 0 };
  TwpTestClientPeer *peer;
  g_autofree char *args = NULL;
  g_autofree char *protocol = NULL;
  int auth_status;
  int rep;

  script.frames = g_ptr_array_new_with_free_func ((GDestroyNotify) twp_test_client_frame_free);
  peer = twp_test_client_peer_new (FALSE, unconfirmed_script_cb, &script);
  args = g_strdup_printf ("url=ws://127.0.0.1:%u/raw;mode=base64", twp_test_client_peer_get_port (peer));

  g_assert_null (socks_open (client->port, args, &auth_status, &rep));
  g_assert_cmpint (auth_status, ==, 0);
  g_assert_cmpint (rep, ==, 0x01);
  TWP_TEST_ASSERT_WAIT (twp_test_client_peer_is_done (peer), 25000);
  g_assert_no_error (script.error);
  g_assert_true (script.closed);
  protocol = twp_test_client_header_value (twp_test_client_peer_get_request (peer), "Sec-WebSocket-Protocol");
  g_assert_cmpstr (protocol, ==, "base64");
  g_assert_cmpuint (script.frames->len, ==, 0);

  twp_test_client_peer_free (peer);
  g_ptr_array_unref (script.frames);
  test_client_stop (client);
}

/* Bytes after a close frame in the same read are not data (RFC 6455
 * 5.5.1): the tunnel still ends at once, instead of waiting for more input
 * that will never be parsed. */
static void
test_frames_close_then_garbage (void)
{
  TestClient *client = test_client_start (NULL);
  g_autoptr(GByteArray) send = g_byte_array_new ();
  g_autoptr(GBytes) close = twp_test_client_build_close (1000);
  RawRun run;

  raw_append (send, 0x82, NULL, "last", 4);
  g_byte_array_append (send, g_bytes_get_data (close, NULL), g_bytes_get_size (close));
  g_byte_array_append (send, (const guint8 *) "\x00", 1);
  raw_run (&run, client, FALSE, send, FALSE, FALSE);
  assert_raw_closed_with (&run, 1000);
  g_assert_cmpmem (g_bytes_get_data (run.socks_data, NULL), g_bytes_get_size (run.socks_data), "last", 4);
  raw_run_clear (&run);
  test_client_stop (client);
}

/* ---- 5b. the proposal's reference server ------------------------------ */

typedef struct {
  gboolean expect_base64;
  guint64 echoed;          /* payload bytes sent back */
  guint n_messages;
  gboolean closed;         /* a close frame arrived and was answered */
  char *error;             /* first thing that went wrong, or NULL */
} GoEcho;

/* Its websocket-server relays to tor; here every message goes back as it
 * came (the same frame type, unmasked), so the tunnel must carry it
 * byte-exact both ways. */
static void
go_echo_script_cb (GSocket  *socket,
                   gboolean  base64,
                   gpointer  user_data)
{
  GoEcho *echo = user_data;

  if (base64 != echo->expect_base64)
    {
      echo->error = g_strdup_printf ("base64 negotiated: %d", base64);
      return;
    }
  for (;;)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(TwpTestClientFrame) frame = twp_test_client_read_frame (socket, &error);
      g_autoptr(GBytes) reply = NULL;

      if (frame == NULL)
        {
          echo->error = g_strdup_printf ("reading a frame: %s", error->message);
          return;
        }
      if (!frame->masked || !frame->fin)
        {
          echo->error = g_strdup_printf ("frame %02x: masked %d fin %d", frame->first_byte, frame->masked, frame->fin);
          return;
        }
      if (frame->opcode == 0x8)
        {
          g_autoptr(GBytes) close = twp_test_client_build_close (1000);

          echo->closed = twp_test_client_send_all (socket, g_bytes_get_data (close, NULL),
                                                   g_bytes_get_size (close), NULL);
          return;
        }
      if (frame->opcode != (base64 ? 0x1 : 0x2))
        {
          echo->error = g_strdup_printf ("opcode %x in %s mode", frame->opcode, base64 ? "base64" : "binary");
          return;
        }
      reply = twp_test_client_build_frame (frame->first_byte, NULL, g_bytes_get_data (frame->payload, NULL),
                                           g_bytes_get_size (frame->payload), FALSE);
      if (!twp_test_client_send_all (socket, g_bytes_get_data (reply, NULL), g_bytes_get_size (reply), &error))
        {
          echo->error = g_strdup_printf ("echoing: %s", error->message);
          return;
        }
      echo->n_messages++;
      echo->echoed += g_bytes_get_size (frame->payload);
    }
}

/* Issue 11 item 1: the Go websocket-server answers "HTTP/1.0 101" with Go's
 * header case and order; our client used to refuse it, so tor could not
 * bootstrap through such a bridge. */
static void
test_reference_go_server (gconstpointer data)
{
  gboolean base64 = GPOINTER_TO_INT (data);
  TestClient *client = test_client_start (NULL);
  GoEcho echo = { .expect_base64 = base64 };
  TwpTestClientPeer *peer = twp_test_client_peer_new_go_reference (go_echo_script_cb, &echo);
  g_autofree char *args = NULL;
  g_autofree char *protocol = NULL;
  g_autoptr(GSocket) tunnel = NULL;

  /* Its server serves the WebSocket at "/" only. */
  args = g_strdup_printf ("url=ws://127.0.0.1:%u/%s", twp_test_client_peer_get_port (peer),
                          base64 ? ";mode=base64" : "");
  tunnel = socks_open_ok (client->port, args);
  /* 1 MiB each way, checked by SHA-256, in messages of up to 16 KiB. */
  assert_echo (tunnel, 1024 * 1024);
  g_socket_close (tunnel, NULL);
  TWP_TEST_ASSERT_WAIT (twp_test_client_peer_is_done (peer), 25000);

  g_assert_no_error (twp_test_client_peer_get_error (peer));
  g_assert_cmpstr (echo.error, ==, NULL);
  g_assert_true (echo.closed);
  g_assert_cmpuint (echo.n_messages, >=, 64);
  /* base64 carries 4 bytes for every 3 */
  if (base64)
    g_assert_cmpuint (echo.echoed, >=, 1024 * 1024 / 3 * 4);
  else
    g_assert_cmpuint (echo.echoed, ==, 1024 * 1024);
  protocol = twp_test_client_header_value (twp_test_client_peer_get_request (peer), "Sec-WebSocket-Protocol");
  g_assert_cmpstr (protocol, ==, base64 ? "base64" : NULL);
  assert_stdout_protocol (client);

  twp_test_client_peer_free (peer);
  test_client_stop (client);
}

/* ---- 6. backpressure --------------------------------------------------- */

static guint64
vmrss_kib (int pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/status", pid);
  g_autofree char *contents = NULL;
  const char *line;

  if (!g_file_get_contents (path, &contents, NULL, NULL))
    return 0;
  line = strstr (contents, "\nVmRSS:");
  return line != NULL ? g_ascii_strtoull (line + 7, NULL, 10) : 0;
}

typedef struct {
  int release;
  int accepted;
} StallScript;

static void
stall_script_cb (GSocket  *socket,
                 gboolean  base64,
                 gpointer  user_data)
{
  StallScript *script = user_data;
  gint64 deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;

  /* Accept the WebSocket, then never read from it. */
  g_atomic_int_set (&script->accepted, 1);
  while (!g_atomic_int_get (&script->release) && g_get_monotonic_time () < deadline)
    g_usleep (10 * 1000);
}

static void
test_backpressure_stalled_reader (void)
{
  /* A short stall timeout, so that the end of this test does not wait the
   * default minute. */
  static const char *const options[] = { "--stall-timeout=4", NULL };
  TestClient *client = test_client_start (options);
  StallScript script = { 0 };
  TwpTestClientPeer *peer = twp_test_client_peer_new (FALSE, stall_script_cb, &script);
  g_autofree char *args = g_strdup_printf ("url=ws://127.0.0.1:%u/", twp_test_client_peer_get_port (peer));
  g_autoptr(GSocket) socket = socks_open_ok (client->port, args);
  g_autofree guint8 *buf = g_malloc (65536);
  guint64 state = 3;
  guint64 written = 0;
  guint64 max_rss = 0;
  guint64 start_rss = vmrss_kib (test_client_pid (client));
  gint64 start = g_get_monotonic_time ();
  gint64 last_progress = start;
  gint64 next_sample = start;
  gint64 now;

  fill_random (&state, buf, 65536);
  g_socket_set_blocking (socket, FALSE);
  /* Push as fast as the client takes it for 3 s. */
  while ((now = g_get_monotonic_time ()) - start < 3 * G_USEC_PER_SEC)
    {
      g_autoptr(GError) error = NULL;
      gssize n = g_socket_send (socket, (const char *) buf, 65536, NULL, &error);

      if (n > 0)
        {
          written += n;
          last_progress = now;
        }
      else if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        {
          g_usleep (5 * 1000);
        }
      else
        {
          g_assert_no_error (error);
        }
      if (now >= next_sample)
        {
          max_rss = MAX (max_rss, vmrss_kib (test_client_pid (client)));
          next_sample = now + 100 * 1000;
        }
    }
  max_rss = MAX (max_rss, vmrss_kib (test_client_pid (client)));
  g_test_message ("stalled peer: %" G_GUINT64_FORMAT " bytes accepted, last at %.2f s; "
                  "VmRSS %" G_GUINT64_FORMAT " -> %" G_GUINT64_FORMAT " KiB max",
                  written, (last_progress - start) / 1e6, start_rss, max_rss);

  g_assert_true (g_atomic_int_get (&script.accepted));
  /* The client stopped reading tor: writes blocked for the last second... */
  g_assert_cmpint (now - last_progress, >=, G_USEC_PER_SEC);
  /* ... after no more than socket buffers could hold... */
  g_assert_cmpuint (written, <, 48 * 1024 * 1024);
  /* ... and its memory stayed flat. */
  g_assert_cmpuint (max_rss, >, 0);
  g_assert_cmpuint (max_rss, <, 48 * 1024);

  /* tor now closes its side while the peer still reads nothing: nothing
   * can be sent any more, and the tunnel must still end once its write
   * made no progress for the stall timeout, not hold its slot forever. */
  {
    g_autoptr(GError) error = NULL;
    gint64 closed_at = g_get_monotonic_time ();
    gboolean ended = FALSE;
    char byte;

    g_assert_true (g_socket_shutdown (socket, FALSE, TRUE, &error));
    g_socket_set_blocking (socket, TRUE);
    while (!ended && g_get_monotonic_time () - closed_at < 15 * G_USEC_PER_SEC)
      {
        g_autoptr(GError) recv_error = NULL;

        if (!g_socket_condition_timed_wait (socket, G_IO_IN, 500 * 1000, NULL, NULL))
          continue;
        ended = g_socket_receive (socket, &byte, 1, NULL, &recv_error) <= 0;
      }
    g_test_message ("tunnel ended %.2f s after tor's EOF", (g_get_monotonic_time () - closed_at) / 1e6);
    g_assert_true (ended);
  }

  g_atomic_int_set (&script.release, 1);
  TWP_TEST_ASSERT_WAIT (twp_test_client_peer_is_done (peer), 5000);
  g_assert_null (twp_test_client_peer_get_error (peer));
  twp_test_client_peer_free (peer);
  g_socket_close (socket, NULL);
  test_client_stop (client);
}

/* ---- 6b. the bridge table ---------------------------------------------- */

/* Issue 11 item 3: any local process may send the SOCKS port any number of
 * distinct bridge lines; each used to make a bridge that was never freed
 * (10,000 lines: 7.6 -> 130 MB, and every request 20x slower). */

typedef struct {
  guint16 port;               /* SOCKS */
  guint16 closed_port;        /* every bridge URL points here: refused at once */
  guint first;                /* bridge numbers first .. first + count - 1 */
  guint count;
  guint step;                 /* this thread takes every step-th one */
  guint unexpected;           /* replies other than REP 05 (refused) */
  GError *error;
  int done;
} FloodJob;

static gpointer
flood_thread (gpointer user_data)
{
  FloodJob *job = user_data;

  for (guint n = job->first; n < job->first + job->count && job->error == NULL; n += job->step)
    {
      g_autofree char *args = g_strdup_printf ("url=ws://127.0.0.1:%u/line-%u", job->closed_port, n);
      SocksJob socks = { .port = job->port, .args = args, .target_port = 9, .auth_status = -1, .rep = -1 };
      g_autoptr(GSocket) socket = twp_test_client_connect (job->port, &job->error);

      if (socket == NULL || !socks_handshake (&socks, socket, &job->error))
        break;
      if (socks.rep != 0x05)
        job->unexpected++;
    }
  g_atomic_int_set (&job->done, 1);
  g_main_context_wakeup (NULL);
  return NULL;
}

/* @count distinct bridge lines from 4 threads at once (as tor's bursts);
 * returns the wall time in microseconds. */
static gint64
flood (TestClient *client,
       guint16     closed_port,
       guint       first,
       guint       count)
{
  FloodJob jobs[4];
  GThread *threads[4];
  gint64 start = g_get_monotonic_time ();

  for (guint i = 0; i < G_N_ELEMENTS (jobs); i++)
    {
      jobs[i] = (FloodJob) { .port = client->port, .closed_port = closed_port, .first = first + i,
                             .count = count - MIN (i, count), .step = G_N_ELEMENTS (jobs) };
      threads[i] = g_thread_new ("flood", flood_thread, &jobs[i]);
    }
  for (guint i = 0; i < G_N_ELEMENTS (jobs); i++)
    {
      /* Generous: the machine is shared; every request is quick. */
      TWP_TEST_ASSERT_WAIT (g_atomic_int_get (&jobs[i].done), 600000);
      g_thread_join (threads[i]);
      g_assert_no_error (jobs[i].error);
      g_assert_cmpuint (jobs[i].unexpected, ==, 0);
    }
  return g_get_monotonic_time () - start;
}

static void
test_bridges_bounded (void)
{
  /* AddressSanitizer keeps freed memory in quarantine (256 MiB): RSS would
   * grow with the churn, not with the table. A small quarantine keeps the
   * bound meaningful in the sanitized build too. */
  g_autofree char *asan = g_strdup_printf ("ASAN_OPTIONS=%s%squarantine_size_mb=1",
                                           g_getenv ("ASAN_OPTIONS") != NULL ? g_getenv ("ASAN_OPTIONS") : "",
                                           g_getenv ("ASAN_OPTIONS") != NULL ? ":" : "");
  const char *env[] = { TWP_TEST_SANITIZED ? asan : NULL, NULL };
  TestClient *client = test_client_start (env);
  guint16 closed_port = twp_test_refusing_port ();
  WsServer *ws = NULL;
  g_autofree char *args = NULL;
  g_autoptr(GSocket) tunnel = NULL;
  gint64 first_us, last_us;
  guint64 rss_full, rss_end;

  /* 500 lines: the table (256 bridges) is full and turning over. */
  first_us = flood (client, closed_port, 0, 500);
  rss_full = vmrss_kib (test_client_pid (client));
  flood (client, closed_port, 500, 9000);
  last_us = flood (client, closed_port, 9500, 500);
  rss_end = vmrss_kib (test_client_pid (client));
  g_test_message ("10,000 distinct bridge lines: VmRSS %" G_GUINT64_FORMAT " KiB after 500, %" G_GUINT64_FORMAT
                  " KiB after 10,000; 500 requests took %.0f ms at first, %.0f ms at the end",
                  rss_full, rss_end, first_us / 1000.0, last_us / 1000.0);
  g_assert_cmpuint (rss_full, >, 0);
  /* Unbounded, 9,500 more bridges cost over 100 MiB; bounded, allocator
   * noise only (a little more under ASan: shadow memory and allocator
   * caches). Per-request time is printed, never asserted. */
  g_assert_cmpuint (rss_end, <, rss_full + (TWP_TEST_SANITIZED ? 8192 : 4096));

  /* The transport still serves a real bridge. Started only now: its
   * listener's accept gives up after the I/O timeout. */
  ws = ws_server_new (WS_ECHO);
  args = url_args (ws, NULL);
  tunnel = socks_open_ok (client->port, args);
  assert_echo (tunnel, 1000);
  g_clear_object (&tunnel);
  assert_stdout_protocol (client);

  test_client_stop (client);
  ws_server_free (ws);
}

static gboolean
client_logged (TestClient *client,
               const char *needle)
{
  for (guint i = 0; i < client->proc->lines->len; i++)
    if (g_str_has_prefix (test_client_line (client, i), "LOG ") && strstr (test_client_line (client, i), needle))
      return TRUE;
  return FALSE;
}

/* A table full of bridges in use refuses a new one (REP 01, a LOG line);
 * the least recently used idle bridge makes room once there is one. */
static void
test_bridges_all_busy (void)
{
  const char *env[] = { "TWP_TEST_MAX_BRIDGES=4", NULL };
  TestClient *client = test_client_start (env);
  WsServer *ws = ws_server_new (WS_ECHO);
  GSocket *tunnels[5] = { NULL };
  char *args[6] = { NULL };
  g_autoptr(GSocket) again = NULL;
  gint64 deadline;
  int auth_status;
  int rep;

  for (guint i = 0; i < G_N_ELEMENTS (args); i++)
    args[i] = g_strdup_printf ("url=%s?bridge=%u", ws->url, i);
  for (guint i = 0; i < 4; i++)
    {
      tunnels[i] = socks_open_ok (client->port, args[i]);
      assert_echo (tunnels[i], 100);
    }

  g_assert_null (socks_open (client->port, args[4], &auth_status, &rep));
  g_assert_cmpint (auth_status, ==, 0);
  g_assert_cmpint (rep, ==, 0x01);
  TWP_TEST_ASSERT_WAIT (client_logged (client, "all 4 bridges are in use"), 10000);
  /* Bridges in the table still take new tunnels. */
  again = socks_open_ok (client->port, args[0]);
  assert_echo (again, 100);

  /* Bridge 1 becomes idle once its tunnel has ended: then bridge 4 takes
   * its place. */
  g_clear_object (&tunnels[1]);
  deadline = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;
  while (tunnels[4] == NULL && g_get_monotonic_time () < deadline)
    {
      tunnels[4] = socks_open (client->port, args[4], &auth_status, &rep);
      if (tunnels[4] == NULL)
        g_assert_cmpint (rep, ==, 0x01);
    }
  g_assert_nonnull (tunnels[4]);
  assert_echo (tunnels[4], 100);
  /* Bridge 1 was forgotten: with four busy bridges it cannot come back. */
  g_assert_null (socks_open (client->port, args[1], &auth_status, &rep));
  g_assert_cmpint (rep, ==, 0x01);
  /* A fifth line is as good as a new one, the previous ones unchanged. */
  g_assert_null (socks_open (client->port, args[5], &auth_status, &rep));
  g_assert_cmpint (rep, ==, 0x01);
  assert_echo (tunnels[0], 100);

  for (guint i = 0; i < G_N_ELEMENTS (tunnels); i++)
    g_clear_object (&tunnels[i]);
  for (guint i = 0; i < G_N_ELEMENTS (args); i++)
    g_free (args[i]);
  g_clear_object (&again);
  assert_stdout_protocol (client);
  test_client_stop (client);
  ws_server_free (ws);
}

/* ---- 7. shutdown like tor ---------------------------------------------- */

static void
test_shutdown (gconstpointer data)
{
  int how = GPOINTER_TO_INT (data);
  static const char *const names[] = { "stdin EOF", "SIGTERM", "SIGTERM + stdin/stdout closed" };
  TestClient *client = test_client_start (NULL);
  WsServer *ws = ws_server_new (WS_ECHO);
  g_autofree char *args = url_args (ws, NULL);
  g_autoptr(GSocket) socket = socks_open_ok (client->port, args);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) rest = NULL;
  gint64 start;

  /* An open, working tunnel. */
  assert_echo (socket, 1000);

  /* K1, K3, G10: tor sends SIGTERM and closes stdin and stdout in the
   * same moment; each alone must end the client promptly too. */
  if (how == 2)
    test_client_close_stdout (client);
  start = g_get_monotonic_time ();
  if (how >= 1)
    g_subprocess_send_signal (client->proc->process, SIGTERM);
  if (how != 1)
    g_output_stream_close (g_subprocess_get_stdin_pipe (client->proc->process), NULL, NULL);
  if (!TWP_TEST_WAIT_FOR (client->proc->exited, 2000))
    {
      g_subprocess_force_exit (client->proc->process);
      TWP_TEST_ASSERT_WAIT (client->proc->exited, 5000);
      g_error ("still running 2 s after %s", names[how]);
    }
  g_test_message ("exited %.3f s after %s", (client->proc->exited_at - start) / 1e6, names[how]);
  g_assert_true (g_subprocess_get_if_exited (client->proc->process));
  g_assert_cmpint (g_subprocess_get_exit_status (client->proc->process), ==, 0);

  /* The tunnel is gone with it. */
  rest = twp_test_client_recv_until_eof (socket, 1024, &error);
  if (error != NULL)
    g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED);
  test_client_stop (client);
  ws_server_free (ws);
}

static void
test_shutdown_stdout_closed (void)
{
  TestClient *client = test_client_start (NULL);
  WsServer *ws = ws_server_new (WS_ECHO);
  g_autofree char *args = url_args (ws, NULL);
  g_autofree char *refused = g_strdup_printf ("url=ws://127.0.0.1:%u/ws", twp_test_refusing_port ());
  g_autoptr(GSocket) socket = NULL;
  int auth_status;
  int rep;

  /* K2: tor gone, its end of our stdout closed: the LOG line about the
   * failed dial hits EPIPE, which must not kill the client (SIGPIPE). */
  test_client_close_stdout (client);
  g_assert_null (socks_open (client->port, refused, &auth_status, &rep));
  g_assert_cmpint (rep, ==, 0x05);
  socket = socks_open_ok (client->port, args);
  assert_echo (socket, 10000);
  g_assert_false (client->proc->exited);

  g_socket_close (socket, NULL);
  TWP_TEST_ASSERT_WAIT (ws->closed, 10000);
  test_client_stop (client);
  ws_server_free (ws);
}

/* ---- 8. TOR_PT_PROXY ---------------------------------------------------- */

static void
test_proxy (gconstpointer data)
{
  TwpTestClientProxyType type = GPOINTER_TO_INT (data);
  TwpTestClientProxy *proxy = twp_test_client_proxy_new (type);
  WsServer *ws = ws_server_new (WS_ECHO);
  /* B4: tor passes credentials raw; the user ends at the first ':'. */
  g_autofree char *uri = g_strdup_printf ("TOR_PT_PROXY=%s://user:pa:ss@w%%rd@127.0.0.1:%u",
                                          type == TWP_TEST_CLIENT_PROXY_SOCKS5 ? "socks5" : "http",
                                          twp_test_client_proxy_get_port (proxy));
  const char *env[] = { uri, NULL };
  TestClient *client = test_client_start (env);
  g_autofree char *args = url_args (ws, NULL);
  g_autoptr(GSocket) socket = NULL;
  const TwpTestClientProxyResult *result;

  socket = socks_open_ok (client->port, args);
  assert_echo (socket, 1024 * 1024);
  g_socket_close (socket, NULL);
  TWP_TEST_ASSERT_WAIT (ws->closed, 10000);
  twp_test_client_proxy_stop (proxy);
  TWP_TEST_ASSERT_WAIT (twp_test_client_proxy_is_done (proxy), 5000);

  /* C2: the WebSocket went through the proxy, with tor's credentials. */
  result = twp_test_client_proxy_get_result (proxy);
  g_assert_no_error (result->error);
  g_assert_cmpstr (result->username, ==, "user");
  g_assert_cmpstr (result->password, ==, "pa:ss@w%rd");
  g_assert_cmpstr (result->target_host, ==, "127.0.0.1");
  g_assert_cmpuint (result->target_port, ==, ws->port);
  g_assert_cmpuint (result->bytes_to_target, >, 1024 * 1024);
  g_assert_cmpuint (result->bytes_from_target, >, 1024 * 1024);
  g_assert_cmpuint (ws->n_requests, ==, 1);
  assert_upgrade_request (ws, FALSE);

  test_client_stop (client);
  twp_test_client_proxy_free (proxy);
  ws_server_free (ws);
}

static void
test_proxy_down (gconstpointer data)
{
  TwpTestClientProxyType type = GPOINTER_TO_INT (data);
  WsServer *ws = ws_server_new (WS_ECHO);
  g_autofree char *uri = g_strdup_printf ("TOR_PT_PROXY=%s://user:pass@127.0.0.1:%u",
                                          type == TWP_TEST_CLIENT_PROXY_SOCKS5 ? "socks5" : "http",
                                          twp_test_refusing_port ());
  const char *env[] = { uri, NULL };
  TestClient *client = test_client_start (env);
  g_autofree char *args = url_args (ws, NULL);
  int auth_status;
  int rep;

  /* C2: fail closed: the proxy is down, so nothing connects at all. */
  g_assert_null (socks_open (client->port, args, &auth_status, &rep));
  g_assert_cmpint (auth_status, ==, 0);
  g_assert_cmpint (rep, >, 0);
  g_assert_false (TWP_TEST_WAIT_FOR (ws->n_requests > 0, 300));

  test_client_stop (client);
  ws_server_free (ws);
}

static GLogFunc default_log_handler;

static void
filter_log_cb (const char     *domain,
               GLogLevelFlags  level,
               const char     *message,
               gpointer        user_data)
{
  /* libsoup logs every frame at debug level, which GTest prints: 20,000
   * lines per 64 MiB would drown the TAP log. */
  if ((level & G_LOG_LEVEL_DEBUG) && g_strcmp0 (domain, "libsoup") == 0)
    return;
  default_log_handler (domain, level, message, NULL);
}

/* K5: a transport whose parent (tor) died without a word notices that it
 * was reparented, and exits. A shell starts it in the background, waits a
 * second for it to start, then exits. */
static void
test_shutdown_parent_gone (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;
  g_autofree char *dir = g_dir_make_tmp ("twp-orphan-XXXXXX", &error);
  g_autofree char *state = NULL;
  g_autofree char *script = NULL;
  g_autofree char *proc_dir = NULL;
  const char *binary = g_getenv ("TWP_BINARY");
  int status;
  gint64 deadline;
  GPid pid;

  g_assert_no_error (error);
  g_assert_nonnull (binary);
  state = g_build_filename (dir, "pt_state", "", NULL);
  /* stdin is /dev/null, but without TOR_PT_EXIT_ON_STDIN_CLOSE the
   * transport never reads it (G10): only the parent watch can end it. */
  script = g_strdup_printf ("env -u TOR_PT_EXIT_ON_STDIN_CLOSE TOR_PT_MANAGED_TRANSPORT_VER=1 "
                            "TOR_PT_CLIENT_TRANSPORTS=websocket TOR_PT_STATE_LOCATION='%s' "
                            "DBUS_SESSION_BUS_ADDRESS=unix:path=/nonexistent '%s' --client --managed "
                            "</dev/null >/dev/null 2>&1 & pid=$!; sleep 1; echo $pid", state, binary);
  g_assert_true (g_spawn_sync (NULL, (char *[]) { "/bin/sh", "-c", script, NULL }, NULL,
                               G_SPAWN_DEFAULT, NULL, NULL, &out, NULL, &status, &error));
  g_assert_no_error (error);
  pid = (GPid) g_ascii_strtoll (out, NULL, 10);
  g_assert_cmpint (pid, >, 1);
  proc_dir = g_strdup_printf ("/proc/%d", pid);

  /* The parent watch runs every 2 s: the process is gone well within 6 s
   * (init, or this test's reaper, collects it). */
  deadline = g_get_monotonic_time () + 6 * G_USEC_PER_SEC;
  while (g_file_test (proc_dir, G_FILE_TEST_EXISTS) && g_get_monotonic_time () < deadline)
    {
      g_autofree char *stat_path = g_build_filename (proc_dir, "stat", NULL);
      g_autofree char *contents = NULL;

      /* A zombie has exited already. */
      if (g_file_get_contents (stat_path, &contents, NULL, NULL) && strstr (contents, ") Z ") != NULL)
        break;
      g_usleep (50 * 1000);
    }
  if (g_file_test (proc_dir, G_FILE_TEST_EXISTS))
    {
      g_autofree char *stat_path = g_build_filename (proc_dir, "stat", NULL);
      g_autofree char *contents = NULL;

      if (!g_file_get_contents (stat_path, &contents, NULL, NULL) || strstr (contents, ") Z ") == NULL)
        {
          kill (pid, SIGKILL);
          g_error ("the orphaned transport (pid %d) did not exit", pid);
        }
    }
  g_rmdir (state);
  g_rmdir (dir);
}

int
main (int    argc,
      char **argv)
{
  g_autofree char **args = g_new0 (char *, argc + 2);
  int n_args = 0;

  /* The tests are independent: report every one even after a failure. */
  args[n_args++] = argv[0];
  args[n_args++] = (char *) "--keep-going";
  for (int i = 1; i < argc; i++)
    args[n_args++] = argv[i];
  argv = args;
  argc = n_args;

  /* A peer that goes away must not kill the test with SIGPIPE. */
  signal (SIGPIPE, SIG_IGN);
  g_test_init (&argc, &argv, NULL);
  default_log_handler = g_log_set_default_handler (filter_log_cb, NULL);

  if (g_getenv ("TWP_BINARY") == NULL)
    {
      g_printerr ("TWP_BINARY is not set (meson test sets it)\n");
      return 77;
    }

  g_test_add_func ("/client/managed/golden", test_managed_golden);
  g_test_add_func ("/client/managed/version-list", test_managed_version_list);
  g_test_add_func ("/client/managed/version-error", test_managed_version_error);
  g_test_add_func ("/client/managed/env-error", test_managed_env_error);
  g_test_add_func ("/client/managed/proxy-done", test_managed_proxy_done);
  g_test_add_func ("/client/managed/proxy-error", test_managed_proxy_error);
  g_test_add_func ("/client/managed/unknown-transport", test_managed_unknown_transport);
  g_test_add_func ("/client/managed/debug-to-stderr", test_managed_debug_to_stderr);
  g_test_add_data_func ("/client/transfer/echo-binary", GINT_TO_POINTER (FALSE), test_transfer_echo);
  g_test_add_data_func ("/client/transfer/echo-base64", GINT_TO_POINTER (TRUE), test_transfer_echo);
  g_test_add_data_func ("/client/transfer/upload-binary", GINT_TO_POINTER (FALSE), test_transfer_upload);
  g_test_add_data_func ("/client/transfer/upload-base64", GINT_TO_POINTER (TRUE), test_transfer_upload);
  g_test_add_data_func ("/client/transfer/download-binary", GINT_TO_POINTER (FALSE), test_transfer_download);
  g_test_add_data_func ("/client/transfer/download-base64", GINT_TO_POINTER (TRUE), test_transfer_download);
  g_test_add_data_func ("/client/args/split-255", GINT_TO_POINTER (FALSE), test_args_split);
  g_test_add_data_func ("/client/args/split-escape", GINT_TO_POINTER (TRUE), test_args_split);
  g_test_add_func ("/client/dial/failures", test_dial_failures);
  g_test_add_func ("/client/dial/reply-after-upgrade", test_dial_reply_after_upgrade);
  g_test_add_func ("/client/frames/fragmented-binary", test_frames_fragmented_binary);
  g_test_add_func ("/client/frames/fragmented-base64", test_frames_fragmented_base64);
  g_test_add_func ("/client/frames/ping", test_frames_ping);
  g_test_add_func ("/client/frames/oversize", test_frames_oversize);
  g_test_add_func ("/client/frames/protocol-errors", test_frames_protocol_errors);
  g_test_add_func ("/client/frames/base64-unconfirmed", test_frames_base64_unconfirmed);
  g_test_add_func ("/client/frames/close-then-garbage", test_frames_close_then_garbage);
  g_test_add_data_func ("/client/reference/go-server-binary", GINT_TO_POINTER (FALSE), test_reference_go_server);
  g_test_add_data_func ("/client/reference/go-server-base64", GINT_TO_POINTER (TRUE), test_reference_go_server);
  g_test_add_func ("/client/backpressure/stalled-reader", test_backpressure_stalled_reader);
  g_test_add_func ("/client/bridges/bounded", test_bridges_bounded);
  g_test_add_func ("/client/bridges/all-busy", test_bridges_all_busy);
  g_test_add_data_func ("/client/shutdown/stdin-eof", GINT_TO_POINTER (0), test_shutdown);
  g_test_add_data_func ("/client/shutdown/sigterm", GINT_TO_POINTER (1), test_shutdown);
  g_test_add_func ("/client/shutdown/parent-gone", test_shutdown_parent_gone);
  g_test_add_data_func ("/client/shutdown/like-tor", GINT_TO_POINTER (2), test_shutdown);
  g_test_add_func ("/client/shutdown/stdout-closed", test_shutdown_stdout_closed);
  g_test_add_data_func ("/client/proxy/socks5", GINT_TO_POINTER (TWP_TEST_CLIENT_PROXY_SOCKS5), test_proxy);
  g_test_add_data_func ("/client/proxy/http", GINT_TO_POINTER (TWP_TEST_CLIENT_PROXY_HTTP), test_proxy);
  g_test_add_data_func ("/client/proxy/socks5-down", GINT_TO_POINTER (TWP_TEST_CLIENT_PROXY_SOCKS5),
                        test_proxy_down);
  g_test_add_data_func ("/client/proxy/http-down", GINT_TO_POINTER (TWP_TEST_CLIENT_PROXY_HTTP),
                        test_proxy_down);

  return g_test_run ();
}
