/* log: see log.h. One fprintf per line under a mutex so lines never interleave. */
#include "core/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static log_level min_level = LOG_INFO;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const char *names[] = {"debug", "info", "warn", "error", "quiet"};

void log_set_level(log_level lvl) { min_level = lvl; }
log_level log_get_level(void) { return min_level; }

void log_init_from_env(void) {
    const char *v = getenv("SHIMMY_LOG");
    if (v == NULL)
        return;
    for (int i = 0; i <= LOG_QUIET; i++)
        if (strcmp(v, names[i]) == 0)
            min_level = (log_level)i;
}

void log_msg(log_level lvl, const char *fmt, ...) {
    if (lvl < min_level)
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, names[lvl]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&lock);
    fprintf(stderr, "%s\n", line);
    pthread_mutex_unlock(&lock);
}
