/* haulwatch regions import FILE.geojson: region outlines (GB/T 2260 code and name per feature)
 * for the page's map, drawn when no background map is configured. The document and each
 * geometry are checked by the zones importer's parser (zones_geojson.h), then by PostGIS, before
 * anything is written; outlines are upserted by code in one transaction. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/options.h"
#include "cli/cli.h"
#include "cli/cli_pg.h"
#include "registry/zones_geojson.h"

#define HW_REGIONS_SCHEMA 10 /* regions */
#define HW_REGION_NAME_MAX 128

static const char hw_regions_usage[] =
    "usage: haulwatch regions import FILE.geojson [--pg CONNINFO]\n"
    "\n"
    "Imports region outlines from a GeoJSON FeatureCollection of Polygon or MultiPolygon\n"
    "features in WGS 84 longitude, latitude. The page draws them (for the regions each user may\n"
    "see) when haulwatch web has no background map (--map-style, --map-tiles).\n"
    "Feature properties:\n"
    "  code   GB/T 2260 region code, six digits (required); importing a code again replaces it\n"
    "  name   its name, 1 to 128 bytes (required)\n"
    "Nothing is imported if any feature is bad; each bad feature is listed (exit 1).";

typedef struct hw_regions_settings {
  char pg[1024];
} hw_regions_settings;

static const hw_option hw_regions_options[] = {
    HW_OPT_S(hw_regions_settings, pg, NULL, HW_CLI_PG_ENV, HW_CLI_PG_HELP),
};

typedef struct hw_region_in {
  int index;
  const char *code, *name; /* borrowed from the cJSON tree */
  char *geojson;           /* owned: cJSON_free */
} hw_region_in;

/* One feature into *in; reports what is wrong. 0, -EINVAL or -ENOMEM. */
static int hw_region_parse(hw_zones_ctx *z, const cJSON *feat, hw_region_in *in) {
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(feat, "type");
  const cJSON *props = cJSON_GetObjectItemCaseSensitive(feat, "properties");
  const cJSON *code = cJSON_GetObjectItemCaseSensitive(props, "code");
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(props, "name");
  z->bad = 0;
  if (!cJSON_IsString(type) || strcmp(type->valuestring, "Feature")) {
    hw_zbad(z, in->index, NULL, "not a GeoJSON Feature");
    return -EINVAL;
  }
  if (!cJSON_IsObject(props)) {
    hw_zbad(z, in->index, NULL, "has no properties object");
    return -EINVAL;
  }
  if (!cJSON_IsString(code) || strlen(code->valuestring) != 6 ||
      strspn(code->valuestring, "0123456789") != 6)
    hw_zbad(z, in->index, NULL, "code must be a six-digit GB/T 2260 region code as a string");
  else
    in->code = code->valuestring;
  if (!cJSON_IsString(name) || !name->valuestring[0] ||
      strlen(name->valuestring) > HW_REGION_NAME_MAX)
    hw_zbad(z, in->index, in->code, "name must be a string of 1-%d bytes", HW_REGION_NAME_MAX);
  else
    in->name = name->valuestring;
  int rc = hw_geojson_polygonal(z, in->index, in->code,
                                cJSON_GetObjectItemCaseSensitive(feat, "geometry"),
                                z->bad ? NULL : &in->geojson);
  if (rc == -ENOMEM)
    return rc;
  return z->bad ? -EINVAL : 0;
}

static int hw_regions_db(PGconn *conn, hw_zones_ctx *z, hw_region_in *rs, int n) {
  int rc;
  if ((rc = hw_cli_pg_exec(conn, "regions import", "BEGIN")))
    return rc;
  for (int i = 0; i < n; i++) {
    const char *p[1] = {rs[i].geojson};
    PGresult *res = PQexecParams(conn, "SELECT ST_IsValid(g), ST_IsValidReason(g) FROM (SELECT "
                                       "ST_Force2D(ST_SetSRID(ST_GeomFromGeoJSON($1), 4326)) g) s",
                                 1, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
      hw_zbad(z, rs[i].index, rs[i].code, "PostGIS cannot read the geometry: %s",
              PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
      z->nbad++;
      PQclear(res);
      rc = -EINVAL;
      goto rollback;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "t")) {
      hw_zbad(z, rs[i].index, rs[i].code, "invalid polygon: %s", PQgetvalue(res, 0, 1));
      z->nbad++;
    }
    PQclear(res);
  }
  if (z->nbad) {
    rc = -EINVAL;
    goto rollback;
  }
  for (int i = 0; i < n; i++) {
    const char *p[3] = {rs[i].code, rs[i].name, rs[i].geojson};
    PGresult *res = PQexecParams(
        conn,
        "INSERT INTO regions (code, name, geom) VALUES ($1, $2, "
        "ST_Multi(ST_Force2D(ST_SetSRID(ST_GeomFromGeoJSON($3), 4326)))) "
        "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, geom = EXCLUDED.geom, "
        "updated_at = now()",
        3, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
      char what[64];
      snprintf(what, sizeof what, "feature %d (%s)", rs[i].index, rs[i].code);
      hw_cli_pg_report("regions import", what, res);
      PQclear(res);
      rc = -EIO;
      goto rollback;
    }
    PQclear(res);
  }
  if ((rc = hw_cli_pg_exec(conn, "regions import", "COMMIT")))
    goto rollback;
  return 0;
rollback:
  PQclear(PQexec(conn, "ROLLBACK"));
  return rc;
}

static int hw_regions_import(int argc, char **argv) {
  hw_regions_settings s = {{0}};
  char *pos[1];
  int npos = 0, status = 1, n = 0;
  size_t len = 0;
  int rc = hw_options_parse(hw_regions_options, HW_ARRAY_SIZE(hw_regions_options), &s, argc, argv,
                            hw_regions_usage, pos, 1, &npos);
  if (rc)
    return rc > 0 ? 0 : 2;
  if (npos != 1) {
    fprintf(stderr, "haulwatch regions import: which file? (see --help)\n");
    return 2;
  }
  hw_zones_ctx z = {.path = pos[0]};
  cJSON *root = NULL;
  const cJSON *feats = NULL;
  PGconn *conn = NULL;
  hw_region_in *rs = NULL;
  char *text = hw_cli_read_file(pos[0], &len);
  if (!text) {
    fprintf(stderr, "haulwatch regions import: cannot read %s: %s\n", pos[0], strerror(errno));
    return 1;
  }
  if (hw_zones_parse_doc(&z, text, len, &root, &feats))
    goto out;
  n = cJSON_GetArraySize(feats);
  if (n == 0) {
    fprintf(stderr, "%s: no features\n", pos[0]);
    goto out;
  }
  if (!(rs = calloc((size_t)n, sizeof *rs)))
    goto oom;
  const cJSON *feat;
  int i = 0;
  cJSON_ArrayForEach(feat, feats) {
    rs[i].index = i + 1;
    if (hw_region_parse(&z, feat, &rs[i]) == -ENOMEM)
      goto oom;
    for (int j = 0; !z.bad && j < i; j++)
      if (rs[j].code && !strcmp(rs[j].code, rs[i].code)) {
        hw_zbad(&z, rs[i].index, rs[i].code, "the code is also used by feature %d", rs[j].index);
        break;
      }
    z.nbad += z.bad;
    i++;
  }
  if (z.nbad) {
    fprintf(stderr, "%s: %u bad feature%s; nothing imported\n", pos[0], z.nbad,
            z.nbad == 1 ? "" : "s");
    goto out;
  }
  if (hw_cli_pg_connect(s.pg, HW_REGIONS_SCHEMA, &conn))
    goto out;
  if (hw_regions_db(conn, &z, rs, n) == 0) {
    printf("%s: imported %d region outline%s\n", pos[0], n, n == 1 ? "" : "s");
    status = 0;
  } else {
    fprintf(stderr, "%s: nothing imported\n", pos[0]);
  }
  goto out;
oom:
  fprintf(stderr, "haulwatch regions import: out of memory\n");
out:
  for (int k = 0; rs && k < n; k++)
    cJSON_free(rs[k].geojson);
  free(rs);
  PQfinish(conn);
  cJSON_Delete(root);
  free(text);
  return status;
}

int hw_cmd_regions(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "import"))
    return hw_regions_import(argc - 1, argv + 1);
  if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    hw_options_help(hw_regions_options, HW_ARRAY_SIZE(hw_regions_options), hw_regions_usage);
    return 0;
  }
  fprintf(stderr, "usage: haulwatch regions import FILE.geojson [--pg CONNINFO] (see --help)\n");
  return 2;
}
