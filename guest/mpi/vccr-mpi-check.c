/* vccr-mpi-check: an MPI job that is its own consistency detector (guest/README.md).
 *
 *   vccr-mpi-check [--iterations N (250)] [--sleep-ms S (200)] [--block-words B (4096)]
 *                  [--print-every K (1)] [--stall-sec W (120)]
 *                  [--inject-error-at K [--inject-rank R (last rank)] [--inject-kind sum|ring (sum)]]
 *
 * Every iteration k = 1..N, every rank r of p:
 *   1. ring: MPI_Sendrecv of a block to rank r+1 (mod p) and from rank r-1. A block is
 *      [magic "VMPIBLK1", sender, iteration, words, B payload words, FNV-1a-64 of all
 *      before] (u64 each, native order); payload word j is splitmix64 of a seed made of
 *      (sender, k, j): the receiver knows exactly what it must get.
 *   2. MPI_Allreduce(SUM) of {c_r(k), k, 1} with c_r(k) = (r+1)*k*k + r, whose sum must be
 *      {k*k*p*(p+1)/2 + p*(p-1)/2, p*k, p}.
 *   3. MPI_Allreduce(MAX) of this rank's error code (so every rank agrees to stop).
 *   4. acc_r = mix(acc_r, k, sum, checksum of the received block); sleep S ms.
 * At the end the p accumulators are gathered on rank 0 and compared with the values the
 * recurrence must give (computed locally, without communication); the printed checksum
 * is a hash over them and depends only on (p, N, B).
 *
 * Output (rank 0 unless noted; one flushed line each):
 *   MPI START ranks=<p> iterations=<N> sleep-ms=<S> block-words=<B> hosts=<h0,h1,...>
 *   MPI ITER <k>/<N> ok                       (every K-th iteration, and the last)
 *   MPI ERROR rank=<r> iter=<k> reason=<ring-...|stall> ...   (the rank that saw it)
 *   MPI RESULT OK checksum=<16 hex>           exit 0
 *   MPI RESULT FAIL reason=<reason> iter=<k>  exit 2 (3 for reason=stall)
 * reasons: allreduce-sum, ring-magic, ring-checksum, ring-sender, ring-iteration,
 * ring-words, ring-payload (from a ring check on some rank), accumulator, stall.
 * --inject-error-at exists only to prove the detector works: at iteration K rank R adds 1
 * to its allreduce contribution (kind sum) or corrupts one payload word of the block it
 * sends and re-computes the block checksum (kind ring). */
#define _GNU_SOURCE
#include <mpi.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAGIC UINT64_C(0x564d5049424c4b31) /* "VMPIBLK1" */
#define HDR_WORDS 4
#define RING_TAG 7

enum err {
    E_OK = 0,
    E_SUM,
    E_RING_MAGIC,
    E_RING_CHECKSUM,
    E_RING_SENDER,
    E_RING_ITERATION,
    E_RING_WORDS,
    E_RING_PAYLOAD,
    E_ACCUMULATOR,
};
static const char *const err_name[] = { "ok", "allreduce-sum", "ring-magic", "ring-checksum", "ring-sender",
                                        "ring-iteration", "ring-words", "ring-payload", "accumulator" };

struct opts {
    uint64_t iterations, sleep_ms, block_words, print_every, stall_sec;
    uint64_t inject_at; /* 0 = never */
    int64_t inject_rank; /* -1 = last rank */
    int inject_ring;
};

static int g_rank;
static atomic_uint_fast64_t g_progress; /* iterations completed; read by the watchdog */
static atomic_int g_watching;            /* 0 once the iteration loop is over */
static uint64_t g_stall_sec;             /* set before the watchdog thread starts */

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* stops while the VM is paused */
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(uint64_t ms)
{
    struct timespec ts = { .tv_sec = (time_t)(ms / 1000u), .tv_nsec = (long)(ms % 1000u) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static uint64_t fnv1a64(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

static uint64_t payload_word(uint64_t sender, uint64_t k, uint64_t j)
{
    return splitmix64((sender << 48) ^ (k << 20) ^ j ^ 0x5643435200000000ull);
}

static size_t block_len(uint64_t words)
{
    return (size_t)(HDR_WORDS + words + 1);
}

/* The block `sender` sends in iteration k; returns its checksum (the last word). */
static uint64_t make_block(uint64_t *b, uint64_t sender, uint64_t k, uint64_t words)
{
    b[0] = MAGIC;
    b[1] = sender;
    b[2] = k;
    b[3] = words;
    for (uint64_t j = 0; j < words; j++)
        b[HDR_WORDS + j] = payload_word(sender, k, j);
    b[HDR_WORDS + words] = fnv1a64(b, (HDR_WORDS + words) * sizeof(uint64_t));
    return b[HDR_WORDS + words];
}

static uint64_t contribution(uint64_t r, uint64_t k)
{
    return (r + 1) * k * k + r;
}

static uint64_t expected_sum(uint64_t p, uint64_t k)
{
    return k * k * (p * (p + 1) / 2) + p * (p - 1) / 2;
}

static uint64_t mix(uint64_t acc, uint64_t k, uint64_t sum, uint64_t block_checksum)
{
    return splitmix64(acc ^ splitmix64(k ^ splitmix64(sum ^ splitmix64(block_checksum))));
}

static void *watchdog(void *arg)
{
    (void)arg;
    uint64_t last = atomic_load(&g_progress), since = now_ms();
    for (;;) {
        sleep_ms(500);
        uint64_t cur = atomic_load(&g_progress);
        uint64_t t = now_ms();
        if (!atomic_load(&g_watching))
            return NULL;
        if (cur != last) {
            last = cur;
            since = t;
        } else if (t - since >= g_stall_sec * 1000u) {
            say("MPI ERROR rank=%d iter=%" PRIu64 " reason=stall idle-ms=%" PRIu64, g_rank, cur + 1, t - since);
            if (g_rank == 0)
                say("MPI RESULT FAIL reason=stall iter=%" PRIu64, cur + 1);
            _exit(3); /* mpirun sees the rank die and ends the job */
        }
    }
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: vccr-mpi-check [--iterations N (250)] [--sleep-ms S (200)] [--block-words B (4096)]\n"
                    "                      [--print-every K (1)] [--stall-sec W (120)]\n"
                    "                      [--inject-error-at K [--inject-rank R] [--inject-kind sum|ring]]\n");
    exit(64);
}

static uint64_t parse_u64(const char *s)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-')
        usage();
    return (uint64_t)v;
}

static void parse(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){ .iterations = 250, .sleep_ms = 200, .block_words = 4096, .print_every = 1, .stall_sec = 120,
                        .inject_at = 0, .inject_rank = -1, .inject_ring = 0 };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--iterations"))
            o->iterations = parse_u64(v);
        else if (!strcmp(a, "--sleep-ms"))
            o->sleep_ms = parse_u64(v);
        else if (!strcmp(a, "--block-words"))
            o->block_words = parse_u64(v);
        else if (!strcmp(a, "--print-every"))
            o->print_every = parse_u64(v);
        else if (!strcmp(a, "--stall-sec"))
            o->stall_sec = parse_u64(v);
        else if (!strcmp(a, "--inject-error-at"))
            o->inject_at = parse_u64(v);
        else if (!strcmp(a, "--inject-rank"))
            o->inject_rank = (int64_t)parse_u64(v);
        else if (!strcmp(a, "--inject-kind")) {
            if (!strcmp(v, "sum"))
                o->inject_ring = 0;
            else if (!strcmp(v, "ring"))
                o->inject_ring = 1;
            else
                usage();
        } else
            usage();
    }
    if (o->iterations < 1 || o->iterations > (1u << 20) || o->block_words < 1 || o->block_words > (1u << 22) ||
        o->print_every < 1 || o->stall_sec < 1)
        usage();
}

/* Checks a received block; on error fills `detail` and returns the error code. */
static enum err check_block(const uint64_t *b, uint64_t left, uint64_t k, uint64_t words, char *detail, size_t dn)
{
    if (b[0] != MAGIC) {
        snprintf(detail, dn, "expected=%016" PRIx64 " got=%016" PRIx64, MAGIC, b[0]);
        return E_RING_MAGIC;
    }
    if (b[3] != words) {
        snprintf(detail, dn, "expected=%" PRIu64 " got=%" PRIu64, words, b[3]);
        return E_RING_WORDS;
    }
    uint64_t sum = fnv1a64(b, (HDR_WORDS + words) * sizeof(uint64_t));
    if (b[HDR_WORDS + words] != sum) {
        snprintf(detail, dn, "expected=%016" PRIx64 " got=%016" PRIx64, sum, b[HDR_WORDS + words]);
        return E_RING_CHECKSUM;
    }
    if (b[1] != left) {
        snprintf(detail, dn, "expected=%" PRIu64 " got=%" PRIu64, left, b[1]);
        return E_RING_SENDER;
    }
    if (b[2] != k) {
        snprintf(detail, dn, "expected=%" PRIu64 " got=%" PRIu64, k, b[2]);
        return E_RING_ITERATION;
    }
    for (uint64_t j = 0; j < words; j++) {
        uint64_t want = payload_word(left, k, j);
        if (b[HDR_WORDS + j] != want) {
            snprintf(detail, dn, "word=%" PRIu64 " expected=%016" PRIx64 " got=%016" PRIx64, j, want, b[HDR_WORDS + j]);
            return E_RING_PAYLOAD;
        }
    }
    return E_OK;
}

int main(int argc, char **argv)
{
    struct opts o;
    MPI_Init(&argc, &argv);
    parse(argc, argv, &o);
    int rank_i, size_i;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_i);
    MPI_Comm_size(MPI_COMM_WORLD, &size_i);
    g_rank = rank_i;
    const uint64_t r = (uint64_t)rank_i, p = (uint64_t)size_i, n = o.iterations, words = o.block_words;
    const uint64_t inject_rank = o.inject_rank < 0 ? p - 1 : (uint64_t)o.inject_rank;
    const int right = (int)((r + 1) % p), left = (int)((r + p - 1) % p);

    /* Who runs where: proves the ranks are spread over the VMs. */
    char name[MPI_MAX_PROCESSOR_NAME] = { 0 };
    int name_len = 0;
    MPI_Get_processor_name(name, &name_len);
    char *names = rank_i == 0 ? calloc(p, MPI_MAX_PROCESSOR_NAME) : NULL;
    MPI_Gather(name, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, names, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, 0, MPI_COMM_WORLD);
    if (rank_i == 0) {
        size_t cap = p * (MPI_MAX_PROCESSOR_NAME + 1) + 1, len = 0;
        char *hosts = calloc(1, cap);
        for (uint64_t i = 0; i < p; i++)
            len += (size_t)snprintf(hosts + len, cap - len, "%s%s", i ? "," : "", names + i * MPI_MAX_PROCESSOR_NAME);
        say("MPI START ranks=%" PRIu64 " iterations=%" PRIu64 " sleep-ms=%" PRIu64 " block-words=%" PRIu64 " hosts=%s",
            p, n, o.sleep_ms, words, hosts);
        free(hosts);
        free(names);
    }

    uint64_t *out = malloc(block_len(words) * sizeof(uint64_t));
    uint64_t *in = malloc(block_len(words) * sizeof(uint64_t));
    if (!out || !in) {
        say("MPI ERROR rank=%d iter=0 reason=alloc", rank_i);
        MPI_Abort(MPI_COMM_WORLD, 3);
    }
    g_stall_sec = o.stall_sec;
    atomic_store(&g_watching, 1);
    pthread_t wd;
    pthread_create(&wd, NULL, watchdog, NULL);

    uint64_t acc = 0;
    unsigned fail = E_OK;
    uint64_t fail_iter = 0;
    for (uint64_t k = 1; k <= n; k++) {
        const int inject = o.inject_at == k && r == inject_rank;
        make_block(out, r, k, words);
        if (inject && o.inject_ring) {
            out[HDR_WORDS + words / 2] ^= 1; /* a wrong value, with a valid checksum */
            out[HDR_WORDS + words] = fnv1a64(out, (HDR_WORDS + words) * sizeof(uint64_t));
        }
        MPI_Sendrecv(out, (int)block_len(words), MPI_UINT64_T, right, RING_TAG, in, (int)block_len(words), MPI_UINT64_T,
                     left, RING_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        char detail[160];
        unsigned local = check_block(in, (uint64_t)left, k, words, detail, sizeof detail);
        if (local != E_OK)
            say("MPI ERROR rank=%d iter=%" PRIu64 " reason=%s from=%d %s", rank_i, k, err_name[local], left, detail);

        uint64_t mine[3] = { contribution(r, k) + (inject && !o.inject_ring ? 1 : 0), k, 1 }, sum[3];
        MPI_Allreduce(mine, sum, 3, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
        const uint64_t want[3] = { expected_sum(p, k), p * k, p };
        if (memcmp(sum, want, sizeof want) != 0) {
            if (rank_i == 0)
                say("MPI ERROR rank=0 iter=%" PRIu64 " reason=allreduce-sum expected=%" PRIu64 ",%" PRIu64 ",%" PRIu64
                    " got=%" PRIu64 ",%" PRIu64 ",%" PRIu64,
                    k, want[0], want[1], want[2], sum[0], sum[1], sum[2]);
            if (local == E_OK)
                local = E_SUM;
        }
        unsigned any = 0;
        MPI_Allreduce(&local, &any, 1, MPI_UNSIGNED, MPI_MAX, MPI_COMM_WORLD);
        if (any != E_OK) {
            fail = any;
            fail_iter = k;
            break;
        }
        acc = mix(acc, k, sum[0], in[HDR_WORDS + words]);
        atomic_store(&g_progress, k);
        if (rank_i == 0 && (k % o.print_every == 0 || k == n))
            say("MPI ITER %" PRIu64 "/%" PRIu64 " ok", k, n);
        if (k < n)
            sleep_ms(o.sleep_ms);
    }

    if (fail == E_OK) {
        /* Every accumulator against the recurrence it must follow. */
        uint64_t *accs = rank_i == 0 ? calloc(p, sizeof(uint64_t)) : NULL;
        MPI_Gather(&acc, 1, MPI_UINT64_T, accs, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
        if (rank_i == 0) {
            uint64_t *blk = malloc(block_len(words) * sizeof(uint64_t));
            uint64_t checksum = 0;
            for (uint64_t q = 0; q < p && fail == E_OK; q++) {
                uint64_t e = 0, from = (q + p - 1) % p;
                for (uint64_t k = 1; k <= n; k++)
                    e = mix(e, k, expected_sum(p, k), make_block(blk, from, k, words));
                if (accs[q] != e) {
                    say("MPI ERROR rank=%" PRIu64 " iter=%" PRIu64 " reason=accumulator expected=%016" PRIx64
                        " got=%016" PRIx64,
                        q, n, e, accs[q]);
                    fail = E_ACCUMULATOR;
                    fail_iter = n;
                }
                checksum = splitmix64(checksum ^ e);
            }
            if (fail == E_OK)
                say("MPI RESULT OK checksum=%016" PRIx64, checksum);
            free(blk);
            free(accs);
        }
    }
    atomic_store(&g_watching, 0); /* the watchdog only guards the loop and the final check */
    if (fail != E_OK && rank_i == 0)
        say("MPI RESULT FAIL reason=%s iter=%" PRIu64, err_name[fail], fail_iter);
    MPI_Bcast(&fail, 1, MPI_UNSIGNED, 0, MPI_COMM_WORLD);
    MPI_Finalize();
    return fail == E_OK ? 0 : 2;
}
