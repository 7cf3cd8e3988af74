/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "tor-websocket-proxy"

#include "config.h"

#include "twp-log.h"

/* Set once at start-up from the command line, read everywhere after. */
static gboolean unsafe_logging;
static TwpLogSink log_sink;
static gpointer log_sink_data;

void
twp_log_set_unsafe (gboolean unsafe)
{
  unsafe_logging = unsafe;
}

gboolean
twp_log_get_unsafe (void)
{
  return unsafe_logging;
}

const char *
twp_log_redact (const char *sensitive)
{
  if (unsafe_logging && sensitive != NULL)
    return sensitive;
  return "[scrubbed]";
}

void
twp_log_set_sink (TwpLogSink sink,
                  gpointer   user_data)
{
  log_sink = sink;
  log_sink_data = user_data;
}

void
twp_log_user (TwpLogSeverity  severity,
              const char     *format,
              ...)
{
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);

  /* g_warning would abort under G_DEBUG=fatal-warnings; a peer's fault is
   * no programming error, so stderr gets it as a message. */
  if (severity <= TWP_LOG_NOTICE)
    g_message ("%s", message);
  else if (severity == TWP_LOG_INFO)
    g_info ("%s", message);
  else
    g_debug ("%s", message);

  if (log_sink != NULL)
    log_sink (severity, message, log_sink_data);
}
