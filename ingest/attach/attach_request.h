/* Asking a terminal for an alarm's attachments: 0x9208 on its JT/T 808 session, telling it the
 * attachment listener's public address (attachment_public_addr) and the alarm's numbers. For the
 * alarm path: an alarm whose identification number announces attachments calls this on the
 * session the alarm came in on. */
#ifndef HW_ATTACH_REQUEST_H
#define HW_ATTACH_REQUEST_H

#include "attach/attach_codec.h"
#include "net/session.h"

/* unique: the centre's 32-byte unique alarm number, or NULL to draw one (32 random hex digits);
 * either way it is copied to unique_out (32 bytes + NUL) when that is not NULL, to be kept with
 * the alarm. 0; -ENOTSUP without an attachment listener; -ENOTCONN when s is not an
 * authenticated JT/T 808 session; or the write's error. */
int hw_jt808_session_request_attachments(hw_session *s, const hw_attach_alarm_no *alarm,
                                         const uint8_t *unique, char unique_out[33])
    HW_MUST_CHECK;

#endif
