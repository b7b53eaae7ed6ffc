/* The registry, zones and violation lifecycle against a real PostgreSQL: the import commands run
 * as the real binary (exit codes and messages as an operator sees them), the transition rules
 * through the CLI and SQL, and the daemon's registry cache on a private libuv loop, including a
 * reload after NOTIFY and after a lost connection. Each case starts from a fresh database.
 *   HW_TEST_PG="host=127.0.0.1 port=54320 user=postgres" ./build/tests/test_registry */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "registry/registry_cache.h"
#include "registry/zone_index.h"

#define WAIT_MS 30000 /* guard against a hang, not a performance bound */

static char data_dir[512];
static char tmp_dir[256];

static void find_data_dir(void) {
  /* The sample files sit beside the tests: tests/data, found from this file's path. */
  snprintf(data_dir, sizeof data_dir, "%s", __FILE__);
  char *slash = strrchr(data_dir, '/');
  assert_non_null(slash);
  snprintf(slash, sizeof data_dir - (size_t)(slash - data_dir), "/../data");
}

static void path_of(char *out, size_t len, const char *name) {
  snprintf(out, len, "%s/%s", data_dir, name);
}

/* Runs `haulwatch argv...` with --pg conninfo; returns the exit status, output in *log (owned
 * by the caller, free()). */
static int run_cli(const char *conninfo, const char *const *args, char **log) {
  char logfile[512];
  static int n;
  snprintf(logfile, sizeof logfile, "%s/cli-%d.log", tmp_dir, n++);
  unlink(logfile);
  const char *argv[32];
  size_t i = 0;
  for (; args[i]; i++)
    argv[i] = args[i];
  argv[i++] = "--pg";
  argv[i++] = conninfo;
  argv[i] = NULL;
  pid_t pid = hw_test_spawn(argv, logfile);
  int status = hw_test_wait_exit(pid, WAIT_MS);
  FILE *f = fopen(logfile, "rb");
  char *buf = calloc(1, 1 << 16);
  assert_non_null(buf);
  if (f) {
    size_t got = fread(buf, 1, (1 << 16) - 1, f);
    buf[got] = '\0';
    fclose(f);
  }
  if (log)
    *log = buf;
  else
    free(buf);
  return status;
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
  fclose(f);
}

/* Data rows of a CSV sample: its lines but the header (the samples have no quoted breaks). */
static long csv_rows(const char *path) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  long lines = 0;
  int ch, last = '\n';
  while ((ch = fgetc(f)) != EOF) {
    lines += ch == '\n';
    last = ch;
  }
  fclose(f);
  return lines + (last != '\n') - 1;
}

static char *text_of(PGconn *db, const char *sql) {
  PGresult *r = PQexec(db, sql);
  assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
  assert_int_equal(PQntuples(r), 1);
  char *s = strdup(PQgetisnull(r, 0, 0) ? "(null)" : PQgetvalue(r, 0, 0));
  PQclear(r);
  return s;
}

static void assert_text(PGconn *db, const char *sql, const char *want) {
  char *got = text_of(db, sql);
  assert_string_equal(got, want);
  free(got);
}

/* ---- registry import ---------------------------------------------------------------------- */

static void test_import_good(void **state) {
  char conninfo[512], good[600];
  hw_test_fresh_db("hw_test_registry", conninfo, sizeof conninfo);
  path_of(good, sizeof good, "registry_good.csv");
  PGconn *db = hw_test_pg_connect(conninfo);
  char *log;

  const char *args[] = {"registry", "import", good, NULL};
  int status = run_cli(conninfo, args, &log);
  if (status != 0)
    fprintf(stderr, "%s", log);
  assert_int_equal(status, 0);
  free(log);
  long rows = csv_rows(good);
  assert_true(rows > 0);
  assert_int_equal(hw_test_pg_scalar(db, "SELECT count(*) FROM vehicles"), rows);
  /* Names were mapped to codes: colour "yellow" and "黄", class by its Chinese name; an empty
   * status is active, an empty VIN is NULL. */
  assert_text(db, "SELECT plate_colour::text FROM vehicles WHERE plate = '冀A67890'", "2");
  assert_text(db, "SELECT class_code || '/' || status || '/' || plate_colour || '/' || "
                  "coalesce(vin, 'none') FROM vehicles WHERE plate = '冀B11111'",
              "dangerous_goods/active/2/none");
  assert_text(db, "SELECT permit_expires::text FROM vehicles WHERE plate = '冀A12345'", "2027-06-30");

  /* Importing again changes nothing: an upsert by plate + colour. */
  assert_int_equal(run_cli(conninfo, args, NULL), 0);
  assert_int_equal(hw_test_pg_scalar(db, "SELECT count(*) FROM vehicles"), rows);

  /* Two vehicles of the file swap terminals: allowed whatever the row order. */
  char swap[600];
  snprintf(swap, sizeof swap, "%s/swap.csv", tmp_dir);
  write_file(swap, "plate,plate_colour,class,region,terminal_id\n"
                   "冀A12345,2,heavy_truck,130100,013800138002\n"
                   "冀A67890,2,semi_trailer_tractor,130100,013800138001\n");
  const char *swap_args[] = {"registry", "import", swap, NULL};
  assert_int_equal(run_cli(conninfo, swap_args, NULL), 0);
  assert_text(db, "SELECT terminal_id FROM vehicles WHERE plate = '冀A12345'", "013800138002");
  assert_text(db, "SELECT terminal_id FROM vehicles WHERE plate = '冀A67890'", "013800138001");
  /* Columns left out of the file are emptied: the file is the truth for its vehicles. */
  assert_text(db, "SELECT coalesce(enterprise, 'none') FROM vehicles WHERE plate = '冀A12345'", "none");
  PQfinish(db);
}

static void test_import_bad_row_imports_nothing(void **state) {
  char conninfo[512], bad[600];
  hw_test_fresh_db("hw_test_registry", conninfo, sizeof conninfo);
  path_of(bad, sizeof bad, "registry_bad.csv");
  PGconn *db = hw_test_pg_connect(conninfo);
  char *log;

  /* The sample: only line 3 is bad (a five-digit region). */
  const char *args[] = {"registry", "import", bad, NULL};
  assert_int_equal(run_cli(conninfo, args, &log), 1);
  assert_non_null(strstr(log, "registry_bad.csv:3: region '13010'"));
  assert_null(strstr(log, "registry_bad.csv:2:"));
  assert_null(strstr(log, "registry_bad.csv:4:"));
  free(log);
  assert_int_equal(hw_test_pg_scalar(db, "SELECT count(*) FROM vehicles"), 0);

  /* Every kind of check, each row naming its line; line numbers survive CRLF, a blank line and
   * a quoted field spanning two lines. */
  char many[600];
  snprintf(many, sizeof many, "%s/many.csv", tmp_dir);
  write_file(many,
             "plate,plate_colour,vin,class,terminal_id,region,enterprise,permit_no,permit_expires,status\r\n"
             "冀E00001,2,,heavy_truck,013800000001,130100,\"two\r\nlines\",,,active\r\n" /* 2-3 */
             "\r\n"                                                                     /* 4 */
             "冀E00002,2,LGAX2A139M101234I,heavy_truck,,130100,,,,\r\n"                /* 5 vin */
             "冀E00003,2,,no_such_class,,130100,,,,\r\n"                              /* 6 class */
             "冀E00004,2,,heavy_truck,,130100,,,2027-02-29,\r\n"                      /* 7 date */
             "冀E00005,2,,heavy_truck,,130100,,,,gone\r\n"                            /* 8 status */
             "冀E00006,2,,heavy_truck,bad id!,130100,,,,\r\n"                         /* 9 terminal */
             "冀E00007,purple,,heavy_truck,,130100,,,,\r\n"                           /* 10 colour */
             "冀E00008,2,,heavy_truck,013800000009,130100,,,,\r\n"                    /* 11 ok */
             "冀E00008,2,,heavy_truck,013800000009,130100,,,,\r\n"                    /* 12 dup */
             "冀E00010,2,,heavy_truck\r\n"                                             /* 13 width */
             "冀E00011,2,,heavy_truck,,130100,,,,\r\n");                              /* 14 ok */
  const char *many_args[] = {"registry", "import", many, NULL};
  assert_int_equal(run_cli(conninfo, many_args, &log), 1);
  static const char *const expect[] = {
      "many.csv:2: enterprise contains a control character",
      "many.csv:5: vin 'LGAX2A139M101234I'",
      "many.csv:6: class 'no_such_class' does not exist",
      "many.csv:7: permit_expires '2027-02-29'",
      "many.csv:8: status 'gone'",
      "many.csv:9: terminal_id 'bad id!'",
      "many.csv:10: plate_colour 'purple'",
      "many.csv:12: plate 冀E00008 (colour 2) is also on line 11",
      "many.csv:12: terminal 013800000009 is also on line 11",
      "many.csv:13: 4 fields, but the header has 10",
      "many.csv: 9 bad rows; nothing imported",
  };
  for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
    if (!strstr(log, expect[i]))
      fprintf(stderr, "missing \"%s\" in:\n%s", expect[i], log);
    assert_non_null(strstr(log, expect[i]));
  }
  assert_null(strstr(log, "many.csv:11:"));
  assert_null(strstr(log, "many.csv:14:"));
  free(log);
  assert_int_equal(hw_test_pg_scalar(db, "SELECT count(*) FROM vehicles"), 0);

  /* A terminal already bound to a vehicle that the file does not mention is not taken away. */
  hw_test_pg_scalar(db, "INSERT INTO vehicles (plate, plate_colour, class_code, terminal_id, region) "
                        "VALUES ('冀Z99999', 2, 'heavy_truck', '013800000077', '130100')");
  char steal[600];
  snprintf(steal, sizeof steal, "%s/steal.csv", tmp_dir);
  write_file(steal, "plate,plate_colour,class,region,terminal_id\n"
                    "冀E00020,2,heavy_truck,130100,013800000020\n"
                    "冀E00021,2,heavy_truck,130100,013800000077\n");
  const char *steal_args[] = {"registry", "import", steal, NULL};
  assert_int_equal(run_cli(conninfo, steal_args, &log), 1);
  assert_non_null(strstr(log, "steal.csv:3: terminal 013800000077 is bound to vehicle 冀Z99999"));
  free(log);
  assert_int_equal(hw_test_pg_scalar(db, "SELECT count(*) FROM vehicles"), 1);
  PQfinish(db);
}

/* ---- violations ----------------------------------------------------------------------------- */

static long insert_violation(PGconn *db, const char *key) {
  char sql[512];
  snprintf(sql, sizeof sql,
           "INSERT INTO violations (kind, episode_key, terminal_id, plate, region, started_at, "
           "measured, limit_value, grade) VALUES ('speeding', '%s', '013800138001', '冀A12345', "
           "'130100', '2026-03-01 08:00+08', 98.5, 80, 2) RETURNING id", key);
  return hw_test_pg_scalar(db, sql);
}

static int transition(const char *conninfo, long id, const char *to, const char *actor,
                      const char *note, char **log) {
  char ids[32];
  snprintf(ids, sizeof ids, "%ld", id);
  const char *args[12] = {"violations", "transition", ids, "--to", to};
  int n = 5;
  if (actor) {
    args[n++] = "--actor";
    args[n++] = actor;
  }
  if (note) {
    args[n++] = "--note";
    args[n++] = note;
  }
  args[n] = NULL;
  return run_cli(conninfo, args, log);
}

static void test_transitions(void **state) {
  char conninfo[512], sql[256], *log;
  hw_test_fresh_db("hw_test_registry", conninfo, sizeof conninfo);
  PGconn *db = hw_test_pg_connect(conninfo);
  long id = insert_violation(db, "013800138001/speeding/1");
  snprintf(sql, sizeof sql, "SELECT state FROM violations WHERE id = %ld", id);

  /* Skipping a step is refused, with the step that is allowed named. */
  assert_int_equal(transition(conninfo, id, "rectifying", "张三", NULL, &log), 1);
  assert_non_null(strstr(log, "open -> rectifying is not allowed; the next state is notified"));
  free(log);
  assert_int_equal(transition(conninfo, id, "closed", "张三", "done", NULL), 1);
  assert_text(db, sql, "open");
  /* No actor, no step. */
  assert_int_equal(transition(conninfo, id, "notified", NULL, NULL, &log), 1);
  assert_non_null(strstr(log, "needs an actor"));
  free(log);

  assert_int_equal(transition(conninfo, id, "notified", "张三", "通知企业", NULL), 0);
  assert_text(db, sql, "notified");
  /* The same state again, or back, is refused. */
  assert_int_equal(transition(conninfo, id, "notified", "张三", NULL, NULL), 1);
  assert_int_equal(transition(conninfo, id, "open", "张三", NULL, NULL), 1);
  assert_int_equal(transition(conninfo, id, "rectifying", "张三", NULL, NULL), 0);
  assert_int_equal(transition(conninfo, id, "notified", "张三", NULL, NULL), 1);
  assert_text(db, sql, "rectifying");

  /* Closing needs a note; a blank one does not count. */
  assert_int_equal(transition(conninfo, id, "closed", "李四", NULL, &log), 1);
  assert_non_null(strstr(log, "needs a note"));
  free(log);
  assert_int_equal(transition(conninfo, id, "closed", "李四", "   ", NULL), 1);
  assert_text(db, sql, "rectifying");
  assert_int_equal(transition(conninfo, id, "closed", "李四", "已整改，销号", NULL), 0);
  snprintf(sql, sizeof sql, "SELECT state || '/' || closed_by || '/' || close_note || '/' || "
                            "(closed_at IS NOT NULL) FROM violations WHERE id = %ld", id);
  assert_text(db, sql, "closed/李四/已整改，销号/true");
  /* Closed is final. */
  assert_int_equal(transition(conninfo, id, "open", "李四", "reopen", &log), 1);
  assert_non_null(strstr(log, "is closed"));
  free(log);
  assert_int_equal(transition(conninfo, 999999, "notified", "李四", NULL, &log), 1);
  assert_non_null(strstr(log, "does not exist"));
  free(log);

  /* One audit row per step taken, none for the refused ones, in order. */
  snprintf(sql, sizeof sql, "SELECT string_agg(from_state || '>' || to_state || ':' || actor || ':' "
                            "|| coalesce(note, '-'), ' ' ORDER BY id) FROM violation_audit "
                            "WHERE violation_id = %ld", id);
  assert_text(db, sql, "open>notified:张三:通知企业 notified>rectifying:张三:- "
                       "rectifying>closed:李四:已整改，销号");

  /* The state cannot be changed around the function, nor by the engine's upsert. */
  long id2 = insert_violation(db, "013800138001/speeding/2");
  snprintf(sql, sizeof sql, "UPDATE violations SET state = 'closed' WHERE id = %ld", id2);
  PGresult *r = PQexec(db, sql);
  assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
  PQclear(r);
  /* ... but the engine may extend the episode it re-emits. */
  hw_test_pg_scalar(db, "INSERT INTO violations (kind, episode_key, terminal_id, started_at, ended_at, "
                        "measured) VALUES ('speeding', '013800138001/speeding/2', '013800138001', "
                        "'2026-03-01 08:00+08', '2026-03-01 08:09+08', 99) ON CONFLICT (episode_key) "
                        "DO UPDATE SET ended_at = EXCLUDED.ended_at, measured = EXCLUDED.measured");
  assert_int_equal(hw_test_pg_scalar(db, "SELECT count(*) FROM violations"), 2);
  snprintf(sql, sizeof sql, "SELECT state || '/' || measured FROM violations WHERE id = %ld", id2);
  assert_text(db, sql, "open/99");

  /* The list filters. */
  const char *list[] = {"violations", "list", "--state", "closed", "--json", NULL};
  assert_int_equal(run_cli(conninfo, list, &log), 0);
  assert_non_null(strstr(log, "\"closed_by\":\"李四\""));
  assert_null(strstr(log, "speeding/2"));
  free(log);
  const char *list2[] = {"violations", "list", "--region", "130100", "--since", "2026-03-01",
                         "--until", "2026-03-02", NULL};
  assert_int_equal(run_cli(conninfo, list2, &log), 0);
  assert_non_null(strstr(log, "冀A12345"));
  assert_non_null(strstr(log, "(2 violations)"));
  free(log);
  PQfinish(db);
}

/* ---- zones and the registry cache ------------------------------------------------------------ */

static void import_zones(const char *conninfo) {
  char zones[600], *log;
  path_of(zones, sizeof zones, "zones.geojson");
  const char *args[] = {"zones", "import", zones, NULL};
  int status = run_cli(conninfo, args, &log);
  if (status != 0)
    fprintf(stderr, "%s", log);
  assert_int_equal(status, 0);
  free(log);
}

static void test_zones(void **state) {
  char conninfo[512], sql[512], *log;
  hw_test_fresh_db("hw_test_registry", conninfo, sizeof conninfo);
  PGconn *db = hw_test_pg_connect(conninfo);
  import_zones(conninfo);
  long n = hw_test_pg_scalar(db, "SELECT count(*) FROM zones");
  assert_true(n > 0);
  import_zones(conninfo); /* again: replaced by name, not doubled */
  assert_int_equal(hw_test_pg_scalar(db, "SELECT count(*) FROM zones"), n);

  /* Point-in-zone in SQL: the sample's truck speed zone has a hole where the dangerous-goods
   * no-entry zone is. */
  assert_text(db, "SELECT string_agg(name, ',' ORDER BY name) FROM zones WHERE ST_Contains(geom, "
                  "ST_SetSRID(ST_MakePoint(114.50, 38.045), 4326))",
              "市中心危化品禁行区");
  assert_text(db, "SELECT string_agg(name, ',' ORDER BY name) FROM zones WHERE ST_Contains(geom, "
                  "ST_SetSRID(ST_MakePoint(114.45, 38.00), 4326))",
              "石家庄二环内货车限速");
  assert_text(db, "SELECT kind || '/' || coalesce(limit_kmh::text, '-') || '/' || "
                  "coalesce(array_to_string(classes, ','), 'all') || '/' || "
                  "coalesce(from_time::text, '-') || '-' || coalesce(to_time::text, '-') "
                  "FROM zones WHERE name = '市中心危化品禁行区'",
              "no_entry/-/dangerous_goods/06:00:00-22:00:00");

  /* The loaded rings agree with PostGIS on which points are inside each zone (boundary points
   * excluded: PostGIS's ST_Contains leaves them out, the daemon counts them in). */
  hw_registry_snapshot *s = NULL;
  assert_int_equal(hw_registry_snapshot_load(db, &s), 0);
  assert_int_equal((long)s->nzones, n);
  long checked = 0, inside = 0;
  for (size_t i = 0; i < s->nzones; i++) {
    const hw_zone *z = &s->zones[i];
    snprintf(sql, sizeof sql, "SELECT ST_NRings(geom) FROM zones WHERE id = %lld", (long long)z->id);
    assert_int_equal((long)z->nrings, hw_test_pg_scalar(db, sql));
    for (int32_t lat = z->min_lat - 20000; lat <= z->max_lat + 20000; lat += 7919) {
      for (int32_t lon = z->min_lon - 20000; lon <= z->max_lon + 20000; lon += 7907) {
        snprintf(sql, sizeof sql,
                 "SELECT CASE WHEN ST_Intersects(ST_Boundary(geom), p) THEN -1 WHEN ST_Contains(geom, p) "
                 "THEN 1 ELSE 0 END FROM zones, ST_SetSRID(ST_MakePoint(%d / 1e6, %d / 1e6), 4326) p "
                 "WHERE id = %lld", lon, lat, (long long)z->id);
        long pg = hw_test_pg_scalar(db, sql);
        if (pg < 0)
          continue;
        assert_int_equal(hw_zone_contains(z, lat, lon), pg);
        checked++;
        inside += pg;
      }
    }
  }
  assert_true(inside > 0 && inside < checked);
  hw_registry_snapshot_unref(s);

  /* A bad file imports nothing and names the feature. */
  char bad[600];
  snprintf(bad, sizeof bad, "%s/bad.geojson", tmp_dir);
  write_file(bad, "{\"type\":\"FeatureCollection\",\"features\":["
                  "{\"type\":\"Feature\",\"properties\":{\"name\":\"fine\",\"kind\":\"no_entry\"},"
                  "\"geometry\":{\"type\":\"Polygon\",\"coordinates\":[[[1,1],[2,1],[2,2],[1,1]]]}},"
                  "{\"type\":\"Feature\",\"properties\":{\"name\":\"bowtie\",\"kind\":\"no_entry\"},"
                  "\"geometry\":{\"type\":\"Polygon\",\"coordinates\":[[[0,0],[1,1],[1,0],[0,1],[0,0]]]}}]}");
  const char *args[] = {"zones", "import", bad, NULL};
  assert_int_equal(run_cli(conninfo, args, &log), 1);
  assert_non_null(strstr(log, "feature 2 (bowtie): invalid polygon: Self-intersection"));
  free(log);
  assert_int_equal(hw_test_pg_scalar(db, "SELECT count(*) FROM zones WHERE name = 'fine'"), 0);
  PQfinish(db);
}

typedef struct cache_ctx {
  uv_loop_t loop;
  uv_timer_t guard;
  hw_registry terms;
  hw_registry_cache *cache;
  uint64_t swaps;
  uint64_t want_generation;
  const hw_registry_snapshot *seen_old; /* old snapshot as passed to the swap callback */
  int stopped;
} cache_ctx;

static void on_swap(void *arg, const hw_registry_snapshot *now, const hw_registry_snapshot *old) {
  cache_ctx *c = arg;
  c->swaps++;
  assert_int_equal(now->generation, c->swaps);
  assert_true(old == NULL || old->generation + 1 == now->generation);
  /* Terminals are rebound before the callback runs. */
  hw_registry_foreach(&c->terms, t) assert_ptr_equal(t->vehicle, hw_registry_snapshot_vehicle(now, t->id));
  c->seen_old = old;
  if (now->generation >= c->want_generation)
    uv_stop(&c->loop);
}

static void on_guard(uv_timer_t *t) {
  (void)t;
  fail_msg("the registry cache did not reach the expected snapshot in %d ms", WAIT_MS);
}

/* Runs the loop until the swap callback has seen generation `gen`. */
static void run_until_generation(cache_ctx *c, uint64_t gen) {
  c->want_generation = gen;
  if (c->swaps >= gen)
    return;
  uv_timer_start(&c->guard, on_guard, WAIT_MS, 0);
  uv_run(&c->loop, UV_RUN_DEFAULT);
  uv_timer_stop(&c->guard);
  assert_true(c->swaps >= gen);
}

static void on_cache_stopped(void *arg) {
  ((cache_ctx *)arg)->stopped = 1;
}

static void test_cache_reload(void **state) {
  char conninfo[512], good[600], *log;
  hw_test_fresh_db("hw_test_registry", conninfo, sizeof conninfo);
  path_of(good, sizeof good, "registry_good.csv");
  const char *args[] = {"registry", "import", good, NULL};
  assert_int_equal(run_cli(conninfo, args, &log), 0);
  free(log);
  import_zones(conninfo);
  PGconn *db = hw_test_pg_connect(conninfo);

  cache_ctx *c = calloc(1, sizeof *c);
  assert_non_null(c);
  assert_int_equal(uv_loop_init(&c->loop), 0);
  assert_int_equal(uv_timer_init(&c->loop, &c->guard), 0);
  hw_terminal *bound, *unbound;
  assert_int_equal(hw_registry_get(&c->terms, "013800138001", &bound), 0);
  assert_int_equal(hw_registry_get(&c->terms, "099999999999", &unbound), 0);
  assert_int_equal(hw_registry_cache_start(&c->cache, &c->loop, conninfo, &c->terms, on_swap, c), 0);
  assert_null(hw_registry_cache_current(c->cache));

  /* First load: everything in the tables, terminals bound. */
  run_until_generation(c, 1);
  const hw_registry_snapshot *s1 = hw_registry_cache_current(c->cache);
  assert_int_equal((long)s1->nvehicles,
                   hw_test_pg_scalar(db, "SELECT count(*) FROM vehicles WHERE terminal_id IS NOT NULL"));
  assert_int_equal((long)s1->nclasses, hw_test_pg_scalar(db, "SELECT count(*) FROM vehicle_classes"));
  assert_int_equal((long)s1->nzones, hw_test_pg_scalar(db, "SELECT count(*) FROM zones"));
  assert_non_null(bound->vehicle);
  assert_null(unbound->vehicle);
  char *plate = text_of(db, "SELECT plate FROM vehicles WHERE terminal_id = '013800138001'");
  assert_string_equal(bound->vehicle->plate, plate);
  free(plate);
  char *cls = text_of(db, "SELECT class_code FROM vehicles WHERE terminal_id = '013800138001'");
  assert_string_equal(bound->vehicle->cls->code, cls);
  free(cls);
  /* Class limits and dates as the engine reads them. */
  const hw_vehicle_class *dg = hw_registry_snapshot_class(s1, "dangerous_goods");
  assert_non_null(dg);
  assert_int_equal(dg->expressway_limit_dkmh,
                   hw_test_pg_scalar(db, "SELECT expressway_limit_kmh * 10 FROM vehicle_classes "
                                         "WHERE code = 'dangerous_goods'"));
  const hw_vehicle_class *ct = hw_registry_snapshot_class(s1, "converted_tractor");
  assert_non_null(ct);
  /* Retired after 2025-12-31: from 2026-01-01 00:00 GMT+8 = 2025-12-31 16:00 UTC. */
  assert_int_equal(ct->retired_after_ms,
                   hw_test_pg_scalar(db, "SELECT extract(epoch FROM timestamptz '2026-01-01 00:00+08') * 1000"));
  const hw_vehicle_class *coach = hw_registry_snapshot_class(s1, "passenger_coach");
  assert_non_null(coach);
  assert_true(coach->night_rules && coach->daily_limit_s > 0 && coach->night_speed_pct < 100);
  assert_int_equal(bound->vehicle->permit_expires_ms,
                   hw_test_pg_scalar(db, "SELECT extract(epoch FROM (permit_expires + 1)::timestamp "
                                         "AT TIME ZONE 'Asia/Shanghai') * 1000 FROM vehicles "
                                         "WHERE terminal_id = '013800138001'"));

  /* Someone keeps the first snapshot across the swaps: it stays intact. */
  const hw_registry_snapshot *kept = hw_registry_snapshot_ref(s1);
  const hw_vehicle *kept_vehicle = bound->vehicle;
  char kept_enterprise[sizeof kept_vehicle->enterprise];
  memcpy(kept_enterprise, kept_vehicle->enterprise, sizeof kept_enterprise);

  /* A change is picked up after NOTIFY, without a restart. */
  hw_test_pg_scalar(db, "UPDATE vehicles SET enterprise = '新企业' WHERE terminal_id = '013800138001'");
  run_until_generation(c, 2);
  assert_ptr_equal(c->seen_old, kept);
  assert_string_equal(bound->vehicle->enterprise, "新企业");
  assert_string_equal(kept_vehicle->enterprise, kept_enterprise);
  assert_int_equal(kept->generation, 1);
  hw_registry_snapshot_unref(kept);

  /* Binding a terminal to a vehicle and unbinding another. */
  hw_test_pg_scalar(db, "UPDATE vehicles SET terminal_id = '099999999999' WHERE plate = '冀D44444'");
  run_until_generation(c, 3);
  assert_non_null(unbound->vehicle);
  assert_string_equal(unbound->vehicle->plate, "冀D44444");
  assert_int_equal(unbound->vehicle->status, HW_VEH_SCRAPPED);
  hw_test_pg_scalar(db, "UPDATE vehicles SET terminal_id = NULL WHERE terminal_id = '013800138001'");
  run_until_generation(c, 4);
  assert_null(bound->vehicle);
  /* A terminal seen for the first time is bound on request. */
  hw_terminal *fresh;
  assert_int_equal(hw_registry_get(&c->terms, "013800138002", &fresh), 0);
  assert_null(fresh->vehicle);
  hw_registry_cache_bind(c->cache, fresh);
  assert_non_null(fresh->vehicle);
  assert_ptr_equal(fresh->vehicle, hw_registry_cache_vehicle(c->cache, "013800138002"));

  /* Zones and classes reload too. */
  size_t nzones = hw_registry_cache_current(c->cache)->nzones;
  hw_test_pg_scalar(db, "DELETE FROM zones WHERE name = '市中心危化品禁行区'");
  run_until_generation(c, 5);
  assert_int_equal(hw_registry_cache_current(c->cache)->nzones, nzones - 1);
  hw_test_pg_scalar(db, "UPDATE vehicle_classes SET speed_limit_kmh = 70 WHERE code = 'semi_trailer_tractor'");
  run_until_generation(c, 6);
  assert_int_equal(fresh->vehicle->cls->speed_limit_dkmh, 700);

  /* The connection is killed and a change is made while it is down: the next session reloads
   * in full and sees it. */
  hw_test_pg_scalar(db, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = 'haulwatch-registry' AND datname = current_database()");
  hw_test_pg_scalar(db, "UPDATE vehicles SET permit_no = 'AFTER-KILL' WHERE terminal_id = '013800138002'");
  uint64_t gen = c->swaps;
  for (int i = 0; i < 2 && strcmp(fresh->vehicle->permit_no, "AFTER-KILL"); i++)
    run_until_generation(c, ++gen);
  assert_string_equal(fresh->vehicle->permit_no, "AFTER-KILL");

  hw_registry_cache_stats st;
  hw_registry_cache_get_stats(c->cache, &st);
  assert_true(st.notifications >= 5);
  assert_int_equal(st.generation, c->swaps);

  /* Stop: terminals unbound, every handle closed. */
  hw_registry_cache_stop(c->cache, on_cache_stopped, c);
  assert_null(fresh->vehicle);
  uv_close((uv_handle_t *)&c->guard, NULL);
  uv_run(&c->loop, UV_RUN_DEFAULT);
  assert_true(c->stopped);
  assert_int_equal(uv_loop_close(&c->loop), 0);
  hw_registry_free(&c->terms);
  free(c);
  PQfinish(db);
}

int main(void) {
  hw_test_pg_admin();
  find_data_dir();
  snprintf(tmp_dir, sizeof tmp_dir, "/tmp/hw_test_registry.%d", (int)getpid());
  char cmd[300];
  snprintf(cmd, sizeof cmd, "mkdir -p %s", tmp_dir);
  if (system(cmd) != 0)
    return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_import_good),
      cmocka_unit_test(test_import_bad_row_imports_nothing),
      cmocka_unit_test(test_transitions),
      cmocka_unit_test(test_zones),
      cmocka_unit_test(test_cache_reload),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmp_dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", tmp_dir);
  return failed;
}
