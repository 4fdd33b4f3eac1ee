/* api/json_in: see json_in.h. */
#include "api/json_in.h"

#include <stdbool.h>

#include "core/limits.h"

/* Nesting depth check that skips strings; cheap and allocation-free. */
static bool depth_ok(const char *s, size_t n, int max) {
    int depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max)
                return false;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return true;
}

shimmy_err api_json_load_object(const char *body, size_t len, json_t **out, char *msg,
                                size_t msglen) {
    json_error_t je;
    if (len == 0)
        return err_set(msg, msglen, ERR_BAD_JSON, "missing request body");
    if (!depth_ok(body, len, LIM_JSON_DEPTH))
        return err_set(msg, msglen, ERR_BAD_JSON, "invalid JSON: nested deeper than %d levels",
                       LIM_JSON_DEPTH);
    json_t *root = json_loadb(body, len, 0, &je);
    if (root == NULL)
        return err_set(msg, msglen, ERR_BAD_JSON, "invalid JSON at line %d, column %d: %s",
                       je.line, je.column, je.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return err_set(msg, msglen, ERR_BAD_JSON, "the request body must be a JSON object");
    }
    *out = root;
    return SHIMMY_OK;
}

json_t *api_json_opt(const json_t *obj, const char *key) {
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}
