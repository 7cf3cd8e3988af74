/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-test-extorport"

#include "config.h"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <string.h>

#include "twp-extorport.h"
#include "twp-test-extor-server.h"
#include "twp-test-utils.h"

/* Every wait in this file fails the test after this long. */
#define WAIT_TIMEOUT_MS 5000
/* Handshake deadline for exchanges that are expected to finish. */
#define HANDSHAKE_TIMEOUT_MS 5000

/* Helpers */

static char *
make_tmp_dir (void)
{
  g_autoptr(GError) error = NULL;
  char *dir = g_dir_make_tmp ("twp-extorport-XXXXXX", &error);

  g_assert_no_error (error);
  return dir;
}

static void
remove_tmp_dir (const char *dir)
{
  g_autoptr(GDir) d = g_dir_open (dir, 0, NULL);
  const char *name;

  while (d != NULL && (name = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *path = g_build_filename (dir, name, NULL);

      g_unlink (path);
    }
  g_rmdir (dir);
}

static gboolean
result_is_set (gpointer data)
{
  return *(GAsyncResult **) data != NULL;
}

static void
store_result_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (result);
}

static GSocketConnection *
connect_to_port (guint16 port)
{
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GError) error = NULL;
  GSocketConnection *connection;

  g_socket_client_set_timeout (client, WAIT_TIMEOUT_MS / 1000);
  /* Loopback only: keep libproxy (and its C++ exceptions) out of it. */
  g_socket_client_set_enable_proxy (client, FALSE);
  /* A loopback connect completes in the kernel backlog: no accept needed. */
  connection = g_socket_client_connect_to_host (client, "127.0.0.1", port, NULL, &error);
  g_assert_no_error (error);
  return connection;
}

static GInetSocketAddress *
make_address (const char *ip,
              guint16     port)
{
  g_autoptr(GInetAddress) addr = g_inet_address_new_from_string (ip);

  g_assert_nonnull (addr);
  return G_INET_SOCKET_ADDRESS (g_inet_socket_address_new (addr, port));
}

/* Runs twp_extorport_handshake_async to completion; returns its result. */
static gboolean
run_handshake (GIOStream          *stream,
               const char         *cookie_path,
               GInetSocketAddress *client_address,
               const char         *transport,
               guint               timeout_ms,
               GCancellable       *cancellable,
               GError            **error)
{
  g_autoptr(GAsyncResult) result = NULL;

  twp_extorport_handshake_async (stream, cookie_path, client_address, transport,
                                 timeout_ms, cancellable, store_result_cb, &result);
  TWP_TEST_ASSERT_WAIT (result_is_set (&result), WAIT_TIMEOUT_MS, "the ExtORPort handshake");
  return twp_extorport_handshake_finish (stream, result, error);
}

static gboolean
server_has_closed (gpointer data)
{
  return twp_test_extor_server_get_last_closed (data);
}

static void
write_file (const char   *path,
            const guint8 *data,
            gsize         len)
{
  g_autoptr(GError) error = NULL;

  g_file_set_contents (path, (const char *) data, len, &error);
  g_assert_no_error (error);
}

/* Cookie file (S6) */

static void
fill_cookie_file (guint8 file[TWP_EXTORPORT_COOKIE_FILE_LEN + 1])
{
  memcpy (file, "! Extended ORPort Auth Cookie !\n", 32);
  for (guint i = 0; i < 33; i++)
    file[32 + i] = 0xa0 + i;
}

static void
test_cookie_ok (void)
{
  g_autofree char *dir = make_tmp_dir ();
  g_autofree char *path = g_build_filename (dir, "cookie", NULL);
  guint8 file[TWP_EXTORPORT_COOKIE_FILE_LEN + 1];
  guint8 cookie[TWP_EXTORPORT_COOKIE_LEN];
  g_autoptr(GError) error = NULL;

  fill_cookie_file (file);
  write_file (path, file, 64);
  g_assert_true (twp_extorport_read_cookie (path, cookie, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (cookie, sizeof cookie, file + 32, 32);
  remove_tmp_dir (dir);
}

static void
assert_cookie_error (const char *path)
{
  guint8 cookie[TWP_EXTORPORT_COOKIE_LEN];
  g_autoptr(GError) error = NULL;

  g_assert_false (twp_extorport_read_cookie (path, cookie, &error));
  g_assert_error (error, TWP_EXTORPORT_ERROR, TWP_EXTORPORT_ERROR_COOKIE);
}

static void
test_cookie_bad (void)
{
  g_autofree char *dir = make_tmp_dir ();
  g_autofree char *path = g_build_filename (dir, "cookie", NULL);
  guint8 file[TWP_EXTORPORT_COOKIE_FILE_LEN + 1];

  fill_cookie_file (file);

  /* 63 bytes: one cookie byte short */
  write_file (path, file, 63);
  assert_cookie_error (path);
  /* 65 bytes: trailing garbage */
  write_file (path, file, 65);
  assert_cookie_error (path);
  /* empty */
  write_file (path, file, 0);
  assert_cookie_error (path);
  /* bad header: last header byte (the newline) changed */
  file[31] = '\r';
  write_file (path, file, 64);
  assert_cookie_error (path);
  fill_cookie_file (file);
  file[0] = '?';
  write_file (path, file, 64);
  assert_cookie_error (path);
  /* missing */
  g_unlink (path);
  assert_cookie_error (path);
  /* a directory is not a cookie */
  assert_cookie_error (dir);

  remove_tmp_dir (dir);
}

static void
test_cookie_parse (void)
{
  guint8 file[TWP_EXTORPORT_COOKIE_FILE_LEN + 1];
  guint8 cookie[TWP_EXTORPORT_COOKIE_LEN];
  g_autoptr(GError) error = NULL;

  fill_cookie_file (file);
  g_assert_true (twp_extorport_parse_cookie (file, 64, cookie, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (cookie, sizeof cookie, file + 32, 32);
  g_assert_false (twp_extorport_parse_cookie (file, 32, cookie, &error));
  g_assert_error (error, TWP_EXTORPORT_ERROR, TWP_EXTORPORT_ERROR_COOKIE);
}

/* HMACs (prop 217) */

static void
test_hash_strings (void)
{
  g_assert_cmpstr (TWP_EXTORPORT_SERVER_HASH_STRING, ==, "ExtORPort authentication server-to-client hash");
  g_assert_cmpstr (TWP_EXTORPORT_CLIENT_HASH_STRING, ==, "ExtORPort authentication client-to-server hash");
  g_assert_cmpmem (TWP_EXTORPORT_COOKIE_HEADER, strlen (TWP_EXTORPORT_COOKIE_HEADER),
                   "! Extended ORPort Auth Cookie !\x0a", 32);
}

/* HMAC-SHA256 of one concatenated buffer, independent of the module. */
static void
reference_hmac (const char   *what,
                const guint8 *cookie,
                const guint8 *client_nonce,
                const guint8 *server_nonce,
                guint8        out[32])
{
  g_autoptr(GByteArray) msg = g_byte_array_new ();
  g_autoptr(GHmac) hmac = NULL;
  gsize len = 32;

  g_byte_array_append (msg, (const guint8 *) what, strlen (what));
  g_byte_array_append (msg, client_nonce, 32);
  g_byte_array_append (msg, server_nonce, 32);
  hmac = g_hmac_new (G_CHECKSUM_SHA256, cookie, 32);
  g_hmac_update (hmac, msg->data, msg->len);
  g_hmac_get_digest (hmac, out, &len);
  g_assert_cmpuint (len, ==, 32);
}

static void
hex_to_bytes (const char *hex,
              guint8      out[32])
{
  for (guint i = 0; i < 32; i++)
    out[i] = (g_ascii_xdigit_value (hex[2 * i]) << 4) | g_ascii_xdigit_value (hex[2 * i + 1]);
}

static void
test_hash_values (void)
{
  guint8 cookie[32], client_nonce[32], server_nonce[32];
  guint8 got[32], want[32], fixed[32];

  for (guint i = 0; i < 32; i++)
    {
      cookie[i] = i;
      client_nonce[i] = 0x20 + i;
      server_nonce[i] = 0x40 + i;
    }

  twp_extorport_server_hash (cookie, client_nonce, server_nonce, got);
  reference_hmac ("ExtORPort authentication server-to-client hash", cookie, client_nonce, server_nonce, want);
  g_assert_cmpmem (got, 32, want, 32);
  /* Computed with Python's hmac module. */
  hex_to_bytes ("67cb22838690cf4c49434d4ea3164fbdcc936e46fd90ee62f511639a8456d133", fixed);
  g_assert_cmpmem (got, 32, fixed, 32);

  twp_extorport_client_hash (cookie, client_nonce, server_nonce, got);
  reference_hmac ("ExtORPort authentication client-to-server hash", cookie, client_nonce, server_nonce, want);
  g_assert_cmpmem (got, 32, want, 32);
  hex_to_bytes ("4becde5c2fe8a9fed908d74f79be128d73abfbf82c009d3bdc17b4bc02740d58", fixed);
  g_assert_cmpmem (got, 32, fixed, 32);

  /* The nonces are not interchangeable. */
  twp_extorport_client_hash (cookie, server_nonce, client_nonce, got);
  g_assert_false (memcmp (got, want, 32) == 0);
}

static void
test_hash_equal (void)
{
  guint8 a[32], b[32];

  for (guint i = 0; i < 32; i++)
    a[i] = b[i] = 0x55 ^ i;
  g_assert_true (twp_extorport_hash_equal (a, b));
  b[0] ^= 1;
  g_assert_false (twp_extorport_hash_equal (a, b));
  b[0] ^= 1;
  b[31] ^= 0x80;
  g_assert_false (twp_extorport_hash_equal (a, b));
}

/* Commands and metadata (X2, X3, X6) */

static void
test_append_command (void)
{
  g_autoptr(GByteArray) out = g_byte_array_new ();
  static const guint8 want[] = { 0x12, 0x34, 0x00, 0x03, 'a', 'b', 'c', 0x00, 0x00, 0x00, 0x00 };

  twp_extorport_append_command (out, 0x1234, "abc", 3);
  twp_extorport_append_command (out, 0x0000, NULL, 0);
  g_assert_cmpmem (out->data, out->len, want, sizeof want);
}

static void
test_metadata_ipv4 (void)
{
  g_autoptr(GInetSocketAddress) addr = make_address ("203.0.113.7", 4444);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) bytes = twp_extorport_build_metadata (addr, "websocket", &error);
  static const guint8 want[] =
    "\x00\x01\x00\x10" "203.0.113.7:4444"
    "\x00\x02\x00\x09" "websocket"
    "\x00\x00\x00\x00";

  g_assert_no_error (error);
  g_assert_nonnull (bytes);
  g_assert_cmpmem (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes), want, sizeof want - 1);
}

static void
test_metadata_ipv6 (void)
{
  g_autoptr(GInetSocketAddress) addr = make_address ("2001:db8::1", 5555);
  g_autoptr(GInetSocketAddress) mapped = make_address ("::ffff:198.51.100.9", 443);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) bytes = twp_extorport_build_metadata (addr, "ws_2", &error);
  g_autofree char *useraddr = NULL;
  static const guint8 want[] =
    "\x00\x01\x00\x12" "[2001:db8::1]:5555"
    "\x00\x02\x00\x04" "ws_2"
    "\x00\x00\x00\x00";

  g_assert_no_error (error);
  g_assert_cmpmem (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes), want, sizeof want - 1);

  /* A dual-stack listener's IPv4 client is reported as IPv4. */
  useraddr = twp_extorport_format_useraddr (mapped, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (useraddr, ==, "198.51.100.9:443");
}

static void
test_metadata_no_address (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) bytes = twp_extorport_build_metadata (NULL, "websocket", &error);
  static const guint8 want[] = "\x00\x02\x00\x09" "websocket" "\x00\x00\x00\x00";

  g_assert_no_error (error);
  g_assert_cmpmem (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes), want, sizeof want - 1);
}

static void
test_metadata_bad (void)
{
  static const char *bad_names[] = { "web-socket", "", "1ws", "web socket", "ws\n", "wébsocket", "ws.1" };
  g_autoptr(GInetSocketAddress) addr = make_address ("203.0.113.7", 4444);
  g_autoptr(GInetSocketAddress) port0 = make_address ("203.0.113.7", 0);
  g_autofree char *long_name = g_strnfill (70000, 'a');

  for (guint i = 0; i < G_N_ELEMENTS (bad_names); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GBytes) bytes = twp_extorport_build_metadata (addr, bad_names[i], &error);

      g_assert_null (bytes);
      g_assert_error (error, TWP_EXTORPORT_ERROR, TWP_EXTORPORT_ERROR_PROTOCOL);
    }

  {
    g_autoptr(GError) error = NULL;
    g_autoptr(GBytes) bytes = twp_extorport_build_metadata (addr, long_name, &error);

    g_assert_null (bytes);
    g_assert_error (error, TWP_EXTORPORT_ERROR, TWP_EXTORPORT_ERROR_PROTOCOL);
  }
  {
    /* tor closes on port 0 (X2) */
    g_autoptr(GError) error = NULL;
    g_autoptr(GBytes) bytes = twp_extorport_build_metadata (port0, "websocket", &error);

    g_assert_null (bytes);
    g_assert_error (error, TWP_EXTORPORT_ERROR, TWP_EXTORPORT_ERROR_PROTOCOL);
  }
  g_assert_true (twp_extorport_is_c_identifier ("_Web_socket9"));
}

/* Parser */

typedef struct {
  TwpExtOrPortEvent events[8];
  guint n_events;
  gsize n_consumed;
  GError *error;
} ParseRun;

/* Feeds @data in chunks of @chunk bytes, recording events. */
static void
parse_all (const guint8 *data,
           gsize         len,
           gsize         chunk,
           ParseRun     *run)
{
  TwpExtOrPortParser parser;
  gsize pos = 0;

  memset (run, 0, sizeof *run);
  twp_extorport_parser_init (&parser);
  while (pos < len)
    {
      gsize n = MIN (chunk, len - pos);
      gsize consumed;
      TwpExtOrPortEvent event;

      if (!twp_extorport_parser_feed (&parser, data + pos, n, &consumed, &event, &run->error))
        {
          g_assert_cmpint (twp_extorport_parser_get_state (&parser), ==, TWP_EXTORPORT_PARSER_FAILED);
          g_assert_cmpuint (twp_extorport_parser_wanted (&parser), ==, 0);
          break;
        }
      g_assert_cmpuint (consumed, <=, n);
      pos += consumed;
      if (event != TWP_EXTORPORT_EVENT_NONE)
        {
          g_assert_cmpuint (run->n_events, <, G_N_ELEMENTS (run->events));
          run->events[run->n_events++] = event;
        }
      /* Once done, the rest is payload: the parser must stop taking it. */
      if (twp_extorport_parser_get_state (&parser) == TWP_EXTORPORT_PARSER_DONE && consumed == 0)
        break;
    }
  run->n_consumed = pos;
}

static GByteArray *
make_tor_stream (const guint8 *auth_types,
                 gsize         n_auth_types,
                 guint8        status,
                 const guint8 *reply,
                 gsize         reply_len)
{
  GByteArray *s = g_byte_array_new ();
  guint8 hash_nonce[64];

  for (guint i = 0; i < 64; i++)
    hash_nonce[i] = i;
  g_byte_array_append (s, auth_types, n_auth_types);
  g_byte_array_append (s, hash_nonce, sizeof hash_nonce);
  g_byte_array_append (s, &status, 1);
  g_byte_array_append (s, reply, reply_len);
  return s;
}

static void
test_parser_ok (void)
{
  static const guint8 types[] = { 0x01, 0x00 };
  static const guint8 reply[] = { 0x10, 0x00, 0x00, 0x00, 'P', 'A', 'Y' };
  g_autoptr(GByteArray) s = make_tor_stream (types, sizeof types, 0x01, reply, sizeof reply);
  static const gsize chunks[] = { 1, 2, 3, 7, 64, 1000 };

  for (guint i = 0; i < G_N_ELEMENTS (chunks); i++)
    {
      ParseRun run;

      parse_all (s->data, s->len, chunks[i], &run);
      g_assert_no_error (run.error);
      g_assert_cmpuint (run.n_events, ==, 4);
      g_assert_cmpint (run.events[0], ==, TWP_EXTORPORT_EVENT_AUTH_TYPES);
      g_assert_cmpint (run.events[1], ==, TWP_EXTORPORT_EVENT_SERVER_HASH);
      g_assert_cmpint (run.events[2], ==, TWP_EXTORPORT_EVENT_AUTH_OK);
      g_assert_cmpint (run.events[3], ==, TWP_EXTORPORT_EVENT_OKAY);
      /* "PAY" after OKAY is left alone. */
      g_assert_cmpuint (run.n_consumed, ==, s->len - 3);
    }
}

static void
test_parser_fields (void)
{
  TwpExtOrPortParser parser;
  guint8 in[2 + 64];
  gsize consumed;
  TwpExtOrPortEvent event;
  g_autoptr(GError) error = NULL;

  in[0] = 0x03;
  in[1] = 0x01;
  for (guint i = 0; i < 64; i++)
    in[2 + i] = 0x80 + i;
  twp_extorport_parser_init (&parser);
  g_assert_cmpuint (twp_extorport_parser_wanted (&parser), ==, 1);
  /* No terminator yet: no event, everything consumed. */
  g_assert_true (twp_extorport_parser_feed (&parser, in, 2, &consumed, &event, &error));
  g_assert_cmpuint (consumed, ==, 2);
  g_assert_cmpint (event, ==, TWP_EXTORPORT_EVENT_NONE);
  in[1] = 0x00;
  g_assert_true (twp_extorport_parser_feed (&parser, in + 1, 1, &consumed, &event, &error));
  g_assert_cmpint (event, ==, TWP_EXTORPORT_EVENT_AUTH_TYPES);
  g_assert_cmpuint (twp_extorport_parser_wanted (&parser), ==, 64);
  g_assert_true (twp_extorport_parser_feed (&parser, in + 2, 10, &consumed, &event, &error));
  g_assert_cmpuint (twp_extorport_parser_wanted (&parser), ==, 54);
  g_assert_true (twp_extorport_parser_feed (&parser, in + 12, 54, &consumed, &event, &error));
  g_assert_no_error (error);
  g_assert_cmpint (event, ==, TWP_EXTORPORT_EVENT_SERVER_HASH);
  g_assert_cmpmem (parser.server_hash, 32, in + 2, 32);
  g_assert_cmpmem (parser.server_nonce, 32, in + 34, 32);
  g_assert_cmpuint (twp_extorport_parser_wanted (&parser), ==, 1);
}

static void
assert_parse_error (const guint8 *types,
                    gsize         n_types,
                    guint8        status,
                    const guint8 *reply,
                    gsize         reply_len,
                    int           code)
{
  g_autoptr(GByteArray) s = make_tor_stream (types, n_types, status, reply, reply_len);
  static const gsize chunks[] = { 1, 5, 4096 };

  for (guint i = 0; i < G_N_ELEMENTS (chunks); i++)
    {
      ParseRun run;

      parse_all (s->data, s->len, chunks[i], &run);
      g_assert_error (run.error, TWP_EXTORPORT_ERROR, code);
      g_clear_error (&run.error);
    }
}

static void
test_parser_bad (void)
{
  static const guint8 types_ok[] = { 0x01, 0x00 };
  static const guint8 types_no_cookie[] = { 0x02, 0x00 };
  static const guint8 okay[] = { 0x10, 0x00, 0x00, 0x00 };
  static const guint8 deny[] = { 0x10, 0x01, 0x00, 0x00 };
  static const guint8 control[] = { 0x10, 0x02, 0x00, 0x00 };
  static const guint8 okay_body[] = { 0x10, 0x00, 0x00, 0x01, 'x' };
  guint8 many_types[257];

  assert_parse_error (types_no_cookie, sizeof types_no_cookie, 1, okay, sizeof okay, TWP_EXTORPORT_ERROR_AUTH_TYPE);
  assert_parse_error (types_ok + 1, 1, 1, okay, sizeof okay, TWP_EXTORPORT_ERROR_AUTH_TYPE);
  assert_parse_error (types_ok, sizeof types_ok, 0, okay, sizeof okay, TWP_EXTORPORT_ERROR_AUTH_FAILED);
  assert_parse_error (types_ok, sizeof types_ok, 2, okay, sizeof okay, TWP_EXTORPORT_ERROR_PROTOCOL);
  assert_parse_error (types_ok, sizeof types_ok, 1, deny, sizeof deny, TWP_EXTORPORT_ERROR_DENIED);
  assert_parse_error (types_ok, sizeof types_ok, 1, control, sizeof control, TWP_EXTORPORT_ERROR_PROTOCOL);
  assert_parse_error (types_ok, sizeof types_ok, 1, okay_body, sizeof okay_body, TWP_EXTORPORT_ERROR_PROTOCOL);

  /* 255 types are fine, 256 are not. */
  memset (many_types, 0x01, sizeof many_types);
  many_types[255] = 0x00;
  {
    g_autoptr(GByteArray) s = make_tor_stream (many_types, 256, 1, okay, sizeof okay);
    ParseRun run;

    parse_all (s->data, s->len, 100, &run);
    g_assert_no_error (run.error);
    g_assert_cmpuint (run.n_events, ==, 4);
  }
  many_types[255] = 0x01;
  many_types[256] = 0x00;
  assert_parse_error (many_types, 257, 1, okay, sizeof okay, TWP_EXTORPORT_ERROR_PROTOCOL);

  /* The parser stays failed. */
  {
    TwpExtOrPortParser parser;
    gsize consumed;
    TwpExtOrPortEvent event;
    g_autoptr(GError) error = NULL;

    twp_extorport_parser_init (&parser);
    g_assert_false (twp_extorport_parser_feed (&parser, types_no_cookie, 2, &consumed, &event, &error));
    g_clear_error (&error);
    g_assert_false (twp_extorport_parser_feed (&parser, types_ok, 2, &consumed, &event, &error));
    g_assert_error (error, TWP_EXTORPORT_ERROR, TWP_EXTORPORT_ERROR_PROTOCOL);
  }
}

/* End-to-end against the in-test tor */

typedef struct {
  char *dir;
  TwpTestExtOrServer *server;
  GSocketConnection *connection;
} Fixture;

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  f->dir = make_tmp_dir ();
  f->server = twp_test_extor_server_new (f->dir, GPOINTER_TO_INT (data));
  f->connection = connect_to_port (twp_test_extor_server_get_port (f->server));
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  g_clear_object (&f->connection);
  g_clear_pointer (&f->server, twp_test_extor_server_free);
  remove_tmp_dir (f->dir);
  g_free (f->dir);
}

static gboolean
server_saw_payload (gpointer data)
{
  return twp_test_extor_server_get_bytes_relayed (data) >= 10;
}

static void
test_handshake_ok (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(GInetSocketAddress) addr = make_address ("203.0.113.7", 4444);
  g_autoptr(GError) error = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GBytes) payload = NULL;
  guint8 echo[10];
  gsize n_read = 0;

  g_assert_true (run_handshake (G_IO_STREAM (f->connection),
                                twp_test_extor_server_get_cookie_path (f->server),
                                addr, "websocket", HANDSHAKE_TIMEOUT_MS, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (twp_test_extor_server_get_n_okay (f->server), ==, 1);
  g_assert_cmpstr (twp_test_extor_server_get_last_useraddr (f->server), ==, "203.0.113.7:4444");
  g_assert_cmpstr (twp_test_extor_server_get_last_transport (f->server), ==, "websocket");
  g_assert_cmpint (twp_test_extor_server_get_last_result (f->server), ==, TWP_TEST_EXTOR_RESULT_OKAY);

  /* Payload flows after OKAY and the server echoes it. */
  g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (f->connection)),
                             "0123456789", 10, NULL, NULL, &error);
  g_assert_no_error (error);
  g_input_stream_read_all_async (g_io_stream_get_input_stream (G_IO_STREAM (f->connection)),
                                 echo, sizeof echo, G_PRIORITY_DEFAULT, NULL, store_result_cb, &result);
  TWP_TEST_ASSERT_WAIT (result_is_set (&result), WAIT_TIMEOUT_MS, "the echo");
  g_assert_true (g_input_stream_read_all_finish (g_io_stream_get_input_stream (G_IO_STREAM (f->connection)),
                                                 result, &n_read, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (echo, n_read, "0123456789", 10);
  TWP_TEST_ASSERT_WAIT (server_saw_payload (f->server), WAIT_TIMEOUT_MS, "the payload");
  payload = twp_test_extor_server_get_last_payload (f->server);
  g_assert_cmpmem (g_bytes_get_data (payload, NULL), g_bytes_get_size (payload), "0123456789", 10);
}

static void
test_handshake_ipv6_no_address (Fixture       *f,
                                gconstpointer  data)
{
  g_autoptr(GInetSocketAddress) addr = make_address ("2001:db8::1", 5555);
  g_autoptr(GSocketConnection) second = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_true (run_handshake (G_IO_STREAM (f->connection),
                                twp_test_extor_server_get_cookie_path (f->server),
                                addr, "websocket", HANDSHAKE_TIMEOUT_MS, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (twp_test_extor_server_get_last_useraddr (f->server), ==, "[2001:db8::1]:5555");

  /* tor restarted (#15240): the cookie is re-read per connection. And no
   * client address means no USERADDR. */
  twp_test_extor_server_regenerate_cookie (f->server);
  second = connect_to_port (twp_test_extor_server_get_port (f->server));
  g_assert_true (run_handshake (G_IO_STREAM (second),
                                twp_test_extor_server_get_cookie_path (f->server),
                                NULL, "ws2", HANDSHAKE_TIMEOUT_MS, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (twp_test_extor_server_get_n_okay (f->server), ==, 2);
  g_assert_null (twp_test_extor_server_get_last_useraddr (f->server));
  g_assert_cmpstr (twp_test_extor_server_get_last_transport (f->server), ==, "ws2");
}

static void
test_handshake_wrong_cookie (Fixture       *f,
                             gconstpointer  data)
{
  g_autofree char *path = g_build_filename (f->dir, "other-cookie", NULL);
  guint8 file[65];
  g_autoptr(GError) error = NULL;

  fill_cookie_file (file);
  write_file (path, file, 64);
  g_assert_false (run_handshake (G_IO_STREAM (f->connection), path, NULL, "websocket",
                                 HANDSHAKE_TIMEOUT_MS, NULL, &error));
  g_assert_error (error, TWP_EXTORPORT_ERROR, TWP_EXTORPORT_ERROR_SERVER_HASH);
  g_assert_cmpuint (twp_test_extor_server_get_n_okay (f->server), ==, 0);
}

static void
test_handshake_missing_cookie (Fixture       *f,
                               gconstpointer  data)
{
  g_autofree char *path = g_build_filename (f->dir, "no-such-cookie", NULL);
  g_autoptr(GError) error = NULL;

  g_assert_false (run_handshake (G_IO_STREAM (f->connection), path, NULL, "websocket",
                                 HANDSHAKE_TIMEOUT_MS, NULL, &error));
  g_assert_error (error, TWP_EXTORPORT_ERROR, TWP_EXTORPORT_ERROR_COOKIE);
}

static void
test_handshake_bad_transport (Fixture       *f,
                              gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  g_assert_false (run_handshake (G_IO_STREAM (f->connection),
                                 twp_test_extor_server_get_cookie_path (f->server),
                                 NULL, "web-socket", HANDSHAKE_TIMEOUT_MS, NULL, &error));
  g_assert_error (error, TWP_EXTORPORT_ERROR, TWP_EXTORPORT_ERROR_PROTOCOL);
  g_assert_cmpuint (twp_test_extor_server_get_n_okay (f->server), ==, 0);
}

static void
test_handshake_auth_fail (Fixture       *f,
                          gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  g_assert_false (run_handshake (G_IO_STREAM (f->connection),
                                 twp_test_extor_server_get_cookie_path (f->server),
                                 NULL, "websocket", HANDSHAKE_TIMEOUT_MS, NULL, &error));
  g_assert_error (error, TWP_EXTORPORT_ERROR, TWP_EXTORPORT_ERROR_AUTH_FAILED);
  TWP_TEST_ASSERT_WAIT (server_has_closed (f->server), WAIT_TIMEOUT_MS, "the server to close");
  g_assert_cmpint (twp_test_extor_server_get_last_result (f->server), ==, TWP_TEST_EXTOR_RESULT_AUTH_FAILED);
}

static void
test_handshake_deny (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(GInetSocketAddress) addr = make_address ("203.0.113.7", 4444);
  g_autoptr(GError) error = NULL;

  g_assert_false (run_handshake (G_IO_STREAM (f->connection),
                                 twp_test_extor_server_get_cookie_path (f->server),
                                 addr, "websocket", HANDSHAKE_TIMEOUT_MS, NULL, &error));
  g_assert_error (error, TWP_EXTORPORT_ERROR, TWP_EXTORPORT_ERROR_DENIED);
  /* The metadata did arrive before the DENY. */
  g_assert_cmpstr (twp_test_extor_server_get_last_useraddr (f->server), ==, "203.0.113.7:4444");
  g_assert_cmpint (twp_test_extor_server_get_last_result (f->server), ==, TWP_TEST_EXTOR_RESULT_DENIED);
}

static void
test_handshake_stall (Fixture       *f,
                      gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  gint64 start = g_get_monotonic_time ();
  gint64 elapsed_ms;

  g_assert_false (run_handshake (G_IO_STREAM (f->connection),
                                 twp_test_extor_server_get_cookie_path (f->server),
                                 NULL, "websocket", 300, NULL, &error));
  elapsed_ms = (g_get_monotonic_time () - start) / 1000;
  g_assert_error (error, TWP_EXTORPORT_ERROR, TWP_EXTORPORT_ERROR_TIMED_OUT);
  g_assert_cmpint (elapsed_ms, >=, 250);
  g_assert_cmpint (elapsed_ms, <, 3000);
}

static void
test_handshake_cancel (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;

  twp_extorport_handshake_async (G_IO_STREAM (f->connection),
                                 twp_test_extor_server_get_cookie_path (f->server),
                                 NULL, "websocket", HANDSHAKE_TIMEOUT_MS, cancellable,
                                 store_result_cb, &result);
  g_cancellable_cancel (cancellable);
  TWP_TEST_ASSERT_WAIT (result_is_set (&result), WAIT_TIMEOUT_MS, "the cancelled handshake");
  g_assert_false (twp_extorport_handshake_finish (G_IO_STREAM (f->connection), result, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
}

static void
test_handshake_close_after_nonce (Fixture       *f,
                                  gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  g_assert_false (run_handshake (G_IO_STREAM (f->connection),
                                 twp_test_extor_server_get_cookie_path (f->server),
                                 NULL, "websocket", HANDSHAKE_TIMEOUT_MS, NULL, &error));
  g_assert_error (error, TWP_EXTORPORT_ERROR, TWP_EXTORPORT_ERROR_CLOSED);
}

/* A raw client in a thread, to probe the test server like the table in
 * PT-CHECKLIST section 9 probes tor. Blocking I/O, each bounded by the
 * socket timeout, so the main thread can keep serving. */

typedef struct {
  guint16 port;
  char *cookie_path;
  guint8 auth_type;
  GBytes *commands;
  /* results */
  guint8 greeting[2];
  guint8 status;            /* 0xff: not received */
  GByteArray *reply;        /* up to 4 bytes after the commands */
  gboolean eof;
  int done;
} RawProbe;

static gpointer
raw_probe_thread (gpointer user_data)
{
  RawProbe *p = user_data;
  g_autoptr(GSocketConnection) connection = connect_to_port (p->port);
  GInputStream *in = g_io_stream_get_input_stream (G_IO_STREAM (connection));
  GOutputStream *out = g_io_stream_get_output_stream (G_IO_STREAM (connection));
  g_autoptr(GError) error = NULL;
  guint8 cookie[32], client_nonce[32], server[64], expected[32], client_hash[32], buf[4], buf33[33];
  gsize n;

  g_socket_set_timeout (g_socket_connection_get_socket (connection), WAIT_TIMEOUT_MS / 1000);
  p->status = 0xff;
  p->reply = g_byte_array_new ();
  g_assert_true (twp_extorport_read_cookie (p->cookie_path, cookie, &error));

  g_input_stream_read_all (in, p->greeting, 2, &n, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (n, ==, 2);
  for (guint i = 0; i < 32; i++)
    client_nonce[i] = g_random_int_range (0, 256);
  /* Type and nonce in one write, so a server that closes after the type
   * cannot make the second write fail. */
  buf33[0] = p->auth_type;
  memcpy (buf33 + 1, client_nonce, 32);
  g_output_stream_write_all (out, buf33, sizeof buf33, NULL, NULL, &error);
  g_assert_no_error (error);

  g_input_stream_read_all (in, server, 64, &n, NULL, &error);
  if (error == NULL && n == 64)
    {
      twp_extorport_server_hash (cookie, client_nonce, server + 32, expected);
      g_assert_cmpmem (expected, 32, server, 32);
      twp_extorport_client_hash (cookie, client_nonce, server + 32, client_hash);
      g_output_stream_write_all (out, client_hash, 32, NULL, NULL, &error);
      g_assert_no_error (error);
      g_input_stream_read_all (in, &p->status, 1, &n, NULL, &error);
      g_assert_no_error (error);
      g_assert_cmpuint (n, ==, 1);
      /* All commands (and any pipelined payload) in one write. */
      g_output_stream_write_all (out, g_bytes_get_data (p->commands, NULL),
                                 g_bytes_get_size (p->commands), NULL, NULL, &error);
      g_assert_no_error (error);
      g_input_stream_read_all (in, buf, sizeof buf, &n, NULL, &error);
      g_byte_array_append (p->reply, buf, n);
    }
  else
    n = 0;
  /* EOF, or a reset because the server closed with our bytes unread. */
  p->eof = n < sizeof buf &&
           (error == NULL || g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED));
  g_clear_error (&error);

  g_atomic_int_set (&p->done, 1);
  g_main_context_wakeup (NULL);
  return NULL;
}

static gboolean
probe_is_done (gpointer data)
{
  RawProbe *p = data;

  return g_atomic_int_get (&p->done);
}

static void
run_probe (TwpTestExtOrServer *server,
           guint8              auth_type,
           GBytes             *commands,
           RawProbe           *p)
{
  GThread *thread;

  memset (p, 0, sizeof *p);
  p->port = twp_test_extor_server_get_port (server);
  p->cookie_path = g_strdup (twp_test_extor_server_get_cookie_path (server));
  p->auth_type = auth_type;
  p->commands = commands;
  thread = g_thread_new ("raw-probe", raw_probe_thread, p);
  TWP_TEST_ASSERT_WAIT (probe_is_done (p), WAIT_TIMEOUT_MS, "the raw probe");
  g_thread_join (thread);
  g_free (p->cookie_path);
}

static GBytes *
make_commands (const char *useraddr,
               const char *transport,
               gsize       transport_len,
               gboolean    unknown,
               const char *after_done)
{
  g_autoptr(GByteArray) out = g_byte_array_new ();

  if (useraddr != NULL)
    twp_extorport_append_command (out, TWP_EXTORPORT_CMD_USERADDR, useraddr, strlen (useraddr));
  if (unknown)
    twp_extorport_append_command (out, 0x0003, "x", 1);
  if (transport != NULL)
    twp_extorport_append_command (out, TWP_EXTORPORT_CMD_TRANSPORT, transport, transport_len);
  twp_extorport_append_command (out, TWP_EXTORPORT_CMD_DONE, NULL, 0);
  if (after_done != NULL)
    g_byte_array_append (out, (const guint8 *) after_done, strlen (after_done));
  return g_byte_array_free_to_bytes (g_steal_pointer (&out));
}

/* Takes @commands. */
static void
assert_probe (TwpTestExtOrServer *server,
              GBytes             *commands,
              gboolean            want_okay,
              TwpTestExtOrResult  want_result)
{
  static const guint8 okay[] = { 0x10, 0x00, 0x00, 0x00 };
  RawProbe p;

  run_probe (server, 0x01, commands, &p);
  g_assert_cmpuint (p.greeting[0], ==, 0x01);
  g_assert_cmpuint (p.greeting[1], ==, 0x00);
  g_assert_cmpuint (p.status, ==, 0x01);
  if (want_okay)
    g_assert_cmpmem (p.reply->data, p.reply->len, okay, sizeof okay);
  else
    {
      g_assert_cmpuint (p.reply->len, ==, 0);
      g_assert_true (p.eof);
    }
  g_assert_cmpint (twp_test_extor_server_get_last_result (server), ==, want_result);
  g_byte_array_unref (p.reply);
  g_bytes_unref (commands);
}

static void
test_server_pipelining (Fixture       *f,
                        gconstpointer  data)
{
  /* X1: data right after DONE, in the same write: closed, no OKAY. */
  assert_probe (f->server, make_commands ("203.0.113.7:4444", "websocket", 9, FALSE, "\x16\x03\x01"),
                FALSE, TWP_TEST_EXTOR_RESULT_PIPELINED);
  g_assert_cmpuint (twp_test_extor_server_get_n_okay (f->server), ==, 0);
  g_assert_cmpuint (twp_test_extor_server_get_bytes_relayed (f->server), ==, 0);
}

static void
test_server_probes (Fixture       *f,
                    gconstpointer  data)
{
  RawProbe p;

  /* The probe table of PT-CHECKLIST section 9. */
  assert_probe (f->server, make_commands ("203.0.113.7:4444", "websocket", 9, FALSE, NULL),
                TRUE, TWP_TEST_EXTOR_RESULT_OKAY);
  assert_probe (f->server, make_commands ("[2001:db8::1]:5555", "websocket", 9, FALSE, NULL),
                TRUE, TWP_TEST_EXTOR_RESULT_OKAY);
  assert_probe (f->server, make_commands (NULL, NULL, 0, FALSE, NULL),
                TRUE, TWP_TEST_EXTOR_RESULT_OKAY);
  assert_probe (f->server, make_commands ("203.0.113.7:4444", "websocket", 9, TRUE, NULL),
                TRUE, TWP_TEST_EXTOR_RESULT_OKAY);
  assert_probe (f->server, make_commands ("203.0.113.7", "websocket", 9, FALSE, NULL),
                TRUE, TWP_TEST_EXTOR_RESULT_OKAY);
  assert_probe (f->server, make_commands ("203.0.113.7:0", "websocket", 9, FALSE, NULL),
                FALSE, TWP_TEST_EXTOR_RESULT_BAD_USERADDR);
  assert_probe (f->server, make_commands ("203.0.113.7:65536", "websocket", 9, FALSE, NULL),
                FALSE, TWP_TEST_EXTOR_RESULT_BAD_USERADDR);
  assert_probe (f->server, make_commands ("not-an-address", "websocket", 9, FALSE, NULL),
                FALSE, TWP_TEST_EXTOR_RESULT_BAD_USERADDR);
  assert_probe (f->server, make_commands ("example.com:80", "websocket", 9, FALSE, NULL),
                FALSE, TWP_TEST_EXTOR_RESULT_BAD_USERADDR);
  assert_probe (f->server, make_commands ("203.0.113.7:4444", "web-socket", 10, FALSE, NULL),
                FALSE, TWP_TEST_EXTOR_RESULT_BAD_TRANSPORT);
  assert_probe (f->server, make_commands ("203.0.113.7:4444", "web\0socket", 10, FALSE, NULL),
                FALSE, TWP_TEST_EXTOR_RESULT_BAD_TRANSPORT);

  /* Auth type 2: closed, nothing sent. */
  run_probe (f->server, 0x02, NULL, &p);
  g_assert_cmpuint (p.status, ==, 0xff);
  g_assert_true (p.eof);
  g_byte_array_unref (p.reply);
  TWP_TEST_ASSERT_WAIT (server_has_closed (f->server), WAIT_TIMEOUT_MS, "the server to close");
  g_assert_cmpint (twp_test_extor_server_get_last_result (f->server), ==, TWP_TEST_EXTOR_RESULT_BAD_AUTH_TYPE);
}

/* A tor that sends OR payload right behind OKAY, in the same write: the
 * handshake must leave that payload in the stream. */

typedef struct {
  GSocketListener *listener;
  guint8 cookie[32];
  gsize metadata_len;
  int done;
} EagerTor;

static gpointer
eager_tor_thread (gpointer user_data)
{
  EagerTor *t = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketConnection) connection = g_socket_listener_accept (t->listener, NULL, NULL, &error);
  GInputStream *in;
  GOutputStream *out;
  guint8 buf[256], client_nonce[32], server_nonce[32], hash[32];
  static const guint8 greeting[] = { 0x01, 0x00 };
  static const guint8 tail[] = { 0x01 };
  static const guint8 okay_and_payload[] = { 0x10, 0x00, 0x00, 0x00, 'P', 'A', 'Y', 'L', 'O', 'A', 'D' };
  gsize n;

  g_assert_no_error (error);
  g_socket_set_timeout (g_socket_connection_get_socket (connection), WAIT_TIMEOUT_MS / 1000);
  in = g_io_stream_get_input_stream (G_IO_STREAM (connection));
  out = g_io_stream_get_output_stream (G_IO_STREAM (connection));

  g_output_stream_write_all (out, greeting, 2, NULL, NULL, &error);
  g_input_stream_read_all (in, buf, 33, &n, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (buf[0], ==, 0x01);
  memcpy (client_nonce, buf + 1, 32);
  memset (server_nonce, 0x5a, 32);
  twp_extorport_server_hash (t->cookie, client_nonce, server_nonce, hash);
  g_output_stream_write_all (out, hash, 32, NULL, NULL, &error);
  g_output_stream_write_all (out, server_nonce, 32, NULL, NULL, &error);
  g_input_stream_read_all (in, buf, 32, &n, NULL, &error);
  g_assert_no_error (error);
  twp_extorport_client_hash (t->cookie, client_nonce, server_nonce, hash);
  g_assert_cmpmem (buf, 32, hash, 32);
  g_output_stream_write_all (out, tail, 1, NULL, NULL, &error);
  g_input_stream_read_all (in, buf, t->metadata_len, &n, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (n, ==, t->metadata_len);
  g_output_stream_write_all (out, okay_and_payload, sizeof okay_and_payload, NULL, NULL, &error);
  g_assert_no_error (error);
  /* Wait for the client to hang up. */
  g_input_stream_read (in, buf, sizeof buf, NULL, NULL);

  g_atomic_int_set (&t->done, 1);
  g_main_context_wakeup (NULL);
  return NULL;
}

static gboolean
eager_tor_is_done (gpointer data)
{
  return g_atomic_int_get (&((EagerTor *) data)->done);
}

static void
test_handshake_leaves_payload (void)
{
  g_autofree char *dir = make_tmp_dir ();
  g_autofree char *path = g_build_filename (dir, "cookie", NULL);
  g_autoptr(GInetSocketAddress) addr = make_address ("203.0.113.7", 4444);
  g_autoptr(GBytes) metadata = twp_extorport_build_metadata (addr, "websocket", NULL);
  g_autoptr(GSocketConnection) connection = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  guint8 file[65];
  guint8 payload[7];
  gsize n_read = 0;
  guint16 port;
  EagerTor t = { 0 };
  GThread *thread;

  fill_cookie_file (file);
  write_file (path, file, 64);
  memcpy (t.cookie, file + 32, 32);
  t.metadata_len = g_bytes_get_size (metadata);
  t.listener = g_socket_listener_new ();
  port = twp_test_listener_add_loopback (t.listener);
  thread = g_thread_new ("eager-tor", eager_tor_thread, &t);

  connection = connect_to_port (port);
  g_assert_true (run_handshake (G_IO_STREAM (connection), path, addr, "websocket",
                                HANDSHAKE_TIMEOUT_MS, NULL, &error));
  g_assert_no_error (error);
  g_input_stream_read_all_async (g_io_stream_get_input_stream (G_IO_STREAM (connection)),
                                 payload, sizeof payload, G_PRIORITY_DEFAULT, NULL, store_result_cb, &result);
  TWP_TEST_ASSERT_WAIT (result_is_set (&result), WAIT_TIMEOUT_MS, "the payload after OKAY");
  g_assert_true (g_input_stream_read_all_finish (g_io_stream_get_input_stream (G_IO_STREAM (connection)),
                                                 result, &n_read, &error));
  g_assert_cmpmem (payload, n_read, "PAYLOAD", 7);

  g_io_stream_close (G_IO_STREAM (connection), NULL, NULL);
  TWP_TEST_ASSERT_WAIT (eager_tor_is_done (&t), WAIT_TIMEOUT_MS, "the eager tor thread");
  g_thread_join (thread);
  g_socket_listener_close (t.listener);
  g_object_unref (t.listener);
  remove_tmp_dir (dir);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/extorport/cookie/ok", test_cookie_ok);
  g_test_add_func ("/extorport/cookie/bad", test_cookie_bad);
  g_test_add_func ("/extorport/cookie/parse", test_cookie_parse);
  g_test_add_func ("/extorport/hash/strings", test_hash_strings);
  g_test_add_func ("/extorport/hash/values", test_hash_values);
  g_test_add_func ("/extorport/hash/equal", test_hash_equal);
  g_test_add_func ("/extorport/metadata/command", test_append_command);
  g_test_add_func ("/extorport/metadata/ipv4", test_metadata_ipv4);
  g_test_add_func ("/extorport/metadata/ipv6", test_metadata_ipv6);
  g_test_add_func ("/extorport/metadata/no-address", test_metadata_no_address);
  g_test_add_func ("/extorport/metadata/bad", test_metadata_bad);
  g_test_add_func ("/extorport/parser/ok", test_parser_ok);
  g_test_add_func ("/extorport/parser/fields", test_parser_fields);
  g_test_add_func ("/extorport/parser/bad", test_parser_bad);

#define ADD(path, mode, func) \
  g_test_add ("/extorport/" path, Fixture, GINT_TO_POINTER (mode), fixture_setup, func, fixture_teardown)
  ADD ("handshake/ok", TWP_TEST_EXTOR_MODE_ECHO, test_handshake_ok);
  ADD ("handshake/ipv6-and-cookie-change", TWP_TEST_EXTOR_MODE_SINK, test_handshake_ipv6_no_address);
  ADD ("handshake/wrong-cookie", TWP_TEST_EXTOR_MODE_ECHO, test_handshake_wrong_cookie);
  ADD ("handshake/missing-cookie", TWP_TEST_EXTOR_MODE_ECHO, test_handshake_missing_cookie);
  ADD ("handshake/bad-transport", TWP_TEST_EXTOR_MODE_ECHO, test_handshake_bad_transport);
  ADD ("handshake/auth-failed", TWP_TEST_EXTOR_MODE_AUTH_FAIL, test_handshake_auth_fail);
  ADD ("handshake/deny", TWP_TEST_EXTOR_MODE_DENY, test_handshake_deny);
  ADD ("handshake/stall-timeout", TWP_TEST_EXTOR_MODE_STALL, test_handshake_stall);
  ADD ("handshake/cancel", TWP_TEST_EXTOR_MODE_STALL, test_handshake_cancel);
  ADD ("handshake/closed", TWP_TEST_EXTOR_MODE_CLOSE_AFTER_NONCE, test_handshake_close_after_nonce);
  ADD ("test-server/pipelining", TWP_TEST_EXTOR_MODE_ECHO, test_server_pipelining);
  ADD ("test-server/probes", TWP_TEST_EXTOR_MODE_ECHO, test_server_probes);
#undef ADD
  g_test_add_func ("/extorport/handshake/leaves-payload", test_handshake_leaves_payload);

  return g_test_run ();
}
