/* vccr-rshd: runs commands sent by vccr-rsh (protocol in vrsh.h). TEST-ONLY, NO
 * AUTHENTICATION: meant for private test VMs on a private namespace network.
 *
 *   vccr-rshd [--port P (2222)] [--bind IPV4 (0.0.0.0)]
 *
 * Prints `RSHD READY port=P` once listening (--port 0: the kernel picks a free port, and P
 * is that port), then serves forever: one forked handler per
 * connection, which runs the command with `/bin/sh -c` in its own session, relays its
 * stdout/stderr (and the client's stdin) as frames and finally reports its exit status.
 * The command inherits this daemon's environment; its working directory is $HOME (or /). */
#include "vrsh.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

static void usage(void)
{
    fprintf(stderr, "usage: vccr-rshd [--port P (%d)] [--bind IPV4 (0.0.0.0)]\n", VRSH_DEFAULT_PORT);
    exit(64);
}

static void fail(int sock, const char *what)
{
    char msg[256];
    int n = snprintf(msg, sizeof msg, "vccr-rshd: %s: %s\n", what, strerror(errno));
    uint8_t st[4];
    vrsh_send_frame(sock, 'f', msg, (uint32_t)n);
    vrsh_put32(st, 255);
    vrsh_send_frame(sock, 'x', st, 4);
    _exit(1);
}

/* Relays one connection; runs in a forked process and never returns. */
static void serve(int sock)
{
    signal(SIGCHLD, SIG_DFL); /* the listener ignores it (auto-reap); we need waitpid */
    signal(SIGPIPE, SIG_IGN);
    int one = 1;
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    uint8_t hdr[8];
    if (vrsh_read_all(sock, hdr, sizeof hdr) != 1 || memcmp(hdr, "VRSH", 4) != 0)
        _exit(1);
    uint32_t len = vrsh_get32(hdr + 4);
    if (len == 0 || len > VRSH_MAX_COMMAND)
        _exit(1);
    char *cmd = malloc((size_t)len + 1);
    if (!cmd || vrsh_read_all(sock, cmd, len) != 1)
        _exit(1);
    cmd[len] = '\0';

    int in[2], out[2], err[2];
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC))
        fail(sock, "pipe");
    pid_t child = fork();
    if (child < 0)
        fail(sock, "fork");
    if (child == 0) {
        setsid();
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        signal(SIGPIPE, SIG_DFL);
        const char *home = getenv("HOME");
        if (!home || chdir(home) != 0) {
            if (chdir("/") != 0) {
                /* nothing better to do */
            }
        }
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        fprintf(stderr, "vccr-rshd: exec /bin/sh: %s\n", strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);

    int stdin_fd = in[1];
    int sock_open = 1;
    int fds_open[2] = { out[0], err[0] };
    static uint8_t buf[VRSH_MAX_FRAME];
    while (fds_open[0] >= 0 || fds_open[1] >= 0) {
        struct pollfd p[3];
        int n = 0;
        for (int i = 0; i < 2; i++) {
            if (fds_open[i] >= 0)
                p[n++] = (struct pollfd){ .fd = fds_open[i], .events = POLLIN };
        }
        int sock_idx = -1;
        if (sock_open) {
            sock_idx = n;
            p[n++] = (struct pollfd){ .fd = sock, .events = POLLIN };
        }
        if (poll(p, (nfds_t)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int i = 0; i < n; i++) {
            if (!p[i].revents)
                continue;
            if (i == sock_idx) {
                uint8_t fh[5];
                int r = vrsh_read_all(sock, fh, sizeof fh);
                uint32_t flen = r == 1 ? vrsh_get32(fh + 1) : 0;
                if (r == 1 && flen <= VRSH_MAX_FRAME && (flen == 0 || vrsh_read_all(sock, buf, flen) == 1)) {
                    if (fh[0] == 'i' && stdin_fd >= 0 && flen > 0) {
                        if (vrsh_write_all(stdin_fd, buf, flen, 0) != 0) {
                            close(stdin_fd);
                            stdin_fd = -1;
                        }
                    } else if (fh[0] == 'e' && stdin_fd >= 0) {
                        close(stdin_fd);
                        stdin_fd = -1;
                    }
                } else {
                    /* Client gone (or garbage): keep draining the command's output so it
                     * never blocks on a full pipe, and let it finish. */
                    sock_open = 0;
                    if (stdin_fd >= 0) {
                        close(stdin_fd);
                        stdin_fd = -1;
                    }
                }
                continue;
            }
            int which = p[i].fd == fds_open[0] ? 0 : 1;
            ssize_t r = read(p[i].fd, buf, sizeof buf);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                close(fds_open[which]);
                fds_open[which] = -1;
                continue;
            }
            if (sock_open && vrsh_send_frame(sock, which == 0 ? 'o' : 'r', buf, (uint32_t)r) != 0)
                sock_open = 0;
        }
    }
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    uint32_t code = WIFEXITED(status) ? (uint32_t)WEXITSTATUS(status)
                    : WIFSIGNALED(status) ? 128u + (uint32_t)WTERMSIG(status)
                                          : 255u;
    if (sock_open) {
        uint8_t st[4];
        vrsh_put32(st, code);
        vrsh_send_frame(sock, 'x', st, 4);
    }
    _exit(0);
}

int main(int argc, char **argv)
{
    long port = VRSH_DEFAULT_PORT;
    const char *bind_ip = "0.0.0.0";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            char *end;
            port = strtol(argv[++i], &end, 10);
            if (*end || port < 0 || port > 65535)
                usage();
        } else if (strcmp(argv[i], "--bind") == 0 && i + 1 < argc) {
            bind_ip = argv[++i];
        } else {
            usage();
        }
    }
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (inet_pton(AF_INET, bind_ip, &addr.sin_addr) != 1)
        usage();
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(ls, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(ls, 64) != 0) {
        printf("RSHD FATAL op=listen port=%ld errno=%s\n", port, strerrorname_np(errno));
        return 3;
    }
    socklen_t alen = sizeof addr;
    if (getsockname(ls, (struct sockaddr *)&addr, &alen) == 0)
        port = ntohs(addr.sin_port);
    signal(SIGCHLD, SIG_IGN); /* handlers are reaped automatically */
    signal(SIGPIPE, SIG_IGN);
    printf("RSHD READY port=%ld\n", port);
    fflush(stdout);
    for (;;) {
        int c = accept4(ls, NULL, NULL, 0);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                errno == ENOMEM)
                continue;
            printf("RSHD FATAL op=accept errno=%s\n", strerrorname_np(errno));
            return 3;
        }
        pid_t pid = fork();
        if (pid == 0) {
            close(ls);
            serve(c);
        }
        close(c);
    }
}
