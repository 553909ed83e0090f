/* Wire protocol shared by vccr-rsh (client) and vccr-rshd (server): a test-only
 * replacement for ssh that lets Open MPI's rsh launcher start `orted` on the other VMs.
 * TRUST MODEL: none. Anyone who can reach the port runs any command as root. It exists
 * only inside private test VMs on a network namespace the test created; never run it on
 * a reachable network. See guest/README.md ("MPI image").
 *
 * Connection (TCP, default port 2222):
 *   client -> server  request : "VRSH" | u32 BE length L | L bytes of command text
 *   then frames in both directions: u8 type | u32 BE length | payload
 *   client -> server  'i' stdin bytes, 'e' stdin EOF (length 0)
 *   server -> client  'o' stdout bytes, 'r' stderr bytes,
 *                     'x' exit (length 4: u32 BE status: exit code, or 128+signal),
 *                     'f' failure text (the server could not run the command; 'x' 255 follows)
 * The server runs the command text with `/bin/sh -c` (like sshd runs it with the user's
 * shell), because Open MPI builds a shell command line: `( test ! -r ./.profile || ... ;
 * orted ... "quoted;args" )`. */
#ifndef VRSH_H
#define VRSH_H

#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define VRSH_DEFAULT_PORT 2222
#define VRSH_MAX_COMMAND (1u << 20)
#define VRSH_MAX_FRAME (1u << 16)

/* Writes all of buf; 0 on success, -1 with errno on failure (never raises SIGPIPE). */
static inline int vrsh_write_all(int fd, const void *buf, size_t n, int is_socket)
{
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t w = is_socket ? send(fd, p, n, MSG_NOSIGNAL) : write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads exactly n bytes: 1 on success, 0 on EOF before n bytes, -1 on error. */
static inline int vrsh_read_all(int fd, void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0)
            return 0;
        p += r;
        n -= (size_t)r;
    }
    return 1;
}

static inline void vrsh_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline uint32_t vrsh_get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline int vrsh_send_frame(int sock, uint8_t type, const void *data, uint32_t n)
{
    uint8_t hdr[5];
    hdr[0] = type;
    vrsh_put32(hdr + 1, n);
    if (vrsh_write_all(sock, hdr, sizeof hdr, 1) != 0)
        return -1;
    return n ? vrsh_write_all(sock, data, n, 1) : 0;
}

#endif
