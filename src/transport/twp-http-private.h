/* SPDX-License-Identifier: BSD-3-Clause */
/* For the core's parsers only (twp-ws-handshake.c): the libsoup headers
 * behind a TwpHttpHeaders. */
#pragma once

#include <libsoup/soup.h>

#include "twp-http.h"

G_BEGIN_DECLS

/* Takes over @soup. */
TwpHttpHeaders     *twp_http_headers_new_take (SoupMessageHeaders *soup);
SoupMessageHeaders *twp_http_headers_get_soup (TwpHttpHeaders     *headers);

G_END_DECLS
