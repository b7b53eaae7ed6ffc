/* Redis's own CPU per latest-state write: the daemon's path (sinks/redis_state.c: one script call
 * per bucket of up to 64 vehicles, hash-tagged keys) against the path it replaced (one EVALSHA of
 * a per-vehicle script, keys hw:veh:<id> and hw:geo; the script below is that one, verbatim), on
 * one private redis-server, alternated round by round in the same run.
 *
 * Each round gives every vehicle a fix newer than the last (so every write really writes, as at
 * the real load: a truck's fix every 30 s is always newer than its state) and measures, over the
 * round, Redis's CPU (utime + stime of /proc/<redis pid>/stat, all its threads) and INFO
 * commandstats (calls, usec of EVALSHA). The reference is sent by a blocking hiredis pipeline
 * of 1,024 commands, the daemon's path runs hw_redis_state itself on a libuv loop (max_in_flight
 * 1,024, no pacing, publishing off); Redis sees pipelined commands either way.
 *
 *   ./build/tests/bench_redis_state [vehicles=10000] [rounds=20]
 *
 * Prints per round both costs in microseconds of Redis CPU per vehicle, and the medians and
 * their ratio. The machine is shared: compare the ratio, not the absolute figures. Starts and
 * stops its own redis-server on a free loopback port; exits non-zero if a write fails. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "registry/registry.h"
#include "sinks/redis_state.h"

/* The script redis_state.c ran per vehicle before the bucketed calls. */
static const char old_script[] =
    "local cur = tonumber(redis.call('HGET', KEYS[1], 'ts_ms'))\n"
    "if cur and cur > tonumber(ARGV[2]) then return 0 end\n"
    "if cur and cur == tonumber(ARGV[2]) then\n"
    "  local a = bit.bor(tonumber(redis.call('HGET', KEYS[1], 'alarm')) or 0, tonumber(ARGV[9]))\n"
    "  if a < 0 then a = a + 4294967296 end\n"
    "  redis.call('HSET', KEYS[1], 'alarm', string.format('%.0f', a))\n"
    "  return 1\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'lat', ARGV[3], 'lon', ARGV[4], 'speed_kmh', ARGV[5],\n"
    "  'heading', ARGV[6], 'alt_m', ARGV[7], 'ts_ms', ARGV[2], 'recv_ms', ARGV[8],\n"
    "  'alarm', ARGV[9], 'status', ARGV[10], 'odometer_km', ARGV[11], 'driver_id', ARGV[12])\n"
    "local lat, lon = tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "if lat >= -85.05112878 and lat <= 85.05112878 and lon >= -180 and lon <= 180 then\n"
    "  redis.call('GEOADD', KEYS[2], ARGV[4], ARGV[3], ARGV[1])\n"
    "else\n"
    "  redis.call('ZREM', KEYS[2], ARGV[1])\n"
    "end\n"
    "return 1\n";

static void die(const char *what) {
  fprintf(stderr, "bench_redis_state: %s\n", what);
  exit(1);
}

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) ||
      getsockname(fd, (struct sockaddr *)&a, &len))
    die("no free port");
  close(fd);
  return ntohs(a.sin_port);
}

static pid_t redis_pid;

static double redis_cpu_s(void) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)redis_pid);
  FILE *f = fopen(path, "r");
  if (!f || !fgets(buf, sizeof buf, f))
    die("cannot read redis-server's /proc stat");
  fclose(f);
  const char *p = strrchr(buf, ')');
  unsigned long long ut = 0, st = 0;
  /* after ") ": state(3) ... utime is field 14, stime 15 */
  if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
    die("cannot parse /proc stat");
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* EVALSHA calls and usec from INFO commandstats. */
static void evalsha_stats(redisContext *c, long long *calls, long long *usec) {
  redisReply *r = redisCommand(c, "INFO commandstats");
  if (!r || r->type != REDIS_REPLY_STRING)
    die("INFO commandstats failed");
  const char *p = strstr(r->str, "cmdstat_evalsha:");
  *calls = *usec = 0;
  if (p && sscanf(p, "cmdstat_evalsha:calls=%lld,usec=%lld", calls, usec) != 2)
    die("cannot parse cmdstat_evalsha");
  freeReplyObject(r);
}

static hw_fix fix_of(long v, long round) {
  hw_fix f;
  memset(&f, 0, sizeof f);
  f.ts_ms = 1765000000000 + round * 30000;
  f.recv_ms = f.ts_ms + 700;
  f.lat_e6 = 30000000 + (int32_t)((v * 7919 + round * 13) % 3000000);
  f.lon_e6 = 117000000 + (int32_t)((v * 104729 + round * 17) % 4000000);
  f.speed_dkmh = (uint32_t)(v % 900);
  f.heading = (uint16_t)(v % 360);
  f.alt_m = 12;
  f.status = 3;
  f.odometer_hm = 1234567;
  return f;
}

/* The reference: one EVALSHA per vehicle, pipelined 1,024 deep. */
static void run_old(redisContext *c, const char *sha, hw_terminal **t, long n, long round) {
  long sent = 0, got = 0;
  while (got < n) {
    while (sent < n && sent - got < 1024) {
      hw_fix f = fix_of(sent, round);
      redisAppendCommand(c,
                         "EVALSHA %s 2 hw:veh:%s hw:geo %s %lld %.6f %.6f %.1f %u %d %lld %u %u "
                         "%.1f %s",
                         sha, t[sent]->id, t[sent]->id, (long long)f.ts_ms, f.lat_e6 / 1e6,
                         f.lon_e6 / 1e6, f.speed_dkmh / 10.0, f.heading, f.alt_m,
                         (long long)f.recv_ms, f.alarm, f.status, f.odometer_hm / 10.0, "");
      sent++;
    }
    redisReply *r;
    if (redisGetReply(c, (void **)&r) != REDIS_OK || !r || r->type != REDIS_REPLY_INTEGER ||
        r->integer != 1)
      die("reference write failed");
    freeReplyObject(r);
    got++;
  }
}

typedef struct until_writes {
  hw_redis_state *r;
  uint64_t n;
  int done;
} until_writes;

static void on_check(uv_timer_t *tm) {
  until_writes *u = tm->data;
  hw_redis_state_stats st;
  hw_redis_state_get_stats(u->r, &st);
  if (st.writes >= u->n && st.dirty == 0) {
    u->done = 1;
    uv_timer_stop(tm);
  }
}

static double median(double *v, int n) {
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
      double x = v[j];
      v[j] = v[j - 1];
      v[j - 1] = x;
    }
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void on_stopped(void *arg) { *(int *)arg = 1; }

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 10000;
  int rounds = argc > 2 ? atoi(argv[2]) : 20;
  if (n <= 0 || rounds <= 0 || rounds > 1000)
    die("usage: bench_redis_state [vehicles] [rounds]");

  int port = free_port();
  char ports[16];
  snprintf(ports, sizeof ports, "%d", port);
  redis_pid = fork();
  if (redis_pid < 0)
    die("fork");
  if (redis_pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0)
      dup2(null, 1);
    execl("/usr/bin/redis-server", "redis-server", "--port", ports, "--bind", "127.0.0.1",
          "--save", "", "--appendonly", "no", (char *)NULL);
    _exit(127);
  }
  redisContext *c = NULL;
  for (int i = 0; i < 100 && (!c || c->err); i++) {
    if (c)
      redisFree(c);
    usleep(50000);
    c = redisConnect("127.0.0.1", port);
  }
  if (!c || c->err)
    die("redis-server did not start");
  redisReply *r = redisCommand(c, "SCRIPT LOAD %s", old_script);
  if (!r || r->type != REDIS_REPLY_STRING)
    die("SCRIPT LOAD failed");
  char sha[41];
  snprintf(sha, sizeof sha, "%s", r->str);
  freeReplyObject(r);

  static hw_registry reg;
  hw_terminal **t = calloc((size_t)n, sizeof *t);
  if (!t)
    die("out of memory");
  for (long i = 0; i < n; i++) {
    char id[32];
    snprintf(id, sizeof id, "0138%08ld", i);
    if (hw_registry_get(&reg, id, &t[i]))
      die("registry");
  }

  uv_loop_t loop;
  uv_loop_init(&loop);
  hw_redis_state_config cfg = {.host = "127.0.0.1", .port = port, .max_in_flight = 1024,
                               .timeout_ms = 5000};
  hw_redis_state *rs;
  if (hw_redis_state_start(&rs, &loop, &cfg, &reg))
    die("hw_redis_state_start");
  uv_timer_t check;
  uv_timer_init(&loop, &check);

  double *old_us = calloc((size_t)rounds, sizeof(double));
  double *new_us = calloc((size_t)rounds, sizeof(double));
  printf("bench_redis_state: %ld vehicles, %d rounds, redis-server pid %d on 127.0.0.1:%d\n", n,
         rounds, (int)redis_pid, port);
  printf("Redis CPU per vehicle update (/proc), and Redis's time inside the commands per vehicle "
         "(INFO commandstats usec of EVALSHA)\n");
  uint64_t written = 0;
  double cpu_total[2] = {0, 0}, line_usec[2] = {0, 0};
  long long usec_total[2] = {0, 0}, calls_total[2] = {0, 0}, line_calls[2] = {0, 0};
  for (int k = 0; k < rounds; k++) {
    long long c0, u0, c1, u1;
    /* Alternate which path goes first, so a drift in the machine's load hits both alike. */
    for (int pass = 0; pass < 2; pass++) {
      int old = (pass == 0) == (k % 2 == 0);
      evalsha_stats(c, &c0, &u0);
      double cpu0 = redis_cpu_s();
      if (old) {
        run_old(c, sha, t, n, k);
      } else {
        for (long i = 0; i < n; i++) {
          hw_fix f = fix_of(i, k);
          hw_redis_state_put(rs, t[i], &f);
        }
        written += (uint64_t)n;
        until_writes u = {rs, written, 0};
        check.data = &u;
        uv_timer_start(&check, on_check, 1, 1);
        while (!u.done)
          uv_run(&loop, UV_RUN_ONCE);
      }
      double cpu = redis_cpu_s() - cpu0;
      evalsha_stats(c, &c1, &u1);
      int i = old ? 0 : 1;
      cpu_total[i] += cpu;
      usec_total[i] += u1 - u0;
      calls_total[i] += c1 - c0;
      (old ? old_us : new_us)[k] = cpu * 1e6 / (double)n;
      line_usec[i] = (double)(u1 - u0) / (double)n;
      line_calls[i] = c1 - c0;
    }
    printf("%5d  %s  old %6.2f us (in commands %6.2f)  new %6.2f us (in commands %6.2f, %.1f "
           "vehicles a call)\n",
           k, k % 2 == 0 ? "old first" : "new first", old_us[k], line_usec[0], new_us[k],
           line_usec[1], line_calls[1] ? (double)n / (double)line_calls[1] : 0);
  }
  hw_redis_state_stats st;
  hw_redis_state_get_stats(rs, &st);
  double mo = median(old_us, rounds), mn = median(new_us, rounds);
  double vt = (double)n * rounds;
  printf("median Redis CPU per vehicle update: old %.2f us, new %.2f us, new/old %.2f\n", mo, mn,
         mn / mo);
  printf("all rounds: Redis CPU old %.2f s, new %.2f s, new/old %.2f; in commands old %.2f us, "
         "new %.2f us per vehicle, new/old %.2f; calls old %lld, new %lld (%llu vehicle writes)\n",
         cpu_total[0], cpu_total[1], cpu_total[1] / cpu_total[0], usec_total[0] / vt,
         usec_total[1] / vt, (double)usec_total[1] / (double)usec_total[0], calls_total[0],
         calls_total[1], (unsigned long long)st.writes);

  int stopped = 0;
  uv_close((uv_handle_t *)&check, NULL);
  hw_redis_state_stop(rs, on_stopped, &stopped);
  while (!stopped)
    uv_run(&loop, UV_RUN_ONCE);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  redisFree(c);
  kill(redis_pid, SIGTERM);
  waitpid(redis_pid, NULL, 0);
  hw_registry_free(&reg);
  free(t);
  free(old_us);
  free(new_us);
  return st.writes == written ? 0 : 1;
}
