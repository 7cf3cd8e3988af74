/* SPDX-License-Identifier: BSD-3-Clause */
/* An in-process stand-in for tor 0.4.9's Extended ORPort, for tests.
 *
 * It listens on 127.0.0.1:<ephemeral>, writes a fresh 64-byte cookie file
 * (mode 0600) named "extended_orport_auth_cookie" into the directory it is
 * given, and runs tor's side of the exchange on the thread-default main
 * context of the thread that created it (PT-CHECKLIST section 5 and the
 * ExtORPort probes table of section 9):
 *
 *  - sends `01 00`; any auth type but 01 -> close silently;
 *  - reads the 32-byte ClientNonce, sends ServerHash || ServerNonce;
 *  - bad ClientHash -> sends `00`, then closes; good -> sends `01`;
 *  - reads commands: USERADDR must be "IPv4[:port]" or "[IPv6][:port]",
 *    port 1-65535 (a missing port is accepted, port 0 / hostname / garbage /
 *    NUL -> close, X2); TRANSPORT must be a C identifier (else close, X3; a
 *    repeated one replaces the previous one); unknown commands are ignored;
 *  - DONE: if bytes already follow DONE in the buffer (pipelined payload,
 *    X1) -> close without OKAY; else sends OKAY `10 00 00 00`;
 *  - then echoes the OR payload back (or only swallows it, in SINK mode),
 *    recording it.
 *
 * Nothing here blocks: tests iterate the main context (with a deadline)
 * until the counters below change. Build it together with
 * src/transport/twp-extorport.c (it uses the module's HMAC helpers). */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

typedef enum {
  TWP_TEST_EXTOR_MODE_ECHO,               /* like tor, then echo the payload */
  TWP_TEST_EXTOR_MODE_SINK,               /* like tor, then swallow the payload */
  TWP_TEST_EXTOR_MODE_AUTH_FAIL,          /* answer every client hash with `00` */
  TWP_TEST_EXTOR_MODE_DENY,               /* answer DONE with DENY `10 01 00 00` */
  TWP_TEST_EXTOR_MODE_STALL,              /* send `01 00`, then never answer */
  TWP_TEST_EXTOR_MODE_SILENT,             /* accept, then never send a byte */
  TWP_TEST_EXTOR_MODE_NO_OKAY,            /* authenticate, then never answer DONE */
  TWP_TEST_EXTOR_MODE_CLOSE_AFTER_NONCE,  /* read type + nonce, then close */
} TwpTestExtOrMode;

/* How a connection ended (or where it is). */
typedef enum {
  TWP_TEST_EXTOR_RESULT_NONE,             /* still in the handshake */
  TWP_TEST_EXTOR_RESULT_OKAY,             /* OKAY sent; relaying payload */
  TWP_TEST_EXTOR_RESULT_BAD_AUTH_TYPE,    /* closed: auth type was not 01 */
  TWP_TEST_EXTOR_RESULT_AUTH_FAILED,      /* `00` sent and closed */
  TWP_TEST_EXTOR_RESULT_BAD_USERADDR,     /* closed on USERADDR (X2) */
  TWP_TEST_EXTOR_RESULT_BAD_TRANSPORT,    /* closed on TRANSPORT (X3) */
  TWP_TEST_EXTOR_RESULT_PIPELINED,        /* closed: data after DONE (X1) */
  TWP_TEST_EXTOR_RESULT_DENIED,           /* DENY sent (DENY mode) */
  TWP_TEST_EXTOR_RESULT_CLOSED_BY_MODE,   /* closed by CLOSE_AFTER_NONCE */
  TWP_TEST_EXTOR_RESULT_PEER_CLOSED,      /* client closed before OKAY */
} TwpTestExtOrResult;

typedef struct _TwpTestExtOrServer TwpTestExtOrServer;

/* Starts listening at once. @dir must exist. Aborts the test on failure. */
TwpTestExtOrServer *twp_test_extor_server_new (const char       *dir,
                                               TwpTestExtOrMode  mode);
/* Stops listening, closes every connection and deletes the cookie file. */
void twp_test_extor_server_free (TwpTestExtOrServer *server);

guint16 twp_test_extor_server_get_port (TwpTestExtOrServer *server);
/* "127.0.0.1:<port>", as tor puts it in TOR_PT_EXTENDED_SERVER_PORT. */
const char *twp_test_extor_server_get_address (TwpTestExtOrServer *server);
const char *twp_test_extor_server_get_cookie_path (TwpTestExtOrServer *server);
/* Writes a new cookie, as tor does on every start (#15240). */
void twp_test_extor_server_regenerate_cookie (TwpTestExtOrServer *server);
void twp_test_extor_server_set_mode (TwpTestExtOrServer *server,
                                     TwpTestExtOrMode    mode);

/* Connections accepted so far. */
guint twp_test_extor_server_get_n_connections (TwpTestExtOrServer *server);
/* Connections that got OKAY. */
guint twp_test_extor_server_get_n_okay (TwpTestExtOrServer *server);
/* Connections that are closed (by either side). */
guint twp_test_extor_server_get_n_closed (TwpTestExtOrServer *server);

/* Of the most recently accepted connection; NULL if not received. */
const char *twp_test_extor_server_get_last_useraddr (TwpTestExtOrServer *server);
const char *twp_test_extor_server_get_last_transport (TwpTestExtOrServer *server);
/* TRUE once the most recent connection is closed (by either side). */
gboolean twp_test_extor_server_get_last_closed (TwpTestExtOrServer *server);
TwpTestExtOrResult twp_test_extor_server_get_last_result (TwpTestExtOrServer *server);
/* Payload received after OKAY (the first 1 MiB is kept). */
GBytes *twp_test_extor_server_get_last_payload (TwpTestExtOrServer *server);
/* Payload bytes received after OKAY, over all connections. */
guint64 twp_test_extor_server_get_bytes_relayed (TwpTestExtOrServer *server);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (TwpTestExtOrServer, twp_test_extor_server_free)

G_END_DECLS
