/* SPDX-License-Identifier: BSD-3-Clause */
/* The bridge operator's metrics: the server's counters in the Prometheus
 * text exposition format (0.0.4), answered to `GET /metrics` over HTTP/1.1
 * on a loopback TCP port or a Unix socket (server option metrics=). It is
 * off by default; a request is bounded in size and time, and only a few
 * scrapes are served at once. */
#pragma once

#include <gio/gio.h>

#include "twp-server.h"
#include "twp-server-stats.h"

G_BEGIN_DECLS

/* Largest request head read; a scraper sends a few hundred bytes. */
#define TWP_METRICS_MAX_REQUEST 8192

typedef enum {
  TWP_METRICS_REQUEST_INCOMPLETE,   /* no blank line yet: read more */
  TWP_METRICS_REQUEST_GET,          /* GET /metrics: 200 with the exposition */
  TWP_METRICS_REQUEST_HEAD,         /* HEAD /metrics: 200 without a body */
  TWP_METRICS_REQUEST_NOT_FOUND,    /* another path: 404 */
  TWP_METRICS_REQUEST_BAD_METHOD,   /* another method on /metrics: 405 */
  TWP_METRICS_REQUEST_BAD,          /* not HTTP/1.x: 400 */
  TWP_METRICS_REQUEST_TOO_LARGE,    /* no end within TWP_METRICS_MAX_REQUEST bytes: 431 */
} TwpMetricsRequest;

/* Reads what a scraper sent so far (@len bytes, not NUL-terminated). */
TwpMetricsRequest twp_metrics_parse_request (const guint8 *data,
                                             gsize         len);

/* The metrics= value: IP:PORT ("127.0.0.1:9100", "[::1]:9100") or an
 * absolute Unix socket path. NULL with an error otherwise. */
GSocketAddress *twp_metrics_address_parse    (const char      *value,
                                              GError         **error);
/* TRUE for loopback addresses and Unix sockets. */
gboolean        twp_metrics_address_is_local (GSocketAddress  *address);

/* The exposition for @counters and this process's memory and fds. */
char *twp_metrics_format (const TwpServerCounters *counters,
                          guint64                  rss_bytes,
                          guint                    n_fds);

#define TWP_TYPE_METRICS_ENDPOINT (twp_metrics_endpoint_get_type ())
G_DECLARE_FINAL_TYPE (TwpMetricsEndpoint, twp_metrics_endpoint, TWP, METRICS_ENDPOINT, GObject)

TwpMetricsEndpoint *twp_metrics_endpoint_new    (TwpServer           *server);
/* Binds @address (a stale Unix socket file is replaced) and serves. */
gboolean            twp_metrics_endpoint_listen (TwpMetricsEndpoint  *self,
                                                 GSocketAddress      *address,
                                                 GError             **error);
void                twp_metrics_endpoint_stop   (TwpMetricsEndpoint  *self);

G_END_DECLS
