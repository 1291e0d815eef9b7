/*
 * A small HTTP/1.1 test server (libmicrohttpd, one thread per connection) on
 * 127.0.0.1 and a kernel-chosen port, for the transfer tests.  Routes:
 *   /echo           the request body back, with X-Echo-Method, X-Echo-Len and
 *                   X-Echo-Test (the request's X-Test header) response headers
 *   /status/NNN     an empty response with status NNN
 *   /slow?ms=N      200 "slow" after N ms (cut short when the server stops)
 *   /big?bytes=N    200 with N bytes of 'a'..'z' repeating (&chunked=1: without a
 *                   Content-Length, sent chunked)
 *   /redirect       302 to /status/200
 *   anything else   404
 */
#ifndef MH_TEST_HTTPD_H
#define MH_TEST_HTTPD_H

#include <stddef.h>

struct mh_test_httpd;

/** Start the server; NULL on failure. */
struct mh_test_httpd *mh_test_httpd_start(void);
unsigned short mh_test_httpd_port(const struct mh_test_httpd *s);
/** Requests answered so far. */
unsigned long mh_test_httpd_requests(struct mh_test_httpd *s);
/** Stop the server (waits for its threads); sets *s to NULL. */
void mh_test_httpd_stop(struct mh_test_httpd **s);

/**
 * A listening socket on 127.0.0.1 that never answers: the kernel completes the
 * TCP handshake and the connection then stays silent.  Returns the fd (close it
 * when done) or -1; the port goes to *port_out.
 */
int mh_test_blackhole_open(unsigned short *port_out);

/**
 * A socket bound on 127.0.0.1 but not listening: connecting to its port is
 * refused, and holding it keeps anyone else from taking the port.  Returns the
 * fd (close it when done) or -1; the port goes to *port_out.
 */
int mh_test_refused_open(unsigned short *port_out);

#endif
