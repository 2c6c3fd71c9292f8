/*
 * echo_client.c: the echo benchmark's load generator (benchmarks/EventLoop.EchoBenchmark compiles and runs it).
 *
 * One thread, one epoll set, N non-blocking TCP connections. Each connection sends one M-byte message and
 * reads the whole echo back before sending the next (ping-pong). Every byte of every reply is compared with
 * the byte sent at that position. Messages differ from one another: each is a window of a per-connection
 * pseudo-random buffer that slides by one byte per message, and its first bytes stamp the message number and
 * the connection, so a stale, reordered or cross-connection reply shows up as mismatched bytes.
 *
 * With --messages-per-connection K, a connection is closed after its K-th echo and a new one opened in its place
 * (a blocking connect, which on loopback returns as soon as the kernel has completed the handshake), so the run
 * measures accepting as much as echoing: with K = 1 every message is a new connection.
 *
 * After --warmup seconds it measures for --duration seconds: messages completed in that window, the window's
 * length, connection errors, mismatched bytes, its own CPU time (getrusage) and, with --server-pid, the
 * server's CPU time (utime and stime from /proc/<pid>/stat) over exactly the same window. With --server-pid and
 * --warmup-server-cpu S, the warm-up also lasts until the server has used S seconds of CPU since this client started
 * (at most --warmup + 60 s): a .NET server compiles its hot code again, optimised, only after it has run a while
 * (tiered JIT), and on a shared core 3 s of wall time can be a few hundred ms of its CPU, so the measured window
 * would count the JIT compiler's work as the server's per-message cost. It prints one line:
 *
 *   RESULT messages=N seconds=S errors=E mismatches=B client_user=S client_sys=S server_user=S server_sys=S
 *          core_idle=S,S,... core_steal=S,S,...
 *
 * (CPU figures in seconds; server_* are -1 when no server pid was given or its stat could not be read;
 * core_idle and core_steal are each core's idle and stolen time in the window, from /proc/stat.)
 * Exit code 0 when there were no errors and no mismatched bytes, 1 otherwise, 2 for a usage error.
 *
 * Build: cc -O2 -std=c11 -Wall -Wextra -o echo_client echo_client.c
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
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* How far a message's window slides through the connection's buffer before wrapping: a prime, so the
 * window of message k and k+1 differ by one byte's shift (which changes nearly every byte). */
#define WINDOW_SLIDE 251
#define HEADER_BYTES 16
#define READ_BUFFER (256 * 1024)

struct conn {
    int fd;
    uint32_t id;
    int dead;
    int want_out;               /* EPOLLOUT registered: the current message is not fully written yet */
    uint64_t seq;               /* number of the message in flight (= messages completed on this connection) */
    size_t sent, received;      /* bytes of the message in flight */
    size_t offset;              /* where the message's window starts in pattern */
    size_t header_len;          /* min(HEADER_BYTES, size) */
    uint64_t on_this_socket;    /* messages completed on the current socket (for --messages-per-connection) */
    unsigned char header[HEADER_BYTES];
    unsigned char *pattern;     /* size + WINDOW_SLIDE pseudo-random bytes, one buffer per connection */
};

static size_t size;
static const char *host = "127.0.0.1", *port = NULL;
static const char *unix_path = NULL; /* --unix: an AF_UNIX stream socket instead of TCP */
static uint64_t per_connection; /* --messages-per-connection: 0 keeps every connection for the whole run */
static uint64_t completed;      /* messages completed, all connections */
static uint64_t mismatched;     /* bytes that differed from what was sent */
static int errors;

static void usage(const char *why)
{
    fprintf(stderr, "echo_client: %s\n"
        "usage: echo_client --port N [--host 127.0.0.1] | --unix PATH   [--connections 32] [--size 1024]\n"
        "                   [--duration 5] [--warmup 3] [--server-pid PID] [--warmup-server-cpu S]\n"
        "                   [--messages-per-connection K]\n", why);
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

/* utime and stime (fields 14 and 15 of /proc/<pid>/stat, all threads), in seconds; -1 if unreadable. */
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
    char *after_name = strrchr(text, ')'); /* the command name (field 2) may hold spaces and parentheses */
    unsigned long utime, stime;
    if (after_name != NULL
        && sscanf(after_name + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) == 2) {
        double tick = (double)sysconf(_SC_CLK_TCK);
        *user = (double)utime / tick;
        *sys = (double)stime / tick;
    }
}

#define MAX_CORES 256

/* Per-core idle and steal time so far (fields 4+5 and 8 of the cpuN lines of /proc/stat), in seconds; the
 * number of cores read. Steal is time the hypervisor gave this core to someone else: on a shared virtual
 * machine it tells how much of the wall time a pinned process could have had at all. */
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
    uint64_t x = 0x9E3779B97F4A7C15ull * (id + 1); /* xorshift64*, one seed per connection */
    for (size_t i = 0; i < length; i++) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        buffer[i] = (unsigned char)((x * 0x2545F4914F6CDD1Dull) >> 56);
    }
}

/* Prepares message number c->seq: its window and its header (message number, connection, a check word). */
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
}

/* The expected bytes from position pos on, as one contiguous span: the header, then the window. */
static const unsigned char *expected_span(const struct conn *c, size_t pos, size_t *length)
{
    if (pos < c->header_len) {
        *length = c->header_len - pos;
        return c->header + pos;
    }
    *length = size - pos;
    return c->pattern + c->offset + pos;
}

static void compare(const struct conn *c, size_t pos, const unsigned char *data, size_t length)
{
    while (length > 0) {
        size_t span;
        const unsigned char *expected = expected_span(c, pos, &span);
        if (span > length) {
            span = length;
        }
        if (memcmp(expected, data, span) != 0) {
            for (size_t i = 0; i < span; i++) {
                mismatched += expected[i] != data[i];
            }
        }
        pos += span;
        data += span;
        length -= span;
    }
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

/* Writes what the kernel takes of the message in flight; asks for EPOLLOUT when it takes less than all. */
static void pump_send(struct conn *c, int epoll_fd)
{
    while (!c->dead && c->sent < size) {
        struct iovec iov[2];
        int count = 0;
        if (c->sent < c->header_len) {
            iov[count].iov_base = c->header + c->sent;
            iov[count++].iov_len = c->header_len - c->sent;
        }
        size_t from = c->sent > c->header_len ? c->sent : c->header_len;
        if (from < size) {
            iov[count].iov_base = c->pattern + c->offset + from;
            iov[count++].iov_len = size - from;
        }
        ssize_t n = writev(c->fd, iov, count);
        if (n > 0) {
            c->sent += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            watch_output(c, epoll_fd, 1);
            return;
        } else {
            fail(c, epoll_fd, n < 0 ? strerror(errno) : "write returned 0");
            return;
        }
    }
    if (!c->dead) {
        watch_output(c, epoll_fd, 0);
    }
}

static void reconnect(struct conn *c, int epoll_fd);

/* Reads what has arrived (never past the end of the message in flight), checks it, and starts the next
 * message when the whole echo is back. Level-triggered: whatever is left is reported again. */
static void pump_receive(struct conn *c, int epoll_fd, unsigned char *buffer)
{
    while (!c->dead) {
        size_t want = size - c->received;
        if (want > READ_BUFFER) {
            want = READ_BUFFER;
        }
        ssize_t n = read(c->fd, buffer, want);
        if (n > 0) {
            compare(c, c->received, buffer, (size_t)n);
            c->received += (size_t)n;
            if (c->received == size) {
                completed++;
                c->seq++;
                if (per_connection > 0 && ++c->on_this_socket >= per_connection) {
                    reconnect(c, epoll_fd); /* with --messages-per-connection: a new connection for the next message */
                    return;
                }
                next_message(c);
                pump_send(c, epoll_fd);
            }
        } else if (n == 0) {
            fail(c, epoll_fd, "the server closed the connection");
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        } else {
            fail(c, epoll_fd, strerror(errno));
        }
    }
}

/* A connected, non-blocking Unix domain socket (--unix): the same echo over AF_UNIX instead of TCP. */
static int connect_unix(const char *path)
{
    struct sockaddr_un address = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof address.sun_path) {
        fprintf(stderr, "echo_client: --unix path too long: %s\n", path);
        exit(2);
    }
    strcpy(address.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        fprintf(stderr, "echo_client: cannot connect to %s: %s\n", path, strerror(errno));
        exit(1);
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static int connect_to(const char *host, const char *port)
{
    if (unix_path != NULL) {
        return connect_unix(unix_path);
    }
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
    struct addrinfo *found;
    int status = getaddrinfo(host, port, &hints, &found);
    if (status != 0) {
        fprintf(stderr, "echo_client: cannot resolve %s:%s: %s\n", host, port, gai_strerror(status));
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
        fprintf(stderr, "echo_client: cannot connect to %s:%s: %s\n", host, port, strerror(errno));
        exit(1);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* Closes the connection and opens a new one in its place, which goes on with the next message. */
static void reconnect(struct conn *c, int epoll_fd)
{
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = connect_to(host, port);
    c->want_out = 0;
    c->on_this_socket = 0;
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, c->fd, &ev);
    next_message(c);
    pump_send(c, epoll_fd);
}

int main(int argc, char **argv)
{
    int connections = 32;
    double duration = 5, warmup = 3, warmup_server_cpu = 0;
    long server_pid = 0;
    size = 1024;
    for (int i = 1; i < argc; i++) {
        const char *name = argv[i];
        if (i + 1 >= argc) {
            char message[128];
            snprintf(message, sizeof message, "%s needs a value", name);
            usage(message);
        }
        const char *value = argv[++i];
        if (strcmp(name, "--host") == 0) host = value;
        else if (strcmp(name, "--port") == 0) port = value;
        else if (strcmp(name, "--unix") == 0) unix_path = value;
        else if (strcmp(name, "--connections") == 0) connections = (int)parse_number(name, value, 1);
        else if (strcmp(name, "--size") == 0) size = (size_t)parse_number(name, value, 1);
        else if (strcmp(name, "--duration") == 0) duration = parse_number(name, value, 0.001);
        else if (strcmp(name, "--warmup") == 0) warmup = parse_number(name, value, 0);
        else if (strcmp(name, "--server-pid") == 0) server_pid = (long)parse_number(name, value, 1);
        else if (strcmp(name, "--warmup-server-cpu") == 0) warmup_server_cpu = parse_number(name, value, 0);
        else if (strcmp(name, "--messages-per-connection") == 0) per_connection = (uint64_t)parse_number(name, value, 0);
        else {
            char message[128];
            snprintf(message, sizeof message, "unknown option '%s'", name);
            usage(message);
        }
    }
    if (port == NULL && unix_path == NULL) {
        usage("--port (or --unix) is required");
    }

    signal(SIGPIPE, SIG_IGN); /* a reset peer is an error to count, not a reason to die */
    int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    struct conn *conns = calloc((size_t)connections, sizeof *conns);
    unsigned char *buffer = malloc(READ_BUFFER);
    struct epoll_event *events = calloc((size_t)connections, sizeof *events);
    if (epoll_fd < 0 || conns == NULL || buffer == NULL || events == NULL) {
        fprintf(stderr, "echo_client: out of memory or epoll: %s\n", strerror(errno));
        return 1;
    }
    for (int i = 0; i < connections; i++) {
        struct conn *c = &conns[i];
        c->id = (uint32_t)i;
        c->header_len = size < HEADER_BYTES ? size : HEADER_BYTES;
        c->pattern = malloc(size + WINDOW_SLIDE);
        if (c->pattern == NULL) {
            fprintf(stderr, "echo_client: out of memory for %d x %zu-byte messages\n", connections, size);
            return 1;
        }
        fill_pattern(c->pattern, size + WINDOW_SLIDE, c->id);
        c->fd = connect_to(host, port);
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        epoll_ctl(epoll_fd, EPOLL_CTL_ADD, c->fd, &ev);
    }
    for (int i = 0; i < connections; i++) {
        next_message(&conns[i]);
        pump_send(&conns[i], epoll_fd);
    }

    double start_user = -1, start_sys = -1;
    server_cpu(server_pid, &start_user, &start_sys);
    int wait_for_server = warmup_server_cpu > 0 && start_user >= 0;
    double start = now_seconds(), measure_from = start + warmup, measure_to = measure_from + duration;
    double warmup_limit = measure_from + 60;
    double t0 = 0, t1 = 0, user0 = 0, sys0 = 0, user1 = 0, sys1 = 0, suser0 = -1, ssys0 = -1, suser1 = -1, ssys1 = -1;
    uint64_t count0 = 0, count1 = 0;
    static double idle0[MAX_CORES], steal0[MAX_CORES], idle1[MAX_CORES], steal1[MAX_CORES];
    int cores0 = 0, cores1 = 0;
    int measuring = 0;
    for (;;) {
        double now = now_seconds();
        if (!measuring && now >= measure_from && wait_for_server && now < warmup_limit) {
            /* Warm by the server's CPU time too: keep the warm-up going until it has used warmup_server_cpu. */
            double u = -1, s = -1;
            server_cpu(server_pid, &u, &s);
            if (u >= 0 && (u + s) - (start_user + start_sys) < warmup_server_cpu) {
                measure_from = now + 0.1;
                measure_to = measure_from + duration;
            } else {
                wait_for_server = 0;
            }
        }
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
            fprintf(stderr, "echo_client: every connection failed\n");
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
            fprintf(stderr, "echo_client: epoll_wait: %s\n", strerror(errno));
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

    /* Mismatched bytes are counted over the whole run, warm-up included: a wrong byte is wrong whenever it came. */
    int server_known = suser0 >= 0 && suser1 >= 0;
    fprintf(stderr, "echo_client: warm-up took %.1f s\n", t0 - start);
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
