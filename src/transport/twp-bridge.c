/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-bridge"

#include "config.h"

#include "twp-bridge.h"
#include "twp-bridge-private.h"

#include "twp-log.h"
#include "twp-enum-types.h"
#include "twp-state-enums.h"

struct _TwpBridge
{
  GObject parent_instance;

  /* owned */
  char *key;
  char *id;
  TwpBridgeConfig *config;
  GPtrArray *relays;             /* open tunnels (TwpRelay*) */
  TwpDial *dial;                 /* the attempt whose phase we show */
  char *last_failure_details;

  TwpFrameMode default_mode;
  TwpBridgeState state;
  TwpDialPhase phase;
  guint64 attempts;
  guint64 failures;
  guint n_connecting;
  gint64 last_success_time;
  gint64 last_failure_time;
  TwpFailureReason last_failure_reason;
  guint last_failure_code;
  gint64 last_rtt_us;
  guint64 bytes_sent_closed;     /* of tunnels that ended */
  guint64 bytes_received_closed;
};

enum {
  PROP_0,
  PROP_ID,
  PROP_STATE,
  PROP_PHASE,
  PROP_FRAME_MODE,
  PROP_MODE_PINNED,
  PROP_ATTEMPTS,
  PROP_FAILURES,
  PROP_ACTIVE_CONNECTIONS,
  PROP_LAST_SUCCESS_TIME,
  PROP_LAST_FAILURE_TIME,
  PROP_LAST_FAILURE_REASON,
  PROP_LAST_FAILURE_DETAILS,
  PROP_LAST_FAILURE_CODE,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

G_DEFINE_FINAL_TYPE (TwpBridge, twp_bridge, G_TYPE_OBJECT)

const char *
twp_bridge_state_to_string (TwpBridgeState state)
{
  switch (state)
    {
    case TWP_BRIDGE_STATE_IDLE:
      return "idle";
    case TWP_BRIDGE_STATE_CONNECTING:
      return "connecting";
    case TWP_BRIDGE_STATE_CONNECTED:
      return "connected";
    case TWP_BRIDGE_STATE_FAILING:
      return "failing";
    case TWP_BRIDGE_STATE_UNKNOWN:
    default:
      return "unknown";
    }
}

static void
notify (TwpBridge *self,
        guint      prop)
{
  g_object_notify_by_pspec (G_OBJECT (self), properties[prop]);
}

/* The state follows from the counts: open tunnels win, then attempts in
 * progress, then how the last attempt ended. */
static void
update_state (TwpBridge *self)
{
  TwpBridgeState state;

  if (self->relays->len > 0)
    state = TWP_BRIDGE_STATE_CONNECTED;
  else if (self->n_connecting > 0)
    state = TWP_BRIDGE_STATE_CONNECTING;
  else if (self->last_failure_time > self->last_success_time)
    state = TWP_BRIDGE_STATE_FAILING;
  else
    state = TWP_BRIDGE_STATE_IDLE;

  if (state == self->state)
    return;
  self->state = state;
  notify (self, PROP_STATE);
}

static void
set_phase (TwpBridge    *self,
           TwpDialPhase  phase)
{
  if (self->phase == phase)
    return;
  self->phase = phase;
  notify (self, PROP_PHASE);
}

static void
dial_phase_cb (TwpDial    *dial,
               GParamSpec *pspec,
               gpointer    user_data)
{
  TwpBridge *self = user_data;

  if (dial == self->dial)
    set_phase (self, twp_dial_get_phase (dial));
}

static void
twp_bridge_dispose (GObject *object)
{
  TwpBridge *self = TWP_BRIDGE (object);

  if (self->dial != NULL)
    g_signal_handlers_disconnect_by_func (self->dial, dial_phase_cb, self);
  g_clear_object (&self->dial);
  g_clear_pointer (&self->relays, g_ptr_array_unref);

  G_OBJECT_CLASS (twp_bridge_parent_class)->dispose (object);
}

static void
twp_bridge_finalize (GObject *object)
{
  TwpBridge *self = TWP_BRIDGE (object);

  g_free (self->key);
  g_free (self->id);
  g_free (self->last_failure_details);
  twp_bridge_config_free (self->config);

  G_OBJECT_CLASS (twp_bridge_parent_class)->finalize (object);
}

static void
twp_bridge_get_property (GObject    *object,
                         guint       prop_id,
                         GValue     *value,
                         GParamSpec *pspec)
{
  TwpBridge *self = TWP_BRIDGE (object);

  switch (prop_id)
    {
    case PROP_ID:
      g_value_set_string (value, self->id);
      break;
    case PROP_STATE:
      g_value_set_enum (value, self->state);
      break;
    case PROP_PHASE:
      g_value_set_enum (value, self->phase);
      break;
    case PROP_FRAME_MODE:
      g_value_set_enum (value, twp_bridge_get_frame_mode (self));
      break;
    case PROP_MODE_PINNED:
      g_value_set_boolean (value, self->config->mode_pinned);
      break;
    case PROP_ATTEMPTS:
      g_value_set_uint64 (value, self->attempts);
      break;
    case PROP_FAILURES:
      g_value_set_uint64 (value, self->failures);
      break;
    case PROP_ACTIVE_CONNECTIONS:
      g_value_set_uint (value, self->relays != NULL ? self->relays->len : 0);
      break;
    case PROP_LAST_SUCCESS_TIME:
      g_value_set_int64 (value, self->last_success_time);
      break;
    case PROP_LAST_FAILURE_TIME:
      g_value_set_int64 (value, self->last_failure_time);
      break;
    case PROP_LAST_FAILURE_REASON:
      g_value_set_enum (value, self->last_failure_reason);
      break;
    case PROP_LAST_FAILURE_DETAILS:
      g_value_set_string (value, self->last_failure_details);
      break;
    case PROP_LAST_FAILURE_CODE:
      g_value_set_uint (value, self->last_failure_code);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
twp_bridge_class_init (TwpBridgeClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  const GParamFlags flags = G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY;

  object_class->dispose = twp_bridge_dispose;
  object_class->finalize = twp_bridge_finalize;
  object_class->get_property = twp_bridge_get_property;

  properties[PROP_ID] = g_param_spec_string ("id", NULL, NULL, NULL, flags);
  properties[PROP_STATE] =
    g_param_spec_enum ("state", NULL, NULL, TWP_TYPE_BRIDGE_STATE, TWP_BRIDGE_STATE_UNKNOWN, flags);
  properties[PROP_PHASE] =
    g_param_spec_enum ("phase", NULL, NULL, TWP_TYPE_DIAL_PHASE, TWP_DIAL_PHASE_NONE, flags);
  properties[PROP_FRAME_MODE] =
    g_param_spec_enum ("frame-mode", NULL, NULL, TWP_TYPE_FRAME_MODE, TWP_FRAME_MODE_BINARY, flags);
  properties[PROP_MODE_PINNED] = g_param_spec_boolean ("mode-pinned", NULL, NULL, FALSE, flags);
  properties[PROP_ATTEMPTS] = g_param_spec_uint64 ("attempts", NULL, NULL, 0, G_MAXUINT64, 0, flags);
  properties[PROP_FAILURES] = g_param_spec_uint64 ("failures", NULL, NULL, 0, G_MAXUINT64, 0, flags);
  properties[PROP_ACTIVE_CONNECTIONS] =
    g_param_spec_uint ("active-connections", NULL, NULL, 0, G_MAXUINT, 0, flags);
  properties[PROP_LAST_SUCCESS_TIME] =
    g_param_spec_int64 ("last-success-time", NULL, NULL, 0, G_MAXINT64, 0, flags);
  properties[PROP_LAST_FAILURE_TIME] =
    g_param_spec_int64 ("last-failure-time", NULL, NULL, 0, G_MAXINT64, 0, flags);
  properties[PROP_LAST_FAILURE_REASON] =
    g_param_spec_enum ("last-failure-reason", NULL, NULL, TWP_TYPE_FAILURE_REASON, TWP_FAILURE_NONE, flags);
  properties[PROP_LAST_FAILURE_DETAILS] =
    g_param_spec_string ("last-failure-details", NULL, NULL, NULL, flags);
  properties[PROP_LAST_FAILURE_CODE] =
    g_param_spec_uint ("last-failure-code", NULL, NULL, 0, G_MAXUINT, 0, flags);
  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
twp_bridge_init (TwpBridge *self)
{
  self->relays = g_ptr_array_new_with_free_func (g_object_unref);
  self->last_rtt_us = -1;
}

TwpBridge *
twp_bridge_new (const char      *key,
                TwpBridgeConfig *config,
                TwpFrameMode     default_mode)
{
  TwpBridge *self;

  g_return_val_if_fail (key != NULL, NULL);
  g_return_val_if_fail (config != NULL, NULL);

  self = g_object_new (TWP_TYPE_BRIDGE, NULL);
  self->key = g_strdup (key);
  self->config = config;
  self->default_mode = default_mode;
  self->state = TWP_BRIDGE_STATE_IDLE;
  /* A short digest names the bridge without revealing it: safe to show
   * and to broadcast, stable across restarts. */
  {
    g_autofree char *digest = g_compute_checksum_for_string (G_CHECKSUM_SHA256, key, -1);

    self->id = g_strndup (digest, 16);
  }
  return self;
}

const char *
twp_bridge_get_id (TwpBridge *self)
{
  g_return_val_if_fail (TWP_IS_BRIDGE (self), NULL);
  return self->id;
}

const char *
twp_bridge_get_key (TwpBridge *self)
{
  g_return_val_if_fail (TWP_IS_BRIDGE (self), NULL);
  return self->key;
}

char *
twp_bridge_dup_url (TwpBridge *self)
{
  g_return_val_if_fail (TWP_IS_BRIDGE (self), NULL);
  return g_uri_to_string (self->config->uri);
}

const TwpBridgeConfig *
twp_bridge_get_config (TwpBridge *self)
{
  g_return_val_if_fail (TWP_IS_BRIDGE (self), NULL);
  return self->config;
}

TwpBridgeState
twp_bridge_get_state (TwpBridge *self)
{
  g_return_val_if_fail (TWP_IS_BRIDGE (self), TWP_BRIDGE_STATE_UNKNOWN);
  return self->state;
}

TwpDialPhase
twp_bridge_get_phase (TwpBridge *self)
{
  g_return_val_if_fail (TWP_IS_BRIDGE (self), TWP_DIAL_PHASE_NONE);
  return self->phase;
}

TwpFrameMode
twp_bridge_get_frame_mode (TwpBridge *self)
{
  g_return_val_if_fail (TWP_IS_BRIDGE (self), TWP_FRAME_MODE_BINARY);
  return self->config->mode_pinned ? self->config->mode : self->default_mode;
}

gboolean
twp_bridge_get_mode_pinned (TwpBridge *self)
{
  g_return_val_if_fail (TWP_IS_BRIDGE (self), FALSE);
  return self->config->mode_pinned;
}

guint64
twp_bridge_get_attempts (TwpBridge *self)
{
  g_return_val_if_fail (TWP_IS_BRIDGE (self), 0);
  return self->attempts;
}

guint64
twp_bridge_get_failures (TwpBridge *self)
{
  g_return_val_if_fail (TWP_IS_BRIDGE (self), 0);
  return self->failures;
}

guint
twp_bridge_get_active_connections (TwpBridge *self)
{
  g_return_val_if_fail (TWP_IS_BRIDGE (self), 0);
  return self->relays->len;
}

gint64
twp_bridge_get_last_success_time (TwpBridge *self)
{
  g_return_val_if_fail (TWP_IS_BRIDGE (self), 0);
  return self->last_success_time;
}

gint64
twp_bridge_get_last_failure_time (TwpBridge *self)
{
  g_return_val_if_fail (TWP_IS_BRIDGE (self), 0);
  return self->last_failure_time;
}

TwpFailureReason
twp_bridge_get_last_failure_reason (TwpBridge *self)
{
  g_return_val_if_fail (TWP_IS_BRIDGE (self), TWP_FAILURE_NONE);
  return self->last_failure_reason;
}

const char *
twp_bridge_get_last_failure_details (TwpBridge *self)
{
  g_return_val_if_fail (TWP_IS_BRIDGE (self), NULL);
  return self->last_failure_details;
}

guint
twp_bridge_get_last_failure_code (TwpBridge *self)
{
  g_return_val_if_fail (TWP_IS_BRIDGE (self), 0);
  return self->last_failure_code;
}

gint64
twp_bridge_get_rtt_us (TwpBridge *self)
{
  g_return_val_if_fail (TWP_IS_BRIDGE (self), -1);

  /* The newest tunnel's measurement is the freshest. */
  for (guint i = self->relays->len; i > 0; i--)
    {
      gint64 rtt = twp_relay_get_rtt_us (g_ptr_array_index (self->relays, i - 1));

      if (rtt >= 0)
        return rtt;
    }
  return self->last_rtt_us;
}

guint64
twp_bridge_get_bytes_sent (TwpBridge *self)
{
  guint64 total;

  g_return_val_if_fail (TWP_IS_BRIDGE (self), 0);

  total = self->bytes_sent_closed;
  for (guint i = 0; i < self->relays->len; i++)
    total += twp_relay_get_bytes_to_ws (g_ptr_array_index (self->relays, i));
  return total;
}

guint64
twp_bridge_get_bytes_received (TwpBridge *self)
{
  guint64 total;

  g_return_val_if_fail (TWP_IS_BRIDGE (self), 0);

  total = self->bytes_received_closed;
  for (guint i = 0; i < self->relays->len; i++)
    total += twp_relay_get_bytes_from_ws (g_ptr_array_index (self->relays, i));
  return total;
}

void
twp_bridge_set_default_mode (TwpBridge    *self,
                             TwpFrameMode  mode)
{
  TwpFrameMode before;

  g_return_if_fail (TWP_IS_BRIDGE (self));

  before = twp_bridge_get_frame_mode (self);
  self->default_mode = mode;
  if (twp_bridge_get_frame_mode (self) != before)
    notify (self, PROP_FRAME_MODE);
}

void
twp_bridge_attempt_started (TwpBridge *self,
                            TwpDial   *dial)
{
  g_return_if_fail (TWP_IS_BRIDGE (self));
  g_return_if_fail (TWP_IS_DIAL (dial));

  /* The newest attempt is the one users watch. */
  if (self->dial != NULL)
    g_signal_handlers_disconnect_by_func (self->dial, dial_phase_cb, self);
  g_set_object (&self->dial, dial);
  g_signal_connect (dial, "notify::phase", G_CALLBACK (dial_phase_cb), self);

  self->attempts++;
  self->n_connecting++;
  set_phase (self, twp_dial_get_phase (dial));
  notify (self, PROP_ATTEMPTS);
  update_state (self);
}

static void
attempt_ended (TwpBridge *self,
               TwpDial   *dial)
{
  g_return_if_fail (self->n_connecting > 0);

  self->n_connecting--;
  if (dial == self->dial)
    {
      set_phase (self, twp_dial_get_phase (dial));
      g_signal_handlers_disconnect_by_func (self->dial, dial_phase_cb, self);
      g_clear_object (&self->dial);
    }
}

void
twp_bridge_attempt_succeeded (TwpBridge *self,
                              TwpDial   *dial)
{
  g_return_if_fail (TWP_IS_BRIDGE (self));

  attempt_ended (self, dial);
  self->last_success_time = g_get_real_time () / G_USEC_PER_SEC;
  notify (self, PROP_LAST_SUCCESS_TIME);
  update_state (self);
}

void
twp_bridge_attempt_cancelled (TwpBridge *self,
                              TwpDial   *dial)
{
  g_return_if_fail (TWP_IS_BRIDGE (self));

  attempt_ended (self, dial);
  update_state (self);
}

static void
record_failure (TwpBridge    *self,
                const GError *error,
                guint         code)
{
  self->failures++;
  self->last_failure_code = code;
  self->last_failure_time = g_get_real_time () / G_USEC_PER_SEC;
  self->last_failure_reason = twp_failure_reason_from_error (error);
  g_free (self->last_failure_details);
  /* Error texts quote what servers sent: D-Bus takes only UTF-8. */
  self->last_failure_details = twp_log_make_valid (error != NULL ? error->message : NULL, -1);
  notify (self, PROP_FAILURES);
  notify (self, PROP_LAST_FAILURE_TIME);
  notify (self, PROP_LAST_FAILURE_REASON);
  notify (self, PROP_LAST_FAILURE_DETAILS);
  notify (self, PROP_LAST_FAILURE_CODE);
}

void
twp_bridge_attempt_failed (TwpBridge    *self,
                           TwpDial      *dial,
                           const GError *error)
{
  guint code = 0;

  g_return_if_fail (TWP_IS_BRIDGE (self));

  if (dial != NULL)
    {
      attempt_ended (self, dial);
      if (g_error_matches (error, TWP_DIAL_ERROR, TWP_DIAL_ERROR_HTTP_STATUS))
        code = twp_dial_get_http_status (dial);
    }
  record_failure (self, error, code);
  update_state (self);
}

void
twp_bridge_tunnel_opened (TwpBridge *self,
                          TwpRelay  *relay)
{
  g_return_if_fail (TWP_IS_BRIDGE (self));
  g_return_if_fail (TWP_IS_RELAY (relay));

  g_ptr_array_add (self->relays, g_object_ref (relay));
  notify (self, PROP_ACTIVE_CONNECTIONS);
  update_state (self);
}

void
twp_bridge_tunnel_closed (TwpBridge    *self,
                          TwpRelay     *relay,
                          const GError *error)
{
  gint64 rtt;

  g_return_if_fail (TWP_IS_BRIDGE (self));
  g_return_if_fail (TWP_IS_RELAY (relay));

  self->bytes_sent_closed += twp_relay_get_bytes_to_ws (relay);
  self->bytes_received_closed += twp_relay_get_bytes_from_ws (relay);
  rtt = twp_relay_get_rtt_us (relay);
  if (rtt >= 0)
    self->last_rtt_us = rtt;
  if (!g_ptr_array_remove (self->relays, relay))
    g_return_if_reached ();
  notify (self, PROP_ACTIVE_CONNECTIONS);

  /* A tunnel the server broke counts as a failure of the bridge; tor
   * closing its side, or a clean close, does not. */
  if (error != NULL && (error->domain == TWP_RELAY_ERROR) &&
      error->code != TWP_RELAY_ERROR_IDLE)
    record_failure (self, error, error->code == TWP_RELAY_ERROR_PEER_CLOSED
                                 ? twp_relay_get_peer_close_code (relay)
                                 : twp_relay_get_close_code (relay));
  update_state (self);
}
