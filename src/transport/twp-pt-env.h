/* SPDX-License-Identifier: BSD-3-Clause */
/* The managed-mode environment tor hands a PT (PT-CHECKLIST 2, 3.1, 4).
 * Everything is validated at once, before a line is printed (G3), so that
 * a bad environment is answered with ENV-ERROR while tor still logs it. */
#pragma once

#include <gio/gio.h>

#include "twp-args.h"

G_BEGIN_DECLS

typedef enum {
  TWP_ROLE_CLIENT,
  TWP_ROLE_SERVER,
} TwpRole;

typedef enum {
  TWP_PROXY_SOCKS5 = 1,
  TWP_PROXY_SOCKS4A,
  TWP_PROXY_HTTP,
} TwpProxyType;

typedef struct {
  TwpProxyType type;
  char *host;          /* IP literal without brackets */
  guint16 port;
  char *username;      /* raw, never percent-decoded (B4); NULL when absent */
  char *password;      /* NULL when absent */
} TwpProxyConfig;

void twp_proxy_config_free (TwpProxyConfig *config);
TwpProxyConfig *twp_proxy_config_copy (const TwpProxyConfig *config);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TwpProxyConfig, twp_proxy_config_free)

/* C2: exactly the forms tor writes (socks5://, socks4a://, http://). The
 * host:port follows the LAST '@', the user is the userinfo up to its FIRST
 * ':', the password the rest; IPv6 hosts are bracketed; no percent decoding
 * (B4), so this never uses g_uri_parse(). Error messages never quote the
 * URI: it may hold credentials. */
TwpProxyConfig *twp_proxy_config_parse (const char  *uri,
                                        GError     **error);

typedef struct {
  char *transport;
  char *address;       /* IP literal, no brackets */
  guint16 port;        /* 0: pick an ephemeral port */
} TwpBindAddr;

typedef struct {
  TwpRole role;
  char **transports;            /* requested names, in order, no duplicates (NULL-terminated) */
  char *state_location;         /* absolute path or NULL (unmanaged) */
  gboolean exit_on_stdin_close;
  char *proxy_uri;              /* raw TOR_PT_PROXY or NULL; parse with twp_proxy_config_parse() after VERSION 1 */
  GInetAddress *outbound_bind_v4;  /* C3/C4, NULL when unset/empty; v6 brackets stripped */
  GInetAddress *outbound_bind_v6;
  /* server only */
  GPtrArray *bindaddrs;         /* TwpBindAddr *, owned; only for requested transports (S2) */
  GHashTable *server_options;   /* name -> TwpArgs *, from S3; never NULL in server role (may be empty) */
  char *orport;                 /* "a.b.c.d:p" or "[v6]:p" (normalized), or NULL */
  char *ext_orport;             /* same form, or NULL ("" means unset, S5) */
  char *auth_cookie_file;       /* set whenever ext_orport is (S6) */
} TwpPtEnv;

void twp_pt_env_free (TwpPtEnv *env);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TwpPtEnv, twp_pt_env_free)

#define TWP_PT_ENV_ERROR (twp_pt_env_error_quark ())
GQuark twp_pt_env_error_quark (void);

typedef enum {
  TWP_PT_ENV_ERROR_NO_VERSION,
  TWP_PT_ENV_ERROR_INVALID,
} TwpPtEnvError;

/* Validates the whole environment (@envp as from g_get_environ(), may be
 * NULL) for @role. NO_VERSION when TOR_PT_MANAGED_TRANSPORT_VER is set but
 * lists no "1" (G1: print VERSION-ERROR no-version); INVALID for anything
 * else, including an unset TOR_PT_MANAGED_TRANSPORT_VER (print ENV-ERROR).
 * Messages are short, ASCII, one line. */
TwpPtEnv *twp_pt_env_parse (const char * const  *envp,
                            TwpRole              role,
                            GError             **error);

/* The bind address tor asked for @transport, or NULL if it gave none. */
TwpBindAddr *twp_pt_env_lookup_bindaddr (TwpPtEnv   *env,
                                         const char *transport);

/* Options for @transport (S3); NULL when there are none. */
TwpArgs *twp_pt_env_lookup_server_options (TwpPtEnv   *env,
                                           const char *transport);

/* Host:port as tor writes it: IPv4 "a.b.c.d:p", "[v6]:p", and bare IPv6
 * split at the last ':' (#7011). Only IP literals; @address receives the
 * literal without brackets. @allow_zero_port for BINDADDR. */
gboolean twp_parse_ip_port (const char  *str,
                            gboolean     allow_zero_port,
                            char       **address,
                            guint16     *port,
                            GError     **error);

/* G9: [A-Za-z_][A-Za-z0-9_]* */
gboolean twp_pt_is_transport_name (const char *name);

/* G13: creates TOR_PT_STATE_LOCATION with mode 0700 (parents too); an
 * existing directory is left as it is. Does nothing when it is unset. */
gboolean twp_pt_env_ensure_state_location (TwpPtEnv  *env,
                                           GError   **error);

G_END_DECLS
