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
/* Frees the calling thread's arena (a worker thread that decoded calls it before it ends). */
void hw_pb_codec_thread_free(void);

/* 0 when every string field anywhere in m (any message, nested, repeated or in a oneof) is
 * valid UTF-8, as proto3 requires and protobuf-c 1.4 does not check; -EILSEQ otherwise, with
 * *field naming the first bad field ("Fix.driver_id"). */
int hw_pb_check_utf8(const ProtobufCMessage *m, const char **field) HW_MUST_CHECK;

/* Converts one fix of a Report, judged on its own (its seq's order is the session's business).
 * 0: *out is to be stored; out->quality carries HW_Q_BAD_HEADING / HW_Q_BAD_DRIVER for a field
 * it could not take as sent. -EINVAL: the fix is refused alone; *reason is its
 * Haulwatch__V1__RefusedFix__Reason and *why says it in words. recv_ms is left 0. */
int hw_pb_fix_from_wire(const Haulwatch__V1__Fix *in, hw_fix *out, int *reason, const char **why)
    HW_MUST_CHECK;

/* Largest heading stored (the column is a smallint). */
#define HW_PB_HEADING_STORE_MAX 32767

/* Encodes any protobuf-c message with its varint length prefix into out[0..cap). Returns the
 * total length, or -ENOSPC. */
int hw_pb_encode_delimited(const ProtobufCMessage *m, uint8_t *out, size_t cap) HW_MUST_CHECK;

/* Earliest/latest device times accepted (what PostgreSQL's timestamptz and sanity allow):
 * 2000-01-01 .. 2100-01-01 UTC. Data-quality rules judge finer. */
#define HW_TS_MIN_MS 946684800000LL
#define HW_TS_MAX_MS 4102444800000LL

#endif
