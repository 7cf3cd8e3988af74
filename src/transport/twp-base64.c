/* SPDX-License-Identifier: BSD-3-Clause */
/* Base64 (RFC 4648 section 4) for the "base64" WebSocket subprotocol.
 *
 * Decoding is strict about the alphabet: no whitespace, no URL-safe
 * characters, '=' only as the last one or two characters of a message.
 * Go's base64.StdEncoding (used by the reference implementation) skips
 * \r and \n, but no sender of this subprotocol emits them (browsers'
 * btoa() does not) and accepting them would only widen the attack surface.
 * Non-canonical trailing bits ("SGVsbG9=" for "Hello") are ACCEPTED and
 * ignored, as StdEncoding does: rejecting them buys nothing for a byte
 * pipe and could break interoperability with lenient senders.
 *
 * Both directions are table-driven and handle whole groups in a fast path;
 * the tables are built at compile time, so nothing is initialised or
 * allocated at run time. */
#define G_LOG_DOMAIN "twp-base64"

#include "config.h"

#include "twp-base64.h"

#include <string.h>

G_DEFINE_QUARK (twp-base64-error-quark, twp_base64_error)

static const char encode_table[64] =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Sextet value of an alphabet character; PAD for '=', BAD otherwise. */
#define PAD 64
#define BAD 65
#define SEXTET(c) \
  ((c) >= 'A' && (c) <= 'Z' ? (c) - 'A' : \
   (c) >= 'a' && (c) <= 'z' ? (c) - 'a' + 26 : \
   (c) >= '0' && (c) <= '9' ? (c) - '0' + 52 : \
   (c) == '+' ? 62 : (c) == '/' ? 63 : (c) == '=' ? PAD : BAD)

/* Expands F(c) for every byte value, to fill 256-entry tables with
 * constant expressions. */
#define ROW16(F, b) \
  F ((b) + 0), F ((b) + 1), F ((b) + 2), F ((b) + 3), \
  F ((b) + 4), F ((b) + 5), F ((b) + 6), F ((b) + 7), \
  F ((b) + 8), F ((b) + 9), F ((b) + 10), F ((b) + 11), \
  F ((b) + 12), F ((b) + 13), F ((b) + 14), F ((b) + 15)
#define ALL256(F) \
  ROW16 (F, 0x00), ROW16 (F, 0x10), ROW16 (F, 0x20), ROW16 (F, 0x30), \
  ROW16 (F, 0x40), ROW16 (F, 0x50), ROW16 (F, 0x60), ROW16 (F, 0x70), \
  ROW16 (F, 0x80), ROW16 (F, 0x90), ROW16 (F, 0xa0), ROW16 (F, 0xb0), \
  ROW16 (F, 0xc0), ROW16 (F, 0xd0), ROW16 (F, 0xe0), ROW16 (F, 0xf0)

/* The explicit cast: clang checks each branch of the conditional for
 * overflow, including branches never taken for that character. */
#define SEXTET8(c) ((guint8) (SEXTET (c)))

static const guint8 sextet_table[256] = { ALL256 (SEXTET8) };

/* Fast path: one table per position in a 4-character group, holding the
 * sextet already shifted into its place in the 24-bit group. Anything but
 * an alphabet character (including '=') sets bit 24, so one OR of four
 * lookups both decodes the group and tells whether it needs the slow
 * path. */
#define SPECIAL (1u << 24)
#define SHIFTED(c, shift) \
  (SEXTET (c) >= PAD ? SPECIAL : (guint32) SEXTET (c) << (shift))
#define SHIFT18(c) SHIFTED (c, 18)
#define SHIFT12(c) SHIFTED (c, 12)
#define SHIFT6(c) SHIFTED (c, 6)
#define SHIFT0(c) SHIFTED (c, 0)

static const guint32 decode_table0[256] = { ALL256 (SHIFT18) };
static const guint32 decode_table1[256] = { ALL256 (SHIFT12) };
static const guint32 decode_table2[256] = { ALL256 (SHIFT6) };
static const guint32 decode_table3[256] = { ALL256 (SHIFT0) };

gsize
twp_base64_encode (const guint8 *in,
                   gsize         len,
                   char         *out)
{
  gsize i = 0;
  char *o = out;

  g_return_val_if_fail (in != NULL || len == 0, 0);
  g_return_val_if_fail (out != NULL || len == 0, 0);

  /* Fast path: 6 input bytes -> 8 characters from one 8-byte load (the
   * load reads 2 bytes past the group, hence the bound). */
  for (; len - i >= 8; i += 6)
    {
      guint64 w;

      memcpy (&w, in + i, sizeof w);
      w = GUINT64_FROM_BE (w);
      o[0] = encode_table[(w >> 58) & 63];
      o[1] = encode_table[(w >> 52) & 63];
      o[2] = encode_table[(w >> 46) & 63];
      o[3] = encode_table[(w >> 40) & 63];
      o[4] = encode_table[(w >> 34) & 63];
      o[5] = encode_table[(w >> 28) & 63];
      o[6] = encode_table[(w >> 22) & 63];
      o[7] = encode_table[(w >> 16) & 63];
      o += 8;
    }

  for (; len - i >= 3; i += 3)
    {
      guint32 g = ((guint32) in[i] << 16) | ((guint32) in[i + 1] << 8) | in[i + 2];

      o[0] = encode_table[(g >> 18) & 63];
      o[1] = encode_table[(g >> 12) & 63];
      o[2] = encode_table[(g >> 6) & 63];
      o[3] = encode_table[g & 63];
      o += 4;
    }

  if (len - i == 1)
    {
      o[0] = encode_table[in[i] >> 2];
      o[1] = encode_table[(in[i] & 0x03) << 4];
      o[2] = '=';
      o[3] = '=';
      o += 4;
    }
  else if (len - i == 2)
    {
      o[0] = encode_table[in[i] >> 2];
      o[1] = encode_table[((in[i] & 0x03) << 4) | (in[i + 1] >> 4)];
      o[2] = encode_table[(in[i + 1] & 0x0f) << 2];
      o[3] = '=';
      o += 4;
    }

  return (gsize) (o - out);
}

void
twp_base64_decoder_init (TwpBase64Decoder *decoder)
{
  g_return_if_fail (decoder != NULL);

  memset (decoder, 0, sizeof *decoder);
}

/* Slow path, one character at a time: keeps the sextets of an incomplete
 * group in carry[] (PAD for '=') and enforces where padding may go. */
static gboolean
push_char (TwpBase64Decoder  *decoder,
           guint8             c,
           guint8           **out,
           GError           **error)
{
  guint8 v = sextet_table[c];
  guint pos = decoder->carry_len;
  guint8 *carry = decoder->carry;

  if (v == BAD)
    {
      g_set_error (error, TWP_BASE64_ERROR, TWP_BASE64_ERROR_INVALID_CHARACTER,
                   "Invalid character 0x%02x in base64 message", c);
      return FALSE;
    }
  /* After a padded group only the end of the message may follow; '=' may
   * only be the 3rd and 4th, or the 4th character of the final group. */
  if (decoder->padded ||
      (v == PAD && pos < 2) ||
      (v != PAD && pos == 3 && carry[2] == PAD))
    {
      g_set_error_literal (error, TWP_BASE64_ERROR,
                           TWP_BASE64_ERROR_MISPLACED_PADDING,
                           "Padding in the middle of a base64 message");
      return FALSE;
    }

  carry[pos] = v;
  decoder->carry_len = pos + 1;
  if (decoder->carry_len < 4)
    return TRUE;

  /* A complete group. Bits below the last whole byte of a padded group
   * are ignored (see the top of the file). */
  decoder->carry_len = 0;
  *(*out)++ = (guint8) ((carry[0] << 2) | (carry[1] >> 4));
  if (carry[2] == PAD)
    {
      decoder->padded = TRUE;
      return TRUE;
    }
  *(*out)++ = (guint8) ((carry[1] << 4) | (carry[2] >> 2));
  if (carry[3] == PAD)
    {
      decoder->padded = TRUE;
      return TRUE;
    }
  *(*out)++ = (guint8) ((carry[2] << 6) | carry[3]);
  return TRUE;
}

gboolean
twp_base64_decoder_feed (TwpBase64Decoder  *decoder,
                         const guint8      *in,
                         gsize              len,
                         guint8            *out,
                         gsize             *out_len,
                         GError           **error)
{
  gsize i = 0;
  guint8 *o = out;

  g_return_val_if_fail (decoder != NULL, FALSE);
  g_return_val_if_fail (in != NULL || len == 0, FALSE);
  g_return_val_if_fail (out != NULL || len == 0, FALSE);
  g_return_val_if_fail (out_len != NULL, FALSE);

  *out_len = 0;

  /* Complete a group left over from the previous feed. */
  while (decoder->carry_len > 0 && i < len)
    {
      if (!push_char (decoder, in[i++], &o, error))
        return FALSE;
    }

  while (i < len)
    {
      /* Fast path: whole groups of four alphabet characters, never after
       * padding (push_char() rejects whatever follows it). */
      while (!decoder->padded && len - i >= 4)
        {
          guint32 g = decode_table0[in[i]] | decode_table1[in[i + 1]] |
                      decode_table2[in[i + 2]] | decode_table3[in[i + 3]];

          if (g & SPECIAL)
            break;
          o[0] = (guint8) (g >> 16);
          o[1] = (guint8) (g >> 8);
          o[2] = (guint8) g;
          o += 3;
          i += 4;
        }

      /* Padding, an error, or the tail of the input: take one group (or
       * what is left of the input) character by character, then try the
       * fast path again. */
      for (guint k = 0; k < 4 && i < len; k++)
        {
          if (!push_char (decoder, in[i++], &o, error))
            return FALSE;
        }
    }

  *out_len = (gsize) (o - out);
  return TRUE;
}

gboolean
twp_base64_decoder_finish (TwpBase64Decoder  *decoder,
                           GError           **error)
{
  gboolean complete;

  g_return_val_if_fail (decoder != NULL, FALSE);

  /* A message's length must be a multiple of 4 (padding included). */
  complete = decoder->carry_len == 0;
  twp_base64_decoder_init (decoder);
  if (!complete)
    {
      g_set_error_literal (error, TWP_BASE64_ERROR, TWP_BASE64_ERROR_TRUNCATED,
                           "Base64 message ends inside a group");
      return FALSE;
    }
  return TRUE;
}
