/* SPDX-License-Identifier: BSD-3-Clause */
/* The status app: single instance (a second launch presents the first
 * window), one TwpMonitor shared by its windows, and notifications on
 * Connected <-> Failing transitions. */
#pragma once

#include <adwaita.h>

G_BEGIN_DECLS

#define TWP_APPLICATION_ID "io.github.TorWebSocketProxy"

#define TWP_TYPE_APPLICATION (twp_application_get_type ())
G_DECLARE_FINAL_TYPE (TwpApplication, twp_application, TWP, APPLICATION, AdwApplication)

TwpApplication *twp_application_new (void);

G_END_DECLS
