/* The attachment listener (attach_server.h). One loop; files are written with pwrite from the
 * read callback (the kernel's page cache takes them; a piece is at most what one read holds),
 * while what can take long — fsync, hashing a whole file, renaming — runs on libuv's thread
 * pool. A connection's memory is freed only when its handle is closed and none of its work or
 * queries is outstanding (refs). */
#include "attach/attach_server.h"
#include "attach/attach_online.h"

#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/options.h"
#include "jt808/jt808_header.h"
#include "jt808/jt808_msg.h"
#include "net/session.h"
#include "sinks/pg_async.h"

#define HW_ATTACH_READ_BUF 65536

typedef struct hw_range {
  uint32_t lo, hi; /* [lo, hi) */
} hw_range;

typedef struct hw_afile {
  char name[HW_ATTACH_DATA_NAME_LEN + 1];
  uint8_t name_len;
  uint8_t type;
  uint8_t announced;  /* 0x1211 seen on this connection */
  uint8_t complete;   /* final file on disk */
  uint8_t finishing;  /* work or query in flight */
  uint32_t size;
  int fd;             /* the .part file, -1 when closed */
  hw_range *r;        /* owned: sorted, disjoint, not adjacent */
  uint32_t nr, cap;
  char path[PATH_MAX + 128]; /* final path; ".part" and ".part.ranges" are derived */
  char sha[65];
} hw_afile;

typedef struct hw_aconn {
  uv_tcp_t tcp;
  struct hw_attach_server *srv;
  struct hw_aconn *prev, *next;
  int refs;                 /* the handle + each work item and query in flight */
  uint8_t authed, closing;
  uint64_t opened_ms, last_rx_ms, bytes;
  hw_jt808_header peer;     /* the 0x1210's header: replies go in its layout */
  uint16_t flow;
  char tid[HW_JT808_PHONE_MAX + 1];
  char alarm[HW_ATTACH_ALARM_TEXT];
  char unique[HW_ATTACH_UNIQUE_LEN + 1];
  char adir[PATH_MAX + 64];
  hw_afile *files;          /* owned, nfiles, after the 0x1210 */
  uint32_t nfiles;
  hw_afile *cur;            /* the data frame being received */
  uint32_t cur_lo, cur_at;
  char addr[48];
  hw_attach_stream stream;
} hw_aconn;

struct hw_attach_server {
  uv_loop_t *loop;
  uv_tcp_t listener;
  uv_timer_t sweep;
  hw_registry *registry;
  hw_attach_config cfg;
  char dir[PATH_MAX];
  char pub_host[256];
  uint16_t pub_port;
  hw_pg_async *pg;
  hw_aconn *conns;
  size_t nconns;
  hw_attach_stats st;
  int open_handles;
  int has_listener;
  int stopping;
  void (*done_cb)(void *);
  void *done_arg;
  uint8_t rbuf[HW_ATTACH_READ_BUF];
};

#define LOGC "attach"

int hw_attach_name_ok(const uint8_t *name, size_t n) {
  if (n == 0 || n > HW_ATTACH_DATA_NAME_LEN || name[0] == '.')
    return 0;
  for (size_t i = 0; i < n; i++) {
    uint8_t c = name[i];
    if (c <= 0x20 || c >= 0x7F || c == '/' || c == '\\' || c == ':')
      return 0;
    if (c == '.' && i + 1 < n && name[i + 1] == '.')
      return 0;
  }
  return 1;
}

/* ---- connection lifetime ---- */

static void hw_as_handle_closed(hw_attach_server *srv);

/* A connection counts as one of the server's open handles until its memory is freed: work and
 * queries still in flight for it use the server. */
static void hw_ac_unref(hw_aconn *c) {
  if (--c->refs > 0)
    return;
  hw_attach_server *srv = c->srv;
  for (uint32_t i = 0; i < c->nfiles; i++)
    free(c->files[i].r);
  free(c->files);
  free(c);
  hw_as_handle_closed(srv);
}

static void hw_as_handle_closed(hw_attach_server *srv) {
  if (--srv->open_handles > 0 || !srv->stopping)
    return;
  hw_pg_async_stop(srv->pg, srv->done_cb, srv->done_arg);
  srv->pg = NULL;
  hw_info(LOGC, NULL, "stopped");
  free(srv);
}

static void hw_ac_on_closed(uv_handle_t *h) { hw_ac_unref(h->data); }

static int hw_ac_save_ranges(hw_afile *f);

static void hw_ac_close(hw_aconn *c, const char *why) {
  if (c->closing)
    return;
  c->closing = 1;
  hw_attach_server *srv = c->srv;
  if (why)
    hw_info(LOGC, c->tid[0] ? c->tid : NULL, "peer=%s alarm=%s closed: %s", c->addr,
            c->alarm[0] ? c->alarm : "-", why);
  /* What is on disk is kept for a resume: its data synced, then its ranges. */
  for (uint32_t i = 0; i < c->nfiles; i++) {
    hw_afile *f = &c->files[i];
    if (f->fd >= 0 && !f->finishing) {
      if (!f->complete && f->nr)
        (void)hw_ac_save_ranges(f);
      close(f->fd);
      f->fd = -1;
    }
  }
  if (c->prev)
    c->prev->next = c->next;
  else
    srv->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  srv->nconns--;
  uv_close((uv_handle_t *)&c->tcp, hw_ac_on_closed);
}

/* ---- writing to the terminal ---- */

typedef struct hw_wreq {
  uv_write_t req;
  uint8_t data[];
} hw_wreq;

static void hw_ac_written(uv_write_t *req, int status) {
  (void)status;
  free(HW_CONTAINER_OF(req, hw_wreq, req));
}

static int hw_ac_send(hw_aconn *c, uint16_t msg_id, const uint8_t *body, size_t len) {
  if (c->closing)
    return -ECONNRESET;
  uint8_t out[HW_JT808_WIRE_MAX];
  size_t n;
  int rc = hw_jt808_build(out, sizeof out, &n, &c->peer, msg_id, c->flow++, body, len);
  if (rc)
    return rc;
  uv_buf_t b = uv_buf_init((char *)out, (unsigned)n);
  int w = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (w == (int)n)
    return 0;
  size_t off = w > 0 ? (size_t)w : 0;
  hw_wreq *wr = malloc(sizeof *wr + n - off);
  if (!wr)
    return -ENOMEM;
  memcpy(wr->data, out + off, n - off);
  b = uv_buf_init((char *)wr->data, (unsigned)(n - off));
  if ((rc = uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, hw_ac_written))) {
    free(wr);
    return rc;
  }
  return 0;
}

static int hw_ac_answer(hw_aconn *c, const hw_jt808_header *h, uint8_t result) {
  uint8_t body[5] = {(uint8_t)(h->flow >> 8), (uint8_t)h->flow, (uint8_t)(h->msg_id >> 8),
                     (uint8_t)h->msg_id, result};
  return hw_ac_send(c, HW_JT808_MSG_PLATFORM_RESPONSE, body, sizeof body);
}

/* ---- ranges ---- */

static uint64_t hw_af_received(const hw_afile *f) {
  uint64_t n = 0;
  for (uint32_t i = 0; i < f->nr; i++)
    n += f->r[i].hi - f->r[i].lo;
  return n;
}

/* Adds [lo, hi); *overlap gets the bytes that were already there. -ENOSPC above
 * HW_ATTACH_MAX_RANGES, -ENOMEM. */
static int hw_af_add(hw_afile *f, uint32_t lo, uint32_t hi, uint64_t *overlap) {
  *overlap = 0;
  if (lo >= hi)
    return 0;
  uint32_t i = 0;
  while (i < f->nr && f->r[i].hi < lo)
    i++;
  uint32_t j = i; /* ranges i..j-1 touch or overlap [lo, hi) */
  uint32_t nlo = lo, nhi = hi;
  while (j < f->nr && f->r[j].lo <= hi) {
    uint32_t a = f->r[j].lo > lo ? f->r[j].lo : lo, b = f->r[j].hi < hi ? f->r[j].hi : hi;
    if (b > a)
      *overlap += b - a;
    if (f->r[j].lo < nlo)
      nlo = f->r[j].lo;
    if (f->r[j].hi > nhi)
      nhi = f->r[j].hi;
    j++;
  }
  if (i == j) { /* insert at i */
    if (f->nr >= HW_ATTACH_MAX_RANGES)
      return -ENOSPC;
    if (f->nr == f->cap) {
      uint32_t cap = f->cap ? f->cap * 2 : 8;
      hw_range *r = realloc(f->r, cap * sizeof *r);
      if (!r)
        return -ENOMEM;
      f->r = r;
      f->cap = cap;
    }
    memmove(f->r + i + 1, f->r + i, (f->nr - i) * sizeof *f->r);
    f->nr++;
  } else if (j - i > 1) {
    memmove(f->r + i + 1, f->r + j, (f->nr - j) * sizeof *f->r);
    f->nr -= j - i - 1;
  }
  f->r[i].lo = nlo;
  f->r[i].hi = nhi;
  return 0;
}

/* The gaps of f within [0, size), at most max. */
static unsigned hw_af_missing(const hw_afile *f, hw_attach_range *out, unsigned max) {
  unsigned n = 0;
  uint32_t at = 0;
  for (uint32_t i = 0; i <= f->nr && n < max; i++) {
    uint32_t end = i < f->nr ? f->r[i].lo : f->size;
    if (end > at)
      out[n++] = (hw_attach_range){at, end - at};
    if (i < f->nr)
      at = f->r[i].hi;
  }
  return n;
}

static void hw_af_part(const hw_afile *f, char *out, size_t cap, const char *suffix) {
  snprintf(out, cap, "%s%s", f->path, suffix);
}

/* Syncs the data, then writes the ranges next to it (atomically: temporary file + rename). */
static int hw_ac_save_ranges(hw_afile *f) {
  char tmp[PATH_MAX + 160], fin[PATH_MAX + 160];
  if (f->fd >= 0 && fdatasync(f->fd))
    return -errno;
  hw_af_part(f, tmp, sizeof tmp, ".part.ranges.tmp");
  hw_af_part(f, fin, sizeof fin, ".part.ranges");
  FILE *o = fopen(tmp, "w");
  if (!o)
    return -errno;
  fprintf(o, "size %u\n", f->size);
  for (uint32_t i = 0; i < f->nr; i++)
    fprintf(o, "%u %u\n", f->r[i].lo, f->r[i].hi);
  int bad = fflush(o) || fdatasync(fileno(o));
  bad |= fclose(o) != 0;
  if (bad || rename(tmp, fin)) {
    unlink(tmp);
    return -EIO;
  }
  return 0;
}

/* Reads the ranges kept for a resume; anything unexpected and the file starts from nothing. */
static void hw_ac_load_ranges(hw_afile *f) {
  char fin[PATH_MAX + 160];
  hw_af_part(f, fin, sizeof fin, ".part.ranges");
  FILE *in = fopen(fin, "r");
  if (!in)
    return;
  unsigned size, lo, hi;
  uint64_t ov;
  int ok = fscanf(in, "size %u\n", &size) == 1 && size == f->size;
  while (ok && fscanf(in, "%u %u\n", &lo, &hi) == 2) {
    if (lo >= hi || hi > f->size || hw_af_add(f, lo, hi, &ov)) {
      ok = 0;
      break;
    }
  }
  if (ok && !feof(in))
    ok = 0;
  fclose(in);
  if (!ok)
    f->nr = 0;
}

/* ---- PostgreSQL ---- */

typedef struct hw_pgq {
  hw_aconn *c;
  hw_afile *f;
  int answer; /* send 0x9212 "complete" once stored */
} hw_pgq;

static int hw_ac_send_done(hw_aconn *c, hw_afile *f, uint8_t result, const hw_attach_range *r,
                           unsigned n) {
  hw_attach_answer *a = calloc(1, sizeof *a);
  if (!a)
    return -ENOMEM;
  a->file.name = (const uint8_t *)f->name;
  a->file.name_len = f->name_len;
  a->file.type = f->type;
  a->result = result;
  a->count = (uint8_t)n;
  if (n) /* r may be NULL for none */
    memcpy(a->ranges, r, n * sizeof *r);
  uint8_t body[HW_JT808_BODY_MAX];
  size_t len;
  int rc = hw_attach_encode_answer(a, body, sizeof body, &len);
  free(a);
  return rc ? rc : hw_ac_send(c, HW_ATTACH_MSG_DONE_ANSWER, body, len);
}

static void hw_ac_stored(void *arg, const PGresult *res) {
  hw_pgq *q = arg;
  hw_aconn *c = q->c;
  hw_afile *f = q->f;
  int ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;
  if (!ok)
    hw_error(LOGC, c->tid, "alarm=%s file=%s not recorded: %s", c->alarm, f->name,
             res ? PQresultErrorMessage(res) : "no database");
  if (q->answer) {
    f->finishing = 0;
    if (ok) {
      c->srv->st.files_complete++;
      hw_info(LOGC, c->tid, "alarm=%s file=%s complete (%u bytes, sha256 %s)", c->alarm, f->name,
              f->size, f->sha);
      if (!c->closing && hw_ac_send_done(c, f, 0, NULL, 0))
        hw_ac_close(c, "cannot answer 0x9212");
    } else if (!c->closing) {
      /* Not said to be done: the terminal sends 0x1212 again, or reconnects. */
      hw_ac_close(c, "completion not recorded");
    }
  }
  free(q);
  hw_ac_unref(c);
}

static int hw_ac_record(hw_aconn *c, hw_afile *f, int answer) {
  char type[8], size[16], recv[24], complete[8];
  snprintf(type, sizeof type, "%u", f->type);
  snprintf(size, sizeof size, "%u", f->size);
  snprintf(recv, sizeof recv, "%llu", (unsigned long long)(f->complete ? f->size : hw_af_received(f)));
  snprintf(complete, sizeof complete, "%s", f->complete ? "true" : "false");
  char path[PATH_MAX + 160];
  snprintf(path, sizeof path, "%s%s", f->path, f->complete ? "" : ".part");
  const char *p[10] = {c->alarm, c->unique, c->tid, f->name, type, size, path, recv,
                       f->complete ? f->sha : NULL, complete};
  hw_pgq *q = malloc(sizeof *q);
  if (!q)
    return -ENOMEM;
  *q = (hw_pgq){c, f, answer};
  int rc = hw_pg_async_query(
      c->srv->pg,
      "INSERT INTO safety_attachments (alarm_no, unique_no, terminal_id, name, type, size, path, "
      "received, sha256, complete, completed_at) VALUES ($1, $2, $3, $4, $5::smallint, "
      "$6::bigint, $7, $8::bigint, $9, $10::boolean, CASE WHEN $10::boolean THEN now() END) "
      "ON CONFLICT (alarm_no, name) DO UPDATE SET unique_no = EXCLUDED.unique_no, terminal_id = "
      "EXCLUDED.terminal_id, type = EXCLUDED.type, size = EXCLUDED.size, path = EXCLUDED.path, "
      "received = EXCLUDED.received, sha256 = EXCLUDED.sha256, complete = EXCLUDED.complete, "
      "completed_at = coalesce(safety_attachments.completed_at, EXCLUDED.completed_at) "
      "WHERE NOT safety_attachments.complete OR EXCLUDED.complete",
      10, p, hw_ac_stored, q);
  if (rc) {
    free(q);
    return rc;
  }
  c->refs++;
  return 0;
}

/* ---- completing a file, off the loop ---- */

typedef struct hw_finish {
  uv_work_t work;
  hw_aconn *c;
  hw_afile *f;
  int fd;
  int rc;
} hw_finish;

static void hw_finish_work(uv_work_t *w) {
  hw_finish *j = HW_CONTAINER_OF(w, hw_finish, work);
  hw_afile *f = j->f;
  char part[PATH_MAX + 160], ranges[PATH_MAX + 160];
  hw_af_part(f, part, sizeof part, ".part");
  hw_af_part(f, ranges, sizeof ranges, ".part.ranges");
  int fd = j->fd;
  j->rc = 0;
  if (fd < 0) { /* already complete on disk: hash what is there */
    fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      j->rc = -errno;
      return;
    }
  } else if (fdatasync(fd)) {
    j->rc = -errno;
  }
  crypto_hash_sha256_state h;
  crypto_hash_sha256_init(&h);
  uint8_t buf[65536];
  uint64_t at = 0;
  while (!j->rc && at < f->size) {
    size_t want = f->size - at < sizeof buf ? (size_t)(f->size - at) : sizeof buf;
    ssize_t n = pread(fd, buf, want, (off_t)at);
    if (n <= 0) {
      j->rc = n < 0 ? -errno : -EIO; /* shorter than declared: a piece was never written */
      break;
    }
    crypto_hash_sha256_update(&h, buf, (size_t)n);
    at += (uint64_t)n;
  }
  close(fd);
  if (j->rc)
    return;
  uint8_t d[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_final(&h, d);
  sodium_bin2hex(f->sha, sizeof f->sha, d, sizeof d);
  if (j->fd >= 0) {
    if (rename(part, f->path)) {
      j->rc = -errno;
      return;
    }
    unlink(ranges);
    /* The rename is durable once the directory is. */
    char dir[PATH_MAX + 128];
    snprintf(dir, sizeof dir, "%s", f->path);
    char *slash = strrchr(dir, '/');
    if (slash) {
      *slash = 0;
      int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
      }
    }
  }
}

static void hw_finish_done(uv_work_t *w, int status) {
  hw_finish *j = HW_CONTAINER_OF(w, hw_finish, work);
  hw_aconn *c = j->c;
  hw_afile *f = j->f;
  if (status == 0 && j->rc == 0) {
    f->complete = 1;
    if (hw_ac_record(c, f, 1) == 0)
      goto out;
    j->rc = -ENOMEM;
  }
  f->finishing = 0;
  hw_error(LOGC, c->tid, "alarm=%s file=%s cannot be completed: %s", c->alarm, f->name,
           strerror(j->rc ? -j->rc : ECANCELED));
  if (!c->closing)
    hw_ac_close(c, "file could not be completed");
out:
  free(j);
  hw_ac_unref(c);
}

static int hw_ac_finish(hw_aconn *c, hw_afile *f) {
  hw_finish *j = calloc(1, sizeof *j);
  if (!j)
    return -ENOMEM;
  j->c = c;
  j->f = f;
  j->fd = f->complete ? -1 : f->fd;
  f->fd = -1; /* the work closes it */
  f->finishing = 1;
  int rc = uv_queue_work(c->srv->loop, &j->work, hw_finish_work, hw_finish_done);
  if (rc) {
    if (j->fd >= 0)
      f->fd = j->fd;
    f->finishing = 0;
    free(j);
    return rc;
  }
  c->refs++;
  return 0;
}

/* ---- messages ---- */

static hw_afile *hw_ac_file(hw_aconn *c, const uint8_t *name, size_t n) {
  for (uint32_t i = 0; i < c->nfiles; i++)
    if (c->files[i].name_len == n && !memcmp(c->files[i].name, name, n))
      return &c->files[i];
  return NULL;
}

static void hw_text(const uint8_t *p, size_t n, char *out, size_t cap) {
  size_t k = 0;
  for (size_t i = 0; i < n && k + 1 < cap; i++)
    out[k++] = p[i] >= 0x20 && p[i] < 0x7F ? (char)p[i] : '?';
  out[k] = 0;
}

/* 0x1210. Returns negative to close the connection. */
static int hw_ac_list(hw_aconn *c, const hw_jt808_header *h, const uint8_t *body, size_t len) {
  hw_attach_server *srv = c->srv;
  c->peer = *h;
  hw_attach_list *l = malloc(sizeof *l);
  if (!l)
    return -ENOMEM;
  const char *why = NULL;
  int rc = 0;
  if (c->authed)
    why = "a second attachment list on one connection";
  else if (hw_attach_parse_list(body, len, l))
    why = "malformed attachment list";
  else if (!hw_attach_online_has(h->phone))
    /* On any worker: the registry here is worker 0's alone, the sessions are every worker's. */
    why = "terminal not online on JT/T 808";
  else if (l->count == 0 || l->count > srv->cfg.max_files)
    why = "too many files (or none) for one alarm";
  else if (hw_attach_alarm_no_text(&l->alarm, c->alarm, sizeof c->alarm))
    why = "alarm number unreadable";
  for (unsigned i = 0; !why && i < l->count; i++) {
    if (!hw_attach_name_ok(l->items[i].name, l->items[i].name_len))
      why = "a file name that is not a plain name";
    else if (l->items[i].size > srv->cfg.max_file)
      why = "a file larger than allowed";
    for (unsigned k = 0; !why && k < i; k++)
      if (l->items[k].name_len == l->items[i].name_len &&
          !memcmp(l->items[k].name, l->items[i].name, l->items[i].name_len))
        why = "a file listed twice";
  }
  /* One connection per alarm at a time: two writers of one file could rename it under each
   * other. The older one is closed (a terminal that reconnects has given up on it). */
  for (hw_aconn *o = srv->conns; !why && o; o = o->next)
    if (o != c && o->authed && !o->closing && !strcmp(o->alarm, c->alarm)) {
      int busy = 0;
      for (uint32_t i = 0; i < o->nfiles; i++)
        busy |= o->files[i].finishing;
      if (busy)
        why = "this alarm's upload is being completed on another connection";
      else
        hw_ac_close(o, "the terminal uploads this alarm on a new connection");
    }
  if (!why) {
    snprintf(c->adir, sizeof c->adir, "%s/%s", srv->dir, c->alarm);
    if (mkdir(c->adir, 0750) && errno != EEXIST) {
      hw_error(LOGC, h->phone, "cannot create %s: %s", c->adir, strerror(errno));
      why = "storage unavailable";
    }
  }
  if (!why && !(c->files = calloc(l->count, sizeof *c->files)))
    rc = -ENOMEM;
  if (why || rc) {
    srv->st.lists_refused++;
    hw_info(LOGC, h->phone, "peer=%s attachment list refused: %s", c->addr, why ? why : "out of memory");
    c->alarm[0] = 0;
    free(l);
    if (hw_ac_answer(c, h, HW_JT808_RES_FAIL))
      return -EPIPE;
    return rc;
  }
  c->nfiles = l->count;
  for (unsigned i = 0; i < l->count; i++) {
    hw_afile *f = &c->files[i];
    memcpy(f->name, l->items[i].name, l->items[i].name_len);
    f->name_len = l->items[i].name_len;
    f->size = l->items[i].size;
    f->fd = -1;
    snprintf(f->path, sizeof f->path, "%s/%s", c->adir, f->name);
  }
  snprintf(c->tid, sizeof c->tid, "%s", h->phone);
  hw_text(l->unique, HW_ATTACH_UNIQUE_LEN, c->unique, sizeof c->unique);
  c->authed = 1;
  srv->st.lists++;
  hw_info(LOGC, c->tid, "peer=%s alarm=%s: %u file(s) announced", c->addr, c->alarm, l->count);
  free(l);
  return hw_ac_answer(c, h, HW_JT808_RES_OK) ? -EPIPE : 0;
}

/* 0x1211. */
static int hw_ac_file_info(hw_aconn *c, const hw_jt808_header *h, const uint8_t *body, size_t len) {
  hw_attach_file fi = {0}; /* the log below reads its name even when the parse failed part-way */
  hw_afile *f = NULL;
  const char *why = NULL;
  if (hw_attach_parse_file(body, len, &fi)) {
    why = "malformed file info";
    fi.name = NULL, fi.name_len = 0; /* may point anywhere after a failed parse */
  }
  else if (!(f = hw_ac_file(c, fi.name, fi.name_len)))
    why = "a file not in the attachment list";
  else if (fi.size != f->size)
    why = "a size other than the list's";
  else if (f->finishing)
    why = "a file being completed";
  struct stat sb;
  if (!why && !f->complete && f->fd < 0) {
    if (stat(f->path, &sb) == 0) {
      if ((uint64_t)sb.st_size != f->size)
        why = "a file already stored with another size";
      else
        f->complete = 1;
    } else {
      char part[PATH_MAX + 160];
      hw_af_part(f, part, sizeof part, ".part");
      f->fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
      if (f->fd < 0) {
        hw_error(LOGC, c->tid, "cannot open %s: %s", part, strerror(errno));
        why = "storage unavailable";
      } else {
        f->nr = 0;
        hw_ac_load_ranges(f);
        if (f->nr)
          hw_info(LOGC, c->tid, "alarm=%s file=%s resumes with %llu of %u bytes", c->alarm,
                  f->name, (unsigned long long)hw_af_received(f), f->size);
      }
    }
  }
  if (why) {
    c->srv->st.files_refused++;
    char name[64];
    hw_text(fi.name, fi.name_len, name, sizeof name);
    hw_info(LOGC, c->tid, "peer=%s alarm=%s file=%s refused: %s", c->addr, c->alarm,
            f ? f->name : name, why);
    return hw_ac_answer(c, h, HW_JT808_RES_FAIL) ? -EPIPE : 0;
  }
  f->type = fi.type;
  f->announced = 1;
  if (!f->complete && hw_ac_record(c, f, 0))
    hw_warn(LOGC, c->tid, "alarm=%s file=%s: row not queued", c->alarm, f->name);
  return hw_ac_answer(c, h, HW_JT808_RES_OK) ? -EPIPE : 0;
}

/* 0x1212. */
static int hw_ac_file_done(hw_aconn *c, const hw_jt808_header *h, const uint8_t *body, size_t len) {
  hw_attach_file fi;
  hw_afile *f;
  if (hw_attach_parse_file(body, len, &fi) || !(f = hw_ac_file(c, fi.name, fi.name_len)) ||
      !f->announced) {
    /* No 0x9212 can name a file we do not know; the terminal is told its message failed. */
    return hw_ac_answer(c, h, HW_JT808_RES_FAIL) ? -EPIPE : 0;
  }
  if (f->finishing)
    return 0; /* the answer comes when it is done */
  if (!f->complete) {
    hw_attach_range miss[HW_ATTACH_9212_MAX_RANGES];
    unsigned n = hw_af_missing(f, miss, HW_ATTACH_9212_MAX_RANGES);
    if (n) {
      /* A 0x9212 holds so many ranges; the rest are asked for after those arrive. */
      c->srv->st.resends_asked++;
      hw_info(LOGC, c->tid, "alarm=%s file=%s: %llu of %u bytes, %u range(s) to resend",
              c->alarm, f->name, (unsigned long long)hw_af_received(f), f->size, n);
      if (hw_ac_save_ranges(f))
        hw_warn(LOGC, c->tid, "alarm=%s file=%s: ranges not saved for a resume", c->alarm, f->name);
      if (hw_ac_record(c, f, 0))
        hw_warn(LOGC, c->tid, "alarm=%s file=%s: row not queued", c->alarm, f->name);
      return hw_ac_send_done(c, f, 1, miss, n) ? -EPIPE : 0;
    }
  }
  return hw_ac_finish(c, f);
}

static int hw_ac_frame(void *arg, hw_jt808_frame_event ev, const uint8_t *data, size_t len) {
  hw_aconn *c = arg;
  if (ev != HW_JT808_FRAME) {
    c->srv->st.closed_protocol++;
    hw_ac_close(c, "broken JT/T 808 frame");
    return -EPROTO;
  }
  hw_jt808_header h;
  const uint8_t *body;
  int rc;
  if (hw_jt808_header_parse(data, len, &h, &body) || h.subpackaged || h.encryption) {
    c->srv->st.closed_protocol++;
    hw_ac_close(c, "impossible, sub-packaged or encrypted frame");
    return -EPROTO;
  }
  if (h.msg_id == HW_ATTACH_MSG_LIST) {
    rc = hw_ac_list(c, &h, body, h.body_len);
  } else if (!c->authed) {
    /* Nothing but the list is taken first; the peer is not kept. */
    c->srv->st.closed_protocol++;
    hw_ac_close(c, "message before the attachment list");
    return -EACCES;
  } else if (strcmp(h.phone, c->tid)) {
    rc = -EACCES;
  } else if (h.msg_id == HW_ATTACH_MSG_FILE_INFO) {
    rc = hw_ac_file_info(c, &h, body, h.body_len);
  } else if (h.msg_id == HW_ATTACH_MSG_FILE_DONE) {
    rc = hw_ac_file_done(c, &h, body, h.body_len);
  } else if (h.msg_id == HW_JT808_MSG_HEARTBEAT) {
    rc = hw_ac_answer(c, &h, HW_JT808_RES_OK);
  } else {
    rc = hw_ac_answer(c, &h, HW_JT808_RES_UNSUPPORTED);
  }
  if (rc && !c->closing) {
    c->srv->st.closed_protocol++;
    hw_ac_close(c, rc == -EACCES ? "another terminal's frame" : "cannot answer");
  }
  return rc;
}

static int hw_ac_data_begin(void *arg, const uint8_t *name, size_t n, uint32_t off, uint32_t len) {
  hw_aconn *c = arg;
  hw_attach_server *srv = c->srv;
  hw_afile *f = c->authed ? hw_ac_file(c, name, n) : NULL;
  const char *why = NULL;
  if (!f || !f->announced)
    why = "data for a file not announced";
  else if (f->complete || f->finishing || f->fd < 0)
    why = "data for a file already complete";
  else if ((uint64_t)off + len > f->size)
    why = "data outside the file's declared size";
  else if (c->bytes + len > srv->cfg.max_conn_bytes)
    why = "more data than one connection may send";
  if (why) {
    srv->st.closed_limit++;
    hw_ac_close(c, why);
    return -E2BIG;
  }
  c->cur = f;
  c->cur_lo = c->cur_at = off;
  c->bytes += len;
  return 0;
}

static int hw_ac_data(void *arg, const uint8_t *p, size_t n) {
  hw_aconn *c = arg;
  while (n) {
    ssize_t w = pwrite(c->cur->fd, p, n, (off_t)c->cur_at);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      hw_error(LOGC, c->tid, "alarm=%s file=%s: write failed: %s", c->alarm, c->cur->name,
               strerror(w < 0 ? errno : EIO));
      hw_ac_close(c, "storage write failed");
      return -EIO;
    }
    p += w;
    n -= (size_t)w;
    c->cur_at += (uint32_t)w;
  }
  return 0;
}

static int hw_ac_data_end(void *arg) {
  hw_aconn *c = arg;
  uint64_t overlap;
  int rc = hw_af_add(c->cur, c->cur_lo, c->cur_at, &overlap);
  c->srv->st.pieces++;
  c->srv->st.bytes += c->cur_at - c->cur_lo;
  c->srv->st.overlap_bytes += overlap;
  c->cur = NULL;
  if (rc) {
    c->srv->st.closed_limit++;
    hw_ac_close(c, "pieces too scattered");
  }
  return rc;
}

static const hw_attach_stream_cb hw_ac_cb = {hw_ac_frame, hw_ac_data_begin, hw_ac_data,
                                             hw_ac_data_end};

/* ---- reading ---- */

static void hw_ac_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  hw_aconn *c = h->data;
  /* One buffer per server: every read is consumed before the next is made. */
  *buf = uv_buf_init((char *)c->srv->rbuf, sizeof c->srv->rbuf);
}

static void hw_ac_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  hw_aconn *c = s->data;
  (void)buf;
  if (n == 0 || c->closing)
    return;
  if (n < 0) {
    hw_ac_close(c, n == UV_EOF ? NULL : uv_strerror((int)n));
    return;
  }
  c->last_rx_ms = uv_now(c->srv->loop);
  int rc = hw_attach_stream_feed(&c->stream, c->srv->rbuf, (size_t)n, &hw_ac_cb, c);
  if (rc && !c->closing) {
    c->srv->st.closed_protocol++;
    hw_ac_close(c, "not the attachment protocol");
  }
}

/* Sets up a connection on a handle already initialised (accepted or opened). */
static void hw_as_begin(hw_attach_server *srv, hw_aconn *c) {
  c->next = srv->conns;
  if (c->next)
    c->next->prev = c;
  srv->conns = c;
  srv->nconns++;
  srv->st.accepted++;
  struct sockaddr_storage ss;
  int sl = sizeof ss;
  snprintf(c->addr, sizeof c->addr, "?");
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0 &&
      (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)) {
    char ip[46] = "?";
    if (ss.ss_family == AF_INET6)
      uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
    else
      uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
    snprintf(c->addr, sizeof c->addr, "%s:%u", ip,
             ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                            : ((struct sockaddr_in *)&ss)->sin_port));
  }
  c->opened_ms = c->last_rx_ms = uv_now(srv->loop);
  hw_attach_stream_init(&c->stream);
  if (srv->nconns > srv->cfg.max_connections) {
    srv->st.refused_max_connections++;
    hw_ac_close(c, "too many attachment connections");
    return;
  }
  if (uv_read_start((uv_stream_t *)&c->tcp, hw_ac_alloc, hw_ac_read))
    hw_ac_close(c, "cannot read");
}

static hw_aconn *hw_as_new_conn(hw_attach_server *srv) {
  hw_aconn *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  c->srv = srv;
  c->refs = 1;
  uv_tcp_init(srv->loop, &c->tcp);
  c->tcp.data = c;
  srv->open_handles++;
  return c;
}

static void hw_as_on_conn(uv_stream_t *l, int status) {
  hw_attach_server *srv = l->data;
  if (status < 0 || srv->stopping)
    return;
  hw_aconn *c = hw_as_new_conn(srv);
  if (!c)
    return;
  if (uv_accept(l, (uv_stream_t *)&c->tcp)) {
    uv_close((uv_handle_t *)&c->tcp, hw_ac_on_closed);
    return;
  }
  hw_as_begin(srv, c);
}

int hw_attach_server_adopt(hw_attach_server *srv, int fd) {
  if (srv->stopping)
    return -ESHUTDOWN;
  hw_aconn *c = hw_as_new_conn(srv);
  if (!c)
    return -ENOMEM;
  int rc = uv_tcp_open(&c->tcp, fd);
  if (rc) {
    uv_close((uv_handle_t *)&c->tcp, hw_ac_on_closed);
    return rc;
  }
  hw_as_begin(srv, c);
  return 0;
}

size_t hw_attach_server_live(const hw_attach_server *srv) {
  return (size_t)srv->open_handles - (srv->has_listener ? 2 : 1);
}

static void hw_as_sweep(uv_timer_t *t) {
  hw_attach_server *srv = t->data;
  uint64_t now = uv_now(srv->loop);
  for (hw_aconn *c = srv->conns, *next; c; c = next) {
    next = c->next;
    const char *why = NULL;
    if (!c->authed && now - c->opened_ms > srv->cfg.auth_timeout_ms)
      why = "no attachment list in time";
    else if (now - c->opened_ms > srv->cfg.total_ms)
      why = "connection open longer than allowed";
    else if (now - c->last_rx_ms > srv->cfg.idle_ms)
      why = "idle";
    if (why) {
      srv->st.closed_timeout++;
      hw_ac_close(c, why);
    }
  }
}

static void hw_as_listener_closed(uv_handle_t *h) { hw_as_handle_closed(h->data); }

int hw_attach_server_start(hw_attach_server **out, uv_loop_t *loop, hw_registry *registry,
                           const hw_attach_config *cfg) {
  char host[256];
  int port, rc;
  struct sockaddr_storage ss;
  int listen = cfg->listen && cfg->listen[0];
  if (listen && (hw_parse_hostport(cfg->listen, host, sizeof host, &port) ||
                 (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) &&
                  uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss))))
    return -EINVAL;
  hw_attach_server *srv = calloc(1, sizeof *srv);
  if (!srv)
    return -ENOMEM;
  srv->loop = loop;
  srv->registry = registry;
  srv->cfg = *cfg;
  const char *pub = cfg->public_addr && cfg->public_addr[0] ? cfg->public_addr : cfg->listen;
  int pport;
  if (!pub || hw_parse_hostport(pub, srv->pub_host, sizeof srv->pub_host, &pport)) {
    free(srv);
    return -EINVAL;
  }
  srv->pub_port = (uint16_t)pport;
  if (mkdir(cfg->dir, 0750) && errno != EEXIST) {
    rc = -errno;
    hw_error(LOGC, NULL, "cannot create attachment_dir %s: %s", cfg->dir, strerror(errno));
    free(srv);
    return rc;
  }
  if (!realpath(cfg->dir, srv->dir)) {
    rc = -errno;
    free(srv);
    return rc;
  }
  if ((rc = hw_pg_async_start(&srv->pg, loop, cfg->pg_conninfo, LOGC))) {
    free(srv);
    return rc;
  }
  uv_timer_init(loop, &srv->sweep);
  srv->sweep.data = srv;
  srv->open_handles = 1;
  if (listen) {
    uv_tcp_init(loop, &srv->listener);
    srv->listener.data = srv;
    srv->open_handles++;
    srv->has_listener = 1;
  }
  if (listen && ((rc = uv_tcp_bind(&srv->listener, (struct sockaddr *)&ss, 0)) ||
                 (rc = uv_listen((uv_stream_t *)&srv->listener, 128, hw_as_on_conn)))) {
    hw_error(LOGC, NULL, "cannot listen on %s: %s", cfg->listen, uv_strerror(rc));
    hw_attach_server_stop(srv, NULL, NULL);
    return rc;
  }
  uv_timer_start(&srv->sweep, hw_as_sweep, 1000, 1000);
  hw_info(LOGC, NULL, "listening on %s, files under %s, terminals told %s:%u",
          listen ? cfg->listen : "(no listener)", srv->dir, srv->pub_host, srv->pub_port);
  *out = srv;
  return 0;
}

void hw_attach_server_public(const hw_attach_server *srv, char *host, size_t cap, uint16_t *port) {
  snprintf(host, cap, "%s", srv->pub_host);
  *port = srv->pub_port;
}

void hw_attach_server_get_stats(const hw_attach_server *srv, hw_attach_stats *out) {
  *out = srv->st;
}

void hw_attach_server_stop(hw_attach_server *srv, void (*done_cb)(void *arg), void *arg) {
  srv->stopping = 1;
  srv->done_cb = done_cb;
  srv->done_arg = arg;
  while (srv->conns)
    hw_ac_close(srv->conns, "shutting down");
  uv_close((uv_handle_t *)&srv->sweep, hw_as_listener_closed);
  if (srv->has_listener)
    uv_close((uv_handle_t *)&srv->listener, hw_as_listener_closed);
}
