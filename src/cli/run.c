/* cli/run: `shimmy run MODEL [PROMPT]`: a chat in the terminal, like `ollama run`. It talks to a
 * running shimmy (--server, default 127.0.0.1:11435) over /v1/chat/completions, or, when none
 * answers (or MODEL is a path), loads the model in this process through engine.h as generate
 * does. Answers stream as they come. Interactive on a terminal (libedit line editing and history,
 * `"""` multi-line input, /commands); with PROMPT or piped input it answers once and exits.
 * Ctrl-C stops the answer being written (the slot is freed: the connection is closed, or the job
 * cancelled); Ctrl-C at the prompt or Ctrl-D leaves. Colour only on a terminal without NO_COLOR. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <editline/readline.h>
#include <jansson.h>

#include "cli/cli.h"
#include "core/buf.h"
#include "core/limits.h"
#include "engine/engine.h"
#include "http/client.h"
#include "models/registry.h"

static const char run_help[] =
    "usage: shimmy run MODEL [PROMPT...] [options]\n"
    "\n"
    "Chats with MODEL in the terminal. Uses the shimmy server at --server when one answers there,\n"
    "else loads MODEL in this process. With PROMPT, or input on a pipe, answers once and exits.\n"
    "\n"
    "  --server HOST:PORT     the server to talk to (default 127.0.0.1:11435)\n"
    "  --api-key KEY          the server's API key (default: SHIMMY_API_KEY)\n"
    "  --max-tokens N         tokens to generate per answer\n"
    "  --temperature T        0 = greedy\n"
    "  --system TEXT          the system prompt\n"
    "  --model PATH, --model-dirs DIR;DIR, --ctx N, --threads N, --template NAME,\n"
    "  --chat-template-file [MODEL=]FILE   as for 'shimmy serve', when loading here\n" CLI_GPU_HELP
    "  --help                 this help\n"
    "\n"
    "In the chat: \"\"\" begins and ends a multi-line message; /? lists the commands.\n";

static const char run_commands[] =
    "  /set parameter NAME VALUE   temperature, top_p, top_k, min_p, num_predict (max_tokens),\n"
    "                              seed, repeat_penalty, presence_penalty, frequency_penalty\n"
    "  /set system TEXT            the system prompt (/set system with no text removes it)\n"
    "  /show info                  the model, where it runs, the parameters\n"
    "  /load MODEL                 chat with another model (the conversation is kept)\n"
    "  /clear                      forget the conversation\n"
    "  /bye                        leave (also Ctrl-D, or Ctrl-C at the prompt)\n"
    "  /?                          this list\n"
    "  \"\"\"                         begin or end a multi-line message\n"
    "  Ctrl-C                      stop the answer being written\n";

/* Set by SIGINT; read by the answer loops and the libcurl progress callback. */
static volatile sig_atomic_t run_interrupted;

static void on_sigint(int sig) {
    (void)sig;
    run_interrupted = 1;
}

typedef struct run_opts {
    const char *server; /* HOST:PORT */
    const char *key;    /* borrowed; NULL = none */
    const char *system; /* borrowed; NULL = none */
    char *models[LIM_MODELS];
    int n_models;
    const char *model_dirs;
    engine_options eng;
    json_t *params;   /* owned: OpenAI parameter names -> numbers */
    int first_prompt; /* argv index of PROMPT, 0 = none */
} run_opts;

typedef struct run_ctx {
    char model[256];
    json_t *messages; /* owned: the conversation, without the system prompt */
    char *system;     /* owned; NULL = none */
    json_t *params;   /* borrowed from run_opts */
    char url[320];    /* "http://HOST:PORT"; "" = in this process */
    const char *key;
    registry *reg;   /* in this process: owned */
    engine_model *m; /* in this process: acquired */
    bool color;      /* stdout is a terminal and NO_COLOR is unset */
    buf answer;      /* the answer being written */
    buf reasoning;
} run_ctx;

/* ---- output ---- */

static void out_piece(run_ctx *r, bool reasoning, const char *s, size_t n) {
    if (reasoning && r->color)
        fputs("\033[2m", stdout);
    fwrite(s, 1, n, stdout);
    if (reasoning && r->color)
        fputs("\033[0m", stdout);
    fflush(stdout);
    buf_append(reasoning ? &r->reasoning : &r->answer, s, n);
}

static void out_error(const run_ctx *r, const char *msg) {
    fprintf(stderr, "%sError: %s%s\n", r->color ? "\033[31m" : "", msg, r->color ? "\033[0m" : "");
}

/* ---- parameters ---- */

typedef struct param_name {
    const char *name; /* as typed (Ollama's names and OpenAI's) */
    const char *wire; /* OpenAI's name */
    bool integer;
    double lo, hi;
} param_name;

static const param_name param_names[] = {
    {"temperature", "temperature", false, 0, 2},
    {"top_p", "top_p", false, 0, 1},
    {"top_k", "top_k", true, 0, 1 << 20},
    {"min_p", "min_p", false, 0, 1},
    {"num_predict", "max_tokens", true, 1, LIM_MAX_TOKENS},
    {"max_tokens", "max_tokens", true, 1, LIM_MAX_TOKENS},
    {"seed", "seed", true, 0, 4294967295.0},
    {"repeat_penalty", "repeat_penalty", false, 0, 10},
    {"presence_penalty", "presence_penalty", false, -2, 2},
    {"frequency_penalty", "frequency_penalty", false, -2, 2},
};

/* Sets parameter name to value text; false with a message on stderr when either is wrong. */
static bool param_set(json_t *params, const char *name, const char *value) {
    for (size_t i = 0; i < sizeof param_names / sizeof param_names[0]; i++) {
        const param_name *p = &param_names[i];
        if (strcmp(p->name, name) != 0)
            continue;
        double v;
        if (cli_parse_float(value, p->lo, p->hi, &v) != 0 || (p->integer && v != (long long)v)) {
            fprintf(stderr, "%s must be %s from %g to %g\n", name,
                    p->integer ? "an integer" : "a number", p->lo, p->hi);
            return false;
        }
        json_object_set_new(params, p->wire,
                            p->integer ? json_integer((json_int_t)v) : json_real(v));
        return true;
    }
    fprintf(stderr, "unknown parameter '%s' (/? lists them)\n", name);
    return false;
}

/* The parameters as engine sampling settings. */
static void params_to_gen(const json_t *params, gen_params *g) {
    const char *k;
    json_t *v;
    gen_params_default(g);
    json_object_foreach((json_t *)params, k, v) {
        double d = json_number_value(v);
        if (strcmp(k, "temperature") == 0)
            g->temperature = (float)d;
        else if (strcmp(k, "top_p") == 0)
            g->top_p = (float)d;
        else if (strcmp(k, "top_k") == 0)
            g->top_k = (int)d;
        else if (strcmp(k, "min_p") == 0)
            g->min_p = (float)d;
        else if (strcmp(k, "max_tokens") == 0)
            g->max_tokens = (int)d;
        else if (strcmp(k, "seed") == 0)
            g->seed = (uint32_t)d, g->has_seed = true;
        else if (strcmp(k, "repeat_penalty") == 0)
            g->repeat_penalty = (float)d;
        else if (strcmp(k, "presence_penalty") == 0)
            g->presence_penalty = (float)d;
        else if (strcmp(k, "frequency_penalty") == 0)
            g->frequency_penalty = (float)d;
    }
}

/* The chat request body: messages (system first) and, for the server, model, stream and the
 * parameters. Returns owned JSON text or NULL. */
static char *chat_body(const run_ctx *r, bool for_server) {
    json_t *msgs = json_array();
    if (r->system != NULL)
        json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "system", "content", r->system));
    json_array_extend(msgs, r->messages);
    json_t *body = json_pack("{s:o}", "messages", msgs);
    if (for_server) {
        json_object_update(body, r->params);
        json_object_set_new(body, "model", json_string(r->model));
        json_object_set_new(body, "stream", json_true());
    }
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    return text;
}

/* ---- answers from a server ---- */

typedef struct sse_state {
    run_ctx *r;
    buf line;      /* a line not yet ended */
    buf other;     /* lines that are not "data:" (an error body) */
    char err[512]; /* an error event's message */
} sse_state;

static void sse_event(sse_state *s, const char *data) {
    json_t *root = json_loads(data, 0, NULL);
    json_t *error = json_object_get(root, "error");
    if (error != NULL) {
        const char *m = json_string_value(json_object_get(error, "message"));
        snprintf(s->err, sizeof s->err, "%s", m != NULL ? m : "the server failed");
    }
    json_t *delta = json_object_get(json_array_get(json_object_get(root, "choices"), 0), "delta");
    const char *reasoning = json_string_value(json_object_get(delta, "reasoning_content"));
    const char *content = json_string_value(json_object_get(delta, "content"));
    if (reasoning != NULL)
        out_piece(s->r, true, reasoning, strlen(reasoning));
    if (content != NULL)
        out_piece(s->r, false, content, strlen(content));
    json_decref(root);
}

static void sse_line(sse_state *s) {
    const char *l = buf_str(&s->line);
    if (strncmp(l, "data:", 5) == 0) {
        l += l[5] == ' ' ? 6 : 5;
        if (strcmp(l, "[DONE]") != 0)
            sse_event(s, l);
    } else if (l[0] != '\0') {
        buf_append(&s->other, l, strlen(l));
    }
    buf_reset(&s->line);
}

static bool sse_data(void *ctx, const char *p, size_t n) {
    sse_state *s = ctx;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n')
            sse_line(s);
        else if (p[i] != '\r' && buf_append(&s->line, &p[i], 1) != SHIMMY_OK)
            return false;
    }
    return true;
}

/* The message of an error body ({"error":{"message"}}), or the body itself. */
static void error_of_body(const char *body, long status, char *out, size_t n) {
    json_t *root = json_loads(body, 0, NULL);
    const char *m = json_string_value(json_object_get(json_object_get(root, "error"), "message"));
    if (m != NULL)
        snprintf(out, n, "%s", m);
    else
        snprintf(out, n, "HTTP %ld: %.300s", status, body);
    json_decref(root);
}

static shimmy_err answer_remote(run_ctx *r, char *err, size_t errlen) {
    char url[400];
    snprintf(url, sizeof url, "%s/v1/chat/completions", r->url);
    char *body = chat_body(r, true);
    if (body == NULL)
        return err_set(err, errlen, ERR_NOMEM, "out of memory");
    sse_state s = {.r = r};
    buf_init(&s.line, LIM_RESPONSE_BYTES);
    buf_init(&s.other, 64 * 1024);
    http_client_req req = {.method = "POST",
                           .url = url,
                           .body = body,
                           .bearer = r->key,
                           .connect_timeout_s = 5,
                           .on_data = sse_data,
                           .ctx = &s,
                           .abort = &run_interrupted};
    long status = 0;
    shimmy_err e = http_client_do(&req, &status, err, errlen);
    if (e == SHIMMY_OK && s.line.len > 0)
        sse_line(&s);
    if (e == SHIMMY_OK && status != 200)
        e = ERR_IO, error_of_body(buf_str(&s.other), status, err, errlen);
    else if (e == SHIMMY_OK && s.err[0] != '\0')
        e = ERR_INTERNAL, snprintf(err, errlen, "%s", s.err);
    buf_free(&s.line);
    buf_free(&s.other);
    free(body);
    return e;
}

/* ---- answers from this process ---- */

static shimmy_err answer_local(run_ctx *r, char *err, size_t errlen) {
    char *chat = chat_body(r, false);
    if (chat == NULL)
        return err_set(err, errlen, ERR_NOMEM, "out of memory");
    gen_request req = {.chat_json = chat};
    params_to_gen(r->params, &req.params);
    gen_job *job = NULL;
    shimmy_err e = engine_submit(r->m, &req, &job, err, errlen, NULL, 0);
    free(chat);
    if (e != SHIMMY_OK)
        return e;
    gen_events ev;
    gen_status st;
    gen_events_init(&ev);
    bool cancelled = false;
    do {
        if (run_interrupted && !cancelled) {
            engine_job_cancel(job);
            cancelled = true;
        }
        engine_job_wait(job, 100, &ev, &st);
        for (size_t i = 0; i < ev.n; i++)
            if (ev.ev[i].kind != GEN_EV_TOOL)
                out_piece(r, ev.ev[i].kind == GEN_EV_REASONING, ev.ev[i].text, ev.ev[i].len);
    } while (!st.done);
    if (cancelled)
        e = err_set(err, errlen, ERR_CANCELLED, "cancelled");
    else if (st.finish == FINISH_ERROR)
        e = err_set(err, errlen, st.error != SHIMMY_OK ? st.error : ERR_INTERNAL, "%s", st.errmsg);
    gen_events_free(&ev);
    engine_job_release(job);
    return e;
}

/* ---- one turn ---- */

/* Sends text as the user's turn and writes the answer. The turn and the answer join the
 * conversation unless it failed or was stopped. Returns the error (ERR_CANCELLED: Ctrl-C). */
static shimmy_err ask(run_ctx *r, const char *text) {
    char err[1024] = "";
    buf_reset(&r->answer);
    buf_reset(&r->reasoning);
    json_array_append_new(r->messages, json_pack("{s:s,s:s}", "role", "user", "content", text));
    run_interrupted = 0;
    shimmy_err e = r->url[0] ? answer_remote(r, err, sizeof err) : answer_local(r, err, sizeof err);
    bool wrote = r->answer.len > 0 || r->reasoning.len > 0;
    if (wrote)
        fputc('\n', stdout);
    fflush(stdout);
    if (e == SHIMMY_OK) {
        json_array_append_new(r->messages, json_pack("{s:s,s:s}", "role", "assistant", "content",
                                                     buf_str(&r->answer)));
        return e;
    }
    json_array_remove(r->messages, json_array_size(r->messages) - 1);
    if (e != ERR_CANCELLED)
        out_error(r, err);
    return e;
}

/* ---- the model, here or there ---- */

/* True when a shimmy answers GET /health at url. */
static bool server_answers(const char *url, const char *key) {
    char health[400];
    snprintf(health, sizeof health, "%s/health", url);
    http_client_req req = {.method = "GET",
                           .url = health,
                           .bearer = key,
                           .connect_timeout_s = LIM_RUN_PROBE_S,
                           .timeout_s = LIM_RUN_PROBE_S};
    long status = 0;
    return http_client_do(&req, &status, NULL, 0) == SHIMMY_OK && status == 200;
}

/* The registry name of name: a listed model, or a path to a .gguf file added as one. */
static bool local_name(run_ctx *r, const char *name, char *out, size_t n) {
    const model_rec *d = NULL;
    char err[1024];
    if (registry_find(r->reg, name, NULL, NULL)) {
        snprintf(out, n, "%s", name);
        return true;
    }
    if (registry_lookup(r->reg, name, err, sizeof err) == ERR_UNSUPPORTED ||
        (strchr(name, '/') == NULL && strstr(name, ".gguf") == NULL)) {
        fprintf(stderr, "shimmy run: %s\n",
                registry_lookup(r->reg, name, err, sizeof err) == ERR_UNSUPPORTED
                    ? err
                    : "no such model here (see 'shimmy list')");
        return false;
    }
    if (registry_add(r->reg, name, NULL, "cli", err, sizeof err) != SHIMMY_OK) {
        fprintf(stderr, "shimmy run: %s\n", err);
        return false;
    }
    for (size_t i = registry_count(r->reg); i-- > 0;) {
        bool cli = registry_get(r->reg, i, &d, NULL) && strcmp(d->source, "cli") == 0;
        if (cli)
            snprintf(out, n, "%s", d->name);
        model_rec_unref(d);
        if (cli)
            return true;
    }
    return false;
}

/* Loads name in this process (releasing the model in use once the new one is there). */
static bool local_load(run_ctx *r, const char *name) {
    char real[256], err[1024];
    engine_model *m = NULL;
    if (!local_name(r, name, real, sizeof real))
        return false;
    if (registry_acquire(r->reg, real, &m, err, sizeof err) != SHIMMY_OK) {
        fprintf(stderr, "shimmy run: %s\n", err);
        return false;
    }
    if (r->m != NULL)
        registry_release(r->reg, r->m);
    r->m = m;
    snprintf(r->model, sizeof r->model, "%s", real);
    return true;
}

static int local_start(run_ctx *r, run_opts *o, const char *name) {
    char err[1024];
    if (cli_engine_start("run", &o->eng) != 0 || (r->reg = registry_new(&o->eng)) == NULL)
        return 1;
    if (registry_add_sources(r->reg, o->models, o->n_models, o->model_dirs, err, sizeof err) !=
        SHIMMY_OK) {
        fprintf(stderr, "shimmy run: %s\n", err);
        return 1;
    }
    return local_load(r, name) ? 0 : 1;
}

/* Chooses the server or this process for name. Returns 0 when ready. */
static int connect_model(run_ctx *r, run_opts *o, const char *name, bool quiet) {
    bool is_path = strchr(name, '/') != NULL || strstr(name, ".gguf") != NULL;
    snprintf(r->url, sizeof r->url, "http://%s", o->server);
    if (!is_path && server_answers(r->url, r->key)) {
        snprintf(r->model, sizeof r->model, "%s", name);
        return 0;
    }
    if (!quiet)
        fprintf(stderr, "%s; loading %s in this process\n",
                is_path ? "a path" : "no shimmy answers at the server", name);
    r->url[0] = '\0';
    return local_start(r, o, name);
}

/* ---- commands ---- */

typedef enum { CMD_GO_ON, CMD_LEAVE } cmd_result;

static void show_info(const run_ctx *r) {
    char *params = json_dumps(r->params, JSON_COMPACT | JSON_REAL_PRECISION(6));
    printf("  model       %s\n  where       %s%s\n  parameters  %s\n  system      %s\n"
           "  turns       %zu\n",
           r->model, r->url[0] ? r->url : "this process", r->url[0] ? " (a shimmy server)" : "",
           params != NULL ? params : "{}", r->system != NULL ? r->system : "(none)",
           json_array_size(r->messages) / 2);
    free(params);
}

static void set_system(run_ctx *r, const char *text) {
    free(r->system);
    r->system = text[0] != '\0' ? strdup(text) : NULL;
    puts(r->system != NULL ? "Set the system prompt." : "Removed the system prompt.");
}

/* "/set parameter NAME VALUE" and "/set system TEXT". */
static void cmd_set(run_ctx *r, const char *args) {
    char name[64], value[64];
    if (strncmp(args, "system", 6) == 0 && (args[6] == ' ' || args[6] == '\0')) {
        set_system(r, args[6] ? args + 7 : "");
        return;
    }
    if (strncmp(args, "parameter ", 10) == 0 && sscanf(args + 10, "%63s %63s", name, value) == 2) {
        if (param_set(r->params, name, value))
            printf("Set parameter '%s' to '%s'.\n", name, value);
        return;
    }
    fputs("usage: /set parameter NAME VALUE, or /set system TEXT\n", stderr);
}

static void cmd_load(run_ctx *r, const char *name) {
    if (name[0] == '\0') {
        fputs("usage: /load MODEL\n", stderr);
        return;
    }
    if (r->url[0] != '\0') {
        snprintf(r->model, sizeof r->model, "%s", name);
        printf("Talking to '%s'.\n", r->model);
    } else if (local_load(r, name)) {
        printf("Loaded '%s'.\n", r->model);
    }
}

static cmd_result command(run_ctx *r, const char *line) {
    const char *arg = line + strcspn(line, " ");
    arg += strspn(arg, " ");
    size_t n = strcspn(line, " ");
    if (n == 4 && strncmp(line, "/bye", 4) == 0)
        return CMD_LEAVE;
    if (n == 6 && strncmp(line, "/clear", 6) == 0) {
        json_array_clear(r->messages);
        puts("Cleared the conversation.");
    } else if (n == 4 && strncmp(line, "/set", 4) == 0) {
        cmd_set(r, arg);
    } else if (n == 5 && strncmp(line, "/show", 5) == 0) {
        show_info(r);
    } else if (n == 5 && strncmp(line, "/load", 5) == 0) {
        cmd_load(r, arg);
    } else if ((n == 2 && strncmp(line, "/?", 2) == 0) || (n == 5 && !strncmp(line, "/help", 5))) {
        fputs(run_commands, stdout);
    } else {
        fprintf(stderr, "unknown command '%.*s' (/? lists them)\n", (int)n, line);
    }
    return CMD_GO_ON;
}

/* ---- input ---- */

/* One line from the terminal (owned), or NULL on Ctrl-D or Ctrl-C. */
static char *read_line(const run_ctx *r, const char *prompt) {
    (void)r;
    run_interrupted = 0;
    char *line = readline(prompt);
    if (run_interrupted) {
        free(line);
        return NULL;
    }
    return line;
}

/* Lines up to the one that ends with `"""`, after first (the text after the opening quotes).
 * Returns owned text or NULL (Ctrl-D, Ctrl-C). */
static char *read_multiline(const run_ctx *r, const char *first) {
    buf text;
    buf_init(&text, LIM_BODY_BYTES);
    const char *line = first;
    char *owned = NULL;
    for (;;) {
        size_t n = strlen(line);
        bool last = n >= 3 && strcmp(line + n - 3, "\"\"\"") == 0;
        if (line != first && (text.len > 0 || first[0] != '\0'))
            buf_append(&text, "\n", 1);
        buf_append(&text, line, last ? n - 3 : n);
        free(owned);
        if (last)
            break;
        if ((owned = read_line(r, "... ")) == NULL) {
            buf_free(&text);
            return NULL;
        }
        line = owned;
    }
    char *out = buf_take(&text);
    buf_free(&text);
    return out;
}

/* The next message or command (owned), or NULL to leave. */
static char *read_input(const run_ctx *r) {
    char *line = read_line(r, ">>> ");
    if (line == NULL)
        return NULL;
    if (line[0] != '\0')
        add_history(line);
    size_t n = strlen(line);
    if (strncmp(line, "\"\"\"", 3) != 0)
        return line;
    if (n >= 6 && strcmp(line + n - 3, "\"\"\"") == 0) { /* """one line""" */
        memmove(line, line + 3, n - 6);
        line[n - 6] = '\0';
        return line;
    }
    char *text = read_multiline(r, line + 3);
    free(line);
    return text;
}

static int interactive(run_ctx *r) {
    if (r->color)
        printf("\033[2m");
    printf("Chatting with %s%s%s. /? for help, /bye or Ctrl-D to leave.\n", r->model,
           r->url[0] ? " at " : " in this process", r->url[0] ? r->url : "");
    if (r->color)
        printf("\033[0m");
    for (;;) {
        char *line = read_input(r);
        if (line == NULL)
            break;
        const char *s = line + strspn(line, " \t");
        if (s[0] == '/' && strncmp(s, "/\"", 2) != 0) {
            cmd_result c = command(r, s);
            free(line);
            if (c == CMD_LEAVE)
                break;
            continue;
        }
        if (s[0] != '\0' && ask(r, line) == ERR_CANCELLED)
            puts(r->color ? "\033[2m(stopped)\033[0m" : "(stopped)");
        free(line);
    }
    return 0;
}

/* ---- one answer ---- */

/* Drops trailing new lines and spaces. */
static void trim_end(buf *b) {
    while (b->len > 0 && (b->data[b->len - 1] == '\n' || b->data[b->len - 1] == ' ' ||
                          b->data[b->len - 1] == '\r'))
        b->data[--b->len] = '\0';
}

/* The prompt: piped input, then the PROMPT words joined by spaces. Returns owned text. */
static char *one_shot_prompt(int argc, char **argv, int first) {
    buf text;
    buf_init(&text, LIM_RUN_STDIN_BYTES + 64 * 1024);
    if (!isatty(STDIN_FILENO)) {
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0 &&
               text.len + n <= LIM_RUN_STDIN_BYTES && buf_append(&text, chunk, n) == SHIMMY_OK)
            ;
    }
    trim_end(&text);
    for (int i = first; first > 0 && i < argc; i++) {
        if (text.len > 0)
            buf_append(&text, i == first ? "\n" : " ", 1);
        buf_append(&text, argv[i], strlen(argv[i]));
    }
    trim_end(&text);
    char *out = text.data != NULL ? buf_take(&text) : strdup("");
    buf_free(&text);
    return out;
}

/* ---- arguments ---- */

static int parse_option(int opt, const char *arg, const char *shown, run_opts *o) {
    int r = cli_parse_engine_flag("run", opt, arg, &o->eng);
    if (r != 0)
        return r == 2 ? 2 : 0;
    switch (opt) {
    case 'S':
        o->server = arg;
        return 0;
    case 'k':
        o->key = arg;
        return 0;
    case 'y':
        o->system = arg;
        return 0;
    case 'n':
        return param_set(o->params, "max_tokens", arg) ? 0 : 2;
    case 'e':
        return param_set(o->params, "temperature", arg) ? 0 : 2;
    case 'm':
        if (o->n_models >= LIM_MODELS)
            return cli_usage_error("run", "at most %d --model options", LIM_MODELS);
        o->models[o->n_models++] = (char *)arg;
        return 0;
    case 'd':
        o->model_dirs = arg;
        return 0;
    case 'h':
        fputs(run_help, stdout);
        return -1;
    case ':':
        return cli_usage_error("run", "option '%s' needs a value", shown);
    default:
        return cli_usage_error("run", "unknown option '%s'", shown);
    }
}

/* Options anywhere (GNU getopt moves the words to the end): MODEL, then the PROMPT's words.
 * Returns 0, -1 (help shown) or 2. */
static int parse_args(int argc, char **argv, run_opts *o) {
    static const struct option longopts[] = {{"server", required_argument, NULL, 'S'},
                                             {"api-key", required_argument, NULL, 'k'},
                                             {"system", required_argument, NULL, 'y'},
                                             {"max-tokens", required_argument, NULL, 'n'},
                                             {"temperature", required_argument, NULL, 'e'},
                                             {"model", required_argument, NULL, 'm'},
                                             {"model-dirs", required_argument, NULL, 'd'},
                                             {"ctx", required_argument, NULL, 'c'},
                                             {"threads", required_argument, NULL, 't'},
                                             {"template", required_argument, NULL, 'T'},
                                             {"chat-template-file", required_argument, NULL, 'J'},
                                             {"help", no_argument, NULL, 'h'},
                                             CLI_GPU_LONGOPTS,
                                             {NULL, 0, NULL, 0}};
    opterr = 0;
    optind = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        int rc = parse_option(opt, optarg, argv[optind - 1], o);
        if (rc != 0)
            return rc;
    }
    if (optind >= argc)
        return cli_usage_error("run", "missing the model NAME");
    if (optind + 1 < argc)
        o->first_prompt = optind + 1;
    return 0;
}

/* ---- the command ---- */

static void ctx_free(run_ctx *r) {
    if (r->m != NULL)
        registry_release(r->reg, r->m);
    registry_free(r->reg);
    json_decref(r->messages);
    free(r->system);
    buf_free(&r->answer);
    buf_free(&r->reasoning);
}

static void ctx_init(run_ctx *r, run_opts *o) {
    memset(r, 0, sizeof *r);
    const char *no_color = getenv("NO_COLOR");
    r->color = isatty(STDOUT_FILENO) && (no_color == NULL || no_color[0] == '\0');
    r->messages = json_array();
    r->params = o->params;
    r->key = o->key != NULL ? o->key : getenv("SHIMMY_API_KEY");
    r->system = o->system != NULL ? strdup(o->system) : NULL;
    buf_init(&r->answer, LIM_RESPONSE_BYTES);
    buf_init(&r->reasoning, LIM_RESPONSE_BYTES);
}

static void signals_init(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL); /* no SA_RESTART: a blocked read returns */
}

static int run_chat(run_opts *o, int argc, char **argv, const char *name) {
    run_ctx r;
    ctx_init(&r, o);
    bool once = o->first_prompt > 0 || !isatty(STDIN_FILENO);
    int rc = connect_model(&r, o, name, once);
    if (rc == 0 && once) {
        char *prompt = one_shot_prompt(argc, argv, o->first_prompt);
        shimmy_err e = prompt != NULL ? ask(&r, prompt) : ERR_NOMEM;
        rc = e == SHIMMY_OK ? 0 : e == ERR_CANCELLED ? 130 : 1;
        free(prompt);
    } else if (rc == 0) {
        rc = interactive(&r);
    }
    ctx_free(&r);
    return rc;
}

int cli_run(int argc, char **argv) {
    run_opts o;
    memset(&o, 0, sizeof o);
    o.server = LIM_DEFAULT_HOST ":" LIM_STR(LIM_DEFAULT_PORT);
    o.params = json_object();
    engine_options_default(&o.eng);
    o.eng.progress = cli_progress;
    o.eng.n_parallel = 1;
    int rc = cli_gpu_defaults("run", &o.eng);
    if (rc == 0)
        rc = parse_args(argc, argv, &o);
    if (rc == 0) {
        signals_init();
        rc = run_chat(&o, argc, argv, argv[optind]);
    }
    json_decref(o.params);
    return rc < 0 ? 0 : rc;
}
