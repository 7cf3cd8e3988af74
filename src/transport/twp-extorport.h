/* SPDX-License-Identifier: BSD-3-Clause */
/* The PT side of tor's Extended ORPort (ext-orport-spec, prop 217
 * SAFE_COOKIE): cookie file, HMACs, metadata commands, a pure incremental
 * parser of everything tor sends before the OR payload, and the whole
 * asynchronous client exchange on a connected stream. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define TWP_EXTORPORT_ERROR (twp_extorport_error_quark ())
GQuark twp_extorport_error_quark (void);

typedef enum {
  TWP_EXTORPORT_ERROR_COOKIE,       /* cookie file unreadable or malformed */
  TWP_EXTORPORT_ERROR_AUTH_TYPE,    /* tor does not offer SAFE_COOKIE (01) */
  TWP_EXTORPORT_ERROR_SERVER_HASH,  /* tor does not know our cookie */
  TWP_EXTORPORT_ERROR_AUTH_FAILED,  /* tor rejected our client hash (00) */
  TWP_EXTORPORT_ERROR_DENIED,       /* tor answered DENY (0x1001) */
  TWP_EXTORPORT_ERROR_PROTOCOL,     /* malformed bytes, or bad metadata */
  TWP_EXTORPORT_ERROR_CLOSED,       /* EOF or a stream error mid-exchange */
  TWP_EXTORPORT_ERROR_TIMED_OUT,    /* the exchange overran its deadline */
} TwpExtOrPortError;

#define TWP_EXTORPORT_COOKIE_LEN 32
#define TWP_EXTORPORT_COOKIE_FILE_LEN 64
#define TWP_EXTORPORT_COOKIE_HEADER "! Extended ORPort Auth Cookie !\x0a"
#define TWP_EXTORPORT_NONCE_LEN 32
#define TWP_EXTORPORT_HASH_LEN 32
/* The list of auth types ends with 00; tor sends just `01 00`. */
#define TWP_EXTORPORT_MAX_AUTH_TYPES 255

#define TWP_EXTORPORT_AUTH_SAFE_COOKIE 0x01

#define TWP_EXTORPORT_SERVER_HASH_STRING "ExtORPort authentication server-to-client hash"
#define TWP_EXTORPORT_CLIENT_HASH_STRING "ExtORPort authentication client-to-server hash"

/* Commands, CMD(2,BE) LEN(2,BE) BODY. PT -> tor: */
#define TWP_EXTORPORT_CMD_DONE 0x0000
#define TWP_EXTORPORT_CMD_USERADDR 0x0001
#define TWP_EXTORPORT_CMD_TRANSPORT 0x0002
/* tor -> PT: */
#define TWP_EXTORPORT_REPLY_OKAY 0x1000
#define TWP_EXTORPORT_REPLY_DENY 0x1001
#define TWP_EXTORPORT_COMMAND_HEADER_LEN 4

/* S6: exactly 64 bytes, header TWP_EXTORPORT_COOKIE_HEADER; anything else
 * gives a COOKIE error. Read it on every connection (#15240): tor rewrites
 * it on each start. */
gboolean twp_extorport_read_cookie (const char  *path,
                                    guint8       cookie[TWP_EXTORPORT_COOKIE_LEN],
                                    GError     **error);

/* The same check on the file's contents already in memory. */
gboolean twp_extorport_parse_cookie (const guint8  *data,
                                     gsize          len,
                                     guint8         cookie[TWP_EXTORPORT_COOKIE_LEN],
                                     GError       **error);

/* HMAC-SHA256 (key = the 32-byte cookie) of the prop-217 string followed
 * by ClientNonce and ServerNonce. */
void twp_extorport_server_hash (const guint8 *cookie,
                                const guint8  client_nonce[TWP_EXTORPORT_NONCE_LEN],
                                const guint8  server_nonce[TWP_EXTORPORT_NONCE_LEN],
                                guint8        out[TWP_EXTORPORT_HASH_LEN]);
void twp_extorport_client_hash (const guint8 *cookie,
                                const guint8  client_nonce[TWP_EXTORPORT_NONCE_LEN],
                                const guint8  server_nonce[TWP_EXTORPORT_NONCE_LEN],
                                guint8        out[TWP_EXTORPORT_HASH_LEN]);

/* Compares two hashes in time independent of their contents. */
gboolean twp_extorport_hash_equal (const guint8 a[TWP_EXTORPORT_HASH_LEN],
                                   const guint8 b[TWP_EXTORPORT_HASH_LEN]);

/* Appends CMD(2,BE) LEN(2,BE) BODY to @out. @len must be at most 65535. */
void twp_extorport_append_command (GByteArray *out,
                                   guint16     command,
                                   const void *body,
                                   gsize       len);

/* TRUE if @name matches [A-Za-z_][A-Za-z0-9_]* (tor's string_is_C_identifier). */
gboolean twp_extorport_is_c_identifier (const char *name);

/* Formats @address as tor expects in USERADDR: "1.2.3.4:5678" or
 * "[v6]:port"; an IPv4-mapped IPv6 address is written as plain IPv4 so that
 * tor's per-country statistics see the real family. Port 0 is refused (X2).
 * Returns NULL with a PROTOCOL error. */
char *twp_extorport_format_useraddr (GInetSocketAddress  *address,
                                     GError             **error);

/* Returns the whole USERADDR + TRANSPORT + DONE command block, or NULL with
 * a PROTOCOL error. @client_address may be NULL: no USERADDR is sent then.
 * @transport must be a C identifier (X3). */
GBytes *twp_extorport_build_metadata (GInetSocketAddress  *client_address,
                                      const char          *transport,
                                      GError             **error);

/* Pure incremental parser of what tor sends before the OR payload:
 * auth types list, ServerHash + ServerNonce, status byte, OKAY/DENY.
 * tor's side does not depend on what we say in between, so one parser
 * instance can consume the whole tor -> PT byte stream in any chunking. */
typedef enum {
  TWP_EXTORPORT_PARSER_AUTH_TYPES,   /* types until 00 */
  TWP_EXTORPORT_PARSER_SERVER_HASH,  /* ServerHash (32) || ServerNonce (32) */
  TWP_EXTORPORT_PARSER_STATUS,       /* 01 ok, 00 failed */
  TWP_EXTORPORT_PARSER_REPLY,        /* CMD(2) LEN(2) of OKAY or DENY */
  TWP_EXTORPORT_PARSER_DONE,         /* OKAY read: the rest is OR payload */
  TWP_EXTORPORT_PARSER_FAILED,       /* an error was reported; sticky */
} TwpExtOrPortParserState;

typedef enum {
  TWP_EXTORPORT_EVENT_NONE,         /* more bytes needed */
  TWP_EXTORPORT_EVENT_AUTH_TYPES,   /* list complete, SAFE_COOKIE offered */
  TWP_EXTORPORT_EVENT_SERVER_HASH,  /* server_hash and server_nonce are set */
  TWP_EXTORPORT_EVENT_AUTH_OK,      /* status 01 */
  TWP_EXTORPORT_EVENT_OKAY,         /* reply OKAY: handshake complete */
} TwpExtOrPortEvent;

typedef struct {
  /*< private >*/
  TwpExtOrPortParserState state;
  guint n_auth_types;
  gboolean safe_cookie_offered;
  guint8 buf[TWP_EXTORPORT_HASH_LEN + TWP_EXTORPORT_NONCE_LEN];
  gsize buf_len;
  /*< public: valid after TWP_EXTORPORT_EVENT_SERVER_HASH >*/
  guint8 server_hash[TWP_EXTORPORT_HASH_LEN];
  guint8 server_nonce[TWP_EXTORPORT_NONCE_LEN];
} TwpExtOrPortParser;

void twp_extorport_parser_init (TwpExtOrPortParser *parser);

TwpExtOrPortParserState twp_extorport_parser_get_state (const TwpExtOrPortParser *parser);

/* The exact number of bytes the parser can take before its next event
 * (1 while reading auth types, whose count is unknown); 0 once DONE or
 * FAILED. Reading exactly this many never consumes OR payload. */
gsize twp_extorport_parser_wanted (const TwpExtOrPortParser *parser);

/* Consumes bytes of @data until an event happens or @data runs out, and
 * stops right after an event so the caller can answer first. Sets
 * *@consumed (bytes used) and *@event. Once DONE, consumes nothing: what
 * follows is payload. Returns FALSE with an AUTH_TYPE, AUTH_FAILED, DENIED
 * or PROTOCOL error; the parser then stays FAILED. */
gboolean twp_extorport_parser_feed (TwpExtOrPortParser  *parser,
                                    const guint8        *data,
                                    gsize                len,
                                    gsize               *consumed,
                                    TwpExtOrPortEvent   *event,
                                    GError             **error);

/* The whole client exchange on @stream, a fresh connection to tor's
 * ExtORPort: SAFE_COOKIE authentication with the cookie re-read from
 * @cookie_path, then USERADDR (if @client_address is not NULL), TRANSPORT
 * and DONE, then OKAY. Never reads past the OKAY and never writes payload.
 * @timeout_ms bounds the whole exchange (X5; 0 means no deadline) and gives
 * TWP_EXTORPORT_ERROR_TIMED_OUT, whose message names the step tor stalled
 * at (e.g. "waiting for OKAY"). Cancelling @cancellable gives
 * G_IO_ERROR_CANCELLED; every other failure is in TWP_EXTORPORT_ERROR. */
void twp_extorport_handshake_async (GIOStream           *stream,
                                    const char          *cookie_path,
                                    GInetSocketAddress  *client_address,
                                    const char          *transport,
                                    guint                timeout_ms,
                                    GCancellable        *cancellable,
                                    GAsyncReadyCallback  callback,
                                    gpointer             user_data);
gboolean twp_extorport_handshake_finish (GIOStream     *stream,
                                         GAsyncResult  *result,
                                         GError       **error);

G_END_DECLS
