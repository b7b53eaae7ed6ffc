/* The active-safety attachment protocol (Jiangsu T/JSATL12 "苏标"; notes: docs/attachments.md):
 * the centre's 0x9208 upload request on the terminal's JT/T 808 link, and what the terminal then
 * says on its own TCP connection to the attachment server: 0x1210 attachment list, 0x1211 file
 * info, 0x1212 upload finished (JT/T 808 frames), the file data frames (not JT/T 808 frames:
 * `30 31 63 64`, name BYTE[50], offset DWORD, length DWORD, data, no escaping), and the server's
 * 0x9212 answer listing the pieces to send again.
 *
 * Pure: bytes in, records out. Parsers never read outside body[0..len) and never allocate;
 * names are borrowed (they point into the body). Bodies only: framing, header and escaping are
 * jt808/. The stream demultiplexer (hw_attach_stream) splits one connection's bytes into JT/T
 * 808 frames and data frames, handing data on in the pieces it arrived in, so a connection
 * never buffers a whole data frame.
 *
 * Alarm identification number: this codec reads the 苏标 layout (16 bytes: terminal id BYTE[7],
 * time BCD[6], sequence, attachment count, reserved). The alarm decoding (0x64-0x67 items) has
 * its own type; the two are to be unified when both are in. 粤标 (terminal id BYTE[30], 40
 * bytes) is not read here. */
#ifndef HW_ATTACH_CODEC_H
#define HW_ATTACH_CODEC_H

#include "jt808/jt808_frame.h"

enum {
  HW_ATTACH_MSG_UPLOAD_REQUEST = 0x9208, /* centre -> terminal, on the JT/T 808 link */
  HW_ATTACH_MSG_LIST = 0x1210,
  HW_ATTACH_MSG_FILE_INFO = 0x1211,
  HW_ATTACH_MSG_FILE_DONE = 0x1212,
  HW_ATTACH_MSG_DONE_ANSWER = 0x9212,
};

#define HW_ATTACH_ALARM_NO_LEN 16   /* 苏标 alarm identification number */
#define HW_ATTACH_UNIQUE_LEN 32     /* the centre's unique alarm number (0x9208, 0x1210) */
#define HW_ATTACH_DATA_MAGIC 0x30316364u
#define HW_ATTACH_DATA_NAME_LEN 50
#define HW_ATTACH_DATA_HEADER 62    /* magic 4 + name 50 + offset 4 + length 4 */
#define HW_ATTACH_NAME_MAX 255      /* a name length is one byte */
/* Ranges a 0x9212 can carry inside one 1023-byte body with the longest name. */
#define HW_ATTACH_9212_MAX_RANGES ((HW_JT808_BODY_MAX - 4 - HW_ATTACH_NAME_MAX - 1) / 8)

/* File types (0x1211 / 0x1212 / 0x9212). */
enum { HW_ATTACH_PICTURE = 0, HW_ATTACH_AUDIO = 1, HW_ATTACH_VIDEO = 2, HW_ATTACH_TEXT = 3,
       HW_ATTACH_OTHER = 4 };

typedef struct hw_attach_alarm_no {
  uint8_t terminal[7];  /* BYTE[7], as sent (ASCII, NUL or space padded in practice) */
  uint8_t time_bcd[6];  /* YYMMDDhhmmss, GMT+8 */
  uint8_t seq;          /* alarm sequence within that second */
  uint8_t count;        /* attachments announced */
  uint8_t reserved;
} hw_attach_alarm_no;

void hw_attach_alarm_no_read(const uint8_t *p, hw_attach_alarm_no *a);
void hw_attach_alarm_no_write(const hw_attach_alarm_no *a, uint8_t *p);

/* The text form stored in PostgreSQL and used as a directory name: TERMINAL-YYMMDDhhmmss-SEQ,
 * e.g. "4444444-191210183100-3". The terminal part keeps [0-9A-Za-z] only (padding dropped, any
 * other byte written as its two hex digits), so the text is safe as a path component by
 * construction. -EINVAL when the time is not BCD. out needs HW_ATTACH_ALARM_TEXT bytes. */
#define HW_ATTACH_ALARM_TEXT 48
int hw_attach_alarm_no_text(const hw_attach_alarm_no *a, char *out, size_t cap) HW_MUST_CHECK;

/* 0x9208 attachment upload request. */
typedef struct hw_attach_request {
  char server_ip[64];        /* address the terminal is told (IPv4, IPv6 or a name); <= 255 bytes */
  uint16_t tcp_port;
  uint16_t udp_port;         /* 0: none */
  hw_attach_alarm_no alarm;
  uint8_t unique[HW_ATTACH_UNIQUE_LEN];
} hw_attach_request;

/* Body: ip length BYTE, ip, TCP port WORD, UDP port WORD, alarm number BYTE[16], unique alarm
 * number BYTE[32], reserved BYTE[16]. 0, -ENOSPC, -EINVAL (ip empty or too long). */
int hw_attach_encode_request(const hw_attach_request *r, uint8_t *out, size_t cap, size_t *len)
    HW_MUST_CHECK;
/* -EBADMSG when the body does not add up (a longer body is accepted: trailing bytes ignored). */
int hw_attach_parse_request(const uint8_t *body, size_t len, hw_attach_request *r) HW_MUST_CHECK;

/* 0x1210 attachment list: terminal id BYTE[7], alarm number BYTE[16], unique number BYTE[32],
 * info type BYTE (0 normal, 1 supplementary), count BYTE, count x (name length BYTE, name,
 * size DWORD). */
typedef struct hw_attach_item {
  const uint8_t *name;  /* borrowed, name_len bytes, not NUL terminated */
  uint8_t name_len;
  uint32_t size;
} hw_attach_item;

typedef struct hw_attach_list {
  uint8_t terminal[7];
  hw_attach_alarm_no alarm;
  uint8_t unique[HW_ATTACH_UNIQUE_LEN];
  uint8_t info_type;
  uint8_t count;
  hw_attach_item items[255];
} hw_attach_list;

/* -EBADMSG when the body is short, an item runs past it, or bytes are left over. */
int hw_attach_parse_list(const uint8_t *body, size_t len, hw_attach_list *out) HW_MUST_CHECK;
int hw_attach_encode_list(const hw_attach_list *l, uint8_t *out, size_t cap, size_t *len)
    HW_MUST_CHECK;

/* 0x1211 file info and 0x1212 upload finished share one body: name length BYTE, name, type
 * BYTE, size DWORD. -EBADMSG unless the body is exactly that (name length >= 1). */
typedef struct hw_attach_file {
  const uint8_t *name;  /* borrowed */
  uint8_t name_len;
  uint8_t type;
  uint32_t size;
} hw_attach_file;

int hw_attach_parse_file(const uint8_t *body, size_t len, hw_attach_file *out) HW_MUST_CHECK;
int hw_attach_encode_file(const hw_attach_file *f, uint8_t *out, size_t cap, size_t *len)
    HW_MUST_CHECK;

/* 0x9212 upload finished answer: name length BYTE, name, type BYTE, result BYTE (0 done,
 * 1 resend), count BYTE, count x (offset DWORD, length DWORD). */
typedef struct hw_attach_range {
  uint32_t offset;
  uint32_t length;
} hw_attach_range;

typedef struct hw_attach_answer {
  hw_attach_file file;  /* name and type; size unused */
  uint8_t result;       /* 0 complete, 1 pieces missing */
  uint8_t count;
  hw_attach_range ranges[255];
} hw_attach_answer;

/* -ENOSPC when out is too small, -EINVAL for an empty name. */
int hw_attach_encode_answer(const hw_attach_answer *a, uint8_t *out, size_t cap, size_t *len)
    HW_MUST_CHECK;
int hw_attach_parse_answer(const uint8_t *body, size_t len, hw_attach_answer *out) HW_MUST_CHECK;

/* A data frame header: out gets HW_ATTACH_DATA_HEADER bytes (name left-aligned, NUL padded;
 * -EINVAL for a name longer than 50 bytes or empty). */
int hw_attach_encode_data_header(const uint8_t *name, size_t name_len, uint32_t offset,
                                 uint32_t length, uint8_t *out) HW_MUST_CHECK;

/* The name of a data frame: BYTE[50] with NUL padding on either side (implementations differ:
 * SmallChi's pads on the left) trimmed; *name points into p. */
void hw_attach_data_name(const uint8_t *p, const uint8_t **name, size_t *name_len);

/* One connection's bytes: JT/T 808 frames and data frames, in any order, split anywhere. */
typedef struct hw_attach_stream_cb {
  /* A good JT/T 808 frame (unescaped header + body, checksum verified), or a broken one
   * (ev != HW_JT808_FRAME). */
  int (*frame)(void *arg, hw_jt808_frame_event ev, const uint8_t *data, size_t len);
  /* A data frame starts: name as in hw_attach_data_name (borrowed, valid during the call). */
  int (*data_begin)(void *arg, const uint8_t *name, size_t name_len, uint32_t offset,
                    uint32_t length);
  /* The next bytes of its data, in order; at most `length` in all. */
  int (*data)(void *arg, const uint8_t *p, size_t n);
  /* Its last byte was delivered (also for length 0). */
  int (*data_end)(void *arg);
} hw_attach_stream_cb;

typedef struct hw_attach_stream {
  uint8_t state;                      /* private */
  uint8_t hlen;                       /* private: header bytes collected */
  uint8_t shared;                     /* private: a JT/T 808 frame just closed */
  uint32_t left;                      /* private: data bytes still to come */
  uint8_t hdr[HW_ATTACH_DATA_HEADER]; /* private */
  hw_jt808_deframer deframer;         /* owned */
} hw_attach_stream;

void hw_attach_stream_init(hw_attach_stream *s);
/* Consumes data[0..len). Returns 0, a callback's negative code (the stream is then unusable), or
 * -EPROTO for a byte that starts neither kind of frame or a data frame without the magic. */
int hw_attach_stream_feed(hw_attach_stream *s, const uint8_t *data, size_t len,
                          const hw_attach_stream_cb *cb, void *arg) HW_MUST_CHECK;
/* 1 while a frame of either kind is partly received. */
int hw_attach_stream_busy(const hw_attach_stream *s);

#endif
