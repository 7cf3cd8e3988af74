/* SPDX-License-Identifier: BSD-3-Clause */
/* The D-Bus interface of the real binary ($TWP_BINARY), on a private
 * session bus (meson runs this under dbus-run-session): introspection
 * against the XML in data/, discovery of several instances, live properties
 * during a transfer, failure reasons and phases, Test(), the frame-mode
 * switch as the server sees it, privacy of every broadcast signal, the
 * stored frame mode, and a transport without any bus.
 *
 * The peers run in a thread of their own (a libsoup WebSocket echo server,
 * a 403 handler and a TCP server that speaks no TLS), so that this thread
 * may block on SOCKS I/O and synchronous D-Bus calls. Every wait has a
 * deadline. */
#define G_LOG_DOMAIN "test-dbus"

#include "config.h"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <libsoup/soup.h>
#include <signal.h>
#include <sys/prctl.h>
#include <string.h>

#include "twp-test-utils.h"

#define ROOT_PATH "/io/github/TorWebSocketProxy1"
#define TRANSPORT_PATH ROOT_PATH "/Transport"
#define TRANSPORT_IFACE "io.github.TorWebSocketProxy1.Transport"
#define BRIDGE_IFACE "io.github.TorWebSocketProxy1.Bridge"
#define NAME_PREFIX "io.github.TorWebSocketProxy1.instance"
/* A path nobody could guess: if it shows up in a signal, the URL leaked. */
#define SECRET_PATH "/secret-path-5d1c"

#define DEADLINE_S 20
#define DEADLINE_MS (DEADLINE_S * 1000)
#define IO_TIMEOUT_S 20

/* ---- peers (in their own thread) --------------------------------------- */

typedef struct {
  GThread *thread;
  GMainContext *context;
  GMainLoop *loop;
  SoupServer *server;
  GSocketService *not_tls;
  guint16 port;                /* WebSocket echo, /forbidden answers 403, /slow waits */
  guint16 not_tls_port;        /* answers anything with plain text */
  GMutex ready_lock;
  GCond ready_cond;
  gboolean ready;

  GMutex lock;
  GPtrArray *protocols;        /* char*: Sec-WebSocket-Protocol of each upgrade ("" if none) */
  GPtrArray *connections;      /* SoupWebsocketConnection*, server thread only */
  GPtrArray *watched;          /* weak slots on the same connections */
} Peers;

static Peers peers;

static void
echo_message_cb (SoupWebsocketConnection *connection,
                 int                      type,
                 GBytes                  *message,
                 gpointer                 user_data)
{
  if (type == SOUP_WEBSOCKET_DATA_BINARY)
    {
      soup_websocket_connection_send_binary (connection, g_bytes_get_data (message, NULL),
                                             g_bytes_get_size (message));
    }
  else
    {
      g_autofree char *text = g_strndup (g_bytes_get_data (message, NULL), g_bytes_get_size (message));

      soup_websocket_connection_send_text (connection, text);
    }
}

static void
websocket_cb (SoupServer              *server,
              SoupServerMessage       *msg,
              const char              *path,
              SoupWebsocketConnection *connection,
              gpointer                 user_data)
{
  const char *protocol = soup_message_headers_get_one (soup_server_message_get_request_headers (msg),
                                                       "Sec-WebSocket-Protocol");

  g_mutex_lock (&peers.lock);
  g_ptr_array_add (peers.protocols, g_strdup (protocol != NULL ? protocol : ""));
  g_mutex_unlock (&peers.lock);
  {
    /* Watched until finalized: see peers_thread (). */
    gpointer *slot = g_new (gpointer, 1);

    *slot = connection;
    g_object_add_weak_pointer (G_OBJECT (connection), slot);
    g_ptr_array_add (peers.watched, slot);
  }
  g_ptr_array_add (peers.connections, g_object_ref (connection));
  g_signal_connect (connection, "message", G_CALLBACK (echo_message_cb), NULL);
}

static void
forbidden_cb (SoupServer        *server,
              SoupServerMessage *msg,
              const char        *path,
              GHashTable        *query,
              gpointer           user_data)
{
  soup_server_message_set_status (msg, SOUP_STATUS_FORBIDDEN, NULL);
}

static void
request_read_cb (SoupServer        *server,
                 SoupServerMessage *msg,
                 gpointer           user_data)
{
  /* Slow upgrades make the Connecting state last long enough to see. */
  if (g_str_has_prefix (g_uri_get_path (soup_server_message_get_uri (msg)), "/slow"))
    g_usleep (300 * 1000);
}

static gboolean
not_tls_incoming_cb (GSocketService    *service,
                     GSocketConnection *connection,
                     GObject           *source,
                     gpointer           user_data)
{
  static const char text[] = "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nnot TLS here";

  /* Small enough for the socket buffer: never blocks. */
  g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (connection)),
                             text, sizeof text - 1, NULL, NULL, NULL);
  g_io_stream_close (G_IO_STREAM (connection), NULL, NULL);
  return TRUE;
}

static gpointer
peers_thread (gpointer data)
{
  g_autoptr(GError) error = NULL;
  const char *protocols[] = { "base64", NULL };
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new (loopback, 0);
  g_autoptr(GSocketAddress) bound = NULL;
  GSList *uris;

  g_main_context_push_thread_default (peers.context);

  peers.server = soup_server_new (NULL, NULL);
  soup_server_remove_websocket_extension (peers.server, SOUP_TYPE_WEBSOCKET_EXTENSION_DEFLATE);
  soup_server_add_websocket_handler (peers.server, "/ws", NULL, (char **) protocols, websocket_cb, NULL, NULL);
  soup_server_add_websocket_handler (peers.server, "/slow", NULL, (char **) protocols, websocket_cb, NULL, NULL);
  soup_server_add_websocket_handler (peers.server, SECRET_PATH, NULL, (char **) protocols, websocket_cb,
                                     NULL, NULL);
  soup_server_add_handler (peers.server, "/forbidden", forbidden_cb, NULL, NULL);
  g_signal_connect (peers.server, "request-read", G_CALLBACK (request_read_cb), NULL);
  soup_server_listen_local (peers.server, 0, SOUP_SERVER_LISTEN_IPV4_ONLY, &error);
  g_assert_no_error (error);
  uris = soup_server_get_uris (peers.server);
  peers.port = (guint16) g_uri_get_port (uris->data);
  g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);

  peers.not_tls = g_socket_service_new ();
  g_socket_listener_add_address (G_SOCKET_LISTENER (peers.not_tls), address, G_SOCKET_TYPE_STREAM,
                                 G_SOCKET_PROTOCOL_TCP, NULL, &bound, &error);
  g_assert_no_error (error);
  peers.not_tls_port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  g_signal_connect (peers.not_tls, "incoming", G_CALLBACK (not_tls_incoming_cb), NULL);
  g_socket_service_start (peers.not_tls);

  g_mutex_lock (&peers.ready_lock);
  peers.ready = TRUE;
  g_cond_signal (&peers.ready_cond);
  g_mutex_unlock (&peers.ready_lock);

  g_main_loop_run (peers.loop);

  g_socket_service_stop (peers.not_tls);
  g_socket_listener_close (G_SOCKET_LISTENER (peers.not_tls));
  g_clear_object (&peers.not_tls);
  soup_server_disconnect (peers.server);
  g_clear_object (&peers.server);
  /* Every WebSocket finishes closing and goes away (libsoup's close timer
   * holds the last reference), so that nothing outlives the context. */
  {
    gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

    for (guint i = 0; i < peers.connections->len; i++)
      {
        SoupWebsocketConnection *connection = g_ptr_array_index (peers.connections, i);

        if (soup_websocket_connection_get_state (connection) == SOUP_WEBSOCKET_STATE_OPEN)
          soup_websocket_connection_close (connection, SOUP_WEBSOCKET_CLOSE_GOING_AWAY, NULL);
      }
    g_ptr_array_set_size (peers.connections, 0);
    for (guint i = 0; i < peers.watched->len; i++)
      {
        gpointer *slot = g_ptr_array_index (peers.watched, i);

        while (*slot != NULL && g_get_monotonic_time () < deadline)
          g_main_context_iteration (peers.context, TRUE);
        if (*slot != NULL)
          g_object_remove_weak_pointer (*slot, slot);
      }
    g_ptr_array_set_size (peers.watched, 0);
  }
  while (g_main_context_iteration (peers.context, FALSE))
    ;
  g_main_context_pop_thread_default (peers.context);
  return NULL;
}

static void
peers_start (void)
{
  g_mutex_init (&peers.lock);
  g_mutex_init (&peers.ready_lock);
  g_cond_init (&peers.ready_cond);
  peers.protocols = g_ptr_array_new_with_free_func (g_free);
  peers.connections = g_ptr_array_new_with_free_func (g_object_unref);
  peers.watched = g_ptr_array_new_with_free_func (g_free);
  peers.context = g_main_context_new ();
  peers.loop = g_main_loop_new (peers.context, FALSE);
  peers.thread = g_thread_new ("peers", peers_thread, NULL);

  g_mutex_lock (&peers.ready_lock);
  while (!peers.ready)
    g_cond_wait (&peers.ready_cond, &peers.ready_lock);
  g_mutex_unlock (&peers.ready_lock);
}

static gboolean
quit_cb (gpointer user_data)
{
  g_main_loop_quit (peers.loop);
  return G_SOURCE_REMOVE;
}

static void
peers_stop (void)
{
  g_main_context_invoke (peers.context, quit_cb, NULL);
  g_thread_join (peers.thread);
  g_main_loop_unref (peers.loop);
  g_main_context_unref (peers.context);
  g_ptr_array_unref (peers.protocols);
  g_ptr_array_unref (peers.connections);
  g_ptr_array_unref (peers.watched);
}

static guint
protocols_count (void)
{
  guint n;

  g_mutex_lock (&peers.lock);
  n = peers.protocols->len;
  g_mutex_unlock (&peers.lock);
  return n;
}

/* The Sec-WebSocket-Protocol of upgrade @i; waits for it, since the
 * handler runs just after the 101 is sent. */
static char *
protocols_dup (guint i)
{
  gint64 deadline = g_get_monotonic_time () + DEADLINE_S * G_USEC_PER_SEC;
  char *protocol;

  while (protocols_count () <= i && g_get_monotonic_time () < deadline)
    g_usleep (5 * 1000);
  g_mutex_lock (&peers.lock);
  g_assert_cmpuint (i, <, peers.protocols->len);
  protocol = g_strdup (g_ptr_array_index (peers.protocols, i));
  g_mutex_unlock (&peers.lock);
  return protocol;
}

/* ---- the bus, waiting -------------------------------------------------- */

static GDBusConnection *bus;

static void
spin (void)
{
  while (g_main_context_iteration (NULL, FALSE))
    ;
}

static void
pause_ms (guint ms)
{
  gint64 until = g_get_monotonic_time () + ms * 1000;

  while (g_get_monotonic_time () < until)
    {
      spin ();
      g_usleep (10 * 1000);
    }
}

static gboolean
name_has_owner (const char *name)
{
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GError) error = NULL;
  gboolean has;

  reply = g_dbus_connection_call_sync (bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                       "org.freedesktop.DBus", "NameHasOwner", g_variant_new ("(s)", name),
                                       G_VARIANT_TYPE ("(b)"), G_DBUS_CALL_FLAGS_NONE, -1, NULL, &error);
  g_assert_no_error (error);
  g_variant_get (reply, "(b)", &has);
  return has;
}

static GStrv
list_instance_names (void)
{
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariantIter) iter = NULL;
  g_autoptr(GStrvBuilder) builder = g_strv_builder_new ();
  const char *name;

  reply = g_dbus_connection_call_sync (bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                       "org.freedesktop.DBus", "ListNames", NULL, G_VARIANT_TYPE ("(as)"),
                                       G_DBUS_CALL_FLAGS_NONE, -1, NULL, &error);
  g_assert_no_error (error);
  g_variant_get (reply, "(as)", &iter);
  while (g_variant_iter_next (iter, "&s", &name))
    if (g_str_has_prefix (name, NAME_PREFIX))
      g_strv_builder_add (builder, name);
  return g_strv_builder_end (builder);
}

static GVariant *
get_property (const char *name,
              const char *path,
              const char *iface,
              const char *property)
{
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GError) error = NULL;
  GVariant *value;

  reply = g_dbus_connection_call_sync (bus, name, path, "org.freedesktop.DBus.Properties", "Get",
                                       g_variant_new ("(ss)", iface, property), G_VARIANT_TYPE ("(v)"),
                                       G_DBUS_CALL_FLAGS_NONE, -1, NULL, &error);
  g_assert_no_error (error);
  g_variant_get (reply, "(v)", &value);
  return value;
}

static guint32
get_uint (const char *name,
          const char *path,
          const char *iface,
          const char *property)
{
  g_autoptr(GVariant) value = get_property (name, path, iface, property);

  return g_variant_get_uint32 (value);
}

static guint64
get_uint64 (const char *name,
            const char *path,
            const char *iface,
            const char *property)
{
  g_autoptr(GVariant) value = get_property (name, path, iface, property);

  return g_variant_get_uint64 (value);
}

/* A state the transport reaches on its own time: wait for it. */
static void
wait_for_uint (const char *name,
               const char *path,
               const char *iface,
               const char *property,
               guint32     want)
{
  gint64 deadline = g_get_monotonic_time () + DEADLINE_S * G_USEC_PER_SEC;
  guint32 got;

  while ((got = get_uint (name, path, iface, property)) != want)
    {
      if (g_get_monotonic_time () > deadline)
        g_error ("%s stayed %u, expected %u", property, got, want);
      g_usleep (50 * 1000);
    }
}

/* Counters are copied at most once a second: wait for them. */
static void
wait_for_uint64 (const char *name,
                 const char *path,
                 const char *iface,
                 const char *property,
                 guint64     want)
{
  guint64 got = 0;

  if (!TWP_TEST_WAIT_FOR ((got = get_uint64 (name, path, iface, property)) == want, DEADLINE_MS))
    g_error ("%s stayed %" G_GUINT64_FORMAT ", expected %" G_GUINT64_FORMAT, property, got, want);
}

static char *
get_string (const char *name,
            const char *path,
            const char *iface,
            const char *property)
{
  g_autoptr(GVariant) value = get_property (name, path, iface, property);

  return g_variant_dup_string (value, NULL);
}

static gboolean
set_frame_mode (const char  *name,
                const char  *mode,
                GError     **error)
{
  g_autoptr(GVariant) reply = NULL;

  reply = g_dbus_connection_call_sync (bus, name, TRANSPORT_PATH, "org.freedesktop.DBus.Properties", "Set",
                                       g_variant_new ("(ssv)", TRANSPORT_IFACE, "FrameMode",
                                                      g_variant_new_string (mode)),
                                       NULL, G_DBUS_CALL_FLAGS_NONE, -1, NULL, error);
  return reply != NULL;
}

static GVariant *
call (const char         *name,
      const char         *path,
      const char         *iface,
      const char         *method,
      GVariant           *parameters,
      const GVariantType *reply_type)
{
  g_autoptr(GError) error = NULL;
  GVariant *reply;

  reply = g_dbus_connection_call_sync (bus, name, path, iface, method, parameters, reply_type,
                                       G_DBUS_CALL_FLAGS_NONE, 30 * 1000, NULL, &error);
  g_assert_no_error (error);
  return reply;
}

/* Bridge object paths, from GetManagedObjects. */
static GPtrArray *
list_bridges (const char *name)
{
  g_autoptr(GVariant) reply = call (name, ROOT_PATH, "org.freedesktop.DBus.ObjectManager", "GetManagedObjects",
                                    NULL, G_VARIANT_TYPE ("(a{oa{sa{sv}}})"));
  g_autoptr(GVariant) objects = g_variant_get_child_value (reply, 0);
  GPtrArray *paths = g_ptr_array_new_with_free_func (g_free);
  GVariantIter iter;
  const char *path;
  GVariant *interfaces;

  g_variant_iter_init (&iter, objects);
  while (g_variant_iter_next (&iter, "{&o@a{sa{sv}}}", &path, &interfaces))
    {
      g_autoptr(GVariant) props = g_variant_lookup_value (interfaces, BRIDGE_IFACE, NULL);

      if (props != NULL)
        {
          /* The URL is no property: a broadcast would carry it. */
          g_assert_false (g_variant_lookup (props, "Url", "s", NULL));
          g_ptr_array_add (paths, g_strdup (path));
        }
      g_variant_unref (interfaces);
    }
  return paths;
}

/* The path of the bridge whose GetUrl() is @url, or NULL. */
static char *
find_bridge (const char *name,
             const char *url)
{
  g_autoptr(GPtrArray) paths = list_bridges (name);

  for (guint i = 0; i < paths->len; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GVariant) reply = NULL;
      const char *got;

      reply = g_dbus_connection_call_sync (bus, name, g_ptr_array_index (paths, i), BRIDGE_IFACE, "GetUrl",
                                           NULL, G_VARIANT_TYPE ("(s)"), G_DBUS_CALL_FLAGS_NONE, 30 * 1000,
                                           NULL, &error);
      /* A bridge may expire between the listing and this call. */
      if (g_error_matches (error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD) ||
          g_error_matches (error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_OBJECT))
        continue;
      g_assert_no_error (error);
      g_variant_get (reply, "(&s)", &got);
      if (g_strcmp0 (got, url) == 0)
        return g_strdup (g_ptr_array_index (paths, i));
    }
  return NULL;
}

/* ---- the transport under test ------------------------------------------ */

typedef struct {
  GSubprocess *process;
  char *name;
  guint16 port;
} Proc;

static void
child_setup (gpointer user_data)
{
  /* A failed assertion must not leave transports behind. */
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

static GSubprocessLauncher *
launcher_new (void)
{
  GSubprocessLauncher *launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);

  g_subprocess_launcher_set_child_setup (launcher, child_setup, NULL, NULL);
  return launcher;
}

/* Starts an unmanaged client (or server) on 127.0.0.1:0 and, with
 * @wait_for_name, waits until it owns instance<PID>. */
static Proc *
proc_start_full (GSubprocessLauncher *launcher,
                 const char * const  *extra,
                 gboolean             wait_for_name)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autofree char *line = NULL;
  Proc *proc = g_new0 (Proc, 1);
  const char *colon;

  g_ptr_array_add (argv, (char *) g_getenv ("TWP_BINARY"));
  g_ptr_array_add (argv, "--listen");
  g_ptr_array_add (argv, "127.0.0.1:0");
  for (guint i = 0; extra != NULL && extra[i] != NULL; i++)
    g_ptr_array_add (argv, (char *) extra[i]);
  g_ptr_array_add (argv, NULL);

  proc->process = g_subprocess_launcher_spawnv (launcher, (const char * const *) argv->pdata, &error);
  g_assert_no_error (error);
  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (proc->process));
  line = g_data_input_stream_read_line (out, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (line);
  g_assert_true (g_str_has_prefix (line, "listening on 127.0.0.1:"));
  colon = strrchr (line, ':');
  proc->port = (guint16) g_ascii_strtoull (colon + 1, NULL, 10);
  g_assert_cmpuint (proc->port, >, 0);

  proc->name = g_strdup_printf (NAME_PREFIX "%s", g_subprocess_get_identifier (proc->process));
  if (!wait_for_name)
    return proc;
  TWP_TEST_ASSERT_WAIT (name_has_owner (proc->name), DEADLINE_MS, "the transport's name on the bus");
  return proc;
}

static Proc *
proc_start (const char * const *extra)
{
  g_autoptr(GSubprocessLauncher) launcher = launcher_new ();

  return proc_start_full (launcher, extra, TRUE);
}

/* For transports that dial wss://: LeakSanitizer cannot scan a process
 * that used GnuTLS (see tests/lsan.supp); AddressSanitizer stays on. */
static Proc *
proc_start_tls (const char * const *extra)
{
  g_autoptr(GSubprocessLauncher) launcher = launcher_new ();
  const char *asan = g_getenv ("ASAN_OPTIONS");

  if (asan != NULL)
    {
      g_autofree char *options = g_strconcat (asan, ":detect_leaks=0", NULL);

      g_subprocess_launcher_setenv (launcher, "ASAN_OPTIONS", options, TRUE);
    }
  return proc_start_full (launcher, extra, TRUE);
}

static void
wait_done_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  gboolean *done = user_data;

  g_subprocess_wait_finish (G_SUBPROCESS (source), result, NULL);
  *done = TRUE;
}

static void
proc_stop (Proc *proc)
{
  gboolean done = FALSE;

  g_subprocess_send_signal (proc->process, SIGTERM);
  g_subprocess_wait_async (proc->process, NULL, wait_done_cb, &done);
  TWP_TEST_ASSERT_WAIT (done, DEADLINE_MS, "the transport to exit after SIGTERM");
  /* It exits cleanly (K1), which also runs the D-Bus teardown. */
  g_assert_true (g_subprocess_get_if_exited (proc->process));
  g_assert_cmpint (g_subprocess_get_exit_status (proc->process), ==, 0);
  g_object_unref (proc->process);
  g_free (proc->name);
  g_free (proc);
}

/* ---- SOCKS5 as tor speaks it ------------------------------------------- */

static void
send_all (GSocket     *socket,
          const void  *data,
          gsize        len)
{
  g_autoptr(GError) error = NULL;
  const guint8 *p = data;

  while (len > 0)
    {
      gssize n = g_socket_send (socket, (const char *) p, len, NULL, &error);

      g_assert_no_error (error);
      g_assert_cmpint (n, >, 0);
      p += n;
      len -= n;
    }
}

/* FALSE on EOF before @len bytes. */
static gboolean
recv_exact (GSocket *socket,
            void    *data,
            gsize    len)
{
  guint8 *p = data;

  while (len > 0)
    {
      g_autoptr(GError) error = NULL;
      gssize n = g_socket_receive (socket, (char *) p, len, NULL, &error);

      if (n <= 0)
        return FALSE;
      p += n;
      len -= n;
    }
  return TRUE;
}

/* Returns the open tunnel, or NULL with the reply code (0xff: the
 * arguments were refused at authentication, or the connection closed). */
static GSocket *
socks_connect (guint16     port,
               const char *args,
               guint8     *reply_code)
{
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new (loopback, port);
  guint8 buf[512];
  gsize args_len = args != NULL ? strlen (args) : 0;
  static const guint8 connect_request[] = { 5, 1, 0, 1, 127, 0, 0, 1, 0, 1 };

  g_assert_cmpuint (args_len, <=, 255);
  *reply_code = 0xff;
  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
  g_assert_no_error (error);
  g_socket_set_timeout (socket, IO_TIMEOUT_S);
  g_socket_connect (socket, address, NULL, &error);
  g_assert_no_error (error);

  if (args_len > 0)
    {
      /* Arguments ride in the username; a lone NUL password, as tor does. */
      send_all (socket, (const guint8[]) { 5, 1, 2 }, 3);
      if (!recv_exact (socket, buf, 2))
        return NULL;
      g_assert_cmpuint (buf[1], ==, 2);
      buf[0] = 1;
      buf[1] = (guint8) args_len;
      memcpy (buf + 2, args, args_len);
      buf[2 + args_len] = 1;
      buf[3 + args_len] = 0;
      send_all (socket, buf, 4 + args_len);
      if (!recv_exact (socket, buf, 2) || buf[1] != 0)
        return NULL;
    }
  else
    {
      send_all (socket, (const guint8[]) { 5, 1, 0 }, 3);
      if (!recv_exact (socket, buf, 2))
        return NULL;
      g_assert_cmpuint (buf[1], ==, 0);
    }
  send_all (socket, connect_request, sizeof connect_request);
  if (!recv_exact (socket, buf, 10))
    return NULL;
  *reply_code = buf[1];
  if (buf[1] != 0)
    return NULL;
  return g_steal_pointer (&socket);
}

static GSocket *
socks_open (guint16     port,
            const char *args)
{
  guint8 code;
  GSocket *socket = socks_connect (port, args, &code);

  if (socket == NULL)
    g_error ("SOCKS connection failed with reply %u", code);
  return socket;
}

static void
assert_echo (GSocket *socket,
             gsize    len)
{
  g_autofree guint8 *data = g_malloc (len);
  g_autofree guint8 *back = g_malloc (len);

  for (gsize i = 0; i < len; i++)
    data[i] = (guint8) g_random_int ();
  send_all (socket, data, len);
  g_assert_true (recv_exact (socket, back, len));
  g_assert_cmpmem (data, len, back, len);
}

/* ---- signal recording -------------------------------------------------- */

typedef struct {
  char *sender;
  char *path;
  char *member;
  char *params;   /* g_variant_print () */
} Signal;

static void
signal_free (Signal *signal)
{
  g_free (signal->sender);
  g_free (signal->path);
  g_free (signal->member);
  g_free (signal->params);
  g_free (signal);
}

static void
record_signal_cb (GDBusConnection *connection,
                  const char      *sender,
                  const char      *path,
                  const char      *iface,
                  const char      *member,
                  GVariant        *parameters,
                  gpointer         user_data)
{
  GPtrArray *signals = user_data;
  Signal *signal = g_new0 (Signal, 1);

  signal->sender = g_strdup (sender);
  signal->path = g_strdup (path);
  signal->member = g_strdup_printf ("%s.%s", iface, member);
  signal->params = g_variant_print (parameters, TRUE);
  g_ptr_array_add (signals, signal);
}

/* Every signal broadcast on the bus (a match rule for all of them). */
static guint
record_signals (GPtrArray *signals)
{
  return g_dbus_connection_signal_subscribe (bus, NULL, NULL, NULL, NULL, NULL, G_DBUS_SIGNAL_FLAGS_NONE,
                                             record_signal_cb, signals, NULL);
}

/* Whether PropertiesChanged on @path set @needle (e.g. "'State': <uint32 30>")
 * at index >= *from; *from moves past it. */
static gboolean
find_change (GPtrArray  *signals,
             const char *path,
             const char *needle,
             guint      *from)
{
  for (guint i = *from; i < signals->len; i++)
    {
      Signal *signal = g_ptr_array_index (signals, i);

      if (g_str_equal (signal->path, path) &&
          g_str_equal (signal->member, "org.freedesktop.DBus.Properties.PropertiesChanged") &&
          strstr (signal->params, needle) != NULL)
        {
          *from = i + 1;
          return TRUE;
        }
    }
  return FALSE;
}

static gboolean
wait_for_change (GPtrArray  *signals,
                 const char *path,
                 const char *needle,
                 guint      *from)
{
  return TWP_TEST_WAIT_FOR (find_change (signals, path, needle, from), DEADLINE_MS);
}

/* ---- introspection matches the XML ------------------------------------- */

static char *
args_signature (GDBusArgInfo **args)
{
  GString *signature = g_string_new (NULL);

  for (guint i = 0; args != NULL && args[i] != NULL; i++)
    g_string_append (signature, args[i]->signature);
  return g_string_free (signature, FALSE);
}

static void
assert_same_interface (GDBusInterfaceInfo *expected,
                       GDBusInterfaceInfo *live)
{
  guint n;

  g_assert_cmpstr (expected->name, ==, live->name);

  for (n = 0; expected->methods != NULL && expected->methods[n] != NULL; n++)
    {
      GDBusMethodInfo *want = expected->methods[n];
      GDBusMethodInfo *got = g_dbus_interface_info_lookup_method (live, want->name);
      g_autofree char *want_in = NULL, *want_out = NULL, *got_in = NULL, *got_out = NULL;

      g_assert_nonnull (got);
      want_in = args_signature (want->in_args);
      want_out = args_signature (want->out_args);
      got_in = args_signature (got->in_args);
      got_out = args_signature (got->out_args);
      g_assert_cmpstr (want_in, ==, got_in);
      g_assert_cmpstr (want_out, ==, got_out);
    }
  g_assert_cmpuint (n, ==, live->methods != NULL ? g_strv_length ((char **) live->methods) : 0);

  for (n = 0; expected->signals != NULL && expected->signals[n] != NULL; n++)
    {
      GDBusSignalInfo *want = expected->signals[n];
      GDBusSignalInfo *got = g_dbus_interface_info_lookup_signal (live, want->name);
      g_autofree char *want_sig = NULL, *got_sig = NULL;

      g_assert_nonnull (got);
      want_sig = args_signature (want->args);
      got_sig = args_signature (got->args);
      g_assert_cmpstr (want_sig, ==, got_sig);
    }
  g_assert_cmpuint (n, ==, live->signals != NULL ? g_strv_length ((char **) live->signals) : 0);

  for (n = 0; expected->properties != NULL && expected->properties[n] != NULL; n++)
    {
      GDBusPropertyInfo *want = expected->properties[n];
      GDBusPropertyInfo *got = g_dbus_interface_info_lookup_property (live, want->name);

      g_assert_nonnull (got);
      g_assert_cmpstr (want->signature, ==, got->signature);
      g_assert_cmpint (want->flags, ==, got->flags);
    }
  g_assert_cmpuint (n, ==, live->properties != NULL ? g_strv_length ((char **) live->properties) : 0);
}

static GDBusNodeInfo *
introspect (const char *name,
            const char *path)
{
  g_autoptr(GVariant) reply = call (name, path, "org.freedesktop.DBus.Introspectable", "Introspect", NULL,
                                    G_VARIANT_TYPE ("(s)"));
  g_autoptr(GError) error = NULL;
  const char *xml;
  GDBusNodeInfo *node;

  g_variant_get (reply, "(&s)", &xml);
  node = g_dbus_node_info_new_for_xml (xml, &error);
  g_assert_no_error (error);
  return node;
}

static GDBusInterfaceInfo *
load_interface (const char *file,
                const char *iface,
                GDBusNodeInfo **node_out)
{
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "..", "data", file, NULL);
  g_autofree char *xml = NULL;
  g_autoptr(GError) error = NULL;

  g_file_get_contents (path, &xml, NULL, &error);
  g_assert_no_error (error);
  *node_out = g_dbus_node_info_new_for_xml (xml, &error);
  g_assert_no_error (error);
  return g_dbus_node_info_lookup_interface (*node_out, iface);
}

static void
test_introspection (void)
{
  g_autofree char *url = g_strdup_printf ("ws://127.0.0.1:%u/ws", peers.port);
  g_autofree char *args = g_strdup_printf ("url=%s", url);
  Proc *proc = proc_start ((const char *[]) { "--client", NULL });
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GDBusNodeInfo) root = NULL, transport = NULL, bridge = NULL;
  g_autoptr(GDBusNodeInfo) transport_xml = NULL, bridge_xml = NULL;
  g_autofree char *bridge_path = NULL;
  GDBusInterfaceInfo *want;

  /* The bridge object appears with the first SOCKS request for it. */
  g_assert_cmpuint (list_bridges (proc->name)->len, ==, 0);
  socket = socks_open (proc->port, args);
  bridge_path = find_bridge (proc->name, url);
  g_assert_nonnull (bridge_path);
  g_assert_true (g_str_has_prefix (bridge_path, ROOT_PATH "/bridge/"));

  root = introspect (proc->name, ROOT_PATH);
  g_assert_nonnull (g_dbus_node_info_lookup_interface (root, "org.freedesktop.DBus.ObjectManager"));

  transport = introspect (proc->name, TRANSPORT_PATH);
  want = load_interface ("io.github.TorWebSocketProxy1.Transport.xml", TRANSPORT_IFACE, &transport_xml);
  g_assert_nonnull (want);
  assert_same_interface (want, g_dbus_node_info_lookup_interface (transport, TRANSPORT_IFACE));

  bridge = introspect (proc->name, bridge_path);
  want = load_interface ("io.github.TorWebSocketProxy1.Bridge.xml", BRIDGE_IFACE, &bridge_xml);
  g_assert_nonnull (want);
  assert_same_interface (want, g_dbus_node_info_lookup_interface (bridge, BRIDGE_IFACE));

  /* Role, version and origin of an unmanaged client. */
  {
    g_autofree char *role = get_string (proc->name, TRANSPORT_PATH, TRANSPORT_IFACE, "Role");
    g_autofree char *version = get_string (proc->name, TRANSPORT_PATH, TRANSPORT_IFACE, "Version");
    g_autofree char *origin = get_string (proc->name, TRANSPORT_PATH, TRANSPORT_IFACE, "OriginHint");
    g_autofree char *id = get_string (proc->name, bridge_path, BRIDGE_IFACE, "Id");

    g_assert_cmpstr (role, ==, "client");
    g_assert_cmpstr (version, ==, PACKAGE_VERSION);
    g_assert_cmpstr (origin, ==, "other");
    g_assert_cmpuint (get_uint (proc->name, TRANSPORT_PATH, TRANSPORT_IFACE, "ParentPid"), ==, getpid ());
    g_assert_true (g_str_has_suffix (bridge_path, id));
  }

  g_clear_object (&socket);
  proc_stop (proc);
}

/* ---- discovery --------------------------------------------------------- */

static void
name_owner_changed_cb (GDBusConnection *connection,
                       const char      *sender,
                       const char      *path,
                       const char      *iface,
                       const char      *member,
                       GVariant        *parameters,
                       gpointer         user_data)
{
  GPtrArray *gone = user_data;
  const char *name, *old_owner, *new_owner;

  g_variant_get (parameters, "(&s&s&s)", &name, &old_owner, &new_owner);
  if (*new_owner == '\0')
    g_ptr_array_add (gone, g_strdup (name));
}

static void
test_two_instances (void)
{
  Proc *a = proc_start ((const char *[]) { "--client", NULL });
  Proc *b = proc_start ((const char *[]) { "--server", "--orport", "127.0.0.1:9", NULL });
  g_auto(GStrv) names = list_instance_names ();
  g_autoptr(GPtrArray) gone = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *role_b = NULL;
  guint id;

  /* Both are found by the prefix alone. */
  g_assert_true (g_strv_contains ((const char * const *) names, a->name));
  g_assert_true (g_strv_contains ((const char * const *) names, b->name));
  role_b = get_string (b->name, TRANSPORT_PATH, TRANSPORT_IFACE, "Role");
  g_assert_cmpstr (role_b, ==, "server");
  g_assert_cmpuint (get_uint (b->name, TRANSPORT_PATH, TRANSPORT_IFACE, "State"), ==, 20);
  g_assert_cmpuint (list_bridges (b->name)->len, ==, 0);
  /* The server's own state property, bound: a connection (even one that
   * has sent nothing yet) makes it connected, its end ready again. */
  {
    g_autoptr(GSocketClient) client = g_socket_client_new ();
    g_autoptr(GSocketConnection) connection = NULL;
    g_autoptr(GError) error = NULL;

    g_socket_client_set_enable_proxy (client, FALSE);
    connection = g_socket_client_connect_to_host (client, "127.0.0.1", b->port, NULL, &error);
    g_assert_no_error (error);
    wait_for_uint (b->name, TRANSPORT_PATH, TRANSPORT_IFACE, "State", 40);
    g_io_stream_close (G_IO_STREAM (connection), NULL, &error);
    g_assert_no_error (error);
    wait_for_uint (b->name, TRANSPORT_PATH, TRANSPORT_IFACE, "State", 20);
  }

  /* What a status app does: follow the namespace, no polling. */
  id = g_dbus_connection_signal_subscribe (bus, "org.freedesktop.DBus", "org.freedesktop.DBus",
                                           "NameOwnerChanged", "/org/freedesktop/DBus",
                                           "io.github.TorWebSocketProxy1",
                                           G_DBUS_SIGNAL_FLAGS_MATCH_ARG0_NAMESPACE,
                                           name_owner_changed_cb, gone, NULL);
  /* The match rule is in place once a round trip has gone through. */
  g_assert_true (name_has_owner (a->name));
  proc_stop (a);
  TWP_TEST_ASSERT_WAIT (gone->len > 0, DEADLINE_MS, "NameOwnerChanged");
  g_dbus_connection_signal_unsubscribe (bus, id);
  g_assert_cmpuint (gone->len, ==, 1);
  g_assert_cmpstr (g_ptr_array_index (gone, 0), !=, b->name);
  g_assert_true (g_str_has_prefix (g_ptr_array_index (gone, 0), NAME_PREFIX));
  g_assert_true (name_has_owner (b->name));

  names = (g_strfreev (names), list_instance_names ());
  g_assert_true (g_strv_contains ((const char * const *) names, b->name));
  g_assert_cmpuint (g_strv_length (names), ==, 1);
  proc_stop (b);
}

/* Another process holds instance<PID> (PID namespaces): the transport
 * takes instance<PID>_1 instead. */
static void
test_name_taken (void)
{
  g_autoptr(GSubprocessLauncher) launcher =
    g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDIN_PIPE);
  g_autoptr(GDataInputStream) out = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;
  g_autofree char *taken = NULL;
  Proc *proc = g_new0 (Proc, 1);
  guint32 result;

  g_subprocess_launcher_set_child_setup (launcher, child_setup, NULL, NULL);
  /* The shell waits for us, then becomes the transport with the same PID. */
  proc->process = g_subprocess_launcher_spawn (launcher, &error, "sh", "-c",
                                               "read go && exec \"$0\" --client --listen 127.0.0.1:0",
                                               g_getenv ("TWP_BINARY"), NULL);
  g_assert_no_error (error);
  taken = g_strdup_printf (NAME_PREFIX "%s", g_subprocess_get_identifier (proc->process));
  reply = g_dbus_connection_call_sync (bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                       "org.freedesktop.DBus", "RequestName", g_variant_new ("(su)", taken, 4),
                                       G_VARIANT_TYPE ("(u)"), G_DBUS_CALL_FLAGS_NONE, -1, NULL, &error);
  g_assert_no_error (error);
  g_variant_get (reply, "(u)", &result);
  g_assert_cmpuint (result, ==, 1);

  g_output_stream_write_all (g_subprocess_get_stdin_pipe (proc->process), "go\n", 3, NULL, NULL, &error);
  g_assert_no_error (error);
  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (proc->process));
  line = g_data_input_stream_read_line (out, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_str_has_prefix (line, "listening on"));

  proc->name = g_strconcat (taken, "_1", NULL);
  TWP_TEST_ASSERT_WAIT (name_has_owner (proc->name), DEADLINE_MS, "the transport's name on the bus");
  g_assert_cmpuint (get_uint (proc->name, TRANSPORT_PATH, TRANSPORT_IFACE, "State"), ==, 20);
  g_clear_pointer (&reply, g_variant_unref);
  reply = g_dbus_connection_call_sync (bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                       "org.freedesktop.DBus", "ReleaseName", g_variant_new ("(s)", taken),
                                       G_VARIANT_TYPE ("(u)"), G_DBUS_CALL_FLAGS_NONE, -1, NULL, &error);
  g_assert_no_error (error);
  proc_stop (proc);
}

/* ---- live properties --------------------------------------------------- */

static void
test_live_transfer (void)
{
  g_autofree char *url = g_strdup_printf ("ws://127.0.0.1:%u/slow", peers.port);
  Proc *proc = proc_start ((const char *[]) { "--client", "--url", url, NULL });
  g_autoptr(GPtrArray) signals = g_ptr_array_new_with_free_func ((GDestroyNotify) signal_free);
  g_autoptr(GSocket) socket = NULL;
  g_autofree char *bridge_path = NULL;
  guint id = record_signals (signals);
  guint from = 0, connected;

  g_assert_cmpuint (get_uint (proc->name, TRANSPORT_PATH, TRANSPORT_IFACE, "State"), ==, 20);
  g_assert_true (name_has_owner (proc->name));
  /* No SOCKS arguments: the command line's --url. */
  socket = socks_open (proc->port, NULL);
  bridge_path = find_bridge (proc->name, url);
  g_assert_nonnull (bridge_path);
  assert_echo (socket, 5000);

  /* State changes arrive at once, in order. */
  g_assert_true (wait_for_change (signals, bridge_path, "'State': <uint32 20>", &from));
  g_assert_true (wait_for_change (signals, bridge_path, "'State': <uint32 30>", &from));
  connected = from;
  from = 0;
  g_assert_true (wait_for_change (signals, TRANSPORT_PATH, "'State': <uint32 30>", &from));
  g_assert_true (wait_for_change (signals, TRANSPORT_PATH, "'State': <uint32 40>", &from));
  from = 0;
  g_assert_true (wait_for_change (signals, bridge_path, "'Phase': <uint32 60>", &from));
  g_assert_cmpuint (get_uint (proc->name, bridge_path, BRIDGE_IFACE, "ActiveConnections"), ==, 1);

  /* Counters follow within about a second. */
  from = 0;
  g_assert_true (wait_for_change (signals, bridge_path, "'BytesSent': <uint64 5000>", &from));
  from = 0;
  g_assert_true (wait_for_change (signals, bridge_path, "'BytesReceived': <uint64 5000>", &from));
  from = 0;
  g_assert_true (wait_for_change (signals, TRANSPORT_PATH, "'BytesSent': <uint64 5000>", &from));
  wait_for_uint64 (proc->name, bridge_path, BRIDGE_IFACE, "Attempts", 1);

  assert_echo (socket, 3000);
  from = 0;
  g_assert_true (wait_for_change (signals, bridge_path, "'BytesSent': <uint64 8000>", &from));

  /* Closing the tunnel: back to idle. */
  g_clear_object (&socket);
  from = connected;
  g_assert_true (wait_for_change (signals, bridge_path, "'State': <uint32 10>", &from));
  g_assert_cmpuint (get_uint (proc->name, TRANSPORT_PATH, TRANSPORT_IFACE, "State"), ==, 20);

  g_dbus_connection_signal_unsubscribe (bus, id);
  proc_stop (proc);
}

/* ---- failures, Test() -------------------------------------------------- */

typedef struct {
  const char *what;
  char *url;
  guint32 phase;
  guint32 reason;
  guint32 code;       /* LastFailureCode: the HTTP status for a 403 */
} Failure;

static void
assert_test_result (const char *name,
                    const char *bridge_path,
                    gboolean    want_ok,
                    guint32     want_phase,
                    guint32     want_reason)
{
  g_autoptr(GVariant) reply = call (name, bridge_path, BRIDGE_IFACE, "Test", NULL,
                                    G_VARIANT_TYPE ("(buus)"));
  gboolean ok;
  guint32 phase, reason;
  const char *details;

  g_variant_get (reply, "(buu&s)", &ok, &phase, &reason, &details);
  g_test_message ("Test() on %s: ok=%d phase=%u reason=%u details=%s", bridge_path, ok, phase, reason, details);
  g_assert_cmpint (ok, ==, want_ok);
  g_assert_cmpuint (phase, ==, want_phase);
  g_assert_cmpuint (reason, ==, want_reason);
  if (ok)
    g_assert_cmpstr (details, ==, "");
  else
    g_assert_cmpstr (details, !=, "");
}

static void
test_reply_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  GVariant **reply = user_data;
  g_autoptr(GError) error = NULL;

  *reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (source), result, &error);
  g_assert_no_error (error);
}

static void
test_failures (void)
{
  Proc *proc = proc_start_tls ((const char *[]) { "--client", "--connect-timeout", "10", NULL });
  g_autofree char *good = g_strdup_printf ("ws://127.0.0.1:%u/ws", peers.port);
  Failure failures[] = {
    { "refused", g_strdup_printf ("ws://127.0.0.1:%u/", twp_test_refusing_port ()), 20, 30, 0 },
    { "403", g_strdup_printf ("ws://127.0.0.1:%u/forbidden", peers.port), 50, 90, 403 },
    { "not TLS", g_strdup_printf ("wss://127.0.0.1:%u/", peers.not_tls_port), 40, 70, 0 },
    { "DNS", g_strdup ("ws://name.invalid/"), 10, 20, 0 },
  };
  g_autoptr(GSocket) socket = NULL;
  g_autofree char *good_path = NULL;
  g_autofree char *good_args = g_strdup_printf ("url=%s", good);
  guint32 transport_reason;

  for (guint i = 0; i < G_N_ELEMENTS (failures); i++)
    {
      g_autofree char *args = g_strdup_printf ("url=%s", failures[i].url);
      g_autofree char *path = NULL;
      g_autofree char *details = NULL;
      guint8 code;

      g_test_message ("failure: %s", failures[i].what);
      g_assert_null (socks_connect (proc->port, args, &code));
      g_assert_cmpuint (code, !=, 0);
      path = find_bridge (proc->name, failures[i].url);
      g_assert_nonnull (path);
      /* The bridge says where and why it failed... */
      g_assert_cmpuint (get_uint (proc->name, path, BRIDGE_IFACE, "State"), ==, 40);
      g_assert_cmpuint (get_uint (proc->name, path, BRIDGE_IFACE, "Phase"), ==, failures[i].phase);
      g_assert_cmpuint (get_uint (proc->name, path, BRIDGE_IFACE, "LastFailureReason"), ==, failures[i].reason);
      g_assert_cmpuint (get_uint (proc->name, path, BRIDGE_IFACE, "LastFailureCode"), ==, failures[i].code);
      details = get_string (proc->name, path, BRIDGE_IFACE, "LastFailureDetails");
      g_assert_cmpstr (details, !=, "");
      /* ...and so does the transport, for the most recent one. */
      g_assert_cmpuint (get_uint (proc->name, TRANSPORT_PATH, TRANSPORT_IFACE, "LastFailureReason"), ==,
                        failures[i].reason);
      g_assert_cmpuint (get_uint (proc->name, TRANSPORT_PATH, TRANSPORT_IFACE, "State"), ==, 60);
      /* Test() finds the same, and leaves the properties alone. */
      assert_test_result (proc->name, path, FALSE, failures[i].phase, failures[i].reason);
      wait_for_uint64 (proc->name, path, BRIDGE_IFACE, "Attempts", 1);
      wait_for_uint64 (proc->name, path, BRIDGE_IFACE, "Failures", 1);
    }

  /* A working bridge: the transport becomes degraded (others failing). */
  socket = socks_open (proc->port, good_args);
  good_path = find_bridge (proc->name, good);
  g_assert_nonnull (good_path);
  assert_test_result (proc->name, good_path, TRUE, 60, 0);
  g_assert_cmpuint (get_uint (proc->name, TRANSPORT_PATH, TRANSPORT_IFACE, "State"), ==, 50);
  assert_echo (socket, 100);

  /* Callers of a running Test() share it: both get the answer. */
  {
    g_autofree char *forbidden = g_strdup_printf ("ws://127.0.0.1:%u/forbidden", peers.port);
    g_autofree char *path = find_bridge (proc->name, forbidden);
    GVariant *replies[2] = { NULL, NULL };

    for (guint i = 0; i < 2; i++)
      g_dbus_connection_call (bus, proc->name, path, BRIDGE_IFACE, "Test", NULL, G_VARIANT_TYPE ("(buus)"),
                              G_DBUS_CALL_FLAGS_NONE, 30000, NULL, test_reply_cb, &replies[i]);
    TWP_TEST_ASSERT_WAIT (replies[0] != NULL && replies[1] != NULL, DEADLINE_MS, "both Test() replies");
    g_assert_nonnull (replies[0]);
    g_assert_nonnull (replies[1]);
    g_assert_true (g_variant_equal (replies[0], replies[1]));
    g_variant_unref (replies[0]);
    g_variant_unref (replies[1]);
  }

  /* Bad arguments never make a bridge: the transport reports them. */
  {
    guint8 code;
    g_autoptr(GPtrArray) before = list_bridges (proc->name);
    g_autoptr(GPtrArray) after = NULL;

    g_assert_null (socks_connect (proc->port, "url=http://x/", &code));
    after = list_bridges (proc->name);
    g_assert_cmpuint (after->len, ==, before->len);
    pause_ms (100);
    transport_reason = get_uint (proc->name, TRANSPORT_PATH, TRANSPORT_IFACE, "LastFailureReason");
    g_assert_cmpuint (transport_reason, ==, 10);   /* bad-arguments */
  }

  g_clear_object (&socket);
  for (guint i = 0; i < G_N_ELEMENTS (failures); i++)
    g_free (failures[i].url);
  proc_stop (proc);
}

/* ---- the frame-mode switch --------------------------------------------- */

static void
test_frame_mode (void)
{
  g_autofree char *url = g_strdup_printf ("ws://127.0.0.1:%u/ws", peers.port);
  g_autofree char *pinned_args = g_strdup_printf ("url=%s;mode=binary", url);
  Proc *proc = proc_start ((const char *[]) { "--client", "--url", url, NULL });
  g_autoptr(GSocket) first = NULL, second = NULL, third = NULL, pinned = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *mode = NULL, *bridge_mode = NULL, *bridge_path = NULL, *pinned_path = NULL;
  g_autofree char *protocol = NULL;
  g_autofree char *remote = NULL;
  guint base = protocols_count ();

  mode = get_string (proc->name, TRANSPORT_PATH, TRANSPORT_IFACE, "FrameMode");
  g_assert_cmpstr (mode, ==, "binary");

  first = socks_open (proc->port, NULL);
  assert_echo (first, 1000);
  protocol = protocols_dup (base);
  g_assert_cmpstr (protocol, ==, "");

  g_assert_true (set_frame_mode (proc->name, "base64", &error));
  g_assert_no_error (error);
  g_clear_pointer (&mode, g_free);
  mode = get_string (proc->name, TRANSPORT_PATH, TRANSPORT_IFACE, "FrameMode");
  g_assert_cmpstr (mode, ==, "base64");
  bridge_path = find_bridge (proc->name, url);
  bridge_mode = get_string (proc->name, bridge_path, BRIDGE_IFACE, "FrameMode");
  g_assert_cmpstr (bridge_mode, ==, "base64");

  /* The next handshake asks for base64; the open tunnel keeps binary. */
  second = socks_open (proc->port, NULL);
  assert_echo (second, 1000);
  g_clear_pointer (&protocol, g_free);
  protocol = protocols_dup (base + 1);
  g_assert_cmpstr (protocol, ==, "base64");
  assert_echo (first, 1000);

  /* Unknown values are refused and change nothing. */
  g_assert_false (set_frame_mode (proc->name, "text", &error));
  remote = g_dbus_error_get_remote_error (error);
  g_assert_cmpstr (remote, ==, "io.github.TorWebSocketProxy1.Error.InvalidArgument");
  g_clear_error (&error);
  g_clear_pointer (&mode, g_free);
  mode = get_string (proc->name, TRANSPORT_PATH, TRANSPORT_IFACE, "FrameMode");
  g_assert_cmpstr (mode, ==, "base64");

  /* A bridge line's mode= wins over the switch. */
  pinned = socks_open (proc->port, pinned_args);
  g_clear_pointer (&protocol, g_free);
  protocol = protocols_dup (base + 2);
  g_assert_cmpstr (protocol, ==, "");
  assert_echo (pinned, 500);
  {
    g_autoptr(GPtrArray) paths = list_bridges (proc->name);
    g_autoptr(GVariant) pinned_value = NULL;

    g_assert_cmpuint (paths->len, ==, 2);
    for (guint i = 0; i < paths->len; i++)
      if (!g_str_equal (g_ptr_array_index (paths, i), bridge_path))
        pinned_path = g_strdup (g_ptr_array_index (paths, i));
    pinned_value = get_property (proc->name, pinned_path, BRIDGE_IFACE, "ModePinned");
    g_assert_true (g_variant_get_boolean (pinned_value));
  }

  g_assert_true (set_frame_mode (proc->name, "binary", &error));
  third = socks_open (proc->port, NULL);
  assert_echo (third, 1000);
  g_clear_pointer (&protocol, g_free);
  protocol = protocols_dup (base + 3);
  g_assert_cmpstr (protocol, ==, "");
  assert_echo (second, 1000);
  assert_echo (first, 1000);

  g_clear_object (&first);
  g_clear_object (&second);
  g_clear_object (&third);
  g_clear_object (&pinned);
  proc_stop (proc);
}

/* ---- privacy ----------------------------------------------------------- */

static void
assert_no_secret_in_signals (GPtrArray  *signals,
                             const char *const *secrets)
{
  for (guint i = 0; i < signals->len; i++)
    {
      Signal *signal = g_ptr_array_index (signals, i);

      for (guint j = 0; secrets[j] != NULL; j++)
        if (strstr (signal->params, secrets[j]) != NULL)
          g_error ("signal %s on %s carries \"%s\": %s", signal->member, signal->path, secrets[j],
                   signal->params);
    }
}

static void
run_privacy (gboolean unsafe)
{
  g_autofree char *url = g_strdup_printf ("ws://127.0.0.1:%u" SECRET_PATH, peers.port);
  g_autofree char *refused = g_strdup_printf ("ws://127.0.0.1:%u" SECRET_PATH, twp_test_refusing_port ());
  g_autofree char *tls = g_strdup_printf ("wss://127.0.0.1:%u" SECRET_PATH, peers.not_tls_port);
  g_autofree char *forbidden = g_strdup_printf ("ws://127.0.0.1:%u/forbidden", peers.port);
  g_autofree char *args = g_strdup_printf ("url=%s", url);
  g_autofree char *refused_args = g_strdup_printf ("url=%s", refused);
  g_autofree char *tls_args = g_strdup_printf ("url=%s", tls);
  g_autofree char *forbidden_args = g_strdup_printf ("url=%s", forbidden);
  g_autofree char *port1 = g_strdup_printf (":%u", peers.port);
  g_autofree char *port2 = g_strdup_printf (":%u", peers.not_tls_port);
  g_autoptr(GPtrArray) signals = g_ptr_array_new_with_free_func ((GDestroyNotify) signal_free);
  guint id = record_signals (signals);
  Proc *proc = proc_start_tls ((const char *[]) { "--client", unsafe ? "--unsafe-logging" : "--client", NULL });
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GVariant) events = NULL;
  g_autoptr(GVariant) diagnostics = NULL;
  g_autofree char *events_text = NULL;
  const char *text;
  const char *secrets[] = { SECRET_PATH, "127.0.0.1", port1, port2, "forbidden", NULL };
  guint8 code;
  guint from = 0;

  socket = socks_open (proc->port, args);
  assert_echo (socket, 2000);
  g_assert_null (socks_connect (proc->port, refused_args, &code));
  g_assert_null (socks_connect (proc->port, tls_args, &code));
  g_assert_null (socks_connect (proc->port, forbidden_args, &code));
  g_assert_null (socks_connect (proc->port, "url=http://127.0.0.1" SECRET_PATH, &code));
  g_clear_object (&socket);
  /* Let every queued change and counter update go out. */
  g_assert_true (wait_for_change (signals, TRANSPORT_PATH, "'BytesReceived': <uint64 2000>", &from));
  pause_ms (1500);

  g_assert_cmpuint (signals->len, >, 10);
  assert_no_secret_in_signals (signals, secrets);

  /* The URL is there for whoever asks... */
  {
    g_autofree char *path = find_bridge (proc->name, url);

    g_assert_nonnull (path);
  }
  diagnostics = call (proc->name, TRANSPORT_PATH, TRANSPORT_IFACE, "GetDiagnostics", g_variant_new ("(b)", TRUE),
                      G_VARIANT_TYPE ("(s)"));
  g_variant_get (diagnostics, "(&s)", &text);
  g_assert_nonnull (strstr (text, url));
  g_clear_pointer (&diagnostics, g_variant_unref);
  /* ...but a redacted report has no URL or address. */
  diagnostics = call (proc->name, TRANSPORT_PATH, TRANSPORT_IFACE, "GetDiagnostics", g_variant_new ("(b)", FALSE),
                      G_VARIANT_TYPE ("(s)"));
  g_variant_get (diagnostics, "(&s)", &text);
  g_assert_nonnull (strstr (text, "bridges: 4"));
  for (guint j = 0; secrets[j] != NULL; j++)
    g_assert_null (strstr (text, secrets[j]));

  /* With unsafe logging the events do name the bridge (so the check
   * above was not vacuous), but only in replies. */
  events = call (proc->name, TRANSPORT_PATH, TRANSPORT_IFACE, "GetRecentEvents", NULL,
                 G_VARIANT_TYPE ("(a(xus))"));
  events_text = g_variant_print (events, FALSE);
  g_assert_nonnull (strstr (events_text, "cannot open WebSocket"));
  if (unsafe)
    g_assert_nonnull (strstr (events_text, SECRET_PATH));
  else
    g_assert_null (strstr (events_text, SECRET_PATH));

  g_dbus_connection_signal_unsubscribe (bus, id);
  proc_stop (proc);
}

static void
test_privacy (void)
{
  run_privacy (FALSE);
}

static void
test_privacy_unsafe_logging (void)
{
  run_privacy (TRUE);
}

/* ---- events ------------------------------------------------------------ */

static gboolean
has_dial_failure_event (GPtrArray *signals)
{
  for (guint i = 0; i < signals->len; i++)
    {
      Signal *signal = g_ptr_array_index (signals, i);

      if (g_str_equal (signal->member, TRANSPORT_IFACE ".Event") &&
          strstr (signal->params, "cannot open WebSocket") != NULL &&
          strstr (signal->params, "uint32 1,") != NULL)
        return TRUE;
    }
  return FALSE;
}

static void
test_events (void)
{
  g_autoptr(GPtrArray) signals = g_ptr_array_new_with_free_func ((GDestroyNotify) signal_free);
  guint id = record_signals (signals);
  Proc *proc = proc_start ((const char *[]) { "--client", NULL });
  g_autoptr(GVariant) events = NULL;
  g_autoptr(GVariant) list = NULL;
  g_autofree char *args = g_strdup_printf ("url=ws://127.0.0.1:%u/", twp_test_refusing_port ());
  guint8 code;

  g_assert_null (socks_connect (proc->port, args, &code));
  g_assert_cmpuint (code, ==, 5);
  TWP_TEST_ASSERT_WAIT (has_dial_failure_event (signals), DEADLINE_MS, "the dial failure's Event signal");

  events = call (proc->name, TRANSPORT_PATH, TRANSPORT_IFACE, "GetRecentEvents", NULL,
                 G_VARIANT_TYPE ("(a(xus))"));
  list = g_variant_get_child_value (events, 0);
  g_assert_cmpuint (g_variant_n_children (list), >=, 2);
  g_assert_cmpuint (g_variant_n_children (list), <=, 100);
  {
    gint64 time = 0;
    guint32 severity = 0;
    const char *message = NULL;
    gsize i;

    /* The dial failure, the newest such event (an info event, such as the
     * SOCKS connection's end, may come after it). */
    for (i = g_variant_n_children (list); i > 0; i--)
      {
        g_variant_get_child (list, i - 1, "(xu&s)", &time, &severity, &message);
        if (strstr (message, "cannot open WebSocket") != NULL)
          break;
      }
    g_assert_cmpuint (i, >, 0);
    g_assert_cmpint (time, >, 1600000000);
    g_assert_cmpuint (severity, ==, 1);
  }

  /* The ring is bounded. */
  for (guint i = 0; i < 110; i++)
    {
      g_autoptr(GError) error = NULL;

      g_assert_true (set_frame_mode (proc->name, i % 2 ? "binary" : "base64", &error));
    }
  g_clear_pointer (&events, g_variant_unref);
  g_clear_pointer (&list, g_variant_unref);
  events = call (proc->name, TRANSPORT_PATH, TRANSPORT_IFACE, "GetRecentEvents", NULL,
                 G_VARIANT_TYPE ("(a(xus))"));
  list = g_variant_get_child_value (events, 0);
  g_assert_cmpuint (g_variant_n_children (list), ==, 100);

  g_dbus_connection_signal_unsubscribe (bus, id);
  proc_stop (proc);
}

/* ---- text from outside is valid UTF-8 ---------------------------------- */

static gboolean
find_event (GPtrArray  *signals,
            const char *needle)
{
  for (guint i = 0; i < signals->len; i++)
    {
      Signal *signal = g_ptr_array_index (signals, i);

      if (g_str_equal (signal->member, TRANSPORT_IFACE ".Event") && strstr (signal->params, needle) != NULL)
        return TRUE;
    }
  return FALSE;
}

/* Issue 11 item 4: a SOCKS username with invalid UTF-8 used to reach the
 * Event signal as it was (a critical, fatal with G_DEBUG=fatal-criticals),
 * turned GetDiagnostics into "[Invalid UTF-8]" and emptied
 * LastFailureDetails. Now every byte that is no UTF-8 is escaped as \xNN
 * where outside text enters the transport's state. */
static void
test_invalid_utf8 (void)
{
  static const char username[] = "\xff\xfe=\xc0\xaf";
  static const char escaped[] = "unknown bridge argument \"\\xff\\xfe\"";
  g_autoptr(GPtrArray) signals = g_ptr_array_new_with_free_func ((GDestroyNotify) signal_free);
  guint id = record_signals (signals);
  g_autoptr(GSubprocessLauncher) launcher = launcher_new ();
  g_autoptr(GVariant) events = NULL;
  g_autoptr(GVariant) list = NULL;
  g_autofree char *details = NULL;
  Proc *proc;
  guint8 code;

  g_subprocess_launcher_setenv (launcher, "G_DEBUG", "gc-friendly,fatal-warnings,fatal-criticals", TRUE);
  proc = proc_start_full (launcher, (const char *[]) { "--client", NULL }, TRUE);

  /* Refused at authentication, as every bad argument (C10). */
  g_assert_null (socks_connect (proc->port, username, &code));
  g_assert_cmpuint (code, ==, 0xff);

  /* The Event signal arrives, escaped (g_variant_print doubles the
   * backslash once more). */
  TWP_TEST_ASSERT_WAIT (find_event (signals, "unknown bridge argument"), DEADLINE_MS, "the Event signal");
  g_assert_true (find_event (signals, "unknown bridge argument \"\\\\xff\\\\xfe\""));

  events = call (proc->name, TRANSPORT_PATH, TRANSPORT_IFACE, "GetRecentEvents", NULL,
                 G_VARIANT_TYPE ("(a(xus))"));
  list = g_variant_get_child_value (events, 0);
  {
    gboolean found = FALSE;

    for (gsize i = 0; i < g_variant_n_children (list); i++)
      {
        const char *message;

        g_variant_get_child (list, i, "(xu&s)", NULL, NULL, &message);
        g_assert_true (g_utf8_validate (message, -1, NULL));
        found = found || strstr (message, escaped) != NULL;
      }
    g_assert_true (found);
  }

  /* The failure is reported with its details. */
  g_assert_cmpuint (get_uint (proc->name, TRANSPORT_PATH, TRANSPORT_IFACE, "LastFailureReason"), ==, 10);
  details = get_string (proc->name, TRANSPORT_PATH, TRANSPORT_IFACE, "LastFailureDetails");
  g_assert_nonnull (strstr (details, escaped));

  for (int unredacted = 0; unredacted <= 1; unredacted++)
    {
      g_autoptr(GVariant) reply = call (proc->name, TRANSPORT_PATH, TRANSPORT_IFACE, "GetDiagnostics",
                                        g_variant_new ("(b)", unredacted), G_VARIANT_TYPE ("(s)"));
      const char *text;

      g_variant_get (reply, "(&s)", &text);
      g_assert_true (g_utf8_validate (text, -1, NULL));
      g_assert_null (strstr (text, "[Invalid UTF-8]"));
      g_assert_nonnull (strstr (text, "last failure reason: bad-arguments"));
      g_assert_nonnull (strstr (text, escaped));
    }

  /* Still serving, and it exits cleanly: no critical aborted it. */
  {
    g_autofree char *args = g_strdup_printf ("url=ws://127.0.0.1:%u/ws", peers.port);
    g_autoptr(GSocket) socket = socks_open (proc->port, args);

    assert_echo (socket, 100);
  }
  g_dbus_connection_signal_unsubscribe (bus, id);
  proc_stop (proc);
}

/* ---- the bridge table ---------------------------------------------------- */

static guint
count_signals (GPtrArray  *signals,
               const char *member)
{
  guint n = 0;

  for (guint i = 0; i < signals->len; i++)
    {
      Signal *signal = g_ptr_array_index (signals, i);

      if (g_str_equal (signal->member, member) && g_str_equal (signal->path, ROOT_PATH))
        n++;
    }
  return n;
}

static guint
count_bridges (const char *name)
{
  g_autoptr(GPtrArray) paths = list_bridges (name);

  return paths->len;
}

static gboolean
has_bridge (const char *name,
            const char *url,
            const char *path)
{
  g_autofree char *found = find_bridge (name, url);

  return found != NULL && (path == NULL || g_str_equal (found, path));
}

static Proc *
proc_start_with_env (const char * const *extra,
                     const char * const *env)
{
  g_autoptr(GSubprocessLauncher) launcher = launcher_new ();

  for (guint i = 0; env[i] != NULL; i++)
    {
      g_autofree char *key = g_strndup (env[i], strcspn (env[i], "="));

      g_subprocess_launcher_setenv (launcher, key, strchr (env[i], '=') + 1, TRUE);
    }
  return proc_start_full (launcher, extra, TRUE);
}

/* Issue 11 item 3: the bridge objects follow the bounded table; the ones
 * it forgets leave the bus (InterfacesRemoved). */
static void
test_bridges_bounded (void)
{
  g_autoptr(GPtrArray) signals = g_ptr_array_new_with_free_func ((GDestroyNotify) signal_free);
  guint id = record_signals (signals);
  Proc *proc = proc_start_with_env ((const char *[]) { "--client", NULL },
                                    (const char *[]) { "TWP_TEST_MAX_BRIDGES=8", NULL });
  guint16 closed = twp_test_refusing_port ();
  g_autoptr(GPtrArray) paths = NULL;

  for (guint i = 0; i < 40; i++)
    {
      g_autofree char *args = g_strdup_printf ("url=ws://127.0.0.1:%u/line-%u", closed, i);
      guint8 code;

      g_assert_null (socks_connect (proc->port, args, &code));
      g_assert_cmpuint (code, ==, 5);
    }
  paths = list_bridges (proc->name);
  g_assert_cmpuint (paths->len, ==, 8);
  /* The newest eight stay: each new line pushed out the least recently
   * used idle one. */
  for (guint i = 32; i < 40; i++)
    {
      g_autofree char *url = g_strdup_printf ("ws://127.0.0.1:%u/line-%u", closed, i);
      g_autofree char *path = find_bridge (proc->name, url);

      g_assert_nonnull (path);
    }
  TWP_TEST_ASSERT_WAIT (count_signals (signals, "org.freedesktop.DBus.ObjectManager.InterfacesRemoved") >= 32,
                        DEADLINE_MS, "32 bridges to go");
  g_assert_cmpuint (count_signals (signals, "org.freedesktop.DBus.ObjectManager.InterfacesAdded"),
                    ==, 40);
  g_assert_cmpuint (count_signals (signals, "org.freedesktop.DBus.ObjectManager.InterfacesRemoved"),
                    ==, 32);

  g_dbus_connection_signal_unsubscribe (bus, id);
  proc_stop (proc);
}

/* A bridge no attempt or tunnel uses is forgotten after the idle time (10
 * minutes; 3 s here, long enough to look it up on a loaded machine), and
 * the failure it was showing goes with it. */
static void
test_bridges_expire (void)
{
  Proc *proc = proc_start_with_env ((const char *[]) { "--client", NULL },
                                    (const char *[]) { "TWP_TEST_BRIDGE_IDLE_MS=3000", NULL });
  g_autofree char *failing_url = g_strdup_printf ("ws://127.0.0.1:%u/", twp_test_refusing_port ());
  g_autofree char *failing_args = g_strdup_printf ("url=%s", failing_url);
  g_autofree char *good_url = g_strdup_printf ("ws://127.0.0.1:%u/ws", peers.port);
  g_autofree char *good_args = g_strdup_printf ("url=%s", good_url);
  g_autofree char *failing_path = NULL;
  g_autofree char *good_path = NULL;
  g_autoptr(GSocket) tunnel = NULL;
  guint8 code;

  tunnel = socks_open (proc->port, good_args);
  g_assert_null (socks_connect (proc->port, failing_args, &code));
  failing_path = find_bridge (proc->name, failing_url);
  good_path = find_bridge (proc->name, good_url);
  g_assert_nonnull (failing_path);
  g_assert_nonnull (good_path);
  g_assert_cmpuint (get_uint (proc->name, TRANSPORT_PATH, TRANSPORT_IFACE, "State"), ==, 50);   /* degraded */

  /* The failing bridge goes; the one carrying a tunnel stays, however
   * long that takes. */
  TWP_TEST_ASSERT_WAIT (!has_bridge (proc->name, failing_url, NULL), DEADLINE_MS, "the failing bridge to go");
  g_assert_false (has_bridge (proc->name, failing_url, NULL));
  g_assert_cmpuint (get_uint (proc->name, TRANSPORT_PATH, TRANSPORT_IFACE, "State"), ==, 40);   /* connected */
  pause_ms (3500);
  assert_echo (tunnel, 100);
  g_assert_true (has_bridge (proc->name, good_url, good_path));

  /* Once its tunnel ends, it is idle too and goes. */
  g_clear_object (&tunnel);
  TWP_TEST_ASSERT_WAIT (count_bridges (proc->name) == 0, DEADLINE_MS, "the idle bridge to go");
  g_assert_cmpuint (count_bridges (proc->name), ==, 0);
  g_assert_cmpuint (get_uint (proc->name, TRANSPORT_PATH, TRANSPORT_IFACE, "State"), ==, 20);   /* ready */

  /* Asked for again, it comes back, at the same path (a hash of the line). */
  tunnel = socks_open (proc->port, good_args);
  g_assert_true (has_bridge (proc->name, good_url, good_path));
  g_clear_object (&tunnel);
  proc_stop (proc);
}

/* ---- the stored frame mode --------------------------------------------- */

static void
test_stored_mode (void)
{
  g_autofree char *config = g_dir_make_tmp ("twp-dbus-config-XXXXXX", NULL);
  g_autofree char *keyfile = g_build_filename (config, "glib-2.0", "settings", "keyfile", NULL);
  g_autofree char *settings_dir = g_build_filename (config, "glib-2.0", "settings", NULL);
  g_autofree char *glib_dir = g_build_filename (config, "glib-2.0", NULL);
  g_autoptr(GSubprocessLauncher) launcher = launcher_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *mode = NULL;
  g_autofree char *contents = NULL;
  Proc *proc;

  g_subprocess_launcher_setenv (launcher, "GSETTINGS_BACKEND", "keyfile", TRUE);
  g_subprocess_launcher_setenv (launcher, "GSETTINGS_SCHEMA_DIR", g_getenv ("TWP_TEST_SCHEMA_DIR"), TRUE);
  g_subprocess_launcher_setenv (launcher, "XDG_CONFIG_HOME", config, TRUE);

  proc = proc_start_full (launcher, (const char *[]) { "--client", NULL }, TRUE);
  mode = get_string (proc->name, TRANSPORT_PATH, TRANSPORT_IFACE, "FrameMode");
  g_assert_cmpstr (mode, ==, "binary");
  g_assert_true (set_frame_mode (proc->name, "base64", &error));
  g_assert_no_error (error);
  proc_stop (proc);
  g_file_get_contents (keyfile, &contents, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (strstr (contents, "frame-mode='base64'"));

  /* The choice outlives the process... */
  proc = proc_start_full (launcher, (const char *[]) { "--client", NULL }, TRUE);
  g_clear_pointer (&mode, g_free);
  mode = get_string (proc->name, TRANSPORT_PATH, TRANSPORT_IFACE, "FrameMode");
  g_assert_cmpstr (mode, ==, "base64");
  proc_stop (proc);

  /* ...and --mode overrides it. */
  proc = proc_start_full (launcher, (const char *[]) { "--client", "--mode", "binary", NULL }, TRUE);
  g_clear_pointer (&mode, g_free);
  mode = get_string (proc->name, TRANSPORT_PATH, TRANSPORT_IFACE, "FrameMode");
  g_assert_cmpstr (mode, ==, "binary");
  proc_stop (proc);

  /* Without the schema, the transport runs with binary. */
  g_subprocess_launcher_setenv (launcher, "GSETTINGS_SCHEMA_DIR", config, TRUE);
  proc = proc_start_full (launcher, (const char *[]) { "--client", NULL }, TRUE);
  g_clear_pointer (&mode, g_free);
  mode = get_string (proc->name, TRANSPORT_PATH, TRANSPORT_IFACE, "FrameMode");
  g_assert_cmpstr (mode, ==, "binary");
  proc_stop (proc);

  g_remove (keyfile);
  g_rmdir (settings_dir);
  g_rmdir (glib_dir);
  g_rmdir (config);
}

/* ---- no session bus ---------------------------------------------------- */

static void
test_no_bus (void)
{
  g_autofree char *runtime = g_dir_make_tmp ("twp-dbus-runtime-XXXXXX", NULL);
  g_autofree char *bin = g_dir_make_tmp ("twp-dbus-bin-XXXXXX", NULL);
  g_autofree char *fake = g_build_filename (bin, "dbus-launch", NULL);
  g_autofree char *marker = g_build_filename (bin, "autolaunched", NULL);
  g_autofree char *script = g_strdup_printf ("#!/bin/sh\ntouch '%s'\nexit 1\n", marker);
  g_autofree char *path = g_strdup_printf ("%s:%s", bin, g_getenv ("PATH"));
  g_autofree char *url = g_strdup_printf ("ws://127.0.0.1:%u/ws", peers.port);
  g_autoptr(GSubprocessLauncher) launcher = launcher_new ();
  g_autoptr(GSubprocess) control = NULL;
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) names = NULL;
  Proc *proc;

  g_file_set_contents (fake, script, -1, &error);
  g_assert_no_error (error);
  g_assert_cmpint (g_chmod (fake, 0755), ==, 0);
  g_subprocess_launcher_unsetenv (launcher, "DBUS_SESSION_BUS_ADDRESS");
  g_subprocess_launcher_setenv (launcher, "XDG_RUNTIME_DIR", runtime, TRUE);
  g_subprocess_launcher_setenv (launcher, "DISPLAY", ":99", TRUE);
  g_subprocess_launcher_setenv (launcher, "PATH", path, TRUE);

  /* The trap works: a plain GLib client in this environment autolaunches. */
  control = g_subprocess_launcher_spawn (launcher, &error, "gdbus", "introspect", "--session", "--dest",
                                         "org.freedesktop.DBus", "--object-path", "/", NULL);
  g_assert_no_error (error);
  g_subprocess_wait (control, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_file_test (marker, G_FILE_TEST_EXISTS));
  g_remove (marker);

  proc = proc_start_full (launcher, (const char *[]) { "--client", "--url", url, NULL }, FALSE);
  socket = socks_open (proc->port, NULL);
  assert_echo (socket, 4000);
  g_clear_object (&socket);
  pause_ms (300);
  g_assert_false (g_file_test (marker, G_FILE_TEST_EXISTS));
  /* Nothing was published on our bus either. */
  names = list_instance_names ();
  g_assert_false (g_strv_contains ((const char * const *) names, proc->name));
  proc_stop (proc);
  g_assert_false (g_file_test (marker, G_FILE_TEST_EXISTS));

  g_remove (fake);
  g_rmdir (bin);
  g_rmdir (runtime);
}

/* The bus found through $XDG_RUNTIME_DIR/bus alone. */
static void
test_runtime_dir_bus (void)
{
  g_autofree char *runtime = g_dir_make_tmp ("twp-dbus-runtime-XXXXXX", NULL);
  g_autofree char *socket_path = g_build_filename (runtime, "bus", NULL);
  g_autofree char *listen = g_strdup_printf ("--address=unix:path=%s", socket_path);
  g_autoptr(GSubprocess) daemon = NULL;
  g_autoptr(GSubprocessLauncher) launcher = launcher_new ();
  g_autoptr(GDBusConnection) other = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autofree char *address = NULL;
  g_autofree char *name = NULL;
  g_autoptr(GVariant) reply = NULL;
  gint64 deadline;
  gboolean has = FALSE;
  Proc *proc;

  daemon = g_subprocess_launcher_spawn (launcher, &error, "dbus-daemon", "--session", "--nofork",
                                        "--print-address=1", listen, NULL);
  g_assert_no_error (error);
  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (daemon));
  address = g_data_input_stream_read_line (out, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (address);

  g_subprocess_launcher_unsetenv (launcher, "DBUS_SESSION_BUS_ADDRESS");
  g_subprocess_launcher_setenv (launcher, "XDG_RUNTIME_DIR", runtime, TRUE);
  proc = proc_start_full (launcher, (const char *[]) { "--client", NULL }, FALSE);

  other = g_dbus_connection_new_for_address_sync (address, G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                                                  G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
                                                  NULL, NULL, &error);
  g_assert_no_error (error);
  name = g_strdup (proc->name);
  deadline = g_get_monotonic_time () + DEADLINE_S * G_USEC_PER_SEC;
  while (!has && g_get_monotonic_time () < deadline)
    {
      g_clear_pointer (&reply, g_variant_unref);
      reply = g_dbus_connection_call_sync (other, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                           "org.freedesktop.DBus", "NameHasOwner", g_variant_new ("(s)", name),
                                           G_VARIANT_TYPE ("(b)"), G_DBUS_CALL_FLAGS_NONE, -1, NULL, &error);
      g_assert_no_error (error);
      g_variant_get (reply, "(b)", &has);
      if (!has)
        g_usleep (20 * 1000);
    }
  g_assert_true (has);

  /* The bus going away costs the transport nothing. */
  g_dbus_connection_close_sync (other, NULL, NULL);
  g_subprocess_send_signal (daemon, SIGTERM);
  g_subprocess_wait (daemon, NULL, NULL);
  pause_ms (200);
  {
    g_autofree char *url = g_strdup_printf ("url=ws://127.0.0.1:%u/ws", peers.port);
    g_autoptr(GSocket) socket = socks_open (proc->port, url);

    assert_echo (socket, 1000);
  }
  proc_stop (proc);
  g_remove (socket_path);
  g_rmdir (runtime);
}

/* ---- a bus that refuses us or goes away -------------------------------- */

/* A private session bus whose policy denies our names, as an AppArmor
 * profile without our dbus rules or a strict bus policy would. */
static const char refusing_config[] =
  "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
  " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
  "<busconfig>\n"
  "  <type>session</type>\n"
  "  <listen>unix:tmpdir=%s</listen>\n"
  "  <auth>EXTERNAL</auth>\n"
  "  <policy context=\"default\">\n"
  "    <allow send_destination=\"*\" eavesdrop=\"true\"/>\n"
  "    <allow eavesdrop=\"true\"/>\n"
  "    <allow own=\"*\"/>\n"
  "    %s\n"
  "  </policy>\n"
  "</busconfig>\n";

typedef struct {
  GSubprocess *daemon;
  char *address;
  char *dir;
} PrivateBus;

static void
private_bus_start (PrivateBus *pb,
                   gboolean    deny_our_names)
{
  g_autoptr(GSubprocessLauncher) launcher = launcher_new ();
  g_autoptr(GDataInputStream) out = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *config = NULL;
  g_autofree char *config_path = NULL;
  g_autofree char *config_arg = NULL;

  pb->dir = g_dir_make_tmp ("twp-dbus-private-XXXXXX", NULL);
  config = g_strdup_printf (refusing_config, pb->dir,
                            deny_our_names ? "<deny own_prefix=\"io.github.TorWebSocketProxy1\"/>" : "");
  config_path = g_build_filename (pb->dir, "bus.conf", NULL);
  g_file_set_contents (config_path, config, -1, &error);
  g_assert_no_error (error);
  config_arg = g_strdup_printf ("--config-file=%s", config_path);
  pb->daemon = g_subprocess_launcher_spawn (launcher, &error, "dbus-daemon", config_arg, "--nofork",
                                            "--print-address=1", NULL);
  g_assert_no_error (error);
  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (pb->daemon));
  pb->address = g_data_input_stream_read_line (out, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (pb->address);
  g_remove (config_path);
}

static void
private_bus_stop (PrivateBus *pb)
{
  if (pb->daemon != NULL)
    {
      g_subprocess_send_signal (pb->daemon, SIGTERM);
      g_subprocess_wait (pb->daemon, NULL, NULL);
      g_clear_object (&pb->daemon);
    }
  g_clear_pointer (&pb->address, g_free);
  g_rmdir (pb->dir);
  g_clear_pointer (&pb->dir, g_free);
}

typedef struct {
  char *line;
  gboolean done;
} LineRead;

static void
line_read_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  LineRead *read = user_data;

  read->line = g_data_input_stream_read_line_finish (G_DATA_INPUT_STREAM (source), result, NULL, NULL);
  read->done = TRUE;
}

/* The next stdout line, or NULL at EOF; fails the test past the deadline. */
static char *
read_line_before (GDataInputStream *out,
                  gint64            deadline)
{
  LineRead read = { NULL, FALSE };

  g_data_input_stream_read_line_async (out, G_PRIORITY_DEFAULT, NULL, line_read_cb, &read);
  while (!read.done)
    {
      if (g_get_monotonic_time () > deadline)
        g_error ("no line from the transport before the deadline");
      g_main_context_iteration (NULL, TRUE);
    }
  return read.line;
}

static int request_name_calls;

static GDBusMessage *
count_request_name_cb (GDBusConnection *connection,
                       GDBusMessage    *message,
                       gboolean         incoming,
                       gpointer         user_data)
{
  if (!incoming || g_dbus_message_get_message_type (message) != G_DBUS_MESSAGE_TYPE_METHOD_CALL)
    return message;
  if (g_strcmp0 (g_dbus_message_get_member (message), "RequestName") == 0)
    g_atomic_int_inc (&request_name_calls);
  /* Observed, not addressed to us: GDBus must not answer it, or the bus
   * closes the monitor. */
  g_object_unref (message);
  return NULL;
}

/* A managed client (as tor runs it) on @address. Waits for CMETHODS DONE;
 * returns the SOCKS port. */
static guint16
managed_start (const char        *address,
               const char        *log_level,
               GSubprocess      **process,
               GDataInputStream **out,
               char             **state_dir)
{
  g_autoptr(GSubprocessLauncher) launcher = launcher_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *level = g_strdup_printf ("--log-level=%s", log_level);
  gint64 deadline = g_get_monotonic_time () + DEADLINE_S * G_USEC_PER_SEC;
  guint16 port = 0;

  *state_dir = g_dir_make_tmp ("twp-dbus-state-XXXXXX", NULL);
  g_subprocess_launcher_setenv (launcher, "DBUS_SESSION_BUS_ADDRESS", address, TRUE);
  g_subprocess_launcher_setenv (launcher, "TOR_PT_MANAGED_TRANSPORT_VER", "1", TRUE);
  g_subprocess_launcher_setenv (launcher, "TOR_PT_CLIENT_TRANSPORTS", "websocket", TRUE);
  g_subprocess_launcher_setenv (launcher, "TOR_PT_STATE_LOCATION", *state_dir, TRUE);
  g_subprocess_launcher_setenv (launcher, "TOR_PT_EXIT_ON_STDIN_CLOSE", "0", TRUE);
  *process = g_subprocess_launcher_spawn (launcher, &error, g_getenv ("TWP_BINARY"), "--client", "--managed",
                                          level, NULL);
  g_assert_no_error (error);
  *out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (*process));
  while (TRUE)
    {
      g_autofree char *line = read_line_before (*out, deadline);

      g_assert_nonnull (line);
      if (g_str_has_prefix (line, "CMETHOD websocket socks5 127.0.0.1:"))
        port = (guint16) g_ascii_strtoull (strrchr (line, ':') + 1, NULL, 10);
      if (g_strcmp0 (line, "CMETHODS DONE") == 0)
        break;
    }
  g_assert_cmpuint (port, >, 0);
  return port;
}

/* Reads stdout until a line containing @needle; returns how many lines
 * containing "D-Bus status unavailable" it read on the way. */
static guint
read_until (GDataInputStream *out,
            const char       *needle)
{
  gint64 deadline = g_get_monotonic_time () + DEADLINE_S * G_USEC_PER_SEC;
  guint unavailable = 0;

  while (TRUE)
    {
      g_autofree char *line = read_line_before (out, deadline);

      if (line == NULL)
        {
          g_assert_null (needle);
          return unavailable;
        }
      g_assert_true (g_str_has_prefix (line, "LOG ") || g_str_has_prefix (line, "STATUS "));
      if (strstr (line, "D-Bus status unavailable") != NULL)
        unavailable++;
      if (needle != NULL && strstr (line, needle) != NULL)
        return unavailable;
    }
}

static void
managed_stop (GSubprocess      *process,
              GDataInputStream *out,
              char             *state_dir,
              guint            *unavailable)
{
  g_autofree char *command = g_strdup_printf ("rm -rf '%s'", state_dir);

  g_subprocess_send_signal (process, SIGTERM);
  /* Everything up to EOF: the refusal must not be repeated. */
  *unavailable += read_until (out, NULL);
  g_subprocess_wait (process, NULL, NULL);
  g_assert_true (g_subprocess_get_if_exited (process));
  g_assert_cmpint (g_subprocess_get_exit_status (process), ==, 0);
  g_assert_true (g_spawn_command_line_sync (command, NULL, NULL, NULL, NULL));
}

static void
test_bus_refuses_name (void)
{
  PrivateBus pb = { NULL, };
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autoptr(GDBusConnection) monitor = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *state_dir = NULL;
  g_autofree char *url = g_strdup_printf ("url=ws://127.0.0.1:%u/ws", peers.port);
  guint unavailable;
  guint16 port;

  private_bus_start (&pb, TRUE);
  /* Counts every RequestName the bus receives: no retry loop. */
  monitor = g_dbus_connection_new_for_address_sync (pb.address, G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                                                    G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
                                                    NULL, NULL, &error);
  g_assert_no_error (error);
  g_dbus_connection_add_filter (monitor, count_request_name_cb, NULL, NULL);
  reply = g_dbus_connection_call_sync (monitor, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                       "org.freedesktop.DBus.Monitoring", "BecomeMonitor",
                                       g_variant_new_parsed ("([\"type='method_call',member='RequestName'\"], @u 0)"),
                                       NULL, G_DBUS_CALL_FLAGS_NONE, -1, NULL, &error);
  g_assert_no_error (error);
  g_atomic_int_set (&request_name_calls, 0);

  port = managed_start (pb.address, "notice", &process, &out, &state_dir);
  /* Said once, at notice level (tor's default log shows it), with why. */
  unavailable = read_until (out, "D-Bus status unavailable");
  g_assert_cmpuint (unavailable, ==, 1);
  {
    g_autoptr(GSocket) socket = socks_open (port, url);

    assert_echo (socket, 4000);
  }
  /* A second tunnel after the refusal: still carried. */
  {
    g_autoptr(GSocket) socket = socks_open (port, url);

    assert_echo (socket, 1000);
  }
  managed_stop (process, out, state_dir, &unavailable);
  g_assert_cmpuint (unavailable, ==, 1);
  g_assert_cmpint (g_atomic_int_get (&request_name_calls), ==, 1);
  g_dbus_connection_close_sync (monitor, NULL, NULL);
  private_bus_stop (&pb);
}

static void
test_bus_goes_away_logged (void)
{
  PrivateBus pb = { NULL, };
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autofree char *state_dir = NULL;
  g_autofree char *url = g_strdup_printf ("url=ws://127.0.0.1:%u/ws", peers.port);
  guint unavailable;
  guint16 port;

  private_bus_start (&pb, FALSE);
  port = managed_start (pb.address, "info", &process, &out, &state_dir);
  unavailable = read_until (out, "published on the session bus as");
  g_assert_cmpuint (unavailable, ==, 0);
  g_subprocess_send_signal (pb.daemon, SIGTERM);
  g_subprocess_wait (pb.daemon, NULL, NULL);
  g_clear_object (&pb.daemon);
  unavailable = read_until (out, "D-Bus status unavailable: the session bus connection closed");
  g_assert_cmpuint (unavailable, ==, 1);
  {
    g_autoptr(GSocket) socket = socks_open (port, url);

    assert_echo (socket, 4000);
  }
  managed_stop (process, out, state_dir, &unavailable);
  g_assert_cmpuint (unavailable, ==, 1);
  private_bus_stop (&pb);
}

/* The bus that went away comes back at the same address (the session's
 * dbus-daemon restarted): the same transport process owns its name and
 * serves its objects there again, and the loss was said once. */
static void
test_bus_returns (void)
{
  g_autofree char *dir = g_dir_make_tmp ("twp-dbus-returns-XXXXXX", NULL);
  g_autofree char *socket_path = g_build_filename (dir, "bus", NULL);
  g_autofree char *address = g_strdup_printf ("unix:path=%s", socket_path);
  g_autoptr(GSubprocess) daemon = twp_test_bus_start (address);
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autoptr(GDBusConnection) connection = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *state_dir = NULL;
  g_autofree char *name = NULL;
  g_autofree char *url = g_strdup_printf ("url=ws://127.0.0.1:%u/ws", peers.port);
  guint unavailable;
  guint16 port;

  port = managed_start (address, "info", &process, &out, &state_dir);
  name = g_strdup_printf ("io.github.TorWebSocketProxy1.instance%s", g_subprocess_get_identifier (process));
  unavailable = read_until (out, "published on the session bus as");
  g_assert_cmpuint (unavailable, ==, 0);

  twp_test_bus_stop (daemon);
  g_clear_object (&daemon);
  unavailable = read_until (out, "D-Bus status unavailable: the session bus connection closed");
  g_assert_cmpuint (unavailable, ==, 1);
  {
    g_autoptr(GSocket) socket = socks_open (port, url);

    assert_echo (socket, 4000);
  }

  /* Its socket went with the old daemon: the new one binds the path. */
  daemon = twp_test_bus_start (address);
  unavailable += read_until (out, "D-Bus status available again");
  unavailable += read_until (out, "published on the session bus as");
  g_assert_cmpuint (unavailable, ==, 1);
  connection = g_dbus_connection_new_for_address_sync (address, G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                                                       G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
                                                       NULL, NULL, &error);
  g_assert_no_error (error);
  reply = g_dbus_connection_call_sync (connection, name, "/io/github/TorWebSocketProxy1/Transport",
                                       "org.freedesktop.DBus.Properties", "Get",
                                       g_variant_new ("(ss)", "io.github.TorWebSocketProxy1.Transport", "Role"),
                                       G_VARIANT_TYPE ("(v)"), G_DBUS_CALL_FLAGS_NONE, DEADLINE_S * 1000, NULL,
                                       &error);
  g_assert_no_error (error);
  {
    g_autoptr(GVariant) role = NULL;

    g_variant_get (reply, "(v)", &role);
    g_assert_cmpstr (g_variant_get_string (role, NULL), ==, "client");
  }
  g_dbus_connection_close_sync (connection, NULL, NULL);

  managed_stop (process, out, state_dir, &unavailable);
  g_assert_cmpuint (unavailable, ==, 1);
  twp_test_bus_stop (daemon);
  g_remove (socket_path);
  g_rmdir (dir);
}

/* LeakSanitizer checks the transports this test runs (each must exit 0),
 * not the test itself: libsoup 3.2 keeps server-side WebSocket connections
 * (and their sockets) alive on close timers past the end of the test. */
int __lsan_is_turned_off (void);

int
__lsan_is_turned_off (void)
{
  return 1;
}

/* Sends @request to a transport on 127.0.0.1:@port and reads its answer
 * to the end (the server is another process: blocking is safe, and the
 * socket's timeout bounds each call). */
static char *
http_exchange (guint16     port,
               const char *request)
{
  g_autoptr(GSocketConnectable) address = g_network_address_new ("127.0.0.1", port);

  return twp_test_request (address, request, DEADLINE_S);
}

/* A server's report carries the operator's counters (issue 16): the same
 * as its metrics endpoint, for whoever has a session bus. */
static void
test_server_counters (void)
{
  /* Port 9 (discard) has no tor behind it. */
  Proc *proc = proc_start ((const char *[]) { "--server", "--orport", "127.0.0.1:9", NULL });
  g_autoptr(GVariant) diagnostics = NULL;
  g_autofree char *answer = NULL;
  const char *text;

  answer = http_exchange (proc->port, "GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n");
  g_assert_true (g_str_has_prefix (answer, "HTTP/1.1 404 "));
  g_clear_pointer (&answer, g_free);
  answer = http_exchange (proc->port, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                                      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                      "Sec-WebSocket-Version: 13\r\n\r\n");
  g_assert_true (g_str_has_prefix (answer, "HTTP/1.1 503 "));

  diagnostics = call (proc->name, TRANSPORT_PATH, TRANSPORT_IFACE, "GetDiagnostics", g_variant_new ("(b)", FALSE),
                      G_VARIANT_TYPE ("(s)"));
  g_variant_get (diagnostics, "(&s)", &text);
  g_test_message ("%s", text);
  g_assert_nonnull (strstr (text, "\nserver counters:\nconnections: 0 open (cap 16384), 2 accepted\n"));
  g_assert_nonnull (strstr (text, "\nhandshakes refused: 2 (not_websocket 1, tor_unavailable 1)\n"));
  g_assert_nonnull (strstr (text, "\nExtORPort failures: connect 1\n"));
  g_assert_nonnull (strstr (text, "\nhandshakes completed: 0\n"));
  {
    /* The counters name no address (the events below them may name
     * tor's own ORPort). */
    const char *start = strstr (text, "\nserver counters:\n");
    const char *end = strstr (text, "\nrecent events:");
    g_autofree char *counters = NULL;

    g_assert_nonnull (start);
    g_assert_nonnull (end);
    counters = g_strndup (start, end - start);
    g_assert_null (strstr (counters, "127.0.0.1"));
    g_assert_null (strstr (counters, ":9"));
  }
  proc_stop (proc);
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(GError) error = NULL;
  int status;

  g_test_init (&argc, &argv, NULL);

  if (g_getenv ("TWP_BINARY") == NULL || g_getenv ("DBUS_SESSION_BUS_ADDRESS") == NULL)
    {
      g_test_skip ("needs $TWP_BINARY and a private session bus (run under dbus-run-session)");
      return g_test_run ();
    }
  bus = g_dbus_connection_new_for_address_sync (g_getenv ("DBUS_SESSION_BUS_ADDRESS"),
                                                G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                                                G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
                                                NULL, NULL, &error);
  g_assert_no_error (error);
  peers_start ();

  g_test_add_func ("/dbus/introspection", test_introspection);
  g_test_add_func ("/dbus/two-instances", test_two_instances);
  g_test_add_func ("/dbus/name-taken", test_name_taken);
  g_test_add_func ("/dbus/live-transfer", test_live_transfer);
  g_test_add_func ("/dbus/failures", test_failures);
  g_test_add_func ("/dbus/frame-mode", test_frame_mode);
  g_test_add_func ("/dbus/events", test_events);
  g_test_add_func ("/dbus/invalid-utf8", test_invalid_utf8);
  g_test_add_func ("/dbus/bridges-bounded", test_bridges_bounded);
  g_test_add_func ("/dbus/bridges-expire", test_bridges_expire);
  g_test_add_func ("/dbus/privacy", test_privacy);
  g_test_add_func ("/dbus/privacy-unsafe-logging", test_privacy_unsafe_logging);
  g_test_add_func ("/dbus/stored-mode", test_stored_mode);
  g_test_add_func ("/dbus/no-bus", test_no_bus);
  g_test_add_func ("/dbus/runtime-dir-bus", test_runtime_dir_bus);
  g_test_add_func ("/dbus/server-counters", test_server_counters);
  g_test_add_func ("/dbus/bus-refuses-name", test_bus_refuses_name);
  g_test_add_func ("/dbus/bus-goes-away-logged", test_bus_goes_away_logged);
  g_test_add_func ("/dbus/bus-returns", test_bus_returns);
  status = g_test_run ();

  peers_stop ();
  g_dbus_connection_close_sync (bus, NULL, NULL);
  g_clear_object (&bus);
  return status;
}
