/*
 * mutator.c: libFuzzer's mutation for every target built with it (tests/fuzz/meson.build):
 * the usual mutations, then, for half the mutants of a target that defines
 * fuzz_postprocess (fuzz.h), its repair of checksums, so that coverage grows past them
 * into the decoders behind.
 */
#include "fuzz.h"

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed);

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
    size = LLVMFuzzerMutate(data, size, max_size);
    if (fuzz_postprocess && (seed & 1))
        fuzz_postprocess(data, size);
    return size;
}
