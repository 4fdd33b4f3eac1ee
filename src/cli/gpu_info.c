/* cli/gpu_info: `shimmy gpu-info` (every backend module found and its outcome, every device, what
 * `auto` would choose), and the GPU flags shared by the commands that load models: --gpu-backend
 * (or SHIMMY_GPU_BACKEND), --gpu-layers, --main-gpu, --tensor-split, --rpc, with the start-up
 * check that refuses a named backend that has no device. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/limits.h"
#include "core/log.h"
#include "engine/engine.h"
#include "gpu/gpu.h"

static const char gpu_info_help[] =
    "usage: shimmy gpu-info [--json]\n"
    "\n"
    "Lists the backend modules shimmy finds in its library folder (build/lib, or\n"
    "SHIMMY_BACKEND_DIR) and whether each loaded (with the loader's message when not), every\n"
    "device they provide with its free and total memory, and what --gpu-backend auto chooses.\n"
    "\n"
    "  --json   the same as one JSON object\n"
    "  --help   this help\n";

/* ---- flags ---- */

static int parse_split(const char *cmd, const char *arg, engine_options *eng) {
    memset(eng->tensor_split, 0, sizeof eng->tensor_split);
    const char *p = arg;
    for (int k = 0; *p != '\0'; k++) {
        char *end;
        double v = strtod(p, &end);
        if (k >= LIM_GPU_DEVICES || end == p || v < 0 || v > 1e6 || (*end != ',' && *end != '\0'))
            return cli_usage_error(cmd,
                                   "--tensor-split wants up to %d non-negative numbers "
                                   "separated by commas, e.g. 3,1; not '%s'",
                                   LIM_GPU_DEVICES, arg);
        eng->tensor_split[k] = (float)v;
        p = *end == ',' ? end + 1 : end;
    }
    return 1;
}

static int parse_layers(const char *cmd, const char *arg, engine_options *eng) {
    long v;
    if (strcmp(arg, "auto") == 0) {
        eng->gpu_layers_mode = GPU_LAYERS_AUTO;
    } else if (strcmp(arg, "all") == 0) {
        eng->gpu_layers_mode = GPU_LAYERS_ALL;
    } else if (cli_parse_int(arg, 0, 100000, &v) == 0) {
        eng->gpu_layers_mode = GPU_LAYERS_COUNT;
        eng->gpu_layers = (int)v;
    } else {
        return cli_usage_error(cmd, "--gpu-layers wants N, auto or all, not '%s'", arg);
    }
    return 1;
}

/* --gpu-backend NAME=B, --gpu-layers NAME=N, --ctx NAME=N, ...: per-model choices, kept for
 * the process. */
static model_gpu_override overrides[LIM_MODELS];

static const char *flag_name(int opt) {
    switch (opt) {
    case CLI_OPT_GPU_BACKEND:
        return "--gpu-backend";
    case CLI_OPT_GPU_LAYERS:
        return "--gpu-layers";
    case CLI_OPT_CACHE_TYPE_K:
        return "--cache-type-k";
    case CLI_OPT_CACHE_TYPE_V:
        return "--cache-type-v";
    default:
        return "--flash-attn";
    }
}

/* --cache-type-k/v T and --flash-attn on|off|auto (llama-server's names and messages). */
static int parse_kv(const char *cmd, int opt, const char *arg, engine_options *eng) {
    if (opt == CLI_OPT_FLASH_ATTN) {
        if (engine_flash_attn_parse(arg, &eng->flash_attn) != 0)
            return cli_usage_error(cmd, "--flash-attn wants on, off or auto, not '%s'", arg);
        return 1;
    }
    engine_kv_type *t = opt == CLI_OPT_CACHE_TYPE_K ? &eng->cache_type_k : &eng->cache_type_v;
    if (engine_kv_type_parse(arg, t) != 0)
        return cli_usage_error(cmd, "%s: unsupported cache type '%s'; valid types: %s",
                               flag_name(opt), arg, engine_kv_type_list());
    return 1;
}

/* A quantized V cache needs flash attention (llama.cpp refuses the context otherwise). */
static int check_kv(const char *cmd, engine_kv_type v, engine_flash_attn fa, const char *model) {
    if (!engine_kv_type_quantized(v) || fa != FLASH_ATTN_OFF)
        return 0;
    return cli_usage_error(cmd,
                           "%s%s%s--cache-type-v %s: a quantized V cache requires flash "
                           "attention to be enabled (--flash-attn on or auto)",
                           model ? "model '" : "", model ? model : "", model ? "': " : "",
                           engine_kv_type_name(v));
}

int cli_check_kv_options(const char *cmd, const engine_options *eng) {
    if (check_kv(cmd, eng->cache_type_v, eng->flash_attn, NULL) != 0)
        return 2;
    for (int i = 0; i < eng->n_overrides; i++) {
        engine_options one = *eng;
        engine_options_for_model(&one, eng->overrides[i].model);
        if (check_kv(cmd, one.cache_type_v, one.flash_attn, eng->overrides[i].model) != 0)
            return 2;
    }
    return 0;
}

model_gpu_override *cli_override_add(const char *cmd, const char *model, size_t len,
                                     engine_options *eng) {
    if (eng->n_overrides >= LIM_MODELS) {
        cli_usage_error(cmd, "at most %d per-model engine options", LIM_MODELS);
        return NULL;
    }
    char *name = strndup(model, len); /* lives as long as the process, like argv */
    if (name == NULL) {
        cli_usage_error(cmd, "out of memory");
        return NULL;
    }
    model_gpu_override *v = &overrides[eng->n_overrides++];
    *v = (model_gpu_override){.model = name};
    eng->overrides = overrides;
    return v;
}

static int parse_override(const char *cmd, int opt, const char *arg, engine_options *eng) {
    const char *eq = strchr(arg, '=');
    if (eq == arg || eq[1] == '\0')
        return cli_usage_error(cmd, "%s wants MODEL=VALUE, not '%s'", flag_name(opt), arg);
    engine_options one = *eng; /* parse the value with the shared rules */
    int rc = opt == CLI_OPT_GPU_BACKEND  ? cli_parse_gpu_flag(cmd, opt, eq + 1, &one)
             : opt == CLI_OPT_GPU_LAYERS ? parse_layers(cmd, eq + 1, &one)
                                         : parse_kv(cmd, opt, eq + 1, &one);
    if (rc != 1)
        return rc;
    model_gpu_override *v = cli_override_add(cmd, arg, (size_t)(eq - arg), eng);
    if (v == NULL)
        return 2;
    if (opt == CLI_OPT_GPU_BACKEND) {
        v->set_backend = true;
        v->backend = one.gpu_backend;
    } else if (opt == CLI_OPT_GPU_LAYERS) {
        v->set_layers = true;
        v->layers_mode = one.gpu_layers_mode;
        v->layers = one.gpu_layers;
    } else if (opt == CLI_OPT_CACHE_TYPE_K) {
        v->set_cache_k = true;
        v->cache_k = one.cache_type_k;
    } else if (opt == CLI_OPT_CACHE_TYPE_V) {
        v->set_cache_v = true;
        v->cache_v = one.cache_type_v;
    } else {
        v->set_flash_attn = true;
        v->flash_attn = one.flash_attn;
    }
    return 1;
}

/* --model-draft [NAME=]PATH: NAME is what precedes the first '=' unless the whole argument is a
 * file. */
static int parse_draft(const char *cmd, const char *arg, engine_options *eng) {
    const char *eq = strchr(arg, '=');
    const char *path = eq != NULL && access(arg, F_OK) != 0 ? eq + 1 : arg;
    if (path[0] == '\0' || path == arg + 1)
        return cli_usage_error(cmd, "--model-draft wants [NAME=]PATH, not '%s'", arg);
    if (access(path, R_OK) != 0)
        return cli_usage_error(cmd, "--model-draft: cannot read %s: %s", path, strerror(errno));
    if (path == arg) {
        eng->draft_path = path;
        return 1;
    }
    if (eng->n_overrides >= LIM_MODELS)
        return cli_usage_error(cmd, "at most %d per-model GPU options", LIM_MODELS);
    char *model = strndup(arg, (size_t)(eq - arg)); /* lives as long as the process */
    if (model == NULL)
        return cli_usage_error(cmd, "out of memory");
    overrides[eng->n_overrides++] = (model_gpu_override){.model = model, .draft_path = path};
    eng->overrides = overrides;
    return 1;
}

/* The speculative decoding flags (llama-server's names and ranges). */
static int parse_spec(const char *cmd, int opt, const char *arg, engine_options *eng) {
    long v;
    double d;
    switch (opt) {
    case CLI_OPT_MODEL_DRAFT:
        return parse_draft(cmd, arg, eng);
    case CLI_OPT_SPEC_TYPE:
        if (engine_spec_type_parse(arg, &eng->spec_type) != 0)
            return cli_usage_error(cmd,
                                   "--spec-type wants none, draft-simple or ngram-simple, "
                                   "not '%s'",
                                   arg);
        return 1;
    case CLI_OPT_DRAFT_MAX:
    case CLI_OPT_DRAFT_MIN:
        if (cli_parse_int(arg, 0, LIM_DRAFT_TOKENS, &v) != 0)
            return cli_usage_error(cmd, "%s must be an integer from 0 to %d",
                                   opt == CLI_OPT_DRAFT_MAX ? "--draft-max" : "--draft-min",
                                   LIM_DRAFT_TOKENS);
        *(opt == CLI_OPT_DRAFT_MAX ? &eng->draft_max : &eng->draft_min) = (int)v;
        return 1;
    case CLI_OPT_DRAFT_P_MIN:
        if (cli_parse_float(arg, 0, 1, &d) != 0)
            return cli_usage_error(cmd, "--draft-p-min must be a number from 0 to 1");
        eng->draft_p_min = (float)d;
        return 1;
    case CLI_OPT_NGRAM_N:
    case CLI_OPT_NGRAM_M:
        if (cli_parse_int(arg, 1, LIM_DRAFT_TOKENS, &v) != 0)
            return cli_usage_error(cmd, "%s must be an integer from 1 to %d",
                                   opt == CLI_OPT_NGRAM_N ? "--spec-ngram-simple-size-n"
                                                          : "--spec-ngram-simple-size-m",
                                   LIM_DRAFT_TOKENS);
        *(opt == CLI_OPT_NGRAM_N ? &eng->ngram_n : &eng->ngram_m) = (int)v;
        return 1;
    default:
        return 0;
    }
}

/* The speculation flags together: a draft model means draft-simple unless --spec-type says
 * otherwise, and draft-simple needs one (for every model, or for each model that has one). */
int cli_check_spec_options(const char *cmd, const engine_options *eng) {
    bool per_model = false;
    for (int i = 0; i < eng->n_overrides; i++)
        per_model = per_model || eng->overrides[i].draft_path != NULL;
    if (eng->spec_type == SPEC_NGRAM && eng->draft_path != NULL) /* a model's own draft wins */
        return cli_usage_error(cmd, "--spec-type ngram-simple does not use a draft model: drop "
                                    "--model-draft, or use --spec-type draft-simple");
    if (eng->spec_type == SPEC_DRAFT && eng->draft_path == NULL && !per_model)
        return cli_usage_error(cmd, "--spec-type draft-simple needs a draft model "
                                    "(--model-draft PATH)");
    if (eng->draft_min > (eng->draft_max > 0 ? eng->draft_max : LIM_DRAFT_MAX_DEFAULT))
        return cli_usage_error(cmd, "--draft-min %d is above --draft-max %d", eng->draft_min,
                               eng->draft_max > 0 ? eng->draft_max : LIM_DRAFT_MAX_DEFAULT);
    return 0;
}

int cli_parse_gpu_flag(const char *cmd, int opt, const char *arg, engine_options *eng) {
    long v;
    if (opt >= CLI_OPT_MODEL_DRAFT && opt <= CLI_OPT_NGRAM_M)
        return parse_spec(cmd, opt, arg, eng);
    if (opt >= CLI_OPT_GPU_BACKEND && opt <= CLI_OPT_FLASH_ATTN && opt != CLI_OPT_MAIN_GPU &&
        opt != CLI_OPT_TENSOR_SPLIT && opt != CLI_OPT_RPC && strchr(arg, '=') != NULL)
        return parse_override(cmd, opt, arg, eng);
    switch (opt) {
    case CLI_OPT_GPU_BACKEND:
        if (gpu_backend_parse(arg, &eng->gpu_backend) != 0)
            return cli_usage_error(cmd,
                                   "--gpu-backend wants auto, cpu, cuda, vulkan, metal, "
                                   "opencl or rpc, not '%s'",
                                   arg);
        return 1;
    case CLI_OPT_GPU_LAYERS:
        return parse_layers(cmd, arg, eng);
    case CLI_OPT_MAIN_GPU:
        if (cli_parse_int(arg, 0, LIM_GPU_DEVICES - 1, &v) != 0)
            return cli_usage_error(cmd, "--main-gpu wants a device number from 0 to %d",
                                   LIM_GPU_DEVICES - 1);
        eng->single_gpu = true;
        eng->main_gpu = (int)v;
        return 1;
    case CLI_OPT_TENSOR_SPLIT:
        return parse_split(cmd, arg, eng);
    case CLI_OPT_RPC:
        eng->rpc_servers = arg;
        return 1;
    case CLI_OPT_CACHE_TYPE_K:
    case CLI_OPT_CACHE_TYPE_V:
    case CLI_OPT_FLASH_ATTN:
        return parse_kv(cmd, opt, arg, eng);
    default:
        return 0;
    }
}

int cli_gpu_defaults(const char *cmd, engine_options *eng) {
    const char *env = getenv("SHIMMY_GPU_BACKEND");
    if (env != NULL && env[0] != '\0' && gpu_backend_parse(env, &eng->gpu_backend) != 0)
        return cli_usage_error(cmd,
                               "SHIMMY_GPU_BACKEND wants auto, cpu, cuda, vulkan, metal, "
                               "opencl or rpc, not '%s'",
                               env);
    return 0;
}

int cli_engine_start(const char *cmd, const engine_options *eng) {
    char err[8192], note[2048];
    if (cli_check_kv_options(cmd, eng) != 0 || cli_check_spec_options(cmd, eng) != 0)
        return 2;
    if (engine_start(eng, note, sizeof note, err, sizeof err) != SHIMMY_OK) {
        fprintf(stderr, "shimmy %s: %s\n", cmd, err);
        return 1;
    }
    log_info("gpu: %s", note);
    return 0;
}

/* ---- gpu-info ---- */

static double mib(uint64_t b) {
    return (double)b / 1048576.0;
}

static void print_text(void) {
    printf("backend modules in %s:\n", gpu_lib_dir());
    for (size_t i = 0; i < gpu_module_count(); i++) {
        const gpu_module *m = gpu_module_get(i);
        const char *file = strrchr(m->path, '/') ? strrchr(m->path, '/') + 1 : m->path;
        if (m->loaded)
            printf("  %-30s loaded: %s, %zu device%s\n", file, m->reg_name, m->n_devices,
                   m->n_devices == 1 ? "" : "s");
        else
            printf("  %-30s not loaded: %s\n", file, m->error);
    }
    if (gpu_module_count() == 0)
        printf("  (none)\n");
    printf("devices:\n");
    for (size_t i = 0; i < gpu_device_count(); i++) {
        gpu_device d;
        gpu_device_get(i, &d);
        printf("  %-10s %-6s %-8s %s; %.0f MiB free of %.0f MiB%s%s\n", d.name, d.type, d.backend,
               d.description, mib(d.mem_free), mib(d.mem_total), d.id[0] ? "; id " : "", d.id);
    }
    char line[2048], why[128];
    bool apple = gpu_apple_silicon(why, sizeof why);
    printf("Apple Silicon: %s (%s)\n", apple ? "yes" : "no", why);
    gpu_auto_summary(line, sizeof line);
    printf("%s\n", line);
}

static void json_str(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void print_json(void) {
    printf("{\"lib_dir\":");
    json_str(gpu_lib_dir());
    printf(",\"modules\":[");
    for (size_t i = 0; i < gpu_module_count(); i++) {
        const gpu_module *m = gpu_module_get(i);
        printf("%s{\"path\":", i ? "," : "");
        json_str(m->path);
        printf(",\"backend\":");
        json_str(m->backend);
        printf(",\"loaded\":%s,\"devices\":%zu,\"error\":", m->loaded ? "true" : "false",
               m->n_devices);
        json_str(m->error);
        printf("}");
    }
    printf("],\"devices\":[");
    for (size_t i = 0; i < gpu_device_count(); i++) {
        gpu_device d;
        gpu_device_get(i, &d);
        printf("%s{\"name\":", i ? "," : "");
        json_str(d.name);
        printf(",\"description\":");
        json_str(d.description);
        printf(",\"backend\":");
        json_str(d.backend);
        printf(",\"type\":\"%s\",\"memory_free\":%llu,\"memory_total\":%llu}", d.type,
               (unsigned long long)d.mem_free, (unsigned long long)d.mem_total);
    }
    char line[2048], why[128];
    bool apple = gpu_apple_silicon(why, sizeof why);
    printf("],\"apple_silicon\":%s,\"apple_silicon_evidence\":", apple ? "true" : "false");
    json_str(why);
    gpu_auto_summary(line, sizeof line);
    printf(",\"auto\":");
    json_str(line);
    printf("}\n");
}

int cli_gpu_info(int argc, char **argv) {
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(gpu_info_help, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--json") != 0)
            return cli_usage_error("gpu-info", "unknown option '%s'", argv[i]);
        json = true;
    }
    char err[4096];
    if (engine_global_init(NULL, err, sizeof err) != SHIMMY_OK) {
        fprintf(stderr, "shimmy gpu-info: %s\n", err);
        return 1;
    }
    if (json)
        print_json();
    else
        print_text();
    return 0;
}
