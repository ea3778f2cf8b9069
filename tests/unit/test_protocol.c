#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "control/protocol.h"

static char err[256];

static int parse(const char *s, struct ctl_request *req)
{
	err[0] = '\0';
	return protocol_parse_request(s, strlen(s), req, err, sizeof(err));
}

static void valid_requests(void **state)
{
	(void)state;
	struct ctl_request req;
	static const struct {
		const char *line;
		enum ctl_cmd cmd;
	} cases[] = {
		{"{\"cmd\":\"status\"}", CMD_STATUS},
		{"{\"cmd\":\"pause\"}  ", CMD_PAUSE},
		{" {\"cmd\":\"resume\"}\r", CMD_RESUME},
		{"{\"cmd\":\"quit\",\"id\":7}", CMD_QUIT},
		{"{\"cmd\":\"subscribe\"}", CMD_SUBSCRIBE},
		{"{\"cmd\":\"pin\",\"args\":{\"0\":[1]}}", CMD_PIN},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(parse(cases[i].line, &req), 0);
		assert_int_equal(req.cmd, cases[i].cmd);
		ctl_request_free(&req);
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
		"{\"cmd\":\"reboot-the-host\"}",
		"{\"cmd\":\"status\"} {\"cmd\":\"quit\"}",
		"{\"cmd\":\"status\"}garbage",
		"{\"cmd\":\"status\",\"args\":[1]}",
		"{\"cmd\":\"status\"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(bad[i], &req), -1);
		assert_true(strlen(err) > 0);
		ctl_request_free(&req);
	}
	char with_nul[] = "{\"cmd\":\"status\"}\0x";
	assert_int_equal(
		protocol_parse_request(with_nul, sizeof(with_nul) - 1, &req, err, sizeof(err)), -1);
	ctl_request_free(&req);
	size_t big = PROTOCOL_MAX_LINE + 10;
	char *huge = malloc(big + 1);
	memset(huge, ' ', big);
	huge[big] = '\0';
	assert_int_equal(parse(huge, &req), -1);
	ctl_request_free(&req);
	assert_non_null(strstr(err, "too long"));
	free(huge);
	/* Deep nesting must be refused by the tokenizer, not crash it. */
	char deep[4096];
	memset(deep, '[', sizeof(deep) - 1);
	deep[sizeof(deep) - 1] = '\0';
	assert_int_equal(parse(deep, &req), -1);
	ctl_request_free(&req);
	/* An unknown command still echoes the id. */
	assert_int_equal(parse("{\"cmd\":\"fly\",\"id\":9}", &req), -1);
	char *line = protocol_reply_error(&req, err);
	assert_string_equal(line, "{\"ok\":false,\"id\":9,\"error\":\"unknown command 'fly'\"}\n");
	free(line);
	ctl_request_free(&req);
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
	ctl_request_free(&req);
	char *anon = protocol_reply_error(NULL, "x");
	assert_string_equal(anon, "{\"ok\":false,\"error\":\"x\"}\n");
	free(anon);
}

static void status_json(void **state)
{
	(void)state;
	struct vcpu_status v[2] = {0};
	v[0] = (struct vcpu_status){.index = 0,
				    .tid = 11,
				    .host_cpu = 1,
				    .state = "running",
				    .has_pin = true,
				    .has_actual = true,
				    .heartbeats = 5};
	CPU_SET(1, &v[0].desired);
	CPU_SET(0, &v[0].actual);
	CPU_SET(1, &v[0].actual);
	v[0].displaced = true;
	v[1] = (struct vcpu_status){.index = 1, .tid = 12, .host_cpu = 0, .state = "paused"};
	struct vm_status st = {
		.name = "t", .pid = 42, .state = "running", .nr_vcpus = 2, .vcpus = v};
	json_object *o = protocol_status_json(&st);
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	assert_non_null(strstr(s, "\"name\":\"t\""));
	assert_non_null(strstr(s, "\"pid\":42"));
	assert_non_null(strstr(s, "\"pinned\":[0,1],\"desired\":[1],\"displaced\":true"));
	assert_non_null(strstr(s, "\"pinned\":null,\"desired\":null"));
	assert_non_null(strstr(s, "\"heartbeats\":5"));
	json_object_put(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(valid_requests),
		cmocka_unit_test(malformed_requests),
		cmocka_unit_test(replies),
		cmocka_unit_test(status_json),
	};
	return cmocka_run_group_tests_name("protocol", tests, NULL, NULL);
}
