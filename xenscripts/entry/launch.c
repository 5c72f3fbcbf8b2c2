/*
 * xenscripts-launch: the entry files' interpreter when it is installed (their "#!" line names it).
 *
 * The warm path of entry/client.py without starting Python: a hotplug script
 * run by libxl costs a process, and Python's own start (~10 ms of CPU) is a
 * third of what upstream's bash spends on a whole offline. This reads which
 * command the entry file runs, forwards argv, the environment and the network
 * namespace to hotplugd exactly as client.py does (entry/wire.py: the same
 * request, QUEUED/BUSY/REFUSE, STARTED -> GO, stderr/stdout/exit frames), and
 * relays the answer. Whenever the daemon does not run the call, or anything
 * needs more than forwarding (--help, vif-setup, a bad setting, a timeout to
 * report in xenstore), it execs the entry file with Python instead, before
 * anything was started, or with XENSCRIPTS_HANDOFF saying what happened:
 *   "run DEADLINE"             hotplugd did not run it: run it in-process (time left permitting)
 *   "busy DEADLINE REASON"     hotplugd could not start it: report, do not run
 *   "timeout DEADLINE"         hotplugd started it and did not finish by the deadline: report
 * DEADLINE is the call's deadline in CLOCK_MONOTONIC seconds, so the budget is one.
 *
 * Build: cc -O2 -o xenscripts-launch launch.c [-DPYTHON='"/usr/bin/python3"']
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifndef PYTHON
#define PYTHON "/usr/bin/python3"
#endif

#define DEFAULT_SOCKET "/run/xenscripts/hotplugd.sock"
#define DEFAULT_CONF "/etc/xen/xenscripts.conf"
#define DEFAULT_TIMEOUT 30.0
#define ANSWER_SHARE 0.45 /* of the budget, for the daemon's first answer (entry/client.py says why) */
#define START_SHARE 0.6
#define MAX_FRAME (1 << 20)
#define ENTRY_TAG "\"\"\"xenscripts entry point for "

extern char **environ;

static char **g_argv;      /* [launcher, entry file, args...] */
static char command[64];
static char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static double budget = DEFAULT_TIMEOUT;

/* Run the entry file with Python; *handoff* (or NULL) tells it what hotplugd did. */
static void python(const char *handoff)
{
    int argc = 0;
    while (g_argv[argc])
        argc++;
    char **args = calloc((size_t)argc + 3, sizeof(char *));
    if (!args)
        _exit(1);
    args[0] = PYTHON;
    args[1] = "-IS";
    for (int i = 1; i < argc; i++)
        args[i + 1] = g_argv[i];
    if (handoff)
        setenv("XENSCRIPTS_HANDOFF", handoff, 1);
    else
        unsetenv("XENSCRIPTS_HANDOFF");
    execv(PYTHON, args);
    dprintf(2, "%s: cannot run %s: %s\n", g_argv[1], PYTHON, strerror(errno));
    _exit(1);
}

static void handoff(const char *kind, double deadline, const char *reason)
{
    char text[4096];
    snprintf(text, sizeof text, "%s %.6f%s%s", kind, deadline, reason ? " " : "", reason ? reason : "");
    python(text);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The command named by the entry file's docstring, as entry/entryfile.py reads it. */
static int read_command(const char *path)
{
    char head[1025];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, head, sizeof head - 1);
    close(fd);
    if (n <= 0)
        return -1;
    head[n] = 0;
    char *at = memmem(head, (size_t)n, ENTRY_TAG, strlen(ENTRY_TAG));
    if (!at)
        return -1;
    at += strlen(ENTRY_TAG);
    size_t len = 0;
    while (at + len < head + n && (at[len] == '-' || (at[len] >= 'a' && at[len] <= 'z')))
        len++;
    if (len == 0 || len >= sizeof command || at + len >= head + n || at[len] != ':')
        return -1;
    memcpy(command, at, len);
    command[len] = 0;
    return 0;
}

/* A value as core/conf.py reads it: quoted, or up to a '#' after a blank. 0, or -1 when it would refuse it. */
static int conf_value(char *text, char **out)
{
    while (*text == ' ' || *text == '\t')
        text++;
    char *end = text + strlen(text);
    while (end > text && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        *--end = 0;
    if (*text == '"' || *text == '\'') {
        char *close = strchr(text + 1, *text);
        if (!close)
            return -1;
        char *rest = close + 1;
        while (*rest == ' ' || *rest == '\t')
            rest++;
        if (*rest && *rest != '#')
            return -1;
        *close = 0;
        *out = text + 1;
        return 0;
    }
    for (char *p = text; *p; p++) {
        if (*p == '#' && (p == text || p[-1] == ' ' || p[-1] == '\t')) {
            *p = 0;
            while (p > text && (p[-1] == ' ' || p[-1] == '\t'))
                *--p = 0;
            break;
        }
    }
    *out = text;
    return 0;
}

/* socket and client_timeout: XENSCRIPTS_* (tests) over the file over the defaults. -1: let Python say what is wrong. */
static int settings(void)
{
    const char *conf = getenv("XENSCRIPTS_CONF");
    const char *sock = getenv("XENSCRIPTS_SOCKET"), *timeout = getenv("XENSCRIPTS_CLIENT_TIMEOUT");
    char file_sock[sizeof sock_path] = "", file_timeout[64] = "";
    FILE *f = fopen(conf && *conf ? conf : DEFAULT_CONF, "re");
    if (f) {
        char line[4096];
        while (fgets(line, sizeof line, f)) {
            if (!strchr(line, '\n') && !feof(f)) {
                fclose(f);
                return -1;
            }
            line[strcspn(line, "\r\n")] = 0;
            char *key = line, *eq = strchr(line, '='), *value;
            if (!eq)
                continue;
            *eq = 0;
            while (*key == ' ' || *key == '\t')
                key++;
            for (char *k = eq; k > key && (k[-1] == ' ' || k[-1] == '\t'); k--)
                k[-1] = 0;
            int is_sock = !strcmp(key, "socket"), is_timeout = !strcmp(key, "client_timeout");
            if (!is_sock && !is_timeout)
                continue;
            if (conf_value(eq + 1, &value) < 0)
                return -1;
            char *dest = is_sock ? file_sock : file_timeout;
            size_t size = is_sock ? sizeof file_sock : sizeof file_timeout;
            if (strlen(value) >= size)
                return -1;
            strcpy(dest, value);
        }
        fclose(f);
    } else if (errno != ENOENT) {
        return -1;
    }
    if (!sock || !*sock)
        sock = *file_sock ? file_sock : DEFAULT_SOCKET;
    if (!timeout || !*timeout)
        timeout = *file_timeout ? file_timeout : NULL;
    if (sock[0] != '/' || strlen(sock) >= sizeof sock_path)
        return -1;
    strcpy(sock_path, sock);
    if (timeout) {
        char *end;
        errno = 0;
        budget = strtod(timeout, &end);
        if (errno || end == timeout || *end || !(budget > 0 && budget <= 35))
            return -1;
    }
    return 0;
}

/* Wait until *fd* is readable or *by*; 0 ready, -1 timed out. */
static int wait_readable(int fd, double by)
{
    for (;;) {
        double left = by - now();
        if (left <= 0)
            return -1;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, (int)(left * 1000) + 1);
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

/* Exactly *size* bytes by *by*: 0; -1 timed out; -2 closed or failed. */
static int recv_exact(int fd, char *buf, size_t size, double by)
{
    size_t got = 0;
    while (got < size) {
        if (wait_readable(fd, by) < 0)
            return -1;
        ssize_t n = recv(fd, buf + got, size - got, 0);
        if (n == 0)
            return -2;
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -2;
        }
        got += (size_t)n;
    }
    return 0;
}

/* One frame by *by*: its kind, body (malloc'd, NUL-ended) and size; -1 timed out, -2 closed or bad. */
static int read_frame(int fd, double by, char *kind, char **body, size_t *size)
{
    unsigned char len[4];
    int r = recv_exact(fd, (char *)len, 4, by);
    if (r < 0)
        return r;
    size_t n = len[0] | len[1] << 8 | len[2] << 16 | (size_t)len[3] << 24;
    if (n < 1 || n > MAX_FRAME)
        return -2;
    char *payload = malloc(n + 1);
    if (!payload)
        return -2;
    r = recv_exact(fd, payload, n, by);
    if (r < 0) {
        free(payload);
        return r;
    }
    payload[n] = 0;
    *kind = payload[0];
    *size = n - 1;
    *body = payload;
    return 0;
}

static int write_all(int fd, const char *buf, size_t size)
{
    while (size) {
        ssize_t n = write(fd, buf, size);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        size -= (size_t)n;
    }
    return 0;
}

/* The request (entry/wire.py encode_request), length-prefixed. */
static char *request(int argc, char **argv, double start_by, double deadline, size_t *size)
{
    size_t cap = 4096, len = 4;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
#define PUT(s, n)                                                     \
    do {                                                              \
        size_t n_ = (n);                                              \
        while (len + n_ + 1 > cap) {                                  \
            char *b_ = realloc(buf, cap *= 2);                        \
            if (!b_) {                                                \
                free(buf);                                            \
                return NULL;                                          \
            }                                                         \
            buf = b_;                                                 \
        }                                                             \
        memcpy(buf + len, (s), n_);                                   \
        len += n_;                                                    \
    } while (0)
    char num[64];
    PUT("XS2", 4);  /* with its NUL separator */
    snprintf(num, sizeof num, "%.6f", start_by);
    PUT(num, strlen(num) + 1);
    snprintf(num, sizeof num, "%.6f", deadline);
    PUT(num, strlen(num) + 1);
    PUT(command, strlen(command) + 1);
    snprintf(num, sizeof num, "%d", argc);
    PUT(num, strlen(num));
    for (int i = 0; i < argc; i++) {
        PUT("", 1);
        PUT(argv[i], strlen(argv[i]));
    }
    for (char **e = environ; *e; e++) {
        if (!strchr(*e, '=') || **e == '=')
            continue;
        PUT("", 1);
        PUT(*e, strlen(*e));
    }
#undef PUT
    size_t n = len - 4;
    buf[0] = (char)(n & 0xff), buf[1] = (char)(n >> 8 & 0xff), buf[2] = (char)(n >> 16 & 0xff),
    buf[3] = (char)(n >> 24 & 0xff);
    *size = len;
    return buf;
}

/* Connect by *by*, waiting out a full listen backlog; 0 or -1. */
static int connect_by(int fd, double by)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strcpy(addr.sun_path, sock_path);
    for (;;) {
        double left = by - now();
        if (left <= 0)
            return -1;
        struct timeval tv = {.tv_sec = (time_t)left, .tv_usec = (suseconds_t)((left - (time_t)left) * 1e6)};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EINPROGRESS) {
            if (now() >= by)
                return -1;
            usleep(5000);
            continue;
        }
        return -1;
    }
}

int main(int argc, char **argv)
{
    g_argv = argv;
    if (argc < 2)
        return dprintf(2, "xenscripts-launch: the interpreter of xenscripts' entry files (#!), not a command\n"), 2;
    double start = now();
    signal(SIGPIPE, SIG_IGN);
    if (read_command(argv[1]) < 0 || !strcmp(command, "vif-setup"))
        python(NULL);
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") || !strcmp(argv[i], "--version"))
            python(NULL);
    const char *no_daemon = getenv("XENSCRIPTS_NO_DAEMON");
    if ((no_daemon && !strcmp(no_daemon, "1")) || getenv("XENSCRIPTS_HANDOFF") || settings() < 0)
        python(NULL);

    double deadline = start + budget;
    double answer_by = start + budget * ANSWER_SHARE;
    double start_by = start + budget * START_SHARE;
    double work_deadline = deadline - (2.0 < budget / 5 ? 2.0 : budget / 5);
    if (start_by < answer_by)
        start_by = answer_by;

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect_by(fd, answer_by) < 0)
        handoff("run", deadline, NULL);
    size_t size;
    char *req = request(argc - 1, argv + 1, start_by, work_deadline, &size);
    int ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (!req || ns < 0)
        handoff("run", deadline, NULL);
    char control[CMSG_SPACE(sizeof(int))] = {0};
    struct iovec iov = {.iov_base = req, .iov_len = size};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cmsg), &ns, sizeof(int));
    ssize_t sent = sendmsg(fd, &msg, MSG_NOSIGNAL);
    close(ns);
    if (sent < 0)
        handoff("run", deadline, NULL);
    if ((size_t)sent < size && write_all(fd, req + sent, size - (size_t)sent) < 0)
        handoff("run", deadline, NULL);
    free(req);

    char kind, *body;
    size_t len;
    if (read_frame(fd, answer_by, &kind, &body, &len) < 0)
        handoff("run", deadline, NULL);
    if (kind == 'Q') {
        free(body);
        int r = read_frame(fd, start_by, &kind, &body, &len);
        if (r == -1) {
            char reason[128];
            snprintf(reason, sizeof reason, "hotplugd queued it and did not start it within %.1f s", start_by - start);
            handoff("busy", deadline, reason);
        }
        if (r < 0)
            handoff("run", deadline, NULL);
    }
    if (kind == 'B')
        handoff("busy", deadline, body + 1);
    if (kind != 'S')
        handoff("run", deadline, NULL);  /* refused: the daemon did nothing */
    free(body);
    if (write_all(fd, "G", 1) < 0)
        handoff("run", deadline, NULL);
    for (;;) {
        int r = read_frame(fd, deadline, &kind, &body, &len);
        if (r == -1)
            handoff("timeout", deadline, NULL);
        if (r < 0)
            handoff("run", deadline, NULL);  /* died after starting: the commands are idempotent */
        if (kind == 'E' || kind == 'O') {
            write_all(kind == 'E' ? 2 : 1, body + 1, len);
        } else if (kind == 'X') {
            _exit(atoi(body + 1) & 0xff);
        } else {
            handoff("run", deadline, NULL);
        }
        free(body);
    }
}
