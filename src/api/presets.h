/* api/presets: the default sampling parameters and system prompt of the --config file
 * (docs/DEPLOY.md, ADR 0009), applied where a request is silent. One preset per section: `[*]`
 * (and the lines before any header) for every model, then each section whose name matches the
 * served name of the request's model (a name or an fnmatch glob; an alias matches as its
 * model), in file order, the later winning per field. The engine and registry settings of a
 * section (ctx, parallel, keep-alive, alias, GPU, template, ...) are serve's business
 * (cli/config.c), not this file's.
 *
 * Thread-safety: a presets object is immutable once built; shimmy_app.presets is swapped
 * atomically on SIGHUP and the previous one is kept until exit (api_presets_retire), so a
 * request that read it never sees freed strings. */
#ifndef SHIMMY_API_PRESETS_H
#define SHIMMY_API_PRESETS_H

#include <jansson.h>
#include <stddef.h>

#include "api/api.h"
#include "core/ini.h"
#include "engine/engine.h"

typedef struct api_presets api_presets;

/* Whether key is a preset key (the sampling keys temperature, top-p, top-k, min-p,
 * repeat-penalty, repeat-last-n, presence-penalty, frequency-penalty, max-tokens, seed, stop;
 * and system, a system prompt whose repeated lines join with newlines): 0 when not; 1 when it
 * is and value is good; -1 when it is and value is bad (message in err). */
int api_preset_check(const char *key, const char *value, char *err, size_t errlen);

/* Builds the presets of f's sampling keys (other keys are skipped, bad values too: `shimmy
 * config check` reports them). Borrows f. Returns owned (free with api_presets_free), NULL when
 * out of memory. */
api_presets *api_presets_from_ini(const ini_file *f);
/* Sections that set at least one sampling key. */
size_t api_presets_count(const api_presets *p);
void api_presets_free(api_presets *p);

/* Installs next (taken; may be NULL) as app's presets; the previous ones are kept until
 * api_presets_retire_all (requests in flight may borrow their stop strings). Call from one
 * thread (serve's main thread). */
void api_presets_install(shimmy_app *app, api_presets *next);
/* At exit, after the server stopped: frees app's presets and every replaced one. */
void api_presets_retire_all(shimmy_app *app);

/* THE helper every protocol's parse row calls for its defaults: *out = base (the protocol's own
 * defaults; NULL = gen_params_default), then the model's Modelfile params layer when it comes
 * from an Ollama store (Ollama's option names; num_ctx left out; parsed into root, which
 * outlives the call: a bad value is logged and the layer skipped), then the presets of the
 * model root names ("model" member; root may be NULL) laid over it. The request's own fields
 * are parsed over *out afterwards, so a preset applies only where the request is silent.
 * out->stop, when the layer or a preset sets it, borrows stop (the caller's LIM_STOP_STRINGS
 * entries: the protocol's parse copies them into its call) or the presets (alive until exit). */
void api_gen_defaults(shimmy_app *app, json_t *root, const gen_params *base, gen_params *out,
                      const char **stop);
/* The same for a model's served name (NULL = only [*]). presets may be NULL. */
void api_presets_apply(const api_presets *p, const char *model, gen_params *out);
/* The system prompt the presets give the model served as model (the last matching section that
 * sets `system`), or NULL. Borrowed from p (alive until exit: see api_presets_install). */
const char *api_presets_system(const api_presets *p, const char *model);
/* The served name a request's model name stands for (an alias, a ":latest" form resolved by the
 * registry), written into out; name itself when the registry does not know it. Presets match
 * served names, so that an alias has its model's presets. */
const char *api_model_served_name(shimmy_app *app, const char *name, char *out, size_t len);
/* The presets' system prompt for model (else its Modelfile's SYSTEM, as Ollama does on every
 * API), as the first message of chat_json (the engine's chat JSON text) when its first message
 * is not a system one (Ollama's rule for a Modelfile's SYSTEM): returns the new chat JSON text
 * (owned), or NULL when nothing changes (no system preset, a system message already there, or out
 * of memory). */
char *api_presets_add_system(shimmy_app *app, const char *model, const char *chat_json);

#endif
