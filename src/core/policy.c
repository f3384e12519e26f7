/*
 * The AWS IoT policy engine (see policy.h for the contract, docs/policies.md
 * for users).
 *
 * A document is parsed with jansson after a cheap pre-scan that enforces the
 * size and nesting limits, then walked twice by the same code: the first walk
 * validates and counts, the second writes the compiled form into one
 * allocation sized by the first. policy_validate() is the first walk alone,
 * so validation and compilation cannot disagree.
 *
 * The compiled form is flat arrays: statements point at resource patterns and
 * conditions, patterns at tokens (literal text, '*', '?', a variable), literal
 * text lives in one string pool. Evaluation resolves a pattern's variables
 * into a small stack array and runs an iterative glob matcher in which a
 * variable's value is one literal token, so nothing it contains can act as a
 * wildcard. An unresolved variable is "no match" when the caller wants an
 * under-approximation (Allow) and "any text" when it wants an
 * over-approximation (Deny); negations (NotResource, StringNot*) flip the
 * direction, which keeps every decision monotonic in what is known.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/obj_mac.h>

#include "core/policy.h"

#define ACT_ALL ((1u << POLICY_ACTION_COUNT) - 1u)
#define VAR_ATTR 0xFFu /* token/condition variable: Thing.Attributes[name] */
#define PATH_LEN 192

enum tok_kind {
	TOK_LIT = 0, /* pool[off, off+len) compared literally */
	TOK_STAR,    /* any run of characters */
	TOK_ONE,     /* exactly one UTF-8 character */
	TOK_VAR      /* variable `var`; attribute name at pool[off, off+len) */
};

struct tok {
	uint8_t kind;
	uint8_t var;
	uint8_t slot; /* index of this variable among its pattern's variables */
	uint32_t off;
	uint32_t len;
};

struct pat {
	uint32_t tok;
	uint32_t ntok;
	uint32_t nvars;
};

struct cond {
	uint8_t var;      /* the condition key */
	uint8_t negate;   /* StringNot*: true when no value matches */
	uint8_t icase;
	uint32_t name_off; /* attribute name when var == VAR_ATTR */
	uint32_t name_len;
	uint32_t pat;      /* the values */
	uint32_t npat;
};

struct stmt {
	uint8_t deny;
	uint8_t not_resource;
	uint8_t actions;   /* broker actions covered, NotAction already applied */
	uint32_t pat;
	uint32_t npat;
	uint32_t cond;
	uint32_t ncond;
};

struct policy {
	unsigned actions;      /* union over the statements */
	unsigned deny_actions; /* union over the Deny statements */
	uint32_t nstmt;
	struct stmt *stmt;
	struct pat *pat;
	struct cond *cond;
	struct tok *tok;
	char *pool;
};

struct span {
	const char *p; /* NULL: unresolved */
	size_t len;
};

/* One walk over a parsed document: counting when p is NULL, writing into p
 * otherwise. */
struct build {
	struct policy *p;
	int vars; /* ${...} are variables (Version 2012-10-17) */
	uint32_t nstmt, npat, ncond, ntok, pool;
};

static const char *const action_names[POLICY_ACTION_COUNT] = {
	"iot:Connect", "iot:Publish", "iot:Receive", "iot:Subscribe", "iot:RetainPublish",
};

static const char *const var_names[] = {
	"iot:ClientId",
	"iot:Connection.Thing.ThingName",
	"iot:Connection.Thing.ThingTypeName",
	"iot:Connection.Thing.IsAttached",
	"iot:Certificate.SerialNumber",
	"iot:Certificate.Subject.CommonName",
	"iot:Certificate.Subject.Country",
	"iot:Certificate.Subject.Organization",
	"iot:Certificate.Subject.OrganizationalUnit",
	"iot:Certificate.Subject.DistinguishedNameQualifier",
	"iot:Certificate.Subject.State",
	"iot:Certificate.Subject.Locality",
	"iot:Certificate.Subject.SerialNumber",
	"iot:Certificate.Subject.Title",
	"iot:Certificate.Subject.Surname",
	"iot:Certificate.Subject.GivenName",
	"iot:Certificate.Subject.Initials",
	"iot:Certificate.Subject.Pseudonym",
	"iot:Certificate.Subject.GenerationQualifier",
	"iot:Certificate.Issuer.CommonName",
	"iot:Certificate.Issuer.Country",
	"iot:Certificate.Issuer.Organization",
	"iot:Certificate.Issuer.OrganizationalUnit",
	"iot:Certificate.Issuer.DistinguishedNameQualifier",
	"iot:Certificate.Issuer.State",
	"iot:Certificate.Issuer.Locality",
	"iot:Certificate.Issuer.SerialNumber",
	"iot:Certificate.Issuer.Title",
	"iot:Certificate.Issuer.Surname",
	"iot:Certificate.Issuer.GivenName",
	"iot:Certificate.Issuer.Initials",
	"iot:Certificate.Issuer.Pseudonym",
	"iot:Certificate.Issuer.GenerationQualifier",
};
_Static_assert(sizeof(var_names) / sizeof(var_names[0]) == POLICY_VAR_COUNT,
               "var_names must list every enum policy_var");
_Static_assert(POLICY_VAR_COUNT < VAR_ATTR, "variable ids must fit in uint8_t");

static const char attr_prefix[] = "iot:Connection.Thing.Attributes[";

struct cond_op {
	const char *name;
	uint8_t like;    /* values are patterns with * and ? */
	uint8_t negate;
	uint8_t icase;
	uint8_t boolean; /* values are true/false */
};

static const struct cond_op cond_ops[] = {
	{"StringEquals", 0, 0, 0, 0},
	{"StringNotEquals", 0, 1, 0, 0},
	{"StringEqualsIgnoreCase", 0, 0, 1, 0},
	{"StringNotEqualsIgnoreCase", 0, 1, 1, 0},
	{"StringLike", 1, 0, 0, 0},
	{"StringNotLike", 1, 1, 0, 0},
	{"Bool", 0, 0, 1, 1},
};

/* ------------------------------------------------------------------------
 * Small text helpers
 */

static unsigned char lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

static int ieq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
			return 0;
	return 1;
}

static int bytes_eq(const char *a, const char *b, size_t n, int icase)
{
	return icase ? ieq(a, b, n) : memcmp(a, b, n) == 0;
}

/* Strict UTF-8 (RFC 3629: no overlongs, surrogates or values past U+10FFFF). */
static int utf8_valid(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;

	while (i < n) {
		unsigned c = u[i];
		unsigned lo = 0x80, hi = 0xBF;
		size_t k;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF) {
			k = 1;
		} else if (c >= 0xE0 && c <= 0xEF) {
			k = 2;
			if (c == 0xE0)
				lo = 0xA0;
			else if (c == 0xED)
				hi = 0x9F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			k = 3;
			if (c == 0xF0)
				lo = 0x90;
			else if (c == 0xF4)
				hi = 0x8F;
		} else {
			return 0;
		}
		if (n - i <= k || u[i + 1] < lo || u[i + 1] > hi)
			return 0;
		for (size_t j = 2; j <= k; j++)
			if ((u[i + j] & 0xC0) != 0x80)
				return 0;
		i += k + 1;
	}
	return 1;
}

/* Length of the character at s in text already known to be valid UTF-8. */
static size_t char_len(const char *s, size_t avail)
{
	unsigned c = (unsigned char)s[0];
	size_t k = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;

	return k <= avail ? k : avail;
}

/* Case-insensitive ASCII glob for action names: '*' any run, '?' one. */
static int action_glob(const char *p, size_t pn, const char *s, size_t sn)
{
	size_t pi = 0, si = 0, star_p = SIZE_MAX, star_s = 0;

	for (;;) {
		if (pi < pn) {
			if (p[pi] == '*') {
				star_p = ++pi;
				star_s = si;
				continue;
			}
			if (si < sn && (p[pi] == '?' ||
			                lower((unsigned char)p[pi]) == lower((unsigned char)s[si]))) {
				pi++;
				si++;
				continue;
			}
		} else if (si == sn) {
			return 1;
		}
		if (star_p == SIZE_MAX || star_s >= sn)
			return 0;
		si = ++star_s;
		pi = star_p;
	}
}

static void subpath(char *dst, size_t size, const char *fmt, ...) IOTP_PRINTF(3, 4);

static void subpath(char *dst, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dst, size, fmt, ap);
	va_end(ap);
}

static iotp_rc perr(struct iotp_err *err, const char *path, const char *what)
{
	return iotp_err_set(err, IOTP_ERR_POLICY, "%s: %s", path, what);
}

/* ------------------------------------------------------------------------
 * Pre-scan: size and nesting limits before any parser sees the text, so that
 * a hostile document costs one linear pass and no recursion.
 */

static iotp_rc prescan(const char *doc, size_t len, struct iotp_err *err)
{
	size_t chars = 0, depth = 0;
	int in_str = 0, esc = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)doc[i];

		if (in_str) {
			if ((c & 0xC0) != 0x80)
				chars++;
			if (esc)
				esc = 0;
			else if (c == '\\')
				esc = 1;
			else if (c == '"')
				in_str = 0;
			continue;
		}
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		if ((c & 0xC0) != 0x80)
			chars++;
		if (c == '"') {
			in_str = 1;
		} else if (c == '{' || c == '[') {
			if (++depth > POLICY_MAX_DEPTH)
				return iotp_err_set(err, IOTP_ERR_POLICY,
				                    "policy document nests deeper than %d levels",
				                    POLICY_MAX_DEPTH);
		} else if ((c == '}' || c == ']') && depth > 0) {
			depth--;
		}
	}
	if (chars > POLICY_MAX_CHARS)
		return iotp_err_set(err, IOTP_ERR_POLICY,
		                    "policy document has %zu characters excluding whitespace; "
		                    "the limit is %d", chars, POLICY_MAX_CHARS);
	return IOTP_OK;
}

static iotp_rc load(const char *doc, size_t len, json_t **out, struct iotp_err *err)
{
	json_error_t je;
	json_t *root;
	iotp_rc rc;

	if (doc == NULL || len == 0)
		return iotp_err_set(err, IOTP_ERR_POLICY, "policy document is empty");
	if (len > POLICY_MAX_BYTES)
		return iotp_err_set(err, IOTP_ERR_POLICY,
		                    "policy document is %zu bytes; the limit is %d", len,
		                    POLICY_MAX_BYTES);
	if ((rc = prescan(doc, len, err)) != IOTP_OK)
		return rc;
	root = json_loadb(doc, len, JSON_REJECT_DUPLICATES, &je);
	if (root == NULL)
		return iotp_err_set(err, IOTP_ERR_POLICY,
		                    "policy document is not valid JSON: %s (line %d, column %d)",
		                    je.text, je.line, je.column);
	*out = root;
	return IOTP_OK;
}

/* ------------------------------------------------------------------------
 * Compilation
 */

static void put_tok(struct build *b, unsigned kind, unsigned var, unsigned slot,
                    uint32_t off, uint32_t len)
{
	if (b->p != NULL) {
		struct tok *t = &b->p->tok[b->ntok];

		t->kind = (uint8_t)kind;
		t->var = (uint8_t)var;
		t->slot = (uint8_t)slot;
		t->off = off;
		t->len = len;
	}
	b->ntok++;
}

static uint32_t put_pool(struct build *b, const char *s, size_t n)
{
	uint32_t off = b->pool;

	if (b->p != NULL && n > 0)
		memcpy(b->p->pool + off, s, n);
	b->pool += (uint32_t)n;
	return off;
}

/* Resolves a variable name as written (without "${}"), case-insensitively.
 * Attribute names inside [] keep their case. Returns 0 when unknown. */
static int var_lookup(const char *s, size_t n, unsigned *var, const char **attr,
                      size_t *attr_len)
{
	size_t plen = sizeof(attr_prefix) - 1;

	for (size_t i = 0; i < POLICY_VAR_COUNT; i++) {
		if (strlen(var_names[i]) == n && ieq(s, var_names[i], n)) {
			*var = (unsigned)i;
			*attr = NULL;
			*attr_len = 0;
			return 1;
		}
	}
	if (n > plen + 1 && ieq(s, attr_prefix, plen) && s[n - 1] == ']' &&
	    memchr(s + plen, ']', n - plen - 1) == NULL &&
	    memchr(s + plen, '[', n - plen - 1) == NULL) {
		*var = VAR_ATTR;
		*attr = s + plen;
		*attr_len = n - plen - 1;
		return 1;
	}
	return 0;
}

/* Compiles one resource string or condition value into a pattern. wild: '*'
 * and '?' are wildcards (Resource, StringLike) rather than text. */
static iotp_rc put_pattern(struct build *b, const char *s, size_t n, int wild,
                           const char *path, struct iotp_err *err)
{
	uint32_t tok0 = b->ntok;
	unsigned nvars = 0;
	int lit_open = 0, last_star = 0;
	size_t i = 0;

	while (i < n) {
		const char *lit = s + i;

		if (b->vars && s[i] == '$' && i + 1 < n && s[i + 1] == '{') {
			const char *name = s + i + 2;
			const char *close = memchr(name, '}', n - i - 2);
			const char *attr;
			size_t nl, attr_len;
			unsigned var;
			uint32_t off = 0;

			if (close == NULL)
				return perr(err, path, "unterminated policy variable (\"${\" without \"}\")");
			nl = (size_t)(close - name);
			i = (size_t)(close - s) + 1;
			if (nl == 1 && (name[0] == '*' || name[0] == '?' || name[0] == '$')) {
				lit = name; /* ${*} ${?} ${$}: the character itself, as text */
			} else {
				if (!var_lookup(name, nl, &var, &attr, &attr_len))
					return iotp_err_set(err, IOTP_ERR_POLICY,
					                    "%s: unsupported policy variable ${%.*s}", path,
					                    (int)(nl > 80 ? 80 : nl), name);
				if (nvars == POLICY_MAX_VARS)
					return iotp_err_set(err, IOTP_ERR_POLICY,
					                    "%s: more than %d policy variables", path,
					                    POLICY_MAX_VARS);
				if (attr != NULL)
					off = put_pool(b, attr, attr_len);
				put_tok(b, TOK_VAR, var, nvars, off, (uint32_t)attr_len);
				nvars++;
				lit_open = 0;
				last_star = 0;
				continue;
			}
		} else {
			i++;
			if (wild && *lit == '*') {
				if (!last_star)
					put_tok(b, TOK_STAR, 0, 0, 0, 0);
				last_star = 1;
				lit_open = 0;
				continue;
			}
			if (wild && *lit == '?') {
				put_tok(b, TOK_ONE, 0, 0, 0, 0);
				last_star = 0;
				lit_open = 0;
				continue;
			}
		}
		if (lit_open) {
			put_pool(b, lit, 1);
			if (b->p != NULL)
				b->p->tok[b->ntok - 1].len++;
		} else {
			put_tok(b, TOK_LIT, 0, 0, put_pool(b, lit, 1), 1);
			lit_open = 1;
		}
		last_star = 0;
	}
	if (b->p != NULL) {
		struct pat *pt = &b->p->pat[b->npat];

		pt->tok = tok0;
		pt->ntok = b->ntok - tok0;
		pt->nvars = nvars;
	}
	b->npat++;
	return IOTP_OK;
}

/* v must be a string or a non-empty array of strings (or, with booleans,
 * JSON true/false). Sets *n to the number of elements. */
static iotp_rc check_list(const json_t *v, int booleans, const char *path, size_t *n,
                          struct iotp_err *err)
{
	const char *what = booleans ? "must be true, false or a non-empty array of them"
	                            : "must be a string or a non-empty array of strings";
	char sub[PATH_LEN];

	if (json_is_string(v) || (booleans && json_is_boolean(v))) {
		*n = 1;
		return IOTP_OK;
	}
	if (!json_is_array(v) || json_array_size(v) == 0)
		return perr(err, path, what);
	for (size_t i = 0; i < json_array_size(v); i++) {
		const json_t *e = json_array_get(v, i);

		if (!json_is_string(e) && !(booleans && json_is_boolean(e))) {
			subpath(sub, sizeof(sub), "%s[%zu]", path, i);
			return perr(err, sub, booleans ? "must be true or false"
			                               : "must be a string");
		}
	}
	*n = json_array_size(v);
	return IOTP_OK;
}

static const json_t *list_at(const json_t *v, size_t i, const char *path, char *sub,
                             size_t size)
{
	if (json_is_array(v)) {
		subpath(sub, size, "%s[%zu]", path, i);
		return json_array_get(v, i);
	}
	subpath(sub, size, "%s", path);
	return v;
}

static iotp_rc put_actions(const json_t *v, const char *path, unsigned *mask,
                           struct iotp_err *err)
{
	char sub[PATH_LEN];
	unsigned m = 0;
	size_t n;
	iotp_rc rc;

	if ((rc = check_list(v, 0, path, &n, err)) != IOTP_OK)
		return rc;
	for (size_t i = 0; i < n; i++) {
		const json_t *e = list_at(v, i, path, sub, sizeof(sub));
		const char *s = json_string_value(e);
		size_t len = json_string_length(e);
		int ok = len == 1 && s[0] == '*';

		if (!ok && len > 4 && ieq(s, "iot:", 4)) {
			ok = 1;
			for (size_t j = 4; j < len && ok; j++) {
				char c = s[j];

				ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '*' ||
				     c == '?';
			}
		}
		if (!ok)
			return iotp_err_set(err, IOTP_ERR_POLICY,
			                    "%s: \"%.80s\" is not an AWS IoT action (expected "
			                    "\"iot:<Name>\" or \"*\")", sub, s);
		for (unsigned a = 0; a < POLICY_ACTION_COUNT; a++)
			if (action_glob(s, len, action_names[a], strlen(action_names[a])))
				m |= 1u << a;
	}
	*mask = m;
	return IOTP_OK;
}

static iotp_rc put_resources(struct build *b, const json_t *v, const char *path,
                             struct iotp_err *err)
{
	char sub[PATH_LEN];
	size_t n;
	iotp_rc rc;

	if ((rc = check_list(v, 0, path, &n, err)) != IOTP_OK)
		return rc;
	for (size_t i = 0; i < n; i++) {
		const json_t *e = list_at(v, i, path, sub, sizeof(sub));
		const char *s = json_string_value(e);
		size_t len = json_string_length(e);

		if (!(len == 1 && s[0] == '*') && !(len > 4 && memcmp(s, "arn:", 4) == 0))
			return perr(err, sub, "must be \"*\" or an ARN starting with \"arn:\"");
		if ((rc = put_pattern(b, s, len, 1, sub, err)) != IOTP_OK)
			return rc;
	}
	return IOTP_OK;
}

static iotp_rc put_condition(struct build *b, const json_t *c, const char *path,
                             struct iotp_err *err)
{
	char opath[PATH_LEN], kpath[PATH_LEN], vpath[PATH_LEN];
	const char *opname, *key;
	const json_t *opval, *vals;
	iotp_rc rc;

	if (!json_is_object(c))
		return perr(err, path, "must be an object");
	json_object_foreach((json_t *)c, opname, opval) {
		const struct cond_op *op = NULL;

		subpath(opath, sizeof(opath), "%s.%s", path, opname);
		for (size_t i = 0; i < sizeof(cond_ops) / sizeof(cond_ops[0]); i++)
			if (strcmp(opname, cond_ops[i].name) == 0)
				op = &cond_ops[i];
		if (op == NULL)
			return perr(err, opath, "unsupported condition operator (supported: "
			                        "StringEquals, StringNotEquals, StringEqualsIgnoreCase, "
			                        "StringNotEqualsIgnoreCase, StringLike, StringNotLike, "
			                        "Bool)");
		if (!json_is_object(opval) || json_object_size(opval) == 0)
			return perr(err, opath, "must be a non-empty object of condition keys");
		json_object_foreach((json_t *)opval, key, vals) {
			const char *attr;
			size_t attr_len, n;
			unsigned var;
			uint32_t off = 0;

			subpath(kpath, sizeof(kpath), "%s.%s", opath, key);
			if (!var_lookup(key, strlen(key), &var, &attr, &attr_len))
				return perr(err, kpath, "unsupported condition key (use an iot: policy "
				                        "variable name such as iot:Connection.Thing.IsAttached)");
			if ((rc = check_list(vals, op->boolean, kpath, &n, err)) != IOTP_OK)
				return rc;
			if (attr != NULL)
				off = put_pool(b, attr, attr_len);
			if (b->p != NULL) {
				struct cond *cd = &b->p->cond[b->ncond];

				cd->var = (uint8_t)var;
				cd->negate = op->negate;
				cd->icase = op->icase;
				cd->name_off = off;
				cd->name_len = (uint32_t)attr_len;
				cd->pat = b->npat;
				cd->npat = (uint32_t)n;
			}
			b->ncond++;
			for (size_t i = 0; i < n; i++) {
				const json_t *e = list_at(vals, i, kpath, vpath, sizeof(vpath));
				const char *s;
				size_t len;

				if (op->boolean) {
					if (json_is_boolean(e)) {
						s = json_is_true(e) ? "true" : "false";
					} else {
						s = json_string_value(e);
						if (!(strlen(s) == 4 && ieq(s, "true", 4)) &&
						    !(strlen(s) == 5 && ieq(s, "false", 5)))
							return perr(err, vpath, "must be \"true\" or \"false\"");
					}
					len = strlen(s);
				} else {
					s = json_string_value(e);
					len = json_string_length(e);
				}
				if ((rc = put_pattern(b, s, len, op->like, vpath, err)) != IOTP_OK)
					return rc;
			}
		}
	}
	return IOTP_OK;
}

static iotp_rc put_statement(struct build *b, const json_t *st, const char *path,
                             struct iotp_err *err)
{
	static const char *const keys[] = {
		"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition",
	};
	char sub[PATH_LEN];
	const char *key, *effect;
	const json_t *val, *act, *nact, *res, *nres, *cond;
	uint32_t idx, pat0, cond0;
	unsigned mask = 0;
	int deny;
	iotp_rc rc;

	if (!json_is_object(st))
		return perr(err, path, "must be an object");
	json_object_foreach((json_t *)st, key, val) {
		int known = 0;

		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			known |= strcmp(key, keys[i]) == 0;
		if (!known) {
			subpath(sub, sizeof(sub), "%s.%s", path, key);
			return perr(err, sub, "unknown key (allowed: Sid, Effect, Action, NotAction, "
			                      "Resource, NotResource, Condition)");
		}
	}
	val = json_object_get(st, "Sid");
	if (val != NULL && !json_is_string(val)) {
		subpath(sub, sizeof(sub), "%s.Sid", path);
		return perr(err, sub, "must be a string");
	}
	subpath(sub, sizeof(sub), "%s.Effect", path);
	val = json_object_get(st, "Effect");
	if (val == NULL)
		return perr(err, sub, "required");
	effect = json_string_value(val);
	if (effect == NULL || (strcmp(effect, "Allow") != 0 && strcmp(effect, "Deny") != 0))
		return perr(err, sub, "must be Allow or Deny");
	deny = effect[0] == 'D';

	act = json_object_get(st, "Action");
	nact = json_object_get(st, "NotAction");
	if (act != NULL && nact != NULL)
		return perr(err, path, "has both Action and NotAction");
	if (act == NULL && nact == NULL)
		return perr(err, path, "needs Action or NotAction");
	subpath(sub, sizeof(sub), "%s.%s", path, act != NULL ? "Action" : "NotAction");
	if ((rc = put_actions(act != NULL ? act : nact, sub, &mask, err)) != IOTP_OK)
		return rc;
	if (nact != NULL)
		mask = ACT_ALL & ~mask;

	res = json_object_get(st, "Resource");
	nres = json_object_get(st, "NotResource");
	if (res != NULL && nres != NULL)
		return perr(err, path, "has both Resource and NotResource");
	if (res == NULL && nres == NULL)
		return perr(err, path, "needs Resource or NotResource");
	idx = b->nstmt++;
	pat0 = b->npat;
	subpath(sub, sizeof(sub), "%s.%s", path, res != NULL ? "Resource" : "NotResource");
	if ((rc = put_resources(b, res != NULL ? res : nres, sub, err)) != IOTP_OK)
		return rc;

	cond0 = b->ncond;
	cond = json_object_get(st, "Condition");
	if (cond != NULL) {
		subpath(sub, sizeof(sub), "%s.Condition", path);
		if ((rc = put_condition(b, cond, sub, err)) != IOTP_OK)
			return rc;
	}
	if (b->p != NULL) {
		struct stmt *s = &b->p->stmt[idx];

		s->deny = (uint8_t)deny;
		s->not_resource = nres != NULL;
		s->actions = (uint8_t)mask;
		s->pat = pat0;
		s->npat = b->npat - pat0;
		s->cond = cond0;
		s->ncond = b->ncond - cond0;
		b->p->actions |= mask;
		if (deny)
			b->p->deny_actions |= mask;
	}
	return IOTP_OK;
}

static iotp_rc put_document(struct build *b, const json_t *root, struct iotp_err *err)
{
	char sub[PATH_LEN];
	const char *key, *version;
	const json_t *val, *stmts;
	iotp_rc rc;

	if (!json_is_object(root))
		return iotp_err_set(err, IOTP_ERR_POLICY, "policy document must be a JSON object");
	json_object_foreach((json_t *)root, key, val) {
		if (strcmp(key, "Version") != 0 && strcmp(key, "Statement") != 0 &&
		    strcmp(key, "Id") != 0)
			return perr(err, key, "unknown key (allowed: Version, Id, Statement)");
	}
	val = json_object_get(root, "Id");
	if (val != NULL && !json_is_string(val))
		return perr(err, "Id", "must be a string");
	val = json_object_get(root, "Version");
	if (val == NULL)
		return perr(err, "Version", "required");
	version = json_string_value(val);
	if (version == NULL ||
	    (strcmp(version, "2012-10-17") != 0 && strcmp(version, "2008-10-17") != 0))
		return perr(err, "Version", "must be \"2012-10-17\" or \"2008-10-17\"");
	b->vars = strcmp(version, "2012-10-17") == 0;

	stmts = json_object_get(root, "Statement");
	if (stmts == NULL)
		return perr(err, "Statement", "required");
	if (json_is_object(stmts))
		return put_statement(b, stmts, "Statement", err);
	if (!json_is_array(stmts))
		return perr(err, "Statement", "must be an object or an array of objects");
	if (json_array_size(stmts) == 0)
		return perr(err, "Statement", "must not be empty");
	for (size_t i = 0; i < json_array_size(stmts); i++) {
		subpath(sub, sizeof(sub), "Statement[%zu]", i);
		if ((rc = put_statement(b, json_array_get(stmts, i), sub, err)) != IOTP_OK)
			return rc;
	}
	return IOTP_OK;
}

static size_t align8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

iotp_rc policy_validate(const char *doc, size_t len, struct iotp_err *err)
{
	struct build b;
	json_t *root = NULL;
	iotp_rc rc;

	if ((rc = load(doc, len, &root, err)) != IOTP_OK)
		goto out;
	memset(&b, 0, sizeof(b));
	rc = put_document(&b, root, err);
out:
	json_decref(root);
	return rc;
}

iotp_rc policy_compile(const char *doc, size_t len, struct policy **out,
                       struct iotp_err *err)
{
	struct build count, fill;
	struct policy *p = NULL;
	json_t *root = NULL;
	size_t o_stmt, o_pat, o_cond, o_tok, o_pool, total;
	char *base;
	iotp_rc rc;

	if ((rc = load(doc, len, &root, err)) != IOTP_OK)
		goto out;
	memset(&count, 0, sizeof(count));
	if ((rc = put_document(&count, root, err)) != IOTP_OK)
		goto out;

	/* Counts are bounded by the document size, so none of this overflows. */
	o_stmt = align8(sizeof(struct policy));
	o_pat = align8(o_stmt + count.nstmt * sizeof(struct stmt));
	o_cond = align8(o_pat + count.npat * sizeof(struct pat));
	o_tok = align8(o_cond + count.ncond * sizeof(struct cond));
	o_pool = align8(o_tok + count.ntok * sizeof(struct tok));
	total = o_pool + count.pool + 1;
	base = calloc(1, total);
	if (base == NULL) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "compiling policy: out of memory");
		goto out;
	}
	p = (struct policy *)(void *)base;
	p->stmt = (struct stmt *)(void *)(base + o_stmt);
	p->pat = (struct pat *)(void *)(base + o_pat);
	p->cond = (struct cond *)(void *)(base + o_cond);
	p->tok = (struct tok *)(void *)(base + o_tok);
	p->pool = base + o_pool;

	memset(&fill, 0, sizeof(fill));
	fill.p = p;
	if ((rc = put_document(&fill, root, err)) != IOTP_OK)
		goto out;
	if (fill.nstmt != count.nstmt || fill.npat != count.npat ||
	    fill.ncond != count.ncond || fill.ntok != count.ntok || fill.pool != count.pool) {
		rc = iotp_err_set(err, IOTP_ERR_INTERNAL, "policy compiler: passes disagree");
		goto out;
	}
	p->nstmt = fill.nstmt;
	*out = p;
	p = NULL;
out:
	free(p);
	json_decref(root);
	return rc;
}

void policy_free(struct policy *p)
{
	free(p);
}

/* ------------------------------------------------------------------------
 * Evaluation
 */

void policy_ctx_init(struct policy_ctx *ctx)
{
	memset(ctx, 0, sizeof(*ctx));
}

static int resolve(const struct policy *p, const struct policy_ctx *ctx, unsigned var,
                   uint32_t name_off, uint32_t name_len, struct span *out)
{
	const char *v = NULL;
	size_t n;

	if (ctx == NULL)
		return 0;
	if (var == VAR_ATTR) {
		const char *name = p->pool + name_off;

		for (size_t i = 0; i < ctx->n_attrs && v == NULL; i++) {
			const struct policy_attr *a = &ctx->attrs[i];

			if (a->name != NULL && strncmp(a->name, name, name_len) == 0 &&
			    a->name[name_len] == '\0')
				v = a->value;
		}
	} else {
		v = ctx->var[var];
	}
	if (v == NULL)
		return 0;
	n = strlen(v);
	if (!utf8_valid(v, n))
		return 0;
	out->p = v;
	out->len = n;
	return 1;
}

/* Does subject s match pattern pt? over: an unresolved variable matches any
 * text (else the pattern matches nothing). A resolved variable is one
 * literal token: its characters are never wildcards. Iterative glob with one
 * backtrack point, advancing by whole UTF-8 characters; s is valid UTF-8. */
static int pat_match(const struct policy *p, const struct pat *pt,
                     const struct policy_ctx *ctx, int over, int icase, const char *s,
                     size_t n)
{
	struct span val[POLICY_MAX_VARS];
	const struct tok *t = p->tok + pt->tok;
	size_t nt = pt->ntok, ti = 0, si = 0, star_t = SIZE_MAX, star_s = 0;

	memset(val, 0, sizeof(val[0]) * pt->nvars);
	for (size_t i = 0; pt->nvars > 0 && i < nt; i++) {
		if (t[i].kind == TOK_VAR &&
		    !resolve(p, ctx, t[i].var, t[i].off, t[i].len, &val[t[i].slot]) && !over)
			return 0;
	}
	for (;;) {
		if (ti < nt) {
			const struct tok *k = &t[ti];
			unsigned kind = k->kind;
			const char *lit = NULL;
			size_t len = 0;

			if (kind == TOK_VAR) {
				if (val[k->slot].p == NULL) {
					kind = TOK_STAR;
				} else {
					kind = TOK_LIT;
					lit = val[k->slot].p;
					len = val[k->slot].len;
				}
			} else if (kind == TOK_LIT) {
				lit = p->pool + k->off;
				len = k->len;
			}
			if (kind == TOK_STAR) {
				if (ti + 1 == nt)
					return 1;
				star_t = ++ti;
				star_s = si;
				continue;
			}
			if (kind == TOK_ONE) {
				if (si < n) {
					si += char_len(s + si, n - si);
					ti++;
					continue;
				}
			} else if (len <= n - si && bytes_eq(s + si, lit, len, icase)) {
				si += len;
				ti++;
				continue;
			}
		} else if (si == n) {
			return 1;
		}
		if (star_t == SIZE_MAX || star_s >= n)
			return 0;
		star_s += char_len(s + star_s, n - star_s);
		si = star_s;
		ti = star_t;
	}
}

static int cond_holds(const struct policy *p, const struct cond *c,
                      const struct policy_ctx *ctx, int over)
{
	struct span key;
	int m = c->negate ? !over : over;
	int any = 0;

	if (!resolve(p, ctx, c->var, c->name_off, c->name_len, &key))
		return over;
	for (uint32_t i = 0; i < c->npat && !any; i++)
		any = pat_match(p, &p->pat[c->pat + i], ctx, m, c->icase, key.p, key.len);
	return c->negate ? !any : any;
}

/* over = 0: true only if the statement surely applies (Allow);
 * over = 1: true if it may apply for some value of an unknown variable (Deny). */
static int stmt_applies(const struct policy *p, const struct stmt *st, const char *res,
                        size_t rlen, const struct policy_ctx *ctx, int over)
{
	int m = st->not_resource ? !over : over;
	int any = 0;

	for (uint32_t i = 0; i < st->npat && !any; i++)
		any = pat_match(p, &p->pat[st->pat + i], ctx, m, 0, res, rlen);
	if (any == st->not_resource)
		return 0;
	for (uint32_t i = 0; i < st->ncond; i++)
		if (!cond_holds(p, &p->cond[st->cond + i], ctx, over))
			return 0;
	return 1;
}

enum policy_decision policy_eval(const struct policy *const *policies, size_t n,
                                 enum policy_action action, const char *resource,
                                 const struct policy_ctx *ctx)
{
	unsigned bit;
	size_t rlen;
	int allowed = 0;

	if (resource == NULL || (unsigned)action >= POLICY_ACTION_COUNT || policies == NULL)
		return POLICY_DENY;
	bit = 1u << action;
	rlen = strlen(resource);
	if (!utf8_valid(resource, rlen))
		return POLICY_DENY;
	for (size_t i = 0; i < n; i++) {
		const struct policy *p = policies[i];

		if (p == NULL || !(p->actions & bit))
			continue;
		if (allowed && !(p->deny_actions & bit))
			continue;
		for (uint32_t j = 0; j < p->nstmt; j++) {
			const struct stmt *st = &p->stmt[j];

			if (!(st->actions & bit))
				continue;
			if (st->deny) {
				if (stmt_applies(p, st, resource, rlen, ctx, 1))
					return POLICY_DENY;
			} else if (!allowed && stmt_applies(p, st, resource, rlen, ctx, 0)) {
				allowed = 1;
			}
		}
	}
	return allowed ? POLICY_ALLOW : POLICY_DENY;
}

/* ------------------------------------------------------------------------
 * Names
 */

iotp_rc policy_action_parse(const char *name, enum policy_action *out,
                            struct iotp_err *err)
{
	size_t n = name != NULL ? strlen(name) : 0;

	for (unsigned a = 0; a < POLICY_ACTION_COUNT; a++) {
		if (strlen(action_names[a]) == n && ieq(name, action_names[a], n)) {
			*out = (enum policy_action)a;
			return IOTP_OK;
		}
	}
	return iotp_err_set(err, IOTP_ERR_INVALID,
	                    "\"%.80s\" is not a broker action (iot:Connect, iot:Publish, "
	                    "iot:Receive, iot:Subscribe, iot:RetainPublish)",
	                    name != NULL ? name : "");
}

const char *policy_action_name(enum policy_action action)
{
	return (unsigned)action < POLICY_ACTION_COUNT ? action_names[action] : "";
}

const char *policy_var_name(enum policy_var var)
{
	return (unsigned)var < POLICY_VAR_COUNT ? var_names[var] : "";
}

int policy_cert_field_nid(enum policy_cert_field field)
{
	static const int nids[POLICY_CERT_FIELD_COUNT] = {
		NID_commonName, NID_countryName, NID_organizationName,
		NID_organizationalUnitName, NID_dnQualifier, NID_stateOrProvinceName,
		NID_localityName, NID_serialNumber, NID_title, NID_surname, NID_givenName,
		NID_initials, NID_pseudonym, NID_generationQualifier,
	};

	return (unsigned)field < POLICY_CERT_FIELD_COUNT ? nids[field] : NID_undef;
}
