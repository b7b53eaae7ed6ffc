#include "registry/terminal.h"

#include <stdlib.h>
#include <string.h>

int hw_terminal_id_check(const char *id, size_t len) {
  if (len == 0 || len > HW_TERMINAL_ID_MAX)
    return -EINVAL;
  for (size_t i = 0; i < len; i++) {
    char c = id[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
          c == '-'))
      return -EINVAL;
  }
  return 0;
}

int hw_stored_tid_check(const char *id, size_t len) {
  if (len <= HW_TERMINAL_ID_MAX && hw_terminal_id_check(id, len) == 0)
    return 0;
  size_t pl = sizeof HW_TID_WIDE_PREFIX - 1;
  if (len <= pl || len > HW_TID_WIDE_MAX || memcmp(id, HW_TID_WIDE_PREFIX, pl) != 0)
    return -EINVAL;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)id[i] < 0x20 || id[i] == 0x7f)
      return -EINVAL;
  return 0;
}

hw_terminal *hw_registry_find(hw_registry *r, const char *id) {
  hw_terminal *t = NULL;
  HASH_FIND_STR(r->by_id, id, t);
  return t;
}

int hw_registry_get(hw_registry *r, const char *id, hw_terminal **out) {
  hw_terminal *t = hw_registry_find(r, id);
  if (!t) {
    size_t len = strnlen(id, HW_TID_WIDE_MAX + 1);
    if (len == 0 || len > HW_TID_WIDE_MAX ||
        (len > HW_TERMINAL_ID_MAX && hw_stored_tid_check(id, len)))
      return -EINVAL;
    /* The id lives right after the record, in the same allocation: a 12-digit JT/T 808 id
     * costs 13 bytes instead of a fixed 33, and an 84-byte JT/T 809 id does not make every
     * record pay for it. */
    t = calloc(1, sizeof *t + len + 1);
    if (!t)
      return -ENOMEM;
    t->id = (char *)(t + 1);
    memcpy(t->id, id, len + 1);
    HASH_ADD_KEYPTR(hh, r->by_id, t->id, len, t);
    r->count++;
  }
  *out = t;
  return 0;
}

void hw_registry_free(hw_registry *r) {
  hw_terminal *t, *tmp;
  HASH_ITER(hh, r->by_id, t, tmp) {
    HASH_DEL(r->by_id, t);
    free(t);
  }
  r->count = 0;
}
