/* SPDX-License-Identifier: BSD-3-Clause */
/* The "base64" WebSocket subprotocol: base64 applied to whole messages, so
 * padding may appear only at the very end of a message while a message may
 * arrive split across frames at any character. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define TWP_BASE64_ERROR (twp_base64_error_quark ())
GQuark twp_base64_error_quark (void);

typedef enum {
  TWP_BASE64_ERROR_INVALID_CHARACTER,
  TWP_BASE64_ERROR_MISPLACED_PADDING,
  TWP_BASE64_ERROR_TRUNCATED,
} TwpBase64Error;

/* Output size of encoding @n bytes. */
#define TWP_BASE64_ENCODED_SIZE(n) ((((gsize) (n) + 2) / 3) * 4)
/* Worst-case output of feeding @n characters (plus up to 3 carried over). */
#define TWP_BASE64_DECODED_MAX(n) ((((gsize) (n) + 3) / 4) * 3)

typedef struct {
  /*< private >*/
  guint8 carry[4];
  guint carry_len;
  gboolean padded;   /* padding seen: only the end of the message may follow */
} TwpBase64Decoder;

/* Encodes @len bytes of @in as one padded base64 string into @out (which
 * has room for TWP_BASE64_ENCODED_SIZE (len)). Returns the length written. */
gsize twp_base64_encode (const guint8 *in,
                         gsize         len,
                         char         *out);

/* Starts a new message. */
void twp_base64_decoder_init (TwpBase64Decoder *decoder);

/* Decodes the next @len characters of the current message into @out (room
 * for TWP_BASE64_DECODED_MAX (len)), carrying incomplete quanta over to the
 * next call. Strict alphabet (RFC 4648 section 4), no whitespace; non-zero
 * trailing bits before padding are accepted (as Go's StdEncoding does).
 * After an error the message is lost: call twp_base64_decoder_init(). */
gboolean twp_base64_decoder_feed (TwpBase64Decoder  *decoder,
                                  const guint8      *in,
                                  gsize              len,
                                  guint8            *out,
                                  gsize             *out_len,
                                  GError           **error);

/* Ends the message: fails if characters of an incomplete quantum remain.
 * Resets the decoder for the next message. */
gboolean twp_base64_decoder_finish (TwpBase64Decoder  *decoder,
                                    GError           **error);

G_END_DECLS
