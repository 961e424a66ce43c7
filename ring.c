/* The message ring (docs/PROTOCOL.md, "Ring"): records in a byte buffer after a 512-byte control
 * block, a lock-free path for a side owned by one handle, a lock for shared sides, and blocking by
 * an adaptive spin (or a yield, on a CPU shared with the peer), then a futex. Only
 * mmipc_ring_create and mmipc_ring_open enter Go (to make and validate the region); everything else
 * is plain C and works in a forked child.
 *
 * Shared memory is hostile input: every word read from the ring is read once into a local and
 * checked before it is used as a length or an index; a bad one is EPROTO, never an access outside
 * the buffer. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sync_internal.h"

#define RING_CONTROL_SIZE 512
#define RING_MIN_CAPACITY (UINT64_C(1) << 10)
#define RING_MAX_CAPACITY (UINT64_C(1) << 30)
#define RECORD_HEADER 8
#define RECORD_MESSAGE 1u
#define RECORD_PADDING 2u
#define SIDE_SHARED UINT64_MAX /* a side's owner word: shared, every operation takes the side lock */

/* A side (PROTOCOL "Sides"): which handle may publish tail (send side) or head (receive side). */
struct ring_side {
	_Atomic uint64_t owner;
	_Atomic uint32_t owner_handle;
	_Atomic uint32_t in_op;
	_Atomic uint32_t revoke;
	_Atomic uint32_t cpu;
	uint32_t reserved[10];
};

/* The control block; each line is one cache line, written by one party. */
struct ring_control {
	char magic[8];
	uint32_t ring_version;
	uint32_t control_size;
	uint64_t capacity;
	uint32_t reserved0;
	uint32_t ring_crc;
	uint32_t reserved1[8];
	_Atomic uint64_t tail; /* senders */
	_Atomic uint32_t recv_sleepers;
	uint32_t pad1[13];
	_Atomic uint64_t head; /* receivers */
	_Atomic uint32_t send_sleepers;
	uint32_t pad2[13];
	struct ring_side send;
	struct ring_side recv;
	mmipc_lock send_lock;
	mmipc_lock recv_lock;
	uint32_t reserved2[16];
};

_Static_assert(sizeof(struct ring_side) == 64, "a side is 64 bytes");
_Static_assert(offsetof(struct ring_side, owner) == 0 && offsetof(struct ring_side, owner_handle) == 8 &&
		       offsetof(struct ring_side, in_op) == 12 && offsetof(struct ring_side, revoke) == 16 &&
		       offsetof(struct ring_side, cpu) == 20,
	       "side field offsets");
_Static_assert(sizeof(struct ring_control) == RING_CONTROL_SIZE, "the control block is 512 bytes");
_Static_assert(offsetof(struct ring_control, capacity) == 16 && offsetof(struct ring_control, ring_crc) == 28,
	       "control header offsets");
_Static_assert(offsetof(struct ring_control, tail) == 64 && offsetof(struct ring_control, recv_sleepers) == 72,
	       "tail line");
_Static_assert(offsetof(struct ring_control, head) == 128 && offsetof(struct ring_control, send_sleepers) == 136,
	       "head line");
_Static_assert(offsetof(struct ring_control, send) == 192 && offsetof(struct ring_control, recv) == 256,
	       "side offsets");
_Static_assert(offsetof(struct ring_control, send_lock) == 320 && offsetof(struct ring_control, recv_lock) == 384,
	       "lock offsets");

enum side_mode { SIDE_NONE, SIDE_EXCLUSIVE, SIDE_SHARED_MODE };
enum entered { ENTER_FAST = 1, ENTER_LOCKED = 2 };

/* One handle's view of one side. */
struct side_handle {
	struct ring_side *side;
	mmipc_lock *lock;
	struct ring_side *peer; /* the other side: its cpu word decides whether waiting spins */
	enum side_mode mode;
	int relaxed_in_op; /* exclusive, and registered for membarrier: in_op needs no fence */
	uint64_t ident;    /* the identity the side was claimed or locked with */
	uint64_t peer_pos; /* the last peer position read: head for senders, tail for receivers */
	uint32_t cpu_epoch; /* mmipc__wait_epoch when the side's cpu word was last noted */
	struct mmipc__spin spin;
};

struct mmipc_ring {
	struct side_handle tx, rx; /* hot: first */
	struct ring_control *ctl;
	unsigned char *buf;
	uint64_t cap, mask, max_msg;
	uint32_t handle_no;
	pid_t pid; /* the process this handle's claims and pending operations belong to */

	/* reserve .. commit: the send side is held (how), the record goes at res_pos; res_tail is the
	 * tail seen at reserve (res_pos is after any padding). */
	int res_pending, res_how;
	uint64_t res_tail, res_pos, res_len;
	/* peek .. release: the receive side is held (how); releasing publishes head = peek_next. */
	int peek_pending, peek_how;
	uint64_t peek_next;
	const void *peek_ptr;
	size_t peek_len;

	mmipc_region *region;
};

/* Handle numbers, unique within the process (owner_handle); 0 is never one. */
static _Atomic uint32_t handle_counter;

static inline uint64_t round8(uint64_t n) { return (n + 7) & ~(uint64_t)7; }

static inline uint64_t record_header(uint32_t len, uint32_t kind, uint64_t pos)
{
	uint32_t tag = kind | (uint32_t)(pos >> 3) << 8;
	return (uint64_t)len | (uint64_t)tag << 32; /* len at offset 0, tag at 4 (little-endian) */
}

static inline _Atomic uint64_t *header_at(const struct mmipc_ring *q, uint64_t pos)
{
	return (_Atomic uint64_t *)(void *)(q->buf + (pos & q->mask));
}

/* ---- errors ---- */

__attribute__((format(printf, 3, 4))) static int fail(const char *call, int err, const char *fmt, ...)
{
	if (err == EAGAIN || err == ETIMEDOUT) {
		errno = err; /* expected outcomes on hot paths: no message */
		return -1;
	}
	char msg[MMIPC_ERRBUF_SIZE / 2];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	mmipc__set_error(err, "%s: %s", call, msg);
	return -1;
}

static int bad_args(const char *call, int64_t timeout_ns, const mmipc_ring *q)
{
	if (q == NULL)
		return fail(call, EINVAL, "ring handle is NULL");
	return mmipc__check_timeout(call, timeout_ns) ? 0 : -1;
}

/* ---- fork ---- */

/* A handle used in a process other than the one its state belongs to (a forked child): the
 * parent's exclusive claims and pending reservation or peek are not the child's. The child joins
 * as a new participant; the shared words stay as they are (the parent may still use them). */
static void adopt_slow(struct mmipc_ring *q)
{
	pid_t pid = mmipc__self_pid();
	if (q->pid == pid)
		return;
	q->pid = pid;
	if (q->tx.mode == SIDE_EXCLUSIVE)
		q->tx.mode = SIDE_NONE;
	if (q->rx.mode == SIDE_EXCLUSIVE)
		q->rx.mode = SIDE_NONE;
	q->res_pending = 0;
	q->peek_pending = 0;
}

static inline void adopt(struct mmipc_ring *q)
{
	if (__builtin_expect(q->pid != atomic_load_explicit(&mmipc__cached_pid, memory_order_relaxed), 0))
		adopt_slow(q);
}

/* ---- sides ---- */

/* The exclusive owner's entry: in_op = 1, then check that nobody revoked and the side is still
 * ours. With membarrier registration the store needs no fence (a revoker's membarrier orders it);
 * without, store and load are sequentially consistent (Dekker against the revoker). */
static inline int in_op_begin(const struct mmipc_ring *q, struct side_handle *s)
{
	struct ring_side *sd = s->side;
	uint32_t revoke;
	if (s->relaxed_in_op) {
		atomic_store_explicit(&sd->in_op, 1, memory_order_relaxed);
		atomic_signal_fence(memory_order_seq_cst);
		revoke = atomic_load_explicit(&sd->revoke, memory_order_relaxed);
	} else {
		atomic_store(&sd->in_op, 1);
		revoke = atomic_load(&sd->revoke);
	}
	if (__builtin_expect(revoke == 0, 1) &&
	    atomic_load_explicit(&sd->owner, memory_order_relaxed) == s->ident &&
	    atomic_load_explicit(&sd->owner_handle, memory_order_relaxed) == q->handle_no)
		return 1;
	atomic_store_explicit(&sd->in_op, 0, memory_order_release);
	return 0;
}

static void become_exclusive(const struct mmipc_ring *q, struct side_handle *s, uint64_t self)
{
	atomic_store(&s->side->owner_handle, q->handle_no);
	atomic_store(&s->side->in_op, 0); /* a dead owner may have died inside an operation */
	s->ident = self;
	s->relaxed_in_op = mmipc__membarrier_registered();
	s->mode = SIDE_EXCLUSIVE;
	mmipc__note_cpu(&s->side->cpu);
	s->cpu_epoch = atomic_load_explicit(&mmipc__wait_epoch, memory_order_relaxed);
}

/* Revokes the exclusive claim of the live owner o: revoke = 1, make the owner's in_op store visible
 * with a membarrier, wait until it is outside an operation (a dead owner does not block), then
 * owner = shared. Returns 0 when the caller should look at the side again, or -errno. */
static int side_revoke(struct side_handle *s, uint64_t o, struct mmipc__deadline *d)
{
	struct ring_side *sd = s->side;
	atomic_store(&sd->revoke, 1);
	/* Without a membarrier the owner's fence-free in_op store may be invisible: then only the owner
	 * itself (converting at its next operation), its release or its death ends the wait. */
	int fenced = mmipc__membarrier_global() == 0;
	int64_t pause_ns = 1000, last_check = 0;
	for (;;) {
		uint64_t cur = atomic_load(&sd->owner);
		if (cur != o)
			return 0;
		if (fenced && atomic_load(&sd->in_op) == 0) {
			atomic_compare_exchange_strong(&sd->owner, &cur, SIDE_SHARED);
			return 0; /* swapped, or the owner changed: look again either way */
		}
		int64_t now = mmipc__now_ns();
		if (d->timeout == 0 || now - last_check >= MMIPC__NS_PER_MS) {
			last_check = now;
			if (!mmipc__identity_alive(o)) {
				atomic_compare_exchange_strong(&sd->owner, &cur, SIDE_SHARED);
				return 0;
			}
		}
		if (d->timeout == 0)
			return -EAGAIN;
		int64_t until = mmipc__deadline_at(d, 0);
		if (now >= until)
			return -ETIMEDOUT;
		int64_t t = until - now < pause_ns ? until - now : pause_ns;
		struct timespec ts = {(time_t)(t / 1000000000), (long)(t % 1000000000)};
		nanosleep(&ts, NULL);
		if (pause_ns < MMIPC__NS_PER_MS)
			pause_ns *= 2;
	}
}

/* A first operation (or one after a fork or a lost claim): claim an unclaimed side or one whose
 * owner died, join a shared one, or revoke a live owner's claim. Sets s->mode; 0 or -errno. */
static int side_claim(struct mmipc_ring *q, struct side_handle *s, struct mmipc__deadline *d)
{
	struct ring_side *sd = s->side;
	uint64_t self = mmipc__self_identity();
	for (unsigned tries = 0;; tries++) {
		uint64_t o = atomic_load(&sd->owner);
		if (o == SIDE_SHARED) {
			s->mode = SIDE_SHARED_MODE;
			return 0;
		}
		if (o == 0 || (o != self && !mmipc__identity_alive(o))) {
			if (atomic_compare_exchange_strong(&sd->owner, &o, self)) {
				become_exclusive(q, s, self);
				return 0;
			}
		} else {
			int r = side_revoke(s, o, d);
			if (r < 0)
				return r;
		}
		/* The owner word changes only a bounded number of times unless someone scribbles on it. */
		if (tries >= 64 && (d->timeout == 0 || mmipc__now_ns() >= mmipc__deadline_at(d, 0)))
			return -mmipc__expired(d);
	}
}

/* Enters the side for one operation: ENTER_FAST (exclusive, in_op = 1) or ENTER_LOCKED (shared,
 * the side lock held), or -errno (EAGAIN, ETIMEDOUT, EPROTO for a damaged side lock). */
static int side_enter_slow(struct mmipc_ring *q, struct side_handle *s, struct mmipc__deadline *d)
{
	for (;;) {
		switch (s->mode) {
		case SIDE_EXCLUSIVE: {
			if (in_op_begin(q, s))
				return ENTER_FAST;
			/* Revoked: convert the side ourselves while it is still ours; or it was taken. */
			uint64_t o = s->ident;
			if (atomic_load(&s->side->owner_handle) == q->handle_no &&
			    atomic_compare_exchange_strong(&s->side->owner, &o, SIDE_SHARED))
				o = SIDE_SHARED;
			s->mode = o == SIDE_SHARED ? SIDE_SHARED_MODE : SIDE_NONE;
			break;
		}
		case SIDE_SHARED_MODE: {
			uint64_t self = mmipc__self_identity();
			int r = mmipc__lock_acquire(s->lock, self, d);
			if (r == EOWNERDEAD) {
				/* A holder that died published nothing: nothing to repair. */
				mmipc__lock_consistent(s->lock, self);
				r = 0;
			}
			if (r != 0)
				return -r;
			s->ident = self;
			return ENTER_LOCKED;
		}
		case SIDE_NONE: {
			int r = side_claim(q, s, d);
			if (r < 0)
				return r;
			break;
		}
		}
	}
}

static inline int side_enter(struct mmipc_ring *q, struct side_handle *s, struct mmipc__deadline *d)
{
	if (__builtin_expect(s->mode == SIDE_EXCLUSIVE, 1) && in_op_begin(q, s))
		return ENTER_FAST;
	return side_enter_slow(q, s, d);
}

static inline void side_leave(struct side_handle *s, int how)
{
	if (how == ENTER_FAST)
		atomic_store_explicit(&s->side->in_op, 0, memory_order_release);
	else
		mmipc__lock_release(s->lock, s->ident);
}

static const char *side_error(int err)
{
	return err == ENOTRECOVERABLE ? "the side's lock is not recoverable" : "the side's lock word is damaged";
}

/* ---- the records ---- */

/* Finds room for a record of rec bytes (plus the padding it needs before the buffer's end).
 * Returns 0 with *t (the tail) and *pad, 1 when full (*seen: the head to wait on), or -EPROTO. */
static inline int find_room(struct mmipc_ring *q, uint64_t rec, uint64_t *t_out, uint64_t *pad_out, uint64_t *seen)
{
	struct ring_control *c = q->ctl;
	uint64_t t = atomic_load_explicit(&c->tail, memory_order_acquire);
	uint64_t off = t & q->mask;
	uint64_t pad = off + rec > q->cap ? q->cap - off : 0;
	uint64_t need = pad + rec; /* < capacity: rec <= capacity / 2 and pad < rec */
	uint64_t h = q->tx.peer_pos;
	if (__builtin_expect(t - h > q->cap - need, 0)) {
		/* Full by the cached head (or the cache is stale): read the real one. */
		h = atomic_load_explicit(&c->head, memory_order_acquire);
		q->tx.peer_pos = h;
		if (((t | h) & 7) != 0 || t - h > q->cap)
			return -EPROTO;
		if (t - h > q->cap - need) {
			*seen = h;
			return 1;
		}
	}
	if ((t & 7) != 0)
		return -EPROTO;
	*t_out = t;
	*pad_out = pad;
	return 0;
}

/* Reads and checks the next message's record. Returns 0 with *pos (its position), *len and *next
 * (head after it, past any padding before it), 1 when there is none (*seen: the tail to wait on),
 * or -EPROTO. An EPROTO drops the cached tail: the damage may be in it (a scribbled tail read
 * earlier), and a cached bad value would fail every later call, even after the ring is repaired. */
static inline int next_record(struct mmipc_ring *q, uint64_t *pos, uint32_t *len_out, uint64_t *next, uint64_t *seen)
{
	struct ring_control *c = q->ctl;
	uint64_t h = atomic_load_explicit(&c->head, memory_order_acquire);
	uint64_t t = q->rx.peer_pos;
	if (__builtin_expect(h == t || t - h > q->cap, 0)) {
		t = atomic_load_explicit(&c->tail, memory_order_acquire);
		q->rx.peer_pos = t;
	}
	if (((h | t) & 7) != 0 || t - h > q->cap)
		goto damaged;
	for (int paddings = 0;; paddings++) {
		if (h == t) {
			*seen = t;
			return 1;
		}
		uint64_t off = h & q->mask;
		uint64_t hdr = atomic_load_explicit(header_at(q, h), memory_order_relaxed); /* once */
		uint32_t len = (uint32_t)hdr, tag = (uint32_t)(hdr >> 32);
		if (tag >> 8 != ((uint32_t)(h >> 3) & 0xFFFFFFu))
			goto damaged;
		if ((tag & 0xFF) == RECORD_PADDING && paddings == 0) {
			/* Padding runs exactly to the buffer's end, inside what was published. */
			if ((uint64_t)len + RECORD_HEADER != q->cap - off || q->cap - off > t - h)
				goto damaged;
			h += q->cap - off;
			continue;
		}
		if ((tag & 0xFF) != RECORD_MESSAGE || len > q->max_msg)
			goto damaged;
		uint64_t rec = RECORD_HEADER + round8(len);
		if (off + rec > q->cap || rec > t - h)
			goto damaged;
		*pos = h;
		*len_out = len;
		*next = h + rec;
		return 0;
	}
damaged:
	q->rx.peer_pos = atomic_load_explicit(&c->head, memory_order_relaxed); /* h == t: reload next time */
	return -EPROTO;
}

/* After publishing: 1 when peers are counted as sleeping on the word. The count is read without a
 * fence after the publishing store when this process is registered for membarrier (a sleeper's
 * membarrier orders the two, see mmipc__await_change); otherwise with one. */
static inline int sleepers_counted(const struct side_handle *s, int how, _Atomic uint32_t *sleepers)
{
	if ((how == ENTER_FAST && s->relaxed_in_op) || mmipc__membarrier_registered())
		atomic_signal_fence(memory_order_seq_cst);
	else
		atomic_thread_fence(memory_order_seq_cst);
	return atomic_load_explicit(sleepers, memory_order_relaxed) != 0;
}

/* A publish after a wait that yielded or slept notes where the side runs now: a peer that waits
 * for it reads the word to choose between spinning and yielding (a ping-pong waits on one ring and
 * publishes on the other, so the waits alone would leave this side's word as it was claimed). */
static inline void note_cpu_after_wait(struct side_handle *s)
{
	uint32_t e = atomic_load_explicit(&mmipc__wait_epoch, memory_order_relaxed);
	if (__builtin_expect(e != s->cpu_epoch, 0)) {
		s->cpu_epoch = e;
		mmipc__note_cpu(&s->side->cpu);
	}
}

static int ring_damaged(struct mmipc_ring *q, const char *call)
{
	return fail(call, EPROTO, "protocol error: the ring's control words or records are damaged (tail %llu, head %llu, capacity %llu)",
		    (unsigned long long)atomic_load(&q->ctl->tail), (unsigned long long)atomic_load(&q->ctl->head),
		    (unsigned long long)q->cap);
}

/* Enter failed with -r: the caller's errno and message. */
static int enter_failed(const char *call, int err)
{
	if (err == ENOTRECOVERABLE || err == EPROTO)
		return fail(call, EPROTO, "protocol error: %s", side_error(err));
	return fail(call, err, "%s", strerror(err));
}

/* ---- sending ---- */

/* The common start of send and reserve: checks the arguments, enters the send side with room for
 * a message of len bytes (waiting as timeout_ns allows) and writes the padding record, if any.
 * Returns 0 with the side held (*how), the tail found (*t) and the record's position (*p, after the
 * padding); or -1 with errno. (send_begin and recv_begin are forced inline: the calls cost about
 * 10 ns of a 250 ns round trip.) */
static inline __attribute__((always_inline)) int send_begin(struct mmipc_ring *q, const char *call, size_t len,
							    int64_t timeout_ns, int *how, uint64_t *t, uint64_t *p)
{
	if (bad_args(call, timeout_ns, q) != 0)
		return -1;
	adopt(q);
	if (q->res_pending)
		return fail(call, EBUSY, "a reservation is pending on this handle (mmipc_ring_commit it first)");
	if (len > q->max_msg)
		return fail(call, EMSGSIZE, "message of %zu bytes is larger than the ring's largest, %llu bytes", len,
			    (unsigned long long)q->max_msg);
	uint64_t rec = RECORD_HEADER + round8(len), pad = 0;
	struct mmipc__deadline d = mmipc__deadline_make(timeout_ns);
	for (;;) {
		int h = side_enter(q, &q->tx, &d);
		if (__builtin_expect(h < 0, 0))
			return enter_failed(call, -h);
		uint64_t seen;
		int r = find_room(q, rec, t, &pad, &seen);
		if (__builtin_expect(r == 0, 1)) {
			*how = h;
			break;
		}
		side_leave(&q->tx, h);
		if (r < 0)
			return ring_damaged(q, call);
		/* Full: wait outside the operation, so revokers and other senders are not held up. */
		int w = mmipc__await_change(&q->ctl->head, seen, &q->ctl->send_sleepers, &q->tx.side->cpu,
					    &q->tx.peer->cpu, &q->tx.spin, &d);
		if (w != 0)
			return fail(call, w, "%s", strerror(w));
	}
	if (pad != 0)
		atomic_store_explicit(header_at(q, *t),
				      record_header((uint32_t)(pad - RECORD_HEADER), RECORD_PADDING, *t),
				      memory_order_relaxed);
	*p = *t + pad;
	return 0;
}

/* Writes the message header at p and publishes the tail past it; then leaves and wakes. */
static inline void send_publish(struct mmipc_ring *q, int how, uint64_t p, uint32_t len)
{
	atomic_store_explicit(header_at(q, p), record_header(len, RECORD_MESSAGE, p), memory_order_relaxed);
	atomic_store_explicit(&q->ctl->tail, p + RECORD_HEADER + round8(len), memory_order_release);
	note_cpu_after_wait(&q->tx);
	side_leave(&q->tx, how);
	if (sleepers_counted(&q->tx, how, &q->ctl->recv_sleepers))
		mmipc__wake_sleepers(&q->ctl->recv_sleepers, &q->ctl->tail);
}

int mmipc_ring_send(mmipc_ring *q, const void *msg, size_t len, int64_t timeout_ns)
{
	const char *call = "mmipc_ring_send";
	if (q != NULL && msg == NULL && len > 0)
		return fail(call, EINVAL, "msg is NULL with len %zu", len);
	int how = 0;
	uint64_t t = 0, p = 0;
	if (send_begin(q, call, len, timeout_ns, &how, &t, &p) != 0)
		return -1;
	if (len > 0) /* msg may be NULL then */
		memcpy(q->buf + (p & q->mask) + RECORD_HEADER, msg, len);
	send_publish(q, how, p, (uint32_t)len);
	return 0;
}

void *mmipc_ring_reserve(mmipc_ring *q, size_t len, int64_t timeout_ns)
{
	const char *call = "mmipc_ring_reserve";
	int how = 0;
	uint64_t t = 0, p = 0;
	if (send_begin(q, call, len, timeout_ns, &how, &t, &p) != 0)
		return NULL;
	q->res_pending = 1;
	q->res_how = how;
	q->res_tail = t;
	q->res_pos = p;
	q->res_len = len;
	return q->buf + (q->res_pos & q->mask) + RECORD_HEADER;
}

int mmipc_ring_commit(mmipc_ring *q, size_t len)
{
	const char *call = "mmipc_ring_commit";
	if (q == NULL)
		return fail(call, EINVAL, "ring handle is NULL");
	adopt(q);
	if (!q->res_pending)
		return fail(call, EINVAL, "no reservation is pending on this handle");
	if (len > q->res_len)
		return fail(call, EINVAL, "len %zu is larger than the %llu bytes reserved", len,
			    (unsigned long long)q->res_len);
	q->res_pending = 0;
	if (atomic_load_explicit(&q->ctl->tail, memory_order_relaxed) != q->res_tail) {
		/* Nobody else may publish while we hold the side: someone scribbled on the ring. */
		side_leave(&q->tx, q->res_how);
		return ring_damaged(q, call);
	}
	send_publish(q, q->res_how, q->res_pos, (uint32_t)len);
	return 0;
}

/* ---- receiving ---- */

/* Enters the receive side with a message available: the side held (*how), the record checked.
 * 0 or -1 with errno. */
static inline __attribute__((always_inline)) int recv_begin(struct mmipc_ring *q, const char *call, int64_t timeout_ns, int *how, uint64_t *pos,
		      uint32_t *len, uint64_t *next)
{
	struct mmipc__deadline d = mmipc__deadline_make(timeout_ns);
	for (;;) {
		int h = side_enter(q, &q->rx, &d);
		if (__builtin_expect(h < 0, 0))
			return enter_failed(call, -h);
		uint64_t seen;
		int r = next_record(q, pos, len, next, &seen);
		if (__builtin_expect(r == 0, 1)) {
			*how = h;
			return 0;
		}
		side_leave(&q->rx, h);
		if (r < 0)
			return ring_damaged(q, call);
		int w = mmipc__await_change(&q->ctl->tail, seen, &q->ctl->recv_sleepers, &q->rx.side->cpu,
					    &q->rx.peer->cpu, &q->rx.spin, &d);
		if (w != 0)
			return fail(call, w, "%s", strerror(w));
	}
}

/* Publishes head = next; then leaves and wakes sleeping senders, but only once the ring is at most
 * half full (PROTOCOL "Sleeping and waking"): they then send in bulk instead of waking per
 * consumption. The tail is read only then (a stale one errs towards waking). */
static inline void recv_publish(struct mmipc_ring *q, int how, uint64_t next)
{
	atomic_store_explicit(&q->ctl->head, next, memory_order_release);
	note_cpu_after_wait(&q->rx);
	side_leave(&q->rx, how);
	if (sleepers_counted(&q->rx, how, &q->ctl->send_sleepers) &&
	    atomic_load_explicit(&q->ctl->tail, memory_order_relaxed) - next <= q->cap / 2)
		mmipc__wake_sleepers(&q->ctl->send_sleepers, &q->ctl->head);
}

ssize_t mmipc_ring_recv(mmipc_ring *q, void *buf, size_t cap, int64_t timeout_ns)
{
	const char *call = "mmipc_ring_recv";
	if (q != NULL && buf == NULL && cap > 0)
		return fail(call, EINVAL, "buf is NULL with cap %zu", cap);
	if (bad_args(call, timeout_ns, q) != 0)
		return -1;
	adopt(q);
	if (q->peek_pending)
		return fail(call, EBUSY, "a peek is pending on this handle (mmipc_ring_release it first)");
	int how = 0;
	uint64_t pos = 0, next = 0;
	uint32_t len = 0;
	if (recv_begin(q, call, timeout_ns, &how, &pos, &len, &next) != 0)
		return -1;
	if (len > cap) {
		side_leave(&q->rx, how); /* the message stays */
		return fail(call, EMSGSIZE, "the next message has %u bytes; the buffer holds %zu", len, cap);
	}
	if (len > 0) /* buf may be NULL then */
		memcpy(buf, q->buf + (pos & q->mask) + RECORD_HEADER, len);
	recv_publish(q, how, next);
	return (ssize_t)len;
}

const void *mmipc_ring_peek(mmipc_ring *q, size_t *len, int64_t timeout_ns)
{
	const char *call = "mmipc_ring_peek";
	if (q != NULL && len == NULL) {
		fail(call, EINVAL, "len is NULL");
		return NULL;
	}
	if (bad_args(call, timeout_ns, q) != 0)
		return NULL;
	adopt(q);
	if (q->peek_pending) {
		*len = q->peek_len;
		return q->peek_ptr;
	}
	int how = 0;
	uint64_t pos = 0, next = 0;
	uint32_t n = 0;
	if (recv_begin(q, call, timeout_ns, &how, &pos, &n, &next) != 0)
		return NULL;
	q->peek_pending = 1;
	q->peek_how = how;
	q->peek_next = next;
	q->peek_ptr = q->buf + (pos & q->mask) + RECORD_HEADER;
	q->peek_len = n;
	*len = n;
	return q->peek_ptr;
}

int mmipc_ring_release(mmipc_ring *q)
{
	const char *call = "mmipc_ring_release";
	if (q == NULL)
		return fail(call, EINVAL, "ring handle is NULL");
	adopt(q);
	if (!q->peek_pending)
		return fail(call, EINVAL, "nothing is peeked on this handle");
	q->peek_pending = 0;
	recv_publish(q, q->peek_how, q->peek_next);
	return 0;
}

/* ---- handles ---- */

static void side_init(struct side_handle *s, struct ring_side *side, mmipc_lock *lock, struct ring_side *peer)
{
	s->side = side;
	s->lock = lock;
	s->peer = peer;
	s->mode = SIDE_NONE;
	mmipc__spin_init(&s->spin);
}

static mmipc_ring *ring_from_region(mmipc_region *r, const char *call, const char *name)
{
	if (r == NULL)
		return NULL;
	struct ring_control *c = r->data;
	uint64_t cap = c->capacity; /* validated by the opener; checked again before it sizes anything */
	if (cap < RING_MIN_CAPACITY || cap > RING_MAX_CAPACITY || (cap & (cap - 1)) != 0 ||
	    r->size != RING_CONTROL_SIZE + cap) {
		mmipc_detach(r);
		fail(call, EPROTO, "\"%s\": protocol error: ring capacity %llu does not match the region", name,
		     (unsigned long long)cap);
		return NULL;
	}
	mmipc_ring *q = calloc(1, sizeof *q);
	if (q == NULL) {
		mmipc_detach(r);
		fail(call, ENOMEM, "\"%s\": out of memory for the handle", name);
		return NULL;
	}
	q->region = r;
	q->ctl = c;
	q->buf = (unsigned char *)r->data + RING_CONTROL_SIZE;
	q->cap = cap;
	q->mask = cap - 1;
	q->max_msg = cap / 2 - RECORD_HEADER;
	q->handle_no = atomic_fetch_add(&handle_counter, 1) + 1;
	q->pid = mmipc__self_pid();
	side_init(&q->tx, &c->send, &c->send_lock, &c->recv);
	side_init(&q->rx, &c->recv, &c->recv_lock, &c->send);
	mmipc__membarrier_registered(); /* register once per process, before any fast path needs it */
	return q;
}

mmipc_ring *mmipc_ring_create(const char *name, size_t capacity_bytes, unsigned int mode)
{
	return ring_from_region(mmipc__ring_region_create(name, capacity_bytes, mode), "mmipc_ring_create", name);
}

mmipc_ring *mmipc_ring_open(const char *name)
{
	return ring_from_region(mmipc__ring_region_open(name), "mmipc_ring_open", name);
}

size_t mmipc_ring_capacity(const mmipc_ring *q) { return q ? (size_t)q->cap : 0; }

size_t mmipc_ring_max_message(const mmipc_ring *q) { return q ? (size_t)q->max_msg : 0; }

/* Gives up what this handle holds: a pending operation (nothing published) and exclusive claims. */
static void side_close(struct mmipc_ring *q, struct side_handle *s)
{
	if (s->mode != SIDE_EXCLUSIVE)
		return;
	uint64_t o = s->ident;
	if (atomic_load(&s->side->owner_handle) == q->handle_no)
		atomic_compare_exchange_strong(&s->side->owner, &o, 0);
}

int mmipc_ring_close(mmipc_ring *q)
{
	if (q == NULL)
		return 0;
	adopt(q);
	if (q->res_pending)
		side_leave(&q->tx, q->res_how);
	if (q->peek_pending)
		side_leave(&q->rx, q->peek_how);
	side_close(q, &q->tx);
	side_close(q, &q->rx);
	mmipc_region *r = q->region;
	free(q);
	return mmipc_detach(r);
}
