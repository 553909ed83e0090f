/* vccr-ring: one node of a TCP token ring that DETECTS any inconsistency in the token
 * stream. After a cluster checkpoint/restart the ring must carry on from the exact token it
 * had, over the same TCP connections; a duplicated, lost, reordered or corrupted token, a
 * closed/reset connection or a stall is reported on one line and the node exits 2.
 * Output lines are a contract, documented in guest/README.md. */
#include "vccr.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#define FRAME_LEN 16
static const uint8_t MAGIC[4] = { 'V', 'T', 'O', 'K' };

struct cfg {
    unsigned id, nodes;
    struct sockaddr_in bind, next;
    uint64_t delay_ms, stall_sec, print_every, connect_sec;
};

static unsigned g_id; /* for error lines */

static void usage(void)
{
    fprintf(stderr, "usage: vccr-ring --id I --nodes N --listen PORT --next IPV4:PORT\n"
                    "                 [--bind IPV4] [--delay-ms D] [--stall-sec S] [--print-every K]\n"
                    "                 [--connect-sec C]\n");
    exit(64);
}

/* Setup failures (bad address, port in use) are not inconsistencies: separate line, exit 3. */
static void fatal(const char *op, int e)
{
    say("RING FATAL id=%u op=%s errno=%s", g_id, op, errname(e));
    exit(3);
}

static void error_tokens(const char *reason, uint64_t expected, uint64_t got)
{
    say("RING ERROR id=%u reason=%s expected=%llu got=%llu", g_id, reason, (unsigned long long)expected,
        (unsigned long long)got);
    exit(2);
}

static void error_conn(const char *reason, const char *conn, uint64_t expected)
{
    say("RING ERROR id=%u reason=%s conn=%s expected=%llu", g_id, reason, conn, (unsigned long long)expected);
    exit(2);
}

static void parse_ipv4(const char *opt, const char *s, struct sockaddr_in *out)
{
    memset(out, 0, sizeof *out);
    out->sin_family = AF_INET;
    if (inet_pton(AF_INET, s, &out->sin_addr) != 1) {
        fprintf(stderr, "%s: not a dotted IPv4 address: '%s'\n", opt, s);
        exit(64);
    }
}

static uint16_t parse_port(const char *opt, const char *s)
{
    uint64_t p = parse_u64(opt, s);
    if (p > 65535) {
        fprintf(stderr, "%s: port out of range: %s\n", opt, s);
        exit(64);
    }
    return (uint16_t)p;
}

static void parse_args(int argc, char **argv, struct cfg *c)
{
    static const struct option opts[] = {
        { "id", required_argument, NULL, 'i' },          { "nodes", required_argument, NULL, 'n' },
        { "listen", required_argument, NULL, 'l' },      { "next", required_argument, NULL, 'x' },
        { "bind", required_argument, NULL, 'b' },        { "delay-ms", required_argument, NULL, 'd' },
        { "stall-sec", required_argument, NULL, 's' },   { "print-every", required_argument, NULL, 'p' },
        { "connect-sec", required_argument, NULL, 'c' }, { NULL, 0, NULL, 0 },
    };
    int have_id = 0, have_nodes = 0, have_listen = 0, have_next = 0, o;
    uint16_t listen_port = 0;
    memset(c, 0, sizeof *c);
    parse_ipv4("--bind", "0.0.0.0", &c->bind);
    c->delay_ms = 10;
    c->stall_sec = 10;
    c->print_every = 1;
    c->connect_sec = 60;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'i': c->id = (unsigned)parse_u64("--id", optarg); have_id = 1; break;
        case 'n': c->nodes = (unsigned)parse_u64("--nodes", optarg); have_nodes = 1; break;
        case 'l': listen_port = parse_port("--listen", optarg); have_listen = 1; break;
        case 'b': parse_ipv4("--bind", optarg, &c->bind); break;
        case 'd': c->delay_ms = parse_u64("--delay-ms", optarg); break;
        case 's': c->stall_sec = parse_u64("--stall-sec", optarg); break;
        case 'p': c->print_every = parse_u64("--print-every", optarg); break;
        case 'c': c->connect_sec = parse_u64("--connect-sec", optarg); break;
        case 'x': {
            char host[64];
            const char *colon = strrchr(optarg, ':');
            if (!colon || (size_t)(colon - optarg) >= sizeof host) usage();
            memcpy(host, optarg, (size_t)(colon - optarg));
            host[colon - optarg] = '\0';
            parse_ipv4("--next", host, &c->next);
            c->next.sin_port = htons(parse_port("--next", colon + 1));
            have_next = 1;
            break;
        }
        default: usage();
        }
    }
    if (!have_id || !have_nodes || !have_listen || !have_next || optind != argc) usage();
    if (c->nodes < 1 || c->id >= c->nodes || c->print_every < 1 || c->stall_sec < 1) usage();
    c->bind.sin_port = htons(listen_port);
}

static const char *fmt_addr(const struct sockaddr_in *a, char *buf, size_t n)
{
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
    snprintf(buf, n, "%s:%u", ip, (unsigned)ntohs(a->sin_port));
    return buf;
}

/* The successor may still be booting: retry until connect_sec has passed. Non-blocking
 * connect so one attempt to a silent host cannot overrun the deadline. */
static int connect_next(const struct cfg *c)
{
    uint64_t deadline = now_ms() + c->connect_sec * 1000u;
    int last_err = ETIMEDOUT;
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) fatal("socket", errno);
        int rc = connect(fd, (const struct sockaddr *)&c->next, sizeof c->next);
        if (rc != 0 && errno == EINPROGRESS) {
            uint64_t now = now_ms();
            struct pollfd p = { .fd = fd, .events = POLLOUT };
            int left = now < deadline ? (int)(deadline - now) : 0;
            if (poll(&p, 1, left) == 1) {
                socklen_t len = sizeof last_err;
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &last_err, &len);
                rc = last_err == 0 ? 0 : -1;
            } else {
                last_err = ETIMEDOUT;
            }
        } else if (rc != 0) {
            last_err = errno;
        }
        if (rc == 0) {
            /* back to blocking: simpler I/O, poll() guards the reads */
            if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0) fatal("fcntl", errno);
            return fd;
        }
        close(fd);
        if (now_ms() >= deadline) {
            say("RING ERROR id=%u reason=connect conn=out errno=%s", g_id, errname(last_err));
            exit(2);
        }
        sleep_ms(200);
    }
}

/* Exactly one inbound connection, from the predecessor. Bounded like connect_next so a
 * predecessor that never comes is reported instead of hanging forever. */
static int accept_prev(const struct cfg *c, int lfd)
{
    struct pollfd p = { .fd = lfd, .events = POLLIN };
    int rc = poll(&p, 1, (int)(c->connect_sec * 1000u));
    if (rc == 0) {
        say("RING ERROR id=%u reason=connect conn=in errno=%s", g_id, errname(ETIMEDOUT));
        exit(2);
    }
    if (rc < 0) fatal("poll", errno);
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) fatal("accept", errno);
    return fd;
}

static void send_token(int out, uint64_t value, uint64_t expected)
{
    uint8_t f[FRAME_LEN];
    memcpy(f, MAGIC, 4);
    put_be64(f + 4, value);
    put_be32(f + 12, fnv1a32(f, 12));
    size_t off = 0;
    while (off < FRAME_LEN) {
        ssize_t n = send(out, f + off, FRAME_LEN - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) error_conn("reset", "out", expected);
        if (n < 0) fatal("send", errno);
        off += (size_t)n;
    }
}

/* Read whatever is available on fd into buf[*have..cap). EOF/reset are ring errors. */
static void read_some(int fd, const char *conn, uint8_t *buf, size_t *have, size_t cap, uint64_t expected)
{
    ssize_t n;
    do {
        n = recv(fd, buf + *have, cap - *have, 0);
    } while (n < 0 && errno == EINTR);
    if (n == 0) error_conn("eof", conn, expected);
    if (n < 0) {
        if (errno == ECONNRESET || errno == EPIPE) error_conn("reset", conn, expected);
        fatal("recv", errno);
    }
    *have += (size_t)n;
}

int main(int argc, char **argv)
{
    struct cfg c;
    parse_args(argc, argv, &c);
    g_id = c.id;
    signal(SIGPIPE, SIG_IGN);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (lfd < 0) fatal("socket", errno);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (const struct sockaddr *)&c.bind, sizeof c.bind) != 0) fatal("bind", errno);
    if (listen(lfd, 4) != 0) fatal("listen", errno);
    say("RING READY id=%u", c.id);

    /* Every node listens before it connects, so connecting first and accepting second
     * cannot deadlock: connects complete against the listen backlog. */
    int out = connect_next(&c);
    int in = accept_prev(&c, lfd);
    close(lfd);
    setsockopt(out, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    struct sockaddr_in a;
    socklen_t len;
    char s_in[32], s_loc[32], s_rem[32];
    len = sizeof a;
    getpeername(in, (struct sockaddr *)&a, &len);
    fmt_addr(&a, s_in, sizeof s_in);
    len = sizeof a;
    getsockname(out, (struct sockaddr *)&a, &len);
    fmt_addr(&a, s_loc, sizeof s_loc);
    fmt_addr(&c.next, s_rem, sizeof s_rem);
    say("RING CONN id=%u in=%s out=%s->%s", c.id, s_in, s_loc, s_rem);

    /* Node I's k-th token must be I + (k-1)*N (node 0: k*N): any deviation is exact. */
    uint64_t received = 0, last = 0;
    uint64_t expected = c.id == 0 ? c.nodes : c.id;
    if (c.id == 0) send_token(out, 1, expected);
    uint64_t last_token_ms = now_ms();

    uint8_t buf[4 * FRAME_LEN];
    size_t have = 0;
    for (;;) {
        uint64_t now = now_ms(), deadline = last_token_ms + c.stall_sec * 1000u;
        if (now >= deadline) {
            say("RING ERROR id=%u reason=stall expected=%llu idle-ms=%llu", g_id, (unsigned long long)expected,
                (unsigned long long)(now - last_token_ms));
            exit(2);
        }
        /* Watch `out` too: the successor never sends, so readability there means it
         * closed or reset the connection, which must not go unnoticed until our next send. */
        struct pollfd p[2] = { { .fd = in, .events = POLLIN }, { .fd = out, .events = POLLIN } };
        int rc = poll(p, 2, (int)(deadline - now));
        if (rc < 0 && errno == EINTR) continue;
        if (rc < 0) fatal("poll", errno);
        if (rc == 0) continue; /* the stall check at the top fires */
        if (p[1].revents) {
            uint8_t junk[FRAME_LEN];
            size_t n = 0;
            read_some(out, "out", junk, &n, sizeof junk, expected);
            error_conn("bad-frame", "out", expected); /* data on the outbound side */
        }
        if (!p[0].revents) continue;
        read_some(in, "in", buf, &have, sizeof buf, expected);
        while (have >= FRAME_LEN) {
            if (memcmp(buf, MAGIC, 4) != 0 || get_be32(buf + 12) != fnv1a32(buf, 12))
                error_conn("bad-frame", "in", expected);
            uint64_t v = get_be64(buf + 4);
            memmove(buf, buf + FRAME_LEN, have - FRAME_LEN);
            have -= FRAME_LEN;
            if (v != expected) {
                if (received > 0 && v == last) error_tokens("duplicate", expected, v);
                error_tokens(v < expected ? "reorder" : "skip", expected, v);
            }
            received++;
            last = v;
            last_token_ms = now_ms();
            expected += c.nodes;
            if (received % c.print_every == 0) say("RING TOKEN id=%u value=%llu", c.id, (unsigned long long)v);
            sleep_ms(c.delay_ms);
            send_token(out, v + 1, expected);
        }
    }
}
