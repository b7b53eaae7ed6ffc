/* JT/T 809 dynamic vehicle data (see jt809_data.h). */
#include "jt809/jt809_data.h"

#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "jt809/jt809_login.h"
#include "jt809/jt809_vehicle.h"
#include "net/server.h"
#include "pipeline/backend.h"

static struct {
  atomic_uint_fast64_t positions, backfilled, registered_vehicle, unknown_vehicle;
  atomic_uint_fast64_t invalid, registrations, mismatches, mismatches_unrecorded;
} hw_j9d;
static atomic_int hw_j9d_jobs; /* mismatch rows being written */
static atomic_uint hw_j9d_unknown; /* jt809: registry records created */
static atomic_int hw_j9d_cap_logged;

/* The fixes of one message (a 0x1203 holds at most 255): one buffer per loop thread. */
static _Thread_local hw_fix hw_j9d_fixes[HW_JT809_BATCH_MAX];

void hw_jt809_data_get_stats(hw_jt809_data_stats *o) {
  o->positions = hw_j9d.positions;
  o->backfilled = hw_j9d.backfilled;
  o->registered_vehicle = hw_j9d.registered_vehicle;
  o->unknown_vehicle = hw_j9d.unknown_vehicle;
  o->invalid = hw_j9d.invalid;
  o->registrations = hw_j9d.registrations;
  o->mismatches = hw_j9d.mismatches;
  o->mismatches_unrecorded = hw_j9d.mismatches_unrecorded;
}

/* The registry record the vehicle's fixes go under: its registered terminal's, or the jt809:
 * id's. *v is the registry vehicle or NULL. -EINVAL: a plate no id can be made of. */
static int hw_j9d_terminal(hw_session *s, const hw_jt809_link *link, const hw_jt809_sub *sub,
                           hw_terminal **out, const hw_vehicle **v) {
  hw_backend *be = hw_server_backend(s->server);
  char tid[HW_JT809_VEHICLE_TID_MAX + 1];
  const char *id;
  *v = hw_pipeline_vehicle_by_plate(be->pipeline, sub->plate, sub->plate_colour);
  if (*v) {
    id = (*v)->terminal_id;
  } else {
    int rc = hw_jt809_vehicle_tid(link->center, sub->plate, sub->plate_colour, tid, sizeof tid);
    if (rc)
      return -EINVAL;
    id = tid;
  }
  hw_terminal *t = hw_registry_find(be->registry, id);
  if (!t) {
    if (!*v && atomic_fetch_add(&hw_j9d_unknown, 1) >= HW_JT809_MAX_UNKNOWN_VEHICLES) {
      atomic_fetch_sub(&hw_j9d_unknown, 1);
      if (!atomic_exchange(&hw_j9d_cap_logged, 1))
        hw_warn("jt809", NULL, "peer=%s platform %s: %d unknown vehicles already; positions of "
                "new unknown plates are dropped from now on", s->peer, link->platform,
                HW_JT809_MAX_UNKNOWN_VEHICLES);
      return -EDQUOT;
    }
    int rc = hw_registry_get(be->registry, id, &t);
    if (rc)
      return rc;
    hw_pipeline_bind(be->pipeline, t); /* once, when created; the cache rebinds at swaps */
  }
  *out = t;
  return 0;
}

static int hw_j9d_positions(hw_session *s, const hw_jt809_link *link, const hw_jt809_sub *sub) {
  hw_terminal *t;
  const hw_vehicle *v;
  hw_jt809_gnss g;
  size_t n = 0;
  int64_t now = hw_now_ms();
  int backfill = sub->data_type == HW_JT809_EXG_HISTORY_LOCATION;
  int rc = hw_j9d_terminal(s, link, sub, &t, &v);
  if (rc == -EINVAL || rc == -EDQUOT) {
    atomic_fetch_add(&hw_j9d.invalid, 1);
    s->counters->refusals[HW_REFUSE_INVALID_FIX]++;
    if (rc == -EINVAL)
      hw_info("jt809", hw_session_tid(s), "peer=%s platform %s: position of a plate that names "
              "no id (control character or ':'), dropped", s->peer, link->platform);
    return 0;
  }
  if (rc)
    return rc;
  if (backfill) {
    hw_jt809_batch b;
    if (hw_jt809_batch_begin(&b, sub->data, sub->data_len, link->is_2019))
      return 1;
    while ((rc = hw_jt809_batch_next(&b, &g)) == 1)
      if (hw_jt809_gnss_to_fix(&g, now, &hw_j9d_fixes[n]) == 0)
        n++;
      else
        atomic_fetch_add(&hw_j9d.invalid, 1), s->counters->refusals[HW_REFUSE_INVALID_FIX]++;
    if (rc < 0)
      hw_info("jt809", t->id, "peer=%s platform %s: 0x1203 announces %u positions, holds %zu",
              s->peer, link->platform, b.count, (size_t)b.seen);
  } else {
    if (hw_jt809_parse_position(sub->data, sub->data_len, link->is_2019, &g))
      return 1;
    if (hw_jt809_gnss_to_fix(&g, now, &hw_j9d_fixes[0]) == 0) {
      n = 1;
    } else {
      atomic_fetch_add(&hw_j9d.invalid, 1);
      s->counters->refusals[HW_REFUSE_INVALID_FIX]++;
      hw_debug("jt809", t->id, "peer=%s platform %s: invalid position dropped", s->peer,
               link->platform);
    }
  }
  if (!n)
    return 0;
  rc = hw_pipeline_submit_unacked(hw_server_backend(s->server)->pipeline, t, hw_j9d_fixes, n);
  if (rc) {
    hw_error("jt809", t->id, "peer=%s platform %s: cannot queue %zu fixes: %s", s->peer,
             link->platform, n, strerror(-rc));
    return rc;
  }
  s->counters->fixes += n;
  atomic_fetch_add(backfill ? &hw_j9d.backfilled : &hw_j9d.positions, n);
  atomic_fetch_add(v ? &hw_j9d.registered_vehicle : &hw_j9d.unknown_vehicle, n);
  return 0;
}

/* ---- 0x1201 ---- */

/* A jt809_vehicle_mismatches row, written on the thread pool; owns itself. */
typedef struct hw_j9d_mismatch_job {
  uv_work_t work;
  const char *conninfo; /* borrowed from the backend: lives as long as the daemon */
  char platform[33];
  char access_code[12];
  char plate[HW_JT809_PLATE_MAX + 1];
  char colour[4];
  char reason[32];
  char registry_tid[HW_TERMINAL_ID_MAX + 1];
  hw_jt809_register reg;
  char layout[4];
  char error[160]; /* set by the worker, logged on the loop */
} hw_j9d_mismatch_job;

static void hw_j9d_mismatch_work(uv_work_t *w) {
  hw_j9d_mismatch_job *j = w->data;
  PGconn *conn = PQconnectdb(j->conninfo);
  PGresult *res = NULL;
  const char *p[11] = {j->platform, j->access_code, j->plate, j->colour, j->reason,
                       j->registry_tid[0] ? j->registry_tid : NULL, j->reg.terminal_id,
                       j->reg.sim, j->reg.producer_id, j->reg.model, j->layout};
  if (PQstatus(conn) == CONNECTION_OK)
    res = PQexecParams(conn,
                       "INSERT INTO jt809_vehicle_mismatches (platform, access_code, plate, "
                       "plate_colour, reason, registry_terminal_id, reported_terminal_id, "
                       "reported_sim, producer_id, model, layout) VALUES ($1, $2::bigint, $3, "
                       "$4::smallint, $5, $6, $7, $8, $9, $10, $11::smallint)",
                       11, NULL, p, NULL, NULL, 0);
  if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
    snprintf(j->error, sizeof j->error, "%s", PQerrorMessage(conn));
  PQclear(res);
  PQfinish(conn);
}

static void hw_j9d_mismatch_after(uv_work_t *w, int status) {
  hw_j9d_mismatch_job *j = w->data;
  atomic_fetch_sub(&hw_j9d_jobs, 1);
  if (status || j->error[0]) {
    atomic_fetch_add(&hw_j9d.mismatches_unrecorded, 1);
    hw_warn("jt809", NULL, "platform %s plate %s: registration mismatch not recorded: %s",
            j->platform, j->plate, status ? uv_strerror(status) : j->error);
  }
  free(j);
}

/* Digits of a phone / SIM number without its leading zeros: JT/T 808 ids carry them, SIM fields
 * are padded or not. */
static const char *hw_j9d_digits(const char *s) {
  while (*s == '0')
    s++;
  return s;
}

static int hw_j9d_same_device(const char *registry_tid, const hw_jt809_register *r) {
  const char *want = hw_j9d_digits(registry_tid);
  return *want && (strcmp(want, hw_j9d_digits(r->sim)) == 0 ||
                   strcmp(want, hw_j9d_digits(r->terminal_id)) == 0);
}

static void hw_j9d_register(hw_session *s, const hw_jt809_link *link, const hw_jt809_sub *sub,
                            const hw_jt809_register *r) {
  hw_backend *be = hw_server_backend(s->server);
  const hw_vehicle *v = hw_pipeline_vehicle_by_plate(be->pipeline, sub->plate, sub->plate_colour);
  const char *reason;
  atomic_fetch_add(&hw_j9d.registrations, 1);
  if (!v)
    reason = "unknown plate";
  else if (!hw_j9d_same_device(v->terminal_id, r))
    reason = "sim differs";
  else
    return;
  atomic_fetch_add(&hw_j9d.mismatches, 1);
  hw_info("jt809", v ? v->terminal_id : NULL, "peer=%s platform %s registers plate %s colour %u "
          "(terminal %s, SIM %s): %s", s->peer, link->platform, sub->plate, sub->plate_colour,
          r->terminal_id, r->sim, reason);
  if (!be->pg_conninfo)
    return;
  if (atomic_fetch_add(&hw_j9d_jobs, 1) >= HW_JT809_MAX_RECORD_JOBS) {
    atomic_fetch_sub(&hw_j9d_jobs, 1);
    atomic_fetch_add(&hw_j9d.mismatches_unrecorded, 1);
    return; /* logged above: a burst of mismatches must not queue without bound */
  }
  hw_j9d_mismatch_job *j = calloc(1, sizeof *j);
  if (!j) {
    atomic_fetch_sub(&hw_j9d_jobs, 1);
    atomic_fetch_add(&hw_j9d.mismatches_unrecorded, 1);
    return;
  }
  j->conninfo = be->pg_conninfo;
  snprintf(j->platform, sizeof j->platform, "%s", link->platform);
  snprintf(j->access_code, sizeof j->access_code, "%u", link->center);
  snprintf(j->plate, sizeof j->plate, "%s", sub->plate);
  snprintf(j->colour, sizeof j->colour, "%u", sub->plate_colour);
  snprintf(j->reason, sizeof j->reason, "%s", reason);
  if (v)
    snprintf(j->registry_tid, sizeof j->registry_tid, "%s", v->terminal_id);
  j->reg = *r;
  snprintf(j->layout, sizeof j->layout, "%u", r->layout);
  j->work.data = j;
  if (uv_queue_work(hw_server_loop(s->server), &j->work, hw_j9d_mismatch_work,
                    hw_j9d_mismatch_after)) {
    atomic_fetch_sub(&hw_j9d_jobs, 1);
    atomic_fetch_add(&hw_j9d.mismatches_unrecorded, 1);
    free(j);
  }
}

int hw_jt809_data_exg(hw_session *s, const hw_jt809_link *link, const uint8_t *body, size_t len) {
  hw_jt809_sub sub;
  if (hw_jt809_parse_sub(body, len, 1, &sub) || !sub.has_vehicle || !sub.plate[0])
    return 1;
  switch (sub.data_type) {
  case HW_JT809_EXG_REAL_LOCATION:
  case HW_JT809_EXG_HISTORY_LOCATION:
    return hw_j9d_positions(s, link, &sub);
  case HW_JT809_EXG_REGISTER: {
    hw_jt809_register r;
    if (hw_jt809_parse_register(sub.data, sub.data_len, &r))
      return 1;
    hw_j9d_register(s, link, &sub, &r);
    return 0;
  }
  default:
    hw_debug("jt809", hw_session_tid(s), "peer=%s platform %s: 0x1200 data type 0x%04x not "
             "handled", s->peer, link->platform, sub.data_type);
    return 0;
  }
}
