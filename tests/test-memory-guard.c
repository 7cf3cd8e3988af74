/* SPDX-License-Identifier: BSD-3-Clause */
/* The cgroup memory guard: finding this process's memory cgroup in the
 * texts of /proc/self/cgroup and mountinfo (v1, v2, a container's subtree,
 * bad lines), reading usage and the effective limit from a fake cgroup
 * directory, and the 90%/85% thresholds with their one-second cache. */
#define G_LOG_DOMAIN "twp-test-memory-guard"

#include "config.h"

#include <glib/gstdio.h>

#include "twp-memory-guard.h"

#define MOUNTINFO_V1 \
  "30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n" \
  "31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n" \
  "34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
#define MOUNTINFO_V2 \
  "26 1 0:23 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"

static void
test_find_v1 (void)
{
  g_autofree char *mount = NULL;
  g_autofree char *dir = NULL;
  gboolean v2 = TRUE;

  dir = twp_memory_guard_find_cgroup ("5:cpu:/\n4:memory:/process_api/abc\n0::/\n", MOUNTINFO_V1, &mount, &v2);
  g_assert_cmpstr (dir, ==, "/sys/fs/cgroup/memory/process_api/abc");
  g_assert_cmpstr (mount, ==, "/sys/fs/cgroup/memory");
  g_assert_false (v2);
}

static void
test_find_v2 (void)
{
  g_autofree char *mount = NULL;
  g_autofree char *dir = NULL;
  gboolean v2 = FALSE;

  dir = twp_memory_guard_find_cgroup ("0::/system.slice/tor@default.service\n", MOUNTINFO_V2, &mount, &v2);
  g_assert_cmpstr (dir, ==, "/sys/fs/cgroup/system.slice/tor@default.service");
  g_assert_cmpstr (mount, ==, "/sys/fs/cgroup");
  g_assert_true (v2);
}

static void
test_find_container (void)
{
  g_autofree char *dir = NULL;

  /* The container sees its own subtree mounted as the root. */
  dir = twp_memory_guard_find_cgroup ("4:memory:/docker/1234/inner\n",
                                      "34 30 0:31 /docker/1234 /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
                                      NULL, NULL);
  g_assert_cmpstr (dir, ==, "/sys/fs/cgroup/memory/inner");
}

static void
test_find_bad (void)
{
  const char *cgroups[] = {
    "", "garbage", "4:memory", "4:memory:relative/path\n", ":::\n", "0::\n", "4:cpu,cpuacct:/x\n",
  };
  const char *mounts[] = {
    "", "34 30 0:31 / /m rw - cgroup\n", "34 30 - cgroup cgroup rw,memory\n", "- - - - - - -\n",
    "34 30 0:31 / /m rw - cgroup cgroup rw,cpu\n",
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cgroups); i++)
    {
      g_autofree char *dir = twp_memory_guard_find_cgroup (cgroups[i], MOUNTINFO_V1 MOUNTINFO_V2, NULL, NULL);

      g_assert_null (dir);
    }
  for (gsize i = 0; i < G_N_ELEMENTS (mounts); i++)
    {
      g_autofree char *dir = twp_memory_guard_find_cgroup ("4:memory:/a\n0::/a\n", mounts[i], NULL, NULL);

      g_assert_null (dir);
    }
}

static void
write_file (const char *dir,
            const char *name,
            const char *text)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_autoptr(GError) error = NULL;

  g_file_set_contents (path, text, -1, &error);
  g_assert_no_error (error);
}

static void
remove_tree (const char *dir)
{
  g_autoptr(GDir) d = g_dir_open (dir, 0, NULL);
  const char *name;

  while (d != NULL && (name = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *path = g_build_filename (dir, name, NULL);

      if (g_file_test (path, G_FILE_TEST_IS_DIR))
        remove_tree (path);
      else
        g_unlink (path);
    }
  g_rmdir (dir);
}

static void
test_read_v1 (void)
{
  g_autofree char *root = g_dir_make_tmp ("twp-memguard-XXXXXX", NULL);
  g_autoptr(TwpMemoryGuard) guard = twp_memory_guard_new (root, root, FALSE);
  guint64 usage = 0;
  guint64 limit = 0;

  g_assert_false (twp_memory_guard_read (guard, &usage, &limit));
  write_file (root, "memory.usage_in_bytes", "1000000\n");
  write_file (root, "memory.limit_in_bytes", "9223372036854771712\n");
  write_file (root, "memory.stat", "cache 5\ntotal_inactive_file 200000\nhierarchical_memory_limit 4000000\n");
  g_assert_true (twp_memory_guard_read (guard, &usage, &limit));
  /* The inactive page cache is dropped before the OOM killer runs. */
  g_assert_cmpuint (usage, ==, 800000);
  /* A parent's limit applies when lower. */
  g_assert_cmpuint (limit, ==, 4000000);
  write_file (root, "memory.stat", "total_inactive_file 2000000\nhierarchical_memory_limit 9223372036854771712\n");
  g_assert_true (twp_memory_guard_read (guard, &usage, &limit));
  g_assert_cmpuint (usage, ==, 0);
  g_assert_cmpuint (limit, ==, G_MAXUINT64);
  remove_tree (root);
}

static void
test_read_v2 (void)
{
  g_autofree char *root = g_dir_make_tmp ("twp-memguard-XXXXXX", NULL);
  g_autofree char *child = g_build_filename (root, "tor.service", NULL);
  g_autoptr(TwpMemoryGuard) guard = NULL;
  guint64 usage = 0;
  guint64 limit = 0;

  g_assert_cmpint (g_mkdir (child, 0700), ==, 0);
  guard = twp_memory_guard_new (child, root, TRUE);
  write_file (child, "memory.current", "3000\n");
  write_file (child, "memory.max", "max\n");
  write_file (child, "memory.stat", "anon 1\ninactive_file 1000\n");
  g_assert_true (twp_memory_guard_read (guard, &usage, &limit));
  g_assert_cmpuint (usage, ==, 2000);
  g_assert_cmpuint (limit, ==, G_MAXUINT64);
  /* The mount's own root (no memory.max there) is not looked at, a
   * parent within it is. */
  write_file (root, "memory.max", "10\n");
  g_assert_true (twp_memory_guard_read (guard, &usage, &limit));
  g_assert_cmpuint (limit, ==, G_MAXUINT64);
  write_file (child, "memory.max", "not a number\n");
  g_assert_true (twp_memory_guard_read (guard, &usage, &limit));
  g_assert_cmpuint (limit, ==, G_MAXUINT64);
  write_file (child, "memory.max", "4000\n");
  g_assert_true (twp_memory_guard_read (guard, &usage, &limit));
  g_assert_cmpuint (limit, ==, 4000);
  remove_tree (root);
}

static void
test_thresholds (void)
{
  g_autofree char *root = g_dir_make_tmp ("twp-memguard-XXXXXX", NULL);
  g_autoptr(TwpMemoryGuard) guard = twp_memory_guard_new (root, root, FALSE);
  gint64 now = G_USEC_PER_SEC;

  write_file (root, "memory.limit_in_bytes", "1000\n");
  write_file (root, "memory.stat", "total_inactive_file 0\n");
  write_file (root, "memory.usage_in_bytes", "899\n");
  g_assert_false (twp_memory_guard_is_over (guard, now));
  write_file (root, "memory.usage_in_bytes", "900\n");
  /* Cached for a second: a burst reads the files once. */
  g_assert_false (twp_memory_guard_is_over (guard, now + G_USEC_PER_SEC - 1));
  now += G_USEC_PER_SEC;
  g_assert_true (twp_memory_guard_is_over (guard, now));
  /* Between the two thresholds: still shedding. */
  write_file (root, "memory.usage_in_bytes", "860\n");
  now += G_USEC_PER_SEC;
  g_assert_true (twp_memory_guard_is_over (guard, now));
  write_file (root, "memory.usage_in_bytes", "849\n");
  now += G_USEC_PER_SEC;
  g_assert_false (twp_memory_guard_is_over (guard, now));
  /* Unreadable: never shed. */
  write_file (root, "memory.usage_in_bytes", "990\n");
  write_file (root, "memory.limit_in_bytes", "9223372036854771712\n");
  now += G_USEC_PER_SEC;
  g_assert_false (twp_memory_guard_is_over (guard, now));
  remove_tree (root);
}

static void
test_self (void)
{
  /* Whatever this machine has, it must not crash; where found, a reading
   * comes back. */
  g_autoptr(TwpMemoryGuard) guard = twp_memory_guard_new_self ();
  guint64 usage;
  guint64 limit;

  if (guard == NULL)
    {
      g_test_skip ("no memory cgroup here");
      return;
    }
  g_assert_true (twp_memory_guard_read (guard, &usage, &limit));
  g_assert_cmpuint (limit, >, 0);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/memory-guard/find/v1", test_find_v1);
  g_test_add_func ("/memory-guard/find/v2", test_find_v2);
  g_test_add_func ("/memory-guard/find/container", test_find_container);
  g_test_add_func ("/memory-guard/find/bad", test_find_bad);
  g_test_add_func ("/memory-guard/read/v1", test_read_v1);
  g_test_add_func ("/memory-guard/read/v2", test_read_v2);
  g_test_add_func ("/memory-guard/thresholds", test_thresholds);
  g_test_add_func ("/memory-guard/self", test_self);
  return g_test_run ();
}
