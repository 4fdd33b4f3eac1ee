/* clock: monotonic and wall time in nanoseconds. */
#ifndef SHIMMY_CLOCK_H
#define SHIMMY_CLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

static inline int64_t clock_mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t clock_wall_s(void) {
    return (int64_t)time(NULL);
}

/* The wall-clock time ms milliseconds from now, for pthread_cond_timedwait. */
static inline struct timespec clock_deadline_ms(int ms) {
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    return dl;
}

/* Whether the wall-clock deadline dl (clock_deadline_ms) has passed. */
static inline bool clock_deadline_passed(const struct timespec *dl) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return now.tv_sec > dl->tv_sec || (now.tv_sec == dl->tv_sec && now.tv_nsec >= dl->tv_nsec);
}

/* Milliseconds until dl (rounded up; 0 when it has passed), for poll; at most an hour. */
static inline int clock_ms_until(const struct timespec *dl) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t ms =
        (int64_t)(dl->tv_sec - now.tv_sec) * 1000 + (dl->tv_nsec - now.tv_nsec + 999999) / 1000000;
    return ms < 0 ? 0 : ms > 3600000 ? 3600000 : (int)ms;
}

#endif
