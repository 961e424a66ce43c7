/* A tiny harness for the C test drivers: each check prints "ok" or "not ok" with got/want, and
 * check_exit() returns 1 if any failed, so the Go driver (tests/cshared_test.go) sees the result in
 * the exit status and the details in the output. */
#ifndef MMIPC_TEST_CHECK_H
#define MMIPC_TEST_CHECK_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mmipc.h"

static int check_count, check_failed;

__attribute__((format(printf, 2, 3))) static int check(int ok, const char *fmt, ...)
{
	va_list ap;
	check_count++;
	if (!ok)
		check_failed++;
	printf("%s %d - ", ok ? "ok" : "not ok", check_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	return ok;
}

/* A call that must fail: returning NULL (pointer calls) with errno `want`. */
#define EXPECT_NULL(call, want)                                                                   \
	do {                                                                                      \
		errno = 0;                                                                        \
		void *got_ = (void *)(call);                                                      \
		int err_ = errno;                                                                 \
		check(got_ == NULL && err_ == (want), "%s: got %p errno %d (%s), want NULL errno %d (%s) [%s]", \
		      #call, got_, err_, strerror(err_), (want), strerror(want), mmipc_last_error()); \
	} while (0)

/* A call that must fail: returning -1 (int calls) with errno `want`. */
#define EXPECT_FAIL(call, want)                                                                   \
	do {                                                                                      \
		errno = 0;                                                                        \
		int got_ = (call);                                                                \
		int err_ = errno;                                                                 \
		check(got_ == -1 && err_ == (want), "%s: got %d errno %d (%s), want -1 errno %d (%s) [%s]", \
		      #call, got_, err_, strerror(err_), (want), strerror(want), mmipc_last_error()); \
	} while (0)

/* A call that must succeed: non-NULL; prints the last error otherwise. */
#define EXPECT_OK_PTR(call)                                                                       \
	({                                                                                        \
		void *got_ = (void *)(call);                                                      \
		check(got_ != NULL, "%s: got %p [%s]", #call, got_, got_ ? "" : mmipc_last_error()); \
		got_;                                                                             \
	})

/* An int call that must return 0. */
#define EXPECT_ZERO(call)                                                                         \
	do {                                                                                      \
		int got_ = (call);                                                                \
		check(got_ == 0, "%s: got %d, want 0 [%s]", #call, got_, got_ ? mmipc_last_error() : ""); \
	} while (0)

static int check_exit(void)
{
	printf("%d checks, %d failed\n", check_count, check_failed);
	return check_failed ? 1 : 0;
}

#endif
