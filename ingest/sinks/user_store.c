/* See user_store.h. */
#include "sinks/user_store.h"

#include <stdio.h>
#include <string.h>

#include "base/text.h"

int hw_user_name_ok(const char *s) {
  size_t n = strlen(s);
  return n >= 1 && n <= 64 &&
         strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.@-") == n;
}

int hw_user_role_ok(const char *s) {
  return !strcmp(s, "viewer") || !strcmp(s, "operator") || !strcmp(s, "admin");
}

int hw_user_region_ok(const char *s) {
  return strlen(s) == 6 && strspn(s, "0123456789") == 6;
}

int hw_user_regions_literal(const char (*codes)[8], size_t n, char *out, size_t cap) {
  size_t off = 0;
  if (cap < 3)
    return -E2BIG;
  out[off++] = '{';
  for (size_t i = 0; i < n; i++) {
    int k = snprintf(out + off, cap - off, "%s%s", i ? "," : "", codes[i]);
    if (k < 0 || (size_t)k >= cap - off)
      return -E2BIG;
    off += (size_t)k;
  }
  if (off + 2 > cap)
    return -E2BIG;
  out[off++] = '}';
  out[off] = 0;
  return 0;
}

int hw_user_hash_password(const char *pw, size_t len, char out[crypto_pwhash_STRBYTES]) {
  if (len == 0 || len > HW_USER_MAX_PASSWORD || memchr(pw, 0, len) || !hw_utf8_valid(pw, len))
    return -EINVAL;
  if (sodium_init() < 0)
    return -ENOMEM;
  if (crypto_pwhash_str(out, pw, len, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                        crypto_pwhash_MEMLIMIT_INTERACTIVE))
    return -ENOMEM;
  return 0;
}

int hw_user_token_new(char token[HW_USER_API_TOKEN_LEN + 1],
                      char hash_bytea[2 + 2 * HW_TOKEN_HASH_LEN + 1]) {
  char raw[HW_TOKEN_LEN + 1];
  uint8_t h[HW_TOKEN_HASH_LEN];
  int rc = hw_token_new(raw);
  if (rc)
    return rc;
  snprintf(token, HW_USER_API_TOKEN_LEN + 1, "%s%s", HW_USER_API_TOKEN_PREFIX, raw);
  sodium_memzero(raw, sizeof raw);
  hw_token_hash(token, strlen(token), h);
  hw_token_hash_bytea(h, hash_bytea);
  return 0;
}
