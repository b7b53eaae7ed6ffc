/* JT/T 809 slave link, what the centre makes of each frame the platform sends on it: a pure
 * state machine (no I/O, no clock), so that jt809_slave.c only acts on its answers and the fuzz
 * target can drive it with any bytes.
 *
 * States: LOGIN (0x9001 sent, 0x9002 awaited) and UP; frames arriving in any other state are not
 * fed. hw_jt809_slave_step opens a frame as the deframer delivers it (plain only, the
 * platform's edition, its access code) and says:
 *   HW_J9S_UP     0x9002 result 0 in LOGIN: the link is up
 *   HW_J9S_ALIVE  0x9006 in UP: the keep-alive was answered
 *   HW_J9S_NOTE   0x1007 (the platform's main link broke): *code is its code byte (0xff none)
 *   HW_J9S_IGNORE anything else well formed in UP (up data belongs on the main link)
 *   HW_J9S_END    the link must end: *why says why (static text): a refused 0x9002, an answer
 *                 out of turn, an impossible or encrypted header, another access code, the
 *                 platform's 0x9004 or 0x1008. */
#ifndef HW_JT809_SLAVE_SM_H
#define HW_JT809_SLAVE_SM_H

#include "jt809/jt809_header.h"

enum { HW_J9S_SM_LOGIN = 1, HW_J9S_SM_UP = 2 };
typedef enum { HW_J9S_UP = 0, HW_J9S_ALIVE, HW_J9S_NOTE, HW_J9S_IGNORE, HW_J9S_END } hw_j9s_act;

/* frame[0..len): as the deframer delivers it (it may be modified in place). */
hw_j9s_act hw_jt809_slave_step(int state, int is_2019, uint32_t center, uint8_t *frame,
                               size_t len, uint8_t *code, const char **why);

#endif
