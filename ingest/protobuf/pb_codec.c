#include "protobuf/pb_codec.h"

#include <stdlib.h>
#include <string.h>

#include "base/text.h"
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

/* Each loop thread (serve --workers) decodes with an arena of its own; hw_pb_codec_thread_free
 * releases it when that thread ends. */
static _Thread_local hw_arena hw_pb_arena;

static void *hw_arena_alloc(void *data, size_t size) {
  (void)data; /* the address of a thread-local is no constant initialiser: the caller's arena */
  hw_arena *a = &hw_pb_arena;
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

static ProtobufCAllocator hw_pb_allocator = {hw_arena_alloc, hw_arena_free, NULL};

void hw_pb_codec_thread_free(void) {
  hw_arena_reset(&hw_pb_arena);
  free(hw_pb_arena.spill);
  free(hw_pb_arena.mem);
  memset(&hw_pb_arena, 0, sizeof hw_pb_arena);
}

Haulwatch__V1__ClientMessage *hw_pb_decode_client(const uint8_t *frame, size_t len) {
  hw_arena_reset(&hw_pb_arena);
  return haulwatch__v1__client_message__unpack(&hw_pb_allocator, len, frame);
}

Haulwatch__V1__ServerMessage *hw_pb_decode_server(const uint8_t *frame, size_t len) {
  hw_arena_reset(&hw_pb_arena);
  return haulwatch__v1__server_message__unpack(&hw_pb_allocator, len, frame);
}

/* Nesting of our messages is 3 deep (ClientMessage > Report > Fix); the bound only keeps a future
 * recursive message from recursing without end. */
#define HW_PB_MAX_DEPTH 16

static int hw_pb_utf8_walk(const ProtobufCMessage *m, const char **field, int depth) {
  const ProtobufCMessageDescriptor *d = m->descriptor;
  const char *base = (const char *)m;
  if (depth > HW_PB_MAX_DEPTH)
    return -EILSEQ;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
      continue;
    /* A oneof member is set only when the case says so; its memory is shared otherwise. */
    if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
        *(const uint32_t *)(const void *)(base + f->quantifier_offset) != f->id)
      continue;
    size_t n = 1;
    void *const *items = (void *const *)(const void *)(base + f->offset);
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      n = *(const size_t *)(const void *)(base + f->quantifier_offset);
      items = *(void *const *const *)(const void *)(base + f->offset);
    }
    for (size_t k = 0; k < n; k++) {
      if (!items[k])
        continue;
      if (f->type == PROTOBUF_C_TYPE_STRING) {
        /* protobuf-c hands strings NUL-terminated; what follows an embedded NUL is never used */
        const char *str = items[k];
        if (!hw_utf8_valid(str, strlen(str)))
          return *field = f->name, -EILSEQ;
      } else if (hw_pb_utf8_walk(items[k], field, depth + 1)) {
        return -EILSEQ;
      }
    }
  }
  return 0;
}

int hw_pb_check_utf8(const ProtobufCMessage *m, const char **field) {
  *field = "message";
  return hw_pb_utf8_walk(m, field, 0);
}

int hw_pb_fix_from_wire(const Haulwatch__V1__Fix *in, hw_fix *out, int *reason, const char **why) {
  memset(out, 0, offsetof(hw_fix, driver_id) + 1);
  if (in->seq == 0 || in->seq > INT64_MAX)
    return *reason = HAULWATCH__V1__REFUSED_FIX__REASON__BAD_SEQ,
           *why = "seq must be between 1 and 2^63-1", -EINVAL;
  /* The device time is the fix's identity in storage: without a usable one it cannot be stored
   * exactly once, so it is refused rather than flagged. */
  if (in->time_ms < (uint64_t)HW_TS_MIN_MS || in->time_ms >= (uint64_t)HW_TS_MAX_MS)
    return *reason = HAULWATCH__V1__REFUSED_FIX__REASON__TIME_OUT_OF_RANGE,
           *why = "time_ms outside 2000-01-01 .. 2100-01-01", -EINVAL;
  out->seq = (int64_t)in->seq;
  out->ts_ms = (int64_t)in->time_ms;
  out->lat_e6 = in->lat_e6;
  out->lon_e6 = in->lon_e6;
  /* Speeds and coordinates out of range are the quality checks' to flag (BAD_SPEED, BAD_COORD);
   * every uint32 speed fits the stored float. */
  out->speed_dkmh = in->speed_dkmh;
  if (in->heading > 359) {
    /* Kept as sent for whoever investigates the device, within what the column holds. */
    out->heading = (uint16_t)(in->heading > HW_PB_HEADING_STORE_MAX ? HW_PB_HEADING_STORE_MAX
                                                                      : in->heading);
    out->quality |= HW_Q_BAD_HEADING;
  } else {
    out->heading = (uint16_t)in->heading;
  }
  out->alt_m = in->alt_m;
  out->alarm = in->alarm;
  out->status = in->status;
  out->odometer_hm = in->odometer_hm;
  out->source = HW_SRC_PROTOBUF;
  size_t dlen = in->driver_id ? strlen(in->driver_id) : 0;
  if (dlen > HW_DRIVER_ID_MAX) {
    /* Cut, it would name another driver: the position is stored without one. */
    out->quality |= HW_Q_BAD_DRIVER;
  } else if (dlen) {
    /* Valid UTF-8 (hw_pb_check_utf8 ran on the whole message) and NUL-free (a C string), as
     * PostgreSQL text requires. */
    memcpy(out->driver_id, in->driver_id, dlen + 1);
    out->has_driver = 1;
  }
  *reason = 0;
  *why = NULL;
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
