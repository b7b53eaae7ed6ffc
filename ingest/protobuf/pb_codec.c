#include "protobuf/pb_codec.h"

#include <stdlib.h>
#include <string.h>

#include "protobuf/frame.h"

/* Bump allocator for protobuf-c: reset before each decode. A frame is at most max_frame bytes
 * but unpacked structs are larger than their encoding (a 2-byte empty Fix becomes ~100 bytes), so
 * blocks that do not fit the arena come from malloc and are freed at the next reset. */
#define HW_ARENA_SIZE (1u << 20)

typedef struct hw_arena {
  uint8_t *mem;       /* owned, HW_ARENA_SIZE bytes, allocated on first use */
  size_t used;
  void **spill;       /* owned: malloc'd blocks beyond the arena */
  size_t nspill, capspill;
} hw_arena;

/* One loop thread decodes; the arena is that thread's. */
static hw_arena hw_pb_arena;

static void *hw_arena_alloc(void *data, size_t size) {
  hw_arena *a = data;
  size = (size + 15) & ~(size_t)15;
  if (!a->mem && !(a->mem = malloc(HW_ARENA_SIZE)))
    return NULL;
  if (a->used + size <= HW_ARENA_SIZE) {
    void *p = a->mem + a->used;
    a->used += size;
    return p;
  }
  if (a->nspill == a->capspill) {
    size_t cap = a->capspill ? 2 * a->capspill : 64;
    void **ns = realloc(a->spill, cap * sizeof *ns);
    if (!ns)
      return NULL;
    a->spill = ns;
    a->capspill = cap;
  }
  void *p = malloc(size);
  if (p)
    a->spill[a->nspill++] = p;
  return p;
}

static void hw_arena_free(void *data, void *p) {
  (void)data;
  (void)p; /* everything goes at the next reset */
}

static void hw_arena_reset(hw_arena *a) {
  for (size_t i = 0; i < a->nspill; i++)
    free(a->spill[i]);
  a->nspill = 0;
  a->used = 0;
}

static ProtobufCAllocator hw_pb_allocator = {hw_arena_alloc, hw_arena_free, &hw_pb_arena};

Haulwatch__V1__ClientMessage *hw_pb_decode_client(const uint8_t *frame, size_t len) {
  hw_arena_reset(&hw_pb_arena);
  return haulwatch__v1__client_message__unpack(&hw_pb_allocator, len, frame);
}

Haulwatch__V1__ServerMessage *hw_pb_decode_server(const uint8_t *frame, size_t len) {
  hw_arena_reset(&hw_pb_arena);
  return haulwatch__v1__server_message__unpack(&hw_pb_allocator, len, frame);
}

int hw_pb_fix_from_wire(const Haulwatch__V1__Fix *in, hw_fix *out, const char **why) {
  memset(out, 0, offsetof(hw_fix, driver_id) + 1);
  if (in->seq == 0 || in->seq > INT64_MAX)
    return *why = "seq must be between 1 and 2^63-1", -EINVAL;
  if ((int64_t)in->time_ms < HW_TS_MIN_MS || (int64_t)in->time_ms >= HW_TS_MAX_MS ||
      in->time_ms > INT64_MAX)
    return *why = "time_ms outside 2000-01-01 .. 2100-01-01", -EINVAL;
  if (in->heading > 359)
    return *why = "heading above 359", -EINVAL;
  if (in->speed_dkmh > 100000)
    return *why = "speed_dkmh above 10000 km/h", -EINVAL;
  size_t dlen = in->driver_id ? strlen(in->driver_id) : 0;
  if (dlen > HW_DRIVER_ID_MAX)
    return *why = "driver_id longer than 32 bytes", -EINVAL;
  out->seq = (int64_t)in->seq;
  out->ts_ms = (int64_t)in->time_ms;
  out->lat_e6 = in->lat_e6;
  out->lon_e6 = in->lon_e6;
  out->speed_dkmh = in->speed_dkmh;
  out->heading = (uint16_t)in->heading;
  out->alt_m = in->alt_m;
  out->alarm = in->alarm;
  out->status = in->status;
  out->odometer_hm = in->odometer_hm;
  out->source = HW_SRC_PROTOBUF;
  if (dlen) {
    /* PostgreSQL text must be valid in the database encoding and NUL-free: protobuf-c
     * already checked UTF-8 for string fields; a NUL cannot appear in a C string. */
    memcpy(out->driver_id, in->driver_id, dlen + 1);
    out->has_driver = 1;
  } else {
    out->driver_id[0] = '\0';
  }
  return 0;
}

int hw_pb_encode_delimited(const ProtobufCMessage *m, uint8_t *out, size_t cap) {
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t pre[10];
  size_t k = hw_varint_put(pre, n);
  if (k + n > cap)
    return -ENOSPC;
  memcpy(out, pre, k);
  protobuf_c_message_pack(m, out + k);
  return (int)(k + n);
}
