/* Names of the latest-state keys in Redis, shared by the writer (redis_state.c), the web API and
 * the tests, so a key name is spelled once.
 *
 * Every vehicle belongs to one of HW_REDIS_BUCKETS buckets (FNV-1a of its terminal id). The
 * bucket is the key's Redis Cluster hash tag: hash hw:veh:{xx}:<terminal_id> and geo set
 * hw:geo:{xx} (xx: the bucket, two lower-case hex digits) hash to the same slot, so one script
 * call may write the hashes of many vehicles of a bucket and their geo set (redis_state.c) and
 * still run under Cluster, where every key of one command must be in one slot. 256 buckets spread
 * over 256 slots: even enough across a cluster of up to a few tens of nodes, and each write call
 * still finds several dirty vehicles of its bucket. Changing the count renames every key (README,
 * "Redis keys"). */
#ifndef HW_REDIS_KEYS_H
#define HW_REDIS_KEYS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define HW_REDIS_BUCKETS 256u
#define HW_REDIS_VEH_PREFIX "hw:veh:" /* then "{xx}:" and the terminal id */
#define HW_REDIS_GEO_PREFIX "hw:geo:" /* then "{xx}" */
/* "hw:veh:{xx}:" */
#define HW_REDIS_VEH_KEY_HEAD (sizeof HW_REDIS_VEH_PREFIX - 1 + 5)
#define HW_REDIS_GEO_KEY_LEN (sizeof HW_REDIS_GEO_PREFIX - 1 + 4)

/* FNV-1a (32 bits) of the id's bytes, modulo the bucket count. Fixed forever for a key layout:
 * writers and readers of any version must agree. */
static inline unsigned hw_redis_bucket(const char *id, size_t len) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < len; i++) {
    h ^= (unsigned char)id[i];
    h *= 16777619u;
  }
  return h % HW_REDIS_BUCKETS;
}

static inline void hw_redis_fmt_tag(char *out, unsigned bucket) {
  static const char hex[] = "0123456789abcdef";
  out[0] = '{';
  out[1] = hex[(bucket >> 4) & 15];
  out[2] = hex[bucket & 15];
  out[3] = '}';
}

/* Writes the vehicle hash key of id (len bytes) to out, which has room for
 * HW_REDIS_VEH_KEY_HEAD + len + 1 bytes; NUL-terminated; returns its length. */
static inline size_t hw_redis_key_veh(char *out, const char *id, size_t len) {
  memcpy(out, HW_REDIS_VEH_PREFIX, sizeof HW_REDIS_VEH_PREFIX - 1);
  hw_redis_fmt_tag(out + sizeof HW_REDIS_VEH_PREFIX - 1, hw_redis_bucket(id, len));
  out[HW_REDIS_VEH_KEY_HEAD - 1] = ':';
  memcpy(out + HW_REDIS_VEH_KEY_HEAD, id, len);
  out[HW_REDIS_VEH_KEY_HEAD + len] = '\0';
  return HW_REDIS_VEH_KEY_HEAD + len;
}

/* Writes the geo set key of a bucket to out (room for HW_REDIS_GEO_KEY_LEN + 1); returns its
 * length. */
static inline size_t hw_redis_key_geo(char *out, unsigned bucket) {
  memcpy(out, HW_REDIS_GEO_PREFIX, sizeof HW_REDIS_GEO_PREFIX - 1);
  hw_redis_fmt_tag(out + sizeof HW_REDIS_GEO_PREFIX - 1, bucket);
  out[HW_REDIS_GEO_KEY_LEN] = '\0';
  return HW_REDIS_GEO_KEY_LEN;
}

#endif
