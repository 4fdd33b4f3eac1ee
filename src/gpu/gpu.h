/* gpu: the backend modules that shimmy loads at run time, the device registry built from them,
 * and the choice of devices for a model. ggml's device registry is the only source of truth for
 * what exists: nothing here looks at compile-time flags, and nothing spawns vulkaninfo or clinfo.
 * See docs/GPU.md and docs/adr/0001-gpu-backends.md.
 *
 * Modules are the libggml-*.so files of one folder (the executable's lib/, or SHIMMY_BACKEND_DIR):
 * the best-scoring CPU variant (libggml-cpu-<variant>.so, as llama.cpp's loader picks it) and every
 * other backend module present. Each module's outcome is kept, with the loader's message when it
 * failed, so that a forced backend without a device can say why.
 *
 * This header includes no ggml header: devices are named by their index in ggml's registry
 * (ggml_backend_dev_get(i)). Thread-safety: gpu_init runs once (later calls return its first
 * result); after it returns, every function here may be called from any thread. */
#ifndef SHIMMY_GPU_H
#define SHIMMY_GPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/limits.h"

typedef enum gpu_backend {
    GPU_AUTO = 0, /* every GPU the registry reports, by llama.cpp's default rules */
    GPU_CPU,      /* offload nothing */
    GPU_CUDA,
    GPU_VULKAN,
    GPU_METAL,
    GPU_OPENCL,
    GPU_RPC,
    GPU__COUNT
} gpu_backend;

/* How many layers to offload (--gpu-layers). */
typedef enum gpu_layers_mode {
    GPU_LAYERS_AUTO = 0, /* as many as fit in each device's free memory (gpu/fit.h) */
    GPU_LAYERS_ALL,      /* every layer, the output layer included */
    GPU_LAYERS_COUNT     /* exactly N */
} gpu_layers_mode;

/* Parses "auto|cpu|cuda|vulkan|metal|opencl|rpc" (case-insensitive). Returns 0, or -1 when s is
 * none of them. */
int gpu_backend_parse(const char *s, gpu_backend *out);
/* The command-line name of b ("auto", "cuda", ...). */
const char *gpu_backend_name(gpu_backend b);

typedef struct gpu_module {
    char path[4096];   /* the module file */
    char backend[32];  /* from the file name: "vulkan", "cuda", "cpu-haswell", ... */
    bool cpu_variant;  /* one of the libggml-cpu-*.so variants */
    int score;         /* CPU variants: ggml_backend_score() on this machine, 0 = unsupported;
                          -1 for other modules */
    bool loaded;       /* registered with ggml */
    char reg_name[32]; /* the backend's registry name when loaded ("Vulkan", "CUDA", "CPU") */
    size_t n_devices;  /* devices its backend registered (0 when not loaded) */
    char error[512];   /* why it is not loaded (the loader's message), "" when loaded */
    bool deferred;     /* not loaded at start-up because a cheap probe found nothing for it
                          (no GPU device node; RPC: no --rpc): error says which; loaded when
                          its backend is named (gpu_select, gpu_add_rpc), docs/adr/0006 */
} gpu_module;

typedef struct gpu_device {
    size_t index;  /* in ggml's device registry */
    char name[64]; /* "CUDA0", "Vulkan0", "CPU" */
    char description[256];
    char backend[32];   /* registry name of its backend: "CUDA", "Vulkan", "CPU", "RPC" */
    const char *type;   /* "cpu", "gpu", "igpu", "accel", "meta" (static) */
    char id[64];        /* PCI bus id when the backend knows it, else "" */
    uint64_t mem_free;  /* bytes, as the backend reports it now */
    uint64_t mem_total; /* bytes */
} gpu_device;

/* Loads the modules of lib_dir (NULL: $SHIMMY_BACKEND_DIR, else the executable's folder + /lib,
 * else + /../lib). Errors: ERR_INTERNAL when no CPU module could be loaded (with the folder and
 * each CPU module's reason). Only the first call does the work. */
shimmy_err gpu_init(const char *lib_dir, char *err, size_t errlen);
/* Before gpu_init: load the CPU variant stem ("cpu-haswell") alone instead of scoring every
 * libggml-cpu-*.so. For an engine process, whose server already learnt what this machine's best
 * variant is (docs/adr/0005); when the variant is not in the folder or fails to load, gpu_init
 * scores them all as usual. Ignored after gpu_init and for a stem that is not a CPU variant's. */
void gpu_cpu_variant_use(const char *stem);
/* The stem of the CPU variant loaded ("cpu-haswell"), "" when none (or before gpu_init).
 * Borrowed; valid for the process. */
const char *gpu_cpu_variant(void);
/* The folder modules were loaded from ("" before gpu_init). */
const char *gpu_lib_dir(void);

size_t gpu_module_count(void);
/* Module i (sorted by file name), or NULL past the end. Borrowed; valid for the process. */
const gpu_module *gpu_module_get(size_t i);

size_t gpu_device_count(void);
/* Fills *out with registry device i (memory figures are read now). Returns false past the end. */
bool gpu_device_get(size_t i, gpu_device *out);

/* Chooses the devices a model offloads to, in the order llama.cpp splits layers over them:
 * GPU_AUTO = RPC servers, then GPUs (one per PCI id), then integrated GPUs only when there is no
 * discrete one (llama.cpp's default); a named backend = that backend's GPU/iGPU devices; GPU_CPU
 * = none. Writes registry indices to idx (cap entries) and their count to *n.
 * Errors: ERR_MODEL_LOAD when a named backend has no device, with what was found instead and
 * why the requested one is missing (module absent, or present but failed to load and the
 * loader's message, or loaded with no usable device). */
shimmy_err gpu_select(gpu_backend b, size_t *idx, size_t cap, size_t *n, char *err, size_t errlen);

/* One line that says what `auto` picks on this machine and why (e.g. "CPU only: no GPU device;
 * Vulkan module loaded with 0 devices ..."). */
void gpu_auto_summary(char *out, size_t len);

/* Whether this machine is Apple Silicon, from the hardware rather than the OS name: sysctl
 * hw.optional.arm64 on macOS (true under Rosetta too), the device tree ("apple,...") on Linux.
 * Writes the evidence to why. Apple Silicon runs on the Metal backend (libggml-metal.so). */
bool gpu_apple_silicon(char *why, size_t len);

/* Adds llama.cpp RPC servers ("HOST:PORT[,HOST:PORT]") as devices, loading the RPC module on
 * demand. Each server is first reached with a plain TCP connection (3 s at most): ggml
 * aborts the process when it cannot connect. skip_unreachable: a server that cannot be reached
 * is left out with a warning (an engine process reloading after an RPC server died uses what
 * is left); otherwise it is an error. Errors: ERR_USAGE for a malformed list; ERR_MODEL_LOAD
 * when the RPC module is absent or fails to load, or a server cannot be reached or added.
 * Not thread-safe with itself. */
shimmy_err gpu_add_rpc(const char *servers, bool skip_unreachable, char *err, size_t errlen);
/* Checks the list is well formed, the RPC module loads, and each server can be reached, without
 * registering anything (the server process of `serve`: each model's engine process adds the
 * servers itself, and an RPC server serves one client at a time). Errors as gpu_add_rpc. */
shimmy_err gpu_check_rpc(const char *servers, char *err, size_t errlen);
/* Runs llama.cpp's RPC server on endpoint ("HOST:PORT") with this machine's devices (device
 * NULL: every GPU, else the CPU; else the one named), n_threads for the CPU device (0 = cores),
 * tensors cached in cache_dir (NULL = none). Returns only when the server could not start:
 * ERR_MODEL_LOAD with the reason (ggml prints its own on stderr). */
shimmy_err gpu_rpc_serve(const char *endpoint, const char *cache_dir, size_t n_threads,
                         const char *device, char *err, size_t errlen);

#endif
