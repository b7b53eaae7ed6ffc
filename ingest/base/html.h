/* HTML text from the outside world (plates, enterprise names, region names): the one escaper
 * every page writer uses, for element text and quoted attribute values alike. Writes to a
 * stdio stream the caller owns; owns nothing. */
#ifndef HW_HTML_H
#define HW_HTML_H

#include <stdio.h>

#include "base/common.h"

/* Writes the NUL-terminated s to f as HTML text safe in element content and in a double- or
 * single-quoted attribute value: & < > " ' become character references; control characters
 * other than tab and newline become U+FFFD (so do ill-formed UTF-8 bytes), so the page stays
 * valid UTF-8 whatever the database held. A NULL s writes nothing. 0, or -EIO when f fails. */
int hw_html_put(FILE *f, const char *s) HW_MUST_CHECK;

#endif
