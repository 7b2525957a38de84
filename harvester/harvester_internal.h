/* harvester_internal.h - helpers shared inside harvester/ only. */
#ifndef NEMO_HARVESTER_INTERNAL_H
#define NEMO_HARVESTER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "nemo/harvester.h"

/* hv_channel_open() that logs nothing when `quiet` (the caller logs changes of state). */
struct hv_channel *__hv_channel_open(const char *name, bool quiet);

/* The deployment name the writer put in the header. */
const char *__hv_channel_name(const struct hv_channel *ch);

/* The writer's pid, as the header said at open. */
int32_t __hv_channel_writer_pid(const struct hv_channel *ch);

#endif /* NEMO_HARVESTER_INTERNAL_H */
