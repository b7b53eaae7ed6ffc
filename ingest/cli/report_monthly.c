/* haulwatch report monthly: the monthly report (通报, README "Monthly report") of a region as one
 * printable HTML page or an XLSX workbook. Gathers the figures from PostgreSQL with the KPI query
 * the `report kpi` command runs (sinks/kpi_query.h: the numbers are the same by construction)
 * and the report's own queries (sinks/monthly_query.h), lays them out as a document of tables
 * (report_doc.h), and hands it to the HTML or XLSX writer. The output file appears complete or
 * not at all (written beside it, then renamed). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/options.h"
#include "cli/cli.h"
#include "cli/cli_pg.h"
#include "cli/report_doc.h"
#include "sinks/crackdown_query.h"
#include "sinks/kpi_query.h"
#include "sinks/monthly_query.h"
#include "sinks/platform_kpi.h"
#include "sinks/safety_query.h"

#define HW_MONTHLY_SCHEMA 22 /* vehicle_daily (012), the registry's masses (014), platforms (016), vehicle_monthly (017), safety_alarms (022) */
/* Default of overdue_days (the 督办 threshold): haulwatch's, not a national figure; a month of
 * rectification is what the provincial plan's monthly cycle allows. */
#define HW_MONTHLY_DEF_OVERDUE_DAYS 30

typedef struct hw_monthly_settings {
  char pg[1024];
  char month[16];
  char region[16];
  char out[1024];
  uint32_t overdue_days;
  /* The crackdown lists' settings, as `report phaseout|registry-audit` take them. */
  uint32_t phaseout_min_km;
  uint32_t audit_tolerance_kg;
  uint32_t audit_min_load_pct;
  /* report safety-devices' settings. */
  uint32_t coverage_days;
  uint32_t followed_within_s;
  /* The score's settings, as `report kpi` takes them, for this month and the month before. */
  hw_kpi_score_cfg score;
} hw_monthly_settings;

#define C hw_monthly_settings
static const hw_option hw_monthly_options[] = {
    HW_OPT_S(C, pg, NULL, HW_CLI_PG_ENV, HW_CLI_PG_HELP),
    HW_OPT_S(C, month, NULL, NULL, "the month (YYYY-MM, GMT+8)"),
    HW_OPT_S(C, region, NULL, NULL, "a province (cities ranked) or a city or county (enterprises ranked); default: everything, by city"),
    HW_OPT_S(C, out, NULL, NULL, "the file to write: NAME.html or NAME.xlsx"),
    HW_OPT_N(C, overdue_days, HW_XSTR(HW_MONTHLY_DEF_OVERDUE_DAYS), 1, 3650, NULL, "a hazard still open this many days after it started is overdue (督办)"),
    HW_OPT_N(C, phaseout_min_km, HW_XSTR(HW_CD_DEF_PHASEOUT_MIN_KM), 0, 10000, NULL, "as report phaseout: a day counts as moved with at least this many km of track"),
    HW_OPT_N(C, audit_tolerance_kg, HW_XSTR(HW_CD_DEF_AUDIT_TOLERANCE_KG), 0, 100000, NULL, "as report registry-audit: total mass may differ from curb mass + rated load by this much, kg"),
    HW_OPT_N(C, audit_min_load_pct, HW_XSTR(HW_CD_DEF_AUDIT_MIN_LOAD_PCT), 0, 1000, NULL, "as report registry-audit: a heavy vehicle's rated load below this % of its curb mass is flagged"),
    HW_OPT_N(C, coverage_days, HW_XSTR(HW_SAFETY_DEF_COVERAGE_DAYS), 1, 366, NULL, "as report safety-devices: covered = an active-safety item in this many days up to the month's end"),
    HW_OPT_N(C, followed_within_s, HW_XSTR(HW_SAFETY_DEF_FOLLOW_S), 1, 86400 * 7, NULL, "as report safety-devices: a level-2 alarm is followed by a violation within this many seconds"),
    HW_KPI_SCORE_OPTIONS(C, score),
};
#undef C

static const char hw_monthly_usage[] =
    "usage: haulwatch report monthly --month YYYY-MM [--region CODE] --out FILE.html|FILE.xlsx\n"
    "                                [--overdue-days N] [--pg CONNINFO]\n"
    "\n"
    "The monthly report (通报): score and ranking of each city (of each enterprise for a city or\n"
    "county), one table per KPI with the month before, red and black lists, violations by kind,\n"
    "region and industry, the rectification of the hazard list with its overdue items, and the\n"
    "converted-tractor (phase-out) and 大吨小标 (registry audit) lists of the region.\n"
    "The figures are those of `report kpi` for the same month (README, \"Monthly report\").";

/* The KPIs with a table of their own, and how the report names them. */
static const struct {
  const char *col, *zh;
} hw_monthly_kpis[] = {
    {"rate_connected", "入网率 rate_connected"},
    {"rate_online", "上线率 rate_online"},
    {"rate_track_complete", "轨迹完整率 rate_track_complete"},
    {"rate_qualified", "数据合格率 rate_qualified"},
    {"rate_drifting", "漂移车辆率 rate_drifting"},
    {"speeding_per_vehicle", "车均超速次数 speeding_per_vehicle"},
    {"fatigue_hours_per_vehicle", "车均疲劳驾驶时长 fatigue_hours_per_vehicle (h)"},
};

static int hw_kpi_col(const char *name) {
  for (int c = 0; c < HW_KPI_NCOLS; c++)
    if (!strcmp(hw_kpi_columns[c], name))
      return c;
  return -1;
}

static const char *hw_val(const PGresult *res, int r, int c) {
  return r < 0 || PQgetisnull(res, r, c) ? NULL : PQgetvalue(res, r, c);
}

static int hw_find_group(const PGresult *res, const char *group) {
  for (int r = 0; r < PQntuples(res); r++)
    if (!strcmp(PQgetvalue(res, r, 0), group))
      return r;
  return -1;
}

/* Everything the report reads, owned here (PQclear). */
typedef struct hw_monthly_data {
  PGresult *cur, *prev, *viol, *rect, *overdue;
  PGresult *plat_cur, *plat_prev; /* report platforms of the month and the month before */
  hw_safety_report safety;        /* report safety-devices for the month */
  hw_cd_table phaseout, audit; /* the crackdown module's tables (hw_cd_table_free) */
} hw_monthly_data;

static void hw_monthly_data_free(hw_monthly_data *m) {
  hw_cd_table_free(&m->phaseout);
  hw_cd_table_free(&m->audit);
  PQclear(m->cur);
  PQclear(m->prev);
  PQclear(m->viol);
  PQclear(m->rect);
  PQclear(m->overdue);
  PQclear(m->plat_cur);
  PQclear(m->plat_prev);
  hw_safety_report_free(&m->safety);
}

/* The bounds report platforms takes for month (YYYY-MM, 2000-02..2099-12): its first day (GMT+8
 * midnight) and the next month's first instant, so the periods are the KPI months'. */
static void hw_monthly_bounds(const char *month, char *from, size_t fl, char *to, size_t tl) {
  int y = atoi(month), mo = atoi(month + 5) + 1;
  if (mo > 12)
    mo = 1, y++;
  snprintf(from, fl, "%.7s-01", month);
  snprintf(to, tl, "%04d-%02d-01 00:00:00+08", y, mo);
}

static int hw_monthly_platforms_run(PGconn *conn, const char *month, PGresult **out) {
  char from[16], to[40], err[256];
  hw_monthly_bounds(month, from, sizeof from, to, sizeof to);
  int rc = hw_platform_kpi_run(conn, from, to, NULL, out, err, sizeof err);
  if (rc)
    fprintf(stderr, "report monthly: platforms of %s: %s", month, err);
  return rc;
}

/* report safety-devices over the month (its first to its last day, coverage at its end). */
static int hw_monthly_safety_run(PGconn *conn, const hw_monthly_request *q, uint32_t days,
                                 uint32_t follow_s, hw_safety_report *out) {
  static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  char from[16], to[16], err[160];
  int y = atoi(q->month), mo = atoi(q->month + 5);
  int last = mo >= 1 && mo <= 12 ? mdays[mo - 1] + (mo == 2 && y % 4 == 0) : 28;
  snprintf(from, sizeof from, "%.7s-01", q->month);
  snprintf(to, sizeof to, "%.7s-%02d", q->month, last);
  hw_safety_request r;
  if (hw_safety_request_parse(&r, q->cur.region, from, to, days, follow_s, err, sizeof err)) {
    fprintf(stderr, "report monthly: safety devices: %s\n", err);
    return -EINVAL;
  }
  return hw_safety_report_run(conn, &r, "{%}", out);
}

static int hw_monthly_gather(PGconn *conn, const hw_monthly_request *q, const hw_cd_config *cfg,
                             hw_monthly_data *m) {
  if (hw_kpi_run(conn, &q->cur, &m->cur) || hw_kpi_run(conn, &q->prev, &m->prev) ||
      hw_monthly_violations_run(conn, q, &m->viol) || hw_monthly_rectify_run(conn, q, &m->rect) ||
      hw_monthly_overdue_run(conn, q, &m->overdue) ||
      hw_monthly_platforms_run(conn, q->month, &m->plat_cur) ||
      hw_monthly_platforms_run(conn, q->prev_month, &m->plat_prev))
    return -EIO;
  /* The crackdown lists exactly as `report phaseout` and `report registry-audit` give them for
   * the region (the same module runs them), every vehicle of it: scope "{%}". */
  hw_cd_request pr, ar;
  char err[160];
  if (hw_cd_request_parse(&pr, HW_CD_PHASEOUT, q->cur.region, NULL, NULL, NULL, err, sizeof err) ||
      hw_cd_request_parse(&ar, HW_CD_REGISTRY_AUDIT, q->cur.region, NULL, NULL, NULL, err,
                          sizeof err)) {
    fprintf(stderr, "report monthly: %s\n", err);
    return -EINVAL;
  }
  int rc = hw_cd_run(conn, &pr, cfg, "{%}", 0, &m->phaseout);
  if (!rc)
    rc = hw_cd_run(conn, &ar, cfg, "{%}", 0, &m->audit);
  return rc;
}

static const char *const hw_rank_heads_zh = "排名 rank";

/* Score and ranking: every KPI column of the month, in rank order. */
static void hw_monthly_ranking(hw_rdoc *d, const hw_monthly_request *q, const PGresult *cur,
                               const char *grouping, const hw_rank_item *items,
                               const size_t *order, const unsigned *rank) {
  const char *cols[HW_KPI_NCOLS + 1];
  cols[0] = "rank";
  for (int c = 0; c < HW_KPI_NCOLS; c++)
    cols[c + 1] = hw_kpi_columns[c];
  const char *heads[HW_KPI_NCOLS + 1];
  memcpy(heads, cols, sizeof heads);
  heads[0] = hw_rank_heads_zh;
  heads[1] = grouping;
  hw_rtable *t = hw_rdoc_table(d, "ranking", "得分与排名 Score and ranking", HW_KPI_NCOLS + 1,
                               cols, heads, ~(uint32_t)0 & ~(1u << 1));
  hw_rdoc_section(d, t, "一、得分与排名 Score and ranking");
  hw_rdoc_note(d, t,
               "%s: the figures `haulwatch report kpi` gives for the month (the same query); "
               "rates are fractions (four decimals), an empty cell has no denominator. Ranked "
               "by score, highest first; groups without a score come last, unranked.",
               q->month);
  if (!t)
    return;
  t->key_col = 1;
  /* A chart of the scores, when there are any to draw. */
  for (int r = 0; r < PQntuples(cur); r++)
    if (items[r].scored)
      t->chart = hw_kpi_col("score") + 1;
  for (size_t k = 0; k < (size_t)PQntuples(cur); k++) {
    int r = (int)order[k];
    char rk[16];
    snprintf(rk, sizeof rk, "%u", rank[r]);
    const char *cells[HW_KPI_NCOLS + 1];
    cells[0] = items[r].scored ? rk : NULL;
    for (int c = 0; c < HW_KPI_NCOLS; c++)
      cells[c + 1] = hw_val(cur, r, c);
    hw_rdoc_row(d, t, cells);
  }
}

/* One table per KPI: the month, the month before and the change, with a chart. */
static void hw_monthly_kpi_tables(hw_rdoc *d, const hw_monthly_request *q, const PGresult *cur,
                                  const PGresult *prev, const char *grouping) {
  for (size_t i = 0; i < HW_ARRAY_SIZE(hw_monthly_kpis); i++) {
    int c = hw_kpi_col(hw_monthly_kpis[i].col);
    char id[32];
    snprintf(id, sizeof id, "kpi-%s", hw_monthly_kpis[i].col);
    const char *cols[4] = {"group", "month", "prev", "change"};
    const char *heads[4] = {grouping, q->month, q->prev_month, "变化 change"};
    hw_rtable *t = hw_rdoc_table(d, id, hw_monthly_kpis[i].zh, 4, cols, heads, 0xe);
    if (i == 0)
      hw_rdoc_section(d, t, "二、考核指标 The KPIs, with the month before");
    if (!t)
      continue;
    t->chart = 1;
    t->chart_prev = 2;
    for (int r = 0; r < PQntuples(cur); r++) {
      const char *g = PQgetvalue(cur, r, 0);
      const char *a = hw_val(cur, r, c), *b = hw_val(prev, hw_find_group(prev, g), c);
      char diff[32];
      if (a && b) {
        double v = strtod(a, NULL) - strtod(b, NULL);
        snprintf(diff, sizeof diff, "%.4f", fabs(v) < 0.00005 ? 0.0 : v);
      }
      const char *cells[4] = {g, a, b, a && b ? diff : NULL};
      hw_rdoc_row(d, t, cells);
    }
  }
}

static void hw_monthly_lists_tables(hw_rdoc *d, const PGresult *cur, const hw_rank_item *items,
                                    const size_t *order, const unsigned *rank,
                                    const char *grouping) {
  size_t red[HW_MONTHLY_LIST_LEN], black[HW_MONTHLY_LIST_LEN], nred, nblack;
  hw_monthly_lists(items, order, (size_t)PQntuples(cur), red, &nred, black, &nblack);
  int sc = hw_kpi_col("score");
  const char *cols[3] = {"rank", "group", "score"};
  const char *heads[3] = {hw_rank_heads_zh, grouping, "得分 score"};
  for (int k = 0; k < 2; k++) {
    hw_rtable *t = hw_rdoc_table(d, k ? "black" : "red",
                                 k ? "黑榜 Black list (bottom five)" : "红榜 Red list (top five)",
                                 3, cols, heads, 0x5);
    if (!k)
      hw_rdoc_section(d, t, "三、红黑榜 Red and black lists");
    if (!t)
      continue;
    t->key_col = 1;
    size_t n = k ? nblack : nred;
    if (!n)
      hw_rdoc_note(d, t, "%s", nred ? "Every scored group is on the red list."
                                    : "No group has a score for this month.");
    for (size_t i = 0; i < n; i++) {
      size_t r = k ? black[i] : red[i];
      char rk[16];
      snprintf(rk, sizeof rk, "%u", rank[r]);
      const char *cells[3] = {rk, PQgetvalue(cur, (int)r, 0), hw_val(cur, (int)r, sc)};
      hw_rdoc_row(d, t, cells);
    }
  }
}

static void hw_monthly_violation_tables(hw_rdoc *d, const hw_monthly_request *q,
                                        const PGresult *viol) {
  static const char *const dims[3] = {"kind", "region", "industry"};
  static const char *const titles[3] = {"按类型 By kind", "按地区 By region",
                                        "按行业 By industry"};
  for (int k = 0; k < 3; k++) {
    char id[32];
    snprintf(id, sizeof id, "viol-%s", dims[k]);
    const char *cols[3] = {dims[k], "name", "count"};
    hw_rtable *t = hw_rdoc_table(d, id, titles[k], k == 2 ? 3 : 2,
                                 k == 2 ? cols : (const char *const[]){dims[k], "count"}, NULL,
                                 k == 2 ? 0x4 : 0x2);
    if (!k) {
      hw_rdoc_section(d, t, "四、违法违规 Violations started in the month");
      hw_rdoc_note(d, t, "Violations of vehicles active in the registry in scope, started in %s "
                         "(GMT+8); speeding here is the speeding_count of the KPIs.", q->month);
    }
    if (!t)
      continue;
    t->chart = k == 2 ? 2 : 1;
    if (k == 2) {
      /* Every industry of the mapping, with a zero when it had none; "other" only when some
       * class outside the mapping had violations. */
      for (size_t i = 0; i < hw_monthly_nindustry_names; i++) {
        const hw_industry_name *in = &hw_monthly_industry_names[i];
        const char *n = "0";
        for (int r = 0; r < PQntuples(viol); r++)
          if (!strcmp(PQgetvalue(viol, r, 0), "industry") && !strcmp(PQgetvalue(viol, r, 1), in->key))
            n = PQgetvalue(viol, r, 2);
        if (!strcmp(in->key, "other") && !strcmp(n, "0"))
          continue;
        const char *cells[3] = {in->key, in->zh, n};
        hw_rdoc_row(d, t, cells);
      }
      continue;
    }
    for (int r = 0; r < PQntuples(viol); r++)
      if (!strcmp(PQgetvalue(viol, r, 0), dims[k])) {
        const char *cells[2] = {PQgetvalue(viol, r, 1), PQgetvalue(viol, r, 2)};
        hw_rdoc_row(d, t, cells);
      }
  }
}

static void hw_monthly_rect_tables(hw_rdoc *d, const hw_monthly_request *q, const PGresult *rect,
                                   const PGresult *overdue) {
  const char *heads[HW_MONTHLY_RECT_NCOLS] = {"新增 opened", "已销号 closed",
                                              "7日内销号 closed_7d", "30日内销号 closed_30d",
                                              "未销号 still_open", "逾期 overdue"};
  hw_rtable *t = hw_rdoc_table(d, "rectify", "整改情况 Rectification of the month's hazards",
                               HW_MONTHLY_RECT_NCOLS, hw_monthly_rect_columns, heads, 0x3f);
  hw_rdoc_section(d, t, "五、隐患整改 The hazard list");
  hw_rdoc_note(d, t,
               "Hazards (violations) started in %s, as things stood at the end of the month: "
               "closed (销号) before it, closed within 7 and 30 days of their start, still open, "
               "and overdue: still open more than %u days after they started.",
               q->month, q->overdue_days);
  if (t) {
    const char *cells[HW_MONTHLY_RECT_NCOLS];
    for (int c = 0; c < HW_MONTHLY_RECT_NCOLS; c++)
      cells[c] = hw_val(rect, 0, c);
    t->key_col = 0;
    hw_rdoc_row(d, t, cells);
  }
  const char *oheads[HW_MONTHLY_OVERDUE_NCOLS] = {"编号 id", "类型 kind", "车牌 plate",
                                                  "企业 enterprise", "地区 region",
                                                  "开始 started (GMT+8)", "状态 state",
                                                  "天数 days_open"};
  t = hw_rdoc_table(d, "overdue", "督办清单 Overdue items", HW_MONTHLY_OVERDUE_NCOLS,
                    hw_monthly_overdue_columns, oheads, 0x81);
  hw_rdoc_note(d, t,
               "%d item(s), of any month, still open at the end of %s more than %u days after "
               "they started; the state is the one they had then.",
               PQntuples(overdue), q->month, q->overdue_days);
  for (int r = 0; t && r < PQntuples(overdue); r++) {
    const char *cells[HW_MONTHLY_OVERDUE_NCOLS];
    for (int c = 0; c < HW_MONTHLY_OVERDUE_NCOLS; c++)
      cells[c] = hw_val(overdue, r, c);
    hw_rdoc_row(d, t, cells);
  }
}

/* A crackdown list as a table of the report: the module's columns and cells as they are. */
static void hw_monthly_cd_table(hw_rdoc *d, const hw_cd_table *cd, const char *id,
                                const char *section, const char *title, const char *note) {
  const char *cols[HW_RDOC_MAX_COLS];
  uint32_t numeric = 0;
  size_t n = cd->ncols < HW_RDOC_MAX_COLS ? cd->ncols : HW_RDOC_MAX_COLS;
  for (size_t c = 0; c < n; c++) {
    cols[c] = cd->cols[c].name;
    if (cd->cols[c].type == HW_COL_INT || cd->cols[c].type == HW_COL_NUM)
      numeric |= 1u << c;
  }
  hw_rtable *t = hw_rdoc_table(d, id, title, (int)n, cols, NULL, numeric);
  hw_rdoc_section(d, t, section);
  hw_rdoc_note(d, t, "%s %zu vehicle(s).", note, cd->nrows);
  for (size_t r = 0; t && r < cd->nrows; r++)
    hw_rdoc_row(d, t, (const char *const *)cd->cells + r * cd->ncols);
}

static int hw_pk_col(const char *name) {
  for (int c = 0; c < HW_PLATFORM_KPI_NCOLS; c++)
    if (!strcmp(hw_platform_kpi_columns[c], name))
      return c;
  abort(); /* a name of this file missing from platform_kpi.c: a programming error */
}

/* JT/T 809 platforms: inspection response rate and main-link availability, the month and the
 * month before, exactly as `report platforms` gives them (the same query, same cells). All
 * platforms: they have no region. */
static void hw_monthly_platform_table(hw_rdoc *d, const hw_monthly_request *q, const PGresult *cur,
                                      const PGresult *prev) {
  const char *cols[7] = {"platform", "inspections", "response_rate", "response_rate_prev",
                         "link_availability", "link_availability_prev", "main_down_s"};
  char h_rate[48], h_rate_prev[48], h_av[48], h_av_prev[48];
  snprintf(h_rate, sizeof h_rate, "查岗响应率 response %s", q->month);
  snprintf(h_rate_prev, sizeof h_rate_prev, "查岗响应率 response %s", q->prev_month);
  snprintf(h_av, sizeof h_av, "平台连通率 link %s", q->month);
  snprintf(h_av_prev, sizeof h_av_prev, "平台连通率 link %s", q->prev_month);
  const char *heads[7] = {"平台 platform", "查岗次数 inspections", h_rate, h_rate_prev, h_av,
                          h_av_prev, "断开秒数 main link down, s"};
  hw_rtable *t = hw_rdoc_table(d, "platforms", "平台考核 platforms", 7, cols, heads, 0x7e);
  hw_rdoc_section(d, t, "八、平台考核 platforms");
  hw_rdoc_note(d, t,
               "Every JT/T 809 subordinate platform (platforms have no region): inspections "
               "(查岗) created in the month, the share answered within their answer time, and "
               "the main link's up time over the month (平台连通率), with %s; the figures of "
               "`haulwatch report platforms --from %s-01 --to` the month's last day. A platform "
               "registered during a month is judged from its registration; an empty cell: no "
               "inspection, or not registered yet.",
               q->prev_month, q->month);
  int pc = hw_pk_col("platform"), nc = hw_pk_col("inspections"),
      rc = hw_pk_col("response_rate"), ac = hw_pk_col("link_availability"),
      dc = hw_pk_col("main_down_s");
  for (int r = 0; t && r < PQntuples(cur); r++) {
    const char *id = PQgetvalue(cur, r, pc);
    int pr = -1;
    for (int i = 0; i < PQntuples(prev); i++)
      if (!strcmp(PQgetvalue(prev, i, pc), id))
        pr = i;
    const char *cells[7] = {id, hw_val(cur, r, nc), hw_val(cur, r, rc),
                            pr < 0 ? NULL : hw_val(prev, pr, rc), hw_val(cur, r, ac),
                            pr < 0 ? NULL : hw_val(prev, pr, ac), hw_val(cur, r, dc)};
    hw_rdoc_row(d, t, cells);
  }
}

/* 九、智能安防设备: report safety-devices for the month, its three tables as they are. */
static void hw_monthly_safety_tables(hw_rdoc *d, const hw_safety_report *s) {
  static const char *const scols[] = {"vehicles", "connected", "covered", "covered_pct",
                                      "level2_alarms", "level2_followed", "followed_pct"};
  static const char *const sheads[] = {"重型货车和半挂牵引车 vehicles", "入网 connected",
                                       "装用有效 covered", "覆盖率 covered %",
                                       "二级报警 level-2 alarms", "其后违法 followed",
                                       "比例 followed %"};
  static const char *const ucols[] = {"enterprise", "plate", "terminal_id", "region", "class",
                                      "last_item"};
  static const char *const uheads[] = {"企业 enterprise", "车牌 plate", "终端 terminal",
                                       "地区 region", "车型 class", "最后一次报警 last item"};
  static const char *const rcols[] = {"kind", "type", "level", "alarms", "vehicles",
                                      "per_vehicle", "km", "per_100km"};
  static const char *const rheads[] = {"类别 kind", "类型 type", "级别 level", "报警数 alarms",
                                       "车辆 vehicles", "车均 per vehicle", "里程 km",
                                       "百公里 per 100 km"};
  const PGresult *res[3] = {s->summary, s->uncovered, s->rates};
  hw_rtable *t[3];
  t[0] = hw_rdoc_table(d, "safety", "安防设备覆盖 Coverage", 7, scols, sheads, 0x7f);
  hw_rdoc_section(d, t[0], "九、智能安防设备 Active-safety devices");
  hw_rdoc_note(d, t[0], "Heavy trucks and semi-trailer tractors, as `haulwatch report "
                        "safety-devices` gives them for the month: covered = connected and an "
                        "active-safety item in the days before the month's end.");
  t[1] = hw_rdoc_table(d, "safety-missing", "无有效设备车辆 Without a working device", 6, ucols,
                       uheads, 0);
  t[2] = hw_rdoc_table(d, "safety-rates", "报警率 Alarm rates of covered vehicles", 8, rcols,
                       rheads, 0xfa);
  for (int k = 0; k < 3; k++) {
    if (!t[k] || !res[k])
      continue;
    for (int r = 0; r < PQntuples(res[k]); r++) {
      const char *cells[8];
      for (int c = 0; c < t[k]->ncols; c++)
        cells[c] = hw_val(res[k], r, c);
      hw_rdoc_row(d, t[k], cells);
    }
  }
}

static int hw_monthly_build(hw_rdoc *d, const hw_monthly_request *q, const hw_monthly_data *m) {
  int n = PQntuples(m->cur), sc = hw_kpi_col("score");
  const char *grouping = q->cur.by == HW_KPI_BY_REGION ? "地区 city" : "企业 enterprise";
  hw_rank_item *items = calloc((size_t)n + 1, sizeof *items);
  size_t *order = calloc((size_t)n + 1, sizeof *order);
  unsigned *rank = calloc((size_t)n + 1, sizeof *rank);
  if (!items || !order || !rank) {
    d->failed = 1;
    goto out;
  }
  for (int r = 0; r < n; r++) {
    const char *s = hw_val(m->cur, r, sc);
    char *end = NULL;
    items[r].group = PQgetvalue(m->cur, r, 0);
    items[r].score = s ? strtod(s, &end) : 0;
    items[r].scored = s && end != s && !*end && isfinite(items[r].score);
  }
  hw_monthly_rank(items, (size_t)n, order, rank);
  hw_monthly_ranking(d, q, m->cur, grouping, items, order, rank);
  hw_monthly_kpi_tables(d, q, m->cur, m->prev, grouping);
  hw_monthly_lists_tables(d, m->cur, items, order, rank, grouping);
  hw_monthly_violation_tables(d, q, m->viol);
  hw_monthly_rect_tables(d, q, m->rect, m->overdue);
  hw_monthly_cd_table(d, &m->phaseout, "phaseout", "六、变型拖拉机淘汰 Converted tractors",
                      "淘汰车辆 The phase-out list",
                      "Every vehicle of a retired class in the region, as `haulwatch report "
                      "phaseout` lists it when the report is written: days moved and km since "
                      "the class's retirement, its retired_class violations and their states.");
  hw_monthly_cd_table(d, &m->audit, "registry-audit", "七、大吨小标 Small rated load, heavy truck",
                      "登记质量核查 Registry audit",
                      "Active vehicles of the region whose declared masses fail a check, as "
                      "`haulwatch report registry-audit` lists them, with the reasons.");
  hw_monthly_platform_table(d, q, m->plat_cur, m->plat_prev);
  hw_monthly_safety_tables(d, &m->safety);
out:
  free(items);
  free(order);
  free(rank);
  return d->failed ? -ENOMEM : 0;
}

static int hw_ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n > k && !strcasecmp(s + n - k, suffix);
}

int hw_cmd_report_monthly(int argc, char **argv) {
  hw_monthly_settings s;
  memset(&s, 0, sizeof s);
  int npos, rc = hw_options_parse(hw_monthly_options, HW_ARRAY_SIZE(hw_monthly_options), &s, argc,
                                  argv, hw_monthly_usage, NULL, 0, &npos);
  if (rc)
    return rc > 0 ? 0 : 2;
  hw_monthly_request q;
  char err[160];
  if (hw_monthly_request_parse(&q, s.month, s.region, s.overdue_days, err, sizeof err)) {
    fprintf(stderr, "report monthly: %s\n", err);
    return 2;
  }
  q.cur.score = q.prev.score = s.score;
  int html = hw_ends_with(s.out, ".html") || hw_ends_with(s.out, ".htm");
  if (!html && !hw_ends_with(s.out, ".xlsx")) {
    fprintf(stderr, "report monthly: --out is a file name ending in .html or .xlsx\n");
    return 2;
  }
  PGconn *conn;
  if (hw_cli_pg_connect(s.pg, HW_MONTHLY_SCHEMA, &conn))
    return 1;
  hw_monthly_data m = {0};
  hw_rdoc d;
  char title[128], sub[256], tmp[1100];
  snprintf(title, sizeof title, "道路运输车辆动态监控月度通报 %s Monthly report", q.month);
  snprintf(sub, sizeof sub, "地区 Region: %s · 对比 compared with %s · 时区 GMT+8",
           q.cur.region[0] ? q.cur.region : "全部 all", q.prev_month);
  hw_rdoc_init(&d, title, sub);
  snprintf(tmp, sizeof tmp, "%s.tmp-%ld", s.out, (long)getpid());
  int ret = 1;
  hw_cd_config cdcfg = {s.phaseout_min_km, s.audit_tolerance_kg, s.audit_min_load_pct};
  if (hw_monthly_gather(conn, &q, &cdcfg, &m) ||
      hw_monthly_safety_run(conn, &q, s.coverage_days, s.followed_within_s, &m.safety)) {
    fprintf(stderr, "report monthly: a query failed (see the log above)\n");
    goto out;
  }
  if (hw_monthly_build(&d, &q, &m)) {
    fprintf(stderr, "report monthly: out of memory\n");
    goto out;
  }
  if (html) {
    FILE *f = fopen(tmp, "w");
    if (!f) {
      fprintf(stderr, "report monthly: cannot create %s: %s\n", tmp, strerror(errno));
      goto out;
    }
    rc = hw_report_html_write(f, &d);
    if (fclose(f))
      rc = -EIO;
  } else {
    rc = hw_report_xlsx_write(tmp, &d);
  }
  if (rc || rename(tmp, s.out)) {
    fprintf(stderr, "report monthly: cannot write %s%s%s\n", s.out, rc ? "" : ": ",
            rc ? "" : strerror(errno));
    unlink(tmp);
    goto out;
  }
  printf("wrote %s: %s, %d group(s), %zu table(s)\n", s.out, q.month, PQntuples(m.cur), d.n);
  ret = 0;
out:
  hw_rdoc_free(&d);
  hw_monthly_data_free(&m);
  PQfinish(conn);
  return ret;
}
