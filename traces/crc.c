/*
 * crc.c: the checksums of the trace format: CRC-32C for blocks (format.h) and FNV-1a 64
 * for the whole-file hash.
 *
 * CRC-32C is computed with the CPU's crc32 instruction where there is one (x86-64
 * with SSE4.2: 8 bytes an instruction), else slice-by-8 (eight table lookups per 8
 * bytes) from tables built once on first use: every byte of a trace passes through it
 * on each read and each write, so the plain byte-at-a-time loop showed up in decode
 * profiles, and slice-by-8 in the record finaliser's.
 */
#include "format.h"

#include <pthread.h>
#include <string.h>

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82f63b78u & -(c & 1));
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_HW_CRC 1
/* The same CRC (the instruction computes CRC-32C, reflected, without the inversions). */
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const uint8_t *p, size_t n)
{
    uint64_t c = ~crc;
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
    }
    uint32_t c32 = (uint32_t)c;
    while (n--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return ~c32;
}
#endif

static int hw = -1; /* the CPU has the instruction (-1: not asked yet) */

uint32_t hl_crc32c(uint32_t crc, const void *buf, size_t n)
{
#ifdef HAVE_HW_CRC
    int h = __atomic_load_n(&hw, __ATOMIC_RELAXED);
    if (__builtin_expect(h < 0, 0)) {
        h = __builtin_cpu_supports("sse4.2") ? 1 : 0;
        __atomic_store_n(&hw, h, __ATOMIC_RELAXED);
    }
    if (h)
        return crc_hw(crc, buf, n);
#endif
    return hl_crc32c_portable(crc, buf, n);
}

uint32_t hl_crc32c_portable(uint32_t crc, const void *buf, size_t n)
{
    pthread_once(&crc_once, crc_init);
    const uint8_t *p = buf;
    crc = ~crc;
    while (n >= 8) {
        /* Little-endian load of the next 8 bytes, folded with the running CRC. */
        uint32_t lo = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                      (uint32_t)p[3] << 24;
        uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 |
                      (uint32_t)p[7] << 24;
        lo ^= crc;
        crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
              crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
              crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
              crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--)
        crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

uint64_t hl_fnv1a64(uint64_t h, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n--) {
        h ^= *p++;
        h *= 0x100000001b3ull;
    }
    return h;
}
