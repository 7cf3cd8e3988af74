/* SPDX-License-Identifier: BSD-3-Clause */
/* Feeds tor -> PT bytes to the ExtORPort parser twice, in two different
 * chunkings (as they arrive, and exactly as the handshake reads them), and
 * checks that both see the same events, outcome and payload boundary. */
#define G_LOG_DOMAIN "twp-fuzz-extorport"

#include "config.h"

#include <stdint.h>
#include <string.h>

#include "twp-extorport.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

typedef struct {
  guint events;          /* bitmask of events seen */
  guint n_events;
  gsize consumed;
  TwpExtOrPortParserState state;
  int error_code;        /* -1: none */
} Outcome;

/* @chunk 0 means "read exactly what the parser wants". */
static void
run (const guint8 *data,
     gsize         size,
     gsize         chunk,
     Outcome      *outcome)
{
  TwpExtOrPortParser parser;
  gsize pos = 0;

  memset (outcome, 0, sizeof *outcome);
  outcome->error_code = -1;
  twp_extorport_parser_init (&parser);

  while (pos < size)
    {
      gsize wanted = twp_extorport_parser_wanted (&parser);
      gsize n = MIN (chunk != 0 ? chunk : wanted, size - pos);
      gsize consumed = G_MAXSIZE;
      TwpExtOrPortEvent event;
      GError *error = NULL;

      if (wanted == 0)
        break;
      if (!twp_extorport_parser_feed (&parser, data + pos, n, &consumed, &event, &error))
        {
          g_assert (error != NULL && error->domain == TWP_EXTORPORT_ERROR);
          g_assert (twp_extorport_parser_get_state (&parser) == TWP_EXTORPORT_PARSER_FAILED);
          outcome->error_code = error->code;
          g_error_free (error);
          break;
        }
      g_assert (error == NULL);
      g_assert (consumed <= n);
      /* Fed exactly what it wanted, the parser takes all of it. */
      if (chunk == 0)
        g_assert (consumed == n);
      pos += consumed;
      if (event != TWP_EXTORPORT_EVENT_NONE)
        {
          outcome->events |= 1u << event;
          outcome->n_events++;
        }
      else
        g_assert (consumed == n);
    }
  outcome->consumed = pos;
  outcome->state = twp_extorport_parser_get_state (&parser);
  g_assert (outcome->n_events <= 4);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  Outcome whole, exact;
  gsize chunk;

  if (size == 0)
    return 0;
  /* The first byte picks the "as they arrive" chunk size. */
  chunk = data[0] == 0 ? size : data[0];
  data++;
  size--;

  run (data, size, chunk, &whole);
  run (data, size, 0, &exact);

  g_assert (whole.events == exact.events);
  g_assert (whole.n_events == exact.n_events);
  g_assert (whole.error_code == exact.error_code);
  g_assert (whole.state == exact.state);
  /* Payload after OKAY is never consumed. */
  if (whole.state == TWP_EXTORPORT_PARSER_DONE)
    g_assert (whole.consumed == exact.consumed);
  return 0;
}
