/* JT/T 809 requests to platforms and what they report back (see jt809_centre.h). */
#include "jt809/jt809_centre.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "base/log.h"
#include "jt809/jt809_internal.h"
#include "jt809/jt809_msg.h"
#include "jt809/jt809_session.h"
#include "net/session.h"
#include "sinks/pg_async.h"
#include "sinks/pg_conn.h"

#define HW_J9C_LOG "jt809"
#define HW_J9C_BATCH "200" /* pending rows read per scan */
#define HW_J9C_TEXT_MAX 4000 /* UTF-8 bytes kept of an answer or alarm text (schema 016) */
/* Writes queued and not answered by PostgreSQL: a platform sending alarms faster than the
 * database takes them (or a database away) must not grow the daemon without bound. Beyond this
 * they are dropped, counted and logged. */
#define HW_J9C_MAX_QUEUED 10000
/* Open link rows of another daemon not refreshed for this many of our refresh intervals are
 * taken for a dead daemon's: several intervals, so that a live daemon whose refresh waits a
 * little (a busy database) is not closed by its neighbour. */
#define HW_J9C_STALE_INTERVALS 3

struct hw_jt809_centre {
  uv_loop_t *loop;
  hw_registry *registry;
  hw_jt809_centre_config cfg;
  char *conninfo;
  hw_pg_async *q;
  hw_pg_conn listen;
  int listen_inflight, listening;
  uv_timer_t scan;
  uv_timer_t seen;   /* refreshes last_seen_at of our open link rows, closes dead daemons' */
  char instance[33]; /* this daemon's name on its link rows: random hex, per start */
  int scanning;   /* a scan's queries are queued */
  int scan_again; /* a kick arrived during the scan */
  int stopping;      /* no scans any more; writes already queued still run */
  int final;         /* the connections are closing: nothing is queued any more */
  int pending_close; /* q, listen, scan timer */
  uint32_t queued;   /* writes queued on q, not answered yet */
  uint64_t dropped;  /* writes refused above HW_J9C_MAX_QUEUED */
  void (*done_cb)(void *arg);
  void *done_arg;
};

int64_t hw_jt809_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const hw_jt809_centre_config *hw_jt809_centre_cfg(const hw_jt809_centre *c) { return &c->cfg; }

/* ---- queries ----------------------------------------------------------------------------- */

/* A write in flight: owned by the query's callback. */
typedef struct hw_j9c_write {
  hw_jt809_centre *c;
  const char *what; /* static text */
} hw_j9c_write;

/* A write whose only outcome is a log line when it fails. */
static void hw_j9c_logged(void *arg, const PGresult *res) {
  hw_j9c_write *w = arg;
  const char *what = w->what;
  w->c->queued--;
  free(w);
  if (!res)
    hw_warn(HW_J9C_LOG, NULL, "%s not recorded: PostgreSQL connection lost", what);
  else if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
    hw_warn(HW_J9C_LOG, NULL, "%s not recorded: %s", what, hw_pg_errmsg(res));
}

static void hw_j9c_run(hw_jt809_centre *c, const char *what, const char *sql, int n,
                       const char *const *params) {
  if (c->final) {
    hw_warn(HW_J9C_LOG, NULL, "%s not recorded: stopping", what);
    return;
  }
  if (c->queued >= HW_J9C_MAX_QUEUED) {
    if (c->dropped++ % 1000 == 0)
      hw_warn(HW_J9C_LOG, NULL, "%s not recorded: %d writes wait for PostgreSQL (%llu dropped "
              "so far)", what, HW_J9C_MAX_QUEUED, (unsigned long long)c->dropped);
    return;
  }
  hw_j9c_write *w = malloc(sizeof *w);
  if (!w || hw_pg_async_query(c->q, sql, n, params, hw_j9c_logged, w)) {
    free(w);
    hw_warn(HW_J9C_LOG, NULL, "%s not recorded: out of memory", what);
    return;
  }
  w->c = c;
  w->what = what;
  c->queued++;
}

#define HW_J9C_TS(ms) "to_timestamp(" ms "::bigint / 1000.0)"

void hw_jt809_centre_link_up(hw_jt809_centre *c, const char *platform, const char *link,
                             const char *remote, int64_t ms) {
  char t[24];
  snprintf(t, sizeof t, "%" PRId64, ms);
  const char *p[5] = {platform, link, remote, t, c->instance};
  hw_j9c_run(c, "link up time",
             "INSERT INTO platform_links (platform, link, remote_addr, up_at, daemon, last_seen_at) "
             "VALUES ($1, $2, $3, " HW_J9C_TS("$4") ", $5, now())", 5, p);
}

void hw_jt809_centre_link_down(hw_jt809_centre *c, const char *platform, const char *link,
                               int64_t ms, const char *reason) {
  char t[24];
  snprintf(t, sizeof t, "%" PRId64, ms);
  const char *p[4] = {platform, link, t, reason};
  /* One link of a kind per platform is open at a time on this daemon; the queries run in
   * order, so the row its up time inserted is there. */
  hw_j9c_run(c, "link down time",
             "UPDATE platform_links SET down_at = greatest(" HW_J9C_TS("$3") ", up_at), "
             "reason = left($4, 200) WHERE platform = $1 AND link = $2 AND down_at IS NULL",
             4, p);
}

const char *hw_jt809_centre_instance(const hw_jt809_centre *c) { return c->instance; }

/* ---- links of daemons that died ---------------------------------------------------------- */

static void hw_j9c_on_swept(void *arg, const PGresult *res) {
  hw_jt809_centre *c = arg;
  c->queued--;
  if (!res) {
    hw_warn(HW_J9C_LOG, NULL, "links of dead daemons not closed: PostgreSQL connection lost");
    return;
  }
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    hw_warn(HW_J9C_LOG, NULL, "links of dead daemons not closed: %s", hw_pg_errmsg(res));
    return;
  }
  for (int i = 0; i < PQntuples(res); i++)
    hw_warn(HW_J9C_LOG, PQgetvalue(res, i, 1), "platform_links row %s (%s link, daemon %s) "
            "closed: its daemon died; down at %s, its last refresh", PQgetvalue(res, i, 0),
            PQgetvalue(res, i, 2), PQgetvalue(res, i, 3), PQgetvalue(res, i, 4));
}

/* Off the loop's thread in effect: two queries on the centre's asynchronous connection, one
 * for all our open rows (batched: one statement whatever their number). */
static void hw_j9c_on_seen_timer(uv_timer_t *t) {
  hw_jt809_centre *c = t->data;
  if (c->stopping || c->final)
    return;
  const char *p1[1] = {c->instance};
  hw_j9c_run(c, "link refresh",
             "UPDATE platform_links SET last_seen_at = now() WHERE daemon = $1 AND "
             "down_at IS NULL", 1, p1);
  if (c->queued >= HW_J9C_MAX_QUEUED)
    return;
  char stale[24];
  snprintf(stale, sizeof stale, "%u", c->cfg.seen_ms / 1000u * HW_J9C_STALE_INTERVALS);
  const char *p2[2] = {c->instance, stale};
  if (hw_pg_async_query(c->q,
                        "UPDATE platform_links SET down_at = greatest(coalesce(last_seen_at, "
                        "up_at), up_at), reason = 'daemon died' WHERE down_at IS NULL AND daemon "
                        "IS DISTINCT FROM $1 AND coalesce(last_seen_at, up_at) < now() - "
                        "make_interval(secs => $2::int) RETURNING id, platform, link, "
                        "coalesce(daemon, '-'), down_at",
                        2, p2, hw_j9c_on_swept, c)) {
    hw_warn(HW_J9C_LOG, NULL, "links of dead daemons not closed: out of memory");
    return;
  }
  c->queued++;
}

/* ---- the outbox -------------------------------------------------------------------------- */

/* The session of the platform of access code center, if online here. */
static hw_session *hw_j9c_session(hw_jt809_centre *c, const char *center) {
  char tid[24];
  snprintf(tid, sizeof tid, "jt809p:%s", center);
  hw_terminal *t = hw_registry_find(c->registry, tid);
  if (!t || !t->session || t->session->closing || t->session->proto != &hw_jt809_proto)
    return NULL;
  return t->session;
}

static void hw_j9c_mark_sent(hw_jt809_centre *c, const char *table, const char *id,
                             const char *link, uint32_t sn, int64_t ms) {
  char s[16], t[24], sql[256];
  snprintf(s, sizeof s, "%u", sn);
  snprintf(t, sizeof t, "%" PRId64, ms);
  snprintf(sql, sizeof sql,
           "UPDATE %s SET sent_at = " HW_J9C_TS("$2") ", sent_link = $3, sent_sn = $4 "
           "WHERE id = $1::bigint",
           table);
  const char *p[4] = {id, t, link, s};
  hw_j9c_run(c, "request sent time", sql, 4, p);
}

/* Sends one request wrapped in 0x9300 / 0x9400: data_type with data. */
static int hw_j9c_send(hw_jt809_centre *c, hw_session *s, uint16_t msg_id, uint16_t data_type,
                       const char *plate, uint8_t colour, const uint8_t *data, size_t dlen,
                       const char *table, const char *id) {
  size_t cap = dlen + 64, n;
  uint8_t *body = malloc(cap);
  if (!body)
    return -ENOMEM;
  int with_vehicle = hw_jt809_has_vehicle(msg_id, hw_jt809_session_is_2019(s));
  int rc = hw_jt809_encode_sub(with_vehicle, plate ? plate : "", colour, data_type, data, dlen,
                               body, cap, &n);
  uint32_t sn = 0;
  const char *link = NULL;
  if (!rc)
    rc = hw_jt809_session_send_down(s, msg_id, body, n, &sn, &link);
  free(body);
  if (rc)
    return rc;
  hw_j9c_mark_sent(c, table, id, link, sn, hw_jt809_wall_ms());
  hw_info(HW_J9C_LOG, hw_session_tid(s), "%s %s sent as 0x%04x over the %s link (sn %u)", table,
          id, data_type, link, sn);
  return 0;
}

static void hw_j9c_scan_done(hw_jt809_centre *c);

/* Rows: id, center_id, kind, object_type, object_id, question, answers, answer_min. */
static void hw_j9c_on_inspections(void *arg, const PGresult *res) {
  hw_jt809_centre *c = arg;
  if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
    if (res)
      hw_warn(HW_J9C_LOG, NULL, "reading pending inspections: %s", hw_pg_errmsg(res));
    return;
  }
  for (int i = 0; i < PQntuples(res) && !c->stopping; i++) {
    hw_session *s = hw_j9c_session(c, PQgetvalue(res, i, 1));
    if (!s)
      continue; /* offline here: sent when it logs in */
    const char *id = PQgetvalue(res, i, 0);
    int message = !strcmp(PQgetvalue(res, i, 2), "message");
    const char *question = PQgetvalue(res, i, 5), *answers = PQgetvalue(res, i, 6);
    /* The text sent: the question, then the choices offered (if any) after a space (no line
     * break: platforms show it on one line, and a control character is not text). */
    size_t ql = strlen(question), al = strlen(answers), tl = ql + (al ? 1 + al : 0), gl;
    char *text = malloc(tl + 1);
    uint8_t *gbk = malloc(2 * tl + 1), *data = malloc(2 * tl + 64);
    int rc = -ENOMEM;
    if (text && gbk && data) {
      snprintf(text, tl + 1, "%s%s%s", question, al ? " " : "", answers);
      rc = hw_jt809__to_gbk(text, tl, gbk, 2 * tl + 1, &gl);
    }
    hw_jt809_query q;
    memset(&q, 0, sizeof q);
    if (!rc) {
      q.object_type = (uint8_t)atoi(PQgetvalue(res, i, 3));
      snprintf(q.object_id, sizeof q.object_id, "%s", PQgetvalue(res, i, 4));
      q.answer_time = (uint8_t)atoi(PQgetvalue(res, i, 7));
      q.info_id = (uint32_t)strtoull(id, NULL, 10);
      q.info = gbk;
      q.info_len = (uint32_t)gl;
      size_t dl;
      uint16_t type = message ? 0x9302 : 0x9301;
      rc = hw_jt809_encode_query(&q, type, hw_jt809_session_is_2019(s), data, 2 * tl + 64, &dl);
      if (!rc)
        rc = hw_j9c_send(c, s, HW_JT809_DOWN_PLATFORM_MSG, type, NULL, 0, data, dl,
                         "platform_inspections", id);
    }
    if (rc) {
      hw_warn(HW_J9C_LOG, hw_session_tid(s), "inspection %s not sent: %s", id, strerror(-rc));
      if (rc == -EILSEQ || rc == -EOVERFLOW) { /* never sendable: closed with the reason */
        const char *p[2] = {id, rc == -EILSEQ ? "text not representable in GBK"
                                              : "object id longer than its field"};
        hw_j9c_run(c, "inspection error",
                   "UPDATE platform_inspections SET error = $2 WHERE id = $1::bigint", 2, p);
      }
    }
    free(text);
    free(gbk);
    free(data);
  }
}

/* Rows: id, center_id, plate, plate_colour, warn_src, warn_type, warn_time s, deadline s, level,
 * supervisor, tel, email. */
static void hw_j9c_on_supervisions(void *arg, const PGresult *res) {
  hw_jt809_centre *c = arg;
  if (res && PQresultStatus(res) == PGRES_TUPLES_OK) {
    for (int i = 0; i < PQntuples(res) && !c->stopping; i++) {
      hw_session *s = hw_j9c_session(c, PQgetvalue(res, i, 1));
      if (!s)
        continue;
      const char *id = PQgetvalue(res, i, 0);
      hw_jt809_supervise sv;
      memset(&sv, 0, sizeof sv);
      sv.warn_src = (uint8_t)atoi(PQgetvalue(res, i, 4));
      sv.warn_type = (uint16_t)atoi(PQgetvalue(res, i, 5));
      sv.warn_time = strtoull(PQgetvalue(res, i, 6), NULL, 10);
      sv.supervision_id = (uint32_t)strtoull(id, NULL, 10);
      sv.deadline = strtoull(PQgetvalue(res, i, 7), NULL, 10);
      sv.level = (uint8_t)atoi(PQgetvalue(res, i, 8));
      snprintf(sv.supervisor, sizeof sv.supervisor, "%s", PQgetvalue(res, i, 9));
      snprintf(sv.tel, sizeof sv.tel, "%s", PQgetvalue(res, i, 10));
      snprintf(sv.email, sizeof sv.email, "%s", PQgetvalue(res, i, 11));
      uint8_t data[128];
      size_t dl;
      int rc = hw_jt809_encode_supervise(&sv, data, sizeof data, &dl);
      if (!rc)
        rc = hw_j9c_send(c, s, HW_JT809_DOWN_WARN_MSG, 0x9401, PQgetvalue(res, i, 2),
                         (uint8_t)atoi(PQgetvalue(res, i, 3)), data, dl,
                         "platform_supervisions", id);
      if (rc)
        hw_warn(HW_J9C_LOG, hw_session_tid(s), "supervision %s not sent: %s", id, strerror(-rc));
    }
  } else if (res) {
    hw_warn(HW_J9C_LOG, NULL, "reading pending supervisions: %s", hw_pg_errmsg(res));
  }
  hw_j9c_scan_done(c);
}

static void hw_j9c_scan(hw_jt809_centre *c) {
  if (c->stopping)
    return;
  if (c->scanning) {
    c->scan_again = 1;
    return;
  }
  char expire[16];
  snprintf(expire, sizeof expire, "%u", c->cfg.request_expire_s);
  const char *p[1] = {expire};
  /* Only platforms whose main link is open (the login wrote its row before it was answered):
   * rows of offline platforms wait without taking a batch's room. */
  static const char online[] =
      " AND r.platform IN (SELECT platform FROM platform_links WHERE link = 'main' AND "
      "down_at IS NULL) ORDER BY r.id LIMIT " HW_J9C_BATCH;
  int rc = 0;
  hw_j9c_run(c, "expiry of requests",
             "UPDATE platform_inspections SET error = 'not sent: platform offline' WHERE "
             "sent_at IS NULL AND error IS NULL AND created_at < now() - $1 * interval '1 s'",
             1, p);
  hw_j9c_run(c, "expiry of requests",
             "UPDATE platform_supervisions SET error = 'not sent: platform offline' WHERE "
             "sent_at IS NULL AND error IS NULL AND created_at < now() - $1 * interval '1 s'",
             1, p);
  char sql[1024];
  snprintf(sql, sizeof sql,
           "SELECT r.id, p.center_id, r.kind, r.object_type, r.object_id, r.question, "
           "coalesce(r.answers, ''), r.answer_min FROM platform_inspections r JOIN platforms p "
           "ON p.id = r.platform WHERE r.sent_at IS NULL AND r.error IS NULL%s",
           online);
  rc = hw_pg_async_query(c->q, sql, 0, NULL, hw_j9c_on_inspections, c);
  if (!rc) {
    snprintf(sql, sizeof sql,
             "SELECT r.id, p.center_id, coalesce(r.plate, ''), r.plate_colour, r.warn_src, "
             "r.warn_type, extract(epoch FROM r.warn_time)::bigint, extract(epoch FROM "
             "r.deadline)::bigint, r.level, r.supervisor, r.tel, r.email FROM "
             "platform_supervisions r JOIN platforms p ON p.id = r.platform WHERE r.sent_at IS "
             "NULL AND r.error IS NULL%s",
             online);
    rc = hw_pg_async_query(c->q, sql, 0, NULL, hw_j9c_on_supervisions, c);
  }
  if (rc) {
    hw_warn(HW_J9C_LOG, NULL, "outbox scan not queued: %s", strerror(-rc));
    return;
  }
  c->scanning = 1;
}

static void hw_j9c_scan_done(hw_jt809_centre *c) {
  c->scanning = 0;
  if (c->scan_again && !c->stopping) {
    c->scan_again = 0;
    hw_j9c_scan(c);
  }
}

void hw_jt809_centre_kick(hw_jt809_centre *c) { hw_j9c_scan(c); }

static void hw_j9c_on_scan_timer(uv_timer_t *t) { hw_j9c_scan(t->data); }

/* ---- LISTEN ------------------------------------------------------------------------------ */

static void hw_j9c_listen_ready(hw_pg_conn *pc) {
  hw_jt809_centre *c = pc->data;
  c->listening = 0;
  c->listen_inflight = 1;
  if (!PQsendQuery(pc->pg, "LISTEN " HW_JT809_OUTBOX_CHANNEL) || hw_pg_conn_flush(pc) < 0)
    hw_pg_conn_fail(pc, "send LISTEN");
}

static void hw_j9c_listen_io(hw_pg_conn *pc) {
  hw_jt809_centre *c = pc->data;
  while (pc->up && c->listen_inflight && !PQisBusy(pc->pg)) {
    PGresult *res = PQgetResult(pc->pg);
    if (!res) {
      c->listen_inflight = 0;
      c->listening = 1;
      hw_info(HW_J9C_LOG, NULL, "listening on %s", HW_JT809_OUTBOX_CHANNEL);
      /* Rows inserted while nobody listened. */
      hw_j9c_scan(c);
      break;
    }
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
      hw_error(HW_J9C_LOG, NULL, "LISTEN %s failed: %s", HW_JT809_OUTBOX_CHANNEL,
               hw_pg_errmsg(res));
      PQclear(res);
      hw_pg_conn_fail(pc, "LISTEN failed");
      return;
    }
    PQclear(res);
  }
  if (!pc->up)
    return;
  PGnotify *n;
  int any = 0;
  while ((n = PQnotifies(pc->pg))) {
    any = 1;
    PQfreemem(n);
  }
  if (any)
    hw_j9c_scan(c);
}

static void hw_j9c_listen_lost(hw_pg_conn *pc) {
  hw_jt809_centre *c = pc->data;
  c->listening = 0;
  c->listen_inflight = 0;
}

static void hw_j9c_maybe_done(hw_jt809_centre *c) {
  if (--c->pending_close)
    return;
  void (*cb)(void *) = c->done_cb;
  void *arg = c->done_arg;
  free(c->conninfo);
  free(c);
  if (cb)
    cb(arg);
}

static void hw_j9c_listen_closed(hw_pg_conn *pc) { hw_j9c_maybe_done(pc->data); }

static const hw_pg_conn_ops hw_j9c_listen_ops = {
    .ready = hw_j9c_listen_ready,
    .io = hw_j9c_listen_io,
    .lost = hw_j9c_listen_lost,
    .closed = hw_j9c_listen_closed,
};

/* ---- what comes up ----------------------------------------------------------------------- */

static int hw_j9c_on_answer(hw_jt809_centre *c, const char *platform, int is_2019,
                            const uint8_t *data, size_t len) {
  hw_jt809_answer a;
  int rc = hw_jt809_parse_answer(data, len, is_2019, &a);
  if (rc)
    return -EBADMSG;
  char text[HW_J9C_TEXT_MAX + 1], key[16], t[24];
  if (hw_jt809_text(a.info, a.info_len, text, sizeof text))
    snprintf(text, sizeof text, "(answer not readable as GBK, %u bytes)", a.info_len);
  snprintf(t, sizeof t, "%" PRId64, hw_jt809_wall_ms());
  /* 2011 names the question by its info id (our row id modulo 2^32); 2019 by the serial number
   * of the frame that carried it. The newest sent, unanswered match wins. */
  snprintf(key, sizeof key, "%u", is_2019 ? a.src_sn : a.info_id);
  const char *p[6] = {platform, key, t, text, a.responder, a.responder_tel};
  hw_info(HW_J9C_LOG, NULL, "platform %s answered inspection (%s %s)", platform,
          is_2019 ? "sn" : "info id", key);
  hw_j9c_run(c, "inspection answer",
             is_2019 ? "UPDATE platform_inspections SET answered_at = " HW_J9C_TS("$3") ", "
                       "delay_ms = greatest(0, $3::bigint - round(extract(epoch FROM sent_at) * "
                       "1000)::bigint), answer = $4, responder = nullif($5, ''), responder_tel "
                       "= nullif($6, '') WHERE id = (SELECT id FROM platform_inspections WHERE "
                       "platform = $1 AND kind = 'inspect' AND sent_sn = $2::bigint AND sent_at "
                       "IS NOT NULL AND answered_at IS NULL ORDER BY id DESC LIMIT 1)"
                     : "UPDATE platform_inspections SET answered_at = " HW_J9C_TS("$3") ", "
                       "delay_ms = greatest(0, $3::bigint - round(extract(epoch FROM sent_at) * "
                       "1000)::bigint), answer = $4, responder = nullif($5, ''), responder_tel "
                       "= nullif($6, '') WHERE id = (SELECT id FROM platform_inspections WHERE "
                       "platform = $1 AND kind = 'inspect' AND id % 4294967296 = $2::bigint AND "
                       "sent_at IS NOT NULL AND answered_at IS NULL ORDER BY id DESC LIMIT 1)",
             6, p);
  return 0;
}

static int hw_j9c_on_alarm(hw_jt809_centre *c, const char *platform, int is_2019,
                           const hw_jt809_sub *sub) {
  hw_jt809_alarm a;
  if (hw_jt809_parse_alarm(sub->data, sub->data_len, is_2019, &a))
    return -EBADMSG;
  char text[HW_J9C_TEXT_MAX + 1], src[8], type[8], wt[24], st[24], et[24], info[16], colour[8];
  if (hw_jt809_text(a.info, a.info_len, text, sizeof text))
    snprintf(text, sizeof text, "(text not readable as GBK, %u bytes)", a.info_len);
  snprintf(src, sizeof src, "%u", a.warn_src);
  snprintf(type, sizeof type, "%u", a.warn_type);
  snprintf(wt, sizeof wt, "%" PRId64, hw_jt809_utc_ms(a.warn_time));
  snprintf(st, sizeof st, "%" PRId64, hw_jt809_utc_ms(a.start_time));
  snprintf(et, sizeof et, "%" PRId64, hw_jt809_utc_ms(a.end_time));
  snprintf(info, sizeof info, "%u", a.info_id);
  const char *plate = is_2019 ? a.plate : sub->has_vehicle ? sub->plate : "";
  snprintf(colour, sizeof colour, "%u", is_2019 ? a.plate_colour : sub->plate_colour);
  const char *p[11] = {platform,
                       is_2019 ? NULL : src,
                       type,
                       wt,
                       is_2019 && a.times == 3 ? st : NULL,
                       is_2019 ? et : NULL,
                       is_2019 ? NULL : info,
                       plate[0] ? plate : NULL,
                       plate[0] ? colour : NULL,
                       is_2019 ? a.src_platform : NULL,
                       text};
  hw_info(HW_J9C_LOG, NULL, "platform %s reported alarm type 0x%04x for '%s'", platform,
          a.warn_type, plate);
  hw_j9c_run(c, "platform alarm",
             "INSERT INTO platform_alarms (platform, warn_src, warn_type, warn_time, start_time, "
             "end_time, info_id, plate, plate_colour, src_platform, info) VALUES ($1, $2, $3, "
             HW_J9C_TS("$4") ", " HW_J9C_TS("$5") ", " HW_J9C_TS("$6") ", $7, $8, $9, $10, $11)",
             11, p);
  return 0;
}

static int hw_j9c_on_supervise_rsp(hw_jt809_centre *c, const char *platform, const uint8_t *data,
                                   size_t len) {
  uint32_t sid;
  uint8_t res;
  if (hw_jt809_parse_supervise_rsp(data, len, &sid, &res))
    return -EBADMSG;
  char id[16], result[8], t[24];
  snprintf(id, sizeof id, "%u", sid);
  snprintf(result, sizeof result, "%u", res);
  snprintf(t, sizeof t, "%" PRId64, hw_jt809_wall_ms());
  const char *p[4] = {platform, id, result, t};
  hw_info(HW_J9C_LOG, NULL, "platform %s answered supervision %s: result %s", platform, id,
          result);
  hw_j9c_run(c, "supervision answer",
             "UPDATE platform_supervisions SET answered_at = " HW_J9C_TS("$4") ", result = "
             "$3::smallint, delay_ms = greatest(0, $4::bigint - round(extract(epoch FROM sent_at) "
             "* 1000)::bigint) WHERE id = (SELECT id FROM platform_supervisions WHERE platform = "
             "$1 AND id % 4294967296 = $2::bigint AND sent_at IS NOT NULL AND answered_at IS NULL "
             "ORDER BY id DESC LIMIT 1)",
             4, p);
  return 0;
}

int hw_jt809_centre_on_up(hw_jt809_centre *c, const char *platform, int is_2019, uint16_t msg_id,
                          const uint8_t *body, size_t len) {
  hw_jt809_sub sub;
  if (hw_jt809_parse_sub(body, len, hw_jt809_has_vehicle(msg_id, is_2019), &sub))
    return -EBADMSG;
  if (msg_id == HW_JT809_UP_PLATFORM_MSG && sub.data_type == 0x1301)
    return hw_j9c_on_answer(c, platform, is_2019, sub.data, sub.data_len);
  if (msg_id == HW_JT809_UP_WARN_MSG && sub.data_type == 0x1402)
    return hw_j9c_on_alarm(c, platform, is_2019, &sub);
  if (msg_id == HW_JT809_UP_WARN_MSG && sub.data_type == 0x1401)
    return hw_j9c_on_supervise_rsp(c, platform, sub.data, sub.data_len);
  hw_debug(HW_J9C_LOG, NULL, "platform %s: 0x%04x/0x%04x not handled", platform, msg_id,
           sub.data_type);
  return 0;
}

/* ---- life -------------------------------------------------------------------------------- */

int hw_jt809_centre_start(hw_jt809_centre **out, uv_loop_t *loop, hw_registry *registry,
                          const hw_jt809_centre_config *cfg) {
  if (!cfg->conninfo || !cfg->slave_timeout_ms || !cfg->slave_heartbeat_ms ||
      !cfg->slave_backoff_min_ms || cfg->slave_backoff_max_ms < cfg->slave_backoff_min_ms ||
      cfg->seen_ms < 1000)
    return -EINVAL;
  hw_jt809_centre *c = calloc(1, sizeof *c);
  if (!c)
    return -ENOMEM;
  c->loop = loop;
  c->registry = registry;
  c->cfg = *cfg;
  c->conninfo = strdup(cfg->conninfo);
  c->cfg.conninfo = c->conninfo;
  if (sodium_init() < 0) {
    free(c->conninfo);
    free(c);
    return -EIO;
  }
  uint8_t rnd[16];
  randombytes_buf(rnd, sizeof rnd);
  sodium_bin2hex(c->instance, sizeof c->instance, rnd, sizeof rnd);
  int rc = c->conninfo ? 0 : -ENOMEM;
  if (!rc)
    rc = hw_pg_async_start(&c->q, loop, c->conninfo, "jt809");
  if (rc) {
    free(c->conninfo);
    free(c);
    return rc;
  }
  if ((rc = hw_pg_conn_init(&c->listen, loop, c->conninfo, "jt809-outbox", &hw_j9c_listen_ops,
                            c))) {
    c->pending_close = 1;
    c->stopping = 1;
    hw_pg_async_stop(c->q, (void (*)(void *))hw_j9c_maybe_done, c);
    return rc;
  }
  uv_timer_init(loop, &c->scan);
  c->scan.data = c;
  if (cfg->scan_ms)
    uv_timer_start(&c->scan, hw_j9c_on_scan_timer, cfg->scan_ms, cfg->scan_ms);
  uv_timer_init(loop, &c->seen);
  c->seen.data = c;
  /* At once: the rows a dead predecessor left are closed as soon as they are stale. */
  uv_timer_start(&c->seen, hw_j9c_on_seen_timer, 0, c->cfg.seen_ms);
  *out = c;
  return 0;
}

static void hw_j9c_timer_closed(uv_handle_t *h) { hw_j9c_maybe_done(h->data); }
static void hw_j9c_q_closed(void *arg) { hw_j9c_maybe_done(arg); }

static void hw_j9c_final(uv_timer_t *t) {
  hw_jt809_centre *c = t->data;
  if (c->final)
    return;
  c->final = 1;
  c->pending_close = 4;
  uv_timer_stop(&c->scan);
  uv_close((uv_handle_t *)&c->scan, hw_j9c_timer_closed);
  uv_timer_stop(&c->seen);
  uv_close((uv_handle_t *)&c->seen, hw_j9c_timer_closed);
  hw_pg_conn_close(&c->listen);
  hw_pg_async_stop(c->q, hw_j9c_q_closed, c);
}

static void hw_j9c_on_deadline(uv_timer_t *t) {
  hw_warn(HW_J9C_LOG, NULL, "stopping before PostgreSQL took the last link times, answers or "
          "alarms (2 s): those still queued are not recorded");
  hw_j9c_final(t);
}

/* The queries run in order: once this one is answered, every write queued before it (the link
 * down times of the sessions just closed among them) is done. */
static void hw_j9c_on_last(void *arg, const PGresult *res) {
  (void)res;
  hw_jt809_centre *c = arg;
  if (!c->final) /* not from inside hw_pg_async's callback: from the loop */
    uv_timer_start(&c->scan, hw_j9c_final, 0, 0);
}

void hw_jt809_centre_stop(hw_jt809_centre *c, void (*done_cb)(void *arg), void *arg) {
  c->stopping = 1;
  c->done_cb = done_cb;
  c->done_arg = arg;
  uv_timer_stop(&c->scan);
  uv_timer_stop(&c->seen);
  if (hw_pg_async_query(c->q, "SELECT 1", 0, NULL, hw_j9c_on_last, c)) {
    uv_timer_start(&c->scan, hw_j9c_final, 0, 0);
    return;
  }
  uv_timer_start(&c->scan, hw_j9c_on_deadline, 2000, 0);
}
