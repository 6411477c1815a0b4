/*
 * fuzz.h: what the fuzz targets share with their plain driver (driver.c).
 *
 * Each target defines LLVMFuzzerTestOneInput.  A target may also define
 * fuzz_postprocess(), which the plain driver calls on half of its mutated inputs to
 * repair what would otherwise stop every input at the first check (the reader's
 * target recomputes block checksums, so mutations reach the chunk decoder).
 */
#ifndef HEAPLAB_FUZZ_H
#define HEAPLAB_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
__attribute__((weak)) void fuzz_postprocess(uint8_t *data, size_t size);

/* Make the target's scratch folder "hl-fuzz-NAME.XXXXXX" under $TMPDIR (or /tmp) into
 * dir; the target removes it at exit.  Aborts if it cannot. */
static inline void fuzz_scratch(char *dir, size_t n, const char *name)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, n, "%s/hl-fuzz-%s.XXXXXX", tmp && *tmp ? tmp : "/tmp", name);
    if (!mkdtemp(dir))
        abort();
}

#endif
