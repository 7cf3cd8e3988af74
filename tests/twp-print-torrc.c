/* SPDX-License-Identifier: BSD-3-Clause */
/* Prints the torrc lines the status app shows, for the torrc snippet test
 * (tests/tor/test-tor-network.py): the empty state's example, and with
 * --tor-browser the line "Use with Tor Browser" adds. With --set-up FOLDER
 * (or --undo FOLDER) it does to that Tor Browser folder what the app's
 * button does: exit status 0 done, 3 refused (its tor runs), 1 other. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "twp-tor-browser.h"

int
main (int    argc,
      char **argv)
{
  g_autofree char *text = NULL;

  if (argc > 2 && (strcmp (argv[1], "--set-up") == 0 || strcmp (argv[1], "--undo") == 0))
    {
      g_autoptr(TwpTorBrowser) tb = NULL;
      g_autoptr(GError) error = NULL;
      gboolean done;

      tb = twp_tor_browser_new_for_folder (argv[2], TWP_TOR_BROWSER_FOLDER, &error);
      done = tb != NULL && (strcmp (argv[1], "--set-up") == 0 ? twp_tor_browser_set_up (tb, &error)
                                                              : twp_tor_browser_undo (tb, &error));
      if (done)
        return 0;
      fprintf (stderr, "%s\n", error->message);
      return g_error_matches (error, TWP_TOR_BROWSER_ERROR, TWP_TOR_BROWSER_ERROR_RUNNING) ? 3 : 1;
    }
  if (argc > 1 && strcmp (argv[1], "--tor-browser") == 0)
    text = twp_torrc_tor_browser_line ();
  else
    text = twp_torrc_client_example ();
  printf ("%s\n", text);
  return 0;
}
