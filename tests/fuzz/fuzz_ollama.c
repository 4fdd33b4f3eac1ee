/* fuzz_ollama: request bodies of /api/generate, /api/chat, /api/embed, /api/embeddings and
 * /v1/embeddings through the Ollama parsers (api/ollama_wire.h), each freed after a successful
 * parse. The first byte picks what the model brings: its params layer, a system prompt, a chat
 * template. */
#include <stdint.h>
#include <string.h>

#include "api/json_in.h"
#include "api/ollama_wire.h"
#include "touch.h"

static const char params_layer[] = "{\"stop\":[\"<|im_end|>\",\"</s>\"],\"temperature\":0.7,"
                                   "\"num_ctx\":2048,\"repeat_last_n\":-1}";

static void request(bool chat, const char *body, size_t len, const oll_model_ctx *m) {
    json_t *root = NULL;
    char msg[256];
    api_call c;
    api_error err;
    volatile size_t sink = 0;
    if (api_json_load_object(body, len, &root, msg, sizeof msg) != SHIMMY_OK)
        return;
    shimmy_err rc =
        chat ? oll_parse_chat(root, m, &c, &err) : oll_parse_generate(root, m, &c, &err);
    if (rc == SHIMMY_OK) {
        sink += touch_request(c.model, &c.gen);
        oll_call_free(&c);
    }
    (void)sink;
    json_decref(root);
}

static void embed(oll_embed_kind kind, const char *body, size_t len) {
    oll_embed_request r;
    api_error err;
    volatile size_t sink = 0;
    if (oll_parse_embed(body, len, kind, &r, &err) != SHIMMY_OK)
        return;
    for (size_t i = 0; i < r.n; i++) { /* read what the parse left borrowed */
        const engine_embed_input *in = &r.inputs[i];
        sink += in->text != NULL ? strlen(in->text) : 0;
        for (size_t k = 0; k < in->n_tokens; k++)
            sink += (size_t)in->tokens[k];
    }
    (void)sink;
    oll_embed_request_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *body = (const char *)data;
    oll_model_ctx m = {size > 0 && (data[0] & 1) ? params_layer : NULL,
                       size > 0 && (data[0] & 2) ? "You are a fuzzer." : NULL,
                       size > 0 && (data[0] & 4),
                       NULL,
                       NULL,
                       NULL};
    request(false, body, size, &m);
    request(true, body, size, &m);
    embed(OLL_EMBED, body, size);
    embed(OLL_EMBEDDINGS_LEGACY, body, size);
    embed(OLL_EMBED_OPENAI, body, size);
    return 0;
}
