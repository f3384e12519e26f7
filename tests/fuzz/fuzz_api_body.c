/*
 * libFuzzer target for every JSON request-body parser of the control-plane
 * API, through the same two steps a request takes in iotprovd: the body is
 * parsed by api_request_parse_json (router.h: duplicate keys, non-objects,
 * malformed JSON), then by the operation's parser of api_parse.h.
 *
 * Input layout: the first byte picks the operation (modulo the table
 * below), the rest is the request body. On success the parsed fields are
 * read back (strlen of every string) so that a dangling or unterminated
 * pointer shows up under ASan; on failure the error must carry the code
 * returned and a message (what the client is told), else the target
 * aborts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/api_parse.h"
#include "server/router.h"

static size_t touch(const char *s)
{
	return s != NULL ? strlen(s) : 0;
}

static size_t parse_one(unsigned op, const json_t *body)
{
	struct iotp_err err;
	iotp_rc rc = IOTP_OK;
	size_t n = 0;

	iotp_err_clear(&err);
	switch (op) {
	case 0: {
		struct registry_thing_spec t;

		memset(&t, 0, sizeof(t));
		if ((rc = api_parse_create_thing(body, &t, &err)) == IOTP_OK)
			n = touch(t.type_name) + json_object_size(t.attributes);
		break;
	}
	case 1: {
		struct registry_thing_update u;

		memset(&u, 0, sizeof(u));
		u.expected_version = REGISTRY_NO_VERSION;
		if ((rc = api_parse_update_thing(body, &u, &err)) == IOTP_OK)
			n = touch(u.type_name) + json_object_size(u.attributes) +
			    (size_t)(u.expected_version & 1) + (size_t)u.merge + (size_t)u.remove_type;
		break;
	}
	case 2: {
		struct registry_thing_type_spec t;

		memset(&t, 0, sizeof(t));
		if ((rc = api_parse_create_thing_type(body, &t, &err)) == IOTP_OK)
			n = touch(t.description) + json_array_size(t.searchable_attributes);
		break;
	}
	case 3: {
		int undo = 0;

		if ((rc = api_parse_deprecate_thing_type(body, &undo, &err)) == IOTP_OK)
			n = (size_t)undo;
		break;
	}
	case 4: {
		struct registry_thing_group_spec g;

		memset(&g, 0, sizeof(g));
		if ((rc = api_parse_create_thing_group(body, &g, &err)) == IOTP_OK)
			n = touch(g.parent_name) + touch(g.description) + json_object_size(g.attributes);
		break;
	}
	case 5: {
		struct registry_thing_group_update g;

		memset(&g, 0, sizeof(g));
		g.expected_version = REGISTRY_NO_VERSION;
		if ((rc = api_parse_update_thing_group(body, &g, &err)) == IOTP_OK)
			n = touch(g.description) + json_object_size(g.attributes) + (size_t)g.merge;
		break;
	}
	case 6:
	case 7: {
		struct api_group_membership m = {NULL, NULL};

		if ((rc = api_parse_group_membership(body, op == 6, &m, &err)) == IOTP_OK)
			n = touch(m.group_name) + touch(m.thing_name);
		break;
	}
	case 8:
	case 9: {
		const char *doc = NULL;

		if ((rc = api_parse_policy_document(body, op == 8, &doc, &err)) == IOTP_OK)
			n = touch(doc);
		break;
	}
	case 10: {
		const char *target = NULL;

		if ((rc = api_parse_policy_target(body, &target, &err)) == IOTP_OK)
			n = touch(target);
		break;
	}
	case 11: {
		const char *csr = NULL;

		if ((rc = api_parse_create_cert_from_csr(body, &csr, &err)) == IOTP_OK)
			n = touch(csr);
		break;
	}
	case 12:
	case 13: {
		struct registry_cert_register r;

		memset(&r, 0, sizeof(r));
		if ((rc = api_parse_register_cert(body, op == 12, &r, &err)) == IOTP_OK)
			n = touch(r.cert_pem) + touch(r.ca_pem) + touch(r.status);
		break;
	}
	case 14: {
		struct registry_ca_register r;

		memset(&r, 0, sizeof(r));
		if ((rc = api_parse_register_ca(body, &r, &err)) == IOTP_OK)
			n = touch(r.ca_pem) + touch(r.verification_pem) + touch(r.mode) +
			    json_object_size(r.registration_config);
		break;
	}
	default: {
		struct registry_ca_update u;

		memset(&u, 0, sizeof(u));
		if ((rc = api_parse_update_ca(body, &u, &err)) == IOTP_OK)
			n = json_object_size(u.registration_config) +
			    (size_t)u.remove_auto_registration;
		break;
	}
	}
	/* A refusal always says why, with the code it returns: the client
	 * gets that message. */
	if (rc != IOTP_OK && (err.rc != rc || err.msg[0] == '\0'))
		abort();
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct api_request rq;
	struct iotp_err err;
	char *body;
	volatile size_t sink;

	if (size < 1)
		return 0;
	body = malloc(size);
	if (body == NULL)
		return 0;
	/* The server hands routes a NUL-terminated body; do the same. */
	memcpy(body, data + 1, size - 1);
	body[size - 1] = '\0';
	memset(&rq, 0, sizeof(rq));
	rq.body = body;
	rq.body_len = size - 1;
	if (api_request_parse_json(&rq, &err) == IOTP_OK) {
		sink = parse_one(data[0] % 16u, rq.json);
		(void)sink;
	}
	api_request_cleanup(&rq);
	free(body);
	return 0;
}
