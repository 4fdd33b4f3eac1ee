/* api/metrics: see metrics.h. The stores of finished requests first, then the request log line,
 * then the exposition: counters and histograms, then the gauges read from the registry. */
#include "api/metrics.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api_internal.h"
#include "core/clock.h"
#include "core/limits.h"
#include "core/log.h"

/* ---- histograms ---- */

typedef struct met_hist {
    uint64_t le[LIM_METRICS_BUCKETS]; /* observations <= the bucket's bound (not cumulative here) */
    uint64_t count;
    double sum; /* seconds */
} met_hist;

/* Bucket bounds, seconds. */
static const double ttft_le[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
static const double tpot_le[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1};
static const double dur_le[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                1,     2.5,  5,     10,   30,  60,   300};
#define NB(a) (sizeof(a) / sizeof(a)[0])

static void hist_observe(met_hist *h, const double *bounds, size_t nb, double v) {
    for (size_t i = 0; i < nb; i++) {
        if (v <= bounds[i]) {
            h->le[i]++;
            break;
        }
    }
    h->count++;
    h->sum += v;
}

/* ---- the stores ---- */

typedef struct met_req {
    char route[64];
    const char *api; /* static */
    int status;
    uint64_t n;
} met_req;

typedef struct met_route {
    char route[64];
    met_hist dur;
} met_route;

typedef struct met_model {
    char name[128];
    uint64_t requests, prompt, cached, generated;
    met_hist ttft, tpot;
} met_model;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static met_req reqs[LIM_METRICS_REQ_ROWS];
static size_t n_reqs;
static met_route routes[LIM_METRICS_REQ_ROWS];
static size_t n_routes;
static met_model models[LIM_METRICS_MODELS + 1]; /* + "other" */
static size_t n_models;

/* The protocol a route belongs to. */
static const char *route_api(const char *route) {
    if (route == NULL)
        return "none";
    if (strncmp(route, "/api/", 5) == 0)
        return "ollama";
    if (strncmp(route, "/v1/messages", 12) == 0)
        return "anthropic";
    if (strstr(route, "/responses") != NULL)
        return "responses";
    if (strncmp(route, "/v1/", 4) == 0 || strcmp(route, "/chat/completions") == 0 ||
        strcmp(route, "/completions") == 0 || strcmp(route, "/embeddings") == 0 ||
        strncmp(route, "/models", 7) == 0)
        return strcmp(route, "/v1/health") == 0 ? "shimmy" : "openai";
    return "shimmy";
}

/* Row of (route, status), made on first use; NULL when the table is full. mu held. */
static met_req *req_row(const char *route, int status) {
    for (size_t i = 0; i < n_reqs; i++)
        if (reqs[i].status == status && strcmp(reqs[i].route, route) == 0)
            return &reqs[i];
    if (n_reqs == LIM_METRICS_REQ_ROWS)
        return NULL;
    met_req *r = &reqs[n_reqs++];
    snprintf(r->route, sizeof r->route, "%s", route);
    r->api = route_api(route[0] == '\0' ? NULL : route);
    r->status = status;
    return r;
}

static met_route *route_row(const char *route) {
    for (size_t i = 0; i < n_routes; i++)
        if (strcmp(routes[i].route, route) == 0)
            return &routes[i];
    if (n_routes == LIM_METRICS_REQ_ROWS)
        return NULL;
    met_route *r = &routes[n_routes++];
    snprintf(r->route, sizeof r->route, "%s", route);
    return r;
}

/* Row of a model; past LIM_METRICS_MODELS names, the shared "other" row. mu held. */
static met_model *model_row(const char *name) {
    for (size_t i = 0; i < n_models; i++)
        if (strcmp(models[i].name, name) == 0)
            return &models[i];
    if (n_models == LIM_METRICS_MODELS) {
        snprintf(models[n_models].name, sizeof models[0].name, "other");
        return &models[n_models];
    }
    met_model *m = &models[n_models++];
    snprintf(m->name, sizeof m->name, "%s", name);
    return m;
}

static void record_model(const http_done *d) {
    const http_note *nt = d->note;
    met_model *m = model_row(nt->model);
    m->requests++;
    m->prompt += (uint64_t)(nt->prompt_tokens > 0 ? nt->prompt_tokens : 0);
    m->cached += (uint64_t)(nt->cached_tokens > 0 ? nt->cached_tokens : 0);
    m->generated += (uint64_t)(nt->output_tokens > 0 ? nt->output_tokens : 0);
    if (nt->first_ns > 0)
        hist_observe(&m->ttft, ttft_le, NB(ttft_le), (double)(nt->first_ns - d->start_ns) / 1e9);
    if (nt->first_ns > 0 && nt->gen_end_ns > nt->first_ns && nt->output_tokens > 1)
        hist_observe(&m->tpot, tpot_le, NB(tpot_le),
                     (double)(nt->gen_end_ns - nt->first_ns) / 1e9 / (nt->output_tokens - 1));
}

void metrics_record(const http_done *d) {
    const char *route = d->route != NULL ? d->route : "";
    pthread_mutex_lock(&mu);
    met_req *r = req_row(route, d->status);
    if (r == NULL)
        r = req_row("other", d->status); /* may still be NULL: the table is full */
    if (r != NULL)
        r->n++;
    met_route *rt = d->route != NULL ? route_row(route) : NULL;
    if (rt != NULL)
        hist_observe(&rt->dur, dur_le, NB(dur_le), (double)(d->end_ns - d->start_ns) / 1e9);
    if (d->note != NULL && d->note->model_served)
        record_model(d);
    pthread_mutex_unlock(&mu);
}

/* ---- the request log ---- */

static void log_request(const http_done *d) {
    const http_note *nt = d->note;
    log_field f[12];
    size_t n = 0;
    f[n++] = (log_field){"id", d->request_id, 0};
    f[n++] = (log_field){"method", d->method, 0};
    f[n++] = (log_field){"path", d->path, 0};
    f[n++] = (log_field){"status", NULL, d->status};
    if (nt != NULL && nt->model[0] != '\0') {
        f[n++] = (log_field){"model", nt->model, 0};
        f[n++] = (log_field){"prompt_tokens", NULL, nt->prompt_tokens};
        f[n++] = (log_field){"output_tokens", NULL, nt->output_tokens};
        if (nt->first_ns > 0)
            f[n++] =
                (log_field){"ttft_ms", NULL, (double)((nt->first_ns - d->start_ns) / 100000) / 10};
        if (nt->outcome != NULL)
            f[n++] = (log_field){"finish", nt->outcome, 0};
    }
    f[n++] = (log_field){"duration_ms", NULL, (double)((d->end_ns - d->start_ns) / 100000) / 10};
    f[n++] = (log_field){"client", d->client, 0};
    log_fields(LOG_INFO, "request", f, n);
}

void api_request_done(void *app, const http_done *d) {
    (void)app;
    metrics_record(d);
    log_request(d);
}

/* ---- exposition: counters and histograms ---- */

/* A label value escaped as the format wants (backslash, quote, newline). */
static void put_label(buf *b, const char *v) {
    for (const char *p = v; *p; p++) {
        if (*p == '\\' || *p == '"')
            buf_printf(b, "\\%c", *p);
        else if (*p == '\n')
            buf_puts(b, "\\n");
        else
            buf_append(b, p, 1);
    }
}

static void family(buf *b, const char *name, const char *type, const char *help) {
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{label="value"} v */
static void sample1(buf *b, const char *name, const char *label, const char *value, double v) {
    buf_printf(b, "%s{%s=\"", name, label);
    put_label(b, value);
    buf_printf(b, "\"} %.17g\n", v);
}

static void hist_put(buf *b, const char *name, const char *label, const char *value,
                     const met_hist *h, const double *bounds, size_t nb) {
    uint64_t cum = 0;
    for (size_t i = 0; i < nb; i++) {
        cum += h->le[i];
        buf_printf(b, "%s_bucket{%s=\"", name, label);
        put_label(b, value);
        buf_printf(b, "\",le=\"%g\"} %" PRIu64 "\n", bounds[i], cum);
    }
    buf_printf(b, "%s_bucket{%s=\"", name, label);
    put_label(b, value);
    buf_printf(b, "\",le=\"+Inf\"} %" PRIu64 "\n", h->count);
    buf_printf(b, "%s_sum{%s=\"", name, label);
    put_label(b, value);
    buf_printf(b, "\"} %.9g\n", h->sum);
    buf_printf(b, "%s_count{%s=\"", name, label);
    put_label(b, value);
    buf_printf(b, "\"} %" PRIu64 "\n", h->count);
}

static void put_requests(buf *b) {
    family(b, "shimmy_requests_total", "counter",
           "HTTP requests finished, by route, API and status.");
    for (size_t i = 0; i < n_reqs; i++) {
        buf_puts(b, "shimmy_requests_total{route=\"");
        put_label(b, reqs[i].route);
        buf_printf(b, "\",api=\"%s\",status=\"%d\"} %" PRIu64 "\n", reqs[i].api, reqs[i].status,
                   reqs[i].n);
    }
    family(b, "shimmy_request_duration_seconds", "histogram",
           "Time from the request line to the end of the response, by route.");
    for (size_t i = 0; i < n_routes; i++)
        hist_put(b, "shimmy_request_duration_seconds", "route", routes[i].route, &routes[i].dur,
                 dur_le, NB(dur_le));
}

/* A per-model counter family from the field at offset off of met_model. */
static void put_model_counter(buf *b, const char *name, const char *help, size_t off) {
    size_t n = n_models + (models[LIM_METRICS_MODELS].name[0] != '\0');
    family(b, name, "counter", help);
    for (size_t i = 0; i < n; i++) {
        size_t k = i < n_models ? i : LIM_METRICS_MODELS;
        uint64_t v;
        memcpy(&v, (const char *)&models[k] + off, sizeof v);
        sample1(b, name, "model", models[k].name, (double)v);
    }
}

static void put_models(buf *b) {
    size_t n = n_models + (models[LIM_METRICS_MODELS].name[0] != '\0');
    put_model_counter(b, "shimmy_generation_requests_total", "Generation requests finished.",
                      offsetof(met_model, requests));
    put_model_counter(b, "shimmy_prompt_tokens_total", "Prompt tokens of finished requests.",
                      offsetof(met_model, prompt));
    put_model_counter(b, "shimmy_prompt_tokens_cached_total",
                      "Prompt tokens reused from the KV cache instead of computed.",
                      offsetof(met_model, cached));
    put_model_counter(b, "shimmy_generated_tokens_total", "Tokens generated.",
                      offsetof(met_model, generated));
    family(b, "shimmy_time_to_first_token_seconds", "histogram",
           "Time from the request line to the first generated token.");
    for (size_t i = 0; i < n; i++) {
        const met_model *m = &models[i < n_models ? i : LIM_METRICS_MODELS];
        hist_put(b, "shimmy_time_to_first_token_seconds", "model", m->name, &m->ttft, ttft_le,
                 NB(ttft_le));
    }
    family(b, "shimmy_time_per_output_token_seconds", "histogram",
           "Generation time per token after the first, one observation per request.");
    for (size_t i = 0; i < n; i++) {
        const met_model *m = &models[i < n_models ? i : LIM_METRICS_MODELS];
        hist_put(b, "shimmy_time_per_output_token_seconds", "model", m->name, &m->tpot, tpot_le,
                 NB(tpot_le));
    }
}

/* ---- exposition: gauges from the registry ---- */

typedef struct met_snap {
    const model_rec *d; /* owned reference */
    model_status st;
    engine_model_info info; /* valid when st.loaded */
} met_snap;

/* Bytes resident of process pid (0 = this one) from /proc; -1 when unknown. */
static double rss_bytes(int pid) {
    char path[64];
    if (pid > 0)
        snprintf(path, sizeof path, "/proc/%d/statm", pid);
    else
        snprintf(path, sizeof path, "/proc/self/statm");
    FILE *f = fopen(path, "r");
    unsigned long long size = 0, res = 0;
    int ok = f != NULL && fscanf(f, "%llu %llu", &size, &res) == 2;
    if (f != NULL)
        fclose(f);
    return ok ? (double)res * (double)sysconf(_SC_PAGESIZE) : -1;
}

typedef double (*snap_fn)(const met_snap *s);

static double g_slots(const met_snap *s) {
    return s->info.n_parallel;
}
static double g_busy(const met_snap *s) {
    return s->info.active_slots;
}
static double g_queued(const met_snap *s) {
    return s->info.queued;
}
static double g_kv(const met_snap *s) {
    return s->info.kv_cells;
}
static double g_kv_used(const met_snap *s) {
    return s->info.kv_cells_used;
}
static double g_pc_bytes(const met_snap *s) {
    return (double)s->info.cache.bytes;
}
static double g_crashes(const met_snap *s) {
    return s->info.crashes;
}
static bool spec_on(const met_snap *s) {
    return strcmp(s->info.spec_type, "none") != 0;
}
static double g_drafted(const met_snap *s) {
    return spec_on(s) ? (double)s->info.spec_drafted : -1;
}
static double g_accepted(const met_snap *s) {
    return spec_on(s) ? (double)s->info.spec_accepted : -1;
}
static double g_engine_rss(const met_snap *s) {
    return s->info.pid > 0 ? rss_bytes(s->info.pid) : -1;
}

/* A gauge family over the loaded models (a value < 0 is left out). */
static void put_loaded(buf *b, const met_snap *s, size_t n, const char *name, const char *type,
                       const char *help, snap_fn fn) {
    family(b, name, type, help);
    for (size_t i = 0; i < n; i++) {
        double v = s[i].st.loaded ? fn(&s[i]) : -1;
        if (v >= 0)
            sample1(b, name, "model", s[i].d->name, v);
    }
}

static void put_layers(buf *b, const met_snap *s, size_t n) {
    family(b, "shimmy_model_layers", "gauge",
           "Offloadable layers of a loaded model on each device (the CPU included).");
    for (size_t i = 0; i < n; i++) {
        for (int k = 0; s[i].st.loaded && k < s[i].info.n_devices; k++) {
            const engine_device_use *u = &s[i].info.devices[k];
            buf_puts(b, "shimmy_model_layers{model=\"");
            put_label(b, s[i].d->name);
            buf_puts(b, "\",device=\"");
            put_label(b, u->name);
            buf_puts(b, "\",backend=\"");
            put_label(b, u->backend);
            buf_printf(b, "\"} %d\n", u->layers);
        }
    }
}

static void put_load_times(buf *b, const met_snap *s, size_t n) {
    family(b, "shimmy_model_loads_total", "counter", "Successful loads of a model.");
    for (size_t i = 0; i < n; i++)
        if (s[i].st.loads > 0)
            sample1(b, "shimmy_model_loads_total", "model", s[i].d->name, (double)s[i].st.loads);
    family(b, "shimmy_model_load_seconds", "gauge", "Duration of the model's last load.");
    for (size_t i = 0; i < n; i++)
        if (s[i].st.loads > 0)
            sample1(b, "shimmy_model_load_seconds", "model", s[i].d->name,
                    (double)s[i].st.load_ns / 1e9);
}

static void put_gauges(buf *b, shimmy_app *app, const met_snap *s, size_t n) {
    size_t loaded = 0;
    for (size_t i = 0; i < n; i++)
        loaded += s[i].st.loaded;
    family(b, "shimmy_models", "gauge", "Models the server can serve.");
    buf_printf(b, "shimmy_models %zu\n", n);
    family(b, "shimmy_models_loaded", "gauge", "Models loaded now.");
    buf_printf(b, "shimmy_models_loaded %zu\n", loaded);
    put_load_times(b, s, n);
    put_loaded(b, s, n, "shimmy_slots", "gauge", "Parallel slots of a loaded model.", g_slots);
    put_loaded(b, s, n, "shimmy_slots_busy", "gauge", "Slots generating now.", g_busy);
    put_loaded(b, s, n, "shimmy_queue_depth", "gauge", "Requests waiting for a slot.", g_queued);
    put_loaded(b, s, n, "shimmy_kv_cache_cells", "gauge", "KV cache cells, all slots.", g_kv);
    put_loaded(b, s, n, "shimmy_kv_cache_cells_used", "gauge", "KV cache cells holding tokens.",
               g_kv_used);
    put_loaded(b, s, n, "shimmy_prompt_cache_bytes", "gauge",
               "Host-RAM prompt cache in use (--cache-ram).", g_pc_bytes);
    put_loaded(b, s, n, "shimmy_engine_crashes_total", "counter",
               "Deaths of the model's engine process.", g_crashes);
    put_loaded(b, s, n, "shimmy_engine_resident_memory_bytes", "gauge",
               "Resident memory of the model's engine process.", g_engine_rss);
    put_loaded(b, s, n, "shimmy_spec_draft_tokens_total", "counter",
               "Speculative decoding: tokens drafted since the model loaded.", g_drafted);
    put_loaded(b, s, n, "shimmy_spec_accepted_tokens_total", "counter",
               "Speculative decoding: drafted tokens kept (the model sampled the same).",
               g_accepted);
    put_layers(b, s, n);
    family(b, "shimmy_ready", "gauge", "1 when GET /health?ready=1 answers 200.");
    buf_printf(b, "shimmy_ready %d\n", atomic_load(&app->ready) ? 1 : 0);
    family(b, "shimmy_uptime_seconds", "gauge", "Seconds since start-up.");
    buf_printf(b, "shimmy_uptime_seconds %.3f\n",
               (double)(clock_mono_ns() - app->started_ns) / 1e9);
    double rss = rss_bytes(0);
    family(b, "process_resident_memory_bytes", "gauge", "Resident memory of the server process.");
    buf_printf(b, "process_resident_memory_bytes %.17g\n", rss > 0 ? rss : 0);
}

/* The registry's models and their engine figures, copied once per scrape. */
static met_snap *snapshot(registry *r, size_t *n) {
    size_t cap = registry_count(r);
    met_snap *s = calloc(cap > 0 ? cap : 1, sizeof *s);
    *n = 0;
    if (s == NULL)
        return NULL;
    while (*n < cap && registry_info(r, *n, &s[*n].d, &s[*n].st, &s[*n].info))
        (*n)++;
    return s;
}

static void snapshot_free(met_snap *s, size_t n) {
    for (size_t i = 0; s != NULL && i < n; i++)
        model_rec_unref(s[i].d);
    free(s);
}

shimmy_err metrics_render(shimmy_app *app, buf *out) {
    size_t n = 0;
    met_snap *s = app->models != NULL ? snapshot(app->models, &n) : NULL;
    if (s == NULL && app->models != NULL)
        return ERR_NOMEM;
    pthread_mutex_lock(&mu);
    put_requests(out);
    put_models(out);
    pthread_mutex_unlock(&mu);
    put_gauges(out, app, s, n);
    snapshot_free(s, n);
    /* buf drops what does not fit: a body that reached the limit lost lines */
    return out->max > 0 && out->len + 1 >= out->max ? ERR_TOO_LARGE : SHIMMY_OK;
}

void api_handle_metrics(const http_request *req, http_response *res) {
    shimmy_app *app = req->app;
    if (app->no_metrics) {
        api_error ae;
        api_fail(&ae, ERR_NOT_FOUND, NULL, "metrics are off (--no-metrics)");
        api_reply_error(res, &oai_chat_proto, &ae);
        return;
    }
    res->content_type = "text/plain; version=0.0.4; charset=utf-8";
    if (metrics_render(app, &res->body) != SHIMMY_OK) {
        api_error ae;
        api_fail(&ae, ERR_INTERNAL, NULL, "the metrics are larger than the response limit");
        api_reply_error(res, &oai_chat_proto, &ae);
    }
}
