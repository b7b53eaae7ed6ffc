/* See zones_geojson.h. Moved out of zones_cmd.c unchanged but for the two entry points, so that
 * it can be fuzzed without a database. */
#include "registry/zones_geojson.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void hw_zreport(hw_zones_ctx *z, int index, const char *fmt, ...) HW_PRINTF(3, 4);
static void hw_zreport(hw_zones_ctx *z, int index, const char *fmt, ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (z->report)
    z->report(z->report_arg, index, msg);
  else
    fprintf(stderr, "%s: %s\n", z->path, msg);
}

void hw_zbad(hw_zones_ctx *z, int index, const char *name, const char *fmt, ...) {
  char why[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  if (name)
    hw_zreport(z, index, "feature %d (%s): %s", index, name, why);
  else
    hw_zreport(z, index, "feature %d: %s", index, why);
  z->bad = 1;
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
static void hw_check_ring(hw_zones_ctx *z, int index, const char *fname, const cJSON *ring, int p,
                          int r) {
  int n = cJSON_IsArray(ring) ? cJSON_GetArraySize(ring) : -1;
  if (n < 4) {
    hw_zbad(z, index, fname, "polygon %d ring %d has %s positions; a ring needs at least 4 "
            "(closed)", p, r, n < 0 ? "no array of" : "too few");
    return;
  }
  double first[2] = {0, 0}, last[2] = {0, 0};
  int i = 0;
  const cJSON *pos;
  cJSON_ArrayForEach(pos, ring) {
    const cJSON *x = cJSON_GetArrayItem(pos, 0), *y = cJSON_GetArrayItem(pos, 1);
    if (!cJSON_IsArray(pos) || !cJSON_IsNumber(x) || !cJSON_IsNumber(y)) {
      hw_zbad(z, index, fname, "polygon %d ring %d position %d is not [lon, lat]", p, r, i + 1);
      return;
    }
    double lon = x->valuedouble, lat = y->valuedouble;
    if (!isfinite(lon) || !isfinite(lat) || lon < -180 || lon > 180 || lat < -90 || lat > 90) {
      hw_zbad(z, index, fname, "polygon %d ring %d position %d [%g, %g] is not a WGS 84 "
              "longitude, latitude", p, r, i + 1, lon, lat);
      return;
    }
    if (i == 0)
      first[0] = lon, first[1] = lat;
    last[0] = lon, last[1] = lat;
    i++;
  }
  if (first[0] != last[0] || first[1] != last[1])
    hw_zbad(z, index, fname, "polygon %d ring %d is not closed (its last position must "
            "repeat the first)", p, r);
}

static void hw_check_polygon(hw_zones_ctx *z, int index, const char *fname, const cJSON *poly,
                             int p) {
  if (!cJSON_IsArray(poly) || cJSON_GetArraySize(poly) < 1) {
    hw_zbad(z, index, fname, "polygon %d has no rings", p);
    return;
  }
  int r = 1;
  const cJSON *ring;
  cJSON_ArrayForEach(ring, poly) hw_check_ring(z, index, fname, ring, p, r++);
}

int hw_geojson_polygonal(hw_zones_ctx *z, int index, const char *name, const cJSON *geom,
                         char **out) {
  int was_bad = z->bad;
  z->bad = 0;
  const cJSON *gtype = cJSON_GetObjectItemCaseSensitive(geom, "type");
  const cJSON *coords = cJSON_GetObjectItemCaseSensitive(geom, "coordinates");
  if (!cJSON_IsString(gtype) || (strcmp(gtype->valuestring, "Polygon") &&
                                 strcmp(gtype->valuestring, "MultiPolygon"))) {
    hw_zbad(z, index, name, "geometry must be a Polygon or MultiPolygon");
  } else if (!strcmp(gtype->valuestring, "Polygon")) {
    hw_check_polygon(z, index, name, coords, 1);
  } else if (!cJSON_IsArray(coords) || cJSON_GetArraySize(coords) < 1) {
    hw_zbad(z, index, name, "MultiPolygon has no polygons");
  } else {
    int p = 1;
    const cJSON *poly;
    cJSON_ArrayForEach(poly, coords) hw_check_polygon(z, index, name, poly, p++);
  }
  int bad = z->bad;
  z->bad |= was_bad;
  if (bad)
    return -EINVAL;
  if (out && !(*out = cJSON_PrintUnformatted(geom)))
    return -ENOMEM;
  return 0;
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

  int rc = hw_geojson_polygonal(z, in->index, in->name, geom, z->bad ? NULL : &in->geojson);
  if (rc == -ENOMEM)
    return rc;
  return z->bad ? -EINVAL : 0;
}

int hw_zones_parse_doc(hw_zones_ctx *z, const char *text, size_t len, cJSON **root,
                       const cJSON **feats) {
  *feats = NULL;
  if (!(*root = cJSON_ParseWithLength(text, len))) {
    const char *at = cJSON_GetErrorPtr();
    size_t off = at && at >= text && at <= text + len ? (size_t)(at - text) : 0;
    unsigned line = 1;
    for (size_t i = 0; i < off; i++)
      line += text[i] == '\n';
    hw_zreport(z, 0, "line %u: not valid JSON (near byte %zu)", line, off);
    return -EINVAL;
  }
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(*root, "type");
  const cJSON *fs = cJSON_GetObjectItemCaseSensitive(*root, "features");
  const cJSON *crs = cJSON_GetObjectItemCaseSensitive(*root, "crs");
  if (!cJSON_IsString(type) || strcmp(type->valuestring, "FeatureCollection") ||
      !cJSON_IsArray(fs)) {
    hw_zreport(z, 0, "not a GeoJSON FeatureCollection with a \"features\" array");
    return -EINVAL;
  }
  if (crs) {
    /* Old-style GeoJSON may name its CRS; anything but WGS 84 would put zones in the wrong place. */
    const cJSON *cn = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(crs, "properties"), "name");
    const char *name = cJSON_IsString(cn) ? cn->valuestring : "";
    if (strcmp(name, "urn:ogc:def:crs:OGC:1.3:CRS84") && strcmp(name, "EPSG:4326") &&
        strcmp(name, "urn:ogc:def:crs:EPSG::4326")) {
      hw_zreport(z, 0, "coordinate reference system '%.64s' is not WGS 84 longitude/latitude",
                 name);
      return -EINVAL;
    }
  }
  *feats = fs;
  return 0;
}

int hw_zones_parse_features(hw_zones_ctx *z, const cJSON *feats, hw_zone_in **out, int *n) {
  *out = NULL;
  *n = 0;
  int count = cJSON_GetArraySize(feats);
  if (count == 0) {
    hw_zreport(z, 0, "no features");
    return -EINVAL;
  }
  hw_zone_in *zs = calloc((size_t)count, sizeof *zs);
  if (!zs)
    return -ENOMEM;
  const cJSON *feat;
  int i = 0;
  cJSON_ArrayForEach(feat, feats) {
    zs[i].index = i + 1;
    int rc = hw_zone_parse(z, feat, &zs[i]);
    if (rc == -ENOMEM) {
      hw_zones_free(zs, count);
      return -ENOMEM;
    }
    if (rc == 0)
      for (int j = 0; j < i; j++)
        if (zs[j].name && !strcmp(zs[j].name, zs[i].name)) {
          hw_zbad(z, zs[i].index, zs[i].name, "the name is also used by feature %d", zs[j].index);
          break;
        }
    z->nbad += z->bad;
    i++;
  }
  *out = zs;
  *n = count;
  return 0;
}

void hw_zones_free(hw_zone_in *zs, int n) {
  for (int k = 0; zs && k < n; k++) {
    free(zs[k].classes);
    cJSON_free(zs[k].geojson);
  }
  free(zs);
}

cJSON *hw_zones_json(const hw_zone_in *zs, int n) {
  cJSON *arr = cJSON_CreateArray();
  for (int i = 0; arr && i < n; i++) {
    const hw_zone_in *in = &zs[i];
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddItemToArray(arr, o) || !cJSON_AddNumberToObject(o, "index", in->index) ||
        !cJSON_AddStringToObject(o, "name", in->name) ||
        !cJSON_AddStringToObject(o, "kind", in->kind) ||
        !(in->limit[0] ? cJSON_AddStringToObject(o, "limit", in->limit)
                       : cJSON_AddNullToObject(o, "limit")) ||
        !cJSON_AddStringToObject(o, "expressway", in->expressway) ||
        !(in->classes ? cJSON_AddStringToObject(o, "classes", in->classes)
                      : cJSON_AddNullToObject(o, "classes")) ||
        !(in->from[0] ? cJSON_AddStringToObject(o, "from", in->from)
                      : cJSON_AddNullToObject(o, "from")) ||
        !(in->to[0] ? cJSON_AddStringToObject(o, "to", in->to) : cJSON_AddNullToObject(o, "to")) ||
        !cJSON_AddStringToObject(o, "geojson", in->geojson ? in->geojson : "")) {
      cJSON_Delete(arr);
      return NULL;
    }
  }
  return arr;
}
