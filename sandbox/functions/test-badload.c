/* test-badload.c - a test function that cannot load: it needs a symbol nothing provides. */
#include "nemo/function.h"

extern int nemo_symbol_nobody_defines(void);

int handle(const struct nemo_request *req, struct nemo_response *resp)
{
	(void)req;
	resp->len = 0;
	return nemo_symbol_nobody_defines();
}
