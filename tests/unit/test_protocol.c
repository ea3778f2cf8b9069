/* The control protocol without a socket: requests parsed (valid and
 * malformed), replies built with the request's id, quoting cut at a UTF-8
 * boundary, and CPU sets as JSON. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "control/protocol.h"

static struct error err;

static int parse(const char *s, struct ctl_request *req)
{
	err = (struct error){0};
	return protocol_parse_request(s, strlen(s), req, &err);
}

static void valid_requests(void **state)
{
	(void)state;
	struct ctl_request req;
	static const struct {
		const char *line;
		const char *cmd;
	} cases[] = {
		{"{\"cmd\":\"status\"}", "status"},
		{"{\"cmd\":\"pause\"}  ", "pause"},
		{" {\"cmd\":\"resume\"}\r", "resume"},
		{"{\"cmd\":\"quit\",\"id\":7}", "quit"},
		{"{\"cmd\":\"subscribe\"}", "subscribe"},
		{"{\"cmd\":\"pin\",\"args\":{\"0\":[1]}}", "pin"},
		/* Which commands exist is the server's business, not the parser's. */
		{"{\"cmd\":\"reboot-the-host\"}", "reboot-the-host"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(parse(cases[i].line, &req), 0);
		assert_string_equal(req.cmd, cases[i].cmd);
		protocol_request_free(&req);
	}
}

static void malformed_requests(void **state)
{
	(void)state;
	struct ctl_request req;
	static const char *const bad[] = {
		"",
		"{",
		"not json",
		"[\"status\"]",
		"\"status\"",
		"{}",
		"{\"cmd\":5}",
		"{\"cmd\":\"status\"} {\"cmd\":\"quit\"}",
		"{\"cmd\":\"status\"}garbage",
		"{\"cmd\":\"status\",\"args\":[1]}",
		"{\"cmd\":\"status\"",
		/* Only RFC 8259: */
		"{'cmd':'status'}",
		"{\"cmd\":\"status\",}",
		"{\"cmd\":\"status\",\"args\":{\"a\":1,}}",
		"{\"cmd\":\"stat\xffus\"}",    /* not UTF-8 */
		"{\"cmd\":\"status\\u0000\"}", /* NUL inside */
		"null",
		"[]",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(bad[i], &req), -EINVAL);
		assert_true(strlen(err.msg) > 0);
		protocol_request_free(&req);
	}
	char with_nul[] = "{\"cmd\":\"status\"}\0x";
	assert_int_equal(protocol_parse_request(with_nul, sizeof(with_nul) - 1, &req, &err),
			 -EINVAL);
	protocol_request_free(&req);
	size_t big = PROTOCOL_MAX_LINE + 10;
	char *huge = malloc(big + 1);
	memset(huge, ' ', big);
	huge[big] = '\0';
	assert_int_equal(parse(huge, &req), -EINVAL);
	protocol_request_free(&req);
	assert_non_null(strstr(err.msg, "too long"));
	free(huge);
	/* Deep nesting must be refused by the tokenizer, not crash it. */
	char deep[4096];
	memset(deep, '[', sizeof(deep) - 1);
	deep[sizeof(deep) - 1] = '\0';
	assert_int_equal(parse(deep, &req), -EINVAL);
	protocol_request_free(&req);
	/* A malformed request with an id still echoes the id. */
	assert_int_equal(parse("{\"cmd\":5,\"id\":9}", &req), -EINVAL);
	char *line = protocol_reply_error(&req, err.msg);
	assert_string_equal(line,
			    "{\"ok\":false,\"id\":9,\"error\":\"missing \\\"cmd\\\" string\"}\n");
	free(line);
	protocol_request_free(&req);
}

static void replies(void **state)
{
	(void)state;
	struct ctl_request req;
	assert_int_equal(parse("{\"cmd\":\"status\",\"id\":\"abc\"}", &req), 0);
	char *ok = protocol_reply_ok(&req, NULL);
	assert_string_equal(ok, "{\"ok\":true,\"id\":\"abc\",\"result\":{}}\n");
	free(ok);
	char *bad = protocol_reply_error(&req, "nope \"quoted\"");
	json_object *o = json_tokener_parse(bad);
	assert_non_null(o);
	json_object *e;
	assert_true(json_object_object_get_ex(o, "error", &e));
	assert_string_equal(json_object_get_string(e), "nope \"quoted\"");
	json_object_put(o);
	free(bad);
	protocol_request_free(&req);
	char *anon = protocol_reply_error(NULL, "x");
	assert_string_equal(anon, "{\"ok\":false,\"error\":\"x\"}\n");
	free(anon);
}

static void quoting(void **state)
{
	(void)state;
	char out[8];
	assert_string_equal(protocol_quote("abc", out, sizeof(out)), "abc");
	assert_string_equal(protocol_quote("abcdefghij", out, sizeof(out)), "abcdefg");
	/* "abcdeé…": 'é' is two bytes at 5 and 6; 7 bytes would cut after its first. */
	assert_string_equal(protocol_quote("abcde\xc3\xa9\xc3\xa9", out, sizeof(out)),
			    "abcde\xc3\xa9");
	assert_string_equal(protocol_quote("abcdef\xc3\xa9", out, sizeof(out)), "abcdef");
	struct ctl_request req;
	assert_int_equal(parse("null", &req), -EINVAL);
	assert_string_equal(err.msg, "a request must be a JSON object");
	protocol_request_free(&req);
	assert_int_equal(parse("{\"cmd\":\"status\\u0000\"}", &req), -EINVAL);
	assert_non_null(strstr(err.msg, "NUL"));
	protocol_request_free(&req);
}

static void cpu_list_json(void **state)
{
	(void)state;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(0, &set);
	CPU_SET(3, &set);
	json_object *o = protocol_cpu_list_json(&set);
	assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), "[0,3]");
	json_object_put(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(valid_requests), cmocka_unit_test(malformed_requests),
		cmocka_unit_test(replies),	  cmocka_unit_test(cpu_list_json),
		cmocka_unit_test(quoting),
	};
	return cmocka_run_group_tests_name("protocol", tests, NULL, NULL);
}
