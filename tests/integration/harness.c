#include "harness.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/common.h"
#include "base/fix.h"
#include "sinks/migrate.h"
#include "sinks/redis_keys.h"

#include <hiredis/hiredis.h>

static void hw_test_die(const char *what) {
  fprintf(stderr, "harness: %s\n", what);
  exit(1);
}

const char *hw_test_pg_admin(void) {
  const char *pg = getenv("HW_TEST_PG");
  if (!pg || !*pg)
    hw_test_die("HW_TEST_PG is not set: run the suite through ./ops/test");
  return pg;
}

PGconn *hw_test_pg_connect(const char *conninfo) {
  PGconn *c = PQconnectdb(conninfo);
  if (PQstatus(c) != CONNECTION_OK) {
    fprintf(stderr, "harness: connect %s: %s", conninfo, PQerrorMessage(c));
    exit(1);
  }
  PQclear(PQexec(c, "SET client_min_messages = warning"));
  return c;
}

long hw_test_pg_scalarf(PGconn *c, const char *fmt, ...) {
  char sql[2048];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(sql, sizeof sql, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof sql)
    fail_msg("query too long for hw_test_pg_scalarf: %.200s", sql);
  return hw_test_pg_scalar(c, sql);
}

void hw_test_pg_wait(PGconn *c, const char *what, const char *sql, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms; waited += 50) {
    if (hw_test_pg_scalar(c, sql) > 0)
      return;
    usleep(50 * 1000);
  }
  fail_msg("waited %d s for %s", timeout_ms / 1000, what);
}

long hw_test_pg_scalar(PGconn *c, const char *sql) {
  PGresult *r = PQexec(c, sql);
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
    fprintf(stderr, "harness: %s: %s", sql, PQresultErrorMessage(r));
    exit(1);
  }
  long v = (st == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
               ? atol(PQgetvalue(r, 0, 0)) : 0;
  PQclear(r);
  return v;
}

void hw_test_fresh_db(const char *name, char *out, size_t outlen) {
  PGconn *admin = hw_test_pg_connect(hw_test_pg_admin());
  char sql[256];
  snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
  hw_test_pg_scalar(admin, sql);
  snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
  hw_test_pg_scalar(admin, sql);
  PQfinish(admin);
  snprintf(out, outlen, "%s dbname=%s", hw_test_pg_admin(), name);
  PGconn *c = hw_test_pg_connect(out);
  if (hw_migrate_apply(c) != 0)
    hw_test_die("migrations failed");
  PQfinish(c);
}

/* A port below the kernel's ephemeral range (ip_local_port_range): a port bind(0) picks is one
 * the kernel also hands to outgoing connections, and a test running beside this one (a simulator
 * opens thousands) could take it between the choice and the server's bind. Random, checked free,
 * and never the same twice in one test process (as ops/lib.sh hw_free_port). */
int hw_test_free_port(void) {
  static unsigned seed;
  static int chosen[256]; /* the last ports handed out, a ring */
  static size_t handed;     /* ports handed out so far */
  const size_t ring = sizeof chosen / sizeof chosen[0];
  int lo = 20000, hi = 32767, elo, ehi;
  FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
  if (f) {
    if (fscanf(f, "%d %d", &elo, &ehi) == 2) {
      if (elo - 1 >= lo + 1000)
        hi = elo - 1;
      else {
        lo = ehi + 1;
        hi = 65000;
      }
    }
    fclose(f);
  }
  if (!seed)
    seed = (unsigned)getpid() * 2654435761u ^ (unsigned)time(NULL);
  for (int i = 0; i < 1000; i++) {
    int port = lo + (int)((unsigned)rand_r(&seed) % (unsigned)(hi - lo + 1)), dup = 0;
    for (size_t k = 0; k < (handed < ring ? handed : ring) && !dup; k++)
      dup = chosen[k] == port;
    if (dup)
      continue;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
      close(fd);
    if (ok) {
      chosen[handed++ % ring] = port;
      return port;
    }
  }
  hw_test_die("cannot find a free port");
  return -1;
}

int hw_test_wait_port(int port, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms; waited += 50) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    if (ok)
      return 0;
    usleep(50 * 1000);
  }
  return -1;
}

/* Every child hw_test_exec started and the harness has not reaped. A failed assertion leaves its
 * cmocka test function at once, past the stop calls at its end, so a server started inside a test
 * would outlive the suite; at exit these are stopped. A pid the test reaped itself is no longer our
 * child and waitpid says so, so a pid reused by another process is never signalled. */
static pid_t hw_test_children[256];
static size_t hw_test_nchildren;

static void hw_test_stop_children(void) {
  for (size_t i = hw_test_nchildren; i-- > 0;) { /* hw_test_stop_pid untracks: walk down */
    pid_t pid = hw_test_children[i];
    if (waitpid(pid, NULL, WNOHANG) != 0)
      continue; /* exited just now (reaped here) or not our child any more */
    fprintf(stderr, "harness: pid %d still running at exit (a test failed before stopping it): "
                    "stopping it\n", (int)pid);
    (void)hw_test_stop_pid(pid);
  }
}

static void hw_test_track_child(pid_t pid) {
  if (hw_test_nchildren == 0 && atexit(hw_test_stop_children) != 0)
    hw_test_die("atexit failed");
  if (hw_test_nchildren == sizeof hw_test_children / sizeof hw_test_children[0])
    hw_test_die("more than 256 children not reaped by the harness");
  hw_test_children[hw_test_nchildren++] = pid;
}

static void hw_test_untrack_child(pid_t pid) {
  for (size_t i = 0; i < hw_test_nchildren; i++)
    if (hw_test_children[i] == pid) {
      hw_test_children[i] = hw_test_children[--hw_test_nchildren];
      return;
    }
}

pid_t hw_test_exec(const char *path, const char *const *argv, const char *logfile) {
  pid_t pid = fork();
  if (pid < 0)
    hw_test_die("fork failed");
  if (pid == 0) {
    if (logfile) {
      int fd = open(logfile, O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        dup2(fd, 2);
        dup2(fd, 1);
        close(fd);
      }
    }
    execv(path, (char *const *)argv);
    _exit(127);
  }
  hw_test_track_child(pid);
  return pid;
}

pid_t hw_test_redis_start(int port) {
  char p[16];
  snprintf(p, sizeof p, "%d", port);
  const char *argv[] = {"redis-server", "--port", p, "--bind", "127.0.0.1", "--save", "",
                        "--appendonly", "no", "--daemonize", "no", NULL};
  pid_t pid = hw_test_exec("/usr/bin/redis-server", argv, "/dev/null");
  if (hw_test_wait_port(port, 10000))
    hw_test_die("redis-server did not start");
  return pid;
}

static char *hw_test_key_buf(void) {
  static char bufs[8][HW_REDIS_VEH_KEY_HEAD + HW_TID_WIDE_MAX + 1];
  static unsigned next;
  return bufs[next++ % 8];
}

const char *hw_test_veh_key(const char *id) {
  char *out = hw_test_key_buf();
  (void)hw_redis_key_veh(out, id, strnlen(id, HW_TID_WIDE_MAX));
  return out;
}

const char *hw_test_geo_key(const char *id) {
  char *out = hw_test_key_buf();
  (void)hw_redis_key_geo(out, hw_redis_bucket(id, strnlen(id, HW_TID_WIDE_MAX)));
  return out;
}

long hw_test_redis_geo_count(int port) {
  redisContext *c = redisConnectWithTimeout("127.0.0.1", port, (struct timeval){5, 0});
  long total = c && !c->err ? 0 : -1;
  for (unsigned b = 0; total >= 0 && b < HW_REDIS_BUCKETS; b++) {
    char key[HW_REDIS_GEO_KEY_LEN + 1];
    (void)hw_redis_key_geo(key, b);
    redisReply *r = redisCommand(c, "ZCARD %s", key);
    total = r && r->type == REDIS_REPLY_INTEGER ? total + (long)r->integer : -1;
    if (r)
      freeReplyObject(r);
  }
  if (c)
    redisFree(c);
  return total;
}

static pid_t hw_test_spawn_bin(const char *bin, const char *const *argv, const char *logfile) {
  const char *full[64] = {bin};
  size_t i = 0;
  for (; argv[i] && i < 62; i++)
    full[i + 1] = argv[i];
  full[i + 1] = NULL;
  return hw_test_exec(bin, full, logfile);
}

pid_t hw_test_spawn(const char *const *argv, const char *logfile) {
  return hw_test_spawn_bin(HW_BINARY, argv, logfile);
}

pid_t hw_test_spawn_sim(const char *const *argv, const char *logfile) {
  return hw_test_spawn_bin(HW_SIM_BINARY, argv, logfile);
}

pid_t hw_test_spawn_probe(const char *const *argv, const char *logfile) {
  return hw_test_spawn_bin(HW_PROBE_BINARY, argv, logfile);
}

int hw_test_wait_exit(pid_t pid, int timeout_ms) {
  for (int waited = 0; waited <= timeout_ms; waited += 20) {
    int st;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r < 0)
      return -1; /* not our child (reaped already): never signal a pid that may be reused */
    if (r == pid) {
      hw_test_untrack_child(pid);
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    usleep(20 * 1000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  hw_test_untrack_child(pid);
  return -1;
}

int hw_test_stop_pid(pid_t pid) {
  if (pid <= 0)
    return 0;
  kill(pid, SIGTERM);
  int st = hw_test_wait_exit(pid, 5000);
  if (st == -1)
    fprintf(stderr, "harness: pid %d killed after 5 s\n", (int)pid);
  return st;
}

void hw_test_env_up(hw_test_env *e, const char *dbname) {
  memset(e, 0, sizeof *e);
  hw_test_fresh_db(dbname, e->conninfo, sizeof e->conninfo);
  e->db = hw_test_pg_connect(e->conninfo);
  e->redis_port = hw_test_free_port();
  e->redis_pid = hw_test_redis_start(e->redis_port);
  snprintf(e->redis_addr, sizeof e->redis_addr, "127.0.0.1:%d", e->redis_port);
  e->port = hw_test_free_port();
  snprintf(e->listen_addr, sizeof e->listen_addr, "127.0.0.1:%d", e->port);
}

void hw_test_env_down(hw_test_env *e) {
  int daemon = hw_test_stop_pid(e->daemon_pid);
  hw_test_stop_pid(e->redis_pid);
  PQfinish(e->db);
  e->daemon_pid = e->redis_pid = 0;
  e->db = NULL;
  /* Checked last, so a failure still stops everything. A daemon stopped with SIGTERM exits 0;
   * built with ASan/UBSan (./ops/test), a leak or any other report at exit makes it non-zero. */
  assert_int_equal(daemon, 0);
}

static void hw_test_loop_on_tick(uv_timer_t *t) {
  hw_test_loop *l = t->data;
  l->ticks++;
  if (l->on_tick)
    l->on_tick(l);
}

void hw_test_loop_init(hw_test_loop *l) {
  memset(l, 0, sizeof *l);
  l->poll_ms = 10;
  assert_int_equal(uv_loop_init(&l->loop), 0);
  assert_int_equal(uv_timer_init(&l->loop, &l->tick), 0);
  l->tick.data = l;
  assert_int_equal(uv_timer_start(&l->tick, hw_test_loop_on_tick, 5, 5), 0);
}

int hw_test_loop_run_until(hw_test_loop *l, int (*pred)(void *), void *arg) {
  int64_t deadline = hw_now_ms() + HW_TEST_WAIT_MS, next = 0;
  for (;;) {
    int64_t now = hw_now_ms();
    if (now >= next) {
      if (pred(arg))
        return 1;
      if (now >= deadline)
        return 0;
      next = now + l->poll_ms;
    }
    uv_run(&l->loop, UV_RUN_ONCE);
  }
}

void hw_test_loop_run_for(hw_test_loop *l, int ms) {
  int64_t until = hw_now_ms() + ms;
  while (hw_now_ms() < until)
    uv_run(&l->loop, UV_RUN_ONCE);
}

void hw_test_loop_close(hw_test_loop *l) {
  uv_close((uv_handle_t *)&l->tick, NULL);
  assert_int_equal(uv_run(&l->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&l->loop), 0);
}

void hw_test_on_done(void *arg) { (*(int *)arg)++; }
int hw_test_int_set(void *arg) { return *(int *)arg != 0; }

void hw_test_add_terminal(PGconn *db, const char *id, char token[HW_TOKEN_LEN + 1]) {
  uint8_t h[HW_TOKEN_HASH_LEN];
  char bytea[2 + 2 * HW_TOKEN_HASH_LEN + 1];
  if (hw_token_new(token))
    hw_test_die("no random token");
  hw_token_hash(token, strlen(token), h);
  hw_token_hash_bytea(h, bytea);
  const char *params[2] = {id, bytea};
  PGresult *r = PQexecParams(db, "INSERT INTO terminals (terminal_id, token_hash) VALUES ($1, $2)",
                             2, NULL, params, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_COMMAND_OK)
    hw_test_die(PQresultErrorMessage(r));
  PQclear(r);
}

pbc *hw_test_pb_login(int port, const char *id, const char *token) {
  pbc *c = pbc_connect(port);
  if (!c || pbc_hello(c, id, token))
    hw_test_die("cannot connect or say Hello");
  Haulwatch__V1__ServerMessage *m = pbc_recv(c, 10000);
  int ok = m && m->msg_case == HAULWATCH__V1__SERVER_MESSAGE__MSG_HELLO_RESULT &&
           m->hello_result->accepted;
  if (m)
    haulwatch__v1__server_message__free_unpacked(m, NULL);
  if (!ok)
    hw_test_die("Hello not accepted");
  return c;
}

void hw_test_pg_text(PGconn *c, char *out, size_t cap, const char *fmt, ...) {
  char sql[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sql, sizeof sql, fmt, ap);
  va_end(ap);
  PGresult *r = PQexec(c, sql);
  if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
    hw_test_die(sql);
  snprintf(out, cap, "%s", PQgetisnull(r, 0, 0) ? "<null>" : PQgetvalue(r, 0, 0));
  PQclear(r);
}
