/* cli: one function per subcommand, dispatched from the table in main.c. Each returns the process
 * exit code: 0 success, 1 failure, 2 usage error. */
#ifndef SHIMMY_CLI_H
#define SHIMMY_CLI_H

#include <stdbool.h>
#include <stddef.h>

int cli_serve(int argc, char **argv);
int cli_generate(int argc, char **argv);
int cli_run(int argc, char **argv);
int cli_list(int argc, char **argv);
int cli_discover(int argc, char **argv);
int cli_probe(int argc, char **argv);
int cli_gpu_info(int argc, char **argv);
int cli_init(int argc, char **argv);
int cli_rpc_server(int argc, char **argv);
int cli_config(int argc, char **argv);
int cli_pull(int argc, char **argv);
int cli_rm(int argc, char **argv);

/* Shared by subcommands: prints "shimmy CMD: MSG\nTry 'shimmy CMD --help'." and returns 2. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* While where is set (borrowed; NULL = none), cli_usage_error prints "shimmy CMD: WHERE: MSG"
 * without the --help hint: the config file reports its line numbers through it. Not
 * thread-safe (start-up and `config check` only). */
void cli_usage_where(const char *where);

/* ---- the --config file (cli/config.c) ---- */
struct ini_file;
/* Hands one serve flag from the file to its parser: flag is the long name without dashes,
 * value its argument (a model section's per-model flag as "SECTION=VALUE"). Returns 0, or
 * nonzero after reporting a usage error. */
typedef int (*cli_config_flag_fn)(void *ud, const char *flag, const char *value);
/* Reads and parses the file at path into *out (free with ini_free, also on error); syntax
 * errors printed as "PATH:LINE: message". Returns the number of errors (1 when unreadable). */
int cli_config_read(const char *path, struct ini_file *out);
/* Checks every item of f (sampling keys here, flags through fn, per-model rules) and hands the
 * flags to fn in file order, errors printed as "PATH:LINE: message". Returns the error count. */
int cli_config_walk(const char *path, const struct ini_file *f, cli_config_flag_fn fn, void *ud);
/* $XDG_CONFIG_HOME/shimmy/config.ini or ~/.config/shimmy/config.ini when it exists (written
 * into path), else NULL. */
const char *cli_config_default_path(char *path, size_t len);
/* serve's side (cli/serve.c): whether name is one of serve's long flags; and a
 * cli_config_flag_fn that parses into a scratch set of options (for `config check`). */
bool cli_serve_has_flag(const char *name);
int cli_serve_check_flag(void *ud, const char *flag, const char *value);

/* Parses a whole decimal integer within [lo, hi]. Returns 0 on success, -1 otherwise. */
int cli_parse_int(const char *s, long lo, long hi, long *out);
int cli_parse_float(const char *s, double lo, double hi, double *out);

struct engine_options;
/* Parses a flag shared by the commands that load models (--parallel 'p', --ctx 'c', --threads
 * 't', --template 'T', --queue 'q'). Returns 1 when opt was one of them, 0 when not, 2 after
 * reporting a usage error. */
int cli_parse_engine_flag(const char *cmd, int opt, const char *arg, struct engine_options *eng);

/* The GPU flags (cli/gpu_info.c), shared by the commands that load models: add CLI_GPU_LONGOPTS
 * to their getopt table; cli_parse_engine_flag hands these values to cli_parse_gpu_flag. */
enum {
    CLI_OPT_GPU_BACKEND = 0x4700,
    CLI_OPT_GPU_LAYERS,
    CLI_OPT_MAIN_GPU,
    CLI_OPT_TENSOR_SPLIT,
    CLI_OPT_RPC,
    CLI_OPT_CACHE_TYPE_K,
    CLI_OPT_CACHE_TYPE_V,
    CLI_OPT_FLASH_ATTN,
    CLI_OPT_MODEL_DRAFT, /* speculative decoding (docs/SPECULATIVE.md) */
    CLI_OPT_SPEC_TYPE,
    CLI_OPT_DRAFT_MAX,
    CLI_OPT_DRAFT_MIN,
    CLI_OPT_DRAFT_P_MIN,
    CLI_OPT_NGRAM_N,
    CLI_OPT_NGRAM_M,
};
#define CLI_GPU_LONGOPTS                                                                           \
    {"gpu-backend", required_argument, NULL, CLI_OPT_GPU_BACKEND},                                 \
        {"gpu-layers", required_argument, NULL, CLI_OPT_GPU_LAYERS},                               \
        {"main-gpu", required_argument, NULL, CLI_OPT_MAIN_GPU},                                   \
        {"tensor-split", required_argument, NULL, CLI_OPT_TENSOR_SPLIT},                           \
        {"rpc", required_argument, NULL, CLI_OPT_RPC},                                             \
        {"cache-type-k", required_argument, NULL, CLI_OPT_CACHE_TYPE_K},                           \
        {"cache-type-v", required_argument, NULL, CLI_OPT_CACHE_TYPE_V},                           \
        {"flash-attn", required_argument, NULL, CLI_OPT_FLASH_ATTN},                               \
        {"model-draft", required_argument, NULL, CLI_OPT_MODEL_DRAFT},                             \
        {"spec-draft-model", required_argument, NULL, CLI_OPT_MODEL_DRAFT},                        \
        {"spec-type", required_argument, NULL, CLI_OPT_SPEC_TYPE},                                 \
        {"draft-max", required_argument, NULL, CLI_OPT_DRAFT_MAX},                                 \
        {"spec-draft-n-max", required_argument, NULL, CLI_OPT_DRAFT_MAX},                          \
        {"draft-min", required_argument, NULL, CLI_OPT_DRAFT_MIN},                                 \
        {"spec-draft-n-min", required_argument, NULL, CLI_OPT_DRAFT_MIN},                          \
        {"draft-p-min", required_argument, NULL, CLI_OPT_DRAFT_P_MIN},                             \
        {"spec-draft-p-min", required_argument, NULL, CLI_OPT_DRAFT_P_MIN},                        \
        {"spec-ngram-simple-size-n", required_argument, NULL, CLI_OPT_NGRAM_N}, {                  \
        "spec-ngram-simple-size-m", required_argument, NULL, CLI_OPT_NGRAM_M                       \
    }
#define CLI_GPU_HELP                                                                               \
    "  --gpu-backend B        auto (default; also SHIMMY_GPU_BACKEND), cpu, cuda, vulkan, "        \
    "metal,\n"                                                                                     \
    "                         opencl or rpc: a named backend without a device is an error\n"       \
    "  --gpu-layers N|auto|all  layers to offload (default auto: as many as fit)\n"                \
    "                         both also per model: --gpu-backend NAME=B, --gpu-layers NAME=N\n"    \
    "  --main-gpu N           put the whole model on the backend's device N\n"                     \
    "  --tensor-split A,B,..  share of layers per device (default: by free memory)\n"              \
    "  --rpc HOST:PORT,...    add llama.cpp RPC servers as devices (needs the RPC module)\n"       \
    "  --cache-type-k T, --cache-type-v T  KV cache element types: f16 (default), f32, bf16,\n"    \
    "                         q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1 (a quantized V cache needs\n"   \
    "                         flash attention)\n"                                                  \
    "  --flash-attn on|off|auto  flash attention (default auto: where the devices support it)\n"   \
    "                         these three also per model: --cache-type-k NAME=T, ...\n"            \
    "  --model-draft [NAME=]PATH  speculative decoding with this draft model (same vocabulary;\n"  \
    "                         for every model or for NAME; docs/SPECULATIVE.md)\n"                 \
    "  --spec-type T          none (default), draft-simple (with --model-draft) or ngram-simple\n" \
    "                         (drafts from the slot's own text, no second model)\n"                \
    "  --draft-max N, --draft-min N  draft model tokens per step (default 3; 0 min)\n"             \
    "  --draft-p-min P        stop drafting below this draft probability (default 0)\n"            \
    "  --spec-ngram-simple-size-n N, --spec-ngram-simple-size-m M  ngram-simple: n-gram to\n"      \
    "                         match (default 12), tokens to propose (default 48)\n"
/* Same return convention as cli_parse_engine_flag. */
int cli_parse_gpu_flag(const char *cmd, int opt, const char *arg, struct engine_options *eng);
/* Applies SHIMMY_GPU_BACKEND to eng (before the flags are parsed). Returns 0, or 2 after
 * reporting a bad value. */
int cli_gpu_defaults(const char *cmd, struct engine_options *eng);
/* Starts the engine for a command that loads models (engine_start): loads the backend modules
 * (with engine processes, in the warm one: serve calls engine_prestart first), reaches or adds
 * the --rpc servers and checks that eng's backend has a device (printing what was found instead
 * and why, and returning 1, when not); logs what auto chose. Returns 0 when ready. */
int cli_engine_start(const char *cmd, const struct engine_options *eng);
/* engine_options.progress for the commands that load models: a bar on a terminal, log lines
 * otherwise (common.c). */
void cli_progress(void *ctx, float fraction);
/* Refuses a quantized V cache with --flash-attn off (globally or for a model), as llama-server
 * does. Returns 0, or 2 after reporting the usage error. */
int cli_check_kv_options(const char *cmd, const struct engine_options *eng);
/* The speculative decoding flags together (cli/gpu_info.c): --model-draft alone turns
 * draft-simple on; draft-simple without any draft model, ngram-simple with a global one, or
 * --draft-min above --draft-max are refused (a model's own --model-draft NAME=PATH turns
 * draft-simple on for that model over a global ngram-simple, ADR 0009). Returns 0, or 2 after
 * reporting the usage error. */
int cli_check_spec_options(const char *cmd, const struct engine_options *eng);
struct model_gpu_override;
/* A new per-model override for the model named by model[0..len) (copied, kept for the process),
 * zeroed but for its name, in eng's list. Returns it, or NULL after reporting a usage error
 * (too many, out of memory). */
struct model_gpu_override *cli_override_add(const char *cmd, const char *model, size_t len,
                                            struct engine_options *eng);

struct disc_lora;
/* Parses --lora MODEL=PATH[:SCALE] (cli/discover.c) into *out, which borrows arg. Returns 0, or
 * 2 after reporting a usage error. */
int cli_parse_lora(const char *cmd, char *arg, struct disc_lora *out);
struct disc_mmproj;
struct model_rec;
/* What d's projector takes, for listings: "vision", "audio", "vision+audio", "-" (none paired),
 * or "yes" (one that states neither). Static. */
const char *cli_mmproj_label(const struct model_rec *d);
/* Parses --mmproj [MODEL=]PATH (cli/discover.c) into *out, which borrows arg (an existing file
 * whose name holds '=' is a PATH). Returns 0, or 2 after reporting a usage error. */
int cli_parse_mmproj(const char *cmd, char *arg, struct disc_mmproj *out);

#endif
