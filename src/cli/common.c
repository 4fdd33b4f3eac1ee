/* cli/common: helpers shared by the subcommands (usage errors, strict number parsing, the model
 * load progress on the terminal). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/log.h"

#include "cli/cli.h"

static const char *usage_where;

void cli_usage_where(const char *where) {
    usage_where = where;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "shimmy %s: ", cmd);
    if (usage_where != NULL)
        fprintf(stderr, "%s: ", usage_where);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (usage_where != NULL) {
        fputc('\n', stderr);
        return 2;
    }
    fprintf(stderr, "\nTry 'shimmy %s --help'.\n", cmd);
    return 2;
}

int cli_parse_int(const char *s, long lo, long hi, long *out) {
    if (s == NULL || *s == '\0')
        return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int cli_parse_float(const char *s, double lo, double hi, double *out) {
    if (s == NULL || *s == '\0')
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* A bar on a terminal (redrawn in place, ended at 100%); on anything else a log line at each
 * quarter, so that logs stay readable. Called from the loading thread: one load at a time shows
 * its bar (others' updates interleave, which a terminal user tolerates better than silence). */
void cli_progress(void *ctx, float fraction) {
    static int last = -1;
    (void)ctx;
    int pct = fraction < 0 ? 0 : fraction > 1 ? 100 : (int)(fraction * 100.0f);
    if (pct == last)
        return;
    last = pct;
    if (isatty(STDERR_FILENO)) {
        char bar[41];
        int fill = pct * 40 / 100;
        for (int i = 0; i < 40; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[40] = '\0';
        fprintf(stderr, "\rloading model [%s] %3d%%%s", bar, pct, pct == 100 ? "\n" : "");
        fflush(stderr);
    } else if (pct % 25 == 0) {
        log_info("loading model: %d%%", pct);
    }
    if (pct == 100)
        last = -1; /* the next load starts afresh */
}
