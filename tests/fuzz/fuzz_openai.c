/* fuzz_openai: request bodies of POST /v1/chat/completions and /v1/completions through the
 * OpenAI parsers (api/openai_wire.h). Every successful parse is freed, so ASan/LSan see leaks and
 * use-after-free; a parse must also leave its own strings readable (the gen_request borrows). */
#include <stdint.h>
#include <string.h>

#include "api/openai_wire.h"

/* Touch every borrowed string so that a dangling pointer is caught here, not later. */
static size_t touch(const oai_request *r) {
    size_t n = r->model ? strlen(r->model) : 0;
    if (r->gen.prompt)
        n += strlen(r->gen.prompt);
    for (size_t i = 0; i < r->gen.n_messages; i++)
        n += strlen(r->gen.messages[i].role) + strlen(r->gen.messages[i].content);
    for (int i = 0; i < r->gen.params.n_stop; i++)
        n += strlen(r->gen.params.stop[i]);
    if (r->gen.params.grammar)
        n += strlen(r->gen.params.grammar);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gen_params defaults;
    gen_params_default(&defaults);
    oai_request r;
    oai_error err;
    volatile size_t sink = 0;
    if (oai_parse_chat((const char *)data, size, &defaults, &r, &err) == SHIMMY_OK) {
        sink += touch(&r);
        oai_request_free(&r);
    }
    if (oai_parse_completion((const char *)data, size, &defaults, &r, &err) == SHIMMY_OK) {
        sink += touch(&r);
        oai_request_free(&r);
    }
    (void)sink;
    return 0;
}
