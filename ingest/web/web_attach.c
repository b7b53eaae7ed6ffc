/* The API's attachment routes: an alarm's files (GET /api/v1/alarms/{alarm_no}/attachments) and
 * one file's bytes (GET /api/v1/attachments/{id}), both within the user's regions through the
 * vehicle of the terminal that uploaded them (outside them: 404, as if absent). The file is read
 * on the thread pool (up to attachment_max_file bytes) from the path the daemon recorded; only
 * complete files are served. Owns each request's read buffer until it is answered. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "web/web_internal.h"

/* Files are served only up to this size: the daemon's own default limit is 64 MiB. */
#define HW_WEB_ATTACH_MAX (256u << 20)

/* A content type from the name's extension and the protocol's file type (0 picture, 1 audio,
 * 2 video): what the page needs to show a photo or play a clip. */
static const char *hw_web_attach_ctype(const char *name, int type) {
  static const struct { const char *ext, *ct; } map[] = {
      {"jpg", "image/jpeg"}, {"jpeg", "image/jpeg"}, {"png", "image/png"}, {"bmp", "image/bmp"},
      {"mp4", "video/mp4"},  {"avi", "video/x-msvideo"}, {"h264", "video/h264"},
      {"wav", "audio/wav"},  {"mp3", "audio/mpeg"},  {"txt", "text/plain; charset=utf-8"}};
  const char *dot = strrchr(name, '.');
  if (dot)
    for (size_t i = 0; i < HW_ARRAY_SIZE(map); i++)
      if (!strcasecmp(dot + 1, map[i].ext))
        return map[i].ct;
  return type == 0 ? "image/jpeg" : "application/octet-stream";
}

static int hw_web_alarm_no_ok(const char *s) {
  size_t n = s ? strlen(s) : 0;
  return n >= 1 && n <= 64 &&
         strspn(s, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-") == n;
}

/* SQL of a content type, the twin of hw_web_attach_ctype for the listing. */
#define HW_ATTACH_CT_SQL                                                                     \
  "CASE lower(substring(a.name from '\\.([^.]*)$')) WHEN 'jpg' THEN 'image/jpeg' WHEN 'jpeg' " \
  "THEN 'image/jpeg' WHEN 'png' THEN 'image/png' WHEN 'bmp' THEN 'image/bmp' WHEN 'mp4' THEN " \
  "'video/mp4' WHEN 'avi' THEN 'video/x-msvideo' WHEN 'h264' THEN 'video/h264' WHEN 'wav' "    \
  "THEN 'audio/wav' WHEN 'mp3' THEN 'audio/mpeg' WHEN 'txt' THEN 'text/plain; charset=utf-8' " \
  "ELSE CASE WHEN a.type = 0 THEN 'image/jpeg' ELSE 'application/octet-stream' END END"

static void hw_web_alarm_attachments_got(hw_web_call *call, const PGresult *res) {
  if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
    hw_web_reply_pg_error(call, res, "alarm attachments");
    return;
  }
  hw_web_reply_json_text(call, PQgetvalue(res, 0, 0));
}

void hw_web_alarm_attachments(hw_web_call *call) {
  const char *no = hw_http_param(call->req, "alarm_no");
  if (!hw_web_alarm_no_ok(no)) {
    hw_web_reply_error(call, 404, "no such alarm");
    return;
  }
  const char *params[2] = {no, call->user.scope};
  if (hw_web_query(
          call,
          "SELECT json_build_object('alarm_no', $1::text, 'attachments', coalesce(json_agg("
          "json_build_object('id', a.id, 'name', a.name, 'type', a.type, 'size', a.size, "
          "'received', a.received, 'complete', a.complete, 'sha256', a.sha256, 'terminal_id', "
          "a.terminal_id, 'content_type', " HW_ATTACH_CT_SQL ", 'url', '/api/v1/attachments/' "
          "|| a.id, 'completed_at', a.completed_at) ORDER BY a.name), '[]'))::text FROM "
          "safety_attachments a JOIN vehicles v ON v.terminal_id = a.terminal_id WHERE "
          "a.alarm_no = $1 AND coalesce(v.region, '') LIKE ANY($2::text[])",
          2, params, hw_web_alarm_attachments_got)) {
  }
}

typedef struct hw_web_file_state {
  hw_web_call *call;
  uv_work_t work;
  char path[PATH_MAX];
  char name[256];
  int type;
  uint64_t size;
  uint8_t *data; /* owned */
  int rc;
} hw_web_file_state;

static void hw_web_file_state_free(void *p) {
  hw_web_file_state *st = p;
  free(st->data);
  free(st);
}

static void hw_web_file_work(uv_work_t *w) {
  hw_web_file_state *st = w->data;
  int fd = open(st->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  struct stat sb;
  st->rc = 0;
  if (fd < 0) {
    st->rc = -errno;
    return;
  }
  /* The recorded size is what the daemon hashed: anything else is not that file any more. */
  if (fstat(fd, &sb) || !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size != st->size) {
    st->rc = -ESTALE;
    goto out;
  }
  if (!(st->data = malloc(st->size ? st->size : 1))) {
    st->rc = -ENOMEM;
    goto out;
  }
  for (uint64_t at = 0; at < st->size;) {
    ssize_t n = pread(fd, st->data + at, st->size - at, (off_t)at);
    if (n <= 0) {
      st->rc = n < 0 ? -errno : -ESTALE;
      goto out;
    }
    at += (uint64_t)n;
  }
out:
  close(fd);
}

static void hw_web_file_after(uv_work_t *w, int status) {
  hw_web_file_state *st = w->data;
  hw_web_call *call = st->call;
  if (!hw_web_pool_done(call, status))
    return;
  if (st->rc) {
    hw_warn(HW_WEB_COMPONENT, NULL, "attachment %s unreadable: %s", st->path, strerror(-st->rc));
    hw_web_reply_error(call, st->rc == -ENOMEM ? 503 : 404,
                       st->rc == -ENOMEM ? "out of memory" : "the file is not available");
    return;
  }
  if (hw_http_add_header(call->req, "X-Content-Type-Options", "nosniff")) {
  }
  hw_web_reply_raw(call, 200, hw_web_attach_ctype(st->name, st->type), st->data, st->size);
}

static void hw_web_attachment_row(hw_web_call *call, const PGresult *res) {
  if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
    hw_web_reply_pg_error(call, res, "attachment");
    return;
  }
  if (PQntuples(res) != 1) {
    hw_web_reply_error(call, 404, "no such attachment");
    return;
  }
  if (strcmp(PQgetvalue(res, 0, 4), "t")) {
    hw_web_reply_error(call, 404, "the attachment is not complete yet");
    return;
  }
  uint64_t size = strtoull(PQgetvalue(res, 0, 2), NULL, 10);
  if (size > HW_WEB_ATTACH_MAX) {
    hw_web_reply_error(call, 413, "the attachment is larger than the web server serves");
    return;
  }
  hw_web_file_state *st = calloc(1, sizeof *st);
  if (!st) {
    hw_web_reply_error(call, 503, "out of memory");
    return;
  }
  call->state = st;
  call->free_state = hw_web_file_state_free;
  st->call = call;
  st->size = size;
  st->type = atoi(PQgetvalue(res, 0, 3));
  snprintf(st->path, sizeof st->path, "%s", PQgetvalue(res, 0, 0));
  snprintf(st->name, sizeof st->name, "%s", PQgetvalue(res, 0, 1));
  st->work.data = st;
  if (uv_queue_work(call->app->loop, &st->work, hw_web_file_work, hw_web_file_after)) {
    hw_web_reply_error(call, 503, "try again");
    return;
  }
  hw_web_hold(call->app);
  hw_web_async_begin(call);
}

void hw_web_attachment_get(hw_web_call *call) {
  const char *id = hw_http_param(call->req, "id");
  size_t n = id ? strlen(id) : 0;
  if (n < 1 || n > 18 || strspn(id, "0123456789") != n) {
    hw_web_reply_error(call, 404, "no such attachment");
    return;
  }
  const char *params[2] = {id, call->user.scope};
  if (hw_web_query(call,
                   "SELECT a.path, a.name, a.size, a.type, a.complete FROM safety_attachments a "
                   "JOIN vehicles v ON v.terminal_id = a.terminal_id WHERE a.id = $1::bigint AND "
                   "coalesce(v.region, '') LIKE ANY($2::text[])",
                   2, params, hw_web_attachment_row)) {
  }
}
