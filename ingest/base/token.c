#include "base/token.h"

#include <sodium.h>

int hw_token_new(char out[HW_TOKEN_LEN + 1]) {
  if (sodium_init() < 0)
    return -EIO;
  uint8_t raw[HW_TOKEN_LEN / 2];
  randombytes_buf(raw, sizeof raw);
  sodium_bin2hex(out, HW_TOKEN_LEN + 1, raw, sizeof raw);
  return 0;
}

void hw_token_hash(const char *token, size_t len, uint8_t out[HW_TOKEN_HASH_LEN]) {
  crypto_hash_sha256(out, (const unsigned char *)token, len);
}

int hw_token_hash_equal(const uint8_t a[HW_TOKEN_HASH_LEN], const uint8_t b[HW_TOKEN_HASH_LEN]) {
  return sodium_memcmp(a, b, HW_TOKEN_HASH_LEN) == 0;
}

void hw_token_hash_bytea(const uint8_t h[HW_TOKEN_HASH_LEN], char out[2 + 2 * HW_TOKEN_HASH_LEN + 1]) {
  out[0] = '\\';
  out[1] = 'x';
  sodium_bin2hex(out + 2, 2 * HW_TOKEN_HASH_LEN + 1, h, HW_TOKEN_HASH_LEN);
}
