/* gpu/backends: gpu.h. Loads the backend modules of one folder into ggml's registry, one by one,
 * keeping each module's outcome (and the loader's message when it failed); lists devices; picks
 * the devices of a model (llama.cpp's default rules for `auto`, or one named backend, never a
 * silent fallback to the CPU); adds RPC servers. The only ggml API used is ggml-backend.h. */
#include "gpu/gpu.h"

#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/log.h"
#include "ggml-backend.h"

#define MAX_MODULES 64

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
    gpu_module mods[MAX_MODULES];
    size_t n_mods;
    char captured[512]; /* last error the ggml loader logged while a module was loading */
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

const char *gpu_lib_dir(void) { return G.dir; }

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
    while ((e = readdir(d)) != NULL && G.n_mods < MAX_MODULES) {
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
 * private dlopen; -1 with the dynamic loader's message in m->error when it cannot be opened. */
static int probe_score(gpu_module *m) {
    void *h = dlopen(m->path, RTLD_NOW | RTLD_LOCAL);
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

/* CPU variants: score each like llama.cpp's loader does and load only the best one. */
static void load_cpu(void) {
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
        if (m->cpu_variant)
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

static void cpu_failure(char *err, size_t errlen) {
    size_t off = (size_t)snprintf(err, errlen, "no CPU backend module (libggml-cpu-*.so) could be "
                                  "loaded from %s", G.dir);
    for (size_t i = 0; i < G.n_mods && off < errlen; i++)
        if (G.mods[i].cpu_variant)
            off += (size_t)snprintf(err + off, errlen - off, "; %s: %s", G.mods[i].backend,
                                    G.mods[i].error);
    if (off < errlen && G.n_mods == 0)
        snprintf(err + off, errlen - off, " (no libggml-*.so there: run scripts/deps.sh, or set "
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

size_t gpu_module_count(void) { return G.n_mods; }

const gpu_module *gpu_module_get(size_t i) { return i < G.n_mods ? &G.mods[i] : NULL; }

/* ---- devices ---- */

static const char *type_name(enum ggml_backend_dev_type t) {
    switch (t) {
    case GGML_BACKEND_DEVICE_TYPE_CPU: return "cpu";
    case GGML_BACKEND_DEVICE_TYPE_GPU: return "gpu";
    case GGML_BACKEND_DEVICE_TYPE_IGPU: return "igpu";
    case GGML_BACKEND_DEVICE_TYPE_ACCEL: return "accel";
    default: return "meta";
    }
}

size_t gpu_device_count(void) { return ggml_backend_dev_count(); }

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
        snprintf(out, len, "module %s loaded, but it found no usable Vulkan GPU (%zu devices; "
                 "ggml skips CPU-type Vulkan devices such as Mesa's lavapipe/llvmpipe unless "
                 "GGML_VK_VISIBLE_DEVICES names them)", m->path, m->n_devices);
    else if (b == GPU_RPC)
        snprintf(out, len, "module %s loaded, but no RPC server was added (use --rpc HOST:PORT)",
                 m->path);
    else
        snprintf(out, len, "module %s loaded, but its driver reports no device", m->path);
}

shimmy_err gpu_select(gpu_backend b, size_t *idx, size_t cap, size_t *n, char *err,
                      size_t errlen) {
    *n = 0;
    if (b == GPU_CPU)
        return SHIMMY_OK;
    if (b == GPU_AUTO) {
        *n = select_auto(idx, cap);
        return SHIMMY_OK;
    }
    if (b <= GPU_AUTO || b >= GPU__COUNT)
        return err_set(err, errlen, ERR_USAGE, "unknown GPU backend %d", (int)b);
    *n = select_named(backend_rows[b].reg, idx, cap);
    if (*n > 0)
        return SHIMMY_OK;
    char why[8192], found[2048];
    why_missing(b, why, sizeof why);
    describe_found(found, sizeof found);
    return err_set(err, errlen, ERR_MODEL_LOAD,
                   "--gpu-backend %s: no %s device: %s; %s (use --gpu-backend auto or cpu to run "
                   "without it)", backend_rows[b].cli, backend_rows[b].reg, why, found);
}

void gpu_auto_summary(char *out, size_t len) {
    size_t idx[GPU_MAX_DEVICES];
    size_t n = select_auto(idx, GPU_MAX_DEVICES);
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
        if (!m->loaded)
            off += (size_t)snprintf(out + off, len - off, "; %s module failed to load", m->backend);
        else if (strcmp(m->backend, "vulkan") == 0 && getenv("GGML_VK_VISIBLE_DEVICES") == NULL)
            off += (size_t)snprintf(out + off, len - off,
                                    "; Vulkan module loaded with %zu devices (CPU-type Vulkan "
                                    "devices such as lavapipe are skipped unless "
                                    "GGML_VK_VISIBLE_DEVICES is set)", m->n_devices);
        else
            off += (size_t)snprintf(out + off, len - off, "; %s module loaded with %zu devices",
                                    m->backend, m->n_devices);
    }
    if (!any && off < len)
        off += (size_t)snprintf(out + off, len - off, "; no GPU module in %s", G.dir);
    char why[128];
    if (off < len && gpu_apple_silicon(why, sizeof why) && find_module("metal") == NULL)
        snprintf(out + off, len - off, "; Apple Silicon (%s) needs the Metal module "
                 "(libggml-metal.so, from scripts/build-llama.sh on macOS)", why);
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
    snprintf(why, len, "%s", f == NULL ? "no device tree" : apple ? "device tree: Apple" : "device tree: not Apple");
    return apple;
}
#endif

/* ---- RPC ---- */

typedef ggml_backend_reg_t (*rpc_add_fn)(const char *endpoint);

shimmy_err gpu_add_rpc(const char *servers, char *err, size_t errlen) {
    ggml_backend_reg_t rpc = reg_by_name("RPC");
    if (rpc == NULL) {
        char why[8192];
        why_missing(GPU_RPC, why, sizeof why);
        return err_set(err, errlen, ERR_MODEL_LOAD, "--rpc: the RPC backend is not loaded: %s", why);
    }
    rpc_add_fn add = (rpc_add_fn)(uintptr_t)ggml_backend_reg_get_proc_address(
        rpc, "ggml_backend_rpc_add_server");
    if (add == NULL)
        return err_set(err, errlen, ERR_MODEL_LOAD, "--rpc: the RPC module has no "
                       "ggml_backend_rpc_add_server");
    const char *p = servers;
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char ep[256];
        const char *colon = memchr(p, ':', n);
        if (n == 0 || n >= sizeof ep || colon == NULL || colon == p || colon == p + n - 1)
            return err_set(err, errlen, ERR_USAGE, "--rpc wants HOST:PORT[,HOST:PORT], not '%s'",
                           servers);
        memcpy(ep, p, n);
        ep[n] = '\0';
        ggml_backend_reg_t reg = add(ep);
        if (reg == NULL)
            return err_set(err, errlen, ERR_MODEL_LOAD, "--rpc: cannot add server %s", ep);
        ggml_backend_register(reg);
        log_info("rpc: added server %s (%zu devices)", ep, ggml_backend_reg_dev_count(reg));
        p = end ? end + 1 : p + n;
    }
    return SHIMMY_OK;
}
