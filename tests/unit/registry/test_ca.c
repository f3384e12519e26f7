/*
 * CA certificates: registration code, proof of possession, registration of
 * device certificates under a CA, issuer lookup, update and delete
 * (registry_ca.c and the registration half of registry_cert.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/pki.h"
#include "helpers.h"

static X509 *parse(const char *pem)
{
	struct iotp_err err;
	X509 *x = NULL;

	assert_int_equal(pki_cert_parse(pem, strlen(pem), &x, &err), IOTP_OK);
	return x;
}

static void regcode(void **state)
{
	struct fx *f = *state;
	char a[65], b[65];

	assert_int_equal(registry_regcode_get(&f->core, ACTOR, a, &f->err), IOTP_OK);
	assert_int_equal(strlen(a), 64);
	assert_int_equal(strspn(a, "0123456789abcdef"), 64);
	assert_int_equal(registry_regcode_get(&f->core, ACTOR, b, &f->err), IOTP_OK);
	assert_string_equal(a, b);
	assert_int_equal(fx_events(f, "regcode.create", NULL), 1);
	assert_int_equal(fx_foreign_events(f), 0);
}

static void ca_register(void **state)
{
	struct fx *f = *state;
	struct pki_ca ext, other;
	struct registry_ca_register in = {0};
	struct registry_ca ca = {0};
	struct registry_ref ref;
	char code[65], *ca_pem, *verif, *bad_cn, *bad_key, *leaf;
	char *before;

	fx_make_root("Vendor CA", &ext);
	fx_make_root("Vendor CA", &other); /* same subject, another key */
	ca_pem = fx_cert_pem(ext.cert);

	/* No registration code yet: the proof cannot be checked. */
	in.ca_pem = ca_pem;
	in.verification_pem = ca_pem;
	assert_int_equal(registry_ca_register(&f->core, ACTOR, &in, &ref, &f->err),
	                 IOTP_ERR_REGCODE);

	assert_int_equal(registry_regcode_get(&f->core, ACTOR, code, &f->err), IOTP_OK);
	verif = fx_issue_pem(&ext, code, 1);
	bad_cn = fx_issue_pem(&ext, "not-the-code", 1);
	bad_key = fx_issue_pem(&other, code, 1);
	leaf = fx_issue_pem(&ext, "device", 30);

	in.verification_pem = bad_cn;
	before = fx_dump(f);
	assert_int_equal(registry_ca_register(&f->core, ACTOR, &in, &ref, &f->err),
	                 IOTP_ERR_REGCODE);
	in.verification_pem = bad_key;
	assert_int_equal(registry_ca_register(&f->core, ACTOR, &in, &ref, &f->err),
	                 IOTP_ERR_REGCODE);
	in.verification_pem = NULL;
	assert_int_equal(registry_ca_register(&f->core, ACTOR, &in, &ref, &f->err),
	                 IOTP_ERR_INVALID);
	in.verification_pem = verif;
	in.mode = "SNI_ONLY";
	assert_int_equal(registry_ca_register(&f->core, ACTOR, &in, &ref, &f->err),
	                 IOTP_ERR_INVALID);
	in.mode = NULL;
	in.ca_pem = leaf;
	assert_int_equal(registry_ca_register(&f->core, ACTOR, &in, &ref, &f->err), IOTP_ERR_CERT);
	in.ca_pem = ca_pem;
	{
		json_t *cfg = json_pack("{s:s}", "templateName", "no-such-template");

		in.registration_config = cfg;
		assert_int_equal(registry_ca_register(&f->core, ACTOR, &in, &ref, &f->err),
		                 IOTP_ERR_NOT_FOUND);
		json_decref(cfg);
		cfg = json_pack("{s:s, s:s}", "templateBody", "{}", "templateName", "x");
		in.registration_config = cfg;
		assert_int_equal(registry_ca_register(&f->core, ACTOR, &in, &ref, &f->err),
		                 IOTP_ERR_INVALID);
		json_decref(cfg);
	}
	{
		char *after = fx_dump(f);

		assert_string_equal(before, after);
		free(after);
		free(before);
	}

	{
		json_t *cfg = json_pack("{s:s}", "templateBody", "{\"Resources\":{}}");

		in.registration_config = cfg;
		in.set_active = 1;
		in.allow_auto_registration = 1;
		assert_int_equal(registry_ca_register(&f->core, ACTOR, &in, &ref, &f->err), IOTP_OK);
		assert_int_equal(registry_ca_register(&f->core, ACTOR, &in, &ref, &f->err),
		                 IOTP_ERR_EXISTS);
		json_decref(cfg);
	}
	assert_non_null(strstr(ref.arn, ":cacert/"));
	assert_int_equal(registry_ca_describe(&f->core, ref.id, &ca, &f->err), IOTP_OK);
	assert_true(ca.active);
	assert_true(ca.auto_registration);
	assert_string_equal(ca.mode, "DEFAULT");
	assert_string_equal(ca.origin, "EXTERNAL");
	assert_string_equal(ca.pem, ca_pem);
	assert_string_equal(json_string_value(json_object_get(ca.registration_config,
	                                                      "templateBody")),
	                    "{\"Resources\":{}}");
	registry_ca_cleanup(&ca);

	/* SNI_ONLY needs no proof. */
	{
		char *other_pem = fx_cert_pem(other.cert);
		struct registry_ca_register sni = {.ca_pem = other_pem, .mode = "SNI_ONLY"};
		struct registry_ca_list l = {0};

		assert_int_equal(registry_ca_register(&f->core, ACTOR, &sni, &ref, &f->err), IOTP_OK);
		assert_int_equal(registry_ca_describe(&f->core, ref.id, &ca, &f->err), IOTP_OK);
		assert_string_equal(ca.mode, "SNI_ONLY");
		assert_false(ca.active);
		registry_ca_cleanup(&ca);
		assert_int_equal(registry_ca_list(&f->core, 1, NULL, NULL, &l, &f->err), IOTP_OK);
		assert_int_equal(l.count, 2);
		assert_null(l.items[0].pem);
		registry_ca_list_cleanup(&l);
		free(other_pem);
	}
	assert_int_equal(fx_events(f, "cacert.register", NULL), 2);
	assert_int_equal(fx_foreign_events(f), 0);
	free(ca_pem);
	free(verif);
	free(bad_cn);
	free(bad_key);
	free(leaf);
	pki_ca_cleanup(&ext);
	pki_ca_cleanup(&other);
}

/* Registers ext's certificate (DEFAULT) and returns its id. */
static void register_ext(struct fx *f, const struct pki_ca *ext, int active, char id[65])
{
	char code[65], *ca_pem = fx_cert_pem(ext->cert), *verif;
	struct registry_ca_register in = {.ca_pem = ca_pem, .set_active = active};
	struct registry_ref ref;

	assert_int_equal(registry_regcode_get(&f->core, ACTOR, code, &f->err), IOTP_OK);
	verif = fx_issue_pem(ext, code, 1);
	in.verification_pem = verif;
	assert_int_equal(registry_ca_register(&f->core, ACTOR, &in, &ref, &f->err), IOTP_OK);
	memcpy(id, ref.id, 65);
	free(ca_pem);
	free(verif);
}

static void cert_register(void **state)
{
	struct fx *f = *state;
	struct pki_ca ext, stranger;
	struct registry_cert d = {0};
	struct registry_ca ca = {0};
	struct registry_ref ref;
	char caid[65], first[65];
	char *ext_pem, *stranger_pem, *dev1, *dev2, *dev3, *lost, *before;

	fx_make_root("Vendor CA", &ext);
	fx_make_root("Stranger CA", &stranger);
	register_ext(f, &ext, 1, caid);
	ext_pem = fx_cert_pem(ext.cert);
	stranger_pem = fx_cert_pem(stranger.cert);
	dev1 = fx_issue_pem(&ext, "dev1", 30);
	dev2 = fx_issue_pem(&ext, "dev2", 30);
	dev3 = fx_issue_pem(&ext, "dev3", 30);
	lost = fx_issue_pem(&stranger, "lost", 30);

	/* With the CA given: it must be registered and the cert must chain. */
	{
		struct registry_cert_register in = {.cert_pem = dev1, .ca_pem = ext_pem,
		                                    .set_active = 1};

		assert_int_equal(registry_cert_register(&f->core, ACTOR, &in, &ref, &f->err), IOTP_OK);
		memcpy(first, ref.id, 65);
		assert_int_equal(registry_cert_register(&f->core, ACTOR, &in, &ref, &f->err),
		                 IOTP_ERR_EXISTS);
		before = fx_dump(f);
		in.cert_pem = lost;
		assert_int_equal(registry_cert_register(&f->core, ACTOR, &in, &ref, &f->err),
		                 IOTP_ERR_CERT);
		in.ca_pem = stranger_pem;
		assert_int_equal(registry_cert_register(&f->core, ACTOR, &in, &ref, &f->err),
		                 IOTP_ERR_CERT);
		assert_non_null(strstr(f->err.msg, "not registered"));
		/* Without the CA, a stranger's certificate has no registered issuer. */
		in.ca_pem = NULL;
		assert_int_equal(registry_cert_register(&f->core, ACTOR, &in, &ref, &f->err),
		                 IOTP_ERR_CERT);
		in.cert_pem = dev2;
		in.status = "PENDING_TRANSFER";
		assert_int_equal(registry_cert_register(&f->core, ACTOR, &in, &ref, &f->err),
		                 IOTP_ERR_INVALID);
		in.cert_pem = "not a certificate";
		in.status = NULL;
		assert_int_equal(registry_cert_register(&f->core, ACTOR, &in, &ref, &f->err),
		                 IOTP_ERR_CERT);
		{
			char *after = fx_dump(f);

			assert_string_equal(before, after);
			free(after);
			free(before);
		}
		/* Without the CA: found by issuer and signature. */
		in.cert_pem = dev2;
		in.status = "REVOKED";
		assert_int_equal(registry_cert_register(&f->core, ACTOR, &in, &ref, &f->err), IOTP_OK);
	}
	assert_int_equal(registry_cert_describe(&f->core, first, &d, &f->err), IOTP_OK);
	assert_string_equal(d.ca_id, caid);
	assert_int_equal(d.status, REGISTRY_CERT_ACTIVE);
	assert_string_equal(d.mode, "DEFAULT");
	registry_cert_cleanup(&d);
	assert_int_equal(registry_cert_describe(&f->core, ref.id, &d, &f->err), IOTP_OK);
	assert_string_equal(d.ca_id, caid);
	assert_int_equal(d.status, REGISTRY_CERT_REVOKED);
	registry_cert_cleanup(&d);

	/* The issuer lookup JITP/JITR use. */
	{
		X509 *x = parse(dev3);

		assert_int_equal(registry_ca_find_issuer(&f->core, x, &ca, &f->err), IOTP_OK);
		assert_string_equal(ca.id, caid);
		assert_non_null(ca.pem);
		registry_ca_cleanup(&ca);
		X509_free(x);
		x = parse(lost);
		assert_int_equal(registry_ca_find_issuer(&f->core, x, &ca, &f->err),
		                 IOTP_ERR_NOT_FOUND);
		X509_free(x);
	}

	/* Without a CA at all. */
	{
		struct registry_cert_register in = {.cert_pem = lost, .status = "ACTIVE"};

		assert_int_equal(registry_cert_register_no_ca(&f->core, ACTOR, &in, &ref, &f->err),
		                 IOTP_OK);
		assert_int_equal(registry_cert_describe(&f->core, ref.id, &d, &f->err), IOTP_OK);
		assert_string_equal(d.ca_id, "");
		assert_string_equal(d.mode, "SNI_ONLY");
		assert_int_equal(d.status, REGISTRY_CERT_ACTIVE);
		registry_cert_cleanup(&d);
		in.ca_pem = ext_pem;
		assert_int_equal(registry_cert_register_no_ca(&f->core, ACTOR, &in, &ref, &f->err),
		                 IOTP_ERR_INVALID);
	}

	/* An INACTIVE CA: its certificates cannot be ACTIVE. */
	{
		struct registry_ca_update up = {.id = caid, .new_status = "INACTIVE"};
		struct registry_cert_register in = {.cert_pem = dev3, .set_active = 1};

		assert_int_equal(registry_ca_update(&f->core, ACTOR, &up, &f->err), IOTP_OK);
		assert_int_equal(registry_cert_register(&f->core, ACTOR, &in, &ref, &f->err),
		                 IOTP_ERR_STATE);
		in.set_active = 0;
		assert_int_equal(registry_cert_register(&f->core, ACTOR, &in, &ref, &f->err), IOTP_OK);
		assert_int_equal(registry_cert_update_status(&f->core, ACTOR, ref.id,
		                                             REGISTRY_CERT_ACTIVE, &f->err),
		                 IOTP_ERR_STATE);
		up.new_status = "ACTIVE";
		assert_int_equal(registry_ca_update(&f->core, ACTOR, &up, &f->err), IOTP_OK);
		assert_int_equal(registry_cert_update_status(&f->core, ACTOR, ref.id,
		                                             REGISTRY_CERT_ACTIVE, &f->err),
		                 IOTP_OK);
	}
	{
		struct registry_cert_list l = {0};

		assert_int_equal(registry_cert_list(&f->core, caid, 1, NULL, &l, &f->err), IOTP_OK);
		assert_int_equal(l.count, 3);
		registry_cert_list_cleanup(&l);
		assert_int_equal(registry_cert_list(&f->core, NULL, 1, NULL, &l, &f->err), IOTP_OK);
		assert_int_equal(l.count, 4);
		registry_cert_list_cleanup(&l);
	}
	assert_int_equal(fx_events(f, "cert.register", NULL), 4);
	assert_int_equal(fx_foreign_events(f), 0);
	free(ext_pem);
	free(stranger_pem);
	free(dev1);
	free(dev2);
	free(dev3);
	free(lost);
	pki_ca_cleanup(&ext);
	pki_ca_cleanup(&stranger);
}

static void ca_update_delete(void **state)
{
	struct fx *f = *state;
	struct pki_ca ext;
	struct registry_ca ca = {0};
	struct registry_ref ref;
	char caid[65], *dev, *before;
	int64_t ev;

	fx_make_root("Vendor CA", &ext);
	register_ext(f, &ext, 1, caid);
	dev = fx_issue_pem(&ext, "dev", 30);
	{
		struct registry_cert_register in = {.cert_pem = dev, .set_active = 1};

		assert_int_equal(registry_cert_register(&f->core, ACTOR, &in, &ref, &f->err), IOTP_OK);
	}
	{
		json_t *cfg = json_pack("{s:s, s:s}", "templateBody", "{}", "roleArn",
		                        "arn:aws:iam::123456789012:role/JITP");
		struct registry_ca_update up = {.id = caid, .new_auto_registration = "ENABLE",
		                                .registration_config = cfg};

		assert_int_equal(registry_ca_update(&f->core, ACTOR, &up, &f->err), IOTP_OK);
		ev = fx_events(f, "cacert.update", NULL);
		assert_int_equal(registry_ca_update(&f->core, ACTOR, &up, &f->err), IOTP_OK);
		assert_int_equal(fx_events(f, "cacert.update", NULL), ev);
		json_decref(cfg);
	}
	assert_int_equal(registry_ca_describe(&f->core, caid, &ca, &f->err), IOTP_OK);
	assert_true(ca.auto_registration);
	assert_string_equal(json_string_value(json_object_get(ca.registration_config, "roleArn")),
	                    "arn:aws:iam::123456789012:role/JITP");
	assert_int_equal(ca.customer_version, 2);
	registry_ca_cleanup(&ca);
	{
		struct registry_ca_update up = {.id = caid, .remove_auto_registration = 1};

		assert_int_equal(registry_ca_update(&f->core, ACTOR, &up, &f->err), IOTP_OK);
		up.new_status = "BROKEN";
		assert_int_equal(registry_ca_update(&f->core, ACTOR, &up, &f->err), IOTP_ERR_INVALID);
	}
	assert_int_equal(registry_ca_describe(&f->core, caid, &ca, &f->err), IOTP_OK);
	assert_false(ca.auto_registration);
	assert_null(ca.registration_config);
	registry_ca_cleanup(&ca);

	/* A JITP template by name, and the list filtered by it. */
	assert_int_equal(store_exec(f->core.store,
	                            "INSERT INTO provisioning_templates (name, id, created, updated) "
	                            "VALUES ('myxtpl', 'tpl-1', 0, 0)",
	                            NULL, 0, NULL, NULL, &f->err),
	                 IOTP_OK);
	{
		json_t *cfg = json_pack("{s:s}", "templateName", "myxtpl");
		struct registry_ca_update up = {.id = caid, .registration_config = cfg};
		struct registry_ca_list l = {0};

		assert_int_equal(registry_ca_update(&f->core, ACTOR, &up, &f->err), IOTP_OK);
		json_decref(cfg);
		assert_int_equal(registry_ca_list(&f->core, 0, "myxtpl", NULL, &l, &f->err), IOTP_OK);
		assert_int_equal(l.count, 1);
		assert_string_equal(l.items[0].id, caid);
		registry_ca_list_cleanup(&l);
		/* '_' is literal, not LIKE's any-character. */
		assert_int_equal(registry_ca_list(&f->core, 0, "my_tpl", NULL, &l, &f->err), IOTP_OK);
		assert_int_equal(l.count, 0);
		registry_ca_list_cleanup(&l);
	}

	/* ACTIVE: deactivate first. */
	before = fx_dump(f);
	assert_int_equal(registry_ca_delete(&f->core, ACTOR, caid, &f->err), IOTP_ERR_STATE);
	{
		char *after = fx_dump(f);

		assert_string_equal(before, after);
		free(after);
		free(before);
	}
	{
		struct registry_ca_update up = {.id = caid, .new_status = "INACTIVE"};

		assert_int_equal(registry_ca_update(&f->core, ACTOR, &up, &f->err), IOTP_OK);
	}
	/* Certificates still registered under it: refused, nothing changes. */
	before = fx_dump(f);
	assert_int_equal(registry_ca_delete(&f->core, ACTOR, caid, &f->err), IOTP_ERR_CONFLICT);
	{
		char *after = fx_dump(f);

		assert_string_equal(before, after);
		free(after);
		free(before);
	}
	assert_int_equal(registry_cert_update_status(&f->core, ACTOR, ref.id, REGISTRY_CERT_INACTIVE,
	                                             &f->err),
	                 IOTP_OK);
	assert_int_equal(registry_cert_delete(&f->core, ACTOR, ref.id, 0, &f->err), IOTP_OK);
	assert_int_equal(registry_ca_delete(&f->core, ACTOR, caid, &f->err), IOTP_OK);
	assert_int_equal(registry_ca_describe(&f->core, caid, &ca, &f->err), IOTP_ERR_NOT_FOUND);
	assert_int_equal(fx_events(f, "cacert.delete", NULL), 1);
	assert_int_equal(fx_foreign_events(f), 0);
	free(dev);
	pki_ca_cleanup(&ext);
}

int suite_ca(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(regcode, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(ca_register, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(cert_register, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(ca_update_delete, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests_name("registry.ca", tests, NULL, NULL);
}
