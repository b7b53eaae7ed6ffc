/* Shared conventions: every function that can fail returns 0 or a negative errno-style code
 * (-ENOMEM, -EINVAL, -EPROTO, -EIO, ...) and is marked HW_MUST_CHECK. */
#ifndef HW_COMMON_H
#define HW_COMMON_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#define HW_MUST_CHECK __attribute__((warn_unused_result))
#define HW_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define HW_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define HW_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/* Wall clock, UTC milliseconds since the epoch. */
int64_t hw_now_ms(void);

#endif
