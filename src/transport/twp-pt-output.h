/* SPDX-License-Identifier: BSD-3-Clause */
/* The managed-mode stdout line protocol (PT-CHECKLIST G2, G4-G6, L1-L4, L7,
 * K2): one write(2) per line, every line validated, nothing state-gated
 * after "*METHODS DONE" (B1), EPIPE taken as "tor is gone". Thread-safe. */
#pragma once

#include <gio/gio.h>

#include "twp-args.h"

G_BEGIN_DECLS

typedef struct _TwpPtOutput TwpPtOutput;

typedef enum {
  TWP_PT_LOG_ERROR,
  TWP_PT_LOG_WARNING,
  TWP_PT_LOG_NOTICE,
  TWP_PT_LOG_INFO,
  TWP_PT_LOG_DEBUG,
} TwpPtLogSeverity;

/* Borrows @fd (usually STDOUT_FILENO); it is not closed. */
TwpPtOutput *twp_pt_output_new (int fd);
void         twp_pt_output_free (TwpPtOutput *out);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TwpPtOutput, twp_pt_output_free)

/* Writes "<keyword>[ <args>]\n". Refuses (FALSE, g_debug) a keyword outside
 * [A-Za-z0-9_-], args outside printable US-ASCII (G4), any keyword but LOG
 * and STATUS after a "*METHODS DONE" (G6/B1) and method/proxy lines before
 * "VERSION" (G2). Also FALSE when the pipe is gone: then
 * twp_pt_output_is_broken() is TRUE and later calls do nothing. */
gboolean twp_pt_output_line (TwpPtOutput *out,
                             const char  *keyword,
                             const char  *args);
gboolean twp_pt_output_is_broken (TwpPtOutput *out);
/* A "CMETHODS DONE" or "SMETHODS DONE" was written. */
gboolean twp_pt_output_is_done (TwpPtOutput *out);

/* L7: at most @burst LOG lines at once, refilled by one every
 * @refill_interval_us. Default 10 and 1 s. */
void twp_pt_output_set_log_rate (TwpPtOutput *out,
                                 guint        burst,
                                 gint64       refill_interval_us);

/* Conveniences, one line each. Free-text messages are cut to one line of
 * printable ASCII (other bytes become '?'). A line that tor would take as
 * malformed (bad name, port 0, ARGS with spaces) is not written; a method
 * line falls back to the matching *METHOD-ERROR when the name is valid. */
void twp_pt_output_version (TwpPtOutput *out);
void twp_pt_output_version_error (TwpPtOutput *out);
void twp_pt_output_env_error (TwpPtOutput *out,
                              const char  *message);
void twp_pt_output_proxy_done (TwpPtOutput *out);
void twp_pt_output_proxy_error (TwpPtOutput *out,
                                const char  *message);
void twp_pt_output_cmethod (TwpPtOutput        *out,
                            const char         *transport,
                            const char         *socks_version,
                            GInetSocketAddress *address);
void twp_pt_output_cmethod_error (TwpPtOutput *out,
                                  const char  *transport,
                                  const char  *message);
void twp_pt_output_cmethods_done (TwpPtOutput *out);
/* @args may be NULL; non-empty args become the first option, "ARGS:..." (S8). */
void twp_pt_output_smethod (TwpPtOutput        *out,
                            const char         *transport,
                            GInetSocketAddress *address,
                            TwpArgs            *args);
void twp_pt_output_smethod_error (TwpPtOutput *out,
                                  const char  *transport,
                                  const char  *message);
void twp_pt_output_smethods_done (TwpPtOutput *out);
/* G12: values must be printable, without spaces, quotes, '\' or '='. */
void twp_pt_output_status_version (TwpPtOutput *out,
                                   const char  *implementation,
                                   const char  *version);

/* LOG SEVERITY=<sev> MESSAGE=<quoted C string> (L1-L4), rate limited (L7):
 * lines over the budget are dropped and their count is reported in the
 * next LOG line that passes. */
void twp_pt_output_log (TwpPtOutput      *out,
                        TwpPtLogSeverity  severity,
                        const char       *format,
                        ...) G_GNUC_PRINTF (3, 4);

/* L3: '"' + bytes 32, 33, 35-91, 93-126 as they are, every other byte as
 * \ooo (3 octal digits) + '"'. Pure ASCII, round-trips any bytes but NUL. */
char *twp_pt_encode_cstring (const char *str);

G_END_DECLS
