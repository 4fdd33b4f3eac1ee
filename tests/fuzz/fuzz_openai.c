/* fuzz_openai: request bodies of POST /v1/chat/completions and /v1/completions through the
 * OpenAI parsers (api/openai_wire.h). Every successful parse is freed, so ASan/LSan see leaks and
 * use-after-free; a parse must also leave its own strings readable (the gen_request borrows). */
#include <stdint.h>
#include <string.h>

#include "api/openai_wire.h"
#include "touch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gen_params defaults;
    gen_params_default(&defaults);
    oai_request r;
    oai_error err;
    volatile size_t sink = 0;
    if (oai_parse_chat((const char *)data, size, &defaults, &r, &err) == SHIMMY_OK) {
        sink += touch_request(r.model, &r.gen);
        oai_request_free(&r);
    }
    if (oai_parse_completion((const char *)data, size, &defaults, &r, &err) == SHIMMY_OK) {
        sink += touch_request(r.model, &r.gen);
        oai_request_free(&r);
    }
    (void)sink;
    return 0;
}
