/* SPDX-License-Identifier: BSD-3-Clause */
/* Server integration tests: the real binary ($TWP_BINARY) is run the way
 * tor runs it (managed mode, pipes, pt-spec environment) against the
 * in-process ExtORPort of twp-test-extor-server.h, and attacked with
 * hand-built HTTP and WebSocket frames.
 *
 * Nothing here blocks the main context: the ExtORPort stand-in lives on it,
 * so every socket is non-blocking and every wait iterates the context
 * until its condition holds or its deadline passes (then the test fails). */
#define G_LOG_DOMAIN "twp-test-server"

#include "config.h"

#include <errno.h>
#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <glib/gstdio.h>
#include <gnutls/gnutls.h>
#include <libsoup/soup.h>
#include <signal.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "twp-extorport.h"
#include "twp-metrics-endpoint.h"
#include "twp-server-stats.h"
#include "twp-test-extor-server.h"

#if defined(__SANITIZE_ADDRESS__)
#define TWP_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TWP_TEST_SANITIZED 1
#endif
#endif
#ifndef TWP_TEST_SANITIZED
#define TWP_TEST_SANITIZED 0
#endif

/* RFC 6455 section 1.3's sample key and its accept value. */
#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
#define MIB (1024 * 1024)
/* Memory bound for the server under attack (VmRSS, KiB). */
#define RSS_LIMIT_KIB (64 * 1024)

/* ---- waiting with deadlines --------------------------------------------- */

static gboolean
flag_cb (gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
  return G_SOURCE_REMOVE;
}

/* Runs the main context (the ExtORPort stand-in) for @ms milliseconds. */
static void
iterate_for (guint ms)
{
  gboolean done = FALSE;

  g_timeout_add (ms, flag_cb, &done);
  while (!done)
    g_main_context_iteration (NULL, TRUE);
}

static gint64
deadline_in (guint ms)
{
  return g_get_monotonic_time () + (gint64) ms * 1000;
}

typedef gboolean (*Condition) (gpointer data);

static gboolean
wait_until (Condition condition,
            gpointer  data,
            guint     timeout_ms)
{
  gint64 deadline = deadline_in (timeout_ms);

  while (!condition (data))
    {
      if (g_get_monotonic_time () >= deadline)
        return FALSE;
      iterate_for (10);
    }
  return TRUE;
}

static gboolean
extor_saw_peer_close (gpointer data)
{
  return twp_test_extor_server_get_last_result (data) == TWP_TEST_EXTOR_RESULT_PEER_CLOSED;
}

static gboolean
socket_ready_cb (GSocket      *socket,
                 GIOCondition  condition,
                 gpointer      user_data)
{
  *(gboolean *) user_data = TRUE;
  return G_SOURCE_REMOVE;
}

/* Iterates the main context until @socket is ready for @condition (or hung
 * up) or @deadline passes. */
static gboolean
socket_wait (GSocket      *socket,
             GIOCondition  condition,
             gint64        deadline)
{
  gboolean ready = FALSE;
  gboolean timed_out = FALSE;
  GSource *source;
  GSource *timeout;
  gint64 now = g_get_monotonic_time ();

  if (now >= deadline)
    return g_socket_condition_check (socket, condition | G_IO_HUP | G_IO_ERR) != 0;
  source = g_socket_create_source (socket, condition | G_IO_HUP | G_IO_ERR, NULL);
  g_source_set_callback (source, G_SOURCE_FUNC (socket_ready_cb), &ready, NULL);
  g_source_attach (source, NULL);
  timeout = g_timeout_source_new ((deadline - now) / 1000 + 1);
  g_source_set_callback (timeout, flag_cb, &timed_out, NULL);
  g_source_attach (timeout, NULL);
  while (!ready && !timed_out)
    g_main_context_iteration (NULL, TRUE);
  g_source_destroy (source);
  g_source_unref (source);
  g_source_destroy (timeout);
  g_source_unref (timeout);
  return ready;
}

/* ---- files -------------------------------------------------------------- */

static void
remove_tree (const char *path)
{
  GDir *dir;
  const char *name;

  if (g_file_test (path, G_FILE_TEST_IS_DIR) && !g_file_test (path, G_FILE_TEST_IS_SYMLINK))
    {
      dir = g_dir_open (path, 0, NULL);
      if (dir != NULL)
        {
          while ((name = g_dir_read_name (dir)) != NULL)
            {
              g_autofree char *child = g_build_filename (path, name, NULL);

              remove_tree (child);
            }
          g_dir_close (dir);
        }
    }
  g_remove (path);
}

static char *
make_tmpdir (void)
{
  g_autoptr(GError) error = NULL;
  char *dir = g_dir_make_tmp ("twp-test-server-XXXXXX", &error);

  g_assert_no_error (error);
  return dir;
}

static guint16
pick_free_port (void)
{
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GSocketAddress) bound = NULL;
  g_autoptr(GError) error = NULL;
  guint16 port;

  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
  g_assert_no_error (error);
  address = g_inet_socket_address_new_from_string ("127.0.0.1", 0);
  g_socket_bind (socket, address, FALSE, &error);
  g_assert_no_error (error);
  bound = g_socket_get_local_address (socket, &error);
  g_assert_no_error (error);
  port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  g_socket_close (socket, NULL);
  return port;
}

/* ---- the binary under test ---------------------------------------------- */

typedef struct {
  GSubprocess *process;
  GDataInputStream *out;
  GCancellable *cancellable;
  GPtrArray *lines;              /* stdout, one string per line */
  guint n_pending;               /* async operations holding a pointer to us */
  gboolean out_eof;
  gboolean exited;
  guint16 port;                  /* from SMETHOD / CMETHOD */
} Proc;

static void proc_read_line (Proc *proc);

static void
proc_line_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  Proc *proc = user_data;
  g_autoptr(GError) error = NULL;
  char *line;

  proc->n_pending--;
  line = g_data_input_stream_read_line_finish (G_DATA_INPUT_STREAM (source), result, NULL, &error);
  if (line == NULL)
    {
      proc->out_eof = TRUE;
      return;
    }
  g_test_message ("pt stdout: %s", line);
  g_ptr_array_add (proc->lines, line);
  proc_read_line (proc);
}

static void
proc_read_line (Proc *proc)
{
  proc->n_pending++;
  g_data_input_stream_read_line_async (proc->out, G_PRIORITY_DEFAULT, proc->cancellable,
                                       proc_line_cb, proc);
}

static void
proc_wait_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  Proc *proc = user_data;

  proc->n_pending--;
  if (g_subprocess_wait_finish (G_SUBPROCESS (source), result, NULL))
    proc->exited = TRUE;
}

static const char *
binary_path (void)
{
  const char *binary = g_getenv ("TWP_BINARY");

  g_assert_nonnull (binary);
  return binary;
}

/* LeakSanitizer's tracer (clang 14, gcc 12) crashes at exit in processes
 * that used GnuTLS; tests of TLS turn leak detection off for the processes
 * they start. AddressSanitizer's other checks stay on. */
static gboolean spawn_without_leak_check;

static Proc *
proc_spawn (const char *role,
            char      **envp)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) env = g_strdupv (envp);
  const char *argv[] = { binary_path (), role, "--managed", NULL };
  Proc *proc = g_new0 (Proc, 1);

  if (spawn_without_leak_check)
    {
      const char *asan = g_environ_getenv (env, "ASAN_OPTIONS");
      g_autofree char *value = g_strconcat (asan != NULL ? asan : "", asan != NULL ? ":" : "",
                                            "detect_leaks=0", NULL);

      env = g_environ_setenv (env, "ASAN_OPTIONS", value, TRUE);
    }
  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  g_subprocess_launcher_set_environ (launcher, env);
  proc->process = g_subprocess_launcher_spawnv (launcher, argv, &error);
  g_assert_no_error (error);
  proc->cancellable = g_cancellable_new ();
  proc->lines = g_ptr_array_new_with_free_func (g_free);
  proc->out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (proc->process));
  g_data_input_stream_set_newline_type (proc->out, G_DATA_STREAM_NEWLINE_TYPE_LF);
  proc_read_line (proc);
  proc->n_pending++;
  g_subprocess_wait_async (proc->process, proc->cancellable, proc_wait_cb, proc);
  return proc;
}

static gboolean
proc_has_done_line (gpointer data)
{
  Proc *proc = data;

  if (proc->out_eof)
    return TRUE;
  for (guint i = 0; i < proc->lines->len; i++)
    {
      const char *line = g_ptr_array_index (proc->lines, i);

      if (g_str_equal (line, "SMETHODS DONE") || g_str_equal (line, "CMETHODS DONE"))
        return TRUE;
    }
  return FALSE;
}

/* Waits for "*METHODS DONE" and takes the port of the websocket method. */
static gboolean
proc_wait_done (Proc *proc)
{
  g_assert_true (wait_until (proc_has_done_line, proc, 10000));
  for (guint i = 0; i < proc->lines->len; i++)
    {
      const char *line = g_ptr_array_index (proc->lines, i);
      const char *address = NULL;
      guint64 port;

      if (g_str_has_prefix (line, "SMETHOD websocket 127.0.0.1:"))
        address = line + strlen ("SMETHOD websocket 127.0.0.1:");
      else if (g_str_has_prefix (line, "CMETHOD websocket socks5 127.0.0.1:"))
        address = line + strlen ("CMETHOD websocket socks5 127.0.0.1:");
      if (address != NULL)
        {
          g_autofree char *digits = g_strndup (address, strspn (address, "0123456789"));

          g_assert_true (g_ascii_string_to_unsigned (digits, 10, 1, 65535, &port, NULL));
          proc->port = port;
        }
    }
  return proc->port != 0;
}

static gboolean
proc_stdout_closed (gpointer data)
{
  return ((Proc *) data)->out_eof;
}

static gboolean
proc_exited (gpointer data)
{
  return ((Proc *) data)->exited;
}

static gboolean
proc_wait_exit (Proc  *proc,
                guint  timeout_ms)
{
  return wait_until (proc_exited, proc, timeout_ms);
}

static gboolean
proc_no_pending (gpointer data)
{
  return ((Proc *) data)->n_pending == 0;
}

/* G6: after *METHODS DONE only LOG and STATUS lines may follow (B1). */
static void
proc_assert_clean_after_done (Proc *proc)
{
  gboolean done = FALSE;

  for (guint i = 0; i < proc->lines->len; i++)
    {
      const char *line = g_ptr_array_index (proc->lines, i);

      if (done)
        g_assert_true (g_str_has_prefix (line, "LOG ") || g_str_has_prefix (line, "STATUS "));
      if (g_str_has_suffix (line, "METHODS DONE"))
        done = TRUE;
    }
}

static guint64
proc_rss_kib (Proc *proc)
{
  const char *pid = g_subprocess_get_identifier (proc->process);
  g_autofree char *path = NULL;
  g_autofree char *contents = NULL;
  const char *line;
  guint64 kib = 0;

  g_assert_nonnull (pid);
  path = g_strdup_printf ("/proc/%s/status", pid);
  g_assert_true (g_file_get_contents (path, &contents, NULL, NULL));
  line = strstr (contents, "\nVmRSS:");
  g_assert_nonnull (line);
  kib = g_ascii_strtoull (line + strlen ("\nVmRSS:"), NULL, 10);
  g_assert_cmpuint (kib, >, 0);
  return kib;
}

static void
proc_close_stdin (Proc *proc)
{
  g_output_stream_close (g_subprocess_get_stdin_pipe (proc->process), NULL, NULL);
}

static void
proc_free (Proc *proc)
{
  if (!proc->exited)
    {
      g_subprocess_force_exit (proc->process);
      g_assert_true (proc_wait_exit (proc, 5000));
    }
  g_cancellable_cancel (proc->cancellable);
  g_assert_true (wait_until (proc_no_pending, proc, 5000));
  g_clear_object (&proc->out);
  g_clear_object (&proc->process);
  g_clear_object (&proc->cancellable);
  g_ptr_array_unref (proc->lines);
  g_free (proc);
}

/* tor's way of stopping a PT: stdin EOF (K3), then it must be gone. */
static void
proc_stop (Proc *proc)
{
  proc_close_stdin (proc);
  g_assert_true (proc_wait_exit (proc, 5000));
  g_assert_true (g_subprocess_get_if_exited (proc->process));
  g_assert_cmpint (g_subprocess_get_exit_status (proc->process), ==, 0);
  proc_assert_clean_after_done (proc);
  proc_free (proc);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Proc, proc_free)

/* The environment tor gives a PT, minus anything TOR_PT_ we inherited. */
static char **
base_environ (void)
{
  g_auto(GStrv) inherited = g_get_environ ();
  GPtrArray *env = g_ptr_array_new ();

  for (char **item = inherited; *item != NULL; item++)
    if (!g_str_has_prefix (*item, "TOR_PT_"))
      g_ptr_array_add (env, g_strdup (*item));
  g_ptr_array_add (env, NULL);
  return (char **) g_ptr_array_free (env, FALSE);
}

static char **
server_environ (const char         *dir,
                TwpTestExtOrServer *extor,
                const char         *bindaddr,
                const char         *options)
{
  char **env = base_environ ();
  g_autofree char *state = g_build_filename (dir, "pt_state", "", NULL);
  g_autofree char *orport = g_strdup_printf ("127.0.0.1:%u", pick_free_port ());

  env = g_environ_setenv (env, "TOR_PT_MANAGED_TRANSPORT_VER", "1", TRUE);
  env = g_environ_setenv (env, "TOR_PT_SERVER_TRANSPORTS", "websocket", TRUE);
  env = g_environ_setenv (env, "TOR_PT_SERVER_BINDADDR",
                          bindaddr != NULL ? bindaddr : "websocket-127.0.0.1:0", TRUE);
  env = g_environ_setenv (env, "TOR_PT_ORPORT", orport, TRUE);
  env = g_environ_setenv (env, "TOR_PT_EXTENDED_SERVER_PORT", twp_test_extor_server_get_address (extor), TRUE);
  env = g_environ_setenv (env, "TOR_PT_AUTH_COOKIE_FILE", twp_test_extor_server_get_cookie_path (extor), TRUE);
  env = g_environ_setenv (env, "TOR_PT_STATE_LOCATION", state, TRUE);
  env = g_environ_setenv (env, "TOR_PT_EXIT_ON_STDIN_CLOSE", "1", TRUE);
  if (options != NULL)
    env = g_environ_setenv (env, "TOR_PT_SERVER_TRANSPORT_OPTIONS", options, TRUE);
  return env;
}

/* A bridge: the ExtORPort stand-in and the server binary in front of it. */
typedef struct {
  char *dir;
  TwpTestExtOrServer *extor;
  Proc *proc;
  guint16 port;
} Bridge;

static Bridge *
bridge_start (TwpTestExtOrMode  mode,
              const char       *options)
{
  Bridge *bridge = g_new0 (Bridge, 1);
  g_auto(GStrv) env = NULL;

  bridge->dir = make_tmpdir ();
  bridge->extor = twp_test_extor_server_new (bridge->dir, mode);
  env = server_environ (bridge->dir, bridge->extor, NULL, options);
  bridge->proc = proc_spawn ("--server", env);
  g_assert_true (proc_wait_done (bridge->proc));
  bridge->port = bridge->proc->port;
  return bridge;
}

static void
bridge_free (Bridge *bridge)
{
  if (bridge->proc != NULL)
    proc_stop (bridge->proc);
  twp_test_extor_server_free (bridge->extor);
  remove_tree (bridge->dir);
  g_free (bridge->dir);
  g_free (bridge);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Bridge, bridge_free)

/* ---- raw sockets -------------------------------------------------------- */

typedef struct {
  GSocket *socket;
  GByteArray *in;                /* received, not consumed */
  gboolean eof;                  /* EOF or reset: the peer closed */
  gboolean receive_while_sending;
  gboolean connected;            /* for non-blocking connects */
} Raw;

static gboolean raw_read_some (Raw    *raw,
                               gint64  deadline);

static Raw *
raw_try_connect (guint16   port,
                 GError  **error)
{
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new_from_string ("127.0.0.1", port);
  Raw *raw;

  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, error);
  if (socket == NULL)
    return NULL;
  /* The peers are other processes: a blocking connect cannot deadlock. */
  if (!g_socket_connect (socket, address, NULL, error))
    return NULL;
  g_socket_set_blocking (socket, FALSE);
  raw = g_new0 (Raw, 1);
  raw->socket = g_steal_pointer (&socket);
  raw->in = g_byte_array_new ();
  return raw;
}

static Raw *
raw_connect (guint16 port)
{
  g_autoptr(GError) error = NULL;
  Raw *raw = raw_try_connect (port, &error);

  g_assert_no_error (error);
  return raw;
}

/* A connection from @local_ip (any 127.0.0.0/8 address is this machine):
 * a second client address for per-address tests. */
static Raw *
raw_connect_from (guint16     port,
                  const char *local_ip)
{
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GSocketAddress) local = g_inet_socket_address_new_from_string (local_ip, 0);
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new_from_string ("127.0.0.1", port);
  g_autoptr(GError) error = NULL;
  Raw *raw;

  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
  g_assert_no_error (error);
  g_socket_bind (socket, local, FALSE, &error);
  g_assert_no_error (error);
  g_socket_connect (socket, address, NULL, &error);
  g_assert_no_error (error);
  g_socket_set_blocking (socket, FALSE);
  raw = g_new0 (Raw, 1);
  raw->socket = g_steal_pointer (&socket);
  raw->in = g_byte_array_new ();
  return raw;
}

static void
raw_free (Raw *raw)
{
  g_socket_close (raw->socket, NULL);
  g_object_unref (raw->socket);
  g_byte_array_unref (raw->in);
  g_free (raw);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Raw, raw_free)

static guint16
raw_local_port (Raw *raw)
{
  g_autoptr(GSocketAddress) address = g_socket_get_local_address (raw->socket, NULL);

  g_assert_nonnull (address);
  return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (address));
}

/* Sends everything or fails (error, or @deadline passed). */
static gboolean
raw_send_until (Raw         *raw,
                const void  *data,
                gsize        len,
                gint64       deadline,
                GError     **error)
{
  gsize sent = 0;

  while (sent < len)
    {
      g_autoptr(GError) local_error = NULL;
      gssize n = g_socket_send (raw->socket, (const char *) data + sent, len - sent, NULL, &local_error);

      if (n >= 0)
        {
          sent += n;
          continue;
        }
      if (!g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        {
          g_propagate_error (error, g_steal_pointer (&local_error));
          return FALSE;
        }
      /* Read while we wait, as a browser would: a peer whose data we did
       * not take could not send us its close frame. */
      if (!socket_wait (raw->socket,
                        raw->receive_while_sending && !raw->eof ? G_IO_OUT | G_IO_IN : G_IO_OUT,
                        deadline))
        {
          g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "send timed out");
          return FALSE;
        }
      if (raw->receive_while_sending && !raw->eof &&
          g_socket_condition_check (raw->socket, G_IO_IN | G_IO_HUP | G_IO_ERR) != 0)
        raw_read_some (raw, g_get_monotonic_time ());
    }
  return TRUE;
}

static void
raw_send (Raw        *raw,
          const void *data,
          gsize       len)
{
  g_autoptr(GError) error = NULL;

  raw_send_until (raw, data, len, deadline_in (10000), &error);
  g_assert_no_error (error);
}

static void
raw_send_str (Raw        *raw,
              const char *text)
{
  raw_send (raw, text, strlen (text));
}

/* Reads once; FALSE when nothing arrived before @deadline. */
static gboolean
raw_read_some (Raw    *raw,
               gint64  deadline)
{
  guint8 buf[65536];

  if (raw->eof)
    return TRUE;
  for (;;)
    {
      g_autoptr(GError) error = NULL;
      gssize n = g_socket_receive (raw->socket, (char *) buf, sizeof buf, NULL, &error);

      if (n > 0)
        {
          g_byte_array_append (raw->in, buf, n);
          return TRUE;
        }
      if (n == 0 || !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        {
          /* EOF or reset: either way the server closed. */
          raw->eof = TRUE;
          return TRUE;
        }
      if (!socket_wait (raw->socket, G_IO_IN, deadline))
        return FALSE;
    }
}

static gboolean
raw_fill (Raw    *raw,
          gsize   want,
          gint64  deadline)
{
  while (raw->in->len < want && !raw->eof)
    if (!raw_read_some (raw, deadline))
      return FALSE;
  return raw->in->len >= want;
}

/* TRUE once the peer closed (reads are discarded). */
static gboolean
raw_wait_eof (Raw   *raw,
              guint  timeout_ms)
{
  gint64 deadline = deadline_in (timeout_ms);

  while (!raw->eof)
    {
      if (!raw_read_some (raw, deadline))
        return FALSE;
      g_byte_array_set_size (raw->in, 0);
    }
  return TRUE;
}

/* The HTTP response head, terminator included, or NULL. */
static char *
raw_read_head (Raw   *raw,
               guint  timeout_ms)
{
  gint64 deadline = deadline_in (timeout_ms);

  for (;;)
    {
      const guint8 *end = raw->in->len >= 4 ? memmem (raw->in->data, raw->in->len, "\r\n\r\n", 4) : NULL;

      if (end != NULL)
        {
          gsize len = end + 4 - raw->in->data;
          char *head = g_strndup ((const char *) raw->in->data, len);

          g_byte_array_remove_range (raw->in, 0, len);
          return head;
        }
      if (raw->eof || !raw_read_some (raw, deadline))
        return NULL;
    }
}

static guint
http_status (const char *head)
{
  guint status = 0;

  if (sscanf (head, "HTTP/1.1 %u ", &status) != 1)
    return 0;
  return status;
}

/* The value of header @name (lower case) in @head, or NULL. */
static char *
http_header (const char *head,
             const char *name)
{
  g_autofree char *lower = g_ascii_strdown (head, -1);
  g_autofree char *needle = g_strdup_printf ("\r\n%s:", name);
  const char *found = strstr (lower, needle);
  const char *value;

  if (found == NULL)
    return NULL;
  value = head + (found - lower) + strlen (needle);
  while (*value == ' ' || *value == '\t')
    value++;
  return g_strndup (value, strcspn (value, "\r\n"));
}

/* ---- WebSocket frames --------------------------------------------------- */

/* Appends a frame header; masked frames get a random key, returned in
 * @mask for the payload. */
static void
frame_append_header (GByteArray *out,
                     guint8      first_byte,
                     gboolean    masked,
                     guint64     len,
                     guint8      mask[4])
{
  guint8 header[14];
  gsize n = 0;
  guint8 mask_bit = masked ? 0x80 : 0x00;

  header[n++] = first_byte;
  if (len < 126)
    header[n++] = mask_bit | (guint8) len;
  else if (len <= 0xffff)
    {
      header[n++] = mask_bit | 126;
      header[n++] = len >> 8;
      header[n++] = len & 0xff;
    }
  else
    {
      header[n++] = mask_bit | 127;
      for (int shift = 56; shift >= 0; shift -= 8)
        header[n++] = (len >> shift) & 0xff;
    }
  if (masked)
    {
      guint32 key = g_random_int ();

      memcpy (mask, &key, 4);
      memcpy (header + n, mask, 4);
      n += 4;
    }
  g_byte_array_append (out, header, n);
}

static void
frame_append (GByteArray *out,
              guint8      first_byte,
              gboolean    masked,
              const void *payload,
              gsize       len)
{
  guint8 mask[4] = { 0 };
  gsize start;

  frame_append_header (out, first_byte, masked, len, mask);
  start = out->len;
  g_byte_array_append (out, payload, len);
  if (masked)
    for (gsize i = 0; i < len; i++)
      out->data[start + i] ^= mask[i % 4];
}

/* A whole masked frame from the client side. */
static void
raw_send_frame (Raw        *raw,
                guint8      first_byte,
                const void *payload,
                gsize       len)
{
  g_autoptr(GByteArray) frame = g_byte_array_new ();

  frame_append (frame, first_byte, TRUE, payload, len);
  raw_send (raw, frame->data, frame->len);
}

static void
raw_send_close (Raw     *raw,
                guint16  code)
{
  guint8 payload[2] = { code >> 8, code & 0xff };

  raw_send_frame (raw, 0x88, payload, sizeof payload);
}

/* Reads one server frame. Server frames must not be masked (RFC 6455 5.1). */
static gboolean
raw_read_frame (Raw     *raw,
                gint64   deadline,
                guint8  *first_byte,
                GBytes **payload)
{
  gsize header_len = 2;
  guint64 len;

  if (!raw_fill (raw, 2, deadline))
    return FALSE;
  g_assert_cmpuint (raw->in->data[1] & 0x80, ==, 0);
  len = raw->in->data[1] & 0x7f;
  if (len == 126)
    header_len += 2;
  else if (len == 127)
    header_len += 8;
  if (!raw_fill (raw, header_len, deadline))
    return FALSE;
  if (len == 126)
    len = (raw->in->data[2] << 8) | raw->in->data[3];
  else if (len == 127)
    {
      len = 0;
      for (guint i = 0; i < 8; i++)
        len = (len << 8) | raw->in->data[2 + i];
    }
  /* We never ask for more than this; the server sends 16 KiB messages. */
  g_assert_cmpuint (len, <=, 1 * MIB);
  if (!raw_fill (raw, header_len + len, deadline))
    return FALSE;
  *first_byte = raw->in->data[0];
  *payload = g_bytes_new (raw->in->data + header_len, len);
  g_byte_array_remove_range (raw->in, 0, header_len + len);
  return TRUE;
}

/* Reads frames until the server's close frame; asserts its status, then
 * that the server drops the TCP connection (a clean close). */
static void
raw_expect_close (Raw     *raw,
                  guint16  code)
{
  gint64 deadline = deadline_in (10000);

  for (;;)
    {
      guint8 first_byte;
      g_autoptr(GBytes) payload = NULL;
      const guint8 *data;
      gsize len;

      if (!raw_read_frame (raw, deadline, &first_byte, &payload))
        g_error ("no close frame (%s; %u bytes pending, first %02x)", raw->eof ? "closed" : "timed out",
                 raw->in->len, raw->in->len > 0 ? raw->in->data[0] : 0);
      if ((first_byte & 0x0f) != 0x8)
        continue;
      g_assert_cmphex (first_byte, ==, 0x88);
      data = g_bytes_get_data (payload, &len);
      g_assert_cmpuint (len, >=, 2);
      g_assert_cmpuint ((data[0] << 8) | data[1], ==, code);
      break;
    }
  /* The server does not wait for our close frame after a protocol error. */
  g_assert_true (raw_wait_eof (raw, 7000));
}

/* Sends an upgrade request on @raw; asserts the status and, for 101, the
 * accept value. @extra_headers are complete "Name: value\r\n" lines. */
static Raw *
ws_upgrade (Raw         *raw,
            guint16      port,
            const char  *path,
            const char  *extra_headers,
            guint        expected_status,
            char       **head_out)
{
  g_autofree char *request = NULL;
  g_autofree char *head = NULL;

  request = g_strdup_printf ("GET %s HTTP/1.1\r\n"
                             "Host: 127.0.0.1:%u\r\n"
                             "Upgrade: websocket\r\n"
                             "Connection: Upgrade\r\n"
                             "Sec-WebSocket-Key: " WS_KEY "\r\n"
                             "Sec-WebSocket-Version: 13\r\n"
                             "%s"
                             "\r\n",
                             path, port, extra_headers != NULL ? extra_headers : "");
  raw_send_str (raw, request);
  head = raw_read_head (raw, 10000);
  g_assert_nonnull (head);
  g_assert_cmpuint (http_status (head), ==, expected_status);
  if (expected_status == 101)
    {
      g_autofree char *accept = http_header (head, "sec-websocket-accept");

      g_assert_cmpstr (accept, ==, WS_ACCEPT);
    }
  if (head_out != NULL)
    *head_out = g_steal_pointer (&head);
  return raw;
}

/* Opens a WebSocket by hand (see ws_upgrade ()). */
static Raw *
ws_open (guint16      port,
         const char  *path,
         const char  *extra_headers,
         guint        expected_status,
         char       **head_out)
{
  return ws_upgrade (raw_connect (port), port, path, extra_headers, expected_status, head_out);
}

/* TRUE when the server closed @raw without sending a byte. */
static gboolean
raw_closed_unanswered (Raw   *raw,
                       guint  timeout_ms)
{
  gint64 deadline = deadline_in (timeout_ms);

  while (!raw->eof)
    if (!raw_read_some (raw, deadline))
      return FALSE;
  return raw->in->len == 0;
}

/* TRUE while the server has neither closed @raw nor sent anything on it. */
static gboolean
raw_still_waiting (Raw *raw)
{
  return g_socket_condition_check (raw->socket, G_IO_IN | G_IO_HUP | G_IO_ERR) == 0;
}

static guint8 *
random_bytes (gsize len)
{
  guint8 *data = g_malloc (len);

  for (gsize i = 0; i < len; i++)
    data[i] = g_random_int_range (0, 256);
  return data;
}

/* Reads frames until @size bytes came back and compares them to @data:
 * binary frames, or base64 text frames when @base64. */
static void
ws_expect_back (Raw          *raw,
                const guint8 *data,
                gsize         size,
                gboolean      base64)
{
  g_autoptr(GByteArray) back = g_byte_array_new ();
  gint64 deadline = deadline_in (10000);

  while (back->len < size)
    {
      guint8 first_byte;
      g_autoptr(GBytes) payload = NULL;
      gsize len;
      const char *text;

      g_assert_true (raw_read_frame (raw, deadline, &first_byte, &payload));
      text = g_bytes_get_data (payload, &len);
      /* Servers send every message in one frame (proposal SHOULD). */
      g_assert_cmphex (first_byte, ==, base64 ? 0x81 : 0x82);
      if (base64)
        {
          g_autofree char *copy = g_strndup (text, len);
          gsize decoded_len;
          g_autofree guint8 *decoded = g_base64_decode (copy, &decoded_len);

          /* Only the last quantum of a message may be padded. */
          g_assert_cmpuint (len % 4, ==, 0);
          g_assert_cmpuint (decoded_len, ==, len / 4 * 3 - (len >= 1 && text[len - 1] == '=') -
                                             (len >= 2 && text[len - 2] == '='));
          g_byte_array_append (back, decoded, decoded_len);
        }
      else
        g_byte_array_append (back, (const guint8 *) text, len);
    }
  g_assert_cmpmem (back->data, back->len, data, size);
}

/* Sends @size random bytes in one message and expects them back through
 * the echoing ExtORPort. */
static void
ws_echo (Raw      *raw,
         gsize     size,
         gboolean  base64)
{
  g_autofree guint8 *data = random_bytes (size);

  if (base64)
    {
      g_autofree char *text = g_base64_encode (data, size);

      raw_send_frame (raw, 0x81, text, strlen (text));
    }
  else
    raw_send_frame (raw, 0x82, data, size);
  ws_expect_back (raw, data, size, base64);
}

/* A well-behaved client: upgrade, echo, close 1000 both ways. */
static void
assert_normal_client_works (guint16 port)
{
  g_autoptr(Raw) raw = ws_open (port, "/", NULL, 101, NULL);

  ws_echo (raw, 5000, FALSE);
  raw_send_close (raw, 1000);
  raw_expect_close (raw, 1000);
}

/* ---- SOCKS clients through the client binary ---------------------------- */

typedef enum {
  SOCKS_METHOD,
  SOCKS_AUTH,
  SOCKS_CONNECT,
  SOCKS_DATA,
  SOCKS_DONE,
  SOCKS_FAILED,
} SocksState;

typedef struct {
  Raw *raw;
  SocksState state;
  GByteArray *out;               /* handshake bytes still to send */
  gsize out_pos;
  const guint8 *data;            /* payload to send; the echo must match */
  gsize len;
  gsize sent;
  gsize received;
  GChecksum *checksum;           /* sha256 of what came back */
  guint8 socks_reply;
  char *failure;
} SocksConn;

static void
socks_fail (SocksConn  *conn,
            const char *why)
{
  if (conn->state == SOCKS_FAILED)
    return;
  conn->state = SOCKS_FAILED;
  conn->failure = g_strdup (why);
}

/* tor's exchange for a bridge with arguments (PT-CHECKLIST 0.2, 9):
 * greeting 05 02 00 02, RFC 1929 with the args in UNAME and PASSWD "\0",
 * CONNECT with ATYP 1. */
static SocksConn *
socks_conn_new (guint16       socks_port,
                const guint8 *data,
                gsize         len)
{
  static const guint8 greeting[] = { 0x05, 0x02, 0x00, 0x02 };
  SocksConn *conn = g_new0 (SocksConn, 1);

  conn->raw = raw_connect (socks_port);
  conn->out = g_byte_array_new ();
  conn->data = data;
  conn->len = len;
  conn->checksum = g_checksum_new (G_CHECKSUM_SHA256);
  conn->state = SOCKS_METHOD;
  conn->socks_reply = 0xff;
  g_byte_array_append (conn->out, greeting, sizeof greeting);
  return conn;
}

static void
socks_conn_free (SocksConn *conn)
{
  raw_free (conn->raw);
  g_byte_array_unref (conn->out);
  g_checksum_free (conn->checksum);
  g_free (conn->failure);
  g_free (conn);
}

typedef struct {
  SocksConn **conns;
  guint n;
  const char *args;
  guint16 target_port;
} SocksRun;

static void
socks_queue_auth (SocksConn  *conn,
                  const char *args)
{
  guint8 head[2] = { 0x01, strlen (args) };
  static const guint8 passwd[] = { 0x01, 0x00 };

  g_assert_cmpuint (strlen (args), <=, 255);
  g_byte_array_append (conn->out, head, sizeof head);
  g_byte_array_append (conn->out, (const guint8 *) args, strlen (args));
  g_byte_array_append (conn->out, passwd, sizeof passwd);
}

static void
socks_queue_connect (SocksConn *conn,
                     guint16    port)
{
  guint8 request[10] = { 0x05, 0x01, 0x00, 0x01, 127, 0, 0, 1, port >> 8, port & 0xff };

  g_byte_array_append (conn->out, request, sizeof request);
}

/* Handles what arrived; returns FALSE when more bytes are needed. */
static gboolean
socks_consume (SocksConn  *conn,
               SocksRun   *run)
{
  GByteArray *in = conn->raw->in;

  switch (conn->state)
    {
    case SOCKS_METHOD:
      if (in->len < 2)
        return FALSE;
      if (in->data[0] != 0x05 || in->data[1] != 0x02)
        {
          socks_fail (conn, "method not accepted");
          return FALSE;
        }
      g_byte_array_remove_range (in, 0, 2);
      socks_queue_auth (conn, run->args);
      conn->state = SOCKS_AUTH;
      return TRUE;
    case SOCKS_AUTH:
      if (in->len < 2)
        return FALSE;
      if (in->data[0] != 0x01 || in->data[1] != 0x00)
        {
          socks_fail (conn, "authentication refused");
          return FALSE;
        }
      g_byte_array_remove_range (in, 0, 2);
      socks_queue_connect (conn, run->target_port);
      conn->state = SOCKS_CONNECT;
      return TRUE;
    case SOCKS_CONNECT:
      if (in->len < 2)
        return FALSE;
      conn->socks_reply = in->data[1];
      if (in->data[0] != 0x05 || in->data[1] != 0x00)
        {
          socks_fail (conn, "CONNECT refused");
          return FALSE;
        }
      if (in->len < 10)
        return FALSE;
      g_assert_cmpuint (in->data[3], ==, 0x01);
      g_byte_array_remove_range (in, 0, 10);
      conn->state = SOCKS_DATA;
      return TRUE;
    case SOCKS_DATA:
      if (in->len == 0)
        return FALSE;
      if (conn->received + in->len > conn->len ||
          memcmp (in->data, conn->data + conn->received, in->len) != 0)
        {
          socks_fail (conn, "echoed data differs");
          return FALSE;
        }
      g_checksum_update (conn->checksum, in->data, in->len);
      conn->received += in->len;
      g_byte_array_set_size (in, 0);
      if (conn->received == conn->len)
        conn->state = SOCKS_DONE;
      return TRUE;
    case SOCKS_DONE:
    case SOCKS_FAILED:
    default:
      return FALSE;
    }
}

/* One non-blocking round of sends and receives; TRUE if anything moved. */
static gboolean
socks_step (SocksConn *conn,
            SocksRun  *run)
{
  gboolean progress = FALSE;
  guint8 buf[65536];
  gssize n;

  if (conn->state == SOCKS_DONE || conn->state == SOCKS_FAILED)
    return FALSE;

  if (conn->out_pos < conn->out->len || (conn->state == SOCKS_DATA && conn->sent < conn->len))
    {
      g_autoptr(GError) error = NULL;
      gboolean handshake = conn->out_pos < conn->out->len;
      const guint8 *data = handshake ? conn->out->data + conn->out_pos : conn->data + conn->sent;
      gsize len = handshake ? conn->out->len - conn->out_pos : MIN (conn->len - conn->sent, sizeof buf);

      n = g_socket_send (conn->raw->socket, (const char *) data, len, NULL, &error);
      if (n > 0)
        {
          progress = TRUE;
          if (handshake)
            conn->out_pos += n;
          else
            conn->sent += n;
        }
      else if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        {
          socks_fail (conn, "send failed");
          return TRUE;
        }
    }

  {
    g_autoptr(GError) error = NULL;

    n = g_socket_receive (conn->raw->socket, (char *) buf, sizeof buf, NULL, &error);
    if (n > 0)
      {
        progress = TRUE;
        g_byte_array_append (conn->raw->in, buf, n);
        while (socks_consume (conn, run))
          ;
      }
    else if (n == 0 || !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
      {
        progress = TRUE;
        conn->raw->eof = TRUE;
        socks_fail (conn, "connection closed early");
      }
  }
  return progress;
}

/* Drives all connections until each is done or failed, or the deadline. */
static void
socks_run (SocksRun *run,
           guint     timeout_ms)
{
  gint64 deadline = deadline_in (timeout_ms);

  for (;;)
    {
      gboolean progress = FALSE;
      gboolean active = FALSE;

      for (guint i = 0; i < run->n; i++)
        {
          progress |= socks_step (run->conns[i], run);
          if (run->conns[i]->state != SOCKS_DONE && run->conns[i]->state != SOCKS_FAILED)
            active = TRUE;
        }
      if (!active || g_get_monotonic_time () >= deadline)
        return;
      /* The ExtORPort stand-in runs here. */
      while (g_main_context_iteration (NULL, FALSE))
        ;
      if (!progress)
        iterate_for (1);
    }
}

static Proc *
client_start (const char *dir)
{
  char **env = base_environ ();
  g_autofree char *state = g_build_filename (dir, "client_state", "", NULL);
  Proc *proc;

  env = g_environ_setenv (env, "TOR_PT_MANAGED_TRANSPORT_VER", "1", TRUE);
  env = g_environ_setenv (env, "TOR_PT_CLIENT_TRANSPORTS", "websocket", TRUE);
  env = g_environ_setenv (env, "TOR_PT_STATE_LOCATION", state, TRUE);
  env = g_environ_setenv (env, "TOR_PT_EXIT_ON_STDIN_CLOSE", "1", TRUE);
  proc = proc_spawn ("--client", env);
  g_strfreev (env);
  g_assert_true (proc_wait_done (proc));
  return proc;
}

/* ---- 1. managed-mode stdout and environment ----------------------------- */

/* G2, G12, S2: the golden stdout of a server start. */
static void
test_managed_golden (void)
{
  g_autoptr(Bridge) bridge = bridge_start (TWP_TEST_EXTOR_MODE_ECHO, NULL);
  GPtrArray *lines = bridge->proc->lines;
  g_autofree char *smethod = g_strdup_printf ("SMETHOD websocket 127.0.0.1:%u", bridge->port);

  g_assert_cmpuint (lines->len, >=, 4);
  g_assert_cmpstr (g_ptr_array_index (lines, 0), ==, "VERSION 1");
  g_assert_true (g_str_has_prefix (g_ptr_array_index (lines, 1), "STATUS TYPE=version IMPLEMENTATION="));
  /* G12: no spaces inside the values: exactly four tokens. */
  {
    g_auto(GStrv) tokens = g_strsplit (g_ptr_array_index (lines, 1), " ", -1);

    g_assert_cmpuint (g_strv_length (tokens), ==, 4);
    g_assert_true (g_str_has_prefix (tokens[3], "VERSION="));
  }
  g_assert_cmpstr (g_ptr_array_index (lines, 2), ==, smethod);
  g_assert_cmpstr (g_ptr_array_index (lines, 3), ==, "SMETHODS DONE");
  assert_normal_client_works (bridge->port);
}

/* S2: BINDADDR with a port is bound exactly; K7: a restart binds the same
 * port at once although the last run left TIME_WAIT connections. */
static void
test_managed_fixed_port (void)
{
  g_autofree char *dir = make_tmpdir ();
  g_autoptr(TwpTestExtOrServer) extor = twp_test_extor_server_new (dir, TWP_TEST_EXTOR_MODE_ECHO);
  guint16 port = pick_free_port ();
  g_autofree char *bindaddr = g_strdup_printf ("websocket-127.0.0.1:%u", port);

  for (guint run = 0; run < 2; run++)
    {
      g_auto(GStrv) env = server_environ (dir, extor, bindaddr, NULL);
      Proc *proc = proc_spawn ("--server", env);

      g_assert_true (proc_wait_done (proc));
      g_assert_cmpuint (proc->port, ==, port);
      /* The server closes these first, so their TIME_WAIT is on its port. */
      for (guint i = 0; i < 3; i++)
        {
          g_autoptr(Raw) raw = raw_connect (port);

          raw_send_str (raw, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
          g_assert_true (raw_wait_eof (raw, 5000));
        }
      assert_normal_client_works (port);
      proc_stop (proc);
    }
  remove_tree (dir);
}

/* A plain ORPort for S5: echoes whatever arrives. */
typedef struct {
  GSocketConnection *connection;
  guint8 buf[16384];
} OrConn;

static void or_read (OrConn *conn);

static void
or_conn_free (OrConn *conn)
{
  g_io_stream_close (G_IO_STREAM (conn->connection), NULL, NULL);
  g_object_unref (conn->connection);
  g_free (conn);
}

static void
or_written_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  OrConn *conn = user_data;

  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, NULL))
    or_conn_free (conn);
  else
    or_read (conn);
}

static void
or_read_cb (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  OrConn *conn = user_data;
  gssize n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, NULL);

  if (n <= 0)
    {
      or_conn_free (conn);
      return;
    }
  g_output_stream_write_all_async (g_io_stream_get_output_stream (G_IO_STREAM (conn->connection)),
                                   conn->buf, n, G_PRIORITY_DEFAULT, NULL, or_written_cb, conn);
}

static void
or_read (OrConn *conn)
{
  g_input_stream_read_async (g_io_stream_get_input_stream (G_IO_STREAM (conn->connection)),
                             conn->buf, sizeof conn->buf, G_PRIORITY_DEFAULT, NULL, or_read_cb, conn);
}

static gboolean
or_incoming_cb (GSocketService    *service,
                GSocketConnection *connection,
                GObject           *source_object,
                gpointer           user_data)
{
  OrConn *conn = g_new0 (OrConn, 1);

  (*(guint *) user_data)++;
  conn->connection = g_object_ref (connection);
  or_read (conn);
  return TRUE;
}

/* S5: with no ExtORPort (the variable present but empty) the server speaks
 * to the plain ORPort, sending the payload and nothing else. */
static void
test_managed_plain_orport (void)
{
  g_autofree char *dir = make_tmpdir ();
  g_autofree char *state = g_build_filename (dir, "pt_state", "", NULL);
  g_autoptr(GSocketService) orport = g_socket_service_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *orport_address = NULL;
  char **env = base_environ ();
  guint16 port;
  guint n_or_connections = 0;

  port = g_socket_listener_add_any_inet_port (G_SOCKET_LISTENER (orport), NULL, &error);
  g_assert_no_error (error);
  g_signal_connect (orport, "incoming", G_CALLBACK (or_incoming_cb), &n_or_connections);
  g_socket_service_start (orport);
  orport_address = g_strdup_printf ("127.0.0.1:%u", port);

  env = g_environ_setenv (env, "TOR_PT_MANAGED_TRANSPORT_VER", "1", TRUE);
  env = g_environ_setenv (env, "TOR_PT_SERVER_TRANSPORTS", "websocket", TRUE);
  env = g_environ_setenv (env, "TOR_PT_SERVER_BINDADDR", "websocket-127.0.0.1:0", TRUE);
  env = g_environ_setenv (env, "TOR_PT_ORPORT", orport_address, TRUE);
  env = g_environ_setenv (env, "TOR_PT_EXTENDED_SERVER_PORT", "", TRUE);
  env = g_environ_setenv (env, "TOR_PT_STATE_LOCATION", state, TRUE);
  env = g_environ_setenv (env, "TOR_PT_EXIT_ON_STDIN_CLOSE", "1", TRUE);

  {
    g_autoptr(Proc) proc = proc_spawn ("--server", env);
    g_autoptr(Raw) raw = NULL;

    g_assert_true (proc_wait_done (proc));
    raw = ws_open (proc->port, "/", NULL, 101, NULL);
    /* An echo proves no ExtORPort bytes were sent (they would come back). */
    ws_echo (raw, 20000, FALSE);
    g_assert_cmpuint (n_or_connections, ==, 1);
    raw_send_close (raw, 1000);
    raw_expect_close (raw, 1000);
    proc_close_stdin (proc);
    g_assert_true (proc_wait_exit (proc, 5000));
    g_assert_cmpint (g_subprocess_get_exit_status (proc->process), ==, 0);
  }
  g_strfreev (env);
  g_socket_service_stop (orport);
  g_socket_listener_close (G_SOCKET_LISTENER (orport));
  iterate_for (50);
  remove_tree (dir);
}

static void
assert_env_error (const char *options)
{
  g_autofree char *dir = make_tmpdir ();
  g_autoptr(TwpTestExtOrServer) extor = twp_test_extor_server_new (dir, TWP_TEST_EXTOR_MODE_ECHO);
  g_auto(GStrv) env = server_environ (dir, extor, NULL, options);
  g_autoptr(Proc) proc = proc_spawn ("--server", env);
  const char *first;

  g_assert_true (proc_wait_exit (proc, 5000));
  g_assert_true (wait_until ((Condition) proc_has_done_line, proc, 5000));
  g_assert_cmpuint (proc->lines->len, >=, 1);
  first = g_ptr_array_index (proc->lines, 0);
  /* G3, B3: the reason comes before VERSION, so tor logs it. */
  g_assert_true (g_str_has_prefix (first, "ENV-ERROR "));
  for (guint i = 0; i < proc->lines->len; i++)
    g_assert_false (g_str_has_prefix (g_ptr_array_index (proc->lines, i), "VERSION"));
  g_assert_true (g_subprocess_get_if_exited (proc->process));
  g_assert_cmpint (g_subprocess_get_exit_status (proc->process), !=, 0);
  remove_tree (dir);
}

/* G3: bad transport options give ENV-ERROR before VERSION and exit != 0. */
static void
test_managed_bad_options (void)
{
  assert_env_error ("websocket:bogus=1");
  assert_env_error ("websocket:max-connections=lots");
  assert_env_error ("websocket:tls-cert=/nonexistent/cert.pem;websocket:tls-key=/nonexistent/key.pem");
  assert_env_error ("websocket:path=no-slash");
  assert_env_error ("websocket:max-message-size=100");
}

/* G1: no version we speak: VERSION-ERROR and exit != 0. */
static void
test_managed_version_error (void)
{
  g_autofree char *dir = make_tmpdir ();
  g_autoptr(TwpTestExtOrServer) extor = twp_test_extor_server_new (dir, TWP_TEST_EXTOR_MODE_ECHO);
  g_auto(GStrv) env = server_environ (dir, extor, NULL, NULL);
  g_autoptr(Proc) proc = NULL;

  env = g_environ_setenv (env, "TOR_PT_MANAGED_TRANSPORT_VER", "2", TRUE);
  proc = proc_spawn ("--server", env);
  g_assert_true (proc_wait_exit (proc, 5000));
  g_assert_true (wait_until ((Condition) proc_has_done_line, proc, 5000));
  g_assert_cmpuint (proc->lines->len, ==, 1);
  g_assert_cmpstr (g_ptr_array_index (proc->lines, 0), ==, "VERSION-ERROR no-version");
  g_assert_cmpint (g_subprocess_get_exit_status (proc->process), !=, 0);
  remove_tree (dir);
}

/* G4, G8: stdout carries the protocol only. tor passes its whole
 * environment (PT-CHECKLIST 0.1), so G_MESSAGES_DEBUG may be set: GLib's
 * default handler prints debug and info messages on stdout, where tor would
 * parse them as protocol lines. */
static void
test_managed_debug_stays_off_stdout (void)
{
  g_autofree char *dir = make_tmpdir ();
  g_autoptr(TwpTestExtOrServer) extor = twp_test_extor_server_new (dir, TWP_TEST_EXTOR_MODE_ECHO);
  g_auto(GStrv) env = server_environ (dir, extor, NULL, NULL);
  static const char *const keywords[] = { "VERSION ", "STATUS ", "SMETHOD ", "SMETHODS DONE", "LOG ", NULL };
  Proc *proc;

  env = g_environ_setenv (env, "G_MESSAGES_DEBUG", "all", TRUE);
  proc = proc_spawn ("--server", env);
  g_assert_true (proc_wait_done (proc));
  {
    g_autoptr(Raw) raw = ws_open (proc->port, "/", NULL, 101, NULL);

    g_autoptr(GByteArray) frame = g_byte_array_new ();

    ws_echo (raw, 1000, FALSE);
    /* An error, so that the relay has something to say. */
    frame_append (frame, 0x82, FALSE, "x", 1);
    raw_send (raw, frame->data, frame->len);
    raw_expect_close (raw, 1002);
  }
  proc_close_stdin (proc);
  g_assert_true (proc_wait_exit (proc, 5000));
  g_assert_true (wait_until ((Condition) proc_stdout_closed, proc, 5000));
  for (guint i = 0; i < proc->lines->len; i++)
    {
      const char *line = g_ptr_array_index (proc->lines, i);
      gboolean known = FALSE;

      for (guint k = 0; keywords[k] != NULL; k++)
        known |= g_str_has_prefix (line, keywords[k]);
      if (!known)
        {
          g_test_fail_printf ("not a pt-spec line on stdout: \"%s\"", line);
          break;
        }
    }
  proc_free (proc);
  remove_tree (dir);
}

/* ---- 2. ExtORPort metadata ---------------------------------------------- */

/* X6: tor learns the transport name and the client's address and port. */
static void
test_extorport_metadata (void)
{
  g_autoptr(Bridge) bridge = bridge_start (TWP_TEST_EXTOR_MODE_ECHO, NULL);
  g_autoptr(Raw) raw = ws_open (bridge->port, "/", NULL, 101, NULL);
  g_autofree char *expected = g_strdup_printf ("127.0.0.1:%u", raw_local_port (raw));

  g_assert_cmpuint (twp_test_extor_server_get_n_okay (bridge->extor), ==, 1);
  g_assert_cmpstr (twp_test_extor_server_get_last_transport (bridge->extor), ==, "websocket");
  g_assert_cmpstr (twp_test_extor_server_get_last_useraddr (bridge->extor), ==, expected);
  ws_echo (raw, 1000, FALSE);
  raw_send_close (raw, 1000);
  raw_expect_close (raw, 1000);
}

typedef struct {
  SoupWebsocketConnection *connection;
  GError *error;
  GByteArray *received;
  gboolean closed;
} SoupState;

static void
soup_connected_cb (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  SoupState *state = user_data;

  state->connection = soup_session_websocket_connect_finish (SOUP_SESSION (source), result, &state->error);
  if (state->connection == NULL && state->error == NULL)
    state->error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_FAILED, "no connection");
}

static void
soup_message_cb (SoupWebsocketConnection *connection,
                 int                      type,
                 GBytes                  *message,
                 gpointer                 user_data)
{
  SoupState *state = user_data;
  gsize len;
  const guint8 *data = g_bytes_get_data (message, &len);

  g_assert_cmpint (type, ==, SOUP_WEBSOCKET_DATA_BINARY);
  g_byte_array_append (state->received, data, len);
}

static void
soup_closed_cb (SoupWebsocketConnection *connection,
                gpointer                 user_data)
{
  ((SoupState *) user_data)->closed = TRUE;
}

static gboolean
soup_settled (gpointer data)
{
  SoupState *state = data;

  return state->connection != NULL || state->error != NULL;
}

static gboolean
soup_received_all (gpointer data)
{
  return ((SoupState *) data)->received->len >= 100000;
}

static gboolean
soup_closed (gpointer data)
{
  return ((SoupState *) data)->closed;
}

/* Interop with an independent client (libsoup's): the upgrade is accepted
 * and binary data echoes. */
static void
test_extorport_libsoup_client (void)
{
  g_autoptr(Bridge) bridge = bridge_start (TWP_TEST_EXTOR_MODE_ECHO, NULL);
  /* No system proxy lookups (libproxy trips ASan). */
  g_autoptr(GProxyResolver) resolver = g_simple_proxy_resolver_new (NULL, NULL);
  g_autoptr(SoupSession) session = soup_session_new_with_options ("proxy-resolver", resolver, NULL);
  g_autofree char *uri = g_strdup_printf ("ws://127.0.0.1:%u/", bridge->port);
  g_autoptr(SoupMessage) message = soup_message_new ("GET", uri);
  g_autofree guint8 *data = random_bytes (100000);
  SoupState state = { 0 };

  state.received = g_byte_array_new ();
  soup_message_add_flags (message, SOUP_MESSAGE_NO_REDIRECT);
  soup_session_websocket_connect_async (session, message, NULL, NULL, G_PRIORITY_DEFAULT, NULL,
                                        soup_connected_cb, &state);
  g_assert_true (wait_until (soup_settled, &state, 10000));
  g_assert_no_error (state.error);
  g_signal_connect (state.connection, "message", G_CALLBACK (soup_message_cb), &state);
  g_signal_connect (state.connection, "closed", G_CALLBACK (soup_closed_cb), &state);
  g_assert_cmpint (soup_websocket_connection_get_state (state.connection), ==, SOUP_WEBSOCKET_STATE_OPEN);
  /* libsoup's default frame limit is 128 KiB; the server's default
   * message limit is 64 KiB: send in pieces. */
  for (gsize off = 0; off < 100000; off += 25000)
    soup_websocket_connection_send_binary (state.connection, data + off, 25000);
  g_assert_true (wait_until (soup_received_all, &state, 10000));
  g_assert_cmpmem (state.received->data, state.received->len, data, 100000);
  soup_websocket_connection_close (state.connection, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
  g_assert_true (wait_until (soup_closed, &state, 10000));
  g_assert_cmpuint (soup_websocket_connection_get_close_code (state.connection), ==, 1000);
  g_clear_object (&state.connection);
  g_byte_array_unref (state.received);
}

/* S6, X5: a cookie that does not match tor's: the upgrade is answered
 * 503 (tor is unusable), the server survives. */
static void
test_extorport_wrong_cookie (void)
{
  g_autofree char *dir = make_tmpdir ();
  g_autoptr(TwpTestExtOrServer) extor = twp_test_extor_server_new (dir, TWP_TEST_EXTOR_MODE_ECHO);
  g_autofree char *cookie = NULL;
  g_autofree char *wrong_path = g_build_filename (dir, "wrong_cookie", NULL);
  g_auto(GStrv) env = NULL;
  g_autoptr(GError) error = NULL;
  gsize len;

  g_file_get_contents (twp_test_extor_server_get_cookie_path (extor), &cookie, &len, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (len, ==, TWP_EXTORPORT_COOKIE_FILE_LEN);
  cookie[len - 1] ^= 0x55;
  g_file_set_contents_full (wrong_path, cookie, len, G_FILE_SET_CONTENTS_NONE, 0600, &error);
  g_assert_no_error (error);

  env = server_environ (dir, extor, NULL, NULL);
  env = g_environ_setenv (env, "TOR_PT_AUTH_COOKIE_FILE", wrong_path, TRUE);
  {
    g_autoptr(Proc) proc = proc_spawn ("--server", env);

    g_assert_true (proc_wait_done (proc));
    for (guint i = 0; i < 2; i++)
      {
        g_autoptr(Raw) raw = ws_open (proc->port, "/", NULL, 503, NULL);

        g_assert_true (raw_wait_eof (raw, 5000));
        /* The PT checks tor's ServerHash first and, as it does not match,
         * hangs up without proving anything (never sends a ClientHash).
         * The in-process ExtORPort sees that hang-up on its own schedule. */
        g_assert_true (wait_until ((Condition) extor_saw_peer_close, extor, 5000));
      }
    g_assert_cmpuint (twp_test_extor_server_get_n_okay (extor), ==, 0);
    g_assert_false (proc->exited);
    proc_stop (g_steal_pointer (&proc));
  }
  remove_tree (dir);
}

/* ---- 3. end to end through both binaries -------------------------------- */

typedef struct {
  char *dir;
  Bridge *bridge;
  Proc *client;
} Chain;

static Chain *
chain_start (const char *server_options)
{
  Chain *chain = g_new0 (Chain, 1);

  chain->bridge = bridge_start (TWP_TEST_EXTOR_MODE_ECHO, server_options);
  chain->dir = make_tmpdir ();
  chain->client = client_start (chain->dir);
  return chain;
}

static void
chain_free (Chain *chain)
{
  proc_stop (chain->client);
  bridge_free (chain->bridge);
  remove_tree (chain->dir);
  g_free (chain->dir);
  g_free (chain);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Chain, chain_free)

/* Marks the test failed (and lets it clean up) when @conn did not finish. */
static gboolean
check_socks_done (SocksConn *conn)
{
  if (conn->state == SOCKS_DONE)
    return TRUE;
  g_test_fail_printf ("SOCKS connection: state %d, %s (reply %02x), %" G_GSIZE_FORMAT "/%" G_GSIZE_FORMAT
                      " sent, %" G_GSIZE_FORMAT " echoed",
                      conn->state, conn->failure != NULL ? conn->failure : "timed out", conn->socks_reply,
                      conn->sent, conn->len, conn->received);
  return FALSE;
}

static void
bulk_through_chain (const char *mode)
{
  g_autoptr(Chain) chain = chain_start (NULL);
  gsize size = 64 * MIB;
  g_autofree guint8 *data = g_malloc (size);
  g_autofree char *args = g_strdup_printf ("url=ws://127.0.0.1:%u/;mode=%s", chain->bridge->port, mode);
  g_autofree char *sent_sum = NULL;
  SocksConn *conn;
  SocksRun run = { &conn, 1, args, chain->bridge->port };
  GRand *rand = g_rand_new_with_seed (4711);
  gint64 start;

  for (gsize i = 0; i < size; i += 4)
    {
      guint32 value = g_rand_int (rand);

      memcpy (data + i, &value, 4);
    }
  g_rand_free (rand);
  sent_sum = g_compute_checksum_for_data (G_CHECKSUM_SHA256, data, size);

  start = g_get_monotonic_time ();
  conn = socks_conn_new (chain->client->port, data, size);
  socks_run (&run, 90000);
  if (check_socks_done (conn))
    g_assert_cmpstr (g_checksum_get_string (conn->checksum), ==, sent_sum);
  g_test_message ("%s: 64 MiB each way in %.2f s", mode, (g_get_monotonic_time () - start) / 1e6);
  g_assert_cmpstr (twp_test_extor_server_get_last_transport (chain->bridge->extor), ==, "websocket");
  socks_conn_free (conn);
}

/* Proposal: binary frames (MUST) and the base64 subprotocol, both
 * directions at once, nothing lost or reordered. */
static void
test_e2e_bulk_binary (void)
{
  bulk_through_chain ("binary");
}

static void
test_e2e_bulk_base64 (void)
{
  bulk_through_chain ("base64");
}

/* 500 tunnels at once, each 64 KiB echoed. */
static void
test_e2e_many (void)
{
  g_autoptr(Chain) chain = chain_start (NULL);
  const guint n = 500;
  const gsize each = 64 * 1024;
  g_autofree guint8 *data = random_bytes (n * each);
  g_autofree char *args = g_strdup_printf ("url=ws://127.0.0.1:%u/", chain->bridge->port);
  g_autofree SocksConn **conns = g_new0 (SocksConn *, n);
  SocksRun run = { conns, n, args, chain->bridge->port };
  gint64 start = g_get_monotonic_time ();
  guint done = 0;

  for (guint i = 0; i < n; i++)
    conns[i] = socks_conn_new (chain->client->port, data + i * each, each);
  socks_run (&run, 30000);
  for (guint i = 0; i < n; i++)
    if (conns[i]->state == SOCKS_DONE)
      done++;
  g_test_message ("%u/%u tunnels complete in %.2f s", done, n, (g_get_monotonic_time () - start) / 1e6);
  for (guint i = 0; i < n; i++)
    {
      /* One report is enough. */
      if (done == n || !g_test_failed ())
        check_socks_done (conns[i]);
      socks_conn_free (conns[i]);
    }
  if (done == n)
    g_assert_cmpuint (twp_test_extor_server_get_n_okay (chain->bridge->extor), ==, n);
}

/* ---- 4. attacks ---------------------------------------------------------- */

/* RFC 6455 5.1 / proposal MUST: an unmasked client frame closes with 1002. */
static void
test_attack_unmasked (void)
{
  g_autoptr(Bridge) bridge = bridge_start (TWP_TEST_EXTOR_MODE_ECHO, NULL);
  g_autoptr(GByteArray) frame = g_byte_array_new ();

  {
    g_autoptr(Raw) raw = ws_open (bridge->port, "/", NULL, 101, NULL);

    frame_append (frame, 0x82, FALSE, "hello", 5);
    raw_send (raw, frame->data, frame->len);
    raw_expect_close (raw, 1002);
  }
  assert_normal_client_works (bridge->port);
}

/* Proposal MUST: a text frame without base64 negotiated closes (1003). */
static void
test_attack_text_without_base64 (void)
{
  g_autoptr(Bridge) bridge = bridge_start (TWP_TEST_EXTOR_MODE_ECHO, NULL);

  {
    g_autoptr(Raw) raw = ws_open (bridge->port, "/", NULL, 101, NULL);

    raw_send_frame (raw, 0x81, "SGVsbG8=", 8);
    raw_expect_close (raw, 1003);
  }
  g_assert_cmpuint (twp_test_extor_server_get_bytes_relayed (bridge->extor), ==, 0);
  assert_normal_client_works (bridge->port);
}

/* Proposal: base64 is answered with base64 (and only that); text that is
 * not base64 closes the connection (1007). */
static void
test_attack_bad_base64 (void)
{
  g_autoptr(Bridge) bridge = bridge_start (TWP_TEST_EXTOR_MODE_ECHO, NULL);

  {
    g_autofree char *head = NULL;
    g_autoptr(Raw) raw = ws_open (bridge->port, "/", "Sec-WebSocket-Protocol: base64\r\n", 101, &head);
    g_autofree char *protocol = http_header (head, "sec-websocket-protocol");

    g_assert_cmpstr (protocol, ==, "base64");
    ws_echo (raw, 30000, TRUE);
    /* The proposal's two-frame example (corrected in ERRATA.md). */
    raw_send_frame (raw, 0x01, "SG", 2);
    raw_send_frame (raw, 0x80, "VsbG8=", 6);
    ws_expect_back (raw, (const guint8 *) "Hello", 5, TRUE);
    /* The proposal's masked one-frame example, byte for byte (ERRATA.md). */
    {
      static const guint8 example[] = { 0x81, 0x88, 0x12, 0x34, 0x56, 0x78,
                                        0x41, 0x73, 0x00, 0x0b, 0x70, 0x73, 0x6e, 0x45 };

      raw_send (raw, example, sizeof example);
      ws_expect_back (raw, (const guint8 *) "Hello", 5, TRUE);
    }
    raw_send_frame (raw, 0x81, "!!!!", 4);
    raw_expect_close (raw, 1007);
  }
  {
    /* No protocol asked for: none answered. */
    g_autofree char *head = NULL;
    g_autoptr(Raw) raw = ws_open (bridge->port, "/", NULL, 101, &head);
    g_autofree char *protocol = http_header (head, "sec-websocket-protocol");

    g_assert_null (protocol);
    ws_echo (raw, 100, FALSE);
  }
  assert_normal_client_works (bridge->port);
}

/* Proposal MUST: a frame over the limit is refused (1009) from its header,
 * before its payload is read. */
static void
test_attack_huge_frame (void)
{
  g_autoptr(Bridge) bridge = bridge_start (TWP_TEST_EXTOR_MODE_ECHO, NULL);

  {
    g_autoptr(Raw) raw = ws_open (bridge->port, "/", NULL, 101, NULL);
    g_autoptr(GByteArray) frame = g_byte_array_new ();
    guint8 mask[4];

    frame_append_header (frame, 0x82, TRUE, 100 * MIB, mask);
    raw_send (raw, frame->data, frame->len);
    raw_expect_close (raw, 1009);
  }
  g_assert_cmpuint (twp_test_extor_server_get_bytes_relayed (bridge->extor), ==, 0);
  assert_normal_client_works (bridge->port);
}

/* Proposal MUST: the message bound counts the sum of the fragments: a
 * 10 MB message in 1-byte fragments is closed (1009) after about 64 KiB,
 * and nothing is buffered meanwhile. */
static void
test_attack_fragmented_message (void)
{
  g_autoptr(Bridge) bridge = bridge_start (TWP_TEST_EXTOR_MODE_ECHO, NULL);
  guint64 rss_before = proc_rss_kib (bridge->proc);
  guint64 rss_max = 0;

  {
    g_autoptr(Raw) raw = ws_open (bridge->port, "/", NULL, 101, NULL);
    g_autoptr(GByteArray) batch = g_byte_array_new ();
    g_autoptr(GByteArray) first = g_byte_array_new ();
    gsize payload_sent = 0;
    gint64 deadline = deadline_in (30000);
    gboolean got_close = FALSE;

    raw->receive_while_sending = TRUE;
    /* 1024 continuation frames of one byte each, never FIN. */
    for (guint i = 0; i < 1024; i++)
      frame_append (batch, 0x00, TRUE, "x", 1);
    frame_append (first, 0x02, TRUE, "x", 1);
    raw_send (raw, first->data, first->len);
    payload_sent = 1;
    while (payload_sent < 10 * 1000 * 1000 && !raw->eof && !got_close)
      {
        g_autoptr(GError) error = NULL;

        if (!raw_send_until (raw, batch->data, batch->len, deadline, &error))
          {
            g_test_message ("send stopped: %s", error->message);
            break;
          }
        payload_sent += 1024;
        /* Anything from the server yet? Only its close frame may come. */
        while (raw_read_some (raw, g_get_monotonic_time ()) && !raw->eof && raw->in->len > 0)
          if (raw->in->data[0] == 0x88)
            {
              got_close = TRUE;
              break;
            }
        if (payload_sent % (256 * 1024) < 1024)
          rss_max = MAX (rss_max, proc_rss_kib (bridge->proc));
        g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      }
    g_test_message ("fragment bytes sent before the close: %" G_GSIZE_FORMAT "; %" G_GUINT64_FORMAT
                    " relayed to tor", payload_sent, twp_test_extor_server_get_bytes_relayed (bridge->extor));
    raw_expect_close (raw, 1009);
  }
  rss_max = MAX (rss_max, proc_rss_kib (bridge->proc));
  /* What reached tor is bounded by the limit, plus nothing. */
  g_assert_cmpuint (twp_test_extor_server_get_bytes_relayed (bridge->extor), <=, 64 * 1024);
  g_test_message ("server VmRSS %" G_GUINT64_FORMAT " -> max %" G_GUINT64_FORMAT " KiB", rss_before, rss_max);
  g_assert_cmpuint (rss_max - MIN (rss_max, rss_before), <, 16 * 1024);
  if (!TWP_TEST_SANITIZED)
    g_assert_cmpuint (rss_max, <, RSS_LIMIT_KIB);
  assert_normal_client_works (bridge->port);
}

/* LIBSOUP.md trap 2: no extension is ever accepted (permessage-deflate
 * inflates without bound; a PT never compresses). */
static void
test_attack_deflate_offered (void)
{
  g_autoptr(Bridge) bridge = bridge_start (TWP_TEST_EXTOR_MODE_ECHO, NULL);
  g_autofree char *head = NULL;
  g_autoptr(Raw) raw = ws_open (bridge->port, "/",
                                "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
                                101, &head);
  g_autofree char *extensions = http_header (head, "sec-websocket-extensions");

  g_assert_null (extensions);
  ws_echo (raw, 20000, FALSE);
  raw_send_close (raw, 1000);
  raw_expect_close (raw, 1000);
}

/* Sends a complete request and reads the response until the server closes. */
static char *
http_exchange (guint16     port,
               const char *request)
{
  g_autoptr(Raw) raw = raw_connect (port);

  raw_send_str (raw, request);
  while (!raw->eof)
    g_assert_true (raw_read_some (raw, deadline_in (5000)));
  return g_strndup ((const char *) raw->in->data, raw->in->len);
}

/* RFC 6455 4.4 (proposal: RFC 6455 MUST, older versions MAY): hixie-76
 * and version 8 get 426 naming version 13. */
static void
test_attack_old_versions (void)
{
  g_autoptr(Bridge) bridge = bridge_start (TWP_TEST_EXTOR_MODE_ECHO, NULL);
  g_autofree char *hixie = NULL;
  g_autofree char *v8 = NULL;
  g_autofree char *request = NULL;
  g_autofree char *version = NULL;

  request = g_strdup_printf ("GET / HTTP/1.1\r\n"
                             "Host: 127.0.0.1:%u\r\n"
                             "Connection: Upgrade\r\n"
                             "Upgrade: WebSocket\r\n"
                             "Origin: http://example.com\r\n"
                             "Sec-WebSocket-Key1: 4 @1  46546xW%%0l 1 5\r\n"
                             "Sec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\n"
                             "\r\n"
                             "^n:ds[4U", bridge->port);
  hixie = http_exchange (bridge->port, request);
  g_assert_cmpuint (http_status (hixie), ==, 426);
  version = http_header (hixie, "sec-websocket-version");
  g_assert_cmpstr (version, ==, "13");
  g_clear_pointer (&version, g_free);
  g_clear_pointer (&request, g_free);

  request = g_strdup_printf ("GET / HTTP/1.1\r\n"
                             "Host: 127.0.0.1:%u\r\n"
                             "Upgrade: websocket\r\n"
                             "Connection: Upgrade\r\n"
                             "Sec-WebSocket-Key: " WS_KEY "\r\n"
                             "Sec-WebSocket-Version: 8\r\n"
                             "\r\n", bridge->port);
  v8 = http_exchange (bridge->port, request);
  g_assert_cmpuint (http_status (v8), ==, 426);
  version = http_header (v8, "sec-websocket-version");
  g_assert_cmpstr (version, ==, "13");
  g_assert_cmpuint (twp_test_extor_server_get_n_connections (bridge->extor), ==, 0);
  assert_normal_client_works (bridge->port);
}

static void
assert_looks_ordinary (const char *response)
{
  g_autofree char *lower = g_ascii_strdown (response, -1);

  g_assert_null (strstr (lower, "tor"));
  g_assert_null (strstr (lower, "websocket"));
}

/* Probing resistance: a plain GET gets what any web server answers. */
static void
test_attack_plain_http (void)
{
  g_autofree char *request = g_strdup ("GET / HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n");

  {
    g_autoptr(Bridge) bridge = bridge_start (TWP_TEST_EXTOR_MODE_ECHO, NULL);
    g_autofree char *response = http_exchange (bridge->port, request);

    g_assert_cmpuint (http_status (response), ==, 404);
    assert_looks_ordinary (response);
    g_assert_cmpuint (twp_test_extor_server_get_n_connections (bridge->extor), ==, 0);
    assert_normal_client_works (bridge->port);
  }
  {
    g_autofree char *site = make_tmpdir ();
    g_autofree char *index = g_build_filename (site, "index.html", NULL);
    g_autofree char *options = g_strdup_printf ("websocket:static-dir=%s", site);
    const char *page = "<html><body><h1>Welcome to my garden</h1></body></html>\n";
    g_autoptr(GError) error = NULL;

    g_file_set_contents (index, page, -1, &error);
    g_assert_no_error (error);
    {
      g_autoptr(Bridge) bridge = bridge_start (TWP_TEST_EXTOR_MODE_ECHO, options);
      g_autofree char *response = http_exchange (bridge->port, request);
      g_autofree char *escape = NULL;

      g_assert_cmpuint (http_status (response), ==, 200);
      g_assert_true (g_str_has_suffix (response, page));
      assert_looks_ordinary (response);
      escape = http_exchange (bridge->port, "GET /../../../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n");
      g_assert_cmpuint (http_status (escape), ==, 404);
      assert_normal_client_works (bridge->port);
    }
    remove_tree (site);
  }
}

/* path= and origin= options: wrong path 404, disallowed Origin 403. */
static void
test_attack_path_and_origin (void)
{
  {
    g_autoptr(Bridge) bridge = bridge_start (TWP_TEST_EXTOR_MODE_ECHO, "websocket:path=/ws");
    g_autoptr(Raw) wrong = ws_open (bridge->port, "/", NULL, 404, NULL);
    g_autoptr(Raw) right = ws_open (bridge->port, "/ws", NULL, 101, NULL);

    g_assert_true (raw_wait_eof (wrong, 5000));
    ws_echo (right, 1000, FALSE);
    raw_send_close (right, 1000);
    raw_expect_close (right, 1000);
  }
  {
    /* tor escapes ':' in option values (PT-CHECKLIST 9). */
    g_autoptr(Bridge) bridge = bridge_start (TWP_TEST_EXTOR_MODE_ECHO,
                                             "websocket:origin=https\\://allowed.example");
    g_autoptr(Raw) evil = ws_open (bridge->port, "/", "Origin: https://evil.example\r\n", 403, NULL);
    g_autoptr(Raw) good = ws_open (bridge->port, "/", "Origin: https://allowed.example\r\n", 101, NULL);

    g_assert_true (raw_wait_eof (evil, 5000));
    ws_echo (good, 1000, FALSE);
    raw_send_close (good, 1000);
    raw_expect_close (good, 1000);
    g_assert_cmpuint (twp_test_extor_server_get_n_connections (bridge->extor), ==, 1);
  }
}

/* Slowloris: connections that never finish the upgrade are dropped after
 * handshake-timeout, and real clients are served meanwhile. */
static void
test_attack_idle_connections (void)
{
  g_autoptr(Bridge) bridge = bridge_start (TWP_TEST_EXTOR_MODE_ECHO, "websocket:handshake-timeout=2");
  const guint n = 1000;
  g_autoptr(GPtrArray) raws = g_ptr_array_new_with_free_func ((GDestroyNotify) raw_free);
  gint64 start = g_get_monotonic_time ();
  gint64 connected;
  gint64 deadline;
  guint closed = 0;
  guint n_connected;

  /* Non-blocking connects: a listener that drops SYNs (backlog full)
   * makes clients wait for retransmits, which is what we measure. */
  for (guint i = 0; i < n; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GSocketAddress) address = g_inet_socket_address_new_from_string ("127.0.0.1", bridge->port);
      Raw *raw = g_new0 (Raw, 1);

      raw->socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
      g_assert_no_error (error);
      raw->in = g_byte_array_new ();
      g_socket_set_blocking (raw->socket, FALSE);
      if (!g_socket_connect (raw->socket, address, NULL, &error))
        g_assert_error (error, G_IO_ERROR, G_IO_ERROR_PENDING);
      g_ptr_array_add (raws, raw);
    }
  deadline = deadline_in (5000);
  do
    {
      n_connected = 0;
      for (guint i = 0; i < n; i++)
        {
          Raw *raw = g_ptr_array_index (raws, i);

          if (raw->connected)
            n_connected++;
          else if (g_socket_condition_check (raw->socket, G_IO_OUT) != 0)
            {
              g_autoptr(GError) error = NULL;

              g_assert_true (g_socket_check_connect_result (raw->socket, &error));
              raw->connected = TRUE;
              n_connected++;
            }
        }
      if (n_connected < n)
        iterate_for (20);
    }
  while (n_connected < n && g_get_monotonic_time () < deadline);
  connected = g_get_monotonic_time ();
  if (n_connected < n)
    {
      g_test_fail_printf ("only %u of %u connections established within 5 s (listen backlog too small?)",
                          n_connected, n);
      return;
    }
  g_test_message ("%u connections in %.2f s", n, (connected - start) / 1e6);
  assert_normal_client_works (bridge->port);

  /* handshake-timeout=2 closes them; the wait is generous because a
   * loaded machine can take seconds to serve 1,000 deadlines (only they
   * close these silent connections, so a longer wait proves the same). */
  deadline = connected + 30 * G_USEC_PER_SEC;
  while (closed < n && g_get_monotonic_time () < deadline)
    {
      closed = 0;
      for (guint i = 0; i < n; i++)
        {
          Raw *raw = g_ptr_array_index (raws, i);

          if (!raw->eof)
            raw_read_some (raw, g_get_monotonic_time ());
          g_assert_cmpuint (raw->in->len, ==, 0);
          if (raw->eof)
            closed++;
        }
      iterate_for (50);
    }
  g_test_message ("%u/%u closed %.2f s after the last connect", closed, n,
                  (g_get_monotonic_time () - connected) / 1e6);
  if (closed < n)
    {
      g_test_fail_printf ("only %u of %u idle connections closed by the handshake deadline", closed, n);
      return;
    }
  /* Timed-out connections were never reported to tor. */
  g_assert_cmpuint (twp_test_extor_server_get_n_connections (bridge->extor), ==, 1);
  assert_normal_client_works (bridge->port);
}

/* Backpressure: a client that never reads while the echo pushes data
 * back: the server stops reading instead of buffering. */
static void
test_attack_slow_reader (void)
{
  g_autoptr(Bridge) bridge = bridge_start (TWP_TEST_EXTOR_MODE_ECHO, NULL);
  guint64 rss_before = proc_rss_kib (bridge->proc);
  guint64 rss_max = rss_before;
  gsize sent = 0;
  gboolean stalled = FALSE;

  {
    g_autoptr(Raw) raw = ws_open (bridge->port, "/", NULL, 101, NULL);
    g_autoptr(GByteArray) frame = g_byte_array_new ();
    g_autofree guint8 *payload = random_bytes (60000);
    gint64 deadline = deadline_in (40000);

    frame_append (frame, 0x82, TRUE, payload, 60000);
    while (sent < 200 * (gsize) MIB && g_get_monotonic_time () < deadline)
      {
        g_autoptr(GError) error = NULL;

        /* Stalled: not writable for 2 s although the server could read. */
        if (!raw_send_until (raw, frame->data, frame->len, deadline_in (2000), &error))
          {
            g_assert_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
            stalled = TRUE;
            break;
          }
        sent += 60000;
        if (sent % (8 * MIB) < 60000)
          rss_max = MAX (rss_max, proc_rss_kib (bridge->proc));
      }
    rss_max = MAX (rss_max, proc_rss_kib (bridge->proc));
    g_test_message ("slow reader: %.1f MiB accepted before the stall; server VmRSS %" G_GUINT64_FORMAT
                    " -> max %" G_GUINT64_FORMAT " KiB", sent / (double) MIB, rss_before, rss_max);
  }
  g_assert_true (stalled);
  g_assert_cmpuint (rss_max - rss_before, <, 32 * 1024);
  if (!TWP_TEST_SANITIZED)
    g_assert_cmpuint (rss_max, <, RSS_LIMIT_KIB);
  assert_normal_client_works (bridge->port);
}

/* ---- 5. trusted reverse proxies ----------------------------------------- */

static void
assert_useraddr_for (Bridge     *bridge,
                     const char *header,
                     const char *host)
{
  g_autoptr(Raw) raw = ws_open (bridge->port, "/", header, 101, NULL);
  g_autofree char *expected = g_strdup_printf ("%s:%u", host, raw_local_port (raw));

  g_assert_cmpstr (twp_test_extor_server_get_last_useraddr (bridge->extor), ==, expected);
  ws_echo (raw, 100, FALSE);
}

/* Issue 11: a trusted proxy's header that names no client address is
 * refused, never carried on as the proxy's own (loopback, exempt) address;
 * tor hears nothing of it. */
static void
assert_refused_for (Bridge     *bridge,
                    const char *header,
                    guint       status)
{
  guint before = twp_test_extor_server_get_n_connections (bridge->extor);
  g_autoptr(Raw) raw = ws_open (bridge->port, "/", header, status, NULL);

  g_assert_true (raw_wait_eof (raw, 5000));
  g_assert_cmpuint (twp_test_extor_server_get_n_connections (bridge->extor), ==, before);
}

/* A request to try again and again: the status, or 0 when the server
 * closed the connection without an answer. */
static guint
try_upgrade_from (guint16     port,
                  const char *local_ip)
{
  g_autoptr(Raw) raw = raw_connect_from (port, local_ip);
  g_autoptr(GError) error = NULL;
  g_autofree char *request = g_strdup_printf ("GET / HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                                              "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                                              "Sec-WebSocket-Key: " WS_KEY "\r\n"
                                              "Sec-WebSocket-Version: 13\r\n\r\n", port);
  g_autofree char *head = NULL;

  /* A connection closed at accept may refuse the request itself. */
  if (!raw_send_until (raw, request, strlen (request), deadline_in (10000), &error))
    return 0;
  head = raw_read_head (raw, 10000);
  if (head == NULL)
    {
      g_assert_true (raw->eof);
      return 0;
    }
  return http_status (head);
}

/* Issue 11 (S11): connections count against their address from accept on,
 * so one address holding half-open connections (that never send a whole
 * head) cannot take the slots of another address. A declared proxy (one
 * that never connects here) turns the loopback exemption off, so that
 * 127.0.0.2 and 127.0.0.3 are two ordinary client addresses. */
static void
test_per_address_half_open (void)
{
  g_autoptr(Bridge) bridge = bridge_start (TWP_TEST_EXTOR_MODE_ECHO,
                                           "websocket:trusted-proxy=192.0.2.1;"
                                           "websocket:max-connections-per-ip=3;"
                                           "websocket:handshake-timeout=120");
  g_autoptr(GPtrArray) half = g_ptr_array_new_with_free_func ((GDestroyNotify) raw_free);
  g_autoptr(Raw) extra = NULL;
  g_autoptr(Raw) other = NULL;
  g_autofree char *expected = NULL;
  gint64 deadline;
  guint status;

  for (guint i = 0; i < 3; i++)
    {
      Raw *raw = raw_connect_from (bridge->port, "127.0.0.2");

      raw_send_str (raw, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n");
      g_ptr_array_add (half, raw);
    }
  /* The fourth from that address is closed at once, unanswered: the
   * server accepts in order, so the three above already count. */
  extra = raw_connect_from (bridge->port, "127.0.0.2");
  g_assert_true (raw_closed_unanswered (extra, 10000));

  /* Another address is served meanwhile, and tor learns it. */
  other = ws_upgrade (raw_connect_from (bridge->port, "127.0.0.3"), bridge->port, "/", NULL, 101, NULL);
  expected = g_strdup_printf ("127.0.0.3:%u", raw_local_port (other));
  g_assert_cmpstr (twp_test_extor_server_get_last_useraddr (bridge->extor), ==, expected);
  ws_echo (other, 1000, FALSE);
  for (guint i = 0; i < half->len; i++)
    g_assert_true (raw_still_waiting (g_ptr_array_index (half, i)));

  /* A slot given back is a slot again, once the server noticed the close. */
  g_ptr_array_remove_index (half, 0);
  deadline = deadline_in (10000);
  while ((status = try_upgrade_from (bridge->port, "127.0.0.2")) == 0)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      iterate_for (50);
    }
  g_assert_cmpuint (status, ==, 101);
}

/* Issue 11: at max-connections the oldest connections still without a
 * complete head are closed for a newcomer, never open tunnels; only when
 * every slot is a tunnel is the newcomer refused. Loopback peers are not
 * counted per address here (no trusted proxy), so only the cap applies. */
static void
test_max_connections_evicts_half_open (void)
{
  g_autoptr(Bridge) bridge = bridge_start (TWP_TEST_EXTOR_MODE_ECHO,
                                           "websocket:max-connections=6;"
                                           "websocket:handshake-timeout=120");
  g_autoptr(GPtrArray) tunnels = g_ptr_array_new_with_free_func ((GDestroyNotify) raw_free);
  g_autoptr(GPtrArray) half = g_ptr_array_new_with_free_func ((GDestroyNotify) raw_free);
  g_autoptr(Raw) refused = NULL;

  for (guint i = 0; i < 2; i++)
    g_ptr_array_add (tunnels, ws_open (bridge->port, "/", NULL, 101, NULL));
  for (guint i = 0; i < 4; i++)
    {
      Raw *raw = raw_connect (bridge->port);

      /* Half a head, or nothing at all. */
      if (i % 2 == 0)
        raw_send_str (raw, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n");
      g_ptr_array_add (half, raw);
    }

  /* The cap is reached: each good client costs the oldest half-open one. */
  for (guint i = 0; i < 4; i++)
    {
      g_ptr_array_add (tunnels, ws_open (bridge->port, "/", NULL, 101, NULL));
      g_assert_true (raw_closed_unanswered (g_ptr_array_index (half, i), 10000));
      for (guint j = i + 1; j < half->len; j++)
        g_assert_true (raw_still_waiting (g_ptr_array_index (half, j)));
    }

  /* Six tunnels: the next one is refused, and every tunnel still works. */
  refused = raw_connect (bridge->port);
  g_assert_true (raw_closed_unanswered (refused, 10000));
  for (guint i = 0; i < tunnels->len; i++)
    ws_echo (g_ptr_array_index (tunnels, i), 1000, FALSE);
  g_assert_cmpuint (twp_test_extor_server_get_n_okay (bridge->extor), ==, 6);
}

/* Whether tor got a LOG warning holding @text. */
static gboolean
proc_warned (Proc       *proc,
             const char *text)
{
  for (guint i = 0; i < proc->lines->len; i++)
    {
      const char *line = g_ptr_array_index (proc->lines, i);

      if (g_str_has_prefix (line, "LOG SEVERITY=warning ") && strstr (line, text) != NULL)
        return TRUE;
    }
  return FALSE;
}

typedef struct {
  Proc *proc;
  const char *text;
} LogWait;

static gboolean
log_seen (gpointer data)
{
  LogWait *wait = data;

  return proc_warned (wait->proc, wait->text);
}

/* The client gets the documented 503 (not a bare close at the handshake
 * deadline) and tor's log names @step. */
static void
assert_tor_stall_answered (Proc       *proc,
                           const char *step)
{
  g_autoptr(Raw) raw = ws_open (proc->port, "/", NULL, 503, NULL);
  LogWait wait = { proc, step };

  g_assert_true (raw_wait_eof (raw, 10000));
  g_assert_true (wait_until (log_seen, &wait, 10000));
  g_assert_false (proc->exited);
}

/* Issue 11 (X5): tor's step has its own deadline inside the handshake one
 * (handshake-timeout=6: 3 s for tor), whichever step stalls: an ExtORPort
 * that accepts and never speaks, one that never says OKAY, and one whose
 * accept queue is full (the connect itself stalls). */
static void
test_extorport_silent (void)
{
  const struct {
    TwpTestExtOrMode mode;
    const char *step;
  } cases[] = {
    { TWP_TEST_EXTOR_MODE_SILENT, "waiting for tor's authentication types" },
    { TWP_TEST_EXTOR_MODE_NO_OKAY, "waiting for OKAY" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(Bridge) bridge = bridge_start (cases[i].mode, "websocket:handshake-timeout=6");

      assert_tor_stall_answered (bridge->proc, cases[i].step);
      g_assert_cmpuint (twp_test_extor_server_get_n_connections (bridge->extor), ==, 1);
      g_assert_cmpuint (twp_test_extor_server_get_n_okay (bridge->extor), ==, 0);
    }

  {
    g_autofree char *dir = make_tmpdir ();
    g_autoptr(TwpTestExtOrServer) extor = twp_test_extor_server_new (dir, TWP_TEST_EXTOR_MODE_ECHO);
    g_autoptr(GSocket) listener = NULL;
    g_autoptr(GSocketAddress) any = g_inet_socket_address_new_from_string ("127.0.0.1", 0);
    g_autoptr(GSocketAddress) bound = NULL;
    g_autoptr(Raw) filler = NULL;
    g_autoptr(GError) error = NULL;
    g_autofree char *address = NULL;
    g_auto(GStrv) env = NULL;

    /* A listener that never accepts, its queue (backlog 0: one) full:
     * Linux drops further SYNs, so connecting to it stalls. */
    listener = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
    g_assert_no_error (error);
    g_socket_set_listen_backlog (listener, 0);
    g_socket_bind (listener, any, FALSE, &error);
    g_assert_no_error (error);
    g_socket_listen (listener, &error);
    g_assert_no_error (error);
    bound = g_socket_get_local_address (listener, &error);
    g_assert_no_error (error);
    filler = raw_connect (g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound)));
    address = g_strdup_printf ("127.0.0.1:%u", g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound)));

    env = server_environ (dir, extor, NULL, "websocket:handshake-timeout=6");
    env = g_environ_setenv (env, "TOR_PT_EXTENDED_SERVER_PORT", address, TRUE);
    {
      g_autoptr(Proc) proc = proc_spawn ("--server", env);

      g_assert_true (proc_wait_done (proc));
      assert_tor_stall_answered (proc, "connecting stalled for 3000 ms");
      proc_stop (g_steal_pointer (&proc));
    }
    g_socket_close (listener, NULL);
    remove_tree (dir);
  }
}

/* S11: one client address gets at most max-connections-per-ip tunnels;
 * others are still served, and a freed slot can be used again. The address
 * comes through a trusted proxy because loopback is exempt. */
static void
test_per_address_limit (void)
{
  g_autoptr(Bridge) bridge = bridge_start (TWP_TEST_EXTOR_MODE_ECHO,
                                           "websocket:trusted-proxy=127.0.0.1;"
                                           "websocket:max-connections-per-ip=2");
  const char *greedy = "X-Forwarded-For: 203.0.113.9\r\n";
  g_autoptr(Raw) first = ws_open (bridge->port, "/", greedy, 101, NULL);
  g_autoptr(Raw) second = ws_open (bridge->port, "/", greedy, 101, NULL);
  g_autoptr(Raw) refused = ws_open (bridge->port, "/", greedy, 429, NULL);
  g_autoptr(Raw) other = ws_open (bridge->port, "/", "X-Forwarded-For: 198.51.100.7\r\n", 101, NULL);
  g_autoptr(Raw) again = NULL;
  gint64 deadline;

  ws_echo (first, 100, FALSE);
  ws_echo (other, 100, FALSE);
  g_clear_pointer (&first, raw_free);

  /* Once the server has noticed the closed tunnel, the address has a slot
   * again: retry (with a deadline) until the upgrade is accepted. */
  deadline = deadline_in (5000);
  for (;;)
    {
      g_autofree char *request = g_strdup_printf ("GET / HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                                                  "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                                                  "Sec-WebSocket-Key: " WS_KEY "\r\n"
                                                  "Sec-WebSocket-Version: 13\r\n%s\r\n",
                                                  bridge->port, greedy);
      g_autofree char *head = NULL;

      again = raw_connect (bridge->port);
      raw_send_str (again, request);
      head = raw_read_head (again, 10000);
      g_assert_nonnull (head);
      if (http_status (head) == 101)
        break;
      g_assert_cmpuint (http_status (head), ==, 429);
      g_clear_pointer (&again, raw_free);
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_usleep (50 * 1000);
    }
  ws_echo (again, 100, FALSE);
  ws_echo (second, 100, FALSE);
  g_assert_nonnull (refused);
}

static void
test_trusted_proxy (void)
{
  {
    g_autoptr(Bridge) bridge = bridge_start (TWP_TEST_EXTOR_MODE_ECHO, "websocket:trusted-proxy=127.0.0.1");

    assert_useraddr_for (bridge, "X-Forwarded-For: 203.0.113.9\r\n", "203.0.113.9");
    /* The header the proxy appends to is the last element. */
    assert_useraddr_for (bridge, "X-Forwarded-For: 198.51.100.1, 203.0.113.9\r\n", "203.0.113.9");
    /* The proxy's own request (no header) is its own. */
    assert_useraddr_for (bridge, NULL, "127.0.0.1");
    /* By default only X-Forwarded-For counts: nginx passes a client's own
     * Forwarded header through untouched. */
    assert_useraddr_for (bridge, "Forwarded: for=\"[2001:db8::7]:4711\"\r\n", "127.0.0.1");
    /* Issue 11: no client address in the proxy's header: 400. */
    assert_refused_for (bridge, "X-Forwarded-For: not-an-address\r\n", 400);
    assert_refused_for (bridge, "X-Forwarded-For: \"x, 203.0.113.9\r\n", 400);
    assert_refused_for (bridge, "X-Forwarded-For: 0.0.0.0\r\n", 400);
    assert_refused_for (bridge, "X-Forwarded-For: 198.51.100.1, ::\r\n", 400);
    assert_refused_for (bridge, "X-Forwarded-For: 224.0.0.1\r\n", 400);
    assert_useraddr_for (bridge, "X-Forwarded-For: 203.0.113.9\r\n", "203.0.113.9");
  }
  {
    g_autoptr(Bridge) bridge = bridge_start (TWP_TEST_EXTOR_MODE_ECHO,
                                             "websocket:trusted-proxy=127.0.0.1;"
                                             "websocket:trusted-proxy-header=forwarded");

    assert_useraddr_for (bridge, "Forwarded: for=\"[2001:db8::7]:4711\"\r\n", "[2001:db8::7]");
    assert_useraddr_for (bridge, "Forwarded: for=192.0.2.60;proto=http\r\n", "192.0.2.60");
    assert_useraddr_for (bridge, "X-Forwarded-For: 203.0.113.9\r\n", "127.0.0.1");
    assert_refused_for (bridge, "Forwarded: for=\"x, for=203.0.113.9\r\n", 400);
    assert_refused_for (bridge, "Forwarded: for=\"[::]\"\r\n", 400);
  }
  {
    g_autoptr(Bridge) bridge = bridge_start (TWP_TEST_EXTOR_MODE_ECHO, NULL);

    assert_useraddr_for (bridge, "X-Forwarded-For: 203.0.113.9\r\n", "127.0.0.1");
    assert_useraddr_for (bridge, "Forwarded: for=\"[2001:db8::7]:4711\"\r\n", "127.0.0.1");
  }
  {
    g_autoptr(Bridge) bridge = bridge_start (TWP_TEST_EXTOR_MODE_ECHO, "websocket:trusted-proxy=10.0.0.0/8");

    assert_useraddr_for (bridge, "X-Forwarded-For: 203.0.113.9\r\n", "127.0.0.1");
  }
}

/* ---- 6. shutdown --------------------------------------------------------- */

/* K1: SIGTERM ends the server at once, open connections or not. */
static void
test_shutdown_sigterm (void)
{
  g_autoptr(Bridge) bridge = bridge_start (TWP_TEST_EXTOR_MODE_ECHO, NULL);
  g_autoptr(Raw) open = ws_open (bridge->port, "/", NULL, 101, NULL);
  g_autoptr(Raw) half = raw_connect (bridge->port);
  gint64 start;

  ws_echo (open, 1000, FALSE);
  raw_send_str (half, "GET / HTTP/1.1\r\n");
  start = g_get_monotonic_time ();
  g_subprocess_send_signal (bridge->proc->process, SIGTERM);
  g_assert_true (proc_wait_exit (bridge->proc, 2000));
  g_test_message ("SIGTERM: exit after %.3f s", (g_get_monotonic_time () - start) / 1e6);
  g_assert_true (g_subprocess_get_if_exited (bridge->proc->process));
  g_assert_true (raw_wait_eof (open, 1000));
  g_assert_true (raw_wait_eof (half, 1000));
  proc_assert_clean_after_done (bridge->proc);
  g_clear_pointer (&bridge->proc, proc_free);
}

/* G10, K3: stdin EOF with TOR_PT_EXIT_ON_STDIN_CLOSE=1 ends the server. */
static void
test_shutdown_stdin (void)
{
  g_autoptr(Bridge) bridge = bridge_start (TWP_TEST_EXTOR_MODE_ECHO, NULL);
  g_autoptr(Raw) open = ws_open (bridge->port, "/", NULL, 101, NULL);

  proc_close_stdin (bridge->proc);
  g_assert_true (proc_wait_exit (bridge->proc, 2000));
  g_assert_true (g_subprocess_get_if_exited (bridge->proc->process));
  g_assert_cmpint (g_subprocess_get_exit_status (bridge->proc->process), ==, 0);
  g_assert_true (raw_wait_eof (open, 1000));
  g_clear_pointer (&bridge->proc, proc_free);
}

static gboolean
connect_refused (gpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Raw) raw = raw_try_connect (GPOINTER_TO_UINT (data), &error);

  return raw == NULL && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED);
}

/* K4: the first SIGINT stops accepting but lets open tunnels run; the
 * second one exits. */
static void
test_shutdown_sigint (void)
{
  g_autoptr(Bridge) bridge = bridge_start (TWP_TEST_EXTOR_MODE_ECHO, NULL);
  g_autoptr(Raw) open = ws_open (bridge->port, "/", NULL, 101, NULL);

  ws_echo (open, 1000, FALSE);
  g_subprocess_send_signal (bridge->proc->process, SIGINT);
  g_assert_true (wait_until (connect_refused, GUINT_TO_POINTER (bridge->port), 2000));
  g_assert_false (bridge->proc->exited);
  ws_echo (open, 50000, FALSE);
  g_subprocess_send_signal (bridge->proc->process, SIGINT);
  g_assert_true (proc_wait_exit (bridge->proc, 2000));
  g_assert_true (g_subprocess_get_if_exited (bridge->proc->process));
  g_assert_true (raw_wait_eof (open, 1000));
  g_clear_pointer (&bridge->proc, proc_free);
}

/* K4: after the first SIGINT the server exits by itself once the last
 * tunnel ends. */
static void
test_shutdown_sigint_drains (void)
{
  g_autoptr(Bridge) bridge = bridge_start (TWP_TEST_EXTOR_MODE_ECHO, NULL);
  g_autoptr(Raw) open = ws_open (bridge->port, "/", NULL, 101, NULL);

  g_subprocess_send_signal (bridge->proc->process, SIGINT);
  g_assert_true (wait_until (connect_refused, GUINT_TO_POINTER (bridge->port), 2000));
  ws_echo (open, 1000, FALSE);
  raw_send_close (open, 1000);
  raw_expect_close (open, 1000);
  g_assert_true (proc_wait_exit (bridge->proc, 3000));
  g_assert_cmpint (g_subprocess_get_exit_status (bridge->proc->process), ==, 0);
  g_clear_pointer (&bridge->proc, proc_free);
}

/* ---- 7. TLS --------------------------------------------------------------- */

static void
make_certificate (const char  *dir,
                  char       **cert_out,
                  char       **key_out,
                  char       **pin_out)
{
  g_autofree char *cert = g_build_filename (dir, "cert.pem", NULL);
  g_autofree char *key = g_build_filename (dir, "key.pem", NULL);
  const char *argv[] = { "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                         "-nodes", "-subj", "/CN=localhost", "-days", "2", "-keyout", key, "-out", cert, NULL };
  g_autoptr(GError) error = NULL;
  g_autoptr(GTlsCertificate) certificate = NULL;
  g_autoptr(GByteArray) der = NULL;
  int status;

  g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL |
                G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, NULL, NULL, &status, &error);
  g_assert_no_error (error);
  g_spawn_check_wait_status (status, &error);
  g_assert_no_error (error);
  certificate = g_tls_certificate_new_from_file (cert, &error);
  g_assert_no_error (error);
  g_object_get (certificate, "certificate", &der, NULL);
  *pin_out = g_compute_checksum_for_data (G_CHECKSUM_SHA256, der->data, der->len);
  *cert_out = g_steal_pointer (&cert);
  *key_out = g_steal_pointer (&key);
}

/* wss://: the server terminates TLS; our client pins the certificate. */
static void
test_tls (void)
{
  g_autofree char *openssl = NULL;
  g_autofree char *certdir = NULL;
  g_autofree char *cert = NULL;
  g_autofree char *key = NULL;
  g_autofree char *pin = NULL;
  g_autofree char *options = NULL;
  g_autofree char *args = NULL;
  g_autofree char *bad_args = NULL;
  g_autoptr(Chain) chain = NULL;
  gsize size = 4 * MIB;
  g_autofree guint8 *data = random_bytes (size);

  /* scripts/install-deps.sh installs openssl: its absence is a failure. */
  openssl = g_find_program_in_path ("openssl");
  g_assert_nonnull (openssl);
  spawn_without_leak_check = TRUE;
  certdir = make_tmpdir ();
  make_certificate (certdir, &cert, &key, &pin);
  options = g_strdup_printf ("websocket:tls-cert=%s;websocket:tls-key=%s", cert, key);
  chain = chain_start (options);

  args = g_strdup_printf ("url=wss://localhost:%u/;cert-sha256=%s", chain->bridge->port, pin);
  {
    SocksConn *conn = socks_conn_new (chain->client->port, data, size);
    SocksRun run = { &conn, 1, args, chain->bridge->port };

    socks_run (&run, 30000);
    check_socks_done (conn);
    socks_conn_free (conn);
  }
  {
    /* A plain ws:// client gets no WebSocket from a TLS port. */
    g_autoptr(Raw) raw = raw_connect (chain->bridge->port);

    raw_send_str (raw, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n");
    g_assert_true (raw_wait_eof (raw, 12000));
  }

  /* Another certificate's pin: the SOCKS request fails. */
  pin[0] = pin[0] == '0' ? '1' : '0';
  bad_args = g_strdup_printf ("url=wss://localhost:%u/;cert-sha256=%s", chain->bridge->port, pin);
  {
    SocksConn *conn = socks_conn_new (chain->client->port, data, 1000);
    SocksRun run = { &conn, 1, bad_args, chain->bridge->port };

    socks_run (&run, 30000);
    g_assert_cmpint (conn->state, ==, SOCKS_FAILED);
    g_assert_cmpuint (conn->received, ==, 0);
    g_test_message ("wrong pin: %s, reply %02x", conn->failure, conn->socks_reply);
    socks_conn_free (conn);
  }
  g_assert_cmpuint (twp_test_extor_server_get_n_okay (chain->bridge->extor), ==, 1);
  g_clear_pointer (&chain, chain_free);
  spawn_without_leak_check = FALSE;
  remove_tree (certdir);
}

/* ---- 8. metrics ----------------------------------------------------------- */

/* Addresses and names the metrics tests use; none may show in a scrape or
 * in tor's log. */
#define CLIENT_A "203.0.113.9"
#define CLIENT_B "198.51.100.7"
#define ORIGIN_OK "https://ok.example"
#define ORIGIN_BAD "https://evil.example"

/* The body of GET /metrics, after checking the response head. */
static char *
metrics_scrape (guint16 port)
{
  g_autoptr(Raw) raw = raw_connect (port);
  g_autofree char *head = NULL;
  g_autofree char *type = NULL;
  g_autofree char *length = NULL;
  guint64 len;
  char *body;

  raw_send_str (raw, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/plain\r\n\r\n");
  head = raw_read_head (raw, 10000);
  g_assert_nonnull (head);
  g_assert_cmpuint (http_status (head), ==, 200);
  type = http_header (head, "content-type");
  g_assert_cmpstr (type, ==, "text/plain; version=0.0.4; charset=utf-8");
  length = http_header (head, "content-length");
  g_assert_nonnull (length);
  g_assert_true (g_ascii_string_to_unsigned (length, 10, 1, 1 * MIB, &len, NULL));
  g_assert_true (raw_fill (raw, len, deadline_in (10000)));
  body = g_strndup ((const char *) raw->in->data, len);
  g_assert_cmpuint (strlen (body), ==, len);
  /* One response per connection. */
  g_byte_array_set_size (raw->in, 0);
  g_assert_true (raw_wait_eof (raw, 10000));
  return body;
}

/* The value of one series ("name" or "name{labels}"), which must exist. */
static guint64
metric (const char *body,
        const char *series)
{
  g_autofree char *needle = g_strdup_printf ("\n%s ", series);
  g_autofree char *text = NULL;
  const char *found = strstr (body, needle);
  guint64 value;

  if (found == NULL)
    g_error ("no series %s in the scrape", series);
  found += strlen (needle);
  text = g_strndup (found, strcspn (found, "\n"));
  g_assert_true (g_ascii_string_to_unsigned (text, 10, 0, G_MAXUINT64, &value, NULL));
  return value;
}

/* Scrapes until @series reads @expected: the server updates some counters
 * only after our side of a connection is done. */
static void
assert_metric_reaches (guint16     port,
                       const char *series,
                       guint64     expected)
{
  gint64 deadline = deadline_in (15000);

  for (;;)
    {
      g_autofree char *body = metrics_scrape (port);
      guint64 value = metric (body, series);

      if (value == expected)
        return;
      if (value > expected || g_get_monotonic_time () >= deadline)
        g_error ("%s is %" G_GUINT64_FORMAT ", expected %" G_GUINT64_FORMAT, series, value, expected);
      iterate_for (50);
    }
}

/* Debian's promtool (package prometheus) lints the exposition. */
static void
assert_promtool_accepts (const char *body)
{
  g_autofree char *promtool = g_find_program_in_path ("promtool");
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *output = NULL;

  /* scripts/install-deps.sh installs it: its absence is a failure. */
  g_assert_nonnull (promtool);
  process = g_subprocess_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                              G_SUBPROCESS_FLAGS_STDERR_MERGE, &error,
                              promtool, "check", "metrics", NULL);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8 (process, body, NULL, &output, NULL, &error);
  g_assert_no_error (error);
  if (output[0] != '\0')
    g_test_message ("promtool: %s", output);
  g_assert_true (g_subprocess_get_if_exited (process));
  g_assert_cmpint (g_subprocess_get_exit_status (process), ==, 0);
  g_assert_cmpstr (output, ==, "");
}

/* Nothing that identifies a client, the bridge or its configuration. */
static void
assert_nothing_identifying (const char *text,
                            guint16     port)
{
  static const char *const secrets[] = { CLIENT_A, CLIENT_B, "ok.example", "evil.example", "127.0.0.1",
                                         "localhost", "/ws", NULL };
  g_autofree char *port_text = g_strdup_printf (":%u", port);

  for (guint i = 0; secrets[i] != NULL; i++)
    if (strstr (text, secrets[i]) != NULL)
      g_error ("\"%s\" appears in: %s", secrets[i], text);
  g_assert_null (strstr (text, port_text));
}

static void
assert_logs_identify_nothing (Proc    *proc,
                              guint16  port)
{
  for (guint i = 0; i < proc->lines->len; i++)
    {
      const char *line = g_ptr_array_index (proc->lines, i);

      if (g_str_has_prefix (line, "LOG "))
        assert_nothing_identifying (line, port);
    }
}

/* A bridge with metrics on a free loopback port and a heartbeat every
 * second. */
static Bridge *
metrics_bridge_start (TwpTestExtOrMode  mode,
                      const char       *options,
                      guint16          *metrics_port)
{
  Bridge *bridge = g_new0 (Bridge, 1);
  g_auto(GStrv) env = NULL;
  g_autofree char *all_options = NULL;

  *metrics_port = pick_free_port ();
  /* pt-spec: a colon inside a value is escaped. */
  all_options = g_strdup_printf ("websocket:metrics=127.0.0.1\\:%u%s%s", *metrics_port,
                                 options != NULL ? ";" : "", options != NULL ? options : "");
  bridge->dir = make_tmpdir ();
  bridge->extor = twp_test_extor_server_new (bridge->dir, mode);
  env = server_environ (bridge->dir, bridge->extor, NULL, all_options);
  env = g_environ_setenv (env, "TWP_HEARTBEAT_SECONDS_FOR_TESTS", "1", TRUE);
  bridge->proc = proc_spawn ("--server", env);
  g_assert_true (proc_wait_done (bridge->proc));
  bridge->port = bridge->proc->port;
  return bridge;
}

typedef struct {
  Proc *proc;
  const char *const *needles;
} HeartbeatWait;

static gboolean
heartbeat_seen (gpointer data)
{
  HeartbeatWait *wait = data;

  for (guint i = 0; i < wait->proc->lines->len; i++)
    {
      const char *line = g_ptr_array_index (wait->proc->lines, i);
      gboolean all = g_str_has_prefix (line, "LOG SEVERITY=notice MESSAGE=") &&
                     strstr (line, "Heartbeat: ") != NULL;

      for (guint j = 0; all && wait->needles[j] != NULL; j++)
        all = strstr (line, wait->needles[j]) != NULL;
      if (all)
        return TRUE;
    }
  return FALSE;
}

/* Keeps what arrives until the peer closes; FALSE at the deadline. */
static gboolean
raw_read_until_eof (Raw   *raw,
                    guint  timeout_ms)
{
  gint64 deadline = deadline_in (timeout_ms);

  while (!raw->eof)
    if (!raw_read_some (raw, deadline))
      return FALSE;
  return TRUE;
}

/* Sends a hand-written request and expects @status. */
static void
raw_request_expect (guint16     port,
                    const char *request,
                    guint       status)
{
  g_autoptr(Raw) raw = raw_connect (port);
  g_autofree char *head = NULL;

  raw_send_str (raw, request);
  head = raw_read_head (raw, 10000);
  g_assert_nonnull (head);
  g_assert_cmpuint (http_status (head), ==, status);
}

/* Traffic and attacks on one bridge; every counter moves by exactly what
 * was done, the exposition passes promtool, and neither the scrape nor
 * tor's log (the hourly line, here every second) names anyone. */
static void
test_metrics_counters (void)
{
  guint16 mport;
  g_autoptr(Bridge) bridge = metrics_bridge_start (TWP_TEST_EXTOR_MODE_ECHO,
                                                   "websocket:path=/ws;websocket:origin=https\\://ok.example;"
                                                   "websocket:trusted-proxy=127.0.0.1;"
                                                   "websocket:max-connections-per-ip=1;"
                                                   "websocket:handshake-timeout=2", &mport);
  const char *ok = "Origin: " ORIGIN_OK "\r\n";
  g_autofree char *hello = g_strdup_printf ("Origin: %s\r\nX-Forwarded-For: %s\r\n", ORIGIN_OK, CLIENT_A);
  g_autofree char *base64 = g_strdup_printf ("Origin: %s\r\nX-Forwarded-For: %s\r\n"
                                             "Sec-WebSocket-Protocol: base64\r\n", ORIGIN_OK, CLIENT_B);
  g_autofree char *body = NULL;
  guint64 bytes = 0;

  body = metrics_scrape (mport);
  assert_promtool_accepts (body);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_connections_accepted_total"), ==, 0);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_handshakes_completed_total"), ==, 0);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_connections_max"), ==, 16384);
  g_clear_pointer (&body, g_free);

  {
    /* A binary tunnel, open while we look, then closed cleanly. */
    g_autoptr(Raw) tunnel = ws_open (bridge->port, "/ws", hello, 101, NULL);

    ws_echo (tunnel, 60000, FALSE);
    bytes += 60000;
    body = metrics_scrape (mport);
    g_assert_cmpuint (metric (body, "tor_websocket_proxy_tunnels_open{mode=\"binary\",scheme=\"ws\"}"), ==, 1);
    g_assert_cmpuint (metric (body, "tor_websocket_proxy_tunnels_total{mode=\"binary\",scheme=\"ws\"}"), ==, 1);
    g_assert_cmpuint (metric (body, "tor_websocket_proxy_connections_open"), ==, 1);
    g_assert_cmpuint (metric (body, "tor_websocket_proxy_handshakes_completed_total"), ==, 1);
    g_assert_cmpuint (metric (body, "tor_websocket_proxy_handshake_duration_seconds_count"), ==, 1);
    g_assert_cmpuint (metric (body, "tor_websocket_proxy_extorport_setup_duration_seconds_count"), ==, 1);
    g_assert_cmpuint (metric (body, "tor_websocket_proxy_bytes_total{direction=\"from_websocket\"}"), ==, bytes);
    g_assert_cmpuint (metric (body, "tor_websocket_proxy_bytes_total{direction=\"to_websocket\"}"), ==, bytes);
    g_clear_pointer (&body, g_free);

    /* The same address again while its one slot is taken: 429. */
    raw_free (ws_open (bridge->port, "/ws", hello, 429, NULL));
    /* Gone without a close frame. */
  }
  assert_metric_reaches (mport, "tor_websocket_proxy_tunnel_closes_total{reason=\"abnormal\"}", 1);
  {
    g_autoptr(Raw) tunnel = ws_open (bridge->port, "/ws", hello, 101, NULL);

    ws_echo (tunnel, 1000, FALSE);
    bytes += 1000;
    raw_send_close (tunnel, 1000);
    raw_expect_close (tunnel, 1000);
  }
  assert_metric_reaches (mport, "tor_websocket_proxy_tunnel_closes_total{reason=\"normal\"}", 1);
  {
    /* base64, then text that is not base64: 1007. */
    g_autoptr(Raw) tunnel = ws_open (bridge->port, "/ws", base64, 101, NULL);

    ws_echo (tunnel, 3000, TRUE);
    bytes += 3000;
    raw_send_frame (tunnel, 0x81, "!!!!", 4);
    raw_expect_close (tunnel, 1007);
  }
  {
    /* Unmasked: 1002. */
    g_autoptr(Raw) tunnel = ws_open (bridge->port, "/ws", ok, 101, NULL);
    g_autoptr(GByteArray) frame = g_byte_array_new ();

    frame_append (frame, 0x82, FALSE, "hello", 5);
    raw_send (tunnel, frame->data, frame->len);
    raw_expect_close (tunnel, 1002);
  }
  {
    /* Text without base64: 1003. */
    g_autoptr(Raw) tunnel = ws_open (bridge->port, "/ws", ok, 101, NULL);

    raw_send_frame (tunnel, 0x81, "SGVsbG8=", 8);
    raw_expect_close (tunnel, 1003);
  }
  {
    /* Too big: 1009. */
    g_autoptr(Raw) tunnel = ws_open (bridge->port, "/ws", ok, 101, NULL);
    g_autoptr(GByteArray) frame = g_byte_array_new ();
    guint8 mask[4];

    frame_append_header (frame, 0x82, TRUE, 100 * MIB, mask);
    raw_send (tunnel, frame->data, frame->len);
    raw_expect_close (tunnel, 1009);
  }
  {
    /* The peer closes with a status of its own. */
    g_autoptr(Raw) tunnel = ws_open (bridge->port, "/ws", ok, 101, NULL);

    raw_send_close (tunnel, 4000);
    raw_expect_close (tunnel, 4000);
  }

  /* Refusals, one of each. */
  g_clear_pointer (&body, g_free);
  raw_free (ws_open (bridge->port, "/nope", ok, 404, NULL));
  raw_free (ws_open (bridge->port, "/ws", "Origin: " ORIGIN_BAD "\r\n", 403, NULL));
  raw_request_expect (bridge->port,
                      "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: " WS_KEY "\r\nSec-WebSocket-Version: 8\r\n\r\n", 426);
  raw_request_expect (bridge->port, "GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n", 404);
  raw_request_expect (bridge->port, "NOT HTTP AT ALL\r\n\r\n", 400);
  {
    /* Half a request, then silence: dropped at handshake-timeout. */
    g_autoptr(Raw) slow = raw_connect (bridge->port);

    raw_send_str (slow, "GET /ws HTTP/1.1\r\n");
    g_assert_true (raw_wait_eof (slow, 10000));
  }

  assert_metric_reaches (mport, "tor_websocket_proxy_connections_open", 0);
  assert_metric_reaches (mport, "tor_websocket_proxy_tunnel_closes_total{reason=\"peer_close\"}", 1);
  assert_metric_reaches (mport, "tor_websocket_proxy_tunnel_closes_total{reason=\"protocol\"}", 4);
  body = metrics_scrape (mport);
  assert_promtool_accepts (body);
  g_test_message ("%s", body);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_connections_accepted_total"), ==, 14);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_tunnels_total{mode=\"binary\",scheme=\"ws\"}"), ==, 6);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_tunnels_total{mode=\"base64\",scheme=\"ws\"}"), ==, 1);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_tunnels_total{mode=\"binary\",scheme=\"wss\"}"), ==, 0);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_tunnels_open{mode=\"binary\",scheme=\"ws\"}"), ==, 0);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_tunnels_open{mode=\"base64\",scheme=\"ws\"}"), ==, 0);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_handshakes_completed_total"), ==, 7);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_handshake_duration_seconds_count"), ==, 7);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_handshake_duration_seconds_bucket{le=\"+Inf\"}"), ==, 7);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_extorport_setup_duration_seconds_count"), ==, 7);
  {
    /* One refusal of each kind done above, none of the others. */
    static const guint64 refused[TWP_SERVER_N_REFUSALS] = {
      [TWP_SERVER_REFUSAL_BAD_PATH] = 1,
      [TWP_SERVER_REFUSAL_ORIGIN] = 1,
      [TWP_SERVER_REFUSAL_OLD_VERSION] = 1,
      [TWP_SERVER_REFUSAL_PER_ADDRESS_LIMIT] = 1,
      [TWP_SERVER_REFUSAL_HANDSHAKE_TIMEOUT] = 1,
      [TWP_SERVER_REFUSAL_NOT_WEBSOCKET] = 1,
      [TWP_SERVER_REFUSAL_BAD_REQUEST] = 1,
    };

    for (guint i = 0; i < TWP_SERVER_N_REFUSALS; i++)
      {
        g_autofree char *series = g_strdup_printf ("tor_websocket_proxy_handshakes_refused_total{reason=\"%s\"}",
                                                   twp_server_refusal_to_string (i));

        g_assert_cmpuint (metric (body, series), ==, refused[i]);
      }
  }
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_tunnel_closes_total{reason=\"normal\"}"), ==, 1);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_tunnel_closes_total{reason=\"abnormal\"}"), ==, 1);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_tunnel_closes_total{reason=\"idle\"}"), ==, 0);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_tunnel_closes_total{reason=\"stall\"}"), ==, 0);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_tunnel_closes_total{reason=\"keepalive\"}"), ==, 0);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_protocol_closes_total{code=\"1002\"}"), ==, 1);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_protocol_closes_total{code=\"1003\"}"), ==, 1);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_protocol_closes_total{code=\"1007\"}"), ==, 1);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_protocol_closes_total{code=\"1009\"}"), ==, 1);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_peer_closes_total{code=\"1000\"}"), ==, 1);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_peer_closes_total{code=\"other\"}"), ==, 1);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_bytes_total{direction=\"from_websocket\"}"), ==, bytes);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_bytes_total{direction=\"to_websocket\"}"), ==, bytes);
  for (guint i = 0; i < TWP_SERVER_N_EXTORPORT_FAILURES; i++)
    {
      g_autofree char *series = g_strdup_printf ("tor_websocket_proxy_extorport_failures_total{kind=\"%s\"}",
                                                 twp_server_extorport_failure_to_string (i));

      g_assert_cmpuint (metric (body, series), ==, 0);
    }
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_resident_memory_bytes"), >, 1 * MIB);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_open_fds"), >=, 4);
  assert_nothing_identifying (body, bridge->port);

  {
    /* The heartbeat in tor's log says the same. */
    static const char *const needles[] = { "7 opened since start", "bad_path 1", "per_address_limit 1",
                                           "protocol 4", "ExtORPort failures: none", NULL };
    HeartbeatWait wait = { bridge->proc, needles };

    g_assert_true (wait_until (heartbeat_seen, &wait, 10000));
  }
  assert_logs_identify_nothing (bridge->proc, bridge->port);
}

/* tor's side failing, by kind, and the connection cap. */
static void
test_metrics_extorport (void)
{
  guint16 mport;
  g_autoptr(Bridge) bridge = metrics_bridge_start (TWP_TEST_EXTOR_MODE_AUTH_FAIL, "websocket:max-connections=2",
                                                   &mport);
  const char *cookie = twp_test_extor_server_get_cookie_path (bridge->extor);
  g_autofree char *body = NULL;

  raw_free (ws_open (bridge->port, "/", NULL, 503, NULL));
  assert_metric_reaches (mport, "tor_websocket_proxy_extorport_failures_total{kind=\"auth\"}", 1);
  twp_test_extor_server_set_mode (bridge->extor, TWP_TEST_EXTOR_MODE_DENY);
  raw_free (ws_open (bridge->port, "/", NULL, 503, NULL));
  assert_metric_reaches (mport, "tor_websocket_proxy_extorport_failures_total{kind=\"denied\"}", 1);
  twp_test_extor_server_set_mode (bridge->extor, TWP_TEST_EXTOR_MODE_CLOSE_AFTER_NONCE);
  raw_free (ws_open (bridge->port, "/", NULL, 503, NULL));
  assert_metric_reaches (mport, "tor_websocket_proxy_extorport_failures_total{kind=\"closed\"}", 1);
  twp_test_extor_server_set_mode (bridge->extor, TWP_TEST_EXTOR_MODE_ECHO);
  g_assert_cmpint (g_unlink (cookie), ==, 0);
  raw_free (ws_open (bridge->port, "/", NULL, 503, NULL));
  assert_metric_reaches (mport, "tor_websocket_proxy_extorport_failures_total{kind=\"cookie\"}", 1);
  twp_test_extor_server_regenerate_cookie (bridge->extor);
  assert_normal_client_works (bridge->port);

  {
    /* Two connections that never speak fill max-connections=2: a third
     * takes the place of the oldest one, which the cap refused. */
    g_autoptr(Raw) first = raw_connect (bridge->port);
    g_autoptr(Raw) second = raw_connect (bridge->port);
    g_autoptr(Raw) third = NULL;

    g_assert_nonnull (first);
    g_assert_nonnull (second);
    assert_metric_reaches (mport, "tor_websocket_proxy_connections_open", 2);
    third = raw_connect (bridge->port);
    g_assert_true (raw_wait_eof (first, 10000));
    assert_metric_reaches (mport, "tor_websocket_proxy_handshakes_refused_total{reason=\"connection_cap\"}", 1);
  }
  assert_metric_reaches (mport, "tor_websocket_proxy_connections_open", 0);
  {
    /* Two tunnels fill it: nothing can be evicted, the newcomer is
     * closed at accept. */
    g_autoptr(Raw) one = ws_open (bridge->port, "/", NULL, 101, NULL);
    g_autoptr(Raw) two = ws_open (bridge->port, "/", NULL, 101, NULL);
    g_autoptr(Raw) three = NULL;

    assert_metric_reaches (mport, "tor_websocket_proxy_tunnels_open{mode=\"binary\",scheme=\"ws\"}", 2);
    three = raw_connect (bridge->port);
    g_assert_true (raw_wait_eof (three, 10000));
    assert_metric_reaches (mport, "tor_websocket_proxy_handshakes_refused_total{reason=\"connection_cap\"}", 2);
    ws_echo (one, 5000, FALSE);
    ws_echo (two, 5000, FALSE);
  }

  body = metrics_scrape (mport);
  assert_promtool_accepts (body);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_connections_max"), ==, 2);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_handshakes_refused_total{reason=\"tor_unavailable\"}"),
                    ==, 4);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_extorport_failures_total{kind=\"connect\"}"), ==, 0);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_extorport_failures_total{kind=\"protocol\"}"), ==, 0);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_tunnels_total{mode=\"binary\",scheme=\"ws\"}"), ==, 3);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_extorport_setup_duration_seconds_count"), ==, 3);
  assert_nothing_identifying (body, bridge->port);
}

/* tor's Extended ORPort is not listening at all. */
static void
test_metrics_extorport_down (void)
{
  g_autofree char *dir = make_tmpdir ();
  g_autoptr(TwpTestExtOrServer) extor = twp_test_extor_server_new (dir, TWP_TEST_EXTOR_MODE_ECHO);
  guint16 mport = pick_free_port ();
  g_autofree char *options = g_strdup_printf ("websocket:metrics=127.0.0.1\\:%u", mport);
  g_autofree char *nowhere = g_strdup_printf ("127.0.0.1:%u", pick_free_port ());
  g_auto(GStrv) env = server_environ (dir, extor, NULL, options);
  g_autoptr(Proc) proc = NULL;
  g_autofree char *body = NULL;

  env = g_environ_setenv (env, "TOR_PT_EXTENDED_SERVER_PORT", nowhere, TRUE);
  proc = proc_spawn ("--server", env);
  g_assert_true (proc_wait_done (proc));
  raw_free (ws_open (proc->port, "/", NULL, 503, NULL));
  assert_metric_reaches (mport, "tor_websocket_proxy_extorport_failures_total{kind=\"connect\"}", 1);
  body = metrics_scrape (mport);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_handshakes_refused_total{reason=\"tor_unavailable\"}"),
                    ==, 1);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_extorport_setup_duration_seconds_count"), ==, 0);
  proc_stop (g_steal_pointer (&proc));
  remove_tree (dir);
}

/* The relay's own ends: keepalive, idle and stall, each on a bridge of its
 * own so that no two timers race. */
static void
test_metrics_relay_timeouts (void)
{
  {
    /* A ping we never answer, then the connection dies. */
    guint16 mport;
    g_autoptr(Bridge) bridge = metrics_bridge_start (TWP_TEST_EXTOR_MODE_ECHO, "websocket:keepalive=1", &mport);
    g_autoptr(Raw) tunnel = ws_open (bridge->port, "/", NULL, 101, NULL);
    gint64 deadline = deadline_in (15000);
    guint8 first_byte = 0;

    while (first_byte != 0x89)
      {
        g_autoptr(GBytes) payload = NULL;

        g_assert_true (raw_read_frame (tunnel, deadline, &first_byte, &payload));
      }
    g_clear_pointer (&tunnel, raw_free);
    assert_metric_reaches (mport, "tor_websocket_proxy_tunnel_closes_total{reason=\"keepalive\"}", 1);
  }
  {
    guint16 mport;
    g_autoptr(Bridge) bridge = metrics_bridge_start (TWP_TEST_EXTOR_MODE_ECHO, "websocket:idle-timeout=1", &mport);
    g_autoptr(Raw) tunnel = ws_open (bridge->port, "/", NULL, 101, NULL);

    raw_expect_close (tunnel, 1001);
    assert_metric_reaches (mport, "tor_websocket_proxy_tunnel_closes_total{reason=\"idle\"}", 1);
  }
  {
    /* We send and never read: the server's writes to us stall. */
    guint16 mport;
    g_autoptr(Bridge) bridge = metrics_bridge_start (TWP_TEST_EXTOR_MODE_ECHO, "websocket:stall-timeout=1",
                                                     &mport);
    g_autoptr(Raw) tunnel = ws_open (bridge->port, "/", NULL, 101, NULL);
    g_autoptr(GByteArray) frame = g_byte_array_new ();
    g_autofree guint8 *payload = random_bytes (60000);
    gint64 deadline = deadline_in (60000);

    frame_append (frame, 0x82, TRUE, payload, 60000);
    for (;;)
      {
        g_autoptr(GError) error = NULL;

        /* Until the server gives up on us (an error) or stops reading. */
        if (!raw_send_until (tunnel, frame->data, frame->len, deadline_in (3000), &error))
          break;
        g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      }
    assert_metric_reaches (mport, "tor_websocket_proxy_tunnel_closes_total{reason=\"stall\"}", 1);
  }
}

/* wss:// tunnels count as such; a client that does not speak TLS is a TLS
 * failure. */
static void
test_metrics_tls (void)
{
  g_autofree char *certdir = NULL;
  g_autofree char *cert = NULL;
  g_autofree char *key = NULL;
  g_autofree char *pin = NULL;
  g_autofree char *options = NULL;
  g_autofree char *args = NULL;
  g_autofree char *body = NULL;
  g_autoptr(Chain) chain = NULL;
  guint16 mport = pick_free_port ();
  gsize size = 100000;
  g_autofree guint8 *data = random_bytes (size);

  spawn_without_leak_check = TRUE;
  certdir = make_tmpdir ();
  make_certificate (certdir, &cert, &key, &pin);
  options = g_strdup_printf ("websocket:tls-cert=%s;websocket:tls-key=%s;websocket:metrics=127.0.0.1\\:%u",
                             cert, key, mport);
  chain = chain_start (options);

  args = g_strdup_printf ("url=wss://localhost:%u/;cert-sha256=%s", chain->bridge->port, pin);
  {
    SocksConn *conn = socks_conn_new (chain->client->port, data, size);
    SocksRun run = { &conn, 1, args, chain->bridge->port };

    socks_run (&run, 30000);
    check_socks_done (conn);
    socks_conn_free (conn);
  }
  {
    g_autoptr(Raw) raw = raw_connect (chain->bridge->port);

    raw_send_str (raw, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n");
    g_assert_true (raw_wait_eof (raw, 12000));
  }
  assert_metric_reaches (mport, "tor_websocket_proxy_handshakes_refused_total{reason=\"tls_failure\"}", 1);
  body = metrics_scrape (mport);
  assert_promtool_accepts (body);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_tunnels_total{mode=\"binary\",scheme=\"wss\"}"), ==, 1);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_tunnels_total{mode=\"binary\",scheme=\"ws\"}"), ==, 0);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_bytes_total{direction=\"from_websocket\"}"), ==, size);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_bytes_total{direction=\"to_websocket\"}"), ==, size);
  assert_nothing_identifying (body, chain->bridge->port);
  g_clear_pointer (&chain, chain_free);
  spawn_without_leak_check = FALSE;
  remove_tree (certdir);
}

/* ENV-ERROR before VERSION, with @expected in it and @secret not. */
static void
assert_metrics_env_error (const char *options,
                          const char *expected,
                          const char *secret)
{
  g_autofree char *dir = make_tmpdir ();
  g_autoptr(TwpTestExtOrServer) extor = twp_test_extor_server_new (dir, TWP_TEST_EXTOR_MODE_ECHO);
  g_auto(GStrv) env = server_environ (dir, extor, NULL, options);
  g_autoptr(Proc) proc = proc_spawn ("--server", env);
  const char *first;

  g_assert_true (proc_wait_exit (proc, 5000));
  g_assert_true (wait_until (proc_stdout_closed, proc, 5000));
  g_assert_cmpuint (proc->lines->len, ==, 1);
  first = g_ptr_array_index (proc->lines, 0);
  g_test_message ("%s", first);
  g_assert_true (g_str_has_prefix (first, "ENV-ERROR "));
  g_assert_nonnull (strstr (first, expected));
  if (secret != NULL)
    g_assert_null (strstr (first, secret));
  g_assert_cmpint (g_subprocess_get_exit_status (proc->process), !=, 0);
  remove_tree (dir);
}

/* metrics= only on loopback unless allowed, and it says why; bad values and
 * a taken port are ENV-ERRORs. */
static void
test_metrics_options (void)
{
  g_autoptr(GSocket) taken = NULL;
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GSocketAddress) bound = NULL;
  g_autofree char *options = NULL;
  g_autoptr(GError) error = NULL;

  assert_metrics_env_error ("websocket:metrics=192.0.2.1\\:9100", "not a loopback address", "192.0.2.1");
  assert_metrics_env_error ("websocket:metrics=0.0.0.0\\:9100", "metrics-allow-remote=1", "0.0.0.0");
  assert_metrics_env_error ("websocket:metrics=[2001\\:db8\\:\\:1]\\:9100", "not a loopback address", "2001");
  assert_metrics_env_error ("websocket:metrics=192.0.2.1\\:9100;websocket:metrics-allow-remote=0",
                            "not a loopback address", "192.0.2.1");
  assert_metrics_env_error ("websocket:metrics=localhost\\:9100", "metrics= must be", NULL);
  assert_metrics_env_error ("websocket:metrics=127.0.0.1\\:0", "metrics= must be", NULL);
  assert_metrics_env_error ("websocket:metrics=relative/path.sock", "metrics= must be", NULL);
  assert_metrics_env_error ("websocket:metrics-allow-remote=yes", "metrics-allow-remote=", NULL);

  /* A port someone else holds. */
  taken = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
  g_assert_no_error (error);
  address = g_inet_socket_address_new_from_string ("127.0.0.1", 0);
  g_assert_true (g_socket_bind (taken, address, FALSE, &error));
  g_assert_true (g_socket_listen (taken, &error));
  bound = g_socket_get_local_address (taken, &error);
  g_assert_no_error (error);
  options = g_strdup_printf ("websocket:metrics=127.0.0.1\\:%u",
                             g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound)));
  assert_metrics_env_error (options, "metrics=: cannot listen", "127.0.0.1");
}

/* An operator may open it up on purpose; the endpoint then answers on
 * every address. */
static void
test_metrics_allow_remote (void)
{
  guint16 mport = pick_free_port ();
  g_autofree char *options = g_strdup_printf ("websocket:metrics=0.0.0.0\\:%u;websocket:metrics-allow-remote=1",
                                              mport);
  g_autoptr(Bridge) bridge = bridge_start (TWP_TEST_EXTOR_MODE_ECHO, options);
  g_autofree char *body = metrics_scrape (mport);

  g_assert_true (proc_has_done_line (bridge->proc));
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_connections_accepted_total"), ==, 0);
}

/* Reads everything a Unix socket peer sends until it closes. */
static char *
unix_request (const char *path,
              const char *request)
{
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GSocketAddress) address = g_unix_socket_address_new (path);
  g_autoptr(GSocketConnection) connection = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GByteArray) in = g_byte_array_new ();
  guint8 buf[4096];
  gssize n;

  /* The server is another process: blocking calls cannot deadlock, and
   * the socket's timeout bounds each of them. */
  g_socket_client_set_timeout (client, 10);
  /* No proxy lookup: libproxy trips AddressSanitizer, and this is loopback. */
  g_socket_client_set_enable_proxy (client, FALSE);
  connection = g_socket_client_connect (client, G_SOCKET_CONNECTABLE (address), NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (connection)),
                                            request, strlen (request), NULL, NULL, &error));
  while ((n = g_input_stream_read (g_io_stream_get_input_stream (G_IO_STREAM (connection)),
                                   buf, sizeof buf, NULL, &error)) > 0)
    g_byte_array_append (in, buf, n);
  g_assert_no_error (error);
  g_byte_array_append (in, (const guint8 *) "", 1);
  return (char *) g_byte_array_free (g_steal_pointer (&in), FALSE);
}

/* metrics=/path: the endpoint on a Unix socket, removed on exit; what it
 * answers to requests other than GET /metrics; its client cap and
 * deadline. */
static void
test_metrics_endpoint (void)
{
  g_autofree char *sockdir = make_tmpdir ();
  g_autofree char *path = g_build_filename (sockdir, "metrics.sock", NULL);
  g_autofree char *options = g_strdup_printf ("websocket:metrics=%s", path);
  g_autoptr(Bridge) bridge = bridge_start (TWP_TEST_EXTOR_MODE_ECHO, options);
  g_autofree char *response = NULL;

  response = unix_request (path, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  g_assert_true (g_str_has_prefix (response, "HTTP/1.1 200 OK\r\n"));
  g_assert_nonnull (strstr (response, "\ntor_websocket_proxy_connections_accepted_total 0\n"));
  g_clear_pointer (&response, g_free);
  response = unix_request (path, "HEAD /metrics?x=1 HTTP/1.0\r\n\r\n");
  g_assert_true (g_str_has_prefix (response, "HTTP/1.1 200 OK\r\n"));
  g_assert_true (g_str_has_suffix (response, "\r\n\r\n"));
  g_clear_pointer (&response, g_free);
  response = unix_request (path, "GET / HTTP/1.1\r\n\r\n");
  g_assert_true (g_str_has_prefix (response, "HTTP/1.1 404 "));
  g_clear_pointer (&response, g_free);
  response = unix_request (path, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  g_assert_true (g_str_has_prefix (response, "HTTP/1.1 405 "));
  g_assert_nonnull (strstr (response, "\r\nAllow: GET, HEAD\r\n"));
  g_clear_pointer (&response, g_free);
  response = unix_request (path, "GET /metrics HTTP/2.0\r\n\r\n");
  g_assert_true (g_str_has_prefix (response, "HTTP/1.1 400 "));
  g_clear_pointer (&response, g_free);
  response = unix_request (path, "GET /metrics HTTP/1.1\r\nBad Header\r\n\r\n");
  g_assert_true (g_str_has_prefix (response, "HTTP/1.1 400 "));
  g_clear_pointer (&response, g_free);
  {
    g_autofree char *big = g_strnfill (TWP_METRICS_MAX_REQUEST + 100, 'a');
    g_autofree char *request = g_strdup_printf ("GET /metrics HTTP/1.1\r\nX: %s\r\n\r\n", big);

    response = unix_request (path, request);
    g_assert_true (g_str_has_prefix (response, "HTTP/1.1 431 "));
    g_clear_pointer (&response, g_free);
  }

  proc_stop (g_steal_pointer (&bridge->proc));
  /* The socket file goes with the process. */
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
  remove_tree (sockdir);
}

/* At most four scrapes at once; a silent one is dropped after its
 * deadline. */
static void
test_metrics_endpoint_limits (void)
{
  guint16 mport;
  g_autoptr(Bridge) bridge = metrics_bridge_start (TWP_TEST_EXTOR_MODE_ECHO, NULL, &mport);
  g_autoptr(GPtrArray) silent = g_ptr_array_new_with_free_func ((GDestroyNotify) raw_free);
  g_autoptr(Raw) extra = NULL;
  g_autofree char *body = NULL;

  /* The server accepts in the kernel's order: these four first. */
  for (guint i = 0; i < 4; i++)
    g_ptr_array_add (silent, raw_connect (mport));
  /* A complete request over the cap is closed unanswered. */
  extra = raw_connect (mport);
  raw_send_str (extra, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  g_assert_true (raw_read_until_eof (extra, 10000));
  g_assert_cmpuint (extra->in->len, ==, 0);
  /* The silent ones are dropped at their 5 s deadline, unanswered. */
  for (guint i = 0; i < silent->len; i++)
    {
      Raw *raw = g_ptr_array_index (silent, i);

      g_assert_true (raw_read_until_eof (raw, 15000));
      g_assert_cmpuint (raw->in->len, ==, 0);
    }
  /* Scrapes are not the bridge's connections. */
  body = metrics_scrape (mport);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_connections_accepted_total"), ==, 0);
  g_assert_true (proc_has_done_line (bridge->proc));
}

static gboolean
extor_all_closed (gpointer data)
{
  Chain *chain = data;
  TwpTestExtOrServer *extor = chain->bridge->extor;

  return twp_test_extor_server_get_n_closed (extor) == twp_test_extor_server_get_n_connections (extor);
}

typedef struct {
  Proc *proc;
  guint64 limit_kib;
  guint64 last;
} RssBelow;

static gboolean
rss_below (gpointer data)
{
  RssBelow *below = data;

  below->last = proc_rss_kib (below->proc);
  return below->last < below->limit_kib;
}

/* Opens @n wss tunnels at once, each echoing 64 KiB byte-exact, and
 * returns the server's VmRSS while all of them are still open. */
static guint64
tls_tunnels_open (Chain      *chain,
                  const char *args,
                  guint       n,
                  SocksConn **conns)
{
  const gsize each = 64 * 1024;
  g_autofree guint8 *data = random_bytes (n * each);
  SocksRun run = { conns, n, args, chain->bridge->port };
  guint64 rss;
  guint done = 0;

  for (guint i = 0; i < n; i++)
    conns[i] = socks_conn_new (chain->client->port, data + i * each, each);
  /* Generous: the sanitizers make TLS many times slower. */
  socks_run (&run, 120000);
  rss = proc_rss_kib (chain->bridge->proc);
  for (guint i = 0; i < n; i++)
    {
      if (conns[i]->state == SOCKS_DONE)
        done++;
      else if (!g_test_failed ())   /* one report is enough */
        check_socks_done (conns[i]);
      /* The echo was compared as it came; the copy is freed with @data. */
      conns[i]->data = NULL;
    }
  g_test_message ("%u/%u wss tunnels complete", done, n);
  return rss;
}

/* Issue 12: a wss server used to parse the whole system CA bundle into
 * every connection (about 3.7 MiB each, kept after they closed). 200
 * concurrent wss tunnels must cost the server less than 32 MiB, also once
 * they have closed and 200 more opened, and at most 64 KiB each once they
 * have been quiet for a while. */
static void
test_tls_many (void)
{
  const guint n = 200;
  const guint64 limit_kib = 32 * 1024;
  const guint64 idle_limit_kib = 64;
  g_autofree char *certdir = NULL;
  g_autofree char *cert = NULL;
  g_autofree char *key = NULL;
  g_autofree char *pin = NULL;
  g_autofree char *options = NULL;
  g_autofree char *args = NULL;
  g_autoptr(Chain) chain = NULL;
  g_autofree SocksConn **conns = g_new0 (SocksConn *, n);
  guint64 before;

  spawn_without_leak_check = TRUE;
  certdir = make_tmpdir ();
  make_certificate (certdir, &cert, &key, &pin);
  options = g_strdup_printf ("websocket:tls-cert=%s;websocket:tls-key=%s", cert, key);
  chain = chain_start (options);
  args = g_strdup_printf ("url=wss://localhost:%u/;cert-sha256=%s", chain->bridge->port, pin);

  /* One tunnel first, so that the baseline has TLS and the relay loaded. */
  tls_tunnels_open (chain, args, 1, conns);
  socks_conn_free (conns[0]);
  g_assert_true (wait_until (extor_all_closed, chain, 10000));
  before = proc_rss_kib (chain->bridge->proc);

  for (guint round = 0; round < 2; round++)
    {
      guint64 open = tls_tunnels_open (chain, args, n, conns);

      g_test_message ("round %u: server VmRSS %" G_GUINT64_FORMAT " KiB before, %" G_GUINT64_FORMAT
                      " KiB with %u wss tunnels open (%.1f KiB each)",
                      round, before, open, n, ((double) open - before) / n);
      /* The sanitizers' allocator keeps freed memory in quarantine (GnuTLS
       * allocates per record): there RSS says nothing, and only the data
       * is checked. */
      if (!TWP_TEST_SANITIZED)
        {
          RssBelow below = { chain->bridge->proc, before + n * idle_limit_kib };

          g_assert_cmpuint (open, <, before + limit_kib);
          /* Quiet tunnels give their buffers' pages back (issue 12's
           * target: at most 64 KiB each after a 64 KiB echo). */
          g_assert_true (wait_until (rss_below, &below, 20000));
          g_test_message ("round %u: quiet: %" G_GUINT64_FORMAT " KiB (%.1f KiB each)", round, below.last,
                          ((double) below.last - before) / n);
        }
      for (guint i = 0; i < n; i++)
        g_clear_pointer (&conns[i], socks_conn_free);
      g_assert_true (wait_until (extor_all_closed, chain, 30000));
      g_assert_cmpuint (twp_test_extor_server_get_n_okay (chain->bridge->extor), ==, 1 + (round + 1) * n);
    }
  g_test_message ("server VmRSS after all closed: %" G_GUINT64_FORMAT " KiB", proc_rss_kib (chain->bridge->proc));
  g_clear_pointer (&chain, chain_free);
  spawn_without_leak_check = FALSE;
  remove_tree (certdir);
}

/* Open means nothing came and nothing ended: a stalled TLS client gets no
 * byte from the server before its ClientHello. */
static gboolean
raw_is_untouched (Raw *raw)
{
  return g_socket_condition_check (raw->socket, G_IO_IN | G_IO_HUP | G_IO_ERR) == 0;
}

static gboolean
raws_all_closed (gpointer data)
{
  GPtrArray *raws = data;

  for (guint i = 0; i < raws->len; i++)
    if (raw_is_untouched (g_ptr_array_index (raws, i)))
      return FALSE;
  return TRUE;
}

/* Issue 12: glib-networking ran each handshake as a blocking call in
 * GTask's thread pool, so clients that connect and send nothing held its
 * threads until the handshake deadline and every other wss client waited
 * behind them. Here 200 of them are open while a real client's tunnel
 * completes, and only then does the deadline close them (which it must
 * still do). Ordered by events, not by time: with the thread pool the
 * tunnel could only complete once the deadline had freed the threads. */
static void
test_tls_stalled_handshakes (void)
{
  const guint n = 200;
  g_autofree char *certdir = NULL;
  g_autofree char *cert = NULL;
  g_autofree char *key = NULL;
  g_autofree char *pin = NULL;
  g_autofree char *options = NULL;
  g_autofree char *args = NULL;
  g_autoptr(Chain) chain = NULL;
  g_autoptr(GPtrArray) stalled = g_ptr_array_new_with_free_func ((GDestroyNotify) raw_free);
  g_autofree guint8 *data = random_bytes (64 * 1024);
  SocksConn *conn;
  guint untouched = 0;

  spawn_without_leak_check = TRUE;
  certdir = make_tmpdir ();
  make_certificate (certdir, &cert, &key, &pin);
  options = g_strdup_printf ("websocket:tls-cert=%s;websocket:tls-key=%s;websocket:handshake-timeout=20",
                             cert, key);
  chain = chain_start (options);
  args = g_strdup_printf ("url=wss://localhost:%u/;cert-sha256=%s", chain->bridge->port, pin);

  for (guint i = 0; i < n; i++)
    g_ptr_array_add (stalled, raw_connect (chain->bridge->port));
  /* Let the server accept them all before the real client comes. */
  iterate_for (500);

  conn = socks_conn_new (chain->client->port, data, 64 * 1024);
  {
    SocksRun run = { &conn, 1, args, chain->bridge->port };

    socks_run (&run, 60000);
  }
  for (guint i = 0; i < n; i++)
    untouched += raw_is_untouched (g_ptr_array_index (stalled, i));
  g_test_message ("tunnel %s while %u of %u stalled handshakes were still open",
                  conn->state == SOCKS_DONE ? "done" : "failed", untouched, n);
  check_socks_done (conn);
  g_assert_cmpuint (untouched, ==, n);
  socks_conn_free (conn);

  /* The deadline still ends every one of them. */
  g_assert_true (wait_until (raws_all_closed, stalled, 60000));
  g_clear_pointer (&chain, chain_free);
  spawn_without_leak_check = FALSE;
  remove_tree (certdir);
}

/* A TLS 1.2 client session to 127.0.0.1:@port, handshake done (the
 * certificate is not checked: the test only talks TLS). */
typedef struct {
  int fd;
  gnutls_certificate_credentials_t credentials;
  gnutls_session_t session;
} Tls12;

static void
tls12_free (Tls12 *tls)
{
  gnutls_deinit (tls->session);
  gnutls_certificate_free_credentials (tls->credentials);
  close (tls->fd);
  g_free (tls);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Tls12, tls12_free)

static Tls12 *
tls12_connect (guint16 port)
{
  Tls12 *tls = g_new0 (Tls12, 1);
  struct sockaddr_in address = { .sin_family = AF_INET };
  /* Every blocking step has a deadline. */
  struct timeval timeout = { .tv_sec = 20 };
  int ret;

  tls->fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  g_assert_cmpint (tls->fd, >=, 0);
  g_assert_cmpint (setsockopt (tls->fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout), ==, 0);
  g_assert_cmpint (setsockopt (tls->fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout), ==, 0);
  address.sin_port = htons (port);
  address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  g_assert_cmpint (connect (tls->fd, (struct sockaddr *) &address, sizeof address), ==, 0);
  g_assert_cmpint (gnutls_certificate_allocate_credentials (&tls->credentials), ==, 0);
  g_assert_cmpint (gnutls_init (&tls->session, GNUTLS_CLIENT), ==, 0);
  g_assert_cmpint (gnutls_priority_set_direct (tls->session, "NORMAL:-VERS-ALL:+VERS-TLS1.2", NULL), ==, 0);
  g_assert_cmpint (gnutls_credentials_set (tls->session, GNUTLS_CRD_CERTIFICATE, tls->credentials), ==, 0);
  gnutls_transport_set_int (tls->session, tls->fd);
  do
    ret = gnutls_handshake (tls->session);
  while (ret < 0 && !gnutls_error_is_fatal (ret));
  g_assert_cmpint (ret, ==, 0);
  return tls;
}

/* A TLS 1.2 peer that streams warning alerts after its handshake: GnuTLS
 * reports each one as a non-fatal error and bounds them only during the
 * handshake, so the server's read looped for as long as they came, and
 * its whole main loop with it. Such a peer is now dropped after a few. */
static void
test_tls_warning_alerts (void)
{
  const guint n_alerts = 100000;
  g_autofree char *certdir = make_tmpdir ();
  g_autofree char *cert = NULL;
  g_autofree char *key = NULL;
  g_autofree char *pin = NULL;
  g_autofree char *options = NULL;
  g_autoptr(Bridge) bridge = NULL;
  guint sent;

  spawn_without_leak_check = TRUE;
  make_certificate (certdir, &cert, &key, &pin);
  /* A handshake deadline far beyond the test: only the alerts may end it. */
  options = g_strdup_printf ("websocket:tls-cert=%s;websocket:tls-key=%s;websocket:handshake-timeout=300",
                             cert, key);
  bridge = bridge_start (TWP_TEST_EXTOR_MODE_ECHO, options);

  {
    g_autoptr(Tls12) flood = tls12_connect (bridge->port);

    for (sent = 0; sent < n_alerts; sent++)
      if (gnutls_alert_send (flood->session, GNUTLS_AL_WARNING, GNUTLS_A_USER_CANCELED) < 0)
        break;
    g_test_message ("the server dropped the connection after %u of %u warning alerts", sent, n_alerts);
    g_assert_cmpuint (sent, <, n_alerts);
  }
  {
    /* The server goes on serving TLS. */
    g_autoptr(Tls12) next = tls12_connect (bridge->port);

    g_assert_nonnull (next);
  }
  g_clear_pointer (&bridge, bridge_free);
  spawn_without_leak_check = FALSE;
  remove_tree (certdir);
}

/* tls-cert= with intermediates after the certificate (as a CA issues it):
 * the server must send them, or a client that trusts only the root cannot
 * verify it. openssl s_client checks, trusting only the root. */
static void
test_tls_chain (void)
{
  const char *make =
    "set -e; cd \"$1\"; k='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'; "
    "printf 'basicConstraints=critical,CA:TRUE\\nkeyUsage=critical,keyCertSign,cRLSign\\n' > ca.ext; "
    "printf 'subjectAltName=DNS:localhost\\nbasicConstraints=critical,CA:FALSE\\n"
    "keyUsage=critical,digitalSignature\\nextendedKeyUsage=serverAuth\\n' > leaf.ext; "
    "openssl req -x509 $k -keyout root.key -out root.pem -days 2 -subj /CN=root -config /dev/null "
    "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign; "
    "openssl req -new $k -keyout int.key -out int.csr -subj /CN=intermediate; "
    "openssl x509 -req -in int.csr -CA root.pem -CAkey root.key -CAcreateserial -out int.pem -days 2 -extfile ca.ext; "
    "openssl req -new $k -keyout leaf.key -out leaf.csr -subj /CN=localhost; "
    "openssl x509 -req -in leaf.csr -CA int.pem -CAkey int.key -CAcreateserial -out leaf.pem -days 2 -extfile leaf.ext; "
    "cat leaf.pem int.pem > chain.pem";
  const char *check =
    "openssl s_client -connect \"127.0.0.1:$2\" -CAfile \"$1/root.pem\" -verify_hostname localhost "
    "-verify_return_error -brief < /dev/null";
  g_autofree char *certdir = make_tmpdir ();
  g_autofree char *options = NULL;
  g_autofree char *port = NULL;
  g_autofree char *out = NULL;
  g_autoptr(Bridge) bridge = NULL;
  g_autoptr(GError) error = NULL;
  int status;

  spawn_without_leak_check = TRUE;
  {
    const char *argv[] = { "sh", "-c", make, "sh", certdir, NULL };

    g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL |
                  G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, NULL, NULL, &status, &error);
    g_assert_no_error (error);
    g_spawn_check_wait_status (status, &error);
    g_assert_no_error (error);
  }
  options = g_strdup_printf ("websocket:tls-cert=%s/chain.pem;websocket:tls-key=%s/leaf.key", certdir, certdir);
  bridge = bridge_start (TWP_TEST_EXTOR_MODE_ECHO, options);
  port = g_strdup_printf ("%u", bridge->port);
  {
    const char *argv[] = { "sh", "-c", check, "sh", certdir, port, NULL };

    g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL,
                  NULL, &out, &status, &error);
    g_assert_no_error (error);
    g_test_message ("openssl s_client: %s", out);
    g_spawn_check_wait_status (status, &error);
    g_assert_no_error (error);
    g_assert_nonnull (strstr (out, "Verification: OK"));
  }
  g_clear_pointer (&bridge, bridge_free);
  spawn_without_leak_check = FALSE;
  remove_tree (certdir);
}

int
main (int    argc,
      char **argv)
{
  struct rlimit limit;

  /* Before any GIO use: no system proxy lookups for libsoup's session
   * (libproxy trips ASan); our children never use a resolver from GIO. */
  g_setenv ("GIO_USE_PROXY_RESOLVER", "dummy", TRUE);
  g_test_init (&argc, &argv, NULL);
  signal (SIGPIPE, SIG_IGN);
  /* 1000 idle connections and 500 tunnels need more than 1024 fds, here
   * and in the children (they inherit the limit). */
  if (getrlimit (RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < 8192)
    {
      limit.rlim_cur = MIN (limit.rlim_max, 8192);
      setrlimit (RLIMIT_NOFILE, &limit);
    }

  g_test_add_func ("/server/managed/golden", test_managed_golden);
  g_test_add_func ("/server/managed/fixed-port", test_managed_fixed_port);
  g_test_add_func ("/server/managed/plain-orport", test_managed_plain_orport);
  g_test_add_func ("/server/managed/bad-options", test_managed_bad_options);
  g_test_add_func ("/server/managed/version-error", test_managed_version_error);
  g_test_add_func ("/server/managed/debug-stays-off-stdout", test_managed_debug_stays_off_stdout);
  g_test_add_func ("/server/extorport/metadata", test_extorport_metadata);
  g_test_add_func ("/server/extorport/libsoup-client", test_extorport_libsoup_client);
  g_test_add_func ("/server/extorport/wrong-cookie", test_extorport_wrong_cookie);
  g_test_add_func ("/server/e2e/bulk-binary", test_e2e_bulk_binary);
  g_test_add_func ("/server/e2e/bulk-base64", test_e2e_bulk_base64);
  g_test_add_func ("/server/e2e/many", test_e2e_many);
  g_test_add_func ("/server/attack/unmasked", test_attack_unmasked);
  g_test_add_func ("/server/attack/text-without-base64", test_attack_text_without_base64);
  g_test_add_func ("/server/attack/bad-base64", test_attack_bad_base64);
  g_test_add_func ("/server/attack/huge-frame", test_attack_huge_frame);
  g_test_add_func ("/server/attack/fragmented-message", test_attack_fragmented_message);
  g_test_add_func ("/server/attack/deflate-offered", test_attack_deflate_offered);
  g_test_add_func ("/server/attack/old-versions", test_attack_old_versions);
  g_test_add_func ("/server/attack/plain-http", test_attack_plain_http);
  g_test_add_func ("/server/attack/path-and-origin", test_attack_path_and_origin);
  g_test_add_func ("/server/attack/idle-connections", test_attack_idle_connections);
  g_test_add_func ("/server/attack/slow-reader", test_attack_slow_reader);
  g_test_add_func ("/server/trusted-proxy", test_trusted_proxy);
  g_test_add_func ("/server/per-address-limit", test_per_address_limit);
  g_test_add_func ("/server/per-address-limit/half-open", test_per_address_half_open);
  g_test_add_func ("/server/max-connections/evicts-half-open", test_max_connections_evicts_half_open);
  g_test_add_func ("/server/extorport/silent", test_extorport_silent);
  g_test_add_func ("/server/shutdown/sigterm", test_shutdown_sigterm);
  g_test_add_func ("/server/shutdown/stdin", test_shutdown_stdin);
  g_test_add_func ("/server/shutdown/sigint", test_shutdown_sigint);
  g_test_add_func ("/server/shutdown/sigint-drains", test_shutdown_sigint_drains);
  g_test_add_func ("/server/tls", test_tls);
  g_test_add_func ("/server/tls-many", test_tls_many);
  g_test_add_func ("/server/tls-chain", test_tls_chain);
  g_test_add_func ("/server/tls-stalled-handshakes", test_tls_stalled_handshakes);
  g_test_add_func ("/server/tls-warning-alerts", test_tls_warning_alerts);
  g_test_add_func ("/server/metrics/counters", test_metrics_counters);
  g_test_add_func ("/server/metrics/extorport", test_metrics_extorport);
  g_test_add_func ("/server/metrics/extorport-down", test_metrics_extorport_down);
  g_test_add_func ("/server/metrics/relay-timeouts", test_metrics_relay_timeouts);
  g_test_add_func ("/server/metrics/tls", test_metrics_tls);
  g_test_add_func ("/server/metrics/options", test_metrics_options);
  g_test_add_func ("/server/metrics/allow-remote", test_metrics_allow_remote);
  g_test_add_func ("/server/metrics/endpoint", test_metrics_endpoint);
  g_test_add_func ("/server/metrics/endpoint-limits", test_metrics_endpoint_limits);

  return g_test_run ();
}
