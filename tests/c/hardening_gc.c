/* hardening_gc.c - the C side of the crash test's garbage collection (tests/hardening_crash_test.go):
 *
 *   hardening_gc NAME...
 *
 * prints "stat NAME attached=A ring=R" for each NAME (mmipc_stat, before the collection), then
 * runs mmipc_gc() once in $MMIPC_DIR and prints "ok gc removed=N". Any failure prints "FAIL gc: ..."
 * and exits 1. */
#include <stdio.h>

#include "peerutil.h"
#include "mmipc.h"

int main(int argc, char *argv[])
{
	command = "gc";
	for (int i = 1; i < argc; i++) {
		mmipc_info info;
		if (mmipc_stat(argv[i], &info) != 0)
			fail("%s", mmipc_last_error());
		printf("stat %s attached=%d ring=%d\n", argv[i], (int)info.attached,
		       (info.flags & MMIPC_INFO_RING) != 0);
	}
	int n = mmipc_gc();
	if (n < 0)
		fail("%s", mmipc_last_error());
	ok(" removed=%d", n);
	return 0;
}
