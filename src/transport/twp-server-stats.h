/* SPDX-License-Identifier: BSD-3-Clause */
/* What a bridge's server did since it started, for its operator: refusals
 * by reason, tunnels by frame mode and scheme, how they ended, ExtORPort
 * failures, latency histograms. Plain counters: the metrics endpoint, the
 * D-Bus report and the hourly heartbeat only read them. Nothing here can
 * identify a client or the bridge: every label is one of a fixed set. */
#pragma once

#include <gio/gio.h>

#include "twp-relay.h"

G_BEGIN_DECLS

/* Why a connection got no tunnel. */
typedef enum {
  TWP_SERVER_REFUSAL_BAD_PATH,          /* 404: not the configured path */
  TWP_SERVER_REFUSAL_ORIGIN,            /* 403: Origin not allowed */
  TWP_SERVER_REFUSAL_OLD_VERSION,       /* 426: not WebSocket version 13 */
  TWP_SERVER_REFUSAL_PER_ADDRESS_LIMIT, /* 429: max-connections-per-ip */
  TWP_SERVER_REFUSAL_CONNECTION_CAP,    /* closed at accept: max-connections */
  TWP_SERVER_REFUSAL_HANDSHAKE_TIMEOUT, /* handshake-timeout passed */
  TWP_SERVER_REFUSAL_TLS_FAILURE,       /* the TLS handshake failed */
  TWP_SERVER_REFUSAL_NOT_WEBSOCKET,     /* an ordinary HTTP request */
  TWP_SERVER_REFUSAL_BAD_REQUEST,       /* 400: a malformed or oversized request */
  TWP_SERVER_REFUSAL_TOR_UNAVAILABLE,   /* 503: tor's (Extended) ORPort failed */
  TWP_SERVER_REFUSAL_MEMORY_PRESSURE,   /* 503: near the cgroup's memory limit */
  TWP_SERVER_REFUSAL_OUT_OF_FDS,        /* closed at accept: no file descriptor left */
  TWP_SERVER_N_REFUSALS
} TwpServerRefusal;

/* Why the Extended ORPort (or ORPort) setup failed. */
typedef enum {
  TWP_SERVER_EXTORPORT_CONNECT,         /* cannot connect */
  TWP_SERVER_EXTORPORT_COOKIE,          /* cookie file unreadable or malformed */
  TWP_SERVER_EXTORPORT_AUTH,            /* authentication refused either way */
  TWP_SERVER_EXTORPORT_DENIED,          /* tor answered DENY */
  TWP_SERVER_EXTORPORT_PROTOCOL,        /* malformed bytes from tor */
  TWP_SERVER_EXTORPORT_CLOSED,          /* tor closed mid-exchange */
  TWP_SERVER_EXTORPORT_TIMEOUT,         /* the exchange overran its deadline */
  TWP_SERVER_N_EXTORPORT_FAILURES
} TwpServerExtOrPortFailure;

/* Upper bounds, in seconds, of the latency histograms' buckets (+Inf is
 * implied): from a loopback handshake to the 10 s handshake timeout. */
#define TWP_SERVER_STATS_N_BUCKETS 12
extern const double twp_server_stats_buckets[TWP_SERVER_STATS_N_BUCKETS];

typedef struct {
  guint64 counts[TWP_SERVER_STATS_N_BUCKETS + 1];  /* per bucket, not cumulative; the last is +Inf */
  guint64 count;
  double sum_seconds;
} TwpServerHistogram;

/* The close statuses counted by code; anything else counts as "other". */
#define TWP_SERVER_STATS_N_CLOSE_CODES 9
extern const guint16 twp_server_stats_close_codes[TWP_SERVER_STATS_N_CLOSE_CODES];

typedef struct {
  /* Live values, set by the server when read (twp_server_get_stats ()). */
  guint connections_open;
  guint connections_max;                /* 0: unlimited */
  guint64 bytes_from_ws;
  guint64 bytes_to_ws;

  guint64 connections_accepted;
  guint64 refused[TWP_SERVER_N_REFUSALS];
  /* [base64][tls]: frame mode binary/base64, scheme ws/wss */
  guint64 tunnels_opened[2][2];
  guint64 tunnels_closed[2][2];
  guint64 tunnel_ends[TWP_RELAY_N_ENDS];
  /* Close statuses we sent for a peer's protocol error, and those peers
   * sent us; index TWP_SERVER_STATS_N_CLOSE_CODES is "other". */
  guint64 protocol_closes[TWP_SERVER_STATS_N_CLOSE_CODES + 1];
  guint64 peer_closes[TWP_SERVER_STATS_N_CLOSE_CODES + 1];
  guint64 extorport_failures[TWP_SERVER_N_EXTORPORT_FAILURES];
  TwpServerHistogram handshake_seconds;  /* accept -> 101 written */
  TwpServerHistogram extorport_seconds;  /* ORPort connect -> ExtORPort OKAY */
} TwpServerCounters;

#define TWP_TYPE_SERVER_STATS (twp_server_stats_get_type ())
G_DECLARE_FINAL_TYPE (TwpServerStats, twp_server_stats, TWP, SERVER_STATS, GObject)

TwpServerStats *twp_server_stats_new (void);

void twp_server_stats_connection_accepted (TwpServerStats   *self);
void twp_server_stats_refused             (TwpServerStats   *self,
                                           TwpServerRefusal  reason);
/* The 101 is written: a tunnel opens. */
void twp_server_stats_tunnel_opened       (TwpServerStats   *self,
                                           gint64            handshake_us,
                                           gboolean          base64,
                                           gboolean          tls);
/* @relay has finished. */
void twp_server_stats_tunnel_closed       (TwpServerStats   *self,
                                           TwpRelay         *relay,
                                           gboolean          base64,
                                           gboolean          tls);
void twp_server_stats_extorport_ready     (TwpServerStats   *self,
                                           gint64            setup_us);
/* @error from connecting or from twp_extorport_handshake_finish (). */
void twp_server_stats_extorport_failed    (TwpServerStats   *self,
                                           gboolean          connecting,
                                           const GError     *error);
void twp_server_stats_set_live            (TwpServerStats   *self,
                                           guint             connections_open,
                                           guint             connections_max,
                                           guint64           bytes_from_ws,
                                           guint64           bytes_to_ws);

const TwpServerCounters *twp_server_stats_get_counters (TwpServerStats *self);

/* Label values, stable: dashboards and alert rules use them. */
const char *twp_server_refusal_to_string          (TwpServerRefusal          reason);
const char *twp_server_extorport_failure_to_string (TwpServerExtOrPortFailure kind);
const char *twp_relay_end_to_string               (TwpRelayEnd               end);
/* "1002", ... or "other" for index TWP_SERVER_STATS_N_CLOSE_CODES. */
const char *twp_server_stats_close_code_label     (guint                     index);

/* This process's resident memory (VmRSS) and open file descriptors, read
 * from /proc now; FALSE when /proc is not readable. */
gboolean twp_server_stats_read_process (guint64 *rss_bytes,
                                        guint   *n_fds);

/* One line for tor's log, like tor's own heartbeat. */
char *twp_server_stats_format_summary (TwpServerStats *self);
/* Every counter, one "name: value" per line, for the D-Bus report. */
char *twp_server_stats_format_report  (TwpServerStats *self);

G_END_DECLS
