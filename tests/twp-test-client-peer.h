/* SPDX-License-Identifier: BSD-3-Clause */
/* Test helpers for the client integration tests: blocking socket I/O with
 * deadlines, hand-built WebSocket frames, and a raw WebSocket server peer
 * that answers the upgrade by hand and then runs a test's script in its own
 * thread (so that it can send what libsoup never would: fragments split
 * mid-quantum, masked server frames, oversize headers, text without base64).
 *
 * Every blocking call is bounded by the socket's timeout (set by the
 * helpers that create sockets), so a misbehaving binary fails a test
 * instead of hanging it. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* Seconds any single blocking socket operation may take. */
#define TWP_TEST_CLIENT_IO_TIMEOUT 20

/* 127.0.0.1:@port, blocking, with the I/O timeout set. */
GSocket *twp_test_client_connect (guint16   port,
                                  GError  **error);

/* A listening socket on 127.0.0.1:0; its port goes to @port. accept()
 * on it is bounded by the I/O timeout. */
GSocket *twp_test_client_listen (guint16  *port,
                                 GError  **error);

gboolean twp_test_client_send_all (GSocket     *socket,
                                   const void  *data,
                                   gsize        len,
                                   GError     **error);

/* Fails with G_IO_ERROR_CONNECTION_CLOSED on EOF before @len bytes. */
gboolean twp_test_client_recv_exact (GSocket  *socket,
                                     void     *data,
                                     gsize     len,
                                     GError  **error);

/* Everything until EOF (at most @max bytes, else an error). */
GBytes *twp_test_client_recv_until_eof (GSocket  *socket,
                                        gsize     max,
                                        GError  **error);

/* An HTTP head up to and including the empty line (at most 8 KiB), read
 * one byte at a time so that nothing after it is consumed. */
char *twp_test_client_read_http_head (GSocket  *socket,
                                      GError  **error);

/* The value of header @name (case-insensitive) in @head, trimmed, or NULL. */
char *twp_test_client_header_value (const char *head,
                                    const char *name);

/* One frame as written by hand: @first_byte is FIN|RSV|opcode; @mask is
 * NULL for an unmasked frame; the length encoding is the minimal one
 * unless @force_len64 (then 127 + 8 bytes, as some servers do). */
GBytes *twp_test_client_build_frame (guint8        first_byte,
                                     const guint8 *mask,
                                     const void   *payload,
                                     gsize         len,
                                     gboolean      force_len64);

/* A close frame (unmasked, server side) with @code and no reason. */
GBytes *twp_test_client_build_close (guint16 code);

typedef struct {
  guint8 first_byte;    /* FIN|RSV|opcode as received */
  guint8 opcode;
  gboolean fin;
  gboolean masked;
  GBytes *payload;      /* unmasked */
} TwpTestClientFrame;

void twp_test_client_frame_free (TwpTestClientFrame *frame);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TwpTestClientFrame, twp_test_client_frame_free)

/* Reads one whole frame (payload at most 1 MiB). */
TwpTestClientFrame *twp_test_client_read_frame (GSocket  *socket,
                                                GError  **error);

/* For a close frame: its status code, 1005 when it has none, 0 when the
 * payload is malformed (one byte). */
guint twp_test_client_close_code (const TwpTestClientFrame *frame);

/* Raw WebSocket server peer. */

typedef struct _TwpTestClientPeer TwpTestClientPeer;

/* Runs in the peer's thread after the 101 response has been written.
 * @base64 says whether the peer agreed to the base64 subprotocol. The
 * script owns its error reporting (through @user_data); the peer closes
 * the socket when it returns. */
typedef void (*TwpTestClientPeerScript) (GSocket  *socket,
                                         gboolean  base64,
                                         gpointer  user_data);

/* Listens at once and accepts exactly one connection in a new thread.
 * The 101 carries "Sec-WebSocket-Protocol: base64" iff the request asked
 * for it and @allow_base64. */
TwpTestClientPeer *twp_test_client_peer_new (gboolean                 allow_base64,
                                             TwpTestClientPeerScript  script,
                                             gpointer                 user_data);
/* The same, but the 101 is written only @delay_ms after the request head
 * arrived, and @early (if not NULL) follows it in the same write, so that
 * the client most likely reads frames together with the response head. */
TwpTestClientPeer *twp_test_client_peer_new_full (gboolean                 allow_base64,
                                                  guint                    delay_ms,
                                                  GBytes                  *early,
                                                  TwpTestClientPeerScript  script,
                                                  gpointer                 user_data);
/* A peer that answers the upgrade exactly as the proposal's reference
 * implementation does (the Go websocket-server of the first bridges):
 * "HTTP/1.0 101 Switching Protocols", then Go's http.Header.Write() form of
 * its headers (canonical case "Sec-Websocket-Accept", sorted by name), with
 * "Sec-Websocket-Protocol: base64" only when the request lists base64. */
TwpTestClientPeer *twp_test_client_peer_new_go_reference (TwpTestClientPeerScript  script,
                                                          gpointer                 user_data);
guint16 twp_test_client_peer_get_port (TwpTestClientPeer *peer);
/* TRUE once the thread has finished (the socket is closed by then). */
gboolean twp_test_client_peer_is_done (TwpTestClientPeer *peer);
/* After done: the request head the client sent, or NULL. */
const char *twp_test_client_peer_get_request (TwpTestClientPeer *peer);
/* After done: why the peer could not run the script (accept, handshake),
 * or NULL. */
const GError *twp_test_client_peer_get_error (TwpTestClientPeer *peer);
/* After done: g_get_monotonic_time () just before the 101 was written,
 * or 0. */
gint64 twp_test_client_peer_get_accepted_at (TwpTestClientPeer *peer);
/* Joins the thread: call it only once the peer is done. */
void twp_test_client_peer_free (TwpTestClientPeer *peer);

G_END_DECLS
