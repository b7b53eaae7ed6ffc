/* The simulator's active-safety device: what a terminal does when the centre sends 0x9208 —
 * connect to the attachment server it names, list the alarm's files (a photo and a clip),
 * announce, send and finish each, and resend whatever the 0x9212 answer says is missing (notes:
 * docs/attachments.md). A device that "loses a piece" leaves one piece of each file out of its
 * first pass, so the 0x9212 path is taken every time. */
#ifndef HW_SIM_ATTACH_H
#define HW_SIM_ATTACH_H

#include "attach/attach_codec.h"

typedef struct hw_sim_attach_result {
  unsigned files_complete; /* answered 0x9212 result 0 */
  unsigned resends;        /* ranges the server asked for again */
} hw_sim_attach_result;

/* The photo and the clip a simulated device uploads: sizes in bytes. */
#define HW_SIM_ATTACH_PHOTO 20000
#define HW_SIM_ATTACH_CLIP 60000
#define HW_SIM_ATTACH_PIECE 8192

/* Byte `at` of simulated file number `file` (0 photo, 1 clip): a pattern, so a test can check
 * what was stored; the photo begins with a real JPEG (sim_photo.c), so the page can show it. */
uint8_t hw_sim_attach_byte(int file, uint32_t at);

/* The upload itself, blocking (timeouts of 10 s per answer), as terminal `phone` (12 or 20
 * digits). 0 when every file was answered complete; negative otherwise (-ETIMEDOUT, -EPROTO for
 * a refusal or a broken answer, a connect error). */
int hw_sim_attach_upload(const hw_attach_request *r, const char *phone, int lose_piece,
                         hw_sim_attach_result *out) HW_MUST_CHECK;

/* The same on a detached thread of its own (the simulator's loop goes on); the outcome is
 * logged. 0, or -errno when the thread could not start. */
int hw_sim_attach_spawn(const hw_attach_request *r, const char *phone, int lose_piece)
    HW_MUST_CHECK;

/* What the simulator still owes the attachment server, for a run that must not end (and take
 * the trucks' JT/T 808 sessions, which the server requires online, with it) in the middle of an
 * upload: alarms announcing attachments that were sent (hw_sim_attach_announced, on the
 * simulator's loop), 0x9208 requests received (hw_sim_attach_requested, loop) and uploads on
 * their threads (counted by hw_sim_attach_spawn). hw_sim_attach_busy: 1 while an upload runs,
 * 2 while no upload runs but fewer requests came than alarms went (the 0x9208 follows an ack,
 * or never comes from a daemon without an attachment listener: the caller bounds that wait),
 * 0 otherwise. A resent alarm counts again: that only costs the bounded wait. */
void hw_sim_attach_announced(void);
void hw_sim_attach_requested(void);
int hw_sim_attach_busy(void);

#endif
