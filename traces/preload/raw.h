/*
 * raw.h: the raw capture format written by libheaplab-record.so and read by the
 * finaliser (traces/finalise.c).  Nothing else depends on it.
 *
 * A raw capture is a directory (named by HEAPLAB_CAPTURE_DIR) holding one file per
 * process image: every process, every fork child and every image after an exec gets
 * its own file "<pid>-<start-ns>.hlraw".  The file is written with O_APPEND by all
 * threads of the process, each write(2) being one whole chunk, so chunks of different
 * threads interleave but never mix.  All integers are native (little-endian) 64-bit
 * words unless the structs below say otherwise; the file is read back on the same
 * machine.
 *
 * FILE
 *     struct hl_raw_header      once, at offset 0 (written when the image starts)
 *     chunk*                    struct hl_raw_chunk + payload, until the end of file
 *
 * A process killed with SIGKILL leaves every chunk it had written; the finaliser reads
 * chunks until the end of the file or the first chunk whose magic, length or checksum
 * is wrong, so the capture is readable up to the last complete chunk.
 *
 * CHUNK payload: the records of ONE thread, in the order that thread made them.  A
 * record is 1 to 6 words.  Bit 0 of its first word tells a SHORT record (one word, the
 * common malloc and free) from a LONG one.  Records are ordered by a sequence number:
 * a process-wide counter, so the records of all threads merge into one order
 * consistent with causality (a free takes its number before the real free, an
 * allocation after the real call returned).  While the process has one thread the
 * counter is a plain increment; from the first pthread_create on, an atomic add.
 *
 * Each thread's stream carries two running values, both starting at 0 in every chunk
 * and set by every record: the last sequence number and the last pointer (the block
 * returned, or freed).  Short records are deltas against them.
 *
 * SHORT (malloc or free; bit 0 = 1):
 *     bits 1-4   op (HL_RAW_MALLOC or HL_RAW_FREE)
 *     bits 5-9   seq - last seq (1..31)
 *     bits 10-25 size (malloc; < 0xffff), 0 for free
 *     bits 26-63 (ptr >> 4) - (last ptr >> 4), signed 38 bits; ptr is 16-byte aligned
 * LONG (bit 0 = 0):
 *     w0  = seq40 << 24 | size16 << 8 | flags << 5 | op << 1
 *           seq40  : the low 40 bits of seq.  The whole number is the smallest one
 *                    not below the stream's last seq (0 at a chunk's start) with
 *                    these low bits, unless flag HL_RAWF_SEQ64 is set: then it is in
 *                    an extra word at the end of the record (after the size word,
 *                    if any).  The writer sets it where the rule would not give it:
 *                    when seq - last seq >= 2^40 (a chunk's first record once the
 *                    counter has passed 2^40), so sequence numbers are 64-bit.
 *           size16 : the size asked for (calloc, reallocarray: element size) if below
 *                    0xffff; 0xffff means the size is in one extra word at the end of
 *                    the record.  0 for free.
 *           op     : HL_RAW_* below (enum hl_op values 1..10, and HL_RAW_TIME)
 *           flags  : HL_RAWF_*
 *     w1  = pointer: the block returned (allocations), the block freed (free)
 *     w2  = calloc, reallocarray: nmemb; posix_memalign, aligned_alloc, memalign:
 *           alignment
 *   realloc and reallocarray record two sequence numbers: the free of the old block
 *   comes before the real call and the new block after it, and another thread may
 *   reuse the old address in between.
 *     realloc:       w0 (seq after) w1 (new) w2 seq-before w3 old pointer
 *     reallocarray:  the same, then w4 nmemb
 *   seq-before equals seq-after when the old pointer is NULL (nothing is freed).  The
 *   running values after a realloc are its seq after and its new pointer.
 *
 *   words (without the extra size and seq words): free 2; malloc, valloc, pvalloc 2;
 *   calloc, posix_memalign, aligned_alloc, memalign 3; realloc 4; reallocarray 5.
 *
 *   The helpers below (hl_raw_short, hl_raw_w0 and the hl_raw_*_of accessors) are the
 *   one place these bit layouts are written down in code: the interposer packs with
 *   them, the finaliser and the tests unpack with them.
 *
 *   HL_RAW_TIME (2 words: w0 = HL_RAW_TIME << 1, w1 = TSC) is a clock reading, not an
 *   event; it leaves the running values alone.
 *   Reading the clock on every call would double the interposer's cost, so each
 *   chunk starts with one and one follows about every 30 records; the finaliser gives
 *   the records between two readings (or a reading and the chunk's flush time)
 *   evenly spaced times, in whole nanoseconds.
 *
 *   HL_RAW_PAGES (version 5; w0 ptr [size] [seq], as a malloc record) is not an event
 *   either: the pages of a large block (malloc or calloc of HL_RAW_PAGES_MIN bytes or
 *   more) that were resident when it was given back, counted with mincore(2), in the
 *   size field.  It comes just before the free or realloc that gives the block back,
 *   or, for a block still live when the image ends (exit, exec), at the end.  It takes
 *   a sequence number of its own, so that the finaliser finds the block's slot in
 *   merged order, and it moves the running values on as any long record does.  A
 *   replay touches that many pages of the block instead of every page (the program
 *   may never write most of a big buffer).  Blocks beyond the interposer's table
 *   (HL_RAW_PAGES_TRACKED live at once) get no record, only a count in the header
 *   (big_untracked, which heaplab record reports): the replay touches them whole.
 *
 *   HL_RAW_MARK (2 words: w0 = HL_RAW_MARK << 1, w1 = horizon) ends every chunk a
 *   thread flushes itself: every record of the process whose sequence number is below
 *   the horizon is in this chunk or earlier in the file.  It lets the finaliser merge
 *   the threads while the program still runs.  With one thread the horizon is the
 *   next sequence number; with several, also at most the first sequence number of
 *   any other thread's records not in the file yet (each thread publishes a lower
 *   bound for it when it starts a buffer).
 *
 * PROCESS CHUNKS: a chunk whose thread is HL_RAW_PROC_THREAD holds no records but one
 * process event, so that the finaliser can name every process or image that should
 * have left a raw file and did not (a static or setuid program, a child that could not
 * create its file):
 *     w0  kind (HL_RAW_PEV_*)
 *     w1  pid: FORK, SPAWN the child's; EXEC, EXEC_FAILED the caller's (in a vfork
 *         child that is the child, writing into its parent's file)
 *     w2  bytes of the path that follows (0 if none)
 *     w3.. the path (the program passed to exec or posix_spawn, as given), NUL-padded
 *         to a whole word
 *   FORK is written by the parent after fork returned, SPAWN after posix_spawn
 *   returned, EXEC just before the exec (after every buffer is flushed), EXEC_FAILED
 *   when the exec returned.  The chunk's tsc and mono_ns say when.
 *
 * COPIES: a chunk with nrecords 0 and no mark is a copy of another thread's buffer as
 * it stood, written for it (at process exit for threads still running; while it runs
 * for a thread that stays quiet, so that it does not hold the horizon back).  The
 * thread's own chunk later repeats those records: a record whose sequence number its
 * thread has passed already is a repeat, and is skipped.
 *
 * Not recorded: free(NULL) (a no-op), and calls made while the interposer itself is
 * running (its own bootstrap before dlsym has resolved, calls made from inside the
 * real allocator, calls of a signal handler that interrupted a wrapper).  The last two
 * are counted in the header's `missed` (rewritten at exit).
 *
 * DISK FULL: when a chunk cannot be written whole (ENOSPC, EFBIG, EDQUOT, ...), the
 * process stops writing (it goes on unharmed), sets HL_RAW_HDR_CUT and cut_errno in the
 * header and counts in `dropped` every event of that chunk and of the chunks it would
 * have written after; the header is rewritten in place (no growth) at the cut and
 * again at exit.  The file may end with part of the chunk that failed.
 *
 * BACKLOG (version 6): a program that allocates faster than finalising reads would
 * leave an ever longer unread capture on disk.  So finalising keeps a small file in the
 * capture folder up to date (HL_RAW_BACKLOG_NAME, struct hl_raw_backlog: written whole
 * at offset 0, checksummed): which raw files it is reading, in each the first byte it
 * still needs, and the bytes of the files of ended images it has not begun (it reads
 * HL_RAW_BACKLOG_FILES files at a time).  A thread whose full buffer was just written
 * reads it, and while finalising is more than the limit behind (HL_RAW_ENV_BACKLOG,
 * default HL_RAW_BACKLOG_DEFAULT; 0 = never) it sleeps, until that is at most half the
 * limit.  Behind: over the files being read, each one's size less the byte finalising
 * still needs (the thread's own file at its size now, the others' as finalising saw
 * them), and the ended images' files waiting their turn.  Files of images still
 * running that wait their turn do not count: finalising could not pass them while
 * their processes wait for this one.  So the capture not finalised yet stays near the
 * limit however many processes write it, as long as no more of them run at once than
 * finalising reads.  A thread does not wait:
 *   - once the heaplab recording it is gone (HL_RAW_ENV_WATCHER, or the attach's);
 *   - when finalising's progress count stays the same for HL_RAW_HOLD_STALL_NS: it
 *     stops, and skips the checks for that long again, doubling each time up to 64
 *     times, so that a stopped finaliser costs the program little.
 * The header's `held` and `held_ns` (rewritten at exit) count the waits and their
 * time, which heaplab record reports.
 *
 * RING (version 7): appending every chunk to the file makes the kernel find new
 * page-cache pages for all of them (and free them again as finalising gives the
 * capture back), which over minutes cost a fast program more than its records do
 * (traces/HISTORY.md, "The ring").  So while a heaplab reads the capture as it is
 * written (HL_RAW_ENV_WATCHER set), the image's chunks go into a ring of
 * HL_RAW_ENV_RING bytes inside the file, whose pages are written again and again, and
 * only when the ring stays full go after it:
 *     [0, HL_RAW_RING_AT)                   struct hl_raw_header
 *     [HL_RAW_RING_AT, +sizeof)             struct hl_raw_ring (its words written one
 *                                           at a time, with pwrite)
 *     [HL_RAW_RING_BASE, +bytes)            the ring
 *     [HL_RAW_RING_BASE + bytes, ...)       the spill: chunks written after the ring
 * The chunks form one stream, each at a stream offset x (0 = the first byte after
 * the ring state's page); its place in the file is hl_raw_ring_where(): in the ring
 * at x mod bytes while x is below `spill`, after the ring from `spill` on.  A chunk may
 * wrap round the ring's end (two writes).  The finaliser reads offsets in the
 * stream as it would read offsets in an appended file, with HL_RAW_RING_BASE + x
 * standing for x.
 *   - The writer (one thread at a time, under the image's ring lock) puts a chunk at
 *     x = written only while x + its size <= released + bytes, then sets `written`.
 *   - Finalising sets `released` to the stream offset below which it will never need
 *     the bytes again, even going on after a kill (its checkpoint's low: so the ring
 *     takes the place of the hole punched in an appended file).
 *   - A ring with no room: the writer waits as for BACKLOG (not when the limit is 0,
 *     not once heaplab is gone or finalising stalls), then sets `spill` = x and from
 *     then on writes every chunk of the image after the ring.  One way: nothing
 *     goes back into the ring, so the stream's order is the file's.
 *   - A chunk's checksum in a ring file is XORed with hl_raw_chunk_salt(x), so that
 *     a chunk from the ring's last lap, whole and checksummed at another offset,
 *     does not pass for the one at x.  The end of the stream is therefore the first
 *     chunk that does not check; `written` says where it is meant to be (a process
 *     killed between the chunk and `written` leaves the chunk readable after it).
 * The ring's state is written, and the file sized past the ring, before the header:
 * a header of zeros is therefore one not written yet.  The ring (HL_RAW_RING_DEFAULT)
 * must hold well over what finalising reads between two checkpoints (CKPT_EVERY in
 * traces/finalise_int.h), since `released` moves only at them.  Without a heaplab reading it (the capture finalised
 * afterwards), under a file size limit below the ring's end, or with a ring under 4
 * buffers, the file is appended to as before, with no ring.
 *
 * CLOCK: the header holds a (TSC, CLOCK_MONOTONIC) pair taken when the image started,
 * every chunk header another taken when it was flushed; the finaliser converts TSC
 * readings to nanoseconds since the start linearly between the pairs (in file order,
 * those whose TSC is above all before them), each stretch at its own measured rate.
 */
#ifndef HEAPLAB_RAW_H
#define HEAPLAB_RAW_H

#include <stddef.h>
#include <stdint.h>

#include "../trace.h"

#define HL_RAW_MAGIC "HLRAW01\n"
#define HL_RAW_VERSION 7u     /* 2 added HL_RAW_MARK; 3 HL_RAWF_SEQ64 and header flags;
                                 4 process chunks, dropped, missed and cut_errno;
                                 5 HL_RAW_PAGES; 6 held and held_ns (BACKLOG);
                                 7 RING */
#define HL_RAW_MIN_VERSION 1u /* the oldest a finaliser reads */
#define HL_RAW_CHUNK_MAGIC 0x4b43524cu /* "LRCK" */

/* Record ops: the same numbers as enum hl_op in trace.h. */
enum {
    HL_RAW_MALLOC = 1,
    HL_RAW_CALLOC = 2,
    HL_RAW_REALLOC = 3,
    HL_RAW_FREE = 4,
    HL_RAW_POSIX_MEMALIGN = 5,
    HL_RAW_ALIGNED_ALLOC = 6,
    HL_RAW_MEMALIGN = 7,
    HL_RAW_VALLOC = 8,
    HL_RAW_PVALLOC = 9,
    HL_RAW_REALLOCARRAY = 10,
    HL_RAW_PAGES = 11, /* a large block's resident pages: not an event */
    HL_RAW_MARK = 14, /* the horizon, at the end of a chunk: not an event */
    HL_RAW_TIME = 15, /* a clock reading, not an event */
};

#define HL_RAW_SIZE_BIG 0xffffu /* size16 value: the size is in an extra word */

/* HL_RAW_PAGES: blocks of HL_PAGES_MIN_BYTES (trace.h) or more have their resident
 * pages counted, and at most this many of them are tracked while live. */
#define HL_RAW_PAGES_MIN ((size_t)HL_PAGES_MIN_BYTES)
#define HL_RAW_PAGES_TRACKED 4096u

/* Record flags (3 bits). */
#define HL_RAWF_FAILED 0x1u /* NULL result / non-zero posix_memalign: no new block;
                               realloc: the old block stays live */
#define HL_RAWF_FREED 0x2u  /* realloc(p, 0) / reallocarray(p, 0, n) freed p and
                               returned NULL (glibc's behaviour): a plain free */
#define HL_RAWF_SEQ64 0x4u  /* the whole sequence number is in an extra last word */

/* ---- packing and unpacking records ---- */

/* Short record fields. */
#define HL_RAW_SHORT_SEQ_MAX 31u
#define HL_RAW_SHORT_PTR_BITS 38
#define HL_RAW_SEQ_BITS 40 /* of seq in a long record's w0 */
#define HL_RAW_SEQ_MASK ((1ull << HL_RAW_SEQ_BITS) - 1)

static inline int hl_raw_is_short(uint64_t w0)
{
    return (int)(w0 & 1);
}

static inline unsigned hl_raw_op_of(uint64_t w0)
{
    return (unsigned)(w0 >> 1 & 15);
}

/* A short record for op at (seq, p), given the stream's running values, if the
 * deltas fit (1 <= dseq <= 31, size < 0xffff, p 16-byte aligned, |dptr| < 2^37);
 * else 0, which no short record is (bit 0 is always set). */
static inline uint64_t hl_raw_short(unsigned op, uint64_t seq, uint64_t last_seq, uint64_t p,
                                    uint64_t last_ptr, uint64_t size)
{
    uint64_t ds = seq - last_seq;
    uint64_t dp = (uint64_t)((p >> 4) - (last_ptr >> 4)) + (1ull << (HL_RAW_SHORT_PTR_BITS - 1));
    if (ds - 1 < HL_RAW_SHORT_SEQ_MAX && size < HL_RAW_SIZE_BIG && !(p & 15) &&
        dp < (1ull << HL_RAW_SHORT_PTR_BITS))
        return (dp - (1ull << (HL_RAW_SHORT_PTR_BITS - 1))) << 26 | size << 10 | ds << 5 |
               op << 1 | 1;
    return 0;
}

/* A short record's sequence-number step, size and pointer (given the last pointer). */
static inline uint64_t hl_raw_short_dseq(uint64_t w)
{
    return w >> 5 & 31;
}

static inline uint64_t hl_raw_short_size(uint64_t w)
{
    return w >> 10 & 0xffff;
}

static inline uint64_t hl_raw_short_ptr(uint64_t w, uint64_t last_ptr)
{
    int64_t dp = (int64_t)w >> 26; /* arithmetic shift: the signed delta */
    return (uint64_t)((int64_t)(last_ptr >> 4) + dp) << 4;
}

/* A long record's first word.  flags may include HL_RAWF_SEQ64 (see hl_raw_needs_seq64). */
static inline uint64_t hl_raw_w0(uint64_t seq, uint64_t size, unsigned op, unsigned flags)
{
    uint64_t s16 = size < HL_RAW_SIZE_BIG ? size : HL_RAW_SIZE_BIG;
    return (seq & HL_RAW_SEQ_MASK) << 24 | s16 << 8 | (uint64_t)flags << 5 | (uint64_t)op << 1;
}

/* Does a long record of seq after last_seq need its whole seq in a word of its own? */
static inline int hl_raw_needs_seq64(uint64_t seq, uint64_t last_seq)
{
    return seq - last_seq > HL_RAW_SEQ_MASK;
}

static inline unsigned hl_raw_flags_of(uint64_t w0)
{
    return (unsigned)(w0 >> 5 & 7);
}

/* size16 of a long record: the size, or HL_RAW_SIZE_BIG for "in an extra word". */
static inline uint64_t hl_raw_size16_of(uint64_t w0)
{
    return w0 >> 8 & 0xffff;
}

/* A long record's whole seq from its low bits and the stream's last seq (when
 * HL_RAWF_SEQ64 is not set). */
static inline uint64_t hl_raw_seq_of(uint64_t w0, uint64_t last_seq)
{
    uint64_t s = (last_seq & ~HL_RAW_SEQ_MASK) | (w0 >> 24);
    return s < last_seq ? s + (1ull << HL_RAW_SEQ_BITS) : s;
}

/* Words in a record whose first word is w0, 0 for an unknown op. */
static inline unsigned hl_raw_record_words(uint64_t w0)
{
    static const unsigned char words[16] = {0, 2, 3, 4, 2, 3, 3, 3, 2, 2, 5, 2, 0, 0, 2, 2};
    if (w0 & 1)
        return 1;
    unsigned op = hl_raw_op_of(w0);
    if (!words[op])
        return 0;
    if (op >= HL_RAW_MARK)
        return words[op];
    /* HL_RAW_PAGES counts as a malloc record: w0 ptr [size] [seq]. */
    return words[op] + (hl_raw_size16_of(w0) == HL_RAW_SIZE_BIG) +
           !!(hl_raw_flags_of(w0) & HL_RAWF_SEQ64);
}

struct hl_raw_header {
    char magic[8];              /* HL_RAW_MAGIC */
    uint32_t version;           /* HL_RAW_VERSION */
    uint32_t header_bytes;      /* sizeof(struct hl_raw_header) */
    uint32_t pid, ppid;
    uint32_t page_size;
    uint32_t flags;             /* HL_RAW_HDR_*; 0 in version 2 */
    uint64_t start_realtime_ns; /* CLOCK_REALTIME when the image started recording */
    uint64_t start_mono_ns;     /* CLOCK_MONOTONIC at the same moment: orders images */
    uint64_t start_tsc;         /* TSC at the same moment */
    uint64_t checksum;          /* hl_raw_checksum of the header with this field 0 */
    char exe[512];              /* readlink(/proc/self/exe), NUL-terminated */
    char cmdline[984];          /* argv joined with spaces, NUL-terminated, truncated
                                   (before version 4: 1024 bytes, before version 6:
                                   1000, the fields below not there) */
    uint64_t dropped;           /* events not written: the file could not grow */
    uint64_t missed;            /* calls not recorded (see "Not recorded") */
    uint32_t cut_errno;         /* HL_RAW_HDR_CUT: the errno of the failed write */
    uint32_t big_untracked;     /* large blocks allocated while HL_RAW_PAGES_TRACKED were
                                   live: no HL_RAW_PAGES record (version 5 on; rewritten
                                   at exit as dropped and missed are) */
    uint64_t held_ns;           /* BACKLOG: time the image's threads waited for
                                   finalising (version 6 on; rewritten at exit) */
    uint32_t held;              /* ... and how many times */
    uint32_t reserved;          /* 0 */
};

/* BACKLOG: the state finalising publishes in the capture folder. */
#define HL_RAW_BACKLOG_NAME "backlog"
#define HL_RAW_BACKLOG_MAGIC 0x474f4c4b43414248ull /* "HBACKLOG" */
#define HL_RAW_BACKLOG_FILES 8
struct hl_raw_backlog {
    uint64_t magic;    /* HL_RAW_BACKLOG_MAGIC */
    uint64_t progress; /* capture bytes finalising has read in all: only grows */
    uint64_t queued;   /* bytes of the files of ended images it has not begun yet */
    uint64_t nfiles;   /* the files it is reading, at most HL_RAW_BACKLOG_FILES: */
    struct {
        uint64_t ino;  /* the file's inode number (all are in one folder) */
        uint64_t need; /* the first byte of it finalising still needs */
        uint64_t size; /* its size as finalising last saw it */
    } file[HL_RAW_BACKLOG_FILES];
    uint64_t checksum; /* hl_raw_checksum of the words before */
};

/* Header flags. */
#define HL_RAW_HDR_ATTACHED 0x1u /* recording began while the process ran (record -p) */
#define HL_RAW_HDR_CUT 0x2u      /* the file could not grow: writing stopped (DISK FULL) */
#define HL_RAW_HDR_RING 0x4u     /* the chunks are in a ring (RING) */

/* RING: the ring's state, at HL_RAW_RING_AT. */
#define HL_RAW_RING_AT 2048u
#define HL_RAW_RING_BASE 4096u /* stream offset 0 */
#define HL_RAW_RING_MAGIC 0x474e5257414c4848ull /* "HHLAWRNG" */
#define HL_RAW_RING_NONE UINT64_MAX            /* spill: not spilled */
struct hl_raw_ring {
    uint64_t magic;    /* HL_RAW_RING_MAGIC */
    uint64_t bytes;    /* the ring's size: a multiple of 4096 */
    uint64_t written;  /* stream bytes written (the writer, after each chunk) */
    uint64_t spill;    /* the stream offset from which chunks go after the ring, or
                          HL_RAW_RING_NONE */
    uint64_t released; /* stream bytes finalising will not need again (finalising) */
};
/* Each word's place in the file, for writing it alone. */
#define HL_RAW_RING_WORD(field) ((uint64_t)HL_RAW_RING_AT + offsetof(struct hl_raw_ring, field))

/* Where stream offset x is in the file, and how many bytes from there are contiguous
 * in the stream (to the ring's end, or unbounded after it). */
static inline uint64_t hl_raw_ring_where(uint64_t bytes, uint64_t spill, uint64_t x,
                                         uint64_t *contiguous)
{
    if (x >= spill) {
        *contiguous = UINT64_MAX;
        return HL_RAW_RING_BASE + bytes + (x - spill);
    }
    uint64_t at = x % bytes, end = bytes - at;
    *contiguous = spill - x < end ? spill - x : end;
    return HL_RAW_RING_BASE + at;
}

/* XORed into the checksum of the chunk at stream offset x of a ring file (RING). */
static inline uint64_t hl_raw_chunk_salt(uint64_t x)
{
    return (x + 1) * 0x9e3779b97f4a7c15ull;
}

/* Process chunks (PROCESS CHUNKS above). */
#define HL_RAW_PROC_THREAD 0xffffffffu
enum {
    HL_RAW_PEV_FORK = 1,
    HL_RAW_PEV_SPAWN = 2,
    HL_RAW_PEV_EXEC = 3,
    HL_RAW_PEV_EXEC_FAILED = 4,
};

struct hl_raw_chunk {
    uint32_t magic;    /* HL_RAW_CHUNK_MAGIC */
    uint32_t thread;   /* thread number within the image, 0 = the first to record */
    uint32_t nbytes;   /* payload bytes after this header (a multiple of 8) */
    uint32_t nrecords; /* records in the payload */
    uint64_t tsc;      /* TSC when the chunk was flushed */
    uint64_t mono_ns;  /* CLOCK_MONOTONIC at the same moment */
    uint64_t checksum; /* hl_raw_checksum(header with checksum 0, then payload) */
};

/* A fast word-wise checksum (four independent multiply-xorshift lanes, so it runs at
 * memory speed while the program is being recorded), good enough to catch truncation
 * and damaged bytes.  Not incremental: one call per buffer; chain buffers by passing
 * the previous result as `seed`. */
#define HL_RAW_CHECKSUM_INIT 0x9e3779b97f4a7c15ull
/* noclone: a copy specialised for one caller's constant arguments makes GCC warn of
 * loop iterations no caller reaches. */
#if defined(__GNUC__) && !defined(__clang__)
#define HL_RAW_NOCLONE __attribute__((noclone))
#else
#define HL_RAW_NOCLONE
#endif
static __attribute__((noinline, unused)) HL_RAW_NOCLONE uint64_t hl_raw_checksum(uint64_t seed, const void *p, size_t nwords)
{
    const uint64_t *w = p;
    const uint64_t k = 0xff51afd7ed558ccdull;
    uint64_t a = seed, b = seed ^ 1, c = seed ^ 2, d = seed ^ 3;
    size_t i = 0;
    for (; i + 4 <= nwords; i += 4) {
        a = (a ^ w[i]) * k;
        b = (b ^ w[i + 1]) * k;
        c = (c ^ w[i + 2]) * k;
        d = (d ^ w[i + 3]) * k;
        a ^= a >> 29;
        b ^= b >> 29;
        c ^= c >> 29;
        d ^= d >> 29;
    }
    for (size_t j = 0; j < (nwords & 3); j++) { /* the last 0-3 words */
        a = (a ^ w[i + j]) * k;
        a ^= a >> 29;
    }
    uint64_t h = a ^ (b * 3) ^ (c * 5) ^ (d * 7) ^ nwords;
    h *= k;
    return h ^ (h >> 31);
}

/* Environment variables the interposer reads. */
#define HL_RAW_ENV_DIR "HEAPLAB_CAPTURE_DIR"  /* where to write; unset = record nothing */
#define HL_RAW_ENV_BUFFER "HEAPLAB_RECORD_BUFFER" /* per-thread buffer bytes */
/* The per-thread buffer's bounds (bytes): a chunk is at most HL_RAW_BUFFER_MAX, so the
 * finaliser takes a longer one as damage. */
#define HL_RAW_BUFFER_DEFAULT_MIB 1
#define HL_RAW_BUFFER_DEFAULT ((uint64_t)HL_RAW_BUFFER_DEFAULT_MIB << 20)
#define HL_RAW_BUFFER_MIN 4096ull
#define HL_RAW_BUFFER_MAX (1ull << 30)
#define HL_RAW_BUFFER_BOUNDS "4K to 1G" /* the two above, as users write sizes */
/* BACKLOG: the most capture bytes a raw file holds that finalising has not read, while
 * it reads that file; 0 never waits.  Bytes, or with a K, M or G suffix. */
#define HL_RAW_ENV_BACKLOG "HEAPLAB_RECORD_BACKLOG"
#define HL_RAW_BACKLOG_DEFAULT_MIB 256
#define HL_RAW_BACKLOG_DEFAULT ((uint64_t)HL_RAW_BACKLOG_DEFAULT_MIB << 20)
/* RING: the ring's bytes (rounded down to 4096; K, M or G suffix); 0 = no ring.  A
 * ring under 4 buffers is not used (a chunk is up to one buffer). */
#define HL_RAW_ENV_RING "HEAPLAB_RECORD_RING"
#define HL_RAW_RING_DEFAULT_MIB 256
#define HL_RAW_RING_DEFAULT ((uint64_t)HL_RAW_RING_DEFAULT_MIB << 20)
#define HL_RAW_RING_MAX ((uint64_t)1 << 40) /* the finaliser takes a larger one as damage */
/* BACKLOG: the pid of the heaplab that reads the capture: no wait once it is gone. */
#define HL_RAW_ENV_WATCHER "HEAPLAB_RECORD_WATCHER"
/* BACKLOG: finalising's progress count unchanged this long while a thread waits: it
 * has stopped (or cannot go on before other processes do). */
#define HL_RAW_HOLD_STALL_NS 2000000000ull
/* For tests only: that time in milliseconds instead, so that a check of the wait is not
 * cut short by a loaded machine holding finalising up for 2 s. */
#define HL_RAW_ENV_HOLD_STALL_MS "HEAPLAB_TEST_HOLD_STALL_MS"
/* For tests only: the first sequence number (default 0), so that a short run reaches
 * the 2^40 boundary of a long record's seq40 field. */
#define HL_RAW_ENV_SEQ_START "HEAPLAB_RECORD_SEQ_START"

#endif
