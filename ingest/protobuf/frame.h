/* Length-delimited frames (protobuf "delimited" convention): a base-128 varint length, then that
 * many bytes. The reader is incremental: it takes whatever a TCP read delivered, hands every
 * complete frame to a callback without copying when the frame lies whole inside the read, and
 * copies only a trailing partial frame into its own buffer. The length is checked against
 * max_frame before a byte of the payload is buffered. */
#ifndef HW_FRAME_H
#define HW_FRAME_H

#include "base/common.h"

typedef struct hw_frame_reader {
  uint8_t *buf;     /* owned: partial frame carried between reads, NULL when none */
  size_t len;       /* bytes in buf */
  size_t cap;
  size_t need;      /* total frame size (prefix + payload) of the partial frame, 0 while unknown */
  size_t max_frame; /* largest payload accepted */
  uint64_t refused; /* after -EMSGSIZE: the payload length the refused prefix announced */
} hw_frame_reader;

/* Returns 0 to go on, or a negative code that hw_frame_feed returns at once. frame is valid during
 * the call only. */
typedef int (*hw_frame_cb)(void *arg, const uint8_t *frame, size_t len);

void hw_frame_reader_init(hw_frame_reader *r, size_t max_frame);
void hw_frame_reader_free(hw_frame_reader *r);

/* 0 when every byte was consumed (complete frames delivered, a partial one kept); -EMSGSIZE for a
 * length above max_frame, -EPROTO for a length prefix longer than 10 bytes or above 2^63, -ENOMEM,
 * or the callback's negative code. After an error the reader must not be fed again. */
int hw_frame_feed(hw_frame_reader *r, const uint8_t *data, size_t len, hw_frame_cb cb, void *arg)
    HW_MUST_CHECK;

/* Bytes held for a partial frame (memory accounting). */
static inline size_t hw_frame_buffered(const hw_frame_reader *r) { return r->cap; }

/* Writes the varint of v into out (at least 10 bytes); returns its length. */
size_t hw_varint_put(uint8_t *out, uint64_t v);

/* Decodes a varint from p[0..len): 1..10 on success with *v set, 0 when more bytes are needed,
 * -EPROTO when malformed. */
int hw_varint_get(const uint8_t *p, size_t len, uint64_t *v);

#endif
