/* fuzz_anthropic: request bodies of POST /v1/messages and /v1/messages/count_tokens through the
 * Anthropic Messages parsers (api/anthropic_wire.h), the body parsed once as the generation path
 * does. Every successful parse is freed, so ASan/LSan see leaks and use-after-free; a parse must
 * also leave its own strings readable (the api_call borrows); the chat JSON made for the engine
 * must parse; a failed parse must leave a NUL-terminated param and message. */
#include <stdint.h>
#include <string.h>

#include "api/anthropic_wire.h"
#include "api/json_in.h"
#include "touch.h"

static void request(bool count, json_t *root) {
    gen_params defaults;
    api_call c;
    api_error err;
    volatile size_t sink = 0;
    gen_params_default(&defaults);
    shimmy_err rc =
        count ? ant_parse_count(root, &c, &err) : ant_parse_messages(root, &defaults, &c, &err);
    if (rc != SHIMMY_OK) {
        sink += strlen(err.param) + strlen(err.message);
        return;
    }
    sink += touch_request(c.model, &c.gen);
    if (c.gen.chat_json != NULL) {
        json_t *j = json_loads(c.gen.chat_json, 0, NULL);
        if (j == NULL)
            __builtin_trap();
        json_decref(j);
    }
    (void)sink;
    ant_call_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_t *root = NULL;
    char msg[256];
    if (api_json_load_object((const char *)data, size, &root, msg, sizeof msg) != SHIMMY_OK)
        return 0;
    request(false, root);
    request(true, root);
    json_decref(root);
    return 0;
}
