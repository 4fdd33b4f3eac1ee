/* it_gpu: the GPU command line without a GPU. A named backend without a device refuses to start
 * and says what was found instead and why (module absent; module present but failing to load,
 * with the loader's message; SHIMMY_GPU_BACKEND too); --gpu-backend cpu offloads nothing, as
 * /health shows; the GPU flags reject bad values; gpu-info reports every module. The Vulkan path
 * itself is it_gpu_vulkan.c. */
#include "harness.h"

#include <dirent.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RUN_DEADLINE_MS 60000

static void assert_has(const char *what, const char *out, const char *needle) {
    if (strstr(out, needle) == NULL)
        fail_msg("%s: \"%s\" not in the output:\n%s", what, needle, out);
}

/* build/lib next to SHIMMY_BIN. */
static void lib_dir(char *out, size_t len) {
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", h_bin());
    const char *dir = dirname(tmp);
    size_t n = strlen(dir);
    assert_true(n + 5 <= len);
    memcpy(out, dir, n);
    memcpy(out + n, "/lib", 5);
}

/* t->dir/lib: links to every library of build/lib except the CUDA module, plus a file named
 * libggml-cuda.so that is not a shared library. */
static void make_broken_cuda_dir(h_test *t, char *out, size_t len) {
    char src[PATH_MAX];
    lib_dir(src, sizeof src);
    snprintf(out, len, "%s/lib", t->dir);
    assert_int_equal(mkdir(out, 0755), 0);
    DIR *d = opendir(src);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "lib", 3) != 0 || strstr(e->d_name, "cuda") != NULL)
            continue;
        char from[PATH_MAX * 2], to[PATH_MAX * 2];
        snprintf(from, sizeof from, "%s/%s", src, e->d_name);
        snprintf(to, sizeof to, "%s/%s", out, e->d_name);
        assert_int_equal(symlink(from, to), 0);
    }
    closedir(d);
    char fake[PATH_MAX * 2];
    snprintf(fake, sizeof fake, "%s/libggml-cuda.so", out);
    FILE *f = fopen(fake, "w");
    assert_non_null(f);
    for (int i = 0; i < 8; i++) /* long enough for dlopen to read an ELF header: "invalid" */
        fputs("this is not a shared library, only a file with its name.\n", f);
    fclose(f);
}

/* --gpu-backend cuda on a machine without the CUDA module: exit 1 before serving, naming the
 * missing module, how to get it, and the devices that do exist. */
static void test_cuda_absent(void **state) {
    h_test *t = *state;
    char src[PATH_MAX], probe[PATH_MAX + 32];
    lib_dir(src, sizeof src);
    snprintf(probe, sizeof probe, "%s/libggml-cuda.so", src);
    const char *args[] = {"serve",
                          "--bind",
                          "127.0.0.1:0",
                          "--gpu-backend",
                          "cuda",
                          "--model",
                          h_model_path(H_MODEL_FILE),
                          NULL};
    char *out;
    int rc = h_run(t, args, RUN_DEADLINE_MS, &out);
    if (rc != 1)
        fail_msg("--gpu-backend cuda: exit %d (want 1):\n%s", rc, out);
    assert_has("cuda", out, "--gpu-backend cuda: no CUDA device");
    if (access(probe, F_OK) == 0) { /* a CUDA module is installed: it must have failed */
        assert_has("cuda", out, "present but failed to load");
    } else {
        assert_has("cuda", out, "libggml-cuda.so is absent");
        assert_has("cuda", out, "make deps GPU=cuda");
    }
    assert_has("cuda", out, "devices found instead: CPU");
    free(out);
    h_pass(t);
}

/* A per-model forced backend without a device fails at start-up too, naming the model. */
static void test_cuda_absent_per_model(void **state) {
    h_test *t = *state;
    const char *args[] = {"serve",
                          "--bind",
                          "127.0.0.1:0",
                          "--gpu-backend",
                          "stories260k=cuda",
                          "--model",
                          h_model_path(H_MODEL_FILE),
                          NULL};
    char *out;
    int rc = h_run(t, args, RUN_DEADLINE_MS, &out);
    if (rc != 1)
        fail_msg("--gpu-backend stories260k=cuda: exit %d (want 1):\n%s", rc, out);
    assert_has("per model", out, "model 'stories260k': --gpu-backend cuda: no CUDA device");
    free(out);
    const char *bad[] = {"serve", "--gpu-layers", "stories260k=lots", NULL};
    rc = h_run(t, bad, RUN_DEADLINE_MS, &out);
    assert_int_equal(rc, 2);
    assert_has("bad per-model value", out, "--gpu-layers wants N, auto or all, not 'lots'");
    free(out);
    h_pass(t);
}

/* A CUDA module that is there but cannot load: the dynamic loader's message is in the error, in
 * gpu-info, and SHIMMY_GPU_BACKEND=cuda fails the same way. */
static void test_cuda_broken_module(void **state) {
    h_test *t = *state;
    char dir[sizeof t->dir + 8];
    make_broken_cuda_dir(t, dir, sizeof dir);
    setenv("SHIMMY_BACKEND_DIR", dir, 1);
    const char *args[] = {"serve",
                          "--bind",
                          "127.0.0.1:0",
                          "--gpu-backend",
                          "cuda",
                          "--model",
                          h_model_path(H_MODEL_FILE),
                          NULL};
    char *out;
    int rc = h_run(t, args, RUN_DEADLINE_MS, &out);
    if (rc != 1)
        fail_msg("--gpu-backend cuda with a broken module: exit %d (want 1):\n%s", rc, out);
    assert_has("broken cuda", out, "libggml-cuda.so is present but failed to load");
    assert_has("broken cuda", out, "ELF"); /* dlopen's "invalid ELF header" / "file too short" */
    free(out);

    setenv("SHIMMY_GPU_BACKEND", "cuda", 1);
    const char *env_args[] = {
        "serve", "--bind", "127.0.0.1:0", "--model", h_model_path(H_MODEL_FILE), NULL};
    rc = h_run(t, env_args, RUN_DEADLINE_MS, &out);
    unsetenv("SHIMMY_GPU_BACKEND");
    if (rc != 1)
        fail_msg("SHIMMY_GPU_BACKEND=cuda: exit %d (want 1):\n%s", rc, out);
    assert_has("env cuda", out, "--gpu-backend cuda: no CUDA device");
    free(out);

    const char *info[] = {"gpu-info", NULL};
    rc = h_run(t, info, RUN_DEADLINE_MS, &out);
    unsetenv("SHIMMY_BACKEND_DIR");
    assert_int_equal(rc, 0);
    assert_has("gpu-info", out, "libggml-cuda.so");
    assert_has("gpu-info", out, "not loaded");
    /* without an NVIDIA device node the module is not even tried (docs/adr/0006) */
    if (access("/dev/nvidiactl", F_OK) == 0)
        assert_has("gpu-info", out, "cuda module failed to load");
    else
        assert_has("gpu-info", out, "cuda module not loaded: skipped: no NVIDIA device node");
    free(out);
    h_pass(t);
}

/* --gpu-backend cpu: every layer on the CPU, as /health reports from the loaded model. */
static void test_cpu_backend_health(void **state) {
    h_test *t = *state;
    const char *extra[] = {"--gpu-backend", "cpu", NULL};
    h_server *s = h_start_default(t, extra);
    json_t *h = h_health(s->port);
    json_t *m = h_get(h, "models.0");
    assert_non_null(m);
    assert_int_equal(h_int(m, "layers_total"), 6); /* 5 blocks + the output layer */
    assert_int_equal(h_int(m, "layers_offloaded"), 0);
    json_t *devs = h_arr(m, "devices");
    assert_int_equal(json_array_size(devs), 1);
    assert_string_equal(h_str(json_array_get(devs, 0), "name"), "CPU");
    assert_int_equal(h_int(json_array_get(devs, 0), "layers"), 6);
    assert_true(h_int(json_array_get(devs, 0), "weight_bytes") > 1000000);
    assert_true(h_int(json_array_get(devs, 0), "kv_bytes") > 0);
    json_decref(h);
    h_pass(t);
}

static void test_flag_errors(void **state) {
    h_test *t = *state;
    const char *const cases[][4] = {
        {"serve", "--gpu-backend", "gpu", NULL},        {"serve", "--gpu-layers", "many", NULL},
        {"serve", "--gpu-layers", "-1", NULL},          {"serve", "--main-gpu", "x", NULL},
        {"serve", "--tensor-split", "1,,2", NULL},      {"serve", "--tensor-split", "-1", NULL},
        {"generate", "--gpu-backend", "quantum", NULL}, {"gpu-info", "--bogus", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out;
        int rc = h_run(t, cases[i], RUN_DEADLINE_MS, &out);
        if (rc != 2 || out[0] == '\0')
            fail_msg("shimmy %s %s %s: exit %d (want 2), output \"%s\"", cases[i][0], cases[i][1],
                     cases[i][2] ? cases[i][2] : "", rc, out);
        free(out);
    }
    setenv("SHIMMY_GPU_BACKEND", "warp-drive", 1);
    const char *args[] = {"serve", NULL};
    char *out;
    int rc = h_run(t, args, RUN_DEADLINE_MS, &out);
    unsetenv("SHIMMY_GPU_BACKEND");
    if (rc != 2 || strstr(out, "SHIMMY_GPU_BACKEND") == NULL)
        fail_msg("SHIMMY_GPU_BACKEND=warp-drive: exit %d (want 2), output \"%s\"", rc, out);
    free(out);
    h_pass(t);
}

/* --main-gpu past the devices the backend has: refused at start-up. */
static void test_main_gpu_out_of_range(void **state) {
    h_test *t = *state;
    const char *args[] = {"serve",
                          "--bind",
                          "127.0.0.1:0",
                          "--gpu-backend",
                          "cpu",
                          "--main-gpu",
                          "0",
                          "--model",
                          h_model_path(H_MODEL_FILE),
                          NULL};
    char *out;
    int rc = h_run(t, args, RUN_DEADLINE_MS, &out);
    if (rc != 1)
        fail_msg("--main-gpu 0 with no device: exit %d (want 1):\n%s", rc, out);
    assert_has("main-gpu", out, "--main-gpu 0");
    free(out);
    h_pass(t);
}

/* Every test starts without the variables a failed test may have left set. */
static int setup(void **state) {
    unsetenv("SHIMMY_GPU_BACKEND");
    unsetenv("SHIMMY_BACKEND_DIR");
    return h_setup(state);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cuda_absent, setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_cuda_absent_per_model, setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_cuda_broken_module, setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_cpu_backend_health, setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_flag_errors, setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_main_gpu_out_of_range, setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
