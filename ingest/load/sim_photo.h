/* A small real JPEG for the simulator's alarm photo (sim_photo.c says how it was made). */
#ifndef HW_SIM_PHOTO_H
#define HW_SIM_PHOTO_H

#include <stddef.h>
#include <stdint.h>

extern const uint8_t hw_sim_photo_jpeg[];
extern const size_t hw_sim_photo_jpeg_len;

#endif
