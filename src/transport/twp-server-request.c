/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-server"

#include "config.h"

#include "twp-server-request.h"

#include <string.h>

G_DEFINE_QUARK (twp-server-request-error-quark, twp_server_request_error)

static gboolean
origin_allowed (const TwpServerOptions *options,
                const char             *origin)
{
  if (options->allowed_origins == NULL)
    return TRUE;
  return origin != NULL && g_strv_contains ((const char * const *) options->allowed_origins, origin);
}

static gboolean
path_matches (const TwpServerOptions *options,
              const char             *target)
{
  gsize path_len = strcspn (target, "?");

  return strlen (options->path) == path_len && strncmp (options->path, target, path_len) == 0;
}

guint
twp_server_request_check (const TwpServerOptions  *options,
                          const guint8            *data,
                          gsize                    len,
                          gsize                   *head_len,
                          TwpWsServerRequest     **request,
                          char                   **why)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TwpWsServerRequest) parsed = NULL;
  gsize end;

  g_return_val_if_fail (options != NULL && options->path != NULL, 400);
  g_return_val_if_fail (data != NULL || len == 0, 400);
  g_return_val_if_fail (head_len != NULL && request != NULL && why != NULL, 400);

  *head_len = 0;
  *request = NULL;
  *why = NULL;

  end = twp_http_find_head_end (data, len, &error);
  if (error != NULL)
    {
      *why = g_strdup (error->message);
      return 400;
    }
  if (end == 0)
    return 0;
  *head_len = end;

  parsed = twp_ws_server_request_parse ((const char *) data, end, &error);
  if (parsed == NULL)
    {
      *why = g_strdup (error->message);
      return 400;
    }

  switch (parsed->kind)
    {
    case TWP_WS_REQUEST_PLAIN_HTTP:
      /* A port that answers like an ordinary web server does not announce
       * a bridge: static files when configured, otherwise a plain 404. */
      if (g_strcmp0 (parsed->method, "GET") != 0 && g_strcmp0 (parsed->method, "HEAD") != 0)
        {
          *why = g_strdup ("a method other than GET or HEAD");
          *request = g_steal_pointer (&parsed);
          return 405;
        }
      if (options->static_dir == NULL)
        {
          *why = g_strdup ("an ordinary page request");
          *request = g_steal_pointer (&parsed);
          return 404;
        }
      *request = g_steal_pointer (&parsed);
      return 200;
    case TWP_WS_REQUEST_OLD_VERSION:
      /* RFC 6455 4.4: a 426 says which version we speak. */
      *why = g_strdup (parsed->reason);
      *request = g_steal_pointer (&parsed);
      return 426;
    case TWP_WS_REQUEST_BAD:
      *why = g_strdup (parsed->reason);
      *request = g_steal_pointer (&parsed);
      return 400;
    case TWP_WS_REQUEST_UPGRADE:
    default:
      break;
    }

  if (!path_matches (options, parsed->path))
    {
      *why = g_strdup ("a WebSocket upgrade for another path");
      *request = g_steal_pointer (&parsed);
      return 404;
    }
  if (!origin_allowed (options, parsed->origin))
    {
      *why = g_strdup ("a WebSocket upgrade from an origin not allowed");
      *request = g_steal_pointer (&parsed);
      return 403;
    }
  *request = g_steal_pointer (&parsed);
  return 101;
}

gboolean
twp_server_request_is_trusted_proxy (const TwpServerOptions *options,
                                     GInetAddress           *address)
{
  g_return_val_if_fail (options != NULL, FALSE);
  g_return_val_if_fail (G_IS_INET_ADDRESS (address), FALSE);

  if (options->trusted_proxies == NULL)
    return FALSE;
  for (guint i = 0; i < options->trusted_proxies->len; i++)
    if (g_inet_address_mask_matches (g_ptr_array_index (options->trusted_proxies, i), address))
      return TRUE;
  return FALSE;
}

GInetSocketAddress *
twp_server_request_client_address (const TwpServerOptions  *options,
                                   GInetSocketAddress      *peer,
                                   TwpHttpHeaders          *headers,
                                   GError                 **error)
{
  const char *name;
  g_autofree char *forwarded = NULL;
  g_autoptr(GInetAddress) address = NULL;

  g_return_val_if_fail (options != NULL, NULL);
  g_return_val_if_fail (G_IS_INET_SOCKET_ADDRESS (peer), NULL);
  g_return_val_if_fail (headers != NULL, NULL);

  /* Anyone else's header is ignored, or any client could pick its own
   * address. */
  if (!twp_server_request_is_trusted_proxy (options, g_inet_socket_address_get_address (peer)))
    return g_object_ref (peer);
  /* Only the header the proxy itself writes counts: nginx appends to
   * X-Forwarded-For but passes a client's own Forwarded header through. */
  name = options->trust_rfc7239 ? "Forwarded" : "X-Forwarded-For";
  if (twp_http_headers_get_list (headers, name) == NULL)
    return g_object_ref (peer);
  forwarded = twp_http_forwarded_for_from (headers, options->trust_rfc7239
                                                    ? TWP_HTTP_FORWARDED_RFC7239
                                                    : TWP_HTTP_FORWARDED_X_FORWARDED_FOR);
  if (forwarded != NULL)
    address = g_inet_address_new_from_string (forwarded);
  if (address == NULL)
    {
      /* Falling back to the peer would make every such client the proxy
       * (loopback, often), uncounted and unknown to tor. */
      g_set_error (error, TWP_SERVER_REQUEST_ERROR, TWP_SERVER_REQUEST_ERROR_FORWARDED,
                   "the trusted proxy's %s header names no client address", name);
      return NULL;
    }
  /* Proxies report no usable port; tor needs one (X2) and uses only the
   * address, so the proxy connection's port stands in. */
  return G_INET_SOCKET_ADDRESS (g_inet_socket_address_new (address, g_inet_socket_address_get_port (peer)));
}
