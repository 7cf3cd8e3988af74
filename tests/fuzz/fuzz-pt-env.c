/* SPDX-License-Identifier: BSD-3-Clause */
/* The managed-mode environment: the input is split on '\n' into VAR=value
 * strings and parsed for both roles; the raw input is also tried as a
 * TOR_PT_PROXY URI and as a host:port. */
#define G_LOG_DOMAIN "twp-fuzz-pt-env"

#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "twp-pt-env.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
check_env (TwpPtEnv *env,
           TwpRole   role)
{
  if (env->role != role || env->transports == NULL || env->transports[0] == NULL)
    abort ();
  for (guint i = 0; env->transports[i] != NULL; i++)
    {
      if (!twp_pt_is_transport_name (env->transports[i]))
        abort ();
    }
  if (role == TWP_ROLE_SERVER)
    {
      if (env->server_options == NULL || env->bindaddrs == NULL)
        abort ();
      if (env->orport == NULL && env->ext_orport == NULL)
        abort ();
      if (env->ext_orport != NULL && env->auth_cookie_file == NULL)
        abort ();
      for (guint i = 0; i < env->bindaddrs->len; i++)
        {
          TwpBindAddr *bind = g_ptr_array_index (env->bindaddrs, i);

          if (!g_strv_contains ((const char * const *) env->transports, bind->transport))
            abort ();
        }
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  g_autofree char *str = NULL;
  g_auto(GStrv) envp = NULL;
  g_autoptr(TwpProxyConfig) proxy = NULL;
  g_autofree char *address = NULL;
  guint16 port;

  if (size > 16384)
    return 0;

  /* NULs end the string, as they would end an environment entry */
  str = g_strndup ((const char *) data, size);
  envp = g_strsplit (str, "\n", -1);

  for (int role = TWP_ROLE_CLIENT; role <= TWP_ROLE_SERVER; role++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(TwpPtEnv) env = twp_pt_env_parse ((const char * const *) envp, role, &error);

      if (env != NULL)
        {
          check_env (env, role);
          /* never twp_pt_env_ensure_state_location(): no disk writes here */
        }
      else
        {
          /* the message goes out as "ENV-ERROR <msg>": printable ASCII only */
          if (error == NULL || error->message[0] == '\0')
            abort ();
          for (const char *p = error->message; *p != '\0'; p++)
            {
              if (*p < 0x20 || *p > 0x7e)
                abort ();
            }
        }
    }

  proxy = twp_proxy_config_parse (str, NULL);
  if (proxy != NULL && (proxy->host == NULL || proxy->port == 0))
    abort ();

  if (twp_parse_ip_port (str, TRUE, &address, &port, NULL) && address == NULL)
    abort ();

  return 0;
}
