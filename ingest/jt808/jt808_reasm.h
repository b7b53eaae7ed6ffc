/* Reassembly of sub-packaged JT/T 808 messages (header bit 13: total and index from 1).
 *
 * One reassembler per connection. A message is identified by its id and package total, and its
 * packages are told apart from another message's by flow numbers: the standard has the flow grow
 * by one per package (so flow - (index - 1) is the same for all of them), while some terminals
 * repeat one flow for every package; both are recognised. Packages may arrive in any order and
 * duplicates (re-sent packages) are ignored.
 *
 * Bounded in memory: at most HW_JT808_REASM_SLOTS messages in progress (a new one evicts the
 * oldest), at most cfg.max_total packages and cfg.max_bytes body bytes per message. Bounded in
 * time: a message still incomplete cfg.timeout_ms after its first package is dropped, by the
 * caller's clock (hw_jt808_reasm_add expires first; call hw_jt808_reasm_expire from a sweep
 * timer to free memory of idle connections). */
#ifndef HW_JT808_REASM_H
#define HW_JT808_REASM_H

#include "jt808/jt808_header.h"

#define HW_JT808_REASM_SLOTS 4

typedef struct hw_jt808_reasm_cfg {
  uint16_t max_total;  /* most packages a message may announce */
  uint32_t max_bytes;  /* largest reassembled body */
  uint32_t timeout_ms; /* incomplete messages older than this are dropped */
} hw_jt808_reasm_cfg;

typedef struct hw_jt808_reasm_stats {
  uint64_t completed;
  uint64_t expired;    /* dropped for age */
  uint64_t evicted;    /* dropped to make room for a newer message */
  uint64_t too_big;    /* dropped or refused: total above max_total or bytes above max_bytes */
  uint64_t duplicates; /* packages already held, ignored */
} hw_jt808_reasm_stats;

typedef struct hw_jt808_reasm_part {
  uint32_t off; /* into the slot's data */
  uint16_t len;
  uint8_t have;
} hw_jt808_reasm_part;

typedef struct hw_jt808_reasm_slot {
  uint8_t used;
  uint8_t base_ok;       /* every package so far agrees with base_flow */
  uint8_t same_ok;       /* every package so far had flow == same_flow */
  uint16_t msg_id;
  uint16_t total;
  uint16_t received;
  uint16_t base_flow;    /* flow of package 1 if flows grow by one per package */
  uint16_t same_flow;    /* flow of the first package received */
  int64_t started_ms;
  uint32_t bytes;
  uint32_t cap;
  uint8_t *data;             /* owned: package bodies in arrival order */
  hw_jt808_reasm_part *parts; /* owned: total entries, by index - 1 */
} hw_jt808_reasm_slot;

typedef struct hw_jt808_reasm {
  hw_jt808_reasm_cfg cfg;
  hw_jt808_reasm_stats stats;
  hw_jt808_reasm_slot slot[HW_JT808_REASM_SLOTS];
  uint8_t *done; /* owned: the last completed body, valid until the next call on this struct */
} hw_jt808_reasm;

void hw_jt808_reasm_init(hw_jt808_reasm *r, const hw_jt808_reasm_cfg *cfg);
void hw_jt808_reasm_free(hw_jt808_reasm *r);

/* Adds one package (h->subpackaged must be set). Returns
 *   1  the message is complete: *out / *out_len are the bodies concatenated in index order, owned
 *      by r and valid until the next call on r; h->msg_id tells what to parse it as;
 *   0  held, more packages needed (or a duplicate, ignored);
 *  -EINVAL a header that is not sub-packaged or a body above 1023 bytes; -EMSGSIZE the message exceeds max_total or
 *  max_bytes and is dropped; -ENOMEM. */
int hw_jt808_reasm_add(hw_jt808_reasm *r, const hw_jt808_header *h, const uint8_t *body,
                       size_t len, int64_t now_ms, const uint8_t **out, size_t *out_len)
    HW_MUST_CHECK;

/* Drops messages whose first package is older than cfg.timeout_ms; returns how many. */
size_t hw_jt808_reasm_expire(hw_jt808_reasm *r, int64_t now_ms);

/* Messages in progress (for tests and memory accounting). */
size_t hw_jt808_reasm_pending(const hw_jt808_reasm *r);

#endif
