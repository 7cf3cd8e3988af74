/* SPDX-License-Identifier: BSD-3-Clause */
/* twp-loadgen: the load generator of the benchmark suite (bench/run).
 *
 * One program plays both ends of a tunnel: "serve" stands in for tor's
 * ORPort (an epoll server that sinks, sources or echoes per connection), and
 * the other modes stand in for tor's SOCKS client, connecting either
 * directly or through a SOCKS5 proxy with pluggable-transport arguments.
 *
 * Every connection starts with a 24-byte request header that tells the
 * server what to do, so one server process serves every test:
 *   "TWPL" op(1) reserved(3) seed(u32 LE) rate(u32 LE, bytes/s, 0 = as fast
 *   as possible) length(u64 LE)
 * op 'U': the server reads and checks `length` stream bytes, then answers
 *         "TWPR" status(u32 LE, 0 = every byte correct) checked(u64 LE).
 * op 'D': the server sends `length` stream bytes, then shuts down writing.
 * op 'E': the server echoes everything until EOF.
 *
 * The payload is an incompressible stream that both ends compute from the
 * seed and the byte offset, so the receiver checks every byte without the
 * sender shipping a digest. Results are single "RESULT key=value ..." lines
 * on stdout; the exit status is 0 only when every byte was correct. */
#define G_LOG_DOMAIN "twp-loadgen"

#include "config.h"

#include <glib.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HEADER_SIZE 24
#define RESULT_SIZE 16
/* The stream repeats a 64 KiB table XORed with a per-block key: as
 * unpredictable as a cipher for a compressor, and as cheap as memcpy. */
#define TABLE_WORDS 8192
#define IO_CHUNK (256 * 1024)
#define ECHO_BUF (64 * 1024)
/* A stalled transfer is an error, not a hang: no progress for this long. */
#define DEFAULT_TIMEOUT_S 60
/* A rate-limited reader takes at most this much time's worth per read. */
#define RATE_SLICE_MS 10

static guint64 stream_table[TABLE_WORDS];

/* ---- payload stream ---------------------------------------------------- */

static guint64
splitmix64 (guint64 *state)
{
  guint64 z = (*state += G_GUINT64_CONSTANT (0x9e3779b97f4a7c15));

  z = (z ^ (z >> 30)) * G_GUINT64_CONSTANT (0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * G_GUINT64_CONSTANT (0x94d049bb133111eb);
  return z ^ (z >> 31);
}

static void
stream_init (void)
{
  guint64 state = G_GUINT64_CONSTANT (0x74776c6f616467);

  for (gsize i = 0; i < TABLE_WORDS; i++)
    stream_table[i] = splitmix64 (&state);
}

static guint64
block_key (guint32 seed,
           guint64 block)
{
  guint64 state = ((guint64) seed << 40) ^ block;

  return splitmix64 (&state);
}

/* Little-endian words, so that every host computes the same bytes. */
static guint64
stream_word (guint32 seed,
             guint64 word_index)
{
  return GUINT64_TO_LE (stream_table[word_index % TABLE_WORDS] ^
                        block_key (seed, word_index / TABLE_WORDS));
}

static guint8
stream_byte (guint32 seed,
             guint64 offset)
{
  guint64 word = GUINT64_FROM_LE (stream_word (seed, offset / 8));

  return (guint8) (word >> (8 * (offset % 8)));
}

static void
stream_fill (guint32  seed,
             guint64  offset,
             guint8  *buf,
             gsize    len)
{
  while (len > 0)
    {
      if (offset % 8 == 0 && len >= 8)
        {
          guint64 w = offset / 8;
          gsize idx = w % TABLE_WORDS;
          gsize n = MIN (len / 8, TABLE_WORDS - idx);
          guint64 key = block_key (seed, w / TABLE_WORDS);

          for (gsize i = 0; i < n; i++)
            {
              guint64 v = GUINT64_TO_LE (stream_table[idx + i] ^ key);

              memcpy (buf + 8 * i, &v, 8);
            }
          buf += 8 * n;
          offset += 8 * n;
          len -= 8 * n;
          continue;
        }
      *buf++ = stream_byte (seed, offset++);
      len--;
    }
}

/* Returns TRUE when buf holds the stream's bytes at offset. */
static gboolean
stream_check (guint32       seed,
              guint64       offset,
              const guint8 *buf,
              gsize         len)
{
  while (len > 0)
    {
      if (offset % 8 == 0 && len >= 8)
        {
          guint64 w = offset / 8;
          gsize idx = w % TABLE_WORDS;
          gsize n = MIN (len / 8, TABLE_WORDS - idx);
          guint64 key = block_key (seed, w / TABLE_WORDS);
          guint64 diff = 0;

          for (gsize i = 0; i < n; i++)
            {
              guint64 v;

              memcpy (&v, buf + 8 * i, 8);
              diff |= v ^ GUINT64_TO_LE (stream_table[idx + i] ^ key);
            }
          if (diff != 0)
            return FALSE;
          buf += 8 * n;
          offset += 8 * n;
          len -= 8 * n;
          continue;
        }
      if (*buf++ != stream_byte (seed, offset++))
        return FALSE;
      len--;
    }
  return TRUE;
}

/* ---- small helpers ----------------------------------------------------- */

static gint64
now_us (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (gint64) ts.tv_sec * G_USEC_PER_SEC + ts.tv_nsec / 1000;
}

static void
put_le32 (guint8  *p,
          guint32  v)
{
  v = GUINT32_TO_LE (v);
  memcpy (p, &v, 4);
}

static void
put_le64 (guint8  *p,
          guint64  v)
{
  v = GUINT64_TO_LE (v);
  memcpy (p, &v, 8);
}

static guint32
get_le32 (const guint8 *p)
{
  guint32 v;

  memcpy (&v, p, 4);
  return GUINT32_FROM_LE (v);
}

static guint64
get_le64 (const guint8 *p)
{
  guint64 v;

  memcpy (&v, p, 8);
  return GUINT64_FROM_LE (v);
}

static void
print_cpu (const char *prefix)
{
  struct rusage ru;

  getrusage (RUSAGE_SELF, &ru);
  printf ("%sloadgen_cpu_user=%.3f loadgen_cpu_sys=%.3f\n", prefix,
          ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
          ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
}

static gboolean
parse_host_port (const char         *text,
                 struct sockaddr_in *addr)
{
  g_autofree char *host = NULL;
  const char *colon = strrchr (text, ':');
  guint64 port;

  if (colon == NULL || !g_ascii_string_to_unsigned (colon + 1, 10, 0, 65535, &port, NULL))
    return FALSE;
  host = g_strndup (text, colon - text);
  memset (addr, 0, sizeof *addr);
  addr->sin_family = AF_INET;
  addr->sin_port = htons ((guint16) port);
  return inet_pton (AF_INET, host, &addr->sin_addr) == 1;
}

static void
set_nonblocking (int      fd,
                 gboolean on)
{
  int flags = fcntl (fd, F_GETFL);

  fcntl (fd, F_SETFL, on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK);
}

/* ---- client side: connecting and SOCKS5 -------------------------------- */

typedef struct {
  struct sockaddr_in target;       /* the sink, or the bridge address under SOCKS */
  struct sockaddr_in socks;
  gboolean use_socks;
  const char *socks_args;          /* RFC 1929 UNAME, PASSWD is "\0" */
  int timeout_s;
} Dialer;

static gboolean
write_full (int           fd,
            const void   *data,
            gsize         len)
{
  const guint8 *p = data;

  while (len > 0)
    {
      ssize_t n = write (fd, p, len);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return FALSE;
      p += n;
      len -= n;
    }
  return TRUE;
}

static gboolean
read_full (int    fd,
           void  *data,
           gsize  len)
{
  guint8 *p = data;

  while (len > 0)
    {
      ssize_t n = read (fd, p, len);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return FALSE;
      p += n;
      len -= n;
    }
  return TRUE;
}

static gboolean
socks_handshake (const Dialer *dialer,
                 int           fd,
                 const char  **why)
{
  guint8 buf[600];
  gsize args_len = dialer->socks_args != NULL ? strlen (dialer->socks_args) : 0;
  gsize pos = 0;

  /* Offer "username/password" (our arguments) when there are any. */
  if (args_len > 0)
    {
      static const guint8 hello[] = { 5, 2, 0, 2 };

      if (!write_full (fd, hello, sizeof hello))
        return (*why = "socks: write greeting", FALSE);
    }
  else
    {
      static const guint8 hello[] = { 5, 1, 0 };

      if (!write_full (fd, hello, sizeof hello))
        return (*why = "socks: write greeting", FALSE);
    }
  if (!read_full (fd, buf, 2) || buf[0] != 5)
    return (*why = "socks: bad method reply", FALSE);
  if (buf[1] == 2)
    {
      if (args_len == 0 || args_len > 255)
        return (*why = "socks: arguments must be 1..255 bytes", FALSE);
      buf[pos++] = 1;
      buf[pos++] = (guint8) args_len;
      memcpy (buf + pos, dialer->socks_args, args_len);
      pos += args_len;
      buf[pos++] = 1;
      buf[pos++] = 0;
      if (!write_full (fd, buf, pos))
        return (*why = "socks: write auth", FALSE);
      if (!read_full (fd, buf, 2) || buf[1] != 0)
        return (*why = "socks: auth refused", FALSE);
    }
  else if (buf[1] != 0)
    return (*why = "socks: no acceptable method", FALSE);

  buf[0] = 5;
  buf[1] = 1;
  buf[2] = 0;
  buf[3] = 1;
  memcpy (buf + 4, &dialer->target.sin_addr, 4);
  memcpy (buf + 8, &dialer->target.sin_port, 2);
  if (!write_full (fd, buf, 10))
    return (*why = "socks: write connect", FALSE);
  if (!read_full (fd, buf, 10))
    return (*why = "socks: connect reply cut short", FALSE);
  if (buf[0] != 5 || buf[1] != 0)
    return (*why = "socks: connect refused", FALSE);
  if (buf[3] != 1)
    return (*why = "socks: unexpected reply address type", FALSE);
  return TRUE;
}

/* A blocking, connected socket (through SOCKS when asked), or -1. */
static int
dial (const Dialer  *dialer,
      const char   **why)
{
  const struct sockaddr_in *addr = dialer->use_socks ? &dialer->socks : &dialer->target;
  struct timeval tv = { .tv_sec = dialer->timeout_s };
  int one = 1;
  int fd;

  fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return (*why = "socket() failed", -1);
  /* Bounded blocking calls: a stuck tunnel fails the run instead of hanging. */
  setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  /* The header and the first data go out at once, as tor's cells would. */
  setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect (fd, (const struct sockaddr *) addr, sizeof *addr) < 0)
    {
      close (fd);
      return (*why = "connect() failed", -1);
    }
  if (dialer->use_socks && !socks_handshake (dialer, fd, why))
    {
      close (fd);
      return -1;
    }
  return fd;
}

static gboolean
send_header (int      fd,
             char     op,
             guint32  seed,
             guint32  rate,
             guint64  length)
{
  guint8 h[HEADER_SIZE] = { 'T', 'W', 'P', 'L', (guint8) op, 0, 0, 0 };

  put_le32 (h + 8, seed);
  put_le32 (h + 12, rate);
  put_le64 (h + 16, length);
  return write_full (fd, h, sizeof h);
}

/* Sends to_send stream bytes and receives (and checks) to_recv stream bytes
 * at the same time, so that an echo never deadlocks on full buffers. */
static gboolean
pump (int           fd,
      guint32       seed,
      guint64       to_send,
      guint64       to_recv,
      int           timeout_s,
      const char  **why)
{
  g_autofree guint8 *out = g_malloc (IO_CHUNK);
  g_autofree guint8 *in = g_malloc (IO_CHUNK);
  guint64 sent = 0;
  guint64 received = 0;
  gsize out_len = 0;
  gsize out_pos = 0;
  gboolean ok = TRUE;

  set_nonblocking (fd, TRUE);
  while (sent < to_send || received < to_recv)
    {
      struct pollfd p = { .fd = fd, .events = 0 };
      int r;

      if (sent < to_send)
        p.events |= POLLOUT;
      if (received < to_recv)
        p.events |= POLLIN;
      r = poll (&p, 1, timeout_s * 1000);
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        {
          *why = "transfer stalled (timeout)";
          ok = FALSE;
          break;
        }
      if (p.revents & POLLIN)
        {
          ssize_t n = read (fd, in, MIN ((guint64) IO_CHUNK, to_recv - received));

          if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            {
              *why = n == 0 ? "early EOF" : "read error";
              ok = FALSE;
              break;
            }
          if (n > 0)
            {
              if (!stream_check (seed, received, in, n))
                {
                  *why = "CORRUPT: received bytes differ from the stream";
                  ok = FALSE;
                  break;
                }
              received += n;
            }
        }
      else if (p.revents & (POLLERR | POLLHUP))
        {
          if (!(p.events & POLLOUT) || (p.revents & POLLERR))
            {
              *why = "connection closed";
              ok = FALSE;
              break;
            }
        }
      if ((p.revents & POLLOUT) && sent < to_send)
        {
          ssize_t n;

          if (out_pos == out_len)
            {
              out_len = MIN ((guint64) IO_CHUNK, to_send - sent);
              out_pos = 0;
              stream_fill (seed, sent, out, out_len);
            }
          n = write (fd, out + out_pos, out_len - out_pos);
          if (n < 0 && errno != EAGAIN && errno != EINTR)
            {
              *why = "write error";
              ok = FALSE;
              break;
            }
          if (n > 0)
            {
              out_pos += n;
              sent += n;
            }
        }
    }
  set_nonblocking (fd, FALSE);
  return ok;
}

/* Reads until EOF, so that the sender's shutdown is seen and nothing is left. */
static gboolean
expect_eof (int fd)
{
  char c;

  return read (fd, &c, 1) == 0;
}

/* ---- client modes ------------------------------------------------------ */

typedef struct {
  Dialer dialer;
  guint64 bytes;
  guint32 seed;
  guint32 rate;
  int count;
  int size;
  int conns;
  int threads;
} Job;

static double
mib_per_s (guint64 bytes,
           gint64  us)
{
  return us > 0 ? bytes / 1048576.0 / (us / 1e6) : 0.0;
}

static int
run_upload (Job *job)
{
  const char *why = NULL;
  guint8 result[RESULT_SIZE];
  gint64 start;
  gint64 elapsed;
  gboolean ok;
  int fd;

  fd = dial (&job->dialer, &why);
  if (fd < 0)
    {
      printf ("RESULT mode=upload ok=0 error=\"%s\"\n", why);
      return 1;
    }
  start = now_us ();
  ok = send_header (fd, 'U', job->seed, job->rate, job->bytes) &&
       pump (fd, job->seed, job->bytes, 0, job->dialer.timeout_s, &why);
  /* The sink's verdict arrives after it checked the last byte. */
  if (ok && !read_full (fd, result, sizeof result))
    ok = (why = "no verdict from the sink", FALSE);
  elapsed = now_us () - start;
  if (ok && (memcmp (result, "TWPR", 4) != 0 || get_le32 (result + 4) != 0 ||
             get_le64 (result + 8) != job->bytes))
    ok = (why = "CORRUPT: the sink saw wrong bytes", FALSE);
  shutdown (fd, SHUT_WR);
  if (ok && !expect_eof (fd))
    ok = (why = "no EOF after the verdict", FALSE);
  close (fd);
  printf ("RESULT mode=upload ok=%d bytes=%" G_GUINT64_FORMAT " seconds=%.6f mib_per_s=%.1f%s%s%s\n",
          ok, job->bytes, elapsed / 1e6, mib_per_s (job->bytes, elapsed),
          ok ? "" : " error=\"", ok ? "" : why, ok ? "" : "\"");
  return ok ? 0 : 1;
}

static int
run_download (Job *job)
{
  const char *why = NULL;
  gint64 start;
  gint64 elapsed;
  gboolean ok;
  int fd;

  fd = dial (&job->dialer, &why);
  if (fd < 0)
    {
      printf ("RESULT mode=download ok=0 error=\"%s\"\n", why);
      return 1;
    }
  start = now_us ();
  ok = send_header (fd, 'D', job->seed, 0, job->bytes) &&
       pump (fd, job->seed, 0, job->bytes, job->dialer.timeout_s, &why);
  elapsed = now_us () - start;
  if (ok && !expect_eof (fd))
    ok = (why = "extra bytes or no EOF after the stream", FALSE);
  close (fd);
  printf ("RESULT mode=download ok=%d bytes=%" G_GUINT64_FORMAT " seconds=%.6f mib_per_s=%.1f%s%s%s\n",
          ok, job->bytes, elapsed / 1e6, mib_per_s (job->bytes, elapsed),
          ok ? "" : " error=\"", ok ? "" : why, ok ? "" : "\"");
  return ok ? 0 : 1;
}

/* One connection, job->bytes each way at the same time. */
static gboolean
echo_once (Job          *job,
           guint32       seed,
           const char  **why)
{
  gboolean ok;
  int fd;

  fd = dial (&job->dialer, why);
  if (fd < 0)
    return FALSE;
  ok = send_header (fd, 'E', seed, 0, 0) &&
       pump (fd, seed, job->bytes, job->bytes, job->dialer.timeout_s, why);
  shutdown (fd, SHUT_WR);
  if (ok && !expect_eof (fd))
    ok = (*why = "no EOF after the echo", FALSE);
  close (fd);
  return ok;
}

static int
run_echo (Job *job)
{
  const char *why = "";
  gint64 start = now_us ();
  gboolean ok = echo_once (job, job->seed, &why);
  gint64 elapsed = now_us () - start;

  printf ("RESULT mode=echo ok=%d bytes=%" G_GUINT64_FORMAT " seconds=%.6f mib_per_s=%.1f error=\"%s\"\n",
          ok, job->bytes, elapsed / 1e6, mib_per_s (job->bytes, elapsed), ok ? "" : why);
  return ok ? 0 : 1;
}

static int
compare_gint64 (const void *a,
                const void *b)
{
  gint64 x = *(const gint64 *) a;
  gint64 y = *(const gint64 *) b;

  return x < y ? -1 : x > y;
}

static gint64
percentile (const gint64 *sorted,
            int           n,
            double        p)
{
  int i = (int) (p / 100.0 * n + 0.5) - 1;

  return sorted[CLAMP (i, 0, n - 1)];
}

static int
run_rr_latency (Job *job)
{
  g_autofree gint64 *samples = g_new (gint64, job->count);
  g_autofree guint8 *out = g_malloc (job->size);
  g_autofree guint8 *in = g_malloc (job->size);
  const char *why = "";
  guint64 offset = 0;
  gboolean ok;
  double sum = 0;
  int fd;

  fd = dial (&job->dialer, &why);
  if (fd < 0)
    {
      printf ("RESULT mode=rr-latency ok=0 error=\"%s\"\n", why);
      return 1;
    }
  ok = send_header (fd, 'E', job->seed, 0, 0);
  for (int i = 0; ok && i < job->count; i++)
    {
      gint64 t0;

      stream_fill (job->seed, offset, out, job->size);
      t0 = now_us ();
      if (!write_full (fd, out, job->size) || !read_full (fd, in, job->size))
        ok = (why = "round trip failed", FALSE);
      else if (!stream_check (job->seed, offset, in, job->size))
        ok = (why = "CORRUPT: echo differs", FALSE);
      samples[i] = now_us () - t0;
      offset += job->size;
    }
  shutdown (fd, SHUT_WR);
  if (ok && !expect_eof (fd))
    ok = (why = "no EOF after the echo", FALSE);
  close (fd);
  if (!ok)
    {
      printf ("RESULT mode=rr-latency ok=0 error=\"%s\"\n", why);
      return 1;
    }
  for (int i = 0; i < job->count; i++)
    sum += samples[i];
  qsort (samples, job->count, sizeof (gint64), compare_gint64);
  printf ("RESULT mode=rr-latency ok=1 count=%d size=%d p50_us=%" G_GINT64_FORMAT
          " p99_us=%" G_GINT64_FORMAT " min_us=%" G_GINT64_FORMAT " max_us=%" G_GINT64_FORMAT
          " mean_us=%.1f\n",
          job->count, job->size, percentile (samples, job->count, 50),
          percentile (samples, job->count, 99), samples[0], samples[job->count - 1],
          sum / job->count);
  return 0;
}

typedef struct {
  Job *job;
  int index;
  gboolean ok;
  const char *why;
} Worker;

static void *
concurrent_worker (void *data)
{
  Worker *w = data;

  w->ok = echo_once (w->job, w->job->seed + w->index, &w->why);
  return NULL;
}

static gboolean
spawn_workers (Worker  *workers,
               int      n,
               void  *(*func) (void *),
               gboolean wait)
{
  g_autofree pthread_t *threads = g_new (pthread_t, n);
  pthread_attr_t attr;
  gboolean ok = TRUE;

  /* Small stacks: a worker only holds a few locals (buffers are on the heap). */
  pthread_attr_init (&attr);
  pthread_attr_setstacksize (&attr, 256 * 1024);
  for (int i = 0; i < n; i++)
    if (pthread_create (&threads[i], &attr, func, &workers[i]) != 0)
      {
        g_printerr ("pthread_create failed\n");
        exit (1);
      }
  pthread_attr_destroy (&attr);
  if (wait)
    for (int i = 0; i < n; i++)
      pthread_join (threads[i], NULL);
  return ok;
}

static int
run_concurrent (Job *job)
{
  g_autofree Worker *workers = g_new0 (Worker, job->conns);
  const char *why = "";
  gint64 start;
  gint64 elapsed;
  int errors = 0;

  for (int i = 0; i < job->conns; i++)
    {
      workers[i].job = job;
      workers[i].index = i;
    }
  start = now_us ();
  spawn_workers (workers, job->conns, concurrent_worker, TRUE);
  elapsed = now_us () - start;
  for (int i = 0; i < job->conns; i++)
    if (!workers[i].ok)
      {
        errors++;
        why = workers[i].why;
      }
  printf ("RESULT mode=concurrent ok=%d conns=%d bytes_each=%" G_GUINT64_FORMAT
          " seconds=%.6f errors=%d error=\"%s\"\n",
          errors == 0, job->conns, job->bytes, elapsed / 1e6, errors, why);
  return errors == 0 ? 0 : 1;
}

/* idle-hold: open conns tunnels with one checked round trip each, report
 * READY, hold them until stdin closes, then check each one still works. */
typedef struct {
  Job *job;
  int *fds;
  int first;
  int stride;
  int errors;
  const char *why;
} Opener;

static gboolean
tunnel_round_trip (int      fd,
                   guint32  seed,
                   guint64  offset)
{
  guint8 out = stream_byte (seed, offset);
  guint8 in;

  return write_full (fd, &out, 1) && read_full (fd, &in, 1) && in == out;
}

static void *
opener_worker (void *data)
{
  Opener *o = data;

  for (int i = o->first; i < o->job->conns; i += o->stride)
    {
      int fd = dial (&o->job->dialer, &o->why);

      if (fd >= 0 && (!send_header (fd, 'E', o->job->seed + i, 0, 0) ||
                      !tunnel_round_trip (fd, o->job->seed + i, 0)))
        {
          o->why = "first round trip failed";
          close (fd);
          fd = -1;
        }
      if (fd < 0)
        o->errors++;
      o->fds[i] = fd;
    }
  return NULL;
}

static int
run_idle_hold (Job *job)
{
  g_autofree int *fds = g_new (int, job->conns);
  g_autofree Opener *openers = g_new0 (Opener, job->threads);
  g_autofree pthread_t *threads = g_new (pthread_t, job->threads);
  const char *why = "";
  char line[64];
  gint64 start = now_us ();
  int errors = 0;
  int late_errors = 0;
  int open = 0;

  for (int t = 0; t < job->threads; t++)
    {
      openers[t] = (Opener) { .job = job, .fds = fds, .first = t, .stride = job->threads };
      if (pthread_create (&threads[t], NULL, opener_worker, &openers[t]) != 0)
        {
          g_printerr ("pthread_create failed\n");
          return 1;
        }
    }
  for (int t = 0; t < job->threads; t++)
    {
      pthread_join (threads[t], NULL);
      errors += openers[t].errors;
      if (openers[t].errors > 0)
        why = openers[t].why;
    }
  for (int i = 0; i < job->conns; i++)
    open += fds[i] >= 0;
  printf ("READY open=%d errors=%d seconds=%.3f error=\"%s\"\n", open, errors,
          (now_us () - start) / 1e6, why);
  fflush (stdout);

  /* The driver measures memory now, then closes our stdin. */
  while (fgets (line, sizeof line, stdin) != NULL)
    ;

  for (int i = 0; i < job->conns; i++)
    if (fds[i] >= 0)
      {
        if (!tunnel_round_trip (fds[i], job->seed + i, 1))
          late_errors++;
        close (fds[i]);
      }
  printf ("RESULT mode=idle-hold ok=%d conns=%d open=%d errors=%d late_errors=%d error=\"%s\"\n",
          errors == 0 && late_errors == 0, job->conns, open, errors, late_errors, why);
  return errors == 0 && late_errors == 0 ? 0 : 1;
}

/* ---- server: sink, source and echo on one epoll loop ------------------- */

typedef enum {
  SERVE_HEADER,
  SERVE_SINK,
  SERVE_SOURCE,
  SERVE_ECHO,
  SERVE_DRAIN,          /* our part is done: wait for the peer's EOF */
} ServeState;

typedef struct ServeConn ServeConn;
struct ServeConn {
  int fd;
  ServeState state;
  guint8 header[HEADER_SIZE];
  gsize header_len;
  guint32 seed;
  guint32 rate;
  guint64 length;
  guint64 done;
  gboolean corrupt;
  gboolean paused;
  gint64 started_at;
  gint64 resume_at;
  guint8 *buf;          /* echo and source data; NULL while idle */
  gsize buf_len;
  gsize buf_pos;
  gboolean peer_eof;
  ServeConn *next_paused;
};

typedef struct {
  int epfd;
  ServeConn *paused;    /* rate-limited connections waiting for their slot */
  guint8 *scratch;
  guint64 n_conns;
  guint64 n_corrupt;
} Server;

static void
serve_set_events (Server    *server,
                  ServeConn *c,
                  guint32    events)
{
  struct epoll_event ev = { .events = events, .data.ptr = c };

  epoll_ctl (server->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void
serve_close (Server    *server,
             ServeConn *c)
{
  epoll_ctl (server->epfd, EPOLL_CTL_DEL, c->fd, NULL);
  close (c->fd);
  g_free (c->buf);
  g_free (c);
}

/* Returns FALSE when the connection is gone. */
static gboolean
serve_sink (Server    *server,
            ServeConn *c)
{
  while (c->done < c->length)
    {
      gsize want = MIN ((guint64) IO_CHUNK, c->length - c->done);
      ssize_t n;

      if (c->rate > 0)
        {
          gint64 now = now_us ();
          /* When the bytes read so far are due at this rate. */
          gint64 due = c->started_at + (gint64) (c->done * 1e6 / c->rate);

          if (due > now)
            {
              c->paused = TRUE;
              c->resume_at = due;
              c->next_paused = server->paused;
              server->paused = c;
              serve_set_events (server, c, 0);
              return TRUE;
            }
          want = MIN (want, MAX (1, (gsize) c->rate * RATE_SLICE_MS / 1000));
        }
      n = read (c->fd, server->scratch, want);
      if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return TRUE;
      if (n <= 0)
        {
          serve_close (server, c);
          return FALSE;
        }
      if (!c->corrupt && !stream_check (c->seed, c->done, server->scratch, n))
        {
          c->corrupt = TRUE;
          server->n_corrupt++;
        }
      c->done += n;
    }
  {
    guint8 result[RESULT_SIZE] = { 'T', 'W', 'P', 'R' };

    put_le32 (result + 4, c->corrupt ? 1 : 0);
    put_le64 (result + 8, c->done);
    /* 16 bytes always fit an empty socket buffer. */
    if (write (c->fd, result, sizeof result) != sizeof result)
      {
        serve_close (server, c);
        return FALSE;
      }
  }
  c->state = SERVE_DRAIN;
  return TRUE;
}

static gboolean
serve_source (Server    *server,
              ServeConn *c)
{
  if (c->buf == NULL)
    c->buf = g_malloc (IO_CHUNK);
  while (c->done < c->length)
    {
      ssize_t n;

      if (c->buf_pos == c->buf_len)
        {
          c->buf_len = MIN ((guint64) IO_CHUNK, c->length - c->done);
          c->buf_pos = 0;
          stream_fill (c->seed, c->done, c->buf, c->buf_len);
        }
      n = write (c->fd, c->buf + c->buf_pos, c->buf_len - c->buf_pos);
      if (n < 0 && (errno == EAGAIN || errno == EINTR))
        {
          serve_set_events (server, c, EPOLLOUT | EPOLLIN);
          return TRUE;
        }
      if (n <= 0)
        {
          serve_close (server, c);
          return FALSE;
        }
      c->buf_pos += n;
      c->done += n;
    }
  g_clear_pointer (&c->buf, g_free);
  shutdown (c->fd, SHUT_WR);
  c->state = SERVE_DRAIN;
  serve_set_events (server, c, EPOLLIN);
  return TRUE;
}

static gboolean
serve_echo (Server    *server,
            ServeConn *c)
{
  for (;;)
    {
      ssize_t n;

      if (c->buf != NULL && c->buf_pos < c->buf_len)
        {
          n = write (c->fd, c->buf + c->buf_pos, c->buf_len - c->buf_pos);
          if (n < 0 && (errno == EAGAIN || errno == EINTR))
            {
              /* Stop reading until the peer takes what we owe it. */
              serve_set_events (server, c, EPOLLOUT);
              return TRUE;
            }
          if (n <= 0)
            {
              serve_close (server, c);
              return FALSE;
            }
          c->buf_pos += n;
          continue;
        }
      /* Idle tunnels hold no buffer. */
      g_clear_pointer (&c->buf, g_free);
      if (c->peer_eof)
        {
          serve_close (server, c);
          return FALSE;
        }
      n = read (c->fd, server->scratch, ECHO_BUF);
      if (n < 0 && (errno == EAGAIN || errno == EINTR))
        {
          serve_set_events (server, c, EPOLLIN);
          return TRUE;
        }
      if (n < 0)
        {
          serve_close (server, c);
          return FALSE;
        }
      if (n == 0)
        {
          c->peer_eof = TRUE;
          shutdown (c->fd, SHUT_WR);
          continue;
        }
      c->buf = g_memdup2 (server->scratch, n);
      c->buf_len = n;
      c->buf_pos = 0;
    }
}

static void
serve_event (Server    *server,
             ServeConn *c)
{
  if (c->state == SERVE_HEADER)
    {
      ssize_t n = read (c->fd, c->header + c->header_len, HEADER_SIZE - c->header_len);

      if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
      if (n <= 0)
        {
          serve_close (server, c);
          return;
        }
      c->header_len += n;
      if (c->header_len < HEADER_SIZE)
        return;
      if (memcmp (c->header, "TWPL", 4) != 0)
        {
          g_printerr ("serve: bad request header\n");
          server->n_corrupt++;
          serve_close (server, c);
          return;
        }
      c->seed = get_le32 (c->header + 8);
      c->rate = get_le32 (c->header + 12);
      c->length = get_le64 (c->header + 16);
      c->started_at = now_us ();
      switch (c->header[4])
        {
        case 'U':
          c->state = SERVE_SINK;
          break;
        case 'D':
          c->state = SERVE_SOURCE;
          break;
        case 'E':
          c->state = SERVE_ECHO;
          break;
        default:
          g_printerr ("serve: unknown op\n");
          serve_close (server, c);
          return;
        }
    }

  switch (c->state)
    {
    case SERVE_SINK:
      serve_sink (server, c);
      break;
    case SERVE_SOURCE:
      serve_source (server, c);
      break;
    case SERVE_ECHO:
      serve_echo (server, c);
      break;
    case SERVE_DRAIN:
      {
        ssize_t n = read (c->fd, server->scratch, IO_CHUNK);

        if (n < 0 && (errno == EAGAIN || errno == EINTR))
          return;
        if (n > 0)
          {
            /* Nothing may follow a finished request. */
            server->n_corrupt++;
            g_printerr ("serve: unexpected bytes after the request\n");
          }
        serve_close (server, c);
      }
      break;
    case SERVE_HEADER:
    default:
      break;
    }
}

static int
run_serve (const char *listen_on)
{
  struct sockaddr_in addr;
  socklen_t addr_len = sizeof addr;
  struct epoll_event ev;
  struct epoll_event events[256];
  Server server = { 0 };
  int one = 1;
  int lfd;

  if (!parse_host_port (listen_on, &addr))
    {
      g_printerr ("--listen needs IPv4:PORT\n");
      return 2;
    }
  lfd = socket (AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  setsockopt (lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  /* A deep backlog: the concurrent test connects in a burst. */
  if (bind (lfd, (struct sockaddr *) &addr, sizeof addr) < 0 || listen (lfd, 4096) < 0)
    {
      g_printerr ("serve: cannot listen on %s: %s\n", listen_on, g_strerror (errno));
      return 1;
    }
  getsockname (lfd, (struct sockaddr *) &addr, &addr_len);
  printf ("LISTEN %u\n", ntohs (addr.sin_port));
  fflush (stdout);

  server.epfd = epoll_create1 (EPOLL_CLOEXEC);
  server.scratch = g_malloc (IO_CHUNK);
  ev = (struct epoll_event) { .events = EPOLLIN, .data.ptr = NULL };
  epoll_ctl (server.epfd, EPOLL_CTL_ADD, lfd, &ev);
  /* stdin closing (the driver going away) ends the server. */
  ev = (struct epoll_event) { .events = EPOLLIN, .data.ptr = &server };
  epoll_ctl (server.epfd, EPOLL_CTL_ADD, STDIN_FILENO, &ev);

  for (;;)
    {
      int timeout = -1;
      int n;

      if (server.paused != NULL)
        {
          gint64 now = now_us ();
          gint64 earliest = G_MAXINT64;

          for (ServeConn *c = server.paused; c != NULL; c = c->next_paused)
            earliest = MIN (earliest, c->resume_at);
          timeout = earliest <= now ? 0 : (int) ((earliest - now + 999) / 1000);
        }
      n = epoll_wait (server.epfd, events, G_N_ELEMENTS (events), timeout);
      if (n < 0 && errno != EINTR)
        break;

      /* Rate-limited readers whose slot came: read again. */
      if (server.paused != NULL)
        {
          gint64 now = now_us ();
          ServeConn **link = &server.paused;

          while (*link != NULL)
            {
              ServeConn *c = *link;

              if (c->resume_at <= now)
                {
                  *link = c->next_paused;
                  c->paused = FALSE;
                  serve_set_events (&server, c, EPOLLIN);
                }
              else
                link = &c->next_paused;
            }
        }

      for (int i = 0; i < n; i++)
        {
          if (events[i].data.ptr == NULL)
            {
              int fd;

              while ((fd = accept4 (lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
                {
                  ServeConn *c = g_new0 (ServeConn, 1);

                  setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                  c->fd = fd;
                  ev = (struct epoll_event) { .events = EPOLLIN, .data.ptr = c };
                  epoll_ctl (server.epfd, EPOLL_CTL_ADD, fd, &ev);
                  server.n_conns++;
                }
              continue;
            }
          if (events[i].data.ptr == &server)
            {
              char discard[256];

              if (read (STDIN_FILENO, discard, sizeof discard) <= 0)
                goto out;
              continue;
            }
          serve_event (&server, events[i].data.ptr);
        }
    }
out:
  printf ("SERVE conns=%" G_GUINT64_FORMAT " corrupt=%" G_GUINT64_FORMAT "\n",
          server.n_conns, server.n_corrupt);
  print_cpu ("SERVE ");
  return server.n_corrupt == 0 ? 0 : 1;
}

/* ---- main -------------------------------------------------------------- */

static guint64
parse_size (const char *text)
{
  char *end = NULL;
  guint64 v = g_ascii_strtoull (text, &end, 10);

  if (end == NULL || end == text)
    return 0;
  switch (g_ascii_tolower (*end))
    {
    case 'k':
      return v * 1024;
    case 'm':
      return v * 1024 * 1024;
    case 'g':
      return v * 1024 * 1024 * 1024;
    default:
      return v;
    }
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *target = NULL;
  g_autofree char *socks = NULL;
  g_autofree char *socks_args = NULL;
  g_autofree char *listen_on = NULL;
  g_autofree char *bytes = NULL;
  g_autofree char *rate = NULL;
  Job job = { .seed = 1, .count = 2000, .size = 100, .conns = 500, .threads = 8 };
  int timeout_s = DEFAULT_TIMEOUT_S;
  const char *mode;
  int status;
  const GOptionEntry entries[] = {
    { "listen", 0, 0, G_OPTION_ARG_STRING, &listen_on, "serve: address (default 127.0.0.1:0)", "IP:PORT" },
    { "target", 0, 0, G_OPTION_ARG_STRING, &target, "The sink, or the bridge address sent in SOCKS CONNECT", "IP:PORT" },
    { "socks", 0, 0, G_OPTION_ARG_STRING, &socks, "Connect through this SOCKS5 proxy", "IP:PORT" },
    { "socks-args", 0, 0, G_OPTION_ARG_STRING, &socks_args, "Pluggable-transport arguments (SOCKS username)", "K=V;..." },
    { "bytes", 0, 0, G_OPTION_ARG_STRING, &bytes, "Bytes to move (suffix k, m, g)", "N" },
    { "rate", 0, 0, G_OPTION_ARG_STRING, &rate, "upload: the sink reads at most this many bytes/s", "N" },
    { "count", 0, 0, G_OPTION_ARG_INT, &job.count, "rr-latency: round trips (default 2000)", "N" },
    { "size", 0, 0, G_OPTION_ARG_INT, &job.size, "rr-latency: message size (default 100)", "N" },
    { "conns", 0, 0, G_OPTION_ARG_INT, &job.conns, "concurrent, idle-hold: connections (default 500)", "N" },
    { "threads", 0, 0, G_OPTION_ARG_INT, &job.threads, "idle-hold: connecting threads (default 8)", "N" },
    { "seed", 0, 0, G_OPTION_ARG_INT, &job.seed, "Payload stream seed", "N" },
    { "timeout", 0, 0, G_OPTION_ARG_INT, &timeout_s, "Seconds without progress before failing (default 60)", "S" },
    { NULL }
  };

  signal (SIGPIPE, SIG_IGN);
  context = g_option_context_new ("MODE - load generator for bench/run");
  g_option_context_add_main_entries (context, entries, NULL);
  g_option_context_set_description (context,
    "Modes: serve, upload, download, echo, rr-latency, concurrent, idle-hold.\n"
    "Results are printed as RESULT key=value lines; exit status 0 means every byte was correct.");
  if (!g_option_context_parse (context, &argc, &argv, &error) || argc != 2)
    {
      g_printerr ("%s\n", error != NULL ? error->message : "give exactly one MODE (see --help)");
      return 2;
    }
  mode = argv[1];
  stream_init ();
  setvbuf (stdout, NULL, _IOLBF, 0);

  if (g_str_equal (mode, "serve"))
    return run_serve (listen_on != NULL ? listen_on : "127.0.0.1:0");

  job.bytes = bytes != NULL ? parse_size (bytes) : 1024 * 1024;
  job.rate = rate != NULL ? (guint32) MIN (parse_size (rate), G_MAXUINT32) : 0;
  job.dialer.timeout_s = MAX (1, timeout_s);
  job.dialer.socks_args = socks_args;
  if (target == NULL || !parse_host_port (target, &job.dialer.target))
    {
      g_printerr ("--target IP:PORT is required\n");
      return 2;
    }
  if (socks != NULL)
    {
      job.dialer.use_socks = TRUE;
      if (!parse_host_port (socks, &job.dialer.socks))
        {
          g_printerr ("--socks needs IP:PORT\n");
          return 2;
        }
    }
  if (job.count < 1 || job.size < 1 || job.conns < 1 || job.threads < 1)
    {
      g_printerr ("--count, --size, --conns and --threads must be positive\n");
      return 2;
    }

  if (g_str_equal (mode, "upload"))
    status = run_upload (&job);
  else if (g_str_equal (mode, "download"))
    status = run_download (&job);
  else if (g_str_equal (mode, "echo"))
    status = run_echo (&job);
  else if (g_str_equal (mode, "rr-latency"))
    status = run_rr_latency (&job);
  else if (g_str_equal (mode, "concurrent"))
    status = run_concurrent (&job);
  else if (g_str_equal (mode, "idle-hold"))
    status = run_idle_hold (&job);
  else
    {
      g_printerr ("unknown mode %s\n", mode);
      return 2;
    }
  print_cpu ("CPU ");
  return status;
}
