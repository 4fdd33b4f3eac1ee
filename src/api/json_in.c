/* api/json_in: see json_in.h. */
#include "api/json_in.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

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
        return err_set(msg, msglen, ERR_BAD_JSON, "invalid JSON at line %d, column %d: %s", je.line,
                       je.column, je.text);
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

/* ---- chat parts ---- */

static shimmy_err check_function(const json_t *f, size_t i, api_error *err) {
    char param[64];
    json_t *name = json_object_get(f, "name"), *v;
    snprintf(param, sizeof param, "tools[%zu].function", i);
    if (!json_is_object(f))
        return api_fail(err, ERR_BAD_PARAM, param, "'%s' must be an object", param);
    snprintf(param, sizeof param, "tools[%zu].function.name", i);
    if (!json_is_string(name) || json_string_length(name) == 0)
        return api_fail(err, ERR_BAD_PARAM, param, "'%s' must be a non-empty string", param);
    snprintf(param, sizeof param, "tools[%zu].function.description", i);
    if ((v = api_json_opt(f, "description")) != NULL && !json_is_string(v))
        return api_fail(err, ERR_BAD_PARAM, param, "'%s' must be a string", param);
    snprintf(param, sizeof param, "tools[%zu].function.parameters", i);
    if ((v = api_json_opt(f, "parameters")) != NULL && !json_is_object(v))
        return api_fail(err, ERR_BAD_PARAM, param, "'%s' must be a JSON schema object", param);
    return SHIMMY_OK;
}

shimmy_err api_check_tools(const json_t *tools, size_t *n, api_error *err) {
    char param[48];
    *n = 0;
    if (tools == NULL)
        return SHIMMY_OK;
    if (!json_is_array(tools))
        return api_fail(err, ERR_BAD_PARAM, "tools", "'tools' must be an array");
    for (size_t i = 0; i < json_array_size(tools); i++) {
        const json_t *t = json_array_get(tools, i), *type = json_object_get(t, "type");
        snprintf(param, sizeof param, "tools[%zu]", i);
        if (!json_is_object(t))
            return api_fail(err, ERR_BAD_PARAM, param, "'%s' must be an object", param);
        snprintf(param, sizeof param, "tools[%zu].type", i);
        if (!json_is_string(type) || strcmp(json_string_value(type), "function") != 0)
            return api_fail(err, ERR_BAD_PARAM, param, "'%s' must be \"function\"", param);
        shimmy_err e = check_function(json_object_get(t, "function"), i, err);
        if (e != SHIMMY_OK)
            return e;
    }
    *n = json_array_size(tools);
    return SHIMMY_OK;
}

bool api_tools_have(const json_t *tools, const char *name) {
    for (size_t i = 0; i < json_array_size(tools); i++) {
        const json_t *f = json_object_get(json_array_get(tools, i), "function");
        const char *n = json_string_value(json_object_get(f, "name"));
        if (n != NULL && strcmp(n, name) == 0)
            return true;
    }
    return false;
}

shimmy_err api_json_text(const json_t *v, char **out, api_error *err) {
    *out = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (*out == NULL)
        return api_fail(err, ERR_NOMEM, NULL, "out of memory");
    return SHIMMY_OK;
}

shimmy_err api_json_num(const json_t *obj, const char *key, const char *param, bool integer,
                        double lo, double hi, double *out, api_error *err) {
    json_t *v = api_json_opt(obj, key);
    double d = json_number_value(v);
    if (v == NULL)
        return SHIMMY_OK;
    if (!json_is_number(v) || (integer && d != floor(d)) || d < lo || d > hi)
        return api_fail(err, ERR_BAD_PARAM, param, "'%s' must be %s between %.15g and %.15g", param,
                        integer ? "an integer" : "a number", lo, hi);
    *out = d;
    return SHIMMY_OK;
}
