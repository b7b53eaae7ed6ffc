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

hw_terminal *hw_registry_find(hw_registry *r, const char *id) {
  hw_terminal *t = NULL;
  HASH_FIND_STR(r->by_id, id, t);
  return t;
}

int hw_registry_get(hw_registry *r, const char *id, hw_terminal **out) {
  hw_terminal *t = hw_registry_find(r, id);
  if (!t) {
    size_t len = strlen(id);
    if (len > HW_TERMINAL_ID_MAX)
      return -EINVAL;
    t = calloc(1, sizeof *t);
    if (!t)
      return -ENOMEM;
    memcpy(t->id, id, len + 1);
    HASH_ADD_STR(r->by_id, id, t);
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
