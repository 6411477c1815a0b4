/*
 * codec.h: the little encoding helpers the trace writer and reader share (private to
 * traces/): LEB128 varints, zigzag and little-endian loads and stores.
 *
 * The decoder side is written for hostile input: every read is bounded by an end
 * pointer and reports failure instead of reading past it.
 */
#ifndef HEAPLAB_CODEC_H
#define HEAPLAB_CODEC_H

#include <stdint.h>
#include <string.h>

static inline uint8_t *hl_put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* Decode one varint from [*pp, end).  Returns 0 and advances *pp, or -1 if the varint
 * runs past end or is longer than 10 bytes. */
static inline int hl_get_varint(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
    const uint8_t *p = *pp;
    if (p < end && *p < 0x80) { /* the common one-byte case first */
        *out = *p;
        *pp = p + 1;
        return 0;
    }
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (p >= end)
            return -1;
        uint8_t b = *p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            *pp = p;
            return 0;
        }
    }
    return -1;
}

static inline uint64_t hl_zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static inline int64_t hl_unzigzag(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

static inline void hl_put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline void hl_put_le64(uint8_t *p, uint64_t v)
{
    hl_put_le32(p, (uint32_t)v);
    hl_put_le32(p + 4, (uint32_t)(v >> 32));
}

static inline uint32_t hl_get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t hl_get_le64(const uint8_t *p)
{
    return (uint64_t)hl_get_le32(p) | (uint64_t)hl_get_le32(p + 4) << 32;
}

#endif
