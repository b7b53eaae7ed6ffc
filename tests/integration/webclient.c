/* The tests' HTTP client (webclient.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "harness.h"
#include "webclient.h"

void wc_request(int port, const char *method, const char *path, const char *extra,
                const void *body, size_t blen, wc_resp *out) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  struct timeval tv = {.tv_sec = 20};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char req[4096];
  int n = snprintf(req, sizeof req,
                   "%s %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n%sContent-Length: %zu\r\n\r\n",
                   method, path, extra ? extra : "", blen);
  assert_true(n > 0 && n < (int)sizeof req);
  assert_int_equal(write(fd, req, (size_t)n), n);
  for (size_t off = 0; off < blen;) {
    /* MSG_NOSIGNAL: a server closing on a refused body is an answer, not a SIGPIPE */
    ssize_t w = send(fd, (const char *)body + off, blen - off, MSG_NOSIGNAL);
    if (w <= 0)
      break; /* a refused huge body is cut short by the server closing */
    off += (size_t)w;
  }
  size_t cap = 1 << 16, len = 0;
  char *raw = malloc(cap);
  assert_non_null(raw);
  ssize_t k;
  while ((k = read(fd, raw + len, cap - 1 - len)) > 0) {
    len += (size_t)k;
    if (len + 1 == cap) {
      raw = realloc(raw, cap *= 2);
      assert_non_null(raw);
    }
  }
  close(fd);
  raw[len] = 0;
  assert_int_equal(sscanf(raw, "HTTP/1.1 %d", &out->status), 1);
  char *sep = memmem(raw, len, "\r\n\r\n", 4);
  assert_non_null(sep);
  snprintf(out->head, sizeof out->head, "%.*s", (int)(sep - raw + 2), raw);
  free(out->body);
  out->len = len - (size_t)(sep + 4 - raw);
  out->body = malloc(out->len + 1);
  assert_non_null(out->body);
  memcpy(out->body, sep + 4, out->len);
  out->body[out->len] = 0;
  free(raw);
}

const char *wc_header(const wc_resp *r, const char *name) {
  static char val[1024];
  char key[128];
  snprintf(key, sizeof key, "\r\n%s: ", name);
  const char *p = strcasestr(r->head, key);
  if (!p)
    return NULL;
  p += strlen(key);
  size_t n = strcspn(p, "\r\n");
  snprintf(val, sizeof val, "%.*s", (int)n, p);
  return val;
}

void wc_post_json(int port, const char *auth, const char *path, const char *json, wc_resp *out) {
  char extra[512];
  snprintf(extra, sizeof extra, "%sContent-Type: application/json\r\n", auth ? auth : "");
  wc_request(port, "POST", path, extra, json, strlen(json), out);
}

void wc_login(int port, const char *user, const char *pw, wc_resp *out, char *cookie,
              size_t cap) {
  char body[256];
  snprintf(body, sizeof body, "{\"user\":\"%s\",\"password\":\"%s\"}", user, pw);
  wc_post_json(port, NULL, "/api/v1/login", body, out);
  assert_int_equal(out->status, 200);
  const char *sc = wc_header(out, "Set-Cookie");
  assert_non_null(sc);
  snprintf(cookie, cap, "Cookie: %.*s\r\n", (int)strcspn(sc, ";"), sc);
}

void wc_wait_ready(int port, wc_resp *out) {
  assert_int_equal(hw_test_wait_port(port, 20000), 0);
  for (int i = 0; i < 200; i++) {
    wc_request(port, "GET", "/readyz", NULL, NULL, 0, out);
    if (out->status == 200)
      break;
    usleep(50 * 1000);
  }
  assert_int_equal(out->status, 200);
}

void wc_user_add(const char *name, const char *role, const char *regions, const char *pw) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "%s user add %s --role %s --region %s %s", HW_BINARY, name, role,
           regions, pw ? "--password-stdin" : "");
  FILE *p = popen(cmd, "w");
  assert_non_null(p);
  if (pw)
    fprintf(p, "%s\n", pw);
  assert_int_equal(pclose(p), 0);
}

void wc_promtool_check(const char *text, size_t len) {
  char path[] = "/tmp/hw_metrics_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, len), (ssize_t)len);
  close(fd);
  char cmd[256];
  /* promtool check metrics reads stdin; it exits non-zero on format errors and on lint findings */
  snprintf(cmd, sizeof cmd, "promtool check metrics < %s > %s.out 2>&1", path, path);
  int rc = system(cmd);
  if (rc != 0) {
    char out[4096] = "";
    snprintf(cmd, sizeof cmd, "%s.out", path);
    FILE *f = fopen(cmd, "r");
    if (f) {
      size_t k = fread(out, 1, sizeof out - 1, f);
      out[k] = 0;
      fclose(f);
    }
    fail_msg("promtool check metrics failed (%d):\n%s", rc, out);
  }
  unlink(path);
  snprintf(cmd, sizeof cmd, "%s.out", path);
  unlink(cmd);
}
