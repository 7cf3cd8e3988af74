/* SPDX-License-Identifier: BSD-3-Clause */
/* The three argument grammars (C11, S3, S8) on arbitrary bytes; whatever
 * parses must survive an SMETHOD format/parse round trip unchanged. */
#define G_LOG_DOMAIN "twp-fuzz-args"

#include "config.h"

#include <stdint.h>
#include <stdlib.h>

#include "twp-args.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
check_round_trip (TwpArgs *args)
{
  g_autofree char *formatted = twp_args_format_smethod (args);
  g_autoptr(GError) error = NULL;
  g_autoptr(TwpArgs) back = twp_args_parse_smethod (formatted, &error);

  /* keys are never empty after a successful parse, so this must hold */
  if (back == NULL || !twp_args_equal (args, back))
    abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  g_autoptr(TwpArgs) socks = NULL;
  g_autoptr(GHashTable) options = NULL;
  g_autoptr(TwpArgs) smethod = NULL;
  g_autofree char *str = NULL;

  /* tor sends at most 510 bytes; stay well above that but bounded */
  if (size > 4096)
    return 0;

  socks = twp_args_parse_socks ((const char *) data, size, NULL);
  if (socks != NULL)
    check_round_trip (socks);

  str = g_strndup ((const char *) data, size);
  options = twp_args_parse_server_options (str, NULL);
  if (options != NULL)
    {
      GHashTableIter iter;
      gpointer value;

      g_hash_table_iter_init (&iter, options);
      while (g_hash_table_iter_next (&iter, NULL, &value))
        check_round_trip (value);
    }

  smethod = twp_args_parse_smethod (str, NULL);
  if (smethod != NULL)
    check_round_trip (smethod);

  return 0;
}
