/* libFuzzer target: a hostile control-socket client's request line. */
#include <stdint.h>
#include <stdlib.h>

#include "control/protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl_request req;
	struct error err = {0};
	int r = protocol_parse_request((const char *)data, size, &req, &err);
	char *reply = r ? protocol_reply_error(&req, err.msg) : protocol_reply_ok(&req, NULL);
	free(reply);
	protocol_request_free(&req);
	return 0;
}
