/* The report document (report_doc.h) as one printable HTML page: no JavaScript, no outside
 * request of any kind (the style is inline, the charts are inline SVG, nothing links out), every
 * text from the database escaped (base/html.h). Tables carry stable hooks for machines: the
 * table's id, data-group on each row (its key column's text) and data-col on each cell, whose
 * text is the value exactly as the data held it (a null is an empty cell with class "null"). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/html.h"
#include "base/log.h"
#include "cli/report_doc.h"

static const char hw_report_css[] =
    "body{font-family:\"Noto Sans CJK SC\",\"WenQuanYi Micro Hei\",sans-serif;margin:2em;"
    "color:#111;font-size:13px}"
    "h1{font-size:22px;margin:0 0 .2em}h2{font-size:17px;border-bottom:2px solid #333;"
    "margin:1.6em 0 .6em}h3{font-size:14px;margin:1em 0 .3em}"
    ".sub,.note{color:#444}"
    "table{border-collapse:collapse;margin:.3em 0 1em}"
    "th,td{border:1px solid #999;padding:2px 6px;text-align:left;white-space:nowrap}"
    "th{background:#eee}td.n{text-align:right;font-variant-numeric:tabular-nums}"
    "td.null{background:#f6f6f6}"
    "svg{display:block;margin:.3em 0}"
    "section{break-inside:avoid}"
    "@page{size:A4 landscape;margin:12mm}"
    "@media print{body{margin:0}h2{break-after:avoid}}";

/* The chart's geometry, in SVG user units (pixels on screen). */
#define HW_CH_W 760.0
#define HW_CH_LABEL 200.0
#define HW_CH_VALUE 90.0

static double hw_num(const char *s, int *ok) {
  char *end;
  *ok = 0;
  if (!s || !*s)
    return 0;
  double v = strtod(s, &end);
  if (*end || !isfinite(v))
    return 0;
  *ok = 1;
  return v;
}

static int hw_html_chart(FILE *f, const hw_rtable *t) {
  int rc = 0, two = t->chart_prev >= 0, ok;
  double max = 0;
  for (int r = 0; r < t->nrows; r++) {
    double v = hw_num(hw_rdoc_cell(t, r, t->chart), &ok);
    if (ok && v > max)
      max = v;
    if (two && (v = hw_num(hw_rdoc_cell(t, r, t->chart_prev), &ok), ok) && v > max)
      max = v;
  }
  double rowh = two ? 24 : 18, top = 20, bar = HW_CH_W - HW_CH_LABEL - HW_CH_VALUE;
  double h = top + rowh * t->nrows + 4;
  fprintf(f, "<svg class=\"chart\" id=\"chart-%s\" width=\"%.0f\" height=\"%.0f\" "
             "viewBox=\"0 0 %.0f %.0f\" role=\"img\" aria-label=\"",
          t->id, HW_CH_W, h, HW_CH_W, h);
  rc |= hw_html_put(f, t->title);
  fputs("\" font-size=\"11\">", f);
  /* The legend. */
  fprintf(f, "<rect x=\"%.0f\" y=\"4\" width=\"10\" height=\"10\" fill=\"#2b6cb0\"/>"
             "<text x=\"%.0f\" y=\"13\">",
          HW_CH_LABEL, HW_CH_LABEL + 14);
  rc |= hw_html_put(f, t->heads[t->chart]);
  fputs("</text>", f);
  if (two) {
    fprintf(f, "<rect x=\"%.0f\" y=\"4\" width=\"10\" height=\"10\" fill=\"#b8c4d0\"/>"
               "<text x=\"%.0f\" y=\"13\">",
            HW_CH_LABEL + 140, HW_CH_LABEL + 154);
    rc |= hw_html_put(f, t->heads[t->chart_prev]);
    fputs("</text>", f);
  }
  for (int r = 0; r < t->nrows; r++) {
    double y = top + rowh * r;
    fprintf(f, "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">", HW_CH_LABEL - 6, y + 12);
    rc |= hw_html_put(f, hw_rdoc_cell(t, r, t->key_col));
    fputs("</text>", f);
    for (int k = 0; k < 1 + two; k++) {
      const char *s = hw_rdoc_cell(t, r, k ? t->chart_prev : t->chart);
      double v = hw_num(s, &ok), bh = two ? 9 : 14, by = y + 2 + k * 10;
      double w = ok && v > 0 && max > 0 ? bar * v / max : 0;
      fprintf(f, "<rect x=\"%.0f\" y=\"%.1f\" width=\"%.1f\" height=\"%.0f\" fill=\"%s\"/>",
              HW_CH_LABEL, by, w, bh, k ? "#b8c4d0" : "#2b6cb0");
      if (!k) {
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">", HW_CH_LABEL + w + 4, by + 10);
        rc |= hw_html_put(f, ok ? s : "—");
        fputs("</text>", f);
      }
    }
  }
  fputs("</svg>\n", f);
  return rc;
}

static int hw_html_table(FILE *f, const hw_rtable *t) {
  int rc = 0;
  if (t->section) {
    fputs("<h2>", f);
    rc |= hw_html_put(f, t->section);
    fputs("</h2>\n", f);
  }
  fprintf(f, "<section id=\"sec-%s\"><h3>", t->id);
  rc |= hw_html_put(f, t->title);
  fputs("</h3>\n", f);
  if (t->note) {
    fputs("<p class=\"note\">", f);
    rc |= hw_html_put(f, t->note);
    fputs("</p>\n", f);
  }
  if (t->chart >= 0 && t->nrows > 0)
    rc |= hw_html_chart(f, t);
  fprintf(f, "<table id=\"%s\"><thead><tr>", t->id);
  for (int c = 0; c < t->ncols; c++) {
    fputs("<th data-col=\"", f);
    rc |= hw_html_put(f, t->cols[c]);
    fputs("\">", f);
    rc |= hw_html_put(f, t->heads[c]);
    fputs("</th>", f);
  }
  fputs("</tr></thead>\n<tbody>\n", f);
  for (int r = 0; r < t->nrows; r++) {
    fputs("<tr data-group=\"", f);
    rc |= hw_html_put(f, hw_rdoc_cell(t, r, t->key_col));
    fputs("\">", f);
    for (int c = 0; c < t->ncols; c++) {
      const char *s = hw_rdoc_cell(t, r, c);
      fputs("<td data-col=\"", f);
      rc |= hw_html_put(f, t->cols[c]);
      fprintf(f, "\"%s>", !s ? " class=\"null\"" : t->numeric & (1u << c) ? " class=\"n\"" : "");
      rc |= hw_html_put(f, s);
      fputs("</td>", f);
    }
    fputs("</tr>\n", f);
  }
  fputs("</tbody></table></section>\n", f);
  return rc;
}

int hw_report_html_write(FILE *f, const hw_rdoc *d) {
  int rc = 0;
  fputs("<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width\">\n<title>",
        f);
  rc |= hw_html_put(f, d->title);
  fprintf(f, "</title>\n<style>%s</style>\n</head><body>\n<h1>", hw_report_css);
  rc |= hw_html_put(f, d->title);
  fputs("</h1>\n<p class=\"sub\">", f);
  rc |= hw_html_put(f, d->subtitle);
  fputs("</p>\n", f);
  for (size_t i = 0; i < d->n; i++)
    rc |= hw_html_table(f, d->t[i]);
  fputs("</body></html>\n", f);
  if (rc || ferror(f) || fflush(f)) {
    hw_error("report", d->title, "writing the HTML page failed");
    return -EIO;
  }
  return 0;
}
