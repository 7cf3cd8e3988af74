/* SPDX-License-Identifier: BSD-3-Clause */
/* RFC 6455 section 5 framing. The parser is a byte-driven state machine
 * (reading header -> in frame payload -> frame end) that never buffers data
 * payload: it unmasks in the caller's buffer and hands out slices of it.
 * Only control payloads (at most 125 bytes) are copied, so that a control
 * frame split across reads is still delivered whole. */
#define G_LOG_DOMAIN "twp-ws-frame"

#include "config.h"

#include "twp-ws-frame.h"

#include <string.h>

#define FIN_BIT 0x80
#define RSV_BITS 0x70
#define OPCODE_BITS 0x0f
#define MASK_BIT 0x80
#define LEN7_BITS 0x7f
#define LEN7_16BIT 126
#define LEN7_64BIT 127
/* 2 status bytes leave 123 for the reason in a 125-byte control payload. */
#define MAX_CLOSE_REASON (TWP_WS_MAX_CONTROL_PAYLOAD - 2)

gsize
twp_ws_frame_write_header (guint8       *out,
                           TwpWsOpcode   opcode,
                           gboolean      fin,
                           guint64       payload_len,
                           const guint8 *mask_key)
{
  gsize n = 0;
  guint8 mask_bit = mask_key != NULL ? MASK_BIT : 0;

  g_return_val_if_fail (out != NULL, 0);
  g_return_val_if_fail (payload_len <= G_MAXINT64, 0);

  out[n++] = (fin ? FIN_BIT : 0) | (opcode & OPCODE_BITS);

  /* RFC 6455 5.2: the minimal number of bytes MUST be used for the length. */
  if (payload_len <= 125)
    {
      out[n++] = mask_bit | (guint8) payload_len;
    }
  else if (payload_len <= G_MAXUINT16)
    {
      out[n++] = mask_bit | LEN7_16BIT;
      out[n++] = (guint8) (payload_len >> 8);
      out[n++] = (guint8) payload_len;
    }
  else
    {
      out[n++] = mask_bit | LEN7_64BIT;
      for (int shift = 56; shift >= 0; shift -= 8)
        out[n++] = (guint8) (payload_len >> shift);
    }

  if (mask_key != NULL)
    {
      memcpy (out + n, mask_key, 4);
      n += 4;
    }

  return n;
}

guint
twp_ws_mask (guint8       *data,
             gsize         len,
             const guint8  mask_key[4],
             guint         phase)
{
  guint8 key[8];
  guint64 key64;
  gsize i = 0;

  phase &= 3;
  if (len == 0)
    return phase;

  /* Byte-wise until the data pointer is 8-aligned, so the word loop below
   * does aligned loads and stores on every target. */
  while (i < len && ((guintptr) (data + i) & 7) != 0)
    {
      data[i++] ^= mask_key[phase];
      phase = (phase + 1) & 3;
    }

  /* The key rotated to the current phase, repeated over one word. memcpy
   * keeps this endianness-independent: byte j of the word XORs byte j of
   * the data. */
  for (guint j = 0; j < 8; j++)
    key[j] = mask_key[(phase + j) & 3];
  memcpy (&key64, key, sizeof key64);

  /* Whole words keep the phase: 8 is a multiple of the 4-byte key. Four
   * words per iteration let the compiler use wide vector registers. */
  for (; len - i >= 32; i += 32)
    {
      guint64 w[4];

      memcpy (w, data + i, sizeof w);
      w[0] ^= key64;
      w[1] ^= key64;
      w[2] ^= key64;
      w[3] ^= key64;
      memcpy (data + i, w, sizeof w);
    }
  for (; len - i >= 8; i += 8)
    {
      guint64 w;

      memcpy (&w, data + i, sizeof w);
      w ^= key64;
      memcpy (data + i, &w, sizeof w);
    }

  for (; i < len; i++)
    {
      data[i] ^= mask_key[phase];
      phase = (phase + 1) & 3;
    }

  return phase;
}

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above
 * U+10FFFF. Unlike g_utf8_validate_len() it accepts U+0000, which is valid
 * UTF-8 and therefore valid in a close reason. */
static gboolean
utf8_is_valid (const guint8 *s,
               gsize         len)
{
  gsize i = 0;

  while (i < len)
    {
      guint8 c = s[i];
      guint need;
      guint8 lo = 0x80;
      guint8 hi = 0xbf;

      if (c < 0x80)
        {
          i++;
          continue;
        }

      /* The second byte's range excludes overlongs (E0, F0), surrogates
       * (ED) and code points above U+10FFFF (F4). */
      if (c >= 0xc2 && c <= 0xdf)
        {
          need = 1;
        }
      else if (c >= 0xe0 && c <= 0xef)
        {
          need = 2;
          if (c == 0xe0)
            lo = 0xa0;
          else if (c == 0xed)
            hi = 0x9f;
        }
      else if (c >= 0xf0 && c <= 0xf4)
        {
          need = 3;
          if (c == 0xf0)
            lo = 0x90;
          else if (c == 0xf4)
            hi = 0x8f;
        }
      else
        {
          return FALSE;
        }

      if (len - i - 1 < need)
        return FALSE;
      if (s[i + 1] < lo || s[i + 1] > hi)
        return FALSE;
      for (guint k = 2; k <= need; k++)
        {
          if ((s[i + k] & 0xc0) != 0x80)
            return FALSE;
        }
      i += need + 1;
    }

  return TRUE;
}

/* RFC 6455 7.4.1/7.4.2 and the IANA registry: codes a peer may put on the
 * wire. 1004 is reserved, 1005, 1006 and 1015 are for local reporting only,
 * 1012-1014 and the rest below 3000 are not accepted from peers. */
static gboolean
close_code_is_valid (guint code)
{
  return (code >= 1000 && code <= 1003) ||
         (code >= 1007 && code <= 1011) ||
         (code >= 3000 && code <= 4999);
}

/* Returns 0 when valid, else the close code our answer must carry. */
static guint16
check_close_payload (const guint8  *payload,
                     gsize          len,
                     guint16       *code,
                     const char   **why)
{
  *code = TWP_WS_CLOSE_NO_STATUS;
  if (len == 0)
    return 0;
  if (len == 1)
    {
      *why = "close frame with a 1-byte payload";
      return TWP_WS_CLOSE_PROTOCOL_ERROR;
    }
  if (len > TWP_WS_MAX_CONTROL_PAYLOAD)
    {
      *why = "close frame payload too long";
      return TWP_WS_CLOSE_PROTOCOL_ERROR;
    }

  *code = (guint16) ((payload[0] << 8) | payload[1]);
  if (!close_code_is_valid (*code))
    {
      *why = "invalid close status code";
      return TWP_WS_CLOSE_PROTOCOL_ERROR;
    }
  if (!utf8_is_valid (payload + 2, len - 2))
    {
      *why = "close reason is not valid UTF-8";
      return TWP_WS_CLOSE_INVALID_PAYLOAD;
    }

  return 0;
}

guint16
twp_ws_parse_close_payload (const guint8  *payload,
                            gsize          len,
                            const char   **reason,
                            gsize         *reason_len)
{
  guint16 code;
  const char *why = NULL;

  if (reason != NULL)
    *reason = NULL;
  if (reason_len != NULL)
    *reason_len = 0;

  if (len > 0 && payload == NULL)
    return 0;
  if (check_close_payload (payload, len, &code, &why) != 0)
    return 0;

  if (reason != NULL)
    *reason = len > 2 ? (const char *) payload + 2 : "";
  if (reason_len != NULL)
    *reason_len = len > 2 ? len - 2 : 0;
  return code;
}

gsize
twp_ws_frame_write_close (guint8       *out,
                          guint16       code,
                          const char   *reason,
                          const guint8 *mask_key)
{
  guint8 payload[TWP_WS_MAX_CONTROL_PAYLOAD];
  gsize payload_len = 0;
  gsize header_len;

  g_return_val_if_fail (out != NULL, 0);

  /* 1005 is how we report "no status" locally; on the wire it is an empty
   * close payload (RFC 6455 7.4.1). */
  if (code != TWP_WS_CLOSE_NO_STATUS)
    {
      gsize reason_len = reason != NULL ? strlen (reason) : 0;

      payload[0] = (guint8) (code >> 8);
      payload[1] = (guint8) code;
      payload_len = 2;

      /* Cut at a character boundary: a split sequence would make the peer
       * fail the connection with 1007 instead of reading our reason. */
      if (reason_len > MAX_CLOSE_REASON)
        {
          reason_len = MAX_CLOSE_REASON;
          while (reason_len > 0 && ((guint8) reason[reason_len] & 0xc0) == 0x80)
            reason_len--;
        }
      /* Our reasons are ours, but never send a peer something it must
       * reject. */
      if (reason_len > 0 && utf8_is_valid ((const guint8 *) reason, reason_len))
        {
          memcpy (payload + 2, reason, reason_len);
          payload_len += reason_len;
        }
    }

  header_len = twp_ws_frame_write_header (out, TWP_WS_OPCODE_CLOSE, TRUE,
                                          payload_len, mask_key);
  if (payload_len > 0)
    memcpy (out + header_len, payload, payload_len);
  if (mask_key != NULL)
    twp_ws_mask (out + header_len, payload_len, mask_key, 0);

  return header_len + payload_len;
}

void
twp_ws_parser_init (TwpWsParser *parser,
                    gboolean     expect_masked,
                    guint64      max_message_size)
{
  g_return_if_fail (parser != NULL);

  memset (parser, 0, sizeof *parser);
  parser->expect_masked = expect_masked ? TRUE : FALSE;
  parser->max_message_size = max_message_size;
}

static gboolean
opcode_is_control (guint opcode)
{
  return (opcode & 0x8) != 0;
}

/* Header size once its first two bytes are known. */
static guint
header_size (const guint8 *header)
{
  guint size = 2;
  guint len7 = header[1] & LEN7_BITS;

  if (len7 == LEN7_16BIT)
    size += 2;
  else if (len7 == LEN7_64BIT)
    size += 8;
  if (header[1] & MASK_BIT)
    size += 4;
  return size;
}

/* The parser is dead after this: every later feed repeats the error. */
static gsize
parser_fail (TwpWsParser *parser,
             TwpWsEvent  *event,
             guint16      close_code,
             const char  *reason,
             gsize        consumed)
{
  parser->failed = TRUE;
  parser->error_code = close_code;
  parser->error_reason = reason;

  event->type = TWP_WS_EVENT_ERROR;
  event->close_code = close_code;
  event->reason = reason;
  return consumed;
}

/* Checks what the first two header bytes tell; NULL when fine. */
static const char *
check_first_bytes (const TwpWsParser *parser)
{
  guint8 b0 = parser->header[0];
  guint8 b1 = parser->header[1];
  guint opcode = b0 & OPCODE_BITS;
  gboolean masked = (b1 & MASK_BIT) != 0;

  /* We never negotiate extensions, so no RSV bit has a meaning. */
  if (b0 & RSV_BITS)
    return "reserved bits set";

  switch (opcode)
    {
    case TWP_WS_OPCODE_CONTINUATION:
      if (!parser->in_message)
        return "continuation frame without a message";
      break;
    case TWP_WS_OPCODE_TEXT:
    case TWP_WS_OPCODE_BINARY:
      if (parser->in_message)
        return "new data frame inside a fragmented message";
      break;
    case TWP_WS_OPCODE_CLOSE:
    case TWP_WS_OPCODE_PING:
    case TWP_WS_OPCODE_PONG:
      /* RFC 6455 5.5: control frames are never fragmented, at most 125. */
      if (!(b0 & FIN_BIT))
        return "fragmented control frame";
      if ((b1 & LEN7_BITS) > TWP_WS_MAX_CONTROL_PAYLOAD)
        return "control frame payload too long";
      break;
    default:
      return "unknown opcode";
    }

  /* RFC 6455 5.1: the server closes on an unmasked client frame, the
   * client on a masked server frame. */
  if (masked != parser->expect_masked)
    return parser->expect_masked ? "unmasked client frame" : "masked server frame";

  return NULL;
}

gsize
twp_ws_parser_feed (TwpWsParser *parser,
                    guint8      *buf,
                    gsize        len,
                    TwpWsEvent  *event)
{
  gsize pos = 0;

  g_return_val_if_fail (parser != NULL, 0);
  g_return_val_if_fail (event != NULL, 0);
  g_return_val_if_fail (buf != NULL || len == 0, 0);

  memset (event, 0, sizeof *event);

  if (parser->failed)
    return parser_fail (parser, event, parser->error_code,
                        parser->error_reason, 0);

  for (;;)
    {
      if (!parser->in_frame)
        {
          const char *why;
          gsize want;
          guint8 b1;
          guint64 payload_len;
          guint len7;

          /* Header, part 1: the first two bytes tell the opcode, flags and
           * whether more header follows. Reject what they show at once:
           * the peer may never send the rest. */
          if (parser->header_len < 2)
            {
              while (parser->header_len < 2 && pos < len)
                parser->header[parser->header_len++] = buf[pos++];
              if (parser->header_len < 2)
                {
                  event->type = TWP_WS_EVENT_NEED_MORE;
                  return pos;
                }
              why = check_first_bytes (parser);
              if (why != NULL)
                return parser_fail (parser, event, TWP_WS_CLOSE_PROTOCOL_ERROR,
                                    why, pos);
            }

          /* Part 2: extended length and mask key, buffered in
           * parser->header until complete (at most 12 more bytes). */
          want = header_size (parser->header) - parser->header_len;
          want = MIN (want, len - pos);
          if (want > 0)
            {
              memcpy (parser->header + parser->header_len, buf + pos, want);
              parser->header_len += (guint) want;
              pos += want;
            }
          if (parser->header_len < header_size (parser->header))
            {
              event->type = TWP_WS_EVENT_NEED_MORE;
              return pos;
            }

          b1 = parser->header[1];
          len7 = b1 & LEN7_BITS;
          if (len7 == LEN7_16BIT)
            {
              payload_len = ((guint64) parser->header[2] << 8) | parser->header[3];
            }
          else if (len7 == LEN7_64BIT)
            {
              payload_len = 0;
              for (guint j = 2; j < 10; j++)
                payload_len = (payload_len << 8) | parser->header[j];
              /* RFC 6455 5.2: the most significant bit MUST be 0. */
              if (payload_len >> 63)
                return parser_fail (parser, event, TWP_WS_CLOSE_PROTOCOL_ERROR,
                                    "64-bit payload length with the top bit set",
                                    pos);
            }
          else
            {
              payload_len = len7;
            }
          /* Non-minimal length encodings are accepted: RFC 6455 puts that
           * requirement on senders and it does not affect safety. */

          parser->frame_fin = (parser->header[0] & FIN_BIT) != 0;
          parser->frame_opcode = parser->header[0] & OPCODE_BITS;
          parser->frame_masked = (b1 & MASK_BIT) != 0;
          if (parser->frame_masked)
            memcpy (parser->mask_key,
                    parser->header + parser->header_len - 4, 4);
          parser->mask_phase = 0;
          parser->frame_remaining = payload_len;
          parser->header_len = 0;

          if (opcode_is_control (parser->frame_opcode))
            {
              parser->control_len = 0;
            }
          else
            {
              /* The bound covers the whole message across fragments and is
               * checked before any payload is read, so a peer cannot make
               * us (or the consumer) buffer more than max_message_size. */
              if (parser->frame_opcode != TWP_WS_OPCODE_CONTINUATION)
                {
                  parser->in_message = TRUE;
                  parser->message_started = FALSE;
                  parser->message_opcode = parser->frame_opcode;
                  parser->message_size = 0;
                }
              if (payload_len > parser->max_message_size - parser->message_size)
                return parser_fail (parser, event, TWP_WS_CLOSE_TOO_BIG,
                                    "message too big", pos);
              parser->message_size += payload_len;
            }
          parser->in_frame = TRUE;
        }

      if (opcode_is_control (parser->frame_opcode))
        {
          gsize n = MIN (parser->frame_remaining, len - pos);

          if (n > 0)
            {
              memcpy (parser->control + parser->control_len, buf + pos, n);
              if (parser->frame_masked)
                parser->mask_phase = twp_ws_mask (parser->control + parser->control_len,
                                                  n, parser->mask_key,
                                                  parser->mask_phase);
              parser->control_len += n;
              parser->frame_remaining -= n;
              pos += n;
            }
          if (parser->frame_remaining > 0)
            {
              event->type = TWP_WS_EVENT_NEED_MORE;
              return pos;
            }

          parser->in_frame = FALSE;
          if (parser->frame_opcode == TWP_WS_OPCODE_CLOSE)
            {
              guint16 code;
              const char *why = NULL;
              guint16 error = check_close_payload (parser->control,
                                                   parser->control_len,
                                                   &code, &why);

              if (error != 0)
                return parser_fail (parser, event, error, why, pos);
              event->close_code = code;
            }
          event->type = TWP_WS_EVENT_CONTROL;
          event->opcode = parser->frame_opcode;
          event->data = parser->control;
          event->len = parser->control_len;
          return pos;
        }

      if (parser->frame_remaining > 0)
        {
          gsize n;

          if (pos == len)
            {
              event->type = TWP_WS_EVENT_NEED_MORE;
              return pos;
            }
          n = MIN (parser->frame_remaining, len - pos);
          if (parser->frame_masked)
            parser->mask_phase = twp_ws_mask (buf + pos, n, parser->mask_key,
                                              parser->mask_phase);
          parser->frame_remaining -= n;

          event->type = TWP_WS_EVENT_DATA;
          event->opcode = parser->message_opcode;
          event->message_start = !parser->message_started;
          event->data = buf + pos;
          event->len = n;
          parser->message_started = TRUE;
          return pos + n;
        }

      /* A data frame's payload is complete (maybe it was empty). */
      parser->in_frame = FALSE;
      if (parser->frame_fin)
        {
          parser->in_message = FALSE;
          event->type = TWP_WS_EVENT_MESSAGE_END;
          event->opcode = parser->message_opcode;
          return pos;
        }
      /* Not final: go on with the next frame header. */
    }
}
