/* The simulator's attachment uploads (sim_attach.h): blocking sockets on a thread per upload,
 * frames built with the codecs. */
#include "load/sim_attach.h"
#include "load/sim_photo.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "base/log.h"
#include "jt808/jt808_header.h"
#include "jt808/jt808_msg.h"

uint8_t hw_sim_attach_byte(int file, uint32_t at) {
  /* The photo opens with a real JPEG, so that a browser shows it; the rest is the pattern. */
  if (file == 0 && at < hw_sim_photo_jpeg_len)
    return hw_sim_photo_jpeg[at];
  return (uint8_t)(at * 31 + (uint32_t)file * 101 + at / 257);
}

typedef struct hw_up {
  int fd;
  hw_jt808_header self;
  uint16_t flow;
  hw_jt808_deframer df;
  /* the last frame received */
  uint16_t msg_id;
  uint8_t body[HW_JT808_BODY_MAX];
  size_t len;
  int got;
} hw_up;

static int hw_up_write(hw_up *u, const uint8_t *p, size_t n) {
  while (n) {
    ssize_t w = send(u->fd, p, n, MSG_NOSIGNAL);
    if (w <= 0)
      return -EIO;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int hw_up_send(hw_up *u, uint16_t id, const uint8_t *body, size_t len, uint16_t *flow) {
  uint8_t out[HW_JT808_WIRE_MAX];
  size_t n;
  if (flow)
    *flow = u->flow;
  int rc = hw_jt808_build(out, sizeof out, &n, &u->self, id, u->flow++, body, len);
  return rc ? rc : hw_up_write(u, out, n);
}

static int hw_up_frame(void *arg, hw_jt808_frame_event ev, const uint8_t *data, size_t len) {
  hw_up *u = arg;
  hw_jt808_header h;
  const uint8_t *body;
  if (ev != HW_JT808_FRAME || hw_jt808_header_parse(data, len, &h, &body))
    return -EPROTO;
  if (u->got)
    return 0; /* the server answers each message once; anything more is not ours to wait for */
  u->msg_id = h.msg_id;
  memcpy(u->body, body, h.body_len);
  u->len = h.body_len;
  u->got = 1;
  return 0;
}

/* The next frame from the server. */
static int hw_up_recv(hw_up *u) {
  uint8_t buf[4096];
  u->got = 0;
  while (!u->got) {
    ssize_t n = recv(u->fd, buf, sizeof buf, 0);
    if (n <= 0)
      return n == 0 ? -ECONNRESET : -ETIMEDOUT;
    int rc = hw_jt808_deframer_feed(&u->df, buf, (size_t)n, hw_up_frame, u);
    if (rc)
      return rc;
  }
  return 0;
}

/* Sends a message and waits for the 0x8001 answering it: its result. */
static int hw_up_ask(hw_up *u, uint16_t id, const uint8_t *body, size_t len) {
  uint16_t flow;
  int rc = hw_up_send(u, id, body, len, &flow);
  if (rc)
    return rc;
  if ((rc = hw_up_recv(u)))
    return rc;
  if (u->msg_id != HW_JT808_MSG_PLATFORM_RESPONSE || u->len < 5 ||
      (u->body[0] << 8 | u->body[1]) != flow || (u->body[2] << 8 | u->body[3]) != id)
    return -EPROTO;
  return u->body[4];
}

static int hw_up_piece(hw_up *u, int file, const char *name, uint32_t off, uint32_t len) {
  uint8_t *b = malloc(HW_ATTACH_DATA_HEADER + len);
  if (!b)
    return -ENOMEM;
  int rc = hw_attach_encode_data_header((const uint8_t *)name, strlen(name), off, len, b);
  for (uint32_t i = 0; i < len; i++)
    b[HW_ATTACH_DATA_HEADER + i] = hw_sim_attach_byte(file, off + i);
  if (!rc)
    rc = hw_up_write(u, b, HW_ATTACH_DATA_HEADER + len);
  free(b);
  return rc;
}

static int hw_up_connect(const hw_attach_request *r) {
  char port[8];
  snprintf(port, sizeof port, "%u", r->tcp_port);
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
  if (getaddrinfo(r->server_ip, port, &hints, &ai))
    return -EHOSTUNREACH;
  int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen)) {
    close(fd);
    fd = -ECONNREFUSED;
  }
  freeaddrinfo(ai);
  if (fd < 0)
    return fd;
  struct timeval tv = {.tv_sec = 10};
  (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

int hw_sim_attach_upload(const hw_attach_request *r, const char *phone, int lose_piece,
                         hw_sim_attach_result *out) {
  memset(out, 0, sizeof *out);
  hw_up *u = calloc(1, sizeof *u);
  if (!u)
    return -ENOMEM;
  u->fd = -1;
  int rc = hw_jt808_header_init(&u->self, strlen(phone) > 12, 1, phone);
  if (rc)
    goto out;
  hw_jt808_deframer_init(&u->df);
  if ((u->fd = hw_up_connect(r)) < 0) {
    rc = u->fd;
    goto out;
  }
  char names[2][64];
  uint32_t sizes[2] = {HW_SIM_ATTACH_PHOTO, HW_SIM_ATTACH_CLIP};
  /* 苏标 naming: type_channel_alarmtype_index_uniqueno.ext */
  snprintf(names[0], sizeof names[0], "00_65_6502_0_%.32s.jpg", (const char *)r->unique);
  snprintf(names[1], sizeof names[1], "02_65_6502_1_%.32s.mp4", (const char *)r->unique);
  hw_attach_list *l = calloc(1, sizeof *l);
  if (!l) {
    rc = -ENOMEM;
    goto out;
  }
  memcpy(l->terminal, r->alarm.terminal, 7);
  l->alarm = r->alarm;
  memcpy(l->unique, r->unique, HW_ATTACH_UNIQUE_LEN);
  l->count = 2;
  for (int i = 0; i < 2; i++)
    l->items[i] = (hw_attach_item){(const uint8_t *)names[i], (uint8_t)strlen(names[i]), sizes[i]};
  uint8_t body[HW_JT808_BODY_MAX];
  size_t len;
  rc = hw_attach_encode_list(l, body, sizeof body, &len);
  free(l);
  if (rc || (rc = hw_up_ask(u, HW_ATTACH_MSG_LIST, body, len)) != 0)
    goto refused;
  for (int i = 0; i < 2; i++) {
    hw_attach_file f = {(const uint8_t *)names[i], (uint8_t)strlen(names[i]),
                        i == 0 ? HW_ATTACH_PICTURE : HW_ATTACH_VIDEO, sizes[i]};
    if ((rc = hw_attach_encode_file(&f, body, sizeof body, &len)) ||
        (rc = hw_up_ask(u, HW_ATTACH_MSG_FILE_INFO, body, len)) != 0)
      goto refused;
    for (uint32_t off = 0; off < sizes[i]; off += HW_SIM_ATTACH_PIECE) {
      uint32_t n = sizes[i] - off < HW_SIM_ATTACH_PIECE ? sizes[i] - off : HW_SIM_ATTACH_PIECE;
      if (lose_piece && off == HW_SIM_ATTACH_PIECE)
        continue; /* the second piece never arrives */
      if ((rc = hw_up_piece(u, i, names[i], off, n)))
        goto out;
    }
    /* 0x1212 until the answer says complete; each round resends what it lists. */
    for (int round = 0;; round++) {
      if (round > 8) {
        rc = -EPROTO;
        goto out;
      }
      if ((rc = hw_up_send(u, HW_ATTACH_MSG_FILE_DONE, body, len, NULL)) || (rc = hw_up_recv(u)))
        goto out;
      hw_attach_answer *a = malloc(sizeof *a);
      if (!a) {
        rc = -ENOMEM;
        goto out;
      }
      if (u->msg_id != HW_ATTACH_MSG_DONE_ANSWER || hw_attach_parse_answer(u->body, u->len, a) ||
          a->file.name_len != f.name_len || memcmp(a->file.name, names[i], f.name_len)) {
        free(a);
        rc = -EPROTO;
        goto out;
      }
      if (a->result == 0) {
        free(a);
        out->files_complete++;
        break;
      }
      for (unsigned k = 0; k < a->count && !rc; k++) {
        out->resends++;
        rc = hw_up_piece(u, i, names[i], a->ranges[k].offset, a->ranges[k].length);
      }
      free(a);
      if (rc)
        goto out;
    }
  }
  rc = 0;
  goto out;
refused:
  if (rc > 0)
    rc = -EPROTO;
out:
  if (u->fd >= 0)
    close(u->fd);
  free(u);
  return rc;
}

static _Atomic unsigned hw_up_running;     /* upload threads not yet returned */
static unsigned hw_up_announced, hw_up_requested; /* the simulator's loop only */

void hw_sim_attach_announced(void) { hw_up_announced++; }
void hw_sim_attach_requested(void) { hw_up_requested++; }
int hw_sim_attach_busy(void) {
  if (atomic_load(&hw_up_running))
    return 1;
  return hw_up_requested < hw_up_announced ? 2 : 0;
}

typedef struct hw_up_job {
  hw_attach_request r;
  char phone[HW_JT808_PHONE_MAX + 1];
  int lose;
} hw_up_job;

static void *hw_up_thread(void *arg) {
  hw_up_job *j = arg;
  hw_sim_attach_result res;
  char alarm[HW_ATTACH_ALARM_TEXT];
  if (hw_attach_alarm_no_text(&j->r.alarm, alarm, sizeof alarm))
    snprintf(alarm, sizeof alarm, "?");
  int rc = hw_sim_attach_upload(&j->r, j->phone, j->lose, &res);
  if (rc)
    hw_warn("sim-attach", j->phone, "alarm=%s upload to %s:%u failed: %s", alarm, j->r.server_ip,
            j->r.tcp_port, strerror(-rc));
  else
    hw_info("sim-attach", j->phone, "alarm=%s uploaded %u files (%u ranges resent)", alarm,
            res.files_complete, res.resends);
  free(j);
  atomic_fetch_sub(&hw_up_running, 1);
  return NULL;
}

int hw_sim_attach_spawn(const hw_attach_request *r, const char *phone, int lose_piece) {
  hw_up_job *j = malloc(sizeof *j);
  if (!j)
    return -ENOMEM;
  j->r = *r;
  snprintf(j->phone, sizeof j->phone, "%s", phone);
  j->lose = lose_piece;
  pthread_t t;
  pthread_attr_t at;
  pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  atomic_fetch_add(&hw_up_running, 1);
  int rc = pthread_create(&t, &at, hw_up_thread, j);
  pthread_attr_destroy(&at);
  if (rc) {
    atomic_fetch_sub(&hw_up_running, 1);
    free(j);
    return -rc;
  }
  return 0;
}
