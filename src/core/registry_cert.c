/*
 * Device certificates (see registry.h): issuance by iotprov's issuing CA
 * (from a CSR or with a fresh key), registration of certificates issued
 * elsewhere (under a registered CA or without one), status changes and
 * deletion. X.509 work is pki.h's; this file holds the rules: which status
 * may follow which, when a certificate may go, and what chains to what.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/util.h"
#include "core/ca_cache.h"
#include "core/registry_internal.h"

#define CERT_COLS \
	"id, ca_id, status, mode, not_before, not_after, customer_version, generation, created, " \
	"updated"
#define CSR_MAX 4096
#define PEM_MAX 65536
#define ISSUE_SKEW 300 /* notBefore backdated for device clocks a little behind */

static const char *const status_names[] = {
	[REGISTRY_CERT_ACTIVE] = "ACTIVE",
	[REGISTRY_CERT_INACTIVE] = "INACTIVE",
	[REGISTRY_CERT_REVOKED] = "REVOKED",
	[REGISTRY_CERT_PENDING_TRANSFER] = "PENDING_TRANSFER",
	[REGISTRY_CERT_REGISTER_INACTIVE] = "REGISTER_INACTIVE",
	[REGISTRY_CERT_PENDING_ACTIVATION] = "PENDING_ACTIVATION",
};

const char *registry_cert_status_name(enum registry_cert_status s)
{
	if ((size_t)s >= IOTP_ARRAY_LEN(status_names))
		return "UNKNOWN";
	return status_names[s];
}

iotp_rc registry_cert_status_parse(const char *s, enum registry_cert_status *out,
                                   struct iotp_err *err)
{
	for (size_t i = 0; s != NULL && i < IOTP_ARRAY_LEN(status_names); i++) {
		if (strcmp(s, status_names[i]) == 0) {
			*out = (enum registry_cert_status)i;
			return IOTP_OK;
		}
	}
	return iotp_err_set(err, IOTP_ERR_INVALID,
	                    "certificate status must be one of ACTIVE, INACTIVE, REVOKED, "
	                    "PENDING_TRANSFER, REGISTER_INACTIVE, PENDING_ACTIVATION");
}

void registry_cert_cleanup(struct registry_cert *c)
{
	if (c == NULL)
		return;
	free(c->pem);
	memset(c, 0, sizeof(*c));
}

void registry_cert_created_cleanup(struct registry_cert_created *c)
{
	if (c == NULL)
		return;
	if (c->private_key_pem != NULL) {
		OPENSSL_cleanse(c->private_key_pem, strlen(c->private_key_pem));
		free(c->private_key_pem);
	}
	free(c->pem);
	free(c->public_key_pem);
	memset(c, 0, sizeof(*c));
}

void registry_cert_list_cleanup(struct registry_cert_list *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->count; i++)
		registry_cert_cleanup(&l->items[i]);
	free(l->items);
	free(l->next_token);
	memset(l, 0, sizeof(*l));
}

/* ---- rows ---- */

struct cert_rows {
	struct iotp_core *core;
	struct registry_cert *items;
	size_t count;
	int with_pem;  /* the query has pem as an 11th column */
	iotp_rc rc;
	struct iotp_err err;
};

static int cert_row(void *ud, const struct store_row *row)
{
	struct cert_rows *r = ud;
	struct registry_cert *c;
	int failed = 0;
	char res[PKI_CERT_ID_LEN + 6];

	if (reg_grow((void **)&r->items, &r->count, sizeof(*r->items)) != IOTP_OK) {
		r->rc = iotp_err_set(&r->err, IOTP_ERR_NOMEM, "certificates: out of memory");
		return 1;
	}
	c = &r->items[r->count - 1];
	reg_col_copy(row, 0, c->id, sizeof(c->id));
	reg_col_copy(row, 1, c->ca_id, sizeof(c->ca_id));
	if (registry_cert_status_parse(reg_col_str(row, 2), &c->status, NULL) != IOTP_OK) {
		r->rc = iotp_err_set(&r->err, IOTP_ERR_DB, "certificate %s: unknown stored status",
		                     c->id);
		return 1;
	}
	reg_col_copy(row, 3, c->mode, sizeof(c->mode));
	c->not_before = reg_col_int(row, 4);
	c->not_after = reg_col_int(row, 5);
	c->customer_version = reg_col_int(row, 6);
	c->generation = reg_col_int(row, 7);
	c->created = reg_col_int(row, 8);
	c->updated = reg_col_int(row, 9);
	if (r->with_pem && (c->pem = reg_col_dup(row, 10, &failed)) == NULL) {
		r->rc = iotp_err_set(&r->err, failed ? IOTP_ERR_NOMEM : IOTP_ERR_DB,
		                     "certificate %s: no PEM", c->id);
		return 1;
	}
	snprintf(res, sizeof(res), "cert/%s", c->id);
	r->rc = core_arn(r->core, res, c->arn, sizeof(c->arn), &r->err);
	return r->rc != IOTP_OK;
}

static void cert_rows_free(struct cert_rows *r)
{
	for (size_t i = 0; i < r->count; i++)
		registry_cert_cleanup(&r->items[i]);
	free(r->items);
	r->items = NULL;
	r->count = 0;
}

static iotp_rc cert_load(struct iotp_core *core, const char *id, struct registry_cert *out,
                         struct iotp_err *err)
{
	struct cert_rows r = {.core = core, .with_pem = 1};
	struct store_val p[] = {SV_TEXT(id)};
	iotp_rc rc;

	rc = store_exec(core->store, "SELECT " CERT_COLS ", pem FROM certificates WHERE id = ?", p,
	                1, cert_row, &r, err);
	if (rc == IOTP_OK && r.rc != IOTP_OK)
		rc = iotp_err_set(err, r.rc, "%s", r.err.msg);
	if (rc == IOTP_OK && r.count == 0)
		rc = iotp_err_set(err, IOTP_ERR_NOT_FOUND, "certificate %s not found", id);
	if (rc == IOTP_OK) {
		*out = r.items[0];
		r.count = 0;
	}
	cert_rows_free(&r);
	return rc;
}

/* ---- insertion (issued and registered alike) ---- */

struct cert_new {
	X509 *x509;
	const struct pki_cert_lite *lite; /* instead of x509 */
	const char *pem;
	const char *ca_id;   /* NULL: none */
	const char *mode;
	enum registry_cert_status status;
	const char *action;  /* "cert.create" or "cert.register" */
};

static iotp_rc cert_insert(struct iotp_core *core, const char *actor, const struct cert_new *n,
                           char id[PKI_CERT_ID_LEN + 1], struct iotp_err *err)
{
	char *serial = NULL, *subject = NULL, res[PKI_CERT_ID_LEN + 6];
	int64_t nb = 0, na = 0, now = util_now();
	int depth0;
	iotp_rc rc;

	if (n->lite != NULL) {
		util_strlcpy(id, pki_lite_id(n->lite), PKI_CERT_ID_LEN + 1);
		pki_lite_validity(n->lite, &nb, &na);
		if ((rc = pki_lite_serial_hex(n->lite, &serial, err)) != IOTP_OK ||
		    (rc = pki_lite_name_string(n->lite, 0, &subject, err)) != IOTP_OK)
			goto done;
	} else if ((rc = pki_cert_id(n->x509, id, err)) != IOTP_OK ||
	           (rc = pki_cert_validity(n->x509, &nb, &na, err)) != IOTP_OK ||
	           (rc = pki_cert_serial_hex(n->x509, &serial, err)) != IOTP_OK ||
	           (rc = pki_cert_subject_string(n->x509, 0, &subject, err)) != IOTP_OK)
		goto done;
	snprintf(res, sizeof(res), "cert/%s", id);
	if ((rc = reg_tx_begin(core, &depth0, err)) != IOTP_OK)
		goto done;
	{
		struct store_val p[] = {SV_TEXT(id), SV_TEXT(n->pem), SV_TEXT(n->ca_id),
		                        SV_TEXT(registry_cert_status_name(n->status)),
		                        SV_TEXT(n->mode), SV_TEXT(subject), SV_TEXT(serial),
		                        SV_INT(nb), SV_INT(na), SV_INT(now), SV_INT(now)};

		rc = store_exec(core->store,
		                "INSERT INTO certificates (id, pem, ca_id, status, mode, subject, serial, "
		                "not_before, not_after, created, updated) "
		                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		                p, 11, NULL, NULL, err);
		if (rc == IOTP_ERR_EXISTS)
			rc = iotp_err_set(err, IOTP_ERR_EXISTS, "certificate %s already exists", id);
		if (rc != IOTP_OK)
			goto out;
	}
	rc = reg_event(core, actor, n->action, res,
	               json_pack("{s:s, s:s, s:s, s:s?}", "certificateId", id, "status",
	                         registry_cert_status_name(n->status), "certificateMode", n->mode,
	                         "caCertificateId", n->ca_id),
	               err);
out:
	rc = reg_tx_end(core, depth0, rc, err);
done:
	free(serial);
	free(subject);
	return rc;
}

static iotp_rc new_status_ok(enum registry_cert_status s, struct iotp_err *err)
{
	if (s == REGISTRY_CERT_ACTIVE || s == REGISTRY_CERT_INACTIVE ||
	    s == REGISTRY_CERT_PENDING_ACTIVATION)
		return IOTP_OK;
	return iotp_err_set(err, IOTP_ERR_INVALID,
	                    "a new certificate starts ACTIVE, INACTIVE or PENDING_ACTIVATION, not %s",
	                    registry_cert_status_name(s));
}

static iotp_rc issuer_ready(struct iotp_core *core, struct iotp_err *err)
{
	if (core->issuing.cert == NULL || core->issuing.key == NULL)
		return iotp_err_set(err, IOTP_ERR_CONFIG,
		                    "no issuing CA loaded: certificates cannot be issued");
	if (core->conf == NULL || core->conf->pki_device_cert_days <= 0 ||
	    core->conf->pki_device_cert_days > INT32_MAX)
		return iotp_err_set(err, IOTP_ERR_CONFIG, "pki device_cert_days is not set");
	return IOTP_OK;
}

/* Stores an issued certificate and fills the common part of out. */
static iotp_rc issued_store(struct iotp_core *core, const char *actor, X509 *x,
                            enum registry_cert_status status, struct registry_cert_created *c,
                            struct iotp_err *err)
{
	struct cert_new n = {.x509 = x, .mode = "DEFAULT", .status = status,
	                     .action = "cert.create"};
	char res[PKI_CERT_ID_LEN + 6];
	iotp_rc rc;

	if ((rc = pki_cert_to_pem(x, &c->pem, err)) != IOTP_OK)
		return rc;
	n.pem = c->pem;
	if ((rc = cert_insert(core, actor, &n, c->id, err)) != IOTP_OK)
		return rc;
	snprintf(res, sizeof(res), "cert/%s", c->id);
	return core_arn(core, res, c->arn, sizeof(c->arn), err);
}

iotp_rc registry_cert_create_from_csr(struct iotp_core *core, const char *actor,
                                      const char *csr, size_t csr_len,
                                      enum registry_cert_status status,
                                      struct registry_cert_created *out,
                                      struct iotp_err *err)
{
	struct registry_cert_created c = {0};
	struct pki_issue_opts opts = {0};
	X509_REQ *req = NULL;
	X509 *x = NULL;
	iotp_rc rc;

	if ((rc = new_status_ok(status, err)) != IOTP_OK || (rc = issuer_ready(core, err)) != IOTP_OK)
		return rc;
	if (csr == NULL || csr_len == 0 || csr_len > CSR_MAX)
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "certificateSigningRequest must be 1 to %d bytes", CSR_MAX);
	if ((rc = pki_csr_parse(csr, csr_len, &req, err)) != IOTP_OK)
		goto out;
	opts.days = (int)core->conf->pki_device_cert_days;
	opts.not_before_skew = ISSUE_SKEW;
	if ((rc = pki_cert_issue(&core->issuing, req, &opts, &x, err)) != IOTP_OK ||
	    (rc = issued_store(core, actor, x, status, &c, err)) != IOTP_OK)
		goto out;
	*out = c;
	memset(&c, 0, sizeof(c));
out:
	registry_cert_created_cleanup(&c);
	X509_REQ_free(req);
	X509_free(x);
	return rc;
}

iotp_rc registry_cert_create_with_keys(struct iotp_core *core, const char *actor,
                                       enum registry_cert_status status,
                                       struct registry_cert_created *out,
                                       struct iotp_err *err)
{
	struct registry_cert_created c = {0};
	struct pki_issue_opts opts = {0};
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	iotp_rc rc;

	if ((rc = new_status_ok(status, err)) != IOTP_OK || (rc = issuer_ready(core, err)) != IOTP_OK)
		return rc;
	opts.days = (int)core->conf->pki_device_cert_days;
	opts.not_before_skew = ISSUE_SKEW;
	if ((rc = pki_key_generate(PKI_KEY_EC_P256, &key, err)) != IOTP_OK ||
	    (rc = pki_cert_issue_for_key(&core->issuing, key, "AWS IoT Certificate", &opts, &x,
	                                 err)) != IOTP_OK ||
	    (rc = pki_key_to_pem(key, &c.private_key_pem, err)) != IOTP_OK ||
	    (rc = pki_pubkey_to_pem(key, &c.public_key_pem, err)) != IOTP_OK ||
	    (rc = issued_store(core, actor, x, status, &c, err)) != IOTP_OK)
		goto out;
	*out = c;
	memset(&c, 0, sizeof(c));
out:
	registry_cert_created_cleanup(&c);
	EVP_PKEY_free(key);
	X509_free(x);
	return rc;
}

/* ---- registration ---- */

static iotp_rc register_status(const struct registry_cert_register *in,
                               enum registry_cert_status *out, struct iotp_err *err)
{
	enum registry_cert_status s;

	if (in->status == NULL) {
		*out = in->set_active ? REGISTRY_CERT_ACTIVE : REGISTRY_CERT_INACTIVE;
		return IOTP_OK;
	}
	if (registry_cert_status_parse(in->status, &s, err) != IOTP_OK)
		return IOTP_ERR_INVALID;
	if (s == REGISTRY_CERT_PENDING_TRANSFER || s == REGISTRY_CERT_REGISTER_INACTIVE)
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "a certificate cannot be registered as %s: use ACTIVE, INACTIVE "
		                    "or REVOKED",
		                    in->status);
	*out = s;
	return IOTP_OK;
}

static iotp_rc register_pem_size(const struct registry_cert_register *in,
                                 struct iotp_err *err)
{
	if (in->cert_pem == NULL || *in->cert_pem == '\0' || strlen(in->cert_pem) > PEM_MAX)
		return iotp_err_set(err, IOTP_ERR_INVALID, "certificatePem must be 1 to %d bytes",
		                    PEM_MAX);
	return IOTP_OK;
}

static iotp_rc validity_check(int64_t nb, int64_t na, struct iotp_err *err)
{
	int64_t now = util_now();

	if (now < nb || now > na)
		return iotp_err_set(err, IOTP_ERR_CERT, "the certificate is %s",
		                    now < nb ? "not valid yet" : "expired");
	return IOTP_OK;
}

/* The key and validity rules of a certificate to register. */
static iotp_rc register_check(X509 *x, struct iotp_err *err)
{
	int64_t nb = 0, na = 0;
	iotp_rc rc;

	if ((rc = pki_key_check(pki_cert_pubkey(x), err)) != IOTP_OK ||
	    (rc = pki_cert_validity(x, &nb, &na, err)) != IOTP_OK)
		return rc;
	return validity_check(nb, na, err);
}

/* Parses the certificate to register and checks its key and validity. */
static iotp_rc register_parse(const struct registry_cert_register *in, X509 **out,
                              struct iotp_err *err)
{
	X509 *x = NULL;
	iotp_rc rc;

	if ((rc = register_pem_size(in, err)) != IOTP_OK)
		return rc;
	if ((rc = pki_cert_parse(in->cert_pem, strlen(in->cert_pem), &x, err)) != IOTP_OK)
		return rc;
	if ((rc = register_check(x, err)) != IOTP_OK) {
		X509_free(x);
		return rc;
	}
	*out = x;
	return IOTP_OK;
}

/* The end of a registration under ca (n->status set, n->x509 or n->lite
 * the certificate): the status rule and the insertion. */
static iotp_rc insert_under(struct iotp_core *core, const char *actor,
                            const struct registry_cert_register *in,
                            const struct registry_ca *ca, struct cert_new *n,
                            struct registry_ref *out, struct iotp_err *err)
{
	struct registry_ref ref = {0};
	char res[PKI_CERT_ID_LEN + 6];
	iotp_rc rc;

	if (n->status == REGISTRY_CERT_ACTIVE && !ca->active)
		return iotp_err_set(err, IOTP_ERR_STATE,
		                    "CA certificate %s is INACTIVE: a certificate under it cannot be "
		                    "ACTIVE",
		                    ca->id);
	n->pem = in->cert_pem;
	n->ca_id = ca->id;
	n->mode = ca->mode;
	if ((rc = cert_insert(core, actor, n, ref.id, err)) != IOTP_OK)
		return rc;
	snprintf(res, sizeof(res), "cert/%s", ref.id);
	if ((rc = core_arn(core, res, ref.arn, sizeof(ref.arn), err)) != IOTP_OK)
		return rc;
	*out = ref;
	return IOTP_OK;
}

/* RegisterCertificate once x (the parse of in->cert_pem) has passed
 * register_check: the CA, the status rule and the insertion. */
static iotp_rc register_under_ca(struct iotp_core *core, const char *actor,
                                 const struct registry_cert_register *in, X509 *x,
                                 enum registry_cert_status status, struct registry_ref *out,
                                 struct iotp_err *err)
{
	struct registry_ca ca = {0};
	struct cert_new n = {.action = "cert.register", .status = status};
	X509 *cax = NULL;
	iotp_rc rc;

	if (in->ca_pem != NULL) {
		char caid[PKI_CERT_ID_LEN + 1];

		if (strlen(in->ca_pem) > PEM_MAX) {
			rc = iotp_err_set(err, IOTP_ERR_INVALID, "caCertificatePem over %d bytes", PEM_MAX);
			goto out;
		}
		/* JITP passes the registered CA's own PEM: usually a cache hit. */
		if ((rc = ca_cache_get(NULL, in->ca_pem, strlen(in->ca_pem), &cax, err)) != IOTP_OK ||
		    (rc = pki_cert_id(cax, caid, err)) != IOTP_OK)
			goto out;
		rc = registry_ca_describe(core, caid, &ca, err);
		if (rc == IOTP_ERR_NOT_FOUND)
			rc = iotp_err_set(err, IOTP_ERR_CERT, "CA certificate %s is not registered", caid);
		if (rc != IOTP_OK || (rc = pki_cert_chains_to(x, cax, err)) != IOTP_OK)
			goto out;
	} else {
		rc = registry_ca_find_issuer(core, x, &ca, err);
		if (rc == IOTP_ERR_NOT_FOUND)
			rc = iotp_err_set(err, IOTP_ERR_CERT,
			                  "no registered CA certificate issued this certificate: register "
			                  "its CA first or pass caCertificatePem");
		if (rc != IOTP_OK)
			goto out;
	}
	n.x509 = x;
	rc = insert_under(core, actor, in, &ca, &n, out, err);
out:
	registry_ca_cleanup(&ca);
	X509_free(cax);
	return rc;
}

iotp_rc registry_cert_register(struct iotp_core *core, const char *actor,
                               const struct registry_cert_register *in,
                               struct registry_ref *out, struct iotp_err *err)
{
	enum registry_cert_status status = REGISTRY_CERT_INACTIVE;
	X509 *x = NULL;
	iotp_rc rc;

	if ((rc = register_status(in, &status, err)) != IOTP_OK ||
	    (rc = register_parse(in, &x, err)) != IOTP_OK)
		return rc;
	rc = register_under_ca(core, actor, in, x, status, out, err);
	X509_free(x);
	return rc;
}

iotp_rc registry_cert_register_x509(struct iotp_core *core, const char *actor,
                                    const struct registry_cert_register *in, X509 *cert,
                                    struct registry_ref *out, struct iotp_err *err)
{
	enum registry_cert_status status = REGISTRY_CERT_INACTIVE;
	iotp_rc rc;

	if (cert == NULL)
		return iotp_err_set(err, IOTP_ERR_INVALID, "no certificate");
	/* pki_cert_check_decoded: what pki_cert_parse checks after decoding,
	 * for a cert decoded elsewhere (the broker's TLS handshake). */
	if ((rc = register_status(in, &status, err)) != IOTP_OK ||
	    (rc = register_pem_size(in, err)) != IOTP_OK ||
	    (rc = pki_cert_check_decoded(cert, err)) != IOTP_OK ||
	    (rc = register_check(cert, err)) != IOTP_OK)
		return rc;
	return register_under_ca(core, actor, in, cert, status, out, err);
}

iotp_rc registry_cert_register_lite(struct iotp_core *core, const char *actor,
                                    const struct registry_cert_register *in,
                                    const struct pki_cert_lite *cert, int *declined,
                                    struct registry_ref *out, struct iotp_err *err)
{
	struct registry_ca ca = {0};
	struct cert_new n = {.action = "cert.register", .lite = cert};
	int64_t nb = 0, na = 0;
	iotp_rc rc;

	*declined = 0;
	if (in->ca_pem != NULL) {
		*declined = 1;
		return IOTP_OK;
	}
	/* pki_lite_parse has made the decoding and key checks. */
	pki_lite_validity(cert, &nb, &na);
	if ((rc = register_status(in, &n.status, err)) != IOTP_OK ||
	    (rc = register_pem_size(in, err)) != IOTP_OK || (rc = validity_check(nb, na, err)) !=
	    IOTP_OK)
		return rc;
	rc = registry_ca_find_issuer_lite(core, cert, &ca, err);
	if (rc == IOTP_ERR_NOT_FOUND) {
		*declined = 1;
		return IOTP_OK;
	}
	if (rc == IOTP_OK)
		rc = insert_under(core, actor, in, &ca, &n, out, err);
	registry_ca_cleanup(&ca);
	return rc;
}

iotp_rc registry_cert_register_no_ca(struct iotp_core *core, const char *actor,
                                     const struct registry_cert_register *in,
                                     struct registry_ref *out, struct iotp_err *err)
{
	struct registry_ref ref = {0};
	struct cert_new n = {.action = "cert.register", .mode = "SNI_ONLY"};
	char res[PKI_CERT_ID_LEN + 6];
	X509 *x = NULL;
	iotp_rc rc;

	if (in->ca_pem != NULL)
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "a certificate registered without a CA takes no CA certificate");
	if ((rc = register_status(in, &n.status, err)) != IOTP_OK ||
	    (rc = register_parse(in, &x, err)) != IOTP_OK)
		return rc;
	n.x509 = x;
	n.pem = in->cert_pem;
	if ((rc = cert_insert(core, actor, &n, ref.id, err)) != IOTP_OK)
		goto out;
	snprintf(res, sizeof(res), "cert/%s", ref.id);
	if ((rc = core_arn(core, res, ref.arn, sizeof(ref.arn), err)) != IOTP_OK)
		goto out;
	*out = ref;
out:
	X509_free(x);
	return rc;
}

/* ---- describe, list ---- */

iotp_rc registry_cert_describe(struct iotp_core *core, const char *id,
                               struct registry_cert *out, struct iotp_err *err)
{
	char nid[PKI_CERT_ID_LEN + 1];
	iotp_rc rc;

	if ((rc = reg_cert_id_norm(id, nid, "certificate", err)) != IOTP_OK)
		return rc;
	return cert_load(core, nid, out, err);
}

iotp_rc registry_cert_list(struct iotp_core *core, const char *ca_id, int ascending,
                           const struct registry_page *page, struct registry_cert_list *out,
                           struct iotp_err *err)
{
	struct cert_rows r = {.core = core};
	char caid[PKI_CERT_ID_LEN + 1], sql[400], *key = NULL, *token = NULL;
	char tag = ascending ? 'C' : 'D';
	struct store_val p[4];
	const char *kid = NULL;
	int64_t kts = 0;
	int np = 0, max;
	size_t n;
	iotp_rc rc;

	if (ca_id != NULL) {
		struct store_val q[1];
		int found = 0;

		if ((rc = reg_cert_id_norm(ca_id, caid, "CA certificate", err)) != IOTP_OK)
			return rc;
		q[0] = SV_TEXT(caid);
		rc = reg_exists(core, "SELECT 1 FROM cas WHERE id = ?", q, 1, &found, err);
		if (rc == IOTP_OK && !found)
			rc = iotp_err_set(err, IOTP_ERR_NOT_FOUND, "CA certificate %s not found", caid);
		if (rc != IOTP_OK)
			return rc;
	}
	if ((rc = reg_page_open(page, tag, REGISTRY_MARKER_DEFAULT, &max, &key, err)) != IOTP_OK)
		return rc;
	if (key != NULL && (rc = reg_page_key_ts(key, &kts, &kid, err)) != IOTP_OK)
		goto out;
	n = (size_t)snprintf(sql, sizeof(sql), "SELECT " CERT_COLS " FROM certificates WHERE 1 = 1");
	if (ca_id != NULL) {
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, " AND ca_id = ?");
		p[np++] = SV_TEXT(caid);
	}
	reg_page_sql_ts(sql, sizeof(sql), n, ascending, kts, kid, max, p, &np);
	rc = store_exec(core->store, sql, p, np, cert_row, &r, err);
	if (rc == IOTP_OK && r.rc != IOTP_OK)
		rc = iotp_err_set(err, r.rc, "%s", r.err.msg);
	if (rc != IOTP_OK)
		goto out;
	if (r.count > (size_t)max) {
		const struct registry_cert *last = &r.items[max - 1];

		if ((rc = reg_page_token_ts(tag, last->created, last->id, &token, err)) != IOTP_OK)
			goto out;
		while (r.count > (size_t)max)
			registry_cert_cleanup(&r.items[--r.count]);
	}
	out->items = r.items;
	out->count = r.count;
	out->next_token = token;
	r.items = NULL;
	r.count = 0;
out:
	cert_rows_free(&r);
	free(key);
	return rc;
}

/* ---- status and deletion ---- */

/* The transition table of registry.h. */
static iotp_rc transition_ok(const struct registry_cert *c, enum registry_cert_status to,
                             struct iotp_err *err)
{
	if (c->status == REGISTRY_CERT_REVOKED)
		return iotp_err_set(err, IOTP_ERR_STATE,
		                    "certificate %s is REVOKED: revocation is final", c->id);
	if (c->status == REGISTRY_CERT_PENDING_TRANSFER && to != REGISTRY_CERT_REVOKED)
		return iotp_err_set(err, IOTP_ERR_STATE,
		                    "certificate %s is PENDING_TRANSFER: it can only be revoked or "
		                    "deleted",
		                    c->id);
	return IOTP_OK;
}

iotp_rc registry_cert_update_status(struct iotp_core *core, const char *actor,
                                    const char *id, enum registry_cert_status new_status,
                                    struct iotp_err *err)
{
	struct registry_cert c = {0};
	char nid[PKI_CERT_ID_LEN + 1], res[PKI_CERT_ID_LEN + 6];
	int depth0;
	iotp_rc rc;

	if ((rc = reg_cert_id_norm(id, nid, "certificate", err)) != IOTP_OK)
		return rc;
	if (new_status != REGISTRY_CERT_ACTIVE && new_status != REGISTRY_CERT_INACTIVE &&
	    new_status != REGISTRY_CERT_REVOKED)
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "newStatus %s cannot be set: use ACTIVE, INACTIVE or REVOKED",
		                    registry_cert_status_name(new_status));
	if ((rc = reg_tx_begin(core, &depth0, err)) != IOTP_OK)
		return rc;
	if ((rc = cert_load(core, nid, &c, err)) != IOTP_OK || c.status == new_status)
		goto out; /* error, or already there (idempotent) */
	if ((rc = transition_ok(&c, new_status, err)) != IOTP_OK)
		goto out;
	if (new_status == REGISTRY_CERT_ACTIVE && c.ca_id[0] != '\0') {
		struct store_val p[] = {SV_TEXT(c.ca_id)};
		char *castatus = NULL;

		rc = store_query_text(core->store, "SELECT status FROM cas WHERE id = ?", p, 1,
		                      &castatus, err);
		if (rc == IOTP_OK && (castatus == NULL || strcmp(castatus, "ACTIVE") != 0))
			rc = iotp_err_set(err, IOTP_ERR_STATE,
			                  "certificate %s cannot be activated: its CA certificate %s is "
			                  "not ACTIVE",
			                  nid, c.ca_id);
		free(castatus);
		if (rc != IOTP_OK)
			goto out;
	}
	{
		struct store_val p[] = {SV_TEXT(registry_cert_status_name(new_status)),
		                        SV_INT(util_now()), SV_TEXT(nid)};

		rc = store_exec(core->store,
		                "UPDATE certificates SET status = ?, updated = ?, "
		                "customer_version = customer_version + 1, generation = generation + 1 "
		                "WHERE id = ?",
		                p, 3, NULL, NULL, err);
		if (rc != IOTP_OK)
			goto out;
	}
	snprintf(res, sizeof(res), "cert/%s", nid);
	rc = reg_event(core, actor, "cert.status", res,
	               json_pack("{s:s, s:s, s:s}", "certificateId", nid, "previousStatus",
	                         registry_cert_status_name(c.status), "status",
	                         registry_cert_status_name(new_status)),
	               err);
out:
	rc = reg_tx_end(core, depth0, rc, err);
	registry_cert_cleanup(&c);
	return rc;
}

iotp_rc registry_cert_delete(struct iotp_core *core, const char *actor, const char *id,
                             int force, struct iotp_err *err)
{
	char nid[PKI_CERT_ID_LEN + 1], res[PKI_CERT_ID_LEN + 6], *status = NULL;
	int64_t policies = 0, detached = 0;
	int things = 0, depth0;
	iotp_rc rc;

	if ((rc = reg_cert_id_norm(id, nid, "certificate", err)) != IOTP_OK)
		return rc;
	snprintf(res, sizeof(res), "cert/%s", nid);
	if ((rc = reg_tx_begin(core, &depth0, err)) != IOTP_OK)
		return rc;
	{
		struct store_val p[] = {SV_TEXT(nid)};

		rc = store_query_text(core->store, "SELECT status FROM certificates WHERE id = ?", p, 1,
		                      &status, err);
		if (rc == IOTP_ERR_NOT_FOUND)
			rc = iotp_err_set(err, IOTP_ERR_NOT_FOUND, "certificate %s not found", nid);
		if (rc != IOTP_OK)
			goto out;
	}
	if (status != NULL &&
	    (strcmp(status, "ACTIVE") == 0 || strcmp(status, "PENDING_TRANSFER") == 0)) {
		rc = iotp_err_set(err, IOTP_ERR_STATE,
		                  "certificate %s is %s: deactivate it (UpdateCertificate INACTIVE) "
		                  "before deleting it",
		                  nid, status);
		goto out;
	}
	{
		struct store_val p[] = {SV_TEXT(res)};

		rc = reg_exists(core, "SELECT 1 FROM thing_principals WHERE principal = ? LIMIT 1", p,
		                1, &things, err);
		if (rc != IOTP_OK)
			goto out;
		if (things) {
			rc = iotp_err_set(err, IOTP_ERR_CONFLICT,
			                  "certificate %s is attached to one or more things: detach it "
			                  "first (DetachThingPrincipal)",
			                  nid);
			goto out;
		}
		rc = store_query_int(core->store,
		                     "SELECT COUNT(*) FROM policy_targets WHERE target = ?", p, 1,
		                     &policies, err);
		if (rc != IOTP_OK)
			goto out;
		if (policies > 0 && !force) {
			rc = iotp_err_set(err, IOTP_ERR_CONFLICT,
			                  "certificate %s has %lld policies attached: detach them first or "
			                  "use forceDelete",
			                  nid, (long long)policies);
			goto out;
		}
		if (policies > 0 &&
		    (rc = store_exec_changes(core->store, "DELETE FROM policy_targets WHERE target = ?",
		                             p, 1, &detached, err)) != IOTP_OK)
			goto out;
	}
	{
		struct store_val p[] = {SV_TEXT(nid)};

		if ((rc = store_exec(core->store, "DELETE FROM certificates WHERE id = ?", p, 1, NULL,
		                     NULL, err)) != IOTP_OK)
			goto out;
	}
	rc = reg_event(core, actor, "cert.delete", res,
	               json_pack("{s:s, s:s?, s:I, s:b}", "certificateId", nid, "status", status,
	                         "detachedPolicies", (json_int_t)detached, "forceDelete",
	                         force != 0),
	               err);
out:
	free(status);
	return reg_tx_end(core, depth0, rc, err);
}
