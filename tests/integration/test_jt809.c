/* JT/T 809 against a fresh database: `haulwatch platform add|list|disable` (the password kept
 * only as an argon2id string that verifies the password and nothing else, every bad argument
 * refused with nothing stored, the access code unique) and what schema/013_jt809.sql accepts:
 * platform_links rows, auth_refusals of protocol 'jt809', positions under a
 * jt809:ACCESSCODE:PLATE:COLOUR id while terminals and vehicles keep their narrow ids; the main
 * link (login, keep-alive, replacement, logout, strikes) and its positions: a registry vehicle's
 * under its terminal id with the rules applied, an unknown plate's under its jt809: id,
 * back-fill with its device times, 0x1201 mismatches recorded, nothing before login. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "jt809/jt809_login.h"
#include "jt809/jt809_vehicle.h"
#include "registry/platform_row.h"

#include <arpa/inet.h>
#include <signal.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define DB "hw_test_jt809"
#define HW_JT809_MAX_STRIKES_TEST 10 /* jt809_session.h: HW_JT809_MAX_STRIKES */

static hw_test_env env;
static char conninfo[512];
static PGconn *db;
static int jport;
static char jlisten[64];

/* `haulwatch ARGS...`; returns its exit status. */
static int run_cli(const char *const *argv) {
  pid_t pid = hw_test_spawn(argv, "test_jt809.cli.log");
  return hw_test_wait_exit(pid, 20000);
}

/* `printf %s INPUT | haulwatch ARGS...` through sh, so the password comes on standard input. */
static int run_cli_stdin(const char *input, const char *args) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "printf '%%s' '%s' | '%s' %s --pg '%s'", input, HW_BINARY, args,
           conninfo);
  const char *argv[] = {"sh", "-c", cmd, NULL};
  pid_t pid = hw_test_exec("/bin/sh", argv, "test_jt809.cli.log");
  return hw_test_wait_exit(pid, 20000);
}

static long scalar(const char *sql) { return hw_test_pg_scalar(db, sql); }

/* 1 when the stored hash of platform id verifies password. */
static int hash_verifies(const char *id, const char *password) {
  char hash[256];
  hw_test_pg_text(db, hash, sizeof hash, "SELECT password_hash FROM platforms WHERE id = '%s'", id);
  assert_true(strncmp(hash, "$argon2id$", 10) == 0);
  return crypto_pwhash_str_verify(hash, password, strlen(password)) == 0;
}

static int setup(void **state) {
  (void)state;
  assert_true(sodium_init() >= 0);
  hw_test_env_up(&env, DB);
  snprintf(conninfo, sizeof conninfo, "%s", env.conninfo);
  db = env.db;
  jport = hw_test_free_port();
  snprintf(jlisten, sizeof jlisten, "127.0.0.1:%d", jport);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  hw_test_env_down(&env); /* fails unless the daemon exits 0 on SIGTERM */
  return 0;
}

static void platform_add(void **state) {
  (void)state;
  const char *a1[] = {"platform", "add", "ent1", "--user-id", "70001", "--password", "pw12345",
                      "--center-id", "3300001", "--version", "2011", "--m1", "10000000",
                      "--ia1", "20000000", "--ic1", "30000000", "--allow-addr", "127.0.0.1",
                      "--pg", conninfo, NULL};
  assert_int_equal(run_cli(a1), 0);
  assert_int_equal(scalar("SELECT count(*) FROM platforms WHERE id = 'ent1' AND user_id = 70001 "
                          "AND center_id = 3300001 AND version = 2011 AND m1 = 10000000 AND "
                          "ia1 = 20000000 AND ic1 = 30000000 AND allow_addr = '127.0.0.1' AND "
                          "NOT disabled"),
                   1);
  assert_true(hash_verifies("ent1", "pw12345"));
  assert_false(hash_verifies("ent1", "pw1234"));
  assert_false(hash_verifies("ent1", "pw123456"));
  /* The password itself appears nowhere in the row. */
  assert_int_equal(scalar("SELECT count(*) FROM platforms p WHERE p::text LIKE '%pw12345%'"), 0);

  /* From standard input, one trailing newline dropped; defaults: 2019, no keys, any address. */
  assert_int_equal(run_cli_stdin("secret8\n", "platform add nat --user-id 4294967295 "
                                              "--password-stdin --center-id 0"),
                   0);
  assert_int_equal(scalar("SELECT count(*) FROM platforms WHERE id = 'nat' AND user_id = "
                          "4294967295 AND center_id = 0 AND version = 2019 AND m1 IS NULL AND "
                          "ia1 IS NULL AND ic1 IS NULL AND allow_addr IS NULL"),
                   1);
  assert_true(hash_verifies("nat", "secret8"));
  assert_false(hash_verifies("nat", "secret8\n"));
}

static void platform_add_refused(void **state) {
  (void)state;
  long before = scalar("SELECT count(*) FROM platforms");
  /* Each: exit 2 (usage) or 1 (refused by the database), nothing stored. */
  static const char *const bad[][16] = {
      {"platform", "add", "x1", "--user-id", "1", "--password", "123456789", "--center-id", "9"},
      {"platform", "add", "x2", "--user-id", "1", "--password", "p", "--center-id", "4294967296"},
      {"platform", "add", "x3", "--user-id", "-1", "--password", "p", "--center-id", "9"},
      {"platform", "add", "x4", "--password", "p", "--center-id", "9"},
      {"platform", "add", "x5", "--user-id", "1", "--password", "p"},
      {"platform", "add", "x6", "--user-id", "1", "--password", "p", "--center-id", "9", "--m1",
       "1", "--ia1", "2"},
      {"platform", "add", "x7", "--user-id", "1", "--password", "p", "--center-id", "9",
       "--version", "2013"},
      {"platform", "add", "x8", "--user-id", "1", "--password", "p", "--center-id", "9",
       "--allow-addr", "10.0.0.300"},
      {"platform", "add", "bad id", "--user-id", "1", "--password", "p", "--center-id", "9"},
      {"platform", "add", "x9", "--user-id", "1", "--center-id", "9"},
      /* The access code names the platform on the wire: a second one is refused. */
      {"platform", "add", "x10", "--user-id", "1", "--password", "p", "--center-id", "3300001"},
      {"platform", "add", "ent1", "--user-id", "1", "--password", "p", "--center-id", "77"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    const char *argv[20];
    size_t n = 0;
    while (n < 16 && bad[i][n])
      argv[n] = bad[i][n], n++;
    argv[n++] = "--pg";
    argv[n++] = conninfo;
    argv[n] = NULL;
    int rc = run_cli(argv);
    if (rc != 1 && rc != 2)
      fail_msg("case %zu exited %d", i, rc);
  }
  /* Both at once, and an empty password on stdin. */
  assert_int_equal(run_cli_stdin("pw", "platform add x11 --user-id 1 --password-stdin "
                                       "--password pw --center-id 11"),
                   2);
  assert_int_equal(run_cli_stdin("\n", "platform add x12 --user-id 1 --password-stdin "
                                       "--center-id 12"),
                   2);
  assert_int_equal(scalar("SELECT count(*) FROM platforms"), before);
  assert_true(hash_verifies("ent1", "pw12345"));
}

static void platform_list_disable(void **state) {
  (void)state;
  /* An open main link makes a platform online in the list. */
  assert_int_equal(scalar("INSERT INTO platform_links (platform, link, remote_addr) VALUES "
                          "('ent1', 'main', '127.0.0.1:5000') RETURNING 1"),
                   1);
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "'%s' platform list --pg '%s' > test_jt809.list.txt", HW_BINARY,
           conninfo);
  const char *argv[] = {"sh", "-c", cmd, NULL};
  assert_int_equal(hw_test_wait_exit(hw_test_exec("/bin/sh", argv, NULL), 20000), 0);
  FILE *f = fopen("test_jt809.list.txt", "r");
  assert_non_null(f);
  char line[256];
  int saw_ent1 = 0, saw_nat = 0;
  while (fgets(line, sizeof line, f)) {
    if (!strncmp(line, "ent1 ", 5)) {
      saw_ent1 = 1;
      assert_non_null(strstr(line, "3300001"));
      assert_non_null(strstr(line, "keys"));
      assert_non_null(strstr(line, "127.0.0.1"));
      assert_non_null(strstr(line, "online"));
    }
    if (!strncmp(line, "nat ", 4)) {
      saw_nat = 1;
      assert_non_null(strstr(line, "any"));
      assert_non_null(strstr(line, "offline"));
    }
  }
  fclose(f);
  assert_true(saw_ent1 && saw_nat);

  const char *d[] = {"platform", "disable", "nat", "--pg", conninfo, NULL};
  assert_int_equal(run_cli(d), 0);
  assert_int_equal(scalar("SELECT count(*) FROM platforms WHERE disabled"), 1);
  assert_int_equal(scalar("SELECT count(*) FROM platforms WHERE id = 'nat' AND disabled"), 1);
  const char *d2[] = {"platform", "disable", "nobody", "--pg", conninfo, NULL};
  assert_int_equal(run_cli(d2), 1);
}

/* The platform of access code `center` as the daemon reads it; 0 rows -> 0, else 1. */
static int load(uint32_t center, hw_jt809_platform *p) {
  char c[16];
  snprintf(c, sizeof c, "%u", center);
  const char *params[1] = {c};
  PGresult *r = PQexecParams(db, HW_PLATFORM_SQL_BY_CENTER, 1, NULL, params, NULL, NULL, 0);
  assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
  int n = PQntuples(r);
  if (n)
    assert_int_equal(hw_platform_from_row(r, 0, p), 0);
  PQclear(r);
  return n;
}

static hw_jt809_login login_msg(uint32_t user, const char *pw) {
  hw_jt809_login m;
  memset(&m, 0, sizeof m);
  m.user_id = user;
  m.password_len = (uint8_t)strlen(pw);
  memcpy(m.password, pw, m.password_len);
  return m;
}

/* What `platform add` and `platform disable` wrote decides logins as the daemon will. */
static void cli_rows_decide_logins(void **state) {
  (void)state;
  hw_jt809_platform p;
  const char *why;
  assert_int_equal(load(3300001, &p), 1);
  assert_string_equal(p.id, "ent1");
  assert_int_equal(p.user_id, 70001);
  assert_int_equal(p.version, 2011);
  assert_true(p.has_keys);
  assert_int_equal(p.m1, 10000000);
  assert_int_equal(p.ia1, 20000000);
  assert_int_equal(p.ic1, 30000000);
  assert_string_equal(p.allow_addr, "127.0.0.1");
  assert_false(p.disabled);
  hw_jt809_login ok = login_msg(70001, "pw12345"), bad = login_msg(70001, "pw12346");
  assert_int_equal(hw_jt809_login_check(&p, 3300001, &ok, "127.0.0.1", &why), HW_JT809_LOGIN_OK);
  assert_int_equal(hw_jt809_login_check(&p, 3300001, &ok, "127.0.0.2", &why), HW_JT809_LOGIN_BAD_IP);
  assert_int_equal(hw_jt809_login_check(&p, 3300001, &bad, "127.0.0.1", &why),
                   HW_JT809_LOGIN_BAD_PASSWORD);
  assert_int_equal(load(3300002, &p), 0);
  assert_int_equal(hw_jt809_login_check(NULL, 3300002, &ok, "127.0.0.1", &why),
                   HW_JT809_LOGIN_BAD_ACCESS_CODE);
  /* nat: disabled by platform_list_disable; access code 0, the largest user id, 2019, no keys. */
  assert_int_equal(load(0, &p), 1);
  assert_string_equal(p.id, "nat");
  assert_int_equal(p.user_id, 4294967295u);
  assert_int_equal(p.version, 2019);
  assert_false(p.has_keys);
  assert_string_equal(p.allow_addr, "");
  assert_true(p.disabled);
  hw_jt809_login nat = login_msg(4294967295u, "secret8");
  assert_int_equal(hw_jt809_login_check(&p, 0, &nat, "10.9.8.7", &why),
                   HW_JT809_LOGIN_BAD_ACCESS_CODE);
  assert_string_equal(why, "platform disabled");
  p.disabled = 0; /* as before the disable: the stdin password verifies */
  assert_int_equal(hw_jt809_login_check(&p, 0, &nat, "10.9.8.7", &why), HW_JT809_LOGIN_OK);
}


/* ---- a small JT/T 809 subordinate platform: blocking socket, the codec's encoders ---- */

typedef struct j9c {
  int fd;
  int is_2019;
  uint32_t center;
  uint32_t sn;
  hw_jt809_deframer d;
  uint8_t dbuf[4096];
  uint8_t frames[8][512]; /* received, not yet taken */
  size_t lens[8];
  int n;
} j9c;

static int j9_take(void *arg, hw_jt809_frame_event ev, uint8_t *data, size_t len) {
  j9c *c = arg;
  assert_int_equal(ev, HW_JT809_FRAME);
  assert_true(c->n < 8 && len <= 512);
  memcpy(c->frames[c->n], data, len);
  c->lens[c->n++] = len;
  return 0;
}

static j9c *j9_connect(int is_2019, uint32_t center) {
  j9c *c = calloc(1, sizeof *c);
  assert_non_null(c);
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(c->fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)jport)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(c->fd, (struct sockaddr *)&a, sizeof a), 0);
  struct timeval tv = {.tv_sec = 10};
  setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  c->is_2019 = is_2019;
  c->center = center;
  assert_int_equal(hw_jt809_deframer_init(&c->d, c->dbuf, sizeof c->dbuf), 0);
  return c;
}

static void j9_close(j9c *c) {
  close(c->fd);
  free(c);
}

static void j9_send(j9c *c, uint16_t msg_id, const uint8_t *body, size_t bl) {
  uint8_t out[1024];
  size_t n;
  hw_jt809_header h;
  hw_jt809_header_init(&h, c->sn++, msg_id, c->center, c->is_2019, 1700000000);
  assert_int_equal(hw_jt809_build(out, sizeof out, &n, &h, NULL, body, bl), 0);
  assert_int_equal(write(c->fd, out, n), (ssize_t)n);
}

/* The next frame from the centre: its message id and body (copied into body[0..*bl)). 0, or -1
 * when the centre closed the connection (or nothing came within 10 s). */
static int j9_recv(j9c *c, uint16_t *msg_id, uint8_t *body, size_t *bl) {
  while (c->n == 0) {
    uint8_t in[1024];
    ssize_t r = read(c->fd, in, sizeof in);
    if (r <= 0)
      return -1;
    assert_int_equal(hw_jt809_deframer_feed(&c->d, in, (size_t)r, j9_take, c), 0);
  }
  hw_jt809_header h;
  const uint8_t *b;
  size_t n;
  assert_int_equal(hw_jt809_header_parse(c->frames[0], c->lens[0], c->is_2019, &h, &b, &n), 0);
  assert_int_equal(h.center_id, c->center);
  *msg_id = h.msg_id;
  memcpy(body, b, n);
  *bl = n;
  c->n--;
  memmove(c->frames[0], c->frames[1], sizeof c->frames[0] * (size_t)c->n);
  memmove(c->lens, c->lens + 1, sizeof c->lens[0] * (size_t)c->n);
  return 0;
}

/* Sends 0x1001 and returns the 0x1002 result. */
static int j9_login(j9c *c, uint32_t user, const char *pw) {
  hw_jt809_login m;
  memset(&m, 0, sizeof m);
  m.user_id = user;
  m.password_len = (uint8_t)strlen(pw);
  memcpy(m.password, pw, m.password_len);
  m.center_id = c->is_2019 ? c->center : 0;
  snprintf(m.down_ip, sizeof m.down_ip, "127.0.0.1");
  m.down_port = 1;
  uint8_t body[64], rsp[64];
  size_t bl;
  assert_int_equal(hw_jt809_encode_login(&m, c->is_2019, body, sizeof body, &bl), 0);
  j9_send(c, HW_JT809_UP_CONNECT_REQ, body, bl);
  uint16_t id;
  if (j9_recv(c, &id, rsp, &bl))
    fail_msg("no 0x1002");
  assert_int_equal(id, HW_JT809_UP_CONNECT_RSP);
  uint8_t result;
  uint32_t verify;
  assert_int_equal(hw_jt809_parse_login_rsp(rsp, bl, &result, &verify), 0);
  return result;
}

static long wait_scalar(long want, const char *sql) {
  long n = scalar(sql);
  for (int waited = 0; waited < 10000 && n != want; waited += 50) {
    usleep(50000);
    n = scalar(sql);
  }
  return n;
}

/* seen_s: --jt809-link-seen-s (NULL: the default). */
static void daemon_start_seen(const char *seen_s) {
  const char *argv[] = {"serve", "--listen", env.listen_addr, "--jt809-listen", jlisten, "--pg",
                        env.conninfo, "--redis", env.redis_addr, "--batch-ms", "20",
                        "--log-level", "debug", seen_s ? "--jt809-link-seen-s" : NULL, seen_s,
                        NULL};
  env.daemon_pid = hw_test_spawn(argv, "test_jt809.daemon.log");
  assert_int_equal(hw_test_wait_port(env.port, 15000), 0);
  assert_int_equal(hw_test_wait_port(jport, 15000), 0);
}

static void daemon_start(void) { daemon_start_seen(NULL); }

/* A registry vehicle reported by plate (bound to a JT/T 808 phone number), in place before the
 * daemon's first registry load. */
#define REG_PLATE "苏A80901"
#define REG_TID "013900000901"

static void link_login_refused(void **state) {
  (void)state;
  assert_int_equal(hw_test_pg_scalarf(db, "INSERT INTO vehicles (plate, plate_colour, class_code, "
                                          "terminal_id, region) VALUES ('%s', 2, 'heavy_truck', "
                                          "'%s', '320100') RETURNING 1", REG_PLATE, REG_TID),
                   1);
  daemon_start();
  assert_int_equal(run_cli_stdin("pw19", "platform add p19 --user-id 81 --password-stdin "
                                         "--center-id 4400001 --version 2019"),
                   0);
  assert_int_equal(run_cli_stdin("pw11", "platform add p11 --user-id 82 --password-stdin "
                                         "--center-id 4400011 --version 2011"),
                   0);
  assert_int_equal(run_cli_stdin("pwfar", "platform add pfar --user-id 83 --password-stdin "
                                          "--center-id 4400002 --allow-addr 10.1.1.1"),
                   0);
  j9c *c = j9_connect(1, 4400001);
  assert_int_equal(j9_login(c, 81, "pw18"), HW_JT809_LOGIN_BAD_PASSWORD);
  assert_int_equal(j9_login(c, 80, "pw19"), HW_JT809_LOGIN_NO_USER);
  j9_close(c);
  c = j9_connect(1, 4409999);
  assert_int_equal(j9_login(c, 81, "pw19"), HW_JT809_LOGIN_BAD_ACCESS_CODE);
  j9_close(c);
  c = j9_connect(1, 4400002);
  assert_int_equal(j9_login(c, 83, "pwfar"), HW_JT809_LOGIN_BAD_IP);
  /* Anything but a login before one: dropped and recorded. */
  j9_send(c, HW_JT809_UP_LINKTEST_REQ, NULL, 0);
  j9_close(c);
  assert_int_equal(wait_scalar(5, "SELECT count(*) FROM auth_refusals WHERE protocol = 'jt809' "
                                  "AND source = '127.0.0.1' AND reason IN ('wrong password', "
                                  "'unknown user id', 'unknown access code', 'source address "
                                  "not allowed', 'message before login')"),
                   5);
  assert_int_equal(scalar("SELECT count(*) FROM auth_refusals WHERE protocol = 'jt809' AND "
                          "reason = 'unknown access code' AND terminal_id = '4409999'"),
                   1);
  assert_int_equal(scalar("SELECT count(*) FROM platform_links WHERE platform <> 'ent1'"), 0);
}

static void link_up_heartbeat_replace_logout(void **state) {
  (void)state;
  uint8_t body[64];
  size_t bl;
  uint16_t id;
  j9c *a = j9_connect(1, 4400001);
  assert_int_equal(j9_login(a, 81, "pw19"), HW_JT809_LOGIN_OK);
  j9_send(a, HW_JT809_UP_LINKTEST_REQ, NULL, 0);
  assert_int_equal(j9_recv(a, &id, body, &bl), 0);
  assert_int_equal(id, HW_JT809_UP_LINKTEST_RSP);
  assert_int_equal(wait_scalar(1, "SELECT count(*) FROM platform_links WHERE platform = 'p19' "
                                  "AND link = 'main' AND down_at IS NULL AND remote_addr LIKE "
                                  "'127.0.0.1:%'"),
                   1);
  /* A second 0x1001 on a logged-in link is not decided again (no 0x1002, no new row): the
   * keep-alive sent after it is answered first. */
  {
    hw_jt809_login m2;
    memset(&m2, 0, sizeof m2);
    m2.user_id = 81;
    m2.password_len = 4;
    memcpy(m2.password, "pw19", 4);
    m2.center_id = 4400001;
    assert_int_equal(hw_jt809_encode_login(&m2, 1, body, sizeof body, &bl), 0);
    j9_send(a, HW_JT809_UP_CONNECT_REQ, body, bl);
    j9_send(a, HW_JT809_UP_LINKTEST_REQ, NULL, 0);
    assert_int_equal(j9_recv(a, &id, body, &bl), 0);
    assert_int_equal(id, HW_JT809_UP_LINKTEST_RSP);
    assert_int_equal(scalar("SELECT count(*) FROM platform_links WHERE platform = 'p19'"), 1);
  }
  /* The 2011 edition, on its own link. */
  j9c *o = j9_connect(0, 4400011);
  assert_int_equal(j9_login(o, 82, "pw11"), HW_JT809_LOGIN_OK);
  j9_send(o, HW_JT809_UP_LINKTEST_REQ, NULL, 0);
  assert_int_equal(j9_recv(o, &id, body, &bl), 0);
  assert_int_equal(id, HW_JT809_UP_LINKTEST_RSP);

  /* A second login of p19 replaces the first link, which the centre closes. */
  j9c *b = j9_connect(1, 4400001);
  assert_int_equal(j9_login(b, 81, "pw19"), HW_JT809_LOGIN_OK);
  assert_int_equal(j9_recv(a, &id, body, &bl), -1);
  j9_close(a);
  assert_int_equal(wait_scalar(1, "SELECT count(*) FROM platform_links WHERE platform = 'p19' "
                                  "AND down_at >= up_at AND reason = 'replaced by a new login'"),
                   1);
  j9_send(b, HW_JT809_UP_LINKTEST_REQ, NULL, 0);
  assert_int_equal(j9_recv(b, &id, body, &bl), 0);
  assert_int_equal(id, HW_JT809_UP_LINKTEST_RSP);

  /* Logout: answered, then closed; the link row says so. */
  hw_jt809_login m;
  memset(&m, 0, sizeof m);
  m.user_id = 81;
  m.password_len = 4;
  memcpy(m.password, "pw19", 4);
  assert_int_equal(hw_jt809_encode_logout(&m, body, sizeof body, &bl), 0);
  j9_send(b, HW_JT809_UP_DISCONNECT_REQ, body, bl);
  assert_int_equal(j9_recv(b, &id, body, &bl), 0);
  assert_int_equal(id, HW_JT809_UP_DISCONNECT_RSP);
  assert_int_equal(j9_recv(b, &id, body, &bl), -1);
  j9_close(b);
  assert_int_equal(wait_scalar(1, "SELECT count(*) FROM platform_links WHERE platform = 'p19' "
                                  "AND reason = 'logout'"),
                   1);
  assert_int_equal(scalar("SELECT count(*) FROM platform_links WHERE platform = 'p19'"), 2);

  /* Bad CRCs past the strike limit close the link. */
  uint8_t frame[256];
  size_t n;
  hw_jt809_header h;
  memset(&h, 0, sizeof h);
  h.msg_id = HW_JT809_UP_LINKTEST_REQ;
  h.center_id = 4400011;
  assert_int_equal(hw_jt809_build(frame, sizeof frame, &n, &h, NULL, NULL, 0), 0);
  frame[n - 2] ^= 0x01; /* the CRC's low byte (not an escape: ours has none there, checked) */
  assert_true(frame[n - 2] != 0x5a && frame[n - 2] != 0x5e && frame[n - 3] != 0x5a &&
              frame[n - 3] != 0x5e);
  for (int i = 0; i <= HW_JT809_MAX_STRIKES_TEST; i++)
    assert_int_equal(write(o->fd, frame, n), (ssize_t)n);
  assert_int_equal(j9_recv(o, &id, body, &bl), -1);
  j9_close(o);
  assert_int_equal(wait_scalar(1, "SELECT count(*) FROM platform_links WHERE platform = 'p11' "
                                  "AND reason = 'strikes'"),
                   1);
}

/* ---- positions ---- */

/* A 2011 GNSS record (the 2019 link gets the same as a JT/T 808-2019 0x0200 body). */
static void gnss_2011(hw_jt809_gnss *g, int64_t ts_ms, int32_t lat_e6, int32_t lon_e6,
                      unsigned kmh) {
  time_t t = (time_t)(ts_ms / 1000) + 8 * 3600; /* GMT+8 */
  struct tm tm;
  gmtime_r(&t, &tm);
  memset(g, 0, sizeof *g);
  g->day = (uint8_t)tm.tm_mday, g->month = (uint8_t)(tm.tm_mon + 1);
  g->year = (uint16_t)(tm.tm_year + 1900);
  g->hour = (uint8_t)tm.tm_hour, g->minute = (uint8_t)tm.tm_min, g->second = (uint8_t)tm.tm_sec;
  g->lat = (uint32_t)lat_e6, g->lon = (uint32_t)lon_e6;
  g->vec1 = (uint16_t)kmh;
  g->vec2 = (uint16_t)(kmh + 7); /* the recorder's speed: not the one stored */
  g->vec3 = 123456;              /* km */
  g->direction = 90;
  g->altitude = 20;
  g->state = 0x3; /* ACC on, positioned */
}

static size_t loc_0200(uint8_t *p, const hw_jt809_gnss *g) {
  uint32_t v[4] = {g->alarm, g->state, g->lat, g->lon};
  for (int i = 0; i < 4; i++)
    p[4 * i] = (uint8_t)(v[i] >> 24), p[4 * i + 1] = (uint8_t)(v[i] >> 16),
    p[4 * i + 2] = (uint8_t)(v[i] >> 8), p[4 * i + 3] = (uint8_t)v[i];
  uint16_t w[3] = {g->altitude, (uint16_t)(g->vec1 * 10), g->direction};
  for (int i = 0; i < 3; i++)
    p[16 + 2 * i] = (uint8_t)(w[i] >> 8), p[17 + 2 * i] = (uint8_t)w[i];
  int d[6] = {g->year % 100, g->month, g->day, g->hour, g->minute, g->second};
  for (int i = 0; i < 6; i++)
    p[22 + i] = (uint8_t)((d[i] / 10) << 4 | d[i] % 10);
  return 28;
}

/* 0x1200 with data type type for plate/colour: one position (0x1202), n (0x1203) or the given
 * data (0x1201 and others). */
static void j9_exg(j9c *c, const char *plate, uint8_t colour, uint16_t type, const uint8_t *data,
                   size_t dl) {
  uint8_t body[1024];
  size_t bl;
  assert_int_equal(hw_jt809_encode_sub(1, plate, colour, type, data, dl, body, sizeof body, &bl), 0);
  j9_send(c, HW_JT809_UP_EXG_MSG, body, bl);
}

static void j9_positions(j9c *c, const char *plate, uint8_t colour, hw_jt809_gnss *g, size_t n,
                         int backfill) {
  uint8_t data[900], loc[5][28];
  size_t dl;
  assert_true(n >= 1 && n <= 5);
  for (size_t i = 0; i < n; i++) {
    g[i].is_2019 = (uint8_t)c->is_2019;
    if (c->is_2019) {
      g[i].loc = loc[i];
      g[i].loc_len = (uint32_t)loc_0200(loc[i], &g[i]);
    }
  }
  if (backfill)
    assert_int_equal(hw_jt809_encode_batch(g, n, data, sizeof data, &dl), 0);
  else
    assert_int_equal(hw_jt809_encode_gnss(&g[0], data, sizeof data, &dl), 0);
  j9_exg(c, plate, colour, backfill ? HW_JT809_EXG_HISTORY_LOCATION : HW_JT809_EXG_REAL_LOCATION,
         data, dl);
}

static void link_positions(void **state) {
  (void)state;
  int64_t now = (int64_t)time(NULL) * 1000, t0 = now - 20 * 60 * 1000;
  hw_jt809_gnss g[5];
  uint8_t data[256];
  size_t dl;
  uint16_t id;

  /* Nothing from a link that has not logged in: dropped, recorded, no position. */
  j9c *x = j9_connect(0, 4400011);
  gnss_2011(&g[0], t0, 32000000, 118000000, 50);
  j9_positions(x, "测X00001", 2, g, 1, 0);
  j9_close(x);
  assert_int_equal(wait_scalar(1, "SELECT count(*) FROM auth_refusals WHERE protocol = 'jt809' "
                                  "AND terminal_id = '4400011' AND reason = 'message before login'"),
                   1);

  /* 2011: the registry vehicle at 110 km/h for 3 minutes (heavy_truck: 80 km/h, 30 s) in
   * 0x1202, then the minute before it back-filled in 0x1203. */
  j9c *o = j9_connect(0, 4400011);
  assert_int_equal(j9_login(o, 82, "pw11"), HW_JT809_LOGIN_OK);
  for (int i = 0; i < 19; i++) {
    gnss_2011(&g[0], t0 + i * 10000, 32000000 + i * 3000, 118000000, 110);
    j9_positions(o, REG_PLATE, 2, g, 1, 0);
  }
  for (int i = 0; i < 5; i++)
    gnss_2011(&g[i], t0 - 60000 + i * 10000, 31990000 + i * 500, 118000000, 30);
  j9_positions(o, REG_PLATE, 2, g, 5, 1);

  /* 2019: a plate the registry does not know, real-time and back-filled. */
  j9c *b = j9_connect(1, 4400001);
  assert_int_equal(j9_login(b, 81, "pw19"), HW_JT809_LOGIN_OK);
  gnss_2011(&g[0], t0 + 5000, 30000000, 114000000, 60);
  j9_positions(b, "测Z99999", 1, g, 1, 0);
  gnss_2011(&g[0], t0 - 5000, 30000000, 114000000, 55);
  gnss_2011(&g[1], t0 - 4000, 30000100, 114000000, 56);
  j9_positions(b, "测Z99999", 1, g, 2, 1);

  /* 0x1201: the registered vehicle with its own SIM (no row), with another SIM, an unknown
   * plate; in the three layouts. */
  hw_jt809_register r;
  memset(&r, 0, sizeof r);
  r.layout = 49;
  snprintf(r.platform_id, sizeof r.platform_id, "P11");
  snprintf(r.producer_id, sizeof r.producer_id, "70001");
  snprintf(r.model, sizeof r.model, "M1");
  snprintf(r.terminal_id, sizeof r.terminal_id, "T0901");
  snprintf(r.sim, sizeof r.sim, "13900000901");
  assert_int_equal(hw_jt809_encode_register(&r, data, sizeof data, &dl), 0);
  j9_exg(o, REG_PLATE, 2, HW_JT809_EXG_REGISTER, data, dl);
  r.layout = 61;
  snprintf(r.sim, sizeof r.sim, "13900000999");
  assert_int_equal(hw_jt809_encode_register(&r, data, sizeof data, &dl), 0);
  j9_exg(o, REG_PLATE, 2, HW_JT809_EXG_REGISTER, data, dl);
  r.layout = 110;
  snprintf(r.imei, sizeof r.imei, "860000000000001");
  assert_int_equal(hw_jt809_encode_register(&r, data, sizeof data, &dl), 0);
  j9_exg(b, "测Z99999", 1, HW_JT809_EXG_REGISTER, data, dl);

  /* Both links still answer after all that (nothing they sent was a strike). */
  j9_send(o, HW_JT809_UP_LINKTEST_REQ, NULL, 0);
  assert_int_equal(j9_recv(o, &id, data, &dl), 0);
  assert_int_equal(id, HW_JT809_UP_LINKTEST_RSP);
  j9_send(b, HW_JT809_UP_LINKTEST_REQ, NULL, 0);
  assert_int_equal(j9_recv(b, &id, data, &dl), 0);
  assert_int_equal(id, HW_JT809_UP_LINKTEST_RSP);

  /* Stored: the registry vehicle under its terminal id, satellite speed, odometer VEC3, device
   * times kept (back-fill included); the unknown plate under its jt809: id. */
  assert_int_equal(wait_scalar(24, "SELECT count(*) FROM positions WHERE terminal_id = '" REG_TID
                                   "' AND source = 2"),
                   24);
  assert_int_equal(hw_test_pg_scalarf(db, "SELECT count(*) FROM positions WHERE terminal_id = '"
                                          REG_TID "' AND speed_kmh = 110 AND odometer_km = 123456 "
                                          "AND ts = to_timestamp(%lld / 1000.0)",
                                      (long long)(t0 + 180000)),
                   1);
  assert_int_equal(hw_test_pg_scalarf(db, "SELECT count(*) FROM positions WHERE terminal_id = '"
                                          REG_TID "' AND speed_kmh = 30 AND ts >= "
                                          "to_timestamp(%lld / 1000.0) AND ts < "
                                          "to_timestamp(%lld / 1000.0)",
                                      (long long)(t0 - 60000), (long long)t0),
                   5);
  assert_int_equal(wait_scalar(3, "SELECT count(*) FROM positions WHERE terminal_id = "
                                  "'jt809:4400001:测Z99999:1' AND source = 2"),
                   3);
  assert_int_equal(hw_test_pg_scalarf(db, "SELECT count(*) FROM positions WHERE terminal_id = "
                                          "'jt809:4400001:测Z99999:1' AND ts = "
                                          "to_timestamp(%lld / 1000.0) AND speed_kmh = 55",
                                      (long long)(t0 - 5000)),
                   1);
  assert_int_equal(scalar("SELECT count(*) FROM positions WHERE terminal_id LIKE '%测X00001%'"), 0);
  /* The rules: speeding opened from JT/T 809 fixes; the unknown plate is unregistered. */
  assert_int_equal(wait_scalar(1, "SELECT count(*) FROM violations WHERE terminal_id = '" REG_TID
                                  "' AND kind = 'speeding'"),
                   1);
  assert_int_equal(wait_scalar(1, "SELECT count(*) FROM violations WHERE terminal_id = "
                                  "'jt809:4400001:测Z99999:1' AND kind = 'unregistered_terminal'"),
                   1);
  assert_int_equal(scalar("SELECT count(*) FROM violations WHERE terminal_id = '" REG_TID
                          "' AND kind = 'unregistered_terminal'"),
                   0);
  /* 0x1201: two mismatches recorded, the matching registration not. */
  assert_int_equal(wait_scalar(2, "SELECT count(*) FROM jt809_vehicle_mismatches"), 2);
  assert_int_equal(scalar("SELECT count(*) FROM jt809_vehicle_mismatches WHERE platform = 'p11' "
                          "AND plate = '" REG_PLATE "' AND reason = 'sim differs' AND "
                          "registry_terminal_id = '" REG_TID "' AND reported_sim = '13900000999' "
                          "AND layout = 61"),
                   1);
  assert_int_equal(scalar("SELECT count(*) FROM jt809_vehicle_mismatches WHERE platform = 'p19' "
                          "AND plate = '测Z99999' AND plate_colour = 1 AND reason = 'unknown "
                          "plate' AND registry_terminal_id IS NULL AND layout = 110"),
                   1);
  j9_close(o);
  j9_close(b);
}

/* A link open when the daemon stops is recorded down, reason 'daemon stop'; the daemon exits 0. */
static void link_down_at_daemon_stop(void **state) {
  (void)state;
  j9c *c = j9_connect(0, 4400011);
  assert_int_equal(j9_login(c, 82, "pw11"), HW_JT809_LOGIN_OK);
  assert_int_equal(wait_scalar(1, "SELECT count(*) FROM platform_links WHERE platform = 'p11' "
                                  "AND down_at IS NULL"),
                   1);
  assert_int_equal(hw_test_stop_pid(env.daemon_pid), 0);
  env.daemon_pid = 0;
  assert_int_equal(scalar("SELECT count(*) FROM platform_links WHERE platform = 'p11' AND "
                          "down_at IS NULL"),
                   0);
  assert_int_equal(scalar("SELECT count(*) FROM platform_links WHERE platform = 'p11' AND "
                          "reason = 'daemon stop'"),
                   1);
  j9_close(c);
}

/* A daemon killed (SIGKILL) with a platform logged in: its row stays open; the next daemon
 * closes it once it has not been refreshed for 3 intervals (1 s here), down at its last refresh,
 * which is at most one interval before the kill; report platforms counts the time after as down. */
static void link_down_after_daemon_killed(void **state) {
  (void)state;
  daemon_start_seen("1");
  j9c *c = j9_connect(0, 4400011);
  assert_int_equal(j9_login(c, 82, "pw11"), HW_JT809_LOGIN_OK);
  assert_int_equal(wait_scalar(1, "SELECT count(*) FROM platform_links WHERE platform = 'p11' "
                                  "AND down_at IS NULL AND daemon IS NOT NULL"),
                   1);
  /* Refreshed at least once after the login's insert. */
  assert_int_equal(wait_scalar(1, "SELECT count(*) FROM platform_links WHERE platform = 'p11' "
                                  "AND down_at IS NULL AND last_seen_at > up_at + "
                                  "interval '0.5 s'"),
                   1);
  assert_int_equal(kill(env.daemon_pid, SIGKILL), 0);
  assert_int_equal(hw_test_wait_exit(env.daemon_pid, 5000), 128 + SIGKILL);
  env.daemon_pid = 0;
  char killed[64], up[64];
  hw_test_pg_text(db, killed, sizeof killed, "SELECT now()::text");
  hw_test_pg_text(db, up, sizeof up, "SELECT up_at::text FROM platform_links WHERE platform = "
                  "'p11' AND down_at IS NULL");
  j9_close(c);
  /* Nobody closes it while no daemon runs. */
  assert_int_equal(scalar("SELECT count(*) FROM platform_links WHERE platform = 'p11' AND "
                          "down_at IS NULL"),
                   1);
  daemon_start_seen("1");
  assert_int_equal(wait_scalar(1, "SELECT count(*) FROM platform_links WHERE platform = 'p11' "
                                  "AND reason = 'daemon died'"),
                   1);
  assert_int_equal(scalar("SELECT count(*) FROM platform_links WHERE down_at IS NULL"), 0);
  /* Down at its last refresh: within one interval (1 s, and 0.5 s of scheduling) of the kill. */
  assert_int_equal(hw_test_pg_scalarf(db, "SELECT count(*) FROM platform_links WHERE platform = "
                                          "'p11' AND reason = 'daemon died' AND down_at = "
                                          "last_seen_at AND down_at <= '%s'::timestamptz AND "
                                          "down_at > '%s'::timestamptz - interval '1.5 s'",
                                      killed, killed),
                   1);
  char cmd[1024];
  unlink("test_jt809.report.csv");
  snprintf(cmd, sizeof cmd, "'%s' report platforms --from '%s' --to '2100-01-01' --platform p11 "
           "--format csv --pg '%s' >test_jt809.report.csv", HW_BINARY, up, env.conninfo);
  const char *argv[] = {"sh", "-c", cmd, NULL};
  assert_int_equal(hw_test_wait_exit(hw_test_exec("/bin/sh", argv, "test_jt809.cli.log"), 20000),
                   0);
  char expect[64];
  hw_test_pg_text(db, expect, sizeof expect, "SELECT extract(epoch FROM down_at - up_at)::text "
                  "FROM platform_links WHERE platform = 'p11' AND reason = 'daemon died'");
  FILE *f = fopen("test_jt809.report.csv", "r");
  assert_non_null(f);
  char line[1024];
  assert_non_null(fgets(line, sizeof line, f)); /* the header */
  assert_non_null(fgets(line, sizeof line, f));
  fclose(f);
  char id[16];
  int n, answered, in_time;
  double period, upt, down;
  /* platform,inspections,answered,answered_in_time,response_rate,mean_delay_s,period_s,
   * main_up_s,main_down_s,...: rate and delay are empty (no inspection). */
  assert_int_equal(sscanf(line, "%15[^,],%d,%d,%d,,,%lf,%lf,%lf", id, &n, &answered, &in_time,
                          &period, &upt, &down),
                   7);
  assert_string_equal(id, "p11");
  /* Up from the login to the last refresh; down since: at least the 3 s of staleness. */
  assert_true(upt > atof(expect) - 0.01 && upt < atof(expect) + 0.01);
  assert_true(down >= 3.0);
  assert_true(upt + down > period - 0.01 && upt + down < period + 0.01);
  assert_int_equal(hw_test_stop_pid(env.daemon_pid), 0);
  env.daemon_pid = 0;
}

/* What the schema takes and refuses. */
static void schema_rules(void **state) {
  (void)state;
  PGresult *r;
#define REFUSED(sql)                                              \
  do {                                                            \
    r = PQexec(db, sql);                                          \
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);       \
    PQclear(r);                                                   \
  } while (0)
  REFUSED("INSERT INTO platform_links (platform, link) VALUES ('ent1', 'side')");
  REFUSED("INSERT INTO platform_links (platform, link) VALUES ('ghost', 'main')");
  REFUSED("INSERT INTO platform_links (platform, link, up_at, down_at) VALUES ('ent1', 'slave', "
          "now(), now() - interval '1 s')");
  REFUSED("INSERT INTO platforms (id, user_id, password_hash, center_id, m1) VALUES ('k', 1, "
          "'h', 5, 1)");
  REFUSED("INSERT INTO platforms (id, user_id, password_hash, center_id, version) VALUES ('v', "
          "1, 'h', 6, 2013)");
  REFUSED("INSERT INTO auth_refusals (protocol, reason) VALUES ('jt810', 'x')");
  /* A jt809: id is not a terminal nor a registry vehicle's terminal id. */
  REFUSED("INSERT INTO terminals (terminal_id, token_hash) VALUES ('jt809:3300001:苏A12345:2', "
          "'\\x" "0000000000000000000000000000000000000000000000000000000000000000')");
#undef REFUSED
  assert_int_equal(scalar("INSERT INTO auth_refusals (protocol, terminal_id, reason, source) "
                          "VALUES ('jt809', '3300009', 'unknown access code', '192.0.2.9') "
                          "RETURNING 1"),
                   1);
  assert_int_equal(scalar("INSERT INTO positions (terminal_id, ts, seq, recv_ts, lat, lon, "
                          "speed_kmh, heading, alt_m, alarm, status, odometer_km, source) VALUES "
                          "('jt809:3300001:苏A12345:2', now(), 0, now(), 32, 118, 50, 0, 0, 0, "
                          "0, 0, 2) RETURNING 1"),
                   1);
  /* Removing a platform takes its link history with it. */
  assert_int_equal(scalar("WITH d AS (DELETE FROM platforms WHERE id = 'ent1' RETURNING 1) "
                          "SELECT count(*) FROM d"),
                   1);
  assert_int_equal(scalar("SELECT count(*) FROM platform_links WHERE platform = 'ent1'"), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(platform_add),
      cmocka_unit_test(platform_add_refused),
      cmocka_unit_test(platform_list_disable),
      cmocka_unit_test(cli_rows_decide_logins),
      cmocka_unit_test(link_login_refused),
      cmocka_unit_test(link_up_heartbeat_replace_logout),
      cmocka_unit_test(link_positions),
      cmocka_unit_test(link_down_at_daemon_stop),
      cmocka_unit_test(link_down_after_daemon_killed),
      cmocka_unit_test(schema_rules),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
