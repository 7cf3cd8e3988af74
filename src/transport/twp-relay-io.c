/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-relay"

#include "config.h"

#include "twp-relay-io.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

static void end_io_cb (TwpReactorWatch *watch,
                       guint32          events,
                       gpointer         user_data);

/* A TCP wrapper connection may carry TLS (or another stream) over its
 * socket: only a plain socket connection may be read raw. */
static int
plain_socket_fd (GIOStream *stream)
{
  if (stream == NULL || !G_IS_SOCKET_CONNECTION (stream) || G_IS_TCP_WRAPPER_CONNECTION (stream))
    return -1;
  return g_socket_get_fd (g_socket_connection_get_socket (G_SOCKET_CONNECTION (stream)));
}

void
twp_relay_io_init (TwpRelayIo   *end,
                   GObject      *owner,
                   GIOStream    *stream,
                   GCancellable *cancellable)
{
  end->owner = owner;
  end->stream = stream;
  end->cancellable = cancellable;
  end->fd = plain_socket_fd (stream);
  /* A TLS stream (GTlsConnection, or the server's TwpTlsStream) names the
   * connection it runs over as its base-io-stream. */
  if (end->fd < 0 && g_object_class_find_property (G_OBJECT_GET_CLASS (stream), "base-io-stream") != NULL)
    {
      g_autoptr(GIOStream) base = NULL;
      GInputStream *in = g_io_stream_get_input_stream (stream);
      GOutputStream *out = g_io_stream_get_output_stream (stream);

      g_object_get (stream, "base-io-stream", &base, NULL);
      if (G_IS_POLLABLE_INPUT_STREAM (in) && g_pollable_input_stream_can_poll (G_POLLABLE_INPUT_STREAM (in)) &&
          G_IS_POLLABLE_OUTPUT_STREAM (out) && g_pollable_output_stream_can_poll (G_POLLABLE_OUTPUT_STREAM (out)))
        end->fd = plain_socket_fd (base);
      if (end->fd >= 0)
        {
          end->tls_in = G_POLLABLE_INPUT_STREAM (in);
          end->tls_out = G_POLLABLE_OUTPUT_STREAM (out);
        }
    }
}

void
twp_relay_io_clear (TwpRelayIo *end)
{
  g_clear_error (&end->read_error);
  g_clear_error (&end->read_held_error);
  g_clear_error (&end->write_error);
}

void
twp_relay_io_start (TwpRelayIo *end)
{
  if (end->fd >= 0)
    end->watch = twp_reactor_watch_new (end->fd, end_io_cb, end);
}

void
twp_relay_io_stop (TwpRelayIo *end)
{
  g_clear_pointer (&end->watch, twp_reactor_watch_free);
  end->read_pending = end->write_pending = FALSE;
}

static void
end_rearm (TwpRelayIo *end)
{
  guint32 wanted = 0;

  if (end->read_pending && !end->read_complete)
    wanted |= EPOLLIN | EPOLLRDHUP;
  if (end->write_pending && !end->write_complete)
    wanted |= EPOLLOUT;
  if (wanted != end->armed && end->watch != NULL)
    {
      twp_reactor_watch_set_events (end->watch, wanted);
      end->armed = wanted;
    }
}

/* As many TLS records as fit (they are at most 16 KiB each), so that one
 * wakeup moves as much as a plain socket's recv() would. GnuTLS keeps the
 * rest of a record it has begun; what it has not begun is still in the
 * socket, where epoll sees it. */
static void
end_try_read_tls (TwpRelayIo *end)
{
  gsize total = 0;

  if (end->read_held)
    {
      end->read_held = FALSE;
      end->read_error = g_steal_pointer (&end->read_held_error);
      end->read_result = end->read_error != NULL ? -1 : 0;
      end->read_complete = TRUE;
      return;
    }
  while (total < end->read_len)
    {
      g_autoptr(GError) error = NULL;
      gssize n = g_pollable_input_stream_read_nonblocking (end->tls_in, end->read_buf + total,
                                                           end->read_len - total, NULL, &error);

      if (n > 0)
        {
          total += n;
          continue;
        }
      if (n < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        break;
      if (total > 0)
        {
          end->read_held = TRUE;
          end->read_held_error = g_steal_pointer (&error);
          break;
        }
      end->read_result = n;
      end->read_error = g_steal_pointer (&error);
      end->read_complete = TRUE;
      return;
    }
  if (total == 0)
    return;
  end->read_result = total;
  end->read_complete = TRUE;
}

static void
end_try_read (TwpRelayIo *end)
{
  gssize n;

  if (end->tls_in != NULL)
    {
      end_try_read_tls (end);
      return;
    }
  do
    n = recv (end->fd, end->read_buf, end->read_len, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    return;
  end->read_result = n;
  end->read_errno = n < 0 ? errno : 0;
  end->read_complete = TRUE;
}

/* Advances past @n bytes taken, possibly mid-vector. */
static void
end_wrote (TwpRelayIo *end,
           gsize       n)
{
  end->write_progress_at = g_get_monotonic_time ();
  while (n > 0)
    {
      gsize left = end->write_vecs[end->write_index].size - end->write_offset;

      if (n < left)
        {
          end->write_offset += n;
          n = 0;
        }
      else
        {
          n -= left;
          end->write_index++;
          end->write_offset = 0;
        }
    }
}

/* One record per call. After would-block GnuTLS must be called again with
 * the same data, which it is: the offset only moves on progress. */
static void
end_try_write_tls (TwpRelayIo *end)
{
  while (end->write_index < end->write_n)
    {
      g_autoptr(GError) error = NULL;
      const GOutputVector *vector = &end->write_vecs[end->write_index];
      gssize n;

      if (vector->size == end->write_offset)
        {
          end->write_index++;
          end->write_offset = 0;
          continue;
        }
      n = g_pollable_output_stream_write_nonblocking (end->tls_out, (const guint8 *) vector->buffer + end->write_offset,
                                                      vector->size - end->write_offset, NULL, &error);
      if (n < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        return;
      if (n < 0)
        {
          end->write_error = g_steal_pointer (&error);
          end->write_complete = TRUE;
          return;
        }
      end_wrote (end, n);
    }
  end->write_complete = TRUE;
}

static void
end_try_write (TwpRelayIo *end)
{
  if (end->tls_out != NULL)
    {
      end_try_write_tls (end);
      return;
    }
  while (end->write_index < end->write_n)
    {
      struct iovec iov[TWP_RELAY_IO_MAX_VECTORS];
      struct msghdr message = { 0 };
      guint n_iov = 0;
      gssize n;

      for (guint i = end->write_index; i < end->write_n; i++, n_iov++)
        {
          gsize skip = i == end->write_index ? end->write_offset : 0;

          iov[n_iov].iov_base = (guint8 *) end->write_vecs[i].buffer + skip;
          iov[n_iov].iov_len = end->write_vecs[i].size - skip;
        }
      message.msg_iov = iov;
      message.msg_iovlen = n_iov;
      /* MSG_NOSIGNAL: a peer that went away is an error, not a signal. */
      n = sendmsg (end->fd, &message, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
      if (n < 0)
        {
          end->write_errno = errno;
          end->write_complete = TRUE;
          return;
        }
      end_wrote (end, n);
    }
  end->write_errno = 0;
  end->write_complete = TRUE;
}

static GError *
error_from_errno (int errsv)
{
  return g_error_new_literal (G_IO_ERROR, g_io_error_from_errno (errsv), g_strerror (errsv));
}

/* Hands finished operations to the owner; both directions may finish in
 * one turn. */
static void
end_deliver (TwpRelayIo *end)
{
  g_autoptr(GObject) owner = g_object_ref (end->owner);
  gboolean read_finished = end->read_pending && end->read_complete;
  gboolean write_finished = end->write_pending && end->write_complete;
  gssize read_result = end->read_result;
  int read_errno = end->read_errno;
  int write_errno = end->write_errno;
  g_autoptr(GError) read_error = NULL;
  g_autoptr(GError) write_error = NULL;

  if (read_finished)
    {
      end->read_pending = FALSE;
      read_error = g_steal_pointer (&end->read_error);
      if (read_result < 0 && read_error == NULL)
        read_error = error_from_errno (read_errno);
    }
  if (write_finished)
    {
      end->write_pending = FALSE;
      write_error = g_steal_pointer (&end->write_error);
      if (write_errno != 0 && write_error == NULL)
        write_error = error_from_errno (write_errno);
    }
  end_rearm (end);

  if (read_finished)
    end->read_done (owner, read_result, read_error);
  if (write_finished)
    end->write_done (owner, write_error);
}

static void
end_io_cb (TwpReactorWatch *watch,
           guint32          events,
           gpointer         user_data)
{
  TwpRelayIo *end = user_data;

  if (events != 0)
    end->armed = 0;   /* one-shot: it fired, so it is disarmed */
  if (end->read_pending && !end->read_complete &&
      (events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)))
    end_try_read (end);
  if (end->write_pending && !end->write_complete && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
    end_try_write (end);
  end_deliver (end);
}

static void
end_gio_read_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  TwpRelayIo *end = user_data;
  g_autoptr(GObject) owner = end->owner;   /* the reference taken in twp_relay_io_read */
  g_autoptr(GError) error = NULL;
  gssize n;

  n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, &error);
  /* Stopped meanwhile (twp_relay_io_stop() cleared it): not delivered. */
  if (!end->read_pending)
    return;
  end->read_pending = FALSE;
  end->read_done (owner, n, error);
}

static void
end_gio_write_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  TwpRelayIo *end = user_data;
  g_autoptr(GObject) owner = end->owner;   /* the reference taken in twp_relay_io_writev */
  g_autoptr(GError) error = NULL;

  g_output_stream_writev_all_finish (G_OUTPUT_STREAM (source), result, NULL, &error);
  /* Stopped meanwhile (twp_relay_io_stop() cleared it): not delivered. */
  if (!end->write_pending)
    return;
  end->write_pending = FALSE;
  end->write_done (owner, error);
}

void
twp_relay_io_read (TwpRelayIo         *end,
                   guint8             *buf,
                   gsize               len,
                   TwpRelayIoReadFunc  done)
{
  end->read_buf = buf;
  end->read_len = len;
  end->read_done = done;
  end->read_pending = TRUE;
  end->read_complete = FALSE;

  if (end->fd < 0)
    {
      g_object_ref (end->owner);
      g_input_stream_read_async (g_io_stream_get_input_stream (end->stream), buf, len,
                                 G_PRIORITY_DEFAULT, end->cancellable,
                                 end_gio_read_cb, end);
      return;
    }
  /* Try at once: under load the data is already there, and a result
   * known now still reaches the owner from the next dispatch. */
  end_try_read (end);
  if (end->read_complete)
    twp_reactor_watch_defer (end->watch);
  else
    end_rearm (end);
}

void
twp_relay_io_writev (TwpRelayIo          *end,
                     const GOutputVector *vectors,
                     guint                n_vectors,
                     TwpRelayIoWriteFunc  done)
{
  g_assert (n_vectors <= TWP_RELAY_IO_MAX_VECTORS);

  memcpy (end->write_vecs, vectors, n_vectors * sizeof (GOutputVector));
  end->write_n = n_vectors;
  end->write_index = 0;
  end->write_offset = 0;
  end->write_done = done;
  end->write_pending = TRUE;
  end->write_complete = FALSE;
  end->write_errno = 0;
  end->write_progress_at = g_get_monotonic_time ();

  if (end->fd < 0)
    {
      g_object_ref (end->owner);
      g_output_stream_writev_all_async (g_io_stream_get_output_stream (end->stream),
                                        end->write_vecs, n_vectors, G_PRIORITY_DEFAULT,
                                        end->cancellable, end_gio_write_cb, end);
      return;
    }
  end_try_write (end);
  if (end->write_complete)
    twp_reactor_watch_defer (end->watch);
  else
    end_rearm (end);
}

gboolean
twp_relay_io_is_tls (const TwpRelayIo *end)
{
  return end->tls_out != NULL;
}

gboolean
twp_relay_io_uses_gio (const TwpRelayIo *end)
{
  return end->fd < 0;
}

gboolean
twp_relay_io_has_undelivered_read (const TwpRelayIo *end)
{
  return end->read_pending && end->read_complete;
}

gboolean
twp_relay_io_write_stalled (const TwpRelayIo *end,
                            gint64            now,
                            gint64            stall_us)
{
  return end->write_pending && now - end->write_progress_at >= stall_us;
}
