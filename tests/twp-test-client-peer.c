/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-test-client-peer"

#include "config.h"

#include "twp-test-client-peer.h"

#include <string.h>

#include "twp-ws-handshake.h"

#define MAX_HEAD 8192
#define MAX_FRAME_PAYLOAD (1024 * 1024)

/* ---- sockets ----------------------------------------------------------- */

static GSocketAddress *
loopback_address (guint16 port)
{
  g_autoptr(GInetAddress) address = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);

  return g_inet_socket_address_new (address, port);
}

GSocket *
twp_test_client_connect (guint16   port,
                         GError  **error)
{
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GSocketAddress) address = loopback_address (port);

  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, error);
  if (socket == NULL)
    return NULL;
  g_socket_set_timeout (socket, TWP_TEST_CLIENT_IO_TIMEOUT);
  if (!g_socket_connect (socket, address, NULL, error))
    return NULL;
  return g_steal_pointer (&socket);
}

GSocket *
twp_test_client_listen (guint16  *port,
                        GError  **error)
{
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GSocketAddress) address = loopback_address (0);
  g_autoptr(GSocketAddress) bound = NULL;

  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, error);
  if (socket == NULL)
    return NULL;
  g_socket_set_timeout (socket, TWP_TEST_CLIENT_IO_TIMEOUT);
  if (!g_socket_bind (socket, address, TRUE, error) || !g_socket_listen (socket, error))
    return NULL;
  bound = g_socket_get_local_address (socket, error);
  if (bound == NULL)
    return NULL;
  *port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  return g_steal_pointer (&socket);
}

gboolean
twp_test_client_send_all (GSocket     *socket,
                          const void  *data,
                          gsize        len,
                          GError     **error)
{
  const char *p = data;

  while (len > 0)
    {
      gssize n = g_socket_send (socket, p, len, NULL, error);

      if (n < 0)
        return FALSE;
      p += n;
      len -= n;
    }
  return TRUE;
}

gboolean
twp_test_client_recv_exact (GSocket  *socket,
                            void     *data,
                            gsize     len,
                            GError  **error)
{
  char *p = data;

  while (len > 0)
    {
      gssize n = g_socket_receive (socket, p, len, NULL, error);

      if (n < 0)
        return FALSE;
      if (n == 0)
        {
          g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED, "unexpected EOF");
          return FALSE;
        }
      p += n;
      len -= n;
    }
  return TRUE;
}

GBytes *
twp_test_client_recv_until_eof (GSocket  *socket,
                                gsize     max,
                                GError  **error)
{
  g_autoptr(GByteArray) data = g_byte_array_new ();
  char buf[16384];

  for (;;)
    {
      gssize n = g_socket_receive (socket, buf, sizeof buf, NULL, error);

      if (n < 0)
        return NULL;
      if (n == 0)
        break;
      g_byte_array_append (data, (const guint8 *) buf, n);
      if (data->len > max)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE,
                       "more than %" G_GSIZE_FORMAT " bytes before EOF", max);
          return NULL;
        }
    }
  return g_byte_array_free_to_bytes (g_steal_pointer (&data));
}

char *
twp_test_client_read_http_head (GSocket  *socket,
                                GError  **error)
{
  g_autoptr(GString) head = g_string_new (NULL);

  /* Byte by byte: the frames that follow must stay in the socket. */
  while (!g_str_has_suffix (head->str, "\r\n\r\n"))
    {
      char c;

      if (head->len >= MAX_HEAD)
        {
          g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE, "HTTP head too large");
          return NULL;
        }
      if (!twp_test_client_recv_exact (socket, &c, 1, error))
        return NULL;
      g_string_append_c (head, c);
    }
  return g_string_free (g_steal_pointer (&head), FALSE);
}

char *
twp_test_client_header_value (const char *head,
                              const char *name)
{
  g_auto(GStrv) lines = g_strsplit (head, "\r\n", -1);
  gsize name_len = strlen (name);

  /* Line 0 is the request line. */
  for (guint i = 1; lines[i] != NULL; i++)
    if (g_ascii_strncasecmp (lines[i], name, name_len) == 0 && lines[i][name_len] == ':')
      return g_strstrip (g_strdup (lines[i] + name_len + 1));
  return NULL;
}

/* ---- frames ------------------------------------------------------------ */

GBytes *
twp_test_client_build_frame (guint8        first_byte,
                             const guint8 *mask,
                             const void   *payload,
                             gsize         len,
                             gboolean      force_len64)
{
  g_autoptr(GByteArray) frame = g_byte_array_sized_new (len + 14);
  guint8 mask_bit = mask != NULL ? 0x80 : 0x00;
  guint8 header[10];
  gsize header_len;

  header[0] = first_byte;
  if (len < 126 && !force_len64)
    {
      header[1] = mask_bit | (guint8) len;
      header_len = 2;
    }
  else if (len <= 0xffff && !force_len64)
    {
      header[1] = mask_bit | 126;
      header[2] = (guint8) (len >> 8);
      header[3] = (guint8) len;
      header_len = 4;
    }
  else
    {
      header[1] = mask_bit | 127;
      for (int i = 0; i < 8; i++)
        header[2 + i] = (guint8) ((guint64) len >> (56 - 8 * i));
      header_len = 10;
    }
  g_byte_array_append (frame, header, header_len);
  if (mask != NULL)
    g_byte_array_append (frame, mask, 4);
  if (len > 0)
    g_byte_array_append (frame, payload, len);
  if (mask != NULL)
    for (gsize i = 0; i < len; i++)
      frame->data[frame->len - len + i] ^= mask[i % 4];
  return g_byte_array_free_to_bytes (g_steal_pointer (&frame));
}

GBytes *
twp_test_client_build_close (guint16 code)
{
  guint8 payload[2] = { code >> 8, code & 0xff };

  return twp_test_client_build_frame (0x88, NULL, payload, sizeof payload, FALSE);
}

void
twp_test_client_frame_free (TwpTestClientFrame *frame)
{
  if (frame == NULL)
    return;
  g_clear_pointer (&frame->payload, g_bytes_unref);
  g_free (frame);
}

TwpTestClientFrame *
twp_test_client_read_frame (GSocket  *socket,
                            GError  **error)
{
  g_autoptr(TwpTestClientFrame) frame = g_new0 (TwpTestClientFrame, 1);
  guint8 header[2];
  guint8 mask[4] = { 0 };
  guint64 len;
  guint8 *payload;

  if (!twp_test_client_recv_exact (socket, header, 2, error))
    return NULL;
  frame->first_byte = header[0];
  frame->opcode = header[0] & 0x0f;
  frame->fin = (header[0] & 0x80) != 0;
  frame->masked = (header[1] & 0x80) != 0;
  len = header[1] & 0x7f;
  if (len == 126)
    {
      guint8 ext[2];

      if (!twp_test_client_recv_exact (socket, ext, 2, error))
        return NULL;
      len = (guint64) ext[0] << 8 | ext[1];
    }
  else if (len == 127)
    {
      guint8 ext[8];

      if (!twp_test_client_recv_exact (socket, ext, 8, error))
        return NULL;
      len = 0;
      for (int i = 0; i < 8; i++)
        len = len << 8 | ext[i];
    }
  if (len > MAX_FRAME_PAYLOAD)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE,
                   "frame of %" G_GUINT64_FORMAT " bytes", len);
      return NULL;
    }
  if (frame->masked && !twp_test_client_recv_exact (socket, mask, 4, error))
    return NULL;
  payload = g_malloc (len + 1);
  if (!twp_test_client_recv_exact (socket, payload, len, error))
    {
      g_free (payload);
      return NULL;
    }
  if (frame->masked)
    for (gsize i = 0; i < len; i++)
      payload[i] ^= mask[i % 4];
  frame->payload = g_bytes_new_take (payload, len);
  return g_steal_pointer (&frame);
}

guint
twp_test_client_close_code (const TwpTestClientFrame *frame)
{
  gsize len;
  const guint8 *data = g_bytes_get_data (frame->payload, &len);

  if (len == 0)
    return 1005;
  if (len == 1)
    return 0;
  return (guint) data[0] << 8 | data[1];
}

/* ---- raw peer ---------------------------------------------------------- */

struct _TwpTestClientPeer
{
  GSocket *listener;
  guint16 port;
  gboolean allow_base64;
  gboolean go_reference;
  guint delay_ms;
  GBytes *early;
  TwpTestClientPeerScript script;
  gpointer user_data;
  GThread *thread;

  /* written by the thread, read after done */
  char *request;
  gint64 accepted_at;
  GError *error;
  int done;
};

static gboolean
peer_handshake (TwpTestClientPeer  *peer,
                GSocket            *socket,
                gboolean           *base64,
                GError            **error)
{
  g_autofree char *key = NULL;
  g_autofree char *protocol = NULL;
  g_autofree char *accept = NULL;
  g_autoptr(GString) response = g_string_new (NULL);

  peer->request = twp_test_client_read_http_head (socket, error);
  if (peer->request == NULL)
    return FALSE;
  key = twp_test_client_header_value (peer->request, "Sec-WebSocket-Key");
  if (key == NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "no Sec-WebSocket-Key");
      return FALSE;
    }
  protocol = twp_test_client_header_value (peer->request, "Sec-WebSocket-Protocol");
  accept = twp_ws_compute_accept (key);
  if (peer->go_reference)
    {
      g_auto(GStrv) offered = g_strsplit (protocol != NULL ? protocol : "", ",", -1);

      /* Its server offers base64 and picks it from the client's
       * comma-separated list; Go writes the headers it set sorted by
       * their canonical names. */
      *base64 = FALSE;
      for (char **p = offered; *p != NULL; p++)
        if (g_str_equal (g_strstrip (*p), "base64"))
          *base64 = TRUE;
      g_string_append (response, "HTTP/1.0 101 Switching Protocols\r\n"
                                 "Connection: Upgrade\r\n");
      g_string_append_printf (response, "Sec-Websocket-Accept: %s\r\n", accept);
      if (*base64)
        g_string_append (response, "Sec-Websocket-Protocol: base64\r\n");
      g_string_append (response, "Upgrade: websocket\r\n\r\n");
    }
  else
    {
      *base64 = peer->allow_base64 && g_strcmp0 (protocol, "base64") == 0;
      g_string_append (response, "HTTP/1.1 101 Switching Protocols\r\n"
                                 "Upgrade: websocket\r\n"
                                 "Connection: Upgrade\r\n");
      g_string_append_printf (response, "Sec-WebSocket-Accept: %s\r\n", accept);
      if (*base64)
        g_string_append (response, "Sec-WebSocket-Protocol: base64\r\n");
      g_string_append (response, "\r\n");
    }
  if (peer->early != NULL)
    g_string_append_len (response, g_bytes_get_data (peer->early, NULL), g_bytes_get_size (peer->early));
  if (peer->delay_ms > 0)
    g_usleep (peer->delay_ms * 1000);
  peer->accepted_at = g_get_monotonic_time ();
  return twp_test_client_send_all (socket, response->str, response->len, error);
}

static gpointer
peer_thread (gpointer user_data)
{
  TwpTestClientPeer *peer = user_data;
  g_autoptr(GSocket) socket = NULL;
  gboolean base64 = FALSE;

  socket = g_socket_accept (peer->listener, NULL, &peer->error);
  if (socket != NULL)
    {
      g_socket_set_timeout (socket, TWP_TEST_CLIENT_IO_TIMEOUT);
      if (peer_handshake (peer, socket, &base64, &peer->error))
        peer->script (socket, base64, peer->user_data);
      g_socket_close (socket, NULL);
    }
  g_atomic_int_set (&peer->done, 1);
  g_main_context_wakeup (NULL);
  return NULL;
}

TwpTestClientPeer *
twp_test_client_peer_new (gboolean                 allow_base64,
                          TwpTestClientPeerScript  script,
                          gpointer                 user_data)
{
  return twp_test_client_peer_new_full (allow_base64, 0, NULL, script, user_data);
}

TwpTestClientPeer *
twp_test_client_peer_new_full (gboolean                 allow_base64,
                               guint                    delay_ms,
                               GBytes                  *early,
                               TwpTestClientPeerScript  script,
                               gpointer                 user_data)
{
  TwpTestClientPeer *peer = g_new0 (TwpTestClientPeer, 1);
  g_autoptr(GError) error = NULL;

  peer->allow_base64 = allow_base64;
  peer->delay_ms = delay_ms;
  peer->early = early != NULL ? g_bytes_ref (early) : NULL;
  peer->script = script;
  peer->user_data = user_data;
  peer->listener = twp_test_client_listen (&peer->port, &error);
  g_assert_no_error (error);
  peer->thread = g_thread_new ("raw-ws-peer", peer_thread, peer);
  return peer;
}

TwpTestClientPeer *
twp_test_client_peer_new_go_reference (TwpTestClientPeerScript  script,
                                       gpointer                 user_data)
{
  TwpTestClientPeer *peer = g_new0 (TwpTestClientPeer, 1);
  g_autoptr(GError) error = NULL;

  peer->allow_base64 = TRUE;
  peer->go_reference = TRUE;
  peer->script = script;
  peer->user_data = user_data;
  peer->listener = twp_test_client_listen (&peer->port, &error);
  g_assert_no_error (error);
  peer->thread = g_thread_new ("go-reference-peer", peer_thread, peer);
  return peer;
}

guint16
twp_test_client_peer_get_port (TwpTestClientPeer *peer)
{
  return peer->port;
}

gboolean
twp_test_client_peer_is_done (TwpTestClientPeer *peer)
{
  return g_atomic_int_get (&peer->done) != 0;
}

const char *
twp_test_client_peer_get_request (TwpTestClientPeer *peer)
{
  g_assert_true (twp_test_client_peer_is_done (peer));
  return peer->request;
}

gint64
twp_test_client_peer_get_accepted_at (TwpTestClientPeer *peer)
{
  g_assert_true (twp_test_client_peer_is_done (peer));
  return peer->accepted_at;
}

const GError *
twp_test_client_peer_get_error (TwpTestClientPeer *peer)
{
  g_assert_true (twp_test_client_peer_is_done (peer));
  return peer->error;
}

void
twp_test_client_peer_free (TwpTestClientPeer *peer)
{
  g_assert_true (twp_test_client_peer_is_done (peer));
  g_thread_join (peer->thread);
  g_socket_close (peer->listener, NULL);
  g_object_unref (peer->listener);
  g_free (peer->request);
  g_clear_pointer (&peer->early, g_bytes_unref);
  g_clear_error (&peer->error);
  g_free (peer);
}
