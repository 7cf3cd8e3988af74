/* SPDX-License-Identifier: BSD-3-Clause */
/* The operator's metrics without a process: the endpoint's request parser
 * on good and bad input, the metrics= and metrics-allow-remote= options,
 * the counters and their three renderings (exposition, heartbeat line,
 * D-Bus report). */
#define G_LOG_DOMAIN "test-metrics"

#include "config.h"

#include <string.h>

#include <gio/gunixsocketaddress.h>

#include "twp-extorport.h"
#include "twp-metrics-endpoint.h"
#include "twp-server.h"
#include "twp-server-stats.h"

static TwpMetricsRequest
parse (const char *text)
{
  return twp_metrics_parse_request ((const guint8 *) text, strlen (text));
}

static void
test_request_good (void)
{
  g_assert_cmpint (parse ("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9100\r\nAccept: text/plain\r\n\r\n"), ==,
                   TWP_METRICS_REQUEST_GET);
  g_assert_cmpint (parse ("GET /metrics HTTP/1.0\r\n\r\n"), ==, TWP_METRICS_REQUEST_GET);
  g_assert_cmpint (parse ("GET /metrics?name[]=x HTTP/1.1\r\n\r\n"), ==, TWP_METRICS_REQUEST_GET);
  g_assert_cmpint (parse ("HEAD /metrics HTTP/1.1\r\nX-Empty:\r\nTab:\tvalue\r\n\r\n"), ==,
                   TWP_METRICS_REQUEST_HEAD);
  /* Whatever follows the head (a pipelined request) is not ours to read. */
  g_assert_cmpint (parse ("GET /metrics HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n"), ==, TWP_METRICS_REQUEST_GET);
}

static void
test_request_refused (void)
{
  g_assert_cmpint (parse ("GET / HTTP/1.1\r\n\r\n"), ==, TWP_METRICS_REQUEST_NOT_FOUND);
  g_assert_cmpint (parse ("GET /metricsx HTTP/1.1\r\n\r\n"), ==, TWP_METRICS_REQUEST_NOT_FOUND);
  g_assert_cmpint (parse ("GET /metrics/ HTTP/1.1\r\n\r\n"), ==, TWP_METRICS_REQUEST_NOT_FOUND);
  g_assert_cmpint (parse ("POST /metrics HTTP/1.1\r\n\r\n"), ==, TWP_METRICS_REQUEST_BAD_METHOD);
  g_assert_cmpint (parse ("get /metrics HTTP/1.1\r\n\r\n"), ==, TWP_METRICS_REQUEST_BAD_METHOD);
}

static void
test_request_bad (void)
{
  static const char *const bad[] = {
    "\r\n\r\n",
    "GET\r\n\r\n",
    "GET /metrics\r\n\r\n",
    "GET  /metrics HTTP/1.1\r\n\r\n",
    "GET /metrics  HTTP/1.1\r\n\r\n",
    "GET metrics HTTP/1.1\r\n\r\n",
    "GET /metrics HTTP/2.0\r\n\r\n",
    "GET /metrics HTTP/1.10\r\n\r\n",
    "GET /metrics http/1.1\r\n\r\n",
    "GET /metrics HTTP/1.1 \r\n\r\n",
    "G(T /metrics HTTP/1.1\r\n\r\n",
    "GET /met\x01rics HTTP/1.1\r\n\r\n",
    "GET /m\xc3\xa9trics HTTP/1.1\r\n\r\n",
    "GET /metrics HTTP/1.1\r\nNo colon\r\n\r\n",
    "GET /metrics HTTP/1.1\r\n: no name\r\n\r\n",
    "GET /metrics HTTP/1.1\r\nName : space before colon\r\n\r\n",
    "GET /metrics HTTP/1.1\r\nName: bell\x07\r\n\r\n",
    "GET /metrics HTTP/1.1\r\nName: a\rb\r\n\r\n",
    "GET /metrics HTTP/1.1\r\n folded\r\n\r\n",
    "GET /metrics HTTP/1.1\n\n",
    "GET /metrics HTTP/1.1\r\nHost: x\n\r\n",
  };

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_test_message ("%u: %s", i, bad[i]);
      g_assert_cmpint (parse (bad[i]), ==, TWP_METRICS_REQUEST_BAD);
    }
  {
    /* A NUL inside the head, and before any end. */
    static const guint8 nul_header[] = "GET /metrics HTTP/1.1\r\nA: b\0c\r\n\r\n";
    static const guint8 nul_early[] = "GET /me\0";
    /* Found by fuzz-metrics-request: NUL taken for a token character. */
    static const guint8 nul_name[] = "POST /metrics HTTP/1.1\r\nCon\0\0\0.1:910nnnnn 0\r\n\r\n";
    static const guint8 nul_method[] = "GET\0 /metrics HTTP/1.1\r\n\r\n";

    g_assert_cmpint (twp_metrics_parse_request (nul_name, sizeof nul_name - 1), ==, TWP_METRICS_REQUEST_BAD);
    g_assert_cmpint (twp_metrics_parse_request (nul_method, sizeof nul_method - 1), ==, TWP_METRICS_REQUEST_BAD);
    g_assert_cmpint (twp_metrics_parse_request (nul_header, sizeof nul_header - 1), ==, TWP_METRICS_REQUEST_BAD);
    g_assert_cmpint (twp_metrics_parse_request (nul_early, sizeof nul_early - 1), ==, TWP_METRICS_REQUEST_BAD);
  }
}

/* Every prefix of a good request asks for more; a head without an end is
 * refused at the bound, whatever follows. */
static void
test_request_incomplete (void)
{
  const char *request = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  g_autofree char *big = g_strnfill (TWP_METRICS_MAX_REQUEST + 10, 'a');
  g_autofree char *long_header = NULL;

  for (gsize i = 0; i < strlen (request); i++)
    g_assert_cmpint (twp_metrics_parse_request ((const guint8 *) request, i), ==, TWP_METRICS_REQUEST_INCOMPLETE);
  g_assert_cmpint (twp_metrics_parse_request (NULL, 0), ==, TWP_METRICS_REQUEST_INCOMPLETE);
  g_assert_cmpint (twp_metrics_parse_request ((const guint8 *) big, TWP_METRICS_MAX_REQUEST - 1), ==,
                   TWP_METRICS_REQUEST_INCOMPLETE);
  g_assert_cmpint (twp_metrics_parse_request ((const guint8 *) big, TWP_METRICS_MAX_REQUEST), ==,
                   TWP_METRICS_REQUEST_TOO_LARGE);
  g_assert_cmpint (parse (big), ==, TWP_METRICS_REQUEST_TOO_LARGE);
  /* The end beyond the bound does not count. */
  long_header = g_strdup_printf ("GET /metrics HTTP/1.1\r\nX: %s\r\n\r\n", big);
  g_assert_cmpint (parse (long_header), ==, TWP_METRICS_REQUEST_TOO_LARGE);
}

static gboolean
apply (TwpServerOptions  *options,
       const char *const *pairs,
       GError           **error)
{
  g_autoptr(TwpArgs) args = twp_args_new ();

  for (guint i = 0; pairs[i] != NULL; i += 2)
    twp_args_add (args, pairs[i], pairs[i + 1]);
  return twp_server_options_apply (options, args, error);
}

static void
assert_option_error (const char *const *pairs,
                     const char        *expected,
                     const char        *secret)
{
  TwpServerOptions options;
  g_autoptr(GError) error = NULL;

  twp_server_options_init (&options);
  g_assert_false (apply (&options, pairs, &error));
  g_assert_error (error, TWP_SERVER_ERROR, TWP_SERVER_ERROR_INVALID_OPTION);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, expected));
  if (secret != NULL)
    g_assert_null (strstr (error->message, secret));
  twp_server_options_clear (&options);
}

static void
test_options (void)
{
  TwpServerOptions options;
  g_autoptr(GError) error = NULL;
  g_autofree char *long_name = g_strnfill (107, 'x');
  g_autofree char *long_path = g_strconcat ("/", long_name, NULL);

  twp_server_options_init (&options);
  g_assert_null (options.metrics_address);
  g_assert_false (options.metrics_allow_remote);

  g_assert_true (apply (&options, (const char *[]) { "metrics", "127.0.0.1:9100", NULL }, &error));
  g_assert_no_error (error);
  g_assert_true (G_IS_INET_SOCKET_ADDRESS (options.metrics_address));
  g_assert_cmpuint (g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (options.metrics_address)), ==, 9100);
  g_assert_true (twp_metrics_address_is_local (options.metrics_address));

  g_assert_true (apply (&options, (const char *[]) { "metrics", "[::1]:9101", NULL }, &error));
  g_assert_cmpuint (g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (options.metrics_address)), ==, 9101);
  g_assert_true (twp_metrics_address_is_local (options.metrics_address));

  g_assert_true (apply (&options, (const char *[]) { "metrics", "/run/twp/metrics.sock", NULL }, &error));
  g_assert_true (G_IS_UNIX_SOCKET_ADDRESS (options.metrics_address));
  g_assert_cmpstr (g_unix_socket_address_get_path (G_UNIX_SOCKET_ADDRESS (options.metrics_address)), ==,
                   "/run/twp/metrics.sock");

  /* Remote, allowed on purpose, in either order. */
  g_assert_true (apply (&options, (const char *[]) { "metrics-allow-remote", "1", "metrics", "192.0.2.1:9100",
                                                     NULL }, &error));
  g_assert_no_error (error);
  g_assert_false (twp_metrics_address_is_local (options.metrics_address));
  g_assert_true (options.metrics_allow_remote);
  twp_server_options_clear (&options);
  twp_server_options_init (&options);
  g_assert_true (apply (&options, (const char *[]) { "metrics", "0.0.0.0:9100", "metrics-allow-remote", "1",
                                                     NULL }, &error));
  g_assert_no_error (error);
  twp_server_options_clear (&options);

  /* Remote without leave: refused, saying why, without the address. */
  assert_option_error ((const char *[]) { "metrics", "192.0.2.1:9100", NULL }, "metrics-allow-remote=1",
                       "192.0.2.1");
  assert_option_error ((const char *[]) { "metrics", "[2001:db8::1]:9100", NULL }, "not a loopback address",
                       "2001");
  assert_option_error ((const char *[]) { "metrics-allow-remote", "0", "metrics", "0.0.0.0:9100", NULL },
                       "not a loopback address", "0.0.0.0");
  /* Not an address. */
  assert_option_error ((const char *[]) { "metrics", "", NULL }, "metrics= must be", NULL);
  assert_option_error ((const char *[]) { "metrics", "localhost:9100", NULL }, "metrics= must be", NULL);
  assert_option_error ((const char *[]) { "metrics", "127.0.0.1", NULL }, "metrics= must be", NULL);
  assert_option_error ((const char *[]) { "metrics", "127.0.0.1:0", NULL }, "metrics= must be", NULL);
  assert_option_error ((const char *[]) { "metrics", "127.0.0.1:65536", NULL }, "metrics= must be", NULL);
  assert_option_error ((const char *[]) { "metrics", "metrics.sock", NULL }, "metrics= must be", NULL);
  assert_option_error ((const char *[]) { "metrics", long_path, NULL }, "longer than 107", NULL);
  assert_option_error ((const char *[]) { "metrics-allow-remote", "2", NULL }, "metrics-allow-remote=", NULL);
  assert_option_error ((const char *[]) { "metrics-allow-remote", "yes", NULL }, "metrics-allow-remote=", NULL);
}

static guint64
metric (const char *body,
        const char *series)
{
  g_autofree char *needle = g_strdup_printf ("\n%s ", series);
  const char *found = strstr (body, needle);

  g_assert_nonnull (found);
  return g_ascii_strtoull (found + strlen (needle), NULL, 10);
}

/* Every sample's metric has HELP and TYPE before it; histogram buckets
 * are cumulative. */
static void
test_exposition (void)
{
  g_autoptr(TwpServerStats) stats = twp_server_stats_new ();
  g_autoptr(GError) hash = g_error_new_literal (TWP_EXTORPORT_ERROR, TWP_EXTORPORT_ERROR_SERVER_HASH, "x");
  g_autoptr(GError) timeout = g_error_new_literal (TWP_EXTORPORT_ERROR, TWP_EXTORPORT_ERROR_TIMED_OUT, "x");
  g_autoptr(GError) refused = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED, "x");
  g_autofree char *body = NULL;
  g_auto(GStrv) lines = NULL;
  g_autoptr(GHashTable) described = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  guint64 previous = 0;

  twp_server_stats_connection_accepted (stats);
  twp_server_stats_connection_accepted (stats);
  twp_server_stats_refused (stats, TWP_SERVER_REFUSAL_ORIGIN);
  twp_server_stats_tunnel_opened (stats, 3000, TRUE, FALSE);         /* 3 ms */
  twp_server_stats_tunnel_opened (stats, 20 * G_USEC_PER_SEC, FALSE, TRUE);
  twp_server_stats_extorport_ready (stats, 500);
  twp_server_stats_extorport_failed (stats, FALSE, hash);
  twp_server_stats_extorport_failed (stats, FALSE, timeout);
  twp_server_stats_extorport_failed (stats, TRUE, refused);
  twp_server_stats_set_live (stats, 1, 10, 1234, 5678);
  body = twp_metrics_format (twp_server_stats_get_counters (stats), 4096, 7);

  g_assert_true (g_str_has_suffix (body, "\n"));
  lines = g_strsplit (body, "\n", -1);
  for (guint i = 0; lines[i] != NULL && lines[i][0] != '\0'; i++)
    {
      const char *line = lines[i];

      if (g_str_has_prefix (line, "# HELP "))
        {
          g_autofree char *name = g_strndup (line + 7, strcspn (line + 7, " "));

          g_assert_false (g_hash_table_contains (described, name));
          g_hash_table_add (described, g_steal_pointer (&name));
          g_assert_true (g_str_has_prefix (lines[i + 1], "# TYPE "));
        }
      else if (line[0] != '#')
        {
          g_autofree char *name = g_strndup (line, strcspn (line, "{ "));

          g_assert_true (g_str_has_prefix (name, "tor_websocket_proxy_"));
          if (!g_hash_table_contains (described, name))
            {
              /* Histogram series carry the histogram's name. */
              g_assert_true (g_str_has_suffix (name, "_bucket") || g_str_has_suffix (name, "_sum") ||
                             g_str_has_suffix (name, "_count"));
            }
        }
    }

  g_assert_cmpuint (metric (body, "tor_websocket_proxy_connections_accepted_total"), ==, 2);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_connections_open"), ==, 1);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_connections_max"), ==, 10);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_handshakes_refused_total{reason=\"origin\"}"), ==, 1);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_handshakes_refused_total{reason=\"bad_request\"}"), ==, 0);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_tunnels_total{mode=\"base64\",scheme=\"ws\"}"), ==, 1);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_tunnels_open{mode=\"binary\",scheme=\"wss\"}"), ==, 1);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_extorport_failures_total{kind=\"auth\"}"), ==, 1);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_extorport_failures_total{kind=\"timeout\"}"), ==, 1);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_extorport_failures_total{kind=\"connect\"}"), ==, 1);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_bytes_total{direction=\"from_websocket\"}"), ==, 1234);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_bytes_total{direction=\"to_websocket\"}"), ==, 5678);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_resident_memory_bytes"), ==, 4096);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_open_fds"), ==, 7);
  /* 3 ms lands in the 5 ms bucket, 20 s only in +Inf. */
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_handshake_duration_seconds_bucket{le=\"0.0025\"}"), ==, 0);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_handshake_duration_seconds_bucket{le=\"0.005\"}"), ==, 1);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_handshake_duration_seconds_bucket{le=\"10\"}"), ==, 1);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_handshake_duration_seconds_bucket{le=\"+Inf\"}"), ==, 2);
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_handshake_duration_seconds_count"), ==, 2);
  g_assert_nonnull (strstr (body, "\ntor_websocket_proxy_handshake_duration_seconds_sum 20.003000\n"));
  g_assert_cmpuint (metric (body, "tor_websocket_proxy_extorport_setup_duration_seconds_bucket{le=\"0.001\"}"),
                    ==, 1);
  for (guint i = 0; i < TWP_SERVER_STATS_N_BUCKETS; i++)
    {
      char bound[G_ASCII_DTOSTR_BUF_SIZE];
      g_autofree char *series = NULL;
      guint64 value;

      g_ascii_formatd (bound, sizeof bound, "%g", twp_server_stats_buckets[i]);
      series = g_strdup_printf ("tor_websocket_proxy_handshake_duration_seconds_bucket{le=\"%s\"}", bound);
      value = metric (body, series);
      g_assert_cmpuint (value, >=, previous);
      previous = value;
    }
}

/* The heartbeat and the D-Bus report say the same, in words. */
static void
test_summary_and_report (void)
{
  g_autoptr(TwpServerStats) stats = twp_server_stats_new ();
  g_autofree char *summary = NULL;
  g_autofree char *report = NULL;
  guint64 rss;
  guint fds;

  g_assert_true (twp_server_stats_read_process (&rss, &fds));
  g_assert_cmpuint (rss, >, 0);
  g_assert_cmpuint (fds, >=, 3);

  summary = twp_server_stats_format_summary (stats);
  g_assert_true (g_str_has_prefix (summary, "Heartbeat: 0 tunnels open, 0 opened since start"));
  g_assert_nonnull (strstr (summary, "refused: none"));
  g_assert_null (strchr (summary, '\n'));
  g_clear_pointer (&summary, g_free);

  twp_server_stats_refused (stats, TWP_SERVER_REFUSAL_BAD_PATH);
  twp_server_stats_refused (stats, TWP_SERVER_REFUSAL_BAD_PATH);
  twp_server_stats_refused (stats, TWP_SERVER_REFUSAL_CONNECTION_CAP);
  twp_server_stats_tunnel_opened (stats, 1000, FALSE, TRUE);
  summary = twp_server_stats_format_summary (stats);
  g_assert_nonnull (strstr (summary, "1 tunnels open, 1 opened since start (binary 1, base64 0, wss 1)"));
  g_assert_nonnull (strstr (summary, "refused: bad_path 2, connection_cap 1;"));
  report = twp_server_stats_format_report (stats);
  g_assert_nonnull (strstr (report, "handshakes refused: 3 (bad_path 2, connection_cap 1)\n"));
  g_assert_nonnull (strstr (report, "tunnels binary over wss: 1 opened, 0 closed\n"));
  g_assert_nonnull (strstr (report, "handshakes completed: 1\n"));
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/metrics/request/good", test_request_good);
  g_test_add_func ("/metrics/request/refused", test_request_refused);
  g_test_add_func ("/metrics/request/bad", test_request_bad);
  g_test_add_func ("/metrics/request/incomplete", test_request_incomplete);
  g_test_add_func ("/metrics/options", test_options);
  g_test_add_func ("/metrics/exposition", test_exposition);
  g_test_add_func ("/metrics/summary-and-report", test_summary_and_report);

  return g_test_run ();
}
