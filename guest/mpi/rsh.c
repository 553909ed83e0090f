/* vccr-rsh: ssh-compatible client for vccr-rshd (protocol in vrsh.h). TEST-ONLY.
 *
 *   vccr-rsh [ssh-style options] [user@]HOST [-p PORT] COMMAND [ARG...]
 *
 * Calling convention of Open MPI's rsh launcher (plm_rsh_agent): `<agent> [plm_rsh_args]
 * <node> [-p <port>] <one shell command line>`. Like ssh, the words after HOST are
 * joined with single spaces and run by the remote shell. Accepted options (before HOST):
 * -p PORT (default $VCCR_RSH_PORT or 2222); -l USER, -o OPT, -i FILE, -F FILE (ignored);
 * and the flags -x -X -q -T -t -n -4 -6 -A -a -C -v (ignored, except -n: do not forward
 * stdin). HOST is a dotted IPv4 address or a name from /etc/hosts (no DNS).
 *
 * Exit status: the remote command's (128+signal if it was killed); 255 if the connection
 * failed or ended early, with a `vccr-rsh: ...` line on stderr (ssh's convention). */
#include "vrsh.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#define CONNECT_TIMEOUT_MS 10000

static void die(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "vccr-rsh: ");
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    exit(255);
}

static void usage(void)
{
    fprintf(stderr, "usage: vccr-rsh [-p PORT] [-l USER] [-o OPT] [-xXqTtn46AaCv] [user@]HOST [-p PORT] COMMAND [ARG...]\n");
    exit(255);
}

static long parse_port(const char *s)
{
    char *end;
    long p = strtol(s, &end, 10);
    if (*s == '\0' || *end || p < 1 || p > 65535)
        usage();
    return p;
}

/* Dotted IPv4, or the first IPv4 entry for `name` in /etc/hosts. */
static int resolve(const char *name, struct in_addr *out)
{
    if (inet_pton(AF_INET, name, out) == 1)
        return 0;
    FILE *f = fopen("/etc/hosts", "r");
    if (!f)
        return -1;
    char line[512];
    int found = -1;
    while (found != 0 && fgets(line, sizeof line, f)) {
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *save = NULL;
        char *addr = strtok_r(line, " \t\r\n", &save);
        if (!addr)
            continue;
        struct in_addr a;
        if (inet_pton(AF_INET, addr, &a) != 1)
            continue;
        for (char *n = strtok_r(NULL, " \t\r\n", &save); n; n = strtok_r(NULL, " \t\r\n", &save)) {
            if (strcasecmp(n, name) == 0) {
                *out = a;
                found = 0;
                break;
            }
        }
    }
    fclose(f);
    return found;
}

static int connect_to(const char *host, struct in_addr ip, long port)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s < 0)
        die("socket: %s%s", strerror(errno), "");
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr = ip };
    if (connect(s, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (errno != EINPROGRESS)
            die("connect to %s: %s", host, strerror(errno));
        struct pollfd p = { .fd = s, .events = POLLOUT };
        int r;
        while ((r = poll(&p, 1, CONNECT_TIMEOUT_MS)) < 0 && errno == EINTR) {
        }
        if (r == 0)
            die("connect to %s: %s", host, "timed out");
        int soerr = 0;
        socklen_t len = sizeof soerr;
        getsockopt(s, SOL_SOCKET, SO_ERROR, &soerr, &len);
        if (soerr != 0)
            die("connect to %s: %s", host, strerror(soerr));
    }
    int flags = fcntl(s, F_GETFL);
    fcntl(s, F_SETFL, flags & ~O_NONBLOCK);
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return s;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    const char *env_port = getenv("VCCR_RSH_PORT");
    long port = env_port && *env_port ? parse_port(env_port) : VRSH_DEFAULT_PORT;
    int forward_stdin = 1;
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
        const char *o = argv[i] + 1;
        if (strchr("plioF", o[0]) && o[1] == '\0') { /* options with a value */
            if (i + 1 >= argc)
                usage();
            if (o[0] == 'p')
                port = parse_port(argv[i + 1]);
            i++;
            continue;
        }
        for (; *o; o++) {
            if (!strchr("xXqTtn46AaCv", *o))
                usage();
            if (*o == 'n')
                forward_stdin = 0;
        }
    }
    if (i >= argc)
        usage();
    const char *host = argv[i++];
    const char *at = strrchr(host, '@');
    if (at)
        host = at + 1;
    if (i + 1 < argc && strcmp(argv[i], "-p") == 0) { /* Open MPI puts a node's port after it */
        port = parse_port(argv[i + 1]);
        i += 2;
    }
    if (i >= argc)
        usage();

    size_t len = 0;
    for (int j = i; j < argc; j++)
        len += strlen(argv[j]) + 1;
    if (len > VRSH_MAX_COMMAND)
        die("command too long%s%s", "", "");
    char *cmd = malloc(len + 8);
    if (!cmd)
        die("out of memory%s%s", "", "");
    memcpy(cmd, "VRSH", 4);
    char *p = cmd + 8;
    for (int j = i; j < argc; j++) {
        size_t n = strlen(argv[j]);
        memcpy(p, argv[j], n);
        p += n;
        if (j + 1 < argc)
            *p++ = ' ';
    }
    uint32_t cmd_len = (uint32_t)(p - (cmd + 8));
    vrsh_put32((uint8_t *)cmd + 4, cmd_len);

    struct in_addr ip;
    if (resolve(host, &ip) != 0)
        die("cannot resolve %s%s (IPv4 or /etc/hosts only)", host, "");
    int s = connect_to(host, ip, port);
    if (vrsh_write_all(s, cmd, cmd_len + 8, 1) != 0)
        die("send to %s: %s", host, strerror(errno));

    int stdin_open = 1;
    if (!forward_stdin) {
        stdin_open = 0;
        vrsh_send_frame(s, 'e', NULL, 0);
    }
    static uint8_t buf[VRSH_MAX_FRAME];
    for (;;) {
        struct pollfd pf[2] = { { .fd = s, .events = POLLIN }, { .fd = 0, .events = POLLIN } };
        if (poll(pf, stdin_open ? 2 : 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            die("poll: %s%s", strerror(errno), "");
        }
        if (stdin_open && pf[1].revents) {
            ssize_t r = read(0, buf, sizeof buf);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                stdin_open = 0;
                if (vrsh_send_frame(s, 'e', NULL, 0) != 0)
                    die("send to %s: %s", host, strerror(errno));
            } else if (vrsh_send_frame(s, 'i', buf, (uint32_t)r) != 0) {
                die("send to %s: %s", host, strerror(errno));
            }
        }
        if (!pf[0].revents)
            continue;
        uint8_t fh[5];
        int r = vrsh_read_all(s, fh, sizeof fh);
        if (r != 1)
            die("connection to %s ended without an exit status%s", host, "");
        uint32_t flen = vrsh_get32(fh + 1);
        if (flen > VRSH_MAX_FRAME || (flen > 0 && vrsh_read_all(s, buf, flen) != 1))
            die("bad frame from %s%s", host, "");
        switch (fh[0]) {
        case 'o':
            if (vrsh_write_all(1, buf, flen, 0) != 0) {
                /* our stdout is gone: keep going so the exit status still arrives */
            }
            break;
        case 'r':
        case 'f':
            if (vrsh_write_all(2, buf, flen, 0) != 0) {
            }
            break;
        case 'x':
            if (flen != 4)
                die("bad exit frame from %s%s", host, "");
            return (int)(vrsh_get32(buf) & 0xff);
        default:
            die("unknown frame from %s%s", host, "");
        }
    }
}
