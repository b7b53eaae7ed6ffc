/* Test double for the session fuzz targets: what a protocol session (ingest/protobuf/pb_session.c,
 * ingest/jt808/jt808_session.c) calls below and beside it, without a network or a database.
 * Linked in place of net/server.c, net/session.c, pipeline/pipeline.c and registry/auth.c
 * (link-time substitution: production code is unchanged). Only the real terminal registry
 * (registry/terminal.c) and the codecs are used.
 *
 * Beyond standing in, the double checks the session's side of each contract and aborts on a
 * breach: no fix submitted before authentication or after close, fixes within the bounds every
 * protocol promises the sinks, no authentication callback owed to a freed session (on_close must
 * cancel it), and every reply written is well formed (checked by the target's write hook). */
#ifndef HW_FAKE_BACKEND_H
#define HW_FAKE_BACKEND_H

#include "net/session.h"

#define HW_FAKE_CHECK(c) \
  do { \
    if (!(c)) \
      abort(); \
  } while (0)

/* How the fake authentication answers: 0 accept, 1 refuse (-EACCES; a JT/T 808 registration:
 * HW_AUTH_REG_TERMINAL_TAKEN, the takeover refusal), 2 unavailable (-EAGAIN). */
enum { HW_FAKE_AUTH_OK = 0, HW_FAKE_AUTH_REFUSE, HW_FAKE_AUTH_DOWN };

/* Set by a target before its first input: what hw_server_backend() gives besides the fakes
 * (NULL unless set), a hook run first in every hw_fake_turn (a target's own pending work), and
 * whether hw_pipeline_bind takes a terminal no session owns (JT/T 809 vehicles). */
extern const char *hw_fake_pg_conninfo;
extern struct hw_jt809_centre *hw_fake_jt809;
extern struct hw_attach_server *hw_fake_attach; /* hw_server_backend()->attach */
extern void (*hw_fake_turn_hook)(void);
extern int hw_fake_sessionless_bind;

/* The loop sessions are on (initialised at the first call); never run. */
uv_loop_t *hw_fake_loop(void);

/* Starts one input: a fresh registry and a new session of proto (owned by the double). */
hw_session *hw_fake_begin(const hw_proto *proto, int auth_mode,
                          void (*on_write)(hw_session *s, const uint8_t *data, size_t len));
/* Hands bytes to the session as the server does; closes it when on_data fails. Returns 1 while
 * the session is open. */
int hw_fake_feed(hw_session *s, const uint8_t *data, size_t len);
/* Runs the loop once: answers every pending authentication, then delivers the acks of every
 * fix submitted (durable) to the session if it still owns its terminal. */
void hw_fake_turn(hw_session *s);
/* Ends the input: the server closes the session with reason (0: the peer hung up), frees it
 * and everything else; checks nothing is left pending. */
void hw_fake_end(hw_session *s, int reason);

/* One libFuzzer input for a session target: data[0] picks how authentication answers (bits 0-1)
 * and why the server closes at the end (bits 2-3), data[1] the size of each read (0: all at
 * once); the rest is fed to a new session of proto in reads of that size, the loop turning
 * after each. */
void hw_fake_run(const hw_proto *proto, const uint8_t *data, size_t size,
                 void (*on_write)(hw_session *s, const uint8_t *data, size_t len));

#endif
