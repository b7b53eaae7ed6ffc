#include "registry/zone_index.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define HW_ZONE_DEFAULT_CELL_E6 10000
#define HW_ZONE_MAX_CELLS (1u << 21)

typedef struct hw_zedge {
  int32_t ax, ay, bx, by; /* x = lon, y = lat, 1e-6 degrees */
} hw_zedge;

typedef struct hw_zmeta {
  uint32_t r0, r1, c0, c1; /* cell range of the zone's bounding box, inclusive */
  uint32_t rowoff_base;    /* index into ix->rowoff of row r0 */
  uint8_t valid;
} hw_zmeta;

struct hw_zone_index {
  const hw_zone *zones; /* borrowed */
  size_t nzones;
  size_t nindexed, skipped;
  int64_t x0, y0, cell;
  uint32_t cols, rows;
  uint32_t *cell_off;   /* owned: cols*rows + 1 offsets into entries */
  uint32_t *entries;    /* owned: zone index << 1 | full */
  hw_zmeta *meta;       /* owned: one per zone */
  uint32_t *rowoff;     /* owned: per zone (rows + 1) offsets into edges */
  hw_zedge *edges;      /* owned: each zone's edges, grouped by the rows they overlap */
};

/* --- exact point-in-polygon ---------------------------------------------------------------- */

/* 1 when p lies on the closed segment ab. */
static int hw_on_segment(int64_t px, int64_t py, int64_t ax, int64_t ay, int64_t bx, int64_t by) {
  int64_t cross = (bx - ax) * (py - ay) - (by - ay) * (px - ax);
  if (cross != 0)
    return 0;
  return px >= (ax < bx ? ax : bx) && px <= (ax < bx ? bx : ax) && py >= (ay < by ? ay : by) &&
         py <= (ay < by ? by : ay);
}

/* 1 when the ray from p towards +x crosses edge ab (half-open in y, so a vertex on the ray is
 * counted once). Exact: compares px with the intersection by cross-multiplying. */
static int hw_ray_crosses(int64_t px, int64_t py, int64_t ax, int64_t ay, int64_t bx, int64_t by) {
  if ((ay > py) == (by > py))
    return 0;
  int64_t dy = by - ay;
  int64_t lhs = (px - ax) * dy, rhs = (py - ay) * (bx - ax);
  return dy > 0 ? lhs < rhs : lhs > rhs;
}

static int hw_zone_valid(const hw_zone *z) {
  if (!z->pts || !z->ring_starts || z->nrings == 0 || z->npts < 3 || z->ring_starts[0] != 0)
    return 0;
  for (size_t r = 0; r < z->nrings; r++) {
    size_t s = z->ring_starts[r];
    size_t e = r + 1 < z->nrings ? z->ring_starts[r + 1] : z->npts;
    if (e > z->npts || e < s || e - s < 3)
      return 0;
  }
  for (size_t i = 0; i < z->npts; i++) {
    int32_t x = z->pts[2 * i], y = z->pts[2 * i + 1];
    if (x < -180000000 || x > 180000000 || y < -90000000 || y > 90000000)
      return 0;
  }
  return 1;
}

/* Runs BODY for every edge (AX,AY)-(BX,BY) of z; rings are closed implicitly. */
#define HW_ZONE_FOREACH_EDGE(z, AX, AY, BX, BY, ...)                                     \
  for (size_t r_ = 0; r_ < (z)->nrings; r_++) {                                          \
    size_t s_ = (z)->ring_starts[r_];                                                    \
    size_t e_ = r_ + 1 < (z)->nrings ? (z)->ring_starts[r_ + 1] : (z)->npts;             \
    for (size_t i_ = s_; i_ < e_; i_++) {                                                \
      size_t j_ = i_ + 1 < e_ ? i_ + 1 : s_;                                             \
      int32_t AX = (z)->pts[2 * i_], AY = (z)->pts[2 * i_ + 1];                          \
      int32_t BX = (z)->pts[2 * j_], BY = (z)->pts[2 * j_ + 1];                          \
      __VA_ARGS__                                                                        \
    }                                                                                    \
  }

int hw_zone_contains(const hw_zone *z, int32_t lat_e6, int32_t lon_e6) {
  if (!z || !hw_zone_valid(z))
    return 0;
  int inside = 0;
  HW_ZONE_FOREACH_EDGE(z, ax, ay, bx, by, {
    if (hw_on_segment(lon_e6, lat_e6, ax, ay, bx, by))
      return 1;
    inside ^= hw_ray_crosses(lon_e6, lat_e6, ax, ay, bx, by);
  })
  return inside;
}

/* --- build ----------------------------------------------------------------------------------- */

static int hw_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static uint32_t hw_cell_of(int64_t v, int64_t origin, int64_t cell) {
  return (uint32_t)((v - origin) / cell);
}

/* A growable array of uint32 (cell << 32 would not fit: keep cell and entry in two arrays). */
typedef struct hw_u32vec {
  uint32_t *v;
  size_t n, cap;
} hw_u32vec;

static int hw_u32vec_push(hw_u32vec *a, uint32_t x) {
  if (a->n == a->cap) {
    size_t cap = a->cap ? a->cap * 2 : 1024;
    uint32_t *v = realloc(a->v, cap * sizeof *v);
    if (!v)
      return -ENOMEM;
    a->v = v;
    a->cap = cap;
  }
  a->v[a->n++] = x;
  return 0;
}

/* Fills ix->meta[zi] rows' edge lists (already sized) and registers the zone's cells. */
static int hw_zone_index_add(hw_zone_index *ix, size_t zi, hw_u32vec *cells, hw_u32vec *ents) {
  const hw_zone *z = &ix->zones[zi];
  hw_zmeta *m = &ix->meta[zi];
  uint32_t nrows = m->r1 - m->r0 + 1, ncols = m->c1 - m->c0 + 1;
  int64_t c = ix->cell;
  int rc = -ENOMEM;
  uint8_t *partial = calloc(ncols, 1);
  double *xs = NULL;
  size_t xs_cap = 0;
  /* Place edges into their rows: rowoff[base + k] is the running fill position of row k. */
  uint32_t *fill = malloc(nrows * sizeof *fill);
  if (!partial || !fill)
    goto out;
  for (uint32_t k = 0; k < nrows; k++)
    fill[k] = ix->rowoff[m->rowoff_base + k];
  HW_ZONE_FOREACH_EDGE(z, ax, ay, bx, by, {
    int64_t ey0 = ay < by ? ay : by, ey1 = ay < by ? by : ay;
    uint32_t rf = hw_cell_of(ey0, ix->y0, c), rl = hw_cell_of(ey1, ix->y0, c);
    if (rf > m->r0)
      rf--; /* an edge starting on a band's lower border also touches the band below */
    if (rl > m->r1)
      rl = m->r1;
    for (uint32_t r = rf; r <= rl; r++) {
      int64_t lo = ix->y0 + (int64_t)r * c, hi = lo + c;
      if (ey0 > hi || ey1 < lo)
        continue;
      ix->edges[fill[r - m->r0]++] = (hw_zedge){ax, ay, bx, by};
    }
  })

  for (uint32_t r = m->r0; r <= m->r1; r++) {
    uint32_t k = r - m->r0;
    const hw_zedge *e = ix->edges + ix->rowoff[m->rowoff_base + k];
    size_t ne = ix->rowoff[m->rowoff_base + k + 1] - ix->rowoff[m->rowoff_base + k];
    int64_t lo = ix->y0 + (int64_t)r * c, hi = lo + c;
    memset(partial, 0, ncols);
    /* Cells an edge touches, widened by one cell each side so rounding never under-marks. */
    for (size_t i = 0; i < ne; i++) {
      int64_t ey0 = e[i].ay < e[i].by ? e[i].ay : e[i].by;
      int64_t ey1 = e[i].ay < e[i].by ? e[i].by : e[i].ay;
      int64_t ylo = ey0 > lo ? ey0 : lo, yhi = ey1 < hi ? ey1 : hi;
      double xa, xb;
      if (e[i].ay == e[i].by) {
        xa = e[i].ax;
        xb = e[i].bx;
      } else {
        double slope = (double)(e[i].bx - e[i].ax) / (double)(e[i].by - e[i].ay);
        xa = e[i].ax + (double)(ylo - e[i].ay) * slope;
        xb = e[i].ax + (double)(yhi - e[i].ay) * slope;
      }
      double xmin = xa < xb ? xa : xb, xmax = xa < xb ? xb : xa;
      int64_t cf = (int64_t)floor((xmin - (double)ix->x0) / (double)c) - 1;
      int64_t cl = (int64_t)floor((xmax - (double)ix->x0) / (double)c) + 1;
      if (cf < m->c0)
        cf = m->c0;
      if (cl > m->c1)
        cl = m->c1;
      for (int64_t col = cf; col <= cl; col++)
        partial[col - m->c0] = 1;
    }
    /* Cells no edge touches are wholly inside or wholly outside: decide by their centre, with
     * the crossings of the band's centre line (sorted) walked once. */
    if (ne > xs_cap) {
      double *nx = realloc(xs, ne * sizeof *nx);
      if (!nx)
        goto out;
      xs = nx;
      xs_cap = ne;
    }
    double yc = (double)lo + (double)c / 2.0;
    size_t nx = 0;
    for (size_t i = 0; i < ne; i++) {
      if ((e[i].ay > yc) == (e[i].by > yc))
        continue;
      xs[nx++] = e[i].ax + (yc - e[i].ay) * (double)(e[i].bx - e[i].ax) / (double)(e[i].by - e[i].ay);
    }
    qsort(xs, nx, sizeof *xs, hw_cmp_double);
    size_t below = 0;
    for (uint32_t col = m->c0; col <= m->c1; col++) {
      double xc = (double)ix->x0 + (double)col * (double)c + (double)c / 2.0;
      while (below < nx && xs[below] < xc)
        below++;
      uint32_t full = 0;
      if (!partial[col - m->c0]) {
        if (!(below & 1))
          continue;
        full = 1;
      }
      if (hw_u32vec_push(cells, r * ix->cols + col) < 0 ||
          hw_u32vec_push(ents, (uint32_t)zi << 1 | full) < 0)
        goto out;
    }
  }
  rc = 0;
out:
  free(partial);
  free(fill);
  free(xs);
  return rc;
}

int hw_zone_index_build(const hw_zone *zones, size_t n, uint32_t cell_e6, hw_zone_index **out) {
  int rc = -ENOMEM;
  hw_u32vec cells = {0}, ents = {0};
  int32_t *bb = NULL; /* owned: 4 ints per zone, bounding boxes */
  if (n && !zones)
    return -EINVAL;
  if (n > (UINT32_MAX >> 1))
    return -EOVERFLOW;
  hw_zone_index *ix = calloc(1, sizeof *ix);
  if (!ix)
    return -ENOMEM;
  ix->zones = zones;
  ix->nzones = n;
  ix->meta = calloc(n ? n : 1, sizeof *ix->meta);
  if (!ix->meta)
    goto fail;

  /* Extent of the valid zones; bounding boxes from the points (the stored ones are not trusted). */
  int32_t gx0 = INT32_MAX, gy0 = INT32_MAX, gx1 = INT32_MIN, gy1 = INT32_MIN;
  bb = calloc(n ? n * 4 : 1, sizeof *bb);
  if (!bb)
    goto fail;
  for (size_t i = 0; i < n; i++) {
    if (!hw_zone_valid(&zones[i])) {
      ix->skipped++;
      continue;
    }
    ix->meta[i].valid = 1;
    ix->nindexed++;
    int32_t x0 = INT32_MAX, y0 = INT32_MAX, x1 = INT32_MIN, y1 = INT32_MIN;
    for (size_t k = 0; k < zones[i].npts; k++) {
      int32_t x = zones[i].pts[2 * k], y = zones[i].pts[2 * k + 1];
      x0 = x < x0 ? x : x0;
      x1 = x > x1 ? x : x1;
      y0 = y < y0 ? y : y0;
      y1 = y > y1 ? y : y1;
    }
    bb[4 * i] = x0, bb[4 * i + 1] = y0, bb[4 * i + 2] = x1, bb[4 * i + 3] = y1;
    gx0 = x0 < gx0 ? x0 : gx0;
    gy0 = y0 < gy0 ? y0 : gy0;
    gx1 = x1 > gx1 ? x1 : gx1;
    gy1 = y1 > gy1 ? y1 : gy1;
  }
  if (ix->nindexed == 0) {
    free(bb);
    bb = NULL;
    ix->cell_off = calloc(1, sizeof *ix->cell_off);
    ix->rowoff = calloc(1, sizeof *ix->rowoff);
    if (!ix->cell_off || !ix->rowoff)
      goto fail;
    *out = ix;
    return 0;
  }
  int64_t c = cell_e6 ? cell_e6 : HW_ZONE_DEFAULT_CELL_E6;
  for (;;) {
    uint64_t cols = (uint64_t)(((int64_t)gx1 - gx0) / c + 1), rows = (uint64_t)(((int64_t)gy1 - gy0) / c + 1);
    if (cols * rows <= HW_ZONE_MAX_CELLS) {
      ix->cols = (uint32_t)cols;
      ix->rows = (uint32_t)rows;
      break;
    }
    c *= 2;
  }
  ix->cell = c;
  ix->x0 = gx0;
  ix->y0 = gy0;

  /* Size each zone's per-row edge lists (first pass over the edges). */
  size_t nrowoff = 0;
  for (size_t i = 0; i < n; i++) {
    hw_zmeta *m = &ix->meta[i];
    if (!m->valid)
      continue;
    m->c0 = hw_cell_of(bb[4 * i], gx0, c);
    m->r0 = hw_cell_of(bb[4 * i + 1], gy0, c);
    m->c1 = hw_cell_of(bb[4 * i + 2], gx0, c);
    m->r1 = hw_cell_of(bb[4 * i + 3], gy0, c);
    m->rowoff_base = (uint32_t)nrowoff;
    nrowoff += (size_t)(m->r1 - m->r0) + 2;
    if (nrowoff > UINT32_MAX)
      goto overflow;
  }
  free(bb);
  bb = NULL;
  ix->rowoff = calloc(nrowoff, sizeof *ix->rowoff);
  if (!ix->rowoff)
    goto fail;
  uint64_t nedges = 0;
  for (size_t i = 0; i < n; i++) {
    hw_zmeta *m = &ix->meta[i];
    if (!m->valid)
      continue;
    uint32_t *ro = ix->rowoff + m->rowoff_base; /* counts first, turned into offsets below */
    const hw_zone *z = &zones[i];
    HW_ZONE_FOREACH_EDGE(z, ax, ay, bx, by, {
      (void)ax;
      (void)bx;
      int64_t ey0 = ay < by ? ay : by, ey1 = ay < by ? by : ay;
      uint32_t rf = hw_cell_of(ey0, gy0, c), rl = hw_cell_of(ey1, gy0, c);
      if (rf > m->r0)
        rf--;
      if (rl > m->r1)
        rl = m->r1;
      for (uint32_t r = rf; r <= rl; r++) {
        int64_t lo = gy0 + (int64_t)r * c, hi = lo + c;
        if (ey0 > hi || ey1 < lo)
          continue;
        ro[r - m->r0]++;
      }
    })
    uint32_t nr = m->r1 - m->r0 + 1;
    for (uint32_t k = 0; k < nr; k++) {
      uint32_t cnt = ro[k];
      ro[k] = (uint32_t)nedges;
      nedges += cnt;
      if (nedges > UINT32_MAX)
        goto overflow;
    }
    ro[nr] = (uint32_t)nedges;
  }
  ix->edges = malloc((nedges ? nedges : 1) * sizeof *ix->edges);
  if (!ix->edges)
    goto fail;

  for (size_t i = 0; i < n; i++)
    if (ix->meta[i].valid && (rc = hw_zone_index_add(ix, i, &cells, &ents)) < 0)
      goto fail;

  /* Counting sort of (cell, entry) into CSR. */
  size_t ncells = (size_t)ix->cols * ix->rows;
  if (ents.n > UINT32_MAX)
    goto overflow;
  ix->cell_off = calloc(ncells + 1, sizeof *ix->cell_off);
  ix->entries = malloc((ents.n ? ents.n : 1) * sizeof *ix->entries);
  if (!ix->cell_off || !ix->entries) {
    rc = -ENOMEM;
    goto fail;
  }
  for (size_t i = 0; i < cells.n; i++)
    ix->cell_off[cells.v[i] + 1]++;
  for (size_t i = 0; i < ncells; i++)
    ix->cell_off[i + 1] += ix->cell_off[i];
  for (size_t i = 0; i < cells.n; i++)
    ix->entries[ix->cell_off[cells.v[i]]++] = ents.v[i];
  /* cell_off[i] now holds the end of cell i: shift back to starts. */
  for (size_t i = ncells; i > 0; i--)
    ix->cell_off[i] = ix->cell_off[i - 1];
  ix->cell_off[0] = 0;
  free(cells.v);
  free(ents.v);
  *out = ix;
  return 0;

overflow:
  rc = -EOVERFLOW;
fail:
  free(bb);
  free(cells.v);
  free(ents.v);
  hw_zone_index_free(ix);
  return rc;
}

void hw_zone_index_free(hw_zone_index *ix) {
  if (!ix)
    return;
  free(ix->cell_off);
  free(ix->entries);
  free(ix->meta);
  free(ix->rowoff);
  free(ix->edges);
  free(ix);
}

size_t hw_zone_index_skipped(const hw_zone_index *ix) { return ix ? ix->skipped : 0; }
size_t hw_zone_index_count(const hw_zone_index *ix) { return ix ? ix->nindexed : 0; }

/* --- query ----------------------------------------------------------------------------------- */

uint32_t hw_zone_index_cell(const hw_zone_index *ix, int32_t lat_e6, int32_t lon_e6) {
  if (!ix || ix->nindexed == 0 || lon_e6 < ix->x0 || lat_e6 < ix->y0)
    return HW_ZONE_NO_CELL;
  uint64_t col = (uint64_t)(((int64_t)lon_e6 - ix->x0) / ix->cell);
  uint64_t row = (uint64_t)(((int64_t)lat_e6 - ix->y0) / ix->cell);
  if (col >= ix->cols || row >= ix->rows)
    return HW_ZONE_NO_CELL;
  return (uint32_t)(row * ix->cols + col);
}

int hw_zone_index_cell_empty(const hw_zone_index *ix, uint32_t cell) {
  if (!ix || cell == HW_ZONE_NO_CELL || ix->nindexed == 0 || cell >= (uint64_t)ix->cols * ix->rows)
    return 1;
  return ix->cell_off[cell] == ix->cell_off[cell + 1];
}

size_t hw_zone_index_query(const hw_zone_index *ix, int32_t lat_e6, int32_t lon_e6,
                           const hw_zone **out, size_t cap) {
  uint32_t c = hw_zone_index_cell(ix, lat_e6, lon_e6);
  if (c == HW_ZONE_NO_CELL)
    return 0;
  size_t cell = c, found = 0, row = c / ix->cols;
  for (uint32_t k = ix->cell_off[cell]; k < ix->cell_off[cell + 1]; k++) {
    uint32_t zi = ix->entries[k] >> 1;
    int inside = ix->entries[k] & 1;
    if (!inside) {
      const hw_zmeta *m = &ix->meta[zi];
      const uint32_t *ro = ix->rowoff + m->rowoff_base + (row - m->r0);
      for (uint32_t i = ro[0]; i < ro[1]; i++) {
        const hw_zedge *e = &ix->edges[i];
        if (hw_on_segment(lon_e6, lat_e6, e->ax, e->ay, e->bx, e->by)) {
          inside = 1;
          break;
        }
        inside ^= hw_ray_crosses(lon_e6, lat_e6, e->ax, e->ay, e->bx, e->by);
      }
    }
    if (inside) {
      if (found < cap)
        out[found] = &ix->zones[zi];
      found++;
    }
  }
  return found;
}
