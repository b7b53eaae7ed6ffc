/* `haulwatch-probe`: an independent latency probe. One terminal on its own TCP connection (the
 * protobuf protocol) sends one report of one fix every --interval-ms and times each from the
 * moment its bytes were written to the moment the Ack covering it arrived, i.e. what a terminal
 * waits for its data to be durable. Deliberately not the simulator: a blocking client with one
 * report in flight, no event loop shared with thousands of other connections, so its figures are
 * the daemon's latency (plus the loopback round trip), not the load generator's queueing.
 * Prints one summary line (key=value) on stdout. */
#include <errno.h>
#include <getopt.h>
#include <libpq-fe.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "base/log.h"
#include "base/token.h"
#include "haulwatch.pb-c.h"
#include "load/load.h"
#include "protobuf/frame.h"

#define HW_PROBE "probe"
#define HW_PROBE_MAX_FRAME 65536
#define HW_PROBE_ACK_TIMEOUT_MS 10000
/* The login is not measured; thousands of other terminals may be logging in at the same time. */
#define HW_PROBE_LOGIN_TIMEOUT_MS 60000

typedef struct hw_probe {
  int fd;
  hw_frame_reader reader;
  int hello_done, hello_ok;
  uint64_t acked; /* highest seq acknowledged */
} hw_probe;

static uint64_t hw_probe_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int hw_probe_send(hw_probe *p, const ProtobufCMessage *m) {
  uint8_t buf[1024];
  size_t n = protobuf_c_message_get_packed_size(m);
  if (n + 10 > sizeof buf)
    return -EMSGSIZE;
  size_t k = hw_varint_put(buf, n);
  protobuf_c_message_pack(m, buf + k);
  for (size_t off = 0; off < n + k;) {
    ssize_t w = send(p->fd, buf + off, n + k - off, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -errno;
    off += (size_t)w;
  }
  return 0;
}

static int hw_probe_on_frame(void *arg, const uint8_t *frame, size_t len) {
  hw_probe *p = arg;
  Haulwatch__V1__ServerMessage *m = haulwatch__v1__server_message__unpack(NULL, len, frame);
  if (!m)
    return -EPROTO;
  int rc = 0;
  switch (m->msg_case) {
  case HAULWATCH__V1__SERVER_MESSAGE__MSG_HELLO_RESULT:
    p->hello_done = 1;
    p->hello_ok = m->hello_result->accepted;
    p->acked = m->hello_result->last_acked_seq;
    if (!p->hello_ok)
      hw_error(HW_PROBE, NULL, "login refused: %s", m->hello_result->reason);
    break;
  case HAULWATCH__V1__SERVER_MESSAGE__MSG_ACK:
    if (m->ack->n_refused) {
      hw_error(HW_PROBE, NULL, "the server refused a fix (seq %llu)",
               (unsigned long long)m->ack->refused[0]->seq);
      rc = -EINVAL;
    }
    if (m->ack->seq > p->acked)
      p->acked = m->ack->seq;
    break;
  case HAULWATCH__V1__SERVER_MESSAGE__MSG_ERROR:
    hw_error(HW_PROBE, NULL, "server error: %s", m->error->reason);
    rc = -ECONNABORTED;
    break;
  default:
    break;
  }
  haulwatch__v1__server_message__free_unpacked(m, NULL);
  return rc;
}

/* Reads until cond holds or the deadline passes: 0, -ETIMEDOUT, or an error. */
static int hw_probe_wait(hw_probe *p, int (*cond)(const hw_probe *, uint64_t), uint64_t arg,
                         uint64_t deadline_ns) {
  uint8_t buf[4096];
  while (!cond(p, arg)) {
    uint64_t now = hw_probe_now_ns();
    if (now >= deadline_ns)
      return -ETIMEDOUT;
    struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
    int ms = (int)((deadline_ns - now) / 1000000u) + 1;
    int r = poll(&pfd, 1, ms);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return -errno;
    if (r == 0)
      continue;
    ssize_t n = recv(p->fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return n == 0 ? -ECONNRESET : -errno;
    int rc = hw_frame_feed(&p->reader, buf, (size_t)n, hw_probe_on_frame, p);
    if (rc)
      return rc;
  }
  return 0;
}

static int hw_probe_hello_seen(const hw_probe *p, uint64_t unused) {
  (void)unused;
  return p->hello_done;
}

static int hw_probe_acked(const hw_probe *p, uint64_t seq) { return p->acked >= seq; }

static int hw_probe_connect(const char *server) {
  char host[256];
  const char *colon = strrchr(server, ':');
  if (!colon || (size_t)(colon - server) >= sizeof host)
    return -EINVAL;
  memcpy(host, server, (size_t)(colon - server));
  host[colon - server] = 0;
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
  if (getaddrinfo(host, colon + 1, &hints, &ai) != 0 || !ai)
    return -EINVAL;
  int fd = socket(ai->ai_family, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
    int e = -errno;
    if (fd >= 0)
      close(fd);
    freeaddrinfo(ai);
    return e;
  }
  freeaddrinfo(ai);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

/* A new token for the probe's terminal, its hash upserted (a rerun re-keys it). Blocking. */
static int hw_probe_provision(const char *conninfo, const char *id, char token[HW_TOKEN_LEN + 1]) {
  int rc = hw_token_new(token);
  if (rc < 0)
    return rc;
  uint8_t h[HW_TOKEN_HASH_LEN];
  char bytea[2 + 2 * HW_TOKEN_HASH_LEN + 1];
  hw_token_hash(token, strlen(token), h);
  hw_token_hash_bytea(h, bytea);
  PGconn *conn = PQconnectdb(conninfo);
  PGresult *res = NULL;
  rc = -EIO;
  if (PQstatus(conn) != CONNECTION_OK) {
    hw_error(HW_PROBE, id, "cannot connect to PostgreSQL: %s", PQerrorMessage(conn));
    goto out;
  }
  const char *params[2] = {id, bytea};
  res = PQexecParams(conn,
                     "INSERT INTO terminals (terminal_id, token_hash) VALUES ($1, $2::bytea) "
                     "ON CONFLICT (terminal_id) DO UPDATE SET token_hash = EXCLUDED.token_hash",
                     2, NULL, params, NULL, NULL, 0);
  if (PQresultStatus(res) != PGRES_COMMAND_OK) {
    hw_error(HW_PROBE, id, "provisioning failed: %s", PQresultErrorMessage(res));
    goto out;
  }
  rc = 0;
out:
  PQclear(res);
  PQfinish(conn);
  return rc;
}

static int hw_probe_cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Nearest rank. */
static double hw_probe_pct(const double *v, size_t n, double p) {
  if (!n)
    return 0;
  size_t k = (size_t)ceil(p / 100.0 * (double)n);
  return v[k ? k - 1 : 0];
}

static void hw_probe_usage(FILE *f) {
  fputs("usage: haulwatch-probe --server HOST:PORT (--pg CONNINFO | --token T) [options]\n"
        "One terminal sends one fix every --interval-ms on its own connection and times each\n"
        "report's ack. Prints: probe: sent=N acked=N p50_ms= p90_ms= p99_ms= max_ms=\n"
        "  --id ID             terminal id (default probe-1)\n"
        "  --pg CONNINFO       provision ID with a new token in this database\n"
        "  --token T           or: its token\n"
        "  --interval-ms MS    between reports (default 100); a report waits for the previous\n"
        "                      one's ack first\n"
        "  --duration S        seconds to run (default 10)\n"
        "  --warmup N          reports sent first and not counted (default 3)\n"
        "  --samples FILE      also write each counted report, in order: its send time (ms\n"
        "                      since the first report, wall clock ms) and its ack time (ms)\n",
        f);
}

int hw_cmd_probe(int argc, char **argv) {
  static const struct option opts[] = {
      {"server", required_argument, NULL, 's'}, {"pg", required_argument, NULL, 'p'},
      {"token", required_argument, NULL, 't'},  {"id", required_argument, NULL, 'i'},
      {"interval-ms", required_argument, NULL, 'n'}, {"duration", required_argument, NULL, 'd'},
      {"warmup", required_argument, NULL, 'w'}, {"samples", required_argument, NULL, 'S'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *server = NULL, *pg = NULL, *token_arg = NULL, *id = "probe-1", *samples = NULL;
  long interval = 100, warmup = 3;
  double duration = 10;
  int c;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 's': server = optarg; break;
    case 'p': pg = optarg; break;
    case 't': token_arg = optarg; break;
    case 'i': id = optarg; break;
    case 'n': interval = strtol(optarg, NULL, 10); break;
    case 'd': duration = strtod(optarg, NULL); break;
    case 'w': warmup = strtol(optarg, NULL, 10); break;
    case 'S': samples = optarg; break;
    case 'h': hw_probe_usage(stdout); return 0;
    default: hw_probe_usage(stderr); return 2;
    }
  }
  if (!server || (!pg == !token_arg) || interval < 1 || interval > 600000 || !(duration > 0) ||
      duration > 86400 || warmup < 0 || strlen(id) > 32) {
    hw_probe_usage(stderr);
    return 2;
  }
  char token[HW_TOKEN_LEN + 1];
  if (pg) {
    if (hw_probe_provision(pg, id, token) < 0)
      return 1;
  } else {
    snprintf(token, sizeof token, "%s", token_arg);
  }
  hw_probe p = {.fd = -1};
  hw_frame_reader_init(&p.reader, HW_PROBE_MAX_FRAME);
  size_t cap = (size_t)(duration * 1000.0 / (double)interval) + (size_t)warmup + 16;
  double *lat = malloc(cap * sizeof *lat);
  /* Each counted report's send time, ms since the first report, and wall clock, ms: a stall
   * shows as consecutive slow reports, to be matched against other logs by time. */
  double *at = malloc(cap * sizeof *at);
  int64_t *wall = malloc(cap * sizeof *wall);
  int rc = 1;
  uint64_t sent = 0, counted = 0;
  if (!lat || !at || !wall)
    goto out;
  if ((p.fd = hw_probe_connect(server)) < 0) {
    hw_error(HW_PROBE, id, "cannot connect to %s: %s", server, strerror(-p.fd));
    goto out;
  }
  Haulwatch__V1__Hello hello = HAULWATCH__V1__HELLO__INIT;
  hello.terminal_id = (char *)id;
  hello.token = token;
  hello.client_version = "haulwatch-probe/" HW_VERSION;
  Haulwatch__V1__ClientMessage hm = HAULWATCH__V1__CLIENT_MESSAGE__INIT;
  hm.msg_case = HAULWATCH__V1__CLIENT_MESSAGE__MSG_HELLO;
  hm.hello = &hello;
  int r;
  if ((r = hw_probe_send(&p, &hm.base)) ||
      (r = hw_probe_wait(&p, hw_probe_hello_seen, 0,
                         hw_probe_now_ns() + HW_PROBE_LOGIN_TIMEOUT_MS * 1000000ull))) {
    hw_error(HW_PROBE, id, "login: %s", strerror(-r));
    goto out;
  }
  if (!p.hello_ok)
    goto out;
  /* The seq continues what the server already has (a rerun under the same id). */
  uint64_t seq = p.acked;
  int64_t last_ts = 0;
  uint64_t t0 = hw_probe_now_ns();
  uint64_t end = t0 + (uint64_t)(duration * 1e9) + (uint64_t)warmup * (uint64_t)interval * 1000000u;
  uint64_t next = t0;
  while (next < end) {
    uint64_t now = hw_probe_now_ns();
    if (now < next) {
      struct timespec ts = {.tv_sec = (time_t)((next - now) / 1000000000u),
                            .tv_nsec = (long)((next - now) % 1000000000u)};
      nanosleep(&ts, NULL);
    }
    next += (uint64_t)interval * 1000000u;
    /* Device time: now, kept strictly increasing (the key is terminal and device time). */
    int64_t ts_ms = hw_now_ms();
    if (ts_ms <= last_ts)
      ts_ms = last_ts + 1;
    last_ts = ts_ms;
    Haulwatch__V1__Fix fix = HAULWATCH__V1__FIX__INIT;
    Haulwatch__V1__Fix *fp = &fix;
    fix.seq = ++seq;
    fix.time_ms = (uint64_t)ts_ms;
    fix.lat_e6 = 31230000 + (int32_t)(seq % 1000) * 10; /* Shanghai, creeping north */
    fix.lon_e6 = 121470000;
    fix.speed_dkmh = 300;
    fix.heading = 0;
    fix.status = 0x3; /* ACC on, positioned */
    Haulwatch__V1__Report rep = HAULWATCH__V1__REPORT__INIT;
    rep.n_fixes = 1;
    rep.fixes = &fp;
    Haulwatch__V1__ClientMessage m = HAULWATCH__V1__CLIENT_MESSAGE__INIT;
    m.msg_case = HAULWATCH__V1__CLIENT_MESSAGE__MSG_REPORT;
    m.report = &rep;
    uint64_t s0 = hw_probe_now_ns();
    if ((r = hw_probe_send(&p, &m.base)) ||
        (r = hw_probe_wait(&p, hw_probe_acked, seq, s0 + HW_PROBE_ACK_TIMEOUT_MS * 1000000ull))) {
      hw_error(HW_PROBE, id, "report %llu: %s", (unsigned long long)seq, strerror(-r));
      goto out;
    }
    uint64_t s1 = hw_probe_now_ns();
    if (++sent > (uint64_t)warmup && counted < cap) {
      at[counted] = (double)(s0 - t0) / 1e6;
      wall[counted] = ts_ms;
      lat[counted++] = (double)(s1 - s0) / 1e6;
    }
    if (s1 > next)
      next = s1; /* the ack took longer than the interval: the next report goes at once */
  }
  if (samples) {
    FILE *f = fopen(samples, "w");
    if (!f) {
      hw_error(HW_PROBE, id, "cannot write %s: %s", samples, strerror(errno));
      goto out;
    }
    for (size_t i = 0; i < counted; i++)
      fprintf(f, "%.3f %lld %.3f\n", at[i], (long long)wall[i], lat[i]);
    if (fclose(f) != 0) {
      hw_error(HW_PROBE, id, "cannot write %s: %s", samples, strerror(errno));
      goto out;
    }
  }
  qsort(lat, counted, sizeof *lat, hw_probe_cmp);
  printf("probe: sent=%llu acked=%llu interval_ms=%ld p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f "
         "max_ms=%.2f\n",
         (unsigned long long)sent, (unsigned long long)counted, interval,
         hw_probe_pct(lat, counted, 50), hw_probe_pct(lat, counted, 90),
         hw_probe_pct(lat, counted, 99), counted ? lat[counted - 1] : 0.0);
  rc = counted ? 0 : 1;
out:
  if (p.fd >= 0)
    close(p.fd);
  hw_frame_reader_free(&p.reader);
  free(lat);
  free(at);
  free(wall);
  return rc;
}
