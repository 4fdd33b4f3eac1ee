/* Unit test of the chat parser (engine/llama_chat.h) against the reference, for every template
 * of the pinned llama.cpp source (the .jinja files of deps/llama.cpp/models/templates, found
 * through SHIMMY_SOURCE_DIR). Canned model outputs in every tool-call and reasoning syntax the
 * chat module knows (strings taken from llama.cpp's own tests/test-chat*.cpp) are read by the
 * reference (lchat_parse_whole: llama.cpp's common_chat_parse of the whole text) and by shimmy's
 * streaming parser (lchat_parser_feed), fed every prefix cut at each UTF-8 character boundary and
 * then the whole text, and also the whole text at once. The events, put together as an API
 * client does (content, reasoning, calls announced with id and name, then argument pieces), must
 * give the reference's content, reasoning and calls (names and ids equal, arguments equal as
 * JSON). Readings that cannot agree are listed in known_divergences with the reason.
 *
 * Every template that can express tools must have a candidate that yields a call; the ones that
 * cannot be covered are listed in known_gaps with the reason. SHIMMY_CHAT_DEBUG=TEXT prints the
 * prompts and every reading for the templates whose file name contains TEXT.
 *
 * The templates are rendered through the backend (be_load of stories260K with the template as
 * --chat-template-file text, then be_render), because rendering needs a loaded model's vocab for
 * the grammar triggers and the C interface hands out no model pointer. Each request is rendered
 * once per template and its parser reset (lchat_parser_reset) before each reading. */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/buf.h"
#include "core/log.h"
#include "engine/backend.h"
#include "engine/llama_chat.h"
#include "fixtures.h"

/* Fails the test with a message that reaches the terminal (stderr is quiet while templates run). */
static void quiet_stderr(bool quiet);
#define DIE(...)                                                                                   \
    do {                                                                                           \
        quiet_stderr(false);                                                                       \
        fail_msg(__VA_ARGS__);                                                                     \
    } while (0)

/* ---- the canned outputs ---- */

#define ARGS "{\"city\": \"Paris\", \"days\": 3}"
#define HERMES_CALL                                                                                \
    "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": " ARGS "}\n</tool_call>"
#define XML_CALL                                                                                   \
    "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n"                 \
    "<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>"
#define DS_CALL_V3                                                                                 \
    "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>" ARGS                    \
    "<｜tool▁call▁end｜><｜tool▁calls▁end｜>"
#define DS_CALL_R1                                                                                 \
    "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n" ARGS \
    "```<｜tool▁call▁end｜><｜tool▁calls▁end｜>"
#define DSML_CALL(tag)                                                                             \
    "<｜DSML｜" tag ">\n<｜DSML｜invoke name=\"get_weather\">\n"                                 \
    "<｜DSML｜parameter name=\"city\" string=\"true\">Paris</｜DSML｜parameter>\n"             \
    "<｜DSML｜parameter name=\"days\" string=\"false\">3</｜DSML｜parameter>\n"                \
    "</｜DSML｜invoke>\n</｜DSML｜" tag ">"
#define KIMI_CALL                                                                                  \
    "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0"                       \
    "<|tool_call_argument_begin|>" ARGS "<|tool_call_end|><|tool_calls_section_end|>"
#define COHERE_ACTION                                                                              \
    "<|START_ACTION|>[\n    {\"tool_call_id\": \"0\", \"tool_name\": \"get_weather\", "            \
    "\"parameters\": " ARGS "}\n]<|END_ACTION|>"
#define GLM_CALL                                                                                   \
    "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Paris</arg_value>\n"              \
    "<arg_key>days</arg_key>\n<arg_value>3</arg_value>\n</tool_call>"
#define MINIMAX_CALL                                                                               \
    "<minimax:tool_call>\n<invoke name=\"get_weather\">\n"                                         \
    "<parameter name=\"city\">Paris</parameter>\n<parameter name=\"days\">3</parameter>\n"         \
    "</invoke>\n</minimax:tool_call>"
#define MM3 "]<]minimax[>["
#define MINIMAX3_CALL                                                                              \
    MM3 "<tool_call>\n" MM3 "<invoke name=\"get_weather\">" MM3 "<city>Paris" MM3 "</city>" MM3    \
        "<days>3" MM3 "</days>" MM3 "</invoke>\n" MM3 "</tool_call>"
#define KIMI3_CALL                                                                                 \
    "<|open|>response<|sep|><|close|>response<|sep|><|open|>tools<|sep|>"                          \
    "<|open|>call tool=\"get_weather\" index=\"1\"<|sep|>"                                         \
    "<|open|>argument key=\"city\" type=\"string\"<|sep|>Paris<|close|>argument<|sep|>"            \
    "<|open|>argument key=\"days\" type=\"number\"<|sep|>3<|close|>argument<|sep|>"                \
    "<|close|>call<|sep|><|close|>tools<|sep|><|close|>message<|sep|>"
#define GLIMMER_CALL                                                                               \
    "<atem:function_calls>\n<atem:invoke name=\"get_weather\">\n"                                  \
    "<atem:parameter name=\"city\">Paris</atem:parameter>\n"                                       \
    "<atem:parameter name=\"days\">3</atem:parameter>\n</atem:invoke>\n</atem:function_calls>"

typedef struct cand {
    const char *name; /* family: syntax */
    const char *text; /* what the model writes after the prompt */
    bool call;        /* has tool-call markup (tried with the tools request only) */
} cand;

static const cand cands[] = {
    /* plain answers and reasoning */
    {"plain", "Hello, world!\nWhat's up?", false},
    {"think-tags", "<think>I'm\nthinking</think>Hello, world!", false},
    {"think-open", "I'm\nthinking\n</think>\n\nHello, world!", false},
    {"think-empty-close", "</think>Hello, world!", false},
    {"seed-think", "<seed:think>I'm thinking</seed:think>\nHello, world!", false},
    {"mistral-think", "[THINK]I'm\nthinking[/THINK]Hello, world!", false},
    {"cohere-r7b-response",
     "<|START_THINKING|>I'm\nthinking<|END_THINKING|>"
     "<|START_RESPONSE|>Hello, world!<|END_RESPONSE|>",
     false},
    {"cohere2-text", "I'm\nthinking<|END_THINKING|><|START_TEXT|>Hello, world!<|END_TEXT|>", false},
    {"gemma4-thought", "<|channel>thought\nI'm\nthinking<channel|>Hello, world!", false},
    {"gpt-oss-final",
     "<|channel|>analysis<|message|>I'm\nthinking<|end|><|start|>assistant"
     "<|channel|>final<|message|>Hello, world!",
     false},
    {"minimax3-think", "<mm:think>I'm\nthinking</mm:think>Hello, world!", false},
    {"apriel-final", "I'm\nthinking\n[BEGIN FINAL RESPONSE]\nHello, world!", false},
    {"kimi3-response",
     "I'm thinking<|close|>think<|sep|><|open|>response<|sep|>Hello, world!"
     "<|close|>response<|sep|><|close|>message<|sep|>",
     false},
    {"functionary-all", "all\nHello, world!", false},
    {"glimmer-user", " to=user<|message|>Hello, world!<|eot|>", false},
    {"utf8", "Caf\xc3\xa9 \xe2\x98\x95 \xf0\x9f\x98\x80 ok", false},
    /* tool calls */
    {"hermes", HERMES_CALL, true},
    {"hermes+content",
     "Let me check.<tool_call>\n{\"name\": \"get_weather\", \"arguments\": " ARGS "}</tool_call>",
     true},
    {"hermes+think", "<think>I'm\nthinking</think>\n" HERMES_CALL, true},
    {"qwen3-coder", XML_CALL, true},
    {"qwen3-coder+think-open", "I'm\nthinking\n</think>\n\n" XML_CALL, true},
    {"qwen3-coder+think", "<think>I'm\nthinking</think>\n" XML_CALL, true},
    {"llama3-json", "{\"name\": \"get_weather\", \"parameters\": " ARGS "}", true},
    {"mistral-nemo",
     "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": " ARGS ", \"id\": \"123456789\"}]",
     true},
    {"mistral-small-3.2", "[TOOL_CALLS]get_weather[CALL_ID]123456789[ARGS]" ARGS, true},
    {"devstral", "[TOOL_CALLS]get_weather[ARGS]" ARGS, true},
    {"ministral+think", "[THINK]I'm\nthinking[/THINK][TOOL_CALLS]get_weather[ARGS]" ARGS, true},
    {"gpt-oss-commentary",
     "<|channel|>analysis<|message|>I'm thinking<|end|><|start|>assistant"
     "<|channel|>commentary to=functions.get_weather <|constrain|>json"
     "<|message|>" ARGS,
     true},
    {"gpt-oss-recipient", " to=functions.get_weather<|channel|>commentary<|message|>" ARGS, true},
    {"deepseek-r1", DS_CALL_R1, true},
    {"deepseek-r1+think", "I'm thinking</think>" DS_CALL_R1, true},
    {"deepseek-v3.1", DS_CALL_V3, true},
    {"deepseek-v3.1+think", "I'm thinking</think>" DS_CALL_V3, true},
    {"deepseek-v3.2-dsml", "\n\n" DSML_CALL("function_calls"), true},
    {"deepseek-v3.2-dsml+think", "I'm thinking</think>\n\n" DSML_CALL("function_calls"), true},
    {"deepseek-v4-dsml", "\n\n" DSML_CALL("tool_calls"), true},
    {"deepseek-v4-dsml+think", "I'm thinking</think>\n\n" DSML_CALL("tool_calls"), true},
    {"command-r7b", "<|START_THINKING|>I'm\nthinking<|END_THINKING|>" COHERE_ACTION, true},
    {"cohere2", "I'm\nthinking<|END_THINKING|>" COHERE_ACTION, true},
    {"command-r-plus",
     "Action:\n```json\n[{\"tool_name\": \"get_weather\", \"parameters\": " ARGS "}]\n```", true},
    {"functionary-v3.1", "<function=get_weather>" ARGS "</function>", true},
    {"functionary-v3.2", "get_weather\n" ARGS, true},
    {"firefunction-v2", " functools[{\"name\": \"get_weather\", \"arguments\": " ARGS "}]", true},
    {"kimi-k2", KIMI_CALL, true},
    {"kimi-k2+think", "<think>I'm thinking</think>" KIMI_CALL, true},
    {"kimi-k3", KIMI3_CALL, true},
    {"glm", GLM_CALL, true},
    {"glm-4.7",
     "<tool_call>get_weather<arg_key>city</arg_key><arg_value>Paris</arg_value>"
     "<arg_key>days</arg_key><arg_value>3</arg_value></tool_call>",
     true},
    {"glm+think", "I'm\nthinking</think>" GLM_CALL, true},
    {"glm-4.7+think",
     "I'm\nthinking</think><tool_call>get_weather<arg_key>city</arg_key>"
     "<arg_value>Paris</arg_value><arg_key>days</arg_key><arg_value>3</arg_value>"
     "</tool_call>",
     true},
    {"minimax-m1",
     "<tool_calls>\n{\"name\": \"get_weather\", \"arguments\": " ARGS "}\n</tool_calls>", true},
    {"hy3",
     "<tool_calls:opensource>\n<tool_call:opensource>get_weather<tool_sep:opensource>\n"
     "<arg_key:opensource>city</arg_key:opensource>\n"
     "<arg_value:opensource>Paris</arg_value:opensource>\n"
     "<arg_key:opensource>days</arg_key:opensource>\n"
     "<arg_value:opensource>3</arg_value:opensource>\n"
     "</tool_call:opensource>\n</tool_calls:opensource>",
     true},
    {"solar",
     "<|tool_calls|><|tool_call:begin|>123456789<|tool_call:name|>get_weather"
     "<|tool_call:args|>" ARGS "<|tool_call:end|><|calls|>",
     true},
    /* the reference's Solar parser takes only the call id its template analysis used */
    {"solar-analysis-id",
     "<|tool_calls|><|tool_call:begin|>call00001<|tool_call:name|>get_weather"
     "<|tool_call:args|>" ARGS "<|tool_call:end|><|calls|>",
     true},
    {"solar-bare",
     "<|tool_call:begin|>123456789<|tool_call:name|>get_weather<|tool_call:args|>" ARGS
     "<|tool_call:end|>",
     true},
    {"minimax-m2", "\n</think>\n\n" MINIMAX_CALL, true},
    {"minimax-m3", "<mm:think>I'm thinking</mm:think>" MINIMAX3_CALL, true},
    {"gemma4", "<|tool_call>call:get_weather{city:<|\"|>Paris<|\"|>,days:3}<tool_call|>", true},
    {"apertus", "<|tools_prefix|>[{\"get_weather\": " ARGS "}]<|tools_suffix|>", true},
    {"granite-3.3", "<|tool_call|>[{\"name\": \"get_weather\", \"arguments\": " ARGS "}]", true},
    {"nemotron-v2",
     "I'm\nthinking\n</think>\n<TOOLCALL>[{\"name\": \"get_weather\", "
     "\"arguments\": " ARGS "}]</TOOLCALL>",
     true},
    {"lfm2", "<|tool_call_start|>[get_weather(city=\"Paris\", days=3)]<|tool_call_end|>", true},
    {"lfm2+think",
     "<think>I'm\nthinking</think><|tool_call_start|>[get_weather(city=\"Paris\", "
     "days=3)]<|tool_call_end|>",
     true},
    {"seed-oss",
     "<seed:tool_call>\n<function=get_weather>\n<parameter=city>Paris</parameter>\n"
     "<parameter=days>3</parameter>\n</function>\n</seed:tool_call>",
     true},
    {"apriel-1.5",
     "<tool_calls>[{\"name\": \"get_weather\", \"arguments\": " ARGS "}]</tool_calls>", true},
    {"apriel-1.6",
     "I'm\nthinking\n[BEGIN FINAL RESPONSE]\n<tool_calls>[{\"name\": "
     "\"get_weather\", \"arguments\": " ARGS "}]</tool_calls>",
     true},
    {"gigachat3",
     "<|message_sep|>\n\nfunction call<|role_sep|>\n{\"name\": \"get_weather\", "
     "\"arguments\": " ARGS "}",
     true},
    {"gigachat3.1", "<|function_call|>{\"name\": \"get_weather\", \"arguments\": " ARGS "}", true},
    {"minicpm5",
     "<function name=\"get_weather\"><param name=\"city\">Paris</param>"
     "<param name=\"days\">3</param></function>",
     true},
    {"minicpm5+think",
     "I'm\nthinking\n</think>\n\n<function name=\"get_weather\">"
     "<param name=\"city\">Paris</param><param name=\"days\">3</param>"
     "</function>",
     true},
    {"muse-glimmer",
     " to=user<|message|>On it.<|eom|><|start|>assistant to=get_weather<|message|>" GLIMMER_CALL,
     true},
};
#define N_CANDS (sizeof cands / sizeof cands[0])

/* Tool-capable templates that no candidate covers, and why. Checked both ways: a template listed
 * here that does yield a call fails the test too, so that the list stays true. */
typedef struct gap {
    const char *file;
    const char *why;
} gap;

static const gap known_gaps[] = {
    {"Mistral-Small-3.2-24B-Instruct-2506.jinja",
     "the reference cannot read [TOOL_CALLS]NAME[CALL_ID]ID[ARGS]{...} when the template is loaded "
     "with a model whose EOS is </s> (stories260K, and every Mistral GGUF): its template analysis "
     "then builds a parser that refuses every call; with empty BOS/EOS (llama.cpp's own test, "
     "which loads no model) it reads the same text"},
};

/* Candidates whose streamed reading cannot equal the whole one, and why. Checked both ways. */
typedef struct divergence {
    const char *file, *cand, *why;
    bool ids_only; /* only the tool call ids differ: everything else is still compared */
} divergence;

static const divergence known_divergences[] = {
    {"Qwen3-Coder.jinja", "seed-oss",
     "the reference's partial reading of <seed:tool_call> <function=...> is a call (Qwen3-Coder "
     "takes <function= without <tool_call>), its whole reading is plain content (the trailing "
     "</seed:tool_call> is not its syntax): a call once streamed cannot be taken back",
     false},
    {"mistralai-Mistral-Nemo-Instruct-2407.jinja", "mistral-nemo",
     "the model writes the call id after the arguments ([TOOL_CALLS][{\"name\", \"arguments\", "
     "\"id\"}]): a streamed call is announced, with an id made up, before its id is written "
     "(llama-server streams it the same way)",
     true},
};

static const divergence *find_divergence(const char *file, const char *cand_name) {
    for (size_t i = 0; i < sizeof known_divergences / sizeof known_divergences[0]; i++)
        if (strcmp(known_divergences[i].file, file) == 0 &&
            strcmp(known_divergences[i].cand, cand_name) == 0)
            return &known_divergences[i];
    return NULL;
}

/* ---- the requests ---- */

static const char *req_tools =
    "{\"messages\":[{\"role\":\"system\",\"content\":\"You are helpful.\"},"
    "{\"role\":\"user\",\"content\":\"Weather in Paris for 3 days?\"}],"
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
    "\"description\":\"Weather forecast\",\"parameters\":{\"type\":\"object\",\"properties\":"
    "{\"city\":{\"type\":\"string\"},\"days\":{\"type\":\"integer\"}},"
    "\"required\":[\"city\",\"days\"]}}}],\"tool_choice\":\"auto\"}";
static const char *req_think =
    "{\"messages\":[{\"role\":\"system\",\"content\":\"You are helpful.\"},"
    "{\"role\":\"user\",\"content\":\"Hello?\"}],\"reasoning_format\":\"deepseek\"}";

/* For SHIMMY_CHAT_DEBUG: how the template writes a call (the syntax its model was taught). */
static const char *req_history =
    "{\"messages\":[{\"role\":\"user\",\"content\":\"Weather in Paris for 3 days?\"},"
    "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"123456789\","
    "\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":"
    "\"{\\\"city\\\": \\\"Paris\\\", \\\"days\\\": 3}\"}}]},"
    "{\"role\":\"tool\",\"tool_call_id\":\"123456789\",\"content\":\"sunny\"}],"
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"},"
    "\"days\":{\"type\":\"integer\"}}}}}]}";

#define NOW_S 1735689600 /* 2025-01-01: templates that print the date see a fixed one */

/* ---- what a client puts together ---- */

#define MAX_CALLS 8

typedef struct reading {
    buf content, reasoning;
    int n_calls;
    buf id[MAX_CALLS], name[MAX_CALLS], args[MAX_CALLS];
    char why[256]; /* the first protocol error of the events, if any */
} reading;

static void reading_init(reading *r) {
    memset(r, 0, sizeof *r);
    buf_init(&r->content, 1 << 20);
    buf_init(&r->reasoning, 1 << 20);
    for (int i = 0; i < MAX_CALLS; i++) {
        buf_init(&r->id[i], 1 << 16);
        buf_init(&r->name[i], 1 << 16);
        buf_init(&r->args[i], 1 << 20);
    }
}

static void reading_free(reading *r) {
    buf_free(&r->content);
    buf_free(&r->reasoning);
    for (int i = 0; i < MAX_CALLS; i++) {
        buf_free(&r->id[i]);
        buf_free(&r->name[i]);
        buf_free(&r->args[i]);
    }
}

static void protocol_error(reading *r, const char *what) {
    if (r->why[0] == '\0')
        snprintf(r->why, sizeof r->why, "%s", what);
}

static void take_tool_event(reading *r, const gen_event *e) {
    int i = e->tool_index;
    if (e->tool_name != NULL) {
        if (i != r->n_calls || i >= MAX_CALLS) {
            protocol_error(r, "a call announced out of order");
            return;
        }
        if (e->tool_id == NULL || e->tool_id[0] == '\0')
            protocol_error(r, "a call announced without an id");
        else
            buf_append(&r->id[i], e->tool_id, strlen(e->tool_id));
        buf_append(&r->name[i], e->tool_name, strlen(e->tool_name));
        r->n_calls++;
    } else if (i < 0 || i >= r->n_calls) {
        protocol_error(r, "arguments for a call not announced");
        return;
    }
    buf_append(&r->args[i], e->text, e->len);
}

static void take_events(reading *r, gen_events *ev) {
    gen_events_seal(ev);
    for (size_t k = 0; k < ev->n; k++) {
        const gen_event *e = &ev->ev[k];
        if (e->kind == GEN_EV_CONTENT)
            buf_append(&r->content, e->text, e->len);
        else if (e->kind == GEN_EV_REASONING)
            buf_append(&r->reasoning, e->text, e->len);
        else
            take_tool_event(r, e);
    }
    gen_events_clear(ev);
}

/* ---- the reference's reading ---- */

typedef struct ref_reading {
    json_t *msg;
    const char *content, *reasoning;
    json_t *calls; /* array, borrowed from msg */
} ref_reading;

static const char *str_member(json_t *o, const char *key) {
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : "";
}

/* SHIMMY_CHAT_DEBUG=TEXT: for templates whose file name contains TEXT, print the prompts, why the
 * reference refuses each candidate and what it reads. */
static const char *debug_filter;
static bool debugging;

static bool ref_read(const lchat_parser *p, const char *text, ref_reading *out) {
    char *js = NULL, err[512];
    if (lchat_parse_whole(p, text, strlen(text), &js, err, sizeof err) != SHIMMY_OK) {
        if (debugging)
            printf("  refused: %.200s\n", err);
        return false;
    }
    if (debugging)
        printf("  reading: %s\n", js);
    json_error_t je;
    out->msg = json_loads(js, 0, &je);
    free(js);
    if (out->msg == NULL)
        DIE("the reference's reading is not JSON: %s", je.text);
    out->content = str_member(out->msg, "content");
    out->reasoning = str_member(out->msg, "reasoning_content");
    out->calls = json_object_get(out->msg, "tool_calls");
    if (!json_is_array(out->calls))
        out->calls = NULL;
    return true;
}

static size_t ref_n_calls(const ref_reading *ref) {
    return ref->calls != NULL ? json_array_size(ref->calls) : 0;
}

static const char *ref_call(const ref_reading *ref, size_t i, const char *field) {
    json_t *fn = json_object_get(json_array_get(ref->calls, i), "function");
    return str_member(fn, field);
}

static bool json_text_equal(const char *a, const char *b) {
    json_t *ja = json_loads(a, JSON_DECODE_ANY, NULL);
    json_t *jb = json_loads(b, JSON_DECODE_ANY, NULL);
    bool eq = ja != NULL && jb != NULL ? json_equal(ja, jb) : strcmp(a, b) == 0;
    json_decref(ja);
    json_decref(jb);
    return eq;
}

static bool is_prefix(const char *pre, size_t n, const char *s) {
    return strlen(s) >= n && memcmp(pre, s, n) == 0;
}

/* Whether what the client has so far can still become the reference's reading (used to find
 * where a stream first went astray; argument text is compared as text, so only indicative). */
static bool consistent(reading *r, const ref_reading *ref) {
    if (!is_prefix(buf_str(&r->content), r->content.len, ref->content) ||
        !is_prefix(buf_str(&r->reasoning), r->reasoning.len, ref->reasoning) ||
        (size_t)r->n_calls > ref_n_calls(ref) || r->why[0] != '\0')
        return false;
    for (int i = 0; i < r->n_calls; i++)
        if (strcmp(buf_str(&r->name[i]), ref_call(ref, (size_t)i, "name")) != 0 ||
            !is_prefix(buf_str(&r->args[i]), r->args[i].len, ref_call(ref, (size_t)i, "arguments")))
            return false;
    return true;
}

/* Whether the final reading equals the reference's; the difference in why otherwise. */
static bool same_reading(reading *r, const ref_reading *ref, bool ids, char *why, size_t whylen) {
    if (r->why[0] != '\0')
        return snprintf(why, whylen, "%s", r->why), false;
    if (strcmp(buf_str(&r->content), ref->content) != 0)
        return snprintf(why, whylen, "content %.80s != %.80s", buf_str(&r->content), ref->content),
               false;
    if (strcmp(buf_str(&r->reasoning), ref->reasoning) != 0)
        return snprintf(why, whylen, "reasoning %.80s != %.80s", buf_str(&r->reasoning),
                        ref->reasoning),
               false;
    if ((size_t)r->n_calls != ref_n_calls(ref))
        return snprintf(why, whylen, "%d calls != %zu", r->n_calls, ref_n_calls(ref)), false;
    for (int i = 0; i < r->n_calls; i++) {
        if (strcmp(buf_str(&r->name[i]), ref_call(ref, (size_t)i, "name")) != 0)
            return snprintf(why, whylen, "call %d name %s != %s", i, buf_str(&r->name[i]),
                            ref_call(ref, (size_t)i, "name")),
                   false;
        const char *id = str_member(json_array_get(ref->calls, (size_t)i), "id");
        if (ids && id[0] != '\0' && strcmp(buf_str(&r->id[i]), id) != 0)
            return snprintf(why, whylen, "call %d id %s != %s", i, buf_str(&r->id[i]), id), false;
        if (!json_text_equal(buf_str(&r->args[i]), ref_call(ref, (size_t)i, "arguments")))
            return snprintf(why, whylen, "call %d arguments %.80s != %.80s", i,
                            buf_str(&r->args[i]), ref_call(ref, (size_t)i, "arguments")),
                   false;
    }
    return true;
}

/* ---- one template ---- */

typedef struct tmpl_case {
    const char *file;
    be_model *model;
    engine_tmpl_caps caps;
    int parsed, with_calls, with_reasoning, failures;
} tmpl_case;

static int total_failures;

/* Renders req with tc's template; the parser of the render is reset before each reading. */
static bool render(tmpl_case *tc, const char *req, lchat_render *r) {
    char err[512], param[64];
    shimmy_err rc =
        be_render(tc->model, req, NULL, NOW_S, true, r, err, sizeof err, param, sizeof param);
    if (rc != SHIMMY_OK) {
        printf("FAIL %s: the request does not render (%s: %s)\n", tc->file, param, err);
        tc->failures++;
        return false;
    }
    if (r->parser == NULL)
        DIE("%s: a chat render without a parser", tc->file);
    return true;
}

static void report(tmpl_case *tc, const char *req_name, const cand *c, const char *how, size_t at,
                   const char *why) {
    printf("FAIL %s [%s] %s (%s): first diverged at byte %zu of %zu: %s\n", tc->file, req_name,
           c->name, how, at, strlen(c->text), why);
    tc->failures++;
}

/* Feeds c's text to p, reset: every prefix cut at a UTF-8 character boundary, then the whole
 * text as final (stream), or only the whole text as final (!stream). Returns the offset where the
 * reading first stopped being consistent with ref (the text's length when it never did). */
static size_t feed(lchat_parser *p, const cand *c, bool stream, const ref_reading *ref,
                   reading *rd) {
    gen_events ev;
    gen_events_init(&ev);
    lchat_parser_reset(p);
    size_t n = strlen(c->text), diverged = n;
    for (size_t i = 1; stream && i < n; i++) {
        if (((unsigned char)c->text[i] & 0xC0) == 0x80)
            continue; /* inside a character */
        if (lchat_parser_feed(p, c->text, i, true, &ev) != SHIMMY_OK)
            DIE("lchat_parser_feed failed on %s at byte %zu", c->name, i);
        take_events(rd, &ev);
        if (diverged == n && !consistent(rd, ref))
            diverged = i;
    }
    if (lchat_parser_feed(p, c->text, n, false, &ev) != SHIMMY_OK)
        DIE("lchat_parser_feed failed on the whole of %s", c->name);
    take_events(rd, &ev);
    if (lchat_parser_n_tool_calls(p) != rd->n_calls)
        protocol_error(rd, "lchat_parser_n_tool_calls differs from the calls announced");
    if (diverged == n && !consistent(rd, ref))
        diverged = n;
    gen_events_free(&ev);
    return diverged;
}

static void check_candidate(tmpl_case *tc, const char *req_name, lchat_parser *p, const cand *c) {
    ref_reading ref;
    if (debugging)
        printf(" [%s] %s\n", req_name, c->name);
    if (!ref_read(p, c->text, &ref))
        return; /* the reference refuses it: not this template's format */
    tc->parsed++;
    tc->with_calls += ref_n_calls(&ref) > 0;
    tc->with_reasoning += ref.reasoning[0] != '\0';
    const divergence *known = find_divergence(tc->file, c->name);
    for (int stream = 1; stream >= 0; stream--) {
        reading rd;
        reading_init(&rd);
        size_t at = feed(p, c, stream, &ref, &rd);
        char why[512];
        bool same = same_reading(&rd, &ref, true, why, sizeof why);
        if (stream && known != NULL && same) {
            report(tc, req_name, c, "streamed", at, "listed as a known divergence but agrees");
        } else if (stream && known != NULL) {
            printf("known divergence: %s [%s] %s at byte %zu: %s\n", tc->file, req_name, c->name,
                   at, known->why);
            if (known->ids_only && !same_reading(&rd, &ref, false, why, sizeof why))
                report(tc, req_name, c, "streamed", at, why);
        } else if (!same) {
            report(tc, req_name, c, stream ? "streamed" : "whole at once", at, why);
        }
        reading_free(&rd);
    }
    json_decref(ref.msg);
}

static char template_dir[4096];
static char stories_path[4096];

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        DIE("cannot open %s", path);
    buf b;
    buf_init(&b, 1 << 20);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (buf_append(&b, chunk, n) != SHIMMY_OK)
            DIE("%s is too large", path);
    fclose(f);
    return buf_take(&b);
}

static const gap *find_gap(const char *file) {
    for (size_t i = 0; i < sizeof known_gaps / sizeof known_gaps[0]; i++)
        if (known_gaps[i].file != NULL && strcmp(known_gaps[i].file, file) == 0)
            return &known_gaps[i];
    return NULL;
}

/* Runs every candidate on one template. */
static void check_template(tmpl_case *tc) {
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", template_dir, tc->file);
    char *jinja = read_text(path);
    engine_options o;
    engine_options_default(&o);
    o.path = stories_path;
    o.name = tc->file;
    o.n_parallel = 1;
    o.n_ctx = 128;
    o.n_threads = 1;
    o.template_text = jinja;
    char err[512];
    if (be_load(&o, &tc->model, err, sizeof err) != SHIMMY_OK)
        DIE("%s: cannot load stories260K with this template: %s", tc->file, err);
    char *src = NULL;
    if (be_template(tc->model, &src, &tc->caps) != SHIMMY_OK)
        DIE("%s: be_template failed", tc->file);
    free(src);
    lchat_render rt, rr;
    bool tools = tc->caps.tools && render(tc, req_tools, &rt);
    bool think = render(tc, req_think, &rr);
    debugging = debug_filter != NULL && strstr(tc->file, debug_filter) != NULL;
    if (debugging) {
        printf("%s: tools prompt:\n%s\n-- end of prompt\n", tc->file, tools ? rt.prompt : "-");
        lchat_render rh;
        if (tools && render(tc, req_history, &rh)) {
            printf("a call in the history:\n%s\n-- end of prompt\n", rh.prompt);
            lchat_render_free(&rh);
        }
    }
    for (size_t i = 0; i < N_CANDS; i++) {
        if (tools)
            check_candidate(tc, "tools", rt.parser, &cands[i]);
        if (think && !cands[i].call)
            check_candidate(tc, "think", rr.parser, &cands[i]);
    }
    if (tools)
        lchat_render_free(&rt);
    if (think)
        lchat_render_free(&rr);
    be_free(tc->model);
    free(jinja);
}

/* llama.cpp's chat module logs every text it refuses on stderr (thousands of lines here): stderr
 * goes to /dev/null while the templates run, unless SHIMMY_CHAT_DEBUG is set. The test's own
 * report is on stdout. */
static int saved_stderr = -1;

static void quiet_stderr(bool quiet) {
    if (quiet && saved_stderr < 0 && debug_filter == NULL) {
        int null_fd = open("/dev/null", O_WRONLY);
        if (null_fd < 0)
            return;
        fflush(stderr);
        saved_stderr = dup(STDERR_FILENO);
        dup2(null_fd, STDERR_FILENO);
        close(null_fd);
    } else if (!quiet && saved_stderr >= 0) {
        fflush(stderr);
        dup2(saved_stderr, STDERR_FILENO);
        close(saved_stderr);
        saved_stderr = -1;
    }
}

static double elapsed(const struct timespec *a, const struct timespec *b) {
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static int by_name(const struct dirent **a, const struct dirent **b) {
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int is_jinja(const struct dirent *d) {
    size_t n = strlen(d->d_name);
    return n > 6 && strcmp(d->d_name + n - 6, ".jinja") == 0;
}

static void test_parsers_agree_with_reference(void **state) {
    (void)state;
    model_path("stories260K.gguf", stories_path, sizeof stories_path);
    debug_filter = getenv("SHIMMY_CHAT_DEBUG");
    struct dirent **list = NULL;
    int n = scandir(template_dir, &list, is_jinja, by_name);
    if (n <= 0)
        fail_msg("no templates in %s", template_dir);
    int covered = 0, tool_capable = 0, gaps = 0, parsed = 0, calls = 0, reasoning = 0;
    int uncovered = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    printf("%-52s %5s %7s %6s %9s %6s\n", "template", "tools", "parsed", "calls", "reasoning",
           "secs");
    for (int i = 0; i < n; i++) {
        tmpl_case tc = {.file = list[i]->d_name};
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        quiet_stderr(true);
        check_template(&tc);
        quiet_stderr(false);
        clock_gettime(CLOCK_MONOTONIC, &b);
        const gap *g = find_gap(tc.file);
        const char *note = "";
        if (tc.caps.tools) {
            tool_capable++;
            if (tc.with_calls > 0 && g != NULL) {
                note = "  FAIL: listed as a known gap but covered";
                tc.failures++;
            } else if (tc.with_calls > 0) {
                covered++;
            } else if (g != NULL) {
                gaps++;
                note = "  known gap";
            } else {
                note = "  FAIL: tool-capable, no candidate yields a call";
                uncovered++;
                tc.failures++;
            }
        }
        printf("%-52s %5s %7d %6d %9d %6.2f%s\n", tc.file, tc.caps.tools ? "yes" : "no", tc.parsed,
               tc.with_calls, tc.with_reasoning, elapsed(&a, &b), note);
        parsed += tc.parsed;
        calls += tc.with_calls;
        reasoning += tc.with_reasoning;
        total_failures += tc.failures;
        free(list[i]);
    }
    free(list);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = elapsed(&t0, &t1);
    printf("total: %d templates, %zu candidates, %d readings checked (%d with calls, %d with "
           "reasoning); tool-capable %d: %d covered, %d known gaps, %d uncovered; %d failures; "
           "%.1f s\n",
           n, N_CANDS, parsed, calls, reasoning, tool_capable, covered, gaps, uncovered,
           total_failures, secs);
    for (size_t i = 0; i < sizeof known_gaps / sizeof known_gaps[0]; i++)
        if (known_gaps[i].file != NULL)
            printf("known gap: %s: %s\n", known_gaps[i].file, known_gaps[i].why);
    fflush(stdout);
    assert_int_equal(total_failures, 0);
}

static bool fixtures_ready;

static int setup(void **state) {
    (void)state;
    const char *src = getenv("SHIMMY_SOURCE_DIR");
    if (src == NULL || src[0] == '\0') {
        fprintf(stderr, "SHIMMY_SOURCE_DIR is not set (ctest sets it): no templates to test\n");
        return -1;
    }
    snprintf(template_dir, sizeof template_dir, "%s/deps/llama.cpp/models/templates", src);
    DIR *d = opendir(template_dir);
    if (d == NULL) {
        fprintf(stderr, "the template folder %s is missing (run make deps)\n", template_dir);
        return -1;
    }
    closedir(d);
    if (fixtures_setup("test_chat") != 0)
        return -1;
    fixtures_ready = true;
    log_set_level(LOG_ERROR);
    char err[512];
    if (be_global_init(NULL, err, sizeof err) != SHIMMY_OK) {
        fprintf(stderr, "be_global_init: %s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    return fixtures_ready ? fixtures_teardown() : 0;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parsers_agree_with_reference),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
