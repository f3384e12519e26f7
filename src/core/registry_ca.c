/*
 * CA certificates and the registration code (see registry.h). An external
 * CA is registered with proof that its owner holds the CA key (DEFAULT mode:
 * a verification certificate whose CN is this deployment's registration
 * code, signed by that key) or without (SNI_ONLY). Registered CAs anchor
 * RegisterCertificate and the JITP/JITR paths, which find them with
 * registry_ca_find_issuer().
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "common/buf.h"
#include "common/util.h"
#include "core/ca_cache.h"
#include "core/registry_internal.h"

#define CA_COLS \
	"id, status, auto_registration, mode, origin, not_before, not_after, customer_version, " \
	"generation, created, updated"
#define PEM_MAX 65536
#define TEMPLATE_BODY_MAX 10240
#define REGCODE_META "registration_code"

void registry_ca_cleanup(struct registry_ca *ca)
{
	if (ca == NULL)
		return;
	free(ca->pem);
	json_decref(ca->registration_config);
	memset(ca, 0, sizeof(*ca));
}

void registry_ca_list_cleanup(struct registry_ca_list *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->count; i++)
		registry_ca_cleanup(&l->items[i]);
	free(l->items);
	free(l->next_token);
	memset(l, 0, sizeof(*l));
}

struct ca_rows {
	struct iotp_core *core;
	struct registry_ca *items;
	size_t count;
	int full;      /* pem and registration_config follow CA_COLS */
	iotp_rc rc;
	struct iotp_err err;
};

static int ca_row(void *ud, const struct store_row *row)
{
	struct ca_rows *r = ud;
	struct registry_ca *ca;
	const char *s;
	char res[PKI_CERT_ID_LEN + 8];
	int failed = 0;

	if (reg_grow((void **)&r->items, &r->count, sizeof(*r->items)) != IOTP_OK) {
		r->rc = iotp_err_set(&r->err, IOTP_ERR_NOMEM, "CA certificates: out of memory");
		return 1;
	}
	ca = &r->items[r->count - 1];
	reg_col_copy(row, 0, ca->id, sizeof(ca->id));
	s = reg_col_str(row, 1);
	ca->active = s != NULL && strcmp(s, "ACTIVE") == 0;
	s = reg_col_str(row, 2);
	ca->auto_registration = s != NULL && strcmp(s, "ENABLE") == 0;
	reg_col_copy(row, 3, ca->mode, sizeof(ca->mode));
	reg_col_copy(row, 4, ca->origin, sizeof(ca->origin));
	ca->not_before = reg_col_int(row, 5);
	ca->not_after = reg_col_int(row, 6);
	ca->customer_version = reg_col_int(row, 7);
	ca->generation = reg_col_int(row, 8);
	ca->created = reg_col_int(row, 9);
	ca->updated = reg_col_int(row, 10);
	if (r->full) {
		if ((ca->pem = reg_col_dup(row, 11, &failed)) == NULL) {
			r->rc = iotp_err_set(&r->err, failed ? IOTP_ERR_NOMEM : IOTP_ERR_DB,
			                     "CA certificate %s: no PEM", ca->id);
			return 1;
		}
		if ((s = reg_col_str(row, 12)) != NULL &&
		    (r->rc = reg_json_parse(s, &ca->registration_config, &r->err)) != IOTP_OK)
			return 1;
	}
	snprintf(res, sizeof(res), "cacert/%s", ca->id);
	r->rc = core_arn(r->core, res, ca->arn, sizeof(ca->arn), &r->err);
	return r->rc != IOTP_OK;
}

static void ca_rows_free(struct ca_rows *r)
{
	for (size_t i = 0; i < r->count; i++)
		registry_ca_cleanup(&r->items[i]);
	free(r->items);
	r->items = NULL;
	r->count = 0;
}

static iotp_rc ca_load(struct iotp_core *core, const char *id, struct registry_ca *out,
                       struct iotp_err *err)
{
	struct ca_rows r = {.core = core, .full = 1};
	struct store_val p[] = {SV_TEXT(id)};
	iotp_rc rc;

	rc = store_exec(core->store,
	                "SELECT " CA_COLS ", pem, registration_config FROM cas WHERE id = ?", p, 1,
	                ca_row, &r, err);
	if (rc == IOTP_OK && r.rc != IOTP_OK)
		rc = iotp_err_set(err, r.rc, "%s", r.err.msg);
	if (rc == IOTP_OK && r.count == 0)
		rc = iotp_err_set(err, IOTP_ERR_NOT_FOUND, "CA certificate %s not found", id);
	if (rc == IOTP_OK) {
		*out = r.items[0];
		r.count = 0;
	}
	ca_rows_free(&r);
	return rc;
}

/* ---- registration code ---- */

iotp_rc registry_regcode_get(struct iotp_core *core, const char *actor, char out[65],
                             struct iotp_err *err)
{
	unsigned char raw[32];
	char code[65], *stored = NULL;
	int depth0;
	iotp_rc rc;

	if ((rc = reg_tx_begin(core, &depth0, err)) != IOTP_OK)
		return rc;
	rc = store_meta_get(core->store, REGCODE_META, &stored, err);
	if (rc == IOTP_OK) {
		if (stored == NULL || strlen(stored) != 64)
			rc = iotp_err_set(err, IOTP_ERR_DB, "stored registration code is malformed");
		else
			util_strlcpy(code, stored, sizeof(code));
		goto out;
	}
	if (rc != IOTP_ERR_NOT_FOUND)
		goto out;
	if ((rc = util_random(raw, sizeof(raw), err)) != IOTP_OK)
		goto out;
	util_hex(raw, sizeof(raw), code);
	OPENSSL_cleanse(raw, sizeof(raw));
	if ((rc = store_meta_set(core->store, REGCODE_META, code, err)) != IOTP_OK)
		goto out;
	rc = reg_event(core, actor, "regcode.create", "registrationcode", NULL, err);
out:
	free(stored);
	rc = reg_tx_end(core, depth0, rc, err);
	if (rc == IOTP_OK)
		memcpy(out, code, 65);
	return rc;
}

/* ---- registrationConfig ---- */

static int template_name_ok(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= 36 &&
	       strspn(s, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-") == n;
}

/* Validates a registrationConfig; *out receives its canonical text, NULL for
 * an empty object. */
static iotp_rc config_text(struct iotp_core *core, const json_t *cfg, char **out,
                           struct iotp_err *err)
{
	const char *k, *body, *name, *role;
	json_t *v;
	iotp_rc rc;

	if (!json_is_object(cfg))
		return iotp_err_set(err, IOTP_ERR_INVALID, "registrationConfig must be an object");
	json_object_foreach((json_t *)cfg, k, v) {
		if (strcmp(k, "templateBody") != 0 && strcmp(k, "templateName") != 0 &&
		    strcmp(k, "roleArn") != 0)
			return iotp_err_set(err, IOTP_ERR_INVALID,
			                    "registrationConfig: unknown member %.64s", k);
		if (!json_is_string(v))
			return iotp_err_set(err, IOTP_ERR_INVALID,
			                    "registrationConfig: %s must be a string", k);
	}
	body = json_string_value(json_object_get(cfg, "templateBody"));
	name = json_string_value(json_object_get(cfg, "templateName"));
	role = json_string_value(json_object_get(cfg, "roleArn"));
	if (body != NULL && name != NULL)
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "registrationConfig: give templateBody or templateName, not both");
	if (body != NULL && strlen(body) > TEMPLATE_BODY_MAX)
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "registrationConfig: templateBody over %d characters",
		                    TEMPLATE_BODY_MAX);
	if (role != NULL && (strlen(role) < 20 || strlen(role) > 2048))
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "registrationConfig: roleArn must be 20 to 2048 characters");
	if (name != NULL) {
		struct store_val p[] = {SV_TEXT(name)};
		int found = 0;

		if (!template_name_ok(name))
			return iotp_err_set(err, IOTP_ERR_INVALID,
			                    "registrationConfig: templateName must match "
			                    "[0-9A-Za-z_-]{1,36}");
		rc = reg_exists(core, "SELECT 1 FROM provisioning_templates WHERE name = ?", p, 1,
		                &found, err);
		if (rc != IOTP_OK)
			return rc;
		if (!found)
			return iotp_err_set(err, IOTP_ERR_NOT_FOUND, "provisioning template %s not found",
			                    name);
	}
	if (json_object_size(cfg) == 0) {
		*out = NULL;
		return IOTP_OK;
	}
	return reg_json_text(cfg, out, err);
}

/* ---- register ---- */

static iotp_rc ca_parse_checked(const char *pem, X509 **out, struct iotp_err *err)
{
	int64_t nb = 0, na = 0, now = util_now();
	X509 *x = NULL;
	iotp_rc rc;

	if (pem == NULL || *pem == '\0' || strlen(pem) > PEM_MAX)
		return iotp_err_set(err, IOTP_ERR_INVALID, "caCertificate must be 1 to %d bytes",
		                    PEM_MAX);
	if ((rc = pki_cert_parse(pem, strlen(pem), &x, err)) != IOTP_OK)
		return rc;
	if (!pki_cert_is_ca(x)) {
		rc = iotp_err_set(err, IOTP_ERR_CERT,
		                  "caCertificate is not a CA certificate (basicConstraints CA:TRUE)");
		goto fail;
	}
	if ((rc = pki_key_check(pki_cert_pubkey(x), err)) != IOTP_OK ||
	    (rc = pki_cert_validity(x, &nb, &na, err)) != IOTP_OK)
		goto fail;
	if (now < nb || now > na) {
		rc = iotp_err_set(err, IOTP_ERR_CERT, "the CA certificate is %s",
		                  now < nb ? "not valid yet" : "expired");
		goto fail;
	}
	*out = x;
	return IOTP_OK;
fail:
	X509_free(x);
	return rc;
}

/* DEFAULT mode's proof of possession. */
static iotp_rc verification_check(struct iotp_core *core, const char *pem, X509 *ca,
                                  struct iotp_err *err)
{
	char *code = NULL;
	X509 *verif = NULL;
	iotp_rc rc;

	if (pem == NULL || *pem == '\0')
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "verificationCertificate is required in DEFAULT mode");
	if (strlen(pem) > PEM_MAX)
		return iotp_err_set(err, IOTP_ERR_INVALID, "verificationCertificate over %d bytes",
		                    PEM_MAX);
	rc = store_meta_get(core->store, REGCODE_META, &code, err);
	if (rc == IOTP_ERR_NOT_FOUND)
		return iotp_err_set(err, IOTP_ERR_REGCODE,
		                    "no registration code exists yet: call GetRegistrationCode and "
		                    "put it in the verification certificate's CN");
	if (rc != IOTP_OK)
		return rc;
	if ((rc = pki_cert_parse(pem, strlen(pem), &verif, err)) == IOTP_OK)
		rc = pki_verification_cert_check(verif, ca, code != NULL ? code : "", err);
	X509_free(verif);
	free(code);
	return rc;
}

iotp_rc registry_ca_register(struct iotp_core *core, const char *actor,
                             const struct registry_ca_register *in, struct registry_ref *out,
                             struct iotp_err *err)
{
	const char *mode = in->mode != NULL ? in->mode : "DEFAULT";
	struct registry_ref ref = {0};
	char *cfg = NULL, *subject = NULL, res[PKI_CERT_ID_LEN + 8];
	int64_t nb = 0, na = 0, same = 0, now = util_now();
	X509 *x = NULL;
	int depth0 = 0, in_tx = 0;
	iotp_rc rc;

	if (strcmp(mode, "DEFAULT") != 0 && strcmp(mode, "SNI_ONLY") != 0)
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "certificateMode must be DEFAULT or SNI_ONLY");
	if (strcmp(mode, "SNI_ONLY") == 0 && in->verification_pem != NULL &&
	    *in->verification_pem != '\0')
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "a CA registered in SNI_ONLY mode takes no verificationCertificate");
	if ((rc = ca_parse_checked(in->ca_pem, &x, err)) != IOTP_OK)
		return rc;
	if (strcmp(mode, "DEFAULT") == 0 &&
	    (rc = verification_check(core, in->verification_pem, x, err)) != IOTP_OK)
		goto out;
	if ((rc = pki_cert_id(x, ref.id, err)) != IOTP_OK ||
	    (rc = pki_cert_validity(x, &nb, &na, err)) != IOTP_OK ||
	    (rc = pki_cert_subject_string(x, 0, &subject, err)) != IOTP_OK)
		goto out;
	snprintf(res, sizeof(res), "cacert/%s", ref.id);
	if ((rc = core_arn(core, res, ref.arn, sizeof(ref.arn), err)) != IOTP_OK)
		goto out;
	if ((rc = reg_tx_begin(core, &depth0, err)) != IOTP_OK)
		goto out;
	in_tx = 1;
	if (in->registration_config != NULL &&
	    (rc = config_text(core, in->registration_config, &cfg, err)) != IOTP_OK)
		goto out;
	{
		struct store_val p[] = {SV_TEXT(subject)};

		rc = store_query_int(core->store, "SELECT COUNT(*) FROM cas WHERE subject = ?", p, 1,
		                     &same, err);
		if (rc != IOTP_OK)
			goto out;
		if (same >= REGISTRY_CA_MAX_SAME_SUBJECT) {
			rc = iotp_err_set(err, IOTP_ERR_LIMIT,
			                  "%lld CA certificates with subject %s are registered already, "
			                  "the most allowed",
			                  (long long)same, subject);
			goto out;
		}
	}
	{
		struct store_val p[] = {
			SV_TEXT(ref.id), SV_TEXT(in->ca_pem), SV_TEXT(subject),
			SV_TEXT(in->set_active ? "ACTIVE" : "INACTIVE"),
			SV_TEXT(in->allow_auto_registration ? "ENABLE" : "DISABLE"), SV_TEXT(mode),
			SV_TEXT(cfg), SV_INT(nb), SV_INT(na), SV_INT(now), SV_INT(now)};

		rc = store_exec(core->store,
		                "INSERT INTO cas (id, pem, subject, status, auto_registration, mode, "
		                "origin, registration_config, not_before, not_after, created, updated) "
		                "VALUES (?, ?, ?, ?, ?, ?, 'EXTERNAL', ?, ?, ?, ?, ?)",
		                p, 11, NULL, NULL, err);
		if (rc == IOTP_ERR_EXISTS)
			rc = iotp_err_set(err, IOTP_ERR_EXISTS, "CA certificate %s is already registered",
			                  ref.id);
		if (rc != IOTP_OK)
			goto out;
	}
	rc = reg_event(core, actor, "cacert.register", res,
	               json_pack("{s:s, s:s, s:s, s:s, s:b}", "certificateId", ref.id, "status",
	                         in->set_active ? "ACTIVE" : "INACTIVE", "autoRegistrationStatus",
	                         in->allow_auto_registration ? "ENABLE" : "DISABLE",
	                         "certificateMode", mode, "registrationConfig", cfg != NULL),
	               err);
out:
	if (in_tx)
		rc = reg_tx_end(core, depth0, rc, err);
	if (rc == IOTP_OK)
		*out = ref;
	X509_free(x);
	free(cfg);
	free(subject);
	return rc;
}

/* ---- describe, list ---- */

iotp_rc registry_ca_describe(struct iotp_core *core, const char *id, struct registry_ca *out,
                             struct iotp_err *err)
{
	char nid[PKI_CERT_ID_LEN + 1];
	iotp_rc rc;

	if ((rc = reg_cert_id_norm(id, nid, "CA certificate", err)) != IOTP_OK)
		return rc;
	return ca_load(core, nid, out, err);
}

iotp_rc registry_ca_list(struct iotp_core *core, int ascending, const char *template_name,
                         const struct registry_page *page, struct registry_ca_list *out,
                         struct iotp_err *err)
{
	struct ca_rows r = {.core = core};
	char tag = ascending ? 'K' : 'L', sql[400], *key = NULL, *token = NULL, *like = NULL;
	struct store_val p[4];
	const char *kid = NULL;
	int64_t kts = 0;
	int np = 0, max;
	size_t n;
	iotp_rc rc;

	if (template_name != NULL && !template_name_ok(template_name))
		return iotp_err_set(err, IOTP_ERR_INVALID, "templateName must match [0-9A-Za-z_-]{1,36}");
	if ((rc = reg_page_open(page, tag, REGISTRY_MARKER_DEFAULT, &max, &key, err)) != IOTP_OK)
		return rc;
	if (key != NULL && (rc = reg_page_key_ts(key, &kts, &kid, err)) != IOTP_OK)
		goto out;
	n = (size_t)snprintf(sql, sizeof(sql), "SELECT " CA_COLS " FROM cas WHERE 1 = 1");
	if (template_name != NULL) {
		/* The stored config is canonical JSON (sorted, compact), so the
		 * member appears exactly like this; '_' is escaped for LIKE. */
		struct buf b;

		buf_init(&b, 0);
		rc = buf_puts(&b, "%\"templateName\":\"");
		for (const char *c = template_name; rc == IOTP_OK && *c != '\0'; c++)
			rc = *c == '_' ? buf_puts(&b, "\\_") : buf_append(&b, c, 1);
		if (rc == IOTP_OK)
			rc = buf_puts(&b, "\"%");
		like = buf_detach(&b, NULL);
		buf_cleanup(&b);
		if (rc != IOTP_OK || like == NULL) {
			rc = iotp_err_set(err, IOTP_ERR_NOMEM, "list CA certificates: out of memory");
			goto out;
		}
		n += (size_t)snprintf(sql + n, sizeof(sql) - n,
		                      " AND registration_config LIKE ? ESCAPE '\\'");
		p[np++] = SV_TEXT(like);
	}
	reg_page_sql_ts(sql, sizeof(sql), n, ascending, kts, kid, max, p, &np);
	rc = store_exec(core->store, sql, p, np, ca_row, &r, err);
	if (rc == IOTP_OK && r.rc != IOTP_OK)
		rc = iotp_err_set(err, r.rc, "%s", r.err.msg);
	if (rc != IOTP_OK)
		goto out;
	if (r.count > (size_t)max) {
		const struct registry_ca *last = &r.items[max - 1];

		if ((rc = reg_page_token_ts(tag, last->created, last->id, &token, err)) != IOTP_OK)
			goto out;
		while (r.count > (size_t)max)
			registry_ca_cleanup(&r.items[--r.count]);
	}
	out->items = r.items;
	out->count = r.count;
	out->next_token = token;
	r.items = NULL;
	r.count = 0;
out:
	ca_rows_free(&r);
	free(key);
	free(like);
	return rc;
}

/* ---- update, delete ---- */

static iotp_rc external_only(const struct registry_ca *ca, struct iotp_err *err)
{
	if (strcmp(ca->origin, "EXTERNAL") != 0)
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "CA certificate %s is iotprov's own %s CA and cannot be changed "
		                    "through the API",
		                    ca->id, ca->origin);
	return IOTP_OK;
}

iotp_rc registry_ca_update(struct iotp_core *core, const char *actor,
                           const struct registry_ca_update *in, struct iotp_err *err)
{
	struct registry_ca ca = {0};
	char nid[PKI_CERT_ID_LEN + 1], res[PKI_CERT_ID_LEN + 8], *cfg = NULL, *oldcfg = NULL;
	int active, autoreg, cfg_change = 0, depth0;
	iotp_rc rc;

	if ((rc = reg_cert_id_norm(in->id, nid, "CA certificate", err)) != IOTP_OK)
		return rc;
	if (in->new_status != NULL && strcmp(in->new_status, "ACTIVE") != 0 &&
	    strcmp(in->new_status, "INACTIVE") != 0)
		return iotp_err_set(err, IOTP_ERR_INVALID, "newStatus must be ACTIVE or INACTIVE");
	if (in->new_auto_registration != NULL &&
	    strcmp(in->new_auto_registration, "ENABLE") != 0 &&
	    strcmp(in->new_auto_registration, "DISABLE") != 0)
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "newAutoRegistrationStatus must be ENABLE or DISABLE");
	if (in->remove_auto_registration &&
	    (in->registration_config != NULL ||
	     (in->new_auto_registration != NULL &&
	      strcmp(in->new_auto_registration, "ENABLE") == 0)))
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "removeAutoRegistration cannot be combined with a registrationConfig "
		                    "or newAutoRegistrationStatus ENABLE");
	if ((rc = reg_tx_begin(core, &depth0, err)) != IOTP_OK)
		return rc;
	if ((rc = ca_load(core, nid, &ca, err)) != IOTP_OK || (rc = external_only(&ca, err)) != IOTP_OK)
		goto out;
	active = in->new_status != NULL ? strcmp(in->new_status, "ACTIVE") == 0 : ca.active;
	autoreg = in->new_auto_registration != NULL
	              ? strcmp(in->new_auto_registration, "ENABLE") == 0
	              : ca.auto_registration;
	if (ca.registration_config != NULL &&
	    (rc = reg_json_text(ca.registration_config, &oldcfg, err)) != IOTP_OK)
		goto out;
	if (in->remove_auto_registration) {
		autoreg = 0;
		cfg_change = oldcfg != NULL;
	} else if (in->registration_config != NULL) {
		if ((rc = config_text(core, in->registration_config, &cfg, err)) != IOTP_OK)
			goto out;
		cfg_change = (cfg == NULL) != (oldcfg == NULL) ||
		             (cfg != NULL && strcmp(cfg, oldcfg) != 0);
	} else if (oldcfg != NULL) {
		cfg = oldcfg;
		oldcfg = NULL;
	}
	if (active == ca.active && autoreg == ca.auto_registration && !cfg_change)
		goto out; /* nothing changes */
	{
		struct store_val p[] = {SV_TEXT(active ? "ACTIVE" : "INACTIVE"),
		                        SV_TEXT(autoreg ? "ENABLE" : "DISABLE"), SV_TEXT(cfg),
		                        SV_INT(util_now()), SV_TEXT(nid)};

		rc = store_exec(core->store,
		                "UPDATE cas SET status = ?, auto_registration = ?, "
		                "registration_config = ?, updated = ?, "
		                "customer_version = customer_version + 1, generation = generation + 1 "
		                "WHERE id = ?",
		                p, 5, NULL, NULL, err);
		if (rc != IOTP_OK)
			goto out;
	}
	snprintf(res, sizeof(res), "cacert/%s", nid);
	rc = reg_event(core, actor, "cacert.update", res,
	               json_pack("{s:s, s:s, s:s, s:b}", "certificateId", nid, "status",
	                         active ? "ACTIVE" : "INACTIVE", "autoRegistrationStatus",
	                         autoreg ? "ENABLE" : "DISABLE", "registrationConfigChanged",
	                         cfg_change),
	               err);
out:
	rc = reg_tx_end(core, depth0, rc, err);
	registry_ca_cleanup(&ca);
	free(cfg);
	free(oldcfg);
	return rc;
}

iotp_rc registry_ca_delete(struct iotp_core *core, const char *actor, const char *id,
                           struct iotp_err *err)
{
	struct registry_ca ca = {0};
	char nid[PKI_CERT_ID_LEN + 1], res[PKI_CERT_ID_LEN + 8];
	int64_t certs = 0;
	int depth0;
	iotp_rc rc;

	if ((rc = reg_cert_id_norm(id, nid, "CA certificate", err)) != IOTP_OK)
		return rc;
	if ((rc = reg_tx_begin(core, &depth0, err)) != IOTP_OK)
		return rc;
	if ((rc = ca_load(core, nid, &ca, err)) != IOTP_OK || (rc = external_only(&ca, err)) != IOTP_OK)
		goto out;
	if (ca.active) {
		rc = iotp_err_set(err, IOTP_ERR_STATE,
		                  "CA certificate %s is ACTIVE: deactivate it (UpdateCACertificate "
		                  "INACTIVE) before deleting it",
		                  nid);
		goto out;
	}
	{
		struct store_val p[] = {SV_TEXT(nid)};

		rc = store_query_int(core->store, "SELECT COUNT(*) FROM certificates WHERE ca_id = ?",
		                     p, 1, &certs, err);
		if (rc != IOTP_OK)
			goto out;
		if (certs > 0) {
			rc = iotp_err_set(err, IOTP_ERR_CONFLICT,
			                  "CA certificate %s still has %lld device certificates "
			                  "registered under it: delete them first",
			                  nid, (long long)certs);
			goto out;
		}
		if ((rc = store_exec(core->store, "DELETE FROM cas WHERE id = ?", p, 1, NULL, NULL,
		                     err)) != IOTP_OK)
			goto out;
	}
	snprintf(res, sizeof(res), "cacert/%s", nid);
	rc = reg_event(core, actor, "cacert.delete", res,
	               json_pack("{s:s}", "certificateId", nid), err);
out:
	rc = reg_tx_end(core, depth0, rc, err);
	registry_ca_cleanup(&ca);
	return rc;
}

/* ---- issuer lookup ---- */

/* Does the CA certificate ca (of id ca_id) sign the certificate being
 * looked up? */
typedef int (*issuer_match_fn)(const void *cert, const char *ca_id, X509 *ca);

static int match_x509(const void *cert, const char *ca_id, X509 *ca)
{
	(void)ca_id;
	return X509_verify((X509 *)cert, X509_get0_pubkey(ca)) == 1;
}

static int match_lite(const void *cert, const char *ca_id, X509 *ca)
{
	return pki_lite_signed_by_id(cert, ca_id, ca);
}

/* The first registered CA (oldest first) whose subject is issuer and whose
 * key match says signed cert. */
static iotp_rc find_issuer(struct iotp_core *core, const char *issuer, issuer_match_fn match,
                           const void *cert, struct registry_ca *out, struct iotp_err *err)
{
	struct ca_rows r = {.core = core, .full = 1};
	size_t found = SIZE_MAX;
	iotp_rc rc;

	{
		struct store_val p[] = {SV_TEXT(issuer)};

		rc = store_exec(core->store,
		                "SELECT " CA_COLS ", pem, registration_config FROM cas "
		                "WHERE subject = ? ORDER BY created, id",
		                p, 1, ca_row, &r, err);
	}
	if (rc == IOTP_OK && r.rc != IOTP_OK)
		rc = iotp_err_set(err, r.rc, "%s", r.err.msg);
	for (size_t i = 0; rc == IOTP_OK && i < r.count && found == SIZE_MAX; i++) {
		X509 *ca = NULL;

		/* The row was just read, so status and generation are current;
		 * only the parse of its (immutable) PEM comes from the cache. */
		if (ca_cache_get(r.items[i].id, r.items[i].pem, strlen(r.items[i].pem), &ca, NULL) !=
		    IOTP_OK)
			continue;
		if (match(cert, r.items[i].id, ca))
			found = i;
		X509_free(ca);
	}
	ERR_clear_error();
	if (rc == IOTP_OK && found == SIZE_MAX)
		rc = iotp_err_set(err, IOTP_ERR_NOT_FOUND,
		                  "no registered CA certificate issued this certificate (issuer %s)",
		                  issuer);
	if (rc == IOTP_OK) {
		*out = r.items[found];
		memset(&r.items[found], 0, sizeof(r.items[found]));
	}
	ca_rows_free(&r);
	return rc;
}

iotp_rc registry_ca_find_issuer(struct iotp_core *core, X509 *cert, struct registry_ca *out,
                                struct iotp_err *err)
{
	char *issuer = NULL;
	iotp_rc rc;

	if ((rc = pki_cert_subject_string(cert, 1, &issuer, err)) != IOTP_OK)
		return rc;
	rc = find_issuer(core, issuer, match_x509, cert, out, err);
	free(issuer);
	return rc;
}

iotp_rc registry_ca_find_issuer_lite(struct iotp_core *core, const struct pki_cert_lite *cert,
                                     struct registry_ca *out, struct iotp_err *err)
{
	char *issuer = NULL;
	iotp_rc rc;

	if ((rc = pki_lite_name_string(cert, 1, &issuer, err)) != IOTP_OK)
		return rc;
	rc = find_issuer(core, issuer, match_lite, cert, out, err);
	free(issuer);
	return rc;
}
