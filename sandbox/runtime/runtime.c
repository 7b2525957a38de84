/* runtime.c - nemo-sbx-runtime: PID 1 of a sandbox; drops privileges, loads code, serves frames. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nemo/chain.h"
#include "nemo/frame.h"
#include "nemo/fn_ring.h"
#include "nemo/function.h"
#include "nemo/sandbox.h"
#include "nemo/version.h"
#include "call.h"
#include "packet.h"
#include "pktlib.h"
#include "watchdog.h"
#include "zygote.h"

/*
 * Started by sbx_create() as PID 1 of the sandbox, still root, with:
 *   fd 3: the control socket (frames, include/nemo/function.h)
 *   fd 4: the host's compiled seccomp program (raw BPF)
 *   argv: uid gid max_payload_bytes memory_mb [zygote]
 * It confines itself, then waits for the INIT frame that names the code. Everything it
 * reports goes over fd 3: stderr is /dev/null.
 *
 * A zygote (argv[5] "zygote", fd 5: the zygote's filter) loads its code the same way, then
 * answers READY and serves no request: each REQUEST frame it reads (empty, with two fds
 * attached: a new instance's control socket and the write end of its status pipe) makes one
 * instance (zygote.h), which answers READY on its own socket and serves from there; with
 * status ZYG_PARK the instance is a ready fork, set up and parked until its hand-over. The
 * zygote keeps fd 4 open for its instances' filter.
 */

#define CTL_FD		 ZYG_CTL_FD
#define SECCOMP_FD	 4
#define ZYGOTE_FILTER_FD 5

extern char **environ;

#if defined(__SANITIZE_ADDRESS__)
/*
 * Built sanitized (make check-asan): the function's crash is its own and must reach the
 * platform as the signal it was, and its exit status as it chose it; ASan's SEGV handler and
 * its leak check at exit would turn both into an exit status 1.
 */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "handle_segv=0:handle_abort=0:detect_leaks=0";
}
#endif

static uint32_t max_payload;
static uint8_t *req_buf; /* header + max_payload */
static uint8_t *resp_buf;

static int send_frame_flags(int fd, uint16_t type, uint16_t flags, uint32_t status,
			    const void *data, uint32_t len)
{
	struct nemo_frame_hdr hdr = {.magic = NEMO_FRAME_MAGIC,
				     .type = type,
				     .flags = flags,
				     .len = len,
				     .status = status};
	struct iovec iov[2] = {{&hdr, sizeof(hdr)}, {(void *)data, len}};
	size_t left = sizeof(hdr) + len;
	struct iovec *v = iov;
	int cnt = len ? 2 : 1;

	while (left) {
		ssize_t n = writev(fd, v, cnt);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		left -= (size_t)n;
		while (cnt && (size_t)n >= v->iov_len) {
			n -= (ssize_t)v->iov_len;
			v++;
			cnt--;
		}
		if (cnt) {
			v->iov_base = (char *)v->iov_base + n;
			v->iov_len -= (size_t)n;
		}
	}
	return 0;
}

static int send_frame(int fd, uint16_t type, uint32_t status, const void *data, uint32_t len)
{
	return send_frame_flags(fd, type, 0, status, data, len);
}

static void __attribute__((format(printf, 1, 2))) init_error(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(msg))
		n = sizeof(msg) - 1;
	send_frame(CTL_FD, NEMO_FRAME_INIT_ERROR, 0, msg, (uint32_t)n);
	exit(0);
}

/* The fds that came with the last frame read (CHAIN_SERVE's), closed unless taken. */
static int frame_fds[NEMO_CHAIN_FDS];
static int frame_nfds;

static void frame_fds_close(void)
{
	for (int i = 0; i < frame_nfds; i++)
		close(frame_fds[i]);
	frame_nfds = 0;
}

/*
 * Read one frame into req_buf, and the fds sent with it into frame_fds. Returns the header,
 * with len 0 and type 0 at end of input.
 */
static struct nemo_frame_hdr read_frame(int fd)
{
	size_t have = 0, want = 0, cap = sizeof(struct nemo_frame_hdr) + max_payload;
	struct nemo_frame_hdr hdr = {0};

	frame_fds_close();
	for (;;) {
		int fds[NEMO_CHAIN_FDS], nfds;
		ssize_t n = nemo_call_recv_hdr(fd, req_buf + have, (want ? want : cap) - have, fds,
					       &nfds);

		for (int i = 0; i < nfds; i++)
			if (frame_nfds < NEMO_CHAIN_FDS)
				frame_fds[frame_nfds++] = fds[i];
			else
				close(fds[i]);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (have)
				exit(3); /* a torn frame: the platform is gone or broken */
			hdr.type = 0;
			return hdr;
		}
		have += (size_t)n;
		if (!want) {
			/* the platform checks the limit first; a bigger frame is a broken host */
			long whole = nemo_frame_check(req_buf, have, max_payload, &hdr);

			if (whole < 0)
				exit(3);
			want = (size_t)whole;
		}
		if (want && have >= want)
			return hdr;
	}
}

/* ---- confinement ---- */

static void set_limit(int res, rlim_t v)
{
	struct rlimit rl = {v, v};

	if (setrlimit(res, &rl))
		exit(4);
}

static void confine(uid_t uid, gid_t gid, uint32_t memory_mb, bool zygote)
{
	int filter_fd = zygote ? ZYGOTE_FILTER_FD : SECCOMP_FD;
	struct __user_cap_header_struct caphdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct capdata[2] = {0};
	struct sock_fprog prog;
	struct stat st;
	void *filter;

	set_limit(RLIMIT_CORE, 0);
	set_limit(RLIMIT_NOFILE, 1024);
	set_limit(RLIMIT_FSIZE, (rlim_t)memory_mb << 20);
	set_limit(RLIMIT_MEMLOCK, 64 << 10);
	set_limit(RLIMIT_MSGQUEUE, 0);
	set_limit(RLIMIT_RTPRIO, 0);
	set_limit(RLIMIT_NICE, 0);
	set_limit(RLIMIT_STACK, 8 << 20);

	if (fstat(filter_fd, &st) || st.st_size <= 0 || st.st_size % sizeof(struct sock_filter))
		exit(5);
	filter = malloc((size_t)st.st_size);
	if (!filter || pread(filter_fd, filter, (size_t)st.st_size, 0) != st.st_size)
		exit(5);
	close(filter_fd);
	prog.len = (unsigned short)(st.st_size / sizeof(struct sock_filter));
	prog.filter = filter;

	/* identity: no supplementary groups, then gid, then the bounding set while we still
	 * hold CAP_SETPCAP, then uid (which clears the permitted and effective sets) */
	if (setgroups(0, NULL) || setresgid(gid, gid, gid))
		exit(6);
	for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0))
			exit(6);
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) && errno != EINVAL)
		exit(6);
	if (setresuid(uid, uid, uid))
		exit(6);
	/* a change of credentials cleared the parent-death signal set at the clone: set it
	 * again, so nemod's death still kills us (a death in between closes fd 3: we exit) */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0))
		exit(6);
	/* inheritable too: nothing may come back through exec */
	if (syscall(SYS_capset, &caphdr, capdata))
		exit(6);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		exit(7);
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		exit(8);
	free(filter);
	if (chdir("/tmp"))
		exit(9);
}

/* Children started by us get the signal dispositions a fresh process has. */
static void child_defaults(void)
{
	sigset_t none;

	signal(SIGPIPE, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* ---- the function's output, kept as log lines (NEMO_LOG_LIMIT, runtimes c and exec) ---- */

/* c: stdout and stderr of the function; exec per request: its program's stderr (its stdout is
 * the response). An unlinked file in /tmp */
static int log_fd = -1;
static uint32_t log_limit; /* bytes of lines kept per request */
static char *log_buf;	   /* 4-byte length, lines, then the response */

/* With NEMO_LOG_LIMIT set, fds 1 and 2 go to a file that is read back after each request. */
static void logs_open(void)
{
	const char *v = getenv("NEMO_LOG_LIMIT");
	char path[64];

	log_limit = v ? (uint32_t)strtoul(v, NULL, 10) : 0;
	if (!log_limit)
		return;
	if (log_limit > max_payload)
		log_limit = max_payload;
	snprintf(path, sizeof(path), "/tmp/.nemo-output-%d", getpid());
	log_fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	log_buf = malloc(4 + (size_t)max_payload + 64);
	if (log_fd < 0 || !log_buf || dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0)
		init_error("log capture: %s", strerror(errno));
	unlink(path);
}

/*
 * What the function wrote since the last request, as "<UTC time>Z <stream>: line" lines (the
 * time of collection), bounded by log_limit and the room the response leaves. `stream` names
 * what the file holds: "stdout" for C functions (both streams share one file, as a terminal
 * would show them), "stderr" for exec programs. Writes the 4-byte length and the lines to
 * log_buf.
 */
static size_t logs_take(size_t room, const char *stream)
{
	char when[40], raw[8192];
	struct timespec ts;
	struct tm tm;
	size_t used = 0, cap = room < log_limit ? room : log_limit;
	uint32_t n32;
	ssize_t n;
	off_t off = 0;
	char part[512];
	size_t plen = 0;

	fflush(stdout);
	fflush(stderr);
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = (ssize_t)strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + n, sizeof(when) - (size_t)n, ".%06ldZ", ts.tv_nsec / 1000);
	while ((n = pread(log_fd, raw, sizeof(raw), off)) > 0) {
		off += n;
		for (ssize_t i = 0; i < n; i++) {
			bool end = raw[i] == '\n';

			if (!end && plen < sizeof(part) - 1)
				part[plen++] = raw[i];
			if (end) {
				int k = snprintf(log_buf + 4 + used, cap - used, "%s%s %s: %.*s",
						 used ? "\n" : "", when, stream, (int)plen, part);

				if (k > 0 && (size_t)k < cap - used)
					used += (size_t)k;
				plen = 0;
			}
		}
	}
	if (plen) {
		int k = snprintf(log_buf + 4 + used, cap - used, "%s%s %s: %.*s", used ? "\n" : "",
				 when, stream, (int)plen, part);

		if (k > 0 && (size_t)k < cap - used)
			used += (size_t)k;
	}
	if (ftruncate(log_fd, 0) == 0)
		lseek(log_fd, 0, SEEK_SET);
	n32 = (uint32_t)used;
	memcpy(log_buf, &n32, 4);
	return used;
}

/*
 * The call returned: kill every process of the sandbox but us (PID 1 of its namespace, which
 * kill(-1) never reaches), so nothing a call started keeps running on the core between calls,
 * and reap them (every process of the namespace is our descendant, an orphan our child). The
 * kill is repeated until none is left: one forked in between is caught by the next round.
 */
static void end_of_call(void)
{
	while (kill(-1, SIGKILL) == 0)
		if (waitpid(-1, NULL, 0) < 0 && errno == ECHILD)
			break;
}

/* PID 1 ignores the signals it sends itself with the default action: abort() would end in
 * a SIGSEGV. Report it as what it is, 128 + SIGABRT (the platform reads signal 6). */
static void on_abort(int sig)
{
	_exit(128 + sig);
}

/* ---- zygote ---- */

/*
 * One command from the platform: a REQUEST header with no payload and two fds, status 0 (an
 * instance on demand) or ZYG_PARK (a ready fork). Returns 1 with the fds and `*park`, 0 at end
 * of input, -1 for anything else (a broken platform).
 */
static int recv_fork(int fd, int fds[2], bool *park)
{
	char cbuf[CMSG_SPACE(2 * sizeof(int))] __attribute__((aligned(8)));
	struct nemo_frame_hdr hdr;
	uint8_t buf[sizeof(hdr)] = {0};
	struct iovec iov = {buf, sizeof(buf)};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *c;
	ssize_t n;

	do
		n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		return 0;
	c = n > 0 ? CMSG_FIRSTHDR(&msg) : NULL;
	if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
	    c->cmsg_len != CMSG_LEN(2 * sizeof(int)))
		return -1;
	memcpy(fds, CMSG_DATA(c), 2 * sizeof(int));
	if (nemo_frame_check(buf, (size_t)n, 0, &hdr) != (long)sizeof(hdr) ||
	    hdr.type != NEMO_FRAME_REQUEST || (hdr.status != 0 && hdr.status != ZYG_PARK))
		return -1;
	*park = hdr.status == ZYG_PARK;
	/* the instance's own fds must survive into it */
	fcntl(fds[0], F_SETFD, 0);
	fcntl(fds[1], F_SETFD, 0);
	return 1;
}

static void end_of_call(void);

/*
 * The zygote: nothing its code started at load stays, then READY, then one instance per
 * command; SIGCHLD (through a signalfd) reports the instances that ended. Returns only in a
 * new instance, which then serves like any other.
 */
static void zygote_loop(uint32_t memory_mb)
{
	sigset_t chld;
	int sfd;

	end_of_call();
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		exit(12);
	send_frame(CTL_FD, NEMO_FRAME_READY, 0, NULL, 0);
	for (;;) {
		struct pollfd p[2] = {{.fd = CTL_FD, .events = POLLIN},
				      {.fd = sfd, .events = POLLIN}};
		struct signalfd_siginfo si;
		int fds[2], rc;
		bool park = false;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			exit(12);
		if (p[1].revents & POLLIN) {
			while (read(sfd, &si, sizeof(si)) == sizeof(si))
				;
			nemo_zygote_reap();
		}
		if (!(p[0].revents & (POLLIN | POLLHUP)))
			continue;
		rc = recv_fork(CTL_FD, fds, &park);
		if (rc == 0)
			exit(0);
		if (rc < 0)
			exit(3);
		if (park) {
			if (nemo_zygote_fork_ready(fds[0], fds[1], SECCOMP_FD, memory_mb, sfd))
				continue;
			/* the ready fork, parked until its hand-over (nothing of C's to prefault:
			 * its first call touches a few pages) */
			nemo_zygote_park(0);
			return;
		}
		if (nemo_zygote_fork(fds[0], fds[1], SECCOMP_FD, memory_mb, sfd) == 0)
			return; /* the instance: its signalfd is closed, SIGCHLD unblocked */
	}
}

/* ---- runtime c ---- */

/*
 * Load a shared object and run its nemo_init(): the handler `handler` (a request or a batch
 * handler, `what` says which in the error), or an init error that names what failed.
 */
static void *load_c(const char *code, const char *handler, const char *what)
{
	struct sigaction sa = {.sa_handler = on_abort};
	nemo_init_fn init;
	char why[512];
	void *dl, *fn;

	sigaction(SIGABRT, &sa, NULL);
	/* the same check as at deploy, before any of the code's constructors run */
	if (sbx_code_check(0, code, handler, why, sizeof(why)) == -ENOEXEC &&
	    strstr(why, "handler '"))
		init_error("%s", why);
	dl = dlopen(code, RTLD_NOW | RTLD_LOCAL);
	if (!dl)
		init_error("code does not load: %s", dlerror());
	fn = dlsym(dl, handler);
	if (!fn)
		init_error("%s '%s' not found in %s", what, handler, code);
	init = (nemo_init_fn)(uintptr_t)dlsym(dl, "nemo_init");
	if (init) {
		int rc = init();

		if (rc)
			init_error("nemo_init() in %s returned %d", code, rc);
	}
	return fn;
}

static nemo_handler_fn c_handler;

/* One call from a box (call.h): the handler as for a request; what it printed is dropped. */
static int run_boxed(const void *data, size_t len, struct nemo_response *resp)
{
	struct nemo_request req = {data, len};
	int rc = c_handler(&req, resp);

	end_of_call();
	if (log_fd >= 0)
		logs_take(0, "stdout");
	return rc;
}

/*
 * The next request from the platform (type 0 at end of input). Meanwhile serve the calls of
 * a box this instance is leased through, and take CHAIN_SERVE and CHAIN_END as they come.
 */
static struct nemo_frame_hdr next_request(nemo_box_handler run)
{
	for (;;) {
		struct pollfd p[2] = {{.fd = CTL_FD, .events = POLLIN},
				      {.fd = nemo_box_fd(), .events = POLLIN}};
		struct nemo_frame_hdr hdr;

		if (p[1].fd >= 0) {
			if (poll(p, 2, -1) < 0 && errno != EINTR)
				exit(12);
			if (p[1].revents & POLLIN)
				nemo_box_serve(run);
			if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
		}
		hdr = read_frame(CTL_FD);
		if (hdr.type == NEMO_FRAME_CHAIN_SERVE) {
			/* a box that does not map is a broken platform: it sees us exit */
			if (nemo_box_attach(frame_fds, frame_nfds))
				exit(3);
			frame_nfds = 0; /* taken over */
			continue;
		}
		if (hdr.type == NEMO_FRAME_CHAIN_END) {
			nemo_box_detach();
			continue;
		}
		frame_fds_close();
		return hdr;
	}
}

static void serve_c(const char *code, const char *handler, bool zygote, uint32_t memory_mb)
{
	nemo_handler_fn fn = (nemo_handler_fn)(uintptr_t)load_c(code, handler, "handler");

	resp_buf = malloc(max_payload ? max_payload : 1);
	if (!resp_buf)
		init_error("out of memory for a %u-byte response buffer", max_payload);
	if (zygote)
		zygote_loop(memory_mb);
	logs_open();
	c_handler = fn;
	nemo_call_setup(CTL_FD);
	send_frame(CTL_FD, NEMO_FRAME_READY, 0, NULL, 0);
	for (;;) {
		struct nemo_frame_hdr hdr = next_request(run_boxed);
		struct nemo_request req = {req_buf + sizeof(hdr), hdr.len};
		struct nemo_response resp = {resp_buf, max_payload, 0};
		int rc;

		if (hdr.type == 0)
			exit(0);
		if (hdr.type != NEMO_FRAME_REQUEST)
			exit(3);
		nemo_call_enter(0);
		rc = fn(&req, &resp);
		nemo_call_leave();
		end_of_call();
		if (resp.len > max_payload) {
			uint64_t len = resp.len;

			if (log_fd >= 0)
				logs_take(0, "stdout");
			if (send_frame_flags(CTL_FD, NEMO_FRAME_RESPONSE, NEMO_FRAME_F_TOO_LARGE,
					     (uint32_t)rc, &len, sizeof(len)))
				exit(0);
			continue;
		}
		if (log_fd >= 0) {
			/* the platform splits the lines off: 4-byte length, lines, response */
			size_t used = logs_take(max_payload - resp.len, "stdout");

			memmove(log_buf + 4 + used, resp.data, resp.len);
			resp.data = log_buf;
			resp.len += 4 + used;
		}
		if (send_frame(CTL_FD, NEMO_FRAME_RESPONSE, (uint32_t)rc, resp.data,
			       (uint32_t)resp.len))
			exit(0);
	}
}

/* ---- packet mode: a batch handler fed by an NF's rings (packet.h, pktlib.c) ---- */

/* c: the batch handler of a shared object (include/nemo/function.h, ABI 2). */
static void serve_packet_c(const char *code, const char *handler, uint32_t batch, uint32_t spin_us)
{
	nemo_batch_handler_fn handler_fn =
		(nemo_batch_handler_fn)(uintptr_t)load_c(code, handler, "batch handler");
	int rc = nemo_pkt_attach();

	if (rc)
		init_error("fd %d is not a function ring this runtime maps (fn_ring.h version %d): "
			   "%s",
			   PKT_RING_FD, FN_RING_VERSION, strerror(-rc));
	send_frame(CTL_FD, NEMO_FRAME_READY, 0, NULL, 0);
	exit(nemo_pkt_serve(handler_fn, batch, spin_us));
}

/* ---- runtime python: the shim imports the module and serves the same frames ---- */

static void serve_python(const char *code, const char *handler, const char *python, bool zygote,
			 const char *memory_mb)
{
	const char *shim = getenv("NEMO_SBX_SHIM");
	char payload[16];

	if (!python[0])
		init_error("no python interpreter");
	if (!shim || access(shim, R_OK))
		init_error("python shim %s is missing", shim ? shim : "(unset)");
	snprintf(payload, sizeof(payload), "%u", max_payload);
	/* -I: ignore PYTHON* and the user site; -S: no site import (10 ms); -B: ro fs anyway */
	/* a zygote: the shim makes instances, with fd 4 (the host's filter) left open */
	char *argv[] = {(char *)python,
			"-I",
			"-S",
			"-B",
			(char *)shim,
			(char *)code,
			(char *)handler,
			payload,
			zygote ? "zygote" : NULL,
			(char *)memory_mb,
			NULL};
	child_defaults();
	execve(python, argv, environ);
	init_error("cannot execute %s: %s", python, strerror(errno));
}

/* python packet mode: the shim maps the rings through nemo-sbx-pkt.so (packet.h) */
static void serve_python_packet(const char *code, const char *handler, const char *python,
				uint32_t batch, uint32_t spin_us)
{
	const char *shim = getenv("NEMO_SBX_SHIM");
	char payload[16], nb[16], spin[16];

	if (!python[0])
		init_error("no python interpreter");
	if (!shim || access(shim, R_OK))
		init_error("python shim %s is missing", shim ? shim : "(unset)");
	snprintf(payload, sizeof(payload), "%u", max_payload);
	snprintf(nb, sizeof(nb), "%u", batch);
	snprintf(spin, sizeof(spin), "%u", spin_us);
	char *argv[] = {(char *)python,	 "-I",	  "-S",	   "-B", (char *)shim, (char *)code,
			(char *)handler, payload, PKT_ARG, nb,	 spin,	       NULL};
	child_defaults();
	execve(python, argv, environ);
	init_error("cannot execute %s: %s", python, strerror(errno));
}

/* ---- runtime exec ---- */

static int exit_code_of(int status)
{
	return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

static void serve_exec_persistent(const char *code)
{
	pid_t child = fork();
	int status;

	if (child < 0)
		init_error("fork: %s", strerror(errno));
	if (child == 0) {
		char *argv[] = {(char *)code, NULL};

		child_defaults();
		if (dup2(CTL_FD, 0) < 0 || dup2(CTL_FD, 1) < 0)
			_exit(127);
		close(CTL_FD);
		execve(code, argv, environ);
		/* still our frames on fd 1 */
		{
			char msg[400];
			int n = snprintf(msg, sizeof(msg), "cannot execute %s: %s", code,
					 strerror(errno));

			send_frame(1, NEMO_FRAME_INIT_ERROR, 0, msg, (uint32_t)n);
		}
		_exit(127);
	}
	/* the program speaks to the platform directly; we only reap, and die with it */
	close(CTL_FD);
	for (;;) {
		pid_t p = waitpid(-1, &status, 0);

		if (p == child)
			exit(exit_code_of(status));
		if (p < 0 && errno == ECHILD)
			exit(0);
	}
}

/* Feed `in` to the child's stdin while draining its stdout into resp_buf. */
static int pump(int to, int from, const uint8_t *in, size_t in_len, size_t *out_len)
{
	size_t sent = 0;
	bool overflow = false;

	*out_len = 0;
	if (in_len == 0) {
		close(to);
		to = -1;
	}
	for (;;) {
		struct pollfd p[2] = {{.fd = from, .events = POLLIN},
				      {.fd = to, .events = POLLOUT}};

		if (poll(p, to >= 0 ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (to >= 0 && (p[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t n = write(to, in + sent, in_len - sent);

			if (n > 0)
				sent += (size_t)n;
			if (n < 0 || sent == in_len) {
				close(to);
				to = -1;
			}
		}
		if (p[0].revents & (POLLIN | POLLHUP)) {
			uint8_t sink[4096];
			size_t room = max_payload - *out_len;
			ssize_t n = read(from, room ? resp_buf + *out_len : sink,
					 room ? room : sizeof(sink));

			if (n <= 0)
				break;
			if (room)
				*out_len += (size_t)n;
			else
				overflow = true;
		}
	}
	if (to >= 0)
		close(to);
	return overflow ? -EMSGSIZE : 0;
}

/*
 * One response of an exec program. With log capture on, its stderr lines go in front, as the
 * C runtime frames them (4-byte length, lines, response), within max_payload.
 */
static void send_exec_response(uint32_t status, const void *data, size_t len)
{
	if (log_fd >= 0) {
		size_t used =
			logs_take(len + 4 < max_payload ? max_payload - len - 4 : 0, "stderr");

		memcpy(log_buf + 4 + used, data, len);
		data = log_buf;
		len += 4 + used;
	}
	if (send_frame(CTL_FD, NEMO_FRAME_RESPONSE, status, data, (uint32_t)len))
		exit(0);
}

static void serve_exec_per_request(const char *code)
{
	if (access(code, X_OK))
		init_error("cannot execute %s: %s", code, strerror(errno));
	resp_buf = malloc(max_payload ? max_payload : 1);
	if (!resp_buf)
		init_error("out of memory for a %u-byte response buffer", max_payload);
	logs_open();
	send_frame(CTL_FD, NEMO_FRAME_READY, 0, NULL, 0);
	for (;;) {
		struct nemo_frame_hdr hdr = read_frame(CTL_FD);
		int in[2], out[2], status = 0, rc;
		size_t out_len = 0;
		pid_t child;

		if (hdr.type == 0)
			exit(0);
		if (hdr.type != NEMO_FRAME_REQUEST)
			exit(3);
		if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC))
			exit(10);
		child = fork();
		if (child == 0) {
			char *argv[] = {(char *)code, NULL};

			child_defaults();
			if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0)
				_exit(127);
			execve(code, argv, environ);
			/* the caller sees why in the response */
			dprintf(1, "cannot execute %s: %s", code, strerror(errno));
			_exit(127);
		}
		close(in[0]);
		close(out[1]);
		if (child < 0) {
			char msg[128];
			int n = snprintf(msg, sizeof(msg), "fork: %s", strerror(errno));

			close(in[1]);
			close(out[0]);
			send_exec_response(1, msg, (size_t)n);
			continue;
		}
		rc = pump(in[1], out[0], req_buf + sizeof(hdr), hdr.len, &out_len);
		close(out[0]);
		waitpid(child, &status, 0);
		/* orphans of the request were reparented to us: none outlives it */
		end_of_call();
		if (rc == -EMSGSIZE) {
			char msg[128];
			int n = snprintf(msg, sizeof(msg), "output over the limit of %u bytes",
					 max_payload);

			send_exec_response(1, msg, (size_t)n);
		} else {
			send_exec_response((uint32_t)exit_code_of(status), resp_buf, out_len);
		}
	}
}

int main(int argc, char **argv)
{
	struct nemo_frame_hdr hdr;
	char *fields[5];
	uint32_t batch = 0, spin_us = 0;
	bool zygote, packet;
	sigset_t none;
	char *p;

	if (argc == 2 && !strcmp(argv[1], "--version")) {
		printf("nemo-sbx-runtime %s\n", NEMO_VERSION);
		return 0;
	}
	if (argc > 1 && !strcmp(argv[1], WATCHDOG_ARG))
		return nemo_watchdog_main(argc, argv);
	if (argc != 5 && !(argc == 6 && !strcmp(argv[5], "zygote")) &&
	    !(argc == 8 && !strcmp(argv[5], PKT_ARG)))
		return 2;
	zygote = argc == 6;
	packet = argc == 8;
	if (packet) {
		batch = (uint32_t)strtoul(argv[6], NULL, 10);
		spin_us = (uint32_t)strtoul(argv[7], NULL, 10);
		if (!batch || batch > FN_HOST_MAX_BATCH)
			return 2;
	}
	max_payload = (uint32_t)strtoul(argv[3], NULL, 10);
	/* the platform blocked every signal around the clone */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_IGN);
	confine((uid_t)strtoul(argv[1], NULL, 10), (gid_t)strtoul(argv[2], NULL, 10),
		(uint32_t)strtoul(argv[4], NULL, 10), zygote);
	req_buf = malloc(sizeof(hdr) + (max_payload > 4096 ? max_payload : 4096));
	if (!req_buf)
		return 11;
	/* the init block may be longer than a tiny payload limit */
	{
		uint32_t saved = max_payload;

		max_payload = max_payload > 4096 ? max_payload : 4096;
		hdr = read_frame(CTL_FD);
		max_payload = saved;
	}
	if (hdr.type != NEMO_FRAME_INIT || hdr.len == 0)
		return 0;
	/* runtime, exec mode, code, handler, python: NUL-separated */
	p = (char *)req_buf + sizeof(hdr);
	p[hdr.len - 1] = '\0';
	for (int i = 0; i < 5; i++) {
		/* copied: requests will be read over the init block */
		fields[i] = strdup(p);
		if (!fields[i])
			return 11;
		p += strlen(p) + 1;
		if (p > (char *)req_buf + sizeof(hdr) + hdr.len && i < 4)
			init_error("malformed init block");
	}
	if (packet) {
		switch (atoi(fields[0])) {
		case 0:
			serve_packet_c(fields[2], fields[3], batch, spin_us);
			break;
		case 1:
			serve_python_packet(fields[2], fields[3], fields[4], batch, spin_us);
			break;
		default:
			init_error("%s functions have no packet mode", fields[0]);
		}
	}
	switch (atoi(fields[0])) {
	case 0:
		serve_c(fields[2], fields[3], zygote, (uint32_t)strtoul(argv[4], NULL, 10));
		break;
	case 1:
		serve_python(fields[2], fields[3], fields[4], zygote, argv[4]);
		break;
	case 2:
		if (zygote)
			init_error("exec functions have no zygote");
		if (atoi(fields[1]) == 1)
			serve_exec_per_request(fields[2]);
		serve_exec_persistent(fields[2]);
		break;
	default:
		init_error("unknown runtime %s", fields[0]);
	}
	return 0;
}
