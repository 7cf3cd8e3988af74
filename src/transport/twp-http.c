/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-http"

#include "config.h"

#include "twp-http.h"
#include "twp-http-private.h"

#include <string.h>

G_DEFINE_QUARK (twp-http-error-quark, twp_http_error)

/* Each read of a head: small, so that what a peer sends after its head
 * (frames it pipelines) stays a few bytes, kept for the caller. */
#define HEAD_READ_SIZE 1024

struct _TwpHttpHeaders
{
  SoupMessageHeaders *soup;
};

gsize
twp_http_find_head_end (const guint8  *buf,
                        gsize          len,
                        GError       **error)
{
  /* Only the first TWP_HTTP_MAX_HEAD_SIZE bytes may hold the head. */
  gsize limit = MIN (len, TWP_HTTP_MAX_HEAD_SIZE);
  gsize i;

  for (i = 0; i < limit; i++)
    {
      if (buf[i] != '\n')
        continue;
      /* An empty line: LF LF, or LF CR LF (the CR before a LF is ignored). */
      if (i + 1 < limit && buf[i + 1] == '\n')
        return i + 2;
      if (i + 2 < limit && buf[i + 1] == '\r' && buf[i + 2] == '\n')
        return i + 3;
    }

  if (len >= TWP_HTTP_MAX_HEAD_SIZE)
    g_set_error (error, TWP_HTTP_ERROR, TWP_HTTP_ERROR_TOO_LARGE,
                 "HTTP head longer than %d bytes", TWP_HTTP_MAX_HEAD_SIZE);
  return 0;
}

/* Reading a head */

typedef struct {
  TwpHttpHeadEndFunc find_end;
  gsize max_size;
  GByteArray *buf;               /* NULL once returned */
  gsize head_len;
} ReadHead;

static void
read_head_free (ReadHead *data)
{
  g_clear_pointer (&data->buf, g_byte_array_unref);
  g_free (data);
}

static void read_head_next (GTask *task);

static void
head_read_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  ReadHead *data = g_task_get_task_data (task);
  GError *error = NULL;
  gsize head_len;
  gssize n;

  n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, &error);
  if (n < 0)
    {
      g_task_return_error (task, error);
      return;
    }
  g_byte_array_set_size (data->buf, data->buf->len - HEAD_READ_SIZE + (gsize) n);
  if (n == 0)
    {
      g_task_return_new_error (task, TWP_HTTP_ERROR, TWP_HTTP_ERROR_TRUNCATED,
                               "Connection closed before the end of the HTTP head");
      return;
    }

  head_len = data->find_end (data->buf->data, data->buf->len, &error);
  if (error != NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  if (head_len > 0)
    {
      data->head_len = head_len;
      g_task_return_pointer (task, g_byte_array_free_to_bytes (g_steal_pointer (&data->buf)),
                             (GDestroyNotify) g_bytes_unref);
      return;
    }
  /* find_end () may wait for more than max_size: the bound is ours. */
  if (data->buf->len >= data->max_size)
    {
      g_task_return_new_error (task, TWP_HTTP_ERROR, TWP_HTTP_ERROR_TOO_LARGE,
                               "HTTP head longer than %" G_GSIZE_FORMAT " bytes", data->max_size);
      return;
    }
  read_head_next (g_steal_pointer (&task));
}

/* Takes over @task. */
static void
read_head_next (GTask *task)
{
  ReadHead *data = g_task_get_task_data (task);
  gsize old_len = data->buf->len;

  g_byte_array_set_size (data->buf, old_len + HEAD_READ_SIZE);
  g_input_stream_read_async (G_INPUT_STREAM (g_task_get_source_object (task)),
                             data->buf->data + old_len, HEAD_READ_SIZE,
                             g_task_get_priority (task), g_task_get_cancellable (task),
                             head_read_cb, task);
}

void
twp_http_read_head_async (GInputStream        *stream,
                          TwpHttpHeadEndFunc   find_end,
                          gsize                max_size,
                          GCancellable        *cancellable,
                          GAsyncReadyCallback  callback,
                          gpointer             user_data)
{
  GTask *task;
  ReadHead *data;

  g_return_if_fail (G_IS_INPUT_STREAM (stream));
  g_return_if_fail (max_size > 0);

  task = g_task_new (stream, cancellable, callback, user_data);
  g_task_set_source_tag (task, twp_http_read_head_async);
  data = g_new0 (ReadHead, 1);
  data->find_end = find_end != NULL ? find_end : twp_http_find_head_end;
  data->max_size = max_size;
  data->buf = g_byte_array_new ();
  g_task_set_task_data (task, data, (GDestroyNotify) read_head_free);
  read_head_next (task);
}

GBytes *
twp_http_read_head_finish (GInputStream  *stream,
                           GAsyncResult  *result,
                           gsize         *head_len,
                           GError       **error)
{
  GTask *task = G_TASK (result);
  GBytes *bytes;

  g_return_val_if_fail (g_task_is_valid (result, stream), NULL);
  g_return_val_if_fail (g_task_get_source_tag (task) == twp_http_read_head_async, NULL);
  g_return_val_if_fail (head_len != NULL, NULL);

  *head_len = 0;
  bytes = g_task_propagate_pointer (task, error);
  if (bytes == NULL)
    return NULL;
  *head_len = ((ReadHead *) g_task_get_task_data (task))->head_len;
  return bytes;
}

/* Request headers */

TwpHttpHeaders *
twp_http_headers_new_take (SoupMessageHeaders *soup)
{
  TwpHttpHeaders *headers;

  g_return_val_if_fail (soup != NULL, NULL);

  headers = g_new0 (TwpHttpHeaders, 1);
  headers->soup = soup;
  return headers;
}

TwpHttpHeaders *
twp_http_headers_new (void)
{
  return twp_http_headers_new_take (soup_message_headers_new (SOUP_MESSAGE_HEADERS_REQUEST));
}

void
twp_http_headers_free (TwpHttpHeaders *headers)
{
  if (headers == NULL)
    return;
  soup_message_headers_unref (headers->soup);
  g_free (headers);
}

SoupMessageHeaders *
twp_http_headers_get_soup (TwpHttpHeaders *headers)
{
  g_return_val_if_fail (headers != NULL, NULL);
  return headers->soup;
}

void
twp_http_headers_append (TwpHttpHeaders *headers,
                         const char     *name,
                         const char     *value)
{
  g_return_if_fail (headers != NULL && name != NULL && value != NULL);
  soup_message_headers_append (headers->soup, name, value);
}

void
twp_http_headers_replace (TwpHttpHeaders *headers,
                          const char     *name,
                          const char     *value)
{
  g_return_if_fail (headers != NULL && name != NULL && value != NULL);
  soup_message_headers_replace (headers->soup, name, value);
}

const char *
twp_http_headers_get_one (TwpHttpHeaders *headers,
                          const char     *name)
{
  g_return_val_if_fail (headers != NULL && name != NULL, NULL);
  return soup_message_headers_get_one (headers->soup, name);
}

const char *
twp_http_headers_get_list (TwpHttpHeaders *headers,
                           const char     *name)
{
  g_return_val_if_fail (headers != NULL && name != NULL, NULL);
  return soup_message_headers_get_list (headers->soup, name);
}

gboolean
twp_http_header_value_is_safe (const char *value)
{
  const char *p;

  for (p = value; *p != '\0'; p++)
    {
      if ((guchar) *p < 0x20 || (guchar) *p == 0x7f)
        return FALSE;
    }
  return TRUE;
}

/* Plain HTTP responses */

static const char *
status_phrase (guint status)
{
  switch (status)
    {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Not Allowed"; /* nginx's wording */
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 503: return "Service Temporarily Unavailable"; /* nginx's wording */
    default: return NULL;
    }
}

/* Status line and the headers every response carries: the Server header
 * says what most of the web says, never tor or websocket. */
static GString *
response_head_new (guint        status,
                   const char  *content_type,
                   gsize        content_length)
{
  g_autoptr(GDateTime) now = g_date_time_new_now_utc ();
  g_autofree char *date = soup_date_time_to_string (now, SOUP_DATE_HTTP);
  GString *response = g_string_sized_new (512);

  g_string_append_printf (response, "HTTP/1.1 %u %s\r\n", status, status_phrase (status));
  g_string_append (response, "Server: nginx\r\n");
  g_string_append_printf (response, "Date: %s\r\n", date);
  g_string_append_printf (response, "Content-Type: %s\r\n", content_type);
  g_string_append_printf (response, "Content-Length: %" G_GSIZE_FORMAT "\r\n", content_length);
  return response;
}

char *
twp_http_response_error (guint status)
{
  g_autofree char *body = NULL;
  const char *phrase = status_phrase (status);
  GString *response;

  g_return_val_if_fail (phrase != NULL && status >= 400, NULL);

  body = g_strdup_printf ("<html>\r\n"
                          "<head><title>%u %s</title></head>\r\n"
                          "<body>\r\n"
                          "<center><h1>%u %s</h1></center>\r\n"
                          "<hr><center>nginx</center>\r\n"
                          "</body>\r\n"
                          "</html>\r\n",
                          status, phrase, status, phrase);

  response = response_head_new (status, "text/html", strlen (body));
  if (status == 405)
    g_string_append (response, "Allow: GET, HEAD\r\n");
  if (status == 426)
    {
      /* RFC 6455 section 4.4; RFC 7230 section 6.7 wants the "upgrade"
       * connection option next to an Upgrade header. */
      g_string_append (response, "Sec-WebSocket-Version: 13\r\n");
      g_string_append (response, "Upgrade: websocket\r\n");
      g_string_append (response, "Connection: upgrade, close\r\n");
    }
  else
    {
      g_string_append (response, "Connection: close\r\n");
    }
  g_string_append (response, "\r\n");
  g_string_append (response, body);
  return g_string_free (response, FALSE);
}

char *
twp_http_response_ok (const char *content_type,
                      GBytes     *body,
                      gboolean    head_only,
                      gsize      *length)
{
  gconstpointer data;
  gsize size;
  GString *response;

  g_return_val_if_fail (content_type != NULL && twp_http_header_value_is_safe (content_type), NULL);
  g_return_val_if_fail (body != NULL, NULL);
  g_return_val_if_fail (length != NULL, NULL);

  data = g_bytes_get_data (body, &size);
  response = response_head_new (200, content_type, size);
  g_string_append (response, "Connection: close\r\n");
  g_string_append (response, "\r\n");
  if (!head_only && size > 0)
    g_string_append_len (response, data, (gssize) size);

  *length = response->len;
  return g_string_free (response, FALSE);
}

/* Reverse proxies */

/* Digits only, 1..65535: a port a proxy may append to the address. */
static gboolean
port_is_valid (const char *port)
{
  guint64 value;

  if (port[0] == '\0' || strlen (port) > 5)
    return FALSE;
  if (!g_ascii_string_to_unsigned (port, 10, 1, 65535, &value, NULL))
    return FALSE;
  return TRUE;
}

/* Whether @address can be a client's own: not unspecified (0.0.0.0/8,
 * ::), broadcast, reserved (240.0.0.0/4) or multicast. Such an address
 * never sends a TCP handshake; written by a proxy it means the proxy did
 * not know, and as USERADDR it would pool unrelated clients. */
static gboolean
is_client_address (GInetAddress *address)
{
  const guint8 *bytes = g_inet_address_to_bytes (address);

  if (g_inet_address_get_is_any (address) || g_inet_address_get_is_multicast (address))
    return FALSE;
  if (g_inet_address_get_family (address) == G_SOCKET_FAMILY_IPV4)
    return bytes[0] != 0 && bytes[0] < 224;
  return TRUE;
}

/* An IP literal in canonical form, or NULL. An IPv4-mapped IPv6 address
 * comes out as the IPv4 address it is. Zone IDs are refused: they only
 * mean something on the proxy's host. */
static char *
canonical_ip (const char *text,
              gsize       len,
              gboolean    want_ipv6)
{
  g_autofree char *copy = g_strndup (text, len);
  g_autoptr(GInetAddress) address = NULL;
  const guint8 *bytes;

  if (copy[0] == '\0' || strchr (copy, '%') != NULL)
    return NULL;
  address = g_inet_address_new_from_string (copy);
  if (address == NULL)
    return NULL;
  if ((g_inet_address_get_family (address) == G_SOCKET_FAMILY_IPV6) != want_ipv6)
    return NULL;
  bytes = g_inet_address_to_bytes (address);
  /* ::ffff:a.b.c.d (GLib 2.74 has no g_inet_address_get_is_mapped_v4 ()) */
  if (want_ipv6 && memcmp (bytes, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0)
    {
      g_autoptr(GInetAddress) v4 = g_inet_address_new_from_bytes (bytes + 12, G_SOCKET_FAMILY_IPV4);

      g_set_object (&address, v4);
    }
  if (!is_client_address (address))
    return NULL;
  return g_inet_address_to_string (address);
}

/* One node of either header: "1.2.3.4", "1.2.3.4:80", "[v6]", "[v6]:80",
 * and (X-Forwarded-For only) a bare "v6". Anything else ("unknown",
 * "_obfuscated", names) is NULL. */
static char *
parse_node (const char *node,
            gboolean    allow_bare_ipv6)
{
  const char *colon;

  if (node[0] == '[')
    {
      const char *close = strchr (node, ']');

      if (close == NULL)
        return NULL;
      if (close[1] != '\0' && (close[1] != ':' || !port_is_valid (close + 2)))
        return NULL;
      return canonical_ip (node + 1, (gsize) (close - node - 1), TRUE);
    }

  colon = strchr (node, ':');
  if (colon == NULL)
    return canonical_ip (node, strlen (node), FALSE);
  if (strchr (colon + 1, ':') != NULL)
    return allow_bare_ipv6 ? canonical_ip (node, strlen (node), TRUE) : NULL;
  if (!port_is_valid (colon + 1))
    return NULL;
  return canonical_ip (node, (gsize) (colon - node), FALSE);
}

/* Whether every quoted-string in @list is closed, with the rules libsoup's
 * list parser uses (backslash escapes only inside quotes). */
static gboolean
quotes_balanced (const char *list)
{
  gboolean quoted = FALSE;
  const char *p;

  for (p = list; *p != '\0'; p++)
    {
      if (*p == '"')
        quoted = !quoted;
      else if (quoted && *p == '\\' && p[1] != '\0')
        p++;
    }
  return !quoted;
}

/* The last element of a comma-separated list (quoted strings respected),
 * or NULL for an empty list. */
static char *
last_list_element (const char *list)
{
  GSList *items;
  char *last = NULL;
  GSList *l;

  /* A client that ends its own header in an open quote would swallow the
   * element the proxy appends ('for="6.6.6.6""' + ', for=10.0.0.1' decodes
   * as 6.6.6.6): the proxy's element must stand on its own. */
  if (!quotes_balanced (list))
    return NULL;

  items = soup_header_parse_list (list);
  l = g_slist_last (items);
  if (l != NULL)
    last = g_steal_pointer (&l->data);
  soup_header_free_list (items);
  return last;
}

static char *
forwarded_rfc7239 (const char *value)
{
  g_autofree char *element = last_list_element (value);
  GHashTable *params;
  const char *node;
  char *result = NULL;

  if (element == NULL)
    return NULL;
  /* Strict: a repeated "for" makes the element unusable. */
  params = soup_header_parse_semi_param_list_strict (element);
  if (params == NULL)
    return NULL;
  /* Parameter names are case-insensitive here, as RFC 7239 wants; quoted
   * values come back unquoted. */
  node = g_hash_table_lookup (params, "for");
  if (node != NULL)
    result = parse_node (node, FALSE);
  soup_header_free_param_list (params);
  return result;
}

static char *
forwarded_x_forwarded_for (const char *value)
{
  g_autofree char *element = last_list_element (value);

  if (element == NULL)
    return NULL;
  return parse_node (element, TRUE);
}

char *
twp_http_forwarded_for_from (TwpHttpHeaders         *headers,
                             TwpHttpForwardedSource  source)
{
  const char *forwarded;
  const char *x_forwarded_for;

  if (headers == NULL)
    return NULL;

  forwarded = twp_http_headers_get_list (headers, "Forwarded");
  x_forwarded_for = twp_http_headers_get_list (headers, "X-Forwarded-For");

  switch (source)
    {
    case TWP_HTTP_FORWARDED_ANY:
      /* A present but unusable Forwarded does not fall back to
       * X-Forwarded-For: the proxy told us it does not know. */
      if (forwarded != NULL)
        return forwarded_rfc7239 (forwarded);
      return x_forwarded_for != NULL ? forwarded_x_forwarded_for (x_forwarded_for) : NULL;
    case TWP_HTTP_FORWARDED_RFC7239:
      return forwarded != NULL ? forwarded_rfc7239 (forwarded) : NULL;
    case TWP_HTTP_FORWARDED_X_FORWARDED_FOR:
      return x_forwarded_for != NULL ? forwarded_x_forwarded_for (x_forwarded_for) : NULL;
    default:
      g_return_val_if_reached (NULL);
    }
}

char *
twp_http_forwarded_for (TwpHttpHeaders *headers)
{
  return twp_http_forwarded_for_from (headers, TWP_HTTP_FORWARDED_ANY);
}
