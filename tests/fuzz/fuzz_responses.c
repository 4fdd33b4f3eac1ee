/* fuzz_responses: request bodies of POST /v1/responses through the OpenAI Responses parser
 * (api/responses_wire.h), the body parsed once as the generation path does, first with no
 * response store, then with a small one that holds two finished responses ("resp_fuzz_text": a
 * message exchange; "resp_fuzz_call": reasoning and a function call), so that
 * previous_response_id can continue them. Every successful parse is freed, so ASan/LSan see
 * leaks and use-after-free; a parse must also leave its own strings readable (the api_call
 * borrows); the chat JSON made for the engine and text.format's schema must parse; a failed
 * parse must leave a NUL-terminated param and message. */
#include <stdint.h>
#include <string.h>

#include "api/json_in.h"
#include "api/responses_wire.h"
#include "touch.h"

static const char items_text[] =
    "[{\"type\":\"message\",\"role\":\"user\",\"content\":\"Hi, who are you?\"},"
    "{\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\","
    "\"text\":\"I am a small model.\",\"annotations\":[]}]}]";
static const char items_call[] =
    "[{\"type\":\"message\",\"role\":\"user\",\"content\":[{\"type\":\"input_text\","
    "\"text\":\"Weather in Paris?\"}]},"
    "{\"type\":\"reasoning\",\"id\":\"rs_1\",\"summary\":[],\"content\":[{\"type\":"
    "\"reasoning_text\",\"text\":\"Call the tool.\"}]},"
    "{\"type\":\"function_call\",\"id\":\"fc_1\",\"call_id\":\"call_1\",\"name\":\"get_weather\","
    "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}]";

static resp_store *store;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    store = resp_store_new(4, 1 << 16);
    if (store == NULL ||
        resp_store_put(store, "resp_fuzz_text", "{}", 2, items_text, strlen(items_text)) !=
            SHIMMY_OK ||
        resp_store_put(store, "resp_fuzz_call", "{}", 2, items_call, strlen(items_call)) !=
            SHIMMY_OK)
        __builtin_trap();
    return 0;
}

static void must_parse(const char *text) {
    if (text == NULL)
        return;
    json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
    if (j == NULL)
        __builtin_trap();
    json_decref(j);
}

static void request(json_t *root, resp_store *s) {
    gen_params defaults;
    api_call c;
    api_error err;
    volatile size_t sink = 0;
    gen_params_default(&defaults);
    if (resp_parse_store(root, &defaults, s, &c, &err) != SHIMMY_OK) {
        sink += strlen(err.param) + strlen(err.message);
        return;
    }
    sink += touch_request(c.model, &c.gen);
    must_parse(c.gen.chat_json);
    must_parse(c.gen.params.json_schema);
    (void)sink;
    resp_call_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_t *root = NULL;
    char msg[256];
    if (api_json_load_object((const char *)data, size, &root, msg, sizeof msg) != SHIMMY_OK)
        return 0;
    request(root, NULL);
    request(root, store);
    json_decref(root);
    return 0;
}
