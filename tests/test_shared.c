/* Tests for the shared toolkit of memrl_algos.h: the learning-curve plot (mrl_plot_csv_svg) and,
 * when built with -DMRL_THREADS -pthread, the thread wrapper.
 *
 * The plot tests write CSV logs by hand, plot them and read the SVG back: balanced tags, one
 * panel per y column, one polyline point per valid row at the pixel its values map to (the
 * lowest and highest rows on the plot's bottom and top edges), tick labels and their places,
 * errors, and a 1e5-row log whose reduced polyline still covers every row.
 *
 * Run from the repository root:  cc -std=c99 -O2 tests/test_shared.c -lm && ./a.out
 * With threads:  cc -std=c99 -O2 -DMRL_THREADS -pthread tests/test_shared.c -lm && ./a.out */
#define MEMRL_IMPLEMENTATION
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* getpid */
#endif
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _WIN32
#include <process.h>
#define test_getpid() _getpid()
#else
#include <unistd.h>
#define test_getpid() getpid()
#endif
#include "../memrl_algos.h"
#include "test.h"

static char csv_path[256], svg_path[256];

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  if (!f) return;
  fputs(text, f);
  fclose(f);
}

static char *read_text(const char *path) {
  FILE *f = fopen(path, "rb");
  long n;
  char *s;
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  s = (char *)malloc((size_t)n + 1);
  if (s) s[fread(s, 1, (size_t)n, f)] = '\0';
  fclose(f);
  return s;
}

/* XML-ish well-formedness: every tag closed in order, attribute quotes paired, entities named. */
static int svg_balanced(const char *s) {
  char stack[16][32];
  int depth = 0, n;
  const char *t;
  for (; *s; s++) {
    if (*s == '&') {
      for (t = s + 1; (*t >= 'a' && *t <= 'z') || *t == '#' || (*t >= '0' && *t <= '9'); t++) {
      }
      if (*t != ';' || t == s + 1) return 0;
      continue;
    }
    if (*s == '>') return 0;
    if (*s != '<') continue;
    if (s[1] == '?') {
      if (!(t = strstr(s, "?>"))) return 0;
      s = t + 1;
      continue;
    }
    for (t = s + 1; *t && *t != '>'; t++) {
      if (*t == '<') return 0;
      if (*t == '"' && !(t = strchr(t + 1, '"'))) return 0;
    }
    if (!*t) return 0;
    n = (int)strcspn(s + 1 + (s[1] == '/'), " />");
    if (n <= 0 || n >= 32) return 0;
    if (s[1] == '/') {
      if (depth == 0 || strncmp(stack[depth - 1], s + 2, (size_t)n) || stack[depth - 1][n])
        return 0;
      depth--;
    } else if (t[-1] != '/') {
      if (depth == 16) return 0;
      memcpy(stack[depth], s + 1, (size_t)n);
      stack[depth++][n] = '\0';
    }
    s = t;
  }
  return depth == 0;
}

/* The value of attribute name in the tag starting at tag. */
static double attr(const char *tag, const char *name) {
  char key[40];
  const char *end = strchr(tag, '>'), *a;
  snprintf(key, sizeof key, " %s=\"", name);
  a = strstr(tag, key);
  if (!a || a > end) return -1e9;
  return strtod(a + strlen(key), NULL);
}

/* One chart panel as read back from the SVG. */
typedef struct svg_panel {
  double x, y, w, h; /* the plot rectangle */
  int npts, nyt, nxt, circles;
  double *px, *py;
  char name[64], ylab[24][48], xlab[24][48];
  double yt[24], xt[24]; /* each y tick's y and x tick's x */
} svg_panel;

static void text_of(const char *tag, char *out, size_t n) {
  const char *s = strchr(tag, '>') + 1, *e = strstr(s, "</");
  size_t len = (size_t)(e - s) < n - 1 ? (size_t)(e - s) : n - 1;
  memcpy(out, s, len);
  out[len] = '\0';
}

/* Reads the panels of svg into p[0..max); returns their number. */
static int svg_panels(const char *svg, svg_panel *p, int max) {
  const char *s = strstr(svg, "<g class=\"panel\">"), *e, *t;
  int k = 0;
  while (s && k < max) {
    svg_panel *q = &p[k++];
    memset(q, 0, sizeof *q);
    e = strstr(s + 1, "<g class=\"panel\">");
    if (!e) e = s + strlen(s);
    if ((t = strstr(s, "<text class=\"name\"")) && t < e) text_of(t, q->name, sizeof q->name);
    if ((t = strstr(s, "<rect class=\"plot\"")) && t < e) {
      q->x = attr(t, "x"), q->y = attr(t, "y"), q->w = attr(t, "width"), q->h = attr(t, "height");
    }
    for (t = s; (t = strstr(t, "<text class=\"ytick\"")) && t < e && q->nyt < 24; t++) {
      q->yt[q->nyt] = attr(t, "y");
      text_of(t, q->ylab[q->nyt++], 48);
    }
    for (t = s; (t = strstr(t, "<text class=\"xtick\"")) && t < e && q->nxt < 24; t++) {
      q->xt[q->nxt] = attr(t, "x");
      text_of(t, q->xlab[q->nxt++], 48);
    }
    for (t = s; (t = strstr(t, "<circle")) && t < e; t++) q->circles++;
    if ((t = strstr(s, "<polyline")) && t < e) {
      const char *pts = strstr(t, "points=\"") + 8, *c;
      int cap = 1;
      char *next;
      for (c = pts; *c != '"'; c++) cap += *c == ',';
      q->px = (double *)malloc(sizeof(double) * (size_t)cap);
      q->py = (double *)malloc(sizeof(double) * (size_t)cap);
      for (c = pts; *c != '"' && q->npts < cap; c = next) {
        q->px[q->npts] = strtod(c, &next);
        if (*next != ',') break;
        q->py[q->npts++] = strtod(next + 1, &next);
      }
    }
    s = *e ? e : NULL;
  }
  return k;
}

static void svg_panels_free(svg_panel *p, int n) {
  int k;
  for (k = 0; k < n; k++) free(p[k].px), free(p[k].py);
}

/* A compact label read back: 1.5M -> 1.5e6. */
static double label_value(const char *s) {
  char *e;
  double v = strtod(s, &e);
  if (*e == 'k') v *= 1e3;
  if (*e == 'M') v *= 1e6;
  if (*e == 'G') v *= 1e9;
  if (*e == 'T') v *= 1e12;
  return v;
}

/* Pixel of v on an axis [lo, hi] drawn from a to a + len (halves: the span may overflow). */
static double to_px(double v, double lo, double hi, double a, double len) {
  return a + (v * 0.5 - lo * 0.5) / (hi * 0.5 - lo * 0.5) * len;
}

/* Plots csv (x, y_columns), checks the result and well-formedness, reads the panels. */
static int plot(const char *csv, const char *x, const char *y, const char *title, svg_panel *p,
                int max, char **svg_out) {
  mrl_result r;
  char *svg;
  int n;
  write_file(csv_path, csv);
  remove(svg_path);
  r = mrl_plot_csv_svg(csv_path, svg_path, x, y, title);
  MRL_CHECK(r == MRL_OK, "plot %s vs %s: %s", y, x, mrl_result_string(r));
  svg = read_text(svg_path);
  MRL_CHECK(svg != NULL, "no SVG written");
  if (!svg) return 0;
  MRL_CHECK(svg_balanced(svg), "SVG not well-formed:\n%s", svg);
  n = svg_panels(svg, p, max);
  if (svg_out)
    *svg_out = svg;
  else
    free(svg);
  return n;
}

static const char basic_csv[] = "algo,env,iteration,mean_return,env_steps,success_rate\n"
                                "ppo,TMaze,1,0.5,1000,0.1\n"
                                "ppo,TMaze,2,nan,2000,0.2\n"
                                "ppo,TMaze,3,1.5,3000,\n"
                                "ppo,TMaze,4,-0.5,4000,abc\n"
                                "ppo,TMaze,5,2.5,5000,0.9\n"
                                "ppo,TMaze,6,,6000,0.4\n"
                                "ppo,TMaze,7,1.0,,0.5\n"
                                "\n"
                                "ppo,TMaze,8,0.75,8e3,-nan\n";

static void test_basic(void) {
  static const double rx[2][5] = {{1000, 3000, 4000, 5000, 8000}, {1000, 2000, 5000, 6000}};
  static const double ry[2][5] = {{0.5, 1.5, -0.5, 2.5, 0.75}, {0.1, 0.2, 0.9, 0.4}};
  static const int want_n[2] = {5, 4};
  static const char *names[2] = {"mean_return", "success_rate"};
  static const double lo[2] = {-0.5, 0.1}, hi[2] = {2.5, 0.9};
  static const char *yl[7] = {"-0.5", "0", "0.5", "1", "1.5", "2", "2.5"};
  static const char *xl[4] = {"2k", "4k", "6k", "8k"};
  svg_panel p[3];
  char *svg = NULL;
  int n =
      plot(basic_csv, "env_steps", "mean_return, success_rate", "PPO & LSTM <TMaze>", p, 3, &svg);
  int k, i;
  MRL_CHECK(n == 2, "panels: got %d, want 2", n);
  MRL_CHECK(svg && strstr(svg, ">PPO &amp; LSTM &lt;TMaze&gt;</text>"), "escaped title missing");
  MRL_CHECK(svg && strstr(svg, "<text class=\"xname\"") && strstr(svg, ">env_steps</text>"),
            "x column name missing");
  for (k = 0; k < n && k < 2; k++) {
    MRL_CHECK(strcmp(p[k].name, names[k]) == 0, "panel %d named '%s'", k, p[k].name);
    MRL_CHECK(p[k].w > 100 && p[k].h > 100, "panel %d plot rectangle %gx%g", k, p[k].w, p[k].h);
    MRL_CHECK(p[k].npts == want_n[k], "panel %d: %d points, want %d (one per valid row)", k,
              p[k].npts, want_n[k]);
    for (i = 0; i < p[k].npts && i < want_n[k]; i++) {
      MRL_CHECK_NEAR(p[k].px[i], to_px(rx[k][i], 1000, 8000, p[k].x, p[k].w), 0.006, 0, "x pixel");
      MRL_CHECK_NEAR(p[k].py[i], to_px(ry[k][i], lo[k], hi[k], p[k].y + p[k].h, -p[k].h), 0.006, 0,
                     "y pixel");
      if (i > 0) MRL_CHECK(p[k].px[i] > p[k].px[i - 1], "x not increasing at point %d", i);
      if (ry[k][i] == lo[k]) MRL_CHECK(p[k].py[i] == p[k].y + p[k].h, "lowest row not at bottom");
      if (ry[k][i] == hi[k]) MRL_CHECK(p[k].py[i] == p[k].y, "highest row not at top");
    }
    MRL_CHECK(p[k].circles == 0, "no dots on a line");
  }
  MRL_CHECK(n > 0 && p[0].px[0] == p[0].x, "first x on the left edge");
  MRL_CHECK(n > 0 && p[0].px[4] == p[0].x + p[0].w, "last x on the right edge");
  MRL_CHECK(n > 0 && p[0].nyt == 7, "mean_return: %d y ticks, want 7", p[0].nyt);
  for (i = 0; n > 0 && i < p[0].nyt && i < 7; i++)
    MRL_CHECK(strcmp(p[0].ylab[i], yl[i]) == 0, "y tick %d '%s', want '%s'", i, p[0].ylab[i],
              yl[i]);
  MRL_CHECK(n > 0 && p[0].nxt == 4, "%d x ticks, want 4", p[0].nxt);
  for (i = 0; n > 0 && i < p[0].nxt && i < 4; i++)
    MRL_CHECK(strcmp(p[0].xlab[i], xl[i]) == 0, "x tick %d '%s', want '%s'", i, p[0].xlab[i],
              xl[i]);
  svg_panels_free(p, n);
  free(svg);
}

/* Tick labels for a few ranges, each at the pixel of its value. y holds n values plotted against
 * the row index; want lists the y labels, NULL-terminated. */
static void check_ticks(const double *y, int n, const char *const *want) {
  char *csv = (char *)malloc(64 * (size_t)n + 32), *s = csv;
  svg_panel p[1];
  double lo = y[0], hi = y[0];
  int i, k;
  s += sprintf(s, "i,y\n");
  for (i = 0; i < n; i++) {
    s += sprintf(s, "%d,%.17g\n", i, y[i]);
    lo = y[i] < lo ? y[i] : lo;
    hi = y[i] > hi ? y[i] : hi;
  }
  k = plot(csv, "i", "y", NULL, p, 1, NULL);
  free(csv);
  if (k != 1) return;
  for (k = 0; want[k]; k++) {
  }
  MRL_CHECK(p[0].nyt == k, "range [%g, %g]: %d ticks, want %d", lo, hi, p[0].nyt, k);
  for (i = 0; i < p[0].nyt && i < k; i++) {
    MRL_CHECK(strcmp(p[0].ylab[i], want[i]) == 0, "range [%g, %g]: tick %d '%s', want '%s'", lo, hi,
              i, p[0].ylab[i], want[i]);
    MRL_CHECK_NEAR(p[0].yt[i], to_px(label_value(want[i]), lo, hi, p[0].y + p[0].h, -p[0].h), 0.006,
                   0, "tick position");
  }
  for (i = 0; i < p[0].npts; i++) {
    MRL_CHECK(p[0].py[i] >= p[0].y && p[0].py[i] <= p[0].y + p[0].h, "point %d off the plot", i);
    if (y[i] == lo) MRL_CHECK(p[0].py[i] == p[0].y + p[0].h, "lowest row not at bottom");
    if (y[i] == hi) MRL_CHECK(p[0].py[i] == p[0].y, "highest row not at top");
  }
  MRL_CHECK(p[0].npts == n, "range [%g, %g]: %d points, want %d", lo, hi, p[0].npts, n);
  svg_panels_free(p, 1);
}

static void test_ticks(void) {
  static const double r1[] = {0, 1.5e6, 7e5}, r2[] = {0, 0.3, 1}, r3[] = {-0.3, 0},
                      r4[] = {250000, 0, 1}, r5[] = {1e-5, 5e-5, 3.3e-5}, r6[] = {3e9, 1.2e10},
                      r7[] = {1e300, 3e300}, r8[] = {-1e308, 1e308, 0.5}, r9[] = {2e-300, 1e-300},
                      r10[] = {7, -3.5};
  static const char *const w1[] = {"0", "500k", "1M", "1.5M", NULL};
  static const char *const w2[] = {"0", "0.2", "0.4", "0.6", "0.8", "1", NULL};
  static const char *const w3[] = {"-0.3", "-0.25", "-0.2", "-0.15", "-0.1", "-0.05", "0", NULL};
  static const char *const w4[] = {"0", "50k", "100k", "150k", "200k", "250k", NULL};
  static const char *const w5[] = {"1e-5", "2e-5", "3e-5", "4e-5", "5e-5", NULL};
  static const char *const w6[] = {"4G", "6G", "8G", "10G", "12G", NULL};
  static const char *const w7[] = {"1e300", "1.5e300", "2e300", "2.5e300", "3e300", NULL};
  static const char *const w8[] = {"-1e308", "-5e307", "0", "5e307", "1e308", NULL};
  static const char *const w9[] = {"1e-300",   "1.2e-300", "1.4e-300", "1.6e-300",
                                   "1.8e-300", "2e-300",   NULL};
  static const char *const w10[] = {"-2", "0", "2", "4", "6", NULL};
  check_ticks(r1, 3, w1);
  check_ticks(r2, 3, w2);
  check_ticks(r3, 2, w3);
  check_ticks(r4, 3, w4);
  check_ticks(r5, 3, w5);
  check_ticks(r6, 2, w6);
  check_ticks(r7, 2, w7);
  check_ticks(r8, 3, w8);
  check_ticks(r9, 2, w9);
  check_ticks(r10, 2, w10);
}

/* A single row and a constant column: the point or line sits mid-plot; a lone point is a dot. */
static void test_flat(void) {
  static const char *const x1[] = {"4.6", "4.8", "5", "5.2", "5.4", NULL};
  svg_panel p[2];
  char csv[512], *s = csv;
  int n = plot("step,ret\n5,3\n", "step", "ret", "one row", p, 2, NULL), i;
  MRL_CHECK(n == 1 && p[0].npts == 1, "one row: one point");
  if (n == 1 && p[0].npts == 1) {
    MRL_CHECK_NEAR(p[0].px[0], p[0].x + p[0].w / 2, 0.006, 0, "lone point x");
    MRL_CHECK_NEAR(p[0].py[0], p[0].y + p[0].h / 2, 0.006, 0, "lone point y");
    MRL_CHECK(p[0].circles == 1, "lone point: %d dots, want 1", p[0].circles);
    MRL_CHECK(p[0].nxt == 5, "x ticks around 5: %d, want 5", p[0].nxt);
    for (i = 0; i < p[0].nxt && i < 5; i++)
      MRL_CHECK(strcmp(p[0].xlab[i], x1[i]) == 0, "x tick '%s', want '%s'", p[0].xlab[i], x1[i]);
  }
  if (n) svg_panels_free(p, n);
  s += sprintf(s, "t,a,b\n");
  for (i = 0; i < 10; i++) s += sprintf(s, "%d,2.5,0\n", i * 100);
  n = plot(csv, "t", "a,b", NULL, p, 2, NULL);
  MRL_CHECK(n == 2 && p[0].npts == 10 && p[1].npts == 10, "constant columns: 10 points each");
  for (i = 0; n == 2 && i < p[0].npts; i++) {
    MRL_CHECK_NEAR(p[0].py[i], p[0].y + p[0].h / 2, 0.006, 0, "constant 2.5 mid-plot");
    MRL_CHECK_NEAR(p[1].py[i], p[1].y + p[1].h / 2, 0.006, 0, "constant 0 mid-plot");
  }
  MRL_CHECK(n == 2 && p[1].nyt == 5 && strcmp(p[1].ylab[0], "-1") == 0,
            "constant 0: ticks -1 .. 1");
  if (n) svg_panels_free(p, n);
}

/* CRLF lines, a byte-order mark, quoted names and a quoted cell holding commas; a panel whose
 * column has no number says so instead of drawing. */
static void test_csv_forms(void) {
  svg_panel p[2];
  char *svg = NULL;
  int n = plot("\xEF\xBB\xBF\"env_steps\", \"mean return\",env,empty\r\n"
               "10,1.5,\"Grid,Room,3\",\r\n"
               "20,2.5,plain,nan\r\n"
               "30 , -1 ,\"a\"\"b\",\r\n",
               "env_steps", "mean return,empty", "r&d", p, 2, &svg);
  MRL_CHECK(n == 2 && p[0].npts == 3, "quoted/CRLF csv: 3 points");
  MRL_CHECK(n == 2 && strcmp(p[0].name, "mean return") == 0, "name with a space");
  if (n == 2 && p[0].npts == 3) {
    MRL_CHECK(p[0].py[2] == p[0].y + p[0].h && p[0].py[1] == p[0].y, "min/max rows");
    MRL_CHECK(p[0].px[2] == p[0].x + p[0].w, "last row at the right edge");
  }
  MRL_CHECK(n == 2 && p[1].npts == 0 && svg && strstr(svg, ">no data</text>"), "empty column");
  MRL_CHECK(svg && strstr(svg, ">r&amp;d</text>"), "escaped title");
  svg_panels_free(p, n);
  free(svg);
  /* x need not be sorted (plotting against another column): the range is the true min..max */
  n = plot("x,y\n2,0\n-1,1\n3,2\n0,3\n", "x", "y", NULL, p, 1, NULL);
  MRL_CHECK(n == 1 && p[0].npts == 4, "unsorted x: 4 points");
  if (n == 1 && p[0].npts == 4) {
    MRL_CHECK_NEAR(p[0].px[0], p[0].x + p[0].w * 0.75, 0.006, 0, "unsorted x, row 1");
    MRL_CHECK(p[0].px[1] == p[0].x && p[0].px[2] == p[0].x + p[0].w, "unsorted x: ends");
    MRL_CHECK_NEAR(p[0].px[3], p[0].x + p[0].w * 0.25, 0.006, 0, "unsorted x, row 4");
  }
  svg_panels_free(p, n);
}

static void test_errors(void) {
  FILE *f;
  mrl_result r;
  write_file(csv_path, basic_csv);
  remove(svg_path);
  r = mrl_plot_csv_svg(csv_path, svg_path, "env_steps", "mean_return,no_such", "t");
  MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT, "absent y column: %s", mrl_result_string(r));
  MRL_CHECK((f = fopen(svg_path, "rb")) == NULL, "no SVG written for an absent column");
  if (f) fclose(f);
  r = mrl_plot_csv_svg(csv_path, svg_path, "steps", "mean_return", "t");
  MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT, "absent x column: %s", mrl_result_string(r));
  r = mrl_plot_csv_svg(csv_path, svg_path, "env_steps", "mean_return,,success_rate", "t");
  MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT, "empty column name: %s", mrl_result_string(r));
  r = mrl_plot_csv_svg(csv_path, svg_path, "env_steps", NULL, "t");
  MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT, "NULL columns: %s", mrl_result_string(r));
  r = mrl_plot_csv_svg("/nonexistent/memrl.csv", svg_path, "env_steps", "mean_return", "t");
  MRL_CHECK(r == MRL_ERR_IO, "unreadable CSV: %s", mrl_result_string(r));
  r = mrl_plot_csv_svg(csv_path, "/nonexistent/dir/plot.svg", "env_steps", "mean_return", "t");
  MRL_CHECK(r == MRL_ERR_IO, "unwritable SVG: %s", mrl_result_string(r));
  write_file(csv_path, "");
  r = mrl_plot_csv_svg(csv_path, svg_path, "env_steps", "mean_return", "t");
  MRL_CHECK(r == MRL_ERR_INVALID_ARGUMENT, "empty CSV: %s", mrl_result_string(r));
}

/* 1e5 rows with one spike up and one down: the polyline stays small, yet near every row's pixel
 * it reaches at least as low and as high as that row (the drawn envelope is exact). */
static void test_long(void) {
  enum { N = 100000 };
  char *csv = (char *)malloc((size_t)N * 48 + 32), *s = csv;
  double *y = (double *)malloc(sizeof(double) * N), lo = 0, hi = 0;
  svg_panel p[1];
  int i, j = 0, n, covered = 0;
  s += sprintf(s, "env_steps,mean_return\n");
  for (i = 0; i < N; i++) {
    y[i] = sin(i * 0.003) + 0.25 * sin(i * 0.7) + (i == 51234 ? 4 : 0) - (i == 77777 ? 4 : 0);
    s += sprintf(s, "%d,%.17g\n", i * 8, y[i]);
    lo = i == 0 || y[i] < lo ? y[i] : lo;
    hi = i == 0 || y[i] > hi ? y[i] : hi;
  }
  n = plot(csv, "env_steps", "mean_return", "long", p, 1, NULL);
  MRL_CHECK(n == 1 && p[0].npts >= 700 && p[0].npts <= 4 * 701, "long log: %d points",
            n ? p[0].npts : 0);
  for (i = 1; n == 1 && i < p[0].npts; i++)
    if (p[0].px[i] < p[0].px[i - 1]) break;
  MRL_CHECK(n == 1 && i == p[0].npts, "long log: x decreases at point %d", i);
  for (i = 0; n == 1 && i < N; i++) {
    double x = to_px(i * 8.0, 0, (N - 1) * 8.0, p[0].x, p[0].w);
    double v = to_px(y[i], lo, hi, p[0].y + p[0].h, -p[0].h), below = -1e9, above = 1e9;
    int k;
    while (j < p[0].npts && p[0].px[j] < x - 1.01) j++;
    for (k = j; k < p[0].npts && p[0].px[k] <= x + 1.01; k++) {
      below = p[0].py[k] > below ? p[0].py[k] : below;
      above = p[0].py[k] < above ? p[0].py[k] : above;
    }
    covered += below >= v - 0.006 && above <= v + 0.006;
  }
  MRL_CHECK(covered == N, "long log: %d of %d rows inside the drawn envelope", covered, N);
  MRL_CHECK(n == 1 && p[0].px[0] == p[0].x && p[0].px[p[0].npts - 1] == p[0].x + p[0].w,
            "long log: spans the plot's width");
  for (i = 0, j = 0; n == 1 && i < p[0].npts; i++)
    j |= (p[0].py[i] == p[0].y) | (p[0].py[i] == p[0].y + p[0].h) << 1;
  MRL_CHECK(j == 3, "long log: the spikes reach the top and the bottom");
  if (n) svg_panels_free(p, n);
  free(csv);
  free(y);
}

/* Under a decimal-comma locale the output is byte-identical (checked when such a locale exists). */
static void test_locale(void) {
  static const char *names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "de_DE", "German"};
  char *c_svg, *l_svg;
  mrl_result r;
  int i;
  write_file(csv_path, basic_csv);
  mrl_plot_csv_svg(csv_path, svg_path, "env_steps", "mean_return,success_rate", "x");
  c_svg = read_text(svg_path);
  for (i = 0; i < 5 && !setlocale(LC_ALL, names[i]); i++) {
  }
  if (i == 5 || localeconv()->decimal_point[0] != ',') {
    printf("test_shared: no decimal-comma locale installed, locale check skipped\n");
    setlocale(LC_ALL, "C");
    free(c_svg);
    return;
  }
  r = mrl_plot_csv_svg(csv_path, svg_path, "env_steps", "mean_return,success_rate", "x");
  l_svg = read_text(svg_path);
  setlocale(LC_ALL, "C");
  MRL_CHECK(r == MRL_OK && c_svg && l_svg && strcmp(c_svg, l_svg) == 0,
            "output under %s differs from the C locale's", names[i]);
  free(c_svg);
  free(l_svg);
}

#ifdef MRL_THREADS
typedef struct count_job {
  mrl_mutex *m;
  long *counter;
} count_job;

/* Read, pause, write: without the mutex, threads would overwrite each other's increments. */
static void count_fn(void *arg) {
  count_job *job = (count_job *)arg;
  volatile long *counter = job->counter;
  volatile int spin;
  int i;
  for (i = 0; i < 100000; i++) {
    long v;
    mrl_mutex_lock(job->m);
    v = *counter;
    for (spin = 0; spin < 20; spin++) {
    }
    *counter = v + 1;
    mrl_mutex_unlock(job->m);
  }
}

/* A bounded queue: 2 producers push (id, 1..N), 2 consumers pop until all 2N are taken. */
enum { QCAP = 4, QN = 20000 };
typedef struct queue {
  mrl_mutex m;
  mrl_cond not_empty, not_full;
  long items[QCAP];
  int head, count, popped;
} queue;
typedef struct queue_job {
  queue *q;
  int id;
  long long sum;
  int got, in_order;
} queue_job;

static void produce(void *arg) {
  queue_job *job = (queue_job *)arg;
  queue *q = job->q;
  long i;
  for (i = 1; i <= QN; i++) {
    mrl_mutex_lock(&q->m);
    while (q->count == QCAP) mrl_cond_wait(&q->not_full, &q->m);
    q->items[(q->head + q->count++) % QCAP] = job->id * 1000000L + i;
    mrl_cond_signal(&q->not_empty);
    mrl_mutex_unlock(&q->m);
  }
}

static void consume(void *arg) {
  queue_job *job = (queue_job *)arg;
  queue *q = job->q;
  long last[2] = {0, 0}, item;
  job->in_order = 1;
  for (;;) {
    mrl_mutex_lock(&q->m);
    while (q->count == 0 && q->popped < 2 * QN) mrl_cond_wait(&q->not_empty, &q->m);
    if (q->popped == 2 * QN) {
      mrl_cond_broadcast(&q->not_empty); /* wake the other consumer to leave too */
      mrl_mutex_unlock(&q->m);
      return;
    }
    item = q->items[q->head];
    q->head = (q->head + 1) % QCAP, q->count--, q->popped++;
    mrl_cond_signal(&q->not_full);
    mrl_mutex_unlock(&q->m);
    job->sum += item % 1000000L, job->got++;
    if (item % 1000000L <= last[item / 1000000L]) job->in_order = 0; /* FIFO per producer */
    last[item / 1000000L] = item % 1000000L;
  }
}

static void test_threads(void) {
  mrl_thread t[4];
  mrl_mutex m;
  count_job job;
  queue q;
  queue_job jobs[4];
  long counter = 0;
  int i, started = 0;
  MRL_CHECK(mrl_mutex_init(&m) == MRL_OK, "mutex init");
  job.m = &m, job.counter = &counter;
  for (i = 0; i < 4; i++) started += mrl_thread_start(&t[i], count_fn, &job) == MRL_OK;
  for (i = 0; i < 4; i++) MRL_CHECK(mrl_thread_join(&t[i]) == MRL_OK, "join counter thread %d", i);
  MRL_CHECK(started == 4 && counter == 400000, "counter: %ld, want 400000", counter);
  MRL_CHECK(mrl_thread_join(&t[0]) == MRL_ERR_INVALID_ARGUMENT, "second join rejected");
  mrl_mutex_free(&m);
  mrl_mutex_free(&m); /* safe twice */

  memset(&q, 0, sizeof q);
  MRL_CHECK(mrl_mutex_init(&q.m) == MRL_OK && mrl_cond_init(&q.not_empty) == MRL_OK &&
                mrl_cond_init(&q.not_full) == MRL_OK,
            "queue init");
  memset(jobs, 0, sizeof jobs);
  for (i = 0; i < 4; i++) {
    jobs[i].q = &q, jobs[i].id = i % 2;
    MRL_CHECK(mrl_thread_start(&t[i], i < 2 ? produce : consume, &jobs[i]) == MRL_OK, "start %d",
              i);
  }
  for (i = 0; i < 4; i++) MRL_CHECK(mrl_thread_join(&t[i]) == MRL_OK, "join queue thread %d", i);
  MRL_CHECK(jobs[2].got + jobs[3].got == 2 * QN, "consumed %d, want %d", jobs[2].got + jobs[3].got,
            2 * QN);
  MRL_CHECK(jobs[2].sum + jobs[3].sum == 2LL * QN * (QN + 1) / 2, "consumed sum %lld",
            jobs[2].sum + jobs[3].sum);
  MRL_CHECK(jobs[2].in_order && jobs[3].in_order, "items of one producer out of order");
  MRL_CHECK(q.count == 0 && q.popped == 2 * QN, "queue left %d items", q.count);
  mrl_cond_free(&q.not_empty);
  mrl_cond_free(&q.not_full);
  mrl_mutex_free(&q.m);
}
#endif

/* Epsilon-greedy: greedy rows take the lowest argmax; exploring rows are
 * uniform; the exploring fraction is epsilon. */
static void test_epsilon_greedy(void) {
  const float q[2 * 4] = {1, 3, 3, 0, /* tie: action 1 */ -1, -2, -0.5f, -3};
  float a[2], many[4 * 1000];
  float *qs = (float *)calloc(4 * 1000, sizeof(float));
  int i, count[4] = {0}, non_greedy = 0;
  mrl_rng rng = mrl_rng_make(3);
  mrl_epsilon_greedy(q, 2, 4, 1.0f, NULL, a); /* rng NULL: greedy whatever epsilon */
  MRL_CHECK(a[0] == 1.0f && a[1] == 2.0f, "epsilon_greedy: greedy actions %g %g, want 1 2", a[0],
            a[1]);
  for (i = 0; i < 1000; i++) qs[i * 4 + 2] = 1.0f; /* greedy action 2 */
  mrl_epsilon_greedy(qs, 1000, 4, 1.0f, &rng, many);
  for (i = 0; i < 1000; i++) count[(int)many[i]]++;
  MRL_CHECK(count[0] > 200 && count[1] > 200 && count[2] > 200 && count[3] > 200,
            "epsilon_greedy(1): not uniform (%d %d %d %d)", count[0], count[1], count[2], count[3]);
  mrl_epsilon_greedy(qs, 1000, 4, 0.4f, &rng, many);
  for (i = 0; i < 1000; i++) non_greedy += many[i] != 2.0f;
  /* expected 0.4 * 3/4 = 300 of 1000; sd ~14 */
  MRL_CHECK(non_greedy > 240 && non_greedy < 360, "epsilon_greedy(0.4): %d of 1000 non-greedy",
            non_greedy);
  mrl_epsilon_greedy(qs, 1000, 4, 0.0f, &rng, many);
  for (i = 0, non_greedy = 0; i < 1000; i++) non_greedy += many[i] != 2.0f;
  MRL_CHECK(non_greedy == 0, "epsilon_greedy(0): %d non-greedy actions", non_greedy);
  free(qs);
}

/* Q-learning targets: plain, double Q, terminal rows and value rescaling by hand. */
static void test_q_targets(void) {
  const float reward[3] = {1.0f, 0.5f, -2.0f}, discount[3] = {0.9f, 0.0f, 0.81f};
  const float online[3 * 3] = {0, 5, 1, 2, 0, 0, 0, 0, 9};
  const float target[3 * 3] = {4, 2, 3, 7, 1, 1, 10, 20, 30};
  float out[3];
  double h, x;
  mrl_q_targets(reward, discount, NULL, target, 3, 3, 0.0f, out);
  MRL_CHECK_NEAR(out[0], 1.0 + 0.9 * 4, 1e-6, 0, "q_targets max: row 0");
  MRL_CHECK_NEAR(out[1], 0.5, 1e-6, 0, "q_targets max: terminal row bootstraps from nothing");
  MRL_CHECK_NEAR(out[2], -2.0 + 0.81 * 30, 1e-5, 0, "q_targets max: row 2");
  mrl_q_targets(reward, discount, online, target, 3, 3, 0.0f, out);
  MRL_CHECK_NEAR(out[0], 1.0 + 0.9 * 2, 1e-6, 0, "q_targets double: online argmax 1 -> target 2");
  MRL_CHECK_NEAR(out[2], -2.0 + 0.81 * 30, 1e-5, 0, "q_targets double: row 2");
  mrl_q_targets(reward, discount, online, target, 3, 3, 1e-3f, out);
  /* h(r + d h^-1(q)) written out: h^-1(2) solved from h(y) = 2 */
  x = 2.0;
  {
    double root = (sqrt(1.0 + 4e-3 * (x + 1.0 + 1e-3)) - 1.0) / 2e-3;
    x = 1.0 + 0.9 * (root * root - 1.0);
  }
  h = sqrt(x + 1.0) - 1.0 + 1e-3 * x;
  MRL_CHECK_NEAR(out[0], h, 1e-5, 1e-5, "q_targets rescaled: row 0");
  MRL_CHECK_NEAR(out[1], sqrt(1.5) - 1.0 + 5e-4, 1e-6, 0, "q_targets rescaled: terminal row");
}

int main(void) {
  snprintf(csv_path, sizeof csv_path, "/tmp/memrl_test_shared_%ld.csv", (long)test_getpid());
  snprintf(svg_path, sizeof svg_path, "/tmp/memrl_test_shared_%ld.svg", (long)test_getpid());
  test_basic();
  test_ticks();
  test_flat();
  test_csv_forms();
  test_errors();
  test_long();
  test_locale();
  test_epsilon_greedy();
  test_q_targets();
#ifdef MRL_THREADS
  test_threads();
#endif
  remove(csv_path);
  remove(svg_path);
  return mrl_test_summary("test_shared");
}
