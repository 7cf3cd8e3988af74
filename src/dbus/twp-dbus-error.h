/* SPDX-License-Identifier: BSD-3-Clause */
/* Errors of the D-Bus interface, registered with GDBus so that callers see
 * io.github.TorWebSocketProxy1.Error.* names. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define TWP_DBUS_ERROR (twp_dbus_error_quark ())
GQuark twp_dbus_error_quark (void);

typedef enum {
  TWP_DBUS_ERROR_INVALID_ARGUMENT,   /* io.github.TorWebSocketProxy1.Error.InvalidArgument */
  TWP_DBUS_ERROR_FAILED,             /* io.github.TorWebSocketProxy1.Error.Failed */
  TWP_DBUS_ERROR_NOT_FOUND,          /* io.github.TorWebSocketProxy1.Error.NotFound */
} TwpDBusError;

#define TWP_DBUS_N_ERRORS (TWP_DBUS_ERROR_NOT_FOUND + 1)

G_END_DECLS
