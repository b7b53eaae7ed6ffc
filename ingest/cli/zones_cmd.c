/* haulwatch zones import FILE.geojson: speed-limit, expressway and no-entry zones from a GeoJSON
 * FeatureCollection. Every feature is checked (here, then by PostGIS) before anything is
 * written; zones are upserted by name in one transaction, so importing a file again replaces. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "cli/cli_pg.h"
#include "base/options.h"

#define HW_ZONES_SCHEMA 2         /* zones */
#define HW_ZONES_FILE_MAX (256u << 20) /* a province's road network fits many times over */
#define HW_ZONE_NAME_MAX 63       /* hw_zone.name */

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

typedef struct hw_zones_ctx {
  const char *path;
  const PGresult *classes; /* code, name_zh; owned by the caller */
  unsigned nbad;
  int bad;                 /* the current feature has an error */
} hw_zones_ctx;

static void hw_zbad(hw_zones_ctx *z, int index, const char *name, const char *fmt, ...)
    HW_PRINTF(4, 5);
static void hw_zbad(hw_zones_ctx *z, int index, const char *name, const char *fmt, ...) {
  va_list ap;
  if (name)
    fprintf(stderr, "%s: feature %d (%s): ", z->path, index, name);
  else
    fprintf(stderr, "%s: feature %d: ", z->path, index);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  z->bad = 1;
}

static char *hw_read_file(const char *path, size_t *len) {
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

/* "HH:MM" or "HH:MM:SS" into out (NUL-terminated, <= 8 chars); 0 or -EINVAL. */
static int hw_time_parse(const char *s, char out[9]) {
  size_t len = strlen(s);
  if ((len != 5 && len != 8) || s[2] != ':' || (len == 8 && s[5] != ':'))
    return -EINVAL;
  for (size_t i = 0; i < len; i++)
    if (i != 2 && i != 5 && (s[i] < '0' || s[i] > '9'))
      return -EINVAL;
  if (atoi(s) > 23 || atoi(s + 3) > 59 || (len == 8 && atoi(s + 6) > 59))
    return -EINVAL;
  memcpy(out, s, len + 1);
  return 0;
}

/* A linear ring: at least 4 positions, each [lon, lat(, alt)] in range, first == last. */
static void hw_check_ring(hw_zones_ctx *z, const hw_zone_in *in, const cJSON *ring, int p, int r) {
  int n = cJSON_IsArray(ring) ? cJSON_GetArraySize(ring) : -1;
  if (n < 4) {
    hw_zbad(z, in->index, in->name, "polygon %d ring %d has %s positions; a ring needs at least 4 "
            "(closed)", p, r, n < 0 ? "no array of" : "too few");
    return;
  }
  double first[2] = {0, 0}, last[2] = {0, 0};
  int i = 0;
  const cJSON *pos;
  cJSON_ArrayForEach(pos, ring) {
    const cJSON *x = cJSON_GetArrayItem(pos, 0), *y = cJSON_GetArrayItem(pos, 1);
    if (!cJSON_IsArray(pos) || !cJSON_IsNumber(x) || !cJSON_IsNumber(y)) {
      hw_zbad(z, in->index, in->name, "polygon %d ring %d position %d is not [lon, lat]", p, r, i + 1);
      return;
    }
    double lon = x->valuedouble, lat = y->valuedouble;
    if (!isfinite(lon) || !isfinite(lat) || lon < -180 || lon > 180 || lat < -90 || lat > 90) {
      hw_zbad(z, in->index, in->name, "polygon %d ring %d position %d [%g, %g] is not a WGS 84 "
              "longitude, latitude", p, r, i + 1, lon, lat);
      return;
    }
    if (i == 0)
      first[0] = lon, first[1] = lat;
    last[0] = lon, last[1] = lat;
    i++;
  }
  if (first[0] != last[0] || first[1] != last[1])
    hw_zbad(z, in->index, in->name, "polygon %d ring %d is not closed (its last position must "
            "repeat the first)", p, r);
}

static void hw_check_polygon(hw_zones_ctx *z, const hw_zone_in *in, const cJSON *poly, int p) {
  if (!cJSON_IsArray(poly) || cJSON_GetArraySize(poly) < 1) {
    hw_zbad(z, in->index, in->name, "polygon %d has no rings", p);
    return;
  }
  int r = 1;
  const cJSON *ring;
  cJSON_ArrayForEach(ring, poly) hw_check_ring(z, in, ring, p, r++);
}

static const char *hw_zclass_find(const hw_zones_ctx *z, const char *s) {
  int n = PQntuples(z->classes);
  for (int i = 0; i < n; i++)
    if (!strcmp(s, PQgetvalue(z->classes, i, 0)) || !strcmp(s, PQgetvalue(z->classes, i, 1)))
      return PQgetvalue(z->classes, i, 0);
  return NULL;
}

/* Checks one feature and fills *in; on error reports and leaves z->bad set. */
static int hw_zone_parse(hw_zones_ctx *z, const cJSON *feat, hw_zone_in *in) {
  const cJSON *props = cJSON_GetObjectItemCaseSensitive(feat, "properties");
  const cJSON *geom = cJSON_GetObjectItemCaseSensitive(feat, "geometry");
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(props, "name");
  const cJSON *kind = cJSON_GetObjectItemCaseSensitive(props, "kind");
  const cJSON *limit = cJSON_GetObjectItemCaseSensitive(props, "limit_kmh");
  const cJSON *expr = cJSON_GetObjectItemCaseSensitive(props, "is_expressway");
  const cJSON *classes = cJSON_GetObjectItemCaseSensitive(props, "classes");
  const cJSON *from = cJSON_GetObjectItemCaseSensitive(props, "from");
  const cJSON *to = cJSON_GetObjectItemCaseSensitive(props, "to");
  z->bad = 0;
  if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(feat, "type")) ||
      strcmp(cJSON_GetObjectItemCaseSensitive(feat, "type")->valuestring, "Feature")) {
    hw_zbad(z, in->index, NULL, "not a GeoJSON Feature");
    return -EINVAL;
  }
  if (!cJSON_IsObject(props)) {
    hw_zbad(z, in->index, NULL, "has no properties object");
    return -EINVAL;
  }
  if (!cJSON_IsString(name) || !name->valuestring[0] || strlen(name->valuestring) > HW_ZONE_NAME_MAX)
    hw_zbad(z, in->index, NULL, "name must be a string of 1-%d bytes", HW_ZONE_NAME_MAX);
  else
    in->name = name->valuestring;

  if (cJSON_IsString(kind) && (!strcmp(kind->valuestring, "speed_limit") ||
                               !strcmp(kind->valuestring, "no_entry")))
    in->kind = kind->valuestring;
  else
    hw_zbad(z, in->index, in->name, "kind must be \"speed_limit\" or \"no_entry\"");

  in->expressway = "false";
  if (expr && !cJSON_IsNull(expr)) {
    if (cJSON_IsBool(expr))
      in->expressway = cJSON_IsTrue(expr) ? "true" : "false";
    else
      hw_zbad(z, in->index, in->name, "is_expressway must be true or false");
  }

  if (limit && !cJSON_IsNull(limit)) {
    if (!cJSON_IsNumber(limit) || !(limit->valuedouble > 0 && limit->valuedouble < 1000))
      hw_zbad(z, in->index, in->name, "limit_kmh must be a number of km/h between 0 and 1000");
    else if (in->kind && !strcmp(in->kind, "no_entry"))
      hw_zbad(z, in->index, in->name, "limit_kmh means nothing in a no_entry zone");
    else
      snprintf(in->limit, sizeof in->limit, "%.1f", limit->valuedouble);
  } else if (in->kind && !strcmp(in->kind, "speed_limit") && !strcmp(in->expressway, "false")) {
    hw_zbad(z, in->index, in->name, "a speed_limit zone needs limit_kmh (or is_expressway)");
  }

  if (classes && !cJSON_IsNull(classes)) {
    int n = cJSON_IsArray(classes) ? cJSON_GetArraySize(classes) : 0;
    /* Class codes are [a-z0-9_]{1,32}: the array literal needs no quoting. */
    in->classes = n > 0 ? malloc((size_t)n * 34 + 3) : NULL;
    if (n > 0 && !in->classes)
      return -ENOMEM;
    if (n == 0) {
      hw_zbad(z, in->index, in->name, "classes must be a non-empty array of class codes, or null");
    } else {
      size_t off = 0;
      const cJSON *c;
      in->classes[off++] = '{';
      cJSON_ArrayForEach(c, classes) {
        const char *code = cJSON_IsString(c) ? hw_zclass_find(z, c->valuestring) : NULL;
        if (!code) {
          hw_zbad(z, in->index, in->name, "class %s%s%s does not exist (see table vehicle_classes)",
                  cJSON_IsString(c) ? "'" : "", cJSON_IsString(c) ? c->valuestring : "(not a string)",
                  cJSON_IsString(c) ? "'" : "");
          continue;
        }
        off += (size_t)sprintf(in->classes + off, "%s%s", off > 1 ? "," : "", code);
      }
      in->classes[off++] = '}';
      in->classes[off] = '\0';
    }
  }

  int has_from = from && !cJSON_IsNull(from), has_to = to && !cJSON_IsNull(to);
  if (has_from != has_to)
    hw_zbad(z, in->index, in->name, "give both from and to, or neither");
  else if (has_from && (!cJSON_IsString(from) || hw_time_parse(from->valuestring, in->from) ||
                        !cJSON_IsString(to) || hw_time_parse(to->valuestring, in->to)))
    hw_zbad(z, in->index, in->name, "from and to must be local times \"HH:MM\"");
  else if (has_from && !strcmp(in->from, in->to))
    in->from[0] = in->to[0] = '\0'; /* an empty window is taken as all day, as hw_zone does */

  const cJSON *gtype = cJSON_GetObjectItemCaseSensitive(geom, "type");
  const cJSON *coords = cJSON_GetObjectItemCaseSensitive(geom, "coordinates");
  if (!cJSON_IsString(gtype) || (strcmp(gtype->valuestring, "Polygon") &&
                                 strcmp(gtype->valuestring, "MultiPolygon"))) {
    hw_zbad(z, in->index, in->name, "geometry must be a Polygon or MultiPolygon");
  } else if (!strcmp(gtype->valuestring, "Polygon")) {
    hw_check_polygon(z, in, coords, 1);
  } else if (!cJSON_IsArray(coords) || cJSON_GetArraySize(coords) < 1) {
    hw_zbad(z, in->index, in->name, "MultiPolygon has no polygons");
  } else {
    int p = 1;
    const cJSON *poly;
    cJSON_ArrayForEach(poly, coords) hw_check_polygon(z, in, poly, p++);
  }
  if (!z->bad && !(in->geojson = cJSON_PrintUnformatted(geom)))
    return -ENOMEM;
  return z->bad ? -EINVAL : 0;
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
  char *text = hw_read_file(pos[0], &len);
  cJSON *root = NULL;
  PGconn *conn = NULL;
  PGresult *classes = NULL;
  hw_zone_in *zs = NULL;
  if (!text) {
    fprintf(stderr, "haulwatch zones import: cannot read %s: %s\n", pos[0], strerror(errno));
    return 1;
  }
  if (!(root = cJSON_ParseWithLength(text, len))) {
    const char *at = cJSON_GetErrorPtr();
    size_t off = at && at >= text && at <= text + len ? (size_t)(at - text) : 0;
    unsigned line = 1;
    for (size_t i = 0; i < off; i++)
      line += text[i] == '\n';
    fprintf(stderr, "%s:%u: not valid JSON (near byte %zu)\n", pos[0], line, off);
    goto out;
  }
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "type");
  const cJSON *feats = cJSON_GetObjectItemCaseSensitive(root, "features");
  const cJSON *crs = cJSON_GetObjectItemCaseSensitive(root, "crs");
  if (!cJSON_IsString(type) || strcmp(type->valuestring, "FeatureCollection") ||
      !cJSON_IsArray(feats)) {
    fprintf(stderr, "%s: not a GeoJSON FeatureCollection with a \"features\" array\n", pos[0]);
    goto out;
  }
  if (crs) {
    /* Old-style GeoJSON may name its CRS; anything but WGS 84 would put zones in the wrong place. */
    const cJSON *cn = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(crs, "properties"), "name");
    const char *name = cJSON_IsString(cn) ? cn->valuestring : "";
    if (strcmp(name, "urn:ogc:def:crs:OGC:1.3:CRS84") && strcmp(name, "EPSG:4326") &&
        strcmp(name, "urn:ogc:def:crs:EPSG::4326")) {
      fprintf(stderr, "%s: coordinate reference system '%s' is not WGS 84 longitude/latitude\n",
              pos[0], name);
      goto out;
    }
  }
  if (hw_cli_pg_connect(s.pg, HW_ZONES_SCHEMA, &conn))
    goto out;
  classes = PQexec(conn, "SELECT code, name_zh FROM vehicle_classes");
  if (PQresultStatus(classes) != PGRES_TUPLES_OK) {
    hw_cli_pg_report("zones import", "reading vehicle classes", classes);
    goto out;
  }
  z.classes = classes;
  n = cJSON_GetArraySize(feats);
  if (n == 0) {
    fprintf(stderr, "%s: no features\n", pos[0]);
    goto out;
  }
  if (!(zs = calloc((size_t)n, sizeof *zs)))
    goto oom;
  const cJSON *feat;
  int i = 0;
  cJSON_ArrayForEach(feat, feats) {
    zs[i].index = i + 1;
    rc = hw_zone_parse(&z, feat, &zs[i]);
    if (rc == -ENOMEM)
      goto oom;
    if (rc == 0)
      for (int j = 0; j < i; j++)
        if (zs[j].name && !strcmp(zs[j].name, zs[i].name)) {
          hw_zbad(&z, zs[i].index, zs[i].name, "the name is also used by feature %d", zs[j].index);
          break;
        }
    z.nbad += z.bad;
    i++;
  }
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
  for (int k = 0; zs && k < n; k++) {
    free(zs[k].classes);
    cJSON_free(zs[k].geojson);
  }
  free(zs);
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
