// boost_mq_shim.cpp - the C++ half of the boost-mq peer engine (boost_mq.c): a C interface to
// boost::interprocess::message_queue, so that the engine shares bench/c/bench.h (C) with the
// other engines. Every call catches Boost's exceptions and returns -1 (or NULL) with the message
// in err. Header-only Boost: on Linux the queue is a POSIX shared-memory object (/dev/shm/NAME)
// guarded by a process-shared pthread mutex and two condition variables; send blocks while the
// queue is full, receive while it is empty.
#include <boost/interprocess/ipc/message_queue.hpp>
#include <boost/version.hpp>

#include <cstdio>
#include <exception>
#include <new>
#include <utility>

namespace bip = boost::interprocess;

extern "C" {
#include "boost_mq_shim.h"
}

struct bmq {
	bip::message_queue q;
	template <class... A> explicit bmq(A &&...a) : q(std::forward<A>(a)...) {}
};

static void put_err(char *err, size_t len, const char *what, const std::exception &e)
{
	std::snprintf(err, len, "%s: %s", what, e.what());
}

extern "C" struct bmq *bmq_create(const char *name, size_t depth, size_t size, char *err, size_t errlen)
{
	try {
		return new bmq(bip::create_only, name, depth, size, bip::permissions(0600));
	} catch (const std::exception &e) {
		put_err(err, errlen, "message_queue(create_only)", e);
		return nullptr;
	}
}

extern "C" struct bmq *bmq_open(const char *name, char *err, size_t errlen)
{
	try {
		return new bmq(bip::open_only, name);
	} catch (const std::exception &e) {
		put_err(err, errlen, "message_queue(open_only)", e);
		return nullptr;
	}
}

extern "C" int bmq_send(struct bmq *m, const void *buf, size_t n, char *err, size_t errlen)
{
	try {
		m->q.send(buf, n, 0);
		return 0;
	} catch (const std::exception &e) {
		put_err(err, errlen, "message_queue::send", e);
		return -1;
	}
}

extern "C" int bmq_receive(struct bmq *m, void *buf, size_t n, size_t *got, char *err, size_t errlen)
{
	try {
		bip::message_queue::size_type recvd = 0;
		unsigned prio = 0;
		m->q.receive(buf, n, recvd, prio);
		*got = recvd;
		return 0;
	} catch (const std::exception &e) {
		put_err(err, errlen, "message_queue::receive", e);
		return -1;
	}
}

extern "C" void bmq_close(struct bmq *m) { delete m; }

extern "C" int bmq_remove(const char *name) { return bip::message_queue::remove(name) ? 0 : -1; }

extern "C" const char *bmq_version(void)
{
	static char v[32];
	std::snprintf(v, sizeof v, "%d.%d.%d", BOOST_VERSION / 100000, BOOST_VERSION / 100 % 1000, BOOST_VERSION % 100);
	return v;
}
