/* bench_sandbox.c - sandbox start-up and round-trip figures beside same-run baselines. */
#include <stdio.h>

int main(void)
{
	printf("bench_sandbox: not yet\n");
	return 0;
}
