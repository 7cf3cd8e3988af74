/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-tls"

#include "config.h"

#include "twp-tls-stream.h"

#include <gnutls/gnutls.h>
#include <string.h>

#include "twp-tls-input-stream.h"
#include "twp-tls-output-stream.h"
#include "twp-tls-stream-private.h"

/* ---- credentials --------------------------------------------------------- */

struct _TwpTlsCredentials
{
  gatomicrefcount ref_count;
  gnutls_certificate_credentials_t certificate;
};

TwpTlsCredentials *
twp_tls_credentials_new (GTlsCertificate  *certificate,
                         GError          **error)
{
  g_autoptr(GString) chain = g_string_new (NULL);
  g_autofree char *key_pem = NULL;
  TwpTlsCredentials *credentials;
  gnutls_datum_t cert_data;
  gnutls_datum_t key_data;
  int ret;

  g_return_val_if_fail (G_IS_TLS_CERTIFICATE (certificate), NULL);

  /* The leaf and the intermediates GIO found in the same file, in order. */
  for (GTlsCertificate *c = certificate; c != NULL; c = g_tls_certificate_get_issuer (c))
    {
      g_autofree char *pem = NULL;

      g_object_get (c, "certificate-pem", &pem, NULL);
      if (pem != NULL)
        g_string_append (chain, pem);
    }
  g_object_get (certificate, "private-key-pem", &key_pem, NULL);
  if (chain->len == 0 || key_pem == NULL)
    {
      g_set_error_literal (error, G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE,
                           "the TLS certificate or its key cannot be exported");
      return NULL;
    }

  credentials = g_new0 (TwpTlsCredentials, 1);
  g_atomic_ref_count_init (&credentials->ref_count);
  ret = gnutls_certificate_allocate_credentials (&credentials->certificate);
  if (ret == 0)
    {
      cert_data.data = (unsigned char *) chain->str;
      cert_data.size = chain->len;
      key_data.data = (unsigned char *) key_pem;
      key_data.size = strlen (key_pem);
      ret = gnutls_certificate_set_x509_key_mem2 (credentials->certificate, &cert_data, &key_data,
                                                  GNUTLS_X509_FMT_PEM, NULL, 0);
    }
  /* The key's PEM is a secret: gone from our memory before anything else. */
  memset (key_pem, 0, strlen (key_pem));
  if (ret < 0)
    {
      g_set_error (error, G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE, "cannot use the TLS certificate: %s",
                   gnutls_strerror (ret));
      twp_tls_credentials_unref (credentials);
      return NULL;
    }
  return credentials;
}

TwpTlsCredentials *
twp_tls_credentials_ref (TwpTlsCredentials *credentials)
{
  g_return_val_if_fail (credentials != NULL, NULL);

  g_atomic_ref_count_inc (&credentials->ref_count);
  return credentials;
}

void
twp_tls_credentials_unref (TwpTlsCredentials *credentials)
{
  if (credentials == NULL || !g_atomic_ref_count_dec (&credentials->ref_count))
    return;
  if (credentials->certificate != NULL)
    gnutls_certificate_free_credentials (credentials->certificate);
  g_free (credentials);
}

/* ---- the connection ------------------------------------------------------ */

struct _TwpTlsStream
{
  GIOStream parent_instance;

  /* owned */
  GSocketConnection *base;
  TwpTlsCredentials *credentials;
  gnutls_session_t session;
  GInputStream *input;
  GOutputStream *output;
  GTask *handshake_task;
  GSource *handshake_source;

  /* borrowed */
  GSocket *socket;               /* base's */

  gboolean handshaked;
  gboolean bye_sent;
  guint alerts_in_a_row;         /* warning alerts with no data between them */
};

/* GnuTLS bounds warning alerts during the handshake only; after it a peer
 * streaming them would keep a read looping, and the main loop with it. */
#define MAX_ALERTS_IN_A_ROW 16

enum {
  PROP_0,
  PROP_BASE_IO_STREAM,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

G_DEFINE_FINAL_TYPE (TwpTlsStream, twp_tls_stream, G_TYPE_IO_STREAM)

static void
set_gnutls_error (GError     **error,
                  int          code,
                  const char  *what)
{
  g_set_error (error, G_TLS_ERROR, G_TLS_ERROR_MISC, "TLS %s failed: %s", what, gnutls_strerror (code));
}

gssize
twp_tls_stream_recv (TwpTlsStream  *self,
                     void          *buffer,
                     gsize          count,
                     gboolean       blocking,
                     GCancellable  *cancellable,
                     GError       **error)
{
  if (!self->handshaked)
    {
      g_set_error_literal (error, G_TLS_ERROR, G_TLS_ERROR_MISC, "TLS read before the handshake");
      return -1;
    }
  for (;;)
    {
      ssize_t n;

      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        return -1;
      n = gnutls_record_recv (self->session, buffer, count);
      if (n >= 0)
        {
          self->alerts_in_a_row = 0;
          return n;
        }
      if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
        {
          GIOCondition wait = gnutls_record_get_direction (self->session) == 1 ? G_IO_OUT : G_IO_IN;

          if (!blocking)
            {
              g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK, "TLS read would block");
              return -1;
            }
          if (!g_socket_condition_wait (self->socket, wait, cancellable, error))
            return -1;
          continue;
        }
      if (n == GNUTLS_E_PREMATURE_TERMINATION || n == GNUTLS_E_UNEXPECTED_PACKET_LENGTH)
        {
          /* What glib-networking reports too: the peer's TCP ended with no
           * close_notify, so the end of the data cannot be trusted. */
          g_set_error_literal (error, G_TLS_ERROR, G_TLS_ERROR_EOF, "TLS connection closed without close_notify");
          return -1;
        }
      if (n == GNUTLS_E_REHANDSHAKE)
        {
          /* TLS 1.2 renegotiation: never needed by a WebSocket client. */
          g_set_error_literal (error, G_TLS_ERROR, G_TLS_ERROR_MISC, "TLS renegotiation refused");
          return -1;
        }
      if (!gnutls_error_is_fatal (n))
        {
          /* A warning alert: ignored, a few times. */
          if (++self->alerts_in_a_row > MAX_ALERTS_IN_A_ROW)
            {
              g_set_error_literal (error, G_TLS_ERROR, G_TLS_ERROR_MISC, "too many TLS warning alerts");
              return -1;
            }
          continue;
        }
      set_gnutls_error (error, n, "read");
      return -1;
    }
}

gssize
twp_tls_stream_send (TwpTlsStream  *self,
                     const void    *buffer,
                     gsize          count,
                     gboolean       blocking,
                     GCancellable  *cancellable,
                     GError       **error)
{
  if (!self->handshaked)
    {
      g_set_error_literal (error, G_TLS_ERROR, G_TLS_ERROR_MISC, "TLS write before the handshake");
      return -1;
    }
  for (;;)
    {
      ssize_t n;

      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        return -1;
      n = gnutls_record_send (self->session, buffer, count);
      if (n >= 0)
        return n;
      if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
        {
          if (!blocking)
            {
              g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK, "TLS write would block");
              return -1;
            }
          if (!g_socket_condition_wait (self->socket, G_IO_OUT, cancellable, error))
            return -1;
          continue;
        }
      set_gnutls_error (error, n, "write");
      return -1;
    }
}

gboolean
twp_tls_stream_check (TwpTlsStream *self,
                      GIOCondition  condition)
{
  if ((condition & G_IO_IN) && self->handshaked && gnutls_record_check_pending (self->session) > 0)
    return TRUE;
  return g_socket_condition_check (self->socket, condition) != 0;
}

GSource *
twp_tls_stream_create_source (TwpTlsStream *self,
                              GIOCondition  condition,
                              GCancellable *cancellable)
{
  GSource *source;

  /* Decrypted data waiting in GnuTLS: the socket may never say so. */
  if ((condition & G_IO_IN) && self->handshaked && gnutls_record_check_pending (self->session) > 0)
    source = g_timeout_source_new (0);
  else
    source = g_socket_create_source (self->socket, condition, cancellable);
  g_source_set_static_name (source, "[twp] TLS socket");
  return source;
}

/* ---- handshake ----------------------------------------------------------- */

static void handshake_step (TwpTlsStream *self);

static gboolean
handshake_ready_cb (GSocket      *socket,
                    GIOCondition  condition,
                    gpointer      user_data)
{
  TwpTlsStream *self = user_data;
  g_autoptr(GTask) task = g_object_ref (self->handshake_task);

  g_clear_pointer (&self->handshake_source, g_source_unref);
  if (g_task_return_error_if_cancelled (task))
    {
      g_clear_object (&self->handshake_task);
      return G_SOURCE_REMOVE;
    }
  handshake_step (self);
  return G_SOURCE_REMOVE;
}

/* One turn of GnuTLS's handshake state machine: as far as the socket
 * allows, then a wait on the direction GnuTLS asks for. */
static void
handshake_step (TwpTlsStream *self)
{
  g_autoptr(GTask) task = g_steal_pointer (&self->handshake_task);
  GIOCondition wait;
  int ret;

  do
    ret = gnutls_handshake (self->session);
  while (ret < 0 && ret != GNUTLS_E_AGAIN && ret != GNUTLS_E_INTERRUPTED && !gnutls_error_is_fatal (ret));

  if (ret == GNUTLS_E_SUCCESS)
    {
      self->handshaked = TRUE;
      g_task_return_boolean (task, TRUE);
      return;
    }
  if (ret != GNUTLS_E_AGAIN && ret != GNUTLS_E_INTERRUPTED)
    {
      g_task_return_new_error (task, G_TLS_ERROR, G_TLS_ERROR_HANDSHAKE, "TLS handshake failed: %s",
                               gnutls_strerror (ret));
      return;
    }
  wait = gnutls_record_get_direction (self->session) == 1 ? G_IO_OUT : G_IO_IN;
  /* The cancellable (the handshake deadline) wakes the wait too. */
  self->handshake_source = g_socket_create_source (self->socket, wait, g_task_get_cancellable (task));
  g_source_set_static_name (self->handshake_source, "[twp] TLS handshake");
  g_source_set_callback (self->handshake_source, G_SOURCE_FUNC (handshake_ready_cb), self, NULL);
  g_source_attach (self->handshake_source, g_task_get_context (task));
  self->handshake_task = g_steal_pointer (&task);
}

void
twp_tls_stream_handshake_async (TwpTlsStream        *self,
                                GCancellable        *cancellable,
                                GAsyncReadyCallback  callback,
                                gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;

  g_return_if_fail (TWP_IS_TLS_STREAM (self));
  g_return_if_fail (self->handshake_task == NULL && !self->handshaked);

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, twp_tls_stream_handshake_async);
  g_task_set_name (task, "[twp] TLS handshake");
  if (g_task_return_error_if_cancelled (task))
    return;
  self->handshake_task = g_steal_pointer (&task);
  /* The ClientHello is usually there already. */
  handshake_step (self);
}

gboolean
twp_tls_stream_handshake_finish (TwpTlsStream  *self,
                                 GAsyncResult  *result,
                                 GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/* ---- GIOStream ----------------------------------------------------------- */

static GInputStream *
twp_tls_stream_get_input_stream (GIOStream *stream)
{
  return TWP_TLS_STREAM (stream)->input;
}

static GOutputStream *
twp_tls_stream_get_output_stream (GIOStream *stream)
{
  return TWP_TLS_STREAM (stream)->output;
}

static gboolean
twp_tls_stream_close (GIOStream     *stream,
                      GCancellable  *cancellable,
                      GError       **error)
{
  TwpTlsStream *self = TWP_TLS_STREAM (stream);

  /* close_notify, if the socket takes it now; a close never waits on the
   * peer (the WebSocket close handshake already ended the data). */
  if (self->handshaked && !self->bye_sent)
    {
      self->bye_sent = TRUE;
      gnutls_bye (self->session, GNUTLS_SHUT_WR);
    }
  return g_io_stream_close (G_IO_STREAM (self->base), cancellable, error);
}

/* Closing never blocks (see above): done here, not in GIO's thread. */
static void
twp_tls_stream_close_async (GIOStream           *stream,
                            int                  io_priority,
                            GCancellable        *cancellable,
                            GAsyncReadyCallback  callback,
                            gpointer             user_data)
{
  g_autoptr(GTask) task = g_task_new (stream, cancellable, callback, user_data);
  GError *error = NULL;

  g_task_set_source_tag (task, twp_tls_stream_close_async);
  if (twp_tls_stream_close (stream, cancellable, &error))
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}

static gboolean
twp_tls_stream_close_finish (GIOStream     *stream,
                             GAsyncResult  *result,
                             GError       **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}

static void
twp_tls_stream_get_property (GObject    *object,
                             guint       prop_id,
                             GValue     *value,
                             GParamSpec *pspec)
{
  TwpTlsStream *self = TWP_TLS_STREAM (object);

  switch (prop_id)
    {
    case PROP_BASE_IO_STREAM:
      g_value_set_object (value, self->base);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
twp_tls_stream_dispose (GObject *object)
{
  TwpTlsStream *self = TWP_TLS_STREAM (object);

  if (self->handshake_source != NULL)
    g_source_destroy (self->handshake_source);
  g_clear_pointer (&self->handshake_source, g_source_unref);
  g_clear_object (&self->handshake_task);
  if (self->input != NULL)
    twp_tls_input_stream_detach (TWP_TLS_INPUT_STREAM (self->input));
  if (self->output != NULL)
    twp_tls_output_stream_detach (TWP_TLS_OUTPUT_STREAM (self->output));

  G_OBJECT_CLASS (twp_tls_stream_parent_class)->dispose (object);
}

static void
twp_tls_stream_finalize (GObject *object)
{
  TwpTlsStream *self = TWP_TLS_STREAM (object);

  g_clear_object (&self->input);
  g_clear_object (&self->output);
  if (self->session != NULL)
    gnutls_deinit (self->session);
  g_clear_pointer (&self->credentials, twp_tls_credentials_unref);
  g_clear_object (&self->base);

  G_OBJECT_CLASS (twp_tls_stream_parent_class)->finalize (object);
}

static void
twp_tls_stream_class_init (TwpTlsStreamClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GIOStreamClass *stream_class = G_IO_STREAM_CLASS (klass);

  object_class->get_property = twp_tls_stream_get_property;
  object_class->dispose = twp_tls_stream_dispose;
  object_class->finalize = twp_tls_stream_finalize;
  stream_class->get_input_stream = twp_tls_stream_get_input_stream;
  stream_class->get_output_stream = twp_tls_stream_get_output_stream;
  stream_class->close_fn = twp_tls_stream_close;
  stream_class->close_async = twp_tls_stream_close_async;
  stream_class->close_finish = twp_tls_stream_close_finish;

  /* The name GTlsConnection uses: the relay finds the socket under any TLS
   * stream through it. */
  properties[PROP_BASE_IO_STREAM] =
    g_param_spec_object ("base-io-stream", NULL, NULL, G_TYPE_IO_STREAM,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);
  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
twp_tls_stream_init (TwpTlsStream *self)
{
}

TwpTlsStream *
twp_tls_stream_new_server (GSocketConnection  *base,
                           TwpTlsCredentials  *credentials,
                           GError            **error)
{
  g_autoptr(TwpTlsStream) self = NULL;
  int ret;

  g_return_val_if_fail (G_IS_SOCKET_CONNECTION (base), NULL);
  g_return_val_if_fail (credentials != NULL, NULL);

  self = g_object_new (TWP_TYPE_TLS_STREAM, NULL);
  self->base = g_object_ref (base);
  self->socket = g_socket_connection_get_socket (base);
  self->credentials = twp_tls_credentials_ref (credentials);
  /* No session tickets: nothing to resume with (a new key per process),
   * and they would cost every connection a message and memory. */
  ret = gnutls_init (&self->session, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_TICKETS);
  if (ret == 0)
    ret = gnutls_set_default_priority (self->session);
  if (ret == 0)
    ret = gnutls_credentials_set (self->session, GNUTLS_CRD_CERTIFICATE, credentials->certificate);
  if (ret < 0)
    {
      set_gnutls_error (error, ret, "set-up");
      return NULL;
    }
  /* GnuTLS reads and writes the (non-blocking) socket itself. */
  gnutls_transport_set_int (self->session, g_socket_get_fd (self->socket));
  self->input = twp_tls_input_stream_new (self);
  self->output = twp_tls_output_stream_new (self);
  return g_steal_pointer (&self);
}
