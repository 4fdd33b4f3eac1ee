/* Unit tests for api/responses_wire: request parsing into an api_call (the engine's chat JSON
 * from instructions and input items, tools in the flat shape, tool_choice, reasoning.effort,
 * text.format as a JSON schema), the 400s, and the exact JSON of the response object and its
 * SSE events (sequence numbers, output and content indices, done events, incomplete). No
 * engine, no registry, no sockets. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/json_in.h"
#include "api/responses_wire.h"

static json_t *last_root;

static shimmy_err parse(const char *body, api_call *c, api_error *err) {
    gen_params d;
    json_t *root = NULL;
    memset(&d, 0, sizeof d);
    d.max_tokens = -7;
    api_error_clear(err);
    shimmy_err e =
        api_json_load_object(body, strlen(body), &root, err->message, sizeof err->message);
    if (e != SHIMMY_OK)
        return e;
    e = resp_parse(root, &d, c, err);
    if (e != SHIMMY_OK)
        json_decref(root);
    else
        last_root = root;
    return e;
}

static void call_free(api_call *c) {
    resp_call_free(c);
    json_decref(last_root);
    last_root = NULL;
}

static void assert_bad(const char *body, const char *param);

/* parse with a store (borrowed). */
static shimmy_err parse_in(const char *body, resp_store *store, api_call *c, api_error *err) {
    gen_params d;
    json_t *root = NULL;
    gen_params_default(&d);
    api_error_clear(err);
    shimmy_err e =
        api_json_load_object(body, strlen(body), &root, err->message, sizeof err->message);
    if (e != SHIMMY_OK)
        return e;
    e = resp_parse_store(root, &d, store, c, err);
    if (e != SHIMMY_OK)
        json_decref(root);
    else
        last_root = root;
    return e;
}

static void assert_bad(const char *body, const char *param) {
    api_call c;
    api_error err;
    assert_int_equal(parse(body, &c, &err), ERR_BAD_PARAM);
    if (strcmp(err.param, param) != 0)
        print_error("param %s (%s), want %s\n", err.param, err.message, param);
    assert_string_equal(err.param, param);
}

static void test_string_input_and_params(void **state) {
    (void)state;
    api_call c;
    api_error err;
    assert_int_equal(parse("{\"model\":\"m\",\"input\":\"hi\",\"instructions\":\"be kind\","
                           "\"max_output_tokens\":9,\"temperature\":1.5,\"top_p\":0.5,"
                           "\"stream\":true,\"store\":false,\"metadata\":{}}",
                           &c, &err),
                     SHIMMY_OK);
    assert_string_equal(c.model, "m");
    assert_true(c.stream);
    assert_int_equal(c.gen.params.max_tokens, 9);
    assert_true(c.gen.params.temperature == 1.5f);
    assert_true(c.gen.params.top_p == 0.5f);
    assert_null(c.gen.params.json_schema);
    assert_string_equal(c.gen.chat_json,
                        "{\"messages\":[{\"role\":\"system\",\"content\":\"be kind\"},"
                        "{\"role\":\"user\",\"content\":\"hi\"}]}");
    assert_int_equal(strncmp(((resp_wire *)c.wire)->id, "resp_", 5), 0);
    call_free(&c);
}

/* Items: a developer message with parts, reasoning then an assistant message (one turn), a
 * function call joining it, its output. */
static void test_items_to_chat(void **state) {
    (void)state;
    api_call c;
    api_error err;
    const char *body =
        "{\"model\":\"m\",\"input\":[{\"role\":\"developer\",\"content\":[{\"type\":"
        "\"input_text\",\"text\":\"d\"}]},{\"type\":\"message\",\"role\":\"user\",\"content\":"
        "\"q\"},{\"type\":\"reasoning\",\"summary\":[],\"content\":[{\"type\":\"reasoning_text\","
        "\"text\":\"hm\"}]},{\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":"
        "\"output_text\",\"text\":\"ok\"}]},{\"type\":\"function_call\",\"call_id\":\"c1\","
        "\"name\":\"get\",\"arguments\":\"{}\"},{\"type\":\"function_call_output\",\"call_id\":"
        "\"c1\",\"output\":\"sun\"}]}";
    assert_int_equal(parse(body, &c, &err), SHIMMY_OK);
    assert_string_equal(
        c.gen.chat_json,
        "{\"messages\":[{\"role\":\"system\",\"content\":[{\"type\":\"text\",\"text\":\"d\"}]},"
        "{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":[{\"type\":"
        "\"text\",\"text\":\"ok\"}],\"reasoning_content\":\"hm\",\"tool_calls\":[{\"id\":\"c1\","
        "\"type\":\"function\",\"function\":{\"name\":\"get\",\"arguments\":\"{}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"sun\"}]}");
    call_free(&c);
}

static void test_tools_choice_format(void **state) {
    (void)state;
    api_call c;
    api_error err;
    assert_int_equal(parse("{\"model\":\"m\",\"input\":\"x\",\"tools\":[{\"type\":\"function\","
                           "\"name\":\"get\",\"parameters\":{\"type\":\"object\"},\"strict\":"
                           "true}],\"tool_choice\":{\"type\":\"function\",\"name\":\"get\"},"
                           "\"parallel_tool_calls\":false,\"reasoning\":{\"effort\":\"low\"},"
                           "\"text\":{\"format\":{\"type\":\"json_schema\",\"name\":\"n\","
                           "\"schema\":{\"type\":\"integer\"}}}}",
                           &c, &err),
                     SHIMMY_OK);
    assert_true(c.need_tools);
    assert_string_equal(c.gen.params.json_schema, "{\"type\":\"integer\"}");
    assert_string_equal(c.schema_param, "text.format");
    assert_string_equal(
        c.gen.chat_json,
        "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"function\","
        "\"function\":{\"name\":\"get\",\"parameters\":{\"type\":\"object\"}}}],"
        "\"parallel_tool_calls\":false,\"tool_choice\":{\"type\":\"function\",\"function\":"
        "{\"name\":\"get\"}},\"reasoning_effort\":\"low\"}");
    call_free(&c);
    assert_int_equal(parse("{\"model\":\"m\",\"input\":\"x\",\"text\":{\"format\":{\"type\":"
                           "\"json_object\"}}}",
                           &c, &err),
                     SHIMMY_OK);
    assert_string_equal(c.gen.params.json_schema, "{\"type\":\"object\"}");
    call_free(&c);
}

static void test_bad_requests(void **state) {
    (void)state;
    assert_bad("{\"input\":\"x\"}", "model");
    assert_bad("{\"model\":\"m\"}", "input");
    assert_bad("{\"model\":\"m\",\"input\":[]}", "input");
    assert_bad("{\"model\":\"m\",\"input\":\"x\",\"temperature\":3}", "temperature");
    assert_bad("{\"model\":\"m\",\"input\":\"x\",\"max_output_tokens\":0}", "max_output_tokens");
    assert_bad("{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":[{\"type\":"
               "\"input_image\",\"image_url\":\"u\"}]}]}",
               "input[0].content[0].image_url");
    assert_bad("{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":[{\"type\":"
               "\"input_image\",\"file_id\":\"f\"}]}]}",
               "input[0].content[0].image_url");
    assert_bad("{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":[{\"type\":"
               "\"input_file\"}]}]}",
               "input[0].content[0]");
    assert_bad("{\"model\":\"m\",\"input\":[{\"type\":\"item_reference\",\"id\":\"x\"}]}",
               "input[0]");
    assert_bad("{\"model\":\"m\",\"input\":[{\"role\":\"tool\",\"content\":\"x\"}]}",
               "input[0].role");
    assert_bad("{\"model\":\"m\",\"input\":\"x\",\"tools\":[{\"type\":\"web_search\"}]}",
               "tools[0]");
    assert_bad("{\"model\":\"m\",\"input\":\"x\",\"tool_choice\":{\"type\":\"function\","
               "\"name\":\"nope\"}}",
               "tool_choice");
    assert_bad("{\"model\":\"m\",\"input\":\"x\",\"text\":{\"format\":{\"type\":\"json_schema\"}}}",
               "text.format");
}

/* ---- writers ---- */

static api_call test_call(resp_wire *w) {
    api_call c;
    memset(&c, 0, sizeof c);
    memset(w, 0, sizeof *w);
    snprintf(w->id, sizeof w->id, "resp_1");
    snprintf(w->model, sizeof w->model, "m");
    w->created = 123;
    c.wire = w;
    return c;
}

static gen_status test_status(finish_reason f) {
    gen_status st;
    memset(&st, 0, sizeof st);
    st.done = true;
    st.finish = f;
    st.prompt_tokens = 10;
    st.cached_tokens = 4;
    st.completion_tokens = 3;
    return st;
}

static gen_event ev(gen_event_kind k, int i, const char *id, const char *name, const char *t) {
    gen_event e = {
        .kind = k, .tool_index = i, .tool_id = id, .tool_name = name, .text = t, .len = strlen(t)};
    return e;
}

static void free_items(resp_wire *w) {
    for (size_t i = 0; i < w->n_items; i++) {
        free(w->items[i].name);
        buf_free(&w->items[i].text);
    }
    free(w->items);
    w->items = NULL;
    w->n_items = 0;
}

/* Item ids are random: the writers' output with every "rs_/msg_/fc_/call_<hex>" as "ID". */
static char *mask_ids(const char *s) {
    static const char *const pre[] = {":\"rs_", ":\"msg_", ":\"fc_", ":\"call_"};
    char *out = strdup(s), *p;
    for (size_t k = 0; k < 4; k++)
        for (p = strstr(out, pre[k]); p != NULL; p = strstr(p + 1, pre[k])) {
            char *end = strchr(p + 2, '"');
            memmove(p + 4, end, strlen(end) + 1);
            memcpy(p + 2, "ID", 2);
        }
    return out;
}

#define USAGE                                                                                      \
    "{\"input_tokens\":10,\"input_tokens_details\":{\"cached_tokens\":4},"                         \
    "\"output_tokens\":3,\"output_tokens_details\":{\"reasoning_tokens\":0},"                      \
    "\"total_tokens\":13}"

static void run_writer(api_framing f, buf *b, shimmy_err r, const char *want) {
    assert_int_equal(r, SHIMMY_OK);
    char *got = mask_ids(buf_str(b));
    if (strcmp(got, want) != 0)
        print_error("got:\n%s\n", got);
    assert_string_equal(got, want);
    free(got);
    (void)f;
}

static void test_whole(void **state) {
    (void)state;
    buf b;
    resp_wire w;
    api_call c = test_call(&w);
    gen_status st = test_status(FINISH_TOOL_CALLS);
    api_answer a;
    api_sink s;
    gen_event v[] = {ev(GEN_EV_REASONING, 0, NULL, NULL, "hm"),
                     ev(GEN_EV_CONTENT, 0, NULL, NULL, "Hi"),
                     ev(GEN_EV_TOOL, 0, NULL, "get", "{\"a\":1}")};
    gen_events e = {.ev = v, .n = 3};
    buf_init(&b, 1 << 16);
    api_answer_init(&a);
    assert_int_equal(api_answer_add(&a, &e), SHIMMY_OK);
    api_sink_init(&s, &b, API_FRAME_NONE);
    run_writer(API_FRAME_NONE, &b, resp_proto.whole(&c, &a, &st, &s),
               "{\"id\":\"resp_1\",\"object\":\"response\",\"created_at\":123,\"status\":"
               "\"completed\",\"error\":null,\"incomplete_details\":null,\"model\":\"m\","
               "\"output\":[{\"id\":\"ID\",\"type\":\"reasoning\",\"status\":\"completed\","
               "\"summary\":[],\"content\":[{\"type\":\"reasoning_text\",\"text\":\"hm\"}]},"
               "{\"id\":\"ID\",\"type\":\"message\",\"status\":\"completed\",\"role\":"
               "\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"Hi\","
               "\"annotations\":[],\"logprobs\":[]}]},{\"id\":\"ID\",\"type\":\"function_call\","
               "\"status\":\"completed\",\"call_id\":\"ID\",\"name\":\"get\",\"arguments\":"
               "\"{\\\"a\\\":1}\"}],\"output_text\":\"Hi\",\"usage\":" USAGE "}");
    api_sink_free(&s);
    api_answer_free(&a);
    free_items(&w);
    buf_free(&b);
}

#define EV(name, data) "event: " name "\ndata: " data "\n\n"
#define INPROG(n, t)                                                                               \
    EV(t, "{\"type\":\"" t "\",\"sequence_number\":" #n ",\"response\":{\"id\":\"resp_1\","        \
          "\"object\":\"response\",\"created_at\":123,\"status\":\"in_progress\",\"error\":null,"  \
          "\"incomplete_details\":null,\"model\":\"m\",\"output\":[],\"output_text\":\"\","        \
          "\"usage\":null}}")

static void test_stream(void **state) {
    (void)state;
    buf b;
    resp_wire w;
    api_call c = test_call(&w);
    gen_status st = test_status(FINISH_LENGTH);
    api_sink s;
    gen_event v[] = {ev(GEN_EV_CONTENT, 0, NULL, NULL, "Hi"), ev(GEN_EV_TOOL, 0, "k", "get", ""),
                     ev(GEN_EV_TOOL, 0, NULL, NULL, "{}")};
    gen_events e = {.ev = v, .n = 3};
    buf_init(&b, 1 << 16);
    api_sink_init(&s, &b, API_FRAME_SSE);
    run_writer(API_FRAME_SSE, &b, resp_proto.start(&c, &s),
               INPROG(0, "response.created") INPROG(1, "response.in_progress"));
    buf_reset(&b);
    run_writer(
        API_FRAME_SSE, &b, resp_proto.events(&c, &e, &s),
        EV("response.output_item.added",
           "{\"type\":\"response.output_item.added\",\"sequence_number\":2,\"output_index\":0,"
           "\"item\":{\"id\":\"ID\",\"type\":\"message\",\"status\":\"in_progress\",\"role\":"
           "\"assistant\",\"content\":[]}}")
            EV("response.content_part.added",
               "{\"type\":\"response.content_part.added\",\"sequence_number\":3,\"item_id\":\"ID\","
               "\"output_index\":0,\"content_index\":0,\"part\":{\"type\":\"output_text\",\"text\":"
               "\"\",\"annotations\":[],\"logprobs\":[]}}")
                EV("response.output_text.delta",
                   "{\"type\":\"response.output_text.delta\",\"sequence_number\":4,\"item_id\":"
                   "\"ID\","
                   "\"output_index\":0,\"content_index\":0,\"delta\":\"Hi\",\"logprobs\":[]}")
                    EV("response.output_text.done",
                       "{\"type\":\"response.output_text.done\",\"sequence_number\":5,\"item_id\":"
                       "\"ID\","
                       "\"output_index\":0,\"content_index\":0,\"text\":\"Hi\",\"logprobs\":[]}")
                        EV("response.content_part.done",
                           "{\"type\":\"response.content_part.done\",\"sequence_number\":6,\"item_"
                           "id\":\"ID\","
                           "\"output_index\":0,\"content_index\":0,\"part\":{\"type\":\"output_"
                           "text\",\"text\":"
                           "\"Hi\",\"annotations\":[],\"logprobs\":[]}}")
                            EV("response.output_item.done",
                               "{\"type\":\"response.output_item.done\",\"sequence_number\":7,"
                               "\"output_index\":0,"
                               "\"item\":{\"id\":\"ID\",\"type\":\"message\",\"status\":"
                               "\"completed\",\"role\":"
                               "\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":"
                               "\"Hi\",\"annotations\":"
                               "[],\"logprobs\":[]}]}}")
                                EV("response.output_item.added",
                                   "{\"type\":\"response.output_item.added\",\"sequence_number\":8,"
                                   "\"output_index\":1,"
                                   "\"item\":{\"id\":\"ID\",\"type\":\"function_call\",\"status\":"
                                   "\"in_progress\","
                                   "\"call_id\":\"k\",\"name\":\"get\",\"arguments\":\"\"}}")
                                    EV("response.function_call_arguments.delta",
                                       "{\"type\":\"response.function_call_arguments.delta\","
                                       "\"sequence_number\":9,"
                                       "\"item_id\":\"ID\",\"output_index\":1,\"delta\":\"{}\"}"));
    buf_reset(&b);
    run_writer(
        API_FRAME_SSE, &b, resp_proto.end(&c, &st, &s),
        EV("response.function_call_arguments.done",
           "{\"type\":\"response.function_call_arguments.done\",\"sequence_number\":10,"
           "\"item_id\":\"ID\",\"output_index\":1,\"arguments\":\"{}\"}")
            EV("response.output_item.done",
               "{\"type\":\"response.output_item.done\",\"sequence_number\":11,\"output_index\":1,"
               "\"item\":{\"id\":\"ID\",\"type\":\"function_call\",\"status\":\"completed\","
               "\"call_id\":\"k\",\"name\":\"get\",\"arguments\":\"{}\"}}")
                EV("response.incomplete",
                   "{\"type\":\"response.incomplete\",\"sequence_number\":12,\"response\":{\"id\":"
                   "\"resp_1\",\"object\":\"response\",\"created_at\":123,\"status\":"
                   "\"incomplete\","
                   "\"error\":null,\"incomplete_details\":{\"reason\":\"max_output_tokens\"},"
                   "\"model\":"
                   "\"m\",\"output\":[{\"id\":\"ID\",\"type\":\"message\",\"status\":\"completed\","
                   "\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"Hi\","
                   "\"annotations\":[],\"logprobs\":[]}]},{\"id\":\"ID\",\"type\":\"function_"
                   "call\","
                   "\"status\":\"completed\",\"call_id\":\"k\",\"name\":\"get\",\"arguments\":\"{}"
                   "\"}],"
                   "\"output_text\":\"Hi\",\"usage\":" USAGE "}}"));
    api_sink_free(&s);
    free_items(&w);
    buf_free(&b);
}

static void test_errors(void **state) {
    (void)state;
    buf b;
    resp_wire w;
    api_call c = test_call(&w);
    api_error e;
    api_sink s;
    buf_init(&b, 1 << 16);
    api_sink_init(&s, &b, API_FRAME_NONE);
    api_fail(&e, ERR_BAD_PARAM, "input", "'input' is required");
    run_writer(API_FRAME_NONE, &b, resp_proto.error(&e, &s),
               "{\"error\":{\"message\":\"'input' is required\",\"type\":"
               "\"invalid_request_error\",\"param\":\"input\",\"code\":\"invalid_value\"}}");
    api_sink_free(&s);
    buf_reset(&b);
    api_sink_init(&s, &b, API_FRAME_SSE);
    api_fail(&e, ERR_INTERNAL, NULL, "boom");
    assert_int_equal(resp_proto.stream_error(&c, &e, &s), SHIMMY_OK);
    assert_non_null(strstr(buf_str(&b), "event: response.failed\ndata: {\"type\":"
                                        "\"response.failed\",\"sequence_number\":0,"));
    assert_non_null(strstr(buf_str(&b), "\"status\":\"failed\",\"error\":{\"code\":"
                                        "\"internal_error\",\"message\":\"boom\"}"));
    api_sink_free(&s);
    buf_free(&b);
}

/* ---- the store: keep, continue, store: false, unknown ids ---- */

/* Answers c as a whole (reasoning, text, one call) so that the row keeps it. */
static void answer(api_call *c) {
    buf b;
    api_sink s;
    api_answer a;
    gen_status st;
    gen_event v[] = {ev(GEN_EV_REASONING, 0, NULL, NULL, "hm"),
                     ev(GEN_EV_CONTENT, 0, NULL, NULL, "Hi"),
                     ev(GEN_EV_TOOL, 0, "call_7", "get", "{\"a\":1}")};
    gen_events e = {.ev = v, .n = 3};
    memset(&st, 0, sizeof st);
    st.done = true;
    buf_init(&b, 1 << 16);
    api_answer_init(&a);
    assert_int_equal(api_answer_add(&a, &e), SHIMMY_OK);
    api_sink_init(&s, &b, API_FRAME_NONE);
    assert_int_equal(resp_proto.whole(c, &a, &st, &s), SHIMMY_OK);
    api_sink_free(&s);
    api_answer_free(&a);
    buf_free(&b);
}

static void test_store_continue(void **state) {
    (void)state;
    resp_store *store = resp_store_new(8, 1 << 20);
    api_call c;
    api_error err;
    char id[48], *text = NULL;
    assert_int_equal(
        parse_in("{\"model\":\"m\",\"input\":\"hi\",\"instructions\":\"sys\"}", store, &c, &err),
        SHIMMY_OK);
    answer(&c);
    snprintf(id, sizeof id, "%s", ((resp_wire *)c.wire)->id);
    call_free(&c);
    assert_true(resp_store_get(store, id, &text, NULL));
    assert_non_null(strstr(text, "\"output_text\":\"Hi\""));
    free(text);

    char body[512];
    snprintf(body, sizeof body,
             "{\"model\":\"m\",\"previous_response_id\":\"%s\",\"input\":[{\"type\":"
             "\"function_call_output\",\"call_id\":\"call_7\",\"output\":\"42\"}]}",
             id);
    assert_int_equal(parse_in(body, store, &c, &err), SHIMMY_OK);
    json_t *chat = json_loads(c.gen.chat_json, 0, NULL), *m = json_object_get(chat, "messages");
    /* instructions are not carried over (as OpenAI); user, assistant (reasoning, text, call),
     * tool */
    assert_int_equal(json_array_size(m), 3);
    json_t *a = json_array_get(m, 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(m, 0), "role")), "user");
    assert_string_equal(json_string_value(json_object_get(a, "role")), "assistant");
    assert_string_equal(json_string_value(json_object_get(a, "reasoning_content")), "hm");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(a, "content"), 0), "text")),
                        "Hi");
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_array_get(json_object_get(a, "tool_calls"), 0), "function"),
            "name")),
        "get");
    assert_string_equal(json_string_value(json_object_get(json_array_get(m, 2), "role")), "tool");
    json_decref(chat);
    answer(&c); /* the second turn keeps the whole conversation: three turns next time */
    snprintf(id, sizeof id, "%s", ((resp_wire *)c.wire)->id);
    call_free(&c);
    char *items = NULL;
    assert_true(resp_store_get(store, id, NULL, &items));
    json_t *conv = json_loads(items, 0, NULL);
    assert_int_equal(json_array_size(conv), 1 + 3 + 1 + 3); /* in, out x3, in, out x3 */
    json_decref(conv);
    free(items);
    assert_int_equal(resp_store_count(store), 2);

    /* store: false keeps nothing; an unknown id is a 404 naming previous_response_id */
    assert_int_equal(parse_in("{\"model\":\"m\",\"input\":\"x\",\"store\":false}", store, &c, &err),
                     SHIMMY_OK);
    answer(&c);
    call_free(&c);
    assert_int_equal(resp_store_count(store), 2);
    assert_int_equal(parse_in("{\"model\":\"m\",\"input\":\"x\",\"previous_response_id\":"
                              "\"resp_nope\"}",
                              store, &c, &err),
                     ERR_NOT_FOUND);
    assert_string_equal(err.param, "previous_response_id");
    assert_int_equal(parse_in("{\"model\":\"m\",\"input\":\"x\",\"previous_response_id\":"
                              "\"resp_1\"}",
                              NULL, &c, &err),
                     ERR_NOT_FOUND);
    assert_bad("{\"model\":\"m\",\"input\":\"x\",\"previous_response_id\":7}",
               "previous_response_id");
    resp_store_free(store);
}

static void test_store_lru(void **state) {
    (void)state;
    resp_store *s = resp_store_new(2, 100);
    char *r = NULL;
    assert_int_equal(resp_store_put(s, "a", "ra", 2, "[]", 2), SHIMMY_OK);
    assert_int_equal(resp_store_put(s, "b", "rb", 2, "[]", 2), SHIMMY_OK);
    assert_true(resp_store_get(s, "a", NULL, NULL)); /* a is now the most recent */
    assert_int_equal(resp_store_put(s, "c", "rc", 2, "[]", 2), SHIMMY_OK);
    assert_false(resp_store_get(s, "b", NULL, NULL)); /* b dropped: least recently used */
    assert_true(resp_store_get(s, "a", &r, NULL));
    assert_string_equal(r, "ra");
    free(r);
    assert_int_equal(resp_store_put(s, "a", "new", 3, "[]", 2), SHIMMY_OK); /* replaced */
    assert_int_equal(resp_store_count(s), 2);
    assert_int_equal(resp_store_bytes(s), (1 + 3 + 2 + 3) + (1 + 2 + 2 + 3));
    /* bytes: one big entry pushes the others out; one over the limit is refused */
    char big[95];
    memset(big, 'x', sizeof big);
    assert_int_equal(resp_store_put(s, "d", big, 90, "[]", 2), SHIMMY_OK); /* 96 bytes */
    assert_int_equal(resp_store_count(s), 1);
    assert_int_equal(resp_store_put(s, "e", big, 95, "[]", 2), ERR_TOO_LARGE); /* 101 */
    assert_true(resp_store_delete(s, "d"));
    assert_false(resp_store_delete(s, "d"));
    assert_int_equal(resp_store_count(s), 0);
    assert_int_equal(resp_store_bytes(s), 0);
    resp_store_free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_string_input_and_params),
        cmocka_unit_test(test_items_to_chat),
        cmocka_unit_test(test_tools_choice_format),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_whole),
        cmocka_unit_test(test_stream),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_store_continue),
        cmocka_unit_test(test_store_lru),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
