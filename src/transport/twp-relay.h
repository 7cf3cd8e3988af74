/* SPDX-License-Identifier: BSD-3-Clause */
/* One tunnel: a plain TCP end (tor's SOCKS connection, or the bridge's
 * (Extended) ORPort) and a WebSocket end whose upgrade is already done.
 * Client and server share it; they differ only in who masks. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define TWP_RELAY_ERROR (twp_relay_error_quark ())
GQuark twp_relay_error_quark (void);

typedef enum {
  TWP_RELAY_ERROR_PEER_PROTOCOL,  /* the WebSocket peer broke RFC 6455 or the proposal */
  TWP_RELAY_ERROR_PEER_CLOSED,    /* the peer closed with a status other than 1000 */
  TWP_RELAY_ERROR_ABNORMAL,       /* the WebSocket's TCP connection ended without a close frame */
  TWP_RELAY_ERROR_IDLE,           /* nothing moved for the idle timeout */
} TwpRelayError;

/* How a tunnel ended: the first reason, for operators' counters. */
typedef enum {
  TWP_RELAY_END_NONE,         /* still running */
  TWP_RELAY_END_NORMAL,       /* closed cleanly (1000, 1001 or no status) */
  TWP_RELAY_END_PEER_CLOSED,  /* the peer closed with another status */
  TWP_RELAY_END_PROTOCOL,     /* the peer broke RFC 6455 or the proposal: see twp_relay_get_close_code () */
  TWP_RELAY_END_ABNORMAL,     /* the WebSocket's TCP connection ended without a close frame */
  TWP_RELAY_END_IDLE,         /* nothing moved for the idle timeout */
  TWP_RELAY_END_STALL,        /* a reader (peer or tor) stopped taking data */
  TWP_RELAY_END_KEEPALIVE,    /* the connection died while our keepalive ping went unanswered */
  TWP_RELAY_END_IO_ERROR,     /* another I/O error on either end */
  TWP_RELAY_END_CANCELLED,    /* torn down by its owner */
  TWP_RELAY_N_ENDS
} TwpRelayEnd;

typedef struct {
  /* TRUE on the client: outgoing frames are masked, incoming must not be. */
  gboolean is_client;
  /* Text frames carrying base64 (the "base64" subprotocol was negotiated). */
  gboolean base64;
  /* Bound on one incoming message, on the wire (base64 text counts as sent). */
  gsize max_message_size;
  /* Send a ping after this many idle seconds (0: never). */
  guint keepalive_seconds;
  /* Close after this many seconds with no data either way (0: never). */
  guint idle_timeout_seconds;
  /* Tear the tunnel down when a write (to the peer or to tor) makes no
   * progress for this long: the other side stopped reading (0: default). */
  guint stall_timeout_seconds;
} TwpRelayOptions;

/* Bytes of TCP payload one outgoing message carries. Peers must accept at
 * least 16 KiB per message, so one message never exceeds what they take. */
#define TWP_RELAY_MESSAGE_PAYLOAD 16384
/* Default incoming message bound: four times what we send, above the
 * 16,384 bytes (21,848 in base64) every endpoint must accept. */
#define TWP_RELAY_DEFAULT_MAX_MESSAGE (64 * 1024)
/* A write stuck this long means a dead or hostile reader; a slow but live
 * one makes some progress well within it. */
#define TWP_RELAY_DEFAULT_STALL_TIMEOUT 60

#define TWP_TYPE_RELAY (twp_relay_get_type ())
G_DECLARE_FINAL_TYPE (TwpRelay, twp_relay, TWP, RELAY, GObject)

/* @tcp must be a GSocketConnection (half-close needs the socket).
 * @tcp_leftover and @ws_leftover are bytes already read from either end
 * during their handshakes; they are relayed first. */
TwpRelay *twp_relay_new (GIOStream             *tcp,
                         GIOStream             *ws,
                         GBytes                *tcp_leftover,
                         GBytes                *ws_leftover,
                         const TwpRelayOptions *options);

/* Runs until both directions are closed. Fails with TWP_RELAY_ERROR or an
 * I/O error when the tunnel ended abnormally; @cancellable tears it down
 * at once. */
void     twp_relay_run_async  (TwpRelay            *relay,
                               GCancellable        *cancellable,
                               GAsyncReadyCallback  callback,
                               gpointer             user_data);
gboolean twp_relay_run_finish (TwpRelay      *relay,
                               GAsyncResult  *result,
                               GError       **error);

/* Payload bytes relayed so far (not counting framing or base64 growth). */
guint64 twp_relay_get_bytes_to_ws   (TwpRelay *relay);
guint64 twp_relay_get_bytes_from_ws (TwpRelay *relay);
/* Round-trip time of the last answered keepalive ping, in microseconds,
 * or -1 when none was answered yet. */
gint64  twp_relay_get_rtt_us        (TwpRelay *relay);
/* The close status the peer sent, 0 if none yet. */
guint   twp_relay_get_peer_close_code (TwpRelay *relay);
/* The close status we sent (or are sending), 0 if none. */
guint   twp_relay_get_close_code      (TwpRelay *relay);
/* Why the tunnel ended; TWP_RELAY_END_NONE while it runs. */
TwpRelayEnd twp_relay_get_end         (TwpRelay *relay);

G_END_DECLS
