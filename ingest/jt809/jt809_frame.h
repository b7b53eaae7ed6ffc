/* JT/T 809 framing: `5B` + escaped(header + body + CRC) + `5D`, and the body cipher.
 *
 * Escapes, both directions: 5B -> 5A 01, 5A -> 5A 02, 5D -> 5E 01, 5E -> 5E 02. So 5B and 5D only
 * ever appear as delimiters, and unlike JT/T 808 the start and end flags differ: a 5B always
 * opens a frame and a 5D always closes one.
 *
 * The deframer is incremental: feed it whatever a TCP read delivered (split anywhere, also
 * between 5A/5E and its partner byte). It collects each frame in a buffer the caller lends it
 * (its size is the largest frame accepted, escaped: the max frame setting), unescapes it in
 * place at the 5D and calls back once per frame with the header and body, CRC verified and
 * removed, length field checked. No allocation, ever.
 *
 * Broken frames are dropped, counted in the stats and reported through the same callback (at the
 * 5D that ends them, or at once for oversize), so a session can count strikes and close a
 * platform that keeps sending them:
 *   HW_JT809_BAD_CRC      CRC-16/CCITT-FALSE mismatch;
 *   HW_JT809_BAD_ESCAPE   5A or 5E followed by anything but 01/02 (strict deframers), or a frame
 *                         that only a tolerated escape could explain and that still does not add
 *                         up (tolerant ones, below);
 *   HW_JT809_OVERSIZE     more bytes between the delimiters than the buffer holds (reported at
 *                         once, the rest skipped up to the next 5B);
 *   HW_JT809_BAD_LENGTH   the header's length field disagrees with the frame, or the frame is
 *                         shorter than a 2011 header and a CRC;
 *   HW_JT809_UNTERMINATED a 5B arrived inside a frame: the frame before it lost its 5D. The old
 *                         bytes are reported and the 5B opens a new frame.
 * Bytes outside frames (before a 5B, after a 5D) are garbage: counted, no event.
 *
 * Tolerance (the default; d->strict = 1 turns it off). Real platforms do not all escape (the
 * "GuoJian001" frames in SmallChi/JT809's tests, real 2019 traffic, escape nothing). So:
 *   - a frame whose length field equals its bytes as sent, with a good CRC over them, is taken
 *     as sent (stats.unescaped counts those that held 5A/5B/5D/5E);
 *   - a 5A / 5E not followed by 01 / 02 is taken literally (stats.lenient_escape);
 *   - a 5B or 5D arriving while the length field (read both ways) says the frame is longer is
 *     taken as data, within the buffer.
 * Every tolerated reading must still pass the CRC and the length field, so a frame is never
 * delivered on a guess. */
#ifndef HW_JT809_FRAME_H
#define HW_JT809_FRAME_H

#include "base/common.h"

#define HW_JT809_HEADER_2011 22 /* length, sn, msg id, centre id, version[3], flag, key */
#define HW_JT809_HEADER_2019 30 /* + UTC time u64 */
/* Smallest unescaped content between the delimiters: a 2011 header and the CRC. */
#define HW_JT809_FRAME_MIN (HW_JT809_HEADER_2011 + 2)
/* Default max frame (unescaped bytes between the delimiters). Real platforms send frames of
 * 20+ KiB (batches, media notices); 64 KiB leaves room and bounds memory per link. */
#define HW_JT809_FRAME_DEFAULT 65536

typedef enum {
  HW_JT809_FRAME = 0,
  HW_JT809_BAD_CRC,
  HW_JT809_BAD_ESCAPE,
  HW_JT809_OVERSIZE,
  HW_JT809_BAD_LENGTH,
  HW_JT809_UNTERMINATED,
} hw_jt809_frame_event;

/* A short name for logs ("bad_crc", ...). */
const char *hw_jt809_event_name(hw_jt809_frame_event ev);

typedef struct hw_jt809_deframer_stats {
  uint64_t frames;
  uint64_t bad_crc;
  uint64_t bad_escape;
  uint64_t oversize;
  uint64_t bad_length;
  uint64_t unterminated;
  uint64_t lenient_escape; /* frames delivered with a 5A / 5E taken literally */
  uint64_t unescaped;      /* frames delivered as sent by a platform that does not escape */
  uint64_t garbage_bytes; /* outside frames, and the rest of dropped frames */
} hw_jt809_deframer_stats;

typedef struct hw_jt809_deframer {
  hw_jt809_deframer_stats stats;
  uint8_t *buf;   /* borrowed from the caller: must outlive the deframer */
  size_t cap;     /* the max frame setting: bytes of buf, counted as sent (escaped) */
  size_t len;     /* unescaped bytes of the current frame */
  uint8_t state;  /* private */
  uint8_t strict; /* set after init: the standard's escapes only, no tolerance (see above) */
} hw_jt809_deframer;

/* ev == HW_JT809_FRAME: data[0..len) is the unescaped header and body (CRC verified and removed,
 * length field == len + 4), len >= HW_JT809_HEADER_2011. The callee may modify these bytes in
 * place (decrypting the body) during the call; they are the deframer's buffer and are reused
 * after it. For the error events data/len are the bytes collected, for logging only. Return 0
 * to go on, or a negative code that hw_jt809_deframer_feed returns at once. */
typedef int (*hw_jt809_frame_cb)(void *arg, hw_jt809_frame_event ev, uint8_t *data, size_t len);

/* buf/cap: the frame buffer lent by the caller; cap >= HW_JT809_FRAME_MIN (-EINVAL otherwise).
 * cap is the largest unescaped frame accepted (header + body + CRC). */
int hw_jt809_deframer_init(hw_jt809_deframer *d, uint8_t *buf, size_t cap) HW_MUST_CHECK;

/* Consumes all of data[0..len). 0, or the callback's negative code: the rest of data is then not
 * consumed and the deframer must be re-initialised before it is fed again. */
int hw_jt809_deframer_feed(hw_jt809_deframer *d, const uint8_t *data, size_t len,
                           hw_jt809_frame_cb cb, void *arg) HW_MUST_CHECK;

/* CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor) of p[0..n),
 * continuing from crc (start with 0xFFFF). */
uint16_t hw_jt809_crc16(uint16_t crc, const uint8_t *p, size_t n);

/* The platform's cipher constants (per platform, agreed out of band). */
typedef struct hw_jt809_cipher {
  uint32_t m1, ia1, ic1;
} hw_jt809_cipher;

/* The standard's stream cipher, in place over the whole body p[0..n) with the header's key. Its
 * own inverse. As in the standard's reference code, key 0 is taken as 1 and M1 0 as 1;
 * arithmetic is unsigned 32-bit, wrapping: for each byte key = IA1 * (key % M1) + IC1, then the
 * byte is XORed with bits 20-27 of key. */
void hw_jt809_crypt(const hw_jt809_cipher *c, uint32_t key, uint8_t *p, size_t n);

/* One step of the key stream (for encoders that encrypt while writing): *k starts as the
 * header key with 0 taken as 1; returns the byte to XOR. */
static inline uint8_t hw_jt809_crypt_step(const hw_jt809_cipher *c, uint32_t *k) {
  *k = c->ia1 * (*k % (c->m1 ? c->m1 : 1)) + c->ic1;
  return (uint8_t)(*k >> 20);
}

/* Escapes raw[0..n) (header + body, already encrypted if it is to be), appends the CRC of raw,
 * escaped, and the delimiters into out[0..cap). *out_len is the wire size. 0, or -ENOSPC when out
 * is too small (2 * n + 6 always suffices). The length field inside raw is the caller's. */
int hw_jt809_frame_encode(const uint8_t *raw, size_t n, uint8_t *out, size_t cap, size_t *out_len)
    HW_MUST_CHECK;

#endif
