/* json_schema: JSON Schema → GBNF (llama.cpp's grammar format, start rule "root") for Ollama's
 * `format: {schema}` and OpenAI's `response_format: {"type": "json_schema", ...}`; and the one
 * generic JSON grammar used by Ollama's `format: "json"` and OpenAI's `"type": "json_object"`.
 *
 * The grammar accepts a subset of what the schema accepts, never more: a keyword that would make
 * the output invalid if ignored (pattern, format, minimum, $ref, allOf, ...) is an error naming
 * it, not silently dropped. Objects get exactly their declared properties, in declaration order
 * (optional ones may be left out); extra properties are never generated. Whitespace between
 * tokens is bounded (at most a newline and 20 blanks), so a model cannot loop on spaces, and
 * nothing may follow the root value, so generation ends (EOS) as soon as the value is complete.
 *
 * Supported: type (a name or a list of names: object, array, string, number, integer, boolean,
 * null), properties, required, additionalProperties (accepted; extra properties are never
 * generated), items, minItems, maxItems, minLength, maxLength, enum, const, anyOf, oneOf
 * (treated as anyOf), boolean schemas (true = any value), a schema without type (any JSON
 * value, or the type its keywords imply); annotations are ignored: title, description, $schema,
 * $id, $comment, default, examples, $defs, definitions, deprecated, readOnly, writeOnly.
 *
 * Thread-safety: reentrant. */
#ifndef SHIMMY_API_JSON_SCHEMA_H
#define SHIMMY_API_JSON_SCHEMA_H

#include <stddef.h>

#include <jansson.h>

#include "core/buf.h"
#include "core/err.h"

/* GBNF for any JSON object (llama.cpp's grammars/json.gbnf): Ollama format "json", OpenAI
 * response_format json_object. */
extern const char api_json_grammar[];

/* Converts schema (borrowed) to GBNF appended to out, whose maximum should be LIM_GRAMMAR_BYTES.
 * msg (msglen bytes, always NUL-terminated) receives the reason of a failure. Returns SHIMMY_OK;
 * ERR_BAD_PARAM naming the keyword and where it is ("schema keyword 'pattern' is not supported
 * (at /properties/name)"), or for a bad value, a schema nested deeper than LIM_JSON_DEPTH, a
 * count over LIM_SCHEMA_REPEAT, or a grammar larger than out or LIM_GRAMMAR_BYTES; ERR_NOMEM.
 * On error out may hold a partial grammar (reset or free it). */
shimmy_err json_schema_to_gbnf(const json_t *schema, buf *out, char *msg, size_t msglen);

#endif
