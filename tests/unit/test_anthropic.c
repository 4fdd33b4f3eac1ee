/* Unit tests for api/anthropic_wire: request parsing into an api_call (the engine's chat JSON
 * from system, content blocks, tool_use/tool_result, tools, tool_choice, thinking; every
 * parameter), Anthropic's 400s, and the exact JSON of the message object, the named SSE events
 * (sequential blocks, thinking signature, tool input deltas), errors and statuses. No engine,
 * no registry, no sockets. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/anthropic_wire.h"
#include "api/json_in.h"

static json_t *last_root;

static gen_params defaults(void) {
    gen_params p;
    memset(&p, 0, sizeof p);
    p.max_tokens = -7;
    p.temperature = 0.5f;
    p.top_p = 0.9f;
    p.top_k = 40;
    return p;
}

static shimmy_err parse(const char *body, bool count, api_call *c, api_error *err) {
    gen_params d = defaults();
    json_t *root = NULL;
    api_error_clear(err);
    shimmy_err e =
        api_json_load_object(body, strlen(body), &root, err->message, sizeof err->message);
    if (e != SHIMMY_OK)
        return e;
    e = count ? ant_parse_count(root, c, err) : ant_parse_messages(root, &d, c, err);
    if (e != SHIMMY_OK)
        json_decref(root);
    else
        last_root = root;
    return e;
}

static void call_free(api_call *c) {
    ant_call_free(c);
    json_decref(last_root);
    last_root = NULL;
}

/* The 400 message a body gets. */
static void assert_bad(const char *body, const char *message) {
    api_call c;
    api_error err;
    assert_int_equal(parse(body, false, &c, &err), ERR_BAD_PARAM);
    if (strcmp(err.message, message) != 0)
        print_error("got: %s\nwant: %s\n", err.message, message);
    assert_string_equal(err.message, message);
}

#define MSG "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

static void test_minimal_and_params(void **state) {
    (void)state;
    api_call c;
    api_error err;
    assert_int_equal(parse("{\"model\":\"m\",\"max_tokens\":9," MSG "}", false, &c, &err),
                     SHIMMY_OK);
    assert_string_equal(c.model, "m");
    assert_false(c.stream);
    assert_int_equal(c.gen.params.max_tokens, 9);
    assert_true(c.gen.params.temperature == 0.5f);
    assert_string_equal(c.gen.chat_json, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    assert_false(c.need_tools);
    assert_int_equal(strncmp(((ant_wire *)c.wire)->id, "msg_", 4), 0);
    call_free(&c);
    assert_int_equal(parse("{\"model\":\"m\",\"max_tokens\":9,\"temperature\":0,\"top_p\":0.5,"
                           "\"top_k\":3,\"stream\":true,\"metadata\":{\"user_id\":\"u\"},"
                           "\"stop_sequences\":[\"a\",\"\",\"b\"]," MSG "}",
                           false, &c, &err),
                     SHIMMY_OK);
    assert_true(c.stream);
    assert_true(c.gen.params.temperature == 0.0f);
    assert_true(c.gen.params.top_p == 0.5f);
    assert_int_equal(c.gen.params.top_k, 3);
    assert_int_equal(c.gen.params.n_stop, 2);
    assert_string_equal(c.gen.params.stop[1], "b");
    call_free(&c);
}

/* system blocks, text/thinking/tool_use in an assistant turn, tool_result (string, blocks,
 * is_error) before the user's text. */
static void test_blocks_to_chat(void **state) {
    (void)state;
    api_call c;
    api_error err;
    const char *body =
        "{\"model\":\"m\",\"max_tokens\":5,"
        "\"system\":[{\"type\":\"text\",\"text\":\"be brief\"}],"
        "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"w?\"}]},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"hm\","
        "\"signature\":\"x\"},{\"type\":\"text\",\"text\":\"ok\"},{\"type\":\"tool_use\","
        "\"id\":\"toolu_1\",\"name\":\"get\",\"input\":{\"city\":\"Paris\"}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_1\","
        "\"content\":[{\"type\":\"text\",\"text\":\"sun\"}]},{\"type\":\"tool_result\","
        "\"tool_use_id\":\"toolu_2\",\"content\":\"boom\",\"is_error\":true},"
        "{\"type\":\"text\",\"text\":\"thanks\"}]}]}";
    assert_int_equal(parse(body, false, &c, &err), SHIMMY_OK);
    assert_string_equal(
        c.gen.chat_json,
        "{\"messages\":[{\"role\":\"system\",\"content\":[{\"type\":\"text\",\"text\":\"be "
        "brief\"}]},{\"role\":\"user\",\"content\":\"w?\"},{\"role\":\"assistant\",\"content\":"
        "\"ok\",\"tool_calls\":[{\"id\":\"toolu_1\",\"type\":\"function\",\"function\":{\"name\":"
        "\"get\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}],\"reasoning_content\":\"hm\"},"
        "{\"role\":\"tool\",\"tool_call_id\":\"toolu_1\",\"content\":\"sun\"},{\"role\":\"tool\","
        "\"tool_call_id\":\"toolu_2\",\"content\":\"Error: boom\"},{\"role\":\"user\",\"content\":"
        "\"thanks\"}]}");
    call_free(&c);
}

/* An assistant turn of thinking only: content "" with its reasoning (the "" was once leaked,
 * found by fuzz_anthropic); of a tool_use only: content null. */
static void test_turn_without_text(void **state) {
    (void)state;
    api_call c;
    api_error err;
    const char *body =
        "{\"model\":\"m\",\"max_tokens\":5,\"messages\":["
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"hm\"}]},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t\","
        "\"name\":\"f\",\"input\":{}}]}]}";
    assert_int_equal(parse(body, false, &c, &err), SHIMMY_OK);
    assert_string_equal(c.gen.chat_json,
                        "{\"messages\":[{\"role\":\"assistant\",\"content\":\"\","
                        "\"reasoning_content\":\"hm\"},{\"role\":\"assistant\",\"content\":"
                        "null,\"tool_calls\":[{\"id\":\"t\",\"type\":\"function\","
                        "\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}]}");
    call_free(&c);
}

static void test_tools_choice_thinking(void **state) {
    (void)state;
    api_call c;
    api_error err;
    const char *body =
        "{\"model\":\"m\",\"max_tokens\":5," MSG ",\"tools\":[{\"name\":\"get\",\"description\":"
        "\"d\",\"input_schema\":{\"type\":\"object\"}}],\"tool_choice\":{\"type\":\"tool\","
        "\"name\":\"get\",\"disable_parallel_tool_use\":true},\"thinking\":{\"type\":\"enabled\","
        "\"budget_tokens\":2048}}";
    assert_int_equal(parse(body, false, &c, &err), SHIMMY_OK);
    json_t *chat = json_loads(c.gen.chat_json, 0, NULL);
    char *tools = json_dumps(json_object_get(chat, "tools"), JSON_COMPACT);
    char *choice = json_dumps(json_object_get(chat, "tool_choice"), JSON_COMPACT);
    assert_string_equal(tools, "[{\"type\":\"function\",\"function\":{\"name\":\"get\","
                               "\"parameters\":{\"type\":\"object\"},\"description\":\"d\"}}]");
    assert_string_equal(choice, "{\"type\":\"function\",\"function\":{\"name\":\"get\"}}");
    assert_true(json_is_false(json_object_get(chat, "parallel_tool_calls")));
    assert_true(json_is_true(json_object_get(chat, "enable_thinking")));
    assert_true(c.need_tools && c.need_thinking);
    free(tools);
    free(choice);
    json_decref(chat);
    call_free(&c);
    /* any -> required; none -> tools not needed; thinking disabled */
    assert_int_equal(parse("{\"model\":\"m\",\"max_tokens\":5," MSG ",\"tools\":[{\"name\":\"g\","
                           "\"input_schema\":{}}],\"tool_choice\":{\"type\":\"any\"}}",
                           false, &c, &err),
                     SHIMMY_OK);
    assert_non_null(strstr(c.gen.chat_json, "\"tool_choice\":\"required\""));
    call_free(&c);
    assert_int_equal(parse("{\"model\":\"m\",\"max_tokens\":5," MSG ",\"tools\":[{\"name\":\"g\","
                           "\"input_schema\":{}}],\"tool_choice\":{\"type\":\"none\"},"
                           "\"thinking\":{\"type\":\"disabled\"}}",
                           false, &c, &err),
                     SHIMMY_OK);
    assert_false(c.need_tools || c.need_thinking);
    assert_non_null(strstr(c.gen.chat_json, "\"enable_thinking\":false"));
    call_free(&c);
}

static void test_count_needs_no_max_tokens(void **state) {
    (void)state;
    api_call c;
    api_error err;
    assert_int_equal(parse("{\"model\":\"m\"," MSG "}", true, &c, &err), SHIMMY_OK);
    assert_non_null(c.gen.chat_json);
    call_free(&c);
}

static void test_bad_requests(void **state) {
    (void)state;
    assert_bad("{\"model\":\"m\"," MSG "}", "max_tokens: Field required");
    assert_bad("{\"max_tokens\":3," MSG "}", "model: Field required");
    assert_bad("{\"model\":\"m\",\"max_tokens\":0," MSG "}",
               "'max_tokens' must be an integer between 1 and 1048576");
    assert_bad("{\"model\":\"m\",\"max_tokens\":3,\"temperature\":1.5," MSG "}",
               "'temperature' must be a number between 0 and 1");
    assert_bad("{\"model\":\"m\",\"max_tokens\":3}", "messages: Field required");
    assert_bad("{\"model\":\"m\",\"max_tokens\":3,\"messages\":[{\"role\":\"system\","
               "\"content\":\"x\"}]}",
               "messages.0.role: must be \"user\" or \"assistant\"");
    assert_bad("{\"model\":\"m\",\"max_tokens\":3,\"messages\":[{\"role\":\"user\",\"content\":"
               "[{\"type\":\"document\",\"source\":{}}]}]}",
               "messages.0.content.0: content block type 'document' is not supported (text, "
               "image, thinking, tool_use, tool_result)");
    assert_bad("{\"model\":\"m\",\"max_tokens\":3,\"messages\":[{\"role\":\"user\",\"content\":"
               "[{\"type\":\"image\",\"source\":{}}]}]}",
               "messages.0.content.0: source must be {\"type\": \"base64\", \"media_type\": "
               "string, \"data\": string} or {\"type\": \"url\", \"url\": string}");
    assert_bad("{\"model\":\"m\",\"max_tokens\":3,\"messages\":[{\"role\":\"assistant\","
               "\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"x\"}]}]}",
               "messages.0.content.0: tool_result blocks belong to user messages");
    assert_bad("{\"model\":\"m\",\"max_tokens\":3," MSG ",\"tools\":[{\"name\":\"g\"}]}",
               "tools.0: input_schema: Field required (a JSON schema object)");
    assert_bad("{\"model\":\"m\",\"max_tokens\":3," MSG ",\"tools\":[{\"type\":\"bash_20250124\","
               "\"name\":\"bash\"}]}",
               "tools.0: tool type 'bash_20250124' is not supported (only client tools with an "
               "input_schema)");
    assert_bad("{\"model\":\"m\",\"max_tokens\":3," MSG ",\"tools\":[{\"name\":\"g\","
               "\"input_schema\":{}}],\"tool_choice\":{\"type\":\"tool\",\"name\":\"h\"}}",
               "tool_choice.name: must name one of the tools");
    assert_bad("{\"model\":\"m\",\"max_tokens\":3," MSG ",\"tool_choice\":{\"type\":\"any\"}}",
               "tool_choice: \"any\" needs tools");
    assert_bad("{\"model\":\"m\",\"max_tokens\":3," MSG ",\"thinking\":{\"type\":\"on\"}}",
               "thinking.type: must be \"enabled\" or \"disabled\"");
}

/* ---- writers ---- */

static api_call test_call(ant_wire *w) {
    api_call c;
    memset(&c, 0, sizeof c);
    memset(w, 0, sizeof *w);
    snprintf(w->id, sizeof w->id, "msg_1");
    snprintf(w->model, sizeof w->model, "m");
    c.wire = w;
    c.prompt_tokens = 10;
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

#define WRITES(f, b, call, want)                                                                   \
    do {                                                                                           \
        api_sink s_;                                                                               \
        buf_reset(b);                                                                              \
        api_sink_init(&s_, (b), (f));                                                              \
        assert_int_equal((call), SHIMMY_OK);                                                       \
        api_sink_free(&s_);                                                                        \
        if (strcmp(buf_str(b), (want)) != 0)                                                       \
            print_error("got:\n%s\n", buf_str(b));                                                 \
        assert_string_equal(buf_str(b), (want));                                                   \
    } while (0)
#define SINK (&s_)
#define USAGE                                                                                      \
    "{\"input_tokens\":6,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":4,"         \
    "\"output_tokens\":3}"

static void test_whole_message(void **state) {
    (void)state;
    buf b;
    ant_wire w;
    api_call c = test_call(&w);
    gen_status st = test_status(FINISH_TOOL_CALLS);
    api_answer a;
    gen_event v[] = {ev(GEN_EV_REASONING, 0, NULL, NULL, "hm"),
                     ev(GEN_EV_CONTENT, 0, NULL, NULL, "Hi"),
                     ev(GEN_EV_TOOL, 0, "toolu_x", "get", "{\"city\":"),
                     ev(GEN_EV_TOOL, 0, NULL, NULL, "\"Paris\"}")};
    gen_events e = {.ev = v, .n = 4};
    buf_init(&b, 1 << 16);
    api_answer_init(&a);
    assert_int_equal(api_answer_add(&a, &e), SHIMMY_OK);
    WRITES(API_FRAME_NONE, &b, ant_messages_proto.whole(&c, &a, &st, SINK),
           "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\","
           "\"content\":[{\"type\":\"thinking\",\"thinking\":\"hm\",\"signature\":\"\"},"
           "{\"type\":\"text\",\"text\":\"Hi\"},{\"type\":\"tool_use\",\"id\":\"toolu_x\","
           "\"name\":\"get\",\"input\":{\"city\":\"Paris\"}}],\"stop_reason\":\"tool_use\","
           "\"stop_sequence\":null,\"usage\":" USAGE "}");
    st = test_status(FINISH_LENGTH);
    api_answer_free(&a);
    api_answer_init(&a);
    WRITES(API_FRAME_NONE, &b, ant_messages_proto.whole(&c, &a, &st, SINK),
           "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\","
           "\"content\":[],\"stop_reason\":\"max_tokens\",\"stop_sequence\":null,\"usage\":" USAGE
           "}");
    api_answer_free(&a);
    buf_free(&b);
}

#define EV(name, data) "event: " name "\ndata: " data "\n\n"

static void test_stream(void **state) {
    (void)state;
    buf b;
    ant_wire w;
    api_call c = test_call(&w);
    gen_status st = test_status(FINISH_STOP);
    gen_event v[] = {
        ev(GEN_EV_REASONING, 0, NULL, NULL, "hm"), ev(GEN_EV_CONTENT, 0, NULL, NULL, "Hi"),
        ev(GEN_EV_CONTENT, 0, NULL, NULL, "!"), ev(GEN_EV_TOOL, 0, "toolu_x", "get", ""),
        ev(GEN_EV_TOOL, 0, NULL, NULL, "{}")};
    gen_events e = {.ev = v, .n = 5};
    buf_init(&b, 1 << 16);
    WRITES(API_FRAME_SSE, &b, ant_messages_proto.start(&c, SINK),
           EV("message_start", "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\","
                               "\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\","
                               "\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,"
                               "\"usage\":{\"input_tokens\":10,\"cache_creation_input_tokens\":0,"
                               "\"cache_read_input_tokens\":0,\"output_tokens\":0}}}")
               EV("ping", "{\"type\":\"ping\"}"));
    WRITES(
        API_FRAME_SSE, &b, ant_messages_proto.events(&c, &e, SINK),
        EV("content_block_start",
           "{\"type\":\"content_block_start\",\"index\":0,"
           "\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\","
           "\"signature\":\"\"}}") EV("content_block_delta",
                                      "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
                                      "{\"type\":\"thinking_delta\",\"thinking\":\"hm\"}}")
            EV("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
                                      "{\"type\":\"signature_delta\",\"signature\":\"\"}}")
                EV("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}") EV(
                    "content_block_start", "{\"type\":\"content_block_start\",\"index\":1,"
                                           "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}")
                    EV("content_block_delta",
                       "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":"
                       "{\"type\":\"text_delta\",\"text\":\"Hi\"}}")
                        EV("content_block_delta",
                           "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":"
                           "{\"type\":\"text_delta\",\"text\":\"!\"}}")
                            EV("content_block_stop",
                               "{\"type\":\"content_block_stop\",\"index\":1}")
                                EV("content_block_start",
                                   "{\"type\":\"content_block_start\",\"index\":2,"
                                   "\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_x\","
                                   "\"name\":\"get\",\"input\":{}}}")
                                    EV("content_block_delta",
                                       "{\"type\":\"content_block_delta\",\"index\":2,\"delta\":"
                                       "{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}"));
    WRITES(API_FRAME_SSE, &b, ant_messages_proto.end(&c, &st, SINK),
           EV("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":2}")
               EV("message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
                                   "\"tool_use\",\"stop_sequence\":null},\"usage\":" USAGE "}")
                   EV("message_stop", "{\"type\":\"message_stop\"}"));
    buf_free(&b);
}

static void test_errors(void **state) {
    (void)state;
    buf b;
    api_error e;
    buf_init(&b, 4096);
    api_fail(&e, ERR_BAD_PARAM, "x", "x: bad");
    WRITES(API_FRAME_NONE, &b, ant_messages_proto.error(&e, SINK),
           "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":"
           "\"x: bad\"}}");
    api_fail(&e, ERR_OVERLOADED, NULL, "full");
    WRITES(API_FRAME_SSE, &b, ant_messages_proto.error(&e, SINK),
           EV("error", "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
                       "\"message\":\"full\"}}"));
    assert_int_equal(ant_status(ERR_OVERLOADED), 529);
    assert_int_equal(ant_status(ERR_MODEL_NOT_FOUND), 404);
    static const struct {
        shimmy_err code;
        const char *type;
    } types[] = {{ERR_UNAUTHORIZED, "authentication_error"},
                 {ERR_FORBIDDEN, "permission_error"},
                 {ERR_MODEL_NOT_FOUND, "not_found_error"},
                 {ERR_TOO_LARGE, "request_too_large"},
                 {ERR_INTERNAL, "api_error"},
                 {ERR_CONTEXT_LENGTH, "invalid_request_error"}};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        api_error_clear(&e);
        e.code = types[i].code;
        buf_reset(&b);
        assert_int_equal(ant_error_json(&e, &b), SHIMMY_OK);
        assert_non_null(strstr(buf_str(&b), types[i].type));
    }
    buf_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal_and_params),
        cmocka_unit_test(test_blocks_to_chat),
        cmocka_unit_test(test_turn_without_text),
        cmocka_unit_test(test_tools_choice_thinking),
        cmocka_unit_test(test_count_needs_no_max_tokens),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_whole_message),
        cmocka_unit_test(test_stream),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
