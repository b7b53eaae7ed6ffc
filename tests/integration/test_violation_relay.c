/* The live feed end to end: hw_violation_store (or plain SQL, as the CLI does) -> trigger ->
 * NOTIFY hw_violations -> hw_violation_relay -> PUBLISH hw:violations on a private redis-server,
 * read by a blocking subscriber. */
#include "viol_util.h"

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <signal.h>

#include "sinks/violation_relay.h"
#include "sinks/violation_store.h"

#define DB "hw_test_vrelay"
#define TID "013800000002"

typedef struct fixture {
  hw_test_loop env;
  char conninfo[512];
  PGconn *pg;
  int port;
  pid_t redis;
  redisContext *sub;
  hw_violation_relay *relay;
  hw_violation_store *store;
} fixture;

static pid_t redis_pid; /* stopped by the teardown even when an assertion jumps out */

static int teardown(void **state) {
  (void)state;
  if (redis_pid > 0)
    hw_test_stop_pid(redis_pid);
  redis_pid = 0;
  return 0;
}

static void redis_up(fixture *f) {
  f->redis = redis_pid = hw_test_redis_start(f->port);
}

static void redis_down(fixture *f) {
  hw_test_stop_pid(f->redis);
  f->redis = redis_pid = 0;
}

static void subscribe(fixture *f) {
  struct timeval tv = {5, 0};
  f->sub = redisConnectWithTimeout("127.0.0.1", f->port, tv);
  assert_non_null(f->sub);
  assert_int_equal(f->sub->err, 0);
  redisReply *r = redisCommand(f->sub, "SUBSCRIBE %s", HW_VIOLATION_REDIS_CHANNEL);
  assert_non_null(r);
  assert_int_equal(r->type, REDIS_REPLY_ARRAY);
  freeReplyObject(r);
}

/* The next message on the channel, parsed; the loop runs while waiting (the relay lives on it).
 * NULL when none came within HW_TEST_WAIT_MS. */
static cJSON *next_message(fixture *f) {
  int64_t deadline = hw_now_ms() + HW_TEST_WAIT_MS;
  while (hw_now_ms() < deadline) {
    void *reply = NULL;
    assert_int_equal(redisReaderGetReply(f->sub->reader, &reply), REDIS_OK);
    if (reply) {
      redisReply *r = reply;
      assert_int_equal(r->type, REDIS_REPLY_ARRAY);
      assert_int_equal(r->elements, 3);
      assert_string_equal(r->element[0]->str, "message");
      assert_string_equal(r->element[1]->str, HW_VIOLATION_REDIS_CHANNEL);
      cJSON *j = cJSON_Parse(r->element[2]->str);
      if (!j)
        fail_msg("not JSON: %s", r->element[2]->str);
      freeReplyObject(r);
      return j;
    }
    struct pollfd p = {.fd = f->sub->fd, .events = POLLIN};
    if (poll(&p, 1, 0) == 1)
      assert_int_equal(redisBufferRead(f->sub), REDIS_OK);
    else
      uv_run(&f->env.loop, UV_RUN_ONCE);
  }
  return NULL;
}

/* No message within ms (the loop runs meanwhile). */
static void expect_silence(fixture *f, int ms) {
  hw_test_loop_run_for(&f->env, ms);
  struct pollfd p = {.fd = f->sub->fd, .events = POLLIN};
  void *reply = NULL;
  assert_int_equal(redisReaderGetReply(f->sub->reader, &reply), REDIS_OK);
  assert_null(reply);
  assert_int_equal(poll(&p, 1, 0), 0);
}

static const char *jstr(const cJSON *j, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
  if (!v)
    fail_msg("no field %s", name);
  return cJSON_IsNull(v) ? "<null>" : cJSON_IsString(v) ? v->valuestring : "<not a string>";
}

static double jnum(const cJSON *j, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
  if (!cJSON_IsNumber(v))
    fail_msg("field %s is not a number", name);
  return v->valuedouble;
}

static int relay_ready(void *arg) {
  fixture *f = arg;
  hw_violation_relay_stats st;
  hw_violation_relay_get_stats(f->relay, &st);
  return st.listening && st.redis_connected;
}

static void fx_start(fixture *f, uint32_t max_pending) {
  memset(f, 0, sizeof *f);
  hw_test_fresh_db(DB, f->conninfo, sizeof f->conninfo);
  f->pg = hw_test_pg_connect(f->conninfo);
  f->port = hw_test_free_port();
  redis_up(f);
  subscribe(f);
  hw_test_loop_init(&f->env);
  hw_violation_relay_config cfg = {.conninfo = f->conninfo, .redis_host = "127.0.0.1",
                                   .redis_port = f->port, .max_pending = max_pending,
                                   .timeout_ms = 2000};
  assert_int_equal(hw_violation_relay_start(&f->relay, &f->env.loop, &cfg), 0);
  assert_int_equal(hw_violation_store_start(&f->store, &f->env.loop, f->conninfo), 0);
  assert_true(hw_test_loop_run_until(&f->env, relay_ready, f));
}

static void fx_stop(fixture *f) {
  int done = 0;
  hw_violation_relay_stop(f->relay, hw_test_on_done, &done);
  hw_violation_store_stop(f->store, hw_test_on_done, &done);
  assert_int_equal(done, 0);
  for (int64_t until = hw_now_ms() + HW_TEST_WAIT_MS; done < 2 && hw_now_ms() < until;)
    uv_run(&f->env.loop, UV_RUN_ONCE);
  assert_int_equal(done, 2);
  hw_test_loop_close(&f->env);
  redisFree(f->sub);
  if (f->redis)
    redis_down(f);
  PQfinish(f->pg);
}

static void test_new_state_update(void **state) {
  (void)state;
  fixture f;
  fx_start(&f, 0);
  hw_vehicle v;
  memset(&v, 0, sizeof v);
  snprintf(v.plate, sizeof v.plate, "冀A12345");
  snprintf(v.region, sizeof v.region, "130100");
  snprintf(v.enterprise, sizeof v.enterprise, "Hebei Haulage");
  hw_violation_event open = vu_event(TID, HW_VIOL_SPEEDING, HW_PHASE_OPEN, VU_T0, VU_T0 + 30000,
                                     1100, 1000, 1, "{\"n\":1}");
  hw_violation_store_put(f.store, &open, &v);

  cJSON *m = next_message(&f);
  assert_non_null(m);
  assert_string_equal(jstr(m, "event"), "new");
  assert_string_equal(jstr(m, "kind"), "speeding");
  assert_string_equal(jstr(m, "episode_key"), open.episode_id);
  assert_string_equal(jstr(m, "terminal_id"), TID);
  assert_string_equal(jstr(m, "plate"), "冀A12345");
  assert_string_equal(jstr(m, "region"), "130100");
  assert_string_equal(jstr(m, "enterprise"), "Hebei Haulage");
  assert_string_equal(jstr(m, "started_at"), "2026-03-02T00:00:00.000Z");
  assert_string_equal(jstr(m, "last_at"), "2026-03-02T00:00:30.000Z");
  assert_string_equal(jstr(m, "ended_at"), "<null>");
  assert_string_equal(jstr(m, "state"), "open");
  assert_true(jnum(m, "measured") == 110.0);
  assert_true(jnum(m, "limit_value") == 100.0);
  assert_true(jnum(m, "grade") == 1.0);
  int64_t id = (int64_t)jnum(m, "id");
  cJSON_Delete(m);

  /* A transition by SQL, as `haulwatch violations transition` makes it. */
  vu_expect(f.pg, "open", "SELECT hw_violation_transition(%lld, 'notified', 'op', NULL)", (long long)id);
  m = next_message(&f);
  assert_non_null(m);
  assert_string_equal(jstr(m, "event"), "state");
  assert_string_equal(jstr(m, "state"), "notified");
  assert_true((int64_t)jnum(m, "id") == id);
  cJSON_Delete(m);

  /* The same event again changes nothing and says nothing; then a real update. */
  hw_violation_store_put(f.store, &open, &v);
  expect_silence(&f, 600);
  hw_violation_event close = open;
  close.phase = HW_PHASE_CLOSE;
  close.ended_ms = VU_T0 + 75000;
  close.value = 1600;
  close.grade = 3;
  hw_violation_store_put(f.store, &close, &v);
  m = next_message(&f);
  assert_non_null(m);
  assert_string_equal(jstr(m, "event"), "update");
  assert_string_equal(jstr(m, "state"), "notified");
  assert_string_equal(jstr(m, "ended_at"), "2026-03-02T00:01:15.000Z");
  assert_true(jnum(m, "measured") == 160.0);
  assert_true(jnum(m, "grade") == 3.0);
  cJSON_Delete(m);

  /* Evidence alone: no message. Evidence too large for NOTIFY: dropped from the payload. */
  free(vu_pg_text(f.pg, "UPDATE violations SET evidence = '{\"x\":2}'"));
  expect_silence(&f, 300);
  free(vu_pg_text(f.pg, "INSERT INTO violations (kind, episode_key, terminal_id, started_at, evidence) "
                        "VALUES ('speeding', 'big', 't', now(), jsonb_build_object('x', repeat('a', 9000)))"));
  m = next_message(&f);
  assert_non_null(m);
  assert_string_equal(jstr(m, "episode_key"), "big");
  assert_string_equal(jstr(m, "evidence"), "<null>");
  assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "evidence_dropped")));
  cJSON_Delete(m);
  fx_stop(&f);
}

static int received_n(void *arg) {
  fixture *f = ((void **)arg)[0];
  uint64_t n = *(uint64_t *)((void **)arg)[1];
  hw_violation_relay_stats st;
  hw_violation_relay_get_stats(f->relay, &st);
  return st.received >= n;
}

static int all_published(void *arg) {
  fixture *f = arg;
  hw_violation_relay_stats st;
  hw_violation_relay_get_stats(f->relay, &st);
  return st.pending == 0;
}

static int redis_lost(void *arg) {
  fixture *f = arg;
  hw_violation_relay_stats st;
  hw_violation_relay_get_stats(f->relay, &st);
  return !st.redis_connected;
}

static void insert_sql(fixture *f, const char *key) {
  free(vu_pg_text(f->pg, "INSERT INTO violations (kind, episode_key, terminal_id, started_at) "
                         "VALUES ('night_driving', '%s', '" TID "', now())", key));
}

/* PUBLISHes in flight (sent, Redis not answering yet) are not "waiting": max_pending bounds the
 * unsent, so a message that arrives while a full window waits for Redis' answers is kept, not
 * dropped as the newest (it was, whenever a NOTIFY came before the answers). */
static void test_in_flight_not_counted_as_waiting(void **state) {
  (void)state;
  fixture f;
  fx_start(&f, 3);
  insert_sql(&f, "k0");
  cJSON *m = next_message(&f);
  assert_non_null(m);
  cJSON_Delete(m);
  /* Redis stops answering every client for a while (less than the relay's 2 s timeout). */
  redisContext *ctl = redisConnect("127.0.0.1", f.port);
  assert_non_null(ctl);
  redisReply *rep = redisCommand(ctl, "CLIENT PAUSE 1000 ALL");
  assert_non_null(rep);
  assert_int_equal(rep->type, REDIS_REPLY_STATUS);
  freeReplyObject(rep);
  redisFree(ctl);
  for (int i = 1; i <= 3; i++) {
    char key[8];
    snprintf(key, sizeof key, "k%d", i);
    insert_sql(&f, key);
  }
  uint64_t want = 4;
  void *args[2] = {&f, &want};
  assert_true(hw_test_loop_run_until(&f.env, received_n, args));
  hw_test_loop_run_for(&f.env, 100); /* k1..k3 go out and wait for Redis */
  insert_sql(&f, "k4");
  want = 5;
  assert_true(hw_test_loop_run_until(&f.env, received_n, args));
  hw_violation_relay_stats st;
  hw_violation_relay_get_stats(f.relay, &st);
  assert_int_equal(st.dropped, 0);
  for (int i = 1; i <= 4; i++) {
    char key[8];
    snprintf(key, sizeof key, "k%d", i);
    m = next_message(&f);
    assert_non_null(m);
    assert_string_equal(jstr(m, "episode_key"), key);
    cJSON_Delete(m);
  }
  assert_true(hw_test_loop_run_until(&f.env, all_published, &f));
  fx_stop(&f);
}

/* Redis goes away: messages wait (at most max_pending, the oldest go), and after Redis is back
 * they and the later ones arrive, in order. */
static void test_redis_down_then_up(void **state) {
  (void)state;
  fixture f;
  fx_start(&f, 3);
  insert_sql(&f, "k0");
  cJSON *m = next_message(&f);
  assert_non_null(m);
  assert_string_equal(jstr(m, "episode_key"), "k0");
  cJSON_Delete(m);

  redisFree(f.sub);
  redis_down(&f);
  assert_true(hw_test_loop_run_until(&f.env, redis_lost, &f));
  for (int i = 1; i <= 5; i++) {
    char key[8];
    snprintf(key, sizeof key, "k%d", i);
    insert_sql(&f, key);
  }
  uint64_t want = 6;
  void *args[2] = {&f, &want};
  int got = hw_test_loop_run_until(&f.env, received_n, args);
  hw_violation_relay_stats st;
  hw_violation_relay_get_stats(f.relay, &st);
  if (!got)
    fail_msg("received %llu, pending %zu, dropped %llu, listening %d", (unsigned long long)st.received,
             st.pending, (unsigned long long)st.dropped, st.listening);
  assert_int_equal(st.pending, 3);
  assert_int_equal(st.dropped, 2);
  assert_int_equal(st.published, 1);

  /* Back on the same port; the subscriber is there before the relay can reconnect (the loop is
   * not running meanwhile). */
  redis_up(&f);
  subscribe(&f);
  for (int i = 3; i <= 5; i++) {
    m = next_message(&f);
    assert_non_null(m);
    char key[8];
    snprintf(key, sizeof key, "k%d", i);
    assert_string_equal(jstr(m, "episode_key"), key);
    assert_string_equal(jstr(m, "event"), "new");
    cJSON_Delete(m);
  }
  insert_sql(&f, "k6");
  m = next_message(&f);
  assert_non_null(m);
  assert_string_equal(jstr(m, "episode_key"), "k6");
  cJSON_Delete(m);
  /* The subscriber may hear k6 before the relay hears Redis' answer to its PUBLISH. */
  assert_true(hw_test_loop_run_until(&f.env, all_published, &f));
  hw_violation_relay_get_stats(f.relay, &st);
  assert_int_equal(st.published, 5);
  assert_int_equal(st.pending, 0);
  assert_true(st.reconnects >= 1);
  fx_stop(&f);
}

/* PostgreSQL drops the relay's session: it listens again on the next one. */
static void test_listens_again_after_pg_loss(void **state) {
  (void)state;
  fixture f;
  fx_start(&f, 0);
  char *pid = vu_pg_text(f.pg, "SELECT pid FROM pg_stat_activity WHERE application_name = "
                              "'haulwatch-vfeed' AND datname = '" DB "'");
  assert_true(pid[0] != '\0');
  vu_expect(f.pg, "t", "SELECT pg_terminate_backend(%s)", pid);
  /* Ready again on a new session: a session other than the killed one has run LISTEN. */
  int again = 0;
  for (int64_t until = hw_now_ms() + HW_TEST_WAIT_MS; !again && hw_now_ms() < until;) {
    hw_test_loop_run_for(&f.env, 20);
    char *n = vu_pg_text(f.pg, "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                               "'haulwatch-vfeed' AND datname = '" DB "' AND pid <> %s AND "
                               "query LIKE 'LISTEN%%'", pid);
    again = !strcmp(n, "1") && relay_ready(&f);
    free(n);
  }
  free(pid);
  assert_true(again);
  insert_sql(&f, "after-loss");
  cJSON *m = next_message(&f);
  assert_non_null(m);
  assert_string_equal(jstr(m, "episode_key"), "after-loss");
  cJSON_Delete(m);
  fx_stop(&f);
}

int main(void) {
  vu_log_level();
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_new_state_update, teardown),
      cmocka_unit_test_teardown(test_redis_down_then_up, teardown),
      cmocka_unit_test_teardown(test_in_flight_not_counted_as_waiting, teardown),
      cmocka_unit_test_teardown(test_listens_again_after_pg_loss, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
