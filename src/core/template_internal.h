/*
 * Shared between the files of the template module (template.c: parsing and
 * structure checks; template_expr.c: values and intrinsic functions;
 * template_eval.c: evaluation into a plan). Not part of any public API.
 *
 * One walker serves validation and evaluation: in check mode it records
 * every problem it meets and carries on with the siblings, computing only
 * the static type of each value; in eval mode it builds the values and
 * stops at the first failure. Because both modes run the same code, a
 * template that validates cannot meet a shape error while evaluating.
 */
#ifndef IOTP_TEMPLATE_INTERNAL_H
#define IOTP_TEMPLATE_INTERNAL_H

#include <stddef.h>

#include <jansson.h>

#include "common/err.h"
#include "core/template.h"

#define TPL_PATH_MAX 256
#define TPL_NPSEUDO 8

enum tpl_res { TPL_THING = 0, TPL_CERT, TPL_POLICY, TPL_NRES };

struct template {
	json_t *root;                       /* owned: the parsed body */
	enum template_kind kind;
	const json_t *params;               /* "Parameters" or NULL */
	const json_t *mappings;             /* "Mappings" or NULL */
	const json_t *devcfg;               /* "DeviceConfiguration" or NULL */
	const char *res_id[TPL_NRES];       /* logical ids (keys of Resources), NULL: none */
	const json_t *props[TPL_NRES];      /* their "Properties" objects */
	const json_t *over[TPL_NRES];       /* their "OverrideSettings", NULL: none */
	const json_t *attrs;                /* the thing's attribute map (AttributePayload
	                                     * or its "Attributes" member), NULL: none */
	enum template_cert_source cert_source; /* 0 while unknown */
	enum template_override thing_over[3];  /* type, groups, attributes */
	enum template_override cert_over;      /* status */
};

/* Static type of a value, known in both modes. */
enum tpl_vt {
	TPL_VT_STR = 1,  /* a string */
	TPL_VT_LIST,     /* a list of strings */
	TPL_VT_ANY,      /* a string or a list: known only when evaluated */
	TPL_VT_JSON      /* other JSON (policy documents given as objects) */
};

struct tpl_val {
	enum tpl_vt type;
	json_t *v;       /* eval mode: owned new value; check mode: NULL */
};

struct tpl_ev {
	const struct template *t;
	int check;                          /* 1: validating, 0: evaluating */
	/* check mode */
	struct template_problems *pr;
	int nomem;                          /* an allocation failed while recording */
	int cur_res;                        /* resource whose identity is walked, -1 */
	unsigned char edge[TPL_NRES][TPL_NRES]; /* identity of i refers to j */
	int saw_intrinsic;                  /* an intrinsic was met since last reset */
	/* eval mode */
	const json_t *params;
	const struct template_pseudo *pseudo;
	struct iotp_err *err;
	json_t *ident[TPL_NRES];            /* resolved identities (strings), owned */
	char *policy_doc;                   /* resolved policy document, owned */
	int visiting[TPL_NRES];
	/* both */
	char path[TPL_PATH_MAX];
	size_t plen;
	int depth;
};

/* Checks a string that lands somewhere with rules (a thing name...). Returns
 * 1 when fine, else 0 with a reason in why (no path). */
typedef int (*tpl_check_fn)(const char *s, char *why, size_t whysz);

/* Path stack: push returns the length to restore with pop. */
size_t tpl_path_key(struct tpl_ev *ev, const char *key);
size_t tpl_path_index(struct tpl_ev *ev, size_t i);
void tpl_path_pop(struct tpl_ev *ev, size_t saved);
/* Replaces the whole path (saved into buf of TPL_PATH_MAX) and restores it. */
void tpl_path_save(struct tpl_ev *ev, char *buf, size_t *len);
void tpl_path_restore(struct tpl_ev *ev, const char *buf, size_t len);

/* Reports a problem at the current path: check mode records it (rc is
 * ignored), eval mode sets ev->err to rc and "path: message". Returns -1. */
int tpl_fail(struct tpl_ev *ev, iotp_rc rc, const char *fmt, ...) IOTP_PRINTF(3, 4);

/* 1 when v is an object with exactly one member named "Ref" or "Fn::...". */
int tpl_is_intrinsic(const json_t *v);

/* Walks a value. json_ctx 0: strings, lists of strings and intrinsics only;
 * 1: any JSON, intrinsics allowed inside (policy documents). Returns 0 or -1
 * (problem recorded / error set); on 0 out->v is set in eval mode. */
int tpl_expr(struct tpl_ev *ev, const json_t *node, int json_ctx, struct tpl_val *out);
/* A value that must be a string, checked by check (may be NULL): literals
 * at parse time, everything when evaluated. *out (eval mode) receives a new
 * malloc'ed string; check mode leaves it NULL. */
int tpl_string(struct tpl_ev *ev, const json_t *node, tpl_check_fn check, char **out);
/* A value that must be a list of strings (a JSON array of string values or
 * a list-valued intrinsic); each element checked by check. *out (eval mode)
 * receives a new JSON array of strings. */
int tpl_list(struct tpl_ev *ev, const json_t *node, tpl_check_fn check, json_t **out);

/* Evaluated identity of a resource (Ref to its logical id): a borrowed
 * string owned by ev. Eval mode only. */
int tpl_ident(struct tpl_ev *ev, enum tpl_res r, const char **out);
/* Evaluated policy document text, borrowed from ev. Eval mode only. */
int tpl_policy_document(struct tpl_ev *ev, const char **out);

/* The certificate's CertificateId member (or its spelling CertificateID
 * from the AWS property list); *key receives the spelling used. */
const json_t *tpl_cert_id_member(const json_t *props, const char **key);

/* Pseudo parameter index of name (0..TPL_NPSEUDO-1), or -1. */
int tpl_pseudo_index(const char *name);
const char *tpl_pseudo_name(int i);

/* Character rules of the AWS model, as checkers. */
int tpl_check_thing_name(const char *s, char *why, size_t whysz);
int tpl_check_type_name(const char *s, char *why, size_t whysz);
int tpl_check_group_name(const char *s, char *why, size_t whysz);
int tpl_check_billing_group(const char *s, char *why, size_t whysz);
int tpl_check_policy_name(const char *s, char *why, size_t whysz);
int tpl_check_cert_id(const char *s, char *why, size_t whysz);
int tpl_check_status(const char *s, char *why, size_t whysz);
int tpl_check_attr_value(const char *s, char *why, size_t whysz);
int tpl_check_nonempty(const char *s, char *why, size_t whysz);
int tpl_check_policy_doc(const char *s, char *why, size_t whysz);
/* Attribute names: [a-zA-Z0-9_.,@/:#-]{1,128}. */
int tpl_attr_name_ok(const char *s);

/* Copies s for a message: control characters become '?', more than 60
 * bytes are cut with "...". Returns out. */
const char *tpl_clean(const char *s, char *out, size_t outsz);

/* Number of UTF-8 characters in s[0..len). */
size_t tpl_utf8_chars(const char *s, size_t len);

/* Evaluation of a parsed template into a plan (template_eval.c). */
int tpl_build_plan(struct tpl_ev *ev, struct template_plan *plan);

#endif
