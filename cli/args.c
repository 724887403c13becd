// args.c — the option parser of the s2s commands (args.h).
#include "args.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

void s2s_args_usage(const s2s_cli *c, FILE *f) {
    fprintf(f, "usage: s2s %s %s\n", c->cmd, c->synopsis ? c->synopsis : "");
    for (const s2s_arg *a = c->args; a && a->name; a++) {
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", a->name, a->meta ? " " : "", a->meta ? a->meta : "");
        fprintf(f, "  %-22s %s\n", left, a->help ? a->help : "");
    }
    fprintf(f, "  %-22s %s\n", "--help", "this text");
    if (c->epilog) fprintf(f, "%s", c->epilog);
}

static int bad(const s2s_cli *c, const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "s2s %s: ", c->cmd);
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n\n");
    s2s_args_usage(c, stderr);
    return 2;
}

static int add(s2s_arg_list *l, const char *v) {
    if (l->n == S2S_ARG_LIST_MAX) return -1;
    l->v[l->n++] = v;
    return 0;
}

static int set_value(const s2s_cli *c, const s2s_arg *a, char *v) {
    char *end;
    errno = 0;
    switch (a->kind) {
    case S2S_ARG_STR:
        *(const char **)a->dst = v;
        return 0;
    case S2S_ARG_INT: {
        long long x = strtoll(v, &end, 10);
        if (errno || end == v || *end) return bad(c, "%s: '%s' is not an integer", a->name, v);
        *(int64_t *)a->dst = x;
        return 0;
    }
    case S2S_ARG_F64: {
        double x = strtod(v, &end);
        if (errno || end == v || *end) return bad(c, "%s: '%s' is not a number", a->name, v);
        *(double *)a->dst = x;
        return 0;
    }
    case S2S_ARG_LIST:
        for (char *save = NULL, *t = strtok_r(v, ",", &save); t; t = strtok_r(NULL, ",", &save))
            if (*t && add(a->dst, t)) return bad(c, "%s: more than %s values", a->name, "1024");
        return 0;
    case S2S_ARG_MULTI:
        if (add(a->dst, v)) return bad(c, "%s: more than %s values", a->name, "1024");
        return 0;
    case S2S_ARG_FLAG:
        break;
    }
    return 0;
}

int s2s_args_parse(const s2s_cli *c, int argc, char **argv, const char **pos, int *n_pos) {
    int np = 0;
    for (int i = 1; i < argc; i++) {
        char *w = argv[i];
        if (!strcmp(w, "--help") || !strcmp(w, "-h")) {
            s2s_args_usage(c, stdout);
            return 1;
        }
        if (w[0] == '-' && w[1]) {
            char *eq = strncmp(w, "--", 2) ? NULL : strchr(w, '=');  // --name=value
            if (eq) *eq = 0;
            const s2s_arg *a = c->args;
            while (a && a->name && strcmp(a->name, w)) a++;
            if (!a || !a->name) return bad(c, "unknown option %s%s", w, "");
            if (a->kind == S2S_ARG_FLAG) {
                if (eq) return bad(c, "%s takes no value%s", w, "");
                *(bool *)a->dst = true;
                continue;
            }
            char *v = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
            if (!v) return bad(c, "%s needs a value (%s)", w, a->meta ? a->meta : "VALUE");
            int rc = set_value(c, a, v);
            if (rc) return rc;
            continue;
        }
        if (np >= c->max_pos) return bad(c, "unexpected argument '%s'%s", w, "");
        pos[np++] = w;
    }
    if (np < c->min_pos) return bad(c, "missing argument%s%s", c->min_pos > 1 ? "s" : "", "");
    if (n_pos) *n_pos = np;
    return 0;
}
