// engine/llama_chat: llama_chat.h over llama.cpp's chat module. The only C++ file of shimmy
// (docs/adr/0004-chat-module.md). Request handling follows llama-server's
// oaicompat_chat_params_parse and its sampling set-up (tools/server in the pinned source) step by
// step, so that a chat renders, is constrained and is parsed as the reference does; where shimmy
// is deliberately stricter (a named or required tool_choice) the comment says so.
// Every entry point catches every exception: none crosses into C.
#include "engine/llama_chat.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include "chat.h"
#include "common.h"
#include "json-schema-to-grammar.h"
#include "json.h"
#include "llama.h"

using json = common_json;

namespace {

// A request error: the message and the field at fault.
struct req_error : std::runtime_error {
    std::string param;
    req_error(const std::string &p, const std::string &m) : std::runtime_error(m), param(p) {}
};

char *dup(const std::string &s) {
    char *p = static_cast<char *>(malloc(s.size() + 1));
    if (p == nullptr) {
        throw std::bad_alloc();
    }
    memcpy(p, s.data(), s.size());
    p[s.size()] = '\0';
    return p;
}

template <typename T> T *dup_array(const std::vector<T> &v) {
    if (v.empty()) {
        return nullptr;
    }
    T *p = static_cast<T *>(malloc(v.size() * sizeof(T)));
    if (p == nullptr) {
        throw std::bad_alloc();
    }
    memcpy(p, v.data(), v.size() * sizeof(T));
    return p;
}

char **dup_strings(const std::vector<std::string> &v) {
    if (v.empty()) {
        return nullptr;
    }
    char **p = static_cast<char **>(calloc(v.size(), sizeof(char *)));
    if (p == nullptr) {
        throw std::bad_alloc();
    }
    for (size_t i = 0; i < v.size(); i++) {
        p[i] = dup(v[i]);
    }
    return p;
}

void free_strings(char **p, int n) {
    for (int i = 0; p != nullptr && i < n; i++) {
        free(p[i]);
    }
    free(p);
}

shimmy_err fail(char *err, size_t errlen, shimmy_err e, const std::string &msg) {
    if (err != nullptr && errlen > 0) {
        snprintf(err, errlen, "%s", msg.c_str());
    }
    return e;
}

std::string tool_call_id() {
    static const char alnum[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    thread_local std::mt19937 gen(std::random_device{}());
    std::string id = "call_";
    for (int i = 0; i < 24; i++) {
        id += alnum[gen() % (sizeof alnum - 1)];
    }
    return id;
}

} // namespace

struct lchat_tmpl {
    common_chat_templates_ptr tmpls;
    bool use_jinja = true;
    bool thinking_default = false; // llama-server: thinking on when the template supports it
    bool renders_tools = false;    // the template renders tool definitions
    std::string source;
    engine_tmpl_caps caps = {};
};

struct lchat_parser {
    common_chat_parser_params params;
    std::vector<std::string> ids; // tool call ids, by index, made once per call
    std::string sent_reasoning;   // reasoning_content sent so far
    std::string sent_content;
    std::vector<std::string> sent_args; // per announced call: arguments sent so far
    int n_calls = 0;
};

// ---- templates ----

static bool has_call_format(const lchat_tmpl *t) {
    try {
        common_chat_templates_inputs in;
        common_chat_msg m;
        m.role = "user";
        m.content = "x";
        in.messages = {m};
        in.tools = {{"probe", "", "{\"type\":\"object\",\"properties\":{}}"}};
        in.tool_choice = COMMON_CHAT_TOOL_CHOICE_REQUIRED;
        return !common_chat_templates_apply(t->tmpls.get(), in).grammar.empty();
    } catch (const std::exception &) {
        return false;
    }
}

static void fill_caps(lchat_tmpl *t) {
    auto caps = common_chat_templates_get_caps(t->tmpls.get());
    // A template that renders tool definitions can be shown tools (as llama-server does); the
    // model can use them when llama.cpp also knows how its calls look: a required call then has
    // a grammar (none means no call format was found).
    t->renders_tools = t->use_jinja && caps["supports_tools"];
    t->caps.tools = t->renders_tools && has_call_format(t);
    t->thinking_default =
        t->use_jinja && common_chat_templates_support_enable_thinking(t->tmpls.get());
    t->caps.thinking = t->thinking_default;
}

shimmy_err lchat_tmpl_new(const struct llama_model *model, const char *jinja, const char *builtin,
                          lchat_tmpl **out, char *err, size_t errlen) {
    try {
        auto t = std::make_unique<lchat_tmpl>();
        std::string override_src;
        if (jinja != nullptr) {
            override_src = jinja;
        } else if (builtin != nullptr) {
            llama_chat_message probe = {"user", "x"};
            char tmp[64];
            if (llama_chat_apply_template(builtin, &probe, 1, true, tmp, sizeof tmp) < 0) {
                return fail(err, errlen, ERR_BAD_PARAM,
                            std::string("'") + builtin +
                                "' is not a chat template llama.cpp knows");
            }
            override_src = builtin;
            t->use_jinja = false;
        }
        if (model == nullptr && override_src.empty()) {
            override_src = "chatml";
        }
        t->tmpls = common_chat_templates_init(model, override_src);
        t->source = t->use_jinja ? common_chat_templates_source(t->tmpls.get()) : override_src;
        fill_caps(t.get());
        *out = t.release();
        return SHIMMY_OK;
    } catch (const std::exception &e) {
        return fail(err, errlen, ERR_BAD_PARAM,
                    std::string("the chat template does not parse: ") + e.what());
    }
}

void lchat_tmpl_free(lchat_tmpl *t) {
    delete t;
}

const char *lchat_tmpl_source(const lchat_tmpl *t) {
    return t->source.c_str();
}

void lchat_tmpl_caps(const lchat_tmpl *t, engine_tmpl_caps *out) {
    *out = t->caps;
}

// ---- rendering a request ----

static const json &member(const json &body, const char *key) {
    static const json null_json;
    return body.contains(key) && !body.at(key).is_null() ? body.at(key) : null_json;
}

// The tools and tool_choice of a request. shimmy is stricter than the reference: a named
// function keeps only that tool and makes the call required (the reference ignores the name).
static void parse_tools(const json &body, common_chat_templates_inputs &in) {
    const json &tools = member(body, "tools");
    if (!tools.is_null() && !tools.is_array()) {
        throw req_error("tools", "tools must be an array");
    }
    try {
        in.tools = common_chat_tools_parse_oaicompat(tools.is_null() ? json::array() : tools);
    } catch (const std::exception &e) {
        throw req_error("tools", e.what());
    }
    const json &choice = member(body, "tool_choice");
    if (choice.is_null()) {
        return;
    }
    if (choice.is_string()) {
        std::string c = choice.get<std::string>();
        if (c != "auto" && c != "none" && c != "required") {
            throw req_error("tool_choice",
                            "tool_choice must be \"auto\", \"none\", \"required\" or "
                            "{\"type\":\"function\",\"function\":{\"name\":...}}, not \"" +
                                c + "\"");
        }
        in.tool_choice = common_chat_tool_choice_parse_oaicompat(c);
        return;
    }
    std::string name;
    if (choice.is_object() && choice.contains("function") && choice.at("function").is_object() &&
        choice.at("function").contains("name") && choice.at("function").at("name").is_string()) {
        name = choice.at("function").at("name").get<std::string>();
    } else {
        throw req_error(
            "tool_choice",
            "tool_choice must be a string or {\"type\":\"function\",\"function\":{\"name\":...}}");
    }
    std::vector<common_chat_tool> keep;
    for (const auto &t : in.tools) {
        if (t.name == name) {
            keep.push_back(t);
        }
    }
    if (keep.empty()) {
        throw req_error("tool_choice", "tool_choice names the function '" + name +
                                           "', which is not among the tools");
    }
    in.tools = keep;
    in.tool_choice = COMMON_CHAT_TOOL_CHOICE_REQUIRED;
    in.parallel_tool_calls = false; // the named function, called once
}

// Messages as llama-server checks them before the chat module reads them.
static void check_messages(const json &messages) {
    if (!messages.is_array()) {
        throw req_error("messages", "messages must be an array");
    }
    for (size_t i = 0; i < messages.size(); i++) {
        const json &m = messages.at(i);
        std::string at = "messages[" + std::to_string(i) + "]";
        if (!m.is_object()) {
            throw req_error(at, at + " must be an object");
        }
        std::string role =
            m.contains("role") && m.at("role").is_string() ? m.at("role").get<std::string>() : "";
        if (role == "assistant") {
            if (!m.contains("content") && !m.contains("tool_calls")) {
                throw req_error(at, "an assistant message must have content or tool_calls");
            }
        } else if (!m.contains("content")) {
            throw req_error(at + ".content", "every non-assistant message must have content");
        }
    }
}

static void parse_continuation(const json &body, common_chat_templates_inputs &in) {
    const json &agp = member(body, "add_generation_prompt");
    if (!agp.is_null() && !agp.is_boolean()) {
        throw req_error("add_generation_prompt", "add_generation_prompt must be a boolean");
    }
    in.add_generation_prompt = agp.is_null() ? true : agp.get<bool>();
    if (body.contains("continue_final_message")) {
        in.continue_final_message =
            common_chat_continuation_parse(body.at("continue_final_message"));
    }
    // llama-server's prefill_assistant (on by default): a final assistant message is continued.
    if (in.continue_final_message == COMMON_CHAT_CONTINUATION_NONE && !in.messages.empty() &&
        in.messages.back().role == "assistant") {
        if (in.messages.size() >= 2 && in.messages[in.messages.size() - 2].role == "assistant") {
            throw req_error("messages",
                            "Cannot have 2 or more assistant messages at the end of the list.");
        }
        in.continue_final_message = COMMON_CHAT_CONTINUATION_AUTO;
        in.add_generation_prompt = false;
    }
    if (in.continue_final_message != COMMON_CHAT_CONTINUATION_NONE && in.add_generation_prompt) {
        throw req_error(
            "add_generation_prompt",
            "Cannot set both add_generation_prompt and continue_final_message to true.");
    }
    if (in.continue_final_message != COMMON_CHAT_CONTINUATION_NONE && !in.messages.empty() &&
        in.messages.back().role == "assistant" && !in.messages.back().tool_calls.empty()) {
        throw req_error("messages",
                        "Cannot continue an assistant message that contains tool calls.");
    }
}

static void parse_reasoning(const lchat_tmpl *t, const json &body,
                            common_chat_templates_inputs &in) {
    in.reasoning_format = COMMON_REASONING_FORMAT_DEEPSEEK; // llama-server's default
    const json &rf = member(body, "reasoning_format");
    if (!rf.is_null()) {
        std::string name = rf.is_string() ? rf.get<std::string>() : "";
        if (name != "none" && name != "auto" && name != "deepseek" && name != "deepseek-legacy") {
            throw req_error(
                "reasoning_format",
                "reasoning_format must be \"none\", \"auto\", \"deepseek\" or \"deepseek-legacy\"");
        }
        in.reasoning_format = common_reasoning_format_from_name(name);
    }
    in.enable_thinking = t->thinking_default;
    in.chat_template_kwargs["preserve_reasoning"] = "true"; // llama-server's default kwarg
    const json &kw = member(body, "chat_template_kwargs");
    if (!kw.is_null() && !kw.is_object()) {
        throw req_error("chat_template_kwargs", "chat_template_kwargs must be an object");
    }
    for (const auto &item : kw.items()) {
        in.chat_template_kwargs[item.key()] = item.value().dump();
    }
    auto et = in.chat_template_kwargs.find("enable_thinking");
    if (et != in.chat_template_kwargs.end()) {
        if (et->second == "true") {
            in.enable_thinking = true;
        } else if (et->second == "false") {
            in.enable_thinking = false;
        } else {
            throw req_error("chat_template_kwargs",
                            "invalid type for \"enable_thinking\" (expected boolean)");
        }
    }
    const json &th = member(body, "enable_thinking"); // shimmy's own (Ollama's think)
    if (th.is_boolean()) {
        in.enable_thinking = th.get<bool>();
    }
    const json &effort = member(body, "reasoning_effort");
    if (effort.is_string()) {
        std::string e = effort.get<std::string>();
        if (e == "none") {
            in.enable_thinking = false;
            in.chat_template_kwargs.erase("reasoning_effort");
        } else if (!e.empty()) {
            in.chat_template_kwargs["reasoning_effort"] = json(e).dump();
        }
    } else if (!effort.is_null()) {
        throw req_error("reasoning_effort", "reasoning_effort must be a string");
    }
}

static common_chat_templates_inputs make_inputs(const lchat_tmpl *t, const json &body,
                                                const char *json_schema, int64_t now_s,
                                                bool generate) {
    common_chat_templates_inputs in;
    if (!body.contains("messages")) {
        throw req_error("messages", "messages is required");
    }
    check_messages(body.at("messages"));
    try {
        in.messages = common_chat_msgs_parse_oaicompat(body.at("messages"));
    } catch (const std::exception &e) {
        throw req_error("messages", e.what());
    }
    auto caps = common_chat_templates_get_caps(t->tmpls.get());
    const json &ptc = member(body, "parallel_tool_calls");
    if (!ptc.is_null() && !ptc.is_boolean()) {
        throw req_error("parallel_tool_calls", "parallel_tool_calls must be a boolean");
    }
    in.parallel_tool_calls = ptc.is_null() ? caps["supports_parallel_tool_calls"] : ptc.get<bool>();
    parse_tools(body, in);
    if (!in.tools.empty() && !t->renders_tools) {
        throw req_error("tools",
                        "this model's chat template cannot express tools (it does not render "
                        "them); serve it with a template that does (--chat-template-file) or "
                        "leave out tools");
    }
    if (!in.tools.empty() && generate && !t->caps.tools) {
        throw req_error("tools",
                        "this model's chat template shows tools to the model, but llama.cpp "
                        "knows no format in which its calls could be read back; serve it with a "
                        "template that has one (--chat-template-file) or leave out tools");
    }
    in.use_jinja = t->use_jinja;
    parse_continuation(body, in);
    parse_reasoning(t, body, in);
    in.json_schema = json_schema != nullptr ? json_schema : "";
    in.now = std::chrono::system_clock::time_point(std::chrono::seconds(now_s));
    return in;
}

// Triggers as llama-server passes them to the sampler: a word that is one (preserved) token
// becomes a token trigger, a word otherwise an escaped pattern, a full pattern is anchored.
static void set_triggers(const common_chat_params &cp, const llama_vocab *vocab,
                         const std::vector<llama_token> &preserved, lchat_render *out) {
    std::vector<std::string> patterns;
    std::vector<int32_t> tokens;
    for (const auto &tr : cp.grammar_triggers) {
        switch (tr.type) {
        case COMMON_GRAMMAR_TRIGGER_TYPE_WORD: {
            auto ids = common_tokenize(vocab, tr.value, false, true);
            if (ids.size() == 1 &&
                std::find(preserved.begin(), preserved.end(), ids[0]) != preserved.end()) {
                tokens.push_back(ids[0]);
            } else {
                patterns.push_back(regex_escape(tr.value));
            }
            break;
        }
        case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN:
            patterns.push_back(tr.value);
            break;
        case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN_FULL: {
            const auto &p = tr.value;
            std::string anchored = "^$";
            if (!p.empty()) {
                anchored = (p.front() != '^' ? "^" : "") + p + (p.back() != '$' ? "$" : "");
            }
            patterns.push_back(anchored);
            break;
        }
        case COMMON_GRAMMAR_TRIGGER_TYPE_TOKEN:
            tokens.push_back(tr.token);
            break;
        }
    }
    out->trigger_patterns = dup_strings(patterns);
    out->n_trigger_patterns = (int)patterns.size();
    out->trigger_tokens = dup_array(tokens);
    out->n_trigger_tokens = (int)tokens.size();
}

// The generation prompt's tokens, fed to a non-lazy grammar so that it starts where the template
// left the answer (common_sampler_init).
static std::vector<int32_t> prefill_tokens(const llama_vocab *vocab,
                                           const std::string &gen_prompt) {
    std::vector<int32_t> out;
    if (gen_prompt.empty()) {
        return out;
    }
    auto tokens = common_tokenize(vocab, gen_prompt, false, true);
    for (size_t i = 0; i < tokens.size(); i++) {
        std::string piece = common_token_to_piece(vocab, tokens[i], true);
        if (i == 0 && !piece.empty() && std::isspace((unsigned char)piece[0]) &&
            !std::isspace((unsigned char)gen_prompt[0])) {
            continue; // some tokenizers put a space before the first special token
        }
        out.push_back(tokens[i]);
    }
    return out;
}

// shimmy is stricter than the reference under a required (or named) tool_choice: the reference's
// grammar lets free text come before the call ("until-N?" in front of the tool-call rule of its
// root), so a weak model can ramble to the token limit without calling. The answer must start
// with the call (after the reasoning block, when the model thinks).
// Rewrites the rule `name ::= ...` of a GBNF grammar with re -> with (first match only).
static std::string patch_rule(const std::string &grammar, const std::string &name,
                              const std::regex &re, const std::string &with) {
    std::string head = name + " ::= ";
    size_t at = grammar.compare(0, head.size(), head) == 0 ? 0 : grammar.find("\n" + head);
    if (at == std::string::npos) {
        return grammar;
    }
    at += at == 0 ? 0 : 1;
    size_t eol = grammar.find('\n', at);
    std::string line = grammar.substr(at, eol == std::string::npos ? std::string::npos : eol - at);
    std::string fixed = std::regex_replace(line, re, with, std::regex_constants::format_first_only);
    return grammar.substr(0, at) + fixed + (eol == std::string::npos ? "" : grammar.substr(eol));
}

static std::string require_call_first(const std::string &grammar) {
    static const std::regex before_call(R"(until-\d+\? +(tool-call))");
    return patch_rule(grammar, "root", before_call, "$1");
}

// Likewise with parallel_tool_calls false: one call (the reference's grammar allows more).
static std::string one_call_only(const std::string &grammar) {
    static const std::regex many(R"(\(tool-call space\)\+)");
    return patch_rule(grammar, "tool-calls", many, "tool-call space");
}

static void fill_render(const common_chat_params &cp, const common_chat_templates_inputs &in,
                        const json &body, const llama_model *model, lchat_render *out) {
    const llama_vocab *vocab = llama_model_get_vocab(model);
    out->prompt = dup(cp.prompt);
    std::vector<llama_token> preserved;
    for (const auto &t : cp.preserved_tokens) {
        auto ids = common_tokenize(vocab, t, false, true);
        if (ids.size() == 1) {
            preserved.push_back(ids[0]);
        }
    }
    out->preserved_tokens = dup_array(preserved);
    out->n_preserved_tokens = (int)preserved.size();
    out->stops = dup_strings(cp.additional_stops);
    out->n_stops = (int)cp.additional_stops.size();
    if (!cp.grammar.empty()) {
        bool required = !in.tools.empty() && in.tool_choice == COMMON_CHAT_TOOL_CHOICE_REQUIRED;
        std::string g = required ? require_call_first(cp.grammar) : cp.grammar;
        out->grammar = dup(in.parallel_tool_calls ? g : one_call_only(g));
        out->grammar_lazy = cp.grammar_lazy;
        set_triggers(cp, vocab, preserved, out);
        if (cp.grammar_lazy && out->n_trigger_patterns + out->n_trigger_tokens == 0) {
            throw std::runtime_error("the chat module made a lazy grammar without triggers");
        }
        if (!cp.grammar_lazy) {
            auto pre = prefill_tokens(vocab, cp.generation_prompt);
            out->prefill_tokens = dup_array(pre);
            out->n_prefill_tokens = (int)pre.size();
        }
    }
    if (cp.parser.empty() && cp.format == COMMON_CHAT_FORMAT_CONTENT_ONLY && in.tools.empty()) {
        return; // plain text out (ChatML and other templates without tools or reasoning)
    }
    auto p = std::make_unique<lchat_parser>();
    p->params = common_chat_parser_params(cp);
    p->params.reasoning_format = in.reasoning_format;
    if (!cp.parser.empty()) {
        p->params.parser.load(cp.parser);
    }
    p->params.is_continuation = in.continue_final_message != COMMON_CHAT_CONTINUATION_NONE;
    p->params.parse_tool_calls =
        !in.tools.empty() && in.tool_choice != COMMON_CHAT_TOOL_CHOICE_NONE;
    (void)body;
    out->parser = p.release();
}

shimmy_err lchat_render_chat(const lchat_tmpl *t, const struct llama_model *model,
                             const char *chat_json, const char *json_schema, int64_t now_s,
                             bool generate, lchat_render *out, char *err, size_t errlen,
                             char *param, size_t paramlen) {
    memset(out, 0, sizeof *out);
    if (param != nullptr && paramlen > 0) {
        param[0] = '\0';
    }
    try {
        json body = json::parse(chat_json != nullptr ? chat_json : "");
        if (!body.is_object()) {
            throw req_error("", "the chat request must be a JSON object");
        }
        auto in = make_inputs(t, body, json_schema, now_s, generate);
        common_chat_params cp;
        try {
            cp = common_chat_templates_apply(t->tmpls.get(), in);
        } catch (const std::exception &e) {
            throw req_error(
                json_schema != nullptr && in.tools.empty() ? "response_format" : "messages",
                std::string("the chat template could not render this request: ") + e.what());
        }
        fill_render(cp, in, body, model, out);
        return SHIMMY_OK;
    } catch (const req_error &e) {
        lchat_render_free(out);
        if (param != nullptr && paramlen > 0) {
            snprintf(param, paramlen, "%s", e.param.c_str());
        }
        return fail(err, errlen, ERR_BAD_PARAM, e.what());
    } catch (const std::bad_alloc &) {
        lchat_render_free(out);
        return fail(err, errlen, ERR_NOMEM, "out of memory rendering the chat");
    } catch (const std::exception &e) {
        lchat_render_free(out);
        return fail(err, errlen, ERR_BAD_PARAM,
                    std::string("the chat request could not be rendered: ") + e.what());
    }
}

shimmy_err lchat_schema_grammar(const char *json_schema, char **gbnf, char *err, size_t errlen) {
    *gbnf = nullptr;
    try {
        json schema = json::parse(json_schema);
        *gbnf = dup(json_schema_to_grammar(schema));
        return SHIMMY_OK;
    } catch (const std::bad_alloc &) {
        return fail(err, errlen, ERR_NOMEM, "out of memory converting the JSON schema");
    } catch (const std::exception &e) {
        return fail(err, errlen, ERR_BAD_PARAM,
                    std::string("the JSON schema cannot be used: ") + e.what());
    }
}

struct llama_sampler *lchat_grammar_sampler(const struct llama_vocab *vocab,
                                            const lchat_render *g) {
    struct llama_sampler *s = nullptr;
    try {
        if (g->grammar_lazy) {
            s = llama_sampler_init_grammar_lazy_patterns(
                vocab, g->grammar, "root", (const char **)g->trigger_patterns,
                (size_t)g->n_trigger_patterns, g->trigger_tokens, (size_t)g->n_trigger_tokens);
        } else {
            s = llama_sampler_init_grammar(vocab, g->grammar, "root");
        }
        for (int i = 0; s != nullptr && i < g->n_prefill_tokens; i++) {
            llama_sampler_accept(s, g->prefill_tokens[i]);
        }
        return s;
    } catch (const std::exception &) {
        if (s != nullptr) {
            llama_sampler_free(s);
        }
        return nullptr;
    }
}

bool lchat_grammar_accept(struct llama_sampler *grammar, int32_t t) {
    try {
        llama_sampler_accept(grammar, t);
        return true;
    } catch (const std::exception &) {
        return false;
    }
}

void lchat_render_free(lchat_render *r) {
    if (r == nullptr) {
        return;
    }
    free(r->prompt);
    free(r->grammar);
    free_strings(r->trigger_patterns, r->n_trigger_patterns);
    free(r->trigger_tokens);
    free(r->prefill_tokens);
    free(r->preserved_tokens);
    free_strings(r->stops, r->n_stops);
    lchat_parser_free(r->parser);
    memset(r, 0, sizeof *r);
}

// ---- parsing the output ----

// What s adds to what was sent, when s still starts with what was sent (a partial parse may
// show text that a later one takes back: nothing is sent until the text grows past it again).
static shimmy_err emit_text(gen_events *ev, gen_event_kind kind, int index, const std::string &s,
                            std::string *sent) {
    if (s.size() <= sent->size() || s.compare(0, sent->size(), *sent) != 0) {
        return SHIMMY_OK;
    }
    shimmy_err rc = gen_events_add(ev, kind, index, nullptr, nullptr, s.data() + sent->size(),
                                   s.size() - sent->size());
    if (rc == SHIMMY_OK) {
        *sent = s;
    }
    return rc;
}

// A call is announced (id and name) once its name is whole: when its arguments begin, or at the
// end; its arguments follow in pieces. Calls are announced in order.
static shimmy_err emit_calls(lchat_parser *p, const common_chat_msg &msg, bool partial,
                             gen_events *ev) {
    for (size_t i = 0; i < msg.tool_calls.size(); i++) {
        const auto &tc = msg.tool_calls[i];
        if (i == p->sent_args.size()) {
            if (tc.name.empty() || (partial && tc.arguments.empty())) {
                return SHIMMY_OK;
            }
            shimmy_err rc =
                gen_events_add(ev, GEN_EV_TOOL, (int)i, tc.id.c_str(), tc.name.c_str(), "", 0);
            if (rc != SHIMMY_OK) {
                return rc;
            }
            p->sent_args.emplace_back();
            p->n_calls = (int)p->sent_args.size();
        }
        shimmy_err rc = emit_text(ev, GEN_EV_TOOL, (int)i, tc.arguments, &p->sent_args[i]);
        if (rc != SHIMMY_OK) {
            return rc;
        }
    }
    return SHIMMY_OK;
}

static common_chat_msg parse(lchat_parser *p, const std::string &text, bool partial) {
    try {
        return common_chat_parse(text, partial, p->params);
    } catch (const std::exception &) {
        if (partial) {
            throw;
        }
    }
    // The final text does not match the format (cut by the token limit, or the model left it).
    // Nothing sent yet: the text is the answer, nothing is lost. Otherwise what a partial parse
    // finds, so that the answer keeps what was already sent.
    if (p->sent_content.empty() && p->sent_reasoning.empty() && p->sent_args.empty()) {
        common_chat_msg msg;
        msg.role = "assistant";
        msg.content = text;
        return msg;
    }
    return common_chat_parse(text, true, p->params);
}

shimmy_err lchat_parser_feed(lchat_parser *p, const char *text, size_t n, bool partial,
                             gen_events *ev) {
    common_chat_msg msg;
    try {
        msg = parse(p, std::string(text, n), partial);
        msg.set_tool_call_ids(p->ids, tool_call_id);
    } catch (const std::bad_alloc &) {
        return ERR_NOMEM;
    } catch (const std::exception &) {
        return SHIMMY_OK; // a partial text the parser cannot read yet: wait for more
    }
    shimmy_err rc = emit_text(ev, GEN_EV_REASONING, 0, msg.reasoning_content, &p->sent_reasoning);
    if (rc == SHIMMY_OK) {
        rc = emit_text(ev, GEN_EV_CONTENT, 0, msg.content, &p->sent_content);
    }
    return rc == SHIMMY_OK ? emit_calls(p, msg, partial, ev) : rc;
}

shimmy_err lchat_parse_whole(const lchat_parser *p, const char *text, size_t n, char **json_out,
                             char *err, size_t errlen) {
    *json_out = nullptr;
    try {
        common_chat_msg msg = common_chat_parse(std::string(text, n), false, p->params);
        *json_out = dup(msg.to_json_oaicompat().dump());
        return SHIMMY_OK;
    } catch (const std::bad_alloc &) {
        return ERR_NOMEM;
    } catch (const std::exception &e) {
        return fail(err, errlen, ERR_BAD_PARAM, e.what());
    }
}

void lchat_parser_reset(lchat_parser *p) {
    p->ids.clear();
    p->sent_reasoning.clear();
    p->sent_content.clear();
    p->sent_args.clear();
    p->n_calls = 0;
}

int lchat_parser_n_tool_calls(const lchat_parser *p) {
    return p->n_calls;
}

void lchat_parser_free(lchat_parser *p) {
    delete p;
}
