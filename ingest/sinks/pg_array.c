#include "sinks/pg_array.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for `more` bytes and the NUL. */
static char *hw_pg_array_room(hw_pg_array *a, size_t more) {
  if (a->failed)
    return NULL;
  if (a->len + more + 1 > a->cap) {
    size_t cap = a->cap ? a->cap : 256;
    while (cap < a->len + more + 1)
      cap *= 2;
    char *p = realloc(a->p, cap);
    if (!p) {
      a->failed = 1;
      return NULL;
    }
    a->p = p;
    a->cap = cap;
  }
  return a->p + a->len;
}

/* '{' before the first element, ',' before the others. */
static void hw_pg_array_sep(hw_pg_array *a) {
  char *o = hw_pg_array_room(a, 1);
  if (!o)
    return;
  *o = a->n++ ? ',' : '{';
  a->p[++a->len] = '\0';
}

void hw_pg_array_raw(hw_pg_array *a, const char *s, size_t n) {
  hw_pg_array_sep(a);
  char *o = hw_pg_array_room(a, n);
  if (!o)
    return;
  memcpy(o, s, n);
  a->len += n;
  a->p[a->len] = '\0';
}

void hw_pg_array_text(hw_pg_array *a, const char *s, size_t n) {
  hw_pg_array_sep(a);
  char *o = hw_pg_array_room(a, 2 * n + 2);
  if (!o)
    return;
  char *start = o;
  *o++ = '"';
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '"' || s[i] == '\\')
      *o++ = '\\';
    *o++ = s[i];
  }
  *o++ = '"';
  a->len += (size_t)(o - start);
  a->p[a->len] = '\0';
}

void hw_pg_array_i64(hw_pg_array *a, int64_t v) {
  char tmp[24];
  int n = snprintf(tmp, sizeof tmp, "%lld", (long long)v);
  hw_pg_array_raw(a, tmp, (size_t)n);
}

void hw_pg_array_null(hw_pg_array *a) { hw_pg_array_raw(a, "NULL", 4); }

void hw_pg_array_hex(hw_pg_array *a, const uint8_t *b, size_t n) {
  static const char digits[] = "0123456789abcdef";
  hw_pg_array_sep(a);
  char *o = hw_pg_array_room(a, 2 * n + 2);
  if (!o)
    return;
  *o++ = '"';
  for (size_t i = 0; i < n; i++) {
    *o++ = digits[b[i] >> 4];
    *o++ = digits[b[i] & 15];
  }
  *o = '"';
  a->len += 2 * n + 2;
  a->p[a->len] = '\0';
}

const char *hw_pg_array_finish(hw_pg_array *a) {
  if (a->n == 0) {
    char *o = hw_pg_array_room(a, 1);
    if (o) {
      *o = '{';
      a->p[++a->len] = '\0';
    }
  }
  char *o = hw_pg_array_room(a, 1);
  if (!o)
    return NULL;
  *o = '}';
  a->p[++a->len] = '\0';
  return a->p;
}

void hw_pg_array_free(hw_pg_array *a) {
  free(a->p);
  memset(a, 0, sizeof *a);
}
