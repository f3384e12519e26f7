/*
 * Template values: the walker shared by validation and evaluation, the
 * intrinsic functions (Ref, Fn::Join, Fn::Select, Fn::Split, Fn::FindInMap,
 * Fn::Sub), parameter and resource references, and the checks on strings
 * that land in names, ids and statuses (see template_internal.h).
 *
 * The walker never takes a reference on the template's JSON: every value it
 * returns is a fresh copy, so one parsed template can be evaluated by
 * several threads at once. Recursion is bounded by TEMPLATE_MAX_DEPTH per
 * value and resource references cannot loop (cycles are refused at parse
 * time), so a hostile template cannot exhaust the stack; every string built
 * is capped at TEMPLATE_VALUE_MAX bytes.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "common/buf.h"
#include "common/util.h"
#include "core/policy.h"
#include "core/template_internal.h"

static const char *const pseudo_names[TPL_NPSEUDO] = {
	"AWS::IoT::Certificate::Id",
	"AWS::IoT::Certificate::CommonName",
	"AWS::IoT::Certificate::Country",
	"AWS::IoT::Certificate::Organization",
	"AWS::IoT::Certificate::OrganizationalUnit",
	"AWS::IoT::Certificate::DistinguishedNameQualifier",
	"AWS::IoT::Certificate::StateName",
	"AWS::IoT::Certificate::SerialNumber",
};

static const char *const res_props[TPL_NRES] = {"ThingName", "CertificateId", "PolicyName"};

int tpl_pseudo_index(const char *name)
{
	for (int i = 0; i < TPL_NPSEUDO; i++)
		if (strcmp(name, pseudo_names[i]) == 0)
			return i;
	return -1;
}

const char *tpl_pseudo_name(int i)
{
	return i >= 0 && i < TPL_NPSEUDO ? pseudo_names[i] : "";
}

static const char *pseudo_value(const struct template_pseudo *p, int i)
{
	if (p == NULL)
		return NULL;
	switch (i) {
	case 0: return p->certificate_id;
	case 1: return p->common_name;
	case 2: return p->country;
	case 3: return p->organization;
	case 4: return p->organizational_unit;
	case 5: return p->dn_qualifier;
	case 6: return p->state_name;
	case 7: return p->serial_number;
	default: return NULL;
	}
}

size_t tpl_utf8_chars(const char *s, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		if (((unsigned char)s[i] & 0xC0u) != 0x80u)
			n++;
	return n;
}

const char *tpl_clean(const char *s, char *out, size_t outsz)
{
	size_t n = 0, i;

	for (i = 0; s[i] != '\0' && n + 4 < outsz && i < 60; i++)
		out[n++] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	if (s[i] != '\0' && n + 4 <= outsz) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
	return out;
}

/* ------------------------------------------------------------------ */
/* Paths and problems                                                  */

static void path_append(struct tpl_ev *ev, const char *sep, const char *text)
{
	size_t room = sizeof(ev->path) - ev->plen;
	int n = snprintf(ev->path + ev->plen, room, "%s%s", sep, text);

	if (n < 0)
		n = 0;
	if ((size_t)n >= room) {
		ev->plen = sizeof(ev->path) - 1;
		memcpy(ev->path + ev->plen - 3, "...", 3);
		ev->path[ev->plen] = '\0';
		return;
	}
	for (size_t i = ev->plen; i < ev->plen + (size_t)n; i++)
		if ((unsigned char)ev->path[i] < 0x20 || ev->path[i] == 0x7f)
			ev->path[i] = '?';
	ev->plen += (size_t)n;
}

size_t tpl_path_key(struct tpl_ev *ev, const char *key)
{
	size_t saved = ev->plen;

	path_append(ev, ev->plen > 0 ? "." : "", key[0] != '\0' ? key : "(empty)");
	return saved;
}

size_t tpl_path_index(struct tpl_ev *ev, size_t i)
{
	size_t saved = ev->plen;
	char idx[32];

	snprintf(idx, sizeof(idx), "[%zu]", i);
	path_append(ev, "", idx);
	return saved;
}

void tpl_path_pop(struct tpl_ev *ev, size_t saved)
{
	if (saved < sizeof(ev->path)) {
		ev->plen = saved;
		ev->path[saved] = '\0';
	}
}

void tpl_path_save(struct tpl_ev *ev, char *buf, size_t *len)
{
	memcpy(buf, ev->path, ev->plen + 1);
	*len = ev->plen;
}

void tpl_path_restore(struct tpl_ev *ev, const char *buf, size_t len)
{
	memcpy(ev->path, buf, len + 1);
	ev->plen = len;
}

static void problem_add(struct tpl_ev *ev, const char *text)
{
	struct template_problems *pr = ev->pr;
	char *copy;

	if (pr->count >= TEMPLATE_PROBLEMS_MAX) {
		pr->omitted++;
		return;
	}
	if (pr->items == NULL) {
		pr->items = calloc(TEMPLATE_PROBLEMS_MAX, sizeof(*pr->items));
		if (pr->items == NULL) {
			ev->nomem = 1;
			return;
		}
	}
	copy = strdup(text);
	if (copy == NULL) {
		ev->nomem = 1;
		return;
	}
	pr->items[pr->count++] = copy;
}

/* Makes s valid UTF-8 without control characters, in place: anything else
 * becomes '?'. Messages end up in JSON answers and logs. */
static void sanitize(char *s)
{
	unsigned char *p = (unsigned char *)s;

	while (*p != '\0') {
		size_t n = 0;
		unsigned char lo = 0x80, hi = 0xBF;

		if (*p < 0x20 || *p == 0x7f) {
			*p++ = '?';
			continue;
		}
		if (*p < 0x80) {
			p++;
			continue;
		}
		if (*p >= 0xC2 && *p <= 0xDF)
			n = 1;
		else if (*p >= 0xE0 && *p <= 0xEF)
			n = 2;
		else if (*p >= 0xF0 && *p <= 0xF4)
			n = 3;
		if (*p == 0xE0)
			lo = 0xA0;
		else if (*p == 0xED)
			hi = 0x9F;
		else if (*p == 0xF0)
			lo = 0x90;
		else if (*p == 0xF4)
			hi = 0x8F;
		for (size_t i = 1; n > 0 && i <= n; i++) {
			unsigned char c = p[i];

			if (c < (i == 1 ? lo : 0x80) || c > (i == 1 ? hi : 0xBF)) {
				n = 0;
				break;
			}
		}
		if (n == 0)
			*p++ = '?';
		else
			p += n + 1;
	}
}

int tpl_fail(struct tpl_ev *ev, iotp_rc rc, const char *fmt, ...)
{
	char msg[640];
	char line[TPL_PATH_MAX + sizeof(msg) + 4];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (ev->plen > 0)
		snprintf(line, sizeof(line), "%s: %s", ev->path, msg);
	else
		snprintf(line, sizeof(line), "%s", msg);
	sanitize(line);
	if (ev->check)
		problem_add(ev, line);
	else
		iotp_err_set(ev->err, rc, "%s", line);
	return -1;
}

static int fail_nomem(struct tpl_ev *ev)
{
	if (ev->check) {
		ev->nomem = 1;
		return -1;
	}
	iotp_err_set(ev->err, IOTP_ERR_NOMEM, "out of memory evaluating the template");
	return -1;
}

/* ------------------------------------------------------------------ */
/* Checkers                                                            */

static int chars_in(const char *s, const char *extra, size_t min, size_t max)
{
	size_t n = strlen(s);

	if (n < min || n > max)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
			continue;
		if (c == '\0' || strchr(extra, c) == NULL)
			return 0;
	}
	return 1;
}

static int name_check(const char *s, const char *what, char *why, size_t whysz)
{
	char c[80];

	if (chars_in(s, ":_-", 1, 128))
		return 1;
	snprintf(why, whysz, "'%s' is not a valid %s: use 1 to 128 of a-z A-Z 0-9 : _ -",
	         tpl_clean(s, c, sizeof(c)), what);
	return 0;
}

int tpl_check_thing_name(const char *s, char *why, size_t whysz)
{
	return name_check(s, "thing name", why, whysz);
}

int tpl_check_type_name(const char *s, char *why, size_t whysz)
{
	return name_check(s, "thing type name", why, whysz);
}

int tpl_check_group_name(const char *s, char *why, size_t whysz)
{
	return name_check(s, "thing group name", why, whysz);
}

int tpl_check_billing_group(const char *s, char *why, size_t whysz)
{
	return name_check(s, "billing group name", why, whysz);
}

int tpl_check_policy_name(const char *s, char *why, size_t whysz)
{
	char c[80];

	if (chars_in(s, "_+=,.@-", 1, 128))
		return 1;
	snprintf(why, whysz, "'%s' is not a valid policy name: use 1 to 128 of a-z A-Z 0-9 _ + = , . @ -",
	         tpl_clean(s, c, sizeof(c)));
	return 0;
}

int tpl_check_cert_id(const char *s, char *why, size_t whysz)
{
	char c[80];
	size_t n = strlen(s);
	int ok = n == 64;

	for (size_t i = 0; ok && i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		ok = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
	}
	if (ok)
		return 1;
	snprintf(why, whysz, "'%s' is not a certificate id (64 hexadecimal digits)",
	         tpl_clean(s, c, sizeof(c)));
	return 0;
}

int tpl_check_status(const char *s, char *why, size_t whysz)
{
	char c[80];

	if (strcasecmp(s, "ACTIVE") == 0 || strcasecmp(s, "INACTIVE") == 0)
		return 1;
	snprintf(why, whysz, "'%s' is not a certificate status: use ACTIVE or INACTIVE",
	         tpl_clean(s, c, sizeof(c)));
	return 0;
}

int tpl_attr_name_ok(const char *s)
{
	return chars_in(s, "_.,@/:#-", 1, 128);
}

int tpl_check_attr_value(const char *s, char *why, size_t whysz)
{
	char c[80];

	if (chars_in(s, "_.,@/:#-", 0, 800))
		return 1;
	snprintf(why, whysz,
	         "'%s' is not a valid attribute value: use at most 800 of a-z A-Z 0-9 _ . , @ / : # -",
	         tpl_clean(s, c, sizeof(c)));
	return 0;
}

int tpl_check_nonempty(const char *s, char *why, size_t whysz)
{
	if (s[0] != '\0')
		return 1;
	snprintf(why, whysz, "must not be empty");
	return 0;
}

int tpl_check_policy_doc(const char *s, char *why, size_t whysz)
{
	struct iotp_err e;

	iotp_err_clear(&e);
	if (policy_validate(s, strlen(s), &e) == IOTP_OK)
		return 1;
	snprintf(why, whysz, "invalid policy document: %s", e.msg);
	return 0;
}

/* ------------------------------------------------------------------ */
/* References                                                          */

/* Edit distance of a and b, or a large number when over 2 or too long. */
static size_t distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t row[65], prev[65];

	if (la > 64 || lb > 64 || (la > lb ? la - lb : lb - la) > 2)
		return 99;
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
			size_t del = prev[j] + 1, ins = row[j - 1] + 1;

			row[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
		}
		memcpy(prev, row, (lb + 1) * sizeof(row[0]));
	}
	return prev[lb];
}

/* 1 when a equals b once surrounding whitespace is ignored. */
static int trimmed_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	while (la > 0 && (*a == ' ' || *a == '\t')) {
		a++;
		la--;
	}
	while (la > 0 && (a[la - 1] == ' ' || a[la - 1] == '\t'))
		la--;
	while (lb > 0 && (*b == ' ' || *b == '\t')) {
		b++;
		lb--;
	}
	while (lb > 0 && (b[lb - 1] == ' ' || b[lb - 1] == '\t'))
		lb--;
	return la == lb && memcmp(a, b, la) == 0;
}

static void consider(const char *name, const char *cand, const char **best, size_t *bestd)
{
	size_t d;

	if (trimmed_equal(name, cand))
		d = 0;
	else if (strcasecmp(name, cand) == 0)
		d = 1;
	else
		d = distance(name, cand);
	if (d < *bestd && strlen(name) >= 3) {
		*best = cand;
		*bestd = d;
	}
}

/* A "did you mean" for an unknown name, or "" when nothing is close. */
static const char *hint(const struct template *t, const char *name, char *out, size_t outsz)
{
	const char *best = NULL, *key;
	size_t bestd = 3;
	json_t *v;
	char c[80];

	if (t->params != NULL)
		json_object_foreach((json_t *)t->params, key, v)
			consider(name, key, &best, &bestd);
	for (int i = 0; i < TPL_NPSEUDO; i++)
		consider(name, pseudo_names[i], &best, &bestd);
	for (int r = 0; r < TPL_NRES; r++)
		if (t->res_id[r] != NULL)
			consider(name, t->res_id[r], &best, &bestd);
	if (best == NULL) {
		out[0] = '\0';
		return out;
	}
	if (bestd == 0)
		snprintf(out, outsz, " (did you mean '%s'? mind the whitespace)", tpl_clean(best, c, sizeof(c)));
	else
		snprintf(out, outsz, " (did you mean '%s'?)", tpl_clean(best, c, sizeof(c)));
	return out;
}

static int resource_index(const struct template *t, const char *name)
{
	for (int r = 0; r < TPL_NRES; r++)
		if (t->res_id[r] != NULL && strcmp(t->res_id[r], name) == 0)
			return r;
	return -1;
}

/* Value of a parameter (declared or pseudo) into *out (eval mode). */
static int param_value(struct tpl_ev *ev, const char *name, int pseudo, json_t **out)
{
	const json_t *decl = ev->t->params != NULL ? json_object_get(ev->t->params, name) : NULL;
	const json_t *def = decl != NULL ? json_object_get(decl, "Default") : NULL;
	const char *s = NULL;
	char c[80];

	if (pseudo >= 0) {
		s = pseudo_value(ev->pseudo, pseudo);
		if (s != NULL && tpl_utf8_chars(s, strlen(s)) > TEMPLATE_PARAM_VALUE_MAX)
			return tpl_fail(ev, IOTP_ERR_TOO_BIG, "parameter '%s' is longer than %d characters",
			                name, TEMPLATE_PARAM_VALUE_MAX);
	} else {
		const json_t *v = ev->params != NULL ? json_object_get(ev->params, name) : NULL;

		if (v != NULL)
			s = json_string_value(v); /* checked by template_evaluate() */
	}
	if (s == NULL && def != NULL)
		s = json_string_value(def);
	if (s == NULL) {
		if (pseudo >= 0)
			return tpl_fail(ev, IOTP_ERR_INVALID,
			                "no value for parameter '%s': the certificate does not provide it",
			                name);
		return tpl_fail(ev, IOTP_ERR_INVALID, "missing parameter '%s'", tpl_clean(name, c, sizeof(c)));
	}
	*out = json_string(s);
	return *out != NULL ? 0 : fail_nomem(ev);
}

/* Resolves a name used by Ref or by a Fn::Sub variable. who is "Ref" or
 * "Fn::Sub"; sub selects the wording of the unknown-name message. */
static int resolve_name(struct tpl_ev *ev, const char *name, int sub, json_t **out)
{
	const struct template *t = ev->t;
	int pseudo = tpl_pseudo_index(name);
	int declared = t->params != NULL && json_object_get(t->params, name) != NULL;
	int r;
	char c[80], h[160];

	if (declared || pseudo >= 0)
		return ev->check ? 0 : param_value(ev, name, pseudo, out);
	r = resource_index(t, name);
	if (r >= 0) {
		const char *s;

		if (ev->check) {
			if (r == TPL_CERT && t->cert_source != 0 && t->cert_source != TEMPLATE_CERT_BY_ID)
				return tpl_fail(ev, IOTP_ERR_TEMPLATE,
				                "%s to resource '%s' needs it declared by CertificateId "
				                "(a new certificate's id is not known in advance)",
				                sub ? "Fn::Sub reference" : "Ref", tpl_clean(name, c, sizeof(c)));
			if (ev->cur_res >= 0)
				ev->edge[ev->cur_res][r] = 1;
			return 0;
		}
		if (tpl_ident(ev, (enum tpl_res)r, &s) != 0)
			return -1;
		*out = json_string(s);
		return *out != NULL ? 0 : fail_nomem(ev);
	}
	h[0] = '\0';
	if (!ev->check || ev->pr->count < TEMPLATE_PROBLEMS_MAX)
		hint(t, name, h, sizeof(h)); /* not for problems that will not be shown */
	if (!sub)
		return tpl_fail(ev, IOTP_ERR_TEMPLATE, "Ref to unknown parameter '%s'%s",
		                tpl_clean(name, c, sizeof(c)), h);
	if (h[0] == '\0' && (strchr(name, ':') != NULL || strchr(name, '.') != NULL))
		return tpl_fail(ev, IOTP_ERR_TEMPLATE,
		                "Fn::Sub refers to unknown parameter '%s' (write ${!%s} for the literal text)",
		                tpl_clean(name, c, sizeof(c)), tpl_clean(name, c, sizeof(c)));
	return tpl_fail(ev, IOTP_ERR_TEMPLATE, "Fn::Sub refers to unknown parameter '%s'%s",
	                tpl_clean(name, c, sizeof(c)), h);
}

/* ------------------------------------------------------------------ */
/* Values                                                              */

static const char *json_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "a list";
	case JSON_STRING: return "a string";
	case JSON_INTEGER:
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	default: return "null";
	}
}

/* Reports a value of the wrong shape: a list where a string is needed
 * (want_list 0) or the reverse. */
static int wrong_shape(struct tpl_ev *ev, const json_t *node, int want_list)
{
	const char *got = want_list ? "string" : "list", *need = want_list ? "list" : "string";

	if (tpl_is_intrinsic(node))
		return tpl_fail(ev, IOTP_ERR_TEMPLATE, "%s gives a %s where a %s is needed",
		                json_object_iter_key(json_object_iter((json_t *)node)), got, need);
	return tpl_fail(ev, IOTP_ERR_TEMPLATE, "a %s is given where a %s is needed", got, need);
}

int tpl_is_intrinsic(const json_t *v)
{
	const char *k;

	if (!json_is_object(v) || json_object_size(v) != 1)
		return 0;
	k = json_object_iter_key(json_object_iter((json_t *)v));
	return strcmp(k, "Ref") == 0 || strncmp(k, "Fn::", 4) == 0;
}

/* A string-valued node into *out (eval: new JSON string). */
static int expr_string(struct tpl_ev *ev, const json_t *node, tpl_check_fn check, json_t **out)
{
	struct tpl_val v;
	char why[600];

	*out = NULL;
	if (tpl_expr(ev, node, 0, &v) != 0)
		return -1;
	if (v.type == TPL_VT_LIST) {
		json_decref(v.v);
		return wrong_shape(ev, node, 0);
	}
	if (ev->check) {
		if (check != NULL && json_is_string(node) &&
		    !check(json_string_value(node), why, sizeof(why)))
			return tpl_fail(ev, IOTP_ERR_TEMPLATE, "%s", why);
		return 0;
	}
	if (!json_is_string(v.v)) {
		json_decref(v.v);
		return wrong_shape(ev, node, 0);
	}
	if (check != NULL && !check(json_string_value(v.v), why, sizeof(why))) {
		json_decref(v.v);
		return tpl_fail(ev, IOTP_ERR_TEMPLATE, "%s", why);
	}
	*out = v.v;
	return 0;
}

int tpl_string(struct tpl_ev *ev, const json_t *node, tpl_check_fn check, char **out)
{
	json_t *s = NULL;

	*out = NULL;
	if (expr_string(ev, node, check, &s) != 0)
		return -1;
	if (s == NULL)
		return 0;
	*out = strdup(json_string_value(s));
	json_decref(s);
	return *out != NULL ? 0 : fail_nomem(ev);
}

int tpl_list(struct tpl_ev *ev, const json_t *node, tpl_check_fn check, json_t **out)
{
	json_t *arr = NULL, *s = NULL;
	struct tpl_val v;
	char why[600];
	int bad = 0;

	*out = NULL;
	if (json_is_array(node)) {
		if (!ev->check && (arr = json_array()) == NULL)
			return fail_nomem(ev);
		for (size_t i = 0; i < json_array_size(node); i++) {
			size_t saved = tpl_path_index(ev, i);
			int rc = expr_string(ev, json_array_get(node, i), check, &s);

			tpl_path_pop(ev, saved);
			if (rc != 0) {
				bad = 1;
				if (!ev->check)
					break;
				continue;
			}
			if (s != NULL && json_array_append_new(arr, s) != 0) {
				bad = 1;
				fail_nomem(ev);
				break;
			}
		}
		if (bad) {
			json_decref(arr);
			return -1;
		}
		*out = arr;
		return 0;
	}
	if (tpl_expr(ev, node, 0, &v) != 0)
		return -1;
	if (v.type == TPL_VT_STR) {
		json_decref(v.v);
		return wrong_shape(ev, node, 1);
	}
	if (ev->check)
		return 0;
	if (!json_is_array(v.v)) {
		json_decref(v.v);
		return wrong_shape(ev, node, 1);
	}
	for (size_t i = 0; check != NULL && i < json_array_size(v.v); i++) {
		if (!check(json_string_value(json_array_get(v.v, i)), why, sizeof(why))) {
			size_t saved = tpl_path_index(ev, i);

			tpl_fail(ev, IOTP_ERR_TEMPLATE, "%s", why);
			tpl_path_pop(ev, saved);
			json_decref(v.v);
			return -1;
		}
	}
	*out = v.v;
	return 0;
}

/* Appends to a string being built, within TEMPLATE_VALUE_MAX. */
static int build(struct tpl_ev *ev, struct buf *b, const char *p, size_t n, const char *fn)
{
	iotp_rc rc = buf_append(b, p, n);

	if (rc == IOTP_ERR_TOO_BIG)
		return tpl_fail(ev, IOTP_ERR_TOO_BIG, "%s builds a string longer than %d bytes", fn,
		                TEMPLATE_VALUE_MAX);
	if (rc != IOTP_OK)
		return fail_nomem(ev);
	return 0;
}

static int finish_string(struct tpl_ev *ev, struct buf *b, struct tpl_val *out)
{
	out->v = json_stringn(b->data != NULL ? b->data : "", b->len);
	buf_cleanup(b);
	return out->v != NULL ? 0 : fail_nomem(ev);
}

static int fn_ref(struct tpl_ev *ev, const json_t *arg, struct tpl_val *out)
{
	out->type = TPL_VT_STR;
	if (!json_is_string(arg))
		return tpl_fail(ev, IOTP_ERR_TEMPLATE, "Ref needs the name of a parameter or a resource");
	return resolve_name(ev, json_string_value(arg), 0, &out->v);
}

static int fn_join(struct tpl_ev *ev, const json_t *arg, struct tpl_val *out)
{
	const json_t *delim = json_array_get(arg, 0);
	json_t *values = NULL;
	struct buf b;
	size_t saved;
	int rc;

	out->type = TPL_VT_STR;
	if (!json_is_array(arg) || json_array_size(arg) != 2 || !json_is_string(delim))
		return tpl_fail(ev, IOTP_ERR_TEMPLATE, "Fn::Join needs [delimiter, [values]]");
	saved = tpl_path_key(ev, "Fn::Join");
	tpl_path_index(ev, 1);
	rc = tpl_list(ev, json_array_get(arg, 1), NULL, &values);
	tpl_path_pop(ev, saved);
	if (rc != 0 || ev->check)
		return rc;
	buf_init(&b, TEMPLATE_VALUE_MAX);
	for (size_t i = 0; i < json_array_size(values) && rc == 0; i++) {
		const json_t *s = json_array_get(values, i);

		if (i > 0)
			rc = build(ev, &b, json_string_value(delim), json_string_length(delim), "Fn::Join");
		if (rc == 0)
			rc = build(ev, &b, json_string_value(s), json_string_length(s), "Fn::Join");
	}
	json_decref(values);
	if (rc != 0) {
		buf_cleanup(&b);
		return rc;
	}
	return finish_string(ev, &b, out);
}

/* Parses a Fn::Select index; -1 when it is not a non-negative integer. */
static int64_t index_of(const char *s)
{
	int64_t v;

	return util_parse_int64(s, 0, INT64_MAX, &v) == IOTP_OK ? v : -1;
}

static int fn_select(struct tpl_ev *ev, const json_t *arg, struct tpl_val *out)
{
	const json_t *inode = json_array_get(arg, 0), *lnode = json_array_get(arg, 1);
	json_t *list = NULL, *is = NULL;
	int64_t idx = -1;
	size_t saved, mark;
	int rc = 0;
	char c[80];

	out->type = TPL_VT_STR;
	if (!json_is_array(arg) || json_array_size(arg) != 2)
		return tpl_fail(ev, IOTP_ERR_TEMPLATE, "Fn::Select needs [index, [values]]");
	saved = tpl_path_key(ev, "Fn::Select");
	mark = tpl_path_index(ev, 0);
	if (json_is_integer(inode)) {
		idx = json_integer_value(inode);
		if (idx < 0)
			rc = tpl_fail(ev, IOTP_ERR_TEMPLATE, "Fn::Select index must not be negative");
	} else if (json_is_string(inode) || tpl_is_intrinsic(inode)) {
		rc = expr_string(ev, inode, NULL, &is);
		if (rc == 0) {
			const char *text = is != NULL ? json_string_value(is)
			                              : json_is_string(inode) ? json_string_value(inode)
			                                                      : NULL;

			if (text != NULL && (idx = index_of(text)) < 0)
				rc = tpl_fail(ev, IOTP_ERR_TEMPLATE,
				              "Fn::Select index '%s' is not a non-negative integer",
				              tpl_clean(text, c, sizeof(c)));
		}
		json_decref(is);
	} else {
		rc = tpl_fail(ev, IOTP_ERR_TEMPLATE, "Fn::Select index must be a non-negative integer");
	}
	tpl_path_pop(ev, mark);
	if (rc != 0 && !ev->check) {
		tpl_path_pop(ev, saved);
		return rc;
	}
	tpl_path_index(ev, 1);
	if (tpl_list(ev, lnode, NULL, &list) != 0)
		rc = -1;
	tpl_path_pop(ev, saved);
	if (rc != 0)
		return rc;
	if (ev->check) {
		/* Both literal: the range is known now. */
		if (idx >= 0 && json_is_array(lnode) && (size_t)idx >= json_array_size(lnode))
			return tpl_fail(ev, IOTP_ERR_TEMPLATE,
			                "Fn::Select index %lld is out of range (the list has %zu elements)",
			                (long long)idx, json_array_size(lnode));
		return 0;
	}
	if ((size_t)idx >= json_array_size(list)) {
		rc = tpl_fail(ev, IOTP_ERR_TEMPLATE,
		              "Fn::Select index %lld is out of range (the list has %zu elements)",
		              (long long)idx, json_array_size(list));
		json_decref(list);
		return rc;
	}
	out->v = json_string(json_string_value(json_array_get(list, (size_t)idx)));
	json_decref(list);
	return out->v != NULL ? 0 : fail_nomem(ev);
}

static int fn_split(struct tpl_ev *ev, const json_t *arg, struct tpl_val *out)
{
	const json_t *delim = json_array_get(arg, 0);
	json_t *src = NULL, *list = NULL;
	const char *s, *d, *hit;
	size_t saved, dlen;
	int rc;

	out->type = TPL_VT_LIST;
	if (!json_is_array(arg) || json_array_size(arg) != 2 || !json_is_string(delim))
		return tpl_fail(ev, IOTP_ERR_TEMPLATE, "Fn::Split needs [delimiter, string]");
	if (json_string_length(delim) == 0)
		return tpl_fail(ev, IOTP_ERR_TEMPLATE, "Fn::Split delimiter must not be empty");
	saved = tpl_path_key(ev, "Fn::Split");
	tpl_path_index(ev, 1);
	rc = expr_string(ev, json_array_get(arg, 1), NULL, &src);
	tpl_path_pop(ev, saved);
	if (rc != 0 || ev->check)
		return rc;
	list = json_array();
	if (list == NULL) {
		json_decref(src);
		return fail_nomem(ev);
	}
	s = json_string_value(src);
	d = json_string_value(delim);
	dlen = json_string_length(delim);
	for (;;) {
		hit = strstr(s, d);
		if (json_array_append_new(list, json_stringn(s, hit != NULL ? (size_t)(hit - s)
		                                                          : strlen(s))) != 0) {
			rc = fail_nomem(ev);
			break;
		}
		if (hit == NULL)
			break;
		s = hit + dlen;
	}
	json_decref(src);
	if (rc != 0) {
		json_decref(list);
		return rc;
	}
	out->v = list;
	return 0;
}

/* Looks key up in obj for Fn::FindInMap; check mode reports only literals. */
static int fn_findinmap(struct tpl_ev *ev, const json_t *arg, struct tpl_val *out)
{
	json_t *k[3] = {NULL, NULL, NULL};
	const char *name[3] = {NULL, NULL, NULL};
	const json_t *level = ev->t->mappings, *found;
	size_t saved, mark;
	int rc = 0;
	char c1[80], c2[80];

	out->type = TPL_VT_ANY;
	if (!json_is_array(arg) || json_array_size(arg) != 3)
		return tpl_fail(ev, IOTP_ERR_TEMPLATE,
		                "Fn::FindInMap needs [map name, top-level key, second-level key]");
	saved = tpl_path_key(ev, "Fn::FindInMap");
	for (size_t i = 0; i < 3; i++) {
		const json_t *a = json_array_get(arg, i);

		mark = tpl_path_index(ev, i);
		if (expr_string(ev, a, NULL, &k[i]) != 0)
			rc = -1;
		tpl_path_pop(ev, mark);
		if (rc != 0 && !ev->check)
			break;
		name[i] = k[i] != NULL ? json_string_value(k[i])
		                       : json_is_string(a) ? json_string_value(a) : NULL;
	}
	tpl_path_pop(ev, saved);
	if (rc != 0)
		goto out;
	/* Walk as far as the keys are known (all of them when evaluating). */
	for (size_t i = 0; i < 3 && name[i] != NULL; i++) {
		found = level != NULL ? json_object_get(level, name[i]) : NULL;
		if (found == NULL) {
			if (i == 0)
				rc = tpl_fail(ev, IOTP_ERR_TEMPLATE, "Fn::FindInMap: no map '%s' in Mappings",
				              tpl_clean(name[0], c1, sizeof(c1)));
			else
				rc = tpl_fail(ev, IOTP_ERR_TEMPLATE, "Fn::FindInMap: no key '%s' in %s '%s'",
				              tpl_clean(name[i], c1, sizeof(c1)), i == 1 ? "map" : "entry",
				              tpl_clean(name[i - 1], c2, sizeof(c2)));
			goto out;
		}
		level = found;
		if (i == 2) {
			out->type = json_is_array(found) ? TPL_VT_LIST : TPL_VT_STR;
			if (!ev->check) {
				out->v = json_deep_copy(found);
				if (out->v == NULL)
					rc = fail_nomem(ev);
			}
		}
	}
out:
	for (size_t i = 0; i < 3; i++)
		json_decref(k[i]);
	return rc;
}

/* Value of a Fn::Sub variable: its own map first, then Ref's names. */
static int sub_var(struct tpl_ev *ev, const json_t *vars, const char *name, json_t **out)
{
	const json_t *local = vars != NULL ? json_object_get(vars, name) : NULL;
	size_t saved;
	int rc;

	if (local == NULL)
		return resolve_name(ev, name, 1, out);
	if (ev->check)
		return 0; /* the map's values are checked once, by fn_sub */
	saved = tpl_path_index(ev, 1);
	tpl_path_key(ev, name);
	rc = expr_string(ev, local, NULL, out);
	tpl_path_pop(ev, saved);
	return rc;
}

static int fn_sub(struct tpl_ev *ev, const json_t *arg, struct tpl_val *out)
{
	const json_t *str = arg, *vars = NULL;
	const char *s, *end;
	struct buf b;
	size_t saved;
	int rc = 0, bad = 0;
	const char *key;
	json_t *val;

	out->type = TPL_VT_STR;
	if (json_is_array(arg)) {
		str = json_array_get(arg, 0);
		vars = json_array_get(arg, 1);
		if (json_array_size(arg) != 2 || !json_is_string(str) || !json_is_object(vars))
			return tpl_fail(ev, IOTP_ERR_TEMPLATE,
			                "Fn::Sub needs a string or [string, {variables}]");
	} else if (!json_is_string(arg)) {
		return tpl_fail(ev, IOTP_ERR_TEMPLATE, "Fn::Sub needs a string or [string, {variables}]");
	}
	saved = tpl_path_key(ev, "Fn::Sub");
	if (ev->check && vars != NULL) {
		size_t mark = tpl_path_index(ev, 1);

		json_object_foreach((json_t *)vars, key, val) {
			size_t m2 = tpl_path_key(ev, key);
			json_t *ignored = NULL;

			if (key[0] == '\0') {
				tpl_fail(ev, IOTP_ERR_TEMPLATE, "variable names must not be empty");
				bad = 1;
			} else if (expr_string(ev, val, NULL, &ignored) != 0)
				bad = 1;
			tpl_path_pop(ev, m2);
		}
		tpl_path_pop(ev, mark);
	}
	if (vars != NULL)
		tpl_path_index(ev, 0);
	buf_init(&b, TEMPLATE_VALUE_MAX);
	s = json_string_value(str);
	while (*s != '\0' && rc == 0) {
		const char *dollar = strstr(s, "${");
		size_t nlen;
		char name[TEMPLATE_PARAM_NAME_MAX + 1];
		json_t *v = NULL;

		if (dollar == NULL) {
			rc = ev->check ? 0 : build(ev, &b, s, strlen(s), "Fn::Sub");
			break;
		}
		if (!ev->check)
			rc = build(ev, &b, s, (size_t)(dollar - s), "Fn::Sub");
		if (rc != 0)
			break;
		end = strchr(dollar + 2, '}');
		if (end == NULL) {
			rc = tpl_fail(ev, IOTP_ERR_TEMPLATE, "Fn::Sub: '${' without a closing '}'");
			break;
		}
		nlen = (size_t)(end - dollar - 2);
		s = end + 1;
		if (nlen > 0 && dollar[2] == '!') {
			/* ${!Text} is the literal "${Text}". */
			if (!ev->check) {
				rc = build(ev, &b, "${", 2, "Fn::Sub");
				if (rc == 0)
					rc = build(ev, &b, dollar + 3, nlen - 1, "Fn::Sub");
				if (rc == 0)
					rc = build(ev, &b, "}", 1, "Fn::Sub");
			}
			continue;
		}
		if (nlen == 0) {
			rc = tpl_fail(ev, IOTP_ERR_TEMPLATE, "Fn::Sub: empty variable '${}'");
			break;
		}
		if (nlen > TEMPLATE_PARAM_NAME_MAX) {
			rc = tpl_fail(ev, IOTP_ERR_TEMPLATE, "Fn::Sub: variable name longer than %d characters",
			              TEMPLATE_PARAM_NAME_MAX);
			break;
		}
		memcpy(name, dollar + 2, nlen);
		name[nlen] = '\0';
		if (sub_var(ev, vars, name, &v) != 0) {
			rc = -1;
			if (ev->check) {
				/* keep scanning: report every unknown variable */
				bad = 1;
				rc = 0;
			}
			continue;
		}
		if (v != NULL) {
			rc = build(ev, &b, json_string_value(v), json_string_length(v), "Fn::Sub");
			json_decref(v);
		}
	}
	tpl_path_pop(ev, saved);
	if (rc != 0 || bad || ev->check) {
		buf_cleanup(&b);
		return rc != 0 || bad ? -1 : 0;
	}
	return finish_string(ev, &b, out);
}

static int intrinsic(struct tpl_ev *ev, const json_t *node, struct tpl_val *out)
{
	json_t *obj = (json_t *)node; /* iteration only reads */
	const char *fn = json_object_iter_key(json_object_iter(obj));
	const json_t *arg = json_object_iter_value(json_object_iter(obj));
	char c[80];

	ev->saw_intrinsic = 1;
	if (strcmp(fn, "Ref") == 0)
		return fn_ref(ev, arg, out);
	if (strcmp(fn, "Fn::Join") == 0)
		return fn_join(ev, arg, out);
	if (strcmp(fn, "Fn::Select") == 0)
		return fn_select(ev, arg, out);
	if (strcmp(fn, "Fn::Split") == 0)
		return fn_split(ev, arg, out);
	if (strcmp(fn, "Fn::FindInMap") == 0)
		return fn_findinmap(ev, arg, out);
	if (strcmp(fn, "Fn::Sub") == 0)
		return fn_sub(ev, arg, out);
	return tpl_fail(ev, IOTP_ERR_TEMPLATE,
	                "unknown intrinsic function '%s' (supported: Ref, Fn::Join, Fn::Select, "
	                "Fn::Split, Fn::FindInMap, Fn::Sub)",
	                tpl_clean(fn, c, sizeof(c)));
}

static int expr_json(struct tpl_ev *ev, const json_t *node, struct tpl_val *out)
{
	json_t *res = NULL, *val;
	const char *key;
	struct tpl_val sub;
	int bad = 0;

	out->type = TPL_VT_JSON;
	if (json_is_object(node)) {
		if (!ev->check && (res = json_object()) == NULL)
			return fail_nomem(ev);
		json_object_foreach((json_t *)node, key, val) {
			size_t saved = tpl_path_key(ev, key);
			int rc = tpl_expr(ev, val, 1, &sub);

			tpl_path_pop(ev, saved);
			if (rc != 0) {
				bad = 1;
				if (!ev->check)
					break;
				continue;
			}
			if (sub.v != NULL && json_object_set_new(res, key, sub.v) != 0) {
				bad = 1;
				fail_nomem(ev);
				break;
			}
		}
	} else if (json_is_array(node)) {
		if (!ev->check && (res = json_array()) == NULL)
			return fail_nomem(ev);
		for (size_t i = 0; i < json_array_size(node); i++) {
			size_t saved = tpl_path_index(ev, i);
			int rc = tpl_expr(ev, json_array_get(node, i), 1, &sub);

			tpl_path_pop(ev, saved);
			if (rc != 0) {
				bad = 1;
				if (!ev->check)
					break;
				continue;
			}
			if (sub.v != NULL && json_array_append_new(res, sub.v) != 0) {
				bad = 1;
				fail_nomem(ev);
				break;
			}
		}
	} else if (!ev->check) {
		res = json_deep_copy(node); /* a scalar: a new value, no shared reference */
		if (res == NULL)
			return fail_nomem(ev);
	}
	if (bad) {
		json_decref(res);
		return -1;
	}
	out->v = res;
	return 0;
}

int tpl_expr(struct tpl_ev *ev, const json_t *node, int json_ctx, struct tpl_val *out)
{
	int rc;

	out->type = TPL_VT_STR;
	out->v = NULL;
	if (ev->depth >= TEMPLATE_MAX_DEPTH)
		return tpl_fail(ev, IOTP_ERR_TEMPLATE, "nested more than %d levels deep",
		                TEMPLATE_MAX_DEPTH);
	ev->depth++;
	if (tpl_is_intrinsic(node)) {
		rc = intrinsic(ev, node, out);
		if (rc != 0) {
			json_decref(out->v);
			out->v = NULL;
		}
	} else if (json_is_string(node)) {
		rc = 0;
		if (!ev->check) {
			out->v = json_stringn(json_string_value(node), json_string_length(node));
			if (out->v == NULL)
				rc = fail_nomem(ev);
		}
	} else if (json_ctx) {
		rc = expr_json(ev, node, out);
	} else if (json_is_array(node)) {
		out->type = TPL_VT_LIST;
		rc = tpl_list(ev, node, NULL, &out->v);
	} else if (json_is_object(node) && json_object_size(node) == 1) {
		char c[80];

		rc = tpl_fail(ev, IOTP_ERR_TEMPLATE,
		              "expected a string, a list or an intrinsic function, not an object "
		              "with member '%s'",
		              tpl_clean(json_object_iter_key(json_object_iter((json_t *)node)), c, sizeof(c)));
	} else {
		rc = tpl_fail(ev, IOTP_ERR_TEMPLATE,
		              "expected a string, a list or an intrinsic function, not %s",
		              json_kind(node));
	}
	ev->depth--;
	return rc;
}

/* ------------------------------------------------------------------ */
/* Resource identities (eval mode)                                     */

int tpl_policy_document(struct tpl_ev *ev, const char **out)
{
	const struct template *t = ev->t;
	const json_t *node = json_object_get(t->props[TPL_POLICY], "PolicyDocument");
	char saved[TPL_PATH_MAX], why[600];
	size_t slen;
	int depth = ev->depth, rc;
	struct tpl_val v = {TPL_VT_STR, NULL};
	json_t *s = NULL;

	if (ev->policy_doc != NULL) {
		*out = ev->policy_doc;
		return 0;
	}
	tpl_path_save(ev, saved, &slen);
	ev->plen = 0;
	ev->path[0] = '\0';
	ev->depth = 0;
	tpl_path_key(ev, "Resources");
	tpl_path_key(ev, t->res_id[TPL_POLICY]);
	tpl_path_key(ev, "Properties");
	tpl_path_key(ev, "PolicyDocument");
	if (json_is_object(node) && !tpl_is_intrinsic(node)) {
		rc = tpl_expr(ev, node, 1, &v);
		if (rc == 0) {
			ev->policy_doc = json_dumps(v.v, JSON_COMPACT);
			json_decref(v.v);
			if (ev->policy_doc == NULL)
				rc = fail_nomem(ev);
			else if (!tpl_check_policy_doc(ev->policy_doc, why, sizeof(why)))
				rc = tpl_fail(ev, IOTP_ERR_TEMPLATE, "%s", why);
		}
	} else {
		rc = expr_string(ev, node, tpl_check_policy_doc, &s);
		if (rc == 0) {
			ev->policy_doc = strdup(json_string_value(s));
			json_decref(s);
			if (ev->policy_doc == NULL)
				rc = fail_nomem(ev);
		}
	}
	tpl_path_restore(ev, saved, slen);
	ev->depth = depth;
	if (rc != 0)
		return rc;
	*out = ev->policy_doc;
	return 0;
}

/* The generated policy name: lowercase hex SHA-256 of the document. */
static int hash_name(struct tpl_ev *ev, const char *doc, json_t **out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 1];

	if (EVP_Digest(doc, strlen(doc), md, &mdlen, EVP_sha256(), NULL) != 1)
		return tpl_fail(ev, IOTP_ERR_CRYPTO, "cannot hash the policy document");
	util_hex(md, mdlen, hex);
	*out = json_string(hex);
	return *out != NULL ? 0 : fail_nomem(ev);
}

int tpl_ident(struct tpl_ev *ev, enum tpl_res r, const char **out)
{
	const struct template *t = ev->t;
	const json_t *props = t->props[r], *node;
	const char *key = res_props[r], *doc;
	char saved[TPL_PATH_MAX];
	size_t slen;
	int depth = ev->depth, rc;
	json_t *v = NULL;

	if (ev->ident[r] != NULL) {
		*out = json_string_value(ev->ident[r]);
		return 0;
	}
	if (ev->visiting[r]) /* refused at parse time: cannot happen */
		return tpl_fail(ev, IOTP_ERR_INTERNAL, "circular reference through '%s'", t->res_id[r]);
	ev->visiting[r] = 1;
	if (r == TPL_POLICY && json_object_get(props, "PolicyName") == NULL) {
		rc = tpl_policy_document(ev, &doc);
		if (rc == 0)
			rc = hash_name(ev, doc, &v);
		ev->visiting[r] = 0;
		if (rc != 0)
			return rc;
		ev->ident[r] = v;
		*out = json_string_value(v);
		return 0;
	}
	node = r == TPL_CERT ? tpl_cert_id_member(props, &key) : json_object_get(props, key);
	tpl_path_save(ev, saved, &slen);
	ev->plen = 0;
	ev->path[0] = '\0';
	ev->depth = 0;
	tpl_path_key(ev, "Resources");
	tpl_path_key(ev, t->res_id[r]);
	tpl_path_key(ev, "Properties");
	tpl_path_key(ev, key);
	rc = expr_string(ev, node,
	                 r == TPL_THING ? tpl_check_thing_name
	                 : r == TPL_CERT ? tpl_check_cert_id : tpl_check_policy_name,
	                 &v);
	tpl_path_restore(ev, saved, slen);
	ev->depth = depth;
	ev->visiting[r] = 0;
	if (rc != 0)
		return rc;
	if (r == TPL_CERT) {
		/* Certificate ids are lowercase everywhere in iotprov. */
		char id[65];
		const char *s = json_string_value(v);

		for (size_t i = 0; i < 64; i++)
			id[i] = (char)((s[i] >= 'A' && s[i] <= 'F') ? s[i] - 'A' + 'a' : s[i]);
		id[64] = '\0';
		json_decref(v);
		v = json_string(id);
		if (v == NULL)
			return fail_nomem(ev);
	}
	ev->ident[r] = v;
	*out = json_string_value(v);
	return 0;
}
