/* SPDX-License-Identifier: BSD-3-Clause */
/* What only the client does to a TwpBridge: create it and report its
 * connections' progress. Everyone else reads it through twp-bridge.h. */
#pragma once

#include "twp-bridge.h"

G_BEGIN_DECLS

/* @key identifies the bridge (its raw arguments and address); @config is
 * taken over. */
TwpBridge   *twp_bridge_new                  (const char      *key,
                                              TwpBridgeConfig *config,
                                              TwpFrameMode     default_mode);

/* Called by the client as connections progress. */
void         twp_bridge_set_default_mode     (TwpBridge    *self,
                                              TwpFrameMode  mode);
void         twp_bridge_attempt_started      (TwpBridge *self,
                                              TwpDial   *dial);
void         twp_bridge_attempt_succeeded    (TwpBridge *self,
                                              TwpDial   *dial);
/* The attempt was called off (shutdown, tor went away): no verdict. */
void         twp_bridge_attempt_cancelled    (TwpBridge *self,
                                              TwpDial   *dial);
void         twp_bridge_attempt_failed       (TwpBridge    *self,
                                              TwpDial      *dial,
                                              const GError *error);
void         twp_bridge_tunnel_opened        (TwpBridge *self,
                                              TwpRelay  *relay);
void         twp_bridge_tunnel_closed        (TwpBridge    *self,
                                              TwpRelay     *relay,
                                              const GError *error);

G_END_DECLS
