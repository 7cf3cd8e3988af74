/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-reactor"

#include "config.h"

#include "twp-reactor.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

/* Events taken from the kernel per dispatch; more wait for the next one. */
#define MAX_EVENTS 256

typedef struct {
  GSource source;
  int epoll_fd;
  GPtrArray *deferred;     /* watches to call with events 0 */
  GPtrArray *garbage;      /* freed during a dispatch: released after it */
  gboolean dispatching;
} TwpReactor;

struct _TwpReactorWatch
{
  TwpReactor *reactor;
  int fd;
  TwpReactorFunc func;
  gpointer user_data;
  gboolean in_epoll;
  gboolean deferred;
  gboolean dead;
};

/* All tunnels live on the main context; one reactor serves them. */
static TwpReactor *default_reactor;

static gboolean
reactor_prepare (GSource *source,
                 int     *timeout)
{
  TwpReactor *reactor = (TwpReactor *) source;

  *timeout = -1;
  return reactor->deferred->len > 0;
}

static gboolean
reactor_dispatch (GSource     *source,
                  GSourceFunc  callback,
                  gpointer     user_data)
{
  TwpReactor *reactor = (TwpReactor *) source;
  struct epoll_event events[MAX_EVENTS];
  int n;

  reactor->dispatching = TRUE;

  /* Deferred calls first: they are results waiting since the last turn.
   * Calls deferred while we run wait for the next dispatch. */
  if (reactor->deferred->len > 0)
    {
      g_autoptr(GPtrArray) batch = reactor->deferred;

      reactor->deferred = g_ptr_array_new ();
      for (guint i = 0; i < batch->len; i++)
        {
          TwpReactorWatch *watch = g_ptr_array_index (batch, i);

          watch->deferred = FALSE;
          if (!watch->dead)
            watch->func (watch, 0, watch->user_data);
        }
    }

  n = epoll_wait (reactor->epoll_fd, events, MAX_EVENTS, 0);
  if (n < 0 && errno != EINTR)
    g_critical ("epoll_wait failed: %s", g_strerror (errno));
  for (int i = 0; i < n; i++)
    {
      TwpReactorWatch *watch = events[i].data.ptr;

      /* One-shot: the watch is disarmed until its owner asks again. */
      if (!watch->dead)
        watch->func (watch, events[i].events, watch->user_data);
    }
  /* A full batch means more may be ready: come back without polling. */
  if (n == MAX_EVENTS)
    g_source_set_ready_time (source, 0);
  else
    g_source_set_ready_time (source, -1);

  reactor->dispatching = FALSE;
  g_ptr_array_set_size (reactor->garbage, 0);
  return G_SOURCE_CONTINUE;
}

static void
reactor_finalize (GSource *source)
{
  TwpReactor *reactor = (TwpReactor *) source;

  close (reactor->epoll_fd);
  g_ptr_array_unref (reactor->deferred);
  g_ptr_array_unref (reactor->garbage);
}

static GSourceFuncs reactor_funcs = {
  .prepare = reactor_prepare,
  .dispatch = reactor_dispatch,
  .finalize = reactor_finalize,
};

static TwpReactor *
get_reactor (void)
{
  TwpReactor *reactor;

  if (default_reactor != NULL)
    return default_reactor;

  reactor = (TwpReactor *) g_source_new (&reactor_funcs, sizeof (TwpReactor));
  reactor->epoll_fd = epoll_create1 (EPOLL_CLOEXEC);
  if (reactor->epoll_fd < 0)
    g_error ("epoll_create1 failed: %s", g_strerror (errno));
  reactor->deferred = g_ptr_array_new ();
  reactor->garbage = g_ptr_array_new_with_free_func (g_free);
  g_source_set_static_name ((GSource *) reactor, "[twp] reactor");
  g_source_add_unix_fd ((GSource *) reactor, reactor->epoll_fd, G_IO_IN);
  g_source_attach ((GSource *) reactor, g_main_context_get_thread_default ());
  default_reactor = reactor;
  return reactor;
}

void
twp_reactor_ensure (void)
{
  get_reactor ();
}

TwpReactorWatch *
twp_reactor_watch_new (int            fd,
                       TwpReactorFunc func,
                       gpointer       user_data)
{
  TwpReactorWatch *watch;

  g_return_val_if_fail (fd >= 0, NULL);
  g_return_val_if_fail (func != NULL, NULL);

  watch = g_new0 (TwpReactorWatch, 1);
  watch->reactor = get_reactor ();
  watch->fd = fd;
  watch->func = func;
  watch->user_data = user_data;
  return watch;
}

void
twp_reactor_watch_set_events (TwpReactorWatch *watch,
                              guint32          events)
{
  /* One-shot keeps a readable socket nobody reads from (backpressure)
   * from waking the loop again and again; re-arming costs one syscall. */
  struct epoll_event event = { .events = events | EPOLLONESHOT, .data.ptr = watch };
  int op;

  g_return_if_fail (watch != NULL && !watch->dead);

  if (events == 0 && !watch->in_epoll)
    return;
  op = watch->in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  if (events == 0)
    event.events = 0;
  if (epoll_ctl (watch->reactor->epoll_fd, op, watch->fd, &event) != 0)
    {
      /* Only a closed fd gets here, which is the owner's bug. */
      g_critical ("epoll_ctl failed: %s", g_strerror (errno));
      return;
    }
  watch->in_epoll = TRUE;
}

void
twp_reactor_watch_defer (TwpReactorWatch *watch)
{
  g_return_if_fail (watch != NULL && !watch->dead);

  if (watch->deferred)
    return;
  watch->deferred = TRUE;
  /* Same thread, inside the loop: the next prepare sees it, no wakeup. */
  g_ptr_array_add (watch->reactor->deferred, watch);
}

void
twp_reactor_watch_free (TwpReactorWatch *watch)
{
  TwpReactor *reactor;

  if (watch == NULL)
    return;
  g_return_if_fail (!watch->dead);

  reactor = watch->reactor;
  if (watch->in_epoll)
    epoll_ctl (reactor->epoll_fd, EPOLL_CTL_DEL, watch->fd, NULL);
  watch->dead = TRUE;
  /* An event for it may still be in this dispatch's batch, and it may sit
   * in the deferred list: free it only when neither can reach it. */
  if (reactor->dispatching || watch->deferred)
    {
      if (watch->deferred)
        g_ptr_array_remove_fast (reactor->deferred, watch);
      watch->deferred = FALSE;
      if (reactor->dispatching)
        {
          g_ptr_array_add (reactor->garbage, watch);
          return;
        }
    }
  g_free (watch);
}
