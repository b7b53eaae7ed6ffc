/* The terminals online on JT/T 808, process-wide, for the attachment listener (attach_online.h):
 * a chained hash set of phone numbers with a count each, under one mutex. Owns its nodes. */
#include "attach/attach_online.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define HW_ONLINE_BUCKETS 8192 /* chains of ~12 at 100k terminals */
#define HW_ONLINE_ID_MAX 20

typedef struct hw_online {
  struct hw_online *next;
  unsigned count;
  char id[HW_ONLINE_ID_MAX + 1];
} hw_online;

static pthread_mutex_t hw_online_mu = PTHREAD_MUTEX_INITIALIZER;
static hw_online *hw_online_set[HW_ONLINE_BUCKETS];

static size_t hw_online_bucket(const char *id) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (; *id; id++)
    h = (h ^ (uint8_t)*id) * 16777619u;
  return h % HW_ONLINE_BUCKETS;
}

static hw_online **hw_online_find(const char *id) {
  hw_online **p = &hw_online_set[hw_online_bucket(id)];
  while (*p && strcmp((*p)->id, id) != 0)
    p = &(*p)->next;
  return p;
}

int hw_attach_online_add(const char *phone) {
  if (strlen(phone) > HW_ONLINE_ID_MAX)
    return -EINVAL;
  int rc = 0;
  pthread_mutex_lock(&hw_online_mu);
  hw_online **p = hw_online_find(phone);
  if (*p) {
    (*p)->count++;
  } else {
    hw_online *n = calloc(1, sizeof *n);
    if (n) {
      n->count = 1;
      memcpy(n->id, phone, strlen(phone) + 1);
      *p = n;
    } else {
      rc = -ENOMEM;
    }
  }
  pthread_mutex_unlock(&hw_online_mu);
  return rc;
}

void hw_attach_online_del(const char *phone) {
  pthread_mutex_lock(&hw_online_mu);
  hw_online **p = hw_online_find(phone);
  if (*p && --(*p)->count == 0) {
    hw_online *n = *p;
    *p = n->next;
    free(n);
  }
  pthread_mutex_unlock(&hw_online_mu);
}

int hw_attach_online_has(const char *phone) {
  pthread_mutex_lock(&hw_online_mu);
  int has = *hw_online_find(phone) != NULL;
  pthread_mutex_unlock(&hw_online_mu);
  return has;
}
