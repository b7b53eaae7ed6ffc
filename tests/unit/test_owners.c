/* pipeline/owners.c: who owns a terminal between workers, who is told when one is taken over,
 * the driver card that follows a terminal to its next owner (and a stale owner's card that does
 * not), and the replay mark the workers' rule stores agree on; also from two threads at once. */
#include <errno.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "pipeline/owners.h"

static void test_claims_and_owners(void **state) {
  (void)state;
  hw_owners *o;
  assert_int_equal(hw_owners_new(&o, 3), 0);
  /* unclaimed: worker 0's (the restored states live there first) */
  assert_true(hw_owners_owns(o, "T1", 0));
  assert_false(hw_owners_owns(o, "T1", 1));
  int prev = 7;
  assert_int_equal(hw_owners_claim(o, "T1", 2, &prev, NULL), 0);
  assert_int_equal(prev, -1);
  assert_true(hw_owners_owns(o, "T1", 2));
  assert_false(hw_owners_owns(o, "T1", 0));
  assert_int_equal(hw_owners_claim(o, "T1", 2, &prev, NULL), 0);
  assert_int_equal(prev, 2);
  assert_int_equal(hw_owners_claim(o, "T1", 1, &prev, NULL), 0);
  assert_int_equal(prev, 2);
  assert_true(hw_owners_owns(o, "T1", 1));
  assert_true(hw_owners_owns(o, "T2", 0)); /* others untouched */
  hw_owners_free(o);
}

static int wakes;
static void on_wake(uv_async_t *h) {
  (void)h;
  wakes++;
}

static void test_the_old_owner_is_told(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_async_t a1;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(uv_async_init(&loop, &a1, on_wake), 0);
  hw_owners *o;
  assert_int_equal(hw_owners_new(&o, 2), 0);
  hw_owners_attach(o, 1, &a1);
  int prev;
  assert_int_equal(hw_owners_claim(o, "A", 1, &prev, NULL), 0);
  assert_int_equal(hw_owners_claim(o, "B", 1, &prev, NULL), 0);
  assert_null(hw_owners_take_lost(o, 1)); /* first claims take nothing from anyone */
  assert_int_equal(hw_owners_claim(o, "A", 1, &prev, NULL), 0); /* same worker: its own business */
  assert_null(hw_owners_take_lost(o, 1));
  assert_int_equal(hw_owners_claim(o, "B", 0, &prev, NULL), 0);
  assert_int_equal(hw_owners_claim(o, "A", 0, &prev, NULL), 0);
  assert_int_equal(prev, 1);
  wakes = 0;
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_true(wakes >= 1);
  hw_owners_lost *l = hw_owners_take_lost(o, 1);
  assert_non_null(l);
  assert_string_equal(l->id, "B"); /* oldest first */
  assert_non_null(l->next);
  assert_string_equal(l->next->id, "A");
  assert_null(l->next->next);
  free(l->next);
  free(l);
  assert_null(hw_owners_take_lost(o, 1));
  assert_null(hw_owners_take_lost(o, 0)); /* nothing was taken from worker 0 */
  /* detached: a take-over is no longer queued for it (its handle may be closing) */
  hw_owners_attach(o, 1, NULL);
  assert_int_equal(hw_owners_claim(o, "C", 1, &prev, NULL), 0);
  assert_int_equal(hw_owners_claim(o, "C", 0, &prev, NULL), 0);
  assert_null(hw_owners_take_lost(o, 1));
  /* left queued at free: freed with the table (ASan would say otherwise) */
  hw_owners_attach(o, 1, &a1);
  assert_int_equal(hw_owners_claim(o, "C", 1, &prev, NULL), 0);
  assert_int_equal(hw_owners_claim(o, "C", 0, &prev, NULL), 0);
  hw_owners_free(o);
  uv_close((uv_handle_t *)&a1, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_mark_is_the_oldest_complete_cycle(void **state) {
  (void)state;
  hw_owners *o;
  assert_int_equal(hw_owners_new(&o, 3), 0);
  assert_int_equal(hw_owners_mark(o, 0, 1000), 0); /* workers 1 and 2 have saved nothing yet */
  assert_int_equal(hw_owners_mark(o, 2, 900), 0);
  assert_int_equal(hw_owners_mark(o, 1, 1100), 900);
  assert_int_equal(hw_owners_mark(o, 2, 2000), 1000);
  assert_int_equal(hw_owners_mark(o, 0, 3000), 1100);
  assert_int_equal(hw_owners_mark(o, 1, 3100), 2000);
  hw_owners_free(o);
}

static hw_driver_card card_of(const char *driver, int64_t since_ms) {
  hw_driver_card c = {.since_ms = since_ms, .has_driver = driver != NULL};
  if (driver)
    snprintf(c.driver_id, sizeof c.driver_id, "%s", driver);
  return c;
}

/* The card the owner recorded reaches the next owner, "no card" included; a worker that no
 * longer owns the terminal cannot change it. */
static void test_the_card_follows_its_terminal(void **state) {
  (void)state;
  hw_owners *o;
  assert_int_equal(hw_owners_new(&o, 3), 0);
  int prev;
  hw_driver_card got, in = card_of("110101199001011234", 1000);
  memset(&got, 0x5a, sizeof got);
  assert_int_equal(hw_owners_claim(o, "T", 0, &prev, &got), 0);
  assert_int_equal(prev, -1);
  assert_int_equal(got.has_driver, 0); /* new: no card */
  assert_string_equal(got.driver_id, "");
  assert_int_equal(got.since_ms, 0);
  assert_int_equal(hw_owners_set_card(o, "T", 0, &in), 0);
  /* worker 1 takes T over: the card comes with it */
  assert_int_equal(hw_owners_claim(o, "T", 1, &prev, &got), 0);
  assert_int_equal(prev, 0);
  assert_int_equal(got.has_driver, 1);
  assert_string_equal(got.driver_id, "110101199001011234");
  assert_int_equal(got.since_ms, 1000);
  /* worker 0's connection is closing but read one more 0x0702: stale, ignored */
  hw_driver_card stale = card_of("999999999999999999", 1500);
  assert_int_equal(hw_owners_set_card(o, "T", 0, &stale), -EPERM);
  /* the owner removes the card; the buffer behind a removal is not carried */
  hw_driver_card out = card_of("left-over", 2000);
  out.has_driver = 0;
  assert_int_equal(hw_owners_set_card(o, "T", 1, &out), 0);
  /* back to worker 0, whose own record still names the first driver: "no card" overrides it */
  assert_int_equal(hw_owners_claim(o, "T", 0, &prev, &got), 0);
  assert_int_equal(prev, 1);
  assert_int_equal(got.has_driver, 0);
  assert_string_equal(got.driver_id, "");
  assert_int_equal(got.since_ms, 2000);
  /* then worker 2: still the removal, not worker 0's stale write of before */
  assert_int_equal(hw_owners_claim(o, "T", 2, &prev, &got), 0);
  assert_int_equal(got.has_driver, 0);
  assert_int_equal(got.since_ms, 2000);
  /* an id at the limit without its NUL: stored cut to HW_DRIVER_ID_MAX bytes */
  hw_driver_card full = card_of(NULL, 3000);
  full.has_driver = 1;
  memset(full.driver_id, 'x', sizeof full.driver_id);
  assert_int_equal(hw_owners_set_card(o, "T", 2, &full), 0);
  assert_int_equal(hw_owners_claim(o, "T", 1, &prev, &got), 0);
  assert_int_equal(strlen(got.driver_id), HW_DRIVER_ID_MAX);
  /* never claimed: nothing to record, and nothing made up by trying */
  assert_int_equal(hw_owners_set_card(o, "U", 0, &in), -ENOENT);
  assert_int_equal(hw_owners_claim(o, "U", 1, &prev, &got), 0);
  assert_int_equal(prev, -1);
  assert_int_equal(got.has_driver, 0);
  hw_owners_free(o);
}

typedef struct card_writer {
  hw_owners *o;
  atomic_int written;    /* cards recorded so far */
  int64_t last_recorded; /* since_ms of the last card set_card took (0: none) */
  int recorded_after_refusal;
  int other_errors; /* neither 0 nor -EPERM (checked on the test's thread: cmocka's are not
                     * for other threads) */
} card_writer;

/* Worker 0, owner of T, records card after card (since_ms 1, 2, ...) until refused, then a few
 * more, which must all be refused too. */
static void write_cards(void *arg) {
  card_writer *w = arg;
  int refused = 0;
  for (int64_t i = 1; i <= 200000 && refused < 1000; i++) {
    hw_driver_card c = card_of("D", i);
    int rc = hw_owners_set_card(w->o, "T", 0, &c);
    if (rc == 0) {
      if (refused)
        w->recorded_after_refusal++;
      w->last_recorded = i;
      atomic_fetch_add(&w->written, 1);
    } else if (rc == -EPERM) {
      refused++;
    } else {
      w->other_errors++;
    }
  }
}

/* A take-over in the middle of the owner's writes: the new owner gets exactly the last card the
 * old one recorded, and every write after the take-over is refused. */
static void test_card_take_over_under_writes(void **state) {
  (void)state;
  hw_owners *o;
  assert_int_equal(hw_owners_new(&o, 2), 0);
  int prev;
  assert_int_equal(hw_owners_claim(o, "T", 0, &prev, NULL), 0);
  card_writer w = {.o = o};
  atomic_init(&w.written, 0);
  uv_thread_t t;
  assert_int_equal(uv_thread_create(&t, write_cards, &w), 0);
  while (atomic_load(&w.written) < 100)
    ; /* let it record some first */
  hw_driver_card got;
  assert_int_equal(hw_owners_claim(o, "T", 1, &prev, &got), 0);
  uv_thread_join(&t);
  assert_int_equal(prev, 0);
  assert_int_equal(w.recorded_after_refusal, 0);
  assert_int_equal(w.other_errors, 0);
  assert_true(w.last_recorded >= 100);
  assert_int_equal(got.since_ms, w.last_recorded);
  assert_int_equal(got.has_driver, 1);
  hw_owners_free(o);
}

typedef struct claimer {
  hw_owners *o;
  int worker;
} claimer;

static void claim_many(void *arg) {
  claimer *c = arg;
  char id[16];
  for (int round = 0; round < 20; round++)
    for (int i = 0; i < 500; i++) {
      int prev;
      snprintf(id, sizeof id, "T%d", i);
      assert_int_equal(hw_owners_claim(c->o, id, c->worker, &prev, NULL), 0);
      (void)hw_owners_owns(c->o, id, c->worker);
    }
}

/* Two threads claiming the same terminals: every terminal ends with one of them as owner and
 * exactly one owner (the table stays consistent under the lock). */
static void test_two_threads(void **state) {
  (void)state;
  hw_owners *o;
  assert_int_equal(hw_owners_new(&o, 2), 0);
  claimer a = {o, 0}, b = {o, 1};
  uv_thread_t ta, tb;
  assert_int_equal(uv_thread_create(&ta, claim_many, &a), 0);
  assert_int_equal(uv_thread_create(&tb, claim_many, &b), 0);
  uv_thread_join(&ta);
  uv_thread_join(&tb);
  char id[16];
  for (int i = 0; i < 500; i++) {
    snprintf(id, sizeof id, "T%d", i);
    assert_int_equal(hw_owners_owns(o, id, 0) + hw_owners_owns(o, id, 1), 1);
  }
  hw_owners_free(o);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_claims_and_owners),
      cmocka_unit_test(test_the_old_owner_is_told),
      cmocka_unit_test(test_the_card_follows_its_terminal),
      cmocka_unit_test(test_card_take_over_under_writes),
      cmocka_unit_test(test_mark_is_the_oldest_complete_cycle),
      cmocka_unit_test(test_two_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
