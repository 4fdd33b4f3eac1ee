/* fuzz_ollama: request bodies of /api/generate, /api/chat, /api/embed, /api/embeddings and
 * /v1/embeddings through the Ollama parsers (api/ollama_wire.h), each freed after a successful
 * parse. The first byte picks whether the model's params layer ("defaults") is given. */
#include <stdint.h>
#include <string.h>

#include "api/ollama_wire.h"
#include "touch.h"

static const char params_layer[] = "{\"stop\":[\"<|im_end|>\",\"</s>\"],\"temperature\":0.7,"
                                   "\"num_ctx\":2048,\"repeat_last_n\":-1}";

static void request(bool chat, const char *body, size_t len, const char *defaults) {
    oll_request r;
    oll_error err;
    volatile size_t sink = 0;
    shimmy_err rc = chat ? oll_parse_chat(body, len, defaults, &r, &err)
                         : oll_parse_generate(body, len, defaults, &r, &err);
    if (rc != SHIMMY_OK)
        return;
    oll_request_default_system(&r, "You are a fuzzer.");
    sink += touch_request(r.model, &r.gen);
    (void)sink;
    oll_request_free(&r);
}

static void embed(oll_embed_kind kind, const char *body, size_t len) {
    oll_embed_request r;
    oll_error err;
    volatile size_t sink = 0;
    if (oll_parse_embed(body, len, kind, &r, &err) != SHIMMY_OK)
        return;
    for (size_t i = 0; i < r.n; i++)
        sink += strlen(r.texts[i]);
    (void)sink;
    oll_embed_request_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *body = (const char *)data;
    const char *defaults = size > 0 && (data[0] & 1) ? params_layer : NULL;
    request(false, body, size, defaults);
    request(true, body, size, defaults);
    embed(OLL_EMBED, body, size);
    embed(OLL_EMBEDDINGS_LEGACY, body, size);
    embed(OLL_EMBED_OPENAI, body, size);
    return 0;
}
