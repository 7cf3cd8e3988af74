/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-random"

#include "config.h"

#include "twp-random.h"

#include <errno.h>
#include <sys/random.h>

#include <gio/gio.h>

gboolean
twp_random_bytes (guint8  *buf,
                  gsize    len,
                  GError **error)
{
  gsize done = 0;

  g_return_val_if_fail (buf != NULL || len == 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  /* Large requests come back in parts (at most 32 MiB per call). */
  while (done < len)
    {
      ssize_t n = getrandom (buf + done, len - done, 0);
      int errsv = errno;

      if (n < 0 && errsv == EINTR)
        continue;
      if (n < 0)
        {
          g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv),
                       "Cannot get random bytes from the kernel: %s", g_strerror (errsv));
          return FALSE;
        }
      done += (gsize) n;
    }
  return TRUE;
}

void
twp_random_bytes_or_die (guint8 *buf,
                         gsize   len)
{
  g_autoptr(GError) error = NULL;

  if (!twp_random_bytes (buf, len, &error))
    g_error ("%s", error->message);
}
