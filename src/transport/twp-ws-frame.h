/* SPDX-License-Identifier: BSD-3-Clause */
/* RFC 6455 framing: header encoding, masking and an incremental, zero-copy
 * frame parser. Pure functions on memory, no I/O, so every byte a peer can
 * send is reachable from a fuzz target. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* 2 bytes + 8 bytes extended length + 4 bytes mask key. */
#define TWP_WS_MAX_HEADER_SIZE 14
#define TWP_WS_MAX_CONTROL_PAYLOAD 125

typedef enum {
  TWP_WS_OPCODE_CONTINUATION = 0x0,
  TWP_WS_OPCODE_TEXT = 0x1,
  TWP_WS_OPCODE_BINARY = 0x2,
  TWP_WS_OPCODE_CLOSE = 0x8,
  TWP_WS_OPCODE_PING = 0x9,
  TWP_WS_OPCODE_PONG = 0xA,
} TwpWsOpcode;

/* RFC 6455 section 7.4.1 */
typedef enum {
  TWP_WS_CLOSE_NORMAL = 1000,
  TWP_WS_CLOSE_GOING_AWAY = 1001,
  TWP_WS_CLOSE_PROTOCOL_ERROR = 1002,
  TWP_WS_CLOSE_UNSUPPORTED_DATA = 1003,
  TWP_WS_CLOSE_NO_STATUS = 1005,
  TWP_WS_CLOSE_ABNORMAL = 1006,
  TWP_WS_CLOSE_INVALID_PAYLOAD = 1007,
  TWP_WS_CLOSE_POLICY_VIOLATION = 1008,
  TWP_WS_CLOSE_TOO_BIG = 1009,
  TWP_WS_CLOSE_INTERNAL_ERROR = 1011,
} TwpWsCloseCode;

/* Writes a frame header into @out (at least TWP_WS_MAX_HEADER_SIZE bytes)
 * using the minimal length encoding. @mask_key is NULL for an unmasked
 * (server) frame. Returns the header length. */
gsize twp_ws_frame_write_header (guint8        *out,
                                 TwpWsOpcode    opcode,
                                 gboolean       fin,
                                 guint64        payload_len,
                                 const guint8  *mask_key);

/* XORs @data in place with @mask_key, starting at key byte @phase (0..3).
 * Returns the phase for the byte after @data, so a payload can be unmasked
 * in pieces. */
guint twp_ws_mask (guint8       *data,
                   gsize         len,
                   const guint8  mask_key[4],
                   guint         phase);

/* Writes a whole close frame (status + reason, reason truncated to fit 125
 * bytes) into @out (at least TWP_WS_MAX_HEADER_SIZE + 125 bytes); returns
 * its length. The reason (NULL for none) is cut to 123 bytes at a UTF-8
 * character boundary and dropped if it is not UTF-8; code 1005 ("no
 * status") writes an empty payload. */
gsize twp_ws_frame_write_close (guint8       *out,
                                guint16       code,
                                const char   *reason,
                                const guint8 *mask_key);

typedef enum {
  TWP_WS_EVENT_NEED_MORE,    /* all input consumed; feed more */
  TWP_WS_EVENT_DATA,         /* payload bytes of a data message */
  TWP_WS_EVENT_MESSAGE_END,  /* the final frame of a data message ended */
  TWP_WS_EVENT_CONTROL,      /* a complete control frame */
  TWP_WS_EVENT_ERROR,        /* protocol violation; the parser is dead */
} TwpWsEventType;

typedef struct {
  TwpWsEventType type;
  /* DATA, MESSAGE_END: TEXT or BINARY (the message's opcode, also for
   * continuation frames). CONTROL: CLOSE, PING or PONG. */
  TwpWsOpcode opcode;
  /* DATA: these are the first bytes of a new message. Empty frames produce
   * no DATA, so this is set on the first non-empty frame of the message; a
   * message without any payload produces MESSAGE_END alone. */
  gboolean message_start;
  /* DATA: unmasked bytes inside the caller's buffer. CONTROL: the whole
   * payload, copied into the parser (valid until the next feed). */
  const guint8 *data;
  gsize len;
  /* ERROR: the close status to send (1002, 1007, 1009) and why.
   * CONTROL with opcode CLOSE: the (validated) status the peer sent, 1005
   * when its payload was empty; the reason is in data + 2 (not
   * NUL-terminated), see twp_ws_parse_close_payload(). */
  guint16 close_code;
  const char *reason;
} TwpWsEvent;

typedef struct {
  /*< private >*/
  gboolean expect_masked;
  guint64 max_message_size;

  guint8 header[TWP_WS_MAX_HEADER_SIZE];
  guint header_len;

  gboolean in_frame;
  gboolean frame_fin;
  TwpWsOpcode frame_opcode;
  gboolean frame_masked;
  guint8 mask_key[4];
  guint mask_phase;
  guint64 frame_remaining;

  gboolean in_message;
  gboolean message_started;
  TwpWsOpcode message_opcode;
  guint64 message_size;

  guint8 control[TWP_WS_MAX_CONTROL_PAYLOAD];
  gsize control_len;

  gboolean failed;
  guint16 error_code;        /* repeated by every feed after ERROR */
  const char *error_reason;
} TwpWsParser;

/* @expect_masked: TRUE on the server (client frames MUST be masked), FALSE
 * on the client (server frames MUST NOT be). @max_message_size bounds the
 * sum of a data message's frames; exceeding it is a 1009 error raised as
 * soon as a frame header announces it, before any of it is buffered. */
void twp_ws_parser_init (TwpWsParser *parser,
                         gboolean     expect_masked,
                         guint64      max_message_size);

/* Parses from @buf (unmasking payload in place) and describes the next
 * event in @event. Returns the number of bytes of @buf consumed; call again
 * with the rest until the event is NEED_MORE. After ERROR every call
 * returns ERROR again.
 * A DATA event may consume the last bytes of @buf while its frame was
 * final: the MESSAGE_END follows from the next call, even with len 0.
 * The UTF-8 of TEXT messages is NOT validated here: text is only used for
 * the base64 subprotocol, whose decoder rejects every byte outside the
 * base64 alphabet, which is stricter. A CLOSE frame's payload is validated
 * (1002 for a bad code or a 1-byte payload, 1007 for a reason that is not
 * UTF-8). Frames after a CLOSE are still parsed; ignoring them is up to
 * the caller. */
gsize twp_ws_parser_feed (TwpWsParser *parser,
                          guint8      *buf,
                          gsize        len,
                          TwpWsEvent  *event);

/* Validates a close frame payload (RFC 6455 5.5.1, 7.4): empty, or a valid
 * status code followed by UTF-8. Returns the code (1005 when empty) or 0 when
 * invalid. */
guint16 twp_ws_parse_close_payload (const guint8  *payload,
                                    gsize          len,
                                    const char   **reason,
                                    gsize         *reason_len);

G_END_DECLS
