/* log: see log.h. One fprintf per line under a mutex so lines never interleave. */
#include "core/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/limits.h"

static log_level min_level = LOG_INFO;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const char *names[] = {"debug", "info", "warn", "error", "quiet"};
static bool as_json;

void log_set_level(log_level lvl) {
    min_level = lvl;
}
void log_set_json(bool on) {
    as_json = on;
}

bool log_level_parse(const char *name, log_level *lvl) {
    for (int i = 0; i <= LOG_QUIET; i++) {
        if (strcmp(name, names[i]) == 0) {
            *lvl = (log_level)i;
            return true;
        }
    }
    return false;
}
log_level log_get_level(void) {
    return min_level;
}

void log_init_from_env(void) {
    const char *v = getenv("SHIMMY_LOG");
    if (v == NULL)
        return;
    for (int i = 0; i <= LOG_QUIET; i++)
        if (strcmp(v, names[i]) == 0)
            min_level = (log_level)i;
}

/* A bounded line being built; overflow truncates. */
typedef struct line_buf {
    char s[LIM_LOG_LINE_BYTES];
    size_t n;
} line_buf;

static void put(line_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(line_buf *b, const char *fmt, ...) {
    if (b->n >= sizeof b->s - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->s + b->n, sizeof b->s - b->n, fmt, ap);
    va_end(ap);
    if (k > 0)
        b->n = b->n + (size_t)k < sizeof b->s ? b->n + (size_t)k : sizeof b->s - 1;
}

/* s as a JSON string (quotes included); control bytes as \u00XX. */
static void put_json_str(line_buf *b, const char *s) {
    put(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            put(b, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            put(b, "\\u%04x", *p);
        else
            put(b, "%c", *p);
    }
    put(b, "\"");
}

static void put_head(line_buf *b, log_level lvl) {
    struct timespec ts;
    struct tm tm;
    char t[64];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(t, sizeof t, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    if (as_json)
        put(b, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":", t, names[lvl]);
    else
        put(b, "%s %-5s ", t, names[lvl]);
}

static void emit(line_buf *b) {
    if (as_json && b->n > sizeof b->s - 2)
        b->n = sizeof b->s - 2; /* truncated: still one object per line */
    if (as_json)
        b->s[b->n++] = '}';
    b->s[b->n] = '\0';
    pthread_mutex_lock(&lock);
    fprintf(stderr, "%s\n", b->s);
    pthread_mutex_unlock(&lock);
}

void log_msg(log_level lvl, const char *fmt, ...) {
    if (lvl < min_level)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    line_buf b = {.n = 0};
    put_head(&b, lvl);
    if (as_json)
        put_json_str(&b, msg);
    else
        put(&b, "%s", msg);
    emit(&b);
}

static void put_field(line_buf *b, const log_field *f) {
    if (as_json) {
        put(b, ",\"%s\":", f->key);
        if (f->str != NULL)
            put_json_str(b, f->str);
        else
            put(b, "%.15g", f->num);
        return;
    }
    if (f->str == NULL)
        put(b, " %s=%.15g", f->key, f->num);
    else if (f->str[0] == '\0' || strpbrk(f->str, " \"=\\") != NULL) {
        put(b, " %s=", f->key);
        put_json_str(b, f->str);
    } else
        put(b, " %s=%s", f->key, f->str);
}

void log_fields(log_level lvl, const char *msg, const log_field *f, size_t n) {
    if (lvl < min_level)
        return;
    line_buf b = {.n = 0};
    put_head(&b, lvl);
    if (as_json)
        put_json_str(&b, msg);
    else
        put(&b, "%s", msg);
    for (size_t i = 0; i < n; i++)
        put_field(&b, &f[i]);
    emit(&b);
}
