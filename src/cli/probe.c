/* cli/probe: `shimmy probe NAME` finds the model as serve would, loads it, generates one token
 * and reports the load time, the time to that token and the memory it took (weights as llama.cpp
 * reports them, and the growth of the process's resident memory). Exit 0 when all of that
 * worked, 1 with the reason otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/sources.h"
#include "core/clock.h"
#include "core/limits.h"

static void probe_usage(FILE *f) {
    fprintf(f,
            "usage: shimmy probe NAME [--model PATH]... [--model-dirs DIRS] [--lora M=PATH[:S]]\n"
            "                   [--ctx N] [--threads N]\n\n"
            "Loads model NAME (found as `shimmy list` finds it), generates one token, and\n"
            "prints the load time, the first-token time and the memory used. Exits 0 when the\n"
            "model works, 1 with the reason when it does not.\n");
}

/* Resident memory of this process in bytes (0 when unknown). */
static uint64_t rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long pages = 0, res = 0;
    if (f == NULL)
        return 0;
    if (fscanf(f, "%llu %llu", &pages, &res) != 2)
        res = 0;
    fclose(f);
    return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
}

static int parse(int argc, char **argv, cli_sources *s, engine_options *eng, const char **name) {
    for (int i = 1; i < argc; i++) {
        long v;
        int r = cli_sources_arg("probe", argc, argv, &i, s);
        if (r == 2)
            return 2;
        if (r == 1)
            continue;
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            probe_usage(stdout);
            return 0;
        }
        if ((strcmp(a, "--ctx") == 0 || strcmp(a, "--threads") == 0) && i + 1 < argc) {
            if (cli_parse_int(argv[++i], 1, 1 << 20, &v) != 0)
                return cli_usage_error("probe", "%s wants a positive integer", a);
            *(strcmp(a, "--ctx") == 0 ? &eng->n_ctx : &eng->n_threads) = (int)v;
        } else if (a[0] == '-') {
            return cli_usage_error("probe", "unknown option '%s'", a);
        } else if (*name == NULL) {
            *name = a;
        } else {
            return cli_usage_error("probe", "unexpected argument '%s'", a);
        }
    }
    if (*name == NULL)
        return cli_usage_error("probe", "name the model to probe");
    return -1;
}

/* Generates one token; fills the first-token time. */
static shimmy_err one_token(engine_model *m, int64_t *ns, char *err, size_t errlen) {
    gen_request req;
    memset(&req, 0, sizeof req);
    gen_params_default(&req.params);
    req.params.max_tokens = 1;
    req.params.temperature = 0;
    req.prompt = "Hello";
    gen_job *job;
    int64_t t0 = clock_mono_ns();
    shimmy_err rc = engine_submit(m, &req, &job, err, errlen, NULL, 0);
    if (rc != SHIMMY_OK)
        return rc;
    gen_events ev;
    gen_status st;
    gen_events_init(&ev);
    do
        rc = engine_job_wait(job, 1000, &ev, &st);
    while (rc == SHIMMY_OK && !st.done);
    *ns = clock_mono_ns() - t0;
    if (rc == SHIMMY_OK && st.finish == FINISH_ERROR)
        rc = err_set(err, errlen, st.error ? st.error : ERR_INTERNAL, "%s", st.errmsg);
    gen_events_free(&ev);
    engine_job_release(job);
    return rc;
}

int cli_probe(int argc, char **argv) {
    cli_sources s;
    engine_options eng;
    const char *name = NULL;
    memset(&s, 0, sizeof s);
    engine_options_default(&eng);
    eng.progress = cli_progress;
    eng.n_parallel = 1;
    int rc = parse(argc, argv, &s, &eng, &name);
    if (rc >= 0)
        return rc;
    char err[1024];
    if (cli_gpu_defaults("probe", &eng) != 0 || cli_engine_start("probe", &eng) != 0)
        return 1;
    registry *r = cli_sources_registry("probe", &s, &eng, NULL);
    if (r == NULL)
        return 1;
    const model_rec *d = NULL;
    engine_model *m = NULL;
    int64_t tok_ns = 0;
    uint64_t rss0 = rss_bytes();
    int64_t t0 = clock_mono_ns();
    shimmy_err e = registry_lookup(r, name, err, sizeof err);
    if (e == ERR_MODEL_NOT_FOUND)
        err_set(err, sizeof err, e, "no model named '%s' (see shimmy list)", name);
    else if (e == SHIMMY_OK && !registry_find(r, name, &d, NULL))
        e = err_set(err, sizeof err, ERR_MODEL_NOT_FOUND, "no model named '%s'", name);
    else if (e == SHIMMY_OK)
        e = registry_acquire(r, name, &m, err, sizeof err);
    int64_t load_ns = clock_mono_ns() - t0;
    if (e == SHIMMY_OK)
        e = one_token(m, &tok_ns, err, sizeof err);
    if (e != SHIMMY_OK) {
        fprintf(stderr, "shimmy probe: %s: FAILED: %s\n", name, err);
        model_rec_unref(d);
        registry_release(r, m);
        registry_free(r);
        return 1;
    }
    engine_model_info info;
    engine_model_get_info(m, &info);
    uint64_t rss1 = rss_bytes();
    printf("%s: OK\n  file:        %s\n  source:      %s\n  adapter:     %s\n"
           "  model:       %s\n  load:        %.0f ms\n  first token: %.0f ms\n"
           "  weights:     %.1f MiB\n  memory:      +%.1f MiB resident\n  context:     %d tokens\n",
           d->name, d->path, d->source, d->adapter[0] ? d->adapter : "-", info.desc,
           (double)load_ns / 1e6, (double)tok_ns / 1e6, (double)info.size_bytes / 1048576.0,
           rss1 > rss0 ? (double)(rss1 - rss0) / 1048576.0 : 0.0, info.n_ctx_slot);
    model_rec_unref(d);
    registry_release(r, m);
    registry_free(r);
    return 0;
}
