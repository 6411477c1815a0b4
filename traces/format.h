/*
 * format.h: the on-disk layout of a finalised heaplab trace (.hlt), version 4.
 *
 * This header is the specification: a reader can be written from it alone.  Only the
 * trace library (traces/writer.c, traces/reader.c) includes it; everything else goes
 * through trace.h.  All integers are little-endian.
 *
 * FILE
 *     file header (16 bytes)
 *     section*            one per process image, in the order written
 *
 *   file header:
 *     0   8  magic        "HLTRACE\0"
 *     8   4  version      4 (HL_FORMAT_VERSION); a reader also reads versions 1 to
 *                         3: version 3 differs only in having no PAGE blocks,
 *                         version 2 also in the PROC payload (no flags, no first
 *                         slot: both 0), version 1 also in the CHNK payload (no
 *                         modes: always 0).  Any other version is refused.
 *                         Version 3 made slot ids 64-bit (they were below 2^32).
 *     12  4  reserved     0
 *
 * SECTION  (one process)
 *     PROC block          the process header
 *     CHNK block*         the events, in order, at most HL_CHUNK_MAX_EVENTS each,
 *                         with PAGE blocks (version 4) between them and before ENDS
 *     ENDS block          the section trailer (counts)
 *   A file cut short (a crash, a full disk) ends inside or after some block: a reader
 *   returns every event of the good chunks before the damage, then an error that names
 *   the file and the byte offset of the damaged or missing block.
 *
 * BLOCK  (every block has the same 24-byte header, then `stored` payload bytes)
 *     0   4  tag          "PROC", "CHNK", "PAGE" or "ENDS" (the four ASCII bytes in
 *                         file order)
 *     4   4  stored       payload bytes that follow the header
 *     8   4  raw          CHNK: payload bytes after zstd decompression; else == stored
 *     12  4  nevents      CHNK: events in the chunk (1..HL_CHUNK_MAX_EVENTS); else 0
 *     16  4  payload_crc  CRC-32C (Castagnoli, reflected, init and final xor ~0) of
 *                         the stored payload bytes
 *     20  4  header_crc   CRC-32C of header bytes 0..19, so a damaged length field is
 *                         told apart from a truncated file
 *   Limits a reader enforces (a block beyond them is corrupt): a CHNK's stored at most
 *   HL_BLOCK_MAX_BYTES and raw at most HL_CHUNK_MAX_RAW; PROC and ENDS payloads at most
 *   HL_META_MAX_BYTES, PAGE payloads at most HL_PAGE_MAX_BYTES; thread
 *   indices below HL_MAX_THREADS; slot ids below 2^63.
 *   Blocks must come in the order PROC (CHNK | PAGE)* ENDS; anything else is corrupt.
 *
 * PROC payload
 *     u32 pid, u32 ppid, u32 page_size, u64 start_realtime_ns,
 *     (version 3) u32 flags (HL_PROC_* of trace.h; unknown bits are corruption):
 *                 HL_PROC_ATTACHED; HL_PROC_UNRECORDED, a process of the run that
 *                 left no capture (zero events), with its reason (enum hl_unrecorded)
 *                 in bits 8-11, which are 0 without it,
 *     (version 3) u64 first_slot: the slot id of the section's first allocation (0,
 *                 except in traces written to test the numbering's boundaries),
 *     u16 cmdline length + bytes (no NUL, <= 1023), u16 exe length + bytes (<= 511)
 *
 * ENDS payload
 *     u64 nevents, u64 next_slot, u32 nthreads (max thread index + 1, 0 if no events)
 *     and, only when the recording lost something (40 bytes instead of 20):
 *     u64 dropped (events not captured: the capture file could not grow), u64 missed
 *     (calls not recorded: made while the recorder's wrapper ran), u32 cut_errno
 *     (why the capture file could not grow, 0 if it could)
 *   nevents must equal the sum of the section's chunk counts, and next_slot the slot
 *   the next allocation would have taken (first_slot + the allocations); a mismatch
 *   is corruption.
 *
 * PAGE payload (version 4): pairs, until the payload ends, of
 *     varint slot          a block allocated by a malloc or calloc of the section, in
 *                          a chunk before this block
 *     varint pages         how many pages of it were resident when the program gave
 *                          it back, or when the process ended with it live (at most
 *                          HL_PAGE_MAX_PAGES)
 *   The recorder counts them for large blocks only (HL_RAW_PAGES_MIN in
 *   traces/preload/raw.h): a replay touches that many pages of the block, not all of
 *   them, since programs often write only part of a big buffer.  A block without a
 *   pair is touched whole.  A reader returns them apart from the events
 *   (hl_reader_pages); a slot named twice keeps its last pair.
 *
 * CHNK payload
 *     varint first_slot    slot id of the chunk's first allocation (the section's
 *                          allocation count before the chunk)
 *     varint base_time     time_ns of the event before the chunk (0 for the first chunk)
 *     varint modes         (version 2 only) how REF and TIME predict their values:
 *                          bit 0 HL_MODE_REF_PREV, bit 1 HL_MODE_TIME_DD; other bits
 *                          must be 0.  The writer encodes both ways and keeps the
 *                          smaller.
 *     then the 8 columns, in the order OPF THREAD SIZE_LO SIZE_HI AUX REF TIME_LO
 *     TIME_HI, each as:
 *       varint raw_len     the column's decoded length in bytes
 *       varint stored_len  0: the raw_len bytes follow as they are; else a zstd frame of
 *                          stored_len bytes follows, which decompresses to exactly
 *                          raw_len bytes.  The writer stores a column as it is when
 *                          zstd does not make it smaller, and also, between its trial
 *                          chunks, when zstd made it too little smaller at the last
 *                          try (writer.c, PLAIN_GAIN_SHIFT)
 *   The block header's `raw` is the sum of the columns' raw_len; the payload must end
 *   exactly after the last column, and every column must be consumed exactly.  Each
 *   column is compressed on its own so that zstd's entropy tables fit one kind of data.
 *   A chunk needs nothing from earlier chunks, so any chunk decodes on its own (slot
 *   ids and times are absolute through first_slot and base_time); a reader also checks
 *   that they continue the previous chunk.
 *
 *   varint: unsigned LEB128 (7 bits a byte, low first, high bit = more), at most 10
 *   bytes; zigzag(v) = (v << 1) ^ (v >> 63) maps signed to unsigned.
 *   "lo/hi" pairs split a number v into the byte v & 0xff (in the _LO column) and the
 *   varint v >> 8 (in the _HI column): the low bytes are noisy, the high parts mostly
 *   zero, and apart each compresses close to its entropy.
 *
 *   Per event, in order, the columns hold:
 *     OPF      one byte, every event:
 *                bits 0-3  op (enum hl_op, 1..10)
 *                bit 4     HL_EV_FAILED
 *                bit 5     HL_EV_UNKNOWN
 *                bit 6     NOREF: free/realloc/reallocarray names no slot and is not
 *                          unknown: free(NULL), realloc(NULL, n), reallocarray(NULL, ...)
 *                bit 7     THREAD: the thread differs from the previous event's (the
 *                          thread before a chunk's first event counts as 0)
 *     THREAD   varint thread index, when OPF bit 7 is set
 *     SIZE     lo/hi of size, for every op but free
 *     AUX      varint aux, for calloc, reallocarray (nmemb) and posix_memalign,
 *              aligned_alloc, memalign (alignment); other ops have aux 0
 *     REF      the slot given back: free's slot, realloc/reallocarray's old_slot,
 *              unless UNKNOWN or NOREF is set.  Without HL_MODE_REF_PREV: varint
 *              (next_slot - 1 - slot), where next_slot is the slot the next allocation
 *              would take, so freeing the newest block is one zero byte (LIFO
 *              programs).  With it: varint zigzag(slot - prev), where prev is the slot
 *              of the chunk's previous REF entry (first_slot before the first), so
 *              freeing blocks in or against allocation order costs one small number
 *              (programs tearing down lists and tables).
 *     TIME     every event: the step d = time_ns - the previous event's time_ns (the
 *              chunk's base_time before its first), as a signed 64-bit number.  Without
 *              HL_MODE_TIME_DD the column holds x = d; with it, x = d - the previous
 *              event's step (0 before the chunk's first event): recorders that read
 *              the clock now and then and interpolate make steps that barely change.
 *              Without the mode, TIME_LO holds the byte x & 0xff and TIME_HI the
 *              varint zigzag(x >> 8) (arithmetic shift), so x = (unzigzag(hi) << 8) |
 *              lo and small forward steps cost a zero in TIME_HI.  With it (changes go
 *              either way), z = zigzag(x) is split: TIME_LO holds z & 0xff and TIME_HI
 *              the varint z >> 8.  All sums wrap modulo 2^64.
 *   Slots: an allocating op that did not fail takes slot next_slot, then next_slot
 *   grows by one; a failed one has slot HL_NO_SLOT.  Event fields no column carries are
 *   HL_NO_SLOT (slot, old_slot) or 0 (size, aux).  A free or realloc must name a live
 *   slot (allocated and not yet given back; a failed realloc leaves its block live).
 *
 * Hash (hl_reader_hash): FNV-1a 64 over all bytes of the file, as 16 lowercase hex digits.
 *
 * Size, as scripts/bench-trace measures it: 1.75 bytes per event on a synthetic stream
 * with independent random choices (tests/trace/synth.h), where the time column is the
 * largest part; 0.23 to 1.28 (0.50 overall) on the recorded traces of traces/corpus
 * rewritten in version 2 (0.74 in version 1: the modes took python from 0.91 to 0.53),
 * where REF is the largest part.
 */
#ifndef HEAPLAB_FORMAT_H
#define HEAPLAB_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#define HL_FORMAT_MAGIC "HLTRACE\0"
#define HL_FORMAT_VERSION 4u
#define HL_FORMAT_MIN_VERSION 1u
#define HL_FILE_HEADER_BYTES 16u
#define HL_BLOCK_HEADER_BYTES 24u

#define HL_TAG_PROC 0x434f5250u /* "PROC" read as a little-endian u32 */
#define HL_TAG_CHNK 0x4b4e4843u /* "CHNK" */
#define HL_TAG_ENDS 0x53444e45u /* "ENDS" */
#define HL_TAG_PAGE 0x45474150u /* "PAGE" */

#define HL_CHUNK_MAX_EVENTS 65536u
#define HL_BLOCK_MAX_BYTES (64u << 20)
#define HL_META_MAX_BYTES 4096u
#define HL_PAGE_MAX_BYTES (1u << 20)      /* a PAGE payload */
#define HL_PAGE_MAX_PAGES (1ull << 40)    /* pages in one pair */
#define HL_ENDS_BYTES 20u      /* an ENDS payload */
#define HL_ENDS_LOSS_BYTES 40u /* one with the losses */
#define HL_MAX_THREADS (1u << 24) /* thread indices are below this */

/* Bits of a chunk's modes varint. */
#define HL_MODE_REF_PREV 0x1u
#define HL_MODE_TIME_DD 0x2u

/* OPF byte bits. */
#define HL_OPF_OP_MASK 0x0fu
#define HL_OPF_FAILED 0x10u
#define HL_OPF_UNKNOWN 0x20u
#define HL_OPF_NOREF 0x40u
#define HL_OPF_THREAD 0x80u

/* Columns of a chunk, in file order. */
enum {
    HL_COL_OPF, HL_COL_THREAD, HL_COL_SIZE_LO, HL_COL_SIZE_HI, HL_COL_AUX, HL_COL_REF,
    HL_COL_TIME_LO, HL_COL_TIME_HI, HL_NCOLS
};
/* Most bytes one event adds to each column (varints of < 2^24, 2^56, 2^64, 2^64, 2^57). */
#define HL_COL_MAX_BYTES {1, 4, 1, 8, 10, 10, 1, 9}
/* Most decoded bytes a chunk may have (the sum of the above per event). */
#define HL_CHUNK_MAX_RAW (HL_CHUNK_MAX_EVENTS * 44u)

/* CRC-32C of buf, continuing from crc (start with 0). */
uint32_t hl_crc32c(uint32_t crc, const void *buf, size_t n);
/* The same without the CPU's crc32 instruction (what other CPUs run; for tests). */
uint32_t hl_crc32c_portable(uint32_t crc, const void *buf, size_t n);

/* FNV-1a 64, continuing from h (start with HL_FNV_INIT). */
#define HL_FNV_INIT 0xcbf29ce484222325ull
uint64_t hl_fnv1a64(uint64_t h, const void *buf, size_t n);

#endif
