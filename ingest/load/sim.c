/* `haulwatch-sim`: command line, terminal provisioning, and the summary. The simulation itself is
 * sim_run.c; the wire protocols sim_pb.c and sim_jt808.c. */
#include <getopt.h>
#include <libpq-fe.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "load/load.h"
#include "base/log.h"
#include "load/sim.h"
#include "base/token.h"

#define HW_SIM_DEFAULT_INTERVAL_MS 10000
#define HW_SIM_DEFAULT_WINDOW 1000
#define HW_SIM_MAX_TRUCKS 1000000
#define HW_SIM_TOKEN_MAX 128
#define HW_SIM_PB_REPORT_MAX 500 /* the largest max_report_fixes of any protocol */

static uint64_t hw_sim_pow10(int n) {
  uint64_t v = 1;
  while (n-- > 0)
    v *= 10;
  return v;
}

static const char hw_sim_usage[] =
    "usage: haulwatch-sim --server HOST:PORT --trucks N (--fixes N | --duration S) [options]\n"
    "       haulwatch-sim --server HOST:PORT --scenario NAME[:PARAM] [--trucks N] [options]\n"
    "\n"
    "Simulates N trucks, each on its own TCP connection, reporting positions to a haulwatch\n"
    "daemon. Each truck keeps every fix until it is acknowledged and sends it again after a\n"
    "reconnect. Prints one summary line (key=value) and a readable block on stdout.\n"
    "\n"
    "  --server HOST:PORT    the daemon's listener for --protocol: --listen for pb,\n"
    "                        --jt808-listen for jt808 (required)\n"
    "  --trucks N            number of trucks (required); terminal ids <prefix><6-digit index>,\n"
    "                        for jt808 12-digit phone numbers <prefix><index padded to 12 digits>\n"
    "  --fixes N             fixes per truck; ends when all are acknowledged\n"
    "  --duration S          or: generate for S seconds, then wait up to 10 s for acks\n"
    "  --interval-ms MS      wall time between a truck's fixes (default 10000);\n"
    "                        0 = flat out, as fast as the window allows\n"
    "  --step-ms MS          device time between a truck's fixes (default: the interval, or\n"
    "                        10000 when flat out)\n"
    "  --start-time-ms T     device time of fix 0, UTC ms (default: with --fixes, now minus\n"
    "                        fixes x step, so the data ends now; with --duration, now)\n"
    "  --pg CONNINFO         provision the trucks' terminals with new tokens in this database\n"
    "                        first (default: $HAULWATCH_PG); jt808 trucks are provisioned\n"
    "                        with device ids (their id's last 7 digits) and register (0x0100)\n"
    "                        at their first connection to get an auth code\n"
    "  --tokens FILE         or: read tokens from FILE, lines 'ID TOKEN'; for jt808 the\n"
    "                        tokens are auth codes (no registration unless one is refused)\n"
    "  --id-prefix P         terminal id prefix (default sim; jt808: 0138, digits only)\n"
    "  --report-fixes K      fixes per report at most (default 1 when paced, 50 flat out;\n"
    "                        pb <= 500; jt808 <= 28, one 0x0704 batch, single fixes as 0x0200)\n"
    "  --window W            fixes sent and not acknowledged per truck at most (default 1000)\n"
    "  --timeout-s S         with --fixes: give up after S seconds, exit 1 (default 600)\n"
    "  --seed S              random seed for routes (default: from the clock); same seed, same routes\n"
    "  --scenario NAME[:P]   scripted trucks that break one safety rule each, with known values\n"
    "                        (see below); they send their script's fixes, flat out unless\n"
    "                        --interval-ms is given; --trucks defaults to 1 (mixed: 20)\n"
    "  --protocol P          wire protocol: pb (haulwatch protobuf, default), jt808 (JT/T\n"
    "                        808-2013) or jt809 (platforms carrying many vehicles each, with\n"
    "                        options of their own: haulwatch-sim --protocol jt809 --help);\n"
    "                        jt808: fixes resent after a reconnect go as 0x0704 back-fill,\n"
    "                        drivers as 0x0702; device times are whole seconds, so --step-ms\n"
    "                        must be a multiple of 1000)\n"
    "  --quiet               no progress output\n"
    "  --log-level L         debug, info, warn or error (default info)\n"
    "  --help                this text\n"
    "\n"
    "Progress goes to stderr: a live line each second on a terminal, else a line every 5 s.\n"
    "Exit status: 0 when every truck logged in and every fix generated was acknowledged,\n"
    "1 otherwise (unacknowledged fixes, refused logins, trucks that never logged in, timeout,\n"
    "local failure), 2 on a usage error.\n"
    "\n"
    "Sequence numbers are 1, 2, 3, ... per truck and run (after the last_acked_seq of a truck's\n"
    "first login, which haulwatch always reports as 0: its acks are per connection and fixes\n"
    "are told apart by device time). A fix the server refuses (Ack.refused) is counted, never\n"
    "acknowledged, and makes the run fail. JT/T 808 has no sequence numbers: a report is\n"
    "acknowledged by the 0x8001 for its flow number.\n"
    "\n"
    "Scenarios (device time: a fix every --step-ms, default 10000, which must divide 60000; the\n"
    "data ends now unless --start-time-ms is given, which is then 'fix 0' as above):\n"
    "  tired[:M]     70 km/h for M minutes of driving (default 270) with a 10 min stop after\n"
    "                2 h, then 25 min rest: one fatigue_continuous when M > 240\n"
    "  speeder[:V]   north along 114.32E from 37.60N (an expressway, 100 km/h for trucks):\n"
    "                10 min at 95 km/h, 2 min at V (default 130), 5 min at 95, 5 min stopped:\n"
    "                one speeding, grade 2 at 130\n"
    "  tractor       30 km/h for 90 min, 10 min stopped: retired_class when bound to a\n"
    "                converted tractor\n"
    "  dark[:M]      60 km/h for 30 min, silent M minutes (default 45) while moving 40 km,\n"
    "                then 90 min and a 25 min rest: one offline_displacement\n"
    "  dsm[:M]       (jt808) 70 km/h for M minutes (default 60): a level-2 DSM phone alarm\n"
    "                (2 attachments) at 10 min and a level-2 DSM fatigue alarm (3) at 40 min\n"
    "  nodevice      (jt808) 60 min at 60 km/h; its device's last active-safety item is 10 days\n"
    "                old: connected, not covered (report safety-devices)\n"
    "  mixed         of every 20 trucks: 1 tired, 1 speeder, 1 tractor, 1 dark, 16 ordinary\n"
    "Scenario terminal ids are <prefix>-<kind>-<n> with n from 001 per kind (default prefix\n"
    "scn; ordinary trucks of a mixed fleet are <prefix>-normal-<n>); for jt808\n"
    "<prefix><kind digit><n padded to 12 digits>, kinds 0 normal, 1 tired, 2 speeder,\n"
    "3 tractor, 4 dark, 5 dsm, 6 nodevice (default prefix 0139). Ordinary trucks of a mixed fleet send as many\n"
    "fixes as its longest script.\n";

static int hw_sim_parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
  char *end;
  errno = 0;
  if (!s || !*s || *s == '-')
    return -EINVAL;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || v < lo || v > hi)
    return -EINVAL;
  *out = v;
  return 0;
}

/* "host:port", "[v6]:port". Resolves once, before the loop starts. */
int hw_sim_resolve(const char *hostport, struct sockaddr_storage *out) {
  char host[256];
  const char *port;
  if (hostport[0] == '[') {
    const char *e = strchr(hostport, ']');
    if (!e || e[1] != ':' || (size_t)(e - hostport - 1) >= sizeof host)
      return -EINVAL;
    memcpy(host, hostport + 1, (size_t)(e - hostport - 1));
    host[e - hostport - 1] = 0;
    port = e + 2;
  } else {
    const char *e = strrchr(hostport, ':');
    if (!e || (size_t)(e - hostport) >= sizeof host)
      return -EINVAL;
    memcpy(host, hostport, (size_t)(e - hostport));
    host[e - hostport] = 0;
    port = e + 1;
  }
  if (!*port)
    return -EINVAL;
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  struct addrinfo *ai = NULL;
  int rc = getaddrinfo(host[0] ? host : "127.0.0.1", port, &hints, &ai);
  if (rc) {
    hw_error("sim", NULL, "cannot resolve %s: %s", hostport, gai_strerror(rc));
    return -EHOSTUNREACH;
  }
  memcpy(out, ai->ai_addr, ai->ai_addrlen);
  freeaddrinfo(ai);
  return 0;
}

/* Writes ids as a PostgreSQL text array literal, each through pick (NULL: as is). Ids are
 * [0-9A-Za-z_-], so none needs quoting. Returns a malloc'ed string the caller frees, or NULL. */
static char *hw_sim_id_array(uint32_t n, char **ids, const char *(*pick)(const char *)) {
  size_t len = 3;
  for (uint32_t i = 0; i < n; i++)
    len += strlen(ids[i]) + 1;
  char *arr = malloc(len), *p = arr;
  if (!arr)
    return NULL;
  *p++ = '{';
  for (uint32_t i = 0; i < n; i++) {
    const char *v = pick ? pick(ids[i]) : ids[i];
    size_t l = strlen(v);
    if (i)
      *p++ = ',';
    memcpy(p, v, l);
    p += l;
  }
  *p++ = '}';
  *p = 0;
  return arr;
}

/* Gives every truck a new token and upserts the hashes in one statement, so a rerun simply
 * re-keys the same terminals. JT/T 808 terminals are provisioned with the device id they register
 * with, as a fleet's are: a registration repeated because its answer was lost (the sim gives up
 * after its login timeout) is then answered 0 with a new code, not 3 "already registered".
 * Blocking: this runs before the loop. */
static int hw_sim_provision(const char *conninfo, uint32_t n, char **ids, char **tokens,
                            int jt808) {
  int rc = -ENOMEM;
  PGconn *conn = NULL;
  PGresult *res = NULL;
  char *idarr = hw_sim_id_array(n, ids, NULL);
  char *devarr = jt808 ? hw_sim_id_array(n, ids, hw_sim_j8_device_id) : NULL;
  char *harr = malloc(2 + (size_t)n * (2 * HW_TOKEN_HASH_LEN + 1) + 1);
  if (!idarr || !harr || (jt808 && !devarr))
    goto out;
  char *hp = harr;
  *hp++ = '{';
  for (uint32_t i = 0; i < n; i++) {
    if ((rc = hw_token_new(tokens[i])) < 0)
      goto out;
    uint8_t h[HW_TOKEN_HASH_LEN];
    char bytea[2 + 2 * HW_TOKEN_HASH_LEN + 1];
    hw_token_hash(tokens[i], strlen(tokens[i]), h);
    hw_token_hash_bytea(h, bytea);
    if (i)
      *hp++ = ',';
    memcpy(hp, bytea + 2, 2 * HW_TOKEN_HASH_LEN); /* hex, without the \x */
    hp += 2 * HW_TOKEN_HASH_LEN;
  }
  *hp++ = '}';
  *hp = 0;

  rc = -EIO;
  conn = PQconnectdb(conninfo);
  if (PQstatus(conn) != CONNECTION_OK) {
    hw_error("sim", NULL, "provisioning: cannot connect to PostgreSQL: %s", PQerrorMessage(conn));
    goto out;
  }
  /* A protobuf run passes no device ids ($3 NULL): unnest pads them with NULLs, and a terminal
   * keeps the device id it had. */
  const char *params[3] = {idarr, harr, devarr};
  res = PQexecParams(conn,
                     "INSERT INTO terminals (terminal_id, token_hash, provisioned_device_id) "
                     "SELECT id, decode(h, 'hex'), d "
                     "FROM unnest($1::text[], $2::text[], $3::text[]) AS t(id, h, d) "
                     "ON CONFLICT (terminal_id) DO UPDATE SET token_hash = EXCLUDED.token_hash, "
                     "provisioned_device_id = coalesce(EXCLUDED.provisioned_device_id, "
                     "terminals.provisioned_device_id)",
                     3, NULL, params, NULL, NULL, 0);
  if (PQresultStatus(res) != PGRES_COMMAND_OK) {
    hw_error("sim", NULL, "provisioning %u terminals failed: %s", n, PQresultErrorMessage(res));
    goto out;
  }
  hw_info("sim", NULL, "provisioned %u terminals %s..%s with new tokens", n, ids[0], ids[n - 1]);
  rc = 0;
out:
  PQclear(res);
  PQfinish(conn);
  free(idarr);
  free(devarr);
  free(harr);
  return rc;
}

static int hw_sim_id_cmp(const void *a, const void *b, void *ids) {
  return strcmp(((char **)ids)[*(const uint32_t *)a], ((char **)ids)[*(const uint32_t *)b]);
}

/* Lines "ID TOKEN"; blank lines and lines starting with # are skipped. Every truck must be
 * there; other ids are ignored. Ids are looked up in a sorted index, as scenario ids carry no
 * index of their own. */
static int hw_sim_read_tokens(const char *path, uint32_t n, char **ids, char **tokens) {
  uint32_t *order = malloc((size_t)n * sizeof *order); /* owned: truck numbers sorted by id */
  if (!order)
    return -ENOMEM;
  for (uint32_t i = 0; i < n; i++)
    order[i] = i;
  qsort_r(order, n, sizeof *order, hw_sim_id_cmp, ids);
  FILE *f = fopen(path, "r");
  if (!f) {
    int err = errno;
    hw_error("sim", NULL, "cannot open %s: %s", path, strerror(err));
    free(order);
    return -err;
  }
  char line[512];
  int rc = 0;
  while (fgets(line, sizeof line, f)) {
    char id[64], tok[HW_SIM_TOKEN_MAX + 1];
    if (line[0] == '#' || sscanf(line, "%63s %128s", id, tok) != 2)
      continue;
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
      uint32_t mid = lo + (hi - lo) / 2;
      if (strcmp(ids[order[mid]], id) < 0)
        lo = mid + 1;
      else
        hi = mid;
    }
    if (lo == n || strcmp(ids[order[lo]], id) != 0)
      continue;
    uint32_t i = order[lo];
    free(tokens[i]);
    if (!(tokens[i] = strdup(tok))) {
      rc = -ENOMEM;
      break;
    }
  }
  fclose(f);
  free(order);
  for (uint32_t i = 0; rc == 0 && i < n; i++)
    if (!tokens[i]) {
      hw_error("sim", ids[i], "no token for this terminal in %s", path);
      rc = -ENOENT;
    }
  return rc;
}

/* A scenario truck's terminal id: <prefix>-<kind>-<nth>, or for JT/T 808 the digits
 * <prefix><kind><nth padded to `digits`>. */
static void hw_sim_scn_id(char *buf, size_t cap, const char *prefix, int jt808, int digits,
                          uint8_t kind, uint32_t nth) {
  if (jt808)
    snprintf(buf, cap, "%s%u%0*u", prefix, (unsigned)kind, digits, (unsigned)nth);
  else
    snprintf(buf, cap, "%s-%s-%03u", prefix, hw_scn_kind_name(kind), (unsigned)nth);
}

/* Per kind: how many trucks, their ids and what the rules should find. */
static void hw_sim_scn_summary(const hw_sim_config *cfg) {
  for (uint8_t k = HW_SCN_NORMAL; k < HW_SCN_MIXED; k++) {
    uint32_t n = 0, first = 0, last = 0;
    for (uint32_t i = 0; i < cfg->trucks; i++)
      if (cfg->scripts[i].kind == k) {
        if (!n++)
          first = i;
        last = i;
      }
    if (!n)
      continue;
    char what[160];
    hw_scn_expectation(&cfg->scripts[first], what, sizeof what);
    printf("  scenario     %u %s (%s%s%s): %s\n", n, hw_scn_kind_name(k), cfg->ids[first],
           n > 1 ? ".." : "", n > 1 ? cfg->ids[last] : "", what);
  }
}

static double hw_sim_ms(const hw_hist *h, double p) { return (double)hw_hist_percentile(h, p) / 1000.0; }

static void hw_sim_summary(const hw_sim_config *cfg, const hw_sim_result *r, int ok) {
  const hw_hist *h = &r->ack_latency_us;
  unsigned long long unacked = r->generated - r->acked;
  double rate = r->seconds > 0 ? (double)r->acked / r->seconds : 0;
  printf("sim: trucks=%u connected=%u sent=%llu resent=%llu acked=%llu unacked=%llu seconds=%.1f "
         "rate_per_s=%.1f ack_p50_ms=%.1f ack_p99_ms=%.1f reconnects=%llu refused=%u\n",
         r->trucks, r->connected, (unsigned long long)r->sent, (unsigned long long)r->resent,
         (unsigned long long)r->acked, unacked, r->seconds, rate, hw_sim_ms(h, 50), hw_sim_ms(h, 99),
         (unsigned long long)r->reconnects, r->refused);
  printf("\n  trucks       %u: %u logged in, %u refused\n", r->trucks, r->connected, r->refused);
  printf("  fixes        %llu generated, %llu sent (+%llu sent again after reconnects), "
         "%llu acknowledged, %llu not\n",
         (unsigned long long)r->generated, (unsigned long long)r->sent, (unsigned long long)r->resent,
         (unsigned long long)r->acked, unacked);
  if (r->fixes_refused)
    printf("  refused      %llu fixes refused by the server (Ack.refused): dropped, not resent\n",
           (unsigned long long)r->fixes_refused);
  printf("  time         %.1f s, %.1f acknowledged fixes/s\n", r->seconds, rate);
  printf("  ack latency  p50 %.1f ms, p90 %.1f, p99 %.1f, p99.9 %.1f, max %.1f (first send to ack)\n",
         hw_sim_ms(h, 50), hw_sim_ms(h, 90), hw_sim_ms(h, 99), hw_sim_ms(h, 99.9),
         (double)(h->total ? h->max : 0) / 1000.0);
  printf("  connections  %llu reconnects, %llu failed connects, %llu heartbeats\n",
         (unsigned long long)r->reconnects, (unsigned long long)r->connect_failures,
         (unsigned long long)r->heartbeats);
  printf("  settings     protocol %s, interval %u ms, device step %u ms, window %u, "
         "%u fixes/report, seed %llu\n",
         cfg->proto->name, cfg->interval_ms, cfg->step_ms, cfg->window, cfg->report_fixes,
         (unsigned long long)cfg->seed);
  if (ok)
    printf("  result       ok%s\n", r->interrupted ? " (interrupted)" : "");
  else
    printf("  result       FAILED:%s%s%s%s\n", unacked ? " fixes unacknowledged" : "",
           r->refused ? " logins refused" : "", r->timed_out ? " timeout" : "",
           r->connected + r->refused < r->trucks ? " trucks never logged in" : "");
  fflush(stdout);
}

int hw_cmd_sim(int argc, char **argv) {
  /* JT/T 809 plays platforms, not trucks: its own options and run (sim_jt809.c). */
  for (int i = 1; i < argc; i++)
    if ((!strcmp(argv[i], "--protocol") && i + 1 < argc && !strcmp(argv[i + 1], "jt809")) ||
        !strcmp(argv[i], "--protocol=jt809"))
      return hw_sim_jt809_main(argc, argv);
  enum {
    O_SERVER = 256, O_TRUCKS, O_FIXES, O_DURATION, O_INTERVAL, O_STEP, O_START, O_PG, O_TOKENS,
    O_PREFIX, O_REPORT, O_WINDOW, O_TIMEOUT, O_SEED, O_PROTOCOL, O_SCENARIO, O_QUIET, O_LOGLEVEL,
    O_HELP
  };
  static const struct option opts[] = {
      {"server", required_argument, NULL, O_SERVER},
      {"trucks", required_argument, NULL, O_TRUCKS},
      {"fixes", required_argument, NULL, O_FIXES},
      {"duration", required_argument, NULL, O_DURATION},
      {"interval-ms", required_argument, NULL, O_INTERVAL},
      {"step-ms", required_argument, NULL, O_STEP},
      {"start-time-ms", required_argument, NULL, O_START},
      {"pg", required_argument, NULL, O_PG},
      {"tokens", required_argument, NULL, O_TOKENS},
      {"id-prefix", required_argument, NULL, O_PREFIX},
      {"report-fixes", required_argument, NULL, O_REPORT},
      {"window", required_argument, NULL, O_WINDOW},
      {"timeout-s", required_argument, NULL, O_TIMEOUT},
      {"seed", required_argument, NULL, O_SEED},
      {"protocol", required_argument, NULL, O_PROTOCOL},
      {"scenario", required_argument, NULL, O_SCENARIO},
      {"quiet", no_argument, NULL, O_QUIET},
      {"log-level", required_argument, NULL, O_LOGLEVEL},
      {"help", no_argument, NULL, O_HELP},
      {NULL, 0, NULL, 0},
  };
  const char *server = NULL, *pg = NULL, *tokens_file = NULL, *prefix = NULL, *protocol = "pb";
  uint64_t trucks = 0, fixes = 0, interval = HW_SIM_DEFAULT_INTERVAL_MS, step = 0, report = 0;
  uint8_t scenario = HW_SCN_NORMAL; /* HW_SCN_NORMAL: no --scenario */
  uint32_t scn_param = 0;
  int have_interval = 0;
  uint64_t window = HW_SIM_DEFAULT_WINDOW, timeout = 600, seed = 0, start = 0;
  double duration = 0;
  int have_fixes = 0, have_duration = 0, have_start = 0, have_seed = 0, quiet = 0;
  const char *bad = NULL;

  optind = 0; /* glibc: full reset, in case anything parsed before */
  int o;
  while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    int rc = 0;
    switch (o) {
    case O_SERVER: server = optarg; break;
    case O_TRUCKS: rc = hw_sim_parse_u64(optarg, 1, HW_SIM_MAX_TRUCKS, &trucks); break;
    case O_FIXES: rc = hw_sim_parse_u64(optarg, 1, UINT32_MAX, &fixes); have_fixes = 1; break;
    case O_DURATION: {
      char *end;
      duration = strtod(optarg, &end);
      rc = (*end || !(duration > 0) || duration > 1e7) ? -EINVAL : 0;
      have_duration = 1;
      break;
    }
    case O_INTERVAL: rc = hw_sim_parse_u64(optarg, 0, 86400000, &interval); have_interval = 1; break;
    case O_STEP: rc = hw_sim_parse_u64(optarg, 1, 86400000, &step); break;
    case O_START: rc = hw_sim_parse_u64(optarg, 0, 4102444800000ull, &start); have_start = 1; break;
    case O_PG: pg = optarg; break;
    case O_TOKENS: tokens_file = optarg; break;
    case O_PREFIX: prefix = optarg; break;
    case O_REPORT: rc = hw_sim_parse_u64(optarg, 1, HW_SIM_PB_REPORT_MAX, &report); break;
    case O_WINDOW: rc = hw_sim_parse_u64(optarg, 1, 1000000, &window); break;
    case O_TIMEOUT: rc = hw_sim_parse_u64(optarg, 1, 86400 * 30, &timeout); break;
    case O_SEED: rc = hw_sim_parse_u64(optarg, 0, UINT64_MAX, &seed); have_seed = 1; break;
    case O_PROTOCOL: protocol = optarg; break;
    case O_SCENARIO: rc = hw_scn_parse(optarg, &scenario, &scn_param); break;
    case O_QUIET: quiet = 1; break;
    case O_LOGLEVEL: rc = hw_log_set_level(optarg); break;
    case O_HELP:
    case 'h': fputs(hw_sim_usage, stdout); return 0;
    default: fputs(hw_sim_usage, stderr); return 2;
    }
    if (rc) {
      fprintf(stderr, "haulwatch-sim: bad value for --%s: '%s'\n", opts[o - O_SERVER].name, optarg);
      return 2;
    }
  }
  if (scenario != HW_SCN_NORMAL) {
    /* Scripts set their own length and are fast-forwarded device time. */
    if (!trucks)
      trucks = scenario == HW_SCN_MIXED ? 20 : 1;
    if (!have_interval)
      interval = 0;
    if (!step)
      step = HW_SIM_DEFAULT_INTERVAL_MS;
  }
  if (optind < argc)
    bad = "unexpected argument";
  else if (!server)
    bad = "--server is required";
  else if (!trucks)
    bad = "--trucks is required";
  else if (scenario != HW_SCN_NORMAL && (have_fixes || have_duration))
    bad = "--scenario trucks send their script: no --fixes or --duration";
  else if (scenario != HW_SCN_NORMAL && (step < 1000 || 60000 % step))
    bad = "--scenario needs a --step-ms that divides 60000 (1000..60000)";
  else if (scenario == HW_SCN_NORMAL && have_fixes == have_duration)
    bad = "give exactly one of --fixes and --duration";
  else if (strcmp(protocol, "pb") != 0 && strcmp(protocol, "jt808") != 0)
    bad = "unknown --protocol";
  else if (tokens_file && pg)
    bad = "give --pg or --tokens, not both";
  if (!bad && !tokens_file && !pg) {
    pg = getenv("HAULWATCH_PG");
    if (!pg || !*pg)
      bad = "tokens needed: --pg CONNINFO (or $HAULWATCH_PG) to provision, or --tokens FILE";
  }
  const hw_sim_proto *proto = strcmp(protocol, "jt808") == 0 ? &hw_sim_proto_jt808 : &hw_sim_proto_pb;
  int jt808 = proto == &hw_sim_proto_jt808;
  int scn = scenario != HW_SCN_NORMAL;
  if (!prefix)
    prefix = jt808 ? (scn ? "0139" : "0138") : scn ? "scn" : "sim";
  /* jt808: the index fills the phone number up to 12 digits (20 for a longer prefix: 2019);
   * scenario ids put the kind's digit first. */
  int digits = 6;
  if (jt808) {
    size_t own = strlen(prefix), pl = own + (size_t)scn;
    digits = (int)((pl < 12 ? 12 : 20) - pl);
    if (!bad && (own == 0 || pl >= 20 || strspn(prefix, "0123456789") != own))
      bad = scn ? "--id-prefix for jt808 scenarios must be 1..18 digits"
                : "--id-prefix for jt808 must be 1..19 digits";
    else if (!bad && trucks > (digits >= 7 ? HW_SIM_MAX_TRUCKS : (uint64_t)(hw_sim_pow10(digits) - 1)))
      bad = "--id-prefix for jt808 leaves too few digits for --trucks";
    else if (!bad && (step ? step : interval ? interval : HW_SIM_DEFAULT_INTERVAL_MS) % 1000)
      bad = "jt808 device times are whole seconds: --step-ms (default: the interval) must be a "
            "multiple of 1000";
  }
  if (!bad && report > proto->max_report_fixes)
    bad = jt808 ? "--report-fixes for jt808 is at most 28 (one 0x0704 batch)" : "--report-fixes too large";
  char probe[HW_TERMINAL_ID_MAX + 24];
  if (!bad) {
    /* The longest id: the largest number, with the longest kind name. */
    if (scn)
      hw_sim_scn_id(probe, sizeof probe, prefix, jt808, digits, HW_SCN_SPEEDER, (uint32_t)trucks);
    else
      snprintf(probe, sizeof probe, "%.32s%0*u", prefix, digits, (unsigned)trucks);
    if (strlen(prefix) > HW_TERMINAL_ID_MAX || strlen(probe) > HW_TERMINAL_ID_MAX ||
        hw_terminal_id_check(probe, strlen(probe)) < 0)
      bad = "--id-prefix must leave valid terminal ids (1..32 of [0-9A-Za-z_-])";
  }
  if (bad) {
    fprintf(stderr, "haulwatch-sim: %s\n\n%s", bad, hw_sim_usage);
    return 2;
  }

  hw_sim_config cfg;
  memset(&cfg, 0, sizeof cfg);
  if (hw_sim_resolve(server, &cfg.addr) < 0) {
    fprintf(stderr, "haulwatch-sim: bad --server '%s' (want HOST:PORT)\n", server);
    return 2;
  }
  cfg.proto = proto;
  cfg.trucks = (uint32_t)trucks;
  cfg.fixes = fixes;
  cfg.duration_ms = (uint64_t)(duration * 1000);
  cfg.interval_ms = (uint32_t)interval;
  cfg.step_ms = (uint32_t)(step ? step : interval ? interval : HW_SIM_DEFAULT_INTERVAL_MS);
  cfg.report_fixes = (uint32_t)(report ? report : interval ? 1 : 50);
  if (cfg.report_fixes > proto->max_report_fixes)
    cfg.report_fixes = (uint32_t)proto->max_report_fixes;
  cfg.window = (uint32_t)window;
  cfg.timeout_s = (uint32_t)timeout;
  if (!have_seed) {
    uint64_t st = (uint64_t)hw_now_ms() ^ ((uint64_t)getpid() << 32);
    seed = hw_sim_rand(&st);
  }
  cfg.seed = seed;
  int64_t now = hw_now_ms();
  cfg.start_ms = have_start ? (int64_t)start
                 : fixes    ? now - (int64_t)fixes * (int64_t)cfg.step_ms
                            : now;
  if (scn && !have_start) {
    /* The longest script ends now: the daemon flags device times in the future. */
    int64_t span = 0;
    for (uint8_t k = HW_SCN_TIRED; k < HW_SCN_MIXED; k++)
      if (scenario == k || scenario == HW_SCN_MIXED) {
        int64_t sp = hw_scn_span_ms(k, scenario == k ? scn_param : 0, cfg.step_ms);
        span = sp > span ? sp : span;
      }
    cfg.start_ms = now - span - cfg.step_ms;
  }
  cfg.progress = quiet ? 0 : isatty(STDERR_FILENO) ? 2 : 1;

  int rc = 1;
  hw_scn_script *scripts = NULL; /* owned: per truck, with --scenario */
  cfg.ids = calloc(trucks, sizeof *cfg.ids);
  cfg.tokens = calloc(trucks, sizeof *cfg.tokens);
  char *idblock = malloc(trucks * (HW_TERMINAL_ID_MAX + 1));
  char *tokblock = NULL;
  if (!cfg.ids || !cfg.tokens || !idblock)
    goto out;
  if (scn && !(scripts = calloc(trucks, sizeof *scripts)))
    goto out;
  for (uint32_t i = 0; i < trucks; i++) {
    cfg.ids[i] = idblock + (size_t)i * (HW_TERMINAL_ID_MAX + 1);
    if (!scn) {
      snprintf(cfg.ids[i], HW_TERMINAL_ID_MAX + 1, "%s%0*u", prefix, digits, i + 1);
      continue;
    }
    uint32_t nth;
    uint8_t kind = hw_scn_kind_of(scenario, i, &nth);
    hw_sim_scn_id(cfg.ids[i], HW_TERMINAL_ID_MAX + 1, prefix, jt808, digits, kind, nth);
    if (hw_scn_script_init(&scripts[i], kind, scenario == kind ? scn_param : 0, nth,
                           cfg.start_ms + cfg.step_ms, cfg.step_ms) < 0) {
      fprintf(stderr, "haulwatch-sim: cannot build the %s script\n", hw_scn_kind_name(kind));
      goto out;
    }
    /* Model trucks of a mixed fleet drive as long as the longest script. */
    if ((uint64_t)scripts[i].nfixes > cfg.fixes)
      cfg.fixes = (uint64_t)scripts[i].nfixes;
  }
  cfg.scripts = scripts;
  if (tokens_file) {
    if (hw_sim_read_tokens(tokens_file, cfg.trucks, cfg.ids, cfg.tokens) < 0)
      goto out;
  } else {
    if (!(tokblock = malloc(trucks * (HW_TOKEN_LEN + 1))))
      goto out;
    for (uint32_t i = 0; i < trucks; i++)
      cfg.tokens[i] = tokblock + (size_t)i * (HW_TOKEN_LEN + 1);
    if (hw_sim_provision(pg, cfg.trucks, cfg.ids, cfg.tokens, jt808) < 0)
      goto out;
    /* JT/T 808 terminals have no use for the token: they register and get an auth code. */
    if (jt808)
      for (uint32_t i = 0; i < trucks; i++)
        cfg.tokens[i][0] = 0;
  }

  hw_sim_result res;
  int run = hw_sim_run(&cfg, &res);
  if (run < 0)
    hw_error("sim", NULL, "simulation failed: %s", strerror(-run));
  /* A truck that never logged in generated nothing flat out, yet did not work either. */
  int ok = run == 0 && res.acked == res.generated && res.refused == 0 && res.fixes_refused == 0 &&
           !res.timed_out && res.connected == res.trucks;
  hw_sim_summary(&cfg, &res, ok);
  if (scn)
    hw_sim_scn_summary(&cfg);
  rc = ok ? 0 : 1;
out:
  free(scripts);
  if (cfg.tokens && tokens_file)
    for (uint32_t i = 0; i < trucks; i++)
      free(cfg.tokens[i]);
  free(tokblock);
  free(idblock);
  free(cfg.ids);
  free(cfg.tokens);
  return rc;
}
