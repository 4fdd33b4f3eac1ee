/* cli: one function per subcommand, dispatched from the table in main.c. Each returns the process
 * exit code: 0 success, 1 failure, 2 usage error. */
#ifndef SHIMMY_CLI_H
#define SHIMMY_CLI_H

int cli_serve(int argc, char **argv);
int cli_generate(int argc, char **argv);
int cli_list(int argc, char **argv);

/* Shared by subcommands: prints "shimmy CMD: MSG\nTry 'shimmy CMD --help'." and returns 2. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parses a whole decimal integer within [lo, hi]. Returns 0 on success, -1 otherwise. */
int cli_parse_int(const char *s, long lo, long hi, long *out);
int cli_parse_float(const char *s, double lo, double hi, double *out);

struct engine_options;
/* Parses a flag shared by the commands that load models (--parallel 'p', --ctx 'c', --threads
 * 't', --template 'T', --queue 'q'). Returns 1 when opt was one of them, 0 when not, 2 after
 * reporting a usage error. */
int cli_parse_engine_flag(const char *cmd, int opt, const char *arg, struct engine_options *eng);

#endif
