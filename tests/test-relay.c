/* SPDX-License-Identifier: BSD-3-Clause */
/* TwpRelay over loopback TCP. The test plays both neighbours of a tunnel:
 * tor on the TCP end (a plain socket), and the WebSocket peer on the other
 * (a raw socket that writes hand-built frames, malformed ones included,
 * and checks every frame the relay sends). Every case runs with the
 * WebSocket end on the reactor path (a plain GSocketConnection) and on the
 * GIO path (a wrapper stream standing in for TLS), and in both roles where
 * masking matters. Every wait has a deadline and fails loudly. */
#define G_LOG_DOMAIN "twp-test-relay"

#include "config.h"

#include <gio/gio.h>
#include <string.h>
#include <sys/socket.h>

#include "twp-base64.h"
#include "twp-relay.h"
#include "twp-ws-frame.h"

/* Bytes each way in the bulk cases. */
#define BULK_SIZE (8 * 1024 * 1024)
/* Bytes the WebSocket peer pushes in the backpressure case. */
#define PUSH_SIZE (4 * 1024 * 1024)
/* SO_SNDBUF/SO_RCVBUF of every socket in the backpressure cases, so that
 * "the reader stopped" shows within a few hundred KiB. */
#define SMALL_SOCKET_BUFFER 65536
/* What may pass a reader that stopped: socket buffers and one relay read. */
#define BLOCKED_BOUND (2 * 1024 * 1024)
#define READ_CHUNK 65536
#define SEND_CHUNK (256 * 1024)

/* ---- the GIO path ------------------------------------------------------ */

/* Any GIOStream that is not a plain socket connection takes the GIO path.
 * Like a TLS connection, closing it closes the connection under it, so
 * that the peer sees the end as it would in real use. */
#define TEST_TYPE_WRAP_STREAM (test_wrap_stream_get_type ())
G_DECLARE_FINAL_TYPE (TestWrapStream, test_wrap_stream, TEST, WRAP_STREAM, GIOStream)

struct _TestWrapStream
{
  GIOStream parent_instance;

  /* owned */
  GIOStream *base;
};

G_DEFINE_FINAL_TYPE (TestWrapStream, test_wrap_stream, G_TYPE_IO_STREAM)

static GInputStream *
test_wrap_stream_get_input_stream (GIOStream *stream)
{
  return g_io_stream_get_input_stream (TEST_WRAP_STREAM (stream)->base);
}

static GOutputStream *
test_wrap_stream_get_output_stream (GIOStream *stream)
{
  return g_io_stream_get_output_stream (TEST_WRAP_STREAM (stream)->base);
}

static gboolean
test_wrap_stream_close_fn (GIOStream     *stream,
                           GCancellable  *cancellable,
                           GError       **error)
{
  return g_io_stream_close (TEST_WRAP_STREAM (stream)->base, cancellable, error);
}

static void
base_closed_cb (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  GError *error = NULL;

  if (g_io_stream_close_finish (G_IO_STREAM (source), result, &error))
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}

/* Not the default (which runs close_fn in a thread): closing a socket
 * connection never blocks. */
static void
test_wrap_stream_close_async (GIOStream           *stream,
                              int                  io_priority,
                              GCancellable        *cancellable,
                              GAsyncReadyCallback  callback,
                              gpointer             user_data)
{
  GTask *task = g_task_new (stream, cancellable, callback, user_data);

  g_io_stream_close_async (TEST_WRAP_STREAM (stream)->base, io_priority, cancellable,
                           base_closed_cb, task);
}

static gboolean
test_wrap_stream_close_finish (GIOStream     *stream,
                               GAsyncResult  *result,
                               GError       **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}

static void
test_wrap_stream_dispose (GObject *object)
{
  TestWrapStream *self = TEST_WRAP_STREAM (object);

  /* GIOStream's dispose closes an open stream, which needs the base. */
  G_OBJECT_CLASS (test_wrap_stream_parent_class)->dispose (object);
  g_clear_object (&self->base);
}

static void
test_wrap_stream_class_init (TestWrapStreamClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GIOStreamClass *stream_class = G_IO_STREAM_CLASS (klass);

  object_class->dispose = test_wrap_stream_dispose;
  stream_class->get_input_stream = test_wrap_stream_get_input_stream;
  stream_class->get_output_stream = test_wrap_stream_get_output_stream;
  stream_class->close_fn = test_wrap_stream_close_fn;
  stream_class->close_async = test_wrap_stream_close_async;
  stream_class->close_finish = test_wrap_stream_close_finish;
}

static void
test_wrap_stream_init (TestWrapStream *self)
{
}

static GIOStream *
test_wrap_stream_new (GIOStream *base)
{
  TestWrapStream *self = g_object_new (TEST_TYPE_WRAP_STREAM, NULL);

  self->base = g_object_ref (base);
  return G_IO_STREAM (self);
}

/* ---- peers --------------------------------------------------------------- */

/* The test's end of one connection, driven with non-blocking calls. */
typedef struct {
  GSocketConnection *conn;   /* owned */
  GSocket *socket;           /* borrowed from conn */

  GByteArray *out;           /* queued for the relay; out_pos is sent */
  gsize out_pos;
  gboolean endless;          /* refill out forever (the stall case) */
  gboolean shut_when_sent;   /* half-close once out is sent */
  gboolean shut;
  gboolean write_blocked;    /* the last send would have blocked */
  gboolean ever_blocked;
  gboolean write_failed;
  guint64 written;
  gint64 last_write_at;

  gboolean reading;          /* FALSE: leave the relay's bytes in the socket */
  gboolean eof;              /* a read returned 0 or failed */
  gboolean reset;            /* a read failed (a reset destroys data in flight) */
  guint64 read;
  GByteArray *in;            /* received; the WebSocket peer consumes frames from in_pos */
  gsize in_pos;
} Peer;

typedef struct {
  char *name;
  gboolean gio;
  gboolean is_client;
  TwpRelayOptions options;

  GSocketConnection *relay_tcp;
  GSocketConnection *relay_ws_conn;
  GIOStream *relay_ws;       /* relay_ws_conn, or a wrapper of it (GIO path) */
  Peer tor;
  Peer ws;

  TwpRelay *relay;
  GCancellable *cancellable;
  gint64 started_at;
  gboolean done;
  gboolean ok;
  GError *error;
  gint64 done_at;

  /* What the WebSocket peer parsed from the relay. */
  TwpWsParser parser;
  TwpBase64Decoder decoder;
  GByteArray *ws_data;       /* payload of the data messages, decoded */
  guint n_messages;
  GPtrArray *pings;          /* GBytes payloads */
  GPtrArray *pongs;
  gboolean auto_pong;
  gboolean got_close;
  guint close_code;
  gsize ws_data_at_close;

  /* Targets of the waits below. */
  gsize want_tor_bytes;
  gsize want_ws_bytes;
  guint want_pongs;
} Tunnel;

typedef struct {
  char *path;
  gboolean gio;
  gboolean is_client;
  gboolean base64;
  int kind;
} Variant;

/* Every tunnel of the running case: each wait moves them all. */
static GPtrArray *tunnels;
static GSocketListener *listener;
static GSocketAddress *listen_address;
static GSocketClient *client;
static guint32 rng_state;

static void
fill_random (guint8 *buf,
             gsize   len)
{
  /* xorshift32: megabytes of test data, fast and reproducible with -seed */
  for (gsize i = 0; i < len; i += 4)
    {
      rng_state ^= rng_state << 13;
      rng_state ^= rng_state >> 17;
      rng_state ^= rng_state << 5;
      memcpy (buf + i, &rng_state, MIN (4, len - i));
    }
}

static GBytes *
random_bytes (gsize len)
{
  guint8 *buf = g_malloc (len);

  fill_random (buf, len);
  return g_bytes_new_take (buf, len);
}

static double
seconds_since (gint64 then)
{
  return (g_get_monotonic_time () - then) / (double) G_USEC_PER_SEC;
}

static void
assert_same_bytes (const char   *what,
                   const guint8 *got,
                   gsize         got_len,
                   const guint8 *want,
                   gsize         want_len)
{
  gsize i;

  if (got_len == want_len && memcmp (got, want, want_len) == 0)
    return;
  for (i = 0; i < MIN (got_len, want_len) && got[i] == want[i]; i++)
    ;
  g_error ("%s: got %" G_GSIZE_FORMAT " bytes, want %" G_GSIZE_FORMAT ", first difference at %" G_GSIZE_FORMAT,
           what, got_len, want_len, i);
}

/* ---- the WebSocket peer's frames ------------------------------------- */

static void
ws_queue_frame_full (Tunnel       *t,
                     TwpWsOpcode   opcode,
                     gboolean      fin,
                     const void   *payload,
                     gsize         len,
                     gboolean      masked)
{
  guint8 header[TWP_WS_MAX_HEADER_SIZE];
  guint8 key[4];
  gsize header_len;
  gsize start;

  fill_random (key, sizeof key);
  header_len = twp_ws_frame_write_header (header, opcode, fin, len, masked ? key : NULL);
  g_byte_array_append (t->ws.out, header, header_len);
  start = t->ws.out->len;
  if (len > 0)
    g_byte_array_append (t->ws.out, payload, len);
  if (masked)
    twp_ws_mask (t->ws.out->data + start, len, key, 0);
}

/* A well-behaved peer masks exactly when the relay is the server. */
static void
ws_queue_frame (Tunnel       *t,
                TwpWsOpcode   opcode,
                gboolean      fin,
                const void   *payload,
                gsize         len)
{
  ws_queue_frame_full (t, opcode, fin, payload, len, !t->is_client);
}

static void
ws_queue_close (Tunnel  *t,
                guint16  code)
{
  guint8 payload[2] = { code >> 8, code & 0xff };

  ws_queue_frame (t, TWP_WS_OPCODE_CLOSE, TRUE, payload, sizeof payload);
}

/* One data message in @n_fragments frames cut at random places; text
 * (base64) in base64 mode unless @binary. */
static void
ws_queue_message (Tunnel       *t,
                  const guint8 *data,
                  gsize         len,
                  guint         n_fragments,
                  gboolean      binary)
{
  g_autofree char *text = NULL;
  const guint8 *payload = data;
  gsize payload_len = len;
  TwpWsOpcode opcode = TWP_WS_OPCODE_BINARY;
  gsize pos = 0;

  if (t->options.base64 && !binary)
    {
      text = g_malloc (TWP_BASE64_ENCODED_SIZE (len) + 1);
      payload_len = twp_base64_encode (data, len, text);
      payload = (const guint8 *) text;
      opcode = TWP_WS_OPCODE_TEXT;
    }
  for (guint i = 0; i < n_fragments; i++)
    {
      gboolean last = i + 1 == n_fragments;
      gsize end = last ? payload_len : pos + g_test_rand_int_range (0, payload_len - pos + 1);

      ws_queue_frame (t, i == 0 ? opcode : TWP_WS_OPCODE_CONTINUATION, last, payload + pos, end - pos);
      pos = end;
    }
}

static void
ws_peer_event (Tunnel           *t,
               const TwpWsEvent *event)
{
  switch (event->type)
    {
    case TWP_WS_EVENT_DATA:
      if (event->opcode == TWP_WS_OPCODE_TEXT)
        {
          g_autoptr(GError) error = NULL;
          gsize old_len = t->ws_data->len;
          gsize decoded = 0;

          if (event->message_start)
            twp_base64_decoder_init (&t->decoder);
          g_byte_array_set_size (t->ws_data, old_len + TWP_BASE64_DECODED_MAX (event->len));
          if (!twp_base64_decoder_feed (&t->decoder, event->data, event->len,
                                        t->ws_data->data + old_len, &decoded, &error))
            g_error ("%s: the relay sent invalid base64: %s", t->name, error->message);
          g_byte_array_set_size (t->ws_data, old_len + decoded);
        }
      else
        {
          g_byte_array_append (t->ws_data, event->data, event->len);
        }
      break;

    case TWP_WS_EVENT_MESSAGE_END:
      if (event->opcode == TWP_WS_OPCODE_TEXT)
        {
          g_autoptr(GError) error = NULL;

          if (!twp_base64_decoder_finish (&t->decoder, &error))
            g_error ("%s: the relay sent a truncated base64 message: %s", t->name, error->message);
        }
      t->n_messages++;
      break;

    case TWP_WS_EVENT_CONTROL:
      if (event->opcode == TWP_WS_OPCODE_CLOSE)
        {
          t->got_close = TRUE;
          t->close_code = event->close_code;
          t->ws_data_at_close = t->ws_data->len;
        }
      else if (event->opcode == TWP_WS_OPCODE_PING)
        {
          g_ptr_array_add (t->pings, g_bytes_new (event->data, event->len));
          if (t->auto_pong)
            ws_queue_frame (t, TWP_WS_OPCODE_PONG, TRUE, event->data, event->len);
        }
      else
        {
          g_ptr_array_add (t->pongs, g_bytes_new (event->data, event->len));
        }
      break;

    case TWP_WS_EVENT_ERROR:
      g_error ("%s: the relay sent an invalid frame (%u): %s", t->name, event->close_code, event->reason);
      break;

    case TWP_WS_EVENT_NEED_MORE:
    default:
      g_assert_not_reached ();
    }
}

/* Checks each complete frame the relay sent, then hands it to the parser. */
static void
ws_peer_parse (Tunnel *t)
{
  Peer *peer = &t->ws;

  for (;;)
    {
      guint8 *frame = peer->in->data + peer->in_pos;
      gsize avail = peer->in->len - peer->in_pos;
      gsize header_len = 2;
      guint64 payload_len;
      guint opcode;
      gsize pos = 0;

      if (avail < 2)
        break;
      payload_len = frame[1] & 0x7f;
      if (payload_len == 126)
        header_len += 2;
      else if (payload_len == 127)
        header_len += 8;
      if (frame[1] & 0x80)
        header_len += 4;
      if (avail < header_len)
        break;
      if (payload_len == 126)
        payload_len = (frame[2] << 8) | frame[3];
      else if (payload_len == 127)
        {
          payload_len = 0;
          for (int i = 0; i < 8; i++)
            payload_len = (payload_len << 8) | frame[2 + i];
        }

      /* Nothing follows a close frame; every frame is final (the relay never
       * fragments), carries no RSV bits, and is masked iff it is the client. */
      opcode = frame[0] & 0x0f;
      if (t->got_close)
        g_error ("%s: the relay sent a frame (opcode %u) after its close frame", t->name, opcode);
      g_assert_cmphex (frame[0] & 0xf0, ==, 0x80);
      g_assert_cmpint (!!(frame[1] & 0x80), ==, !!t->is_client);
      if (opcode < 0x8)
        {
          g_assert_cmpuint (opcode, ==, t->options.base64 ? TWP_WS_OPCODE_TEXT : TWP_WS_OPCODE_BINARY);
          g_assert_cmpuint (payload_len, <=, TWP_RELAY_MESSAGE_PAYLOAD);
          g_assert_cmpuint (payload_len, >, 0);
        }
      else
        {
          g_assert_cmpuint (payload_len, <=, TWP_WS_MAX_CONTROL_PAYLOAD);
        }
      if (avail - header_len < payload_len)
        break;

      for (;;)
        {
          TwpWsEvent event;

          pos += twp_ws_parser_feed (&t->parser, frame + pos, header_len + payload_len - pos, &event);
          if (event.type == TWP_WS_EVENT_NEED_MORE)
            break;
          ws_peer_event (t, &event);
        }
      g_assert_cmpuint (pos, ==, header_len + payload_len);
      peer->in_pos += pos;
    }

  if (peer->in_pos == peer->in->len)
    {
      g_byte_array_set_size (peer->in, 0);
      peer->in_pos = 0;
    }
  else if (peer->in_pos > 1024 * 1024)
    {
      g_byte_array_remove_range (peer->in, 0, peer->in_pos);
      peer->in_pos = 0;
    }
}

/* ---- driving both peers ------------------------------------------------ */

static void
peer_init (Peer              *peer,
           GSocketConnection *conn)
{
  peer->conn = conn;
  peer->socket = g_socket_connection_get_socket (conn);
  g_socket_set_blocking (peer->socket, FALSE);
  peer->out = g_byte_array_new ();
  peer->in = g_byte_array_new ();
  peer->reading = TRUE;
}

static void
peer_clear (Peer *peer)
{
  g_clear_object (&peer->conn);
  g_clear_pointer (&peer->out, g_byte_array_unref);
  g_clear_pointer (&peer->in, g_byte_array_unref);
}

static gboolean
peer_send (Peer *peer)
{
  gboolean progress = FALSE;

  for (;;)
    {
      g_autoptr(GError) error = NULL;
      gssize n;

      if (peer->endless && peer->out->len - peer->out_pos < SEND_CHUNK)
        {
          gsize old_len = peer->out->len;

          g_byte_array_set_size (peer->out, old_len + SEND_CHUNK);
          fill_random (peer->out->data + old_len, SEND_CHUNK);
        }
      if (peer->out_pos == peer->out->len || peer->write_failed)
        break;
      n = g_socket_send (peer->socket, (const char *) peer->out->data + peer->out_pos,
                         MIN (peer->out->len - peer->out_pos, SEND_CHUNK), NULL, &error);
      if (n < 0)
        {
          if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
            peer->write_blocked = peer->ever_blocked = TRUE;
          else
            peer->write_failed = TRUE;
          break;
        }
      peer->write_blocked = FALSE;
      peer->out_pos += n;
      peer->written += n;
      peer->last_write_at = g_get_monotonic_time ();
      progress = TRUE;
    }

  if (peer->out_pos == peer->out->len)
    {
      g_byte_array_set_size (peer->out, 0);
      peer->out_pos = 0;
      if (peer->shut_when_sent && !peer->shut)
        {
          g_autoptr(GError) error = NULL;

          g_socket_shutdown (peer->socket, FALSE, TRUE, &error);
          g_assert_no_error (error);
          peer->shut = TRUE;
          progress = TRUE;
        }
    }
  else if (peer->out_pos > 4 * 1024 * 1024)
    {
      g_byte_array_remove_range (peer->out, 0, peer->out_pos);
      peer->out_pos = 0;
    }
  return progress;
}

static gboolean
peer_receive (Tunnel   *t,
              Peer     *peer,
              gboolean  is_ws)
{
  static guint8 buf[READ_CHUNK];
  gboolean progress = FALSE;

  while (peer->reading && !peer->eof)
    {
      g_autoptr(GError) error = NULL;
      gssize n = g_socket_receive (peer->socket, (char *) buf, sizeof buf, NULL, &error);

      if (n < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        break;
      progress = TRUE;
      if (n <= 0)
        {
          peer->eof = TRUE;
          peer->reset = n < 0;
          break;
        }
      peer->read += n;
      g_byte_array_append (peer->in, buf, n);
      if (is_ws)
        ws_peer_parse (t);
    }
  return progress;
}

static gboolean
pump (void)
{
  gboolean progress = FALSE;

  for (guint i = 0; i < tunnels->len; i++)
    {
      Tunnel *t = g_ptr_array_index (tunnels, i);

      progress |= peer_send (&t->tor);
      progress |= peer_receive (t, &t->tor, FALSE);
      progress |= peer_send (&t->ws);
      progress |= peer_receive (t, &t->ws, TRUE);
    }
  return progress;
}

static gboolean
wake_cb (gpointer user_data)
{
  return G_SOURCE_REMOVE;
}

static void
destroy_source (gpointer data)
{
  GSource *source = data;

  if (!g_source_is_destroyed (source))
    g_source_destroy (source);
  g_source_unref (source);
}

static void
add_wake_source (GPtrArray *sources,
                 Peer      *peer)
{
  GIOCondition condition = 0;
  GSource *source;

  if (peer->reading && !peer->eof)
    condition |= G_IO_IN;
  if (peer->out_pos < peer->out->len && !peer->write_failed)
    condition |= G_IO_OUT;
  if (condition == 0)
    return;
  source = g_socket_create_source (peer->socket, condition, NULL);
  g_source_set_static_name (source, "[twp-test] peer");
  g_source_set_callback (source, wake_cb, NULL, NULL);
  g_source_attach (source, NULL);
  g_ptr_array_add (sources, source);
}

/* One turn: run what the relay has ready, move the peers' bytes, and when
 * nothing moved sleep until either side can (10 ms at most, so that the
 * waits see their deadlines). */
static void
turn (void)
{
  g_autoptr(GPtrArray) sources = NULL;
  GSource *timeout;

  for (int i = 0; i < 64 && g_main_context_iteration (NULL, FALSE); i++)
    ;
  if (pump ())
    return;

  sources = g_ptr_array_new_with_free_func (destroy_source);
  for (guint i = 0; i < tunnels->len; i++)
    {
      Tunnel *t = g_ptr_array_index (tunnels, i);

      add_wake_source (sources, &t->tor);
      add_wake_source (sources, &t->ws);
    }
  timeout = g_timeout_source_new (10);
  g_source_set_static_name (timeout, "[twp-test] turn");
  g_source_set_callback (timeout, wake_cb, NULL, NULL);
  g_source_attach (timeout, NULL);
  g_ptr_array_add (sources, timeout);
  /* Attaching the sources woke the context: the first iteration may
   * return having dispatched nothing. */
  while (!g_main_context_iteration (NULL, TRUE))
    ;
}

typedef gboolean (*TunnelCondition) (Tunnel *t);

/* Turns until @cond holds for every tunnel; fails after @seconds. */
static void
wait_until (TunnelCondition  cond,
            double           seconds,
            const char      *what)
{
  gint64 start = g_get_monotonic_time ();

  for (;;)
    {
      Tunnel *waiting = NULL;

      for (guint i = 0; i < tunnels->len && waiting == NULL; i++)
        if (!cond (g_ptr_array_index (tunnels, i)))
          waiting = g_ptr_array_index (tunnels, i);
      if (waiting == NULL)
        return;
      if (seconds_since (start) > seconds)
        g_error ("%s: timed out after %.1f s waiting for %s (done %d, tor wrote %" G_GUINT64_FORMAT
                 " read %" G_GUINT64_FORMAT " eof %d; ws wrote %" G_GUINT64_FORMAT " read %" G_GUINT64_FORMAT
                 " eof %d, got %u bytes, close %u)",
                 waiting->name, seconds, what, waiting->done, waiting->tor.written, waiting->tor.read,
                 waiting->tor.eof, waiting->ws.written, waiting->ws.read, waiting->ws.eof,
                 waiting->ws_data->len, waiting->close_code);
      turn ();
    }
}

/* Keeps everything moving for @seconds. */
static void
run_for (double seconds)
{
  gint64 start = g_get_monotonic_time ();

  while (seconds_since (start) < seconds)
    turn ();
}

static gboolean
is_done (Tunnel *t)
{
  return t->done;
}

static gboolean
is_done_and_both_eof (Tunnel *t)
{
  return t->done && t->tor.eof && t->ws.eof;
}

static gboolean
got_close (Tunnel *t)
{
  return t->got_close;
}

static gboolean
tor_eof (Tunnel *t)
{
  return t->tor.eof;
}

static gboolean
both_eof (Tunnel *t)
{
  return t->tor.eof && t->ws.eof;
}

static gboolean
tor_has_bytes (Tunnel *t)
{
  return t->tor.in->len >= t->want_tor_bytes;
}

static gboolean
ws_has_bytes (Tunnel *t)
{
  return t->ws_data->len >= t->want_ws_bytes;
}

static gboolean
ws_sent_all (Tunnel *t)
{
  return t->ws.out_pos == t->ws.out->len;
}

static gboolean
has_pongs (Tunnel *t)
{
  return t->pongs->len >= t->want_pongs;
}

static gboolean
was_pinged (Tunnel *t)
{
  return t->pings->len > 0;
}

static gboolean
has_rtt (Tunnel *t)
{
  return twp_relay_get_rtt_us (t->relay) >= 0;
}

static gboolean
ws_write_blocked (Tunnel *t)
{
  return t->ws.write_blocked;
}

static gboolean
streams_closed (Tunnel *t)
{
  return g_io_stream_is_closed (G_IO_STREAM (t->relay_tcp)) && g_io_stream_is_closed (t->relay_ws) &&
         g_io_stream_is_closed (G_IO_STREAM (t->relay_ws_conn));
}

/* ---- tunnels --------------------------------------------------------- */

static void
connect_pair (GSocketConnection **accepted,
              GSocketConnection **connected)
{
  g_autoptr(GError) error = NULL;

  /* A loopback connect completes in the kernel backlog: accept after it. */
  *connected = g_socket_client_connect (client, G_SOCKET_CONNECTABLE (listen_address), NULL, &error);
  g_assert_no_error (error);
  *accepted = g_socket_listener_accept (listener, NULL, NULL, &error);
  g_assert_no_error (error);
}

static void
set_small_buffers (GSocketConnection *conn)
{
  GSocket *socket = g_socket_connection_get_socket (conn);
  g_autoptr(GError) error = NULL;

  g_socket_set_option (socket, SOL_SOCKET, SO_SNDBUF, SMALL_SOCKET_BUFFER, &error);
  g_assert_no_error (error);
  g_socket_set_option (socket, SOL_SOCKET, SO_RCVBUF, SMALL_SOCKET_BUFFER, &error);
  g_assert_no_error (error);
}

static Tunnel *
tunnel_new (gboolean gio,
            gboolean is_client,
            gboolean base64)
{
  Tunnel *t = g_new0 (Tunnel, 1);
  GSocketConnection *tor_conn;
  GSocketConnection *ws_conn;

  t->name = g_strdup_printf ("%s/%s%s", gio ? "gio" : "reactor", is_client ? "client" : "server",
                             base64 ? "/base64" : "");
  t->gio = gio;
  t->is_client = is_client;
  t->options.is_client = is_client;
  t->options.base64 = base64;

  /* tor connects to the relay's SOCKS port (client) or the relay to the
   * ORPort (server): which side accepted does not matter to the relay. */
  connect_pair (&t->relay_tcp, &tor_conn);
  peer_init (&t->tor, tor_conn);
  if (is_client)
    connect_pair (&ws_conn, &t->relay_ws_conn);
  else
    connect_pair (&t->relay_ws_conn, &ws_conn);
  peer_init (&t->ws, ws_conn);
  t->relay_ws = gio ? test_wrap_stream_new (G_IO_STREAM (t->relay_ws_conn))
                    : g_object_ref (G_IO_STREAM (t->relay_ws_conn));

  /* The peer's parser checks masking the other way round from the relay's. */
  twp_ws_parser_init (&t->parser, is_client, 1024 * 1024);
  twp_base64_decoder_init (&t->decoder);
  t->ws_data = g_byte_array_new ();
  t->pings = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  t->pongs = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  t->cancellable = g_cancellable_new ();

  g_ptr_array_add (tunnels, t);
  return t;
}

static void
tunnel_small_buffers (Tunnel *t)
{
  set_small_buffers (t->relay_tcp);
  set_small_buffers (t->relay_ws_conn);
  set_small_buffers (t->tor.conn);
  set_small_buffers (t->ws.conn);
}

static void
run_cb (GObject      *source,
        GAsyncResult *result,
        gpointer      user_data)
{
  Tunnel *t = user_data;

  g_assert_false (t->done);
  t->ok = twp_relay_run_finish (TWP_RELAY (source), result, &t->error);
  g_assert_true (t->ok == (t->error == NULL));
  t->done = TRUE;
  t->done_at = g_get_monotonic_time ();
}

static void
tunnel_start (Tunnel *t,
              GBytes *tcp_leftover,
              GBytes *ws_leftover)
{
  t->relay = twp_relay_new (G_IO_STREAM (t->relay_tcp), t->relay_ws, tcp_leftover, ws_leftover,
                            &t->options);
  g_assert_nonnull (t->relay);
  t->started_at = g_get_monotonic_time ();
  twp_relay_run_async (t->relay, t->cancellable, run_cb, t);
}

/* Every case ends every relay; its streams close right after. */
static void
tunnels_free (void)
{
  wait_until (is_done, 10, "the relay to finish");
  wait_until (streams_closed, 5, "the relay to close its streams");
  while (tunnels->len > 0)
    {
      Tunnel *t = g_ptr_array_steal_index (tunnels, tunnels->len - 1);

      g_clear_object (&t->relay);
      g_clear_object (&t->cancellable);
      g_clear_error (&t->error);
      g_clear_object (&t->relay_ws);
      g_clear_object (&t->relay_ws_conn);
      g_clear_object (&t->relay_tcp);
      peer_clear (&t->tor);
      peer_clear (&t->ws);
      g_byte_array_unref (t->ws_data);
      g_ptr_array_unref (t->pings);
      g_ptr_array_unref (t->pongs);
      g_free (t->name);
      g_free (t);
    }
  /* Let the closes and the relays' last sources run before the next case. */
  for (int i = 0; i < 100 && g_main_context_iteration (NULL, FALSE); i++)
    ;
}

static void
assert_counters (Tunnel *t,
                 guint64 to_ws,
                 guint64 from_ws)
{
  g_assert_cmpuint (twp_relay_get_bytes_to_ws (t->relay), ==, to_ws);
  g_assert_cmpuint (twp_relay_get_bytes_from_ws (t->relay), ==, from_ws);
}

static void
assert_pong (Tunnel       *t,
             guint         index,
             const guint8 *payload,
             gsize         len)
{
  gsize got_len;
  const guint8 *got = g_bytes_get_data (g_ptr_array_index (t->pongs, index), &got_len);

  g_assert_cmpmem (got, got_len, payload, len);
}

/* ---- 1. bulk ------------------------------------------------------------ */

/* Both directions at once, byte-exact; the peer's messages vary from empty
 * to 16 KiB, some fragmented, some binary in base64 mode, with pings in
 * between; every frame the relay sends is checked in ws_peer_parse(). */
static void
test_bulk (gconstpointer data)
{
  const Variant *v = data;
  Tunnel *t = tunnel_new (v->gio, v->is_client, v->base64);
  g_autoptr(GBytes) up = random_bytes (BULK_SIZE);
  g_autoptr(GBytes) down = random_bytes (BULK_SIZE);
  const guint8 *down_data = g_bytes_get_data (down, NULL);
  gsize pos = 0;
  guint n_pings = 0;

  g_byte_array_append (t->tor.out, g_bytes_get_data (up, NULL), BULK_SIZE);
  t->tor.shut_when_sent = TRUE;
  for (guint i = 0; pos < BULK_SIZE; i++)
    {
      gsize len = g_test_rand_int_range (0, 4) == 0 ? g_test_rand_int_range (0, 65)
                                                    : g_test_rand_int_range (1, 16385);
      guint fragments = g_test_rand_int_range (0, 8) == 0 ? g_test_rand_int_range (2, 5) : 1;

      len = MIN (len, BULK_SIZE - pos);
      ws_queue_message (t, down_data + pos, len, fragments, v->base64 && i % 16 == 5);
      pos += len;
      if (i % 97 == 0)
        {
          guint8 payload[4];

          memcpy (payload, &i, sizeof payload);
          ws_queue_frame (t, TWP_WS_OPCODE_PING, TRUE, payload, sizeof payload);
          n_pings++;
        }
    }

  tunnel_start (t, NULL, NULL);
  wait_until (got_close, 30, "the relay's close frame after tor's EOF");
  g_assert_cmpuint (t->close_code, ==, TWP_WS_CLOSE_NORMAL);
  g_assert_cmpuint (t->ws_data_at_close, ==, BULK_SIZE);
  assert_same_bytes ("tcp -> ws", t->ws_data->data, t->ws_data->len, g_bytes_get_data (up, NULL), BULK_SIZE);
  /* One frame per message (checked per frame), each at most 16 KiB on the
   * wire: 12,288 raw bytes in base64. */
  g_assert_cmpuint (t->n_messages, >=, BULK_SIZE / (v->base64 ? 12288 : TWP_RELAY_MESSAGE_PAYLOAD));

  /* The peer closes after its last data frame. */
  wait_until (ws_sent_all, 30, "the peer's data to be sent");
  ws_queue_close (t, TWP_WS_CLOSE_NORMAL);
  wait_until (is_done_and_both_eof, 10, "the relay to finish after the peer's close");
  g_assert_no_error (t->error);
  g_assert_true (t->ok);
  assert_same_bytes ("ws -> tcp", t->tor.in->data, t->tor.in->len, down_data, BULK_SIZE);
  assert_counters (t, BULK_SIZE, BULK_SIZE);
  g_assert_cmpuint (twp_relay_get_peer_close_code (t->relay), ==, TWP_WS_CLOSE_NORMAL);
  g_assert_cmpuint (twp_relay_get_close_code (t->relay), ==, TWP_WS_CLOSE_NORMAL);
  g_assert_cmpuint (t->pings->len, ==, 0);

  /* Pongs answer the latest ping only and none follows our close frame,
   * so fewer may come back; each must echo one of ours. */
  g_assert_cmpuint (t->pongs->len, >, 0);
  g_assert_cmpuint (t->pongs->len, <=, n_pings);
  for (guint i = 0; i < t->pongs->len; i++)
    {
      gsize len;
      const guint8 *payload = g_bytes_get_data (g_ptr_array_index (t->pongs, i), &len);
      guint which;

      g_assert_cmpuint (len, ==, sizeof which);
      memcpy (&which, payload, sizeof which);
      g_assert_cmpuint (which % 97, ==, 0);
    }
  tunnels_free ();
}

/* ---- 2. half-close order ------------------------------------------------ */

/* tor's EOF after its last byte: all data frames, then close 1000; the
 * relay ends cleanly once the peer answers. */
static void
test_tcp_eof_first (gconstpointer data)
{
  const Variant *v = data;
  Tunnel *t = tunnel_new (v->gio, v->is_client, FALSE);
  g_autoptr(GBytes) up = random_bytes (100000);

  g_byte_array_append (t->tor.out, g_bytes_get_data (up, NULL), g_bytes_get_size (up));
  t->tor.shut_when_sent = TRUE;
  tunnel_start (t, NULL, NULL);

  wait_until (got_close, 5, "the relay's close frame");
  g_assert_cmpuint (t->close_code, ==, TWP_WS_CLOSE_NORMAL);
  g_assert_cmpuint (t->ws_data_at_close, ==, g_bytes_get_size (up));
  assert_same_bytes ("tcp -> ws", t->ws_data->data, t->ws_data->len, g_bytes_get_data (up, NULL),
                     g_bytes_get_size (up));
  g_assert_cmpuint (twp_relay_get_close_code (t->relay), ==, TWP_WS_CLOSE_NORMAL);

  /* The handshake is half done: the relay waits for the peer's close. */
  run_for (0.1);
  g_assert_false (t->done);
  g_assert_false (t->tor.eof);

  ws_queue_close (t, TWP_WS_CLOSE_NORMAL);
  wait_until (is_done_and_both_eof, 5, "the relay to finish after the peer's close");
  g_assert_no_error (t->error);
  g_assert_true (t->ok);
  g_assert_cmpuint (t->tor.in->len, ==, 0);
  g_assert_false (t->tor.reset);
  g_assert_false (t->ws.reset);
  assert_counters (t, g_bytes_get_size (up), 0);
  g_assert_cmpuint (twp_relay_get_peer_close_code (t->relay), ==, TWP_WS_CLOSE_NORMAL);
  tunnels_free ();
}

/* The peer's data then its close 1000: tor reads all of it, then EOF; the
 * relay answers the close and ends cleanly. */
static void
test_ws_close_first (gconstpointer data)
{
  const Variant *v = data;
  Tunnel *t = tunnel_new (v->gio, v->is_client, FALSE);
  g_autoptr(GBytes) down = random_bytes (100000);
  const guint8 *down_data = g_bytes_get_data (down, NULL);

  for (gsize pos = 0; pos < 100000; pos += 10000)
    ws_queue_message (t, down_data + pos, 10000, 1 + pos / 10000 % 3, FALSE);
  ws_queue_close (t, TWP_WS_CLOSE_NORMAL);
  tunnel_start (t, NULL, NULL);

  wait_until (is_done_and_both_eof, 5, "the relay to finish after the peer's close");
  g_assert_no_error (t->error);
  g_assert_true (t->ok);
  g_assert_false (t->tor.reset);
  assert_same_bytes ("ws -> tcp", t->tor.in->data, t->tor.in->len, down_data, 100000);
  g_assert_true (t->got_close);
  g_assert_cmpuint (t->close_code, ==, TWP_WS_CLOSE_NORMAL);
  g_assert_cmpuint (t->ws_data->len, ==, 0);
  assert_counters (t, 0, 100000);
  g_assert_cmpuint (twp_relay_get_peer_close_code (t->relay), ==, TWP_WS_CLOSE_NORMAL);
  tunnels_free ();
}

/* ---- 3. leftovers --------------------------------------------------------- */

/* Bytes read during the handshakes go first, in order: a TCP leftover
 * larger than one message, and a WebSocket leftover larger than one read
 * that ends inside a frame header. */
static void
test_leftovers (gconstpointer data)
{
  const Variant *v = data;
  Tunnel *t = tunnel_new (v->gio, v->is_client, v->base64);
  g_autoptr(GBytes) tcp_left = random_bytes (40000);
  g_autoptr(GBytes) tcp_more = random_bytes (30000);
  g_autoptr(GBytes) down = random_bytes (45000);
  g_autoptr(GBytes) ws_left = NULL;
  g_autoptr(GByteArray) up = g_byte_array_new ();
  const guint8 *down_data = g_bytes_get_data (down, NULL);
  gsize split;

  ws_queue_message (t, down_data, 20000, 3, FALSE);
  ws_queue_message (t, down_data + 20000, 20000, 1, FALSE);
  /* The leftover ends one byte into the third message's header. */
  split = t->ws.out->len + 1;
  ws_queue_message (t, down_data + 40000, 5000, 2, FALSE);
  ws_left = g_bytes_new (t->ws.out->data, split);
  g_assert_cmpuint (split, >, 32 * 1024);
  g_byte_array_remove_range (t->ws.out, 0, split);

  g_byte_array_append (t->tor.out, g_bytes_get_data (tcp_more, NULL), 30000);
  t->tor.shut_when_sent = TRUE;
  g_byte_array_append (up, g_bytes_get_data (tcp_left, NULL), 40000);
  g_byte_array_append (up, g_bytes_get_data (tcp_more, NULL), 30000);

  tunnel_start (t, tcp_left, ws_left);
  t->want_tor_bytes = 45000;
  wait_until (tor_has_bytes, 5, "the WebSocket leftover and the rest");
  wait_until (got_close, 5, "the TCP leftover, the rest and the close");
  assert_same_bytes ("ws -> tcp", t->tor.in->data, t->tor.in->len, down_data, 45000);
  assert_same_bytes ("tcp -> ws", t->ws_data->data, t->ws_data->len, up->data, up->len);
  g_assert_cmpuint (t->ws_data_at_close, ==, up->len);

  ws_queue_close (t, TWP_WS_CLOSE_NORMAL);
  wait_until (is_done_and_both_eof, 5, "the relay to finish");
  g_assert_no_error (t->error);
  assert_counters (t, 70000, 45000);
  tunnels_free ();
}

enum {
  LEFTOVER_PING,
  LEFTOVER_BAD_FRAME,
};

/* A ping, or a protocol error, inside the WebSocket leftover: answered
 * (or failed) like the same bytes read from the socket. */
static void
test_leftover_control (gconstpointer data)
{
  const Variant *v = data;
  Tunnel *t = tunnel_new (v->gio, v->is_client, FALSE);
  g_autoptr(GBytes) ws_left = NULL;

  ws_queue_message (t, (const guint8 *) "abc", 3, 1, FALSE);
  ws_queue_frame (t, TWP_WS_OPCODE_PING, TRUE, "xy", 2);
  ws_queue_message (t, (const guint8 *) "def", 3, 1, FALSE);
  if (v->kind == LEFTOVER_BAD_FRAME)
    ws_queue_frame (t, TWP_WS_OPCODE_TEXT, TRUE, "aGVsbG8=", 8);
  ws_left = g_bytes_new (t->ws.out->data, t->ws.out->len);
  g_byte_array_set_size (t->ws.out, 0);
  tunnel_start (t, NULL, ws_left);
  t->want_tor_bytes = 6;
  wait_until (tor_has_bytes, 2, "the leftover's data");
  if (v->kind == LEFTOVER_BAD_FRAME)
    {
      wait_until (got_close, 2, "the close");
      g_assert_cmpuint (t->close_code, ==, TWP_WS_CLOSE_UNSUPPORTED_DATA);
      g_socket_shutdown (t->ws.socket, FALSE, TRUE, NULL);
    }
  else
    {
      t->want_pongs = 1;
      wait_until (has_pongs, 2, "the pong");
      assert_pong (t, 0, (const guint8 *) "xy", 2);
      ws_queue_close (t, TWP_WS_CLOSE_NORMAL);
    }
  wait_until (is_done_and_both_eof, 3, "the relay to finish");
  assert_same_bytes ("ws -> tcp", t->tor.in->data, t->tor.in->len, (const guint8 *) "abcdef", 6);
  if (v->kind == LEFTOVER_BAD_FRAME)
    g_assert_error (t->error, TWP_RELAY_ERROR, TWP_RELAY_ERROR_PEER_PROTOCOL);
  else
    g_assert_no_error (t->error);
  tunnels_free ();
}

/* ---- 4. protocol errors ------------------------------------------------- */

enum {
  BAD_MASK,
  BAD_TEXT,
  BAD_BASE64,
  BAD_OVERSIZE,
};

/* A complete message, then a bad frame and more bytes behind it: the
 * message reaches tor, the peer gets the close status although it keeps
 * sending (lingering close: no reset destroys the close frame), and the
 * run fails with PEER_PROTOCOL once the peer closes its side. */
static void
test_protocol_error (gconstpointer data)
{
  const Variant *v = data;
  Tunnel *t = tunnel_new (v->gio, v->is_client, v->kind == BAD_BASE64);
  g_autoptr(GBytes) good = random_bytes (1000);
  g_autoptr(GBytes) junk = random_bytes (1000);
  guint8 fragment[2000];
  guint16 want_code = 0;
  gint64 shut_at;

  ws_queue_message (t, g_bytes_get_data (good, NULL), 1000, 2, FALSE);
  switch (v->kind)
    {
    case BAD_MASK:
      /* The wrong masking for the role. */
      ws_queue_frame_full (t, TWP_WS_OPCODE_BINARY, TRUE, "abc", 3, t->is_client);
      want_code = TWP_WS_CLOSE_PROTOCOL_ERROR;
      break;
    case BAD_TEXT:
      ws_queue_frame (t, TWP_WS_OPCODE_TEXT, TRUE, "aGVsbG8=", 8);
      want_code = TWP_WS_CLOSE_UNSUPPORTED_DATA;
      break;
    case BAD_BASE64:
      ws_queue_frame (t, TWP_WS_OPCODE_TEXT, TRUE, "aGV$bG8=", 8);
      want_code = TWP_WS_CLOSE_INVALID_PAYLOAD;
      break;
    case BAD_OVERSIZE:
      /* Each fragment fits, their sum does not. */
      t->options.max_message_size = 4096;
      fill_random (fragment, sizeof fragment);
      ws_queue_frame (t, TWP_WS_OPCODE_BINARY, FALSE, fragment, sizeof fragment);
      ws_queue_frame (t, TWP_WS_OPCODE_CONTINUATION, FALSE, fragment, sizeof fragment);
      ws_queue_frame (t, TWP_WS_OPCODE_CONTINUATION, TRUE, fragment, sizeof fragment);
      want_code = TWP_WS_CLOSE_TOO_BIG;
      break;
    default:
      g_assert_not_reached ();
    }
  g_byte_array_append (t->ws.out, g_bytes_get_data (junk, NULL), 300);

  /* The peer keeps sending without reading for a while. */
  t->ws.reading = FALSE;
  tunnel_start (t, NULL, NULL);
  run_for (0.03);
  g_byte_array_append (t->ws.out, g_bytes_get_data (junk, NULL), 1000);
  run_for (0.03);
  ws_queue_message (t, g_bytes_get_data (junk, NULL), 500, 1, FALSE);
  run_for (0.03);
  t->ws.reading = TRUE;

  wait_until (got_close, 1.5, "the relay's close frame");
  g_assert_false (t->ws.reset);
  g_assert_cmpuint (t->close_code, ==, want_code);
  g_assert_cmpuint (twp_relay_get_close_code (t->relay), ==, want_code);
  wait_until (tor_eof, 1.5, "tor's EOF");
  g_assert_false (t->tor.reset);
  assert_same_bytes ("ws -> tcp", t->tor.in->data, t->tor.in->len, g_bytes_get_data (good, NULL), 1000);
  g_assert_cmpuint (twp_relay_get_bytes_from_ws (t->relay), ==, 1000);

  /* The peer saw the close and closes its side: the drain ends at once,
   * well before the relay's own drain timeout. */
  g_socket_shutdown (t->ws.socket, FALSE, TRUE, NULL);
  shut_at = g_get_monotonic_time ();
  wait_until (is_done_and_both_eof, 3, "the relay to finish");
  g_assert_cmpfloat ((t->done_at - shut_at) / (double) G_USEC_PER_SEC, <, 1.0);
  g_assert_error (t->error, TWP_RELAY_ERROR, TWP_RELAY_ERROR_PEER_PROTOCOL);
  g_assert_false (t->ok);
  assert_counters (t, 0, 1000);
  tunnels_free ();
}

/* ---- 5. close followed by garbage --------------------------------------- */

/* Nothing after a close frame counts, and it must not keep the relay
 * waiting for more input (regression: it used to hang here). */
static void
test_close_then_garbage (gconstpointer data)
{
  const Variant *v = data;
  Tunnel *t = tunnel_new (v->gio, v->is_client, FALSE);
  g_autoptr(GBytes) junk = random_bytes (200);

  ws_queue_close (t, TWP_WS_CLOSE_NORMAL);
  ws_queue_message (t, (const guint8 *) "after close", 11, 1, FALSE);
  g_byte_array_append (t->ws.out, g_bytes_get_data (junk, NULL), 200);
  tunnel_start (t, NULL, NULL);

  wait_until (is_done_and_both_eof, 3, "the relay to finish");
  g_assert_cmpfloat ((t->done_at - t->started_at) / (double) G_USEC_PER_SEC, <, 1.0);
  g_assert_no_error (t->error);
  g_assert_true (t->got_close);
  g_assert_cmpuint (t->close_code, ==, TWP_WS_CLOSE_NORMAL);
  g_assert_cmpuint (t->tor.in->len, ==, 0);
  assert_counters (t, 0, 0);
  tunnels_free ();
}

/* ---- the peer's other closes ------------------------------------------- */

/* The peer's connection ends without a close frame: tor still gets the
 * data and EOF, and the run reports the abnormal closure (1006). */
static void
test_abnormal_end (gconstpointer data)
{
  const Variant *v = data;
  Tunnel *t = tunnel_new (v->gio, v->is_client, FALSE);
  g_autoptr(GBytes) down = random_bytes (5000);

  ws_queue_message (t, g_bytes_get_data (down, NULL), 5000, 2, FALSE);
  t->ws.shut_when_sent = TRUE;
  tunnel_start (t, NULL, NULL);

  wait_until (is_done_and_both_eof, 3, "the relay to finish");
  g_assert_error (t->error, TWP_RELAY_ERROR, TWP_RELAY_ERROR_ABNORMAL);
  assert_same_bytes ("ws -> tcp", t->tor.in->data, t->tor.in->len, g_bytes_get_data (down, NULL), 5000);
  g_assert_false (t->got_close);
  assert_counters (t, 0, 5000);
  tunnels_free ();
}

/* A close with an error status is echoed and reported as PEER_CLOSED. */
static void
test_peer_close_error (gconstpointer data)
{
  const Variant *v = data;
  Tunnel *t = tunnel_new (v->gio, v->is_client, FALSE);

  ws_queue_message (t, (const guint8 *) "last words", 10, 1, FALSE);
  ws_queue_close (t, TWP_WS_CLOSE_INTERNAL_ERROR);
  tunnel_start (t, NULL, NULL);

  wait_until (is_done_and_both_eof, 3, "the relay to finish");
  g_assert_error (t->error, TWP_RELAY_ERROR, TWP_RELAY_ERROR_PEER_CLOSED);
  assert_same_bytes ("ws -> tcp", t->tor.in->data, t->tor.in->len, (const guint8 *) "last words", 10);
  g_assert_cmpuint (twp_relay_get_peer_close_code (t->relay), ==, TWP_WS_CLOSE_INTERNAL_ERROR);
  g_assert_true (t->got_close);
  g_assert_cmpuint (t->close_code, ==, TWP_WS_CLOSE_INTERNAL_ERROR);
  tunnels_free ();
}

/* ---- 6. ping, keepalive --------------------------------------------- */

/* Each ping gets exactly one pong with its payload. */
static void
test_ping (gconstpointer data)
{
  const Variant *v = data;
  Tunnel *t = tunnel_new (v->gio, v->is_client, FALSE);
  guint8 payload[TWP_WS_MAX_CONTROL_PAYLOAD];
  g_autoptr(GByteArray) rest = g_byte_array_new ();

  /* The first ping arrives in two pieces. */
  fill_random (payload, sizeof payload);
  ws_queue_frame (t, TWP_WS_OPCODE_PING, TRUE, payload, sizeof payload);
  g_byte_array_append (rest, t->ws.out->data + 60, t->ws.out->len - 60);
  g_byte_array_set_size (t->ws.out, 60);
  tunnel_start (t, NULL, NULL);
  run_for (0.03);
  g_assert_cmpuint (t->pongs->len, ==, 0);
  g_byte_array_append (t->ws.out, rest->data, rest->len);
  t->want_pongs = 1;
  wait_until (has_pongs, 2, "a pong");
  run_for (0.1);
  g_assert_cmpuint (t->pongs->len, ==, 1);
  assert_pong (t, 0, payload, sizeof payload);

  /* An empty ping between the fragments of a message. */
  ws_queue_frame (t, TWP_WS_OPCODE_BINARY, FALSE, "hello ", 6);
  ws_queue_frame (t, TWP_WS_OPCODE_PING, TRUE, NULL, 0);
  ws_queue_frame (t, TWP_WS_OPCODE_CONTINUATION, TRUE, "world", 5);
  t->want_pongs = 2;
  t->want_tor_bytes = 11;
  wait_until (has_pongs, 2, "a second pong");
  wait_until (tor_has_bytes, 2, "the message around the ping");
  run_for (0.05);
  g_assert_cmpuint (t->pongs->len, ==, 2);
  assert_pong (t, 1, NULL, 0);
  assert_same_bytes ("ws -> tcp", t->tor.in->data, t->tor.in->len, (const guint8 *) "hello world", 11);
  g_assert_cmpuint (t->pings->len, ==, 0);
  g_assert_false (t->done);

  ws_queue_close (t, TWP_WS_CLOSE_NORMAL);
  wait_until (is_done_and_both_eof, 3, "the relay to finish");
  g_assert_no_error (t->error);
  assert_counters (t, 0, 11);
  tunnels_free ();
}

/* With nothing to send the relay pings after keepalive_seconds, and a pong
 * gives the RTT. Both roles at once (they share the relays' tick). */
static void
test_keepalive (gconstpointer data)
{
  const Variant *v = data;

  for (int i = 0; i < 2; i++)
    {
      Tunnel *t = tunnel_new (v->gio, i == 0, FALSE);

      t->options.keepalive_seconds = 1;
      t->auto_pong = TRUE;
    }
  for (guint i = 0; i < tunnels->len; i++)
    {
      Tunnel *t = g_ptr_array_index (tunnels, i);

      tunnel_start (t, NULL, NULL);
      g_assert_cmpint (twp_relay_get_rtt_us (t->relay), ==, -1);
    }

  wait_until (was_pinged, 3.5, "a keepalive ping");
  wait_until (has_rtt, 1, "the RTT");
  for (guint i = 0; i < tunnels->len; i++)
    {
      Tunnel *t = g_ptr_array_index (tunnels, i);
      gint64 rtt = twp_relay_get_rtt_us (t->relay);

      g_assert_cmpint (rtt, >=, 0);
      g_assert_cmpint (rtt, <, G_USEC_PER_SEC);
      g_assert_false (t->done);
      ws_queue_close (t, TWP_WS_CLOSE_NORMAL);
    }
  wait_until (is_done_and_both_eof, 3, "the relays to finish");
  for (guint i = 0; i < tunnels->len; i++)
    {
      Tunnel *t = g_ptr_array_index (tunnels, i);

      g_assert_no_error (t->error);
      assert_counters (t, 0, 0);
    }
  tunnels_free ();
}

/* A peer that takes our ping and sends nothing back (a path that
 * black-holes) ends the tunnel after one more keepalive interval, as
 * keepalive, instead of leaving TCP to retry for minutes. */
static void
test_keepalive_unanswered (gconstpointer data)
{
  const Variant *v = data;

  for (int i = 0; i < 2; i++)
    tunnel_new (v->gio, i == 0, FALSE)->options.keepalive_seconds = 1;
  for (guint i = 0; i < tunnels->len; i++)
    tunnel_start (g_ptr_array_index (tunnels, i), NULL, NULL);

  wait_until (was_pinged, 30, "a keepalive ping");
  wait_until (is_done, 30, "the relays to give up on the silent peer");
  for (guint i = 0; i < tunnels->len; i++)
    {
      Tunnel *t = g_ptr_array_index (tunnels, i);

      g_assert_cmpuint (t->pings->len, >=, 1);
      g_assert_error (t->error, TWP_RELAY_ERROR, TWP_RELAY_ERROR_ABNORMAL);
      g_assert_cmpint (twp_relay_get_end (t->relay), ==, TWP_RELAY_END_KEEPALIVE);
      g_assert_cmpint (twp_relay_get_rtt_us (t->relay), ==, -1);
    }
  tunnels_free ();
}

/* ---- 7. idle timeout --------------------------------------------------- */

static void
test_idle (gconstpointer data)
{
  const Variant *v = data;

  for (int i = 0; i < 2; i++)
    tunnel_new (v->gio, i == 0, FALSE)->options.idle_timeout_seconds = 1;
  for (guint i = 0; i < tunnels->len; i++)
    tunnel_start (g_ptr_array_index (tunnels, i), NULL, NULL);

  wait_until (got_close, 4, "the idle close");
  wait_until (is_done_and_both_eof, 3, "the relays to finish");
  for (guint i = 0; i < tunnels->len; i++)
    {
      Tunnel *t = g_ptr_array_index (tunnels, i);

      g_assert_cmpuint (t->close_code, ==, TWP_WS_CLOSE_GOING_AWAY);
      g_assert_cmpfloat ((t->done_at - t->started_at) / (double) G_USEC_PER_SEC, >=, 0.9);
      g_assert_error (t->error, TWP_RELAY_ERROR, TWP_RELAY_ERROR_IDLE);
    }
  tunnels_free ();
}

/* ---- 8. stall ------------------------------------------------------------ */

/* The peer never reads while tor pushes: the relay stops reading tor
 * (tor's writes block with little sent), then gives up on the write. */
static void
test_stall (gconstpointer data)
{
  const Variant *v = data;

  for (int i = 0; i < 2; i++)
    {
      Tunnel *t = tunnel_new (v->gio, i == 0, FALSE);

      tunnel_small_buffers (t);
      t->options.stall_timeout_seconds = 2;
      t->tor.endless = TRUE;
      t->ws.reading = FALSE;
    }
  for (guint i = 0; i < tunnels->len; i++)
    tunnel_start (g_ptr_array_index (tunnels, i), NULL, NULL);

  wait_until (is_done, 10, "the stall timeout");
  for (guint i = 0; i < tunnels->len; i++)
    {
      Tunnel *t = g_ptr_array_index (tunnels, i);
      double stalled = (t->done_at - t->tor.last_write_at) / (double) G_USEC_PER_SEC;

      g_test_message ("%s: %" G_GUINT64_FORMAT " bytes in, stalled %.2f s", t->name, t->tor.written, stalled);
      g_assert_error (t->error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
      g_assert_true (t->tor.ever_blocked);
      g_assert_cmpuint (t->tor.written, <, BLOCKED_BOUND);
      g_assert_cmpuint (twp_relay_get_bytes_to_ws (t->relay), <=, t->tor.written);
      g_assert_cmpfloat (stalled, >=, 1.0);
      g_assert_cmpfloat (stalled, <=, 6.0);
      t->ws.reading = TRUE;
    }
  wait_until (both_eof, 2, "the relays to close both sockets");
  tunnels_free ();
}

/* ---- 9. backpressure towards tor ------------------------------------- */

/* tor stops reading while the peer sends: the relay stops reading the
 * peer (its writes block with little sent); once tor reads again every
 * byte arrives. */
static void
test_backpressure (gconstpointer data)
{
  const Variant *v = data;
  Tunnel *t = tunnel_new (v->gio, v->is_client, FALSE);
  g_autoptr(GBytes) down = random_bytes (PUSH_SIZE);
  const guint8 *down_data = g_bytes_get_data (down, NULL);
  guint64 written;

  tunnel_small_buffers (t);
  for (gsize pos = 0; pos < PUSH_SIZE; pos += 8192)
    ws_queue_message (t, down_data + pos, 8192, 1, FALSE);
  t->tor.reading = FALSE;
  tunnel_start (t, NULL, NULL);

  wait_until (ws_write_blocked, 5, "the peer's writes to block");
  /* The kernel may still open the window a little (delayed ACKs, receive
   * queue collapsing): wait until nothing moved for half a second. */
  written = t->ws.written;
  for (gint64 still_since = g_get_monotonic_time (); seconds_since (still_since) < 0.5;)
    {
      run_for (0.05);
      if (t->ws.written != written)
        {
          written = t->ws.written;
          still_since = g_get_monotonic_time ();
        }
      if (seconds_since (t->started_at) > 5)
        g_error ("%s: the peer's writes never stopped (%" G_GUINT64_FORMAT " bytes in)", t->name, written);
    }
  g_test_message ("%s: %" G_GUINT64_FORMAT " bytes in before blocking", t->name, written);
  g_assert_true (t->ws.write_blocked);
  g_assert_cmpuint (written, <, BLOCKED_BOUND);
  g_assert_cmpuint (twp_relay_get_bytes_from_ws (t->relay), <=, written);
  g_assert_false (t->done);

  t->tor.reading = TRUE;
  t->want_tor_bytes = PUSH_SIZE;
  wait_until (tor_has_bytes, 10, "tor to get everything");
  assert_same_bytes ("ws -> tcp", t->tor.in->data, t->tor.in->len, down_data, PUSH_SIZE);
  ws_queue_close (t, TWP_WS_CLOSE_NORMAL);
  wait_until (is_done_and_both_eof, 3, "the relay to finish");
  g_assert_no_error (t->error);
  assert_counters (t, 0, PUSH_SIZE);
  tunnels_free ();
}

/* The peer closes while tor is not reading: everything still reaches tor
 * once it reads, then EOF. */
static void
test_close_while_tor_blocked (gconstpointer data)
{
  const Variant *v = data;
  Tunnel *t = tunnel_new (v->gio, v->is_client, FALSE);
  g_autoptr(GBytes) down = random_bytes (PUSH_SIZE / 4);
  const guint8 *down_data = g_bytes_get_data (down, NULL);

  tunnel_small_buffers (t);
  for (gsize pos = 0; pos < PUSH_SIZE / 4; pos += 8192)
    ws_queue_message (t, down_data + pos, 8192, 1, FALSE);
  ws_queue_close (t, TWP_WS_CLOSE_NORMAL);
  t->tor.reading = FALSE;
  tunnel_start (t, NULL, NULL);
  run_for (0.2);
  g_assert_false (t->done);
  t->tor.reading = TRUE;
  wait_until (is_done_and_both_eof, 5, "the relay to finish");
  g_assert_no_error (t->error);
  assert_same_bytes ("ws -> tcp", t->tor.in->data, t->tor.in->len, down_data, PUSH_SIZE / 4);
  g_assert_true (t->got_close);
  tunnels_free ();
}

/* ---- 10. cancellation ------------------------------------------------- */

static void
test_cancel (gconstpointer data)
{
  const Variant *v = data;
  Tunnel *t = tunnel_new (v->gio, v->is_client, FALSE);
  gint64 cancelled_at;

  g_byte_array_append (t->tor.out, (const guint8 *) "0123456789", 10);
  tunnel_start (t, NULL, NULL);
  t->want_ws_bytes = 10;
  wait_until (ws_has_bytes, 2, "the first bytes");
  /* Waiting for cancellation costs no source per relay: GLib's main loop
   * walks every source on each wakeup (issue 14: opening thousands of
   * tunnels was quadratic on the client). */
  g_assert_null (g_main_context_find_source_by_user_data (NULL, t->relay));

  cancelled_at = g_get_monotonic_time ();
  g_cancellable_cancel (t->cancellable);
  wait_until (is_done, 1, "the cancelled relay to finish");
  g_assert_cmpfloat ((t->done_at - cancelled_at) / (double) G_USEC_PER_SEC, <, 0.5);
  g_assert_error (t->error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  wait_until (both_eof, 2, "the relay to close both sockets");
  assert_counters (t, 10, 0);
  tunnels_free ();
}

static void
test_cancel_before_run (gconstpointer data)
{
  const Variant *v = data;
  Tunnel *t = tunnel_new (v->gio, v->is_client, FALSE);

  g_cancellable_cancel (t->cancellable);
  tunnel_start (t, NULL, NULL);
  wait_until (is_done, 1, "the cancelled relay to finish");
  g_assert_error (t->error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  wait_until (both_eof, 2, "the relay to close both sockets");
  tunnels_free ();
}

/* ---- main ----------------------------------------------------------------- */

static GPtrArray *variants;

static void
add_case (const char    *name,
          gboolean       gio,
          int            role,       /* 0 client, 1 server, -1 both at once */
          gboolean       base64,
          int            kind,
          GTestDataFunc  func)
{
  Variant *v = g_new0 (Variant, 1);

  v->gio = gio;
  v->is_client = role == 0;
  v->base64 = base64;
  v->kind = kind;
  v->path = g_strdup_printf ("/relay/%s/%s%s", gio ? "gio" : "reactor",
                             role < 0 ? "" : role == 0 ? "client/" : "server/", name);
  g_ptr_array_add (variants, v);
  g_test_add_data_func (v->path, v, func);
}

static void
variant_free (gpointer data)
{
  Variant *v = data;

  g_free (v->path);
  g_free (v);
}

typedef struct {
  const char *name;
  gboolean both_roles_at_once;   /* one tunnel of each role in the case */
  gboolean base64;
  int kind;
  GTestDataFunc func;
} RelayCase;

static const RelayCase relay_cases[] = {
  { "idle", TRUE, FALSE, 0, test_idle },
  { "keepalive", TRUE, FALSE, 0, test_keepalive },
  { "keepalive-unanswered", TRUE, FALSE, 0, test_keepalive_unanswered },
  { "stall", TRUE, FALSE, 0, test_stall },
  { "bulk/binary", FALSE, FALSE, 0, test_bulk },
  { "bulk/base64", FALSE, TRUE, 0, test_bulk },
  { "tcp-eof-first", FALSE, FALSE, 0, test_tcp_eof_first },
  { "ws-close-first", FALSE, FALSE, 0, test_ws_close_first },
  { "leftovers/binary", FALSE, FALSE, 0, test_leftovers },
  { "leftovers/base64", FALSE, TRUE, 0, test_leftovers },
  { "leftovers/ping", FALSE, FALSE, LEFTOVER_PING, test_leftover_control },
  { "leftovers/bad-frame", FALSE, FALSE, LEFTOVER_BAD_FRAME, test_leftover_control },
  { "protocol-error/mask", FALSE, FALSE, BAD_MASK, test_protocol_error },
  { "protocol-error/text", FALSE, FALSE, BAD_TEXT, test_protocol_error },
  { "protocol-error/base64", FALSE, TRUE, BAD_BASE64, test_protocol_error },
  { "protocol-error/oversize", FALSE, FALSE, BAD_OVERSIZE, test_protocol_error },
  { "close-then-garbage", FALSE, FALSE, 0, test_close_then_garbage },
  { "abnormal-end", FALSE, FALSE, 0, test_abnormal_end },
  { "peer-close-error", FALSE, FALSE, 0, test_peer_close_error },
  { "ping", FALSE, FALSE, 0, test_ping },
  { "backpressure", FALSE, FALSE, 0, test_backpressure },
  { "close-while-tor-blocked", FALSE, FALSE, 0, test_close_while_tor_blocked },
  { "cancel", FALSE, FALSE, 0, test_cancel },
  { "cancel-before-run", FALSE, FALSE, 0, test_cancel_before_run },
};

int
main (int    argc,
      char **argv)
{
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GError) error = NULL;
  int ret;

  g_test_init (&argc, &argv, NULL);
  rng_state = g_test_rand_int () | 1;

  listener = g_socket_listener_new ();
  address = g_inet_socket_address_new_from_string ("127.0.0.1", 0);
  g_socket_listener_add_address (listener, address, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP,
                                 NULL, &listen_address, &error);
  g_assert_no_error (error);
  client = g_socket_client_new ();
  /* Loopback only: keep libproxy out of it. */
  g_socket_client_set_enable_proxy (client, FALSE);
  tunnels = g_ptr_array_new ();
  variants = g_ptr_array_new_with_free_func (variant_free);

  /* Every case runs on both I/O paths; most for each role. */
  for (int gio = 0; gio < 2; gio++)
    for (guint i = 0; i < G_N_ELEMENTS (relay_cases); i++)
      {
        const RelayCase *c = &relay_cases[i];

        if (c->both_roles_at_once)
          add_case (c->name, gio, -1, c->base64, c->kind, c->func);
        else
          for (int role = 0; role < 2; role++)
            add_case (c->name, gio, role, c->base64, c->kind, c->func);
      }

  ret = g_test_run ();

  g_ptr_array_unref (variants);
  g_ptr_array_unref (tunnels);
  g_clear_object (&client);
  g_socket_listener_close (listener);
  g_clear_object (&listener);
  g_clear_object (&listen_address);
  return ret;
}
