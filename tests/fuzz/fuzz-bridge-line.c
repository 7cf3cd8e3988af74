/* SPDX-License-Identifier: BSD-3-Clause */
/* A bridge line pasted into the status app's "Use with Tor Browser"
 * window: any bytes give the line as Tor Browser takes it, or a clean
 * error; an accepted line is accepted again unchanged. */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "twp-tor-browser.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  g_autofree char *line = g_strndup ((const char *) data, size);
  g_autofree char *checked = NULL;
  g_autofree char *again = NULL;
  g_autoptr(GError) error = NULL;

  checked = twp_bridge_line_check (line, &error);
  if (checked == NULL)
    {
      /* Refused with words, never silently. */
      if (error == NULL || error->message == NULL || *error->message == '\0')
        __builtin_trap ();
      return 0;
    }
  if (!g_str_has_prefix (checked, "websocket ") || strpbrk (checked, "\t\r\n") != NULL)
    __builtin_trap ();
  again = twp_bridge_line_check (checked, NULL);
  if (again == NULL || strcmp (again, checked) != 0)
    __builtin_trap ();
  return 0;
}
