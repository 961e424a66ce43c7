/* peerutil.h - what the C peers of the cross-language tests (peer.c, syncpeer.c, hostile_peer.c,
 * crash_writer.c, load_peer.c) share: the
 * "ok COMMAND ..." / "FAIL COMMAND: ..." lines the Go test drivers read, the usage exit, and the
 * strict parsing of numeric arguments. Include after testutil.h. */
#ifndef MMIPC_TEST_PEERUTIL_H
#define MMIPC_TEST_PEERUTIL_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* The command being run, named in every ok and FAIL line. */
__attribute__((unused)) static const char *command = "";

/* Reports the failure of the current command on stdout (where the driver reads it) and exits 1. */
__attribute__((format(printf, 1, 2), noreturn, unused)) static void fail(const char *fmt, ...)
{
	va_list ap;
	printf("FAIL %s: ", command);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	exit(1);
}

/* Reports a step of the current command that went as expected. */
__attribute__((format(printf, 1, 2), unused)) static void ok(const char *fmt, ...)
{
	va_list ap;
	printf("ok %s", command);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/* A bad command line: exit 2, pointing at the peer's specification. */
__attribute__((noreturn, unused)) static void peer_usage(const char *prog, const char *spec)
{
	fprintf(stderr, "usage: %s COMMAND ARGS... (see the comment at the top of %s)\n", prog, spec);
	exit(2);
}

/* Starts a peer "prog COMMAND ARGS...": stdout line-buffered (the driver reads it line by line),
 * at least min_args ARGS (else the usage exit), command set; returns the ARGS and their count. */
__attribute__((unused)) static char **peer_begin(int argc, char **argv, int min_args, const char *prog,
						 const char *spec, int *nargs)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
#ifdef MMIPC_TEST_CHECK_H
	(void)check; /* check.h comes with testutil.h; peers report in their own words */
	(void)check_exit;
#endif
	if (argc < 2 + min_args)
		peer_usage(prog, spec);
	command = argv[1];
	*nargs = argc - 2;
	return argv + 2;
}

/* A decimal argument, whole and non-negative, else exit 2. */
__attribute__((unused)) static unsigned long long number(const char *s)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != 0 || s[0] == '-') {
		fprintf(stderr, "bad number \"%s\"\n", s);
		exit(2);
	}
	return v;
}

#endif
