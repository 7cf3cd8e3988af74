/* SPDX-License-Identifier: BSD-3-Clause */
/* Decodes arbitrary input as one base64 message split at a point chosen
 * by the first byte, and checks it against an unsplit decoding and a
 * re-encoding; also round-trips the raw input through the encoder. */
#define G_LOG_DOMAIN "twp-fuzz-base64"

#include "config.h"

#include "twp-base64.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

#define CHECK(cond) \
  do { if (!(cond)) { g_printerr ("invariant failed: %s\n", #cond); abort (); } } while (0)

/* Decodes @in in up to two feeds; returns the output (exact-size feeds,
 * so ASan sees overruns) or NULL. */
static guint8 *
decode (const guint8 *in,
        gsize         len,
        gsize         cut,
        gsize        *out_len,
        int          *error_code)
{
  TwpBase64Decoder decoder;
  GError *error = NULL;
  guint8 *out = g_malloc (TWP_BASE64_DECODED_MAX (len) + 1);
  guint8 *first_out = g_malloc (TWP_BASE64_DECODED_MAX (cut) + 1);
  guint8 *second_out = g_malloc (TWP_BASE64_DECODED_MAX (len - cut) + 1);
  gsize n1 = 0, n2 = 0;
  gboolean ok;

  twp_base64_decoder_init (&decoder);
  ok = twp_base64_decoder_feed (&decoder, in, cut, first_out, &n1, &error) &&
       twp_base64_decoder_feed (&decoder, in + cut, len - cut, second_out, &n2, &error) &&
       twp_base64_decoder_finish (&decoder, &error);
  if (ok)
    {
      CHECK (n1 <= TWP_BASE64_DECODED_MAX (cut));
      CHECK (n2 <= TWP_BASE64_DECODED_MAX (len - cut));
      memcpy (out, first_out, n1);
      memcpy (out + n1, second_out, n2);
      *out_len = n1 + n2;
      *error_code = -1;
    }
  else
    {
      CHECK (error != NULL && error->domain == TWP_BASE64_ERROR);
      *error_code = error->code;
      g_clear_pointer (&out, g_free);
    }
  g_clear_error (&error);
  g_free (first_out);
  g_free (second_out);
  return out;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  const guint8 *in;
  gsize len, cut, out_len = 0, whole_len = 0;
  guint8 *copy, *out, *whole;
  int error_code, whole_error;

  if (size < 1)
    return 0;
  in = data + 1;
  len = size - 1;
  cut = len * data[0] / 255;
  /* Never NULL (pointer arithmetic on it below), exact size for ASan. */
  copy = g_malloc (MAX (len, 1));
  if (len > 0)
    memcpy (copy, in, len);

  out = decode (copy, len, cut, &out_len, &error_code);
  whole = decode (copy, len, len, &whole_len, &whole_error);
  /* Where the message is cut changes nothing, not even which error. */
  CHECK ((out == NULL) == (whole == NULL));
  CHECK (error_code == whole_error);
  if (out != NULL)
    {
      char *encoded = g_malloc (TWP_BASE64_ENCODED_SIZE (out_len) + 1);
      gsize enc_len = twp_base64_encode (out, out_len, encoded);
      guint8 *again;
      gsize again_len = 0;
      int again_error;

      CHECK (whole_len == out_len && memcmp (out, whole, out_len) == 0);
      /* A valid message re-encodes to its own length; only the bits below
       * the last byte (non-canonical trailing bits) may differ. */
      CHECK (enc_len == len);
      CHECK (len < 4 || memcmp (encoded, copy, len - 4) == 0);
      again = decode ((const guint8 *) encoded, enc_len, enc_len / 2, &again_len,
                      &again_error);
      CHECK (again != NULL);
      CHECK (again_len == out_len && memcmp (again, out, out_len) == 0);
      g_free (again);
      g_free (encoded);
    }

  /* The encoder round trip on the raw input. */
  {
    char *encoded = g_malloc (TWP_BASE64_ENCODED_SIZE (len) + 1);
    gsize enc_len = twp_base64_encode (copy, len, encoded);
    guint8 *back;
    gsize back_len = 0;
    int back_error;

    CHECK (enc_len == TWP_BASE64_ENCODED_SIZE (len));
    back = decode ((const guint8 *) encoded, enc_len, cut * enc_len / MAX (len, 1),
                   &back_len, &back_error);
    CHECK (back != NULL && back_len == len && memcmp (back, copy, len) == 0);
    g_free (back);
    g_free (encoded);
  }

  g_free (out);
  g_free (whole);
  g_free (copy);
  return 0;
}
