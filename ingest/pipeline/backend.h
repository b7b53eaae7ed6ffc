/* What a protocol session needs from the rest of the daemon on its loop: the terminal registry,
 * authentication, and the pipeline its fixes go to. serve creates and owns each of them (one set
 * per loop), fills this struct and gives the server a pointer to it; a session reaches it with
 * hw_server_backend(). Every member is borrowed and outlives the server. */
#ifndef HW_BACKEND_H
#define HW_BACKEND_H

#include "pipeline/pipeline.h"
#include "registry/auth.h"
#include "registry/terminal.h"

struct hw_jt809_centre;
struct hw_attach_server;

typedef struct hw_backend {
  hw_registry *registry; /* every terminal's record; sinks and rules hold pointers into it */
  hw_auth *auth;
  hw_pipeline *pipeline;
  /* PostgreSQL conninfo for work done off the loop on short-lived connections (JT/T 809 logins
   * and link rows); NULL where no such work happens (the fuzz fake). */
  const char *pg_conninfo;
  /* JT/T 809 requests and reports (jt809/jt809_centre.h), which also carries the slave links'
   * settings; NULL: no slave links, requests or reports (the fuzz fake, no --jt809-listen). */
  struct hw_jt809_centre *jt809;
  /* The attachment listener, for the address 0x9208 tells a terminal (attach/attach_server.h);
   * NULL without --attachment-listen. */
  struct hw_attach_server *attach;
} hw_backend;

#endif
