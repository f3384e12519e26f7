/*
 * Certificates: issuance, the status transition table, deletion rules and
 * paging (registry_cert.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>

#include "core/pki.h"
#include "helpers.h"

static X509 *parse(const char *pem)
{
	struct iotp_err err;
	X509 *x = NULL;

	assert_int_equal(pki_cert_parse(pem, strlen(pem), &x, &err), IOTP_OK);
	return x;
}

static void cert_issue(void **state)
{
	struct fx *f = *state;
	struct registry_cert_created c = {0};
	struct registry_cert d = {0};
	char *csr = fx_csr_pem("device-7"), id[PKI_CERT_ID_LEN + 1], cn[64], *dump;
	X509 *x;

	assert_int_equal(registry_cert_create_from_csr(&f->core, ACTOR, csr, strlen(csr),
	                                               REGISTRY_CERT_ACTIVE, &c, &f->err),
	                 IOTP_OK);
	assert_null(c.private_key_pem);
	x = parse(c.pem);
	assert_int_equal(pki_cert_chains_to(x, f->core.issuing.cert, &f->err), IOTP_OK);
	assert_int_equal(pki_cert_id(x, id, &f->err), IOTP_OK);
	assert_string_equal(id, c.id);
	assert_int_equal(pki_cert_name_field(x, 0, "CommonName", cn, sizeof(cn), &f->err), IOTP_OK);
	assert_string_equal(cn, "device-7");
	X509_free(x);
	assert_int_equal(registry_cert_describe(&f->core, c.id, &d, &f->err), IOTP_OK);
	assert_int_equal(d.status, REGISTRY_CERT_ACTIVE);
	assert_string_equal(d.pem, c.pem);
	assert_string_equal(d.ca_id, "");
	assert_string_equal(d.mode, "DEFAULT");
	assert_true(d.not_after - d.not_before >= 365 * 86400);
	registry_cert_cleanup(&d);
	assert_int_equal(fx_events(f, "cert.create", NULL), 1);
	registry_cert_created_cleanup(&c);

	/* A CSR that is not one; an oversized one. */
	assert_int_equal(registry_cert_create_from_csr(&f->core, ACTOR, "garbage", 7,
	                                               REGISTRY_CERT_ACTIVE, &c, &f->err),
	                 IOTP_ERR_CERT);
	assert_int_equal(registry_cert_create_from_csr(&f->core, ACTOR, csr, 5000,
	                                               REGISTRY_CERT_ACTIVE, &c, &f->err),
	                 IOTP_ERR_INVALID);
	assert_int_equal(registry_cert_create_from_csr(&f->core, ACTOR, csr, strlen(csr),
	                                               REGISTRY_CERT_REVOKED, &c, &f->err),
	                 IOTP_ERR_INVALID);
	free(csr);

	/* Keys and certificate: the key matches, and is stored nowhere. */
	assert_int_equal(registry_cert_create_with_keys(&f->core, ACTOR, REGISTRY_CERT_INACTIVE, &c,
	                                                &f->err),
	                 IOTP_OK);
	{
		BIO *b = BIO_new_mem_buf(c.private_key_pem, -1);
		EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);

		assert_non_null(k);
		x = parse(c.pem);
		assert_int_equal(EVP_PKEY_eq(k, X509_get0_pubkey(x)), 1);
		assert_int_equal(EVP_PKEY_get_base_id(k), EVP_PKEY_EC);
		X509_free(x);
		EVP_PKEY_free(k);
		BIO_free(b);
	}
	assert_non_null(strstr(c.public_key_pem, "PUBLIC KEY"));
	assert_int_equal(registry_cert_describe(&f->core, c.id, &d, &f->err), IOTP_OK);
	assert_int_equal(d.status, REGISTRY_CERT_INACTIVE);
	registry_cert_cleanup(&d);
	dump = fx_dump(f);
	assert_null(strstr(dump, "PRIVATE KEY"));
	free(dump);
	registry_cert_created_cleanup(&c);

	/* A core without its CA cannot issue. */
	{
		struct pki_ca saved = f->core.issuing;

		f->core.issuing.cert = NULL;
		f->core.issuing.key = NULL;
		assert_int_equal(registry_cert_create_with_keys(&f->core, ACTOR, REGISTRY_CERT_ACTIVE,
		                                                &c, &f->err),
		                 IOTP_ERR_CONFIG);
		f->core.issuing = saved;
	}
	assert_int_equal(registry_cert_describe(&f->core, "abc", &d, &f->err), IOTP_ERR_INVALID);
	assert_int_equal(registry_cert_describe(
	                     &f->core,
	                     "1111111111111111111111111111111111111111111111111111111111111111", &d,
	                     &f->err),
	                 IOTP_ERR_NOT_FOUND);
	assert_int_equal(fx_foreign_events(f), 0);
}

static void set_status_raw(struct fx *f, const char *id, enum registry_cert_status s)
{
	struct store_val p[] = {SV_TEXT(registry_cert_status_name(s)), SV_TEXT(id)};

	assert_int_equal(store_exec(f->core.store, "UPDATE certificates SET status = ? WHERE id = ?",
	                            p, 2, NULL, NULL, &f->err),
	                 IOTP_OK);
}

/* The transition table of registry.h, every pair. */
static iotp_rc expected(enum registry_cert_status from, enum registry_cert_status to)
{
	if (to != REGISTRY_CERT_ACTIVE && to != REGISTRY_CERT_INACTIVE &&
	    to != REGISTRY_CERT_REVOKED)
		return IOTP_ERR_INVALID;
	if (from == to)
		return IOTP_OK;
	if (from == REGISTRY_CERT_REVOKED)
		return IOTP_ERR_STATE;
	if (from == REGISTRY_CERT_PENDING_TRANSFER && to != REGISTRY_CERT_REVOKED)
		return IOTP_ERR_STATE;
	return IOTP_OK;
}

static void cert_transitions(void **state)
{
	struct fx *f = *state;
	int checked = 0;

	for (int from = 0; from <= REGISTRY_CERT_PENDING_ACTIVATION; from++) {
		for (int to = 0; to <= REGISTRY_CERT_PENDING_ACTIVATION; to++) {
			struct registry_cert_created c = {0};
			struct registry_cert d = {0};
			iotp_rc want = expected(from, to), got;
			int64_t ev;

			assert_int_equal(registry_cert_create_with_keys(&f->core, ACTOR,
			                                                REGISTRY_CERT_INACTIVE, &c, &f->err),
			                 IOTP_OK);
			set_status_raw(f, c.id, (enum registry_cert_status)from);
			ev = fx_events(f, "cert.status", NULL);
			got = registry_cert_update_status(&f->core, ACTOR, c.id,
			                                  (enum registry_cert_status)to, &f->err);
			if (got != want)
				fail_msg("%s -> %s: got %s, want %s (%s)",
				         registry_cert_status_name((enum registry_cert_status)from),
				         registry_cert_status_name((enum registry_cert_status)to),
				         iotp_strerror(got), iotp_strerror(want), f->err.msg);
			assert_int_equal(registry_cert_describe(&f->core, c.id, &d, &f->err), IOTP_OK);
			assert_int_equal(d.status, want == IOTP_OK ? to : from);
			assert_int_equal(fx_events(f, "cert.status", NULL),
			                 ev + (want == IOTP_OK && from != to ? 1 : 0));
			registry_cert_cleanup(&d);
			registry_cert_created_cleanup(&c);
			checked++;
		}
	}
	assert_int_equal(checked, 36);
	assert_int_equal(fx_foreign_events(f), 0);
}

static void same_dump(struct fx *f, const char *before)
{
	char *after = fx_dump(f);

	assert_string_equal(before, after);
	free(after);
}

static void cert_delete(void **state)
{
	struct fx *f = *state;
	struct registry_cert_created c = {0};
	struct registry_thing_spec ts = {.name = "holder"};
	struct registry_policy p = {0};
	struct registry_cert d = {0};
	struct registry_ref ref;
	char *before;

	assert_int_equal(registry_cert_create_with_keys(&f->core, ACTOR, REGISTRY_CERT_ACTIVE, &c,
	                                                &f->err),
	                 IOTP_OK);
	assert_int_equal(registry_thing_create(&f->core, ACTOR, &ts, &ref, &f->err), IOTP_OK);
	assert_int_equal(registry_policy_create(&f->core, ACTOR, "pol",
	                                        "{\"Version\":\"2012-10-17\",\"Statement\":{"
	                                        "\"Effect\":\"Allow\",\"Action\":\"iot:*\","
	                                        "\"Resource\":\"*\"}}",
	                                        &p, &f->err),
	                 IOTP_OK);
	registry_policy_cleanup(&p);
	assert_int_equal(registry_thing_attach_principal(&f->core, ACTOR, "holder", c.arn, &f->err),
	                 IOTP_OK);
	assert_int_equal(registry_policy_attach(&f->core, ACTOR, "pol", c.arn, &f->err), IOTP_OK);

	/* ACTIVE: refused with CertificateState, nothing changes. */
	before = fx_dump(f);
	assert_int_equal(registry_cert_delete(&f->core, ACTOR, c.id, 1, &f->err), IOTP_ERR_STATE);
	assert_non_null(strstr(f->err.msg, c.id));
	same_dump(f, before);
	free(before);

	assert_int_equal(registry_cert_update_status(&f->core, ACTOR, c.id, REGISTRY_CERT_INACTIVE,
	                                             &f->err),
	                 IOTP_OK);
	/* Attached to a thing: refused, even with force; nothing changes (the
	 * policy attachment in particular survives the forced attempt). */
	before = fx_dump(f);
	assert_int_equal(registry_cert_delete(&f->core, ACTOR, c.id, 0, &f->err), IOTP_ERR_CONFLICT);
	same_dump(f, before);
	assert_int_equal(registry_cert_delete(&f->core, ACTOR, c.id, 1, &f->err), IOTP_ERR_CONFLICT);
	same_dump(f, before);
	free(before);

	assert_int_equal(registry_thing_detach_principal(&f->core, ACTOR, "holder", c.arn, &f->err),
	                 IOTP_OK);
	/* A policy attached: refused without force. */
	before = fx_dump(f);
	assert_int_equal(registry_cert_delete(&f->core, ACTOR, c.id, 0, &f->err), IOTP_ERR_CONFLICT);
	same_dump(f, before);
	free(before);
	/* Inside a caller's transaction the refusal leaves it usable. */
	assert_int_equal(store_begin(f->core.store, &f->err), IOTP_OK);
	assert_int_equal(registry_cert_delete(&f->core, ACTOR, c.id, 0, &f->err), IOTP_ERR_CONFLICT);
	assert_int_equal(store_commit(f->core.store, &f->err), IOTP_OK);

	/* Force detaches the policy and deletes. */
	assert_int_equal(registry_cert_delete(&f->core, ACTOR, c.id, 1, &f->err), IOTP_OK);
	assert_int_equal(registry_cert_describe(&f->core, c.id, &d, &f->err), IOTP_ERR_NOT_FOUND);
	assert_int_equal(fx_int(f, "SELECT COUNT(*) FROM policy_targets"), 0);
	assert_int_equal(registry_policy_get(&f->core, "pol", &p, &f->err), IOTP_OK);
	registry_policy_cleanup(&p);
	assert_int_equal(registry_cert_delete(&f->core, ACTOR, c.id, 1, &f->err), IOTP_ERR_NOT_FOUND);
	assert_int_equal(fx_events(f, "cert.delete", NULL), 1);
	registry_cert_created_cleanup(&c);

	/* PENDING_TRANSFER cannot be deleted; REVOKED can. */
	assert_int_equal(registry_cert_create_with_keys(&f->core, ACTOR, REGISTRY_CERT_INACTIVE, &c,
	                                                &f->err),
	                 IOTP_OK);
	set_status_raw(f, c.id, REGISTRY_CERT_PENDING_TRANSFER);
	assert_int_equal(registry_cert_delete(&f->core, ACTOR, c.id, 0, &f->err), IOTP_ERR_STATE);
	set_status_raw(f, c.id, REGISTRY_CERT_REVOKED);
	assert_int_equal(registry_cert_delete(&f->core, ACTOR, c.id, 0, &f->err), IOTP_OK);
	registry_cert_created_cleanup(&c);
	assert_int_equal(fx_foreign_events(f), 0);
}

static int cmp_cert(const struct registry_cert *a, const struct registry_cert *b)
{
	if (a->created != b->created)
		return a->created < b->created ? -1 : 1;
	return strcmp(a->id, b->id);
}

static void cert_paging(void **state)
{
	struct fx *f = *state;
	static struct registry_cert seen[80];

	for (int i = 0; i < 60; i++) {
		struct registry_cert_created c = {0};

		assert_int_equal(registry_cert_create_with_keys(&f->core, ACTOR, REGISTRY_CERT_ACTIVE,
		                                                &c, &f->err),
		                 IOTP_OK);
		registry_cert_created_cleanup(&c);
	}
	/* Spread creation dates so both keys of the order matter. */
	assert_int_equal(store_exec(f->core.store,
	                            "UPDATE certificates SET created = created - (CASE WHEN id < '5' "
	                            "THEN 0 WHEN id < 'a' THEN 1 ELSE 2 END)", NULL,
	                            0, NULL, NULL, &f->err),
	                 IOTP_OK);
	for (int asc = 0; asc <= 1; asc++) {
		size_t n = 0;
		char *tok = NULL;

		do {
			struct registry_page page = {.token = tok, .max = 7};
			struct registry_cert_list l = {0};

			assert_int_equal(registry_cert_list(&f->core, NULL, asc, &page, &l, &f->err),
			                 IOTP_OK);
			for (size_t i = 0; i < l.count; i++) {
				assert_true(n < 80);
				assert_null(l.items[i].pem);
				seen[n] = l.items[i];
				seen[n].pem = NULL;
				if (n > 0)
					assert_true(asc ? cmp_cert(&seen[n - 1], &seen[n]) < 0
					                : cmp_cert(&seen[n - 1], &seen[n]) > 0);
				n++;
			}
			free(tok);
			tok = l.next_token != NULL ? strdup(l.next_token) : NULL;
			registry_cert_list_cleanup(&l);
		} while (tok != NULL);
		assert_int_equal(n, 60);
	}
	/* A descending token is refused by the ascending list. */
	{
		struct registry_page page = {.max = 7};
		struct registry_cert_list l = {0};
		char *tok;

		assert_int_equal(registry_cert_list(&f->core, NULL, 0, &page, &l, &f->err), IOTP_OK);
		tok = strdup(l.next_token);
		registry_cert_list_cleanup(&l);
		page.token = tok;
		assert_int_equal(registry_cert_list(&f->core, NULL, 1, &page, &l, &f->err),
		                 IOTP_ERR_INVALID);
		free(tok);
	}
	{
		struct registry_cert_list l = {0};

		assert_int_equal(registry_cert_list(&f->core, NULL, 1, NULL, &l, &f->err), IOTP_OK);
		assert_int_equal(l.count, REGISTRY_MARKER_DEFAULT);
		assert_non_null(l.next_token);
		registry_cert_list_cleanup(&l);
	}
}

int suite_cert(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(cert_issue, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(cert_transitions, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(cert_delete, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(cert_paging, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests_name("registry.cert", tests, NULL, NULL);
}
