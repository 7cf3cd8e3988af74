/* SPDX-License-Identifier: BSD-3-Clause */
/* Fuzzes the metrics endpoint's request parser, as a scraper's reads would
 * arrive: every prefix asks for more or says what the whole says, and the
 * same bytes as a metrics= value either parse or fail cleanly. */
#define G_LOG_DOMAIN "fuzz-metrics-request"

#include "config.h"

#include "twp-metrics-endpoint.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  TwpMetricsRequest whole = twp_metrics_parse_request (data, size);

  if (whole > TWP_METRICS_REQUEST_TOO_LARGE)
    abort ();
  if (whole == TWP_METRICS_REQUEST_TOO_LARGE && size < TWP_METRICS_MAX_REQUEST)
    abort ();
  if (whole == TWP_METRICS_REQUEST_INCOMPLETE && size >= TWP_METRICS_MAX_REQUEST)
    abort ();
  /* A few cut points, not all: the parser is linear in its input. */
  for (size_t cut = 1; cut < size && cut < TWP_METRICS_MAX_REQUEST; cut += 1 + cut / 4)
    {
      TwpMetricsRequest part = twp_metrics_parse_request (data, cut);

      if (part != TWP_METRICS_REQUEST_INCOMPLETE && part != whole)
        abort ();
    }

  if (size < 256 && memchr (data, '\0', size) == NULL)
    {
      g_autofree char *value = g_strndup ((const char *) data, size);
      g_autoptr(GError) error = NULL;
      g_autoptr(GSocketAddress) address = twp_metrics_address_parse (value, &error);

      if ((address == NULL) == (error == NULL))
        abort ();
      if (address != NULL)
        twp_metrics_address_is_local (address);
    }
  return 0;
}
