/* Builds PostgreSQL array literals ('{"a","b",NULL}') for text parameters: one statement then
 * carries a whole batch as `unnest($1::text[], $2::bigint[], ...)`. Elements are quoted and
 * escaped, so any byte string but NUL is safe. A failed allocation is sticky: append freely and
 * check once at hw_pg_array_finish. */
#ifndef HW_PG_ARRAY_H
#define HW_PG_ARRAY_H

#include "base/common.h"

typedef struct hw_pg_array {
  char *p; /* owned: the literal so far, NUL-terminated */
  size_t len, cap;
  size_t n; /* elements */
  int failed;
} hw_pg_array;

/* A quoted element of the n bytes at s. */
void hw_pg_array_text(hw_pg_array *a, const char *s, size_t n);
/* An unquoted element (numbers, t/f): s must need no quoting. */
void hw_pg_array_raw(hw_pg_array *a, const char *s, size_t n);
void hw_pg_array_i64(hw_pg_array *a, int64_t v);
void hw_pg_array_null(hw_pg_array *a);
/* A quoted element: the n bytes at b as lower-case hex (for decode(x, 'hex')). */
void hw_pg_array_hex(hw_pg_array *a, const uint8_t *b, size_t n);

/* Closes the literal ("{}" when empty) and returns it (owned by a), or NULL when an allocation
 * failed. */
const char *hw_pg_array_finish(hw_pg_array *a);
/* Frees the literal; a may be reused. */
void hw_pg_array_free(hw_pg_array *a);

#endif
