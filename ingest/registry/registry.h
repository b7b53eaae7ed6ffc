/* The vehicle registry as the daemon holds it in memory: vehicle classes, vehicles (bound to
 * terminals) and zones, loaded from PostgreSQL (schema/002_registry.sql) and reloaded on
 * NOTIFY hw_registry. The rules engine reads these structs; the registry cache owns them. */
#ifndef HW_REGISTRY_H
#define HW_REGISTRY_H

#include "base/common.h"

#define HW_CLASS_CODE_MAX 32
#define HW_PLATE_MAX 32        /* UTF-8 bytes */
#define HW_REGION_LEN 6        /* GB/T 2260 code */
#define HW_ENTERPRISE_MAX 128
#define HW_PERMIT_MAX 64

typedef struct hw_vehicle_class {
  char code[HW_CLASS_CODE_MAX + 1];
  uint32_t speed_limit_dkmh;         /* general limit, 0.1 km/h */
  uint32_t expressway_limit_dkmh;    /* on expressways (zone kind speed_limit with road=expressway); 0 = same */
  uint8_t expressway_allowed;
  uint32_t speeding_min_s;           /* minimum duration of an episode */
  uint32_t continuous_limit_s;       /* fatigue: continuous driving limit (default 4 h) */
  uint32_t min_rest_s;               /* fatigue: minimum qualifying rest (default 20 min) */
  uint32_t daily_limit_s;            /* fatigue: per calendar day GMT+8; 0 = no daily rule */
  uint8_t night_rules;               /* night driving rules apply */
  uint32_t night_continuous_limit_s; /* continuous driving at night 22:00-06:00 GMT+8 */
  uint32_t night_speed_pct;          /* night speed limit as % of the limit (e.g. 80) */
  int64_t retired_after_ms;          /* may not move at or after this instant; 0 = never retired */
} hw_vehicle_class;

typedef enum { HW_VEH_ACTIVE = 0, HW_VEH_SCRAPPED = 1, HW_VEH_DEREGISTERED = 2 } hw_vehicle_status;

typedef struct hw_vehicle {
  char terminal_id[33];
  char plate[HW_PLATE_MAX + 1];
  uint8_t plate_colour;
  char vin[18];
  char region[HW_REGION_LEN + 1];
  char enterprise[HW_ENTERPRISE_MAX + 1];
  char permit_no[HW_PERMIT_MAX + 1];
  int64_t permit_expires_ms;         /* end of the expiry day (GMT+8); 0 = no permit on record */
  uint8_t status;                    /* hw_vehicle_status */
  const hw_vehicle_class *cls;
} hw_vehicle;

typedef enum { HW_ZONE_SPEED_LIMIT = 0, HW_ZONE_NO_ENTRY = 1 } hw_zone_kind;

typedef struct hw_zone {
  int64_t id;
  char name[64];
  uint8_t kind;                      /* hw_zone_kind */
  uint32_t limit_dkmh;               /* HW_ZONE_SPEED_LIMIT */
  uint8_t is_expressway;             /* counts as expressway for class rules */
  /* Classes the zone applies to; none = all classes. */
  char (*classes)[HW_CLASS_CODE_MAX + 1];
  size_t nclasses;
  /* Local time window GMT+8 in minutes from midnight when the zone applies; start == end = all day. */
  uint16_t from_min, to_min;
  /* Outer ring then holes, lon/lat in 1e-6 degrees; ring_starts[i] indexes pts (x = lon, y = lat). */
  int32_t *pts;                      /* owned: 2 ints per point */
  size_t npts;
  uint32_t *ring_starts;             /* owned */
  size_t nrings;
  int32_t min_lat, min_lon, max_lat, max_lon; /* bounding box */
} hw_zone;

#endif
