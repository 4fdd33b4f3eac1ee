/* cli/generate: `shimmy generate NAME --prompt TEXT`: streams a completion to stdout through the
 * same engine path as the server. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/limits.h"
#include "engine/engine.h"
#include "models/registry.h"

static const char generate_help[] =
    "usage: shimmy generate NAME --prompt TEXT [options]\n"
    "\n"
    "Completes TEXT with the model NAME (a name from 'shimmy list', or a path to a .gguf file)\n"
    "and streams the result to stdout.\n"
    "\n"
    "  --prompt TEXT          text to complete (required)\n"
    "  --max-tokens N         tokens to generate (default 128)\n"
    "  --temperature T        0 = greedy (default 0.8)\n"
    "  --seed S               random seed, for repeatable sampling\n"
    "  --model PATH, --model-dirs DIR;DIR, --ctx N, --threads N, --template NAME\n"
    "                         as for 'shimmy serve'\n" CLI_GPU_HELP
    "  --help                 this help\n";

typedef struct gen_opts {
    const char *name;
    const char *prompt;
    gen_params params;
    char *models[LIM_MODELS];
    int n_models;
    const char *model_dirs;
    engine_options eng;
} gen_opts;

static int parse_args(int argc, char **argv, gen_opts *o) {
    static const struct option longopts[] = {{"prompt", required_argument, NULL, 'P'},
                                             {"max-tokens", required_argument, NULL, 'n'},
                                             {"temperature", required_argument, NULL, 'e'},
                                             {"seed", required_argument, NULL, 's'},
                                             {"model", required_argument, NULL, 'm'},
                                             {"model-dirs", required_argument, NULL, 'd'},
                                             {"ctx", required_argument, NULL, 'c'},
                                             {"threads", required_argument, NULL, 't'},
                                             {"template", required_argument, NULL, 'T'},
                                             {"help", no_argument, NULL, 'h'},
                                             {"chat-template-file", required_argument, NULL, 'J'},
                                             CLI_GPU_LONGOPTS,
                                             {NULL, 0, NULL, 0}};
    opterr = 0;
    optind = 1;
    int opt;
    long v;
    double d;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        int r = cli_parse_engine_flag("generate", opt, optarg, &o->eng);
        if (r == 2)
            return 2;
        if (r == 1)
            continue;
        switch (opt) {
        case 'P':
            o->prompt = optarg;
            break;
        case 'n':
            if (cli_parse_int(optarg, 1, LIM_MAX_TOKENS, &v) != 0)
                return cli_usage_error("generate", "--max-tokens must be an integer from 1 to %d",
                                       LIM_MAX_TOKENS);
            o->params.max_tokens = (int)v;
            break;
        case 'e':
            if (cli_parse_float(optarg, 0, 2, &d) != 0)
                return cli_usage_error("generate", "--temperature must be a number from 0 to 2");
            o->params.temperature = (float)d;
            break;
        case 's':
            if (cli_parse_int(optarg, 0, 4294967295L, &v) != 0)
                return cli_usage_error("generate",
                                       "--seed must be an integer from 0 to 4294967295");
            o->params.seed = (uint32_t)v;
            o->params.has_seed = true;
            break;
        case 'm':
            if (o->n_models >= LIM_MODELS)
                return cli_usage_error("generate", "at most %d --model options", LIM_MODELS);
            o->models[o->n_models++] = optarg;
            break;
        case 'd':
            o->model_dirs = optarg;
            break;
        case 'h':
            fputs(generate_help, stdout);
            return -1;
        case ':':
            return cli_usage_error("generate", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("generate", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return cli_usage_error("generate", "missing the model NAME");
    if (optind != argc - 1)
        return cli_usage_error("generate", "unexpected argument '%s'", argv[argc - 1]);
    o->name = argv[optind];
    if (o->prompt == NULL)
        return cli_usage_error("generate", "--prompt TEXT is required");
    return 0;
}

/* A NAME that is a path to a file is served as an extra --model. */
static const char *resolve_name(gen_opts *o, registry *r, char *out, size_t len) {
    const model_rec *d = NULL;
    if (registry_find(r, o->name, NULL, NULL))
        return o->name;
    char err[1024];
    if (registry_lookup(r, o->name, err, sizeof err) == ERR_UNSUPPORTED) {
        fprintf(stderr, "shimmy generate: %s\n", err); /* an MLX model */
        return NULL;
    }
    if (strchr(o->name, '/') != NULL || strstr(o->name, ".gguf") != NULL) {
        if (registry_add(r, o->name, NULL, "cli", err, sizeof err) != SHIMMY_OK) {
            fprintf(stderr, "shimmy generate: %s\n", err);
            return NULL;
        }
        for (size_t i = 0; registry_get(r, i, &d, NULL); i++) {
            bool cli = strcmp(d->source, "cli") == 0;
            if (cli)
                snprintf(out, len, "%s", d->name);
            model_rec_unref(d);
            if (cli)
                return out;
        }
    }
    fprintf(stderr, "shimmy generate: no model named '%s' (see 'shimmy list')\n", o->name);
    return NULL;
}

static int run(gen_opts *o, registry *r) {
    char err[512], namebuf[256];
    const char *name = resolve_name(o, r, namebuf, sizeof namebuf);
    if (name == NULL)
        return 1;
    engine_model *m;
    if (registry_acquire(r, name, &m, err, sizeof err) != SHIMMY_OK) {
        fprintf(stderr, "shimmy generate: %s\n", err);
        return 1;
    }
    gen_request req = {.prompt = o->prompt, .params = o->params};
    gen_job *job;
    int rc = 0;
    if (engine_submit(m, &req, &job, err, sizeof err, NULL, 0) != SHIMMY_OK) {
        fprintf(stderr, "shimmy generate: %s\n", err);
        registry_release(r, m);
        return 1;
    }
    gen_events ev;
    gen_events_init(&ev);
    gen_status st;
    do {
        engine_job_wait(job, 1000, &ev, &st);
        for (size_t i = 0; i < ev.n; i++)
            fwrite(ev.ev[i].text, 1, ev.ev[i].len, stdout);
        fflush(stdout);
    } while (!st.done);
    putchar('\n');
    if (st.finish == FINISH_ERROR) {
        fprintf(stderr, "shimmy generate: %s\n", st.errmsg);
        rc = 1;
    }
    gen_events_free(&ev);
    engine_job_release(job);
    registry_release(r, m);
    return rc;
}

int cli_generate(int argc, char **argv) {
    gen_opts o;
    memset(&o, 0, sizeof o);
    gen_params_default(&o.params);
    o.params.max_tokens = 128;
    engine_options_default(&o.eng);
    o.eng.progress = cli_progress;
    o.eng.n_parallel = 1;
    int rc = cli_gpu_defaults("generate", &o.eng);
    if (rc == 0)
        rc = parse_args(argc, argv, &o);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    if (cli_engine_start("generate", &o.eng) != 0)
        return 1;
    char err[512];
    registry *r = registry_new(&o.eng);
    if (r == NULL)
        return 1;
    if (registry_add_sources(r, o.models, o.n_models, o.model_dirs, err, sizeof err) != SHIMMY_OK) {
        fprintf(stderr, "shimmy generate: %s\n", err);
        registry_free(r);
        return 1;
    }
    rc = run(&o, r);
    registry_free(r);
    return rc;
}
