/*
 * Access keys: the credentials operators and installers sign API requests
 * with (AWS SigV4), kept in the store's access_keys table, and the rule that
 * says which role may call which API operation.
 *
 * An access key is an id ("AKIA" + 16 characters of base32, like an AWS key
 * id) and a 40-character secret. SigV4 needs the secret itself to recompute
 * signatures, so the store holds it as written (protect the store file the
 * way you protect the CA keys: mode 0600 under the data dir). The secret is
 * returned once, by accesskey_create; every other function leaves it out or
 * wipes it.
 *
 * Roles, from least to most powerful:
 *   installer  only CreateProvisioningClaim, and only for the provisioning
 *              templates named when the key was created;
 *   operator   the registry, certificates, policies, provisioning
 *              templates and bulk tasks; CA certificates read-only
 *              (Describe/List): registering, updating or deleting a CA and
 *              GetRegistrationCode need admin;
 *   admin      everything, including access keys and anything not listed
 *              in the authorization table (unknown operations fail closed).
 *
 * This header is the single API for keys: iotprovd authenticates with it and
 * `iotprov key create|list|disable` manages keys with it.
 */
#ifndef IOTP_ACCESSKEY_H
#define IOTP_ACCESSKEY_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "core/core.h"

#define ACCESSKEY_ID_LEN 20      /* "AKIA" + 16 base32 characters */
#define ACCESSKEY_SECRET_LEN 40
#define ACCESSKEY_TEMPLATES_MAX 1024 /* comma-separated template names */
#define ACCESSKEY_DESCRIPTION_MAX 256
#define ACCESSKEY_TEMPLATE_NAME_MAX 36 /* AWS templateName limit */

/* Ordered: a role may do everything a smaller one may (except that an
 * installer is further limited to its templates). */
enum accesskey_role {
	ACCESSKEY_ROLE_INSTALLER = 1,
	ACCESSKEY_ROLE_OPERATOR = 2,
	ACCESSKEY_ROLE_ADMIN = 3
};

struct accesskey {
	char id[ACCESSKEY_ID_LEN + 1];
	/* Filled by accesskey_create and accesskey_lookup only; "" elsewhere.
	 * accesskey_cleanup wipes it. */
	char secret[ACCESSKEY_SECRET_LEN + 1];
	enum accesskey_role role;
	/* Installer keys: the allowed template names, comma-separated; "" for
	 * other roles. */
	char templates[ACCESSKEY_TEMPLATES_MAX + 1];
	char description[ACCESSKEY_DESCRIPTION_MAX + 1];
	int active;          /* 0 once disabled */
	int64_t created;     /* epoch seconds */
	int64_t last_used;   /* epoch seconds, 0 when never used */
};

/* Wipes the secret. The struct holds no heap memory; call this on every
 * struct that held a secret. NULL is a no-op. */
void accesskey_cleanup(struct accesskey *key);

/* "admin", "operator", "installer" (exact, lowercase). IOTP_ERR_INVALID
 * with a message listing the roles otherwise. */
iotp_rc accesskey_role_parse(const char *s, enum accesskey_role *out, struct iotp_err *err);
/* Static name of a role; "unknown" for a value outside the enum. */
const char *accesskey_role_name(enum accesskey_role role);

/* 1 when id has the shape of an iotprov key id (AKIA + 16 of A-Z2-7). */
int accesskey_id_valid(const char *id);

/* Creates a key. templates: comma-separated provisioning template names
 * ([0-9A-Za-z_-]{1,36} each, at least one), required for installer keys and
 * refused (IOTP_ERR_INVALID) for the other roles; NULL or "" means none.
 * description may be NULL. actor ("key:AKIA..", "system", "cli") is recorded
 * with the accesskey.create event. On success *out holds the new key
 * including its secret, which is never retrievable again except through
 * accesskey_lookup: show it once, then accesskey_cleanup(out). */
iotp_rc accesskey_create(struct iotp_core *core, const char *actor, enum accesskey_role role,
                         const char *templates, const char *description,
                         struct accesskey *out, struct iotp_err *err);

/* Finds a key by id, secret included, for SigV4 verification. Disabled keys
 * are returned too (active == 0): the caller refuses them.
 * IOTP_ERR_NOT_FOUND when no key has that id. Wipe *out with
 * accesskey_cleanup after use. */
iotp_rc accesskey_lookup(struct iotp_core *core, const char *id, struct accesskey *out,
                         struct iotp_err *err);

/* Calls fn for every key, oldest first, with the secret left empty. The
 * struct is borrowed for the duration of the call. fn returns 0 to go on,
 * nonzero to stop (not an error). */
typedef int (*accesskey_list_fn)(void *ud, const struct accesskey *key);
iotp_rc accesskey_list(struct iotp_core *core, accesskey_list_fn fn, void *ud,
                       struct iotp_err *err);

/* Disables a key: requests signed with it are refused from now on.
 * Disabling a disabled key succeeds without a new event. NOT_FOUND when the
 * key does not exist. */
iotp_rc accesskey_disable(struct iotp_core *core, const char *actor, const char *id,
                          struct iotp_err *err);

/* Records that the key was used at `now`. To keep the request path free of
 * writes, the stored value is only updated when it is older than
 * ACCESSKEY_TOUCH_INTERVAL seconds (pass the last_used from the lookup), so
 * last_used has that granularity. */
#define ACCESSKEY_TOUCH_INTERVAL 60
iotp_rc accesskey_touch(struct iotp_core *core, const struct accesskey *key, int64_t now,
                        struct iotp_err *err);

/* The least role an API operation (the botocore operation name, e.g.
 * "CreateThing") needs. Operations missing from the table need admin. */
enum accesskey_role accesskey_min_role(const char *operation);

/* Authorization of one call: IOTP_OK, or IOTP_ERR_DENIED with a message
 * naming the operation and the role. template_name is the provisioning
 * template the call acts on (for CreateProvisioningClaim), NULL when the
 * operation has none; an installer key must list it. A disabled key is
 * denied. Pure function: no store access. */
iotp_rc accesskey_authorize(const struct accesskey *key, const char *operation,
                            const char *template_name, struct iotp_err *err);

#endif
