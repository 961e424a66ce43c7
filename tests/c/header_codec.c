/* header_codec - an independent implementation of the named-region header, written from
 * docs/PROTOCOL.md alone (its own offsets, its own bitwise CRC-32, no code shared with the Go
 * package), so that tests/header_cross_test.go can check that the document suffices to interoperate
 * with the library in both directions.
 *
 *   header_codec decode FILE
 *       Reads FILE with open/read (no mmap, no libmmipc), validates it in the order of "Opening and
 *       validation" and prints one key=value line per field, then "verdict=valid" or
 *       "verdict=invalid reason=<check>" and a "detail=" line. Exit 0 if the file could be read.
 *   header_codec encode FILE DATA_SIZE [PID CREATED_NS [HEADER_SIZE]]
 *       Writes a complete region file by hand (open/ftruncate/pwrite, no libmmipc). HEADER_SIZE
 *       defaults to the page size, PID to this process, CREATED_NS to now. The data is zero except
 *       a marker: its first byte is 0xC5 and, when DATA_SIZE >= 2, its last byte 0x5C. Prints the
 *       file size and the fields it chose.
 *   header_codec create NAME DATA_SIZE
 *       mmipc_create (libmmipc writes the header), prints pid=, detaches, keeps the region.
 *   header_codec open NAME
 *       mmipc_open, prints size= and the data's first/last bytes and count of non-zero bytes, or
 *       open=fail errno=N and the library's message.
 *
 * Only the create and open modes call the library. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mmipc.h"

/* docs/PROTOCOL.md, "Header: fixed fields (64 bytes)". */
#define SPEC_VERSION 1u
#define FIXED_LEN 64
#define OFF_MAGIC 0
#define OFF_VERSION 8
#define OFF_HEADER_SIZE 12
#define OFF_DATA_SIZE 16
#define OFF_CREATOR_PID 24
#define OFF_FLAGS 28
#define OFF_CREATED_NS 32
#define OFF_HEADER_CRC 40
#define CRC_COVERS 40 /* bytes 0..39 */
#define RESERVED_FROM 44
#define MIN_HEADER_SIZE 4096u
#define MAX_HEADER_SIZE (1u << 20)
static const char spec_magic[8] = {'M', 'M', 'I', 'P', 'C', 'R', 'E', 'G'};

/* The document's version and the C header's constant must be the same number. */
_Static_assert(SPEC_VERSION == MMIPC_PROTOCOL_VERSION, "PROTOCOL.md version != MMIPC_PROTOCOL_VERSION");

/* CRC-32 IEEE 802.3 (zlib's crc32): reflected, polynomial 0xEDB88320, init and final xor ~0. Bit
 * by bit on purpose: no table that could be shared with, or copied from, another implementation. */
static uint32_t crc32_ieee(const unsigned char *p, size_t n)
{
	uint32_t crc = 0xFFFFFFFFu;
	for (size_t i = 0; i < n; i++) {
		crc ^= p[i];
		for (int k = 0; k < 8; k++)
			crc = (crc & 1) ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
	}
	return ~crc;
}

/* Integers are in the host's byte order: memcpy through a native integer is exactly that. */
static uint32_t get32(const unsigned char *b, int off)
{
	uint32_t v;
	memcpy(&v, b + off, sizeof v);
	return v;
}

static uint64_t get64(const unsigned char *b, int off)
{
	uint64_t v;
	memcpy(&v, b + off, sizeof v);
	return v;
}

static void put32(unsigned char *b, int off, uint32_t v) { memcpy(b + off, &v, sizeof v); }
static void put64(unsigned char *b, int off, uint64_t v) { memcpy(b + off, &v, sizeof v); }

static int header_size_ok(uint32_t hs)
{
	return hs >= MIN_HEADER_SIZE && hs <= MAX_HEADER_SIZE && (hs & (hs - 1)) == 0;
}

/* header_size + round_up(data_size, header_size) into *out; 0 when it does not fit in an int64
 * (the creation protocol's limit). hs is a valid header size. */
static int file_size_for(uint64_t hs, uint64_t ds, uint64_t *out)
{
	uint64_t pages = ds / hs + (ds % hs != 0);
	/* (pages + 1) * hs <= INT64_MAX  <=>  pages + 1 <= floor(INT64_MAX / hs) */
	if (pages >= (uint64_t)INT64_MAX / hs)
		return 0;
	*out = (pages + 1) * hs;
	return 1;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	if (s[0] == '-' || s[0] == 0)
		return 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno != 0 || *end != 0)
		return 0;
	*out = v;
	return 1;
}

static int parse_i64(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 0);
	if (errno != 0 || *end != 0 || s[0] == 0)
		return 0;
	*out = v;
	return 1;
}

/* Reads up to n bytes (fewer only at end of file); -1 on a read error. */
static ssize_t read_full(int fd, unsigned char *buf, size_t n)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = read(fd, buf + done, n - done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

static int write_at(int fd, const unsigned char *buf, size_t n, off_t off)
{
	size_t done = 0;
	while (done < n) {
		ssize_t w = pwrite(fd, buf + done, n - done, off + (off_t)done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		done += (size_t)w;
	}
	return 0;
}

static void print_magic(const unsigned char *b)
{
	printf("magic=");
	for (int i = 0; i < 8; i++) {
		unsigned char c = b[OFF_MAGIC + i];
		if (c > ' ' && c < 0x7F && c != '\\')
			putchar(c);
		else
			printf("\\x%02x", c);
	}
	putchar('\n');
}

static int invalid(const char *reason, const char *detail)
{
	printf("verdict=invalid reason=%s\ndetail=%s\n", reason, detail);
	return 0;
}

static int do_decode(const char *path)
{
	/* Step 1: never through a symlink, never blocking on a FIFO or device. */
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		printf("error=open %s: %s\n", path, strerror(errno));
		return 1;
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		printf("error=fstat %s: %s\n", path, strerror(errno));
		return 1;
	}
	printf("file_size=%lld\n", (long long)st.st_size);
	/* Step 2. */
	if (!S_ISREG(st.st_mode))
		return invalid("not_regular", "not a regular file");

	/* Step 3: the fixed fields. */
	unsigned char h[FIXED_LEN];
	ssize_t got = read_full(fd, h, FIXED_LEN);
	if (got < 0) {
		printf("error=read %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (got < FIXED_LEN || st.st_size < FIXED_LEN) {
		char d[96];
		snprintf(d, sizeof d, "%zd bytes, fewer than %d", got, FIXED_LEN);
		return invalid("short", d);
	}

	uint32_t version = get32(h, OFF_VERSION), hs = get32(h, OFF_HEADER_SIZE);
	uint64_t ds = get64(h, OFF_DATA_SIZE);
	uint32_t crc = get32(h, OFF_HEADER_CRC), crc_want = crc32_ieee(h, CRC_COVERS);
	print_magic(h);
	printf("version=%" PRIu32 "\n", version);
	printf("header_size=%" PRIu32 "\n", hs);
	printf("data_size=%" PRIu64 "\n", ds);
	printf("creator_pid=%" PRIu32 "\n", get32(h, OFF_CREATOR_PID));
	printf("flags=%" PRIu32 "\n", get32(h, OFF_FLAGS));
	printf("created_ns=%" PRId64 "\n", (int64_t)get64(h, OFF_CREATED_NS));
	printf("header_crc=0x%08" PRIx32 "\n", crc);
	printf("crc_computed=0x%08" PRIx32 "\n", crc_want);
	printf("crc_ok=%d\n", crc == crc_want);

	/* Step 4, in the document's order; flags and the reserved bytes are not checked. */
	const char *reason = NULL;
	char detail[160] = "";
	uint64_t want_size = 0;
	if (memcmp(h + OFF_MAGIC, spec_magic, sizeof spec_magic) != 0) {
		reason = "magic";
		snprintf(detail, sizeof detail, "not MMIPCREG");
	} else if (version != SPEC_VERSION) {
		reason = "version";
		snprintf(detail, sizeof detail, "version %" PRIu32 ", this reader speaks %u", version, SPEC_VERSION);
	} else if (crc != crc_want) {
		reason = "header_crc";
		snprintf(detail, sizeof detail, "stored 0x%08" PRIx32 ", computed 0x%08" PRIx32, crc, crc_want);
	} else if (!header_size_ok(hs)) {
		reason = "header_size";
		snprintf(detail, sizeof detail, "%" PRIu32 " is not a power of two in [4096, 1 MiB]", hs);
	} else if (ds == 0) {
		reason = "data_size";
		snprintf(detail, sizeof detail, "data size 0");
	} else if (!file_size_for(hs, ds, &want_size)) {
		reason = "data_size";
		snprintf(detail, sizeof detail, "data size %" PRIu64 " overflows an int64 file size", ds);
	} else if ((uint64_t)st.st_size != want_size) {
		reason = "file_size";
		snprintf(detail, sizeof detail, "file has %lld bytes, header needs %" PRIu64, (long long)st.st_size,
			 want_size);
	}

	/* The rest of the file, read on: the reserved area [44, header_size) when header_size is
	 * valid (and within the file), and for a valid region the data and its zero padding. */
	int reserved_known = header_size_ok(hs) && (uint64_t)st.st_size >= hs;
	int reserved_zero = 1, padding_zero = 1;
	for (int i = RESERVED_FROM; i < FIXED_LEN; i++)
		if (h[i] != 0)
			reserved_zero = 0;
	unsigned char first = 0, last = 0;
	uint64_t nonzero = 0;
	uint64_t off = FIXED_LEN;
	static unsigned char buf[1 << 16];
	for (;;) {
		ssize_t n = read_full(fd, buf, sizeof buf);
		if (n < 0) {
			printf("error=read %s: %s\n", path, strerror(errno));
			return 1;
		}
		for (ssize_t i = 0; i < n; i++, off++) {
			unsigned char c = buf[i];
			if (off < hs) {
				if (c != 0)
					reserved_zero = 0;
			} else if (off < (uint64_t)hs + ds) {
				if (off == hs)
					first = c;
				if (off == hs + ds - 1)
					last = c;
				nonzero += c != 0;
			} else if (c != 0) {
				padding_zero = 0;
			}
		}
		if ((size_t)n < sizeof buf)
			break;
	}
	close(fd);
	if (reserved_known)
		printf("reserved_zero=%d\n", reserved_zero);
	else
		printf("reserved_zero=na\n");
	if (reason != NULL) {
		printf("padding_zero=na\n");
		return invalid(reason, detail);
	}
	printf("padding_zero=%d\n", padding_zero);
	printf("data_first=0x%02x\ndata_last=0x%02x\ndata_nonzero=%" PRIu64 "\n", first, last, nonzero);
	printf("verdict=valid\n");
	return 0;
}

static int do_encode(int argc, char **argv)
{
	const char *path = argv[2];
	uint64_t ds, pid = (uint64_t)getpid(), hs = (uint64_t)sysconf(_SC_PAGESIZE);
	int64_t created;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	created = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	if (!parse_u64(argv[3], &ds) || ds == 0) {
		fprintf(stderr, "encode: bad DATA_SIZE %s\n", argv[3]);
		return 2;
	}
	if (argc >= 6 && (!parse_u64(argv[4], &pid) || pid > UINT32_MAX || !parse_i64(argv[5], &created))) {
		fprintf(stderr, "encode: bad PID or CREATED_NS\n");
		return 2;
	}
	if (argc >= 7 && (!parse_u64(argv[6], &hs) || hs > UINT32_MAX)) {
		fprintf(stderr, "encode: bad HEADER_SIZE %s\n", argv[6]);
		return 2;
	}
	uint64_t fsize;
	if (!header_size_ok((uint32_t)hs) || !file_size_for(hs, ds, &fsize)) {
		fprintf(stderr, "encode: header size %" PRIu64 " / data size %" PRIu64 " not encodable\n", hs, ds);
		return 2;
	}

	unsigned char *page = calloc(1, hs); /* the reserved area stays zero */
	if (page == NULL) {
		perror("calloc");
		return 1;
	}
	memcpy(page + OFF_MAGIC, spec_magic, sizeof spec_magic);
	put32(page, OFF_VERSION, SPEC_VERSION);
	put32(page, OFF_HEADER_SIZE, (uint32_t)hs);
	put64(page, OFF_DATA_SIZE, ds);
	put32(page, OFF_CREATOR_PID, (uint32_t)pid);
	put32(page, OFF_FLAGS, 0);
	put64(page, OFF_CREATED_NS, (uint64_t)created);
	put32(page, OFF_HEADER_CRC, crc32_ieee(page, CRC_COVERS));

	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "encode: open %s: %s\n", path, strerror(errno));
		return 1;
	}
	/* ftruncate gives the zero data and padding; then the header page and the marker. */
	const unsigned char head_mark = 0xC5, tail_mark = 0x5C;
	if (ftruncate(fd, (off_t)fsize) != 0 || write_at(fd, page, hs, 0) != 0 ||
	    write_at(fd, &head_mark, 1, (off_t)hs) != 0 ||
	    (ds >= 2 && write_at(fd, &tail_mark, 1, (off_t)(hs + ds - 1)) != 0) || close(fd) != 0) {
		fprintf(stderr, "encode: writing %s: %s\n", path, strerror(errno));
		return 1;
	}
	printf("file_size=%" PRIu64 "\nheader_size=%" PRIu64 "\ncreator_pid=%" PRIu64 "\ncreated_ns=%" PRId64
	       "\nheader_crc=0x%08" PRIx32 "\n",
	       fsize, hs, pid, created, get32(page, OFF_HEADER_CRC));
	free(page);
	return 0;
}

static int do_create(const char *name, const char *size_s)
{
	uint64_t size;
	if (!parse_u64(size_s, &size) || size > SIZE_MAX) {
		fprintf(stderr, "create: bad DATA_SIZE %s\n", size_s);
		return 2;
	}
	mmipc_region *r = mmipc_create(name, (size_t)size, 0600);
	if (r == NULL) {
		printf("create=fail\nerrno=%d\nmsg=%s\n", errno, mmipc_last_error());
		return 1;
	}
	printf("pid=%d\nsize=%zu\n", (int)getpid(), mmipc_size(r));
	mmipc_detach(r);
	return 0;
}

static int do_open(const char *name)
{
	errno = 0;
	mmipc_region *r = mmipc_open(name, 0);
	if (r == NULL) {
		int err = errno;
		printf("open=fail\nerrno=%d\nmsg=%s\n", err, mmipc_last_error());
		return 0;
	}
	size_t n = mmipc_size(r);
	const unsigned char *d = mmipc_data(r);
	size_t nonzero = 0;
	for (size_t i = 0; i < n; i++)
		nonzero += d[i] != 0;
	printf("open=ok\nsize=%zu\ndata_first=0x%02x\ndata_last=0x%02x\ndata_nonzero=%zu\n", n, d[0], d[n - 1],
	       nonzero);
	mmipc_detach(r);
	return 0;
}

int main(int argc, char **argv)
{
	/* The standard CRC-32 check value: a wrong CRC here would make every verdict meaningless. */
	if (crc32_ieee((const unsigned char *)"123456789", 9) != 0xCBF43926u) {
		printf("error=crc32 self-test failed\n");
		return 3;
	}
	if (argc == 3 && strcmp(argv[1], "decode") == 0)
		return do_decode(argv[2]);
	if ((argc == 4 || argc == 6 || argc == 7) && strcmp(argv[1], "encode") == 0)
		return do_encode(argc, argv);
	if (argc == 4 && strcmp(argv[1], "create") == 0)
		return do_create(argv[2], argv[3]);
	if (argc == 3 && strcmp(argv[1], "open") == 0)
		return do_open(argv[2]);
	fprintf(stderr, "usage: %s decode FILE | encode FILE DATA_SIZE [PID CREATED_NS [HEADER_SIZE]] | "
			"create NAME DATA_SIZE | open NAME\n",
		argv[0]);
	return 2;
}
