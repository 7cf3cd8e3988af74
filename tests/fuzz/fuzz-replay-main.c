/* SPDX-License-Identifier: BSD-3-Clause */
/* Replays every file of a fuzz corpus through a target without libFuzzer,
 * so that the seeds and every crash ever found run as regression tests with
 * any compiler. */
#include <glib.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
main (int    argc,
      char **argv)
{
  guint n_files = 0;

  for (int i = 1; i < argc; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GDir) dir = g_dir_open (argv[i], 0, &error);
      const char *name;

      if (dir == NULL)
        g_error ("cannot open corpus %s: %s", argv[i], error->message);

      while ((name = g_dir_read_name (dir)) != NULL)
        {
          g_autofree char *path = g_build_filename (argv[i], name, NULL);
          g_autofree char *contents = NULL;
          gsize length;

          if (!g_file_get_contents (path, &contents, &length, &error))
            g_error ("cannot read %s: %s", path, error->message);
          LLVMFuzzerTestOneInput ((const uint8_t *) contents, length);
          n_files++;
        }
    }

  if (n_files == 0)
    g_error ("empty corpus");
  g_print ("replayed %u inputs\n", n_files);
  return EXIT_SUCCESS;
}
