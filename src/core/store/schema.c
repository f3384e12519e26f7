/*
 * The schema, as an ordered list of migrations. Migration N (1-based) brings
 * the schema from version N-1 to N. Never edit a migration that has shipped:
 * append a new one. Statements are separated by ";\n" and written in the
 * portable SQL of store.h; `@SERIAL@` becomes the backend's monotonic
 * integer primary key.
 *
 * Conventions: names and ids are TEXT; times are epoch seconds (INTEGER)
 * except events.ts (milliseconds); JSON documents are TEXT. References to
 * other resources by ARN keep only the resource part of the ARN
 * ("cert/<id>", "thinggroup/<name>"), so a change of the configured region
 * or account id does not orphan them.
 */
#include "core/store/schema.h"

static const char migration_1[] =
	"CREATE TABLE meta (\n"
	"  key TEXT PRIMARY KEY,\n"
	"  value TEXT NOT NULL\n"
	");\n"
	/* CA certificates: iotprov's own (origin ROOT, ISSUING) and registered
	 * external ones (EXTERNAL). */
	"CREATE TABLE cas (\n"
	"  id TEXT PRIMARY KEY,\n"
	"  pem TEXT NOT NULL,\n"
	"  subject TEXT NOT NULL,\n"
	"  status TEXT NOT NULL,\n"
	"  auto_registration TEXT NOT NULL DEFAULT 'DISABLE',\n"
	"  mode TEXT NOT NULL DEFAULT 'DEFAULT',\n"
	"  origin TEXT NOT NULL DEFAULT 'EXTERNAL',\n"
	"  registration_config TEXT,\n"
	"  not_before INTEGER NOT NULL,\n"
	"  not_after INTEGER NOT NULL,\n"
	"  generation INTEGER NOT NULL DEFAULT 1,\n"
	"  customer_version INTEGER NOT NULL DEFAULT 1,\n"
	"  created INTEGER NOT NULL,\n"
	"  updated INTEGER NOT NULL\n"
	");\n"
	/* Device and claim certificates. ca_id NULL: registered without a CA. */
	"CREATE TABLE certificates (\n"
	"  id TEXT PRIMARY KEY,\n"
	"  pem TEXT NOT NULL,\n"
	"  ca_id TEXT REFERENCES cas(id),\n"
	"  status TEXT NOT NULL,\n"
	"  mode TEXT NOT NULL DEFAULT 'DEFAULT',\n"
	"  subject TEXT NOT NULL DEFAULT '',\n"
	"  serial TEXT NOT NULL DEFAULT '',\n"
	"  not_before INTEGER NOT NULL,\n"
	"  not_after INTEGER NOT NULL,\n"
	"  purpose TEXT NOT NULL DEFAULT 'DEVICE',\n"
	"  template_name TEXT,\n"
	"  generation INTEGER NOT NULL DEFAULT 1,\n"
	"  customer_version INTEGER NOT NULL DEFAULT 1,\n"
	"  created INTEGER NOT NULL,\n"
	"  updated INTEGER NOT NULL\n"
	");\n"
	"CREATE INDEX certificates_ca_id ON certificates(ca_id);\n"
	"CREATE TABLE thing_types (\n"
	"  name TEXT PRIMARY KEY,\n"
	"  id TEXT NOT NULL UNIQUE,\n"
	"  description TEXT,\n"
	"  searchable_attributes TEXT,\n"
	"  deprecated INTEGER NOT NULL DEFAULT 0,\n"
	"  deprecated_at INTEGER,\n"
	"  created INTEGER NOT NULL\n"
	");\n"
	"CREATE TABLE things (\n"
	"  name TEXT PRIMARY KEY,\n"
	"  id TEXT NOT NULL UNIQUE,\n"
	"  type_name TEXT REFERENCES thing_types(name),\n"
	"  attributes TEXT NOT NULL DEFAULT '{}',\n"
	"  version INTEGER NOT NULL DEFAULT 1,\n"
	"  created INTEGER NOT NULL,\n"
	"  updated INTEGER NOT NULL\n"
	");\n"
	"CREATE INDEX things_type_name ON things(type_name);\n"
	"CREATE TABLE thing_groups (\n"
	"  name TEXT PRIMARY KEY,\n"
	"  id TEXT NOT NULL UNIQUE,\n"
	"  parent_name TEXT REFERENCES thing_groups(name),\n"
	"  description TEXT,\n"
	"  attributes TEXT NOT NULL DEFAULT '{}',\n"
	"  version INTEGER NOT NULL DEFAULT 1,\n"
	"  created INTEGER NOT NULL\n"
	");\n"
	"CREATE INDEX thing_groups_parent ON thing_groups(parent_name);\n"
	"CREATE TABLE thing_group_members (\n"
	"  group_name TEXT NOT NULL REFERENCES thing_groups(name),\n"
	"  thing_name TEXT NOT NULL REFERENCES things(name),\n"
	"  PRIMARY KEY (group_name, thing_name)\n"
	");\n"
	"CREATE INDEX thing_group_members_thing ON thing_group_members(thing_name);\n"
	"CREATE TABLE policies (\n"
	"  name TEXT PRIMARY KEY,\n"
	"  default_version INTEGER NOT NULL DEFAULT 1,\n"
	"  next_version INTEGER NOT NULL DEFAULT 2,\n"
	"  created INTEGER NOT NULL,\n"
	"  updated INTEGER NOT NULL\n"
	");\n"
	"CREATE TABLE policy_versions (\n"
	"  policy_name TEXT NOT NULL REFERENCES policies(name),\n"
	"  version INTEGER NOT NULL,\n"
	"  document TEXT NOT NULL,\n"
	"  created INTEGER NOT NULL,\n"
	"  PRIMARY KEY (policy_name, version)\n"
	");\n"
	/* target: "cert/<id>" or "thinggroup/<name>" */
	"CREATE TABLE policy_targets (\n"
	"  policy_name TEXT NOT NULL REFERENCES policies(name),\n"
	"  target TEXT NOT NULL,\n"
	"  PRIMARY KEY (policy_name, target)\n"
	");\n"
	"CREATE INDEX policy_targets_target ON policy_targets(target);\n"
	/* principal: "cert/<id>" */
	"CREATE TABLE thing_principals (\n"
	"  thing_name TEXT NOT NULL REFERENCES things(name),\n"
	"  principal TEXT NOT NULL,\n"
	"  PRIMARY KEY (thing_name, principal)\n"
	");\n"
	"CREATE INDEX thing_principals_principal ON thing_principals(principal);\n"
	"CREATE TABLE provisioning_templates (\n"
	"  name TEXT PRIMARY KEY,\n"
	"  id TEXT NOT NULL UNIQUE,\n"
	"  description TEXT,\n"
	"  type TEXT NOT NULL DEFAULT 'FLEET_PROVISIONING',\n"
	"  enabled INTEGER NOT NULL DEFAULT 0,\n"
	"  role_arn TEXT,\n"
	"  pre_provisioning_hook TEXT,\n"
	"  default_version INTEGER NOT NULL DEFAULT 1,\n"
	"  next_version INTEGER NOT NULL DEFAULT 2,\n"
	"  created INTEGER NOT NULL,\n"
	"  updated INTEGER NOT NULL\n"
	");\n"
	"CREATE TABLE template_versions (\n"
	"  template_name TEXT NOT NULL REFERENCES provisioning_templates(name),\n"
	"  version INTEGER NOT NULL,\n"
	"  body TEXT NOT NULL,\n"
	"  created INTEGER NOT NULL,\n"
	"  PRIMARY KEY (template_name, version)\n"
	");\n"
	/* role: admin | operator | installer; templates: installer's allowed
	 * template names, comma-separated (NULL: none). */
	"CREATE TABLE access_keys (\n"
	"  id TEXT PRIMARY KEY,\n"
	"  secret TEXT NOT NULL,\n"
	"  role TEXT NOT NULL,\n"
	"  templates TEXT,\n"
	"  status TEXT NOT NULL DEFAULT 'ACTIVE',\n"
	"  description TEXT,\n"
	"  created INTEGER NOT NULL,\n"
	"  last_used INTEGER\n"
	");\n"
	"CREATE TABLE events (\n"
	"  id @SERIAL@,\n"
	"  ts INTEGER NOT NULL,\n"
	"  actor TEXT NOT NULL,\n"
	"  action TEXT NOT NULL,\n"
	"  object TEXT NOT NULL,\n"
	"  detail TEXT\n"
	")";

/* Registry indexes: thing attributes as rows so that ListThings can filter
 * by attribute through an index (things.attributes stays the document that
 * describe and list return), and keys for paging things by type and
 * certificates and CAs by creation date. */
static const char migration_2[] =
	"CREATE TABLE thing_attributes (\n"
	"  thing_name TEXT NOT NULL REFERENCES things(name),\n"
	"  name TEXT NOT NULL,\n"
	"  value TEXT NOT NULL,\n"
	"  PRIMARY KEY (thing_name, name)\n"
	");\n"
	"CREATE INDEX thing_attributes_name_value ON thing_attributes(name, value, thing_name);\n"
	"CREATE INDEX things_type_name_name ON things(type_name, name);\n"
	"CREATE INDEX certificates_created ON certificates(created, id);\n"
	"CREATE INDEX certificates_ca_created ON certificates(ca_id, created, id);\n"
	"CREATE INDEX cas_subject ON cas(subject);\n"
	"CREATE INDEX cas_created ON cas(created, id)";

/* Fleet provisioning: certificate ownership tokens. Only the SHA-256 of a
 * token is kept (token_hash, lowercase hex), so a copy of the store cannot
 * claim a certificate. cert_id is the certificate the token was issued
 * with, claim_cert_id the claim certificate that asked for it and
 * claim_template the template a trusted-user claim is limited to (NULL for
 * an ordinary claim). A token is consumed by setting used = 1 in the
 * transaction that provisions the certificate. No foreign key to
 * certificates: deleting a certificate must not depend on its tokens. The
 * (purpose, not_after) index serves the sweep of expired claim certificates. */
static const char migration_3[] =
	"CREATE TABLE prov_tokens (\n"
	"  token_hash TEXT PRIMARY KEY,\n"
	"  cert_id TEXT NOT NULL,\n"
	"  claim_cert_id TEXT NOT NULL,\n"
	"  claim_template TEXT,\n"
	"  used INTEGER NOT NULL DEFAULT 0,\n"
	"  expires INTEGER NOT NULL,\n"
	"  created INTEGER NOT NULL\n"
	");\n"
	"CREATE INDEX prov_tokens_cert ON prov_tokens(cert_id);\n"
	"CREATE INDEX prov_tokens_expires ON prov_tokens(expires);\n"
	"CREATE INDEX certificates_purpose ON certificates(purpose, not_after)";

/* Bulk registration tasks (StartThingRegistrationTask), their per-line
 * reports, authorized public-key lists and certificates waiting to retire
 * after an EST re-enrolment (migration 4, bulk.h and authlist.h).
 * bulk_tasks.cursor_offset/cursor_line say how much of the input file has
 * been applied; they move in the same transaction as the lines they cover,
 * so a task resumes exactly where it stopped. */
static const char migration_4[] =
	"CREATE TABLE bulk_tasks (\n"
	"  id TEXT PRIMARY KEY,\n"
	"  status TEXT NOT NULL,\n"
	"  template_body TEXT NOT NULL,\n"
	"  input_bucket TEXT NOT NULL,\n"
	"  input_key TEXT NOT NULL,\n"
	"  input_format TEXT NOT NULL DEFAULT 'jsonl',\n"
	"  role_arn TEXT,\n"
	"  actor TEXT NOT NULL,\n"
	"  message TEXT,\n"
	"  input_size INTEGER NOT NULL DEFAULT 0,\n"
	"  cursor_offset INTEGER NOT NULL DEFAULT 0,\n"
	"  cursor_line INTEGER NOT NULL DEFAULT 0,\n"
	"  success_count INTEGER NOT NULL DEFAULT 0,\n"
	"  failure_count INTEGER NOT NULL DEFAULT 0,\n"
	"  created INTEGER NOT NULL,\n"
	"  updated INTEGER NOT NULL\n"
	");\n"
	"CREATE INDEX bulk_tasks_status ON bulk_tasks(status, created, id);\n"
	"CREATE INDEX bulk_tasks_created ON bulk_tasks(created, id);\n"
	/* kind: RESULTS | ERRORS; body: one JSON object (a report line). */
	"CREATE TABLE bulk_reports (\n"
	"  task_id TEXT NOT NULL REFERENCES bulk_tasks(id),\n"
	"  kind TEXT NOT NULL,\n"
	"  line INTEGER NOT NULL,\n"
	"  body TEXT NOT NULL,\n"
	"  PRIMARY KEY (task_id, kind, line)\n"
	");\n"
	"CREATE TABLE authlists (\n"
	"  name TEXT PRIMARY KEY,\n"
	"  template_name TEXT NOT NULL,\n"
	"  description TEXT,\n"
	"  created INTEGER NOT NULL,\n"
	"  updated INTEGER NOT NULL\n"
	");\n"
	/* fingerprint: lowercase hex SHA-256 of the DER SubjectPublicKeyInfo;
	 * consumed: epoch seconds of the one enrolment it allowed, NULL while
	 * unused; cert_id: the certificate issued then. */
	"CREATE TABLE authlist_keys (\n"
	"  fingerprint TEXT PRIMARY KEY,\n"
	"  list_name TEXT NOT NULL REFERENCES authlists(name),\n"
	"  device_id TEXT NOT NULL,\n"
	"  attributes TEXT NOT NULL DEFAULT '{}',\n"
	"  consumed INTEGER,\n"
	"  cert_id TEXT,\n"
	"  created INTEGER NOT NULL\n"
	");\n"
	"CREATE INDEX authlist_keys_list ON authlist_keys(list_name, device_id);\n"
	/* EST re-enrolment: old_cert_id goes INACTIVE once new_cert_id is
	 * first used. */
	"CREATE TABLE cert_retirements (\n"
	"  new_cert_id TEXT PRIMARY KEY,\n"
	"  old_cert_id TEXT NOT NULL,\n"
	"  created INTEGER NOT NULL\n"
	")";

/* Fewer B-trees to update per registration (migration 5). Certificate ids
 * are SHA-256 digests, so every index keyed by one is written at a random
 * place: past a few hundred thousand certificates each such index costs a
 * page written per attachment. policy_targets had two, (policy_name,
 * target) and (target); now one, (target, policy_name), which serves the
 * lookups by target and the uniqueness, while a policy's targets are found
 * and paged through (policy_name, id), in the order they were attached,
 * written at the end. certificates_ca_id and things_type_name repeat the
 * first column of certificates_ca_created and things_type_name_name. */
static const char migration_5[] =
	"CREATE TABLE policy_targets_v5 (\n"
	"  id @SERIAL@,\n"
	"  policy_name TEXT NOT NULL REFERENCES policies(name),\n"
	"  target TEXT NOT NULL,\n"
	"  UNIQUE (target, policy_name)\n"
	");\n"
	"INSERT INTO policy_targets_v5 (policy_name, target) "
	"SELECT policy_name, target FROM policy_targets ORDER BY policy_name, target;\n"
	"DROP TABLE policy_targets;\n"
	"ALTER TABLE policy_targets_v5 RENAME TO policy_targets;\n"
	"CREATE INDEX policy_targets_policy ON policy_targets(policy_name, id);\n"
	"DROP INDEX certificates_ca_id;\n"
	"DROP INDEX things_type_name";

const char *const store_migrations[] = {
	migration_1,
	migration_2,
	migration_3,
	migration_4,
	migration_5,
};
const int store_migration_count = (int)(sizeof(store_migrations) / sizeof(store_migrations[0]));
