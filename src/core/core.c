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
	struct iotp_core c;
	char *pem = NULL;
	size_t len = 0;
	iotp_rc rc;

	memset(&c, 0, sizeof(c));
	c.conf = conf;
	if ((rc = conf_path(conf, conf->pki_issuing_cert, cert, sizeof(cert), err)) != IOTP_OK ||
	    (rc = conf_path(conf, conf->pki_issuing_key, key, sizeof(key), err)) != IOTP_OK ||
	    (rc = conf_path(conf, conf->pki_root_cert, root, sizeof(root), err)) != IOTP_OK ||
	    (rc = conf_store_url(conf, url, sizeof(url), err)) != IOTP_OK ||
	    (rc = pki_ca_load(cert, key, &c.issuing, err)) != IOTP_OK ||
	    (rc = util_read_file(root, 1024 * 1024, &pem, &len, err)) != IOTP_OK ||
	    (rc = pki_cert_parse(pem, len, &c.root, err)) != IOTP_OK ||
	    (rc = store_open(url, &c.store, err)) != IOTP_OK)
		goto out;
	*core = c;
	memset(&c, 0, sizeof(c));
out:
	free(pem);
	X509_free(c.root);
	pki_ca_cleanup(&c.issuing);
	return rc;
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

iotp_rc core_event(struct iotp_core *core, const char *actor, const char *action,
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
