/* A simulated heavy truck: the motion model behind `haulwatch sim` and `haulwatch bench-ref`,
 * independent of any wire protocol so the JT/T 808 simulator can reuse it.
 *
 * Each call to hw_sim_truck_next advances simulated time by one step and yields the next fix. The
 * truck starts somewhere in China (lat 22-45, lon 100-122), accelerates, cruises at 60-90 km/h
 * with its heading drifting smoothly, slows for and waits at traffic lights, turns at junctions,
 * and rests 20-40 minutes (ACC off) after 2.5-3.8 hours of driving, within the 4-hour rule. Two
 * drivers share each truck and may swap at a rest. Everything follows from (seed, index): the same
 * pair gives the same fixes on every machine (libm differences aside). */
#ifndef HW_SIM_TRUCK_H
#define HW_SIM_TRUCK_H

#include "base/fix.h"

typedef enum { HW_SIM_DRIVE = 0, HW_SIM_LIGHT, HW_SIM_REST } hw_sim_mode;

typedef struct hw_sim_truck {
  uint64_t rng;           /* splitmix64 state */
  uint32_t index;
  uint32_t step_ms;       /* simulated time between fixes */
  int64_t start_ms;       /* fix k has ts_ms = start_ms + k * step_ms */
  int64_t k;              /* fixes produced so far */

  double lat, lon;        /* degrees */
  double heading;         /* degrees, [0, 360) */
  double turn_rate;       /* degrees per second, drifting */
  double turn_left;       /* degrees of a junction turn still to make (signed) */
  double speed;           /* m/s at the last fix */
  double cruise;          /* m/s wanted on the open road */
  double alt, grade;      /* metres; rise per metre travelled */
  double odometer_m;
  double light_in_m;      /* distance to the next traffic light */

  hw_sim_mode mode;
  int64_t mode_left_ms;   /* remaining wait at a light or rest */
  int64_t driving_ms;     /* driving since the last rest */
  int64_t rest_after_ms;  /* rest once driving_ms reaches this */
  uint32_t alarm;         /* current alarm bits */
  int alarm_left;         /* fixes the current alarm lasts */
  uint8_t driver_no;      /* which of drivers[] is at the wheel */
  char drivers[2][HW_DRIVER_ID_MAX + 1];
} hw_sim_truck;

/* index: the truck's number (the terminal id's numeric part); start_ms and step_ms as above
 * (step_ms of 0 is taken as 1 so device times stay distinct). */
void hw_sim_truck_init(hw_sim_truck *t, uint64_t seed, uint32_t index, int64_t start_ms,
                       uint32_t step_ms);

/* Advances one step and writes fix number t->k (seq = k, starting at 1, recv_ms = 0). */
void hw_sim_truck_next(hw_sim_truck *t, hw_fix *out);

/* A fix as kept in memory by the simulators while it waits for its ack or its turn: 28 bytes
 * instead of sizeof(hw_fix), with seq and time implied by the position in the caller's queue and
 * the driver by number. */
typedef struct hw_sim_rec {
  int32_t lat_e6, lon_e6;
  uint32_t odometer_hm, alarm, status;
  int16_t alt_m;
  uint16_t speed_dkmh, heading;
  uint8_t driver_no;
  uint8_t pad_;
} hw_sim_rec;

void hw_sim_rec_pack(hw_sim_rec *rec, const hw_fix *fix, uint8_t driver_no);
/* Rebuilds fix number k of truck t from its record. */
void hw_sim_rec_unpack(const hw_sim_truck *t, int64_t k, const hw_sim_rec *rec, hw_fix *out);

/* Random numbers for the simulators (splitmix64): uniform 64-bit, and uniform in [lo, hi). */
uint64_t hw_sim_rand(uint64_t *state);
double hw_sim_uniform(uint64_t *state, double lo, double hi);

/* Great-circle distance in metres between two points given in degrees. */
double hw_sim_distance_m(double lat1, double lon1, double lat2, double lon2);

#endif
