/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-tls"

#include "config.h"

#include "twp-tls-input-stream.h"

#include "twp-tls-stream-private.h"

struct _TwpTlsInputStream
{
  GInputStream parent_instance;

  /* borrowed */
  TwpTlsStream *connection;      /* NULL once the connection is gone */
};

static void twp_tls_input_stream_pollable_init (GPollableInputStreamInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (TwpTlsInputStream, twp_tls_input_stream, G_TYPE_INPUT_STREAM,
                               G_IMPLEMENT_INTERFACE (G_TYPE_POLLABLE_INPUT_STREAM,
                                                      twp_tls_input_stream_pollable_init))

static gboolean
check_attached (TwpTlsInputStream  *self,
                GError            **error)
{
  if (self->connection != NULL)
    return TRUE;
  g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_CLOSED, "the TLS connection is gone");
  return FALSE;
}

static gssize
twp_tls_input_stream_read (GInputStream  *stream,
                           void          *buffer,
                           gsize          count,
                           GCancellable  *cancellable,
                           GError       **error)
{
  TwpTlsInputStream *self = TWP_TLS_INPUT_STREAM (stream);

  if (!check_attached (self, error))
    return -1;
  return twp_tls_stream_recv (self->connection, buffer, count, TRUE, cancellable, error);
}

/* Closing a half closes nothing: the connection closes the socket. */
static gboolean
twp_tls_input_stream_close (GInputStream  *stream,
                            GCancellable  *cancellable,
                            GError       **error)
{
  return TRUE;
}

static gboolean
twp_tls_input_stream_can_poll (GPollableInputStream *pollable)
{
  return TWP_TLS_INPUT_STREAM (pollable)->connection != NULL;
}

static gboolean
twp_tls_input_stream_is_readable (GPollableInputStream *pollable)
{
  TwpTlsInputStream *self = TWP_TLS_INPUT_STREAM (pollable);

  /* Detached: a read fails at once, which is being ready. */
  return self->connection == NULL || twp_tls_stream_check (self->connection, G_IO_IN);
}

static GSource *
twp_tls_input_stream_create_source (GPollableInputStream *pollable,
                                    GCancellable         *cancellable)
{
  TwpTlsInputStream *self = TWP_TLS_INPUT_STREAM (pollable);
  g_autoptr(GSource) child = NULL;
  GSource *source;

  if (self->connection != NULL)
    child = twp_tls_stream_create_source (self->connection, G_IO_IN, cancellable);
  else
    {
      child = g_timeout_source_new (0);
      g_source_set_static_name (child, "[twp] TLS detached");
    }
  source = g_pollable_source_new_full (pollable, child, cancellable);
  g_source_set_static_name (source, "[twp] TLS input");
  return source;
}

static gssize
twp_tls_input_stream_read_nonblocking (GPollableInputStream  *pollable,
                                       void                  *buffer,
                                       gsize                  count,
                                       GError               **error)
{
  TwpTlsInputStream *self = TWP_TLS_INPUT_STREAM (pollable);

  if (!check_attached (self, error))
    return -1;
  return twp_tls_stream_recv (self->connection, buffer, count, FALSE, NULL, error);
}

static void
twp_tls_input_stream_pollable_init (GPollableInputStreamInterface *iface)
{
  iface->can_poll = twp_tls_input_stream_can_poll;
  iface->is_readable = twp_tls_input_stream_is_readable;
  iface->create_source = twp_tls_input_stream_create_source;
  iface->read_nonblocking = twp_tls_input_stream_read_nonblocking;
}

static void
twp_tls_input_stream_class_init (TwpTlsInputStreamClass *klass)
{
  GInputStreamClass *input_class = G_INPUT_STREAM_CLASS (klass);

  input_class->read_fn = twp_tls_input_stream_read;
  input_class->close_fn = twp_tls_input_stream_close;
}

static void
twp_tls_input_stream_init (TwpTlsInputStream *self)
{
}

GInputStream *
twp_tls_input_stream_new (TwpTlsStream *connection)
{
  TwpTlsInputStream *self = g_object_new (TWP_TYPE_TLS_INPUT_STREAM, NULL);

  self->connection = connection;
  return G_INPUT_STREAM (self);
}

void
twp_tls_input_stream_detach (TwpTlsInputStream *self)
{
  g_return_if_fail (TWP_IS_TLS_INPUT_STREAM (self));

  self->connection = NULL;
}
