/* SPDX-License-Identifier: BSD-3-Clause */
/* The overall state of a running transport, as users see it. Gaps of 10
 * leave room for new states (NetworkManager style). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

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
