/* SPDX-License-Identifier: BSD-3-Clause */
/* The observable state of one bridge the client has been asked for: one
 * object per distinct Bridge line (its arguments and address), created on
 * the first SOCKS request for it. The D-Bus layer mirrors these objects;
 * the core never knows D-Bus exists. Only the client creates and changes
 * them (twp-bridge-private.h). */
#pragma once

#include <gio/gio.h>

#include "twp-bridge-config.h"
#include "twp-dial.h"
#include "twp-failure.h"
#include "twp-relay.h"
#include "twp-state.h"

G_BEGIN_DECLS

/* TwpBridgeState and TwpFailureReason: twp-state.h (D-Bus shows them);
 * how an error becomes a reason: twp-failure.h. */
const char      *twp_bridge_state_to_string    (TwpBridgeState state);

#define TWP_TYPE_BRIDGE (twp_bridge_get_type ())
G_DECLARE_FINAL_TYPE (TwpBridge, twp_bridge, TWP, BRIDGE, GObject)

const char  *twp_bridge_get_id               (TwpBridge *self);
const char  *twp_bridge_get_key              (TwpBridge *self);
/* Sensitive: never log or broadcast it without being asked. */
char        *twp_bridge_dup_url              (TwpBridge *self);
const TwpBridgeConfig *twp_bridge_get_config (TwpBridge *self);
TwpBridgeState twp_bridge_get_state          (TwpBridge *self);
TwpDialPhase twp_bridge_get_phase            (TwpBridge *self);
TwpFrameMode twp_bridge_get_frame_mode       (TwpBridge *self);
gboolean     twp_bridge_get_mode_pinned      (TwpBridge *self);
guint64      twp_bridge_get_attempts         (TwpBridge *self);
guint64      twp_bridge_get_failures         (TwpBridge *self);
guint        twp_bridge_get_active_connections (TwpBridge *self);
gint64       twp_bridge_get_last_success_time (TwpBridge *self);   /* unix seconds, 0: never */
gint64       twp_bridge_get_last_failure_time (TwpBridge *self);   /* unix seconds, 0: never */
TwpFailureReason twp_bridge_get_last_failure_reason (TwpBridge *self);
const char  *twp_bridge_get_last_failure_details (TwpBridge *self); /* no address unless unsafe logging */
/* The number behind the last failure: the HTTP status of an http-status
 * failure, the WebSocket close code of a protocol or closed-by-peer one;
 * 0 otherwise. */
guint        twp_bridge_get_last_failure_code (TwpBridge *self);
gint64       twp_bridge_get_rtt_us           (TwpBridge *self);    /* -1: not measured */
/* Payload bytes of every tunnel so far, open ones included; counters
 * change too often to notify: read them when needed. */
guint64      twp_bridge_get_bytes_sent       (TwpBridge *self);
guint64      twp_bridge_get_bytes_received   (TwpBridge *self);

G_END_DECLS
