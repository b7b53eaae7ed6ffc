#include "load/sim_truck.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define HW_EARTH_R 6371008.8   /* mean Earth radius, metres */
#define HW_DEG (M_PI / 180.0)
#define HW_KMH (1.0 / 3.6)     /* m/s per km/h */

/* A laden truck: gentle acceleration, firmer braking. */
#define HW_ACCEL 0.5           /* m/s^2 */
#define HW_DECEL 1.5           /* m/s^2 */
#define HW_JUNCTION_SPEED (25.0 * HW_KMH)
#define HW_JUNCTION_RATE 3.0   /* deg/s while turning at a junction */
#define HW_DRIFT_RATE 0.4      /* deg/s at most while following the road */

/* Where trucks start, and the box they are steered back into. */
#define HW_LAT_MIN 22.0
#define HW_LAT_MAX 45.0
#define HW_LON_MIN 100.0
#define HW_LON_MAX 122.0

uint64_t hw_sim_rand(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

double hw_sim_uniform(uint64_t *state, double lo, double hi) {
  return lo + (hi - lo) * ((double)(hw_sim_rand(state) >> 11) * 0x1.0p-53);
}

double hw_sim_distance_m(double lat1, double lon1, double lat2, double lon2) {
  double p1 = lat1 * HW_DEG, p2 = lat2 * HW_DEG;
  double dp = p2 - p1, dl = (lon2 - lon1) * HW_DEG;
  double a = sin(dp / 2) * sin(dp / 2) + cos(p1) * cos(p2) * sin(dl / 2) * sin(dl / 2);
  return 2 * HW_EARTH_R * asin(sqrt(a < 1 ? a : 1));
}

/* Moves (lat, lon) by d metres along the great circle leaving at bearing (degrees). */
static void hw_sim_move(double *lat, double *lon, double bearing, double d) {
  double p1 = *lat * HW_DEG, l1 = *lon * HW_DEG, th = bearing * HW_DEG, dl = d / HW_EARTH_R;
  double sp2 = sin(p1) * cos(dl) + cos(p1) * sin(dl) * cos(th);
  double p2 = asin(sp2);
  double l2 = l1 + atan2(sin(th) * sin(dl) * cos(p1), cos(dl) - sin(p1) * sp2);
  *lat = p2 / HW_DEG;
  *lon = fmod(l2 / HW_DEG + 540.0, 360.0) - 180.0;
}

static double hw_sim_norm_deg(double h) {
  h = fmod(h, 360.0);
  return h < 0 ? h + 360.0 : h;
}

static void hw_sim_new_cruise(hw_sim_truck *t) {
  /* Most drivers keep under the 80 km/h a heavy truck may do off expressways; now and then one
   * pushes past it, so a normal fleet shows a few speeding episodes, not one per truck. */
  if (hw_sim_uniform(&t->rng, 0, 1) < 0.03)
    t->cruise = hw_sim_uniform(&t->rng, 82, 92) * HW_KMH;
  else
    t->cruise = hw_sim_uniform(&t->rng, 55, 77) * HW_KMH;
}

static void hw_sim_new_rest_after(hw_sim_truck *t) {
  /* Well inside the 4-hour limit: the stop itself takes a few steps to reach. */
  t->rest_after_ms = (int64_t)hw_sim_uniform(&t->rng, 2.5 * 3600e3, 3.8 * 3600e3);
}

void hw_sim_truck_init(hw_sim_truck *t, uint64_t seed, uint32_t index, int64_t start_ms,
                       uint32_t step_ms) {
  memset(t, 0, sizeof *t);
  /* Mix seed and index so neighbouring trucks get unrelated streams. */
  t->rng = seed ^ ((uint64_t)index * 0xd1342543de82ef95ull);
  (void)hw_sim_rand(&t->rng);
  t->index = index;
  t->step_ms = step_ms ? step_ms : 1;
  t->start_ms = start_ms;
  t->lat = hw_sim_uniform(&t->rng, HW_LAT_MIN, HW_LAT_MAX);
  t->lon = hw_sim_uniform(&t->rng, HW_LON_MIN, HW_LON_MAX);
  t->heading = hw_sim_uniform(&t->rng, 0, 360);
  /* The west of the box is plateau, the east near sea level. */
  t->alt = t->lon < 104 ? hw_sim_uniform(&t->rng, 1200, 3000) : hw_sim_uniform(&t->rng, 5, 400);
  t->odometer_m = hw_sim_uniform(&t->rng, 10e6, 800e6);
  t->light_in_m = hw_sim_uniform(&t->rng, 500, 20000);
  hw_sim_new_cruise(t);
  hw_sim_new_rest_after(t);
  /* Trucks are mid-shift at different points, so the fleet does not rest all at once. */
  t->driving_ms = (int64_t)hw_sim_uniform(&t->rng, 0, (double)t->rest_after_ms);
  for (int i = 0; i < 2; i++)
    snprintf(t->drivers[i], sizeof t->drivers[i], "%06u%012llu",
             (unsigned)(110000 + hw_sim_rand(&t->rng) % 540000),
             (unsigned long long)(hw_sim_rand(&t->rng) % 1000000000000ull));
  t->driver_no = (uint8_t)(hw_sim_rand(&t->rng) & 1);
}

/* Speed after dt seconds heading for vt at constant acceleration, and the distance covered. The
 * speed changes monotonically within a step, so the distance lies between v0*dt and v1*dt. */
static void hw_sim_accelerate(double v0, double vt, double dt, double *v1, double *d) {
  double a = vt > v0 ? HW_ACCEL : HW_DECEL;
  double tr = fabs(vt - v0) / a;
  if (tr >= dt) {
    *v1 = vt > v0 ? v0 + a * dt : v0 - a * dt;
    *d = (v0 + *v1) / 2 * dt;
  } else {
    *v1 = vt;
    *d = (v0 + vt) / 2 * tr + vt * (dt - tr);
  }
}

static void hw_sim_alarm(hw_sim_truck *t) {
  static const uint8_t bits[] = {0, 3, 4, 5, 7, 19}; /* emergency, danger, GNSS fault/antenna, power, parking */
  if (t->alarm_left > 0 && --t->alarm_left == 0)
    t->alarm = 0;
  if (t->alarm_left == 0 && hw_sim_uniform(&t->rng, 0, 1) < 1.0 / 3000) {
    t->alarm = 1u << bits[hw_sim_rand(&t->rng) % HW_ARRAY_SIZE(bits)];
    t->alarm_left = 1 + (int)(hw_sim_rand(&t->rng) % 5);
  }
}

static void hw_sim_drive(hw_sim_truck *t, double dt) {
  double v0 = t->speed;
  int rest_due = t->driving_ms >= t->rest_after_ms;
  /* Brake for the light when it is within this step's travel plus the braking distance. */
  int light_due = t->light_in_m <= v0 * dt + v0 * v0 / (2 * HW_DECEL);
  double vt;
  if (rest_due || light_due) {
    vt = 0;
  } else {
    if (hw_sim_uniform(&t->rng, 0, 1) < dt / 900) /* a new pace every quarter hour or so */
      hw_sim_new_cruise(t);
    vt = t->cruise + hw_sim_uniform(&t->rng, -1.5, 1.5) * HW_KMH;
    if (t->turn_left != 0 && vt > HW_JUNCTION_SPEED)
      vt = HW_JUNCTION_SPEED;
  }
  double v1, d;
  hw_sim_accelerate(v0, vt, dt, &v1, &d);

  /* Heading: finish a junction turn first, else drift along the road, steering back towards the
   * middle of the box when the truck has wandered out. */
  double dh = 0;
  if (d > 1) {
    if (t->turn_left != 0) {
      double max = HW_JUNCTION_RATE * dt;
      dh = fabs(t->turn_left) <= max ? t->turn_left : copysign(max, t->turn_left);
      t->turn_left -= dh;
    } else {
      t->turn_rate = 0.9 * t->turn_rate + hw_sim_uniform(&t->rng, -0.08, 0.08);
      if (t->lat < HW_LAT_MIN || t->lat > HW_LAT_MAX || t->lon < HW_LON_MIN || t->lon > HW_LON_MAX) {
        double want = atan2((HW_LON_MIN + HW_LON_MAX) / 2 - t->lon, (HW_LAT_MIN + HW_LAT_MAX) / 2 - t->lat);
        double diff = hw_sim_norm_deg(want / HW_DEG - t->heading + 180) - 180;
        t->turn_rate = copysign(HW_DRIFT_RATE, diff);
      }
      if (t->turn_rate > HW_DRIFT_RATE)
        t->turn_rate = HW_DRIFT_RATE;
      if (t->turn_rate < -HW_DRIFT_RATE)
        t->turn_rate = -HW_DRIFT_RATE;
      dh = t->turn_rate * dt;
    }
  }
  if (d > 0)
    hw_sim_move(&t->lat, &t->lon, hw_sim_norm_deg(t->heading + dh / 2), d);
  t->heading = hw_sim_norm_deg(t->heading + dh);
  t->speed = v1;
  t->odometer_m += d;
  t->light_in_m -= d;
  t->grade += hw_sim_uniform(&t->rng, -0.002, 0.002);
  if (t->grade > 0.04)
    t->grade = 0.04;
  if (t->grade < -0.04)
    t->grade = -0.04;
  if ((t->alt < 0 && t->grade < 0) || (t->alt > 4500 && t->grade > 0))
    t->grade = -t->grade;
  t->alt += t->grade * d;
  t->driving_ms += t->step_ms;

  if (v1 == 0 && vt == 0) {
    if (rest_due) {
      t->mode = HW_SIM_REST;
      t->mode_left_ms = (int64_t)hw_sim_uniform(&t->rng, 20 * 60e3, 40 * 60e3);
    } else {
      t->mode = HW_SIM_LIGHT;
      t->mode_left_ms = (int64_t)hw_sim_uniform(&t->rng, 15e3, 90e3);
      t->light_in_m = hw_sim_uniform(&t->rng, 1000, 20000);
      if (hw_sim_uniform(&t->rng, 0, 1) < 0.3)
        t->turn_left = hw_sim_uniform(&t->rng, 0, 1) < 0.5 ? -90 : 90;
    }
  }
}

/* Waiting at a light or resting: the truck stands still for whole steps. */
static void hw_sim_wait(hw_sim_truck *t) {
  if (t->mode == HW_SIM_LIGHT)
    t->driving_ms += t->step_ms; /* a stop under 20 minutes does not end continuous driving */
  t->mode_left_ms -= t->step_ms;
  if (t->mode_left_ms > 0)
    return;
  if (t->mode == HW_SIM_REST) {
    t->driving_ms = 0;
    hw_sim_new_rest_after(t);
    if (hw_sim_uniform(&t->rng, 0, 1) < 0.3)
      t->driver_no ^= 1; /* the co-driver takes over */
  }
  t->mode = HW_SIM_DRIVE;
}

void hw_sim_truck_next(hw_sim_truck *t, hw_fix *out) {
  double dt = t->step_ms / 1000.0;
  t->k++;
  hw_sim_alarm(t);
  if (t->mode == HW_SIM_DRIVE)
    hw_sim_drive(t, dt);
  else
    hw_sim_wait(t);

  out->seq = t->k;
  out->ts_ms = t->start_ms + t->k * (int64_t)t->step_ms;
  out->recv_ms = 0;
  out->lat_e6 = (int32_t)lround(t->lat * 1e6);
  out->lon_e6 = (int32_t)lround(t->lon * 1e6);
  out->speed_dkmh = (uint32_t)lround(t->speed * 36.0);
  out->heading = (uint16_t)((int)lround(t->heading) % 360);
  out->source = HW_SRC_PROTOBUF;
  out->alt_m = (int32_t)lround(t->alt);
  uint32_t alarm = t->alarm;
  if (out->speed_dkmh > 900)
    alarm |= 1u << 1; /* the device's own overspeed threshold, set at 90 km/h for trucks */
  out->alarm = alarm;
  out->status = (t->mode == HW_SIM_REST ? 0u : 1u) | 2u; /* ACC on unless resting; positioned */
  out->odometer_hm = (uint32_t)(t->odometer_m / 100.0);
  out->quality = 0;
  out->has_driver = 1;
  memcpy(out->driver_id, t->drivers[t->driver_no], sizeof out->driver_id);
}

void hw_sim_rec_pack(hw_sim_rec *rec, const hw_fix *fix, uint8_t driver_no) {
  rec->lat_e6 = fix->lat_e6;
  rec->lon_e6 = fix->lon_e6;
  rec->odometer_hm = fix->odometer_hm;
  rec->alarm = fix->alarm;
  rec->status = fix->status;
  rec->alt_m = (int16_t)(fix->alt_m < INT16_MIN ? INT16_MIN : fix->alt_m > INT16_MAX ? INT16_MAX : fix->alt_m);
  rec->speed_dkmh = (uint16_t)(fix->speed_dkmh > UINT16_MAX ? UINT16_MAX : fix->speed_dkmh);
  rec->heading = fix->heading;
  rec->driver_no = driver_no & 1;
  rec->pad_ = 0;
}

void hw_sim_rec_unpack(const hw_sim_truck *t, int64_t k, const hw_sim_rec *rec, hw_fix *out) {
  out->seq = k;
  out->ts_ms = t->start_ms + k * (int64_t)t->step_ms;
  out->recv_ms = 0;
  out->lat_e6 = rec->lat_e6;
  out->lon_e6 = rec->lon_e6;
  out->speed_dkmh = rec->speed_dkmh;
  out->heading = rec->heading;
  out->source = HW_SRC_PROTOBUF;
  out->has_driver = 1;
  out->alt_m = rec->alt_m;
  out->alarm = rec->alarm;
  out->status = rec->status;
  out->odometer_hm = rec->odometer_hm;
  out->quality = 0;
  memcpy(out->driver_id, t->drivers[rec->driver_no], sizeof out->driver_id);
}
