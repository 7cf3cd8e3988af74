/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-server-stats"

#include "config.h"

#include "twp-server-stats.h"

#include <string.h>

#include "twp-extorport.h"

struct _TwpServerStats
{
  GObject parent_instance;

  TwpServerCounters counters;
};

G_DEFINE_FINAL_TYPE (TwpServerStats, twp_server_stats, G_TYPE_OBJECT)

const double twp_server_stats_buckets[TWP_SERVER_STATS_N_BUCKETS] = {
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
};

const guint16 twp_server_stats_close_codes[TWP_SERVER_STATS_N_CLOSE_CODES] = {
  1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
};

static const char *const refusal_names[TWP_SERVER_N_REFUSALS] = {
  [TWP_SERVER_REFUSAL_BAD_PATH] = "bad_path",
  [TWP_SERVER_REFUSAL_ORIGIN] = "origin",
  [TWP_SERVER_REFUSAL_OLD_VERSION] = "old_version",
  [TWP_SERVER_REFUSAL_PER_ADDRESS_LIMIT] = "per_address_limit",
  [TWP_SERVER_REFUSAL_CONNECTION_CAP] = "connection_cap",
  [TWP_SERVER_REFUSAL_HANDSHAKE_TIMEOUT] = "handshake_timeout",
  [TWP_SERVER_REFUSAL_TLS_FAILURE] = "tls_failure",
  [TWP_SERVER_REFUSAL_NOT_WEBSOCKET] = "not_websocket",
  [TWP_SERVER_REFUSAL_BAD_REQUEST] = "bad_request",
  [TWP_SERVER_REFUSAL_TOR_UNAVAILABLE] = "tor_unavailable",
  [TWP_SERVER_REFUSAL_MEMORY_PRESSURE] = "memory_pressure",
  [TWP_SERVER_REFUSAL_OUT_OF_FDS] = "out_of_fds",
};

static const char *const extorport_names[TWP_SERVER_N_EXTORPORT_FAILURES] = {
  [TWP_SERVER_EXTORPORT_CONNECT] = "connect",
  [TWP_SERVER_EXTORPORT_COOKIE] = "cookie",
  [TWP_SERVER_EXTORPORT_AUTH] = "auth",
  [TWP_SERVER_EXTORPORT_DENIED] = "denied",
  [TWP_SERVER_EXTORPORT_PROTOCOL] = "protocol",
  [TWP_SERVER_EXTORPORT_CLOSED] = "closed",
  [TWP_SERVER_EXTORPORT_TIMEOUT] = "timeout",
};

static const char *const end_names[TWP_RELAY_N_ENDS] = {
  [TWP_RELAY_END_NONE] = "none",
  [TWP_RELAY_END_NORMAL] = "normal",
  [TWP_RELAY_END_PEER_CLOSED] = "peer_close",
  [TWP_RELAY_END_PROTOCOL] = "protocol",
  [TWP_RELAY_END_ABNORMAL] = "abnormal",
  [TWP_RELAY_END_IDLE] = "idle",
  [TWP_RELAY_END_STALL] = "stall",
  [TWP_RELAY_END_KEEPALIVE] = "keepalive",
  [TWP_RELAY_END_IO_ERROR] = "io_error",
  [TWP_RELAY_END_CANCELLED] = "shutdown",
};

static const char *const close_code_labels[TWP_SERVER_STATS_N_CLOSE_CODES + 1] = {
  "1000", "1001", "1002", "1003", "1007", "1008", "1009", "1010", "1011", "other",
};

const char *
twp_server_refusal_to_string (TwpServerRefusal reason)
{
  g_return_val_if_fail (reason < TWP_SERVER_N_REFUSALS, "unknown");
  return refusal_names[reason];
}

const char *
twp_server_extorport_failure_to_string (TwpServerExtOrPortFailure kind)
{
  g_return_val_if_fail (kind < TWP_SERVER_N_EXTORPORT_FAILURES, "unknown");
  return extorport_names[kind];
}

const char *
twp_relay_end_to_string (TwpRelayEnd end)
{
  g_return_val_if_fail (end < TWP_RELAY_N_ENDS, "unknown");
  return end_names[end];
}

const char *
twp_server_stats_close_code_label (guint index)
{
  g_return_val_if_fail (index <= TWP_SERVER_STATS_N_CLOSE_CODES, "other");
  return close_code_labels[index];
}

/* A peer chooses its close status: the label set stays fixed whatever it
 * sends. */
static guint
close_code_index (guint code)
{
  for (guint i = 0; i < TWP_SERVER_STATS_N_CLOSE_CODES; i++)
    if (twp_server_stats_close_codes[i] == code)
      return i;
  return TWP_SERVER_STATS_N_CLOSE_CODES;
}

static void
histogram_observe (TwpServerHistogram *histogram,
                   gint64              us)
{
  double seconds = (double) MAX (us, 0) / G_USEC_PER_SEC;
  guint i;

  for (i = 0; i < TWP_SERVER_STATS_N_BUCKETS; i++)
    if (seconds <= twp_server_stats_buckets[i])
      break;
  histogram->counts[i]++;
  histogram->count++;
  histogram->sum_seconds += seconds;
}

static void
twp_server_stats_class_init (TwpServerStatsClass *klass)
{
}

static void
twp_server_stats_init (TwpServerStats *self)
{
}

TwpServerStats *
twp_server_stats_new (void)
{
  return g_object_new (TWP_TYPE_SERVER_STATS, NULL);
}

void
twp_server_stats_connection_accepted (TwpServerStats *self)
{
  g_return_if_fail (TWP_IS_SERVER_STATS (self));
  self->counters.connections_accepted++;
}

void
twp_server_stats_refused (TwpServerStats   *self,
                          TwpServerRefusal  reason)
{
  g_return_if_fail (TWP_IS_SERVER_STATS (self));
  g_return_if_fail (reason < TWP_SERVER_N_REFUSALS);
  self->counters.refused[reason]++;
}

void
twp_server_stats_tunnel_opened (TwpServerStats *self,
                                gint64          handshake_us,
                                gboolean        base64,
                                gboolean        tls)
{
  g_return_if_fail (TWP_IS_SERVER_STATS (self));
  self->counters.tunnels_opened[!!base64][!!tls]++;
  histogram_observe (&self->counters.handshake_seconds, handshake_us);
}

void
twp_server_stats_tunnel_closed (TwpServerStats *self,
                                TwpRelay       *relay,
                                gboolean        base64,
                                gboolean        tls)
{
  TwpRelayEnd end;

  g_return_if_fail (TWP_IS_SERVER_STATS (self));
  g_return_if_fail (TWP_IS_RELAY (relay));

  end = twp_relay_get_end (relay);
  self->counters.tunnels_closed[!!base64][!!tls]++;
  self->counters.tunnel_ends[end < TWP_RELAY_N_ENDS ? end : TWP_RELAY_END_NONE]++;
  if (end == TWP_RELAY_END_PROTOCOL)
    self->counters.protocol_closes[close_code_index (twp_relay_get_close_code (relay))]++;
  if (twp_relay_get_peer_close_code (relay) != 0)
    self->counters.peer_closes[close_code_index (twp_relay_get_peer_close_code (relay))]++;
}

void
twp_server_stats_extorport_ready (TwpServerStats *self,
                                  gint64          setup_us)
{
  g_return_if_fail (TWP_IS_SERVER_STATS (self));
  histogram_observe (&self->counters.extorport_seconds, setup_us);
}

void
twp_server_stats_extorport_failed (TwpServerStats *self,
                                   gboolean        connecting,
                                   const GError   *error)
{
  TwpServerExtOrPortFailure kind = TWP_SERVER_EXTORPORT_CLOSED;

  g_return_if_fail (TWP_IS_SERVER_STATS (self));

  if (connecting)
    kind = TWP_SERVER_EXTORPORT_CONNECT;
  else if (error != NULL && error->domain == TWP_EXTORPORT_ERROR)
    switch ((TwpExtOrPortError) error->code)
      {
      case TWP_EXTORPORT_ERROR_COOKIE:
        kind = TWP_SERVER_EXTORPORT_COOKIE;
        break;
      case TWP_EXTORPORT_ERROR_AUTH_TYPE:
      case TWP_EXTORPORT_ERROR_SERVER_HASH:
      case TWP_EXTORPORT_ERROR_AUTH_FAILED:
        kind = TWP_SERVER_EXTORPORT_AUTH;
        break;
      case TWP_EXTORPORT_ERROR_DENIED:
        kind = TWP_SERVER_EXTORPORT_DENIED;
        break;
      case TWP_EXTORPORT_ERROR_PROTOCOL:
        kind = TWP_SERVER_EXTORPORT_PROTOCOL;
        break;
      case TWP_EXTORPORT_ERROR_TIMED_OUT:
        kind = TWP_SERVER_EXTORPORT_TIMEOUT;
        break;
      case TWP_EXTORPORT_ERROR_CLOSED:
      default:
        kind = TWP_SERVER_EXTORPORT_CLOSED;
        break;
      }
  else if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
    kind = TWP_SERVER_EXTORPORT_TIMEOUT;
  self->counters.extorport_failures[kind]++;
}

void
twp_server_stats_set_live (TwpServerStats *self,
                           guint           connections_open,
                           guint           connections_max,
                           guint64         bytes_from_ws,
                           guint64         bytes_to_ws)
{
  g_return_if_fail (TWP_IS_SERVER_STATS (self));
  self->counters.connections_open = connections_open;
  self->counters.connections_max = connections_max;
  self->counters.bytes_from_ws = bytes_from_ws;
  self->counters.bytes_to_ws = bytes_to_ws;
}

const TwpServerCounters *
twp_server_stats_get_counters (TwpServerStats *self)
{
  g_return_val_if_fail (TWP_IS_SERVER_STATS (self), NULL);
  return &self->counters;
}

gboolean
twp_server_stats_read_process (guint64 *rss_bytes,
                               guint   *n_fds)
{
  g_autofree char *status = NULL;
  g_autoptr(GDir) dir = NULL;
  const char *line;
  guint fds = 0;

  *rss_bytes = 0;
  *n_fds = 0;
  if (!g_file_get_contents ("/proc/self/status", &status, NULL, NULL) ||
      (line = strstr (status, "\nVmRSS:")) == NULL)
    return FALSE;
  *rss_bytes = g_ascii_strtoull (line + strlen ("\nVmRSS:"), NULL, 10) * 1024;

  dir = g_dir_open ("/proc/self/fd", 0, NULL);
  if (dir == NULL)
    return FALSE;
  while (g_dir_read_name (dir) != NULL)
    fds++;
  /* The directory's own descriptor, open while counting, is not ours. */
  *n_fds = fds > 0 ? fds - 1 : 0;
  return TRUE;
}

static guint64
sum (const guint64 *values,
     guint          n)
{
  guint64 total = 0;

  for (guint i = 0; i < n; i++)
    total += values[i];
  return total;
}

static guint64
tunnels_open (const TwpServerCounters *c)
{
  guint64 opened = c->tunnels_opened[0][0] + c->tunnels_opened[0][1] +
                   c->tunnels_opened[1][0] + c->tunnels_opened[1][1];
  guint64 closed = c->tunnels_closed[0][0] + c->tunnels_closed[0][1] +
                   c->tunnels_closed[1][0] + c->tunnels_closed[1][1];

  return opened - closed;
}

/* "name 3, name 1" for the non-zero entries, or "none". */
static void
append_nonzero (GString            *text,
                const guint64      *values,
                guint               n,
                const char *const  *names)
{
  gboolean any = FALSE;

  for (guint i = 0; i < n; i++)
    if (values[i] > 0)
      {
        g_string_append_printf (text, "%s%s %" G_GUINT64_FORMAT, any ? ", " : "", names[i], values[i]);
        any = TRUE;
      }
  if (!any)
    g_string_append (text, "none");
}

char *
twp_server_stats_format_summary (TwpServerStats *self)
{
  const TwpServerCounters *c;
  GString *text;
  g_autofree char *in = NULL;
  g_autofree char *out = NULL;
  guint64 rss;
  guint fds;

  g_return_val_if_fail (TWP_IS_SERVER_STATS (self), NULL);
  c = &self->counters;
  text = g_string_new (NULL);
  in = g_format_size (c->bytes_from_ws);
  out = g_format_size (c->bytes_to_ws);
  twp_server_stats_read_process (&rss, &fds);
  g_string_append_printf (text, "Heartbeat: %" G_GUINT64_FORMAT " tunnels open, %" G_GUINT64_FORMAT
                          " opened since start (binary %" G_GUINT64_FORMAT ", base64 %" G_GUINT64_FORMAT
                          ", wss %" G_GUINT64_FORMAT "); %u connections open; %s in, %s out; refused: ",
                          tunnels_open (c),
                          c->tunnels_opened[0][0] + c->tunnels_opened[0][1] +
                          c->tunnels_opened[1][0] + c->tunnels_opened[1][1],
                          c->tunnels_opened[0][0] + c->tunnels_opened[0][1],
                          c->tunnels_opened[1][0] + c->tunnels_opened[1][1],
                          c->tunnels_opened[0][1] + c->tunnels_opened[1][1],
                          c->connections_open, in, out);
  append_nonzero (text, c->refused, TWP_SERVER_N_REFUSALS, refusal_names);
  g_string_append (text, "; closes: ");
  append_nonzero (text, c->tunnel_ends + TWP_RELAY_END_NORMAL, TWP_RELAY_N_ENDS - TWP_RELAY_END_NORMAL,
                  end_names + TWP_RELAY_END_NORMAL);
  g_string_append (text, "; ExtORPort failures: ");
  append_nonzero (text, c->extorport_failures, TWP_SERVER_N_EXTORPORT_FAILURES, extorport_names);
  g_string_append_printf (text, "; memory %" G_GUINT64_FORMAT " KiB, %u fds", rss / 1024, fds);
  return g_string_free (text, FALSE);
}

static void
append_histogram (GString                  *text,
                  const char               *name,
                  const TwpServerHistogram *histogram)
{
  guint64 cumulative = 0;

  g_string_append_printf (text, "%s: %" G_GUINT64_FORMAT " observed, mean %.4f s; at most:", name,
                          histogram->count,
                          histogram->count > 0 ? histogram->sum_seconds / histogram->count : 0.0);
  for (guint i = 0; i < TWP_SERVER_STATS_N_BUCKETS; i++)
    {
      cumulative += histogram->counts[i];
      g_string_append_printf (text, " %gs %" G_GUINT64_FORMAT, twp_server_stats_buckets[i], cumulative);
    }
  g_string_append_c (text, '\n');
}

static void
append_by_code (GString       *text,
                const char    *name,
                const guint64 *values)
{
  g_string_append_printf (text, "%s: ", name);
  append_nonzero (text, values, TWP_SERVER_STATS_N_CLOSE_CODES + 1, close_code_labels);
  g_string_append_c (text, '\n');
}

char *
twp_server_stats_format_report (TwpServerStats *self)
{
  const TwpServerCounters *c;
  GString *text;
  guint64 rss;
  guint fds;

  g_return_val_if_fail (TWP_IS_SERVER_STATS (self), NULL);
  c = &self->counters;
  text = g_string_new (NULL);
  twp_server_stats_read_process (&rss, &fds);
  g_string_append_printf (text, "connections: %u open (cap %u), %" G_GUINT64_FORMAT " accepted\n",
                          c->connections_open, c->connections_max, c->connections_accepted);
  g_string_append_printf (text, "tunnels: %" G_GUINT64_FORMAT " open\n", tunnels_open (c));
  for (guint mode = 0; mode < 2; mode++)
    for (guint tls = 0; tls < 2; tls++)
      g_string_append_printf (text, "tunnels %s over %s: %" G_GUINT64_FORMAT " opened, %"
                              G_GUINT64_FORMAT " closed\n",
                              mode ? "base64" : "binary", tls ? "wss" : "ws",
                              c->tunnels_opened[mode][tls], c->tunnels_closed[mode][tls]);
  g_string_append_printf (text, "handshakes completed: %" G_GUINT64_FORMAT "\n",
                          c->handshake_seconds.count);
  g_string_append_printf (text, "handshakes refused: %" G_GUINT64_FORMAT " (",
                          sum (c->refused, TWP_SERVER_N_REFUSALS));
  append_nonzero (text, c->refused, TWP_SERVER_N_REFUSALS, refusal_names);
  g_string_append (text, ")\ntunnel closes: ");
  append_nonzero (text, c->tunnel_ends + TWP_RELAY_END_NORMAL, TWP_RELAY_N_ENDS - TWP_RELAY_END_NORMAL,
                  end_names + TWP_RELAY_END_NORMAL);
  g_string_append_c (text, '\n');
  append_by_code (text, "protocol closes by code", c->protocol_closes);
  append_by_code (text, "peer closes by code", c->peer_closes);
  g_string_append_printf (text, "bytes from WebSocket: %" G_GUINT64_FORMAT ", to WebSocket: %"
                          G_GUINT64_FORMAT "\n",
                          c->bytes_from_ws, c->bytes_to_ws);
  g_string_append (text, "ExtORPort failures: ");
  append_nonzero (text, c->extorport_failures, TWP_SERVER_N_EXTORPORT_FAILURES, extorport_names);
  g_string_append_c (text, '\n');
  append_histogram (text, "handshake latency", &c->handshake_seconds);
  append_histogram (text, "ExtORPort setup latency", &c->extorport_seconds);
  g_string_append_printf (text, "memory: %" G_GUINT64_FORMAT " bytes resident, %u open fds\n", rss, fds);
  return g_string_free (text, FALSE);
}
