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
#include "twp-relay.h"

G_BEGIN_DECLS

/* Numeric enums with gaps of 10, NetworkManager style: clients treat
 * unknown values as unknown, and new values fit in between. */
typedef enum {
  TWP_BRIDGE_STATE_UNKNOWN = 0,
  TWP_BRIDGE_STATE_IDLE = 10,        /* no connection open; the last attempt (if any) worked */
  TWP_BRIDGE_STATE_CONNECTING = 20,  /* an attempt runs and none is open */
  TWP_BRIDGE_STATE_CONNECTED = 30,   /* at least one tunnel is open */
  TWP_BRIDGE_STATE_FAILING = 40,     /* the last attempt failed and none is open */
} TwpBridgeState;

typedef enum {
  TWP_FAILURE_NONE = 0,
  TWP_FAILURE_BAD_ARGUMENTS = 10,    /* the bridge line's arguments are invalid */
  TWP_FAILURE_DNS = 20,
  TWP_FAILURE_REFUSED = 30,
  TWP_FAILURE_UNREACHABLE = 40,
  TWP_FAILURE_TIMED_OUT = 50,
  TWP_FAILURE_PROXY = 60,            /* the upstream proxy (TOR_PT_PROXY) failed */
  TWP_FAILURE_TLS = 70,
  TWP_FAILURE_TLS_CERTIFICATE = 80,
  TWP_FAILURE_HTTP_STATUS = 90,      /* the server answered the upgrade with another status */
  TWP_FAILURE_HANDSHAKE = 100,       /* an invalid WebSocket handshake */
  TWP_FAILURE_CLOSED = 110,          /* the server closed the connection during the handshake */
  TWP_FAILURE_PROTOCOL = 120,        /* the server broke the WebSocket protocol mid-tunnel */
  TWP_FAILURE_CLOSED_BY_PEER = 130,  /* the server closed a tunnel with an error status */
  TWP_FAILURE_OTHER = 1000,
} TwpFailureReason;

TwpFailureReason twp_failure_reason_from_error (const GError *error);
const char      *twp_failure_reason_to_string  (TwpFailureReason reason);
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
