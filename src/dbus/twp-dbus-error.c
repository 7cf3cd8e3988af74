/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-dbus"

#include "config.h"

#include "twp-dbus-error.h"

static const GDBusErrorEntry error_entries[] = {
  { TWP_DBUS_ERROR_INVALID_ARGUMENT, "io.github.TorWebSocketProxy1.Error.InvalidArgument" },
  { TWP_DBUS_ERROR_FAILED, "io.github.TorWebSocketProxy1.Error.Failed" },
  { TWP_DBUS_ERROR_NOT_FOUND, "io.github.TorWebSocketProxy1.Error.NotFound" },
};

G_STATIC_ASSERT (G_N_ELEMENTS (error_entries) == TWP_DBUS_N_ERRORS);

GQuark
twp_dbus_error_quark (void)
{
  static gsize quark = 0;

  /* Registering maps the domain to D-Bus error names both ways. */
  g_dbus_error_register_error_domain ("twp-dbus-error-quark", &quark,
                                      error_entries, G_N_ELEMENTS (error_entries));
  return (GQuark) quark;
}
