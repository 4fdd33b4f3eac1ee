/* clock: monotonic and wall time in nanoseconds. */
#ifndef SHIMMY_CLOCK_H
#define SHIMMY_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t clock_mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t clock_wall_s(void) { return (int64_t)time(NULL); }

#endif
