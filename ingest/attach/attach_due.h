/* The 0x9208 requests a JT/T 808 session owes its terminal: an active-safety alarm whose
 * identification number announces attachments is noted under the ack token of the message that
 * carried it, and the request is made once that ack is delivered (the alarm row is committed),
 * never for an alarm whose store did not complete. A short memory of the alarm numbers already
 * noted keeps a resent 0x0200 (same alarm number) from asking twice on one connection.
 * Bookkeeping only: no session, no I/O; the session sends (jt808/jt808_session.c with
 * attach/attach_request.h). The session owns one of these, allocated on its first such alarm. */
#ifndef HW_ATTACH_DUE_H
#define HW_ATTACH_DUE_H

#include "attach/attach_codec.h"
#include "base/common.h"

/* Alarms waiting for their ack: a 0x0200 holds one per kind at most; a 0x0704 batch could hold
 * more, and those past the limit are refused (logged by the caller), not queued unbounded. */
#define HW_ATTACH_DUE_PENDING 16
/* Alarm numbers remembered against resends: a terminal resends what was not acknowledged, so
 * recent ones are what matter. */
#define HW_ATTACH_DUE_RECENT 32

typedef struct hw_attach_due_entry {
  uint64_t token; /* the ack token of the message that carried the alarm */
  hw_attach_alarm_no alarm;
} hw_attach_due_entry;

typedef struct hw_attach_due {
  hw_attach_due_entry pending[HW_ATTACH_DUE_PENDING]; /* in the order noted (= ack order) */
  uint8_t npending;
  uint8_t recent_next, nrecent; /* ring */
  uint8_t recent[HW_ATTACH_DUE_RECENT][HW_ATTACH_ALARM_NO_LEN];
} hw_attach_due;

/* Notes `alarm` (16 raw bytes, 苏标) to be requested once `token` is acknowledged. 0 when noted;
 * -EALREADY when this alarm number was noted before (a resend: nothing to do); -ENOBUFS when
 * HW_ATTACH_DUE_PENDING alarms already wait (not noted). */
int hw_attach_due_note(hw_attach_due *d, uint64_t token, const uint8_t raw[HW_ATTACH_ALARM_NO_LEN])
    HW_MUST_CHECK;

/* The ack of `token` was delivered: copies the alarms noted under it, in order, to out (at most
 * cap; cap >= HW_ATTACH_DUE_PENDING takes all) and returns how many. Alarms noted before them
 * under another token are dropped and counted in *dropped: acks come in order, so theirs will
 * never come (their store failed or the ack was for a connection since replaced). */
size_t hw_attach_due_take(hw_attach_due *d, uint64_t token, hw_attach_alarm_no *out, size_t cap,
                          size_t *dropped);

#endif
