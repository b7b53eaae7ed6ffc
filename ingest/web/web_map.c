/* What the page needs besides the lists: its configuration and who is logged in (answered
 * whether or not anyone is, so that a page opening without a session sees no error), the counts
 * at a glance, the zones and the region outlines as GeoJSON. Region-owned data is scoped in SQL
 * like every other route (coalesce(region, '') LIKE ANY(scope)); zones are road rules, not a
 * region's data, and every logged-in user sees them all. Owns nothing past the call. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "web/web_internal.h"

/* GET /api/v1/config: {"user": null | {"user", "role", "regions"}, "map_style", "map_tiles"
 * (null when none is configured), "offline_after_s", "moving_min_kmh"}. Always 200. */
void hw_web_config_get(hw_web_call *call) {
  const hw_web_user *u = &call->user;
  const hw_web_config *cfg = &call->app->cfg;
  cJSON *o = cJSON_CreateObject();
  if (u->id > 0) {
    cJSON *me = cJSON_AddObjectToObject(o, "user");
    cJSON_AddStringToObject(me, "user", u->name);
    cJSON_AddStringToObject(me, "role", hw_web_role_name(u->role));
    cJSON *regions = cJSON_AddArrayToObject(me, "regions");
    for (size_t i = 0; i < u->nregions; i++)
      cJSON_AddItemToArray(regions, cJSON_CreateString(u->regions[i]));
  } else {
    cJSON_AddNullToObject(o, "user");
  }
  if (cfg->map_style[0])
    cJSON_AddStringToObject(o, "map_style", cfg->map_style);
  else
    cJSON_AddNullToObject(o, "map_style");
  if (cfg->map_tiles[0])
    cJSON_AddStringToObject(o, "map_tiles", cfg->map_tiles);
  else
    cJSON_AddNullToObject(o, "map_tiles");
  /* what the page needs to judge a live position as the vehicle list does */
  cJSON_AddNumberToObject(o, "offline_after_s", cfg->offline_after_s);
  cJSON_AddNumberToObject(o, "moving_min_kmh", cfg->moving_min_kmh);
  hw_web_reply_json(call, 200, o);
}

/* The one text column of a one-row result is the JSON answer, written by PostgreSQL; printed
 * again compact, so that every answer of the API has the same form. */
static void hw_web_json_row(hw_web_call *call, const PGresult *res) {
  if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
    hw_web_reply_pg_error(call, res, call->route->pattern);
    return;
  }
  hw_web_reply_json_text(call, PQgetvalue(res, 0, 0));
}

/* GET /api/v1/summary: registered active vehicles with a terminal, open (not closed)
 * violations per kind, and the fixes stored today (GMT+8) by those vehicles' terminals, in the
 * user's regions. Online and moving are the page's to count from the vehicle list and the live
 * feed (the latest state is in Redis, per vehicle). The fixes come from the daily figures
 * (schema 012), not from counting positions: one row per vehicle, as of the daemon's last
 * daily flush (daily_flush_s), which fixes_as_of gives. */
void hw_web_summary(hw_web_call *call) {
  const char *params[1] = {call->user.scope};
  if (hw_web_query_read(
          call,
          "SELECT json_build_object('vehicles', (SELECT count(*) FROM vehicles WHERE status = "
          "'active' AND terminal_id IS NOT NULL AND region LIKE ANY($1::text[])), "
          "'open_violations', (SELECT coalesce(json_object_agg(kind, n ORDER BY kind), '{}') FROM "
          "(SELECT kind, count(*) AS n FROM violations WHERE state <> 'closed' AND "
          "coalesce(region, '') LIKE ANY($1::text[]) GROUP BY kind) k), "
          "'fixes_today', coalesce(t.n, 0), 'fixes_as_of', t.at, 'as_of', now())::text FROM "
          "(SELECT sum(d.records) AS n, max(d.updated_at) AS at FROM vehicle_daily d JOIN vehicles v "
          "USING (terminal_id) WHERE d.day = (now() AT TIME ZONE 'UTC' + interval '8 hours')::date "
          "AND v.region LIKE ANY($1::text[])) t",
          1, params, hw_web_json_row)) {
  }
}

/* GET /api/v1/zones: every zone as a GeoJSON FeatureCollection (coordinates to 6 decimals,
 * about 0.1 m). */
void hw_web_zones(hw_web_call *call) {
  if (hw_web_query_read(
          call,
          "SELECT json_build_object('type', 'FeatureCollection', 'features', coalesce(json_agg("
          "json_build_object('type', 'Feature', 'id', id, 'geometry', ST_AsGeoJSON(geom, 6)::json, "
          "'properties', json_build_object('id', id, 'name', name, 'kind', kind, 'limit_kmh', "
          "limit_kmh, 'is_expressway', is_expressway)) ORDER BY id), '[]'))::text FROM zones",
          0, NULL, hw_web_json_row)) {
  }
}

/* GET /api/v1/regions: the outlines (schema/010_regions.sql) whose code lies in the user's
 * regions, as a GeoJSON FeatureCollection. */
void hw_web_regions(hw_web_call *call) {
  const char *params[1] = {call->user.scope};
  if (hw_web_query_read(
          call,
          "SELECT json_build_object('type', 'FeatureCollection', 'features', coalesce(json_agg("
          "json_build_object('type', 'Feature', 'geometry', ST_AsGeoJSON(geom, 6)::json, "
          "'properties', json_build_object('code', code, 'name', name)) ORDER BY code), '[]'))"
          "::text FROM regions WHERE code LIKE ANY($1::text[])",
          1, params, hw_web_json_row)) {
  }
}
