/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-relay"

#include "config.h"

#include "twp-relay.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "twp-base64.h"
#include "twp-random.h"
#include "twp-relay-io.h"
#include "twp-ws-frame.h"

/* How much WebSocket input one read takes. Every byte of it turns into at
 * most one byte of TCP output, so this also bounds the pending TCP write. */
#define DOWN_READ_SIZE (32 * 1024)
/* Raw bytes per base64 message: a multiple of 3 so that only the last
 * quantum of a message is ever padded; 12288 -> 16384 characters. */
#define UP_RAW_BASE64 12288
/* A tunnel without data for this long gives its buffers' pages back. */
#define RELEASE_IDLE_SECONDS 2
/* GnuTLS's largest record payload (2^14, RFC 8446 5.1). */
#define TLS_RECORD_SIZE 16384
/* How long we wait for the peer's close frame after sending ours (RFC 6455
 * 7.1.1 lets us close the TCP connection ourselves after that). */
#define CLOSE_TIMEOUT_SECONDS 5
/* After a protocol error we discard what the peer still sends, so that
 * closing does not reset the connection and destroy our close frame in
 * flight; but not for long. */
#define DRAIN_TIMEOUT_SECONDS 2


typedef enum {
  WS_WRITE_NONE,
  WS_WRITE_DATA,
  WS_WRITE_CONTROL,
  WS_WRITE_CLOSE,
} WsWriteKind;

struct _TwpRelay
{
  GObject parent_instance;

  /* owned */
  GIOStream *tcp;
  GIOStream *ws;
  TwpRelayIo tcp_end;
  TwpRelayIo ws_end;
  GBytes *tcp_leftover;
  GBytes *ws_leftover;
  GTask *task;
  GCancellable *cancellable;        /* cancels our own pending I/O on teardown */
  GCancellable *external_cancellable;
  gulong external_cancelled_id;
  GMainContext *context;            /* run_async's: teardown runs there */
  GSource *close_timeout_source;
  GError *error;                    /* first reason the tunnel failed */

  TwpRelayOptions options;
  TwpWsParser parser;
  TwpBase64Decoder decoder;

  /* TCP -> WebSocket. up_buf has TWP_WS_MAX_HEADER_SIZE bytes of room in
   * front of the payload so that a frame is built in place, without a copy. */
  guint8 *up_buf;
  gsize up_buf_size;
  guint8 *up_raw;
  gsize up_leftover_pos;
  const guint8 *up_frame;
  gsize up_frame_len;
  gboolean tcp_eof;
  gboolean up_stopped;              /* no more TCP reads: closing */

  /* The single WebSocket writer: control frames go first, then data, and
   * the close frame last, one write in flight at a time. */
  WsWriteKind ws_writing;
  guint8 control_buf[TWP_WS_MAX_HEADER_SIZE + TWP_WS_MAX_CONTROL_PAYLOAD];
  gboolean pong_pending;
  guint8 pong_payload[TWP_WS_MAX_CONTROL_PAYLOAD];
  gsize pong_len;
  gboolean ping_pending;
  gint64 ping_sent_at;
  gint64 last_ws_read_at;           /* anything read from the WebSocket */
  gboolean close_pending;
  guint16 close_code;
  const char *close_reason;
  gboolean close_sent;

  /* WebSocket -> TCP */
  guint8 *down_buf;
  gsize down_buf_size;
  gsize down_len;
  gsize down_pos;
  guint8 *down_out;
  gsize down_out_size;
  GOutputVector vectors[TWP_RELAY_IO_MAX_VECTORS];
  gboolean down_reading;
  gboolean down_writing;
  gboolean ws_eof;
  gboolean down_stopped;            /* no more WebSocket input is relayed */
  gboolean draining;                /* after a protocol error: input discarded until EOF */
  gboolean peer_closed;
  guint peer_close_code;
  guint16 failure_code;             /* a protocol error waiting for the TCP write */
  const char *failure_reason;
  gboolean tcp_write_shut;

  guint64 bytes_to_ws;
  guint64 bytes_from_ws;
  gint64 rtt_us;
  gint64 last_data_at;
  gint64 released_for;              /* last_data_at when the buffers' pages went back */
  gint64 last_ws_write_at;
  gboolean ticking;
  gboolean finished;
  TwpRelayEnd end;
};

G_DEFINE_FINAL_TYPE (TwpRelay, twp_relay, G_TYPE_OBJECT)

G_DEFINE_QUARK (twp-relay-error-quark, twp_relay_error)

static void up_read_next (TwpRelay *self);
static void down_read_next (TwpRelay *self);
static void down_process (TwpRelay *self);
static void ws_writer_kick (TwpRelay *self);
static void check_done (TwpRelay *self);
static void restart_close_timer (TwpRelay *self);
static void relay_tick (TwpRelay *self,
                        gint64    now);

/* Keepalive and idle checks: one timer for every relay of the process,
 * not one each, so that ten thousand idle tunnels cost the main loop one
 * source (GLib's loop is linear in the number of sources). Main context
 * only, like the rest of the relay. */
static GHashTable *ticking_relays;
static GSource *tick_source;

static gboolean
tick_cb (gpointer user_data)
{
  g_autoptr(GPtrArray) relays = g_ptr_array_new_with_free_func (g_object_unref);
  gint64 now = g_get_monotonic_time ();
  GHashTableIter iter;
  gpointer relay;

  /* A tick may finish a relay, which leaves the set: walk a copy. */
  g_hash_table_iter_init (&iter, ticking_relays);
  while (g_hash_table_iter_next (&iter, &relay, NULL))
    g_ptr_array_add (relays, g_object_ref (relay));
  for (guint i = 0; i < relays->len; i++)
    relay_tick (g_ptr_array_index (relays, i), now);
  return G_SOURCE_CONTINUE;
}

static void
start_ticking (TwpRelay *self)
{
  if (ticking_relays == NULL)
    ticking_relays = g_hash_table_new (NULL, NULL);
  g_hash_table_add (ticking_relays, self);
  self->ticking = TRUE;
  if (tick_source == NULL)
    {
      tick_source = g_timeout_source_new_seconds (1);
      g_source_set_static_name (tick_source, "[twp] relay keepalive and idle");
      g_source_set_callback (tick_source, tick_cb, NULL, NULL);
      g_source_attach (tick_source, g_main_context_get_thread_default ());
    }
}

static void
stop_ticking (TwpRelay *self)
{
  if (!self->ticking)
    return;
  self->ticking = FALSE;
  g_hash_table_remove (ticking_relays, self);
  if (g_hash_table_size (ticking_relays) == 0)
    {
      g_source_destroy (tick_source);
      g_clear_pointer (&tick_source, g_source_unref);
      g_clear_pointer (&ticking_relays, g_hash_table_unref);
    }
}

/* Frame masks must be unpredictable (RFC 6455 10.3); draw them from the
 * kernel in batches so that masking costs no syscall per frame. */
static void
random_mask (guint8 mask[4])
{
  static guint8 pool[256];
  static gsize pool_pos = sizeof pool;

  if (pool_pos + 4 > sizeof pool)
    {
      /* No error path here, and no weaker generator will do. */
      twp_random_bytes_or_die (pool, sizeof pool);
      pool_pos = 0;
    }
  memcpy (mask, pool + pool_pos, 4);
  pool_pos += 4;
}

static void
twp_relay_dispose (GObject *object)
{
  TwpRelay *self = TWP_RELAY (object);

  if (self->external_cancelled_id != 0)
    g_cancellable_disconnect (self->external_cancellable, self->external_cancelled_id);
  self->external_cancelled_id = 0;
  g_clear_object (&self->external_cancellable);
  g_clear_pointer (&self->context, g_main_context_unref);
  stop_ticking (self);
  twp_relay_io_stop (&self->tcp_end);
  twp_relay_io_stop (&self->ws_end);
  if (self->close_timeout_source != NULL)
    g_source_destroy (self->close_timeout_source);
  g_clear_pointer (&self->close_timeout_source, g_source_unref);
  g_clear_object (&self->task);
  g_clear_object (&self->cancellable);
  g_clear_object (&self->tcp);
  g_clear_object (&self->ws);
  g_clear_pointer (&self->tcp_leftover, g_bytes_unref);
  g_clear_pointer (&self->ws_leftover, g_bytes_unref);

  G_OBJECT_CLASS (twp_relay_parent_class)->dispose (object);
}

static void
twp_relay_finalize (GObject *object)
{
  TwpRelay *self = TWP_RELAY (object);

  g_clear_error (&self->error);
  twp_relay_io_clear (&self->tcp_end);
  twp_relay_io_clear (&self->ws_end);
  g_free (self->up_buf);
  g_free (self->up_raw);
  g_free (self->down_buf);
  g_free (self->down_out);

  G_OBJECT_CLASS (twp_relay_parent_class)->finalize (object);
}

static void
twp_relay_class_init (TwpRelayClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = twp_relay_dispose;
  object_class->finalize = twp_relay_finalize;
}

static void
twp_relay_init (TwpRelay *self)
{
  self->rtt_us = -1;
  self->cancellable = g_cancellable_new ();
}

TwpRelay *
twp_relay_new (GIOStream             *tcp,
               GIOStream             *ws,
               GBytes                *tcp_leftover,
               GBytes                *ws_leftover,
               const TwpRelayOptions *options)
{
  TwpRelay *self;
  gsize ws_leftover_len;

  g_return_val_if_fail (G_IS_SOCKET_CONNECTION (tcp), NULL);
  g_return_val_if_fail (G_IS_IO_STREAM (ws), NULL);
  g_return_val_if_fail (options != NULL, NULL);

  self = g_object_new (TWP_TYPE_RELAY, NULL);
  self->tcp = g_object_ref (tcp);
  self->ws = g_object_ref (ws);
  twp_relay_io_init (&self->tcp_end, G_OBJECT (self), self->tcp, self->cancellable);
  twp_relay_io_init (&self->ws_end, G_OBJECT (self), self->ws, self->cancellable);
  self->options = *options;
  if (self->options.max_message_size == 0)
    self->options.max_message_size = TWP_RELAY_DEFAULT_MAX_MESSAGE;
  if (self->options.stall_timeout_seconds == 0)
    self->options.stall_timeout_seconds = TWP_RELAY_DEFAULT_STALL_TIMEOUT;
  if (tcp_leftover != NULL && g_bytes_get_size (tcp_leftover) > 0)
    self->tcp_leftover = g_bytes_ref (tcp_leftover);
  if (ws_leftover != NULL && g_bytes_get_size (ws_leftover) > 0)
    self->ws_leftover = g_bytes_ref (ws_leftover);

  twp_ws_parser_init (&self->parser, !options->is_client, self->options.max_message_size);

  ws_leftover_len = self->ws_leftover != NULL ? g_bytes_get_size (self->ws_leftover) : 0;
  self->down_buf_size = MAX (DOWN_READ_SIZE, ws_leftover_len);

  return self;
}

static void
allocate_buffers (TwpRelay *self)
{
  gsize payload = self->options.base64 ? TWP_BASE64_ENCODED_SIZE (UP_RAW_BASE64) : TWP_RELAY_MESSAGE_PAYLOAD;

  self->up_buf_size = TWP_WS_MAX_HEADER_SIZE + MAX (payload, TWP_RELAY_MESSAGE_PAYLOAD);
  self->up_buf = g_malloc (self->up_buf_size);
  if (self->options.base64)
    self->up_raw = g_malloc (UP_RAW_BASE64);
  self->down_buf = g_malloc (self->down_buf_size);
  /* A peer in base64 mode may still send binary messages (nothing forbids
   * it), which pass through undecoded: room for either. */
  self->down_out_size = TWP_BASE64_DECODED_MAX (self->down_buf_size) + 3;
  if (self->options.base64)
    self->down_out = g_malloc (self->down_out_size);
}

/* ---- teardown ---------------------------------------------------------- */

static void
close_stream_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_io_stream_close_finish (G_IO_STREAM (source), result, NULL);
}

/* Runs after the cancelled reads have returned: a stream with a read still
 * pending refuses to close. */
static gboolean
close_streams_cb (gpointer user_data)
{
  TwpRelay *self = user_data;

  g_io_stream_close_async (self->tcp, G_PRIORITY_DEFAULT, NULL, close_stream_cb, NULL);
  g_io_stream_close_async (self->ws, G_PRIORITY_DEFAULT, NULL, close_stream_cb, NULL);
  return G_SOURCE_REMOVE;
}

static void
shut_tcp_write (TwpRelay *self)
{
  GSocket *socket;

  if (self->tcp_write_shut)
    return;
  self->tcp_write_shut = TRUE;
  socket = g_socket_connection_get_socket (G_SOCKET_CONNECTION (self->tcp));
  /* Errors here mean the TCP peer is already gone, which is what we want. */
  g_socket_shutdown (socket, FALSE, TRUE, NULL);
}

/* The first error says why; an unanswered keepalive ping says the peer
 * was already gone when the connection broke. */
static TwpRelayEnd
classify_end (TwpRelay     *self,
              const GError *error)
{
  gboolean ping_unanswered = self->ping_sent_at != 0;

  if (error == NULL)
    return TWP_RELAY_END_NORMAL;
  if (error->domain == TWP_RELAY_ERROR)
    switch ((TwpRelayError) error->code)
      {
      case TWP_RELAY_ERROR_PEER_PROTOCOL:
        return TWP_RELAY_END_PROTOCOL;
      case TWP_RELAY_ERROR_PEER_CLOSED:
        return TWP_RELAY_END_PEER_CLOSED;
      case TWP_RELAY_ERROR_IDLE:
        return TWP_RELAY_END_IDLE;
      case TWP_RELAY_ERROR_ABNORMAL:
      default:
        return ping_unanswered ? TWP_RELAY_END_KEEPALIVE : TWP_RELAY_END_ABNORMAL;
      }
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return TWP_RELAY_END_CANCELLED;
  /* Both stall checks (data and closing) fail with TIMED_OUT. */
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
    return TWP_RELAY_END_STALL;
  return ping_unanswered ? TWP_RELAY_END_KEEPALIVE : TWP_RELAY_END_IO_ERROR;
}

static void
finish (TwpRelay *self)
{
  g_autoptr(GTask) task = NULL;

  if (self->finished)
    return;
  self->finished = TRUE;
  self->end = classify_end (self, self->error);

  stop_ticking (self);
  if (self->close_timeout_source != NULL)
    g_source_destroy (self->close_timeout_source);

  /* Whatever is still pending (a TCP read waiting for tor, a WebSocket read
   * waiting for the peer) is abandoned: reactor watches go before the
   * streams close their fds; GIO callbacks only drop their refs. */
  twp_relay_io_stop (&self->tcp_end);
  twp_relay_io_stop (&self->ws_end);
  g_cancellable_cancel (self->cancellable);
  {
    g_autoptr(GSource) source = g_idle_source_new ();

    g_source_set_priority (source, G_PRIORITY_LOW);
    g_source_set_static_name (source, "[twp] relay close streams");
    g_source_set_callback (source, close_streams_cb, g_object_ref (self), g_object_unref);
    g_source_attach (source, g_main_context_get_thread_default ());
  }

  task = g_steal_pointer (&self->task);
  if (task == NULL)
    return;
  if (self->error != NULL)
    g_task_return_error (task, g_steal_pointer (&self->error));
  else
    g_task_return_boolean (task, TRUE);
}

static void
set_error (TwpRelay *self,
           GError   *error)
{
  if (self->error == NULL)
    self->error = error;
  else
    g_error_free (error);
}

/* Starts our side of the closing handshake: no more data frames, the close
 * frame as soon as the writer is free. */
static void
begin_close (TwpRelay   *self,
             guint16     code,
             const char *reason)
{
  self->up_stopped = TRUE;
  if (self->close_pending || self->close_sent)
    return;
  self->close_pending = TRUE;
  self->close_code = code;
  self->close_reason = reason;
  restart_close_timer (self);
  /* A data frame not yet on the wire is dropped when we are closing for
   * an error; after a clean TCP EOF nothing is pending anyway. */
  if (self->ws_writing != WS_WRITE_DATA)
    self->up_frame = NULL;
  ws_writer_kick (self);
}

/* The WebSocket peer misbehaved: close with the status the spec asks for
 * and stop relaying its data. */
static void
fail_protocol (TwpRelay   *self,
               guint16     code,
               const char *reason)
{
  set_error (self, g_error_new (TWP_RELAY_ERROR, TWP_RELAY_ERROR_PEER_PROTOCOL,
                                "WebSocket peer error (%u): %s", code, reason));
  /* The parser is dead: nothing more is relayed, and what the peer still
   * sends is read and dropped until it closes (lingering close). */
  self->draining = TRUE;
  begin_close (self, code, reason);
  if (!self->down_reading && !self->down_writing)
    down_read_next (self);
  check_done (self);
}

/* Fatal I/O error on either end: nothing more can be delivered. */
static void
fail_io (TwpRelay *self,
         GError   *error)
{
  set_error (self, error);
  finish (self);
}

static gboolean
close_timeout_cb (gpointer user_data)
{
  TwpRelay *self = user_data;

  g_clear_pointer (&self->close_timeout_source, g_source_unref);
  if (self->finished)
    return G_SOURCE_REMOVE;
  if (self->ws_writing != WS_WRITE_NONE || self->down_writing)
    {
      /* A peer (or tor) that stopped reading would hold the tunnel, its
       * sockets and its slot forever: give up on the write. */
      fail_io (self, g_error_new_literal (G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                                          "the connection stopped taking data while closing"));
      return G_SOURCE_REMOVE;
    }
  if (!self->peer_closed && !self->ws_eof)
    g_debug ("peer did not answer our close frame in time");
  self->peer_closed = TRUE;
  self->down_stopped = TRUE;
  check_done (self);
  return G_SOURCE_REMOVE;
}

/* Bounds the closing handshake: from the moment a close is decided, every
 * step (our last frames, the peer's close) must make progress within the
 * timeout, or the tunnel is torn down. */
static void
restart_close_timer (TwpRelay *self)
{
  if (self->close_timeout_source != NULL)
    {
      g_source_destroy (self->close_timeout_source);
      g_clear_pointer (&self->close_timeout_source, g_source_unref);
    }
  self->close_timeout_source = g_timeout_source_new_seconds (self->draining ? DRAIN_TIMEOUT_SECONDS
                                                                            : CLOSE_TIMEOUT_SECONDS);
  g_source_set_static_name (self->close_timeout_source, "[twp] relay close timeout");
  g_source_set_callback (self->close_timeout_source, close_timeout_cb, self, NULL);
  g_source_attach (self->close_timeout_source, g_main_context_get_thread_default ());
}

/* The closing handshake. Each flag below only ever goes from FALSE to
 * TRUE (close_pending excepted: it hands over to close_sent); check_done()
 * runs after every step and takes the three decisions that follow.
 *
 *   flag            set by                                    meaning
 *   tcp_eof         up_read_done (EOF or error)               no more TCP input
 *   up_stopped      begin_close, down_read_done (WS EOF)      no more TCP reads
 *   close_pending   begin_close                               our close frame is queued
 *   close_sent      ws_write_done (WS_WRITE_CLOSE)            our close frame is on the wire
 *   peer_closed     handle_control (CLOSE),                   the peer's close frame came
 *                   close_timeout_cb, relay_tick (idle)       (or we stopped waiting for it)
 *   ws_eof          down_read_done (EOF or error),            the connection under the
 *                   ws_write_done (error)                     WebSocket is gone
 *   down_stopped    handle_control (CLOSE), down_read_done,   no more WebSocket input is
 *                   tcp_write_done (error),                   relayed
 *                   close_timeout_cb, relay_tick (idle)
 *   draining        fail_protocol                             input read and dropped
 *   tcp_write_shut  shut_tcp_write, tcp_write_done (error)    our FIN went to TCP
 *   finished        finish                                    the task has returned
 *
 *   decision   when                                                       then
 *   TCP FIN    (peer_closed or ws_eof or draining), no TCP write in       shut_tcp_write
 *              flight, and all input written (or down_stopped/draining)
 *   echo       peer_closed, not ws_eof, no close frame queued or sent     begin_close with the
 *                                                                         peer's code (1000
 *                                                                         for none)
 *   finish     tcp_write_shut, nothing in flight on either end,           finish
 *              (close_sent or ws_eof), and after a protocol error also
 *              (peer_closed or ws_eof): the lingering close
 *
 * Outside this: fail_io() (a WebSocket write error, a stall, the closing
 * timer with a write stuck) and cancellation finish at once. */
static void
check_done (TwpRelay *self)
{
  if (self->finished)
    return;

  /* The WebSocket side is over once both close frames crossed (or the
   * peer's TCP connection ended); the TCP side once everything received
   * has been written to it. */
  if ((self->peer_closed || self->ws_eof || self->draining) && !self->down_writing &&
      (self->down_pos >= self->down_len || self->down_stopped || self->draining))
    shut_tcp_write (self);

  /* Over a connection that is gone there is no one to answer. */
  if (self->peer_closed && !self->ws_eof && !self->close_sent && !self->close_pending)
    begin_close (self, self->peer_close_code == TWP_WS_CLOSE_NO_STATUS || self->peer_close_code == 0
                       ? TWP_WS_CLOSE_NORMAL : self->peer_close_code, NULL);

  if (self->tcp_write_shut && !self->down_writing && self->ws_writing == WS_WRITE_NONE &&
      (self->close_sent || self->ws_eof) &&
      (!self->draining || self->ws_eof || self->peer_closed))
    finish (self);
}

/* ---- WebSocket writer -------------------------------------------------- */

static void
ws_write_done (gpointer  user_data,
               GError   *error)
{
  TwpRelay *self = user_data;
  WsWriteKind kind = self->ws_writing;

  self->ws_writing = WS_WRITE_NONE;
  if (error != NULL)
    {
      if (!self->finished)
        {
          self->ws_eof = TRUE;
          fail_io (self, g_error_new (error->domain, error->code,
                                      "Writing to the WebSocket: %s", error->message));
        }
      return;
    }
  if (self->finished)
    return;

  self->last_ws_write_at = g_get_monotonic_time ();
  if (self->close_timeout_source != NULL && !self->peer_closed && !self->ws_eof)
    restart_close_timer (self);
  switch (kind)
    {
    case WS_WRITE_DATA:
      self->up_frame = NULL;
      if (!self->up_stopped && !self->tcp_eof)
        up_read_next (self);
      break;
    case WS_WRITE_CLOSE:
      self->close_sent = TRUE;
      /* Lingering close: our FIN follows the close frame, the peer sees
       * the end and closes, and its last bytes do not reset ours. */
      if (self->draining && G_IS_SOCKET_CONNECTION (self->ws))
        g_socket_shutdown (g_socket_connection_get_socket (G_SOCKET_CONNECTION (self->ws)),
                           FALSE, TRUE, NULL);
      break;
    case WS_WRITE_CONTROL:
    case WS_WRITE_NONE:
    default:
      break;
    }

  ws_writer_kick (self);
  check_done (self);
}

static void
ws_write (TwpRelay     *self,
          WsWriteKind   kind,
          const guint8 *data,
          gsize         len)
{
  GOutputVector vector = { data, len };

  self->ws_writing = kind;
  twp_relay_io_writev (&self->ws_end, &vector, 1, ws_write_done);
}

static gsize
build_control (TwpRelay     *self,
               TwpWsOpcode   opcode,
               const guint8 *payload,
               gsize         len)
{
  guint8 mask[4];
  gsize header_len;

  if (self->options.is_client)
    random_mask (mask);
  header_len = twp_ws_frame_write_header (self->control_buf, opcode, TRUE, len,
                                          self->options.is_client ? mask : NULL);
  memcpy (self->control_buf + header_len, payload, len);
  if (self->options.is_client)
    twp_ws_mask (self->control_buf + header_len, len, mask, 0);
  return header_len + len;
}

static void
ws_writer_kick (TwpRelay *self)
{
  if (self->ws_writing != WS_WRITE_NONE || self->close_sent || self->finished)
    return;

  if (self->pong_pending)
    {
      /* Only the latest ping is answered (RFC 6455 5.5.3), once. */
      self->pong_pending = FALSE;
      ws_write (self, WS_WRITE_CONTROL, self->control_buf,
                build_control (self, TWP_WS_OPCODE_PONG, self->pong_payload, self->pong_len));
    }
  else if (self->ping_pending)
    {
      guint8 payload[8];
      gint64 now = g_get_monotonic_time ();

      self->ping_pending = FALSE;
      self->ping_sent_at = now;
      /* The payload identifies the ping so that its pong gives the RTT. */
      memcpy (payload, &now, sizeof payload);
      ws_write (self, WS_WRITE_CONTROL, self->control_buf,
                build_control (self, TWP_WS_OPCODE_PING, payload, sizeof payload));
    }
  else if (self->up_frame != NULL)
    {
      ws_write (self, WS_WRITE_DATA, self->up_frame, self->up_frame_len);
    }
  else if (self->close_pending)
    {
      guint8 mask[4];
      gsize len;

      self->close_pending = FALSE;
      if (self->options.is_client)
        random_mask (mask);
      len = twp_ws_frame_write_close (self->control_buf, self->close_code, self->close_reason,
                                      self->options.is_client ? mask : NULL);
      ws_write (self, WS_WRITE_CLOSE, self->control_buf, len);
    }
}

/* ---- TCP -> WebSocket -------------------------------------------------- */

static void
up_got_data (TwpRelay *self,
             gsize     n)
{
  guint8 *payload = self->up_buf + TWP_WS_MAX_HEADER_SIZE;
  guint8 header[TWP_WS_MAX_HEADER_SIZE];
  guint8 mask[4];
  gsize payload_len = n;
  gsize header_len;
  TwpWsOpcode opcode = TWP_WS_OPCODE_BINARY;

  self->bytes_to_ws += n;
  self->last_data_at = g_get_monotonic_time ();

  if (self->options.base64)
    {
      payload_len = twp_base64_encode (self->up_raw, n, (char *) payload);
      opcode = TWP_WS_OPCODE_TEXT;
    }
  if (self->options.is_client)
    random_mask (mask);
  header_len = twp_ws_frame_write_header (header, opcode, TRUE, payload_len,
                                          self->options.is_client ? mask : NULL);
  if (self->options.is_client)
    twp_ws_mask (payload, payload_len, mask, 0);
  memcpy (payload - header_len, header, header_len);

  self->up_frame = payload - header_len;
  self->up_frame_len = header_len + payload_len;
  ws_writer_kick (self);
}

static void
up_read_done (gpointer  user_data,
              gssize    n,
              GError   *error)
{
  TwpRelay *self = user_data;

  if (self->finished || self->up_stopped)
    return;
  if (n < 0)
    {
      /* A reset from tor or the ORPort: tell the peer we are going away. */
      g_debug ("TCP read failed: %s", error->message);
      self->tcp_eof = TRUE;
      set_error (self, g_error_copy (error));
      begin_close (self, TWP_WS_CLOSE_GOING_AWAY, NULL);
      check_done (self);
      return;
    }
  if (n == 0)
    {
      /* TCP EOF after the last byte: the close frame follows the last data
       * frame through the same writer, so nothing is lost. */
      self->tcp_eof = TRUE;
      begin_close (self, TWP_WS_CLOSE_NORMAL, NULL);
      check_done (self);
      return;
    }
  up_got_data (self, n);
}

static void
up_read_next (TwpRelay *self)
{
  guint8 *dest = self->options.base64 ? self->up_raw : self->up_buf + TWP_WS_MAX_HEADER_SIZE;
  gsize capacity = self->options.base64 ? UP_RAW_BASE64 : TWP_RELAY_MESSAGE_PAYLOAD;

  if (twp_relay_io_is_tls (&self->ws_end))
    {
      /* Over TLS a frame fills one record exactly: 16 KiB of payload plus
       * its header would take a second record of a few bytes. The header
       * of a 126..65535-byte payload is 4 bytes, 8 masked. */
      gsize room = TLS_RECORD_SIZE - 4 - (self->options.is_client ? 4 : 0);

      capacity = self->options.base64 ? room / 4 * 3 : room;
    }

  if (self->tcp_leftover != NULL)
    {
      gsize size;
      const guint8 *data = g_bytes_get_data (self->tcp_leftover, &size);
      gsize n = MIN (capacity, size - self->up_leftover_pos);

      memcpy (dest, data + self->up_leftover_pos, n);
      self->up_leftover_pos += n;
      if (self->up_leftover_pos == size)
        g_clear_pointer (&self->tcp_leftover, g_bytes_unref);
      up_got_data (self, n);
      return;
    }

  twp_relay_io_read (&self->tcp_end, dest, capacity, up_read_done);
}

/* ---- WebSocket -> TCP -------------------------------------------------- */

/* A protocol error ends the tunnel, but the data of the valid messages
 * before it is still written to TCP first. */
static void
defer_failure (TwpRelay   *self,
               guint16     code,
               const char *reason)
{
  self->failure_code = code;
  self->failure_reason = reason;
}

static void
after_tcp_write (TwpRelay *self)
{
  if (self->failure_code != 0 && !self->draining && !self->down_stopped)
    fail_protocol (self, self->failure_code, self->failure_reason);
  else if (self->draining)
    down_read_next (self);
  else if (self->down_stopped || self->peer_closed)
    check_done (self);
  else
    down_read_next (self);
}

static void
tcp_write_done (gpointer  user_data,
                GError   *error)
{
  TwpRelay *self = user_data;
  self->down_writing = FALSE;
  if (error != NULL)
    {
      if (self->finished)
        return;
      /* tor (or the ORPort) went away: nothing more can be delivered. */
      g_debug ("TCP write failed: %s", error->message);
      self->down_stopped = TRUE;
      self->tcp_write_shut = TRUE;
      set_error (self, g_error_copy (error));
      begin_close (self, TWP_WS_CLOSE_GOING_AWAY, NULL);
      check_done (self);
      return;
    }
  if (self->finished)
    return;

  if (self->failure_code != 0 || self->draining || self->down_stopped || self->peer_closed)
    after_tcp_write (self);
  else
    down_process (self);
}

static void
handle_control (TwpRelay         *self,
                const TwpWsEvent *event)
{
  switch (event->opcode)
    {
    case TWP_WS_OPCODE_PING:
      memcpy (self->pong_payload, event->data, event->len);
      self->pong_len = event->len;
      self->pong_pending = TRUE;
      ws_writer_kick (self);
      break;

    case TWP_WS_OPCODE_PONG:
      if (self->ping_sent_at != 0 && event->len == sizeof (gint64) &&
          memcmp (event->data, &self->ping_sent_at, sizeof (gint64)) == 0)
        {
          self->rtt_us = g_get_monotonic_time () - self->ping_sent_at;
          self->ping_sent_at = 0;
        }
      break;

    case TWP_WS_OPCODE_CLOSE:
      self->peer_close_code = event->close_code;
      self->peer_closed = TRUE;
      /* Nothing after a close frame is data (RFC 6455 5.5.1): bytes that
       * followed it in the same read must not keep the tunnel waiting. */
      self->down_stopped = TRUE;
      if (self->peer_close_code != TWP_WS_CLOSE_NORMAL &&
          self->peer_close_code != TWP_WS_CLOSE_GOING_AWAY &&
          self->peer_close_code != TWP_WS_CLOSE_NO_STATUS)
        set_error (self, g_error_new (TWP_RELAY_ERROR, TWP_RELAY_ERROR_PEER_CLOSED,
                                      "WebSocket closed by peer with status %u",
                                      self->peer_close_code));
      break;

    case TWP_WS_OPCODE_CONTINUATION:
    case TWP_WS_OPCODE_TEXT:
    case TWP_WS_OPCODE_BINARY:
    default:
      g_assert_not_reached ();
    }
}

/* Parses what was read from the WebSocket and writes the payload to TCP
 * with one writev; binary payload is written straight from the read buffer,
 * base64 is decoded into down_out. */
static void
down_process (TwpRelay *self)
{
  guint n_vectors = 0;
  gsize out_used = 0;
  gsize total = 0;
  /* Where the last complete message ends: on a protocol error, what came
   * before it is delivered and the broken message is not. */
  guint complete_vectors = 0;
  gsize complete_total = 0;

  /* Runs until the parser needs more input, even once every byte is
   * consumed: the end of a message is reported after its last data. */
  while (!self->peer_closed && self->failure_code == 0 && n_vectors < TWP_RELAY_IO_MAX_VECTORS)
    {
      TwpWsEvent event;
      gsize consumed;

      consumed = twp_ws_parser_feed (&self->parser, self->down_buf + self->down_pos,
                                     self->down_len - self->down_pos, &event);
      self->down_pos += consumed;

      if (event.type == TWP_WS_EVENT_NEED_MORE)
        break;

      switch (event.type)
        {
        case TWP_WS_EVENT_DATA:
          if (event.opcode == TWP_WS_OPCODE_TEXT && !self->options.base64)
            {
              defer_failure (self, TWP_WS_CLOSE_UNSUPPORTED_DATA,
                             "text frame without the base64 subprotocol");
              break;
            }
          if (event.opcode == TWP_WS_OPCODE_TEXT)
            {
              g_autoptr(GError) error = NULL;
              gsize decoded = 0;

              if (event.message_start)
                twp_base64_decoder_init (&self->decoder);
              if (!twp_base64_decoder_feed (&self->decoder, event.data, event.len,
                                            self->down_out + out_used, &decoded, &error))
                {
                  defer_failure (self, TWP_WS_CLOSE_INVALID_PAYLOAD, "message is not valid base64");
                  break;
                }
              if (decoded > 0)
                {
                  self->vectors[n_vectors].buffer = self->down_out + out_used;
                  self->vectors[n_vectors].size = decoded;
                  n_vectors++;
                  out_used += decoded;
                  total += decoded;
                }
            }
          else
            {
              self->vectors[n_vectors].buffer = event.data;
              self->vectors[n_vectors].size = event.len;
              n_vectors++;
              total += event.len;
            }
          break;

        case TWP_WS_EVENT_MESSAGE_END:
          if (event.opcode == TWP_WS_OPCODE_TEXT && self->options.base64)
            {
              /* finish also resets the decoder for the next message. */
              if (!twp_base64_decoder_finish (&self->decoder, NULL))
                {
                  defer_failure (self, TWP_WS_CLOSE_INVALID_PAYLOAD, "message is not valid base64");
                  break;
                }
            }
          else if (event.opcode == TWP_WS_OPCODE_TEXT)
            {
              defer_failure (self, TWP_WS_CLOSE_UNSUPPORTED_DATA,
                             "text frame without the base64 subprotocol");
              break;
            }
          if (self->failure_code == 0)
            {
              complete_vectors = n_vectors;
              complete_total = total;
            }
          break;

        case TWP_WS_EVENT_CONTROL:
          handle_control (self, &event);
          break;

        case TWP_WS_EVENT_ERROR:
          defer_failure (self, event.close_code, event.reason);
          break;

        case TWP_WS_EVENT_NEED_MORE:
        default:
          g_assert_not_reached ();
        }
    }

  if (self->failure_code != 0)
    {
      n_vectors = complete_vectors;
      total = complete_total;
    }
  if (total > 0)
    {
      self->bytes_from_ws += total;
      self->last_data_at = g_get_monotonic_time ();
    }

  if (n_vectors > 0)
    {
      self->down_writing = TRUE;
      twp_relay_io_writev (&self->tcp_end, self->vectors, n_vectors, tcp_write_done);
      return;
    }

  after_tcp_write (self);
}

static void
down_read_done (gpointer  user_data,
                gssize    n,
                GError   *error)
{
  TwpRelay *self = user_data;

  self->down_reading = FALSE;
  if (self->finished || self->down_stopped)
    return;
  if (self->draining)
    {
      if (n > 0)
        down_read_next (self);
      else
        {
          self->ws_eof = TRUE;
          self->down_stopped = TRUE;
          check_done (self);
        }
      return;
    }
  if (n <= 0)
    {
      /* The connection under the WebSocket ended without a close frame:
       * deliver EOF to TCP and report the abnormal closure (1006). */
      self->ws_eof = TRUE;
      self->down_stopped = TRUE;
      self->up_stopped = TRUE;
      if (n < 0)
        set_error (self, g_error_copy (error));
      else if (!self->peer_closed)
        set_error (self, g_error_new_literal (TWP_RELAY_ERROR, TWP_RELAY_ERROR_ABNORMAL,
                                              "WebSocket connection closed without a close frame"));
      check_done (self);
      return;
    }

  self->last_ws_read_at = g_get_monotonic_time ();
  self->down_len = n;
  self->down_pos = 0;
  down_process (self);
}

static void
down_read_next (TwpRelay *self)
{
  if (self->down_stopped || self->peer_closed || self->finished)
    return;
  self->down_len = 0;
  self->down_pos = 0;
  self->down_reading = TRUE;
  twp_relay_io_read (&self->ws_end, self->down_buf, self->down_buf_size, down_read_done);
}

/* ---- timers and entry points ------------------------------------------- */

/* Gives the kernel the whole pages inside @buf back: the allocation stays
 * (its next use faults in zeroed pages), its resident memory goes. */
static void
release_pages (guint8 *buf,
               gsize   size)
{
  static guintptr page;
  guintptr start;
  guintptr end;

  if (buf == NULL)
    return;
  if (page == 0)
    page = sysconf (_SC_PAGESIZE);
  start = ((guintptr) buf + page - 1) & ~(page - 1);
  end = ((guintptr) buf + size) & ~(page - 1);
  if (end > start)
    madvise ((void *) start, end - start, MADV_DONTNEED);
}

/* TRUE when no buffer holds data: nothing read and not yet handled, no
 * frame or slice waiting to be written, no partial frame kept. */
static gboolean
buffers_unused (TwpRelay *self)
{
  /* A GIO read may be under way into a buffer unseen here. */
  if (twp_relay_io_uses_gio (&self->tcp_end) || twp_relay_io_uses_gio (&self->ws_end))
    return FALSE;
  if (twp_relay_io_has_undelivered_read (&self->tcp_end) ||
      twp_relay_io_has_undelivered_read (&self->ws_end))
    return FALSE;
  return self->up_frame == NULL && !self->down_writing && self->down_pos >= self->down_len;
}

/* After a burst, a tunnel keeps every page of its buffers that the burst
 * touched (64 KiB echoed: most of them) for as long as it lives; ten
 * thousand quiet tunnels need none of them. */
static void
release_idle_buffers (TwpRelay *self,
                      gint64    now)
{
  if (self->released_for == self->last_data_at ||
      now - self->last_data_at < (gint64) RELEASE_IDLE_SECONDS * G_USEC_PER_SEC ||
      !buffers_unused (self))
    return;
  release_pages (self->up_buf, self->up_buf_size);
  release_pages (self->up_raw, UP_RAW_BASE64);
  release_pages (self->down_buf, self->down_buf_size);
  release_pages (self->down_out, self->down_out_size);
  self->released_for = self->last_data_at;
}

static void
relay_tick (TwpRelay *self,
            gint64    now)
{
  gint64 stall = (gint64) self->options.stall_timeout_seconds * G_USEC_PER_SEC;

  if (self->finished)
    return;

  /* A reader that stopped for good (a zero window, a dead peer, or one
   * that holds slots on purpose) would keep the tunnel, its sockets and
   * its ORPort connection forever; backpressure alone never ends. */
  if (twp_relay_io_write_stalled (&self->ws_end, now, stall) ||
      twp_relay_io_write_stalled (&self->tcp_end, now, stall))
    {
      fail_io (self, g_error_new_literal (G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                                          "a write made no progress within the stall timeout"));
      return;
    }

  if (self->options.idle_timeout_seconds > 0 &&
      now - self->last_data_at >= (gint64) self->options.idle_timeout_seconds * G_USEC_PER_SEC)
    {
      set_error (self, g_error_new_literal (TWP_RELAY_ERROR, TWP_RELAY_ERROR_IDLE,
                                            "no data moved within the idle timeout"));
      self->down_stopped = TRUE;
      self->peer_closed = TRUE;
      begin_close (self, TWP_WS_CLOSE_GOING_AWAY, "idle");
      check_done (self);
      return;
    }

  release_idle_buffers (self, now);

  /* A path that black-holes (a NAT or firewall that forgot us) leaves TCP
   * retrying for about 15 minutes: a ping with no byte at all read back
   * for as long again ends the tunnel. While tor's side blocks we do not
   * read, so that wait starts when tor last took data. */
  if (self->options.keepalive_seconds > 0 && self->ping_sent_at != 0 &&
      self->last_ws_read_at < self->ping_sent_at && !self->tcp_end.write_pending &&
      now - MAX (self->ping_sent_at, self->tcp_end.write_progress_at) >=
        (gint64) self->options.keepalive_seconds * G_USEC_PER_SEC)
    {
      fail_io (self, g_error_new (TWP_RELAY_ERROR, TWP_RELAY_ERROR_ABNORMAL,
                                  "no answer to a keepalive ping within %u s",
                                  self->options.keepalive_seconds));
      return;
    }

  /* Keepalive: middleboxes drop connections idle for 60-100 s. */
  if (self->options.keepalive_seconds > 0 && !self->close_sent && !self->close_pending &&
      now - self->last_ws_write_at >= (gint64) self->options.keepalive_seconds * G_USEC_PER_SEC)
    {
      self->ping_pending = TRUE;
      ws_writer_kick (self);
    }
}

static gboolean cancelled_idle_cb (gpointer user_data);

static void
external_cancelled_cb (GCancellable *cancellable,
                       gpointer      user_data)
{
  TwpRelay *self = user_data;
  GSource *source;

  /* May run in the thread that cancelled: only forward, and tear down in
   * our context. The source is made now, not kept per relay waiting on our
   * cancellable: GLib's main loop walks every attached source on each
   * wakeup, so one per open tunnel made each event cost O(tunnels). */
  g_cancellable_cancel (self->cancellable);
  source = g_idle_source_new ();
  g_source_set_static_name (source, "[twp] relay cancelled");
  g_source_set_callback (source, cancelled_idle_cb, g_object_ref (self), g_object_unref);
  g_source_attach (source, self->context);
  g_source_unref (source);
}

static void
twp_relay_cancelled (TwpRelay *self)
{
  if (self->finished)
    return;
  set_error (self, g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED, "Relay cancelled"));
  finish (self);
}

static gboolean
cancelled_idle_cb (gpointer user_data)
{
  twp_relay_cancelled (TWP_RELAY (user_data));
  return G_SOURCE_REMOVE;
}

void
twp_relay_run_async (TwpRelay            *self,
                     GCancellable        *cancellable,
                     GAsyncReadyCallback  callback,
                     gpointer             user_data)
{
  g_return_if_fail (TWP_IS_RELAY (self));
  g_return_if_fail (self->task == NULL && !self->finished);

  self->task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (self->task, twp_relay_run_async);
  g_task_set_name (self->task, "[twp] relay");
  g_task_set_check_cancellable (self->task, FALSE);

  allocate_buffers (self);
  twp_relay_io_start (&self->tcp_end);
  twp_relay_io_start (&self->ws_end);
  self->last_data_at = self->last_ws_write_at = g_get_monotonic_time ();

  if (cancellable != NULL)
    {
      self->context = g_main_context_ref_thread_default ();
      self->external_cancellable = g_object_ref (cancellable);
      self->external_cancelled_id = g_cancellable_connect (cancellable, G_CALLBACK (external_cancelled_cb),
                                                           self, NULL);
    }

  /* Every relay ticks: the stall check applies to all of them. */
  start_ticking (self);

  if (self->ws_leftover != NULL)
    {
      gsize size;
      const guint8 *data = g_bytes_get_data (self->ws_leftover, &size);

      memcpy (self->down_buf, data, size);
      self->down_len = size;
      self->down_pos = 0;
      g_clear_pointer (&self->ws_leftover, g_bytes_unref);
      down_process (self);
    }
  else
    {
      down_read_next (self);
    }

  if (!self->finished && !self->up_stopped)
    up_read_next (self);
}

gboolean
twp_relay_run_finish (TwpRelay      *self,
                      GAsyncResult  *result,
                      GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == twp_relay_run_async, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

guint64
twp_relay_get_bytes_to_ws (TwpRelay *self)
{
  g_return_val_if_fail (TWP_IS_RELAY (self), 0);
  return self->bytes_to_ws;
}

guint64
twp_relay_get_bytes_from_ws (TwpRelay *self)
{
  g_return_val_if_fail (TWP_IS_RELAY (self), 0);
  return self->bytes_from_ws;
}

gint64
twp_relay_get_rtt_us (TwpRelay *self)
{
  g_return_val_if_fail (TWP_IS_RELAY (self), -1);
  return self->rtt_us;
}

guint
twp_relay_get_peer_close_code (TwpRelay *self)
{
  g_return_val_if_fail (TWP_IS_RELAY (self), 0);
  return self->peer_close_code;
}

guint
twp_relay_get_close_code (TwpRelay *self)
{
  g_return_val_if_fail (TWP_IS_RELAY (self), 0);
  return self->close_pending || self->close_sent ? self->close_code : 0;
}

TwpRelayEnd
twp_relay_get_end (TwpRelay *self)
{
  g_return_val_if_fail (TWP_IS_RELAY (self), TWP_RELAY_END_NONE);

  return self->end;
}
