/* JT/T 809 links and interactions against the daemon: the slave link opened to the address a
 * platform's 0x1001 gave, kept alive, re-opened with backoff after the platform drops it,
 * refused answers (wrong verify code, a broken frame) leave no link row; an inspection answered
 * and its delay recorded, one left unanswered; a supervision answered; a 0x1402 alarm stored
 * and published on Redis hw:violations; `report platforms` after a cut of the main link; both
 * links recorded down at a daemon stop; haulwatch-sim's slave link and inspection answer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "jt809/jt809_login.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define DB "hw_test_jt809_link"
#define CENTER 5500001u

static hw_test_env env;
static PGconn *db;
static int jport, sport, lfd; /* main listener; the platform's slave-link listener */
static char jlisten[64];

static long scalar(const char *sql) { return hw_test_pg_scalar(db, sql); }

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- one end of a JT/T 809 link (blocking socket, the codec) ---- */

typedef struct j9c {
  int fd;
  uint32_t sn;
  hw_jt809_deframer d;
  uint8_t dbuf[8192];
  uint8_t frames[8][2048];
  size_t lens[8];
  int n;
} j9c;

static int j9_take(void *arg, hw_jt809_frame_event ev, uint8_t *data, size_t len) {
  j9c *c = arg;
  assert_int_equal(ev, HW_JT809_FRAME);
  assert_true(c->n < 8 && len <= 2048);
  memcpy(c->frames[c->n], data, len);
  c->lens[c->n++] = len;
  return 0;
}

static j9c *j9_wrap(int fd) {
  j9c *c = calloc(1, sizeof *c);
  assert_non_null(c);
  c->fd = fd;
  struct timeval tv = {.tv_sec = 5};
  setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  assert_int_equal(hw_jt809_deframer_init(&c->d, c->dbuf, sizeof c->dbuf), 0);
  return c;
}

static j9c *j9_connect(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)jport)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  return j9_wrap(fd);
}

/* The next slave-link connection from the centre, within ms. */
static j9c *j9_accept(int ms) {
  struct pollfd p = {.fd = lfd, .events = POLLIN};
  if (poll(&p, 1, ms) != 1)
    return NULL;
  int fd = accept(lfd, NULL, NULL);
  assert_true(fd >= 0);
  return j9_wrap(fd);
}

static void j9_close(j9c *c) {
  if (!c)
    return;
  close(c->fd);
  free(c);
}

static void j9_send(j9c *c, uint16_t msg_id, const uint8_t *body, size_t bl) {
  uint8_t out[4096];
  size_t n;
  hw_jt809_header h;
  hw_jt809_header_init(&h, c->sn++, msg_id, CENTER, 1, (uint64_t)time(NULL));
  assert_int_equal(hw_jt809_build(out, sizeof out, &n, &h, NULL, body, bl), 0);
  assert_int_equal(write(c->fd, out, n), (ssize_t)n);
}

/* The next frame: header and body (copied). -1 when closed or nothing within 5 s. */
static int j9_recv(j9c *c, hw_jt809_header *h, uint8_t *body, size_t *bl) {
  while (c->n == 0) {
    uint8_t in[2048];
    ssize_t r = read(c->fd, in, sizeof in);
    if (r <= 0)
      return -1;
    assert_int_equal(hw_jt809_deframer_feed(&c->d, in, (size_t)r, j9_take, c), 0);
  }
  const uint8_t *b;
  size_t n;
  assert_int_equal(hw_jt809_header_parse(c->frames[0], c->lens[0], 1, h, &b, &n), 0);
  assert_int_equal(h->center_id, CENTER);
  memcpy(body, b, n);
  *bl = n;
  c->n--;
  memmove(c->frames[0], c->frames[1], sizeof c->frames[0] * (size_t)c->n);
  memmove(c->lens, c->lens + 1, sizeof c->lens[0] * (size_t)c->n);
  return 0;
}

/* The next frame of msg_id, skipping keep-alives (answered). */
static void j9_expect(j9c *c, uint16_t msg_id, hw_jt809_header *h, uint8_t *body, size_t *bl) {
  for (;;) {
    if (j9_recv(c, h, body, bl))
      fail_msg("no 0x%04x", msg_id);
    if (h->msg_id == msg_id)
      return;
    if (h->msg_id == HW_JT809_DOWN_LINKTEST_REQ)
      j9_send(c, HW_JT809_DOWN_LINKTEST_RSP, NULL, 0);
  }
}

static uint32_t verify_code;

/* Logs in on a new main link: returns it; verify_code is set. */
static j9c *main_login(void) {
  j9c *c = j9_connect();
  hw_jt809_login m;
  memset(&m, 0, sizeof m);
  m.user_id = 91;
  m.password_len = 4;
  memcpy(m.password, "pwsl", 4);
  m.center_id = CENTER;
  snprintf(m.down_ip, sizeof m.down_ip, "127.0.0.1");
  m.down_port = (uint16_t)sport;
  uint8_t body[128];
  size_t bl;
  assert_int_equal(hw_jt809_encode_login(&m, 1, body, sizeof body, &bl), 0);
  j9_send(c, HW_JT809_UP_CONNECT_REQ, body, bl);
  hw_jt809_header h;
  j9_expect(c, HW_JT809_UP_CONNECT_RSP, &h, body, &bl);
  uint8_t result;
  assert_int_equal(hw_jt809_parse_login_rsp(body, bl, &result, &verify_code), 0);
  assert_int_equal(result, HW_JT809_LOGIN_OK);
  return c;
}

/* Takes the centre's 0x9001 on s (checks the verify code) and answers result. */
static void slave_answer(j9c *s, uint8_t result) {
  hw_jt809_header h;
  uint8_t body[64];
  size_t bl;
  uint32_t v;
  j9_expect(s, HW_JT809_DOWN_CONNECT_REQ, &h, body, &bl);
  assert_int_equal(hw_jt809_parse_u32(body, bl, &v), 0);
  assert_int_equal(v, verify_code);
  assert_int_equal(hw_jt809_encode_u8(result, body, sizeof body, &bl), 0);
  j9_send(s, HW_JT809_DOWN_CONNECT_RSP, body, bl);
}

static j9c *mainl, *slave;

static void cli(const char *args) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "'%s' %s --pg '%s' >>test_jt809_link.cli.log 2>&1", HW_BINARY, args,
           env.conninfo);
  const char *argv[] = {"sh", "-c", cmd, NULL};
  assert_int_equal(hw_test_wait_exit(hw_test_exec("/bin/sh", argv, "test_jt809_link.cli.log"),
                                     20000),
                   0);
}

static int setup(void **state) {
  (void)state;
  signal(SIGPIPE, SIG_IGN); /* a link the centre closed fails the test, not the process */
  hw_test_env_up(&env, DB);
  db = env.db;
  jport = hw_test_free_port();
  sport = hw_test_free_port();
  snprintf(jlisten, sizeof jlisten, "127.0.0.1:%d", jport);
  lfd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)sport)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(lfd, 8), 0);
  cli("platform add pl --user-id 91 --password pwsl --center-id 5500001 --slave-local-ok");
  cli("platform add far --user-id 92 --password pwfar --center-id 5500002");
  const char *argv[] = {"serve", "--listen", env.listen_addr, "--jt809-listen", jlisten, "--pg",
                        env.conninfo, "--redis", env.redis_addr, "--batch-ms", "20",
                        "--jt809-slave-backoff-min-ms", "200", "--jt809-slave-backoff-max-ms",
                        "800", "--jt809-slave-timeout-ms", "1500", "--jt809-slave-heartbeat-s",
                        "1", "--jt809-scan-s", "1", "--log-level", "debug", NULL};
  env.daemon_pid = hw_test_spawn(argv, "test_jt809_link.daemon.log");
  assert_int_equal(hw_test_wait_port(jport, 15000), 0);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  j9_close(slave);
  j9_close(mainl);
  close(lfd);
  hw_test_env_down(&env);
  return 0;
}

static void slave_link_open_reopen(void **state) {
  (void)state;
  hw_jt809_header h;
  uint8_t body[256];
  size_t bl;
  mainl = main_login();
  slave = j9_accept(5000);
  assert_non_null(slave);
  slave_answer(slave, HW_JT809_SLAVE_OK);
  hw_test_pg_wait(db, "slave link row", "SELECT (count(*) = 1)::int FROM platform_links WHERE platform "
                  "= 'pl' AND link = 'slave' AND down_at IS NULL", 5000);
  /* Kept alive: a 0x9005 within the heartbeat (1 s) plus slack. */
  assert_int_equal(j9_recv(slave, &h, body, &bl), 0);
  assert_int_equal(h.msg_id, HW_JT809_DOWN_LINKTEST_REQ);
  j9_send(slave, HW_JT809_DOWN_LINKTEST_RSP, NULL, 0);

  /* The platform drops the slave link: the main link hears 0x9007, the row closes, and the
   * centre connects again after the backoff (200 ms first). */
  j9_close(slave);
  double t0 = now_s();
  j9_expect(mainl, HW_JT809_DOWN_DISCONNECT_INFORM, &h, body, &bl);
  slave = j9_accept(5000);
  double t1 = now_s();
  assert_non_null(slave);
  assert_true(t1 - t0 >= 0.15);
  hw_test_pg_wait(db, "slave row closed", "SELECT (count(*) = 1)::int FROM platform_links WHERE "
                  "platform = 'pl' AND link = 'slave' AND reason = 'peer closed'", 5000);

  /* Hostile answers: a wrong-verify-code refusal, then a broken frame. Each ends the attempt
   * without a link row; the centre tries again, later each time (200, 400, 800 ms). */
  slave_answer(slave, HW_JT809_SLAVE_BAD_VERIFY);
  assert_int_equal(j9_recv(slave, &h, body, &bl), -1); /* closed by the centre */
  j9_close(slave);
  t0 = now_s();
  slave = j9_accept(5000);
  assert_non_null(slave);
  assert_true(now_s() - t0 >= 0.15);
  assert_int_equal(j9_recv(slave, &h, body, &bl), 0);
  assert_int_equal(h.msg_id, HW_JT809_DOWN_CONNECT_REQ);
  static const uint8_t junk[] = {0x5b, 0, 0, 0, 0x1a, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
                                 13, 14, 15, 16, 17, 18, 19, 20, 21, 0x5d};
  assert_int_equal(write(slave->fd, junk, sizeof junk), (ssize_t)sizeof junk);
  assert_int_equal(j9_recv(slave, &h, body, &bl), -1);
  j9_close(slave);
  /* A platform that accepts but never answers: the centre gives up after the timeout. */
  slave = j9_accept(5000);
  assert_non_null(slave);
  t0 = now_s();
  assert_int_equal(j9_recv(slave, &h, body, &bl), 0); /* 0x9001, not answered */
  struct timeval tv = {.tv_sec = 4};
  setsockopt(slave->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  assert_int_equal(j9_recv(slave, &h, body, &bl), -1);
  assert_true(now_s() - t0 >= 1.2 && now_s() - t0 < 3.9);
  j9_close(slave);
  /* Only the two accepted links have rows. */
  assert_int_equal(scalar("SELECT count(*) FROM platform_links WHERE platform = 'pl' AND link = "
                          "'slave'"),
                   1);
  slave = j9_accept(5000);
  assert_non_null(slave);
  slave_answer(slave, HW_JT809_SLAVE_OK);
  hw_test_pg_wait(db, "slave link again", "SELECT (count(*) = 2)::int FROM platform_links WHERE "
                  "platform = 'pl' AND link = 'slave'", 5000);

  /* A platform without slave_local_ok naming loopback: no connection is attempted. */
  assert_int_equal(scalar("SELECT count(*) FROM platforms WHERE id = 'far' AND NOT "
                          "slave_local_ok"),
                   1);
}

/* An inspection over the slave link answered on the main link after >= 300 ms; another left
 * unanswered; `report platforms` counts them. */
static void inspection_answered_and_unanswered(void **state) {
  (void)state;
  hw_jt809_header h;
  uint8_t body[2048];
  size_t bl;
  cli("platform inspect pl --question '今天值班吗' --answers 'A 是 B 否'");
  j9_expect(slave, HW_JT809_DOWN_PLATFORM_MSG, &h, body, &bl);
  double sent = now_s();
  hw_jt809_sub sub;
  assert_int_equal(hw_jt809_parse_sub(body, bl, 0, &sub), 0);
  assert_int_equal(sub.data_type, 0x9301);
  hw_jt809_query q;
  assert_int_equal(hw_jt809_parse_query(sub.data, sub.data_len, 0x9301, 1, &q), 0);
  char text[256];
  assert_int_equal(hw_jt809_text(q.info, q.info_len, text, sizeof text), 0); /* GBK back */
  assert_string_equal(text, "今天值班吗 A 是 B 否");
  assert_int_equal(q.answer_time, 10);
  hw_test_pg_wait(db, "sent_at", "SELECT (count(*) = 1)::int FROM platform_inspections WHERE sent_at "
                  "IS NOT NULL AND sent_link = 'slave'", 5000);
  usleep(300000);
  hw_jt809_answer a;
  memset(&a, 0, sizeof a);
  snprintf(a.responder, sizeof a.responder, "Wang");
  snprintf(a.responder_tel, sizeof a.responder_tel, "13800000000");
  a.src_data_type = 0x9301;
  a.src_sn = h.sn;
  a.info = (const uint8_t *)"A";
  a.info_len = 1;
  uint8_t data[256], up[512];
  size_t dl, ul;
  assert_int_equal(hw_jt809_encode_answer(&a, 1, data, sizeof data, &dl), 0);
  assert_int_equal(hw_jt809_encode_sub(0, "", 0, 0x1301, data, dl, up, sizeof up, &ul), 0);
  j9_send(mainl, HW_JT809_UP_PLATFORM_MSG, up, ul);
  double answered = now_s();
  hw_test_pg_wait(db, "answer", "SELECT (count(*) = 1)::int FROM platform_inspections WHERE "
                  "answered_at IS NOT NULL AND answer = 'A' AND responder = 'Wang'", 5000);
  long delay = scalar("SELECT delay_ms FROM platform_inspections WHERE answer = 'A'");
  assert_true(delay >= 300);
  assert_true(delay <= (long)((answered - sent) * 1000) + 1000);
  /* The second: sent, never answered. */
  cli("platform inspect pl --question 'second' --answer-min 1");
  j9_expect(slave, HW_JT809_DOWN_PLATFORM_MSG, &h, body, &bl);
  hw_test_pg_wait(db, "second sent", "SELECT (count(*) = 2)::int FROM platform_inspections WHERE "
                  "sent_at IS NOT NULL", 5000);
  assert_int_equal(scalar("SELECT count(*) FROM platform_inspections WHERE question = 'second' "
                          "AND answered_at IS NULL AND delay_ms IS NULL"),
                   1);
  /* An answer naming no question sent is recorded nowhere. */
  a.src_sn = 999999;
  assert_int_equal(hw_jt809_encode_answer(&a, 1, data, sizeof data, &dl), 0);
  assert_int_equal(hw_jt809_encode_sub(0, "", 0, 0x1301, data, dl, up, sizeof up, &ul), 0);
  j9_send(mainl, HW_JT809_UP_PLATFORM_MSG, up, ul);
  j9_send(mainl, HW_JT809_UP_LINKTEST_REQ, NULL, 0);
  j9_expect(mainl, HW_JT809_UP_LINKTEST_RSP, &h, body, &bl);
  usleep(200000);
  assert_int_equal(scalar("SELECT count(*) FROM platform_inspections WHERE answered_at IS NOT "
                          "NULL"),
                   1);
}

/* 0x1402 stored and published on hw:violations; 0x9401 sent and its 0x1401 recorded. */
static void alarm_and_supervision(void **state) {
  (void)state;
  redisContext *sub = redisConnect("127.0.0.1", env.redis_port);
  assert_true(sub && !sub->err);
  redisReply *r = redisCommand(sub, "SUBSCRIBE hw:violations");
  assert_non_null(r);
  freeReplyObject(r);
  struct timeval tv = {.tv_sec = 5};
  redisSetTimeout(sub, tv);
  hw_jt809_alarm al;
  memset(&al, 0, sizeof al);
  snprintf(al.src_platform, sizeof al.src_platform, "P1");
  al.warn_type = 0x0002;
  al.warn_time = (uint64_t)time(NULL);
  al.times = 3;
  al.start_time = al.warn_time;
  al.end_time = al.warn_time + 10;
  snprintf(al.plate, sizeof al.plate, "苏A12345");
  al.plate_colour = 2;
  snprintf(al.dst_platform, sizeof al.dst_platform, "C1");
  al.info = (const uint8_t *)"overspeed";
  al.info_len = 9;
  uint8_t data[512], up[1024], body[1024];
  size_t dl, ul, bl;
  assert_int_equal(hw_jt809_encode_alarm(&al, 1, data, sizeof data, &dl), 0);
  assert_int_equal(hw_jt809_encode_sub(0, "", 0, 0x1402, data, dl, up, sizeof up, &ul), 0);
  j9_send(mainl, HW_JT809_UP_WARN_MSG, up, ul);
  hw_test_pg_wait(db, "alarm row", "SELECT (count(*) = 1)::int FROM platform_alarms WHERE platform = "
                  "'pl' AND warn_type = 2 AND plate = '苏A12345' AND info = 'overspeed'", 5000);
  r = NULL;
  assert_int_equal(redisGetReply(sub, (void **)&r), REDIS_OK);
  assert_true(r->type == REDIS_REPLY_ARRAY && r->elements == 3);
  assert_non_null(strstr(r->element[2]->str, "\"platform_alarm\""));
  assert_non_null(strstr(r->element[2]->str, "苏A12345"));
  freeReplyObject(r);
  redisFree(sub);

  cli("platform supervise pl --warn-type 2 --plate '苏A12345' --supervisor Li");
  hw_jt809_header h;
  j9_expect(slave, HW_JT809_DOWN_WARN_MSG, &h, body, &bl);
  hw_jt809_sub s;
  assert_int_equal(hw_jt809_parse_sub(body, bl, 0, &s), 0);
  assert_int_equal(s.data_type, 0x9401);
  hw_jt809_supervise sv;
  assert_int_equal(hw_jt809_parse_supervise(s.data, s.data_len, &sv), 0);
  assert_int_equal(sv.warn_type, 2);
  assert_string_equal(sv.supervisor, "Li");
  assert_int_equal(hw_jt809_encode_supervise_rsp(sv.supervision_id, 1, data, sizeof data, &dl),
                   0);
  assert_int_equal(hw_jt809_encode_sub(0, "", 0, 0x1401, data, dl, up, sizeof up, &ul), 0);
  j9_send(mainl, HW_JT809_UP_WARN_MSG, up, ul);
  hw_test_pg_wait(db, "supervision answer", "SELECT (count(*) = 1)::int FROM platform_supervisions "
                  "WHERE result = 1 AND delay_ms >= 0 AND sent_link = 'slave'", 5000);
}

/* The main link cut for ~0.6 s: report platforms shows that down time, bounded. */
static void link_figures_after_cut(void **state) {
  (void)state;
  char from[64];
  hw_test_pg_text(db, from, sizeof from, "SELECT min(up_at)::text FROM platform_links WHERE "
                  "platform = 'pl' AND link = 'main'");
  double t0 = now_s();
  j9_close(mainl); /* the centre ends the slave link with it (0x9003) */
  mainl = NULL;
  j9_close(slave);
  slave = NULL;
  hw_test_pg_wait(db, "main down", "SELECT (count(*) = 1)::int FROM platform_links WHERE platform = "
                  "'pl' AND link = 'main' AND down_at IS NOT NULL", 5000);
  usleep(600000);
  mainl = main_login();
  double t1 = now_s();
  slave = j9_accept(5000);
  assert_non_null(slave);
  slave_answer(slave, HW_JT809_SLAVE_OK);
  char cmd[1024];
  unlink("test_jt809_link.report.csv");
  snprintf(cmd, sizeof cmd, "'%s' report platforms --from '%s' --to '2100-01-01' --platform pl "
           "--format csv --pg '%s' >test_jt809_link.report.csv", HW_BINARY, from, env.conninfo);
  const char *argv[] = {"sh", "-c", cmd, NULL};
  assert_int_equal(hw_test_wait_exit(hw_test_exec("/bin/sh", argv, "test_jt809_link.cli.log"),
                                     20000),
                   0);
  FILE *f = fopen("test_jt809_link.report.csv", "r");
  assert_non_null(f);
  char line[1024];
  assert_non_null(fgets(line, sizeof line, f)); /* the header */
  assert_non_null(strstr(line, "link_availability"));
  assert_non_null(fgets(line, sizeof line, f));
  fclose(f);
  /* platform,inspections,answered,answered_in_time,response_rate,mean_delay_s,period_s,
   * main_up_s,main_down_s,link_availability,slave_up_s,slave_availability */
  char id[16];
  int n, answered, in_time;
  double rate, mdelay, period, up, down, avail;
  assert_int_equal(sscanf(line, "%15[^,],%d,%d,%d,%lf,%lf,%lf,%lf,%lf,%lf", id, &n, &answered,
                          &in_time, &rate, &mdelay, &period, &up, &down, &avail),
                   10);
  assert_string_equal(id, "pl");
  assert_int_equal(n, 2);
  assert_int_equal(answered, 1);
  assert_int_equal(in_time, 1);
  assert_true(rate > 0.4999 && rate < 0.5001);
  assert_true(avail < 1.0);
  /* Down from the close (after t0) to the new login's row (before t1): at least the 0.6 s pause
   * less the time the centre took to notice, at most t1 - t0. */
  assert_true(down >= 0.5);
  assert_true(down <= t1 - t0 + 0.05);
  assert_true(up + down > period - 0.01 && up + down < period + 0.01);

  /* Days (GMT+8) as bounds, JSON out: today holds the whole test, so the same counts. */
  char day[16];
  hw_test_pg_text(db, day, sizeof day, "SELECT ((now() AT TIME ZONE 'Asia/Shanghai')::date)::text");
  unlink("test_jt809_link.report.json");
  snprintf(cmd, sizeof cmd, "'%s' report platforms --from %s --to %s --format json --pg '%s' "
           ">test_jt809_link.report.json", HW_BINARY, day, day, env.conninfo);
  const char *argv2[] = {"sh", "-c", cmd, NULL};
  assert_int_equal(hw_test_wait_exit(hw_test_exec("/bin/sh", argv2, "test_jt809_link.cli.log"),
                                     20000),
                   0);
  f = fopen("test_jt809_link.report.json", "r");
  assert_non_null(f);
  char json[4096];
  size_t jn = fread(json, 1, sizeof json - 1, f);
  fclose(f);
  json[jn] = 0;
  assert_non_null(strstr(json, "\"platform\":\t\"pl\""));
  assert_non_null(strstr(json, "\"inspections\":\t2"));
  assert_non_null(strstr(json, "\"response_rate\":\t0.5000"));
  /* Registered today: judged from its registration, never up: availability 0 over that. */
  const char *far = strstr(json, "\"platform\":\t\"far\"");
  assert_non_null(far);
  const char *fp = strstr(far, "\"period_s\":\t");
  assert_non_null(fp);
  double far_period = atof(fp + strlen("\"period_s\":\t"));
  assert_true(far_period > 0 && far_period < 120); /* the test's length, not the day's */
  assert_non_null(strstr(far, "\"link_availability\":\t0.0000"));
  /* A bad bound is a usage error (exit 2), not a crash. */
  snprintf(cmd, sizeof cmd, "'%s' report platforms --from yesterday-ish --to %s --pg '%s'",
           HW_BINARY, day, env.conninfo);
  assert_int_equal(hw_test_wait_exit(hw_test_exec("/bin/sh", argv2, "test_jt809_link.cli.log"),
                                     20000),
                   2);
}

/* haulwatch-sim --protocol jt809 --slave-listen: the centre's slave link to it comes up, and an
 * inspection queued before it logs in is sent at its login and answered after the sim's delay. */
static void sim_answers_inspection(void **state) {
  (void)state;
  cli("platform add simp --user-id 93 --password pwsim --center-id 5500010 --slave-local-ok");
  cli("platform inspect simp --question 'on duty?'");
  char server[64];
  snprintf(server, sizeof server, "127.0.0.1:%d", jport);
  const char *argv[] = {"--protocol", "jt809", "--server", server, "--trucks", "2",
                        "--center-id", "5500010", "--user-id", "93", "--password", "pwsim",
                        "--fixes", "12", "--interval-ms", "250", "--step-ms", "1000", "--slave-listen",
                        "127.0.0.1:0", "--answer-delay-ms", "400", "--quiet", NULL};
  pid_t sim = hw_test_spawn_sim(argv, "test_jt809_link.sim.log");
  /* Meanwhile platform pl's slave link is kept alive (its 0x9005 answered). */
  struct timeval tv = {.tv_usec = 100000};
  setsockopt(slave->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int st = -1;
  for (int waited = 0; waited < 30000 && st < 0; waited += 100) {
    int ws;
    if (waitpid(sim, &ws, WNOHANG) == sim) {
      st = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128;
      break;
    }
    hw_jt809_header h;
    uint8_t body[256];
    size_t bl;
    if (j9_recv(slave, &h, body, &bl) == 0 && h.msg_id == HW_JT809_DOWN_LINKTEST_REQ)
      j9_send(slave, HW_JT809_DOWN_LINKTEST_RSP, NULL, 0);
  }
  tv = (struct timeval){.tv_sec = 5};
  setsockopt(slave->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (st < 0)
    kill(sim, SIGKILL);
  assert_int_equal(st, 0);
  assert_int_equal(scalar("SELECT count(*) FROM platform_inspections WHERE platform = 'simp' "
                          "AND answer = 'on duty' AND delay_ms >= 400"),
                   1);
  assert_int_equal(scalar("SELECT count(*) FROM platform_links WHERE platform = 'simp' AND "
                          "link = 'slave'"),
                   1);
  hw_test_pg_wait(db, "sim links down", "SELECT (count(*) = 0)::int FROM platform_links WHERE "
                  "platform = 'simp' AND down_at IS NULL", 5000);
}

/* A daemon stop records both links down (the slave link's row goes through the centre's query
 * queue, which the stop lets finish). */
static void links_down_at_stop(void **state) {
  (void)state;
  assert_int_equal(scalar("SELECT count(*) FROM platform_links WHERE platform = 'pl' AND "
                          "down_at IS NULL"),
                   2);
  assert_int_equal(hw_test_stop_pid(env.daemon_pid), 0);
  env.daemon_pid = 0;
  assert_int_equal(scalar("SELECT count(*) FROM platform_links WHERE down_at IS NULL"), 0);
  assert_int_equal(scalar("SELECT count(*) FROM platform_links WHERE link = 'main' AND reason = "
                          "'daemon stop'"),
                   1);
  assert_int_equal(scalar("SELECT count(*) FROM platform_links WHERE link = 'slave' AND reason = "
                          "'daemon stop'"),
                   1);
  /* The slave link that ended with the cut main link says so. */
  assert_int_equal(scalar("SELECT count(*) FROM platform_links WHERE platform = 'pl' AND link = "
                          "'slave' AND reason = 'main link down'"),
                   1);
  /* The simulator's: its logout ended both. */
  assert_int_equal(scalar("SELECT count(*) FROM platform_links WHERE platform = 'simp' AND "
                          "reason IN ('logout', 'main link down')"),
                   2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(slave_link_open_reopen),
      cmocka_unit_test(inspection_answered_and_unanswered),
      cmocka_unit_test(alarm_and_supervision),
      cmocka_unit_test(link_figures_after_cut),
      cmocka_unit_test(sim_answers_inspection),
      cmocka_unit_test(links_down_at_stop),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
