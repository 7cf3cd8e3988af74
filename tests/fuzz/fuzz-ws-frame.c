/* SPDX-License-Identifier: BSD-3-Clause */
/* Feeds arbitrary bytes through the frame parser in chunks and checks the
 * invariants the relay relies on: DATA stays inside the input, control
 * frames fit their buffer, CLOSE payloads are valid, message_start is
 * consistent, and a failed parser stays failed.
 * Input: byte 0 = [chunking:4][max size:3][expect_masked:1], then the
 * stream. */
#define G_LOG_DOMAIN "twp-fuzz-ws-frame"

#include "config.h"

#include "twp-ws-frame.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

#define CHECK(cond) \
  do { if (!(cond)) { g_printerr ("invariant failed: %s\n", #cond); abort (); } } while (0)

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  static const guint64 max_sizes[8] = {
    0, 1, 125, 126, 1000, 65536, 16384, G_MAXUINT64,
  };
  static const gsize chunk_sizes[16] = {
    0, 1, 2, 3, 4, 5, 7, 9, 11, 13, 14, 15, 64, 125, 126, 1000,
  };
  TwpWsParser parser;
  guint8 *buf;
  gsize len, start = 0, chunk, total_data = 0;
  gboolean failed = FALSE, in_message = FALSE;
  gsize steps = 0;

  if (size < 1)
    return 0;

  twp_ws_parser_init (&parser, data[0] & 1, max_sizes[(data[0] >> 1) & 7]);
  chunk = chunk_sizes[data[0] >> 4];
  len = size - 1;
  /* An exact-size copy: the parser writes (unmasks) into it, and any
   * access past its end is caught by ASan. */
  buf = g_malloc (MAX (len, 1));
  if (len > 0)
    memcpy (buf, data + 1, len);
  if (chunk == 0)
    chunk = MAX (len, 1);

  do
    {
      gsize end = MIN (start + chunk, len);
      gsize pos = start;
      TwpWsEvent ev;

      do
        {
          gsize n = twp_ws_parser_feed (&parser, buf + pos, end - pos, &ev);

          /* Every call consumes input or emits an event that advances the
           * state; a bound on calls catches a parser that spins. */
          CHECK (++steps <= 4 * size + 16);
          CHECK (n <= end - pos);
          if (failed)
            CHECK (ev.type == TWP_WS_EVENT_ERROR && n == 0);

          switch (ev.type)
            {
            case TWP_WS_EVENT_NEED_MORE:
              CHECK (pos + n == end);
              break;
            case TWP_WS_EVENT_DATA:
              CHECK (ev.len > 0 && ev.len <= n);
              CHECK (ev.data == buf + pos + n - ev.len);
              CHECK (ev.message_start == !in_message);
              CHECK (ev.opcode == TWP_WS_OPCODE_TEXT ||
                     ev.opcode == TWP_WS_OPCODE_BINARY);
              in_message = TRUE;
              total_data += ev.len;
              break;
            case TWP_WS_EVENT_MESSAGE_END:
              in_message = FALSE;
              break;
            case TWP_WS_EVENT_CONTROL:
              CHECK (ev.len <= TWP_WS_MAX_CONTROL_PAYLOAD);
              CHECK (ev.opcode == TWP_WS_OPCODE_CLOSE ||
                     ev.opcode == TWP_WS_OPCODE_PING ||
                     ev.opcode == TWP_WS_OPCODE_PONG);
              if (ev.opcode == TWP_WS_OPCODE_CLOSE)
                CHECK (twp_ws_parse_close_payload (ev.data, ev.len, NULL, NULL) ==
                       ev.close_code && ev.close_code != 0);
              break;
            case TWP_WS_EVENT_ERROR:
              CHECK (ev.close_code == TWP_WS_CLOSE_PROTOCOL_ERROR ||
                     ev.close_code == TWP_WS_CLOSE_INVALID_PAYLOAD ||
                     ev.close_code == TWP_WS_CLOSE_TOO_BIG);
              CHECK (ev.reason != NULL);
              failed = TRUE;
              break;
            default:
              CHECK (!"unknown event");
            }
          pos += n;

          if (failed)
            {
              /* Once more: still the error, nothing consumed. */
              n = twp_ws_parser_feed (&parser, buf + pos, end - pos, &ev);
              CHECK (ev.type == TWP_WS_EVENT_ERROR && n == 0);
              break;
            }
        }
      while (ev.type != TWP_WS_EVENT_NEED_MORE);
      start = end;
    }
  while (!failed && start < len);

  CHECK (total_data <= len);
  g_free (buf);
  return 0;
}
