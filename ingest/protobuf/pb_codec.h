/* haulwatch protobuf messages <-> internal records. Decoding uses one arena per loop thread, so
 * a decoded message costs no malloc/free per field; it is valid until the next decode. */
#ifndef HW_PB_CODEC_H
#define HW_PB_CODEC_H

#include "base/fix.h"
#include "haulwatch.pb-c.h"

/* NULL when the frame is not a valid ClientMessage. */
Haulwatch__V1__ClientMessage *hw_pb_decode_client(const uint8_t *frame, size_t len);
/* NULL when the frame is not a valid ServerMessage (client side: sim, tests). */
Haulwatch__V1__ServerMessage *hw_pb_decode_server(const uint8_t *frame, size_t len);

/* Converts and validates one fix; on -EINVAL *why names the field. recv_ms is left 0. */
int hw_pb_fix_from_wire(const Haulwatch__V1__Fix *in, hw_fix *out, const char **why) HW_MUST_CHECK;

/* Encodes any protobuf-c message with its varint length prefix into out[0..cap). Returns the
 * total length, or -ENOSPC. */
int hw_pb_encode_delimited(const ProtobufCMessage *m, uint8_t *out, size_t cap) HW_MUST_CHECK;

/* Earliest/latest device times accepted (what PostgreSQL's timestamptz and sanity allow):
 * 2000-01-01 .. 2100-01-01 UTC. Data-quality rules judge finer. */
#define HW_TS_MIN_MS 946684800000LL
#define HW_TS_MAX_MS 4102444800000LL

#endif
