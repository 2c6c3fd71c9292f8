/* UDP echo load generator for the UDP benchmark (benchmarks/EventLoop.UdpBenchmark).
 *
 * One thread, epoll, non-blocking connected UDP sockets ("flows"), each keeping WINDOW datagrams in flight: it sends
 * one datagram per reply it gets (so the server's pace sets the rate), checks every reply byte, and resends a flow's
 * window when no reply came for 200 ms (a loss; counted). Over the measured window it reads the server's CPU time
 * from /proc/<pid>/stat and its own from getrusage, and prints one line:
 *   RESULT datagrams=N seconds=S rate=R server_cpu_us=X client_cpu_us=Y lost=L wrong=W
 *
 * Usage: udp_echo_client --host 127.0.0.1 --port N --flows F --window W --size BYTES --duration S --warmup S [--server-pid PID]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int fd;
    uint64_t next_seq;   /* the sequence number of the next datagram to send */
    double last_reply;   /* when the flow last heard back */
} flow_t;

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double process_cpu_seconds(int pid) {
    if (pid <= 0) return 0;
    char path[64], buffer[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *file = fopen(path, "r");
    if (!file) return 0;
    size_t n = fread(buffer, 1, sizeof buffer - 1, file);
    fclose(file);
    buffer[n] = 0;
    char *p = strrchr(buffer, ')'); /* the command name may hold spaces */
    if (!p) return 0;
    unsigned long utime = 0, stime = 0;
    /* after ") ": state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2) return 0;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static double own_cpu_seconds(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 + usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6;
}

static void fill(unsigned char *buffer, int size, uint64_t seq, int flow) {
    memset(buffer, 0, size);
    memcpy(buffer, &seq, size < 8 ? size : 8);
    for (int i = 8; i < size; i++) buffer[i] = (unsigned char)(seq * 31 + flow + i);
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    int port = 0, flows = 16, window = 1, size = 64, server_pid = 0;
    double duration = 5, warmup = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--host")) host = argv[i + 1];
        else if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--flows")) flows = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--window")) window = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--size")) size = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--duration")) duration = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--warmup")) warmup = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--server-pid")) server_pid = atoi(argv[i + 1]);
        else { fprintf(stderr, "unknown option %s\n", argv[i]); return 2; }
    }
    if (port <= 0 || flows <= 0 || window <= 0 || size < 8 || size > 65000) {
        fprintf(stderr, "usage: udp_echo_client --port N [--flows F --window W --size BYTES(>=8) --duration S --warmup S --server-pid PID]\n");
        return 2;
    }

    struct sockaddr_in server;
    memset(&server, 0, sizeof server);
    server.sin_family = AF_INET;
    server.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &server.sin_addr) != 1) { fprintf(stderr, "bad host %s\n", host); return 2; }

    int ep = epoll_create1(EPOLL_CLOEXEC);
    flow_t *all = calloc((size_t)flows, sizeof(flow_t));
    unsigned char *out = malloc((size_t)size), *in = malloc(65536), *expected = malloc((size_t)size);
    double start = now_seconds();
    for (int f = 0; f < flows; f++) {
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&server, sizeof server) < 0) { perror("socket/connect"); return 1; }
        struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)f };
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        all[f].fd = fd;
        all[f].last_reply = start;
        for (int w = 0; w < window; w++) {
            fill(out, size, all[f].next_seq, f);
            send(fd, out, (size_t)size, 0);
            all[f].next_seq++;
        }
    }

    struct epoll_event events[256];
    long long counted = 0, lost = 0, wrong = 0, errors = 0;
    int measuring = 0;
    double measure_start = 0, server_cpu_start = 0, own_cpu_start = 0;
    double end = start + warmup + duration;
    double last_scan = start;
    while (1) {
        double now = now_seconds();
        if (!measuring && now >= start + warmup) {
            measuring = 1;
            counted = 0;
            lost = 0;
            measure_start = now;
            server_cpu_start = process_cpu_seconds(server_pid);
            own_cpu_start = own_cpu_seconds();
        }
        if (now >= end) break;
        if (now - last_scan > 0.05) {
            last_scan = now;
            for (int f = 0; f < flows; f++) {
                if (now - all[f].last_reply > 0.2) { /* the window was lost: send it again */
                    lost += window;
                    all[f].last_reply = now;
                    for (int w = 0; w < window; w++) {
                        fill(out, size, all[f].next_seq, f);
                        send(all[f].fd, out, (size_t)size, 0);
                        all[f].next_seq++;
                    }
                }
            }
        }
        int n = epoll_wait(ep, events, 256, 50);
        for (int i = 0; i < n; i++) {
            flow_t *flow = &all[events[i].data.u32];
            int f = (int)events[i].data.u32;
            while (1) {
                ssize_t got = recv(flow->fd, in, 65536, 0);
                if (got < 0) {
                    if (errno != EAGAIN && errno != EINTR) errors++;
                    if (errno == EINTR) continue;
                    break;
                }
                uint64_t seq;
                memcpy(&seq, in, 8);
                fill(expected, size, seq, f);
                if (got != size || memcmp(in, expected, (size_t)size) != 0 || seq >= flow->next_seq) wrong++;
                flow->last_reply = now;
                if (measuring) counted++;
                fill(out, size, flow->next_seq, f);
                send(flow->fd, out, (size_t)size, 0);
                flow->next_seq++;
            }
        }
    }
    double seconds = now_seconds() - measure_start;
    double server_cpu = process_cpu_seconds(server_pid) - server_cpu_start;
    double own_cpu = own_cpu_seconds() - own_cpu_start;
    printf("RESULT datagrams=%lld seconds=%.3f rate=%.0f server_cpu_us=%.2f client_cpu_us=%.2f lost=%lld wrong=%lld errors=%lld\n",
           counted, seconds, counted / seconds, counted ? server_cpu * 1e6 / counted : 0, counted ? own_cpu * 1e6 / counted : 0, lost, wrong, errors);
    return 0;
}
