/* test_params: every 400 of the OpenAI-shaped parsers names its field (issue 11 item 6). A table
 * of bad request bodies, one or more per refusal of openai_wire.c (chat and completions), of the
 * embeddings parser (/v1/embeddings) and of the rerank parser: each must fail with ERR_BAD_PARAM
 * and the param of the table (a non-null path such as "messages[1].content[0].type"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "api/json_in.h"
#include "api/ollama_wire.h"
#include "api/openai_wire.h"
#include "api/rerank.h"

typedef enum { P_CHAT, P_COMPLETION, P_EMBED, P_RERANK } parser;

typedef struct bad_case {
    parser p;
    const char *body;
    const char *param;
} bad_case;

#define M "\"model\":\"m\","
#define MSG "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

static const bad_case cases[] = {
    /* chat: the body */
    {P_CHAT, "{" MSG "}", "model"},
    {P_CHAT, "{\"model\":\"\"," MSG "}", "model"},
    {P_CHAT, "{\"model\":5," MSG "}", "model"},
    {P_CHAT, "{" M "\"x\":1}", "messages"},
    {P_CHAT, "{" M "\"messages\":[]}", "messages"},
    {P_CHAT, "{" M "\"messages\":{}}", "messages"},
    /* messages */
    {P_CHAT, "{" M "\"messages\":[5]}", "messages[0]"},
    {P_CHAT, "{" M "\"messages\":[{\"content\":\"hi\"}]}", "messages[0].role"},
    {P_CHAT, "{" M "\"messages\":[{\"role\":\"wizard\",\"content\":\"hi\"}]}", "messages[0].role"},
    {P_CHAT, "{" M "\"messages\":[{\"role\":\"user\",\"content\":5}]}", "messages[0].content"},
    {P_CHAT, "{" M "\"messages\":[{\"role\":\"user\",\"content\":[5]}]}", "messages[0].content[0]"},
    {P_CHAT, "{" M "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}",
     "messages[0].content[0].image_url"},
    {P_CHAT,
     "{" M "\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\","
     "\"tool_calls\":5}]}",
     "messages[1].tool_calls"},
    {P_CHAT, "{" M "\"messages\":[{\"role\":\"tool\",\"content\":\"a\",\"tool_call_id\":5}]}",
     "messages[0].tool_call_id"},
    /* sampling */
    {P_CHAT, "{" M MSG ",\"temperature\":3}", "temperature"},
    {P_CHAT, "{" M MSG ",\"temperature\":\"hot\"}", "temperature"},
    {P_CHAT, "{" M MSG ",\"top_p\":2}", "top_p"},
    {P_CHAT, "{" M MSG ",\"top_k\":-1}", "top_k"},
    {P_CHAT, "{" M MSG ",\"min_p\":7}", "min_p"},
    {P_CHAT, "{" M MSG ",\"presence_penalty\":9}", "presence_penalty"},
    {P_CHAT, "{" M MSG ",\"frequency_penalty\":-9}", "frequency_penalty"},
    {P_CHAT, "{" M MSG ",\"max_tokens\":-5}", "max_tokens"},
    {P_CHAT, "{" M MSG ",\"max_completion_tokens\":\"x\"}", "max_completion_tokens"},
    {P_CHAT, "{" M MSG ",\"seed\":\"x\"}", "seed"},
    {P_CHAT, "{" M MSG ",\"stream\":\"yes\"}", "stream"},
    {P_CHAT, "{" M MSG ",\"stream_options\":5}", "stream_options"},
    {P_CHAT, "{" M MSG ",\"stop\":5}", "stop"},
    {P_CHAT, "{" M MSG ",\"stop\":[\"a\",5]}", "stop[1]"},
    {P_CHAT, "{" M MSG ",\"n\":0}", "n"},
    {P_CHAT, "{" M MSG ",\"n\":\"two\"}", "n"},
    {P_CHAT, "{" M MSG ",\"functions\":[{\"name\":\"f\"}]}", "functions"},
    /* response_format */
    {P_CHAT, "{" M MSG ",\"response_format\":5}", "response_format"},
    {P_CHAT, "{" M MSG ",\"response_format\":{\"type\":\"xml\"}}", "response_format.type"},
    {P_CHAT, "{" M MSG ",\"response_format\":{\"type\":\"json_schema\"}}",
     "response_format.json_schema"},
    {P_CHAT,
     "{" M MSG ",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":"
     "{\"name\":\"a\",\"schema\":5}}}",
     "response_format.json_schema.schema"},
    /* tools */
    {P_CHAT, "{" M MSG ",\"tools\":5}", "tools"},
    {P_CHAT, "{" M MSG ",\"tools\":[5]}", "tools[0]"},
    {P_CHAT, "{" M MSG ",\"tools\":[{\"type\":\"web\"}]}", "tools[0].type"},
    {P_CHAT, "{" M MSG ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"\"}}]}",
     "tools[0].function.name"},
    {P_CHAT, "{" M MSG ",\"tool_choice\":\"sometimes\"}", "tool_choice"},
    {P_CHAT, "{" M MSG ",\"parallel_tool_calls\":\"yes\"}", "parallel_tool_calls"},
    {P_CHAT, "{" M MSG ",\"reasoning_format\":5}", "reasoning_format"},
    {P_CHAT, "{" M MSG ",\"chat_template_kwargs\":5}", "chat_template_kwargs"},
    {P_CHAT, "{" M MSG ",\"add_generation_prompt\":5}", "add_generation_prompt"},
    /* completions */
    {P_COMPLETION, "{\"prompt\":\"a\"}", "model"},
    {P_COMPLETION, "{" M "\"x\":1}", "prompt"},
    {P_COMPLETION, "{" M "\"prompt\":5}", "prompt"},
    {P_COMPLETION, "{" M "\"prompt\":[\"a\",\"b\"]}", "prompt"},
    {P_COMPLETION, "{" M "\"prompt\":\"a\",\"echo\":true}", "echo"},
    {P_COMPLETION, "{" M "\"prompt\":\"a\",\"best_of\":3}", "best_of"},
    {P_COMPLETION, "{" M "\"prompt\":\"a\",\"suffix\":\"z\"}", "suffix"},
    {P_COMPLETION, "{" M "\"prompt\":\"a\",\"temperature\":-1}", "temperature"},
    /* embeddings */
    {P_EMBED, "{\"input\":\"a\"}", "model"},
    {P_EMBED, "{" M "\"x\":1}", "input"},
    {P_EMBED, "{" M "\"input\":[]}", "input"},
    {P_EMBED, "{" M "\"input\":5}", "input"},
    {P_EMBED, "{" M "\"input\":[\"a\",\"\"]}", "input[1]"},
    {P_EMBED, "{" M "\"input\":[[1],[2,\"x\"]]}", "input[1]"},
    {P_EMBED, "{" M "\"input\":\"a\",\"encoding_format\":\"hex\"}", "encoding_format"},
    {P_EMBED, "{" M "\"input\":\"a\",\"dimensions\":0}", "dimensions"},
    {P_EMBED, "{" M "\"input\":\"a\",\"dimensions\":1.5}", "dimensions"},
    /* rerank */
    {P_RERANK, "{\"query\":\"q\",\"documents\":[\"a\"]}", "model"},
    {P_RERANK, "{" M "\"documents\":[\"a\"]}", "query"},
    {P_RERANK, "{" M "\"query\":5,\"documents\":[\"a\"]}", "query"},
    {P_RERANK, "{" M "\"query\":\"q\"}", "documents"},
    {P_RERANK, "{" M "\"query\":\"q\",\"documents\":[]}", "documents"},
    {P_RERANK, "{" M "\"query\":\"q\",\"documents\":[\"a\",{\"t\":1}]}", "documents[1]"},
    {P_RERANK, "{" M "\"query\":\"q\",\"documents\":[\"a\"],\"top_n\":0}", "top_n"},
    {P_RERANK, "{" M "\"query\":\"q\",\"documents\":[\"a\"],\"return_documents\":1}",
     "return_documents"},
};

/* Runs one case's parser; returns the code with err filled. */
static shimmy_err run(const bad_case *c, api_error *err) {
    size_t len = strlen(c->body);
    if (c->p == P_EMBED || c->p == P_RERANK) {
        oll_embed_request er;
        rerank_request rr;
        shimmy_err e = c->p == P_EMBED ? oll_parse_embed(c->body, len, OLL_EMBED_OPENAI, &er, err)
                                       : rerank_parse(c->body, len, &rr, err);
        if (e == SHIMMY_OK)
            c->p == P_EMBED ? oll_embed_request_free(&er) : rerank_request_free(&rr);
        return e;
    }
    json_t *root = NULL;
    api_call call;
    gen_params d;
    gen_params_default(&d);
    memset(&call, 0, sizeof call);
    api_error_clear(err);
    shimmy_err e = api_json_load_object(c->body, len, &root, err->message, sizeof err->message);
    if (e != SHIMMY_OK)
        return e;
    e = c->p == P_CHAT ? oai_parse_chat(root, &d, &call, err)
                       : oai_parse_completion(root, &d, &call, err);
    if (e == SHIMMY_OK)
        oai_call_free(&call);
    json_decref(root);
    return e;
}

static void test_every_400_names_its_field(void **state) {
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        api_error err;
        api_error_clear(&err);
        shimmy_err e = run(&cases[i], &err);
        if (e != ERR_BAD_PARAM || strcmp(err.param, cases[i].param) != 0) {
            fprintf(stderr, "case %zu %s: code %d param \"%s\" (want 400 param \"%s\"): %s\n", i,
                    cases[i].body, (int)e, err.param, cases[i].param, err.message);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_400_names_its_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
