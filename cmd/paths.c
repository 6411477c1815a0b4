/*
 * paths.c: locating heaplab's own shared libraries (see paths.h).
 */
#include "paths.h"
#include "util.h"
#include "config.h"

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int try_path(char *out, size_t n, const char *dir, const char *soname)
{
    int k = snprintf(out, n, "%s/%s", dir, soname);
    if (k < 0 || (size_t)k >= n)
        return 0;
    return access(out, R_OK) == 0;
}

const char *hl_find_lib(const char *soname)
{
    static char out[PATH_MAX];
    char dir[PATH_MAX];
    const char *env = getenv("HEAPLAB_LIBDIR");
    if (env && *env && try_path(out, sizeof out, env, soname))
        return out;

    /* Build tree: the executable is build/heaplab; libraries live one or two
     * folders below the build root. */
    snprintf(dir, sizeof dir, "%s", hl_self_exe());
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    static const char *const subdirs[] = {".", "traces/preload", "allocators/heaplab",
                                          "allocators", "tests/lib", NULL};
    for (int i = 0; subdirs[i]; i++) {
        char d[PATH_MAX + 64];
        int k = snprintf(d, sizeof d, "%s/%s", dir, subdirs[i]);
        if (k > 0 && (size_t)k < sizeof d && try_path(out, sizeof out, d, soname))
            return out;
    }
    /* allocators/<variant>/ */
    char adir[PATH_MAX + 16];
    int k = snprintf(adir, sizeof adir, "%s/allocators", dir);
    DIR *dp = k > 0 && (size_t)k < sizeof adir ? opendir(adir) : NULL;
    if (dp) {
        struct dirent *de;
        while ((de = readdir(dp))) {
            if (de->d_name[0] == '.')
                continue;
            char d[PATH_MAX + 300];
            int k = snprintf(d, sizeof d, "%s/%s", adir, de->d_name);
            if (k > 0 && (size_t)k < sizeof d && try_path(out, sizeof out, d, soname)) {
                closedir(dp);
                return out;
            }
        }
        closedir(dp);
    }
    if (try_path(out, sizeof out, HEAPLAB_LIBDIR, soname))
        return out;
    return NULL;
}
