/* Integration-test harness: the private PostgreSQL that ./ops/test started (HW_TEST_PG, a conninfo
 * of a superuser), fresh databases, private Redis servers, the daemon under test, and a loop for
 * tests that run daemon modules in process.
 * Every server a test starts listens on 127.0.0.1 on a port the test chose and is stopped by pid. */
#ifndef HW_TEST_HARNESS_H
#define HW_TEST_HARNESS_H

#include <libpq-fe.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "base/common.h"
#include "base/token.h"
#include "pbclient.h"

/* HW_TEST_PG, or the test fails at once (a missing server must not look like a pass). */
const char *hw_test_pg_admin(void);

/* Drops and creates database `name`, applies every migration; writes its conninfo to out. */
void hw_test_fresh_db(const char *name, char *out, size_t outlen);

/* Blocking connection; fails the test on error. */
PGconn *hw_test_pg_connect(const char *conninfo);
/* Runs sql, fails the test unless it succeeds; returns the first column of the first row as a
 * long (0 when no rows). */
long hw_test_pg_scalar(PGconn *c, const char *sql);
/* The same for a printf-style query (at most 2 KiB once formatted). */
long hw_test_pg_scalarf(PGconn *c, const char *fmt, ...) HW_PRINTF(2, 3);
/* Polls sql (a count) every 50 ms until it is at least 1; fails the test, naming what, after
 * timeout_ms (a bound against hanging, not a performance assertion). */
void hw_test_pg_wait(PGconn *c, const char *what, const char *sql, int timeout_ms);
/* The one text value of a one-row query (printf-style; "<null>" for NULL) into out[cap]. */
void hw_test_pg_text(PGconn *c, char *out, size_t cap, const char *fmt, ...) HW_PRINTF(4, 5);

/* A free TCP port on 127.0.0.1 (bound then released). */
int hw_test_free_port(void);

/* Starts redis-server on 127.0.0.1:port without persistence; waits until it answers PING. */
pid_t hw_test_redis_start(int port);

/* The latest-state hash key of terminal id (sinks/redis_keys.h), in one of 8 static buffers used
 * in turn: valid until the 8th call after. */
const char *hw_test_veh_key(const char *id);
/* The geo set key of id's bucket, same buffers. */
const char *hw_test_geo_key(const char *id);
/* Members of every bucket's geo set together (ZCARD of each), or -1 when Redis does not answer. */
long hw_test_redis_geo_count(int port);
/* SIGTERM, then SIGKILL after 5 s; returns the exit status as hw_test_wait_exit (0 for pid 0). */
int hw_test_stop_pid(pid_t pid);

/* What most daemon tests share: a fresh database and a connection to it, a private Redis, and a
 * free port (with its "127.0.0.1:port" form) for the daemon, which each test starts itself with
 * its own flags and records in daemon_pid so that hw_test_env_down stops it. */
typedef struct hw_test_env {
  char conninfo[512];
  PGconn *db; /* owned; closed by hw_test_env_down */
  int redis_port;
  pid_t redis_pid;
  char redis_addr[64];
  int port; /* for the daemon's --listen */
  char listen_addr[64];
  pid_t daemon_pid; /* 0 until the test starts one */
} hw_test_env;

/* Fresh database `dbname`, connection, Redis and a free daemon port; fails the test on error. */
void hw_test_env_up(hw_test_env *e, const char *dbname);
/* Stops the daemon (if any) and Redis, closes the connection; fails the test if the daemon did
 * not exit 0 on SIGTERM (under the sanitizers: a report at exit, e.g. a leak). */
void hw_test_env_down(hw_test_env *e);

/* Starts `haulwatch` with argv (NULL-terminated, argv[0] is the subcommand), stderr to logfile;
 * returns its pid. */
pid_t hw_test_spawn(const char *const *argv, const char *logfile);
/* Provisions protobuf terminal id in db with a new token, written to token. */
void hw_test_add_terminal(PGconn *db, const char *id, char token[HW_TOKEN_LEN + 1]);
/* Connects to 127.0.0.1:port and says Hello as id; fails the test unless accepted. */
pbc *hw_test_pb_login(int port, const char *id, const char *token);
/* Starts any program (path, argv with argv[0]) with stdout and stderr to logfile (NULL: kept). */
pid_t hw_test_exec(const char *path, const char *const *argv, const char *logfile);
/* The same for the load tool haulwatch-sim (argv starts with its first option). */
pid_t hw_test_spawn_sim(const char *const *argv, const char *logfile);
/* haulwatch-probe (the latency bench's client) with argv, likewise. */
pid_t hw_test_spawn_probe(const char *const *argv, const char *logfile);
/* Waits up to timeout_ms until something accepts on 127.0.0.1:port; 0 when it does. */
int hw_test_wait_port(int port, int timeout_ms);
/* Waits for pid to exit; returns its exit status, or -1 on timeout (the process is then killed). */
int hw_test_wait_exit(pid_t pid, int timeout_ms);

/* A bound against hanging in tests that drive a loop, not a performance assertion. */
#define HW_TEST_WAIT_MS 20000

/* A loop the test drives itself, for tests that run daemon modules in process. */
typedef struct hw_test_loop {
  uv_loop_t loop;
  /* Every 5 ms: keeps UV_RUN_ONCE returning while the modules wait, and proves the loop turns. */
  uv_timer_t tick;
  uint64_t ticks;
  void (*on_tick)(struct hw_test_loop *l); /* optional: called on every tick */
  void *user;                              /* not owned; for on_tick */
  int poll_ms; /* hw_test_loop_run_until asks its predicate this often at most; 10 after init */
} hw_test_loop;

/* Asserts (cmocka) on failure, like the rest of these helpers. */
void hw_test_loop_init(hw_test_loop *l);
/* Runs the loop until pred(arg) holds or HW_TEST_WAIT_MS pass; returns whether it held. */
int hw_test_loop_run_until(hw_test_loop *l, int (*pred)(void *), void *arg);
void hw_test_loop_run_for(hw_test_loop *l, int ms);
/* Every test ends here: a handle left open by a module makes uv_loop_close fail. */
void hw_test_loop_close(hw_test_loop *l);
/* A done callback that counts into *(int *)arg, and the predicate that waits for it. */
void hw_test_on_done(void *arg);
int hw_test_int_set(void *arg);

#endif
