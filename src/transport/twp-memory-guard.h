/* SPDX-License-Identifier: BSD-3-Clause */
/* The memory limit of this process's cgroup (v1 memory controller or v2
 * memory.max) and how much of it is used, so that a server sheds new
 * connections (HTTP 503) before the kernel's OOM killer ends every tunnel.
 * Usage is the working set, as the OOM killer sees it: what the cgroup is
 * charged minus the inactive page cache the kernel can drop first. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Shedding starts at this share of the limit and ends below the second:
 * the gap keeps a usage that hovers at the threshold from flapping. */
#define TWP_MEMORY_GUARD_HIGH_PERCENT 90
#define TWP_MEMORY_GUARD_LOW_PERCENT 85

typedef struct _TwpMemoryGuard TwpMemoryGuard;

/* The memory cgroup's directory from the texts of /proc/self/cgroup and
 * /proc/self/mountinfo; @mount is set to its hierarchy's mount point and
 * @v2 to the version. NULL when there is no memory controller mounted. */
char           *twp_memory_guard_find_cgroup (const char  *proc_cgroup,
                                              const char  *mountinfo,
                                              char       **mount,
                                              gboolean    *v2);

/* This process's cgroup; NULL when it has none (the server then never
 * sheds for memory). */
TwpMemoryGuard *twp_memory_guard_new_self (void);
/* The cgroup in @dir, limits looked up to @mount (tests give a
 * directory of their own). */
TwpMemoryGuard *twp_memory_guard_new      (const char     *dir,
                                           const char     *mount,
                                           gboolean        v2);
void            twp_memory_guard_free     (TwpMemoryGuard *self);

/* Reads usage and the effective limit (the lowest on the way to @mount)
 * now. FALSE when unreadable; *limit is G_MAXUINT64 when there is none. */
gboolean        twp_memory_guard_read     (TwpMemoryGuard *self,
                                           guint64        *usage,
                                           guint64        *limit);
/* Whether new connections should be refused, from a reading at most a
 * second old (@now_us: monotonic). The first refusal of an episode and its
 * end are logged, never each connection. */
gboolean        twp_memory_guard_is_over  (TwpMemoryGuard *self,
                                           gint64          now_us);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (TwpMemoryGuard, twp_memory_guard_free)

G_END_DECLS
