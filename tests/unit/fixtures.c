/* Fixture helpers the unit tests share (fixtures.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/limits.h"
#include "fixtures.h"
#include "gpu/gpu.h"

char models_dir[4096];
char tmp_dir[4096];

int fixtures_setup(const char *name) {
    const char *dir = getenv("SHIMMY_TEST_MODELS");
    if (dir == NULL || dir[0] == '\0') {
        fprintf(stderr, "SHIMMY_TEST_MODELS is not set: it must name the folder holding the shared "
                        "test models (../shared/models)\n");
        return -1;
    }
    snprintf(models_dir, sizeof models_dir, "%s", dir);
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/%s-XXXXXX", name);
    if (mkdtemp(tmp_dir) == NULL) {
        perror("mkdtemp");
        return -1;
    }
    return 0;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int fixtures_teardown(void) {
    return nftw(tmp_dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

void model_path(const char *file, char *out, size_t outlen) {
    snprintf(out, outlen, "%s/%s", models_dir, file);
    if (access(out, R_OK) != 0) {
        fprintf(stderr,
                "test model %s is missing: set SHIMMY_TEST_MODELS to the folder holding "
                "the shared test models (../shared/models)\n",
                out);
        fail_msg("missing test model %s", out);
    }
}

void tmp_path(const char *rel, char *out, size_t outlen) {
    snprintf(out, outlen, "%s/%s", tmp_dir, rel);
}

void copy_prefix(const char *src, const char *dst, size_t n) {
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char chunk[65536];
    size_t total = 0, got;
    while ((got = fread(chunk, 1, sizeof chunk, in)) > 0) {
        if (n > 0 && total + got > n)
            got = n - total;
        assert_int_equal(fwrite(chunk, 1, got, out), got);
        total += got;
        if (n > 0 && total >= n)
            break;
    }
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

void copy_file(const char *src, const char *dst) {
    copy_prefix(src, dst, 0);
}

void write_text(const char *path, const char *text) {
    write_bytes(path, text, strlen(text));
}

void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

double fixtures_time_scale(void) {
    const char *v = getenv("SHIMMY_TEST_TIME_SCALE");
    double f = v != NULL ? strtod(v, NULL) : 1.0;
    return f >= 1.0 ? f : 1.0;
}

int fixtures_lavapipe(size_t *idx, size_t *n) {
    char err[4096];
    setenv("GGML_VK_VISIBLE_DEVICES", "0", 1);
    setenv("GGML_VK_DISABLE_F16", "1", 1);
    setenv("GGML_VK_DISABLE_COOPMAT", "1", 1);
    if (gpu_init(NULL, err, sizeof err) != SHIMMY_OK) {
        fprintf(stderr, "gpu_init: %s\n", err);
        return -1;
    }
    if (gpu_select(GPU_VULKAN, idx, LIM_GPU_DEVICES, n, err, sizeof err) != SHIMMY_OK) {
        fprintf(stderr,
                "no Vulkan device (scripts/test-deps.sh installs the module and Mesa's "
                "lavapipe): %s\n",
                err);
        return -1;
    }
    return 0;
}
