/* SPDX-License-Identifier: BSD-3-Clause */
#define G_LOG_DOMAIN "twp-socks"

#include "config.h"

#include "twp-socks.h"

#include <string.h>

G_DEFINE_QUARK (twp-socks-error-quark, twp_socks_error)

#define SOCKS4_REPLY_GRANTED 0x5a
#define SOCKS4_REPLY_REJECTED 0x5b

#define SOCKS5_METHOD_NO_AUTH 0x00
#define SOCKS5_METHOD_USERPASS 0x02
#define SOCKS5_METHOD_NONE_ACCEPTABLE 0xff

#define SOCKS5_ATYP_IPV4 0x01
#define SOCKS5_ATYP_DOMAIN 0x03
#define SOCKS5_ATYP_IPV6 0x04

/* A NUL-terminated SOCKS4 field (USERID, 4a host) holds at most this many
 * bytes before its NUL. */
#define SOCKS4_MAX_FIELD 255

/* Each handshake read asks for at most this much; anything the client sent
 * past the request comes back as leftover. */
#define HANDSHAKE_READ_SIZE 512

/* The parser is a state machine over fields. Fixed-size fields are
 * collected into buf until `need` bytes are there; SOCKS4's NUL-terminated
 * fields are collected until their NUL (bounded by SOCKS4_MAX_FIELD). */
typedef enum {
  STATE_VERSION,               /* VER (1) */
  STATE_S5_NMETHODS,           /* NMETHODS (1) */
  STATE_S5_METHODS,            /* METHODS (NMETHODS) */
  STATE_S5_AUTH_HEAD,          /* RFC 1929 VER ULEN (2) */
  STATE_S5_AUTH_UNAME,         /* UNAME (ULEN) */
  STATE_S5_AUTH_PLEN,          /* PLEN (1) */
  STATE_S5_AUTH_PASSWD,        /* PASSWD (PLEN) */
  STATE_S5_REQUEST_HEAD,       /* VER CMD RSV ATYP (4) */
  STATE_S5_REQUEST_ADDR,       /* IPv4 or IPv6 + PORT (6 or 18) */
  STATE_S5_REQUEST_DOMAIN_LEN, /* LEN (1) */
  STATE_S5_REQUEST_DOMAIN,     /* DOMAIN + PORT (LEN + 2) */
  STATE_S4_HEAD,               /* CMD PORT IP (7) */
  STATE_S4_USERID,             /* USERID NUL */
  STATE_S4_HOST,               /* SOCKS4a HOST NUL */
  STATE_FINISHED,              /* DONE or ERROR was returned */
} ParserState;

struct _TwpSocksParser
{
  TwpSocksArgsValidator validator;
  gpointer validator_data;

  ParserState state;
  /* Largest fixed field: a 255-byte domain + 2-byte port; largest
   * NUL-terminated field: 255 bytes + the byte that proves it too long. */
  guint8 buf[SOCKS4_MAX_FIELD + 3];
  gsize buf_len;
  gsize need;

  int version;
  int atyp;
  guint16 port;
  guint8 ipv4[4];
  /* UNAME + PASSWD, or USERID, + a NUL for the validator. */
  char args[TWP_SOCKS_MAX_ARGS_LEN + 1];
  gsize args_len;

  TwpSocksRequest *request;    /* owned; set on DONE until stolen */
};

/* What processing one complete field leads to. */
typedef enum {
  STEP_CONTINUE,
  STEP_REPLY,
  STEP_DONE,
  STEP_ERROR,
} Step;

void
twp_socks_request_free (TwpSocksRequest *request)
{
  if (request == NULL)
    return;
  g_free (request->args);
  g_free (request->host);
  g_free (request);
}

TwpSocksParser *
twp_socks_parser_new (TwpSocksArgsValidator validator,
                      gpointer              user_data)
{
  TwpSocksParser *parser = g_new0 (TwpSocksParser, 1);

  parser->validator = validator;
  parser->validator_data = user_data;
  parser->state = STATE_VERSION;
  parser->need = 1;
  return parser;
}

void
twp_socks_parser_free (TwpSocksParser *parser)
{
  if (parser == NULL)
    return;
  twp_socks_request_free (parser->request);
  g_free (parser);
}

TwpSocksRequest *
twp_socks_parser_steal_request (TwpSocksParser *parser)
{
  g_return_val_if_fail (parser != NULL, NULL);

  return g_steal_pointer (&parser->request);
}

static gsize
format_reply (guint8        out[10],
              int           version,
              TwpSocksReply reply)
{
  memset (out, 0, 10);
  if (version == 4)
    {
      /* VN 0, CD, then DSTPORT and DSTIP, which clients ignore. */
      out[1] = reply == TWP_SOCKS_REPLY_SUCCEEDED ? SOCKS4_REPLY_GRANTED
                                                  : SOCKS4_REPLY_REJECTED;
      return 8;
    }

  /* VER REP RSV ATYP=IPv4 BND.ADDR=0.0.0.0 BND.PORT=0: tor ignores the
   * bound address (C13). */
  out[0] = 0x05;
  out[1] = (guint8) reply;
  out[3] = SOCKS5_ATYP_IPV4;
  return 10;
}

GBytes *
twp_socks_format_reply (int           version,
                        TwpSocksReply reply)
{
  guint8 out[10];
  gsize len;

  g_return_val_if_fail (version == 4 || version == 5, NULL);

  len = format_reply (out, version, reply);
  return g_bytes_new (out, len);
}

static void
append_reply (GByteArray    *reply,
              int            version,
              TwpSocksReply  code)
{
  guint8 out[10];
  gsize len = format_reply (out, version, code);

  g_byte_array_append (reply, out, len);
}

static void
append_bytes2 (GByteArray *reply,
               guint8      a,
               guint8      b)
{
  const guint8 out[2] = { a, b };

  g_byte_array_append (reply, out, 2);
}

static void
expect (TwpSocksParser *parser,
        ParserState     state,
        gsize           need)
{
  parser->state = state;
  parser->need = need;
  parser->buf_len = 0;
}

/* Sets @error and, for a peer whose protocol we know, appends the matching
 * refusal: SOCKS5 REP @code or SOCKS4 `00 5B`. */
static Step
fail_request (TwpSocksParser *parser,
              GByteArray     *reply,
              TwpSocksReply   code,
              GError        **error,
              int             error_code,
              const char     *message)
{
  append_reply (reply, parser->version, code);
  g_set_error_literal (error, TWP_SOCKS_ERROR, error_code, message);
  return STEP_ERROR;
}

static gboolean
validate_args (TwpSocksParser  *parser,
               GError         **error)
{
  g_autoptr(GError) local_error = NULL;

  /* The validator gets a NUL-terminated view; args_len <= 510 fits. */
  parser->args[parser->args_len] = '\0';
  if (parser->validator == NULL)
    return TRUE;
  if (parser->validator (parser->args, parser->args_len,
                         parser->validator_data, &local_error))
    return TRUE;

  g_set_error_literal (error, TWP_SOCKS_ERROR, TWP_SOCKS_ERROR_AUTH,
                       local_error != NULL ? local_error->message
                                           : "SOCKS arguments refused");
  return FALSE;
}

static Step
finish_request (TwpSocksParser *parser,
                char           *host)
{
  TwpSocksRequest *request = g_new0 (TwpSocksRequest, 1);

  request->version = parser->version;
  request->args = g_malloc (parser->args_len + 1);
  memcpy (request->args, parser->args, parser->args_len);
  request->args[parser->args_len] = '\0';
  request->args_len = parser->args_len;
  request->host = host;
  request->port = parser->port;
  parser->request = request;
  return STEP_DONE;
}

static char *
address_to_string (const guint8   *bytes,
                   GSocketFamily   family)
{
  g_autoptr(GInetAddress) address = g_inet_address_new_from_bytes (bytes, family);

  return g_inet_address_to_string (address);
}

/* Handles the field just completed in parser->buf. */
static Step
process_field (TwpSocksParser  *parser,
               GByteArray      *reply,
               GError         **error)
{
  const guint8 *buf = parser->buf;

  switch (parser->state)
    {
    case STATE_VERSION:
      if (buf[0] == 0x05)
        {
          parser->version = 5;
          expect (parser, STATE_S5_NMETHODS, 1);
          return STEP_CONTINUE;
        }
      if (buf[0] == 0x04)
        {
          parser->version = 4;
          expect (parser, STATE_S4_HEAD, 7);
          return STEP_CONTINUE;
        }
      g_set_error (error, TWP_SOCKS_ERROR, TWP_SOCKS_ERROR_PROTOCOL,
                   "Not a SOCKS4 or SOCKS5 request (first byte 0x%02x)", buf[0]);
      return STEP_ERROR;

    case STATE_S5_NMETHODS:
      if (buf[0] == 0)
        {
          append_bytes2 (reply, 0x05, SOCKS5_METHOD_NONE_ACCEPTABLE);
          g_set_error_literal (error, TWP_SOCKS_ERROR, TWP_SOCKS_ERROR_PROTOCOL,
                               "SOCKS5 greeting offers no methods");
          return STEP_ERROR;
        }
      expect (parser, STATE_S5_METHODS, buf[0]);
      return STEP_CONTINUE;

    case STATE_S5_METHODS:
      {
        gboolean no_auth = memchr (buf, SOCKS5_METHOD_NO_AUTH, parser->need) != NULL;
        gboolean userpass = memchr (buf, SOCKS5_METHOD_USERPASS, parser->need) != NULL;

        /* C9: tor offers 00 and 02 when it has args and sends them only
         * if we pick 02, so 02 wins. */
        if (userpass)
          {
            append_bytes2 (reply, 0x05, SOCKS5_METHOD_USERPASS);
            expect (parser, STATE_S5_AUTH_HEAD, 2);
            return STEP_REPLY;
          }
        if (no_auth)
          {
            append_bytes2 (reply, 0x05, SOCKS5_METHOD_NO_AUTH);
            expect (parser, STATE_S5_REQUEST_HEAD, 4);
            return STEP_REPLY;
          }
        append_bytes2 (reply, 0x05, SOCKS5_METHOD_NONE_ACCEPTABLE);
        g_set_error_literal (error, TWP_SOCKS_ERROR,
                             TWP_SOCKS_ERROR_NO_ACCEPTABLE_METHOD,
                             "SOCKS5 client offers neither \"no authentication\" "
                             "nor username/password");
        return STEP_ERROR;
      }

    case STATE_S5_AUTH_HEAD:
      if (buf[0] != 0x01)
        {
          g_set_error (error, TWP_SOCKS_ERROR, TWP_SOCKS_ERROR_PROTOCOL,
                       "Unsupported username/password version 0x%02x", buf[0]);
          return STEP_ERROR;
        }
      /* ULEN 0 never comes from tor; accept it as an empty UNAME. */
      expect (parser, STATE_S5_AUTH_UNAME, buf[1]);
      return STEP_CONTINUE;

    case STATE_S5_AUTH_UNAME:
      memcpy (parser->args, buf, parser->need);
      parser->args_len = parser->need;
      expect (parser, STATE_S5_AUTH_PLEN, 1);
      return STEP_CONTINUE;

    case STATE_S5_AUTH_PLEN:
      expect (parser, STATE_S5_AUTH_PASSWD, buf[0]);
      return STEP_CONTINUE;

    case STATE_S5_AUTH_PASSWD:
      /* C10: a lone 00 PASSWD means "UNAME holds all the args"; anything
       * else continues UNAME, raw (tor splits at byte 255, even inside an
       * escape, so unescaping must wait for the whole string). */
      if (!(parser->need == 1 && buf[0] == 0x00))
        {
          memcpy (parser->args + parser->args_len, buf, parser->need);
          parser->args_len += parser->need;
        }
      if (!validate_args (parser, error))
        {
          append_bytes2 (reply, 0x01, 0x01);
          return STEP_ERROR;
        }
      append_bytes2 (reply, 0x01, 0x00);
      expect (parser, STATE_S5_REQUEST_HEAD, 4);
      return STEP_REPLY;

    case STATE_S5_REQUEST_HEAD:
      if (buf[0] != 0x05)
        {
          g_set_error (error, TWP_SOCKS_ERROR, TWP_SOCKS_ERROR_PROTOCOL,
                       "Unsupported SOCKS5 request version 0x%02x", buf[0]);
          return STEP_ERROR;
        }
      if (buf[1] != 0x01)
        return fail_request (parser, reply, TWP_SOCKS_REPLY_COMMAND_NOT_SUPPORTED,
                             error, TWP_SOCKS_ERROR_UNSUPPORTED_COMMAND,
                             "Only the SOCKS5 CONNECT command is supported");
      if (buf[2] != 0x00)
        return fail_request (parser, reply, TWP_SOCKS_REPLY_GENERAL_FAILURE,
                             error, TWP_SOCKS_ERROR_PROTOCOL,
                             "Reserved byte of SOCKS5 request is not zero");
      parser->atyp = buf[3];
      switch (buf[3])
        {
        case SOCKS5_ATYP_IPV4:
          expect (parser, STATE_S5_REQUEST_ADDR, 4 + 2);
          return STEP_CONTINUE;
        case SOCKS5_ATYP_IPV6:
          expect (parser, STATE_S5_REQUEST_ADDR, 16 + 2);
          return STEP_CONTINUE;
        case SOCKS5_ATYP_DOMAIN:
          expect (parser, STATE_S5_REQUEST_DOMAIN_LEN, 1);
          return STEP_CONTINUE;
        default:
          return fail_request (parser, reply,
                               TWP_SOCKS_REPLY_ADDRESS_TYPE_NOT_SUPPORTED,
                               error, TWP_SOCKS_ERROR_UNSUPPORTED_ADDRESS,
                               "Unsupported SOCKS5 address type");
        }

    case STATE_S5_REQUEST_ADDR:
      {
        gsize addr_len = parser->need - 2;

        parser->port = (guint16) ((buf[addr_len] << 8) | buf[addr_len + 1]);
        return finish_request (parser,
                               address_to_string (buf, addr_len == 4 ? G_SOCKET_FAMILY_IPV4
                                                                     : G_SOCKET_FAMILY_IPV6));
      }

    case STATE_S5_REQUEST_DOMAIN_LEN:
      if (buf[0] == 0)
        return fail_request (parser, reply, TWP_SOCKS_REPLY_GENERAL_FAILURE,
                             error, TWP_SOCKS_ERROR_PROTOCOL,
                             "Empty domain name in SOCKS5 request");
      expect (parser, STATE_S5_REQUEST_DOMAIN, (gsize) buf[0] + 2);
      return STEP_CONTINUE;

    case STATE_S5_REQUEST_DOMAIN:
      {
        gsize name_len = parser->need - 2;

        /* The host is handed on as a C string: an embedded NUL would
         * silently truncate it. */
        if (memchr (buf, '\0', name_len) != NULL)
          return fail_request (parser, reply, TWP_SOCKS_REPLY_GENERAL_FAILURE,
                               error, TWP_SOCKS_ERROR_PROTOCOL,
                               "NUL byte in SOCKS5 domain name");
        parser->port = (guint16) ((buf[name_len] << 8) | buf[name_len + 1]);
        return finish_request (parser, g_strndup ((const char *) buf, name_len));
      }

    case STATE_S4_HEAD:
      if (buf[0] != 0x01)
        return fail_request (parser, reply, TWP_SOCKS_REPLY_COMMAND_NOT_SUPPORTED,
                             error, TWP_SOCKS_ERROR_UNSUPPORTED_COMMAND,
                             "Only the SOCKS4 CONNECT command is supported");
      parser->port = (guint16) ((buf[1] << 8) | buf[2]);
      memcpy (parser->ipv4, buf + 3, 4);
      expect (parser, STATE_S4_USERID, 0);
      return STEP_CONTINUE;

    case STATE_S4_USERID:
      /* C17: USERID carries the args, as tor's SOCKS4 client sends them. */
      memcpy (parser->args, buf, parser->buf_len);
      parser->args_len = parser->buf_len;
      if (!validate_args (parser, error))
        {
          append_reply (reply, 4, TWP_SOCKS_REPLY_NOT_ALLOWED);
          return STEP_ERROR;
        }
      /* SOCKS4a: 0.0.0.x with x != 0 means "a host name follows". */
      if (parser->ipv4[0] == 0 && parser->ipv4[1] == 0 && parser->ipv4[2] == 0
          && parser->ipv4[3] != 0)
        {
          expect (parser, STATE_S4_HOST, 0);
          return STEP_CONTINUE;
        }
      return finish_request (parser,
                             address_to_string (parser->ipv4, G_SOCKET_FAMILY_IPV4));

    case STATE_S4_HOST:
      if (parser->buf_len == 0)
        return fail_request (parser, reply, TWP_SOCKS_REPLY_GENERAL_FAILURE,
                             error, TWP_SOCKS_ERROR_PROTOCOL,
                             "Empty host name in SOCKS4a request");
      return finish_request (parser, g_strndup ((const char *) buf, parser->buf_len));

    case STATE_FINISHED:
    default:
      break;
    }

  g_assert_not_reached ();
  return STEP_ERROR;
}

static gboolean
state_is_nul_terminated (ParserState state)
{
  return state == STATE_S4_USERID || state == STATE_S4_HOST;
}

TwpSocksParseResult
twp_socks_parser_feed (TwpSocksParser *parser,
                       const guint8   *data,
                       gsize           len,
                       gsize          *consumed,
                       GByteArray     *reply,
                       GError        **error)
{
  gsize pos = 0;

  g_return_val_if_fail (parser != NULL, TWP_SOCKS_PARSE_ERROR);
  g_return_val_if_fail (data != NULL || len == 0, TWP_SOCKS_PARSE_ERROR);
  g_return_val_if_fail (consumed != NULL, TWP_SOCKS_PARSE_ERROR);
  g_return_val_if_fail (reply != NULL, TWP_SOCKS_PARSE_ERROR);
  g_return_val_if_fail (error == NULL || *error == NULL, TWP_SOCKS_PARSE_ERROR);

  *consumed = 0;
  if (parser->state == STATE_FINISHED)
    {
      g_set_error_literal (error, TWP_SOCKS_ERROR, TWP_SOCKS_ERROR_PROTOCOL,
                           "SOCKS handshake already finished");
      return TWP_SOCKS_PARSE_ERROR;
    }
  /* Zero-length fields are handled as soon as their length byte is, so
   * there is never anything to do without input. */
  if (len == 0)
    return TWP_SOCKS_PARSE_NEED_MORE;

  for (;;)
    {
      Step step;

      if (state_is_nul_terminated (parser->state))
        {
          /* Room for the rest of a maximal field plus one byte: seeing
           * SOCKS4_MAX_FIELD + 1 bytes without a NUL means too long. */
          gsize room = SOCKS4_MAX_FIELD + 1 - parser->buf_len;
          gsize avail = MIN (len - pos, room);
          const guint8 *nul = avail > 0 ? memchr (data + pos, '\0', avail) : NULL;

          if (nul != NULL)
            {
              gsize n = (gsize) (nul - (data + pos));

              memcpy (parser->buf + parser->buf_len, data + pos, n);
              parser->buf_len += n;
              pos += n + 1;
            }
          else
            {
              if (avail > 0)
                memcpy (parser->buf + parser->buf_len, data + pos, avail);
              parser->buf_len += avail;
              pos += avail;
              if (parser->buf_len > SOCKS4_MAX_FIELD)
                {
                  *consumed = pos;
                  parser->state = STATE_FINISHED;
                  fail_request (parser, reply, TWP_SOCKS_REPLY_GENERAL_FAILURE,
                                error, TWP_SOCKS_ERROR_PROTOCOL,
                                "SOCKS4 user ID or host name longer than 255 bytes");
                  return TWP_SOCKS_PARSE_ERROR;
                }
              *consumed = pos;
              return TWP_SOCKS_PARSE_NEED_MORE;
            }
        }
      else
        {
          gsize take = MIN (parser->need - parser->buf_len, len - pos);

          if (take > 0)
            memcpy (parser->buf + parser->buf_len, data + pos, take);
          parser->buf_len += take;
          pos += take;
          /* A zero-length field (ULEN or PLEN 0) completes without input. */
          if (parser->buf_len < parser->need)
            {
              *consumed = pos;
              return TWP_SOCKS_PARSE_NEED_MORE;
            }
        }

      step = process_field (parser, reply, error);
      *consumed = pos;
      switch (step)
        {
        case STEP_CONTINUE:
          break;
        case STEP_REPLY:
          return TWP_SOCKS_PARSE_REPLY;
        case STEP_DONE:
          parser->state = STATE_FINISHED;
          return TWP_SOCKS_PARSE_DONE;
        case STEP_ERROR:
        default:
          parser->state = STATE_FINISHED;
          return TWP_SOCKS_PARSE_ERROR;
        }
    }
}

/* ---- Async server handshake ---- */

typedef struct {
  TwpSocksParser *parser;
  /* The reply being written; it stays alive until the write completes. */
  GByteArray *reply;
  /* Bytes read but not parsed yet: [start, end). */
  guint8 buffer[HANDSHAKE_READ_SIZE];
  gsize start;
  gsize end;
  /* A parse error held back while its reply is written. */
  GError *pending_error;
  /* Set on success; stolen by _finish. */
  GBytes *leftover;
} HandshakeData;

static void
handshake_data_free (HandshakeData *data)
{
  twp_socks_parser_free (data->parser);
  g_byte_array_unref (data->reply);
  g_clear_error (&data->pending_error);
  g_clear_pointer (&data->leftover, g_bytes_unref);
  g_free (data);
}

static void handshake_step (GTask *task);

static void
handshake_read_cb (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  HandshakeData *data = g_task_get_task_data (task);
  GError *error = NULL;
  gssize n;

  n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, &error);
  if (n < 0)
    {
      g_task_return_error (task, error);
      return;
    }
  if (n == 0)
    {
      g_task_return_new_error (task, TWP_SOCKS_ERROR, TWP_SOCKS_ERROR_CLOSED,
                               "Connection closed during the SOCKS handshake");
      return;
    }
  data->end += (gsize) n;
  handshake_step (g_steal_pointer (&task));
}

static void
handshake_write_cb (GObject      *source,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  HandshakeData *data = g_task_get_task_data (task);
  GError *error = NULL;

  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, &error))
    {
      /* After a refusal, why we refused matters more than the failed
       * write of the refusal. */
      if (data->pending_error != NULL)
        {
          g_clear_error (&error);
          g_task_return_error (task, g_steal_pointer (&data->pending_error));
        }
      else
        g_task_return_error (task, error);
      return;
    }

  g_byte_array_set_size (data->reply, 0);
  if (data->pending_error != NULL)
    {
      g_task_return_error (task, g_steal_pointer (&data->pending_error));
      return;
    }
  handshake_step (g_steal_pointer (&task));
}

static void
handshake_write_reply (GTask         *task,
                       HandshakeData *data)
{
  GIOStream *stream = g_task_get_source_object (task);

  g_output_stream_write_all_async (g_io_stream_get_output_stream (stream),
                                   data->reply->data,
                                   data->reply->len,
                                   g_task_get_priority (task),
                                   g_task_get_cancellable (task),
                                   handshake_write_cb,
                                   task);
}

/* Takes ownership of @task: parses what is buffered, then reads, writes a
 * reply, or returns. Only one read or write is ever outstanding, and a
 * read starts only after the previous reply was fully written (C16). */
static void
handshake_step (GTask *task)
{
  HandshakeData *data = g_task_get_task_data (task);
  GIOStream *stream = g_task_get_source_object (task);

  while (data->start < data->end)
    {
      GError *error = NULL;
      gsize consumed = 0;
      TwpSocksParseResult result;

      result = twp_socks_parser_feed (data->parser,
                                      data->buffer + data->start,
                                      data->end - data->start,
                                      &consumed, data->reply, &error);
      data->start += consumed;

      switch (result)
        {
        case TWP_SOCKS_PARSE_NEED_MORE:
          break;

        case TWP_SOCKS_PARSE_REPLY:
          handshake_write_reply (task, data);
          return;

        case TWP_SOCKS_PARSE_DONE:
          data->leftover = g_bytes_new (data->buffer + data->start,
                                        data->end - data->start);
          g_task_return_pointer (task,
                                 twp_socks_parser_steal_request (data->parser),
                                 (GDestroyNotify) twp_socks_request_free);
          g_object_unref (task);
          return;

        case TWP_SOCKS_PARSE_ERROR:
        default:
          if (data->reply->len > 0)
            {
              data->pending_error = error;
              handshake_write_reply (task, data);
              return;
            }
          g_task_return_error (task, error);
          g_object_unref (task);
          return;
        }

      /* NEED_MORE consumes everything; never spin on a stuck parser. */
      if (result == TWP_SOCKS_PARSE_NEED_MORE)
        break;
    }

  /* NEED_MORE took every buffered byte (the parser keeps partial fields
   * itself), so the whole buffer is free for the next read. */
  data->start = data->end = 0;
  g_input_stream_read_async (g_io_stream_get_input_stream (stream),
                             data->buffer,
                             sizeof data->buffer,
                             g_task_get_priority (task),
                             g_task_get_cancellable (task),
                             handshake_read_cb,
                             task);
}

void
twp_socks_server_handshake_async (GIOStream             *stream,
                                  TwpSocksArgsValidator  validator,
                                  gpointer               validator_data,
                                  GCancellable          *cancellable,
                                  GAsyncReadyCallback    callback,
                                  gpointer               user_data)
{
  GTask *task;
  HandshakeData *data;

  g_return_if_fail (G_IS_IO_STREAM (stream));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (stream, cancellable, callback, user_data);
  g_task_set_source_tag (task, twp_socks_server_handshake_async);
  g_task_set_name (task, "twp-socks-server-handshake");

  data = g_new0 (HandshakeData, 1);
  data->parser = twp_socks_parser_new (validator, validator_data);
  data->reply = g_byte_array_new ();
  g_task_set_task_data (task, data, (GDestroyNotify) handshake_data_free);

  handshake_step (task);
}

TwpSocksRequest *
twp_socks_server_handshake_finish (GIOStream     *stream,
                                   GAsyncResult  *result,
                                   GBytes       **leftover,
                                   GError       **error)
{
  TwpSocksRequest *request;

  g_return_val_if_fail (g_task_is_valid (result, stream), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result, twp_socks_server_handshake_async),
                        NULL);

  request = g_task_propagate_pointer (G_TASK (result), error);
  if (leftover != NULL)
    {
      HandshakeData *data = g_task_get_task_data (G_TASK (result));

      *leftover = request != NULL ? g_steal_pointer (&data->leftover) : NULL;
    }
  return request;
}

static void
reply_write_cb (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  GError *error = NULL;

  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, &error))
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
}

void
twp_socks_server_reply_async (GIOStream           *stream,
                              TwpSocksRequest     *request,
                              TwpSocksReply        reply,
                              GCancellable        *cancellable,
                              GAsyncReadyCallback  callback,
                              gpointer             user_data)
{
  GTask *task;
  GBytes *bytes;

  g_return_if_fail (G_IS_IO_STREAM (stream));
  g_return_if_fail (request != NULL);
  g_return_if_fail (request->version == 4 || request->version == 5);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (stream, cancellable, callback, user_data);
  g_task_set_source_tag (task, twp_socks_server_reply_async);
  g_task_set_name (task, "twp-socks-server-reply");

  /* The task owns the bytes until the write has completed. */
  bytes = twp_socks_format_reply (request->version, reply);
  g_task_set_task_data (task, bytes, (GDestroyNotify) g_bytes_unref);

  g_output_stream_write_all_async (g_io_stream_get_output_stream (stream),
                                   g_bytes_get_data (bytes, NULL),
                                   g_bytes_get_size (bytes),
                                   G_PRIORITY_DEFAULT,
                                   cancellable,
                                   reply_write_cb,
                                   task);
}

gboolean
twp_socks_server_reply_finish (GIOStream     *stream,
                               GAsyncResult  *result,
                               GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, stream), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, twp_socks_server_reply_async),
                        FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}
