/* Terminal tokens: 32 random bytes shown as 64 hex characters. Only their SHA-256 is stored; a
 * plain hash suffices because tokens are random and long (nothing to brute-force a dictionary
 * against), and it keeps a Hello to one hash. */
#ifndef HW_TOKEN_H
#define HW_TOKEN_H

#include "base/common.h"

#define HW_TOKEN_LEN 64
#define HW_TOKEN_HASH_LEN 32

/* Writes a new NUL-terminated token into out. */
int hw_token_new(char out[HW_TOKEN_LEN + 1]) HW_MUST_CHECK;
void hw_token_hash(const char *token, size_t len, uint8_t out[HW_TOKEN_HASH_LEN]);
/* Constant-time comparison of two hashes: 1 when equal. */
int hw_token_hash_equal(const uint8_t a[HW_TOKEN_HASH_LEN], const uint8_t b[HW_TOKEN_HASH_LEN]);
/* Hex text of a hash as PostgreSQL's bytea input wants it ("\\x..."), NUL-terminated. */
void hw_token_hash_bytea(const uint8_t h[HW_TOKEN_HASH_LEN], char out[2 + 2 * HW_TOKEN_HASH_LEN + 1]);

#endif
