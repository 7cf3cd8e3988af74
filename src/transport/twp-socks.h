/* SPDX-License-Identifier: BSD-3-Clause */
/* The SOCKS server the client transport runs on 127.0.0.1 for tor
 * (PT-CHECKLIST C9-C17): SOCKS5 with RFC 1929 username/password carrying the
 * bridge arguments, plus SOCKS4/4a as a compatibility extra. An incremental
 * parser on memory (the fuzz target's entry point) and a GIO driver on top. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* Tor splits escaped args longer than 255 bytes into UNAME + PASSWD and
 * rejects Bridge lines whose escaped args exceed 510 bytes (C10). */
#define TWP_SOCKS_MAX_ARGS_LEN 510

/* Every field has a bound, so a whole handshake is at most
 * 2 + 255 (greeting) + 2 + 255 + 1 + 255 (auth) + 5 + 255 + 2 (request)
 * = 1032 bytes for SOCKS5, and 8 + 256 + 256 = 520 bytes for SOCKS4a. */
#define TWP_SOCKS_MAX_HANDSHAKE_SIZE 1032

#define TWP_SOCKS_ERROR (twp_socks_error_quark ())

typedef enum {
  TWP_SOCKS_ERROR_PROTOCOL,
  TWP_SOCKS_ERROR_AUTH,
  TWP_SOCKS_ERROR_UNSUPPORTED_COMMAND,
  TWP_SOCKS_ERROR_UNSUPPORTED_ADDRESS,
  TWP_SOCKS_ERROR_NO_ACCEPTABLE_METHOD,
  TWP_SOCKS_ERROR_CLOSED,
} TwpSocksError;

/* SOCKS5 REP values (C14). */
typedef enum {
  TWP_SOCKS_REPLY_SUCCEEDED = 0x00,
  TWP_SOCKS_REPLY_GENERAL_FAILURE = 0x01,
  TWP_SOCKS_REPLY_NOT_ALLOWED = 0x02,
  TWP_SOCKS_REPLY_NETWORK_UNREACHABLE = 0x03,
  TWP_SOCKS_REPLY_HOST_UNREACHABLE = 0x04,
  TWP_SOCKS_REPLY_CONNECTION_REFUSED = 0x05,
  TWP_SOCKS_REPLY_TTL_EXPIRED = 0x06,
  TWP_SOCKS_REPLY_COMMAND_NOT_SUPPORTED = 0x07,
  TWP_SOCKS_REPLY_ADDRESS_TYPE_NOT_SUPPORTED = 0x08,
} TwpSocksReply;

typedef struct {
  int version;        /* 4 or 5 */
  char *args;         /* raw argument bytes (UNAME[+PASSWD] or SOCKS4 USERID),
                       * NUL-terminated copy; "" when none. NOT unescaped. */
  gsize args_len;     /* may contain embedded NULs: the validator decides */
  char *host;         /* IPv4/IPv6 literal (no brackets) or domain name
                       * (SOCKS5 ATYP 3 / SOCKS4a); a domain is raw bytes
                       * without NUL, otherwise unvalidated */
  guint16 port;       /* may be 0: the target is only a routing tag (C12) */
} TwpSocksRequest;

GQuark twp_socks_error_quark (void);

void twp_socks_request_free (TwpSocksRequest *request);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TwpSocksRequest, twp_socks_request_free)

/* Called once the args are complete (after RFC 1929 or the SOCKS4 USERID);
 * returning FALSE makes the handshake answer with auth failure (RFC 1929
 * `01 01`, SOCKS4 `00 5B`) and fail with TWP_SOCKS_ERROR_AUTH carrying the
 * validator's message. It is NOT called when a SOCKS5 client chose "no
 * authentication" (tor does so for bridges without args): the request then
 * has empty args and the caller decides after the handshake. */
typedef gboolean (*TwpSocksArgsValidator) (const char *args,
                                           gsize       args_len,
                                           gpointer    user_data,
                                           GError    **error);

/* Pure incremental parser (the fuzz target's entry point). Rules:
 * - SOCKS5 greeting: NMETHODS 1..255. 0x02 offered: pick it (C9, even when
 *   0x00 is offered too); else 0x00 offered: pick it; else `05 FF`.
 * - RFC 1929: version 01; ULEN/PLEN 0..255 (tor always sends >= 1; 0 is
 *   accepted as an empty field); args = UNAME + PASSWD, except a PASSWD of
 *   exactly one 00 byte counts as empty (C10). Success replies `01 00`.
 * - Request: CMD 01 only (else REP 07), RSV must be 00 (strict: every real
 *   client, tor included, sends 00; anything else means we are not talking
 *   to a SOCKS5 client), ATYP 1/3/4 (else REP 08), domain 1..255 bytes
 *   without NUL (else REP 01).
 * - SOCKS4: CMD 01 only; USERID and the SOCKS4a host (IP 0.0.0.x, x != 0)
 *   at most 255 bytes each plus the NUL; the host is not empty. Every
 *   SOCKS4 refusal replies `00 5B`.
 * - A version byte we do not understand (first byte, RFC 1929 version,
 *   request VER) gets no reply: we cannot know which protocol the peer
 *   expects. Every other error is answered in the peer's protocol. */
typedef struct _TwpSocksParser TwpSocksParser;

TwpSocksParser *twp_socks_parser_new (TwpSocksArgsValidator validator,
                                      gpointer              user_data);
void twp_socks_parser_free (TwpSocksParser *parser);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TwpSocksParser, twp_socks_parser_free)

typedef enum {
  TWP_SOCKS_PARSE_NEED_MORE,   /* consumed everything it could; read more input */
  TWP_SOCKS_PARSE_REPLY,       /* send the bytes appended to @reply, then feed the rest */
  TWP_SOCKS_PARSE_DONE,        /* request complete: twp_socks_parser_steal_request ();
                                * bytes after it are NOT consumed */
  TWP_SOCKS_PARSE_ERROR,       /* send the bytes appended to @reply (may be none),
                                * then close; @error set */
} TwpSocksParseResult;

/* Parses from @data and sets *@consumed to the number of bytes used. After
 * DONE or ERROR the parser is finished: further calls return ERROR. */
TwpSocksParseResult twp_socks_parser_feed (TwpSocksParser *parser,
                                           const guint8   *data,
                                           gsize           len,
                                           gsize          *consumed,
                                           GByteArray     *reply,
                                           GError        **error);

/* Returns the request after DONE (once), else NULL. */
TwpSocksRequest *twp_socks_parser_steal_request (TwpSocksParser *parser);

/* Formats the final reply: SOCKS5 `05 REP 00 01 00000000 0000` (C13, like
 * goptlib); SOCKS4 `00 5A` (SUCCEEDED) or `00 5B` (anything else) + 6 zero
 * bytes. @version is 4 or 5. */
GBytes *twp_socks_format_reply (int           version,
                                TwpSocksReply reply);

/* Which reply a failed connection gets: twp_failure_socks_reply (). */

/* Runs the server side of the handshake on @stream. Reads ahead in small
 * reads; bytes the client sent after the request are returned as
 * @leftover. Writes each intermediate reply exactly once and only then
 * parses on (C16: never pipeline replies), and writes the error reply (if
 * any) before failing. There is no timeout inside: the caller cancels
 * @cancellable on its deadline (C15). Read EOF fails with
 * TWP_SOCKS_ERROR_CLOSED. @validator_data is borrowed until @callback
 * runs. */
void twp_socks_server_handshake_async (GIOStream             *stream,
                                       TwpSocksArgsValidator  validator,
                                       gpointer               validator_data,
                                       GCancellable          *cancellable,
                                       GAsyncReadyCallback    callback,
                                       gpointer               user_data);

/* On success, *@leftover (if not NULL) is set to the bytes read past the
 * request (a GBytes, possibly empty); on error it is set to NULL. */
TwpSocksRequest *twp_socks_server_handshake_finish (GIOStream     *stream,
                                                    GAsyncResult  *result,
                                                    GBytes       **leftover,
                                                    GError       **error);

/* Writes the final reply for @request (only its version is used; @request
 * need not outlive this call). */
void twp_socks_server_reply_async (GIOStream           *stream,
                                   TwpSocksRequest     *request,
                                   TwpSocksReply        reply,
                                   GCancellable        *cancellable,
                                   GAsyncReadyCallback  callback,
                                   gpointer             user_data);
gboolean twp_socks_server_reply_finish (GIOStream     *stream,
                                        GAsyncResult  *result,
                                        GError       **error);

G_END_DECLS
