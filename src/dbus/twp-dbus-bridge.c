/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-dbus"

#include "config.h"

#include "twp-dbus-bridge.h"

#include "twp-dbus-error.h"
#include "twp-dbus-private.h"
#include "twp-log.h"

struct _TwpDBusBridgeImpl
{
  TwpDBusBridgeSkeleton parent_instance;

  /* owned */
  TwpClient *client;
  TwpBridge *bridge;
  GPtrArray *bindings;           /* GBinding*, core -> skeleton */
  GCancellable *test_cancellable;
  GPtrArray *test_waiters;       /* GDBusMethodInvocation*; non-NULL while a test runs */
};

static void twp_dbus_bridge_iface_init (TwpDBusBridgeIface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (TwpDBusBridgeImpl, twp_dbus_bridge_impl,
                               TWP_DBUS_TYPE_BRIDGE_SKELETON,
                               G_IMPLEMENT_INTERFACE (TWP_DBUS_TYPE_BRIDGE,
                                                      twp_dbus_bridge_iface_init))

/* ---- counters ---------------------------------------------------------- */

void
twp_dbus_bridge_impl_update_counters (TwpDBusBridgeImpl *self)
{
  TwpDBusBridge *iface = TWP_DBUS_BRIDGE (self);
  guint64 attempts, failures, sent, received;
  gint64 rtt;

  g_return_if_fail (TWP_DBUS_IS_BRIDGE_IMPL (self));

  if (self->bridge == NULL)
    return;
  attempts = twp_bridge_get_attempts (self->bridge);
  failures = twp_bridge_get_failures (self->bridge);
  sent = twp_bridge_get_bytes_sent (self->bridge);
  received = twp_bridge_get_bytes_received (self->bridge);
  rtt = twp_bridge_get_rtt_us (self->bridge);

  /* Setting a skeleton property queues PropertiesChanged: only on change. */
  if (twp_dbus_bridge_get_attempts (iface) != attempts)
    twp_dbus_bridge_set_attempts (iface, attempts);
  if (twp_dbus_bridge_get_failures (iface) != failures)
    twp_dbus_bridge_set_failures (iface, failures);
  if (twp_dbus_bridge_get_bytes_sent (iface) != sent)
    twp_dbus_bridge_set_bytes_sent (iface, sent);
  if (twp_dbus_bridge_get_bytes_received (iface) != received)
    twp_dbus_bridge_set_bytes_received (iface, received);
  if (twp_dbus_bridge_get_rtt_microseconds (iface) != rtt)
    twp_dbus_bridge_set_rtt_microseconds (iface, rtt);
}

static void
bridge_state_cb (TwpBridge  *bridge,
                 GParamSpec *pspec,
                 gpointer    user_data)
{
  /* A state change also refreshes the counters, so that one
   * PropertiesChanged shows a coherent picture (failing with its
   * failure counted); state changes are no more frequent than attempts. */
  twp_dbus_bridge_impl_update_counters (TWP_DBUS_BRIDGE_IMPL (user_data));
}

/* ---- methods ----------------------------------------------------------- */

static gboolean
handle_get_url (TwpDBusBridge         *iface,
                GDBusMethodInvocation *invocation)
{
  TwpDBusBridgeImpl *self = TWP_DBUS_BRIDGE_IMPL (iface);
  g_autofree char *url = NULL;

  if (self->bridge == NULL)
    {
      g_dbus_method_invocation_return_error_literal (invocation, TWP_DBUS_ERROR, TWP_DBUS_ERROR_NOT_FOUND,
                                                     "The bridge is gone");
      return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
  /* A reply goes to the caller only; the URL is never broadcast. */
  url = twp_bridge_dup_url (self->bridge);
  twp_dbus_bridge_complete_get_url (iface, invocation, url);
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

static void
test_done_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(TwpDBusBridgeImpl) self = user_data;
  g_autoptr(GPtrArray) waiters = g_steal_pointer (&self->test_waiters);
  g_autoptr(GError) error = NULL;
  TwpDialPhase phase = TWP_DIAL_PHASE_NONE;
  gboolean ok;

  g_clear_object (&self->test_cancellable);
  ok = twp_client_test_bridge_finish (TWP_CLIENT (source), result, &phase, &error);

  for (guint i = 0; waiters != NULL && i < waiters->len; i++)
    {
      GDBusMethodInvocation *invocation = g_ptr_array_index (waiters, i);

      if (!ok && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_dbus_method_invocation_return_error_literal (g_object_ref (invocation), TWP_DBUS_ERROR,
                                                       TWP_DBUS_ERROR_FAILED, "The transport is stopping");
      else
        twp_dbus_bridge_complete_test (TWP_DBUS_BRIDGE (self), g_object_ref (invocation), ok, phase,
                                       twp_failure_reason_from_error (error),
                                       ok ? "" : error->message);
    }
}

static gboolean
handle_test (TwpDBusBridge         *iface,
             GDBusMethodInvocation *invocation)
{
  TwpDBusBridgeImpl *self = TWP_DBUS_BRIDGE_IMPL (iface);

  if (self->bridge == NULL)
    {
      g_dbus_method_invocation_return_error_literal (invocation, TWP_DBUS_ERROR, TWP_DBUS_ERROR_NOT_FOUND,
                                                     "The bridge is gone");
      return G_DBUS_METHOD_INVOCATION_HANDLED;
    }
  /* One test per bridge at a time: later callers share its result, so a
   * busy script cannot make us open many connections. */
  if (self->test_waiters != NULL)
    {
      if (self->test_waiters->len >= TWP_DBUS_BRIDGE_MAX_TEST_WAITERS)
        {
          g_dbus_method_invocation_return_error_literal (invocation, TWP_DBUS_ERROR, TWP_DBUS_ERROR_FAILED,
                                                         "Too many callers are waiting for this bridge's test");
          return G_DBUS_METHOD_INVOCATION_HANDLED;
        }
      g_ptr_array_add (self->test_waiters, g_object_ref (invocation));
      return G_DBUS_METHOD_INVOCATION_HANDLED;
    }

  self->test_waiters = g_ptr_array_new_with_free_func (g_object_unref);
  g_ptr_array_add (self->test_waiters, g_object_ref (invocation));
  self->test_cancellable = g_cancellable_new ();
  /* The reply is sent from the callback: the main loop never waits. */
  twp_client_test_bridge_async (self->client, self->bridge, TWP_DBUS_BRIDGE_TEST_TIMEOUT_MS,
                                self->test_cancellable, test_done_cb, g_object_ref (self));
  return G_DBUS_METHOD_INVOCATION_HANDLED;
}

/* ---- object ------------------------------------------------------------ */

static void
bind (TwpDBusBridgeImpl     *self,
      const char            *source_property,
      const char            *target_property,
      GBindingTransformFunc  transform)
{
  GBinding *binding;

  binding = g_object_bind_property_full (self->bridge, source_property, self, target_property,
                                         G_BINDING_SYNC_CREATE, transform, NULL, NULL, NULL);
  g_ptr_array_add (self->bindings, g_object_ref (binding));
}

void
twp_dbus_bridge_impl_shutdown (TwpDBusBridgeImpl *self)
{
  g_return_if_fail (TWP_DBUS_IS_BRIDGE_IMPL (self));

  if (self->test_cancellable != NULL)
    g_cancellable_cancel (self->test_cancellable);
}

static void
twp_dbus_bridge_impl_dispose (GObject *object)
{
  TwpDBusBridgeImpl *self = TWP_DBUS_BRIDGE_IMPL (object);

  twp_dbus_bridge_impl_shutdown (self);
  for (guint i = 0; self->bindings != NULL && i < self->bindings->len; i++)
    g_binding_unbind (g_ptr_array_index (self->bindings, i));
  g_clear_pointer (&self->bindings, g_ptr_array_unref);
  if (self->bridge != NULL)
    g_signal_handlers_disconnect_by_data (self->bridge, self);
  g_clear_object (&self->client);
  g_clear_object (&self->bridge);

  G_OBJECT_CLASS (twp_dbus_bridge_impl_parent_class)->dispose (object);
}

static void
twp_dbus_bridge_impl_finalize (GObject *object)
{
  TwpDBusBridgeImpl *self = TWP_DBUS_BRIDGE_IMPL (object);

  /* A running test holds a reference: none can be pending here. */
  g_assert (self->test_waiters == NULL);
  g_assert (self->test_cancellable == NULL);

  G_OBJECT_CLASS (twp_dbus_bridge_impl_parent_class)->finalize (object);
}

static void
twp_dbus_bridge_iface_init (TwpDBusBridgeIface *iface)
{
  iface->handle_get_url = handle_get_url;
  iface->handle_test = handle_test;
}

static void
twp_dbus_bridge_impl_class_init (TwpDBusBridgeImplClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = twp_dbus_bridge_impl_dispose;
  object_class->finalize = twp_dbus_bridge_impl_finalize;
}

static void
twp_dbus_bridge_impl_init (TwpDBusBridgeImpl *self)
{
  self->bindings = g_ptr_array_new_with_free_func (g_object_unref);
}

TwpDBusBridgeImpl *
twp_dbus_bridge_impl_new (TwpClient *client,
                          TwpBridge *bridge)
{
  TwpDBusBridgeImpl *self;

  g_return_val_if_fail (TWP_IS_CLIENT (client), NULL);
  g_return_val_if_fail (TWP_IS_BRIDGE (bridge), NULL);

  self = g_object_new (TWP_DBUS_TYPE_BRIDGE_IMPL, NULL);
  self->client = g_object_ref (client);
  self->bridge = g_object_ref (bridge);

  /* State, phase and the rest change rarely and matter at once. */
  bind (self, "id", "id", NULL);
  bind (self, "state", "state", twp_dbus_transform_enum_to_uint);
  bind (self, "phase", "phase", twp_dbus_transform_enum_to_uint);
  bind (self, "frame-mode", "frame-mode", twp_dbus_transform_frame_mode);
  bind (self, "mode-pinned", "mode-pinned", NULL);
  bind (self, "active-connections", "active-connections", NULL);
  bind (self, "last-success-time", "last-success-time", NULL);
  bind (self, "last-failure-time", "last-failure-time", NULL);
  bind (self, "last-failure-reason", "last-failure-reason", twp_dbus_transform_enum_to_uint);
  bind (self, "last-failure-details", "last-failure-details", twp_dbus_transform_details);
  bind (self, "last-failure-code", "last-failure-code", NULL);

  /* Counters change with every packet: copied at most once a second, by
   * the service for all bridges at once (one timer, not one per bridge:
   * each main loop iteration looks at every source). */
  twp_dbus_bridge_impl_update_counters (self);
  g_signal_connect_object (bridge, "notify::state", G_CALLBACK (bridge_state_cb), self, 0);
  return self;
}

TwpBridge *
twp_dbus_bridge_impl_get_bridge (TwpDBusBridgeImpl *self)
{
  g_return_val_if_fail (TWP_DBUS_IS_BRIDGE_IMPL (self), NULL);
  return self->bridge;
}
