/* SPDX-License-Identifier: BSD-3-Clause */
/* Tests for the SOCKS server (PT-CHECKLIST C9-C17): the incremental parser
 * against tor's observed transcripts and every malformed input we know of,
 * each fed whole and in small chunks; then the async handshake over a real
 * loopback TCP connection. */
#define G_LOG_DOMAIN "test-socks"

#include "config.h"

#include "twp-socks.h"
#include "twp-test-utils.h"

#include <string.h>

/* ---- Parser driver ---- */

/* A validator like the client transport's: refuses args containing "bad"
 * and counts its calls. */
static gboolean
test_validator (const char  *args,
                gsize        args_len,
                gpointer     user_data,
                GError     **error)
{
  guint *n_calls = user_data;

  if (n_calls != NULL)
    (*n_calls)++;
  /* args is NUL-terminated at args_len even with embedded NULs. */
  g_assert_cmpint (args[args_len], ==, '\0');
  if (memmem (args, args_len, "bad", 3) != NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                           "refused: bad args");
      return FALSE;
    }
  return TRUE;
}

static gboolean
silent_refusal_validator (const char  *args,
                          gsize        args_len,
                          gpointer     user_data,
                          GError     **error)
{
  return FALSE;
}

typedef struct {
  TwpSocksParseResult result;  /* DONE, ERROR, or NEED_MORE when input ran out */
  GByteArray *replies;         /* every reply byte, in order */
  guint n_replies;             /* REPLY results (+1 for a reply with ERROR) */
  GError *error;
  TwpSocksRequest *request;
  gsize consumed;
  guint n_validator_calls;
} Outcome;

static void
outcome_clear (Outcome *out)
{
  g_clear_pointer (&out->replies, g_byte_array_unref);
  g_clear_error (&out->error);
  g_clear_pointer (&out->request, twp_socks_request_free);
}

/* Plays the role of the async driver: the client's bytes arrive @chunk at a
 * time, each REPLY is "sent" (collected) before feeding on. */
static void
run_parser (const guint8          *input,
            gsize                  len,
            gsize                  chunk,
            TwpSocksArgsValidator  validator,
            Outcome               *out)
{
  g_autoptr(TwpSocksParser) parser = NULL;
  g_autoptr(GByteArray) reply = g_byte_array_new ();
  gsize delivered = 0;
  gsize pos = 0;

  memset (out, 0, sizeof *out);
  out->replies = g_byte_array_new ();
  parser = twp_socks_parser_new (validator, &out->n_validator_calls);

  for (;;)
    {
      TwpSocksParseResult result;
      gsize consumed = 12345;

      if (pos == delivered)
        {
          if (delivered == len)
            {
              out->result = TWP_SOCKS_PARSE_NEED_MORE;
              break;
            }
          delivered = MIN (len, delivered + chunk);
        }

      result = twp_socks_parser_feed (parser, input + pos, delivered - pos,
                                      &consumed, reply, &out->error);
      g_assert_cmpuint (consumed, <=, delivered - pos);
      pos += consumed;

      if (result == TWP_SOCKS_PARSE_NEED_MORE)
        {
          g_assert_cmpuint (pos, ==, delivered);
          g_assert_cmpuint (reply->len, ==, 0);
          g_assert_no_error (out->error);
          continue;
        }
      if (reply->len > 0)
        {
          g_byte_array_append (out->replies, reply->data, reply->len);
          out->n_replies++;
          g_byte_array_set_size (reply, 0);
        }
      if (result == TWP_SOCKS_PARSE_REPLY)
        {
          g_assert_no_error (out->error);
          continue;
        }

      out->result = result;
      if (result == TWP_SOCKS_PARSE_DONE)
        {
          g_assert_no_error (out->error);
          out->request = twp_socks_parser_steal_request (parser);
          g_assert_nonnull (out->request);
          g_assert_null (twp_socks_parser_steal_request (parser));
        }
      else
        {
          g_assert_cmpint (result, ==, TWP_SOCKS_PARSE_ERROR);
          g_assert_nonnull (out->error);
          g_assert_null (twp_socks_parser_steal_request (parser));
        }
      break;
    }
  out->consumed = pos;

  /* A finished parser refuses more input instead of misparsing it. */
  if (out->result != TWP_SOCKS_PARSE_NEED_MORE)
    {
      g_autoptr(GError) error = NULL;
      gsize consumed = 12345;

      g_assert_cmpint (twp_socks_parser_feed (parser, (const guint8 *) "\x05", 1,
                                              &consumed, reply, &error),
                       ==, TWP_SOCKS_PARSE_ERROR);
      g_assert_error (error, TWP_SOCKS_ERROR, TWP_SOCKS_ERROR_PROTOCOL);
      g_assert_cmpuint (consumed, ==, 0);
      g_assert_cmpuint (reply->len, ==, 0);
    }
}

/* Chunk sizes every case is fed with: whole, byte by byte, and odd sizes
 * that split fields in different places. */
static const gsize chunk_sizes[] = { G_MAXSIZE, 1, 2, 3, 7, 64 };

/* ---- Table of parser cases ---- */

typedef struct {
  const char *name;
  const guint8 *input;
  gsize input_len;
  TwpSocksParseResult result;
  const guint8 *replies;
  gsize replies_len;
  guint n_replies;
  int error_code;              /* ERROR only */
  const char *error_contains;  /* ERROR only, optional */
  int version;                 /* DONE only */
  const char *args;
  gsize args_len;
  const char *host;
  guint16 port;
  gsize trailing;              /* DONE: bytes after the request */
  guint n_validator_calls;
} ParserCase;

#define IN(s) .input = (const guint8 *) (s), .input_len = sizeof (s) - 1
#define OUT(s) .replies = (const guint8 *) (s), .replies_len = sizeof (s) - 1
#define ARGS(s) .args = (s), .args_len = sizeof (s) - 1

#define GREETING_USERPASS "\x05\x02\x00\x02"
#define GREETING_NOAUTH "\x05\x01\x00"
#define CONNECT_127_0_0_1_9 "\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x09"
#define REP_PREFIX "\x05"
#define REP_SUFFIX "\x00\x01\x00\x00\x00\x00\x00\x00"
#define SOCKS4_REJECTED "\x00\x5b\x00\x00\x00\x00\x00\x00"

static const ParserCase parser_cases[] = {
  /* C9, C10, C12: the first observed tor transcript, args in UNAME,
   * PASSWD = 00. */
  { "tor-args-25",
    IN (GREETING_USERPASS
        "\x01\x19" "url=ws://example/;foo=bar" "\x01\x00"
        CONNECT_127_0_0_1_9),
    TWP_SOCKS_PARSE_DONE, OUT ("\x05\x02" "\x01\x00"), 2,
    .version = 5, ARGS ("url=ws://example/;foo=bar"), .host = "127.0.0.1", .port = 9,
    .n_validator_calls = 1 },
  /* C9: no args, tor offers only 00; the validator is not involved. */
  { "tor-noargs",
    IN (GREETING_NOAUTH "\x05\x01\x00\x01\x7f\x00\x00\x04\x00\x09"),
    TWP_SOCKS_PARSE_DONE, OUT ("\x05\x00"), 1,
    .version = 5, ARGS (""), .host = "127.0.0.4", .port = 9 },
  /* C12: IPv6 bridge, ATYP 4. */
  { "tor-ipv6",
    IN (GREETING_USERPASS "\x01\x06" "v6=yes" "\x01\x00"
        "\x05\x01\x00\x04" "\x00\x00\x00\x00\x00\x00\x00\x00"
        "\x00\x00\x00\x00\x00\x00\x00\x01" "\x00\x09"),
    TWP_SOCKS_PARSE_DONE, OUT ("\x05\x02\x01\x00"), 2,
    .version = 5, ARGS ("v6=yes"), .host = "::1", .port = 9, .n_validator_calls = 1 },
  /* C17: tor's SOCKS4 client, args in USERID, no intermediate reply. */
  { "tor-socks4",
    IN ("\x04\x01\x00\x09\x7f\x00\x00\x03" "k=v;k2=v2" "\x00"),
    TWP_SOCKS_PARSE_DONE, OUT (""), 0,
    .version = 4, ARGS ("k=v;k2=v2"), .host = "127.0.0.3", .port = 9,
    .n_validator_calls = 1 },
  { "socks4-empty-userid",
    IN ("\x04\x01\x00\x50\x0a\x00\x00\x01" "\x00"),
    TWP_SOCKS_PARSE_DONE, OUT (""), 0,
    .version = 4, ARGS (""), .host = "10.0.0.1", .port = 80, .n_validator_calls = 1 },
  { "socks4a",
    IN ("\x04\x01\x01\xbb\x00\x00\x00\x01" "user" "\x00" "example.com" "\x00"),
    TWP_SOCKS_PARSE_DONE, OUT (""), 0,
    .version = 4, ARGS ("user"), .host = "example.com", .port = 443,
    .n_validator_calls = 1 },
  /* 0.0.0.0 is a plain address, not the SOCKS4a marker. */
  { "socks4-zero-address",
    IN ("\x04\x01\x00\x01\x00\x00\x00\x00" "\x00"),
    TWP_SOCKS_PARSE_DONE, OUT (""), 0,
    .version = 4, ARGS (""), .host = "0.0.0.0", .port = 1, .n_validator_calls = 1 },
  /* C12: ATYP 3 for other clients. */
  { "socks5-domain",
    IN (GREETING_NOAUTH "\x05\x01\x00\x03\x0b" "example.com" "\x01\xbb"),
    TWP_SOCKS_PARSE_DONE, OUT ("\x05\x00"), 1,
    .version = 5, ARGS (""), .host = "example.com", .port = 443 },
  /* C9: 02 wins wherever it is in the list. */
  { "methods-02-last",
    IN ("\x05\x03\x01\x00\x02" "\x01\x03" "a=b" "\x01\x00" CONNECT_127_0_0_1_9),
    TWP_SOCKS_PARSE_DONE, OUT ("\x05\x02\x01\x00"), 2,
    .version = 5, ARGS ("a=b"), .host = "127.0.0.1", .port = 9, .n_validator_calls = 1 },
  { "methods-00-among-others",
    IN ("\x05\x03\x01\x03\x00" CONNECT_127_0_0_1_9),
    TWP_SOCKS_PARSE_DONE, OUT ("\x05\x00"), 1,
    .version = 5, ARGS (""), .host = "127.0.0.1", .port = 9 },
  /* ULEN 0 is accepted as an empty UNAME (tor never sends it). */
  { "ulen-0",
    IN (GREETING_USERPASS "\x01\x00" "\x01\x00" CONNECT_127_0_0_1_9),
    TWP_SOCKS_PARSE_DONE, OUT ("\x05\x02\x01\x00"), 2,
    .version = 5, ARGS (""), .host = "127.0.0.1", .port = 9, .n_validator_calls = 1 },
  /* C10: only a single 00 byte means "empty"; anything else is appended. */
  { "passwd-one-byte",
    IN (GREETING_USERPASS "\x01\x03" "abc" "\x01" "d" CONNECT_127_0_0_1_9),
    TWP_SOCKS_PARSE_DONE, OUT ("\x05\x02\x01\x00"), 2,
    .version = 5, ARGS ("abcd"), .host = "127.0.0.1", .port = 9, .n_validator_calls = 1 },
  { "passwd-two-nuls",
    IN (GREETING_USERPASS "\x01\x00" "\x02\x00\x00" CONNECT_127_0_0_1_9),
    TWP_SOCKS_PARSE_DONE, OUT ("\x05\x02\x01\x00"), 2,
    .version = 5, ARGS ("\x00\x00"), .host = "127.0.0.1", .port = 9, .n_validator_calls = 1 },
  { "plen-0",
    IN (GREETING_USERPASS "\x01\x02" "xy" "\x00" CONNECT_127_0_0_1_9),
    TWP_SOCKS_PARSE_DONE, OUT ("\x05\x02\x01\x00"), 2,
    .version = 5, ARGS ("xy"), .host = "127.0.0.1", .port = 9, .n_validator_calls = 1 },
  /* Bytes a client pipelines after the CONNECT are not consumed. */
  { "trailing-data",
    IN (GREETING_NOAUTH CONNECT_127_0_0_1_9 "\x16\x03\x01 TLS"),
    TWP_SOCKS_PARSE_DONE, OUT ("\x05\x00"), 1,
    .version = 5, ARGS (""), .host = "127.0.0.1", .port = 9, .trailing = 7 },
  { "socks4-trailing-data",
    IN ("\x04\x01\x00\x09\x7f\x00\x00\x03" "k=v" "\x00" "more"),
    TWP_SOCKS_PARSE_DONE, OUT (""), 0,
    .version = 4, ARGS ("k=v"), .host = "127.0.0.3", .port = 9, .trailing = 4,
    .n_validator_calls = 1 },

  /* ---- Malformed and refused input ---- */
  { "bad-version",
    IN ("\x06\x01\x00"),
    TWP_SOCKS_PARSE_ERROR, OUT (""), 0, TWP_SOCKS_ERROR_PROTOCOL, "0x06" },
  { "http-request",
    IN ("GET / HTTP/1.1\r\n\r\n"),
    TWP_SOCKS_PARSE_ERROR, OUT (""), 0, TWP_SOCKS_ERROR_PROTOCOL },
  { "nmethods-0",
    IN ("\x05\x00"),
    TWP_SOCKS_PARSE_ERROR, OUT ("\x05\xff"), 1, TWP_SOCKS_ERROR_PROTOCOL },
  { "no-acceptable-method",
    IN ("\x05\x02\x01\x80"),
    TWP_SOCKS_PARSE_ERROR, OUT ("\x05\xff"), 1, TWP_SOCKS_ERROR_NO_ACCEPTABLE_METHOD },
  { "bad-auth-version",
    IN (GREETING_USERPASS "\x05\x01" "a" "\x01\x00"),
    TWP_SOCKS_PARSE_ERROR, OUT ("\x05\x02"), 1, TWP_SOCKS_ERROR_PROTOCOL },
  /* C10: the validator sees UNAME + PASSWD and its refusal is `01 01`. */
  { "validator-refuses",
    IN (GREETING_USERPASS "\x01\x07" "bad=yes" "\x01\x00" CONNECT_127_0_0_1_9),
    TWP_SOCKS_PARSE_ERROR, OUT ("\x05\x02" "\x01\x01"), 2, TWP_SOCKS_ERROR_AUTH,
    "refused: bad args", .n_validator_calls = 1 },
  { "validator-refuses-joined",
    IN (GREETING_USERPASS "\x01\x02" "ba" "\x01" "d" CONNECT_127_0_0_1_9),
    TWP_SOCKS_PARSE_ERROR, OUT ("\x05\x02" "\x01\x01"), 2, TWP_SOCKS_ERROR_AUTH,
    "refused", .n_validator_calls = 1 },
  { "request-bad-version",
    IN (GREETING_NOAUTH "\x04\x01\x00\x01\x7f\x00\x00\x01\x00\x09"),
    TWP_SOCKS_PARSE_ERROR, OUT ("\x05\x00"), 1, TWP_SOCKS_ERROR_PROTOCOL },
  /* C12: BIND and UDP ASSOCIATE get REP 07. */
  { "cmd-bind",
    IN (GREETING_NOAUTH "\x05\x02\x00\x01\x7f\x00\x00\x01\x00\x09"),
    TWP_SOCKS_PARSE_ERROR, OUT ("\x05\x00" REP_PREFIX "\x07" REP_SUFFIX), 2,
    TWP_SOCKS_ERROR_UNSUPPORTED_COMMAND },
  { "cmd-udp",
    IN (GREETING_NOAUTH "\x05\x03\x00\x01\x7f\x00\x00\x01\x00\x09"),
    TWP_SOCKS_PARSE_ERROR, OUT ("\x05\x00" REP_PREFIX "\x07" REP_SUFFIX), 2,
    TWP_SOCKS_ERROR_UNSUPPORTED_COMMAND },
  /* RSV is checked strictly. */
  { "rsv-nonzero",
    IN (GREETING_NOAUTH "\x05\x01\x01\x01\x7f\x00\x00\x01\x00\x09"),
    TWP_SOCKS_PARSE_ERROR, OUT ("\x05\x00" REP_PREFIX "\x01" REP_SUFFIX), 2,
    TWP_SOCKS_ERROR_PROTOCOL },
  /* C12: unknown ATYP gets REP 08. */
  { "atyp-5",
    IN (GREETING_NOAUTH "\x05\x01\x00\x05\x7f\x00\x00\x01\x00\x09"),
    TWP_SOCKS_PARSE_ERROR, OUT ("\x05\x00" REP_PREFIX "\x08" REP_SUFFIX), 2,
    TWP_SOCKS_ERROR_UNSUPPORTED_ADDRESS },
  { "atyp-0",
    IN (GREETING_NOAUTH "\x05\x01\x00\x00"),
    TWP_SOCKS_PARSE_ERROR, OUT ("\x05\x00" REP_PREFIX "\x08" REP_SUFFIX), 2,
    TWP_SOCKS_ERROR_UNSUPPORTED_ADDRESS },
  { "domain-empty",
    IN (GREETING_NOAUTH "\x05\x01\x00\x03\x00\x01\xbb"),
    TWP_SOCKS_PARSE_ERROR, OUT ("\x05\x00" REP_PREFIX "\x01" REP_SUFFIX), 2,
    TWP_SOCKS_ERROR_PROTOCOL },
  { "domain-nul",
    IN (GREETING_NOAUTH "\x05\x01\x00\x03\x05" "ab\x00" "cd" "\x01\xbb"),
    TWP_SOCKS_PARSE_ERROR, OUT ("\x05\x00" REP_PREFIX "\x01" REP_SUFFIX), 2,
    TWP_SOCKS_ERROR_PROTOCOL },
  { "socks4-cmd-bind",
    IN ("\x04\x02\x00\x09\x7f\x00\x00\x03" "k=v" "\x00"),
    TWP_SOCKS_PARSE_ERROR, OUT (SOCKS4_REJECTED), 1, TWP_SOCKS_ERROR_UNSUPPORTED_COMMAND },
  { "socks4-validator-refuses",
    IN ("\x04\x01\x00\x09\x7f\x00\x00\x03" "bad" "\x00"),
    TWP_SOCKS_PARSE_ERROR, OUT (SOCKS4_REJECTED), 1, TWP_SOCKS_ERROR_AUTH,
    "refused: bad args", .n_validator_calls = 1 },
  { "socks4a-empty-host",
    IN ("\x04\x01\x00\x50\x00\x00\x00\x01" "u" "\x00" "\x00"),
    TWP_SOCKS_PARSE_ERROR, OUT (SOCKS4_REJECTED), 1, TWP_SOCKS_ERROR_PROTOCOL,
    .n_validator_calls = 1 },

  /* ---- Truncated input: no verdict, everything consumed ---- */
  { "truncated-greeting",
    IN ("\x05\x02\x00"),
    TWP_SOCKS_PARSE_NEED_MORE, OUT (""), 0 },
  { "truncated-auth",
    IN (GREETING_USERPASS "\x01\x19" "url=ws://"),
    TWP_SOCKS_PARSE_NEED_MORE, OUT ("\x05\x02"), 1 },
  { "truncated-request",
    IN (GREETING_NOAUTH "\x05\x01\x00\x04\x00\x00"),
    TWP_SOCKS_PARSE_NEED_MORE, OUT ("\x05\x00"), 1 },
  { "truncated-socks4-userid",
    IN ("\x04\x01\x00\x09\x7f\x00\x00\x03" "k=v"),
    TWP_SOCKS_PARSE_NEED_MORE, OUT (""), 0 },
};

static void
check_outcome (const ParserCase *c,
               const Outcome    *out)
{
  g_assert_cmpint (out->result, ==, c->result);
  g_assert_cmpmem (out->replies->data, out->replies->len, c->replies, c->replies_len);
  g_assert_cmpuint (out->n_replies, ==, c->n_replies);
  g_assert_cmpuint (out->n_validator_calls, ==, c->n_validator_calls);

  switch (c->result)
    {
    case TWP_SOCKS_PARSE_DONE:
      g_assert_cmpuint (out->consumed, ==, c->input_len - c->trailing);
      g_assert_cmpint (out->request->version, ==, c->version);
      g_assert_cmpmem (out->request->args, out->request->args_len, c->args, c->args_len);
      g_assert_cmpint (out->request->args[out->request->args_len], ==, '\0');
      g_assert_cmpstr (out->request->host, ==, c->host);
      g_assert_cmpuint (out->request->port, ==, c->port);
      break;
    case TWP_SOCKS_PARSE_ERROR:
      g_assert_error (out->error, TWP_SOCKS_ERROR, c->error_code);
      if (c->error_contains != NULL)
        g_assert_nonnull (strstr (out->error->message, c->error_contains));
      break;
    case TWP_SOCKS_PARSE_NEED_MORE:
      g_assert_cmpuint (out->consumed, ==, c->input_len);
      g_assert_null (out->request);
      g_assert_no_error (out->error);
      break;
    case TWP_SOCKS_PARSE_REPLY:
    default:
      g_assert_not_reached ();
    }
}

static void
test_parser_case (gconstpointer user_data)
{
  const ParserCase *c = user_data;

  for (gsize i = 0; i < G_N_ELEMENTS (chunk_sizes); i++)
    {
      Outcome out;

      g_test_message ("chunk size %" G_GSIZE_FORMAT, chunk_sizes[i]);
      run_parser (c->input, c->input_len, chunk_sizes[i], test_validator, &out);
      check_outcome (c, &out);
      outcome_clear (&out);
    }
}

/* ---- Parser tests built at run time ---- */

/* Builds `01 ULEN UNAME PLEN PASSWD` for @args the way tor does (C10):
 * up to 255 bytes in UNAME, the rest (or a lone 00) in PASSWD. */
static void
append_tor_auth (GByteArray *out,
                 const char *args,
                 gsize       len)
{
  gsize ulen = MIN (len, 255);
  guint8 head[2] = { 0x01, (guint8) ulen };
  guint8 plen;

  g_byte_array_append (out, head, 2);
  g_byte_array_append (out, (const guint8 *) args, ulen);
  if (len > 255)
    {
      plen = (guint8) (len - 255);
      g_byte_array_append (out, &plen, 1);
      g_byte_array_append (out, (const guint8 *) args + 255, len - 255);
    }
  else
    {
      g_byte_array_append (out, (const guint8 *) "\x01\x00", 2);
    }
}

static GByteArray *
build_tor_handshake (const char *args,
                     gsize       len)
{
  GByteArray *out = g_byte_array_new ();

  g_byte_array_append (out, (const guint8 *) GREETING_USERPASS, 4);
  append_tor_auth (out, args, len);
  g_byte_array_append (out, (const guint8 *) CONNECT_127_0_0_1_9, 10);
  return out;
}

static void
check_args_roundtrip (const char *args,
                      gsize       len)
{
  g_autoptr(GByteArray) input = build_tor_handshake (args, len);

  for (gsize i = 0; i < G_N_ELEMENTS (chunk_sizes); i++)
    {
      Outcome out;

      run_parser (input->data, input->len, chunk_sizes[i], test_validator, &out);
      g_assert_cmpint (out.result, ==, TWP_SOCKS_PARSE_DONE);
      g_assert_cmpmem (out.replies->data, out.replies->len, "\x05\x02\x01\x00", 4);
      g_assert_cmpuint (out.consumed, ==, input->len);
      g_assert_cmpmem (out.request->args, out.request->args_len, args, len);
      g_assert_cmpstr (out.request->host, ==, "127.0.0.1");
      g_assert_cmpuint (out.request->port, ==, 9);
      outcome_clear (&out);
    }
}

/* C10, §9: the 354-byte args tor split as ULEN=255 + PLEN=99. */
static void
test_parser_tor_args_354 (void)
{
  g_autoptr(GString) args = g_string_new ("url=ws://example/long;semi=a\\;b;"
                                          "back=c\\\\d;eq=x=y;long=");
  g_autoptr(GByteArray) input = NULL;

  for (int i = 0; i < 300; i++)
    g_string_append_c (args, 'A');
  g_assert_cmpuint (args->len, ==, 354);

  /* The wire form really is ULEN=255 + PLEN=99. */
  input = build_tor_handshake (args->str, args->len);
  g_assert_cmpuint (input->data[5], ==, 255);
  g_assert_cmpuint (input->data[4 + 2 + 255], ==, 99);

  check_args_roundtrip (args->str, args->len);
}

/* C10, §8.2: tor splits at byte 255 even inside an escape; the halves are
 * joined raw, so `\;` survives for the args parser to unescape. */
static void
test_parser_split_escape (void)
{
  g_autoptr(GString) args = g_string_new ("url=ws://example/;pad=");
  g_autoptr(GByteArray) input = NULL;
  Outcome out;

  while (args->len < 254)
    g_string_append_c (args, 'x');
  g_string_append (args, "\\;y;z=1");
  g_assert_cmpint (args->str[254], ==, '\\');
  g_assert_cmpint (args->str[255], ==, ';');

  input = build_tor_handshake (args->str, args->len);
  /* UNAME ends with the backslash, PASSWD starts with the `;`. */
  g_assert_cmpint (input->data[4 + 2 + 254], ==, '\\');
  g_assert_cmpint (input->data[4 + 2 + 255 + 1], ==, ';');

  check_args_roundtrip (args->str, args->len);

  run_parser (input->data, input->len, 1, test_validator, &out);
  g_assert_cmpint (out.request->args[254], ==, '\\');
  g_assert_cmpint (out.request->args[255], ==, ';');
  outcome_clear (&out);
}

/* The largest possible SOCKS5 handshake (255 methods, 510 bytes of args, a
 * 255-byte domain) is accepted and is exactly TWP_SOCKS_MAX_HANDSHAKE_SIZE
 * bytes: nothing a peer sends can make the parser hold more. */
static void
test_parser_maximal (void)
{
  g_autoptr(GByteArray) input = g_byte_array_new ();
  char args[TWP_SOCKS_MAX_ARGS_LEN];
  char domain[255];
  guint8 byte;
  Outcome out;

  byte = 0x05;
  g_byte_array_append (input, &byte, 1);
  byte = 0xff;
  g_byte_array_append (input, &byte, 1);
  for (int i = 0; i < 255; i++)
    {
      byte = (guint8) (i + 1);  /* 0x01..0xff: includes 02 */
      g_byte_array_append (input, &byte, 1);
    }
  memset (args, 'a', sizeof args);
  append_tor_auth (input, args, sizeof args);
  g_byte_array_append (input, (const guint8 *) "\x05\x01\x00\x03\xff", 5);
  memset (domain, 'd', sizeof domain);
  g_byte_array_append (input, (const guint8 *) domain, sizeof domain);
  g_byte_array_append (input, (const guint8 *) "\x00\x50", 2);
  g_assert_cmpuint (input->len, ==, TWP_SOCKS_MAX_HANDSHAKE_SIZE);

  for (gsize i = 0; i < G_N_ELEMENTS (chunk_sizes); i++)
    {
      run_parser (input->data, input->len, chunk_sizes[i], test_validator, &out);
      g_assert_cmpint (out.result, ==, TWP_SOCKS_PARSE_DONE);
      g_assert_cmpuint (out.consumed, ==, TWP_SOCKS_MAX_HANDSHAKE_SIZE);
      g_assert_cmpmem (out.request->args, out.request->args_len, args, sizeof args);
      g_assert_cmpmem (out.request->host, strlen (out.request->host), domain, sizeof domain);
      g_assert_cmpuint (out.request->port, ==, 80);
      outcome_clear (&out);
    }
}

/* C17: SOCKS4 USERID and SOCKS4a host: 255 bytes fit, 256 do not. */
static void
test_parser_socks4_bounds (void)
{
  for (int field = 0; field < 2; field++)
    for (gsize field_len = 254; field_len <= 300; field_len++)
      {
        g_autoptr(GByteArray) input = g_byte_array_new ();
        g_autofree char *value = g_malloc (field_len);
        gboolean fits = field_len <= 255;

        memset (value, field == 0 ? 'u' : 'h', field_len);
        if (field == 0)
          {
            g_byte_array_append (input, (const guint8 *) "\x04\x01\x00\x09\x7f\x00\x00\x03", 8);
            g_byte_array_append (input, (const guint8 *) value, field_len);
            g_byte_array_append (input, (const guint8 *) "", 1);
          }
        else
          {
            g_byte_array_append (input, (const guint8 *) "\x04\x01\x00\x09\x00\x00\x00\x07", 8);
            g_byte_array_append (input, (const guint8 *) "id", 3);
            g_byte_array_append (input, (const guint8 *) value, field_len);
            g_byte_array_append (input, (const guint8 *) "", 1);
          }

        for (gsize i = 0; i < G_N_ELEMENTS (chunk_sizes); i++)
          {
            Outcome out;

            run_parser (input->data, input->len, chunk_sizes[i], test_validator, &out);
            if (fits)
              {
                g_assert_cmpint (out.result, ==, TWP_SOCKS_PARSE_DONE);
                g_assert_cmpuint (out.consumed, ==, input->len);
                if (field == 0)
                  g_assert_cmpmem (out.request->args, out.request->args_len, value, field_len);
                else
                  g_assert_cmpmem (out.request->host, strlen (out.request->host),
                                   value, field_len);
              }
            else
              {
                g_assert_cmpint (out.result, ==, TWP_SOCKS_PARSE_ERROR);
                g_assert_error (out.error, TWP_SOCKS_ERROR, TWP_SOCKS_ERROR_PROTOCOL);
                g_assert_cmpmem (out.replies->data, out.replies->len, SOCKS4_REJECTED, 8);
                /* Refused as soon as byte 256 arrives, not at the NUL. */
                g_assert_cmpuint (out.consumed, <=, input->len - (field_len - 256) - 1);
              }
            outcome_clear (&out);
          }
      }
}

/* Every proper prefix of a handshake is "need more", with exactly the
 * replies due so far; the whole thing is DONE. */
static void
test_parser_every_prefix (void)
{
  static const guint8 transcript[] =
    GREETING_USERPASS "\x01\x19" "url=ws://example/;foo=bar" "\x01\x00" CONNECT_127_0_0_1_9;
  gsize len = sizeof transcript - 1;

  for (gsize prefix = 0; prefix <= len; prefix++)
    {
      Outcome out;
      guint expected_replies = prefix >= 4 + 2 + 25 + 2 ? 2 : prefix >= 4 ? 1 : 0;

      run_parser (transcript, prefix, 1, test_validator, &out);
      g_assert_cmpint (out.result, ==, prefix == len ? TWP_SOCKS_PARSE_DONE
                                                     : TWP_SOCKS_PARSE_NEED_MORE);
      g_assert_cmpuint (out.n_replies, ==, expected_replies);
      g_assert_cmpuint (out.consumed, ==, prefix);
      outcome_clear (&out);
    }
}

static void
test_parser_no_validator (void)
{
  static const guint8 input[] =
    GREETING_USERPASS "\x01\x07" "bad=yes" "\x01\x00" CONNECT_127_0_0_1_9;
  Outcome out;

  run_parser (input, sizeof input - 1, G_MAXSIZE, NULL, &out);
  g_assert_cmpint (out.result, ==, TWP_SOCKS_PARSE_DONE);
  g_assert_cmpstr (out.request->args, ==, "bad=yes");
  outcome_clear (&out);
}

/* A validator that returns FALSE without a GError still fails with AUTH. */
static void
test_parser_silent_refusal (void)
{
  static const guint8 input[] =
    GREETING_USERPASS "\x01\x03" "k=v" "\x01\x00" CONNECT_127_0_0_1_9;
  Outcome out;

  run_parser (input, sizeof input - 1, G_MAXSIZE, silent_refusal_validator, &out);
  g_assert_cmpint (out.result, ==, TWP_SOCKS_PARSE_ERROR);
  g_assert_error (out.error, TWP_SOCKS_ERROR, TWP_SOCKS_ERROR_AUTH);
  g_assert_cmpmem (out.replies->data, out.replies->len, "\x05\x02\x01\x01", 4);
  outcome_clear (&out);
}

/* Feeding nothing is harmless; REPLY stops right after the message. */
static void
test_parser_feed_contract (void)
{
  g_autoptr(TwpSocksParser) parser = twp_socks_parser_new (NULL, NULL);
  g_autoptr(GByteArray) reply = g_byte_array_new ();
  g_autoptr(GError) error = NULL;
  static const guint8 input[] = GREETING_NOAUTH CONNECT_127_0_0_1_9;
  gsize consumed = 99;

  g_assert_cmpint (twp_socks_parser_feed (parser, NULL, 0, &consumed, reply, &error),
                   ==, TWP_SOCKS_PARSE_NEED_MORE);
  g_assert_cmpuint (consumed, ==, 0);
  g_assert_null (twp_socks_parser_steal_request (parser));

  g_assert_cmpint (twp_socks_parser_feed (parser, input, sizeof input - 1,
                                          &consumed, reply, &error),
                   ==, TWP_SOCKS_PARSE_REPLY);
  g_assert_no_error (error);
  g_assert_cmpuint (consumed, ==, 3);
  g_assert_cmpmem (reply->data, reply->len, "\x05\x00", 2);
  g_assert_null (twp_socks_parser_steal_request (parser));

  g_byte_array_set_size (reply, 0);
  g_assert_cmpint (twp_socks_parser_feed (parser, input + 3, sizeof input - 1 - 3,
                                          &consumed, reply, &error),
                   ==, TWP_SOCKS_PARSE_DONE);
  g_assert_cmpuint (consumed, ==, 10);
  g_assert_cmpuint (reply->len, ==, 0);
}

/* ---- Reply formatting (C13, C14) ---- */

static void
test_format_reply (void)
{
  struct {
    int version;
    TwpSocksReply reply;
    const char *bytes;
    gsize len;
  } cases[] = {
    { 5, TWP_SOCKS_REPLY_SUCCEEDED, "\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00", 10 },
    { 5, TWP_SOCKS_REPLY_GENERAL_FAILURE, "\x05\x01\x00\x01\x00\x00\x00\x00\x00\x00", 10 },
    { 5, TWP_SOCKS_REPLY_CONNECTION_REFUSED, "\x05\x05\x00\x01\x00\x00\x00\x00\x00\x00", 10 },
    { 5, TWP_SOCKS_REPLY_TTL_EXPIRED, "\x05\x06\x00\x01\x00\x00\x00\x00\x00\x00", 10 },
    { 5, TWP_SOCKS_REPLY_ADDRESS_TYPE_NOT_SUPPORTED,
      "\x05\x08\x00\x01\x00\x00\x00\x00\x00\x00", 10 },
    { 4, TWP_SOCKS_REPLY_SUCCEEDED, "\x00\x5a\x00\x00\x00\x00\x00\x00", 8 },
    { 4, TWP_SOCKS_REPLY_GENERAL_FAILURE, "\x00\x5b\x00\x00\x00\x00\x00\x00", 8 },
    { 4, TWP_SOCKS_REPLY_HOST_UNREACHABLE, "\x00\x5b\x00\x00\x00\x00\x00\x00", 8 },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GBytes) bytes = twp_socks_format_reply (cases[i].version, cases[i].reply);

      g_assert_cmpmem (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes),
                       cases[i].bytes, cases[i].len);
    }
}

/* ---- Async handshake over loopback TCP ---- */

#define TEST_DEADLINE_MS 10000

static gboolean
deadline_cb (gpointer user_data)
{
  gboolean *expired = user_data;

  *expired = TRUE;
  return G_SOURCE_REMOVE;
}

typedef struct {
  GSocketConnection *server;   /* the PT's end */
  GSocketConnection *client;   /* tor's end */
} Pair;

static void
pair_open (Pair *pair)
{
  g_autoptr(GSocketListener) listener = g_socket_listener_new ();
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new_from_string ("127.0.0.1", 0);
  g_autoptr(GSocketAddress) effective = NULL;
  g_autoptr(GError) error = NULL;

  /* Loopback needs no proxy, and libproxy's C++ trips ASan. */
  g_socket_client_set_enable_proxy (client, FALSE);
  g_socket_listener_add_address (listener, address, G_SOCKET_TYPE_STREAM,
                                 G_SOCKET_PROTOCOL_TCP, NULL, &effective, &error);
  g_assert_no_error (error);
  /* Loopback connect completes in the kernel's backlog, so neither of these
   * blocking calls can wait on the other. */
  pair->client = g_socket_client_connect (client, G_SOCKET_CONNECTABLE (effective),
                                          NULL, &error);
  g_assert_no_error (error);
  pair->server = g_socket_listener_accept (listener, NULL, NULL, &error);
  g_assert_no_error (error);
  g_socket_listener_close (listener);
}

static void
pair_close (Pair *pair)
{
  g_io_stream_close (G_IO_STREAM (pair->client), NULL, NULL);
  g_io_stream_close (G_IO_STREAM (pair->server), NULL, NULL);
  g_clear_object (&pair->client);
  g_clear_object (&pair->server);
}

static void
client_write (Pair       *pair,
              const void *data,
              gsize       len)
{
  g_autoptr(GError) error = NULL;

  /* Small writes on a fresh socket fit its buffer and never block. */
  g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (pair->client)),
                             data, len, NULL, NULL, &error);
  g_assert_no_error (error);
}

typedef struct {
  gboolean done;
  gsize bytes_read;
  GError *error;
} ReadState;

static void
read_all_cb (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  ReadState *state = user_data;

  g_input_stream_read_all_finish (G_INPUT_STREAM (source), result,
                                  &state->bytes_read, &state->error);
  state->done = TRUE;
}

/* Reads up to @len bytes from @stream, stopping early only at EOF. */
static GBytes *
read_up_to (GIOStream *stream,
            gsize      len)
{
  ReadState state = { FALSE, 0, NULL };
  guint8 *buffer = g_malloc (len);

  g_input_stream_read_all_async (g_io_stream_get_input_stream (stream),
                                 buffer, len, G_PRIORITY_DEFAULT, NULL,
                                 read_all_cb, &state);
  TWP_TEST_ASSERT_WAIT (state.done, TEST_DEADLINE_MS);
  g_assert_no_error (state.error);
  return g_bytes_new_take (buffer, state.bytes_read);
}

static void
client_expect (Pair       *pair,
               const void *expected,
               gsize       len)
{
  g_autoptr(GBytes) got = read_up_to (G_IO_STREAM (pair->client), len);

  g_assert_cmpmem (g_bytes_get_data (got, NULL), g_bytes_get_size (got), expected, len);
}

/* Reads until EOF (the server closed) and checks everything that came. */
static void
client_expect_then_eof (Pair       *pair,
                        const void *expected,
                        gsize       len)
{
  g_autoptr(GBytes) got = read_up_to (G_IO_STREAM (pair->client), len + 64);

  g_assert_cmpmem (g_bytes_get_data (got, NULL), g_bytes_get_size (got), expected, len);
}

typedef struct {
  gboolean done;
  TwpSocksRequest *request;
  GBytes *leftover;
  GError *error;
  guint n_validator_calls;
} HandshakeState;

static void
handshake_state_clear (HandshakeState *state)
{
  g_clear_pointer (&state->request, twp_socks_request_free);
  g_clear_pointer (&state->leftover, g_bytes_unref);
  g_clear_error (&state->error);
}

static void
handshake_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  HandshakeState *state = user_data;

  g_assert_false (state->done);
  state->request = twp_socks_server_handshake_finish (G_IO_STREAM (source), result,
                                                      &state->leftover, &state->error);
  g_assert_true ((state->request == NULL) == (state->error != NULL));
  g_assert_true ((state->request == NULL) == (state->leftover == NULL));
  state->done = TRUE;
}

static void
start_handshake (Pair           *pair,
                 HandshakeState *state,
                 GCancellable   *cancellable)
{
  memset (state, 0, sizeof *state);
  twp_socks_server_handshake_async (G_IO_STREAM (pair->server), test_validator,
                                    &state->n_validator_calls, cancellable,
                                    handshake_cb, state);
}

typedef struct {
  gboolean done;
  gboolean ok;
  GError *error;
} ReplyState;

static void
reply_cb (GObject      *source,
          GAsyncResult *result,
          gpointer      user_data)
{
  ReplyState *state = user_data;

  state->ok = twp_socks_server_reply_finish (G_IO_STREAM (source), result, &state->error);
  state->done = TRUE;
}

static void
send_final_reply (Pair            *pair,
                  TwpSocksRequest *request,
                  TwpSocksReply    reply)
{
  ReplyState state = { FALSE, FALSE, NULL };

  twp_socks_server_reply_async (G_IO_STREAM (pair->server), request, reply, NULL,
                                reply_cb, &state);
  TWP_TEST_ASSERT_WAIT (state.done, TEST_DEADLINE_MS);
  g_assert_no_error (state.error);
  g_assert_true (state.ok);
}

/* Lets the main loop run briefly, so a handshake that wrongly completed or
 * wrote early would be seen. */
static void
spin_briefly (void)
{
  gboolean done = FALSE;
  guint id = g_timeout_add (20, deadline_cb, &done);

  g_source_set_static_name (g_main_context_find_source_by_id (NULL, id), "test-socks-spin");
  TWP_TEST_ASSERT_WAIT (done, TEST_DEADLINE_MS);
}

/* C9, C10, C13, C16: tor's step-by-step exchange; each reply arrives
 * before the client sends the next message, and the final reply only when
 * the caller asks for it. */
static void
test_async_tor_transcript (void)
{
  static const char auth[] = "\x01\x19" "url=ws://example/;foo=bar" "\x01\x00";
  Pair pair;
  HandshakeState state;

  pair_open (&pair);
  start_handshake (&pair, &state, NULL);

  client_write (&pair, GREETING_USERPASS, 4);
  client_expect (&pair, "\x05\x02", 2);
  spin_briefly ();
  g_assert_false (state.done);

  client_write (&pair, auth, sizeof auth - 1);
  client_expect (&pair, "\x01\x00", 2);
  spin_briefly ();
  g_assert_false (state.done);

  client_write (&pair, CONNECT_127_0_0_1_9, 10);
  TWP_TEST_ASSERT_WAIT (state.done, TEST_DEADLINE_MS);
  g_assert_no_error (state.error);
  g_assert_cmpint (state.request->version, ==, 5);
  g_assert_cmpstr (state.request->args, ==, "url=ws://example/;foo=bar");
  g_assert_cmpstr (state.request->host, ==, "127.0.0.1");
  g_assert_cmpuint (state.request->port, ==, 9);
  g_assert_cmpuint (g_bytes_get_size (state.leftover), ==, 0);
  g_assert_cmpuint (state.n_validator_calls, ==, 1);

  send_final_reply (&pair, state.request, TWP_SOCKS_REPLY_SUCCEEDED);
  client_expect (&pair, "\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00", 10);

  handshake_state_clear (&state);
  pair_close (&pair);
}

/* A client that pipelines everything, payload included: the replies still
 * come one per step and the payload comes back as leftover (or stays in
 * the stream), never lost. */
static void
test_async_pipelined (void)
{
  static const char all[] =
    GREETING_USERPASS "\x01\x03" "k=v" "\x01\x00" CONNECT_127_0_0_1_9 "payload after connect";
  static const char payload[] = "payload after connect";
  g_autoptr(GByteArray) got = g_byte_array_new ();
  Pair pair;
  HandshakeState state;

  pair_open (&pair);
  start_handshake (&pair, &state, NULL);
  client_write (&pair, all, sizeof all - 1);
  TWP_TEST_ASSERT_WAIT (state.done, TEST_DEADLINE_MS);
  g_assert_no_error (state.error);
  g_assert_cmpstr (state.request->args, ==, "k=v");

  g_byte_array_append (got, g_bytes_get_data (state.leftover, NULL),
                       g_bytes_get_size (state.leftover));
  if (got->len < sizeof payload - 1)
    {
      g_autoptr(GBytes) rest = read_up_to (G_IO_STREAM (pair.server),
                                           sizeof payload - 1 - got->len);

      g_byte_array_append (got, g_bytes_get_data (rest, NULL), g_bytes_get_size (rest));
    }
  g_assert_cmpmem (got->data, got->len, payload, sizeof payload - 1);

  send_final_reply (&pair, state.request, TWP_SOCKS_REPLY_CONNECTION_REFUSED);
  g_io_stream_close (G_IO_STREAM (pair.server), NULL, NULL);
  client_expect_then_eof (&pair, "\x05\x02" "\x01\x00"
                          "\x05\x05\x00\x01\x00\x00\x00\x00\x00\x00", 14);

  handshake_state_clear (&state);
  pair_close (&pair);
}

/* C17 over the wire, with the SOCKS4 final reply. */
static void
test_async_socks4 (void)
{
  static const char request[] = "\x04\x01\x00\x09\x7f\x00\x00\x03" "k=v;k2=v2" "\x00";
  Pair pair;
  HandshakeState state;

  pair_open (&pair);
  start_handshake (&pair, &state, NULL);
  client_write (&pair, request, sizeof request - 1);
  TWP_TEST_ASSERT_WAIT (state.done, TEST_DEADLINE_MS);
  g_assert_no_error (state.error);
  g_assert_cmpint (state.request->version, ==, 4);
  g_assert_cmpstr (state.request->args, ==, "k=v;k2=v2");
  g_assert_cmpstr (state.request->host, ==, "127.0.0.3");

  send_final_reply (&pair, state.request, TWP_SOCKS_REPLY_SUCCEEDED);
  client_expect (&pair, "\x00\x5a\x00\x00\x00\x00\x00\x00", 8);

  handshake_state_clear (&state);
  pair_close (&pair);
}

/* Error replies are fully written before the handshake fails, so closing
 * in the callback cannot cut them off. */
typedef struct {
  const char *name;
  const char *input;
  gsize input_len;
  int error_code;
  const char *expected;
  gsize expected_len;
} AsyncErrorCase;

static const AsyncErrorCase async_error_cases[] = {
  { "no-acceptable-method", "\x05\x01\x01", 3, TWP_SOCKS_ERROR_NO_ACCEPTABLE_METHOD,
    "\x05\xff", 2 },
  { "auth-refused", GREETING_USERPASS "\x01\x03" "bad" "\x01\x00", 4 + 7,
    TWP_SOCKS_ERROR_AUTH, "\x05\x02\x01\x01", 4 },
  { "cmd-bind", GREETING_NOAUTH "\x05\x02\x00\x01\x7f\x00\x00\x01\x00\x09", 3 + 10,
    TWP_SOCKS_ERROR_UNSUPPORTED_COMMAND,
    "\x05\x00" "\x05\x07\x00\x01\x00\x00\x00\x00\x00\x00", 12 },
  { "atyp-5", GREETING_NOAUTH "\x05\x01\x00\x05", 3 + 4,
    TWP_SOCKS_ERROR_UNSUPPORTED_ADDRESS,
    "\x05\x00" "\x05\x08\x00\x01\x00\x00\x00\x00\x00\x00", 12 },
  { "socks4-refused", "\x04\x01\x00\x09\x7f\x00\x00\x03" "bad" "\x00", 12,
    TWP_SOCKS_ERROR_AUTH, SOCKS4_REJECTED, 8 },
  { "http", "GET / HTTP/1.1\r\n\r\n", 18, TWP_SOCKS_ERROR_PROTOCOL, "", 0 },
};

static void
test_async_error (gconstpointer user_data)
{
  const AsyncErrorCase *c = user_data;
  Pair pair;
  HandshakeState state;

  pair_open (&pair);
  start_handshake (&pair, &state, NULL);
  client_write (&pair, c->input, c->input_len);
  TWP_TEST_ASSERT_WAIT (state.done, TEST_DEADLINE_MS);
  g_assert_error (state.error, TWP_SOCKS_ERROR, c->error_code);
  g_assert_null (state.request);
  g_assert_null (state.leftover);

  g_io_stream_close (G_IO_STREAM (pair.server), NULL, NULL);
  client_expect_then_eof (&pair, c->expected, c->expected_len);

  handshake_state_clear (&state);
  pair_close (&pair);
}

/* The client hangs up mid-handshake. */
static void
test_async_eof (void)
{
  Pair pair;
  HandshakeState state;

  pair_open (&pair);
  start_handshake (&pair, &state, NULL);
  client_write (&pair, "\x05\x02\x00", 3);
  g_io_stream_close (G_IO_STREAM (pair.client), NULL, NULL);
  TWP_TEST_ASSERT_WAIT (state.done, TEST_DEADLINE_MS);
  g_assert_error (state.error, TWP_SOCKS_ERROR, TWP_SOCKS_ERROR_CLOSED);

  handshake_state_clear (&state);
  pair_close (&pair);
}

static gboolean
cancel_cb (gpointer user_data)
{
  g_cancellable_cancel (user_data);
  return G_SOURCE_REMOVE;
}

/* C15: the caller's deadline cancels a silent client promptly. */
static void
test_async_cancel (void)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  Pair pair;
  HandshakeState state;
  gint64 cancelled_at;
  guint id;

  pair_open (&pair);
  start_handshake (&pair, &state, cancellable);
  client_write (&pair, "\x05", 1);
  id = g_timeout_add (50, cancel_cb, cancellable);
  g_source_set_static_name (g_main_context_find_source_by_id (NULL, id), "test-socks-cancel");
  while (!g_cancellable_is_cancelled (cancellable))
    {
      gboolean done = FALSE;

      g_assert_false (state.done);
      id = g_timeout_add (10, deadline_cb, &done);
      g_source_set_static_name (g_main_context_find_source_by_id (NULL, id), "test-socks-tick");
      TWP_TEST_ASSERT_WAIT (done, TEST_DEADLINE_MS);
    }
  cancelled_at = g_get_monotonic_time ();
  TWP_TEST_ASSERT_WAIT (state.done, TEST_DEADLINE_MS);
  g_assert_error (state.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_cmpint (g_get_monotonic_time () - cancelled_at, <, G_USEC_PER_SEC);

  handshake_state_clear (&state);
  pair_close (&pair);
}

static void
test_async_cancel_before_start (void)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  Pair pair;
  HandshakeState state;

  pair_open (&pair);
  g_cancellable_cancel (cancellable);
  start_handshake (&pair, &state, cancellable);
  TWP_TEST_ASSERT_WAIT (state.done, TEST_DEADLINE_MS);
  g_assert_error (state.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);

  handshake_state_clear (&state);
  pair_close (&pair);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  for (gsize i = 0; i < G_N_ELEMENTS (parser_cases); i++)
    {
      g_autofree char *path = g_strdup_printf ("/socks/parser/%s", parser_cases[i].name);

      g_test_add_data_func (path, &parser_cases[i], test_parser_case);
    }
  g_test_add_func ("/socks/parser/tor-args-354", test_parser_tor_args_354);
  g_test_add_func ("/socks/parser/split-escape", test_parser_split_escape);
  g_test_add_func ("/socks/parser/maximal", test_parser_maximal);
  g_test_add_func ("/socks/parser/socks4-bounds", test_parser_socks4_bounds);
  g_test_add_func ("/socks/parser/every-prefix", test_parser_every_prefix);
  g_test_add_func ("/socks/parser/no-validator", test_parser_no_validator);
  g_test_add_func ("/socks/parser/silent-refusal", test_parser_silent_refusal);
  g_test_add_func ("/socks/parser/feed-contract", test_parser_feed_contract);
  g_test_add_func ("/socks/reply/format", test_format_reply);
  g_test_add_func ("/socks/async/tor-transcript", test_async_tor_transcript);
  g_test_add_func ("/socks/async/pipelined", test_async_pipelined);
  g_test_add_func ("/socks/async/socks4", test_async_socks4);
  for (gsize i = 0; i < G_N_ELEMENTS (async_error_cases); i++)
    {
      g_autofree char *path = g_strdup_printf ("/socks/async/error/%s",
                                               async_error_cases[i].name);

      g_test_add_data_func (path, &async_error_cases[i], test_async_error);
    }
  g_test_add_func ("/socks/async/eof", test_async_eof);
  g_test_add_func ("/socks/async/cancel", test_async_cancel);
  g_test_add_func ("/socks/async/cancel-before-start", test_async_cancel_before_start);

  return g_test_run ();
}
