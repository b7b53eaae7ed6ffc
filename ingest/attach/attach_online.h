/* Which terminals are online on JT/T 808 right now, process-wide: the attachment listener takes
 * uploads only from those, and it runs on worker 0 while a terminal may be bound on any worker
 * (serve --workers N: one registry per worker), so it cannot ask its own registry. A JT/T 808
 * session adds its terminal once authenticated and removes it when it closes; a terminal on two
 * connections at once (a replacement under way, or two workers) counts twice. Thread-safe (one
 * mutex; taken per authentication, close and upload list, never per message). */
#ifndef HW_ATTACH_ONLINE_H
#define HW_ATTACH_ONLINE_H

#include "base/common.h"

/* phone: the terminal id (at most 20 digits). -ENOMEM when it cannot be recorded (the terminal
 * then cannot upload attachments until it reconnects). */
int hw_attach_online_add(const char *phone) HW_MUST_CHECK;
/* Undoes one hw_attach_online_add that returned 0. */
void hw_attach_online_del(const char *phone);
/* 1 when at least one session of phone is online. */
int hw_attach_online_has(const char *phone);

#endif
