/* SPDX-License-Identifier: BSD-3-Clause */
/* The one source of random bytes: it fills exactly what is asked, large
 * requests included, and a kernel refusal is an error, never weaker bytes. */
#define G_LOG_DOMAIN "twp-test-random"

#include "config.h"

#include "twp-random.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gio/gio.h>

/* Every byte of the buffer is written and nothing around it. */
static void
test_random_fills_exactly (void)
{
  guint8 buf[64 + 2];
  guint counts[256] = { 0 };
  guint distinct = 0;

  for (guint round = 0; round < 16; round++)
    {
      g_autoptr(GError) error = NULL;

      memset (buf, 0xa5, sizeof buf);
      g_assert_true (twp_random_bytes (buf + 1, 64, &error));
      g_assert_no_error (error);
      g_assert_cmpuint (buf[0], ==, 0xa5);
      g_assert_cmpuint (buf[65], ==, 0xa5);
      for (guint i = 1; i <= 64; i++)
        counts[buf[i]]++;
    }
  /* 1024 bytes from a uniform source cover far more than 100 of the 256
   * values (about 253 on average); a stuck or unfilled buffer covers few. */
  for (guint i = 0; i < 256; i++)
    distinct += counts[i] != 0;
  g_assert_cmpuint (distinct, >, 100);
}

/* Two draws of a WebSocket key's size differ. */
static void
test_random_draws_differ (void)
{
  guint8 a[16];
  guint8 b[16];

  twp_random_bytes_or_die (a, sizeof a);
  twp_random_bytes_or_die (b, sizeof b);
  g_assert_true (memcmp (a, b, sizeof a) != 0);
}

static void
test_random_empty (void)
{
  g_autoptr(GError) error = NULL;
  guint8 byte = 7;

  g_assert_true (twp_random_bytes (&byte, 0, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (byte, ==, 7);
}

/* getrandom() returns at most 32 MiB - 1 per call: the rest must follow. */
static void
test_random_large (void)
{
  gsize len = 33 * 1024 * 1024;
  g_autofree guint8 *buf = g_malloc (len);
  g_autoptr(GError) error = NULL;
  gsize zeros = 0;

  memset (buf, 0, len);
  g_assert_true (twp_random_bytes (buf, len, &error));
  g_assert_no_error (error);
  /* The last MiB is past the first call's share: it must be random too
   * (about 4096 zero bytes expected in it, never all of them). */
  for (gsize i = len - 1024 * 1024; i < len; i++)
    zeros += buf[i] == 0;
  g_assert_cmpuint (zeros, <, 64 * 1024);
}

/* A buffer the kernel cannot write to makes getrandom() fail (EFAULT):
 * the failure comes back as an error, not as bytes from elsewhere. */
static void
test_random_failure_is_an_error (void)
{
  gsize page = sysconf (_SC_PAGESIZE);
  g_autoptr(GError) error = NULL;
  void *unwritable;

  unwritable = mmap (NULL, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  g_assert_true (unwritable != MAP_FAILED);
  g_assert_false (twp_random_bytes (unwritable, 16, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_FAILED);
  g_assert_nonnull (strstr (error->message, "random bytes"));
  /* Nothing was written behind the caller's back. */
  for (gsize i = 0; i < 16; i++)
    g_assert_cmpuint (((const guint8 *) unwritable)[i], ==, 0);
  munmap (unwritable, page);
}

/* Where no error path exists the process ends with a clear message. */
static void
test_random_or_die_is_fatal (void)
{
  if (g_test_subprocess ())
    {
      gsize page = sysconf (_SC_PAGESIZE);
      void *unwritable = mmap (NULL, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

      g_assert_true (unwritable != MAP_FAILED);
      twp_random_bytes_or_die (unwritable, 16);
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_failed ();
  g_test_trap_assert_stderr ("*Cannot get random bytes from the kernel*");
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/random/fills-exactly", test_random_fills_exactly);
  g_test_add_func ("/random/draws-differ", test_random_draws_differ);
  g_test_add_func ("/random/empty", test_random_empty);
  g_test_add_func ("/random/large", test_random_large);
  g_test_add_func ("/random/failure-is-an-error", test_random_failure_is_an_error);
  g_test_add_func ("/random/or-die-is-fatal", test_random_or_die_is_fatal);

  return g_test_run ();
}
