/* In-memory spatial index over hw_zone polygons (outer ring + holes, even-odd rule).
 *
 * A uniform grid over the zones' extent. Each cell lists the zones that touch it, marked either
 * "full" (the closed cell lies inside the polygon: no test at query time) or "partial" (an edge
 * touches the cell). For partial cells the point-in-polygon test only looks at the zone's edges
 * that overlap the cell's latitude band, which are all a horizontal ray from the point can cross.
 * A query is one cell lookup plus a few exact integer edge tests.
 *
 * Boundary rule: a point on an edge (outer ring or hole) is inside. All arithmetic on
 * coordinates is exact (64-bit integer cross products on 1e-6 degree integers). */
#ifndef HW_ZONE_INDEX_H
#define HW_ZONE_INDEX_H

#include "registry/registry.h"

typedef struct hw_zone_index hw_zone_index;

/* Builds an index over zones[0..n). The zones array (and every zone's pts/ring_starts) is
 * borrowed and must outlive the index; the index stores pointers into it. cell_e6 is the grid
 * cell size in 1e-6 degrees (0 = default 0.01 degree, about 1.1 km); it is enlarged when the
 * extent would need more than about 2 million cells. Malformed zones (fewer than 3 points in a
 * ring, ring_starts not starting at 0 or not increasing, coordinates out of range) are left out
 * and counted (hw_zone_index_skipped). -ENOMEM, -EOVERFLOW (absurdly many edges). */
int hw_zone_index_build(const hw_zone *zones, size_t n, uint32_t cell_e6, hw_zone_index **out)
    HW_MUST_CHECK;
void hw_zone_index_free(hw_zone_index *ix);

/* Zones containing the point (boundary included), in no particular order. Writes at most cap
 * pointers to out and returns how many zones matched (which may exceed cap). */
size_t hw_zone_index_query(const hw_zone_index *ix, int32_t lat_e6, int32_t lon_e6,
                           const hw_zone **out, size_t cap);

/* Grid cell of a point, HW_ZONE_NO_CELL outside the grid (no zone there). With
 * hw_zone_index_cell_empty a caller can remember that a moving object is still in a cell no
 * zone touches and skip the query; neither touches more than the index header and one offset. */
#define HW_ZONE_NO_CELL UINT32_MAX
uint32_t hw_zone_index_cell(const hw_zone_index *ix, int32_t lat_e6, int32_t lon_e6);
int hw_zone_index_cell_empty(const hw_zone_index *ix, uint32_t cell);

size_t hw_zone_index_skipped(const hw_zone_index *ix);
size_t hw_zone_index_count(const hw_zone_index *ix); /* zones indexed */

/* Brute-force test against one zone (all its edges): 1 inside or on the boundary, 0 outside or
 * malformed zone. The reference the index is tested against. */
int hw_zone_contains(const hw_zone *z, int32_t lat_e6, int32_t lon_e6);

#endif
