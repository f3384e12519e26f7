/*
 * The store's integrity check (see check.h for the rules). Each rule is a
 * query whose rows are the offending objects, or, for certificates and
 * events, one ordered scan checked row by row in C. Rows stream through
 * callbacks, so memory stays flat whatever the store's size: only the CA
 * certificates (few) are held for the whole certificate scan.
 *
 * Problems are not errors. The only failures are a query that fails (the
 * store is unreadable) and running out of memory.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/util.h"
#include "core/check.h"
#include "core/pki.h"

/* Ancestors followed before a group's parent chain counts as a loop (the
 * registry allows 7 levels). A literal, for the query text. */
#define GROUP_DEPTH_LIMIT 16
#define STR_(x) #x
#define STR(x) STR_(x)

/* The schema's REFERENCES clauses. tests/unit/check compares this list with
 * the schema's own on SQLite, so a migration that adds a reference without
 * adding it here fails a test. */
static const struct check_fk fks[] = {
	{"certificates", "ca_id", "cas", "id"},
	{"things", "type_name", "thing_types", "name"},
	{"thing_groups", "parent_name", "thing_groups", "name"},
	{"thing_group_members", "group_name", "thing_groups", "name"},
	{"thing_group_members", "thing_name", "things", "name"},
	{"policy_versions", "policy_name", "policies", "name"},
	{"policy_targets", "policy_name", "policies", "name"},
	{"thing_principals", "thing_name", "things", "name"},
	{"template_versions", "template_name", "provisioning_templates", "name"},
	{"thing_attributes", "thing_name", "things", "name"},
	{"bulk_reports", "task_id", "bulk_tasks", "id"},
	{"authlist_keys", "list_name", "authlists", "name"},
};

const struct check_fk *check_fk_at(size_t i)
{
	return i < sizeof(fks) / sizeof(fks[0]) ? &fks[i] : NULL;
}

const char *check_severity_name(enum check_severity s)
{
	return s == CHECK_WARNING ? "warning" : "error";
}

struct ca_entry {
	char *id;
	int active;
	X509 *x509; /* NULL when the PEM does not parse */
};

struct ctx {
	struct store *st;
	int64_t now, grace;
	struct check_report rep;
	size_t cap;
	int nomem;
	struct ca_entry *cas;
	size_t ncas;
	/* the current rule's context for generic row callbacks */
	const struct check_fk *fk;
	/* event scan */
	int have_prev;
	int64_t prev_id, prev_ts;
};

static void add(struct ctx *c, enum check_severity sev, const char *kind, const char *object,
                const char *fmt, ...) IOTP_PRINTF(5, 6);

static void add(struct ctx *c, enum check_severity sev, const char *kind, const char *object,
                const char *fmt, ...)
{
	struct check_problem *p;
	va_list ap;

	if (sev == CHECK_WARNING)
		c->rep.warnings++;
	else
		c->rep.errors++;
	if (c->rep.count >= CHECK_MAX_PROBLEMS)
		return;
	if (c->rep.count == c->cap) {
		size_t ncap = c->cap == 0 ? 16 : c->cap * 2;
		struct check_problem *grown = realloc(c->rep.problems, ncap * sizeof(*grown));

		if (grown == NULL) {
			c->nomem = 1;
			return;
		}
		c->rep.problems = grown;
		c->cap = ncap;
	}
	p = &c->rep.problems[c->rep.count++];
	p->severity = sev;
	p->kind = kind;
	util_strlcpy(p->object, object, sizeof(p->object));
	va_start(ap, fmt);
	vsnprintf(p->detail, sizeof(p->detail), fmt, ap);
	va_end(ap);
}

static const char *col_s(const struct store_row *row, int i)
{
	if (i >= row->ncols || row->cols[i].type == STORE_NULL || row->cols[i].s == NULL)
		return NULL;
	return row->cols[i].s;
}

static int64_t col_i(const struct store_row *row, int i)
{
	return i < row->ncols && row->cols[i].type == STORE_INT ? row->cols[i].i : 0;
}

/* A short, printable rendering of a stored value for messages. */
static const char *shown(const char *s)
{
	return s != NULL ? s : "(null)";
}

/* 1 when s (may be NULL) starts with prefix. */
static int starts_with(const char *s, const char *prefix)
{
	return s != NULL && strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ---- declared references ---- */

static int fk_row(void *ud, const struct store_row *row)
{
	struct ctx *c = ud;
	char obj[CHECK_OBJECT_MAX];

	snprintf(obj, sizeof(obj), "%s.%s = '%.120s'", c->fk->table, c->fk->column,
	         shown(col_s(row, 0)));
	add(c, CHECK_ERROR, "foreign_key", obj, "%d row(s) reference %s(%s) '%.120s', which does not exist",
	    (int)col_i(row, 1), c->fk->parent, c->fk->parent_column, shown(col_s(row, 0)));
	return c->nomem;
}

static iotp_rc check_fks(struct ctx *c, struct iotp_err *err)
{
	for (size_t i = 0; i < sizeof(fks) / sizeof(fks[0]); i++) {
		char sql[512];
		iotp_rc rc;

		c->fk = &fks[i];
		/* Identifiers come from the table above, never from input. */
		snprintf(sql, sizeof(sql),
		         "SELECT c.%s, COUNT(*) FROM %s c WHERE c.%s IS NOT NULL AND NOT EXISTS "
		         "(SELECT 1 FROM %s p WHERE p.%s = c.%s) GROUP BY c.%s ORDER BY c.%s",
		         fks[i].column, fks[i].table, fks[i].column, fks[i].parent,
		         fks[i].parent_column, fks[i].column, fks[i].column, fks[i].column);
		if ((rc = store_exec(c->st, sql, NULL, 0, fk_row, c, err)) != IOTP_OK)
			return rc;
		c->rep.rules++;
	}
	c->fk = NULL;
	return IOTP_OK;
}

/* SQLite knows every reference of its schema: PRAGMA foreign_key_check
 * reports violations of any the list above does not hold. */
static int pragma_fk_row(void *ud, const struct store_row *row)
{
	struct ctx *c = ud;
	const char *table = col_s(row, 0), *parent = col_s(row, 2);
	char obj[CHECK_OBJECT_MAX];

	for (size_t i = 0; i < sizeof(fks) / sizeof(fks[0]); i++)
		if (table != NULL && parent != NULL && strcmp(fks[i].table, table) == 0 &&
		    strcmp(fks[i].parent, parent) == 0)
			return 0; /* reported by the join above */
	snprintf(obj, sizeof(obj), "%.80s rowid %lld", shown(table), (long long)col_i(row, 1));
	add(c, CHECK_ERROR, "foreign_key", obj, "references a row of %.80s that does not exist",
	    shown(parent));
	return c->nomem;
}

static iotp_rc check_sqlite_fks(struct ctx *c, struct iotp_err *err)
{
	iotp_rc rc;

	if (strcmp(store_backend_name(c->st), "sqlite") != 0)
		return IOTP_OK;
	if ((rc = store_exec(c->st, "PRAGMA foreign_key_check", NULL, 0, pragma_fk_row, c, err)) ==
	    IOTP_OK)
		c->rep.rules++;
	return rc;
}

/* ---- attachments without a declared reference ---- */

static int target_row(void *ud, const struct store_row *row)
{
	struct ctx *c = ud;
	const char *target = col_s(row, 1);
	char obj[CHECK_OBJECT_MAX];
	int known = starts_with(target, "cert/") || starts_with(target, "thinggroup/");

	snprintf(obj, sizeof(obj), "policy/%.150s", shown(col_s(row, 0)));
	if (known)
		add(c, CHECK_ERROR, "dangling_target", obj, "attached to %.160s, which does not exist",
		    target);
	else
		add(c, CHECK_ERROR, "dangling_target", obj,
		    "attached to '%.140s', neither cert/<id> nor thinggroup/<name>", shown(target));
	return c->nomem;
}

static int principal_row(void *ud, const struct store_row *row)
{
	struct ctx *c = ud;
	const char *principal = col_s(row, 1);
	char obj[CHECK_OBJECT_MAX];

	snprintf(obj, sizeof(obj), "thing/%.150s", shown(col_s(row, 0)));
	if (starts_with(principal, "cert/"))
		add(c, CHECK_ERROR, "dangling_principal", obj,
		    "principal %.160s does not exist", principal);
	else
		add(c, CHECK_ERROR, "dangling_principal", obj, "principal '%.150s' is not cert/<id>",
		    shown(principal));
	return c->nomem;
}

static int version_row(void *ud, const struct store_row *row)
{
	struct ctx *c = ud;
	char obj[CHECK_OBJECT_MAX];

	snprintf(obj, sizeof(obj), "%s/%.150s", c->fk->table, shown(col_s(row, 0)));
	add(c, CHECK_ERROR, "missing_version", obj, "default version %lld has no row in %s",
	    (long long)col_i(row, 1), c->fk->parent);
	return c->nomem;
}

static int group_row(void *ud, const struct store_row *row)
{
	struct ctx *c = ud;
	char obj[CHECK_OBJECT_MAX];

	snprintf(obj, sizeof(obj), "thinggroup/%.150s", shown(col_s(row, 0)));
	add(c, CHECK_ERROR, "group_cycle", obj,
	    "its parent chain loops or runs over %d levels", GROUP_DEPTH_LIMIT);
	return c->nomem;
}

static int status_row(void *ud, const struct store_row *row)
{
	struct ctx *c = ud;
	char obj[CHECK_OBJECT_MAX];

	snprintf(obj, sizeof(obj), "%s/%.150s", c->fk->table, shown(col_s(row, 0)));
	add(c, CHECK_ERROR, "bad_status", obj, "status '%.60s' is not one iotprov sets",
	    shown(col_s(row, 1)));
	return c->nomem;
}

static iotp_rc check_attachments(struct ctx *c, struct iotp_err *err)
{
	/* The kind of row each query returns, for the message: table/parent
	 * here only name things for version_row and status_row. */
	static const struct check_fk policy_v = {"policy", NULL, "policy_versions", NULL};
	static const struct check_fk template_v = {"provisioningtemplate", NULL,
	                                           "template_versions", NULL};
	static const struct check_fk cert_s = {"cert", NULL, NULL, NULL};
	static const struct check_fk ca_s = {"cacert", NULL, NULL, NULL};
	const struct {
		const char *sql;
		store_row_fn fn;
		const struct check_fk *what;
	} rules[] = {
		{"SELECT t.policy_name, t.target FROM policy_targets t WHERE NOT ("
		 "(substr(t.target, 1, 5) = 'cert/' AND EXISTS (SELECT 1 FROM certificates c "
		 "WHERE c.id = substr(t.target, 6))) OR "
		 "(substr(t.target, 1, 11) = 'thinggroup/' AND EXISTS (SELECT 1 FROM thing_groups g "
		 "WHERE g.name = substr(t.target, 12)))) ORDER BY t.policy_name, t.target",
		 target_row, NULL},
		{"SELECT t.thing_name, t.principal FROM thing_principals t WHERE NOT ("
		 "substr(t.principal, 1, 5) = 'cert/' AND EXISTS (SELECT 1 FROM certificates c "
		 "WHERE c.id = substr(t.principal, 6))) ORDER BY t.thing_name, t.principal",
		 principal_row, NULL},
		{"SELECT p.name, p.default_version FROM policies p WHERE NOT EXISTS (SELECT 1 FROM "
		 "policy_versions v WHERE v.policy_name = p.name AND v.version = p.default_version) "
		 "ORDER BY p.name",
		 version_row, &policy_v},
		{"SELECT t.name, t.default_version FROM provisioning_templates t WHERE NOT EXISTS "
		 "(SELECT 1 FROM template_versions v WHERE v.template_name = t.name AND "
		 "v.version = t.default_version) ORDER BY t.name",
		 version_row, &template_v},
		{"WITH RECURSIVE up (name, anc, depth) AS ("
		 "SELECT name, parent_name, 1 FROM thing_groups WHERE parent_name IS NOT NULL "
		 "UNION ALL SELECT up.name, g.parent_name, up.depth + 1 FROM up JOIN thing_groups g "
		 "ON g.name = up.anc WHERE g.parent_name IS NOT NULL AND up.name <> up.anc AND "
		 "up.depth < " STR(GROUP_DEPTH_LIMIT) ") "
		 "SELECT DISTINCT name FROM up WHERE anc = name OR depth >= " STR(GROUP_DEPTH_LIMIT)
		 " ORDER BY name",
		 group_row, NULL},
		{"SELECT id, status FROM certificates WHERE status NOT IN ('ACTIVE', 'INACTIVE', "
		 "'REVOKED', 'PENDING_TRANSFER', 'REGISTER_INACTIVE', 'PENDING_ACTIVATION') "
		 "ORDER BY id",
		 status_row, &cert_s},
		{"SELECT id, status FROM cas WHERE status NOT IN ('ACTIVE', 'INACTIVE') ORDER BY id",
		 status_row, &ca_s},
	};

	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		iotp_rc rc;

		c->fk = rules[i].what;
		if ((rc = store_exec(c->st, rules[i].sql, NULL, 0, rules[i].fn, c, err)) != IOTP_OK)
			return rc;
		c->rep.rules++;
	}
	c->fk = NULL;
	return IOTP_OK;
}

/* ---- certificates: ids, chains ---- */

/* Parses pem and compares its SHA-256 with id; *out (may be NULL) gets
 * the certificate. Problems go to the report; returns 0 when it parsed. */
static int parse_and_id(struct ctx *c, const char *kind_obj, const char *id, const char *pem,
                        size_t pem_len, X509 **out)
{
	char computed[PKI_CERT_ID_LEN + 1];
	struct iotp_err lerr;
	X509 *x = NULL;

	if (pem == NULL || pki_cert_parse(pem, pem_len, &x, &lerr) != IOTP_OK) {
		add(c, CHECK_ERROR, "cert_id", kind_obj, "the stored PEM does not parse");
		return -1;
	}
	if (pki_cert_id(x, computed, &lerr) != IOTP_OK) {
		add(c, CHECK_ERROR, "cert_id", kind_obj, "cannot hash the certificate: %.200s",
		    lerr.msg);
	} else if (id == NULL || strcmp(computed, id) != 0) {
		add(c, CHECK_ERROR, "cert_id", kind_obj,
		    "the id is not the SHA-256 of the stored certificate (%.16s...)", computed);
	}
	if (out != NULL)
		*out = x;
	else
		X509_free(x);
	return 0;
}

/* 1 when x is signed by ca's key and names ca as its issuer. Validity
 * dates are not the check's business: an expired certificate still
 * chains. */
static int signed_by(X509 *x, X509 *ca)
{
	EVP_PKEY *key;

	if (ca == NULL || X509_check_issued(ca, x) != X509_V_OK)
		return 0;
	key = X509_get0_pubkey(ca);
	return key != NULL && X509_verify(x, key) == 1;
}

static struct ca_entry *ca_find(struct ctx *c, const char *id)
{
	for (size_t i = 0; i < c->ncas; i++)
		if (strcmp(c->cas[i].id, id) == 0)
			return &c->cas[i];
	return NULL;
}

static int ca_row(void *ud, const struct store_row *row)
{
	struct ctx *c = ud;
	const char *id = col_s(row, 0), *status = col_s(row, 2);
	struct ca_entry *grown, *e;
	char obj[CHECK_OBJECT_MAX];

	c->rep.cas++;
	if (id == NULL)
		return 0; /* a primary key is never NULL */
	if ((grown = realloc(c->cas, (c->ncas + 1) * sizeof(*grown))) == NULL) {
		c->nomem = 1;
		return 1;
	}
	c->cas = grown;
	e = &c->cas[c->ncas];
	memset(e, 0, sizeof(*e));
	if ((e->id = strdup(id)) == NULL) {
		c->nomem = 1;
		return 1;
	}
	c->ncas++;
	e->active = status != NULL && strcmp(status, "ACTIVE") == 0;
	snprintf(obj, sizeof(obj), "cacert/%.150s", id);
	if (parse_and_id(c, obj, id, col_s(row, 1), row->cols[1].len, &e->x509) == 0 &&
	    !pki_cert_is_ca(e->x509))
		add(c, CHECK_ERROR, "cert_id", obj, "the stored certificate is not a CA certificate");
	return c->nomem;
}

static int cert_row(void *ud, const struct store_row *row)
{
	struct ctx *c = ud;
	const char *id = col_s(row, 0), *ca_id = col_s(row, 2), *status = col_s(row, 3);
	const char *mode = col_s(row, 4);
	char obj[CHECK_OBJECT_MAX];
	X509 *x = NULL;

	c->rep.certificates++;
	snprintf(obj, sizeof(obj), "cert/%.150s", shown(id));
	if (parse_and_id(c, obj, id, col_s(row, 1), row->cols[1].len, &x) != 0)
		return c->nomem;
	if (status == NULL || strcmp(status, "ACTIVE") != 0)
		goto out;
	if (ca_id != NULL) {
		struct ca_entry *ca = ca_find(c, ca_id);

		if (ca == NULL)
			goto out; /* a foreign_key problem already */
		if (!signed_by(x, ca->x509))
			add(c, CHECK_ERROR, "cert_chain", obj, "not signed by its CA cacert/%.70s", ca_id);
		else if (!ca->active)
			add(c, CHECK_WARNING, "cert_ca_inactive", obj, "ACTIVE under CA cacert/%.70s, "
			    "which is not ACTIVE", ca_id);
		goto out;
	}
	if (mode != NULL && strcmp(mode, "SNI_ONLY") == 0)
		goto out; /* registered without a CA */
	{
		int found = 0, found_inactive = 0;

		for (size_t i = 0; i < c->ncas && !found; i++)
			if (signed_by(x, c->cas[i].x509)) {
				if (c->cas[i].active)
					found = 1;
				else
					found_inactive = 1;
			}
		if (!found && found_inactive)
			add(c, CHECK_WARNING, "cert_ca_inactive", obj,
			    "ACTIVE, and the only CA that signed it is not ACTIVE");
		else if (!found)
			add(c, CHECK_ERROR, "cert_chain", obj,
			    "ACTIVE in mode %.20s with no CA id, and signed by none of the registered CAs",
			    shown(mode));
	}
out:
	X509_free(x);
	return c->nomem;
}

static iotp_rc check_certs(struct ctx *c, struct iotp_err *err)
{
	iotp_rc rc;

	if ((rc = store_exec(c->st, "SELECT id, pem, status FROM cas ORDER BY id", NULL, 0, ca_row,
	                     c, err)) != IOTP_OK)
		return rc;
	if (c->nomem)
		return IOTP_OK;
	rc = store_exec(c->st,
	                "SELECT id, pem, ca_id, status, mode FROM certificates ORDER BY id", NULL, 0,
	                cert_row, c, err);
	if (rc == IOTP_OK)
		c->rep.rules += 2;
	return rc;
}

/* ---- fleet-provisioned certificates the sweep should have removed ---- */

static int pending_row(void *ud, const struct store_row *row)
{
	struct ctx *c = ud;
	char obj[CHECK_OBJECT_MAX];

	snprintf(obj, sizeof(obj), "cert/%.150s", shown(col_s(row, 0)));
	add(c, CHECK_ERROR, "pending_not_swept", obj,
	    "PENDING_ACTIVATION, its ownership token expired unused %lld s ago",
	    (long long)(c->now - col_i(row, 1)));
	return c->nomem;
}

static iotp_rc check_pending(struct ctx *c, struct iotp_err *err)
{
	struct store_val p[] = {SV_INT(c->now - c->grace)};
	iotp_rc rc;

	rc = store_exec(c->st,
	                "SELECT c.id, MAX(t.expires) FROM certificates c JOIN prov_tokens t "
	                "ON t.cert_id = c.id WHERE c.status = 'PENDING_ACTIVATION' GROUP BY c.id "
	                "HAVING MAX(t.used) = 0 AND MAX(t.expires) <= ? ORDER BY c.id",
	                p, 1, pending_row, c, err);
	if (rc == IOTP_OK)
		c->rep.rules++;
	return rc;
}

/* ---- the event log ---- */

static int event_row(void *ud, const struct store_row *row)
{
	struct ctx *c = ud;
	int64_t id = col_i(row, 0), ts = col_i(row, 1);
	char obj[CHECK_OBJECT_MAX];

	c->rep.events++;
	snprintf(obj, sizeof(obj), "event %lld", (long long)id);
	if (id <= 0)
		add(c, CHECK_ERROR, "event_order", obj, "event id is not positive");
	if (c->have_prev && id <= c->prev_id)
		add(c, CHECK_ERROR, "event_order", obj, "id not above the previous id %lld",
		    (long long)c->prev_id);
	else if (c->have_prev && ts < c->prev_ts - CHECK_EVENT_SLACK_MS)
		add(c, CHECK_WARNING, "event_time", obj,
		    "%lld ms earlier than event %lld before it", (long long)(c->prev_ts - ts),
		    (long long)c->prev_id);
	c->have_prev = 1;
	c->prev_id = id;
	c->prev_ts = ts;
	return c->nomem;
}

struct seq_val {
	int found;
	int64_t value; /* -1 when NULL */
};

static int seq_row(void *ud, const struct store_row *row)
{
	struct seq_val *v = ud;

	v->found = 1;
	v->value = row->ncols > 0 && row->cols[0].type == STORE_INT ? row->cols[0].i : -1;
	return 1;
}

/* The next event id must come above every existing one: after a restore
 * that copied ids, a sequence left behind would hand out old ids. */
static iotp_rc check_event_sequence(struct ctx *c, struct iotp_err *err)
{
	struct seq_val v = {0, -1};
	int sqlite = strcmp(store_backend_name(c->st), "sqlite") == 0;
	iotp_rc rc;

	if (!c->have_prev)
		return IOTP_OK; /* no event: any sequence is fine */
	rc = store_exec(c->st,
	                sqlite ? "SELECT seq FROM sqlite_sequence WHERE name = 'events'"
	                       : "SELECT pg_sequence_last_value(pg_get_serial_sequence('events', "
	                         "'id')::regclass)",
	                NULL, 0, seq_row, &v, err);
	if (rc != IOTP_OK)
		return rc;
	c->rep.rules++;
	if (!v.found || v.value < c->prev_id)
		add(c, CHECK_ERROR, "event_order", "events",
		    "the id sequence stands at %lld, below the largest event id %lld: new events "
		    "would reuse old ids",
		    (long long)(v.found ? v.value : 0), (long long)c->prev_id);
	return IOTP_OK;
}

static iotp_rc check_events(struct ctx *c, struct iotp_err *err)
{
	iotp_rc rc;

	if ((rc = store_exec(c->st, "SELECT id, ts FROM events ORDER BY id", NULL, 0, event_row, c,
	                     err)) != IOTP_OK)
		return rc;
	c->rep.rules++;
	return check_event_sequence(c, err);
}

/* ---- the whole check ---- */

static int count_row(void *ud, const struct store_row *row)
{
	*(int64_t *)ud = col_i(row, 0);
	return 1;
}

iotp_rc check_run(struct store *st, const struct check_opts *opts, struct check_report *out,
                  struct iotp_err *err)
{
	static iotp_rc (*const rules[])(struct ctx *, struct iotp_err *) = {
		check_fks, check_sqlite_fks, check_attachments, check_certs, check_pending,
		check_events,
	};
	struct ctx c;
	iotp_rc rc = IOTP_OK;

	memset(&c, 0, sizeof(c));
	c.st = st;
	c.now = opts != NULL && opts->now > 0 ? opts->now : util_now();
	c.grace = opts != NULL && opts->pending_grace >= 0 ? opts->pending_grace
	                                                   : CHECK_PENDING_GRACE;
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]) && rc == IOTP_OK && !c.nomem; i++)
		rc = rules[i](&c, err);
	if (rc == IOTP_OK && !c.nomem)
		rc = store_exec(st, "SELECT COUNT(*) FROM things", NULL, 0, count_row, &c.rep.things,
		                err);
	if (rc == IOTP_OK && c.nomem)
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "check: out of memory");
	for (size_t i = 0; i < c.ncas; i++) {
		free(c.cas[i].id);
		X509_free(c.cas[i].x509);
	}
	free(c.cas);
	if (rc != IOTP_OK) {
		check_report_cleanup(&c.rep);
		return rc;
	}
	*out = c.rep;
	return IOTP_OK;
}

void check_report_cleanup(struct check_report *r)
{
	if (r == NULL)
		return;
	free(r->problems);
	memset(r, 0, sizeof(*r));
}
