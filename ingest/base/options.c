#include "base/options.h"

#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hw_opt_set(const hw_option *o, void *base, const char *value, const char *from) {
  char *field = (char *)base + o->offset;
  switch (o->type) {
  case HW_OPT_STR:
    if (strlen(value) >= o->size) {
      fprintf(stderr, "%s: value of %s is too long (at most %zu characters)\n", from, o->name,
              o->size - 1);
      return -EINVAL;
    }
    strcpy(field, value);
    return 0;
  case HW_OPT_U32:
  case HW_OPT_BOOL: {
    char *end;
    unsigned long long v;
    if (o->type == HW_OPT_BOOL && (!strcmp(value, "true") || !strcmp(value, "yes") || !strcmp(value, "on") || !strcmp(value, "1")))
      v = 1;
    else if (o->type == HW_OPT_BOOL && (!strcmp(value, "false") || !strcmp(value, "no") || !strcmp(value, "off") || !strcmp(value, "0")))
      v = 0;
    else {
      errno = 0;
      v = strtoull(value, &end, 10);
      if (errno || end == value || *end || value[0] == '-') {
        fprintf(stderr, "%s: %s wants a whole number, not '%s'\n", from, o->name, value);
        return -EINVAL;
      }
    }
    if (v < o->min || v > o->max) {
      fprintf(stderr, "%s: %s must be between %u and %u, not %s\n", from, o->name, o->min, o->max,
              value);
      return -EINVAL;
    }
    *(uint32_t *)field = (uint32_t)v;
    return 0;
  }
  }
  return -EINVAL;
}

static const hw_option *hw_opt_find(const hw_option *t, size_t n, const char *name, size_t len) {
  for (size_t i = 0; i < n; i++) {
    const char *a = t[i].name;
    size_t j = 0;
    for (; j < len && a[j]; j++)
      if (!(a[j] == name[j] || (a[j] == '_' && name[j] == '-')))
        break;
    if (j == len && a[j] == '\0')
      return &t[i];
  }
  return NULL;
}

typedef struct {
  const hw_option *table;
  size_t n;
  void *base;
  const char *path;
  int rc;
} hw_ini_ctx;

static int hw_ini_handler(void *arg, const char *section, const char *name, const char *value) {
  hw_ini_ctx *ctx = arg;
  (void)section;
  const hw_option *o = hw_opt_find(ctx->table, ctx->n, name, strlen(name));
  if (!o) {
    fprintf(stderr, "%s: unknown setting '%s'\n", ctx->path, name);
    ctx->rc = -EINVAL;
    return 0;
  }
  if (hw_opt_set(o, ctx->base, value, ctx->path))
    ctx->rc = -EINVAL;
  return ctx->rc == 0;
}

void hw_options_help(const hw_option *table, size_t n, const char *usage) {
  printf("%s\n\noptions (command line > environment > config file > default):\n", usage);
  printf("  --config FILE\n      INI file with any of the settings below as key = value\n");
  for (size_t i = 0; i < n; i++) {
    const hw_option *o = &table[i];
    char flag[64];
    size_t k = 0;
    for (; o->name[k] && k < sizeof flag - 1; k++)
      flag[k] = o->name[k] == '_' ? '-' : o->name[k];
    flag[k] = 0;
    printf("  --%s%s\n      %s", flag,
           o->type == HW_OPT_STR ? " TEXT" : o->type == HW_OPT_U32 ? " N" : " [true|false]", o->help);
    if (o->def && *o->def)
      printf(" (default %s)", o->def);
    if (o->env)
      printf(" [env %s]", o->env);
    printf("\n");
  }
}

int hw_options_parse(const hw_option *table, size_t n, void *base, int argc, char **argv,
                     const char *usage, char **positional, int max_positional, int *npositional) {
  const char *config = NULL;
  *npositional = 0;
  for (size_t i = 0; i < n; i++)
    if (table[i].def && hw_opt_set(&table[i], base, table[i].def, "default"))
      return -EINVAL;
  /* The config file is found first so the command line can override it. */
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      hw_options_help(table, n, usage);
      return 1;
    }
    if (!strcmp(argv[i], "--config") && i + 1 < argc)
      config = argv[i + 1];
    else if (!strncmp(argv[i], "--config=", 9))
      config = argv[i] + 9;
  }
  if (config) {
    hw_ini_ctx ctx = {table, n, base, config, 0};
    int r = ini_parse(config, hw_ini_handler, &ctx);
    if (r < 0) {
      fprintf(stderr, "cannot read config file %s\n", config);
      return -EINVAL;
    }
    if (r > 0 && ctx.rc == 0) {
      fprintf(stderr, "%s:%d: syntax error\n", config, r);
      return -EINVAL;
    }
    if (ctx.rc)
      return ctx.rc;
  }
  for (size_t i = 0; i < n; i++) {
    const char *v = table[i].env ? getenv(table[i].env) : NULL;
    if (v && *v && hw_opt_set(&table[i], base, v, table[i].env))
      return -EINVAL;
  }
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
      if (*npositional >= max_positional) {
        fprintf(stderr, "unexpected argument '%s' (see --help)\n", a);
        return -EINVAL;
      }
      positional[(*npositional)++] = argv[i];
      continue;
    }
    const char *name = a + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    if (len == 6 && !strncmp(name, "config", 6)) {
      if (!eq)
        i++;
      continue;
    }
    const hw_option *o = hw_opt_find(table, n, name, len);
    if (!o) {
      fprintf(stderr, "unknown option '%s' (see --help)\n", a);
      return -EINVAL;
    }
    const char *value = eq ? eq + 1 : NULL;
    if (!value && o->type == HW_OPT_BOOL) {
      /* `--rules off` as well as `--rules=off` and a bare `--rules`. */
      static const char *const words[] = {"true", "false", "yes", "no", "on", "off", "1", "0"};
      value = "true";
      for (size_t w = 0; i + 1 < argc && w < HW_ARRAY_SIZE(words); w++)
        if (!strcmp(argv[i + 1], words[w])) {
          value = argv[++i];
          break;
        }
    }
    if (!value) {
      if (i + 1 >= argc) {
        fprintf(stderr, "option '%s' needs a value\n", a);
        return -EINVAL;
      }
      value = argv[++i];
    }
    if (hw_opt_set(o, base, value, "command line"))
      return -EINVAL;
  }
  return 0;
}

int hw_parse_hostport(const char *s, char *host, size_t hostlen, int *port) {
  const char *colon = strrchr(s, ':');
  if (!colon || colon == s || (size_t)(colon - s) >= hostlen)
    return -EINVAL;
  char *end;
  long p = strtol(colon + 1, &end, 10);
  if (*end || p <= 0 || p > 65535)
    return -EINVAL;
  memcpy(host, s, (size_t)(colon - s));
  host[colon - s] = '\0';
  *port = (int)p;
  return 0;
}
