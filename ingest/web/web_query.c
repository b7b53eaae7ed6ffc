/* Query-string parameters and region codes: decoding and checking what clients send before any
 * of it reaches a query (where it is a parameter anyway). Owns nothing. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/fix.h"
#include "base/text.h"
#include "web/web_internal.h"

static int hw_web_hex(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Decodes s[0..n) (%XX and '+') into out; -EINVAL on a bad escape or when it does not fit. */
static int hw_web_urldecode(const char *s, size_t n, char *out, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    int c = (unsigned char)s[i];
    if (c == '+') {
      c = ' ';
    } else if (c == '%') {
      if (i + 2 >= n)
        return -EINVAL;
      int a = hw_web_hex(s[i + 1]), b = hw_web_hex(s[i + 2]);
      if (a < 0 || b < 0)
        return -EINVAL;
      c = a * 16 + b;
      i += 2;
    }
    if (o + 1 >= cap)
      return -EINVAL;
    out[o++] = (char)c;
  }
  out[o] = 0;
  /* Text only: no NUL or other control characters, valid UTF-8. */
  for (size_t i = 0; i < o; i++)
    if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
      return -EINVAL;
  if (!hw_utf8_valid(out, o))
    return -EINVAL;
  return 0;
}

int hw_web_qparam(hw_web_call *call, const char *name, char *out, size_t cap) {
  const char *q = hw_http_query(call->req);
  size_t nlen = strlen(name);
  while (q && *q) {
    size_t n = strcspn(q, "&");
    const char *eq = memchr(q, '=', n);
    size_t klen = eq ? (size_t)(eq - q) : n;
    if (klen == nlen && !memcmp(q, name, nlen)) {
      const char *v = eq ? eq + 1 : q + n;
      size_t vlen = (size_t)(q + n - v);
      return hw_web_urldecode(v, vlen, out, cap) ? -EINVAL : 1;
    }
    q += n;
    if (*q == '&')
      q++;
  }
  out[0] = 0;
  return 0;
}

int hw_web_region_code_ok(const char *s) { return hw_user_region_ok(s); }

int hw_web_tid_ok(const char *s) { return s && hw_terminal_id_check(s, strlen(s)) == 0; }

void hw_web_region_pattern(const char *code, char out[8]) {
  if (!strcmp(code, "000000"))
    strcpy(out, "%");
  else if (!strcmp(code + 2, "0000"))
    snprintf(out, 8, "%.2s%%", code);
  else if (!strcmp(code + 4, "00"))
    snprintf(out, 8, "%.4s%%", code);
  else
    snprintf(out, 8, "%.6s", code);
}

int hw_web_user_sees(const hw_web_user *user, const char *region) {
  for (size_t i = 0; i < user->nregions; i++) {
    char pat[8];
    hw_web_region_pattern(user->regions[i], pat);
    size_t n = strcspn(pat, "%");
    if (pat[n] == '%' ? !strncmp(region, pat, n) : !strcmp(region, pat))
      return 1;
  }
  return 0;
}

void hw_web_add_pred(char *where, size_t cap, const char *fmt, int param) {
  size_t off = strlen(where);
  snprintf(where + off, cap - off, " AND ");
  off = strlen(where);
  snprintf(where + off, cap - off, fmt, param);
}

int hw_web_cursor_parse(hw_web_call *call, const char *cursor, char us[21], char id[21]) {
  us[0] = id[0] = 0;
  if (cursor[0] && (sscanf(cursor, "%20[0-9]_%20[0-9]", us, id) != 2 ||
                    strlen(us) + strlen(id) + 1 != strlen(cursor))) {
    hw_web_reply_error(call, 400, "cursor is not one this API gave");
    return -EINVAL;
  }
  return 0;
}

int hw_web_list_filters(hw_web_call *call, const char *tid, const char *region, char regpat[8],
                        const char *cursor, char us[21], char id[21]) {
  regpat[0] = 0;
  if (tid[0] && !hw_web_tid_ok(tid)) {
    hw_web_reply_error(call, 400, "terminal_id is 1 to 32 letters, digits, _ or -");
    return -EINVAL;
  }
  if (region[0] && !hw_web_region_code_ok(region)) {
    hw_web_reply_error(call, 400, "region is a six-digit GB/T 2260 code");
    return -EINVAL;
  }
  if (hw_web_cursor_parse(call, cursor, us, id))
    return -EINVAL;
  if (region[0])
    hw_web_region_pattern(region, regpat);
  return 0;
}

void hw_web_add_keyset(char *where, size_t cap, const char *ts_col, const char *id_col,
                       int us_param) {
  size_t off = strlen(where);
  snprintf(where + off, cap - off,
           " AND (%s, %s) < (timestamptz 'epoch' + $%d::bigint * interval '1 microsecond', "
           "$%d::bigint)", ts_col, id_col, us_param, us_param + 1);
}
