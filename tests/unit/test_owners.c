/* pipeline/owners.c: who owns a terminal between workers, who is told when one is taken over,
 * and the replay mark the workers' rule stores agree on; also from two threads at once. */
#include <setjmp.h>
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
  assert_int_equal(hw_owners_claim(o, "T1", 2, &prev), 0);
  assert_int_equal(prev, -1);
  assert_true(hw_owners_owns(o, "T1", 2));
  assert_false(hw_owners_owns(o, "T1", 0));
  assert_int_equal(hw_owners_claim(o, "T1", 2, &prev), 0);
  assert_int_equal(prev, 2);
  assert_int_equal(hw_owners_claim(o, "T1", 1, &prev), 0);
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
  assert_int_equal(hw_owners_claim(o, "A", 1, &prev), 0);
  assert_int_equal(hw_owners_claim(o, "B", 1, &prev), 0);
  assert_null(hw_owners_take_lost(o, 1)); /* first claims take nothing from anyone */
  assert_int_equal(hw_owners_claim(o, "A", 1, &prev), 0); /* same worker: its own business */
  assert_null(hw_owners_take_lost(o, 1));
  assert_int_equal(hw_owners_claim(o, "B", 0, &prev), 0);
  assert_int_equal(hw_owners_claim(o, "A", 0, &prev), 0);
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
  assert_int_equal(hw_owners_claim(o, "C", 1, &prev), 0);
  assert_int_equal(hw_owners_claim(o, "C", 0, &prev), 0);
  assert_null(hw_owners_take_lost(o, 1));
  /* left queued at free: freed with the table (ASan would say otherwise) */
  hw_owners_attach(o, 1, &a1);
  assert_int_equal(hw_owners_claim(o, "C", 1, &prev), 0);
  assert_int_equal(hw_owners_claim(o, "C", 0, &prev), 0);
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
      assert_int_equal(hw_owners_claim(c->o, id, c->worker, &prev), 0);
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
      cmocka_unit_test(test_mark_is_the_oldest_complete_cycle),
      cmocka_unit_test(test_two_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
