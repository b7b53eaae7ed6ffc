/* The attachment protocol (苏标 0x9208, 0x1210, 0x1211, 0x1212, 0x9212 and the data frames)
 * against the bodies SmallChi/JTActiveSafety's test suite asserts, and the connection stream fed
 * whole, byte by byte and split at every point. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attach/attach_codec.h"
#include "jt808/jt808_header.h"

static size_t unhex(const char *hex, uint8_t *out, size_t cap) {
  size_t n = 0;
  for (const char *c = hex; c[0] && c[1]; c += 2) {
    unsigned v;
    char two[3] = {c[0], c[1], 0};
    if (sscanf(two, "%2x", &v) != 1 || n >= cap)
      abort();
    out[n++] = (uint8_t)v;
  }
  return n;
}

/* SmallChi/JTActiveSafety src/JT808.Protocol.Extensions.JTActiveSafety.Test/JT808_0x9208_Test.cs:
 * server 192.168.1.1, TCP 5000, UDP 5001, terminal "4444444", 2019-12-10 18:31:00, sequence 3,
 * 2 attachments, reserved 1, unique number "1" x 32, 16 reserved zero bytes. */
static const char V9208[] =
    "0B3139322E3136382E312E311388138934343434343434191210183100030201313131313131313131313131313131"
    "313131313131313131313131313131313100000000000000000000000000000000";
/* .../JT808_0x1210_Test.cs: terminal "4444444", the same alarm, info type 0, two files
 * "filename" (9 bytes) and "filename1" (10 bytes). */
static const char V1210[] =
    "3434343434343434343434343434191210183100030201313131313131313131313131313131313131313131313131"
    "313131313131313100020866696C656E616D65000000090966696C656E616D65310000000A";
/* .../JT808_0x1211_Test.cs: "FileName", type 2, size 1 (0x1212 has the same body:
 * src/JT808.Protocol.Extensions.JTActiveSafety/Formatters/JT808_0x1212_Formatter.cs). */
static const char V1211[] = "0846696C654E616D650200000001";
/* .../JT808_0x9212_Test.cs: "FileName", type 1, result 2, ranges (20, 10) and (40, 30). */
static const char V9212[] = "0846696C654E616D65010202000000140000000A000000280000001E";
/* src/JTActiveSafety.Protocol.Test/JTActiveSafetySerializerTest.cs: a data frame of
 * "alarm.xlsx" (padded on the left), offset 1, 5 bytes 01..05. */
static const char VDATA[] =
    "3031636400000000000000000000000000000000000000000000000000000000000000000000000000000000616C61"
    "726D2E786C737800000001000000050102030405";

static void test_request(void **state) {
  (void)state;
  uint8_t body[256], out[256];
  size_t n = unhex(V9208, body, sizeof body), len;
  hw_attach_request r;
  assert_int_equal(hw_attach_parse_request(body, n, &r), 0);
  assert_string_equal(r.server_ip, "192.168.1.1");
  assert_int_equal(r.tcp_port, 5000);
  assert_int_equal(r.udp_port, 5001);
  assert_memory_equal(r.alarm.terminal, "4444444", 7);
  assert_int_equal(r.alarm.seq, 3);
  assert_int_equal(r.alarm.count, 2);
  assert_int_equal(r.alarm.reserved, 1);
  assert_int_equal(r.unique[0], '1');
  assert_int_equal(r.unique[31], '1');
  char text[HW_ATTACH_ALARM_TEXT];
  assert_int_equal(hw_attach_alarm_no_text(&r.alarm, text, sizeof text), 0);
  assert_string_equal(text, "4444444-191210183100-3");
  /* Our encoder writes exactly their bytes. */
  assert_int_equal(hw_attach_encode_request(&r, out, sizeof out, &len), 0);
  assert_int_equal(len, n);
  assert_memory_equal(out, body, n);
  assert_int_equal(hw_attach_encode_request(&r, out, n - 1, &len), -ENOSPC);
  /* Every truncation short of the unique number is refused. */
  for (size_t k = 0; k < n - 16; k++)
    assert_int_equal(hw_attach_parse_request(body, k, &r), -EBADMSG);
}

static void test_list(void **state) {
  (void)state;
  uint8_t body[256], out[256];
  size_t n = unhex(V1210, body, sizeof body), len;
  hw_attach_list *l = malloc(sizeof *l);
  assert_int_equal(hw_attach_parse_list(body, n, l), 0);
  assert_memory_equal(l->terminal, "4444444", 7);
  assert_int_equal(l->alarm.seq, 3);
  assert_int_equal(l->alarm.count, 2);
  assert_int_equal(l->info_type, 0);
  assert_int_equal(l->count, 2);
  assert_int_equal(l->items[0].name_len, 8);
  assert_memory_equal(l->items[0].name, "filename", 8);
  assert_int_equal(l->items[0].size, 9);
  assert_int_equal(l->items[1].name_len, 9);
  assert_memory_equal(l->items[1].name, "filename1", 9);
  assert_int_equal(l->items[1].size, 10);
  assert_int_equal(hw_attach_encode_list(l, out, sizeof out, &len), 0);
  assert_int_equal(len, n);
  assert_memory_equal(out, body, n);
  for (size_t k = 0; k < n; k++)
    assert_int_equal(hw_attach_parse_list(body, k, l), -EBADMSG);
  /* A byte too many is refused too: the count must account for the whole body. */
  body[n] = 0;
  assert_int_equal(hw_attach_parse_list(body, n + 1, l), -EBADMSG);
  free(l);
}

static void test_file(void **state) {
  (void)state;
  uint8_t body[64], out[64];
  size_t n = unhex(V1211, body, sizeof body), len;
  hw_attach_file f;
  assert_int_equal(hw_attach_parse_file(body, n, &f), 0);
  assert_int_equal(f.name_len, 8);
  assert_memory_equal(f.name, "FileName", 8);
  assert_int_equal(f.type, 2);
  assert_int_equal(f.size, 1);
  assert_int_equal(hw_attach_encode_file(&f, out, sizeof out, &len), 0);
  assert_int_equal(len, n);
  assert_memory_equal(out, body, n);
  for (size_t k = 0; k < n; k++)
    assert_int_equal(hw_attach_parse_file(body, k, &f), -EBADMSG);
  assert_int_equal(hw_attach_parse_file(body, n + 1, &f), -EBADMSG);
  body[0] = 0; /* empty name */
  assert_int_equal(hw_attach_parse_file(body, 6, &f), -EBADMSG);
}

static void test_answer(void **state) {
  (void)state;
  uint8_t body[64], out[64];
  size_t n = unhex(V9212, body, sizeof body), len;
  hw_attach_answer *a = malloc(sizeof *a);
  assert_int_equal(hw_attach_parse_answer(body, n, a), 0);
  assert_memory_equal(a->file.name, "FileName", 8);
  assert_int_equal(a->file.type, 1);
  assert_int_equal(a->result, 2);
  assert_int_equal(a->count, 2);
  assert_int_equal(a->ranges[0].offset, 20);
  assert_int_equal(a->ranges[0].length, 10);
  assert_int_equal(a->ranges[1].offset, 40);
  assert_int_equal(a->ranges[1].length, 30);
  assert_int_equal(hw_attach_encode_answer(a, out, sizeof out, &len), 0);
  assert_int_equal(len, n);
  assert_memory_equal(out, body, n);
  assert_int_equal(hw_attach_encode_answer(a, out, n - 1, &len), -ENOSPC);
  for (size_t k = 0; k < n; k++)
    assert_int_equal(hw_attach_parse_answer(body, k, a), -EBADMSG);
  /* The most ranges a 0x9212 may carry fit one JT/T 808 body with a 255-byte name. */
  assert_true(4 + 255 + HW_ATTACH_9212_MAX_RANGES * 8 <= HW_JT808_BODY_MAX);
  free(a);
}

/* What the stream callbacks saw, as one text log plus the data bytes. */
typedef struct seen {
  char log[1024];
  uint8_t data[256];
  size_t ndata;
  int fail_at_begin;
} seen;

static void logf_(seen *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t l = strlen(s->log);
  vsnprintf(s->log + l, sizeof s->log - l, fmt, ap);
  va_end(ap);
}

static int on_frame(void *arg, hw_jt808_frame_event ev, const uint8_t *d, size_t len) {
  seen *s = arg;
  if (ev != HW_JT808_FRAME) {
    logf_(s, "bad%d;", (int)ev);
    return 0;
  }
  hw_jt808_header h;
  const uint8_t *body;
  if (hw_jt808_header_parse(d, len, &h, &body)) {
    logf_(s, "badhdr;");
    return 0;
  }
  logf_(s, "F%04x/%u;", h.msg_id, h.body_len);
  return 0;
}
static int on_begin(void *arg, const uint8_t *name, size_t nl, uint32_t off, uint32_t len) {
  seen *s = arg;
  logf_(s, "D%.*s@%u+%u;", (int)nl, (const char *)name, off, len);
  return s->fail_at_begin ? -EFBIG : 0;
}
static int on_data(void *arg, const uint8_t *p, size_t n) {
  seen *s = arg;
  assert_true(s->ndata + n <= sizeof s->data);
  memcpy(s->data + s->ndata, p, n);
  s->ndata += n;
  return 0;
}
static int on_end(void *arg) {
  logf_(arg, "E;");
  return 0;
}
static const hw_attach_stream_cb CB = {on_frame, on_begin, on_data, on_end};

/* A connection's bytes: a 0x1211 frame, the data frame of VDATA, a 0x1212 frame sharing its
 * closing delimiter with the next 0x1212 (7E a 7E b 7E). */
static size_t build_stream(uint8_t *wire, size_t cap) {
  uint8_t body[64], raw[128];
  size_t bn = unhex(V1211, body, sizeof body), n = 0, len;
  hw_jt808_header h;
  assert_int_equal(hw_jt808_header_init(&h, 0, 0, "13800138000"), 0);
  assert_int_equal(hw_jt808_build(wire, cap, &len, &h, HW_ATTACH_MSG_FILE_INFO, 1, body, bn), 0);
  n += len;
  n += unhex(VDATA, wire + n, cap - n);
  assert_int_equal(hw_jt808_build(wire + n, cap - n, &len, &h, HW_ATTACH_MSG_FILE_DONE, 2, body, bn), 0);
  n += len;
  assert_int_equal(hw_jt808_build(raw, sizeof raw, &len, &h, HW_ATTACH_MSG_FILE_DONE, 3, body, bn), 0);
  memcpy(wire + n, raw + 1, len - 1); /* shares the delimiter */
  n += len - 1;
  return n;
}

static const char EXPECT[] = "F1211/14;Dalarm.xlsx@1+5;E;F1212/14;F1212/14;";

static void check_seen(const seen *s) {
  assert_string_equal(s->log, EXPECT);
  assert_int_equal(s->ndata, 5);
  assert_memory_equal(s->data, "\1\2\3\4\5", 5);
}

static void test_stream_whole_bytewise_split(void **state) {
  (void)state;
  uint8_t wire[512];
  size_t n = build_stream(wire, sizeof wire);
  hw_attach_stream *st = malloc(sizeof *st);
  seen s;

  memset(&s, 0, sizeof s);
  hw_attach_stream_init(st);
  assert_int_equal(hw_attach_stream_feed(st, wire, n, &CB, &s), 0);
  check_seen(&s);
  assert_false(hw_attach_stream_busy(st));

  memset(&s, 0, sizeof s);
  hw_attach_stream_init(st);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(hw_attach_stream_feed(st, wire + i, 1, &CB, &s), 0);
  check_seen(&s);

  for (size_t cut = 1; cut < n; cut++) {
    memset(&s, 0, sizeof s);
    hw_attach_stream_init(st);
    assert_int_equal(hw_attach_stream_feed(st, wire, cut, &CB, &s), 0);
    assert_int_equal(hw_attach_stream_feed(st, wire + cut, n - cut, &CB, &s), 0);
    check_seen(&s);
  }
  free(st);
}

static void test_stream_refusals(void **state) {
  (void)state;
  hw_attach_stream st;
  seen s;
  memset(&s, 0, sizeof s);
  /* A byte that starts neither kind of frame. */
  hw_attach_stream_init(&st);
  assert_int_equal(hw_attach_stream_feed(&st, (const uint8_t *)"GET /", 5, &CB, &s), -EPROTO);
  /* 0x30 without the rest of the magic: refused at the 4th byte, before any header is read. */
  hw_attach_stream_init(&st);
  assert_int_equal(hw_attach_stream_feed(&st, (const uint8_t *)"0123", 4, &CB, &s), -EPROTO);
  /* A callback's refusal stops the stream with its code. */
  uint8_t d[128];
  size_t n = unhex(VDATA, d, sizeof d);
  s.fail_at_begin = 1;
  hw_attach_stream_init(&st);
  assert_int_equal(hw_attach_stream_feed(&st, d, n, &CB, &s), -EFBIG);
  assert_int_equal(s.ndata, 0);
  /* A data frame of length 0 begins and ends at once. */
  memset(&s, 0, sizeof s);
  uint8_t h[HW_ATTACH_DATA_HEADER];
  assert_int_equal(hw_attach_encode_data_header((const uint8_t *)"a.jpg", 5, 7, 0, h), 0);
  hw_attach_stream_init(&st);
  assert_int_equal(hw_attach_stream_feed(&st, h, sizeof h, &CB, &s), 0);
  assert_string_equal(s.log, "Da.jpg@7+0;E;");
  assert_int_equal(hw_attach_encode_data_header((const uint8_t *)"x", 0, 0, 0, h), -EINVAL);
  uint8_t long_name[51];
  memset(long_name, 'a', sizeof long_name);
  assert_int_equal(hw_attach_encode_data_header(long_name, 51, 0, 0, h), -EINVAL);
}

static void test_alarm_text(void **state) {
  (void)state;
  hw_attach_alarm_no a = {.terminal = {0, 'A', '/', '.', 'z', ' ', 0},
                          .time_bcd = {0x26, 0x12, 0x07, 0x08, 0x00, 0x59}, .seq = 255};
  char t[HW_ATTACH_ALARM_TEXT];
  assert_int_equal(hw_attach_alarm_no_text(&a, t, sizeof t), 0);
  /* Anything but letters and digits is written in hex: never a path separator or a dot. */
  assert_string_equal(t, "A2F2Ez-261207080059-255");
  a.time_bcd[2] = 0x0A;
  assert_int_equal(hw_attach_alarm_no_text(&a, t, sizeof t), -EINVAL);
  memset(a.terminal, 0, 7);
  a.time_bcd[2] = 0x07;
  assert_int_equal(hw_attach_alarm_no_text(&a, t, sizeof t), -EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_request),
      cmocka_unit_test(test_list),
      cmocka_unit_test(test_file),
      cmocka_unit_test(test_answer),
      cmocka_unit_test(test_stream_whole_bytewise_split),
      cmocka_unit_test(test_stream_refusals),
      cmocka_unit_test(test_alarm_text),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
