/* libFuzzer target for the attachment listener's connection (attach/attach_server.c, with the
 * codec attach/attach_codec.c): the real server, a connection adopted from one end of a
 * socketpair, the input written to the other end in reads of a chosen size with the loop turning
 * in between, then EOF; completions run on libuv's thread pool and are waited for. The target
 * stands in for sinks/pg_async.c: queries are answered after each turn, all "ok" or all failed as
 * byte 0 says. Terminal 013800138000 is online (recorded in attach_online.h, as its session would).
 *
 * Input: byte 0: bit 0 the database fails; byte 1: read size (0 = all at once); the rest is the
 * terminal's byte stream.
 * Oracles (besides the sanitizers): every byte the server writes is whole JT/T 808 frames of
 * 0x8001 or 0x9212; nothing appears beside the attachment directory (its parent holds only it);
 * every connection's memory is freed once it is closed and its work is done. */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "attach/attach_online.h"
#include "attach/attach_server.h"
#include "base/log.h"
#include "jt808/jt808_header.h"
#include "sinks/pg_async.h"

#define CHECK(c) \
  do { \
    if (!(c)) \
      abort(); \
  } while (0)

/* ---- a database that answers at the next turn ---- */

struct hw_pg_async {
  int unused;
};
typedef struct pend {
  hw_pg_async_cb cb;
  void *arg;
  struct pend *next;
} pend;
static struct hw_pg_async the_pg;
static pend *queue;
static int db_fails;

int hw_pg_async_start(hw_pg_async **out, uv_loop_t *loop, const char *conninfo,
                      const char *component) {
  (void)loop, (void)conninfo, (void)component;
  *out = &the_pg;
  return 0;
}

int hw_pg_async_query(hw_pg_async *c, const char *sql, int nparams, const char *const *params,
                      hw_pg_async_cb cb, void *arg) {
  (void)c, (void)sql, (void)nparams, (void)params;
  pend *p = malloc(sizeof *p);
  if (!p)
    return -ENOMEM;
  *p = (pend){cb, arg, NULL};
  pend **at = &queue;
  while (*at)
    at = &(*at)->next;
  *at = p;
  return 0;
}

int hw_pg_async_up(const hw_pg_async *c) {
  (void)c;
  return 1;
}

static void flush_db(void) {
  while (queue) {
    pend *p = queue;
    queue = p->next;
    PGresult *r = PQmakeEmptyPGresult(NULL, db_fails ? PGRES_FATAL_ERROR : PGRES_COMMAND_OK);
    p->cb(p->arg, r);
    PQclear(r);
    free(p);
  }
}

void hw_pg_async_stop(hw_pg_async *c, void (*done_cb)(void *arg), void *arg) {
  (void)c;
  db_fails = 1;
  flush_db();
  if (done_cb)
    done_cb(arg);
}

/* ---- the server ---- */

static uv_loop_t loop;
static hw_attach_server *srv;
static hw_registry reg;
static char base[64], dir[96];
static int dummy_session;

static void setup(void) {
  CHECK(hw_log_set_level("error") == 0);
  uv_loop_init(&loop);
  snprintf(base, sizeof base, "/tmp/hw_fuzz_attach_XXXXXX");
  CHECK(mkdtemp(base));
  snprintf(dir, sizeof dir, "%s/files", base);
  hw_terminal *t;
  CHECK(hw_registry_get(&reg, "013800138000", &t) == 0);
  t->session = (struct hw_session *)&dummy_session; /* bound; never dereferenced */
  CHECK(hw_attach_online_add("013800138000") == 0); /* online, as a JT/T 808 session records it */
  hw_attach_config cfg = {.listen = NULL, .dir = dir, .public_addr = "127.0.0.1:7200",
                          .pg_conninfo = "", .max_file = 4096, .max_files = 4,
                          .max_conn_bytes = 65536, .max_connections = 4,
                          .auth_timeout_ms = 600000, .idle_ms = 600000, .total_ms = 600000};
  CHECK(hw_attach_server_start(&srv, &loop, &reg, &cfg) == 0);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag;
  if (ftw->level > 0)
    CHECK(remove(path) == 0);
  return 0;
}

static int reply_frame(void *arg, hw_jt808_frame_event ev, const uint8_t *data, size_t len) {
  (void)arg;
  hw_jt808_header h;
  const uint8_t *body;
  CHECK(ev == HW_JT808_FRAME);
  CHECK(hw_jt808_header_parse(data, len, &h, &body) == 0);
  CHECK(h.msg_id == 0x8001 || h.msg_id == HW_ATTACH_MSG_DONE_ANSWER);
  return 0;
}

static hw_jt808_deframer df;

static void drain_replies(int fd) {
  uint8_t buf[8192];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0)
    CHECK(hw_jt808_deframer_feed(&df, buf, (size_t)n, reply_frame, NULL) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!srv)
    setup();
  if (size < 2)
    return 0;
  db_fails = data[0] & 1;
  size_t step = data[1] ? data[1] : size;
  data += 2;
  size -= 2;
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  CHECK(hw_attach_server_adopt(srv, sv[0]) == 0);
  hw_jt808_deframer_init(&df);
  for (size_t at = 0; at < size; at += step) {
    size_t n = size - at < step ? size - at : step;
    if (send(sv[1], data + at, n, MSG_NOSIGNAL) < 0)
      break; /* the server closed the connection */
    uv_run(&loop, UV_RUN_NOWAIT);
    flush_db();
    drain_replies(sv[1]);
  }
  shutdown(sv[1], SHUT_WR);
  /* Until the connection is closed and its completions and queries are back. */
  while (hw_attach_server_live(srv) > 0) {
    uv_run(&loop, UV_RUN_ONCE);
    flush_db();
    drain_replies(sv[1]);
  }
  drain_replies(sv[1]);
  close(sv[1]);
  /* Nothing beside the directory; then it is emptied for the next input. */
  DIR *d = opendir(base);
  CHECK(d);
  struct dirent *e;
  while ((e = readdir(d)))
    CHECK(!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, "files"));
  closedir(d);
  CHECK(nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS) == 0);
  return 0;
}
