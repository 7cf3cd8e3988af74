/* SPDX-License-Identifier: BSD-3-Clause */
/* The words the status app puts on the transport's numbers: every failure
 * reason has a next step, unknown values stay "unknown", a failure code
 * (Bridge:LastFailureCode) is shown only where it is well formed, and the
 * transport's withheld placeholder becomes a translated hint. */
#define G_LOG_DOMAIN "twp-test-applet-text"

#include "config.h"

#include <glib.h>
#include <string.h>

#include "twp-status-text.h"
/* TWP_DBUS_WITHHELD, the transport's placeholder (glib-object.h only). */
#include "../../src/dbus/twp-dbus-private.h"

static void
test_reasons (void)
{
  static const guint reasons[] = { 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 1000, 55, 99999 };
  g_autofree char *cert = twp_status_reason_text (80, 0);
  g_autofree char *http = twp_status_reason_text (90, 403);
  g_autofree char *http_none = twp_status_reason_text (90, 0);
  g_autofree char *http_bad = twp_status_reason_text (90, 1008);
  g_autofree char *protocol = twp_status_reason_text (120, 1002);
  g_autofree char *protocol_none = twp_status_reason_text (120, 0);
  g_autofree char *closed = twp_status_reason_text (130, 1008);
  g_autofree char *closed_none = twp_status_reason_text (130, 0);
  g_autofree char *closed_bad = twp_status_reason_text (130, 99999);
  g_autofree char *closed_http = twp_status_reason_text (130, 403);
  /* a code with a reason that has none is ignored */
  g_autofree char *dns = twp_status_reason_text (20, 403);

  g_assert_null (twp_status_reason_text (0, 403));
  for (gsize i = 0; i < G_N_ELEMENTS (reasons); i++)
    {
      g_autofree char *text = twp_status_reason_text (reasons[i], 0);

      g_assert_nonnull (text);
      /* "what happened — what to do next" */
      g_assert_nonnull (strstr (text, " — "));
    }
  g_assert_cmpstr (cert, ==, "TLS certificate not trusted — check sni= or cert-sha256=");
  g_assert_cmpstr (http, ==, "Server refused the upgrade (HTTP 403) — check the url= path");
  g_assert_cmpstr (http_none, ==, "Server refused the upgrade — check the url= path");
  g_assert_cmpstr (http_bad, ==, "Server refused the upgrade — check the url= path");
  g_assert_cmpstr (protocol, ==, "WebSocket protocol error (close code 1002) — the server may need base64 frames");
  g_assert_cmpstr (protocol_none, ==, "WebSocket protocol error — the server may need base64 frames");
  g_assert_cmpstr (closed, ==, "Closed by server (1008) — check the server’s log");
  g_assert_cmpstr (closed_none, ==, "Closed by server — check the server’s log");
  g_assert_cmpstr (closed_bad, ==, "Closed by server — check the server’s log");
  g_assert_cmpstr (closed_http, ==, "Closed by server — check the server’s log");
  g_assert_cmpstr (dns, ==, "DNS lookup failed — check the host name in url= and your network");
}

static void
test_withheld (void)
{
  static const char hint[] = "Details withheld (unsafe logging is on); see Copy diagnostics";

  /* our prefix still matches what the transport really sends */
  g_assert_true (g_str_has_prefix (TWP_DBUS_WITHHELD, TWP_STATUS_WITHHELD_PREFIX));
  g_assert_cmpstr (twp_status_details_text (TWP_DBUS_WITHHELD), ==, hint);
  g_assert_cmpstr (twp_status_details_text (TWP_STATUS_WITHHELD_PREFIX ": reworded)"), ==, hint);
  /* anything else is shown as is, even if it mentions the words later */
  g_assert_cmpstr (twp_status_details_text ("DNS lookup failed"), ==, "DNS lookup failed");
  g_assert_cmpstr (twp_status_details_text ("x " TWP_DBUS_WITHHELD), ==, "x " TWP_DBUS_WITHHELD);
  g_assert_cmpstr (twp_status_details_text ("(withheld"), ==, "(withheld");
  g_assert_cmpstr (twp_status_details_text (""), ==, "");
  g_assert_null (twp_status_details_text (NULL));
}

static void
test_states (void)
{
  g_assert_cmpstr (twp_status_transport_state_text (40), ==, "Connected");
  g_assert_cmpstr (twp_status_transport_state_text (60), ==, "Failing");
  g_assert_cmpstr (twp_status_transport_state_text (45), ==, "Unknown");
  g_assert_cmpstr (twp_status_bridge_state_text (30), ==, "Connected");
  g_assert_cmpstr (twp_status_bridge_state_text (40), ==, "Failing");
  g_assert_cmpstr (twp_status_bridge_state_text (7), ==, "Unknown");
  /* an icon for every state, never the same for connected and failing */
  g_assert_cmpstr (twp_status_bridge_state_icon (30), !=, twp_status_bridge_state_icon (40));
  g_assert_cmpstr (twp_status_phase_text (40), ==, "TLS handshake");
  g_assert_cmpstr (twp_status_phase_text (61), ==, "Unknown step");
  g_assert_cmpstr (twp_status_origin_text ("tor-browser"), ==, "Tor Browser");
  g_assert_cmpstr (twp_status_origin_text ("system-tor"), ==, "System tor");
  g_assert_cmpstr (twp_status_origin_text (NULL), ==, "Other");
}

static void
test_numbers (void)
{
  g_autofree char *none = twp_status_rtt_text (-1);
  g_autofree char *fast = twp_status_rtt_text (2500);
  g_autofree char *slow = twp_status_rtt_text (123456);
  g_autofree char *traffic = twp_status_traffic_text (1000, 2000000);

  g_assert_cmpstr (none, ==, "not measured yet");
  g_assert_cmpstr (fast, ==, "2.5 ms");
  g_assert_cmpstr (slow, ==, "123 ms");
  g_assert_cmpstr (traffic, ==, "1.0\u00a0kB sent, 2.0\u00a0MB received");
}

static void
test_urls_and_names (void)
{
  g_autofree char *host = twp_status_host_from_url ("wss://bridge.example.org:8443/ws?x=1");
  g_autofree char *ip6 = twp_status_host_from_url ("ws://[2001:db8::1]/");
  g_autofree char *bad = twp_status_host_from_url ("not a url");
  g_autofree char *empty = twp_status_host_from_url ("ws:///path");

  g_assert_cmpstr (host, ==, "bridge.example.org");
  g_assert_cmpstr (ip6, ==, "2001:db8::1");
  g_assert_null (bad);
  g_assert_null (empty);
  g_assert_null (twp_status_host_from_url (NULL));

  g_assert_cmpuint (twp_status_pid_from_bus_name ("io.github.TorWebSocketProxy1.instance1234"), ==, 1234);
  g_assert_cmpuint (twp_status_pid_from_bus_name ("io.github.TorWebSocketProxy1.instance1234_2"), ==, 1234);
  g_assert_cmpuint (twp_status_pid_from_bus_name ("io.github.TorWebSocketProxy1.instance12x"), ==, 0);
  g_assert_cmpuint (twp_status_pid_from_bus_name ("io.github.TorWebSocketProxy1.instance99999999999"), ==, 0);
  g_assert_cmpuint (twp_status_pid_from_bus_name ("org.example.instance1"), ==, 0);
}

int
main (int   argc,
      char *argv[])
{
  g_setenv ("LANGUAGE", "C", TRUE);
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/applet/text/reasons", test_reasons);
  g_test_add_func ("/applet/text/withheld", test_withheld);
  g_test_add_func ("/applet/text/states", test_states);
  g_test_add_func ("/applet/text/numbers", test_numbers);
  g_test_add_func ("/applet/text/urls-and-names", test_urls_and_names);
  return g_test_run ();
}
