/* engine/sched: engine.h. One engine thread per loaded model runs continuous batching over N
 * slots: each step is one be_decode holding the next token of every generating slot plus chunks
 * of pending prompts. Requests wait in a bounded FIFO; a free slot takes the next request, and
 * when several slots are free the one whose KV cache shares the longest prefix with the prompt.
 * Jobs are shared by the submitter and the engine thread (reference counted); text flows back
 * through the job's buffer, filtered by textout (UTF-8 whole, stop strings held back); a chat
 * job's waiter parses it (engine/llama_chat.h) into answer, reasoning and tool-call events. */
#include <fnmatch.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/limits.h"
#include "core/log.h"
#include "engine/backend.h"
#include "engine/engine.h"
#include "engine/llama_chat.h"
#include "engine/ops.h"
#include "engine/pcache.h"
#include "engine/spec.h"
#include "engine/textout.h"

typedef struct sched_model sched_model;
typedef struct sched_job sched_job;

struct sched_job {
    engine_hdr hdr; /* first: engine.c dispatches on it */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs; /* submitter + engine, under mu */
    atomic_bool cancel;
    be_token *tokens; /* prompt, owned; media positions hold placeholders (backend.h) */
    int n_tokens;
    be_media *media;   /* the prompt's images and audio, owned; NULL = none */
    gen_params params; /* stop strings point into stop_copy */
    char **stop_copy;  /* the request's stop strings, then the chat format's */
    lchat_render r;    /* chat: grammar, triggers, preserved tokens, parser; raw: grammar */
    uint32_t seed;
    buf out;                /* text not yet taken by sched_job_wait, under mu */
    gen_events lp;          /* log-probability events not yet taken, under mu (logprobs) */
    gen_status st;          /* under mu */
    bool start_news;        /* it just got a slot and no wait has returned since (under mu):
                             * an engine process reports the start at once (ADR 0005) */
    int64_t t_submit;       /* ns, monotonic */
    struct sched_job *next; /* queue link, under the model's mu */
    /* the waiter's (sched_job_wait): */
    buf answer;        /* all text so far, for the parser */
    gen_events lp_w;   /* the log-probability events of this wait */
    bool parsed_final; /* the final parse was done */
    int n_tool_calls;
};

typedef enum { SLOT_IDLE, SLOT_PROMPT, SLOT_GEN } slot_state;

typedef struct slot {
    int id; /* sequence id in the KV cache */
    slot_state state;
    sched_job *job;
    be_token *cache; /* tokens held in this slot's KV cache, n_ctx_slot capacity */
    int n_cache;
    int pos_next;      /* the KV position of the token after cache[n_cache - 1]: n_cache, less what
                        * the job's media before it take in tokens beyond positions (M-RoPE images,
                        * job_pos); set from slot_start to the job's end */
    int n_prompt_done; /* prompt tokens in the cache */
    be_sampler *smpl;
    textout tout;
    buf emit;      /* scratch: text produced this step */
    buf piece;     /* scratch: one token's text */
    gen_events lp; /* log-probability events of this step, published with emit */
    be_logprob lpv[LIM_TOP_LOGPROBS + 1]; /* scratch: the sampled token's, then the top ones */
    be_token last;                        /* sampled, not yet in the cache */
    int out_idx;                          /* output index in this step's batch, -1 = none */
    int n_gen;
    int64_t t_start, t_first; /* ns */
    uint64_t last_used;       /* step counter when it last finished, for LRU choice */
    /* speculative decoding (sched_model.spec): made at load, reused every step */
    be_token *draft;                     /* this step's proposal, LIM_DRAFT_TOKENS capacity */
    int n_draft;                         /* tokens of it in this step's batch (after last) */
    int draft_cap;                       /* the most this step may propose */
    int draft_idx[LIM_DRAFT_TOKENS + 1]; /* output indexes of last, then of each draft token */
    int n_dcache;                        /* tokens of cache held by the draft model's sequence */
    int n_drafted, n_accepted;           /* this job's drafted and kept tokens */
} slot;

struct sched_model {
    engine_hdr hdr; /* first: engine.c dispatches on it */
    be_model *be;
    pthread_t thread;
    pthread_mutex_t mu; /* guards queue, n_queued, stopping, n_active */
    pthread_cond_t cv;
    sched_job *q_head, *q_tail;
    int n_queued, queue_max;
    int n_active;
    bool stopping;
    slot *slots;
    int n_slots;
    uint64_t step;
    char name[256];
    struct embed_job *e_head;    /* embedding requests, under mu */
    pcache pc;                   /* host-RAM prompt cache; engine thread */
    engine_cache_stats pc_stats; /* under mu */
    atomic_int kv_used;          /* KV cells holding tokens, all slots; set after each step */
    atomic_llong prompt_evals;   /* prompt tokens evaluated (not reused or copied), ever */
    atomic_llong kv_copies;      /* prompts copied from another slot's KV cache, ever */
    /* speculative decoding (engine_options; docs/SPECULATIVE.md) */
    engine_spec_type spec;
    int draft_max, draft_min, ngram_n, ngram_m;
    float draft_p_min;
    atomic_llong spec_drafted, spec_accepted, spec_steps; /* ever */
    sched_news_fn news; /* NULL, or the engine process's hook (ops.h); set before the thread */
    void *news_ctx;
};

/* One sched_embed call, waiting in the model's queue; the caller blocks on cv (model's mu). */
typedef struct embed_job {
    const char *const *texts;
    size_t n;
    const engine_embed_input *inputs; /* engine_embed_inputs: instead of texts */
    bool truncate;
    const char *query; /* engine_rerank: texts are the documents, out one score each */
    float *out;
    int n_embd, n_tokens;
    shimmy_err rc;
    char err[256];
    bool done;
    pthread_cond_t cv;
    struct embed_job *next;
} embed_job;

const char *finish_reason_str(finish_reason f) {
    switch (f) {
    case FINISH_STOP:
        return "stop";
    case FINISH_LENGTH:
        return "length";
    case FINISH_CANCELLED:
        return "cancelled";
    case FINISH_ERROR:
        return "error";
    case FINISH_TOOL_CALLS:
        return "tool_calls";
    default:
        return NULL;
    }
}

void engine_options_default(engine_options *o) {
    memset(o, 0, sizeof *o);
    o->n_parallel = LIM_DEFAULT_PARALLEL;
    o->cache_ram_mib = -1;
}

bool engine_name_matches(const char *pattern, const char *name) {
    return strcmp(pattern, name) == 0 || fnmatch(pattern, name, 0) == 0;
}

void engine_options_for_model(engine_options *o, const char *name) {
    for (int i = 0; i < o->n_overrides; i++) {
        const model_gpu_override *v = &o->overrides[i];
        if (!engine_name_matches(v->model, name))
            continue;
        if (v->set_backend)
            o->gpu_backend = v->backend;
        if (v->set_layers) {
            o->gpu_layers_mode = v->layers_mode;
            o->gpu_layers = v->layers;
        }
        o->cache_type_k = v->set_cache_k ? v->cache_k : o->cache_type_k;
        o->cache_type_v = v->set_cache_v ? v->cache_v : o->cache_type_v;
        o->flash_attn = v->set_flash_attn ? v->flash_attn : o->flash_attn;
        if (v->draft_path != NULL) {
            o->draft_path = v->draft_path;
            o->spec_type = SPEC_DRAFT;
        }
        o->n_ctx = v->n_ctx > 0 ? v->n_ctx : o->n_ctx;
        o->n_parallel = v->n_parallel > 0 ? v->n_parallel : o->n_parallel;
    }
    for (int i = 0; i < o->n_templates; i++)
        if (engine_name_matches(o->templates[i].model, name))
            o->template_text = o->templates[i].text;
}

void gen_params_default(gen_params *p) {
    memset(p, 0, sizeof *p);
    p->max_tokens = -1;
    p->temperature = 0.8f;
    p->top_p = 0.95f;
    p->top_k = 40;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->repeat_last_n = 64;
}

/* The media marker (engine.h): SHIMMY_MEDIA_MARKER when set, else random (then exported). An
 * engine process gets its server's with the load options (sched_media_marker_set). */
static char media_marker[64];

static void media_marker_init(void) {
    const char *env = getenv("SHIMMY_MEDIA_MARKER");
    if (env != NULL && env[0] != '\0' && strlen(env) < sizeof media_marker) {
        snprintf(media_marker, sizeof media_marker, "%s", env);
        return;
    }
    uint64_t r = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (f == NULL || fread(&r, sizeof r, 1, f) != 1) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        r = (uint64_t)ts.tv_nsec * 6364136223846793005ULL ^ (uint64_t)getpid();
    }
    if (f != NULL)
        fclose(f);
    snprintf(media_marker, sizeof media_marker, "<__media_%016llx__>", (unsigned long long)r);
    setenv("SHIMMY_MEDIA_MARKER", media_marker, 1);
}

void sched_media_marker_set(const char *marker) {
    if (marker[0] != '\0' && strlen(marker) < sizeof media_marker)
        snprintf(media_marker, sizeof media_marker, "%s", marker);
}

const char *engine_media_marker(void) {
    if (media_marker[0] == '\0')
        media_marker_init(); /* engine_global_init not called (unit tests): still one marker */
    return media_marker;
}

shimmy_err engine_global_init(const char *lib_dir, char *err, size_t errlen) {
    engine_media_marker();
    return be_global_init(lib_dir, err, errlen);
}

/* ---- jobs ---- */

/* A zeroed job with its lock, buffers and event lists ready; returns owned (job_free), NULL when
 * out of memory. */
static sched_job *job_new(void) {
    sched_job *j = calloc(1, sizeof *j);
    if (j == NULL)
        return NULL;
    j->hdr.ops = &sched_ops;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    buf_init(&j->out, LIM_RESPONSE_BYTES);
    buf_init(&j->answer, LIM_RESPONSE_BYTES);
    gen_events_init(&j->lp);
    gen_events_init(&j->lp_w);
    return j;
}

static void job_free(sched_job *j) {
    for (int i = 0; i < j->params.n_stop; i++)
        free(j->stop_copy[i]);
    free(j->stop_copy);
    lchat_render_free(&j->r);
    free(j->tokens);
    be_media_free(j->media);
    buf_free(&j->out);
    buf_free(&j->answer);
    gen_events_free(&j->lp);
    gen_events_free(&j->lp_w);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

static void job_unref(sched_job *j) {
    pthread_mutex_lock(&j->mu);
    int left = --j->refs;
    pthread_mutex_unlock(&j->mu);
    if (left == 0)
        job_free(j);
}

/* Publishes text and progress; when finish is set the job is done. Engine thread. */
static void job_publish(sched_job *j, const buf *text, const slot *s, finish_reason finish,
                        shimmy_err e, const char *msg) {
    pthread_mutex_lock(&j->mu);
    shimmy_err lp = SHIMMY_OK;
    if (s != NULL && s->lp.n > 0)
        lp = gen_events_append(&j->lp, &s->lp);
    if (((text != NULL && text->len > 0 &&
          buf_append(&j->out, text->data, text->len) != SHIMMY_OK) ||
         lp != SHIMMY_OK) &&
        finish == FINISH_NONE) {
        finish = FINISH_ERROR;
        e = ERR_TOO_LARGE;
        msg = "the response is over the size limit";
    }
    if (s != NULL) {
        j->st.completion_tokens = s->n_gen;
        j->st.draft_tokens = s->n_drafted;
        j->st.draft_accepted = s->n_accepted;
        int64_t now = clock_mono_ns();
        if (s->t_first > 0) {
            j->st.prompt_ns = s->t_first - s->t_start;
            j->st.gen_ns = now - s->t_first;
        } else {
            j->st.prompt_ns = now - s->t_start;
        }
    }
    if (finish != FINISH_NONE) {
        j->st.done = true;
        j->st.finish = finish;
        j->st.error = e;
        if (msg != NULL)
            snprintf(j->st.errmsg, sizeof j->st.errmsg, "%s", msg);
    }
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

/* Takes the new text and the status under the lock. */
static shimmy_err take_news(sched_job *j, int timeout_ms, buf *news, gen_status *st) {
    shimmy_err rc = SHIMMY_OK;
    struct timespec dl = clock_deadline_ms(timeout_ms);
    pthread_mutex_lock(&j->mu);
    while (timeout_ms > 0 && j->out.len == 0 && j->lp.n == 0 && !j->st.done && !j->start_news)
        if (pthread_cond_timedwait(&j->cv, &j->mu, &dl) != 0)
            break;
    j->start_news = false;
    if (j->out.len > 0) {
        rc = buf_append(news, j->out.data, j->out.len);
        buf_reset(&j->out);
    }
    gen_events t = j->lp; /* the records go to the waiter's list, which comes back empty */
    j->lp = j->lp_w;
    j->lp_w = t;
    gen_events_clear(&j->lp);
    *st = j->st;
    pthread_mutex_unlock(&j->mu);
    return rc;
}

static shimmy_err sched_job_wait(gen_job *ej, int timeout_ms, gen_events *ev, gen_status *st) {
    sched_job *j = (sched_job *)ej;

    gen_events_clear(ev);
    size_t had = j->answer.len;
    shimmy_err rc = take_news(j, timeout_ms, &j->answer, st);
    if (rc != SHIMMY_OK)
        return rc;
    bool final = st->done && !j->parsed_final;
    if (j->r.parser == NULL) {
        if (j->answer.len > had)
            rc = gen_events_add(ev, GEN_EV_CONTENT, 0, NULL, NULL, j->answer.data + had,
                                j->answer.len - had);
    } else if (j->answer.len > had || final) {
        rc = lchat_parser_feed(j->r.parser, buf_str(&j->answer), j->answer.len, !st->done, ev);
        j->n_tool_calls = lchat_parser_n_tool_calls(j->r.parser);
    }
    if (rc == SHIMMY_OK && j->lp_w.n > 0)
        rc = gen_events_append(ev, &j->lp_w);
    gen_events_clear(&j->lp_w);
    if (final)
        j->parsed_final = true;
    if (st->done && st->finish == FINISH_STOP && j->n_tool_calls > 0)
        st->finish = FINISH_TOOL_CALLS;
    gen_events_seal(ev);
    return rc;
}

static void sched_job_cancel(gen_job *ej) {
    sched_job *j = (sched_job *)ej;
    atomic_store(&j->cancel, true);
}

static void sched_job_release(gen_job *ej) {
    sched_job *j = (sched_job *)ej;

    if (j == NULL)
        return;
    sched_job_cancel(ej);
    job_unref(j);
}

/* ---- submit (caller's thread) ---- */

static shimmy_err tokenize_prompt(sched_model *m, const char *text, sched_job *j, char *err,
                                  size_t errlen) {
    size_t len = strlen(text);
    int cap = (int)(len / 2 + 16);
    for (int attempt = 0; attempt < 2; attempt++) {
        j->tokens = malloc((size_t)cap * sizeof *j->tokens);
        if (j->tokens == NULL)
            return ERR_NOMEM;
        int n = be_tokenize(m->be, text, len, j->tokens, cap);
        if (n < 0)
            return err_set(err, errlen, ERR_BAD_PARAM, "the prompt could not be tokenized");
        if (n <= cap) {
            j->n_tokens = n;
            return SHIMMY_OK;
        }
        free(j->tokens);
        j->tokens = NULL;
        cap = n;
    }
    return err_set(err, errlen, ERR_INTERNAL,
                   "tokenizer disagreed with itself on the prompt length");
}

/* The request's stop strings and then the chat format's, copied. */
static shimmy_err copy_stops(sched_job *j, const gen_params *p) {
    int n = p->n_stop + j->r.n_stops;
    j->params.stop = NULL;
    j->params.n_stop = 0;
    if (n == 0)
        return SHIMMY_OK;
    j->stop_copy = calloc((size_t)n, sizeof *j->stop_copy);
    if (j->stop_copy == NULL)
        return ERR_NOMEM;
    for (int i = 0; i < n; i++) {
        const char *s = i < p->n_stop ? p->stop[i] : j->r.stops[i - p->n_stop];
        if ((j->stop_copy[i] = strdup(s)) == NULL)
            return ERR_NOMEM;
        j->params.n_stop++;
    }
    j->params.stop = (const char *const *)j->stop_copy;
    return SHIMMY_OK;
}

static void pick_seed(sched_job *j, const gen_params *p) {
    if (p->has_seed) {
        j->seed = p->seed;
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        j->seed = (uint32_t)(ts.tv_nsec ^ (ts.tv_sec << 16) ^ (uintptr_t)j);
    }
}

/* The time chat templates see. (The pinned chat module's Jinja strftime_now reads the process
 * clock itself; tests pin it with faketime on both sides.) */
static int64_t chat_now(void) {
    return (int64_t)time(NULL);
}

/* Renders a chat (prompt, grammar, parser) or takes a raw prompt (and the grammar of its JSON
 * schema or GBNF). Returns owned *text, the prompt to tokenize. */
static shimmy_err render(sched_model *m, const gen_request *req, sched_job *j, char **text,
                         char *err, size_t errlen, char *param, size_t paramlen) {
    const gen_params *p = &req->params;
    shimmy_err rc = SHIMMY_OK;
    if (req->chat_json != NULL) {
        rc = be_render(m->be, req->chat_json, p->json_schema, chat_now(), true, &j->r, err, errlen,
                       param, paramlen);
        if (rc == SHIMMY_OK && p->grammar != NULL && j->r.grammar == NULL)
            j->r.grammar = strdup(p->grammar);
        else if (rc == SHIMMY_OK && p->grammar != NULL)
            rc = err_set(err, errlen, ERR_BAD_PARAM,
                         "a grammar cannot be combined with tools or "
                         "a JSON schema");
        *text = rc == SHIMMY_OK ? strdup(j->r.prompt) : NULL;
    } else {
        if (p->json_schema != NULL) {
            rc = lchat_schema_grammar(p->json_schema, &j->r.grammar, err, errlen);
            if (rc != SHIMMY_OK)
                snprintf(param, paramlen, "response_format");
        } else if (p->grammar != NULL) {
            j->r.grammar = strdup(p->grammar);
        }
        *text = strdup(req->prompt ? req->prompt : "");
    }
    if (rc == SHIMMY_OK && (*text == NULL || (p->grammar != NULL && j->r.grammar == NULL)))
        rc = ERR_NOMEM;
    return rc;
}

/* Skips a GBNF "string" or [class] starting at g[i]; returns the index after it. */
static size_t skip_literal(const char *g, size_t i) {
    char end = g[i] == '"' ? '"' : ']';
    for (i++; g[i] != '\0' && g[i] != end; i++)
        if (g[i] == '\\' && g[i + 1] != '\0')
            i++;
    return g[i] == end ? i + 1 : i;
}

/* Repetitions {m,n} llama.cpp's grammar parser cannot take: n below m (it never returns: a JSON
 * schema whose minimum is above its maximum) or counts past LIM_SCHEMA_REPEAT (it refuses 2000
 * and more, printing the whole grammar). */
static shimmy_err check_repetitions(const char *g, char *err, size_t errlen) {
    for (size_t i = 0; g[i] != '\0';) {
        if (g[i] == '"' || g[i] == '[') {
            i = skip_literal(g, i);
            continue;
        }
        if (g[i] == '#') {
            while (g[i] != '\0' && g[i] != '\n')
                i++;
            continue;
        }
        if (g[i++] != '{')
            continue;
        char *end;
        long lo = strtol(g + i, &end, 10), hi = lo;
        if (*end == ',')
            hi = end[1] == '}' ? lo : strtol(end + 1, &end, 10);
        if (hi < lo)
            return err_set(err, errlen, ERR_BAD_PARAM,
                           "no answer can match the requested output "
                           "format: it asks for at least %ld and at most %ld of something (a "
                           "JSON schema whose minimum is above its maximum)",
                           lo, hi);
        if (lo > LIM_SCHEMA_REPEAT || hi > LIM_SCHEMA_REPEAT)
            return err_set(err, errlen, ERR_BAD_PARAM,
                           "the requested output format repeats "
                           "something %ld times; at most %d are supported (minItems, maxItems, "
                           "minLength, maxLength)",
                           hi > lo ? hi : lo, LIM_SCHEMA_REPEAT);
    }
    return SHIMMY_OK;
}

/* Tokenizes text with the request's media (be_tokenize_media). The prompt must go on after its
 * last media item: the answer is sampled from the logits of the prompt's last token, and libmtmd
 * decodes a media item's embeddings without logits. llama.cpp's own tools cannot either: on such
 * a prompt llama-server aborts (GGML_ASSERT(batch.size() > 0) in update_slots) and
 * llama-mtmd-cli too (no logits to sample: GGML_ASSERT(logits != nullptr)), so this is a 400
 * that says what to add. */
static shimmy_err tokenize_media(sched_model *m, const char *text, const gen_request *req,
                                 sched_job *j, char *err, size_t errlen, char *param,
                                 size_t paramlen) {
    shimmy_err rc = be_tokenize_media(m->be, text, req->media, req->n_media, &j->tokens,
                                      &j->n_tokens, &j->media, err, errlen, param, paramlen);
    int start, len;
    if (rc == SHIMMY_OK && j->n_tokens > 0 &&
        be_media_at(j->media, j->n_tokens - 1, &start, &len) >= 0) {
        snprintf(param, paramlen, "%s", req->chat_json != NULL ? "messages" : "prompt");
        return err_set(err, errlen, ERR_BAD_PARAM,
                       "the prompt ends with an image or audio clip, and the answer can only "
                       "follow text (llama.cpp decodes an image without the output a next token "
                       "is sampled from): add text after the last image or clip, such as a "
                       "question about it or, in a raw prompt, the text that opens the "
                       "model's answer");
    }
    return rc;
}

static shimmy_err job_prepare(sched_model *m, const gen_request *req, sched_job *j, char *err,
                              size_t errlen, char *param, size_t paramlen) {
    char *text = NULL;
    j->params = req->params;
    j->params.grammar = NULL;
    j->params.json_schema = NULL;
    pick_seed(j, &req->params);
    shimmy_err rc = render(m, req, j, &text, err, errlen, param, paramlen);
    if (rc == SHIMMY_OK)
        rc = copy_stops(j, &req->params);
    if (rc == SHIMMY_OK && req->n_media > 0)
        rc = tokenize_media(m, text, req, j, err, errlen, param, paramlen);
    else if (rc == SHIMMY_OK)
        rc = tokenize_prompt(m, text, j, err, errlen);
    free(text);
    if (rc != SHIMMY_OK)
        return rc;
    if (j->r.grammar != NULL && strlen(j->r.grammar) > LIM_GRAMMAR_BYTES)
        return err_set(err, errlen, ERR_BAD_PARAM, "the output grammar is over %u bytes",
                       LIM_GRAMMAR_BYTES);
    if (j->r.grammar != NULL && check_repetitions(j->r.grammar, err, errlen) != SHIMMY_OK) {
        snprintf(param, paramlen, "%s",
                 req->chat_json != NULL && param[0] ? param : "response_format");
        return ERR_BAD_PARAM;
    }
    if (j->r.grammar != NULL && !be_grammar_ok(m->be, &j->r)) {
        snprintf(param, paramlen, "%s", param[0] ? param : "response_format");
        return err_set(err, errlen, ERR_BAD_PARAM,
                       "the requested output format cannot be used: "
                       "its grammar does not parse, or allows no answer at all (a JSON schema no "
                       "value can meet)");
    }
    int n_ctx = be_n_ctx_slot(m->be);
    if (j->n_tokens == 0) {
        snprintf(param, paramlen, "%s", req->chat_json != NULL ? "messages" : "prompt");
        return err_set(err, errlen, ERR_BAD_PARAM, "the prompt is empty");
    }
    if (j->n_tokens >= n_ctx)
        snprintf(param, paramlen, "%s", req->chat_json != NULL ? "messages" : "prompt");
    if (j->n_tokens >= n_ctx)
        return err_set(err, errlen, ERR_CONTEXT_LENGTH,
                       "the prompt has %d tokens but the context of model '%s' holds %d tokens per "
                       "request, which must leave room for at least one generated token",
                       j->n_tokens, m->name, n_ctx);
    j->st.prompt_tokens = j->n_tokens;
    return SHIMMY_OK;
}

static shimmy_err sched_submit(engine_model *em, const gen_request *req, gen_job **out, char *err,
                               size_t errlen, char *param, size_t paramlen) {
    sched_model *m = (sched_model *)em;
    sched_job *j = job_new();
    if (j == NULL)
        return ERR_NOMEM;
    j->refs = 2;
    j->t_submit = clock_mono_ns();
    shimmy_err rc = job_prepare(m, req, j, err, errlen, param, paramlen);
    if (rc != SHIMMY_OK) {
        job_free(j);
        return rc;
    }
    pthread_mutex_lock(&m->mu);
    if (m->stopping || m->n_queued >= m->queue_max) {
        int q = m->n_queued;
        pthread_mutex_unlock(&m->mu);
        job_free(j);
        return err_set(
            err, errlen, ERR_OVERLOADED,
            "model '%s' is busy: all %d slots are generating and %d requests are waiting", m->name,
            m->n_slots, q);
    }
    if (m->q_tail)
        m->q_tail->next = j;
    else
        m->q_head = j;
    m->q_tail = j;
    m->n_queued++;
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
    *out = (gen_job *)j;
    return SHIMMY_OK;
}

/* Renders and tokenizes as job_prepare does, into a job that never runs. */
static shimmy_err sched_count(engine_model *em, const gen_request *req, int *n, char *err,
                              size_t errlen, char *param, size_t paramlen) {
    sched_model *m = (sched_model *)em;
    sched_job *j = job_new();
    if (j == NULL)
        return ERR_NOMEM;
    j->params = req->params;
    j->params.n_stop = 0; /* no stop copies to free */
    j->params.grammar = NULL;
    j->params.json_schema = NULL;
    char *text = NULL;
    shimmy_err rc = render(m, req, j, &text, err, errlen, param, paramlen);
    if (rc == SHIMMY_OK && req->n_media > 0)
        rc = tokenize_media(m, text, req, j, err, errlen, param, paramlen);
    else if (rc == SHIMMY_OK)
        rc = tokenize_prompt(m, text, j, err, errlen);
    free(text);
    if (rc == SHIMMY_OK)
        *n = j->n_tokens;
    job_free(j);
    return rc;
}

static shimmy_err sched_apply_template(engine_model *em, const char *chat_json, char **out,
                                       char *err, size_t errlen, char *param, size_t paramlen) {
    sched_model *m = (sched_model *)em;

    lchat_render r;
    shimmy_err rc =
        be_render(m->be, chat_json, NULL, chat_now(), false, &r, err, errlen, param, paramlen);
    if (rc != SHIMMY_OK)
        return rc;
    *out = r.prompt;
    r.prompt = NULL;
    lchat_render_free(&r);
    return SHIMMY_OK;
}

static shimmy_err sched_tokenize(engine_model *em, const char *text, bool add_special,
                                 bool parse_special, int32_t **out, size_t *n, char *err,
                                 size_t errlen) {
    sched_model *m = (sched_model *)em;

    size_t len = strlen(text);
    int cap = (int)(len / 2 + 16);
    if (len > LIM_PROMPT_BYTES)
        return err_set(err, errlen, ERR_TOO_LARGE, "the text is over %u bytes", LIM_PROMPT_BYTES);
    for (int attempt = 0; attempt < 2; attempt++) {
        be_token *t = malloc((size_t)cap * sizeof *t);
        if (t == NULL)
            return ERR_NOMEM;
        int k = be_tokenize_ex(m->be, text, len, add_special, parse_special, t, cap);
        if (k >= 0 && k <= cap) {
            *out = t;
            *n = (size_t)k;
            return SHIMMY_OK;
        }
        free(t);
        if (k < 0)
            break;
        cap = k;
    }
    return err_set(err, errlen, ERR_BAD_PARAM, "the text could not be tokenized");
}

static shimmy_err sched_token_piece(engine_model *em, int32_t t, buf *out) {
    sched_model *m = (sched_model *)em;

    if (!be_token_valid(m->be, t))
        return ERR_BAD_PARAM;
    return be_piece(m->be, t, true, out);
}

static shimmy_err sched_detokenize(engine_model *em, const int32_t *tokens, size_t n, buf *out,
                                   char *err, size_t errlen) {
    sched_model *m = (sched_model *)em;

    for (size_t i = 0; i < n; i++)
        if (!be_token_valid(m->be, tokens[i]))
            return err_set(err, errlen, ERR_BAD_PARAM,
                           "token %d at index %zu is not in the "
                           "vocabulary of model '%s'",
                           tokens[i], i, m->name);
    if (n > (size_t)LIM_PROMPT_BYTES)
        return err_set(err, errlen, ERR_TOO_LARGE, "too many tokens");
    return be_detokenize(m->be, tokens, (int)n, out);
}

shimmy_err engine_template_caps(const char *source, engine_tmpl_caps *out, char *err,
                                size_t errlen) {
    lchat_tmpl *t;
    memset(out, 0, sizeof *out);
    shimmy_err rc =
        lchat_tmpl_new(NULL, source && source[0] ? source : NULL, NULL, &t, err, errlen);
    if (rc != SHIMMY_OK)
        return rc;
    lchat_tmpl_caps(t, out);
    lchat_tmpl_free(t);
    return SHIMMY_OK;
}

static shimmy_err sched_model_template(engine_model *em, char **source, engine_tmpl_caps *caps) {
    sched_model *m = (sched_model *)em;

    return be_template(m->be, source, caps);
}

static void sched_model_get_info(engine_model *em, engine_model_info *info) {
    sched_model *m = (sched_model *)em;

    memset(info, 0, sizeof *info);
    be_fill_info(m->be, info);
    snprintf(info->name, sizeof info->name, "%s", m->name);
    pthread_mutex_lock(&m->mu);
    info->active_slots = m->n_active;
    info->queued = m->n_queued;
    info->kv_cells = m->n_slots * info->n_ctx_slot;
    info->kv_cells_used = atomic_load(&m->kv_used);
    info->cache = m->pc_stats;
    pthread_mutex_unlock(&m->mu);
    info->prompt_tokens_evaluated = atomic_load(&m->prompt_evals);
    info->kv_copies = atomic_load(&m->kv_copies);
    snprintf(info->spec_type, sizeof info->spec_type, "%s", engine_spec_type_name(m->spec));
    info->spec_drafted = atomic_load(&m->spec_drafted);
    info->spec_accepted = atomic_load(&m->spec_accepted);
    info->spec_steps = atomic_load(&m->spec_steps);
}

/* ---- the engine thread ---- */

static int common_prefix(const be_token *a, int na, const be_token *b, int nb) {
    int n = na < nb ? na : nb, i = 0;
    while (i < n && a[i] == b[i])
        i++;
    return i;
}

/* The KV position of job j's prompt token idx (be_media_pos): idx for text-only prompts. The
 * slots' caches are prefixes of their jobs' prompts (or of a prompt that shares the kept prefix,
 * placeholders and all), so this is also where the cache's token idx lies. */
static int job_pos(const sched_job *j, int idx) {
    return be_media_pos(j->media, idx);
}

/* The idle slot for job j. The one whose cache shares the longest prefix with the prompt, when
 * that prefix is worth keeping (at least a tenth of the prompt, as llama-server's similarity
 * rule); otherwise the least recently used one, so that a prompt sharing only BOS with a slot
 * does not evict a long cached prompt while empty slots wait. */
static slot *pick_slot(sched_model *m, const sched_job *j) {
    slot *best = NULL, *lru = NULL;
    int cached = 0;
    pcache_best(&m->pc, j->tokens, j->n_tokens, &cached);
    int best_lcp = -1;
    for (int i = 0; i < m->n_slots; i++) {
        slot *s = &m->slots[i];
        if (s->state != SLOT_IDLE)
            continue;
        int lcp = common_prefix(s->cache, s->n_cache, j->tokens, j->n_tokens);
        if (lcp > best_lcp || (lcp == best_lcp && s->last_used < best->last_used)) {
            best = s;
            best_lcp = lcp;
        }
        if (lru == NULL || s->last_used < lru->last_used)
            lru = s;
    }
    /* A saved state that shares more than any slot, and enough to be worth it (the same tenth
     * as for slots), goes into the least recently used slot. */
    if (cached > best_lcp && cached * 10 >= j->n_tokens)
        return lru;
    return best_lcp * 10 >= j->n_tokens ? best : lru;
}

/* ---- the host-RAM prompt cache (pcache.h) ---- */

static void note_stall(sched_model *m, int64_t t0, bool restore) {
    int64_t ns = clock_mono_ns() - t0;
    pthread_mutex_lock(&m->mu);
    engine_cache_stats *st = &m->pc_stats;
    if (restore)
        st->restores++;
    else
        st->saves++;
    if (ns > st->max_stall_ns)
        st->max_stall_ns = ns;
    st->bytes = m->pc.bytes;
    st->entries = m->pc.n_entries;
    pthread_mutex_unlock(&m->mu);
}

/* Saves what slot s holds before it is overwritten, unless the cache has it already. */
static void cache_save(sched_model *m, slot *s) {
    if (s->n_cache == 0 || !pcache_wants(&m->pc, s->cache, s->n_cache))
        return;
    int64_t t0 = clock_mono_ns();
    void *data;
    size_t size;
    if (be_seq_save(m->be, s->id, &data, &size) != SHIMMY_OK) {
        log_warn("%s: could not save slot %d's prompt to the cache", m->name, s->id);
        return;
    }
    pcache_put(&m->pc, s->cache, s->n_cache, data, size, m->step);
    note_stall(m, t0, false);
}

/* When a saved state shares more with j's prompt than slot s does, puts it into s (saving what s
 * held first). */
static void cache_restore(sched_model *m, slot *s, const sched_job *j) {
    int lcp = 0;
    pc_entry *e = pcache_best(&m->pc, j->tokens, j->n_tokens, &lcp);
    if (e == NULL || lcp * 10 < j->n_tokens ||
        lcp <= common_prefix(s->cache, s->n_cache, j->tokens, j->n_tokens))
        return;
    cache_save(m, s);
    e = pcache_best(&m->pc, j->tokens, j->n_tokens, &lcp); /* the save may have dropped it */
    if (e == NULL)
        return;
    int64_t t0 = clock_mono_ns();
    pcache_take(&m->pc, e);
    s->n_dcache = 0; /* the draft model's sequence holds the old tokens: it starts over */
    if (be_seq_restore(m->be, s->id, e->data, e->size) == SHIMMY_OK) {
        memcpy(s->cache, e->tokens, (size_t)e->n_tokens * sizeof *s->cache);
        s->n_cache = e->n_tokens;
    } else {
        log_warn("%s: could not restore a cached prompt into slot %d", m->name, s->id);
        s->n_cache = 0;
    }
    pcache_entry_free(e);
    note_stall(m, t0, true);
}

/* The draft model's sequence of slot s keeps at most its first n tokens (those it shares with the
 * slot's cache). */
static void draft_keep(sched_model *m, slot *s, int n) {
    if (s->n_dcache > n)
        s->n_dcache = n;
    if (be_has_draft(m->be))
        be_draft_truncate(m->be, s->id, s->n_dcache);
}

static void slot_finish(sched_model *m, slot *s, finish_reason f, shimmy_err e, const char *msg) {
    if (f == FINISH_LENGTH || f == FINISH_ERROR || f == FINISH_CANCELLED)
        textout_flush(&s->tout, &s->emit);
    /* The slot counts as free before the job says it is done: a client that reads the status
     * right after its answer ended sees the slot free. (Only this thread starts jobs.) */
    pthread_mutex_lock(&m->mu);
    m->n_active--;
    pthread_mutex_unlock(&m->mu);
    job_publish(s->job, &s->emit, s, f, e, msg);
    buf_reset(&s->emit);
    gen_events_clear(&s->lp);
    job_unref(s->job);
    s->job = NULL;
    be_sampler_free(s->smpl);
    s->smpl = NULL;
    s->state = SLOT_IDLE;
    s->out_idx = -1;
    s->last_used = m->step;
}

/* The other slot whose KV cache shares the longest prefix with j's prompt, when it shares more
 * than `than` tokens (busy or idle: its cache holds evaluated tokens only); NULL when none. */
static slot *find_donor(sched_model *m, const slot *s, const sched_job *j, int than, int *lcp) {
    slot *best = NULL;
    *lcp = than;
    for (int i = 0; i < m->n_slots; i++) {
        slot *d = &m->slots[i];
        int n = d == s ? 0 : common_prefix(d->cache, d->n_cache, j->tokens, j->n_tokens);
        if (n > *lcp) {
            best = d;
            *lcp = n;
        }
    }
    return best;
}

/* When another slot holds more of j's prompt than s does, copies that prefix into s (the prompt
 * is evaluated once for a request's n choices, or for prompts that share a long beginning).
 * Returns the tokens s now holds in common with the prompt. */
static int share_prefix(sched_model *m, slot *s, const sched_job *j, int keep) {
    int lcp;
    slot *d = find_donor(m, s, j, keep, &lcp);
    if (d == NULL)
        return keep;
    if (keep < s->n_cache)
        cache_save(m, s);
    lcp = lcp >= j->n_tokens ? j->n_tokens - 1 : lcp;
    int m_start, m_len;
    if (be_media_at(j->media, lcp, &m_start, &m_len) >= 0)
        lcp = m_start; /* a media item is copied whole or not at all */
    if (lcp <= keep)
        return keep;
    s->n_dcache = 0; /* the draft model's sequence is not copied: it starts over */
    if (!be_seq_copy(m->be, d->id, s->id, job_pos(j, lcp))) {
        s->n_cache = 0;
        return 0;
    }
    memcpy(s->cache, d->cache, (size_t)lcp * sizeof *s->cache);
    s->n_cache = lcp;
    atomic_fetch_add(&m->kv_copies, 1);
    return lcp;
}

/* Binds job j to slot s: keeps the shared prefix of the cache, drops the rest. */
static void slot_start(sched_model *m, slot *s, sched_job *j) {
    cache_restore(m, s, j);
    int keep = common_prefix(s->cache, s->n_cache, j->tokens, j->n_tokens);
    keep = share_prefix(m, s, j, keep);
    if (keep < s->n_cache)
        cache_save(m, s); /* what the new prompt does not share is about to go */
    if (keep >= j->n_tokens)
        keep = j->n_tokens - 1; /* the last prompt token must be evaluated for its logits */
    int m_start, m_len;
    if (be_media_at(j->media, keep, &m_start, &m_len) >= 0)
        keep = m_start; /* a media item is evaluated whole or not at all */
    s->pos_next = job_pos(j, keep);
    be_seq_truncate(m->be, s->id, s->pos_next);
    s->n_cache = keep;
    s->n_prompt_done = keep;
    draft_keep(m, s, keep);
    s->job = j;
    s->n_gen = 0;
    s->n_draft = 0;
    s->n_drafted = s->n_accepted = 0;
    s->out_idx = -1;
    s->t_start = clock_mono_ns();
    s->t_first = 0;
    buf_reset(&s->emit);
    gen_events_clear(&s->lp);
    s->smpl = be_sampler_new(m->be, &j->params, &j->r, j->seed);
    pthread_mutex_lock(&j->mu);
    j->st.cached_tokens = keep;
    j->st.queued_ns = s->t_start - j->t_submit;
    j->start_news = true;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    if (s->smpl == NULL || textout_reset(&s->tout, j->params.stop, j->params.n_stop) != SHIMMY_OK) {
        s->state = SLOT_PROMPT;
        slot_finish(m, s, FINISH_ERROR, ERR_NOMEM, "out of memory creating the sampler");
        return;
    }
    int from = j->n_tokens > j->params.repeat_last_n ? j->n_tokens - j->params.repeat_last_n : 0;
    for (int i = from; i < j->n_tokens; i++)
        if (j->tokens[i] >= 0) /* not a media placeholder */
            be_sampler_accept(s->smpl, j->tokens[i]);
    s->state = SLOT_PROMPT;
}

/* True when job j should stay queued: a slot is still evaluating a prompt that shares at least
 * half of j's with it, more than any cache holds now, so j can copy it once it is evaluated
 * instead of evaluating it again (a request's n choices, clients sending one long system prompt
 * at once). Taken jobs are started before the next one is looked at, so a job started in this
 * same call counts as evaluating. Engine thread, under the model's mu. */
static bool wait_for_prompt(sched_model *m, const sched_job *j) {
    int cached = 0, pending = 0;
    for (int i = 0; i < m->n_slots; i++) {
        const slot *s = &m->slots[i];
        int c = common_prefix(s->cache, s->n_cache, j->tokens, j->n_tokens);
        cached = c > cached ? c : cached;
        if (s->state == SLOT_PROMPT) {
            int p = common_prefix(s->job->tokens, s->job->n_tokens, j->tokens, j->n_tokens);
            pending = p > pending ? p : pending;
        }
    }
    return pending > cached && pending * 2 >= j->n_tokens && !atomic_load(&j->cancel);
}

/* Pops the queue's head when it may start now (under the model's mu): *counted when it takes a
 * slot (not cancelled). NULL when no job may start. */
static sched_job *next_job(sched_model *m, bool *counted) {
    sched_job *j = m->q_head;
    if (j == NULL || m->n_active >= m->n_slots || wait_for_prompt(m, j))
        return NULL;
    m->q_head = j->next;
    if (m->q_head == NULL)
        m->q_tail = NULL;
    m->n_queued--;
    j->next = NULL;
    *counted = !atomic_load(&j->cancel);
    if (*counted)
        m->n_active++;
    return j;
}

/* Moves queued jobs onto idle slots, one at a time (a job started here is evaluating its prompt
 * when the next is looked at). Returns false when the engine is stopping. Blocks while there is
 * nothing to do. */
static bool take_jobs(sched_model *m) {
    if (m->news != NULL) /* the last step's news go out before the next step or a sleep */
        m->news(m->news_ctx);
    pthread_mutex_lock(&m->mu);
    while (!m->stopping && m->n_active == 0 && m->q_head == NULL && m->e_head == NULL)
        pthread_cond_wait(&m->cv, &m->mu);
    bool stopping = m->stopping, moved = false;
    pthread_mutex_unlock(&m->mu);
    while (!stopping) {
        bool counted = false;
        pthread_mutex_lock(&m->mu);
        sched_job *j = next_job(m, &counted);
        pthread_mutex_unlock(&m->mu);
        if (j == NULL)
            break;
        moved = true;
        if (!counted) {
            job_publish(j, NULL, NULL, FINISH_CANCELLED, ERR_CANCELLED, NULL);
            job_unref(j);
            continue;
        }
        slot_start(m, pick_slot(m, j), j);
    }
    /* A start is news before its prompt is decoded (an engine process that dies in that decode
     * must not have the job retried as if it were still queued: ADR 0005) */
    if (moved && m->news != NULL)
        m->news(m->news_ctx);
    return !stopping;
}

/* ---- speculative decoding: drafts are proposed before the step's batch is built, go into it
 * after their slot's last token, and are verified after the decode (slot_verify) ---- */

/* Sets each generating slot's draft_cap: what the context, the request's max_tokens (the step
 * samples up to n_draft + 1 tokens) and a share of the batch allow. Drafts take at most what
 * the generating slots leave, and at most half of that while prompts wait, so that a prompt is
 * never starved by drafts. */
static void draft_caps(sched_model *m) {
    int n_gen = 0, n_prompt = 0;
    for (int i = 0; i < m->n_slots; i++) {
        n_gen += m->slots[i].state == SLOT_GEN;
        n_prompt += m->slots[i].state == SLOT_PROMPT;
    }
    int spare = be_n_batch(m->be) - n_gen;
    spare = n_prompt > 0 ? spare / 2 : spare;
    int want = m->spec == SPEC_DRAFT ? m->draft_max : m->ngram_m;
    int ctx = be_n_ctx_slot(m->be);
    for (int i = 0; i < m->n_slots; i++) {
        slot *s = &m->slots[i];
        s->n_draft = s->draft_cap = 0;
        /* A prompt with media holds placeholder ids, which neither the draft model nor n-gram
         * lookup may see: such a request goes without drafts. (So a drafting slot's cache is
         * text, whose positions are its indexes: the draft model's sequence uses those.) */
        if (s->state != SLOT_GEN || s->job->media != NULL)
            continue;
        int cap = want < LIM_DRAFT_TOKENS ? want : LIM_DRAFT_TOKENS;
        int room = ctx - 1 - s->n_cache; /* last goes at n_cache, drafts after it */
        cap = cap < room ? cap : room;
        int left = s->job->params.max_tokens - s->n_gen - 1;
        if (s->job->params.max_tokens >= 0 && left < cap)
            cap = left;
        cap = cap < spare ? cap : spare;
        s->draft_cap = cap > 0 ? cap : 0;
        spare -= s->draft_cap;
    }
}

/* Brings the draft model's sequence of slot s up to its cache, in batches. false on a failed
 * decode. */
static bool draft_catch_up(sched_model *m, slot *s, char *err, size_t errlen) {
    int cap = be_draft_batch_cap(m->be);
    while (s->n_dcache < s->n_cache) {
        be_draft_batch_clear(m->be);
        int n = s->n_cache - s->n_dcache < cap ? s->n_cache - s->n_dcache : cap;
        for (int k = 0; k < n; k++)
            be_draft_batch_add(m->be, s->cache[s->n_dcache + k], s->n_dcache + k, s->id, false);
        if (be_draft_decode(m->be, err, errlen) != SHIMMY_OK)
            return false;
        s->n_dcache += n;
    }
    return true;
}

/* One round of the draft model for every slot still drafting (*idx: its output index, -1 =
 * done): takes each slot's best token, stops a slot at its cap, a token below draft_p_min or
 * outside the model's vocabulary, and decodes the taken tokens for the next round. Returns
 * the slots still drafting, -1 on a failed decode. */
static int draft_round(sched_model *m, char *err, size_t errlen) {
    int going = 0;
    for (int i = 0; i < m->n_slots; i++) {
        slot *s = &m->slots[i];
        int idx = s->out_idx;
        if (idx < 0)
            continue;
        s->out_idx = -1;
        float p;
        be_token t = be_draft_top(m->be, idx, &p);
        if (t == BE_TOKEN_NONE || p < m->draft_p_min)
            continue;
        s->draft[s->n_draft++] = t;
        if (s->n_draft < s->draft_cap)
            going++;
    }
    if (going == 0)
        return 0;
    be_draft_batch_clear(m->be);
    for (int i = 0; i < m->n_slots; i++) {
        slot *s = &m->slots[i];
        if (s->draft_cap > 0 && s->n_draft > 0 && s->n_draft < s->draft_cap &&
            s->n_dcache == s->n_cache + s->n_draft) {
            s->out_idx =
                be_draft_batch_add(m->be, s->draft[s->n_draft - 1], s->n_dcache, s->id, true);
            s->n_dcache++;
        }
    }
    return be_draft_decode(m->be, err, errlen) == SHIMMY_OK ? going : -1;
}

/* Proposes each generating slot's draft with the draft model: catches its sequence up with the
 * slot's cache, decodes every slot's last token in one batch, then one round per drafted token
 * (all slots together). A proposal shorter than draft_min is dropped. A failed decode drops
 * the drafts of this step and the draft sequences (they are rebuilt). */
static void draft_model_propose(sched_model *m) {
    char err[256];
    bool ok = false;
    for (int i = 0; i < m->n_slots; i++)
        ok = ok || m->slots[i].draft_cap > 0;
    if (!ok)
        return;
    for (int i = 0; i < m->n_slots && ok; i++) {
        slot *s = &m->slots[i];
        if (s->draft_cap > 0 && s->n_dcache > s->n_cache)
            draft_keep(m, s, s->n_cache);
        if (s->draft_cap > 0)
            ok = draft_catch_up(m, s, err, sizeof err);
    }
    be_draft_batch_clear(m->be);
    for (int i = 0; i < m->n_slots && ok; i++) {
        slot *s = &m->slots[i];
        s->out_idx = -1;
        if (s->draft_cap > 0) {
            s->out_idx = be_draft_batch_add(m->be, s->last, s->n_cache, s->id, true);
            s->n_dcache = s->n_cache + 1;
        }
    }
    ok = ok && be_draft_decode(m->be, err, sizeof err) == SHIMMY_OK;
    int going = ok ? 1 : -1;
    while (going > 0)
        going = draft_round(m, err, sizeof err);
    for (int i = 0; i < m->n_slots; i++) {
        slot *s = &m->slots[i];
        s->out_idx = -1;
        if (going < 0) {
            s->n_draft = 0;
            draft_keep(m, s, 0);
        } else if (s->n_draft < m->draft_min) {
            s->n_draft = 0;
        }
    }
    if (going < 0)
        log_warn("%s: drafting failed, this step goes without: %s", m->name, err);
}

/* The drafts of this step, into each generating slot's draft[0..n_draft). */
static void spec_propose(sched_model *m) {
    if (m->spec == SPEC_NONE)
        return;
    draft_caps(m);
    if (m->spec == SPEC_DRAFT) {
        draft_model_propose(m);
        return;
    }
    for (int i = 0; i < m->n_slots; i++) {
        slot *s = &m->slots[i];
        if (s->draft_cap > 0)
            s->n_draft = spec_ngram_draft(s->cache, s->n_cache, s->last, m->ngram_n, m->ngram_m,
                                          s->draft, s->draft_cap);
    }
}

/* Prompt tokens from pos up to the next media item (or the end). */
static int media_gap(const sched_job *j, int pos) {
    int start, len;
    for (int p = pos; p < j->n_tokens; p++)
        if (j->media != NULL && be_media_at(j->media, p, &start, &len) >= 0)
            return p - pos;
    return j->n_tokens - pos;
}

/* Evaluates the media item each prompting slot has reached, before the step's batch (an image
 * is its own llama_decode of embeddings). A failure ends that request only. */
static void eval_media(sched_model *m) {
    char err[256];
    for (int i = 0; i < m->n_slots; i++) {
        slot *s = &m->slots[i];
        int start, len, idx;
        if (s->state != SLOT_PROMPT || s->job->media == NULL ||
            (idx = be_media_at(s->job->media, s->n_prompt_done, &start, &len)) < 0)
            continue;
        if (be_media_eval(m->be, s->job->media, idx, s->id, s->pos_next, err, sizeof err) !=
            SHIMMY_OK) {
            log_error("%s: %s", m->name, err);
            be_seq_truncate(m->be, s->id, s->pos_next);
            s->n_cache = s->n_prompt_done;
            slot_finish(m, s, FINISH_ERROR, ERR_INTERNAL, err);
            continue;
        }
        memcpy(s->cache + s->n_cache, s->job->tokens + start, (size_t)len * sizeof *s->cache);
        s->n_cache += len;
        s->n_prompt_done += len;
        s->pos_next = job_pos(s->job, s->n_prompt_done); /* the item's positions, not its tokens */
        atomic_fetch_add(&m->prompt_evals, len);
    }
}

/* Fills this step's batch: one token per generating slot with its draft, then prompt chunks. The
 * draft tokens are written after the cache's end but not counted in n_cache until kept. */
static void build_batch(sched_model *m) {
    be_batch_clear(m->be);
    int budget = be_n_batch(m->be);
    for (int i = 0; i < m->n_slots; i++) {
        slot *s = &m->slots[i];
        s->out_idx = -1;
        if (s->state == SLOT_GEN) {
            s->out_idx = be_batch_add(m->be, s->last, s->pos_next++, s->id, true);
            s->draft_idx[0] = s->out_idx;
            s->cache[s->n_cache++] = s->last;
            for (int k = 0; k < s->n_draft; k++) {
                s->draft_idx[k + 1] =
                    be_batch_add(m->be, s->draft[k], s->pos_next + k, s->id, true);
                s->cache[s->n_cache + k] = s->draft[k];
            }
            budget -= 1 + s->n_draft;
        }
    }
    /* Prompts share what is left; start from a rotating slot so no prompt starves. */
    for (int k = 0; k < m->n_slots && budget > 0; k++) {
        slot *s = &m->slots[(k + (int)m->step) % m->n_slots];
        if (s->state != SLOT_PROMPT)
            continue;
        sched_job *j = s->job;
        int left = media_gap(j, s->n_prompt_done);
        int take = left < budget ? left : budget;
        for (int t = 0; t < take; t++) {
            int p = s->n_prompt_done++;
            bool last = s->n_prompt_done == j->n_tokens;
            int idx = be_batch_add(m->be, j->tokens[p], s->pos_next++, s->id, last);
            if (last)
                s->out_idx = idx;
            s->cache[s->n_cache++] = j->tokens[p];
        }
        budget -= take;
        atomic_fetch_add(&m->prompt_evals, take);
    }
}

/* A special token the chat format needs to see in the text (tool-call tags). */
static bool is_preserved(const sched_job *j, be_token t) {
    for (int i = 0; i < j->r.n_preserved_tokens; i++)
        if (j->r.preserved_tokens[i] == t)
            return true;
    return false;
}

/* The log probabilities of token t (just sampled at s->out_idx) and of the most likely
 * alternatives, as events into s->lp (published with the step's text). A record that does not
 * fit is dropped with the text's own limit. */
static void slot_logprobs(sched_model *m, slot *s, be_token t) {
    int n_top = s->job->params.top_logprobs;
    n_top = n_top < 0 ? 0 : n_top > LIM_TOP_LOGPROBS ? LIM_TOP_LOGPROBS : n_top;
    be_logprobs(m->be, s->out_idx, t, n_top, s->lpv);
    for (int i = 0; i <= n_top; i++) {
        buf_reset(&s->piece);
        be_piece(m->be, s->lpv[i].token, true, &s->piece);
        gen_events_add_lp(&s->lp, i == 0 ? GEN_EV_LOGPROB : GEN_EV_LOGPROB_TOP, s->piece.data,
                          s->piece.len, s->lpv[i].logprob);
    }
}

/* Handles the token sampled for slot s. */
static void slot_token(sched_model *m, slot *s, be_token t) {
    sched_job *j = s->job;
    if (s->t_first == 0)
        s->t_first = clock_mono_ns();
    if (t == BE_TOKEN_NONE) {
        slot_finish(m, s, FINISH_ERROR, ERR_BAD_PARAM,
                    "no answer can match the requested output format: its grammar (from the JSON "
                    "schema, the tools or the format) allows no next token");
        return;
    }
    s->state = SLOT_GEN;
    s->n_gen++;
    if (be_is_eog(m->be, t)) {
        textout_flush(&s->tout, &s->emit);
        slot_finish(m, s, FINISH_STOP, SHIMMY_OK, NULL);
        return;
    }
    buf_reset(&s->piece);
    be_piece(m->be, t, is_preserved(j, t), &s->piece);
    bool stopped = textout_feed(&s->tout, s->piece.data, s->piece.len, &s->emit);
    if (j->params.logprobs && !stopped)
        slot_logprobs(m, s, t);
    if (stopped) {
        if (s->tout.matched != NULL) {
            pthread_mutex_lock(&j->mu);
            snprintf(j->st.stop_word, sizeof j->st.stop_word, "%s", s->tout.matched);
            pthread_mutex_unlock(&j->mu);
        }
        slot_finish(m, s, FINISH_STOP, SHIMMY_OK, NULL);
        return;
    }
    int ctx = be_n_ctx_slot(m->be);
    if ((j->params.max_tokens >= 0 && s->n_gen >= j->params.max_tokens) || s->n_cache >= ctx) {
        slot_finish(m, s, FINISH_LENGTH, SHIMMY_OK, NULL);
        return;
    }
    s->last = t;
    job_publish(j, &s->emit, s, FINISH_NONE, SHIMMY_OK, NULL);
    buf_reset(&s->emit);
    gen_events_clear(&s->lp);
}

/* Samples slot s's tokens at its last token and at each draft token in turn, as many steps
 * without a draft would have (same sampler, same logits, each token through slot_token), and
 * keeps the draft while the sample equals it (llama-server's sample-and-accept). The KV cells of
 * the draft tokens not kept are dropped, in the model's and the draft model's sequence. */
static void slot_verify(sched_model *m, slot *s) {
    int nd = s->n_draft;
    int base = s->n_cache; /* last is in, at base - 1 */
    s->n_draft = 0;
    /* counted before the tokens go out: a client that reads /health right after its answer
     * sees its drafts counted */
    s->n_drafted += nd;
    atomic_fetch_add(&m->spec_drafted, nd);
    atomic_fetch_add(&m->spec_steps, 1);
    for (int i = 0; i <= nd; i++) {
        if (i > 0) { /* draft[i - 1] was sampled: its KV cell is kept */
            s->n_cache++;
            s->pos_next++;
            s->n_accepted++;
            atomic_fetch_add(&m->spec_accepted, 1);
        }
        s->out_idx = s->draft_idx[i];
        be_token t = be_sample(m->be, s->smpl, s->out_idx);
        slot_token(m, s, t);
        if (s->state != SLOT_GEN || i == nd || t != s->draft[i])
            break;
    }
    if (base + nd > s->n_cache)
        be_seq_truncate(m->be, s->id, s->pos_next);
    if (be_has_draft(m->be))
        draft_keep(m, s, s->n_cache);
}

static void fail_batch(sched_model *m, const char *msg) {
    for (int i = 0; i < m->n_slots; i++) {
        slot *s = &m->slots[i];
        if (s->state == SLOT_IDLE)
            continue;
        be_seq_truncate(m->be, s->id, 0);
        s->n_cache = s->pos_next = 0;
        draft_keep(m, s, 0);
        slot_finish(m, s, FINISH_ERROR, ERR_INTERNAL, msg);
    }
}

/* ---- embeddings ---- */

static void embed_run_inputs(sched_model *m, embed_job *e);
static void rerank_run(sched_model *m, embed_job *e);

/* Computes one embedding request (engine thread, mu not held). */
static void embed_run(sched_model *m, embed_job *e) {
    if (e->inputs != NULL || e->query != NULL) {
        (e->query != NULL ? rerank_run : embed_run_inputs)(m, e);
        return;
    }
    e->n_embd = be_n_embd(m->be);
    e->out = malloc(e->n ? e->n * (size_t)e->n_embd * sizeof *e->out : 1);
    int cap = be_n_ctx_slot(m->be) + 1;
    be_token *tok = malloc((size_t)cap * sizeof *tok);
    e->rc = e->out && tok ? SHIMMY_OK : ERR_NOMEM;
    for (size_t i = 0; i < e->n && e->rc == SHIMMY_OK; i++) {
        int n = be_tokenize(m->be, e->texts[i], strlen(e->texts[i]), tok, cap);
        if (n <= 0)
            e->rc = err_set(e->err, sizeof e->err, ERR_BAD_PARAM, "input %zu is empty", i);
        else if (n >= cap)
            e->rc = err_set(e->err, sizeof e->err, ERR_CONTEXT_LENGTH,
                            "input %zu has %d tokens "
                            "but the context of model '%s' holds %d",
                            i, n, m->name, cap - 1);
        else
            e->rc = be_embed(m->be, tok, n, e->out + i * (size_t)e->n_embd, e->err, sizeof e->err);
        e->n_tokens += n > 0 ? n : 0;
    }
    free(tok);
}

/* The tokens of input i into *tok (cap slots), truncated to fit when asked. Returns the count,
 * or 0 with e->rc set. */
static int input_tokens(sched_model *m, embed_job *e, size_t i, be_token *tok, int cap) {
    const engine_embed_input *in = &e->inputs[i];
    int n = in->text != NULL ? be_tokenize(m->be, in->text, strlen(in->text), tok, cap)
            : in->n_tokens > (size_t)INT32_MAX ? INT32_MAX
                                               : (int)in->n_tokens;
    if (n > cap && in->text != NULL && e->truncate) {
        be_token *all = malloc((size_t)n * sizeof *all);
        if (all == NULL || be_tokenize(m->be, in->text, strlen(in->text), all, n) != n) {
            free(all);
            e->rc = ERR_NOMEM;
            return 0;
        }
        memcpy(tok, all, (size_t)cap * sizeof *tok);
        free(all);
        return cap;
    }
    if (n <= 0)
        e->rc = err_set(e->err, sizeof e->err, ERR_BAD_PARAM, "input %zu is empty", i);
    else if (n > cap && !e->truncate)
        e->rc = err_set(e->err, sizeof e->err, ERR_CONTEXT_LENGTH,
                        "input %zu has %d tokens "
                        "but the context of model '%s' holds %d",
                        i, n, m->name, cap);
    if (e->rc != SHIMMY_OK)
        return 0;
    n = n > cap ? cap : n;
    for (int k = 0; in->text == NULL && k < n; k++) {
        if (!be_token_valid(m->be, in->tokens[k])) {
            e->rc = err_set(e->err, sizeof e->err, ERR_BAD_PARAM,
                            "input %zu: token %d is not "
                            "in the vocabulary of model '%s'",
                            i, (int)in->tokens[k], m->name);
            return 0;
        }
        tok[k] = in->tokens[k];
    }
    return n;
}

/* engine_embed_inputs (engine thread, mu not held). */
static void embed_run_inputs(sched_model *m, embed_job *e) {
    e->n_embd = be_n_embd(m->be);
    e->out = malloc(e->n ? e->n * (size_t)e->n_embd * sizeof *e->out : 1);
    int cap = be_n_ctx_slot(m->be);
    be_token *tok = malloc((size_t)cap * sizeof *tok);
    e->rc = e->out && tok ? SHIMMY_OK : ERR_NOMEM;
    for (size_t i = 0; i < e->n && e->rc == SHIMMY_OK; i++) {
        int n = input_tokens(m, e, i, tok, cap);
        if (e->rc == SHIMMY_OK)
            e->rc = be_embed(m->be, tok, n, e->out + i * (size_t)e->n_embd, e->err, sizeof e->err);
        e->n_tokens += n;
    }
    free(tok);
}

/* engine_rerank (engine thread, mu not held). */
static void rerank_run(sched_model *m, embed_job *e) {
    e->out = malloc(e->n ? e->n * sizeof *e->out : 1);
    int cap = be_n_ctx_slot(m->be);
    be_token *tok = malloc((size_t)cap * sizeof *tok);
    e->rc = e->out && tok ? SHIMMY_OK : ERR_NOMEM;
    if (e->rc == SHIMMY_OK && !be_is_rank(m->be))
        e->rc = err_set(e->err, sizeof e->err, ERR_BAD_PARAM,
                        "model '%s' is not a reranker "
                        "(its pooling type is not rank)",
                        m->name);
    for (size_t i = 0; i < e->n && e->rc == SHIMMY_OK; i++) {
        int n = be_rerank_tokens(m->be, e->query, e->texts[i], tok, cap);
        if (n < 0 || n > cap)
            e->rc = err_set(e->err, sizeof e->err, ERR_CONTEXT_LENGTH,
                            "the query with document "
                            "%zu does not fit the context of model '%s' (%d tokens)",
                            i, m->name, cap);
        else
            e->rc = be_rank(m->be, tok, n, &e->out[i], e->err, sizeof e->err);
        e->n_tokens += n > 0 && n <= cap ? n : 0;
    }
    e->n_embd = 1;
    free(tok);
}

/* Runs every waiting embedding request. */
static void embed_drain(sched_model *m) {
    pthread_mutex_lock(&m->mu);
    embed_job *list = m->e_head;
    m->e_head = NULL;
    pthread_mutex_unlock(&m->mu);
    while (list != NULL) {
        embed_job *e = list;
        list = e->next;
        embed_run(m, e);
        pthread_mutex_lock(&m->mu);
        e->done = true;
        pthread_cond_broadcast(&e->cv);
        pthread_mutex_unlock(&m->mu);
    }
}

/* Queues e for the engine thread and waits until it is done (the caller's thread). */
static shimmy_err embed_wait(sched_model *m, embed_job *e, char *err, size_t errlen) {
    pthread_cond_init(&e->cv, NULL);
    pthread_mutex_lock(&m->mu);
    if (m->stopping) {
        pthread_mutex_unlock(&m->mu);
        pthread_cond_destroy(&e->cv);
        return err_set(err, errlen, ERR_OVERLOADED, "model '%s' is unloading", m->name);
    }
    e->next = m->e_head;
    m->e_head = e;
    pthread_cond_signal(&m->cv);
    while (!e->done)
        pthread_cond_wait(&e->cv, &m->mu);
    pthread_mutex_unlock(&m->mu);
    pthread_cond_destroy(&e->cv);
    if (e->rc != SHIMMY_OK) {
        free(e->out);
        e->out = NULL;
        return err_set(err, errlen, e->rc, "%s", e->err[0] ? e->err : err_get(e->rc)->message);
    }
    return SHIMMY_OK;
}

static shimmy_err sched_embed(engine_model *em, const char *const *texts, size_t n, float **out,
                              int *n_embd, int *n_tokens, char *err, size_t errlen) {
    embed_job e;
    memset(&e, 0, sizeof e);
    e.texts = texts;
    e.n = n;
    shimmy_err rc = embed_wait((sched_model *)em, &e, err, errlen);
    if (rc != SHIMMY_OK)
        return rc;
    *out = e.out;
    *n_embd = e.n_embd;
    *n_tokens = e.n_tokens;
    return SHIMMY_OK;
}

static shimmy_err sched_embed_inputs(engine_model *em, const engine_embed_input *in, size_t n,
                                     bool truncate, float **out, int *n_embd, int *n_tokens,
                                     char *err, size_t errlen) {
    embed_job e;
    memset(&e, 0, sizeof e);
    e.inputs = in;
    e.n = n;
    e.truncate = truncate;
    shimmy_err rc = embed_wait((sched_model *)em, &e, err, errlen);
    if (rc != SHIMMY_OK)
        return rc;
    *out = e.out;
    *n_embd = e.n_embd;
    *n_tokens = e.n_tokens;
    return SHIMMY_OK;
}

static shimmy_err sched_rerank(engine_model *em, const char *query, const char *const *docs,
                               size_t n, float **scores, int *n_tokens, char *err, size_t errlen) {
    embed_job e;
    memset(&e, 0, sizeof e);
    e.query = query;
    e.texts = docs;
    e.n = n;
    shimmy_err rc = embed_wait((sched_model *)em, &e, err, errlen);
    if (rc != SHIMMY_OK)
        return rc;
    *scores = e.out;
    *n_tokens = e.n_tokens;
    return SHIMMY_OK;
}

/* KV cells in use for engine_model_get_info (the engine thread owns the slots). */
static void kv_used_update(sched_model *m) {
    int n = 0;
    for (int i = 0; i < m->n_slots; i++)
        n += m->slots[i].n_cache;
    atomic_store(&m->kv_used, n);
}

static void *engine_main(void *arg) {
    sched_model *m = arg;
    char err[256];
    while (take_jobs(m)) {
        embed_drain(m);
        m->step++;
        for (int i = 0; i < m->n_slots; i++) {
            slot *s = &m->slots[i];
            if (s->state != SLOT_IDLE && atomic_load(&s->job->cancel))
                slot_finish(m, s, FINISH_CANCELLED, ERR_CANCELLED, NULL);
        }
        eval_media(m);
        spec_propose(m);
        build_batch(m);
        if (be_batch_size(m->be) == 0)
            continue;
        if (be_decode(m->be, err, sizeof err) != SHIMMY_OK) {
            log_error("%s: %s", m->name, err);
            fail_batch(m, err);
            continue;
        }
        for (int i = 0; i < m->n_slots; i++) {
            slot *s = &m->slots[i];
            if (s->state == SLOT_GEN && s->n_draft > 0)
                slot_verify(m, s);
            else if (s->state != SLOT_IDLE && s->out_idx >= 0)
                slot_token(m, s, be_sample(m->be, s->smpl, s->out_idx));
        }
        kv_used_update(m);
    }
    for (int i = 0; i < m->n_slots; i++)
        if (m->slots[i].state != SLOT_IDLE)
            slot_finish(m, &m->slots[i], FINISH_CANCELLED, ERR_CANCELLED,
                        "the server is shutting down");
    if (m->news != NULL)
        m->news(m->news_ctx);
    embed_drain(m); /* nobody waits forever: the registry never frees a model in use anyway */
    return NULL;
}

/* ---- lifecycle ---- */

static void free_slots(sched_model *m) {
    for (int i = 0; i < m->n_slots && m->slots; i++) {
        slot *s = &m->slots[i];
        free(s->cache);
        free(s->draft);
        textout_free(&s->tout);
        buf_free(&s->emit);
        buf_free(&s->piece);
        gen_events_free(&s->lp);
        be_sampler_free(s->smpl);
    }
    free(m->slots);
}

/* The speculation settings of o, defaults filled in. */
static void spec_setup(sched_model *m, const engine_options *o) {
    m->spec = engine_options_spec(o);
    m->spec = m->spec == SPEC_DRAFT && !be_has_draft(m->be) ? SPEC_NONE : m->spec;
    m->draft_max = o->draft_max > 0 ? o->draft_max : LIM_DRAFT_MAX_DEFAULT;
    m->draft_min = o->draft_min;
    m->draft_p_min = o->draft_p_min;
    m->ngram_n = o->ngram_n > 0 ? o->ngram_n : LIM_NGRAM_N_DEFAULT;
    m->ngram_m = o->ngram_m > 0 ? o->ngram_m : LIM_NGRAM_M_DEFAULT;
    if (m->spec == SPEC_DRAFT)
        log_info("%s: speculative decoding draft-simple: up to %d draft tokens per step", m->name,
                 m->draft_max);
    else if (m->spec == SPEC_NGRAM)
        log_info("%s: speculative decoding ngram-simple: %d-token n-grams, up to %d draft tokens "
                 "per step",
                 m->name, m->ngram_n, m->ngram_m);
}

shimmy_err sched_model_load(const engine_options *o, sched_news_fn news, void *news_ctx,
                            engine_model **out, char *err, size_t errlen) {
    sched_model *m = calloc(1, sizeof *m);
    if (m == NULL)
        return ERR_NOMEM;
    m->hdr.ops = &sched_ops;
    m->news = news;
    m->news_ctx = news_ctx;
    snprintf(m->name, sizeof m->name, "%s", o->name ? o->name : o->path);
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    m->queue_max = o->queue_max > 0 ? o->queue_max : LIM_QUEUE_DEPTH;
    int64_t mib = o->cache_ram_mib < 0 ? LIM_CACHE_RAM_MIB : o->cache_ram_mib;
    pcache_init(&m->pc, (uint64_t)mib << 20);
    m->pc_stats.budget = m->pc.budget;
    int64_t t0 = clock_mono_ns();
    shimmy_err rc = be_load(o, &m->be, err, errlen);
    if (rc != SHIMMY_OK)
        goto out;
    m->n_slots = o->n_parallel > 0 ? o->n_parallel : LIM_DEFAULT_PARALLEL;
    spec_setup(m, o);
    m->slots = calloc((size_t)m->n_slots, sizeof *m->slots);
    if (m->slots == NULL) {
        rc = ERR_NOMEM;
        goto out;
    }
    int ctx = be_n_ctx_slot(m->be);
    for (int i = 0; i < m->n_slots; i++) {
        slot *s = &m->slots[i];
        s->id = i;
        s->cache = malloc((size_t)ctx * sizeof *s->cache);
        textout_init(&s->tout);
        buf_init(&s->emit, LIM_RESPONSE_BYTES);
        buf_init(&s->piece, 4096);
        gen_events_init(&s->lp);
        s->draft = malloc(LIM_DRAFT_TOKENS * sizeof *s->draft);
        if (s->cache == NULL || s->draft == NULL) {
            rc = ERR_NOMEM;
            goto out;
        }
    }
    if (pthread_create(&m->thread, NULL, engine_main, m) != 0) {
        rc = err_set(err, errlen, ERR_INTERNAL, "cannot start the engine thread");
        goto out;
    }
    log_info("loaded model '%s' from %s in %.0f ms: %d slots x %d tokens of context", m->name,
             o->path, (double)(clock_mono_ns() - t0) / 1e6, m->n_slots, ctx);
    *out = (engine_model *)m;
    return SHIMMY_OK;
out:
    free_slots(m);
    pcache_free(&m->pc);
    be_free(m->be);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    free(m);
    return rc;
}

static void sched_model_free(engine_model *em) {
    sched_model *m = (sched_model *)em;

    if (m == NULL)
        return;
    pthread_mutex_lock(&m->mu);
    m->stopping = true;
    sched_job *q = m->q_head;
    m->q_head = m->q_tail = NULL;
    m->n_queued = 0;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    pthread_join(m->thread, NULL);
    while (q != NULL) {
        sched_job *next = q->next;
        job_publish(q, NULL, NULL, FINISH_CANCELLED, ERR_CANCELLED, "the model was unloaded");
        job_unref(q);
        q = next;
    }
    free_slots(m);
    pcache_free(&m->pc);
    be_free(m->be);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    free(m);
}

const engine_ops sched_ops = {
    .model_free = sched_model_free,
    .get_info = sched_model_get_info,
    .submit = sched_submit,
    .apply_template = sched_apply_template,
    .count = sched_count,
    .tokenize = sched_tokenize,
    .token_piece = sched_token_piece,
    .detokenize = sched_detokenize,
    .model_template = sched_model_template,
    .embed = sched_embed,
    .embed_inputs = sched_embed_inputs,
    .rerank = sched_rerank,
    .job_wait = sched_job_wait,
    .job_cancel = sched_job_cancel,
    .job_release = sched_job_release,
};
