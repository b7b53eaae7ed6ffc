/* Active-safety attachments through the daemon (--attachment-listen), against real PostgreSQL:
 * an upload with a lost piece completed after 0x9212 (file on disk, sha256 and complete in
 * safety_attachments), a resume on a new connection from what is on disk, a terminal that claims
 * or sends more than allowed is refused and cut off, and names that would leave the attachment
 * directory are refused. The terminal side is jt808client.c; the attachment bodies are built
 * here by hand, apart from the daemon's codec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "jt808client.h"
#include "webclient.h"
#include "load/sim_attach.h"

static hw_test_env env;
static int jport, aport;
static char jlisten[64], alisten[64], base[64], adir[96];
static const char *logfile = "test_attach.daemon.log";
static const uint8_t plate_gbk[] = {0xBE, 0xA9, 'A', '1', '2', '3', '4', '5'};

#define MAX_FILE 100000
#define MAX_FILES 4
#define MAX_CONN_BYTES 300000

static void add_terminal(const char *id) {
  const char *params[1] = {id};
  PGresult *r = PQexecParams(env.db, "INSERT INTO terminals (terminal_id, token_hash) "
                                 "VALUES ($1, sha256(convert_to($1, 'UTF8')))",
                             1, NULL, params, NULL, NULL, 0);
  assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
  PQclear(r);
}

/* A terminal registered and authenticated on JT/T 808: the attachment listener takes uploads
 * only from terminals online there. */
static j8c *login(const char *phone) {
  add_terminal(phone);
  j8c *c = j8c_connect(jport, phone);
  assert_non_null(c);
  char code[64];
  assert_int_equal(j8c_register(c, "T000001", 1, plate_gbk, sizeof plate_gbk, code, sizeof code), 0);
  uint8_t body[128];
  size_t n = j8c_body_auth(body, 0, code);
  int flow = j8c_send(c, 0x0102, body, n);
  assert_int_equal(j8c_wait_response(c, (uint16_t)flow, 0x0102, 10000), 0);
  return c;
}

typedef struct file {
  const char *name;
  uint32_t size;
} file;

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}
static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* 0x1210 by hand: terminal id "HWDEV01", alarm number (that id, 2026-12-07 08:00:SS GMT+8,
 * sequence seq, count, 0), unique number, type 0, the files. Returns the 0x8001 result. */
static int send_list(j8c *c, int ss, int seq, const file *f, int n) {
  uint8_t b[1024];
  size_t k = 0;
  memcpy(b, "HWDEV01", 7);
  k = 7;
  memcpy(b + k, "HWDEV01", 7);
  k += 7;
  const uint8_t t[6] = {0x26, 0x12, 0x07, 0x08, 0x00, (uint8_t)((ss / 10) << 4 | ss % 10)};
  memcpy(b + k, t, 6);
  k += 6;
  b[k++] = (uint8_t)seq;
  b[k++] = (uint8_t)n;
  b[k++] = 0;
  memset(b + k, 'U', 32);
  k += 32;
  b[k++] = 0;
  b[k++] = (uint8_t)n;
  for (int i = 0; i < n; i++) {
    size_t l = strlen(f[i].name);
    b[k++] = (uint8_t)l;
    memcpy(b + k, f[i].name, l);
    k += l;
    put32(b + k, f[i].size);
    k += 4;
  }
  int flow = j8c_send(c, 0x1210, b, k);
  assert_true(flow >= 0);
  return j8c_wait_response(c, (uint16_t)flow, 0x1210, 10000);
}

static size_t file_body(uint8_t *b, const file *f, uint8_t type) {
  size_t l = strlen(f->name);
  b[0] = (uint8_t)l;
  memcpy(b + 1, f->name, l);
  b[1 + l] = type;
  put32(b + 2 + l, f->size);
  return l + 6;
}

static int send_info(j8c *c, const file *f) {
  uint8_t b[300];
  int flow = j8c_send(c, 0x1211, b, file_body(b, f, 0));
  return j8c_wait_response(c, (uint16_t)flow, 0x1211, 10000);
}

/* The content of a file: a pattern of its name and offset. */
static uint8_t content(const file *f, uint32_t at) { return (uint8_t)(at * 7 + f->name[0] + at / 251); }

static void send_piece(j8c *c, const file *f, uint32_t off, uint32_t len) {
  uint8_t *b = calloc(1, 62 + len);
  put32(b, 0x30316364);
  memcpy(b + 4, f->name, strlen(f->name));
  put32(b + 54, off);
  put32(b + 58, len);
  for (uint32_t i = 0; i < len; i++)
    b[62 + i] = content(f, off + i);
  assert_int_equal(j8c_send_raw(c, b, 62 + len), 0);
  free(b);
}

/* 0x1212 and its 0x9212: returns the result, the ranges into r (offset, length pairs). */
static int send_done(j8c *c, const file *f, uint32_t *r, int *nr) {
  uint8_t b[300];
  assert_true(j8c_send(c, 0x1212, b, file_body(b, f, 0)) >= 0);
  j8c_msg m;
  for (;;) {
    assert_int_equal(j8c_recv(c, &m, 15000), 0);
    if (m.id == 0x9212)
      break;
  }
  size_t l = strlen(f->name);
  assert_true(m.len >= 4 + l);
  assert_int_equal(m.body[0], l);
  assert_memory_equal(m.body + 1, f->name, l);
  int n = m.body[3 + l];
  assert_int_equal(m.len, 4 + l + 8 * (size_t)n);
  for (int i = 0; i < n; i++) {
    r[2 * i] = get32(m.body + 4 + l + 8 * i);
    r[2 * i + 1] = get32(m.body + 8 + l + 8 * i);
  }
  *nr = n;
  return m.body[2 + l];
}

static void expect_file(const char *alarm, const file *f) {
  char path[256], want_hex[65], got[128];
  snprintf(path, sizeof path, "%s/%s/%s", adir, alarm, f->name);
  FILE *in = fopen(path, "rb");
  assert_non_null(in);
  uint8_t *d = malloc(f->size + 1);
  assert_int_equal(fread(d, 1, f->size + 1, in), f->size);
  fclose(in);
  for (uint32_t i = 0; i < f->size; i++)
    if (d[i] != content(f, i))
      fail_msg("%s: byte %u differs", f->name, i);
  uint8_t h[32];
  crypto_hash_sha256(h, d, f->size);
  sodium_bin2hex(want_hex, sizeof want_hex, h, sizeof h);
  free(d);
  hw_test_pg_text(env.db, got, sizeof got,
                  "SELECT sha256 || ' ' || complete || ' ' || received || ' ' || size || ' ' || "
                  "(path = '%s') FROM safety_attachments WHERE alarm_no = '%s' AND name = '%s'",
                  path, alarm, f->name);
  char want[160];
  snprintf(want, sizeof want, "%s true %u %u true", want_hex, f->size, f->size);
  assert_string_equal(got, want);
  /* The partial file and its ranges are gone. */
  char part[300];
  snprintf(part, sizeof part, "%s.part", path);
  assert_int_equal(access(part, F_OK), -1);
  snprintf(part, sizeof part, "%s.part.ranges", path);
  assert_int_equal(access(part, F_OK), -1);
}

static void test_lost_piece_and_resume(void **state) {
  (void)state;
  j8c *term = login("013900000001");
  j8c *a = j8c_connect(aport, "013900000001");
  assert_non_null(a);
  const file f[2] = {{"00_65_6501_0_U.jpg", 10000}, {"02_65_6501_1_U.mp4", 5000}};
  assert_int_equal(send_list(a, 1, 1, f, 2), 0);
  assert_int_equal(send_info(a, &f[0]), 0);
  /* Ten pieces; the one at 3000 is "lost". */
  for (uint32_t off = 0; off < 10000; off += 1000)
    if (off != 3000)
      send_piece(a, &f[0], off, 1000);
  uint32_t r[64];
  int nr;
  assert_int_equal(send_done(a, &f[0], r, &nr), 1);
  assert_int_equal(nr, 1);
  assert_int_equal(r[0], 3000);
  assert_int_equal(r[1], 1000);
  hw_test_pg_wait(env.db, "progress recorded",
                  "SELECT count(*) FROM safety_attachments WHERE alarm_no = "
                  "'HWDEV01-261207080001-1' AND name = '00_65_6501_0_U.jpg' AND received = 9000 "
                  "AND NOT complete", 10000);
  send_piece(a, &f[0], 3000, 1000);
  assert_int_equal(send_done(a, &f[0], r, &nr), 0);
  assert_int_equal(nr, 0);
  expect_file("HWDEV01-261207080001-1", &f[0]);

  /* The clip: half of it, then the connection drops. */
  assert_int_equal(send_info(a, &f[1]), 0);
  send_piece(a, &f[1], 0, 2500);
  assert_int_equal(send_done(a, &f[1], r, &nr), 1);
  assert_int_equal(nr, 1);
  assert_int_equal(r[0], 2500);
  assert_int_equal(r[1], 2500);
  j8c_close(a);
  /* A new connection continues from what is on disk: only the rest is sent. */
  a = j8c_connect(aport, "013900000001");
  assert_non_null(a);
  assert_int_equal(send_list(a, 1, 1, f, 2), 0);
  assert_int_equal(send_info(a, &f[1]), 0);
  send_piece(a, &f[1], 2500, 2500);
  assert_int_equal(send_done(a, &f[1], r, &nr), 0);
  expect_file("HWDEV01-261207080001-1", &f[1]);
  /* The photo, complete already, is not written again: announced and finished at once. */
  assert_int_equal(send_info(a, &f[0]), 0);
  assert_int_equal(send_done(a, &f[0], r, &nr), 0);
  assert_int_equal(hw_test_pg_scalar(env.db, "SELECT count(*) FROM safety_attachments WHERE "
                                             "complete"), 2);
  j8c_close(a);
  j8c_close(term);
}

static void test_limits(void **state) {
  (void)state;
  /* Not online on JT/T 808: its list is refused, and the connection closed in time. */
  add_terminal("013900000009");
  j8c *a = j8c_connect(aport, "013900000009");
  const file one = {"00_65_6502_0_X.jpg", 100};
  assert_int_equal(send_list(a, 2, 1, &one, 1), 1);
  j8c_close(a);

  j8c *term = login("013900000002");
  a = j8c_connect(aport, "013900000002");
  /* A file above attachment_max_file, and more files than attachment_max_files. */
  const file big = {"00_65_6502_0_B.jpg", MAX_FILE + 1};
  assert_int_equal(send_list(a, 2, 2, &big, 1), 1);
  file many[MAX_FILES + 1];
  char names[MAX_FILES + 1][32];
  for (int i = 0; i <= MAX_FILES; i++) {
    snprintf(names[i], sizeof names[i], "00_65_6502_%d_M.jpg", i);
    many[i] = (file){names[i], 10};
  }
  assert_int_equal(send_list(a, 2, 3, many, MAX_FILES + 1), 1);
  /* Within the limits it is taken. */
  const file f = {"00_65_6502_0_L.jpg", MAX_FILE};
  assert_int_equal(send_list(a, 2, 4, &f, 1), 0);
  assert_int_equal(send_info(a, &f), 0);
  /* A size other than the list's is refused. */
  const file other = {"00_65_6502_0_L.jpg", 5};
  assert_int_equal(send_info(a, &other), 1);
  /* Resending the same piece over and over: cut off at attachment_max_conn_bytes. */
  for (int i = 0; i < MAX_CONN_BYTES / 50000; i++)
    send_piece(a, &f, 0, 50000);
  send_piece(a, &f, 0, 50000);
  assert_true(j8c_wait_eof(a, 10000));
  j8c_close(a);

  /* A piece beyond the declared size closes the connection. */
  a = j8c_connect(aport, "013900000002");
  assert_int_equal(send_list(a, 2, 4, &f, 1), 0);
  assert_int_equal(send_info(a, &f), 0);
  send_piece(a, &f, MAX_FILE - 10, 11);
  assert_true(j8c_wait_eof(a, 10000));
  j8c_close(a);

  /* A second connection for the same alarm replaces the first (two writers of one file
   * never run at once). */
  a = j8c_connect(aport, "013900000002");
  assert_int_equal(send_list(a, 2, 4, &f, 1), 0);
  j8c *b = j8c_connect(aport, "013900000002");
  assert_int_equal(send_list(b, 2, 4, &f, 1), 0);
  assert_true(j8c_wait_eof(a, 10000));
  assert_int_equal(send_info(b, &f), 0);
  j8c_close(a);
  j8c_close(b);

  /* Data before any list: closed. */
  a = j8c_connect(aport, "013900000002");
  send_piece(a, &f, 0, 10);
  assert_true(j8c_wait_eof(a, 10000));
  j8c_close(a);
  j8c_close(term);
}

static int count_entries(const char *dir) {
  DIR *d = opendir(dir);
  if (!d)
    return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
      n++;
  closedir(d);
  return n;
}

static void test_path_traversal(void **state) {
  (void)state;
  j8c *term = login("013900000003");
  j8c *a = j8c_connect(aport, "013900000003");
  static const char *const bad[] = {"../../escape.jpg", "a/b.jpg", "..\\x.jpg", ".hidden.jpg",
                                    "/etc/passwd", "x..y.jpg", "sp ace.jpg",
                                    "0123456789012345678901234567890123456789012345678901.jpg"};
  const char *parent = base;
  int before = count_entries(parent), dirs = count_entries(adir);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    const file f = {bad[i], 10};
    if (send_list(a, 3, (int)i, &f, 1) != 1)
      fail_msg("name '%s' was accepted", bad[i]);
  }
  /* Nothing was created, inside the directory or beside it. */
  assert_int_equal(count_entries(parent), before);
  assert_int_equal(count_entries(adir), dirs);
  assert_int_equal(hw_test_pg_scalar(env.db, "SELECT count(*) FROM safety_attachments WHERE "
                                             "terminal_id = '013900000003'"), 0);
  /* A data frame naming a path on an accepted upload closes the connection. */
  const file ok = {"00_65_6503_0_P.jpg", 10};
  assert_int_equal(send_list(a, 3, 99, &ok, 1), 0);
  assert_int_equal(send_info(a, &ok), 0);
  const file evil = {"../../escape.jpg", 10};
  send_piece(a, &evil, 0, 10);
  assert_true(j8c_wait_eof(a, 10000));
  assert_int_equal(count_entries(parent), before);
  j8c_close(a);
  j8c_close(term);
}

static void sql(const char *q) {
  PGresult *r = PQexec(env.db, q);
  assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
  PQclear(r);
}

/* The page's view: an alarm's files listed and served with their content type to a user whose
 * regions hold the terminal's vehicle, and not found for one whose regions do not. */
static void test_web(void **state) {
  (void)state;
  setenv("HAULWATCH_PG", env.conninfo, 1);
  sql("INSERT INTO vehicles (plate, plate_colour, class_code, terminal_id, region, enterprise) "
      "VALUES ('苏A0E001', 2, 'heavy_truck', '013900000001', '320102', 'NJ Freight')");
  wc_user_add("nj_view", "viewer", "320100", "nj-viewer-pw");
  wc_user_add("hz_view", "viewer", "330100", "hz-viewer-pw");
  int wport = hw_test_free_port();
  char listen[64], nj[512], hz[512], path[128];
  snprintf(listen, sizeof listen, "127.0.0.1:%d", wport);
  const char *argv[] = {"web", "--listen", listen, "--pg", env.conninfo, "--redis", env.redis_addr,
                        "--web-root", "", NULL};
  pid_t web = hw_test_spawn(argv, "test_attach.web.log");
  static wc_resp R;
  wc_wait_ready(wport, &R);
  wc_login(wport, "nj_view", "nj-viewer-pw", &R, nj, sizeof nj);
  wc_login(wport, "hz_view", "hz-viewer-pw", &R, hz, sizeof hz);

  wc_request(wport, "GET", "/api/v1/alarms/HWDEV01-261207080001-1/attachments", nj, NULL, 0, &R);
  assert_int_equal(R.status, 200);
  assert_non_null(strstr(R.body, "\"name\":\"00_65_6501_0_U.jpg\""));
  assert_non_null(strstr(R.body, "\"content_type\":\"image/jpeg\""));
  assert_non_null(strstr(R.body, "\"content_type\":\"video/mp4\""));
  assert_non_null(strstr(R.body, "\"complete\":true"));
  long id = hw_test_pg_scalar(env.db, "SELECT id FROM safety_attachments WHERE name = "
                                      "'00_65_6501_0_U.jpg'");
  snprintf(path, sizeof path, "/api/v1/attachments/%ld", id);
  wc_request(wport, "GET", path, nj, NULL, 0, &R);
  assert_int_equal(R.status, 200);
  assert_string_equal(wc_header(&R, "Content-Type"), "image/jpeg");
  const file f = {"00_65_6501_0_U.jpg", 10000};
  assert_int_equal(R.len, f.size);
  for (uint32_t i = 0; i < f.size; i++)
    if ((uint8_t)R.body[i] != content(&f, i))
      fail_msg("served byte %u differs", i);
  /* Outside the user's regions: as if it did not exist. */
  wc_request(wport, "GET", path, hz, NULL, 0, &R);
  assert_int_equal(R.status, 404);
  wc_request(wport, "GET", "/api/v1/alarms/HWDEV01-261207080001-1/attachments", hz, NULL, 0, &R);
  assert_int_equal(R.status, 200);
  assert_non_null(strstr(R.body, "\"attachments\":[]"));
  /* Not logged in: refused. */
  wc_request(wport, "GET", path, NULL, NULL, 0, &R);
  assert_int_equal(R.status, 401);
  assert_int_equal(hw_test_stop_pid(web), 0);

  /* The command line's list: header and the alarm's two files, both complete. */
  FILE *p = popen(HW_BINARY " attachments HWDEV01-261207080001-1", "r");
  assert_non_null(p);
  char line[1024];
  int lines = 0, complete = 0;
  while (fgets(line, sizeof line, p)) {
    lines++;
    if (strstr(line, "HWDEV01-261207080001-1\t013900000001\t") && strstr(line, "\tyes\t"))
      complete++;
  }
  assert_int_equal(pclose(p), 0);
  assert_int_equal(lines, 3);
  assert_int_equal(complete, 2);
}

/* The simulator's device (what haulwatch-sim does on 0x9208), losing a piece of each file:
 * both files complete after one 0x9212 round each, with the bytes it sent. */
static void test_sim_device(void **state) {
  (void)state;
  j8c *term = login("013900000005");
  hw_attach_request r;
  memset(&r, 0, sizeof r);
  snprintf(r.server_ip, sizeof r.server_ip, "127.0.0.1");
  r.tcp_port = (uint16_t)aport;
  memcpy(r.alarm.terminal, "SIMDEV5", 7);
  const uint8_t t[6] = {0x26, 0x12, 0x07, 0x09, 0x30, 0x00};
  memcpy(r.alarm.time_bcd, t, 6);
  r.alarm.seq = 7;
  r.alarm.count = 2;
  memcpy(r.unique, "0123456789abcdef0123456789abcdef", 32);
  hw_sim_attach_result res;
  assert_int_equal(hw_sim_attach_upload(&r, "013900000005", 1, &res), 0);
  assert_int_equal(res.files_complete, 2);
  assert_int_equal(res.resends, 2);
  static const uint32_t sizes[2] = {HW_SIM_ATTACH_PHOTO, HW_SIM_ATTACH_CLIP};
  for (int i = 0; i < 2; i++) {
    uint8_t *d = malloc(sizes[i]), h[32];
    char hex[65], got[128];
    for (uint32_t k = 0; k < sizes[i]; k++)
      d[k] = hw_sim_attach_byte(i, k);
    crypto_hash_sha256(h, d, sizes[i]);
    free(d);
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    hw_test_pg_text(env.db, got, sizeof got,
                    "SELECT sha256 FROM safety_attachments WHERE alarm_no = "
                    "'SIMDEV5-261207093000-7' AND complete AND name LIKE '0%d_%%' AND size = %u",
                    2 * i, sizes[i]);
    assert_string_equal(got, hex);
  }
  j8c_close(term);
}

static uint8_t bcd(int v) { return (uint8_t)((v / 10) << 4 | (v % 10)); }

/* A 0x0200 of yesterday (GMT+8) 10:00:00 with one DSM item, 苏标 layout, by hand: fatigue,
 * level 2, alarm number (terminal "HWDEV07", that time, sequence 4, `count` attachments). The
 * alarm number's 16 bytes go to alarm_no. Returns the body length. */
static size_t dsm_fix(uint8_t *body, uint8_t count, uint8_t alarm_no[16], char text[64]) {
  time_t now = time(NULL) + 8 * 3600 - 86400;
  struct tm tm;
  gmtime_r(&now, &tm);
  j8c_loc l = {.status = 0x3, .lat_e6 = 39900000, .lon_e6 = 116400000, .alt_m = 45,
               .speed_dkmh = 600, .heading = 90, .yy = tm.tm_year % 100, .mo = tm.tm_mon + 1,
               .dd = tm.tm_mday, .hh = 10, .mi = 0, .ss = 0};
  size_t n = j8c_body_location(body, &l);
  uint8_t t[6] = {bcd(l.yy), bcd(l.mo), bcd(l.dd), 0x10, 0x00, 0x00};
  uint8_t *p = body + n;
  *p++ = 0x65;
  *p++ = 47;
  put32(p, 9001), p += 4; /* alarm id */
  *p++ = 0;               /* flag */
  *p++ = 0x01;            /* fatigue */
  *p++ = 2;               /* level */
  *p++ = 3;               /* fatigue degree */
  memset(p, 0, 4), p += 4;
  *p++ = 60;
  *p++ = 0, *p++ = 45;
  put32(p, 39900000), p += 4;
  put32(p, 116400000), p += 4;
  memcpy(p, t, 6), p += 6;
  *p++ = 0, *p++ = 1;
  uint8_t *no = p;
  memcpy(p, "HWDEV07", 7), p += 7;
  memcpy(p, t, 6), p += 6;
  *p++ = 4;     /* sequence */
  *p++ = count; /* attachments */
  *p++ = 0;
  memcpy(alarm_no, no, 16);
  snprintf(text, 64, "HWDEV07-%02d%02d%02d100000-4", l.yy, l.mo, l.dd);
  return (size_t)(p - body);
}

/* The whole path of issue 12: a terminal's 0x0200 carrying a DSM alarm that announces two
 * attachments is acknowledged, then answered with 0x9208 naming the attachment listener and that
 * alarm number; a resend of the same 0x0200 is acknowledged again but asks nothing twice, and an
 * alarm announcing none gets no 0x9208. The device uploads (the simulator's code) and
 * safety_attachments holds both files complete under the alarm_no of the stored alarm. */
static void test_alarm_requests_attachments(void **state) {
  (void)state;
  j8c *c = login("013900000007");
  uint8_t body[256], no[16];
  char text[64];
  size_t n = dsm_fix(body, 0, no, text);
  /* No attachments announced: acknowledged, stored, and no 0x9208. */
  int flow = j8c_send(c, 0x0200, body, n);
  assert_int_equal(j8c_wait_response(c, (uint16_t)flow, 0x0200, 10000), 0);
  j8c_msg m;
  assert_int_equal(j8c_recv(c, &m, 500), -1);
  assert_int_equal(hw_test_pg_scalarf(env.db, "SELECT count(*) FROM safety_alarms WHERE "
                                              "alarm_no = '%s' AND attachments = 0", text), 1);

  /* Seconds later the same alarm (a device that re-reports with the files ready): announced. */
  n = dsm_fix(body, 2, no, text);
  body[n - 3] = 5; /* sequence 5 (the alarm number ends the body): another alarm */
  no[13] = 5;
  text[strlen(text) - 1] = '5';
  flow = j8c_send(c, 0x0200, body, n);
  assert_int_equal(j8c_wait_response(c, (uint16_t)flow, 0x0200, 10000), 0);
  /* The ack went only once the alarm was committed, and the 0x9208 after the ack. */
  assert_int_equal(hw_test_pg_scalarf(env.db, "SELECT count(*) FROM safety_alarms WHERE "
                                              "alarm_no = '%s' AND attachments = 2", text), 1);
  assert_int_equal(j8c_recv(c, &m, 10000), 0);
  assert_int_equal(m.id, 0x9208);
  /* ip length, ip, TCP port, UDP port, alarm number, unique number (32), reserved (16) */
  size_t il = m.body[0];
  assert_int_equal(il, strlen("127.0.0.1"));
  assert_memory_equal(m.body + 1, "127.0.0.1", il);
  assert_int_equal(m.body[1 + il] << 8 | m.body[2 + il], aport);
  assert_memory_equal(m.body + 5 + il, no, 16);
  assert_int_equal(m.len, 1 + il + 4 + 16 + 32 + 16);

  /* The terminal did not see the ack (say) and sends the same message again: acknowledged (and
   * not stored twice), no second 0x9208. */
  assert_true(j8c_send_flow(c, 0x0200, (uint16_t)flow, body, n) >= 0);
  assert_int_equal(j8c_wait_response(c, (uint16_t)flow, 0x0200, 10000), 0);
  assert_int_equal(j8c_recv(c, &m, 1000), -1);
  assert_int_equal(hw_test_pg_scalarf(env.db, "SELECT count(*) FROM safety_alarms WHERE "
                                              "alarm_no = '%s'", text), 1);

  /* The device uploads what it was asked for, where it was told. */
  hw_attach_request r;
  memset(&r, 0, sizeof r);
  snprintf(r.server_ip, sizeof r.server_ip, "127.0.0.1");
  r.tcp_port = (uint16_t)aport;
  hw_attach_alarm_no_read(no, &r.alarm);
  memcpy(r.unique, m.body + 5 + il + 16, 32);
  hw_sim_attach_result res;
  assert_int_equal(hw_sim_attach_upload(&r, "013900000007", 0, &res), 0);
  assert_int_equal(res.files_complete, 2);
  assert_int_equal(hw_test_pg_scalarf(env.db,
                                      "SELECT count(*) FROM safety_attachments t JOIN safety_alarms a "
                                      "USING (alarm_no) WHERE a.alarm_no = '%s' AND t.complete AND "
                                      "t.sha256 IS NOT NULL AND a.terminal_id = '013900000007' AND "
                                      "t.terminal_id = '013900000007'", text), 2);
  j8c_close(c);
}

/* haulwatch-sim --protocol jt808 --scenario dsm against a daemon with an attachment listener:
 * both scripted alarms of each truck are asked for with 0x9208 and uploaded (a photo and a clip,
 * complete), and the simulator stays connected until they are. */
static void test_sim_dsm_uploads(void **state) {
  (void)state;
  char server[64];
  snprintf(server, sizeof server, "127.0.0.1:%d", jport);
  const char *argv[] = {"--protocol", "jt808", "--server", server, "--scenario", "dsm",
                        "--trucks", "2", "--pg", env.conninfo, "--quiet", NULL};
  pid_t sim = hw_test_spawn_sim(argv, "test_attach.sim.log");
  assert_int_equal(hw_test_wait_exit(sim, 120000), 0);
  /* Two trucks, two alarms each, every one with its two files complete. */
  assert_int_equal(hw_test_pg_scalarf(env.db, "SELECT count(*) FROM safety_alarms WHERE "
                                              "terminal_id LIKE '01395000000_' AND attachments > 0"),
                   4);
  assert_int_equal(hw_test_pg_scalarf(env.db,
                                      "SELECT count(*) FROM safety_alarms a WHERE terminal_id LIKE "
                                      "'01395000000_' AND (SELECT count(*) FROM safety_attachments t "
                                      "WHERE t.alarm_no = a.alarm_no AND t.complete AND t.size IN "
                                      "(%d, %d) AND t.terminal_id = a.terminal_id) = 2",
                                      HW_SIM_ATTACH_PHOTO, HW_SIM_ATTACH_CLIP),
                   4);
}

static int group_setup(void **state) {
  (void)state;
  if (sodium_init() < 0)
    return -1;
  hw_test_env_up(&env, "hw_it_attach");
  jport = hw_test_free_port();
  aport = hw_test_free_port();
  snprintf(jlisten, sizeof jlisten, "127.0.0.1:%d", jport);
  snprintf(alisten, sizeof alisten, "127.0.0.1:%d", aport);
  /* The daemon's directory inside one of our own, so that nothing it could create beside it
   * goes unseen. */
  snprintf(base, sizeof base, "/tmp/hw_attach_XXXXXX");
  if (!mkdtemp(base))
    return -1;
  snprintf(adir, sizeof adir, "%s/files", base);
  unlink(logfile);
  char mf[16], mfs[16], mcb[16];
  snprintf(mf, sizeof mf, "%d", MAX_FILE);
  snprintf(mfs, sizeof mfs, "%d", MAX_FILES);
  snprintf(mcb, sizeof mcb, "%d", MAX_CONN_BYTES);
  /* Two workers: the listener runs on worker 0, and a terminal bound on worker 1 must be able
   * to upload too (the kernel spreads the tests' terminals over both). */
  const char *argv[] = {"serve", "--workers", "2", "--listen", env.listen_addr, "--jt808-listen", jlisten,
                        "--attachment-listen", alisten, "--attachment-dir", adir,
                        "--attachment-max-file", mf, "--attachment-max-files", mfs,
                        "--attachment-max-conn-bytes", mcb, "--pg", env.conninfo, "--redis",
                        env.redis_addr, "--log-level", "debug", NULL};
  env.daemon_pid = hw_test_spawn(argv, logfile);
  return hw_test_wait_port(jport, 15000) || hw_test_wait_port(aport, 15000) ? -1 : 0;
}

static int group_teardown(void **state) {
  (void)state;
  hw_test_env_down(&env);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
  if (system(cmd) != 0)
    return -1;
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lost_piece_and_resume),
      cmocka_unit_test(test_web),
      cmocka_unit_test(test_sim_device),
      cmocka_unit_test(test_alarm_requests_attachments),
      cmocka_unit_test(test_sim_dsm_uploads),
      cmocka_unit_test(test_limits),
      cmocka_unit_test(test_path_traversal),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
