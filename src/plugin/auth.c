/*
 * Authentication at connect (MOSQ_EVT_BASIC_AUTH): the client certificate
 * that passed the TLS handshake is looked up by its id in the registry.
 *
 *   known, ACTIVE, valid now, CA (if any) ACTIVE   -> allowed, then iot:Connect
 *   known, any other status / expired / CA inactive -> refused
 *   unknown, issued by a registered ACTIVE CA with auto-registration:
 *     CA has a JITP template -> the template runs now (prov_jitp) and the
 *                               device is allowed on this same connection
 *     otherwise (JITR)       -> registered PENDING_ACTIVATION by a worker,
 *                               the registered event is published, refused
 *   anything else                                   -> refused
 *
 * Every refusal is logged with its reason and queued as an audit event
 * (broker.connect_refused); the refusal itself never waits on a write.
 * A store error refuses (fail closed). JITP is the one path that writes on
 * the broker's thread: one transaction at a device's first connect, so that
 * the device is allowed on the connection that triggered it.
 */
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/objects.h>

#include "common/log.h"
#include "common/util.h"
#include "core/provision.h"
#include "core/registry.h"
#include "plugin/plugin.h"

struct cert_row {
	int found;
	char status[32];
	char ca_id[PKI_CERT_ID_LEN + 1];
	char purpose[16];
	char template_name[REGISTRY_NAME_MAX + 1];
	int64_t not_before;
	int64_t not_after;
	char serial[128];
};

static void col_copy(const struct store_row *row, int i, char *out, size_t size)
{
	out[0] = '\0';
	if (i < row->ncols && row->cols[i].type == STORE_TEXT)
		util_strlcpy(out, row->cols[i].s, size);
}

static int64_t col_int(const struct store_row *row, int i)
{
	return i < row->ncols && row->cols[i].type == STORE_INT ? row->cols[i].i : 0;
}

static int cert_row_cb(void *ud, const struct store_row *row)
{
	struct cert_row *r = ud;

	r->found = 1;
	col_copy(row, 0, r->status, sizeof(r->status));
	col_copy(row, 1, r->ca_id, sizeof(r->ca_id));
	col_copy(row, 2, r->purpose, sizeof(r->purpose));
	col_copy(row, 3, r->template_name, sizeof(r->template_name));
	r->not_before = col_int(row, 4);
	r->not_after = col_int(row, 5);
	col_copy(row, 6, r->serial, sizeof(r->serial));
	return 1;
}

static iotp_rc cert_lookup(struct iotp_core *core, const char *id, struct cert_row *out,
                           struct iotp_err *err)
{
	struct store_val p[] = {SV_TEXT(id)};

	memset(out, 0, sizeof(*out));
	return store_exec(core->store,
	                  "SELECT status, ca_id, purpose, template_name, not_before, not_after, "
	                  "serial FROM certificates WHERE id = ?",
	                  p, 1, cert_row_cb, out, err);
}

/* "ACTIVE" when the CA is, else its status ("" when absent). */
static iotp_rc ca_status(struct iotp_core *core, const char *ca_id, char *out, size_t size,
                         struct iotp_err *err)
{
	struct store_val p[] = {SV_TEXT(ca_id)};
	char *s = NULL;
	iotp_rc rc;

	rc = store_query_text(core->store, "SELECT status FROM cas WHERE id = ?", p, 1, &s, err);
	if (rc == IOTP_ERR_NOT_FOUND) {
		out[0] = '\0';
		return IOTP_OK;
	}
	if (rc == IOTP_OK)
		util_strlcpy(out, s != NULL ? s : "", size);
	free(s);
	return rc;
}

/* ---- policy variables ---- */

/* The single value of a DN field as UTF-8, NULL when absent or repeated. */
static char *dn_field(X509_NAME *name, int nid)
{
	int i = X509_NAME_get_index_by_NID(name, nid, -1);
	unsigned char *utf8 = NULL;
	char *out = NULL;
	int n;

	if (i < 0 || X509_NAME_get_index_by_NID(name, nid, i) >= 0)
		return NULL;
	n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
	if (n >= 0 && memchr(utf8, '\0', (size_t)n) == NULL) {
		out = malloc((size_t)n + 1);
		if (out != NULL) {
			memcpy(out, utf8, (size_t)n);
			out[n] = '\0';
		}
	}
	OPENSSL_free(utf8);
	return out;
}

static void fill_cert_vars(struct conn *c, X509 *x, const char *serial)
{
	X509_NAME *subj = X509_get_subject_name(x), *iss = X509_get_issuer_name(x);

	for (int f = 0; f < POLICY_CERT_FIELD_COUNT; f++) {
		int nid = policy_cert_field_nid((enum policy_cert_field)f);

		if (nid == NID_undef)
			continue;
		c->vars[POLICY_VAR_SUBJECT(f)] = dn_field(subj, nid);
		c->vars[POLICY_VAR_ISSUER(f)] = dn_field(iss, nid);
	}
	ERR_clear_error();
	if (serial != NULL && *serial != '\0')
		c->vars[POLICY_VAR_CERT_SERIAL_NUMBER] = strdup(serial);
	c->vars[POLICY_VAR_CLIENT_ID] = strdup(c->client_id);
}

struct thing_row {
	int found;
	char *type_name;
	char *attributes;
};

static int thing_row_cb(void *ud, const struct store_row *row)
{
	struct thing_row *t = ud;

	t->found = 1;
	if (row->ncols > 0 && row->cols[0].type == STORE_TEXT)
		t->type_name = strdup(row->cols[0].s);
	if (row->ncols > 1 && row->cols[1].type == STORE_TEXT)
		t->attributes = strdup(row->cols[1].s);
	return 1;
}

/* Thing variables: only when the client id names a thing attached to the
 * certificate (AWS); IsAttached says which. */
static iotp_rc fill_thing_vars(struct plugin *pl, struct conn *c, struct iotp_err *err)
{
	char principal[PKI_CERT_ID_LEN + 6];
	struct thing_row t = {0};
	iotp_rc rc;

	snprintf(principal, sizeof(principal), "cert/%s", c->cert_id);
	{
		struct store_val p[] = {SV_TEXT(c->client_id), SV_TEXT(principal)};

		rc = store_exec(pl->core.store,
		                "SELECT t.type_name, t.attributes FROM thing_principals p "
		                "JOIN things t ON t.name = p.thing_name "
		                "WHERE p.thing_name = ? AND p.principal = ?",
		                p, 2, thing_row_cb, &t, err);
	}
	if (rc != IOTP_OK)
		goto out;
	c->vars[POLICY_VAR_THING_IS_ATTACHED] = strdup(t.found ? "true" : "false");
	if (!t.found)
		goto out;
	c->vars[POLICY_VAR_THING_NAME] = strdup(c->client_id);
	if (t.type_name != NULL)
		c->vars[POLICY_VAR_THING_TYPE_NAME] = strdup(t.type_name);
	if (t.attributes != NULL) {
		json_t *obj = json_loads(t.attributes, 0, NULL);
		const char *k;
		json_t *v;

		if (json_is_object(obj) && json_object_size(obj) > 0) {
			c->attrs = calloc(json_object_size(obj), sizeof(*c->attrs));
			json_object_foreach(obj, k, v) {
				if (c->attrs == NULL || !json_is_string(v))
					continue;
				c->attrs[c->n_attrs].name = strdup(k);
				c->attrs[c->n_attrs].value = strdup(json_string_value(v));
				if (c->attrs[c->n_attrs].name == NULL || c->attrs[c->n_attrs].value == NULL) {
					free((char *)c->attrs[c->n_attrs].name);
					free((char *)c->attrs[c->n_attrs].value);
					continue;
				}
				c->n_attrs++;
			}
		}
		json_decref(obj);
	}
out:
	free(t.type_name);
	free(t.attributes);
	return rc;
}

static int thing_name_cb(void *ud, const struct store_row *row)
{
	struct conn *c = ud;
	char **grown;

	if (row->ncols < 1 || row->cols[0].type != STORE_TEXT || c->n_things >= 64)
		return 0;
	grown = realloc(c->things, (c->n_things + 1) * sizeof(*grown));
	if (grown == NULL)
		return 1;
	c->things = grown;
	if ((c->things[c->n_things] = strdup(row->cols[0].s)) != NULL)
		c->n_things++;
	return 0;
}

/* The things the certificate is attached to: a change to one of them
 * (groups, attributes) makes this connection reload (feed.c). */
static iotp_rc load_things(struct plugin *pl, struct conn *c, struct iotp_err *err)
{
	char principal[PKI_CERT_ID_LEN + 6];
	struct store_val p[1];

	snprintf(principal, sizeof(principal), "cert/%s", c->cert_id);
	p[0] = SV_TEXT(principal);
	return store_exec(pl->core.store,
	                  "SELECT thing_name FROM thing_principals WHERE principal = ?", p, 1,
	                  thing_name_cb, c, err);
}

static iotp_rc add_policy(struct conn *c, const char *name, const char *doc)
{
	struct policy *p = NULL;
	struct policy **grown;
	struct iotp_err perr;

	if (policy_compile(doc, strlen(doc), &p, &perr) != IOTP_OK) {
		/* the registry only stores what compiles; skip rather than fail */
		LOG_WARN("broker: policy %s does not compile, ignored: %s", name, perr.msg);
		return IOTP_OK;
	}
	grown = realloc(c->policies, (c->n_policies + 1) * sizeof(*grown));
	if (grown == NULL) {
		policy_free(p);
		return IOTP_ERR_NOMEM;
	}
	c->policies = grown;
	c->policies[c->n_policies++] = p;
	return IOTP_OK;
}

iotp_rc auth_load_policies(struct plugin *pl, struct conn *c, struct iotp_err *err)
{
	struct registry_policy_docs docs = {0};
	char *claim_doc = NULL;
	iotp_rc rc;

	conn_reset_policies(c);
	c->gen = pl->policy_gen;
	c->stale = 0;
	if ((rc = fill_thing_vars(pl, c, err)) != IOTP_OK ||
	    (rc = load_things(pl, c, err)) != IOTP_OK)
		goto out;
	if (c->claim) {
		if ((rc = prov_claim_policy_document(c->claim_template, &claim_doc, err)) != IOTP_OK)
			goto out;
		if (add_policy(c, "claim", claim_doc) != IOTP_OK)
			rc = iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
		goto out;
	}
	if ((rc = registry_policies_for_principal(&pl->core, c->cert_id, &docs, err)) != IOTP_OK)
		goto out;
	for (size_t i = 0; i < docs.count; i++) {
		if (add_policy(c, docs.items[i].name, docs.items[i].document) != IOTP_OK) {
			rc = iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
			goto out;
		}
	}
out:
	free(claim_doc);
	registry_policy_docs_cleanup(&docs);
	if (rc != IOTP_OK)
		c->gen = 0; /* try again at the next check */
	return rc;
}

/* ---- the decision ---- */

static void refuse(struct plugin *pl, const char *cert_id, const char *client_id,
                   const char *reason)
{
	LOG_WARN("broker: connection refused: client %s cert %s: %s",
	         client_id != NULL ? client_id : "-", cert_id[0] != '\0' ? cert_id : "-", reason);
	plugin_audit(pl, "broker.connect_refused", cert_id, client_id, reason);
}

static void jitr_queue(struct plugin *pl, X509 *x, const char *cert_id, const char *client_id,
                       const char *ca_id)
{
	struct job *j = calloc(1, sizeof(*j));
	char *pem = NULL;

	if (j == NULL || pki_cert_to_pem(x, &pem, NULL) != IOTP_OK ||
	    (j->client_id = strdup(client_id != NULL ? client_id : "")) == NULL) {
		free(pem);
		job_free(j);
		LOG_ERROR("broker: JITR of %s not queued: out of memory", cert_id);
		return;
	}
	j->kind = JOB_JITR;
	j->cert_pem = pem;
	util_strlcpy(j->cert_id, cert_id, sizeof(j->cert_id));
	util_strlcpy(j->ca_id, ca_id, sizeof(j->ca_id));
	if (work_submit(&pl->work, j) != IOTP_OK) {
		LOG_WARN("broker: JITR of %s not queued: work queue full", cert_id);
		job_free(j);
	}
}

/* An unknown certificate: JITP, JITR or refusal. Returns MOSQ_ERR_SUCCESS
 * only when JITP registered it (the caller then looks it up again). */
static int unknown_cert(struct plugin *pl, X509 *x, const char *cert_id, const char *client_id)
{
	struct registry_ca ca = {0};
	struct prov_result res = {0};
	struct iotp_err err;
	char actor[PKI_CERT_ID_LEN + 8], reason[IOTP_ERR_MSG_MAX + 256];
	int mrc = MOSQ_ERR_AUTH;
	iotp_rc rc;

	rc = registry_ca_find_issuer(&pl->core, x, &ca, &err);
	if (rc == IOTP_ERR_NOT_FOUND) {
		refuse(pl, cert_id, client_id, "unknown certificate, issued by no registered CA");
		goto out;
	}
	if (rc != IOTP_OK) {
		snprintf(reason, sizeof(reason), "store error finding the issuer: %s", err.msg);
		refuse(pl, cert_id, client_id, reason);
		goto out;
	}
	if (!ca.active) {
		snprintf(reason, sizeof(reason), "unknown certificate; its CA %s is INACTIVE", ca.id);
		refuse(pl, cert_id, client_id, reason);
		goto out;
	}
	if (!ca.auto_registration) {
		snprintf(reason, sizeof(reason),
		         "unknown certificate; its CA %s does not allow auto-registration", ca.id);
		refuse(pl, cert_id, client_id, reason);
		goto out;
	}
	if (ca.registration_config != NULL &&
	    (json_object_get(ca.registration_config, "templateName") != NULL ||
	     json_object_get(ca.registration_config, "templateBody") != NULL)) {
		snprintf(actor, sizeof(actor), "device:%s", cert_id);
		rc = prov_jitp(&pl->core, actor, x, ca.id, &res, &err);
		if (rc != IOTP_OK) {
			snprintf(reason, sizeof(reason), "JITP with the template of CA %s failed: %s",
			         ca.id, err.msg);
			refuse(pl, cert_id, client_id, reason);
			goto out;
		}
		LOG_INFO("broker: JITP provisioned thing %s for cert %s (CA %s)",
		         res.thing_name[0] != '\0' ? res.thing_name : "-", cert_id, ca.id);
		mrc = MOSQ_ERR_SUCCESS;
		goto out;
	}
	jitr_queue(pl, x, cert_id, client_id, ca.id);
	snprintf(reason, sizeof(reason),
	         "unknown certificate under CA %s: registered PENDING_ACTIVATION (JITR)", ca.id);
	refuse(pl, cert_id, client_id, reason);
out:
	prov_result_cleanup(&res);
	registry_ca_cleanup(&ca);
	return mrc;
}

/* Checks a known certificate; returns NULL when allowed, else the reason
 * (written to buf). */
static const char *known_cert_refusal(struct plugin *pl, const struct cert_row *r, char *buf,
                                      size_t size)
{
	int64_t now = util_now();
	char castat[32];
	struct iotp_err err;

	if (strcmp(r->status, "ACTIVE") != 0) {
		snprintf(buf, size, "certificate is %s", r->status);
		return buf;
	}
	if (now > r->not_after) {
		snprintf(buf, size, "certificate expired");
		return buf;
	}
	if (now < r->not_before) {
		snprintf(buf, size, "certificate is not yet valid");
		return buf;
	}
	if (r->ca_id[0] != '\0') {
		if (ca_status(&pl->core, r->ca_id, castat, sizeof(castat), &err) != IOTP_OK) {
			snprintf(buf, size, "store error reading CA %s: %s", r->ca_id, err.msg);
			return buf;
		}
		if (strcmp(castat, "ACTIVE") != 0) {
			snprintf(buf, size, "its CA certificate %s is %s", r->ca_id,
			         castat[0] != '\0' ? castat : "not registered");
			return buf;
		}
	}
	return NULL;
}

int auth_basic(struct plugin *pl, struct mosquitto *client)
{
	const char *client_id = mosquitto_client_id(client);
	X509 *x = mosquitto_client_certificate(client);
	char cert_id[PKI_CERT_ID_LEN + 1] = "", reason[IOTP_ERR_MSG_MAX + 256];
	const char *why;
	struct cert_row row;
	struct conn *c = NULL;
	struct iotp_err err;
	int mrc = MOSQ_ERR_AUTH;

	if (x == NULL) {
		refuse(pl, cert_id, client_id, "no client certificate");
		goto out;
	}
	if (client_id == NULL || *client_id == '\0') {
		refuse(pl, cert_id, client_id, "no client id");
		goto out;
	}
	if (pki_cert_id(x, cert_id, &err) != IOTP_OK) {
		refuse(pl, cert_id, client_id, "certificate cannot be encoded");
		goto out;
	}
	if (cert_lookup(&pl->core, cert_id, &row, &err) != IOTP_OK) {
		snprintf(reason, sizeof(reason), "store error: %s", err.msg);
		refuse(pl, cert_id, client_id, reason);
		goto out;
	}
	if (!row.found) {
		if (unknown_cert(pl, x, cert_id, client_id) != MOSQ_ERR_SUCCESS)
			goto out;
		if (cert_lookup(&pl->core, cert_id, &row, &err) != IOTP_OK || !row.found) {
			refuse(pl, cert_id, client_id, "certificate missing after JITP");
			goto out;
		}
	}
	if ((why = known_cert_refusal(pl, &row, reason, sizeof(reason))) != NULL) {
		refuse(pl, cert_id, client_id, why);
		goto out;
	}
	if ((c = conn_new()) == NULL || (c->client_id = strdup(client_id)) == NULL) {
		refuse(pl, cert_id, client_id, "out of memory");
		goto out;
	}
	c->client = client;
	c->serial = ++pl->next_serial;
	util_strlcpy(c->cert_id, cert_id, sizeof(c->cert_id));
	util_strlcpy(c->ca_id, row.ca_id, sizeof(c->ca_id));
	if (strcmp(row.purpose, "CLAIM") == 0) {
		c->claim = 1;
		if ((c->claim_template = strdup(row.template_name)) == NULL) {
			refuse(pl, cert_id, client_id, "out of memory");
			goto out;
		}
	}
	fill_cert_vars(c, x, row.serial);
	if (auth_load_policies(pl, c, &err) != IOTP_OK) {
		snprintf(reason, sizeof(reason), "policies could not be loaded: %s", err.msg);
		refuse(pl, cert_id, client_id, reason);
		goto out;
	}
	{
		char res[1024];
		int n = snprintf(res, sizeof(res), "client/%s", client_id);

		if (n < 0 || (size_t)n >= sizeof(res) ||
		    acl_decide(pl, c, POLICY_ACTION_CONNECT, res) != POLICY_ALLOW) {
			snprintf(reason, sizeof(reason), "iot:Connect denied for client/%s", client_id);
			refuse(pl, cert_id, client_id, reason);
			goto out;
		}
	}
	LOG_INFO("broker: client %s connected with cert %s%s", client_id, cert_id,
	         c->claim ? " (claim)" : "");
	conn_map_put(&pl->conns, c);
	c = NULL;
	mrc = MOSQ_ERR_SUCCESS;
out:
	conn_free(c);
	X509_free(x);
	return mrc;
}
