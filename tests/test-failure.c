/* SPDX-License-Identifier: BSD-3-Clause */
/* The one error mapping (twp-failure.c): every error domain and code it
 * knows, read three ways: the dial error it stands for, the failure reason
 * users see and the SOCKS reply tor hears. The expectations are written
 * out here, not read from the table. */
#define G_LOG_DOMAIN "test-failure"

#include "config.h"

#include "twp-args.h"
#include "twp-bridge-config.h"
#include "twp-failure.h"
#include "twp-relay.h"
#include "twp-ws-handshake.h"

#define NOT_A_DIAL (-1)

/* The raw errors of a dial's steps: each becomes a dial error, and tor
 * hears the reply of that dial error (C14). A raw error is no dial
 * failure: until a dial classifies it, users see "other". */
static void
test_step_errors (void)
{
  struct {
    GQuark domain;
    int code;
    TwpDialError dial_code;
    TwpSocksReply reply;
  } cases[] = {
    { G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED, TWP_DIAL_ERROR_REFUSED, TWP_SOCKS_REPLY_CONNECTION_REFUSED },
    { G_IO_ERROR, G_IO_ERROR_NETWORK_UNREACHABLE, TWP_DIAL_ERROR_NETWORK_UNREACHABLE,
      TWP_SOCKS_REPLY_NETWORK_UNREACHABLE },
    { G_IO_ERROR, G_IO_ERROR_HOST_UNREACHABLE, TWP_DIAL_ERROR_HOST_UNREACHABLE, TWP_SOCKS_REPLY_HOST_UNREACHABLE },
    { G_IO_ERROR, G_IO_ERROR_TIMED_OUT, TWP_DIAL_ERROR_TIMED_OUT, TWP_SOCKS_REPLY_TTL_EXPIRED },
    { G_IO_ERROR, G_IO_ERROR_PROXY_FAILED, TWP_DIAL_ERROR_PROXY, TWP_SOCKS_REPLY_GENERAL_FAILURE },
    { G_IO_ERROR, G_IO_ERROR_PROXY_AUTH_FAILED, TWP_DIAL_ERROR_PROXY, TWP_SOCKS_REPLY_GENERAL_FAILURE },
    { G_IO_ERROR, G_IO_ERROR_PROXY_NEED_AUTH, TWP_DIAL_ERROR_PROXY, TWP_SOCKS_REPLY_GENERAL_FAILURE },
    { G_IO_ERROR, G_IO_ERROR_PROXY_NOT_ALLOWED, TWP_DIAL_ERROR_PROXY, TWP_SOCKS_REPLY_GENERAL_FAILURE },
    { G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED, TWP_DIAL_ERROR_CLOSED, TWP_SOCKS_REPLY_GENERAL_FAILURE },
    { G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE, TWP_DIAL_ERROR_CLOSED, TWP_SOCKS_REPLY_GENERAL_FAILURE },
    { G_IO_ERROR, G_IO_ERROR_FAILED, TWP_DIAL_ERROR_FAILED, TWP_SOCKS_REPLY_GENERAL_FAILURE },
    { G_IO_ERROR, G_IO_ERROR_NOT_FOUND, TWP_DIAL_ERROR_FAILED, TWP_SOCKS_REPLY_GENERAL_FAILURE },
    { G_RESOLVER_ERROR, G_RESOLVER_ERROR_NOT_FOUND, TWP_DIAL_ERROR_DNS, TWP_SOCKS_REPLY_HOST_UNREACHABLE },
    { G_RESOLVER_ERROR, G_RESOLVER_ERROR_TEMPORARY_FAILURE, TWP_DIAL_ERROR_DNS, TWP_SOCKS_REPLY_HOST_UNREACHABLE },
    { G_RESOLVER_ERROR, G_RESOLVER_ERROR_INTERNAL, TWP_DIAL_ERROR_DNS, TWP_SOCKS_REPLY_HOST_UNREACHABLE },
    { G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE, TWP_DIAL_ERROR_TLS_CERTIFICATE, TWP_SOCKS_REPLY_GENERAL_FAILURE },
    { G_TLS_ERROR, G_TLS_ERROR_HANDSHAKE, TWP_DIAL_ERROR_TLS, TWP_SOCKS_REPLY_GENERAL_FAILURE },
    { G_TLS_ERROR, G_TLS_ERROR_NOT_TLS, TWP_DIAL_ERROR_TLS, TWP_SOCKS_REPLY_GENERAL_FAILURE },
    { TWP_WS_HANDSHAKE_ERROR, TWP_WS_HANDSHAKE_ERROR_STATUS, TWP_DIAL_ERROR_HTTP_STATUS,
      TWP_SOCKS_REPLY_GENERAL_FAILURE },
    { TWP_WS_HANDSHAKE_ERROR, TWP_WS_HANDSHAKE_ERROR_BAD_ACCEPT, TWP_DIAL_ERROR_HANDSHAKE,
      TWP_SOCKS_REPLY_GENERAL_FAILURE },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GError) error = g_error_new_literal (cases[i].domain, cases[i].code, "x");

      g_test_message ("%s %d", g_quark_to_string (cases[i].domain), cases[i].code);
      g_assert_cmpint (twp_failure_dial_code (error), ==, cases[i].dial_code);
      g_assert_cmpint (twp_failure_socks_reply (error), ==, cases[i].reply);
      g_assert_cmpint (twp_failure_reason_from_error (error), ==, TWP_FAILURE_OTHER);
    }
}

/* Every dial error: its reason and its reply. */
static void
test_dial_errors (void)
{
  struct {
    TwpDialError code;
    TwpFailureReason reason;
    const char *reason_text;
    TwpSocksReply reply;
  } cases[] = {
    { TWP_DIAL_ERROR_FAILED, TWP_FAILURE_OTHER, "other", TWP_SOCKS_REPLY_GENERAL_FAILURE },
    { TWP_DIAL_ERROR_DNS, TWP_FAILURE_DNS, "dns", TWP_SOCKS_REPLY_HOST_UNREACHABLE },
    { TWP_DIAL_ERROR_REFUSED, TWP_FAILURE_REFUSED, "refused", TWP_SOCKS_REPLY_CONNECTION_REFUSED },
    { TWP_DIAL_ERROR_NETWORK_UNREACHABLE, TWP_FAILURE_UNREACHABLE, "unreachable",
      TWP_SOCKS_REPLY_NETWORK_UNREACHABLE },
    { TWP_DIAL_ERROR_HOST_UNREACHABLE, TWP_FAILURE_UNREACHABLE, "unreachable", TWP_SOCKS_REPLY_HOST_UNREACHABLE },
    { TWP_DIAL_ERROR_TIMED_OUT, TWP_FAILURE_TIMED_OUT, "timed-out", TWP_SOCKS_REPLY_TTL_EXPIRED },
    { TWP_DIAL_ERROR_PROXY, TWP_FAILURE_PROXY, "proxy", TWP_SOCKS_REPLY_GENERAL_FAILURE },
    { TWP_DIAL_ERROR_TLS, TWP_FAILURE_TLS, "tls", TWP_SOCKS_REPLY_GENERAL_FAILURE },
    { TWP_DIAL_ERROR_TLS_CERTIFICATE, TWP_FAILURE_TLS_CERTIFICATE, "tls-certificate",
      TWP_SOCKS_REPLY_GENERAL_FAILURE },
    { TWP_DIAL_ERROR_HTTP_STATUS, TWP_FAILURE_HTTP_STATUS, "http-status", TWP_SOCKS_REPLY_GENERAL_FAILURE },
    { TWP_DIAL_ERROR_HANDSHAKE, TWP_FAILURE_HANDSHAKE, "handshake", TWP_SOCKS_REPLY_GENERAL_FAILURE },
    { TWP_DIAL_ERROR_CLOSED, TWP_FAILURE_CLOSED, "closed", TWP_SOCKS_REPLY_GENERAL_FAILURE },
    /* A code from a newer dial than this table: failed, not out of bounds. */
    { TWP_DIAL_ERROR_CLOSED + 1, TWP_FAILURE_OTHER, "other", TWP_SOCKS_REPLY_GENERAL_FAILURE },
    { -1, TWP_FAILURE_OTHER, "other", TWP_SOCKS_REPLY_GENERAL_FAILURE },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GError) error = g_error_new_literal (TWP_DIAL_ERROR, cases[i].code, "x");
      TwpFailureReason reason;

      g_test_message ("dial error %d", cases[i].code);
      reason = twp_failure_reason_from_error (error);
      g_assert_cmpint (reason, ==, cases[i].reason);
      g_assert_cmpstr (twp_failure_reason_to_string (reason), ==, cases[i].reason_text);
      g_assert_cmpint (twp_failure_socks_reply (error), ==, cases[i].reply);
      if (cases[i].code >= TWP_DIAL_ERROR_FAILED && cases[i].code <= TWP_DIAL_ERROR_CLOSED)
        g_assert_cmpint (twp_failure_dial_code (error), ==, cases[i].code);
      else
        g_assert_cmpint (twp_failure_dial_code (error), ==, TWP_DIAL_ERROR_FAILED);
    }
}

/* Errors that never come from a dial: bad bridge arguments, the end of a
 * tunnel, and none at all. */
static void
test_other_errors (void)
{
  struct {
    GQuark domain;
    int code;
    TwpFailureReason reason;
    TwpSocksReply reply;
  } cases[] = {
    { TWP_BRIDGE_CONFIG_ERROR, 0, TWP_FAILURE_BAD_ARGUMENTS, TWP_SOCKS_REPLY_NOT_ALLOWED },
    { TWP_ARGS_ERROR, 0, TWP_FAILURE_BAD_ARGUMENTS, TWP_SOCKS_REPLY_NOT_ALLOWED },
    { TWP_SOCKS_ERROR, TWP_SOCKS_ERROR_AUTH, TWP_FAILURE_BAD_ARGUMENTS, TWP_SOCKS_REPLY_NOT_ALLOWED },
    { TWP_SOCKS_ERROR, TWP_SOCKS_ERROR_PROTOCOL, TWP_FAILURE_OTHER, TWP_SOCKS_REPLY_GENERAL_FAILURE },
    { TWP_RELAY_ERROR, TWP_RELAY_ERROR_PEER_CLOSED, TWP_FAILURE_CLOSED_BY_PEER, TWP_SOCKS_REPLY_GENERAL_FAILURE },
    { TWP_RELAY_ERROR, TWP_RELAY_ERROR_PEER_PROTOCOL, TWP_FAILURE_PROTOCOL, TWP_SOCKS_REPLY_GENERAL_FAILURE },
    { TWP_RELAY_ERROR, TWP_RELAY_ERROR_ABNORMAL, TWP_FAILURE_PROTOCOL, TWP_SOCKS_REPLY_GENERAL_FAILURE },
    { TWP_RELAY_ERROR, TWP_RELAY_ERROR_IDLE, TWP_FAILURE_PROTOCOL, TWP_SOCKS_REPLY_GENERAL_FAILURE },
    { G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_PARSE, TWP_FAILURE_OTHER, TWP_SOCKS_REPLY_GENERAL_FAILURE },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GError) error = g_error_new_literal (cases[i].domain, cases[i].code, "x");

      g_test_message ("%s %d", g_quark_to_string (cases[i].domain), cases[i].code);
      g_assert_cmpint (twp_failure_reason_from_error (error), ==, cases[i].reason);
      g_assert_cmpint (twp_failure_socks_reply (error), ==, cases[i].reply);
      g_assert_cmpint (twp_failure_dial_code (error), ==, TWP_DIAL_ERROR_FAILED);
    }

  g_assert_cmpint (twp_failure_reason_from_error (NULL), ==, TWP_FAILURE_NONE);
  g_assert_cmpstr (twp_failure_reason_to_string (TWP_FAILURE_NONE), ==, "none");
  g_assert_cmpint (twp_failure_socks_reply (NULL), ==, TWP_SOCKS_REPLY_GENERAL_FAILURE);
  g_assert_cmpstr (twp_failure_reason_to_string (TWP_FAILURE_PROTOCOL), ==, "protocol");
  g_assert_cmpstr (twp_failure_reason_to_string (TWP_FAILURE_CLOSED_BY_PEER), ==, "closed-by-peer");
  g_assert_cmpstr (twp_failure_reason_to_string (TWP_FAILURE_BAD_ARGUMENTS), ==, "bad-arguments");
  g_assert_cmpstr (twp_failure_reason_to_string (TWP_FAILURE_OTHER), ==, "other");
  g_assert_cmpstr (twp_failure_reason_to_string (12345), ==, "other");
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/failure/step-errors", test_step_errors);
  g_test_add_func ("/failure/dial-errors", test_dial_errors);
  g_test_add_func ("/failure/other-errors", test_other_errors);

  return g_test_run ();
}
