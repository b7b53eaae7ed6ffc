/* The parse-and-validate step of `haulwatch zones import` (cli/zones_cmd.c) and of
 * POST /api/v1/admin/zones (web/web_admin.c): a GeoJSON FeatureCollection in, validated zones out.
 * Pure: no database, no network; the vehicle classes it checks against are a result the caller
 * already fetched. Every bad feature is reported through z->report (by default on stderr), so
 * both front ends give the same messages. Fuzzed by tests/fuzz/fuzz_zones_geojson.c. */
#ifndef HW_ZONES_GEOJSON_H
#define HW_ZONES_GEOJSON_H

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "base/common.h"

#define HW_ZONE_NAME_MAX 63 /* hw_zone.name */

/* One feature, validated, as query parameters. Strings are owned unless noted. */
typedef struct hw_zone_in {
  int index;               /* 1-based position in "features" */
  const char *name;        /* borrowed from the cJSON tree */
  const char *kind;        /* borrowed */
  char limit[32];          /* "" = NULL */
  const char *expressway;  /* "true" / "false" (static) */
  char *classes;           /* array literal, NULL = all classes */
  char from[9], to[9];     /* "" = all day */
  char *geojson;           /* geometry, printed */
} hw_zone_in;

/* Where a problem goes: the 1-based feature (0: the document as a whole) and the message without
 * the "PATH: " prefix ("feature 3 (name): why"). msg is only valid during the call. */
typedef void (*hw_zones_report_fn)(void *arg, int feature, const char *msg);

typedef struct hw_zones_ctx {
  const char *path;
  hw_zones_report_fn report; /* NULL: stderr, "PATH: msg" */
  void *report_arg;
  const PGresult *classes; /* code, name_zh; owned by the caller (data only: no I/O) */
  unsigned nbad;
  int bad;                 /* the current feature has an error */
} hw_zones_ctx;

/* Parses text[0..len) (problems reported through z): *root (owned by the caller: cJSON_Delete,
 * also on failure) and *feats, its "features" array. -EINVAL, reported, when it is not JSON, not
 * a FeatureCollection or in a CRS other than WGS 84. */
int hw_zones_parse_doc(hw_zones_ctx *z, const char *text, size_t len, cJSON **root,
                       const cJSON **feats) HW_MUST_CHECK;
/* Checks every feature of feats into *out[0..*n) (owned by the caller: hw_zones_free; their
 * name and kind point into the cJSON tree). z->nbad counts the bad features, each reported.
 * Returns 0, -EINVAL (reported) when there is no feature, or -ENOMEM (nothing to free then). */
int hw_zones_parse_features(hw_zones_ctx *z, const cJSON *feats, hw_zone_in **out, int *n)
    HW_MUST_CHECK;
void hw_zones_free(hw_zone_in *zs, int n);
/* Checks geom (a feature's "geometry") is a Polygon or MultiPolygon of closed WGS 84 rings,
 * reporting each fault as feature index (name may be NULL); also used by `regions import`. On
 * success, with out, *out is the geometry printed (owned by the caller: cJSON_free). 0, -EINVAL
 * (reported; z->bad set) or -ENOMEM. */
int hw_geojson_polygonal(hw_zones_ctx *z, int index, const char *name, const cJSON *geom,
                         char **out) HW_MUST_CHECK;
/* Reports feature index (name may be NULL) as bad: "PATH: feature N (NAME): why"; sets z->bad. */
void hw_zbad(hw_zones_ctx *z, int index, const char *name, const char *fmt, ...) HW_PRINTF(4, 5);
/* The zones as the JSON array hw_admin_import_zones() takes (schema/011_admin_audit.sql).
 * Owned by the caller; NULL when out of memory. */
cJSON *hw_zones_json(const hw_zone_in *zs, int n);

#endif
