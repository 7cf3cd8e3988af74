/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-applet"

#include "config.h"

#include "twp-status-text.h"

#include <glib/gi18n.h>
#include <string.h>

const char *
twp_status_transport_state_text (guint state)
{
  switch (state)
    {
    case TWP_TRANSPORT_STATE_STARTING:
      return _("Starting");
    case TWP_TRANSPORT_STATE_READY:
      return _("Ready");
    case TWP_TRANSPORT_STATE_CONNECTING:
      return _("Connecting");
    case TWP_TRANSPORT_STATE_CONNECTED:
      return _("Connected");
    case TWP_TRANSPORT_STATE_DEGRADED:
      return _("Degraded");
    case TWP_TRANSPORT_STATE_FAILING:
      return _("Failing");
    case TWP_TRANSPORT_STATE_STOPPING:
      return _("Stopping");
    default:
      return _("Unknown");
    }
}

const char *
twp_status_transport_state_icon (guint state)
{
  switch (state)
    {
    case TWP_TRANSPORT_STATE_READY:
      return "network-idle-symbolic";
    case TWP_TRANSPORT_STATE_STARTING:
    case TWP_TRANSPORT_STATE_CONNECTING:
      return "network-transmit-receive-symbolic";
    case TWP_TRANSPORT_STATE_CONNECTED:
      return "emblem-ok-symbolic";
    case TWP_TRANSPORT_STATE_DEGRADED:
      return "dialog-warning-symbolic";
    case TWP_TRANSPORT_STATE_FAILING:
      return "dialog-error-symbolic";
    case TWP_TRANSPORT_STATE_STOPPING:
      return "process-stop-symbolic";
    default:
      return "dialog-question-symbolic";
    }
}

const char *
twp_status_bridge_state_text (guint state)
{
  switch (state)
    {
    case TWP_BRIDGE_STATE_IDLE:
      return _("Idle");
    case TWP_BRIDGE_STATE_CONNECTING:
      return _("Connecting");
    case TWP_BRIDGE_STATE_CONNECTED:
      return _("Connected");
    case TWP_BRIDGE_STATE_FAILING:
      return _("Failing");
    default:
      return _("Unknown");
    }
}

const char *
twp_status_bridge_state_icon (guint state)
{
  switch (state)
    {
    case TWP_BRIDGE_STATE_IDLE:
      return "network-idle-symbolic";
    case TWP_BRIDGE_STATE_CONNECTING:
      return "network-transmit-receive-symbolic";
    case TWP_BRIDGE_STATE_CONNECTED:
      return "emblem-ok-symbolic";
    case TWP_BRIDGE_STATE_FAILING:
      return "dialog-error-symbolic";
    default:
      return "dialog-question-symbolic";
    }
}

const char *
twp_status_phase_text (guint phase)
{
  switch (phase)
    {
    case TWP_DIAL_PHASE_NONE:
      return _("No attempt yet");
    case TWP_DIAL_PHASE_RESOLVING:
      return _("Resolving the name");
    case TWP_DIAL_PHASE_CONNECTING:
      return _("TCP connection");
    case TWP_DIAL_PHASE_PROXY:
      return _("Upstream proxy");
    case TWP_DIAL_PHASE_TLS:
      return _("TLS handshake");
    case TWP_DIAL_PHASE_UPGRADE:
      return _("HTTP upgrade");
    case TWP_DIAL_PHASE_OPEN:
      return _("Open");
    default:
      return _("Unknown step");
    }
}

const char *
twp_status_origin_text (const char *origin_hint)
{
  if (g_strcmp0 (origin_hint, "tor-browser") == 0)
    return _("Tor Browser");
  if (g_strcmp0 (origin_hint, "system-tor") == 0)
    return _("System tor");
  return _("Other");
}

char *
twp_status_reason_text (guint reason,
                        guint code)
{
  switch (reason)
    {
    case TWP_FAILURE_NONE:
      return NULL;
    case TWP_FAILURE_BAD_ARGUMENTS:
      return g_strdup (_("The bridge line has invalid arguments — check the Bridge line in torrc"));
    case TWP_FAILURE_DNS:
      return g_strdup (_("DNS lookup failed — check the host name in url= and your network"));
    case TWP_FAILURE_REFUSED:
      return g_strdup (_("Connection refused — the server is not listening; check the port in url="));
    case TWP_FAILURE_UNREACHABLE:
      return g_strdup (_("Network unreachable — check your network connection"));
    case TWP_FAILURE_TIMED_OUT:
      return g_strdup (_("Timed out — the server may be down or blocked; try again later or use a proxy"));
    case TWP_FAILURE_PROXY:
      return g_strdup (_("Upstream proxy failed — check tor’s proxy settings"));
    case TWP_FAILURE_TLS:
      return g_strdup (_("TLS handshake failed — check that the server speaks TLS (wss://) and sni="));
    case TWP_FAILURE_TLS_CERTIFICATE:
      return g_strdup (_("TLS certificate not trusted — check sni= or cert-sha256="));
    case TWP_FAILURE_HTTP_STATUS:
      if (code >= 100 && code <= 999)
        /* Translators: %u is an HTTP status code such as 403 */
        return g_strdup_printf (_("Server refused the upgrade (HTTP %u) — check the url= path"), code);
      return g_strdup (_("Server refused the upgrade — check the url= path"));
    case TWP_FAILURE_HANDSHAKE:
      return g_strdup (_("Not a WebSocket server — check the url= path and port"));
    case TWP_FAILURE_CLOSED:
      return g_strdup (_("Closed during the handshake — a firewall may block WebSockets; try base64 frames"));
    case TWP_FAILURE_PROTOCOL:
      if (code >= 1000 && code <= 4999)
        /* Translators: %u is a WebSocket close code such as 1002 */
        return g_strdup_printf (_("WebSocket protocol error (close code %u) — the server may need base64 frames"),
                                code);
      return g_strdup (_("WebSocket protocol error — the server may need base64 frames"));
    case TWP_FAILURE_CLOSED_BY_PEER:
      if (code >= 1000 && code <= 4999)
        /* Translators: %u is a WebSocket close code such as 1008 */
        return g_strdup_printf (_("Closed by server (%u) — check the server’s log"), code);
      return g_strdup (_("Closed by server — check the server’s log"));
    default:
      return g_strdup (_("Failed — see recent events"));
    }
}

const char *
twp_status_details_text (const char *details)
{
  if (details != NULL && g_str_has_prefix (details, TWP_STATUS_WITHHELD_PREFIX))
    return _("Details withheld (unsafe logging is on); see Copy diagnostics");
  return details;
}

char *
twp_status_rtt_text (gint64 rtt_us)
{
  if (rtt_us < 0)
    return g_strdup (_("not measured yet"));
  if (rtt_us < 10000)
    /* Translators: a round-trip time in milliseconds */
    return g_strdup_printf (_("%.1f ms"), rtt_us / 1000.0);
  return g_strdup_printf (_("%d ms"), (int) MIN (rtt_us / 1000, G_MAXINT));
}

char *
twp_status_traffic_text (guint64 sent,
                         guint64 received)
{
  g_autofree char *s = g_format_size (sent);
  g_autofree char *r = g_format_size (received);

  /* Translators: amounts of data such as "1.2 kB" */
  return g_strdup_printf (_("%s sent, %s received"), s, r);
}

char *
twp_status_host_from_url (const char *url)
{
  g_autoptr(GUri) uri = NULL;

  if (url == NULL)
    return NULL;
  uri = g_uri_parse (url, G_URI_FLAGS_NONE, NULL);
  if (uri == NULL || g_uri_get_host (uri) == NULL || *g_uri_get_host (uri) == '\0')
    return NULL;
  return g_strdup (g_uri_get_host (uri));
}

guint
twp_status_pid_from_bus_name (const char *bus_name)
{
  static const char prefix[] = "io.github.TorWebSocketProxy1.instance";
  const char *p;
  guint64 pid = 0;

  if (bus_name == NULL || !g_str_has_prefix (bus_name, prefix))
    return 0;
  for (p = bus_name + strlen (prefix); g_ascii_isdigit (*p); p++)
    {
      pid = pid * 10 + (guint64) (*p - '0');
      if (pid > G_MAXUINT32)
        return 0;
    }
  if (*p != '\0' && *p != '_')
    return 0;
  return (guint) pid;
}
