/* SPDX-License-Identifier: BSD-3-Clause */
/* RFC 6455 framing: the proposal's examples (with ERRATA.md), header
 * encoding, masking against a byte-wise reference, and the parser fed at
 * every split point and with every protocol violation we must close on. */
#define G_LOG_DOMAIN "twp-test-ws-frame"

#include "config.h"

#include "twp-ws-frame.h"
#include "twp-base64.h"

#include <string.h>

/* ---- helpers ---------------------------------------------------------- */

/* What a parser made of a byte stream, in a form two runs can compare:
 * "M1:<hex>;" per data message, "C9:<hex>;" per control frame, "E1002;"
 * for an error (which ends the run). */
typedef struct {
  GString *trace;
  GByteArray *message;   /* data of the message in progress */
  gboolean in_message;
  guint n_data_events;
  guint n_messages;
  guint16 error_code;
  gsize consumed;        /* input bytes consumed before the last event */
} Outcome;

static void
outcome_clear (Outcome *o)
{
  if (o->trace != NULL)
    g_string_free (o->trace, TRUE);
  if (o->message != NULL)
    g_byte_array_unref (o->message);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Outcome, outcome_clear)

static void
append_hex (GString      *s,
            const guint8 *data,
            gsize         len)
{
  for (gsize i = 0; i < len; i++)
    g_string_append_printf (s, "%02x", data[i]);
}

/* Records one event and checks the invariants every event must satisfy. */
static void
outcome_add (Outcome          *o,
             const TwpWsEvent *ev)
{
  switch (ev->type)
    {
    case TWP_WS_EVENT_NEED_MORE:
      break;
    case TWP_WS_EVENT_DATA:
      g_assert_cmpuint (ev->len, >, 0);
      g_assert_true (ev->opcode == TWP_WS_OPCODE_TEXT ||
                     ev->opcode == TWP_WS_OPCODE_BINARY);
      /* message_start marks the first non-empty frame of a message. */
      g_assert_cmpint (ev->message_start, ==, !o->in_message);
      o->in_message = TRUE;
      g_byte_array_append (o->message, ev->data, (guint) ev->len);
      o->n_data_events++;
      break;
    case TWP_WS_EVENT_MESSAGE_END:
      g_string_append_printf (o->trace, "M%d:", ev->opcode);
      append_hex (o->trace, o->message->data, o->message->len);
      g_string_append_c (o->trace, ';');
      g_byte_array_set_size (o->message, 0);
      o->in_message = FALSE;
      o->n_messages++;
      break;
    case TWP_WS_EVENT_CONTROL:
      g_assert_cmpuint (ev->len, <=, TWP_WS_MAX_CONTROL_PAYLOAD);
      g_string_append_printf (o->trace, "C%d:", ev->opcode);
      append_hex (o->trace, ev->data, ev->len);
      if (ev->opcode == TWP_WS_OPCODE_CLOSE)
        g_string_append_printf (o->trace, "/%u", ev->close_code);
      g_string_append_c (o->trace, ';');
      break;
    case TWP_WS_EVENT_ERROR:
      g_assert_nonnull (ev->reason);
      g_string_append_printf (o->trace, "E%u;", ev->close_code);
      o->error_code = ev->close_code;
      break;
    default:
      g_assert_not_reached ();
    }
}

/* Feeds @stream (copied: the parser unmasks in place) in pieces of
 * @chunk bytes (0: all at once) until the end or an error. */
static void
run_parser (Outcome      *o,
            gboolean      expect_masked,
            guint64       max_message_size,
            const guint8 *stream,
            gsize         len,
            gsize         chunk)
{
  TwpWsParser parser;
  g_autofree guint8 *copy = g_memdup2 (stream, len);
  gsize start = 0;

  o->trace = g_string_new (NULL);
  o->message = g_byte_array_new ();
  o->in_message = FALSE;
  o->n_data_events = 0;
  o->n_messages = 0;
  o->error_code = 0;
  o->consumed = 0;

  twp_ws_parser_init (&parser, expect_masked, max_message_size);
  if (chunk == 0)
    chunk = MAX (len, 1);

  do
    {
      gsize end = MIN (start + chunk, len);
      gsize pos = start;
      TwpWsEvent ev;

      do
        {
          gsize n = twp_ws_parser_feed (&parser, copy + pos, end - pos, &ev);

          g_assert_cmpuint (n, <=, end - pos);
          pos += n;
          o->consumed = pos;
          outcome_add (o, &ev);
          if (ev.type == TWP_WS_EVENT_ERROR)
            {
              TwpWsEvent again;

              /* The parser is dead: the same error, nothing consumed. */
              g_assert_cmpuint (twp_ws_parser_feed (&parser, copy + pos,
                                                    end - pos, &again), ==, 0);
              g_assert_cmpint (again.type, ==, TWP_WS_EVENT_ERROR);
              g_assert_cmpuint (again.close_code, ==, ev.close_code);
              return;
            }
        }
      while (ev.type != TWP_WS_EVENT_NEED_MORE);
      g_assert_cmpuint (pos, ==, end);
      start = end;
    }
  while (start < len);
}

/* Appends one frame; @mask_key NULL for unmasked. */
static void
append_frame (GByteArray   *stream,
              guint8        first_byte,
              const void   *payload,
              gsize         len,
              const guint8 *mask_key)
{
  guint8 header[TWP_WS_MAX_HEADER_SIZE];
  gsize header_len;
  g_autofree guint8 *body = g_memdup2 (payload, len);

  header_len = twp_ws_frame_write_header (header, first_byte & 0x0f,
                                          (first_byte & 0x80) != 0, len,
                                          mask_key);
  g_byte_array_append (stream, header, (guint) header_len);
  if (mask_key != NULL)
    twp_ws_mask (body, len, mask_key, 0);
  if (len > 0)
    g_byte_array_append (stream, body, (guint) len);
}

static char *
decode_base64 (const guint8 *text,
               gsize         len)
{
  TwpBase64Decoder decoder;
  g_autoptr(GError) error = NULL;
  g_autofree char *out = g_malloc0 (TWP_BASE64_DECODED_MAX (len) + 1);
  gsize out_len;

  twp_base64_decoder_init (&decoder);
  g_assert_true (twp_base64_decoder_feed (&decoder, text, len, (guint8 *) out,
                                          &out_len, &error));
  g_assert_no_error (error);
  g_assert_true (twp_base64_decoder_finish (&decoder, &error));
  out[out_len] = '\0';
  return g_steal_pointer (&out);
}

/* Parses a stream expected to hold exactly one text message; returns it
 * base64-decoded. */
static char *
parse_one_base64_message (const guint8 *stream,
                          gsize         len,
                          gboolean      expect_masked)
{
  g_auto(Outcome) o = { 0 };
  TwpWsParser parser;
  g_autofree guint8 *copy = g_memdup2 (stream, len);
  g_autoptr(GByteArray) text = g_byte_array_new ();
  gsize pos = 0;
  TwpWsEvent ev;
  gboolean ended = FALSE;

  twp_ws_parser_init (&parser, expect_masked, 21848);
  do
    {
      pos += twp_ws_parser_feed (&parser, copy + pos, len - pos, &ev);
      g_assert_cmpint (ev.type, !=, TWP_WS_EVENT_ERROR);
      g_assert_cmpint (ev.type, !=, TWP_WS_EVENT_CONTROL);
      if (ev.type == TWP_WS_EVENT_DATA)
        {
          g_assert_cmpint (ev.opcode, ==, TWP_WS_OPCODE_TEXT);
          g_assert_false (ended);
          g_byte_array_append (text, ev.data, (guint) ev.len);
        }
      else if (ev.type == TWP_WS_EVENT_MESSAGE_END)
        {
          g_assert_cmpint (ev.opcode, ==, TWP_WS_OPCODE_TEXT);
          ended = TRUE;
        }
    }
  while (ev.type != TWP_WS_EVENT_NEED_MORE);
  g_assert_cmpuint (pos, ==, len);
  g_assert_true (ended);

  /* The same through the byte-at-a-time path. */
  run_parser (&o, expect_masked, 21848, stream, len, 1);
  g_assert_cmpuint (o.n_messages, ==, 1);
  g_assert_cmpuint (o.error_code, ==, 0);

  return decode_base64 (text->data, text->len);
}

/* ---- the proposal's examples (ERRATA.md corrections) ------------------ */

static void
test_proposal_one_frame (void)
{
  static const guint8 stream[] = { 0x81, 0x08, 'S', 'G', 'V', 's', 'b', 'G', '8', '=' };
  g_autofree char *plain = parse_one_base64_message (stream, sizeof stream, FALSE);

  g_assert_cmpstr (plain, ==, "Hello");
}

static void
test_proposal_two_frames (void)
{
  static const guint8 stream[] = {
    0x01, 0x02, 'S', 'G',
    0x80, 0x06, 'V', 's', 'b', 'G', '8', '=',
  };
  g_autofree char *plain = parse_one_base64_message (stream, sizeof stream, FALSE);

  g_assert_cmpstr (plain, ==, "Hello");
}

static void
test_proposal_masked (void)
{
  static const guint8 stream[] = {
    0x81, 0x88, 0x12, 0x34, 0x56, 0x78,
    0x41, 0x73, 0x00, 0x0b, 0x70, 0x73, 0x6e, 0x45,
  };
  static const guint8 key[4] = { 0x12, 0x34, 0x56, 0x78 };
  g_autofree char *plain = parse_one_base64_message (stream, sizeof stream, TRUE);
  guint8 built[sizeof stream];
  gsize n;

  g_assert_cmpstr (plain, ==, "Hello");

  /* And our writer produces exactly these bytes. */
  n = twp_ws_frame_write_header (built, TWP_WS_OPCODE_TEXT, TRUE, 8, key);
  g_assert_cmpuint (n, ==, 6);
  memcpy (built + n, "SGVsbG8=", 8);
  g_assert_cmpuint (twp_ws_mask (built + n, 8, key, 0), ==, 0);
  g_assert_cmpmem (built, sizeof built, stream, sizeof stream);

  /* A client parser must refuse it: servers never mask. */
  {
    g_auto(Outcome) o = { 0 };

    run_parser (&o, FALSE, 1000, stream, sizeof stream, 0);
    g_assert_cmpuint (o.error_code, ==, TWP_WS_CLOSE_PROTOCOL_ERROR);
  }
}

/* ---- header encoding ------------------------------------------------- */

static void
test_header_lengths (void)
{
  static const struct {
    guint64 len;
    gsize header_len;
    guint8 bytes[10];
  } cases[] = {
    { 0, 2, { 0x82, 0x00 } },
    { 125, 2, { 0x82, 0x7d } },
    { 126, 4, { 0x82, 0x7e, 0x00, 0x7e } },
    { 65535, 4, { 0x82, 0x7e, 0xff, 0xff } },
    { 65536, 10, { 0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00 } },
    { G_GUINT64_CONSTANT (1) << 32, 10, { 0x82, 0x7f, 0, 0, 0, 0x01, 0, 0, 0, 0 } },
  };
  static const guint8 key[4] = { 0xa1, 0xb2, 0xc3, 0xd4 };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      guint8 out[TWP_WS_MAX_HEADER_SIZE];
      gsize n;

      n = twp_ws_frame_write_header (out, TWP_WS_OPCODE_BINARY, TRUE, cases[i].len, NULL);
      g_assert_cmpmem (out, n, cases[i].bytes, cases[i].header_len);

      /* Masked: the mask bit and the key after the length. */
      n = twp_ws_frame_write_header (out, TWP_WS_OPCODE_BINARY, TRUE, cases[i].len, key);
      g_assert_cmpuint (n, ==, cases[i].header_len + 4);
      g_assert_cmphex (out[1], ==, cases[i].bytes[1] | 0x80);
      g_assert_cmpmem (out + 2, cases[i].header_len - 2,
                       cases[i].bytes + 2, cases[i].header_len - 2);
      g_assert_cmpmem (out + cases[i].header_len, 4, key, 4);

      /* The parser reads the same length back: exactly at the bound it
       * waits for payload, one below it fails with 1009. */
      {
        g_auto(Outcome) ok = { 0 };
        g_auto(Outcome) too_big = { 0 };

        run_parser (&ok, TRUE, cases[i].len, out, n, 1);
        g_assert_cmpuint (ok.error_code, ==, 0);
        if (cases[i].len > 0)
          {
            run_parser (&too_big, TRUE, cases[i].len - 1, out, n, 0);
            g_assert_cmpuint (too_big.error_code, ==, TWP_WS_CLOSE_TOO_BIG);
            g_assert_cmpuint (too_big.consumed, ==, n);
          }
      }
    }

  /* FIN and opcode bits. */
  {
    guint8 out[TWP_WS_MAX_HEADER_SIZE];

    twp_ws_frame_write_header (out, TWP_WS_OPCODE_TEXT, FALSE, 3, NULL);
    g_assert_cmphex (out[0], ==, 0x01);
    twp_ws_frame_write_header (out, TWP_WS_OPCODE_CONTINUATION, TRUE, 3, NULL);
    g_assert_cmphex (out[0], ==, 0x80);
    twp_ws_frame_write_header (out, TWP_WS_OPCODE_PONG, TRUE, 3, NULL);
    g_assert_cmphex (out[0], ==, 0x8a);
  }
}

/* ---- masking ----------------------------------------------------------- */

static void
mask_reference (guint8       *data,
                gsize         len,
                const guint8 *key,
                guint         phase)
{
  for (gsize i = 0; i < len; i++)
    data[i] ^= key[(phase + i) % 4];
}

static void
test_mask_alignments (void)
{
  guint8 key[4];
  guint8 original[300 + 8];

  for (int k = 0; k < 4; k++)
    key[k] = (guint8) g_test_rand_int ();
  for (gsize i = 0; i < sizeof original; i++)
    original[i] = (guint8) g_test_rand_int ();

  for (gsize len = 0; len <= 300; len++)
    {
      for (gsize offset = 0; offset < 8; offset++)
        {
          for (guint phase = 0; phase < 4; phase++)
            {
              guint8 buf[sizeof original];
              guint8 expected[sizeof original];

              memcpy (buf, original, sizeof buf);
              memcpy (expected, original, sizeof expected);
              mask_reference (expected + offset, len, key, phase);
              g_assert_cmpuint (twp_ws_mask (buf + offset, len, key, phase),
                                ==, (phase + len) % 4);
              /* Only the range is touched, and it matches byte by byte. */
              g_assert_cmpmem (buf, sizeof buf, expected, sizeof expected);

              /* Masking twice restores the data. */
              twp_ws_mask (buf + offset, len, key, phase);
              g_assert_cmpmem (buf, sizeof buf, original, sizeof original);
            }
        }
    }
}

/* Unmasking in arbitrary pieces, threading the returned phase, equals
 * unmasking at once: what the parser does across reads. */
static void
test_mask_pieces (void)
{
  const gsize len = 70000;
  g_autofree guint8 *whole = g_malloc (len);
  g_autofree guint8 *pieces = NULL;
  guint8 key[4] = { 0x01, 0x80, 0xfe, 0x37 };
  guint phase = 0;
  gsize pos = 0;

  for (gsize i = 0; i < len; i++)
    whole[i] = (guint8) g_test_rand_int ();
  pieces = g_memdup2 (whole, len);

  twp_ws_mask (whole, len, key, 0);
  while (pos < len)
    {
      gsize n = (gsize) g_test_rand_int_range (0, 100);

      n = MIN (n, len - pos);

      phase = twp_ws_mask (pieces + pos, n, key, phase);
      pos += n;
    }
  g_assert_cmpuint (phase, ==, len % 4);
  g_assert_cmpmem (pieces, len, whole, len);
}

/* ---- parser: valid streams ------------------------------------------- */

static GByteArray *
build_mixed_stream (const guint8 *key)
{
  GByteArray *s = g_byte_array_new ();
  g_autofree guint8 *big = g_malloc (70000);

  for (gsize i = 0; i < 70000; i++)
    big[i] = (guint8) (i * 7 + 3);

  append_frame (s, 0x81, "SGVsbG8=", 8, key);           /* text, one frame */
  append_frame (s, 0x02, "ab", 2, key);                 /* fragmented binary */
  append_frame (s, 0x89, "ping!", 5, key);              /* interleaved ping */
  append_frame (s, 0x00, "", 0, key);                   /* empty fragment */
  append_frame (s, 0x80, "cd", 2, key);
  append_frame (s, 0x82, "", 0, key);                   /* empty message */
  append_frame (s, 0x01, "", 0, key);                   /* empty first frame */
  append_frame (s, 0x8a, "", 0, key);                   /* empty pong */
  append_frame (s, 0x80, "QUJD", 4, key);
  append_frame (s, 0x82, big, 126, key);                /* 16-bit length */
  append_frame (s, 0x02, big, 300, key);
  append_frame (s, 0x8a, big, 125, key);                /* largest control */
  append_frame (s, 0x80, big, 70000, key);              /* 64-bit length */
  append_frame (s, 0x88, "\x03\xe8" "bye", 5, key);     /* close 1000 */
  return s;
}

static void
test_parser_split_points (void)
{
  static const guint8 key[4] = { 0x5a, 0x00, 0xff, 0x81 };

  for (int masked = 0; masked < 2; masked++)
    {
      g_autoptr(GByteArray) stream = build_mixed_stream (masked ? key : NULL);
      g_auto(Outcome) reference = { 0 };
      static const gsize chunks[] = { 1, 2, 3, 5, 7, 13, 125, 126, 4096 };

      run_parser (&reference, masked, 100000, stream->data, stream->len, 0);
      g_assert_cmpuint (reference.error_code, ==, 0);
      g_assert_cmpuint (reference.n_messages, ==, 6);
      g_assert_true (g_str_has_prefix (reference.trace->str,
                                       "M1:534756736247383d;"   /* SGVsbG8= */
                                       "C9:70696e6721;"       /* ping! */
                                       "M2:61626364;"         /* abcd */
                                       "M2:;"
                                       "C10:;"
                                       "M1:51554a44;"));
      g_assert_true (g_str_has_suffix (reference.trace->str, "C8:03e8627965/1000;"));

      for (gsize c = 0; c < G_N_ELEMENTS (chunks); c++)
        {
          g_auto(Outcome) o = { 0 };

          run_parser (&o, masked, 100000, stream->data, stream->len, chunks[c]);
          g_assert_cmpstr (o.trace->str, ==, reference.trace->str);
        }
    }
}

/* The event sequence itself, including where message_start is set. */
static void
test_parser_interleaved_ping (void)
{
  g_autoptr(GByteArray) s = g_byte_array_new ();
  TwpWsParser parser;
  TwpWsEvent ev;
  gsize pos = 0;
  gsize n;

  append_frame (s, 0x01, "", 0, NULL);
  append_frame (s, 0x00, "Hel", 3, NULL);
  append_frame (s, 0x89, "x", 1, NULL);
  append_frame (s, 0x80, "lo", 2, NULL);
  twp_ws_parser_init (&parser, FALSE, 1000);

  pos += twp_ws_parser_feed (&parser, s->data + pos, s->len - pos, &ev);
  g_assert_cmpint (ev.type, ==, TWP_WS_EVENT_DATA);
  g_assert_true (ev.message_start);
  g_assert_cmpint (ev.opcode, ==, TWP_WS_OPCODE_TEXT);
  g_assert_cmpmem (ev.data, ev.len, "Hel", 3);
  g_assert_true (ev.data == s->data + 4);   /* zero-copy: inside our buffer */

  pos += twp_ws_parser_feed (&parser, s->data + pos, s->len - pos, &ev);
  g_assert_cmpint (ev.type, ==, TWP_WS_EVENT_CONTROL);
  g_assert_cmpint (ev.opcode, ==, TWP_WS_OPCODE_PING);
  g_assert_cmpmem (ev.data, ev.len, "x", 1);

  pos += twp_ws_parser_feed (&parser, s->data + pos, s->len - pos, &ev);
  g_assert_cmpint (ev.type, ==, TWP_WS_EVENT_DATA);
  g_assert_false (ev.message_start);
  g_assert_cmpint (ev.opcode, ==, TWP_WS_OPCODE_TEXT);
  g_assert_cmpmem (ev.data, ev.len, "lo", 2);
  g_assert_cmpuint (pos, ==, s->len);

  /* The final DATA used up the buffer; MESSAGE_END comes with len 0. */
  n = twp_ws_parser_feed (&parser, s->data + pos, 0, &ev);
  g_assert_cmpuint (n, ==, 0);
  g_assert_cmpint (ev.type, ==, TWP_WS_EVENT_MESSAGE_END);
  g_assert_cmpint (ev.opcode, ==, TWP_WS_OPCODE_TEXT);
  n = twp_ws_parser_feed (&parser, NULL, 0, &ev);
  g_assert_cmpuint (n, ==, 0);
  g_assert_cmpint (ev.type, ==, TWP_WS_EVENT_NEED_MORE);
}

/* A control payload split across feeds is still delivered whole. */
static void
test_parser_split_control (void)
{
  static const guint8 key[4] = { 1, 2, 3, 4 };
  g_autoptr(GByteArray) s = g_byte_array_new ();
  TwpWsParser parser;
  TwpWsEvent ev;
  gsize n;

  append_frame (s, 0x89, "0123456789", 10, key);
  twp_ws_parser_init (&parser, TRUE, 1000);
  n = twp_ws_parser_feed (&parser, s->data, 9, &ev);
  g_assert_cmpuint (n, ==, 9);
  g_assert_cmpint (ev.type, ==, TWP_WS_EVENT_NEED_MORE);
  n = twp_ws_parser_feed (&parser, s->data + 9, s->len - 9, &ev);
  g_assert_cmpuint (n, ==, s->len - 9);
  g_assert_cmpint (ev.type, ==, TWP_WS_EVENT_CONTROL);
  g_assert_cmpmem (ev.data, ev.len, "0123456789", 10);
}

/* ---- parser: errors -------------------------------------------------- */

typedef struct {
  const char *name;
  gboolean expect_masked;
  gsize len;
  guint8 bytes[24];
  guint16 code;
  gsize consumed;   /* where the error must be reported */
  guint64 max;      /* max_message_size; 0 stands for 16384 */
} ErrorCase;

#define K 0x11, 0x22, 0x33, 0x44
#define CLOSE(code_hi, code_lo) 0x88, 0x02, code_hi, code_lo

static const ErrorCase error_cases[] = {
  { "rsv1", FALSE, 3, { 0xc1, 0x01, 'a' }, 1002, 2 },
  { "rsv2", FALSE, 3, { 0xa1, 0x01, 'a' }, 1002, 2 },
  { "rsv3", FALSE, 3, { 0x91, 0x01, 'a' }, 1002, 2 },
  { "rsv-on-control", FALSE, 2, { 0xc9, 0x00 }, 1002, 2 },
  { "opcode-3", FALSE, 2, { 0x83, 0x00 }, 1002, 2 },
  { "opcode-4", FALSE, 2, { 0x84, 0x00 }, 1002, 2 },
  { "opcode-5", FALSE, 2, { 0x85, 0x00 }, 1002, 2 },
  { "opcode-6", FALSE, 2, { 0x86, 0x00 }, 1002, 2 },
  { "opcode-7", FALSE, 2, { 0x87, 0x00 }, 1002, 2 },
  { "opcode-b", FALSE, 2, { 0x8b, 0x00 }, 1002, 2 },
  { "opcode-c", FALSE, 2, { 0x8c, 0x00 }, 1002, 2 },
  { "opcode-d", FALSE, 2, { 0x8d, 0x00 }, 1002, 2 },
  { "opcode-e", FALSE, 2, { 0x8e, 0x00 }, 1002, 2 },
  { "opcode-f", FALSE, 2, { 0x8f, 0x00 }, 1002, 2 },
  { "ping-not-fin", FALSE, 2, { 0x09, 0x00 }, 1002, 2 },
  { "close-not-fin", FALSE, 4, { 0x08, 0x02, 0x03, 0xe8 }, 1002, 2 },
  { "ping-126", FALSE, 4, { 0x89, 0x7e, 0x00, 0x7e }, 1002, 2 },
  { "pong-127", FALSE, 10, { 0x8a, 0x7f, 0, 0, 0, 0, 0, 0, 0, 1 }, 1002, 2 },
  { "continuation-first", FALSE, 3, { 0x80, 0x01, 'a' }, 1002, 2 },
  { "continuation-not-fin-first", FALSE, 3, { 0x00, 0x01, 'a' }, 1002, 2 },
  { "continuation-after-end", FALSE, 6, { 0x81, 0x01, 'a', 0x80, 0x01, 'b' }, 1002, 5 },
  { "text-in-fragmented", FALSE, 6, { 0x01, 0x01, 'a', 0x81, 0x01, 'b' }, 1002, 5 },
  { "binary-in-fragmented", FALSE, 8, { 0x02, 0x01, 'a', 0x89, 0x00, 0x02, 0x01, 'b' }, 1002, 7 },
  { "unmasked-to-server", TRUE, 3, { 0x82, 0x01, 'a' }, 1002, 2 },
  { "unmasked-control-to-server", TRUE, 2, { 0x89, 0x00 }, 1002, 2 },
  { "masked-to-client", FALSE, 7, { 0x82, 0x81, K, 'a' }, 1002, 2 },
  { "length-top-bit", FALSE, 10, { 0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 1 }, 1002, 10 },
  { "length-all-ones", TRUE, 14, { 0x82, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, K }, 1002, 14 },
  /* 100 MiB announced: refused after the header, before any payload. */
  { "100MiB-frame", FALSE, 10, { 0x82, 0x7f, 0, 0, 0, 0, 0x06, 0x40, 0, 0 }, 1009, 10 },
  { "100MiB-masked", TRUE, 14, { 0x82, 0xff, 0, 0, 0, 0, 0x06, 0x40, 0, 0, K }, 1009, 14 },
  /* 2 + 2 bytes > 3, in the second fragment's header. */
  { "fragment-over-bound", FALSE, 8, { 0x01, 0x02, 'a', 'b', 0x80, 0x02, 'c', 'd' }, 1009, 6, 3 },
  { "fragment-over-bound-after-ping", TRUE, 20,
    { 0x02, 0x82, K, 'a', 'b', 0x89, 0x80, K, 0x00, 0x82, K }, 1009, 20, 3 },
  { "close-1-byte", FALSE, 3, { 0x88, 0x01, 0x03 }, 1002, 3 },
  { "close-0", FALSE, 4, { CLOSE (0x00, 0x00) }, 1002, 4 },
  { "close-999", FALSE, 4, { CLOSE (0x03, 0xe7) }, 1002, 4 },
  { "close-1004", FALSE, 4, { CLOSE (0x03, 0xec) }, 1002, 4 },
  { "close-1005", FALSE, 4, { CLOSE (0x03, 0xed) }, 1002, 4 },
  { "close-1006", FALSE, 4, { CLOSE (0x03, 0xee) }, 1002, 4 },
  { "close-1012", FALSE, 4, { CLOSE (0x03, 0xf4) }, 1002, 4 },
  { "close-1015", FALSE, 4, { CLOSE (0x03, 0xf7) }, 1002, 4 },
  { "close-1016", FALSE, 4, { CLOSE (0x03, 0xf8) }, 1002, 4 },
  { "close-2999", FALSE, 4, { CLOSE (0x0b, 0xb7) }, 1002, 4 },
  { "close-5000", FALSE, 4, { CLOSE (0x13, 0x88) }, 1002, 4 },
  { "close-65535", FALSE, 4, { CLOSE (0xff, 0xff) }, 1002, 4 },
  { "close-bad-utf8", FALSE, 5, { 0x88, 0x03, 0x03, 0xe8, 0xff }, 1007, 5 },
  { "close-truncated-utf8", FALSE, 6, { 0x88, 0x04, 0x03, 0xe8, 0xe2, 0x82 }, 1007, 6 },
  { "close-surrogate", FALSE, 7, { 0x88, 0x05, 0x03, 0xe8, 0xed, 0xa0, 0x80 }, 1007, 7 },
  { "close-overlong", FALSE, 6, { 0x88, 0x04, 0x03, 0xe8, 0xc0, 0xaf }, 1007, 6 },
  { "close-masked-bad-utf8", TRUE, 9, { 0x88, 0x83, 0, 0, 0, 0, 0x03, 0xe8, 0x80 }, 1007, 9 },
};

static void
test_parser_errors (gconstpointer user_data)
{
  const ErrorCase *c = user_data;
  static const gsize chunks[] = { 0, 1, 2, 3 };

  for (gsize i = 0; i < G_N_ELEMENTS (chunks); i++)
    {
      g_auto(Outcome) o = { 0 };

      run_parser (&o, c->expect_masked, c->max != 0 ? c->max : 16384,
                  c->bytes, c->len, chunks[i]);
      g_assert_cmpuint (o.error_code, ==, c->code);
      /* Reported as soon as the offending header byte (or, for lengths,
       * the whole header; for close frames, the whole payload) is in. */
      g_assert_cmpuint (o.consumed, ==, c->consumed);
    }
}

/* Valid close codes (RFC 6455 7.4) are delivered with the reason. */
static void
test_parser_close_valid (void)
{
  static const guint16 codes[] = { 1000, 1001, 1002, 1003, 1007, 1008, 1009,
                                   1010, 1011, 3000, 3999, 4000, 4999 };

  for (gsize i = 0; i < G_N_ELEMENTS (codes); i++)
    {
      guint8 payload[] = { codes[i] >> 8, codes[i] & 0xff, 'o', 'k', 0xc3, 0xa9, 0x00 };
      g_autoptr(GByteArray) s = g_byte_array_new ();
      g_autofree char *expected = NULL;
      g_auto(Outcome) o = { 0 };

      append_frame (s, 0x88, payload, sizeof payload, NULL);
      run_parser (&o, FALSE, 0, s->data, s->len, 1);
      expected = g_strdup_printf ("C8:%02x%02x6f6bc3a900/%u;",
                                  codes[i] >> 8, codes[i] & 0xff, codes[i]);
      g_assert_cmpstr (o.trace->str, ==, expected);
    }

  /* Empty close: "no status", 1005. */
  {
    static const guint8 empty[] = { 0x88, 0x00 };
    g_auto(Outcome) o = { 0 };

    run_parser (&o, FALSE, 0, empty, sizeof empty, 0);
    g_assert_cmpstr (o.trace->str, ==, "C8:/1005;");
  }
}

/* The message bound counts every fragment of one message, and only one. */
static void
test_parser_message_bound (void)
{
  const guint64 max = 16384 + 7;
  static const guint8 key[4] = { 9, 8, 7, 6 };
  g_autofree guint8 *zeros = g_malloc0 (max);

  for (int over = 0; over < 2; over++)
    {
      g_autoptr(GByteArray) s = g_byte_array_new ();
      g_auto(Outcome) o = { 0 };
      guint64 n_fragments = max + (guint64) over;

      append_frame (s, 0x02, "x", 1, key);
      for (guint64 i = 1; i < n_fragments - 1; i++)
        append_frame (s, 0x00, "x", 1, key);
      append_frame (s, 0x80, "x", 1, key);
      /* A second message at the bound: the count restarts. */
      append_frame (s, 0x82, zeros, max, key);
      run_parser (&o, TRUE, max, s->data, s->len, 0);

      if (over)
        {
          g_assert_cmpuint (o.error_code, ==, TWP_WS_CLOSE_TOO_BIG);
          /* Everything up to the bound was delivered, nothing more. */
          g_assert_cmpuint (o.message->len, ==, max);
          g_assert_cmpuint (o.n_messages, ==, 0);
        }
      else
        {
          g_assert_cmpuint (o.error_code, ==, 0);
          g_assert_cmpuint (o.n_messages, ==, 2);
          g_assert_cmpuint (o.n_data_events, ==, max + 1);
        }
    }
}

/* A single frame exactly at the bound passes, one byte more fails, and
 * the next message gets the whole bound again. */
static void
test_parser_frame_bound (void)
{
  const gsize max = 21848;
  g_autofree guint8 *payload = g_malloc0 (max + 1);

  for (int over = 0; over < 2; over++)
    {
      g_autoptr(GByteArray) s = g_byte_array_new ();
      g_auto(Outcome) o = { 0 };

      append_frame (s, 0x81, payload, max, NULL);
      append_frame (s, 0x81, payload, max + (gsize) over, NULL);
      run_parser (&o, FALSE, max, s->data, s->len, 1000);
      g_assert_cmpuint (o.n_messages, ==, over ? 1 : 2);
      g_assert_cmpuint (o.error_code, ==, over ? TWP_WS_CLOSE_TOO_BIG : 0);
    }
}

/* ---- close frames ----------------------------------------------------- */

static void
test_close_payload (void)
{
  const char *reason = NULL;
  gsize reason_len = 1;

  g_assert_cmpuint (twp_ws_parse_close_payload (NULL, 0, &reason, &reason_len), ==, 1005);
  g_assert_cmpuint (reason_len, ==, 0);
  g_assert_cmpuint (twp_ws_parse_close_payload ((const guint8 *) "\x03\xe8", 2,
                                                &reason, &reason_len), ==, 1000);
  g_assert_cmpuint (reason_len, ==, 0);
  g_assert_cmpuint (twp_ws_parse_close_payload ((const guint8 *) "\x0f\xa0" "bye", 5,
                                                &reason, &reason_len), ==, 4000);
  g_assert_cmpmem (reason, reason_len, "bye", 3);
  g_assert_cmpuint (twp_ws_parse_close_payload ((const guint8 *) "\x03", 1,
                                                &reason, &reason_len), ==, 0);
  g_assert_null (reason);
  g_assert_cmpuint (twp_ws_parse_close_payload ((const guint8 *) "\x03\xed", 2,
                                                NULL, NULL), ==, 0);
  g_assert_cmpuint (twp_ws_parse_close_payload ((const guint8 *) "\x03\xe8\xf5\x80\x80\x80", 6,
                                                NULL, NULL), ==, 0);
  /* U+10FFFF is the last valid code point; U+0000 is valid UTF-8. */
  g_assert_cmpuint (twp_ws_parse_close_payload ((const guint8 *) "\x03\xe8\xf4\x8f\xbf\xbf\x00", 7,
                                                NULL, NULL), ==, 1000);
  g_assert_cmpuint (twp_ws_parse_close_payload ((const guint8 *) "\x03\xe8\xf4\x90\x80\x80", 6,
                                                NULL, NULL), ==, 0);
}

static void
test_write_close (void)
{
  guint8 out[TWP_WS_MAX_HEADER_SIZE + TWP_WS_MAX_CONTROL_PAYLOAD];
  static const guint8 key[4] = { 0xde, 0xad, 0xbe, 0xef };
  gsize n;

  n = twp_ws_frame_write_close (out, 1000, "bye", NULL);
  g_assert_cmpmem (out, n, "\x88\x05\x03\xe8" "bye", 7);

  /* 1005 is "no status": an empty payload, the reason is dropped. */
  n = twp_ws_frame_write_close (out, TWP_WS_CLOSE_NO_STATUS, "ignored", NULL);
  g_assert_cmpmem (out, n, "\x88\x00", 2);

  n = twp_ws_frame_write_close (out, 1001, NULL, NULL);
  g_assert_cmpmem (out, n, "\x88\x02\x03\xe9", 4);

  /* A long ASCII reason: exactly 123 bytes kept. */
  {
    g_autofree char *reason = g_strnfill (200, 'r');

    n = twp_ws_frame_write_close (out, 1011, reason, NULL);
    g_assert_cmpuint (n, ==, 2 + 125);
    g_assert_cmphex (out[1], ==, 125);
  }

  /* "é" (2 bytes) straddling byte 123: cut before it. */
  {
    g_autoptr(GString) reason = g_string_new (NULL);
    const char *parsed;
    gsize parsed_len;

    for (int i = 0; i < 122; i++)
      g_string_append_c (reason, 'a');
    g_string_append (reason, "\xc3\xa9" "tail");
    n = twp_ws_frame_write_close (out, 1000, reason->str, NULL);
    g_assert_cmpuint (n, ==, 2 + 2 + 122);
    g_assert_cmpuint (twp_ws_parse_close_payload (out + 2, n - 2, &parsed, &parsed_len),
                      ==, 1000);
    g_assert_cmpuint (parsed_len, ==, 122);
  }

  /* Exactly 123 bytes ending in a 3-byte character: kept whole. */
  {
    g_autoptr(GString) reason = g_string_new (NULL);

    for (int i = 0; i < 120; i++)
      g_string_append_c (reason, 'a');
    g_string_append (reason, "\xe2\x82\xac");
    n = twp_ws_frame_write_close (out, 1000, reason->str, NULL);
    g_assert_cmpuint (n, ==, 2 + 125);
    g_assert_cmpmem (out + 4 + 120, 3, "\xe2\x82\xac", 3);
  }

  /* Masked (client side): a server parser reads it back. */
  {
    g_auto(Outcome) o = { 0 };

    n = twp_ws_frame_write_close (out, 4000, "done", key);
    g_assert_cmpuint (n, ==, 6 + 6);
    g_assert_cmphex (out[1], ==, 0x86);
    run_parser (&o, TRUE, 0, out, n, 1);
    g_assert_cmpstr (o.trace->str, ==, "C8:0fa0646f6e65/4000;");
  }
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/ws-frame/proposal/one-frame", test_proposal_one_frame);
  g_test_add_func ("/ws-frame/proposal/two-frames", test_proposal_two_frames);
  g_test_add_func ("/ws-frame/proposal/masked", test_proposal_masked);
  g_test_add_func ("/ws-frame/header/lengths", test_header_lengths);
  g_test_add_func ("/ws-frame/mask/alignments", test_mask_alignments);
  g_test_add_func ("/ws-frame/mask/pieces", test_mask_pieces);
  g_test_add_func ("/ws-frame/parser/split-points", test_parser_split_points);
  g_test_add_func ("/ws-frame/parser/interleaved-ping", test_parser_interleaved_ping);
  g_test_add_func ("/ws-frame/parser/split-control", test_parser_split_control);
  g_test_add_func ("/ws-frame/parser/close-valid", test_parser_close_valid);
  g_test_add_func ("/ws-frame/parser/message-bound", test_parser_message_bound);
  g_test_add_func ("/ws-frame/parser/frame-bound", test_parser_frame_bound);
  for (gsize i = 0; i < G_N_ELEMENTS (error_cases); i++)
    {
      g_autofree char *path = g_strdup_printf ("/ws-frame/parser/error/%s",
                                               error_cases[i].name);

      g_test_add_data_func (path, &error_cases[i], test_parser_errors);
    }
  g_test_add_func ("/ws-frame/close/parse-payload", test_close_payload);
  g_test_add_func ("/ws-frame/close/write", test_write_close);

  return g_test_run ();
}
