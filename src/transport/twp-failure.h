/* SPDX-License-Identifier: BSD-3-Clause */
/* Why a connection to a bridge failed, in one table: the dial error an
 * error from a dial's step stands for, the failure reason users see
 * (LastFailureReason) and the SOCKS reply tor hears (C14). */
#pragma once

#include <gio/gio.h>

#include "twp-dial.h"
#include "twp-socks.h"
#include "twp-state.h"

G_BEGIN_DECLS

/* The TWP_DIAL_ERROR code of an error from a dial's step (resolver, TCP,
 * upstream proxy, TLS, HTTP upgrade); a TWP_DIAL_ERROR keeps its code;
 * anything else is TWP_DIAL_ERROR_FAILED. */
TwpDialError     twp_failure_dial_code          (const GError *error);

/* What users see for the error that ended an attempt or a tunnel: dial
 * errors by their code, invalid bridge arguments, the relay's protocol
 * and close errors; NULL is TWP_FAILURE_NONE and anything else (an I/O
 * error inside a tunnel) TWP_FAILURE_OTHER. */
TwpFailureReason twp_failure_reason_from_error  (const GError *error);
const char      *twp_failure_reason_to_string   (TwpFailureReason reason);

/* The SOCKS reply for a connection that could not be made: dial errors
 * (and the raw errors of a dial's step, as twp_failure_dial_code () reads
 * them) by their cause, invalid bridge arguments "not allowed", anything
 * else (NULL too) "general failure". */
TwpSocksReply    twp_failure_socks_reply        (const GError *error);

G_END_DECLS
