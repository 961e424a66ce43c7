/*
 * zmq_ipc.c - peer engine: ZeroMQ PAIR sockets over ipc:// (a Unix domain socket), blocking
 * zmq_send/zmq_recv (bench/peers/README.md; the shape is engine.h's).
 *
 * One PAIR socket each side carries both directions. The engine binds
 * ipc://$MMIPC_DIR/bench-zmq-PID (default dir /dev/shm), the peer connects; the socket file is
 * removed after the first message (the connection stays). tput: the high-water marks (ZMQ_SNDHWM on
 * the sender, ZMQ_RCVHWM on the receiver) are --depth messages; a full pipe blocks zmq_send.
 * Every message goes through each side's ZeroMQ I/O thread: that hop is part of what is measured.
 */
#define _GNU_SOURCE
#define T_MECH "zmq-ipc"
#define T_TAG "zmq"
#include "engine.h"

#include <zmq.h>

static void *zctx, *zsock;
static size_t zsize;
static char zpath[PATH_MAX];

static void zfail(const char *what) { bench_fail("%s: %s", what, zmq_strerror(zmq_errno())); }

static void zsetint(int opt, int v, const char *what)
{
	if (zmq_setsockopt(zsock, opt, &v, sizeof v) != 0)
		zfail(what);
}

static void t_open(struct opts *o)
{
	zsize = o->size;
	/* The socket file lives where the other engines' regions do (a tmpfs by default). */
	if ((size_t)snprintf(zpath, sizeof zpath, "%s/%s", bench_dir(), o->name) >= 100)
		bench_fail("socket path %s/%s is too long for a Unix socket", bench_dir(), o->name);
	char ep[PATH_MAX + 8];
	snprintf(ep, sizeof ep, "ipc://%s", zpath);
	zctx = zmq_ctx_new();
	if (zctx == NULL)
		zfail("zmq_ctx_new");
	zsock = zmq_socket(zctx, ZMQ_PAIR);
	if (zsock == NULL)
		zfail("zmq_socket");
	/* Nothing is pending at close on a clean run (the done pipe says so); after a failure, close
	 * must not wait for a dead peer. */
	zsetint(ZMQ_LINGER, 0, "ZMQ_LINGER");
	if (o->mode == MODE_TPUT) {
		zsetint(o->peer ? ZMQ_SNDHWM : ZMQ_RCVHWM, (int)o->depth, "ZMQ_SNDHWM/RCVHWM");
	}
	if (o->peer) {
		if (zmq_connect(zsock, ep) != 0)
			zfail(ep);
	} else {
		if (zmq_bind(zsock, ep) != 0)
			zfail(ep);
		bench_cleanup_add_path(zpath);
	}
}

/* PAIR: zmq_send blocks until the peer is connected, so no message is lost before that. */
static void t_connected(struct opts *o) { (void)o; }

static void t_first_done(struct opts *o)
{
	(void)o;
	if (unlink(zpath) != 0)
		bench_fail("unlink %s: %s", zpath, strerror(errno));
	bench_cleanup_forget_path(zpath);
}

static inline void t_send(int dir, const void *buf)
{
	(void)dir;
	while (zmq_send(zsock, buf, zsize, 0) < 0)
		if (zmq_errno() != EINTR)
			zfail("zmq_send");
}

static inline void t_recv(int dir, void *buf)
{
	(void)dir;
	int n;
	while ((n = zmq_recv(zsock, buf, zsize, 0)) < 0)
		if (zmq_errno() != EINTR)
			zfail("zmq_recv");
	if ((size_t)n != zsize)
		bench_fail("zmq_recv: a message of %d bytes, want %zu", n, zsize);
}

static void t_close(struct opts *o)
{
	(void)o;
	if (zmq_close(zsock) != 0)
		zfail("zmq_close");
	if (zmq_ctx_term(zctx) != 0)
		zfail("zmq_ctx_term");
}

static void t_describe(const struct opts *o, char *buf, size_t len)
{
	int maj, min, pat;
	zmq_version(&maj, &min, &pat);
	char hwm[32] = "default (1000)";
	if (o->mode == MODE_TPUT)
		snprintf(hwm, sizeof hwm, "%" PRIu64, o->depth);
	snprintf(buf, len, "libzmq %d.%d.%d, ZMQ_PAIR over ipc://%s/%s, blocking send/recv, high-water mark %s", maj, min,
		 pat, bench_dir(), o->name, hwm);
}

int main(int argc, char **argv) { return engine_main(argc, argv); }
