/* cli/sources: the model-source options shared by list, discover and probe (--model,
 * --model-dirs, --lora, --mmproj), and building the registry from them. */
#ifndef SHIMMY_CLI_SOURCES_H
#define SHIMMY_CLI_SOURCES_H

#include <stdbool.h>

#include "core/limits.h"
#include "models/discover.h"
#include "models/registry.h"

typedef struct cli_sources {
    char *paths[LIM_MODELS]; /* --model, borrowed from argv */
    int n_paths;
    const char *model_dirs; /* --model-dirs */
    disc_lora loras[LIM_MODELS];
    int n_loras;
    disc_mmproj mmprojs[LIM_MODELS];
    int n_mmprojs;
} cli_sources;

/* Parses argv[*i] when it is one of the source options (consuming its value). Returns 1 when it
 * was, 0 when not, 2 after a usage error. */
int cli_sources_arg(const char *cmd, int argc, char **argv, int *i, cli_sources *s);

/* The discovery configuration for s (borrows s). */
void cli_sources_config(const cli_sources *s, disc_config *c);

/* A registry filled by discovery from s (engine defaults in *eng, NULL = defaults). Prints the
 * error and returns NULL on failure. ch (may be NULL) receives the scan report. */
registry *cli_sources_registry(const char *cmd, const cli_sources *s,
                               const struct engine_options *eng, registry_changes *ch);

#endif
