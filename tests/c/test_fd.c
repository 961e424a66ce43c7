/* test_fd.c - descriptor passing: mmipc_fd and mmipc_attach_fd.
 *
 *   mmipc_fd   NULL is EBADF; every kind of handle gives an open, close-on-exec descriptor of its
 *              file, stable, with the attachment's access mode.
 *   attach     a named region's descriptor (tmpfs and a disk path) and an anonymous region's: the
 *              same size and bytes both ways, the data after the header; read-only attachments
 *              fault on write (in a forked child); the name may already be unlinked.
 *   ownership  the descriptor stays the caller's: the handle keeps a duplicate of its own.
 *   errors     each errno mmipc.h lists, with a last error naming mmipc_attach_fd.
 *   fork rule  in a forked child mmipc_attach_fd is ENOTSUP at once, mmipc_fd works.
 *   exec       a region passed as fd 3 through fork + exec of this program (role "child"), which
 *              attaches it, checks the parent's bytes and replies through the shared memory.
 *   leaks      ATTACH_CYCLES attach/detach cycles, failing attaches included, leave no descriptor
 *              and no mapping behind.
 * Forked children call only fork-safe functions (mmipc_data, mmipc_size, mmipc_fd,
 * mmipc_last_error) and mmipc_attach_fd, which must refuse; every wait is bounded.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "testutil.h"

#define ATTACH_CYCLES 1000
#define WARMUP 10

static long page;

/* ---- helpers ---- */

static int is_open(int fd) { return fcntl(fd, F_GETFD) != -1; }

static int is_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);
	return fl != -1 && (fl & FD_CLOEXEC) != 0;
}

static int access_mode(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl == -1 ? -1 : (fl & O_ACCMODE);
}

/* fd and path are the same file (device and inode). */
static int same_file(int fd, const char *path)
{
	struct stat a, b;
	return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* Opens path or dies: the descriptors the error cases hand to mmipc_attach_fd. */
static int open_or_die(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC);
	if (fd < 0)
		die(path);
	return fd;
}

/* mmipc_attach_fd(fd, flags) must fail with errno `want` and a last error naming the call. */
#define EXPECT_ATTACH_FAIL(what, fd, flags, want)                                                             \
	do {                                                                                                  \
		errno = 0;                                                                                    \
		mmipc_region *r_ = mmipc_attach_fd((fd), (flags));                                           \
		int e_ = errno;                                                                               \
		const char *m_ = mmipc_last_error();                                                          \
		check(r_ == NULL && e_ == (want) && strstr(m_, "mmipc_attach_fd") != NULL,                  \
		      "%s: mmipc_attach_fd(%s, %s): got %s errno %d (%s) [%s]; want NULL, errno %d (%s) and a "  \
		      "message naming mmipc_attach_fd",                                                       \
		      what, #fd, #flags, r_ ? "a handle" : "NULL", e_, strerror(e_), m_, (want), strerror(want)); \
		if (r_ != NULL)                                                                               \
			mmipc_detach(r_);                                                                     \
	} while (0)

/* a and b map the same bytes through distinct mappings: written at both ends, through each. */
static void expect_shared(const char *what, mmipc_region *a, mmipc_region *b)
{
	unsigned char *p = mmipc_data(a), *q = mmipc_data(b);
	size_t n = mmipc_size(a);
	if (!check(p != NULL && q != NULL && p != q && n > 1 && n == mmipc_size(b),
		   "%s: two mappings of one size: %p and %p, sizes %zu and %zu", what, (void *)p, (void *)q, n, mmipc_size(b)))
		return;
	p[0] = 0xA1;
	q[n - 1] = 0xB2;
	check(q[0] == 0xA1 && p[n - 1] == 0xB2, "%s: shared both ways: got %#x and %#x, want 0xa1 and 0xb2", what, q[0],
	      p[n - 1]);
}

/* Fills n bytes at p with a pattern depending on seed. */
static void fill(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(i * 7 + seed);
}

/* ---- mmipc_fd ---- */

static void test_mmipc_fd(void)
{
	errno = 0;
	int f = mmipc_fd(NULL);
	int e = errno;
	check(f == -1 && e == EBADF && strstr(mmipc_last_error(), "mmipc_fd") != NULL,
	      "mmipc_fd(NULL): got %d errno %d (%s) [%s]; want -1 EBADF and a message naming mmipc_fd", f, e, strerror(e),
	      mmipc_last_error());

	char data[100];
	memset(data, 'd', sizeof data);
	if (write_file("fd-basic.dat", data, sizeof data, 0600) != 0)
		die("fd-basic.dat");
	struct {
		const char *kind;
		mmipc_region *r;
		const char *path; /* the file behind it, or NULL (anonymous) */
		int mode;         /* the descriptor's access mode */
	} h[] = {
		{"mmipc_create", mmipc_create("fd-basic", 5000, 0600), "fd-basic", O_RDWR},
		{"mmipc_open", mmipc_open("fd-basic", 0), "fd-basic", O_RDWR},
		{"mmipc_open MMIPC_RDONLY", mmipc_open("fd-basic", MMIPC_RDONLY), "fd-basic", O_RDONLY},
		{"mmipc_anon", mmipc_anon(5000), NULL, O_RDWR},
		{"mmipc_map_file writable", mmipc_map_file("fd-basic.dat", 1), "fd-basic.dat", O_RDWR},
		{"mmipc_map_file read-only", mmipc_map_file("fd-basic.dat", 0), "fd-basic.dat", O_RDONLY},
	};
	const int n = (int)(sizeof h / sizeof h[0]);
	int fds[sizeof h / sizeof h[0]];
	for (int i = 0; i < n; i++) {
		fds[i] = -1;
		if (!check(h[i].r != NULL, "mmipc_fd: a handle from %s [%s]", h[i].kind, h[i].r ? "" : mmipc_last_error()))
			continue;
		int fd = fds[i] = mmipc_fd(h[i].r);
		check(fd >= 0 && is_open(fd), "mmipc_fd of a %s handle: got %d, want an open descriptor", h[i].kind, fd);
		check(is_cloexec(fd), "mmipc_fd of a %s handle: descriptor %d is close-on-exec", h[i].kind, fd);
		check(mmipc_fd(h[i].r) == fd, "mmipc_fd of a %s handle: the same number on every call (%d, then %d)", h[i].kind,
		      fd, mmipc_fd(h[i].r));
		check(access_mode(fd) == h[i].mode, "mmipc_fd of a %s handle: access mode %d, want %d", h[i].kind,
		      access_mode(fd), h[i].mode);
		if (h[i].path != NULL) {
			check(same_file(fd, h[i].path), "mmipc_fd of a %s handle: the descriptor is %s's file", h[i].kind,
			      h[i].path);
		} else {
			int seals = fcntl(fd, F_GET_SEALS);
			check(seals != -1 && (seals & F_SEAL_SHRINK), "mmipc_fd of a %s handle: a memfd sealed against shrinking: seals %#x",
			      h[i].kind, (unsigned)seals);
		}
		for (int j = 0; j < i; j++)
			check(fds[j] != fd, "mmipc_fd: the %s and %s handles have distinct descriptors (%d, %d)", h[j].kind, h[i].kind,
			      fds[j], fd);
	}
	for (int i = 0; i < n; i++)
		mmipc_detach(h[i].r);
	EXPECT_ZERO(mmipc_unlink("fd-basic"));
	unlink("fd-basic.dat");
}

/* ---- attaching a named region's and an anonymous region's descriptor ---- */

static void attach_named_case(const char *what, const char *name, size_t size)
{
	mmipc_region *r = EXPECT_OK_PTR(mmipc_create(name, size, 0600));
	if (r == NULL)
		return;
	unsigned char *p = mmipc_data(r);
	fill(p, size, 1);
	int fd = mmipc_fd(r);

	mmipc_region *a = EXPECT_OK_PTR(mmipc_attach_fd(fd, 0));
	if (a != NULL) {
		unsigned char *q = mmipc_data(a);
		check(mmipc_size(a) == size, "%s: attached size %zu, want %zu", what, mmipc_size(a), size);
		check(q != p && (uintptr_t)q % (uintptr_t)page == 0, "%s: a page-aligned mapping of its own: %p (creator's %p)",
		      what, (void *)q, (void *)p);
		check(mmipc_size(a) == size && memcmp(q, p, size) == 0, "%s: the attachment reads the creator's bytes", what);
		/* The data is the file after its header page. */
		unsigned char head[32];
		check(pread(fd, head, sizeof head, page) == (ssize_t)sizeof head && memcmp(head, q, sizeof head) == 0,
		      "%s: the attached data is the file from offset %ld (after the header)", what, page);
		int afd = mmipc_fd(a);
		check(afd >= 0 && afd != fd && is_cloexec(afd) && same_file(afd, name),
		      "%s: the attachment's descriptor %d is its own close-on-exec duplicate of the file (the caller's is %d)", what,
		      afd, fd);
		expect_shared(what, r, a);
		expect_shared(what, a, r);
	}

	mmipc_region *ro = EXPECT_OK_PTR(mmipc_attach_fd(fd, MMIPC_RDONLY));
	if (ro != NULL) {
		check(mmipc_size(ro) == size, "%s read-only: size %zu, want %zu", what, mmipc_size(ro), size);
		p[7] = 'R';
		check(((unsigned char *)mmipc_data(ro))[7] == 'R', "%s read-only: sees the creator's writes", what);
		expect_write_faults(what, mmipc_data(ro));
		check(p[0] != 'X', "%s read-only: the faulting write did not land", what);
	}

	/* A descriptor opened read-only attaches read-only only. */
	int rofd = open_or_die(name, O_RDONLY);
	EXPECT_ATTACH_FAIL(what, rofd, 0, EACCES);
	mmipc_region *ro2 = EXPECT_OK_PTR(mmipc_attach_fd(rofd, MMIPC_RDONLY));
	if (ro2 != NULL)
		check(mmipc_size(ro2) == size && ((unsigned char *)mmipc_data(ro2))[7] == 'R',
		      "%s: attached from an O_RDONLY descriptor with MMIPC_RDONLY: size %zu", what, mmipc_size(ro2));
	close(rofd);

	/* A descriptor carries no name: the region attaches after mmipc_unlink. */
	EXPECT_ZERO(mmipc_unlink(name));
	mmipc_region *u = EXPECT_OK_PTR(mmipc_attach_fd(fd, 0));
	if (u != NULL)
		expect_shared("after mmipc_unlink", r, u);
	mmipc_detach(u);
	mmipc_detach(ro2);
	mmipc_detach(ro);
	mmipc_detach(a);
	mmipc_detach(r);
}

static void test_attach_named(void)
{
	attach_named_case("named region", "fd-named", 10000);

	/* A disk-backed region (a path): TMPDIR or /tmp, not the tmpfs of MMIPC_DIR. */
	const char *tmp = getenv("TMPDIR");
	char dir[PATH_MAX], path[PATH_MAX];
	snprintf(dir, sizeof dir, "%s/mmipc-fd-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL)
		die("mkdtemp");
	join(path, dir, "disk-region");
	attach_named_case("disk region", path, 5000);
	unlink(path);
	check(rmdir(dir) == 0, "disk region: %s is left empty", dir);
}

#define ANON_SIZE (3 * 4096 + 5)

static void test_attach_anon(void)
{
	mmipc_region *r = EXPECT_OK_PTR(mmipc_anon(ANON_SIZE));
	if (r == NULL)
		return;
	unsigned char *p = mmipc_data(r);
	fill(p, ANON_SIZE, 3);
	mmipc_region *a = EXPECT_OK_PTR(mmipc_attach_fd(mmipc_fd(r), 0));
	if (a != NULL) {
		check(mmipc_size(a) == ANON_SIZE, "anon: attached size %zu, want %d (the memfd, all of it data)", mmipc_size(a),
		      ANON_SIZE);
		check(mmipc_size(a) == ANON_SIZE && memcmp(mmipc_data(a), p, ANON_SIZE) == 0,
		      "anon: the attachment reads the creator's bytes from its first byte");
		check(mmipc_fd(a) != mmipc_fd(r) && is_cloexec(mmipc_fd(a)), "anon: the attachment has its own close-on-exec descriptor");
		expect_shared("anon", r, a);
		expect_shared("anon", a, r);
	}
	mmipc_region *ro = EXPECT_OK_PTR(mmipc_attach_fd(mmipc_fd(r), MMIPC_RDONLY));
	if (ro != NULL) {
		check(mmipc_size(ro) == ANON_SIZE, "anon read-only: size %zu", mmipc_size(ro));
		p[9] = 'R';
		check(((unsigned char *)mmipc_data(ro))[9] == 'R', "anon read-only: sees the creator's writes");
		expect_write_faults("anon", mmipc_data(ro));
		check(p[0] != 'X', "anon read-only: the faulting write did not land");
	}
	mmipc_detach(ro);
	mmipc_detach(a);
	mmipc_detach(r);
}

/* ---- ownership: the handle duplicates, the caller's descriptor stays the caller's ---- */

static void test_ownership(void)
{
	mmipc_region *r = EXPECT_OK_PTR(mmipc_create("fd-own", 4096, 0600));
	if (r == NULL)
		return;
	/* The caller closes its descriptor at once: the handle keeps working. */
	int fd = open_or_die("fd-own", O_RDWR);
	mmipc_region *a = EXPECT_OK_PTR(mmipc_attach_fd(fd, 0));
	close(fd);
	if (a != NULL) {
		check(is_open(mmipc_fd(a)), "ownership: the handle's descriptor is open after the caller closed its own");
		expect_shared("ownership: after the caller closed its descriptor", r, a);
		EXPECT_ZERO(mmipc_sync(a));
	}
	mmipc_detach(a);

	/* Detaching the attachment leaves the caller's descriptor open and usable. */
	fd = open_or_die("fd-own", O_RDWR);
	for (int i = 0; i < 3; i++) {
		mmipc_region *b = mmipc_attach_fd(fd, i == 1 ? MMIPC_RDONLY : 0);
		check(b != NULL, "ownership: attach %d of the caller's descriptor [%s]", i, b ? "" : mmipc_last_error());
		mmipc_detach(b);
		struct stat st;
		check(is_open(fd) && fstat(fd, &st) == 0 && st.st_size == region_file_size(4096),
		      "ownership: the caller's descriptor %d is still open after mmipc_detach (attach %d)", fd, i);
	}
	close(fd);

	/* The creator's handle goes: the attachment keeps the memory, and the reverse. */
	mmipc_region *s = EXPECT_OK_PTR(mmipc_anon(4096));
	if (s != NULL) {
		strcpy(mmipc_data(s), "kept alive");
		mmipc_region *k = EXPECT_OK_PTR(mmipc_attach_fd(mmipc_fd(s), 0));
		mmipc_region *k2 = EXPECT_OK_PTR(mmipc_attach_fd(mmipc_fd(s), 0));
		mmipc_detach(k2);
		check(is_open(mmipc_fd(s)) && strcmp(mmipc_data(s), "kept alive") == 0,
		      "ownership: detaching an attachment leaves the original handle's descriptor and bytes");
		mmipc_detach(s);
		if (k != NULL) {
			char *q = mmipc_data(k);
			check(strcmp(q, "kept alive") == 0, "ownership: the attachment reads \"%.16s\" after the original was detached",
			      q);
			q[4095] = 1;
			check(is_open(mmipc_fd(k)), "ownership: the attachment's descriptor is open after the original was detached");
		}
		mmipc_detach(k);
	}
	mmipc_detach(r);
	EXPECT_ZERO(mmipc_unlink("fd-own"));
}

/* ---- errors ---- */

static int make_memfd(const char *name, unsigned flags, off_t size, int seals)
{
	int fd = memfd_create(name, MFD_CLOEXEC | flags);
	if (fd < 0 || ftruncate(fd, size) != 0 || (seals && fcntl(fd, F_ADD_SEALS, seals) != 0))
		die("memfd");
	return fd;
}

/* Creates a region of three pages, then damages its file. */
static void make_region(const char *name)
{
	mmipc_region *r = mmipc_create(name, (size_t)(3 * page), 0600);
	if (r == NULL)
		die(name);
	mmipc_detach(r);
}

static void test_attach_errors(void)
{
	mmipc_region *r = EXPECT_OK_PTR(mmipc_create("fd-err", 100, 0600));
	if (r == NULL)
		return;
	int fd = mmipc_fd(r);

	/* Flags. */
	EXPECT_ATTACH_FAIL("flags", fd, 2, EINVAL);
	EXPECT_ATTACH_FAIL("flags", fd, -1, EINVAL);
	EXPECT_ATTACH_FAIL("flags", fd, MMIPC_RDONLY | 4, EINVAL);
	EXPECT_ATTACH_FAIL("flags", fd, INT_MIN, EINVAL);

	/* Descriptors that are not open. */
	EXPECT_ATTACH_FAIL("bad fd", -1, 0, EBADF);
	EXPECT_ATTACH_FAIL("bad fd", -1, MMIPC_RDONLY, EBADF);
	EXPECT_ATTACH_FAIL("bad fd", INT_MIN, 0, EBADF);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		die("getrlimit");
	/* Go raises the soft limit to the hard one at start-up: it may be huge. */
	int limit = rl.rlim_cur < INT_MAX ? (int)rl.rlim_cur : INT_MAX;
	/* Closed: a high number (lowest-free allocation does not reach it meanwhile), made then closed. */
	int closed = fcntl(fd, F_DUPFD_CLOEXEC, (limit < 4096 ? limit : 4096) - 1);
	if (closed < 0 || close(closed) != 0)
		die("dup to the highest descriptor");
	EXPECT_ATTACH_FAIL("closed fd", closed, 0, EBADF);
	EXPECT_ATTACH_FAIL("closed fd", closed, MMIPC_RDONLY, EBADF);
	EXPECT_ATTACH_FAIL("fd at the limit", limit, 0, EBADF);

	/* Access modes. */
	int rofd = open_or_die("fd-err", O_RDONLY);
	EXPECT_ATTACH_FAIL("O_RDONLY fd", rofd, 0, EACCES);
	mmipc_region *ok = mmipc_attach_fd(rofd, MMIPC_RDONLY);
	check(ok != NULL && mmipc_size(ok) == 100, "O_RDONLY fd with MMIPC_RDONLY attaches [%s]", ok ? "" : mmipc_last_error());
	mmipc_detach(ok);
	int wofd = open_or_die("fd-err", O_WRONLY);
	EXPECT_ATTACH_FAIL("O_WRONLY fd", wofd, 0, EACCES);
	EXPECT_ATTACH_FAIL("O_WRONLY fd", wofd, MMIPC_RDONLY, EACCES);
	close(wofd);
	close(rofd);

	/* Not regular files. The read end of a pipe is O_RDONLY: read-only attaches reach the type
	 * check, read-write ones stop at the access check. */
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) != 0)
		die("pipe");
	EXPECT_ATTACH_FAIL("pipe read end", pfd[0], MMIPC_RDONLY, EPROTO);
	EXPECT_ATTACH_FAIL("pipe read end", pfd[0], 0, EACCES);
	EXPECT_ATTACH_FAIL("pipe write end", pfd[1], MMIPC_RDONLY, EACCES);
	close(pfd[0]);
	close(pfd[1]);
	if (mkfifo("fd-fifo", 0600) != 0)
		die("mkfifo");
	int fifo = open_or_die("fd-fifo", O_RDWR | O_NONBLOCK);
	EXPECT_ATTACH_FAIL("FIFO opened O_RDWR", fifo, 0, EPROTO);
	EXPECT_ATTACH_FAIL("FIFO opened O_RDWR", fifo, MMIPC_RDONLY, EPROTO);
	close(fifo);
	unlink("fd-fifo");
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0)
		die("socketpair");
	EXPECT_ATTACH_FAIL("Unix socket", sp[0], 0, EPROTO);
	EXPECT_ATTACH_FAIL("Unix socket", sp[1], MMIPC_RDONLY, EPROTO);
	close(sp[0]);
	close(sp[1]);
	int dirfd = open_or_die(".", O_RDONLY | O_DIRECTORY);
	EXPECT_ATTACH_FAIL("directory", dirfd, MMIPC_RDONLY, EPROTO);
	EXPECT_ATTACH_FAIL("directory", dirfd, 0, EACCES);
	close(dirfd);
	int null = open_or_die("/dev/null", O_RDWR);
	EXPECT_ATTACH_FAIL("/dev/null", null, 0, EPROTO);
	close(null);

	/* Ordinary files. */
	const char text[] = "hello, world\n";
	if (write_file("fd-plain.txt", text, sizeof text - 1, 0600) != 0)
		die("fd-plain.txt");
	int plain = open_or_die("fd-plain.txt", O_RDWR);
	EXPECT_ATTACH_FAIL("ordinary file", plain, 0, EPROTO);
	EXPECT_ATTACH_FAIL("ordinary file", plain, MMIPC_RDONLY, EPROTO);
	char back[32] = "";
	check(pread(plain, back, sizeof back, 0) == (ssize_t)sizeof text - 1 && memcmp(back, text, sizeof text - 1) == 0,
	      "ordinary file: unchanged by the failed attaches");
	close(plain);
	unlink("fd-plain.txt");
	char *zeros = calloc(1, (size_t)(2 * page));
	if (zeros == NULL || write_file("fd-zeros", zeros, (size_t)(2 * page), 0600) != 0)
		die("fd-zeros");
	free(zeros);
	int zfd = open_or_die("fd-zeros", O_RDWR);
	EXPECT_ATTACH_FAIL("two pages of zeros", zfd, 0, EPROTO);
	close(zfd);
	unlink("fd-zeros");

	/* Memfds: only the shrink seal marks an anonymous region, and an empty one is not one. */
	int m1 = make_memfd("unsealed", 0, 2 * page, 0);
	EXPECT_ATTACH_FAIL("unsealed memfd", m1, 0, EPROTO);
	close(m1);
	int m2 = make_memfd("sealable", MFD_ALLOW_SEALING, 2 * page, F_SEAL_GROW);
	EXPECT_ATTACH_FAIL("memfd sealed against growing only", m2, 0, EPROTO);
	close(m2);
	int m3 = make_memfd("empty", MFD_ALLOW_SEALING, 0, F_SEAL_SHRINK);
	EXPECT_ATTACH_FAIL("empty shrink-sealed memfd", m3, 0, EPROTO);
	EXPECT_ATTACH_FAIL("empty shrink-sealed memfd", m3, MMIPC_RDONLY, EPROTO);
	close(m3);
	int m4 = make_memfd("sized", MFD_ALLOW_SEALING, 100, F_SEAL_SHRINK); /* the control */
	mmipc_region *mr = mmipc_attach_fd(m4, 0);
	check(mr != NULL && mmipc_size(mr) == 100, "a shrink-sealed memfd of 100 bytes attaches raw: size %zu [%s]",
	      mmipc_size(mr), mr ? "" : mmipc_last_error());
	mmipc_detach(mr);
	close(m4);

	/* Damaged named regions. */
	make_region("fd-damaged");
	int dfd = open_or_die("fd-damaged", O_RDWR);
	unsigned char b = 0;
	if (pread(dfd, &b, 1, 24) != 1 || (b ^= 1, pwrite(dfd, &b, 1, 24)) != 1) /* creator_pid, under the CRC */
		die("flipping a header byte");
	EXPECT_ATTACH_FAIL("a header with a flipped byte", dfd, 0, EPROTO);
	EXPECT_ATTACH_FAIL("a header with a flipped byte", dfd, MMIPC_RDONLY, EPROTO);
	close(dfd);
	make_region("fd-short");
	int tfd = open_or_die("fd-short", O_RDWR);
	if (ftruncate(tfd, 3 * page) != 0)
		die("ftruncate");
	EXPECT_ATTACH_FAIL("a region file one page short", tfd, 0, EPROTO);
	if (ftruncate(tfd, 5 * page) != 0)
		die("ftruncate");
	EXPECT_ATTACH_FAIL("a region file one page long", tfd, 0, EPROTO);
	close(tfd);
	unlink("fd-damaged");
	unlink("fd-short");

	/* The region's own descriptor still attaches after all that. */
	mmipc_region *again = mmipc_attach_fd(fd, 0);
	check(again != NULL && mmipc_size(again) == 100, "the valid region still attaches [%s]",
	      again ? "" : mmipc_last_error());
	mmipc_detach(again);
	mmipc_detach(r);
	EXPECT_ZERO(mmipc_unlink("fd-err"));
}

/* ---- the fork rule ---- */

static void test_fork_rule(void)
{
	mmipc_region *r = EXPECT_OK_PTR(mmipc_anon(4096));
	mmipc_region *n = EXPECT_OK_PTR(mmipc_create("fd-fork", 4096, 0600));
	if (r == NULL || n == NULL)
		return;
	int fd = mmipc_fd(r), nfd = mmipc_fd(n);
	pid_t pid = fork_flushed();
	if (pid == 0) {
		signal(SIGALRM, SIG_DFL); /* a hang kills the child: the parent reports it */
		alarm(5);
		check_failed = 0;
		check(mmipc_fd(r) == fd && mmipc_fd(n) == nfd && is_open(fd) && is_open(nfd),
		      "fork rule: mmipc_fd in the child: got %d and %d, want the parent's %d and %d, open", mmipc_fd(r),
		      mmipc_fd(n), fd, nfd);
		errno = 0;
		int f = mmipc_fd(NULL), e = errno;
		check(f == -1 && e == EBADF, "fork rule: mmipc_fd(NULL) in the child: got %d errno %d, want -1 EBADF", f, e);
		const int fds[] = {fd, nfd, fd, -1};
		const int flags[] = {0, MMIPC_RDONLY, 2, 0};
		for (int i = 0; i < 4; i++) {
			double t0 = now_s();
			errno = 0;
			mmipc_region *a = mmipc_attach_fd(fds[i], flags[i]);
			int err = errno;
			double dt = now_s() - t0;
			const char *m = mmipc_last_error();
			check(a == NULL && err == ENOTSUP && dt < 1.0 && strstr(m, "mmipc_attach_fd") && strstr(m, "fork"),
			      "fork rule: mmipc_attach_fd(%d, %d) in the child: got %s errno %d (%s) after %.3f s [%s]; want "
			      "ENOTSUP at once, a message naming the call and the fork",
			      fds[i], flags[i], a ? "a handle" : "NULL", err, strerror(err), dt, m);
		}
		strcpy(mmipc_data(r), "child was here");
		fflush(stdout);
		_exit(check_failed ? 1 : 0);
	}
	char buf[128];
	int st = 0, w = wait_bounded(pid, 10, &st);
	check(exited_zero(w, st), "fork rule: the child (mmipc_fd works, mmipc_attach_fd is ENOTSUP): got %s, want exit 0",
	      describe(w, st, buf, sizeof buf));
	check(strcmp(mmipc_data(r), "child was here") == 0, "fork rule: the child's write through the inherited mapping");
	/* The parent was not disturbed. */
	mmipc_region *a = mmipc_attach_fd(fd, 0);
	check(a != NULL && strcmp(mmipc_data(a), "child was here") == 0, "fork rule: the parent attaches after the fork [%s]",
	      a ? "" : mmipc_last_error());
	mmipc_detach(a);
	mmipc_detach(n);
	mmipc_detach(r);
	EXPECT_ZERO(mmipc_unlink("fd-fork"));
}

/* ---- fork + exec: a region passed as fd 3 ---- */

static const char *pattern_for(const char *mode, char *buf, size_t n)
{
	snprintf(buf, n, "parent to child: %s", mode);
	return buf;
}

static const char *reply_for(const char *mode, char *buf, size_t n)
{
	snprintf(buf, n, "child to parent: %s", mode);
	return buf;
}

/* The exec'd child, role "child <mode> <size>": fd 3 is the region. Modes: "anon" (attach
 * read-write, reply), "named" (attach read-only, check that a write faults, then read-write and
 * reply), "readonly" (fd 3 is O_RDONLY: read-write is EACCES, read-only works). */
static int role_child(const char *mode, const char *size_s)
{
	alarm(20); /* the default action kills a hung child; the parent reports it */
	setvbuf(stdout, NULL, _IOLBF, 0);
	page = sysconf(_SC_PAGESIZE);
	size_t size = strtoul(size_s, NULL, 10);
	char who[64], want[64], reply[64];
	snprintf(who, sizeof who, "exec child %s", mode);
	int fl = fcntl(3, F_GETFD);
	check(fl != -1 && !(fl & FD_CLOEXEC), "%s: fd 3 is open and was inherited: F_GETFD %d", who, fl);
	int ro = strcmp(mode, "anon") != 0;
	if (strcmp(mode, "readonly") == 0)
		EXPECT_ATTACH_FAIL(who, 3, 0, EACCES);
	mmipc_region *a = mmipc_attach_fd(3, ro ? MMIPC_RDONLY : 0);
	if (!check(a != NULL, "%s: mmipc_attach_fd(3, %s) [%s]", who, ro ? "MMIPC_RDONLY" : "0", a ? "" : mmipc_last_error()))
		return 1;
	unsigned char *p = mmipc_data(a);
	pattern_for(mode, want, sizeof want);
	check(mmipc_size(a) == size, "%s: size %zu, want %zu", who, mmipc_size(a), size);
	check(mmipc_size(a) == size && memcmp(p, want, strlen(want)) == 0 && p[size - 1] == 0x5A,
	      "%s: reads the parent's \"%s\" and last byte 0x5a: got \"%.24s\" and %#x", who, want, (char *)p,
	      mmipc_size(a) == size ? p[size - 1] : 0);
	if (ro)
		expect_write_faults(who, p);
	if (strcmp(mode, "readonly") != 0 && mmipc_size(a) == size) {
		mmipc_region *w = ro ? mmipc_attach_fd(3, 0) : a;
		if (check(w != NULL, "%s: the read-write attachment for the reply [%s]", who, w ? "" : mmipc_last_error())) {
			unsigned char *q = mmipc_data(w);
			reply_for(mode, reply, sizeof reply);
			memcpy(q + 100, reply, strlen(reply) + 1);
			q[size - 2] = 0xC3;
			check(memcmp(p + 100, reply, strlen(reply)) == 0, "%s: the first attachment sees the reply", who);
		}
		if (w != a)
			mmipc_detach(w);
	}
	mmipc_detach(a);
	printf("# %s: %d of %d checks failed\n", who, check_failed, check_count);
	return check_failed ? 1 : 0;
}

/* fork + exec this program in role "child <mode> <size>" with fd as its fd 3. at3: first make the
 * descriptor 3 and close-on-exec in the forked child, the case where dup2 alone would not do. Between
 * fork and exec only dup3/dup2/fcntl run: no library call. */
static pid_t spawn_with_fd3(int fd, int at3, const char *mode, size_t size)
{
	char size_s[32];
	snprintf(size_s, sizeof size_s, "%zu", size);
	char *argv[] = {self_argv0, (char *)"child", (char *)mode, size_s, NULL};
	pid_t pid = fork_flushed();
	if (pid == 0) {
		if (at3 && fd != 3) {
			if (dup3(fd, 3, O_CLOEXEC) != 3)
				_exit(126);
			fd = 3;
		}
		/* dup2 clears close-on-exec; when fd is already 3 it is a no-op, so clear the flag. */
		if (fd == 3 ? fcntl(3, F_SETFD, 0) != 0 : dup2(fd, 3) != 3)
			_exit(126);
		execv(self_exe, argv);
		_exit(127);
	}
	return pid;
}

static void exec_case(const char *mode, mmipc_region *r, int fd, int at3)
{
	size_t size = mmipc_size(r);
	unsigned char *p = mmipc_data(r);
	char want[64], buf[160];
	memset(p, 0, size);
	pattern_for(mode, want, sizeof want);
	memcpy(p, want, strlen(want) + 1);
	p[size - 1] = 0x5A;
	pid_t pid = spawn_with_fd3(fd, at3, mode, size);
	int st = 0, w = wait_bounded(pid, 30, &st);
	check(exited_zero(w, st),
	      "exec %s: the exec'd child (attaches fd 3, checks, replies): got %s, want exit 0 (1: its checks failed, 126: "
	      "dup2, 127: exec)",
	      mode, describe(w, st, buf, sizeof buf));
	if (strcmp(mode, "readonly") == 0) {
		check(p[100] == 0 && p[0] == want[0], "exec %s: the child wrote nothing", mode);
		return;
	}
	reply_for(mode, want, sizeof want);
	check(memcmp(p + 100, want, strlen(want) + 1) == 0 && p[size - 2] == 0xC3,
	      "exec %s: the parent reads the child's reply: got \"%.24s\" and %#x, want \"%s\" and 0xc3", mode,
	      (char *)p + 100, p[size - 2], want);
	if (strcmp(mode, "named") == 0)
		check(p[0] == 'p', "exec %s: the child's faulting write did not land", mode);
}

static void test_exec(void)
{
	mmipc_region *a = EXPECT_OK_PTR(mmipc_anon(ANON_SIZE));
	if (a != NULL)
		exec_case("anon", a, mmipc_fd(a), 0);
	mmipc_detach(a);

	mmipc_region *n = EXPECT_OK_PTR(mmipc_create("fd-exec", 10000, 0600));
	if (n != NULL) {
		exec_case("named", n, mmipc_fd(n), 0);
		int rofd = open_or_die("fd-exec", O_RDONLY);
		exec_case("readonly", n, rofd, 0);
		close(rofd);
	}
	mmipc_detach(n);
	EXPECT_ZERO(mmipc_unlink("fd-exec"));

	/* The descriptor is 3 already and close-on-exec, as mmipc_fd's is: the child must clear the flag. */
	mmipc_region *t = EXPECT_OK_PTR(mmipc_anon(4096));
	if (t != NULL)
		exec_case("anon", t, mmipc_fd(t), 1);
	mmipc_detach(t);
}

/* ---- leaks ---- */

/* Shared mappings now (see count_shared in testutil.h); -1 if unreadable. */
static int shared_now(void)
{
	char *maps = read_maps();
	int n = maps != NULL ? count_shared(maps) : -1;
	free(maps);
	return n;
}

static int leak_failures;

/* One cycle: three attachments made and detached, and four attaches that must fail. */
static void leak_cycle(int i, mmipc_region *an, mmipc_region *nm, int plain, int rofd)
{
	mmipc_region *a = mmipc_attach_fd(mmipc_fd(an), 0);
	mmipc_region *b = mmipc_attach_fd(mmipc_fd(nm), MMIPC_RDONLY);
	mmipc_region *c = mmipc_attach_fd(rofd, MMIPC_RDONLY);
	if (a == NULL || b == NULL || c == NULL) {
		if (leak_failures++ < 5)
			printf("# cycle %d: an attach failed: %s\n", i, mmipc_last_error());
	} else {
		((unsigned char *)mmipc_data(a))[0] = (unsigned char)i;
	}
	mmipc_detach(a);
	mmipc_detach(b);
	mmipc_detach(c);
	/* Failures after the duplicate was made (EPROTO) and before it (EACCES, EBADF, EINVAL). */
	mmipc_region *bad[] = {mmipc_attach_fd(plain, 0), mmipc_attach_fd(rofd, 0), mmipc_attach_fd(-1, 0),
			       mmipc_attach_fd(plain, 2)};
	for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
		if (bad[k] != NULL) {
			if (leak_failures++ < 5)
				printf("# cycle %d: bad descriptor %zu attached\n", i, k);
			mmipc_detach(bad[k]);
		}
	}
}

static void test_leaks(void)
{
	mmipc_region *an = EXPECT_OK_PTR(mmipc_anon(4096));
	mmipc_region *nm = EXPECT_OK_PTR(mmipc_create("fd-leak", 4096, 0600));
	if (an == NULL || nm == NULL)
		return;
	if (write_file("fd-leak.txt", "not a region", 12, 0600) != 0)
		die("fd-leak.txt");
	int plain = open_or_die("fd-leak.txt", O_RDWR), rofd = open_or_die("fd-leak", O_RDONLY);
	int i = 0;
	for (; i < WARMUP; i++)
		leak_cycle(i, an, nm, plain, rofd);
	int fds0 = count_fds(), shared0 = shared_now();
	for (; i < WARMUP + ATTACH_CYCLES; i++)
		leak_cycle(i, an, nm, plain, rofd);
	int fds1 = count_fds(), shared1 = shared_now();
	check(leak_failures == 0, "leaks: %d cycles of attach/detach and failing attaches: got %d failures, want 0", i,
	      leak_failures);
	check(fds0 > 0 && fds1 == fds0, "leaks: open descriptors after %d more cycles: got %d, want %d (as after the warm-up)",
	      ATTACH_CYCLES, fds1, fds0);
	check(shared0 >= 2 && shared1 == shared0,
	      "leaks: shared mappings after %d more cycles: got %d, want %d (as after the warm-up; at least the 2 regions)",
	      ATTACH_CYCLES, shared1, shared0);
	check(((unsigned char *)mmipc_data(an))[0] == (unsigned char)(i - 1), "leaks: the last cycle's write landed");
	/* The counters do see an attachment. */
	mmipc_region *one = mmipc_attach_fd(mmipc_fd(nm), 0);
	int fds2 = count_fds(), shared2 = shared_now();
	check(one != NULL && fds2 == fds1 + 1 && shared2 == shared1 + 1,
	      "leaks: one more attachment is one more descriptor and shared mapping: got %d and %d, want %d and %d", fds2,
	      shared2, fds1 + 1, shared1 + 1);
	mmipc_detach(one);
	printf("# leaks: descriptors %d -> %d, shared mappings %d -> %d\n", fds0, fds1, shared0, shared1);
	close(plain);
	close(rofd);
	unlink("fd-leak.txt");
	mmipc_detach(an);
	mmipc_detach(nm);
	EXPECT_ZERO(mmipc_unlink("fd-leak"));
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "child") == 0)
		return role_child(argv[2], argv[3]);
	if (argc > 1) {
		fprintf(stderr, "usage: %s (no arguments; the role \"child\" is internal)\n", argv[0]);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	find_self(argv[0]); /* before any fork: test_exec re-executes this program */
	page = sysconf(_SC_PAGESIZE);
	const char *d = getenv("MMIPC_DIR");
	if (d == NULL || d[0] == 0 || chdir(d) != 0)
		die("MMIPC_DIR (the Go driver sets it to a fresh directory, and the working directory to it)");
	test_mmipc_fd();
	test_attach_named();
	test_attach_anon();
	test_ownership();
	test_attach_errors();
	test_fork_rule();
	test_exec();
	test_leaks();
	return check_exit();
}
