/* core/ini: the INI reader of the config file (ini.h). */
#include "core/ini.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/limits.h"

/* Trims [*s, *e) of spaces. */
static void trim(const char **s, const char **e) {
    while (*s < *e && isspace((unsigned char)**s))
        (*s)++;
    while (*e > *s && isspace((unsigned char)(*e)[-1]))
        (*e)--;
}

static char *dup_range(const char *s, const char *e) {
    return strndup(s, (size_t)(e - s));
}

static int add_section(ini_file *f, int line, const char *s, const char *e) {
    ini_section *v = realloc(f->sections, (f->n_sections + 1) * sizeof *v);
    if (v == NULL)
        return -1;
    f->sections = v;
    v[f->n_sections] = (ini_section){line, dup_range(s, e)};
    return v[f->n_sections++].name == NULL ? -1 : 0;
}

static int add_item(ini_file *f, int line, const char *ks, const char *ke, const char *vs,
                    const char *ve) {
    ini_item *v = realloc(f->items, (f->n_items + 1) * sizeof *v);
    if (v == NULL)
        return -1;
    f->items = v;
    if (ve - vs >= 2 && *vs == '"' && ve[-1] == '"')
        vs++, ve--;
    ini_item *it = &v[f->n_items++];
    *it = (ini_item){line, (int)f->n_sections - 1, dup_range(ks, ke), dup_range(vs, ve)};
    if (it->key == NULL || it->value == NULL)
        return -1;
    for (char *k = it->key; *k; k++)
        *k = *k == '_' ? '-' : (char)tolower((unsigned char)*k);
    return 0;
}

static bool key_ok(const char *s, const char *e) {
    if (s == e)
        return false;
    for (; s < e; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_')
            return false;
    return true;
}

/* One line [s, e). Returns 0, 1 after a syntax error (reported), -1 out of memory. */
static int parse_line(ini_file *f, int line, const char *s, const char *e, ini_report_fn report,
                      void *ud) {
    trim(&s, &e);
    if (s == e || *s == '#' || *s == ';')
        return 0;
    const char *msg = NULL;
    if (*s == '[') {
        const char *ns = s + 1, *ne = e - 1;
        if (e[-1] != ']' || memchr(ns, ']', (size_t)(ne - ns)) != NULL)
            msg = "unknown section syntax: want [NAME] on a line of its own";
        else if (trim(&ns, &ne), ns == ne)
            msg = "unknown section syntax: empty section name";
        else
            return add_section(f, line, ns, ne);
    } else {
        const char *eq = memchr(s, '=', (size_t)(e - s));
        const char *ke = eq, *vs = eq != NULL ? eq + 1 : NULL;
        if (eq == NULL)
            msg = "want 'key = value', '[section]' or a '#' comment";
        else if (trim(&s, &ke), !key_ok(s, ke))
            msg = "bad key: want letters, digits, '-' or '_' before '='";
        else
            return trim(&vs, &e), add_item(f, line, s, ke, vs, e);
    }
    if (report != NULL)
        report(ud, line, msg);
    return 1;
}

int ini_parse(const char *text, ini_file *out, ini_report_fn report, void *ud) {
    memset(out, 0, sizeof *out);
    int errors = 0, line = 1;
    for (const char *p = text; *p != '\0'; line++) {
        const char *nl = strchr(p, '\n');
        const char *e = nl != NULL ? nl : p + strlen(p);
        int rc = parse_line(out, line, p, e, report, ud);
        if (rc < 0)
            return -1;
        errors += rc;
        p = nl != NULL ? nl + 1 : e;
    }
    return errors;
}

shimmy_err ini_read_file(const char *path, char **out, char *err, size_t errlen) {
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return err_set(err, errlen, ERR_IO, "cannot open %s: %s", path, strerror(errno));
    buf b;
    buf_init(&b, LIM_CONFIG_BYTES);
    char chunk[8192];
    size_t n;
    shimmy_err rc = SHIMMY_OK;
    while (rc == SHIMMY_OK && (n = fread(chunk, 1, sizeof chunk, fp)) > 0)
        rc = buf_append(&b, chunk, n);
    bool bad = ferror(fp) != 0;
    fclose(fp);
    if (rc == SHIMMY_OK && bad)
        rc = ERR_IO;
    if (rc == SHIMMY_OK)
        rc = buf_append(&b, "", 1); /* the NUL */
    if (rc != SHIMMY_OK) {
        buf_free(&b);
        return err_set(err, errlen, rc, "%s: %s", path,
                       rc == ERR_TOO_LARGE ? "over 1 MiB"
                       : rc == ERR_IO      ? "unreadable"
                                           : "out of memory");
    }
    *out = buf_take(&b);
    return SHIMMY_OK;
}

const char *ini_item_section(const ini_file *f, const ini_item *it) {
    return it->section < 0 ? "*" : f->sections[it->section].name;
}

void ini_free(ini_file *f) {
    for (size_t i = 0; i < f->n_sections; i++)
        free(f->sections[i].name);
    for (size_t i = 0; i < f->n_items; i++) {
        free(f->items[i].key);
        free(f->items[i].value);
    }
    free(f->sections);
    free(f->items);
    memset(f, 0, sizeof *f);
}
