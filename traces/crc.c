/*
 * crc.c: the checksums of the trace format: CRC-32C for blocks (format.h) and FNV-1a 64
 * for the whole-file hash.  Table-driven CRC, built once on first use; chunks are
 * compressed, so a byte-at-a-time loop is far from being the reader's bottleneck.
 */
#include "format.h"

#include <pthread.h>

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82f63b78u & -(c & 1));
        crc_table[i] = c;
    }
}

uint32_t hl_crc32c(uint32_t crc, const void *buf, size_t n)
{
    pthread_once(&crc_once, crc_init);
    const uint8_t *p = buf;
    crc = ~crc;
    while (n--)
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
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
