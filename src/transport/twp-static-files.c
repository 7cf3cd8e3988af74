/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-server"

#include "config.h"

#include "twp-static-files.h"

#include <string.h>

#include "twp-http.h"

/* Each read of a file: a few pages, never the whole bound at once. */
#define READ_SIZE (64 * 1024)

typedef struct {
  GFile *file;
  const char *content_type;      /* static */
  gboolean head_only;
  GInputStream *stream;
  GByteArray *body;
} Respond;

static void
respond_free (Respond *respond)
{
  g_clear_object (&respond->file);
  g_clear_object (&respond->stream);
  g_clear_pointer (&respond->body, g_byte_array_unref);
  g_free (respond);
}

static const char *
content_type_for (const char *path)
{
  static const struct { const char *suffix; const char *type; } types[] = {
    { ".html", "text/html; charset=utf-8" },
    { ".css", "text/css" },
    { ".js", "text/javascript" },
    { ".txt", "text/plain; charset=utf-8" },
    { ".png", "image/png" },
    { ".svg", "image/svg+xml" },
    { ".ico", "image/x-icon" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (types); i++)
    if (g_str_has_suffix (path, types[i].suffix))
      return types[i].type;
  return "application/octet-stream";
}

/* The response is the task's value: a string with its length beside it. */
typedef struct {
  char *data;
  gsize length;
} Response;

static void
response_free (Response *response)
{
  g_free (response->data);
  g_free (response);
}

static void
return_response (GTask *task,
                 char  *data,
                 gsize  length)
{
  Response *response = g_new0 (Response, 1);

  response->data = data;
  response->length = length;
  g_task_return_pointer (task, response, (GDestroyNotify) response_free);
}

/* Takes @error (may be NULL). Cancelled: the caller is going away and
 * gets no answer. Any other failure (missing, unreadable, not a regular
 * file, too large, a read error) is the plain 404 of any web server. */
static void
return_error (GTask        *task,
              GError       *error,
              guint         status)
{
  char *data;

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    {
      g_task_return_error (task, error);
      return;
    }
  g_clear_error (&error);
  data = twp_http_response_error (status);
  return_response (task, data, strlen (data));
}

static void read_next (GTask *task);

static void
bytes_read_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  Respond *respond = g_task_get_task_data (task);
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(GBytes) body = NULL;
  GError *error = NULL;
  gsize length;
  char *data;

  bytes = g_input_stream_read_bytes_finish (G_INPUT_STREAM (source), result, &error);
  if (bytes == NULL)
    {
      return_error (task, error, 404);
      return;
    }
  if (g_bytes_get_size (bytes) > 0)
    {
      g_byte_array_append (respond->body, g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes));
      /* The size was checked before opening; a file that grew since is
       * still bounded. */
      if (respond->body->len > TWP_STATIC_FILES_MAX_SIZE)
        {
          return_error (task, NULL, 404);
          return;
        }
      read_next (g_steal_pointer (&task));
      return;
    }

  body = g_byte_array_free_to_bytes (g_steal_pointer (&respond->body));
  data = twp_http_response_ok (respond->content_type, body, respond->head_only, &length);
  return_response (task, data, length);
}

/* Takes over @task. */
static void
read_next (GTask *task)
{
  Respond *respond = g_task_get_task_data (task);

  g_input_stream_read_bytes_async (respond->stream, READ_SIZE, G_PRIORITY_DEFAULT,
                                   g_task_get_cancellable (task), bytes_read_cb, task);
}

static void
file_read_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  Respond *respond = g_task_get_task_data (task);
  GError *error = NULL;

  respond->stream = G_INPUT_STREAM (g_file_read_finish (G_FILE (source), result, &error));
  if (respond->stream == NULL)
    {
      return_error (task, error, 404);
      return;
    }
  respond->body = g_byte_array_new ();
  read_next (g_steal_pointer (&task));
}

static void
info_cb (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  Respond *respond = g_task_get_task_data (task);
  g_autoptr(GFileInfo) info = NULL;
  GCancellable *cancellable;
  GError *error = NULL;

  /* Checked before opening: a FIFO or a device would block the open or
   * never end, and a large file must not be read for every anonymous
   * request. Symbolic links are followed, as before. */
  info = g_file_query_info_finish (G_FILE (source), result, &error);
  if (info == NULL || g_file_info_get_file_type (info) != G_FILE_TYPE_REGULAR ||
      g_file_info_get_size (info) > TWP_STATIC_FILES_MAX_SIZE)
    {
      return_error (task, error, 404);
      return;
    }
  cancellable = g_task_get_cancellable (task);
  g_file_read_async (respond->file, G_PRIORITY_DEFAULT, cancellable, file_read_cb, g_steal_pointer (&task));
}

void
twp_static_files_respond_async (const char          *dir,
                                const char          *method,
                                const char          *target,
                                GCancellable        *cancellable,
                                GAsyncReadyCallback  callback,
                                gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  g_autofree char *path = NULL;
  g_autofree char *file = NULL;
  Respond *respond;
  char *query;

  g_return_if_fail (dir != NULL && method != NULL && target != NULL);

  task = g_task_new (NULL, cancellable, callback, user_data);
  g_task_set_source_tag (task, twp_static_files_respond_async);

  path = g_uri_unescape_string (target, "/");
  if (path == NULL || path[0] != '/' || strstr (path, "..") != NULL)
    {
      return_error (task, NULL, path == NULL ? 400 : 404);
      return;
    }
  query = strchr (path, '?');
  if (query != NULL)
    *query = '\0';
  file = g_build_filename (dir, path, g_str_has_suffix (path, "/") ? "index.html" : NULL, NULL);

  respond = g_new0 (Respond, 1);
  respond->file = g_file_new_for_path (file);
  respond->content_type = content_type_for (file);
  respond->head_only = g_strcmp0 (method, "HEAD") == 0;
  g_task_set_task_data (task, respond, (GDestroyNotify) respond_free);
  g_file_query_info_async (respond->file, G_FILE_ATTRIBUTE_STANDARD_TYPE "," G_FILE_ATTRIBUTE_STANDARD_SIZE,
                           G_FILE_QUERY_INFO_NONE, G_PRIORITY_DEFAULT, cancellable, info_cb,
                           g_steal_pointer (&task));
}

char *
twp_static_files_respond_finish (GAsyncResult  *result,
                                 gsize         *length,
                                 GError       **error)
{
  Response *response;
  char *data;

  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == twp_static_files_respond_async, NULL);
  g_return_val_if_fail (length != NULL, NULL);

  *length = 0;
  response = g_task_propagate_pointer (G_TASK (result), error);
  if (response == NULL)
    return NULL;
  data = g_steal_pointer (&response->data);
  *length = response->length;
  response_free (response);
  return data;
}
