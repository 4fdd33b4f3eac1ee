/* gpu/backends: gpu.h. Loads the backend modules of one folder into ggml's registry, one by one,
 * keeping each module's outcome (and the loader's message when it failed); lists devices; picks
 * the devices of a model (llama.cpp's default rules for `auto`, or one named backend, never a
 * silent fallback to the CPU); adds RPC servers and runs one. The only ggml API used is
 * ggml-backend.h.
 *
 * A GPU module whose devices cannot exist here is not loaded at start-up (docs/adr/0006): the
 * Vulkan loader alone costs ~100 ms and ~70 MiB (Mesa's CPU driver and LLVM) to find nothing.
 * The probe only looks for device nodes; when it finds none the module is deferred, and loaded
 * for real as soon as its backend is named, so a named backend always gets ggml's own answer. */
#include "gpu/gpu.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/limits.h"
#include "core/log.h"
#include "ggml-backend.h"

/* One row per --gpu-backend value: the ggml registry name and module file stem of its backend,
 * and how to get the module when it is absent. */
static const struct backend_row {
    const char *cli;
    const char *reg;    /* ggml_backend_reg_name() */
    const char *module; /* libggml-<module>.so */
    const char *howto;
} backend_rows[GPU__COUNT] = {
    [GPU_AUTO] = {"auto", NULL, NULL, NULL},
    [GPU_CPU] = {"cpu", "CPU", "cpu", "run scripts/deps.sh"},
    [GPU_CUDA] = {"cuda", "CUDA", "cuda",
                  "install it with 'make deps GPU=cuda' (needs an NVIDIA driver for CUDA 13)"},
    [GPU_VULKAN] = {"vulkan", "Vulkan", "vulkan", "install it with 'make deps GPU=vulkan'"},
    [GPU_METAL] = {"metal", "Metal", "metal",
                   "Metal modules exist only in macOS builds (scripts/build-llama.sh on a Mac)"},
    [GPU_OPENCL] = {"opencl", "OpenCL", "opencl",
                    "build it with 'scripts/build-llama.sh -DGGML_OPENCL=ON'"},
    [GPU_RPC] = {"rpc", "RPC", "rpc", "build it with 'scripts/build-llama.sh -DGGML_RPC=ON'"},
};

static struct {
    pthread_mutex_t mu;
    bool done;
    shimmy_err rc;
    char err[1024];
    char dir[PATH_MAX];
    gpu_module mods[LIM_GPU_MODULES];
    size_t n_mods;
    char captured[512]; /* last error the ggml loader logged while a module was loading */
    char cpu_pick[32];  /* gpu_cpu_variant_use: the variant to load without scoring, "" = score */
} G = {.mu = PTHREAD_MUTEX_INITIALIZER};

int gpu_backend_parse(const char *s, gpu_backend *out) {
    for (int b = 0; b < GPU__COUNT; b++)
        if (s != NULL && strcasecmp(s, backend_rows[b].cli) == 0) {
            *out = (gpu_backend)b;
            return 0;
        }
    return -1;
}

const char *gpu_backend_name(gpu_backend b) {
    return b >= 0 && b < GPU__COUNT ? backend_rows[b].cli : "?";
}

const char *gpu_lib_dir(void) {
    return G.dir;
}

/* ---- finding the folder ---- */

static int exe_dir(char *out, size_t len) {
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0)
        return -1;
    path[n] = '\0';
    char *slash = strrchr(path, '/');
    if (slash == NULL)
        return -1;
    *slash = '\0';
    return snprintf(out, len, "%s", path) < (int)len ? 0 : -1;
}

static bool dir_has_base(const char *dir) {
    char probe[PATH_MAX + 32];
    if (snprintf(probe, sizeof probe, "%s/libggml-base.so", dir) >= (int)sizeof probe)
        return false;
    return access(probe, R_OK) == 0;
}

static int resolve_dir(const char *lib_dir, char *out, size_t len) {
    if (lib_dir == NULL)
        lib_dir = getenv("SHIMMY_BACKEND_DIR");
    if (lib_dir != NULL && lib_dir[0] != '\0')
        return snprintf(out, len, "%s", lib_dir) < (int)len ? 0 : -1;
    char exe[PATH_MAX - 16];
    if (exe_dir(exe, sizeof exe) != 0)
        return -1;
    if (snprintf(out, len, "%s/lib", exe) < (int)len && dir_has_base(out))
        return 0;
    return snprintf(out, len, "%s/../lib", exe) < (int)len ? 0 : -1;
}

/* ---- listing the modules ---- */

/* "libggml-vulkan.so" -> "vulkan"; 0 when name is not a backend module. */
static int module_stem(const char *name, char *stem, size_t len) {
    size_t n = strlen(name);
    if (n <= strlen("libggml-.so") || strncmp(name, "libggml-", 8) != 0 ||
        strcmp(name + n - 3, ".so") != 0)
        return 0;
    size_t sl = n - 8 - 3;
    if (sl >= len)
        return 0;
    memcpy(stem, name + 8, sl);
    stem[sl] = '\0';
    return strcmp(stem, "base") != 0;
}

static int cmp_module(const void *a, const void *b) {
    return strcmp(((const gpu_module *)a)->path, ((const gpu_module *)b)->path);
}

static void scan_dir(void) {
    DIR *d = opendir(G.dir);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && G.n_mods < LIM_GPU_MODULES) {
        gpu_module *m = &G.mods[G.n_mods];
        memset(m, 0, sizeof *m);
        if (!module_stem(e->d_name, m->backend, sizeof m->backend))
            continue;
        if (snprintf(m->path, sizeof m->path, "%s/%s", G.dir, e->d_name) >= (int)sizeof m->path)
            continue;
        m->cpu_variant = strncmp(m->backend, "cpu", 3) == 0;
        m->score = -1;
        G.n_mods++;
    }
    closedir(d);
    qsort(G.mods, G.n_mods, sizeof G.mods[0], cmp_module);
}

/* ---- loading ---- */

typedef int (*score_fn)(void);

/* The module's own score (CPU variants: the instruction sets it needs are present), through a
 * private dlopen; -1 with the dynamic loader's message in m->error when it cannot be opened.
 * RTLD_LAZY: only ggml_backend_score is called, so the variant's other symbols need not be bound
 * (binding them all was most of the CPU time of scoring 14 variants: every process pays it, each
 * engine process included); the chosen one is then loaded by ggml with RTLD_NOW, so a variant
 * with an unresolvable symbol still fails with the loader's message. */
static int probe_score(gpu_module *m) {
    void *h = dlopen(m->path, RTLD_LAZY | RTLD_LOCAL);
    if (h == NULL) {
        const char *e = dlerror();
        snprintf(m->error, sizeof m->error, "%s", e ? e : "dlopen failed");
        return -1;
    }
    score_fn f = (score_fn)(uintptr_t)dlsym(h, "ggml_backend_score");
    int s = f != NULL ? f() : 1;
    dlclose(h);
    return s;
}

static void on_loader_log(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    if (level != GGML_LOG_LEVEL_ERROR)
        return;
    size_t n = strlen(text);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        n--;
    snprintf(G.captured, sizeof G.captured, "%.*s", (int)n, text);
}

/* The loader's message minus its "load_backend: failed to ... PATH: " prefix. */
static const char *loader_reason(const gpu_module *m) {
    const char *p = strstr(G.captured, m->path);
    if (p != NULL && strncmp(p + strlen(m->path), ": ", 2) == 0)
        return p + strlen(m->path) + 2;
    return G.captured;
}

static ggml_backend_reg_t reg_by_name(const char *name) {
    for (size_t i = 0; i < ggml_backend_reg_count(); i++) {
        ggml_backend_reg_t r = ggml_backend_reg_get(i);
        if (strcasecmp(ggml_backend_reg_name(r), name) == 0)
            return r;
    }
    return NULL;
}

static void load_module(gpu_module *m) {
    G.captured[0] = '\0';
    ggml_backend_reg_t reg = ggml_backend_load(m->path);
    if (reg == NULL) {
        char detail[sizeof m->error];
        int s = probe_score(m);
        if (s < 0)
            return; /* m->error holds dlopen's message */
        if (s == 0)
            snprintf(detail, sizeof detail, "not supported on this machine (score 0)");
        else
            snprintf(detail, sizeof detail, "%s",
                     G.captured[0] ? loader_reason(m) : "ggml_backend_init returned no backend");
        snprintf(m->error, sizeof m->error, "%s", detail);
        return;
    }
    m->loaded = true;
    snprintf(m->reg_name, sizeof m->reg_name, "%s", ggml_backend_reg_name(reg));
    m->n_devices = ggml_backend_reg_dev_count(reg);
}

/* The variant gpu_cpu_variant_use named, loaded alone: the other variants are not opened (each
 * costs a dlopen: 14 of them were a quarter of an engine process's start). Returns false when it
 * is not in the folder or does not load: then every variant is scored as usual. */
static bool load_cpu_picked(void) {
    gpu_module *pick = NULL;
    for (size_t i = 0; i < G.n_mods && G.cpu_pick[0] != '\0'; i++)
        if (G.mods[i].cpu_variant && strcmp(G.mods[i].backend, G.cpu_pick) == 0)
            pick = &G.mods[i];
    if (pick == NULL)
        return false;
    load_module(pick);
    if (!pick->loaded) {
        log_warn("gpu: the CPU variant %s did not load here (%s): scoring every variant",
                 pick->backend, pick->error);
        pick->error[0] = '\0';
        return false;
    }
    for (size_t i = 0; i < G.n_mods; i++)
        if (G.mods[i].cpu_variant && &G.mods[i] != pick)
            snprintf(G.mods[i].error, sizeof G.mods[i].error,
                     "not scored: %s was chosen by the server process", pick->backend);
    return true;
}

/* CPU variants: score each like llama.cpp's loader does and load only the best one. */
static void load_cpu(void) {
    if (load_cpu_picked())
        return;
    gpu_module *best = NULL;
    for (size_t i = 0; i < G.n_mods; i++) {
        gpu_module *m = &G.mods[i];
        if (!m->cpu_variant)
            continue;
        m->score = probe_score(m);
        if (m->score > 0 && (best == NULL || m->score > best->score))
            best = m;
    }
    for (size_t i = 0; i < G.n_mods; i++) {
        gpu_module *m = &G.mods[i];
        if (!m->cpu_variant || m == best || m->error[0] != '\0')
            continue;
        if (m->score == 0)
            snprintf(m->error, sizeof m->error, "not supported by this CPU (score 0)");
        else
            snprintf(m->error, sizeof m->error, "not chosen: score %d, %s scores %d", m->score,
                     best->backend, best->score);
    }
    if (best != NULL)
        load_module(best);
}

/* ---- cheap probes: could this module find a device here at all? ---- */

/* One row per module that is probed before loading: the device nodes its devices need (any one
 * present: load), an environment variable that asks for it anyway, and what the skip says. A
 * module without a row is always loaded (OpenCL, Metal, ... cost little or cannot be probed). */
static const char *const vk_nodes[] = {"/dev/dri/renderD*", "/dev/nvidia[0-9]*", "/dev/dxg",
                                       "/dev/kgsl-3d0",     "/dev/mali[0-9]*",   NULL};
static const char *const cuda_nodes[] = {"/dev/nvidiactl", "/dev/nvidia[0-9]*", "/dev/dxg", NULL};
static const char *const hip_nodes[] = {"/dev/kfd", NULL};
static const struct probe_row {
    const char *module;
    const char *const *nodes; /* NULL: loaded only on demand */
    const char *env;
    const char *why;
} probe_rows[] = {
    {"vulkan", vk_nodes, "GGML_VK_VISIBLE_DEVICES",
     "skipped: no GPU device node (/dev/dri/renderD*, /dev/nvidia*, /dev/dxg), so no Vulkan GPU; "
     "CPU-type Vulkan drivers such as lavapipe are used only with GGML_VK_VISIBLE_DEVICES set"},
    {"cuda", cuda_nodes, NULL, "skipped: no NVIDIA device node (/dev/nvidiactl, /dev/nvidia*)"},
    {"hip", hip_nodes, NULL, "skipped: no ROCm device node (/dev/kfd)"},
    {"rpc", NULL, NULL, "used on demand (--rpc, shimmy rpc-server)"},
};

static bool any_node(const char *const *patterns) {
    for (; *patterns != NULL; patterns++) {
        glob_t g;
        int rc = glob(*patterns, GLOB_NOSORT, NULL, &g);
        bool found = rc == 0 && g.gl_pathc > 0;
        globfree(&g);
        if (found)
            return true;
    }
    return false;
}

/* Whether m should wait: writes the reason into m->error and marks it deferred.
 * SHIMMY_GPU_PROBE=off loads every module as before. */
static bool defer_module(gpu_module *m) {
    const char *probe = getenv("SHIMMY_GPU_PROBE");
    for (size_t i = 0; i < sizeof probe_rows / sizeof probe_rows[0]; i++) {
        const struct probe_row *r = &probe_rows[i];
        if (strcmp(m->backend, r->module) != 0)
            continue;
        if (r->nodes != NULL && probe != NULL && strcmp(probe, "off") == 0)
            return false;
        if (r->nodes != NULL && ((r->env != NULL && getenv(r->env) != NULL) || any_node(r->nodes)))
            return false;
        m->deferred = true;
        snprintf(m->error, sizeof m->error, "%s", r->why);
        return true;
    }
    return false;
}

static void load_all(void) {
    ggml_log_callback prev_cb;
    void *prev_ud;
    ggml_log_get(&prev_cb, &prev_ud);
    ggml_log_set(on_loader_log, NULL);
    scan_dir();
    if (ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU) == NULL)
        load_cpu();
    for (size_t i = 0; i < G.n_mods; i++) {
        gpu_module *m = &G.mods[i];
        if (m->cpu_variant || defer_module(m))
            continue;
        ggml_backend_reg_t have = reg_by_name(m->backend);
        if (have != NULL) { /* already registered (linked in, or loaded by someone else) */
            m->loaded = true;
            snprintf(m->reg_name, sizeof m->reg_name, "%s", ggml_backend_reg_name(have));
            m->n_devices = ggml_backend_reg_dev_count(have);
            continue;
        }
        load_module(m);
    }
    ggml_log_set(prev_cb, prev_ud);
}

static const gpu_module *find_module(const char *stem);

/* Loads the deferred module of backend stem now (its backend was named). */
static void load_deferred(const char *stem) {
    pthread_mutex_lock(&G.mu);
    gpu_module *m = (gpu_module *)find_module(stem);
    if (m != NULL && m->deferred) {
        m->deferred = false;
        m->error[0] = '\0';
        ggml_log_callback prev_cb;
        void *prev_ud;
        ggml_log_get(&prev_cb, &prev_ud);
        ggml_log_set(on_loader_log, NULL);
        load_module(m);
        ggml_log_set(prev_cb, prev_ud);
        log_debug("gpu: loaded %s on demand: %s", m->path, m->loaded ? "ok" : m->error);
    }
    pthread_mutex_unlock(&G.mu);
}

static void cpu_failure(char *err, size_t errlen) {
    size_t off = (size_t)snprintf(err, errlen,
                                  "no CPU backend module (libggml-cpu-*.so) could be "
                                  "loaded from %s",
                                  G.dir);
    for (size_t i = 0; i < G.n_mods && off < errlen; i++)
        if (G.mods[i].cpu_variant)
            off += (size_t)snprintf(err + off, errlen - off, "; %s: %s", G.mods[i].backend,
                                    G.mods[i].error);
    if (off < errlen && G.n_mods == 0)
        snprintf(err + off, errlen - off,
                 " (no libggml-*.so there: run scripts/deps.sh, or set "
                 "SHIMMY_BACKEND_DIR)");
}

shimmy_err gpu_init(const char *lib_dir, char *err, size_t errlen) {
    pthread_mutex_lock(&G.mu);
    if (!G.done) {
        G.done = true;
        G.rc = SHIMMY_OK;
        if (resolve_dir(lib_dir, G.dir, sizeof G.dir) != 0) {
            G.rc = err_set(G.err, sizeof G.err, ERR_INTERNAL, "cannot find the library folder");
        } else {
            load_all();
            if (ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU) == NULL) {
                cpu_failure(G.err, sizeof G.err);
                G.rc = ERR_INTERNAL;
            }
        }
    }
    shimmy_err rc = G.rc;
    if (rc != SHIMMY_OK)
        err_set(err, errlen, rc, "%s", G.err);
    pthread_mutex_unlock(&G.mu);
    return rc;
}

void gpu_cpu_variant_use(const char *stem) {
    pthread_mutex_lock(&G.mu);
    if (!G.done && stem != NULL && strncmp(stem, "cpu", 3) == 0 &&
        strlen(stem) < sizeof G.cpu_pick && strchr(stem, '/') == NULL)
        snprintf(G.cpu_pick, sizeof G.cpu_pick, "%s", stem);
    pthread_mutex_unlock(&G.mu);
}

const char *gpu_cpu_variant(void) {
    for (size_t i = 0; i < G.n_mods; i++)
        if (G.mods[i].cpu_variant && G.mods[i].loaded)
            return G.mods[i].backend;
    return "";
}

size_t gpu_module_count(void) {
    return G.n_mods;
}

const gpu_module *gpu_module_get(size_t i) {
    return i < G.n_mods ? &G.mods[i] : NULL;
}

/* ---- devices ---- */

static const char *type_name(enum ggml_backend_dev_type t) {
    switch (t) {
    case GGML_BACKEND_DEVICE_TYPE_CPU:
        return "cpu";
    case GGML_BACKEND_DEVICE_TYPE_GPU:
        return "gpu";
    case GGML_BACKEND_DEVICE_TYPE_IGPU:
        return "igpu";
    case GGML_BACKEND_DEVICE_TYPE_ACCEL:
        return "accel";
    default:
        return "meta";
    }
}

size_t gpu_device_count(void) {
    return ggml_backend_dev_count();
}

bool gpu_device_get(size_t i, gpu_device *out) {
    if (i >= ggml_backend_dev_count())
        return false;
    ggml_backend_dev_t d = ggml_backend_dev_get(i);
    struct ggml_backend_dev_props p;
    ggml_backend_dev_get_props(d, &p);
    memset(out, 0, sizeof *out);
    out->index = i;
    snprintf(out->name, sizeof out->name, "%s", p.name ? p.name : "?");
    snprintf(out->description, sizeof out->description, "%s", p.description ? p.description : "");
    snprintf(out->backend, sizeof out->backend, "%s",
             ggml_backend_reg_name(ggml_backend_dev_backend_reg(d)));
    out->type = type_name(p.type);
    snprintf(out->id, sizeof out->id, "%s", p.device_id ? p.device_id : "");
    out->mem_free = p.memory_free;
    out->mem_total = p.memory_total;
    return true;
}

static bool is_offload_type(enum ggml_backend_dev_type t) {
    return t == GGML_BACKEND_DEVICE_TYPE_GPU || t == GGML_BACKEND_DEVICE_TYPE_IGPU;
}

static bool is_rpc(ggml_backend_dev_t d) {
    return strcmp(ggml_backend_reg_name(ggml_backend_dev_backend_reg(d)), "RPC") == 0;
}

static bool same_id_seen(ggml_backend_dev_t d, const size_t *idx, size_t n) {
    struct ggml_backend_dev_props p, q;
    ggml_backend_dev_get_props(d, &p);
    if (p.device_id == NULL)
        return false;
    for (size_t k = 0; k < n; k++) {
        ggml_backend_dev_get_props(ggml_backend_dev_get(idx[k]), &q);
        if (q.device_id != NULL && strcmp(p.device_id, q.device_id) == 0)
            return true;
    }
    return false;
}

/* llama.cpp's default device list (llama_prepare_model_devices): RPC servers first, then the GPUs
 * (one per device id), then the integrated GPUs of one backend when there is no discrete GPU. */
static size_t select_auto(size_t *idx, size_t cap) {
    size_t n = 0, n_gpu = 0;
    for (size_t i = 0; i < ggml_backend_dev_count() && n < cap; i++) {
        ggml_backend_dev_t d = ggml_backend_dev_get(i);
        if (ggml_backend_dev_type(d) == GGML_BACKEND_DEVICE_TYPE_GPU && is_rpc(d))
            idx[n++] = i;
    }
    size_t first_gpu = n;
    for (size_t i = 0; i < ggml_backend_dev_count() && n < cap; i++) {
        ggml_backend_dev_t d = ggml_backend_dev_get(i);
        if (ggml_backend_dev_type(d) == GGML_BACKEND_DEVICE_TYPE_GPU && !is_rpc(d) &&
            !same_id_seen(d, idx + first_gpu, n - first_gpu)) {
            idx[n++] = i;
            n_gpu++;
        }
    }
    if (n_gpu > 0)
        return n;
    ggml_backend_reg_t igpu_reg = NULL;
    for (size_t i = 0; i < ggml_backend_dev_count() && n < cap; i++) {
        ggml_backend_dev_t d = ggml_backend_dev_get(i);
        if (ggml_backend_dev_type(d) != GGML_BACKEND_DEVICE_TYPE_IGPU)
            continue;
        if (igpu_reg == NULL)
            igpu_reg = ggml_backend_dev_backend_reg(d);
        if (ggml_backend_dev_backend_reg(d) == igpu_reg)
            idx[n++] = i;
    }
    return n;
}

static size_t select_named(const char *reg_name, size_t *idx, size_t cap) {
    size_t n = 0;
    for (size_t i = 0; i < ggml_backend_dev_count() && n < cap; i++) {
        ggml_backend_dev_t d = ggml_backend_dev_get(i);
        if (is_offload_type(ggml_backend_dev_type(d)) &&
            strcasecmp(ggml_backend_reg_name(ggml_backend_dev_backend_reg(d)), reg_name) == 0)
            idx[n++] = i;
    }
    return n;
}

static const gpu_module *find_module(const char *stem) {
    for (size_t i = 0; i < G.n_mods; i++)
        if (strcmp(G.mods[i].backend, stem) == 0)
            return &G.mods[i];
    return NULL;
}

/* "found instead: CPU (AMD EPYC ...), Vulkan0 (...)" */
static size_t describe_found(char *out, size_t len) {
    size_t off = (size_t)snprintf(out, len, "devices found instead:");
    for (size_t i = 0; i < ggml_backend_dev_count() && off < len; i++) {
        ggml_backend_dev_t d = ggml_backend_dev_get(i);
        off += (size_t)snprintf(out + off, len - off, "%s %s (%s, %s)", i ? "," : "",
                                ggml_backend_dev_name(d), ggml_backend_dev_description(d),
                                type_name(ggml_backend_dev_type(d)));
    }
    return off < len ? off : len;
}

/* Why backend b has no device: its module is absent, failed to load, or found no device. */
static void why_missing(gpu_backend b, char *out, size_t len) {
    const struct backend_row *row = &backend_rows[b];
    char stem[40];
    snprintf(stem, sizeof stem, "%s", row->module);
    const gpu_module *m = find_module(stem);
    ggml_backend_reg_t reg = reg_by_name(row->reg);
    if (reg != NULL && m == NULL)
        snprintf(out, len, "the %s backend is registered but reports no GPU device", row->reg);
    else if (m == NULL)
        snprintf(out, len, "module libggml-%s.so is absent from %s (%s)", row->module, G.dir,
                 row->howto);
    else if (!m->loaded)
        snprintf(out, len, "module %s is present but failed to load: %s%s", m->path, m->error,
                 b == GPU_CUDA && strstr(m->error, "libcu") != NULL
                     ? " (it needs the NVIDIA driver's libcuda.so.1 and the CUDA 13 runtime: "
                       "libcudart.so.13, libcublas.so.13)"
                     : "");
    else if (b == GPU_VULKAN)
        snprintf(out, len,
                 "module %s loaded, but it found no usable Vulkan GPU (%zu devices; "
                 "ggml skips CPU-type Vulkan devices such as Mesa's lavapipe/llvmpipe unless "
                 "GGML_VK_VISIBLE_DEVICES names them)",
                 m->path, m->n_devices);
    else if (b == GPU_RPC)
        snprintf(out, len, "module %s loaded, but no RPC server was added (use --rpc HOST:PORT)",
                 m->path);
    else
        snprintf(out, len, "module %s loaded, but its driver reports no device", m->path);
}

shimmy_err gpu_select(gpu_backend b, size_t *idx, size_t cap, size_t *n, char *err, size_t errlen) {
    *n = 0;
    if (b == GPU_CPU)
        return SHIMMY_OK;
    if (b == GPU_AUTO) {
        *n = select_auto(idx, cap);
        return SHIMMY_OK;
    }
    if (b <= GPU_AUTO || b >= GPU__COUNT)
        return err_set(err, errlen, ERR_USAGE, "unknown GPU backend %d", (int)b);
    load_deferred(backend_rows[b].module);
    *n = select_named(backend_rows[b].reg, idx, cap);
    if (*n > 0)
        return SHIMMY_OK;
    char why[8192], found[2048];
    why_missing(b, why, sizeof why);
    describe_found(found, sizeof found);
    return err_set(err, errlen, ERR_MODEL_LOAD,
                   "--gpu-backend %s: no %s device: %s; %s (use --gpu-backend auto or cpu to run "
                   "without it)",
                   backend_rows[b].cli, backend_rows[b].reg, why, found);
}

void gpu_auto_summary(char *out, size_t len) {
    size_t idx[LIM_GPU_DEVICES];
    size_t n = select_auto(idx, LIM_GPU_DEVICES);
    if (n > 0) {
        size_t off = (size_t)snprintf(out, len, "auto uses");
        for (size_t k = 0; k < n && off < len; k++) {
            ggml_backend_dev_t d = ggml_backend_dev_get(idx[k]);
            off += (size_t)snprintf(out + off, len - off, "%s %s (%s)", k ? "," : "",
                                    ggml_backend_dev_name(d), ggml_backend_dev_description(d));
        }
        if (off < len)
            snprintf(out + off, len - off, ", layers fitted to free memory");
        return;
    }
    size_t off = (size_t)snprintf(out, len, "auto uses the CPU only: no GPU device");
    bool any = false;
    for (size_t i = 0; i < G.n_mods && off < len; i++) {
        const gpu_module *m = &G.mods[i];
        if (m->cpu_variant)
            continue;
        any = true;
        if (m->deferred)
            off += (size_t)snprintf(out + off, len - off, "; %s module not loaded: %s", m->backend,
                                    m->error);
        else if (!m->loaded)
            off += (size_t)snprintf(out + off, len - off, "; %s module failed to load", m->backend);
        else if (strcmp(m->backend, "vulkan") == 0 && getenv("GGML_VK_VISIBLE_DEVICES") == NULL)
            off += (size_t)snprintf(out + off, len - off,
                                    "; Vulkan module loaded with %zu devices (CPU-type Vulkan "
                                    "devices such as lavapipe are skipped unless "
                                    "GGML_VK_VISIBLE_DEVICES is set)",
                                    m->n_devices);
        else
            off += (size_t)snprintf(out + off, len - off, "; %s module loaded with %zu devices",
                                    m->backend, m->n_devices);
    }
    if (!any && off < len)
        off += (size_t)snprintf(out + off, len - off, "; no GPU module in %s", G.dir);
    char why[128];
    if (off < len && gpu_apple_silicon(why, sizeof why) && find_module("metal") == NULL)
        snprintf(out + off, len - off,
                 "; Apple Silicon (%s) needs the Metal module "
                 "(libggml-metal.so, from scripts/build-llama.sh on macOS)",
                 why);
}

/* ---- Apple Silicon ---- */

#ifdef __APPLE__
#include <sys/sysctl.h>

bool gpu_apple_silicon(char *why, size_t len) {
    int arm64 = 0, translated = 0;
    size_t sz = sizeof arm64;
    if (sysctlbyname("hw.optional.arm64", &arm64, &sz, NULL, 0) != 0)
        arm64 = 0;
    sz = sizeof translated;
    if (sysctlbyname("sysctl.proc_translated", &translated, &sz, NULL, 0) != 0)
        translated = 0;
    snprintf(why, len, "sysctl hw.optional.arm64 = %d%s", arm64,
             translated ? " (this process runs under Rosetta)" : "");
    return arm64 == 1;
}
#else
bool gpu_apple_silicon(char *why, size_t len) {
    char buf[512] = "";
    FILE *f = fopen("/proc/device-tree/compatible", "rb");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f != NULL)
        fclose(f);
    for (size_t i = 0; i < n; i++) /* NUL-separated list of strings */
        if (buf[i] == '\0')
            buf[i] = ' ';
    buf[n] = '\0';
    bool apple = strstr(buf, "apple,") != NULL;
    snprintf(why, len, "%s",
             f == NULL ? "no device tree"
             : apple   ? "device tree: Apple"
                       : "device tree: not Apple");
    return apple;
}
#endif

/* ---- RPC ---- */

typedef ggml_backend_reg_t (*rpc_add_fn)(const char *endpoint);
typedef void (*rpc_serve_fn)(const char *endpoint, const char *cache_dir, size_t n_threads,
                             size_t n_devices, ggml_backend_dev_t *devices);

/* The RPC backend's registry entry, loading the module on demand; NULL with the reason in err. */
static ggml_backend_reg_t rpc_reg(const char *flag, char *err, size_t errlen) {
    load_deferred("rpc");
    ggml_backend_reg_t rpc = reg_by_name("RPC");
    if (rpc == NULL) {
        char why[8192];
        why_missing(GPU_RPC, why, sizeof why);
        err_set(err, errlen, ERR_MODEL_LOAD, "%s: the RPC backend is not loaded: %s", flag, why);
    }
    return rpc;
}

/* Splits "HOST:PORT" (the last colon; [v6]:port keeps its brackets off). Returns 0 or -1. */
static int split_endpoint(const char *ep, char *host, size_t hlen, char *port, size_t plen) {
    const char *colon = strrchr(ep, ':');
    if (colon == NULL || colon == ep || colon[1] == '\0')
        return -1;
    const char *h = ep;
    size_t n = (size_t)(colon - ep);
    if (h[0] == '[' && n >= 2 && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    if (n == 0 || n >= hlen || strlen(colon + 1) >= plen)
        return -1;
    memcpy(host, h, n);
    host[n] = '\0';
    snprintf(port, plen, "%s", colon + 1);
    return 0;
}

/* A plain TCP connection to ep within LIM_RPC_CONNECT_MS, closed at once. Returns 0, or -1 with the
 * reason in why. */
static int rpc_reach(const char *ep, char *why, size_t len) {
    char host[256], port[16];
    if (split_endpoint(ep, host, sizeof host, port, sizeof port) != 0)
        return snprintf(why, len, "not HOST:PORT"), -1;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int g = getaddrinfo(host, port, &hints, &res);
    if (g != 0)
        return snprintf(why, len, "%s", gai_strerror(g)), -1;
    int rc = -1;
    snprintf(why, len, "no address");
    for (struct addrinfo *a = res; a != NULL && rc != 0; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        int e = connect(fd, a->ai_addr, a->ai_addrlen) == 0 ? 0 : errno;
        if (e == EINPROGRESS) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            socklen_t sl = sizeof e;
            int pr = poll(&p, 1, LIM_RPC_CONNECT_MS);
            if (pr == 0)
                e = ETIMEDOUT;
            else if (pr < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl) != 0)
                e = errno;
        }
        close(fd);
        if (e == 0)
            rc = 0;
        else
            snprintf(why, len, "%s", strerror(e));
    }
    freeaddrinfo(res);
    return rc;
}

/* Calls fn(endpoint, user) for each server of the list; stops at the first error. */
typedef shimmy_err (*rpc_each_fn)(const char *ep, void *user, char *err, size_t errlen);

static shimmy_err rpc_each(const char *servers, rpc_each_fn fn, void *user, char *err,
                           size_t errlen) {
    const char *p = servers;
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char ep[256], host[256], port[16];
        if (n > 0 && n < sizeof ep) {
            memcpy(ep, p, n);
            ep[n] = '\0';
        }
        long pn = 0;
        if (n == 0 || n >= sizeof ep || split_endpoint(ep, host, sizeof host, port, sizeof port) ||
            (pn = strtol(port, NULL, 10)) < 1 || pn > 65535 ||
            strspn(port, "0123456789") != strlen(port))
            return err_set(err, errlen, ERR_USAGE, "--rpc wants HOST:PORT[,HOST:PORT], not '%s'",
                           servers);
        shimmy_err rc = fn(ep, user, err, errlen);
        if (rc != SHIMMY_OK)
            return rc;
        p = end ? end + 1 : p + n;
    }
    return SHIMMY_OK;
}

static shimmy_err syntax_only(const char *ep, void *user, char *err, size_t errlen) {
    (void)ep, (void)user, (void)err, (void)errlen;
    return SHIMMY_OK;
}

static shimmy_err reach_one(const char *ep, void *user, char *err, size_t errlen) {
    (void)user;
    char why[256];
    if (rpc_reach(ep, why, sizeof why) != 0)
        return err_set(err, errlen, ERR_MODEL_LOAD,
                       "--rpc: cannot reach the RPC server at %s: %s "
                       "(is 'shimmy rpc-server --bind %s' running there?)",
                       ep, why, ep);
    return SHIMMY_OK;
}

struct add_ctx {
    rpc_add_fn add;
    bool skip_unreachable;
};

static shimmy_err add_one(const char *ep, void *user, char *err, size_t errlen) {
    struct add_ctx *c = user;
    shimmy_err rc = reach_one(ep, NULL, err, errlen);
    if (rc != SHIMMY_OK && c->skip_unreachable) {
        log_warn("rpc: %s: left out, the model loads on the devices that remain", err);
        return SHIMMY_OK;
    }
    if (rc != SHIMMY_OK)
        return rc;
    ggml_backend_reg_t reg = c->add(ep);
    if (reg == NULL)
        return err_set(err, errlen, ERR_MODEL_LOAD, "--rpc: the RPC server at %s has no device",
                       ep);
    ggml_backend_register(reg);
    log_info("rpc: added server %s (%zu devices)", ep, ggml_backend_reg_dev_count(reg));
    return SHIMMY_OK;
}

shimmy_err gpu_add_rpc(const char *servers, bool skip_unreachable, char *err, size_t errlen) {
    shimmy_err rc = rpc_each(servers, syntax_only, NULL, err, errlen);
    if (rc != SHIMMY_OK)
        return rc;
    ggml_backend_reg_t rpc = rpc_reg("--rpc", err, errlen);
    if (rpc == NULL)
        return ERR_MODEL_LOAD;
    struct add_ctx c = {(rpc_add_fn)(uintptr_t)ggml_backend_reg_get_proc_address(
                            rpc, "ggml_backend_rpc_add_server"),
                        skip_unreachable};
    if (c.add == NULL)
        return err_set(err, errlen, ERR_MODEL_LOAD,
                       "--rpc: the RPC module has no "
                       "ggml_backend_rpc_add_server");
    return rpc_each(servers, add_one, &c, err, errlen);
}

shimmy_err gpu_check_rpc(const char *servers, char *err, size_t errlen) {
    shimmy_err rc = rpc_each(servers, syntax_only, NULL, err, errlen);
    if (rc == SHIMMY_OK && rpc_reg("--rpc", err, errlen) == NULL)
        rc = ERR_MODEL_LOAD;
    return rc == SHIMMY_OK ? rpc_each(servers, reach_one, NULL, err, errlen) : rc;
}

/* The devices an RPC server lends: the one named, else every GPU, else the CPU (rpc-server's
 * rules). Returns the count. */
static size_t serve_devices(const char *name, ggml_backend_dev_t *out, size_t cap) {
    size_t n = 0;
    if (name != NULL) {
        ggml_backend_dev_t d = ggml_backend_dev_by_name(name);
        if (d != NULL)
            out[n++] = d;
        return n;
    }
    for (size_t i = 0; i < ggml_backend_dev_count() && n < cap; i++) {
        ggml_backend_dev_t d = ggml_backend_dev_get(i);
        if (is_offload_type(ggml_backend_dev_type(d)) && !is_rpc(d))
            out[n++] = d;
    }
    if (n == 0 && ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU) != NULL)
        out[n++] = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    return n;
}

shimmy_err gpu_rpc_serve(const char *endpoint, const char *cache_dir, size_t n_threads,
                         const char *device, char *err, size_t errlen) {
    ggml_backend_reg_t rpc = rpc_reg("rpc-server", err, errlen);
    if (rpc == NULL)
        return ERR_MODEL_LOAD;
    rpc_serve_fn serve = (rpc_serve_fn)(uintptr_t)ggml_backend_reg_get_proc_address(
        rpc, "ggml_backend_rpc_start_server");
    if (serve == NULL)
        return err_set(err, errlen, ERR_MODEL_LOAD,
                       "the RPC module has no "
                       "ggml_backend_rpc_start_server");
    if (device != NULL)
        load_deferred(strncmp(device, "Vulkan", 6) == 0 ? "vulkan"
                      : strncmp(device, "CUDA", 4) == 0 ? "cuda"
                                                        : "");
    ggml_backend_dev_t devs[LIM_GPU_DEVICES];
    size_t n = serve_devices(device, devs, LIM_GPU_DEVICES);
    if (n == 0) {
        char found[2048];
        describe_found(found, sizeof found);
        return err_set(err, errlen, ERR_USAGE, "--device %s: no such device; %s", device, found);
    }
    if (n_threads == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = c > 0 ? (size_t)c : 1;
    }
    fflush(stdout);
    serve(endpoint, cache_dir, n_threads, n, devs); /* returns only when it could not start */
    return err_set(err, errlen, ERR_MODEL_LOAD,
                   "the RPC server could not start on %s (the "
                   "reason is printed above: address in use?)",
                   endpoint);
}
