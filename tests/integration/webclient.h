/* A blocking HTTP/1.1 client for the tests of haulwatch web: one request per connection to
 * 127.0.0.1, the whole answer read until the server closes. Test failures are cmocka asserts, so
 * callers need no error paths. Shared by test_web.c and test_web_admin.c so that both read
 * answers the same way. */
#ifndef HW_TEST_WEBCLIENT_H
#define HW_TEST_WEBCLIENT_H

#include <stddef.h>

typedef struct wc_resp {
  int status;
  char head[8192]; /* status line and headers, ending in one CRLF */
  char *body;      /* owned, NUL-terminated; wc_request frees the previous one */
  size_t len;
} wc_resp;

/* One request on its own connection to 127.0.0.1:port; the whole answer in *out.
 * extra: more header lines, each ending in CRLF (or NULL). A body the server refuses part way
 * is cut short when it closes; the answer is read all the same. */
void wc_request(int port, const char *method, const char *path, const char *extra,
                const void *body, size_t blen, wc_resp *out);

/* The value of the first header `name` (case-insensitive) in r, or NULL (static buffer). */
const char *wc_header(const wc_resp *r, const char *name);

/* POST of a JSON body with the header lines of auth (or NULL). */
void wc_post_json(int port, const char *auth, const char *path, const char *json, wc_resp *out);

/* Logs user in (asserting 200) and writes "Cookie: <session>\r\n" to cookie; the login answer,
 * with its Set-Cookie header, stays in *out for the caller's own checks. */
void wc_login(int port, const char *user, const char *pw, wc_resp *out, char *cookie,
              size_t cap);

/* Waits (up to 20 s) for port to listen and then for GET /readyz to answer 200, which it does
 * once PostgreSQL and Redis are connected (503 before); fails the test otherwise. The last
 * /readyz answer stays in *out. */
void wc_wait_ready(int port, wc_resp *out);

/* `haulwatch user add` through the CLI (HAULWATCH_PG from the environment); pw NULL: no password. */
void wc_user_add(const char *name, const char *role, const char *regions, const char *pw);

/* Fails the test unless `promtool check metrics` accepts the exposition text (len bytes). */
void wc_promtool_check(const char *text, size_t len);

#endif
