/* JT/T 809 main link of a subordinate platform on a server session (notes: docs/jt809.md).
 *
 * Before login only 0x1001 is taken; anything else is dropped, recorded in auth_refusals
 * (protocol jt809) and counted as a strike. A 0x1001 is decided off the loop on the thread pool
 * (the platform row by the header's access code, read on a short-lived connection, then the
 * argon2id verify: tens of ms and 64 MiB) by hw_jt809_login_check, at most
 * HW_JT809_MAX_LOGIN_JOBS at once in the process (others are answered 0x1002 "busy"), and
 * answered 0x1002 with the standard's result. A refused login is recorded and is a strike; the
 * server's auth timeout ends a link that never logs in. An accepted one binds the session to the
 * registry record "jt809p:ACCESSCODE", so a second login of the same platform replaces the older
 * link, and writes a platform_links row (main) whose down_at and reason are set when it closes.
 * After login: 0x1005 -> 0x1006, 0x1003 -> 0x1004 and close; 0x1200 goes to jt809_data.c
 * (positions, registrations; a malformed wrapper is a strike); 0x1300 and 0x1400 go to the
 * centre (jt809_centre.h: inspection and supervision answers, alarms); other messages are
 * counted and dropped. The login also starts the slave link (jt809_slave.h) to the address the
 * 0x1001 gave; it ends with the main link, and its breaks are told to the platform by 0x9007.
 *
 * Memory: before login a session holds a 512-byte frame buffer (a login frame is 68 or 80
 * bytes unescaped); after login the buffer grows to HW_JT809_FRAME_DEFAULT. Broken frames (CRC,
 * escape, length, oversize) and refused messages are strikes: more than HW_JT809_MAX_STRIKES
 * within HW_JT809_STRIKE_WINDOW_MS close the link. */
#ifndef HW_JT809_SESSION_H
#define HW_JT809_SESSION_H

#include "net/session.h"

#define HW_JT809_MAX_STRIKES 10
#define HW_JT809_STRIKE_WINDOW_MS 60000
#define HW_JT809_MAX_LOGIN_JOBS 4
#define HW_JT809_PREAUTH_FRAME 512

extern const hw_proto hw_jt809_proto;

/* For the centre (jt809_centre.c): s is the logged-in main link of a platform (the session bound
 * to "jt809p:ACCESSCODE"). Sends a down message (0x9xxx) plain, over the slave link when it is
 * up, else over the main link; *sn is the header serial number used and *link "slave" or "main"
 * (static). -ENOTCONN when s is not logged in, -ENOMEM, or the write's error. */
int hw_jt809_session_send_down(hw_session *s, uint16_t msg_id, const uint8_t *body, size_t len,
                               uint32_t *sn, const char **link) HW_MUST_CHECK;
/* The edition of the platform logged in on s. */
int hw_jt809_session_is_2019(hw_session *s);

#endif
