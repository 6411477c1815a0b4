/*
 * fuzz_text.c: fuzz target for the text trace parser (traces/text.c): any bytes must
 * import or be refused with a file:line error; what imports must export again.
 */
#include "fuzz.h"
#include "text.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[256];

static void cleanup(void)
{
    char p[300];
    snprintf(p, sizeof p, "%s/out.hlt", dir);
    unlink(p);
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        fuzz_scratch(dir, sizeof dir, "text");
        atexit(cleanup);
    }
    char out[300];
    snprintf(out, sizeof out, "%s/out.hlt", dir);
    struct hl_err err;
    if (hl_text_import_mem((const char *)data, size, "fuzz.txt", out, &err) == 0) {
        FILE *devnull = fopen("/dev/null", "w");
        if (hl_text_export(out, devnull, "/dev/null", &err) != 0)
        {
            fprintf(stderr, "export failed: %s\n", err.msg);
            abort(); /* a trace the importer wrote must read back */
        }
        fclose(devnull);
    }
    return 0;
}
