/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-memory-guard"

#include "config.h"

#include "twp-memory-guard.h"

#include <string.h>

#include "twp-log.h"

/* Reading three small files costs a few microseconds, but a burst of
 * connections must not read them for each one. */
#define CACHE_US G_USEC_PER_SEC

struct _TwpMemoryGuard
{
  char *dir;
  char *mount;
  gboolean v2;

  gint64 read_at;      /* monotonic; 0: never */
  gboolean over;       /* shedding now */
};

/* The part of a cgroup path below the root that mountinfo says is
 * mounted (a container sees only its own subtree). */
static char *
join_cgroup (const char *mount_point,
             const char *mount_root,
             const char *path)
{
  gsize root_len = strlen (mount_root);

  if (g_str_equal (mount_root, "/"))
    root_len = 0;
  else if (strncmp (path, mount_root, root_len) != 0 || (path[root_len] != '/' && path[root_len] != '\0'))
    root_len = 0;
  return g_build_filename (mount_point, path + root_len, NULL);
}

char *
twp_memory_guard_find_cgroup (const char  *proc_cgroup,
                              const char  *mountinfo,
                              char       **mount,
                              gboolean    *v2)
{
  g_auto(GStrv) cgroup_lines = NULL;
  g_auto(GStrv) mount_lines = NULL;
  const char *v1_path = NULL;
  const char *v2_path = NULL;

  g_return_val_if_fail (proc_cgroup != NULL && mountinfo != NULL, NULL);

  /* "ID:CONTROLLERS:PATH"; v2 is "0::PATH". */
  cgroup_lines = g_strsplit (proc_cgroup, "\n", -1);
  for (guint i = 0; cgroup_lines[i] != NULL; i++)
    {
      g_auto(GStrv) parts = g_strsplit (cgroup_lines[i], ":", 3);
      g_auto(GStrv) controllers = NULL;

      if (g_strv_length (parts) != 3 || parts[2][0] != '/')
        continue;
      if (g_str_equal (parts[0], "0") && parts[1][0] == '\0')
        {
          v2_path = strstr (cgroup_lines[i], "::") + 2;
          continue;
        }
      controllers = g_strsplit (parts[1], ",", -1);
      if (g_strv_contains ((const char *const *) controllers, "memory"))
        v1_path = strchr (strchr (cgroup_lines[i], ':') + 1, ':') + 1;
    }
  if (v1_path == NULL && v2_path == NULL)
    return NULL;

  /* "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPEROPTIONS" */
  mount_lines = g_strsplit (mountinfo, "\n", -1);
  for (int pass = 0; pass < 2; pass++)
    {
      /* The v1 memory controller first: where both exist, it is the one
       * that limits (v2 then has no memory controller). */
      gboolean want_v2 = pass == 1;
      const char *path = want_v2 ? v2_path : v1_path;

      if (path == NULL)
        continue;
      for (guint i = 0; mount_lines[i] != NULL; i++)
        {
          g_auto(GStrv) fields = g_strsplit (mount_lines[i], " ", -1);
          guint n = g_strv_length (fields);
          guint dash = 0;

          for (guint j = 6; j < n; j++)
            if (g_str_equal (fields[j], "-"))
              {
                dash = j;
                break;
              }
          if (dash == 0 || dash + 3 >= n)
            continue;
          if (want_v2)
            {
              if (!g_str_equal (fields[dash + 1], "cgroup2"))
                continue;
            }
          else
            {
              g_auto(GStrv) options = NULL;

              if (!g_str_equal (fields[dash + 1], "cgroup"))
                continue;
              options = g_strsplit (fields[dash + 3], ",", -1);
              if (!g_strv_contains ((const char *const *) options, "memory"))
                continue;
            }
          {
            /* mountinfo escapes spaces and such as \040. */
            g_autofree char *root = g_strcompress (fields[3]);
            g_autofree char *point = g_strcompress (fields[4]);

            if (mount != NULL)
              *mount = g_strdup (point);
            if (v2 != NULL)
              *v2 = want_v2;
            return join_cgroup (point, root, path);
          }
        }
    }
  return NULL;
}

TwpMemoryGuard *
twp_memory_guard_new (const char *dir,
                      const char *mount,
                      gboolean    v2)
{
  TwpMemoryGuard *self;

  g_return_val_if_fail (dir != NULL && mount != NULL, NULL);

  self = g_new0 (TwpMemoryGuard, 1);
  self->dir = g_strdup (dir);
  self->mount = g_strdup (mount);
  self->v2 = v2;
  return self;
}

TwpMemoryGuard *
twp_memory_guard_new_self (void)
{
  g_autofree char *proc_cgroup = NULL;
  g_autofree char *mountinfo = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *mount = NULL;
  gboolean v2 = FALSE;

  if (!g_file_get_contents ("/proc/self/cgroup", &proc_cgroup, NULL, NULL) ||
      !g_file_get_contents ("/proc/self/mountinfo", &mountinfo, NULL, NULL))
    return NULL;
  dir = twp_memory_guard_find_cgroup (proc_cgroup, mountinfo, &mount, &v2);
  if (dir == NULL || !g_file_test (dir, G_FILE_TEST_IS_DIR))
    return NULL;
  return twp_memory_guard_new (dir, mount, v2);
}

void
twp_memory_guard_free (TwpMemoryGuard *self)
{
  if (self == NULL)
    return;
  g_free (self->dir);
  g_free (self->mount);
  g_free (self);
}

/* A number of bytes, or "max" (v2's no limit). */
static gboolean
read_bytes (const char *dir,
            const char *name,
            guint64    *value)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_autofree char *text = NULL;

  if (!g_file_get_contents (path, &text, NULL, NULL))
    return FALSE;
  g_strstrip (text);
  if (g_str_equal (text, "max"))
    {
      *value = G_MAXUINT64;
      return TRUE;
    }
  return g_ascii_string_to_unsigned (text, 10, 0, G_MAXUINT64, value, NULL);
}

/* One "KEY VALUE" line of memory.stat; 0 when missing. */
static guint64
read_stat (const char *dir,
           const char *key)
{
  g_autofree char *path = g_build_filename (dir, "memory.stat", NULL);
  g_autofree char *text = NULL;
  gsize key_len = strlen (key);

  if (!g_file_get_contents (path, &text, NULL, NULL))
    return 0;
  for (const char *line = text; line != NULL && *line != '\0';)
    {
      const char *end = strchr (line, '\n');

      if (strncmp (line, key, key_len) == 0 && line[key_len] == ' ')
        {
          g_autofree char *number = end != NULL ? g_strndup (line + key_len + 1, end - line - key_len - 1)
                                                : g_strdup (line + key_len + 1);
          guint64 value = 0;

          g_ascii_string_to_unsigned (number, 10, 0, G_MAXUINT64, &value, NULL);
          return value;
        }
      line = end != NULL ? end + 1 : NULL;
    }
  return 0;
}

gboolean
twp_memory_guard_read (TwpMemoryGuard *self,
                       guint64        *usage,
                       guint64        *limit)
{
  g_autofree char *dir = NULL;
  guint64 charged = 0;
  guint64 inactive;

  g_return_val_if_fail (self != NULL && usage != NULL && limit != NULL, FALSE);

  if (!read_bytes (self->dir, self->v2 ? "memory.current" : "memory.usage_in_bytes", &charged))
    return FALSE;
  inactive = read_stat (self->dir, self->v2 ? "inactive_file" : "total_inactive_file");
  *usage = charged > inactive ? charged - inactive : 0;

  /* The limit that bites is the lowest of this cgroup and its parents. */
  *limit = G_MAXUINT64;
  if (!self->v2)
    {
      guint64 own = G_MAXUINT64;

      if (read_bytes (self->dir, "memory.limit_in_bytes", &own))
        *limit = own;
      own = read_stat (self->dir, "hierarchical_memory_limit");
      if (own > 0 && own < *limit)
        *limit = own;
    }
  else
    {
      dir = g_strdup (self->dir);
      while (g_str_has_prefix (dir, self->mount) && strlen (dir) > strlen (self->mount))
        {
          guint64 max = G_MAXUINT64;
          char *parent;

          if (read_bytes (dir, "memory.max", &max) && max < *limit)
            *limit = max;
          parent = g_path_get_dirname (dir);
          g_free (dir);
          dir = parent;
        }
    }
  /* v1 says "no limit" with a page-rounded huge number. */
  if (*limit >= G_MAXINT64 / 2)
    *limit = G_MAXUINT64;
  return TRUE;
}

gboolean
twp_memory_guard_is_over (TwpMemoryGuard *self,
                          gint64          now_us)
{
  guint64 usage = 0;
  guint64 limit = G_MAXUINT64;
  gboolean over;

  g_return_val_if_fail (self != NULL, FALSE);

  if (self->read_at != 0 && now_us - self->read_at < CACHE_US)
    return self->over;
  self->read_at = now_us;
  if (!twp_memory_guard_read (self, &usage, &limit) || limit == G_MAXUINT64 || limit == 0)
    over = FALSE;
  else if (self->over)
    over = (double) usage * 100 >= (double) limit * TWP_MEMORY_GUARD_LOW_PERCENT;
  else
    over = (double) usage * 100 >= (double) limit * TWP_MEMORY_GUARD_HIGH_PERCENT;

  if (over && !self->over)
    twp_log_user (TWP_LOG_WARNING,
                  "memory use is at %" G_GUINT64_FORMAT "%% of this cgroup's limit (%" G_GUINT64_FORMAT
                  " MiB): new connections get HTTP 503 until it falls below %d%%",
                  usage * 100 / limit, limit >> 20, TWP_MEMORY_GUARD_LOW_PERCENT);
  else if (!over && self->over)
    twp_log_user (TWP_LOG_NOTICE,
                  "memory use is down to %" G_GUINT64_FORMAT "%% of this cgroup's limit: accepting new connections",
                  limit == G_MAXUINT64 ? 0 : usage * 100 / limit);
  self->over = over;
  return over;
}
