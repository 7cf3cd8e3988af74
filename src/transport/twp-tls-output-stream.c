/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-tls"

#include "config.h"

#include "twp-tls-output-stream.h"

#include "twp-tls-stream-private.h"

struct _TwpTlsOutputStream
{
  GOutputStream parent_instance;

  /* borrowed */
  TwpTlsStream *connection;      /* NULL once the connection is gone */
};

static void twp_tls_output_stream_pollable_init (GPollableOutputStreamInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (TwpTlsOutputStream, twp_tls_output_stream, G_TYPE_OUTPUT_STREAM,
                               G_IMPLEMENT_INTERFACE (G_TYPE_POLLABLE_OUTPUT_STREAM,
                                                      twp_tls_output_stream_pollable_init))

static gboolean
check_attached (TwpTlsOutputStream  *self,
                GError             **error)
{
  if (self->connection != NULL)
    return TRUE;
  g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_CLOSED, "the TLS connection is gone");
  return FALSE;
}

static gssize
twp_tls_output_stream_write (GOutputStream  *stream,
                             const void     *buffer,
                             gsize           count,
                             GCancellable   *cancellable,
                             GError        **error)
{
  TwpTlsOutputStream *self = TWP_TLS_OUTPUT_STREAM (stream);

  if (!check_attached (self, error))
    return -1;
  return twp_tls_stream_send (self->connection, buffer, count, TRUE, cancellable, error);
}

/* Closing a half closes nothing: the connection closes the socket. */
static gboolean
twp_tls_output_stream_close (GOutputStream  *stream,
                             GCancellable   *cancellable,
                             GError        **error)
{
  return TRUE;
}

static gboolean
twp_tls_output_stream_can_poll (GPollableOutputStream *pollable)
{
  return TWP_TLS_OUTPUT_STREAM (pollable)->connection != NULL;
}

static gboolean
twp_tls_output_stream_is_writable (GPollableOutputStream *pollable)
{
  TwpTlsOutputStream *self = TWP_TLS_OUTPUT_STREAM (pollable);

  /* Detached: a write fails at once, which is being ready. */
  return self->connection == NULL || twp_tls_stream_check (self->connection, G_IO_OUT);
}

static GSource *
twp_tls_output_stream_create_source (GPollableOutputStream *pollable,
                                     GCancellable          *cancellable)
{
  TwpTlsOutputStream *self = TWP_TLS_OUTPUT_STREAM (pollable);
  g_autoptr(GSource) child = NULL;
  GSource *source;

  if (self->connection != NULL)
    child = twp_tls_stream_create_source (self->connection, G_IO_OUT, cancellable);
  else
    {
      child = g_timeout_source_new (0);
      g_source_set_static_name (child, "[twp] TLS detached");
    }
  source = g_pollable_source_new_full (pollable, child, cancellable);
  g_source_set_static_name (source, "[twp] TLS output");
  return source;
}

static gssize
twp_tls_output_stream_write_nonblocking (GPollableOutputStream  *pollable,
                                         const void             *buffer,
                                         gsize                   count,
                                         GError                **error)
{
  TwpTlsOutputStream *self = TWP_TLS_OUTPUT_STREAM (pollable);

  if (!check_attached (self, error))
    return -1;
  return twp_tls_stream_send (self->connection, buffer, count, FALSE, NULL, error);
}

static void
twp_tls_output_stream_pollable_init (GPollableOutputStreamInterface *iface)
{
  iface->can_poll = twp_tls_output_stream_can_poll;
  iface->is_writable = twp_tls_output_stream_is_writable;
  iface->create_source = twp_tls_output_stream_create_source;
  iface->write_nonblocking = twp_tls_output_stream_write_nonblocking;
}

static void
twp_tls_output_stream_class_init (TwpTlsOutputStreamClass *klass)
{
  GOutputStreamClass *output_class = G_OUTPUT_STREAM_CLASS (klass);

  output_class->write_fn = twp_tls_output_stream_write;
  output_class->close_fn = twp_tls_output_stream_close;
}

static void
twp_tls_output_stream_init (TwpTlsOutputStream *self)
{
}

GOutputStream *
twp_tls_output_stream_new (TwpTlsStream *connection)
{
  TwpTlsOutputStream *self = g_object_new (TWP_TYPE_TLS_OUTPUT_STREAM, NULL);

  self->connection = connection;
  return G_OUTPUT_STREAM (self);
}

void
twp_tls_output_stream_detach (TwpTlsOutputStream *self)
{
  g_return_if_fail (TWP_IS_TLS_OUTPUT_STREAM (self));

  self->connection = NULL;
}
