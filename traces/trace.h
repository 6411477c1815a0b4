/*
 * trace.h: heaplab's trace library API: reading and writing finalised trace files.
 *
 * This is the contract between the modules: `record` (finaliser), `gen`, `import`
 * write traces through hl_writer; `stat`, `replay`, `export`, `plot` read them through
 * hl_reader.  The on-disk layout is documented in format.h; nothing outside traces/
 * depends on it.
 *
 * Model.  A trace file holds one or more *process sections* (a recording of a program
 * that forks or execs yields one section per process image).  A section is a process
 * header followed by that process's events in one global order consistent with
 * causality (a block's free always comes after its allocation, even across threads).
 *
 * Slots.  Addresses are not stored.  Every successful allocation (malloc, calloc,
 * realloc's new block, memalign, ...) gets the next dense slot id of its section: the
 * first allocation is slot 0, the next slot 1, and so on, in event order.  A free or
 * realloc names the slot it gives back.  A slot is never reused.
 *
 * Errors.  Functions return 0 (or a count) on success and -1 on failure with a one-line
 * message in struct hl_err, which names the file and, for damaged files, the byte offset.
 */
#ifndef HEAPLAB_TRACE_H
#define HEAPLAB_TRACE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct hl_err {
    char msg[512];
};

/* Operations.  Values are part of the file format: never renumber. */
enum hl_op {
    HL_OP_MALLOC = 1,
    HL_OP_CALLOC = 2,        /* size = element size, aux = nmemb */
    HL_OP_REALLOC = 3,       /* old_slot -> slot; size = new size */
    HL_OP_FREE = 4,
    HL_OP_POSIX_MEMALIGN = 5, /* aux = alignment */
    HL_OP_ALIGNED_ALLOC = 6,  /* aux = alignment */
    HL_OP_MEMALIGN = 7,       /* aux = alignment */
    HL_OP_VALLOC = 8,
    HL_OP_PVALLOC = 9,
    HL_OP_REALLOCARRAY = 10,  /* old_slot -> slot; size = element size, aux = nmemb */
    HL_OP_COUNT_ = 11
};

/* "malloc", "calloc", ... ; NULL for an unknown op.  hl_op_from_name() returns 0 for
 * an unknown name. */
const char *hl_op_name(int op);
int hl_op_from_name(const char *name);

#define HL_NO_SLOT UINT64_MAX

/* Event flags. */
#define HL_EV_FAILED 0x01  /* the call failed: NULL result (posix_memalign: non-zero
                              return); no new slot (slot == HL_NO_SLOT); a failed
                              realloc leaves old_slot live */
#define HL_EV_UNKNOWN 0x02 /* free/realloc of a pointer this trace never saw allocated,
                              or already freed (double free): old_slot/slot is
                              HL_NO_SLOT for the pointer given.  Replay skips these. */

struct hl_event {
    uint64_t time_ns;  /* since the start of the process's recording */
    uint64_t size;     /* bytes asked for; calloc/reallocarray: element size */
    uint64_t aux;      /* calloc/reallocarray: nmemb; aligned ops: alignment; else 0 */
    uint64_t slot;     /* allocating ops: the new block's slot (HL_NO_SLOT if failed);
                          free: the slot freed (HL_NO_SLOT if HL_EV_UNKNOWN) */
    uint64_t old_slot; /* realloc/reallocarray: the block passed in, HL_NO_SLOT for NULL
                          or unknown; other ops: HL_NO_SLOT */
    uint32_t thread;   /* dense thread index within the process; 0 is the first thread
                          seen (normally the main thread) */
    uint8_t op;        /* enum hl_op */
    uint8_t flags;     /* HL_EV_* */
};

/* Total bytes an event asks for: size, or size*aux for calloc/reallocarray
 * (saturating at UINT64_MAX on overflow). */
uint64_t hl_event_bytes(const struct hl_event *e);
/* True for ops that produce a new block (all but free). */
int hl_op_allocates(int op);
/* True for ops whose aux field means something (calloc, reallocarray: nmemb;
 * posix_memalign, aligned_alloc, memalign: alignment); the others must have aux 0. */
int hl_op_has_aux(int op);
/* True for ops that give a block back (free, realloc, reallocarray).  Their slot
 * (free) or old_slot (realloc, reallocarray) is HL_NO_SLOT for free(NULL) or
 * realloc(NULL, ...) without HL_EV_UNKNOWN, and for an unknown pointer with it. */
int hl_op_takes_block(int op);

/* Process flags. */
#define HL_PROC_ATTACHED 0x1u /* recording began while the process was running (record
                                 -p): frees and reallocs of blocks allocated before
                                 that are HL_EV_UNKNOWN events */
#define HL_PROC_UNRECORDED 0x2u /* a process (or image after an exec) of the run that left
                                   no capture: a section of zero events naming it, its
                                   reason in the HL_PROC_WHY bits */
#define HL_PROC_WHY_SHIFT 8       /* bits 8-11: enum hl_unrecorded, with HL_PROC_UNRECORDED */
#define HL_PROC_WHY_MASK 0xf00u
#define HL_PROC_KNOWN_FLAGS (HL_PROC_ATTACHED | HL_PROC_UNRECORDED | HL_PROC_WHY_MASK)

/* Why a process could not be recorded.  Values are part of the file format. */
enum hl_unrecorded {
    HL_UNREC_UNKNOWN = 0,  /* it left no capture, cause not known (LD_PRELOAD cleared from
                              its environment, an exec by a raw system call, ...) */
    HL_UNREC_STATIC = 1,   /* a statically linked program: nothing can be preloaded */
    HL_UNREC_SETUID = 2,   /* set-user-ID or set-group-ID: the loader ignores LD_PRELOAD */
    HL_UNREC_NO_FILE = 3,  /* a fork child that could not create its capture file (a
                              seccomp filter, no space, no descriptor left) */
    HL_UNREC_COUNT_ = 4
};
/* A short phrase for a reason ("statically linked", ...); "unknown" beyond the table. */
const char *hl_unrecorded_name(unsigned why);
static inline unsigned hl_proc_why(uint32_t flags)
{
    return (flags & HL_PROC_WHY_MASK) >> HL_PROC_WHY_SHIFT;
}

struct hl_process {
    uint32_t pid, ppid;
    uint32_t page_size;
    uint32_t nthreads;          /* threads seen in the section */
    uint32_t flags;             /* HL_PROC_* */
    uint64_t start_realtime_ns; /* CLOCK_REALTIME when recording of this process began */
    uint64_t nevents;           /* events in the section (known from the header's
                                   trailer once read; 0 until then when streaming) */
    uint64_t first_slot;        /* the section's first slot id: 0, except in traces
                                   written for tests (hl_writer_set_first_slot) */
    uint64_t nslots;            /* slots allocated in the section: its slot ids are
                                   first_slot .. first_slot + nslots - 1 */
    char cmdline[1024];         /* argv joined with single spaces, truncated */
    char exe[512];              /* /proc/self/exe of the process, "" if unknown */
    /* What the recording of the section lost (from its trailer, as nevents): */
    uint64_t dropped;           /* events not captured: the capture file could not grow */
    uint64_t missed;            /* calls not recorded (made while the recorder's wrapper
                                   ran: a signal handler, the allocator calling itself) */
    uint32_t cut_errno;         /* why the capture file could not grow (ENOSPC, EFBIG,
                                   EDQUOT, ...), 0 if it could */
};

/* ---- reading ---- */

struct hl_reader;

/* Open a trace; fails (with the file named in err) if it is missing, not a heaplab
 * trace, or of an unsupported version. */
struct hl_reader *hl_reader_open(const char *path, struct hl_err *err);

/* Move to the next process section and fill *p.  Returns 1 if there is one, 0 when the
 * file has no more sections, -1 on error (damaged file). */
int hl_reader_next_process(struct hl_reader *r, struct hl_process *p, struct hl_err *err);

/* Events in a batch at most. */
#define HL_READER_BATCH 4096u
/* The next batch of events of the current section, decoded (at most HL_READER_BATCH;
 * a chunk is returned in several batches).  *events points into the reader's memory and stays
 * valid until the next call.  Returns the count (> 0), 0 at the
 * end of the section, -1 on error: a truncated or corrupted chunk is reported with the
 * file and byte offset; all events before it have been returned. */
ssize_t hl_reader_events(struct hl_reader *r, const struct hl_event **events,
                         struct hl_err *err);

/* Leave the check that every slot a free or realloc gives back is live (allocated and
 * not given back yet) to the caller, which keeps a table of live slots anyway and must
 * refuse such an event as a corrupted trace (the replay's planner, cmd/replay/plan.c):
 * the reader then keeps no live set, which was a fair part of replay preparation's
 * decoding.  Every other check stays.  Call before the first hl_reader_events. */
void hl_reader_trust_slots(struct hl_reader *r);

/* Events come with time_ns 0: their time columns are neither unpacked nor decoded nor
 * checked (the chunk's own checksum still is), for a caller that needs no times (the
 * replay's planner).  Call before the first hl_reader_events. */
void hl_reader_skip_times(struct hl_reader *r);

/* A large block's resident pages (format.h, PAGE): the recorder counts, for blocks of
 * 64 KiB or more allocated by malloc or calloc, the pages the program had made
 * resident when it gave the block back (or at its end), so that a replay touches
 * that many pages instead of every page of the block. */
struct hl_pages {
    uint64_t slot, pages;
};
/* The recorder counts the pages of blocks of this many bytes or more. */
#define HL_PAGES_MIN_BYTES ((uint64_t)64 << 10)
/* The current section's page counts, in file order (a slot may come twice: the last
 * counts), into a malloc'd array *out (the caller frees it; NULL when there are none).
 * Reads the section's block headers and its PAGE blocks only, from the reader's
 * position on, without moving it: call it after hl_reader_next_process, before the
 * section's events.  Returns the count, or -1 (out of memory).  Damage is not
 * reported here but by hl_reader_events when it gets there. */
ssize_t hl_reader_pages(struct hl_reader *r, struct hl_pages **out, struct hl_err *err);

/* Open a trace held in memory (the bytes are not copied: buf must outlive the reader).
 * name stands for the file in error messages. */
struct hl_reader *hl_reader_open_mem(const void *buf, size_t len, const char *name,
                                     struct hl_err *err);

/* A hash of the file's contents (stable identifier for provenance: FNV-1a 64 of the
 * file's bytes as a hex string, 16 characters).  Valid until hl_reader_close. */
const char *hl_reader_hash(struct hl_reader *r);
/* Start computing that hash on a thread of its own, reading the file beside whatever
 * the caller reads (the cost of hashing a long trace, about 2 ns an event, is then off
 * the caller's path); hl_reader_hash waits for it.  Nothing for a trace held in memory,
 * or when no thread can be started (hl_reader_hash computes it then). */
void hl_reader_hash_begin(struct hl_reader *r);

void hl_reader_close(struct hl_reader *r);

/* Convenience: read a whole section into a malloc'd array (*out, *n).  Returns 0 / -1. */
int hl_reader_read_all(struct hl_reader *r, struct hl_event **out, size_t *n,
                       struct hl_err *err);

/* ---- writing ---- */

struct hl_writer;

/* Create (truncate) a trace file.  Writes to PATH.tmp and renames on close, so a failed
 * write never leaves a half trace under the final name. */
struct hl_writer *hl_writer_open(const char *path, struct hl_err *err);

/* Start a process section.  p->nevents/nslots/nthreads are ignored (computed). */
int hl_writer_begin_process(struct hl_writer *w, const struct hl_process *p,
                            struct hl_err *err);

/* Append one event.  Slots must follow the slot rule above: an allocating event that
 * succeeded must carry exactly the next slot id (the writer checks and fails
 * otherwise); frees and reallocs must name a slot allocated earlier in the section and
 * not given back since (a failed realloc keeps its block).  Fields an op does not use
 * must be empty (aux 0, free's size 0, old_slot HL_NO_SLOT).  A refused event leaves
 * the writer as it was. */
int hl_writer_event(struct hl_writer *w, const struct hl_event *e, struct hl_err *err);

/* Append n events, as many calls of hl_writer_event would; a trusted writer
 * (hl_writer_trust) takes them in one pass.  On an error, the events before the
 * refused one are written. */
int hl_writer_events(struct hl_writer *w, const struct hl_event *e, size_t n,
                     struct hl_err *err);

/* Record that the block of `slot` (allocated earlier in the section) had `pages`
 * pages resident (struct hl_pages); written as a PAGE block after the current chunk. */
int hl_writer_pages(struct hl_writer *w, uint64_t slot, uint64_t pages, struct hl_err *err);

/* Events the current chunk takes before it is written (and the writer is at a chunk
 * boundary again, hl_writer_at_boundary). */
uint32_t hl_writer_room(const struct hl_writer *w);

/* What the current section's recording lost (struct hl_process: dropped, missed,
 * cut_errno), written into its trailer.  0 each unless set. */
void hl_writer_set_losses(struct hl_writer *w, uint64_t dropped, uint64_t missed,
                          uint32_t cut_errno);

/* End the current section (writes its trailer). */
int hl_writer_end_process(struct hl_writer *w, struct hl_err *err);

/* Flush, close and rename into place.  Returns 0 / -1.  Always frees w. */
int hl_writer_close(struct hl_writer *w, struct hl_err *err);

/* Remove the temporary file and free w without producing a trace. */
void hl_writer_abort(struct hl_writer *w);

/* Free w and leave PATH.tmp as it stands: a trace cut short, readable up to its last
 * whole chunk, or a part to go on from a checkpoint (hl_writer_resume). */
void hl_writer_stop(struct hl_writer *w);

/* Checkpoints: a long-running producer (the record finaliser) can save where its
 * writer stands and, after being stopped, go on writing from there.  At a chunk
 * boundary (hl_writer_at_boundary: no event since the last chunk was written) of an
 * open section, hl_writer_checkpoint flushes the file to the kernel and fills *st;
 * hl_writer_resume reopens PATH.tmp, cuts it back to st->bytes and goes on with that
 * section, as the writer stood at the checkpoint (trusted, as hl_writer_trust). */
struct hl_writer_state {
    uint64_t bytes;      /* file bytes written */
    uint64_t nevents;    /* events of the open section */
    uint64_t next_slot;
    uint64_t prev_time;
    uint32_t pid;
    uint32_t nthreads;
    uint32_t chunk_seq;  /* chunks of the section written (the next may try both
                            modes; a checkpoint of heaplab before 2026-12-07 counted
                            one more, and going on from it moves the trials by one) */
    uint32_t modes;      /* the modes the last trial chose */
    uint32_t plain;      /* the columns stored without trying to compress them */
};
int hl_writer_at_boundary(const struct hl_writer *w);
int hl_writer_checkpoint(struct hl_writer *w, struct hl_writer_state *st, struct hl_err *err);
struct hl_writer *hl_writer_resume(const char *path, const struct hl_writer_state *st,
                                   struct hl_err *err);
/* Reopen PATH.tmp left by hl_writer_stop between sections, cut back to its first
 * BYTES bytes, to append more (hl_writer_append_window, whole sections). */
struct hl_writer *hl_writer_reopen(const char *path, uint64_t bytes, struct hl_err *err);

/* Append the process sections of the trace file PATH (written by hl_writer, closed)
 * as they are, between sections.  Lets a producer write sections side by side into
 * separate files and put them in order at the end. */
int hl_writer_append(struct hl_writer *w, const char *path, struct hl_err *err);
/* The same a window at a time: up to max bytes of PATH's sections from byte *from
 * (0: from the first section), moving *from on.  Returns the bytes appended, 0 once
 * *from is at PATH's end, or -1 with err set. */
int64_t hl_writer_append_window(struct hl_writer *w, const char *path, uint64_t *from,
                                uint64_t max, struct hl_err *err);

/* When the trace is one such file alone: put the trace file FROM (written by
 * hl_writer, closed) in place as PATH without copying its bytes (a hard link under
 * PATH's temporary name, renamed over PATH, as a writer's close does).  FROM stays as
 * it was.  Returns 1 if placed; 0 if the file system cannot link FROM there (another
 * file system, no hard links), for the caller to copy instead; -1 with err set. */
int hl_trace_place(const char *from, const char *path, struct hl_err *err);

/* Bytes written so far (for "trace bytes" summaries). */
uint64_t hl_writer_bytes(const struct hl_writer *w);

/* Events per chunk from now on (1..65536, default 65536; tests use small chunks). */
void hl_writer_set_chunk_events(struct hl_writer *w, uint32_t n);

/* The producer guarantees the slot rule and the fields each op may use by
 * construction (the record finaliser, whose address map hands out every slot): the
 * writer stops checking them, which is about a third of its time per event.  An
 * unknown op is still refused. */
void hl_writer_trust(struct hl_writer *w);

/* Sections begun from now on number their slots from `slot` instead of 0 (at most
 * 2^63).  For tests of long traces: numbering just below 2^32 or 2^40 reaches the
 * boundaries without writing billions of events. */
void hl_writer_set_first_slot(struct hl_writer *w, uint64_t slot);

/* ---- address -> slot mapping, for producers that see raw addresses ---- */

/* Used by the record finaliser and the mtrace importer: map addresses to the slots
 * of live blocks.  A hash map in one malloc'd table. */
struct hl_slotmap;
struct hl_slotmap *hl_slotmap_new(void);
void hl_slotmap_free(struct hl_slotmap *m);
/* Record that addr now holds slot.  Returns the previous slot if addr was already
 * live (the producer saw an allocation of a live address), else HL_NO_SLOT. */
uint64_t hl_slotmap_put(struct hl_slotmap *m, uint64_t addr, uint64_t slot);
/* Remove addr and return its slot, or HL_NO_SLOT if not live. */
uint64_t hl_slotmap_take(struct hl_slotmap *m, uint64_t addr);
/* A hint: addr will soon be put or taken (fetches its cell into the cache ahead). */
void hl_slotmap_prefetch(const struct hl_slotmap *m, uint64_t addr);
/* Live addresses, and each of them with its slot (in no particular order). */
size_t hl_slotmap_count(const struct hl_slotmap *m);
void hl_slotmap_each(const struct hl_slotmap *m, void (*fn)(void *ctx, uint64_t addr, uint64_t slot),
                     void *ctx);

#endif
