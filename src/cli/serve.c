/* cli/serve: `shimmy serve`: finds the models, starts the HTTP server, waits for a signal. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api.h"
#include "api/media.h"
#include "api/presets.h"
#include "api/resp_store.h"
#include "cli/cli.h"
#include "core/clock.h"
#include "core/ini.h"
#include "core/limits.h"
#include "core/log.h"
#include "engine/engine.h"
#include "models/registry.h"

static const char serve_help[] =
    "usage: shimmy serve [options]\n"
    "\n"
    "Serves GGUF models over HTTP: the OpenAI (/v1), Ollama (/api) and Anthropic\n"
    "(/v1/messages) APIs.\n"
    "\n"
    "  --config FILE          settings and per-model presets (INI; default\n"
    "                         ~/.config/shimmy/config.ini when it exists; docs/DEPLOY.md);\n"
    "                         flags given here override it\n"
    "  --bind HOST:PORT|auto  address to listen on (default 127.0.0.1:11435); 'auto' takes the\n"
    "                         first free port in 11435-11535\n"
    "  --model PATH           serve this GGUF file (repeatable); named by its file stem\n"
    "  --model-dirs DIR;DIR   also serve the .gguf files in these folders (also "
    "SHIMMY_MODEL_PATHS);\n"
    "                         ./models is always searched\n"
    "  --parallel [MODEL=]N   requests generated at once per model (default 4)\n"
    "  --ctx [MODEL=]N        context tokens per request (default: trained context, at most "
    "4096);\n"
    "                         MODEL= (a name or glob) sets one model's, at its next load\n"
    "  --threads N            CPU threads (default: all cores)\n"
    "  --template NAME        chat template to use instead of the model's (llama.cpp built-in "
    "name,\n"
    "                         rendered without Jinja)\n"
    "  --chat-template-file [MODEL=]FILE  Jinja chat template to use instead of the model's, for\n"
    "                         every model or for MODEL (repeatable)\n"
    "  --queue N              requests that may wait for a slot before 503 (default 64)\n"
    "  --in-process           run the models' engines inside the server process (default: a\n"
    "                         process per loaded model, so that a llama.cpp abort ends only\n"
    "                         that model's requests)\n"
    "  --cache-ram MIB        host-RAM prompt cache per loaded model: conversations evicted from\n"
    "                         their slot come back without recomputing (default 4096, 0 = off)\n"
    "  --max-memory SIZE      memory budget for loaded models (e.g. 8G, 512M; by file size):\n"
    "                         idle models are unloaded, least recently used first (default: none)\n"
    "  --max-loaded N         models kept loaded at once; the least recently used idle one is\n"
    "                         unloaded past it (default 2)\n"
    "  --max-ctx N            largest context an Ollama request's options.num_ctx may reload a\n"
    "                         model with (default: no cap)\n"
    "  --keep-alive [MODEL=]DUR  unload a model this long after its last request (e.g. 5m,\n"
    "                         30s; default: keep), every model's or MODEL's (a name or glob);\n"
    "                         requests may set their own keep_alive\n"
    "  --alias MODEL=NAME[,NAME]  other names requests may use for MODEL (repeatable)\n"
    "  --lora MODEL=PATH[:S]  apply a LoRA adapter to MODEL with scale S (default 1; repeatable)\n"
    "  --mmproj [MODEL=]PATH  pair a multimodal projector (mmproj GGUF) with MODEL (no MODEL: the\n"
    "                         --model file, or the only model; repeatable); found beside models\n"
    "                         without it (docs/MODELS.md)\n"
    "  --allow-remote-media   fetch http(s) image URLs of requests (default: data: URIs only)\n"
    /* trust (docs/SECURITY.md) */
    "  --api-key KEY          require this key as 'Authorization: Bearer KEY' or 'x-api-key'\n"
    "                         (repeatable; also SHIMMY_API_KEY); /health stays open\n"
    "  --api-key-file FILE    keys, one per line ('#' comments); re-read on SIGHUP\n"
    "  --auth-health          /health and / need the key too\n"
    "  --cors-origin ORIGIN   let pages from ORIGIN call the API (repeatable; '*' = any; also\n"
    "                         SHIMMY_ORIGINS, comma-separated); default: localhost pages only\n"
    "  --allowed-host NAME    answer requests for this host name (repeatable; '.example.com' for\n"
    "                         its subdomains; '*' = any); default: IPs, localhost, this machine\n"
    "  --tls-cert FILE        serve HTTPS with this PEM certificate (chain) ...\n"
    "  --tls-key FILE         ... and this PEM private key\n"
    /* running it as a service */
    "  --no-metrics           no GET /metrics (default: on, behind the same key as the API)\n"
    "  --pull-missing         a request naming a model that is not here pulls it first (as\n"
    "                         `shimmy pull NAME` would; the request waits); default: 404\n"
    "  --log-format text|json one line per request and event, as text (default) or JSON\n"
    "  --log-level LEVEL      debug, info (default; one line per request), warn, error, quiet\n"
    "  --drain-timeout DUR    on SIGTERM/SIGINT, let running requests finish this long (default\n"
    "                         25s), then end them with an error; a second signal exits at "
    "once\n" CLI_GPU_HELP "  --help                 this help\n";

/* Service flags: metrics, logs, drain. */
enum {
    SERVE_OPT_NO_METRICS = 0x5500,
    SERVE_OPT_LOG_FORMAT,
    SERVE_OPT_LOG_LEVEL,
    SERVE_OPT_DRAIN_TIMEOUT,
    SERVE_OPT_ALLOW_REMOTE_MEDIA,
    SERVE_OPT_PULL_MISSING,
};
#define SERVE_OPS_LONGOPTS                                                                         \
    {"no-metrics", no_argument, NULL, SERVE_OPT_NO_METRICS},                                       \
        {"log-format", required_argument, NULL, SERVE_OPT_LOG_FORMAT},                             \
        {"log-level", required_argument, NULL, SERVE_OPT_LOG_LEVEL},                               \
        {"drain-timeout", required_argument, NULL, SERVE_OPT_DRAIN_TIMEOUT},                       \
        {"allow-remote-media", no_argument, NULL, SERVE_OPT_ALLOW_REMOTE_MEDIA}, {                 \
        "pull-missing", no_argument, NULL, SERVE_OPT_PULL_MISSING                                  \
    }

/* Trust flags (docs/SECURITY.md): collected here, handed to http/ as an http_trust. */
enum {
    SERVE_OPT_API_KEY = 0x5400,
    SERVE_OPT_API_KEY_FILE,
    SERVE_OPT_AUTH_HEALTH,
    SERVE_OPT_CORS_ORIGIN,
    SERVE_OPT_ALLOWED_HOST,
    SERVE_OPT_TLS_CERT,
    SERVE_OPT_TLS_KEY,
};
#define SERVE_TRUST_LONGOPTS                                                                       \
    {"api-key", required_argument, NULL, SERVE_OPT_API_KEY},                                       \
        {"api-key-file", required_argument, NULL, SERVE_OPT_API_KEY_FILE},                         \
        {"auth-health", no_argument, NULL, SERVE_OPT_AUTH_HEALTH},                                 \
        {"cors-origin", required_argument, NULL, SERVE_OPT_CORS_ORIGIN},                           \
        {"allowed-host", required_argument, NULL, SERVE_OPT_ALLOWED_HOST},                         \
        {"tls-cert", required_argument, NULL, SERVE_OPT_TLS_CERT}, {                               \
        "tls-key", required_argument, NULL, SERVE_OPT_TLS_KEY                                      \
    }

typedef struct serve_trust {
    const char *keys[LIM_TRUST_VALUES + 1]; /* --api-key, SHIMMY_API_KEY; then the file's */
    size_t n_keys;
    size_t n_flag_keys;   /* keys from flags and env (kept on SIGHUP) */
    guard_keys file_keys; /* owned */
    const char *key_file;
    const char *origins[LIM_TRUST_VALUES];
    size_t n_origins;
    char *origins_env; /* owned copy of SHIMMY_ORIGINS, split in place */
    const char *hosts[LIM_TRUST_VALUES];
    size_t n_hosts;
    http_trust t;
} serve_trust;

/* --alias MODEL=NAME and --keep-alive MODEL=DUR (also a --config model section's keys). */
typedef struct serve_alias {
    char *model, *alias; /* owned (kept for the process, like argv) */
} serve_alias;
typedef struct serve_keep {
    char *model; /* owned: a name or a glob */
    int64_t keep_ns;
} serve_keep;

typedef struct serve_opts {
    char host[256];
    int port; /* -1 = auto */
    char *models[LIM_MODELS];
    int n_models;
    const char *model_dirs;
    engine_options eng;
    disc_lora loras[LIM_MODELS];
    int n_loras;
    disc_mmproj mmprojs[LIM_MODELS];
    int n_mmprojs;
    int max_loaded;
    int max_ctx;                  /* --max-ctx; 0 = no cap */
    int64_t keep_ns;              /* < 0 = keep */
    serve_keep keeps[LIM_MODELS]; /* --keep-alive MODEL=DUR */
    int n_keeps;
    serve_alias aliases[LIM_MODELS];
    int n_aliases;
    uint64_t max_bytes; /* --max-memory; 0 = none */
    serve_trust trust;
    bool no_metrics;
    bool pull_missing;  /* --pull-missing */
    int64_t drain_ns;   /* --drain-timeout */
    const char *config; /* --config or the default file; NULL = none */
} serve_opts;

/* --chat-template-file: the texts live for the process (engine_options borrows them). */
static model_template_override chat_templates[LIM_MODELS];
static int n_chat_templates;

static char *read_template(const char *cmd, const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        cli_usage_error(cmd, "--chat-template-file: cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    buf b;
    buf_init(&b, LIM_TEMPLATE_BYTES);
    char chunk[8192];
    size_t n;
    shimmy_err rc = SHIMMY_OK;
    while (rc == SHIMMY_OK && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc = buf_append(&b, chunk, n);
    bool bad = ferror(f) != 0;
    fclose(f);
    if (rc != SHIMMY_OK || bad || b.len == 0) {
        buf_free(&b);
        cli_usage_error(cmd, "--chat-template-file: %s is %s", path,
                        rc == ERR_TOO_LARGE ? "over the size limit (1 MiB)"
                        : bad               ? "unreadable"
                                            : "empty");
        return NULL;
    }
    return buf_take(&b);
}

/* [MODEL=]FILE: MODEL is everything before the last '=' when FILE exists under that split. */
static int parse_template_file(const char *cmd, const char *arg, engine_options *eng) {
    const char *eq = strrchr(arg, '=');
    const char *path = eq != NULL ? eq + 1 : arg;
    if (eq != NULL && access(arg, R_OK) == 0)
        path = arg, eq = NULL; /* a file name that holds '=' */
    char *text = read_template(cmd, path);
    if (text == NULL)
        return 2;
    if (eq == NULL) {
        eng->template_text = text;
        return 1;
    }
    if (n_chat_templates >= LIM_MODELS)
        return cli_usage_error(cmd, "at most %d --chat-template-file MODEL=FILE options",
                               LIM_MODELS);
    char *model = strndup(arg, (size_t)(eq - arg));
    if (model == NULL || model[0] == '\0')
        return cli_usage_error(cmd, "--chat-template-file wants [MODEL=]FILE, not '%s'", arg);
    chat_templates[n_chat_templates++] = (model_template_override){model, text};
    eng->templates = chat_templates;
    eng->n_templates = n_chat_templates;
    return 1;
}

/* --parallel [MODEL=]N and --ctx [MODEL=]N: the MODEL= form (a served name or a glob; a
 * --config model section) takes effect when that model is next loaded. */
static int parse_slots_ctx(const char *cmd, int opt, const char *arg, engine_options *eng) {
    const char *flag = opt == 'p' ? "--parallel" : "--ctx";
    long lo = opt == 'p' ? 1 : LIM_MIN_CTX, hi = opt == 'p' ? LIM_PARALLEL : LIM_MAX_CTX, v;
    const char *eq = strrchr(arg, '=');
    if (cli_parse_int(eq != NULL ? eq + 1 : arg, lo, hi, &v) != 0 || eq == arg)
        return cli_usage_error(cmd,
                               "%s wants [MODEL=]N with N an integer from %ld to %ld, not "
                               "'%s'",
                               flag, lo, hi, arg);
    if (eq == NULL) {
        *(opt == 'p' ? &eng->n_parallel : &eng->n_ctx) = (int)v;
        return 1;
    }
    model_gpu_override *o = cli_override_add(cmd, arg, (size_t)(eq - arg), eng);
    if (o == NULL)
        return 2;
    *(opt == 'p' ? &o->n_parallel : &o->n_ctx) = (int)v;
    return 1;
}

/* Shared with generate: parses the model and engine flags. Returns 1 if the option was one of
 * them, 0 if not, 2 on a usage error (already reported). */
int cli_parse_engine_flag(const char *cmd, int opt, const char *arg, engine_options *eng) {
    long v;
    switch (opt) {
    case 'p':
    case 'c':
        return parse_slots_ctx(cmd, opt, arg, eng);
    case 't':
        if (cli_parse_int(arg, 1, 1024, &v) != 0)
            return cli_usage_error(cmd, "--threads must be an integer from 1 to 1024");
        eng->n_threads = (int)v;
        return 1;
    case 'T':
        eng->template_override = arg;
        return 1;
    case 'J':
        return parse_template_file(cmd, arg, eng);
    case 'R':
        if (cli_parse_int(arg, 0, 1 << 24, &v) != 0)
            return cli_usage_error(cmd, "--cache-ram must be a number of MiB from 0 (off) to "
                                        "16777216");
        eng->cache_ram_mib = v;
        return 1;
    case 'q':
        if (cli_parse_int(arg, 1, 1 << 16, &v) != 0)
            return cli_usage_error(cmd, "--queue must be an integer from 1 to 65536");
        eng->queue_max = (int)v;
        return 1;
    default:
        return cli_parse_gpu_flag(cmd, opt, arg, eng);
    }
}

static int parse_bind(const char *arg, serve_opts *o) {
    if (strcmp(arg, "auto") == 0) {
        o->port = -1;
        return 0;
    }
    const char *colon = strrchr(arg, ':');
    long port;
    if (colon == NULL || cli_parse_int(colon + 1, 0, 65535, &port) != 0)
        return -1;
    size_t hl = (size_t)(colon - arg);
    if (hl >= sizeof o->host)
        return -1;
    if (hl >= 2 && arg[0] == '[' && arg[hl - 1] == ']') { /* [::1]:port */
        arg++;
        hl -= 2;
    }
    memcpy(o->host, arg, hl);
    o->host[hl] = '\0';
    if (o->host[0] == '\0')
        snprintf(o->host, sizeof o->host, "%s", LIM_DEFAULT_HOST);
    o->port = (int)port;
    return 0;
}

/* ---- trust flags ---- */

static int trust_add(const char *flag, const char **list, size_t *n, const char *v) {
    if (*n >= LIM_TRUST_VALUES)
        return cli_usage_error("serve", "at most %d %s options", LIM_TRUST_VALUES, flag);
    if (v[0] == '\0')
        return cli_usage_error("serve", "%s wants a value", flag);
    list[(*n)++] = v;
    return 1;
}

/* Returns 1 if opt was a trust flag, 0 if not, 2 on a usage error (already reported). */
static int parse_trust_flag(int opt, const char *arg, serve_trust *st) {
    switch (opt) {
    case SERVE_OPT_API_KEY:
        return trust_add("--api-key", st->keys, &st->n_keys, arg);
    case SERVE_OPT_API_KEY_FILE:
        st->key_file = arg;
        return 1;
    case SERVE_OPT_AUTH_HEALTH:
        st->t.auth_health = true;
        return 1;
    case SERVE_OPT_CORS_ORIGIN:
        if (strcmp(arg, "*") != 0 && strstr(arg, "://") == NULL)
            return cli_usage_error("serve",
                                   "--cors-origin wants an origin like "
                                   "https://app.example or '*', not '%s'",
                                   arg);
        return trust_add("--cors-origin", st->origins, &st->n_origins, arg);
    case SERVE_OPT_ALLOWED_HOST:
        return trust_add("--allowed-host", st->hosts, &st->n_hosts, arg);
    case SERVE_OPT_TLS_CERT:
        st->t.tls_cert = arg;
        return 1;
    case SERVE_OPT_TLS_KEY:
        st->t.tls_key = arg;
        return 1;
    default:
        return 0;
    }
}

/* Adds the keys of the keys file after the flag keys. Returns 0, or 1 with the error printed. */
static int trust_read_key_file(serve_trust *st) {
    char err[512];
    guard_keys k;
    st->n_keys = st->n_flag_keys;
    if (st->key_file == NULL)
        return 0;
    if (guard_keys_read(st->key_file, &k, err, sizeof err) != SHIMMY_OK) {
        fprintf(stderr, "shimmy serve: --api-key-file %s\n", err);
        return 1;
    }
    if (k.n > LIM_TRUST_VALUES - st->n_flag_keys) { /* never a key silently left out */
        fprintf(stderr,
                "shimmy serve: --api-key-file %s: %zu keys; at most %zu with the %zu of "
                "--api-key and SHIMMY_API_KEY (LIM_TRUST_VALUES)\n",
                st->key_file, k.n, (size_t)LIM_TRUST_VALUES - st->n_flag_keys, st->n_flag_keys);
        guard_keys_free(&k);
        return 1;
    }
    guard_keys_free(&st->file_keys);
    st->file_keys = k;
    for (size_t i = 0; i < k.n; i++)
        st->keys[st->n_keys++] = k.keys[i];
    return 0;
}

/* Environment, keys file, consistency. Returns 0, or 2 after a usage error. */
static int trust_finish(serve_trust *st) {
    const char *env_key = getenv("SHIMMY_API_KEY");
    if (env_key != NULL && env_key[0] != '\0' &&
        trust_add("SHIMMY_API_KEY", st->keys, &st->n_keys, env_key) == 2)
        return 2;
    const char *env_origins = getenv("SHIMMY_ORIGINS");
    if (env_origins != NULL && (st->origins_env = strdup(env_origins)) != NULL) {
        for (char *o = st->origins_env; *o != '\0';) { /* split at commas and spaces */
            size_t n = strcspn(o, ", ");
            char *next = o[n] != '\0' ? o + n + 1 : o + n;
            o[n] = '\0';
            if (n > 0 && trust_add("SHIMMY_ORIGINS", st->origins, &st->n_origins, o) == 2)
                return 2;
            o = next;
        }
    }
    if ((st->t.tls_cert == NULL) != (st->t.tls_key == NULL))
        return cli_usage_error("serve", "--tls-cert and --tls-key go together");
    st->n_flag_keys = st->n_keys;
    if (trust_read_key_file(st) != 0)
        return 2;
    st->t.origins = st->origins;
    st->t.n_origins = st->n_origins;
    st->t.hosts = st->hosts;
    st->t.n_hosts = st->n_hosts;
    st->t.keys = st->keys;
    st->t.n_keys = st->n_keys;
    return 0;
}

/* SIGHUP: re-read the keys file and hand the keys to the server. */
static void trust_reload(serve_trust *st, http_server *srv) {
    if (st->key_file == NULL) {
        log_info("SIGHUP: no --api-key-file to re-read");
        return;
    }
    if (trust_read_key_file(st) != 0) {
        log_warn("SIGHUP: keeping the previous API keys");
        return;
    }
    if (http_server_set_keys(srv, st->keys, st->n_keys) == SHIMMY_OK)
        log_info("SIGHUP: %zu API key(s) from %s", st->n_keys - st->n_flag_keys, st->key_file);
}

static void presets_reload(const char *path, shimmy_app *app);

/* SIGHUP: rescan the model stores (new files served, vanished ones dropped) and re-read the keys
 * file; connections and running requests are untouched. */
static void serve_reload(serve_opts *o, shimmy_app *app, http_server *srv) {
    char err[512];
    registry_changes ch;
    memset(&ch, 0, sizeof ch);
    trust_reload(&o->trust, srv);
    presets_reload(o->config, app);
    if (registry_rescan(app->models, &ch, err, sizeof err) != SHIMMY_OK) {
        log_warn("SIGHUP: rescan failed: %s", err);
        return;
    }
    for (size_t i = 0; i < ch.n_added; i++)
        log_info("SIGHUP: model '%s' added", ch.added[i]);
    for (size_t i = 0; i < ch.n_removed; i++)
        log_info("SIGHUP: model '%s' removed", ch.removed[i]);
    log_info("SIGHUP: %zu model(s) served", ch.total);
    registry_changes_free(&ch);
}

/* SIGTERM/SIGINT: readiness turns 503, the listening socket closes (new connections are
 * refused), requests in flight finish; past drain_ns those still running end with an error
 * frame (LIM_DRAIN_CANCEL_MS to write it). A second SIGTERM/SIGINT exits at once (status 1). */
static void serve_drain(shimmy_app *app, http_server *srv, int64_t drain_ns, const sigset_t *sigs,
                        int sig) {
    atomic_store(&app->ready, false);
    atomic_store(&app->draining, true);
    http_server_drain(srv);
    int n = http_server_inflight(srv);
    log_info("signal %d: shutting down: %d request(s) in flight, draining for up to %.1f s", sig, n,
             (double)drain_ns / 1e9);
    int64_t deadline = clock_mono_ns() + drain_ns;
    const struct timespec tick = {0, 50 * 1000000};
    while ((n = http_server_inflight(srv)) > 0) {
        int64_t now = clock_mono_ns();
        if (now >= deadline && atomic_load(&app->stopping))
            break;
        if (now >= deadline) {
            log_warn("drain timeout: ending %d request(s) with an error", n);
            atomic_store(&app->stopping, true);
            deadline = now + (int64_t)LIM_DRAIN_CANCEL_MS * 1000000;
        }
        siginfo_t si;
        int got = sigtimedwait(sigs, &si, &tick);
        if (got == SIGTERM || got == SIGINT) {
            log_warn("signal %d again: exiting at once with %d request(s) in flight", got, n);
            _exit(1);
        }
    }
    log_info("drained: exiting");
}

/* A warning for a server reachable from other machines with no key. */
static void trust_warn(const char *host, const serve_trust *st) {
    bool loopback =
        strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 || strcmp(host, "localhost") == 0;
    if (!loopback && st->n_keys == 0)
        log_warn("listening on %s without an API key: anyone who can reach this address can use "
                 "the server (see --api-key, docs/SECURITY.md)",
                 host);
}

static void trust_free(serve_trust *st) {
    guard_keys_free(&st->file_keys);
    free(st->origins_env);
}

/* "8G", "512M", "100K", a bare number of bytes (binary units). */
static int parse_size(const char *s, uint64_t *bytes) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || v <= 0)
        return -1;
    static const char units[] = "BKMGT";
    const char *u = *end ? strchr(units, *end & ~0x20) : units;
    if (u == NULL ||
        (*end && end[1] != '\0' && strcmp(end + 1, "iB") != 0 && strcmp(end + 1, "B") != 0))
        return -1;
    for (const char *k = units; k < u; k++)
        v *= 1024.0;
    *bytes = (uint64_t)v;
    return 0;
}

/* "30s", "5m", "1h", "250ms", a bare number of seconds; negative = keep forever. */
static int parse_duration(const char *s, int64_t *ns) {
    char *end;
    double v = strtod(s, &end);
    if (end == s)
        return -1;
    double mul = 1e9;
    if (strcmp(end, "ms") == 0)
        mul = 1e6;
    else if (strcmp(end, "m") == 0)
        mul = 60e9;
    else if (strcmp(end, "h") == 0)
        mul = 3600e9;
    else if (strcmp(end, "s") != 0 && *end != '\0')
        return -1;
    *ns = v < 0 ? -1 : (int64_t)(v * mul);
    return 0;
}

/* Returns 1 if opt was a service flag, 0 if not, 2 on a usage error (already reported). */
static int parse_ops_flag(int opt, const char *arg, serve_opts *o) {
    log_level lvl;
    switch (opt) {
    case SERVE_OPT_NO_METRICS:
        o->no_metrics = true;
        return 1;
    case SERVE_OPT_PULL_MISSING:
        o->pull_missing = true;
        return 1;
    case SERVE_OPT_LOG_FORMAT:
        if (strcmp(arg, "text") != 0 && strcmp(arg, "json") != 0)
            return cli_usage_error("serve", "--log-format wants text or json, not '%s'", arg);
        log_set_json(strcmp(arg, "json") == 0);
        return 1;
    case SERVE_OPT_LOG_LEVEL:
        if (!log_level_parse(arg, &lvl))
            return cli_usage_error("serve",
                                   "--log-level wants debug, info, warn, error or quiet, "
                                   "not '%s'",
                                   arg);
        log_set_level(lvl);
        return 1;
    case SERVE_OPT_DRAIN_TIMEOUT:
        if (parse_duration(arg, &o->drain_ns) != 0 || o->drain_ns < 0)
            return cli_usage_error("serve",
                                   "--drain-timeout wants a duration like 30s, 2m or 0, "
                                   "not '%s'",
                                   arg);
        return 1;
    case SERVE_OPT_ALLOW_REMOTE_MEDIA:
        api_media_allow_remote(true);
        return 1;
    default:
        return 0;
    }
}

/* --keep-alive [MODEL=]DUR. Returns 0, or 2 after a usage error. */
static int parse_keep_alive(const char *arg, serve_opts *o) {
    const char *eq = strrchr(arg, '=');
    int64_t ns;
    if (parse_duration(eq != NULL ? eq + 1 : arg, &ns) != 0 || eq == arg)
        return cli_usage_error("serve",
                               "--keep-alive wants [MODEL=]DUR with a duration like "
                               "30s, 5m, 1h, 0 or -1, not '%s'",
                               arg);
    if (eq == NULL) {
        o->keep_ns = ns;
        return 0;
    }
    if (o->n_keeps >= LIM_MODELS)
        return cli_usage_error("serve", "at most %d --keep-alive MODEL=DUR options", LIM_MODELS);
    char *model = strndup(arg, (size_t)(eq - arg));
    if (model == NULL)
        return cli_usage_error("serve", "out of memory");
    o->keeps[o->n_keeps++] = (serve_keep){model, ns};
    return 0;
}

/* One alias of --alias MODEL=NAME[,NAME]: a name may stand for one model only. */
static int add_alias(serve_opts *o, const char *model, const char *name, size_t len) {
    for (int i = 0; i < o->n_aliases; i++)
        if (strlen(o->aliases[i].alias) == len && strncmp(o->aliases[i].alias, name, len) == 0) {
            if (strcmp(o->aliases[i].model, model) == 0)
                return 0;
            return cli_usage_error("serve", "alias '%s' is already model '%s''s",
                                   o->aliases[i].alias, o->aliases[i].model);
        }
    if (len == strlen(model) && strncmp(name, model, len) == 0)
        return cli_usage_error("serve", "alias '%s' is the model's own name", model);
    if (o->n_aliases >= LIM_MODELS)
        return cli_usage_error("serve", "at most %d aliases", LIM_MODELS);
    serve_alias *a = &o->aliases[o->n_aliases];
    a->model = strdup(model);
    a->alias = strndup(name, len);
    if (a->model == NULL || a->alias == NULL)
        return cli_usage_error("serve", "out of memory");
    o->n_aliases++;
    return 0;
}

/* --alias MODEL=NAME[,NAME...] (names trimmed of spaces, as llama-server's preset aliases).
 * Returns 0, or 2 after a usage error. */
static int parse_alias(const char *arg, serve_opts *o) {
    const char *eq = strchr(arg, '=');
    if (eq == NULL || eq == arg || strpbrk(arg, "*?[") != NULL)
        return cli_usage_error("serve",
                               "--alias wants MODEL=NAME[,NAME...] with a model's own "
                               "name (not a glob), not '%s'",
                               arg);
    char model[256];
    snprintf(model, sizeof model, "%.*s", (int)(eq - arg), arg);
    int n = 0;
    for (const char *p = eq + 1; *p != '\0';) {
        size_t len = strcspn(p, ",");
        const char *a = p, *z = p + len;
        while (a < z && *a == ' ')
            a++;
        while (z > a && z[-1] == ' ')
            z--;
        if (z > a && add_alias(o, model, a, (size_t)(z - a)) != 0)
            return 2;
        n += z > a;
        p += len + (p[len] == ',');
    }
    if (n == 0)
        return cli_usage_error("serve", "--alias wants MODEL=NAME[,NAME...], not '%s'", arg);
    return 0;
}

static const struct option serve_longopts[] = {{"bind", required_argument, NULL, 'b'},
                                               {"model", required_argument, NULL, 'm'},
                                               {"model-dirs", required_argument, NULL, 'd'},
                                               {"parallel", required_argument, NULL, 'p'},
                                               {"ctx", required_argument, NULL, 'c'},
                                               {"threads", required_argument, NULL, 't'},
                                               {"template", required_argument, NULL, 'T'},
                                               {"queue", required_argument, NULL, 'q'},
                                               {"chat-template-file", required_argument, NULL, 'J'},
                                               {"cache-ram", required_argument, NULL, 'R'},
                                               {"in-process", no_argument, NULL, 'I'},
                                               CLI_GPU_LONGOPTS,
                                               {"max-loaded", required_argument, NULL, 'M'},
                                               {"lora", required_argument, NULL, 'L'},
                                               {"mmproj", required_argument, NULL, 'j'},
                                               {"keep-alive", required_argument, NULL, 'K'},
                                               {"max-ctx", required_argument, NULL, 'X'},
                                               {"max-memory", required_argument, NULL, 'B'},
                                               {"config", required_argument, NULL, 'C'},
                                               {"alias", required_argument, NULL, 'A'},
                                               SERVE_TRUST_LONGOPTS,
                                               SERVE_OPS_LONGOPTS,
                                               {"help", no_argument, NULL, 'h'},
                                               {NULL, 0, NULL, 0}};

/* The serve flags that are not engine, trust or service flags. Returns 0, 2 on a usage error
 * (already reported), -1 for --help. */
static int parse_serve_flag(int opt, const char *arg, serve_opts *o) {
    long v;
    switch (opt) {
    case 'b':
        if (parse_bind(arg, o) != 0)
            return cli_usage_error("serve", "--bind wants HOST:PORT or auto, not '%s'", arg);
        return 0;
    case 'm':
        if (o->n_models >= LIM_MODELS)
            return cli_usage_error("serve", "at most %d --model options", LIM_MODELS);
        o->models[o->n_models++] = (char *)arg;
        return 0;
    case 'd':
        o->model_dirs = arg;
        return 0;
    case 'I':
        o->eng.isolate = false;
        return 0;
    case 'M':
        if (cli_parse_int(arg, 1, LIM_MODELS, &v) != 0)
            return cli_usage_error("serve", "--max-loaded must be an integer from 1 to %d",
                                   LIM_MODELS);
        o->max_loaded = (int)v;
        return 0;
    case 'X':
        if (cli_parse_int(arg, 1, LIM_MAX_TOKENS, &v) != 0)
            return cli_usage_error("serve", "--max-ctx must be an integer from 1 to %d",
                                   LIM_MAX_TOKENS);
        o->max_ctx = (int)v;
        return 0;
    case 'L':
        if (o->n_loras >= LIM_MODELS)
            return cli_usage_error("serve", "at most %d --lora options", LIM_MODELS);
        if (cli_parse_lora("serve", (char *)arg, &o->loras[o->n_loras]) != 0)
            return 2;
        o->n_loras++;
        return 0;
    case 'j':
        if (o->n_mmprojs >= LIM_MODELS)
            return cli_usage_error("serve", "at most %d --mmproj options", LIM_MODELS);
        if (cli_parse_mmproj("serve", (char *)arg, &o->mmprojs[o->n_mmprojs]) != 0)
            return 2;
        o->n_mmprojs++;
        return 0;
    case 'B':
        if (parse_size(arg, &o->max_bytes) != 0)
            return cli_usage_error("serve",
                                   "--max-memory wants a size like 8G or 512M, not "
                                   "'%s'",
                                   arg);
        return 0;
    case 'K':
        return parse_keep_alive(arg, o);
    case 'A':
        return parse_alias(arg, o);
    case 'C': /* read before the flags (serve_read_config) */
        return 0;
    case 'h':
        fputs(serve_help, stdout);
        return -1;
    default:
        return 2;
    }
}

/* One flag, from the command line or the config file. Returns 0, 2 on a usage error (already
 * reported), -1 for --help. */
static int parse_flag(int opt, const char *arg, serve_opts *o) {
    int r = cli_parse_engine_flag("serve", opt, arg, &o->eng);
    if (r == 0)
        r = parse_trust_flag(opt, arg, &o->trust);
    if (r == 0)
        r = parse_ops_flag(opt, arg, o);
    if (r != 0)
        return r == 2 ? 2 : 0;
    return parse_serve_flag(opt, arg, o);
}

static int parse_args(int argc, char **argv, serve_opts *o) {
    opterr = 0;
    optind = 0; /* glibc: start afresh */
    int opt;
    while ((opt = getopt_long(argc, argv, ":h", serve_longopts, NULL)) != -1) {
        if (opt == ':')
            return cli_usage_error("serve", "option '%s' needs a value", argv[optind - 1]);
        if (opt == '?')
            return cli_usage_error("serve", "unknown option '%s'", argv[optind - 1]);
        int r = parse_flag(opt, optarg, o);
        if (r != 0)
            return r;
    }
    if (optind < argc)
        return cli_usage_error("serve", "unexpected argument '%s'", argv[optind]);
    return 0;
}

/* ---- the --config file (cli/config.c walks it; the flags are parsed here) ---- */

static const struct option *find_flag(const char *name) {
    for (const struct option *f = serve_longopts; f->name != NULL; f++)
        if (strcmp(f->name, name) == 0 && strcmp(name, "help") != 0)
            return f;
    return NULL;
}

bool cli_serve_has_flag(const char *name) {
    return find_flag(name) != NULL;
}

/* A --config value, copied for the process (flags keep pointers into it, as they do into argv)
 * and linked from a static list so that it stays reachable (make test-asan's leak check). */
typedef struct kept_value {
    struct kept_value *next;
    char s[];
} kept_value;
static kept_value *kept_values;

static char *keep_value(const char *v) {
    size_t n = strlen(v);
    kept_value *k = malloc(sizeof *k + n + 1);
    if (k == NULL)
        return NULL;
    memcpy(k->s, v, n + 1);
    k->next = kept_values;
    kept_values = k;
    return k->s;
}

/* A cli_config_flag_fn into the serve_opts ud: the value is copied (it lives for the process,
 * like argv); a flag without a value takes true/false. */
static int file_flag(void *ud, const char *flag, const char *value) {
    const struct option *f = find_flag(flag);
    if (f == NULL)
        return cli_usage_error("serve", "unknown key '%s'", flag);
    if (f->has_arg == no_argument) {
        bool yes =
            strcmp(value, "true") == 0 || strcmp(value, "yes") == 0 || strcmp(value, "1") == 0;
        bool no =
            strcmp(value, "false") == 0 || strcmp(value, "no") == 0 || strcmp(value, "0") == 0;
        if (!yes && !no)
            return cli_usage_error("serve", "%s wants true or false, not '%s'", flag, value);
        return yes ? parse_flag(f->val, NULL, ud) : 0;
    }
    char *copy = keep_value(value);
    if (copy == NULL)
        return cli_usage_error("serve", "out of memory");
    return parse_flag(f->val, copy, ud);
}

int cli_serve_check_flag(void *ud, const char *flag, const char *value) {
    static serve_opts scratch;
    static bool ready;
    (void)ud;
    if (!ready) {
        engine_options_default(&scratch.eng);
        ready = true;
    }
    return file_flag(&scratch, flag, value);
}

/* --config FILE or --config=FILE on the command line, else the default file when it exists. */
static const char *config_path(int argc, char **argv, char *path, size_t len) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            return argv[i + 1];
        if (strncmp(argv[i], "--config=", 9) == 0)
            return argv[i] + 9;
    }
    return cli_config_default_path(path, len);
}

/* Reads the file's flags into o (before the command line's) and its presets into *presets
 * (owned). Returns 0, or 2 after printing each error as FILE:LINE: message. */
static int serve_read_config(serve_opts *o, api_presets **presets) {
    ini_file f;
    int errors = cli_config_read(o->config, &f);
    if (errors == 0)
        errors = cli_config_walk(o->config, &f, file_flag, o);
    if (errors == 0 && (*presets = api_presets_from_ini(&f)) == NULL)
        errors = cli_usage_error("serve", "out of memory");
    ini_free(&f);
    if (errors != 0) {
        fprintf(stderr, "shimmy serve: %s: %d error(s); 'shimmy config check %s' lists them\n",
                o->config, errors, o->config);
        return 2;
    }
    log_info("config %s: %zu preset section(s)", o->config, api_presets_count(*presets));
    return 0;
}

/* SIGHUP: the file's presets again (its engine and server settings need a restart). A file
 * with a bad sampling value keeps the previous presets. */
static void presets_reload(const char *path, shimmy_app *app) {
    char err[256];
    ini_file f;
    if (path == NULL)
        return;
    int errors = cli_config_read(path, &f);
    for (size_t i = 0; errors == 0 && i < f.n_items; i++)
        if (api_preset_check(f.items[i].key, f.items[i].value, err, sizeof err) < 0) {
            log_warn("SIGHUP: %s:%d: %s", path, f.items[i].line, err);
            errors++;
        }
    api_presets *p = errors == 0 ? api_presets_from_ini(&f) : NULL;
    ini_free(&f);
    if (p == NULL) {
        log_warn("SIGHUP: keeping the previous presets of %s", path);
        return;
    }
    api_presets_install(app, p);
    log_info("SIGHUP: config %s: %zu preset section(s)", path, api_presets_count(p));
}

static int pick_port(serve_opts *o) {
    if (o->port >= 0)
        return o->port;
    for (int p = LIM_DEFAULT_PORT; p <= LIM_AUTO_PORT_LAST; p++)
        if (http_port_free(o->host, p))
            return p;
    return -1;
}

static void report_models(registry *r) {
    size_t n = registry_count(r);
    if (n == 0) {
        log_info(
            "no models yet: start with --model PATH/TO/model.gguf, put .gguf files in ./models, "
            "or name folders with --model-dirs DIR (or SHIMMY_MODEL_PATHS)");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const model_rec *d = NULL;
        if (registry_get(r, i, &d, NULL))
            log_info("model '%s' (%s) from %s", d->name, d->source, d->path);
        model_rec_unref(d);
    }
}

/* The --alias names, with a warning for one that a served model's own name hides or whose
 * model is not served (yet: a rescan may find it). Returns 0, or 1 after an error. */
static int add_aliases(registry *r, const serve_opts *o) {
    char err[512];
    for (int i = 0; i < o->n_aliases; i++) {
        const serve_alias *a = &o->aliases[i];
        const model_rec *d = NULL;
        if (registry_add_alias(r, a->alias, a->model, err, sizeof err) != SHIMMY_OK) {
            fprintf(stderr, "shimmy serve: %s\n", err);
            return 1;
        }
        bool hidden = registry_find(r, a->alias, &d, NULL) && strcmp(d->name, a->model) != 0;
        model_rec_unref(d);
        if (hidden)
            log_warn("alias '%s' of '%s': a served model has that name and wins", a->alias,
                     a->model);
        else if (!registry_find(r, a->model, NULL, NULL))
            log_warn("alias '%s': no model '%s' is served", a->alias, a->model);
        else
            log_info("alias '%s' for model '%s'", a->alias, a->model);
    }
    return 0;
}

static registry *open_models(serve_opts *o) {
    char err[512];
    registry *r = registry_new(&o->eng);
    if (r == NULL) {
        fprintf(stderr, "shimmy serve: out of memory\n");
        return NULL;
    }
    registry_set_max_loaded(r, o->max_loaded);
    registry_set_max_ctx(r, o->max_ctx);
    registry_set_keep_alive(r, o->keep_ns);
    for (int i = 0; i < o->n_keeps; i++)
        if (registry_set_model_keep_alive(r, o->keeps[i].model, o->keeps[i].keep_ns) != SHIMMY_OK) {
            fprintf(stderr, "shimmy serve: out of memory\n");
            registry_free(r);
            return NULL;
        }
    registry_set_pull_missing(r, o->pull_missing);
    registry_set_memory_budget(r, o->max_bytes);
    disc_config dc = {.model_paths = o->models,
                      .n_paths = o->n_models,
                      .model_dirs = o->model_dirs,
                      .loras = o->loras,
                      .n_loras = o->n_loras,
                      .mmprojs = o->mmprojs,
                      .n_mmprojs = o->n_mmprojs};
    if (registry_discover(r, &dc, NULL, err, sizeof err) != SHIMMY_OK) {
        fprintf(stderr, "shimmy serve: %s\n", err);
        registry_free(r);
        return NULL;
    }
    if (add_aliases(r, o) != 0) {
        registry_free(r);
        return NULL;
    }
    report_models(r);
    /* Models named on the command line are loaded now, so that the first request is fast and a
     * broken file is reported at start-up. */
    const model_rec *d = NULL;
    for (size_t i = 0; registry_get(r, i, &d, NULL); i++) {
        shimmy_err e = strcmp(d->source, "cli") == 0 ? registry_preload(r, d->name, err, sizeof err)
                                                     : SHIMMY_OK;
        model_rec_unref(d);
        if (e != SHIMMY_OK) {
            fprintf(stderr, "shimmy serve: %s\n", err);
            registry_free(r);
            return NULL;
        }
    }
    return r;
}

int cli_serve(int argc, char **argv) {
    /* static: the option strings it points to (copies of --config values, template files,
     * aliases) live for the process, like argv; a static keeps them reachable at exit (what
     * make test-asan's leak check, and a reader, expect of process-lifetime memory) */
    static serve_opts o;
    memset(&o, 0, sizeof o);
    snprintf(o.host, sizeof o.host, "%s", LIM_DEFAULT_HOST);
    o.port = LIM_DEFAULT_PORT;
    o.max_loaded = LIM_DEFAULT_MAX_LOADED;
    o.keep_ns = -1;
    o.drain_ns = (int64_t)LIM_DRAIN_TIMEOUT_S * 1000000000;
    engine_options_default(&o.eng);
    o.eng.progress = cli_progress;
    o.eng.isolate = true; /* each model's engine in a process of its own (ADR 0005) */
    char cfg_buf[4096];
    api_presets *presets = NULL;
    o.config = config_path(argc, argv, cfg_buf, sizeof cfg_buf);
    int rc = cli_gpu_defaults("serve", &o.eng);
    if (rc == 0 && o.config != NULL)
        rc = serve_read_config(&o, &presets);
    if (rc == 0)
        rc = parse_args(argc, argv, &o);
    if (rc == 0)
        rc = trust_finish(&o.trust);
    if (rc != 0) {
        api_presets_free(presets);
        trust_free(&o.trust);
        return rc < 0 ? 0 : rc;
    }

    /* The warm engine process starts first: its exec and backend modules then overlap this
     * process's own (a model named on the command line is loaded in it below). */
    if (o.eng.isolate)
        engine_prestart();
    if (cli_engine_start("serve", &o.eng) != 0) {
        engine_prestart_stop();
        return 1;
    }
    char err[512];
    /* Block the stop signals in every thread; the main thread waits for them below. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGHUP); /* re-read --api-key-file and the --config file's presets */
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    static shimmy_app app; /* connection threads may outlive this function's frame at exit */
    app.started_ns = clock_mono_ns();
    app.no_metrics = o.no_metrics;
    api_presets_install(&app, presets);
    app.responses = resp_store_new(resp_store_count_from_env(), LIM_RESP_STORE_BYTES);
    app.models = open_models(&o);
    if (app.models == NULL) {
        engine_prestart_stop();
        return 1;
    }
    int port = pick_port(&o);
    if (port < 0) {
        fprintf(stderr, "shimmy serve: no free port in %d-%d on %s\n", LIM_DEFAULT_PORT,
                LIM_AUTO_PORT_LAST, o.host);
        registry_free(app.models);
        engine_prestart_stop();
        return 1;
    }
    http_config cfg = {.host = o.host,
                       .port = port,
                       .error_body = api_error_body,
                       .app = &app,
                       .trust = &o.trust.t,
                       .open_paths = api_open_paths(),
                       .admin_paths = api_admin_paths(),
                       .on_done = api_request_done};
    cfg.routes = api_routes(&cfg.n_routes);
    http_server *srv;
    if (http_server_start(&cfg, &srv, err, sizeof err) != SHIMMY_OK) {
        fprintf(stderr, "shimmy serve: %s\n", err);
        registry_free(app.models);
        engine_prestart_stop();
        trust_free(&o.trust);
        return 1;
    }
    trust_warn(o.host, &o.trust);
    int bound = http_server_port(srv);
    int is_v6 = strchr(o.host, ':') != NULL;
    printf("shimmy %s listening on %s://%s%s%s:%d (OpenAI API at /v1, Ollama at /api)\n",
           SHIMMY_VERSION, o.trust.t.tls_cert != NULL ? "https" : "http", is_v6 ? "[" : "", o.host,
           is_v6 ? "]" : "", bound);
    fflush(stdout);

    atomic_store(&app.ready, true);
    if (o.eng.isolate)
        engine_prestart_release(); /* the next warm engine process, after the preloads */
    int sig = 0;
    while (sigwait(&stop, &sig) == 0 && sig == SIGHUP)
        serve_reload(&o, &app, srv);
    serve_drain(&app, srv, o.drain_ns, &stop, sig);
    http_server_stop(srv);
    registry_free(app.models);
    engine_prestart_stop();
    trust_free(&o.trust);
    resp_store_free(app.responses);
    app.responses = NULL;
    api_presets_retire_all(&app);
    return 0;
}
