/*
 * Fixtures of the provisioning-engine tests (unit.provision, and
 * unit.webhook which compiles helpers.c too): a core over a fresh SQLite
 * file in a temporary directory with an issuing CA, a dump of every table
 * (sqlite_sequence included) to prove a failure changed nothing, and
 * makers for CSRs, certificates, templates and claim certificates.
 */
#ifndef IOTP_TEST_PROVISION_HELPERS_H
#define IOTP_TEST_PROVISION_HELPERS_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/conf.h"
#include "core/core.h"
#include "core/provision.h"
#include "core/registry.h"

#define ACTOR "key:AKIATEST"

struct fx {
	char dir[256];
	char db[300];
	struct iotp_conf conf;
	struct iotp_core core;
	struct iotp_err err;
};

int fx_setup(void **state);
int fx_teardown(void **state);

/* A second core on the same store (for another thread); core_close it. */
void fx_core_open(struct fx *f, struct iotp_core *out);

/* Every row of every table, as text; malloc'ed. */
char *fx_dump(struct fx *f);
int64_t fx_int(struct fx *f, const char *sql);
/* A text query's first column, or NULL; malloc'ed. */
char *fx_text(struct fx *f, const char *sql, const char *param);
/* Runs a statement that must succeed. */
void fx_exec(struct fx *f, const char *sql);

/* A test root CA (new P-256 key). */
void fx_make_root(const char *cn, struct pki_ca *out);
char *fx_cert_pem(X509 *x);
/* An end-entity certificate for a new key, signed by ca, subject CN (and
 * O when org is not NULL); PEM malloc'ed. */
char *fx_issue_pem(const struct pki_ca *ca, const char *cn, const char *org, int days);
/* A PEM CSR for a new P-256 key; malloc'ed. */
char *fx_csr_pem(const char *cn);
/* A certificate issued by the fixture's CA and stored with status
 * (registry_cert_create_from_csr); id copied to id. */
void fx_cert(struct fx *f, enum registry_cert_status status, char id[65]);

/* Creates a provisioning template (type "FLEET_PROVISIONING" or "JITP"). */
void fx_template(struct fx *f, const char *name, const char *type, int enabled,
                 const char *body, const json_t *hook);
/* A policy, thing type or thing group that templates name. */
void fx_policy(struct fx *f, const char *name);
void fx_type(struct fx *f, const char *name);
void fx_group(struct fx *f, const char *name);

/* A claim certificate the tests use as the MQTT claimant: an ACTIVE
 * certificate created by the registry. */
void fx_claimant(struct fx *f, char id[65]);

/* The fleet template of the tests: parameter SerialNumber, thing
 * "dev-<SerialNumber>" in group "fleet" with attribute serial, the
 * certificate by AWS::IoT::Certificate::Id ACTIVE, policy "fleet-policy",
 * DeviceConfiguration {"Fallback": "..."}. */
extern const char FX_FLEET_BODY[];
/* A JITP template: thing named by the certificate's CN (attribute via =
 * jitp), certificate ACTIVE, policy "fleet-policy". */
extern const char FX_JITP_BODY[];

/* Groups of tests, one per file. */
int suite_apply(void);
int suite_template(void);
int suite_fleet(void);

#endif
