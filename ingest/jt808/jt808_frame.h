/* JT/T 808 framing: `7E` + escaped(header + body + checksum) + `7E`.
 *
 * The deframer is incremental: feed it whatever a TCP read delivered; it unescapes into a fixed
 * buffer inside the struct (no allocation, ever) and calls back once per frame with the header and
 * body, checksum verified and removed. Real terminals either share the delimiter between frames
 * (7E a 7E b 7E) or double it (7E a 7E 7E b 7E); both work. A 7D may end one read and its partner
 * byte start the next.
 *
 * Broken frames are dropped, counted in the stats and reported through the same callback, so a
 * session can disconnect a terminal that keeps sending them:
 *   - HW_JT808_BAD_CHECKSUM: XOR mismatch, reported at the closing 7E;
 *   - HW_JT808_BAD_ESCAPE:   7D followed by anything but 01/02, reported at once, then every byte up
 *                            to the next 7E is skipped;
 *   - HW_JT808_OVERSIZE:     more than HW_JT808_FRAME_MAX unescaped bytes, reported at once, then
 *                            skipped up to the next 7E.
 * Bytes before the first 7E, and runs between two 7E too short to be a frame (fewer than
 * HW_JT808_FRAME_MIN bytes), are garbage: skipped and counted, no event.
 *
 * One tolerance, seen in the field (go-jt808 keeps a test for it): a terminal that forgets to
 * escape a checksum of 0x7D sends `7D 7E`. The 7D is then taken literally as the checksum and the
 * frame is delivered only if the XOR matches (counted in stats.lenient_7d); otherwise it is a bad
 * escape. */
#ifndef HW_JT808_FRAME_H
#define HW_JT808_FRAME_H

#include "base/common.h"

#define HW_JT808_BODY_MAX 1023  /* 10-bit length field */
#define HW_JT808_HEADER_MIN 12  /* 2011/2013 header without package items */
#define HW_JT808_HEADER_MAX 21  /* 2019 header (17) + package items (4) */
/* Largest unescaped frame between the delimiters: header + body + checksum. */
#define HW_JT808_FRAME_MAX (HW_JT808_HEADER_MAX + HW_JT808_BODY_MAX + 1)
/* Smallest: a 2013 header with an empty body + checksum. */
#define HW_JT808_FRAME_MIN (HW_JT808_HEADER_MIN + 1)
/* Room hw_jt808_frame_encode needs for a frame of HW_JT808_FRAME_MAX - 1 raw bytes: every byte
 * (checksum included) may double, plus both delimiters. */
#define HW_JT808_WIRE_MAX (2 * HW_JT808_FRAME_MAX + 2)

typedef enum {
  HW_JT808_FRAME = 0,      /* a good frame */
  HW_JT808_BAD_CHECKSUM,   /* dropped */
  HW_JT808_BAD_ESCAPE,     /* dropped */
  HW_JT808_OVERSIZE,       /* dropped */
} hw_jt808_frame_event;

typedef struct hw_jt808_deframer_stats {
  uint64_t frames;        /* delivered */
  uint64_t bad_checksum;
  uint64_t bad_escape;
  uint64_t oversize;
  uint64_t garbage_bytes; /* skipped outside frames, runts, and the rest of dropped frames */
  uint64_t lenient_7d;    /* frames accepted with an unescaped 7D checksum */
} hw_jt808_deframer_stats;

typedef struct hw_jt808_deframer {
  hw_jt808_deframer_stats stats;
  uint16_t len;   /* unescaped bytes of the current frame in buf */
  uint8_t state;  /* private */
  uint8_t esc;    /* private: the previous byte was 7D */
  uint8_t buf[HW_JT808_FRAME_MAX]; /* owned: the frame being collected */
} hw_jt808_deframer;

/* ev == HW_JT808_FRAME: data/len are the unescaped header and body (checksum verified and
 * removed), len >= HW_JT808_HEADER_MIN. For the error events data/len are the unescaped bytes
 * collected so far, for logging only. data is valid during the call only. Return 0 to go on, or a
 * negative code that hw_jt808_deframer_feed returns at once. */
typedef int (*hw_jt808_frame_cb)(void *arg, hw_jt808_frame_event ev, const uint8_t *data,
                                 size_t len);

void hw_jt808_deframer_init(hw_jt808_deframer *d);

/* Consumes all of data[0..len). Returns 0, or the callback's negative code: the rest of data is
 * then not consumed and the deframer must be re-initialised before it is fed again. */
int hw_jt808_deframer_feed(hw_jt808_deframer *d, const uint8_t *data, size_t len,
                           hw_jt808_frame_cb cb, void *arg) HW_MUST_CHECK;

/* Sharing one deframer among connections (one per loop, its buffer reused): between two reads a
 * connection keeps only this and the partial frame, r.len bytes (often 0).
 *   after a feed:   hw_jt808_deframer_save(d, &conn->r); copy d->buf[0..conn->r.len) away;
 *   before a feed:  hw_jt808_deframer_restore(d, &conn->r, conn->partial);
 * A fresh connection starts from a zeroed hw_jt808_deframer_resume. Stats keep accumulating in
 * the shared struct; per-connection counts come from the events (or stats diffed around a feed). */
typedef struct hw_jt808_deframer_resume {
  uint16_t len;  /* bytes of the partial frame */
  uint8_t state; /* private */
  uint8_t esc;   /* private */
} hw_jt808_deframer_resume;

void hw_jt808_deframer_save(const hw_jt808_deframer *d, hw_jt808_deframer_resume *r);
/* partial: r->len bytes saved from d->buf (may be NULL when r->len is 0). */
void hw_jt808_deframer_restore(hw_jt808_deframer *d, const hw_jt808_deframer_resume *r,
                               const uint8_t *partial);

/* XOR of p[0..n): the JT/T 808 checksum. */
uint8_t hw_jt808_xor(const uint8_t *p, size_t n);

/* Send side: writes 7E, escaped raw[0..n), the escaped checksum of raw, 7E into out[0..cap).
 * *out_len is the wire size. 0, or -ENOSPC when out is too small (2 * n + 4 always suffices). */
int hw_jt808_frame_encode(const uint8_t *raw, size_t n, uint8_t *out, size_t cap, size_t *out_len)
    HW_MUST_CHECK;

#endif
