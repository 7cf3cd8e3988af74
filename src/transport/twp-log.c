/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "tor-websocket-proxy"

#include "config.h"

#include "twp-log.h"

/* Set once at start-up from the command line, read everywhere after. */
static gboolean unsafe_logging;
typedef struct {
  guint id;
  TwpLogSink sink;
  gpointer user_data;
} Sink;

/* Main thread only, like the rest of the core. */
static GArray *sinks;
static guint last_sink_id;

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

guint
twp_log_add_sink (TwpLogSink sink,
                  gpointer   user_data)
{
  Sink entry = { ++last_sink_id, sink, user_data };

  if (sinks == NULL)
    sinks = g_array_new (FALSE, FALSE, sizeof (Sink));
  g_array_append_val (sinks, entry);
  return entry.id;
}

void
twp_log_remove_sink (guint id)
{
  for (guint i = 0; sinks != NULL && i < sinks->len; i++)
    if (g_array_index (sinks, Sink, i).id == id)
      {
        g_array_remove_index (sinks, i);
        break;
      }
  if (sinks != NULL && sinks->len == 0)
    g_clear_pointer (&sinks, g_array_unref);
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

  for (guint i = 0; sinks != NULL && i < sinks->len; i++)
    {
      Sink *entry = &g_array_index (sinks, Sink, i);

      entry->sink (severity, message, entry->user_data);
    }
}
