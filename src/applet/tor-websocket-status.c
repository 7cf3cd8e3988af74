/* SPDX-License-Identifier: BSD-3-Clause */
/* tor-websocket-status: shows the running websocket transports and their
 * bridges. */
#define G_LOG_DOMAIN "twp-applet"

#include "config.h"

#include <glib/gi18n.h>
#include <locale.h>

#include "twp-application.h"

int
main (int   argc,
      char *argv[])
{
  g_autoptr(TwpApplication) app = NULL;

  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);

  app = twp_application_new ();
  return g_application_run (G_APPLICATION (app), argc, argv);
}
