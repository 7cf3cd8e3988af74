/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-pt-output"

#include "config.h"

#include "twp-pt-output.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "twp-pt-env.h"

/* L7 defaults: a burst of 10 LOG lines, then one per second. */
#define DEFAULT_LOG_BURST 10
#define DEFAULT_LOG_REFILL_US G_USEC_PER_SEC
/* Free text is cut here: a LOG line is at most 4 times this once encoded. */
#define MAX_MESSAGE_LEN 1024

struct _TwpPtOutput
{
  GMutex mutex;              /* one line at a time; guards everything below */
  int fd;                    /* borrowed */
  gboolean broken;           /* a write failed: tor is gone, write nothing more */
  /* G2/G6 state machine: launched -> VERSION -> *METHODS DONE */
  gboolean version_sent;
  gboolean done;
  /* L7 token bucket */
  guint burst;
  gint64 refill_interval_us;
  guint tokens;
  gint64 last_refill_us;
  guint dropped;             /* LOG lines dropped since the last one written */
};

TwpPtOutput *
twp_pt_output_new (int fd)
{
  TwpPtOutput *out;

  g_return_val_if_fail (fd >= 0, NULL);

  out = g_new0 (TwpPtOutput, 1);
  g_mutex_init (&out->mutex);
  out->fd = fd;
  out->burst = DEFAULT_LOG_BURST;
  out->refill_interval_us = DEFAULT_LOG_REFILL_US;
  out->tokens = out->burst;
  out->last_refill_us = g_get_monotonic_time ();
  return out;
}

void
twp_pt_output_free (TwpPtOutput *out)
{
  if (out == NULL)
    return;
  g_mutex_clear (&out->mutex);
  g_free (out);
}

void
twp_pt_output_set_log_rate (TwpPtOutput *out,
                            guint        burst,
                            gint64       refill_interval_us)
{
  g_return_if_fail (out != NULL);
  g_return_if_fail (burst > 0);
  g_return_if_fail (refill_interval_us > 0);

  g_mutex_lock (&out->mutex);
  out->burst = burst;
  out->refill_interval_us = refill_interval_us;
  out->tokens = burst;
  out->last_refill_us = g_get_monotonic_time ();
  g_mutex_unlock (&out->mutex);
}

gboolean
twp_pt_output_is_broken (TwpPtOutput *out)
{
  gboolean broken;

  g_return_val_if_fail (out != NULL, TRUE);

  g_mutex_lock (&out->mutex);
  broken = out->broken;
  g_mutex_unlock (&out->mutex);
  return broken;
}

gboolean
twp_pt_output_is_done (TwpPtOutput *out)
{
  gboolean done;

  g_return_val_if_fail (out != NULL, FALSE);

  g_mutex_lock (&out->mutex);
  done = out->done;
  g_mutex_unlock (&out->mutex);
  return done;
}

static gboolean
is_keyword (const char *keyword)
{
  if (keyword == NULL || *keyword == '\0')
    return FALSE;
  for (const char *p = keyword; *p != '\0'; p++)
    {
      if (!(g_ascii_isalnum (*p) || *p == '_' || *p == '-'))
        return FALSE;
    }
  return TRUE;
}

/* G4: printable US-ASCII, which excludes NUL, CR, LF and bytes >= 0x80. */
static gboolean
is_line_args (const char *args)
{
  for (const char *p = args; *p != '\0'; p++)
    {
      if (*p < 0x20 || *p > 0x7e)
        return FALSE;
    }
  return TRUE;
}

/* Lines tor accepts only in state "Accepting methods" (after VERSION). */
static gboolean
needs_version (const char *keyword)
{
  static const char * const gated[] = {
    "CMETHOD", "CMETHOD-ERROR", "CMETHODS",
    "SMETHOD", "SMETHOD-ERROR", "SMETHODS",
    "PROXY", "PROXY-ERROR", NULL,
  };

  return g_strv_contains (gated, keyword);
}

static gboolean
write_all_locked (TwpPtOutput *out,
                  const char  *buf,
                  gsize        len)
{
  while (len > 0)
    {
      ssize_t n = write (out->fd, buf, len);

      if (n < 0)
        {
          int saved_errno = errno;

          if (saved_errno == EINTR)
            continue;
          if (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK)
            {
              /* someone made the fd non-blocking: wait as a blocking write would */
              struct pollfd pfd = { .fd = out->fd, .events = POLLOUT };

              poll (&pfd, 1, -1);
              continue;
            }
          /* EPIPE (K2) or anything else: the parent cannot read us any more */
          out->broken = TRUE;
          g_debug ("stdout write failed, stopping output: %s", g_strerror (saved_errno));
          return FALSE;
        }
      buf += n;
      len -= (gsize) n;
    }
  return TRUE;
}

static gboolean
line_locked (TwpPtOutput *out,
             const char  *keyword,
             const char  *args)
{
  g_autofree char *line = NULL;
  gboolean is_log_or_status;

  if (out->broken)
    return FALSE;

  if (!is_keyword (keyword) || (args != NULL && !is_line_args (args)))
    {
      g_debug ("refusing malformed output line (keyword %s)",
               is_keyword (keyword) ? keyword : "invalid");
      return FALSE;
    }

  is_log_or_status = strcmp (keyword, "LOG") == 0 || strcmp (keyword, "STATUS") == 0;
  /* B1: anything but LOG/STATUS after DONE makes tor abort on the next HUP */
  if (out->done && !is_log_or_status)
    {
      g_debug ("refusing %s after *METHODS DONE", keyword);
      return FALSE;
    }
  if (!out->version_sent && needs_version (keyword))
    {
      g_debug ("refusing %s before VERSION", keyword);
      return FALSE;
    }
  /* tor accepts VERSION only in state Launched: a second one breaks the proxy */
  if (out->version_sent &&
      (strcmp (keyword, "VERSION") == 0 || strcmp (keyword, "VERSION-ERROR") == 0))
    {
      g_debug ("refusing a second %s", keyword);
      return FALSE;
    }

  if (args != NULL)
    line = g_strconcat (keyword, " ", args, "\n", NULL);
  else
    line = g_strconcat (keyword, "\n", NULL);

  /* G5: one write(2) per line, nothing buffered in between */
  if (!write_all_locked (out, line, strlen (line)))
    return FALSE;

  if (strcmp (keyword, "VERSION") == 0)
    out->version_sent = TRUE;
  else if ((strcmp (keyword, "CMETHODS") == 0 || strcmp (keyword, "SMETHODS") == 0) &&
           g_strcmp0 (args, "DONE") == 0)
    out->done = TRUE;
  return TRUE;
}

gboolean
twp_pt_output_line (TwpPtOutput *out,
                    const char  *keyword,
                    const char  *args)
{
  gboolean ret;

  g_return_val_if_fail (out != NULL, FALSE);

  g_mutex_lock (&out->mutex);
  ret = line_locked (out, keyword, args);
  g_mutex_unlock (&out->mutex);
  return ret;
}

/* Free text for *-ERROR lines: one line of printable ASCII, bounded. */
static char *
sanitize_message (const char *message)
{
  char *copy;

  if (message == NULL || *message == '\0')
    return g_strdup ("unspecified error");
  copy = g_strndup (message, MAX_MESSAGE_LEN);
  for (char *p = copy; *p != '\0'; p++)
    {
      if (*p < 0x20 || *p > 0x7e)
        *p = '?';
    }
  return copy;
}

/* "a.b.c.d:p" or "[v6]:p"; NULL if tor would refuse it (port 0, C6). */
static char *
format_socket_address (GInetSocketAddress *address)
{
  GInetAddress *inet;
  g_autofree char *host = NULL;
  guint16 port;

  if (address == NULL)
    return NULL;
  inet = g_inet_socket_address_get_address (address);
  port = g_inet_socket_address_get_port (address);
  if (port == 0)
    return NULL;
  host = g_inet_address_to_string (inet);
  if (g_inet_address_get_family (inet) == G_SOCKET_FAMILY_IPV6)
    return g_strdup_printf ("[%s]:%u", host, port);
  return g_strdup_printf ("%s:%u", host, port);
}

void
twp_pt_output_version (TwpPtOutput *out)
{
  twp_pt_output_line (out, "VERSION", "1");
}

void
twp_pt_output_version_error (TwpPtOutput *out)
{
  twp_pt_output_line (out, "VERSION-ERROR", "no-version");
}

void
twp_pt_output_env_error (TwpPtOutput *out,
                         const char  *message)
{
  g_autofree char *text = sanitize_message (message);

  twp_pt_output_line (out, "ENV-ERROR", text);
}

void
twp_pt_output_proxy_done (TwpPtOutput *out)
{
  twp_pt_output_line (out, "PROXY", "DONE");
}

void
twp_pt_output_proxy_error (TwpPtOutput *out,
                           const char  *message)
{
  g_autofree char *text = sanitize_message (message);

  twp_pt_output_line (out, "PROXY-ERROR", text);
}

static void
method_error (TwpPtOutput *out,
              const char  *keyword,
              const char  *transport,
              const char  *message)
{
  g_autofree char *text = NULL;
  g_autofree char *args = NULL;

  /* tor takes the first token as the name; a bad one breaks the proxy */
  if (!twp_pt_is_transport_name (transport))
    {
      g_debug ("refusing %s for an invalid transport name", keyword);
      return;
    }
  text = sanitize_message (message);
  args = g_strconcat (transport, " ", text, NULL);
  twp_pt_output_line (out, keyword, args);
}

void
twp_pt_output_cmethod (TwpPtOutput        *out,
                       const char         *transport,
                       const char         *socks_version,
                       GInetSocketAddress *address)
{
  g_autofree char *addr = NULL;
  g_autofree char *args = NULL;

  if (!twp_pt_is_transport_name (transport))
    {
      g_debug ("refusing CMETHOD for an invalid transport name");
      return;
    }
  /* a malformed CMETHOD kills the whole proxy (8.11): report an error instead */
  addr = format_socket_address (address);
  if (addr == NULL ||
      (g_strcmp0 (socks_version, "socks4") != 0 && g_strcmp0 (socks_version, "socks5") != 0))
    {
      method_error (out, "CMETHOD-ERROR", transport, "internal error: bad listener");
      return;
    }
  args = g_strdup_printf ("%s %s %s", transport, socks_version, addr);
  twp_pt_output_line (out, "CMETHOD", args);
}

void
twp_pt_output_cmethod_error (TwpPtOutput *out,
                             const char  *transport,
                             const char  *message)
{
  method_error (out, "CMETHOD-ERROR", transport, message);
}

void
twp_pt_output_cmethods_done (TwpPtOutput *out)
{
  twp_pt_output_line (out, "CMETHODS", "DONE");
}

void
twp_pt_output_smethod (TwpPtOutput        *out,
                       const char         *transport,
                       GInetSocketAddress *address,
                       TwpArgs            *args)
{
  g_autofree char *addr = NULL;
  g_autofree char *formatted = NULL;
  g_autofree char *line = NULL;

  if (!twp_pt_is_transport_name (transport))
    {
      g_debug ("refusing SMETHOD for an invalid transport name");
      return;
    }
  addr = format_socket_address (address);
  if (addr == NULL)
    {
      method_error (out, "SMETHOD-ERROR", transport, "internal error: bad listener");
      return;
    }

  if (args != NULL && twp_args_get_length (args) > 0)
    {
      formatted = twp_args_format_smethod (args);
      /* S8: tor splits options on spaces, so ARGS must be one visible token */
      for (const char *p = formatted; *p != '\0'; p++)
        {
          if (*p <= 0x20 || *p > 0x7e)
            {
              method_error (out, "SMETHOD-ERROR", transport,
                            "ARGS contain spaces or non-ASCII bytes");
              return;
            }
        }
      /* S8: ARGS must be the first option, tor only looks there */
      line = g_strdup_printf ("%s %s ARGS:%s", transport, addr, formatted);
    }
  else
    line = g_strdup_printf ("%s %s", transport, addr);

  twp_pt_output_line (out, "SMETHOD", line);
}

void
twp_pt_output_smethod_error (TwpPtOutput *out,
                             const char  *transport,
                             const char  *message)
{
  method_error (out, "SMETHOD-ERROR", transport, message);
}

void
twp_pt_output_smethods_done (TwpPtOutput *out)
{
  twp_pt_output_line (out, "SMETHODS", "DONE");
}

/* G12: pasted raw into extra-info, and an unquoted kvline value (L2). */
static gboolean
is_status_token (const char *value)
{
  if (value == NULL || *value == '\0')
    return FALSE;
  for (const char *p = value; *p != '\0'; p++)
    {
      if (*p <= 0x20 || *p > 0x7e || *p == '"' || *p == '\'' || *p == '\\' || *p == '=')
        return FALSE;
    }
  return TRUE;
}

void
twp_pt_output_status_version (TwpPtOutput *out,
                              const char  *implementation,
                              const char  *version)
{
  g_autofree char *args = NULL;

  if (!is_status_token (implementation) || !is_status_token (version))
    {
      g_debug ("refusing STATUS version with unsafe values");
      return;
    }
  args = g_strdup_printf ("TYPE=version IMPLEMENTATION=%s VERSION=%s",
                          implementation, version);
  twp_pt_output_line (out, "STATUS", args);
}

char *
twp_pt_encode_cstring (const char *str)
{
  GString *out;

  g_return_val_if_fail (str != NULL, NULL);

  out = g_string_sized_new (strlen (str) + 2);
  g_string_append_c (out, '"');
  for (const guint8 *p = (const guint8 *) str; *p != '\0'; p++)
    {
      /* everything but controls, '"', '\' and bytes >= 127 stands for itself */
      if (*p >= 32 && *p <= 126 && *p != '"' && *p != '\\')
        g_string_append_c (out, (char) *p);
      else
        g_string_append_printf (out, "\\%03o", *p);
    }
  g_string_append_c (out, '"');
  return g_string_free (out, FALSE);
}

static const char *
severity_name (TwpPtLogSeverity severity)
{
  /* L1: tor knows exactly these; "warn" would be refused */
  switch (severity)
    {
    case TWP_PT_LOG_ERROR:
      return "error";
    case TWP_PT_LOG_WARNING:
      return "warning";
    case TWP_PT_LOG_NOTICE:
      return "notice";
    case TWP_PT_LOG_INFO:
      return "info";
    case TWP_PT_LOG_DEBUG:
      return "debug";
    default:
      return "notice";
    }
}

/* L7: refills whole tokens for the time elapsed; FALSE when none is left. */
static gboolean
take_log_token_locked (TwpPtOutput *out)
{
  gint64 now = g_get_monotonic_time ();

  if (out->tokens < out->burst)
    {
      gint64 refills = (now - out->last_refill_us) / out->refill_interval_us;

      if (refills >= (gint64) (out->burst - out->tokens))
        {
          out->tokens = out->burst;
          out->last_refill_us = now;
        }
      else if (refills > 0)
        {
          out->tokens += (guint) refills;
          out->last_refill_us += refills * out->refill_interval_us;
        }
    }
  else
    out->last_refill_us = now;

  if (out->tokens == 0)
    return FALSE;
  out->tokens--;
  return TRUE;
}

void
twp_pt_output_log (TwpPtOutput      *out,
                   TwpPtLogSeverity  severity,
                   const char       *format,
                   ...)
{
  g_autofree char *message = NULL;
  g_autofree char *text = NULL;
  g_autofree char *encoded = NULL;
  g_autofree char *args = NULL;
  va_list ap;

  g_return_if_fail (out != NULL);
  g_return_if_fail (format != NULL);

  g_mutex_lock (&out->mutex);
  if (out->broken)
    goto out;
  if (!take_log_token_locked (out))
    {
      out->dropped++;
      goto out;
    }

  va_start (ap, format);
  message = g_strdup_vprintf (format, ap);
  va_end (ap);
  if (strlen (message) > MAX_MESSAGE_LEN)
    message[MAX_MESSAGE_LEN] = '\0';

  if (out->dropped > 0)
    text = g_strdup_printf ("[%u log lines dropped] %s", out->dropped, message);
  else
    text = g_steal_pointer (&message);

  encoded = twp_pt_encode_cstring (text);
  args = g_strdup_printf ("SEVERITY=%s MESSAGE=%s", severity_name (severity), encoded);
  if (line_locked (out, "LOG", args))
    out->dropped = 0;

out:
  g_mutex_unlock (&out->mutex);
}
