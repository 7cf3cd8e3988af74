/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-acceptor"

#include "config.h"

#include "twp-acceptor.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "twp-log.h"
#include "twp-reactor.h"

/* Retrying accept while out of descriptors: first soon, then at most once
 * a second, so that the process stays idle at its limit. */
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 1000
/* At its limit a busy process flaps between no descriptor and one: warn
 * at most this often, so tor's log gets one line per episode. */
#define WARN_INTERVAL_US (60 * G_USEC_PER_SEC)

struct _TwpAcceptor
{
  GSocketListener parent_instance;

  /* owned */
  GCancellable *cancellable;     /* the pending accept; replaced on each start */
  GSource *backoff;              /* retry timer while out of descriptors */
  int reserve_fd;                /* /dev/null, given up to take one connection at the limit */

  gboolean active;
  gboolean shedding;             /* the reserve is given up: close the next connection */
  gboolean exhausted;            /* out of descriptors at the last accept */
  gboolean warned;               /* this episode was logged: its end is too */
  gint64 warned_at;              /* monotonic, the last warning */
  guint backoff_ms;
  guint n_errors;                /* other accept failures in a row */
  guint64 n_refused;
};

enum {
  SIGNAL_INCOMING,
  SIGNAL_REFUSED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

G_DEFINE_FINAL_TYPE (TwpAcceptor, twp_acceptor, G_TYPE_SOCKET_LISTENER)

static void accept_next (TwpAcceptor *self);

static void
open_reserve (TwpAcceptor *self)
{
  if (self->reserve_fd < 0)
    self->reserve_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
}

static gboolean
backoff_cb (gpointer user_data)
{
  TwpAcceptor *self = user_data;

  g_clear_pointer (&self->backoff, g_source_unref);
  open_reserve (self);
  accept_next (self);
  return G_SOURCE_REMOVE;
}

static void
back_off (TwpAcceptor *self)
{
  self->backoff_ms = CLAMP (self->backoff_ms * 2, BACKOFF_MIN_MS, BACKOFF_MAX_MS);
  g_assert (self->backoff == NULL);
  self->backoff = g_timeout_source_new (self->backoff_ms);
  g_source_set_static_name (self->backoff, "[twp] accept backoff");
  g_source_set_callback (self->backoff, backoff_cb, self, NULL);
  g_source_attach (self->backoff, g_main_context_get_thread_default ());
}

static void
out_of_descriptors (TwpAcceptor  *self,
                    const GError *error)
{
  gint64 now = g_get_monotonic_time ();

  if (!self->exhausted && (self->warned_at == 0 || now - self->warned_at >= WARN_INTERVAL_US))
    {
      struct rlimit limit = { 0 };

      /* Once per episode: tor's log must not fill with one line per try. */
      getrlimit (RLIMIT_NOFILE, &limit);
      twp_log_user (TWP_LOG_WARNING,
                    "out of file descriptors (%s, limit %llu): new connections are closed until some end",
                    error->message, (unsigned long long) limit.rlim_cur);
      self->warned = TRUE;
      self->warned_at = now;
    }
  else if (!self->exhausted)
    twp_log_user (TWP_LOG_DEBUG, "out of file descriptors again: %s", error->message);
  self->exhausted = TRUE;
  self->shedding = FALSE;
  if (self->reserve_fd >= 0)
    {
      /* The waiting connection would sit in the backlog until its client
       * gives up: take it with the reserve and close it, a clean refusal. */
      close (self->reserve_fd);
      self->reserve_fd = -1;
      self->shedding = TRUE;
      accept_next (self);
      return;
    }
  back_off (self);
}

static void
accepted_cb (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  TwpAcceptor *self = TWP_ACCEPTOR (source);
  g_autoptr(GSocketConnection) connection = NULL;
  g_autoptr(GError) error = NULL;
  GObject *source_object = NULL;
  gboolean handled = FALSE;

  connection = g_socket_listener_accept_finish (G_SOCKET_LISTENER (self), result, &source_object, &error);
  /* Stopped, or restarted with a new accept already pending. */
  if (!self->active || user_data != self->cancellable)
    return;
  if (connection == NULL)
    {
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TOO_MANY_OPEN_FILES))
        {
          out_of_descriptors (self, error);
          return;
        }
      /* A peer that reset before we took it, or the kernel short of
       * memory: try the next one, but never in a tight loop. */
      twp_log_user (TWP_LOG_INFO, "accepting a connection failed: %s", error->message);
      self->shedding = FALSE;
      if (self->n_errors++ > 0)
        back_off (self);
      else
        accept_next (self);
      return;
    }

  self->n_errors = 0;
  if (self->shedding)
    {
      /* Closing it frees the descriptor the reserve gets back. */
      self->shedding = FALSE;
      g_io_stream_close (G_IO_STREAM (connection), NULL, NULL);
      g_clear_object (&connection);
      open_reserve (self);
      self->n_refused++;
      g_signal_emit (self, signals[SIGNAL_REFUSED], 0);
    }
  else
    {
      if (self->exhausted)
        {
          self->exhausted = FALSE;
          self->backoff_ms = 0;
          if (self->warned)
            twp_log_user (TWP_LOG_NOTICE, "file descriptors are available again: accepting new connections");
          self->warned = FALSE;
        }
      open_reserve (self);
      g_signal_emit (self, signals[SIGNAL_INCOMING], 0, connection, source_object, &handled);
    }
  if (self->active && self->backoff == NULL)
    accept_next (self);
}

static void
accept_next (TwpAcceptor *self)
{
  /* The cancellable doubles as this accept's generation: a callback that
   * belongs to an earlier start is ignored. */
  g_socket_listener_accept_async (G_SOCKET_LISTENER (self), self->cancellable, accepted_cb, self->cancellable);
}

void
twp_acceptor_start (TwpAcceptor *self)
{
  g_return_if_fail (TWP_IS_ACCEPTOR (self));

  if (self->active)
    return;
  self->active = TRUE;
  g_clear_object (&self->cancellable);
  self->cancellable = g_cancellable_new ();
  /* Every connection accepted here may become a tunnel on the reactor. */
  twp_reactor_ensure ();
  open_reserve (self);
  accept_next (self);
}

void
twp_acceptor_stop (TwpAcceptor *self)
{
  g_return_if_fail (TWP_IS_ACCEPTOR (self));

  if (!self->active)
    return;
  self->active = FALSE;
  self->shedding = FALSE;
  g_cancellable_cancel (self->cancellable);
  if (self->backoff != NULL)
    {
      g_source_destroy (self->backoff);
      g_clear_pointer (&self->backoff, g_source_unref);
    }
}

guint64
twp_acceptor_get_n_refused (TwpAcceptor *self)
{
  g_return_val_if_fail (TWP_IS_ACCEPTOR (self), 0);

  return self->n_refused;
}

static void
twp_acceptor_dispose (GObject *object)
{
  TwpAcceptor *self = TWP_ACCEPTOR (object);

  twp_acceptor_stop (self);

  G_OBJECT_CLASS (twp_acceptor_parent_class)->dispose (object);
}

static void
twp_acceptor_finalize (GObject *object)
{
  TwpAcceptor *self = TWP_ACCEPTOR (object);

  g_clear_object (&self->cancellable);
  if (self->reserve_fd >= 0)
    close (self->reserve_fd);

  G_OBJECT_CLASS (twp_acceptor_parent_class)->finalize (object);
}

/* A socket added while accepting: the pending accept does not cover it, so
 * it is replaced by one that does (as GSocketService does). During a
 * back-off the next accept covers it anyway. */
static void
twp_acceptor_changed (GSocketListener *listener)
{
  TwpAcceptor *self = TWP_ACCEPTOR (listener);

  if (!self->active || self->backoff != NULL)
    return;
  g_cancellable_cancel (self->cancellable);
  g_clear_object (&self->cancellable);
  self->cancellable = g_cancellable_new ();
  accept_next (self);
}

static void
twp_acceptor_class_init (TwpAcceptorClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GSocketListenerClass *listener_class = G_SOCKET_LISTENER_CLASS (klass);

  object_class->dispose = twp_acceptor_dispose;
  object_class->finalize = twp_acceptor_finalize;
  listener_class->changed = twp_acceptor_changed;

  signals[SIGNAL_INCOMING] =
    g_signal_new ("incoming", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  g_signal_accumulator_true_handled, NULL, NULL,
                  G_TYPE_BOOLEAN, 2, G_TYPE_SOCKET_CONNECTION, G_TYPE_OBJECT);
  signals[SIGNAL_REFUSED] =
    g_signal_new ("refused", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 0);
}

static void
twp_acceptor_init (TwpAcceptor *self)
{
  self->reserve_fd = -1;
}

TwpAcceptor *
twp_acceptor_new (void)
{
  return g_object_new (TWP_TYPE_ACCEPTOR, NULL);
}
