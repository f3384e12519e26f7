/*
 * libFuzzer target for the SigV4 code that reads what a client sends: the
 * Authorization header parser, the request-date parser and the canonical
 * request builder (URI and query canonicalisation, header folding), then a
 * full verification with a fixed secret.
 *
 * Input layout (lines end with '\n'):
 *   line 1: Authorization header value
 *   line 2: method
 *   line 3: request target (path?query)
 *   then:   "Name: value" header lines up to an empty line
 *   rest:   body
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "server/sigv4.h"

#define MAX_HEADERS 40

/* Next line of [*p, end) as a fresh NUL-terminated string (NULs inside end
 * the C string early, which is what a server sees too). */
static char *next_line(const char **p, const char *end)
{
	const char *s = *p, *nl = memchr(s, '\n', (size_t)(end - s));
	size_t n = nl != NULL ? (size_t)(nl - s) : (size_t)(end - s);
	char *out = malloc(n + 1);

	if (out == NULL)
		return NULL;
	memcpy(out, s, n);
	out[n] = '\0';
	*p = nl != NULL ? nl + 1 : end;
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	char *auth = NULL, *method = NULL, *target = NULL;
	char *lines[MAX_HEADERS];
	struct sigv4_header headers[MAX_HEADERS + 1];
	size_t nlines = 0, nheaders = 0;
	struct sigv4_auth a;
	struct sigv4_request req;
	struct iotp_err err;
	char amzdate[17];
	int64_t t;
	struct buf b;

	auth = next_line(&p, end);
	method = next_line(&p, end);
	target = next_line(&p, end);
	if (auth == NULL || method == NULL || target == NULL)
		goto out;
	while (p < end && nlines < MAX_HEADERS) {
		char *line = next_line(&p, end), *colon;

		if (line == NULL)
			goto out;
		if (line[0] == '\0') {
			free(line);
			break;
		}
		lines[nlines++] = line;
		colon = strchr(line, ':');
		if (colon == NULL)
			continue;
		*colon = '\0';
		headers[nheaders].name = line;
		headers[nheaders].value = colon + 1;
		nheaders++;
	}
	headers[nheaders].name = "Authorization";
	headers[nheaders].value = auth;
	req.method = method;
	req.target = target;
	req.headers = headers;
	req.nheaders = nheaders + 1;
	req.body = p;
	req.body_len = (size_t)(end - p);

	/* The canonical pieces alone, whatever the header says. */
	buf_init(&b, SIGV4_CANONICAL_MAX);
	{
		const char *q = strchr(target, '?');
		size_t pathlen = q != NULL ? (size_t)(q - target) : strlen(target);

		(void)sigv4_canonical_uri(target, pathlen, &b);
		if (q != NULL)
			(void)sigv4_canonical_query(q + 1, strlen(q + 1), &b);
	}
	buf_cleanup(&b);

	(void)sigv4_request_time(&req, amzdate, &t, &err);
	if (sigv4_parse_authorization(auth, &a, &err) == IOTP_OK) {
		/* A parsed header is always internally consistent. */
		if (a.nsigned < 1 || a.nsigned > SIGV4_MAX_SIGNED_HEADERS || strlen(a.signature) != 64 ||
		    strlen(a.date) != 8)
			abort();
		buf_init(&b, SIGV4_CANONICAL_MAX);
		(void)sigv4_canonical_request(&req, &a, &b, &err);
		buf_cleanup(&b);
		if (sigv4_request_time(&req, amzdate, &t, &err) != IOTP_OK)
			memcpy(amzdate, "20240517T103000Z", 17);
		(void)sigv4_check_scope(&a, amzdate, t, "us-east-1", 1715941800, 900, &err);
		(void)sigv4_verify(&req, &a, amzdate, "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY", &err);
	}
out:
	for (size_t i = 0; i < nlines; i++)
		free(lines[i]);
	free(auth);
	free(method);
	free(target);
	return 0;
}
