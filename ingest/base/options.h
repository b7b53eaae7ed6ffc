/* Declarative settings: one table per command names every setting once, with its type, default,
 * environment variable and help. The same table drives defaults, the optional INI config file
 * (`--config FILE`, keys are the setting names, optionally under a [section]), the environment,
 * the command line (`--name value` / `--name=value`, '_' written as '-') and `--help`.
 * Precedence: command line > environment > config file > default. */
#ifndef HW_OPTIONS_H
#define HW_OPTIONS_H

#include "base/common.h"

typedef enum { HW_OPT_STR = 0, HW_OPT_U32, HW_OPT_BOOL } hw_opt_type;

typedef struct hw_option {
  const char *name;   /* file key and flag (with '_' shown as '-') */
  hw_opt_type type;
  size_t offset;      /* into the command's settings struct */
  size_t size;        /* HW_OPT_STR: size of the char array */
  const char *def;    /* default, as text; NULL = empty / 0 */
  const char *env;    /* environment variable, or NULL */
  uint32_t min, max;  /* HW_OPT_U32 bounds */
  const char *help;
} hw_option;

#define HW_OPT_S(st, field, def, env, help) \
  {#field, HW_OPT_STR, offsetof(st, field), sizeof(((st *)0)->field), def, env, 0, 0, help}
#define HW_OPT_N(st, field, def, lo, hi, env, help) \
  {#field, HW_OPT_U32, offsetof(st, field), sizeof(uint32_t), def, env, lo, hi, help}
#define HW_OPT_B(st, field, def, help) \
  {#field, HW_OPT_BOOL, offsetof(st, field), sizeof(uint32_t), def, NULL, 0, 1, help}

/* Fills *base from the table and argv (argv[0] is the command name). Arguments that are not
 * options are returned in positional[0..*npositional) (at most max_positional).
 * Returns 0, 1 when --help was printed (exit 0), or -EINVAL after printing the reason to stderr. */
int hw_options_parse(const hw_option *table, size_t n, void *base, int argc, char **argv,
                     const char *usage, char **positional, int max_positional, int *npositional)
    HW_MUST_CHECK;

void hw_options_help(const hw_option *table, size_t n, const char *usage);

/* Parses "HOST:PORT" into host (NUL-terminated) and port. */
int hw_parse_hostport(const char *s, char *host, size_t hostlen, int *port) HW_MUST_CHECK;

#endif
