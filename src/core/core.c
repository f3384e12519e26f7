/*
 * The core context (see core.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "core/core.h"

iotp_rc core_open(struct iotp_core *core, const struct iotp_conf *conf,
                  struct iotp_err *err)
{
	char url[CONF_STR_MAX * 2], cert[CONF_STR_MAX * 2], key[CONF_STR_MAX * 2];
	char root[CONF_STR_MAX * 2];
	X509 *rootcert = NULL;
	iotp_rc rc;

	memset(core, 0, sizeof(*core));
	core->conf = conf;
	if ((rc = conf_path(conf, conf->pki_issuing_cert, cert, sizeof(cert), err)) != IOTP_OK ||
	    (rc = conf_path(conf, conf->pki_issuing_key, key, sizeof(key), err)) != IOTP_OK ||
	    (rc = conf_path(conf, conf->pki_root_cert, root, sizeof(root), err)) != IOTP_OK ||
	    (rc = conf_store_url(conf, url, sizeof(url), err)) != IOTP_OK)
		return rc;
	if ((rc = pki_ca_load(cert, key, &core->issuing, err)) != IOTP_OK)
		return rc;
	{
		char *pem = NULL;
		size_t len;

		rc = util_read_file(root, 1024 * 1024, &pem, &len, err);
		if (rc == IOTP_OK)
			rc = pki_cert_parse(pem, len, &rootcert, err);
		free(pem);
		if (rc != IOTP_OK) {
			pki_ca_cleanup(&core->issuing);
			return rc;
		}
	}
	if ((rc = store_open(url, &core->store, err)) != IOTP_OK) {
		X509_free(rootcert);
		pki_ca_cleanup(&core->issuing);
		return rc;
	}
	core->root = rootcert;
	return IOTP_OK;
}

void core_init_with_store(struct iotp_core *core, const struct iotp_conf *conf,
                          struct store *store)
{
	memset(core, 0, sizeof(*core));
	core->conf = conf;
	core->store = store;
}

void core_close(struct iotp_core *core)
{
	if (core == NULL)
		return;
	store_close(core->store);
	pki_ca_cleanup(&core->issuing);
	X509_free(core->root);
	memset(core, 0, sizeof(*core));
}

iotp_rc core_arn(const struct iotp_core *core, const char *resource, char *out,
                 size_t size, struct iotp_err *err)
{
	int n = snprintf(out, size, "arn:aws:iot:%s:%s:%s", core->conf->region,
	                 core->conf->account_id, resource);

	if (n < 0 || (size_t)n >= size)
		return iotp_err_set(err, IOTP_ERR_INVALID, "ARN too long for %s", resource);
	return IOTP_OK;
}

const char *core_arn_resource(const char *arn)
{
	const char *p = arn;

	if (strncmp(p, "arn:aws:iot:", 12) != 0)
		return NULL;
	p += 12;
	/* region, then account */
	for (int i = 0; i < 2; i++) {
		p = strchr(p, ':');
		if (p == NULL)
			return NULL;
		p++;
	}
	return *p != '\0' ? p : NULL;
}
