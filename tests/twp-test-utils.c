/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-test"

#include "config.h"

#include <signal.h>
#include <string.h>
#include <sys/prctl.h>

#include "twp-test-utils.h"

/* ---- waiting ------------------------------------------------------------ */

gint64
twp_test_deadline_in (guint ms)
{
  return g_get_monotonic_time () + (gint64) ms * 1000;
}

static gboolean
flag_cb (gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
  return G_SOURCE_REMOVE;
}

/* Runs the default main context for @ms milliseconds. */
void
twp_test_iterate_for (guint ms)
{
  gboolean done = FALSE;
  GSource *source = g_timeout_source_new (ms);

  g_source_set_static_name (source, "[twp-test] iterate for");
  g_source_set_callback (source, flag_cb, &done, NULL);
  g_source_attach (source, NULL);
  while (!done)
    g_main_context_iteration (NULL, TRUE);
  g_source_unref (source);
}

static gboolean
tick_cb (gpointer user_data)
{
  return G_SOURCE_CONTINUE;
}

void
twp_test_wait_begin (TwpTestWait *wait,
                     guint        timeout_ms)
{
  wait->deadline = twp_test_deadline_in (timeout_ms);
  /* Threads and other processes change what a wait looks at without
   * waking this context: the tick sees it within 10 ms, and lets the
   * deadline be seen when nothing else happens. */
  wait->tick = g_timeout_source_new (10);
  g_source_set_static_name (wait->tick, "[twp-test] wait tick");
  g_source_set_callback (wait->tick, tick_cb, NULL, NULL);
  g_source_attach (wait->tick, NULL);
}

/* One blocking iteration; FALSE once the deadline has passed. */
gboolean
twp_test_wait_iterate (TwpTestWait *wait)
{
  if (g_get_monotonic_time () >= wait->deadline)
    return FALSE;
  g_main_context_iteration (NULL, TRUE);
  return TRUE;
}

void
twp_test_wait_end (TwpTestWait *wait)
{
  g_source_destroy (wait->tick);
  g_clear_pointer (&wait->tick, g_source_unref);
}

/* Iterates the default main context until @condition holds; FALSE when
 * @timeout_ms passed first. */
gboolean
twp_test_wait_until (TwpTestCondition condition,
                     gpointer         data,
                     guint            timeout_ms)
{
  return TWP_TEST_WAIT_FOR (condition (data), timeout_ms);
}

void
twp_test_wait_failed (const char *file,
                      int         line,
                      guint       timeout_ms,
                      const char *expr,
                      const char *what)
{
  g_error ("%s:%d: timed out after %u ms waiting for %s%s%s%s", file, line, timeout_ms,
           what, *what != '\0' ? " (" : "", expr, *what != '\0' ? ")" : "");
}

void
twp_test_assert_wait_until_at (TwpTestCondition  condition,
                               gpointer          data,
                               guint             timeout_ms,
                               const char       *what,
                               const char       *file,
                               int               line)
{
  if (!twp_test_wait_until (condition, data, timeout_ms))
    twp_test_wait_failed (file, line, timeout_ms, what, "");
}

/* ---- loopback ports ----------------------------------------------------- */

/* A socket bound to 127.0.0.1:0 (the kernel picks the port, so two tests
 * never race for one), listening or not; *@port is the port it got. A
 * socket bound but not listening holds a port that refuses connections. */
GSocket *
twp_test_bind_loopback (gboolean  listen,
                        guint16  *port)
{
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GSocketAddress) bound = NULL;
  g_autoptr(GError) error = NULL;

  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
  g_assert_no_error (error);
  address = g_inet_socket_address_new_from_string ("127.0.0.1", 0);
  g_socket_bind (socket, address, FALSE, &error);
  g_assert_no_error (error);
  if (listen)
    {
      g_socket_listen (socket, &error);
      g_assert_no_error (error);
    }
  bound = g_socket_get_local_address (socket, &error);
  g_assert_no_error (error);
  *port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  return g_steal_pointer (&socket);
}

/* A port nothing listens on and nothing else can take until the test
 * program exits: bound, never listening, so connections are refused. */
guint16
twp_test_refusing_port (void)
{
  static GPtrArray *held;
  guint16 port;

  if (held == NULL)
    held = g_ptr_array_new ();
  g_ptr_array_add (held, twp_test_bind_loopback (FALSE, &port));
  return port;
}

/* Adds 127.0.0.1:0 to @listener; returns the port the kernel gave. */
guint16
twp_test_listener_add_loopback (GSocketListener *listener)
{
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new_from_string ("127.0.0.1", 0);
  g_autoptr(GSocketAddress) bound = NULL;
  g_autoptr(GError) error = NULL;

  g_socket_listener_add_address (listener, address, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP,
                                 NULL, &bound, &error);
  g_assert_no_error (error);
  return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
}

/* A port for a child process to bind, when the test must name it before
 * the child starts (a fixed port is what the test is about, or the child
 * has no way to report the port it got). Bind, close, reuse: another
 * process may take it in between, so use it only where port 0 cannot be.
 * The port is picked below the kernel's ephemeral range, which every
 * port 0 listener on the machine draws from, to make that unlikely. */
guint16
twp_test_port_for_child (void)
{
  g_autofree char *range = NULL;
  guint64 ephemeral_low = 32768;

  if (g_file_get_contents ("/proc/sys/net/ipv4/ip_local_port_range", &range, NULL, NULL))
    ephemeral_low = g_ascii_strtoull (range, NULL, 10);
  if (ephemeral_low > 2048)
    for (guint attempt = 0; attempt < 100; attempt++)
      {
        guint16 port = g_random_int_range (ephemeral_low / 2, ephemeral_low);
        g_autoptr(GSocket) socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                                                  G_SOCKET_PROTOCOL_TCP, NULL);
        g_autoptr(GSocketAddress) address = g_inet_socket_address_new_from_string ("127.0.0.1", port);

        g_assert_nonnull (socket);
        if (g_socket_bind (socket, address, FALSE, NULL))
          {
            g_socket_close (socket, NULL);
            return port;
          }
      }
  /* A machine whose ephemeral range starts low: take one from it. */
  {
    guint16 port;
    g_autoptr(GSocket) socket = twp_test_bind_loopback (FALSE, &port);

    g_socket_close (socket, NULL);
    return port;
  }
}

/* Sends @request to @address and reads the answer until the peer closes,
 * as a NUL-terminated string. Blocking: only for a peer in another process
 * (nothing here serves it); @timeout_s bounds each call. */
char *
twp_test_request (GSocketConnectable *address,
                  const char         *request,
                  guint               timeout_s)
{
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GSocketConnection) connection = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GByteArray) in = g_byte_array_new ();
  guint8 buf[4096];
  gssize n;

  g_socket_client_set_timeout (client, timeout_s);
  /* No proxy lookup: libproxy trips AddressSanitizer, and this is loopback. */
  g_socket_client_set_enable_proxy (client, FALSE);
  connection = g_socket_client_connect (client, address, NULL, &error);
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

/* ---- the transport, run as tor runs it ---------------------------------- */

const char *
twp_test_binary_path (void)
{
  const char *binary = g_getenv ("TWP_BINARY");

  g_assert_nonnull (binary);
  return binary;
}

/* The environment tor gives a PT before its TOR_PT_ variables: ours,
 * minus any TOR_PT_ we inherited. */
char **
twp_test_pt_environ (void)
{
  g_auto(GStrv) inherited = g_get_environ ();
  GPtrArray *env = g_ptr_array_new ();

  for (char **item = inherited; *item != NULL; item++)
    if (!g_str_has_prefix (*item, "TOR_PT_"))
      g_ptr_array_add (env, g_strdup (*item));
  g_ptr_array_add (env, NULL);
  return (char **) g_ptr_array_free (env, FALSE);
}

/* LeakSanitizer's tracer (clang 14, gcc 12) crashes at exit in processes
 * that used GnuTLS; tests of TLS turn leak detection off for the processes
 * they start. AddressSanitizer's other checks stay on. Takes @env. */
char **
twp_test_environ_without_leak_check (char **env)
{
  const char *asan = g_environ_getenv (env, "ASAN_OPTIONS");
  g_autofree char *value = g_strconcat (asan != NULL ? asan : "", asan != NULL ? ":" : "",
                                        "detect_leaks=0", NULL);

  return g_environ_setenv (env, "ASAN_OPTIONS", value, TRUE);
}

static void proc_read_line (TwpTestProc *proc);

static void
proc_line_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  TwpTestProc *proc = user_data;
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
  if (proc->done_index < 0 && (g_str_equal (line, "SMETHODS DONE") || g_str_equal (line, "CMETHODS DONE")))
    proc->done_index = proc->lines->len;
  g_ptr_array_add (proc->lines, line);
  proc_read_line (proc);
}

static void
proc_read_line (TwpTestProc *proc)
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
  TwpTestProc *proc = user_data;

  proc->n_pending--;
  g_assert_true (g_subprocess_wait_finish (G_SUBPROCESS (source), result, NULL));
  proc->exited = TRUE;
  proc->exited_at = g_get_monotonic_time ();
}

/* Starts @argv with @envp, stdin and stdout piped as tor does; every stdout
 * line is collected (and shown with g_test_message) on the main context. */
TwpTestProc *
twp_test_proc_spawn (const char * const *argv,
                     char * const       *envp)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GError) error = NULL;
  TwpTestProc *proc = g_new0 (TwpTestProc, 1);

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  g_subprocess_launcher_set_environ (launcher, (char **) envp);
  proc->process = g_subprocess_launcher_spawnv (launcher, argv, &error);
  g_assert_no_error (error);
  proc->cancellable = g_cancellable_new ();
  proc->lines = g_ptr_array_new_with_free_func (g_free);
  proc->done_index = -1;
  proc->out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (proc->process));
  g_data_input_stream_set_newline_type (proc->out, G_DATA_STREAM_NEWLINE_TYPE_LF);
  proc_read_line (proc);
  /* Not cancelled: a test may stop reading (cancel) and still wait for
   * the exit; twp_test_proc_free () waits for it before freeing. */
  proc->n_pending++;
  g_subprocess_wait_async (proc->process, NULL, proc_wait_cb, proc);
  return proc;
}

/* $TWP_BINARY @role --managed, as tor's ClientTransportPlugin or
 * ServerTransportPlugin line runs it. */
TwpTestProc *
twp_test_proc_spawn_pt (const char   *role,
                        char * const *envp)
{
  const char *argv[] = { twp_test_binary_path (), role, "--managed", NULL };

  return twp_test_proc_spawn (argv, envp);
}

static gboolean
proc_has_done_line (gpointer data)
{
  TwpTestProc *proc = data;

  return proc->done_index >= 0 || proc->out_eof;
}

/* Waits for "*METHODS DONE" (or stdout's end: the test fails past the
 * deadline) and takes the port of the websocket method; FALSE when no
 * websocket method was announced. */
gboolean
twp_test_proc_wait_done (TwpTestProc *proc)
{
  twp_test_assert_wait_until (proc_has_done_line, proc, 10000);
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
proc_exited (gpointer data)
{
  return ((TwpTestProc *) data)->exited;
}

gboolean
twp_test_proc_wait_exit (TwpTestProc *proc,
                         guint        timeout_ms)
{
  return twp_test_wait_until (proc_exited, proc, timeout_ms);
}

static gboolean
proc_no_pending (gpointer data)
{
  return ((TwpTestProc *) data)->n_pending == 0;
}

/* G6: after *METHODS DONE only LOG and STATUS lines may follow (B1). */
void
twp_test_proc_assert_clean_after_done (TwpTestProc *proc)
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

void
twp_test_proc_close_stdin (TwpTestProc *proc)
{
  g_output_stream_close (g_subprocess_get_stdin_pipe (proc->process), NULL, NULL);
}

/* Kills the process if it still runs (by its PID, through GSubprocess),
 * then waits for it and for our reads to end. */
void
twp_test_proc_free (TwpTestProc *proc)
{
  if (!proc->exited)
    {
      g_subprocess_force_exit (proc->process);
      g_assert_true (twp_test_proc_wait_exit (proc, 5000));
    }
  g_cancellable_cancel (proc->cancellable);
  twp_test_assert_wait_until (proc_no_pending, proc, 5000);
  g_clear_object (&proc->out);
  g_clear_object (&proc->process);
  g_clear_object (&proc->cancellable);
  g_ptr_array_unref (proc->lines);
  g_free (proc);
}

/* tor's way of stopping a PT: stdin EOF (K3); then it must be gone, with
 * status 0 and nothing but LOG and STATUS after *METHODS DONE. */
void
twp_test_proc_stop (TwpTestProc *proc)
{
  twp_test_proc_close_stdin (proc);
  g_assert_true (twp_test_proc_wait_exit (proc, 5000));
  g_assert_true (g_subprocess_get_if_exited (proc->process));
  g_assert_cmpint (g_subprocess_get_exit_status (proc->process), ==, 0);
  twp_test_proc_assert_clean_after_done (proc);
  twp_test_proc_free (proc);
}

/* ---- a session bus of the test's own ------------------------------------ */

static void
die_with_parent (gpointer user_data)
{
  /* A failed assertion aborts the test: the daemon must not outlive it. */
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

GSubprocess *
twp_test_bus_start (const char *address)
{
  g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  g_autoptr(GDataInputStream) out = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *address_arg = g_strdup_printf ("--address=%s", address);
  g_autofree char *printed = NULL;
  GSubprocess *daemon;

  g_subprocess_launcher_set_child_setup (launcher, die_with_parent, NULL, NULL);
  daemon = g_subprocess_launcher_spawn (launcher, &error, "dbus-daemon", "--session", "--nofork", "--nopidfile",
                                        address_arg, "--print-address=1", NULL);
  g_assert_no_error (error);
  /* It prints its address once it listens. */
  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (daemon));
  printed = g_data_input_stream_read_line (out, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (printed);
  return daemon;
}

void
twp_test_bus_stop (GSubprocess *daemon)
{
  g_subprocess_send_signal (daemon, SIGTERM);
  g_subprocess_wait (daemon, NULL, NULL);
}
