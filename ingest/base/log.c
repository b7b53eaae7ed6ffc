#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

hw_log_level hw_log_min_level = HW_LOG_INFO;

static const char *const hw_log_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
static _Thread_local int hw_log_worker = -1;

void hw_log_set_worker(int worker) { hw_log_worker = worker; }

int64_t hw_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int hw_log_set_level(const char *name) {
  for (size_t i = 0; i < HW_ARRAY_SIZE(hw_log_names); i++) {
    if (strcasecmp(name, hw_log_names[i]) == 0) {
      hw_log_min_level = (hw_log_level)i;
      return 0;
    }
  }
  return -EINVAL;
}

void hw_log(hw_log_level level, const char *component, const char *terminal, const char *fmt, ...) {
  if (level < hw_log_min_level)
    return;
  char line[1024];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  char worker[24] = "";
  if (hw_log_worker >= 0)
    snprintf(worker, sizeof worker, " worker=%d", hw_log_worker);
  int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s%s terminal=%s ",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   ts.tv_nsec / 1000000, hw_log_names[level], component, worker,
                   terminal ? terminal : "-");
  if (n < 0)
    return;
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
  va_end(ap);
  size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
  if (len > sizeof line - 2)
    len = sizeof line - 2;
  /* A message cannot inject a fake log line. */
  for (size_t i = (size_t)n; i < len; i++)
    if (line[i] == '\n' || line[i] == '\r')
      line[i] = ' ';
  line[len++] = '\n';
  ssize_t w = write(STDERR_FILENO, line, len);
  (void)w;
}
