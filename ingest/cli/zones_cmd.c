/* haulwatch zones import FILE.geojson: speed-limit, expressway and no-entry zones from a GeoJSON
 * FeatureCollection. Every feature is checked (here, then by PostGIS) before anything is
 * written; zones are upserted by name in one transaction, so importing a file again replaces. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "cli/cli_pg.h"
#include "cli/zones_geojson.h"
#include "base/options.h"

#define HW_ZONES_SCHEMA 2         /* zones */
#define HW_ZONES_FILE_MAX (256u << 20) /* a province's road network fits many times over */

static const char hw_zones_usage[] =
    "usage: haulwatch zones import FILE.geojson [--pg CONNINFO]\n"
    "\n"
    "Imports zones from a GeoJSON FeatureCollection of Polygon or MultiPolygon features.\n"
    "Coordinates are WGS 84 longitude, latitude as terminals report them (JT/T 808), not the\n"
    "GCJ-02 or BD-09 of Chinese web maps, which are offset by hundreds of metres.\n"
    "Feature properties:\n"
    "  name           unique name, at most 63 bytes (required); importing a name again replaces it\n"
    "  kind           \"speed_limit\" or \"no_entry\" (required)\n"
    "  limit_kmh      speed limit in the zone (speed_limit; may be left out on expressways, where\n"
    "                 the class limits apply)\n"
    "  is_expressway  true when the zone is an expressway (class expressway rules apply)\n"
    "  classes        vehicle class codes the zone applies to, e.g. [\"heavy_truck\"]; null = all\n"
    "  from, to       local time window \"HH:MM\" (GMT+8), may wrap midnight; left out = all day\n"
    "Nothing is imported if any feature is bad; each bad feature is listed (exit 1).";

typedef struct hw_zones_settings {
  char pg[1024];
} hw_zones_settings;

static const hw_option hw_zones_options[] = {
    HW_OPT_S(hw_zones_settings, pg, NULL, HW_CLI_PG_ENV, HW_CLI_PG_HELP),
};

char *hw_cli_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  size_t cap = 0, n = 0;
  if (!f)
    return NULL;
  for (;;) {
    if (n == cap) {
      if (cap >= HW_ZONES_FILE_MAX) {
        errno = EFBIG;
        goto fail;
      }
      cap = cap ? cap * 2 : 65536;
      char *b = realloc(buf, cap + 1);
      if (!b)
        goto fail;
      buf = b;
    }
    size_t r = fread(buf + n, 1, cap - n, f);
    n += r;
    if (r == 0) {
      if (ferror(f))
        goto fail;
      break;
    }
  }
  fclose(f);
  buf[n] = '\0';
  *len = n;
  return buf;
fail:
  free(buf);
  fclose(f);
  return NULL;
}

/* Hands every feature to PostGIS's validity check (self-intersections, bad holes) inside the
 * transaction, reporting each invalid one, then upserts them all. */
static int hw_zones_db(PGconn *conn, hw_zones_ctx *z, hw_zone_in *zs, int n) {
  int rc;
  if ((rc = hw_cli_pg_exec(conn, "zones import", "BEGIN")))
    return rc;
  for (int i = 0; i < n; i++) {
    const char *p[1] = {zs[i].geojson};
    PGresult *res = PQexecParams(conn, "SELECT ST_IsValid(g), ST_IsValidReason(g) FROM "
                                       "(SELECT ST_Force2D(ST_SetSRID(ST_GeomFromGeoJSON($1), 4326)) g) s",
                                 1, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
      z->bad = 0;
      hw_zbad(z, zs[i].index, zs[i].name, "PostGIS cannot read the geometry: %s",
              PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
      z->nbad++;
      PQclear(res);
      /* The failed statement aborted the transaction; the remaining checks cannot run. */
      rc = -EINVAL;
      goto rollback;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "t")) {
      z->bad = 0;
      hw_zbad(z, zs[i].index, zs[i].name, "invalid polygon: %s", PQgetvalue(res, 0, 1));
      z->nbad++;
    }
    PQclear(res);
  }
  if (z->nbad) {
    rc = -EINVAL;
    goto rollback;
  }
  for (int i = 0; i < n; i++) {
    const char *p[8] = {zs[i].name,
                        zs[i].kind,
                        zs[i].limit[0] ? zs[i].limit : NULL,
                        zs[i].expressway,
                        zs[i].classes,
                        zs[i].from[0] ? zs[i].from : NULL,
                        zs[i].to[0] ? zs[i].to : NULL,
                        zs[i].geojson};
    PGresult *res = PQexecParams(
        conn,
        "INSERT INTO zones (name, kind, limit_kmh, is_expressway, classes, from_time, to_time, geom) "
        "VALUES ($1, $2, $3::numeric, $4::boolean, $5::text[], $6::time, $7::time, "
        "ST_Multi(ST_Force2D(ST_SetSRID(ST_GeomFromGeoJSON($8), 4326)))) "
        "ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind, limit_kmh = EXCLUDED.limit_kmh, "
        "is_expressway = EXCLUDED.is_expressway, classes = EXCLUDED.classes, "
        "from_time = EXCLUDED.from_time, to_time = EXCLUDED.to_time, geom = EXCLUDED.geom",
        8, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
      char what[128];
      snprintf(what, sizeof what, "feature %d (%s)", zs[i].index, zs[i].name);
      hw_cli_pg_report("zones import", what, res);
      PQclear(res);
      rc = -EIO;
      goto rollback;
    }
    PQclear(res);
  }
  if ((rc = hw_cli_pg_exec(conn, "zones import", "COMMIT")))
    goto rollback;
  return 0;
rollback:
  PQclear(PQexec(conn, "ROLLBACK"));
  return rc;
}

static int hw_zones_import(int argc, char **argv) {
  hw_zones_settings s = {{0}};
  char *pos[1];
  int npos = 0, rc, status = 1, n = 0;
  size_t len = 0;
  rc = hw_options_parse(hw_zones_options, HW_ARRAY_SIZE(hw_zones_options), &s, argc, argv,
                        hw_zones_usage, pos, 1, &npos);
  if (rc)
    return rc > 0 ? 0 : 2;
  if (npos != 1) {
    fprintf(stderr, "haulwatch zones import: which file? (see --help)\n");
    return 2;
  }
  hw_zones_ctx z = {.path = pos[0]};
  char *text = hw_cli_read_file(pos[0], &len);
  cJSON *root = NULL;
  const cJSON *feats = NULL;
  PGconn *conn = NULL;
  PGresult *classes = NULL;
  hw_zone_in *zs = NULL;
  if (!text) {
    fprintf(stderr, "haulwatch zones import: cannot read %s: %s\n", pos[0], strerror(errno));
    return 1;
  }
  if (hw_zones_parse_doc(pos[0], text, len, &root, &feats))
    goto out;
  if (hw_cli_pg_connect(s.pg, HW_ZONES_SCHEMA, &conn))
    goto out;
  classes = PQexec(conn, "SELECT code, name_zh FROM vehicle_classes");
  if (PQresultStatus(classes) != PGRES_TUPLES_OK) {
    hw_cli_pg_report("zones import", "reading vehicle classes", classes);
    goto out;
  }
  z.classes = classes;
  rc = hw_zones_parse_features(&z, feats, &zs, &n);
  if (rc == -ENOMEM)
    goto oom;
  if (rc)
    goto out;
  if (z.nbad == 0 && hw_zones_db(conn, &z, zs, n) == 0) {
    printf("%s: imported %d zone%s\n", pos[0], n, n == 1 ? "" : "s");
    status = 0;
  } else if (z.nbad) {
    fprintf(stderr, "%s: %u bad feature%s; nothing imported\n", pos[0], z.nbad,
            z.nbad == 1 ? "" : "s");
  } else {
    fprintf(stderr, "%s: nothing imported\n", pos[0]);
  }
  goto out;
oom:
  fprintf(stderr, "haulwatch zones import: out of memory\n");
out:
  hw_zones_free(zs, n);
  PQclear(classes);
  PQfinish(conn);
  cJSON_Delete(root);
  free(text);
  return status;
}

int hw_cmd_zones(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "import"))
    return hw_zones_import(argc - 1, argv + 1);
  if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    hw_options_help(hw_zones_options, HW_ARRAY_SIZE(hw_zones_options), hw_zones_usage);
    return 0;
  }
  fprintf(stderr, "usage: haulwatch zones import FILE.geojson [--pg CONNINFO] (see --help)\n");
  return 2;
}
