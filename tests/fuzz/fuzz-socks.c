/* SPDX-License-Identifier: BSD-3-Clause */
/* Fuzzes the SOCKS parser. The first input byte picks a chunk size; the rest
 * is fed in chunks of that size, as a client's reads would arrive, and the
 * outcome must equal the outcome of feeding everything at once. */
#define G_LOG_DOMAIN "fuzz-socks"

#include "config.h"

#include "twp-socks.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static gboolean
fuzz_validator (const char  *args,
                gsize        args_len,
                gpointer     user_data,
                GError     **error)
{
  if (args_len > TWP_SOCKS_MAX_ARGS_LEN || args[args_len] != '\0')
    abort ();
  if (memmem (args, args_len, "bad", 3) != NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "bad args");
      return FALSE;
    }
  return TRUE;
}

typedef struct {
  TwpSocksParseResult result;
  GByteArray *replies;
  gsize consumed;
  GQuark error_domain;
  int error_code;
  TwpSocksRequest *request;
} Outcome;

static void
run (const guint8 *input,
     gsize         len,
     gsize         chunk,
     Outcome      *out)
{
  g_autoptr(TwpSocksParser) parser = twp_socks_parser_new (fuzz_validator, NULL);
  g_autoptr(GByteArray) reply = g_byte_array_new ();
  gsize delivered = 0;
  gsize pos = 0;

  memset (out, 0, sizeof *out);
  out->replies = g_byte_array_new ();

  for (;;)
    {
      g_autoptr(GError) error = NULL;
      gsize consumed = 0;

      if (pos == delivered)
        {
          if (delivered == len)
            {
              out->result = TWP_SOCKS_PARSE_NEED_MORE;
              break;
            }
          delivered = MIN (len, delivered + chunk);
        }

      out->result = twp_socks_parser_feed (parser, input + pos, delivered - pos,
                                           &consumed, reply, &error);
      if (consumed > delivered - pos)
        abort ();
      pos += consumed;
      /* Replies are short, fixed-size messages. */
      if (reply->len > 10)
        abort ();
      g_byte_array_append (out->replies, reply->data, reply->len);
      g_byte_array_set_size (reply, 0);

      if (out->result == TWP_SOCKS_PARSE_NEED_MORE)
        {
          if (pos != delivered || error != NULL)
            abort ();
          continue;
        }
      if (out->result == TWP_SOCKS_PARSE_REPLY)
        {
          if (error != NULL)
            abort ();
          continue;
        }
      if (out->result == TWP_SOCKS_PARSE_DONE)
        {
          out->request = twp_socks_parser_steal_request (parser);
          if (out->request == NULL || error != NULL || out->request->host == NULL
              || out->request->args_len > TWP_SOCKS_MAX_ARGS_LEN
              || out->request->args[out->request->args_len] != '\0'
              || (out->request->version != 4 && out->request->version != 5))
            abort ();
        }
      else
        {
          if (error == NULL || error->domain != TWP_SOCKS_ERROR)
            abort ();
          out->error_domain = error->domain;
          out->error_code = error->code;
        }
      break;
    }

  out->consumed = pos;
  if (pos > TWP_SOCKS_MAX_HANDSHAKE_SIZE)
    abort ();
}

static void
outcome_clear (Outcome *out)
{
  g_byte_array_unref (out->replies);
  twp_socks_request_free (out->request);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  Outcome whole;
  Outcome chunked;
  gsize chunk;

  if (size == 0)
    return 0;
  /* 0 means "everything at once"; otherwise 1..16 bytes per read. */
  chunk = data[0] % 17 == 0 ? G_MAXSIZE : data[0] % 17;
  data++;
  size--;

  run (data, size, G_MAXSIZE, &whole);
  run (data, size, chunk, &chunked);

  /* Chunking must not change anything observable. */
  if (whole.result != chunked.result || whole.consumed != chunked.consumed
      || whole.replies->len != chunked.replies->len
      || (whole.replies->len > 0
          && memcmp (whole.replies->data, chunked.replies->data, whole.replies->len) != 0)
      || whole.error_code != chunked.error_code)
    abort ();
  if (whole.request != NULL
      && (whole.request->version != chunked.request->version
          || whole.request->port != chunked.request->port
          || whole.request->args_len != chunked.request->args_len
          || memcmp (whole.request->args, chunked.request->args, whole.request->args_len) != 0
          || strcmp (whole.request->host, chunked.request->host) != 0))
    abort ();

  outcome_clear (&whole);
  outcome_clear (&chunked);
  return 0;
}
