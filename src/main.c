/* main: the subcommand table. Each subcommand lives in src/cli/. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/log.h"
#include "engine/child.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"serve", cli_serve, "run the HTTP server (OpenAI, Ollama and Anthropic APIs)"},
    {"generate", cli_generate, "complete a prompt with a model and print it"},
    {"run", cli_run, "chat with a model in the terminal (a running server's, or loaded here)"},
    {"list", cli_list, "list the models shimmy would serve"},
    {"discover", cli_discover, "scan for models and report what was found and skipped"},
    {"probe", cli_probe, "load a model, generate one token, report time and memory"},
    {"gpu-info", cli_gpu_info, "list backend modules, devices and what auto would use"},
    {"init", cli_init, "write deployment files: systemd, docker, compose, kubernetes"},
    {"rpc-server", cli_rpc_server, "lend this machine's devices to 'serve --rpc' (llama.cpp RPC)"},
    {"pull", cli_pull, "download a model from Hugging Face or an Ollama registry"},
    {"rm", cli_rm, "remove a model that 'shimmy pull' downloaded"},
    {"config", cli_config, "check a serve --config file (per-model presets): config check FILE"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: shimmy <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'shimmy <command> --help' describes a command's options.\n"
               "  --version  print the version\n  --help     print this help\n");
}

int main(int argc, char **argv) {
    log_init_from_env();
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("shimmy %s\n", SHIMMY_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    /* Hidden: a model's engine process, started by the server itself (engine/remote.c). */
    if (strcmp(argv[1], "__engine") == 0 && (argc == 3 || argc == 4) && strcmp(argv[2], "3") == 0)
        return engine_child_main(3, argc == 4 ? argv[3] : NULL);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "shimmy: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
