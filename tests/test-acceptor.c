/* SPDX-License-Identifier: BSD-3-Clause */
/* The acceptor at the descriptor limit: with every descriptor taken, a
 * client that connects is closed at once (its connection taken from the
 * backlog with the reserve descriptor), counted as refused, and the loop
 * does not spin; once descriptors are free, connections are accepted
 * again. GLib's GSocketService warned and retried at once instead,
 * spinning a core for as long as the limit lasted. */
#define G_LOG_DOMAIN "twp-test-acceptor"

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "twp-acceptor.h"
#include "twp-test-utils.h"

#define DEADLINE_S 30

typedef struct {
  guint n_incoming;
  guint n_refused;
} Counts;

static gboolean
incoming_cb (TwpAcceptor       *acceptor,
             GSocketConnection *connection,
             GObject           *source_object,
             Counts            *counts)
{
  counts->n_incoming++;
  g_io_stream_close (G_IO_STREAM (connection), NULL, NULL);
  return TRUE;
}

static void
refused_cb (TwpAcceptor *acceptor,
            Counts      *counts)
{
  counts->n_refused++;
}

/* A blocking client socket connected (in the backlog) to @port. */
static GSocket *
connect_to (guint16 port)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new (loopback, port);
  g_autoptr(GSocket) socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                                            G_SOCKET_PROTOCOL_TCP, &error);

  g_assert_no_error (error);
  g_socket_set_timeout (socket, DEADLINE_S);
  g_socket_connect (socket, address, NULL, &error);
  g_assert_no_error (error);
  return g_steal_pointer (&socket);
}

static void
test_out_of_descriptors (void)
{
  g_autoptr(TwpAcceptor) acceptor = twp_acceptor_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) any = g_inet_socket_address_new (loopback, 0);
  g_autoptr(GSocketAddress) bound = NULL;
  g_autoptr(GArray) fillers = g_array_new (FALSE, FALSE, sizeof (int));
  g_autoptr(GSocket) client = NULL;
  struct rlimit saved;
  struct rlimit low;
  Counts counts = { 0, };
  guint16 port;
  char byte;
  int fd;

  g_signal_connect (acceptor, "incoming", G_CALLBACK (incoming_cb), &counts);
  g_signal_connect (acceptor, "refused", G_CALLBACK (refused_cb), &counts);
  g_assert_true (g_socket_listener_add_address (G_SOCKET_LISTENER (acceptor), any, G_SOCKET_TYPE_STREAM,
                                                G_SOCKET_PROTOCOL_TCP, NULL, &bound, &error));
  g_assert_no_error (error);
  port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  twp_acceptor_start (acceptor);

  client = connect_to (port);
  TWP_TEST_ASSERT_WAIT (counts.n_incoming >= 1, DEADLINE_S * 1000, "a first connection");
  g_clear_object (&client);

  /* A low limit, then every descriptor under it taken but one, which
   * the client's socket takes. */
  g_assert_cmpint (getrlimit (RLIMIT_NOFILE, &saved), ==, 0);
  low = saved;
  low.rlim_cur = 256;
  g_assert_cmpint (setrlimit (RLIMIT_NOFILE, &low), ==, 0);
  while ((fd = open ("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
    g_array_append_val (fillers, fd);
  g_assert_cmpint (errno, ==, EMFILE);
  close (g_array_index (fillers, int, fillers->len - 1));
  g_array_set_size (fillers, fillers->len - 1);
  client = connect_to (port);

  /* Refused: closed by the acceptor, not left waiting in the backlog. */
  TWP_TEST_ASSERT_WAIT (counts.n_refused >= 1, DEADLINE_S * 1000, "the connection refused at the limit");
  g_assert_cmpint (g_socket_receive (client, &byte, 1, NULL, &error), ==, 0);
  g_assert_no_error (error);
  g_assert_cmpuint (counts.n_incoming, ==, 1);
  g_assert_cmpuint (twp_acceptor_get_n_refused (acceptor), ==, 1);
  g_clear_object (&client);

  /* Descriptors free again: accepted as usual. */
  for (guint i = 0; i < fillers->len; i++)
    close (g_array_index (fillers, int, i));
  g_assert_cmpint (setrlimit (RLIMIT_NOFILE, &saved), ==, 0);
  client = connect_to (port);
  TWP_TEST_ASSERT_WAIT (counts.n_incoming >= 2, DEADLINE_S * 1000, "a connection once descriptors are free");
  g_assert_cmpuint (counts.n_refused, ==, 1);

  twp_acceptor_stop (acceptor);
  g_socket_listener_close (G_SOCKET_LISTENER (acceptor));
}

/* A socket added after accepting started is accepted on too. */
static void
test_socket_added (void)
{
  g_autoptr(TwpAcceptor) acceptor = twp_acceptor_new ();
  g_autoptr(GSocket) first_client = NULL;
  g_autoptr(GSocket) second_client = NULL;
  Counts counts = { 0, };
  guint16 first;
  guint16 second;

  g_signal_connect (acceptor, "incoming", G_CALLBACK (incoming_cb), &counts);
  first = twp_test_listener_add_loopback (G_SOCKET_LISTENER (acceptor));
  twp_acceptor_start (acceptor);
  second = twp_test_listener_add_loopback (G_SOCKET_LISTENER (acceptor));

  second_client = connect_to (second);
  TWP_TEST_ASSERT_WAIT (counts.n_incoming >= 1, DEADLINE_S * 1000, "a connection to the socket added later");
  first_client = connect_to (first);
  TWP_TEST_ASSERT_WAIT (counts.n_incoming >= 2, DEADLINE_S * 1000, "a connection to the first socket");
  g_assert_cmpuint (counts.n_refused, ==, 0);

  twp_acceptor_stop (acceptor);
  g_socket_listener_close (G_SOCKET_LISTENER (acceptor));
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/acceptor/out-of-descriptors", test_out_of_descriptors);
  g_test_add_func ("/acceptor/socket-added", test_socket_added);
  return g_test_run ();
}
