/* SPDX-License-Identifier: BSD-3-Clause */
/* The base64 subprotocol codec: RFC 4648 vectors, messages split at every
 * point, and every way a peer's message can be malformed. */
#define G_LOG_DOMAIN "twp-test-base64"

#include "config.h"

#include "twp-base64.h"

#include <string.h>

typedef struct {
  const char *plain;
  const char *encoded;
} Vector;

/* RFC 4648 section 10. */
static const Vector rfc4648_vectors[] = {
  { "", "" },
  { "f", "Zg==" },
  { "fo", "Zm8=" },
  { "foo", "Zm9v" },
  { "foob", "Zm9vYg==" },
  { "fooba", "Zm9vYmE=" },
  { "foobar", "Zm9vYmFy" },
  { "Hello", "SGVsbG8=" },
  { "Hello, WebSocket pluggable transport!",
    "SGVsbG8sIFdlYlNvY2tldCBwbHVnZ2FibGUgdHJhbnNwb3J0IQ==" },
};

/* Decodes @in as one message fed in pieces ending at @cuts (ascending,
 * @n_cuts of them). Output goes into an exactly sized heap buffer per feed
 * so AddressSanitizer catches any write past TWP_BASE64_DECODED_MAX. */
static GByteArray *
decode_split (const guint8  *in,
              gsize          len,
              const gsize   *cuts,
              guint          n_cuts,
              GError       **error)
{
  g_autoptr(GByteArray) result = g_byte_array_new ();
  TwpBase64Decoder decoder;
  gsize start = 0;

  twp_base64_decoder_init (&decoder);
  for (guint k = 0; k <= n_cuts; k++)
    {
      gsize end = k < n_cuts ? cuts[k] : len;
      gsize piece = end - start;
      g_autofree guint8 *piece_in = g_memdup2 (in + start, piece);
      g_autofree guint8 *out = g_malloc (MAX (TWP_BASE64_DECODED_MAX (piece), 1));
      gsize out_len = G_MAXSIZE;

      if (!twp_base64_decoder_feed (&decoder, piece_in, piece, out, &out_len, error))
        return NULL;
      g_assert_cmpuint (out_len, <=, TWP_BASE64_DECODED_MAX (piece));
      g_byte_array_append (result, out, (guint) out_len);
      start = end;
    }
  if (!twp_base64_decoder_finish (&decoder, error))
    return NULL;
  return g_steal_pointer (&result);
}

static GByteArray *
decode_whole (const char  *in,
              GError     **error)
{
  return decode_split ((const guint8 *) in, strlen (in), NULL, 0, error);
}

static char *
encode (const guint8 *in,
        gsize         len)
{
  /* Exact-size copies: the encoder's word loads must stay inside @in. */
  g_autofree guint8 *in_copy = g_memdup2 (in, len);
  char *out = g_malloc (TWP_BASE64_ENCODED_SIZE (len) + 1);
  gsize n = twp_base64_encode (in_copy, len, out);

  g_assert_cmpuint (n, ==, TWP_BASE64_ENCODED_SIZE (len));
  out[n] = '\0';
  return out;
}

static void
test_encode_vectors (void)
{
  for (gsize i = 0; i < G_N_ELEMENTS (rfc4648_vectors); i++)
    {
      const Vector *v = &rfc4648_vectors[i];
      g_autofree char *out = encode ((const guint8 *) v->plain, strlen (v->plain));

      g_assert_cmpstr (out, ==, v->encoded);
    }
}

static void
test_decode_vectors (void)
{
  for (gsize i = 0; i < G_N_ELEMENTS (rfc4648_vectors); i++)
    {
      const Vector *v = &rfc4648_vectors[i];
      g_autoptr(GError) error = NULL;
      g_autoptr(GByteArray) out = decode_whole (v->encoded, &error);

      g_assert_no_error (error);
      g_assert_nonnull (out);
      g_assert_cmpmem (out->data, out->len, v->plain, strlen (v->plain));
    }
}

/* The proposal: padding belongs to the message, so a message may be cut
 * anywhere, even inside a group or between the two '='. */
static void
test_decode_all_split_points (void)
{
  for (gsize i = 0; i < G_N_ELEMENTS (rfc4648_vectors); i++)
    {
      const Vector *v = &rfc4648_vectors[i];
      gsize len = strlen (v->encoded);

      for (gsize a = 0; a <= len; a++)
        {
          for (gsize b = a; b <= len; b++)
            {
              gsize cuts[2] = { a, b };
              g_autoptr(GError) error = NULL;
              g_autoptr(GByteArray) out =
                decode_split ((const guint8 *) v->encoded, len, cuts, 2, &error);

              g_assert_no_error (error);
              g_assert_nonnull (out);
              g_assert_cmpmem (out->data, out->len, v->plain, strlen (v->plain));
            }
        }
    }
}

static void
test_decode_empty_message (void)
{
  TwpBase64Decoder decoder;
  g_autoptr(GError) error = NULL;
  gsize out_len = 1;

  twp_base64_decoder_init (&decoder);
  g_assert_true (twp_base64_decoder_finish (&decoder, &error));
  g_assert_no_error (error);

  /* Empty feeds are no-ops, also after a padded group. */
  g_assert_true (twp_base64_decoder_feed (&decoder, NULL, 0, NULL, &out_len, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (out_len, ==, 0);
  g_assert_true (twp_base64_decoder_finish (&decoder, &error));
  g_assert_no_error (error);
}

static void
assert_decode_error (const char *const *pieces,
                     int                 expected)
{
  TwpBase64Decoder decoder;
  g_autoptr(GError) error = NULL;
  gboolean ok = TRUE;
  g_autofree char *joined = g_strjoinv ("|", (char **) pieces);

  g_test_message ("expecting error %d for \"%s\"", expected, joined);
  twp_base64_decoder_init (&decoder);
  for (guint k = 0; ok && pieces[k] != NULL; k++)
    {
      gsize len = strlen (pieces[k]);
      g_autofree guint8 *out = g_malloc (TWP_BASE64_DECODED_MAX (len) + 1);
      gsize out_len;

      ok = twp_base64_decoder_feed (&decoder, (const guint8 *) pieces[k], len,
                                    out, &out_len, &error);
    }
  if (ok)
    ok = twp_base64_decoder_finish (&decoder, &error);
  g_assert_false (ok);
  g_assert_error (error, TWP_BASE64_ERROR, expected);
}

static void
test_decode_invalid_characters (void)
{
  /* Every byte outside the alphabet, at every position of a group, in the
   * fast path (a whole group in one feed) and split. */
  for (int c = 0; c < 256; c++)
    {
      if (g_ascii_isalnum (c) || c == '+' || c == '/' || c == '=')
        continue;
      for (int pos = 0; pos < 4; pos++)
        {
          char group[9] = "QUJDRA==";
          TwpBase64Decoder decoder;
          g_autoptr(GError) error = NULL;
          guint8 out[6];
          gsize out_len;

          group[pos] = (char) c;
          /* One feed (fast path), cut just before the bad character, and
           * the bad character last in a feed (carry path). Explicit
           * lengths: c may be NUL. */
          for (int round = 0; round < 2; round++)
            {
              gsize cut = round == 0 ? 0 : (gsize) pos;
              gboolean ok;

              twp_base64_decoder_init (&decoder);
              ok = twp_base64_decoder_feed (&decoder, (const guint8 *) group,
                                            cut, out, &out_len, &error);
              g_assert_no_error (error);
              g_assert_true (ok);
              ok = twp_base64_decoder_feed (&decoder, (const guint8 *) group + cut,
                                            8 - cut, out, &out_len, &error);
              if (ok)
                ok = twp_base64_decoder_finish (&decoder, &error);
              g_assert_false (ok);
              g_assert_error (error, TWP_BASE64_ERROR,
                              TWP_BASE64_ERROR_INVALID_CHARACTER);
              g_clear_error (&error);
            }
          twp_base64_decoder_init (&decoder);
          g_assert_false (twp_base64_decoder_feed (&decoder, (const guint8 *) group,
                                                   (gsize) pos + 1, out, &out_len,
                                                   &error));
          g_assert_error (error, TWP_BASE64_ERROR,
                          TWP_BASE64_ERROR_INVALID_CHARACTER);
        }
    }

  /* Whitespace and the URL-safe alphabet are rejected (see twp-base64.c). */
  {
    const char *crlf[] = { "SGVs\r\nbG8=", NULL };
    const char *space[] = { "SGVs bG8=", NULL };
    const char *trailing_newline[] = { "SGVsbG8=", "\n", NULL };
    const char *url_safe[] = { "-_-_", NULL };

    assert_decode_error (crlf, TWP_BASE64_ERROR_INVALID_CHARACTER);
    assert_decode_error (space, TWP_BASE64_ERROR_INVALID_CHARACTER);
    assert_decode_error (trailing_newline, TWP_BASE64_ERROR_INVALID_CHARACTER);
    assert_decode_error (url_safe, TWP_BASE64_ERROR_INVALID_CHARACTER);
  }
}

static void
test_decode_misplaced_padding (void)
{
  const char *cases[][4] = {
    { "SG==", "more", NULL },         /* the proposal's example */
    { "SG==more", NULL },
    { "SGVsbG8=", "SGVsbG8=", NULL }, /* two padded messages glued */
    { "SGVsbG8=", "=", NULL },
    { "Zm9v", "Zg==", "Zg==", NULL },
    { "=AAA", NULL },
    { "A===", NULL },
    { "AB=C", NULL },
    { "AB=", "C", NULL },
    { "Zm9v=", NULL },                /* '=' first in a group */
    { "Zm9vY", "=", NULL },           /* '=' second in a group */
    { "Zh==", "Zh==", NULL },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    assert_decode_error (cases[i], TWP_BASE64_ERROR_MISPLACED_PADDING);
}

static void
test_decode_truncated (void)
{
  const char *cases[][4] = {
    { "Z", NULL },
    { "Zm", NULL },
    { "Zm9", NULL },
    { "Zm9vY", NULL },
    { "Zm=", NULL },
    { "Zm9v", "Zm", NULL },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    assert_decode_error (cases[i], TWP_BASE64_ERROR_TRUNCATED);
}

/* finish() resets the decoder, also after a truncated message, and padding
 * of one message does not affect the next. */
static void
test_decode_reset (void)
{
  TwpBase64Decoder decoder;
  g_autoptr(GError) error = NULL;
  guint8 out[16];
  gsize out_len;

  twp_base64_decoder_init (&decoder);
  g_assert_true (twp_base64_decoder_feed (&decoder, (const guint8 *) "Zm9", 3,
                                          out, &out_len, &error));
  g_assert_false (twp_base64_decoder_finish (&decoder, &error));
  g_assert_error (error, TWP_BASE64_ERROR, TWP_BASE64_ERROR_TRUNCATED);
  g_clear_error (&error);

  g_assert_true (twp_base64_decoder_feed (&decoder, (const guint8 *) "Zg==", 4,
                                          out, &out_len, &error));
  g_assert_cmpmem (out, out_len, "f", 1);
  g_assert_true (twp_base64_decoder_finish (&decoder, &error));
  g_assert_true (twp_base64_decoder_feed (&decoder, (const guint8 *) "Zm8=", 4,
                                          out, &out_len, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (out, out_len, "fo", 2);
  g_assert_true (twp_base64_decoder_finish (&decoder, &error));
}

/* Non-canonical trailing bits are accepted (as Go's StdEncoding does) and
 * ignored. */
static void
test_decode_noncanonical (void)
{
  const Vector cases[] = {
    { "Hello", "SGVsbG9=" },
    { "f", "Zh==" },
    { "f", "Zv==" },
    { "fo", "Zm9=" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GByteArray) out = decode_whole (cases[i].encoded, &error);

      g_assert_no_error (error);
      g_assert_cmpmem (out->data, out->len, cases[i].plain, strlen (cases[i].plain));
    }
}

static void
test_round_trip_random (void)
{
  for (gsize len = 0; len <= 300; len++)
    {
      g_autofree guint8 *data = g_malloc (len + 1);
      g_autofree char *encoded = NULL;
      gsize enc_len;

      for (gsize i = 0; i < len; i++)
        data[i] = (guint8) g_test_rand_int ();
      encoded = encode (data, len);
      enc_len = strlen (encoded);
      g_assert_cmpuint (enc_len % 4, ==, 0);

      /* Whole, and cut at two random points. */
      for (int round = 0; round < 4; round++)
        {
          g_autoptr(GError) error = NULL;
          g_autoptr(GByteArray) out = NULL;
          gsize cuts[2];

          cuts[0] = round == 0 ? enc_len : (gsize) g_test_rand_int_range (0, (gint32) enc_len + 1);
          cuts[1] = round == 0 ? enc_len : (gsize) g_test_rand_int_range ((gint32) cuts[0], (gint32) enc_len + 1);
          out = decode_split ((const guint8 *) encoded, enc_len, cuts, 2, &error);
          g_assert_no_error (error);
          g_assert_cmpmem (out->data, out->len, data, len);
        }
    }
}

/* Large input exercises the word-at-a-time encoder and the group decoder
 * over many iterations, against a plain reference encoder. */
static void
test_encode_reference (void)
{
  static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  gsize len = 100003;
  g_autofree guint8 *data = g_malloc (len);
  g_autofree char *encoded = NULL;
  g_autoptr(GString) reference = g_string_new (NULL);

  for (gsize i = 0; i < len; i++)
    data[i] = (guint8) g_test_rand_int ();
  for (gsize i = 0; i < len; i += 3)
    {
      guint32 g = (guint32) data[i] << 16;
      gsize n = MIN (3, len - i);

      if (n > 1)
        g |= (guint32) data[i + 1] << 8;
      if (n > 2)
        g |= data[i + 2];
      g_string_append_c (reference, alphabet[(g >> 18) & 63]);
      g_string_append_c (reference, alphabet[(g >> 12) & 63]);
      g_string_append_c (reference, n > 1 ? alphabet[(g >> 6) & 63] : '=');
      g_string_append_c (reference, n > 2 ? alphabet[g & 63] : '=');
    }

  encoded = encode (data, len);
  g_assert_cmpstr (encoded, ==, reference->str);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/base64/encode/rfc4648", test_encode_vectors);
  g_test_add_func ("/base64/encode/reference", test_encode_reference);
  g_test_add_func ("/base64/decode/rfc4648", test_decode_vectors);
  g_test_add_func ("/base64/decode/all-split-points", test_decode_all_split_points);
  g_test_add_func ("/base64/decode/empty-message", test_decode_empty_message);
  g_test_add_func ("/base64/decode/invalid-characters", test_decode_invalid_characters);
  g_test_add_func ("/base64/decode/misplaced-padding", test_decode_misplaced_padding);
  g_test_add_func ("/base64/decode/truncated", test_decode_truncated);
  g_test_add_func ("/base64/decode/reset", test_decode_reset);
  g_test_add_func ("/base64/decode/noncanonical-bits", test_decode_noncanonical);
  g_test_add_func ("/base64/round-trip", test_round_trip_random);

  return g_test_run ();
}
