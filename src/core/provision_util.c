/*
 * Plumbing of the provisioning engine (see provision_internal.h):
 * transactions that unwind exactly their own level, events, the paging
 * tokens of the template lists ("<tag><hex of the last key>", which fits
 * the AWS marker pattern), row access and the insertion of a certificate
 * iotprov has just issued, for the paths (fleet provisioning, claims,
 * RegisterThing by CSR) that need a purpose, a short validity or the fast
 * CSR path that the registry's CreateCertificateFromCsr does not offer.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "core/provision_internal.h"
#include "core/registry_internal.h"

#define PAGE_KEY_MAX 300

iotp_rc prov_tx_begin(struct iotp_core *core, int *depth0, struct iotp_err *err)
{
	*depth0 = store_tx_depth(core->store);
	return store_begin(core->store, err);
}

iotp_rc prov_tx_end(struct iotp_core *core, int depth0, iotp_rc rc, struct iotp_err *err)
{
	if (rc == IOTP_OK) {
		rc = store_commit(core->store, err);
		if (rc == IOTP_OK)
			return IOTP_OK;
	}
	while (store_tx_depth(core->store) > depth0)
		store_rollback(core->store);
	return rc;
}

iotp_rc prov_event(struct iotp_core *core, const char *actor, const char *action,
                   const char *object, json_t *detail, struct iotp_err *err)
{
	char *text = NULL;
	iotp_rc rc;

	if (detail != NULL) {
		text = json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS);
		json_decref(detail);
		if (text == NULL)
			return iotp_err_set(err, IOTP_ERR_NOMEM, "event %s %s: out of memory", action,
			                    object);
	}
	rc = store_event_append(core->store, actor, action, object, text, NULL, err);
	free(text);
	return rc;
}

int prov_template_name_ok(const char *name)
{
	size_t n;

	if (name == NULL)
		return 0;
	n = strlen(name);
	if (n == 0 || n > PROV_TEMPLATE_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];

		if (!isalnum(c) && c != '_' && c != '-')
			return 0;
	}
	return 1;
}

iotp_rc prov_page_token(char tag, const char *key, char **out, struct iotp_err *err)
{
	size_t n = strlen(key);
	char *t;

	if (n > PAGE_KEY_MAX)
		return iotp_err_set(err, IOTP_ERR_INTERNAL, "paging key too long");
	t = malloc(2 * n + 2);
	if (t == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "paging token: out of memory");
	t[0] = tag;
	util_hex(key, n, t + 1);
	*out = t;
	return IOTP_OK;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

iotp_rc prov_page_open(const struct registry_page *page, char tag, int def, int *max,
                       char **key, struct iotp_err *err)
{
	const char *tok = page != NULL ? page->token : NULL;
	size_t n;
	char *k;

	if (page == NULL || page->max == 0)
		*max = def;
	else if (page->max < 0 || page->max > REGISTRY_PAGE_MAX)
		return iotp_err_set(err, IOTP_ERR_INVALID, "maxResults %d out of range 1..%d",
		                    page->max, REGISTRY_PAGE_MAX);
	else
		*max = page->max;
	if (tok == NULL || *tok == '\0') {
		*key = NULL;
		return IOTP_OK;
	}
	n = strlen(tok);
	if (tok[0] != tag || n < 3 || (n - 1) % 2 != 0 || (n - 1) / 2 > PAGE_KEY_MAX)
		return iotp_err_set(err, IOTP_ERR_INVALID, "invalid nextToken");
	k = malloc((n - 1) / 2 + 1);
	if (k == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "paging token: out of memory");
	for (size_t i = 0; i < (n - 1) / 2; i++) {
		int hi = hexval(tok[1 + 2 * i]), lo = hexval(tok[2 + 2 * i]);

		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
			free(k);
			return iotp_err_set(err, IOTP_ERR_INVALID, "invalid nextToken");
		}
		k[i] = (char)(hi * 16 + lo);
	}
	k[(n - 1) / 2] = '\0';
	*key = k;
	return IOTP_OK;
}

const char *prov_col_str(const struct store_row *row, int i)
{
	if (i >= row->ncols || row->cols[i].type == STORE_NULL)
		return NULL;
	return row->cols[i].s;
}

int64_t prov_col_int(const struct store_row *row, int i)
{
	if (i >= row->ncols || row->cols[i].type != STORE_INT)
		return 0;
	return row->cols[i].i;
}

iotp_rc prov_issuer_ready(struct iotp_core *core, struct iotp_err *err)
{
	if (core->issuing.cert == NULL || core->issuing.key == NULL)
		return iotp_err_set(err, IOTP_ERR_CONFIG,
		                    "no issuing CA loaded: certificates cannot be issued");
	if (core->conf == NULL || core->conf->pki_device_cert_days <= 0 ||
	    core->conf->pki_device_cert_days > 36500)
		return iotp_err_set(err, IOTP_ERR_CONFIG, "[pki] device_cert_days is not set");
	return IOTP_OK;
}

iotp_rc prov_cert_store(struct iotp_core *core, const char *actor, X509 *x, const char *pem,
                        enum registry_cert_status status, const char *purpose,
                        const char *template_name, char id_out[PKI_CERT_ID_LEN + 1],
                        struct iotp_err *err)
{
	char id[PKI_CERT_ID_LEN + 1], res[PKI_CERT_ID_LEN + 6];
	char *serial = NULL, *subject = NULL;
	int64_t nb = 0, na = 0, now = util_now();
	int depth0;
	iotp_rc rc;

	if ((rc = pki_cert_id(x, id, err)) != IOTP_OK ||
	    (rc = pki_cert_validity(x, &nb, &na, err)) != IOTP_OK ||
	    (rc = pki_cert_serial_hex(x, &serial, err)) != IOTP_OK ||
	    (rc = pki_cert_subject_string(x, 0, &subject, err)) != IOTP_OK)
		goto done;
	snprintf(res, sizeof(res), "cert/%s", id);
	/* reg_tx_*: inside prov_apply this joins its level (registry_internal.h). */
	if ((rc = reg_tx_begin(core, &depth0, err)) != IOTP_OK)
		goto done;
	{
		struct store_val p[] = {SV_TEXT(id), SV_TEXT(pem),
		                        SV_TEXT(registry_cert_status_name(status)), SV_TEXT(subject),
		                        SV_TEXT(serial), SV_INT(nb), SV_INT(na), SV_TEXT(purpose),
		                        SV_TEXT(template_name), SV_INT(now), SV_INT(now)};

		rc = store_exec(core->store,
		                "INSERT INTO certificates (id, pem, ca_id, status, mode, subject, serial, "
		                "not_before, not_after, purpose, template_name, created, updated) "
		                "VALUES (?, ?, NULL, ?, 'DEFAULT', ?, ?, ?, ?, ?, ?, ?, ?)",
		                p, 11, NULL, NULL, err);
		if (rc == IOTP_ERR_EXISTS)
			rc = iotp_err_set(err, IOTP_ERR_EXISTS, "certificate %s already exists", id);
	}
	if (rc == IOTP_OK)
		rc = prov_event(core, actor, "cert.create", res,
		                json_pack("{s:s, s:s, s:s, s:s, s:s?}", "certificateId", id, "status",
		                          registry_cert_status_name(status), "certificateMode",
		                          "DEFAULT", "purpose", purpose, "templateName",
		                          template_name),
		                err);
	rc = reg_tx_end(core, depth0, rc, err);
	if (rc == IOTP_OK)
		memcpy(id_out, id, sizeof(id));
done:
	free(serial);
	free(subject);
	return rc;
}
