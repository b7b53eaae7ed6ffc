/* Shared conventions: every function that can fail returns 0 or a negative errno-style code
 * (-ENOMEM, -EINVAL, -EPROTO, -EIO, ...) and is marked HW_MUST_CHECK. */
#ifndef HW_COMMON_H
#define HW_COMMON_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#define HW_MUST_CHECK __attribute__((warn_unused_result))
#define HW_PRINTF(f, a) __attribute__((format(printf, f, a)))
/* A macro's value as a string literal: a numeric default written once, used as text (the
 * settings table) and as a number (the module). */
#define HW_STR_(x) #x
#define HW_XSTR(x) HW_STR_(x)
#define HW_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define HW_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/* Wall clock, UTC milliseconds since the epoch. */
int64_t hw_now_ms(void);

#endif
