/* Zone index: point in polygon with holes and boundaries, and the grid index against brute force. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "registry/zone_index.h"

/* A zone with storage owned by the test: rings given as flat lon,lat pairs. */
typedef struct tz {
  hw_zone z;
  int32_t pts[2 * 64];
  uint32_t starts[4];
} tz;

static void tz_init(tz *t, int64_t id) {
  memset(t, 0, sizeof *t);
  t->z.id = id;
  t->z.pts = t->pts;
  t->z.ring_starts = t->starts;
}

static void tz_ring(tz *t, const int32_t *xy, size_t n) {
  t->starts[t->z.nrings++] = (uint32_t)t->z.npts;
  memcpy(t->pts + 2 * t->z.npts, xy, n * 2 * sizeof(int32_t));
  t->z.npts += n;
}

/* 10x10 km-ish square (0.1 degree) with a 0.02 degree square hole in the middle. */
static void square_with_hole(tz *t) {
  static const int32_t outer[] = {116000000, 39000000, 116100000, 39000000, 116100000, 39100000,
                                  116000000, 39100000};
  static const int32_t hole[] = {116040000, 39040000, 116060000, 39040000, 116060000, 39060000,
                                 116040000, 39060000};
  tz_init(t, 1);
  tz_ring(t, outer, 4);
  tz_ring(t, hole, 4);
}

static void test_polygon_with_hole(void **state) {
  (void)state;
  tz t;
  square_with_hole(&t);
  const hw_zone *z = &t.z;
  assert_int_equal(hw_zone_contains(z, 39010000, 116010000), 1); /* inside */
  assert_int_equal(hw_zone_contains(z, 39050000, 116050000), 0); /* in the hole */
  assert_int_equal(hw_zone_contains(z, 39200000, 116050000), 0); /* north, outside */
  assert_int_equal(hw_zone_contains(z, 39050000, 115999999), 0); /* 1e-6 west of the edge */
  /* Boundaries count as inside: outer edges, corners, hole edges and hole corners. */
  assert_int_equal(hw_zone_contains(z, 39000000, 116050000), 1);
  assert_int_equal(hw_zone_contains(z, 39050000, 116100000), 1);
  assert_int_equal(hw_zone_contains(z, 39100000, 116100000), 1);
  assert_int_equal(hw_zone_contains(z, 39040000, 116050000), 1);
  assert_int_equal(hw_zone_contains(z, 39060000, 116060000), 1);
  assert_int_equal(hw_zone_contains(z, 39050000, 116059999), 0); /* just inside the hole */
  assert_int_equal(hw_zone_contains(z, 39050000, 116060001), 1); /* just outside the hole */

  /* The index gives the same answers, with a cell size that puts the hole inside one cell and
   * with one that makes every cell partial. */
  uint32_t cells[] = {0, 1000, 7000, 50000, 1000000};
  int32_t probe[][2] = {{39010000, 116010000}, {39050000, 116050000}, {39000000, 116050000},
                        {39050000, 116100000}, {39100000, 116100000}, {39040000, 116050000},
                        {39060000, 116060000}, {39050000, 116059999}, {39050000, 116060001},
                        {39050000, 115999999}, {39100001, 116000000}, {39099999, 116000000}};
  for (size_t c = 0; c < HW_ARRAY_SIZE(cells); c++) {
    hw_zone_index *ix = NULL;
    assert_int_equal(hw_zone_index_build(&t.z, 1, cells[c], &ix), 0);
    assert_int_equal(hw_zone_index_count(ix), 1);
    for (size_t i = 0; i < HW_ARRAY_SIZE(probe); i++) {
      const hw_zone *out[4];
      size_t n = hw_zone_index_query(ix, probe[i][0], probe[i][1], out, 4);
      assert_int_equal(n, (size_t)hw_zone_contains(z, probe[i][0], probe[i][1]));
      if (n)
        assert_ptr_equal(out[0], z);
    }
    hw_zone_index_free(ix);
  }
}

static void test_triangle_edges(void **state) {
  (void)state;
  /* A slanted edge: points exactly on it (integer points on the line) are inside. */
  static const int32_t tri[] = {0, 10, 300, 10, 0, 310}; /* hypotenuse x + y = 310 */
  tz t;
  tz_init(&t, 2);
  tz_ring(&t, tri, 3);
  assert_int_equal(hw_zone_contains(&t.z, 160, 150), 1);  /* (x=150, y=160) on x+y=310 */
  assert_int_equal(hw_zone_contains(&t.z, 161, 150), 0);  /* just beyond */
  assert_int_equal(hw_zone_contains(&t.z, 159, 150), 1);
  assert_int_equal(hw_zone_contains(&t.z, 10, 300), 1);   /* vertex */
  assert_int_equal(hw_zone_contains(&t.z, 10, 301), 0);
  hw_zone_index *ix = NULL;
  assert_int_equal(hw_zone_index_build(&t.z, 1, 7, &ix), 0);
  const hw_zone *out[1];
  assert_int_equal(hw_zone_index_query(ix, 160, 150, out, 1), 1);
  assert_int_equal(hw_zone_index_query(ix, 161, 150, out, 1), 0);
  assert_int_equal(hw_zone_index_query(ix, 10, 301, out, 1), 0);
  hw_zone_index_free(ix);
}

static void test_malformed_zones_skipped(void **state) {
  (void)state;
  tz t[3];
  square_with_hole(&t[0]);
  static const int32_t two[] = {0, 0, 10, 10};
  tz_init(&t[1], 9);
  tz_ring(&t[1], two, 2); /* two points: not a polygon */
  square_with_hole(&t[2]);
  t[2].starts[1] = 2; /* a "hole" of 6 points starting inside the outer ring: the outer has 2 */
  hw_zone zones[3] = {t[0].z, t[1].z, t[2].z};
  hw_zone_index *ix = NULL;
  assert_int_equal(hw_zone_index_build(zones, 3, 0, &ix), 0);
  assert_int_equal(hw_zone_index_skipped(ix), 2);
  assert_int_equal(hw_zone_index_count(ix), 1);
  const hw_zone *out[4];
  assert_int_equal(hw_zone_index_query(ix, 39010000, 116010000, out, 4), 1);
  assert_ptr_equal(out[0], &zones[0]);
  hw_zone_index_free(ix);
  /* Empty input is a valid, empty index. */
  assert_int_equal(hw_zone_index_build(NULL, 0, 0, &ix), 0);
  assert_int_equal(hw_zone_index_query(ix, 1, 1, out, 4), 0);
  hw_zone_index_free(ix);
}

/* --- many zones against brute force ---------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 16);
}
static int32_t rnd_range(int32_t lo, int32_t hi) { return lo + (int32_t)(rnd() % (uint32_t)(hi - lo + 1)); }

/* Star-shaped random polygon around (cx, cy), radius up to r, k vertices, sometimes a hole
 * (a small square around the centre, inside the star's inner radius). */
static void random_zone(tz *t, int64_t id, int32_t cx, int32_t cy, int32_t r) {
  tz_init(t, id);
  int k = 3 + (int)(rnd() % 20);
  int32_t ring[2 * 32];
  for (int i = 0; i < k; i++) {
    double a = 2.0 * 3.14159265358979 * (i + (rnd() % 1000) / 1000.0 * 0.8) / k;
    double rr = r * (0.4 + 0.6 * (rnd() % 1000) / 1000.0);
    ring[2 * i] = cx + (int32_t)(rr * __builtin_cos(a));
    ring[2 * i + 1] = cy + (int32_t)(rr * __builtin_sin(a));
  }
  tz_ring(t, ring, (size_t)k);
  if (rnd() % 3 == 0) {
    int32_t h = r / 6;
    int32_t hole[] = {cx - h, cy - h, cx + h, cy - h, cx + h, cy + h, cx - h, cy + h};
    tz_ring(t, hole, 4);
  }
}

static void check_point(const hw_zone_index *ix, const hw_zone *zones, size_t n, int32_t lat,
                        int32_t lon, size_t *hits) {
  const hw_zone *out[64];
  size_t got = hw_zone_index_query(ix, lat, lon, out, 64);
  size_t want = 0;
  for (size_t i = 0; i < n; i++)
    if (hw_zone_contains(&zones[i], lat, lon)) {
      want++;
      int seen = 0;
      for (size_t j = 0; j < got && j < 64; j++)
        seen |= out[j] == &zones[i];
      if (!seen)
        fail_msg("zone %lld missing at %d,%d", (long long)zones[i].id, lat, lon);
    }
  assert_int_equal(got, want);
  /* A cell the index calls empty never holds a match. */
  if (hw_zone_index_cell_empty(ix, hw_zone_index_cell(ix, lat, lon)))
    assert_int_equal(want, 0);
  *hits += got;
}

static void test_many_zones_match_brute_force(void **state) {
  (void)state;
  enum { NZ = 1000 };
  tz *t = calloc(NZ, sizeof *t);
  hw_zone *zones = calloc(NZ, sizeof *zones);
  assert_non_null(t);
  assert_non_null(zones);
  /* Hebei-sized area, zones 1-30 km across, plenty of overlap. */
  for (int i = 0; i < NZ; i++) {
    random_zone(&t[i], i + 1, rnd_range(114000000, 118000000), rnd_range(37000000, 41000000),
                rnd_range(5000, 150000));
    zones[i] = t[i].z;
  }
  uint32_t cells[] = {0, 3333, 100000};
  for (size_t c = 0; c < HW_ARRAY_SIZE(cells); c++) {
    hw_zone_index *ix = NULL;
    assert_int_equal(hw_zone_index_build(zones, NZ, cells[c], &ix), 0);
    assert_int_equal(hw_zone_index_count(ix), NZ);
    size_t hits = 0;
    for (int i = 0; i < 8000; i++)
      check_point(ix, zones, NZ, rnd_range(36900000, 41100000), rnd_range(113900000, 118100000), &hits);
    /* Vertices and points exactly on edges (integer points along each edge). */
    for (int i = 0; i < NZ; i += 3) {
      const hw_zone *z = &zones[i];
      for (size_t p = 0; p < z->npts; p++) {
        int32_t x = z->pts[2 * p], y = z->pts[2 * p + 1];
        check_point(ix, zones, NZ, y, x, &hits);
        size_t q = p + 1 < z->npts ? p + 1 : 0;
        int32_t dx = z->pts[2 * q] - x, dy = z->pts[2 * q + 1] - y;
        int32_t g = 1, a = dx < 0 ? -dx : dx, b = dy < 0 ? -dy : dy;
        while (b) {
          int32_t tmp = a % b;
          a = b;
          b = tmp;
        }
        g = a ? a : 1;
        if (g > 1)
          check_point(ix, zones, NZ, y + dy / g, x + dx / g, &hits);
      }
    }
    assert_true(hits > 1000); /* the sample really hits zones */
    hw_zone_index_free(ix);
  }
  free(t);
  free(zones);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_polygon_with_hole),
      cmocka_unit_test(test_triangle_edges),
      cmocka_unit_test(test_malformed_zones_skipped),
      cmocka_unit_test(test_many_zones_match_brute_force),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
