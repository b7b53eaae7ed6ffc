/* libFuzzer target for the protobuf protocol's codec: varint-length framing (protobuf/frame.c)
 * and ClientMessage decoding and fix conversion (protobuf/pb_codec.c), both pure.
 *
 * Input: byte 0 picks the largest frame accepted (max_frame) and where the rest is split into
 * two TCP reads; the rest is the stream. Oracles, beyond "no crash, no sanitizer report":
 *   - the frames (and the final status) of the split stream equal those of the whole stream;
 *   - a delivered frame is at most max_frame bytes, and re-prefixed and fed again comes back
 *     byte for byte;
 *   - a decoded ClientMessage packs again and decodes to the same message case and fix count;
 *   - a fix either converts (seq, time, heading, driver id within the proto's bounds) or is
 *     refused with the field named. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protobuf/frame.h"
#include "protobuf/pb_codec.h"

#define CHECK(c) \
  do { \
    if (!(c)) \
      abort(); \
  } while (0)

typedef struct evlog {
  uint8_t *buf; /* owned */
  size_t len, cap;
  size_t max_frame;
} evlog;

static void evlog_put(evlog *l, const void *p, size_t n) {
  if (l->len + n + 1 > l->cap) {
    size_t cap = (l->len + n) * 2 + 256;
    uint8_t *nb = realloc(l->buf, cap);
    CHECK(nb);
    l->buf = nb;
    l->cap = cap;
  }
  if (n)
    memcpy(l->buf + l->len, p, n);
  l->len += n;
}

static int log_cb(void *arg, const uint8_t *frame, size_t len) {
  evlog *l = arg;
  uint8_t pre[10];
  CHECK(len <= l->max_frame);
  evlog_put(l, pre, hw_varint_put(pre, len));
  evlog_put(l, frame, len);
  return 0;
}

typedef struct one {
  int n;
  const uint8_t *want;
  size_t want_len;
} one;

static int one_cb(void *arg, const uint8_t *frame, size_t len) {
  one *o = arg;
  o->n++;
  CHECK(len == o->want_len && (len == 0 || memcmp(frame, o->want, len) == 0));
  return 0;
}

static void check_fix(const Haulwatch__V1__Fix *in) {
  hw_fix f;
  const char *why = NULL;
  int reason = 0;
  int rc = hw_pb_fix_from_wire(in, &f, &reason, &why);
  if (rc) {
    /* refused alone: with a reason the client can act on, and words for the log */
    CHECK(rc == -EINVAL && reason != 0 && why && why[0]);
    return;
  }
  /* coordinates out of range are accepted here on purpose: quality.c flags them, the row is
   * kept; a heading or driver id it could not take is stored flagged, never refused */
  CHECK(f.heading < 360 || (f.quality & HW_Q_BAD_HEADING));
  CHECK(f.ts_ms >= HW_TS_MIN_MS && f.ts_ms <= HW_TS_MAX_MS);
  CHECK(f.seq > 0);
  CHECK(strlen(f.driver_id) <= HW_DRIVER_ID_MAX);
  CHECK(!(f.quality & HW_Q_BAD_DRIVER) || (!f.has_driver && f.driver_id[0] == 0));
}

static int decode_cb(void *arg, const uint8_t *frame, size_t len) {
  (void)arg;
  uint8_t wire[10];
  one o = {0, frame, len};
  hw_frame_reader r;

  /* re-prefix and frame again: the same payload */
  hw_frame_reader_init(&r, len);
  size_t pl = hw_varint_put(wire, len);
  CHECK(hw_frame_feed(&r, wire, pl, one_cb, &o) == 0);
  CHECK(hw_frame_feed(&r, frame, len, one_cb, &o) == 0);
  CHECK(o.n == 1);
  hw_frame_reader_free(&r);

  Haulwatch__V1__ClientMessage *m = hw_pb_decode_client(frame, len);
  if (!m)
    return 0;
  /* what decoding produced must survive packing: protobuf-c owns the message in the arena */
  int mcase = m->msg_case;
  size_t nfix = mcase == HAULWATCH__V1__CLIENT_MESSAGE__MSG_REPORT ? m->report->n_fixes : 0;
  if (mcase == HAULWATCH__V1__CLIENT_MESSAGE__MSG_REPORT)
    for (size_t i = 0; i < nfix; i++)
      check_fix(m->report->fixes[i]);
  /* Unknown fields are not ours to round-trip: libprotobuf-c 1.4 accepts a field number 0 spelt
   * as a padded varint key (0x80 0x00), keeps it as unknown and packs it as 0x00, which it then
   * refuses. Ignored fields cannot reach haulwatch, so they are dropped before packing. */
  m->base.n_unknown_fields = 0;
  if (m->msg_case == HAULWATCH__V1__CLIENT_MESSAGE__MSG_HELLO)
    m->hello->base.n_unknown_fields = 0;
  if (m->msg_case == HAULWATCH__V1__CLIENT_MESSAGE__MSG_HEARTBEAT)
    m->heartbeat->base.n_unknown_fields = 0;
  if (m->msg_case == HAULWATCH__V1__CLIENT_MESSAGE__MSG_REPORT) {
    m->report->base.n_unknown_fields = 0;
    for (size_t i = 0; i < nfix; i++)
      m->report->fixes[i]->base.n_unknown_fields = 0;
  }
  size_t n = protobuf_c_message_get_packed_size(&m->base);
  uint8_t *packed = malloc(n + 1); /* owned here */
  CHECK(packed);
  CHECK(protobuf_c_message_pack(&m->base, packed) == n);
  Haulwatch__V1__ClientMessage *m2 = hw_pb_decode_client(packed, n); /* m is invalid from here */
  CHECK(m2 && (int)m2->msg_case == mcase);
  if (mcase == HAULWATCH__V1__CLIENT_MESSAGE__MSG_REPORT)
    CHECK(m2->report->n_fixes == nfix);
  free(packed);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const size_t max_frames[4] = {16, 300, 4096, 64 * 1024};
  hw_frame_reader r;
  evlog whole = {0}, split = {0};
  int rc_whole, rc_split, rc;
  size_t at, max_frame;

  if (size < 1)
    return 0;
  max_frame = max_frames[data[0] & 3];
  data++;
  size--;
  at = size ? (size_t)(data[-1] >> 2) * size / 64 : 0;

  whole.max_frame = split.max_frame = max_frame;
  hw_frame_reader_init(&r, max_frame);
  rc_whole = hw_frame_feed(&r, data, size, log_cb, &whole);
  hw_frame_reader_free(&r);

  hw_frame_reader_init(&r, max_frame);
  rc_split = hw_frame_feed(&r, data, at, log_cb, &split);
  if (rc_split == 0)
    rc_split = hw_frame_feed(&r, data + at, size - at, log_cb, &split);
  /* a partial frame is buffered in at most its own size (or the 64-byte minimum) */
  CHECK(hw_frame_buffered(&r) <= (max_frame + 10 > 64 ? max_frame + 10 : 64));
  hw_frame_reader_free(&r);
  CHECK(rc_whole == rc_split);
  CHECK(rc_whole == 0 || rc_whole == -EMSGSIZE || rc_whole == -EPROTO);
  CHECK(whole.len == split.len && (whole.len == 0 || memcmp(whole.buf, split.buf, whole.len) == 0));

  /* every frame through the decoder */
  hw_frame_reader_init(&r, max_frame);
  rc = hw_frame_feed(&r, data, size, decode_cb, NULL);
  CHECK(rc == rc_whole);
  hw_frame_reader_free(&r);

  /* a varint read back is what was written */
  uint64_t v;
  int vn = hw_varint_get(data, size, &v);
  if (vn > 0) {
    uint8_t w[10];
    size_t wn = hw_varint_put(w, v);
    uint64_t v2;
    CHECK(hw_varint_get(w, wn, &v2) == (int)wn && v2 == v && wn <= (size_t)vn);
  }
  free(whole.buf);
  free(split.buf);
  return 0;
}
