/* The Prometheus exposition writer (http/prom.h) and the daemon's metric table (cli/metrics.c):
 * escaping, histogram buckets, and the conventions every family must keep. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli/metrics.h"

static void test_escaping(void **state) {
  hw_prom p;
  hw_prom_init(&p);
  hw_prom_family(&p, "x_total", "counter", "line one\nback\\slash");
  hw_prom_label l[2] = {{"a", "q\"b\\c\nd"}, {"b", ""}};
  hw_prom_u64(&p, "x_total", l, 2, 18446744073709551615ull);
  hw_prom_u64(&p, "y", NULL, 0, 0);
  assert_int_equal(hw_prom_finish(&p), 0);
  assert_string_equal(p.data,
                      "# HELP x_total line one\\nback\\\\slash\n"
                      "# TYPE x_total counter\n"
                      "x_total{a=\"q\\\"b\\\\c\\nd\",b=\"\"} 18446744073709551615\n"
                      "y 0\n");
  hw_prom_free(&p);
}

static void test_histogram(void **state) {
  hw_lat_hist h;
  memset(&h, 0, sizeof h);
  hw_lat_hist_record(&h, 500);       /* 0.5 ms */
  hw_lat_hist_record(&h, 1000);      /* exactly 1 ms: le is inclusive */
  hw_lat_hist_record(&h, 2000);
  hw_lat_hist_record(&h, 40000000);  /* 40 s: only +Inf */
  hw_lat_hist g = h;
  hw_lat_hist_merge(&g, &h);         /* two loops' histograms add */
  hw_prom p;
  hw_prom_init(&p);
  hw_prom_label l[1] = {{"k", "v"}};
  hw_prom_lat_hist(&p, "lat_seconds", l, 1, &g);
  assert_int_equal(hw_prom_finish(&p), 0);
  assert_non_null(strstr(p.data, "lat_seconds_bucket{k=\"v\",le=\"0.001\"} 4\n"));
  assert_non_null(strstr(p.data, "lat_seconds_bucket{k=\"v\",le=\"0.0025\"} 6\n"));
  assert_non_null(strstr(p.data, "lat_seconds_bucket{k=\"v\",le=\"30\"} 6\n"));
  assert_non_null(strstr(p.data, "lat_seconds_bucket{k=\"v\",le=\"+Inf\"} 8\n"));
  assert_non_null(strstr(p.data, "lat_seconds_sum{k=\"v\"} 80.007000\n"));
  assert_non_null(strstr(p.data, "lat_seconds_count{k=\"v\"} 8\n"));
  hw_prom_free(&p);
}

/* Every family: HELP then TYPE, a haulwatch_ name used once, counters named _total, histograms
 * with buckets, sum and count; samples belong to the family announced before them; no label
 * names a vehicle or terminal. */
static void test_table_conventions(void **state) {
  hw_metrics_snapshot s;
  memset(&s, 0, sizeof s);
  s.proto[0].frames = 7;
  s.proto[1].refusals[HW_REFUSE_AUTH_FAILED] = 3;
  s.proto[0].conn_auth = 2;
  s.proto[2].fixes = 11; /* jt809 */
  s.proto[2].refusals[HW_REFUSE_INVALID_FIX] = 4;
  s.violations_opened[HW_VIOL_SPEEDING] = 5;
  s.rows_committed = 123456;
  hw_lat_hist_record(&s.commit_latency, 3000);
  hw_prom p;
  hw_prom_init(&p);
  assert_int_equal(hw_metrics_render(&s, &p), 0);
  assert_non_null(strstr(p.data, "\nhaulwatch_frames_total{protocol=\"pb\"} 7\n"));
  assert_non_null(strstr(p.data, "\nhaulwatch_refusals_total{protocol=\"jt808\",reason=\"auth_failed\"} 3\n"));
  assert_non_null(strstr(p.data, "\nhaulwatch_connections{protocol=\"pb\",state=\"authenticated\"} 2\n"));
  assert_non_null(strstr(p.data, "\nhaulwatch_fixes_received_total{protocol=\"jt809\"} 11\n"));
  assert_non_null(strstr(p.data, "\nhaulwatch_refusals_total{protocol=\"jt809\",reason=\"invalid_fix\"} 4\n"));
  assert_non_null(strstr(p.data, "\nhaulwatch_violations_opened_total{kind=\"speeding\"} 5\n"));
  assert_non_null(strstr(p.data, "\nhaulwatch_positions_committed_total 123456\n"));
  assert_non_null(strstr(p.data, "\nhaulwatch_batch_commit_duration_seconds_bucket{le=\"0.005\"} 1\n"));
  assert_non_null(strstr(p.data, "\nhaulwatch_batch_commit_duration_seconds_count 1\n"));
  assert_null(strstr(p.data, "terminal_id=")); /* no label per terminal */
  assert_null(strstr(p.data, "{terminal="));
  assert_null(strstr(p.data, "vehicle=")); /* no label per vehicle */

  char names[128][96];
  int nfam = 0;
  char fam[96] = "", type[16] = "";
  char *save, *text = strdup(p.data);
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    if (!strncmp(line, "# HELP ", 7)) {
      assert_int_equal(sscanf(line + 7, "%95s", fam), 1);
      assert_true(!strncmp(fam, "haulwatch_", 10));
      for (int i = 0; i < nfam; i++)
        if (!strcmp(names[i], fam))
          fail_msg("family %s twice", fam);
      assert_true(nfam < 128);
      strcpy(names[nfam++], fam);
      type[0] = 0;
      continue;
    }
    if (!strncmp(line, "# TYPE ", 7)) {
      char n[96];
      assert_int_equal(sscanf(line + 7, "%95s %15s", n, type), 2);
      assert_string_equal(n, fam);
      size_t l = strlen(fam);
      if (!strcmp(type, "counter"))
        assert_true(l > 6 && !strcmp(fam + l - 6, "_total"));
      else if (!strcmp(type, "gauge"))
        assert_false(l > 6 && !strcmp(fam + l - 6, "_total"));
      else
        assert_string_equal(type, "histogram");
      continue;
    }
    assert_true(type[0] != 0); /* a sample after its HELP and TYPE */
    size_t l = strlen(fam);
    assert_true(!strncmp(line, fam, l));
    const char *rest = line + l;
    if (!strcmp(type, "histogram"))
      assert_true(!strncmp(rest, "_bucket{", 8) || !strncmp(rest, "_sum ", 5) ||
                  !strncmp(rest, "_count ", 7));
    else
      assert_true(*rest == ' ' || *rest == '{');
  }
  free(text);
  assert_true(nfam >= 30);
  hw_prom_free(&p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_escaping),
      cmocka_unit_test(test_histogram),
      cmocka_unit_test(test_table_conventions),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
