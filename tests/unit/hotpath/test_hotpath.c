/*
 * unit.hotpath: the registration hot paths made faster must behave exactly
 * as before.
 *
 * - prov_apply's registry calls join its transaction level instead of each
 *   opening a savepoint: an application that fails after some of its writes
 *   leaves nothing behind, and the transaction around it (a bulk batch)
 *   stays usable for the next application and commits only that one.
 * - The parsed-CA cache only spares the parse: a CA made INACTIVE by
 *   another process is seen by the next registration under it, and an
 *   entry never answers for other PEM text.
 * - registry_cert_register_x509 gives the same answers, errors and rows as
 *   registry_cert_register.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "core/ca_cache.h"
#include "core/pki.h"
#include "core/store/store.h"
#include "core/template.h"
#include "../provision/helpers.h"

/* The bulk template of issue 7: a certificate by PEM, a thing, a policy. */
static const char tmpl_body[] =
	"{\"Parameters\":{\"CertificatePem\":{\"Type\":\"String\"},"
	"\"ThingName\":{\"Type\":\"String\"},\"PolicyName\":{\"Type\":\"String\"}},"
	"\"Resources\":{"
	"\"thing\":{\"Type\":\"AWS::IoT::Thing\",\"Properties\":{\"ThingName\":{\"Ref\":"
	"\"ThingName\"},\"AttributePayload\":{\"line\":\"yes\"}}},"
	"\"cert\":{\"Type\":\"AWS::IoT::Certificate\",\"Properties\":{\"CertificatePem\":"
	"{\"Ref\":\"CertificatePem\"},\"Status\":\"ACTIVE\"}},"
	"\"policy\":{\"Type\":\"AWS::IoT::Policy\",\"Properties\":{\"PolicyName\":"
	"{\"Ref\":\"PolicyName\"}}}}}";

struct hx {
	struct fx *f;
	struct pki_ca vendor; /* registered SNI_ONLY, ACTIVE */
	char vendor_id[PKI_CERT_ID_LEN + 1];
	struct template *tmpl;
};

static int hx_setup(void **state)
{
	struct hx *h = calloc(1, sizeof(*h));
	void *fs = NULL;
	char *pem;
	struct registry_ref ref;

	assert_non_null(h);
	fx_setup(&fs);
	h->f = fs;
	fx_make_root("Vendor CA", &h->vendor);
	pem = fx_cert_pem(h->vendor.cert);
	{
		struct registry_ca_register in = {pem, NULL, "SNI_ONLY", 1, 0, NULL};

		assert_int_equal(registry_ca_register(&h->f->core, ACTOR, &in, &ref, &h->f->err),
		                 IOTP_OK);
	}
	memcpy(h->vendor_id, ref.id, sizeof(h->vendor_id));
	free(pem);
	fx_policy(h->f, "line-policy");
	assert_int_equal(template_parse(tmpl_body, strlen(tmpl_body), TEMPLATE_KIND_ANY, &h->tmpl,
	                                &h->f->err),
	                 IOTP_OK);
	*state = h;
	return 0;
}

static int hx_teardown(void **state)
{
	struct hx *h = *state;
	void *fs = h->f;

	template_free(h->tmpl);
	pki_ca_cleanup(&h->vendor);
	fx_teardown(&fs);
	free(h);
	return 0;
}

static iotp_rc apply(struct hx *h, const char *thing, const char *cert_pem, const char *policy,
                     struct iotp_err *err)
{
	json_t *params = json_pack("{s:s, s:s, s:s}", "ThingName", thing, "CertificatePem",
	                           cert_pem, "PolicyName", policy);
	struct prov_apply_in in;
	struct prov_result r;
	iotp_rc rc;

	assert_non_null(params);
	memset(&in, 0, sizeof(in));
	memset(&r, 0, sizeof(r));
	in.tmpl = h->tmpl;
	in.parameters = params;
	rc = prov_apply(&h->f->core, ACTOR, &in, &r, err);
	prov_result_cleanup(&r);
	json_decref(params);
	return rc;
}

static int64_t count(struct hx *h, const char *sql)
{
	return fx_int(h->f, sql);
}

/* A failure after the certificate and the thing were written (the policy
 * does not exist) undoes both and their events; the batch around it goes
 * on and commits only the good application. */
static void test_failed_apply_leaves_batch_usable(void **state)
{
	struct hx *h = *state;
	struct store *st = h->f->core.store;
	char *bad = fx_issue_pem(&h->vendor, "bad-device", NULL, 30);
	char *good = fx_issue_pem(&h->vendor, "good-device", NULL, 30);
	char *before, *after;
	struct iotp_err err;
	int64_t events0;

	assert_int_equal(store_begin(st, &h->f->err), IOTP_OK);
	before = fx_dump(h->f);
	events0 = count(h, "SELECT COUNT(*) FROM events");
	assert_int_equal(apply(h, "bad-thing", bad, "no-such-policy", &err), IOTP_ERR_TEMPLATE);
	assert_non_null(strstr(err.msg, "Resources.policy"));
	assert_int_equal(store_tx_depth(st), 1);
	after = fx_dump(h->f);
	assert_string_equal(before, after);
	assert_int_equal(count(h, "SELECT COUNT(*) FROM events"), events0);

	/* Same batch, next line. */
	assert_int_equal(apply(h, "good-thing", good, "line-policy", &h->f->err), IOTP_OK);
	assert_int_equal(store_commit(st, &h->f->err), IOTP_OK);
	assert_int_equal(count(h, "SELECT COUNT(*) FROM things WHERE name = 'good-thing'"), 1);
	assert_int_equal(count(h, "SELECT COUNT(*) FROM things WHERE name = 'bad-thing'"), 0);
	assert_int_equal(count(h, "SELECT COUNT(*) FROM certificates WHERE subject LIKE "
	                          "'%bad-device%'"),
	                 0);
	assert_int_equal(count(h, "SELECT COUNT(*) FROM thing_principals WHERE thing_name = "
	                          "'good-thing'"),
	                 1);
	assert_int_equal(count(h, "SELECT COUNT(*) FROM policy_targets WHERE policy_name = "
	                          "'line-policy'"),
	                 1);
	/* cert.register, thing.create, policy.attach, thing.attach_principal,
	 * provision.apply: the good line's events only. */
	assert_int_equal(count(h, "SELECT COUNT(*) FROM events") - events0, 5);
	assert_int_equal(count(h, "SELECT COUNT(*) FROM events WHERE object = 'thing/bad-thing'"),
	                 0);
	free(before);
	free(after);
	free(bad);
	free(good);
}

/* Outside any transaction a failed application changes nothing either,
 * and repeating a good one changes nothing and appends no event. */
static void test_failed_apply_alone(void **state)
{
	struct hx *h = *state;
	char *bad = fx_issue_pem(&h->vendor, "bad-device", NULL, 30);
	char *good = fx_issue_pem(&h->vendor, "good-device", NULL, 30);
	char *before, *after;
	struct iotp_err err;
	int64_t events;

	before = fx_dump(h->f);
	assert_int_equal(apply(h, "bad-thing", bad, "no-such-policy", &err), IOTP_ERR_TEMPLATE);
	assert_int_equal(store_tx_depth(h->f->core.store), 0);
	after = fx_dump(h->f);
	assert_string_equal(before, after);
	assert_int_equal(apply(h, "good-thing", good, "line-policy", &h->f->err), IOTP_OK);
	events = count(h, "SELECT COUNT(*) FROM events");
	assert_int_equal(apply(h, "good-thing", good, "line-policy", &h->f->err), IOTP_OK);
	assert_int_equal(count(h, "SELECT COUNT(*) FROM events"), events);
	free(before);
	free(after);
	free(bad);
	free(good);
}

/* Another process makes the CA INACTIVE after this one has parsed (and
 * cached) it: the next registration of an ACTIVE certificate under it is
 * refused, exactly as without a cache. */
static void test_ca_inactive_elsewhere(void **state)
{
	struct hx *h = *state;
	char *one = fx_issue_pem(&h->vendor, "dev-one", NULL, 30);
	char *two = fx_issue_pem(&h->vendor, "dev-two", NULL, 30);
	struct registry_cert_register reg = {.status = "ACTIVE"};
	struct registry_ref ref;
	struct iotp_err err;
	pid_t pid;
	int status = 0;

	assert_int_equal(apply(h, "thing-one", one, "line-policy", &h->f->err), IOTP_OK);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct iotp_core other;
		struct registry_ca_update up = {.id = h->vendor_id, .new_status = "INACTIVE"};
		struct iotp_err e;

		fx_core_open(h->f, &other);
		_exit(registry_ca_update(&other, ACTOR, &up, &e) == IOTP_OK ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	assert_int_equal(apply(h, "thing-two", two, "line-policy", &err), IOTP_ERR_TEMPLATE);
	assert_non_null(strstr(err.msg, "INACTIVE"));
	reg.cert_pem = two;
	assert_int_equal(registry_cert_register(&h->f->core, ACTOR, &reg, &ref, &err),
	                 IOTP_ERR_STATE);
	/* INACTIVE under an INACTIVE CA is allowed, and finds the CA. */
	reg.status = "INACTIVE";
	assert_int_equal(registry_cert_register(&h->f->core, ACTOR, &reg, &ref, &h->f->err),
	                 IOTP_OK);
	{
		char *caid = fx_text(h->f, "SELECT ca_id FROM certificates WHERE id = ?", ref.id);

		assert_non_null(caid);
		assert_string_equal(caid, h->vendor_id);
		free(caid);
	}
	free(one);
	free(two);
}

/* A certificate by ca for a new key valid from now+nb to now+na seconds;
 * PEM malloc'ed. */
static char *cert_window(const struct pki_ca *ca, const char *cn, long nb, long na)
{
	EVP_PKEY *key = NULL;
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	struct iotp_err err;
	char *pem;

	assert_int_equal(pki_key_generate(PKI_KEY_EC_P256, &key, &err), IOTP_OK);
	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 4242), 1);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	                                            (const unsigned char *)cn, -1, -1, 0),
	                 1);
	assert_int_equal(X509_set_subject_name(x, name), 1);
	assert_int_equal(X509_set_issuer_name(x, X509_get_subject_name(ca->cert)), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), nb));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), na));
	assert_int_equal(X509_set_pubkey(x, key), 1);
	assert_true(X509_sign(x, ca->key, EVP_sha256()) > 0);
	pem = fx_cert_pem(x);
	X509_NAME_free(name);
	X509_free(x);
	EVP_PKEY_free(key);
	return pem;
}

/* The same input through both entry points, each in a transaction rolled
 * back afterwards: same code, same message, same certificate id. */
static void compare_entry_points(struct hx *h, const char *pem, const char *status)
{
	struct registry_cert_register reg = {.cert_pem = pem, .status = status};
	struct registry_ref r1, r2;
	struct iotp_err e1, e2;
	struct store *st = h->f->core.store;
	X509 *x = NULL;
	iotp_rc rc1, rc2;
	int64_t n1, n2;

	memset(&r1, 0, sizeof(r1));
	memset(&r2, 0, sizeof(r2));
	iotp_err_clear(&e1);
	iotp_err_clear(&e2);
	assert_int_equal(pki_cert_parse(pem, strlen(pem), &x, &h->f->err), IOTP_OK);
	assert_int_equal(store_begin(st, &h->f->err), IOTP_OK);
	rc1 = registry_cert_register(&h->f->core, ACTOR, &reg, &r1, &e1);
	n1 = count(h, "SELECT COUNT(*) FROM certificates");
	store_rollback(st);
	assert_int_equal(store_begin(st, &h->f->err), IOTP_OK);
	rc2 = registry_cert_register_x509(&h->f->core, ACTOR, &reg, x, &r2, &e2);
	n2 = count(h, "SELECT COUNT(*) FROM certificates");
	store_rollback(st);
	X509_free(x);
	assert_int_equal(rc1, rc2);
	assert_int_equal(n1, n2);
	if (rc1 == IOTP_OK) {
		assert_string_equal(r1.id, r2.id);
		assert_string_equal(r1.arn, r2.arn);
	} else {
		assert_string_equal(e1.msg, e2.msg);
	}
}

static void test_register_x509_same_answers(void **state)
{
	struct hx *h = *state;
	struct pki_ca stranger = {0};
	char *ok = fx_issue_pem(&h->vendor, "dev-ok", NULL, 30);
	char *foreign, *expired, *future;

	fx_make_root("Stranger CA", &stranger);
	foreign = fx_issue_pem(&stranger, "dev-foreign", NULL, 30);
	expired = cert_window(&h->vendor, "dev-expired", -7200, -3600);
	future = cert_window(&h->vendor, "dev-future", 3600, 7200);
	compare_entry_points(h, ok, "ACTIVE");
	compare_entry_points(h, ok, NULL);
	compare_entry_points(h, ok, "REVOKED");
	compare_entry_points(h, ok, "PENDING_TRANSFER"); /* INVALID status first */
	compare_entry_points(h, ok, "nonsense");
	compare_entry_points(h, foreign, "ACTIVE");      /* no registered issuer: CERT */
	compare_entry_points(h, expired, "ACTIVE");      /* expired: CERT */
	compare_entry_points(h, future, "ACTIVE");       /* not valid yet: CERT */
	pki_ca_cleanup(&stranger);
	free(ok);
	free(foreign);
	free(expired);
	free(future);
}

/* An entry answers only for the exact PEM it parsed. */
static void test_ca_cache_exact(void **state)
{
	struct hx *h = *state;
	struct pki_ca other = {0};
	char *pa = fx_cert_pem(h->vendor.cert), *pb;
	X509 *a1 = NULL, *a2 = NULL, *b = NULL, *junk = NULL;

	fx_make_root("Other CA", &other);
	pb = fx_cert_pem(other.cert);
	ca_cache_clear();
	assert_int_equal(ca_cache_get("x", pa, strlen(pa), &a1, &h->f->err), IOTP_OK);
	assert_int_equal(ca_cache_get("x", pa, strlen(pa), &a2, &h->f->err), IOTP_OK);
	assert_ptr_equal(a1, a2); /* a hit */
	assert_int_equal(X509_cmp(a1, h->vendor.cert), 0);
	/* Same id, other text: parsed anew, never the cached certificate. */
	assert_int_equal(ca_cache_get("x", pb, strlen(pb), &b, &h->f->err), IOTP_OK);
	assert_int_equal(X509_cmp(b, other.cert), 0);
	assert_int_equal(ca_cache_get("y", "junk", 4, &junk, &h->f->err), IOTP_ERR_CERT);
	assert_null(junk);
	/* More CAs than slots: still right, oldest evicted. */
	for (int i = 0; i < CA_CACHE_SLOTS + 4; i++) {
		char id[16];
		X509 *y = NULL;

		snprintf(id, sizeof(id), "id%d", i);
		assert_int_equal(ca_cache_get(id, i % 2 ? pa : pb, strlen(i % 2 ? pa : pb), &y,
		                              &h->f->err),
		                 IOTP_OK);
		assert_int_equal(X509_cmp(y, i % 2 ? h->vendor.cert : other.cert), 0);
		X509_free(y);
	}
	X509_free(a1);
	X509_free(a2);
	X509_free(b);
	ca_cache_clear();
	pki_ca_cleanup(&other);
	free(pa);
	free(pb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_failed_apply_leaves_batch_usable, hx_setup,
		                                hx_teardown),
		cmocka_unit_test_setup_teardown(test_failed_apply_alone, hx_setup, hx_teardown),
		cmocka_unit_test_setup_teardown(test_ca_inactive_elsewhere, hx_setup, hx_teardown),
		cmocka_unit_test_setup_teardown(test_register_x509_same_answers, hx_setup,
		                                hx_teardown),
		cmocka_unit_test_setup_teardown(test_ca_cache_exact, hx_setup, hx_teardown),
	};

	iotp_log_set_level(IOTP_LOG_ERROR);
	return cmocka_run_group_tests_name("hotpath", tests, NULL, NULL);
}
