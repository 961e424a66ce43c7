/*
 * boost_mq.c - peer engine: Boost.Interprocess message_queue, blocking send/receive
 * (bench/peers/README.md; the shape is engine.h's). The queue calls go through the C interface of
 * boost_mq_shim.cpp, so that this engine shares bench/c/bench.h with the others.
 *
 * rt: two queues (bench-bmq-PID-down, -up) of one 64-byte message each, as pingpong's mq; tput: one
 * queue (-up) of --depth messages. The engine creates the queues, the peer opens them by name; the
 * names are removed after the first message (both sides hold the queues).
 */
#define _GNU_SOURCE
#define T_MECH "boost-mq"
#define T_TAG "bmq"
#include "engine.h"

#include "boost_mq_shim.h"

static struct bmq *q[2];
static char qname[2][96], qpath[2][PATH_MAX];
static size_t qsize;

static void t_open(struct opts *o)
{
	qsize = o->size;
	char err[512];
	for (int d = DOWN; d <= UP; d++) {
		if (o->mode == MODE_TPUT && d == DOWN)
			continue;
		snprintf(qname[d], sizeof qname[d], "%s-%s", o->name, d == DOWN ? "down" : "up");
		/* Boost's POSIX shared-memory objects are shm_open names: /dev/shm/NAME. */
		snprintf(qpath[d], sizeof qpath[d], "/dev/shm/%s", qname[d]);
		if (o->peer) {
			q[d] = bmq_open(qname[d], err, sizeof err);
		} else {
			q[d] = bmq_create(qname[d], o->depth, o->size, err, sizeof err);
			if (q[d] != NULL)
				bench_cleanup_add_path(qpath[d]);
		}
		if (q[d] == NULL)
			bench_fail("%s: %s", qname[d], err);
	}
}

static void t_connected(struct opts *o) { (void)o; }

static void t_first_done(struct opts *o)
{
	for (int d = DOWN; d <= UP; d++) {
		if (o->mode == MODE_TPUT && d == DOWN)
			continue;
		if (bmq_remove(qname[d]) != 0)
			bench_fail("remove message queue %s failed", qname[d]);
		bench_cleanup_forget_path(qpath[d]);
	}
}

static inline void t_send(int dir, const void *buf)
{
	char err[512];
	if (bmq_send(q[dir], buf, qsize, err, sizeof err) != 0)
		bench_fail("%s", err);
}

static inline void t_recv(int dir, void *buf)
{
	char err[512];
	size_t got = 0;
	if (bmq_receive(q[dir], buf, qsize, &got, err, sizeof err) != 0)
		bench_fail("%s", err);
	if (got != qsize)
		bench_fail("message_queue::receive: a message of %zu bytes, want %zu", got, qsize);
}

static void t_close(struct opts *o)
{
	(void)o;
	for (int d = DOWN; d <= UP; d++)
		if (q[d] != NULL)
			bmq_close(q[d]);
}

static void t_describe(const struct opts *o, char *buf, size_t len)
{
	snprintf(buf, len, "Boost %s interprocess::message_queue /dev/shm/%s-*, depth %" PRIu64 ", blocking send/receive",
		 bmq_version(), o->name, o->depth);
}

int main(int argc, char **argv) { return engine_main(argc, argv); }
