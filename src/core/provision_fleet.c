/*
 * Fleet provisioning without a transport (see provision.h): certificates
 * with ownership tokens for a claim, register-thing with the
 * pre-provisioning hook, trusted-user claims, the sweep of what expired,
 * and JITP. The broker plugin calls these from its MQTT handlers and
 * iotprovd from its API routes and background sweep.
 *
 * Tokens: 32 bytes from the CSPRNG, sent as 64 hex digits, stored only as
 * their SHA-256 (prov_tokens.token_hash). A token is consumed by
 * "UPDATE ... SET used = 1 WHERE token_hash = ? AND used = 0 AND expires >
 * now" inside the transaction that applies the template: two devices (or
 * two threads) racing with one token serialise on that row and exactly one
 * sees a changed row; a failed application rolls the consumption back so
 * the device may retry. The hook runs before that transaction, so a slow
 * hook never holds the store's write lock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/log.h"
#include "common/util.h"
#include "core/ca_cache.h"
#include "core/provision_internal.h"

#define TOKEN_BYTES 32
#define SWEEP_BATCH 200
#define CLAIM_CN_PREFIX "Provisioning claim "

void prov_new_cert_cleanup(struct prov_new_cert *c)
{
	if (c == NULL)
		return;
	free(c->cert_pem);
	if (c->private_key_pem != NULL)
		OPENSSL_clear_free(c->private_key_pem, strlen(c->private_key_pem));
	OPENSSL_cleanse(c->token, sizeof(c->token));
	memset(c, 0, sizeof(*c));
}

void prov_claim_cleanup(struct prov_claim *c)
{
	if (c == NULL)
		return;
	free(c->cert_pem);
	free(c->public_key_pem);
	if (c->private_key_pem != NULL)
		OPENSSL_clear_free(c->private_key_pem, strlen(c->private_key_pem));
	memset(c, 0, sizeof(*c));
}

/* ---- tokens ---- */

static iotp_rc token_hash(const char *token, char out[65], struct iotp_err *err)
{
	unsigned char md[32];
	unsigned int n = 0;

	if (EVP_Digest(token, strlen(token), md, &n, EVP_sha256(), NULL) != 1 || n != 32)
		return iotp_err_ssl(err, IOTP_ERR_CRYPTO, "hash the ownership token");
	util_hex(md, sizeof(md), out);
	return IOTP_OK;
}

static int64_t token_ttl(const struct iotp_core *core)
{
	return core->conf != NULL && core->conf->prov_token_ttl > 0 ? core->conf->prov_token_ttl
	                                                          : PROV_TOKEN_TTL;
}

/* The claimant as the store knows it. */
struct claimant {
	char id[PKI_CERT_ID_LEN + 1];
	char claim_template[PROV_TEMPLATE_NAME_MAX + 1]; /* "" unless purpose CLAIM */
};

struct claimant_row {
	int found;
	char status[32];
	char purpose[16];
	char tmpl[PROV_TEMPLATE_NAME_MAX + 1];
	int64_t not_after;
};

static int claimant_cb(void *ud, const struct store_row *row)
{
	struct claimant_row *c = ud;

	c->found = 1;
	util_strlcpy(c->status, prov_col_str(row, 0) ? prov_col_str(row, 0) : "", sizeof(c->status));
	util_strlcpy(c->purpose, prov_col_str(row, 1) ? prov_col_str(row, 1) : "",
	             sizeof(c->purpose));
	util_strlcpy(c->tmpl, prov_col_str(row, 2) ? prov_col_str(row, 2) : "", sizeof(c->tmpl));
	c->not_after = prov_col_int(row, 3);
	return 1;
}

static iotp_rc claimant_check(struct iotp_core *core, const struct prov_claimant *who,
                              int64_t now, struct claimant *out, struct iotp_err *err)
{
	struct claimant_row c = {0};
	struct claimant cl;
	iotp_rc rc;

	memset(&cl, 0, sizeof(cl));
	if (who == NULL || who->cert_id == NULL || strlen(who->cert_id) != PKI_CERT_ID_LEN ||
	    strspn(who->cert_id, "0123456789abcdefABCDEF") != PKI_CERT_ID_LEN)
		return iotp_err_set(err, IOTP_ERR_DENIED, "no claim certificate");
	for (size_t i = 0; i < PKI_CERT_ID_LEN; i++) {
		char ch = who->cert_id[i];

		cl.id[i] = (char)(ch >= 'A' && ch <= 'F' ? ch + 32 : ch);
	}
	{
		struct store_val p[] = {SV_TEXT(cl.id)};

		rc = store_exec(core->store,
		                "SELECT status, purpose, template_name, not_after FROM certificates "
		                "WHERE id = ?",
		                p, 1, claimant_cb, &c, err);
	}
	if (rc != IOTP_OK)
		return rc;
	if (!c.found || strcmp(c.status, "ACTIVE") != 0)
		return iotp_err_set(err, IOTP_ERR_DENIED,
		                    "claim certificate %.16s... is unknown or not ACTIVE", cl.id);
	if (strcmp(c.purpose, "CLAIM") == 0) {
		if (c.not_after < now)
			return iotp_err_set(err, IOTP_ERR_DENIED,
			                    "provisioning claim %.16s... has expired", cl.id);
		util_strlcpy(cl.claim_template, c.tmpl, sizeof(cl.claim_template));
	}
	*out = cl;
	return IOTP_OK;
}

static void claimant_actor(const struct claimant *cl, char *out, size_t size)
{
	snprintf(out, size, "device:%s", cl->id);
}

/* Stores the issued certificate PENDING_ACTIVATION with a new token, in
 * one transaction, and fills out (cert_id, token). */
static iotp_rc store_with_token(struct iotp_core *core, const struct claimant *cl, X509 *x,
                                const char *pem, struct prov_new_cert *out,
                                struct iotp_err *err)
{
	unsigned char raw[TOKEN_BYTES];
	char token[2 * TOKEN_BYTES + 1], hash[65], actor[PKI_CERT_ID_LEN + 8];
	char id[PKI_CERT_ID_LEN + 1];
	int64_t now = util_now();
	int depth0;
	iotp_rc rc;

	if ((rc = util_random(raw, sizeof(raw), err)) != IOTP_OK)
		return rc;
	util_hex(raw, sizeof(raw), token);
	OPENSSL_cleanse(raw, sizeof(raw));
	if ((rc = token_hash(token, hash, err)) != IOTP_OK)
		goto out;
	claimant_actor(cl, actor, sizeof(actor));
	if ((rc = prov_tx_begin(core, &depth0, err)) != IOTP_OK)
		goto out;
	rc = prov_cert_store(core, actor, x, pem, REGISTRY_CERT_PENDING_ACTIVATION, "DEVICE", NULL,
	                     id, err);
	if (rc == IOTP_OK) {
		const char *ctpl = cl->claim_template[0] != '\0' ? cl->claim_template : NULL;
		struct store_val p[] = {SV_TEXT(hash), SV_TEXT(id), SV_TEXT(cl->id), SV_TEXT(ctpl),
		                        SV_INT(now + token_ttl(core)), SV_INT(now)};

		rc = store_exec(core->store,
		                "INSERT INTO prov_tokens (token_hash, cert_id, claim_cert_id, "
		                "claim_template, used, expires, created) VALUES (?, ?, ?, ?, 0, ?, ?)",
		                p, 6, NULL, NULL, err);
	}
	rc = prov_tx_end(core, depth0, rc, err);
	if (rc == IOTP_OK) {
		memcpy(out->cert_id, id, sizeof(id));
		memcpy(out->token, token, sizeof(token));
	}
out:
	OPENSSL_cleanse(token, sizeof(token));
	return rc;
}

static enum pki_key_type conf_key_type(const struct iotp_core *core)
{
	enum pki_key_type t = PKI_KEY_EC_P256;

	if (core->conf != NULL && pki_key_type_parse(core->conf->pki_key_type, &t, NULL) != IOTP_OK)
		t = PKI_KEY_EC_P256;
	return t;
}

iotp_rc prov_create_keys_and_certificate(struct iotp_core *core, const struct prov_claimant *who,
                                         struct prov_new_cert *out, struct iotp_err *err)
{
	struct prov_new_cert n;
	struct pki_issue_opts opts = {0};
	struct claimant cl;
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	iotp_rc rc;

	memset(&n, 0, sizeof(n));
	if ((rc = claimant_check(core, who, util_now(), &cl, err)) != IOTP_OK ||
	    (rc = prov_issuer_ready(core, err)) != IOTP_OK)
		return rc;
	opts.days = (int)core->conf->pki_device_cert_days;
	opts.not_before_skew = PROV_ISSUE_SKEW;
	if ((rc = pki_key_generate(conf_key_type(core), &key, err)) != IOTP_OK ||
	    (rc = pki_cert_issue_for_key(&core->issuing, key, "AWS IoT Certificate", &opts, &x,
	                                 err)) != IOTP_OK ||
	    (rc = pki_cert_to_pem(x, &n.cert_pem, err)) != IOTP_OK ||
	    (rc = pki_key_to_pem(key, &n.private_key_pem, err)) != IOTP_OK ||
	    (rc = store_with_token(core, &cl, x, n.cert_pem, &n, err)) != IOTP_OK)
		goto out;
	*out = n;
	memset(&n, 0, sizeof(n));
out:
	prov_new_cert_cleanup(&n);
	EVP_PKEY_free(key);
	X509_free(x);
	return rc;
}

iotp_rc prov_create_certificate_from_csr(struct iotp_core *core,
                                         const struct prov_claimant *who, const char *csr,
                                         size_t len, struct prov_new_cert *out,
                                         struct iotp_err *err)
{
	struct prov_new_cert n;
	struct pki_issue_opts opts = {0};
	struct claimant cl;
	X509 *x = NULL;
	iotp_rc rc;

	memset(&n, 0, sizeof(n));
	if ((rc = claimant_check(core, who, util_now(), &cl, err)) != IOTP_OK ||
	    (rc = prov_issuer_ready(core, err)) != IOTP_OK)
		return rc;
	if (csr == NULL || len == 0 || len > 4096)
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "certificateSigningRequest must be 1 to 4096 bytes");
	opts.days = (int)core->conf->pki_device_cert_days;
	opts.not_before_skew = PROV_ISSUE_SKEW;
	if ((rc = pki_csr_issue(&core->issuing, csr, len, &opts, &x, err)) != IOTP_OK ||
	    (rc = pki_cert_to_pem(x, &n.cert_pem, err)) != IOTP_OK ||
	    (rc = store_with_token(core, &cl, x, n.cert_pem, &n, err)) != IOTP_OK)
		goto out;
	*out = n;
	memset(&n, 0, sizeof(n));
out:
	prov_new_cert_cleanup(&n);
	X509_free(x);
	return rc;
}

/* ---- register-thing ---- */

struct token_row {
	int found;
	char cert_id[PKI_CERT_ID_LEN + 1];
	char claim_cert_id[PKI_CERT_ID_LEN + 1];
	char claim_template[PROV_TEMPLATE_NAME_MAX + 1];
	int used;
	int64_t expires;
};

static int token_cb(void *ud, const struct store_row *row)
{
	struct token_row *t = ud;

	t->found = 1;
	util_strlcpy(t->cert_id, prov_col_str(row, 0) ? prov_col_str(row, 0) : "",
	             sizeof(t->cert_id));
	util_strlcpy(t->claim_cert_id, prov_col_str(row, 1) ? prov_col_str(row, 1) : "",
	             sizeof(t->claim_cert_id));
	util_strlcpy(t->claim_template, prov_col_str(row, 2) ? prov_col_str(row, 2) : "",
	             sizeof(t->claim_template));
	t->used = prov_col_int(row, 3) != 0;
	t->expires = prov_col_int(row, 4);
	return 1;
}

/* The token's record, checked against the claimant and the template. The
 * answers for unknown, used, expired and foreign tokens differ only in the
 * log: the device learns "invalid". */
static iotp_rc token_check(struct iotp_core *core, const char *hash, const struct claimant *cl,
                           const char *template_name, int64_t now, struct token_row *t,
                           struct iotp_err *err)
{
	const char *why = NULL;
	iotp_rc rc;

	{
		struct store_val p[] = {SV_TEXT(hash)};

		rc = store_exec(core->store,
		                "SELECT cert_id, claim_cert_id, claim_template, used, expires "
		                "FROM prov_tokens WHERE token_hash = ?",
		                p, 1, token_cb, t, err);
	}
	if (rc != IOTP_OK)
		return rc;
	if (!t->found)
		why = "unknown";
	else if (t->used)
		why = "already used";
	else if (t->expires <= now)
		why = "expired";
	else if (CRYPTO_memcmp(t->claim_cert_id, cl->id, PKI_CERT_ID_LEN) != 0)
		why = "issued to another claim certificate";
	if (why != NULL) {
		LOG_INFO("provision: claim %.16s...: ownership token %s (template %s)", cl->id, why,
		         template_name);
		return iotp_err_set(err, IOTP_ERR_TOKEN,
		                    "invalid certificate ownership token: unknown, used, expired or "
		                    "issued to another certificate");
	}
	if (t->claim_template[0] != '\0' && strcmp(t->claim_template, template_name) != 0)
		return iotp_err_set(err, IOTP_ERR_DENIED,
		                    "this provisioning claim is for template %s, not %s",
		                    t->claim_template, template_name);
	return IOTP_OK;
}

/* Runs the hook: IOTP_OK with *params_out (new reference) the parameters
 * to apply, or DENIED. */
static iotp_rc run_hook(struct iotp_core *core, const struct prov_template *tpl,
                        const struct prov_claimant *who, const struct claimant *cl,
                        const char *cert_id, const char *cert_pem, const json_t *parameters,
                        const struct prov_hook *hook, json_t **params_out,
                        struct iotp_err *err)
{
	const char *url = json_string_value(json_object_get(tpl->hook, "targetArn"));
	json_t *payload = NULL, *answer = NULL;
	char *body = NULL;
	struct iotp_err herr;
	int timeout_ms;
	iotp_rc rc;

	if (hook == NULL || hook->call == NULL || url == NULL)
		return iotp_err_set(err, IOTP_ERR_DENIED,
		                    "template %s has a pre-provisioning hook and none can be called "
		                    "here",
		                    tpl->name);
	timeout_ms = core->conf != NULL && core->conf->prov_hook_timeout_ms > 0
	                 ? (int)core->conf->prov_hook_timeout_ms
	                 : PROV_HOOK_TIMEOUT_DEFAULT * 1000;
	payload = json_pack("{s:s, s:s, s:s, s:s, s:s?, s:o}", "claimCertificateId", cl->id,
	                    "certificateId", cert_id, "certificatePem", cert_pem, "templateArn",
	                    tpl->arn, "clientId", who->client_id, "parameters",
	                    parameters != NULL ? json_deep_copy(parameters) : json_object());
	if (payload == NULL || (body = json_dumps(payload, JSON_COMPACT)) == NULL) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "hook payload: out of memory");
		goto out;
	}
	iotp_err_clear(&herr);
	rc = hook->call(hook->ctx, url, body, timeout_ms, &answer, &herr);
	if (rc != IOTP_OK) {
		LOG_WARN("provision: template %s: pre-provisioning hook failed (%s): %s: refused",
		         tpl->name, iotp_strerror(rc), herr.msg);
		rc = iotp_err_set(err, IOTP_ERR_DENIED,
		                  "the pre-provisioning hook did not allow the provisioning (%s)",
		                  rc == IOTP_ERR_TIMEOUT ? "no answer in time" : "hook failed");
		goto out;
	}
	rc = prov_hook_answer(answer, parameters, params_out, err);
	if (rc != IOTP_OK)
		LOG_INFO("provision: template %s, certificate %.16s...: refused by the hook's answer",
		         tpl->name, cert_id);
out:
	json_decref(payload);
	json_decref(answer);
	free(body);
	return rc;
}

iotp_rc prov_register_thing(struct iotp_core *core, const struct prov_claimant *who,
                            const char *template_name, const char *token,
                            const json_t *parameters, const struct prov_hook *hook,
                            struct prov_result *out, struct iotp_err *err)
{
	struct prov_template tpl = {0};
	struct registry_cert cert = {0};
	struct template *t = NULL;
	struct claimant cl;
	struct token_row tr;
	struct prov_apply_in in;
	json_t *params = NULL;
	X509 *x = NULL;
	char hash[65], actor[PKI_CERT_ID_LEN + 8];
	int64_t now = util_now(), changes = 0;
	int depth0;
	iotp_rc rc;

	memset(&tr, 0, sizeof(tr));
	if (token == NULL || *token == '\0' || strlen(token) >= PROV_TOKEN_MAX)
		return iotp_err_set(err, IOTP_ERR_TOKEN, "invalid certificate ownership token");
	if (!prov_template_name_ok(template_name))
		return iotp_err_set(err, IOTP_ERR_NOT_FOUND, "no such provisioning template");
	if (parameters != NULL && !json_is_object(parameters))
		return iotp_err_set(err, IOTP_ERR_INVALID, "parameters must be an object of strings");
	if ((rc = claimant_check(core, who, now, &cl, err)) != IOTP_OK)
		return rc;
	rc = prov_template_describe(core, template_name, &tpl, err);
	if (rc != IOTP_OK)
		goto out;
	if (strcmp(tpl.type, "FLEET_PROVISIONING") != 0) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID,
		                  "template %s is a %s template, not FLEET_PROVISIONING", tpl.name,
		                  tpl.type);
		goto out;
	}
	if (!tpl.enabled) {
		rc = iotp_err_set(err, IOTP_ERR_DENIED, "template %s is disabled", tpl.name);
		goto out;
	}
	if ((rc = token_hash(token, hash, err)) != IOTP_OK ||
	    (rc = token_check(core, hash, &cl, template_name, now, &tr, err)) != IOTP_OK)
		goto out;
	{
		struct iotp_err perr;

		if (template_parse(tpl.body, strlen(tpl.body), TEMPLATE_KIND_FLEET, &t, &perr) !=
		    IOTP_OK) {
			rc = iotp_err_set(err, IOTP_ERR_TEMPLATE, "template %s: %s", tpl.name, perr.msg);
			goto out;
		}
	}
	rc = registry_cert_describe(core, tr.cert_id, &cert, err);
	if (rc == IOTP_ERR_NOT_FOUND)
		rc = iotp_err_set(err, IOTP_ERR_TOKEN, "the certificate of this token no longer exists");
	if (rc != IOTP_OK || (rc = pki_cert_parse(cert.pem, strlen(cert.pem), &x, err)) != IOTP_OK)
		goto out;
	if (tpl.hook != NULL) {
		if ((rc = run_hook(core, &tpl, who, &cl, tr.cert_id, cert.pem, parameters, hook,
		                   &params, err)) != IOTP_OK)
			goto out;
	} else if (parameters != NULL) {
		params = json_incref((json_t *)parameters);
	}
	claimant_actor(&cl, actor, sizeof(actor));
	memset(&in, 0, sizeof(in));
	in.tmpl = t;
	in.template_name = tpl.name;
	in.parameters = params;
	in.cert.id = tr.cert_id;
	in.cert.x509 = x;
	if ((rc = prov_tx_begin(core, &depth0, err)) != IOTP_OK)
		goto out;
	{
		struct store_val p[] = {SV_TEXT(hash), SV_INT(now)};

		rc = store_exec_changes(core->store,
		                        "UPDATE prov_tokens SET used = 1 WHERE token_hash = ? AND "
		                        "used = 0 AND expires > ?",
		                        p, 2, &changes, err);
	}
	if (rc == IOTP_OK && changes != 1)
		rc = iotp_err_set(err, IOTP_ERR_TOKEN,
		                  "invalid certificate ownership token: already used");
	if (rc == IOTP_OK)
		rc = prov_apply(core, actor, &in, out, err);
	rc = prov_tx_end(core, depth0, rc, err);
out:
	json_decref(params);
	X509_free(x);
	template_free(t);
	registry_cert_cleanup(&cert);
	prov_template_cleanup(&tpl);
	OPENSSL_cleanse(hash, sizeof(hash));
	return rc;
}

/* ---- the sweep ---- */

static int id_row(void *ud, const struct store_row *row)
{
	struct registry_str_list *l = ud;
	char **grown;
	const char *s = prov_col_str(row, 0);

	if (s == NULL)
		return 0;
	grown = realloc(l->items, (l->count + 1) * sizeof(*grown));
	if (grown == NULL)
		return 1;
	l->items = grown;
	if ((l->items[l->count] = strdup(s)) == NULL)
		return 1;
	l->count++;
	return 0;
}

/* Deletes one batch of certificates (ids), each in a savepoint of one
 * transaction; claims are deactivated first (the registry refuses to
 * delete an ACTIVE certificate). A certificate the registry will not
 * delete (attached to a thing meanwhile) is left alone. */
static iotp_rc sweep_batch(struct iotp_core *core, const struct registry_str_list *ids,
                           int claims, int *deleted, struct iotp_err *err)
{
	int depth0, n = 0;
	iotp_rc rc;

	if ((rc = prov_tx_begin(core, &depth0, err)) != IOTP_OK)
		return rc;
	for (size_t i = 0; rc == IOTP_OK && i < ids->count; i++) {
		struct iotp_err lerr;
		int d1;
		iotp_rc r1;

		if ((rc = prov_tx_begin(core, &d1, err)) != IOTP_OK)
			break;
		r1 = claims ? registry_cert_update_status(core, "system", ids->items[i],
		                                          REGISTRY_CERT_INACTIVE, &lerr)
		            : IOTP_OK;
		if (r1 == IOTP_OK)
			r1 = registry_cert_delete(core, "system", ids->items[i], 1, &lerr);
		if (r1 == IOTP_OK) {
			struct store_val p[] = {SV_TEXT(ids->items[i])};

			r1 = store_exec(core->store, "DELETE FROM prov_tokens WHERE cert_id = ?", p, 1,
			                NULL, NULL, &lerr);
		}
		if (r1 == IOTP_OK)
			n++;
		else if (r1 == IOTP_ERR_DB || r1 == IOTP_ERR_BUSY || r1 == IOTP_ERR_NOMEM)
			rc = iotp_err_set(err, r1, "sweep: %s", lerr.msg);
		else
			LOG_INFO("provision: sweep: certificate %.16s... kept: %s", ids->items[i],
			         lerr.msg);
		(void)prov_tx_end(core, d1, r1, NULL);
	}
	rc = prov_tx_end(core, depth0, rc, err);
	if (rc == IOTP_OK)
		*deleted += n;
	return rc;
}

iotp_rc prov_sweep_expired(struct iotp_core *core, int64_t now, int *deleted,
                           struct iotp_err *err)
{
	int total = 0;
	iotp_rc rc = IOTP_OK;

	for (int pass = 0; pass < 2 && rc == IOTP_OK; pass++) {
		for (;;) {
			struct registry_str_list ids = {0};
			int before = total;

			{
				struct store_val p[] = {SV_INT(now), SV_INT(now), SV_INT(SWEEP_BATCH)};
				struct store_val pc[] = {SV_INT(now), SV_INT(SWEEP_BATCH)};

				if (pass == 0)
					rc = store_exec(core->store,
					                "SELECT DISTINCT t.cert_id FROM prov_tokens t "
					                "JOIN certificates c ON c.id = t.cert_id "
					                "WHERE t.used = 0 AND t.expires <= ? "
					                "AND c.status = 'PENDING_ACTIVATION' AND NOT EXISTS "
					                "(SELECT 1 FROM prov_tokens u WHERE u.cert_id = t.cert_id "
					                "AND (u.used = 1 OR u.expires > ?)) "
					                "ORDER BY t.cert_id LIMIT ?",
					                p, 3, id_row, &ids, err);
				else
					rc = store_exec(core->store,
					                "SELECT id FROM certificates WHERE purpose = 'CLAIM' "
					                "AND not_after < ? AND NOT EXISTS (SELECT 1 FROM "
					                "thing_principals tp WHERE tp.principal = 'cert/' || "
					                "certificates.id) ORDER BY id LIMIT ?",
					                pc, 2, id_row, &ids, err);
			}
			if (rc == IOTP_OK && ids.count > 0)
				rc = sweep_batch(core, &ids, pass == 1, &total, err);
			registry_str_list_cleanup(&ids);
			/* Stop on a short batch, or when a batch deleted nothing
			 * (what is left is kept on purpose). */
			if (rc != IOTP_OK || ids.count < SWEEP_BATCH || total == before)
				break;
		}
	}
	if (rc == IOTP_OK) {
		struct store_val p[] = {SV_INT(now)};

		rc = store_exec(core->store, "DELETE FROM prov_tokens WHERE expires <= ?", p, 1, NULL,
		                NULL, err);
	}
	if (rc == IOTP_OK) {
		if (total > 0)
			LOG_INFO("provision: sweep deleted %d expired certificate(s)", total);
		*deleted = total;
	}
	return rc;
}

/* ---- trusted-user claims ---- */

iotp_rc prov_claim_create(struct iotp_core *core, const char *actor, const char *template_name,
                          struct prov_claim *out, struct iotp_err *err)
{
	struct prov_template tpl = {0};
	struct prov_claim c;
	struct pki_issue_opts opts = {0};
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	char cn[64], id[PKI_CERT_ID_LEN + 1];
	int64_t nb = 0, na = 0;
	iotp_rc rc;

	memset(&c, 0, sizeof(c));
	if (!prov_template_name_ok(template_name))
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "templateName must be 1 to %d of 0-9 A-Z a-z _ -",
		                    PROV_TEMPLATE_NAME_MAX);
	if ((rc = prov_template_describe(core, template_name, &tpl, err)) != IOTP_OK)
		return rc;
	if (strcmp(tpl.type, "FLEET_PROVISIONING") != 0 || !tpl.enabled) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID,
		                  "provisioning template %s must be an enabled FLEET_PROVISIONING "
		                  "template to issue claims",
		                  template_name);
		goto out;
	}
	if ((rc = prov_issuer_ready(core, err)) != IOTP_OK)
		goto out;
	opts.validity_seconds = core->conf->prov_claim_ttl > 0 ? (int)core->conf->prov_claim_ttl
	                                                       : PROV_CLAIM_TTL_DEFAULT;
	opts.not_before_skew = PROV_ISSUE_SKEW;
	snprintf(cn, sizeof(cn), CLAIM_CN_PREFIX "%s", template_name);
	if ((rc = pki_key_generate(conf_key_type(core), &key, err)) != IOTP_OK ||
	    (rc = pki_cert_issue_for_key(&core->issuing, key, cn, &opts, &x, err)) != IOTP_OK ||
	    (rc = pki_cert_validity(x, &nb, &na, err)) != IOTP_OK ||
	    (rc = pki_cert_to_pem(x, &c.cert_pem, err)) != IOTP_OK ||
	    (rc = pki_key_to_pem(key, &c.private_key_pem, err)) != IOTP_OK ||
	    (rc = pki_pubkey_to_pem(key, &c.public_key_pem, err)) != IOTP_OK ||
	    (rc = prov_cert_store(core, actor, x, c.cert_pem, REGISTRY_CERT_ACTIVE, "CLAIM",
	                          template_name, id, err)) != IOTP_OK)
		goto out;
	memcpy(c.cert_id, id, sizeof(id));
	c.expiration = na;
	*out = c;
	memset(&c, 0, sizeof(c));
out:
	prov_claim_cleanup(&c);
	prov_template_cleanup(&tpl);
	EVP_PKEY_free(key);
	X509_free(x);
	return rc;
}

iotp_rc prov_claim_policy_document(const char *template_name, char **out, struct iotp_err *err)
{
	json_t *doc;
	char *text;
	char prov_topic[128], prov_filter[128];

	if (!prov_template_name_ok(template_name))
		return iotp_err_set(err, IOTP_ERR_INVALID, "bad template name");
	snprintf(prov_topic, sizeof(prov_topic),
	         "arn:aws:iot:*:*:topic/$aws/provisioning-templates/%s/provision/*", template_name);
	snprintf(prov_filter, sizeof(prov_filter),
	         "arn:aws:iot:*:*:topicfilter/$aws/provisioning-templates/%s/provision/*",
	         template_name);
	doc = json_pack(
		"{s:s, s:[{s:s, s:s, s:s}, {s:s, s:[s, s], s:[s, s, s]}, {s:s, s:s, s:[s, s, s]}]}",
		"Version", "2012-10-17", "Statement",
		"Effect", "Allow", "Action", "iot:Connect", "Resource", "arn:aws:iot:*:*:client/*",
		"Effect", "Allow", "Action", "iot:Publish", "iot:Receive", "Resource",
		"arn:aws:iot:*:*:topic/$aws/certificates/create/*",
		"arn:aws:iot:*:*:topic/$aws/certificates/create-from-csr/*", prov_topic,
		"Effect", "Allow", "Action", "iot:Subscribe", "Resource",
		"arn:aws:iot:*:*:topicfilter/$aws/certificates/create/*",
		"arn:aws:iot:*:*:topicfilter/$aws/certificates/create-from-csr/*", prov_filter);
	if (doc == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "claim policy: out of memory");
	text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(doc);
	if (text == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "claim policy: out of memory");
	*out = text;
	return IOTP_OK;
}

/* ---- JITP ---- */

/* The template a CA's registrationConfig names (parsed for JITP), and the
 * name to record (NULL for an inline body). */
static iotp_rc jitp_template(struct iotp_core *core, const struct registry_ca *ca,
                             struct template **out, char name[PROV_TEMPLATE_NAME_MAX + 1],
                             struct iotp_err *err)
{
	const char *tname = json_string_value(json_object_get(ca->registration_config,
	                                                      "templateName"));
	const char *body = json_string_value(json_object_get(ca->registration_config,
	                                                     "templateBody"));
	struct prov_template tpl = {0};
	iotp_rc rc;

	name[0] = '\0';
	if (tname != NULL) {
		if ((rc = prov_template_describe(core, tname, &tpl, err)) != IOTP_OK)
			return rc;
		if (strcmp(tpl.type, "JITP") != 0)
			rc = iotp_err_set(err, IOTP_ERR_INVALID,
			                  "CA %.16s...: template %s is of type %s, not JITP", ca->id, tname,
			                  tpl.type);
		else if (!tpl.enabled)
			rc = iotp_err_set(err, IOTP_ERR_DENIED, "CA %.16s...: template %s is disabled",
			                  ca->id, tname);
		else
			rc = template_parse(tpl.body, strlen(tpl.body), TEMPLATE_KIND_JITP, out, err);
		if (rc == IOTP_OK)
			util_strlcpy(name, tname, PROV_TEMPLATE_NAME_MAX + 1);
		prov_template_cleanup(&tpl);
		return rc;
	}
	if (body != NULL) {
		struct iotp_err perr;

		rc = template_parse(body, strlen(body), TEMPLATE_KIND_JITP, out, &perr);
		if (rc != IOTP_OK)
			rc = iotp_err_set(err, IOTP_ERR_TEMPLATE,
			                  "CA %.16s...: registrationConfig templateBody: %s", ca->id,
			                  perr.msg);
		return rc;
	}
	return iotp_err_set(err, IOTP_ERR_NOT_FOUND,
	                    "CA %.16s... has no template in its registrationConfig: JITP is not "
	                    "set up for it",
	                    ca->id);
}

iotp_rc prov_jitp(struct iotp_core *core, const char *actor, X509 *cert, const char *ca_id,
                  struct prov_result *out, struct iotp_err *err)
{
	struct registry_ca ca = {0};
	struct template *t = NULL;
	struct prov_apply_in in;
	X509 *cax = NULL;
	char *pem = NULL, id[PKI_CERT_ID_LEN + 1], tname[PROV_TEMPLATE_NAME_MAX + 1];
	int depth0, known = 0;
	iotp_rc rc;

	if (cert == NULL || ca_id == NULL)
		return iotp_err_set(err, IOTP_ERR_INVALID, "JITP needs a certificate and its CA");
	if ((rc = registry_ca_describe(core, ca_id, &ca, err)) != IOTP_OK)
		goto out;
	if (!ca.active || !ca.auto_registration) {
		rc = iotp_err_set(err, IOTP_ERR_DENIED,
		                  "CA %.16s... is %s: no just-in-time provisioning", ca.id,
		                  !ca.active ? "INACTIVE" : "not enabled for auto-registration");
		goto out;
	}
	if ((rc = jitp_template(core, &ca, &t, tname, err)) != IOTP_OK ||
	    (rc = ca_cache_get(ca.id, ca.pem, strlen(ca.pem), &cax, err)) != IOTP_OK ||
	    (rc = pki_cert_chains_to(cert, cax, err)) != IOTP_OK ||
	    (rc = pki_cert_id(cert, id, err)) != IOTP_OK)
		goto out;
	{
		struct store_val p[] = {SV_TEXT(id)};
		int64_t one = 0;

		rc = store_query_int(core->store, "SELECT 1 FROM certificates WHERE id = ?", p, 1, &one,
		                     err);
		if (rc == IOTP_OK)
			known = 1;
		else if (rc != IOTP_ERR_NOT_FOUND)
			goto out;
	}
	if ((rc = prov_tx_begin(core, &depth0, err)) != IOTP_OK)
		goto out;
	if (!known) {
		struct registry_cert_register reg = {0};
		struct registry_ref ref;

		memset(&ref, 0, sizeof(ref));
		reg.ca_pem = ca.pem;
		reg.status = "PENDING_ACTIVATION";
		/* cert is what pem encodes: no second parse. */
		if ((rc = pki_cert_to_pem(cert, &pem, err)) == IOTP_OK) {
			reg.cert_pem = pem;
			rc = registry_cert_register_x509(core, actor, &reg, cert, &ref, err);
		}
	}
	if (rc == IOTP_OK) {
		memset(&in, 0, sizeof(in));
		in.tmpl = t;
		in.template_name = tname[0] != '\0' ? tname : NULL;
		in.cert.id = id;
		in.cert.x509 = cert;
		rc = prov_apply(core, actor, &in, out, err);
	}
	rc = prov_tx_end(core, depth0, rc, err);
out:
	free(pem);
	X509_free(cax);
	template_free(t);
	registry_ca_cleanup(&ca);
	return rc;
}
