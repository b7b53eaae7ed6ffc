/* haulwatch platform inspect|message|supervise|inspections: requests to JT/T 809 platforms and
 * their answers (schema/016_jt809_links.sql). The CLI only talks to PostgreSQL: it inserts a
 * pending row, whose trigger notifies hw_platform_outbox; the daemon that holds the platform's
 * link sends it (slave link, else main link) and records when, and records the answer and its
 * delay when it comes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/options.h"
#include "cli/cli.h"
#include "cli/cli_pg.h"

#define HW_PI_SCHEMA 16 /* platform_inspections, platform_supervisions */

typedef struct hw_pi_settings {
  char pg[1024];
  char question[2048];
  char answers[1024];
  uint32_t object_type;
  char object_id[64];
  uint32_t answer_min;
  uint32_t warn_type;
  uint32_t warn_src;
  char warn_time[40];
  char deadline[40];
  uint32_t level;
  char plate[64];
  uint32_t plate_colour;
  char supervisor[32];
  char tel[32];
  char email[40];
  uint32_t limit;
} hw_pi_settings;

#define S hw_pi_settings
static const hw_option hw_pi_options[] = {
    HW_OPT_S(S, pg, NULL, HW_CLI_PG_ENV, HW_CLI_PG_HELP),
    HW_OPT_S(S, question, NULL, NULL, "inspect, message: the question or message text (UTF-8; sent in GBK)"),
    HW_OPT_S(S, answers, NULL, NULL, "inspect: the choices offered, sent on a line after the question"),
    HW_OPT_N(S, object_type, "0", 0, 255, NULL, "inspect, message: 0 the platform, 1 one company of it, 2 all its companies"),
    HW_OPT_S(S, object_id, NULL, NULL, "inspect, message: the object's id (12 bytes; 20 in 2019)"),
    HW_OPT_N(S, answer_min, "10", 1, 255, NULL, "inspect: minutes the platform has to answer (sent in 2019; the report's default window)"),
    HW_OPT_N(S, warn_type, "0", 0, 65535, NULL, "supervise: the alarm type (JT/T 809 warn type)"),
    HW_OPT_N(S, warn_src, "1", 0, 255, NULL, "supervise: alarm source (1 terminal, 2 enterprise, 3 government, 9 other)"),
    HW_OPT_S(S, warn_time, NULL, NULL, "supervise: when the alarm happened (timestamp, default now)"),
    HW_OPT_S(S, deadline, NULL, NULL, "supervise: handle by (timestamp, default in 24 hours)"),
    HW_OPT_N(S, level, "1", 0, 1, NULL, "supervise: 0 urgent, 1 normal"),
    HW_OPT_S(S, plate, NULL, NULL, "supervise: the vehicle's plate (in the 2011 wrapper)"),
    HW_OPT_N(S, plate_colour, "2", 0, 255, NULL, "supervise: plate colour code"),
    HW_OPT_S(S, supervisor, NULL, NULL, "supervise: the supervisor's name"),
    HW_OPT_S(S, tel, NULL, NULL, "supervise: the supervisor's telephone"),
    HW_OPT_S(S, email, NULL, NULL, "supervise: the supervisor's e-mail"),
    HW_OPT_N(S, limit, "50", 1, 100000, NULL, "inspections: newest rows listed"),
};
#undef S

static const char hw_pi_usage[] =
    "usage: haulwatch platform inspect ID --question TEXT [--answers TEXT] [--object-type N]\n"
    "                          [--object-id TEXT] [--answer-min N]      sends 0x9301 (查岗)\n"
    "       haulwatch platform message ID --question TEXT [--object-type N --object-id TEXT]\n"
    "                                                                   sends 0x9302\n"
    "       haulwatch platform supervise ID --warn-type N [--warn-time T] [--deadline T]\n"
    "                          [--plate P --plate-colour N] [--level 0|1] [--supervisor NAME]\n"
    "                          [--tel T] [--email E]                    sends 0x9401 (督办)\n"
    "       haulwatch platform inspections [ID] [--limit N]    answered, delay, unanswered\n";

static int hw_pi_queue(PGconn *conn, const char *what, const char *sql, int n,
                       const char *const *params) {
  PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
  int status = 1;
  if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
    hw_cli_pg_report(what, "refused", res);
  else {
    printf("%s %s queued for platform %s: the daemon holding its link sends it\n", what,
           PQgetvalue(res, 0, 0), params[0]);
    status = 0;
  }
  PQclear(res);
  return status;
}

static int hw_pi_inspect(hw_pi_settings *s, char **pos, int npos, int message) {
  const char *cmd = message ? "platform message" : "platform inspect";
  if (npos != 2 || !s->question[0]) {
    fprintf(stderr, "haulwatch %s: give the platform's ID and --question\n%s", cmd, hw_pi_usage);
    return 2;
  }
  PGconn *conn = NULL;
  if (hw_cli_pg_connect(s->pg, HW_PI_SCHEMA, &conn))
    return 1;
  char ot[8], am[8];
  snprintf(ot, sizeof ot, "%u", s->object_type);
  snprintf(am, sizeof am, "%u", s->answer_min);
  const char *p[7] = {pos[1], message ? "message" : "inspect", ot, s->object_id, s->question,
                      s->answers[0] ? s->answers : NULL, am};
  int rc = hw_pi_queue(conn, message ? "message" : "inspection",
                       "INSERT INTO platform_inspections (platform, kind, object_type, object_id, "
                       "question, answers, answer_min) VALUES ($1, $2, $3, $4, $5, $6, $7) "
                       "RETURNING id",
                       7, p);
  PQfinish(conn);
  return rc;
}

static int hw_pi_supervise(hw_pi_settings *s, char **pos, int npos) {
  if (npos != 2) {
    fprintf(stderr, "haulwatch platform supervise: give the platform's ID\n%s", hw_pi_usage);
    return 2;
  }
  PGconn *conn = NULL;
  if (hw_cli_pg_connect(s->pg, HW_PI_SCHEMA, &conn))
    return 1;
  char wt[8], ws[8], lv[8], pc[8];
  snprintf(wt, sizeof wt, "%u", s->warn_type);
  snprintf(ws, sizeof ws, "%u", s->warn_src);
  snprintf(lv, sizeof lv, "%u", s->level);
  snprintf(pc, sizeof pc, "%u", s->plate_colour);
  const char *p[11] = {pos[1], s->plate[0] ? s->plate : NULL, pc, ws, wt,
                       s->warn_time[0] ? s->warn_time : NULL,
                       s->deadline[0] ? s->deadline : NULL, lv, s->supervisor, s->tel, s->email};
  int rc = hw_pi_queue(conn, "supervision",
                       "INSERT INTO platform_supervisions (platform, plate, plate_colour, "
                       "warn_src, warn_type, warn_time, deadline, level, supervisor, tel, email) "
                       "VALUES ($1, $2, $3, $4, $5, coalesce($6::timestamptz, now()), "
                       "coalesce($7::timestamptz, now() + interval '24 hours'), $8, $9, $10, $11) "
                       "RETURNING id",
                       11, p);
  PQfinish(conn);
  return rc;
}

static int hw_pi_list(hw_pi_settings *s, char **pos, int npos) {
  PGconn *conn = NULL;
  if (npos > 2) {
    fprintf(stderr, "%s", hw_pi_usage);
    return 2;
  }
  if (hw_cli_pg_connect(s->pg, HW_PI_SCHEMA, &conn))
    return 1;
  char limit[16];
  snprintf(limit, sizeof limit, "%u", s->limit);
  const char *p[2] = {npos == 2 ? pos[1] : NULL, limit};
  PGresult *res = PQexecParams(
      conn,
      "SELECT id, platform, kind, to_char(created_at, 'YYYY-MM-DD HH24:MI:SS'), "
      "coalesce(to_char(sent_at, 'HH24:MI:SS.MS') || ' ' || sent_link, '-'), "
      "CASE WHEN kind = 'message' THEN '-' WHEN answered_at IS NOT NULL THEN 'answered' "
      "WHEN error IS NOT NULL THEN error WHEN sent_at IS NULL THEN 'pending' "
      "WHEN now() > sent_at + answer_min * interval '1 minute' THEN 'unanswered' "
      "ELSE 'waiting' END, coalesce(delay_ms::text, '-'), left(question, 40), "
      "coalesce(left(answer, 40), '') FROM platform_inspections WHERE ($1::text IS NULL OR "
      "platform = $1) ORDER BY id DESC LIMIT $2::int",
      2, NULL, p, NULL, NULL, 0);
  int status = 1;
  if (PQresultStatus(res) == PGRES_TUPLES_OK) {
    printf("%-6s %-16s %-8s %-19s %-18s %-12s %9s  %s\n", "ID", "PLATFORM", "KIND", "CREATED",
           "SENT", "STATE", "DELAY_MS", "QUESTION / ANSWER");
    for (int i = 0; i < PQntuples(res); i++)
      printf("%-6s %-16s %-8s %-19s %-18s %-12s %9s  %s%s%s\n", PQgetvalue(res, i, 0),
             PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), PQgetvalue(res, i, 3),
             PQgetvalue(res, i, 4), PQgetvalue(res, i, 5), PQgetvalue(res, i, 6),
             PQgetvalue(res, i, 7), PQgetvalue(res, i, 8)[0] ? " / " : "",
             PQgetvalue(res, i, 8));
    status = 0;
  } else {
    hw_cli_pg_report("platform inspections", "query", res);
  }
  PQclear(res);
  PQfinish(conn);
  return status;
}

int hw_cmd_platform_interact(int argc, char **argv) {
  hw_pi_settings s;
  memset(&s, 0, sizeof s);
  char *pos[4];
  int npos = 0;
  int rc = hw_options_parse(hw_pi_options, HW_ARRAY_SIZE(hw_pi_options), &s, argc, argv,
                            hw_pi_usage, pos, (int)HW_ARRAY_SIZE(pos), &npos);
  if (rc)
    return rc > 0 ? 0 : 2;
  if (npos >= 1 && !strcmp(pos[0], "inspect"))
    return hw_pi_inspect(&s, pos, npos, 0);
  if (npos >= 1 && !strcmp(pos[0], "message"))
    return hw_pi_inspect(&s, pos, npos, 1);
  if (npos >= 1 && !strcmp(pos[0], "supervise"))
    return hw_pi_supervise(&s, pos, npos);
  if (npos >= 1 && !strcmp(pos[0], "inspections"))
    return hw_pi_list(&s, pos, npos);
  fprintf(stderr, "%s", hw_pi_usage);
  return 2;
}

int hw_platform_interact_is(const char *sub) {
  return !strcmp(sub, "inspect") || !strcmp(sub, "message") || !strcmp(sub, "supervise") ||
         !strcmp(sub, "inspections");
}
