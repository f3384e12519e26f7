/*
 * Provisioning templates: parsing and validation (see template.h for the
 * contract, docs/templates.md for users).
 *
 * The body is size-checked, parsed with jansson (duplicate keys refused),
 * then walked section by section in check mode: every problem is recorded
 * with its JSON path and the walk goes on, so an operator sees everything
 * wrong with a template in one answer. Values are checked by the same walker
 * that evaluates them (template_expr.c); resource references are collected
 * on the way and searched for cycles at the end. Only a template without a
 * single problem is returned.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/template_internal.h"

static const char *const res_types[TPL_NRES] = {
	"AWS::IoT::Thing", "AWS::IoT::Certificate", "AWS::IoT::Policy",
};

static const char *const override_names[] = {"DO_NOTHING", "REPLACE", "FAIL", "MERGE"};

const char *template_override_name(enum template_override o)
{
	return (unsigned)o < sizeof(override_names) / sizeof(override_names[0])
	               ? override_names[o] : "";
}

enum template_kind template_kind_of(const struct template *t)
{
	return t->kind;
}

void template_problems_cleanup(struct template_problems *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->count; i++)
		free(p->items[i]);
	free(p->items);
	p->items = NULL;
	p->count = 0;
	p->omitted = 0;
}

void template_free(struct template *t)
{
	if (t == NULL)
		return;
	json_decref(t->root);
	free(t);
}

const json_t *tpl_cert_id_member(const json_t *props, const char **key)
{
	const json_t *v = json_object_get(props, "CertificateId");

	*key = "CertificateId";
	if (v == NULL && (v = json_object_get(props, "CertificateID")) != NULL)
		*key = "CertificateID";
	return v;
}

/* 1 when key is one of the NULL-terminated names. */
static int one_of(const char *key, const char *const *names)
{
	for (; *names != NULL; names++)
		if (strcmp(key, *names) == 0)
			return 1;
	return 0;
}

static int logical_id_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > TEMPLATE_LOGICAL_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/* Checks members of obj against the allowed names; reports the others. */
static void members_allowed(struct tpl_ev *ev, const json_t *obj, const char *const *allowed,
                            const char *what, const char *list)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)obj, key, v) {
		size_t saved;

		if (one_of(key, allowed))
			continue;
		saved = tpl_path_key(ev, key);
		tpl_fail(ev, IOTP_ERR_INVALID, "unknown %s (allowed: %s)", what, list);
		tpl_path_pop(ev, saved);
	}
}

/* Walks a string-valued member when present. */
static void check_string_member(struct tpl_ev *ev, const json_t *obj, const char *key,
                                tpl_check_fn check)
{
	const json_t *v = json_object_get(obj, key);
	size_t saved;
	char *ignored = NULL;

	if (v == NULL)
		return;
	saved = tpl_path_key(ev, key);
	tpl_string(ev, v, check, &ignored);
	tpl_path_pop(ev, saved);
}

/* ------------------------------------------------------------------ */
/* Sections                                                            */

static void check_parameters(struct tpl_ev *ev, struct template *t, const json_t *p)
{
	static const char *const allowed[] = {"Type", "Default", NULL};
	const char *name;
	json_t *decl;
	size_t top = tpl_path_key(ev, "Parameters");

	if (!json_is_object(p)) {
		tpl_fail(ev, IOTP_ERR_INVALID, "must be an object of parameter declarations");
		tpl_path_pop(ev, top);
		return;
	}
	t->params = p;
	json_object_foreach((json_t *)p, name, decl) {
		size_t saved = tpl_path_key(ev, name);
		const json_t *type = json_object_get(decl, "Type");
		const json_t *def = json_object_get(decl, "Default");

		if (name[0] == '\0')
			tpl_fail(ev, IOTP_ERR_INVALID, "parameter names must not be empty");
		else if (tpl_utf8_chars(name, strlen(name)) > TEMPLATE_PARAM_NAME_MAX)
			tpl_fail(ev, IOTP_ERR_INVALID, "parameter name longer than %d characters",
			         TEMPLATE_PARAM_NAME_MAX);
		else if (strncmp(name, "AWS::", 5) == 0 && tpl_pseudo_index(name) < 0)
			tpl_fail(ev, IOTP_ERR_INVALID,
			         "unknown pseudo parameter (names starting with AWS:: are reserved; "
			         "known: AWS::IoT::Certificate::Id, CommonName, Country, Organization, "
			         "OrganizationalUnit, DistinguishedNameQualifier, StateName, SerialNumber)");
		if (!json_is_object(decl)) {
			tpl_fail(ev, IOTP_ERR_INVALID,
			         "a parameter is declared as {\"Type\": \"String\", \"Default\": ...}");
			tpl_path_pop(ev, saved);
			continue;
		}
		members_allowed(ev, decl, allowed, "parameter member", "Type, Default");
		if (type == NULL) {
			tpl_fail(ev, IOTP_ERR_INVALID, "Type is missing (parameters are of Type String)");
		} else if (!json_is_string(type) || strcmp(json_string_value(type), "String") != 0) {
			size_t s2 = tpl_path_key(ev, "Type");

			tpl_fail(ev, IOTP_ERR_INVALID,
			         "unsupported parameter type: parameters are of Type String");
			tpl_path_pop(ev, s2);
		}
		if (def != NULL) {
			size_t s2 = tpl_path_key(ev, "Default");

			if (!json_is_string(def))
				tpl_fail(ev, IOTP_ERR_INVALID, "a Default must be a string, not %s",
				         json_is_array(def) ? "a list" : json_is_object(def) ? "an object"
				                                                            : "a number or boolean");
			else if (tpl_utf8_chars(json_string_value(def), json_string_length(def)) >
			         TEMPLATE_PARAM_VALUE_MAX)
				tpl_fail(ev, IOTP_ERR_INVALID, "a Default longer than %d characters",
				         TEMPLATE_PARAM_VALUE_MAX);
			tpl_path_pop(ev, s2);
		}
		tpl_path_pop(ev, saved);
	}
	tpl_path_pop(ev, top);
}

static void check_mappings(struct tpl_ev *ev, struct template *t, const json_t *m)
{
	const char *k0, *k1, *k2;
	json_t *v0, *v1, *v2;
	size_t top = tpl_path_key(ev, "Mappings");

	if (!json_is_object(m)) {
		tpl_fail(ev, IOTP_ERR_INVALID, "must be an object of maps");
		tpl_path_pop(ev, top);
		return;
	}
	t->mappings = m;
	json_object_foreach((json_t *)m, k0, v0) {
		size_t s0 = tpl_path_key(ev, k0);

		if (!json_is_object(v0)) {
			tpl_fail(ev, IOTP_ERR_INVALID, "a map is an object of top-level keys");
			tpl_path_pop(ev, s0);
			continue;
		}
		json_object_foreach(v0, k1, v1) {
			size_t s1 = tpl_path_key(ev, k1);

			if (!json_is_object(v1)) {
				tpl_fail(ev, IOTP_ERR_INVALID,
				         "a top-level key maps to an object of second-level keys");
				tpl_path_pop(ev, s1);
				continue;
			}
			json_object_foreach(v1, k2, v2) {
				size_t s2 = tpl_path_key(ev, k2), i;
				int ok = json_is_string(v2);

				for (i = 0; json_is_array(v2) && i < json_array_size(v2); i++)
					if (!json_is_string(json_array_get(v2, i)))
						break;
				ok = ok || (json_is_array(v2) && i == json_array_size(v2));
				if (!ok)
					tpl_fail(ev, IOTP_ERR_INVALID,
					         "must be a string or a list of strings%s",
					         tpl_is_intrinsic(v2)
					                 ? " (Mappings cannot use intrinsic functions)" : "");
				tpl_path_pop(ev, s2);
			}
			tpl_path_pop(ev, s1);
		}
		tpl_path_pop(ev, s0);
	}
	tpl_path_pop(ev, top);
}

static void check_overrides(struct tpl_ev *ev, struct template *t, enum tpl_res r,
                            const json_t *over)
{
	/* The property names of the AWS examples and the upper-case names of
	 * the AWS property list both name a setting. */
	static const char *const thing_keys[3][2] = {
		{"ThingTypeName", "THING_TYPE_NAME"},
		{"ThingGroups", "THING_GROUPS"},
		{"AttributePayload", "ATTRIBUTE_PAYLOAD"},
	};
	const char *key;
	json_t *v;
	int seen[3] = {0, 0, 0};
	size_t top = tpl_path_key(ev, "OverrideSettings");

	if (!json_is_object(over)) {
		tpl_fail(ev, IOTP_ERR_INVALID, "must be an object of property: setting");
		tpl_path_pop(ev, top);
		return;
	}
	json_object_foreach((json_t *)over, key, v) {
		size_t saved = tpl_path_key(ev, key);
		int slot = -1, merge_ok = 0;
		size_t o;
		const char *s = json_string_value(v);

		if (r == TPL_THING) {
			for (int i = 0; i < 3; i++)
				if (strcmp(key, thing_keys[i][0]) == 0 || strcmp(key, thing_keys[i][1]) == 0)
					slot = i;
			merge_ok = slot == 1 || slot == 2;
		} else if (strcmp(key, "Status") == 0 || strcmp(key, "STATUS") == 0) {
			slot = 0;
		}
		if (slot < 0) {
			tpl_fail(ev, IOTP_ERR_INVALID, "unknown override setting (allowed: %s)",
			         r == TPL_THING ? "ThingTypeName, ThingGroups, AttributePayload" : "Status");
			tpl_path_pop(ev, saved);
			continue;
		}
		if (seen[slot])
			tpl_fail(ev, IOTP_ERR_INVALID, "this property's setting is given twice");
		seen[slot] = 1;
		for (o = 0; s != NULL && o < 4; o++)
			if (strcmp(s, override_names[o]) == 0)
				break;
		if (s == NULL || o == 4)
			tpl_fail(ev, IOTP_ERR_INVALID,
			         "an override setting is one of DO_NOTHING, REPLACE, FAIL, MERGE");
		else if (o == TEMPLATE_OVERRIDE_MERGE && !merge_ok)
			tpl_fail(ev, IOTP_ERR_INVALID,
			         "MERGE is valid only for ThingGroups and AttributePayload");
		else if (r == TPL_THING)
			t->thing_over[slot] = (enum template_override)o;
		else
			t->cert_over = (enum template_override)o;
		tpl_path_pop(ev, saved);
	}
	tpl_path_pop(ev, top);
}

static void check_attributes(struct tpl_ev *ev, struct template *t, const json_t *payload)
{
	const json_t *map = payload, *inner = json_object_get(payload, "Attributes");
	const char *name;
	json_t *v;
	size_t top = tpl_path_key(ev, "AttributePayload"), mark = ev->plen;
	char *ignored = NULL;

	if (!json_is_object(payload) || tpl_is_intrinsic(payload)) {
		tpl_fail(ev, IOTP_ERR_INVALID, "must be an object of attribute names and values");
		tpl_path_pop(ev, top);
		return;
	}
	/* The UpdateThing shape {"Attributes": {...}} is accepted too. */
	if (json_object_size(payload) == 1 && json_is_object(inner) && !tpl_is_intrinsic(inner)) {
		map = inner;
		tpl_path_key(ev, "Attributes");
	}
	t->attrs = map;
	json_object_foreach((json_t *)map, name, v) {
		size_t saved = tpl_path_key(ev, name);

		if (!tpl_attr_name_ok(name))
			tpl_fail(ev, IOTP_ERR_INVALID,
			         "not a valid attribute name: use 1 to 128 of a-z A-Z 0-9 _ . , @ / : # -");
		tpl_string(ev, v, tpl_check_attr_value, &ignored);
		tpl_path_pop(ev, saved);
	}
	tpl_path_pop(ev, mark);
	tpl_path_pop(ev, top);
}

static void check_thing(struct tpl_ev *ev, struct template *t, const json_t *props)
{
	static const char *const allowed[] = {
		"ThingName", "ThingTypeName", "ThingGroups", "AttributePayload", "BillingGroup",
		"PackageVersions", NULL,
	};
	const json_t *groups = json_object_get(props, "ThingGroups");
	const json_t *attrs = json_object_get(props, "AttributePayload");
	json_t *ignored = NULL;
	size_t saved;

	members_allowed(ev, props, allowed, "property of AWS::IoT::Thing",
	                "ThingName, ThingTypeName, ThingGroups, AttributePayload, BillingGroup");
	if (json_object_get(props, "PackageVersions") != NULL) {
		saved = tpl_path_key(ev, "PackageVersions");
		tpl_fail(ev, IOTP_ERR_INVALID, "PackageVersions is not supported by iotprov");
		tpl_path_pop(ev, saved);
	}
	if (json_object_get(props, "ThingName") == NULL)
		tpl_fail(ev, IOTP_ERR_INVALID, "ThingName is missing");
	ev->cur_res = TPL_THING;
	check_string_member(ev, props, "ThingName", tpl_check_thing_name);
	ev->cur_res = -1;
	check_string_member(ev, props, "ThingTypeName", tpl_check_type_name);
	check_string_member(ev, props, "BillingGroup", tpl_check_billing_group);
	if (groups != NULL) {
		saved = tpl_path_key(ev, "ThingGroups");
		tpl_list(ev, groups, tpl_check_group_name, &ignored);
		tpl_path_pop(ev, saved);
	}
	if (attrs != NULL)
		check_attributes(ev, t, attrs);
}

static void check_certificate(struct tpl_ev *ev, struct template *t, const json_t *props)
{
	static const char *const allowed[] = {
		"CertificateId", "CertificateID", "CertificatePem", "CACertificatePem",
		"CertificateSigningRequest", "Status", NULL,
	};
	const char *idkey;
	int by_id = json_object_get(props, "CertificateId") != NULL;
	int by_id2 = json_object_get(props, "CertificateID") != NULL;
	int by_pem = json_object_get(props, "CertificatePem") != NULL;
	int by_csr = json_object_get(props, "CertificateSigningRequest") != NULL;

	members_allowed(ev, props, allowed, "property of AWS::IoT::Certificate",
	                "CertificateId, CertificatePem, CACertificatePem, "
	                "CertificateSigningRequest, Status");
	if (by_id + by_id2 + by_pem + by_csr != 1)
		tpl_fail(ev, IOTP_ERR_INVALID,
		         "declare exactly one of CertificateId, CertificatePem, CertificateSigningRequest");
	if (json_object_get(props, "CACertificatePem") != NULL && !by_pem)
		tpl_fail(ev, IOTP_ERR_INVALID, "CACertificatePem goes only with CertificatePem");
	if (t->kind != TEMPLATE_KIND_ANY && (by_pem || by_csr))
		tpl_fail(ev, IOTP_ERR_INVALID,
		         "a %s template declares its certificate by CertificateId only",
		         t->kind == TEMPLATE_KIND_FLEET ? "fleet provisioning" : "JITP");
	ev->cur_res = TPL_CERT;
	tpl_cert_id_member(props, &idkey);
	check_string_member(ev, props, idkey, tpl_check_cert_id);
	ev->cur_res = -1;
	check_string_member(ev, props, "CertificatePem", tpl_check_nonempty);
	check_string_member(ev, props, "CACertificatePem", tpl_check_nonempty);
	check_string_member(ev, props, "CertificateSigningRequest", tpl_check_nonempty);
	check_string_member(ev, props, "Status", tpl_check_status);
}

static void check_policy(struct tpl_ev *ev, const json_t *props)
{
	static const char *const allowed[] = {"PolicyName", "PolicyDocument", NULL};
	const json_t *doc = json_object_get(props, "PolicyDocument");
	int named = json_object_get(props, "PolicyName") != NULL;

	members_allowed(ev, props, allowed, "property of AWS::IoT::Policy",
	                "PolicyName, PolicyDocument");
	if (named == (doc != NULL))
		tpl_fail(ev, IOTP_ERR_INVALID,
		         "declare exactly one of PolicyName (an existing policy) and PolicyDocument");
	ev->cur_res = TPL_POLICY;
	check_string_member(ev, props, "PolicyName", tpl_check_policy_name);
	if (json_is_object(doc) && !tpl_is_intrinsic(doc)) {
		size_t saved = tpl_path_key(ev, "PolicyDocument");
		struct tpl_val v;

		ev->saw_intrinsic = 0;
		if (tpl_expr(ev, doc, 1, &v) == 0 && !ev->saw_intrinsic) {
			/* A literal document can be checked now. */
			char *text = json_dumps(doc, JSON_COMPACT);
			char why[600];

			if (text == NULL)
				ev->nomem = 1;
			else if (!tpl_check_policy_doc(text, why, sizeof(why)))
				tpl_fail(ev, IOTP_ERR_POLICY, "%s", why);
			free(text);
		}
		tpl_path_pop(ev, saved);
	} else {
		check_string_member(ev, props, "PolicyDocument", tpl_check_policy_doc);
	}
	ev->cur_res = -1;
}

/* First pass over Resources: logical ids, types, one of each. */
static void collect_resources(struct tpl_ev *ev, struct template *t, const json_t *res)
{
	static const char *const allowed[] = {"Type", "Properties", "OverrideSettings", NULL};
	const char *id;
	json_t *decl;

	json_object_foreach((json_t *)res, id, decl) {
		size_t saved = tpl_path_key(ev, id);
		const json_t *type = json_object_get(decl, "Type");
		const json_t *props = json_object_get(decl, "Properties");
		const char *ts = json_string_value(type);
		int r;

		if (!logical_id_ok(id))
			tpl_fail(ev, IOTP_ERR_INVALID,
			         "a logical id is 1 to %d of A-Z a-z 0-9 _ -", TEMPLATE_LOGICAL_ID_MAX);
		if (t->params != NULL && json_object_get(t->params, id) != NULL)
			tpl_fail(ev, IOTP_ERR_INVALID,
			         "this logical id is also the name of a parameter: Ref would be ambiguous");
		if (!json_is_object(decl)) {
			tpl_fail(ev, IOTP_ERR_INVALID,
			         "a resource is an object with Type, Properties and optionally "
			         "OverrideSettings");
			tpl_path_pop(ev, saved);
			continue;
		}
		members_allowed(ev, decl, allowed, "resource member",
		                "Type, Properties, OverrideSettings");
		for (r = 0; ts != NULL && r < TPL_NRES; r++)
			if (strcmp(ts, res_types[r]) == 0)
				break;
		if (type == NULL) {
			tpl_fail(ev, IOTP_ERR_INVALID, "Type is missing");
		} else if (ts == NULL || r == TPL_NRES) {
			size_t s2 = tpl_path_key(ev, "Type");
			char c[80];

			if (ts == NULL)
				tpl_fail(ev, IOTP_ERR_INVALID, "must be a string");
			else
				tpl_fail(ev, IOTP_ERR_INVALID,
				         "unknown resource type '%s' (allowed: AWS::IoT::Thing, "
				         "AWS::IoT::Certificate, AWS::IoT::Policy)",
				         tpl_clean(ts, c, sizeof(c)));
			tpl_path_pop(ev, s2);
		} else if (t->res_id[r] != NULL) {
			char c[80];

			tpl_fail(ev, IOTP_ERR_INVALID,
			         "a template declares at most one %s (already declared as '%s')",
			         res_types[r], tpl_clean(t->res_id[r], c, sizeof(c)));
		} else {
			t->res_id[r] = id;
			if (props == NULL) {
				tpl_fail(ev, IOTP_ERR_INVALID, "Properties is missing");
			} else if (!json_is_object(props)) {
				size_t s2 = tpl_path_key(ev, "Properties");

				tpl_fail(ev, IOTP_ERR_INVALID, "must be an object");
				tpl_path_pop(ev, s2);
			} else {
				t->props[r] = props;
			}
			t->over[r] = json_object_get(decl, "OverrideSettings");
			if (r == TPL_CERT && t->props[r] != NULL) {
				int n = 0;

				if (json_object_get(props, "CertificateId") != NULL ||
				    json_object_get(props, "CertificateID") != NULL) {
					t->cert_source = TEMPLATE_CERT_BY_ID;
					n++;
				}
				if (json_object_get(props, "CertificatePem") != NULL) {
					t->cert_source = TEMPLATE_CERT_BY_PEM;
					n++;
				}
				if (json_object_get(props, "CertificateSigningRequest") != NULL) {
					t->cert_source = TEMPLATE_CERT_BY_CSR;
					n++;
				}
				if (n != 1)
					t->cert_source = 0;
			}
		}
		tpl_path_pop(ev, saved);
	}
}

static void check_resources(struct tpl_ev *ev, struct template *t, const json_t *res)
{
	size_t top = tpl_path_key(ev, "Resources");

	if (!json_is_object(res)) {
		tpl_fail(ev, IOTP_ERR_INVALID, "must be an object of resources by logical id");
		tpl_path_pop(ev, top);
		return;
	}
	if (json_object_size(res) == 0)
		tpl_fail(ev, IOTP_ERR_INVALID, "declare at least one resource");
	collect_resources(ev, t, res);
	for (int r = 0; r < TPL_NRES; r++) {
		size_t saved, s2;

		if (t->res_id[r] == NULL)
			continue;
		saved = tpl_path_key(ev, t->res_id[r]);
		if (t->props[r] != NULL) {
			s2 = tpl_path_key(ev, "Properties");
			if (r == TPL_THING)
				check_thing(ev, t, t->props[r]);
			else if (r == TPL_CERT)
				check_certificate(ev, t, t->props[r]);
			else
				check_policy(ev, t->props[r]);
			tpl_path_pop(ev, s2);
		}
		if (t->over[r] != NULL) {
			if (r == TPL_POLICY) {
				s2 = tpl_path_key(ev, "OverrideSettings");
				tpl_fail(ev, IOTP_ERR_INVALID,
				         "OverrideSettings are not available for AWS::IoT::Policy");
				tpl_path_pop(ev, s2);
			} else {
				check_overrides(ev, t, (enum tpl_res)r, t->over[r]);
			}
		}
		tpl_path_pop(ev, saved);
	}
	tpl_path_pop(ev, top);
}

static void check_device_configuration(struct tpl_ev *ev, struct template *t, const json_t *dc)
{
	const char *key;
	json_t *v;
	size_t top = tpl_path_key(ev, "DeviceConfiguration");
	char *ignored = NULL;

	if (t->kind == TEMPLATE_KIND_JITP)
		tpl_fail(ev, IOTP_ERR_INVALID,
		         "DeviceConfiguration is for fleet provisioning templates only");
	if (!json_is_object(dc) || tpl_is_intrinsic(dc)) {
		tpl_fail(ev, IOTP_ERR_INVALID, "must be a flat object of string values");
		tpl_path_pop(ev, top);
		return;
	}
	t->devcfg = dc;
	json_object_foreach((json_t *)dc, key, v) {
		size_t saved = tpl_path_key(ev, key);

		if (key[0] == '\0')
			tpl_fail(ev, IOTP_ERR_INVALID, "names must not be empty");
		if (json_is_array(v) || (json_is_object(v) && !tpl_is_intrinsic(v)))
			tpl_fail(ev, IOTP_ERR_INVALID,
			         "nested values are not supported: DeviceConfiguration is a flat map "
			         "of strings");
		else
			tpl_string(ev, v, NULL, &ignored);
		tpl_path_pop(ev, saved);
	}
	tpl_path_pop(ev, top);
}

/* Reports each reference cycle between resource identities. */
static void cycle(struct tpl_ev *ev, const struct template *t, const int *ids, int n)
{
	char line[4 * (TEMPLATE_LOGICAL_ID_MAX + 4) + 1], c[80];
	size_t used = 0, saved;

	for (int i = 0; i <= n && used < sizeof(line); i++)
		used += (size_t)snprintf(line + used, sizeof(line) - used, "%s%s", i > 0 ? " -> " : "",
		                         tpl_clean(t->res_id[ids[i % n]], c, sizeof(c)));
	saved = tpl_path_key(ev, "Resources");
	tpl_path_key(ev, t->res_id[ids[0]]);
	tpl_fail(ev, IOTP_ERR_INVALID, "circular reference: %s", line);
	tpl_path_pop(ev, saved);
}

static void check_cycles(struct tpl_ev *ev, const struct template *t)
{
	for (int i = 0; i < TPL_NRES; i++) {
		int one[1] = {i};

		if (ev->edge[i][i])
			cycle(ev, t, one, 1);
		for (int j = i + 1; j < TPL_NRES; j++) {
			int two[2] = {i, j};

			if (ev->edge[i][j] && ev->edge[j][i])
				cycle(ev, t, two, 2);
		}
	}
	if (ev->edge[0][1] && ev->edge[1][2] && ev->edge[2][0]) {
		int three[3] = {0, 1, 2};

		cycle(ev, t, three, 3);
	}
	if (ev->edge[0][2] && ev->edge[2][1] && ev->edge[1][0]) {
		int three[3] = {0, 2, 1};

		cycle(ev, t, three, 3);
	}
}

/* The whole check. *tout receives the template (also when it has
 * problems: the caller decides); IOTP_ERR_NOMEM is the only failure. */
static iotp_rc check_body(const char *body, size_t len, enum template_kind kind,
                          struct template **tout, struct template_problems *pr, int *too_big)
{
	static const char *const sections[] = {
		"Parameters", "Mappings", "Resources", "DeviceConfiguration", NULL,
	};
	struct tpl_ev ev;
	struct template *t = NULL;
	json_error_t jerr;
	const char *key;
	json_t *v;

	memset(&ev, 0, sizeof(ev));
	ev.check = 1;
	ev.pr = pr;
	ev.cur_res = -1;
	*too_big = 0;
	/* A character is at most 4 bytes: longer input is not even counted. */
	if (len > 4 * (size_t)TEMPLATE_BODY_MAX || tpl_utf8_chars(body, len) > TEMPLATE_BODY_MAX) {
		*too_big = 1;
		tpl_fail(&ev, IOTP_ERR_TOO_BIG, "template body is longer than %d characters",
		         TEMPLATE_BODY_MAX);
		goto out;
	}
	if (len == 0) {
		tpl_fail(&ev, IOTP_ERR_INVALID, "template body is empty");
		goto out;
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return IOTP_ERR_NOMEM;
	t->kind = kind;
	ev.t = t;
	t->root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (t->root == NULL) {
		tpl_fail(&ev, IOTP_ERR_INVALID, "template body is not valid JSON: %s (line %d, column %d)",
		         jerr.text, jerr.line, jerr.column);
		goto out;
	}
	if (!json_is_object(t->root)) {
		tpl_fail(&ev, IOTP_ERR_INVALID, "template body must be a JSON object");
		goto out;
	}
	json_object_foreach(t->root, key, v) {
		size_t saved;

		if (one_of(key, sections))
			continue;
		saved = tpl_path_key(&ev, key);
		if (strcmp(key, "Conditions") == 0 || strcmp(key, "Outputs") == 0)
			tpl_fail(&ev, IOTP_ERR_INVALID,
			         "%s are not part of provisioning templates (sections: Parameters, "
			         "Mappings, Resources, DeviceConfiguration)", key);
		else
			tpl_fail(&ev, IOTP_ERR_INVALID,
			         "unknown section (allowed: Parameters, Mappings, Resources, "
			         "DeviceConfiguration)");
		tpl_path_pop(&ev, saved);
	}
	if ((v = json_object_get(t->root, "Parameters")) != NULL)
		check_parameters(&ev, t, v);
	if ((v = json_object_get(t->root, "Mappings")) != NULL)
		check_mappings(&ev, t, v);
	if ((v = json_object_get(t->root, "Resources")) != NULL)
		check_resources(&ev, t, v);
	else
		tpl_fail(&ev, IOTP_ERR_INVALID, "Resources is missing: a template declares resources");
	if ((v = json_object_get(t->root, "DeviceConfiguration")) != NULL)
		check_device_configuration(&ev, t, v);
	check_cycles(&ev, t);
out:
	if (ev.nomem) {
		template_free(t);
		return IOTP_ERR_NOMEM;
	}
	*tout = t;
	return IOTP_OK;
}

/* err->msg: the problems joined with "; ", as many as fit. */
static iotp_rc join_problems(const struct template_problems *pr, iotp_rc rc,
                             struct iotp_err *err)
{
	char msg[IOTP_ERR_MSG_MAX], tail[48];
	size_t used = 0, shown = 0, total = pr->count + pr->omitted;

	msg[0] = '\0';
	for (size_t i = 0; i < pr->count; i++) {
		size_t need = strlen(pr->items[i]) + (i > 0 ? 2 : 0);
		size_t reserve = i + 1 < total ? sizeof(tail) : 0;

		if (used + need + reserve >= sizeof(msg)) {
			if (i == 0) {
				/* One long problem: show its beginning. */
				size_t room = sizeof(msg) - sizeof(tail) - 4;

				memcpy(msg, pr->items[0], room);
				memcpy(msg + room, "...", 4);
				used = room + 3;
				shown = 1;
			}
			break;
		}
		used += (size_t)snprintf(msg + used, sizeof(msg) - used, "%s%s", i > 0 ? "; " : "",
		                         pr->items[i]);
		shown++;
	}
	if (shown < total) {
		snprintf(tail, sizeof(tail), " (and %zu more)", total - shown);
		snprintf(msg + used, sizeof(msg) - used, "%s", tail);
	}
	return iotp_err_set(err, rc, "%s", msg);
}

iotp_rc template_parse(const char *body, size_t len, enum template_kind kind,
                       struct template **out, struct iotp_err *err)
{
	struct template_problems pr = {NULL, 0, 0};
	struct template *t = NULL;
	int too_big = 0;
	iotp_rc rc;

	if (body == NULL && len > 0)
		return iotp_err_set(err, IOTP_ERR_INVALID, "no template body");
	rc = check_body(body != NULL ? body : "", len, kind, &t, &pr, &too_big);
	if (rc != IOTP_OK) {
		iotp_err_set(err, rc, "out of memory parsing the template");
		goto out;
	}
	if (pr.count + pr.omitted > 0) {
		rc = join_problems(&pr, too_big ? IOTP_ERR_TOO_BIG : IOTP_ERR_INVALID, err);
		goto out;
	}
	*out = t;
	t = NULL;
out:
	template_free(t);
	template_problems_cleanup(&pr);
	return rc;
}

iotp_rc template_validate(const char *body, size_t len, enum template_kind kind,
                          struct template_problems *out, struct iotp_err *err)
{
	struct template_problems pr = {NULL, 0, 0};
	struct template *t = NULL;
	int too_big = 0;
	iotp_rc rc;

	if (body == NULL && len > 0)
		return iotp_err_set(err, IOTP_ERR_INVALID, "no template body");
	rc = check_body(body != NULL ? body : "", len, kind, &t, &pr, &too_big);
	template_free(t);
	if (rc != IOTP_OK) {
		template_problems_cleanup(&pr);
		return iotp_err_set(err, rc, "out of memory validating the template");
	}
	*out = pr;
	return IOTP_OK;
}
