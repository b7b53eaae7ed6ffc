/* Registry vehicles by plate and colour (see plate_index.h). */
#include "registry/plate_index.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

/* Key: the plate's bytes, a NUL, the colour byte (plates hold no NUL, so keys cannot collide). */
#define HW_PKEY_MAX (HW_PLATE_MAX + 2)

typedef struct hw_pkey {
  const hw_vehicle *item;
  char key[HW_PKEY_MAX];
  UT_hash_handle hh;
} hw_pkey;

struct hw_plate_index {
  hw_pkey *head; /* uthash */
  hw_pkey *keys; /* owned array, one per indexed vehicle */
  size_t count;
};

/* Writes the key of (plate, colour); its length, or 0 when the plate cannot be indexed. */
static size_t hw_pkey_make(char out[HW_PKEY_MAX], const char *plate, uint8_t colour) {
  size_t n = strnlen(plate, HW_PLATE_MAX + 1);
  if (n == 0 || n > HW_PLATE_MAX)
    return 0;
  memcpy(out, plate, n);
  out[n] = 0;
  out[n + 1] = (char)colour;
  return n + 2;
}

const hw_vehicle *hw_plate_index_find(const hw_plate_index *ix, const char *plate, uint8_t colour) {
  char key[HW_PKEY_MAX];
  hw_pkey *k = NULL;
  size_t n;
  if (!ix || !plate || !(n = hw_pkey_make(key, plate, colour)))
    return NULL;
  HASH_FIND(hh, ix->head, key, n, k);
  return k ? k->item : NULL;
}

size_t hw_plate_index_count(const hw_plate_index *ix) { return ix ? ix->count : 0; }

void hw_plate_index_free(hw_plate_index *ix) {
  if (!ix)
    return;
  HASH_CLEAR(hh, ix->head);
  free(ix->keys);
  free(ix);
}

int hw_plate_index_build(const hw_vehicle *vehicles, size_t n, hw_plate_index **out, char *err,
                         size_t errlen) {
  hw_plate_index *ix = calloc(1, sizeof *ix);
  if (!ix || !(ix->keys = calloc(n + 1, sizeof *ix->keys))) {
    free(ix);
    return -ENOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    const hw_vehicle *v = &vehicles[i];
    hw_pkey *k = &ix->keys[ix->count];
    size_t kl = hw_pkey_make(k->key, v->plate, v->plate_colour);
    if (!kl)
      continue;
    if (hw_plate_index_find(ix, v->plate, v->plate_colour)) {
      snprintf(err, errlen, "plate %s colour %u is on two vehicles", v->plate, v->plate_colour);
      hw_plate_index_free(ix);
      return -EPROTO;
    }
    k->item = v;
    HASH_ADD(hh, ix->head, key, kl, k);
    ix->count++;
  }
  *out = ix;
  return 0;
}
