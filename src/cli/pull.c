/* cli/pull: `shimmy pull REF` (download a model into the Hugging Face cache or Ollama's store,
 * models/pull.h) and `shimmy rm NAME` (remove a model shimmy pulled). Progress: a bar on a
 * terminal (bytes, rate, time left), one line per step otherwise. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/fmt.h"
#include "models/pull.h"

static volatile sig_atomic_t interrupted;
static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

typedef struct bar {
    bool tty;
    bool quiet;
    char last[700]; /* the last status printed as a line */
    char file[700]; /* the last file status printed (printed once) */
    bool open;      /* a bar line is on screen without its newline */
} bar;

static void draw(bar *b, const pull_progress *p) {
    char done[32], total[32], rate[32], left[32] = "";
    fmt_bytes(p->completed, done, sizeof done);
    fmt_bytes(p->total, total, sizeof total);
    fmt_bytes((uint64_t)p->rate, rate, sizeof rate);
    int pct = p->total ? (int)(100.0 * (double)p->completed / (double)p->total) : 0;
    if (p->rate > 0 && p->total > p->completed) {
        long s = (long)((double)(p->total - p->completed) / p->rate);
        snprintf(left, sizeof left, "%ld:%02ld left", s / 60, s % 60);
    }
    if (p->rate <= 0)
        rate[0] = '\0';
    fprintf(stderr, "\r\033[K%s %3d%% %s/%s %s%s %s", p->status, pct, done, total, rate,
            rate[0] ? "/s" : "", left);
    b->open = true;
}

static void on_progress(void *ctx, const pull_progress *p) {
    bar *b = ctx;
    if (b->quiet)
        return;
    bool file = p->total > 0;
    if (b->tty && file) {
        draw(b, p);
        return;
    }
    if (strcmp(p->status, b->last) == 0 || (file && strcmp(p->status, b->file) == 0))
        return;
    if (strncmp(p->status, "pulling ", 8) != 0)
        file = false; /* "verifying sha256 digest" of a file, "waiting for ..." */
    else if (file)
        snprintf(b->file, sizeof b->file, "%s", p->status);
    if (b->open)
        fputc('\n', stderr);
    b->open = false;
    snprintf(b->last, sizeof b->last, "%s", p->status);
    if (file && p->completed >= p->total)
        fprintf(stderr, "%s: already here\n", p->status);
    else if (file && p->completed > 0)
        fprintf(stderr, "%s (%llu bytes, resuming at %llu)\n", p->status,
                (unsigned long long)p->total, (unsigned long long)p->completed);
    else if (file)
        fprintf(stderr, "%s (%llu bytes)\n", p->status, (unsigned long long)p->total);
    else
        fprintf(stderr, "%s\n", p->status);
}

static int pull_usage(FILE *f, int rc) {
    fprintf(
        f,
        "usage: shimmy pull [--insecure] [--quiet] REF\n\n"
        "Downloads a model into the store its tools use; `shimmy list` and a running\n"
        "server's rescan see it at once.\n\n"
        "  hf.co/ORG/REPO          Hugging Face: the Q4_K_M GGUF (else the nearest quantisation)\n"
        "  hf.co/ORG/REPO:QUANT    that quantisation (case-insensitive: :Q8_0, :iq4_xs)\n"
        "  ORG/REPO/FILE.gguf      that file\n"
        "                          (every part of a split model, and the repository's mmproj\n"
        "                          projector, come along; into the hub cache: HF_HUB_CACHE,\n"
        "                          HF_HOME/hub or ~/.cache/huggingface/hub; HF_TOKEN or\n"
        "                          ~/.cache/huggingface/token, HF_ENDPOINT, HF_HUB_OFFLINE)\n"
        "  NAME[:TAG], NAMESPACE/NAME[:TAG], HOST[:PORT]/NAMESPACE/NAME[:TAG]\n"
        "                          an Ollama registry (registry.ollama.ai by default), into\n"
        "                          Ollama's store (OLLAMA_MODELS or ~/.ollama/models)\n\n"
        "  --insecure              plain HTTP to an Ollama registry (a private one)\n"
        "  --quiet                 no progress, only the result and errors\n\n"
        "Files are verified (sha256) before they are put in place; an interrupted pull\n"
        "resumes where it stopped when run again. `shimmy rm NAME` removes what was pulled.\n");
    return rc;
}

int cli_pull(int argc, char **argv) {
    static const struct option longopts[] = {{"insecure", no_argument, NULL, 'k'},
                                             {"quiet", no_argument, NULL, 'q'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    bar b = {.tty = isatty(STDERR_FILENO) == 1};
    pull_options o = {.progress = on_progress, .ctx = &b, .abort = &interrupted};
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "kqh", longopts, NULL)) != -1) {
        if (opt == 'k')
            o.insecure = true;
        else if (opt == 'q')
            b.quiet = true;
        else if (opt == 'h')
            return pull_usage(stdout, 0);
        else
            return cli_usage_error("pull", "unknown option");
    }
    if (optind != argc - 1)
        return cli_usage_error("pull", "give one model reference");
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGXFSZ, SIG_IGN); /* a file size limit is a write error (EFBIG), not a kill */
    pull_result r;
    char err[2048];
    shimmy_err e = pull_model(argv[optind], &o, &r, err, sizeof err);
    if (b.open)
        fputc('\n', stderr);
    if (e != SHIMMY_OK) {
        fprintf(stderr, "shimmy pull: %s\n", err);
        return e == ERR_BAD_PARAM && pull_ref_kind(argv[optind]) == NULL ? 2 : 1;
    }
    printf("pulled %s (%d file%s, %llu bytes, %llu fetched now) into the %s store; serve it as "
           "'%s'\n",
           r.file, r.n_files, r.n_files == 1 ? "" : "s", (unsigned long long)r.bytes,
           (unsigned long long)r.fetched, strcmp(r.store, "hf") == 0 ? "Hugging Face" : "Ollama",
           r.name);
    return 0;
}

int cli_rm(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        FILE *f = argc < 2 ? stderr : stdout;
        fprintf(f, "usage: shimmy rm NAME...\n\nRemoves models that shimmy pull fetched, named "
                   "as `shimmy list` shows them or by\nthe reference they were pulled with. "
                   "Models shimmy did not pull are never touched.\n");
        return argc < 2 ? 2 : 0;
    }
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        char err[2048], name[256] = "";
        if (pull_remove(argv[i], name, sizeof name, err, sizeof err) != SHIMMY_OK) {
            fprintf(stderr, "shimmy rm: %s\n", err);
            rc = 1;
        } else
            printf("removed %s\n", name);
    }
    return rc;
}
