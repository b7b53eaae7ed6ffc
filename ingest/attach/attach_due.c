/* The 0x9208 requests owed on one session, until their alarm is durable (attach_due.h). */
#include "attach/attach_due.h"

#include <string.h>

static int hw_due_seen(const hw_attach_due *d, const uint8_t *raw) {
  for (size_t i = 0; i < d->nrecent; i++)
    if (!memcmp(d->recent[i], raw, HW_ATTACH_ALARM_NO_LEN))
      return 1;
  return 0;
}

int hw_attach_due_note(hw_attach_due *d, uint64_t token, const uint8_t raw[HW_ATTACH_ALARM_NO_LEN]) {
  if (hw_due_seen(d, raw))
    return -EALREADY;
  if (d->npending == HW_ATTACH_DUE_PENDING)
    return -ENOBUFS;
  hw_attach_due_entry *e = &d->pending[d->npending++];
  e->token = token;
  hw_attach_alarm_no_read(raw, &e->alarm);
  /* Remembered from now on, not only once sent: the resend of a message whose ack is still to
   * come is covered by that ack's request. */
  memcpy(d->recent[d->recent_next], raw, HW_ATTACH_ALARM_NO_LEN);
  d->recent_next = (uint8_t)((d->recent_next + 1) % HW_ATTACH_DUE_RECENT);
  if (d->nrecent < HW_ATTACH_DUE_RECENT)
    d->nrecent++;
  return 0;
}

size_t hw_attach_due_take(hw_attach_due *d, uint64_t token, hw_attach_alarm_no *out, size_t cap,
                          size_t *dropped) {
  size_t last = 0, found = 0, n = 0;
  *dropped = 0;
  for (size_t i = 0; i < d->npending; i++)
    if (d->pending[i].token == token) {
      last = i + 1;
      found = 1;
    }
  if (!found)
    return 0;
  for (size_t i = 0; i < last; i++) {
    if (d->pending[i].token != token)
      (*dropped)++;
    else if (n < cap)
      out[n++] = d->pending[i].alarm;
    else
      (*dropped)++;
  }
  memmove(d->pending, d->pending + last, (d->npending - last) * sizeof d->pending[0]);
  d->npending = (uint8_t)(d->npending - last);
  return n;
}
