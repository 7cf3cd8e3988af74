/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-failure"

#include "config.h"

#include "twp-failure.h"

#include "twp-args.h"
#include "twp-bridge-config.h"
#include "twp-relay.h"
#include "twp-ws-handshake.h"

#define ANY_CODE (-1)

/* The raw errors of a dial's steps and the dial error each stands for;
 * the first row that matches wins, so a domain's specific codes come
 * before its ANY_CODE row. GIO's closed connection is also its broken
 * pipe (G_IO_ERROR_BROKEN_PIPE has the same value). */
static const struct {
  GQuark (*domain) (void);
  int code;
  TwpDialError dial_code;
} step_errors[] = {
  { g_resolver_error_quark, ANY_CODE, TWP_DIAL_ERROR_DNS },
  { g_tls_error_quark, G_TLS_ERROR_BAD_CERTIFICATE, TWP_DIAL_ERROR_TLS_CERTIFICATE },
  { g_tls_error_quark, ANY_CODE, TWP_DIAL_ERROR_TLS },
  { twp_ws_handshake_error_quark, TWP_WS_HANDSHAKE_ERROR_STATUS, TWP_DIAL_ERROR_HTTP_STATUS },
  { twp_ws_handshake_error_quark, ANY_CODE, TWP_DIAL_ERROR_HANDSHAKE },
  { g_io_error_quark, G_IO_ERROR_CONNECTION_REFUSED, TWP_DIAL_ERROR_REFUSED },
  { g_io_error_quark, G_IO_ERROR_NETWORK_UNREACHABLE, TWP_DIAL_ERROR_NETWORK_UNREACHABLE },
  { g_io_error_quark, G_IO_ERROR_HOST_UNREACHABLE, TWP_DIAL_ERROR_HOST_UNREACHABLE },
  { g_io_error_quark, G_IO_ERROR_TIMED_OUT, TWP_DIAL_ERROR_TIMED_OUT },
  { g_io_error_quark, G_IO_ERROR_PROXY_FAILED, TWP_DIAL_ERROR_PROXY },
  { g_io_error_quark, G_IO_ERROR_PROXY_AUTH_FAILED, TWP_DIAL_ERROR_PROXY },
  { g_io_error_quark, G_IO_ERROR_PROXY_NEED_AUTH, TWP_DIAL_ERROR_PROXY },
  { g_io_error_quark, G_IO_ERROR_PROXY_NOT_ALLOWED, TWP_DIAL_ERROR_PROXY },
  { g_io_error_quark, G_IO_ERROR_CONNECTION_CLOSED, TWP_DIAL_ERROR_CLOSED },
};

/* Each dial error as users and tor see it. C14: the reason tor logs
 * matches the cause: resolver failures and unreachable hosts are "host
 * unreachable", timeouts "TTL expired" (tor's own convention); what SOCKS
 * has no word for (TLS, HTTP, proxy) is a general failure. */
static const struct {
  TwpFailureReason reason;
  TwpSocksReply reply;
} dial_failures[] = {
  [TWP_DIAL_ERROR_FAILED] = { TWP_FAILURE_OTHER, TWP_SOCKS_REPLY_GENERAL_FAILURE },
  [TWP_DIAL_ERROR_DNS] = { TWP_FAILURE_DNS, TWP_SOCKS_REPLY_HOST_UNREACHABLE },
  [TWP_DIAL_ERROR_REFUSED] = { TWP_FAILURE_REFUSED, TWP_SOCKS_REPLY_CONNECTION_REFUSED },
  [TWP_DIAL_ERROR_NETWORK_UNREACHABLE] = { TWP_FAILURE_UNREACHABLE, TWP_SOCKS_REPLY_NETWORK_UNREACHABLE },
  [TWP_DIAL_ERROR_HOST_UNREACHABLE] = { TWP_FAILURE_UNREACHABLE, TWP_SOCKS_REPLY_HOST_UNREACHABLE },
  [TWP_DIAL_ERROR_TIMED_OUT] = { TWP_FAILURE_TIMED_OUT, TWP_SOCKS_REPLY_TTL_EXPIRED },
  [TWP_DIAL_ERROR_PROXY] = { TWP_FAILURE_PROXY, TWP_SOCKS_REPLY_GENERAL_FAILURE },
  [TWP_DIAL_ERROR_TLS] = { TWP_FAILURE_TLS, TWP_SOCKS_REPLY_GENERAL_FAILURE },
  [TWP_DIAL_ERROR_TLS_CERTIFICATE] = { TWP_FAILURE_TLS_CERTIFICATE, TWP_SOCKS_REPLY_GENERAL_FAILURE },
  [TWP_DIAL_ERROR_HTTP_STATUS] = { TWP_FAILURE_HTTP_STATUS, TWP_SOCKS_REPLY_GENERAL_FAILURE },
  [TWP_DIAL_ERROR_HANDSHAKE] = { TWP_FAILURE_HANDSHAKE, TWP_SOCKS_REPLY_GENERAL_FAILURE },
  [TWP_DIAL_ERROR_CLOSED] = { TWP_FAILURE_CLOSED, TWP_SOCKS_REPLY_GENERAL_FAILURE },
};

/* Bridge arguments tor passed that we cannot use: the SOCKS validator's
 * refusal, the argument syntax, the bridge line's meaning. */
static gboolean
is_bad_arguments (const GError *error)
{
  return error->domain == TWP_BRIDGE_CONFIG_ERROR ||
         error->domain == TWP_ARGS_ERROR ||
         g_error_matches (error, TWP_SOCKS_ERROR, TWP_SOCKS_ERROR_AUTH);
}

/* -1 when @error is neither a dial error nor one of a dial's steps. */
static int
lookup_dial_code (const GError *error)
{
  if (error->domain == TWP_DIAL_ERROR)
    return error->code >= 0 && (gsize) error->code < G_N_ELEMENTS (dial_failures)
             ? error->code : TWP_DIAL_ERROR_FAILED;

  for (gsize i = 0; i < G_N_ELEMENTS (step_errors); i++)
    if (error->domain == step_errors[i].domain () &&
        (step_errors[i].code == ANY_CODE || error->code == step_errors[i].code))
      return step_errors[i].dial_code;
  return -1;
}

TwpDialError
twp_failure_dial_code (const GError *error)
{
  int code;

  g_return_val_if_fail (error != NULL, TWP_DIAL_ERROR_FAILED);

  code = lookup_dial_code (error);
  return code >= 0 ? code : TWP_DIAL_ERROR_FAILED;
}

TwpFailureReason
twp_failure_reason_from_error (const GError *error)
{
  if (error == NULL)
    return TWP_FAILURE_NONE;
  if (is_bad_arguments (error))
    return TWP_FAILURE_BAD_ARGUMENTS;
  if (error->domain == TWP_RELAY_ERROR)
    return error->code == TWP_RELAY_ERROR_PEER_CLOSED ? TWP_FAILURE_CLOSED_BY_PEER : TWP_FAILURE_PROTOCOL;
  /* Only errors a dial classified: a raw I/O error here ended a tunnel,
   * and "closed during the handshake" would misname it. */
  if (error->domain == TWP_DIAL_ERROR)
    return dial_failures[lookup_dial_code (error)].reason;
  return TWP_FAILURE_OTHER;
}

TwpSocksReply
twp_failure_socks_reply (const GError *error)
{
  int code;

  if (error == NULL)
    return TWP_SOCKS_REPLY_GENERAL_FAILURE;
  if (is_bad_arguments (error))
    return TWP_SOCKS_REPLY_NOT_ALLOWED;
  code = lookup_dial_code (error);
  return code >= 0 ? dial_failures[code].reply : TWP_SOCKS_REPLY_GENERAL_FAILURE;
}

const char *
twp_failure_reason_to_string (TwpFailureReason reason)
{
  switch (reason)
    {
    case TWP_FAILURE_NONE:
      return "none";
    case TWP_FAILURE_BAD_ARGUMENTS:
      return "bad-arguments";
    case TWP_FAILURE_DNS:
      return "dns";
    case TWP_FAILURE_REFUSED:
      return "refused";
    case TWP_FAILURE_UNREACHABLE:
      return "unreachable";
    case TWP_FAILURE_TIMED_OUT:
      return "timed-out";
    case TWP_FAILURE_PROXY:
      return "proxy";
    case TWP_FAILURE_TLS:
      return "tls";
    case TWP_FAILURE_TLS_CERTIFICATE:
      return "tls-certificate";
    case TWP_FAILURE_HTTP_STATUS:
      return "http-status";
    case TWP_FAILURE_HANDSHAKE:
      return "handshake";
    case TWP_FAILURE_CLOSED:
      return "closed";
    case TWP_FAILURE_PROTOCOL:
      return "protocol";
    case TWP_FAILURE_CLOSED_BY_PEER:
      return "closed-by-peer";
    case TWP_FAILURE_OTHER:
    default:
      return "other";
    }
}
