/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-dbus"

#include "config.h"

#include "twp-dbus-private.h"

#include "twp-bridge-config.h"
#include "twp-log.h"

gboolean
twp_dbus_transform_enum_to_uint (GBinding     *binding,
                                 const GValue *from,
                                 GValue       *to,
                                 gpointer      user_data)
{
  int value = g_value_get_enum (from);

  g_value_set_uint (to, value > 0 ? (guint) value : 0);
  return TRUE;
}

gboolean
twp_dbus_transform_frame_mode (GBinding     *binding,
                               const GValue *from,
                               GValue       *to,
                               gpointer      user_data)
{
  g_value_set_string (to, twp_frame_mode_to_string (g_value_get_enum (from)));
  return TRUE;
}

const char *
twp_dbus_broadcast_text (const char *text)
{
  if (text == NULL || *text == '\0')
    return "";
  return twp_log_get_unsafe () ? TWP_DBUS_WITHHELD : text;
}

gboolean
twp_dbus_transform_details (GBinding     *binding,
                            const GValue *from,
                            GValue       *to,
                            gpointer      user_data)
{
  g_value_set_string (to, twp_dbus_broadcast_text (g_value_get_string (from)));
  return TRUE;
}
