/* The monthly report's pure parts: the HTML escaper (base/html.c), the ranking and the red and
 * black lists for any scores (sinks/monthly_query.c), the month request, and the HTML writer
 * (cli/report_html.c) on hostile text. The figures themselves: tests/integration/
 * test_report_monthly.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/html.h"
#include "cli/report_doc.h"
#include "sinks/daily_store.h"
#include "sinks/monthly_query.h"

/* hw_html_put of s, as a new string (free). */
static char *escaped(const char *s) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  assert_int_equal(hw_html_put(f, s), 0);
  assert_int_equal(fclose(f), 0);
  return buf;
}

static void expect_escape(const char *in, const char *want) {
  char *got = escaped(in);
  assert_string_equal(got, want);
  free(got);
}

static void test_html_escape(void **state) {
  (void)state;
  expect_escape("", "");
  expect_escape(NULL, "");
  expect_escape("苏A12345", "苏A12345");
  expect_escape("<script>alert(\"x\")</script>", "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;");
  expect_escape("a&b 'c'", "a&amp;b &#39;c&#39;");
  expect_escape("&amp;", "&amp;amp;"); /* escaped again, never taken as already escaped */
  expect_escape("a\tb\nc", "a\tb\nc");
  /* Control characters and ill-formed UTF-8 become U+FFFD: the page stays valid UTF-8. */
  expect_escape("a\x01" "b\x7f", "a\xef\xbf\xbd" "b\xef\xbf\xbd");
  expect_escape("\xe4\xba", "\xef\xbf\xbd\xef\xbf\xbd");
  expect_escape("\xc0\xaf<", "\xef\xbf\xbd\xef\xbf\xbd&lt;");
}

#define ITEM(g, sc, v) ((hw_rank_item){g, sc, v})

static void test_rank_order_nulls_ties(void **state) {
  (void)state;
  hw_rank_item it[] = {ITEM("320500", true, 80), ITEM("320100", false, 0),
                       ITEM("320300", true, 92.5), ITEM("320200", true, 80),
                       ITEM("320400", true, -3), ITEM("320000", false, 0)};
  size_t order[6];
  unsigned rank[6];
  hw_monthly_rank(it, 6, order, rank);
  /* 92.5 first; the tie at 80 in group order; -3; then the unscored in group order. */
  const size_t want[6] = {2, 3, 0, 4, 5, 1};
  for (int k = 0; k < 6; k++)
    assert_int_equal(order[k], want[k]);
  assert_int_equal(rank[2], 1);
  assert_int_equal(rank[3], 2); /* equal scores share the rank */
  assert_int_equal(rank[0], 2);
  assert_int_equal(rank[4], 4); /* competition ranking: 1, 2, 2, 4 */
  assert_int_equal(rank[5], 0);
  assert_int_equal(rank[1], 0);
  size_t red[5], black[5], nred, nblack;
  hw_monthly_lists(it, order, 6, red, &nred, black, &nblack);
  /* Four scored groups: all on the red list, none left for the black list. */
  assert_int_equal(nred, 4);
  assert_int_equal(nblack, 0);
  for (int k = 0; k < 4; k++)
    assert_int_equal(red[k], want[k]);
}

static void test_lists_sizes(void **state) {
  (void)state;
  char names[12][8];
  hw_rank_item it[12];
  size_t order[12], red[5], black[5], nred, nblack;
  unsigned rank[12];
  /* Twelve groups scored 0, 10, ... 110 (item i scores 10 i). */
  for (int i = 0; i < 12; i++) {
    snprintf(names[i], sizeof names[i], "g%02d", i);
    it[i] = ITEM(names[i], true, 10.0 * i);
  }
  hw_monthly_rank(it, 12, order, rank);
  hw_monthly_lists(it, order, 12, red, &nred, black, &nblack);
  assert_int_equal(nred, 5);
  assert_int_equal(nblack, 5);
  for (int k = 0; k < 5; k++) {
    assert_int_equal(red[k], 11 - k);  /* best first */
    assert_int_equal(black[k], k);     /* worst first */
    assert_int_equal(rank[11 - k], k + 1);
  }
  /* Seven scored, five not: red 5, black the remaining 2 scored, worst first. */
  for (int i = 0; i < 5; i++)
    it[i].scored = false;
  hw_monthly_rank(it, 12, order, rank);
  hw_monthly_lists(it, order, 12, red, &nred, black, &nblack);
  assert_int_equal(nred, 5);
  assert_int_equal(nblack, 2);
  assert_int_equal(black[0], 5);
  assert_int_equal(black[1], 6);
  assert_int_equal(rank[0], 0);
  /* None scored (the KPI query before scores exist): both lists empty. */
  for (int i = 0; i < 12; i++)
    it[i].scored = false;
  hw_monthly_rank(it, 12, order, rank);
  hw_monthly_lists(it, order, 12, red, &nred, black, &nblack);
  assert_int_equal(nred, 0);
  assert_int_equal(nblack, 0);
  assert_int_equal(order[0], 0); /* group order */
  hw_monthly_rank(it, 0, order, rank);
  hw_monthly_lists(it, order, 0, red, &nred, black, &nblack);
  assert_int_equal(nred + nblack, 0);
}

static int32_t day(const char *s) {
  int32_t d;
  assert_int_equal(hw_daily_day_parse(s, &d), 0);
  return d;
}

static void test_month_request(void **state) {
  (void)state;
  hw_monthly_request r;
  char err[160];
  assert_int_equal(hw_monthly_request_parse(&r, "2026-11", NULL, 30, err, sizeof err), 0);
  assert_int_equal(r.cur.from_day, day("2026-11-01"));
  assert_int_equal(r.cur.to_day, day("2026-11-30"));
  assert_int_equal(r.prev.from_day, day("2026-10-01"));
  assert_int_equal(r.prev.to_day, day("2026-10-31"));
  assert_string_equal(r.prev_month, "2026-10");
  assert_int_equal(r.cur.by, HW_KPI_BY_REGION);
  assert_int_equal(r.cur.level, 4);
  assert_int_equal(r.overdue_days, 30);
  assert_int_equal(hw_monthly_request_parse(&r, "2026-01", "320000", 7, err, sizeof err), 0);
  assert_int_equal(r.prev.from_day, day("2025-12-01"));
  assert_int_equal(r.cur.to_day, day("2026-01-31"));
  assert_int_equal(r.cur.by, HW_KPI_BY_REGION);
  assert_int_equal(r.prev.by, HW_KPI_BY_REGION);
  assert_int_equal(r.cur.level, 4);
  assert_int_equal(hw_monthly_request_parse(&r, "2024-03", "320200", 7, err, sizeof err), 0);
  assert_int_equal(r.prev.to_day, day("2024-02-29"));
  assert_int_equal(r.cur.by, HW_KPI_BY_ENTERPRISE);
  assert_int_equal(hw_monthly_request_parse(&r, "2100-02", NULL, 7, err, sizeof err), -EINVAL);
  assert_int_equal(hw_monthly_request_parse(&r, "2026-11", "320202", 7, err, sizeof err), 0);
  assert_int_equal(r.cur.by, HW_KPI_BY_ENTERPRISE);
  const char *bad[] = {"2026-13", "2026-00", "2026-1", "2000-01", "abcd-ef", "2026-11x", "", "2026/11"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(hw_monthly_request_parse(&r, bad[i], NULL, 7, err, sizeof err), -EINVAL);
  assert_int_equal(hw_monthly_request_parse(&r, NULL, NULL, 7, err, sizeof err), -EINVAL);
  assert_int_equal(hw_monthly_request_parse(&r, "2026-11", "32", 7, err, sizeof err), -EINVAL);
  assert_int_equal(hw_monthly_request_parse(&r, "2026-11", "32020x", 7, err, sizeof err), -EINVAL);
}

static void test_html_writer_hostile(void **state) {
  (void)state;
  hw_rdoc d;
  hw_rdoc_init(&d, "T <b>", "S & s");
  const char *cols[3] = {"group", "v", "w\"x"};
  hw_rtable *t = hw_rdoc_table(&d, "t1", "<i>title</i>", 3, cols, NULL, 0x6);
  assert_non_null(t);
  t->chart = 1;
  t->chart_prev = 2;
  hw_rdoc_section(&d, t, "sec</h2><script>");
  hw_rdoc_note(&d, t, "note %s", "<style>");
  const char *r1[3] = {"<img src=x onerror=alert(1)>\"'&", "2", NULL};
  const char *r2[3] = {"苏A<script>", "0.5", "4"};
  hw_rdoc_row(&d, t, r1);
  hw_rdoc_row(&d, t, r2);
  assert_false(d.failed);
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  assert_int_equal(hw_report_html_write(f, &d), 0);
  assert_int_equal(fclose(f), 0);
  assert_null(strstr(buf, "<script"));
  assert_null(strstr(buf, "<img"));
  assert_null(strstr(buf, "<i>"));
  assert_null(strstr(buf, "<b>"));
  /* The page's own style element is the only one; the note's is text. */
  assert_null(strstr(strstr(buf, "</style>"), "<style>"));
  assert_non_null(strstr(buf, "<p class=\"note\">note &lt;style&gt;</p>"));
  assert_null(strstr(buf, "http:"));
  assert_null(strstr(buf, "https:"));
  assert_non_null(strstr(buf, "<tr data-group=\"&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;\">"));
  assert_non_null(strstr(buf, "<td data-col=\"w&quot;x\" class=\"null\"></td>"));
  assert_non_null(strstr(buf, "<td data-col=\"v\" class=\"n\">0.5</td>"));
  assert_non_null(strstr(buf, "<table id=\"t1\">"));
  /* The chart: the largest value (4, a previous-month bar) spans the bar area, 760 - 200 - 90
   * units; 2 spans half of it. */
  assert_non_null(strstr(buf, "<svg class=\"chart\" id=\"chart-t1\""));
  assert_non_null(strstr(buf, "width=\"470.0\" height=\"9\" fill=\"#b8c4d0\""));
  assert_non_null(strstr(buf, "width=\"235.0\" height=\"9\" fill=\"#2b6cb0\""));
  free(buf);
  hw_rdoc_free(&d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_html_escape),
      cmocka_unit_test(test_rank_order_nulls_ties),
      cmocka_unit_test(test_lists_sizes),
      cmocka_unit_test(test_month_request),
      cmocka_unit_test(test_html_writer_hostile),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
