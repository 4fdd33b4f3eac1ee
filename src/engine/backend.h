/* engine/backend: the narrow interface between the scheduler (sched.c) and an inference library.
 * llama_backend.c implements it with llama.cpp and is the only file that includes llama.h.
 * Internal to engine/: nothing outside engine/ includes this header.
 *
 * Threading: be_load/be_free/be_decode/be_sample/be_seq_* belong to the model's engine thread;
 * be_tokenize*, be_render, be_template, be_piece, be_detokenize and the getters only read the
 * model and may be called from any thread. */
#ifndef SHIMMY_ENGINE_BACKEND_H
#define SHIMMY_ENGINE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "engine/engine.h"
#include "engine/llama_chat.h"

typedef int32_t be_token;
typedef struct be_model be_model;     /* weights + context (KV cache for every slot) */
typedef struct be_sampler be_sampler; /* one slot's sampler chain */

shimmy_err be_global_init(const char *lib_dir, char *err, size_t errlen);

/* Loads o->path with o->n_parallel sequences of o->n_ctx tokens each (0 = trained, capped).
 * Returns owned *out. */
shimmy_err be_load(const engine_options *o, be_model **out, char *err, size_t errlen);
void be_free(be_model *b);

int be_n_ctx_slot(const be_model *b); /* tokens of context per slot */
int be_n_batch(const be_model *b);    /* most tokens per be_decode */
void be_fill_info(const be_model *b, engine_model_info *info);

/* Tokenizes text, adding BOS when the model wants it (never twice). Returns the token count, or
 * -1 on failure. Writes at most cap tokens; when the count exceeds cap nothing is written and
 * the count is returned so the caller can grow its array. */
int be_tokenize(const be_model *b, const char *text, size_t len, be_token *out, int cap);
/* Tokenizes text as asked (no BOS de-duplication). Same returns as be_tokenize. */
int be_tokenize_ex(const be_model *b, const char *text, size_t len, bool add_special,
                   bool parse_special, be_token *out, int cap);
bool be_token_valid(const be_model *b, be_token t);
/* Renders a chat request (gen_request.chat_json) with the model's template (llama_chat.h's
 * lchat_render_chat). Errors: ERR_BAD_PARAM (param names the field), ERR_UNSUPPORTED (the
 * model's own template does not parse: the message says how to override it). */
shimmy_err be_render(const be_model *b, const char *chat_json, const char *json_schema,
                     int64_t now_s, bool generate, lchat_render *out, char *err, size_t errlen,
                     char *param, size_t paramlen);
/* The template source in use and what it can express. Returns owned *source. */
shimmy_err be_template(const be_model *b, char **source, engine_tmpl_caps *caps);
/* Appends the text of token t to out (special tokens render empty unless special). */
shimmy_err be_piece(const be_model *b, be_token t, bool special, buf *out);
/* Appends the text of tokens[0..n) (special tokens rendered). */
shimmy_err be_detokenize(const be_model *b, const be_token *t, int n, buf *out);
bool be_is_eog(const be_model *b, be_token t);

/* The batch of one step: tokens for several sequences. Positions are per sequence; a token's
 * position is its index in the sequence's tokens except after a media item whose positions are
 * fewer than its tokens (M-RoPE images: be_media_pos). */
void be_batch_clear(be_model *b);
/* Adds token t at position pos of sequence seq; returns its output index when want_logits
 * (for be_sample), -1 otherwise. */
int be_batch_add(be_model *b, be_token t, int pos, int seq, bool want_logits);
int be_batch_size(const be_model *b);
/* Evaluates the batch. Errors: ERR_INTERNAL with llama.cpp's return code. */
shimmy_err be_decode(be_model *b, char *err, size_t errlen);
/* Drops sequence seq's cache from position from (inclusive) to the end (a position, not a token
 * count: be_media_pos). */
void be_seq_truncate(be_model *b, int seq, int from);
/* Makes sequence dst hold positions [0, n) of sequence src (a copy of src's KV cells:
 * across the context's per-sequence streams llama.cpp copies the whole stream at the next
 * decode, then dst is cut to n). Returns false when the memory cannot do it (dst is then
 * empty). Engine thread. */
bool be_seq_copy(be_model *b, int src, int dst, int n);
/* Copies sequence seq's KV state to host memory. Returns owned *data of *size bytes. Errors:
 * ERR_NOMEM, ERR_INTERNAL (llama.cpp could not copy it). Engine thread. */
shimmy_err be_seq_save(be_model *b, int seq, void **data, size_t *size);
/* Replaces sequence seq's KV state with a saved one (borrows data). On error the sequence is
 * empty. Engine thread. */
shimmy_err be_seq_restore(be_model *b, int seq, const void *data, size_t size);

/* ---- the draft model of speculative decoding (engine_options.draft_path), loaded with the
 * model: its own context with one sequence per slot, on the model's devices. Engine thread. ---- */

/* Whether a draft model is loaded. Any thread. */
bool be_has_draft(const be_model *b);
/* The draft context's batch, as be_batch_*: tokens of several sequences at their positions. */
void be_draft_batch_clear(be_model *b);
int be_draft_batch_add(be_model *b, be_token t, int pos, int seq, bool want_logits);
int be_draft_batch_cap(const be_model *b);
/* Errors: ERR_INTERNAL with llama.cpp's return code. */
shimmy_err be_draft_decode(be_model *b, char *err, size_t errlen);
/* The draft model's most likely token at output index idx of its last decode, and its
 * probability among the 10 most likely (llama-server's draft sampler: top-k 10, best first).
 * BE_TOKEN_NONE when the token is outside the model's vocabulary. Allocates nothing. */
be_token be_draft_top(be_model *b, int idx, float *p);
/* Drops the draft sequence seq from position from (inclusive) to the end. */
void be_draft_truncate(be_model *b, int seq, int from);

/* Pooled, L2-normalised embedding of tokens[0..n) into out (be_n_embd floats), through a second
 * context made for embeddings on first use. Engine thread. Errors: ERR_CONTEXT_LENGTH,
 * ERR_INTERNAL, each with a message. */
shimmy_err be_embed(be_model *b, const be_token *tokens, int n, float *out, char *err,
                    size_t errlen);
int be_n_embd(const be_model *b);

/* True when the model's pooling is rank (a reranker: <arch>.pooling_type = 4). Any thread. */
bool be_is_rank(const be_model *b);
/* The tokens of one (query, document) pair as llama-server's /rerank makes them: the model's
 * "rerank" chat template with {query} and {document} replaced, else BOS query EOS SEP document
 * EOS as the vocabulary asks. Returns the count (> cap: did not fit), -1 on failure. Any
 * thread. */
int be_rerank_tokens(const be_model *b, const char *query, const char *doc, be_token *out, int cap);
/* The rank head's first output (unnormalised) for tokens[0..n). Engine thread. Errors as
 * be_embed. */
shimmy_err be_rank(be_model *b, const be_token *tokens, int n, float *score, char *err,
                   size_t errlen);

/* ---- media (llama.cpp's libmtmd; engine_options.mmproj) ---- */

/* The media items of one tokenized prompt (libmtmd's chunks), owned by its job. */
typedef struct be_media be_media;

/* Whether the model's projector takes this kind of media (false when it has none). Any thread. */
bool be_media_supported(const be_model *b, gen_media_kind kind);
/* Tokenizes a prompt holding engine_media_marker() where media[i] goes: the text as be_tokenize
 * does, and each media item, decoded and preprocessed by libmtmd, as its count of placeholder
 * tokens (BE_TOKEN_MEDIA-based ids, equal for equal files, so that prefix reuse keeps an image
 * whose bytes repeat). Returns owned *tokens (*n_tokens) and *out (NULL when n_media is 0). Any
 * thread. Errors: ERR_BAD_PARAM (the model takes no such media, a file does not decode, markers
 * and items do not match; param names the item's field, or is "messages" when the rendered chat
 * holds fewer markers than items), ERR_TOO_LARGE (over LIM_MEDIA_PIXELS), ERR_NOMEM. */
shimmy_err be_tokenize_media(const be_model *b, const char *text, const gen_media *media,
                             int n_media, be_token **tokens, int *n_tokens, be_media **out,
                             char *err, size_t errlen, char *param, size_t paramlen);
/* The media item covering prompt position pos: returns its index and its first position and
 * length in *start, *len; -1 when pos is text. */
int be_media_at(const be_media *md, int pos, int *start, int *len);
/* The sequence position of prompt token idx (0 <= idx <= the prompt's count; idx at a media
 * item's start or on text): idx less, for each media item wholly before it, its tokens beyond its
 * positions. An image of an M-RoPE model (Qwen2-VL, Qwen2.5-VL, Qwen3-VL) is a grid of nx by ny
 * tokens at max(nx, ny) positions (libmtmd's n_pos), so the text after it continues from there
 * (llama-server's server_tokens::pos_next); every other item takes one position per token. md
 * NULL: idx. Any thread. */
int be_media_pos(const be_media *md, int idx);
/* Encodes media item idx with the projector and decodes its embeddings into sequence seq from
 * position pos (be_media_pos of its start; its own llama_decode calls, between the engine's
 * batches; 4 positions per embedding for M-RoPE, set by libmtmd). Engine thread.
 * Errors: ERR_INTERNAL with libmtmd's code. */
shimmy_err be_media_eval(be_model *b, const be_media *md, int idx, int seq, int pos, char *err,
                         size_t errlen);
void be_media_free(be_media *md);
/* Placeholder ids of media positions are at or below this (real tokens are >= 0, and
 * BE_TOKEN_NONE is -1). */
#define BE_TOKEN_MEDIA (-2)

/* Sampler chain for params (greedy when temperature is 0), with g's output grammar first when
 * g and g->grammar (borrowed during the call). Returns owned, NULL when out of memory or the
 * grammar does not parse. */
be_sampler *be_sampler_new(const be_model *b, const gen_params *p, const lchat_render *g,
                           uint32_t seed);
/* True when g's grammar parses (checked at submit, so a bad one is a 400, not a failed job). */
bool be_grammar_ok(const be_model *b, const lchat_render *g);
void be_sampler_free(be_sampler *s);
/* Feeds an already-known token (prompt) into the repetition penalties. */
void be_sampler_accept(be_sampler *s, be_token t);
/* A token and its log probability. */
typedef struct be_logprob {
    be_token token;
    float logprob;
} be_logprob;
/* The log-softmax of output index idx's logits (the model's distribution at temperature 1):
 * out[0] is token t's, out[1..1+n_top) the n_top most likely tokens, most likely first
 * (n_top <= LIM_TOP_LOGPROBS). Allocates nothing. Engine thread. */
void be_logprobs(be_model *b, int idx, be_token t, int n_top, be_logprob *out);
/* be_sample's answer when the output grammar allows no next token (no answer can satisfy it). */
#define BE_TOKEN_NONE (-1)
/* Samples (and accepts) the next token from output index idx of the last decode, or
 * BE_TOKEN_NONE. */
be_token be_sample(be_model *b, be_sampler *s, int idx);

#endif
