/* The daemon's copy of the vehicle registry (vehicle classes, vehicles bound to terminals, zones)
 * as immutable snapshots, reloaded without a restart when PostgreSQL sends NOTIFY hw_registry.
 *
 * One dedicated connection (hw_pg_conn) LISTENs on hw_registry and reads all three tables in one
 * REPEATABLE READ transaction; the snapshot is built on the libuv thread pool and swapped in on
 * the loop, so the loop never waits on the database or on building. Notifications arriving while
 * a load runs cause one more load afterwards; bursts are coalesced (HW_REGISTRY_DEBOUNCE_MS). After
 * a lost connection the next session LISTENs again and reloads in full (notifications sent while
 * disconnected are lost). A failed load keeps the current snapshot and is retried.
 *
 * Lifetime rule. Everything reachable from a snapshot (classes, vehicles, zones, vehicle->cls)
 * stays valid while the snapshot is referenced. The cache holds one reference to the current
 * snapshot. At a swap, on the loop and in this order: the new snapshot becomes current, every
 * terminal's `vehicle` pointer is rebound to the new snapshot (NULL when unbound), the swap
 * callback runs (rebuild anything derived: zone indexes, cached class or zone pointers), then the
 * cache drops its reference to the old snapshot, which is freed unless someone else holds one.
 * So: t->vehicle is always safe to read on the loop; any other pointer into a snapshot is safe
 * until the next swap callback returns, or for as long as you hold a reference (take one if you
 * keep pointers across an asynchronous step, e.g. a query in flight). Reference counts are not
 * atomic: loop thread only. */
#ifndef HW_REGISTRY_CACHE_H
#define HW_REGISTRY_CACHE_H

#include <libpq-fe.h>
#include <uv.h>

#include "registry/registry.h"
#include "registry/terminal.h"

#define HW_REGISTRY_CHANNEL "hw_registry"
#define HW_REGISTRY_DEBOUNCE_MS 200 /* notifications within this window share one load */
#define HW_REGISTRY_RETRY_MS 5000   /* after a failed load */

typedef struct hw_registry_snapshot {
  /* Read-only for users; arrays owned by the snapshot. */
  const hw_vehicle_class *classes; /* by code */
  size_t nclasses;
  const hw_vehicle *vehicles;      /* only vehicles with a terminal, by terminal id */
  size_t nvehicles;
  /* Zones by id. A MultiPolygon's rings are all in one hw_zone: each polygon's outer ring then
   * its holes, so the even-odd rule over all rings decides containment (valid MultiPolygons
   * have no overlapping parts; the table's CHECK (ST_IsValid) ensures that). */
  const hw_zone *zones;
  size_t nzones;
  uint64_t generation;             /* 1 for the cache's first snapshot, then +1 per swap */
  int64_t loaded_ms;               /* when its transaction read the tables (wall clock) */

  /* Private. */
  unsigned refs;
  struct hw_snap_key *by_terminal; /* uthash over vehicles */
  struct hw_snap_key *by_code;     /* uthash over classes */
  struct hw_plate_index *plates;   /* vehicles by (plate, colour) (registry/plate_index.h) */
  void *mem;                       /* owned key array */
} hw_registry_snapshot;

/* Loop thread only. ref returns s, for `keep = hw_registry_snapshot_ref(s)`. */
const hw_registry_snapshot *hw_registry_snapshot_ref(const hw_registry_snapshot *s);
void hw_registry_snapshot_unref(const hw_registry_snapshot *s);

/* NULL when no vehicle is bound to the terminal / no such class. */
const hw_vehicle *hw_registry_snapshot_vehicle(const hw_registry_snapshot *s, const char *terminal_id);
const hw_vehicle_class *hw_registry_snapshot_class(const hw_registry_snapshot *s, const char *code);
/* The vehicle with this plate (UTF-8, compared byte for byte) and colour, among the snapshot's
 * vehicles (those bound to a terminal: a vehicle without one has no id to report under), or
 * NULL. For JT/T 809, whose platforms name vehicles by plate and colour. */
const hw_vehicle *hw_registry_snapshot_by_plate(const hw_registry_snapshot *s, const char *plate,
                                                uint8_t colour);

/* Blocking load of a snapshot (tools, tests): same queries, same transaction. *out has one
 * reference (free with hw_registry_snapshot_unref). -EIO (query failed, logged), -EPROTO
 * (inconsistent data, logged), -ENOMEM. */
int hw_registry_snapshot_load(PGconn *conn, hw_registry_snapshot **out) HW_MUST_CHECK;

typedef struct hw_registry_cache hw_registry_cache;

/* Runs on the loop after a new snapshot was installed and every terminal rebound; old is NULL at
 * the first load and is freed after the callback returns (unless referenced). */
typedef void (*hw_registry_swap_cb)(void *arg, const hw_registry_snapshot *now,
                                    const hw_registry_snapshot *old);

/* Connects (conninfo copied) and loads from the loop; until the first load completes there is no
 * snapshot and every terminal is unbound. terminals is borrowed: the terminal registry whose
 * records are rebound at each swap; it must outlive the cache. swap_cb may be NULL. */
int hw_registry_cache_start(hw_registry_cache **out, uv_loop_t *loop, const char *conninfo,
                            hw_registry *terminals, hw_registry_swap_cb swap_cb, void *arg)
    HW_MUST_CHECK;

/* The current snapshot, NULL before the first load. Borrowed: see the lifetime rule. */
const hw_registry_snapshot *hw_registry_cache_current(const hw_registry_cache *c);

/* The vehicle of terminal_id in the current snapshot, or NULL. */
const hw_vehicle *hw_registry_cache_vehicle(const hw_registry_cache *c, const char *terminal_id);

/* hw_registry_snapshot_by_plate on the current snapshot. */
const hw_vehicle *hw_registry_cache_by_plate(const hw_registry_cache *c, const char *plate,
                                             uint8_t colour);

/* Sets t->vehicle from the current snapshot: call when a terminal record is created (records
 * that exist at a swap are rebound by the cache). */
void hw_registry_cache_bind(const hw_registry_cache *c, hw_terminal *t);

/* Asks for a load soon, as a notification would (e.g. on SIGHUP). */
void hw_registry_cache_reload(hw_registry_cache *c);

typedef struct hw_registry_cache_stats {
  uint64_t loads_ok, loads_failed, notifications;
  uint64_t generation;
  int64_t last_load_ms; /* duration of the last successful load, query to swap */
} hw_registry_cache_stats;
void hw_registry_cache_get_stats(const hw_registry_cache *c, hw_registry_cache_stats *out);

/* Unbinds every terminal (vehicle = NULL), drops the cache's reference to the current snapshot,
 * closes the connection and waits for a build in progress; done_cb then runs (c is freed). */
void hw_registry_cache_stop(hw_registry_cache *c, void (*done_cb)(void *arg), void *arg);

#endif
