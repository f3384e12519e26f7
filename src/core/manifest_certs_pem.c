/*
 * The certs-pem manifest format: a bundle of PEM certificates, as chip and
 * module vendors ship them (see manifest.h for the parameters each
 * certificate gives). Anything between certificates -- comments, openssl's
 * "subject=" lines, keys -- is skipped line by line; a certificate that
 * does not parse is a malformed record with the parser's reason.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "common/util.h"
#include "core/manifest.h"
#include "core/pki.h"

static const char begin_marker[] = "-----BEGIN CERTIFICATE-----";
static const char end_marker[] = "-----END CERTIFICATE-----";

static iotp_rc pem_open(const char *data, size_t len, int eof, void **state, size_t *head_bytes,
                        int64_t *head_lines, enum manifest_step *step, struct iotp_err *err)
{
	(void)data;
	(void)len;
	(void)eof;
	(void)err;
	*state = NULL;
	*head_bytes = 0;
	*head_lines = 0;
	*step = MANIFEST_RECORD;
	return IOTP_OK;
}

static int64_t count_lines(const char *p, size_t n)
{
	int64_t c = 0;

	for (const char *q = p; (q = memchr(q, '\n', n - (size_t)(q - p))) != NULL; q++)
		c++;
	return c;
}

/* Finds end_marker at the start of a line in [data, data+len); returns the
 * offset just past its line (the line break included when present), or 0. */
static size_t find_end(const char *data, size_t len, int eof)
{
	size_t pos = 0;

	while (pos < len) {
		size_t l = manifest_line_len(data + pos, len - pos);

		if (l >= sizeof(end_marker) - 1 &&
		    memcmp(data + pos, end_marker, sizeof(end_marker) - 1) == 0) {
			if (pos + l < len)
				return pos + l + 1;
			return eof ? len : 0;
		}
		if (pos + l >= len)
			return 0;
		pos += l + 1;
	}
	return 0;
}

static int set_str(json_t *obj, const char *name, const char *value)
{
	return json_object_set_new(obj, name, json_string(value));
}

/* The parameters of one certificate. */
static iotp_rc cert_params(const char *pem, size_t len, struct manifest_item *out)
{
	static const char *const fields[] = {"CommonName",    "SerialNumber",
	                                     "Organization",  "OrganizationalUnit",
	                                     "Country",       "StateName",
	                                     "DistinguishedNameQualifier"};
	struct iotp_err e;
	X509 *x = NULL;
	json_t *obj = NULL;
	char *text = NULL, *serial = NULL;
	char id[PKI_CERT_ID_LEN + 1], value[256];
	iotp_rc rc = IOTP_OK;

	if (pki_cert_parse(pem, len, &x, &e) != IOTP_OK) {
		out->step = MANIFEST_BAD;
		util_strlcpy(out->reason, e.msg, sizeof(out->reason));
		goto out;
	}
	text = malloc(len + 2);
	obj = json_object();
	if (text == NULL || obj == NULL) {
		rc = IOTP_ERR_NOMEM;
		goto out;
	}
	memcpy(text, pem, len);
	if (len == 0 || text[len - 1] != '\n')
		text[len++] = '\n';
	text[len] = '\0';
	if (pki_cert_id(x, id, &e) != IOTP_OK || pki_cert_serial_hex(x, &serial, &e) != IOTP_OK) {
		out->step = MANIFEST_BAD;
		util_strlcpy(out->reason, e.msg, sizeof(out->reason));
		goto out;
	}
	if (set_str(obj, "CertificatePem", text) != 0 || set_str(obj, "CertificateId", id) != 0 ||
	    set_str(obj, "CertificateSerial", serial) != 0) {
		rc = IOTP_ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		/* A field that is absent or not UTF-8 is left out. */
		if (pki_cert_name_field(x, 0, fields[i], value, sizeof(value), &e) == IOTP_OK)
			json_object_set_new(obj, fields[i], json_string(value));
	}
	out->step = MANIFEST_RECORD;
	out->params = obj;
	obj = NULL;
out:
	json_decref(obj);
	free(text);
	free(serial);
	X509_free(x);
	return rc;
}

static iotp_rc pem_next(void *state, const char *data, size_t len, int eof,
                        struct manifest_item *out, struct iotp_err *err)
{
	size_t l = manifest_line_len(data, len), end;

	(void)state;
	if (l < sizeof(begin_marker) - 1 ||
	    memcmp(data, begin_marker, sizeof(begin_marker) - 1) != 0) {
		if (l == len && !eof) {
			out->step = MANIFEST_MORE;
			return IOTP_OK;
		}
		out->step = MANIFEST_SKIP;
		out->used = l < len ? l + 1 : l;
		out->lines = l < len ? 1 : 0;
		return IOTP_OK;
	}
	end = find_end(data, len, eof);
	if (end == 0) {
		if (!eof) {
			out->step = MANIFEST_MORE;
			return IOTP_OK;
		}
		out->step = MANIFEST_BAD;
		out->used = len;
		out->lines = count_lines(data, len);
		snprintf(out->reason, sizeof(out->reason),
		         "certificate without its END line at the end of the file");
		return IOTP_OK;
	}
	out->used = end;
	out->lines = count_lines(data, end);
	if (cert_params(data, end, out) != IOTP_OK)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "certs-pem: out of memory");
	return IOTP_OK;
}

static void pem_close(void *state)
{
	(void)state;
}

const struct manifest_format manifest_certs_pem = {
	"certs-pem",
	pem_open,
	pem_next,
	pem_close,
};
