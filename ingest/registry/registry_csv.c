/* See registry_csv.h. Moved out of registry_cmd.c, so that it can be fuzzed without a database,
 * then below the front ends so that the web API imports with the same checks. */
#include "registry/registry_csv.h"

#include "base/text.h"

#include <csv.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/fix.h"
#include "base/text.h"

static const char *const hw_col_names[HW_NCOLS] = {
    "plate", "plate_colour", "vin", "class", "terminal_id",
    "region", "enterprise", "permit_no", "permit_expires", "status",
    "axles", "total_mass_kg", "curb_mass_kg", "rated_load_kg"};
/* Columns every file must have; the others may be left out and are then empty (NULL). */
static const int hw_col_required[HW_NCOLS] = {1, 1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0};

/* Byte limits follow the vehicles table (schema/002_registry.sql) and hw_vehicle. */
static const size_t hw_col_max[HW_NCOLS] = {32, 16, 17, 64, 32, 6, 128, 64, 10, 16, 16, 16, 16, 16};

/* The numeric columns' ranges, those of schema/014_vehicle_mass.sql: wide enough for every
 * road vehicle, narrow enough to catch a digit too many; the audit judges what lies between. */
static const struct {
  int col;
  long lo, hi;
} hw_num_ranges[] = {
    {HW_COL_AXLES, 2, 12},
    {HW_COL_TOTAL_MASS, 100, 200000},
    {HW_COL_CURB_MASS, 100, 200000},
    {HW_COL_RATED_LOAD, 0, 200000},
};

int hw_registry_num_range(int col, long *lo, long *hi) {
  for (size_t i = 0; i < HW_ARRAY_SIZE(hw_num_ranges); i++)
    if (hw_num_ranges[i].col == col) {
      *lo = hw_num_ranges[i].lo;
      *hi = hw_num_ranges[i].hi;
      return 1;
    }
  *lo = *hi = 0;
  return 0;
}

static void hw_import_vreport(hw_import *im, unsigned line, const char *fmt, va_list ap) {
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  if (im->report)
    im->report(im->report_arg, line, msg);
  else if (line)
    fprintf(stderr, "%s:%u: %s\n", im->path, line, msg);
  else
    fprintf(stderr, "%s: %s\n", im->path, msg);
}

void hw_import_report(hw_import *im, unsigned line, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  hw_import_vreport(im, line, fmt, ap);
  va_end(ap);
}

static void hw_bad(hw_import *im, unsigned line, const char *fmt, ...) HW_PRINTF(3, 4);
static void hw_bad(hw_import *im, unsigned line, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  hw_import_vreport(im, line, fmt, ap);
  va_end(ap);
  im->row_bad = 1;
}

/* A spreadsheet saved as GBK fails hw_utf8_valid (base/text.h), with a message saying so,
 * rather than arriving as mojibake in the database. */

static int hw_has_control(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f)
      return 1;
  return 0;
}

static int hw_all_digits(const char *s, size_t len) {
  if (strlen(s) != len)
    return 0;
  for (size_t i = 0; i < len; i++)
    if (s[i] < '0' || s[i] > '9')
      return 0;
  return 1;
}

/* YYYY-MM-DD naming a real day. */
static int hw_date_valid(const char *s) {
  if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
    return 0;
  for (int i = 0; i < 10; i++)
    if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
      return 0;
  int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
  static const int days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (y < 1900 || y > 2999 || m < 1 || m > 12 || d < 1 || d > days[m - 1])
    return 0;
  if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
    return 0;
  return 1;
}

/* Plate colour as the code, or a name; -1 when neither. */
static int hw_colour_parse(const char *s) {
  static const struct {
    const char *name;
    int code;
  } names[] = {{"blue", 1},  {"蓝", 1}, {"蓝色", 1}, {"yellow", 2}, {"黄", 2},  {"黄色", 2},
               {"black", 3}, {"黑", 3}, {"黑色", 3}, {"white", 4},  {"白", 4},  {"白色", 4},
               {"green", 5}, {"绿", 5}, {"绿色", 5}, {"other", 9},  {"其他", 9}};
  if (*s && strlen(s) <= 3 && strspn(s, "0123456789") == strlen(s)) {
    int v = atoi(s);
    return v <= 255 ? v : -1;
  }
  for (size_t i = 0; i < HW_ARRAY_SIZE(names); i++)
    if (!strcasecmp(s, names[i].name))
      return names[i].code;
  return -1;
}

/* The class code for a code or a name (Chinese as is, English case-insensitive); NULL if none.
 * The result points into im->classes. */
static const char *hw_class_find(const hw_import *im, const char *s) {
  int n = PQntuples(im->classes);
  for (int i = 0; i < n; i++)
    if (!strcmp(s, PQgetvalue(im->classes, i, 0)) || !strcmp(s, PQgetvalue(im->classes, i, 1)) ||
        !strcasecmp(s, PQgetvalue(im->classes, i, 2)))
      return PQgetvalue(im->classes, i, 0);
  return NULL;
}

static int hw_vin_valid(char *vin) {
  if (strlen(vin) != 17)
    return 0;
  for (char *p = vin; *p; p++) {
    if (*p >= 'a' && *p <= 'z')
      *p = (char)(*p - 'a' + 'A'); /* lower case is a typing habit, not a different VIN */
    if (!((*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'Z')) || *p == 'I' || *p == 'O' ||
        *p == 'Q')
      return 0;
  }
  return 1;
}

/* Records key as used on `line`; returns the earlier line when it was already used, 0 when new,
 * -ENOMEM. */
static long hw_seen_add(hw_seen **head, const char *key, unsigned line) {
  hw_seen *s = NULL;
  HASH_FIND_STR(*head, key, s);
  if (s)
    return s->line;
  size_t len = strlen(key);
  s = malloc(sizeof *s + len + 1);
  if (!s)
    return -ENOMEM;
  s->line = line;
  memcpy(s->key, key, len + 1);
  HASH_ADD_STR(*head, key, s);
  return 0;
}

static void hw_seen_free(hw_seen **head) {
  hw_seen *s, *tmp;
  HASH_ITER(hh, *head, s, tmp) {
    HASH_DEL(*head, s);
    free(s);
  }
}

static void hw_vrow_free(hw_vrow *r) {
  for (int c = 0; c < HW_NCOLS; c++)
    free(r->f[c]);
}

static void hw_header(hw_import *im) {
  for (int c = 0; c < HW_NCOLS; c++)
    im->col_of[c] = -1;
  for (size_t i = 0; i < im->nfields; i++) {
    char *field = im->fields[i];
    if (i == 0 && !strncmp(field, "\xef\xbb\xbf", 3)) /* Excel writes a byte-order mark */
      memmove(field, field + 3, strlen(field + 3) + 1);
    for (char *p = field; *p; p++)
      if (*p >= 'A' && *p <= 'Z')
        *p = (char)(*p - 'A' + 'a');
    const char *name = field;
    if (!strcmp(name, "plate_color") || !strcmp(name, "colour") || !strcmp(name, "color"))
      name = "plate_colour";
    int c = 0;
    while (c < HW_NCOLS && strcmp(name, hw_col_names[c]))
      c++;
    if (c == HW_NCOLS) {
      hw_bad(im, im->rec_line, "unknown column '%s' in the header", name);
      im->fatal = 1;
    } else if (im->col_of[c] >= 0) {
      hw_bad(im, im->rec_line, "column '%s' appears twice in the header", name);
      im->fatal = 1;
    } else {
      im->col_of[c] = (int)i;
    }
  }
  for (int c = 0; c < HW_NCOLS; c++)
    if (hw_col_required[c] && im->col_of[c] < 0) {
      hw_bad(im, im->rec_line, "the header has no '%s' column", hw_col_names[c]);
      im->fatal = 1;
    }
  if (im->fatal)
    hw_import_report(im, 0, "the first row must name the columns: plate, plate_colour, vin, "
                            "class, terminal_id, region, enterprise, permit_no, permit_expires, "
                            "status (and optionally axles, total_mass_kg, curb_mass_kg, "
                            "rated_load_kg)");
  im->ncols = im->nfields;
}

/* Checks one data row; a good one is kept in im->rows, a bad one is reported and dropped. */
static void hw_row(hw_import *im) {
  unsigned line = im->rec_line;
  hw_vrow r = {.line = line};
  im->row_bad = 0;
  if (im->nfields != im->ncols) {
    hw_bad(im, line, "%zu fields, but the header has %zu", im->nfields, im->ncols);
    im->nbad++;
    return;
  }
  for (int c = 0; c < HW_NCOLS; c++) {
    if (im->col_of[c] < 0 || im->fields[im->col_of[c]][0] == '\0')
      continue;
    r.f[c] = im->fields[im->col_of[c]];
    im->fields[im->col_of[c]] = NULL; /* ownership moves to the row */
  }
  for (int c = 0; c < HW_NCOLS; c++) {
    if (!r.f[c]) {
      if (hw_col_required[c])
        hw_bad(im, line, "%s is empty", hw_col_names[c]);
      continue;
    }
    if (!hw_utf8_valid(r.f[c], strlen(r.f[c]))) {
      hw_bad(im, line, "%s is not valid UTF-8 (save the file as UTF-8)", hw_col_names[c]);
      free(r.f[c]);
      r.f[c] = NULL;
    } else if (hw_has_control(r.f[c])) {
      hw_bad(im, line, "%s contains a control character or line break", hw_col_names[c]);
      free(r.f[c]);
      r.f[c] = NULL;
    } else if (strlen(r.f[c]) > hw_col_max[c]) {
      hw_bad(im, line, "%s '%s' is longer than %zu bytes", hw_col_names[c], r.f[c], hw_col_max[c]);
      free(r.f[c]);
      r.f[c] = NULL;
    }
  }
  const char *plate = r.f[HW_COL_PLATE] ? r.f[HW_COL_PLATE] : "?";
  int colour = -1;
  if (r.f[HW_COL_COLOUR] && (colour = hw_colour_parse(r.f[HW_COL_COLOUR])) < 0)
    hw_bad(im, line, "plate_colour '%s' is not a colour code (0-255) or a colour name",
           r.f[HW_COL_COLOUR]);
  snprintf(r.colour, sizeof r.colour, "%d", colour < 0 ? 0 : colour);
  if (r.f[HW_COL_VIN] && !hw_vin_valid(r.f[HW_COL_VIN]))
    hw_bad(im, line, "vin '%s' is not 17 characters of [A-HJ-NPR-Z0-9]", r.f[HW_COL_VIN]);
  if (r.f[HW_COL_CLASS]) {
    const char *code = hw_class_find(im, r.f[HW_COL_CLASS]);
    char *copy = code ? strdup(code) : NULL;
    if (!code)
      hw_bad(im, line, "class '%s' does not exist (see table vehicle_classes)", r.f[HW_COL_CLASS]);
    else if (!copy)
      im->fatal = 1;
    free(r.f[HW_COL_CLASS]);
    r.f[HW_COL_CLASS] = copy;
  }
  if (r.f[HW_COL_TERMINAL] &&
      hw_terminal_id_check(r.f[HW_COL_TERMINAL], strlen(r.f[HW_COL_TERMINAL])) != 0)
    hw_bad(im, line, "terminal_id '%s' is not 1-32 characters of [0-9A-Za-z_-]",
           r.f[HW_COL_TERMINAL]);
  if (r.f[HW_COL_REGION] && !hw_all_digits(r.f[HW_COL_REGION], 6))
    hw_bad(im, line, "region '%s' is not a six-digit GB/T 2260 code", r.f[HW_COL_REGION]);
  if (r.f[HW_COL_PERMIT_EXPIRES] && !hw_date_valid(r.f[HW_COL_PERMIT_EXPIRES]))
    hw_bad(im, line, "permit_expires '%s' is not a date YYYY-MM-DD", r.f[HW_COL_PERMIT_EXPIRES]);
  if (r.f[HW_COL_STATUS]) {
    char *s = r.f[HW_COL_STATUS];
    for (char *p = s; *p; p++)
      if (*p >= 'A' && *p <= 'Z')
        *p = (char)(*p - 'A' + 'a');
    if (strcmp(s, "active") && strcmp(s, "scrapped") && strcmp(s, "deregistered"))
      hw_bad(im, line, "status '%s' is not active, scrapped or deregistered", s);
  }
  for (size_t i = 0; i < HW_ARRAY_SIZE(hw_num_ranges); i++) {
    int c = hw_num_ranges[i].col;
    const char *v = r.f[c];
    /* Whole numbers only, written plainly: "18t", "1.8e4", "+5" or "18 000" is a typing slip
     * that a silent conversion would turn into a wrong figure. */
    if (v && (strspn(v, "0123456789") != strlen(v) || strlen(v) > 7 ||
              atol(v) < hw_num_ranges[i].lo || atol(v) > hw_num_ranges[i].hi))
      hw_bad(im, line, "%s '%s' is not a whole number from %ld to %ld%s", hw_col_names[c], v,
             hw_num_ranges[i].lo, hw_num_ranges[i].hi, c == HW_COL_AXLES ? "" : " (kg)");
  }
  /* Duplicates are checked only on values that are themselves valid. */
  if (r.f[HW_COL_PLATE] && colour >= 0) {
    char key[64]; /* plate <= 32 bytes, separator, colour <= 3 digits */
    snprintf(key, sizeof key, "%s\x1f%d", plate, colour);
    long prev = hw_seen_add(&im->plates, key, line);
    if (prev > 0)
      hw_bad(im, line, "plate %s (colour %d) is also on line %ld", plate, colour, prev);
    else if (prev < 0)
      im->fatal = 1;
  }
  if (r.f[HW_COL_TERMINAL]) {
    long prev = hw_seen_add(&im->terminals, r.f[HW_COL_TERMINAL], line);
    if (prev > 0)
      hw_bad(im, line, "terminal %s is also on line %ld", r.f[HW_COL_TERMINAL], prev);
    else if (prev < 0)
      im->fatal = 1;
  }
  if (im->row_bad || im->fatal) {
    im->nbad += im->row_bad;
    hw_vrow_free(&r);
    return;
  }
  if (im->nrows == im->rcap) {
    size_t cap = im->rcap ? im->rcap * 2 : 256;
    hw_vrow *rows = realloc(im->rows, cap * sizeof *rows);
    if (!rows) {
      im->fatal = 1;
      hw_vrow_free(&r);
      return;
    }
    im->rows = rows, im->rcap = cap;
  }
  im->rows[im->nrows++] = r;
}

static void hw_fields_clear(hw_import *im) {
  for (size_t i = 0; i < im->nfields; i++)
    free(im->fields[i]);
  im->nfields = 0;
}

static void hw_csv_field(void *data, size_t len, void *arg) {
  hw_import *im = arg;
  if (im->fatal)
    return;
  im->after_cr = 0;
  if (im->nfields == 0)
    im->rec_line = im->line;
  /* Line breaks inside quoted fields still count, so later rows keep their true line numbers. */
  for (const char *p = data; p && (p = memchr(p, '\n', len - (size_t)(p - (const char *)data)));
       p++)
    im->line++;
  if (im->nfields == im->fcap) {
    size_t cap = im->fcap ? im->fcap * 2 : 16;
    char **f = realloc(im->fields, cap * sizeof *f);
    if (!f) {
      im->fatal = 1;
      return;
    }
    im->fields = f, im->fcap = cap;
  }
  char *copy = malloc(len + 1);
  if (!copy) {
    im->fatal = 1;
    return;
  }
  if (len)
    memcpy(copy, data, len);
  copy[len] = '\0';
  if (strlen(copy) != len)
    copy[0] = '\x01'; /* an embedded NUL: make it fail the control-character check */
  im->fields[im->nfields++] = copy;
}

/* With CSV_REPALL_NL every unquoted line break arrives here, as the end of a record or alone. */
static void hw_csv_record(int term, void *arg) {
  hw_import *im = arg;
  int blank = im->nfields == 0 || (im->nfields == 1 && im->fields[0][0] == '\0');
  if (!im->fatal && !blank) {
    if (im->ncols == 0)
      hw_header(im);
    else
      hw_row(im);
  }
  hw_fields_clear(im);
  /* A line ends at LF, CRLF or a lone CR (old Mac files; libcsv ends records there too): the LF
   * of a CRLF arrives alone, right after its CR, and is not counted again. */
  if (term == '\r' || (term == '\n' && !im->after_cr))
    im->line++;
  im->after_cr = term == '\r';
}

int hw_registry_csv_read(hw_import *im, FILE *f) {
  struct csv_parser p;
  char buf[65536];
  size_t n;
  if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_REPALL_NL) != 0)
    return -ENOMEM;
  im->line = 1;
  while (!im->fatal && (n = fread(buf, 1, sizeof buf, f)) > 0) {
    if (csv_parse(&p, buf, n, hw_csv_field, hw_csv_record, im) != n) {
      hw_import_report(im, im->line, "not valid CSV: %s (a quote inside an unquoted field, or a "
                       "quote not followed by a comma?)", csv_strerror(csv_error(&p)));
      im->fatal = 1;
    }
  }
  if (!im->fatal && ferror(f)) {
    hw_import_report(im, 0, "read error");
    im->fatal = 1;
  }
  if (!im->fatal && csv_fini(&p, hw_csv_field, hw_csv_record, im) != 0) {
    hw_import_report(im, im->line, "not valid CSV: %s (a quoted field from here on is never "
                     "closed)", csv_strerror(csv_error(&p)));
    im->fatal = 1;
  }
  csv_free(&p);
  hw_fields_clear(im);
  return 0;
}

void hw_registry_csv_free(hw_import *im) {
  for (size_t i = 0; i < im->nrows; i++)
    hw_vrow_free(&im->rows[i]);
  free(im->rows);
  hw_fields_clear(im);
  free(im->fields);
  hw_seen_free(&im->plates);
  hw_seen_free(&im->terminals);
}

cJSON *hw_registry_rows_json(const hw_import *im) {
  static const char *const names[HW_NCOLS] = {
      "plate", "plate_colour", "vin", "class_code", "terminal_id",
      "region", "enterprise", "permit_no", "permit_expires", "status",
      "axles", "total_mass_kg", "curb_mass_kg", "rated_load_kg"};
  cJSON *arr = cJSON_CreateArray();
  for (size_t i = 0; arr && i < im->nrows; i++) {
    const hw_vrow *r = &im->rows[i];
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddItemToArray(arr, o) || !cJSON_AddNumberToObject(o, "line", r->line))
      goto fail;
    for (int c = 0; c < HW_NCOLS; c++) {
      const char *v = c == HW_COL_COLOUR ? r->colour : r->f[c];
      if (!(v ? cJSON_AddStringToObject(o, names[c], v) : cJSON_AddNullToObject(o, names[c])))
        goto fail;
    }
  }
  return arr;
fail:
  cJSON_Delete(arr);
  return NULL;
}
