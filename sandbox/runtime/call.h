/* call.h - nemo_call inside the sandbox: the caller's leases and the callee's box (chain.h). */
#ifndef NEMO_SBX_CALL_H
#define NEMO_SBX_CALL_H

#include <stdbool.h>
#include <stdint.h>

#include "nemo/function.h"

/*
 * The runtime's side of include/nemo/chain.h. The caller side is nemo_call() itself; the
 * runtime tells it when a handler runs (nemo_call_enter/leave) and through which socket to
 * ask nemod for leases. The callee side maps the box nemod hands over with CHAIN_SERVE and
 * runs the handler once per call in it.
 */

/* The control socket (fd 3), for CALL_OPEN. */
void nemo_call_setup(int ctl_fd);

/* A handler runs on this thread: calls it makes are made within `parent_seq` (0: a request
 * from the platform, else the box call being served). */
void nemo_call_enter(uint64_t parent_seq);
void nemo_call_leave(void);

/* Frames read on the control socket carry fds only with CHAIN_SERVE and CALL_OPENED:
 * read one frame header with recvmsg. Returns the bytes read (as read(2)), the fds in
 * fds[0..*nfds). */
long nemo_call_recv_hdr(int fd, void *buf, size_t len, int *fds, int *nfds);

/* ---- callee ---- */

/* Map the box of CHAIN_SERVE (fds in NEMO_CHAIN_FD_* order, taken over). 0 or -errno. */
int nemo_box_attach(const int *fds, int nfds);
/* Unmap it (CHAIN_END, or a box that broke). */
void nemo_box_detach(void);
/* The eventfd to poll for calls, -1 with no box. */
int nemo_box_fd(void);

/* What runs a call: the runtime's handler, as for a request from the platform. */
typedef int (*nemo_box_handler)(const void *req, size_t len, struct nemo_response *resp);

/*
 * Serve every call waiting in the box (after the eventfd said so): runs `run` within the
 * call's seq (nemo_call_enter), writes the reply (the handler may point resp->data at its
 * own memory: it is copied), wakes the caller. Returns
 * the calls served, or -EPROTO when the box is broken (detached).
 */
int nemo_box_serve(nemo_box_handler run);

#endif /* NEMO_SBX_CALL_H */
