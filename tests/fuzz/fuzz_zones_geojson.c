/* libFuzzer target for the zones GeoJSON importer's parse-and-validate step
 * (registry/zones_geojson.c, what `haulwatch zones import` runs before PostGIS sees anything), on cJSON.
 *
 * Input: the file's bytes. The vehicle classes are the ones schema/002_registry.sql installs,
 * built as an in-memory libpq result (no server).
 * Oracles: a zone that passes has a name of 1..63 bytes not used by another good zone, kind
 * speed_limit or no_entry, a limit only for speed_limit zones, a time window that is both or
 * neither, a classes array literal of known codes, and a geometry that prints back to JSON that
 * cJSON parses again. Bad features are reported on stderr, as the command does. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "registry/zones_geojson.h"

#define CHECK(c) \
  do { \
    if (!(c)) \
      abort(); \
  } while (0)

static const char *const classes[][2] = {
    {"heavy_truck", "重型货车"},         {"semi_trailer_tractor", "半挂牵引车"},
    {"dangerous_goods", "危险货物运输车"}, {"converted_tractor", "变型拖拉机"},
    {"low_speed_truck", "低速货车"},     {"three_wheel", "三轮汽车"},
    {"tractor", "拖拉机"},
};

static PGresult *classes_result(void) {
  PGresAttDesc att[2];
  static const char *const names[2] = {"code", "name_zh"};
  PGresult *r = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK); /* lives as long as the process */
  CHECK(r);
  memset(att, 0, sizeof att);
  for (int i = 0; i < 2; i++) {
    att[i].name = (char *)names[i];
    att[i].typid = 25; /* text */
    att[i].typlen = -1;
    att[i].atttypmod = -1;
  }
  CHECK(PQsetResultAttrs(r, 2, att));
  for (int row = 0; row < (int)(sizeof classes / sizeof classes[0]); row++)
    for (int c = 0; c < 2; c++)
      CHECK(PQsetvalue(r, row, c, (char *)classes[row][c], (int)strlen(classes[row][c])));
  return r;
}

/* "{a,b}" with every element a known code */
static void check_classes(const char *lit) {
  size_t len = strlen(lit);
  CHECK(len >= 3 && lit[0] == '{' && lit[len - 1] == '}');
  char buf[4096];
  CHECK(len < sizeof buf);
  memcpy(buf, lit + 1, len - 2);
  buf[len - 2] = '\0';
  for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    int known = 0;
    for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++)
      known |= !strcmp(tok, classes[i][0]);
    CHECK(known);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static PGresult *cls;
  cJSON *root = NULL;
  const cJSON *feats = NULL;
  hw_zone_in *zs = NULL;
  int n = 0;
  if (!cls)
    cls = classes_result();
  hw_zones_ctx z = {.path = "fuzz.geojson", .classes = cls};
  if (hw_zones_parse_doc(&z, (const char *)data, size, &root, &feats) == 0) {
    CHECK(cJSON_IsArray(feats));
    int rc = hw_zones_parse_features(&z, feats, &zs, &n);
    CHECK(rc == 0 || rc == -EINVAL);
    CHECK(rc == 0 ? n == cJSON_GetArraySize(feats) && n > 0 : zs == NULL);
    CHECK(z.nbad <= (unsigned)n);
    for (int i = 0; i < n && z.nbad == 0; i++) {
      const hw_zone_in *in = &zs[i];
      CHECK(in->index == i + 1);
      CHECK(in->name && in->name[0] && strlen(in->name) <= HW_ZONE_NAME_MAX);
      for (int j = 0; j < i; j++)
        CHECK(strcmp(zs[j].name, in->name) != 0);
      CHECK(in->kind && (!strcmp(in->kind, "speed_limit") || !strcmp(in->kind, "no_entry")));
      CHECK(!in->limit[0] || !strcmp(in->kind, "speed_limit"));
      CHECK(!in->from[0] == !in->to[0]);
      if (in->classes)
        check_classes(in->classes);
      CHECK(in->geojson);
      cJSON *g = cJSON_Parse(in->geojson);
      CHECK(g);
      cJSON_Delete(g);
    }
  }
  hw_zones_free(zs, n);
  cJSON_Delete(root);
  return 0;
}
