/* haulwatch web end to end, against a real PostgreSQL and Redis with data inserted directly:
 * login (cookie flags, logout, rate limits), API tokens, the CSRF rule (415), region scoping and
 * roles (every forbidden read and write tried: another city's vehicle, track or violation is
 * 404, a viewer's transition 403), violations (filters, cursor paging, one with its evidence
 * track and audit, the lifecycle with 409 naming the allowed step), vehicles joined with Redis
 * (state, bbox, paging), tracks (thinning), CSV (parsed back, formulas neutralised), XLSX (a zip
 * that unzip accepts, holding the rows), static files (no traversal), and hostile input
 * (malformed JSON, bad UTF-8, huge bodies, injection attempts, a slow client): a clear 4xx
 * each time and the process goes on serving. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "webclient.h"

static hw_test_env env;
static int wport;
static const char *logfile = "test_web.web.log";
static char webroot[] = "/tmp/hw-test-web-XXXXXX";

static wc_resp R;

static const char *hdr(const char *name) { return wc_header(&R, name); }

/* One request on its own connection; the whole answer in R. extra: more header lines. */
static void http_raw(const char *method, const char *path, const char *extra, const void *body,
                     size_t blen) {
  wc_request(wport, method, path, extra, body, blen, &R);
}

static char cookie_hdr[256];

static void get_as(const char *auth, const char *path) { http_raw("GET", path, auth, NULL, 0); }

/* A GET refused with 400, its error naming what was wrong (says). */
static void get_refused(const char *auth, const char *path, const char *says) {
  get_as(auth, path);
  assert_int_equal(R.status, 400);
  assert_non_null(strstr(R.body, says));
}

static void post_json(const char *auth, const char *path, const char *json) {
  wc_post_json(wport, auth, path, json, &R);
}

/* Logs in and returns the "Cookie: ..." header line for later requests (static buffer); the
 * session cookie's flags are checked on every login. */
static const char *login(const char *user, const char *pw) {
  wc_login(wport, user, pw, &R, cookie_hdr, sizeof cookie_hdr);
  const char *sc = hdr("Set-Cookie");
  assert_non_null(strstr(sc, "HttpOnly"));
  assert_non_null(strstr(sc, "SameSite=Strict"));
  assert_non_null(strstr(sc, "Path=/"));
  return cookie_hdr;
}

static void sql(const char *q) { hw_test_pg_scalar(env.db, q); }

static void user_add(const char *name, const char *role, const char *regions, const char *pw) {
  wc_user_add(name, role, regions, pw);
}

static int count_of(const char *s, const char *needle) {
  int n = 0;
  for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
    n++;
  return n;
}

static void clear_attempts(void) { sql("DELETE FROM web_login_attempts"); }

/* --- data: three cities, their vehicles, violations, positions and latest states ------------ */

static void seed(void) {
  /* Nanjing 3201xx, Wuxi 3202xx (same province 32), Hangzhou 3301xx. */
  sql("INSERT INTO vehicles (plate, plate_colour, class_code, terminal_id, region, enterprise) VALUES "
      "('苏A00001', 2, 'heavy_truck', 'nj1', '320102', 'NJ Freight'),"
      "('苏A00002', 2, 'dangerous_goods', 'nj2', '320115', 'NJ Freight'),"
      "('苏A00003', 2, 'heavy_truck', 'nj3', '320102', '=HYPERLINK(\"http://x\")'),"
      "('苏B00001', 2, 'heavy_truck', 'wx1', '320211', 'WX Haul'),"
      "('浙A00001', 2, 'heavy_truck', 'hz1', '330102', 'HZ Haul')");
  sql("INSERT INTO violations (kind, episode_key, terminal_id, plate, region, enterprise, started_at, "
      "ended_at, measured, limit_value, grade) VALUES "
      "('speeding', 'k1', 'nj1', '苏A00001', '320102', 'NJ Freight', '2026-03-01 08:00+08', '2026-03-01 08:10+08', 95, 80, 1),"
      "('fatigue', 'k2', 'nj1', '苏A00001', '320102', 'NJ Freight', '2026-03-02 08:00+08', NULL, 15000, 14400, NULL),"
      "('speeding', 'k3', 'nj2', '苏A00002', '320115', 'NJ Freight', '2026-03-03 08:00+08', NULL, 70, 60, 1),"
      "('speeding', 'k4', 'nj3', '苏A00003', '320102', '=HYPERLINK(\"http://x\")', '2026-03-04 08:00+08', NULL, 99, 80, 2),"
      "('speeding', 'k5', 'wx1', '苏B00001', '320211', 'WX Haul', '2026-03-05 08:00+08', NULL, 90, 80, 1),"
      "('speeding', 'k6', 'hz1', '浙A00001', '330102', 'HZ Haul', '2026-03-06 08:00+08', NULL, 90, 80, 1)");
  /* nj1: one fix a minute for two hours from 07:30, the episode k1 inside it. */
  sql("INSERT INTO positions (terminal_id, ts, seq, recv_ts, lat, lon, speed_kmh, heading, alt_m, "
      "alarm, status, odometer_km, quality) SELECT 'nj1', t, 0, t, 32.0 + i * 0.001, 118.8, 60, 90, 10, "
      "0, 2, 0, CASE WHEN i = 5 THEN 1 ELSE 0 END FROM generate_series(0, 119) i, "
      "LATERAL (SELECT timestamptz '2026-03-01 07:30+08' + i * interval '1 minute' AS t) x");
  sql("INSERT INTO positions (terminal_id, ts, seq, recv_ts, lat, lon, speed_kmh, heading, alt_m, "
      "alarm, status, odometer_km) VALUES ('hz1', '2026-03-01 08:00+08', 0, now(), 30.2, 120.1, 50, 0, 0, 0, 2, 0)");

  redisContext *rc = redisConnect("127.0.0.1", env.redis_port);
  assert_true(rc && !rc->err);
  long long now = (long long)time(NULL) * 1000;
  char cmd[512];
  /* nj1 moving in Nanjing, nj2 stopped, nj3 not heard from for an hour, wx1 and hz1 moving. */
  const struct { const char *tid; double lat, lon, speed; long long age_ms; } st[] = {
      {"nj1", 32.05, 118.78, 62.5, 1000}, {"nj2", 32.10, 118.90, 0.0, 2000},
      {"nj3", 32.00, 118.70, 40.0, 3600000}, {"wx1", 31.49, 120.31, 55.0, 1000},
      {"hz1", 30.27, 120.15, 70.0, 1000}};
  for (size_t i = 0; i < sizeof st / sizeof st[0]; i++) {
    snprintf(cmd, sizeof cmd, "HSET %s ts_ms %lld recv_ms %lld lat %.6f lon %.6f speed_kmh %.1f heading 90",
             hw_test_veh_key(st[i].tid), now - st[i].age_ms, now - st[i].age_ms, st[i].lat, st[i].lon, st[i].speed);
    redisReply *r = redisCommand(rc, cmd);
    assert_non_null(r);
    freeReplyObject(r);
  }
  redisFree(rc);
}

static int group_setup(void **state) {
  (void)state;
  hw_test_env_up(&env, "hw_test_web");
  setenv("HAULWATCH_PG", env.conninfo, 1);
  seed();
  user_add("nj_op", "operator", "320100", "nj-operator-pw");
  user_add("nj_view", "viewer", "320100", "nj-viewer-pw");
  user_add("js_view", "viewer", "320000", "js-viewer-pw");
  user_add("admin", "admin", "000000", "admin-pw");
  user_add("hz_op", "operator", "330100 320211", "hz-operator-pw");
  user_add("robot", "viewer", "320102", NULL);
  assert_non_null(mkdtemp(webroot));
  char path[256];
  snprintf(path, sizeof path, "%s/index.html", webroot);
  FILE *f = fopen(path, "w");
  fputs("<!doctype html><title>haulwatch</title>", f);
  fclose(f);
  snprintf(path, sizeof path, "%s/app.js", webroot);
  f = fopen(path, "w");
  fputs("console.log(1);", f);
  fclose(f);
  snprintf(path, sizeof path, "%s/.secret", webroot);
  f = fopen(path, "w");
  fputs("hidden", f);
  fclose(f);

  wport = hw_test_free_port();
  char listen[64];
  snprintf(listen, sizeof listen, "127.0.0.1:%d", wport);
  const char *argv[] = {"web", "--listen", listen, "--pg", env.conninfo, "--redis", env.redis_addr,
                        "--web-root", webroot, "--login-max-user-failures", "3",
                        "--login-max-addr-failures", "6", "--page-max", "50",
                        "--max-body", "4096", "--map-tiles",
                        "http://127.0.0.1:1/tiles/{z}/{x}/{y}.png", NULL};
  env.daemon_pid = hw_test_spawn(argv, logfile);
  /* Ready once PostgreSQL and Redis are connected (requests before that get 503 at once). */
  wc_wait_ready(wport, &R);
  assert_string_equal(R.body, "{\"ready\":true,\"checks\":{\"postgres\":\"ok\",\"redis\":\"ok\"}}");
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  hw_test_env_down(&env);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf %s", webroot);
  assert_int_equal(system(cmd), 0);
  free(R.body);
  return 0;
}

/* --- login, sessions, tokens ----------------------------------------------------------------- */

static void test_login_me_logout(void **state) {
  (void)state;
  clear_attempts();
  get_as(NULL, "/api/v1/me");
  assert_int_equal(R.status, 401);
  assert_non_null(strstr(R.body, "\"error\""));
  post_json(NULL, "/api/v1/login", "{\"user\":\"nj_op\",\"password\":\"wrong\"}");
  assert_int_equal(R.status, 401);
  assert_null(hdr("Set-Cookie"));
  post_json(NULL, "/api/v1/login", "{\"user\":\"nobody\",\"password\":\"x\"}");
  assert_int_equal(R.status, 401);
  char auth[256];
  snprintf(auth, sizeof auth, "%s", login("nj_op", "nj-operator-pw"));
  get_as(auth, "/api/v1/me");
  assert_int_equal(R.status, 200);
  assert_string_equal(R.body, "{\"user\":\"nj_op\",\"role\":\"operator\",\"regions\":[\"320100\"]}");
  assert_string_equal(hdr("Cache-Control"), "no-store");
  /* A forged cookie of the right shape is nobody. */
  get_as("Cookie: hw_session=00000000000000000000000000000000000000000000000000000000000000ff\r\n",
         "/api/v1/me");
  assert_int_equal(R.status, 401);
  post_json(auth, "/api/v1/logout", "{}");
  assert_int_equal(R.status, 204);
  assert_non_null(strstr(hdr("Set-Cookie"), "Max-Age=0"));
  get_as(auth, "/api/v1/me");
  assert_int_equal(R.status, 401);
  /* Sessions and attempts are rows, the password only its hash. */
  assert_int_equal(hw_test_pg_scalar(env.db, "SELECT count(*) FROM web_users WHERE password_hash "
                                             "LIKE '$argon2id$%'"), 5);
  assert_int_equal(hw_test_pg_scalar(env.db, "SELECT count(*) FROM web_login_attempts WHERE NOT ok"), 2);
}

static void test_api_token(void **state) {
  (void)state;
  char cmd[512], token[128] = "";
  snprintf(cmd, sizeof cmd, "%s user token robot", HW_BINARY);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  assert_non_null(fgets(token, sizeof token, p));
  assert_int_equal(pclose(p), 0);
  token[strcspn(token, "\n")] = 0;
  assert_int_equal(strlen(token), 68);
  assert_int_equal(hw_test_pg_scalar(env.db, "SELECT count(*) FROM web_tokens"), 1);
  char auth[256];
  snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", token);
  get_as(auth, "/api/v1/me");
  assert_int_equal(R.status, 200);
  assert_non_null(strstr(R.body, "\"robot\""));
  /* County scope: only 320102's vehicles (nj1, nj3). */
  get_as(auth, "/api/v1/vehicles");
  assert_int_equal(R.status, 200);
  assert_int_equal(count_of(R.body, "\"terminal_id\""), 2);
  token[10] ^= 1;
  snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", token);
  get_as(auth, "/api/v1/me");
  assert_int_equal(R.status, 401);
  /* A token-only user cannot log in with any password. */
  post_json(NULL, "/api/v1/login", "{\"user\":\"robot\",\"password\":\"\"}");
  assert_int_equal(R.status, 400);
  clear_attempts();
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Not a performance assertion: figures for the record (one connection per request, loopback). */
static void test_print_timings(void **state) {
  (void)state;
  clear_attempts();
  double t0 = now_ms();
  char auth[256];
  snprintf(auth, sizeof auth, "%s", login("js_view", "js-viewer-pw"));
  double t_login = now_ms() - t0;
  const char *paths[] = {"/api/v1/me", "/api/v1/violations", "/api/v1/vehicles",
                         "/api/v1/vehicles/nj1/track?from=2026-03-01&to=2026-03-02",
                         "/api/v1/violations?format=xlsx"};
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
    t0 = now_ms();
    for (int k = 0; k < 50; k++) {
      get_as(auth, paths[i]);
      assert_int_equal(R.status, 200);
    }
    printf("test_web: %-60s %.2f ms per request (mean of 50)\n", paths[i], (now_ms() - t0) / 50);
  }
  printf("test_web: login %.1f ms (argon2id interactive)\n", t_login);
}

static void test_login_rate_limit(void **state) {
  (void)state;
  clear_attempts();
  /* Per user: 3 failures, then even the right password is refused for the window. */
  for (int i = 0; i < 3; i++) {
    post_json(NULL, "/api/v1/login", "{\"user\":\"nj_view\",\"password\":\"guess\"}");
    assert_int_equal(R.status, 401);
  }
  post_json(NULL, "/api/v1/login", "{\"user\":\"nj_view\",\"password\":\"nj-viewer-pw\"}");
  assert_int_equal(R.status, 429);
  assert_non_null(hdr("Retry-After"));
  /* Another user from the same address still may, until the address has 6 failures. */
  login("js_view", "js-viewer-pw");
  for (int i = 0; i < 3; i++) {
    post_json(NULL, "/api/v1/login", "{\"user\":\"ghost\",\"password\":\"guess\"}");
    assert_int_equal(R.status, i < 3 ? 401 : 429);
  }
  post_json(NULL, "/api/v1/login", "{\"user\":\"js_view\",\"password\":\"js-viewer-pw\"}");
  assert_int_equal(R.status, 429);
  clear_attempts();
  login("nj_view", "nj-viewer-pw");
}

/* --- the CSRF rule and hostile input -------------------------------------------------------- */

static void test_content_type_and_bad_input(void **state) {
  (void)state;
  clear_attempts();
  char auth[256];
  snprintf(auth, sizeof auth, "%s", login("nj_op", "nj-operator-pw"));
  const char *form = "user=nj_op&password=nj-operator-pw";
  http_raw("POST", "/api/v1/login", "Content-Type: application/x-www-form-urlencoded\r\n", form,
           strlen(form));
  assert_int_equal(R.status, 415);
  char extra[512];
  snprintf(extra, sizeof extra, "%sContent-Type: text/plain\r\n", auth);
  http_raw("POST", "/api/v1/violations/1/transition", extra, "{\"to\":\"notified\"}", 17);
  assert_int_equal(R.status, 415);
  http_raw("POST", "/api/v1/violations/1/transition", auth, "{\"to\":\"notified\"}", 17);
  assert_int_equal(R.status, 415);

  post_json(NULL, "/api/v1/login", "{\"user\":");
  assert_int_equal(R.status, 400);
  post_json(NULL, "/api/v1/login", "[1,2,3]");
  assert_int_equal(R.status, 400);
  post_json(NULL, "/api/v1/login", "{\"user\": 5, \"password\": true}");
  assert_int_equal(R.status, 400);
  post_json(NULL, "/api/v1/login", "{\"user\":\"nj_op\xff\xfe\",\"password\":\"x\"}");
  assert_int_equal(R.status, 400);
  assert_non_null(strstr(R.body, "UTF-8"));
  post_json(auth, "/api/v1/violations/1/transition", "{\"to\":\"notified\", \"note\": \"\xc0\xaf\"}");
  assert_int_equal(R.status, 400);
  /* Bigger than --max-body: refused before it is read. */
  size_t big = 1 << 20;
  char *huge = malloc(big);
  memset(huge, 'a', big);
  http_raw("POST", "/api/v1/login", "Content-Type: application/json\r\n", huge, big);
  free(huge);
  assert_int_equal(R.status, 413);

  /* Query strings: bad escapes, bad UTF-8, NUL, and SQL that stays a value. */
  get_as(auth, "/api/v1/violations?kind=%ff");
  assert_int_equal(R.status, 400);
  get_as(auth, "/api/v1/violations?kind=a%00b");
  assert_int_equal(R.status, 400);
  get_as(auth, "/api/v1/violations?kind=%zz");
  assert_int_equal(R.status, 400);
  get_as(auth, "/api/v1/violations?kind=%27%20OR%201%3D1%20--");
  assert_int_equal(R.status, 200);
  assert_string_equal(R.body, "{\"items\":[],\"next_cursor\":null}");
  get_as(auth, "/api/v1/violations?enterprise=x%27)%3B%20DROP%20TABLE%20violations%3B--");
  assert_int_equal(R.status, 200);
  assert_int_equal(hw_test_pg_scalar(env.db, "SELECT count(*) FROM violations"), 6);
  get_as(auth, "/api/v1/violations?since=yesterday-ish");
  assert_int_equal(R.status, 400);
  get_as(auth, "/api/v1/violations?state=gone");
  assert_int_equal(R.status, 400);
  get_as(auth, "/api/v1/violations?limit=0");
  assert_int_equal(R.status, 400);
  get_as(auth, "/api/v1/violations?limit=51");
  assert_int_equal(R.status, 400);
  get_as(auth, "/api/v1/violations?cursor=abc");
  assert_int_equal(R.status, 400);
  get_refused(auth, "/api/v1/violations?terminal_id=a%20b", "terminal_id is");
  get_refused(auth, "/api/v1/violations?region=12345x", "region is");
  get_as(auth, "/api/v1/vehicles?bbox=1,2,3");
  assert_int_equal(R.status, 400);
  get_as(auth, "/api/v1/vehicles?format=pdf");
  assert_int_equal(R.status, 400);
  get_as(auth, "/api/v1/vehicles/nj1/track?thin=-1");
  assert_int_equal(R.status, 400);
  get_as(auth, "/api/v1/violations/99999999999999999999999");
  assert_int_equal(R.status, 404);

  /* A slow client holding a half-sent request does not hold up anyone else. */
  int slow = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)wport)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(slow, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(write(slow, "POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Le", 48), 48);
  get_as(auth, "/api/v1/me");
  assert_int_equal(R.status, 200);
  close(slow);

  /* Clients that go away while their answer is being made (a password check on the thread
   * pool, a query, Redis replies, a spreadsheet): nothing is left behind and others are served
   * (the process's clean exit under the sanitizers checks the first part). */
  const char *gone[] = {
      "POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Content-Length: 41\r\n\r\n{\"user\":\"nj_op\",\"password\":\"nj-operator\"}",
      "GET /api/v1/vehicles HTTP/1.1\r\nHost: x\r\n%s\r\n",
      "GET /api/v1/violations?format=xlsx HTTP/1.1\r\nHost: x\r\n%s\r\n",
      "GET /api/v1/violations/1 HTTP/1.1\r\nHost: x\r\n%s\r\n",
  };
  for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char req[1024];
    int n = snprintf(req, sizeof req, gone[i], auth);
    assert_int_equal(write(fd, req, (size_t)n), n);
    close(fd);
  }
  usleep(300 * 1000);
  get_as(auth, "/api/v1/vehicles");
  assert_int_equal(R.status, 200);
  assert_int_equal(count_of(R.body, "\"terminal_id\""), 3);
  clear_attempts();
}

/* --- violations ------------------------------------------------------------------------------- */

static long viol_id(const char *key) {
  char q[128];
  snprintf(q, sizeof q, "SELECT id FROM violations WHERE episode_key = '%s'", key);
  return hw_test_pg_scalar(env.db, q);
}

static void test_violations_scoped(void **state) {
  (void)state;
  clear_attempts();
  char nj[256], js[256], hz[256], path[256];
  snprintf(nj, sizeof nj, "%s", login("nj_view", "nj-viewer-pw"));
  snprintf(js, sizeof js, "%s", login("js_view", "js-viewer-pw"));
  snprintf(hz, sizeof hz, "%s", login("hz_op", "hz-operator-pw"));
  get_as(nj, "/api/v1/violations");
  assert_int_equal(R.status, 200);
  assert_int_equal(count_of(R.body, "\"id\":"), 4); /* k1..k4: Nanjing */
  assert_null(strstr(R.body, "WX Haul"));
  assert_non_null(strstr(R.body, "\"started_at\":\"2026-03-04T08:00:00+08:00\""));
  get_as(js, "/api/v1/violations");
  assert_int_equal(count_of(R.body, "\"id\":"), 5); /* the province: Wuxi too */
  get_as(hz, "/api/v1/violations");
  assert_int_equal(count_of(R.body, "\"id\":"), 2); /* Hangzhou city and one Wuxi county */

  /* Another city's violation by id: 404 for reading and for writing. */
  snprintf(path, sizeof path, "/api/v1/violations/%ld", viol_id("k6"));
  get_as(nj, path);
  assert_int_equal(R.status, 404);
  get_as(hz, path);
  assert_int_equal(R.status, 200);
  snprintf(path, sizeof path, "/api/v1/violations/%ld/transition", viol_id("k1"));
  post_json(hz, path, "{\"to\":\"notified\"}");
  assert_int_equal(R.status, 404);

  /* Filters. */
  get_as(js, "/api/v1/violations?kind=fatigue");
  assert_int_equal(count_of(R.body, "\"id\":"), 1);
  get_as(js, "/api/v1/violations?region=320200");
  assert_int_equal(count_of(R.body, "\"id\":"), 1);
  get_as(js, "/api/v1/violations?region=320115");
  assert_int_equal(count_of(R.body, "\"id\":"), 1);
  get_as(js, "/api/v1/violations?enterprise=NJ%20Freight&state=open");
  assert_int_equal(count_of(R.body, "\"id\":"), 3);
  get_as(js, "/api/v1/violations?since=2026-03-02&until=2026-03-04");
  assert_int_equal(count_of(R.body, "\"id\":"), 2);
  get_as(nj, "/api/v1/violations?region=330100"); /* a filter never widens the scope */
  assert_int_equal(count_of(R.body, "\"id\":"), 0);

  /* Paging: limit 2 over the province's 5, newest first, every one once. */
  char cursor[64] = "", seen[512] = "";
  int pages = 0, total = 0;
  for (;;) {
    snprintf(path, sizeof path, "/api/v1/violations?limit=2%s%s", cursor[0] ? "&cursor=" : "", cursor);
    get_as(js, path);
    assert_int_equal(R.status, 200);
    pages++;
    total += count_of(R.body, "\"id\":");
    strncat(seen, R.body, sizeof seen - strlen(seen) - 1);
    const char *nc = strstr(R.body, "\"next_cursor\":\"");
    if (!nc)
      break;
    nc += 15;
    snprintf(cursor, sizeof cursor, "%.*s", (int)strcspn(nc, "\""), nc);
  }
  assert_int_equal(pages, 3);
  assert_int_equal(total, 5);

  /* One violation: its evidence track (the fixes of the episode) and audit. */
  snprintf(path, sizeof path, "/api/v1/violations/%ld", viol_id("k1"));
  get_as(nj, path);
  assert_int_equal(R.status, 200);
  assert_int_equal(count_of(R.body, "\"lat\":"), 11); /* 08:00..08:10, one a minute */
  assert_non_null(strstr(R.body, "\"next_state\":\"notified\""));
  assert_non_null(strstr(R.body, "\"audit\":[]"));
}

/* GET /api/v1/alarms: scoped by the vehicle's region (an unbound terminal's alarm only for the
 * whole country), filtered, paged, and bad filters refused. */
static void test_alarms_api(void **state) {
  (void)state;
  clear_attempts();
  sql("INSERT INTO safety_alarms (terminal_id, vehicle, kind, type, level, alarm_id, flag, alarm_at, "
      "fix_at, lat, lon, speed_kmh, alarm_no, attachments, layout, fields) VALUES "
      "('nj1', '苏A00001', 'dsm', 1, 2, 1, 0, '2026-03-01 08:05+08', '2026-03-01 08:05+08', 32.0, 118.8, 60, 'T000001-260301080500-1', 3, 'su', '{\"fatigue\":7}'),"
      "('nj1', '苏A00001', 'dsm', 2, 1, 2, 0, '2026-03-01 09:00+08', '2026-03-01 09:00+08', 32.0, 118.8, 60, 'T000001-260301090000-1', 2, 'su', '{}'),"
      "('wx1', '苏B00001', 'adas', 1, 2, 3, 0, '2026-03-02 10:00+08', '2026-03-02 10:00+08', 31.5, 120.3, 70, 'T000002-260302100000-1', 0, 'yue', '{}'),"
      "('hz1', '浙A00001', 'bsd', 1, NULL, 4, 0, '2026-03-03 10:00+08', '2026-03-03 10:00+08', 30.2, 120.1, 50, 'T000003-260303100000-1', 0, 'su', '{}'),"
      "('ghost', NULL, 'dsm', 3, 2, 5, 0, '2026-03-04 10:00+08', '2026-03-04 10:00+08', 30.0, 120.0, 40, 'T000004-260304100000-1', 1, 'su', '{}')");
  char nj[256], js[256], hz[256];
  snprintf(nj, sizeof nj, "%s", login("nj_view", "nj-viewer-pw"));
  snprintf(js, sizeof js, "%s", login("js_view", "js-viewer-pw"));
  snprintf(hz, sizeof hz, "%s", login("hz_op", "hz-operator-pw"));
  get_as(nj, "/api/v1/alarms");
  assert_int_equal(R.status, 200);
  assert_int_equal(count_of(R.body, "\"alarm_no\":"), 2);
  /* newest first, with the fields the list promises */
  assert_true(strstr(R.body, "T000001-260301090000-1") < strstr(R.body, "T000001-260301080500-1"));
  assert_non_null(strstr(R.body, "\"attachments\":3"));
  get_as(js, "/api/v1/alarms");
  assert_int_equal(count_of(R.body, "\"alarm_no\":"), 3); /* the province: Wuxi too */
  assert_null(strstr(R.body, "ghost"));
  get_as(hz, "/api/v1/alarms");
  assert_null(strstr(R.body, "T000001-")); /* not Nanjing's */
  get_as(js, "/api/v1/alarms?kind=dsm&level=2");
  assert_int_equal(count_of(R.body, "\"alarm_no\":"), 1);
  get_as(js, "/api/v1/alarms?terminal_id=wx1");
  assert_int_equal(count_of(R.body, "\"alarm_no\":"), 1);
  get_as(js, "/api/v1/alarms?since=2026-03-01T08:30:00%2B08:00&until=2026-03-02");
  assert_int_equal(count_of(R.body, "\"alarm_no\":"), 1);
  get_as(js, "/api/v1/alarms?limit=2");
  assert_int_equal(count_of(R.body, "\"alarm_no\":"), 2);
  const char *nc = strstr(R.body, "\"next_cursor\":\"");
  assert_non_null(nc);
  char path[256];
  snprintf(path, sizeof path, "/api/v1/alarms?limit=2&cursor=%.*s", (int)strcspn(nc + 15, "\""), nc + 15);
  get_as(js, path);
  assert_int_equal(count_of(R.body, "\"alarm_no\":"), 1);
  assert_non_null(strstr(R.body, "T000001-260301080500-1"));
  get_as(js, "/api/v1/alarms?kind=radar");
  assert_int_equal(R.status, 400);
  get_as(js, "/api/v1/alarms?level=3");
  assert_int_equal(R.status, 400);
  get_refused(js, "/api/v1/alarms?terminal_id=x%27", "terminal_id is");
  /* The filters the episode lists share (web_query.c, hw_web_list_filters). */
  get_refused(js, "/api/v1/alarms?region=3201", "region is");
  get_refused(js, "/api/v1/alarms?cursor=1_x", "cursor is");
  get_as(js, "/api/v1/alarms?format=csv");
  assert_int_equal(R.status, 200);
  assert_non_null(strstr(R.body, "id,terminal_id,vehicle,region,enterprise,kind,type,level"));
}

static void test_violation_lifecycle(void **state) {
  (void)state;
  clear_attempts();
  char op[256], view[256], path[256];
  snprintf(view, sizeof view, "%s", login("nj_view", "nj-viewer-pw"));
  snprintf(op, sizeof op, "%s", login("nj_op", "nj-operator-pw"));
  snprintf(path, sizeof path, "/api/v1/violations/%ld/transition", viol_id("k3"));
  post_json(view, path, "{\"to\":\"notified\"}");
  assert_int_equal(R.status, 403);
  post_json(op, path, "{\"to\":\"closed\",\"note\":\"x\"}");
  assert_int_equal(R.status, 409);
  assert_non_null(strstr(R.body, "\"allowed\":\"notified\""));
  post_json(op, path, "{\"to\":\"sideways\"}");
  assert_int_equal(R.status, 400);
  post_json(op, path, "{\"note\":\"no to\"}");
  assert_int_equal(R.status, 400);
  post_json(op, path, "{\"to\":\"notified\",\"note\":\"phoned the enterprise\"}");
  assert_int_equal(R.status, 200);
  assert_non_null(strstr(R.body, "\"from\":\"open\""));
  post_json(op, path, "{\"to\":\"rectifying\"}");
  assert_int_equal(R.status, 200);
  post_json(op, path, "{\"to\":\"closed\"}");
  assert_int_equal(R.status, 400); /* closing needs a note */
  post_json(op, path, "{\"to\":\"closed\",\"note\":\"   \"}");
  assert_int_equal(R.status, 400);
  post_json(op, path, "{\"to\":\"closed\",\"note\":\"speed limiter fitted, checked 03-10\"}");
  assert_int_equal(R.status, 200);
  post_json(op, path, "{\"to\":\"closed\",\"note\":\"again\"}");
  assert_int_equal(R.status, 409);
  assert_non_null(strstr(R.body, "\"allowed\":null"));
  char q[256];
  snprintf(q, sizeof q, "SELECT count(*) FROM violation_audit a JOIN web_users u ON u.id = a.user_id "
                        "WHERE a.violation_id = %ld AND u.name = 'nj_op' AND a.actor = 'nj_op'",
           viol_id("k3"));
  assert_int_equal(hw_test_pg_scalar(env.db, q), 3);
  snprintf(path, sizeof path, "/api/v1/violations/%ld", viol_id("k3"));
  get_as(view, path);
  assert_non_null(strstr(R.body, "\"state\":\"closed\""));
  assert_non_null(strstr(R.body, "\"closed_by\":\"nj_op\""));
  assert_int_equal(count_of(R.body, "\"actor\":\"nj_op\""), 3);
  get_as(view, "/api/v1/violations?state=closed");
  assert_int_equal(count_of(R.body, "\"id\":"), 1);
}

/* --- vehicles and tracks ------------------------------------------------------------------- */

static void test_vehicles(void **state) {
  (void)state;
  clear_attempts();
  char nj[256], js[256];
  snprintf(nj, sizeof nj, "%s", login("nj_view", "nj-viewer-pw"));
  snprintf(js, sizeof js, "%s", login("js_view", "js-viewer-pw"));
  get_as(nj, "/api/v1/vehicles");
  assert_int_equal(R.status, 200);
  assert_int_equal(count_of(R.body, "\"terminal_id\""), 3);
  assert_non_null(strstr(R.body, "\"terminal_id\":\"nj1\",\"plate\":\"苏A00001\""));
  assert_non_null(strstr(R.body, "\"state\":\"moving\""));
  assert_non_null(strstr(R.body, "\"speed_kmh\":62.5"));
  assert_non_null(strstr(R.body, "+08:00\""));
  get_as(nj, "/api/v1/vehicles?state=stopped");
  assert_int_equal(count_of(R.body, "\"terminal_id\""), 1);
  assert_non_null(strstr(R.body, "\"nj2\""));
  get_as(nj, "/api/v1/vehicles?state=offline");
  assert_int_equal(count_of(R.body, "\"terminal_id\""), 1);
  assert_non_null(strstr(R.body, "\"nj3\""));
  get_as(js, "/api/v1/vehicles?class=dangerous_goods");
  assert_int_equal(count_of(R.body, "\"terminal_id\""), 1);
  get_as(js, "/api/v1/vehicles?region=320200");
  assert_int_equal(count_of(R.body, "\"terminal_id\""), 1);
  get_as(js, "/api/v1/vehicles?enterprise=NJ%20Freight");
  assert_int_equal(count_of(R.body, "\"terminal_id\""), 2);
  get_as(js, "/api/v1/vehicles?bbox=118.0,31.9,119.0,32.06");
  assert_int_equal(count_of(R.body, "\"terminal_id\""), 2); /* nj1, nj3 */
  get_as(js, "/api/v1/vehicles?limit=3");
  assert_int_equal(count_of(R.body, "\"terminal_id\""), 3);
  assert_non_null(strstr(R.body, "\"next_cursor\":\"nj3\""));
  get_as(js, "/api/v1/vehicles?limit=3&cursor=nj3");
  assert_int_equal(count_of(R.body, "\"terminal_id\""), 1);
  assert_non_null(strstr(R.body, "\"wx1\""));
  assert_non_null(strstr(R.body, "\"next_cursor\":null"));

  /* The state filter reads on through the registry until the page is full. */
  get_as(js, "/api/v1/vehicles?state=moving&limit=1");
  assert_int_equal(count_of(R.body, "\"terminal_id\""), 1);
  assert_non_null(strstr(R.body, "\"nj1\""));
  assert_non_null(strstr(R.body, "\"next_cursor\":\"nj1\""));
  get_as(js, "/api/v1/vehicles?state=moving&limit=1&cursor=nj1");
  assert_int_equal(count_of(R.body, "\"terminal_id\""), 1);
  assert_non_null(strstr(R.body, "\"wx1\""));
  assert_non_null(strstr(R.body, "\"next_cursor\":null"));
  get_as(js, "/api/v1/vehicles?state=moving&limit=2");
  assert_int_equal(count_of(R.body, "\"terminal_id\""), 2);
  assert_non_null(strstr(R.body, "\"next_cursor\":null"));
  get_as(js, "/api/v1/vehicles?state=stopped&limit=1&cursor=nj2");
  assert_string_equal(R.body, "{\"items\":[],\"next_cursor\":null}");

  /* Tracks: scoped, ranged, thinned. */
  get_as(nj, "/api/v1/vehicles/hz1/track?from=2026-03-01&to=2026-03-02");
  assert_int_equal(R.status, 404);
  get_as(nj, "/api/v1/vehicles/nobody/track");
  assert_int_equal(R.status, 404);
  get_as(nj, "/api/v1/vehicles/nj1/track?from=2026-03-01T07:30:00%2B08:00&to=2026-03-01T09:30:00%2B08:00");
  assert_int_equal(R.status, 200);
  assert_int_equal(count_of(R.body, "\"lat\":"), 120);
  assert_non_null(strstr(R.body, "\"quality\":1"));
  assert_non_null(strstr(R.body, "\"ts\":\"2026-03-01T07:30:00+08:00\""));
  get_as(nj, "/api/v1/vehicles/nj1/track?from=2026-03-01T07:30:00%2B08:00&to=2026-03-01T09:30:00%2B08:00&thin=10");
  assert_int_equal(count_of(R.body, "\"lat\":"), 12);
  assert_non_null(strstr(R.body, "\"thin\":10"));
  assert_non_null(strstr(R.body, "\"total\":120"));
  get_as(nj, "/api/v1/vehicles/nj1/track");
  assert_int_equal(R.status, 200); /* the last 24 h: nothing */
  assert_non_null(strstr(R.body, "\"items\":[]"));
}

/* --- export -------------------------------------------------------------------------------- */

static void test_csv_export(void **state) {
  (void)state;
  clear_attempts();
  char nj[256];
  snprintf(nj, sizeof nj, "%s", login("nj_view", "nj-viewer-pw"));
  get_as(nj, "/api/v1/violations?format=csv");
  assert_int_equal(R.status, 200);
  assert_string_equal(hdr("Content-Type"), "text/csv; charset=utf-8");
  assert_non_null(strstr(hdr("Content-Disposition"), "attachment; filename=\"violations.csv\""));
  /* Parse it back: RFC 4180, CRLF lines, a header and one line per violation. */
  int lines = 0, fields = 0, inq = 0;
  for (size_t i = 0; i < R.len; i++) {
    char c = R.body[i];
    if (inq) {
      if (c == '"' && R.body[i + 1] == '"')
        i++;
      else if (c == '"')
        inq = 0;
    } else if (c == '"') {
      inq = 1;
    } else if (c == ',') {
      fields++;
    } else if (c == '\n') {
      assert_int_equal(R.body[i - 1], '\r');
      lines++;
      assert_int_equal(fields, 17); /* 18 columns on every line */
      fields = 0;
    }
  }
  assert_int_equal(lines, 5);
  assert_memory_equal(R.body, "id,kind,state,", 14);
  /* The formula is text: quoted, apostrophe first, its quotes doubled. */
  assert_non_null(strstr(R.body, ",\"'=HYPERLINK(\"\"http://x\"\")\","));
  assert_non_null(strstr(R.body, "苏A00003"));
  get_as(nj, "/api/v1/vehicles?format=csv");
  assert_int_equal(R.status, 200);
  assert_int_equal(count_of(R.body, "\r\n"), 4);
  get_as(nj, "/api/v1/vehicles/nj1/track?from=2026-03-01&to=2026-03-02&format=csv");
  assert_int_equal(R.status, 200);
  assert_int_equal(count_of(R.body, "\r\n"), 121);
}

static void test_xlsx_export(void **state) {
  (void)state;
  clear_attempts();
  char js[256];
  snprintf(js, sizeof js, "%s", login("js_view", "js-viewer-pw"));
  get_as(js, "/api/v1/violations?format=xlsx");
  assert_int_equal(R.status, 200);
  assert_string_equal(hdr("Content-Type"),
                      "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
  assert_non_null(strstr(hdr("Content-Disposition"), "violations.xlsx"));
  assert_true(R.len > 1000);
  assert_memory_equal(R.body, "PK\x03\x04", 4);
  char path[] = "/tmp/hw-test-web-xlsx-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, R.body, R.len), (ssize_t)R.len);
  close(fd);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "unzip -tq %s >/dev/null", path);
  assert_int_equal(system(cmd), 0);
  /* The strings of the sheet hold the plates; the formula stays a string, never a <f>. */
  snprintf(cmd, sizeof cmd, "unzip -p %s xl/sharedStrings.xml | grep -c '苏B00001' >/dev/null && "
                            "! unzip -p %s xl/worksheets/sheet1.xml | grep -q '<f>'", path, path);
  assert_int_equal(system(cmd), 0);
  unlink(path);
}

/* --- static files ---------------------------------------------------------------------------- */

static void test_static(void **state) {
  (void)state;
  get_as(NULL, "/");
  assert_int_equal(R.status, 200);
  assert_string_equal(hdr("Content-Type"), "text/html; charset=utf-8");
  assert_non_null(strstr(R.body, "haulwatch"));
  get_as(NULL, "/app.js");
  assert_int_equal(R.status, 200);
  assert_string_equal(hdr("Content-Type"), "text/javascript; charset=utf-8");
  get_as(NULL, "/../../etc/passwd");
  assert_true(R.status == 400 || R.status == 404);
  get_as(NULL, "/%2e%2e/%2e%2e/etc/passwd");
  assert_int_equal(R.status, 400);
  get_as(NULL, "/.secret");
  assert_int_equal(R.status, 400);
  get_as(NULL, "/nothing.png");
  assert_int_equal(R.status, 404);
  get_as(NULL, "/api/v1/nothing");
  assert_int_equal(R.status, 404);
  assert_non_null(strstr(R.body, "\"error\""));
  /* the live feed: test_stream_scoped */
}

/* Last: without Redis the process stays up, says so, lists vehicles without their state, and
 * refuses the filters that need it. */

/* --- the live feed ---------------------------------------------------------------------------- */

/* GET /api/v1/stream: Server-Sent Events scoped to the user's regions. Events are published on
 * Redis as the daemon and the relay do; a Nanjing viewer sees Nanjing's and never Hangzhou's. */
static void test_stream_scoped(void **state) {
  (void)state;
  get_as(NULL, "/api/v1/stream");
  assert_int_equal(R.status, 401);
  clear_attempts();
  const char *auth = login("nj_view", "nj-viewer-pw");
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)wport)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  struct timeval tv = {.tv_sec = 1};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char req[512];
  int n = snprintf(req, sizeof req, "GET /api/v1/stream HTTP/1.1\r\nHost: test\r\n%s\r\n", auth);
  assert_int_equal(write(fd, req, (size_t)n), n);
  /* attached once the head is out (the login is checked first, from the database) */
  static char got[1 << 16];
  size_t len = 0;
  got[0] = 0;
  for (int waited = 0; waited < 10 && !strstr(got, "retry:"); waited++) {
    ssize_t k = read(fd, got + len, sizeof got - 1 - len);
    if (k > 0)
      len += (size_t)k;
    got[len] = 0;
  }

  redisContext *rc = redisConnect("127.0.0.1", env.redis_port);
  assert_true(rc && !rc->err);
  /* the hub subscribes from the loop: wait for it */
  long long subs = 0;
  for (int i = 0; i < 100 && subs < 1; i++) {
    redisReply *r = redisCommand(rc, "PUBSUB NUMSUB hw:violations");
    assert_true(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2);
    subs = r->element[1]->integer;
    freeReplyObject(r);
    if (subs < 1)
      usleep(50 * 1000);
  }
  assert_int_equal(subs, 1);
  static const char pos[] =
      "{\"terminal_id\":\"hz1\",\"ts_ms\":1,\"lat\":30.2,\"lon\":120.1,\"speed_kmh\":50,"
      "\"heading\":0,\"alarm\":0,\"status\":2,\"moving\":true,\"region\":\"330102\","
      "\"enterprise\":\"HZ Haul\"}\n"
      "{\"terminal_id\":\"nj1\",\"ts_ms\":2,\"lat\":32.0,\"lon\":118.8,\"speed_kmh\":60,"
      "\"heading\":90,\"alarm\":0,\"status\":2,\"moving\":true,\"region\":\"320102\","
      "\"enterprise\":\"NJ Haul\"}";
  static const char v_hz[] = "{\"id\":901,\"event\":\"new\",\"terminal_id\":\"hz1\","
                             "\"region\":\"330102\",\"enterprise\":\"HZ Haul\"}";
  static const char v_nj[] = "{\"id\":902,\"event\":\"new\",\"terminal_id\":\"nj3\","
                             "\"region\":\"320102\",\"enterprise\":\"NJ Haul\"}";
  const char *msgs[][2] = {{"hw:positions", pos}, {"hw:violations", v_hz}, {"hw:violations", v_nj}};
  for (size_t i = 0; i < 3; i++) {
    redisReply *r = redisCommand(rc, "PUBLISH %s %s", msgs[i][0], msgs[i][1]);
    assert_non_null(r);
    freeReplyObject(r);
  }
  redisFree(rc);

  /* Everything up to Nanjing's violation (sent at once) and the positions' batch (at the next
   * flush, stream_flush_ms). */
  for (int waited = 0; waited < 10 && !(strstr(got, "\"id\":902") && strstr(got, "event: positions"));
       waited++) {
    ssize_t k = read(fd, got + len, sizeof got - 1 - len);
    if (k > 0)
      len += (size_t)k;
    got[len] = 0;
  }
  close(fd);
  if (!strstr(got, "event: positions"))
    fail_msg("no positions event in:\n%s", got);
  assert_int_equal(strncmp(got, "HTTP/1.1 200", 12), 0);
  assert_non_null(strcasestr(got, "content-type: text/event-stream"));
  /* the batch holds Nanjing's vehicle alone, in the compact form */
  assert_non_null(strstr(got, "event: positions\ndata: [[\"nj1\",2,32,118.8,60,90]]\n"));
  assert_non_null(strstr(got, "event: violation"));
  assert_non_null(strstr(got, "\"id\":902"));
  assert_null(strstr(got, "hz1")); /* another province's vehicle: neither position nor violation */
}

static void test_without_redis(void **state) {
  (void)state;
  clear_attempts();
  char auth[256];
  snprintf(auth, sizeof auth, "%s", login("nj_view", "nj-viewer-pw"));
  hw_test_stop_pid(env.redis_pid);
  env.redis_pid = 0;
  for (int i = 0; i < 200; i++) {
    get_as(NULL, "/readyz");
    if (R.status == 503)
      break;
    usleep(50 * 1000);
  }
  assert_int_equal(R.status, 503);
  assert_non_null(strstr(R.body, "\"redis\":\"disconnected\""));
  get_as(auth, "/api/v1/vehicles");
  assert_int_equal(R.status, 200);
  assert_int_equal(count_of(R.body, "\"state\":null"), 3);
  get_as(auth, "/api/v1/vehicles?state=moving");
  assert_int_equal(R.status, 503);
  get_as(auth, "/api/v1/violations");
  assert_int_equal(R.status, 200);
}


/* --- what the page needs: config, summary, zones, region outlines, converted tractors ------- */

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

/* Runs `haulwatch regions import FILE` with text as FILE; returns its exit status and leaves its
 * stderr in errbuf. */
static int regions_import(const char *text, char *errbuf, size_t cap) {
  write_text("test_web.regions.geojson", text);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "%s regions import test_web.regions.geojson 2>test_web.regions.err "
           ">/dev/null", HW_BINARY);
  int st = system(cmd);
  FILE *f = fopen("test_web.regions.err", "r");
  assert_non_null(f);
  size_t n = fread(errbuf, 1, cap - 1, f);
  errbuf[n] = 0;
  fclose(f);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#define BOX(x0, y0, x1, y1) \
  "{\"type\":\"Polygon\",\"coordinates\":[[[" #x0 "," #y0 "],[" #x1 "," #y0 "],[" #x1 "," #y1 \
  "],[" #x0 "," #y1 "],[" #x0 "," #y0 "]]]}"
#define REGION(code, name, geom) \
  "{\"type\":\"Feature\",\"properties\":{\"code\":" code ",\"name\":\"" name "\"},\"geometry\":" geom "}"

static void test_regions_import(void **state) {
  (void)state;
  char err[4096];
  /* Hostile files: each refused whole with the feature named, nothing imported. */
  assert_int_equal(regions_import("{\"type\":\"FeatureCollection\",\"features\":[", err, sizeof err), 1);
  assert_non_null(strstr(err, "not valid JSON"));
  assert_int_equal(regions_import("{\"type\":\"FeatureCollection\",\"features\":[" REGION("\"320100\"", "南京", BOX(118, 31, 119, 32)) ","
                                  REGION("\"3201\"", "short", BOX(118, 31, 119, 32)) ","
                                  REGION("320200", "number", BOX(118, 31, 119, 32)) ","
                                  REGION("\"320300\"", "", BOX(118, 31, 119, 32)) ","
                                  REGION("\"320400\"", "open ring", "{\"type\":\"Polygon\",\"coordinates\":[[[118,31],[119,31],[119,32],[118,32]]]}") ","
                                  REGION("\"320500\"", "point", "{\"type\":\"Point\",\"coordinates\":[118,31]}") ","
                                  REGION("\"320100\"", "again", BOX(118, 31, 119, 32)) "]}", err, sizeof err), 1);
  assert_non_null(strstr(err, "feature 2: code must be a six-digit"));
  assert_non_null(strstr(err, "feature 3: code must be"));
  assert_non_null(strstr(err, "feature 4 (320300): name must be"));
  assert_non_null(strstr(err, "feature 5 (320400): polygon 1 ring 1 is not closed"));
  assert_non_null(strstr(err, "feature 6 (320500): geometry must be a Polygon or MultiPolygon"));
  assert_non_null(strstr(err, "feature 7 (320100): the code is also used by feature 1"));
  assert_non_null(strstr(err, "6 bad features; nothing imported"));
  /* A bow tie passes the parser and is refused by PostGIS, named. */
  assert_int_equal(regions_import("{\"type\":\"FeatureCollection\",\"features\":[" REGION("\"320100\"", "南京", BOX(118, 31, 119, 32)) ","
                                  REGION("\"320200\"", "bow tie", "{\"type\":\"Polygon\",\"coordinates\":[[[118,31],[119,32],[119,31],[118,32],[118,31]]]}") "]}",
                                  err, sizeof err), 1);
  assert_non_null(strstr(err, "feature 2 (320200): invalid polygon: Self-intersection"));
  assert_int_equal(hw_test_pg_scalar(env.db, "SELECT count(*) FROM regions"), 0);
  /* Then a good one; a second import of a code replaces it. */
  const char *good = "{\"type\":\"FeatureCollection\",\"features\":["
      REGION("\"320000\"", "江苏省", "{\"type\":\"MultiPolygon\",\"coordinates\":[[[[116.3,30.7],[121.9,30.7],[121.9,35.2],[116.3,35.2],[116.3,30.7]]]]}") ","
      REGION("\"320100\"", "old name", BOX(118.3, 31.2, 119.2, 32.6)) ","
      REGION("\"320200\"", "无锡市", BOX(119.5, 31.1, 120.6, 31.9)) ","
      REGION("\"330100\"", "杭州市", BOX(118.3, 29.2, 120.7, 30.6)) "]}";
  assert_int_equal(regions_import(good, err, sizeof err), 0);
  assert_int_equal(regions_import("{\"type\":\"FeatureCollection\",\"features\":["
                                  REGION("\"320100\"", "南京市", BOX(118.3, 31.2, 119.2, 32.6)) "]}", err, sizeof err), 0);
  assert_int_equal(hw_test_pg_scalar(env.db, "SELECT count(*) FROM regions"), 4);
  assert_int_equal(hw_test_pg_scalar(env.db, "SELECT count(*) FROM regions WHERE name = '南京市'"), 1);
}

static void test_page_config_summary_zones_regions(void **state) {
  (void)state;
  clear_attempts();
  /* Not logged in: an answer, not a 401 (the page asks this first). */
  get_as(NULL, "/api/v1/config");
  assert_int_equal(R.status, 200);
  assert_string_equal(R.body, "{\"user\":null,\"map_style\":null,"
                              "\"map_tiles\":\"http://127.0.0.1:1/tiles/{z}/{x}/{y}.png\","
                              "\"offline_after_s\":300,\"moving_min_kmh\":3}");
  /* A malformed or unknown credential is nobody, too. */
  get_as("Cookie: hw_session=0123\r\n", "/api/v1/config");
  assert_int_equal(R.status, 200);
  assert_non_null(strstr(R.body, "\"user\":null"));
  get_as("Cookie: hw_session=0000000000000000000000000000000000000000000000000000000000000000\r\n",
         "/api/v1/config");
  assert_int_equal(R.status, 200);
  assert_non_null(strstr(R.body, "\"user\":null"));
  char nj[256], js[256], hz[256];
  snprintf(nj, sizeof nj, "%s", login("nj_view", "nj-viewer-pw"));
  snprintf(js, sizeof js, "%s", login("js_view", "js-viewer-pw"));
  snprintf(hz, sizeof hz, "%s", login("hz_op", "hz-operator-pw"));
  get_as(nj, "/api/v1/config");
  assert_int_equal(R.status, 200);
  assert_non_null(strstr(R.body, "\"user\":{\"user\":\"nj_view\",\"role\":\"viewer\",\"regions\":[\"320100\"]}"));
  for (int i = 0; i < 4; i++) {
    const char *p = (const char *[]){"/api/v1/summary", "/api/v1/zones", "/api/v1/regions",
                                     "/api/v1/converted-tractors"}[i];
    get_as(NULL, p);
    assert_int_equal(R.status, 401);
  }

  /* Summary: counted in the user's regions only, against the same counts in SQL. */
  char want[256], got_kind[320];
  get_as(nj, "/api/v1/summary");
  assert_int_equal(R.status, 200);
  assert_non_null(strstr(R.body, "\"vehicles\":3,"));
  assert_non_null(strstr(R.body, "\"as_of\":\""));
  hw_test_pg_text(env.db, want, sizeof want,
                  "SELECT coalesce(string_agg(format('\"%%s\":%%s', kind, n), ',' ORDER BY kind), '') FROM "
                  "(SELECT kind, count(*) n FROM violations WHERE state <> 'closed' AND region LIKE '3201%%' "
                  "GROUP BY kind) k");
  snprintf(got_kind, sizeof got_kind, "\"open_violations\":{%s}", want);
  assert_non_null(strstr(R.body, got_kind));
  assert_null(strstr(R.body, "\"fatigue\":0"));
  /* Fixes today: the daily figures of today's GMT+8 day, for vehicles in the user's regions;
   * yesterday's row and another city's vehicle do not count. */
  assert_non_null(strstr(R.body, "\"fixes_today\":0,"));
  sql("INSERT INTO vehicle_daily (terminal_id, day, records, qualified, drift, km_total, km_complete) "
      "SELECT t, (now() AT TIME ZONE 'UTC' + interval '8 hours')::date - back, n, 0, 0, 0, 0 FROM "
      "(VALUES ('nj1', 0, 40), ('nj2', 0, 2), ('nj1', 1, 500), ('hz1', 0, 7)) v(t, back, n)");
  get_as(nj, "/api/v1/summary");
  assert_non_null(strstr(R.body, "\"fixes_today\":42,"));
  assert_null(strstr(R.body, "\"fixes_as_of\":null"));
  get_as(hz, "/api/v1/summary");
  assert_non_null(strstr(R.body, "\"vehicles\":2,")); /* hz1 and wx1 (320211) */
  hw_test_pg_text(env.db, want, sizeof want,
                  "SELECT count(*) FROM violations WHERE state <> 'closed' AND (region LIKE '3301%%' "
                  "OR region = '320211') AND kind = 'speeding'");
  snprintf(got_kind, sizeof got_kind, "\"open_violations\":{\"speeding\":%s}", want);
  assert_non_null(strstr(R.body, got_kind));
  sql("UPDATE vehicles SET status = 'scrapped' WHERE terminal_id = 'nj3'");
  get_as(nj, "/api/v1/summary");
  assert_non_null(strstr(R.body, "\"vehicles\":2,"));
  sql("UPDATE vehicles SET status = 'active' WHERE terminal_id = 'nj3'");

  /* Zones: road rules, the same for everyone logged in. */
  sql("INSERT INTO zones (name, kind, limit_kmh, is_expressway, geom) VALUES ('G2 test', "
      "'speed_limit', 100, true, ST_Multi(ST_GeomFromText('POLYGON((118 32,118.1 32,118.1 32.1,"
      "118 32.1,118 32))', 4326)))");
  get_as(nj, "/api/v1/zones");
  assert_int_equal(R.status, 200);
  assert_string_equal(hdr("Content-Type"), "application/json");
  assert_memory_equal(R.body, "{\"type\":\"FeatureCollection\",\"features\":[{\"type\":\"Feature\"", 50);
  assert_non_null(strstr(R.body, "\"name\":\"G2 test\",\"kind\":\"speed_limit\","
                                 "\"limit_kmh\":100,\"is_expressway\":true}"));
  assert_non_null(strstr(R.body, "\"type\":\"MultiPolygon\",\"coordinates\":[[[[118,32],"));
  char zbody[8192];
  snprintf(zbody, sizeof zbody, "%s", R.body);
  get_as(hz, "/api/v1/zones");
  assert_string_equal(R.body, zbody);

  /* Region outlines: only those in the user's regions. */
  get_as(nj, "/api/v1/regions");
  assert_int_equal(R.status, 200);
  assert_int_equal(count_of(R.body, "\"code\""), 1);
  assert_non_null(strstr(R.body, "\"properties\":{\"code\":\"320100\",\"name\":\"南京市\"}"));
  get_as(js, "/api/v1/regions");
  assert_int_equal(count_of(R.body, "\"code\""), 3);
  assert_null(strstr(R.body, "330100"));
  get_as(hz, "/api/v1/regions");
  assert_int_equal(count_of(R.body, "\"code\""), 1);
  assert_non_null(strstr(R.body, "\"330100\""));
  get_as("Authorization: Bearer hwt_nothing\r\n", "/api/v1/regions");
  assert_int_equal(R.status, 401);
}

static void test_converted_tractors(void **state) {
  (void)state;
  clear_attempts();
  /* Two converted tractors in Nanjing (one moved in 2026, one never), one in Hangzhou, and a
   * heavy truck (no phase-out date: never listed). */
  sql("INSERT INTO vehicles (plate, plate_colour, class_code, terminal_id, region, enterprise) VALUES "
      "('苏A0T001', 2, 'converted_tractor', 'njt1', '320102', '=cmd|calc'),"
      "('苏A0T002', 2, 'converted_tractor', 'njt2', '320115', 'NJ Farm'),"
      "('浙A0T001', 2, 'converted_tractor', 'hzt1', '330102', 'HZ Farm')");
  sql("INSERT INTO violations (kind, episode_key, terminal_id, plate, region, enterprise, started_at, "
      "last_at, start_lat, start_lon) VALUES "
      "('retired_class', 'ct1', 'njt1', '苏A0T001', '320102', '=cmd|calc', '2026-01-05 09:00+08', "
      "'2026-01-05 10:00+08', 32.1, 118.7),"
      "('retired_class', 'ct2', 'njt1', '苏A0T001', '320102', '=cmd|calc', '2026-01-09 09:00+08', "
      "'2026-01-09 11:30+08', 32.2, 118.8),"
      "('retired_class', 'ct3', 'hzt1', '浙A0T001', '330102', 'HZ Farm', '2026-01-09 09:00+08', "
      "'2026-01-09 11:30+08', 30.2, 120.1)");
  sql("SELECT hw_violation_transition(id, 'notified', 't', NULL) FROM violations WHERE episode_key = 'ct1'");
  sql("SELECT hw_violation_transition(id, 'rectifying', 't', NULL) FROM violations WHERE episode_key = 'ct1'");
  sql("SELECT hw_violation_transition(id, 'closed', 't', 'scrapped') FROM violations WHERE episode_key = 'ct1'");
  /* Where it was last: the stored position at the episode's last_at. */
  sql("INSERT INTO positions (terminal_id, ts, seq, recv_ts, lat, lon, speed_kmh, heading, alt_m, "
      "alarm, status, odometer_km) VALUES ('njt1', '2026-01-09 11:29+08', 0, now(), 32.25, 118.85, 30, 0, 0, 0, 2, 0),"
      "('njt1', '2026-01-09 11:30+08', 0, now(), 32.26, 118.86, 30, 0, 0, 0, 2, 0),"
      "('njt1', '2026-01-09 11:31+08', 0, now(), 40.0, 100.0, 30, 0, 0, 0, 2, 0)");
  redisContext *rc = redisConnect("127.0.0.1", env.redis_port);
  assert_true(rc && !rc->err);
  long long now = (long long)time(NULL) * 1000;
  redisReply *r = redisCommand(rc, "HSET %s ts_ms %lld recv_ms %lld lat 32.3 lon 118.9 "
                               "speed_kmh 25.0 heading 180", hw_test_veh_key("njt1"), now, now);
  assert_non_null(r);
  freeReplyObject(r);
  redisFree(rc);

  char nj[256], hz[256];
  snprintf(nj, sizeof nj, "%s", login("nj_view", "nj-viewer-pw"));
  snprintf(hz, sizeof hz, "%s", login("hz_op", "hz-operator-pw"));
  get_as(nj, "/api/v1/converted-tractors");
  assert_int_equal(R.status, 200);
  assert_int_equal(count_of(R.body, "\"terminal_id\""), 2);
  assert_null(strstr(R.body, "hzt1"));
  assert_null(strstr(R.body, "\"nj1\""));
  assert_non_null(strstr(R.body,
      "{\"terminal_id\":\"njt1\",\"plate\":\"苏A0T001\",\"region\":\"320102\",\"enterprise\":\"=cmd|calc\","
      "\"class\":\"converted_tractor\",\"retired_after\":\"2025-12-31\",\"moved_after_retirement\":true,"
      "\"last_moved_at\":\"2026-01-09T11:30:00+08:00\",\"last_lat\":32.26,\"last_lon\":118.86,"
      "\"open_violations\":1,\"state\":\"moving\",\"ts\":\""));
  assert_non_null(strstr(R.body, "\"lat\":32.3,\"lon\":118.9,\"speed_kmh\":25,\"heading\":180}"));
  assert_non_null(strstr(R.body,
      "{\"terminal_id\":\"njt2\",\"plate\":\"苏A0T002\",\"region\":\"320115\",\"enterprise\":\"NJ Farm\","
      "\"class\":\"converted_tractor\",\"retired_after\":\"2025-12-31\",\"moved_after_retirement\":false,"
      "\"last_moved_at\":null,\"last_lat\":null,\"last_lon\":null,\"open_violations\":0,"
      "\"state\":\"offline\",\"ts\":null"));
  /* Paging by terminal id. */
  get_as(nj, "/api/v1/converted-tractors?limit=1");
  assert_int_equal(count_of(R.body, "\"terminal_id\""), 1);
  assert_non_null(strstr(R.body, "\"next_cursor\":\"njt1\""));
  get_as(nj, "/api/v1/converted-tractors?limit=1&cursor=njt1");
  assert_int_equal(count_of(R.body, "\"terminal_id\""), 1);
  assert_non_null(strstr(R.body, "\"njt2\""));
  assert_non_null(strstr(R.body, "\"next_cursor\":null"));
  /* The other scope: only its own tractor; its position falls back to the episode's start. */
  get_as(hz, "/api/v1/converted-tractors");
  assert_int_equal(count_of(R.body, "\"terminal_id\""), 1);
  assert_non_null(strstr(R.body, "\"hzt1\""));
  assert_non_null(strstr(R.body, "\"last_lat\":30.2,\"last_lon\":120.1"));
  /* Formats. */
  get_as(nj, "/api/v1/converted-tractors?format=csv");
  assert_int_equal(R.status, 200);
  assert_non_null(strstr(hdr("Content-Disposition"), "converted-tractors.csv"));
  assert_int_equal(count_of(R.body, "\r\n"), 3);
  static const char head[] = "terminal_id,plate,region,enterprise,class,retired_after,"
                             "moved_after_retirement,last_moved_at,last_lat,last_lon,"
                             "open_violations,state,ts,recv_at,lat,lon,speed_kmh,heading\r\n";
  assert_memory_equal(R.body, head, sizeof head - 1);
  assert_non_null(strstr(R.body, ",\"'=cmd|calc\","));
  get_as(nj, "/api/v1/converted-tractors?format=xlsx");
  assert_int_equal(R.status, 200);
  assert_memory_equal(R.body, "PK\x03\x04", 4);
  /* Bad input. */
  /* The vehicle's own violations (the page's vehicle panel): by terminal id, still scoped. */
  get_as(nj, "/api/v1/violations?terminal_id=njt1");
  assert_int_equal(count_of(R.body, "\"id\":"), 2);
  get_as(nj, "/api/v1/violations?terminal_id=hzt1");
  assert_int_equal(R.status, 200);
  assert_int_equal(count_of(R.body, "\"id\":"), 0);
  get_as(nj, "/api/v1/violations?terminal_id=a%20b");
  assert_int_equal(R.status, 400);
  get_as(nj, "/api/v1/converted-tractors?format=pdf");
  assert_int_equal(R.status, 400);
  get_as(nj, "/api/v1/converted-tractors?limit=0");
  assert_int_equal(R.status, 400);
  get_as(nj, "/api/v1/converted-tractors?limit=51");
  assert_int_equal(R.status, 400);
  get_as(nj, "/api/v1/converted-tractors?cursor=%27%20OR%201=1--");
  assert_int_equal(R.status, 400);
  get_as(nj, "/api/v1/converted-tractors?cursor=%ff");
  assert_int_equal(R.status, 400);
  get_as(nj, "/api/v1/summary?x=%zz");
  assert_int_equal(R.status, 200); /* parameters it does not read are not looked at */
  get_as(nj, "/readyz");
  assert_int_equal(R.status, 200);
  /* Leave the data as the other tests expect it. */
  sql("DELETE FROM violations WHERE episode_key IN ('ct1', 'ct2', 'ct3')");
  sql("DELETE FROM positions WHERE terminal_id = 'njt1'");
  sql("DELETE FROM vehicles WHERE terminal_id IN ('njt1', 'njt2', 'hzt1')");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_login_me_logout),
      cmocka_unit_test(test_api_token),
      cmocka_unit_test(test_content_type_and_bad_input),
      cmocka_unit_test(test_violations_scoped),
      cmocka_unit_test(test_alarms_api),
      cmocka_unit_test(test_violation_lifecycle),
      cmocka_unit_test(test_vehicles),
      cmocka_unit_test(test_csv_export),
      cmocka_unit_test(test_xlsx_export),
      cmocka_unit_test(test_static),
      cmocka_unit_test(test_stream_scoped),
      cmocka_unit_test(test_regions_import),
      cmocka_unit_test(test_page_config_summary_zones_regions),
      cmocka_unit_test(test_converted_tractors),
      cmocka_unit_test(test_print_timings),
      cmocka_unit_test(test_login_rate_limit),
      cmocka_unit_test(test_without_redis),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
