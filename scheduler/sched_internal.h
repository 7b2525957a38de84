/* sched_internal.h - small file helpers shared inside scheduler/ only. */
#ifndef NEMO_SCHED_INTERNAL_H
#define NEMO_SCHED_INTERNAL_H

#include <stddef.h>

/* Write `value` to `dir`/`file`. Logs a failure once with the path. Returns 0 or -errno. */
int __sched_write(const char *dir, const char *file, const char *value);
/* Read `dir`/`file` into buf (NUL-terminated). Returns the length or -errno; logs nothing. */
int __sched_read(const char *dir, const char *file, char *buf, size_t len);

#endif /* NEMO_SCHED_INTERNAL_H */
