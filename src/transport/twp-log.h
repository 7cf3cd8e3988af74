/* SPDX-License-Identifier: BSD-3-Clause */
/* Logging policy of the core. Messages a user must see go through
 * twp_log_user(), which main() routes to tor's log (LOG lines) as well as
 * stderr; the core itself never knows about tor's stdout. Client addresses,
 * bridge addresses and URLs never reach a log unless the user asked for
 * unsafe logging. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
  TWP_LOG_ERROR,
  TWP_LOG_WARNING,
  TWP_LOG_NOTICE,
  TWP_LOG_INFO,
  TWP_LOG_DEBUG,
} TwpLogSeverity;

typedef void (*TwpLogSink) (TwpLogSeverity  severity,
                            const char     *message,
                            gpointer        user_data);

void        twp_log_set_unsafe (gboolean unsafe);
gboolean    twp_log_get_unsafe (void);
/* Returns @sensitive itself with unsafe logging, "[scrubbed]" otherwise. */
const char *twp_log_redact     (const char *sensitive);

/* Outside text (bridge arguments, HTTP reason phrases, TLS and resolver
 * errors...) made fit for D-Bus, the status app and every log: valid UTF-8
 * is kept as it is, each byte of an invalid sequence becomes "\xNN".
 * @len -1: NUL-terminated. NULL stays NULL. */
char       *twp_log_make_valid (const char *text,
                                gssize      len);
/* The same for an error's message, in place. */
void        twp_log_error_make_valid (GError *error);

/* Where twp_log_user() messages go besides stderr: tor's LOG lines, the
 * D-Bus event ring. Returns an id for twp_log_remove_sink(). */
guint       twp_log_add_sink    (TwpLogSink sink,
                                 gpointer   user_data);
void        twp_log_remove_sink (guint      id);
/* The message is made valid UTF-8 (twp_log_make_valid()) before it goes
 * anywhere. */
void        twp_log_user       (TwpLogSeverity  severity,
                                const char     *format,
                                ...) G_GNUC_PRINTF (2, 3);

G_END_DECLS
