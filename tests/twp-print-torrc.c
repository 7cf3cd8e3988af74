/* SPDX-License-Identifier: BSD-3-Clause */
/* Prints the torrc lines the status app shows, for the torrc snippet test
 * (tests/tor/test-tor-network.py): the empty state's example, and with
 * --tor-browser the line "Use with Tor Browser" adds. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "twp-tor-browser.h"

int
main (int    argc,
      char **argv)
{
  g_autofree char *text = NULL;

  if (argc > 1 && strcmp (argv[1], "--tor-browser") == 0)
    text = twp_torrc_tor_browser_line ();
  else
    text = twp_torrc_client_example ();
  printf ("%s\n", text);
  return 0;
}
