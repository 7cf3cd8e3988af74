/* SPDX-License-Identifier: BSD-3-Clause */
/* The transport's numbers in words: states, phases and failure reasons
 * (with a next step), as the status app shows and speaks them. Unknown
 * values (the D-Bus API leaves gaps of 10) map to "unknown". The numbers
 * are the transport's own (twp-state.h, through its generated GIO-only
 * header): D-Bus carries them unchanged. */
#pragma once

#include <glib.h>

#include "twp-state-enums.h"

G_BEGIN_DECLS

/* How the transport's placeholder (TWP_DBUS_WITHHELD) starts: with unsafe
 * logging it stands in for free text in Event signals and
 * LastFailureDetails. Only the start is matched, so rewording its tail
 * keeps working. */
#define TWP_STATUS_WITHHELD_PREFIX "(withheld from broadcasts"

const char *twp_status_transport_state_text (guint state);
const char *twp_status_transport_state_icon (guint state);
const char *twp_status_bridge_state_text    (guint state);
const char *twp_status_bridge_state_icon    (guint state);
const char *twp_status_phase_text           (guint phase);
const char *twp_status_origin_text          (const char *origin_hint);

/* "Server refused the upgrade (HTTP 403) — check the url= path"; NULL for
 * TWP_FAILURE_NONE. @code is Bridge:LastFailureCode (the HTTP status
 * or the WebSocket close code; 0 if unknown), never parsed from text. */
char       *twp_status_reason_text          (guint reason,
                                             guint code);
/* @details (an Event message or LastFailureDetails) as shown: the
 * transport's withheld placeholder becomes a translated hint, anything
 * else is returned as is (NULL stays NULL). */
const char *twp_status_details_text         (const char *details);
/* "12 ms", or "not measured yet" for a negative value. */
char       *twp_status_rtt_text             (gint64 rtt_us);
/* "1.2 kB sent, 3.4 kB received" */
char       *twp_status_traffic_text         (guint64 sent,
                                             guint64 received);
/* The host of a ws:// or wss:// URL, or NULL when it does not parse. */
char       *twp_status_host_from_url        (const char *url);
/* The PID in io.github.TorWebSocketProxy1.instance<PID>[_<n>], or 0. */
guint       twp_status_pid_from_bus_name    (const char *bus_name);

G_END_DECLS
