/* Test HTTP server: see httpd.h. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "httpd.h"

struct mh_test_httpd {
    struct MHD_Daemon *d;
    unsigned short port;
    atomic_int stopping;
    atomic_ulong requests;
};

/* Per-request state: the uploaded body so far. */
struct req_state {
    char *body;
    size_t len, cap;
};

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static enum MHD_Result send_buf(struct MHD_Connection *conn, unsigned status, const char *buf, size_t len,
                                const char *const *headers)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)buf, MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    for (const char *const *h = headers; h != NULL && h[0] != NULL; h += 2)
        MHD_add_response_header(r, h[0], h[1]);
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static ssize_t big_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    for (size_t i = 0; i < max; i++)
        buf[i] = (char)('a' + (pos + i) % 26);
    return (ssize_t)max;
}

/* A body of unknown length (sent chunked), so the client cannot know its size up front. */
struct big_state {
    uint64_t total;
};

static ssize_t big_chunked_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct big_state *b = cls;
    if (pos >= b->total)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (max > b->total - pos)
        max = (size_t)(b->total - pos);
    return big_reader(NULL, pos, buf, max);
}

static long query_long(struct MHD_Connection *conn, const char *key, long def)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, key);
    return v != NULL ? strtol(v, NULL, 10) : def;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_data_size,
                               void **con_cls)
{
    struct mh_test_httpd *s = cls;
    struct req_state *st = *con_cls;
    if (st == NULL) {
        st = calloc(1, sizeof *st);
        if (st == NULL)
            return MHD_NO;
        *con_cls = st;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        if (st->len + n + 1 > st->cap) {
            size_t cap = st->cap ? st->cap : 1024;
            while (cap < st->len + n + 1)
                cap *= 2;
            char *p = realloc(st->body, cap);
            if (p == NULL)
                return MHD_NO;
            st->body = p;
            st->cap = cap;
        }
        memcpy(st->body + st->len, upload_data, n);
        st->len += n;
        *upload_data_size = 0;
        return MHD_YES;
    }
    atomic_fetch_add(&s->requests, 1);

    if (strcmp(url, "/echo") == 0) {
        char len[32];
        snprintf(len, sizeof len, "%zu", st->len);
        const char *test = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Test");
        const char *headers[] = {"X-Echo-Method",
                                 method,
                                 "X-Echo-Len",
                                 len,
                                 "Content-Type",
                                 "application/octet-stream",
                                 test != NULL ? "X-Echo-Test" : NULL,
                                 test,
                                 NULL};
        return send_buf(conn, MHD_HTTP_OK, st->body != NULL ? st->body : "", st->len, headers);
    }
    if (strncmp(url, "/status/", 8) == 0) {
        long code = strtol(url + 8, NULL, 10);
        if (code < 100 || code > 599)
            code = 400;
        return send_buf(conn, (unsigned)code, "", 0, NULL);
    }
    if (strcmp(url, "/slow") == 0) {
        long ms = query_long(conn, "ms", 100);
        for (long waited = 0; waited < ms && !atomic_load(&s->stopping); waited += 10)
            sleep_ms(ms - waited < 10 ? ms - waited : 10);
        return send_buf(conn, MHD_HTTP_OK, "slow", 4, NULL);
    }
    if (strcmp(url, "/big") == 0) {
        long n = query_long(conn, "bytes", 0);
        if (n < 0)
            n = 0;
        struct MHD_Response *r;
        if (query_long(conn, "chunked", 0)) {
            struct big_state *b = calloc(1, sizeof *b);
            if (b == NULL)
                return MHD_NO;
            b->total = (uint64_t)n;
            r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, big_chunked_reader, b, free);
        } else {
            r = MHD_create_response_from_callback((uint64_t)n, 64 * 1024, big_reader, NULL, NULL);
        }
        if (r == NULL)
            return MHD_NO;
        enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        return ret;
    }
    if (strcmp(url, "/redirect") == 0) {
        const char *headers[] = {"Location", "/status/200", NULL};
        return send_buf(conn, MHD_HTTP_FOUND, "moved", 5, headers);
    }
    return send_buf(conn, MHD_HTTP_NOT_FOUND, "not found", 9, NULL);
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    struct req_state *st = *con_cls;
    if (st != NULL) {
        free(st->body);
        free(st);
        *con_cls = NULL;
    }
}

struct mh_test_httpd *mh_test_httpd_start(void)
{
    struct mh_test_httpd *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    /* One thread per connection, so that /slow may simply sleep. */
    s->d =
        MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD, 0, NULL, NULL, handler,
                         s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT,
                         (unsigned int)2000, MHD_OPTION_NOTIFY_COMPLETED, completed, s, MHD_OPTION_END);
    if (s->d == NULL) {
        free(s);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    if (info == NULL || info->port == 0) {
        MHD_stop_daemon(s->d);
        free(s);
        return NULL;
    }
    s->port = info->port;
    return s;
}

unsigned short mh_test_httpd_port(const struct mh_test_httpd *s)
{
    return s->port;
}

unsigned long mh_test_httpd_requests(struct mh_test_httpd *s)
{
    return atomic_load(&s->requests);
}

void mh_test_httpd_stop(struct mh_test_httpd **sp)
{
    if (sp == NULL || *sp == NULL)
        return;
    struct mh_test_httpd *s = *sp;
    atomic_store(&s->stopping, 1);
    MHD_stop_daemon(s->d);
    free(s);
    *sp = NULL;
}

static int listen_loopback(unsigned short *port_out)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        close(fd);
        return -1;
    }
    *port_out = ntohs(sa.sin_port);
    return fd;
}

int mh_test_blackhole_open(unsigned short *port_out)
{
    int fd = listen_loopback(port_out);
    if (fd >= 0 && listen(fd, 128) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int mh_test_refused_open(unsigned short *port_out)
{
    return listen_loopback(port_out);
}
