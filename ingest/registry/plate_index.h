/* Registry vehicles by (plate, colour): how JT/T 809 platforms name vehicles. Built once with
 * each registry snapshot (registry_cache.c), read-only after; pure (no I/O), so it is built on
 * the thread pool with the rest of the snapshot. Plates compare byte for byte (UTF-8 as stored). */
#ifndef HW_PLATE_INDEX_H
#define HW_PLATE_INDEX_H

#include "registry/registry.h"

typedef struct hw_plate_index hw_plate_index;

/* Indexes vehicles[0..n) (borrowed: they must outlive the index). A vehicle whose plate is empty
 * or longer than HW_PLATE_MAX is not indexed. 0, -ENOMEM, or -EPROTO when two vehicles share a
 * plate and colour (the vehicles table's key makes that impossible; never pick one silently),
 * with err saying which. */
int hw_plate_index_build(const hw_vehicle *vehicles, size_t n, hw_plate_index **out, char *err,
                         size_t errlen) HW_MUST_CHECK;
/* The vehicle, or NULL (also for a NULL index or plate). */
const hw_vehicle *hw_plate_index_find(const hw_plate_index *ix, const char *plate, uint8_t colour);
size_t hw_plate_index_count(const hw_plate_index *ix);
void hw_plate_index_free(hw_plate_index *ix);

#endif
