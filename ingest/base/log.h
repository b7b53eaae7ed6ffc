/* One line per event: time, level, component, worker (serve --workers N with N > 1: the event
 * loop the line comes from), terminal (when there is one), message.
 *   2026-11-29T02:00:00.123Z INFO  pgwriter terminal=- batch committed rows=5000 ms=41
 *   2026-11-29T02:00:00.123Z INFO  pgwriter worker=1 terminal=- batch committed rows=5000 ms=41
 * Written to stderr with a single write(2) of at most 1 KiB, so lines of concurrent processes
 * and threads never interleave; the worker is a thread-local, so logging needs no lock. */
#ifndef HW_LOG_H
#define HW_LOG_H

#include "base/common.h"

typedef enum { HW_LOG_DEBUG = 0, HW_LOG_INFO, HW_LOG_WARN, HW_LOG_ERROR } hw_log_level;

extern hw_log_level hw_log_min_level;

/* Returns 0, or -EINVAL for a name that is not debug/info/warn/error. */
int hw_log_set_level(const char *name) HW_MUST_CHECK;

/* Names the calling thread's worker in its lines from now on (-1: none, the default). */
void hw_log_set_worker(int worker);

/* component: a short lower-case module name ("server", "pgwriter", "redis", "jt808", ...).
 * terminal: the terminal id the event concerns, or NULL. */
void hw_log(hw_log_level level, const char *component, const char *terminal, const char *fmt, ...)
    HW_PRINTF(4, 5);

#define hw_debug(c, t, ...) \
  do { if (hw_log_min_level <= HW_LOG_DEBUG) hw_log(HW_LOG_DEBUG, c, t, __VA_ARGS__); } while (0)
#define hw_info(c, t, ...) hw_log(HW_LOG_INFO, c, t, __VA_ARGS__)
#define hw_warn(c, t, ...) hw_log(HW_LOG_WARN, c, t, __VA_ARGS__)
#define hw_error(c, t, ...) hw_log(HW_LOG_ERROR, c, t, __VA_ARGS__)

#endif
