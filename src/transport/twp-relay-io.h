/* SPDX-License-Identifier: BSD-3-Clause */
/* The relay's I/O on one end of a tunnel (private to the transport
 * library): a read into the caller's buffer and a vectored write, each
 * completed by a callback from the main loop. The fields are the
 * implementation's; the owner asks through the functions below. */
#pragma once

#include <gio/gio.h>

#include "twp-reactor.h"

G_BEGIN_DECLS

/* Data slices (one per frame) written with one writev. */
#define TWP_RELAY_IO_MAX_VECTORS 64

/* @n: bytes read, 0 at EOF, -1 with @error. */
typedef void (*TwpRelayIoReadFunc)  (gpointer  owner,
                                     gssize    n,
                                     GError   *error);
/* @error: NULL once every byte was written. */
typedef void (*TwpRelayIoWriteFunc) (gpointer  owner,
                                     GError   *error);

/* One end of the tunnel, as the relay reads and writes it. A plain socket
 * waits in the shared reactor (no GSource of its own, see twp-reactor.h)
 * and is read and written directly. A TLS connection over a plain socket
 * waits there too: the reactor watches its socket and the TLS streams are
 * read and written without blocking (bench/README.md, "wss": GIO's async
 * path cost a main loop iteration, a GTask and a GSource per record, and
 * halved the throughput). Any other stream (TLS through a proxy) goes
 * through GIO. Either way a result is always delivered from the main loop,
 * never from inside the call that asked for it. */
typedef struct {
  GObject *owner;                /* borrowed: it embeds this end */
  GIOStream *stream;             /* borrowed from the owner */
  GCancellable *cancellable;     /* borrowed: the owner's, for the GIO path */
  int fd;                        /* -1: the GIO path */
  GPollableInputStream *tls_in;  /* borrowed: set for a TLS end on the reactor */
  GPollableOutputStream *tls_out;
  TwpReactorWatch *watch;
  guint32 armed;                 /* epoll interest set (one-shot) */

  guint8 *read_buf;
  gsize read_len;
  TwpRelayIoReadFunc read_done;
  gboolean read_pending;
  gboolean read_complete;
  gssize read_result;
  int read_errno;
  GError *read_error;            /* a TLS read's error, else read_errno */
  /* A TLS read that ends in EOF or an error after it got data delivers the
   * data first and this with the next read. */
  gboolean read_held;
  GError *read_held_error;       /* NULL with read_held: EOF */

  GOutputVector write_vecs[TWP_RELAY_IO_MAX_VECTORS];
  guint write_n;
  guint write_index;
  gsize write_offset;
  TwpRelayIoWriteFunc write_done;
  gint64 write_progress_at;      /* start of the write, or its last progress */
  gboolean write_pending;
  gboolean write_complete;
  int write_errno;
  GError *write_error;           /* a TLS write's error, else write_errno */
} TwpRelayIo;

/* @owner embeds @end and outlives it; it is referenced while a callback
 * runs, and @cancellable (the owner's) abandons pending GIO operations. */
void     twp_relay_io_init                 (TwpRelayIo          *end,
                                            GObject             *owner,
                                            GIOStream           *stream,
                                            GCancellable        *cancellable);
/* Joins the reactor (a socket end); before the first read or write. */
void     twp_relay_io_start                (TwpRelayIo          *end);
/* Leaves the reactor before the stream closes its fd: nothing pending
 * is delivered afterwards (GIO callbacks only drop their references). */
void     twp_relay_io_stop                 (TwpRelayIo          *end);
/* Frees what a stopped end still holds (finalize). */
void     twp_relay_io_clear                (TwpRelayIo          *end);

/* One read of up to @len bytes into @buf (kept until @done runs). */
void     twp_relay_io_read                 (TwpRelayIo          *end,
                                            guint8              *buf,
                                            gsize                len,
                                            TwpRelayIoReadFunc   done);
/* Writes all of @vectors (the buffers are kept until @done runs; the
 * array is copied), at most TWP_RELAY_IO_MAX_VECTORS of them. */
void     twp_relay_io_writev               (TwpRelayIo          *end,
                                            const GOutputVector *vectors,
                                            guint                n_vectors,
                                            TwpRelayIoWriteFunc  done);

/* TLS read and written on the reactor (records are 16 KiB). */
gboolean twp_relay_io_is_tls               (const TwpRelayIo    *end);
/* GIO's async path: a read may be filling its buffer at any time. */
gboolean twp_relay_io_uses_gio             (const TwpRelayIo    *end);
/* A read finished but not yet handed to its callback. */
gboolean twp_relay_io_has_undelivered_read (const TwpRelayIo    *end);
/* A write is pending and moved no byte for @stall_us (at @now). */
gboolean twp_relay_io_write_stalled        (const TwpRelayIo    *end,
                                            gint64               now,
                                            gint64               stall_us);

G_END_DECLS
