/* SPDX-License-Identifier: BSD-3-Clause */
/* The bounded step's cancellable: cancelled by the timer or by the
 * caller's cancellable (from any thread), never after disarm or free, and
 * nothing kept alive afterwards. */
#define G_LOG_DOMAIN "twp-test-deadline"

#include "config.h"

#include "twp-deadline.h"

/* Generous: the machine running the tests may be loaded. */
#define WAIT_LIMIT_SECONDS 30

/* Runs the main context until @cancellable is cancelled; fails the test
 * if that takes more than WAIT_LIMIT_SECONDS. */
static void
wait_cancelled (GCancellable *cancellable)
{
  gint64 limit = g_get_monotonic_time () + WAIT_LIMIT_SECONDS * G_USEC_PER_SEC;

  while (!g_cancellable_is_cancelled (cancellable))
    {
      if (g_get_monotonic_time () > limit)
        g_error ("the cancellable was not cancelled within %d s", WAIT_LIMIT_SECONDS);
      g_main_context_iteration (NULL, FALSE);
      g_usleep (1000);
    }
}

static gboolean
set_flag_cb (gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
  return G_SOURCE_REMOVE;
}

/* Runs the main context for @ms (a timer of its own ends the wait), so
 * that a timer that should not fire has had its chance to. */
static void
run_for (guint ms)
{
  gboolean done = FALSE;
  g_autoptr(GSource) source = g_timeout_source_new (ms);

  g_source_set_static_name (source, "[test] run for");
  g_source_set_callback (source, set_flag_cb, &done, NULL);
  g_source_attach (source, NULL);
  while (!done)
    g_main_context_iteration (NULL, TRUE);
}

/* A cancellable that must be gone once the test drops it. */
static GCancellable *
tracked_cancellable (gpointer *weak)
{
  GCancellable *cancellable = g_cancellable_new ();

  *weak = cancellable;
  g_object_add_weak_pointer (G_OBJECT (cancellable), weak);
  return cancellable;
}

static void
test_deadline_fires (void)
{
  gpointer weak = NULL;
  g_autoptr(GCancellable) cancellable = tracked_cancellable (&weak);
  g_autoptr(TwpDeadline) deadline = NULL;
  gint64 started = g_get_monotonic_time ();

  deadline = twp_deadline_new (cancellable, NULL, 50, "[test] deadline");
  g_assert_false (twp_deadline_has_expired (deadline));
  g_assert_false (g_cancellable_is_cancelled (cancellable));
  wait_cancelled (cancellable);
  g_assert_true (twp_deadline_has_expired (deadline));
  /* Never early (a lower bound only: late is the machine's business). */
  g_assert_cmpint (g_get_monotonic_time () - started, >=, 50 * 1000);

  /* Disarming or freeing after it fired is harmless; nothing is kept. */
  twp_deadline_disarm (deadline);
  g_clear_pointer (&deadline, twp_deadline_free);
  g_clear_object (&cancellable);
  g_assert_null (weak);
}

static void
test_deadline_forwards_parent (void)
{
  gpointer weak = NULL;
  gpointer weak_parent = NULL;
  g_autoptr(GCancellable) cancellable = tracked_cancellable (&weak);
  g_autoptr(GCancellable) parent = tracked_cancellable (&weak_parent);
  g_autoptr(TwpDeadline) deadline = twp_deadline_new (cancellable, parent, 60 * 1000, "[test] deadline");

  g_cancellable_cancel (parent);
  /* Forwarded at once, in the cancelling thread. */
  g_assert_true (g_cancellable_is_cancelled (cancellable));
  g_assert_false (twp_deadline_has_expired (deadline));

  g_clear_pointer (&deadline, twp_deadline_free);
  g_clear_object (&cancellable);
  g_clear_object (&parent);
  g_assert_null (weak);
  g_assert_null (weak_parent);
}

static gpointer
cancel_thread (gpointer user_data)
{
  g_cancellable_cancel (G_CANCELLABLE (user_data));
  return NULL;
}

/* tor's connection may be cancelled from another thread than ours. */
static void
test_deadline_forwards_from_thread (void)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GCancellable) parent = g_cancellable_new ();
  g_autoptr(TwpDeadline) deadline = twp_deadline_new (cancellable, parent, 0, NULL);
  GThread *thread;

  thread = g_thread_new ("cancel", cancel_thread, parent);
  g_thread_join (thread);
  g_assert_true (g_cancellable_is_cancelled (cancellable));
  g_assert_false (twp_deadline_has_expired (deadline));
}

static void
test_deadline_parent_already_cancelled (void)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GCancellable) parent = g_cancellable_new ();
  g_autoptr(TwpDeadline) deadline = NULL;

  g_cancellable_cancel (parent);
  deadline = twp_deadline_new (cancellable, parent, 0, NULL);
  g_assert_true (g_cancellable_is_cancelled (cancellable));
}

static void
test_deadline_disarm (void)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GCancellable) parent = g_cancellable_new ();
  g_autoptr(TwpDeadline) deadline = twp_deadline_new (cancellable, parent, 20, "[test] deadline");

  twp_deadline_disarm (deadline);
  run_for (200);
  g_assert_false (g_cancellable_is_cancelled (cancellable));
  g_assert_false (twp_deadline_has_expired (deadline));
  /* The parent is still forwarded after a disarm. */
  g_cancellable_cancel (parent);
  g_assert_true (g_cancellable_is_cancelled (cancellable));
}

/* Free disconnects from the parent and removes the timer: neither
 * cancels afterwards, and the deadline holds no reference. */
static void
test_deadline_free_disconnects (void)
{
  gpointer weak = NULL;
  gpointer weak_parent = NULL;
  g_autoptr(GCancellable) cancellable = tracked_cancellable (&weak);
  g_autoptr(GCancellable) parent = tracked_cancellable (&weak_parent);
  TwpDeadline *deadline = twp_deadline_new (cancellable, parent, 20, "[test] deadline");

  twp_deadline_free (deadline);
  run_for (200);
  g_cancellable_cancel (parent);
  g_assert_false (g_cancellable_is_cancelled (cancellable));

  g_clear_object (&cancellable);
  g_clear_object (&parent);
  g_assert_null (weak);
  g_assert_null (weak_parent);
}

/* 0 ms: forwarding only, no timer at all. */
static void
test_deadline_zero_has_no_timer (void)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(TwpDeadline) deadline = twp_deadline_new (cancellable, NULL, 0, NULL);

  run_for (100);
  g_assert_false (g_cancellable_is_cancelled (cancellable));
  g_assert_false (twp_deadline_has_expired (deadline));
}

/* Many armed deadlines freed before they fire leave no source behind:
 * the context has nothing left to dispatch (and ASan sees no leak). */
static void
test_deadline_many_freed (void)
{
  g_autoptr(GCancellable) parent = g_cancellable_new ();
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();

  for (guint i = 0; i < 1000; i++)
    twp_deadline_free (twp_deadline_new (cancellable, parent, 10, "[test] deadline"));
  run_for (100);
  g_assert_false (g_main_context_pending (NULL));
  g_cancellable_cancel (parent);
  g_assert_false (g_cancellable_is_cancelled (cancellable));
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/deadline/fires", test_deadline_fires);
  g_test_add_func ("/deadline/forwards-parent", test_deadline_forwards_parent);
  g_test_add_func ("/deadline/forwards-from-thread", test_deadline_forwards_from_thread);
  g_test_add_func ("/deadline/parent-already-cancelled", test_deadline_parent_already_cancelled);
  g_test_add_func ("/deadline/disarm", test_deadline_disarm);
  g_test_add_func ("/deadline/free-disconnects", test_deadline_free_disconnects);
  g_test_add_func ("/deadline/zero-has-no-timer", test_deadline_zero_has_no_timer);
  g_test_add_func ("/deadline/many-freed", test_deadline_many_freed);

  return g_test_run ();
}
