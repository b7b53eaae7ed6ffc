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
#include "registry/zones_geojson.h"
#include "base/options.h"

#define HW_ZONES_SCHEMA 11        /* zones, hw_admin_import_zones */
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

/* Hands the checked zones to hw_admin_import_zones() (schema/011_admin_audit.sql), the one
 * implementation the web API's import runs too: PostGIS checks every geometry, then all are
 * upserted by name in that one statement, audited with the actor 'cli'. */
static int hw_zones_db(PGconn *conn, hw_zones_ctx *z, hw_zone_in *zs, int n) {
  cJSON *arr = hw_zones_json(zs, n);
  char *text = arr ? cJSON_PrintUnformatted(arr) : NULL;
  cJSON_Delete(arr);
  if (!text) {
    fprintf(stderr, "haulwatch zones import: out of memory\n");
    return -ENOMEM;
  }
  const char *p[1] = {text};
  PGresult *res = PQexecParams(conn, "SELECT hw_admin_import_zones($1::jsonb, NULL, 'cli', false)",
                               1, NULL, p, NULL, NULL, 0);
  free(text);
  int rc = -EIO;
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    hw_cli_pg_report("zones import", "importing", res);
    goto out;
  }
  cJSON *out = cJSON_Parse(PQgetvalue(res, 0, 0));
  const cJSON *errs = cJSON_GetObjectItemCaseSensitive(out, "errors");
  const cJSON *e;
  rc = 0;
  cJSON_ArrayForEach(e, errs) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(e, "feature");
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name");
    const cJSON *why = cJSON_GetObjectItemCaseSensitive(e, "error");
    z->bad = 0;
    hw_zbad(z, cJSON_IsNumber(f) ? f->valueint : 0, cJSON_IsString(nm) ? nm->valuestring : NULL,
            "%s", cJSON_IsString(why) ? why->valuestring : "?");
    z->nbad++;
    rc = -EINVAL;
  }
  if (!out)
    rc = -EIO;
  cJSON_Delete(out);
out:
  PQclear(res);
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
  if (hw_zones_parse_doc(&z, text, len, &root, &feats))
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
