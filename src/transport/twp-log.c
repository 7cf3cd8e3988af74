/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "tor-websocket-proxy"

#include "config.h"

#include "twp-log.h"

#include <string.h>

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

char *
twp_log_make_valid (const char *text,
                    gssize      len)
{
  const char *p;
  const char *end;
  GString *out;

  if (text == NULL)
    return NULL;
  if (len < 0)
    len = strlen (text);
  if (g_utf8_validate_len (text, len, NULL))
    return g_strndup (text, len);

  /* Escaped rather than replaced with U+FFFD: whoever reads a refused
   * bridge line wants to see which bytes were wrong. */
  out = g_string_sized_new (len + 16);
  p = text;
  end = text + len;
  while (p < end)
    {
      const char *valid_end;

      g_utf8_validate_len (p, end - p, &valid_end);
      g_string_append_len (out, p, valid_end - p);
      if (valid_end == end)
        break;
      g_string_append_printf (out, "\\x%02x", (guchar) *valid_end);
      p = valid_end + 1;
    }
  return g_string_free (out, FALSE);
}

void
twp_log_error_make_valid (GError *error)
{
  char *valid;

  if (error == NULL || error->message == NULL || g_utf8_validate (error->message, -1, NULL))
    return;
  valid = twp_log_make_valid (error->message, -1);
  g_free (error->message);
  error->message = valid;
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
  g_autofree char *raw = NULL;
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  raw = g_strdup_vprintf (format, args);
  va_end (args);
  /* Messages quote what peers and local processes sent: the D-Bus event
   * ring and signal take only valid UTF-8. */
  message = twp_log_make_valid (raw, -1);

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
