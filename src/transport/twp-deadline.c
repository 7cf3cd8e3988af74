/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-deadline"

#include "config.h"

#include "twp-deadline.h"

struct _TwpDeadline
{
  /* owned (references) */
  GCancellable *cancellable;        /* the step's own */
  GCancellable *parent;             /* the caller's */
  gulong parent_id;
  GSource *timer;

  gboolean expired;
};

/* May run in the thread that cancelled @parent: it only forwards, and
 * holds its own reference so that it never touches the TwpDeadline. */
static void
parent_cancelled_cb (GCancellable *parent,
                     gpointer      user_data)
{
  g_cancellable_cancel (G_CANCELLABLE (user_data));
}

static gboolean
timer_cb (gpointer user_data)
{
  TwpDeadline *self = user_data;

  self->expired = TRUE;
  g_clear_pointer (&self->timer, g_source_unref);
  /* The pending operation fails with CANCELLED; its owner asks
   * twp_deadline_has_expired() to report a timeout. */
  g_cancellable_cancel (self->cancellable);
  return G_SOURCE_REMOVE;
}

TwpDeadline *
twp_deadline_new (GCancellable *cancellable,
                  GCancellable *parent,
                  guint         timeout_ms,
                  const char   *name)
{
  TwpDeadline *self;

  g_return_val_if_fail (G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (parent == NULL || G_IS_CANCELLABLE (parent), NULL);
  g_return_val_if_fail (parent != cancellable, NULL);

  self = g_new0 (TwpDeadline, 1);
  self->cancellable = g_object_ref (cancellable);
  if (parent != NULL)
    {
      self->parent = g_object_ref (parent);
      self->parent_id = g_cancellable_connect (parent, G_CALLBACK (parent_cancelled_cb),
                                               g_object_ref (self->cancellable), g_object_unref);
    }
  if (timeout_ms > 0)
    {
      self->timer = g_timeout_source_new (timeout_ms);
      g_source_set_static_name (self->timer, name != NULL ? name : "[twp] deadline");
      g_source_set_callback (self->timer, timer_cb, self, NULL);
      g_source_attach (self->timer, g_main_context_get_thread_default ());
    }
  return self;
}

gboolean
twp_deadline_has_expired (TwpDeadline *self)
{
  g_return_val_if_fail (self != NULL, FALSE);
  return self->expired;
}

/* Whether its timer still exists (attached to the main context). */
gboolean
twp_deadline_is_armed (TwpDeadline *self)
{
  g_return_val_if_fail (self != NULL, FALSE);
  return self->timer != NULL;
}

void
twp_deadline_disarm (TwpDeadline *self)
{
  g_return_if_fail (self != NULL);

  if (self->timer != NULL)
    g_source_destroy (self->timer);
  g_clear_pointer (&self->timer, g_source_unref);
}

void
twp_deadline_free (TwpDeadline *self)
{
  if (self == NULL)
    return;
  twp_deadline_disarm (self);
  /* 0 when @parent was already cancelled: nothing is connected then. */
  if (self->parent_id != 0)
    g_cancellable_disconnect (self->parent, self->parent_id);
  g_clear_object (&self->parent);
  g_clear_object (&self->cancellable);
  g_free (self);
}
