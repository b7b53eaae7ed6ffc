/* libFuzzer target for the PROXY protocol v2 header parser (net/proxy_v2.c), pure.
 *
 * Input: byte 0 picks where the rest is split into two reads, as hw_session_proxy (net/session.c)
 * feeds a header that arrives in pieces; the rest is the connection's first bytes. Oracles,
 * beyond "no crash, no sanitizer report" (the input is copied into a buffer of exactly its
 * length, so a read past it is reported):
 *   - the result is a length within the input and within HW_PROXY_V2_MAX, 0, -EPROTO or
 *     -EMSGSIZE, and 0 only for an input shorter than HW_PROXY_V2_MAX;
 *   - a prefix of an input never gets a different verdict than "need more" or the whole input's
 *     verdict: the first piece of a split says 0, or the same as the whole;
 *   - a header accepted once is accepted again from a copy of exactly its bytes, with the same
 *     address, and re-built from what was parsed gives the same source text. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/proxy_v2.h"

#define CHECK(c) \
  do { \
    if (!(c)) \
      abort(); \
  } while (0)

static int parse_exact(const uint8_t *data, size_t len, hw_proxy_v2 *out) {
  uint8_t *b = malloc(len ? len : 1);
  CHECK(b);
  memcpy(b, data, len);
  int r = hw_proxy_v2_parse(b, len, out);
  free(b);
  return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  size_t split = data[0];
  data++, size--;
  hw_proxy_v2 whole, again;
  int r = parse_exact(data, size, &whole);
  CHECK(r <= (int)size && r <= HW_PROXY_V2_MAX);
  CHECK(r >= 0 || r == -EPROTO || r == -EMSGSIZE);
  if (r == 0)
    CHECK(size < HW_PROXY_V2_MAX);
  if (split > size)
    split = size;
  int first = parse_exact(data, split, NULL);
  CHECK(first == 0 || first == r);
  if (r > 0) {
    CHECK(parse_exact(data, (size_t)r, &again) == r);
    CHECK(again.command == whole.command && again.has_addr == whole.has_addr);
    char a[64], b[64];
    hw_proxy_v2_format(&whole, a, sizeof a);
    hw_proxy_v2_format(&again, b, sizeof b);
    CHECK(strcmp(a, b) == 0);
  }
  return 0;
}
