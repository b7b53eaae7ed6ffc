/* A blocking JT/T 808 terminal for tests. Request bodies and frames (header, checksum, escaping)
 * are built here, apart from the codec in ingest/, and replies are unescaped and checked here
 * too, so the daemon is tested against a second reading of the standard rather than against
 * itself. Only trivial empty-body messages go through the codec's hw_jt808_build. */
#ifndef HW_TEST_JT808CLIENT_H
#define HW_TEST_JT808CLIENT_H

#include <stddef.h>
#include <stdint.h>

typedef struct j8c {
  int fd;
  int is_2019;          /* header layout of what we send */
  char phone[21];       /* 12 digits (2013) or 20 (2019) */
  uint16_t flow;        /* our next flow number */
  uint8_t buf[1 << 16]; /* received, not yet framed */
  size_t len;
} j8c;

typedef struct j8c_msg {
  uint16_t id, flow, attr;
  int is_2019;
  char phone[21];
  uint8_t body[1024];
  size_t len;
} j8c_msg;

/* Connects to 127.0.0.1:port as terminal `phone` (12 digits: 2013 layout, 20: 2019). */
j8c *j8c_connect(int port, const char *phone);
void j8c_close(j8c *c);
int j8c_send_raw(j8c *c, const void *data, size_t len);

/* Frames a message (our own encoder) with flow c->flow++ and sends it; returns the flow used,
 * or -1. j8c_send_flow uses the given flow (a resend), j8c_send_pkg adds package items. */
int j8c_send(j8c *c, uint16_t id, const uint8_t *body, size_t len);
int j8c_send_flow(j8c *c, uint16_t id, uint16_t flow, const uint8_t *body, size_t len);
int j8c_send_pkg(j8c *c, uint16_t id, uint16_t total, uint16_t index, const uint8_t *body,
                 size_t len);
/* The frame j8c_send would send, into out (cap bytes); returns its length. corrupt_checksum
 * flips the checksum. */
size_t j8c_frame(const j8c *c, uint16_t id, uint16_t flow, const uint8_t *body, size_t len,
                 int corrupt_checksum, uint8_t *out, size_t cap);
/* An empty-body message built with the codec's hw_jt808_build; returns the flow or -1. */
int j8c_send_empty(j8c *c, uint16_t id);

/* Next message from the server (checksum and escaping verified): 0, or -1 on EOF/timeout/a
 * malformed frame. */
int j8c_recv(j8c *c, j8c_msg *m, int timeout_ms);
/* Reads until the 0x8001 answering (flow, id); returns its result, or -1. */
int j8c_wait_response(j8c *c, uint16_t flow, uint16_t id, int timeout_ms);
/* Sends 0x0100 (j8c_body_register_dev) and waits for the 0x8100 answering it: returns its
 * result, or -1 on timeout or a malformed answer (a refusal carrying a code is malformed); the
 * code (result 0) into code[cap], "" otherwise. */
int j8c_register(j8c *c, const char *device_id, uint8_t colour, const uint8_t *plate_gbk,
                 size_t plate_len, char *code, size_t cap);
/* 1 when the server closed the connection within timeout_ms (after any pending messages). */
int j8c_wait_eof(j8c *c, int timeout_ms);

/* ---- bodies ---- */

/* 0x0100, 2013 layout (or 2019 when is_2019): province 44, city 300, maker "HWTST", model, device
 * id "T000001", plate colour and plate given as GBK bytes. Returns the body length. */
size_t j8c_body_register(uint8_t *out, int is_2019, uint8_t colour, const uint8_t *plate_gbk,
                         size_t plate_len);
/* The same with another device id (at most 7 characters in the 2013 layout, 30 in 2019). */
size_t j8c_body_register_dev(uint8_t *out, int is_2019, const char *device_id, uint8_t colour,
                             const uint8_t *plate_gbk, size_t plate_len);
/* 0x0102: 2013 (the code alone) or 2019 (length, code, IMEI, software version). */
size_t j8c_body_auth(uint8_t *out, int is_2019, const char *code);

typedef struct j8c_loc {
  uint32_t alarm, status;
  uint32_t lat_e6, lon_e6;  /* unsigned: sign in status bits 2 (south) and 3 (west) */
  uint16_t alt_m, speed_dkmh, heading;
  int yy, mo, dd, hh, mi, ss; /* GMT+8 */
  int has_odometer;
  uint32_t odometer_hm;
  int vendor_item;          /* append an unknown 0xE1 item of 3 bytes */
  int broken_item;          /* append an item whose length runs past the body */
} j8c_loc;

size_t j8c_body_location(uint8_t *out, const j8c_loc *l);
/* 0x0704: count, type, then (length, 0x0200 body) per item. */
size_t j8c_body_batch(uint8_t *out, uint8_t type, const j8c_loc *l, size_t n);
/* 0x0702, 2013 layout: card inserted (name, certificate, authority, expiry) or removed. */
size_t j8c_body_driver(uint8_t *out, int inserted, const char *name, const char *certificate,
                       const int time_gmt8[6]);

#endif
