/* `haulwatch report monthly` (issue 9, README "Monthly report") against `report kpi`: a small
 * fleet's daily rows and violations are written straight into PostgreSQL (no daemon: the daily
 * figures themselves are test_kpi_e2e's), the report is written as HTML and as XLSX, and every
 * KPI cell of the HTML must equal the `report kpi --format json` value of the same month (and of
 * the month before in the comparison column), for the province by city and for a city by
 * enterprise. The violation and rectification figures are computed by hand below.
 *
 * Registry (region scope 320000, Jiangsu):
 *   A 320102 heavy_truck (freight),        enterprise E1 (hostile text), plate 苏A10001
 *   B 320104 dangerous_goods,              enterprise E2, plate 苏A<img src=x> (hostile)
 *   C 320205 passenger_coach (passenger),  enterprise E3, plate 苏B10003
 *   D 320211 heavy_truck, E3, never reports; S 320102 scrapped; X 330100 (Zhejiang, outside).
 *   T 320206 converted_tractor (retired after 2025-12-31), 20 km on 2026-11-06: on the phase-out
 *   list; U 320206 heavy_truck declaring 2 axles and 25 t total (GB 1589-2016: 18 t): on the
 *   大吨小标 list. Both sections must equal `report phaseout|registry-audit --format json`.
 *
 * Violations (GMT+8), month 2026-11, cut-off 2026-12-01 00:00 (the month is over), overdue
 * after 10 days (--overdue-days 10):
 *   v1 A speeding           11-02 10:00, closed 11-09 10:00 (exactly 7 days: within 7 and 30)
 *   v2 A speeding           11-03 10:00, closed 11-20 10:00 (17 days: within 30 only)
 *   v3 B fatigue_continuous 11-05 08:00-13:00, open: 25 days 16 h at the cut-off: overdue
 *   v4 C speeding           11-25 09:00, notified: 5 days: not overdue
 *   v5 C fatigue_daily      11-10 12:00, notified 11-12, rectifying 11-20, closed 12-05 (after
 *                           the cut-off, so open then, in state rectifying): 20 days: overdue
 *   v6 A speeding           10-10 10:00, open: not this month's, but 51 days: on the 督办 list
 *   v7 A speeding           11-30 23:59:59, open: 0 days
 *   v8 S speeding 11-04 (scrapped), v9 X speeding 11-04 (outside), v10 B speeding 12-01 00:00
 *   (next month): none of them counts.
 * Opened 6 (v1 v2 v3 v4 v5 v7), closed 2, within 7 days 1, within 30 days 2, still open 4,
 * overdue 2 (v3 v5). 督办 list: v6 (51 days, open), v3 (25, open), v5 (20, rectifying).
 * By kind: speeding 4, fatigue_continuous 1, fatigue_daily 1. By city: 320100 4, 320200 2.
 * By industry: freight 3, dangerous_goods 1, passenger 2.
 * One KPI by hand as well: 320100 rate_qualified in November = (8 + 5 + 2) / (10 + 5 + 4) =
 * 0.7895, and 2026-10: 4 / 4 = 1.0000. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define WAIT_MS 60000 /* a bound against hanging, not a performance assertion */
#define E1 "<script>alert(\"x\")</script> & 物流'"
#define E1_SQL "<script>alert(\"x\")</script> & 物流''"
#define PLATE_B "苏A<img src=x>"

static char conninfo[512];
static PGconn *db;

#define q(...) hw_test_pg_scalarf(db, __VA_ARGS__)

static char *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  assert_int_equal(fseek(f, 0, SEEK_END), 0);
  long n = ftell(f);
  assert_true(n >= 0);
  rewind(f);
  char *b = malloc((size_t)n + 1);
  assert_non_null(b);
  assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
  b[n] = 0;
  fclose(f);
  if (len)
    *len = (size_t)n;
  return b;
}

/* Runs `haulwatch ARGV`; returns its exit status and (when out) its output (free). */
static int run_cli(const char *const *argv, char **out) {
  const char *log = "test_report_monthly.cli.out";
  unlink(log);
  int st = hw_test_wait_exit(hw_test_spawn(argv, log), WAIT_MS);
  char *text = read_all(log, NULL);
  if (st != 0)
    fprintf(stderr, "haulwatch %s %s: %s\n", argv[0], argv[1], text);
  if (out)
    *out = text;
  else
    free(text);
  return st;
}

static cJSON *kpi_json(const char *from, const char *to, const char *region, const char *by) {
  const char *argv[] = {"report", "kpi", "--from", from, "--to", to, "--region", region,
                        "--by", by, "--format", "json", "--pg", conninfo, NULL};
  char *out;
  assert_int_equal(run_cli(argv, &out), 0);
  cJSON *j = cJSON_Parse(out);
  free(out);
  assert_non_null(j);
  assert_true(cJSON_IsArray(j));
  return j;
}

static char *monthly(const char *region, const char *out, int expect_status) {
  const char *argv[] = {"report", "monthly", "--month", "2026-11", "--region", region,
                        "--overdue-days", "10", "--out", out, "--pg", conninfo, NULL};
  char *text;
  assert_int_equal(run_cli(argv, &text), expect_status);
  return text;
}

/* --- reading the HTML: the hooks the writer promises (table id, data-group, data-col) ---- */

static void html_escape(const char *s, char *out, size_t cap) {
  size_t n = 0;
  for (; *s && n + 7 < cap; s++) {
    const char *r = *s == '&' ? "&amp;" : *s == '<' ? "&lt;" : *s == '>' ? "&gt;"
                  : *s == '"' ? "&quot;" : *s == '\'' ? "&#39;" : NULL;
    if (r) {
      memcpy(out + n, r, strlen(r));
      n += strlen(r);
    } else {
      out[n++] = *s;
    }
  }
  out[n] = 0;
}

static void html_unescape(char *s) {
  static const char *const from[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&#39;"};
  static const char to[] = "&<>\"'";
  char *w = s;
  while (*s) {
    size_t i;
    for (i = 0; i < 5 && strncmp(s, from[i], strlen(from[i])); i++)
      ;
    if (i < 5) {
      *w++ = to[i];
      s += strlen(from[i]);
    } else {
      *w++ = *s++;
    }
  }
  *w = 0;
}

/* The table with this id: [*b, *e) of html. */
static void table_span(const char *html, const char *id, const char **b, const char **e) {
  char tag[64];
  snprintf(tag, sizeof tag, "<table id=\"%s\">", id);
  *b = strstr(html, tag);
  if (!*b)
    fail_msg("no table %s", id);
  *e = strstr(*b, "</table>");
  assert_non_null(*e);
}

static int table_rows(const char *html, const char *id) {
  const char *b, *e, *p;
  table_span(html, id, &b, &e);
  int n = 0;
  for (p = b; (p = strstr(p, "<tr data-group=")) && p < e; p++)
    n++;
  return n;
}

/* The text (unescaped) of the cell col of the row of group in table id, into out; 1 when the
 * cell is a null (class "null"), 0 otherwise; fails the test when there is no such cell. */
static int cell(const char *html, const char *id, const char *group, const char *col, char *out,
                size_t cap) {
  const char *b, *e;
  table_span(html, id, &b, &e);
  char eg[512], tag[600];
  html_escape(group, eg, sizeof eg);
  snprintf(tag, sizeof tag, "<tr data-group=\"%s\">", eg);
  const char *row = strstr(b, tag);
  if (!row || row > e)
    fail_msg("table %s: no row %s", id, group);
  const char *rend = strstr(row, "</tr>");
  snprintf(tag, sizeof tag, "<td data-col=\"%s\"", col);
  const char *c = strstr(row, tag);
  if (!c || c > rend)
    fail_msg("table %s row %s: no cell %s", id, group, col);
  int null = !strncmp(c + strlen(tag), " class=\"null\"", 13);
  const char *v = strchr(c, '>') + 1, *ve = strstr(v, "</td>");
  assert_true((size_t)(ve - v) < cap);
  memcpy(out, v, (size_t)(ve - v));
  out[ve - v] = 0;
  html_unescape(out);
  return null;
}

static void expect_cell(const char *html, const char *id, const char *group, const char *col,
                        const char *want) {
  char got[512];
  int null = cell(html, id, group, col, got, sizeof got);
  if (!want) {
    assert_true(null);
    assert_string_equal(got, "");
  } else {
    assert_false(null);
    assert_string_equal(got, want);
  }
}

/* The HTML cell holds what the JSON holds: a null is an empty null cell, a number the same
 * number (both texts are PostgreSQL's, so the doubles they parse to are equal), text the same. */
static void expect_json_cell(const char *html, const char *id, const char *group,
                             const char *col, const cJSON *v) {
  char got[512];
  assert_non_null(v);
  int null = cell(html, id, group, col, got, sizeof got);
  if (cJSON_IsNull(v)) {
    if (!null)
      fail_msg("%s %s %s: '%s', report kpi has null", id, group, col, got);
    return;
  }
  assert_false(null);
  if (cJSON_IsString(v)) {
    assert_string_equal(got, v->valuestring);
    return;
  }
  assert_true(cJSON_IsNumber(v));
  char *end;
  double d = strtod(got, &end);
  assert_true(end != got && !*end);
  if (d != v->valuedouble)
    fail_msg("%s %s %s: '%s', report kpi has %.10g", id, group, col, got, v->valuedouble);
}

static const char *const kpis[] = {"rate_connected", "rate_online", "rate_track_complete",
                                   "rate_qualified", "rate_drifting", "speeding_per_vehicle",
                                   "fatigue_hours_per_vehicle"};

/* Every figure of the ranking and KPI tables against report kpi for the month and the one
 * before; the ranks and the red and black lists against the JSON scores, whatever they are. */
static void check_against_kpi(const char *html, const cJSON *cur, const cJSON *prev) {
  int n = cJSON_GetArraySize(cur);
  assert_true(n >= 2);
  assert_int_equal(table_rows(html, "ranking"), n);
  int scored = 0;
  const cJSON *g;
  cJSON_ArrayForEach(g, cur) {
    const char *grp = cJSON_GetObjectItemCaseSensitive(g, "group")->valuestring;
    const cJSON *col;
    cJSON_ArrayForEach(col, g) expect_json_cell(html, "ranking", grp, col->string, col);
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(g, "score");
    if (cJSON_IsNumber(sc)) {
      scored++;
      int above = 0;
      const cJSON *o;
      cJSON_ArrayForEach(o, cur) {
        const cJSON *os = cJSON_GetObjectItemCaseSensitive(o, "score");
        above += cJSON_IsNumber(os) && os->valuedouble > sc->valuedouble;
      }
      char want[16];
      snprintf(want, sizeof want, "%d", above + 1);
      expect_cell(html, "ranking", grp, "rank", want);
    } else {
      expect_cell(html, "ranking", grp, "rank", NULL);
    }
    const cJSON *pg = NULL, *p;
    cJSON_ArrayForEach(p, prev) {
      if (!strcmp(cJSON_GetObjectItemCaseSensitive(p, "group")->valuestring, grp))
        pg = p;
    }
    assert_non_null(pg);
    for (size_t k = 0; k < sizeof kpis / sizeof kpis[0]; k++) {
      char id[64];
      snprintf(id, sizeof id, "kpi-%s", kpis[k]);
      assert_int_equal(table_rows(html, id), n);
      const cJSON *a = cJSON_GetObjectItemCaseSensitive(g, kpis[k]);
      const cJSON *b = cJSON_GetObjectItemCaseSensitive(pg, kpis[k]);
      expect_json_cell(html, id, grp, "month", a);
      expect_json_cell(html, id, grp, "prev", b);
      if (cJSON_IsNumber(a) && cJSON_IsNumber(b)) {
        char got[64];
        assert_false(cell(html, id, grp, "change", got, sizeof got));
        assert_true(fabs(strtod(got, NULL) - (a->valuedouble - b->valuedouble)) < 0.00006);
      } else {
        expect_cell(html, id, grp, "change", NULL);
      }
    }
  }
  int nred = scored < 5 ? scored : 5, nblack = scored - nred < 5 ? scored - nred : 5;
  assert_int_equal(table_rows(html, "red"), nred);
  assert_int_equal(table_rows(html, "black"), nblack);
}

/* A crackdown section holds what `report LIST --region R --format json` gives, row by row (keyed
 * by plate) and cell by cell; returns the number of rows. */
static int check_crackdown(const char *html, const char *list, const char *region) {
  const char *argv[] = {"report", list, "--region", region, "--format", "json", "--pg", conninfo,
                        NULL};
  char *out;
  assert_int_equal(run_cli(argv, &out), 0);
  cJSON *j = cJSON_Parse(out);
  free(out);
  assert_true(cJSON_IsArray(j));
  int n = cJSON_GetArraySize(j);
  assert_int_equal(table_rows(html, list), n);
  const cJSON *row, *col;
  cJSON_ArrayForEach(row, j) {
    const char *plate = cJSON_GetObjectItemCaseSensitive(row, "plate")->valuestring;
    cJSON_ArrayForEach(col, row) expect_json_cell(html, list, plate, col->string, col);
  }
  cJSON_Delete(j);
  return n;
}

static void check_clean(const char *html) {
  assert_null(strstr(html, "<script"));
  assert_null(strstr(html, "<img"));
  assert_null(strstr(html, "http://"));
  assert_null(strstr(html, "https://"));
  /* Attributes the writer would quote: data cannot make one, its quotes are escaped (the
   * hostile plate's "src=x" stays text). */
  assert_null(strstr(html, "src=\""));
  assert_null(strstr(html, "href=\""));
  assert_null(strstr(html, "<link"));
  assert_null(strstr(html, "@import"));
  assert_null(strstr(html, "url("));
  assert_non_null(strstr(html, "<svg class=\"chart\""));
}

/* --- the fleet ------------------------------------------------------------------------------ */

static void setup_fleet(void) {
  q("INSERT INTO vehicles (plate, plate_colour, class_code, terminal_id, region, enterprise, status)"
    " VALUES ('苏A10001', 2, 'heavy_truck', 'm-a', '320102', '%s', 'active'),"
    " ('%s', 2, 'dangerous_goods', 'm-b', '320104', 'E2 南京危货', 'active'),"
    " ('苏B10003', 2, 'passenger_coach', 'm-c', '320205', 'E3 无锡客运', 'active'),"
    " ('苏B10004', 2, 'heavy_truck', 'm-d', '320211', 'E3 无锡客运', 'active'),"
    " ('苏A10005', 2, 'heavy_truck', 'm-s', '320102', '%s', 'scrapped'),"
    " ('浙A10006', 2, 'heavy_truck', 'm-x', '330100', 'E9', 'active'),"
    " ('苏B10007', 2, 'converted_tractor', 'm-t', '320206', 'E4 锡山农机', 'active')",
    E1_SQL, PLATE_B, E1_SQL);
  q("INSERT INTO vehicles (plate, plate_colour, class_code, terminal_id, region, enterprise, status,"
    " axles, total_mass_kg, curb_mass_kg, rated_load_kg) VALUES ('苏B10008', 2, 'heavy_truck',"
    " 'm-u', '320206', 'E3 无锡客运', 'active', 2, 25000, 10000, 15000)");
  /* terminal, day, records, qualified, drift, km_total, km_complete */
  q("INSERT INTO vehicle_daily (terminal_id, day, records, qualified, drift, km_total, km_complete,"
    " first_fix, last_fix) SELECT t, d::date, r, ql, dr, kt, kc,"
    " CASE WHEN ql > 0 THEN d::date + time '08:00' - interval '8 hours' END,"
    " CASE WHEN ql > 0 THEN d::date + time '18:00' - interval '8 hours' END"
    " FROM (VALUES ('m-a', '2026-11-02', 10, 8, 1, 100.0, 90.0), ('m-a', '2026-11-03', 5, 5, 0, 50.0, 50.0),"
    " ('m-b', '2026-11-05', 4, 2, 0, 20.0, 10.0), ('m-c', '2026-11-10', 6, 6, 0, 30.0, 30.0),"
    " ('m-a', '2026-10-15', 4, 4, 0, 10.0, 10.0), ('m-c', '2026-10-20', 2, 1, 1, 5.0, 0.0),"
    " ('m-s', '2026-11-04', 9, 9, 0, 9.0, 9.0), ('m-x', '2026-11-04', 3, 3, 0, 3.0, 3.0),"
    " ('m-t', '2026-11-06', 5, 5, 0, 20.0, 20.0))"
    " AS v(t, d, r, ql, dr, kt, kc)");
  /* id, kind, terminal, start, end (GMT+8) */
  q("INSERT INTO violations (id, kind, episode_key, terminal_id, plate, region, enterprise,"
    " started_at, ended_at) SELECT id, k, 'ep-' || id, t, v.plate, v.region, v.enterprise,"
    " s::timestamptz, e::timestamptz FROM (VALUES"
    " (1, 'speeding', 'm-a', '2026-11-02 10:00+08', '2026-11-02 10:05+08'),"
    " (2, 'speeding', 'm-a', '2026-11-03 10:00+08', '2026-11-03 10:05+08'),"
    " (3, 'fatigue_continuous', 'm-b', '2026-11-05 08:00+08', '2026-11-05 13:00+08'),"
    " (4, 'speeding', 'm-c', '2026-11-25 09:00+08', '2026-11-25 09:05+08'),"
    " (5, 'fatigue_daily', 'm-c', '2026-11-10 12:00+08', '2026-11-10 23:00+08'),"
    " (6, 'speeding', 'm-a', '2026-10-10 10:00+08', '2026-10-10 10:05+08'),"
    " (7, 'speeding', 'm-a', '2026-11-30 23:59:59+08', NULL),"
    " (8, 'speeding', 'm-s', '2026-11-04 10:00+08', '2026-11-04 10:05+08'),"
    " (9, 'speeding', 'm-x', '2026-11-04 10:00+08', '2026-11-04 10:05+08'),"
    " (10, 'speeding', 'm-b', '2026-12-01 00:00+08', '2026-12-01 00:05+08'))"
    " AS x(id, k, t, s, e) JOIN vehicles v ON v.terminal_id = x.t");
  /* The steps of the hazard list at the times the story says: the transition function stamps
   * now(), so the test writes the same rows it would, with the times of the story. */
  q("BEGIN; SET LOCAL hw.violation_transition = 'on';"
    " UPDATE violations SET state = 'closed', closed_at = '2026-11-09 10:00+08', closed_by = 't',"
    "  close_note = 'fixed' WHERE id = 1;"
    " UPDATE violations SET state = 'closed', closed_at = '2026-11-20 10:00+08', closed_by = 't',"
    "  close_note = 'fixed' WHERE id = 2;"
    " UPDATE violations SET state = 'notified' WHERE id = 4;"
    " UPDATE violations SET state = 'closed', closed_at = '2026-12-05 10:00+08', closed_by = 't',"
    "  close_note = 'fixed' WHERE id = 5;"
    " INSERT INTO violation_audit (violation_id, from_state, to_state, actor, at) VALUES"
    "  (1, 'rectifying', 'closed', 't', '2026-11-09 10:00+08'),"
    "  (2, 'rectifying', 'closed', 't', '2026-11-20 10:00+08'),"
    "  (4, 'open', 'notified', 't', '2026-11-26 10:00+08'),"
    "  (5, 'open', 'notified', 't', '2026-11-12 10:00+08'),"
    "  (5, 'notified', 'rectifying', 't', '2026-11-20 10:00+08'),"
    "  (5, 'rectifying', 'closed', 't', '2026-12-05 10:00+08');"
    " COMMIT");
}

static int setup(void **state) {
  (void)state;
  hw_test_fresh_db("hw_test_report_monthly", conninfo, sizeof conninfo);
  db = hw_test_pg_connect(conninfo);
  setup_fleet();
  return 0;
}

static int teardown(void **state) {
  (void)state;
  PQfinish(db);
  return 0;
}

/* --- tests ---------------------------------------------------------------------------------- */

static void test_province_html(void **state) {
  (void)state;
  const char *path = "test_report_monthly.province.html";
  unlink(path);
  free(monthly("320000", path, 0));
  char *html = read_all(path, NULL);
  check_clean(html);
  cJSON *cur = kpi_json("2026-11-01", "2026-11-30", "320000", "region");
  cJSON *prev = kpi_json("2026-10-01", "2026-10-31", "320000", "region");
  assert_int_equal(cJSON_GetArraySize(cur), 2); /* 320100 and 320200 */
  check_against_kpi(html, cur, prev);
  /* By hand, so that the report and report kpi cannot agree on a wrong number. */
  expect_cell(html, "kpi-rate_qualified", "320100", "month", "0.7895");
  expect_cell(html, "kpi-rate_qualified", "320100", "prev", "1.0000");
  expect_cell(html, "kpi-rate_qualified", "320100", "change", "-0.2105");
  expect_cell(html, "ranking", "320100", "speeding_count", "3");
  expect_cell(html, "ranking", "320200", "speeding_count", "1");
  /* Violations of the month. */
  assert_int_equal(table_rows(html, "viol-kind"), 3);
  expect_cell(html, "viol-kind", "speeding", "count", "4");
  expect_cell(html, "viol-kind", "fatigue_continuous", "count", "1");
  expect_cell(html, "viol-kind", "fatigue_daily", "count", "1");
  assert_int_equal(table_rows(html, "viol-region"), 2);
  expect_cell(html, "viol-region", "320100", "count", "4");
  expect_cell(html, "viol-region", "320200", "count", "2");
  assert_int_equal(table_rows(html, "viol-industry"), 3);
  expect_cell(html, "viol-industry", "freight", "count", "3");
  expect_cell(html, "viol-industry", "dangerous_goods", "count", "1");
  expect_cell(html, "viol-industry", "passenger", "count", "2");
  /* The hazard list. */
  assert_int_equal(table_rows(html, "rectify"), 1);
  const char *rect[][2] = {{"opened", "6"},     {"closed", "2"},     {"closed_7d", "1"},
                           {"closed_30d", "2"}, {"still_open", "4"}, {"overdue", "2"}};
  for (size_t i = 0; i < 6; i++)
    expect_cell(html, "rectify", "6", rect[i][0], rect[i][1]);
  assert_int_equal(table_rows(html, "overdue"), 3);
  expect_cell(html, "overdue", "6", "days_open", "51");
  expect_cell(html, "overdue", "6", "state", "open");
  expect_cell(html, "overdue", "6", "plate", "苏A10001");
  expect_cell(html, "overdue", "6", "enterprise", E1);
  expect_cell(html, "overdue", "6", "started", "2026-10-10 10:00");
  expect_cell(html, "overdue", "3", "days_open", "25");
  expect_cell(html, "overdue", "3", "plate", PLATE_B);
  expect_cell(html, "overdue", "3", "kind", "fatigue_continuous");
  expect_cell(html, "overdue", "5", "days_open", "20");
  expect_cell(html, "overdue", "5", "state", "rectifying");
  /* Oldest first. */
  assert_true(strstr(html, "<tr data-group=\"6\">") < strstr(html, "<tr data-group=\"3\">"));
  assert_true(strstr(html, "<tr data-group=\"3\">") < strstr(html, "<tr data-group=\"5\">"));
  /* The crackdown sections: the module's lists, one vehicle each here. */
  assert_int_equal(check_crackdown(html, "phaseout", "320000"), 1);
  expect_cell(html, "phaseout", "苏B10007", "days_moved", "1");
  assert_int_equal(check_crackdown(html, "registry-audit", "320000"), 1);
  char reasons[128];
  assert_false(cell(html, "registry-audit", "苏B10008", "reasons", reasons, sizeof reasons));
  assert_non_null(strstr(reasons, "over_limit"));
  cJSON_Delete(cur);
  cJSON_Delete(prev);
  free(html);
  unlink(path);
}

static void test_city_by_enterprise(void **state) {
  (void)state;
  const char *path = "test_report_monthly.city.html";
  unlink(path);
  free(monthly("320100", path, 0));
  char *html = read_all(path, NULL);
  check_clean(html);
  /* The hostile name is there, as text. */
  assert_non_null(strstr(html, "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; 物流&#39;"));
  assert_non_null(strstr(html, "苏A&lt;img src=x&gt;"));
  cJSON *cur = kpi_json("2026-11-01", "2026-11-30", "320100", "enterprise");
  cJSON *prev = kpi_json("2026-10-01", "2026-10-31", "320100", "enterprise");
  assert_int_equal(cJSON_GetArraySize(cur), 2); /* E1 and E2 */
  check_against_kpi(html, cur, prev);
  /* Nanjing alone: v1 v2 v3 v7 opened; v1 v2 closed; v3 overdue; the list v6 and v3. */
  expect_cell(html, "rectify", "4", "opened", "4");
  expect_cell(html, "rectify", "4", "still_open", "2");
  expect_cell(html, "rectify", "4", "overdue", "1");
  assert_int_equal(table_rows(html, "overdue"), 2);
  /* Counties under the city. */
  expect_cell(html, "viol-region", "320102", "count", "3");
  expect_cell(html, "viol-region", "320104", "count", "1");
  /* Nothing of Wuxi's crackdown lists in Nanjing's report. */
  assert_int_equal(check_crackdown(html, "phaseout", "320100"), 0);
  assert_int_equal(check_crackdown(html, "registry-audit", "320100"), 0);
  cJSON_Delete(cur);
  cJSON_Delete(prev);
  free(html);
  unlink(path);
}

/* The score's settings reach the report as they reach report kpi: with a cut-off that changes
 * the scores, the report's ranking still equals report kpi's given the same settings. */
static void test_score_settings(void **state) {
  (void)state;
  const char *path = "test_report_monthly.score.html";
  unlink(path);
  const char *argv[] = {"report", "monthly", "--month", "2026-11", "--region", "320000",
                        "--score-connected-min-pct", "50", "--score-qualified", "40",
                        "--out", path, "--pg", conninfo, NULL};
  char *text;
  assert_int_equal(run_cli(argv, &text), 0);
  free(text);
  const char *kargv[] = {"report", "kpi", "--from", "2026-11-01", "--to", "2026-11-30",
                         "--region", "320000", "--by", "region", "--format", "json",
                         "--score-connected-min-pct", "50", "--score-qualified", "40",
                         "--pg", conninfo, NULL};
  const char *pargv[] = {"report", "kpi", "--from", "2026-10-01", "--to", "2026-10-31",
                         "--region", "320000", "--by", "region", "--format", "json",
                         "--score-connected-min-pct", "50", "--score-qualified", "40",
                         "--pg", conninfo, NULL};
  char *ko, *po;
  assert_int_equal(run_cli(kargv, &ko), 0);
  assert_int_equal(run_cli(pargv, &po), 0);
  cJSON *cur = cJSON_Parse(ko), *prev = cJSON_Parse(po);
  free(ko);
  free(po);
  assert_non_null(cur);
  assert_non_null(prev);
  /* The settings matter here: some score differs from the defaults' one. */
  cJSON *def = kpi_json("2026-11-01", "2026-11-30", "320000", "region");
  int differs = 0;
  for (int i = 0; i < cJSON_GetArraySize(cur); i++) {
    const cJSON *a = cJSON_GetObjectItem(cJSON_GetArrayItem(cur, i), "score");
    const cJSON *b = cJSON_GetObjectItem(cJSON_GetArrayItem(def, i), "score");
    if (cJSON_IsNumber(a) && cJSON_IsNumber(b) && a->valuedouble != b->valuedouble)
      differs = 1;
  }
  assert_true(differs);
  char *html = read_all(path, NULL);
  check_against_kpi(html, cur, prev);
  cJSON_Delete(def);
  cJSON_Delete(cur);
  cJSON_Delete(prev);
  free(html);
  unlink(path);
}

static void test_xlsx(void **state) {
  (void)state;
  const char *html_path = "test_report_monthly.x.html", *path = "test_report_monthly.xlsx";
  unlink(path);
  free(monthly("320000", html_path, 0));
  free(monthly("320000", path, 0));
  size_t len;
  char *html = read_all(html_path, NULL), *x = read_all(path, &len);
  assert_true(len > 1000);
  assert_memory_equal(x, "PK\x03\x04", 4);
  free(x);
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "unzip -tq %s >/dev/null", path);
  assert_int_equal(system(cmd), 0);
  /* One sheet per table of the HTML, named by the table's id. */
  int tables = 0;
  for (const char *p = html; (p = strstr(p, "<table id=\"")); p++) {
    tables++;
    char id[64];
    const char *b = p + 11, *e = strchr(b, '"');
    snprintf(id, sizeof id, "%.*s", (int)(e - b), b);
    snprintf(cmd, sizeof cmd, "unzip -p %s xl/workbook.xml | grep -q 'name=\"%s\"'", path, id);
    if (system(cmd) != 0)
      fail_msg("no sheet %s", id);
  }
  /* ranking, 7 KPIs, red, black, 3 violation tables, 2 of the hazard list, 2 crackdown lists,
   * platforms, 3 of the active-safety devices (summary, without a device, rates) */
  assert_int_equal(tables, 21);
  /* The devices' summary is one row (report safety-devices for the month). */
  assert_int_equal(table_rows(html, "safety"), 1);
  snprintf(cmd, sizeof cmd, "test \"$(unzip -p %s xl/workbook.xml | grep -o '<sheet ' | wc -l)\" = %d",
           path, tables);
  assert_int_equal(system(cmd), 0);
  /* Hostile text is a string, never a formula; the numbers are numbers (the November
   * rate_qualified of 320100 and the opened count of the rectification sheet). */
  snprintf(cmd, sizeof cmd,
           "unzip -p %s xl/sharedStrings.xml | grep -q '苏A&lt;img src=x&gt;' && "
           "! unzip -p %s 'xl/worksheets/*.xml' | grep -q '<f>' && "
           "unzip -p %s 'xl/worksheets/*.xml' | grep -q '<v>0.7895</v>' && "
           "unzip -p %s 'xl/worksheets/*.xml' | grep -q '<v>51</v>'",
           path, path, path, path);
  assert_int_equal(system(cmd), 0);
  free(html);
  unlink(html_path);
  unlink(path);
}

static void test_refusals(void **state) {
  (void)state;
  /* A bad month or output name is a usage error, and no file is left behind. */
  const char *argv[] = {"report", "monthly", "--month", "2026-13", "--out", "test_report_monthly.bad.html",
                        "--pg", conninfo, NULL};
  assert_int_equal(run_cli(argv, NULL), 2);
  assert_int_equal(access("test_report_monthly.bad.html", F_OK), -1);
  const char *argv2[] = {"report", "monthly", "--month", "2026-11", "--out", "test_report_monthly.pdf",
                         "--pg", conninfo, NULL};
  assert_int_equal(run_cli(argv2, NULL), 2);
  const char *argv3[] = {"report", "monthly", "--month", "2026-11", "--region", "3201",
                         "--out", "test_report_monthly.bad.html", "--pg", conninfo, NULL};
  assert_int_equal(run_cli(argv3, NULL), 2);
  /* A directory that does not exist: a failure, said, nothing written. */
  const char *argv4[] = {"report", "monthly", "--month", "2026-11", "--out",
                         "/nonexistent-dir/x.html", "--pg", conninfo, NULL};
  assert_int_equal(run_cli(argv4, NULL), 1);
}

static cJSON *platforms_json(const char *from, const char *to) {
  const char *argv[] = {"report", "platforms", "--from", from, "--to", to, "--format", "json",
                        "--pg", conninfo, NULL};
  char *out;
  assert_int_equal(run_cli(argv, &out), 0);
  cJSON *j = cJSON_Parse(out);
  free(out);
  assert_non_null(j);
  assert_true(cJSON_IsArray(j));
  return j;
}

static const cJSON *platform_row(const cJSON *a, const char *id) {
  const cJSON *r;
  cJSON_ArrayForEach(r, a) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(r, "platform");
    if (cJSON_IsString(p) && !strcmp(p->valuestring, id))
      return r;
  }
  fail_msg("report platforms has no %s", id);
  return NULL;
}

/* The platforms section: a platform with link rows and inspections in both months, one
 * registered in November: the cells are those of `report platforms --format json`. */
static void test_platforms(void **state) {
  (void)state;
  q("INSERT INTO platforms (id, user_id, password_hash, center_id, created_at) VALUES "
    "('pm', 1, 'x', 7001, '2026-01-01+08'), ('pnew', 2, 'x', 7002, '2026-11-16 00:00+08')");
  /* pm: November half up (the 1st to the 16th), October up but for its last day; a slave row
   * that must not count as the main link. */
  q("INSERT INTO platform_links (platform, link, up_at, down_at, reason) VALUES "
    "('pm', 'main', '2026-11-01 00:00+08', '2026-11-16 00:00+08', 'logout'), "
    "('pm', 'main', '2026-10-01 00:00+08', '2026-10-31 00:00+08', 'logout'), "
    "('pm', 'slave', '2026-11-20 00:00+08', '2026-11-21 00:00+08', 'logout'), "
    "('pnew', 'main', '2026-11-20 00:00+08', '2026-12-01 00:00+08', 'logout')");
  /* pm: November two inspections, one answered in time, one late; October one in time. */
  q("INSERT INTO platform_inspections (platform, question, answer_min, created_at, sent_at, "
    "answered_at, delay_ms) VALUES "
    "('pm', 'q1', 10, '2026-11-05 10:00+08', '2026-11-05 10:00+08', '2026-11-05 10:01+08', 60000), "
    "('pm', 'q2', 10, '2026-11-06 10:00+08', '2026-11-06 10:00+08', '2026-11-06 10:30+08', 1800000), "
    "('pm', 'q3', 10, '2026-10-06 10:00+08', '2026-10-06 10:00+08', '2026-10-06 10:02+08', 120000)");
  const char *path = "test_report_monthly.platforms.html";
  unlink(path);
  free(monthly("320000", path, 0));
  char *html = read_all(path, NULL);
  assert_non_null(strstr(html, "八、平台考核 platforms"));
  cJSON *cur = platforms_json("2026-11-01", "2026-11-30");
  cJSON *prev = platforms_json("2026-10-01", "2026-10-31");
  assert_int_equal(table_rows(html, "platforms"), cJSON_GetArraySize(cur));
  const char *ids[2] = {"pm", "pnew"};
  for (int i = 0; i < 2; i++) {
    const cJSON *c = platform_row(cur, ids[i]), *p = platform_row(prev, ids[i]);
    expect_json_cell(html, "platforms", ids[i], "inspections",
                     cJSON_GetObjectItemCaseSensitive(c, "inspections"));
    expect_json_cell(html, "platforms", ids[i], "response_rate",
                     cJSON_GetObjectItemCaseSensitive(c, "response_rate"));
    expect_json_cell(html, "platforms", ids[i], "response_rate_prev",
                     cJSON_GetObjectItemCaseSensitive(p, "response_rate"));
    expect_json_cell(html, "platforms", ids[i], "link_availability",
                     cJSON_GetObjectItemCaseSensitive(c, "link_availability"));
    expect_json_cell(html, "platforms", ids[i], "link_availability_prev",
                     cJSON_GetObjectItemCaseSensitive(p, "link_availability"));
    expect_json_cell(html, "platforms", ids[i], "main_down_s",
                     cJSON_GetObjectItemCaseSensitive(c, "main_down_s"));
  }
  /* The figures themselves, so that a query both sides got wrong the same way still fails. */
  expect_cell(html, "platforms", "pm", "inspections", "2");
  expect_cell(html, "platforms", "pm", "response_rate", "0.5000");
  expect_cell(html, "platforms", "pm", "response_rate_prev", "1.0000");
  expect_cell(html, "platforms", "pm", "link_availability", "0.5000");
  expect_cell(html, "platforms", "pm", "link_availability_prev", "0.9677"); /* 30 / 31 days */
  expect_cell(html, "platforms", "pnew", "response_rate", NULL);      /* no inspection */
  expect_cell(html, "platforms", "pnew", "link_availability", "0.7333"); /* 11 of 15 days */
  expect_cell(html, "platforms", "pnew", "link_availability_prev", NULL); /* not registered */
  cJSON_Delete(cur);
  cJSON_Delete(prev);
  free(html);
  q("DELETE FROM platforms WHERE id IN ('pm', 'pnew')");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_platforms),
      cmocka_unit_test(test_province_html),
      cmocka_unit_test(test_city_by_enterprise),
      cmocka_unit_test(test_score_settings),
      cmocka_unit_test(test_xlsx),
      cmocka_unit_test(test_refusals),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
