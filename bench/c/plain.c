/*
 * plain.c - the baseline of the ABI rows (bench/ENGINES.md, "abicost"), built as
 * libbenchplain.so: plain C functions in a shared library with the signatures and the work of the
 * mmipc calls they stand beside, so that abicost (and bench/py/abicost.py through ctypes) compare
 * the cost of calling mmipc with the cost of calling any C library.
 *
 *   cc -std=gnu11 -O2 -fPIC -shared -o libbenchplain.so bench/c/plain.c
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* The fields mmipc_size and mmipc_data read from a handle. */
struct plain_region {
	void *data;
	size_t size;
};

size_t plain_size(const struct plain_region *r);
void *plain_data(const struct plain_region *r);
void *plain_control(const char *name, int flags);
const char *plain_last_error(void);

/* mmipc_size's and mmipc_data's bodies. */
size_t plain_size(const struct plain_region *r) { return r ? r->size : 0; }

void *plain_data(const struct plain_region *r) { return r ? r->data : NULL; }

static __thread char last_error[512];

/* mmipc's name rule: [A-Za-z0-9_-][A-Za-z0-9._-]{0,199}. */
static int valid_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 200 || s[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
		      c == '.'))
			return 0;
	}
	return 1;
}

/* The control call's counterpart of mmipc_open: the same argument checks and, for a bad name, the
 * same outcome (NULL, errno EINVAL, a message for the last-error call), without leaving C. A
 * valid name is not opened (the benchmark never passes one): ENOSYS. */
void *plain_control(const char *name, int flags)
{
	if (name == NULL) {
		snprintf(last_error, sizeof last_error, "plain_control: name is NULL");
		errno = EINVAL;
		return NULL;
	}
	if (flags & ~1) {
		snprintf(last_error, sizeof last_error, "plain_control \"%s\": invalid argument: flags %#x", name,
			 (unsigned)flags);
		errno = EINVAL;
		return NULL;
	}
	if (strchr(name, '/') == NULL && !valid_name(name)) {
		snprintf(last_error, sizeof last_error,
			 "plain_control \"%s\": invalid argument: a name is 1 to 200 of [A-Za-z0-9._-], not starting with '.'",
			 name);
		errno = EINVAL;
		return NULL;
	}
	snprintf(last_error, sizeof last_error, "plain_control \"%s\": not implemented", name);
	errno = ENOSYS;
	return NULL;
}

const char *plain_last_error(void) { return last_error; }
