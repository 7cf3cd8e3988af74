/* SPDX-License-Identifier: BSD-3-Clause */
/* The numbers users see: the state of a transport and of each bridge, how
 * far an attempt got, and why it failed. The core's objects hold them and
 * D-Bus carries them unchanged, so this header needs GLib only: the status
 * app includes it (through the generated twp-state-enums.h) without linking
 * the core. Gaps of 10, NetworkManager style: clients treat unknown values
 * as unknown, and new values fit in between. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* io.github.TorWebSocketProxy1.Transport:State */
typedef enum {
  TWP_TRANSPORT_STATE_UNKNOWN = 0,
  TWP_TRANSPORT_STATE_STARTING = 10,    /* not listening yet */
  TWP_TRANSPORT_STATE_READY = 20,       /* listening; no bridge in use or all idle */
  TWP_TRANSPORT_STATE_CONNECTING = 30,  /* attempts running, nothing open */
  TWP_TRANSPORT_STATE_CONNECTED = 40,   /* tunnels open, no bridge failing */
  TWP_TRANSPORT_STATE_DEGRADED = 50,    /* tunnels open, but some bridge failing */
  TWP_TRANSPORT_STATE_FAILING = 60,     /* bridges failing, nothing open */
  TWP_TRANSPORT_STATE_STOPPING = 70,
} TwpTransportState;

/* io.github.TorWebSocketProxy1.Bridge:State */
typedef enum {
  TWP_BRIDGE_STATE_UNKNOWN = 0,
  TWP_BRIDGE_STATE_IDLE = 10,        /* no connection open; the last attempt (if any) worked */
  TWP_BRIDGE_STATE_CONNECTING = 20,  /* an attempt runs and none is open */
  TWP_BRIDGE_STATE_CONNECTED = 30,   /* at least one tunnel is open */
  TWP_BRIDGE_STATE_FAILING = 40,     /* the last attempt failed and none is open */
} TwpBridgeState;

/* io.github.TorWebSocketProxy1.Bridge:Phase */
typedef enum {
  TWP_DIAL_PHASE_NONE = 0,
  TWP_DIAL_PHASE_RESOLVING = 10,
  TWP_DIAL_PHASE_CONNECTING = 20,
  TWP_DIAL_PHASE_PROXY = 30,
  TWP_DIAL_PHASE_TLS = 40,
  TWP_DIAL_PHASE_UPGRADE = 50,
  TWP_DIAL_PHASE_OPEN = 60,
} TwpDialPhase;

/* LastFailureReason of a Transport and of a Bridge. */
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

static inline const char *
twp_transport_state_to_string (TwpTransportState state)
{
  switch (state)
    {
    case TWP_TRANSPORT_STATE_STARTING:
      return "starting";
    case TWP_TRANSPORT_STATE_READY:
      return "ready";
    case TWP_TRANSPORT_STATE_CONNECTING:
      return "connecting";
    case TWP_TRANSPORT_STATE_CONNECTED:
      return "connected";
    case TWP_TRANSPORT_STATE_DEGRADED:
      return "degraded";
    case TWP_TRANSPORT_STATE_FAILING:
      return "failing";
    case TWP_TRANSPORT_STATE_STOPPING:
      return "stopping";
    case TWP_TRANSPORT_STATE_UNKNOWN:
    default:
      return "unknown";
    }
}

G_END_DECLS
