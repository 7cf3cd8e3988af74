/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-test-pt-output"

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <glib-unix.h>

#include "twp-pt-output.h"

typedef struct {
  int fds[2];           /* read end, write end */
  TwpPtOutput *out;
} Fixture;

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (g_unix_open_pipe (f->fds, FD_CLOEXEC, &error));
  g_assert_no_error (error);
  g_assert_true (g_unix_set_fd_nonblocking (f->fds[0], TRUE, &error));
  f->out = twp_pt_output_new (f->fds[1]);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  twp_pt_output_free (f->out);
  if (f->fds[0] >= 0)
    close (f->fds[0]);
  close (f->fds[1]);
}

/* Everything written so far (the pipe never fills in these tests). */
static char *
drain (Fixture *f)
{
  GString *got = g_string_new (NULL);
  char buf[4096];

  for (;;)
    {
      ssize_t n = read (f->fds[0], buf, sizeof buf);

      if (n > 0)
        g_string_append_len (got, buf, n);
      else if (n < 0 && errno == EINTR)
        continue;
      else
        {
          g_assert_true (n < 0 && errno == EAGAIN);
          break;
        }
    }
  return g_string_free (got, FALSE);
}

static void
assert_output (Fixture    *f,
               const char *expected)
{
  g_autofree char *got = drain (f);

  g_assert_cmpstr (got, ==, expected);
}

static GInetSocketAddress *
sockaddr (const char *ip,
          guint16     port)
{
  return G_INET_SOCKET_ADDRESS (g_inet_socket_address_new_from_string (ip, port));
}

/* G2, G5, G6/B1, C6, C8, C2 PROXY, G12 */
static void
test_client_session (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(GInetSocketAddress) addr = sockaddr ("127.0.0.1", 41877);
  g_autoptr(GInetSocketAddress) zero = sockaddr ("127.0.0.1", 0);

  twp_pt_output_status_version (f->out, "tor-websocket-proxy", "0.1.0");
  twp_pt_output_version (f->out);
  twp_pt_output_proxy_done (f->out);
  twp_pt_output_cmethod (f->out, "websocket", "socks5", addr);
  twp_pt_output_cmethod (f->out, "wszero", "socks5", zero);
  twp_pt_output_cmethod (f->out, "wsfour", "SOCKS5", addr);
  twp_pt_output_cmethod_error (f->out, "wsbroken", "bind failed:\nbad \xc3\xa9\t.");
  twp_pt_output_cmethod_error (f->out, "ws-bad", "never written");
  twp_pt_output_cmethod (f->out, "bad name", "socks5", addr);
  g_assert_false (twp_pt_output_is_done (f->out));
  twp_pt_output_cmethods_done (f->out);
  g_assert_true (twp_pt_output_is_done (f->out));
  g_assert_false (twp_pt_output_is_broken (f->out));

  assert_output (f,
                 "STATUS TYPE=version IMPLEMENTATION=tor-websocket-proxy VERSION=0.1.0\n"
                 "VERSION 1\n"
                 "PROXY DONE\n"
                 "CMETHOD websocket socks5 127.0.0.1:41877\n"
                 "CMETHOD-ERROR wszero internal error: bad listener\n"
                 "CMETHOD-ERROR wsfour internal error: bad listener\n"
                 "CMETHOD-ERROR wsbroken bind failed:?bad ???.\n"
                 "CMETHODS DONE\n");

  /* B1: after DONE nothing state-gated, but LOG and STATUS still pass */
  twp_pt_output_proxy_done (f->out);
  twp_pt_output_proxy_error (f->out, "late");
  twp_pt_output_cmethod (f->out, "websocket", "socks5", addr);
  twp_pt_output_cmethod_error (f->out, "websocket", "late");
  twp_pt_output_cmethods_done (f->out);
  twp_pt_output_env_error (f->out, "late");
  twp_pt_output_version (f->out);
  twp_pt_output_version_error (f->out);
  g_assert_false (twp_pt_output_line (f->out, "FOO-BAR", "x"));
  g_assert_true (twp_pt_output_line (f->out, "STATUS", "TRANSPORT=websocket CONNECT=Success"));
  twp_pt_output_log (f->out, TWP_PT_LOG_NOTICE, "hello");
  g_assert_false (twp_pt_output_is_broken (f->out));

  assert_output (f,
                 "STATUS TRANSPORT=websocket CONNECT=Success\n"
                 "LOG SEVERITY=notice MESSAGE=\"hello\"\n");
}

/* S7, S8, S9 */
static void
test_server_session (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(GInetSocketAddress) addr = sockaddr ("127.0.0.1", 44027);
  g_autoptr(GInetSocketAddress) any = sockaddr ("0.0.0.0", 35401);
  g_autoptr(GInetSocketAddress) v6 = sockaddr ("::1", 443);
  g_autoptr(GInetSocketAddress) zero = sockaddr ("0.0.0.0", 0);
  g_autoptr(TwpArgs) args = twp_args_new ();
  g_autoptr(TwpArgs) empty = twp_args_new ();
  g_autoptr(TwpArgs) spaced = twp_args_new ();

  twp_args_add (args, "url", "ws://127.0.0.1=x/");
  twp_args_add (args, "note", "a,b");
  twp_args_add (spaced, "note", "two words");

  twp_pt_output_version (f->out);
  twp_pt_output_smethod (f->out, "websocket", addr, args);
  twp_pt_output_smethod (f->out, "wsany", any, NULL);
  twp_pt_output_smethod (f->out, "wsempty", v6, empty);
  twp_pt_output_smethod (f->out, "wsspace", addr, spaced);
  twp_pt_output_smethod (f->out, "wszero", zero, NULL);
  twp_pt_output_smethod_error (f->out, "wsbroken", "");
  twp_pt_output_smethods_done (f->out);
  g_assert_true (twp_pt_output_is_done (f->out));
  twp_pt_output_smethod (f->out, "websocket", addr, NULL);
  twp_pt_output_smethod_error (f->out, "websocket", "late");
  twp_pt_output_smethods_done (f->out);

  assert_output (f,
                 "VERSION 1\n"
                 "SMETHOD websocket 127.0.0.1:44027 ARGS:url=ws://127.0.0.1\\=x/,note=a\\,b\n"
                 "SMETHOD wsany 0.0.0.0:35401\n"
                 "SMETHOD wsempty [::1]:443\n"
                 "SMETHOD-ERROR wsspace ARGS contain spaces or non-ASCII bytes\n"
                 "SMETHOD-ERROR wszero internal error: bad listener\n"
                 "SMETHOD-ERROR wsbroken unspecified error\n"
                 "SMETHODS DONE\n");
}

/* G2, G3, B3: only ENV-ERROR, VERSION(-ERROR), LOG and STATUS before VERSION */
static void
test_before_version (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(GInetSocketAddress) addr = sockaddr ("127.0.0.1", 41877);

  twp_pt_output_cmethod (f->out, "websocket", "socks5", addr);
  twp_pt_output_cmethod_error (f->out, "websocket", "x");
  twp_pt_output_cmethods_done (f->out);
  twp_pt_output_smethods_done (f->out);
  twp_pt_output_proxy_done (f->out);
  twp_pt_output_proxy_error (f->out, "x");
  g_assert_false (twp_pt_output_is_done (f->out));
  twp_pt_output_env_error (f->out, "TOR_PT_CLIENT_TRANSPORTS is not set\r\n");
  twp_pt_output_env_error (f->out, NULL);
  assert_output (f,
                 "ENV-ERROR TOR_PT_CLIENT_TRANSPORTS is not set??\n"
                 "ENV-ERROR unspecified error\n");

  twp_pt_output_version_error (f->out);
  assert_output (f, "VERSION-ERROR no-version\n");
}

static void
test_second_version (Fixture       *f,
                     gconstpointer  data)
{
  g_assert_true (twp_pt_output_line (f->out, "VERSION", "1"));
  g_assert_false (twp_pt_output_line (f->out, "VERSION", "1"));
  g_assert_false (twp_pt_output_line (f->out, "VERSION-ERROR", "no-version"));
  /* ENV-ERROR after VERSION is allowed (tor destroys the proxy, B3) */
  g_assert_true (twp_pt_output_line (f->out, "ENV-ERROR", "late"));
  assert_output (f, "VERSION 1\nENV-ERROR late\n");
}

/* G4 */
static void
test_line_validation (Fixture       *f,
                      gconstpointer  data)
{
  static const char * const bad_keywords[] = {
    "", "A B", "LOG\n", "K\xc3\xa9", "K=V", "K:", "K\t",
  };
  static const char * const bad_args[] = {
    "a\nb", "a\rb", "tab\there", "\x7f", "\x80", "\xc3\xa9", "\x01",
  };

  for (guint i = 0; i < G_N_ELEMENTS (bad_keywords); i++)
    g_assert_false (twp_pt_output_line (f->out, bad_keywords[i], "x"));
  g_assert_false (twp_pt_output_line (f->out, NULL, "x"));
  for (guint i = 0; i < G_N_ELEMENTS (bad_args); i++)
    g_assert_false (twp_pt_output_line (f->out, "LOG", bad_args[i]));
  /* status values that would need quoting or end up raw in extra-info (G12) */
  twp_pt_output_status_version (f->out, "two words", "1");
  twp_pt_output_status_version (f->out, "impl", "1\"");
  twp_pt_output_status_version (f->out, "impl", "");
  twp_pt_output_status_version (f->out, "impl", NULL);
  twp_pt_output_status_version (f->out, "a=b", "1");
  assert_output (f, "");

  g_assert_true (twp_pt_output_line (f->out, "STATUS", NULL));
  g_assert_true (twp_pt_output_line (f->out, "x_Y-0", " ~!"));
  g_assert_true (twp_pt_output_line (f->out, "STATUS", ""));
  assert_output (f, "STATUS\nx_Y-0  ~!\nSTATUS \n");
  g_assert_false (twp_pt_output_is_broken (f->out));
}

/* K2: tor closed our stdout */
static void
test_epipe (Fixture       *f,
            gconstpointer  data)
{
  g_autoptr(GInetSocketAddress) addr = sockaddr ("127.0.0.1", 41877);

  g_assert_true (twp_pt_output_line (f->out, "VERSION", "1"));
  close (f->fds[0]);
  f->fds[0] = -1;

  g_assert_false (twp_pt_output_is_broken (f->out));
  g_assert_false (twp_pt_output_line (f->out, "LOG", "SEVERITY=notice MESSAGE=\"x\""));
  g_assert_true (twp_pt_output_is_broken (f->out));
  /* later calls are no-ops, and still do not raise SIGPIPE */
  twp_pt_output_cmethod (f->out, "websocket", "socks5", addr);
  twp_pt_output_cmethods_done (f->out);
  twp_pt_output_log (f->out, TWP_PT_LOG_ERROR, "gone");
  g_assert_false (twp_pt_output_line (f->out, "STATUS", NULL));
  g_assert_true (twp_pt_output_is_broken (f->out));
  g_assert_false (twp_pt_output_is_done (f->out));
}

/* L2, L3: decodes a kvline C string the way tor does, for the round trip. */
static char *
decode_cstring (const char *encoded)
{
  GString *out = g_string_new (NULL);
  gsize len = strlen (encoded);

  g_assert_cmpuint (len, >=, 2);
  g_assert_cmpint (encoded[0], ==, '"');
  g_assert_cmpint (encoded[len - 1], ==, '"');
  for (gsize i = 1; i < len - 1; i++)
    {
      g_assert_true (encoded[i] >= 0x20 && encoded[i] <= 0x7e);
      g_assert_cmpint (encoded[i], !=, '"');
      if (encoded[i] == '\\')
        {
          g_assert_cmpuint (i + 3, <, len);
          g_assert_true (encoded[i + 1] >= '0' && encoded[i + 1] <= '3');
          g_assert_true (encoded[i + 2] >= '0' && encoded[i + 2] <= '7');
          g_assert_true (encoded[i + 3] >= '0' && encoded[i + 3] <= '7');
          g_string_append_c (out, (char) ((encoded[i + 1] - '0') * 64 +
                                          (encoded[i + 2] - '0') * 8 +
                                          (encoded[i + 3] - '0')));
          i += 3;
        }
      else
        g_string_append_c (out, encoded[i]);
    }
  return g_string_free (out, FALSE);
}

static void
test_cstring (void)
{
  g_autofree char *observed = twp_pt_encode_cstring ("q \"q\" tab\there utf8 \xc3\xa9");
  g_autofree char *empty = twp_pt_encode_cstring ("");
  g_autofree char *special = twp_pt_encode_cstring ("\\'!#[]~\x7f\n\r\x01");
  char all[256];

  g_assert_cmpstr (observed, ==, "\"q \\042q\\042 tab\\011here utf8 \\303\\251\"");
  g_assert_cmpstr (empty, ==, "\"\"");
  g_assert_cmpstr (special, ==, "\"\\134'!#[]~\\177\\012\\015\\001\"");

  /* every byte but NUL round-trips, and the encoding is pure ASCII */
  for (int i = 1; i < 256; i++)
    all[i - 1] = (char) i;
  all[255] = '\0';
  {
    g_autofree char *encoded = twp_pt_encode_cstring (all);
    g_autofree char *decoded = decode_cstring (encoded);

    g_assert_cmpstr (decoded, ==, all);
  }
}

/* L1, L2, L4 */
static void
test_log (Fixture       *f,
          gconstpointer  data)
{
  twp_pt_output_log (f->out, TWP_PT_LOG_ERROR, "e");
  twp_pt_output_log (f->out, TWP_PT_LOG_WARNING, "w %d", 2);
  twp_pt_output_log (f->out, TWP_PT_LOG_NOTICE, "two words");
  twp_pt_output_log (f->out, TWP_PT_LOG_INFO, "line\nbreak");
  twp_pt_output_log (f->out, TWP_PT_LOG_DEBUG, "%s", "");
  assert_output (f,
                 "LOG SEVERITY=error MESSAGE=\"e\"\n"
                 "LOG SEVERITY=warning MESSAGE=\"w 2\"\n"
                 "LOG SEVERITY=notice MESSAGE=\"two words\"\n"
                 "LOG SEVERITY=info MESSAGE=\"line\\012break\"\n"
                 "LOG SEVERITY=debug MESSAGE=\"\"\n");
}

/* A huge message is cut, not written whole. */
static void
test_log_long (Fixture       *f,
               gconstpointer  data)
{
  g_autofree char *big = g_strnfill (100000, 'x');
  g_autofree char *got = NULL;

  twp_pt_output_log (f->out, TWP_PT_LOG_NOTICE, "%s", big);
  got = drain (f);
  g_assert_true (g_str_has_prefix (got, "LOG SEVERITY=notice MESSAGE=\"xxx"));
  g_assert_true (g_str_has_suffix (got, "x\"\n"));
  g_assert_cmpuint (strlen (got), <, 2048);
}

/* L7 */
static void
test_log_rate (Fixture       *f,
               gconstpointer  data)
{
  g_autofree char *got = NULL;
  g_auto(GStrv) lines = NULL;
  /* long enough that the loop below cannot see a refill, even under ASan */
  const gint64 interval = 300 * G_TIME_SPAN_MILLISECOND;

  twp_pt_output_set_log_rate (f->out, 3, interval);
  for (int i = 0; i < 10; i++)
    twp_pt_output_log (f->out, TWP_PT_LOG_NOTICE, "burst %d", i);
  got = drain (f);
  lines = g_strsplit (got, "\n", -1);
  g_assert_cmpuint (g_strv_length (lines), ==, 4);
  g_assert_cmpstr (lines[0], ==, "LOG SEVERITY=notice MESSAGE=\"burst 0\"");
  g_assert_cmpstr (lines[2], ==, "LOG SEVERITY=notice MESSAGE=\"burst 2\"");
  g_assert_cmpstr (lines[3], ==, "");

  /* other lines are not rate limited */
  g_assert_true (twp_pt_output_line (f->out, "STATUS", "TRANSPORT=websocket"));
  assert_output (f, "STATUS TRANSPORT=websocket\n");

  g_usleep (interval + 50 * G_TIME_SPAN_MILLISECOND);
  twp_pt_output_log (f->out, TWP_PT_LOG_WARNING, "after");
  twp_pt_output_log (f->out, TWP_PT_LOG_WARNING, "dropped");
  assert_output (f, "LOG SEVERITY=warning MESSAGE=\"[7 log lines dropped] after\"\n");

  g_usleep (interval + 50 * G_TIME_SPAN_MILLISECOND);
  twp_pt_output_log (f->out, TWP_PT_LOG_WARNING, "again");
  assert_output (f, "LOG SEVERITY=warning MESSAGE=\"[1 log lines dropped] again\"\n");
}

int
main (int    argc,
      char **argv)
{
  /* K2: as the real program does; EPIPE must come back as an error */
  signal (SIGPIPE, SIG_IGN);
  g_test_init (&argc, &argv, NULL);

#define ADD(path, func) \
  g_test_add ("/pt-output/" path, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD ("client-session", test_client_session);
  ADD ("server-session", test_server_session);
  ADD ("before-version", test_before_version);
  ADD ("second-version", test_second_version);
  ADD ("line-validation", test_line_validation);
  ADD ("epipe", test_epipe);
  ADD ("log", test_log);
  ADD ("log-long", test_log_long);
  ADD ("log-rate", test_log_rate);
#undef ADD
  g_test_add_func ("/pt-output/cstring", test_cstring);

  return g_test_run ();
}
