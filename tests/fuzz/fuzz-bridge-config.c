/* SPDX-License-Identifier: BSD-3-Clause */
/* Bridge line arguments from tor's SOCKS request, as far as the client's
 * connection plan: any bytes must give a valid plan or a clean error. */
#include "config.h"

#include <stdint.h>

#include "twp-args.h"
#include "twp-bridge-config.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  g_autoptr(TwpArgs) args = NULL;
  g_autoptr(TwpBridgeConfig) config = NULL;

  args = twp_args_parse_socks ((const char *) data, size, NULL);
  if (args == NULL)
    return 0;
  config = twp_bridge_config_new (args, "192.0.2.1", 443, NULL);
  if (config != NULL)
    {
      g_autofree char *url = g_uri_to_string (config->uri);
      const char *scheme = g_uri_get_scheme (config->uri);

      /* Whatever is accepted is a WebSocket URL with a host and a port. */
      if ((g_ascii_strcasecmp (scheme, "ws") != 0 && g_ascii_strcasecmp (scheme, "wss") != 0) ||
          g_uri_get_host (config->uri) == NULL || config->port == 0 || url == NULL)
        __builtin_trap ();
    }
  return 0;
}
