/* SPDX-License-Identifier: BSD-3-Clause */
/* Feeds one input, as both a request and a response head, to every
 * handshake parser: head framing, the server's request classification, the
 * client's response check (fixed key, base64 requested or not by the first
 * byte) and forwarded-for on whatever headers parsed. */
#define G_LOG_DOMAIN "twp-fuzz-ws-handshake"

#include "config.h"

#include "twp-ws-handshake.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data,
                            size_t         size);

/* The proposal's binary example: its response can be produced by mutation. */
#define FUZZ_KEY "mzo2xSF9N8VUxuefqO0RSw=="

/* Only canonical IP literals come out of forwarded-for, never a peer's text. */
static void
assert_ip_literal (const char *address)
{
  if (address != NULL)
    g_assert (address[0] != '\0' && strspn (address, "0123456789abcdef.:") == strlen (address));
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TwpWsServerRequest) request = NULL;
  TwpWsClientResponse response = { 0 };
  /* A copy of exactly @size bytes, so ASan sees any read past the end. */
  g_autofree guint8 *copy = g_memdup2 (data, size);
  gsize head_end;

  head_end = twp_http_find_head_end (copy, size, &error);
  g_assert (head_end <= size && head_end <= TWP_HTTP_MAX_HEAD_SIZE);
  g_assert ((error != NULL) == (size >= TWP_HTTP_MAX_HEAD_SIZE && head_end == 0));
  g_clear_error (&error);

  request = twp_ws_server_request_parse ((const char *) copy, size, &error);
  g_assert ((request == NULL) == (error != NULL));
  g_clear_error (&error);
  if (request != NULL)
    {
      g_autofree char *any = twp_http_forwarded_for (request->headers);
      g_autofree char *rfc = twp_http_forwarded_for_from (request->headers, TWP_HTTP_FORWARDED_RFC7239);
      g_autofree char *xff = twp_http_forwarded_for_from (request->headers, TWP_HTTP_FORWARDED_X_FORWARDED_FOR);

      g_assert (request->method != NULL && request->path != NULL);
      g_assert ((request->kind == TWP_WS_REQUEST_UPGRADE) == (request->key != NULL));
      if (request->key != NULL)
        {
          g_autofree char *accept = twp_ws_server_response_accept (request->key, request->wants_base64);

          g_assert (accept != NULL);
        }
      assert_ip_literal (any);
      assert_ip_literal (rfc);
      assert_ip_literal (xff);
    }

  if (!twp_ws_client_response_parse ((const char *) copy, size, FUZZ_KEY, size > 0 && (copy[0] & 1),
                                     &response, &error))
    g_assert (error != NULL && !response.base64);
  else
    g_assert (error == NULL && response.status == 101);
  if (response.location != NULL)
    g_assert (strlen (response.location) <= 256);
  twp_ws_client_response_clear (&response);

  return 0;
}
