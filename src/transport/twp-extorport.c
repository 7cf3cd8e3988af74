/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-extorport"

#include "config.h"

#include "twp-extorport.h"

#include "twp-deadline.h"
#include "twp-random.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

G_DEFINE_QUARK (twp-extorport-error-quark, twp_extorport_error)

gboolean
twp_extorport_parse_cookie (const guint8  *data,
                            gsize          len,
                            guint8         cookie[TWP_EXTORPORT_COOKIE_LEN],
                            GError       **error)
{
  const gsize header_len = strlen (TWP_EXTORPORT_COOKIE_HEADER);

  /* goptlib and tor agree: exactly header + cookie, nothing after. */
  if (len != TWP_EXTORPORT_COOKIE_FILE_LEN)
    {
      g_set_error (error, TWP_EXTORPORT_ERROR, TWP_EXTORPORT_ERROR_COOKIE,
                   "ExtORPort cookie file has %s bytes, expected %u",
                   len > TWP_EXTORPORT_COOKIE_FILE_LEN ? "more than 64" : "fewer than 64",
                   TWP_EXTORPORT_COOKIE_FILE_LEN);
      return FALSE;
    }
  if (memcmp (data, TWP_EXTORPORT_COOKIE_HEADER, header_len) != 0)
    {
      g_set_error_literal (error, TWP_EXTORPORT_ERROR, TWP_EXTORPORT_ERROR_COOKIE,
                           "ExtORPort cookie file has a bad header");
      return FALSE;
    }
  memcpy (cookie, data + header_len, TWP_EXTORPORT_COOKIE_LEN);
  return TRUE;
}

gboolean
twp_extorport_read_cookie (const char  *path,
                           guint8       cookie[TWP_EXTORPORT_COOKIE_LEN],
                           GError     **error)
{
  /* One byte more than a valid file, to tell "exactly 64" from "longer". */
  guint8 buf[TWP_EXTORPORT_COOKIE_FILE_LEN + 1];
  gsize len = 0;
  struct stat st;
  int fd;
  gboolean ok;

  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (cookie != NULL, FALSE);

  /* O_NONBLOCK and the S_ISREG check keep a FIFO or a device at this path
   * from blocking the main context or feeding us endless bytes. */
  fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0)
    {
      int saved_errno = errno;

      g_set_error (error, TWP_EXTORPORT_ERROR, TWP_EXTORPORT_ERROR_COOKIE,
                   "Cannot open ExtORPort cookie file %s: %s",
                   path, g_strerror (saved_errno));
      return FALSE;
    }
  if (fstat (fd, &st) != 0 || !S_ISREG (st.st_mode))
    {
      g_set_error (error, TWP_EXTORPORT_ERROR, TWP_EXTORPORT_ERROR_COOKIE,
                   "ExtORPort cookie file %s is not a regular file", path);
      close (fd);
      return FALSE;
    }
  while (len < sizeof buf)
    {
      ssize_t n = read (fd, buf + len, sizeof buf - len);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          int saved_errno = errno;

          g_set_error (error, TWP_EXTORPORT_ERROR, TWP_EXTORPORT_ERROR_COOKIE,
                       "Cannot read ExtORPort cookie file %s: %s",
                       path, g_strerror (saved_errno));
          close (fd);
          return FALSE;
        }
      if (n == 0)
        break;
      len += (gsize) n;
    }
  close (fd);

  ok = twp_extorport_parse_cookie (buf, len, cookie, error);
  memset (buf, 0, sizeof buf);
  return ok;
}

static void
compute_hash (const char   *what,
              const guint8 *cookie,
              const guint8  client_nonce[TWP_EXTORPORT_NONCE_LEN],
              const guint8  server_nonce[TWP_EXTORPORT_NONCE_LEN],
              guint8        out[TWP_EXTORPORT_HASH_LEN])
{
  g_autoptr(GHmac) hmac = g_hmac_new (G_CHECKSUM_SHA256, cookie, TWP_EXTORPORT_COOKIE_LEN);
  gsize out_len = TWP_EXTORPORT_HASH_LEN;

  g_hmac_update (hmac, (const guchar *) what, strlen (what));
  g_hmac_update (hmac, client_nonce, TWP_EXTORPORT_NONCE_LEN);
  g_hmac_update (hmac, server_nonce, TWP_EXTORPORT_NONCE_LEN);
  g_hmac_get_digest (hmac, out, &out_len);
  g_assert (out_len == TWP_EXTORPORT_HASH_LEN);
}

void
twp_extorport_server_hash (const guint8 *cookie,
                           const guint8  client_nonce[TWP_EXTORPORT_NONCE_LEN],
                           const guint8  server_nonce[TWP_EXTORPORT_NONCE_LEN],
                           guint8        out[TWP_EXTORPORT_HASH_LEN])
{
  compute_hash (TWP_EXTORPORT_SERVER_HASH_STRING, cookie, client_nonce, server_nonce, out);
}

void
twp_extorport_client_hash (const guint8 *cookie,
                           const guint8  client_nonce[TWP_EXTORPORT_NONCE_LEN],
                           const guint8  server_nonce[TWP_EXTORPORT_NONCE_LEN],
                           guint8        out[TWP_EXTORPORT_HASH_LEN])
{
  compute_hash (TWP_EXTORPORT_CLIENT_HASH_STRING, cookie, client_nonce, server_nonce, out);
}

gboolean
twp_extorport_hash_equal (const guint8 a[TWP_EXTORPORT_HASH_LEN],
                          const guint8 b[TWP_EXTORPORT_HASH_LEN])
{
  /* Accumulate every difference so the loop never exits early; volatile
   * keeps the compiler from turning it back into memcmp. */
  volatile guint8 diff = 0;

  for (gsize i = 0; i < TWP_EXTORPORT_HASH_LEN; i++)
    diff |= a[i] ^ b[i];
  return diff == 0;
}

void
twp_extorport_append_command (GByteArray *out,
                              guint16     command,
                              const void *body,
                              gsize       len)
{
  guint8 header[TWP_EXTORPORT_COMMAND_HEADER_LEN];

  g_return_if_fail (out != NULL);
  g_return_if_fail (len <= G_MAXUINT16);
  g_return_if_fail (body != NULL || len == 0);

  header[0] = command >> 8;
  header[1] = command & 0xff;
  header[2] = len >> 8;
  header[3] = len & 0xff;
  g_byte_array_append (out, header, sizeof header);
  if (len > 0)
    g_byte_array_append (out, body, len);
}

gboolean
twp_extorport_is_c_identifier (const char *name)
{
  if (name == NULL || !(g_ascii_isalpha (name[0]) || name[0] == '_'))
    return FALSE;
  for (const char *p = name + 1; *p != '\0'; p++)
    {
      if (!(g_ascii_isalnum (*p) || *p == '_'))
        return FALSE;
    }
  return TRUE;
}

char *
twp_extorport_format_useraddr (GInetSocketAddress  *address,
                               GError             **error)
{
  GInetAddress *inet;
  guint16 port;
  g_autofree char *host = NULL;

  g_return_val_if_fail (G_IS_INET_SOCKET_ADDRESS (address), NULL);

  inet = g_inet_socket_address_get_address (address);
  port = g_inet_socket_address_get_port (address);
  /* tor closes the connection on port 0 (X2). */
  if (port == 0)
    {
      g_set_error_literal (error, TWP_EXTORPORT_ERROR, TWP_EXTORPORT_ERROR_PROTOCOL,
                           "USERADDR port 0 is not accepted by tor");
      return NULL;
    }

  switch (g_inet_address_get_family (inet))
    {
    case G_SOCKET_FAMILY_IPV4:
      host = g_inet_address_to_string (inet);
      return g_strdup_printf ("%s:%u", host, port);

    case G_SOCKET_FAMILY_IPV6:
      {
        const guint8 *bytes = g_inet_address_to_bytes (inet);
        static const guint8 v4mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

        /* A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d;
         * tor's GeoIP statistics need the IPv4 form. */
        if (memcmp (bytes, v4mapped_prefix, sizeof v4mapped_prefix) == 0)
          {
            g_autoptr(GInetAddress) v4 = g_inet_address_new_from_bytes (bytes + 12, G_SOCKET_FAMILY_IPV4);

            host = g_inet_address_to_string (v4);
            return g_strdup_printf ("%s:%u", host, port);
          }
        host = g_inet_address_to_string (inet);
        return g_strdup_printf ("[%s]:%u", host, port);
      }

    case G_SOCKET_FAMILY_INVALID:
    case G_SOCKET_FAMILY_UNIX:
    default:
      g_set_error_literal (error, TWP_EXTORPORT_ERROR, TWP_EXTORPORT_ERROR_PROTOCOL,
                           "USERADDR must be an IPv4 or IPv6 address");
      return NULL;
    }
}

GBytes *
twp_extorport_build_metadata (GInetSocketAddress  *client_address,
                              const char          *transport,
                              GError             **error)
{
  g_autoptr(GByteArray) out = NULL;
  gsize transport_len;

  g_return_val_if_fail (client_address == NULL || G_IS_INET_SOCKET_ADDRESS (client_address), NULL);
  g_return_val_if_fail (transport != NULL, NULL);

  transport_len = strlen (transport);
  /* tor closes on anything but a C identifier (X3); the length bound keeps
   * the 16-bit LEN field honest. */
  if (!twp_extorport_is_c_identifier (transport) || transport_len > G_MAXUINT16)
    {
      g_set_error_literal (error, TWP_EXTORPORT_ERROR, TWP_EXTORPORT_ERROR_PROTOCOL,
                           "TRANSPORT must be a C identifier of at most 65535 bytes");
      return NULL;
    }

  out = g_byte_array_new ();
  if (client_address != NULL)
    {
      g_autofree char *useraddr = twp_extorport_format_useraddr (client_address, error);

      if (useraddr == NULL)
        return NULL;
      twp_extorport_append_command (out, TWP_EXTORPORT_CMD_USERADDR, useraddr, strlen (useraddr));
    }
  twp_extorport_append_command (out, TWP_EXTORPORT_CMD_TRANSPORT, transport, transport_len);
  twp_extorport_append_command (out, TWP_EXTORPORT_CMD_DONE, NULL, 0);
  return g_byte_array_free_to_bytes (g_steal_pointer (&out));
}

/* Parser */

void
twp_extorport_parser_init (TwpExtOrPortParser *parser)
{
  g_return_if_fail (parser != NULL);

  memset (parser, 0, sizeof *parser);
  parser->state = TWP_EXTORPORT_PARSER_AUTH_TYPES;
}

TwpExtOrPortParserState
twp_extorport_parser_get_state (const TwpExtOrPortParser *parser)
{
  return parser->state;
}

gsize
twp_extorport_parser_wanted (const TwpExtOrPortParser *parser)
{
  switch (parser->state)
    {
    case TWP_EXTORPORT_PARSER_AUTH_TYPES:
    case TWP_EXTORPORT_PARSER_STATUS:
      return 1;
    case TWP_EXTORPORT_PARSER_SERVER_HASH:
      return TWP_EXTORPORT_HASH_LEN + TWP_EXTORPORT_NONCE_LEN - parser->buf_len;
    case TWP_EXTORPORT_PARSER_REPLY:
      return TWP_EXTORPORT_COMMAND_HEADER_LEN - parser->buf_len;
    case TWP_EXTORPORT_PARSER_DONE:
    case TWP_EXTORPORT_PARSER_FAILED:
    default:
      return 0;
    }
}

G_GNUC_PRINTF (3, 4)
static gboolean
parser_fail (TwpExtOrPortParser  *parser,
             GError             **error,
             const char          *format,
             ...);

static gboolean
parser_fail_code (TwpExtOrPortParser  *parser,
                  GError             **error,
                  TwpExtOrPortError    code,
                  const char          *message)
{
  parser->state = TWP_EXTORPORT_PARSER_FAILED;
  g_set_error_literal (error, TWP_EXTORPORT_ERROR, code, message);
  return FALSE;
}

static gboolean
parser_fail (TwpExtOrPortParser  *parser,
             GError             **error,
             const char          *format,
             ...)
{
  va_list args;
  g_autofree char *message = NULL;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  return parser_fail_code (parser, error, TWP_EXTORPORT_ERROR_PROTOCOL, message);
}

gboolean
twp_extorport_parser_feed (TwpExtOrPortParser  *parser,
                           const guint8        *data,
                           gsize                len,
                           gsize               *consumed,
                           TwpExtOrPortEvent   *event,
                           GError             **error)
{
  gsize pos = 0;

  g_return_val_if_fail (parser != NULL, FALSE);
  g_return_val_if_fail (data != NULL || len == 0, FALSE);
  g_return_val_if_fail (consumed != NULL, FALSE);
  g_return_val_if_fail (event != NULL, FALSE);

  *consumed = 0;
  *event = TWP_EXTORPORT_EVENT_NONE;

  if (parser->state == TWP_EXTORPORT_PARSER_FAILED)
    return parser_fail (parser, error, "ExtORPort parser used after an error");

  /* Stop at the first event: the caller must answer before tor says more. */
  while (pos < len && *event == TWP_EXTORPORT_EVENT_NONE)
    {
      switch (parser->state)
        {
        case TWP_EXTORPORT_PARSER_AUTH_TYPES:
          {
            guint8 type = data[pos++];

            if (type == 0)
              {
                if (!parser->safe_cookie_offered)
                  return parser_fail_code (parser, error, TWP_EXTORPORT_ERROR_AUTH_TYPE,
                                           "tor does not offer SAFE_COOKIE authentication");
                parser->state = TWP_EXTORPORT_PARSER_SERVER_HASH;
                *event = TWP_EXTORPORT_EVENT_AUTH_TYPES;
              }
            else
              {
                /* Bounded so a peer cannot keep us reading forever. */
                if (parser->n_auth_types >= TWP_EXTORPORT_MAX_AUTH_TYPES)
                  return parser_fail (parser, error, "more than %u ExtORPort auth types",
                                      TWP_EXTORPORT_MAX_AUTH_TYPES);
                parser->n_auth_types++;
                if (type == TWP_EXTORPORT_AUTH_SAFE_COOKIE)
                  parser->safe_cookie_offered = TRUE;
              }
          }
          break;

        case TWP_EXTORPORT_PARSER_SERVER_HASH:
          {
            gsize n = MIN (sizeof parser->buf - parser->buf_len, len - pos);

            memcpy (parser->buf + parser->buf_len, data + pos, n);
            parser->buf_len += n;
            pos += n;
            if (parser->buf_len == sizeof parser->buf)
              {
                memcpy (parser->server_hash, parser->buf, TWP_EXTORPORT_HASH_LEN);
                memcpy (parser->server_nonce, parser->buf + TWP_EXTORPORT_HASH_LEN,
                        TWP_EXTORPORT_NONCE_LEN);
                parser->buf_len = 0;
                parser->state = TWP_EXTORPORT_PARSER_STATUS;
                *event = TWP_EXTORPORT_EVENT_SERVER_HASH;
              }
          }
          break;

        case TWP_EXTORPORT_PARSER_STATUS:
          {
            guint8 status = data[pos++];

            if (status == 0)
              return parser_fail_code (parser, error, TWP_EXTORPORT_ERROR_AUTH_FAILED,
                                       "tor rejected the ExtORPort client hash");
            if (status != 1)
              return parser_fail (parser, error, "unknown ExtORPort auth status %u", status);
            parser->state = TWP_EXTORPORT_PARSER_REPLY;
            *event = TWP_EXTORPORT_EVENT_AUTH_OK;
          }
          break;

        case TWP_EXTORPORT_PARSER_REPLY:
          {
            gsize n = MIN (TWP_EXTORPORT_COMMAND_HEADER_LEN - parser->buf_len, len - pos);
            guint16 command, body_len;

            memcpy (parser->buf + parser->buf_len, data + pos, n);
            parser->buf_len += n;
            pos += n;
            if (parser->buf_len < TWP_EXTORPORT_COMMAND_HEADER_LEN)
              break;
            command = (parser->buf[0] << 8) | parser->buf[1];
            body_len = (parser->buf[2] << 8) | parser->buf[3];
            parser->buf_len = 0;
            if (command == TWP_EXTORPORT_REPLY_DENY)
              return parser_fail_code (parser, error, TWP_EXTORPORT_ERROR_DENIED,
                                       "tor denied the ExtORPort connection");
            if (command != TWP_EXTORPORT_REPLY_OKAY)
              return parser_fail (parser, error, "unexpected ExtORPort reply 0x%04x", command);
            /* OKAY has no body; one would be OR payload we cannot tell apart. */
            if (body_len != 0)
              return parser_fail (parser, error, "ExtORPort OKAY with a %u-byte body", body_len);
            parser->state = TWP_EXTORPORT_PARSER_DONE;
            *event = TWP_EXTORPORT_EVENT_OKAY;
          }
          break;

        case TWP_EXTORPORT_PARSER_DONE:
          /* Leave the rest to the caller: it is OR payload. */
          *consumed = pos;
          return TRUE;

        case TWP_EXTORPORT_PARSER_FAILED:
        default:
          g_assert_not_reached ();
        }
    }

  *consumed = pos;
  return TRUE;
}

/* Asynchronous client exchange */

typedef struct {
  GIOStream *stream;
  GBytes *metadata;
  TwpExtOrPortParser parser;
  guint8 cookie[TWP_EXTORPORT_COOKIE_LEN];
  /* Auth type 01 followed by ClientNonce, written in one go. */
  guint8 hello[1 + TWP_EXTORPORT_NONCE_LEN];
  guint8 client_hash[TWP_EXTORPORT_HASH_LEN];
  /* Large enough for the biggest single read (hash + nonce). */
  guint8 in[TWP_EXTORPORT_HASH_LEN + TWP_EXTORPORT_NONCE_LEN];
  gsize in_wanted;
  /* Cancelled by the deadline or by the caller's cancellable; all I/O
   * uses it, so exactly one operation is pending at any time. */
  GCancellable *op_cancellable;
  TwpDeadline *deadline;
  guint timeout_ms;
  /* What the pending operation waits for, for the timeout's message: an
   * operator needs to know which step tor stalled at. */
  const char *step;
} HandshakeData;

static void
handshake_data_free (gpointer user_data)
{
  HandshakeData *data = user_data;

  g_assert (data->deadline == NULL);
  /* Wipe the secret before it returns to the allocator. */
  memset (data->cookie, 0, sizeof data->cookie);
  g_clear_object (&data->stream);
  g_clear_pointer (&data->metadata, g_bytes_unref);
  g_clear_object (&data->op_cancellable);
  g_free (data);
}

static void
handshake_return (GTask  *task,
                  GError *error)
{
  HandshakeData *data = g_task_get_task_data (task);

  g_clear_pointer (&data->deadline, twp_deadline_free);
  if (error != NULL)
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
}

/* Maps a stream error: cancellation is either our deadline or the
 * caller's; anything else means the connection to tor is gone. */
static void
handshake_return_io_error (GTask      *task,
                           GError     *io_error,
                           const char *what)
{
  HandshakeData *data = g_task_get_task_data (task);
  GError *error;

  if (g_error_matches (io_error, G_IO_ERROR, G_IO_ERROR_CANCELLED) &&
      twp_deadline_has_expired (data->deadline))
    error = g_error_new (TWP_EXTORPORT_ERROR, TWP_EXTORPORT_ERROR_TIMED_OUT,
                         "ExtORPort handshake timed out after %u ms %s", data->timeout_ms, data->step);
  else if (g_error_matches (io_error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    error = g_error_copy (io_error);
  else
    error = g_error_new (TWP_EXTORPORT_ERROR, TWP_EXTORPORT_ERROR_CLOSED,
                         "ExtORPort connection failed while %s: %s", what, io_error->message);
  g_error_free (io_error);
  handshake_return (task, error);
}

static void handshake_read_next (GTask *task);

static void
handshake_write_cb (GObject      *source,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  GError *error = NULL;

  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, &error))
    {
      handshake_return_io_error (task, error, "writing");
      return;
    }
  handshake_read_next (task);
}

static void
handshake_write (GTask      *task,
                 const void *buf,
                 gsize       len,
                 const char *step)
{
  HandshakeData *data = g_task_get_task_data (task);

  data->step = step;
  /* @buf lives in HandshakeData, which the task keeps alive. */
  g_output_stream_write_all_async (g_io_stream_get_output_stream (data->stream),
                                   buf, len, g_task_get_priority (task),
                                   data->op_cancellable, handshake_write_cb,
                                   g_object_ref (task));
}

static void
handshake_read_cb (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  HandshakeData *data = g_task_get_task_data (task);
  GError *error = NULL;
  gsize n_read = 0;
  gsize consumed = 0;
  TwpExtOrPortEvent event = TWP_EXTORPORT_EVENT_NONE;

  if (!g_input_stream_read_all_finish (G_INPUT_STREAM (source), result, &n_read, &error))
    {
      handshake_return_io_error (task, error, "reading");
      return;
    }
  if (n_read < data->in_wanted)
    {
      handshake_return (task, g_error_new_literal (TWP_EXTORPORT_ERROR, TWP_EXTORPORT_ERROR_CLOSED,
                                                   "tor closed the ExtORPort connection during the handshake"));
      return;
    }
  if (!twp_extorport_parser_feed (&data->parser, data->in, n_read, &consumed, &event, &error))
    {
      handshake_return (task, error);
      return;
    }
  /* We only ever ask for what the parser wants, so it takes all of it. */
  g_assert (consumed == n_read);

  switch (event)
    {
    case TWP_EXTORPORT_EVENT_NONE:
      handshake_read_next (task);
      break;

    case TWP_EXTORPORT_EVENT_AUTH_TYPES:
      data->hello[0] = TWP_EXTORPORT_AUTH_SAFE_COOKIE;
      handshake_write (task, data->hello, sizeof data->hello, "sending the client nonce");
      break;

    case TWP_EXTORPORT_EVENT_SERVER_HASH:
      {
        guint8 expected[TWP_EXTORPORT_HASH_LEN];
        gboolean equal;

        twp_extorport_server_hash (data->cookie, data->hello + 1,
                                   data->parser.server_nonce, expected);
        equal = twp_extorport_hash_equal (expected, data->parser.server_hash);
        memset (expected, 0, sizeof expected);
        if (!equal)
          {
            handshake_return (task, g_error_new_literal (TWP_EXTORPORT_ERROR, TWP_EXTORPORT_ERROR_SERVER_HASH,
                                                         "ExtORPort server hash mismatch: wrong or stale cookie"));
            return;
          }
        twp_extorport_client_hash (data->cookie, data->hello + 1,
                                   data->parser.server_nonce, data->client_hash);
        handshake_write (task, data->client_hash, sizeof data->client_hash, "sending the client hash");
      }
      break;

    case TWP_EXTORPORT_EVENT_AUTH_OK:
      {
        gsize len;
        const void *buf = g_bytes_get_data (data->metadata, &len);

        handshake_write (task, buf, len, "sending USERADDR and TRANSPORT");
      }
      break;

    case TWP_EXTORPORT_EVENT_OKAY:
      handshake_return (task, NULL);
      break;

    default:
      g_assert_not_reached ();
    }
}

static void
handshake_read_next (GTask *task)
{
  HandshakeData *data = g_task_get_task_data (task);

  /* Read exactly what the parser needs, so nothing after OKAY (the OR
   * payload) is taken from the stream. */
  data->in_wanted = twp_extorport_parser_wanted (&data->parser);
  g_assert (data->in_wanted > 0 && data->in_wanted <= sizeof data->in);
  switch (twp_extorport_parser_get_state (&data->parser))
    {
    case TWP_EXTORPORT_PARSER_AUTH_TYPES:
      data->step = "waiting for tor's authentication types";
      break;
    case TWP_EXTORPORT_PARSER_SERVER_HASH:
      data->step = "waiting for tor's server hash";
      break;
    case TWP_EXTORPORT_PARSER_STATUS:
      data->step = "waiting for tor's authentication result";
      break;
    case TWP_EXTORPORT_PARSER_REPLY:
    default:
      data->step = "waiting for OKAY";
      break;
    }
  g_input_stream_read_all_async (g_io_stream_get_input_stream (data->stream),
                                 data->in, data->in_wanted, g_task_get_priority (task),
                                 data->op_cancellable, handshake_read_cb,
                                 g_object_ref (task));
}

void
twp_extorport_handshake_async (GIOStream           *stream,
                               const char          *cookie_path,
                               GInetSocketAddress  *client_address,
                               const char          *transport,
                               guint                timeout_ms,
                               GCancellable        *cancellable,
                               GAsyncReadyCallback  callback,
                               gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  HandshakeData *data;
  GError *error = NULL;

  g_return_if_fail (G_IS_IO_STREAM (stream));
  g_return_if_fail (cookie_path != NULL);
  g_return_if_fail (client_address == NULL || G_IS_INET_SOCKET_ADDRESS (client_address));
  g_return_if_fail (transport != NULL);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (stream, cancellable, callback, user_data);
  g_task_set_source_tag (task, twp_extorport_handshake_async);
  g_task_set_name (task, "[twp] ExtORPort handshake");

  data = g_new0 (HandshakeData, 1);
  data->stream = g_object_ref (stream);
  data->op_cancellable = g_cancellable_new ();
  data->timeout_ms = timeout_ms;
  twp_extorport_parser_init (&data->parser);
  g_task_set_task_data (task, data, handshake_data_free);

  /* Everything local is checked before tor hears a byte. The cookie is a
   * bounded read of a regular local file, re-read per connection (S6). */
  data->metadata = twp_extorport_build_metadata (client_address, transport, &error);
  if (data->metadata == NULL ||
      !twp_extorport_read_cookie (cookie_path, data->cookie, &error) ||
      !twp_random_bytes (data->hello + 1, TWP_EXTORPORT_NONCE_LEN, &error))
    {
      handshake_return (task, error);
      return;
    }

  /* X5: one deadline for the whole exchange, removed on completion. A
   * caller already cancelled makes the first I/O fail. */
  data->deadline = twp_deadline_new (data->op_cancellable, cancellable, timeout_ms,
                                     "[twp] ExtORPort handshake timeout");

  handshake_read_next (task);
}

gboolean
twp_extorport_handshake_finish (GIOStream     *stream,
                                GAsyncResult  *result,
                                GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, stream), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == twp_extorport_handshake_async, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}
