/* Unit tests for gpu/backends: backend names; module loading from a folder made here with the
 * real CPU modules plus a CUDA "module" that cannot load (so its loader message must surface)
 * and no Vulkan module; the outcome of every module; device selection for auto, cpu, and named
 * backends without a device (module absent / present but failed), never falling back to the
 * CPU; modules deferred until their backend is named (CUDA without a device node, RPC); --rpc
 * with a malformed list and with an RPC module that cannot load; a folder with no CPU module; and
 * a CPU variant named by the server process (the last two in child processes, because gpu_init
 * runs once per process). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gpu/gpu.h"

static char lib_src[PATH_MAX];                    /* build/lib */
static char lib_dir[] = "/tmp/shimmy-gpu-XXXXXX"; /* the folder under test */

static void test_parse_names(void **state) {
    (void)state;
    const char *names[] = {"auto", "cpu", "cuda", "vulkan", "metal", "opencl", "rpc"};
    for (int b = 0; b < GPU__COUNT; b++) {
        gpu_backend got;
        assert_int_equal(gpu_backend_parse(names[b], &got), 0);
        assert_int_equal(got, b);
        assert_string_equal(gpu_backend_name(got), names[b]);
    }
    gpu_backend got;
    assert_int_equal(gpu_backend_parse("VULKAN", &got), 0);
    assert_int_equal(got, GPU_VULKAN);
    assert_int_equal(gpu_backend_parse("gpu", &got), -1);
    assert_int_equal(gpu_backend_parse("", &got), -1);
    assert_int_equal(gpu_backend_parse(NULL, &got), -1);
}

static const gpu_module *module(const char *backend) {
    for (size_t i = 0; i < gpu_module_count(); i++)
        if (strcmp(gpu_module_get(i)->backend, backend) == 0)
            return gpu_module_get(i);
    return NULL;
}

static void test_modules(void **state) {
    (void)state;
    assert_string_equal(gpu_lib_dir(), lib_dir);
    int cpu_loaded = 0, cpu_variants = 0;
    for (size_t i = 0; i < gpu_module_count(); i++) {
        const gpu_module *m = gpu_module_get(i);
        if (!m->cpu_variant)
            continue;
        cpu_variants++;
        cpu_loaded += m->loaded;
        if (!m->loaded)
            assert_true(m->error[0] != '\0'); /* every variant says why it was not chosen */
    }
    assert_true(cpu_variants >= 1);
    assert_int_equal(cpu_loaded, 1); /* exactly the best-scoring variant */
    const gpu_module *cuda = module("cuda");
    assert_non_null(cuda);
    assert_false(cuda->loaded);
    assert_int_equal(cuda->n_devices, 0);
    /* without an NVIDIA device node the module waits (docs/adr/0006); else the loader's words */
    if (cuda->deferred)
        assert_non_null(strstr(cuda->error, "no NVIDIA device node"));
    else if (strstr(cuda->error, "ELF") == NULL && strstr(cuda->error, "too short") == NULL)
        fail_msg("unexpected loader message: %s", cuda->error);
    const gpu_module *rpc = module("rpc"); /* loaded only for --rpc and rpc-server */
    assert_non_null(rpc);
    assert_true(rpc->deferred);
    assert_false(rpc->loaded);
    assert_null(module("vulkan"));
    assert_null(gpu_module_get(gpu_module_count()));
}

static void test_devices(void **state) {
    (void)state;
    assert_true(gpu_device_count() >= 1);
    gpu_device d;
    assert_true(gpu_device_get(0, &d));
    assert_string_equal(d.type, "cpu");
    assert_string_equal(d.backend, "CPU");
    assert_true(d.mem_total > 0);
    assert_false(gpu_device_get(gpu_device_count(), &d));
}

static void test_select(void **state) {
    (void)state;
    size_t idx[LIM_GPU_DEVICES], n = 99;
    char err[8192];
    assert_int_equal(gpu_select(GPU_CPU, idx, LIM_GPU_DEVICES, &n, err, sizeof err), SHIMMY_OK);
    assert_int_equal(n, 0);
    assert_int_equal(gpu_select(GPU_AUTO, idx, LIM_GPU_DEVICES, &n, err, sizeof err), SHIMMY_OK);
    assert_int_equal(n, 0); /* no GPU here: auto offloads nothing, and says so: */
    char line[2048];
    gpu_auto_summary(line, sizeof line);
    assert_non_null(strstr(line, "CPU only"));
    assert_non_null(strstr(line, "cuda module"));

    /* present but failed: the loader's message and what exists instead */
    assert_int_equal(gpu_select(GPU_CUDA, idx, LIM_GPU_DEVICES, &n, err, sizeof err),
                     ERR_MODEL_LOAD);
    assert_int_equal(n, 0);
    assert_non_null(strstr(err, "no CUDA device"));
    assert_non_null(strstr(err, "present but failed to load"));
    assert_non_null(strstr(err, module("cuda")->error));
    /* a deferred module is loaded for real once its backend is named: the loader's words */
    assert_false(module("cuda")->deferred);
    if (strstr(err, "ELF") == NULL && strstr(err, "too short") == NULL)
        fail_msg("unexpected loader message: %s", err);
    assert_non_null(strstr(err, "devices found instead: CPU"));
    /* absent */
    assert_int_equal(gpu_select(GPU_VULKAN, idx, LIM_GPU_DEVICES, &n, err, sizeof err),
                     ERR_MODEL_LOAD);
    assert_non_null(strstr(err, "libggml-vulkan.so is absent"));
    assert_non_null(strstr(err, "make deps GPU=vulkan"));
    assert_int_equal(gpu_select(GPU_METAL, idx, LIM_GPU_DEVICES, &n, err, sizeof err),
                     ERR_MODEL_LOAD);
    assert_non_null(strstr(err, "libggml-metal.so is absent"));
    assert_int_equal(gpu_select(GPU_OPENCL, idx, LIM_GPU_DEVICES, &n, err, sizeof err),
                     ERR_MODEL_LOAD);
    assert_int_equal(gpu_select(GPU_RPC, idx, LIM_GPU_DEVICES, &n, err, sizeof err),
                     ERR_MODEL_LOAD);
}

static void test_rpc_without_module(void **state) {
    (void)state;
    char err[8192];
    assert_int_equal(gpu_add_rpc("127.0.0.1", false, err, sizeof err), ERR_USAGE);
    assert_non_null(strstr(err, "--rpc wants HOST:PORT"));
    assert_int_equal(gpu_add_rpc("127.0.0.1:99999", false, err, sizeof err), ERR_USAGE);
    /* the module in the folder is a fake: present, fails to load on demand */
    assert_int_equal(gpu_add_rpc("127.0.0.1:50052", false, err, sizeof err), ERR_MODEL_LOAD);
    assert_non_null(strstr(err, "RPC backend is not loaded"));
    assert_non_null(strstr(err, "libggml-rpc.so is present but failed to load"));
    assert_int_equal(gpu_check_rpc("127.0.0.1:50052", err, sizeof err), ERR_MODEL_LOAD);
}

/* A folder without any CPU module: gpu_init fails and names the folder. Run in a child process
 * before the parent's gpu_init (which runs once per process); setup keeps the exit status. */
static int no_cpu_status = -1;

static int run_no_cpu_child(void) {
    char empty[] = "/tmp/shimmy-gpu-empty-XXXXXX";
    if (mkdtemp(empty) == NULL)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        char err[4096];
        shimmy_err rc = gpu_init(empty, err, sizeof err);
        bool ok = rc == ERR_INTERNAL && strstr(err, "no CPU backend module") && strstr(err, empty);
        if (!ok)
            fprintf(stderr, "gpu_init on an empty folder: %d %s\n", rc, err);
        _exit(ok ? 0 : 1);
    }
    int st = -1;
    waitpid(pid, &st, 0);
    rmdir(empty);
    return st;
}

static void test_no_cpu_module(void **state) {
    (void)state;
    assert_true(WIFEXITED(no_cpu_status));
    assert_int_equal(WEXITSTATUS(no_cpu_status), 0);
}

/* gpu_cpu_variant_use (an engine process told the server's choice): the named variant is loaded
 * alone, even one that scores lower than the best, and the others are not scored; a name that is
 * not in the folder falls back to scoring them all. Each gpu_init in a child process of its own;
 * the first learns the best variant and another that this CPU runs. */
static int variant_status = -1;

static void learn_variants(int fd) {
    char err[4096], line[80] = "";
    const char *best = "", *other = "";
    if (gpu_init(lib_dir, err, sizeof err) == SHIMMY_OK)
        best = gpu_cpu_variant();
    for (size_t i = 0; i < gpu_module_count(); i++) {
        const gpu_module *m = gpu_module_get(i);
        if (m->cpu_variant && m->score > 0 && strcmp(m->backend, best) != 0)
            other = m->backend;
    }
    snprintf(line, sizeof line, "%s %s", best, other);
    _exit(write(fd, line, strlen(line)) > 0 ? 0 : 1);
}

static bool picked_alone(const char *want) {
    char err[4096];
    gpu_cpu_variant_use(want);
    if (gpu_init(lib_dir, err, sizeof err) != SHIMMY_OK || strcmp(gpu_cpu_variant(), want) != 0)
        return false;
    for (size_t i = 0; i < gpu_module_count(); i++) {
        const gpu_module *m = gpu_module_get(i);
        if (m->cpu_variant && strcmp(m->backend, want) != 0 &&
            (m->loaded || m->score != -1 || strstr(m->error, "not scored") == NULL))
            return false;
    }
    return true;
}

static bool falls_back(const char *best) {
    char err[4096];
    gpu_cpu_variant_use("cpu-nosuchvariant");
    return gpu_init(lib_dir, err, sizeof err) == SHIMMY_OK && strcmp(gpu_cpu_variant(), best) == 0;
}

static int wait_child(pid_t pid) {
    int st = -1;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

static int run_variant_children(void) {
    int p[2];
    char line[80] = "", best[40] = "", other[40] = "";
    if (pipe(p) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0)
        learn_variants(p[1]);
    close(p[1]);
    ssize_t n = read(p[0], line, sizeof line - 1);
    close(p[0]);
    if (wait_child(pid) != 0 || n <= 0 || sscanf(line, "%39s %39s", best, other) < 1)
        return 1;
    const char *want = other[0] ? other : best;
    if ((pid = fork()) == 0)
        _exit(picked_alone(want) ? 0 : 1);
    if (wait_child(pid) != 0) {
        fprintf(stderr, "gpu_cpu_variant_use(%s): not loaded alone\n", want);
        return 1;
    }
    if ((pid = fork()) == 0)
        _exit(falls_back(best) ? 0 : 1);
    if (wait_child(pid) != 0) {
        fprintf(stderr, "gpu_cpu_variant_use(cpu-nosuchvariant): %s not chosen\n", best);
        return 1;
    }
    return 0;
}

static void test_cpu_variant_use(void **state) {
    (void)state;
    assert_int_equal(variant_status, 0);
}

/* lib_dir: links to build/lib's libraries except GPU modules, plus a broken libggml-cuda.so. */
static int make_lib_dir(void) {
    DIR *d = opendir(lib_src);
    if (d == NULL) {
        fprintf(stderr, "no %s: build first\n", lib_src);
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "lib", 3) != 0 || strstr(e->d_name, "vulkan") ||
            strstr(e->d_name, "cuda") || strstr(e->d_name, "rpc"))
            continue;
        char from[PATH_MAX * 2], to[PATH_MAX * 2];
        snprintf(from, sizeof from, "%s/%s", lib_src, e->d_name);
        snprintf(to, sizeof to, "%s/%s", lib_dir, e->d_name);
        if (symlink(from, to) != 0)
            return -1;
    }
    closedir(d);
    char fake[PATH_MAX];
    snprintf(fake, sizeof fake, "%s/libggml-cuda.so", lib_dir);
    FILE *f = fopen(fake, "w");
    if (f == NULL)
        return -1;
    fputs("not a shared library\n", f);
    fclose(f);
    snprintf(fake, sizeof fake, "%s/libggml-rpc.so", lib_dir);
    f = fopen(fake, "w");
    if (f == NULL)
        return -1;
    fputs("not a shared library either\n", f);
    fclose(f);
    return 0;
}

static int setup(void **state) {
    (void)state;
    const char *bin = getenv("SHIMMY_BIN");
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", bin ? bin : "build/shimmy");
    snprintf(lib_src, sizeof lib_src, "%s/lib", dirname(tmp));
    no_cpu_status = run_no_cpu_child();
    if (mkdtemp(lib_dir) == NULL || make_lib_dir() != 0)
        return -1;
    variant_status = run_variant_children();
    char err[4096];
    if (gpu_init(lib_dir, err, sizeof err) != SHIMMY_OK) {
        fprintf(stderr, "gpu_init: %s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    DIR *d = opendir(lib_dir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        char p[PATH_MAX * 2];
        snprintf(p, sizeof p, "%s/%s", lib_dir, e->d_name);
        if (e->d_name[0] != '.')
            unlink(p);
    }
    if (d != NULL)
        closedir(d);
    rmdir(lib_dir);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_names),
        cmocka_unit_test(test_modules),
        cmocka_unit_test(test_devices),
        cmocka_unit_test(test_select),
        cmocka_unit_test(test_rpc_without_module),
        cmocka_unit_test(test_no_cpu_module),
        cmocka_unit_test(test_cpu_variant_use),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
