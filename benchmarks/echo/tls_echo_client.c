/*
 * tls_echo_client.c: the TLS echo benchmark's load generator (benchmarks/EventLoop.EchoBenchmark --tls compiles
 * and runs it). The TLS twin of echo_client.c, with the same measurement and the same RESULT line:
 *
 * One thread, one epoll set, N non-blocking TLS connections (OpenSSL). Each connection sends one M-byte message
 * and reads the whole echo back before sending the next (ping-pong). Every byte of every reply is compared with
 * the byte sent at that position; messages differ from one another (a window of a per-connection pseudo-random
 * buffer that slides one byte per message, stamped with the message number and the connection).
 *
 * TLS: version 1.3 only, cipher suite TLS_AES_256_GCM_SHA384 only (OpenSSL's first choice by default; fixed
 * here so every server is measured with the same cipher), no session resumption; the server's certificate is
 * checked against --ca (the benchmark's self-signed certificate). Handshakes happen before the warm-up, so the
 * figures are of bulk record traffic, not of handshakes.
 *
 * After --warmup seconds it measures for --duration seconds and prints one line:
 *
 *   RESULT messages=N seconds=S errors=E mismatches=B client_user=S client_sys=S server_user=S server_sys=S
 *          core_idle=S,S,... core_steal=S,S,...
 *
 * Exit code 0 when there were no errors and no mismatched bytes, 1 otherwise, 2 for a usage error.
 *
 * Build: cc -O2 -std=c11 -Wall -Wextra -o tls_echo_client tls_echo_client.c -lssl -lcrypto
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define WINDOW_SLIDE 251
#define HEADER_BYTES 16
#define READ_BUFFER (256 * 1024)
#define CIPHER "TLS_AES_256_GCM_SHA384"

struct conn {
    int fd;
    SSL *ssl;
    uint32_t id;
    int dead;
    int want_out;               /* EPOLLOUT registered: SSL_write wants the socket writable */
    uint64_t seq;               /* number of the message in flight */
    size_t sent, received;      /* plaintext bytes of the message in flight */
    size_t offset;              /* where the message's window starts in pattern */
    size_t header_len;
    unsigned char header[HEADER_BYTES];
    unsigned char *pattern;     /* size + WINDOW_SLIDE pseudo-random bytes */
    unsigned char *message;     /* the message in flight, contiguous (SSL_write takes one buffer) */
};

static size_t size;
static uint64_t completed;
static uint64_t mismatched;
static int errors;

static void usage(const char *why)
{
    fprintf(stderr, "tls_echo_client: %s\n"
        "usage: tls_echo_client --port N --ca PEM [--host 127.0.0.1] [--server-name localhost] [--connections 32]\n"
        "                       [--size 1024] [--duration 5] [--warmup 3] [--server-pid PID]\n", why);
    exit(2);
}

static double parse_number(const char *name, const char *text, double min)
{
    char *end;
    errno = 0;
    double value = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || value < min) {
        char message[256];
        snprintf(message, sizeof message, "%s needs a number >= %g, not '%s'", name, min, text);
        usage(message);
    }
    return value;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void own_cpu(double *user, double *sys)
{
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    *user = (double)usage.ru_utime.tv_sec + (double)usage.ru_utime.tv_usec / 1e6;
    *sys = (double)usage.ru_stime.tv_sec + (double)usage.ru_stime.tv_usec / 1e6;
}

static void server_cpu(long pid, double *user, double *sys)
{
    *user = *sys = -1;
    if (pid <= 0) {
        return;
    }
    char path[64], text[2048];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return;
    }
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    char *after_name = strrchr(text, ')');
    unsigned long utime, stime;
    if (after_name != NULL
        && sscanf(after_name + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) == 2) {
        double tick = (double)sysconf(_SC_CLK_TCK);
        *user = (double)utime / tick;
        *sys = (double)stime / tick;
    }
}

#define MAX_CORES 256

static int core_times(double *idle, double *steal)
{
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL) {
        return 0;
    }
    char line[512];
    int cores = 0;
    double tick = (double)sysconf(_SC_CLK_TCK);
    while (fgets(line, sizeof line, f) != NULL && cores < MAX_CORES) {
        int core;
        unsigned long long user, nice, system, idle_ticks, iowait, irq, softirq, steal_ticks;
        if (sscanf(line, "cpu%d %llu %llu %llu %llu %llu %llu %llu %llu", &core, &user, &nice, &system,
                &idle_ticks, &iowait, &irq, &softirq, &steal_ticks) == 9 && core == cores) {
            idle[cores] = (double)(idle_ticks + iowait) / tick;
            steal[cores] = (double)steal_ticks / tick;
            cores++;
        }
    }
    fclose(f);
    return cores;
}

static void print_per_core(const char *name, int cores, const double *before, const double *after)
{
    printf(" %s=", name);
    for (int i = 0; i < cores; i++) {
        printf("%s%.3f", i == 0 ? "" : ",", after[i] - before[i]);
    }
}

static void fill_pattern(unsigned char *buffer, size_t length, uint32_t id)
{
    uint64_t x = 0x9E3779B97F4A7C15ull * (id + 1);
    for (size_t i = 0; i < length; i++) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        buffer[i] = (unsigned char)((x * 0x2545F4914F6CDD1Dull) >> 56);
    }
}

/* Prepares message number c->seq: header (message number, connection, check word), then its window. */
static void next_message(struct conn *c)
{
    c->sent = c->received = 0;
    c->offset = (size_t)(c->seq % WINDOW_SLIDE);
    unsigned char header[HEADER_BYTES];
    uint64_t seq = c->seq;
    uint32_t check = (uint32_t)~seq ^ (c->id * 0x01000193u);
    memcpy(header, &seq, 8);
    memcpy(header + 8, &c->id, 4);
    memcpy(header + 12, &check, 4);
    memcpy(c->header, header, c->header_len);
    memcpy(c->message, c->header, c->header_len);
    memcpy(c->message + c->header_len, c->pattern + c->offset + c->header_len, size - c->header_len);
}

static void compare(const struct conn *c, size_t pos, const unsigned char *data, size_t length)
{
    if (memcmp(c->message + pos, data, length) != 0) {
        for (size_t i = 0; i < length; i++) {
            mismatched += c->message[pos + i] != data[i];
        }
    }
}

static void ssl_error_text(char *out, size_t length)
{
    unsigned long code = ERR_get_error();
    if (code == 0) {
        snprintf(out, length, "%s", errno != 0 ? strerror(errno) : "unexpected end of stream");
    } else {
        ERR_error_string_n(code, out, length);
    }
    ERR_clear_error();
}

static void fail(struct conn *c, int epoll_fd, const char *what)
{
    if (!c->dead) {
        c->dead = 1;
        errors++;
        fprintf(stderr, "connection %u: %s\n", c->id, what);
        epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
}

static void watch_output(struct conn *c, int epoll_fd, int want)
{
    if (c->want_out != want) {
        struct epoll_event ev = { .events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c };
        epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c->fd, &ev);
        c->want_out = want;
    }
}

/* Writes what OpenSSL takes of the message in flight (partial writes on); asks for EPOLLOUT when it wants it. */
static void pump_send(struct conn *c, int epoll_fd)
{
    while (!c->dead && c->sent < size) {
        ERR_clear_error();
        int n = SSL_write(c->ssl, c->message + c->sent, (int)(size - c->sent));
        if (n > 0) {
            c->sent += (size_t)n;
            continue;
        }
        int error = SSL_get_error(c->ssl, n);
        if (error == SSL_ERROR_WANT_WRITE) {
            watch_output(c, epoll_fd, 1);
            return;
        }
        if (error == SSL_ERROR_WANT_READ) {
            return; /* retried when the socket is readable */
        }
        char text[256];
        ssl_error_text(text, sizeof text);
        fail(c, epoll_fd, text);
        return;
    }
    if (!c->dead) {
        watch_output(c, epoll_fd, 0);
    }
}

/* Reads what has arrived (never past the message in flight), checks it, and starts the next message when the
 * whole echo is back. Reads until OpenSSL wants the socket again, so no decrypted byte waits in its buffer. */
static void pump_receive(struct conn *c, int epoll_fd, unsigned char *buffer)
{
    while (!c->dead) {
        size_t want = size - c->received;
        if (want > READ_BUFFER) {
            want = READ_BUFFER;
        }
        ERR_clear_error();
        int n = SSL_read(c->ssl, buffer, (int)want);
        if (n > 0) {
            compare(c, c->received, buffer, (size_t)n);
            c->received += (size_t)n;
            if (c->received == size) {
                completed++;
                c->seq++;
                next_message(c);
                pump_send(c, epoll_fd);
            }
            continue;
        }
        int error = SSL_get_error(c->ssl, n);
        if (error == SSL_ERROR_WANT_READ) {
            return;
        }
        if (error == SSL_ERROR_WANT_WRITE) {
            watch_output(c, epoll_fd, 1);
            return;
        }
        if (error == SSL_ERROR_ZERO_RETURN) {
            fail(c, epoll_fd, "the server closed the TLS connection");
            return;
        }
        char text[256];
        ssl_error_text(text, sizeof text);
        fail(c, epoll_fd, text);
        return;
    }
}

static int connect_to(const char *host, const char *port)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
    struct addrinfo *found;
    int status = getaddrinfo(host, port, &hints, &found);
    if (status != 0) {
        fprintf(stderr, "tls_echo_client: cannot resolve %s:%s: %s\n", host, port, gai_strerror(status));
        exit(1);
    }
    int fd = -1;
    for (struct addrinfo *a = found; a != NULL && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(found);
    if (fd < 0) {
        fprintf(stderr, "tls_echo_client: cannot connect to %s:%s: %s\n", host, port, strerror(errno));
        exit(1);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static SSL_CTX *make_context(const char *ca)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL
        || SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1
        || SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1
        || SSL_CTX_set_ciphersuites(ctx, CIPHER) != 1
        || SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
        char text[256];
        ssl_error_text(text, sizeof text);
        fprintf(stderr, "tls_echo_client: cannot set up TLS with CA %s: %s\n", ca, text);
        exit(1);
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return ctx;
}

/* Blocking connect and handshake, then non-blocking for the run. */
static void open_connection(struct conn *c, SSL_CTX *ctx, const char *host, const char *port, const char *name)
{
    c->fd = connect_to(host, port);
    c->ssl = SSL_new(ctx);
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_tlsext_host_name(c->ssl, name);
    SSL_set1_host(c->ssl, name);
    ERR_clear_error();
    if (SSL_connect(c->ssl) != 1) {
        char text[256];
        ssl_error_text(text, sizeof text);
        fprintf(stderr, "tls_echo_client: TLS handshake with %s:%s failed: %s\n", host, port, text);
        exit(1);
    }
    if (strcmp(SSL_get_cipher_name(c->ssl), CIPHER) != 0 || SSL_version(c->ssl) != TLS1_3_VERSION) {
        fprintf(stderr, "tls_echo_client: negotiated %s %s, expected TLSv1.3 %s\n", SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl), CIPHER);
        exit(1);
    }
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *port = NULL, *ca = NULL, *name = "localhost";
    int connections = 32;
    double duration = 5, warmup = 3;
    long server_pid = 0;
    size = 1024;
    for (int i = 1; i < argc; i++) {
        const char *option = argv[i];
        if (i + 1 >= argc) {
            char message[128];
            snprintf(message, sizeof message, "%s needs a value", option);
            usage(message);
        }
        const char *value = argv[++i];
        if (strcmp(option, "--host") == 0) host = value;
        else if (strcmp(option, "--port") == 0) port = value;
        else if (strcmp(option, "--ca") == 0) ca = value;
        else if (strcmp(option, "--server-name") == 0) name = value;
        else if (strcmp(option, "--connections") == 0) connections = (int)parse_number(option, value, 1);
        else if (strcmp(option, "--size") == 0) size = (size_t)parse_number(option, value, 1);
        else if (strcmp(option, "--duration") == 0) duration = parse_number(option, value, 0.001);
        else if (strcmp(option, "--warmup") == 0) warmup = parse_number(option, value, 0);
        else if (strcmp(option, "--server-pid") == 0) server_pid = (long)parse_number(option, value, 1);
        else {
            char message[128];
            snprintf(message, sizeof message, "unknown option '%s'", option);
            usage(message);
        }
    }
    if (port == NULL || ca == NULL) {
        usage("--port and --ca are required");
    }

    signal(SIGPIPE, SIG_IGN);
    SSL_CTX *ctx = make_context(ca);
    int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    struct conn *conns = calloc((size_t)connections, sizeof *conns);
    unsigned char *buffer = malloc(READ_BUFFER);
    struct epoll_event *events = calloc((size_t)connections, sizeof *events);
    if (epoll_fd < 0 || conns == NULL || buffer == NULL || events == NULL) {
        fprintf(stderr, "tls_echo_client: out of memory or epoll: %s\n", strerror(errno));
        return 1;
    }
    for (int i = 0; i < connections; i++) {
        struct conn *c = &conns[i];
        c->id = (uint32_t)i;
        c->header_len = size < HEADER_BYTES ? size : HEADER_BYTES;
        c->pattern = malloc(size + WINDOW_SLIDE);
        c->message = malloc(size);
        if (c->pattern == NULL || c->message == NULL) {
            fprintf(stderr, "tls_echo_client: out of memory for %d x %zu-byte messages\n", connections, size);
            return 1;
        }
        fill_pattern(c->pattern, size + WINDOW_SLIDE, c->id);
        open_connection(c, ctx, host, port, name);
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        epoll_ctl(epoll_fd, EPOLL_CTL_ADD, c->fd, &ev);
    }
    for (int i = 0; i < connections; i++) {
        next_message(&conns[i]);
        pump_send(&conns[i], epoll_fd);
    }

    double start = now_seconds(), measure_from = start + warmup, measure_to = measure_from + duration;
    double t0 = 0, t1 = 0, user0 = 0, sys0 = 0, user1 = 0, sys1 = 0, suser0 = -1, ssys0 = -1, suser1 = -1, ssys1 = -1;
    uint64_t count0 = 0, count1 = 0;
    static double idle0[MAX_CORES], steal0[MAX_CORES], idle1[MAX_CORES], steal1[MAX_CORES];
    int cores0 = 0, cores1 = 0;
    int measuring = 0;
    for (;;) {
        double now = now_seconds();
        if (!measuring && now >= measure_from) {
            measuring = 1;
            t0 = now;
            count0 = completed;
            own_cpu(&user0, &sys0);
            server_cpu(server_pid, &suser0, &ssys0);
            cores0 = core_times(idle0, steal0);
        }
        if (measuring && now >= measure_to) {
            t1 = now;
            count1 = completed;
            own_cpu(&user1, &sys1);
            server_cpu(server_pid, &suser1, &ssys1);
            cores1 = core_times(idle1, steal1);
            break;
        }
        if (errors == connections) {
            fprintf(stderr, "tls_echo_client: every connection failed\n");
            t1 = measuring ? now : 0;
            count1 = measuring ? completed : 0;
            if (measuring) {
                own_cpu(&user1, &sys1);
            }
            break;
        }
        double until = measuring ? measure_to : measure_from;
        int timeout_ms = (int)((until - now) * 1000.0) + 1;
        int ready = epoll_wait(epoll_fd, events, connections, timeout_ms);
        if (ready < 0 && errno != EINTR) {
            fprintf(stderr, "tls_echo_client: epoll_wait: %s\n", strerror(errno));
            return 1;
        }
        for (int i = 0; i < ready; i++) {
            struct conn *c = events[i].data.ptr;
            if (events[i].events & EPOLLIN) {
                pump_receive(c, epoll_fd, buffer);
            }
            if (!c->dead && (events[i].events & EPOLLOUT)) {
                pump_send(c, epoll_fd);
            }
            if (!c->dead && (events[i].events & (EPOLLERR | EPOLLHUP)) && !(events[i].events & EPOLLIN)) {
                fail(c, epoll_fd, "socket error or hang-up");
            }
        }
    }

    int server_known = suser0 >= 0 && suser1 >= 0;
    printf("RESULT messages=%llu seconds=%.6f errors=%d mismatches=%llu client_user=%.6f client_sys=%.6f server_user=%.6f server_sys=%.6f",
        (unsigned long long)(count1 - count0), t1 - t0, errors, (unsigned long long)mismatched,
        user1 - user0, sys1 - sys0, server_known ? suser1 - suser0 : -1.0, server_known ? ssys1 - ssys0 : -1.0);
    int cores = cores0 == cores1 ? cores0 : 0;
    print_per_core("core_idle", cores, idle0, idle1);
    print_per_core("core_steal", cores, steal0, steal1);
    printf("\n");
    fflush(stdout);
    return errors == 0 && mismatched == 0 ? 0 : 1;
}
