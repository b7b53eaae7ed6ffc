/* Terminal ownership between the workers of one process: see owners.h. */
#include "pipeline/owners.h"

#include <stdlib.h>
#include <string.h>

#include <uthash.h>
#include <uv.h>

typedef struct hw_owner {
  int worker;
  hw_driver_card card; /* as the owner last recorded it */
  UT_hash_handle hh;
  char id[]; /* owned, NUL-terminated */
} hw_owner;

struct hw_owners {
  uv_rwlock_t lock;
  hw_owner *by_id; /* uthash head */
  unsigned nworkers;
  int64_t *marks; /* owned: per worker, the start of its last complete save cycle, 0 before */
  uv_async_t **wakes;         /* owned array; the handles borrowed, NULL when detached */
  hw_owners_lost **lost;      /* owned: per worker, the terminals taken from it, newest first */
};

int hw_owners_new(hw_owners **out, unsigned nworkers) {
  hw_owners *o = calloc(1, sizeof *o);
  size_t n = nworkers ? nworkers : 1;
  if (!o || !(o->marks = calloc(n, sizeof *o->marks)) || !(o->wakes = calloc(n, sizeof *o->wakes)) ||
      !(o->lost = calloc(n, sizeof *o->lost)))
    goto fail;
  if (uv_rwlock_init(&o->lock))
    goto fail;
  o->nworkers = nworkers;
  *out = o;
  return 0;
fail:
  if (o) {
    free(o->marks);
    free(o->wakes);
    free(o->lost);
  }
  free(o);
  return -ENOMEM;
}

void hw_owners_free(hw_owners *o) {
  if (!o)
    return;
  hw_owner *e, *tmp;
  HASH_ITER(hh, o->by_id, e, tmp) {
    HASH_DEL(o->by_id, e);
    free(e);
  }
  for (unsigned i = 0; i < o->nworkers; i++)
    for (hw_owners_lost *l = o->lost[i], *next; l; l = next) {
      next = l->next;
      free(l);
    }
  uv_rwlock_destroy(&o->lock);
  free(o->wakes);
  free(o->lost);
  free(o->marks);
  free(o);
}

int hw_owners_claim(hw_owners *o, const char *id, int worker, int *prev, hw_driver_card *card) {
  *prev = -1;
  if (card)
    memset(card, 0, sizeof *card);
  size_t len = strlen(id);
  uv_rwlock_wrlock(&o->lock);
  hw_owner *e;
  HASH_FIND(hh, o->by_id, id, len, e);
  if (e) {
    *prev = e->worker;
    e->worker = worker;
    if (card)
      *card = e->card;
    int p = *prev;
    if (p != worker && p >= 0 && (unsigned)p < o->nworkers && o->wakes[p]) {
      hw_owners_lost *l = malloc(sizeof *l + len + 1);
      if (l) { /* without memory the old connection stays until its idle timeout */
        memcpy(l->id, id, len + 1);
        l->next = o->lost[p];
        o->lost[p] = l;
        uv_async_send(o->wakes[p]);
      }
    }
    uv_rwlock_wrunlock(&o->lock);
    return 0;
  }
  if (!(e = calloc(1, sizeof *e + len + 1))) {
    uv_rwlock_wrunlock(&o->lock);
    return -ENOMEM;
  }
  e->worker = worker;
  memcpy(e->id, id, len + 1);
  HASH_ADD(hh, o->by_id, id[0], len, e);
  uv_rwlock_wrunlock(&o->lock);
  return 0;
}

int hw_owners_set_card(hw_owners *o, const char *id, int worker, const hw_driver_card *card) {
  int rc = 0;
  uv_rwlock_wrlock(&o->lock);
  hw_owner *e;
  HASH_FIND(hh, o->by_id, id, strlen(id), e);
  if (!e)
    rc = -ENOENT;
  else if (e->worker != worker)
    rc = -EPERM;
  else {
    e->card = *card;
    /* whatever the caller's buffer held past its end, ours ends in a NUL */
    e->card.driver_id[HW_DRIVER_ID_MAX] = '\0';
    if (!e->card.has_driver)
      e->card.driver_id[0] = '\0';
  }
  uv_rwlock_wrunlock(&o->lock);
  return rc;
}

void hw_owners_attach(hw_owners *o, int worker, uv_async_t *wake) {
  if (worker < 0 || (unsigned)worker >= o->nworkers)
    return;
  uv_rwlock_wrlock(&o->lock);
  o->wakes[worker] = wake;
  uv_rwlock_wrunlock(&o->lock);
}

hw_owners_lost *hw_owners_take_lost(hw_owners *o, int worker) {
  if (worker < 0 || (unsigned)worker >= o->nworkers)
    return NULL;
  uv_rwlock_wrlock(&o->lock);
  hw_owners_lost *l = o->lost[worker], *rev = NULL;
  o->lost[worker] = NULL;
  uv_rwlock_wrunlock(&o->lock);
  while (l) { /* oldest first */
    hw_owners_lost *next = l->next;
    l->next = rev;
    rev = l;
    l = next;
  }
  return rev;
}

int hw_owners_owns(hw_owners *o, const char *id, int worker) {
  uv_rwlock_rdlock(&o->lock);
  hw_owner *e;
  HASH_FIND(hh, o->by_id, id, strlen(id), e);
  int owner = e ? e->worker : 0;
  uv_rwlock_rdunlock(&o->lock);
  return owner == worker;
}

int64_t hw_owners_mark(hw_owners *o, int worker, int64_t start_ms) {
  uv_rwlock_wrlock(&o->lock);
  if (worker >= 0 && (unsigned)worker < o->nworkers)
    o->marks[worker] = start_ms;
  int64_t mark = INT64_MAX;
  for (unsigned i = 0; i < o->nworkers; i++)
    if (o->marks[i] < mark)
      mark = o->marks[i];
  uv_rwlock_wrunlock(&o->lock);
  return mark == INT64_MAX ? 0 : mark;
}
