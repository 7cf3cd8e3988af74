/* SPDX-License-Identifier: BSD-3-Clause */
/* The server's answer to an ordinary GET or HEAD when static-dir= is set:
 * the file, read asynchronously (a slow disk holds up only the request
 * that waits for it), or the 404 any web server gives. Files are bounded
 * in size; only regular files are opened. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* Largest file served. */
#define TWP_STATIC_FILES_MAX_SIZE (1024 * 1024)

/* Answers @method ("GET" or "HEAD") for @target, the request target as
 * sent (path?query), from @dir: "/" and other paths ending in "/" mean
 * their index.html. */
void  twp_static_files_respond_async  (const char           *dir,
                                       const char           *method,
                                       const char           *target,
                                       GCancellable         *cancellable,
                                       GAsyncReadyCallback   callback,
                                       gpointer              user_data);
/* A complete HTTP response (twp_http_response_ok() with the file, or
 * twp_http_response_error() with 404; 400 for a target that does not
 * unescape to a path), its size in @length: it may hold NUL bytes. NULL
 * only when cancelled. */
char *twp_static_files_respond_finish (GAsyncResult         *result,
                                       gsize                *length,
                                       GError              **error);

G_END_DECLS
