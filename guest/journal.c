/* vccr-journal: proves that a VM's disk state matches its memory state.
 *
 * `write` appends 4096-byte records at slot seq (offset seq*4096) with O_DIRECT + fdatasync,
 * so every record it has acknowledged is on the (virtual) disk. Before each append it checks
 * that the disk still holds its previous record (else the disk went back in time relative to
 * the process's memory: disk-behind-memory) and that the slot it is about to write is still
 * empty (else the disk holds writes this process has not made yet: disk-ahead-of-memory).
 * A checkpoint/restart that pairs a RAM snapshot with the wrong disk snapshot trips one of them.
 *
 * `verify` checks a journal offline. Output lines are a contract, see guest/README.md.
 *
 * Record layout (all integers big-endian):
 *   0  magic "VJNL"     4  u32 format version (1)     8  u64 seq     16  u64 run id
 *   24 payload (4064 bytes, splitmix64 stream seeded from seq and run id)
 *   4088 u64 FNV-1a-64 over bytes 0..4087 */
#include "vccr.h"

#include <fcntl.h>
#include <getopt.h>
#include <sys/random.h>
#include <unistd.h>

#define SLOT 4096u
#define SUM_OFF (SLOT - 8u)
#define VERSION 1u
#define SCAN_SLOTS 64u /* verify reads this many slots per pread */

enum kind { K_OK, K_ZERO, K_BAD_MAGIC, K_BAD_CHECKSUM, K_BAD_SEQ, K_RUN_ID };
static const char *const KIND_NAME[] = { "ok", "zero", "bad-magic", "bad-checksum", "bad-seq", "run-id" };

struct dev {
    int fd;
    int direct;
    uint64_t slots; /* whole 4 KiB slots on the device/file */
    const char *path;
};

static void usage(void)
{
    fprintf(stderr, "usage: vccr-journal write --dev PATH [--delay-ms D] [--print-every K] [--max N]\n"
                    "       vccr-journal verify --dev PATH\n");
    exit(64);
}

static void io_error(const char *op, uint64_t slot, int e)
{
    say("JOURNAL ERROR reason=io op=%s at=%llu errno=%s", op, (unsigned long long)slot, errname(e));
    exit(3);
}

static int all_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i]) return 0;
    return 1;
}

static void fill_record(uint8_t *r, uint64_t seq, uint64_t run)
{
    memcpy(r, "VJNL", 4);
    put_be32(r + 4, VERSION);
    put_be64(r + 8, seq);
    put_be64(r + 16, run);
    uint64_t st = run ^ (seq * 0xD1B54A32D192ED03ull);
    for (size_t off = 24; off < SUM_OFF; off += 8)
        put_be64(r + off, splitmix64(&st));
    put_be64(r + SUM_OFF, fnv1a64(r, SUM_OFF));
}

/* Classify one slot. *run == 0 means "not known yet": the record's run id is adopted. */
static enum kind classify(const uint8_t *r, uint64_t slot, uint64_t *run)
{
    if (all_zero(r, SLOT)) return K_ZERO;
    if (memcmp(r, "VJNL", 4) != 0 || get_be32(r + 4) != VERSION) return K_BAD_MAGIC;
    if (get_be64(r + SUM_OFF) != fnv1a64(r, SUM_OFF)) return K_BAD_CHECKSUM;
    if (get_be64(r + 8) != slot) return K_BAD_SEQ;
    uint64_t rid = get_be64(r + 16);
    if (*run == 0) *run = rid;
    return rid == *run ? K_OK : K_RUN_ID;
}

/* O_DIRECT so reads see the disk, not this kernel's page cache, and writes reach the
 * disk before we say so. Some filesystems (tmpfs) refuse it: fall back, and say so. */
static struct dev open_dev(const char *path, int writable)
{
    struct dev d = { .fd = -1, .direct = 1, .path = path };
    int mode = writable ? O_RDWR : O_RDONLY;
    d.fd = open(path, mode | O_DIRECT | O_CLOEXEC);
    if (d.fd < 0 && errno == EINVAL) {
        d.direct = 0;
        d.fd = open(path, mode | O_CLOEXEC);
    }
    if (d.fd < 0) io_error("open", 0, errno);
    off_t end = lseek(d.fd, 0, SEEK_END); /* works for regular files and block devices */
    if (end < 0) io_error("lseek", 0, errno);
    d.slots = (uint64_t)end / SLOT;
    return d;
}

static void read_slots(const struct dev *d, uint8_t *buf, uint64_t slot, uint64_t count)
{
    size_t want = (size_t)(count * SLOT), got = 0;
    while (got < want) {
        ssize_t n = pread(d->fd, buf + got, want - got, (off_t)(slot * SLOT + got));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) io_error("pread", slot, errno);
        if (n == 0) io_error("pread", slot, EIO); /* device shrank under us */
        got += (size_t)n;
    }
}

static uint8_t *aligned_buf(size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, SLOT, n) != 0) io_error("alloc", 0, ENOMEM);
    return p;
}

static int cmd_verify(const char *path)
{
    struct dev d = open_dev(path, 0);
    uint8_t *buf = aligned_buf(SCAN_SLOTS * SLOT);
    uint64_t run = 0, records = 0;
    int ended = 0; /* saw the first all-zero slot: everything after must be zero too */
    for (uint64_t base = 0; base < d.slots; base += SCAN_SLOTS) {
        uint64_t count = d.slots - base < SCAN_SLOTS ? d.slots - base : SCAN_SLOTS;
        read_slots(&d, buf, base, count);
        for (uint64_t i = 0; i < count; i++) {
            uint64_t slot = base + i;
            const uint8_t *r = buf + i * SLOT;
            if (ended) {
                if (!all_zero(r, SLOT)) {
                    /* at= names the hole (first missing record), found= the data beyond it */
                    say("JOURNAL ERROR reason=gap at=%llu found=%llu", (unsigned long long)records,
                        (unsigned long long)slot);
                    return 1;
                }
                continue;
            }
            enum kind k = classify(r, slot, &run);
            if (k == K_ZERO) {
                ended = 1;
            } else if (k != K_OK) {
                say("JOURNAL ERROR reason=%s at=%llu", KIND_NAME[k], (unsigned long long)slot);
                return 1;
            } else {
                records++;
            }
        }
    }
    say("JOURNAL OK records=%llu last=%lld", (unsigned long long)records, (long long)records - 1);
    return 0;
}

static uint64_t new_run_id(void)
{
    uint64_t id = 0;
    while (id == 0) { /* 0 means "unknown" to classify() */
        if (getrandom(&id, sizeof id, 0) != (ssize_t)sizeof id) {
            uint64_t st = now_ms() ^ ((uint64_t)getpid() << 32);
            id = splitmix64(&st);
        }
    }
    return id;
}

/* Continue an existing journal after its last valid contiguous record, adopting its run
 * id: a writer restarted on a disk it filled before (e.g. a VM rebooted) must not fail. */
static uint64_t find_resume_point(const struct dev *d, uint8_t *buf, uint64_t *run)
{
    uint64_t next = 0;
    for (; next < d->slots; next++) {
        read_slots(d, buf, next, 1);
        enum kind k = classify(buf, next, run);
        if (k == K_OK) continue;
        if (next == 0 && k != K_ZERO) {
            say("JOURNAL ERROR reason=%s at=0", KIND_NAME[k]);
            exit(2);
        }
        break;
    }
    return next;
}

static int cmd_write(const char *path, uint64_t delay_ms, uint64_t print_every, uint64_t max)
{
    struct dev d = open_dev(path, 1);
    uint8_t *buf = aligned_buf(SLOT), *rec = aligned_buf(SLOT);
    uint64_t limit = max < d.slots ? max : d.slots;
    uint64_t run = 0;
    say("JOURNAL OPEN dev=%s direct=%d slots=%llu", path, d.direct, (unsigned long long)d.slots);
    uint64_t next = find_resume_point(&d, buf, &run);
    if (next == 0) {
        run = new_run_id();
        say("JOURNAL START run=%016llx", (unsigned long long)run);
    } else {
        say("JOURNAL RESUME next=%llu run=%016llx", (unsigned long long)next, (unsigned long long)run);
    }

    for (; next < limit; next++) {
        if (next > 0) {
            read_slots(&d, buf, next - 1, 1);
            uint64_t r = run;
            enum kind k = classify(buf, next - 1, &r);
            if (k != K_OK) {
                say("JOURNAL ERROR reason=disk-behind-memory at=%llu found=%s", (unsigned long long)(next - 1),
                    KIND_NAME[k]);
                return 2;
            }
        }
        read_slots(&d, buf, next, 1);
        if (!all_zero(buf, SLOT)) {
            uint64_t r = run;
            enum kind k = classify(buf, next, &r);
            say("JOURNAL ERROR reason=disk-ahead-of-memory at=%llu found=%s", (unsigned long long)next,
                k == K_OK ? "record" : KIND_NAME[k]);
            return 2;
        }
        fill_record(rec, next, run);
        ssize_t n;
        do {
            n = pwrite(d.fd, rec, SLOT, (off_t)(next * SLOT));
        } while (n < 0 && errno == EINTR);
        if (n != (ssize_t)SLOT) io_error("pwrite", next, n < 0 ? errno : EIO);
        if (fdatasync(d.fd) != 0) io_error("fdatasync", next, errno);
        if (next % print_every == 0) say("JOURNAL WROTE seq=%llu", (unsigned long long)next);
        /* Sleep AFTER reporting: a record is printed only once it is durable, and the
         * checks for the next record run after the pause (where a checkpoint would land). */
        sleep_ms(delay_ms);
    }
    say("JOURNAL DONE records=%llu", (unsigned long long)next);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "dev", required_argument, NULL, 'd' },         { "delay-ms", required_argument, NULL, 'w' },
        { "print-every", required_argument, NULL, 'p' }, { "max", required_argument, NULL, 'm' },
        { NULL, 0, NULL, 0 },
    };
    if (argc < 2) usage();
    const char *cmd = argv[1], *dev = NULL;
    uint64_t delay_ms = 20, print_every = 1, max = UINT64_MAX;
    int o, write_only_opts = 0, is_write = strcmp(cmd, "write") == 0;
    if (!is_write && strcmp(cmd, "verify") != 0) usage();
    while ((o = getopt_long(argc - 1, argv + 1, "", opts, NULL)) != -1) {
        switch (o) {
        case 'd': dev = optarg; break;
        case 'w': delay_ms = parse_u64("--delay-ms", optarg); write_only_opts++; break;
        case 'p': print_every = parse_u64("--print-every", optarg); write_only_opts++; break;
        case 'm': max = parse_u64("--max", optarg); write_only_opts++; break;
        default: usage();
        }
    }
    if (!dev || optind != argc - 1 || print_every < 1) usage();
    if (!is_write && write_only_opts) usage();
    return is_write ? cmd_write(dev, delay_ms, print_every, max) : cmd_verify(dev);
}
