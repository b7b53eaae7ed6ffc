/* The simulator engine against a fake daemon (sim_fake_server.h): every fix acknowledged and
 * stored once with no gap, resend after dropped connections, paced reports, refused logins,
 * duration mode, sequence numbers continuing after the server's, and a server that is not there. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "load/sim.h"
#include "sim_fake_server.h"

#define MAX_TRUCKS 64

static char id_buf[MAX_TRUCKS][HW_TERMINAL_ID_MAX + 1];
static char *ids[MAX_TRUCKS];
static char *tokens[MAX_TRUCKS];

static fake_server *server_new(void) {
  fake_server *s = calloc(1, sizeof *s);
  assert_non_null(s);
  return s;
}

static void config(hw_sim_config *cfg, const fake_server *s, uint32_t trucks, uint64_t fixes) {
  memset(cfg, 0, sizeof *cfg);
  assert_true(trucks <= MAX_TRUCKS);
  for (uint32_t i = 0; i < trucks; i++) {
    snprintf(id_buf[i], sizeof id_buf[i], "sim%06u", i + 1);
    ids[i] = id_buf[i];
    tokens[i] = "secret";
  }
  struct sockaddr_in *a = (struct sockaddr_in *)&cfg->addr;
  assert_int_equal(uv_ip4_addr("127.0.0.1", s->port, a), 0);
  cfg->proto = &hw_sim_proto_pb;
  cfg->trucks = trucks;
  cfg->ids = ids;
  cfg->tokens = tokens;
  cfg->fixes = fixes;
  cfg->interval_ms = 0;
  cfg->step_ms = 10000;
  cfg->start_ms = 1700000000000LL;
  cfg->report_fixes = 50;
  cfg->window = 100;
  cfg->timeout_s = 60;
  cfg->seed = 3;
}

static void check_stored(const fake_server *s, uint32_t trucks, uint64_t expect) {
  for (uint32_t i = 1; i <= trucks; i++) {
    assert_int_equal(s->terms[i].stored, expect);
    assert_int_equal(s->terms[i].fixes, expect - s->initial_stored);
  }
  assert_int_equal(s->gaps, 0);
  assert_int_equal(s->bad, 0);
}

static void test_flat_out(void **state) {
  (void)state;
  fake_server *s = server_new();
  assert_int_equal(fake_server_start(s), 0);
  hw_sim_config cfg;
  config(&cfg, s, 20, 1000);
  hw_sim_result r;
  assert_int_equal(hw_sim_run(&cfg, &r), 0);
  fake_server_stop(s);
  assert_int_equal(r.generated, 20 * 1000);
  assert_int_equal(r.acked, 20 * 1000);
  assert_int_equal(r.sent, 20 * 1000);
  assert_int_equal(r.resent, 0);
  assert_int_equal(r.connected, 20);
  assert_int_equal(r.refused, 0);
  assert_false(r.timed_out);
  assert_int_equal(r.ack_latency_us.total, 20 * 1000);
  check_stored(s, 20, 1000);
  /* Reports carried up to 50 fixes. */
  assert_true(s->reports >= 20 * 1000 / 50 && s->reports < 20 * 1000 / 10);
  free(s);
}

static void test_resend_after_drops(void **state) {
  (void)state;
  fake_server *s = server_new();
  s->drop_every = 37;
  assert_int_equal(fake_server_start(s), 0);
  hw_sim_config cfg;
  config(&cfg, s, 10, 2000);
  cfg.report_fixes = 20;
  hw_sim_result r;
  assert_int_equal(hw_sim_run(&cfg, &r), 0);
  fake_server_stop(s);
  assert_true(s->drops > 10);
  assert_int_equal(r.acked, 10 * 2000);
  assert_true(r.resent > 0);
  assert_true(r.reconnects > 0);
  /* Every fix stored exactly once, in order, despite lost fixes and lost acks. */
  check_stored(s, 10, 2000);
  free(s);
}

static void test_paced(void **state) {
  (void)state;
  fake_server *s = server_new();
  assert_int_equal(fake_server_start(s), 0);
  hw_sim_config cfg;
  config(&cfg, s, 5, 10);
  cfg.interval_ms = 20;
  cfg.step_ms = 20;
  cfg.report_fixes = 1;
  hw_sim_result r;
  assert_int_equal(hw_sim_run(&cfg, &r), 0);
  fake_server_stop(s);
  assert_int_equal(r.acked, 50);
  assert_int_equal(s->reports, 50); /* one fix per report, one report per tick */
  check_stored(s, 5, 10);
  free(s);
}

static void test_refused(void **state) {
  (void)state;
  fake_server *s = server_new();
  s->refuse_index = 2;
  assert_int_equal(fake_server_start(s), 0);
  hw_sim_config cfg;
  config(&cfg, s, 4, 100);
  hw_sim_result r;
  assert_int_equal(hw_sim_run(&cfg, &r), 0);
  fake_server_stop(s);
  assert_int_equal(r.refused, 1);
  assert_int_equal(r.connected, 3);
  assert_int_equal(r.acked, 300);
  assert_int_equal(s->terms[2].fixes, 0);
  assert_false(r.timed_out);
  free(s);
}

/* A fix refused alone (Ack.refused) is counted, per truck, and does not stop the truck: the
 * server's next Ack covers its seq and every other fix is acknowledged. */
static void test_fix_refused(void **state) {
  (void)state;
  fake_server *s = server_new();
  s->refuse_seq = 7;
  assert_int_equal(fake_server_start(s), 0);
  hw_sim_config cfg;
  config(&cfg, s, 3, 100);
  hw_sim_result r;
  assert_int_equal(hw_sim_run(&cfg, &r), 0);
  fake_server_stop(s);
  assert_int_equal(s->refusals, 3);
  assert_int_equal(r.fixes_refused, 3);
  assert_int_equal(r.acked, 300);
  assert_false(r.timed_out);
  free(s);
}

static void test_duration(void **state) {
  (void)state;
  fake_server *s = server_new();
  assert_int_equal(fake_server_start(s), 0);
  hw_sim_config cfg;
  config(&cfg, s, 8, 0);
  cfg.duration_ms = 300;
  hw_sim_result r;
  assert_int_equal(hw_sim_run(&cfg, &r), 0);
  fake_server_stop(s);
  assert_true(r.generated > 8 * 100);
  assert_int_equal(r.acked, r.generated);
  uint64_t stored = 0;
  for (int i = 1; i <= 8; i++)
    stored += s->terms[i].fixes;
  assert_int_equal(stored, r.acked);
  free(s);
}

static void test_seq_continues(void **state) {
  (void)state;
  fake_server *s = server_new();
  s->initial_stored = 5000;
  assert_int_equal(fake_server_start(s), 0);
  hw_sim_config cfg;
  config(&cfg, s, 3, 300);
  hw_sim_result r;
  assert_int_equal(hw_sim_run(&cfg, &r), 0);
  fake_server_stop(s);
  assert_int_equal(r.acked, 900);
  check_stored(s, 3, 5300);
  free(s);
}

static void test_no_server(void **state) {
  (void)state;
  fake_server *s = server_new();
  assert_int_equal(fake_server_start(s), 0);
  fake_server_stop(s); /* the port is now closed */
  hw_sim_config cfg;
  config(&cfg, s, 2, 10);
  cfg.timeout_s = 1;
  hw_sim_result r;
  assert_int_equal(hw_sim_run(&cfg, &r), 0);
  assert_true(r.timed_out);
  assert_true(r.connect_failures >= 2);
  assert_int_equal(r.acked, 0);
  assert_int_equal(r.connected, 0);
  /* Paced trucks keep driving without a server: what they could not send stays unacked. */
  config(&cfg, s, 2, 0);
  cfg.duration_ms = 300;
  cfg.interval_ms = cfg.step_ms = 20;
  cfg.report_fixes = 1;
  assert_int_equal(hw_sim_run(&cfg, &r), 0);
  assert_true(r.generated >= 2 * 5);
  assert_int_equal(r.acked, 0);
  assert_int_equal(r.sent, 0);
  free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_flat_out),     cmocka_unit_test(test_resend_after_drops),
      cmocka_unit_test(test_paced),        cmocka_unit_test(test_refused),
      cmocka_unit_test(test_fix_refused),
      cmocka_unit_test(test_duration),     cmocka_unit_test(test_seq_continues),
      cmocka_unit_test(test_no_server),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
