/* The attachment listener (`haulwatch serve --attachment-listen`): terminals upload the photos
 * and clips of their active-safety alarms here (protocol: attach_codec.h; notes:
 * docs/attachments.md). Owns its listener, its connections, the files being written under
 * attachment_dir and one PostgreSQL connection (safety_attachments rows).
 *
 * A connection is accepted only while it has said nothing yet or has sent a valid 0x1210 from a
 * terminal that is online and authenticated on JT/T 808 right now (its phone number in the
 * registry, with a session bound); until then it may hold at most one frame (about 1 KB) for at
 * most auth_timeout_ms. After the 0x1210, every file of the list is announced with 0x1211
 * (answered 0x8001), sent as data frames, and closed with 0x1212, answered 0x9212 with exactly
 * the ranges still missing (result 1) or, once the file is complete, fsynced, hashed (SHA-256,
 * off the loop), renamed to its final name and recorded complete in PostgreSQL, result 0.
 *
 * Limits (settings): a file larger than max_file, a list of more than max_files, a name that is
 * not a plain file name (path separators, "..", control bytes, a leading dot, more than 50
 * bytes) are answered "fail" (0x8001 result 1). A data frame outside its file's declared size,
 * for a file not announced, or that would take the connection past max_conn_bytes closes the
 * connection, as does silence for idle_ms or a connection older than total_ms.
 *
 * Resuming: the ranges on disk of an incomplete file are kept next to it (NAME.part.ranges,
 * written after the data is fsynced, at each 0x1212 and when the connection ends); a terminal
 * that reconnects and announces the file again continues from them: its 0x1212 is answered with
 * only what is still missing. A file already complete on disk is not written again. */
#ifndef HW_ATTACH_SERVER_H
#define HW_ATTACH_SERVER_H

#include <uv.h>

#include "attach/attach_codec.h"
#include "base/common.h"
#include "registry/terminal.h"

/* Defaults, written once (settings table and module). */
#define HW_ATTACH_DEF_MAX_FILE 67108864 /* 64 MiB */
#define HW_ATTACH_DEF_MAX_FILES 16
#define HW_ATTACH_DEF_MAX_CONN_BYTES 1073741824 /* 1 GiB */
#define HW_ATTACH_DEF_MAX_CONNECTIONS 256
#define HW_ATTACH_DEF_AUTH_TIMEOUT_S 10
#define HW_ATTACH_DEF_IDLE_S 60
#define HW_ATTACH_DEF_TOTAL_S 1800
/* Distinct ranges kept per file: pieces arriving with gaps beyond this close the connection. */
#define HW_ATTACH_MAX_RANGES 4096

typedef struct hw_attach_config {
  const char *listen;       /* "HOST:PORT"; NULL or "": no listener (connections adopted) */
  const char *dir;          /* attachment_dir: created if missing */
  const char *public_addr;  /* "HOST:PORT" told to terminals in 0x9208; empty: listen */
  const char *pg_conninfo;
  uint32_t max_file;        /* bytes */
  uint32_t max_files;       /* per alarm (0x1210 list) */
  uint32_t max_conn_bytes;  /* data bytes one connection may send, resends included */
  uint32_t max_connections;
  uint32_t auth_timeout_ms; /* to send a valid 0x1210 */
  uint32_t idle_ms;
  uint32_t total_ms;
} hw_attach_config;

typedef struct hw_attach_stats {
  uint64_t accepted, refused_max_connections;
  uint64_t lists, lists_refused;   /* 0x1210 accepted / answered "fail" */
  uint64_t files_refused;          /* 0x1211 answered "fail" */
  uint64_t pieces, bytes, overlap_bytes;
  uint64_t files_complete, resends_asked;
  uint64_t closed_limit, closed_protocol, closed_timeout;
} hw_attach_stats;

typedef struct hw_attach_server hw_attach_server;

/* registry: borrowed, outlives the server (0x1210 checks the terminal is online). */
int hw_attach_server_start(hw_attach_server **out, uv_loop_t *loop, hw_registry *registry,
                           const hw_attach_config *cfg) HW_MUST_CHECK;

/* The address terminals are told in 0x9208: host into host[0..cap), port. */
void hw_attach_server_public(const hw_attach_server *srv, char *host, size_t cap, uint16_t *port);

void hw_attach_server_get_stats(const hw_attach_server *srv, hw_attach_stats *out);

/* Serves a connected stream socket fd (taken over: closed with the connection) as if accepted:
 * for a front that hands sockets over, and the fuzz target (one end of a socketpair). */
int hw_attach_server_adopt(hw_attach_server *srv, int fd) HW_MUST_CHECK;
/* Connections whose memory is not freed yet (open, or closed with work still out). */
size_t hw_attach_server_live(const hw_attach_server *srv);

/* Closes the listener and every connection (incomplete files keep their ranges on disk), then
 * the PostgreSQL connection; done_cb once all is closed. */
void hw_attach_server_stop(hw_attach_server *srv, void (*done_cb)(void *arg), void *arg);

/* 1 when name (n bytes) is a plain file name we store under its own name: 1..50 bytes of
 * printable ASCII other than '/', '\\' and ':', not starting with '.', no "..". */
int hw_attach_name_ok(const uint8_t *name, size_t n);

#endif
