/* The haulwatch protobuf protocol (proto/haulwatch.proto) on a server session. */
#ifndef HW_PB_SESSION_H
#define HW_PB_SESSION_H

#include "net/session.h"

/* max_frame: largest frame payload accepted (bytes). Set before the first connection. */
void hw_pb_proto_set_max_frame(size_t max_frame);
extern const hw_proto hw_pb_proto;

#endif
