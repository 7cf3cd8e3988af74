/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-test-client-proxy"

#include "config.h"

#include "twp-test-client-proxy.h"

#include <poll.h>
#include <string.h>

#include "twp-test-client-peer.h"

#define HTTP_OK "HTTP/1.1 200 Connection established\r\n\r\n"
#define HTTP_BAD_GATEWAY "HTTP/1.1 502 Bad Gateway\r\n\r\n"

struct _TwpTestClientProxy
{
  TwpTestClientProxyType type;
  GSocket *listener;
  guint16 port;
  GThread *thread;
  int stop;
  int done;
  TwpTestClientProxyResult result;
};

/* ---- SOCKS5 ------------------------------------------------------------ */

static char *
recv_counted_string (GSocket  *socket,
                     GError  **error)
{
  guint8 len;
  char buf[256];

  if (!twp_test_client_recv_exact (socket, &len, 1, error) ||
      !twp_test_client_recv_exact (socket, buf, len, error))
    return NULL;
  return g_strndup (buf, len);
}

static gboolean
socks5_handshake (TwpTestClientProxy  *proxy,
                  GSocket             *socket,
                  GError             **error)
{
  guint8 head[4];
  guint8 methods[255];
  guint8 port[2];
  gboolean userpass = FALSE;
  static const guint8 choose_userpass[2] = { 0x05, 0x02 };
  static const guint8 auth_ok[2] = { 0x01, 0x00 };

  if (!twp_test_client_recv_exact (socket, head, 2, error) ||
      !twp_test_client_recv_exact (socket, methods, head[1], error))
    return FALSE;
  if (head[0] != 0x05)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "SOCKS version %u", head[0]);
      return FALSE;
    }
  for (guint i = 0; i < head[1]; i++)
    userpass = userpass || methods[i] == 0x02;
  if (!userpass)
    {
      /* The tests always configure credentials: insist on them. */
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "username/password not offered");
      return FALSE;
    }
  if (!twp_test_client_send_all (socket, choose_userpass, 2, error) ||
      !twp_test_client_recv_exact (socket, head, 1, error))
    return FALSE;
  if (head[0] != 0x01)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "RFC 1929 version %u", head[0]);
      return FALSE;
    }
  proxy->result.username = recv_counted_string (socket, error);
  if (proxy->result.username == NULL)
    return FALSE;
  proxy->result.password = recv_counted_string (socket, error);
  if (proxy->result.password == NULL ||
      !twp_test_client_send_all (socket, auth_ok, 2, error))
    return FALSE;

  if (!twp_test_client_recv_exact (socket, head, 4, error))
    return FALSE;
  if (head[0] != 0x05 || head[1] != 0x01 || head[2] != 0x00)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "bad request %02x %02x %02x",
                   head[0], head[1], head[2]);
      return FALSE;
    }
  switch (head[3])
    {
    case 0x01:
      {
        guint8 ip[4];

        if (!twp_test_client_recv_exact (socket, ip, 4, error))
          return FALSE;
        proxy->result.target_host = g_strdup_printf ("%u.%u.%u.%u", ip[0], ip[1], ip[2], ip[3]);
      }
      break;
    case 0x03:
      proxy->result.target_host = recv_counted_string (socket, error);
      if (proxy->result.target_host == NULL)
        return FALSE;
      break;
    default:
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "ATYP %u", head[3]);
      return FALSE;
    }
  if (!twp_test_client_recv_exact (socket, port, 2, error))
    return FALSE;
  proxy->result.target_port = (guint16) (port[0] << 8 | port[1]);
  return TRUE;
}

static gboolean
socks5_reply (GSocket  *socket,
              guint8    rep,
              GError  **error)
{
  guint8 reply[10] = { 0x05, rep, 0x00, 0x01, 0, 0, 0, 0, 0, 0 };

  return twp_test_client_send_all (socket, reply, sizeof reply, error);
}

/* ---- HTTP CONNECT ------------------------------------------------------ */

static gboolean
http_handshake (TwpTestClientProxy  *proxy,
                GSocket             *socket,
                GError             **error)
{
  g_autofree char *head = NULL;
  g_autofree char *auth = NULL;
  g_auto(GStrv) request_line = NULL;
  const char *colon;

  head = twp_test_client_read_http_head (socket, error);
  if (head == NULL)
    return FALSE;
  request_line = g_strsplit_set (head, " \r", 4);
  if (g_strv_length (request_line) < 3 || strcmp (request_line[0], "CONNECT") != 0 ||
      (colon = strrchr (request_line[1], ':')) == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "not a CONNECT: %s", head);
      return FALSE;
    }
  proxy->result.target_host = g_strndup (request_line[1], colon - request_line[1]);
  proxy->result.target_port = (guint16) g_ascii_strtoull (colon + 1, NULL, 10);

  auth = twp_test_client_header_value (head, "Proxy-Authorization");
  if (auth != NULL && g_ascii_strncasecmp (auth, "Basic ", 6) == 0)
    {
      gsize len;
      g_autofree guchar *decoded = g_base64_decode (auth + 6, &len);
      g_autofree char *credentials = g_strndup ((const char *) decoded, len);
      const char *separator = strchr (credentials, ':');

      /* RFC 7617: the user-id cannot contain ':', the password may. */
      if (separator != NULL)
        {
          proxy->result.username = g_strndup (credentials, separator - credentials);
          proxy->result.password = g_strdup (separator + 1);
        }
    }
  return TRUE;
}

/* ---- splice ------------------------------------------------------------ */

static gboolean
forward (GSocket   *from,
         GSocket   *to,
         guint64   *counter,
         gboolean  *eof,
         GError   **error)
{
  char buf[65536];
  gssize n = g_socket_receive (from, buf, sizeof buf, NULL, error);

  if (n < 0)
    return FALSE;
  if (n == 0)
    {
      *eof = TRUE;
      g_socket_shutdown (to, FALSE, TRUE, NULL);
      return TRUE;
    }
  *counter += n;
  return twp_test_client_send_all (to, buf, n, error);
}

static void
splice (TwpTestClientProxy *proxy,
        GSocket            *client,
        GSocket            *target)
{
  gboolean client_eof = FALSE;
  gboolean target_eof = FALSE;

  while (!(client_eof && target_eof) && !g_atomic_int_get (&proxy->stop))
    {
      struct pollfd fds[2] = {
        { .fd = g_socket_get_fd (client), .events = client_eof ? 0 : POLLIN },
        { .fd = g_socket_get_fd (target), .events = target_eof ? 0 : POLLIN },
      };
      GError **error = &proxy->result.error;

      /* A short timeout only so that the stop flag is seen. */
      if (poll (fds, 2, 100) < 0)
        continue;
      if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) &&
          !forward (client, target, &proxy->result.bytes_to_target, &client_eof, error))
        return;
      if ((fds[1].revents & (POLLIN | POLLHUP | POLLERR)) &&
          !forward (target, client, &proxy->result.bytes_from_target, &target_eof, error))
        return;
    }
}

static gpointer
proxy_thread (gpointer user_data)
{
  TwpTestClientProxy *proxy = user_data;
  g_autoptr(GSocket) client = NULL;
  g_autoptr(GSocket) target = NULL;
  GError **error = &proxy->result.error;
  gboolean ok;

  client = g_socket_accept (proxy->listener, NULL, error);
  if (client == NULL)
    goto out;
  g_socket_set_timeout (client, TWP_TEST_CLIENT_IO_TIMEOUT);

  ok = proxy->type == TWP_TEST_CLIENT_PROXY_SOCKS5
       ? socks5_handshake (proxy, client, error)
       : http_handshake (proxy, client, error);
  if (!ok)
    goto out;

  /* The tests only ever ask for loopback targets. */
  if (g_strcmp0 (proxy->result.target_host, "127.0.0.1") != 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED, "target %s", proxy->result.target_host);
      goto out;
    }
  target = twp_test_client_connect (proxy->result.target_port, error);
  if (proxy->type == TWP_TEST_CLIENT_PROXY_SOCKS5)
    ok = socks5_reply (client, target != NULL ? 0x00 : 0x05, target == NULL ? NULL : error);
  else if (target != NULL)
    ok = twp_test_client_send_all (client, HTTP_OK, strlen (HTTP_OK), error);
  else
    ok = twp_test_client_send_all (client, HTTP_BAD_GATEWAY, strlen (HTTP_BAD_GATEWAY), NULL);
  if (target != NULL && ok)
    splice (proxy, client, target);

out:
  if (client != NULL)
    g_socket_close (client, NULL);
  if (target != NULL)
    g_socket_close (target, NULL);
  g_atomic_int_set (&proxy->done, 1);
  g_main_context_wakeup (NULL);
  return NULL;
}

TwpTestClientProxy *
twp_test_client_proxy_new (TwpTestClientProxyType type)
{
  TwpTestClientProxy *proxy = g_new0 (TwpTestClientProxy, 1);
  g_autoptr(GError) error = NULL;

  proxy->type = type;
  proxy->listener = twp_test_client_listen (&proxy->port, &error);
  g_assert_no_error (error);
  proxy->thread = g_thread_new ("upstream-proxy", proxy_thread, proxy);
  return proxy;
}

guint16
twp_test_client_proxy_get_port (TwpTestClientProxy *proxy)
{
  return proxy->port;
}

gboolean
twp_test_client_proxy_is_done (TwpTestClientProxy *proxy)
{
  return g_atomic_int_get (&proxy->done) != 0;
}

void
twp_test_client_proxy_stop (TwpTestClientProxy *proxy)
{
  g_atomic_int_set (&proxy->stop, 1);
}

const TwpTestClientProxyResult *
twp_test_client_proxy_get_result (TwpTestClientProxy *proxy)
{
  g_assert_true (twp_test_client_proxy_is_done (proxy));
  return &proxy->result;
}

void
twp_test_client_proxy_free (TwpTestClientProxy *proxy)
{
  g_assert_true (twp_test_client_proxy_is_done (proxy));
  g_thread_join (proxy->thread);
  g_socket_close (proxy->listener, NULL);
  g_object_unref (proxy->listener);
  g_free (proxy->result.username);
  g_free (proxy->result.password);
  g_free (proxy->result.target_host);
  g_clear_error (&proxy->result.error);
  g_free (proxy);
}
