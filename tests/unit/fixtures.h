/* Fixture helpers the unit tests share: the shared test models (SHIMMY_TEST_MODELS), a temporary
 * folder per test program, and files written or copied into it. The helpers that take paths fail
 * the current cmocka test when a file cannot be written. */
#ifndef SHIMMY_TESTS_UNIT_FIXTURES_H
#define SHIMMY_TESTS_UNIT_FIXTURES_H

#include <stddef.h>

/* The folder of the shared test models and the temporary folder, set by fixtures_setup. */
extern char models_dir[4096];
extern char tmp_dir[4096];

/* Group set-up: reads SHIMMY_TEST_MODELS into models_dir and creates tmp_dir as
 * /tmp/<name>-XXXXXX. Returns 0, or -1 with the reason on stderr. */
int fixtures_setup(const char *name);
/* Group tear-down: removes tmp_dir and all it holds. Returns 0, or -1 when that failed. */
int fixtures_teardown(void);

/* <models_dir>/file; fails the test when it is not readable. */
void model_path(const char *file, char *out, size_t outlen);
/* <tmp_dir>/rel. */
void tmp_path(const char *rel, char *out, size_t outlen);

/* Copies the first n bytes of src (all when n == 0) to dst. */
void copy_prefix(const char *src, const char *dst, size_t n);
/* Copies all of src to dst. */
void copy_file(const char *src, const char *dst);
void write_text(const char *path, const char *text);
void write_bytes(const char *path, const void *data, size_t n);

/* SHIMMY_TEST_TIME_SCALE: how much slower than native this machine runs the tests (a cross build
 * under qemu sets it, tests/CMakeLists.txt); wall-clock bounds and deadlines are multiplied by it.
 * Returns 1.0 when unset or below 1. */
double fixtures_time_scale(void);

/* Backends with Mesa's lavapipe as the Vulkan device (a CPU-type device: listed only when named;
 * F16 and cooperative matrices off, as it wants: it_gpu_vulkan): gpu_init, then the Vulkan
 * devices' registry indexes into idx (at most LIM_GPU_DEVICES), their count into *n. Returns 0,
 * or -1 with the reason on stderr. */
int fixtures_lavapipe(size_t *idx, size_t *n);

#endif
