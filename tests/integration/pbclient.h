/* A blocking protobuf client for tests: written apart from the simulator so the daemon is
 * checked against a second, independent implementation of the wire protocol. */
#ifndef HW_TEST_PBCLIENT_H
#define HW_TEST_PBCLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "haulwatch.pb-c.h"

typedef struct pbc {
  int fd;
  uint8_t buf[1 << 16]; /* received, not yet decoded */
  size_t len;
} pbc;

/* Connects to 127.0.0.1:port (5 s receive timeout); NULL on failure. */
pbc *pbc_connect(int port);
void pbc_close(pbc *c);
/* Sends raw bytes; 0 on success. */
int pbc_send_raw(pbc *c, const void *data, size_t len);
int pbc_send(pbc *c, const Haulwatch__V1__ClientMessage *m);
int pbc_hello(pbc *c, const char *terminal_id, const char *token);
/* Sends one Report with fixes; fixes[i] already filled. */
int pbc_report(pbc *c, Haulwatch__V1__Fix *const *fixes, size_t n);
/* Next ServerMessage (caller frees with haulwatch__v1__server_message__free_unpacked), NULL on
 * EOF/timeout/error. */
Haulwatch__V1__ServerMessage *pbc_recv(pbc *c, int timeout_ms);
/* Reads until an Ack with seq >= want; returns the highest ack seen, or -1. */
int64_t pbc_wait_ack(pbc *c, uint64_t want, int timeout_ms);
/* 1 when the server closed the connection (EOF) within timeout_ms, after any pending messages. */
int pbc_wait_eof(pbc *c, int timeout_ms);

#endif
