/* SPDX-License-Identifier: BSD-3-Clause */
/* What every test here needs (as libsoup's tests/test-utils.h): waiting on
 * the main context with a deadline that fails loudly, loopback listeners on
 * port 0, and the transport run the way tor runs it. GIO only, so that the
 * unit, integration, D-Bus and status app tests all link it. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* Whether AddressSanitizer instruments this build (gcc and clang spell it
 * differently): some bounds are looser there. */
#if defined(__SANITIZE_ADDRESS__)
#define TWP_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TWP_TEST_SANITIZED 1
#endif
#endif
#ifndef TWP_TEST_SANITIZED
#define TWP_TEST_SANITIZED 0
#endif

/* ---- waiting ------------------------------------------------------------ */

typedef gboolean (*TwpTestCondition) (gpointer data);

typedef struct {
  gint64 deadline;
  GSource *tick;
} TwpTestWait;

gint64   twp_test_deadline_in          (guint             ms);
void     twp_test_iterate_for          (guint             ms);

void     twp_test_wait_begin           (TwpTestWait      *wait,
                                        guint             timeout_ms);
gboolean twp_test_wait_iterate         (TwpTestWait      *wait);
void     twp_test_wait_end             (TwpTestWait      *wait);

gboolean twp_test_wait_until           (TwpTestCondition  condition,
                                        gpointer          data,
                                        guint             timeout_ms);
G_NORETURN
void     twp_test_wait_failed          (const char       *file,
                                        int               line,
                                        guint             timeout_ms,
                                        const char       *expr,
                                        const char       *what);
void     twp_test_assert_wait_until_at (TwpTestCondition  condition,
                                        gpointer          data,
                                        guint             timeout_ms,
                                        const char       *what,
                                        const char       *file,
                                        int               line);

/* Iterates the default main context until @expr holds or @timeout_ms
 * passed; evaluates to whether @expr held. @expr is evaluated once per
 * check (it may have side effects), last after the last iteration. */
#define TWP_TEST_WAIT_FOR(expr, timeout_ms) \
  ({ \
    TwpTestWait twp_test_wait_; \
    gboolean twp_test_held_; \
    twp_test_wait_begin (&twp_test_wait_, (timeout_ms)); \
    while (!(twp_test_held_ = !!(expr)) && twp_test_wait_iterate (&twp_test_wait_)) \
      ; \
    twp_test_wait_end (&twp_test_wait_); \
    twp_test_held_; \
  })

/* The same, and a missed deadline fails the test, naming the expression
 * and, when given, in words what it waited for (a string literal). */
#define TWP_TEST_ASSERT_WAIT(expr, timeout_ms, ...) \
  G_STMT_START \
  { \
    if (!TWP_TEST_WAIT_FOR (expr, timeout_ms)) \
      twp_test_wait_failed (__FILE__, __LINE__, (timeout_ms), #expr, "" __VA_ARGS__); \
  } \
  G_STMT_END

#define twp_test_assert_wait_until(condition, data, timeout_ms) \
  twp_test_assert_wait_until_at ((condition), (data), (timeout_ms), #condition, __FILE__, __LINE__)

/* ---- loopback ports ----------------------------------------------------- */

GSocket *twp_test_bind_loopback   (gboolean  listen,
                                   guint16  *port);
guint16  twp_test_refusing_port   (void);
guint16  twp_test_listener_add_loopback (GSocketListener *listener);
guint16  twp_test_port_for_child  (void);

char    *twp_test_request         (GSocketConnectable *address,
                                   const char         *request,
                                   guint               timeout_s);

/* ---- the transport, run as tor runs it ---------------------------------- */

typedef struct {
  GSubprocess *process;
  GDataInputStream *out;
  GCancellable *cancellable;
  GPtrArray *lines;              /* stdout, one string per line */
  int done_index;                /* index of "*METHODS DONE" in lines, or -1 */
  guint n_pending;               /* async operations holding a pointer to us */
  gboolean out_eof;              /* stdout ended, or its reading was cancelled */
  gboolean exited;
  gint64 exited_at;              /* monotonic time, when exited */
  guint16 port;                  /* from SMETHOD / CMETHOD */
} TwpTestProc;

const char  *twp_test_binary_path              (void);
char       **twp_test_pt_environ               (void);
char       **twp_test_environ_without_leak_check (char            **env);

TwpTestProc *twp_test_proc_spawn               (const char * const *argv,
                                                char * const       *envp);
TwpTestProc *twp_test_proc_spawn_pt            (const char         *role,
                                                char * const       *envp);
gboolean     twp_test_proc_wait_done           (TwpTestProc        *proc);
gboolean     twp_test_proc_wait_exit           (TwpTestProc        *proc,
                                                guint               timeout_ms);
void         twp_test_proc_close_stdin         (TwpTestProc        *proc);
void         twp_test_proc_assert_clean_after_done (TwpTestProc    *proc);
void         twp_test_proc_stop                (TwpTestProc        *proc);
void         twp_test_proc_free                (TwpTestProc        *proc);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (TwpTestProc, twp_test_proc_free)

/* ---- a session bus of the test's own ------------------------------------ */

/* A dbus-daemon listening at @address (a path the test owns, so that a new
 * daemon can take the same address), killed if the test dies first;
 * returns once it listens. */
GSubprocess *twp_test_bus_start           (const char  *address);
/* SIGTERM, then waits for it to exit. */
void         twp_test_bus_stop            (GSubprocess *daemon);

G_END_DECLS
