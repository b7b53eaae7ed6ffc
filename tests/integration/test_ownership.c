/* One owner per terminal (docs/ownership.md), with two "daemons" A and B in this process, each
 * with its own registry, rules engine, rule store, violation store and claims, on one loop and a
 * fresh database: the case the many-nodes test (a killed daemon) does not reach, an old owner
 * that is still alive and still evaluating when the terminal is claimed elsewhere.
 *
 * test_move_live_owner: a truck drives 5 h (one fix a minute), then rests 25 min. A claims it
 * (epoch 1) and evaluates the first 150 minutes, its state saved fenced; B claims it (epoch 2),
 * which loads A's saved state and replays the stored fixes after it; A goes on evaluating 20
 * more fixes it received: its save and its violation write are refused (the table keeps B's
 * data), and A drops the terminal on learning it. B evaluates the rest. The violations table
 * then holds exactly the one fatigue_continuous of an uninterrupted run, with its values.
 *
 * test_hold: an owned terminal's state is not saved while one of its violation events waits to
 * be written (a saved state must never be ahead of the violation table).
 *
 * test_batch: claims asked for while a claim statement runs go together in the next one (a login
 * storm), each terminal once per statement, and each gets what it would alone: its epoch, its
 * saved state, its own fixes replayed. */
#include "viol_util.h"

#include "sinks/owner_claim.h"
#include "sinks/rule_store.h"
#include "rules/rules.h"
#include "sinks/violation_store.h"

#define DB "hw_test_owner"
#define TID "013800000077"
#define MINUTE 60000LL
#define MAXEV 4096
#define MAXFIX 1024

typedef struct fixture {
  hw_test_loop env;
  char conninfo[512];
  PGconn *pg;
  hw_registry_snapshot *snap;
  const hw_vehicle *v;
  hw_fix fix[MAXFIX];
  size_t nfix;
} fixture;

/* One daemon's rules side. */
typedef struct node {
  hw_registry reg;
  hw_rules *e;
  hw_violation_store *vs;
  hw_rule_store *rs;
  hw_owner_claims *claims;
  hw_violation_event last_fatigue; /* the last fatigue_continuous event it emitted */
  size_t nev, fenced_calls;
  uint64_t fenced_epoch;
} node;

static void node_on_event(const hw_violation_event *ev, void *arg) {
  node *n = arg;
  n->nev++;
  if (ev->kind == HW_VIOL_FATIGUE_CONTINUOUS)
    n->last_fatigue = *ev;
  if (n->vs)
    hw_violation_store_put_owned(n->vs, ev, NULL, hw_registry_find(&n->reg, ev->terminal_id));
}

/* What the pipeline does on a refusal (pipeline.c, hw_pipeline_on_fenced), recorded. */
static void node_on_fenced(void *arg, const char *tid, uint64_t epoch) {
  node *n = arg;
  hw_terminal *t = hw_registry_find(&n->reg, tid);
  n->fenced_calls++;
  n->fenced_epoch = epoch;
  if (!t || t->owner_epoch != epoch)
    return;
  t->owner_epoch = HW_OWNER_LOST;
  hw_rule_state_free(t->rules);
  t->rules = NULL;
}

static int node_hold(void *arg, const hw_terminal *t) {
  (void)arg;
  return t->viol_waiting > 0;
}

static void node_engine(node *n) {
  hw_rules_config cfg;
  hw_rules_config_default(&cfg);
  cfg.quality.max_past_ms = 400LL * 86400000; /* the drive is in March 2026 */
  assert_int_equal(hw_rules_new(&cfg, node_on_event, n, &n->e), 0);
}

static void node_start(node *n, fixture *f, const char *name) {
  memset(n, 0, sizeof *n);
  node_engine(n);
  assert_int_equal(hw_violation_store_start(&n->vs, &f->env.loop, f->conninfo), 0);
  assert_int_equal(hw_rule_store_start(&n->rs, &f->env.loop, f->conninfo, &n->reg, 50), 0);
  assert_int_equal(hw_owner_claims_start(&n->claims, &f->env.loop, f->conninfo, name, n->e), 0);
  hw_rule_store_set_owner(n->rs, node_hold, node_on_fenced, n);
  hw_violation_store_set_fenced(n->vs, node_on_fenced, n);
  hw_terminal *t;
  assert_int_equal(hw_registry_get(&n->reg, TID, &t), 0);
  t->vehicle = f->v;
}

static void node_stop(node *n, fixture *f) {
  int a = 0, b = 0, c = 0;
  hw_owner_claims_stop(n->claims, hw_test_on_done, &a);
  assert_true(hw_test_loop_run_until(&f->env, hw_test_int_set, &a));
  hw_rule_store_stop(n->rs, hw_test_on_done, &b);
  assert_true(hw_test_loop_run_until(&f->env, hw_test_int_set, &b));
  hw_violation_store_stop(n->vs, hw_test_on_done, &c);
  assert_true(hw_test_loop_run_until(&f->env, hw_test_int_set, &c));
  hw_registry_foreach(&n->reg, t) {
    hw_rule_state_free(t->rules);
    t->rules = NULL;
  }
  hw_registry_free(&n->reg);
  hw_rules_free(n->e);
}

static hw_terminal *node_t(node *n) { return hw_registry_find(&n->reg, TID); }

static void node_feed(node *n, const fixture *f, size_t from, size_t to) {
  hw_terminal *t = node_t(n);
  for (size_t i = from; i < to; i++) {
    hw_fix x = f->fix[i];
    assert_int_equal(hw_rules_on_fix(n->e, t, f->v, &x), 0);
    assert_int_equal(x.quality, 0);
  }
}

static void state_hex(const hw_terminal *t, char *hex) {
  uint8_t buf[HW_RULE_STATE_ENCODED_MAX];
  size_t len;
  assert_int_equal(hw_rule_state_encode(t->rules, buf, sizeof buf, &len), 0);
  for (size_t i = 0; i < len; i++)
    snprintf(hex + 2 * i, 3, "%02x", buf[i]);
  hex[2 * len] = '\0';
}

static int claim_done_cb_result;
static void claim_done(void *arg, int result) {
  claim_done_cb_result = result;
  *(int *)arg = 1;
}

static void node_claim(node *n, fixture *f) {
  int done = 0;
  claim_done_cb_result = -1;
  assert_int_equal(hw_owner_claim_start(n->claims, node_t(n), claim_done, &done, NULL), 0);
  assert_true(hw_test_loop_run_until(&f->env, hw_test_int_set, &done));
  assert_int_equal(claim_done_cb_result, 0);
}

/* ---- the drive: 300 minutes at 60 km/h, then 25 minutes standing ---------------------------- */

static void drive(fixture *f, int minutes, int moving) {
  for (int i = f->nfix ? 0 : -1; i < minutes; i++) {
    assert_true(f->nfix < MAXFIX - 1);
    hw_fix *p = &f->fix[f->nfix];
    const hw_fix *prev = f->nfix ? &f->fix[f->nfix - 1] : NULL;
    memset(p, 0, sizeof *p);
    p->ts_ms = prev ? prev->ts_ms + MINUTE : VU_T0;
    p->recv_ms = p->ts_ms + 1500;
    p->lat_e6 = prev ? prev->lat_e6 + (moving ? 8993 : 0) : 30000000;
    p->lon_e6 = 114000000;
    p->speed_dkmh = moving ? 600 : 0;
    p->alt_m = 80;
    p->status = HW_STATUS_POSITIONED | 0x1u;
    p->odometer_hm = prev ? prev->odometer_hm + (moving ? 10 : 0) : 123450;
    p->source = 1;
    f->nfix++;
  }
}

/* Stores fixes[from, to) in positions, as the writer of whichever daemon took them would. */
static void store_fixes(fixture *f, size_t from, size_t to) {
  size_t cap = 256 + (to - from) * 320, len = 0;
  char *sql = malloc(cap);
  assert_non_null(sql);
  len += (size_t)snprintf(sql, cap, "INSERT INTO positions (terminal_id, ts, seq, recv_ts, lat, lon, "
                          "speed_kmh, heading, alt_m, alarm, status, odometer_km, source, quality) "
                          "VALUES ");
  for (size_t i = from; i < to; i++) {
    const hw_fix *p = &f->fix[i];
    len += (size_t)snprintf(sql + len, cap - len,
                            "%s('" TID "', timestamptz 'epoch' + %lld * interval '1 ms', 0, "
                            "timestamptz 'epoch' + %lld * interval '1 ms', %d / 1e6, %d / 1e6, "
                            "%u / 10.0, %u, %d, %u, %u, %u / 10.0, %u, 0)",
                            i == from ? "" : ", ", (long long)p->ts_ms, (long long)p->recv_ms,
                            p->lat_e6, p->lon_e6, p->speed_dkmh, p->heading, p->alt_m, p->alarm,
                            p->status, p->odometer_hm, p->source);
    assert_true(len < cap);
  }
  PGresult *res = PQexec(f->pg, sql);
  if (PQresultStatus(res) != PGRES_COMMAND_OK)
    fail_msg("storing fixes: %s", PQresultErrorMessage(res));
  PQclear(res);
  free(sql);
}

static void fx_start(fixture *f) {
  memset(f, 0, sizeof *f);
  hw_test_fresh_db(DB, f->conninfo, sizeof f->conninfo);
  f->pg = hw_test_pg_connect(f->conninfo);
  free(vu_pg_text(f->pg, "INSERT INTO vehicles (plate, plate_colour, class_code, terminal_id, "
                         "region, enterprise) VALUES ('冀A12377', 2, 'heavy_truck', '" TID "', "
                         "'130100', 'Hebei Haulage')"));
  assert_int_equal(hw_registry_snapshot_load(f->pg, &f->snap), 0);
  f->v = hw_registry_snapshot_vehicle(f->snap, TID);
  assert_non_null(f->v);
  hw_test_loop_init(&f->env);
  drive(f, 300, 1);
  drive(f, 25, 0);
}

static void fx_stop(fixture *f) {
  hw_test_loop_close(&f->env);
  hw_registry_snapshot_unref(f->snap);
  PQfinish(f->pg);
}

static int stores_idle(void *arg) {
  node *n = arg;
  hw_violation_store_stats vs;
  hw_violation_store_get_stats(n->vs, &vs);
  return vs.pending == 0;
}

typedef struct rs_wait {
  node *n;
  uint64_t cycles;
} rs_wait;

static int rs_cycles(void *arg) {
  rs_wait *w = arg;
  hw_rule_store_stats st;
  hw_rule_store_get_stats(w->n->rs, &st);
  return st.cycles >= w->cycles;
}

/* Two more complete save cycles of n: everything changed before this call is saved (or refused). */
static void wait_saves(fixture *f, node *n) {
  hw_rule_store_stats st;
  hw_rule_store_get_stats(n->rs, &st);
  rs_wait w = {n, st.cycles + 2};
  assert_true(hw_test_loop_run_until(&f->env, rs_cycles, &w));
}

static void test_move_live_owner(void **state) {
  (void)state;
  fixture f;
  fx_start(&f);

  /* The reference: one engine, every fix. */
  node ref;
  memset(&ref, 0, sizeof ref);
  node_engine(&ref);
  hw_terminal *rt;
  assert_int_equal(hw_registry_get(&ref.reg, TID, &rt), 0);
  node_feed(&ref, &f, 0, f.nfix);
  assert_int_equal(ref.last_fatigue.phase, HW_PHASE_CLOSE);

  node a, b;
  node_start(&a, &f, "A");
  node_start(&b, &f, "B");

  /* A owns the truck and evaluates its first 150 minutes; the state is saved under epoch 1. */
  node_claim(&a, &f);
  assert_int_equal(node_t(&a)->owner_epoch, 1);
  node_feed(&a, &f, 0, 151);
  store_fixes(&f, 0, 151);
  wait_saves(&f, &a);
  vu_expect(f.pg, "1|A", "SELECT epoch || '|' || owner FROM terminal_owner");
  char *saved_by_a = vu_pg_text(f.pg, "SELECT encode(state, 'hex') FROM rule_state");
  /* A takes 10 more fixes (stored, acknowledged) that no save of it covers: one of its
   * violation events waiting to be written holds its saves meanwhile. */
  node_t(&a)->viol_waiting++;
  node_feed(&a, &f, 151, 161);
  store_fixes(&f, 151, 161);

  /* The truck reconnects to B: epoch 2, A's saved state loaded, the 10 fixes after it replayed. */
  node_claim(&b, &f);
  hw_owner_claims_stats cs;
  hw_owner_claims_get_stats(b.claims, &cs);
  assert_int_equal(node_t(&b)->owner_epoch, 2);
  assert_int_equal(cs.loaded, 1);
  assert_int_equal(cs.replayed, 10);
  assert_int_equal(hw_rule_state_horizon_ms(node_t(&b)->rules), f.fix[160].ts_ms);
  vu_expect(f.pg, "2|B", "SELECT epoch || '|' || owner FROM terminal_owner");
  wait_saves(&f, &b); /* B has saved what it claimed: A's attempts come after it */

  /* A, still alive, evaluates 20 fixes it had received (the terminal will send them to B again:
   * never acknowledged on its new connection). Its save is held by the event still waiting. */
  node_feed(&a, &f, 161, 181);
  /* The violation fence: an event A writes under epoch 1 is refused, and A learns it lost the
   * truck (the waiting event held A's save until then: nothing of A's was saved). */
  hw_violation_event stale = vu_event(TID, HW_VIOL_SPEEDING, HW_PHASE_OPEN, f.fix[170].ts_ms,
                                      f.fix[171].ts_ms, 1100, 1000, 1, "{}");
  hw_violation_store_put_owned(a.vs, &stale, NULL, node_t(&a));
  node_t(&a)->viol_waiting--; /* the hold taken above for the 10 fixes; the event holds now */
  assert_true(hw_test_loop_run_until(&f.env, stores_idle, &a));
  hw_violation_store_stats avs;
  hw_violation_store_get_stats(a.vs, &avs);
  assert_int_equal(avs.fenced, 1);
  assert_int_equal(a.fenced_calls, 1);
  assert_int_equal(a.fenced_epoch, 1);
  assert_int_equal(node_t(&a)->owner_epoch, HW_OWNER_LOST);
  assert_null(node_t(&a)->rules);
  vu_expect(f.pg, "0", "SELECT count(*) FROM violations WHERE kind = 'speeding'");
  char hex[2 * HW_RULE_STATE_ENCODED_MAX + 1];
  state_hex(node_t(&b), hex);
  vu_expect(f.pg, hex, "SELECT encode(state, 'hex') FROM rule_state");
  /* Whatever a lost terminal does now writes nothing, and is counted. */
  node_feed(&a, &f, 181, 191);
  hw_violation_store_put_owned(a.vs, &stale, NULL, node_t(&a));
  wait_saves(&f, &a);
  hw_violation_store_get_stats(a.vs, &avs);
  assert_int_equal(avs.fenced, 2);
  vu_expect(f.pg, hex, "SELECT encode(state, 'hex') FROM rule_state");

  /* The rule-state fence, on its own: an owner that has not learnt it lost (no event of it was
   * refused yet) saves under epoch 1: refused, and B's state stays. */
  hw_rule_state_free(node_t(&a)->rules);
  node_t(&a)->rules = NULL;
  node_t(&a)->owner_epoch = 1;
  node_feed(&a, &f, 161, 181);
  wait_saves(&f, &a);
  hw_rule_store_stats ars;
  hw_rule_store_get_stats(a.rs, &ars);
  assert_int_equal(ars.refused, 1);
  assert_int_equal(a.fenced_calls, 2); /* the event's refusal, then this one */
  assert_int_equal(node_t(&a)->owner_epoch, HW_OWNER_LOST);
  assert_null(node_t(&a)->rules);
  vu_expect(f.pg, hex, "SELECT encode(state, 'hex') FROM rule_state");
  free(saved_by_a);

  /* B gets the rest, including the 20 A evaluated (sent again by the terminal). */
  node_feed(&b, &f, 161, f.nfix);
  store_fixes(&f, 161, f.nfix);
  wait_saves(&f, &b);
  assert_true(hw_test_loop_run_until(&f.env, stores_idle, &b));
  hw_rule_store_stats brs;
  hw_rule_store_get_stats(b.rs, &brs);
  assert_int_equal(brs.refused, 0);
  assert_int_equal(b.fenced_calls, 0);

  /* One episode, with the uninterrupted run's values. */
  assert_int_equal(b.last_fatigue.phase, HW_PHASE_CLOSE);
  assert_string_equal(b.last_fatigue.episode_id, ref.last_fatigue.episode_id);
  assert_int_equal(b.last_fatigue.value, ref.last_fatigue.value);
  char want[256];
  snprintf(want, sizeof want, "1|%s|%lld|true", ref.last_fatigue.episode_id,
           (long long)ref.last_fatigue.value);
  vu_expect(f.pg, want, "SELECT count(*) || '|' || min(episode_key) || '|' || "
            "round(min(measured))::bigint || '|' || bool_and(ended_at IS NOT NULL) FROM violations "
            "WHERE kind = 'fatigue_continuous'");
  vu_expect(f.pg, "1", "SELECT count(*) FROM violations");

  node_stop(&a, &f);
  node_stop(&b, &f);
  hw_registry_foreach(&ref.reg, t) {
    hw_rule_state_free(t->rules);
    t->rules = NULL;
  }
  hw_registry_free(&ref.reg);
  hw_rules_free(ref.e);
  fx_stop(&f);
}

/* The same daemon claiming again (a reconnect to it) keeps its state in memory. */
static void test_reclaim_keeps(void **state) {
  (void)state;
  fixture f;
  fx_start(&f);
  node a;
  node_start(&a, &f, "A");
  node_claim(&a, &f);
  node_feed(&a, &f, 0, 30);
  struct hw_rule_state *before = node_t(&a)->rules;
  node_claim(&a, &f);
  hw_owner_claims_stats cs;
  hw_owner_claims_get_stats(a.claims, &cs);
  assert_int_equal(cs.kept, 1);
  assert_int_equal(node_t(&a)->owner_epoch, 2);
  assert_ptr_equal(node_t(&a)->rules, before);
  node_stop(&a, &f);
  fx_stop(&f);
}

/* What terminal_owner's driver card columns hold, for the waits below. */
typedef struct card_row {
  fixture *f;
  const char *where; /* a condition on the row */
} card_row;

static int card_row_is(void *arg) {
  card_row *w = arg;
  char sql[256];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM terminal_owner WHERE terminal_id = '" TID
                            "' AND %s", w->where);
  return hw_test_pg_scalar(w->f->pg, sql) == 1;
}

/* The driver card beside the owner (schema 025): the owner's write reaches the next daemon's
 * claim, and a write by a daemon that has lost the terminal is refused (fenced by the epoch), so
 * the newer owner's card is what the next claim brings. */
static void test_card_follows_fenced(void **state) {
  (void)state;
  fixture f;
  fx_start(&f);
  node a, b;
  node_start(&a, &f, "A");
  node_start(&b, &f, "B");
  node_claim(&a, &f);
  hw_terminal *ta = node_t(&a), *tb = node_t(&b);
  ta->card = (hw_driver_card){.since_ms = 1000, .has_driver = 1};
  snprintf(ta->card.driver_id, sizeof ta->card.driver_id, "D-A");
  assert_int_equal(hw_owner_card_save(a.claims, ta), 0);
  card_row w = {&f, "driver_id = 'D-A' AND driver_since_ms = 1000"};
  assert_true(hw_test_loop_run_until(&f.env, card_row_is, &w));

  node_claim(&b, &f); /* epoch 2: B takes the card with the terminal */
  assert_int_equal(tb->card.has_driver, 1);
  assert_string_equal(tb->card.driver_id, "D-A");
  assert_int_equal(tb->card.since_ms, 1000);

  /* B removes the card; then A, which has lost the terminal, writes a card of its own. */
  tb->card = (hw_driver_card){.since_ms = 3000};
  assert_int_equal(hw_owner_card_save(b.claims, tb), 0);
  w.where = "driver_id IS NULL AND driver_since_ms = 3000";
  assert_true(hw_test_loop_run_until(&f.env, card_row_is, &w));
  snprintf(ta->card.driver_id, sizeof ta->card.driver_id, "D-STALE");
  ta->card.since_ms = 2000;
  assert_int_equal(hw_owner_card_save(a.claims, ta), 0);
  /* A's claim runs after its write on the same connection: the row it reads is B's, no driver. */
  node_claim(&a, &f);
  assert_int_equal(ta->owner_epoch, 3);
  assert_int_equal(ta->card.has_driver, 0);
  assert_string_equal(ta->card.driver_id, "");
  assert_int_equal(ta->card.since_ms, 3000);
  assert_true(card_row_is(&w));
  /* B still thinks it owns the terminal (epoch 2): its write is queued, and refused. B's claim
   * runs after it on B's connection and reads the row A left: still no driver. */
  snprintf(tb->card.driver_id, sizeof tb->card.driver_id, "D-B-STALE");
  tb->card.has_driver = 1;
  assert_int_equal(hw_owner_card_save(b.claims, tb), 0);
  node_claim(&b, &f);
  assert_int_equal(tb->owner_epoch, 4);
  assert_int_equal(tb->card.has_driver, 0);
  assert_int_equal(tb->card.since_ms, 3000);
  assert_true(card_row_is(&w));
  /* Not claimed here (lost): nothing to write. */
  tb->owner_epoch = HW_OWNER_LOST;
  assert_int_equal(hw_owner_card_save(b.claims, tb), -EPERM);
  node_stop(&b, &f);
  node_stop(&a, &f);
  fx_stop(&f);
}

static void test_hold(void **state) {
  (void)state;
  fixture f;
  fx_start(&f);
  node a;
  node_start(&a, &f, "A");
  node_claim(&a, &f);
  node_feed(&a, &f, 0, 10);
  wait_saves(&f, &a);
  char *first = vu_pg_text(f.pg, "SELECT encode(state, 'hex') FROM rule_state");
  /* An event of the terminal waits to be written: its changed state is not saved. */
  node_t(&a)->viol_waiting++;
  node_feed(&a, &f, 10, 20);
  wait_saves(&f, &a);
  hw_rule_store_stats st;
  hw_rule_store_get_stats(a.rs, &st);
  assert_true(st.held >= 2);
  vu_expect(f.pg, first, "SELECT encode(state, 'hex') FROM rule_state");
  /* Written: the next cycle saves it. */
  node_t(&a)->viol_waiting--;
  wait_saves(&f, &a);
  char *second = vu_pg_text(f.pg, "SELECT encode(state, 'hex') FROM rule_state");
  assert_string_not_equal(first, second);
  free(first);
  free(second);
  node_stop(&a, &f);
  fx_stop(&f);
}

typedef struct claim_wait {
  int done, result;
} claim_wait;

static void claim_waited(void *arg, int result) {
  claim_wait *w = arg;
  w->done = 1;
  w->result = result;
}

static int all_done(void *arg) {
  claim_wait *w = arg;
  for (int i = 0; i < 5; i++)
    if (!w[i].done)
      return 0;
  return 1;
}

static void test_batch(void **state) {
  (void)state;
  fixture f;
  fx_start(&f);
  node a, b;
  node_start(&a, &f, "A");
  node_start(&b, &f, "B");
  /* The truck: A claimed it and saved its state after 150 minutes; 10 fixes stored after. */
  node_claim(&a, &f);
  node_feed(&a, &f, 0, 151);
  store_fixes(&f, 0, 151);
  wait_saves(&f, &a);
  store_fixes(&f, 151, 161);
  /* T2: claimed an hour ago by a daemon C, no saved state, 5 fixes received since. T3: new. */
  free(vu_pg_text(f.pg, "INSERT INTO terminal_owner (terminal_id, epoch, owner, since, first_since) "
                        "VALUES ('T2', 1, 'C', now() - interval '1 hour', now() - interval '1 hour') "
                        "RETURNING 1"));
  free(vu_pg_text(f.pg, "WITH i AS (INSERT INTO positions (terminal_id, ts, seq, recv_ts, lat, lon, "
                        "speed_kmh, heading, alt_m, alarm, status, odometer_km, source, quality) "
                        "SELECT 'T2', timestamptz '2026-03-02 08:00+00' + k * interval '1 minute', "
                        "0, now() - interval '30 minutes', 30, 114, 0, 0, 80, 0, 3, 1000, 1, 0 "
                        "FROM generate_series(1, 5) k RETURNING 1) SELECT count(*) FROM i"));
  hw_terminal *t2, *t3;
  assert_int_equal(hw_registry_get(&b.reg, "T2", &t2), 0);
  assert_int_equal(hw_registry_get(&b.reg, "T3", &t3), 0);
  /* Asked for at once: the first goes alone (nothing was running), the next three together, and
   * T3 asked for twice waits for a third statement. */
  claim_wait w[5];
  memset(w, 0, sizeof w);
  hw_terminal *order[5] = {node_t(&b), t2, t3, node_t(&b), t3};
  for (int i = 0; i < 5; i++)
    assert_int_equal(hw_owner_claim_start(b.claims, order[i], claim_waited, &w[i], NULL), 0);
  assert_true(hw_test_loop_run_until(&f.env, all_done, w));
  for (int i = 0; i < 5; i++)
    assert_int_equal(w[i].result, 0);
  hw_owner_claims_stats cs;
  hw_owner_claims_get_stats(b.claims, &cs);
  assert_int_equal(cs.batches, 3);
  assert_int_equal(cs.claims, 5);
  assert_int_equal(cs.failed, 0);
  assert_int_equal(cs.loaded, 1);   /* the truck's, in the first */
  assert_int_equal(cs.kept, 1);     /* the truck again, in the second: B held the epoch before */
  assert_int_equal(cs.replayed, 15); /* the truck's 10 after A's save, T2's 5 */
  assert_int_equal(node_t(&b)->owner_epoch, 3);
  assert_int_equal(hw_rule_state_horizon_ms(node_t(&b)->rules), f.fix[160].ts_ms);
  assert_int_equal(t2->owner_epoch, 2);
  assert_non_null(t2->rules);
  assert_int_equal(hw_rule_state_horizon_ms(t2->rules), 1772438700000LL); /* 08:05 UTC */
  assert_int_equal(t3->owner_epoch, 2);
  vu_expect(f.pg, TID "|3|B;T2|2|B;T3|2|B",
            "SELECT string_agg(terminal_id || '|' || epoch || '|' || owner, ';' "
            "ORDER BY terminal_id) FROM terminal_owner");
  node_stop(&a, &f);
  node_stop(&b, &f);
  fx_stop(&f);
}

int main(void) {
  vu_log_level();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_move_live_owner),
      cmocka_unit_test(test_reclaim_keeps),
      cmocka_unit_test(test_card_follows_fenced),
      cmocka_unit_test(test_hold),
      cmocka_unit_test(test_batch),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
