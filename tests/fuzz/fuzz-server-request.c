/* SPDX-License-Identifier: BSD-3-Clause */
/* Drives the server's own entry point for a request head: the bytes arrive
 * in reads as a client sends them, and after each read
 * twp_server_request_check () is asked what to answer (the server asks once
 * twp_http_read_head_async () has the head, the first answer other than
 * 0 here); then, for an upgrade, which client address to report to tor (from
 * a trusted proxy and from anyone else). Checks that the answer is one the
 * server can send, does not depend on how the bytes were split, and that
 * no address a client cannot have comes out. */
#define G_LOG_DOMAIN "twp-fuzz-server-request"

#include "config.h"

#include "twp-server-request.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data,
                            size_t         size);

/* The server's reads are at most 1 KiB; shorter ones cut heads anywhere. */
#define FUZZ_READ_MAX 1024

static gboolean
status_is_known (guint status)
{
  switch (status)
    {
    case 0: case 101: case 200: case 400: case 403: case 404: case 405: case 426:
      return TRUE;
    default:
      return FALSE;
    }
}

static void
check_client_address (TwpServerOptions   *options,
                      TwpWsServerRequest *request,
                      const char         *peer_ip,
                      gboolean            trusted)
{
  g_autoptr(GSocketAddress) peer = g_inet_socket_address_new_from_string (peer_ip, 4711);
  g_autoptr(GInetSocketAddress) address = NULL;
  g_autoptr(GError) error = NULL;
  GInetAddress *inet;

  address = twp_server_request_client_address (options, G_INET_SOCKET_ADDRESS (peer), request->headers, &error);
  g_assert ((address == NULL) == (error != NULL));
  if (address == NULL)
    {
      /* Only a trusted proxy's header can make a request unusable. */
      g_assert (trusted);
      g_assert (g_error_matches (error, TWP_SERVER_REQUEST_ERROR, TWP_SERVER_REQUEST_ERROR_FORWARDED));
      return;
    }
  g_assert (g_inet_socket_address_get_port (address) == 4711);
  inet = g_inet_socket_address_get_address (address);
  if (!trusted)
    g_assert (g_inet_address_equal (inet, g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (peer))));
  g_assert (!g_inet_address_get_is_any (inet) && !g_inet_address_get_is_multicast (inet));
  if (g_inet_address_get_family (inet) == G_SOCKET_FAMILY_IPV4)
    {
      const guint8 *bytes = g_inet_address_to_bytes (inet);

      g_assert (bytes[0] != 0 && bytes[0] < 224);
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  TwpServerOptions options;
  g_autoptr(GByteArray) buffer = g_byte_array_new ();
  g_autoptr(TwpWsServerRequest) request = NULL;
  g_autoptr(TwpWsServerRequest) again = NULL;
  g_autoptr(GInetAddress) proxy = g_inet_address_new_from_string ("127.0.0.1");
  g_autofree char *why = NULL;
  g_autofree char *why_again = NULL;
  gsize read_size = 1 + size % FUZZ_READ_MAX;
  gsize offset = 0;
  gsize head_len = 0;
  gsize head_len_again = 0;
  guint status = 0;

  /* What the server would run with: path=/ and one trusted proxy. */
  memset (&options, 0, sizeof options);
  options.path = g_strdup ("/");
  options.trusted_proxies = g_ptr_array_new_with_free_func (g_object_unref);
  g_ptr_array_add (options.trusted_proxies, g_inet_address_mask_new (proxy, 32, NULL));
  options.trust_rfc7239 = size > 0 && (data[0] & 1);

  while (status == 0 && offset < size)
    {
      gsize n = MIN (read_size, size - offset);

      /* A fresh copy each time, so ASan sees any read past the end. */
      g_byte_array_append (buffer, data + offset, n);
      offset += n;
      g_clear_pointer (&why, g_free);
      status = twp_server_request_check (&options, buffer->data, buffer->len, &head_len, &request, &why);
      g_assert (status_is_known (status));
      g_assert (head_len <= buffer->len);
      g_assert ((why != NULL) == (status != 0 && status != 101 && status != 200));
      if (status == 0)
        g_assert (buffer->len < TWP_HTTP_MAX_HEAD_SIZE && head_len == 0 && request == NULL);
    }

  /* The answer depends on the bytes, not on how they were read: all of
   * them at once (the bytes after a head do not count) give the same. */
  {
    g_autofree guint8 *copy = g_memdup2 (data, size);

    g_assert (twp_server_request_check (&options, copy, size, &head_len_again, &again, &why_again) == status);
    g_assert (head_len_again == head_len);
    g_assert (g_strcmp0 (why, why_again) == 0);
  }

  if (status == 101)
    {
      g_assert (request != NULL && request->kind == TWP_WS_REQUEST_UPGRADE && request->key != NULL);
      g_assert (head_len > 0);
      check_client_address (&options, request, "127.0.0.1", TRUE);
      check_client_address (&options, request, "192.0.2.1", FALSE);
    }

  g_free (options.path);
  g_ptr_array_unref (options.trusted_proxies);
  return 0;
}
