/* The admin routes of haulwatch web end to end, against a real PostgreSQL: users (list, add,
 * disable, token), the registry and zones imports, and their audit. Every forbidden read and
 * write is tried (a viewer's or operator's 403; a city admin creating a user for another city,
 * importing another city's vehicle, disabling or making a token for another city's user: refused,
 * and nothing changed, asserted in SQL), bad input (malformed JSON, bodies over admin_max_body,
 * bad CSV rows by line, bad GeoJSON), and the audit rows each change leaves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "webclient.h"

static hw_test_env env;
static int wport, mport;
static const char *logfile = "test_web_admin.web.log";
#define ADMIN_MAX_BODY (16 << 20) /* the default */
#define IMPORT_ROWS 50000          /* test_print_import_timing */

static wc_resp R;

/* One request on its own connection; the whole answer in R. extra: more header lines. */
static void http_raw(const char *method, const char *path, const char *extra, const void *body,
                     size_t blen) {
  wc_request(wport, method, path, extra, body, blen, &R);
}

static void get_as(const char *auth, const char *path) { http_raw("GET", path, auth, NULL, 0); }

static void scrape(void) {
  int keep = wport;
  wport = mport;
  http_raw("GET", "/metrics", NULL, NULL, 0);
  wport = keep;
  assert_int_equal(R.status, 200);
}

/* The value of the sample whose line starts with series ("name{labels}"), or -1. */
static double sample(const char *series) {
  char key[512];
  snprintf(key, sizeof key, "\n%s ", series);
  const char *p = strstr(R.body, key);
  return p ? strtod(p + strlen(key), NULL) : -1;
}

static void post_json(const char *auth, const char *path, const char *json) {
  wc_post_json(wport, auth, path, json, &R);
}

/* "Cookie: ..." header line of a fresh login (owned by the caller). */
static char *login(const char *user, const char *pw) {
  char *out = malloc(256);
  assert_non_null(out);
  wc_login(wport, user, pw, &R, out, 256);
  return out;
}

#define q(...) hw_test_pg_scalarf(env.db, __VA_ARGS__)

static void user_add(const char *name, const char *role, const char *regions, const char *pw) {
  wc_user_add(name, role, regions, pw);
}

static char *root_c, *nj_c, *op_c, *view_c; /* cookies: admin 000000, admin 320100, operator, viewer */

static int group_setup(void **state) {
  (void)state;
  signal(SIGPIPE, SIG_IGN);
  hw_test_env_up(&env, "hw_test_web_admin");
  setenv("HAULWATCH_PG", env.conninfo, 1);
  hw_test_pg_scalar(env.db, "INSERT INTO vehicles (plate, plate_colour, class_code, terminal_id, "
                            "region) VALUES ('苏B00001', 2, 'heavy_truck', 'wx1', '320211'), "
                            "('苏A00009', 2, 'heavy_truck', 'nj9', '320102')");
  user_add("root", "admin", "000000", "root-pw");
  user_add("nj_admin", "admin", "320100", "nj-admin-pw");
  user_add("nj_op", "operator", "320100", "nj-op-pw");
  user_add("nj_view", "viewer", "320102", "nj-view-pw");
  user_add("wx_view", "viewer", "320211", "wx-view-pw");
  user_add("js_view", "viewer", "320000", NULL); /* the province: not within Nanjing's admin */
  wport = hw_test_free_port();
  do
    mport = hw_test_free_port();
  while (mport == wport);
  char listen[64], mlisten[64], amb[16];
  snprintf(listen, sizeof listen, "127.0.0.1:%d", wport);
  snprintf(mlisten, sizeof mlisten, "127.0.0.1:%d", mport);
  snprintf(amb, sizeof amb, "%d", ADMIN_MAX_BODY);
  const char *argv[] = {"web", "--listen", listen, "--pg", env.conninfo, "--redis",
                        env.redis_addr, "--web-root", "", "--max-body", "4096",
                        "--admin-max-body", amb, "--metrics-listen", mlisten, NULL};
  env.daemon_pid = hw_test_spawn(argv, logfile);
  wc_wait_ready(wport, &R);
  root_c = login("root", "root-pw");
  nj_c = login("nj_admin", "nj-admin-pw");
  op_c = login("nj_op", "nj-op-pw");
  view_c = login("nj_view", "nj-view-pw");
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  hw_test_env_down(&env);
  free(R.body);
  free(root_c);
  free(nj_c);
  free(op_c);
  free(view_c);
  return 0;
}

static cJSON *body_json(void) {
  cJSON *o = cJSON_Parse(R.body);
  if (!o)
    fail_msg("not JSON: %s", R.body);
  return o;
}

/* 1 when the answer's items hold an item whose member key is val. */
static int items_have(const char *key, const char *val) {
  cJSON *o = body_json();
  const cJSON *it;
  int found = 0;
  cJSON_ArrayForEach(it, cJSON_GetObjectItem(o, "items")) {
    const cJSON *v = cJSON_GetObjectItem(it, key);
    found |= cJSON_IsString(v) && !strcmp(v->valuestring, val);
  }
  cJSON_Delete(o);
  return found;
}

/* --- roles -------------------------------------------------------------------------------- */

static void test_lower_roles_forbidden(void **state) {
  (void)state;
  long audit = q("SELECT count(*) FROM admin_audit");
  long users = q("SELECT count(*) FROM web_users");
  const char *who[] = {op_c, view_c};
  for (size_t i = 0; i < 2; i++) {
    get_as(who[i], "/api/v1/admin/users");
    assert_int_equal(R.status, 403);
    get_as(who[i], "/api/v1/admin/audit");
    assert_int_equal(R.status, 403);
    post_json(who[i], "/api/v1/admin/users", "{\"user\":\"x1\",\"role\":\"viewer\",\"regions\":[\"320102\"]}");
    assert_int_equal(R.status, 403);
    post_json(who[i], "/api/v1/admin/users/wx_view/disable", "{}");
    assert_int_equal(R.status, 403);
    post_json(who[i], "/api/v1/admin/users/nj_view/token", "{}");
    assert_int_equal(R.status, 403);
    post_json(who[i], "/api/v1/admin/registry", "{\"csv\":\"plate,plate_colour,class,region\\n苏A1,2,heavy_truck,320102\\n\"}");
    assert_int_equal(R.status, 403);
    post_json(who[i], "/api/v1/admin/zones", "{\"type\":\"FeatureCollection\",\"features\":[]}");
    assert_int_equal(R.status, 403);
  }
  /* no login at all */
  get_as(NULL, "/api/v1/admin/users");
  assert_int_equal(R.status, 401);
  assert_int_equal(q("SELECT count(*) FROM admin_audit"), audit);
  assert_int_equal(q("SELECT count(*) FROM web_users"), users);
  assert_int_equal(q("SELECT count(*) FROM web_tokens"), 0);
  assert_int_equal(q("SELECT count(*) FROM web_users WHERE disabled"), 0);
}

/* --- users -------------------------------------------------------------------------------- */

static void test_users_scoped(void **state) {
  (void)state;
  get_as(nj_c, "/api/v1/admin/users");
  assert_int_equal(R.status, 200);
  assert_true(items_have("user", "nj_admin"));
  assert_true(items_have("user", "nj_op"));
  assert_true(items_have("user", "nj_view"));
  assert_false(items_have("user", "wx_view"));
  assert_false(items_have("user", "js_view"));
  assert_false(items_have("user", "root"));
  assert_non_null(strstr(R.body, "\"last_login\":\"20"));   /* nj_view logged in */
  assert_non_null(strstr(R.body, "\"created_at\":\"20"));
  assert_non_null(strstr(R.body, "+08:00"));
  get_as(root_c, "/api/v1/admin/users?limit=2");
  assert_int_equal(R.status, 200);
  assert_non_null(strstr(R.body, "\"next_cursor\":\"nj_admin\"")); /* js_view, nj_admin */
  get_as(root_c, "/api/v1/admin/users?limit=100&cursor=nj_view");
  assert_true(items_have("user", "root"));
  assert_true(items_have("user", "wx_view"));
  assert_false(items_have("user", "nj_op"));
  get_as(root_c, "/api/v1/admin/users?cursor=a%20b");
  assert_int_equal(R.status, 400);
}

static void test_user_add(void **state) {
  (void)state;
  long audit = q("SELECT count(*) FROM admin_audit");
  post_json(nj_c, "/api/v1/admin/users",
            "{\"user\":\"nj_new\",\"role\":\"operator\",\"regions\":[\"320102\",\"320115\"],"
            "\"password\":\"nj-new-pw\"}");
  assert_int_equal(R.status, 201);
  assert_non_null(strstr(R.body, "\"user\":\"nj_new\""));
  free(login("nj_new", "nj-new-pw"));
  assert_int_equal(q("SELECT count(*) FROM web_user_regions r JOIN web_users u ON u.id = r.user_id "
                     "WHERE u.name = 'nj_new' AND u.role = 'operator'"), 2);
  /* token-only */
  post_json(nj_c, "/api/v1/admin/users", "{\"user\":\"nj_bot\",\"role\":\"viewer\",\"regions\":[\"320100\"]}");
  assert_int_equal(R.status, 201);
  assert_int_equal(q("SELECT count(*) FROM web_users WHERE name = 'nj_bot' AND password_hash IS NULL"), 1);
  /* audited with the user */
  assert_int_equal(q("SELECT count(*) FROM admin_audit a JOIN web_users u ON u.id = a.user_id "
                     "WHERE u.name = 'nj_admin' AND a.user_name = 'nj_admin' AND a.action = "
                     "'user.add' AND a.object IN ('nj_new', 'nj_bot')"), 2);
  assert_int_equal(q("SELECT count(*) FROM admin_audit WHERE object = 'nj_new' AND "
                     "detail->>'role' = 'operator' AND detail->'regions' = '[\"320102\",\"320115\"]' "
                     "AND (detail->>'password')::boolean"), 1);
  audit += 2;

  /* another city, the province above, or one of each: 403, nothing made */
  const char *refused[] = {
      "{\"user\":\"x2\",\"role\":\"viewer\",\"regions\":[\"320211\"]}",
      "{\"user\":\"x2\",\"role\":\"viewer\",\"regions\":[\"320000\"]}",
      "{\"user\":\"x2\",\"role\":\"viewer\",\"regions\":[\"320102\",\"330100\"]}",
      "{\"user\":\"x2\",\"role\":\"viewer\",\"regions\":[\"000000\"]}",
  };
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
    post_json(nj_c, "/api/v1/admin/users", refused[i]);
    assert_int_equal(R.status, 403);
  }
  /* bad input: 400 */
  const char *bad[] = {
      "{\"user\":\"x2\",\"role\":\"viewer\",\"regions\":[\"3201\"]}",
      "{\"user\":\"x2\",\"role\":\"boss\",\"regions\":[\"320102\"]}",
      "{\"user\":\"x 2\",\"role\":\"viewer\",\"regions\":[\"320102\"]}",
      "{\"user\":\"x2\",\"role\":\"viewer\",\"regions\":[]}",
      "{\"user\":\"x2\",\"role\":\"viewer\",\"regions\":\"320102\"}",
      "{\"user\":\"x2\",\"role\":\"viewer\",\"regions\":[320102]}",
      "{\"user\":\"x2\",\"role\":\"viewer\",\"regions\":[\"320102\"],\"password\":\"\"}",
      "{\"user\":\"x2\",\"role\":\"viewer\",\"regions\":[\"320102\"],\"password\":7}",
      "{\"user\":\"x2\",",
      "[1,2]",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    post_json(nj_c, "/api/v1/admin/users", bad[i]);
    if (R.status != 400)
      fail_msg("case %zu: want 400, got %d %s", i, R.status, R.body);
  }
  /* a name taken (even by a user outside the admin's regions: names are global) */
  post_json(nj_c, "/api/v1/admin/users", "{\"user\":\"wx_view\",\"role\":\"viewer\",\"regions\":[\"320102\"]}");
  assert_int_equal(R.status, 409);
  assert_int_equal(q("SELECT count(*) FROM web_users WHERE name = 'x2'"), 0);
  assert_int_equal(q("SELECT count(*) FROM web_user_regions r JOIN web_users u ON u.id = r.user_id "
                     "WHERE u.name = 'wx_view'"), 1);
  assert_int_equal(q("SELECT count(*) FROM admin_audit"), audit);
  /* a form post is not JSON: the CSRF rule */
  http_raw("POST", "/api/v1/admin/users", "Content-Type: application/x-www-form-urlencoded\r\n",
           "user=x2", 7);
  assert_int_equal(R.status, 415);
}

static void test_user_disable_and_token(void **state) {
  (void)state;
  char *wx_c = login("wx_view", "wx-view-pw");
  long audit = q("SELECT count(*) FROM admin_audit");
  /* another city's user: 404, like one that does not exist; nothing changed */
  post_json(nj_c, "/api/v1/admin/users/wx_view/disable", "{}");
  assert_int_equal(R.status, 404);
  post_json(nj_c, "/api/v1/admin/users/js_view/disable", "{}");
  assert_int_equal(R.status, 404);
  post_json(nj_c, "/api/v1/admin/users/nobody/disable", "{}");
  assert_int_equal(R.status, 404);
  post_json(nj_c, "/api/v1/admin/users/wx_view/token", "{}");
  assert_int_equal(R.status, 404);
  assert_int_equal(q("SELECT count(*) FROM web_users WHERE disabled"), 0);
  assert_int_equal(q("SELECT count(*) FROM web_tokens"), 0);
  get_as(wx_c, "/api/v1/me");
  assert_int_equal(R.status, 200);
  post_json(nj_c, "/api/v1/admin/users/nj_admin/disable", "{}");
  assert_int_equal(R.status, 409);
  assert_int_equal(q("SELECT count(*) FROM admin_audit"), audit);

  /* a token for nj_op: shown once, works, only its hash stored */
  post_json(nj_c, "/api/v1/admin/users/nj_op/token", "{}");
  assert_int_equal(R.status, 200);
  cJSON *o = body_json();
  const cJSON *tok = cJSON_GetObjectItem(o, "token");
  assert_true(cJSON_IsString(tok) && strlen(tok->valuestring) == 68);
  char bearer[128];
  snprintf(bearer, sizeof bearer, "Authorization: Bearer %s\r\n", tok->valuestring);
  cJSON_Delete(o);
  get_as(bearer, "/api/v1/me");
  assert_int_equal(R.status, 200);
  assert_non_null(strstr(R.body, "\"user\":\"nj_op\""));
  assert_int_equal(q("SELECT count(*) FROM admin_audit WHERE action = 'user.token' AND object = "
                     "'nj_op' AND user_name = 'nj_admin'"), 1);

  /* disabling nj_op ends its session and revokes the token */
  post_json(nj_c, "/api/v1/admin/users/nj_op/disable", "{}");
  assert_int_equal(R.status, 200);
  get_as(bearer, "/api/v1/me");
  assert_int_equal(R.status, 401);
  get_as(op_c, "/api/v1/me");
  assert_int_equal(R.status, 401);
  assert_int_equal(q("SELECT count(*) FROM web_users WHERE disabled"), 1);
  assert_int_equal(q("SELECT count(*) FROM web_tokens WHERE revoked_at IS NULL"), 0);
  assert_int_equal(q("SELECT count(*) FROM admin_audit WHERE action = 'user.disable' AND object = "
                     "'nj_op' AND user_name = 'nj_admin' AND (detail->>'sessions_ended')::int = 1 "
                     "AND (detail->>'tokens_revoked')::int = 1"), 1);
  /* a disabled user gets no token */
  post_json(nj_c, "/api/v1/admin/users/nj_op/token", "{}");
  assert_int_equal(R.status, 404);
  /* the whole country's admin may disable the Wuxi user */
  post_json(root_c, "/api/v1/admin/users/wx_view/disable", "{}");
  assert_int_equal(R.status, 200);
  get_as(wx_c, "/api/v1/me");
  assert_int_equal(R.status, 401);
  free(wx_c);
}

/* --- the registry ------------------------------------------------------------------------- */

static void post_csv(const char *auth, const char *csv, int dry_run) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "csv", csv);
  cJSON_AddBoolToObject(o, "dry_run", dry_run);
  char *text = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  post_json(auth, "/api/v1/admin/registry", text);
  free(text);
}

/* 1 when the answer's errors name line with a message containing part. */
static int error_at(long line, const char *part) {
  cJSON *o = body_json();
  const cJSON *e;
  int found = 0;
  cJSON_ArrayForEach(e, cJSON_GetObjectItem(o, "errors")) {
    const cJSON *l = cJSON_GetObjectItem(e, "line"), *m = cJSON_GetObjectItem(e, "error");
    found |= cJSON_IsNumber(l) && (long)l->valuedouble == line && cJSON_IsString(m) &&
             strstr(m->valuestring, part);
  }
  cJSON_Delete(o);
  return found;
}

static void test_registry_import(void **state) {
  (void)state;
  static const char good[] = "plate,plate_colour,class,terminal_id,region,enterprise\n"
                             "苏A10001,2,heavy_truck,njt1,320102,NJ Freight\n"
                             "苏A10002,yellow,重型货车,njt2,320115,NJ Freight\n"
                             "苏A00009,2,heavy_truck,nj9,320102,NJ Moved\n";
  long vehicles = q("SELECT count(*) FROM vehicles");
  long audit = q("SELECT count(*) FROM admin_audit");
  post_csv(nj_c, good, 1);
  assert_int_equal(R.status, 200);
  assert_non_null(strstr(R.body, "\"inserted\":2"));
  assert_non_null(strstr(R.body, "\"updated\":1"));
  assert_non_null(strstr(R.body, "\"dry_run\":true"));
  assert_int_equal(q("SELECT count(*) FROM vehicles"), vehicles);
  assert_int_equal(q("SELECT count(*) FROM admin_audit"), audit);
  post_csv(nj_c, good, 0);
  assert_int_equal(R.status, 200);
  assert_non_null(strstr(R.body, "\"inserted\":2"));
  assert_int_equal(q("SELECT count(*) FROM vehicles"), vehicles + 2);
  assert_int_equal(q("SELECT count(*) FROM vehicles WHERE plate = '苏A00009' AND enterprise = 'NJ Moved'"), 1);
  assert_int_equal(q("SELECT count(*) FROM admin_audit a JOIN web_users u ON u.id = a.user_id WHERE "
                     "u.name = 'nj_admin' AND a.action = 'registry.import' AND "
                     "(a.detail->>'inserted')::int = 2 AND (a.detail->>'updated')::int = 1"), 1);
  vehicles += 2;
  audit++;

  /* a row of another city: the whole import refused, by line */
  post_csv(nj_c, "plate,plate_colour,class,region\n苏A10003,2,heavy_truck,320102\n"
                 "苏B10003,2,heavy_truck,320211\n", 0);
  assert_int_equal(R.status, 400);
  assert_true(error_at(3, "region 320211 is outside your regions"));
  assert_false(error_at(2, "outside"));
  /* moving another city's vehicle into mine: refused (it is not mine to change) */
  post_csv(nj_c, "plate,plate_colour,class,region\n苏B00001,2,heavy_truck,320102\n", 0);
  assert_int_equal(R.status, 400);
  assert_true(error_at(2, "registered in a region outside yours"));
  assert_int_equal(q("SELECT count(*) FROM vehicles WHERE plate = '苏B00001' AND region = '320211'"), 1);
  /* taking another city's vehicle's terminal: refused without naming that vehicle */
  post_csv(nj_c, "plate,plate_colour,class,terminal_id,region\n苏A10004,2,heavy_truck,wx1,320102\n", 0);
  assert_int_equal(R.status, 400);
  assert_true(error_at(2, "terminal wx1 is bound to a vehicle outside your regions"));
  assert_null(strstr(R.body, "苏B00001"));
  /* bad rows: the CLI's checks and messages, by line */
  post_csv(nj_c, "plate,plate_colour,class,region\n苏A10005,purple,heavy_truck,320102\n"
                 "苏A10006,2,heavy_truck,32010\n苏A10007,2,heavy_truck,320102\n", 0);
  assert_int_equal(R.status, 400);
  assert_true(error_at(2, "plate_colour 'purple'"));
  assert_true(error_at(3, "region"));
  assert_false(error_at(4, ""));
  post_csv(nj_c, "plate,colour\n", 0);
  assert_int_equal(R.status, 400);
  assert_non_null(strstr(R.body, "the header has no 'class' column"));
  post_csv(nj_c, "", 0);
  assert_int_equal(R.status, 400);
  post_json(nj_c, "/api/v1/admin/registry", "{\"csv\": 5}");
  assert_int_equal(R.status, 400);
  post_json(nj_c, "/api/v1/admin/registry", "{\"csv\": \"plate\", \"dry_run\": \"yes\"}");
  assert_int_equal(R.status, 400);
  post_json(nj_c, "/api/v1/admin/registry", "{\"csv\": \"pla");
  assert_int_equal(R.status, 400);
  assert_int_equal(q("SELECT count(*) FROM vehicles"), vehicles);
  assert_int_equal(q("SELECT count(*) FROM admin_audit"), audit);
  assert_int_equal(q("SELECT count(*) FROM vehicles WHERE plate IN ('苏A10003', '苏A10004', '苏A10007')"), 0);
}

static void test_body_limits(void **state) {
  (void)state;
  /* an import larger than max_body (4096) but within admin_max_body is taken... */
  size_t n = 0, cap = 40000;
  char *csv = malloc(cap);
  n += (size_t)snprintf(csv, cap, "plate,plate_colour,class,region\n");
  for (int i = 0; i < 300; i++)
    n += (size_t)snprintf(csv + n, cap - n, "苏A2%04d,2,heavy_truck,320102\n", i);
  post_csv(nj_c, csv, 1);
  assert_int_equal(R.status, 200);
  assert_non_null(strstr(R.body, "\"inserted\":300"));
  free(csv);
  /* ...one over admin_max_body is 413, before it is read */
  char *big = malloc(ADMIN_MAX_BODY + 100);
  memset(big, ' ', ADMIN_MAX_BODY + 100);
  memcpy(big, "{\"csv\":\"", 8);
  memcpy(big + ADMIN_MAX_BODY + 98, "\"}", 2);
  char extra[512];
  snprintf(extra, sizeof extra, "%sContent-Type: application/json\r\n", nj_c);
  http_raw("POST", "/api/v1/admin/registry", extra, big, ADMIN_MAX_BODY + 100);
  assert_int_equal(R.status, 413);
  /* and other routes keep max_body */
  http_raw("POST", "/api/v1/login", "Content-Type: application/json\r\n", big, 5000);
  assert_int_equal(R.status, 413);
  free(big);
  get_as(nj_c, "/api/v1/me");
  assert_int_equal(R.status, 200);
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* For the forked client below: no cmocka there (a failed assertion would carry on with the other
 * tests in the child). The status of one POST, or -1. */
static int child_post(const char *path, const char *extra, const char *body, size_t blen) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)wport)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a))
    return -1;
  struct timeval tv = {.tv_sec = 240};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char head[1024];
  int n = snprintf(head, sizeof head, "POST %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n%s"
                   "Content-Length: %zu\r\n\r\n", path, extra, blen);
  if (write(fd, head, (size_t)n) != n)
    return -1;
  for (size_t off = 0; off < blen;) {
    ssize_t w = write(fd, body + off, blen - off);
    if (w <= 0)
      return -1;
    off += (size_t)w;
  }
  char buf[4096];
  size_t got = 0;
  ssize_t k;
  while (got < sizeof buf - 1 && (k = read(fd, buf + got, sizeof buf - 1 - got)) > 0)
    got += (size_t)k; /* to the end: the head and the body may come in separate reads */
  close(fd);
  int status = -1;
  if (got > 0) {
    buf[got] = 0;
    if (sscanf(buf, "HTTP/1.1 %d", &status) != 1 || !strstr(buf, "\"inserted\":" HW_XSTR(IMPORT_ROWS)))
      status = -1;
  }
  return status;
}

/* A figure for the report, not a performance assertion: a registry import (dry run: every check,
 * nothing written) is parsed on the thread pool, so another client's requests should not wait
 * for it; how long they did, measured by that other client (GET /readyz every 2 ms, its own
 * connection each), against the same client's requests with no import running; and how much of
 * the import's time is the SQL function's (the same rows given to it directly). */
static void test_print_import_timing(void **state) {
  (void)state;
  size_t cap = 8u << 20, n = 0;
  char *csv = malloc(cap);
  n += (size_t)snprintf(csv, cap, "plate,plate_colour,class,terminal_id,region,enterprise\n");
  for (int i = 0; i < IMPORT_ROWS; i++)
    n += (size_t)snprintf(csv + n, cap - n, "苏C%05d,2,heavy_truck,t%06d,320102,NJ Freight\n", i, i);
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "csv", csv);
  cJSON_AddBoolToObject(o, "dry_run", 1);
  char *text = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  free(csv);
  size_t blen = strlen(text);
  double quiet_max = 0;
  for (int i = 0; i < 50; i++) {
    double t = now_ms();
    get_as(NULL, "/readyz");
    if (now_ms() - t > quiet_max)
      quiet_max = now_ms() - t;
    usleep(2000);
  }
  char extra[512];
  snprintf(extra, sizeof extra, "%sContent-Type: application/json\r\n", nj_c);
  double t0 = now_ms();
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0)
    _exit(child_post("/api/v1/admin/registry", extra, text, blen) == 200 ? 0 : 1);
  double busy_max = 0;
  int pings = 0, status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    double t = now_ms();
    get_as(NULL, "/readyz");
    assert_int_equal(R.status, 200);
    if (now_ms() - t > busy_max)
      busy_max = now_ms() - t;
    pings++;
    usleep(2000); /* a client polling, not a load generator: the import gets the cores */
  }
  double total = now_ms() - t0;
  free(text);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  /* the SQL function alone, with the rows as the web process gives them */
  double t1 = now_ms();
  char sql[512];
  snprintf(sql, sizeof sql,
           "SELECT (hw_admin_import_vehicles((SELECT jsonb_agg(jsonb_build_object('line', i + 2, "
           "'plate', '苏C' || lpad(i::text, 5, '0'), 'plate_colour', '2', 'vin', null, "
           "'class_code', 'heavy_truck', 'terminal_id', 't' || lpad(i::text, 6, '0'), 'region', "
           "'320102', 'enterprise', 'NJ Freight', 'permit_no', null, 'permit_expires', null, "
           "'status', null)) FROM generate_series(0, %d) i), '{3201%%}', NULL, 'test', "
           "true)->>'inserted')::int", IMPORT_ROWS - 1);
  assert_int_equal(q("%s", sql), IMPORT_ROWS);
  double sql_ms = now_ms() - t1;
  printf("admin registry import, %d rows (%.1f MB of JSON body), dry run: %.0f ms end to end, of "
         "which the SQL function about %.0f ms (given the same rows directly); another client's "
         "GET /readyz every 2 ms: longest %.1f ms over %d requests meanwhile, %.1f ms longest of 50 "
         "with no import\n",
         IMPORT_ROWS, (double)blen / 1e6, total, sql_ms, busy_max, pings, quiet_max);
}

/* --- zones -------------------------------------------------------------------------------- */

static const char zone_ok[] =
    "{\"type\":\"FeatureCollection\",\"features\":[{\"type\":\"Feature\",\"properties\":"
    "{\"name\":\"南京绕城限速\",\"kind\":\"speed_limit\",\"limit_kmh\":60},\"geometry\":"
    "{\"type\":\"Polygon\",\"coordinates\":[[[118.7,32.0],[118.9,32.0],[118.9,32.1],[118.7,32.1],"
    "[118.7,32.0]]]}}]}";

static void test_zones_import(void **state) {
  (void)state;
  long audit = q("SELECT count(*) FROM admin_audit");
  /* a city admin: zones are not region-owned, 403 */
  post_json(nj_c, "/api/v1/admin/zones", zone_ok);
  assert_int_equal(R.status, 403);
  assert_int_equal(q("SELECT count(*) FROM zones"), 0);
  /* bad documents: 400, with the feature named */
  post_json(root_c, "/api/v1/admin/zones", "{\"type\":\"FeatureCollection\",\"features\":[");
  assert_int_equal(R.status, 400);
  assert_non_null(strstr(R.body, "not valid JSON"));
  post_json(root_c, "/api/v1/admin/zones", "{\"type\":\"Feature\"}");
  assert_int_equal(R.status, 400);
  assert_non_null(strstr(R.body, "FeatureCollection"));
  post_json(root_c, "/api/v1/admin/zones",
            "{\"type\":\"FeatureCollection\",\"features\":[{\"type\":\"Feature\",\"properties\":"
            "{\"name\":\"z\",\"kind\":\"fly\"},\"geometry\":{\"type\":\"Polygon\",\"coordinates\":"
            "[[[118.7,32.0],[118.9,32.0],[118.9,32.1],[118.7,32.0]]]}}]}");
  assert_int_equal(R.status, 400);
  assert_non_null(strstr(R.body, "\"feature\":1"));
  /* a bow tie: PostGIS finds it invalid */
  post_json(root_c, "/api/v1/admin/zones",
            "{\"type\":\"FeatureCollection\",\"features\":[{\"type\":\"Feature\",\"properties\":"
            "{\"name\":\"bowtie\",\"kind\":\"no_entry\"},\"geometry\":{\"type\":\"Polygon\","
            "\"coordinates\":[[[0,0],[1,1],[1,0],[0,1],[0,0]]]}}]}");
  assert_int_equal(R.status, 400);
  assert_non_null(strstr(R.body, "invalid polygon"));
  assert_int_equal(q("SELECT count(*) FROM zones"), 0);
  assert_int_equal(q("SELECT count(*) FROM admin_audit"), audit);
  /* the whole country's admin */
  post_json(root_c, "/api/v1/admin/zones", zone_ok);
  assert_int_equal(R.status, 200);
  assert_non_null(strstr(R.body, "\"zones\":1"));
  assert_int_equal(q("SELECT count(*) FROM zones WHERE name = '南京绕城限速' AND limit_kmh = 60"), 1);
  assert_int_equal(q("SELECT count(*) FROM admin_audit WHERE action = 'zones.import' AND "
                     "user_name = 'root' AND detail->'names' = '[\"南京绕城限速\"]'"), 1);
}

/* --- the audit ---------------------------------------------------------------------------- */

static void test_audit_list(void **state) {
  (void)state;
  /* the whole country's admin sees everything, the command line's changes too */
  get_as(root_c, "/api/v1/admin/audit?limit=1000");
  assert_int_equal(R.status, 200);
  cJSON *o = body_json();
  int total = cJSON_GetArraySize(cJSON_GetObjectItem(o, "items"));
  cJSON_Delete(o);
  assert_int_equal(total, q("SELECT count(*) FROM admin_audit"));
  assert_true(items_have("user", "cli"));
  assert_true(items_have("action", "zones.import"));
  /* the city admin: its own and its users', not the command line's nor root's */
  get_as(nj_c, "/api/v1/admin/audit");
  assert_int_equal(R.status, 200);
  assert_true(items_have("user", "nj_admin"));
  assert_false(items_have("user", "cli"));
  assert_false(items_have("user", "root"));
  /* paging: newest first, the cursor goes on */
  get_as(root_c, "/api/v1/admin/audit?limit=1");
  o = body_json();
  const cJSON *cur = cJSON_GetObjectItem(o, "next_cursor");
  assert_true(cJSON_IsString(cur));
  long first = (long)cJSON_GetArrayItem(cJSON_GetObjectItem(o, "items"), 0)
                   ->child->valuedouble; /* "id" is the first member */
  assert_int_equal(first, q("SELECT max(id) FROM admin_audit"));
  char path[128];
  snprintf(path, sizeof path, "/api/v1/admin/audit?limit=1&cursor=%s", cur->valuestring);
  cJSON_Delete(o);
  get_as(root_c, path);
  o = body_json();
  long second = (long)cJSON_GetArrayItem(cJSON_GetObjectItem(o, "items"), 0)->child->valuedouble;
  cJSON_Delete(o);
  assert_true(second < first);
  get_as(root_c, "/api/v1/admin/audit?cursor=abc");
  assert_int_equal(R.status, 400);
  get_as(root_c, "/api/v1/admin/audit?limit=0");
  assert_int_equal(R.status, 400);
}

/* --- metrics ----------------------------------------------------------------------------- */

static void test_metrics(void **state) {
  (void)state;
  scrape();
  double before_fail = sample("haulwatch_web_login_failures_total");
  double users_2xx = sample("haulwatch_web_requests_total{method=\"GET\",route=\"/api/v1/admin/users\",class=\"2xx\"}");
  double reg_4xx = sample("haulwatch_web_requests_total{method=\"POST\",route=\"/api/v1/admin/registry\",class=\"4xx\"}");
  double lat = sample("haulwatch_web_request_duration_seconds_count");
  assert_true(before_fail >= 0);
  assert_int_equal(users_2xx, 3); /* test_users_scoped's three lists */
  assert_true(reg_4xx >= 10);  /* the 403s and test_registry_import's refusals (a 413 is the server's) */
  assert_true(lat > 0);
  assert_int_equal(sample("haulwatch_web_postgres_connections"), 4);
  assert_int_equal(sample("haulwatch_web_sse_clients"), 0);
  post_json(NULL, "/api/v1/login", "{\"user\":\"root\",\"password\":\"wrong\"}");
  assert_int_equal(R.status, 401);
  get_as(nj_c, "/api/v1/admin/users");
  assert_int_equal(R.status, 200);
  scrape();
  assert_int_equal(sample("haulwatch_web_login_failures_total"), before_fail + 1);
  assert_int_equal(sample("haulwatch_web_requests_total{method=\"GET\",route=\"/api/v1/admin/users\",class=\"2xx\"}"), users_2xx + 1);
  assert_true(sample("haulwatch_web_request_duration_seconds_count") >= lat + 2);
  /* no label per user or vehicle: the names of this test's users appear nowhere */
  assert_null(strstr(R.body, "nj_admin"));
  assert_null(strstr(R.body, "苏A"));
  wc_promtool_check(R.body, R.len);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lower_roles_forbidden),
      cmocka_unit_test(test_users_scoped),
      cmocka_unit_test(test_user_add),
      cmocka_unit_test(test_user_disable_and_token),
      cmocka_unit_test(test_registry_import),
      cmocka_unit_test(test_body_limits),
      cmocka_unit_test(test_print_import_timing),
      cmocka_unit_test(test_zones_import),
      cmocka_unit_test(test_audit_list),
      cmocka_unit_test(test_metrics),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
