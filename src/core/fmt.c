/* core/fmt: see fmt.h. */
#include "core/fmt.h"

#include <stdio.h>

static void scaled(uint64_t n, double base, const char *const units[5], const char *sep, char *out,
                   size_t outlen) {
    double v = (double)n;
    int u = 0;
    while (v >= base && u < 4) {
        v /= base;
        u++;
    }
    if (u == 0)
        snprintf(out, outlen, "%llu%s%s", (unsigned long long)n, sep, units[0]);
    else
        snprintf(out, outlen, "%.1f%s%s", v, sep, units[u]);
}

void fmt_bytes(uint64_t n, char *out, size_t outlen) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    scaled(n, 1024.0, units, " ", out, outlen);
}

void fmt_count(uint64_t n, char *out, size_t outlen) {
    static const char *const units[] = {"", "K", "M", "B", "T"};
    scaled(n, 1000.0, units, "", out, outlen);
}
