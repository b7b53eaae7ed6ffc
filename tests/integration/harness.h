/* Integration-test harness: the private PostgreSQL that ./ops/test started (HW_TEST_PG, a conninfo
 * of a superuser), fresh databases, private Redis servers, and the daemon under test.
 * Every server a test starts listens on 127.0.0.1 on a port the test chose and is stopped by pid. */
#ifndef HW_TEST_HARNESS_H
#define HW_TEST_HARNESS_H

#include <libpq-fe.h>
#include <sys/types.h>

/* HW_TEST_PG, or the test fails at once (a missing server must not look like a pass). */
const char *hw_test_pg_admin(void);

/* Drops and creates database `name`, applies every migration; writes its conninfo to out. */
void hw_test_fresh_db(const char *name, char *out, size_t outlen);

/* Blocking connection; fails the test on error. */
PGconn *hw_test_pg_connect(const char *conninfo);
/* Runs sql, fails the test unless it succeeds; returns the first column of the first row as a
 * long (0 when no rows). */
long hw_test_pg_scalar(PGconn *c, const char *sql);

/* A free TCP port on 127.0.0.1 (bound then released). */
int hw_test_free_port(void);

/* Starts redis-server on 127.0.0.1:port without persistence; waits until it answers PING. */
pid_t hw_test_redis_start(int port);
/* SIGTERM, then SIGKILL after 5 s; waits for it. */
void hw_test_stop_pid(pid_t pid);

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
/* Stops the daemon (if any) and Redis, closes the connection. */
void hw_test_env_down(hw_test_env *e);

/* Starts `haulwatch` with argv (NULL-terminated, argv[0] is the subcommand), stderr to logfile;
 * returns its pid. */
pid_t hw_test_spawn(const char *const *argv, const char *logfile);
/* Waits up to timeout_ms until something accepts on 127.0.0.1:port; 0 when it does. */
int hw_test_wait_port(int port, int timeout_ms);
/* Waits for pid to exit; returns its exit status, or -1 on timeout (the process is then killed). */
int hw_test_wait_exit(pid_t pid, int timeout_ms);

#endif
