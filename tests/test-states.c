/* SPDX-License-Identifier: BSD-3-Clause */
/* The numbers users see (twp-state.h) as the core's objects expose them:
 * the generated enum types hold the values D-Bus documents, the core's
 * properties are of those types. */
#define G_LOG_DOMAIN "test-states"

#include "config.h"

#include "twp-bridge.h"
#include "twp-client.h"
#include "twp-dial.h"
#include "twp-enum-types.h"
#include "twp-state-enums.h"

/* The values the D-Bus interfaces document (the XML in data/), by nick. */
static void
test_enum_values (void)
{
  struct {
    GType (*get_type) (void);
    int value;
    const char *nick;
  } cases[] = {
    { twp_transport_state_get_type, 0, "unknown" },
    { twp_transport_state_get_type, 10, "starting" },
    { twp_transport_state_get_type, 20, "ready" },
    { twp_transport_state_get_type, 30, "connecting" },
    { twp_transport_state_get_type, 40, "connected" },
    { twp_transport_state_get_type, 50, "degraded" },
    { twp_transport_state_get_type, 60, "failing" },
    { twp_transport_state_get_type, 70, "stopping" },
    { twp_bridge_state_get_type, 0, "unknown" },
    { twp_bridge_state_get_type, 10, "idle" },
    { twp_bridge_state_get_type, 20, "connecting" },
    { twp_bridge_state_get_type, 30, "connected" },
    { twp_bridge_state_get_type, 40, "failing" },
    { twp_dial_phase_get_type, 0, "none" },
    { twp_dial_phase_get_type, 10, "resolving" },
    { twp_dial_phase_get_type, 20, "connecting" },
    { twp_dial_phase_get_type, 30, "proxy" },
    { twp_dial_phase_get_type, 40, "tls" },
    { twp_dial_phase_get_type, 50, "upgrade" },
    { twp_dial_phase_get_type, 60, "open" },
    { twp_failure_reason_get_type, 0, "none" },
    { twp_failure_reason_get_type, 10, "bad-arguments" },
    { twp_failure_reason_get_type, 20, "dns" },
    { twp_failure_reason_get_type, 30, "refused" },
    { twp_failure_reason_get_type, 40, "unreachable" },
    { twp_failure_reason_get_type, 50, "timed-out" },
    { twp_failure_reason_get_type, 60, "proxy" },
    { twp_failure_reason_get_type, 70, "tls" },
    { twp_failure_reason_get_type, 80, "tls-certificate" },
    { twp_failure_reason_get_type, 90, "http-status" },
    { twp_failure_reason_get_type, 100, "handshake" },
    { twp_failure_reason_get_type, 110, "closed" },
    { twp_failure_reason_get_type, 120, "protocol" },
    { twp_failure_reason_get_type, 130, "closed-by-peer" },
    { twp_failure_reason_get_type, 1000, "other" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GEnumClass) klass = g_type_class_ref (cases[i].get_type ());
      GEnumValue *value = g_enum_get_value (klass, cases[i].value);

      g_test_message ("%s %d", g_type_name (cases[i].get_type ()), cases[i].value);
      g_assert_nonnull (value);
      g_assert_cmpstr (value->value_nick, ==, cases[i].nick);
      /* Every failure reason has the name the diagnostics print. */
      if (cases[i].get_type == twp_failure_reason_get_type)
        g_assert_cmpstr (twp_failure_reason_to_string (cases[i].value), ==, cases[i].nick);
    }
}

/* Properties that hold these numbers are enum properties of their type. */
static void
test_enum_properties (void)
{
  struct {
    GType (*object_type) (void);
    const char *name;
    GType (*value_type) (void);
  } cases[] = {
    { twp_client_get_type, "state", twp_transport_state_get_type },
    { twp_client_get_type, "frame-mode", twp_frame_mode_get_type },
    { twp_client_get_type, "last-failure-reason", twp_failure_reason_get_type },
    { twp_bridge_get_type, "state", twp_bridge_state_get_type },
    { twp_bridge_get_type, "phase", twp_dial_phase_get_type },
    { twp_bridge_get_type, "frame-mode", twp_frame_mode_get_type },
    { twp_bridge_get_type, "last-failure-reason", twp_failure_reason_get_type },
    { twp_dial_get_type, "phase", twp_dial_phase_get_type },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GTypeClass) klass = g_type_class_ref (cases[i].object_type ());
      GParamSpec *pspec = g_object_class_find_property (G_OBJECT_CLASS (klass), cases[i].name);

      g_test_message ("%s:%s", g_type_name (cases[i].object_type ()), cases[i].name);
      g_assert_nonnull (pspec);
      g_assert_true (G_IS_PARAM_SPEC_ENUM (pspec));
      g_assert_true (pspec->value_type == cases[i].value_type ());
    }
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/states/enum-values", test_enum_values);
  g_test_add_func ("/states/enum-properties", test_enum_properties);

  return g_test_run ();
}
