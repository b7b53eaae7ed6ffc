/* UTF-8 text from the outside world: the one validator and the one truncation helper every
 * layer uses (wire strings, CSV imports, database values). Strict UTF-8 as RFC 3629 and
 * PostgreSQL's UTF8 input define it: no overlong forms, no surrogates, nothing above U+10FFFF.
 * Pure functions; they own nothing. */
#ifndef HW_TEXT_H
#define HW_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* Length (1..4) of the well-formed character at s[0..len), or 0 when s does not start with one
 * (ill-formed, or cut short by len). len must be at least 1. */
size_t hw_utf8_char(const uint8_t *s, size_t len);

/* 1 when s[0..len) is well-formed UTF-8 (NUL bytes count as characters: callers that hand text
 * to PostgreSQL take len from strlen/strnlen), 0 otherwise. */
int hw_utf8_valid(const char *s, size_t len);

/* Copies the longest prefix of s[0..len) that fits in cap - 1 bytes and does not cut a character
 * in two into dst, NUL-terminated; returns the bytes copied. dst holds cap bytes (cap >= 1) and
 * must not overlap s. A valid s stays valid; the cut looks only at continuation bytes, so an
 * invalid s is cut at a byte boundary no worse than it came. */
size_t hw_utf8_truncate(char *dst, size_t cap, const char *s, size_t len);

/* Columns the NUL-terminated UTF-8 string s takes in a terminal: East Asian wide and full-width
 * characters take two, everything else one (an ill-formed byte counts as one). */
size_t hw_utf8_display_width(const char *s);

#endif
