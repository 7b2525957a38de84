/* fuzz_spec.c - function specs (a deploy body's spec, a stored spec.json) through sbx_spec_parse. */
#include <string.h>

#include "fuzz.h"
#include "nemo/sandbox.h"

static const char name_chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sbx_spec spec;
	char err[512] = "";

	if (sbx_spec_parse((const char *)data, size, "fuzz", &spec, err, sizeof(err)) != 0) {
		FUZZ_ASSERT(err[0]);
		return 0;
	}
	/* what the sandbox and the store build paths and argv from */
	FUZZ_ASSERT(spec.name[0] && memchr(spec.name, 0, sizeof(spec.name)));
	FUZZ_ASSERT(strspn(spec.name, name_chars) == strlen(spec.name));
	FUZZ_ASSERT(spec.code[0] == '/' && memchr(spec.code, 0, sizeof(spec.code)));
	FUZZ_ASSERT(memchr(spec.handler, 0, sizeof(spec.handler)));
	FUZZ_ASSERT(spec.runtime >= SBX_RUNTIME_C && spec.runtime <= SBX_RUNTIME_EXEC);
	FUZZ_ASSERT(spec.n_env <= SBX_ENV_MAX);
	for (uint32_t i = 0; i < spec.n_env; i++)
		FUZZ_ASSERT(memchr(spec.env[i], 0, SBX_ENV_LEN) && strchr(spec.env[i], '='));
	FUZZ_ASSERT(spec.memory_mb >= 4 && spec.timeout_ms >= 1 && spec.concurrency >= 1);
	for (const char *p = spec.name; *p; p++)
		FUZZ_ASSERT((unsigned char)*p >= 0x20);
	for (const char *p = spec.code; *p; p++)
		FUZZ_ASSERT((unsigned char)*p >= 0x20 && *p != 0x7f);
	return 0;
}
