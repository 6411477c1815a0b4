/*
 * bigblocks.c: the interposer's table of live large blocks (see bigblocks.h).
 */
#include "bigblocks.h"
#include "raw.h"

#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

uint16_t hl_big_filter_[HL_BIG_FILTER];

/* The table: addresses (0 = empty, 1 = a deleted entry) and their bytes. */
#define CAP (HL_RAW_PAGES_TRACKED * 2u) /* a power of two, at most half full */
#define EMPTY 0
#define GONE 1
static uintptr_t g_addr[CAP];
static size_t g_bytes[CAP];
static uint32_t g_live, g_used; /* live entries; live and deleted ones */
static uint32_t g_untracked;    /* blocks that found the table full */
static int g_lock;

static void lock(void)
{
    while (__atomic_exchange_n(&g_lock, 1, __ATOMIC_ACQUIRE))
        sched_yield();
}

static void unlock(void)
{
    __atomic_store_n(&g_lock, 0, __ATOMIC_RELEASE);
}

static uint32_t home(uintptr_t p)
{
    return (uint32_t)(((uint64_t)p * 0xff51afd7ed558ccdull) >> 40) & (CAP - 1);
}

static void filter_add(uintptr_t p, int d)
{
    uint16_t *c = &hl_big_filter_[hl_big_hash(p)];
    __atomic_store_n(c, (uint16_t)(*c + d), __ATOMIC_RELAXED);
}

/* With the lock: put every live entry back into a table without deleted ones. */
static void rehash(void)
{
    static uintptr_t a[CAP];
    static size_t b[CAP];
    uint32_t n = 0;
    for (uint32_t i = 0; i < CAP; i++)
        if (g_addr[i] > GONE) {
            a[n] = g_addr[i];
            b[n++] = g_bytes[i];
        }
    for (uint32_t i = 0; i < CAP; i++)
        g_addr[i] = EMPTY;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = home(a[k]);
        while (g_addr[i] != EMPTY)
            i = (i + 1) & (CAP - 1);
        g_addr[i] = a[k];
        g_bytes[i] = b[k];
    }
    g_used = n;
}

/* The whole pages of [p, p + bytes), given back if any is resident. */
static void fresh(uintptr_t p, size_t bytes)
{
    const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = (p + pg - 1) & ~(pg - 1), end = (p + bytes) & ~(pg - 1);
    if (end > a && hl_big_resident(a, end - a))
        madvise((void *)a, end - a, MADV_DONTNEED);
}

void hl_big_add(uintptr_t p, size_t bytes)
{
    if (p <= GONE)
        return;
    int tracked = 0;
    lock();
    if (g_live < HL_RAW_PAGES_TRACKED) {
        if (g_used >= CAP * 3 / 4)
            rehash();
        uint32_t i = home(p), slot = CAP;
        for (;; i = (i + 1) & (CAP - 1)) {
            if (g_addr[i] == p) { /* its free went unseen: it is this block now */
                slot = i;
                break;
            }
            if (g_addr[i] == GONE && slot == CAP)
                slot = i;
            if (g_addr[i] == EMPTY) {
                if (slot == CAP) {
                    slot = i;
                    g_used++;
                }
                break;
            }
        }
        if (g_addr[slot] != p) {
            g_addr[slot] = p;
            g_live++;
            filter_add(p, 1);
        }
        g_bytes[slot] = bytes;
        tracked = 1;
    } else if (g_untracked < UINT32_MAX) {
        g_untracked++;
    }
    unlock();
    if (tracked)
        fresh(p, bytes);
}

size_t hl_big_take(uintptr_t p)
{
    size_t bytes = 0;
    lock();
    for (uint32_t i = home(p); g_addr[i] != EMPTY; i = (i + 1) & (CAP - 1))
        if (g_addr[i] == p) {
            bytes = g_bytes[i];
            g_addr[i] = GONE;
            g_live--;
            filter_add(p, -1);
            break;
        }
    unlock();
    return bytes;
}

uint64_t hl_big_resident(uintptr_t p, size_t bytes)
{
    const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = p & ~(pg - 1), end = (p + bytes + pg - 1) & ~(pg - 1);
    unsigned char vec[4096];
    uint64_t n = 0;
    while (a < end) {
        size_t pages = (end - a) / pg < sizeof vec ? (end - a) / pg : sizeof vec;
        if (mincore((void *)a, pages * pg, vec) != 0)
            return (bytes + pg - 1) / pg;
        for (size_t i = 0; i < pages; i++)
            n += vec[i] & 1;
        a += pages * pg;
    }
    return n;
}

void hl_big_after_fork(void)
{
    g_lock = 0;
    g_untracked = 0; /* the parent's to count */
}

uint32_t hl_big_untracked(void)
{
    return __atomic_load_n(&g_untracked, __ATOMIC_RELAXED);
}

void hl_big_drain(void (*fn)(void *ctx, uintptr_t p, size_t bytes), void *ctx)
{
    lock();
    for (uint32_t i = 0; i < CAP; i++) {
        if (g_addr[i] <= GONE)
            continue;
        uintptr_t p = g_addr[i];
        size_t bytes = g_bytes[i];
        g_addr[i] = GONE;
        g_live--;
        filter_add(p, -1);
        unlock(); /* fn records: it may flush, and so take other locks */
        fn(ctx, p, bytes);
        lock();
    }
    unlock();
}
