/* platforms rows into hw_jt809_platform (see platform_row.h). */
#include "registry/platform_row.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Text of a bigint column 0..UINT32_MAX. */
static int hw_platform_u32(const PGresult *res, int row, int col, uint32_t *out) {
  const char *s = PQgetvalue(res, row, col);
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end || v > 0xffffffffULL)
    return -EBADMSG;
  *out = (uint32_t)v;
  return 0;
}

static int hw_platform_text(const PGresult *res, int row, int col, char *out, size_t cap) {
  int n = PQgetlength(res, row, col);
  if (n < 0 || (size_t)n >= cap)
    return -EBADMSG;
  memcpy(out, PQgetvalue(res, row, col), (size_t)n);
  out[n] = 0;
  return 0;
}

int hw_platform_from_row(const PGresult *res, int row, hw_jt809_platform *out) {
  uint32_t version;
  memset(out, 0, sizeof *out);
  if (PQnfields(res) != 11 || row < 0 || row >= PQntuples(res))
    return -EBADMSG;
  if (hw_platform_text(res, row, 0, out->id, sizeof out->id) ||
      hw_platform_u32(res, row, 1, &out->user_id) ||
      hw_platform_u32(res, row, 2, &out->center_id) ||
      hw_platform_text(res, row, 3, out->password_hash, sizeof out->password_hash) ||
      hw_platform_u32(res, row, 4, &version) || (version != 2011 && version != 2019) ||
      hw_platform_text(res, row, 8, out->allow_addr, sizeof out->allow_addr))
    return -EBADMSG;
  out->version = (uint16_t)version;
  /* The schema keeps the three keys all set or all NULL. */
  out->has_keys = !PQgetisnull(res, row, 5);
  if (out->has_keys &&
      (hw_platform_u32(res, row, 5, &out->m1) || hw_platform_u32(res, row, 6, &out->ia1) ||
       hw_platform_u32(res, row, 7, &out->ic1)))
    return -EBADMSG;
  out->disabled = !strcmp(PQgetvalue(res, row, 9), "t");
  out->slave_local_ok = !strcmp(PQgetvalue(res, row, 10), "t");
  return 0;
}
