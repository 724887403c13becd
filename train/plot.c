// plot.c — a run's curves from metrics.jsonl as one SVG chart (plot.h). Plain SVG by hand: a chart of a few
// polylines needs no plotting library, and the file opens in any browser.
#include "plot.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "autograd/check.h"

typedef struct series {
    char key[64];
    double *x, *y;
    int n, cap;
} series;

typedef struct chart {
    series *s;
    int n, cap;
} chart;

static series *series_of(chart *c, const char *key) {
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->s[i].key, key)) return &c->s[i];
    if (c->n == c->cap) c->s = realloc(c->s, (size_t)(c->cap = c->cap ? 2 * c->cap : 8) * sizeof *c->s);
    series *s = &c->s[c->n++];
    memset(s, 0, sizeof *s);
    snprintf(s->key, sizeof s->key, "%s", key);
    return s;
}

static void series_add(series *s, double x, double y) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->x = realloc(s->x, (size_t)s->cap * sizeof *s->x);
        s->y = realloc(s->y, (size_t)s->cap * sizeof *s->y);
    }
    s->x[s->n] = x, s->y[s->n++] = y;
}

static bool wanted(const char *key, const s2s_plot_opts *o) {
    if (o && o->n_keys > 0) {
        for (int i = 0; i < o->n_keys; i++)
            if (!strcmp(o->keys[i], key)) return true;
        return false;
    }
    return !strncmp(key, "loss", 4) || !strncmp(key, "eval_loss", 9);  // every loss and its terms
}

// Reads the file; a malformed line is reported with its number and skipped.
static int read_metrics(chart *c, const char *path, const s2s_plot_opts *o, char *err, size_t errlen) {
    FILE *f = fopen(path, "r");
    if (!f) return s2s_errf(err, errlen, "%s: cannot open (is it a run directory of s2s train?)", path);
    char *line = NULL;
    size_t cap = 0;
    int64_t ln = 0;
    while (getline(&line, &cap, f) > 0) {
        ln++;
        cJSON *j = cJSON_Parse(line);
        const cJSON *step = j ? cJSON_GetObjectItem(j, "step") : NULL;
        if (!cJSON_IsNumber(step)) {
            fprintf(stderr, "s2s plot: %s:%lld: not a metrics row, skipped\n", path, (long long)ln);
            cJSON_Delete(j);
            continue;
        }
        for (const cJSON *it = j->child; it; it = it->next)
            if (cJSON_IsNumber(it) && wanted(it->string, o) && isfinite(it->valuedouble))
                series_add(series_of(c, it->string), step->valuedouble, it->valuedouble);
        cJSON_Delete(j);
    }
    free(line);
    fclose(f);
    return 0;
}

// A round step for about n ticks over [lo, hi]: 1, 2 or 5 times a power of ten.
static double tick_step(double lo, double hi, int n) {
    const double raw = (hi - lo) / n, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

static const char *const COLORS[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
                                     "#17becf"};

static void write_svg(FILE *f, const chart *c, const char *title, int W, int H) {
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int i = 0; i < c->n; i++)
        for (int k = 0; k < c->s[i].n; k++) {
            x0 = fmin(x0, c->s[i].x[k]), x1 = fmax(x1, c->s[i].x[k]);
            y0 = fmin(y0, c->s[i].y[k]), y1 = fmax(y1, c->s[i].y[k]);
        }
    if (x1 <= x0) x0 -= 1, x1 += 1;
    if (y1 <= y0) y0 -= fabs(y0) * 0.05 + 1e-3, y1 += fabs(y1) * 0.05 + 1e-3;
    const double pad = (y1 - y0) * 0.05;
    y0 -= pad, y1 += pad;
    const int L = 70, R = 170, T = 40, B = 45, pw = W - L - R, ph = H - T - B;
#define PX(v) (L + ((v) - x0) / (x1 - x0) * pw)
#define PY(v) (T + (y1 - (v)) / (y1 - y0) * ph)
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" "
            "font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", W, H);
    fprintf(f, "<text x=\"%d\" y=\"22\" font-size=\"14\">", L);
    for (const char *p = title; *p; p++) {  // the title is a path: escape what XML needs
        if (*p == '<') fputs("&lt;", f);
        else if (*p == '&') fputs("&amp;", f);
        else fputc(*p, f);
    }
    fprintf(f, "</text>\n");
    const double ys = tick_step(y0, y1, 6), xs = tick_step(x0, x1, 8);
    for (double v = ceil(y0 / ys) * ys; v <= y1; v += ys)
        fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"%d\" y=\"%.1f\" "
                "text-anchor=\"end\">%.4g</text>\n", L, L + pw, PY(v), PY(v), L - 6, PY(v) + 4, v);
    for (double v = ceil(x0 / xs) * xs; v <= x1; v += xs)
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" stroke=\"#eee\"/><text x=\"%.1f\" y=\"%d\" "
                "text-anchor=\"middle\">%.6g</text>\n", PX(v), PX(v), T, T + ph, PX(v), T + ph + 16, v);
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#444\"/>\n", L, T, pw, ph);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">step</text>\n", L + pw / 2, H - 8);
    for (int i = 0; i < c->n; i++) {
        const series *s = &c->s[i];
        const char *col = COLORS[i % (int)(sizeof COLORS / sizeof *COLORS)];
        const bool eval = !strncmp(s->key, "eval_", 5);
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%s\"%s points=\"", col,
                !strcmp(s->key, "loss") || !strcmp(s->key, "eval_loss") ? "2" : "1.2",
                eval ? " stroke-dasharray=\"6 3\"" : "");
        for (int k = 0; k < s->n; k++) fprintf(f, "%.1f,%.1f ", PX(s->x[k]), PY(s->y[k]));
        fprintf(f, "\"/>\n");
        if (eval || s->n == 1)  // eval rows are sparse: mark them
            for (int k = 0; k < s->n; k++)
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", PX(s->x[k]), PY(s->y[k]), col);
        const int ly = T + 14 + 18 * i;
        fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"%s/><text x=\"%d\" "
                "y=\"%d\">%s</text>\n", L + pw + 12, L + pw + 36, ly - 4, ly - 4, col,
                eval ? " stroke-dasharray=\"6 3\"" : "", L + pw + 42, ly, s->key);
    }
#undef PX
#undef PY
    fprintf(f, "</svg>\n");
}

int s2s_plot_run(const char *run_dir, const char *out, const s2s_plot_opts *o, char *err, size_t errlen) {
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
    chart c = {0};
    int rc = read_metrics(&c, path, o, err, errlen);
    if (!rc && c.n == 0)
        rc = s2s_errf(err, errlen, "%s: no rows with the keys to plot (%s)", path,
                      o && o->n_keys ? "--keys" : "loss*, eval_loss*");
    if (!rc) {
        FILE *f = fopen(out, "w");
        if (!f) rc = s2s_errf(err, errlen, "%s: cannot write", out);
        else {
            write_svg(f, &c, run_dir, o && o->width ? o->width : 900, o && o->height ? o->height : 480);
            if (fclose(f)) rc = s2s_errf(err, errlen, "%s: write failed", out);
        }
    }
    for (int i = 0; i < c.n; i++) free(c.s[i].x), free(c.s[i].y);
    free(c.s);
    return rc;
}
