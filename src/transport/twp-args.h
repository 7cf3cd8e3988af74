/* SPDX-License-Identifier: BSD-3-Clause */
/* Ordered key=value lists and the three escaping grammars of pt-spec as tor
 * really speaks them (PT-CHECKLIST 8.1): SOCKS args (C11), server transport
 * options (S3) and SMETHOD ARGS (S8). Pure functions on memory. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Ordered list of key=value; keys may repeat. */
typedef struct _TwpArgs TwpArgs;

TwpArgs    *twp_args_new (void);
void        twp_args_free (TwpArgs *args);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TwpArgs, twp_args_free)

void        twp_args_add (TwpArgs    *args,
                          const char *key,
                          const char *value);
guint       twp_args_get_length (TwpArgs *args);
const char *twp_args_get_key (TwpArgs *args,
                              guint    i);
const char *twp_args_get_value (TwpArgs *args,
                                guint    i);
/* First value for @key, or NULL. */
const char *twp_args_lookup (TwpArgs    *args,
                             const char *key);
guint       twp_args_count (TwpArgs    *args,
                            const char *key);
/* TRUE when both lists hold the same pairs in the same order. */
gboolean    twp_args_equal (TwpArgs *a,
                            TwpArgs *b);

#define TWP_ARGS_ERROR (twp_args_error_quark ())
GQuark twp_args_error_quark (void);

typedef enum {
  TWP_ARGS_ERROR_INVALID,
} TwpArgsError;

/* C11: the SOCKS username(+password) string as tor sends it. Items are split
 * at unescaped ';', the key ends at the first unescaped '=', "\X" stands for
 * X. A trailing lone '\', an empty key, an item without '=' or a NUL byte is
 * an error. @str holds @len raw bytes (need not be NUL-terminated). An empty
 * string gives an empty list. */
TwpArgs    *twp_args_parse_socks (const char  *str,
                                  gsize        len,
                                  GError     **error);

/* S3: TOR_PT_SERVER_TRANSPORT_OPTIONS, "name:k=v;name:k=v" with ':', ';' and
 * '\' escaped. Returns transport name (char *) -> TwpArgs * (both owned by
 * the table). NULL or "" gives an empty table. */
GHashTable *twp_args_parse_server_options (const char  *str,
                                           GError     **error);

/* S8: ARGS for an SMETHOD line, without the "ARGS:" prefix: k=v pairs joined
 * with ',', with '=', ',' and '\' escaped in keys and values. */
char       *twp_args_format_smethod (TwpArgs *args);

/* The inverse of twp_args_format_smethod(): split at unescaped ',', key at
 * the first unescaped '='. For tests and for reading ARGS back. */
TwpArgs    *twp_args_parse_smethod (const char  *str,
                                    GError     **error);

G_END_DECLS
