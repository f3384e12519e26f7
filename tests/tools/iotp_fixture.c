/*
 * iotp_fixture: registry changes for the broker e2e tests, made through
 * the core directly on a data dir (its own store connection, as another
 * iotprovd would be). The broker must notice every change through the
 * store alone, which is what the tests check. Prints a JSON object on
 * success (exit 0), the error on stderr otherwise (exit 1).
 *
 * usage: iotp_fixture DATA_DIR COMMAND ARGS...
 *   cert-csr CSR_FILE STATUS            -> {certificateId, certificatePem}
 *   cert-keys STATUS                    -> {certificateId, certificatePem, privateKey}
 *   cert-status ID STATUS
 *   cert-describe ID                    -> {status}
 *   policy-create NAME DOCUMENT
 *   policy-version NAME DOCUMENT        (new default version)
 *   policy-attach NAME TARGET           (cert/<id> or thinggroup/<name>)
 *   thing-create NAME [ATTRIBUTES_JSON]
 *   thing-attach THING CERT_ID
 *   thing-describe NAME                 -> {thingName, attributes}
 *   group-create NAME [PARENT]
 *   group-add GROUP THING
 *   regcode                             -> {registrationCode}
 *   ca-register CA_FILE VERIF_FILE|- ACTIVE|INACTIVE ENABLE|DISABLE [CONFIG_JSON]
 *                                       -> {certificateId}
 *   ca-status ID ACTIVE|INACTIVE
 *   template-create NAME FLEET_PROVISIONING|JITP BODY_FILE
 *   claim-create TEMPLATE               -> {certificateId, certificatePem, privateKey}
 *   events ACTION                       -> {count}
 *   broker-conf PLUGIN LISTEN OUT_FILE CAPATH [USER]
 *                                       (broker_conf_write + broker_capath_sync)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/conf.h"
#include "common/util.h"
#include "core/broker_conf.h"
#include "core/core.h"
#include "core/provision.h"
#include "core/registry.h"

#define ACTOR "key:fixture"

static int print(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);

	printf("%s\n", s != NULL ? s : "{}");
	free(s);
	json_decref(o);
	return 0;
}

static char *slurp(const char *path)
{
	char *s = NULL;
	size_t n;

	if (util_read_file(path, 1 << 20, &s, &n, NULL) != IOTP_OK)
		return NULL;
	return s;
}

static int count_cb(void *ud, const struct store_row *row)
{
	(void)row;
	(*(int *)ud)++;
	return 0;
}

static iotp_rc run(struct iotp_core *core, int argc, char **argv, struct iotp_err *err)
{
	const char *cmd = argv[0];
	iotp_rc rc = IOTP_ERR_INVALID;

#define NEED(n) \
	do { \
		if (argc < (n) + 1) \
			return iotp_err_set(err, IOTP_ERR_INVALID, "%s: missing arguments", cmd); \
	} while (0)

	if (strcmp(cmd, "cert-csr") == 0 || strcmp(cmd, "cert-keys") == 0) {
		struct registry_cert_created c = {0};
		enum registry_cert_status st;
		int keys = strcmp(cmd, "cert-keys") == 0;
		char *csr = NULL;

		NEED(keys ? 1 : 2);
		if ((rc = registry_cert_status_parse(argv[keys ? 1 : 2], &st, err)) != IOTP_OK)
			return rc;
		if (keys) {
			rc = registry_cert_create_with_keys(core, ACTOR, st, &c, err);
		} else {
			if ((csr = slurp(argv[1])) == NULL)
				return iotp_err_set(err, IOTP_ERR_IO, "cannot read %s", argv[1]);
			rc = registry_cert_create_from_csr(core, ACTOR, csr, strlen(csr), st, &c, err);
		}
		if (rc == IOTP_OK)
			print(json_pack("{s:s, s:s, s:s?}", "certificateId", c.id, "certificatePem", c.pem,
			                "privateKey", c.private_key_pem));
		registry_cert_created_cleanup(&c);
		free(csr);
	} else if (strcmp(cmd, "cert-status") == 0) {
		enum registry_cert_status st;

		NEED(2);
		if ((rc = registry_cert_status_parse(argv[2], &st, err)) == IOTP_OK &&
		    (rc = registry_cert_update_status(core, ACTOR, argv[1], st, err)) == IOTP_OK)
			print(json_object());
	} else if (strcmp(cmd, "cert-describe") == 0) {
		struct registry_cert c = {0};

		NEED(1);
		if ((rc = registry_cert_describe(core, argv[1], &c, err)) == IOTP_OK)
			print(json_pack("{s:s, s:s}", "status", registry_cert_status_name(c.status),
			                "caCertificateId", c.ca_id));
		registry_cert_cleanup(&c);
	} else if (strcmp(cmd, "policy-create") == 0) {
		struct registry_policy p = {0};

		NEED(2);
		if ((rc = registry_policy_create(core, ACTOR, argv[1], argv[2], &p, err)) == IOTP_OK)
			print(json_object());
		registry_policy_cleanup(&p);
	} else if (strcmp(cmd, "policy-version") == 0) {
		struct registry_policy_version v = {0};

		NEED(2);
		if ((rc = registry_policy_version_create(core, ACTOR, argv[1], argv[2], 1, &v, err)) ==
		    IOTP_OK)
			print(json_object());
		registry_policy_version_cleanup(&v);
	} else if (strcmp(cmd, "policy-attach") == 0) {
		NEED(2);
		if ((rc = registry_policy_attach(core, ACTOR, argv[1], argv[2], err)) == IOTP_OK)
			print(json_object());
	} else if (strcmp(cmd, "thing-create") == 0) {
		struct registry_thing_spec spec = {.name = argv[1]};
		struct registry_ref ref = {0};
		json_t *attrs = NULL;

		NEED(1);
		if (argc > 2 && (attrs = json_loads(argv[2], 0, NULL)) == NULL)
			return iotp_err_set(err, IOTP_ERR_INVALID, "attributes are not JSON");
		spec.attributes = attrs;
		if ((rc = registry_thing_create(core, ACTOR, &spec, &ref, err)) == IOTP_OK)
			print(json_object());
		json_decref(attrs);
	} else if (strcmp(cmd, "thing-attach") == 0) {
		char principal[PKI_CERT_ID_LEN + 8];

		NEED(2);
		snprintf(principal, sizeof(principal), "cert/%s", argv[2]);
		if ((rc = registry_thing_attach_principal(core, ACTOR, argv[1], principal, err)) ==
		    IOTP_OK)
			print(json_object());
	} else if (strcmp(cmd, "thing-describe") == 0) {
		struct registry_thing t = {0};

		NEED(1);
		if ((rc = registry_thing_describe(core, argv[1], &t, err)) == IOTP_OK)
			print(json_pack("{s:s, s:O}", "thingName", t.name, "attributes", t.attributes));
		registry_thing_cleanup(&t);
	} else if (strcmp(cmd, "group-create") == 0) {
		struct registry_thing_group_spec spec = {.name = argv[1]};
		struct registry_ref ref = {0};

		NEED(1);
		spec.parent_name = argc > 2 ? argv[2] : NULL;
		if ((rc = registry_thing_group_create(core, ACTOR, &spec, &ref, err)) == IOTP_OK)
			print(json_object());
	} else if (strcmp(cmd, "group-add") == 0) {
		NEED(2);
		if ((rc = registry_thing_group_add_thing(core, ACTOR, argv[1], argv[2], err)) ==
		    IOTP_OK)
			print(json_object());
	} else if (strcmp(cmd, "regcode") == 0) {
		char code[65];

		if ((rc = registry_regcode_get(core, ACTOR, code, err)) == IOTP_OK)
			print(json_pack("{s:s}", "registrationCode", code));
	} else if (strcmp(cmd, "ca-register") == 0) {
		struct registry_ca_register in = {0};
		struct registry_ref ref = {0};
		char *ca = NULL, *verif = NULL;
		json_t *cfg = NULL;

		NEED(4);
		ca = slurp(argv[1]);
		if (strcmp(argv[2], "-") != 0)
			verif = slurp(argv[2]);
		if (argc > 5)
			cfg = json_loads(argv[5], 0, NULL);
		in.ca_pem = ca;
		in.verification_pem = verif;
		in.mode = verif != NULL ? "DEFAULT" : "SNI_ONLY";
		in.set_active = strcmp(argv[3], "ACTIVE") == 0;
		in.allow_auto_registration = strcmp(argv[4], "ENABLE") == 0;
		in.registration_config = cfg;
		if (ca == NULL)
			rc = iotp_err_set(err, IOTP_ERR_IO, "cannot read %s", argv[1]);
		else if ((rc = registry_ca_register(core, ACTOR, &in, &ref, err)) == IOTP_OK)
			print(json_pack("{s:s}", "certificateId", ref.id));
		free(ca);
		free(verif);
		json_decref(cfg);
	} else if (strcmp(cmd, "ca-status") == 0) {
		struct registry_ca_update up = {.id = argv[1]};

		NEED(2);
		up.new_status = argv[2];
		if ((rc = registry_ca_update(core, ACTOR, &up, err)) == IOTP_OK)
			print(json_object());
	} else if (strcmp(cmd, "template-create") == 0) {
		struct prov_template t = {0};
		struct registry_ref ref = {0};
		char *body;

		NEED(3);
		if ((body = slurp(argv[3])) == NULL)
			return iotp_err_set(err, IOTP_ERR_IO, "cannot read %s", argv[3]);
		util_strlcpy(t.name, argv[1], sizeof(t.name));
		util_strlcpy(t.type, argv[2], sizeof(t.type));
		t.enabled = 1;
		t.body = body;
		t.description = (char *)"";
		t.role_arn = (char *)"arn:aws:iam::123456789012:role/provisioning";
		if ((rc = prov_template_create(core, ACTOR, &t, &ref, err)) == IOTP_OK)
			print(json_object());
		free(body);
	} else if (strcmp(cmd, "claim-create") == 0) {
		struct prov_claim c = {0};

		NEED(1);
		if ((rc = prov_claim_create(core, ACTOR, argv[1], &c, err)) == IOTP_OK)
			print(json_pack("{s:s, s:s, s:s}", "certificateId", c.cert_id, "certificatePem",
			                c.cert_pem, "privateKey", c.private_key_pem));
		prov_claim_cleanup(&c);
	} else if (strcmp(cmd, "events") == 0) {
		struct store_val p[1];
		int n = 0;

		NEED(1);
		p[0] = SV_TEXT(argv[1]);
		if ((rc = store_exec(core->store, "SELECT id FROM events WHERE action = ?", p, 1,
		                     count_cb, &n, err)) == IOTP_OK)
			print(json_pack("{s:i}", "count", n));
	} else if (strcmp(cmd, "broker-conf") == 0) {
		char confpath[CONF_STR_MAX + 32];
		struct broker_conf_opts o = {0};
		int n = 0;

		NEED(4);
		snprintf(confpath, sizeof(confpath), "%s/iotprov.conf", core->conf->data_dir);
		o.plugin_path = argv[1];
		o.listen = argv[2];
		o.conf_path = confpath;
		o.capath = argv[4];
		o.user = argc > 5 ? argv[5] : NULL;
		if ((rc = broker_conf_write(core->conf, &o, argv[3], err)) == IOTP_OK &&
		    (rc = broker_capath_sync(core->store, core->conf, argv[4], &n, err)) == IOTP_OK)
			print(json_pack("{s:i}", "cas", n));
	} else {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "unknown command %s", cmd);
	}
#undef NEED
	return rc;
}

int main(int argc, char **argv)
{
	struct iotp_conf conf;
	struct iotp_core core;
	struct iotp_err err;
	char path[CONF_STR_MAX + 32];
	iotp_rc rc;

	if (argc < 3) {
		fprintf(stderr, "usage: iotp_fixture DATA_DIR COMMAND ARGS...\n");
		return 2;
	}
	conf_init(&conf, argv[1]);
	snprintf(path, sizeof(path), "%s/iotprov.conf", argv[1]);
	if ((rc = conf_load(&conf, path, &err)) != IOTP_OK ||
	    (rc = core_open(&core, &conf, &err)) != IOTP_OK) {
		fprintf(stderr, "iotp_fixture: %s\n", err.msg);
		return 1;
	}
	rc = run(&core, argc - 2, argv + 2, &err);
	core_close(&core);
	if (rc != IOTP_OK) {
		fprintf(stderr, "iotp_fixture: %s: %s\n", iotp_strerror(rc), err.msg);
		return 1;
	}
	return 0;
}
