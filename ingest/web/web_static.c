/* The page's files, from --web-root: GET only, no login (the page itself logs in through the
 * API). A path is served only when every segment is a plain name (no "..", no hidden files, no
 * backslash or NUL, after %-decoding) and the file's real path still lies under the root (a
 * symlink out of it is refused). Files are small and read whole; owns nothing past the call. */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "web/web_internal.h"

#define HW_WEB_STATIC_MAX (8u << 20) /* the page's biggest file (a bundled map library) fits */

static const struct {
  const char *ext, *type;
} hw_web_types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".json", "application/json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".woff2", "font/woff2"},
    {".pbf", "application/x-protobuf"},
    {".txt", "text/plain; charset=utf-8"},
    {".map", "application/json"},
};

static const char *hw_web_type_of(const char *path) {
  const char *dot = strrchr(path, '.');
  if (dot && !strchr(dot, '/'))
    for (size_t i = 0; i < HW_ARRAY_SIZE(hw_web_types); i++)
      if (!strcasecmp(dot, hw_web_types[i].ext))
        return hw_web_types[i].type;
  return "application/octet-stream";
}

/* %-decodes the path and checks every segment; 0 or -EINVAL. */
static int hw_web_static_path(const char *raw, char *out, size_t cap) {
  size_t o = 0;
  for (const char *p = raw; *p; p++) {
    int c = (unsigned char)*p;
    if (c == '%') {
      unsigned v;
      if (!p[1] || !p[2] || sscanf(p + 1, "%2x", &v) != 1 || !strchr("0123456789abcdefABCDEF", p[2]))
        return -EINVAL;
      c = (int)v;
      p += 2;
    }
    if (c == 0 || c == '\\' || c < 0x20 || o + 1 >= cap)
      return -EINVAL;
    out[o++] = (char)c;
  }
  out[o] = 0;
  for (const char *s = out; *s;) {
    size_t n = strcspn(s, "/");
    if (n == 0 || s[0] == '.')
      return -EINVAL; /* empty segment, ".", "..", hidden files */
    s += n + (s[n] == '/');
  }
  return 0;
}

void hw_web_static(hw_http_req *req, void *arg) {
  hw_web *app = arg;
  const char *rest = hw_http_param(req, "*");
  char rel[1024], full[PATH_MAX + 1100], real[PATH_MAX];
  char *buf = NULL;
  int fd = -1, status = 404;
  const char *msg = "not found";
  if (!strncmp(hw_http_path(req), "/api/", 5) || !app->web_root[0] || !rest)
    goto fail;
  if (!rest[0])
    rest = "index.html";
  if (hw_web_static_path(rest, rel, sizeof rel)) {
    status = 400;
    msg = "bad path";
    goto fail;
  }
  snprintf(full, sizeof full, "%s/%s", app->web_root, rel);
  size_t rootlen = strlen(app->web_root);
  if (!realpath(full, real) || strncmp(real, app->web_root, rootlen) || real[rootlen] != '/')
    goto fail;
  fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode))
    goto fail;
  if ((size_t)st.st_size > HW_WEB_STATIC_MAX || !(buf = malloc((size_t)st.st_size + 1))) {
    status = 500;
    msg = "file too big";
    goto fail;
  }
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t k = read(fd, buf + got, (size_t)st.st_size - got);
    if (k <= 0)
      break;
    got += (size_t)k;
  }
  if (got != (size_t)st.st_size) {
    status = 500;
    msg = "read error";
    goto fail;
  }
  if (hw_http_add_header(req, "X-Content-Type-Options", "nosniff") ||
      hw_http_add_header(req, "Cache-Control", "no-cache")) {
  }
  hw_web_count(app, NULL, 200, 0);
  if (hw_http_respond(req, 200, hw_web_type_of(real), buf, got)) {
  }
  goto cleanup;
fail:
  hw_web_count(app, NULL, status, 0);
  if (hw_http_respond_error(req, status, msg)) {
  }
cleanup:
  free(buf);
  if (fd >= 0)
    close(fd);
}
