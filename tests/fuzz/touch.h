/* touch: reads every string a parsed request borrows, so that a dangling pointer is caught by
 * ASan inside the fuzz target, not later. Shared by the request parser targets. */
#ifndef SHIMMY_FUZZ_TOUCH_H
#define SHIMMY_FUZZ_TOUCH_H

#include <string.h>

#include "engine/engine.h"

static inline size_t touch_request(const char *model, const gen_request *gen) {
    size_t n = model ? strlen(model) : 0;
    if (gen->prompt)
        n += strlen(gen->prompt);
    if (gen->chat_json)
        n += strlen(gen->chat_json);
    for (int i = 0; i < gen->params.n_stop; i++)
        n += strlen(gen->params.stop[i]);
    if (gen->params.json_schema)
        n += strlen(gen->params.json_schema);
    return n;
}

#endif
