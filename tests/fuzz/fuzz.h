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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
__attribute__((weak)) void fuzz_postprocess(uint8_t *data, size_t size);

#endif
