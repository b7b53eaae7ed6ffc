#include "sinks/pg_conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

#define HW_PG_BACKOFF_MIN_MS 100
#define HW_PG_BACKOFF_MAX_MS 5000
/* PQconnectPoll does not apply libpq's connect_timeout: an attempt that hangs (a lost SYN, a
 * server that never answers the startup packet) is ended by our own timer. */
#define HW_PG_CONNECT_TIMEOUT_MS 10000

static void hw_pg_conn_on_poll(uv_poll_t *h, int status, int events);
static void hw_pg_conn_on_timer(uv_timer_t *t);

const char *hw_pg_sqlstate(const PGresult *res) {
  const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  return s ? s : "";
}

const char *hw_pg_errmsg(const PGresult *res) {
  if (!res)
    return "no result";
  const char *s = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
  return s ? s : PQresultErrorMessage(res);
}

static void hw_pg_conn_maybe_closed(hw_pg_conn *c) {
  if (c->closing && c->handles == 0)
    c->ops->closed(c);
}

static void hw_pg_conn_on_poll_closed(uv_handle_t *h) {
  hw_pg_conn *c = h->data;
  free(h);
  c->handles--;
  hw_pg_conn_maybe_closed(c);
}

static void hw_pg_conn_on_timer_closed(uv_handle_t *h) {
  hw_pg_conn *c = h->data;
  c->handles--;
  hw_pg_conn_maybe_closed(c);
}

static int hw_pg_conn_poll_set(hw_pg_conn *c, int events) {
  if (events == c->poll_events)
    return 0;
  int rc = uv_poll_start(c->poll, events, hw_pg_conn_on_poll);
  if (rc)
    return rc;
  c->poll_events = events;
  return 0;
}

/* Stops the current handle (synchronously: libuv forgets the fd at uv_close) before a new one is
 * initialised on fd, which may be the very same number for a different socket. */
static int hw_pg_conn_poll_replace(hw_pg_conn *c, int fd, int events) {
  if (c->poll) {
    uv_close((uv_handle_t *)c->poll, hw_pg_conn_on_poll_closed);
    c->poll = NULL;
  }
  c->poll_events = 0;
  if (fd < 0)
    return -EBADF;
  uv_poll_t *p = malloc(sizeof *p);
  if (!p)
    return -ENOMEM;
  int rc = uv_poll_init_socket(c->loop, p, fd);
  if (rc) {
    free(p);
    return rc;
  }
  p->data = c;
  c->handles++;
  c->poll = p;
  return hw_pg_conn_poll_set(c, events);
}

static int hw_pg_conn_update_events(hw_pg_conn *c) {
  int events = UV_READABLE | (c->flushing || c->want_write ? UV_WRITABLE : 0);
  return hw_pg_conn_poll_set(c, events);
}

/* Frees the session and its poll handle; the fd is closed by PQfinish only after libuv let go. */
static void hw_pg_conn_teardown(hw_pg_conn *c) {
  uv_timer_stop(&c->timer);
  if (c->poll) {
    uv_close((uv_handle_t *)c->poll, hw_pg_conn_on_poll_closed);
    c->poll = NULL;
  }
  c->poll_events = 0;
  if (c->pg) {
    PQfinish(c->pg);
    c->pg = NULL;
  }
  c->up = 0;
  c->failing = NULL;
  c->flushing = 0;
  c->want_write = 0;
}

static void hw_pg_conn_schedule(hw_pg_conn *c) {
  uv_timer_start(&c->timer, hw_pg_conn_on_timer, c->backoff_ms, 0);
  c->backoff_ms *= 2;
  if (c->backoff_ms > HW_PG_BACKOFF_MAX_MS)
    c->backoff_ms = HW_PG_BACKOFF_MAX_MS;
}

/* Immediately: only from the loop's own callbacks, never under a call of the user's. */
static void hw_pg_conn_drop(hw_pg_conn *c, const char *why) {
  int was_up = c->up || c->failing;
  const char *msg = c->pg ? PQerrorMessage(c->pg) : "";
  char detail[256];
  snprintf(detail, sizeof detail, "%s", msg);
  size_t n = strlen(detail);
  while (n > 0 && (detail[n - 1] == '\n' || detail[n - 1] == ' '))
    detail[--n] = '\0';
  for (size_t i = 0; i < n; i++) /* libpq's messages run over several indented lines */
    if (detail[i] == '\n' || detail[i] == '\t')
      detail[i] = ' ';
  if (c->closing) {
    hw_pg_conn_teardown(c);
    return;
  }
  hw_warn(c->component, NULL, "PostgreSQL connection %s: %s: %s; reconnecting in %u ms",
          was_up ? "lost" : "failed", why, n ? detail : "-", c->backoff_ms);
  hw_pg_conn_teardown(c);
  hw_pg_conn_schedule(c);
  c->ops->lost(c);
}

static void hw_pg_conn_on_notice(void *arg, const PGresult *res) {
  hw_pg_conn *c = arg;
  const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
  /* An error outside a query (FATAL before the server closes) reaches us as a notice too. */
  if (sev && (strcmp(sev, "WARNING") == 0 || strcmp(sev, "ERROR") == 0 ||
              strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0))
    hw_warn(c->component, NULL, "server %s: %s", sev, hw_pg_errmsg(res));
  else
    hw_debug(c->component, NULL, "server %s: %s", sev ? sev : "notice", hw_pg_errmsg(res));
}

static void hw_pg_conn_connected(hw_pg_conn *c) {
  uv_timer_stop(&c->timer);
  /* Sends then queue in libpq's buffer instead of blocking the loop. */
  if (PQsetnonblocking(c->pg, 1) != 0) {
    hw_pg_conn_drop(c, "cannot make the connection non-blocking");
    return;
  }
  int rc = hw_pg_conn_poll_replace(c, PQsocket(c->pg), UV_READABLE);
  if (rc) {
    hw_pg_conn_drop(c, uv_strerror(rc));
    return;
  }
  c->up = 1;
  c->sessions++;
  c->backoff_ms = HW_PG_BACKOFF_MIN_MS;
  hw_info(c->component, NULL, "connected to PostgreSQL %d (backend pid %d)",
          PQserverVersion(c->pg), PQbackendPID(c->pg));
  c->ops->ready(c);
}

static void hw_pg_conn_connect_step(hw_pg_conn *c) {
  int events;
  switch (PQconnectPoll(c->pg)) {
  case PGRES_POLLING_OK:
    hw_pg_conn_connected(c);
    return;
  case PGRES_POLLING_READING:
    events = UV_READABLE;
    break;
  case PGRES_POLLING_WRITING:
    events = UV_WRITABLE;
    break;
  default:
    hw_pg_conn_drop(c, "connect");
    return;
  }
  /* A new handle each step: libpq may have switched to another socket (next address, SSL or GSS
   * fallback) that got the old fd number, which libuv could not tell apart. */
  int rc = hw_pg_conn_poll_replace(c, PQsocket(c->pg), events);
  if (rc)
    hw_pg_conn_drop(c, uv_strerror(rc));
}

static void hw_pg_conn_connect_start(hw_pg_conn *c) {
  /* Defaults before dbname may be overridden by the conninfo, which expands in its place; the
   * client encoding after it is imposed: rows are encoded as UTF-8. JIT off: our statements are
   * short, except the KPIs' (GET /api/v1/kpi), whose large row estimates make PostgreSQL spend
   * seconds compiling what runs in one (README, "KPIs"). */
  const char *keys[] = {"application_name", "keepalives_idle", "keepalives_interval",
                        "keepalives_count", "options", "dbname", "client_encoding", NULL};
  const char *vals[] = {c->appname, "30", "10", "3", "-c jit=off", c->conninfo, "UTF8", NULL};
  c->pg = PQconnectStartParams(keys, vals, 1);
  if (!c->pg) {
    hw_error(c->component, NULL, "out of memory starting a PostgreSQL connection; retry in %u ms",
             c->backoff_ms);
    hw_pg_conn_schedule(c);
    c->ops->lost(c);
    return;
  }
  if (PQstatus(c->pg) == CONNECTION_BAD) {
    hw_pg_conn_drop(c, "connect");
    return;
  }
  PQsetNoticeReceiver(c->pg, hw_pg_conn_on_notice, c);
  uv_timer_start(&c->timer, hw_pg_conn_on_timer, HW_PG_CONNECT_TIMEOUT_MS, 0);
  /* libpq: behave as if PQconnectPoll had returned PGRES_POLLING_WRITING. */
  int rc = hw_pg_conn_poll_replace(c, PQsocket(c->pg), UV_WRITABLE);
  if (rc)
    hw_pg_conn_drop(c, uv_strerror(rc));
}

static void hw_pg_conn_on_timer(uv_timer_t *t) {
  hw_pg_conn *c = t->data;
  if (c->closing)
    return;
  if (c->failing)
    hw_pg_conn_drop(c, c->failing);
  else if (c->up)
    return;
  else if (c->pg)
    hw_pg_conn_drop(c, "connect timed out");
  else
    hw_pg_conn_connect_start(c);
}

static void hw_pg_conn_on_poll(uv_poll_t *h, int status, int events) {
  hw_pg_conn *c = h->data;
  if (c->failing)
    return;
  if (!c->up) {
    /* PQconnectPoll finds out itself what a poll error meant. */
    hw_pg_conn_connect_step(c);
    return;
  }
  if (status < 0) {
    /* libuv reports a socket error (EPOLLERR) as UV_EBADF and has stopped the handle already;
     * reading lets libpq pick up the server's last words for the log. */
    (void)PQconsumeInput(c->pg);
    hw_pg_conn_drop(c, "socket error");
    return;
  }
  if ((events & UV_READABLE) && !PQconsumeInput(c->pg)) {
    hw_pg_conn_drop(c, "read");
    return;
  }
  if (events & UV_WRITABLE) {
    int r = PQflush(c->pg);
    if (r < 0) {
      hw_pg_conn_drop(c, "write");
      return;
    }
    c->flushing = r;
  }
  if (PQstatus(c->pg) == CONNECTION_BAD) {
    hw_pg_conn_drop(c, "closed by the server");
    return;
  }
  int rc = hw_pg_conn_update_events(c);
  if (rc) {
    hw_pg_conn_drop(c, uv_strerror(rc));
    return;
  }
  c->ops->io(c);
}

int hw_pg_conn_init(hw_pg_conn *c, uv_loop_t *loop, const char *conninfo, const char *component,
                    const hw_pg_conn_ops *ops, void *data) {
  memset(c, 0, sizeof *c);
  c->conninfo = strdup(conninfo);
  if (!c->conninfo)
    return -ENOMEM;
  int rc = uv_timer_init(loop, &c->timer);
  if (rc) {
    free(c->conninfo);
    c->conninfo = NULL;
    return rc;
  }
  c->timer.data = c;
  c->handles = 1;
  c->loop = loop;
  c->ops = ops;
  c->data = data;
  c->backoff_ms = HW_PG_BACKOFF_MIN_MS;
  snprintf(c->component, sizeof c->component, "%s", component);
  snprintf(c->appname, sizeof c->appname, "haulwatch-%s", c->component);
  /* From the loop, so that no callback runs inside the caller's start function. */
  uv_timer_start(&c->timer, hw_pg_conn_on_timer, 0, 0);
  return 0;
}

int hw_pg_conn_flush(hw_pg_conn *c) {
  if (!c->up)
    return -EIO;
  int r = PQflush(c->pg);
  if (r < 0)
    return -EIO;
  c->flushing = r;
  if (hw_pg_conn_update_events(c))
    return -EIO;
  return r;
}

void hw_pg_conn_want_write(hw_pg_conn *c, int on) {
  if (c->want_write == on || !c->up)
    return;
  c->want_write = on;
  /* A failure here surfaces at the next flush. */
  (void)hw_pg_conn_update_events(c);
}

void hw_pg_conn_fail(hw_pg_conn *c, const char *why) {
  if (!c->up)
    return;
  c->up = 0;
  c->failing = why;
  /* Now, not from the timer: libpq may already have closed the socket, and by then its fd
   * number could belong to someone else, whom closing a stale poll handle would unregister. */
  if (c->poll) {
    uv_close((uv_handle_t *)c->poll, hw_pg_conn_on_poll_closed);
    c->poll = NULL;
    c->poll_events = 0;
  }
  uv_timer_start(&c->timer, hw_pg_conn_on_timer, 0, 0);
}

void hw_pg_conn_close(hw_pg_conn *c) {
  if (c->closing)
    return;
  c->closing = 1;
  hw_pg_conn_teardown(c);
  uv_close((uv_handle_t *)&c->timer, hw_pg_conn_on_timer_closed);
  free(c->conninfo);
  c->conninfo = NULL;
}
