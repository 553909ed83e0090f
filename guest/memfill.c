/* vccr-memfill: makes a guest's RAM big and incompressible (save benchmarks, fault tests)
 * and keeps dirtying it. It is also a small detector: every page's content is a pure
 * function of (seed, page, generation), so before a page is rewritten it is checked, and a
 * page that a save/restore corrupted is reported instead of silently overwritten. */
#include "vccr.h"

#include <getopt.h>
#include <sys/mman.h>

#define PAGE 4096u
#define WORDS (PAGE / 8u)

static void usage(void)
{
    fprintf(stderr, "usage: vccr-memfill --mb N [--seed S] [--delay-ms D] [--alive-every K] [--rate-ms R]\n");
    exit(64);
}

static void fill_page(uint64_t *dst, uint64_t seed, uint64_t page, uint32_t gen)
{
    uint64_t st = seed ^ (page * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)gen << 40);
    for (unsigned i = 0; i < WORDS; i++)
        dst[i] = splitmix64(&st) | 1u; /* never a zero word: no page can look untouched */
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "mb", required_argument, NULL, 'm' },
        { "seed", required_argument, NULL, 's' },
        { "delay-ms", required_argument, NULL, 'd' },
        { "alive-every", required_argument, NULL, 'a' },
        { "rate-ms", required_argument, NULL, 'r' },
        { NULL, 0, NULL, 0 },
    };
    /* delay 0 rewrites pages as fast as the vCPU allows (to measure what slows the guest down);
     * rate_ms 0 prints no RATE lines, so the default output is what it always was. */
    uint64_t mb = 0, seed = 1, delay_ms = 10, alive_every = 100, rate_ms = 0;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'm': mb = parse_u64("--mb", optarg); break;
        case 's': seed = parse_u64("--seed", optarg); break;
        case 'd': delay_ms = parse_u64("--delay-ms", optarg); break;
        case 'a': alive_every = parse_u64("--alive-every", optarg); break;
        case 'r': rate_ms = parse_u64("--rate-ms", optarg); break;
        default: usage();
        }
    }
    if (mb < 1 || alive_every < 1 || optind != argc) usage();

    uint64_t pages = mb * (1024u * 1024u / PAGE);
    uint64_t *mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint32_t *gen = calloc(pages, sizeof *gen);
    if (mem == MAP_FAILED || !gen) {
        say("MEMFILL FATAL op=alloc mb=%llu errno=%s", (unsigned long long)mb, errname(errno));
        return 3;
    }
    for (uint64_t p = 0; p < pages; p++)
        fill_page(mem + p * WORDS, seed, p, 0);
    say("MEMFILL READY mb=%llu", (unsigned long long)mb);

    uint64_t pick = seed ^ 0x5DEECE66Dull, n = 0;
    uint64_t want[WORDS];
    /* Guest time (CLOCK_MONOTONIC): a pause of the VM is not counted in any interval. */
    uint64_t rate_since = now_ms(), rate_base = 0;
    for (;;) {
        uint64_t p = splitmix64(&pick) % pages;
        uint64_t *page = mem + p * WORDS;
        fill_page(want, seed, p, gen[p]);
        if (memcmp(page, want, PAGE) != 0) {
            say("MEMFILL ERROR reason=corrupt page=%llu n=%llu", (unsigned long long)p, (unsigned long long)n);
            return 2;
        }
        fill_page(page, seed, p, ++gen[p]);
        if (delay_ms) sleep_ms(delay_ms);
        if (++n % alive_every == 0) say("MEMFILL ALIVE n=%llu", (unsigned long long)n);
        if (rate_ms) {
            uint64_t t = now_ms();
            if (t - rate_since >= rate_ms) {
                say("MEMFILL RATE n=%llu ms=%llu rewrites=%llu", (unsigned long long)n,
                    (unsigned long long)(t - rate_since), (unsigned long long)(n - rate_base));
                rate_since = t;
                rate_base = n;
            }
        }
    }
}
